// SPDX-License-Identifier: GPL-2.0
/*
 * Line-delimited JSON framing: receive buffer and message encoder.
 */
#include <stdlib.h>
#include <string.h>

#include "jsonline.h"

#define JSONLINE_CHUNK	4096

void jsonline_init(struct jsonline *jl, size_t max_line)
{
	memset(jl, 0, sizeof(*jl));
	jl->max = max_line;
}

void jsonline_free(struct jsonline *jl)
{
	free(jl->buf);
	jsonline_init(jl, jl->max);
}

/* Move the unconsumed bytes to the front of the buffer. */
static void compact(struct jsonline *jl)
{
	if (!jl->start)
		return;
	memmove(jl->buf, jl->buf + jl->start, jl->len);
	jl->start = 0;
}

char *jsonline_space(struct jsonline *jl, size_t *room)
{
	size_t cap;
	char *p;

	if (jl->scanned > jl->max)
		return NULL;
	compact(jl);
	if (jl->cap - jl->len < JSONLINE_CHUNK) {
		cap = jl->cap ? jl->cap : JSONLINE_CHUNK;
		while (cap - jl->len < JSONLINE_CHUNK)
			cap *= 2;
		p = realloc(jl->buf, cap);
		if (!p)
			return NULL;
		jl->buf = p;
		jl->cap = cap;
	}
	*room = jl->cap - jl->len;
	return jl->buf + jl->len;
}

void jsonline_commit(struct jsonline *jl, size_t n)
{
	jl->len += n;
}

int jsonline_next(struct jsonline *jl, char **line, size_t *len)
{
	char *base = jl->buf + jl->start;
	char *nl;
	size_t n;

	if (jl->scanned == jl->len)
		return jl->scanned > jl->max ? -1 : 0;
	nl = memchr(base + jl->scanned, '\n', jl->len - jl->scanned);
	if (!nl) {
		jl->scanned = jl->len;
		return jl->scanned > jl->max ? -1 : 0;
	}
	n = nl - base;
	if (n > jl->max)
		return -1;
	*nl = '\0';
	*line = base;
	*len = n;
	jl->start += n + 1;
	jl->len -= n + 1;
	jl->scanned = 0;
	return 1;
}

const char *jsonline_pending(const struct jsonline *jl, size_t *len)
{
	*len = jl->len;
	return jl->buf ? jl->buf + jl->start : "";
}

void jsonline_drop(struct jsonline *jl)
{
	jl->start = 0;
	jl->len = 0;
	jl->scanned = 0;
}

char *jsonline_encode(const json_t *msg, size_t *len)
{
	char *s = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);
	char *line;
	size_t n;

	if (!s)
		return NULL;
	n = strlen(s);
	line = realloc(s, n + 2);
	if (!line) {
		free(s);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	*len = n + 1;
	return line;
}
