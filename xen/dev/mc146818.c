/* The MC146818 register model (mc146818.h). */
#include <string.h>
#include <time.h>

#include "dev/mc146818.h"

#define NSEC_PER_SEC	1000000000LL

/*
 * The datasheet's update cycle: UIP rises 244 us (tBUC) before the time
 * registers advance and falls when the update (tUC, 1984 us) is over.
 * Guests wait for UIP to rise and fall to find the edge of a second (as
 * kvm-unit-tests' s3 does before it sets an alarm): without it they spin
 * for ever.  QEMU raises UIP for the 244 us only; the whole window keeps
 * an edge visible to a guest whose port reads are slow.
 */
#define UIP_BEFORE_NS	244000LL
#define UIP_AFTER_NS	1984000LL

static uint8_t to_bcd(const struct mc146818 *m, unsigned v)
{
	if (m->cmos[MC146818_REG_B] & MC146818_B_BINARY)
		return v;
	return ((v / 10) << 4) | (v % 10);
}

static unsigned from_bcd(const struct mc146818 *m, uint8_t v)
{
	if (m->cmos[MC146818_REG_B] & MC146818_B_BINARY)
		return v;
	return (v >> 4) * 10 + (v & 0x0f);
}

static uint8_t hour_reg(const struct mc146818 *m, unsigned h)
{
	uint8_t pm;

	if (m->cmos[MC146818_REG_B] & MC146818_B_24H)
		return to_bcd(m, h);
	pm = h >= 12 ? 0x80 : 0;
	h %= 12;
	return to_bcd(m, h ? h : 12) | pm;
}

static unsigned hour_of(const struct mc146818 *m)
{
	uint8_t hour = m->cmos[MC146818_HOUR];

	if (m->cmos[MC146818_REG_B] & MC146818_B_24H)
		return from_bcd(m, hour);
	return from_bcd(m, hour & 0x7f) % 12 + (hour & 0x80 ? 12 : 0);
}

/* Refresh the time registers from the clock. */
static void sync_time(struct mc146818 *m)
{
	time_t now = m->clock() / NSEC_PER_SEC + m->offset_s;
	struct tm tm;

	if (m->cmos[MC146818_REG_B] & MC146818_B_SET)
		return;			/* the guest is setting the clock */
	gmtime_r(&now, &tm);
	m->cmos[MC146818_SEC] = to_bcd(m, tm.tm_sec);
	m->cmos[MC146818_MIN] = to_bcd(m, tm.tm_min);
	m->cmos[MC146818_HOUR] = hour_reg(m, tm.tm_hour);
	m->cmos[MC146818_WDAY] = to_bcd(m, tm.tm_wday + 1);
	m->cmos[MC146818_MDAY] = to_bcd(m, tm.tm_mday);
	m->cmos[MC146818_MON] = to_bcd(m, tm.tm_mon + 1);
	m->cmos[MC146818_YEAR] = to_bcd(m, tm.tm_year % 100);
	m->cmos[MC146818_CENTURY] = to_bcd(m, (tm.tm_year + 1900) / 100);
}

/* The guest released SET: adopt its registers as the new time. */
static void adopt_guest_time(struct mc146818 *m)
{
	const uint8_t *c = m->cmos;
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	tm.tm_sec = from_bcd(m, c[MC146818_SEC]);
	tm.tm_min = from_bcd(m, c[MC146818_MIN]);
	tm.tm_hour = hour_of(m);
	tm.tm_mday = from_bcd(m, c[MC146818_MDAY]);
	tm.tm_mon = from_bcd(m, c[MC146818_MON]) - 1;
	tm.tm_year = from_bcd(m, c[MC146818_CENTURY]) * 100 +
		     from_bcd(m, c[MC146818_YEAR]) - 1900;
	m->offset_s = (int64_t)timegm(&tm) - m->clock() / NSEC_PER_SEC;
}

/* Register A's UIP: only while the divider runs the clock and not SET. */
static uint8_t update_in_progress(const struct mc146818 *m)
{
	int64_t frac = m->clock() % NSEC_PER_SEC;

	if ((m->cmos[MC146818_REG_A] & MC146818_A_DV) != MC146818_A_DV_RUN ||
	    (m->cmos[MC146818_REG_B] & MC146818_B_SET))
		return 0;
	if (frac >= NSEC_PER_SEC - UIP_BEFORE_NS || frac < UIP_AFTER_NS)
		return MC146818_A_UIP;
	return 0;
}

void mc146818_reset(struct mc146818 *m, int64_t (*clock)(void))
{
	memset(m, 0, sizeof(*m));
	m->clock = clock;
	m->cmos[MC146818_REG_A] = 0x26;	/* 32.768 kHz, 1024 Hz rate */
	m->cmos[MC146818_REG_B] = MC146818_B_24H;
	m->cmos[MC146818_REG_D] = 0x80;	/* valid RAM and time */
}

uint8_t mc146818_read(struct mc146818 *m, unsigned idx)
{
	uint8_t v;

	if (idx <= MC146818_YEAR || idx == MC146818_CENTURY)
		sync_time(m);
	v = m->cmos[idx];
	if (idx == MC146818_REG_A)
		v |= update_in_progress(m);
	if (idx == MC146818_REG_C)
		m->cmos[MC146818_REG_C] = 0;	/* reading clears flags */
	return v;
}

void mc146818_write(struct mc146818 *m, unsigned idx, uint8_t v)
{
	uint8_t old = m->cmos[idx];

	switch (idx) {
	case MC146818_REG_A:
		m->cmos[idx] = v & ~MC146818_A_UIP;	/* read-only */
		break;
	case MC146818_REG_B:
		m->cmos[idx] = v;
		if ((old & MC146818_B_SET) && !(v & MC146818_B_SET))
			adopt_guest_time(m);
		break;
	case MC146818_REG_C:
	case MC146818_REG_D:
		break;				/* read-only */
	default:
		m->cmos[idx] = v;
	}
}
