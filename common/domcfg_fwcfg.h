/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The fw_cfg items of a domain config (the `fw_cfg` key): files and
 * strings the guest reads through QEMU's fw_cfg interface.
 *
 * In xl.cfg an item is written as QEMU's -fw_cfg value,
 * "[name=]NAME,file=PATH" or "[name=]NAME,string=TEXT" (",," is a comma
 * inside a value); in the JSON config it is an object {"name", "file" or
 * "string", "origin"}, where "origin" (optional) says where the item was
 * written, e.g. "/etc/xen/guest.cfg:7", for error messages.  A file is
 * read when the domain is built (created, restarted, restored or taken
 * over by a live update), so it must stay readable while the domain
 * lives, as QEMU's does for migration.
 */
#ifndef DOMCFG_FWCFG_H
#define DOMCFG_FWCFG_H

#include <stddef.h>
#include <jansson.h>

#define DOMCFG_FW_CFG_MAX	32		/* QEMU's file slots */
#define DOMCFG_FW_CFG_NAME_MAX	55		/* bytes, as QEMU */
#define DOMCFG_FW_CFG_FILE_MAX	(16 << 20)	/* bytes of one item */
#define DOMCFG_FW_CFG_STRING_MAX 4095

struct domcfg_fw_cfg {
	char *name;
	char *file;		/* absolute path, or NULL */
	char *string;		/* or the content itself */
	char *origin;		/* "FILE:LINE" or NULL */
};

/* QEMU's -fw_cfg syntax as a JSON object, or NULL with @why. */
json_t *fwcfg_spec_to_json(const char *spec, char *why, size_t whylen);
/*
 * One item of the JSON config (an object, or a string in the -fw_cfg
 * syntax) into @out; 0, or -1 with @why.  @out needs fwcfg_item_free().
 */
int fwcfg_item_from_json(json_t *val, struct domcfg_fw_cfg *out, char *why,
			 size_t whylen);
json_t *fwcfg_item_to_json(const struct domcfg_fw_cfg *it);
int fwcfg_item_copy(struct domcfg_fw_cfg *dst,
		    const struct domcfg_fw_cfg *src);
void fwcfg_item_free(struct domcfg_fw_cfg *it);

/*
 * Whether @path is a regular file of at most DOMCFG_FW_CFG_FILE_MAX bytes
 * that can be opened for reading: 0, or a negative errno with @why
 * ("cannot read PATH: reason", "PATH is larger than N bytes").
 */
int fwcfg_file_check(const char *path, char *why, size_t whylen);
/* The item's content (malloc'd): the file as it is now, or the string. */
int fwcfg_item_load(const struct domcfg_fw_cfg *it, void **data,
		    size_t *len, char *why, size_t whylen);

#endif
