/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The disks of a domain config (the `disk` key), for the virtio-blk
 * devices.
 *
 * In xl.cfg a disk is written in Xen's xl-disk-configuration(5) syntax:
 * comma-separated items, blanks around them ignored,
 *   target=PATH   the image or block device; everything after target=
 *                 (trailing blanks dropped) is the path, commas included,
 *                 so it comes last
 *   format=raw    the only format (qcow, qcow2, vhd, qed... are refused)
 *   vdev=NAME     xvdX, hdX, sdX or vdX, X = a..z, aa..zz, aaa..zzz;
 *                 required; xvda, hda, sda and vda are the same disk
 *   access=rw|w|ro|r      default rw
 *   cache=writeback|none  ours (QEMU's name): none opens with O_DIRECT
 *   serial=TEXT   ours: what virtio-blk reports, 1-20 printable ASCII
 *                 bytes; default the vdev
 * and Xen's positional form, values without '=' filling target, format,
 * vdev and access in that order ("/img,raw,xvda,rw", "/img,,xvda"; an
 * empty value is the default).  Xen's deprecated forms are read too: a
 * target prefixed phy:, file:, aio:, tap:, tap2:, tapdisk:, ioemu: (all
 * dropped) or raw: (the format), after which the next value is the vdev
 * ("phy:/dev/vg/lv,xvda,w"), and vdev:disk.  CD-ROMs (devtype=cdrom,
 * cdrom, hdc:cdrom) and every other Xen option are refused.
 *
 * In the JSON config a disk is an object {"target", "format", "vdev",
 * "access", "cache", "serial", "origin"} or a string in the syntax above;
 * "origin" (optional) says where it was written, e.g.
 * "/etc/xen/guest.cfg:7", for messages.  The target must be absolute
 * there: xl makes a relative one absolute from the config's directory
 * (not /dev as Xen).  Nothing about the file is checked until the
 * domain is built.
 */
#ifndef DOMCFG_DISK_H
#define DOMCFG_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#define DOMCFG_DISK_MAX		16
#define DOMCFG_DISK_SERIAL_MAX	20	/* virtio-blk's ID string */

struct domcfg_disk {
	char *target;		/* absolute path */
	char *vdev;		/* e.g. "xvda" */
	bool readonly;		/* access=ro */
	bool direct;		/* cache=none: O_DIRECT */
	char *serial;		/* never NULL; default the vdev */
	char *origin;		/* "FILE:LINE" or NULL */
};

/* The xl-disk-configuration syntax as a JSON object, or NULL with @why. */
json_t *domcfg_disk_spec_to_json(const char *spec, char *why,
				 size_t whylen);

/*
 * The disk a vdev names, counting from 0 ("xvda", "hda", "sda", "vda"
 * are 0, "xvdz" 25, "xvdaa" 26), or -1 when @vdev is not a disk name.
 */
int domcfg_disk_index(const char *vdev);

/*
 * The `disk` list of the JSON config (objects or strings, at most
 * DOMCFG_DISK_MAX, each vdev naming a different disk) into a new array
 * @out of @nr disks: 0, or -1 with @why; a reason about one disk starts
 * with its index, "[1]: ...".
 */
int domcfg_disk_list_from_json(json_t *list, struct domcfg_disk **out,
			       unsigned int *nr, char *why, size_t whylen);
json_t *domcfg_disk_list_to_json(const struct domcfg_disk *disks,
				 unsigned int nr);
/* 0, or -1 out of memory with *dst NULL. */
int domcfg_disk_list_copy(struct domcfg_disk **dst,
			  const struct domcfg_disk *src, unsigned int nr);
void domcfg_disk_list_free(struct domcfg_disk *disks, unsigned int nr);

#endif
