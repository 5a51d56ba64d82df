// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of the xl.cfg parser (common/xlcfg.c) and of the domain
 * config object (common/domcfg.c).  One line per failed check, then
 * "N passed, M failed"; exits 1 when anything failed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <generated/autoconf.h>

#include "domcfg.h"
#include "xlcfg.h"
#include "unit.h"
#include "cfg_check.h"

/* ------------------------------------------------------------ good */

static void test_defaults(void)
{
	struct domcfg cfg;

	if (PARSE_OK(MIN_CFG, &cfg))
		return;
	CHECK_STR(cfg.name, "t");
	CHECK_STR(cfg.kernel, "/boot/k");
	CHECK_INT(cfg.memory_mib, 128);
	CHECK_INT(cfg.vcpus, 1);
	CHECK(cfg.ramdisk == NULL);
	CHECK(cfg.cmdline == NULL);
	CHECK_INT(cfg.on_poweroff, DOMCFG_ACTION_DESTROY);
	CHECK_INT(cfg.on_reboot, DOMCFG_ACTION_RESTART);
	CHECK_INT(cfg.on_crash, DOMCFG_ACTION_DESTROY);
	CHECK(!cfg.strict_io);
	CHECK(cfg.rng);
	CHECK_INT(cfg.nr_disks, 0);
	CHECK_INT(cfg.nr_vifs, 0);
	domcfg_free(&cfg);
}

static void test_strict_io(void)
{
	struct domcfg cfg;
	json_t *obj;

	if (PARSE_OK(MIN_CFG "strict_io = 1\n", &cfg))
		return;
	CHECK(cfg.strict_io);
	obj = domcfg_to_json(&cfg);
	CHECK(json_is_true(json_object_get(obj, "strict_io")));
	json_decref(obj);
	domcfg_free(&cfg);
	PARSE_ERR(MIN_CFG "strict_io = 2\n", CFG_NAME ":3: strict_io: must "
		  "be 0 or 1");
	PARSE_ERR(MIN_CFG "strict_io = 'yes'\n", CFG_NAME ":3: strict_io: "
		  "must be 0 or 1");
}

/* rng = 1|0, default 1, a plain integer bool like strict_io. */
static void test_rng(void)
{
	struct domcfg cfg;
	json_t *obj;

	if (PARSE_OK(MIN_CFG "rng = 0\n", &cfg))
		return;
	CHECK(!cfg.rng);
	obj = domcfg_to_json(&cfg);
	CHECK(json_is_false(json_object_get(obj, "rng")));
	json_decref(obj);
	domcfg_free(&cfg);
	if (PARSE_OK(MIN_CFG "rng = 1\n", &cfg))
		return;
	CHECK(cfg.rng);
	domcfg_free(&cfg);
	PARSE_ERR(MIN_CFG "rng = 2\n", CFG_NAME ":3: rng: must be 0 or 1");
	PARSE_ERR(MIN_CFG "rng = 'yes'\n", CFG_NAME ":3: rng: must be 0 or 1");
	PARSE_ERR(MIN_CFG "rng = [1]\n", CFG_NAME ":3: rng: must be 0 or 1");
	if (JSON_OK("{" J_MIN ", \"rng\": false}", &cfg) == 0)
		CHECK(!cfg.rng);
	domcfg_free(&cfg);
	if (JSON_OK("{" J_MIN ", \"rng\": 0}", &cfg) == 0)
		CHECK(!cfg.rng);
	domcfg_free(&cfg);
	if (JSON_OK("{" J_MIN ", \"rng\": null}", &cfg) == 0)
		CHECK(cfg.rng);
	domcfg_free(&cfg);
	JSON_ERR("{" J_MIN ", \"rng\": \"1\"}", "config.rng: must be 0 or 1");
}

#ifdef CONFIG_DEV_FW_CFG
static void fw_cfg_errors(const char *big)
{
	char text[512], want[600];

	PARSE_ERR(MIN_CFG "fw_cfg = ['name=opt/x,file=/nonexistent/f']\n",
		  CFG_NAME ":3: fw_cfg: cannot read /nonexistent/f: No such "
		  "file or directory");
	snprintf(text, sizeof(text), MIN_CFG "fw_cfg = ['opt/x,file=%s']\n",
		 big);
	snprintf(want, sizeof(want), CFG_NAME ":3: fw_cfg: %s is larger "
		 "than 16777216 bytes", big);
	PARSE_ERR(text, want);
	PARSE_ERR(MIN_CFG "fw_cfg = ['name=opt/x,file=/']\n",
		  CFG_NAME ":3: fw_cfg: / is not a regular file");
	PARSE_ERR(MIN_CFG "fw_cfg = ['name=opt/"
		  "0123456789012345678901234567890123456789012345678901,"
		  "string=x']\n", CFG_NAME ":3: fw_cfg: item 1: name must be "
		  "1-55 printable ASCII characters without spaces");
	PARSE_ERR(MIN_CFG "fw_cfg = ['opt/a,string=1', 'opt/a,string=2']\n",
		  CFG_NAME ":3: fw_cfg: item 2: opt/a: duplicate name");
	PARSE_ERR(MIN_CFG "fw_cfg = ['name=opt/x']\n", CFG_NAME ":3: fw_cfg: "
		  "item 1: opt/x: needs either file= or string=");
	PARSE_ERR(MIN_CFG "fw_cfg = ['name=opt/x,string=a,file=/']\n",
		  CFG_NAME ":3: fw_cfg: / is not a regular file");
	PARSE_ERR(MIN_CFG "fw_cfg = ['name=opt/x,gen_id=g']\n",
		  CFG_NAME ":3: fw_cfg: unknown option 'gen_id' (name, file "
		  "and string are supported)");
	PARSE_ERR(MIN_CFG "fw_cfg = ['opt/x,string=a,string=b']\n",
		  CFG_NAME ":3: fw_cfg: option 'string' given twice");
	PARSE_ERR(MIN_CFG "fw_cfg = 'opt/x,string=a'\n",
		  CFG_NAME ":3: fw_cfg: must be a list of at most 32 items");
	PARSE_ERR(MIN_CFG "fw_cfg = [1]\n",
		  CFG_NAME ":3: fw_cfg: list items must be strings");
}
#endif

/* fw_cfg = [ QEMU -fw_cfg strings ]: files checked and resolved here. */
static void test_fw_cfg(void)
{
	char dir[] = "/tmp/fwcfg-XXXXXX", path[64], big[64], name[80];
	char text[512], err[512] = "";
	struct domcfg cfg, copy;
	json_t *obj;
	FILE *f;

	if (!mkdtemp(dir))
		return;
	snprintf(path, sizeof(path), "%s/data.bin", dir);
	snprintf(big, sizeof(big), "%s/big.bin", dir);
	f = fopen(path, "w");
	fputs("data", f);
	fclose(f);
	CHECK_INT(truncate(path, 4), 0);
	f = fopen(big, "w");
	fclose(f);
	CHECK_INT(truncate(big, (16 << 20) + 1), 0);
	snprintf(text, sizeof(text), MIN_CFG "fw_cfg = [ 'name=opt/s,string="
		 "a,,b',\n  'opt/f,file=data.bin' ]\n");
	snprintf(name, sizeof(name), "%s/t.cfg", dir);
#ifdef CONFIG_DEV_FW_CFG
	CHECK_INT(xlcfg_parse_buffer(name, text, &cfg, err, sizeof(err)), 0);
	CHECK_STR(err, "");
	CHECK_INT(cfg.nr_fw_cfg, 2);
	if (cfg.nr_fw_cfg == 2) {
		CHECK_STR(cfg.fw_cfg[0].name, "opt/s");
		CHECK_STR(cfg.fw_cfg[0].string, "a,b");
		CHECK(cfg.fw_cfg[0].file == NULL);
		snprintf(text, sizeof(text), "%s:3", name);
		CHECK_STR(cfg.fw_cfg[0].origin, text);
		CHECK_STR(cfg.fw_cfg[1].name, "opt/f");
		CHECK_STR(cfg.fw_cfg[1].file, path);
		CHECK_INT(domcfg_copy(&copy, &cfg), 0);
		CHECK_STR(copy.fw_cfg[1].file, path);
		domcfg_free(&copy);
		obj = domcfg_to_json(&cfg);
		domcfg_free(&cfg);
		CHECK_INT(domcfg_from_json(obj, &cfg, text, sizeof(text)), 0);
		CHECK_STR(cfg.fw_cfg[1].file, path);
		CHECK_STR(cfg.fw_cfg[0].string, "a,b");
		json_decref(obj);
	}
	domcfg_free(&cfg);
	fw_cfg_errors(big);
#else
	(void)copy;
	(void)obj;
	(void)err;
	PARSE_ERR(MIN_CFG "fw_cfg = [ 'name=opt/s,string=x' ]\n",
		  CFG_NAME ":3: fw_cfg: this build has no fw_cfg device "
		  "(CONFIG_DEV_FW_CFG)");
#endif
	if (PARSE_OK(MIN_CFG "fw_cfg = []\n", &cfg) == 0)
		CHECK_INT(cfg.nr_fw_cfg, 0);
	domcfg_free(&cfg);
	unlink(path);
	unlink(big);
	rmdir(dir);
}

static void test_all_keys(void)
{
	struct domcfg cfg;

	if (PARSE_OK("name = \"web-1.example_A\"\n"
		     "memory = 0x100\n"
		     "vcpus = 4\n"
		     "kernel = \"/boot/vmlinuz\"\n"
		     "ramdisk = \"/boot/initrd.img\"\n"
		     "cmdline = \"console=ttyS0 root=/dev/vda\"\n"
		     "on_poweroff = \"preserve\"\n"
		     "on_reboot = \"rename-restart\"\n"
		     "on_crash = \"restart\"\n", &cfg))
		return;
	CHECK_STR(cfg.name, "web-1.example_A");
	CHECK_INT(cfg.memory_mib, 256);
	CHECK_INT(cfg.vcpus, 4);
	CHECK_STR(cfg.kernel, "/boot/vmlinuz");
	CHECK_STR(cfg.ramdisk, "/boot/initrd.img");
	CHECK_STR(cfg.cmdline, "console=ttyS0 root=/dev/vda");
	CHECK_INT(cfg.on_poweroff, DOMCFG_ACTION_PRESERVE);
	CHECK_INT(cfg.on_reboot, DOMCFG_ACTION_RENAME_RESTART);
	CHECK_INT(cfg.on_crash, DOMCFG_ACTION_RESTART);
	domcfg_free(&cfg);
}

static void test_bounds_ok(void)
{
	struct domcfg cfg;

	char text[256];

	snprintf(text, sizeof(text), MIN_CFG "memory = 65536\nvcpus = %d\n",
		 CONFIG_MAX_VCPUS);
	if (PARSE_OK(text, &cfg))
		return;
	CHECK_INT(cfg.memory_mib, 65536);
	CHECK_INT(cfg.vcpus, CONFIG_MAX_VCPUS);
	domcfg_free(&cfg);
	if (PARSE_OK(MIN_CFG "memory = 1\nvcpus = 1\n", &cfg))
		return;
	CHECK_INT(cfg.memory_mib, 1);
	domcfg_free(&cfg);
	/* A leading zero is still decimal; a sign is allowed. */
	if (PARSE_OK(MIN_CFG "memory = 0010\nvcpus = +2\n", &cfg))
		return;
	CHECK_INT(cfg.memory_mib, 10);
	CHECK_INT(cfg.vcpus, 2);
	domcfg_free(&cfg);
	if (PARSE_OK(MIN_CFG "memory = 0XfF\n", &cfg))
		return;
	CHECK_INT(cfg.memory_mib, 255);
	domcfg_free(&cfg);
}

static void test_syntax(void)
{
	struct domcfg cfg;

	if (PARSE_OK("# a comment\n"
		     "\n"
		     "   \t\n"
		     "name='single' # trailing comment\n"
		     "\tkernel =\t\"/boot/k#not-a-comment\"   \n"
		     "cmdline = \"a \\\"q\\\" \\\\ \\t \\n 'x' \\'y\\'\"\n"
		     "memory=64;vcpus=2 ; on_crash = 'preserve';\n"
		     "  # indented comment", &cfg))
		return;
	CHECK_STR(cfg.name, "single");
	CHECK_STR(cfg.kernel, "/boot/k#not-a-comment");
	CHECK_STR(cfg.cmdline, "a \"q\" \\ \t \n 'x' 'y'");
	CHECK_INT(cfg.memory_mib, 64);
	CHECK_INT(cfg.vcpus, 2);
	CHECK_INT(cfg.on_crash, DOMCFG_ACTION_PRESERVE);
	domcfg_free(&cfg);

	/* CRLF line ends, no final newline, empty cmdline. */
	if (PARSE_OK("name = \"crlf\"\r\nkernel = \"/k\"\r\ncmdline = ''",
		     &cfg))
		return;
	CHECK_STR(cfg.name, "crlf");
	CHECK_STR(cfg.cmdline, "");
	domcfg_free(&cfg);

	/* UTF-8 passes through strings. */
	if (PARSE_OK(MIN_CFG "cmdline = \"caf\xc3\xa9\"\n", &cfg))
		return;
	CHECK_STR(cfg.cmdline, "caf\xc3\xa9");
	domcfg_free(&cfg);
}

static void test_lists(void)
{
	struct domcfg cfg;

	if (PARSE_OK(MIN_CFG
		     "cmdline = [ \"console=ttyS0\",  # first\n"
		     "            'quiet',\n"
		     "\n"
		     "            # a comment line inside the list\n"
		     "            \"panic=1\", ]\n"
		     "memory = 96\n", &cfg))
		return;
	CHECK_STR(cfg.cmdline, "console=ttyS0 quiet panic=1");
	CHECK_INT(cfg.memory_mib, 96);
	domcfg_free(&cfg);

	if (PARSE_OK(MIN_CFG "cmdline = []\n", &cfg))
		return;
	CHECK_STR(cfg.cmdline, "");
	domcfg_free(&cfg);

	if (PARSE_OK(MIN_CFG "cmdline = [\"one\"]", &cfg))
		return;
	CHECK_STR(cfg.cmdline, "one");
	domcfg_free(&cfg);
}

static void test_relative_paths(void)
{
	char cwd[4096], want[8192];
	struct domcfg cfg;
	char err[512] = "";

	if (PARSE_OK("name = 'r'\nkernel = 'vmlinuz'\n"
		     "ramdisk = './boot/initrd'\n", &cfg))
		return;
	CHECK_STR(cfg.kernel, "/etc/xen/vmlinuz");
	CHECK_STR(cfg.ramdisk, "/etc/xen/boot/initrd");
	domcfg_free(&cfg);

	/* An empty ramdisk means none. */
	if (PARSE_OK(MIN_CFG "ramdisk = ''\n", &cfg))
		return;
	CHECK(cfg.ramdisk == NULL);
	domcfg_free(&cfg);

	/* A config named relative to the working directory. */
	if (!getcwd(cwd, sizeof(cwd)))
		return;
	CHECK_INT(xlcfg_parse_buffer("sub/t.cfg", "name='r'\nkernel='k.elf'",
				     &cfg, err, sizeof(err)), XLCFG_OK);
	snprintf(want, sizeof(want), "%s/sub/k.elf",
		 strcmp(cwd, "/") ? cwd : "");
	CHECK_STR(cfg.kernel, want);
	domcfg_free(&cfg);

	CHECK_INT(xlcfg_parse_buffer("t.cfg", "name='r'\nkernel='k.elf'",
				     &cfg, err, sizeof(err)), XLCFG_OK);
	snprintf(want, sizeof(want), "%s/k.elf", strcmp(cwd, "/") ? cwd : "");
	CHECK_STR(cfg.kernel, want);
	domcfg_free(&cfg);
}

/* ------------------------------------------------------------ files */

static char tmpdir[] = "/tmp/test_xlcfg.XXXXXX";

static void write_file_n(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");

	if (!f || fwrite(text, 1, len, f) != len)
		unit_check(0, __FILE__, __LINE__, "cannot write %s", path);
	if (f)
		fclose(f);
}

static void write_file(const char *path, const char *text)
{
	write_file_n(path, text, strlen(text));
}

static void test_files(void)
{
	char path[256], want[512], err[512] = "";
	struct domcfg cfg;
	int rc;

	if (!mkdtemp(tmpdir)) {
		unit_check(0, __FILE__, __LINE__, "mkdtemp failed");
		return;
	}
	snprintf(path, sizeof(path), "%s/guest.cfg", tmpdir);
	write_file(path, "name = 'f'\nkernel = 'k.elf'\n");
	rc = xlcfg_parse_file(path, &cfg, err, sizeof(err));
	CHECK_INT(rc, XLCFG_OK);
	snprintf(want, sizeof(want), "%s/k.elf", tmpdir);
	CHECK_STR(cfg.kernel, want);
	domcfg_free(&cfg);

	/* Overrides: replace values, supply a missing key, later wins. */
	write_file(path, "name = 'f'\nmemory = 64\n");
	rc = xlcfg_parse_file(path, &cfg, err, sizeof(err));
	CHECK_INT(rc, XLCFG_ERR_CONFIG);
	snprintf(want, sizeof(want), "%s:2: missing required key 'kernel'",
		 path);
	CHECK_STR(err, want);
	{
		char *ov[] = { "kernel=/boot/k", "memory=256", "memory=512",
			       "name=web2" };

		rc = xlcfg_load(path, ov, 4, &cfg, err, sizeof(err));
		CHECK_INT(rc, XLCFG_OK);
		CHECK_STR(cfg.kernel, "/boot/k");
		CHECK_INT(cfg.memory_mib, 512);
		CHECK_STR(cfg.name, "web2");
		domcfg_free(&cfg);
	}
	{
		char *ov[] = { "kernel=/boot/k", "memory=abc" };

		rc = xlcfg_load(path, ov, 2, &cfg, err, sizeof(err));
		CHECK_INT(rc, XLCFG_ERR_CONFIG);
		CHECK_STR(err, "<command line>: memory: must be an integer "
			  "between 1 and 65536");
	}

	/* NUL byte: a config error with its line. */
	write_file_n(path, "name = 'f'\nkernel = '/k'\n\0\n", 27);
	rc = xlcfg_parse_file(path, &cfg, err, sizeof(err));
	CHECK_INT(rc, XLCFG_ERR_CONFIG);
	snprintf(want, sizeof(want), "%s:3: NUL byte in file", path);
	CHECK_STR(err, want);

	/* Unreadable: an I/O error, not a config error. */
	unlink(path);
	rc = xlcfg_parse_file(path, &cfg, err, sizeof(err));
	CHECK_INT(rc, XLCFG_ERR_IO);
	CHECK(strstr(err, "No such file or directory") != NULL);
	rc = xlcfg_parse_file(tmpdir, &cfg, err, sizeof(err));
	CHECK_INT(rc, XLCFG_ERR_IO);
	rmdir(tmpdir);
}

static void test_overrides(void)
{
	char cwd[4096], want[8192], err[512] = "", arg[32];
	struct domcfg cfg;

	if (PARSE_OK(MIN_CFG "memory = 64\n", &cfg))
		return;
	CHECK_INT(xlcfg_apply_override(&cfg, "memory=256", err, sizeof(err)),
		  XLCFG_OK);
	CHECK_INT(cfg.memory_mib, 256);
	CHECK_INT(xlcfg_apply_override(&cfg, "name=bare-word", err,
				       sizeof(err)), XLCFG_OK);
	CHECK_STR(cfg.name, "bare-word");
	CHECK_INT(xlcfg_apply_override(&cfg, "name=\"quoted\"", err,
				       sizeof(err)), XLCFG_OK);
	CHECK_STR(cfg.name, "quoted");
	CHECK_INT(xlcfg_apply_override(&cfg, "cmdline=console=ttyS0 quiet",
				       err, sizeof(err)), XLCFG_OK);
	CHECK_STR(cfg.cmdline, "console=ttyS0 quiet");
	CHECK_INT(xlcfg_apply_override(&cfg, "cmdline=['a', 'b']", err,
				       sizeof(err)), XLCFG_OK);
	CHECK_STR(cfg.cmdline, "a b");
	CHECK_INT(xlcfg_apply_override(&cfg, "on_crash=preserve", err,
				       sizeof(err)), XLCFG_OK);
	CHECK_INT(cfg.on_crash, DOMCFG_ACTION_PRESERVE);
	CHECK_INT(xlcfg_apply_override(&cfg, "ramdisk=/boot/rd", err,
				       sizeof(err)), XLCFG_OK);
	CHECK_STR(cfg.ramdisk, "/boot/rd");
	CHECK_INT(xlcfg_apply_override(&cfg, "ramdisk=", err, sizeof(err)),
		  XLCFG_OK);
	CHECK(cfg.ramdisk == NULL);
	if (getcwd(cwd, sizeof(cwd))) {
		CHECK_INT(xlcfg_apply_override(&cfg, "kernel=k.elf", err,
					       sizeof(err)), XLCFG_OK);
		snprintf(want, sizeof(want), "%s/k.elf",
			 strcmp(cwd, "/") ? cwd : "");
		CHECK_STR(cfg.kernel, want);
	}

	/* Errors leave the config unchanged. */
	CHECK_INT(xlcfg_apply_override(&cfg, "memory=0", err, sizeof(err)),
		  XLCFG_ERR_CONFIG);
	CHECK_STR(err, "<command line>: memory: must be an integer between "
		  "1 and 65536");
	CHECK_INT(cfg.memory_mib, 256);
	snprintf(arg, sizeof(arg), "vcpus=%d", CONFIG_MAX_VCPUS + 1);
	CHECK_INT(xlcfg_apply_override(&cfg, arg, err, sizeof(err)),
		  XLCFG_ERR_CONFIG);
	snprintf(want, sizeof(want), "<command line>: vcpus: must be an "
		 "integer between 1 and %d", CONFIG_MAX_VCPUS);
	CHECK_STR(err, want);
	CHECK_INT(xlcfg_apply_override(&cfg, "name=12", err, sizeof(err)),
		  XLCFG_ERR_CONFIG);
	CHECK_STR(err, "<command line>: name: must be a string");
	CHECK_STR(cfg.name, "quoted");
	CHECK_INT(xlcfg_apply_override(&cfg, "bogus=1", err, sizeof(err)),
		  XLCFG_ERR_CONFIG);
	CHECK_STR(err, "<command line>: unknown key 'bogus'");
	CHECK_INT(xlcfg_apply_override(&cfg, "memory", err, sizeof(err)),
		  XLCFG_ERR_CONFIG);
	CHECK_STR(err, "<command line>: expected KEY=VALUE, got 'memory'");
	CHECK_INT(xlcfg_apply_override(&cfg, "on_reboot=soft-reset", err,
				       sizeof(err)), XLCFG_ERR_CONFIG);
	CHECK_STR(err, "<command line>: on_reboot: 'soft-reset' is not "
		  "supported by this hypervisor");
	CHECK_INT(cfg.on_reboot, DOMCFG_ACTION_RESTART);
	domcfg_free(&cfg);
}

/* ------------------------------------------------------------ errors */

static void test_errors(void)
{
	const char *head = MIN_CFG "cmdline = '";
	char long_name[80], long_cmdline[4200], want[256], vtext[256];

	PARSE_ERR(MIN_CFG "\nfoo = 1\n",
		  CFG_NAME ":4: unknown key 'foo'");
	PARSE_ERR("name = 't'\n# c\nmemory = 12x\n",
		  CFG_NAME ":3: memory: invalid number '12x'");
	PARSE_ERR(MIN_CFG "memory = 0x\n",
		  CFG_NAME ":3: memory: invalid number '0x'");
	PARSE_ERR(MIN_CFG "memory = -\n",
		  CFG_NAME ":3: memory: invalid number '-'");
	PARSE_ERR(MIN_CFG "memory = \"256\"\n",
		  CFG_NAME ":3: memory: must be an integer between 1 and "
		  "65536");
	PARSE_ERR(MIN_CFG "memory = 0\n",
		  CFG_NAME ":3: memory: must be an integer between 1 and "
		  "65536");
	PARSE_ERR(MIN_CFG "memory = 65537\n",
		  CFG_NAME ":3: memory: must be an integer between 1 and "
		  "65536");
	PARSE_ERR(MIN_CFG "memory = -1\n",
		  CFG_NAME ":3: memory: must be an integer between 1 and "
		  "65536");
	PARSE_ERR(MIN_CFG "memory = 99999999999999999999999\n",
		  CFG_NAME ":3: memory: must be an integer between 1 and "
		  "65536");
	PARSE_ERR(MIN_CFG "memory = 0xffffffffffffffffffff\n",
		  CFG_NAME ":3: memory: must be an integer between 1 and "
		  "65536");
	/* The daemon's bound: xl refuses what it would, with FILE:LINE. */
	snprintf(want, sizeof(want), CFG_NAME ":3: vcpus: must be an integer "
		 "between 1 and %d", CONFIG_MAX_VCPUS);
	PARSE_ERR(MIN_CFG "vcpus = 0\n", want);
	snprintf(vtext, sizeof(vtext), MIN_CFG "vcpus = %d\n",
		 CONFIG_MAX_VCPUS + 1);
	PARSE_ERR(vtext, want);
	PARSE_ERR(MIN_CFG "vcpus = 65\n", want);
	PARSE_ERR(MIN_CFG "memory = [1]\n",
		  CFG_NAME ":3: memory: must be an integer between 1 and "
		  "65536");
	PARSE_ERR("name = 5\nkernel = '/k'\n",
		  CFG_NAME ":1: name: must be a string");
	PARSE_ERR("name = 'a b'\n",
		  CFG_NAME ":1: name: must be 1-63 characters of "
		  "[A-Za-z0-9_.-]");
	PARSE_ERR("name = ''\n",
		  CFG_NAME ":1: name: must be 1-63 characters of "
		  "[A-Za-z0-9_.-]");
	memset(long_name, 'a', 64);
	strcpy(long_name + 64, "'\n");
	{
		char text[128] = "name = '";

		strcat(text, long_name);
		PARSE_ERR_SUB(text, ":1: name: must be 1-63 characters");
		text[8 + 63] = '\'';	/* 63 is fine */
		text[8 + 64] = '\0';
		strcat(text, "\nkernel = '/k'");
		{
			struct domcfg cfg;

			if (!PARSE_OK(text, &cfg)) {
				CHECK_INT(strlen(cfg.name), 63);
				domcfg_free(&cfg);
			}
		}
	}
	memset(long_cmdline, 'c', sizeof(long_cmdline));
	memcpy(long_cmdline, head, strlen(head));
	strcpy(long_cmdline + strlen(head) + 4096, "'\n");
	PARSE_ERR(long_cmdline,
		  CFG_NAME ":3: cmdline: is longer than 4095 bytes");
	PARSE_ERR(MIN_CFG "memory = 64\nvcpus = 2\nmemory = 128\n",
		  CFG_NAME ":5: duplicate key 'memory' (first set on line 3)");
	PARSE_ERR("name = 't\nkernel = '/k'\n",
		  CFG_NAME ":1: name: unterminated string");
	PARSE_ERR(MIN_CFG "cmdline = \"abc",
		  CFG_NAME ":3: cmdline: unterminated string");
	PARSE_ERR(MIN_CFG "cmdline = 'a\\",
		  CFG_NAME ":3: cmdline: unterminated string");
	PARSE_ERR(MIN_CFG "cmdline = [ 'a',\n 'b'\n",
		  CFG_NAME ":3: cmdline: unterminated list");
	PARSE_ERR(MIN_CFG "cmdline = [ 'a',\n\n memory = 5\n",
		  CFG_NAME ":5: cmdline: expected a string or an integer in "
		  "the list opened on line 3");
	PARSE_ERR(MIN_CFG "cmdline = [ 'a' 'b' ]\n",
		  CFG_NAME ":3: cmdline: expected ',' or ']' in the list "
		  "opened on line 3");
	PARSE_ERR(MIN_CFG "cmdline = [ ['a'] ]\n",
		  CFG_NAME ":3: cmdline: nested lists are not supported");
	PARSE_ERR(MIN_CFG "cmdline = [ 'a', 1 ]\n",
		  CFG_NAME ":3: cmdline: list items must be strings");
	PARSE_ERR(MIN_CFG "cmdline = 'a\\qb'\n",
		  CFG_NAME ":3: cmdline: invalid escape '\\q'");
	PARSE_ERR(MIN_CFG "cmdline = '\xff'\n",
		  CFG_NAME ":3: cmdline: string is not valid UTF-8");
	PARSE_ERR("kernel = '/k'\n",
		  CFG_NAME ":1: missing required key 'name'");
	PARSE_ERR("name = 'x'\nmemory = 5\n\n",
		  CFG_NAME ":3: missing required key 'kernel'");
	PARSE_ERR("", CFG_NAME ":0: missing required key 'name'");
	PARSE_ERR(MIN_CFG "on_crash = 'coredump-destroy'\n",
		  CFG_NAME ":3: on_crash: 'coredump-destroy' is not "
		  "supported by this hypervisor");
	PARSE_ERR(MIN_CFG "on_reboot = 'coredump-restart'\n",
		  CFG_NAME ":3: on_reboot: 'coredump-restart' is not "
		  "supported by this hypervisor");
	PARSE_ERR(MIN_CFG "on_poweroff = 'soft-reset'\n",
		  CFG_NAME ":3: on_poweroff: 'soft-reset' is not supported "
		  "by this hypervisor");
	PARSE_ERR(MIN_CFG "on_poweroff = 'explode'\n",
		  CFG_NAME ":3: on_poweroff: must be one of destroy, restart, "
		  "preserve, rename-restart");
	PARSE_ERR(MIN_CFG "this is garbage\n",
		  CFG_NAME ":3: syntax error: expected 'key = value'");
	PARSE_ERR(MIN_CFG "%%%\n",
		  CFG_NAME ":3: syntax error: expected 'key = value'");
	PARSE_ERR(MIN_CFG "= 5\n",
		  CFG_NAME ":3: syntax error: expected 'key = value'");
	PARSE_ERR(MIN_CFG "memory += 5\n",
		  CFG_NAME ":3: syntax error: expected 'key = value'");
	PARSE_ERR(MIN_CFG "memory =\n",
		  CFG_NAME ":3: memory: missing value");
	PARSE_ERR(MIN_CFG "memory = # nothing\n",
		  CFG_NAME ":3: memory: missing value");
	PARSE_ERR(MIN_CFG "memory = 64 128\n",
		  CFG_NAME ":3: memory: unexpected '128' after the value");
	PARSE_ERR(MIN_CFG "cmdline = bare\n",
		  CFG_NAME ":3: cmdline: invalid value 'bare' (expected a "
		  "quoted string, an integer or a list)");
	PARSE_ERR("name = 't'\nkernel = '/k'\nramdisk = 5\n",
		  CFG_NAME ":3: ramdisk: must be a string");
	PARSE_ERR("name = 't'\nkernel = ''\n",
		  CFG_NAME ":2: kernel: must be an absolute path");
}

/* ------------------------------------------------------------ JSON */

static void test_actions(void)
{
	enum domcfg_action a = DOMCFG_ACTION_DESTROY;
	int i;

	for (i = DOMCFG_ACTION_DESTROY; i <= DOMCFG_ACTION_RENAME_RESTART;
	     i++) {
		CHECK_INT(domcfg_action_from_name(domcfg_action_name(i), &a),
			  0);
		CHECK_INT(a, i);
	}
	CHECK_STR(domcfg_action_name(DOMCFG_ACTION_RENAME_RESTART),
		  "rename-restart");
	CHECK_INT(domcfg_action_from_name("soft-reset", &a), -2);
	CHECK_INT(domcfg_action_from_name("Destroy", &a), -1);
	CHECK_INT(domcfg_field_index("on_crash"), DOMCFG_F_ON_CRASH);
	CHECK_INT(domcfg_field_index("disk"), DOMCFG_F_DISK);
	CHECK_INT(domcfg_field_index("vfb"), -1);
}

static int same_cfg(const struct domcfg *a, const struct domcfg *b)
{
#define SAME_STR(x, y) ((x) && (y) ? !strcmp(x, y) : (x) == (y))
	return !strcmp(a->name, b->name) && a->memory_mib == b->memory_mib &&
	       a->vcpus == b->vcpus && SAME_STR(a->kernel, b->kernel) &&
	       SAME_STR(a->ramdisk, b->ramdisk) &&
	       SAME_STR(a->cmdline, b->cmdline) &&
	       a->on_poweroff == b->on_poweroff &&
	       a->on_reboot == b->on_reboot && a->on_crash == b->on_crash &&
	       a->strict_io == b->strict_io && a->rng == b->rng;
#undef SAME_STR
}

static void round_trip(const char *text)
{
	struct domcfg cfg, back, copy;
	char err[512] = "";
	json_t *obj;

	if (PARSE_OK(text, &cfg))
		return;
	obj = domcfg_to_json(&cfg);
	CHECK(obj != NULL);
	CHECK_INT(domcfg_from_json(obj, &back, err, sizeof(err)), 0);
	CHECK(same_cfg(&cfg, &back));
	CHECK_INT(domcfg_copy(&copy, &cfg), 0);
	CHECK(same_cfg(&cfg, &copy));
	CHECK(copy.kernel != cfg.kernel);
	domcfg_free(&copy);
	domcfg_free(&back);
	domcfg_free(&cfg);
	json_decref(obj);
}

static void test_json_round_trip(void)
{
	struct domcfg cfg;
	json_t *obj;

	round_trip(MIN_CFG);
	round_trip("name = 'full'\nmemory = 2048\nvcpus = 2\n"
		   "kernel = '/boot/vmlinuz'\nramdisk = '/boot/initrd'\n"
		   "cmdline = 'console=ttyS0'\non_poweroff = 'preserve'\n"
		   "on_reboot = 'destroy'\non_crash = 'rename-restart'\n"
		   "strict_io = 1\nrng = 0\n");
	if (PARSE_OK(MIN_CFG "on_crash = 'preserve'\n", &cfg))
		return;
	obj = domcfg_to_json(&cfg);
	CHECK_STR(json_string_value(json_object_get(obj, "name")), "t");
	CHECK_INT(json_integer_value(json_object_get(obj, "memory")), 128);
	CHECK_INT(json_integer_value(json_object_get(obj, "vcpus")), 1);
	CHECK_STR(json_string_value(json_object_get(obj, "kernel")),
		  "/boot/k");
	CHECK(json_is_null(json_object_get(obj, "ramdisk")));
	CHECK(json_is_null(json_object_get(obj, "cmdline")));
	CHECK_STR(json_string_value(json_object_get(obj, "on_crash")),
		  "preserve");
	CHECK_STR(json_string_value(json_object_get(obj, "on_reboot")),
		  "restart");
	json_decref(obj);
	domcfg_free(&cfg);
}


static void test_json_errors(void)
{
	char json[256], want[128];

	JSON_ERR("[]", "config: must be an object");
	JSON_ERR("{\"kernel\": \"/k\"}",
		 "config.name: required field missing");
	JSON_ERR("{\"name\": null, \"kernel\": \"/k\"}",
		 "config.name: required field missing");
	JSON_ERR("{\"name\": \"j\"}", "config.kernel: required field missing");
	JSON_ERR("{\"name\": \"a/b\", \"kernel\": \"/k\"}",
		 "config.name: must be 1-63 characters of [A-Za-z0-9_.-]");
	JSON_ERR("{\"name\": \"a\\u0000b\", \"kernel\": \"/k\"}",
		 "config.name: must not contain NUL bytes");
	JSON_ERR("{" J_MIN ", \"memory\": 0}",
		 "config.memory: must be an integer between 1 and 65536");
	JSON_ERR("{" J_MIN ", \"memory\": \"128\"}",
		 "config.memory: must be an integer between 1 and 65536");
	JSON_ERR("{" J_MIN ", \"memory\": 128.0}",
		 "config.memory: must be an integer between 1 and 65536");
	JSON_ERR("{" J_MIN ", \"memory\": true}",
		 "config.memory: must be an integer between 1 and 65536");
	snprintf(json, sizeof(json), "{" J_MIN ", \"vcpus\": %d}",
		 CONFIG_MAX_VCPUS + 1);
	snprintf(want, sizeof(want), "config.vcpus: must be an integer "
		 "between 1 and %d", CONFIG_MAX_VCPUS);
	JSON_ERR(json, want);
	JSON_ERR("{\"name\": \"j\", \"kernel\": \"boot/k\"}",
		 "config.kernel: must be an absolute path");
	JSON_ERR("{" J_MIN ", \"ramdisk\": \"rd\"}",
		 "config.ramdisk: must be an absolute path");
	JSON_ERR("{" J_MIN ", \"cmdline\": [\"a\"]}",
		 "config.cmdline: must be a string");
	JSON_ERR("{" J_MIN ", \"on_crash\": \"coredump-destroy\"}",
		 "config.on_crash: 'coredump-destroy' is not supported by "
		 "this hypervisor");
	JSON_ERR("{" J_MIN ", \"on_reboot\": 1}",
		 "config.on_reboot: must be a string");
}

static void test_json_accepts(void)
{
	char json[256], err[512] = "";
	struct domcfg cfg;
	json_t *obj;

	/* Unknown members ignored, null = absent, the vcpus bound. */
	snprintf(json, sizeof(json), "{" J_MIN ", \"vfb\": [1], "
		 "\"ramdisk\": null, \"memory\": null, \"vcpus\": %d}",
		 CONFIG_MAX_VCPUS);
	obj = json_loads(json, 0, NULL);
	CHECK_INT(domcfg_from_json(obj, &cfg, err, sizeof(err)), 0);
	CHECK_INT(cfg.vcpus, CONFIG_MAX_VCPUS);
	CHECK_INT(cfg.memory_mib, 128);
	CHECK(cfg.ramdisk == NULL);
	domcfg_free(&cfg);
	json_decref(obj);
}

/*
 * A long list of short strings on one line parses in time linear in its
 * size: 2 MiB of "" items took minutes when each item scanned the rest of
 * its line and each join appended with strcat (test_unit.py's timeout is
 * the hang guard; nothing here is timed).
 */
static void test_long_list_is_linear(void)
{
	const size_t items = (2u << 20) / 3;
	const char *head = MIN_CFG "cmdline = [";
	size_t hl = strlen(head), i;
	char *text = malloc(hl + items * 3 + 3), err[512] = "";
	struct domcfg cfg;

	if (!text) {
		CHECK(text != NULL);
		return;
	}
	memcpy(text, head, hl);
	for (i = 0; i < items; i++)
		memcpy(text + hl + 3 * i, "\"\",", 3);
	strcpy(text + hl + 3 * items, "]\n");
	/* Joined with spaces it is longer than a command line may be. */
	CHECK_INT(xlcfg_parse_buffer(CFG_NAME, text, &cfg, err, sizeof(err)),
		  XLCFG_ERR_CONFIG);
	CHECK_STR(err, CFG_NAME ":3: cmdline: is longer than 4095 bytes");
	strcpy(text + hl + 3 * 4000, "]\n");
	if (!PARSE_OK(text, &cfg)) {
		CHECK_INT(strlen(cfg.cmdline), 3999);
		domcfg_free(&cfg);
	}
	free(text);
}

/* A FIFO or a device as the config is refused, not waited on. */
static void test_config_not_a_file(void)
{
	char err[512] = "";
	struct domcfg cfg;

	CHECK_INT(xlcfg_parse_file("/dev/zero", &cfg, err, sizeof(err)),
		  XLCFG_ERR_IO);
	CHECK_STR(err, "cannot read /dev/zero: not a regular file");
	unlink("fifo.cfg");
	if (mkfifo("fifo.cfg", 0600) < 0) {
		CHECK(!"mkfifo fifo.cfg");
		return;
	}
	CHECK_INT(xlcfg_parse_file("fifo.cfg", &cfg, err, sizeof(err)),
		  XLCFG_ERR_IO);
	CHECK_STR(err, "cannot read fifo.cfg: not a regular file");
	unlink("fifo.cfg");
}

int main(void)
{
	test_defaults();
	test_strict_io();
	test_rng();
	test_fw_cfg();
	test_all_keys();
	test_bounds_ok();
	test_syntax();
	test_lists();
	test_relative_paths();
	test_files();
	test_overrides();
	test_errors();
	test_actions();
	test_json_round_trip();
	test_json_errors();
	test_json_accepts();
	test_long_list_is_linear();
	test_config_not_a_file();
	return unit_done();
}
