/* VM-wide KVM state: PIC and IOAPIC, PIT, kvmclock. */
#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "domain.h"
#include "rec_table.h"
#include "state.h"

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
	memset(&clock, 0, sizeof(clock));
	if (ioctl(dom->vm_fd, KVM_GET_PIT2, &pit) < 0 ||
	    stream_write_record(w, REC_VM_PIT, 0, &pit, sizeof(pit)) < 0 ||
	    ioctl(dom->vm_fd, KVM_GET_CLOCK, &clock) < 0 ||
	    stream_write_record(w, REC_VM_CLOCK, 0, &clock, sizeof(clock)) < 0)
		return -1;
	return 0;
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
		u.clock.flags = 0;	/* restore the kvmclock value only */
	if (ioctl(dom->vm_fd, req, &u) < 0) {
		snprintf(err, errlen, "%s rejected by KVM: %s",
			 rec_type_name(type), strerror(errno));
		return -1;
	}
	return 0;
}
