// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of the `vif` config key (common/domcfg_vif.c) through the
 * xl.cfg parser and the JSON config, and of the MACs the daemon makes up
 * (domcfg_vif_fill_mac).  One line per failed check, then "N passed, M
 * failed"; exits 1 when anything failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg_check.h"

#define VIF_ERR(spec, want) \
	PARSE_ERR(MIN_CFG "vif = [ '" spec "' ]\n", CFG_NAME ":3: " want)

static int one_vif_at(int line, const char *spec, struct domcfg *cfg)
{
	char text[4096];

	snprintf(text, sizeof(text), MIN_CFG "vif = [ '%s' ]\n", spec);
	if (parse_ok_at(line, text, cfg))
		return -1;
	unit_check(cfg->nr_vifs == 1, __FILE__, line, "%u vifs",
		   cfg->nr_vifs);
	if (cfg->nr_vifs == 1)
		return 0;
	domcfg_free(cfg);
	return -1;
}
#define ONE_VIF(spec, cfg) one_vif_at(__LINE__, spec, cfg)

static void mac_is_at(int line, const struct domcfg_vif *v,
		      const char *want)
{
	char mac[DOMCFG_MAC_STRLEN];

	domcfg_vif_mac_string(v->mac, mac);
	unit_check(v->mac_set && !strcmp(mac, want), __FILE__, line,
		   "mac %s (set %d), want %s", mac, v->mac_set, want);
}
#define MAC_IS(v, want) mac_is_at(__LINE__, v, want)

/* ------------------------------------------------------------ good */

static void test_vif_forms(void)
{
	struct domcfg cfg;
	struct domcfg_vif *v;

	/* '' is a vif with every default. */
	if (ONE_VIF("", &cfg))
		return;
	v = &cfg.vifs[0];
	CHECK(!v->mac_set);
	CHECK(v->bridge == NULL);
	CHECK(v->vifname == NULL);
	CHECK(!v->vhost);
	CHECK_STR(v->origin, CFG_NAME ":3");
	domcfg_free(&cfg);

	if (ONE_VIF(" mac=00:16:3E:74:3d:76 , bridge=xenbr0,vifname=web-1.0,"
		    "model=virtio-net, type=ioemu, vhost=1 ", &cfg))
		return;
	v = &cfg.vifs[0];
	MAC_IS(v, "00:16:3e:74:3d:76");
	CHECK_STR(v->bridge, "xenbr0");
	CHECK_STR(v->vifname, "web-1.0");
	CHECK(v->vhost);
	domcfg_free(&cfg);

	if (ONE_VIF("type=vif,vhost=0,bridge=br_LAN-2.x,", &cfg))
		return;
	CHECK(!cfg.vifs[0].vhost);
	CHECK_STR(cfg.vifs[0].bridge, "br_LAN-2.x");
	domcfg_free(&cfg);

	/* A locally administered address; names of 15 characters. */
	if (ONE_VIF("mac=02:00:00:00:00:01,vifname=abcdefghijklmno,"
		    "bridge=ABCDEFGHIJKLMNO", &cfg))
		return;
	MAC_IS(&cfg.vifs[0], "02:00:00:00:00:01");
	CHECK_STR(cfg.vifs[0].vifname, "abcdefghijklmno");
	domcfg_free(&cfg);

	/* Empty values are defaults. */
	if (ONE_VIF("mac=,bridge=,vifname=,model=,type=", &cfg))
		return;
	CHECK(!cfg.vifs[0].mac_set);
	CHECK(cfg.vifs[0].bridge == NULL && cfg.vifs[0].vifname == NULL);
	domcfg_free(&cfg);
}

static void test_vif_many(void)
{
	char text[2048], *p;
	struct domcfg cfg;
	int i;

	p = text + sprintf(text, MIN_CFG "vif = [\n");
	for (i = 0; i < 8; i++)
		p += sprintf(p, "  'vifname=t%d,bridge=br0',\n", i);
	strcpy(p, "]\n");
	if (PARSE_OK(text, &cfg))
		return;
	CHECK_INT(cfg.nr_vifs, 8);
	CHECK_STR(cfg.vifs[7].vifname, "t7");
	domcfg_free(&cfg);
	strcpy(p, "  '' ]\n");
	PARSE_ERR(text, CFG_NAME ":3: vif: must be a list of at most 8 vifs");
	/* Vifs without a name or a MAC may repeat. */
	if (PARSE_OK(MIN_CFG "vif = [ '', '', 'bridge=br0', 'bridge=br0' ]",
		     &cfg) == 0)
		CHECK_INT(cfg.nr_vifs, 4);
	domcfg_free(&cfg);
}

/* ------------------------------------------------------------ errors */

static void test_vif_refused(void)
{
	VIF_ERR("mac=00:16:3e:74:34", "vif[0]: mac '00:16:3e:74:34' is not "
		"XX:XX:XX:XX:XX:XX");
	VIF_ERR("mac=00-16-3e-74-34-32", "vif[0]: mac '00-16-3e-74-34-32' is "
		"not XX:XX:XX:XX:XX:XX");
	VIF_ERR("mac=0:16:3e:74:34:32", "vif[0]: mac '0:16:3e:74:34:32' is "
		"not XX:XX:XX:XX:XX:XX");
	VIF_ERR("mac=00:16:3e:74:34:3g", "vif[0]: mac '00:16:3e:74:34:3g' is "
		"not XX:XX:XX:XX:XX:XX");
	VIF_ERR("mac=00:16:3e:74:34:32:01", "vif[0]: mac "
		"'00:16:3e:74:34:32:01' is not XX:XX:XX:XX:XX:XX");
	VIF_ERR("mac=01:00:5e:00:00:01", "vif[0]: mac 01:00:5e:00:00:01 is a "
		"multicast address");
	VIF_ERR("mac=ff:ff:ff:ff:ff:ff", "vif[0]: mac ff:ff:ff:ff:ff:ff is a "
		"multicast address");
	VIF_ERR("mac=33:33:00:00:00:01", "vif[0]: mac 33:33:00:00:00:01 is a "
		"multicast address");
	VIF_ERR("mac=00:00:00:00:00:00", "vif[0]: mac 00:00:00:00:00:00 is "
		"all zero");
	VIF_ERR("model=e1000", "vif[0]: unsupported vif model 'e1000' (only "
		"virtio-net)");
	VIF_ERR("model=rtl8139,bridge=xenbr0", "vif[0]: unsupported vif "
		"model 'rtl8139' (only virtio-net)");
	VIF_ERR("type=pv", "vif[0]: type must be ioemu or vif, not 'pv'");
	VIF_ERR("vhost=2", "vif[0]: vhost must be 0 or 1");
	VIF_ERR("vhost=yes", "vif[0]: vhost must be 0 or 1");
	VIF_ERR("announce=2", "vif[0]: announce must be 0 or 1");
	VIF_ERR("script=vif-bridge", "vif[0]: script= is not supported (no "
		"hotplug scripts: bridge= names the bridge to join)");
	VIF_ERR("bridge=xenbr0,script=", "vif[0]: script= is not supported "
		"(no hotplug scripts: bridge= names the bridge to join)");
	VIF_ERR("ip=192.0.2.1", "vif[0]: vif option 'ip' is not supported");
	VIF_ERR("rate=10Mb/s", "vif[0]: vif option 'rate' is not supported");
	VIF_ERR("bogus=1", "vif[0]: unknown vif option 'bogus'");
	VIF_ERR("bridge", "vif[0]: 'bridge' is not KEY=VALUE");
	VIF_ERR("bridge=a,,vifname=b", "vif[0]: empty option");
	VIF_ERR("mac=00:16:3e:00:00:01,mac=00:16:3e:00:00:02",
		"vif[0]: option 'mac' given twice");
	VIF_ERR("bridge=abcdefghijklmnop", "vif[0]: bridge must be 1-15 "
		"characters of [A-Za-z0-9_.-]");
	VIF_ERR("vifname=tap 0", "vif[0]: vifname must be 1-15 characters of "
		"[A-Za-z0-9_.-]");
	VIF_ERR("vifname=a/b", "vif[0]: vifname must be 1-15 characters of "
		"[A-Za-z0-9_.-]");
	VIF_ERR("vifname=..", "vif[0]: vifname must be 1-15 characters of "
		"[A-Za-z0-9_.-]");
	PARSE_ERR(MIN_CFG "vif = [ 'vifname=v0', 'bridge=br0',\n"
		  "        'vifname=v0' ]\n",
		  CFG_NAME ":3: vif[2]: duplicate vifname 'v0' (also vif[0])");
	PARSE_ERR(MIN_CFG "vif = [ 'mac=00:16:3e:00:00:01',\n"
		  "        'mac=00:16:3E:00:00:01' ]\n",
		  CFG_NAME ":3: vif[1]: duplicate mac 00:16:3e:00:00:01 (also "
		  "vif[0])");
	PARSE_ERR(MIN_CFG "vif = 'bridge=br0'\n",
		  CFG_NAME ":3: vif: must be a list of at most 8 vifs");
	PARSE_ERR(MIN_CFG "vif = [ 0 ]\n",
		  CFG_NAME ":3: vif: list items must be strings");
}

/* ------------------------------------------------------------ JSON */

static void test_vif_json(void)
{
	struct domcfg cfg;

	JSON_ERR("{" J_MIN ", \"vif\": [{\"mac\": \"01:00:5e:00:00:01\"}]}",
		 "config.vif[0]: mac 01:00:5e:00:00:01 is a multicast "
		 "address");
	JSON_ERR("{" J_MIN ", \"vif\": [{}, {\"script\": \"vif-bridge\"}]}",
		 "config.vif[1]: script= is not supported (no hotplug scripts: "
		 "bridge= names the bridge to join)");
	JSON_ERR("{" J_MIN ", \"vif\": [{\"vhost\": \"yes\"}]}",
		 "config.vif[0]: vhost must be 0 or 1");
	JSON_ERR("{" J_MIN ", \"vif\": [{\"bridge\": 1}]}",
		 "config.vif[0]: bridge must be a string without NUL bytes");
	JSON_ERR("{" J_MIN ", \"vif\": [\"model=e1000\"]}",
		 "config.vif[0]: unsupported vif model 'e1000' (only "
		 "virtio-net)");
	JSON_ERR("{" J_MIN ", \"vif\": [[]]}",
		 "config.vif[0]: must be an object or a string");
	if (JSON_OK("{" J_MIN ", \"vif\": [{\"vhost\": true, \"bridge\": "
		    "\"br0\"}, \"mac=00:16:3e:01:02:03,vhost=1\", "
		    "{\"vhost\": 0, \"model\": \"virtio-net\"}]}", &cfg))
		return;
	CHECK_INT(cfg.nr_vifs, 3);
	if (cfg.nr_vifs == 3) {
		CHECK(cfg.vifs[0].vhost);
		CHECK_STR(cfg.vifs[0].bridge, "br0");
		MAC_IS(&cfg.vifs[1], "00:16:3e:01:02:03");
		CHECK(cfg.vifs[1].vhost);
		CHECK(!cfg.vifs[2].vhost);
	}
	domcfg_free(&cfg);
}

static bool same_str(const char *a, const char *b)
{
	return a && b ? !strcmp(a, b) : a == b;
}

static bool same_vifs(const struct domcfg *a, const struct domcfg *b)
{
	unsigned int i;

	if (a->nr_vifs != b->nr_vifs)
		return false;
	for (i = 0; i < a->nr_vifs; i++) {
		const struct domcfg_vif *x = &a->vifs[i], *y = &b->vifs[i];

		if (x->mac_set != y->mac_set ||
		    (x->mac_set && memcmp(x->mac, y->mac, 6)) ||
		    !same_str(x->bridge, y->bridge) ||
		    !same_str(x->vifname, y->vifname) ||
		    !same_str(x->origin, y->origin) || x->vhost != y->vhost ||
		    x->guest_announce != y->guest_announce)
			return false;
	}
	return true;
}

/* @cfg through domcfg_to_json() and domcfg_from_json() into @back. */
static int json_trip(const struct domcfg *cfg, struct domcfg *back)
{
	json_t *obj = domcfg_to_json(cfg);
	char err[512] = "";
	int rc = domcfg_from_json(obj, back, err, sizeof(err));

	CHECK_STR(err, "");
	json_decref(obj);
	return rc;
}

static void test_vif_round_trip(void)
{
	struct domcfg cfg, back, copy;
	json_t *obj, *v;

	if (PARSE_OK(MIN_CFG "vif = [ '', 'mac=00:16:3e:0a:0b:0c,bridge=br0,"
		     "vifname=v1,vhost=1,announce=1' ]\n", &cfg))
		return;
	CHECK(!cfg.vifs[0].guest_announce);
	CHECK(cfg.vifs[1].guest_announce);
	obj = domcfg_to_json(&cfg);
	v = json_array_get(json_object_get(obj, "vif"), 1);
	CHECK_STR(json_string_value(json_object_get(v, "mac")),
		  "00:16:3e:0a:0b:0c");
	CHECK_STR(json_string_value(json_object_get(v, "model")),
		  "virtio-net");
	CHECK(json_is_true(json_object_get(v, "vhost")));
	CHECK(json_is_true(json_object_get(v, "announce")));
	v = json_array_get(json_object_get(obj, "vif"), 0);
	CHECK(json_object_get(v, "mac") == NULL);
	CHECK(json_is_false(json_object_get(v, "vhost")));
	/* Not said when off: a build without it reads the config as ever. */
	CHECK(json_object_get(v, "announce") == NULL);
	json_decref(obj);
	CHECK_INT(json_trip(&cfg, &back), 0);
	CHECK(same_vifs(&cfg, &back));
	CHECK_INT(domcfg_copy(&copy, &cfg), 0);
	CHECK(same_vifs(&cfg, &copy));
	CHECK(copy.vifs != cfg.vifs);
	domcfg_free(&copy);
	domcfg_free(&back);
	domcfg_free(&cfg);
}

/* ------------------------------------------------------------ MACs */

/* Every vif has a MAC in libxl's half of Xen's OUI, all different. */
static void check_filled(const struct domcfg *cfg)
{
	unsigned int i, j;

	for (i = 0; i < cfg->nr_vifs; i++) {
		const uint8_t *m = cfg->vifs[i].mac;

		CHECK(cfg->vifs[i].mac_set);
		CHECK(m[0] == 0x00 && m[1] == 0x16 && m[2] == 0x3e);
		CHECK(m[3] < 0x80);
		for (j = 0; j < i; j++)
			CHECK(memcmp(m, cfg->vifs[j].mac, 6) != 0);
	}
}

static void test_fill_mac(void)
{
	struct domcfg cfg, copy, back;
	int round;

	if (PARSE_OK(MIN_CFG "vif = [ '', 'mac=00:16:3e:7f:ff:ff', '', '',\n"
		     "  '', '', '', 'bridge=br0' ]\n", &cfg))
		return;
	CHECK_INT(domcfg_vif_fill_mac(&cfg), 0);
	check_filled(&cfg);
	MAC_IS(&cfg.vifs[1], "00:16:3e:7f:ff:ff");	/* given: kept */

	/* Chosen once: a copy, the JSON form and a second fill keep it. */
	CHECK_INT(domcfg_copy(&copy, &cfg), 0);
	CHECK(same_vifs(&cfg, &copy));
	CHECK_INT(domcfg_vif_fill_mac(&copy), 0);
	CHECK(same_vifs(&cfg, &copy));
	CHECK_INT(json_trip(&copy, &back), 0);
	CHECK(same_vifs(&cfg, &back));
	domcfg_free(&copy);
	domcfg_free(&back);
	domcfg_free(&cfg);

	/* Many fills: each valid (the daemon accepts it back), no clash. */
	for (round = 0; round < 200; round++) {
		if (PARSE_OK(MIN_CFG "vif = [ '', '', '', '', '', '', '', '' ]",
			     &cfg))
			return;
		CHECK_INT(domcfg_vif_fill_mac(&cfg), 0);
		check_filled(&cfg);
		CHECK_INT(json_trip(&cfg, &back), 0);
		CHECK(same_vifs(&cfg, &back));
		domcfg_free(&back);
		domcfg_free(&cfg);
	}

	/* No vifs: nothing to do. */
	if (PARSE_OK(MIN_CFG, &cfg) == 0)
		CHECK_INT(domcfg_vif_fill_mac(&cfg), 0);
	domcfg_free(&cfg);
}

int main(void)
{
	test_vif_forms();
	test_vif_many();
	test_vif_refused();
	test_vif_json();
	test_vif_round_trip();
	test_fill_mac();
	return unit_done();
}
