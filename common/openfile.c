// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "openfile.h"

/* Bound what a path may add to a message. */
#define PATH_SHOW	"%.300s"

static int refuse(int fd, const char *path, const struct stat *st,
		  off_t max, char *err, size_t errlen)
{
	if (!S_ISREG(st->st_mode)) {
		snprintf(err, errlen, PATH_SHOW ": not a regular file", path);
		errno = EINVAL;
	} else {
		snprintf(err, errlen, PATH_SHOW ": larger than %lld bytes",
			 path, (long long)max);
		errno = EFBIG;
	}
	if (fd >= 0)
		close(fd);
	return -1;
}

static bool acceptable(const struct stat *st, off_t max)
{
	return S_ISREG(st->st_mode) && (!max || st->st_size <= max);
}

int open_regular(const char *path, off_t max, off_t *size, char *err,
		 size_t errlen)
{
	struct stat st;
	int fd, e;

	/* Not even opened when it is plainly not a file (opening a device
	 * can have effects of its own). */
	if (stat(path, &st) == 0 && !acceptable(&st, max))
		return refuse(-1, path, &st, max, err, errlen);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		e = errno;
		snprintf(err, errlen, PATH_SHOW ": %s", path, strerror(e));
		if (fd >= 0)
			close(fd);
		errno = e;
		return -1;
	}
	if (!acceptable(&st, max))	/* replaced after stat() */
		return refuse(fd, path, &st, max, err, errlen);
	if (fcntl(fd, F_SETFL, 0) < 0) {
		e = errno;
		snprintf(err, errlen, PATH_SHOW ": %s", path, strerror(e));
		close(fd);
		errno = e;
		return -1;
	}
	if (size)
		*size = st.st_size;
	return fd;
}
