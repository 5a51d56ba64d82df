// SPDX-License-Identifier: GPL-2.0
/*
 * Boot modules of a domain config (domcfg_module.h): the "PATH ARGS"
 * syntax, the rules an item obeys, and the check of its file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "domcfg.h"
#include "domcfg_module.h"

static const char blanks[] = " \t";

json_t *module_spec_to_json(const char *spec, char *why, size_t whylen)
{
	size_t plen = strcspn(spec, blanks);
	const char *args = spec + plen + strspn(spec + plen, blanks);
	json_t *obj;

	if (!plen) {
		snprintf(why, whylen, "'%.64s' does not start with a path",
			 spec);
		return NULL;
	}
	obj = json_pack("{s:s%, s:s}", "path", spec, plen, "args", args);
	if (!obj)
		snprintf(why, whylen, "not valid UTF-8");
	return obj;
}

int module_file_check(const char *path, char *why, size_t whylen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC), err;

	if (fd < 0 || fstat(fd, &st) < 0) {
		err = errno;
		snprintf(why, whylen, "cannot read %s: %s", path,
			 strerror(err));
		if (fd >= 0)
			close(fd);
		return -err;
	}
	close(fd);
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "%s is not a regular file", path);
		return -EINVAL;
	}
	return 0;
}

static int item_from_object(json_t *obj, struct domcfg_module *out,
			    char *why, size_t whylen)
{
	const char *path, *args, *origin;

	if (domcfg_member_string(obj, "path", &path, why, whylen) ||
	    domcfg_member_string(obj, "args", &args, why, whylen) ||
	    domcfg_member_string(obj, "origin", &origin, why, whylen))
		return -1;
	if (!path || path[0] != '/' || strlen(path) > DOMCFG_PATH_MAX) {
		snprintf(why, whylen, "path must be an absolute path of at "
			 "most %d bytes", DOMCFG_PATH_MAX);
		return -1;
	}
	if (args && strlen(args) > DOMCFG_MODULE_ARGS_MAX) {
		snprintf(why, whylen, "arguments longer than %d bytes",
			 DOMCFG_MODULE_ARGS_MAX);
		return -1;
	}
	if (domcfg_dup_opt(&out->path, path) ||
	    domcfg_dup_opt(&out->args, args ? args : "") ||
	    domcfg_dup_opt(&out->origin, origin)) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	return 0;
}

static int item_from_json(json_t *val, struct domcfg_module *out,
			  char *why, size_t whylen)
{
	json_t *obj;
	int rc;

	if (json_is_object(val))
		return item_from_object(val, out, why, whylen);
	if (!json_is_string(val)) {
		snprintf(why, whylen, "must be an object or a string");
		return -1;
	}
	obj = module_spec_to_json(json_string_value(val), why, whylen);
	if (!obj)
		return -1;
	rc = item_from_object(obj, out, why, whylen);
	json_decref(obj);
	return rc;
}

int domcfg_module_list_from_json(json_t *val, struct domcfg_module **out,
				 unsigned int *nr, char *why, size_t whylen)
{
	size_t n = json_array_size(val), i;
	struct domcfg_module *mods;
	char what[160];

	if (!json_is_array(val) || n > DOMCFG_MODULES_MAX) {
		snprintf(why, whylen, "must be a list of at most %d modules",
			 DOMCFG_MODULES_MAX);
		return -1;
	}
	mods = calloc(n ? n : 1, sizeof(*mods));
	if (!mods) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (item_from_json(json_array_get(val, i), &mods[i], what,
				   sizeof(what)) < 0) {
			snprintf(why, whylen, "[%zu]: %s", i, what);
			domcfg_module_list_free(mods, i + 1);
			return -1;
		}
	}
	*out = mods;
	*nr = n;
	return 0;
}

json_t *domcfg_module_list_to_json(const struct domcfg_module *mods,
				   unsigned int n)
{
	json_t *list = json_array(), *obj;
	unsigned int i;

	for (i = 0; list && i < n; i++) {
		obj = json_pack("{s:s, s:s}", "path", mods[i].path, "args",
				mods[i].args);
		if (obj && mods[i].origin &&
		    json_object_set_new(obj, "origin",
					json_string(mods[i].origin))) {
			json_decref(obj);
			obj = NULL;
		}
		if (json_array_append_new(list, obj)) {
			json_decref(list);
			return NULL;
		}
	}
	return list;
}

int domcfg_module_list_copy(struct domcfg_module **dst,
			    const struct domcfg_module *src, unsigned int n)
{
	unsigned int i;

	*dst = NULL;
	if (!n)
		return 0;
	*dst = calloc(n, sizeof(**dst));
	if (!*dst)
		return -1;
	for (i = 0; i < n; i++) {
		if (domcfg_dup_opt(&(*dst)[i].path, src[i].path) ||
		    domcfg_dup_opt(&(*dst)[i].args, src[i].args) ||
		    domcfg_dup_opt(&(*dst)[i].origin, src[i].origin)) {
			domcfg_module_list_free(*dst, i + 1);
			*dst = NULL;
			return -1;
		}
	}
	return 0;
}

void domcfg_module_list_free(struct domcfg_module *mods, unsigned int n)
{
	while (mods && n--) {
		free(mods[n].path);
		free(mods[n].args);
		free(mods[n].origin);
	}
	free(mods);
}
