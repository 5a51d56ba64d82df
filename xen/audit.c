// SPDX-License-Identifier: GPL-2.0
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "control.h"
#include "log.h"

/* A shown string value: at most this many bytes of it. */
#define AUDIT_VALUE_MAX	300

static bool plain(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789._/:+@-", *s))
			return false;
	return true;
}

/*
 * " KEY=VALUE" for a string or integer value: a string of plain characters
 * as it is, any other JSON-quoted, so a space or a quote in a name cannot
 * make a line read as other fields (the log escapes control characters).
 */
static void add_field(char *buf, size_t len, const char *key, json_t *v)
{
	size_t at = strlen(buf);
	char *q = NULL;

	if (json_is_integer(v)) {
		snprintf(buf + at, len - at, " %s=%lld", key,
			 (long long)json_integer_value(v));
	} else if (json_is_string(v) && plain(json_string_value(v))) {
		snprintf(buf + at, len - at, " %s=%.*s", key, AUDIT_VALUE_MAX,
			 json_string_value(v));
	} else if (json_is_string(v)) {
		q = json_dumps(v, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
		snprintf(buf + at, len - at, " %s=%.*s", key, AUDIT_VALUE_MAX,
			 q ? q : "?");
		free(q);
	}
}

void audit_request(const struct ucred *peer, const char *cmd, json_t *args,
		   json_t *result, int code, const char *code_name)
{
	char fields[1024] = "";
	json_t *dom = json_object_get(args, "domain");

	if (!dom && code == CTL_OK)
		dom = json_object_get(result, "id");	/* create, restore */
	add_field(fields, sizeof(fields), "dom", dom);
	add_field(fields, sizeof(fields), "name",
		  json_object_get(args, "name"));
	add_field(fields, sizeof(fields), "path",
		  json_object_get(args, "path"));
	add_field(fields, sizeof(fields), "image",
		  json_object_get(args, "image"));	/* live-update-load */
	if (peer)
		log_info("audit: uid=%u pid=%d cmd=%s%s result=%s",
			 (unsigned)peer->uid, (int)peer->pid, cmd, fields,
			 code_name);
	else
		log_info("audit: uid=? pid=? cmd=%s%s result=%s", cmd, fields,
			 code_name);
}
