/*
 * PCI bus 0: configuration mechanism #1, the address latch at 0xCF8 and
 * the data window at 0xCFC, in front of the functions plugged into the
 * bus (pci.h).  A host bridge sits at 00:00.0.  The latch is the
 * DEV_BOARD record (named when this lived in the board file); each
 * function's configuration space is saved with its device.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "boot/tables.h"
#include "dev/devices.h"
#include "dev/pci.h"
#include "domain.h"
#include "ioport.h"
#include "stream.h"

#define PORT_PCI_ADDR	0xcf8	/* 0xcf9 is the reset control */
#define PORT_PCI_REST	0xcfa	/* to 0xcff, the data window in it */
#define PORT_PCI_DATA	0xcfc

#define ADDR_ENABLE	0x80000000u

struct pci_bus {
	pthread_mutex_t lock;
	uint32_t addr;
	struct pci_function host_bridge;
	struct pci_function *slot[PCI_SLOTS];
};

static struct device_type pci_cfg_device;

static struct pci_bus *bus_of(struct domain *dom)
{
	return device_state(dom, &pci_cfg_device);
}

void pci_function_init(struct pci_function *f, const char *name,
		       uint16_t vendor, uint16_t device, uint8_t revision,
		       uint32_t class_code, uint16_t subsys_vendor,
		       uint16_t subsys_id)
{
	unsigned i;

	memset(f->cfg, 0, sizeof(f->cfg));
	memset(f->wmask, 0, sizeof(f->wmask));
	f->name = name;
	f->slot = -1;
	f->last_cap = 0;
	for (i = 0; i < 6; i++)
		f->bar[i] = (struct pci_bar) { .mmio = -1 };
	pci_set16(f, PCI_VENDOR_ID, vendor);
	pci_set16(f, PCI_DEVICE_ID, device);
	f->cfg[PCI_REVISION_ID] = revision;
	f->cfg[PCI_CLASS_PROG] = class_code & 0xff;
	f->cfg[PCI_CLASS_PROG + 1] = (class_code >> 8) & 0xff;
	f->cfg[PCI_CLASS_PROG + 2] = (class_code >> 16) & 0xff;
	pci_set16(f, PCI_SUBSYSTEM_VENDOR_ID, subsys_vendor);
	pci_set16(f, PCI_SUBSYSTEM_ID, subsys_id);
	/* I/O, memory, bus master, parity, SERR, INTx disable. */
	f->wmask[PCI_COMMAND] = 0x47;
	f->wmask[PCI_COMMAND + 1] = 0x05;
	f->wmask[PCI_INTERRUPT_LINE] = 0xff;
}

int pci_add_bar(struct pci_function *f, unsigned i, uint64_t size,
		bool mem64, mmio_fn fn, void *opaque)
{
	uint32_t mask;

	if (i > (mem64 ? 4u : 5u) || size < 4096 || size & (size - 1) ||
	    size > PCI_SLOT_MMIO || f->bar[i].size)
		return -1;
	f->bar[i] = (struct pci_bar) {
		.size = size, .mem64 = mem64, .mmio = -1,
		.fn = fn, .opaque = opaque,
	};
	mask = ~(uint32_t)(size - 1) & ~0xfu;
	pci_set32(f, PCI_BAR0 + 4 * i, mem64 ? 0x4 : 0x0);
	memcpy(f->wmask + PCI_BAR0 + 4 * i, &mask, 4);
	if (mem64)
		memset(f->wmask + PCI_BAR0 + 4 * (i + 1), 0xff, 4);
	return 0;
}

unsigned pci_add_cap(struct pci_function *f, uint8_t id, unsigned len)
{
	unsigned off = f->cap_free ? f->cap_free : 0x40;

	if (len < 2 || off + len > 256)
		return 0;
	f->cfg[off] = id;
	f->cfg[off + 1] = 0;
	if (f->last_cap)
		f->cfg[f->last_cap + 1] = off;
	else
		f->cfg[PCI_CAPABILITY_LIST] = off;
	pci_set16(f, PCI_STATUS, pci_get16(f, PCI_STATUS) |
		  PCI_STATUS_CAP_LIST);
	f->last_cap = off;
	f->cap_free = (off + len + 3) & ~3u;
	return off;
}

static uint64_t bar_addr(const struct pci_function *f, unsigned i)
{
	uint64_t a = pci_get32(f, PCI_BAR0 + 4 * i) & ~0xfu;

	if (f->bar[i].mem64)
		a |= (uint64_t)pci_get32(f, PCI_BAR0 + 4 * (i + 1)) << 32;
	return a;
}

/*
 * Whether a BAR at addr decodes: memory decoding on, and an address that
 * is neither 0 nor the sizing pattern, below the IOAPIC/LAPIC page range
 * when under 4 GiB.
 */
static bool bar_decodes(const struct pci_function *f, unsigned i,
			uint64_t addr)
{
	uint64_t end = addr + f->bar[i].size;

	if (!(pci_get16(f, PCI_COMMAND) & PCI_COMMAND_MEMORY) || !addr)
		return false;
	if (end < addr || end > (1ULL << 48))
		return false;
	return !(addr < (1ULL << 32) && end > 0xFEC00000ULL);
}

/* Map each BAR where its registers say, telling the function of moves. */
static void bars_update(struct pci_function *f)
{
	struct pci_bar *b;
	uint64_t addr;
	bool on;
	unsigned i;

	for (i = 0; i < 6; i++) {
		b = &f->bar[i];
		if (!b->size || b->mmio < 0)
			continue;
		addr = bar_addr(f, i);
		on = bar_decodes(f, i, addr);
		if (on == b->mapped && (!on || addr == b->addr))
			continue;
		b->mapped = on;
		b->addr = on ? addr : 0;
		mmio_place(&f->dom->mmio, b->mmio, addr, on);
		if (f->bar_changed)
			f->bar_changed(f, i);
	}
}

int pci_plug(struct domain *dom, struct pci_function *f, int slot)
{
	struct pci_bus *bus = bus_of(dom);
	uint64_t base, next;
	unsigned i;

	if (!bus || slot < 1 || slot >= PCI_SLOTS || bus->slot[slot])
		return -1;
	base = PCI_MMIO_WINDOW + (uint64_t)slot * PCI_SLOT_MMIO;
	next = base;
	f->dom = dom;
	for (i = 0; i < 6; i++) {
		struct pci_bar *b = &f->bar[i];

		if (!b->size)
			continue;
		b->mmio = mmio_register(&dom->mmio, b->size, b->fn, b->opaque,
					f->name);
		if (b->mmio < 0)
			return -1;
		next = (next + b->size - 1) & ~(b->size - 1);
		pci_set32(f, PCI_BAR0 + 4 * i, (uint32_t)next |
			  (b->mem64 ? 0x4 : 0));
		if (b->mem64)
			pci_set32(f, PCI_BAR0 + 4 * (i + 1), next >> 32);
		next += b->size;
	}
	if (next > base + PCI_SLOT_MMIO)
		return -1;
	pci_set16(f, PCI_COMMAND, PCI_COMMAND_MEMORY);
	pthread_mutex_lock(&bus->lock);
	f->slot = slot;
	bus->slot[slot] = f;
	bars_update(f);
	pthread_mutex_unlock(&bus->lock);
	return 0;
}

void pci_unplug(struct pci_function *f)
{
	struct pci_bus *bus;
	unsigned i;

	if (f->slot < 0 || !f->dom)
		return;
	bus = bus_of(f->dom);
	if (bus) {
		pthread_mutex_lock(&bus->lock);
		bus->slot[f->slot] = NULL;
		pthread_mutex_unlock(&bus->lock);
	}
	for (i = 0; i < 6; i++)
		if (f->bar[i].mapped)
			mmio_place(&f->dom->mmio, f->bar[i].mmio, 0, false);
	f->slot = -1;
}

void pci_load_config(struct pci_function *f, const uint8_t cfg[256])
{
	struct pci_bus *bus = bus_of(f->dom);
	unsigned i;

	pthread_mutex_lock(&bus->lock);
	/* Only what the guest could have written; the rest is ours. */
	for (i = 0; i < 256; i++)
		f->cfg[i] = (f->cfg[i] & ~f->wmask[i]) |
			    (cfg[i] & f->wmask[i]);
	bars_update(f);
	pthread_mutex_unlock(&bus->lock);
}

/* A guest access of the selected function's configuration space. */
static void config_access(struct pci_function *f, unsigned off,
			  bool is_write, unsigned size, uint32_t *val)
{
	unsigned i;
	uint8_t b;

	if (!is_write) {
		if (f->config_read)
			f->config_read(f, off, size);
		*val = 0;
		memcpy(val, f->cfg + off, size);
		return;
	}
	for (i = 0; i < size; i++) {
		b = *val >> (8 * i);
		f->cfg[off + i] = (f->cfg[off + i] & ~f->wmask[off + i]) |
				  (b & f->wmask[off + i]);
	}
	if (off < PCI_BAR0 + 24 && off + size > PCI_COMMAND)
		bars_update(f);
	if (f->config_written)
		f->config_written(f, off, size);
}

static int pci_io(struct vcpu *vcpu, void *opaque, uint16_t port,
		  bool is_write, unsigned size, uint32_t *val)
{
	struct pci_bus *bus = opaque;
	struct pci_function *f = NULL;
	unsigned dev, off;

	pthread_mutex_lock(&bus->lock);
	if (port == PORT_PCI_ADDR && size == 4) {
		if (is_write)
			bus->addr = *val;
		else
			*val = bus->addr;
		goto out;
	}
	/* Bus 0, function 0 of a slot, within the data window. */
	dev = (bus->addr >> 11) & 0x1f;
	off = (bus->addr & 0xfc) + (port - PORT_PCI_DATA);
	if ((bus->addr & ADDR_ENABLE) && !(bus->addr & 0x00ff0700) &&
	    port >= PORT_PCI_DATA && off + size <= 256)
		f = dev ? bus->slot[dev] : &bus->host_bridge;
	if (f)
		config_access(f, off, is_write, size, val);
	else if (!is_write)
		*val = ioport_all_ones(size);	/* no device answers */
out:
	pthread_mutex_unlock(&bus->lock);
	return 0;
}

static int pci_init(struct domain *dom, void *state, char *err,
		    size_t errlen)
{
	struct pci_bus *bus = state;

	pthread_mutex_init(&bus->lock, NULL);
	/* Red Hat's generic host bridge id, as QEMU's PCIe host uses. */
	pci_function_init(&bus->host_bridge, "host-bridge", 0x1b36, 0x0008,
			  0, 0x060000, 0x1af4, 0x1100);
	bus->host_bridge.dom = dom;
	bus->host_bridge.slot = 0;
	if (ioport_register(&dom->ports, PORT_PCI_ADDR, 1, pci_io, state,
			    "pci") < 0)
		return -1;
	return ioport_register(&dom->ports, PORT_PCI_REST, 6, pci_io, state,
			       "pci");
}

static void pci_destroy(struct domain *dom, void *state)
{
	struct pci_bus *bus = state;

	pthread_mutex_destroy(&bus->lock);
}

static int pci_save(struct domain *dom, void *state, struct stream_writer *w)
{
	struct pci_bus *p = state;
	struct rec_dev_board r = { .pci_addr = p->addr };

	return stream_write_record(w, REC_DEV_BOARD, 0, &r, sizeof(r));
}

static int pci_load(struct domain *dom, void *state, const void *body,
		    size_t len, char *err, size_t errlen)
{
	struct pci_bus *p = state;
	struct rec_dev_board r;

	memcpy(&r, body, sizeof(r));
	p->addr = r.pci_addr;
	return 0;
}

/*
 * The root bridge in the DSDT, without which an ACPI guest scans no bus:
 *
 * Scope (\_SB) { Device (PCI0) {
 *   Name (_HID, EisaId ("PNP0A03")) Name (_UID, 0) Name (_BBN, 0)
 *   Name (_CRS, ResourceTemplate () {
 *     WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,
 *                    0, 0, 0, 0, 1)
 *     IO (Decode16, 0x0CF8, 0x0CF8, 1, 8)
 *     WordIO (..., EntireRange, 0, 0x0000, 0x0CF7, 0, 0x0CF8)
 *     WordIO (..., EntireRange, 0, 0x0D00, 0xFFFF, 0, 0xF300)
 *     DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed,
 *                  NonCacheable, ReadWrite, 0, PCI_MMIO_WINDOW,
 *                  PCI_MMIO_WINDOW_END - 1, 0, 0x3C000000) }) } }
 *
 * (checked with iasl -d).  No _PRT: the functions use MSI-X only.
 */
static const uint8_t pci0_aml[] = {
	0x10, 0x43, 0x08, 0x5c, 0x5f, 0x53, 0x42, 0x5f, 0x5b, 0x82, 0x4a, 0x07,
	0x50, 0x43, 0x49, 0x30, 0x08, 0x5f, 0x48, 0x49, 0x44, 0x0c, 0x41, 0xd0,
	0x0a, 0x03, 0x08, 0x5f, 0x55, 0x49, 0x44, 0x00, 0x08, 0x5f, 0x42, 0x42,
	0x4e, 0x00, 0x08, 0x5f, 0x43, 0x52, 0x53, 0x11, 0x48, 0x05, 0x0a, 0x54,
	0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x01, 0x00, 0x47, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08,
	0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x00, 0xf7, 0x0c,
	0x00, 0x00, 0xf8, 0x0c, 0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00,
	0x00, 0x0d, 0xff, 0xff, 0x00, 0x00, 0x00, 0xf3, 0x87, 0x17, 0x00, 0x00,
	0x0c, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0xff, 0xff,
	0xff, 0xfb, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3c, 0x79, 0x00,
};
_Static_assert(PCI_MMIO_WINDOW == 0xC0000000ULL &&
	       PCI_MMIO_WINDOW_END == 0xFC000000ULL,
	       "pci0_aml's memory window");

static struct acpi_dsdt_aml pci0_dsdt = {
	.aml = pci0_aml,
	.len = sizeof(pci0_aml),
};
ACPI_DSDT_AML(pci0_dsdt);

/* First of all devices: DEV_BOARD is the first device record, and the
 * bus must exist before the functions that plug into it. */
static struct device_type pci_cfg_device = {
	.name = "pci-cfg",
	.order = 10,
	.state_size = sizeof(struct pci_bus),
	.rec_type = REC_DEV_BOARD,
	.init = pci_init,
	.destroy = pci_destroy,
	.save = pci_save,
	.load = pci_load,
};
DEVICE_REGISTER(pci_cfg_device);
