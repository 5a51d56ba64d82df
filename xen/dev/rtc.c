/*
 * MC146818 RTC with 128 bytes of CMOS.  Time registers are computed from
 * the host's UTC clock plus an offset the guest may move by setting the
 * clock; NVRAM carries the memory sizes BIOS-era code looks for.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dev/devices.h"
#include "domain.h"
#include "ioport.h"
#include "stream.h"

#define RTC_SEC		0x00
#define RTC_MIN		0x02
#define RTC_HOUR	0x04
#define RTC_WDAY	0x06
#define RTC_MDAY	0x07
#define RTC_MON		0x08
#define RTC_YEAR	0x09
#define RTC_REG_A	0x0a
#define RTC_REG_B	0x0b
#define RTC_REG_C	0x0c
#define RTC_REG_D	0x0d
#define RTC_CENTURY	0x32

#define REG_B_SET	0x80
#define REG_B_BINARY	0x04
#define REG_B_24H	0x02

struct rtc {
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t cmos[128];
	int64_t offset_s;	/* guest time minus host UTC, seconds */
};

static uint8_t to_bcd(const struct rtc *r, unsigned v)
{
	if (r->cmos[RTC_REG_B] & REG_B_BINARY)
		return v;
	return ((v / 10) << 4) | (v % 10);
}

static unsigned from_bcd(const struct rtc *r, uint8_t v)
{
	if (r->cmos[RTC_REG_B] & REG_B_BINARY)
		return v;
	return (v >> 4) * 10 + (v & 0x0f);
}

static uint8_t rtc_hour(const struct rtc *r, unsigned h)
{
	uint8_t pm;

	if (r->cmos[RTC_REG_B] & REG_B_24H)
		return to_bcd(r, h);
	pm = h >= 12 ? 0x80 : 0;
	h %= 12;
	return to_bcd(r, h ? h : 12) | pm;
}

/* Refresh the time registers from the host clock. */
static void rtc_sync(struct rtc *r)
{
	time_t now = time(NULL) + r->offset_s;
	struct tm tm;

	if (r->cmos[RTC_REG_B] & REG_B_SET)
		return;			/* the guest is setting the clock */
	gmtime_r(&now, &tm);
	r->cmos[RTC_SEC] = to_bcd(r, tm.tm_sec);
	r->cmos[RTC_MIN] = to_bcd(r, tm.tm_min);
	r->cmos[RTC_HOUR] = rtc_hour(r, tm.tm_hour);
	r->cmos[RTC_WDAY] = to_bcd(r, tm.tm_wday + 1);
	r->cmos[RTC_MDAY] = to_bcd(r, tm.tm_mday);
	r->cmos[RTC_MON] = to_bcd(r, tm.tm_mon + 1);
	r->cmos[RTC_YEAR] = to_bcd(r, tm.tm_year % 100);
	r->cmos[RTC_CENTURY] = to_bcd(r, (tm.tm_year + 1900) / 100);
}

/* The guest released SET: adopt its registers as the new time. */
static void rtc_adopt_guest_time(struct rtc *r)
{
	struct tm tm;
	unsigned hour = r->cmos[RTC_HOUR];

	memset(&tm, 0, sizeof(tm));
	tm.tm_sec = from_bcd(r, r->cmos[RTC_SEC]);
	tm.tm_min = from_bcd(r, r->cmos[RTC_MIN]);
	if (r->cmos[RTC_REG_B] & REG_B_24H) {
		tm.tm_hour = from_bcd(r, hour);
	} else {
		tm.tm_hour = from_bcd(r, hour & 0x7f) % 12;
		if (hour & 0x80)
			tm.tm_hour += 12;
	}
	tm.tm_mday = from_bcd(r, r->cmos[RTC_MDAY]);
	tm.tm_mon = from_bcd(r, r->cmos[RTC_MON]) - 1;
	tm.tm_year = from_bcd(r, r->cmos[RTC_CENTURY]) * 100 +
		     from_bcd(r, r->cmos[RTC_YEAR]) - 1900;
	r->offset_s = (int64_t)timegm(&tm) - time(NULL);
}

static void rtc_write_reg(struct rtc *r, uint8_t idx, uint8_t v)
{
	switch (idx) {
	case RTC_REG_A:
		r->cmos[idx] = v & 0x7f;	/* UIP is read-only */
		break;
	case RTC_REG_B:
		if ((r->cmos[idx] & REG_B_SET) && !(v & REG_B_SET)) {
			r->cmos[idx] = v;
			rtc_adopt_guest_time(r);
		}
		r->cmos[idx] = v;
		break;
	case RTC_REG_C:
	case RTC_REG_D:
		break;				/* read-only */
	default:
		r->cmos[idx] = v;
	}
}

static int rtc_io(struct vcpu *vcpu, void *opaque, uint16_t port,
		  bool is_write, unsigned size, uint32_t *val)
{
	struct rtc *r = opaque;

	pthread_mutex_lock(&r->lock);
	if (port == 0x70) {
		if (is_write)
			r->index = *val & 0x7f;	/* bit 7 is the NMI mask */
		else
			*val = r->index;
	} else if (is_write) {
		rtc_write_reg(r, r->index, *val);
	} else {
		if (r->index <= RTC_YEAR || r->index == RTC_CENTURY)
			rtc_sync(r);
		*val = r->cmos[r->index];
		if (r->index == RTC_REG_C)
			r->cmos[RTC_REG_C] = 0;	/* reading clears flags */
	}
	pthread_mutex_unlock(&r->lock);
	return 0;
}

static void put16(uint8_t *cmos, unsigned idx, unsigned v)
{
	cmos[idx] = v & 0xff;
	cmos[idx + 1] = v >> 8;
}

/* Memory sizes in the NVRAM layout PC firmware and QEMU use. */
static void rtc_fill_nvram(struct domain *dom, struct rtc *r)
{
	uint64_t low = dom->mem.low_size, high = dom->mem.size - low;
	uint64_t ext_kib = low > 0x100000 ? (low - 0x100000) >> 10 : 0;
	uint64_t above16 = low > (16 << 20) ? (low - (16 << 20)) >> 16 : 0;

	put16(r->cmos, 0x15, 640);
	put16(r->cmos, 0x17, ext_kib > 0xffff ? 0xffff : ext_kib);
	put16(r->cmos, 0x30, ext_kib > 0xffff ? 0xffff : ext_kib);
	put16(r->cmos, 0x34, above16 > 0xffff ? 0xffff : above16);
	r->cmos[0x5b] = (high >> 16) & 0xff;
	r->cmos[0x5c] = (high >> 24) & 0xff;
	r->cmos[0x5d] = (high >> 32) & 0xff;
	r->cmos[0x5f] = dom->cfg.vcpus - 1;
}

static int rtc_init(struct domain *dom, void *state)
{
	struct rtc *r = state;

	pthread_mutex_init(&r->lock, NULL);
	r->cmos[RTC_REG_A] = 0x26;	/* 32.768 kHz, 1024 Hz rate */
	r->cmos[RTC_REG_B] = REG_B_24H;
	r->cmos[RTC_REG_D] = 0x80;	/* valid RAM and time */
	rtc_fill_nvram(dom, r);
	return ioport_register(&dom->ports, 0x70, 2, rtc_io, r, "rtc");
}

static void rtc_destroy(struct domain *dom, void *state)
{
	struct rtc *r = state;

	pthread_mutex_destroy(&r->lock);
}

static int rtc_save(struct domain *dom, void *state, struct stream_writer *w)
{
	struct rtc *r = state;
	struct rec_dev_rtc rec;

	memset(&rec, 0, sizeof(rec));
	pthread_mutex_lock(&r->lock);
	rec.index = r->index;
	rec.offset_s = r->offset_s;
	memcpy(rec.cmos, r->cmos, sizeof(rec.cmos));
	pthread_mutex_unlock(&r->lock);
	return stream_write_record(w, REC_DEV_RTC, 0, &rec, sizeof(rec));
}

static int rtc_check(const void *body, size_t len, char *err,
		     size_t errlen)
{
	if (len != sizeof(struct rec_dev_rtc)) {
		snprintf(err, errlen, "DEV_RTC: %zu bytes, expected %zu", len,
			 sizeof(struct rec_dev_rtc));
		return -1;
	}
	return 0;
}

static int rtc_load(struct domain *dom, void *state, const void *body,
		    size_t len, char *err, size_t errlen)
{
	struct rtc *r = state;
	struct rec_dev_rtc rec;

	memcpy(&rec, body, sizeof(rec));
	pthread_mutex_lock(&r->lock);
	r->index = rec.index & 0x7f;
	r->offset_s = rec.offset_s;
	memcpy(r->cmos, rec.cmos, sizeof(r->cmos));
	pthread_mutex_unlock(&r->lock);
	return 0;
}

static struct device_type rtc_device = {
	.name = "rtc",
	.order = 80,
	.state_size = sizeof(struct rtc),
	.rec_type = REC_DEV_RTC,
	.init = rtc_init,
	.destroy = rtc_destroy,
	.save = rtc_save,
	.check = rtc_check,
	.load = rtc_load,
};
DEVICE_REGISTER(rtc_device);
