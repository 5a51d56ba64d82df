#include <stdlib.h>
#include <string.h>

#include "feature.h"

static struct feature *features;

/* Appended, so features are asked in link order. */
void feature_register(struct feature *f)
{
	struct feature **p = &features;

	while (*p)
		p = &(*p)->next;
	f->next = NULL;
	*p = f;
}

const struct feature *feature_first(void)
{
	return features;
}

static unsigned count_options(const struct option *o)
{
	unsigned n = 0;

	while (o && o[n].name)
		n++;
	return n;
}

struct option *feature_options(const struct option *core)
{
	unsigned n = count_options(core), total = n, k = 0, i;
	const struct feature *f;
	struct option *all;

	for (f = features; f; f = f->next)
		total += count_options(f->options);
	all = calloc(total + 1, sizeof(*all));	/* ends with { NULL } */
	if (!all)
		return NULL;
	memcpy(all, core, n * sizeof(*core));
	for (f = features; f; f = f->next) {
		for (i = 0; i < count_options(f->options); i++, n++) {
			all[n] = f->options[i];
			all[n].flag = NULL;
			all[n].val = FEATURE_OPTION + k++;
		}
	}
	return all;
}

int feature_parse_option(int val, const char *arg)
{
	const struct feature *f;
	unsigned k, n;

	if (val < FEATURE_OPTION)
		return -1;
	k = val - FEATURE_OPTION;
	for (f = features; f; f = f->next) {
		n = count_options(f->options);
		if (k < n)
			return f->parse_option ? f->parse_option(k, arg) : -1;
		k -= n;
	}
	return -1;
}

int feature_run(void)
{
	const struct feature *f;
	int ret;

	for (f = features; f; f = f->next)
		if (f->run && (ret = f->run()) >= 0)
			return ret;
	return -1;
}

void feature_early(const struct daemon_opts *d)
{
	const struct feature *f;

	for (f = features; f; f = f->next)
		if (f->early)
			f->early(d);
}

const struct feature *feature_taking_over(void)
{
	const struct feature *f;

	for (f = features; f; f = f->next)
		if (f->takes_over && f->takes_over() && f->take_over)
			return f;
	return NULL;
}

void feature_start_failed(const char *why)
{
	const struct feature *f;

	for (f = features; f; f = f->next)
		if (f->start_failed)
			f->start_failed(why);
}

int feature_started(void)
{
	const struct feature *f;

	for (f = features; f; f = f->next)
		if (f->started && f->started() < 0)
			return -1;
	return 0;
}

bool feature_busy(const struct feature *self, char *why, size_t len)
{
	const struct feature *f;

	for (f = features; f; f = f->next)
		if (f != self && f->busy && f->busy(why, len))
			return true;
	return false;
}

unsigned feature_carry_options(char **argv, unsigned max)
{
	const struct feature *f;
	unsigned n = 0;

	for (f = features; f; f = f->next)
		if (f->carry_options)
			n += f->carry_options(argv + n, max - n);
	return n;
}

void feature_handover_fds(void (*fn)(int fd, void *arg), void *arg)
{
	const struct feature *f;

	for (f = features; f; f = f->next)
		if (f->handover_fds)
			f->handover_fds(fn, arg);
}

void feature_domain_gone(struct domain *dom)
{
	const struct feature *f;

	for (f = features; f; f = f->next)
		if (f->domain_gone)
			f->domain_gone(dom);
}
