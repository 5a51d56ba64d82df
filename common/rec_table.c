/*
 * The record table and the checks of a domain's records: which records
 * must be there and where, their sizes, what their bodies may hold, pages
 * within RAM (docs/state-format.md).  A stream these pass is one the
 * daemon's loaders can apply; what is left to them is what only this
 * host can say (KVM refusing a value, XSAVE components it lacks).
 */
#include <jansson.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rec_table.h"

static int check_config(struct stream_check *c, const struct rec_desc *d,
			uint64_t offset, const uint8_t *body, uint32_t len);
static int check_layout(struct stream_check *c, const struct rec_desc *d,
			uint64_t offset, const uint8_t *body, uint32_t len);
static int check_cpuid(struct stream_check *c, const struct rec_desc *d,
		       uint64_t offset, const uint8_t *body, uint32_t len);
static int check_vcpu(struct stream_check *c, const struct rec_desc *d,
		      uint64_t offset, const uint8_t *body, uint32_t len);
static int check_irqchip(struct stream_check *c, const struct rec_desc *d,
			 uint64_t offset, const uint8_t *body, uint32_t len);
static int check_uart(struct stream_check *c, const struct rec_desc *d,
		      uint64_t offset, const uint8_t *body, uint32_t len);
static int check_console(struct stream_check *c, const struct rec_desc *d,
			 uint64_t offset, const uint8_t *body, uint32_t len);
static int check_virtio(struct stream_check *c, const struct rec_desc *d,
			uint64_t offset, const uint8_t *body, uint32_t len);
static int check_acpi_pm(struct stream_check *c, const struct rec_desc *d,
			 uint64_t offset, const uint8_t *body, uint32_t len);

#define REC(t, ph, rule, sz, fl, fn) \
	{ REC_##t, #t, PH_##ph, RS_##rule, sz, fl, fn }
#define ONE_REQUIRED	(REC_REQUIRED | REC_ONCE)

static const struct rec_desc table[] = {
	REC(END, END, EXACT, 0, 0, NULL),
	REC(DOMAIN_CONFIG, PROLOGUE, ANY, 0, ONE_REQUIRED, check_config),
	REC(MEMORY_LAYOUT, PROLOGUE, EXACT, sizeof(struct rec_memory_layout),
	    ONE_REQUIRED, check_layout),
	/* Newer than the format: written OPTIONAL, so not required.  Before
	 * the vCPUs: KVM checks their MSRs and XSAVE against it. */
	REC(CPUID, CPUID, AT_LEAST, sizeof(struct rec_cpuid), REC_ONCE,
	    check_cpuid),
	/* Its framing and pages: stream_decode_pages(), check_pages(). */
	REC(PAGE_BATCH, PAGES, ANY, 0, 0, NULL),
	/* The order restore applies them in: SREGS (APIC base) before
	 * LAPIC, MSRs (TSC) before events; IA32_TSC_DEADLINE is set again
	 * after LAPIC and after TSC (xen/vcpu_state.c). */
	REC(VCPU_REGS, VCPUS, EXACT, sizeof(struct kvm_regs), REC_REQUIRED,
	    check_vcpu),
	REC(VCPU_SREGS, VCPUS, EXACT, sizeof(struct kvm_sregs),
	    REC_REQUIRED, check_vcpu),
	REC(VCPU_XSAVE, VCPUS, AT_LEAST, sizeof(struct kvm_xsave), 0,
	    check_vcpu),
	REC(VCPU_XCRS, VCPUS, EXACT, sizeof(struct kvm_xcrs), 0, check_vcpu),
	REC(VCPU_MSRS, VCPUS, AT_LEAST, sizeof(struct kvm_msrs), 0,
	    check_vcpu),
	REC(VCPU_LAPIC, VCPUS, EXACT, sizeof(struct kvm_lapic_state), 0,
	    check_vcpu),
	REC(VCPU_MP_STATE, VCPUS, EXACT, sizeof(struct kvm_mp_state), 0,
	    check_vcpu),
	REC(VCPU_EVENTS, VCPUS, EXACT, sizeof(struct kvm_vcpu_events), 0,
	    check_vcpu),
	REC(VCPU_DEBUGREGS, VCPUS, EXACT, sizeof(struct kvm_debugregs), 0,
	    check_vcpu),
	/* Written OPTIONAL; last, as it moves the TSC the MSRs set. */
	REC(VCPU_TSC, VCPUS, EXACT, sizeof(struct rec_vcpu_tsc), 0,
	    check_vcpu),
	REC(VM_IRQCHIP, VM, EXACT, sizeof(struct kvm_irqchip), 0,
	    check_irqchip),
	REC(VM_PIT, VM, EXACT, sizeof(struct kvm_pit_state2), REC_ONCE, NULL),
	REC(VM_CLOCK, VM, EXACT, sizeof(struct kvm_clock_data), REC_ONCE,
	    NULL),
	REC(DEV_UART, DEVICES, AT_LEAST, sizeof(struct rec_dev_uart),
	    ONE_REQUIRED, check_uart),
	REC(DEV_RTC, DEVICES, EXACT, sizeof(struct rec_dev_rtc), ONE_REQUIRED,
	    NULL),
	REC(DEV_BOARD, DEVICES, EXACT, sizeof(struct rec_dev_board),
	    ONE_REQUIRED, NULL),
	/* Newer than the format: written OPTIONAL, so not required. */
	REC(DEV_FW_CFG, DEVICES, EXACT, sizeof(struct rec_dev_fw_cfg),
	    REC_ONCE, NULL),
	/* One per virtio-pci function; written OPTIONAL. */
	REC(DEV_VIRTIO, DEVICES, AT_LEAST, sizeof(struct rec_dev_virtio), 0,
	    check_virtio),
	/* Written OPTIONAL. */
	REC(DEV_ACPI_PM, DEVICES, EXACT, sizeof(struct rec_dev_acpi_pm),
	    REC_ONCE, check_acpi_pm),
	REC(CONSOLE_HISTORY, CONSOLE, AT_LEAST,
	    sizeof(struct rec_console_head), REC_ONCE, check_console),
	REC(DOMAIN_STATUS, UNUSED, ANY, 0, 0, NULL),
	REC(HANDOVER, HANDOVER, ANY, 0, 0, NULL),
	REC(DOMAIN_BEGIN, HANDOVER, EXACT, sizeof(struct rec_domain_begin), 0,
	    NULL),
	REC(DOMAIN_END, HANDOVER, EXACT, 0, 0, NULL),
	REC(CLIENT, HANDOVER, AT_LEAST, sizeof(struct rec_client), 0, NULL),
};

#define NR_ENTRIES (sizeof(table) / sizeof(table[0]))

_Static_assert(NR_ENTRIES <= 64, "check.seen has a bit per entry");

const struct rec_desc *rec_desc_at(unsigned i)
{
	return i < NR_ENTRIES ? &table[i] : NULL;
}

const struct rec_desc *rec_desc(uint32_t type)
{
	unsigned i;

	for (i = 0; i < NR_ENTRIES; i++)
		if (table[i].type == type)
			return &table[i];
	return NULL;
}

const char *rec_type_name(uint32_t type)
{
	const struct rec_desc *d = rec_desc(type);

	return d ? d->name : NULL;
}

static unsigned entry_bit(const struct rec_desc *d)
{
	return d - table;
}

/* A vCPU record's rank: its place among the vCPU entries. */
static int vcpu_rank(const struct rec_desc *d)
{
	int rank = 0;
	unsigned i;

	for (i = 0; i < NR_ENTRIES && &table[i] != d; i++)
		rank += table[i].phase == PH_VCPUS;
	return rank;
}

/* ------------------------------------------------------------ checks */

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

static const char *const phase_names[] = {
	[PH_PROLOGUE] = "the prologue", [PH_CPUID] = "the CPUID",
	[PH_PAGES] = "the pages",
	[PH_VCPUS] = "the vCPU records", [PH_VM] = "the VM records",
	[PH_DEVICES] = "the device records",
	[PH_CONSOLE] = "the console history",
};

void check_init(struct stream_check *c)
{
	memset(c, 0, sizeof(*c));
	domcfg_init(&c->cfg);
	c->cur_vcpu = -1;
}

void check_free(struct stream_check *c)
{
	domcfg_free(&c->cfg);
}

bool check_pfn_is_ram(const struct stream_check *c, uint64_t pfn)
{
	uint64_t pfn_4g = REC_RAM_HIGH_START / STREAM_PAGE_SIZE;

	if (pfn < c->low_pages)
		return true;
	return pfn >= pfn_4g && pfn - pfn_4g < c->high_pages;
}

/* DOMAIN_CONFIG: JSON the daemon's own config parser accepts. */
static int check_config(struct stream_check *c, const struct rec_desc *d,
			uint64_t offset, const uint8_t *body, uint32_t len)
{
	char why[200];
	json_error_t jerr;
	json_t *j;
	int ret = 0;

	j = json_loadb((const char *)body, len, 0, &jerr);
	if (!j)
		return fail(c, offset, "DOMAIN_CONFIG is not JSON: %s (at byte %d)",
			    jerr.text, jerr.position);
	if (domcfg_from_json(j, &c->cfg, why, sizeof(why)) < 0)
		ret = fail(c, offset, "DOMAIN_CONFIG: %s", why);
	else if (c->cfg.vcpus < 1 || c->cfg.vcpus > DOMCFG_VCPUS_LIMIT)
		ret = fail(c, offset, "DOMAIN_CONFIG: %u vCPUs", c->cfg.vcpus);
	json_decref(j);
	if (ret)
		return ret;
	c->nr_vcpus = c->cfg.vcpus;
	c->memory_mib = c->cfg.memory_mib;
	c->have_config = true;
	return 0;
}

static int check_layout(struct stream_check *c, const struct rec_desc *d,
			uint64_t offset, const uint8_t *body, uint32_t len)
{
	struct rec_memory_layout *l = &c->layout;
	uint64_t low;

	memcpy(l, body, sizeof(*l));
	if (l->page_size != STREAM_PAGE_SIZE)
		return fail(c, offset, "MEMORY_LAYOUT: page size %u, expected %u",
			    l->page_size, STREAM_PAGE_SIZE);
	if (l->ram_bytes != (uint64_t)c->memory_mib << 20)
		return fail(c, offset, "MEMORY_LAYOUT: %llu bytes of RAM, the config has %u MiB",
			    (unsigned long long)l->ram_bytes, c->memory_mib);
	if (l->hole_start != REC_RAM_HOLE_START)
		return fail(c, offset, "MEMORY_LAYOUT: hole at %#llx, expected %#llx",
			    (unsigned long long)l->hole_start,
			    (unsigned long long)REC_RAM_HOLE_START);
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

size_t rec_cpuid_size(unsigned nent)
{
	return sizeof(struct rec_cpuid) + nent * sizeof(struct rec_cpuid_entry);
}

static int check_cpuid_entry(struct stream_check *c, uint64_t offset,
			     unsigned i, const struct rec_cpuid_entry *e)
{
	uint32_t eax = e->eax, ebx = e->ebx, edx = e->edx;

	if (e->flags & ~REC_CPUID_F_INDEX ||
	    (!(e->flags & REC_CPUID_F_INDEX) && e->index))
		return fail(c, offset, "CPUID entry %u (leaf %#x): flags %#x with subleaf %u",
			    i, e->function, e->flags, e->index);
	if (e->reserved[0] || e->reserved[1] || e->reserved[2])
		return fail(c, offset, "CPUID entry %u (leaf %#x): reserved bytes are not zero",
			    i, e->function);
	rec_cpuid_put_apic_id(e->function, &eax, &ebx, &edx, 0);
	if (eax != e->eax || ebx != e->ebx || edx != e->edx)
		return fail(c, offset, "CPUID leaf %#x subleaf %u: an APIC id field is not zero (each vCPU gets its own)",
			    e->function, e->index);
	return 0;
}

/* A leaf appears once per subleaf, and leaf 0 (the vendor) is there. */
static int check_cpuid_unique(struct stream_check *c, uint64_t offset,
			      const struct rec_cpuid_entry *e, unsigned n)
{
	bool leaf0 = false;
	unsigned i, j;

	for (i = 0; i < n; i++) {
		leaf0 |= e[i].function == 0 && e[i].index == 0;
		for (j = 0; j < i; j++)
			if (e[j].function == e[i].function &&
			    e[j].index == e[i].index)
				return fail(c, offset, "CPUID leaf %#x subleaf %u twice",
					    e[i].function, e[i].index);
	}
	if (!leaf0)
		return fail(c, offset, "CPUID without leaf 0");
	return 0;
}

static int check_cpuid(struct stream_check *c, const struct rec_desc *d,
		       uint64_t offset, const uint8_t *body, uint32_t len)
{
	struct rec_cpuid_entry e[REC_CPUID_ENTRIES_MAX];
	struct rec_cpuid h;
	unsigned i;

	memcpy(&h, body, sizeof(h));
	if (!h.nent || h.nent > REC_CPUID_ENTRIES_MAX || h.reserved)
		return fail(c, offset, "CPUID: %u entries (1 to %u), reserved %#x",
			    h.nent, REC_CPUID_ENTRIES_MAX, h.reserved);
	if (len != rec_cpuid_size(h.nent))
		return fail(c, offset, "CPUID: %u bytes for %u entries",
			    len, h.nent);
	memcpy(e, body + sizeof(h), h.nent * sizeof(e[0]));
	for (i = 0; i < h.nent; i++)
		if (check_cpuid_entry(c, offset, i, &e[i]) < 0)
			return -1;
	return check_cpuid_unique(c, offset, e, h.nent);
}

/*
 * `size` bytes against the record's size rule: the body, or for a vCPU
 * record the KVM structure after its head; `exact` words a mismatch.
 */
static int check_size_rule(struct stream_check *c, const struct rec_desc *d,
			   uint64_t offset, uint32_t size, const char *exact)
{
	if (d->size_rule == RS_EXACT && size != d->size)
		return fail(c, offset, "%s of %u bytes, %s %u", d->name, size,
			    exact, d->size);
	if (d->size_rule == RS_AT_LEAST && size < d->size)
		return fail(c, offset, "%s of %u bytes, at least %u expected",
			    d->name, size, d->size);
	return 0;
}

static int check_msrs(struct stream_check *c, uint64_t offset,
		      const uint8_t *data, uint32_t size)
{
	struct kvm_msrs m;

	memcpy(&m, data, sizeof(m));
	if (m.nmsrs != (size - sizeof(m)) / sizeof(struct kvm_msr_entry) ||
	    (size - sizeof(m)) % sizeof(struct kvm_msr_entry))
		return fail(c, offset, "VCPU_MSRS: %u entries in %u bytes",
			    m.nmsrs, size);
	return 0;
}

/* Each vCPU's records in table order, the vCPUs in order. */
static int check_vcpu_order(struct stream_check *c, const struct rec_desc *d,
			    uint64_t offset, unsigned vcpu)
{
	int rank = vcpu_rank(d);

	if ((int)vcpu < c->cur_vcpu)
		return fail(c, offset, "%s of vCPU %u after the records of vCPU %d",
			    d->name, vcpu, c->cur_vcpu);
	if ((int)vcpu == c->cur_vcpu && rank <= c->cur_rank)
		return fail(c, offset, "%s of vCPU %u %s", d->name, vcpu,
			    rank == c->cur_rank ?
			    "twice" : "out of order (docs/state-format.md)");
	c->cur_vcpu = vcpu;
	c->cur_rank = rank;
	c->vcpu_seen[vcpu] |= 1u << rank;
	return 0;
}

static int check_vcpu(struct stream_check *c, const struct rec_desc *d,
		      uint64_t offset, const uint8_t *body, uint32_t len)
{
	struct rec_vcpu_head h;

	if (len < sizeof(h))
		return fail(c, offset, "%s of %u bytes has no vCPU head",
			    d->name, len);
	memcpy(&h, body, sizeof(h));
	if (h.vcpu >= c->nr_vcpus)
		return fail(c, offset, "%s for vCPU %u, the config has %u vCPUs",
			    d->name, h.vcpu, c->nr_vcpus);
	if (h.size != len - sizeof(h))
		return fail(c, offset, "%s says %u bytes, the record holds %zu",
			    d->name, h.size, len - sizeof(h));
	if (check_size_rule(c, d, offset, h.size, "struct is") < 0)
		return -1;
	if (d->type == REC_VCPU_MSRS &&
	    check_msrs(c, offset, body + sizeof(h), h.size) < 0)
		return -1;
	return check_vcpu_order(c, d, offset, h.vcpu);
}

static int check_irqchip(struct stream_check *c, const struct rec_desc *d,
			 uint64_t offset, const uint8_t *body, uint32_t len)
{
	struct kvm_irqchip chip;

	memcpy(&chip, body, sizeof(chip));
	if (chip.chip_id > KVM_IRQCHIP_IOAPIC)
		return fail(c, offset, "VM_IRQCHIP: chip id %u", chip.chip_id);
	if (c->irqchips_seen & (1u << chip.chip_id))
		return fail(c, offset, "a second VM_IRQCHIP record for chip %u",
			    chip.chip_id);
	c->irqchips_seen |= 1u << chip.chip_id;
	return 0;
}

static int check_uart(struct stream_check *c, const struct rec_desc *d,
		      uint64_t offset, const uint8_t *body, uint32_t len)
{
	struct rec_dev_uart u;

	memcpy(&u, body, sizeof(u));
	if (u.in_len > REC_DEV_UART_INPUT_MAX || len != sizeof(u) + u.in_len)
		return fail(c, offset, "DEV_UART: %u queued input bytes in a %u-byte record",
			    u.in_len, len);
	return 0;
}

static int check_console(struct stream_check *c, const struct rec_desc *d,
			 uint64_t offset, const uint8_t *body, uint32_t len)
{
	struct rec_console_head h;

	memcpy(&h, body, sizeof(h));
	if (h.total < len - sizeof(h))
		return fail(c, offset, "CONSOLE_HISTORY holds %zu bytes of a total of %llu",
			    len - sizeof(h), (unsigned long long)h.total);
	return 0;
}

/* Bytes of a DEV_VIRTIO record with these counts. */
size_t rec_virtio_size(unsigned nr_queues, unsigned msix_entries)
{
	return sizeof(struct rec_dev_virtio) +
	       nr_queues * sizeof(struct rec_virtq) +
	       msix_entries * sizeof(struct rec_msix_entry) +
	       (msix_entries + 63) / 64 * sizeof(uint64_t);
}

static int check_virtq(struct stream_check *c, uint64_t offset,
		       const struct rec_dev_virtio *v, unsigned i,
		       const struct rec_virtq *q)
{
	if (q->size & (q->size - 1) || q->size > 32768)
		return fail(c, offset, "DEV_VIRTIO slot %u: queue %u has size %u",
			    v->slot, i, q->size);
	if (q->enabled > 1)
		return fail(c, offset, "DEV_VIRTIO slot %u: queue %u enabled is %u",
			    v->slot, i, q->enabled);
	if (q->enabled && !q->size)
		return fail(c, offset, "DEV_VIRTIO slot %u: queue %u is enabled with size 0",
			    v->slot, i);
	return 0;
}

static int check_virtio(struct stream_check *c, const struct rec_desc *d,
			uint64_t offset, const uint8_t *body, uint32_t len)
{
	struct rec_dev_virtio v;
	struct rec_virtq q;
	unsigned i;

	memcpy(&v, body, sizeof(v));
	if (v.slot == 0 || v.slot >= 32)
		return fail(c, offset, "DEV_VIRTIO: PCI slot %u", v.slot);
	if (c->virtio_slots & (1u << v.slot))
		return fail(c, offset, "a second DEV_VIRTIO record for slot %u",
			    v.slot);
	c->virtio_slots |= 1u << v.slot;
	if (v.device_id != 1 && v.device_id != 2 && v.device_id != 4)
		return fail(c, offset, "DEV_VIRTIO slot %u: device type %u",
			    v.slot, v.device_id);
	if (v.nr_queues > REC_VIRTIO_QUEUES_MAX ||
	    v.msix_entries > REC_VIRTIO_MSIX_MAX)
		return fail(c, offset, "DEV_VIRTIO slot %u: %u queues, %u MSI-X entries",
			    v.slot, v.nr_queues, v.msix_entries);
	if (len != rec_virtio_size(v.nr_queues, v.msix_entries))
		return fail(c, offset, "DEV_VIRTIO slot %u: %u bytes for %u queues and %u MSI-X entries",
			    v.slot, len, v.nr_queues, v.msix_entries);
	if (v.broken > 1 || v.queue_select >= v.nr_queues + 1u)
		return fail(c, offset, "DEV_VIRTIO slot %u: broken %u, queue select %u",
			    v.slot, v.broken, v.queue_select);
	for (i = 0; i < v.nr_queues; i++) {
		memcpy(&q, body + sizeof(v) + i * sizeof(q), sizeof(q));
		if (check_virtq(c, offset, &v, i, &q) < 0)
			return -1;
	}
	return 0;
}

static int check_acpi_pm(struct stream_check *c, const struct rec_desc *d,
			 uint64_t offset, const uint8_t *body, uint32_t len)
{
	struct rec_dev_acpi_pm p;

	memcpy(&p, body, sizeof(p));
	if ((p.pm1_sts & ~REC_ACPI_PM1_STS_BITS) ||
	    (p.pm1_en & ~REC_ACPI_PM1_EN_BITS) ||
	    (p.pm1_cnt & ~REC_ACPI_PM1_CNT_BITS) || p.reserved)
		return fail(c, offset, "DEV_ACPI_PM: undefined bits in PM1 status %#x, enable %#x, control %#x or reserved %#x",
			    p.pm1_sts, p.pm1_en, p.pm1_cnt, p.reserved);
	return 0;
}

/* ------------------------------------------------------------ records */

/* The first two records are the prologue, in this order. */
static int check_prologue_place(struct stream_check *c, uint64_t offset,
				unsigned idx, uint32_t t)
{
	if (idx == 0 && t == REC_HANDOVER)
		return fail(c, offset, "a live-update handover stream, not a domain's stream");
	if (idx == 0 && t != REC_DOMAIN_CONFIG)
		return fail(c, offset, "first record is %s (%#x), expected DOMAIN_CONFIG",
			    name_of(t), t);
	if (idx == 1 && t != REC_MEMORY_LAYOUT)
		return fail(c, offset, "second record is %s (%#x), expected MEMORY_LAYOUT",
			    name_of(t), t);
	return 0;
}

/* Records restore does not apply to a domain. */
static int check_not_applied(struct stream_check *c, const struct rec_desc *d,
			     uint64_t offset, const struct rec_header *rh)
{
	if (rh->flags & REC_F_OPTIONAL)
		return 0;		/* a reader may skip it */
	if (!d)
		return fail(c, offset, "unknown mandatory record type %#x",
			    rh->type);
	if (d->phase == PH_HANDOVER)
		return fail(c, offset, "%s record (%#x): only live-update handover streams have these",
			    d->name, d->type);
	return fail(c, offset, "mandatory %s record (%#x) that restore does not apply",
		    d->name, d->type);
}

/* A record may not follow the records of a later phase. */
static int check_place(struct stream_check *c, const struct rec_desc *d,
		       uint64_t offset)
{
	if (d->phase == PH_PROLOGUE) {
		if (c->seen & (1ull << entry_bit(d)))
			return fail(c, offset, "a second %s record", d->name);
		return 0;
	}
	if (c->phase > d->phase)
		return fail(c, offset, "%s record after %s", d->name,
			    phase_names[c->phase]);
	c->phase = d->phase;
	if ((d->flags & REC_ONCE) && (c->seen & (1ull << entry_bit(d))))
		return fail(c, offset, "a second %s record", d->name);
	return 0;
}

static int check_size(struct stream_check *c, const struct rec_desc *d,
		      uint64_t offset, uint32_t len)
{
	if (d->phase == PH_VCPUS)
		return 0;		/* the KVM structure after the head */
	return check_size_rule(c, d, offset, len, "expected");
}

int check_record(struct stream_check *c, uint64_t offset,
		 const struct rec_header *rh, const uint8_t *body)
{
	unsigned idx = c->records++;
	const struct rec_desc *d = rec_desc(rh->type);

	if (c->ended)
		return fail(c, offset, "record after END");
	if (rh->type == REC_END)
		return fail(c, offset, "END passed as a record");
	if (check_prologue_place(c, offset, idx, rh->type) < 0)
		return -1;
	if (!d || d->phase >= PH_UNUSED)
		return check_not_applied(c, d, offset, rh);
	if (check_place(c, d, offset) < 0 ||
	    check_size(c, d, offset, rh->length) < 0)
		return -1;
	if (d->check && d->check(c, d, offset, body, rh->length) < 0)
		return -1;
	c->seen |= 1ull << entry_bit(d);
	return 0;
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

static int check_vcpus_complete(struct stream_check *c, uint64_t offset)
{
	unsigned v, i;

	for (v = 0; v < c->nr_vcpus; v++) {
		for (i = 0; i < NR_ENTRIES; i++) {
			const struct rec_desc *d = &table[i];

			if (d->phase != PH_VCPUS || !(d->flags & REC_REQUIRED))
				continue;
			if (!(c->vcpu_seen[v] & (1u << vcpu_rank(d))))
				return fail(c, offset, "stream ends without %s for vCPU %u of %u",
					    d->name, v, c->nr_vcpus);
		}
	}
	return 0;
}

int check_end(struct stream_check *c, uint64_t offset)
{
	unsigned i;

	c->ended = true;
	c->records++;
	if (!c->have_config)
		return fail(c, offset, "stream ends without a DOMAIN_CONFIG record");
	if (!c->have_layout)
		return fail(c, offset, "stream ends without a MEMORY_LAYOUT record");
	if (check_vcpus_complete(c, offset) < 0)
		return -1;
	for (i = 0; i < NR_ENTRIES; i++) {
		const struct rec_desc *d = &table[i];

		if (d->phase != PH_VCPUS && (d->flags & REC_REQUIRED) &&
		    !(c->seen & (1ull << i)))
			return fail(c, offset, "stream ends without a %s record",
				    d->name);
	}
	return 0;
}
