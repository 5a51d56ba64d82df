// SPDX-License-Identifier: GPL-2.0
/*
 * Messages, usage errors and option parsing shared by the commands.
 */
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xl.h"

void xl_err(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("xl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int xl_usage_error(const char *cmd, const char *fmt, ...)
{
	const struct xl_command *c = xl_find_command(cmd);
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "xl: %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (c)
		xl_print_usage(c, stderr);
	return XL_EXIT_USAGE;
}

int xl_help(const char *cmd)
{
	const struct xl_command *c = xl_find_command(cmd);

	if (c)
		xl_print_usage(c, stdout);
	return XL_EXIT_OK;
}

int xl_getopt(int argc, char **argv, const char *shortopts,
	      const struct option *longopts)
{
	char opts[64];
	int c;

	/* Leading ':' tells a missing argument from an unknown option. */
	snprintf(opts, sizeof(opts), ":%s", shortopts);
	opterr = 0;
	c = getopt_long(argc, argv, opts, longopts, NULL);
	if (c == '?') {
		if (optopt)
			xl_usage_error(argv[0], "unknown option '-%c'", optopt);
		else
			xl_usage_error(argv[0], "unknown option '%s'",
				       argv[optind - 1]);
	} else if (c == ':') {
		xl_usage_error(argv[0], "option '%s' needs an argument",
			       argv[optind - 1]);
		c = '?';
	}
	return c;
}

void xl_print_kv(const char *key, const char *fmt, ...)
{
	va_list ap;

	printf("%-23s: ", key);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void print_scalar(json_t *val)
{
	if (json_is_string(val))
		fwrite(json_string_value(val), 1, json_string_length(val),
		       stdout);
	else if (json_is_integer(val))
		printf("%lld", (long long)json_integer_value(val));
	else if (json_is_real(val))
		printf("%.1f", json_real_value(val));
	else if (json_is_boolean(val))
		fputs(json_is_true(val) ? "true" : "false", stdout);
	else
		json_dumpf(val, stdout, JSON_COMPACT | JSON_ENCODE_ANY);
}

void xl_print_field(const char *key, json_t *val)
{
	json_t *item;
	size_t i;

	if (!val || json_is_null(val))
		return;
	printf("%-23s: ", key);
	if (json_is_array(val)) {
		json_array_foreach(val, i, item) {
			if (i)
				putchar(' ');
			print_scalar(item);
		}
	} else {
		print_scalar(val);
	}
	putchar('\n');
}

void xl_print_json(json_t *val)
{
	json_dumpf(val, stdout, JSON_INDENT(4) | JSON_ENCODE_ANY |
		   JSON_REAL_PRECISION(15));
	putchar('\n');
}

int xl_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

int xl_parse_long(const char *s, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!*s || *end || errno)
		return -1;
	*out = v;
	return 0;
}

char *xl_abspath(const char *path)
{
	char *cwd, *out;
	size_t n;

	if (!*path)
		return NULL;
	if (path[0] == '/')
		return strdup(path);
	cwd = getcwd(NULL, 0);
	if (!cwd)
		return NULL;
	while (path[0] == '.' && path[1] == '/')
		for (path += 2; *path == '/'; path++)
			;
	n = strlen(cwd);
	out = malloc(n + strlen(path) + 2);
	if (out)
		sprintf(out, "%s%s%s", cwd,
			n && cwd[n - 1] == '/' ? "" : "/", path);
	free(cwd);
	return out;
}

long xl_latin1_decode(char *s, size_t len)
{
	unsigned char *in = (unsigned char *)s, *end = in + len;
	char *out = s;

	while (in < end) {
		if (*in < 0x80) {
			*out++ = (char)*in++;
		} else if ((*in == 0xc2 || *in == 0xc3) && in + 1 < end &&
			   (in[1] & 0xc0) == 0x80) {
			*out++ = (char)(((in[0] & 0x03) << 6) | (in[1] & 0x3f));
			in += 2;
		} else {
			return -1;
		}
	}
	return out - s;
}
