/*
 * The register model of an MC146818 RTC with its 128 bytes of CMOS, with
 * nothing of KVM or a domain in it.  Time registers are computed from a
 * clock plus an offset the guest moves by setting the time; register A's
 * update-in-progress bit follows the clock's fraction of a second.  The
 * index
 * register (and the NMI mask sharing its port) is the caller's: the model
 * is addressed by a 7-bit index.  The caller serialises calls
 * (xen/dev/rtc.c holds a lock); tests/unit/test_rtc.c drives it directly.
 */
#ifndef XEN_DEV_MC146818_H
#define XEN_DEV_MC146818_H

#include <stdint.h>

#define MC146818_NR_REGS	128

#define MC146818_SEC		0x00
#define MC146818_MIN		0x02
#define MC146818_HOUR		0x04
#define MC146818_WDAY		0x06
#define MC146818_MDAY		0x07
#define MC146818_MON		0x08
#define MC146818_YEAR		0x09
#define MC146818_REG_A		0x0a
#define MC146818_REG_B		0x0b
#define MC146818_REG_C		0x0c
#define MC146818_REG_D		0x0d
#define MC146818_CENTURY	0x32

#define MC146818_A_UIP		0x80	/* update in progress (read-only) */
#define MC146818_A_DV		0x70	/* divider: 010 runs the clock */
#define MC146818_A_DV_RUN	0x20
#define MC146818_B_SET		0x80	/* the guest is setting the time */
#define MC146818_B_BINARY	0x04	/* binary, not BCD */
#define MC146818_B_24H		0x02

struct mc146818 {
	uint8_t cmos[MC146818_NR_REGS];
	int64_t offset_s;		/* guest time minus the clock's */
	int64_t (*clock)(void);		/* nanoseconds since 1970, UTC */
};

/* Power-on: 24-hour BCD, valid RAM and time, the rest of CMOS 0. */
void mc146818_reset(struct mc146818 *m, int64_t (*clock)(void));
/* `idx` is below MC146818_NR_REGS. */
uint8_t mc146818_read(struct mc146818 *m, unsigned idx);
void mc146818_write(struct mc146818 *m, unsigned idx, uint8_t v);

#endif
