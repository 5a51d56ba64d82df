// SPDX-License-Identifier: GPL-2.0
/*
 * Disks of a domain config (domcfg_disk.h): Xen's disk syntax and the
 * rules a disk obeys.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domcfg.h"
#include "domcfg_disk.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define BLANKS " \t\r\n"

static bool in_list(const char *const *list, size_t n, const char *s,
		    size_t len)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strlen(list[i]) == len && !strncmp(list[i], s, len))
			return true;
	return false;
}
#define IN_LIST(list, s, len) in_list(list, ARRAY_SIZE(list), s, len)

/* ------------------------------------------------------------ syntax */

/* Options read here; Xen's others are refused by name. */
static const char *const keys[] = {
	"format", "vdev", "access", "devtype", "cache", "serial",
};
static const char *const xen_keys[] = {
	"backend", "backendtype", "script", "specification", "colo-host",
	"colo-port", "colo-export", "active-disk", "hidden-disk",
	"grant_usage",
};
static const char *const xen_flags[] = {
	"direct-io-safe", "discard", "no-discard", "colo", "no-colo",
	"trusted", "untrusted",
};
/* Xen's deprecated target prefixes. */
static const char *const ignored_prefixes[] = {
	"tapdisk", "tap", "tap2", "aio", "ioemu", "file", "phy",
};
static const char *const format_prefixes[] = {
	"raw", "qcow", "qcow2", "vhd",
};
static const char *const script_prefixes[] = {
	"iscsi", "nbd", "enbd", "drbd",
};

struct spec {
	json_t *obj;
	bool format_done;	/* a deprecated prefix stands for it */
	char *why;
	size_t whylen;
};

static int set_opt(struct spec *sp, const char *key, const char *val,
		   size_t len)
{
	json_t *old = json_object_get(sp->obj, key);

	/* An empty positional target may be given again as target=. */
	if (old && (strcmp(key, "target") || json_string_length(old))) {
		snprintf(sp->why, sp->whylen, "option '%s' given twice", key);
		return -1;
	}
	if (json_object_set_new(sp->obj, key, json_stringn(val, len)) < 0) {
		snprintf(sp->why, sp->whylen, "'%s' is not valid UTF-8", key);
		return -1;
	}
	return 0;
}

static int set_str(struct spec *sp, const char *key, const char *val)
{
	return set_opt(sp, key, val, strlen(val));
}

static bool is_lower(char c)
{
	return c >= 'a' && c <= 'z';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Xen's deprecated "phy:", "raw:", "tap:aio:"... before a target. */
static int strip_prefixes(struct spec *sp, const char **target)
{
	const char *s = *target;
	size_t n;

	for (;; s += n + 1) {
		for (n = 0; is_lower(s[n]) || (n && is_digit(s[n])); n++)
			;
		if (!n || s[n] != ':')
			break;
		if (IN_LIST(format_prefixes, s, n)) {
			if (set_opt(sp, "format", s, n) < 0)
				return -1;
		} else if (IN_LIST(script_prefixes, s, n)) {
			snprintf(sp->why, sp->whylen, "'%.*s:' (a block "
				 "script) is not supported", (int)n, s);
			return -1;
		} else if (!IN_LIST(ignored_prefixes, s, n)) {
			if (is_lower(s[n + 1]) || is_digit(s[n + 1]))
				break;	/* a target with a colon */
			snprintf(sp->why, sp->whylen, "unknown deprecated "
				 "disk prefix '%.*s:'", (int)n, s);
			return -1;
		}
		sp->format_done = true;
	}
	*target = s;
	return 0;
}

/* VDEV or Xen's deprecated VDEV:DEVTYPE. */
static int set_vdev(struct spec *sp, const char *val)
{
	const char *colon = strrchr(val, ':');

	if (!colon)
		return set_str(sp, "vdev", val);
	if (set_opt(sp, "vdev", val, colon - val) < 0)
		return -1;
	return set_str(sp, "devtype", colon + 1);
}

/* A value without '=': the next of target, format, vdev and access. */
static int positional(struct spec *sp, const char *val)
{
	json_t *target = json_object_get(sp->obj, "target");

	if (!target) {
		if (strip_prefixes(sp, &val) < 0)
			return -1;
		return set_str(sp, "target", val);
	}
	if (!sp->format_done && !json_object_get(sp->obj, "format")) {
		sp->format_done = true;
		/* xend's empty CD-ROM: ",hdc:cdrom,r" */
		if (!json_string_length(target) && strchr(val, ':'))
			return set_vdev(sp, val);
		return set_str(sp, "format", val);
	}
	if (!json_object_get(sp->obj, "vdev"))
		return set_vdev(sp, val);
	if (!json_object_get(sp->obj, "access"))
		return set_str(sp, "access", val);
	snprintf(sp->why, sp->whylen, "too many positional parameters "
		 "('%.32s')", val);
	return -1;
}

static int option(struct spec *sp, char *tok)
{
	char *eq = strchr(tok, '=');

	if (eq) {
		*eq = '\0';
		if (IN_LIST(keys, tok, strlen(tok)))
			return set_str(sp, tok, eq + 1);
		if (IN_LIST(xen_keys, tok, strlen(tok)))
			snprintf(sp->why, sp->whylen, "disk option '%s' is not "
				 "supported", tok);
		else
			snprintf(sp->why, sp->whylen, "unknown disk option "
				 "'%.32s'", tok);
		return -1;
	}
	if (!strcmp(tok, "cdrom"))
		return set_str(sp, "devtype", "cdrom");
	if (IN_LIST(xen_flags, tok, strlen(tok))) {
		snprintf(sp->why, sp->whylen, "disk option '%s' is not "
			 "supported", tok);
		return -1;
	}
	return positional(sp, tok);
}

/* Length of @s without its trailing blanks. */
static size_t trimmed(const char *s, size_t len)
{
	while (len && strchr(BLANKS, s[len - 1]))
		len--;
	return len;
}

json_t *domcfg_disk_spec_to_json(const char *spec, char *why,
				 size_t whylen)
{
	struct spec sp = { .obj = json_object(), .why = why,
			   .whylen = whylen };
	const char *p = spec;
	size_t len;
	char *tok;
	int rc = 0;

	if (!sp.obj) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	while (!rc) {
		p += strspn(p, BLANKS);
		if (!*p)
			break;
		if (!strncmp(p, "target=", 7)) {
			/* The rest, commas and all. */
			rc = set_opt(&sp, "target", p + 7,
				     trimmed(p + 7, strlen(p + 7)));
			break;
		}
		len = strcspn(p, ",");
		tok = strndup(p, trimmed(p, len));
		if (!tok) {
			snprintf(why, whylen, "out of memory");
			rc = -1;
			break;
		}
		rc = option(&sp, tok);
		free(tok);
		p += len + (p[len] == ',');
	}
	if (rc) {
		json_decref(sp.obj);
		return NULL;
	}
	return sp.obj;
}

/* ------------------------------------------------------------ rules */

int domcfg_disk_index(const char *vdev)
{
	static const char *const prefixes[] = { "xvd", "hd", "sd", "vd" };
	const char *s = NULL;
	size_t i;
	int idx = 0;

	for (i = 0; i < ARRAY_SIZE(prefixes) && !s; i++)
		if (!strncmp(vdev, prefixes[i], strlen(prefixes[i])))
			s = vdev + strlen(prefixes[i]);
	if (!s || !*s || strlen(s) > 3)
		return -1;
	/* Bijective base 26: a..z, aa..zz, aaa..zzz. */
	for (; *s; s++) {
		if (!is_lower(*s))
			return -1;
		idx = idx * 26 + (*s - 'a' + 1);
	}
	return idx - 1;
}

static int check_devtype(const char *devtype, char *why, size_t whylen)
{
	if (!devtype || !*devtype || !strcmp(devtype, "disk"))
		return 0;
	if (!strcmp(devtype, "cdrom"))
		snprintf(why, whylen, "CD-ROM devices (devtype=cdrom) are not "
			 "supported");
	else
		snprintf(why, whylen, "unknown devtype '%.32s' (only disk)",
			 devtype);
	return -1;
}

static int check_target(const char *target, char *why, size_t whylen)
{
	if (!target || !*target) {
		snprintf(why, whylen, "target= is required");
		return -1;
	}
	if (target[0] != '/' || strlen(target) > DOMCFG_PATH_MAX) {
		snprintf(why, whylen, "target must be an absolute path of at "
			 "most %d bytes", DOMCFG_PATH_MAX);
		return -1;
	}
	return 0;
}

static int check_vdev(const char *vdev, char *why, size_t whylen)
{
	if (!vdev || !*vdev) {
		snprintf(why, whylen, "vdev= is required");
		return -1;
	}
	if (domcfg_disk_index(vdev) < 0) {
		snprintf(why, whylen, "vdev '%.32s' is not xvdX, hdX, sdX or "
			 "vdX (X: a-z, aa-zz or aaa-zzz)", vdev);
		return -1;
	}
	return 0;
}

/* @val is @no (or empty, or absent: false) or @yes (true). */
static int pick(const char *val, const char *no, const char *no2,
		const char *yes, const char *yes2, bool *out)
{
	*out = false;
	if (!val || !*val || !strcmp(val, no) || (no2 && !strcmp(val, no2)))
		return 0;
	*out = true;
	return !strcmp(val, yes) || (yes2 && !strcmp(val, yes2)) ? 0 : -1;
}

static int check_options(const char *format, const char *access,
			 const char *cache, struct domcfg_disk *d, char *why,
			 size_t whylen)
{
	if (format && *format && strcmp(format, "raw")) {
		snprintf(why, whylen, "unsupported disk format '%.32s' (only "
			 "raw)", format);
		return -1;
	}
	if (pick(access, "rw", "w", "ro", "r", &d->readonly) < 0) {
		snprintf(why, whylen, "access must be rw, w, ro or r, not "
			 "'%.32s'", access);
		return -1;
	}
	if (pick(cache, "writeback", NULL, "none", NULL, &d->direct) < 0) {
		snprintf(why, whylen, "unsupported cache mode '%.32s' "
			 "(writeback or none)", cache);
		return -1;
	}
	return 0;
}

static int check_serial(const char *serial, char *why, size_t whylen)
{
	size_t len = strlen(serial), i;

	for (i = 0; i < len; i++)
		if (serial[i] < ' ' || serial[i] > '~')
			break;
	if (i == len && len <= DOMCFG_DISK_SERIAL_MAX)
		return 0;
	snprintf(why, whylen, "serial must be 1-%d printable ASCII "
		 "characters", DOMCFG_DISK_SERIAL_MAX);
	return -1;
}

static void disk_free(struct domcfg_disk *d)
{
	free(d->target);
	free(d->vdev);
	free(d->serial);
	free(d->origin);
	memset(d, 0, sizeof(*d));
}

static int disk_from_object(json_t *obj, struct domcfg_disk *out,
			    char *why, size_t whylen)
{
	const char *target, *format, *vdev, *access, *cache, *serial,
		   *devtype, *origin;

	if (domcfg_member_string(obj, "target", &target, why, whylen) ||
	    domcfg_member_string(obj, "format", &format, why, whylen) ||
	    domcfg_member_string(obj, "vdev", &vdev, why, whylen) ||
	    domcfg_member_string(obj, "access", &access, why, whylen) ||
	    domcfg_member_string(obj, "cache", &cache, why, whylen) ||
	    domcfg_member_string(obj, "serial", &serial, why, whylen) ||
	    domcfg_member_string(obj, "devtype", &devtype, why, whylen) ||
	    domcfg_member_string(obj, "origin", &origin, why, whylen))
		return -1;
	if (check_devtype(devtype, why, whylen) ||
	    check_target(target, why, whylen) ||
	    check_options(format, access, cache, out, why, whylen) ||
	    check_vdev(vdev, why, whylen))
		return -1;
	if (!serial || !*serial)
		serial = vdev;
	if (check_serial(serial, why, whylen))
		return -1;
	if (domcfg_dup_opt(&out->target, target) ||
	    domcfg_dup_opt(&out->vdev, vdev) ||
	    domcfg_dup_opt(&out->serial, serial) ||
	    domcfg_dup_opt(&out->origin, origin)) {
		disk_free(out);
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	return 0;
}

/* An object, or a string in Xen's syntax. */
static int disk_from_json(json_t *val, struct domcfg_disk *out, char *why,
			  size_t whylen)
{
	json_t *obj;
	int rc;

	memset(out, 0, sizeof(*out));
	if (json_is_object(val))
		return disk_from_object(val, out, why, whylen);
	if (!json_is_string(val)) {
		snprintf(why, whylen, "must be an object or a string");
		return -1;
	}
	obj = domcfg_disk_spec_to_json(json_string_value(val), why, whylen);
	if (!obj)
		return -1;
	rc = disk_from_object(obj, out, why, whylen);
	json_decref(obj);
	return rc;
}

/* Disk @i against those before it. */
static int check_unique(const struct domcfg_disk *disks, size_t i,
			char *why, size_t whylen)
{
	int idx = domcfg_disk_index(disks[i].vdev);
	size_t j;

	for (j = 0; j < i; j++) {
		if (domcfg_disk_index(disks[j].vdev) != idx)
			continue;
		if (!strcmp(disks[j].vdev, disks[i].vdev))
			snprintf(why, whylen, "[%zu]: duplicate vdev '%s' "
				 "(also disk[%zu])", i, disks[i].vdev, j);
		else
			snprintf(why, whylen, "[%zu]: vdev '%s' is the same "
				 "disk as disk[%zu]'s '%s'", i, disks[i].vdev,
				 j, disks[j].vdev);
		return -1;
	}
	return 0;
}

int domcfg_disk_list_from_json(json_t *list, struct domcfg_disk **out,
			       unsigned int *nr, char *why, size_t whylen)
{
	size_t n = json_array_size(list), i;
	struct domcfg_disk *disks;
	char what[160];

	if (!json_is_array(list) || n > DOMCFG_DISK_MAX) {
		snprintf(why, whylen, "must be a list of at most %d disks",
			 DOMCFG_DISK_MAX);
		return -1;
	}
	disks = calloc(n ? n : 1, sizeof(*disks));
	if (!disks) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (disk_from_json(json_array_get(list, i), &disks[i], what,
				   sizeof(what)) < 0) {
			snprintf(why, whylen, "[%zu]: %s", i, what);
			goto fail;
		}
		if (check_unique(disks, i, why, whylen) < 0) {
			i++;
			goto fail;
		}
	}
	*out = disks;
	*nr = n;
	return 0;
fail:
	domcfg_disk_list_free(disks, i);
	return -1;
}

static json_t *disk_to_json(const struct domcfg_disk *d)
{
	json_t *obj = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}",
				"target", d->target, "format", "raw",
				"vdev", d->vdev,
				"access", d->readonly ? "ro" : "rw",
				"cache", d->direct ? "none" : "writeback",
				"serial", d->serial);

	if (obj && d->origin &&
	    json_object_set_new(obj, "origin", json_string(d->origin))) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

json_t *domcfg_disk_list_to_json(const struct domcfg_disk *disks,
				 unsigned int nr)
{
	json_t *list = json_array();
	unsigned int i;

	for (i = 0; list && i < nr; i++) {
		if (json_array_append_new(list, disk_to_json(&disks[i]))) {
			json_decref(list);
			return NULL;
		}
	}
	return list;
}

int domcfg_disk_list_copy(struct domcfg_disk **dst,
			  const struct domcfg_disk *src, unsigned int nr)
{
	struct domcfg_disk *d;
	unsigned int i;

	*dst = NULL;
	if (!nr)
		return 0;
	d = calloc(nr, sizeof(*d));
	if (!d)
		return -1;
	for (i = 0; i < nr; i++) {
		d[i].readonly = src[i].readonly;
		d[i].direct = src[i].direct;
		if (domcfg_dup_opt(&d[i].target, src[i].target) ||
		    domcfg_dup_opt(&d[i].vdev, src[i].vdev) ||
		    domcfg_dup_opt(&d[i].serial, src[i].serial) ||
		    domcfg_dup_opt(&d[i].origin, src[i].origin)) {
			domcfg_disk_list_free(d, nr);
			return -1;
		}
	}
	*dst = d;
	return 0;
}

void domcfg_disk_list_free(struct domcfg_disk *disks, unsigned int nr)
{
	while (nr)
		disk_free(&disks[--nr]);
	free(disks);
}
