/*
 * One vCPU's architectural state as stream records: every record is a
 * rec_vcpu_head followed by the KVM structure of <asm/kvm.h> (x86-64).
 */
#include <errno.h>
#include <pthread.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "domain.h"
#include "kvm.h"
#include "log.h"
#include "rec_table.h"
#include "state.h"
#include "xsave_fit.h"

/* The plain structures (their sizes are the record table's). */
static const struct {
	uint32_t type;
	unsigned long get, set;
} simple[] = {
	{ REC_VCPU_REGS, KVM_GET_REGS, KVM_SET_REGS },
	{ REC_VCPU_SREGS, KVM_GET_SREGS, KVM_SET_SREGS },
	{ REC_VCPU_XCRS, KVM_GET_XCRS, KVM_SET_XCRS },
	{ REC_VCPU_LAPIC, KVM_GET_LAPIC, KVM_SET_LAPIC },
	{ REC_VCPU_EVENTS, KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS },
	{ REC_VCPU_MP_STATE, KVM_GET_MP_STATE, KVM_SET_MP_STATE },
	{ REC_VCPU_DEBUGREGS, KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS },
};

#define NR_SIMPLE (sizeof(simple) / sizeof(simple[0]))

static int simple_index(uint32_t type)
{
	unsigned i;

	for (i = 0; i < NR_SIMPLE; i++)
		if (simple[i].type == type)
			return i;
	return -1;
}

static int put_flags(struct stream_writer *w, struct vcpu *v, uint32_t type,
		     uint32_t flags, const void *data, uint32_t size)
{
	struct rec_vcpu_head h = { .vcpu = v->id, .size = size };

	return stream_write_record2(w, type, flags, &h, sizeof(h), data, size);
}

static int put(struct stream_writer *w, struct vcpu *v, uint32_t type,
	       const void *data, uint32_t size)
{
	return put_flags(w, v, type, 0, data, size);
}

static int save_xsave(struct vcpu *v, struct stream_writer *w)
{
	int size = ioctl(kvm_host.fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	struct kvm_xsave *x;
	int ret;

	if (size < (int)sizeof(struct kvm_xsave))
		size = sizeof(struct kvm_xsave);
	x = calloc(1, size);
	if (!x)
		return -1;
	ret = ioctl(v->fd, size > (int)sizeof(*x) ? KVM_GET_XSAVE2 :
		    KVM_GET_XSAVE, x);
	if (!ret)
		ret = put(w, v, REC_VCPU_XSAVE, x, size);
	free(x);
	return ret;
}

/*
 * Hyper-V's synthetic MSRs: KVM lists them, but our guests see no Hyper-V
 * CPUID leaves, so they hold no guest state (HV_X64_MSR_TIME_REF_COUNT,
 * a counter, reads non-zero all the same, and a KVM without Hyper-V
 * emulation, such as KVM-PVM's, refuses it).  Not saved.
 */
static bool msr_is_hyperv(uint32_t index)
{
	return index >= 0x40000000 && index < 0x40000200;
}

/*
 * MSRs that describe the CPU rather than hold guest state: they follow
 * this host when it refuses the saved value, as the CPUID of a stream
 * without a CPUID record does.  (A CPUID record is checked bit by bit
 * against this host before anything loads, docs/cpuid.md; these MSRs'
 * bits are not part of it.)
 */
static bool msr_follows_host(uint32_t index)
{
	return msr_is_hyperv(index) ||
	       index == 0x10a ||	/* IA32_ARCH_CAPABILITIES */
	       index == 0x345;		/* IA32_PERF_CAPABILITIES */
}

/*
 * KVM_GET_MSRS takes at most 255 entries at once (its MAX_IO_MSRS is 256,
 * exclusive).
 */
#define MSR_CHUNK	255

/*
 * The first `n` entries of `chunk` read with one KVM_GET_MSRS: KVM reads
 * them in order and stops at the first it cannot read.  Every one read
 * is appended to out; the one it stopped at is skipped.  Returns how many
 * of the n it consumed (read, plus the one refused), or -1.
 */
static int read_msr_chunk(struct vcpu *v, struct kvm_msrs *chunk, unsigned n,
			  struct kvm_msrs *out)
{
	int got;

	chunk->nmsrs = n;
	got = ioctl(v->fd, KVM_GET_MSRS, chunk);
	if (got < 0)
		return -1;
	memcpy(&out->entries[out->nmsrs], chunk->entries,
	       got * sizeof(struct kvm_msr_entry));
	out->nmsrs += got;
	return (unsigned)got < n ? got + 1 : got;
}

/*
 * Every MSR KVM lists as worth saving.  Read in as few KVM_GET_MSRS as
 * KVM allows (one per MSR it refuses, rather than one per MSR: a vCPU
 * ioctl costs a vCPU load, and this runs inside a live update's
 * blackout, for every vCPU).
 */
static struct kvm_msr_list *msr_list;	/* KVM's, less Hyper-V's */
static pthread_once_t msr_list_once = PTHREAD_ONCE_INIT;

static void read_msr_list(void)
{
	struct kvm_msr_list probe = { .nmsrs = 0 }, *list;
	unsigned i, n = 0;

	ioctl(kvm_host.fd, KVM_GET_MSR_INDEX_LIST, &probe);
	list = calloc(1, sizeof(*list) + probe.nmsrs * sizeof(uint32_t));
	if (!list)
		return;
	list->nmsrs = probe.nmsrs;
	if (ioctl(kvm_host.fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
		free(list);
		return;
	}
	for (i = 0; i < list->nmsrs; i++)
		if (!msr_is_hyperv(list->indices[i]))
			list->indices[n++] = list->indices[i];
	list->nmsrs = n;
	msr_list = list;
}

/*
 * The MSRs to save, the same for the process's life: asked once, as it
 * would otherwise be twice per vCPU inside a live update's blackout
 * (kept until exit: a static, not a leak).
 */
static const struct kvm_msr_list *msrs_to_save(void)
{
	pthread_once(&msr_list_once, read_msr_list);
	return msr_list;
}

static int save_msrs(struct vcpu *v, struct stream_writer *w)
{
	const struct kvm_msr_list *list = msrs_to_save();
	struct kvm_msrs *msrs = NULL, *chunk = NULL;
	unsigned pos, n;
	int ret = -1, used;

	if (!list)
		goto out;
	n = list->nmsrs;
	msrs = calloc(1, sizeof(*msrs) + n * sizeof(struct kvm_msr_entry));
	chunk = calloc(1, sizeof(*chunk) +
		       MSR_CHUNK * sizeof(struct kvm_msr_entry));
	if (!msrs || !chunk)
		goto out;
	for (pos = 0; pos < n; pos += used) {
		unsigned k, len = n - pos < MSR_CHUNK ? n - pos : MSR_CHUNK;

		for (k = 0; k < len; k++)
			chunk->entries[k] = (struct kvm_msr_entry){
				.index = list->indices[pos + k] };
		used = read_msr_chunk(v, chunk, len, msrs);
		if (used < 0) {
			log_err("d%uv%u: reading the MSRs: %s", v->dom->id,
				v->id, strerror(errno));
			goto out;
		}
	}
	ret = put(w, v, REC_VCPU_MSRS, msrs,
		  sizeof(*msrs) + msrs->nmsrs * sizeof(struct kvm_msr_entry));
out:
	if (ret < 0 && !list)
		log_err("d%uv%u: KVM lists no MSRs to save", v->dom->id,
			v->id);
	free(msrs);
	free(chunk);
	return ret;
}

static int save_simple(struct vcpu *v, struct stream_writer *w,
		       const struct rec_desc *d)
{
	uint8_t buf[4096] __attribute__((aligned(8)));
	int i = simple_index(d->type);

	_Static_assert(sizeof(struct kvm_lapic_state) <= sizeof(buf),
		       "the largest plain vCPU structure");
	if (i < 0 || d->size > sizeof(buf))
		return -1;
	if (ioctl(v->fd, simple[i].get, buf) < 0) {
		log_err("d%uv%u: reading %s: %s", v->dom->id, v->id, d->name,
			strerror(errno));
		return -1;
	}
	return put(w, v, d->type, buf, d->size);
}

/* Only hosts with XSAVE have XCRs (a nested qemu64 host has none). */
static int save_xcrs(struct vcpu *v, struct stream_writer *w)
{
	struct kvm_xcrs x;

	memset(&x, 0, sizeof(x));
	if (ioctl(kvm_host.fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0 &&
	    ioctl(v->fd, KVM_GET_XCRS, &x) < 0)
		memset(&x, 0, sizeof(x));
	return put(w, v, REC_VCPU_XCRS, &x, sizeof(x));
}

#define MSR_IA32_TSC	0x10
#define MSR_IA32_TSC_DEADLINE	0x6e0

static uint64_t realtime_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return t.tv_sec * 1000000000ULL + t.tv_nsec;
}

static int tsc_offset_attr(struct vcpu *v, unsigned long req, uint64_t *off)
{
	struct kvm_device_attr a = {
		.group = KVM_VCPU_TSC_CTRL,
		.attr = KVM_VCPU_TSC_OFFSET,
		.addr = (uint64_t)(uintptr_t)off,
	};

	return ioctl(v->fd, req, &a);
}

static int get_tsc(struct vcpu *v, uint64_t *tsc)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e;
	} one = { .h.nmsrs = 1, .e.index = MSR_IA32_TSC };

	if (ioctl(v->fd, KVM_GET_MSRS, &one) != 1)
		return -1;
	*tsc = one.e.data;
	return 0;
}

static int set_tsc(struct vcpu *v, uint64_t tsc)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e;
	} one = { .h.nmsrs = 1, .e.index = MSR_IA32_TSC, .e.data = tsc };

	return ioctl(v->fd, KVM_SET_MSRS, &one) == 1 ? 0 : -1;
}

/* The guest's TSC, when, and its offset where KVM tells (VCPU_TSC). */
static int save_tsc(struct vcpu *v, struct stream_writer *w)
{
	struct rec_vcpu_tsc t;
	int khz = ioctl(v->fd, KVM_GET_TSC_KHZ, 0);

	memset(&t, 0, sizeof(t));
	if (get_tsc(v, &t.tsc) < 0 || khz <= 0) {
		log_err("d%uv%u: reading the TSC: %s", v->dom->id, v->id,
			strerror(errno));
		return -1;
	}
	t.realtime_ns = realtime_ns();
	t.tsc_khz = khz;
	if (!tsc_offset_attr(v, KVM_GET_DEVICE_ATTR, &t.offset))
		t.flags |= REC_TSC_OFFSET_VALID;
	return put_flags(w, v, REC_VCPU_TSC, REC_F_OPTIONAL, &t, sizeof(t));
}

/* The vCPU's records in the record table's order (restore's order). */
int vcpu_state_save(struct vcpu *v, struct stream_writer *w)
{
	const struct rec_desc *d;
	unsigned i;
	int ret;

	for (i = 0; (d = rec_desc_at(i)); i++) {
		if (d->phase != PH_VCPUS)
			continue;
		if (d->type == REC_VCPU_XSAVE)
			ret = save_xsave(v, w);
		else if (d->type == REC_VCPU_XCRS)
			ret = save_xcrs(v, w);
		else if (d->type == REC_VCPU_MSRS)
			ret = save_msrs(v, w);
		else if (d->type == REC_VCPU_TSC)
			ret = save_tsc(v, w);
		else
			ret = save_simple(v, w, d);
		if (ret < 0)
			return -1;
	}
	return 0;
}

/*
 * An MSR's value at vCPU reset, for the MSRs one host's KVM lists and
 * another's lacks: 0 but for AMD's TSC ratio (1.0 in 8.32 fixed point)
 * and the SMM base (where KVM has no SMM).
 */
static uint64_t msr_reset_value(uint32_t index)
{
	switch (index) {
	case 0xc0000104:		/* MSR_AMD64_TSC_RATIO */
		return 1ULL << 32;
	case 0x9e:			/* MSR_IA32_SMBASE */
		return 0x30000;
	default:
		return 0;
	}
}

/*
 * KVM takes IA32_TSC_DEADLINE only while the LAPIC timer is in TSC-deadline
 * mode and drops it otherwise; it arms the timer by the TSC of the moment
 * (KVM's lapic.c, as QEMU's kvm_put_tscdeadline_msr() notes).  VCPU_MSRS
 * loads before VCPU_LAPIC, into a LAPIC still at reset: the value is kept
 * and set again after the LAPIC and again after VCPU_TSC moved the TSC.
 * Dropped, the guest's next timer interrupt never comes: a Linux guest
 * whose clockevent deadline passed meanwhile waits for it for ever (its
 * hrtimers, sleeps and timeouts stop) — seen after a migration, where
 * the TSC moves on past the deadline.
 */
static void keep_tsc_deadline(struct vcpu *v, const struct kvm_msrs *m)
{
	uint32_t i;

	v->restore_tsc_deadline = 0;
	for (i = 0; i < m->nmsrs; i++)
		if (m->entries[i].index == MSR_IA32_TSC_DEADLINE)
			v->restore_tsc_deadline = m->entries[i].data;
}

static int set_tsc_deadline(struct vcpu *v, char *err, size_t errlen)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e;
	} one = {
		.h.nmsrs = 1,
		.e.index = MSR_IA32_TSC_DEADLINE,
		.e.data = v->restore_tsc_deadline,
	};

	if (!v->restore_tsc_deadline)
		return 0;	/* not armed, or this host has no such MSR */
	if (ioctl(v->fd, KVM_SET_MSRS, &one) == 1)
		return 0;
	snprintf(err, errlen, "IA32_TSC_DEADLINE %#llx refused by KVM",
		 (unsigned long long)v->restore_tsc_deadline);
	return -1;
}

static int load_msrs(struct vcpu *v, const void *data, size_t size,
		     char *err, size_t errlen)
{
	struct kvm_msrs *m = (struct kvm_msrs *)data;
	int ret;

	keep_tsc_deadline(v, m);

	/*
	 * KVM sets MSRs in order and stops at the first it refuses.  A stream
	 * from a host whose KVM has more MSRs (IA32_TSX_CTRL, say) carries
	 * some this one lacks: one still at its reset value is left out (the
	 * guest of this host never has it), and so is one that describes
	 * the CPU (above); one with a value is refused.
	 * The rest, moved to the front, is set in the next round.
	 */
	while (m->nmsrs) {
		struct kvm_msr_entry *bad;

		ret = ioctl(v->fd, KVM_SET_MSRS, m);
		if (ret == (int)m->nmsrs)
			return 0;
		if (ret < 0) {
			snprintf(err, errlen, "VCPU_MSRS rejected by KVM: %s",
				 strerror(errno));
			return -1;
		}
		bad = &m->entries[ret];
		if (bad->data != msr_reset_value(bad->index) &&
		    !msr_follows_host(bad->index)) {
			snprintf(err, errlen, "VCPU_MSRS: this host's KVM "
				 "refuses MSR %#x = %#llx", bad->index,
				 (unsigned long long)bad->data);
			return -1;
		}
		log_info("d%uv%u: MSR %#x (%s) is not on this host; left out",
			 v->dom->id, v->id, bad->index,
			 msr_follows_host(bad->index) ?
			 "it describes the CPU" : "at its reset value");
		m->nmsrs -= ret + 1;
		memmove(m->entries, bad + 1, m->nmsrs * sizeof(*bad));
	}
	return 0;
}

static int load_xsave(struct vcpu *v, const void *data, size_t size,
		      char *err, size_t errlen)
{
	void *x;
	int ret, cap;

	/* KVM may read its full XSAVE size (KVM_CAP_XSAVE2), not ours. */
	cap = ioctl(kvm_host.fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	x = calloc(1, cap > (int)size ? (size_t)cap : size);
	if (!x)
		return -1;
	memcpy(x, data, size);
	if (xsave_fit_host(x, size, err, errlen) < 0) {
		free(x);
		return -1;
	}
	ret = ioctl(v->fd, KVM_SET_XSAVE, x);
	free(x);
	if (ret < 0)
		snprintf(err, errlen, "VCPU_XSAVE rejected by KVM: %s",
			 strerror(errno));
	return ret;
}

/*
 * The guest's TSC goes on through the time between save and load, as a
 * real machine's does (KVM's devices/vcpu.rst, KVM_VCPU_TSC_OFFSET): on
 * the same host the saved offset from the host's TSC is kept; on another
 * host, or where KVM has no offset attribute, the TSC is set to the saved
 * value plus the CLOCK_REALTIME that passed times its frequency (the
 * documentation's algorithm, which assumes synchronised host clocks,
 * done through IA32_TSC since KVM reports no host_tsc without a master
 * clock).  xl restore leaves the TSC as VCPU_MSRS set it.
 */
static int move_tsc(struct vcpu *v, const struct rec_vcpu_tsc *t,
		    char *err, size_t errlen)
{
	int mode = v->dom->restore_clock;
	uint64_t off = t->offset, now, tsc = t->tsc;

	if (mode == STATE_CLOCK_STOPPED)
		return 0;
	if (mode == STATE_CLOCK_SAME_HOST) {
		if ((t->flags & REC_TSC_OFFSET_VALID) &&
		    !tsc_offset_attr(v, KVM_SET_DEVICE_ATTR, &off))
			return 0;
		if (v->id == 0)
			log_info("d%u: no KVM_VCPU_TSC_OFFSET: the TSC goes on "
				 "by CLOCK_REALTIME", v->dom->id);
	}
	now = realtime_ns();
	if (now > t->realtime_ns)
		tsc += (unsigned __int128)(now - t->realtime_ns) *
		       t->tsc_khz / 1000000;
	if (set_tsc(v, tsc) < 0) {
		snprintf(err, errlen, "VCPU_TSC: KVM refuses TSC %#llx",
			 (unsigned long long)tsc);
		return -1;
	}
	return 0;
}

/* The TSC moved: the deadline is armed again by it (one that passed
 * meanwhile fires at once). */
static int load_tsc(struct vcpu *v, const struct rec_vcpu_tsc *t,
		    char *err, size_t errlen)
{
	if (move_tsc(v, t, err, errlen) < 0)
		return -1;
	return set_tsc_deadline(v, err, errlen);
}

/* The record passed the record table's checks (size, head, count). */
int vcpu_state_load(struct vcpu *v, uint32_t type, const void *body,
		    size_t len, char *err, size_t errlen)
{
	const struct rec_vcpu_head *h = body;
	const uint8_t *data = (const uint8_t *)body + sizeof(*h);
	uint8_t buf[4096] __attribute__((aligned(8)));
	int i = simple_index(type);

	if (type == REC_VCPU_MSRS || type == REC_VCPU_XSAVE) {
		/* variable size: copy for alignment */
		void *copy = malloc(h->size);
		int ret;

		if (!copy)
			return -1;
		memcpy(copy, data, h->size);
		ret = type == REC_VCPU_MSRS ?
		      load_msrs(v, copy, h->size, err, errlen) :
		      load_xsave(v, copy, h->size, err, errlen);
		free(copy);
		return ret;
	}
	if (type == REC_VCPU_TSC) {
		struct rec_vcpu_tsc t;

		memcpy(&t, data, sizeof(t));	/* EXACT size, checked */
		return load_tsc(v, &t, err, errlen);
	}
	if (i < 0 || h->size > sizeof(buf)) {
		snprintf(err, errlen, "record %#x is not vCPU state", type);
		return -1;
	}
	memcpy(buf, data, h->size);
	if (type == REC_VCPU_XCRS) {
		int fit = xcrs_fit_host((struct kvm_xcrs *)buf, err, errlen);

		if (fit <= 0)
			return fit;
	}
	if (ioctl(v->fd, simple[i].set, buf) < 0) {
		snprintf(err, errlen, "%s rejected by KVM: %s",
			 rec_type_name(type), strerror(errno));
		return -1;
	}
	/* Its timer mode is in: now KVM takes the deadline (above). */
	if (type == REC_VCPU_LAPIC)
		return set_tsc_deadline(v, err, errlen);
	return 0;
}
