/*
 * Payload parameters (docs/livepatch.md, "Parameters"): the declarations
 * a payload carries in .livepatch.params (struct livepatch_param), the
 * values given to upload/load and set, each checked against its
 * declaration before it is written into the payload's variable.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "livepatch/internal.h"
#include "log.h"

/* A value checked against its declaration, ready to be written. */
union lp_value {
	bool b;
	int64_t i;
	char s[LIVEPATCH_PARAM_STRING_MAX + 1];
};

static const char *const type_names[] = {
	[LIVEPATCH_PARAM_BOOL] = "bool",
	[LIVEPATCH_PARAM_INT] = "int",
	[LIVEPATCH_PARAM_STRING] = "string",
};

/* ------------------------------------------------------- declarations */

static bool good_name(const char *n)
{
	size_t i;

	if (!(*n >= 'a' && *n <= 'z'))
		return false;
	for (i = 0; n[i]; i++)
		if (!((n[i] >= 'a' && n[i] <= 'z') || n[i] == '_' ||
		      (n[i] >= '0' && n[i] <= '9')))
			return false;
	return i <= LIVEPATCH_PARAM_NAME_MAX;
}

/* A NUL-terminated string inside the payload's memory, or NULL. */
static const char *payload_str(const struct payload *p, const char *s)
{
	uint64_t a = (uint64_t)s, lo = (uint64_t)p->mem;

	if (!s || a < lo || a >= lo + p->mem_size ||
	    !memchr(s, 0, lo + p->mem_size - a))
		return NULL;
	return s;
}

static size_t value_size(const struct livepatch_param *d)
{
	switch (d->type) {
	case LIVEPATCH_PARAM_BOOL:
		return sizeof(bool);
	case LIVEPATCH_PARAM_INT:
		return sizeof(int64_t);
	default:
		return (size_t)d->max_len + 1;
	}
}

static bool vars_overlap(const struct livepatch_param *a,
			 const struct livepatch_param *b)
{
	uint64_t a0 = (uint64_t)a->value, b0 = (uint64_t)b->value;

	return a0 < b0 + value_size(b) && b0 < a0 + value_size(a);
}

/* The declaration's own consistency: type, bounds, default, variable. */
static int check_decl(const struct payload *p, struct lp_param *lp,
		      struct lp_err *e)
{
	const struct livepatch_param *d = &lp->d;
	uint64_t v = (uint64_t)d->value;
	uint64_t data = (uint64_t)p->mem + p->text_size;
	const char *bad = NULL;

	if (d->type < LIVEPATCH_PARAM_BOOL || d->type > LIVEPATCH_PARAM_STRING)
		bad = "unknown type";
	else if (d->flags & ~(LIVEPATCH_PARAM_WRITABLE |
			      LIVEPATCH_PARAM_PARKED) || d->reserved)
		bad = "unknown flags";
	else if (d->description && !payload_str(p, d->description))
		bad = "bad description";
	else if (d->type == LIVEPATCH_PARAM_INT && d->min > d->max)
		bad = "min > max";
	else if (d->type == LIVEPATCH_PARAM_INT &&
		 (d->def_int < d->min || d->def_int > d->max))
		bad = "default out of bounds";
	else if (d->type == LIVEPATCH_PARAM_BOOL && (uint64_t)d->def_int > 1)
		bad = "default is not 0 or 1";
	else if (d->type == LIVEPATCH_PARAM_STRING &&
		 (d->max_len > LIVEPATCH_PARAM_STRING_MAX ||
		  !payload_str(p, d->def_str) ||
		  strlen(d->def_str) > d->max_len))
		bad = "bad max_len or default";
	else if (d->type == LIVEPATCH_PARAM_STRING &&
		 (d->flags & LIVEPATCH_PARAM_WRITABLE) &&
		 !(d->flags & LIVEPATCH_PARAM_PARKED))
		bad = "a writable string must be LIVEPATCH_PARAM_PARKED";
	else if (v < data || v + value_size(d) > (uint64_t)p->mem +
		 p->mem_size || (d->type == LIVEPATCH_PARAM_INT && v % 8))
		bad = "its variable is not in the payload's data";
	if (bad)
		return lp_fail(e, CTL_EINVAL, "parameter %s: %s", lp->name,
			       bad);
	return 0;
}

int lp_params_read(struct payload *p, const void *sec, size_t size,
		   struct lp_err *e)
{
	const struct livepatch_param *d = sec;
	unsigned i, k;

	if (p->params)
		return lp_fail(e, CTL_EINVAL, "%s", "two .livepatch.params "
			       "sections");
	if (size % sizeof(*d))
		return lp_fail(e, CTL_EINVAL, "%s", ".livepatch.params: bad "
			       "size (not an array of struct livepatch_param)");
	p->nparams = size / sizeof(*d);
	p->params = calloc(p->nparams ? p->nparams : 1, sizeof(*p->params));
	if (!p->params)
		return lp_fail(e, CTL_ENORES, "%s", "out of memory");
	for (i = 0; i < p->nparams; i++) {
		struct lp_param *lp = &p->params[i];
		const char *n = payload_str(p, d[i].name);

		if (!n || !good_name(n))
			return lp_fail(e, CTL_EINVAL, "parameter %u: bad name "
				       "(1-%d of [a-z0-9_], a letter first)",
				       i, LIVEPATCH_PARAM_NAME_MAX);
		lp->d = d[i];
		snprintf(lp->name, sizeof(lp->name), "%s", n);
		for (k = 0; k < i; k++)
			if (!strcmp(p->params[k].name, lp->name))
				return lp_fail(e, CTL_EINVAL, "parameter %s is "
					       "declared twice", lp->name);
		if (check_decl(p, lp, e))
			return -1;
		/* Else writing one's value would change another's. */
		for (k = 0; k < i; k++)
			if (vars_overlap(&p->params[k].d, &lp->d))
				return lp_fail(e, CTL_EINVAL, "parameter %s: its "
					       "variable overlaps parameter %s's",
					       lp->name, p->params[k].name);
	}
	return 0;
}

/* ------------------------------------------------------------ values */

static struct lp_param *find_param(const struct payload *p, const char *n)
{
	unsigned i;

	for (i = 0; i < p->nparams; i++)
		if (!strcmp(p->params[i].name, n))
			return &p->params[i];
	return NULL;
}

static int unknown(const struct payload *p, const char *n, struct lp_err *e)
{
	char names[256] = "";
	size_t off = 0;
	unsigned i;

	for (i = 0; i < p->nparams && off < sizeof(names); i++)
		off += snprintf(names + off, sizeof(names) - off, "%s%s",
				i ? ", " : "", p->params[i].name);
	return lp_fail(e, CTL_EINVAL, "%s: no parameter '%s' (%s%s)", p->name,
		       n, p->nparams ? "it has: " : "it has none",
		       names);
}

static int parse_bool(const struct lp_param *lp, json_t *v,
		      union lp_value *out, struct lp_err *e)
{
	static const char *const yes[] = { "1", "true", "yes", "on" };
	static const char *const no[] = { "0", "false", "no", "off" };
	const char *s = json_string_value(v);
	unsigned i;

	if (json_is_boolean(v)) {
		out->b = json_is_true(v);
		return 0;
	}
	for (i = 0; s && i < 4; i++) {
		if (!strcmp(s, yes[i]) || !strcmp(s, no[i])) {
			out->b = !strcmp(s, yes[i]);
			return 0;
		}
	}
	return lp_fail(e, CTL_EINVAL, "parameter %s is a bool: give true or "
		       "false (or 1/0, yes/no, on/off), not %s%s%s",
		       lp->name, s ? "'" : "a JSON ", s ? s : "value",
		       s ? "'" : "");
}

static int parse_int(const struct lp_param *lp, json_t *v,
		     union lp_value *out, struct lp_err *e)
{
	const char *s = json_string_value(v), *digits;
	char *end;

	if (json_is_integer(v)) {
		out->i = json_integer_value(v);
	} else if (s) {
		digits = s + (*s == '-');
		errno = 0;
		out->i = strtoll(s, &end, !strncmp(digits, "0x", 2) ||
				 !strncmp(digits, "0X", 2) ? 16 : 10);
		if (!*s || *end || errno || *digits == ' ' || *digits == '+')
			return lp_fail(e, CTL_EINVAL, "parameter %s is an "
				       "integer: '%s' is not one", lp->name,
				       s);
	} else {
		return lp_fail(e, CTL_EINVAL, "parameter %s is an integer",
			       lp->name);
	}
	if (out->i < lp->d.min || out->i > lp->d.max)
		return lp_fail(e, CTL_EINVAL, "parameter %s: %" PRId64 " is "
			       "out of bounds [%" PRId64 ", %" PRId64 "]",
			       lp->name, out->i, lp->d.min, lp->d.max);
	return 0;
}

static int parse_string(const struct lp_param *lp, json_t *v,
			union lp_value *out, struct lp_err *e)
{
	const char *s = json_string_value(v);
	size_t n = s ? json_string_length(v) : 0;

	if (!s || strlen(s) != n)
		return lp_fail(e, CTL_EINVAL, "parameter %s is a string%s",
			       lp->name, s ? " without NUL bytes" : "");
	if (n > lp->d.max_len)
		return lp_fail(e, CTL_EINVAL, "parameter %s: %zu bytes, at "
			       "most %u", lp->name, n, lp->d.max_len);
	memcpy(out->s, s, n + 1);
	return 0;
}

static int parse_value(const struct lp_param *lp, json_t *v,
		       union lp_value *out, struct lp_err *e)
{
	switch (lp->d.type) {
	case LIVEPATCH_PARAM_BOOL:
		return parse_bool(lp, v, out, e);
	case LIVEPATCH_PARAM_INT:
		return parse_int(lp, v, out, e);
	default:
		return parse_string(lp, v, out, e);
	}
}

/* One store for a bool or an integer: code may be reading it. */
static void write_value(const struct lp_param *lp, const union lp_value *v)
{
	switch (lp->d.type) {
	case LIVEPATCH_PARAM_BOOL:
		__atomic_store_n((bool *)lp->d.value, v->b, __ATOMIC_RELAXED);
		break;
	case LIVEPATCH_PARAM_INT:
		__atomic_store_n((int64_t *)lp->d.value, v->i,
				 __ATOMIC_RELAXED);
		break;
	default:
		memcpy(lp->d.value, v->s, strlen(v->s) + 1);
	}
}

static json_t *value_json(const struct lp_param *lp, const void *at)
{
	switch (lp->d.type) {
	case LIVEPATCH_PARAM_BOOL:
		return json_boolean(*(const bool *)at);
	case LIVEPATCH_PARAM_INT:
		return json_integer(*(const int64_t *)at);
	default:
		return json_string(at);
	}
}

/* Every value of `given` parsed (and nothing written) or an error. */
struct lp_values {
	unsigned n;
	struct lp_param **lp;
	union lp_value *v;
	bool parked;		/* one of them is LIVEPATCH_PARAM_PARKED */
};

static void values_free(struct lp_values *vals)
{
	free(vals->lp);
	free(vals->v);
}

static int values_parse(struct payload *p, json_t *given, bool after_upload,
			struct lp_values *vals, struct lp_err *e)
{
	const char *key;
	json_t *v;

	memset(vals, 0, sizeof(*vals));
	if (given && !json_is_object(given))
		return lp_fail(e, CTL_EINVAL, "%s", "'params' must be an "
			       "object of name: value");
	if (!json_object_size(given))
		return 0;
	vals->lp = calloc(json_object_size(given), sizeof(*vals->lp));
	vals->v = calloc(json_object_size(given), sizeof(*vals->v));
	if (!vals->lp || !vals->v)
		return lp_fail(e, CTL_ENORES, "%s", "out of memory");
	json_object_foreach(given, key, v) {
		struct lp_param *lp = find_param(p, key);

		if (!lp)
			return unknown(p, key, e);
		if (after_upload && !(lp->d.flags & LIVEPATCH_PARAM_WRITABLE))
			return lp_fail(e, CTL_EINVAL, "%s: parameter %s is not "
				       "writable: it is set when the payload "
				       "is uploaded", p->name, lp->name);
		if (parse_value(lp, v, &vals->v[vals->n], e)) {
			char msg[sizeof(e->msg)];

			snprintf(msg, sizeof(msg), "%s", e->msg);
			return lp_fail(e, CTL_EINVAL, "%s: %s", p->name, msg);
		}
		vals->lp[vals->n++] = lp;
		vals->parked |= !!(lp->d.flags & LIVEPATCH_PARAM_PARKED);
	}
	return 0;
}

static void values_write(const struct payload *p,
			 const struct lp_values *vals, bool quiet)
{
	unsigned i;

	for (i = 0; i < vals->n; i++) {
		write_value(vals->lp[i], &vals->v[i]);
		if (!quiet) {
			json_t *j = value_json(vals->lp[i], vals->lp[i]->d.value);
			char *s = json_dumps(j, JSON_ENCODE_ANY);

			log_info("livepatch %s: %s = %s", p->name,
				 vals->lp[i]->name, s ? s : "?");
			free(s);
			json_decref(j);
		}
	}
}

int lp_params_init(struct payload *p, json_t *given, struct lp_err *e)
{
	struct lp_values vals;
	unsigned i;
	int ret;

	ret = values_parse(p, given, false, &vals, e);
	if (!ret) {
		for (i = 0; i < p->nparams; i++) {
			const struct livepatch_param *d = &p->params[i].d;
			union lp_value def;

			if (d->type == LIVEPATCH_PARAM_STRING)
				memcpy(def.s, d->def_str, strlen(d->def_str) + 1);
			else if (d->type == LIVEPATCH_PARAM_BOOL)
				def.b = d->def_int;
			else
				def.i = d->def_int;
			write_value(&p->params[i], &def);
		}
		values_write(p, &vals, false);
	}
	values_free(&vals);
	return ret;
}

struct parked_write {
	const struct payload *p;
	const struct lp_values *vals;
};

static int write_parked(void *arg, struct lp_err *e)
{
	const struct parked_write *w = arg;

	values_write(w->p, w->vals, false);
	return 0;
}

int lp_params_set(struct payload *p, json_t *given, long timeout_ms,
		  json_t **result, struct lp_err *e)
{
	struct lp_values vals;
	struct parked_write w = { p, &vals };
	int ret;

	if (!json_object_size(given))
		return lp_fail(e, CTL_EINVAL, "%s", "'params' must name at "
			       "least one parameter");
	ret = values_parse(p, given, true, &vals, e);
	if (!ret && vals.parked) {
		ret = lp_parked(write_parked, &w, timeout_ms, e);
		if (!ret)
			*result = lp_last_pause_json();
	} else if (!ret) {
		values_write(p, &vals, false);
		*result = json_object();
	}
	if (!ret) {
		json_object_set_new(*result, "parked", json_boolean(vals.parked));
		json_object_set_new(*result, "params", lp_params_values(p));
	}
	values_free(&vals);
	return ret;
}

/* ------------------------------------------------------------ listing */

json_t *lp_params_values(const struct payload *p)
{
	json_t *o = json_object();
	unsigned i;

	for (i = 0; i < p->nparams; i++)
		json_object_set_new(o, p->params[i].name,
				    value_json(&p->params[i],
					       p->params[i].d.value));
	return o;
}

static json_t *default_json(const struct lp_param *lp)
{
	union lp_value def;

	if (lp->d.type == LIVEPATCH_PARAM_STRING)
		return json_string(lp->d.def_str);
	if (lp->d.type == LIVEPATCH_PARAM_BOOL) {
		def.b = lp->d.def_int;
		return value_json(lp, &def.b);
	}
	return json_integer(lp->d.def_int);
}

json_t *lp_params_json(const struct payload *p)
{
	json_t *arr = json_array();
	unsigned i;

	for (i = 0; i < p->nparams; i++) {
		const struct lp_param *lp = &p->params[i];
		json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:s, s:b, s:b}",
			"name", lp->name, "type", type_names[lp->d.type],
			"value", value_json(lp, lp->d.value),
			"default", default_json(lp),
			"description", lp->d.description ?
				       lp->d.description : "",
			"writable", !!(lp->d.flags & LIVEPATCH_PARAM_WRITABLE),
			"parked", !!(lp->d.flags & LIVEPATCH_PARAM_PARKED));

		if (lp->d.type == LIVEPATCH_PARAM_INT) {
			json_object_set_new(o, "min", json_integer(lp->d.min));
			json_object_set_new(o, "max", json_integer(lp->d.max));
		} else if (lp->d.type == LIVEPATCH_PARAM_STRING) {
			json_object_set_new(o, "max_len",
					    json_integer(lp->d.max_len));
		}
		json_array_append_new(arr, o);
	}
	return arr;
}
