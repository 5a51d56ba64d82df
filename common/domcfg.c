// SPDX-License-Identifier: GPL-2.0
/*
 * Domain configuration: defaults, validation of each field, and the JSON
 * form used by the `create` command of the control API.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "domcfg.h"

typedef int (*field_setter)(struct domcfg *cfg, enum domcfg_field field,
			    json_t *val, char *why, size_t whylen);

struct field_desc {
	const char *name;
	bool required;
	field_setter set;
};

static const char *const action_names[] = {
	[DOMCFG_ACTION_DESTROY]		= "destroy",
	[DOMCFG_ACTION_RESTART]		= "restart",
	[DOMCFG_ACTION_PRESERVE]	= "preserve",
	[DOMCFG_ACTION_RENAME_RESTART]	= "rename-restart",
};

/* Xen's xl.cfg accepts these; we recognise them to say so clearly. */
static const char *const xen_only_actions[] = {
	"coredump-destroy", "coredump-restart", "soft-reset",
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

void domcfg_init(struct domcfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->memory_mib = DOMCFG_MEMORY_DEFAULT;
	cfg->vcpus = DOMCFG_VCPUS_DEFAULT;
	cfg->on_poweroff = DOMCFG_ACTION_DESTROY;
	cfg->on_reboot = DOMCFG_ACTION_RESTART;
	cfg->on_crash = DOMCFG_ACTION_DESTROY;
	cfg->rng = true;
}

static void free_fw_cfg(struct domcfg_fw_cfg *items, unsigned int n)
{
	while (n)
		fwcfg_item_free(&items[--n]);
	free(items);
}

void domcfg_free(struct domcfg *cfg)
{
	free(cfg->kernel);
	free(cfg->ramdisk);
	free(cfg->cmdline);
	domcfg_module_list_free(cfg->modules, cfg->nr_modules);
	free_fw_cfg(cfg->fw_cfg, cfg->nr_fw_cfg);
	domcfg_disk_list_free(cfg->disks, cfg->nr_disks);
	domcfg_vif_list_free(cfg->vifs, cfg->nr_vifs);
	domcfg_init(cfg);
}

static int copy_fw_cfg(struct domcfg *dst, const struct domcfg *src)
{
	unsigned int i;

	if (!src->nr_fw_cfg)
		return 0;
	dst->fw_cfg = calloc(src->nr_fw_cfg, sizeof(*dst->fw_cfg));
	if (!dst->fw_cfg)
		return -1;
	for (i = 0; i < src->nr_fw_cfg; i++, dst->nr_fw_cfg++)
		if (fwcfg_item_copy(&dst->fw_cfg[i], &src->fw_cfg[i]) < 0)
			return -1;
	return 0;
}

static int copy_lists(struct domcfg *dst, const struct domcfg *src)
{
	if (copy_fw_cfg(dst, src) ||
	    domcfg_disk_list_copy(&dst->disks, src->disks, src->nr_disks))
		return -1;
	dst->nr_disks = src->nr_disks;
	if (domcfg_vif_list_copy(&dst->vifs, src->vifs, src->nr_vifs))
		return -1;
	dst->nr_vifs = src->nr_vifs;
	if (domcfg_module_list_copy(&dst->modules, src->modules,
				    src->nr_modules))
		return -1;
	dst->nr_modules = src->nr_modules;
	return 0;
}

int domcfg_dup_opt(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -1;
}

int domcfg_copy(struct domcfg *dst, const struct domcfg *src)
{
	*dst = *src;
	/* Nothing of @src's may be freed with @dst on the way out. */
	dst->kernel = dst->ramdisk = dst->cmdline = NULL;
	dst->fw_cfg = NULL;
	dst->nr_fw_cfg = 0;
	dst->disks = NULL;
	dst->nr_disks = 0;
	dst->vifs = NULL;
	dst->nr_vifs = 0;
	dst->modules = NULL;
	dst->nr_modules = 0;
	if (domcfg_dup_opt(&dst->kernel, src->kernel) ||
	    domcfg_dup_opt(&dst->ramdisk, src->ramdisk) ||
	    domcfg_dup_opt(&dst->cmdline, src->cmdline) ||
	    copy_lists(dst, src)) {
		domcfg_free(dst);
		return -1;
	}
	return 0;
}

const char *domcfg_action_name(enum domcfg_action action)
{
	if ((unsigned int)action >= ARRAY_SIZE(action_names))
		return "?";
	return action_names[action];
}

int domcfg_action_from_name(const char *name, enum domcfg_action *out)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(action_names); i++) {
		if (!strcmp(name, action_names[i])) {
			*out = (enum domcfg_action)i;
			return 0;
		}
	}
	for (i = 0; i < ARRAY_SIZE(xen_only_actions); i++)
		if (!strcmp(name, xen_only_actions[i]))
			return -2;
	return -1;
}

/* ------------------------------------------------------------ setters */

/* A JSON string without NUL bytes, or NULL with @why filled in. */
static const char *get_string(json_t *val, char *why, size_t whylen)
{
	const char *s;

	if (!json_is_string(val)) {
		snprintf(why, whylen, "must be a string");
		return NULL;
	}
	s = json_string_value(val);
	if (strlen(s) != json_string_length(val)) {
		snprintf(why, whylen, "must not contain NUL bytes");
		return NULL;
	}
	return s;
}

int domcfg_member_string(json_t *obj, const char *key, const char **out,
			 char *why, size_t whylen)
{
	json_t *v = json_object_get(obj, key);

	*out = NULL;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		snprintf(why, whylen, "%s must be a string without NUL bytes",
			 key);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

bool domcfg_valid_name(const char *s)
{
	size_t len = strlen(s);

	if (len < 1 || len > DOMCFG_NAME_MAX)
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz"
			 "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789_.-") == len;
}

static int set_name(struct domcfg *cfg, enum domcfg_field field,
		    json_t *val, char *why, size_t whylen)
{
	const char *s = get_string(val, why, whylen);

	if (!s)
		return -1;
	if (!domcfg_valid_name(s)) {
		snprintf(why, whylen,
			 "must be 1-%d characters of [A-Za-z0-9_.-]",
			 DOMCFG_NAME_MAX);
		return -1;
	}
	strcpy(cfg->name, s);
	return 0;
}

static int get_uint(json_t *val, unsigned int min, unsigned int max,
		    unsigned int *out, char *why, size_t whylen)
{
	json_int_t v;

	if (!json_is_integer(val))
		goto bad;
	v = json_integer_value(val);
	if (v < min || v > max)
		goto bad;
	*out = (unsigned int)v;
	return 0;
bad:
	snprintf(why, whylen, "must be an integer between %u and %u",
		 min, max);
	return -1;
}

static int set_memory(struct domcfg *cfg, enum domcfg_field field,
		      json_t *val, char *why, size_t whylen)
{
	return get_uint(val, DOMCFG_MEMORY_MIN, DOMCFG_MEMORY_MAX,
			&cfg->memory_mib, why, whylen);
}

static int set_vcpus(struct domcfg *cfg, enum domcfg_field field,
		     json_t *val, char *why, size_t whylen)
{
	return get_uint(val, 1, DOMCFG_VCPUS_MAX, &cfg->vcpus, why, whylen);
}

static int replace_string(char **slot, const char *s, char *why,
			  size_t whylen)
{
	char *copy = NULL;

	if (s) {
		copy = strdup(s);
		if (!copy) {
			snprintf(why, whylen, "out of memory");
			return -1;
		}
	}
	free(*slot);
	*slot = copy;
	return 0;
}

static char **path_slot(struct domcfg *cfg, enum domcfg_field field)
{
	return field == DOMCFG_F_KERNEL ? &cfg->kernel : &cfg->ramdisk;
}

static int set_path(struct domcfg *cfg, enum domcfg_field field,
		    json_t *val, char *why, size_t whylen)
{
	const char *s = get_string(val, why, whylen);

	if (!s)
		return -1;
	if (!*s && field == DOMCFG_F_RAMDISK)
		return replace_string(path_slot(cfg, field), NULL, why, whylen);
	if (s[0] != '/') {
		snprintf(why, whylen, "must be an absolute path");
		return -1;
	}
	if (strlen(s) > DOMCFG_PATH_MAX) {
		snprintf(why, whylen, "is longer than %d bytes",
			 DOMCFG_PATH_MAX);
		return -1;
	}
	return replace_string(path_slot(cfg, field), s, why, whylen);
}

static int set_cmdline(struct domcfg *cfg, enum domcfg_field field,
		       json_t *val, char *why, size_t whylen)
{
	const char *s = get_string(val, why, whylen);

	if (!s)
		return -1;
	if (strlen(s) > DOMCFG_CMDLINE_MAX) {
		snprintf(why, whylen, "is longer than %d bytes",
			 DOMCFG_CMDLINE_MAX);
		return -1;
	}
	return replace_string(&cfg->cmdline, s, why, whylen);
}

static enum domcfg_action *action_slot(struct domcfg *cfg,
				       enum domcfg_field field)
{
	if (field == DOMCFG_F_ON_POWEROFF)
		return &cfg->on_poweroff;
	if (field == DOMCFG_F_ON_REBOOT)
		return &cfg->on_reboot;
	return &cfg->on_crash;
}

static int set_action(struct domcfg *cfg, enum domcfg_field field,
		      json_t *val, char *why, size_t whylen)
{
	const char *s = get_string(val, why, whylen);
	int rc;

	if (!s)
		return -1;
	rc = domcfg_action_from_name(s, action_slot(cfg, field));
	if (rc == -2)
		snprintf(why, whylen,
			 "'%s' is not supported by this hypervisor", s);
	else if (rc)
		snprintf(why, whylen, "must be one of destroy, restart, "
			 "preserve, rename-restart");
	return rc ? -1 : 0;
}

static bool *bool_slot(struct domcfg *cfg, enum domcfg_field field)
{
	return field == DOMCFG_F_RNG ? &cfg->rng : &cfg->strict_io;
}

/* xl.cfg's 0 or 1, or a JSON boolean. */
static int set_bool(struct domcfg *cfg, enum domcfg_field field,
		    json_t *val, char *why, size_t whylen)
{
	unsigned int v;

	if (json_is_boolean(val)) {
		*bool_slot(cfg, field) = json_is_true(val);
		return 0;
	}
	if (get_uint(val, 0, 1, &v, why, whylen) < 0) {
		snprintf(why, whylen, "must be 0 or 1");
		return -1;
	}
	*bool_slot(cfg, field) = v;
	return 0;
}

/* Item @i of the fw_cfg list into @it, its name not yet in @items. */
static int fw_cfg_item(json_t *val, size_t i, struct domcfg_fw_cfg *items,
		       struct domcfg_fw_cfg *it, char *why, size_t whylen)
{
	char what[160];
	size_t j;

	if (fwcfg_item_from_json(val, it, what, sizeof(what)) < 0) {
		snprintf(why, whylen, "item %zu: %s", i + 1, what);
		return -1;
	}
	for (j = 0; j < i; j++) {
		if (!strcmp(items[j].name, it->name)) {
			snprintf(why, whylen, "item %zu: %s: duplicate name",
				 i + 1, it->name);
			fwcfg_item_free(it);
			return -1;
		}
	}
	return 0;
}

static int set_fw_cfg(struct domcfg *cfg, enum domcfg_field field,
		      json_t *val, char *why, size_t whylen)
{
	size_t n = json_array_size(val), i;
	struct domcfg_fw_cfg *items;

	if (!json_is_array(val) || n > DOMCFG_FW_CFG_MAX) {
		snprintf(why, whylen, "must be a list of at most %d items",
			 DOMCFG_FW_CFG_MAX);
		return -1;
	}
#ifndef CONFIG_DEV_FW_CFG
	if (n) {
		snprintf(why, whylen, "this build has no fw_cfg device "
			 "(CONFIG_DEV_FW_CFG)");
		return -1;
	}
#endif
	items = calloc(n ? n : 1, sizeof(*items));
	if (!items) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (fw_cfg_item(json_array_get(val, i), i, items, &items[i],
				why, whylen) < 0) {
			free_fw_cfg(items, i);
			return -1;
		}
	}
	free_fw_cfg(cfg->fw_cfg, cfg->nr_fw_cfg);
	cfg->fw_cfg = items;
	cfg->nr_fw_cfg = n;
	return 0;
}

static int set_disk(struct domcfg *cfg, enum domcfg_field field,
		    json_t *val, char *why, size_t whylen)
{
	struct domcfg_disk *disks;
	unsigned int n;

	if (domcfg_disk_list_from_json(val, &disks, &n, why, whylen) < 0)
		return -1;
	domcfg_disk_list_free(cfg->disks, cfg->nr_disks);
	cfg->disks = disks;
	cfg->nr_disks = n;
	return 0;
}

static int set_vif(struct domcfg *cfg, enum domcfg_field field,
		   json_t *val, char *why, size_t whylen)
{
	struct domcfg_vif *vifs;
	unsigned int n;

	if (domcfg_vif_list_from_json(val, &vifs, &n, why, whylen) < 0)
		return -1;
	domcfg_vif_list_free(cfg->vifs, cfg->nr_vifs);
	cfg->vifs = vifs;
	cfg->nr_vifs = n;
	return 0;
}

static int set_modules(struct domcfg *cfg, enum domcfg_field field,
		       json_t *val, char *why, size_t whylen)
{
	struct domcfg_module *mods;
	unsigned int n;

	if (domcfg_module_list_from_json(val, &mods, &n, why, whylen) < 0)
		return -1;
	domcfg_module_list_free(cfg->modules, cfg->nr_modules);
	cfg->modules = mods;
	cfg->nr_modules = n;
	return 0;
}

static const struct field_desc fields[DOMCFG_NR_FIELDS] = {
	[DOMCFG_F_NAME]		= { "name", true, set_name },
	[DOMCFG_F_MEMORY]	= { "memory", false, set_memory },
	[DOMCFG_F_VCPUS]	= { "vcpus", false, set_vcpus },
	[DOMCFG_F_KERNEL]	= { "kernel", true, set_path },
	[DOMCFG_F_RAMDISK]	= { "ramdisk", false, set_path },
	[DOMCFG_F_MODULES]	= { "modules", false, set_modules },
	[DOMCFG_F_CMDLINE]	= { "cmdline", false, set_cmdline },
	[DOMCFG_F_ON_POWEROFF]	= { "on_poweroff", false, set_action },
	[DOMCFG_F_ON_REBOOT]	= { "on_reboot", false, set_action },
	[DOMCFG_F_ON_CRASH]	= { "on_crash", false, set_action },
	[DOMCFG_F_STRICT_IO]	= { "strict_io", false, set_bool },
	[DOMCFG_F_FW_CFG]	= { "fw_cfg", false, set_fw_cfg },
	[DOMCFG_F_DISK]		= { "disk", false, set_disk },
	[DOMCFG_F_VIF]		= { "vif", false, set_vif },
	[DOMCFG_F_RNG]		= { "rng", false, set_bool },
};

/* ------------------------------------------------------------ fields */

int domcfg_field_index(const char *key)
{
	int i;

	for (i = 0; i < DOMCFG_NR_FIELDS; i++)
		if (!strcmp(key, fields[i].name))
			return i;
	return -1;
}

const char *domcfg_field_name(enum domcfg_field field)
{
	if ((unsigned int)field >= DOMCFG_NR_FIELDS)
		return "?";
	return fields[field].name;
}

bool domcfg_field_required(enum domcfg_field field)
{
	return (unsigned int)field < DOMCFG_NR_FIELDS &&
	       fields[field].required;
}

bool domcfg_field_is_set(const struct domcfg *cfg, enum domcfg_field field)
{
	switch (field) {
	case DOMCFG_F_NAME:
		return cfg->name[0] != '\0';
	case DOMCFG_F_KERNEL:
		return cfg->kernel != NULL;
	case DOMCFG_F_RAMDISK:
		return cfg->ramdisk != NULL;
	case DOMCFG_F_CMDLINE:
		return cfg->cmdline != NULL;
	default:
		return true;	/* has a default */
	}
}

int domcfg_set_field(struct domcfg *cfg, enum domcfg_field field,
		     json_t *val, char *why, size_t whylen)
{
	if ((unsigned int)field >= DOMCFG_NR_FIELDS) {
		snprintf(why, whylen, "unknown field");
		return -1;
	}
	return fields[field].set(cfg, field, val, why, whylen);
}

/* ------------------------------------------------------------ JSON */

int domcfg_from_json(json_t *obj, struct domcfg *out, char *err,
		     size_t errlen)
{
	char why[160];
	json_t *val;
	int f;

	domcfg_init(out);
	if (!json_is_object(obj)) {
		snprintf(err, errlen, "config: must be an object");
		return -1;
	}
	for (f = 0; f < DOMCFG_NR_FIELDS; f++) {
		val = json_object_get(obj, fields[f].name);
		if (!val || json_is_null(val)) {
			if (!fields[f].required)
				continue;
			snprintf(err, errlen,
				 "config.%s: required field missing",
				 fields[f].name);
			goto fail;
		}
		if (domcfg_set_field(out, f, val, why, sizeof(why))) {
			snprintf(err, errlen, "config.%s%s%s",
				 fields[f].name, domcfg_reason_sep(why), why);
			goto fail;
		}
	}
	return 0;
fail:
	domcfg_free(out);
	return -1;
}

static int set_new(json_t *obj, enum domcfg_field field, json_t *val)
{
	return json_object_set_new(obj, fields[field].name, val);
}

/* Unset strings are null, which domcfg_from_json() reads as absent. */
static int set_opt_string(json_t *obj, enum domcfg_field field,
			  const char *s)
{
	return set_new(obj, field, s ? json_string(s) : json_null());
}

static json_t *fw_cfg_to_json(const struct domcfg *cfg)
{
	json_t *list = json_array();
	unsigned int i;

	for (i = 0; list && i < cfg->nr_fw_cfg; i++) {
		json_t *item = fwcfg_item_to_json(&cfg->fw_cfg[i]);

		if (json_array_append_new(list, item)) {
			json_decref(list);
			return NULL;
		}
	}
	return list;
}

json_t *domcfg_to_json(const struct domcfg *cfg)
{
	json_t *obj = json_object();
	int rc = 0;

	if (!obj)
		return NULL;
	rc |= set_opt_string(obj, DOMCFG_F_NAME,
			     cfg->name[0] ? cfg->name : NULL);
	rc |= set_new(obj, DOMCFG_F_MEMORY, json_integer(cfg->memory_mib));
	rc |= set_new(obj, DOMCFG_F_VCPUS, json_integer(cfg->vcpus));
	rc |= set_opt_string(obj, DOMCFG_F_KERNEL, cfg->kernel);
	rc |= set_opt_string(obj, DOMCFG_F_RAMDISK, cfg->ramdisk);
	rc |= set_new(obj, DOMCFG_F_MODULES,
		      domcfg_module_list_to_json(cfg->modules,
						 cfg->nr_modules));
	rc |= set_opt_string(obj, DOMCFG_F_CMDLINE, cfg->cmdline);
	rc |= set_new(obj, DOMCFG_F_ON_POWEROFF,
		      json_string(domcfg_action_name(cfg->on_poweroff)));
	rc |= set_new(obj, DOMCFG_F_ON_REBOOT,
		      json_string(domcfg_action_name(cfg->on_reboot)));
	rc |= set_new(obj, DOMCFG_F_ON_CRASH,
		      json_string(domcfg_action_name(cfg->on_crash)));
	rc |= set_new(obj, DOMCFG_F_STRICT_IO, json_boolean(cfg->strict_io));
	rc |= set_new(obj, DOMCFG_F_FW_CFG, fw_cfg_to_json(cfg));
	rc |= set_new(obj, DOMCFG_F_DISK,
		      domcfg_disk_list_to_json(cfg->disks, cfg->nr_disks));
	rc |= set_new(obj, DOMCFG_F_VIF,
		      domcfg_vif_list_to_json(cfg->vifs, cfg->nr_vifs));
	rc |= set_new(obj, DOMCFG_F_RNG, json_boolean(cfg->rng));
	if (rc) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}
