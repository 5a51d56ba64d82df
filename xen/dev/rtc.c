/*
 * The CMOS RTC at ports 0x70/0x71: the index port, whose bit 7 is the NMI
 * mask and not part of the index, and the data port onto an MC146818
 * (the register model is mc146818.c) that runs on the host's UTC clock.
 * NVRAM carries the memory sizes BIOS-era code looks for.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dev/devices.h"
#include "dev/mc146818.h"
#include "domain.h"
#include "ioport.h"
#include "stream.h"

struct rtc {
	pthread_mutex_t lock;
	struct mc146818 chip;
	uint8_t index;
};

static int64_t rtc_host_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
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
		mc146818_write(&r->chip, r->index, *val);
	} else {
		*val = mc146818_read(&r->chip, r->index);
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
static void rtc_fill_nvram(struct domain *dom, uint8_t *cmos)
{
	uint64_t low = dom->mem.low_size, high = dom->mem.size - low;
	uint64_t ext_kib = low > 0x100000 ? (low - 0x100000) >> 10 : 0;
	uint64_t above16 = low > (16 << 20) ? (low - (16 << 20)) >> 16 : 0;

	put16(cmos, 0x15, 640);
	put16(cmos, 0x17, ext_kib > 0xffff ? 0xffff : ext_kib);
	put16(cmos, 0x30, ext_kib > 0xffff ? 0xffff : ext_kib);
	put16(cmos, 0x34, above16 > 0xffff ? 0xffff : above16);
	cmos[0x5b] = (high >> 16) & 0xff;
	cmos[0x5c] = (high >> 24) & 0xff;
	cmos[0x5d] = (high >> 32) & 0xff;
	cmos[0x5f] = dom->cfg.vcpus - 1;
}

static int rtc_init(struct domain *dom, void *state, char *err,
		    size_t errlen)
{
	struct rtc *r = state;

	pthread_mutex_init(&r->lock, NULL);
	mc146818_reset(&r->chip, rtc_host_clock);
	rtc_fill_nvram(dom, r->chip.cmos);
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
	rec.offset_s = r->chip.offset_s;
	memcpy(rec.cmos, r->chip.cmos, sizeof(rec.cmos));
	pthread_mutex_unlock(&r->lock);
	return stream_write_record(w, REC_DEV_RTC, 0, &rec, sizeof(rec));
}

static int rtc_load(struct domain *dom, void *state, const void *body,
		    size_t len, char *err, size_t errlen)
{
	struct rtc *r = state;
	struct rec_dev_rtc rec;

	memcpy(&rec, body, sizeof(rec));
	pthread_mutex_lock(&r->lock);
	r->index = rec.index & 0x7f;
	r->chip.offset_s = rec.offset_s;
	memcpy(r->chip.cmos, rec.cmos, sizeof(r->chip.cmos));
	pthread_mutex_unlock(&r->lock);
	return 0;
}

_Static_assert(sizeof(((struct rec_dev_rtc *)0)->cmos) == MC146818_NR_REGS,
	       "DEV_RTC holds the whole CMOS");

static struct device_type rtc_device = {
	.name = "rtc",
	.order = 80,
	.state_size = sizeof(struct rtc),
	.rec_type = REC_DEV_RTC,
	.init = rtc_init,
	.destroy = rtc_destroy,
	.save = rtc_save,
	.load = rtc_load,
};
DEVICE_REGISTER(rtc_device);
