/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The boot modules of a domain config (the `modules` key): files a
 * multiboot loader puts into guest RAM next to the kernel, each with its
 * string, after the `ramdisk` (which is module 0 when it is given).
 *
 * In xl.cfg an item is written as GRUB's `module` line and QEMU's -initrd
 * items are, "PATH ARGS...": the path up to the first blank, the
 * arguments after the blanks that follow it.  In the JSON config it is an
 * object {"path", "args", "origin"}, where "origin" (optional) says where
 * the item was written, e.g. "/etc/xen/guest.cfg:7", for error messages.
 * The guest gets the string "PATH ARGS" (just "PATH" without arguments),
 * PATH being the absolute path.  A file is read when the domain is built
 * (created or restarted), so it must stay readable while the domain lives.
 */
#ifndef DOMCFG_MODULE_H
#define DOMCFG_MODULE_H

#include <stddef.h>
#include <jansson.h>

#define DOMCFG_MODULES_MAX	32
#define DOMCFG_MODULE_ARGS_MAX	4095

struct domcfg_module {
	char *path;		/* absolute */
	char *args;		/* "" when none */
	char *origin;		/* "FILE:LINE" or NULL */
};

/* "PATH ARGS" as a JSON object {"path", "args"}, or NULL with @why. */
json_t *module_spec_to_json(const char *spec, char *why, size_t whylen);
/*
 * Whether @path is a regular file that can be opened for reading: 0, or a
 * negative errno with @why ("cannot read PATH: reason", "PATH is not a
 * regular file").
 */
int module_file_check(const char *path, char *why, size_t whylen);

/* The list of the JSON config (objects or strings): 0, or -1 with @why. */
int domcfg_module_list_from_json(json_t *val, struct domcfg_module **out,
				 unsigned int *n, char *why, size_t whylen);
json_t *domcfg_module_list_to_json(const struct domcfg_module *mods,
				   unsigned int n);
int domcfg_module_list_copy(struct domcfg_module **dst,
			    const struct domcfg_module *src, unsigned int n);
void domcfg_module_list_free(struct domcfg_module *mods, unsigned int n);

#endif
