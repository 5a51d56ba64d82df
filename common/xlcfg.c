// SPDX-License-Identifier: GPL-2.0
/*
 * xl.cfg parser.  The syntax is described in xlcfg.h; values are parsed
 * into jansson values and handed to domcfg_set_field(), which owns every
 * rule about what a key accepts.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "openfile.h"
#include "xlcfg.h"

#define CMDLINE_NAME	"<command line>"
#define KEY_SHOW_MAX	64	/* longest key quoted in a message */

struct parser {
	const char *name;	/* file name (or CMDLINE_NAME) for messages */
	const char *p;		/* cursor */
	unsigned int line;	/* current line, 1-based */
	bool lines;		/* messages carry a line number */
	const char *key;	/* key being parsed, for messages */
	struct domcfg *cfg;
	unsigned int seen[DOMCFG_NR_FIELDS];	/* line a key was set on */
	char *err;
	size_t errlen;
};

static int perr(struct parser *ps, unsigned int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int perr(struct parser *ps, unsigned int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ps->lines)
		snprintf(ps->err, ps->errlen, "%s:%u: %s", ps->name, line, msg);
	else
		snprintf(ps->err, ps->errlen, "%s: %s", ps->name, msg);
	return XLCFG_ERR_CONFIG;
}

/* ------------------------------------------------------------ lexing */

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static bool is_key_char(char c, bool first)
{
	return isalpha((unsigned char)c) || c == '_' ||
	       (!first && isdigit((unsigned char)c));
}

/* Blanks and a comment, up to (not over) the end of the line. */
static void skip_blank(struct parser *ps)
{
	while (is_blank(*ps->p))
		ps->p++;
	if (*ps->p == '#')
		ps->p += strcspn(ps->p, "\n");
}

/* Blanks, comments and newlines (inside a list). */
static void skip_space(struct parser *ps)
{
	for (;;) {
		skip_blank(ps);
		if (*ps->p != '\n')
			return;
		ps->p++;
		ps->line++;
	}
}

static bool at_value_end(char c)
{
	return c == '\0' || c == '\n' || c == '#' || c == ',' || c == ']' ||
	       c == ';' || is_blank(c);
}

static int token_len(const char *s)
{
	int n = 0;

	while (!at_value_end(s[n]) && n < KEY_SHOW_MAX)
		n++;
	return n;
}

/* ------------------------------------------------------------ values */

static int unescape(struct parser *ps, char c, char *out)
{
	switch (c) {
	case '\\': case '"': case '\'':
		*out = c;
		return 0;
	case 'n':
		*out = '\n';
		return 0;
	case 'r':
		*out = '\r';
		return 0;
	case 't':
		*out = '\t';
		return 0;
	case '\0': case '\n':
		return perr(ps, ps->line, "%s: unterminated string", ps->key);
	}
	if (isprint((unsigned char)c))
		return perr(ps, ps->line, "%s: invalid escape '\\%c'",
			    ps->key, c);
	return perr(ps, ps->line, "%s: invalid escape sequence", ps->key);
}

static int make_string(struct parser *ps, const char *s, size_t len,
		       json_t **out)
{
	*out = json_stringn(s, len);
	if (!*out)
		return perr(ps, ps->line, "%s: string is not valid UTF-8",
			    ps->key);
	return 0;
}

/*
 * Bytes from @s to its closing @quote, escapes skipped, or to the end of
 * the line: what the string can hold at most.  Only the string itself is
 * scanned (a list of many strings on one line stays linear).
 */
static size_t string_extent(const char *s, char quote)
{
	size_t n = 0;

	while (s[n] && s[n] != '\n' && s[n] != quote)
		n += s[n] == '\\' && s[n + 1] && s[n + 1] != '\n' ? 2 : 1;
	return n;
}

static int parse_string(struct parser *ps, json_t **out)
{
	char quote = *ps->p++;
	char *buf = malloc(string_extent(ps->p, quote) + 1);
	size_t len = 0;
	int rc = 0;
	char c;

	if (!buf)
		return perr(ps, ps->line, "out of memory");
	while (!rc && (c = *ps->p) != quote) {
		if (c == '\0' || c == '\n')
			rc = perr(ps, ps->line, "%s: unterminated string",
				  ps->key);
		else if (c == '\\')
			rc = unescape(ps, *++ps->p, &buf[len++]);
		else
			buf[len++] = c;
		if (!rc)
			ps->p++;
	}
	if (!rc) {
		ps->p++;	/* closing quote */
		rc = make_string(ps, buf, len, out);
	}
	free(buf);
	return rc;
}

/* Hex digits, saturating at LLONG_MAX (the range check rejects it). */
static char *parse_hex(const char *s, long long *v)
{
	unsigned long long acc = 0;
	int d;

	for (; isxdigit((unsigned char)*s); s++) {
		d = isdigit((unsigned char)*s) ? *s - '0' :
			tolower((unsigned char)*s) - 'a' + 10;
		acc = acc > LLONG_MAX / 16 ? LLONG_MAX : acc * 16 + d;
	}
	*v = acc > LLONG_MAX ? LLONG_MAX : (long long)acc;
	return (char *)s;
}

static int parse_int(struct parser *ps, json_t **out)
{
	const char *s = ps->p;
	size_t sign = (s[0] == '-' || s[0] == '+');
	char *end = NULL;
	long long v = 0;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		if (isxdigit((unsigned char)s[2]))
			end = parse_hex(s + 2, &v);
	} else if (isdigit((unsigned char)s[sign])) {
		/* Out of range values are clamped, then fail the range. */
		v = strtoll(s, &end, 10);
	}
	if (!end || !at_value_end(*end))
		return perr(ps, ps->line, "%s: invalid number '%.*s'",
			    ps->key, token_len(s), s);
	ps->p = end;
	*out = json_integer(v);
	return *out ? 0 : perr(ps, ps->line, "out of memory");
}

static int parse_value(struct parser *ps, json_t **out, bool in_list);

static int list_item(struct parser *ps, json_t *list, unsigned int start)
{
	json_t *item = NULL;
	char c = *ps->p;
	int rc;

	if (c == '"' || c == '\'' || c == '-' || c == '+' ||
	    isdigit((unsigned char)c)) {
		rc = parse_value(ps, &item, true);
		if (rc)
			return rc;
		if (json_array_append_new(list, item))
			return perr(ps, ps->line, "out of memory");
		return 0;
	}
	if (c == '[')
		return perr(ps, ps->line, "%s: nested lists are not supported",
			    ps->key);
	if (c == '\0')
		return perr(ps, start, "%s: unterminated list", ps->key);
	return perr(ps, ps->line,
		    "%s: expected a string or an integer in the list opened "
		    "on line %u", ps->key, start);
}

/* After an item: ',' or ']' (1 = list closed). */
static int list_sep(struct parser *ps, unsigned int start)
{
	skip_space(ps);
	if (*ps->p == ']') {
		ps->p++;
		return 1;
	}
	if (*ps->p == ',') {
		ps->p++;
		return 0;
	}
	if (*ps->p == '\0')
		return perr(ps, start, "%s: unterminated list", ps->key);
	return perr(ps, ps->line,
		    "%s: expected ',' or ']' in the list opened on line %u",
		    ps->key, start);
}

static int parse_list(struct parser *ps, json_t **out)
{
	unsigned int start = ps->line;
	json_t *list = json_array();
	int rc = 0;

	if (!list)
		return perr(ps, ps->line, "out of memory");
	ps->p++;	/* '[' */
	for (;;) {
		skip_space(ps);
		if (*ps->p == ']') {
			ps->p++;
			break;
		}
		rc = list_item(ps, list, start);
		if (!rc)
			rc = list_sep(ps, start);
		if (rc)
			break;
	}
	if (rc < 0) {
		json_decref(list);
		return rc;
	}
	*out = list;
	return 0;
}

static int parse_value(struct parser *ps, json_t **out, bool in_list)
{
	char c = *ps->p;

	if (c == '"' || c == '\'')
		return parse_string(ps, out);
	if (c == '[' && !in_list)
		return parse_list(ps, out);
	if (c == '-' || c == '+' || isdigit((unsigned char)c))
		return parse_int(ps, out);
	if (c == '\0' || c == '\n' || c == '#' || c == ';')
		return perr(ps, ps->line, "%s: missing value", ps->key);
	return perr(ps, ps->line, "%s: invalid value '%.*s' (expected a "
		    "quoted string, an integer or a list)", ps->key,
		    token_len(ps->p), ps->p);
}

/* ------------------------------------------------------------ paths */

/* Directory of @name, absolute, without the trailing slash. */
static char *base_dir(const char *name)
{
	const char *slash = strrchr(name, '/');
	char cwd[4096], *dir;
	size_t len;

	if (name[0] == '/' && slash)
		return strndup(name, slash > name ? slash - name : 1);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	if (!slash)
		return strdup(cwd);
	len = slash - name;
	while (len >= 2 && !strncmp(name, "./", 2)) {
		name += 2;
		len -= 2;
	}
	if (len == 1 && name[0] == '.')
		return strdup(cwd);
	if (asprintf(&dir, "%s/%.*s", strcmp(cwd, "/") ? cwd : "",
		     (int)len, name) < 0)
		return NULL;
	return dir;
}

/* Replace a relative path string in *val by an absolute one. */
static int resolve_path(struct parser *ps, unsigned int line, json_t **val)
{
	const char *rel = json_string_value(*val);
	char *dir, *abs;
	int rc;

	if (!rel || !*rel || rel[0] == '/')
		return 0;
	dir = base_dir(ps->lines ? ps->name : ".");
	if (!dir)
		return perr(ps, line, "%s: cannot resolve '%s': %s", ps->key,
			    rel, strerror(errno));
	while (!strncmp(rel, "./", 2))
		rel += 2;
	rc = asprintf(&abs, "%s/%s", strcmp(dir, "/") ? dir : "", rel);
	free(dir);
	if (rc < 0)
		return perr(ps, line, "out of memory");
	json_decref(*val);
	*val = json_string(abs);
	free(abs);
	if (!*val)
		return perr(ps, line, "%s: path is not valid UTF-8", ps->key);
	return 0;
}

/* ------------------------------------------------------------ settings */

/* cmdline = [ "a", "b" ] is "a b". */
static int join_list(struct parser *ps, unsigned int line, json_t **val)
{
	size_t i, len = 0;
	json_t *item;
	char *buf, *p;

	json_array_foreach(*val, i, item) {
		if (!json_is_string(item))
			return perr(ps, line, "%s: list items must be strings",
				    ps->key);
		len += json_string_length(item) + 1;
	}
	buf = malloc(len + 1);
	if (!buf)
		return perr(ps, line, "out of memory");
	p = buf;
	json_array_foreach(*val, i, item) {
		if (i)
			*p++ = ' ';
		memcpy(p, json_string_value(item), json_string_length(item));
		p += json_string_length(item);
	}
	*p = '\0';
	json_decref(*val);
	*val = json_string(buf);
	free(buf);
	return *val ? 0 : perr(ps, line, "out of memory");
}

/*
 * The keys whose list items are device specs: fw_cfg = [ QEMU -fw_cfg
 * strings ], disk = [ Xen disk specs ], vif = [ Xen vif specs ],
 * modules = [ 'PATH ARGS' ].  Each
 * item goes to the daemon as an object, its path (if it has one)
 * resolved against the config's directory, with where it was written.
 */
struct spec_key {
	enum domcfg_field field;
	json_t *(*to_json)(const char *spec, char *why, size_t whylen);
	const char *path;	/* member holding a path, or NULL */
	/* fw_cfg, modules: the file is checked now (FILE:LINE errors) */
	int (*check)(const char *path, char *why, size_t whylen);
	bool indexed;		/* messages name the item: disk[1]: ... */
};

static const struct spec_key spec_keys[] = {
	{ DOMCFG_F_FW_CFG, fwcfg_spec_to_json, "file", fwcfg_file_check,
	  false },
	{ DOMCFG_F_DISK, domcfg_disk_spec_to_json, "target", NULL, true },
	{ DOMCFG_F_VIF, domcfg_vif_spec_to_json, NULL, NULL, true },
	{ DOMCFG_F_MODULES, module_spec_to_json, "path", module_file_check,
	  true },
};

static const struct spec_key *spec_key(enum domcfg_field field)
{
	size_t i;

	for (i = 0; i < sizeof(spec_keys) / sizeof(spec_keys[0]); i++)
		if (spec_keys[i].field == field)
			return &spec_keys[i];
	return NULL;
}

static int spec_err(struct parser *ps, const struct spec_key *k,
		    unsigned int line, size_t i, const char *why)
{
	if (k->indexed)
		return perr(ps, line, "%s[%zu]: %s", ps->key, i, why);
	return perr(ps, line, "%s: %s", ps->key, why);
}

static int spec_item(struct parser *ps, const struct spec_key *k,
		     unsigned int line, size_t i, json_t **item)
{
	char why[300], origin[PATH_MAX + 16];
	json_t *obj, *path;
	int rc;

	if (!json_is_string(*item))
		return perr(ps, line, "%s: list items must be strings",
			    ps->key);
	obj = k->to_json(json_string_value(*item), why, sizeof(why));
	if (!obj)
		return spec_err(ps, k, line, i, why);
	json_decref(*item);
	*item = obj;
	path = k->path ? json_incref(json_object_get(obj, k->path)) : NULL;
	rc = path ? resolve_path(ps, line, &path) : 0;
	if (!rc && path && json_object_set(obj, k->path, path))
		rc = perr(ps, line, "out of memory");
	if (!rc && path && k->check &&
	    k->check(json_string_value(path), why, sizeof(why)))
		rc = spec_err(ps, k, line, i, why);
	json_decref(path);
	snprintf(origin, sizeof(origin), "%s:%u", ps->name, line);
	if (!rc && json_object_set_new(obj, "origin", json_string(origin)))
		rc = perr(ps, line, "out of memory");
	return rc;
}

static int spec_list(struct parser *ps, const struct spec_key *k,
		     unsigned int line, json_t **val)
{
	json_t *item;
	size_t i;
	int rc;

	if (!json_is_array(*val))
		return 0;	/* domcfg_set_field() says what is wrong */
	for (i = 0; i < json_array_size(*val); i++) {
		item = json_incref(json_array_get(*val, i));
		rc = spec_item(ps, k, line, i, &item);
		if (!rc && json_array_set(*val, i, item))
			rc = perr(ps, line, "out of memory");
		json_decref(item);
		if (rc)
			return rc;
	}
	return 0;
}

/* Validate and store @val (a reference this function takes over). */
static int store(struct parser *ps, enum domcfg_field field, json_t *val,
		 unsigned int line)
{
	char why[160];
	int rc = 0;

	if (field == DOMCFG_F_CMDLINE && json_is_array(val))
		rc = join_list(ps, line, &val);
	else if (field == DOMCFG_F_KERNEL || field == DOMCFG_F_RAMDISK)
		rc = resolve_path(ps, line, &val);
	else if (spec_key(field))
		rc = spec_list(ps, spec_key(field), line, &val);
	if (!rc && domcfg_set_field(ps->cfg, field, val, why, sizeof(why)))
		rc = perr(ps, line, "%s%s%s", ps->key, domcfg_reason_sep(why),
			  why);
	json_decref(val);
	return rc;
}

static int lookup_key(struct parser *ps, const char *key, size_t len,
		      unsigned int line, enum domcfg_field *field)
{
	char buf[KEY_SHOW_MAX + 1];
	int idx;

	if (len > KEY_SHOW_MAX)
		return perr(ps, line, "unknown key '%.*s...'", KEY_SHOW_MAX,
			    key);
	memcpy(buf, key, len);
	buf[len] = '\0';
	idx = domcfg_field_index(buf);
	if (idx < 0)
		return perr(ps, line, "unknown key '%s'", buf);
	*field = (enum domcfg_field)idx;
	ps->key = domcfg_field_name(*field);
	return 0;
}

/* The end of a setting: a comment, newline, ';' or the end of text. */
static int end_of_setting(struct parser *ps)
{
	skip_blank(ps);
	if (*ps->p == '\0' || *ps->p == '\n' || *ps->p == ';')
		return 0;
	return perr(ps, ps->line, "%s: unexpected '%.*s' after the value",
		    ps->key, token_len(ps->p) ? token_len(ps->p) : 1, ps->p);
}

static int parse_setting(struct parser *ps)
{
	unsigned int line = ps->line;
	const char *key = ps->p;
	enum domcfg_field field;
	json_t *val = NULL;
	size_t len = 0;
	int rc;

	while (is_key_char(key[len], len == 0))
		len++;
	ps->p += len;
	skip_blank(ps);
	if (!len || *ps->p != '=')
		return perr(ps, line, "syntax error: expected 'key = value'");
	ps->p++;
	rc = lookup_key(ps, key, len, line, &field);
	if (rc)
		return rc;
	if (ps->seen[field])
		return perr(ps, line, "duplicate key '%s' (first set on line "
			    "%u)", ps->key, ps->seen[field]);
	skip_blank(ps);
	rc = parse_value(ps, &val, false);
	if (!rc)
		rc = end_of_setting(ps);
	if (rc) {
		json_decref(val);
		return rc;
	}
	ps->seen[field] = line;
	return store(ps, field, val, line);
}

static int parse_settings(struct parser *ps)
{
	int rc;

	for (;;) {
		skip_blank(ps);
		switch (*ps->p) {
		case '\0':
			return XLCFG_OK;
		case '\n':
			ps->line++;
			/* fall through */
		case ';':
			ps->p++;
			continue;
		}
		rc = parse_setting(ps);
		if (rc)
			return rc;
	}
}

/* ------------------------------------------------------------ entry */

static unsigned int count_lines(const char *text)
{
	unsigned int n = 0;
	const char *p;

	for (p = text; *p; p++)
		if (*p == '\n')
			n++;
	if (p > text && p[-1] != '\n')
		n++;
	return n;
}

/* Line number of offset @pos. */
static unsigned int line_at(const char *text, size_t pos)
{
	unsigned int line = 1;
	size_t i;

	for (i = 0; i < pos; i++)
		if (text[i] == '\n')
			line++;
	return line;
}

static int check_required(const struct domcfg *cfg, const char *name,
			  unsigned int line, char *err, size_t errlen)
{
	int f;

	for (f = 0; f < DOMCFG_NR_FIELDS; f++) {
		if (!domcfg_field_required(f) || domcfg_field_is_set(cfg, f))
			continue;
		snprintf(err, errlen, "%s:%u: missing required key '%s'",
			 name, line, domcfg_field_name(f));
		return XLCFG_ERR_CONFIG;
	}
	return XLCFG_OK;
}

static int parse_text(const char *name, const char *text,
		      struct domcfg *cfg, char *err, size_t errlen)
{
	struct parser ps = {
		.name = name, .p = text, .line = 1, .lines = true,
		.cfg = cfg, .err = err, .errlen = errlen,
	};
	int rc;

	domcfg_init(cfg);
	rc = parse_settings(&ps);
	if (rc)
		domcfg_free(cfg);
	return rc;
}

int xlcfg_parse_buffer(const char *name, const char *text,
		       struct domcfg *cfg, char *err, size_t errlen)
{
	int rc = parse_text(name, text, cfg, err, errlen);

	if (!rc)
		rc = check_required(cfg, name, count_lines(text), err, errlen);
	if (rc)
		domcfg_free(cfg);
	return rc;
}

static int read_fd(int fd, char *buf, size_t cap, size_t *len)
{
	ssize_t n;

	*len = 0;
	while (*len < cap) {
		n = read(fd, buf + *len, cap - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		*len += n;
	}
	return 0;
}

/* The file as a NUL-terminated string. */
static int read_text(const char *path, char **text, char *err, size_t errlen)
{
	size_t len = 0;
	char *buf = malloc(XLCFG_FILE_MAX + 2), why[512];
	int fd = -1, rc = XLCFG_ERR_IO;

	*text = NULL;
	if (!buf) {
		snprintf(err, errlen, "cannot read %s: %s", path,
			 strerror(errno));
		return rc;
	}
	/* Not a FIFO (xl would wait for a writer) nor a device. */
	fd = open_regular(path, 0, NULL, why, sizeof(why));
	if (fd < 0) {
		snprintf(err, errlen, "cannot read %s", why);
		goto out;
	}
	if (read_fd(fd, buf, XLCFG_FILE_MAX + 1, &len)) {
		snprintf(err, errlen, "cannot read %s: %s", path,
			 strerror(errno));
		goto out;
	}
	rc = XLCFG_ERR_CONFIG;
	buf[len] = '\0';
	if (len > XLCFG_FILE_MAX) {
		snprintf(err, errlen, "%s: larger than %d bytes", path,
			 XLCFG_FILE_MAX);
		goto out;
	}
	if (strlen(buf) != len) {
		snprintf(err, errlen, "%s:%u: NUL byte in file", path,
			 line_at(buf, strlen(buf)));
		goto out;
	}
	*text = buf;
	buf = NULL;
	rc = XLCFG_OK;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

int xlcfg_parse_file(const char *path, struct domcfg *cfg,
		     char *err, size_t errlen)
{
	return xlcfg_load(path, NULL, 0, cfg, err, errlen);
}

/* VALUE of an override: file syntax, else the literal text. */
static json_t *override_value(struct parser *ps, const char *text)
{
	char scratch[256];
	struct parser sub = *ps;
	json_t *val = NULL;

	sub.p = text;
	sub.err = scratch;
	sub.errlen = sizeof(scratch);
	if (!parse_value(&sub, &val, false)) {
		skip_blank(&sub);
		if (!*sub.p)
			return val;
		json_decref(val);
	}
	val = json_string(text);
	if (!val)
		perr(ps, 0, "%s: value is not valid UTF-8", ps->key);
	return val;
}

int xlcfg_apply_override(struct domcfg *cfg, const char *assignment,
			 char *err, size_t errlen)
{
	struct parser ps = {
		.name = CMDLINE_NAME, .p = assignment, .cfg = cfg,
		.err = err, .errlen = errlen,
	};
	const char *eq = strchr(assignment, '=');
	enum domcfg_field field;
	size_t len = 0;
	json_t *val;
	int rc;

	while (is_key_char(assignment[len], len == 0))
		len++;
	if (!eq || !len || assignment + len != eq)
		return perr(&ps, 0, "expected KEY=VALUE, got '%s'", assignment);
	rc = lookup_key(&ps, assignment, len, 0, &field);
	if (rc)
		return rc;
	val = override_value(&ps, eq + 1);
	return val ? store(&ps, field, val, 0) : XLCFG_ERR_CONFIG;
}

int xlcfg_load(const char *path, char *const *overrides, int noverrides,
	       struct domcfg *cfg, char *err, size_t errlen)
{
	char *text;
	int i, rc;

	domcfg_init(cfg);
	rc = read_text(path, &text, err, errlen);
	if (rc)
		return rc;
	rc = parse_text(path, text, cfg, err, errlen);
	for (i = 0; !rc && i < noverrides; i++)
		rc = xlcfg_apply_override(cfg, overrides[i], err, errlen);
	if (!rc)
		rc = check_required(cfg, path, count_lines(text), err, errlen);
	if (rc)
		domcfg_free(cfg);
	free(text);
	return rc;
}
