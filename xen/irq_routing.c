#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "domain.h"
#include "irq_routing.h"

#define GSI_IOAPIC_PINS	24
#define GSI_PIC_PINS	16
#define GSI_MSI_FIRST	GSI_IOAPIC_PINS

struct msi_route {
	bool used;
	bool valid;
	uint64_t addr;
	uint32_t data;
};

struct irq_routing {
	pthread_mutex_t lock;
	unsigned nr;			/* MSI GSIs handed out */
	struct msi_route msi[IRQ_MSI_MAX];
};

static struct irq_routing *routing_of(struct domain *dom)
{
	struct irq_routing *r;

	pthread_mutex_lock(&dom->lock);
	r = dom->irq_routing;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (r) {
			pthread_mutex_init(&r->lock, NULL);
			dom->irq_routing = r;
		}
	}
	pthread_mutex_unlock(&dom->lock);
	return r;
}

int irq_msi_alloc(struct domain *dom)
{
	struct irq_routing *r = routing_of(dom);
	int gsi = -1;

	if (!r)
		return -1;
	pthread_mutex_lock(&r->lock);
	if (r->nr < IRQ_MSI_MAX) {
		r->msi[r->nr].used = true;
		gsi = GSI_MSI_FIRST + r->nr++;
	}
	pthread_mutex_unlock(&r->lock);
	if (gsi < 0)
		errno = ENOSPC;
	return gsi;
}

/* KVM's own default routes (kvm_setup_default_irq_routing). */
static unsigned default_routes(struct kvm_irq_routing_entry *e)
{
	unsigned n = 0, pin;

	for (pin = 0; pin < GSI_PIC_PINS; pin++, n++) {
		e[n].gsi = pin;
		e[n].type = KVM_IRQ_ROUTING_IRQCHIP;
		e[n].u.irqchip.irqchip = pin < 8 ? KVM_IRQCHIP_PIC_MASTER
						 : KVM_IRQCHIP_PIC_SLAVE;
		e[n].u.irqchip.pin = pin % 8;
	}
	for (pin = 0; pin < GSI_IOAPIC_PINS; pin++, n++) {
		e[n].gsi = pin;
		e[n].type = KVM_IRQ_ROUTING_IRQCHIP;
		e[n].u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
		e[n].u.irqchip.pin = pin;
	}
	return n;
}

static int commit(struct domain *dom, struct irq_routing *r)
{
	struct kvm_irq_routing *t;
	unsigned n, i;
	int ret;

	t = calloc(1, sizeof(*t) + (GSI_PIC_PINS + GSI_IOAPIC_PINS +
				    IRQ_MSI_MAX) * sizeof(t->entries[0]));
	if (!t)
		return -1;
	n = default_routes(t->entries);
	for (i = 0; i < r->nr; i++) {
		if (!r->msi[i].valid)
			continue;
		t->entries[n].gsi = GSI_MSI_FIRST + i;
		t->entries[n].type = KVM_IRQ_ROUTING_MSI;
		t->entries[n].u.msi.address_lo = (uint32_t)r->msi[i].addr;
		t->entries[n].u.msi.address_hi = r->msi[i].addr >> 32;
		t->entries[n].u.msi.data = r->msi[i].data;
		n++;
	}
	t->nr = n;
	ret = ioctl(dom->vm_fd, KVM_SET_GSI_ROUTING, t);
	free(t);
	return ret;
}

int irq_msi_route(struct domain *dom, unsigned gsi, uint64_t addr,
		  uint32_t data, bool valid)
{
	struct irq_routing *r = routing_of(dom);
	struct msi_route *m;
	int ret = 0;

	if (!r || gsi < GSI_MSI_FIRST || gsi - GSI_MSI_FIRST >= r->nr) {
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock(&r->lock);
	m = &r->msi[gsi - GSI_MSI_FIRST];
	if (m->valid != valid || m->addr != addr || m->data != data) {
		m->valid = valid;
		m->addr = addr;
		m->data = data;
		ret = commit(dom, r);
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int irq_irqfd(struct domain *dom, unsigned gsi, int efd, bool assign)
{
	struct kvm_irqfd f = {
		.fd = efd,
		.gsi = gsi,
		.flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};

	return ioctl(dom->vm_fd, KVM_IRQFD, &f);
}

void irq_routing_free(struct domain *dom)
{
	struct irq_routing *r = dom->irq_routing;

	if (!r)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r);
	dom->irq_routing = NULL;
}
