#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>

#include "domain.h"
#include "exits.h"
#include "ioport.h"
#include "kvm.h"
#include "log.h"
#include "vcpu.h"

static void crash(struct vcpu *v, const char *why)
{
	vcpu_dump(v, why);
	domain_raise(v->dom, DOM_EV_CRASH, why);
}

/*
 * No device claims the port.  As on a PC bus, reads float to all ones and
 * writes are dropped, and the daemon says so once per port and domain;
 * with strict_io (a debug aid) the domain crashes instead.
 */
static void unclaimed_io(struct vcpu *v, bool is_write, uint8_t *data)
{
	struct kvm_run *run = v->run;
	char why[96];

	snprintf(why, sizeof(why), "unknown I/O port %#x (%s, %u bytes)",
		 run->io.port, is_write ? "out" : "in", run->io.size);
	if (v->dom->cfg.strict_io) {
		crash(v, why);
		return;
	}
	if (!is_write)
		memset(data, 0xff, (size_t)run->io.size * run->io.count);
	if (ioport_unclaimed_first(&v->dom->ports, run->io.port))
		dom_log(v->dom, LOG_WARN, "d%uv%u: %s: no device there, reads "
			"are all ones and writes are dropped (logged once "
			"per port)", v->dom->id, v->id, why);
}

static void handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	const struct ioport_range *r;
	char why[96];
	unsigned i;

	r = ioport_find(&v->dom->ports, run->io.port);
	if (!r) {
		unclaimed_io(v, is_write, data);
		return;
	}
	for (i = 0; i < run->io.count; i++, data += run->io.size) {
		uint32_t val = 0;

		if (is_write)
			memcpy(&val, data, run->io.size);
		if (r->fn(v, r->opaque, run->io.port, is_write, run->io.size,
			  &val) < 0) {
			snprintf(why, sizeof(why),
				 "bad access to I/O port %#x (%s)",
				 run->io.port, r->owner);
			crash(v, why);
			return;
		}
		if (!is_write)
			memcpy(data, &val, run->io.size);
	}
}

#define MMIO_LOG_MAX	16

/*
 * Nothing is mapped there: reads float to all ones, writes are dropped,
 * as on a PC bus; the first few are logged per domain.  With strict_io
 * the domain crashes instead.
 */
static void handle_mmio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	char why[96];
	int ret;

	ret = mmio_dispatch(&v->dom->mmio, v, run->mmio.phys_addr,
			    run->mmio.is_write, run->mmio.len, run->mmio.data);
	if (ret > 0)
		return;
	if (ret < 0) {
		snprintf(why, sizeof(why), "bad MMIO %s of %u bytes at %#llx",
			 run->mmio.is_write ? "write" : "read", run->mmio.len,
			 (unsigned long long)run->mmio.phys_addr);
		crash(v, why);
		return;
	}
	snprintf(why, sizeof(why), "unclaimed MMIO %s of %u bytes at %#llx",
		 run->mmio.is_write ? "write" : "read", run->mmio.len,
		 (unsigned long long)run->mmio.phys_addr);
	if (v->dom->cfg.strict_io) {
		crash(v, why);
		return;
	}
	if (!run->mmio.is_write)
		memset(run->mmio.data, 0xff, sizeof(run->mmio.data));
	if (__atomic_fetch_add(&v->dom->mmio_logged, 1, __ATOMIC_RELAXED) <
	    MMIO_LOG_MAX)
		log_warn("d%uv%u: %s: nothing is mapped there, reads are all "
			 "ones and writes are dropped (the first %u logged)",
			 v->dom->id, v->id, why, MMIO_LOG_MAX);
}

static void handle_system_event(struct vcpu *v)
{
	switch (v->run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		domain_raise(v->dom, DOM_EV_POWEROFF, "guest powered off");
		break;
	case KVM_SYSTEM_EVENT_RESET:
		domain_raise(v->dom, DOM_EV_REBOOT, "guest reset");
		break;
	default:
		crash(v, "guest reported a crash");
		break;
	}
}

void vcpu_handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	char why[96];

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(v);
		break;
	case KVM_EXIT_MMIO:
		handle_mmio(v);
		break;
	case KVM_EXIT_INTR:
	case KVM_EXIT_HLT:
		break;
	case KVM_EXIT_SHUTDOWN:
		if (kvm_host.init_on_shutdown)
			log_err("d%uv%u: kvm-amd re-initializes a vCPU at a "
				"triple fault: the registers below are its INIT "
				"state, not the state at the fault",
				v->dom->id, v->id);
		crash(v, "triple fault");
		break;
	case KVM_EXIT_SYSTEM_EVENT:
		handle_system_event(v);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(why, sizeof(why), "emulation failure (suberror %u)",
			 run->internal.suberror);
		crash(v, why);
		break;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(why, sizeof(why), "VM entry failed (reason %#llx)",
			 (unsigned long long)
			 run->fail_entry.hardware_entry_failure_reason);
		crash(v, why);
		break;
	default:
		snprintf(why, sizeof(why), "unhandled exit reason %u",
			 run->exit_reason);
		crash(v, why);
		break;
	}
}
