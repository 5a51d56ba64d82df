// SPDX-License-Identifier: GPL-2.0
/*
 * Network interfaces of a domain config (domcfg_vif.h): Xen's vif
 * syntax, the rules a vif obeys and the MACs the daemon makes up.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "domcfg.h"
#include "domcfg_vif.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define BLANKS " \t\r\n"

static const uint8_t xen_oui[3] = { 0x00, 0x16, 0x3e };

static bool in_list(const char *const *list, size_t n, const char *s)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(list[i], s))
			return true;
	return false;
}
#define IN_LIST(list, s) in_list(list, ARRAY_SIZE(list), s)

/* ------------------------------------------------------------ syntax */

/* Options read here; Xen's others are refused by name. */
static const char *const keys[] = {
	"mac", "bridge", "vifname", "model", "type", "vhost", "announce",
	"script",
};
static const char *const xen_keys[] = {
	"ip", "backend", "rate", "gatewaydev", "netdev", "devid", "mtu",
	"accel", "forwarddev",
};

static int vif_option(json_t *obj, char *tok, char *why, size_t whylen)
{
	char *eq = strchr(tok, '=');

	if (!eq) {
		snprintf(why, whylen, "'%.32s' is not KEY=VALUE", tok);
		return -1;
	}
	*eq = '\0';
	if (IN_LIST(xen_keys, tok)) {
		snprintf(why, whylen, "vif option '%s' is not supported", tok);
		return -1;
	}
	if (!IN_LIST(keys, tok)) {
		snprintf(why, whylen, "unknown vif option '%.32s'", tok);
		return -1;
	}
	if (json_object_get(obj, tok)) {
		snprintf(why, whylen, "option '%s' given twice", tok);
		return -1;
	}
	if (json_object_set_new(obj, tok, json_string(eq + 1)) < 0) {
		snprintf(why, whylen, "'%s' is not valid UTF-8", tok);
		return -1;
	}
	return 0;
}

json_t *domcfg_vif_spec_to_json(const char *spec, char *why, size_t whylen)
{
	json_t *obj = json_object();
	const char *p = spec;
	size_t len, n;
	char *tok;
	int rc = 0;

	if (!obj) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	while (!rc) {
		p += strspn(p, BLANKS);
		if (!*p)
			break;
		len = strcspn(p, ",");
		for (n = len; n && strchr(BLANKS, p[n - 1]); n--)
			;
		tok = strndup(p, n);
		if (!tok) {
			snprintf(why, whylen, "out of memory");
			rc = -1;
		} else if (!*tok) {
			snprintf(why, whylen, "empty option");
			rc = -1;
		} else {
			rc = vif_option(obj, tok, why, whylen);
		}
		free(tok);
		p += len + (p[len] == ',');
	}
	if (rc) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

/* ------------------------------------------------------------ rules */

bool domcfg_vif_valid_ifname(const char *s)
{
	size_t len = strlen(s);

	if (len < 1 || len > DOMCFG_IFNAME_MAX || !strcmp(s, ".") ||
	    !strcmp(s, ".."))
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz"
			 "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789_.-") == len;
}

void domcfg_vif_mac_string(const uint8_t mac[6], char buf[DOMCFG_MAC_STRLEN])
{
	snprintf(buf, DOMCFG_MAC_STRLEN, "%02x:%02x:%02x:%02x:%02x:%02x",
		 mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Exactly XX:XX:XX:XX:XX:XX. */
static int parse_mac(const char *s, uint8_t mac[6])
{
	int i, hi, lo;

	for (i = 0; i < 6; i++, s += 3) {
		hi = hex_digit(s[0]);
		lo = hi < 0 ? -1 : hex_digit(s[1]);
		if (lo < 0 || s[2] != (i < 5 ? ':' : '\0'))
			return -1;
		mac[i] = hi << 4 | lo;
	}
	return 0;
}

static int check_mac(const char *s, struct domcfg_vif *v, char *why,
		     size_t whylen)
{
	static const uint8_t zero[6];

	if (!s || !*s)
		return 0;
	if (parse_mac(s, v->mac) < 0) {
		snprintf(why, whylen, "mac '%.32s' is not XX:XX:XX:XX:XX:XX",
			 s);
		return -1;
	}
	if (v->mac[0] & 1) {
		snprintf(why, whylen, "mac %s is a multicast address", s);
		return -1;
	}
	if (!memcmp(v->mac, zero, sizeof(zero))) {
		snprintf(why, whylen, "mac %s is all zero", s);
		return -1;
	}
	v->mac_set = true;
	return 0;
}

static int check_ifname(const char *key, const char *name, char *why,
			size_t whylen)
{
	if (!name || !*name || domcfg_vif_valid_ifname(name))
		return 0;
	snprintf(why, whylen, "%s must be 1-%d characters of [A-Za-z0-9_.-]",
		 key, DOMCFG_IFNAME_MAX);
	return -1;
}

static int check_kind(const char *model, const char *type,
		      const char *script, char *why, size_t whylen)
{
	if (script) {
		snprintf(why, whylen, "script= is not supported (no hotplug "
			 "scripts: bridge= names the bridge to join)");
		return -1;
	}
	if (model && *model && strcmp(model, "virtio-net")) {
		snprintf(why, whylen, "unsupported vif model '%.32s' (only "
			 "virtio-net)", model);
		return -1;
	}
	if (type && *type && strcmp(type, "ioemu") && strcmp(type, "vif")) {
		snprintf(why, whylen, "type must be ioemu or vif, not "
			 "'%.32s'", type);
		return -1;
	}
	return 0;
}

/* A JSON boolean, 0 or 1, or "0" or "1" (xl's vhost=1). */
static int get_bool(json_t *v, const char *name, bool *out, char *why,
		    size_t whylen)
{
	const char *s = json_string_value(v);

	*out = false;
	if (!v || json_is_null(v) || json_is_false(v))
		return 0;
	if (json_is_true(v) || (json_is_integer(v) &&
				json_integer_value(v) == 1) ||
	    (s && !strcmp(s, "1"))) {
		*out = true;
		return 0;
	}
	if ((json_is_integer(v) && json_integer_value(v) == 0) ||
	    (s && !strcmp(s, "0")))
		return 0;
	snprintf(why, whylen, "%s must be 0 or 1", name);
	return -1;
}

static void vif_free(struct domcfg_vif *v)
{
	free(v->bridge);
	free(v->vifname);
	free(v->origin);
	memset(v, 0, sizeof(*v));
}

/* An empty string is no value. */
static int dup_nonempty(char **dst, const char *src)
{
	return domcfg_dup_opt(dst, src && *src ? src : NULL);
}

static int vif_from_object(json_t *obj, struct domcfg_vif *out, char *why,
			   size_t whylen)
{
	const char *mac, *bridge, *vifname, *model, *type, *script, *origin;

	if (domcfg_member_string(obj, "mac", &mac, why, whylen) ||
	    domcfg_member_string(obj, "bridge", &bridge, why, whylen) ||
	    domcfg_member_string(obj, "vifname", &vifname, why, whylen) ||
	    domcfg_member_string(obj, "model", &model, why, whylen) ||
	    domcfg_member_string(obj, "type", &type, why, whylen) ||
	    domcfg_member_string(obj, "script", &script, why, whylen) ||
	    domcfg_member_string(obj, "origin", &origin, why, whylen))
		return -1;
	if (check_kind(model, type, script, why, whylen) ||
	    check_mac(mac, out, why, whylen) ||
	    check_ifname("bridge", bridge, why, whylen) ||
	    check_ifname("vifname", vifname, why, whylen) ||
	    get_bool(json_object_get(obj, "vhost"), "vhost", &out->vhost, why,
		     whylen) ||
	    get_bool(json_object_get(obj, "announce"), "announce",
		     &out->guest_announce, why, whylen))
		return -1;
	if (dup_nonempty(&out->bridge, bridge) ||
	    dup_nonempty(&out->vifname, vifname) ||
	    domcfg_dup_opt(&out->origin, origin)) {
		vif_free(out);
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	return 0;
}

/* An object, or a string in Xen's syntax. */
static int vif_from_json(json_t *val, struct domcfg_vif *out, char *why,
			 size_t whylen)
{
	json_t *obj;
	int rc;

	memset(out, 0, sizeof(*out));
	if (json_is_object(val))
		return vif_from_object(val, out, why, whylen);
	if (!json_is_string(val)) {
		snprintf(why, whylen, "must be an object or a string");
		return -1;
	}
	obj = domcfg_vif_spec_to_json(json_string_value(val), why, whylen);
	if (!obj)
		return -1;
	rc = vif_from_object(obj, out, why, whylen);
	json_decref(obj);
	return rc;
}

/* Vif @i against those before it. */
static int check_unique(const struct domcfg_vif *vifs, size_t i, char *why,
			size_t whylen)
{
	const struct domcfg_vif *v = &vifs[i];
	char mac[DOMCFG_MAC_STRLEN];
	size_t j;

	for (j = 0; j < i; j++) {
		if (v->vifname && vifs[j].vifname &&
		    !strcmp(v->vifname, vifs[j].vifname)) {
			snprintf(why, whylen, "[%zu]: duplicate vifname '%s' "
				 "(also vif[%zu])", i, v->vifname, j);
			return -1;
		}
		if (v->mac_set && vifs[j].mac_set &&
		    !memcmp(v->mac, vifs[j].mac, sizeof(v->mac))) {
			domcfg_vif_mac_string(v->mac, mac);
			snprintf(why, whylen, "[%zu]: duplicate mac %s (also "
				 "vif[%zu])", i, mac, j);
			return -1;
		}
	}
	return 0;
}

int domcfg_vif_list_from_json(json_t *list, struct domcfg_vif **out,
			      unsigned int *nr, char *why, size_t whylen)
{
	size_t n = json_array_size(list), i;
	struct domcfg_vif *vifs;
	char what[160];

	if (!json_is_array(list) || n > DOMCFG_VIF_MAX) {
		snprintf(why, whylen, "must be a list of at most %d vifs",
			 DOMCFG_VIF_MAX);
		return -1;
	}
	vifs = calloc(n ? n : 1, sizeof(*vifs));
	if (!vifs) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (vif_from_json(json_array_get(list, i), &vifs[i], what,
				  sizeof(what)) < 0) {
			snprintf(why, whylen, "[%zu]: %s", i, what);
			goto fail;
		}
		if (check_unique(vifs, i, why, whylen) < 0) {
			i++;
			goto fail;
		}
	}
	*out = vifs;
	*nr = n;
	return 0;
fail:
	domcfg_vif_list_free(vifs, i);
	return -1;
}

static json_t *vif_to_json(const struct domcfg_vif *v)
{
	json_t *obj = json_pack("{s:s, s:b}", "model", "virtio-net",
				"vhost", v->vhost);
	char mac[DOMCFG_MAC_STRLEN];
	int rc = 0;

	if (!obj)
		return NULL;
	if (v->mac_set) {
		domcfg_vif_mac_string(v->mac, mac);
		rc |= json_object_set_new(obj, "mac", json_string(mac));
	}
	if (v->bridge)
		rc |= json_object_set_new(obj, "bridge",
					  json_string(v->bridge));
	if (v->vifname)
		rc |= json_object_set_new(obj, "vifname",
					  json_string(v->vifname));
	if (v->origin)
		rc |= json_object_set_new(obj, "origin",
					  json_string(v->origin));
	/* Only when set: a build without it reads the config as before. */
	if (v->guest_announce)
		rc |= json_object_set_new(obj, "announce", json_true());
	if (rc) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

json_t *domcfg_vif_list_to_json(const struct domcfg_vif *vifs,
				unsigned int nr)
{
	json_t *list = json_array();
	unsigned int i;

	for (i = 0; list && i < nr; i++) {
		if (json_array_append_new(list, vif_to_json(&vifs[i]))) {
			json_decref(list);
			return NULL;
		}
	}
	return list;
}

int domcfg_vif_list_copy(struct domcfg_vif **dst,
			 const struct domcfg_vif *src, unsigned int nr)
{
	struct domcfg_vif *v;
	unsigned int i;

	*dst = NULL;
	if (!nr)
		return 0;
	v = calloc(nr, sizeof(*v));
	if (!v)
		return -1;
	for (i = 0; i < nr; i++) {
		memcpy(v[i].mac, src[i].mac, sizeof(v[i].mac));
		v[i].mac_set = src[i].mac_set;
		v[i].vhost = src[i].vhost;
		v[i].guest_announce = src[i].guest_announce;
		if (domcfg_dup_opt(&v[i].bridge, src[i].bridge) ||
		    domcfg_dup_opt(&v[i].vifname, src[i].vifname) ||
		    domcfg_dup_opt(&v[i].origin, src[i].origin)) {
			domcfg_vif_list_free(v, nr);
			return -1;
		}
	}
	*dst = v;
	return 0;
}

void domcfg_vif_list_free(struct domcfg_vif *vifs, unsigned int nr)
{
	while (nr)
		vif_free(&vifs[--nr]);
	free(vifs);
}

/* ------------------------------------------------------------ MACs */

static int random_bytes(uint8_t *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = getrandom(buf, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= n;
	}
	return 0;
}

static bool mac_in_use(const struct domcfg *cfg, unsigned int self,
		       const uint8_t mac[6])
{
	unsigned int i;

	for (i = 0; i < cfg->nr_vifs; i++)
		if (i != self && cfg->vifs[i].mac_set &&
		    !memcmp(cfg->vifs[i].mac, mac, 6))
			return true;
	return false;
}

int domcfg_vif_fill_mac(struct domcfg *cfg)
{
	struct domcfg_vif *v;
	unsigned int i;
	uint8_t r[3];
	int rc;

	for (i = 0; i < cfg->nr_vifs; i++) {
		v = &cfg->vifs[i];
		while (!v->mac_set) {
			rc = random_bytes(r, sizeof(r));
			if (rc)
				return rc;
			memcpy(v->mac, xen_oui, sizeof(xen_oui));
			v->mac[3] = r[0] & 0x7f;
			v->mac[4] = r[1];
			v->mac[5] = r[2];
			v->mac_set = !mac_in_use(cfg, i, v->mac);
		}
	}
	return 0;
}
