/*
 * `xen-stream dump`: the header and every record of a state stream with
 * its decoded fields, then a summary.  Problems (the reader's and
 * the record table's) are printed where they are found; the dump goes on as far
 * as the framing allows.
 */
#include <jansson.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>

#include "rec_table.h"
#include "stream.h"
#include "stream_tool.h"

#define TEXT_MAX	4096	/* most bytes of text shown from a record */
#define NR_COUNTED	0x100	/* types counted one by one in the summary */

struct dump {
	FILE *out;
	const struct dump_opts *o;
	struct stream_reader *r;
	struct stream_check check;
	bool checking;			/* until the record table's first problem */
	unsigned problems;
	unsigned counts[NR_COUNTED], other_types;
	uint64_t pages, batches;
	uint64_t enc_bytes[3], enc_batches[3], enc_other;
	uint8_t *decoded;		/* one decoded PAGE_BATCH */
};

static void problem(struct dump *d, const char *msg)
{
	fprintf(d->out, "  problem: %s\n", msg);
	d->problems++;
}

static void print_text(FILE *out, const uint8_t *p, size_t len)
{
	size_t i, n = len < TEXT_MAX ? len : TEXT_MAX;

	for (i = 0; i < n; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
			fputc(p[i], out);
		else
			fprintf(out, "\\x%02x", p[i]);
	}
	if (n < len)
		fprintf(out, "... (%zu more bytes)", len - n);
}

/* ------------------------------------------------------------ header */

static void dump_header(struct dump *d)
{
	const struct stream_header *h = &d->r->hdr;
	char err[128];
	unsigned i;

	fprintf(d->out, "header: magic %.8s, format version %u, header_len %u, flags %#x\n",
		h->magic, h->version, h->header_len, h->flags);
	fprintf(d->out, "  writer version: ");
	print_text(d->out, (const uint8_t *)h->writer_version,
		   strnlen(h->writer_version, sizeof(h->writer_version)));
	fprintf(d->out, "\n  build-id: ");
	for (i = 0; i < h->build_id_len && i < sizeof(h->build_id); i++)
		fprintf(d->out, "%02x", h->build_id[i]);
	fprintf(d->out, "%s (%u bytes)\n", h->build_id_len ? "" : "none",
		h->build_id_len);
	fprintf(d->out, "  byte order: %#010x (little-endian), header crc32 %#010x\n",
		h->byte_order, h->crc);
	if (verify_header(h, err, sizeof(err)) < 0)
		problem(d, err);
}

/* ------------------------------------------------------------ prologue */

static void dump_config(struct dump *d, const uint8_t *body, uint32_t len)
{
	json_error_t jerr;
	json_t *j, *v;

	fprintf(d->out, "  config: ");
	print_text(d->out, body, len);
	fputc('\n', d->out);
	j = json_loadb((const char *)body, len, 0, &jerr);
	if (!json_is_object(j)) {
		json_decref(j);
		return;
	}
	v = json_object_get(j, "name");
	fprintf(d->out, "  name %s", json_is_string(v) ? json_string_value(v) :
		"(none)");
	v = json_object_get(j, "memory");
	if (json_is_integer(v))
		fprintf(d->out, ", memory %lld MiB",
			(long long)json_integer_value(v));
	v = json_object_get(j, "vcpus");
	if (json_is_integer(v))
		fprintf(d->out, ", vcpus %lld", (long long)json_integer_value(v));
	fputc('\n', d->out);
	json_decref(j);
}

static void dump_layout(struct dump *d, const uint8_t *body, uint32_t len)
{
	struct rec_memory_layout l;

	if (len != sizeof(l)) {
		fprintf(d->out, "  (%u bytes: not a layout of %zu, not decoded)\n",
			len, sizeof(l));
		return;
	}
	memcpy(&l, body, sizeof(l));
	fprintf(d->out, "  ram_bytes %llu (%llu MiB), low_bytes %#llx, hole_start %#llx, page_size %u\n",
		(unsigned long long)l.ram_bytes,
		(unsigned long long)(l.ram_bytes >> 20),
		(unsigned long long)l.low_bytes,
		(unsigned long long)l.hole_start, l.page_size);
}

/* One line per leaf: "leaf 0x00000001.0 eax ... ebx ... ecx ... edx ...". */
static void dump_cpuid(struct dump *d, const uint8_t *body, uint32_t len)
{
	struct rec_cpuid_entry e;
	struct rec_cpuid h;
	unsigned i;

	if (len < sizeof(h))
		return;
	memcpy(&h, body, sizeof(h));
	fprintf(d->out, "  %u entries\n", h.nent);
	for (i = 0; i < h.nent &&
	     sizeof(h) + (i + 1) * sizeof(e) <= len; i++) {
		memcpy(&e, body + sizeof(h) + i * sizeof(e), sizeof(e));
		fprintf(d->out, "  leaf 0x%08x.%u eax 0x%08x ebx 0x%08x ecx 0x%08x edx 0x%08x\n",
			e.function, e.index, e.eax, e.ebx, e.ecx, e.edx);
	}
}

/* ------------------------------------------------------------ pages */

static void print_pfns(struct dump *d, const uint8_t *list, unsigned n)
{
	uint64_t first, last, pfn;
	unsigned i;

	memcpy(&first, list, 8);
	memcpy(&last, list + (size_t)(n - 1) * 8, 8);
	fprintf(d->out, "  pfns %#llx .. %#llx\n", (unsigned long long)first,
		(unsigned long long)last);
	if (!d->o->pages)
		return;
	for (i = 0; i < n; i++) {
		memcpy(&pfn, list + (size_t)i * 8, 8);
		fprintf(d->out, "%s%#llx", i % 8 ? " " : "    ",
			(unsigned long long)pfn);
		if (i % 8 == 7 || i == n - 1)
			fputc('\n', d->out);
	}
}

static void dump_pages(struct dump *d, const uint8_t *body, uint32_t len)
{
	struct rec_page_batch b;
	const uint64_t *pfns;
	unsigned n;

	if (len < sizeof(b)) {
		fprintf(d->out, "  (%u bytes: no batch head)\n", len);
	} else {
		memcpy(&b, body, sizeof(b));
		fprintf(d->out, "  nr_pages %u, encoding %s (%u), data_len %u\n",
			b.nr_pages, page_encoding_name(b.encoding), b.encoding,
			b.data_len);
		if (b.nr_pages && sizeof(b) + (uint64_t)b.nr_pages * 8 <= len)
			print_pfns(d, body + sizeof(b), b.nr_pages);
		if (b.encoding < 3) {
			d->enc_bytes[b.encoding] += b.data_len;
			d->enc_batches[b.encoding]++;
		} else {
			d->enc_other++;
		}
	}
	d->batches++;
	if (!d->decoded) {
		d->decoded = malloc(STREAM_BATCH_PAGES * STREAM_PAGE_SIZE);
		if (!d->decoded) {
			problem(d, "out of memory to decode pages");
			return;
		}
	}
	if (stream_decode_pages(d->r, &pfns, &n, d->decoded,
				STREAM_BATCH_PAGES * STREAM_PAGE_SIZE) < 0) {
		problem(d, d->r->err);
		return;
	}
	d->pages += n;
	if (d->checking && check_pages(&d->check, d->r->rec_offset, pfns,
				       n) < 0) {
		problem(d, d->check.err);
		d->checking = false;
	}
}

/* ------------------------------------------------------------ vCPUs */

static void dump_regs(FILE *out, const struct kvm_regs *g)
{
	fprintf(out, "  rip %#llx rsp %#llx rflags %#llx\n",
		g->rip, g->rsp, g->rflags);
	fprintf(out, "  rax %#llx rbx %#llx rcx %#llx rdx %#llx\n",
		g->rax, g->rbx, g->rcx, g->rdx);
	fprintf(out, "  rsi %#llx rdi %#llx rbp %#llx\n", g->rsi, g->rdi,
		g->rbp);
	fprintf(out, "  r8 %#llx r9 %#llx r10 %#llx r11 %#llx\n",
		g->r8, g->r9, g->r10, g->r11);
	fprintf(out, "  r12 %#llx r13 %#llx r14 %#llx r15 %#llx\n",
		g->r12, g->r13, g->r14, g->r15);
}

static void dump_segment(FILE *out, const char *name,
			 const struct kvm_segment *s)
{
	fprintf(out, "  %s selector %#x base %#llx limit %#x type %u dpl %u l %u db %u present %u\n",
		name, s->selector, s->base, s->limit, s->type, s->dpl, s->l,
		s->db, s->present);
}

static void dump_sregs(FILE *out, const struct kvm_sregs *s)
{
	fprintf(out, "  cr0 %#llx cr2 %#llx cr3 %#llx cr4 %#llx cr8 %#llx\n",
		s->cr0, s->cr2, s->cr3, s->cr4, s->cr8);
	fprintf(out, "  efer %#llx apic_base %#llx\n", s->efer, s->apic_base);
	dump_segment(out, "cs", &s->cs);
	dump_segment(out, "ss", &s->ss);
	fprintf(out, "  gdt base %#llx limit %#x, idt base %#llx limit %#x\n",
		s->gdt.base, s->gdt.limit, s->idt.base, s->idt.limit);
}

static void dump_msrs(FILE *out, const uint8_t *data, uint32_t size)
{
	struct kvm_msrs m;
	struct kvm_msr_entry e;
	unsigned i, n;

	if (size < sizeof(m)) {
		fprintf(out, "  (%u bytes: no MSR count)\n", size);
		return;
	}
	memcpy(&m, data, sizeof(m));
	n = (size - sizeof(m)) / sizeof(e);
	fprintf(out, "  nmsrs %u\n", m.nmsrs);
	if (m.nmsrs < n)
		n = m.nmsrs;
	for (i = 0; i < n; i++) {
		memcpy(&e, data + sizeof(m) + (size_t)i * sizeof(e), sizeof(e));
		fprintf(out, "%s%#x=%#llx", i % 4 ? " " : "    ", e.index,
			e.data);
		if (i % 4 == 3 || i == n - 1)
			fputc('\n', out);
	}
}

static uint32_t lapic_reg(const struct kvm_lapic_state *l, unsigned off)
{
	uint32_t v;

	memcpy(&v, l->regs + off, sizeof(v));
	return v;
}

static void dump_lapic(FILE *out, const struct kvm_lapic_state *l)
{
	uint32_t id = lapic_reg(l, 0x20);

	fprintf(out, "  id %#x (apic id %u) version %#x tpr %#x ldr %#x svr %#x\n",
		id, id >> 24, lapic_reg(l, 0x30), lapic_reg(l, 0x80),
		lapic_reg(l, 0xd0), lapic_reg(l, 0xf0));
	fprintf(out, "  lvt timer %#x lint0 %#x lint1 %#x error %#x, tmict %#x tdcr %#x\n",
		lapic_reg(l, 0x320), lapic_reg(l, 0x350), lapic_reg(l, 0x360),
		lapic_reg(l, 0x370), lapic_reg(l, 0x380), lapic_reg(l, 0x3e0));
}

static const char *mp_state_name(uint32_t s)
{
	static const char *const names[] = {
		"RUNNABLE", "UNINITIALIZED", "INIT_RECEIVED", "HALTED",
		"SIPI_RECEIVED", "STOPPED", "CHECK_STOP", "OPERATING", "LOAD",
		"AP_RESET_HOLD", "SUSPENDED",
	};

	return s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

static void dump_events(FILE *out, const struct kvm_vcpu_events *e)
{
	fprintf(out, "  exception injected %u nr %u has_error_code %u error_code %#x pending %u\n",
		e->exception.injected, e->exception.nr,
		e->exception.has_error_code, e->exception.error_code,
		e->exception.pending);
	fprintf(out, "  interrupt injected %u nr %u soft %u shadow %u, nmi injected %u pending %u masked %u\n",
		e->interrupt.injected, e->interrupt.nr, e->interrupt.soft,
		e->interrupt.shadow, e->nmi.injected, e->nmi.pending,
		e->nmi.masked);
	fprintf(out, "  sipi_vector %u flags %#x\n", e->sipi_vector, e->flags);
}

static void dump_xcrs(FILE *out, const struct kvm_xcrs *x)
{
	unsigned i, n = x->nr_xcrs < KVM_MAX_XCRS ? x->nr_xcrs : KVM_MAX_XCRS;

	fprintf(out, "  nr_xcrs %u", x->nr_xcrs);
	for (i = 0; i < n; i++)
		fprintf(out, " xcr%u=%#llx", x->xcrs[i].xcr, x->xcrs[i].value);
	fputc('\n', out);
}

static void dump_xsave(FILE *out, const uint8_t *data, uint32_t size)
{
	uint64_t xstate_bv;
	uint32_t mxcsr;

	fprintf(out, "  xsave area of %u bytes", size);
	if (size >= 520) {
		memcpy(&mxcsr, data + 24, sizeof(mxcsr));
		memcpy(&xstate_bv, data + 512, sizeof(xstate_bv));
		fprintf(out, ", mxcsr %#x xstate_bv %#llx", mxcsr,
			(unsigned long long)xstate_bv);
	}
	fputc('\n', out);
}

static void dump_debugregs(FILE *out, const struct kvm_debugregs *g)
{
	fprintf(out, "  db0 %#llx db1 %#llx db2 %#llx db3 %#llx dr6 %#llx dr7 %#llx\n",
		g->db[0], g->db[1], g->db[2], g->db[3], g->dr6, g->dr7);
}

static void dump_vcpu(struct dump *d, uint32_t type, const uint8_t *body,
		      uint32_t len)
{
	/* Big enough and aligned for any fixed-size KVM structure. */
	union {
		struct kvm_regs regs;
		struct kvm_sregs sregs;
		struct kvm_xcrs xcrs;
		struct kvm_lapic_state lapic;
		struct kvm_vcpu_events events;
		struct kvm_mp_state mp;
		struct kvm_debugregs debugregs;
		struct rec_vcpu_tsc tsc;
	} u;
	struct rec_vcpu_head h;
	const struct rec_desc *rd = rec_desc(type);
	size_t want = rd->size_rule == RS_EXACT ? rd->size : 0;
	const uint8_t *data;
	uint32_t size;

	/* body is NULL for an empty first record */
	if (len < sizeof(h)) {
		fprintf(d->out, "  (%u bytes: no vCPU head)\n", len);
		return;
	}
	memcpy(&h, body, sizeof(h));
	data = body + sizeof(h);
	size = len - sizeof(h);
	fprintf(d->out, "  vcpu %u, size %u\n", h.vcpu, h.size);
	if (type == REC_VCPU_MSRS) {
		dump_msrs(d->out, data, size);
		return;
	}
	if (type == REC_VCPU_XSAVE) {
		dump_xsave(d->out, data, size);
		return;
	}
	if (size != want) {
		fprintf(d->out, "  (%u bytes: not the %zu of the KVM structure, not decoded)\n",
			size, want);
		return;
	}
	memcpy(&u, data, want);
	switch (type) {
	case REC_VCPU_REGS:
		dump_regs(d->out, &u.regs);
		break;
	case REC_VCPU_SREGS:
		dump_sregs(d->out, &u.sregs);
		break;
	case REC_VCPU_XCRS:
		dump_xcrs(d->out, &u.xcrs);
		break;
	case REC_VCPU_LAPIC:
		dump_lapic(d->out, &u.lapic);
		break;
	case REC_VCPU_EVENTS:
		dump_events(d->out, &u.events);
		break;
	case REC_VCPU_MP_STATE:
		fprintf(d->out, "  mp_state %u (%s)\n", u.mp.mp_state,
			mp_state_name(u.mp.mp_state));
		break;
	case REC_VCPU_DEBUGREGS:
		dump_debugregs(d->out, &u.debugregs);
		break;
	case REC_VCPU_TSC:
		fprintf(d->out, "  tsc %#llx at realtime %llu ns, %u kHz, "
			"offset %#llx%s\n", (unsigned long long)u.tsc.tsc,
			(unsigned long long)u.tsc.realtime_ns, u.tsc.tsc_khz,
			(unsigned long long)u.tsc.offset,
			u.tsc.flags & REC_TSC_OFFSET_VALID ? "" : " (not valid)");
		break;
	}
}

/* ------------------------------------------------------------ VM */

static void dump_irqchip(FILE *out, const struct kvm_irqchip *c)
{
	static const char *const names[] = { "PIC master", "PIC slave",
					     "IOAPIC" };
	const struct kvm_pic_state *p = &c->chip.pic;
	const struct kvm_ioapic_state *io = &c->chip.ioapic;

	fprintf(out, "  chip_id %u (%s)\n", c->chip_id,
		c->chip_id < 3 ? names[c->chip_id] : "unknown");
	if (c->chip_id < 2)
		fprintf(out, "  irr %#x imr %#x isr %#x irq_base %#x elcr %#x\n",
			p->irr, p->imr, p->isr, p->irq_base, p->elcr);
	else if (c->chip_id == 2)
		fprintf(out, "  base_address %#llx id %u irr %#x\n",
			io->base_address, io->id, io->irr);
}

static void dump_pit(FILE *out, const struct kvm_pit_state2 *p)
{
	unsigned i;

	for (i = 0; i < 3; i++)
		fprintf(out, "  channel %u: count %u mode %u gate %u rw_mode %u\n",
			i, p->channels[i].count, p->channels[i].mode,
			p->channels[i].gate, p->channels[i].rw_mode);
	fprintf(out, "  flags %#x\n", p->flags);
}

static void dump_vm(struct dump *d, uint32_t type, const uint8_t *body,
		    uint32_t len)
{
	union {
		struct kvm_irqchip chip;
		struct kvm_pit_state2 pit;
		struct kvm_clock_data clock;
	} u;
	size_t want = type == REC_VM_IRQCHIP ? sizeof(u.chip) :
		      type == REC_VM_PIT ? sizeof(u.pit) : sizeof(u.clock);

	if (len != want) {
		fprintf(d->out, "  (%u bytes: not the %zu of the KVM structure, not decoded)\n",
			len, want);
		return;
	}
	memcpy(&u, body, want);
	if (type == REC_VM_IRQCHIP)
		dump_irqchip(d->out, &u.chip);
	else if (type == REC_VM_PIT)
		dump_pit(d->out, &u.pit);
	else
		fprintf(d->out, "  clock %llu ns (%.3f s) flags %#x "
			"realtime %llu ns\n", u.clock.clock,
			u.clock.clock / 1e9, u.clock.flags, u.clock.realtime);
}

/* ------------------------------------------------------------ devices */

static void dump_virtio(struct dump *d, const uint8_t *body, uint32_t len)
{
	static const char *const kinds[] = {
		[1] = "net", [2] = "blk", [4] = "rng",
	};
	struct rec_dev_virtio v;
	struct rec_virtq q;
	unsigned i;

	if (len < sizeof(v))
		return;
	memcpy(&v, body, sizeof(v));
	fprintf(d->out, "  slot %u virtio-%s #%u status %#x features %#llx%s isr %#x gen %u\n",
		v.slot, v.device_id < 5 && kinds[v.device_id] ?
		kinds[v.device_id] : "?", v.index, v.status,
		(unsigned long long)v.driver_features,
		v.broken ? " BROKEN" : "", v.isr, v.config_generation);
	fprintf(d->out, "  %u queues, %u MSI-X vectors (config %#x), backend fd %d size %llu\n",
		v.nr_queues, v.msix_entries, v.config_msix_vector,
		v.backend_fd, (unsigned long long)v.backend_size);
	for (i = 0; i < v.nr_queues &&
	     sizeof(v) + (i + 1) * sizeof(q) <= len; i++) {
		memcpy(&q, body + sizeof(v) + i * sizeof(q), sizeof(q));
		fprintf(d->out, "  queue %u: size %u %s vector %#x avail %u used %u desc %#llx\n",
			i, q.size, q.enabled ? "enabled" : "disabled",
			q.msix_vector, q.last_avail, q.used_idx,
			(unsigned long long)q.desc);
	}
}

static void dump_device(struct dump *d, uint32_t type, const uint8_t *body,
			uint32_t len)
{
	struct rec_dev_uart u;
	struct rec_dev_rtc t;
	struct rec_dev_board b;
	struct rec_dev_fw_cfg f;
	struct rec_dev_acpi_pm a;

	switch (type) {
	case REC_DEV_UART:
		if (len < sizeof(u))
			break;
		memcpy(&u, body, sizeof(u));
		fprintf(d->out, "  ier %#x lcr %#x mcr %#x scr %#x dll %#x dlm %#x fcr %#x thr_ipending %u\n",
			u.ier, u.lcr, u.mcr, u.scr, u.dll, u.dlm, u.fcr,
			u.thr_ipending);
		fprintf(d->out, "  queued input %u bytes (%zu in the record)\n",
			u.in_len, len - sizeof(u));
		return;
	case REC_DEV_RTC:
		if (len != sizeof(t))
			break;
		memcpy(&t, body, sizeof(t));
		fprintf(d->out, "  index %#x offset_s %lld, reg A %#x B %#x C %#x D %#x\n",
			t.index, (long long)t.offset_s, t.cmos[10], t.cmos[11],
			t.cmos[12], t.cmos[13]);
		return;
	case REC_DEV_BOARD:
		if (len != sizeof(b))
			break;
		memcpy(&b, body, sizeof(b));
		fprintf(d->out, "  pci_addr %#x\n", b.pci_addr);
		return;
	case REC_DEV_FW_CFG:
		if (len != sizeof(f))
			break;
		memcpy(&f, body, sizeof(f));
		fprintf(d->out, "  selector %#x offset %u dma_high %#x\n",
			f.selector, f.offset, f.dma_high);
		return;
	case REC_DEV_VIRTIO:
		dump_virtio(d, body, len);
		return;
	case REC_DEV_ACPI_PM:
		if (len != sizeof(a))
			break;
		memcpy(&a, body, sizeof(a));
		fprintf(d->out, "  pm1_sts %#x pm1_en %#x pm1_cnt %#x pm_tmr_ticks %llu\n",
			a.pm1_sts, a.pm1_en, a.pm1_cnt,
			(unsigned long long)a.pm_tmr_ticks);
		return;
	}
	fprintf(d->out, "  (%u bytes: not decoded)\n", len);
}

static void dump_console(struct dump *d, const uint8_t *body, uint32_t len)
{
	uint64_t total;

	if (len < sizeof(total)) {
		fprintf(d->out, "  (%u bytes: no total)\n", len);
		return;
	}
	memcpy(&total, body, sizeof(total));
	fprintf(d->out, "  total %llu bytes written, holds the last %zu\n",
		(unsigned long long)total, len - sizeof(total));
}

/* Live-update handover streams (liveupdate/handover.c). */
static void dump_handover(struct dump *d, uint32_t type, const uint8_t *body,
			  uint32_t len)
{
	struct rec_domain_begin b;
	struct rec_client cl;

	switch (type) {
	case REC_HANDOVER:
		fprintf(d->out, "  handover: ");
		print_text(d->out, body, len);
		fputc('\n', d->out);
		return;
	case REC_DOMAIN_BEGIN:
		if (len != sizeof(b))
			break;
		memcpy(&b, body, sizeof(b));
		fprintf(d->out, "  domid %u state %u ram_fd %d ram_bytes %llu\n",
			b.domid, b.state, b.ram_fd,
			(unsigned long long)b.ram_bytes);
		return;
	case REC_DOMAIN_END:
		if (len)
			break;
		return;
	case REC_CLIENT:
		if (len != sizeof(cl))
			break;
		memcpy(&cl, body, sizeof(cl));
		fprintf(d->out, "  fd %d console_domid %u console_pos %llu\n",
			cl.fd, cl.console_domid,
			(unsigned long long)cl.console_pos);
		return;
	}
	fprintf(d->out, "  (%u bytes: not decoded)\n", len);
}

/* ------------------------------------------------------------ records */

/* The body's decoding, by the part of the stream it belongs to. */
static void dump_body(struct dump *d, const struct rec_desc *rd,
		      const uint8_t *body, uint32_t len)
{
	switch (rd->phase) {
	case PH_PROLOGUE:
		if (rd->type == REC_DOMAIN_CONFIG)
			dump_config(d, body, len);
		else
			dump_layout(d, body, len);
		break;
	case PH_CPUID:
		dump_cpuid(d, body, len);
		break;
	case PH_PAGES:
		dump_pages(d, body, len);
		break;
	case PH_VCPUS:
		dump_vcpu(d, rd->type, body, len);
		break;
	case PH_VM:
		dump_vm(d, rd->type, body, len);
		break;
	case PH_DEVICES:
		dump_device(d, rd->type, body, len);
		break;
	case PH_CONSOLE:
		dump_console(d, body, len);
		break;
	case PH_HANDOVER:
		dump_handover(d, rd->type, body, len);
		break;
	default:
		fprintf(d->out, "  (not decoded)\n");
	}
}

static void dump_record(struct dump *d)
{
	const struct rec_header *rh = &d->r->rec;
	const char *name = rec_type_name(rh->type);
	const uint8_t *body = d->r->body;
	uint32_t t = rh->type, len = rh->length;
	char err[CHECK_ERR_MAX];

	if (t < NR_COUNTED)
		d->counts[t]++;
	else
		d->other_types++;
	if (name)
		fprintf(d->out, "@%-9llu %-15s type 0x%02x flags %#x%s length %u\n",
			(unsigned long long)d->r->rec_offset, name, t,
			rh->flags, rh->flags & REC_F_OPTIONAL ? " (optional)" : "",
			len);
	else	/* the reader refuses unknown mandatory records */
		fprintf(d->out, "@%-9llu unknown optional type %#x, skipped (flags %#x, length %u)\n",
			(unsigned long long)d->r->rec_offset, t, rh->flags, len);
	if (verify_padding(d->r, err, sizeof(err)) < 0)
		problem(d, err);
	if (d->checking && check_record(&d->check, d->r->rec_offset, rh,
					body) < 0) {
		problem(d, d->check.err);
		d->checking = false;
	}
	if (name)
		dump_body(d, rec_desc(t), body, len);
}

static void dump_summary(struct dump *d, bool ended)
{
	unsigned t, total = d->other_types;

	for (t = 0; t < NR_COUNTED; t++)
		total += d->counts[t];
	fprintf(d->out, "summary:\n  records %u%s\n", total,
		ended ? "" : " (stream broken before END)");
	for (t = 0; t < NR_COUNTED; t++) {
		if (!d->counts[t])
			continue;
		if (rec_type_name(t))
			fprintf(d->out, "    %-15s %u\n", rec_type_name(t),
				d->counts[t]);
		else
			fprintf(d->out, "    unknown 0x%02x    %u\n", t,
				d->counts[t]);
	}
	if (d->other_types)
		fprintf(d->out, "    unknown > 0xff  %u\n", d->other_types);
	if (d->check.have_config)
		fprintf(d->out, "  vcpus %u, memory %u MiB\n",
			d->check.nr_vcpus, d->check.memory_mib);
	fprintf(d->out, "  pages %llu in %llu batches\n",
		(unsigned long long)d->pages, (unsigned long long)d->batches);
	fprintf(d->out, "  encoded bytes: none %llu (%llu batches), lz4 %llu (%llu batches), zlib %llu (%llu batches)",
		(unsigned long long)d->enc_bytes[0],
		(unsigned long long)d->enc_batches[0],
		(unsigned long long)d->enc_bytes[1],
		(unsigned long long)d->enc_batches[1],
		(unsigned long long)d->enc_bytes[2],
		(unsigned long long)d->enc_batches[2]);
	if (d->enc_other)
		fprintf(d->out, ", unknown encoding %llu batches",
			(unsigned long long)d->enc_other);
	fprintf(d->out, "\n  stream bytes %llu\n",
		(unsigned long long)d->r->offset);
	fprintf(d->out, "  problems %u\n", d->problems);
}

int dump_stream(struct stream_source src, FILE *out,
		const struct dump_opts *o)
{
	struct dump *d = calloc(1, sizeof(*d));
	char err[CHECK_ERR_MAX];
	bool ended = false;
	uint8_t extra;
	int got, ret;

	if (!d)
		return -1;
	d->out = out;
	d->o = o;
	d->r = calloc(1, sizeof(*d->r));
	if (!d->r) {
		free(d);
		return -1;
	}
	check_init(&d->check);
	d->checking = true;
	if (stream_reader_open(d->r, src) < 0) {
		fprintf(out, "error: %s\n", d->r->err);
		ret = -1;
		goto out;
	}
	dump_header(d);
	fprintf(out, "records:\n");
	while ((got = stream_next(d->r)) > 0)
		dump_record(d);
	if (got < 0) {
		fprintf(out, "error: %s\n", d->r->err);
		d->problems++;
	} else {
		ended = true;
		d->counts[REC_END]++;
		fprintf(out, "@%-9llu %-15s type 0x%02x flags %#x length %u\n",
			(unsigned long long)d->r->rec_offset, "END", REC_END,
			d->r->rec.flags, d->r->rec.length);
		if (d->checking && check_end(&d->check, d->r->rec_offset) < 0)
			problem(d, d->check.err);
		if (src.read(src.opaque, &extra, 1) == 0) {
			snprintf(err, sizeof(err), "offset %llu: data after the END record",
				 (unsigned long long)d->r->offset);
			problem(d, err);
		}
	}
	dump_summary(d, ended);
	ret = d->problems ? -1 : 0;
out:
	check_free(&d->check);
	stream_reader_close(d->r);
	free(d->decoded);
	free(d->r);
	free(d);
	return ret;
}
