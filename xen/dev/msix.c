#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "dev/msix.h"
#include "dev/pci.h"
#include "domain.h"
#include "irq_routing.h"
#include "log.h"

#define MSIX_CTRL		2	/* in the capability */
#define  MSIX_CTRL_MASKALL	0x4000
#define  MSIX_CTRL_ENABLE	0x8000
#define MSIX_TABLE		4
#define MSIX_PBA		8
#define MSIX_CAP_LEN		12
#define ENTRY_MASKED		0x1

int msix_init(struct msix *m, struct pci_function *f, unsigned nr,
	      unsigned bar, uint64_t pba_off)
{
	unsigned i;

	if (!nr || nr > MSIX_MAX)
		return -1;
	memset(m, 0, sizeof(*m));
	m->f = f;
	m->nr = nr;
	m->pba_off = pba_off;
	for (i = 0; i < MSIX_MAX; i++) {
		m->gsi[i] = -1;
		m->efd[i] = -1;
		m->table[i].ctrl = ENTRY_MASKED;
	}
	pthread_mutex_init(&m->lock, NULL);
	m->cap = pci_add_cap(f, PCI_CAP_ID_MSIX, MSIX_CAP_LEN);
	if (!m->cap)
		return -1;
	pci_set16(f, m->cap + MSIX_CTRL, nr - 1);
	pci_set32(f, m->cap + MSIX_TABLE, bar);
	pci_set32(f, m->cap + MSIX_PBA, (uint32_t)pba_off | bar);
	f->wmask[m->cap + MSIX_CTRL + 1] = 0xc0;
	return 0;
}

int msix_attach(struct msix *m, struct domain *dom)
{
	unsigned i;

	for (i = 0; i < m->nr; i++) {
		m->gsi[i] = irq_msi_alloc(dom);
		if (m->gsi[i] < 0)
			return -1;
		m->efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (m->efd[i] < 0)
			return -1;
		if (irq_irqfd(dom, m->gsi[i], m->efd[i], true) < 0)
			return -1;
	}
	return 0;
}

/*
 * Devices go only with their VM, whose closing drops its irqfds: no
 * KVM_IRQFD_FLAG_DEASSIGN each (an SRCU grace period apiece).
 */
void msix_destroy(struct msix *m, struct domain *dom)
{
	unsigned i;

	for (i = 0; i < MSIX_MAX; i++) {
		if (m->efd[i] < 0)
			continue;
		close(m->efd[i]);
		m->efd[i] = -1;
	}
	pthread_mutex_destroy(&m->lock);
}

static uint16_t ctrl_of(struct msix *m)
{
	return pci_get16(m->f, m->cap + MSIX_CTRL);
}

/* Whether vector v is blocked (caller holds the lock). */
static bool masked(struct msix *m, unsigned v)
{
	uint16_t c = ctrl_of(m);

	return !(c & MSIX_CTRL_ENABLE) || (c & MSIX_CTRL_MASKALL) ||
	       (m->table[v].ctrl & ENTRY_MASKED);
}

static void fire(struct msix *m, unsigned v)
{
	uint64_t one = 1;

	if (m->efd[v] >= 0 && write(m->efd[v], &one, sizeof(one)) < 0 &&
	    errno != EAGAIN)
		log_warn("%s: MSI-X vector %u: %s", m->f->name, v,
			 strerror(errno));
}

/* Route vector v where its entry points, and deliver what was pending. */
static void update(struct msix *m, unsigned v)
{
	const struct rec_msix_entry *e = &m->table[v];
	uint64_t addr = (uint64_t)e->addr_hi << 32 | e->addr_lo;

	if (masked(m, v) || m->gsi[v] < 0)
		return;
	if (irq_msi_route(m->f->dom, m->gsi[v], addr, e->data, true) < 0)
		log_warn("%s: cannot route MSI-X vector %u: %s", m->f->name,
			 v, strerror(errno));
	if (m->pba & (1ULL << v)) {
		m->pba &= ~(1ULL << v);
		fire(m, v);
	}
}

static void update_all(struct msix *m)
{
	unsigned v;

	for (v = 0; v < m->nr; v++)
		update(m, v);
}

void msix_config_written(struct msix *m, unsigned off, unsigned len)
{
	if (off + len <= m->cap + MSIX_CTRL || off >= m->cap + MSIX_TABLE)
		return;
	pthread_mutex_lock(&m->lock);
	update_all(m);
	pthread_mutex_unlock(&m->lock);
}

bool msix_enabled(struct msix *m)
{
	return ctrl_of(m) & MSIX_CTRL_ENABLE;
}

int msix_bar_access(struct msix *m, uint64_t off, bool is_write,
		    unsigned size, uint8_t *data)
{
	uint64_t table_end = m->nr * sizeof(struct rec_msix_entry);
	unsigned v;

	if ((size != 4 && size != 8) || off % size)
		return 0;	/* undefined by the spec: ignored */
	pthread_mutex_lock(&m->lock);
	if (off < table_end) {
		v = off / sizeof(struct rec_msix_entry);
		if (is_write) {
			memcpy((uint8_t *)m->table + off, data, size);
			m->table[v].ctrl &= ENTRY_MASKED;
			update(m, v);
		} else {
			memcpy(data, (uint8_t *)m->table + off, size);
		}
	} else if (off >= m->pba_off && off + size <= m->pba_off + 8) {
		if (!is_write)
			memcpy(data, (uint8_t *)&m->pba + (off - m->pba_off),
			       size);
	} else if (!is_write) {
		memset(data, 0, size);
	}
	pthread_mutex_unlock(&m->lock);
	return 0;
}

void msix_notify(struct msix *m, unsigned v)
{
	if (v >= m->nr)
		return;
	pthread_mutex_lock(&m->lock);
	if (masked(m, v))
		m->pba |= 1ULL << v;
	else
		fire(m, v);
	pthread_mutex_unlock(&m->lock);
}

void msix_load(struct msix *m, const struct rec_msix_entry *table,
	       const uint64_t *pba)
{
	unsigned v;

	pthread_mutex_lock(&m->lock);
	memcpy(m->table, table, m->nr * sizeof(*table));
	for (v = 0; v < m->nr; v++)
		m->table[v].ctrl &= ENTRY_MASKED;
	m->pba = pba[0] & (m->nr == 64 ? ~0ULL : (1ULL << m->nr) - 1);
	update_all(m);
	pthread_mutex_unlock(&m->lock);
}

void msix_save(struct msix *m, struct rec_msix_entry *table, uint64_t *pba)
{
	pthread_mutex_lock(&m->lock);
	memcpy(table, m->table, m->nr * sizeof(*table));
	pba[0] = m->pba;
	pthread_mutex_unlock(&m->lock);
}
