/* VM-wide KVM state: PIC and IOAPIC, PIT, kvmclock. */
#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "domain.h"
#include "log.h"
#include "rec_table.h"
#include "state.h"

/*
 * kvmclock with the host's CLOCK_REALTIME beside it.  A kernel without a
 * stable master clock (KVM-PVM here) returns no realtime: the daemon's
 * reading right after stands in, a few microseconds later.
 */
static int get_clock(struct domain *dom, struct kvm_clock_data *clock)
{
	struct timespec t;

	memset(clock, 0, sizeof(*clock));
	if (ioctl(dom->vm_fd, KVM_GET_CLOCK, clock) < 0)
		return -1;
	if (!(clock->flags & KVM_CLOCK_REALTIME)) {
		clock_gettime(CLOCK_REALTIME, &t);
		clock->realtime = t.tv_sec * 1000000000ULL + t.tv_nsec;
		clock->flags |= KVM_CLOCK_REALTIME;
	}
	return 0;
}

int vm_state_save(struct domain *dom, struct stream_writer *w)
{
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
	struct kvm_irqchip chip;
	unsigned i;

	for (i = KVM_IRQCHIP_PIC_MASTER; i <= KVM_IRQCHIP_IOAPIC; i++) {
		memset(&chip, 0, sizeof(chip));
		chip.chip_id = i;
		if (ioctl(dom->vm_fd, KVM_GET_IRQCHIP, &chip) < 0 ||
		    stream_write_record(w, REC_VM_IRQCHIP, 0, &chip,
					sizeof(chip)) < 0)
			return -1;
	}
	if (ioctl(dom->vm_fd, KVM_GET_PIT2, &pit) < 0 ||
	    stream_write_record(w, REC_VM_PIT, 0, &pit, sizeof(pit)) < 0 ||
	    get_clock(dom, &clock) < 0 ||
	    stream_write_record(w, REC_VM_CLOCK, 0, &clock, sizeof(clock)) < 0)
		return -1;
	return 0;
}

static bool kvm_adds_realtime(struct domain *dom)
{
	int caps = ioctl(dom->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_ADJUST_CLOCK);

	return caps > 0 && (caps & KVM_CLOCK_REALTIME);
}

/*
 * kvmclock as saved (xl restore: time stops, as QEMU's loadvm), or gone
 * on by the CLOCK_REALTIME that passed since (live update, migration;
 * across hosts that assumes their clocks agree, as KVM's documentation's
 * migration algorithm does).  KVM adds it itself where it can.
 */
static void clock_resume(struct domain *dom, struct kvm_clock_data *c)
{
	struct timespec t;
	uint64_t now;

	if (dom->restore_clock == STATE_CLOCK_STOPPED ||
	    !(c->flags & KVM_CLOCK_REALTIME)) {
		if (dom->restore_clock != STATE_CLOCK_STOPPED)
			log_info("d%u: the stream's kvmclock has no realtime: "
				 "it resumes at its saved value", dom->id);
		c->flags = 0;
		return;
	}
	if (kvm_adds_realtime(dom)) {
		c->flags = KVM_CLOCK_REALTIME;
		return;
	}
	log_info("d%u: KVM lacks KVM_CLOCK_REALTIME: the daemon moves "
		 "kvmclock on itself", dom->id);
	clock_gettime(CLOCK_REALTIME, &t);
	now = t.tv_sec * 1000000000ULL + t.tv_nsec;
	if (now > c->realtime)
		c->clock += now - c->realtime;
	c->flags = 0;
}

/* The record passed the record table's checks (its size, the chip id). */
int vm_state_load(struct domain *dom, uint32_t type, const void *body,
		  size_t len, char *err, size_t errlen)
{
	union {
		struct kvm_irqchip chip;
		struct kvm_pit_state2 pit;
		struct kvm_clock_data clock;
	} u;
	unsigned long req;
	size_t want;

	switch (type) {
	case REC_VM_IRQCHIP:
		req = KVM_SET_IRQCHIP;
		want = sizeof(u.chip);
		break;
	case REC_VM_PIT:
		req = KVM_SET_PIT2;
		want = sizeof(u.pit);
		break;
	case REC_VM_CLOCK:
		req = KVM_SET_CLOCK;
		want = sizeof(u.clock);
		break;
	default:
		snprintf(err, errlen, "record %#x is not VM state", type);
		return -1;
	}
	memcpy(&u, body, want);
	if (type == REC_VM_CLOCK)
		clock_resume(dom, &u.clock);
	if (ioctl(dom->vm_fd, req, &u) < 0) {
		snprintf(err, errlen, "%s rejected by KVM: %s",
			 rec_type_name(type), strerror(errno));
		return -1;
	}
	return 0;
}
