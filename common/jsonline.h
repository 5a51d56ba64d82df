/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Line-delimited JSON framing (docs/control-api.md): a receive buffer that
 * hands out complete lines, and the encoder for one message.
 *
 * Typical use:
 *	room = 0;
 *	p = jsonline_space(&jl, &room);
 *	n = read(fd, p, room);
 *	jsonline_commit(&jl, n);
 *	while (jsonline_next(&jl, &line, &len) == 1)
 *		handle(line, len);
 */
#ifndef JSONLINE_H
#define JSONLINE_H

#include <stddef.h>
#include <jansson.h>

struct jsonline {
	char *buf;
	size_t start;		/* first unconsumed byte */
	size_t len;		/* unconsumed bytes from start */
	size_t cap;
	size_t scanned;		/* bytes after start known to hold no '\n' */
	size_t max;		/* longest line accepted, without the '\n' */
};

void jsonline_init(struct jsonline *jl, size_t max_line);
void jsonline_free(struct jsonline *jl);

/*
 * Room for at least 4 KiB more input; *room gets its size.  NULL when out
 * of memory or when the buffered partial line already exceeds max.
 */
char *jsonline_space(struct jsonline *jl, size_t *room);
/* @n bytes were written at the pointer jsonline_space() returned. */
void jsonline_commit(struct jsonline *jl, size_t n);

/*
 * 1: the next line is in *line (its '\n' replaced by a NUL; *len excludes
 * it), valid until the next call on @jl.  0: no complete line yet.
 * -1: the pending line is longer than max.
 */
int jsonline_next(struct jsonline *jl, char **line, size_t *len);

/* The bytes received but not handed out as lines (e.g. raw data after
 * a protocol switch), and their count. */
const char *jsonline_pending(const struct jsonline *jl, size_t *len);
/* Forget the pending bytes. */
void jsonline_drop(struct jsonline *jl);

/* @msg as compact JSON plus "\n" (malloc'd, *len set), or NULL. */
char *jsonline_encode(const json_t *msg, size_t *len);

#endif /* JSONLINE_H */
