// SPDX-License-Identifier: GPL-2.0
/*
 * fw_cfg items of a domain config (domcfg_fwcfg.h): QEMU's -fw_cfg
 * syntax, the rules an item obeys, and reading its content.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "domcfg.h"
#include "domcfg_fwcfg.h"

/* ------------------------------------------------------------ syntax */

/* The next comma-separated token of *p (",," is a comma), malloc'd. */
static char *next_token(const char **p)
{
	const char *s = *p;
	char *out = malloc(strlen(s) + 1), *o = out;

	if (!out)
		return NULL;
	while (*s) {
		if (*s == ',' && *++s != ',')
			break;
		*o++ = *s++;
	}
	*o = '\0';
	*p = s;
	return out;
}

static const char *const spec_keys[] = { "name", "file", "string" };

/* KEY=VALUE (or a bare NAME first) into @obj. */
static int spec_option(json_t *obj, char *tok, bool first, char *why,
		       size_t whylen)
{
	char *eq = strchr(tok, '=');
	const char *key = "name", *val = tok;
	size_t i;

	if (eq) {
		*eq = '\0';
		key = tok;
		val = eq + 1;
	} else if (!first) {
		snprintf(why, whylen, "'%s' is not KEY=VALUE", tok);
		return -1;
	}
	for (i = 0; i < sizeof(spec_keys) / sizeof(spec_keys[0]); i++)
		if (!strcmp(key, spec_keys[i]))
			break;
	if (i == sizeof(spec_keys) / sizeof(spec_keys[0])) {
		snprintf(why, whylen, "unknown option '%.32s' (name, file and "
			 "string are supported)", key);
		return -1;
	}
	if (json_object_get(obj, key)) {
		snprintf(why, whylen, "option '%s' given twice", key);
		return -1;
	}
	if (json_object_set_new(obj, key, json_string(val)) < 0) {
		snprintf(why, whylen, "'%s' is not valid UTF-8", key);
		return -1;
	}
	return 0;
}

json_t *fwcfg_spec_to_json(const char *spec, char *why, size_t whylen)
{
	json_t *obj = json_object();
	bool first = true;
	char *tok;
	int rc = 0;

	if (!obj) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	while (!rc && (first || *spec)) {
		tok = next_token(&spec);
		if (!tok) {
			snprintf(why, whylen, "out of memory");
			rc = -1;
		} else if (!*tok) {
			snprintf(why, whylen, "empty option in '%.64s'",
				 spec);
			rc = -1;
		} else {
			rc = spec_option(obj, tok, first, why, whylen);
		}
		free(tok);
		first = false;
	}
	if (rc) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

/* ------------------------------------------------------------ rules */

static bool valid_name(const char *s)
{
	size_t len = strlen(s), i;

	if (len < 1 || len > DOMCFG_FW_CFG_NAME_MAX)
		return false;
	for (i = 0; i < len; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return false;
	return true;
}

static int check_content(const char *name, const char *file,
			 const char *string, char *why, size_t whylen)
{
	if (!file == !string) {
		snprintf(why, whylen, "%s: needs either file= or string=",
			 name);
		return -1;
	}
	if (file && (file[0] != '/' || strlen(file) > DOMCFG_PATH_MAX)) {
		snprintf(why, whylen, "%s: file must be an absolute path of "
			 "at most %d bytes", name, DOMCFG_PATH_MAX);
		return -1;
	}
	if (string && strlen(string) > DOMCFG_FW_CFG_STRING_MAX) {
		snprintf(why, whylen, "%s: string is longer than %d bytes",
			 name, DOMCFG_FW_CFG_STRING_MAX);
		return -1;
	}
	return 0;
}

static int item_from_object(json_t *obj, struct domcfg_fw_cfg *out,
			    char *why, size_t whylen)
{
	const char *name, *file, *string, *origin;

	if (domcfg_member_string(obj, "name", &name, why, whylen) ||
	    domcfg_member_string(obj, "file", &file, why, whylen) ||
	    domcfg_member_string(obj, "string", &string, why, whylen) ||
	    domcfg_member_string(obj, "origin", &origin, why, whylen))
		return -1;
	if (!name || !valid_name(name)) {
		snprintf(why, whylen, "name must be 1-%d printable ASCII "
			 "characters without spaces", DOMCFG_FW_CFG_NAME_MAX);
		return -1;
	}
	if (check_content(name, file, string, why, whylen) < 0)
		return -1;
	if (domcfg_dup_opt(&out->name, name) ||
	    domcfg_dup_opt(&out->file, file) ||
	    domcfg_dup_opt(&out->string, string) ||
	    domcfg_dup_opt(&out->origin, origin)) {
		fwcfg_item_free(out);
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	return 0;
}

int fwcfg_item_from_json(json_t *val, struct domcfg_fw_cfg *out, char *why,
			 size_t whylen)
{
	json_t *obj;
	int rc;

	memset(out, 0, sizeof(*out));
	if (json_is_object(val))
		return item_from_object(val, out, why, whylen);
	if (!json_is_string(val)) {
		snprintf(why, whylen, "must be an object or a string");
		return -1;
	}
	obj = fwcfg_spec_to_json(json_string_value(val), why, whylen);
	if (!obj)
		return -1;
	rc = item_from_object(obj, out, why, whylen);
	json_decref(obj);
	return rc;
}

json_t *fwcfg_item_to_json(const struct domcfg_fw_cfg *it)
{
	json_t *obj = json_pack("{s:s}", "name", it->name);
	int rc = 0;

	if (!obj)
		return NULL;
	if (it->file)
		rc |= json_object_set_new(obj, "file", json_string(it->file));
	if (it->string)
		rc |= json_object_set_new(obj, "string",
					  json_string(it->string));
	if (it->origin)
		rc |= json_object_set_new(obj, "origin",
					  json_string(it->origin));
	if (rc) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

int fwcfg_item_copy(struct domcfg_fw_cfg *dst,
		    const struct domcfg_fw_cfg *src)
{
	memset(dst, 0, sizeof(*dst));
	if (domcfg_dup_opt(&dst->name, src->name) ||
	    domcfg_dup_opt(&dst->file, src->file) ||
	    domcfg_dup_opt(&dst->string, src->string) ||
	    domcfg_dup_opt(&dst->origin, src->origin)) {
		fwcfg_item_free(dst);
		return -1;
	}
	return 0;
}

void fwcfg_item_free(struct domcfg_fw_cfg *it)
{
	free(it->name);
	free(it->file);
	free(it->string);
	free(it->origin);
	memset(it, 0, sizeof(*it));
}

/* ------------------------------------------------------------ content */

/* @path opened for reading, a regular file not too big for an item. */
static int open_file(const char *path, int *fd, size_t *size, char *why,
		     size_t whylen)
{
	struct stat st;
	int err;

	*fd = open(path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0 || fstat(*fd, &st) < 0) {
		err = errno;
		snprintf(why, whylen, "cannot read %s: %s", path,
			 strerror(err));
		goto fail;
	}
	err = EINVAL;
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "%s is not a regular file", path);
		goto fail;
	}
	if (st.st_size > DOMCFG_FW_CFG_FILE_MAX) {
		snprintf(why, whylen, "%s is larger than %d bytes", path,
			 DOMCFG_FW_CFG_FILE_MAX);
		goto fail;
	}
	*size = st.st_size;
	return 0;
fail:
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
	return -err;
}

int fwcfg_file_check(const char *path, char *why, size_t whylen)
{
	size_t size;
	int fd, rc = open_file(path, &fd, &size, why, whylen);

	if (!rc)
		close(fd);
	return rc;
}

static int read_all(int fd, uint8_t *buf, size_t size, size_t *len)
{
	ssize_t n;

	for (*len = 0; *len < size; *len += n) {
		n = read(fd, buf + *len, size - *len);
		if (n < 0 && errno == EINTR)
			n = 0;
		else if (n < 0)
			return -errno;
		else if (n == 0)
			break;		/* it shrank: what is there */
	}
	return 0;
}

int fwcfg_item_load(const struct domcfg_fw_cfg *it, void **data,
		    size_t *len, char *why, size_t whylen)
{
	size_t size;
	int fd, rc;

	*data = NULL;
	*len = 0;
	if (it->string) {
		*len = strlen(it->string);
		*data = strdup(it->string);
		return *data ? 0 : -ENOMEM;
	}
	rc = open_file(it->file, &fd, &size, why, whylen);
	if (rc)
		return rc;
	*data = malloc(size ? size : 1);
	rc = *data ? read_all(fd, *data, size, len) : -ENOMEM;
	if (rc) {
		snprintf(why, whylen, "cannot read %s: %s", it->file,
			 strerror(-rc));
		free(*data);
		*data = NULL;
	}
	close(fd);
	return rc;
}
