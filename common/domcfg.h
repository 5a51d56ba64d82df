/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Domain configuration: the in-memory form of a guest's config, shared by
 * the xl.cfg parser (xlcfg.c), xl and the daemon's `create` command.
 *
 * Every field is validated by one setter (domcfg_set_field), so a config
 * read from a file and one received as JSON obey exactly the same rules.
 */
#ifndef DOMCFG_H
#define DOMCFG_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include <generated/autoconf.h>

#include "domcfg_disk.h"
#include "domcfg_fwcfg.h"
#include "domcfg_module.h"
#include "domcfg_vif.h"

#define DOMCFG_NAME_MAX		63
#define DOMCFG_MEMORY_MIN	1
#define DOMCFG_MEMORY_MAX	65536
#define DOMCFG_MEMORY_DEFAULT	128
#define DOMCFG_VCPUS_DEFAULT	1
/* The most vCPUs any build allows (Kconfig range, stream records). */
#define DOMCFG_VCPUS_LIMIT	64
/*
 * The most vCPUs this build allows (Kconfig MAX_VCPUS): the one bound
 * xl's parser and the daemon both check, so xl refuses with FILE:LINE
 * what the daemon would refuse.
 */
#ifdef CONFIG_MAX_VCPUS
#define DOMCFG_VCPUS_MAX	CONFIG_MAX_VCPUS
#else
#define DOMCFG_VCPUS_MAX	DOMCFG_VCPUS_LIMIT
#endif
#define DOMCFG_CMDLINE_MAX	4095
#define DOMCFG_PATH_MAX		4095

enum domcfg_action {
	DOMCFG_ACTION_DESTROY,
	DOMCFG_ACTION_RESTART,
	DOMCFG_ACTION_PRESERVE,
	DOMCFG_ACTION_RENAME_RESTART,
};

struct domcfg {
	char name[DOMCFG_NAME_MAX + 1];	/* "" until set */
	unsigned int memory_mib;
	unsigned int vcpus;
	char *kernel;			/* absolute path, NULL until set */
	char *ramdisk;			/* absolute path or NULL */
	unsigned int nr_modules;
	struct domcfg_module *modules;	/* multiboot modules after it */
	char *cmdline;			/* NULL when not given */
	enum domcfg_action on_poweroff;
	enum domcfg_action on_reboot;
	enum domcfg_action on_crash;
	bool strict_io;			/* unclaimed port/MMIO: crash */
	unsigned int nr_fw_cfg;
	struct domcfg_fw_cfg *fw_cfg;	/* names unique */
	unsigned int nr_disks;
	struct domcfg_disk *disks;	/* each vdev a different disk */
	unsigned int nr_vifs;
	struct domcfg_vif *vifs;	/* vifnames and MACs unique */
	bool rng;			/* a virtio-rng device */
};

/* Fields, in the order domcfg_field_name() and domcfg_to_json() use. */
enum domcfg_field {
	DOMCFG_F_NAME,
	DOMCFG_F_MEMORY,
	DOMCFG_F_VCPUS,
	DOMCFG_F_KERNEL,
	DOMCFG_F_RAMDISK,
	DOMCFG_F_MODULES,
	DOMCFG_F_CMDLINE,
	DOMCFG_F_ON_POWEROFF,
	DOMCFG_F_ON_REBOOT,
	DOMCFG_F_ON_CRASH,
	DOMCFG_F_STRICT_IO,
	DOMCFG_F_FW_CFG,
	DOMCFG_F_DISK,
	DOMCFG_F_VIF,
	DOMCFG_F_RNG,
	DOMCFG_NR_FIELDS,
};

/* 1-63 characters of [A-Za-z0-9_.-]. */
bool domcfg_valid_name(const char *name);

/* Fills in the defaults; name and kernel are left unset. */
void domcfg_init(struct domcfg *cfg);
/* Frees the strings and re-initialises @cfg. */
void domcfg_free(struct domcfg *cfg);
/* Deep copy into @dst (which is overwritten).  0, or -1 out of memory. */
int domcfg_copy(struct domcfg *dst, const struct domcfg *src);

/* "destroy", "restart", "preserve", "rename-restart". */
const char *domcfg_action_name(enum domcfg_action action);
/*
 * 0 and *out set; -1 when @name is no action; -2 when it is a Xen action
 * this hypervisor does not implement (coredump-*, soft-reset).
 */
int domcfg_action_from_name(const char *name, enum domcfg_action *out);

/* Field index of @key, or -1 when it is not a config key. */
int domcfg_field_index(const char *key);
const char *domcfg_field_name(enum domcfg_field field);
bool domcfg_field_required(enum domcfg_field field);
/* Whether the field has been given a value (meaningful for required ones) */
bool domcfg_field_is_set(const struct domcfg *cfg, enum domcfg_field field);

/*
 * Validate @val and store it in @cfg.  On error @cfg is unchanged, -1 is
 * returned and @why holds the reason without the key (e.g. "must be an
 * integer between 1 and 65536").  vcpus may be at most DOMCFG_VCPUS_MAX.
 * Strings must be JSON strings without NUL bytes, integers JSON integers;
 * kernel and ramdisk must be absolute paths; an empty ramdisk means none.
 * A reason about one item of a list starts with its index, "[1]: ...",
 * and is written right after the key: "disk[1]: ..." (see
 * domcfg_reason_sep()).
 */
int domcfg_set_field(struct domcfg *cfg, enum domcfg_field field,
		     json_t *val, char *why, size_t whylen);

/*
 * The `create` command's config object.  Unknown members are ignored, a
 * null member counts as absent.
 * Returns 0, or -1 with a message like "config.memory: must be an integer
 * between 1 and 65536" in @err; @out is always left initialised (free it
 * with domcfg_free()).
 */
int domcfg_from_json(json_t *obj, struct domcfg *out, char *err,
		     size_t errlen);
/* A new object with every field; unset strings (e.g. no ramdisk) are null. */
json_t *domcfg_to_json(const struct domcfg *cfg);

/* What goes between a key and a setter's reason: "" before "[1]: ...". */
static inline const char *domcfg_reason_sep(const char *why)
{
	return why[0] == '[' ? "" : ": ";
}

/* Helpers of the list items' files (domcfg_fwcfg.c, _disk.c, _vif.c). */

/*
 * Member @key of @obj as a string without NUL bytes, *out NULL when it is
 * absent or null: 0, or -1 with @why ("KEY must be a string without NUL
 * bytes").
 */
int domcfg_member_string(json_t *obj, const char *key, const char **out,
			 char *why, size_t whylen);
/* *dst = a copy of @src, or NULL for NULL: 0, or -1 out of memory. */
int domcfg_dup_opt(char **dst, const char *src);

#endif /* DOMCFG_H */
