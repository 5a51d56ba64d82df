/*
 * QEMU's fw_cfg on the x86 I/O ports (CONFIG_DEV_FW_CFG): the selector
 * at 0x510 (16-bit writes), the data register at 0x511 (reads), and the
 * DMA address register at 0x514-0x51b (big-endian: the high half at
 * 0x514, the low half at 0x518, whose write starts the transfer; reads
 * give "QEMU CFG").  The items come from the domain: the signature, the
 * ID (traditional and DMA interfaces), RAM_SIZE, NB_CPUS, MAX_CPUS, and
 * the files and strings of the config's fw_cfg key, read from disk here.
 * The register model is fw_cfg.c.
 *
 * The selector, the offset and the DMA address's high half are guest
 * state: the DEV_FW_CFG record, written optional (devices.h).  The items
 * are made again from the config whenever the domain is built.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "boot/tables.h"
#include "dev/devices.h"
#include "dev/fw_cfg.h"
#include "domain.h"
#include "ioport.h"
#include "memory.h"
#include "stream.h"

#define PORT_FW_CFG	0x510
#define PORT_FW_CFG_LEN	12
#define OFF_SELECTOR	0
#define OFF_DATA	1
#define OFF_DMA		4	/* 8 bytes: high half, then low half */

#define DMA_MAPS_MAX	8

struct fw_cfg_dev {
	pthread_mutex_t lock;
	struct fw_cfg cfg;
	struct domain *dom;
	/* The guest RAM one DMA operation mapped, marked dirty after it. */
	unsigned nr_maps;
	uint64_t map_gpa[DMA_MAPS_MAX];
	size_t map_len[DMA_MAPS_MAX];
};

static void *dma_map(void *opaque, uint64_t gpa, size_t len)
{
	struct fw_cfg_dev *d = opaque;
	void *hva = gpa_to_hva(&d->dom->mem, gpa, len);

	if (!hva)
		return NULL;
	if (d->nr_maps < DMA_MAPS_MAX) {
		d->map_gpa[d->nr_maps] = gpa;
		d->map_len[d->nr_maps++] = len;
	} else {
		guest_mem_mark_dirty(&d->dom->mem, gpa, len);
	}
	return hva;
}

/*
 * A DMA operation may write guest RAM, which KVM's dirty log does not see:
 * migration must send those pages again.  Marked after the writes, so a
 * pre-copy round cannot take the mark and the old contents together.
 */
static void dma_write(struct fw_cfg_dev *d, bool low, uint32_t val)
{
	unsigned i;

	d->nr_maps = 0;
	fw_cfg_dma_write(&d->cfg, low, val, dma_map, d);
	for (i = 0; i < d->nr_maps; i++)
		guest_mem_mark_dirty(&d->dom->mem, d->map_gpa[i],
				     d->map_len[i]);
}

static uint32_t data_read(struct fw_cfg *f, unsigned size)
{
	uint32_t v = 0;
	unsigned i;

	for (i = 0; i < size; i++)
		v |= (uint32_t)fw_cfg_read(f) << (8 * i);
	return v;
}

static void fw_cfg_port_write(struct fw_cfg_dev *d, unsigned off,
			      unsigned size, uint32_t val)
{
	if (off == OFF_SELECTOR && size == 2)
		fw_cfg_select(&d->cfg, val);
	else if ((off == OFF_DMA || off == OFF_DMA + 4) && size == 4)
		dma_write(d, off != OFF_DMA, __builtin_bswap32(val));
	/* Anything else, data writes included, is ignored. */
}

static int fw_cfg_io(struct vcpu *vcpu, void *opaque, uint16_t port,
		     bool is_write, unsigned size, uint32_t *val)
{
	struct fw_cfg_dev *d = opaque;
	unsigned off = port - PORT_FW_CFG;

	pthread_mutex_lock(&d->lock);
	if (is_write)
		fw_cfg_port_write(d, off, size, *val);
	else if (off == OFF_DATA)
		*val = data_read(&d->cfg, size);
	else if (off >= OFF_DMA)
		*val = fw_cfg_dma_read(off - OFF_DMA, size) &
		       ioport_all_ones(size);
	else
		*val = ioport_all_ones(size);	/* selector: write-only */
	pthread_mutex_unlock(&d->lock);
	return 0;
}

static int add_fixed(struct fw_cfg *f, const struct domain *dom)
{
	uint32_t id = FW_CFG_ID_TRADITIONAL | FW_CFG_ID_DMA;
	uint64_t ram = (uint64_t)dom->cfg.memory_mib << 20;
	uint16_t cpus = dom->cfg.vcpus;

	/* Little-endian, as on the x86 hosts this runs on. */
	if (fw_cfg_add(f, FW_CFG_SIGNATURE, "QEMU", 4) < 0 ||
	    fw_cfg_add(f, FW_CFG_ID, &id, sizeof(id)) < 0 ||
	    fw_cfg_add(f, FW_CFG_RAM_SIZE, &ram, sizeof(ram)) < 0 ||
	    fw_cfg_add(f, FW_CFG_NB_CPUS, &cpus, sizeof(cpus)) < 0 ||
	    fw_cfg_add(f, FW_CFG_MAX_CPUS, &cpus, sizeof(cpus)) < 0)
		return -ENOMEM;
	return 0;
}

/* One item of the config, read now; the message names where it was set. */
static int add_file(struct fw_cfg *f, const struct domcfg_fw_cfg *it,
		    char *err, size_t errlen)
{
	char why[300];
	size_t len;
	void *data;
	int ret;

	ret = fwcfg_item_load(it, &data, &len, why, sizeof(why));
	if (!ret && fw_cfg_add_file(f, it->name, data, len) < 0) {
		snprintf(why, sizeof(why), "duplicate or bad name");
		ret = -EINVAL;
	}
	if (!ret)
		return 0;
	snprintf(err, errlen, "%s%sfw_cfg: %s: %s", it->origin ?: "",
		 it->origin ? ": " : "", it->name, why);
	return ret == -ENOMEM ? ret : -EINVAL;
}

static int fill(struct fw_cfg *f, const struct domain *dom, char *err,
		size_t errlen)
{
	unsigned i;
	int ret = add_fixed(f, dom);

	for (i = 0; !ret && i < dom->cfg.nr_fw_cfg; i++)
		ret = add_file(f, &dom->cfg.fw_cfg[i], err, errlen);
	if (!ret && fw_cfg_finish(f) < 0)
		ret = -ENOMEM;
	return ret;
}

static int fw_cfg_dev_init(struct domain *dom, void *state, char *err,
			   size_t errlen)
{
	struct fw_cfg_dev *d = state;
	int ret;

	d->dom = dom;
	fw_cfg_init(&d->cfg);
	ret = fill(&d->cfg, dom, err, errlen);
	if (!ret && ioport_register(&dom->ports, PORT_FW_CFG, PORT_FW_CFG_LEN,
				    fw_cfg_io, d, "fw-cfg") < 0)
		ret = -1;
	if (ret) {
		fw_cfg_free(&d->cfg);
		return ret;
	}
	pthread_mutex_init(&d->lock, NULL);
	return 0;
}

static void fw_cfg_dev_destroy(struct domain *dom, void *state)
{
	struct fw_cfg_dev *d = state;

	fw_cfg_free(&d->cfg);
	pthread_mutex_destroy(&d->lock);
}

static int fw_cfg_save(struct domain *dom, void *state,
		       struct stream_writer *w)
{
	struct fw_cfg_dev *d = state;
	struct rec_dev_fw_cfg r;

	memset(&r, 0, sizeof(r));
	pthread_mutex_lock(&d->lock);
	r.selector = d->cfg.selector;
	r.offset = d->cfg.offset;
	r.dma_high = d->cfg.dma_high;
	pthread_mutex_unlock(&d->lock);
	return stream_write_record(w, REC_DEV_FW_CFG, REC_F_OPTIONAL, &r,
				   sizeof(r));
}

/* The items are this build's, from the config; the position is the
 * guest's (an offset past the end reads as the end). */
static int fw_cfg_load(struct domain *dom, void *state, const void *body,
		       size_t len, char *err, size_t errlen)
{
	struct fw_cfg_dev *d = state;
	struct rec_dev_fw_cfg r;

	memcpy(&r, body, sizeof(r));
	pthread_mutex_lock(&d->lock);
	fw_cfg_select(&d->cfg, r.selector);
	d->cfg.offset = r.offset;
	d->cfg.dma_high = r.dma_high;
	pthread_mutex_unlock(&d->lock);
	return 0;
}

/*
 * Scope (\_SB) { Device (FWCF) { Name (_HID, "QEMU0002")
 *   Name (_STA, 0x0B)
 *   Name (_CRS, ResourceTemplate () { IO (Decode16, 0x510, 0x510, 1, 12) })
 * } }: where QEMU's DSDT has it, and how Linux's qemu_fw_cfg finds it.
 */
static const uint8_t fw_cfg_aml[] = {
	0x10, 0x36, '\\', '_', 'S', 'B', '_',		/* Scope, 54 */
	0x5b, 0x82, 0x2e, 'F', 'W', 'C', 'F',		/* Device, 46 */
	0x08, '_', 'H', 'I', 'D', 0x0d,			/* Name, str */
	'Q', 'E', 'M', 'U', '0', '0', '0', '2', 0x00,
	0x08, '_', 'S', 'T', 'A', 0x0a, 0x0b,		/* Name, byte */
	0x08, '_', 'C', 'R', 'S', 0x11, 0x0d, 0x0a, 0x0a, /* Buffer, 10 */
	0x47, 0x01, 0x10, 0x05, 0x10, 0x05, 0x01, PORT_FW_CFG_LEN, /* IO */
	0x79, 0x00,					/* End tag */
};

static struct acpi_dsdt_aml fw_cfg_dsdt = {
	.aml = fw_cfg_aml,
	.len = sizeof(fw_cfg_aml),
};
ACPI_DSDT_AML(fw_cfg_dsdt);

static struct device_type fw_cfg_device = {
	.name = "fw-cfg",
	.order = 90,
	.state_size = sizeof(struct fw_cfg_dev),
	.rec_type = REC_DEV_FW_CFG,
	.init = fw_cfg_dev_init,
	.destroy = fw_cfg_dev_destroy,
	.save = fw_cfg_save,
	.load = fw_cfg_load,
};
DEVICE_REGISTER(fw_cfg_device);
