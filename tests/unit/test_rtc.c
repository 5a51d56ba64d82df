// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of the CMOS RTC, run without KVM: the MC146818 register
 * model (xen/dev/mc146818.c) on a clock the test sets, then the port pair
 * of xen/dev/rtc.c (index latch, NVRAM sizes, record) built against the
 * stubs below, as Xen's tools/tests/vpci builds vpci.c.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dev/devices.h"
#include "dev/mc146818.h"
#include "domain.h"
#include "ioport.h"
#include "records.h"
#include "stream.h"
#include "unit.h"

#define SEC	MC146818_SEC
#define MIN	MC146818_MIN
#define HOUR	MC146818_HOUR
#define WDAY	MC146818_WDAY
#define MDAY	MC146818_MDAY
#define MON	MC146818_MON
#define YEAR	MC146818_YEAR
#define CENTURY	MC146818_CENTURY
#define REG_A	MC146818_REG_A
#define REG_B	MC146818_REG_B
#define REG_C	MC146818_REG_C
#define REG_D	MC146818_REG_D

#define T0	1709214356	/* Thursday 2024-02-29 13:45:56 UTC */

#define NS	1000000000LL
#define MID	(NS / 2)		/* mid-second: no update in progress */

static int64_t now = T0;		/* seconds */
static int64_t now_ns = MID;		/* and the fraction of the second */

static int64_t test_clock(void)
{
	return now * NS + now_ns;
}

static struct mc146818 *fresh(void)
{
	static struct mc146818 m;

	now = T0;
	now_ns = MID;
	mc146818_reset(&m, test_clock);
	return &m;
}

/* The time registers, in the order sec min hour wday mday mon year cent. */
static void check_time_at(int line, struct mc146818 *m, const uint8_t *want)
{
	static const unsigned idx[] = { SEC, MIN, HOUR, WDAY, MDAY, MON, YEAR,
					CENTURY };
	unsigned i, v;

	for (i = 0; i < 8; i++) {
		v = mc146818_read(m, idx[i]);
		unit_check(v == want[i], __FILE__, line,
			   "register %#x is %#x, want %#x", idx[i], v, want[i]);
	}
}

#define CHECK_TIME(m, ...) \
	check_time_at(__LINE__, m, (const uint8_t[]){ __VA_ARGS__ })

static void test_reset(void)
{
	struct mc146818 *m = fresh();

	CHECK_INT(mc146818_read(m, REG_A), 0x26);
	CHECK_INT(mc146818_read(m, REG_B), 0x02);	/* 24 h, BCD */
	CHECK_INT(mc146818_read(m, REG_C), 0x00);
	CHECK_INT(mc146818_read(m, REG_D), 0x80);	/* valid RAM, time */
	CHECK_INT(m->offset_s, 0);
}

static void test_bcd_and_binary(void)
{
	struct mc146818 *m = fresh();

	CHECK_TIME(m, 0x56, 0x45, 0x13, 0x05, 0x29, 0x02, 0x24, 0x20);
	mc146818_write(m, REG_B, 0x06);			/* binary */
	CHECK_TIME(m, 56, 45, 13, 5, 29, 2, 24, 20);
	now += 3600 * 24 + 61;			/* the clock runs */
	CHECK_TIME(m, 57, 46, 13, 6, 1, 3, 24, 20);
	mc146818_write(m, REG_B, 0x02);
	CHECK_TIME(m, 0x57, 0x46, 0x13, 0x06, 0x01, 0x03, 0x24, 0x20);
}

static void test_12_hour(void)
{
	struct mc146818 *m = fresh();

	mc146818_write(m, REG_B, 0x00);			/* 12 h, BCD */
	CHECK_INT(mc146818_read(m, HOUR), 0x81);	/* 1 PM */
	now = T0 - 13 * 3600;				/* 00:45 */
	CHECK_INT(mc146818_read(m, HOUR), 0x12);	/* 12 AM */
	now = T0 - 3600;				/* 12:45 */
	CHECK_INT(mc146818_read(m, HOUR), 0x92);	/* 12 PM */
	now = T0 - 3 * 3600;				/* 10:45 */
	CHECK_INT(mc146818_read(m, HOUR), 0x10);
	now = T0 + 10 * 3600;				/* 23:45 */
	CHECK_INT(mc146818_read(m, HOUR), 0x91);
	mc146818_write(m, REG_B, 0x04);			/* 12 h, binary */
	CHECK_INT(mc146818_read(m, HOUR), 0x8b);	/* 11 PM */
	now = T0 - 3 * 3600;
	CHECK_INT(mc146818_read(m, HOUR), 10);
}

static void test_set_time(void)
{
	struct mc146818 *m = fresh();

	CHECK_INT(mc146818_read(m, SEC), 0x56);
	mc146818_write(m, REG_B, 0x82);			/* SET */
	now += 100;				/* frozen while SET */
	CHECK_INT(mc146818_read(m, SEC), 0x56);
	mc146818_write(m, SEC, 0x58);
	mc146818_write(m, MIN, 0x59);
	mc146818_write(m, HOUR, 0x23);
	mc146818_write(m, MDAY, 0x31);
	mc146818_write(m, MON, 0x12);
	mc146818_write(m, YEAR, 0x99);
	mc146818_write(m, CENTURY, 0x19);
	CHECK_INT(mc146818_read(m, MIN), 0x59);
	CHECK_INT(m->offset_s, 0);
	mc146818_write(m, REG_B, 0x02);			/* adopt it */
	CHECK_INT(m->offset_s, 946684798 - (T0 + 100));
	CHECK_TIME(m, 0x58, 0x59, 0x23, 0x06, 0x31, 0x12, 0x99, 0x19);
	now += 2;				/* and it runs on from there */
	CHECK_TIME(m, 0x00, 0x00, 0x00, 0x07, 0x01, 0x01, 0x00, 0x20);

	mc146818_write(m, REG_B, 0x84);		/* SET, 12 h binary */
	mc146818_write(m, HOUR, 0x81);			/* 1 PM */
	mc146818_write(m, MIN, 0);
	mc146818_write(m, SEC, 0);
	mc146818_write(m, MDAY, 29);
	mc146818_write(m, MON, 2);
	mc146818_write(m, YEAR, 24);
	mc146818_write(m, CENTURY, 20);
	mc146818_write(m, REG_B, 0x04);			/* SET off */
	CHECK_INT(m->offset_s, T0 - 45 * 60 - 56 - now);
	CHECK_TIME(m, 0, 0, 0x81, 5, 29, 2, 24, 20);
	mc146818_write(m, REG_B, 0x06);			/* now 24 h */
	CHECK_INT(mc146818_read(m, HOUR), 13);

	mc146818_write(m, SEC, 0x30);		/* not SET: the clock wins */
	CHECK_INT(mc146818_read(m, SEC), 0);
	CHECK_INT(m->offset_s, T0 - 45 * 60 - 56 - now);
}

static void test_status_registers(void)
{
	struct mc146818 *m = fresh();

	mc146818_write(m, REG_A, 0xff);
	CHECK_INT(mc146818_read(m, REG_A), 0x7f);	/* UIP read-only */
	mc146818_write(m, REG_C, 0xff);
	CHECK_INT(mc146818_read(m, REG_C), 0x00);	/* read-only */
	m->cmos[REG_C] = 0xf0;				/* flags raised */
	CHECK_INT(mc146818_read(m, REG_C), 0xf0);
	CHECK_INT(mc146818_read(m, REG_C), 0x00);	/* reading cleared */
	mc146818_write(m, REG_D, 0x00);
	CHECK_INT(mc146818_read(m, REG_D), 0x80);	/* read-only */
	mc146818_write(m, REG_B, 0x7e);			/* the rest is kept */
	CHECK_INT(mc146818_read(m, REG_B), 0x7e);
}

/*
 * UIP rises 244 us before the seconds register advances and falls 1984 us
 * after (the datasheet's tBUC + tUC); a guest that waits for it to rise
 * and fall (kvm-unit-tests' s3) must see both.  Not while the divider is
 * stopped or the guest holds SET.
 */
static void test_update_in_progress(void)
{
	struct mc146818 *m = fresh();

	CHECK_INT(mc146818_read(m, REG_A), 0x26);
	now_ns = NS - 244001;				/* just before */
	CHECK_INT(mc146818_read(m, REG_A), 0x26);
	now_ns = NS - 244000;
	CHECK_INT(mc146818_read(m, REG_A), 0xa6);
	CHECK_INT(mc146818_read(m, SEC), 0x56);		/* not yet advanced */
	now++;
	now_ns = 0;					/* the edge */
	CHECK_INT(mc146818_read(m, REG_A), 0xa6);
	CHECK_INT(mc146818_read(m, SEC), 0x57);
	now_ns = 1983999;
	CHECK_INT(mc146818_read(m, REG_A), 0xa6);
	now_ns = 1984000;				/* the update is over */
	CHECK_INT(mc146818_read(m, REG_A), 0x26);

	now_ns = 1000;
	mc146818_write(m, REG_A, 0x80 | 0x66);		/* divider in reset */
	CHECK_INT(mc146818_read(m, REG_A), 0x66);
	mc146818_write(m, REG_A, 0x26);
	CHECK_INT(mc146818_read(m, REG_A), 0xa6);
	mc146818_write(m, REG_B, 0x82);			/* SET */
	CHECK_INT(mc146818_read(m, REG_A), 0x26);
	mc146818_write(m, REG_B, 0x02);
	CHECK_INT(mc146818_read(m, REG_A), 0xa6);
}

static void test_nvram(void)
{
	struct mc146818 *m = fresh();
	unsigned i, bad = 0;

	for (i = 0x0e; i < MC146818_NR_REGS; i++)
		if (i != CENTURY)
			mc146818_write(m, i, i ^ 0x5a);
	mc146818_read(m, SEC);				/* a clock refresh */
	for (i = 0x0e; i < MC146818_NR_REGS; i++)
		if (i != CENTURY)
			bad += mc146818_read(m, i) != (i ^ 0x5a);
	CHECK_INT(bad, 0);
	CHECK_INT(mc146818_read(m, 0x7f), 0x7f ^ 0x5a);
	CHECK_INT(mc146818_read(m, CENTURY), 0x20);
	CHECK_INT(mc146818_read(m, REG_D), 0x80);
}

/* ------------------------------------------ rtc.c against stubs */

static struct device_type *rtc_type;
static ioport_fn rtc_port_fn;
static void *rtc_port_opaque;
static uint16_t rtc_port_base, rtc_port_len;
static uint32_t saved_type;
static uint8_t saved[sizeof(struct rec_dev_rtc)];
static size_t saved_len;

void device_register(struct device_type *t)
{
	if (!strcmp(t->name, "rtc"))
		rtc_type = t;
}

int ioport_register(struct ioport_map *map, uint16_t base, uint16_t len,
		    ioport_fn fn, void *opaque, const char *owner)
{
	rtc_port_base = base;
	rtc_port_len = len;
	rtc_port_fn = fn;
	rtc_port_opaque = opaque;
	return 0;
}

int stream_write_record(struct stream_writer *w, uint32_t type,
			uint32_t flags, const void *body, uint32_t len)
{
	saved_type = type;
	saved_len = len;
	memcpy(saved, body, len < sizeof(saved) ? len : sizeof(saved));
	return 0;
}

static void outb(uint16_t port, uint8_t v)
{
	uint32_t val = v;

	rtc_port_fn(NULL, rtc_port_opaque, port, true, 1, &val);
}

static uint8_t inb(uint16_t port)
{
	uint32_t val = 0xdeadbeef;

	rtc_port_fn(NULL, rtc_port_opaque, port, false, 1, &val);
	return val;
}

static uint8_t cmos_read(uint8_t idx)
{
	outb(0x70, idx);
	return inb(0x71);
}

static void cmos_write(uint8_t idx, uint8_t v)
{
	outb(0x70, idx);
	outb(0x71, v);
}

static void *rtc_make(struct domain *dom, uint64_t low, uint64_t size,
		      unsigned vcpus)
{
	void *state = calloc(1, rtc_type->state_size);

	memset(dom, 0, sizeof(*dom));
	dom->mem.low_size = low;
	dom->mem.size = size;
	dom->cfg.vcpus = vcpus;
	CHECK_INT(rtc_type->init(dom, state, NULL, 0), 0);
	CHECK(rtc_port_opaque == state);
	return state;
}

static void rtc_free(struct domain *dom, void *state)
{
	rtc_type->destroy(dom, state);
	free(state);
}

static void test_glue_registration(void)
{
	CHECK(rtc_type != NULL);
	if (!rtc_type)
		return;
	CHECK_INT(rtc_type->rec_type, REC_DEV_RTC);
	CHECK(rtc_type->stateless == NULL);
	CHECK(rtc_type->save && rtc_type->load);
}

static void test_glue_index_and_nvram(void)
{
	static struct domain dom;
	void *state = rtc_make(&dom, 3ull << 30, 9ull << 29, 2);

	CHECK_INT(rtc_port_base, 0x70);
	CHECK_INT(rtc_port_len, 2);
	outb(0x70, 0x8f);		/* bit 7 is the NMI mask */
	CHECK_INT(inb(0x70), 0x0f);
	outb(0x71, 0x77);
	CHECK_INT(cmos_read(0x0f), 0x77);
	outb(0x70, 0x10);
	outb(0x71, 0xa5);
	CHECK_INT(cmos_read(0x90), 0xa5);	/* 0x90 is byte 0x10 */
	CHECK_INT(inb(0x70), 0x10);
	CHECK_INT(cmos_read(0xff), cmos_read(0x7f));
	CHECK_INT(cmos_read(0x8d), 0x80);		/* REG_D */

	/* 3 GiB below 4 GiB, 1.5 GiB above; 2 vCPUs. */
	CHECK_INT(cmos_read(0x15) | cmos_read(0x16) << 8, 640);
	CHECK_INT(cmos_read(0x17) | cmos_read(0x18) << 8, 0xffff);
	CHECK_INT(cmos_read(0x30) | cmos_read(0x31) << 8, 0xffff);
	CHECK_INT(cmos_read(0x34) | cmos_read(0x35) << 8,
		  ((3u << 30) - (16u << 20)) >> 16);
	CHECK_INT(cmos_read(0x5b), 0x00);
	CHECK_INT(cmos_read(0x5c), 0x60);		/* 0x60000000 bytes */
	CHECK_INT(cmos_read(0x5d), 0x00);
	CHECK_INT(cmos_read(0x5f), 1);
	rtc_free(&dom, state);

	state = rtc_make(&dom, 64u << 20, 64u << 20, 1);
	CHECK_INT(cmos_read(0x17) | cmos_read(0x18) << 8, 63 * 1024);
	CHECK_INT(cmos_read(0x34) | cmos_read(0x35) << 8, 48 * 16);
	CHECK_INT(cmos_read(0x5c), 0);
	CHECK_INT(cmos_read(0x5f), 0);
	rtc_free(&dom, state);
}

/* The RTC runs on the host's clock: allow for midnight passing. */
static bool read_mday_is_yesterday(void)
{
	time_t before = time(NULL) - 86400, after;
	unsigned mday = cmos_read(MDAY);
	struct tm a, b;

	after = time(NULL) - 86400;
	gmtime_r(&before, &a);
	gmtime_r(&after, &b);
	return mday == (unsigned)a.tm_mday || mday == (unsigned)b.tm_mday;
}

static void test_glue_record(void)
{
	static struct domain dom;
	struct rec_dev_rtc rec;
	char err[128] = "";
	void *state = rtc_make(&dom, 64u << 20, 64u << 20, 1);

	outb(0x70, 0x0b);
	outb(0x71, 0x82);			/* SET: time is frozen */
	cmos_write(YEAR, 0x00);			/* 2000-01-01 00:00:00 */
	cmos_write(MON, 0x01);
	cmos_write(MDAY, 0x01);
	cmos_write(CENTURY, 0x20);
	cmos_write(0x40, 0x42);
	cmos_write(0x0b, 0x02);			/* released: adopted */
	outb(0x70, 0x21);
	CHECK_INT(rtc_type->save(&dom, state, NULL), 0);
	CHECK_INT(saved_type, REC_DEV_RTC);
	CHECK_INT(saved_len, sizeof(rec));
	memcpy(&rec, saved, sizeof(rec));
	CHECK_INT(rec.index, 0x21);
	CHECK_INT(rec.cmos[0x40], 0x42);
	CHECK_INT(rec.cmos[0x0b], 0x02);
	CHECK(llabs(rec.offset_s - (946684800 - time(NULL))) <= 2);
	rtc_free(&dom, state);

	rec.index = 0xc0;			/* masked when loaded */
	rec.offset_s = -86400;			/* a day behind */
	rec.cmos[0x0b] = 0x06;			/* 24 h binary, not SET */
	state = rtc_make(&dom, 64u << 20, 64u << 20, 1);
	CHECK_INT(rtc_type->load(&dom, state, &rec, sizeof(rec), err,
				 sizeof(err)), 0);
	CHECK_INT(inb(0x70), 0x40);
	CHECK_INT(inb(0x71), 0x42);
	CHECK(read_mday_is_yesterday());
	rtc_free(&dom, state);
}

int main(void)
{
	test_reset();
	test_bcd_and_binary();
	test_12_hour();
	test_set_time();
	test_status_registers();
	test_update_in_progress();
	test_nvram();
	test_glue_registration();
	if (rtc_type) {
		test_glue_index_and_nvram();
		test_glue_record();
	}
	return unit_done();
}
