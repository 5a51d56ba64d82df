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
#define LOG_FILE_MODE	0600

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

/*
 * The length of the well-formed UTF-8 sequence at @s, or 0 if there is
 * none or it encodes a C1 control (U+0080..U+009F).
 */
static size_t utf8_len(const unsigned char *s)
{
	size_t n, i;
	unsigned cp;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < 0xa0 || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/*
 * Copy @in to @out (@room bytes, NUL included) with every control
 * character and every byte that is not well-formed UTF-8 written as
 * \xHH: a name logged with a newline in it cannot forge a line of the
 * log or of `xl dmesg`, nor an escape sequence drive a terminal.  Stops
 * before what does not fit whole.  Returns the length written.
 */
size_t log_escape(char *out, size_t room, const char *in)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t n = 0, k;

	while (*s) {
		k = *s < 0x80 ? (*s >= 0x20 && *s != 0x7f) : utf8_len(s);
		if (!k) {
			if (n + 4 >= room)
				break;
			n += snprintf(out + n, room - n, "\\x%02x", *s++);
			continue;
		}
		if (n + k >= room)
			break;
		memcpy(out + n, s, k);
		n += k;
		s += k;
	}
	out[n] = '\0';
	return n;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[2048], msg[2048];
	struct timespec ts;
	struct tm tm;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "(XEN) [%04d-%02d-%02d %02d:%02d:%02d.%03ld] %s: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
		     level_names[level]);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n += log_escape(line + n, sizeof(line) - n - 1, msg);
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
