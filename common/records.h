/*
 * Every record of the state stream (docs/state-format.md): its type number
 * and the one definition of its body.  The daemon's writers and loaders,
 * `xen-stream`, the fuzzer and (through `xen-stream records`) the Python
 * test helpers all use these; nothing else spells a record's layout.
 *
 * The framing around the records (header, record head, padding, crc) is
 * stream.h's; what each record may hold and where it may stand is the
 * record table's (rec_table.h).
 */
#ifndef COMMON_RECORDS_H
#define COMMON_RECORDS_H

#include <stddef.h>
#include <stdint.h>

enum rec_type {
	REC_END			= 0x00,
	REC_DOMAIN_CONFIG	= 0x01,
	REC_MEMORY_LAYOUT	= 0x02,
	REC_PAGE_BATCH		= 0x03,
	REC_CPUID		= 0x04,	/* written OPTIONAL */
	REC_VCPU_REGS		= 0x10,
	REC_VCPU_SREGS		= 0x11,
	REC_VCPU_XSAVE		= 0x12,
	REC_VCPU_XCRS		= 0x13,
	REC_VCPU_MSRS		= 0x14,
	REC_VCPU_LAPIC		= 0x15,
	REC_VCPU_EVENTS		= 0x16,
	REC_VCPU_MP_STATE	= 0x17,
	REC_VCPU_DEBUGREGS	= 0x18,
	REC_VCPU_TSC		= 0x19,	/* written OPTIONAL */
	REC_VM_IRQCHIP		= 0x20,
	REC_VM_PIT		= 0x21,
	REC_VM_CLOCK		= 0x22,
	REC_DEV_UART		= 0x30,
	REC_DEV_RTC		= 0x31,
	REC_DEV_BOARD		= 0x32,
	REC_DEV_FW_CFG		= 0x33,	/* written OPTIONAL */
	REC_DEV_VIRTIO		= 0x34,	/* written OPTIONAL, one per device */
	REC_DEV_ACPI_PM		= 0x35,	/* written OPTIONAL */
	REC_CONSOLE_HISTORY	= 0x40,
	REC_DOMAIN_STATUS	= 0x41,
	/* Only in live-update handover streams (docs/live-update.md). */
	REC_HANDOVER		= 0x50,
	REC_DOMAIN_BEGIN	= 0x51,
	REC_DOMAIN_END		= 0x52,
	REC_CLIENT		= 0x53,
};

/* Record flags. */
#define REC_F_OPTIONAL		0x1u	/* a reader may skip it if unknown */

/*
 * DOMAIN_CONFIG: the domain's config as JSON (common/domcfg.h) plus its
 * "name"; HANDOVER: the handover's JSON.  Neither has a binary body.
 */

/*
 * MEMORY_LAYOUT.  RAM up to the 32-bit hole is at its own address, the
 * rest starts at 4 GiB.
 */
#define REC_RAM_HOLE_START	0xC0000000ULL
#define REC_RAM_HIGH_START	0x100000000ULL

struct rec_memory_layout {
	uint64_t ram_bytes;
	uint64_t low_bytes;		/* RAM below the 32-bit hole */
	uint64_t hole_start;		/* RAM above low_bytes starts at 4 GiB */
	uint32_t page_size;
	uint32_t reserved;
};

/*
 * CPUID (optional; a stream without it leaves the domain the CPUID this
 * host gives a new domain, xen/cpuid.c): the domain's CPUID, the same for
 * every vCPU but for the APIC ids, which are zero here and each vCPU's own
 * when set (rec_cpuid_put_apic_id()).  nent rec_cpuid_entry follow, laid
 * out as KVM's struct kvm_cpuid_entry2.
 */
#define REC_CPUID_ENTRIES_MAX	256
#define REC_CPUID_F_INDEX	0x1u	/* KVM_CPUID_FLAG_SIGNIFCANT_INDEX */

struct rec_cpuid {
	uint32_t nent;
	uint32_t reserved;
};

struct rec_cpuid_entry {
	uint32_t function;		/* EAX in */
	uint32_t index;			/* ECX in, if REC_CPUID_F_INDEX */
	uint32_t flags;
	uint32_t eax, ebx, ecx, edx;
	uint32_t reserved[3];
};

/*
 * The per-vCPU fields of a CPUID leaf, set to APIC id `id`: leaf 1
 * EBX[31:24], the x2APIC id in EDX of leaves 0xB and 0x1F, and AMD's
 * extended APIC id (leaf 0x8000001E EAX) with the core id in EBX[7:0].
 */
static inline void rec_cpuid_put_apic_id(uint32_t function, uint32_t *eax,
					 uint32_t *ebx, uint32_t *edx,
					 uint32_t id)
{
	if (function == 1) {
		*ebx = (*ebx & 0x00ffffffu) | (id << 24);
	} else if (function == 0xb || function == 0x1f) {
		*edx = id;
	} else if (function == 0x8000001e) {
		*eax = id;
		*ebx = (*ebx & ~0xffu) | (id & 0xffu);
	}
}

/* PAGE_BATCH body head; then u64 pfn[nr_pages], then the data. */
struct rec_page_batch {
	uint32_t nr_pages;
	uint32_t encoding;		/* enum page_encoding */
	uint32_t data_len;
	uint32_t reserved;
};

/*
 * Body head of every VCPU_* record; the KVM structure of <asm/kvm.h>
 * (x86-64) follows: kvm_regs, kvm_sregs, kvm_xsave (KVM_CAP_XSAVE2 may
 * make it longer), kvm_xcrs, kvm_msrs with its entries, kvm_lapic_state,
 * kvm_vcpu_events, kvm_mp_state, kvm_debugregs.
 */
struct rec_vcpu_head {
	uint32_t vcpu;
	uint32_t size;			/* bytes that follow */
};

/*
 * VCPU_TSC (after the vCPU head): the guest's TSC and when it was read,
 * so that a reader can let it go on by the time that passed between
 * save and load (docs/state-format.md).  offset is KVM's
 * KVM_VCPU_TSC_OFFSET (valid with REC_TSC_OFFSET_VALID).
 */
#define REC_TSC_OFFSET_VALID	0x1u

struct rec_vcpu_tsc {
	uint64_t tsc;			/* the guest's IA32_TSC */
	uint64_t realtime_ns;		/* CLOCK_REALTIME right after */
	uint64_t offset;		/* guest TSC minus host TSC */
	uint32_t tsc_khz;		/* the guest's TSC frequency */
	uint32_t flags;
};

/*
 * VM_IRQCHIP, VM_PIT, VM_CLOCK: kvm_irqchip, kvm_pit_state2,
 * kvm_clock_data, with no head.  VM_CLOCK's realtime is valid with
 * KVM_CLOCK_REALTIME in its flags: the kernel's reading or, where the
 * kernel gave none, the daemon's right after KVM_GET_CLOCK.
 */

/* DEV_UART: the 16550A's registers, then in_len queued input bytes. */
#define REC_DEV_UART_INPUT_MAX	4096

struct rec_dev_uart {
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr, thr_ipending;
	uint32_t in_len;
	uint32_t reserved;
};

/* DEV_RTC: index, guest-minus-host offset in seconds, the 128 bytes. */
struct rec_dev_rtc {
	uint8_t index;
	uint8_t reserved[7];
	int64_t offset_s;
	uint8_t cmos[128];
};

/* DEV_BOARD: the PCI configuration address latch (port 0xcf8). */
struct rec_dev_board {
	uint32_t pci_addr;
	uint32_t reserved;
};

/*
 * DEV_FW_CFG (optional; a stream without it leaves fw_cfg as reset): the
 * selector as the guest last wrote it, the offset of the next data byte
 * in the selected item, and the high half of the DMA address register.
 * The items themselves are made again from the domain's config.
 */
struct rec_dev_fw_cfg {
	uint16_t selector;
	uint16_t reserved0;
	uint32_t offset;
	uint32_t dma_high;
	uint32_t reserved;
};

/*
 * DEV_ACPI_PM (optional; a stream without it leaves the PM block as
 * reset): the PM1 status, enable and control registers as the guest
 * reads them, and the PM timer's count (3.579545 MHz ticks; its low 32
 * bits are the PM_TMR register) when saved.  The reader makes the timer
 * go on from that count, as the TSC and kvmclock do.
 */
#define REC_ACPI_PM1_STS_BITS	0x8731u	/* WAK, RTC, SLPBTN, PWRBTN, GBL,
					 * BM, TMR */
#define REC_ACPI_PM1_EN_BITS	0x0721u	/* RTC, SLPBTN, PWRBTN, GBL, TMR */
#define REC_ACPI_PM1_CNT_BITS	0x1c07u	/* SLP_TYP, GBL_RLS, BM_RLS,
					 * SCI_EN */

struct rec_dev_acpi_pm {
	uint16_t pm1_sts;
	uint16_t pm1_en;
	uint16_t pm1_cnt;
	uint16_t reserved;
	uint64_t pm_tmr_ticks;
};

/*
 * DEV_VIRTIO (optional, one per virtio-pci function): the transport's
 * state and the PCI function's configuration space, then nr_queues
 * rec_virtq, then msix_entries MSI-X table entries (16 bytes each, as
 * the guest wrote them), then the pending bits (one u64 per 64 entries).
 * backend_fd is the disk image or tap fd the new image inherits in a
 * live-update handover, and -1 in any other stream (a restore opens the
 * backend again from the domain's config).  backend_size is a disk's
 * size in bytes when it was saved (a restore refuses an image whose size
 * changed), else 0.
 */
#define REC_VIRTIO_QUEUES_MAX	16
#define REC_VIRTIO_MSIX_MAX	(REC_VIRTIO_QUEUES_MAX + 1)

struct rec_dev_virtio {
	uint8_t slot;			/* PCI device number on bus 0 */
	uint8_t device_id;		/* virtio device type: 1 net, 2 blk,
					 * 4 rng */
	uint8_t index;			/* which disk or vif of the config */
	uint8_t status;			/* device_status */
	uint8_t config_generation;
	uint8_t isr;
	uint8_t broken;			/* 1: needs a reset by the guest */
	uint8_t reserved0;
	uint16_t nr_queues;
	uint16_t msix_entries;
	uint16_t queue_select;
	uint16_t config_msix_vector;
	uint32_t device_feature_select;
	uint32_t driver_feature_select;
	uint64_t driver_features;
	int32_t backend_fd;
	uint32_t reserved1;
	uint64_t backend_size;
	uint8_t pci_config[256];
};

struct rec_virtq {
	uint16_t size;
	uint16_t enabled;
	uint16_t msix_vector;
	uint16_t last_avail;		/* next avail entry the device takes */
	uint16_t used_idx;		/* next used entry the device fills */
	uint16_t reserved[3];
	uint64_t desc;
	uint64_t driver;		/* the avail ring */
	uint64_t device;		/* the used ring */
};

struct rec_msix_entry {
	uint32_t addr_lo;
	uint32_t addr_hi;
	uint32_t data;
	uint32_t ctrl;			/* bit 0: masked */
};

/* CONSOLE_HISTORY: bytes ever written, then the last of them. */
struct rec_console_head {
	uint64_t total;
};

/* DOMAIN_BEGIN: a domain whose records follow, RAM in ram_fd. */
struct rec_domain_begin {
	uint32_t domid;
	uint32_t state;			/* 0 running, 1 paused, 2 shut down,
					 * 3 crashed */
	int32_t ram_fd;			/* inherited memfd holding its RAM */
	int32_t exit_code;		/* -1: none */
	uint32_t shutdown_reason;	/* 0 none, 1 poweroff, 2 reboot,
					 * 3 crash */
	uint32_t reserved;
	uint64_t ram_bytes;
};

/* CLIENT: an open control connection the new image keeps; the input it
 * sent that was not yet served follows. */
struct rec_client {
	int32_t fd;
	uint32_t console_domid;		/* 0: a request/response client */
	uint64_t console_pos;
};

/*
 * The layouts are the format: a change of size or offset is a new format
 * version (as Xen's xg_sr_stream_format.h pins its records).
 */
#define REC_ASSERT_FIELD(s, f, off) \
	_Static_assert(offsetof(struct s, f) == (off), #s "." #f)
#define REC_ASSERT_SIZE(s, n) \
	_Static_assert(sizeof(struct s) == (n), "sizeof " #s)

REC_ASSERT_SIZE(rec_memory_layout, 32);
REC_ASSERT_FIELD(rec_memory_layout, hole_start, 16);
REC_ASSERT_FIELD(rec_memory_layout, page_size, 24);
REC_ASSERT_SIZE(rec_cpuid, 8);
REC_ASSERT_SIZE(rec_cpuid_entry, 40);
REC_ASSERT_FIELD(rec_cpuid_entry, eax, 12);
REC_ASSERT_FIELD(rec_cpuid_entry, edx, 24);
REC_ASSERT_SIZE(rec_page_batch, 16);
REC_ASSERT_FIELD(rec_page_batch, data_len, 8);
REC_ASSERT_SIZE(rec_vcpu_head, 8);
REC_ASSERT_SIZE(rec_vcpu_tsc, 32);
REC_ASSERT_FIELD(rec_vcpu_tsc, tsc_khz, 24);
REC_ASSERT_SIZE(rec_dev_uart, 16);
REC_ASSERT_FIELD(rec_dev_uart, thr_ipending, 7);
REC_ASSERT_FIELD(rec_dev_uart, in_len, 8);
REC_ASSERT_SIZE(rec_dev_rtc, 144);
REC_ASSERT_FIELD(rec_dev_rtc, offset_s, 8);
REC_ASSERT_FIELD(rec_dev_rtc, cmos, 16);
REC_ASSERT_SIZE(rec_dev_board, 8);
REC_ASSERT_SIZE(rec_dev_fw_cfg, 16);
REC_ASSERT_FIELD(rec_dev_fw_cfg, offset, 4);
REC_ASSERT_FIELD(rec_dev_fw_cfg, dma_high, 8);
REC_ASSERT_SIZE(rec_dev_acpi_pm, 16);
REC_ASSERT_FIELD(rec_dev_acpi_pm, pm_tmr_ticks, 8);
REC_ASSERT_SIZE(rec_dev_virtio, 304);
REC_ASSERT_FIELD(rec_dev_virtio, driver_features, 24);
REC_ASSERT_FIELD(rec_dev_virtio, backend_fd, 32);
REC_ASSERT_FIELD(rec_dev_virtio, pci_config, 48);
REC_ASSERT_SIZE(rec_virtq, 40);
REC_ASSERT_FIELD(rec_virtq, desc, 16);
REC_ASSERT_SIZE(rec_msix_entry, 16);
REC_ASSERT_SIZE(rec_console_head, 8);
REC_ASSERT_SIZE(rec_domain_begin, 32);
REC_ASSERT_FIELD(rec_domain_begin, ram_fd, 8);
REC_ASSERT_FIELD(rec_domain_begin, ram_bytes, 24);
REC_ASSERT_SIZE(rec_client, 16);
REC_ASSERT_FIELD(rec_client, console_pos, 8);

#endif
