#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <generated/autoconf.h>

#include "log.h"
#include "ring.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ring log_ring;
static FILE *log_file;

static const char *const level_names[] = {
	[LOG_ERR] = "error", [LOG_WARN] = "warning",
	[LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

/* A log the daemon creates is this mode, whatever the umask. */
#define LOG_FILE_MODE	0640

/* Append to @path; made LOG_FILE_MODE if it is not there yet. */
static int open_log_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC,
		      LOG_FILE_MODE);

	if (fd >= 0 && fchmod(fd, LOG_FILE_MODE) < 0) {
		close(fd);
		return -1;
	}
	if (fd < 0 && errno == EEXIST)
		fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	return fd;
}

int log_open(const char *path)
{
	int fd;

	if (!log_ring.buf && ring_init(&log_ring, CONFIG_LOG_RING_KIB * 1024))
		return -1;
	if (!path) {
		log_file = stderr;
		return 0;
	}
	fd = open_log_file(path);
	if (fd < 0)
		return -1;
	log_file = fdopen(fd, "a");
	if (!log_file) {
		close(fd);
		return -1;
	}
	setvbuf(log_file, NULL, _IOLBF, 0);
	return 0;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n, m;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "(XEN) [%04d-%02d-%02d %02d:%02d:%02d.%03ld] %s: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
		     level_names[level]);
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	n += m < (int)sizeof(line) - n - 1 ? m : (int)sizeof(line) - n - 2;
	line[n++] = '\n';

	pthread_mutex_lock(&log_lock);
	if (log_ring.buf)
		ring_write(&log_ring, line, n);
	if (log_file)
		fwrite(line, 1, n, log_file);
	pthread_mutex_unlock(&log_lock);
}

char *log_snapshot(size_t *len)
{
	uint64_t pos = 0;
	char *out;

	pthread_mutex_lock(&log_lock);
	out = malloc(log_ring.size + 1);
	if (out) {
		*len = ring_read(&log_ring, &pos, out, log_ring.size);
		out[*len] = '\0';
	}
	pthread_mutex_unlock(&log_lock);
	return out;
}

void log_clear(void)
{
	pthread_mutex_lock(&log_lock);
	ring_reset(&log_ring);
	pthread_mutex_unlock(&log_lock);
}
