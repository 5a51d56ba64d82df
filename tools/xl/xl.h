/* SPDX-License-Identifier: GPL-2.0 */
/*
 * xl: the command-line client of the daemon's control socket.
 */
#ifndef XL_H
#define XL_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <jansson.h>

#include "errors.h"

#define XL_VERSION		"0.1.0"
#define XL_PROTOCOL		1
#define XL_DEFAULT_SOCKET	"/run/xen-kvm/control.sock"
#define XL_SOCKET_ENV		"XL_SOCKET"

struct xl_command {
	const char *name;
	int (*main)(int argc, char **argv);	/* returns the exit code */
	const char *args;
	const char *summary;
	const char *options;	/* option lines for help, or NULL */
};

/* The control socket: --socket, else $XL_SOCKET, else the default. */
extern const char *xl_socket_path;

const struct xl_command *xl_find_command(const char *name);
void xl_print_usage(const struct xl_command *cmd, FILE *out);

/* util.c */
void xl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "xl: CMD: message" and the command's usage; returns 64. */
int xl_usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Prints the usage of @cmd on stdout (for -h); returns 0. */
int xl_help(const char *cmd);
/*
 * getopt_long() for subcommands (argv[0] is the command name): options and
 * operands may be mixed; an unknown option or a missing argument is
 * reported and returned as '?'.
 */
int xl_getopt(int argc, char **argv, const char *shortopts,
	      const struct option *longopts);
/* "key                    : value" lines, as in Xen's xl info. */
void xl_print_kv(const char *key, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The same for a JSON value (strings bare, reals with one decimal, lists
 * space-separated); nothing is printed when @val is NULL or null. */
void xl_print_field(const char *key, json_t *val);
/* Pretty-printed JSON and a newline on stdout. */
void xl_print_json(json_t *val);
/* Write all of @buf to @fd; 0, or -1 with errno set. */
int xl_write_all(int fd, const void *buf, size_t len);
/*
 * console-read and dmesg send bytes as "latin1": each byte is the
 * character U+0000..U+00FF, which jansson hands us UTF-8 encoded.  Decode
 * in place; returns the byte count, or -1 for a character above U+00FF.
 */
long xl_latin1_decode(char *s, size_t len);
/* A whole decimal number; 0, or -1 if @s is not one. */
int xl_parse_long(const char *s, long *out);
/* @path made absolute against the working directory (malloc'ed; the file
 * need not exist), or NULL for an empty path or when out of memory. */
char *xl_abspath(const char *path);

/* Commands. */
int cmd_create(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_dmesg(int argc, char **argv);
int cmd_destroy(int argc, char **argv);
int cmd_pause(int argc, char **argv);
int cmd_unpause(int argc, char **argv);
int cmd_shutdown(int argc, char **argv);
int cmd_reboot(int argc, char **argv);
int cmd_trigger(int argc, char **argv);
int cmd_console(int argc, char **argv);
int cmd_save(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_live_update(int argc, char **argv);
int cmd_livepatch(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_migrate_status(int argc, char **argv);
int cmd_migrate_cancel(int argc, char **argv);
int cmd_help(int argc, char **argv);

#endif /* XL_H */
