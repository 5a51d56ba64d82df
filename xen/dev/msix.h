/*
 * MSI-X for a PCI function: the capability, the vector table and pending
 * bits in a BAR, and delivery through KVM: each vector has a GSI routed
 * to the (address, data) the guest wrote and an eventfd bound to it with
 * KVM_IRQFD, so a device thread raises an interrupt with one write().
 */
#ifndef XEN_DEV_MSIX_H
#define XEN_DEV_MSIX_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "records.h"

struct domain;
struct pci_function;

#define MSIX_MAX	REC_VIRTIO_MSIX_MAX
#define MSIX_NO_VECTOR	0xffff

struct msix {
	struct pci_function *f;
	unsigned cap;			/* the capability's offset */
	unsigned nr;			/* table entries */
	uint64_t pba_off;		/* pending bits' offset in the BAR */
	pthread_mutex_t lock;
	struct rec_msix_entry table[MSIX_MAX];
	uint64_t pba;
	int gsi[MSIX_MAX];
	int efd[MSIX_MAX];
};

/*
 * Add the capability to f: nr vectors, the table at offset 0 of BAR
 * `bar` and the pending bits at pba_off.  0 or -1.
 */
int msix_init(struct msix *m, struct pci_function *f, unsigned nr,
	      unsigned bar, uint64_t pba_off);
/* Allocate the GSIs and eventfds in the domain's VM.  0 or -1 (errno). */
int msix_attach(struct msix *m, struct domain *dom);
void msix_destroy(struct msix *m, struct domain *dom);
/* The table/PBA BAR's accesses. */
int msix_bar_access(struct msix *m, uint64_t off, bool is_write,
		    unsigned size, uint8_t *data);
/* After a configuration write (the control word may have changed). */
void msix_config_written(struct msix *m, unsigned off, unsigned len);
/* Raise vector v (any thread): delivered, or pending while masked. */
void msix_notify(struct msix *m, unsigned v);
bool msix_enabled(struct msix *m);
/* Reload the table and pending bits (restore); routes and fires. */
void msix_load(struct msix *m, const struct rec_msix_entry *table,
	       const uint64_t *pba);
void msix_save(struct msix *m, struct rec_msix_entry *table, uint64_t *pba);

#endif
