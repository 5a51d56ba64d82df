/*
 * The domain and KVM layer, faked for the control and migration fuzz
 * targets (tests/fuzz/fuzz_control.c, fuzz_migrecv.c): a domain table
 * in memory with the calls xen/domain.h declares, a console ring, guest
 * RAM as a real memfd (xen/memory.c) if fake_domains_ram is set, and no
 * VM, vCPU thread or device.
 * Loading vCPU, VM and device records accepts them: what the fuzzers
 * drive is everything before that (the parsers, the record table's
 * checks, the dispatch).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buildinfo.h"
#include "cpuid.h"
#include "dev/acpi_pm.h"
#include "dev/devices.h"
#include "dev/uart.h"
#include "domain.h"
#include "kvm.h"
#include "loop.h"
#include "memory.h"
#include "state.h"
#include "vcpu.h"

#include "fake_domain.h"

#define FAKE_DOMAINS_MAX	8
#define FAKE_CONSOLE_SIZE	4096

struct kvm_host kvm_host = { .fd = -1, .api_version = 12, .tsc_khz = 1 };

static struct domain *domains;
static unsigned next_id = 1;
bool fake_domains_ram;

struct domain *domain_first(void)
{
	return domains;
}

struct domain *domain_by_id(unsigned id)
{
	struct domain *d;

	for (d = domains; d; d = d->next)
		if (d->id == id)
			return d;
	return NULL;
}

struct domain *domain_lookup(const char *name_or_id)
{
	struct domain *d;

	for (d = domains; d; d = d->next)
		if (!strcmp(d->name, name_or_id))
			return d;
	return NULL;
}

unsigned domain_count(void)
{
	struct domain *d;
	unsigned n = 0;

	for (d = domains; d; d = d->next)
		n++;
	return n;
}

unsigned domain_next_id(void)
{
	return next_id;
}

void domain_set_next_id(unsigned id)
{
	next_id = id;
}

static void fake_free(struct domain *dom)
{
	domcfg_free(&dom->cfg);
	guest_mem_free(&dom->mem);
	ring_free(&dom->console);
	pthread_mutex_destroy(&dom->console_lock);
	free(dom->vcpus);
	free(dom);
}

/* A domain shell as domain_prepare() makes one: RAM but no VM. */
static int fake_new(const struct domcfg *cfg, const char *name,
		    unsigned domid, struct domain **out, char *err,
		    size_t errlen)
{
	struct domain *dom;
	unsigned i;

	if (domain_count() >= FAKE_DOMAINS_MAX) {
		snprintf(err, errlen, "fake: domain table full");
		return -ENOSPC;
	}
	if (!domcfg_valid_name(name) || domain_lookup(name)) {
		snprintf(err, errlen, "domain '%s' exists or is not a name",
			 name);
		return -EEXIST;
	}
	dom = calloc(1, sizeof(*dom));
	if (!dom)
		return -ENOMEM;
	domcfg_init(&dom->cfg);
	dom->mem.fd = -1;
	dom->exit_code = -1;
	pthread_mutex_init(&dom->console_lock, NULL);
	snprintf(dom->name, sizeof(dom->name), "%s", name);
	dom->id = domid ? domid : next_id++;
	dom->nr_vcpus = cfg->vcpus;
	dom->vcpus = calloc(dom->nr_vcpus ? dom->nr_vcpus : 1,
			    sizeof(*dom->vcpus));
	if (!dom->vcpus || domcfg_copy(&dom->cfg, cfg) < 0 ||
	    ring_init(&dom->console, FAKE_CONSOLE_SIZE) < 0 ||
	    (fake_domains_ram &&
	     guest_mem_init(dom, (uint64_t)cfg->memory_mib << 20, -1) < 0)) {
		snprintf(err, errlen, "fake: out of memory");
		fake_free(dom);
		return -ENOMEM;
	}
	for (i = 0; i < dom->nr_vcpus; i++) {
		dom->vcpus[i].dom = dom;
		dom->vcpus[i].id = i;
		dom->vcpus[i].fd = -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &dom->created);
	*out = dom;
	return 0;
}

static void fake_list(struct domain *dom, bool paused)
{
	dom->state = paused ? DOM_PAUSED : DOM_RUNNING;
	dom->next = domains;
	domains = dom;
}

int domain_create(const struct domcfg *cfg, bool paused, struct domain **out,
		  char *err, size_t errlen)
{
	int ret = fake_new(cfg, cfg->name, 0, out, err, errlen);

	if (!ret)
		fake_list(*out, paused);
	return ret;
}

int domain_prepare(const struct domcfg *cfg, const char *name, int ram_fd,
		   bool inherit_fds, unsigned domid, struct domain **out,
		   char *err, size_t errlen)
{
	return fake_new(cfg, name, domid, out, err, errlen);
}

int domain_commit(struct domain *dom, bool paused, char *err, size_t errlen)
{
	fake_list(dom, paused);
	return 0;
}

void domain_discard(struct domain *dom)
{
	fake_free(dom);
}

void domain_destroy(struct domain *dom)
{
	struct domain **p;

	for (p = &domains; *p; p = &(*p)->next) {
		if (*p == dom) {
			*p = dom->next;
			break;
		}
	}
	fake_free(dom);
}

int domain_pause(struct domain *dom)
{
	if (dom->state != DOM_RUNNING)
		return -1;
	dom->state = DOM_PAUSED;
	return 0;
}

int domain_unpause(struct domain *dom)
{
	if (dom->state != DOM_PAUSED)
		return -1;
	dom->state = DOM_RUNNING;
	return 0;
}

void domain_end(struct domain *dom, enum dom_event ev)
{
	dom->state = DOM_SHUTDOWN;
	dom->shutdown_reason = ev;
}

double domain_cpu_time(struct domain *dom)
{
	return 0.5;
}

size_t uart_receive(struct domain *dom, const void *data, size_t len)
{
	return len;
}

/* shutdown and trigger (xen/cmd_power.c): the button, a reset, an NMI. */
int acpi_pm_power_button(struct domain *dom)
{
	return 0;
}

void domain_raise(struct domain *dom, enum dom_event ev, const char *why)
{
	domain_end(dom, ev);
}

void domain_handle_events(void)
{
}

void vcpu_nmi(struct vcpu *v)
{
}

/* The restore path's loads into KVM and the devices: taken as they are. */
int cpuid_load(struct domain *dom, const void *body, size_t len, char *err,
	       size_t errlen)
{
	return 0;
}

int vcpu_state_load(struct vcpu *v, uint32_t type, const void *body,
		    size_t len, char *err, size_t errlen)
{
	return 0;
}

int vm_state_load(struct domain *dom, uint32_t type, const void *body,
		  size_t len, char *err, size_t errlen)
{
	return 0;
}

int devices_load(struct domain *dom, uint32_t type, const void *body,
		 size_t len, char *err, size_t errlen)
{
	return 1;
}

/* No event loop: the fuzzers call the handlers themselves. */
int loop_add(int fd, short events, loop_fn fn, void *opaque)
{
	return 0;
}

void loop_set_events(int fd, short events)
{
}

void loop_del(int fd)
{
}

void fake_domains_reset(void)
{
	static const char *const names[] = { "alpha", "beta" };
	struct domcfg cfg;
	struct domain *dom;
	char err[128];
	unsigned i;

	while (domains)
		domain_destroy(domains);
	next_id = 1;
	for (i = 0; i < 2; i++) {
		domcfg_init(&cfg);
		snprintf(cfg.name, sizeof(cfg.name), "%s", names[i]);
		cfg.kernel = strdup("/boot/fuzz.elf");
		cfg.memory_mib = 1;
		if (!cfg.kernel ||
		    domain_create(&cfg, i == 1, &dom, err, sizeof(err)) < 0)
			abort();
		ring_write(&dom->console, "console\r\n\xff", 10);
		domcfg_free(&cfg);
	}
}
