/*
 * QEMU's firmware configuration interface, fw_cfg (QEMU's
 * docs/specs/fw_cfg.rst): items selected by a 16-bit key and read a byte
 * at a time through the data register, or copied into guest memory by
 * the DMA interface; items from key FW_CFG_FILE_FIRST on are named files
 * listed in the file directory.  This is the register model, which knows
 * nothing of ports or domains; fw_cfg_io.c puts it on the x86 ports and
 * fills it from the domain's config.
 */
#ifndef XEN_DEV_FW_CFG_H
#define XEN_DEV_FW_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Keys of the items this model is given (QEMU's numbers). */
#define FW_CFG_SIGNATURE	0x00	/* "QEMU" */
#define FW_CFG_ID		0x01	/* le32 feature bits */
#define FW_CFG_RAM_SIZE		0x03	/* le64 bytes */
#define FW_CFG_NB_CPUS		0x05	/* le16 */
#define FW_CFG_MAX_CPUS		0x0f	/* le16 */
#define FW_CFG_FILE_DIR		0x19
#define FW_CFG_FILE_FIRST	0x20

/* Selector bits that are not part of the key. */
#define FW_CFG_WRITE_CHANNEL	0x4000	/* ignored (QEMU >= 2.4) */
#define FW_CFG_ARCH_LOCAL	0x8000	/* no architecture items here */

#define FW_CFG_ID_TRADITIONAL	0x01
#define FW_CFG_ID_DMA		0x02

/* The DMA access structure's control word (big-endian in memory). */
#define FW_CFG_DMA_CTL_ERROR	0x01
#define FW_CFG_DMA_CTL_READ	0x02
#define FW_CFG_DMA_CTL_SKIP	0x04
#define FW_CFG_DMA_CTL_SELECT	0x08
#define FW_CFG_DMA_CTL_WRITE	0x10
#define FW_CFG_DMA_ACCESS_LEN	16	/* be32 control, be32 length,
					 * be64 address */

/* What reading the DMA address register returns: "QEMU CFG". */
#define FW_CFG_DMA_SIGNATURE	0x51454d5520434647ULL

/* A file name, NUL excluded (the directory entry holds 56 bytes). */
#define FW_CFG_NAME_MAX		55
#define FW_CFG_DIR_ENTRY_LEN	64

struct fw_cfg_item {
	uint16_t key;
	uint32_t len;
	uint8_t *data;				/* owned */
	char name[FW_CFG_NAME_MAX + 1];		/* files only */
};

struct fw_cfg {
	struct fw_cfg_item *items;
	unsigned nr;
	int cur;		/* index of the selected item, or -1 */
	/* Guest-visible state (the DEV_FW_CFG record). */
	uint16_t selector;	/* as the guest last wrote it */
	uint32_t offset;	/* next byte of the selected item */
	uint32_t dma_high;	/* DMA address register, high half */
};

/*
 * Guest memory for DMA: a host pointer to the `len` bytes at
 * guest-physical `gpa`, or NULL when they are not all RAM.
 */
typedef void *(*fw_cfg_map_fn)(void *opaque, uint64_t gpa, size_t len);

void fw_cfg_init(struct fw_cfg *f);
void fw_cfg_free(struct fw_cfg *f);
/* An item with a fixed key; the data is copied.  0 or -1. */
int fw_cfg_add(struct fw_cfg *f, uint16_t key, const void *data,
	       uint32_t len);
/* A file; the model takes `data` (malloc'd) even when it fails.  0, or -1
 * for a bad or duplicate name or no memory. */
int fw_cfg_add_file(struct fw_cfg *f, const char *name, void *data,
		    uint32_t len);
/*
 * After the last item: the files get their keys in the order of their
 * names (as QEMU sorts them) and the directory is built.  0 or -1.
 */
int fw_cfg_finish(struct fw_cfg *f);

/* The selector register: select an item, offset 0. */
void fw_cfg_select(struct fw_cfg *f, uint16_t selector);
/* The data register: the next byte of the item, 0 past its end. */
uint8_t fw_cfg_read(struct fw_cfg *f);
/* The selected item, or NULL (unknown key). */
const struct fw_cfg_item *fw_cfg_current(const struct fw_cfg *f);
/*
 * A write of one half of the DMA address register (its value, already in
 * host order): the high half is kept, the low half starts the transfer
 * whose access structure is at the address, and the register is 0 again.
 */
void fw_cfg_dma_write(struct fw_cfg *f, bool low, uint32_t half,
		      fw_cfg_map_fn map, void *opaque);
/* `size` bytes at `off` (0..7) of the DMA address register, as read. */
uint32_t fw_cfg_dma_read(unsigned off, unsigned size);

#endif
