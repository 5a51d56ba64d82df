// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of the `disk` config key (common/domcfg_disk.c) through the
 * xl.cfg parser and the JSON config.  One line per failed check, then
 * "N passed, M failed"; exits 1 when anything failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg_check.h"

#define DISK_ERR(spec, want) \
	PARSE_ERR(MIN_CFG "disk = [ '" spec "' ]\n", CFG_NAME ":3: " want)

/* @spec as the only disk of a config, into @cfg (1 disk) or failure. */
static int one_disk_at(int line, const char *spec, struct domcfg *cfg)
{
	char text[8192];

	snprintf(text, sizeof(text), MIN_CFG "disk = [ '%s' ]\n", spec);
	if (parse_ok_at(line, text, cfg))
		return -1;
	unit_check(cfg->nr_disks == 1, __FILE__, line, "%u disks",
		   cfg->nr_disks);
	if (cfg->nr_disks == 1)
		return 0;
	domcfg_free(cfg);
	return -1;
}
#define ONE_DISK(spec, cfg) one_disk_at(__LINE__, spec, cfg)

/* @spec must give exactly this disk. */
static void disk_is_at(int line, const char *spec, const char *target,
		       const char *vdev, int readonly)
{
	struct domcfg cfg;
	struct domcfg_disk *d;

	if (one_disk_at(line, spec, &cfg))
		return;
	d = &cfg.disks[0];
	unit_check(!strcmp(d->target, target), __FILE__, line,
		   "'%s': target '%s', want '%s'", spec, d->target, target);
	unit_check(!strcmp(d->vdev, vdev), __FILE__, line,
		   "'%s': vdev '%s', want '%s'", spec, d->vdev, vdev);
	unit_check(d->readonly == readonly, __FILE__, line,
		   "'%s': readonly %d, want %d", spec, d->readonly, readonly);
	unit_check(!d->direct && !strcmp(d->serial, vdev), __FILE__, line,
		   "'%s': not the default cache and serial", spec);
	domcfg_free(&cfg);
}
#define DISK_IS(spec, target, vdev, ro) \
	disk_is_at(__LINE__, spec, target, vdev, ro)

/* ------------------------------------------------------------ good */

static void test_keyed(void)
{
	struct domcfg cfg;
	struct domcfg_disk *d;

	if (ONE_DISK("format=raw, vdev=xvdb, access=ro, cache=none, "
		     "serial=SN-0001, target=/srv/img/web.raw", &cfg))
		return;
	d = &cfg.disks[0];
	CHECK_STR(d->target, "/srv/img/web.raw");
	CHECK_STR(d->vdev, "xvdb");
	CHECK(d->readonly);
	CHECK(d->direct);
	CHECK_STR(d->serial, "SN-0001");
	CHECK_STR(d->origin, CFG_NAME ":3");
	domcfg_free(&cfg);

	/* Defaults: rw, writeback, the vdev as serial. */
	if (ONE_DISK("vdev=vda,target=/img", &cfg))
		return;
	d = &cfg.disks[0];
	CHECK(!d->readonly);
	CHECK(!d->direct);
	CHECK_STR(d->serial, "vda");
	domcfg_free(&cfg);

	/* target= takes the rest: commas, '=' and inner blanks. */
	DISK_IS("vdev=xvda, target=/srv/a,b=c d ", "/srv/a,b=c d", "xvda", 0);
	/* Blanks around items; empty values are defaults. */
	DISK_IS("  access=r ,\tvdev=hdb ,format=, target=/x", "/x", "hdb", 1);
	DISK_IS("access=,cache=,serial=,vdev=sdc,target=/x", "/x", "sdc", 0);
	DISK_IS("access=w,cache=writeback,vdev=xvdd,target=/x", "/x", "xvdd",
		0);
	DISK_IS("devtype=disk,vdev=xvde,target=/x", "/x", "xvde", 0);
	/* A serial of 20 bytes, spaces inside. */
	if (ONE_DISK("vdev=xvda,serial=ABCDEFGHIJ 123456789,target=/x",
		     &cfg) == 0)
		CHECK_STR(cfg.disks[0].serial, "ABCDEFGHIJ 123456789");
	domcfg_free(&cfg);
}

/* Xen's positional form and its deprecated syntax. */
static void test_positional(void)
{
	DISK_IS("/dev/vg/guest,raw,xvda,rw", "/dev/vg/guest", "xvda", 0);
	DISK_IS("/dev/vg/guest,raw,xvda,ro", "/dev/vg/guest", "xvda", 1);
	DISK_IS("/dev/vg/guest,,hda", "/dev/vg/guest", "hda", 0);
	DISK_IS("/img, raw, xvdb, r", "/img", "xvdb", 1);
	DISK_IS("/img,,xvdc,", "/img", "xvdc", 0);
	/* Named parameters count: the next value fills what is left. */
	DISK_IS("vdev=xvda,/img", "/img", "xvda", 0);
	DISK_IS("format=raw,/img,xvdb,ro", "/img", "xvdb", 1);
	DISK_IS("/img,raw,access=ro,xvdc", "/img", "xvdc", 1);
	/* An empty positional target may be given again as target=. */
	DISK_IS(",raw,xvdd,target=/a,b", "/a,b", "xvdd", 0);
	/* Deprecated: a prefix stands for the format; vdev:disk. */
	DISK_IS("phy:/dev/vg/lv,xvda,w", "/dev/vg/lv", "xvda", 0);
	DISK_IS("file:/img,xvdb,r", "/img", "xvdb", 1);
	DISK_IS("tap:aio:/img,xvdc", "/img", "xvdc", 0);
	DISK_IS("raw:/img,hdd,w", "/img", "hdd", 0);
	DISK_IS("/img,raw,xvde:disk,rw", "/img", "xvde", 0);
	/* Not a prefix: a letter or digit follows the colon. */
	DISK_IS("/a:b,raw,xvdf", "/a:b", "xvdf", 0);
	/* target= is taken as it is: no prefix, no positional after it. */
	DISK_IS("vdev=xvdg,target=/p,raw,xvdz", "/p,raw,xvdz", "xvdg", 0);
	DISK_IS("vdev=xvdh,target=phy:/x", "/etc/xen/phy:/x", "xvdh", 0);
}

static void test_relative_target(void)
{
	char cwd[4096], want[8192], err[512] = "";
	struct domcfg cfg;

	DISK_IS("img/web.raw,raw,xvda", "/etc/xen/img/web.raw", "xvda", 0);
	DISK_IS("vdev=xvda,target=./web.raw", "/etc/xen/web.raw", "xvda", 0);
	DISK_IS("phy:vg/lv,xvda", "/etc/xen/vg/lv", "xvda", 0);
	/* An override is taken from the working directory. */
	if (!getcwd(cwd, sizeof(cwd)) || PARSE_OK(MIN_CFG, &cfg))
		return;
	CHECK_INT(xlcfg_apply_override(&cfg, "disk=['d.raw,,xvda']", err,
				       sizeof(err)), XLCFG_OK);
	snprintf(want, sizeof(want), "%s/d.raw", strcmp(cwd, "/") ? cwd : "");
	if (cfg.nr_disks == 1)
		CHECK_STR(cfg.disks[0].target, want);
	CHECK_INT(cfg.nr_disks, 1);
	domcfg_free(&cfg);
}

static void test_index(void)
{
	CHECK_INT(domcfg_disk_index("xvda"), 0);
	CHECK_INT(domcfg_disk_index("hda"), 0);
	CHECK_INT(domcfg_disk_index("sda"), 0);
	CHECK_INT(domcfg_disk_index("vda"), 0);
	CHECK_INT(domcfg_disk_index("xvdz"), 25);
	CHECK_INT(domcfg_disk_index("xvdaa"), 26);
	CHECK_INT(domcfg_disk_index("sdzz"), 701);
	CHECK_INT(domcfg_disk_index("vdaaa"), 702);
	CHECK_INT(domcfg_disk_index("xvdzzz"), 18277);
	CHECK_INT(domcfg_disk_index("xvd"), -1);
	CHECK_INT(domcfg_disk_index("xvda1"), -1);
	CHECK_INT(domcfg_disk_index("xvdA"), -1);
	CHECK_INT(domcfg_disk_index("xvdaaaa"), -1);
	CHECK_INT(domcfg_disk_index("nvme0n1"), -1);
	CHECK_INT(domcfg_disk_index(""), -1);
}

/* The 16 disks allowed, in order. */
static void test_many(void)
{
	char text[4096], *p;
	struct domcfg cfg;
	int i;

	p = text + sprintf(text, MIN_CFG "disk = [\n");
	for (i = 0; i < 16; i++)
		p += sprintf(p, "  '/d%d,,xvd%c',\n", i, 'a' + i);
	strcpy(p, "]\n");
	if (PARSE_OK(text, &cfg))
		return;
	CHECK_INT(cfg.nr_disks, 16);
	CHECK_STR(cfg.disks[15].vdev, "xvdp");
	CHECK_STR(cfg.disks[15].target, "/d15");
	domcfg_free(&cfg);
	strcpy(p, "  '/d16,,xvdq' ]\n");
	PARSE_ERR(text, CFG_NAME ":3: disk: must be a list of at most 16 "
		  "disks");
	if (PARSE_OK(MIN_CFG "disk = []\n", &cfg) == 0)
		CHECK_INT(cfg.nr_disks, 0);
	domcfg_free(&cfg);
}

/* ------------------------------------------------------------ errors */

static void test_refused(void)
{
	DISK_ERR("format=qcow2,vdev=xvda,target=/x",
		 "disk[0]: unsupported disk format 'qcow2' (only raw)");
	DISK_ERR("/x,vhd,xvda", "disk[0]: unsupported disk format 'vhd' "
		 "(only raw)");
	DISK_ERR("/x,qed,xvda", "disk[0]: unsupported disk format 'qed' "
		 "(only raw)");
	DISK_ERR("qcow2:/x,xvda", "disk[0]: unsupported disk format 'qcow2' "
		 "(only raw)");
	/* The old positional form without a prefix: 'xvda' is the format. */
	DISK_ERR("/x,xvda,w", "disk[0]: unsupported disk format 'xvda' "
		 "(only raw)");
	DISK_ERR("target=/x", "disk[0]: vdev= is required");
	DISK_ERR("vdev=xvda", "disk[0]: target= is required");
	DISK_ERR(",raw,xvda", "disk[0]: target= is required");
	DISK_ERR("", "disk[0]: target= is required");
	DISK_ERR("/x,raw,xvda1", "disk[0]: vdev 'xvda1' is not xvdX, hdX, "
		 "sdX or vdX (X: a-z, aa-zz or aaa-zzz)");
	DISK_ERR("/x,raw,nvme0n1", "disk[0]: vdev 'nvme0n1' is not xvdX, "
		 "hdX, sdX or vdX (X: a-z, aa-zz or aaa-zzz)");
	DISK_ERR("/x,raw,xvda,rx", "disk[0]: access must be rw, w, ro or r, "
		 "not 'rx'");
	DISK_ERR("cache=unsafe,vdev=xvda,target=/x", "disk[0]: unsupported "
		 "cache mode 'unsafe' (writeback or none)");
	DISK_ERR("serial=ABCDEFGHIJ1234567890X,vdev=xvda,target=/x",
		 "disk[0]: serial must be 1-20 printable ASCII characters");
	DISK_ERR("devtype=cdrom,vdev=hdc,target=/x.iso", "disk[0]: CD-ROM "
		 "devices (devtype=cdrom) are not supported");
	DISK_ERR("/x.iso,,hdc,cdrom", "disk[0]: CD-ROM devices "
		 "(devtype=cdrom) are not supported");
	DISK_ERR("raw:/x.iso,hdc:cdrom,ro", "disk[0]: CD-ROM devices "
		 "(devtype=cdrom) are not supported");
	DISK_ERR(",hdc:cdrom,r", "disk[0]: CD-ROM devices (devtype=cdrom) "
		 "are not supported");
	DISK_ERR("/x,raw,hdc:floppy", "disk[0]: unknown devtype 'floppy' "
		 "(only disk)");
	DISK_ERR("/x,raw,xvda,discard", "disk[0]: disk option 'discard' is "
		 "not supported");
	DISK_ERR("script=block-iscsi,vdev=xvda,target=/x", "disk[0]: disk "
		 "option 'script' is not supported");
	DISK_ERR("backendtype=qdisk,vdev=xvda,target=/x", "disk[0]: disk "
		 "option 'backendtype' is not supported");
	DISK_ERR("bogus=1,vdev=xvda,target=/x", "disk[0]: unknown disk "
		 "option 'bogus'");
	DISK_ERR("vdev =xvda,target=/x", "disk[0]: unknown disk option "
		 "'vdev '");
	DISK_ERR("iscsi:iqn.2001-05.com.example:disk,xvda", "disk[0]: "
		 "'iscsi:' (a block script) is not supported");
	DISK_ERR("foo:/x,xvda", "disk[0]: unknown deprecated disk prefix "
		 "'foo:'");
	DISK_ERR("vdev=xvda,vdev=xvdb,target=/x", "disk[0]: option 'vdev' "
		 "given twice");
	DISK_ERR("/x,raw,xvda,vdev=xvdb", "disk[0]: option 'vdev' given "
		 "twice");
	DISK_ERR("/x,target=/y", "disk[0]: option 'target' given twice");
	DISK_ERR("/x,raw,xvda,rw,extra", "disk[0]: too many positional "
		 "parameters ('extra')");
	PARSE_ERR(MIN_CFG "disk = '/x,raw,xvda'\n",
		  CFG_NAME ":3: disk: must be a list of at most 16 disks");
	PARSE_ERR(MIN_CFG "disk = [ 1 ]\n",
		  CFG_NAME ":3: disk: list items must be strings");
}

static void test_duplicates(void)
{
	PARSE_ERR(MIN_CFG "disk = [ '/a,,xvda',\n '/b,,xvdb',\n"
		  " '/c,,xvda' ]\n",
		  CFG_NAME ":3: disk[2]: duplicate vdev 'xvda' (also "
		  "disk[0])");
	PARSE_ERR(MIN_CFG "disk = [ '/a,,xvda', '/b,,hda' ]\n",
		  CFG_NAME ":3: disk[1]: vdev 'hda' is the same disk as "
		  "disk[0]'s 'xvda'");
	/* The second item's error names it. */
	PARSE_ERR(MIN_CFG "\n# disks\ndisk = [ '/a,,xvda',\n"
		  "         '/b,qcow2,xvdb' ]\n",
		  CFG_NAME ":5: disk[1]: unsupported disk format 'qcow2' "
		  "(only raw)");
}

/* ------------------------------------------------------------ JSON */

static void test_json(void)
{
	struct domcfg cfg;

	JSON_ERR("{" J_MIN ", \"disk\": [{\"target\": \"img\", "
		 "\"vdev\": \"xvda\"}]}",
		 "config.disk[0]: target must be an absolute path of at most "
		 "4095 bytes");
	JSON_ERR("{" J_MIN ", \"disk\": [\"img,raw,xvda\"]}",
		 "config.disk[0]: target must be an absolute path of at most "
		 "4095 bytes");
	JSON_ERR("{" J_MIN ", \"disk\": [{\"target\": \"/a\", \"vdev\": "
		 "\"xvda\"}, {\"target\": \"/b\", \"vdev\": \"xvda\"}]}",
		 "config.disk[1]: duplicate vdev 'xvda' (also disk[0])");
	JSON_ERR("{" J_MIN ", \"disk\": [{\"target\": \"/a\", \"vdev\": "
		 "\"xvda\", \"format\": \"qcow2\"}]}",
		 "config.disk[0]: unsupported disk format 'qcow2' (only raw)");
	JSON_ERR("{" J_MIN ", \"disk\": [{\"target\": \"/a\", \"vdev\": "
		 "\"xvda\", \"devtype\": \"cdrom\"}]}",
		 "config.disk[0]: CD-ROM devices (devtype=cdrom) are not "
		 "supported");
	JSON_ERR("{" J_MIN ", \"disk\": [{\"target\": 5, \"vdev\": "
		 "\"xvda\"}]}",
		 "config.disk[0]: target must be a string without NUL bytes");
	JSON_ERR("{" J_MIN ", \"disk\": [5]}",
		 "config.disk[0]: must be an object or a string");
	JSON_ERR("{" J_MIN ", \"disk\": {}}",
		 "config.disk: must be a list of at most 16 disks");
	/* A string in Xen's syntax, as xl would send an object. */
	if (JSON_OK("{" J_MIN ", \"disk\": [\"/srv/a,raw,xvda,ro\", "
		    "{\"target\": \"/srv/b\", \"vdev\": \"xvdb\", "
		    "\"access\": \"w\", \"cache\": \"none\"}], "
		    "\"unknown\": 1}", &cfg))
		return;
	CHECK_INT(cfg.nr_disks, 2);
	if (cfg.nr_disks == 2) {
		CHECK_STR(cfg.disks[0].target, "/srv/a");
		CHECK(cfg.disks[0].readonly);
		CHECK(cfg.disks[0].origin == NULL);
		CHECK(!cfg.disks[1].readonly);
		CHECK(cfg.disks[1].direct);
		CHECK_STR(cfg.disks[1].serial, "xvdb");
	}
	domcfg_free(&cfg);
}

static bool same_str(const char *a, const char *b)
{
	return a && b ? !strcmp(a, b) : a == b;
}

static bool same_disks(const struct domcfg *a, const struct domcfg *b)
{
	unsigned int i;

	if (a->nr_disks != b->nr_disks)
		return false;
	for (i = 0; i < a->nr_disks; i++) {
		const struct domcfg_disk *x = &a->disks[i], *y = &b->disks[i];

		if (!same_str(x->target, y->target) ||
		    !same_str(x->vdev, y->vdev) ||
		    !same_str(x->serial, y->serial) ||
		    !same_str(x->origin, y->origin) ||
		    x->readonly != y->readonly || x->direct != y->direct)
			return false;
	}
	return true;
}

/* to_json then from_json, and copy: the same disks. */
static void test_round_trip(void)
{
	struct domcfg cfg, back, copy;
	char err[512] = "";
	json_t *obj, *d;

	if (PARSE_OK(MIN_CFG "disk = [ 'rel.raw,raw,xvda,rw',\n"
		     "  'vdev=xvdb,access=ro,cache=none,serial=S1,"
		     "target=/a,b' ]\n", &cfg))
		return;
	obj = domcfg_to_json(&cfg);
	d = json_array_get(json_object_get(obj, "disk"), 1);
	CHECK_STR(json_string_value(json_object_get(d, "target")), "/a,b");
	CHECK_STR(json_string_value(json_object_get(d, "format")), "raw");
	CHECK_STR(json_string_value(json_object_get(d, "access")), "ro");
	CHECK_STR(json_string_value(json_object_get(d, "cache")), "none");
	CHECK_STR(json_string_value(json_object_get(d, "serial")), "S1");
	CHECK_STR(json_string_value(json_object_get(d, "origin")),
		  CFG_NAME ":3");
	CHECK_INT(domcfg_from_json(obj, &back, err, sizeof(err)), 0);
	CHECK_STR(err, "");
	CHECK(same_disks(&cfg, &back));
	CHECK_STR(back.disks[0].target, "/etc/xen/rel.raw");
	CHECK_INT(domcfg_copy(&copy, &cfg), 0);
	CHECK(same_disks(&cfg, &copy));
	CHECK(copy.disks != cfg.disks);
	CHECK(copy.disks[1].target != cfg.disks[1].target);
	domcfg_free(&copy);
	domcfg_free(&back);
	domcfg_free(&cfg);
	json_decref(obj);
}

int main(void)
{
	test_keyed();
	test_positional();
	test_relative_target();
	test_index();
	test_many();
	test_refused();
	test_duplicates();
	test_json();
	test_round_trip();
	return unit_done();
}
