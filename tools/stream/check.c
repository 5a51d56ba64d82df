/*
 * The checks of a state stream that are not its framing: which records
 * must be there and where, the sizes restore expects, pages within RAM.
 * The rules are docs/state-format.md's and those of xen/state_restore.c
 * and the record writers (xen/vcpu_state.c, vm_state.c, xen/dev/), so
 * that a stream this passes is one the daemon can restore.
 */
#include <jansson.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "dev/uart.h"		/* UART_INPUT_MAX */
#include "domcfg.h"
#include "memory.h"		/* MEM_HOLE_START, MEM_4G */
#include "stream.h"

static int fail(struct stream_check *c, uint64_t offset, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct stream_check *c, uint64_t offset, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(c->err, sizeof(c->err), "offset %llu: ",
		     (unsigned long long)offset);
	va_start(ap, fmt);
	vsnprintf(c->err + n, sizeof(c->err) - n, fmt, ap);
	va_end(ap);
	return -1;
}

static const char *name_of(uint32_t type)
{
	return rec_type_name(type) ?: "unknown";
}

/* The parts of a domain's stream, in their order. */
enum check_phase {
	PH_PROLOGUE, PH_PAGES, PH_VCPUS, PH_VM, PH_DEVICES, PH_CONSOLE,
};

static const char *const phase_names[] = {
	[PH_PROLOGUE] = "the prologue", [PH_PAGES] = "the pages",
	[PH_VCPUS] = "the vCPU records", [PH_VM] = "the VM records",
	[PH_DEVICES] = "the device records",
	[PH_CONSOLE] = "the console history",
};

/* A record of @phase may not follow the records of a later one. */
static int enter_phase(struct stream_check *c, uint64_t offset,
		       uint32_t type, unsigned phase)
{
	if (c->phase > phase)
		return fail(c, offset, "%s record after %s", name_of(type),
			    c->phase <= PH_CONSOLE ? phase_names[c->phase] :
			    "?");
	c->phase = phase;
	return 0;
}

/* Each vCPU's records in the order restore applies them (KVM needs it). */
static int vcpu_rank(uint32_t type)
{
	static const uint32_t order[] = {
		REC_VCPU_REGS, REC_VCPU_SREGS, REC_VCPU_XSAVE, REC_VCPU_XCRS,
		REC_VCPU_MSRS, REC_VCPU_LAPIC, REC_VCPU_MP_STATE,
		REC_VCPU_EVENTS, REC_VCPU_DEBUGREGS,
	};
	int i;

	for (i = 0; i < (int)(sizeof(order) / sizeof(order[0])); i++)
		if (order[i] == type)
			return i;
	return -1;
}

void check_init(struct stream_check *c)
{
	memset(c, 0, sizeof(*c));
	c->cur_vcpu = -1;
}

size_t vcpu_struct_size(uint32_t type)
{
	switch (type) {
	case REC_VCPU_REGS:
		return sizeof(struct kvm_regs);
	case REC_VCPU_SREGS:
		return sizeof(struct kvm_sregs);
	case REC_VCPU_XCRS:
		return sizeof(struct kvm_xcrs);
	case REC_VCPU_LAPIC:
		return sizeof(struct kvm_lapic_state);
	case REC_VCPU_EVENTS:
		return sizeof(struct kvm_vcpu_events);
	case REC_VCPU_MP_STATE:
		return sizeof(struct kvm_mp_state);
	case REC_VCPU_DEBUGREGS:
		return sizeof(struct kvm_debugregs);
	default:			/* XSAVE and MSRS vary */
		return 0;
	}
}

bool check_pfn_is_ram(const struct stream_check *c, uint64_t pfn)
{
	uint64_t pfn_4g = MEM_4G / STREAM_PAGE_SIZE;

	if (pfn < c->low_pages)
		return true;
	return pfn >= pfn_4g && pfn - pfn_4g < c->high_pages;
}

/* DOMAIN_CONFIG: JSON the daemon's own config parser accepts. */
static int check_config(struct stream_check *c, uint64_t offset,
			const struct rec_header *rh, const uint8_t *body)
{
	char why[200];
	json_error_t jerr;
	struct domcfg cfg;
	json_t *j;
	int ret = 0;

	j = json_loadb((const char *)body, rh->length, 0, &jerr);
	if (!j)
		return fail(c, offset, "DOMAIN_CONFIG is not JSON: %s (at byte %d)",
			    jerr.text, jerr.position);
	if (domcfg_from_json(j, &cfg, why, sizeof(why)) < 0) {
		json_decref(j);
		return fail(c, offset, "DOMAIN_CONFIG: %s", why);
	}
	if (cfg.vcpus < 1 || cfg.vcpus > DOMCFG_VCPUS_LIMIT) {
		ret = fail(c, offset, "DOMAIN_CONFIG: %u vCPUs", cfg.vcpus);
	} else {
		c->nr_vcpus = cfg.vcpus;
		c->memory_mib = cfg.memory_mib;
		c->have_config = true;
	}
	domcfg_free(&cfg);
	json_decref(j);
	return ret;
}

static int check_layout(struct stream_check *c, uint64_t offset,
			const struct rec_header *rh, const uint8_t *body)
{
	struct rec_memory_layout *l = &c->layout;
	uint64_t low;

	if (rh->length != sizeof(*l))
		return fail(c, offset, "MEMORY_LAYOUT of %u bytes, expected %zu",
			    rh->length, sizeof(*l));
	memcpy(l, body, sizeof(*l));
	if (l->page_size != STREAM_PAGE_SIZE)
		return fail(c, offset, "MEMORY_LAYOUT: page size %u, expected %u",
			    l->page_size, STREAM_PAGE_SIZE);
	if (l->ram_bytes != (uint64_t)c->memory_mib << 20)
		return fail(c, offset, "MEMORY_LAYOUT: %llu bytes of RAM, the config has %u MiB",
			    (unsigned long long)l->ram_bytes, c->memory_mib);
	if (l->hole_start != MEM_HOLE_START)
		return fail(c, offset, "MEMORY_LAYOUT: hole at %#llx, expected %#llx",
			    (unsigned long long)l->hole_start,
			    (unsigned long long)MEM_HOLE_START);
	low = l->ram_bytes < l->hole_start ? l->ram_bytes : l->hole_start;
	if (l->low_bytes != low)
		return fail(c, offset, "MEMORY_LAYOUT: %#llx bytes of low RAM, expected %#llx",
			    (unsigned long long)l->low_bytes,
			    (unsigned long long)low);
	c->low_pages = l->low_bytes / STREAM_PAGE_SIZE;
	c->high_pages = (l->ram_bytes - l->low_bytes) / STREAM_PAGE_SIZE;
	c->have_layout = true;
	return 0;
}

static int check_vcpu(struct stream_check *c, uint64_t offset,
		      const struct rec_header *rh, const uint8_t *body)
{
	const char *name = name_of(rh->type);
	struct rec_vcpu_head h;
	size_t want = vcpu_struct_size(rh->type);

	if (rh->length < sizeof(h))
		return fail(c, offset, "%s of %u bytes has no vCPU head", name,
			    rh->length);
	memcpy(&h, body, sizeof(h));
	if (h.vcpu >= c->nr_vcpus)
		return fail(c, offset, "%s for vCPU %u, the config has %u vCPUs",
			    name, h.vcpu, c->nr_vcpus);
	if (h.size != rh->length - sizeof(h))
		return fail(c, offset, "%s says %u bytes, the record holds %zu",
			    name, h.size, rh->length - sizeof(h));
	if (want && h.size != want)
		return fail(c, offset, "%s of %u bytes, struct is %zu", name,
			    h.size, want);
	if (rh->type == REC_VCPU_XSAVE && h.size < sizeof(struct kvm_xsave))
		return fail(c, offset, "VCPU_XSAVE of %u bytes, at least %zu expected",
			    h.size, sizeof(struct kvm_xsave));
	if ((int)h.vcpu < c->cur_vcpu)
		return fail(c, offset, "%s of vCPU %u after the records of vCPU %d",
			    name, h.vcpu, c->cur_vcpu);
	if ((int)h.vcpu == c->cur_vcpu &&
	    vcpu_rank(rh->type) <= c->cur_rank)
		return fail(c, offset, "%s of vCPU %u %s", name, h.vcpu,
			    vcpu_rank(rh->type) == c->cur_rank ?
			    "twice" : "out of order (docs/state-format.md)");
	c->cur_vcpu = h.vcpu;
	c->cur_rank = vcpu_rank(rh->type);
	if (rh->type == REC_VCPU_MSRS) {
		struct kvm_msrs m;

		if (h.size < sizeof(m))
			return fail(c, offset, "VCPU_MSRS of %u bytes has no count",
				    h.size);
		memcpy(&m, body + sizeof(h), sizeof(m));
		if (m.nmsrs != (h.size - sizeof(m)) /
			       sizeof(struct kvm_msr_entry) ||
		    (h.size - sizeof(m)) % sizeof(struct kvm_msr_entry))
			return fail(c, offset, "VCPU_MSRS: %u entries in %u bytes",
				    m.nmsrs, h.size);
	}
	c->vcpu_seen[h.vcpu] |= 1u << (rh->type - REC_VCPU_REGS);
	return 0;
}

static int check_vm(struct stream_check *c, uint64_t offset,
		    const struct rec_header *rh, const uint8_t *body)
{
	struct kvm_irqchip chip;
	unsigned bit, chip_id = 0;
	size_t want;

	switch (rh->type) {
	case REC_VM_IRQCHIP:
		want = sizeof(struct kvm_irqchip);
		break;
	case REC_VM_PIT:
		want = sizeof(struct kvm_pit_state2);
		break;
	default:
		want = sizeof(struct kvm_clock_data);
		break;
	}
	if (rh->length != want)
		return fail(c, offset, "%s of %u bytes, expected %zu",
			    name_of(rh->type), rh->length, want);
	if (rh->type == REC_VM_IRQCHIP) {
		memcpy(&chip, body, sizeof(chip));
		if (chip.chip_id > KVM_IRQCHIP_IOAPIC)
			return fail(c, offset, "VM_IRQCHIP: chip id %u",
				    chip.chip_id);
		chip_id = chip.chip_id;
		bit = 1u << chip_id;
	} else {
		bit = rh->type == REC_VM_PIT ? 1u << 3 : 1u << 4;
	}
	if (c->vm_seen & bit && rh->type == REC_VM_IRQCHIP)
		return fail(c, offset, "a second VM_IRQCHIP record for chip %u",
			    chip_id);
	if (c->vm_seen & bit)
		return fail(c, offset, "a second %s record", name_of(rh->type));
	c->vm_seen |= bit;
	return 0;
}

static int check_device(struct stream_check *c, uint64_t offset,
			const struct rec_header *rh, const uint8_t *body)
{
	struct rec_dev_uart u;
	size_t want;

	switch (rh->type) {
	case REC_DEV_UART:
		if (rh->length < sizeof(u))
			return fail(c, offset, "DEV_UART of %u bytes, at least %zu expected",
				    rh->length, sizeof(u));
		memcpy(&u, body, sizeof(u));
		if (u.in_len > UART_INPUT_MAX ||
		    rh->length != sizeof(u) + u.in_len)
			return fail(c, offset, "DEV_UART: %u queued input bytes in a %u-byte record",
				    u.in_len, rh->length);
		break;
	case REC_DEV_RTC:
	case REC_DEV_BOARD:
		want = rh->type == REC_DEV_RTC ? sizeof(struct rec_dev_rtc) :
			sizeof(struct rec_dev_board);
		if (rh->length != want)
			return fail(c, offset, "%s of %u bytes, expected %zu",
				    name_of(rh->type), rh->length, want);
		break;
	}
	if (c->devices_seen & (1u << (rh->type - REC_DEV_UART)))
		return fail(c, offset, "a second %s record", name_of(rh->type));
	c->devices_seen |= 1u << (rh->type - REC_DEV_UART);
	return 0;
}

static int check_console(struct stream_check *c, uint64_t offset,
			 const struct rec_header *rh, const uint8_t *body)
{
	uint64_t total;

	if (c->console_seen)
		return fail(c, offset, "a second CONSOLE_HISTORY record");
	c->console_seen = true;
	if (rh->length < sizeof(total))
		return fail(c, offset, "CONSOLE_HISTORY of %u bytes has no total",
			    rh->length);
	memcpy(&total, body, sizeof(total));
	if (total < rh->length - sizeof(total))
		return fail(c, offset, "CONSOLE_HISTORY holds %zu bytes of a total of %llu",
			    rh->length - sizeof(total),
			    (unsigned long long)total);
	return 0;
}

int check_record(struct stream_check *c, uint64_t offset,
		 const struct rec_header *rh, const uint8_t *body)
{
	unsigned idx = c->records++;
	uint32_t t = rh->type;

	if (c->ended)
		return fail(c, offset, "record after END");
	if (t == REC_END)
		return fail(c, offset, "END passed as a record");
	if (idx == 0 && t == REC_HANDOVER)
		return fail(c, offset, "a live-update handover stream, not a domain's stream");
	if (idx == 0 && t != REC_DOMAIN_CONFIG)
		return fail(c, offset, "first record is %s (%#x), expected DOMAIN_CONFIG",
			    name_of(t), t);
	if (idx == 1 && t != REC_MEMORY_LAYOUT)
		return fail(c, offset, "second record is %s (%#x), expected MEMORY_LAYOUT",
			    name_of(t), t);
	if (t == REC_DOMAIN_CONFIG)
		return idx ? fail(c, offset, "a second DOMAIN_CONFIG record") :
			     check_config(c, offset, rh, body);
	if (t == REC_MEMORY_LAYOUT)
		return idx != 1 ? fail(c, offset, "a second MEMORY_LAYOUT record") :
				  check_layout(c, offset, rh, body);
	if (t == REC_PAGE_BATCH)	/* check_pages() once decoded */
		return enter_phase(c, offset, t, PH_PAGES);
	if (t >= REC_VCPU_REGS && t <= REC_VCPU_DEBUGREGS)
		return enter_phase(c, offset, t, PH_VCPUS) ?:
		       check_vcpu(c, offset, rh, body);
	if (t >= REC_VM_IRQCHIP && t <= REC_VM_CLOCK)
		return enter_phase(c, offset, t, PH_VM) ?:
		       check_vm(c, offset, rh, body);
	if (t >= REC_DEV_UART && t <= REC_DEV_BOARD)
		return enter_phase(c, offset, t, PH_DEVICES) ?:
		       check_device(c, offset, rh, body);
	if (t == REC_CONSOLE_HISTORY)
		return enter_phase(c, offset, t, PH_CONSOLE) ?:
		       check_console(c, offset, rh, body);
	if (rh->flags & REC_F_OPTIONAL)
		return 0;		/* a reader may skip it */
	if (t >= REC_HANDOVER && t <= REC_CLIENT)
		return fail(c, offset, "%s record (%#x): only live-update handover streams have these",
			    name_of(t), t);
	/* Known to the format, but restore has no use for it (it refuses). */
	return fail(c, offset, "mandatory %s record (%#x) that restore does not apply",
		    name_of(t), t);
}

int check_pages(struct stream_check *c, uint64_t offset,
		const uint64_t *pfns, unsigned n)
{
	unsigned i;

	if (!c->have_layout)
		return fail(c, offset, "PAGE_BATCH before MEMORY_LAYOUT");
	for (i = 0; i < n; i++) {
		uint64_t pfn;

		memcpy(&pfn, &pfns[i], sizeof(pfn));
		if (!check_pfn_is_ram(c, pfn))
			return fail(c, offset, "PAGE_BATCH page %u: pfn %#llx is outside the %u MiB of RAM",
				    i, (unsigned long long)pfn, c->memory_mib);
	}
	c->pages += n;
	return 0;
}

int check_end(struct stream_check *c, uint64_t offset)
{
	static const uint32_t need[] = { REC_VCPU_REGS, REC_VCPU_SREGS };
	unsigned v, i;

	c->ended = true;
	c->records++;
	if (!c->have_config)
		return fail(c, offset, "stream ends without a DOMAIN_CONFIG record");
	if (!c->have_layout)
		return fail(c, offset, "stream ends without a MEMORY_LAYOUT record");
	for (v = 0; v < c->nr_vcpus; v++) {
		for (i = 0; i < 2; i++) {
			uint32_t bit = 1u << (need[i] - REC_VCPU_REGS);

			if (!(c->vcpu_seen[v] & bit))
				return fail(c, offset, "stream ends without %s for vCPU %u of %u",
					    name_of(need[i]), v, c->nr_vcpus);
		}
	}
	for (i = REC_DEV_UART; i <= REC_DEV_BOARD; i++)
		if (!(c->devices_seen & (1u << (i - REC_DEV_UART))))
			return fail(c, offset, "stream ends without a %s record",
				    name_of(i));
	return 0;
}
