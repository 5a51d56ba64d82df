/*
 * The ACPI fixed hardware the FADT describes (boot/acpi.c), a 12-byte
 * block at ACPI_PM_BASE as on QEMU's PIIX4:
 *
 *   +0  PM1a status (16 bits, write 1 to clear)   +2  PM1a enable
 *   +4  PM1a control                              +8  PM timer (32 bits)
 *
 * The board is always in ACPI mode (SCI_EN reads 1, the FADT has no
 * SMI_CMD).  The SCI is ISA IRQ 9, level-triggered and active high (the
 * MADT's override), driven while a status bit and its enable bit are
 * both set.  Two fixed events have a source: the power button, pressed
 * by the toolstack (acpi_pm_power_button(): `xl shutdown`, `xl trigger
 * power`), and the timer's carry out of bit 31 (TMR_STS, the FADT sets
 * TMR_VAL_EXT).  The timer runs at 3.579545 MHz from the host's
 * monotonic clock plus an offset, so that it goes on from its saved
 * count after a restore, a live update or a migration.  Writing SLP_EN
 * with the DSDT's \_S5 sleep type is the guest's poweroff; the DSDT
 * offers no other sleep state, so other types do nothing.
 *
 * A thread per domain waits for the next carry while the guest has
 * TMR_EN set; it raises the SCI only while the devices run (quiesce
 * parks it, so a save sees no line change).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include <linux/kvm.h>

#include "boot/tables.h"
#include "dev/acpi_pm.h"
#include "dev/devices.h"
#include "domain.h"
#include "ioport.h"
#include "log.h"
#include "stream.h"

#define PM1_TMR		0x0001		/* status and enable */
#define PM1_GBL		0x0020
#define PM1_PWRBTN	0x0100
#define PM1_SLPBTN	0x0200
#define PM1_RTC		0x0400
#define PM1_EVENTS	(PM1_TMR | PM1_GBL | PM1_PWRBTN | PM1_SLPBTN | PM1_RTC)

#define PM1_CNT_SCI_EN		0x0001
#define PM1_CNT_GBL_RLS		0x0004	/* write-only */
#define PM1_CNT_SLP_TYP_SHIFT	10
#define PM1_CNT_SLP_TYP		(7u << PM1_CNT_SLP_TYP_SHIFT)
#define PM1_CNT_SLP_EN		0x2000	/* write-only */

#define OFF_STS		0
#define OFF_EN		2
#define OFF_CNT		4
#define OFF_TMR		8

#define TMR_CARRY_BIT	31		/* TMR_STS: a carry out of bit 31 */

_Static_assert(REC_ACPI_PM1_EN_BITS == PM1_EVENTS, "PM1 enable bits");

struct acpi_pm {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct domain *dom;
	uint16_t sts, en, cnt;
	int64_t tmr_offset;	/* guest ticks minus host ticks */
	uint64_t carry_seen;	/* ticks >> 31 when TMR_STS was last latched */
	bool sci;		/* the level the SCI line was last given */
	bool paused;		/* devices parked: leave the line alone */
	bool stop;
	pthread_t thread;
};

static struct device_type acpi_pm_device;

static uint64_t host_ticks(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * ACPI_PM_TMR_HZ +
	       (uint64_t)ts.tv_nsec * ACPI_PM_TMR_HZ / 1000000000;
}

static uint64_t pm_ticks(const struct acpi_pm *pm)
{
	return host_ticks() + pm->tmr_offset;
}

/* Latch TMR_STS if the count carried out of bit 31 since last seen. */
static void pm_timer_latch(struct acpi_pm *pm, uint64_t ticks)
{
	if (ticks >> TMR_CARRY_BIT != pm->carry_seen) {
		pm->sts |= PM1_TMR;
		pm->carry_seen = ticks >> TMR_CARRY_BIT;
	}
}

/* Drive the SCI from status & enable; `force` tells KVM even if unchanged. */
static void pm_update_sci(struct acpi_pm *pm, bool force)
{
	bool level = (pm->cnt & PM1_CNT_SCI_EN) &&
		     (pm->sts & pm->en & PM1_EVENTS);
	struct kvm_irq_level irq = { .irq = ACPI_SCI_IRQ, .level = level };

	if (level == pm->sci && !force)
		return;
	pm->sci = level;
	if (ioctl(pm->dom->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		log_err("d%u: acpi-pm: SCI level %d: %s", pm->dom->id, level,
			strerror(errno));
}

static void pm_write_cnt(struct vcpu *vcpu, struct acpi_pm *pm,
			 uint16_t val)
{
	pm->cnt = (val & PM1_CNT_SLP_TYP) | PM1_CNT_SCI_EN;
	if ((val & PM1_CNT_SLP_EN) &&
	    ((val & PM1_CNT_SLP_TYP) >> PM1_CNT_SLP_TYP_SHIFT) ==
	    ACPI_S5_SLP_TYP)
		domain_raise(vcpu->dom, DOM_EV_POWEROFF,
			     "guest powered off (ACPI S5)");
}

/*
 * Byte lanes: an access may be 1, 2 or 4 bytes at any offset of the block
 * (a 4-byte access at +0 reaches status and enable together).
 */
static void acpi_pm_write(struct vcpu *vcpu, struct acpi_pm *pm,
			  unsigned off, unsigned size, uint32_t val)
{
	uint16_t sts_clear = 0, en = pm->en, cnt = pm->cnt;
	bool cnt_written = false;
	unsigned i;

	for (i = 0; i < size; i++) {
		unsigned o = off + i, sh = 8 * (o & 1);
		uint16_t b = (val >> (8 * i)) & 0xff;

		if (o < OFF_EN)
			sts_clear |= b << sh;
		else if (o < OFF_CNT)
			en = (en & ~(0xff << sh)) | b << sh;
		else if (o < OFF_CNT + 2) {
			cnt = (cnt & ~(0xff << sh)) | b << sh;
			cnt_written = true;
		}
		/* The timer and the gap at +6 ignore writes. */
	}
	if (sts_clear & PM1_TMR)
		pm_timer_latch(pm, pm_ticks(pm));	/* a carry before counts */
	pm->sts &= ~sts_clear;
	if (en != pm->en) {
		pm->en = en & PM1_EVENTS;
		pthread_cond_signal(&pm->cond);	/* TMR_EN may have changed */
	}
	if (cnt_written)
		pm_write_cnt(vcpu, pm, cnt);
	pm_update_sci(pm, false);
}

static uint32_t acpi_pm_read(struct acpi_pm *pm, unsigned off,
			     unsigned size)
{
	uint64_t ticks = pm_ticks(pm);
	uint8_t regs[ACPI_PM_LEN] = { 0 };
	uint32_t val = 0, tmr = ticks;
	unsigned i;

	pm_timer_latch(pm, ticks);
	pm_update_sci(pm, false);
	memcpy(regs + OFF_STS, &pm->sts, 2);
	memcpy(regs + OFF_EN, &pm->en, 2);
	memcpy(regs + OFF_CNT, &pm->cnt, 2);
	memcpy(regs + OFF_TMR, &tmr, 4);
	for (i = 0; i < size && off + i < ACPI_PM_LEN; i++)
		val |= (uint32_t)regs[off + i] << (8 * i);
	return val;
}

static int acpi_pm_io(struct vcpu *vcpu, void *opaque, uint16_t port,
		      bool is_write, unsigned size, uint32_t *val)
{
	struct acpi_pm *pm = opaque;
	unsigned off = port - ACPI_PM_BASE;

	pthread_mutex_lock(&pm->lock);
	if (is_write)
		acpi_pm_write(vcpu, pm, off, size, *val);
	else
		*val = acpi_pm_read(pm, off, size);
	pthread_mutex_unlock(&pm->lock);
	return 0;
}

int acpi_pm_power_button(struct domain *dom)
{
	struct acpi_pm *pm = device_state(dom, &acpi_pm_device);

	if (!pm)
		return -1;
	pthread_mutex_lock(&pm->lock);
	pm->sts |= PM1_PWRBTN;
	if (!pm->paused)
		pm_update_sci(pm, false);
	pthread_mutex_unlock(&pm->lock);
	log_info("d%u: power button pressed (%s)", dom->id,
		 pm->en & PM1_PWRBTN ? "SCI raised" :
		 "the guest has not enabled it");
	return 0;
}

/* When the next carry out of bit 31 is due, as an absolute deadline. */
static struct timespec next_carry(const struct acpi_pm *pm)
{
	uint64_t ticks = pm_ticks(pm);
	uint64_t left = ((pm->carry_seen + 1) << TMR_CARRY_BIT) - ticks;
	uint64_t ns = left * 1000000000 / ACPI_PM_TMR_HZ + 1;
	struct timespec ts;

	if (ticks >> TMR_CARRY_BIT != pm->carry_seen)
		ns = 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ns / 1000000000;
	ts.tv_nsec += ns % 1000000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

/* Raises the SCI at the timer's carry while the guest enabled TMR_EN. */
static void *acpi_pm_timer_thread(void *arg)
{
	struct acpi_pm *pm = arg;
	struct timespec due;
	sigset_t s;

	/*
	 * Started with every signal blocked (they are the main thread's), but
	 * two must reach every thread: livepatch asks each where it is with
	 * SIGUSR1 (a thread that never answers blocks every patch), and a
	 * call the sandbox refuses raises SIGSYS (blocked, it kills).
	 */
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	sigaddset(&s, SIGSYS);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	pthread_mutex_lock(&pm->lock);
	while (!pm->stop) {
		if (pm->paused || !(pm->en & PM1_TMR) || (pm->sts & PM1_TMR)) {
			pthread_cond_wait(&pm->cond, &pm->lock);
			continue;
		}
		due = next_carry(pm);
		if (pthread_cond_timedwait(&pm->cond, &pm->lock, &due) !=
		    ETIMEDOUT)
			continue;
		pm_timer_latch(pm, pm_ticks(pm));
		pm_update_sci(pm, false);
	}
	pthread_mutex_unlock(&pm->lock);
	return NULL;
}

static int acpi_pm_start_thread(struct acpi_pm *pm)
{
	pthread_condattr_t attr;
	sigset_t all, old;
	int ret;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&pm->cond, &attr);
	pthread_condattr_destroy(&attr);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&pm->thread, NULL, acpi_pm_timer_thread, pm);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		pthread_cond_destroy(&pm->cond);
		return -1;
	}
	return 0;
}

static int acpi_pm_init(struct domain *dom, void *state, char *err,
			size_t errlen)
{
	struct acpi_pm *pm = state;

	pm->dom = dom;
	pm->cnt = PM1_CNT_SCI_EN;
	pm->tmr_offset = -(int64_t)host_ticks();	/* counts from 0 */
	if (ioport_register(&dom->ports, ACPI_PM_BASE, ACPI_PM_LEN,
			    acpi_pm_io, pm, "acpi-pm") < 0)
		return -1;
	pthread_mutex_init(&pm->lock, NULL);
	if (acpi_pm_start_thread(pm) < 0) {
		pthread_mutex_destroy(&pm->lock);
		snprintf(err, errlen, "cannot start the PM timer's thread");
		return -1;
	}
	return 0;
}

static void acpi_pm_destroy(struct domain *dom, void *state)
{
	struct acpi_pm *pm = state;

	pthread_mutex_lock(&pm->lock);
	pm->stop = true;
	pthread_cond_signal(&pm->cond);
	pthread_mutex_unlock(&pm->lock);
	pthread_join(pm->thread, NULL);
	pthread_cond_destroy(&pm->cond);
	pthread_mutex_destroy(&pm->lock);
}

static void acpi_pm_pause(struct domain *dom, void *state)
{
	struct acpi_pm *pm = state;

	pthread_mutex_lock(&pm->lock);
	pm->paused = true;
	pthread_mutex_unlock(&pm->lock);
}

static void acpi_pm_resume(struct domain *dom, void *state)
{
	struct acpi_pm *pm = state;

	pthread_mutex_lock(&pm->lock);
	pm->paused = false;
	pm_update_sci(pm, false);	/* a button pressed meanwhile */
	pthread_cond_signal(&pm->cond);
	pthread_mutex_unlock(&pm->lock);
}

static int acpi_pm_save(struct domain *dom, void *state,
			struct stream_writer *w)
{
	struct acpi_pm *pm = state;
	struct rec_dev_acpi_pm r;

	memset(&r, 0, sizeof(r));
	pthread_mutex_lock(&pm->lock);
	r.pm_tmr_ticks = pm_ticks(pm);
	pm_timer_latch(pm, r.pm_tmr_ticks);
	r.pm1_sts = pm->sts;
	r.pm1_en = pm->en;
	r.pm1_cnt = pm->cnt;
	pthread_mutex_unlock(&pm->lock);
	return stream_write_record(w, REC_DEV_ACPI_PM, REC_F_OPTIONAL, &r,
				   sizeof(r));
}

/*
 * The registers as saved; the timer goes on from its saved count.  The
 * SCI line is set again from them: the IOAPIC's record holds the pin's
 * routing, not what drives it.
 */
static int acpi_pm_load(struct domain *dom, void *state, const void *body,
			size_t len, char *err, size_t errlen)
{
	struct acpi_pm *pm = state;
	struct rec_dev_acpi_pm r;

	memcpy(&r, body, sizeof(r));
	pthread_mutex_lock(&pm->lock);
	pm->sts = r.pm1_sts;
	pm->en = r.pm1_en & PM1_EVENTS;
	pm->cnt = (r.pm1_cnt & PM1_CNT_SLP_TYP) | PM1_CNT_SCI_EN;
	pm->tmr_offset = (int64_t)(r.pm_tmr_ticks - host_ticks());
	pm->carry_seen = r.pm_tmr_ticks >> TMR_CARRY_BIT;
	pm_update_sci(pm, true);
	pthread_cond_signal(&pm->cond);
	pthread_mutex_unlock(&pm->lock);
	return 0;
}

static struct device_type acpi_pm_device = {
	.name = "acpi-pm",
	.order = 50,
	.state_size = sizeof(struct acpi_pm),
	.rec_type = REC_DEV_ACPI_PM,
	.init = acpi_pm_init,
	.destroy = acpi_pm_destroy,
	.save = acpi_pm_save,
	.load = acpi_pm_load,
	.pause = acpi_pm_pause,
	.resume = acpi_pm_resume,
};
DEVICE_REGISTER(acpi_pm_device);
