/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Opening a file named by a client or a config (an image, a payload, a
 * kernel, a stream, a config) without trusting what it is: a FIFO must not
 * block the caller in open() and a device must not be read forever.
 */
#ifndef COMMON_OPENFILE_H
#define COMMON_OPENFILE_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Open @path read-only (O_CLOEXEC) if it is a regular file of at most @max
 * bytes (0: any size).  It is opened O_NONBLOCK | O_NOCTTY, checked with
 * fstat() and then made blocking again; anything else (a FIFO, a device,
 * a socket, a directory) is refused without being read.  Returns the fd
 * with the file's size in *@size (if @size is not NULL), or -1 with
 * "PATH: reason" in @err and errno set (EINVAL: not a regular file,
 * EFBIG: too large).
 *
 * A symbolic link is followed, deliberately (no O_NOFOLLOW): what is
 * checked is the file the fd refers to, by fstat() after the open, so a
 * link swapped in between gains nothing; whoever names the link could
 * name its target directly; and links are what these paths usually are
 * (kernel = "/boot/vmlinuz", an image or payload installed as
 * "current" beside its versions).  Only reading goes through here:
 * `save`, which writes, never follows a link (xen/cmd_state.c).
 */
int open_regular(const char *path, off_t max, off_t *size, char *err,
		 size_t errlen);

#endif
