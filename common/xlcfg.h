/* SPDX-License-Identifier: GPL-2.0 */
/*
 * xl.cfg parser: reads a guest config in the syntax of Xen's xl.cfg(5)
 * into a struct domcfg.
 *
 * Syntax: `KEY = VALUE` settings, one per line (or separated by `;`),
 * `#` comments to the end of the line, blank lines.  A VALUE is a
 * "double-quoted" or 'single-quoted' string (escapes \\ \" \' \n \r \t;
 * no newline inside), an integer (decimal with optional sign, or 0x hex;
 * a leading 0 is still decimal) or a list `[ VALUE, ... ]` of strings and
 * integers that may span lines and hold comments (trailing comma allowed).
 * The keys accepting a list are `cmdline`, whose items are joined with
 * spaces, `fw_cfg`, whose items are QEMU -fw_cfg strings
 * (domcfg_fwcfg.h), `disk` and `vif`, whose items are Xen's disk and vif
 * specs (domcfg_disk.h, domcfg_vif.h).  Relative kernel, ramdisk, fw_cfg
 * file and disk target paths are resolved against the config file's
 * directory; fw_cfg files must be readable when the config is parsed,
 * disk targets are not looked at.  See domcfg.h for the keys and their
 * ranges.
 *
 * Errors are reported as "FILE:LINE: reason" (LINE of the key concerned;
 * a reason about one disk or vif names it: "disk[1]: ...");
 * a missing required key is reported at the file's last line (its number
 * of lines, 0 for an empty file).  Overrides are reported as
 * "<command line>: reason".
 */
#ifndef XLCFG_H
#define XLCFG_H

#include <stddef.h>
#include "domcfg.h"

/* Return values; both errors leave the message in err. */
#define XLCFG_OK		0
#define XLCFG_ERR_CONFIG	(-1)	/* invalid config (xl exits 65) */
#define XLCFG_ERR_IO		(-2)	/* file unreadable (xl exits 66) */

/* Largest config file accepted. */
#define XLCFG_FILE_MAX		(1024 * 1024)

/*
 * Parse @text (NUL-terminated); @name is used in messages and its
 * directory (or the working directory if it has none) anchors relative
 * paths.  On success @cfg holds a complete config (free with
 * domcfg_free()); on error it is left initialised and empty.
 */
int xlcfg_parse_buffer(const char *name, const char *text,
		       struct domcfg *cfg, char *err, size_t errlen);

/* Read @path and parse it as above. */
int xlcfg_parse_file(const char *path, struct domcfg *cfg,
		     char *err, size_t errlen);

/*
 * Apply one "KEY=VALUE" command-line override to a parsed config.  VALUE
 * uses the file syntax; text that is not a complete value (e.g. web1 or
 * /boot/k.elf) is taken literally as a string.  Relative paths are
 * resolved against the working directory.  On error @cfg is unchanged.
 */
int xlcfg_apply_override(struct domcfg *cfg, const char *assignment,
			 char *err, size_t errlen);

/*
 * What `xl create CFG KEY=VALUE...` does: parse @path, apply the
 * overrides in order (a later one wins), then check the required keys,
 * so an override may supply a key the file lacks.
 */
int xlcfg_load(const char *path, char *const *overrides, int noverrides,
	       struct domcfg *cfg, char *err, size_t errlen);

#endif /* XLCFG_H */
