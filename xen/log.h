/* The daemon's log: a file (or stderr) plus an in-memory ring for dmesg. */
#ifndef XEN_LOG_H
#define XEN_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };

int log_open(const char *path);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Copy the in-memory log into a new malloc'd string; caller frees. */
char *log_snapshot(size_t *len);
void log_clear(void);

#define log_err(...)	log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)	log_msg(LOG_DEBUG, __VA_ARGS__)

/*
 * @in with control characters and bytes that are not well-formed UTF-8
 * written as \xHH, into @out (@room bytes with the NUL); its length.
 */
size_t log_escape(char *out, size_t room, const char *in);

#endif
