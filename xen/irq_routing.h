/*
 * The domain's GSI routing: KVM's default routes to the in-kernel PIC and
 * IOAPIC, plus one MSI route per interrupt vector a device owns (MSI-X).
 * KVM_SET_GSI_ROUTING replaces the whole table, so the default routes are
 * written again with every change.  A device raises an MSI by writing
 * the eventfd bound to its GSI (KVM_IRQFD): no exit, no ioctl.
 */
#ifndef XEN_IRQ_ROUTING_H
#define XEN_IRQ_ROUTING_H

#include <stdbool.h>
#include <stdint.h>

struct domain;

#define IRQ_MSI_MAX	256

/* A GSI of its own for an MSI vector (no route yet): >= 24, or -1. */
int irq_msi_alloc(struct domain *dom);
/* Point gsi at the MSI (address, data), or at nothing; 0 or -1 (errno). */
int irq_msi_route(struct domain *dom, unsigned gsi, uint64_t addr,
		  uint32_t data, bool valid);
/* Bind / unbind eventfd efd to gsi (KVM_IRQFD); 0 or -1 (errno). */
int irq_irqfd(struct domain *dom, unsigned gsi, int efd, bool assign);
/* Free the domain's routing state (the VM is going away). */
void irq_routing_free(struct domain *dom);

#endif
