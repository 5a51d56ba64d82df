/* The pid file and systemd's notification socket (identity.h). */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "identity.h"

/* Files the daemon makes, whatever the umask it was started with. */
#define PID_FILE_MODE	0600

/*
 * Written beside it and renamed over it, so that a reader (a supervisor,
 * `kill $(cat xen.pid)`) sees the old pid or the new one, never an empty
 * or half-written file, even while a live update moves the daemon.
 */
int pid_file_write(const char *dir)
{
	char path[4096], tmp[4200];
	int fd, ret = 0;

	snprintf(path, sizeof(path), "%s/xen.pid", dir);
	snprintf(tmp, sizeof(tmp), "%s/.xen.pid.%d", dir, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		  PID_FILE_MODE);
	if (fd < 0)
		return -1;
	if (fchmod(fd, PID_FILE_MODE) < 0 || dprintf(fd, "%d\n", getpid()) < 0)
		ret = -1;
	if (close(fd) < 0)
		ret = -1;
	if (ret == 0 && rename(tmp, path) < 0)
		ret = -1;
	if (ret < 0)
		unlink(tmp);
	return ret;
}

int supervisor_notify(const char *msg)
{
	const char *e = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;
	int fd, ret;

	if (!e || !*e)
		return 0;
	if ((e[0] != '/' && e[0] != '@') || strlen(e) >= sizeof(sa.sun_path)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(sa.sun_path, e, strlen(e));
	if (e[0] == '@')		/* an abstract socket */
		sa.sun_path[0] = '\0';
	len = offsetof(struct sockaddr_un, sun_path) + strlen(e);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	ret = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL,
		     (struct sockaddr *)&sa, len) < 0 ? -1 : 0;
	close(fd);
	return ret;
}
