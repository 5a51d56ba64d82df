#include <errno.h>
#include <poll.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <generated/autoconf.h>

#include "boot/boot.h"
#include "control.h"
#include "cpuid.h"
#include "dev/devices.h"
#include "domain.h"
#include "feature.h"
#include "irq_routing.h"
#include "kvm.h"
#include "log.h"
#include "loop.h"
#include "memory.h"
#include "monotime.h"
#include "quiesce.h"
#include "vcpu.h"

#define TSS_ADDR	0xfffbd000

static struct domain *domains;
static unsigned next_domid = 1;

struct domain *domain_first(void)
{
	return domains;
}

unsigned domain_next_id(void)
{
	return next_domid;
}

void domain_set_next_id(unsigned id)
{
	if (id > next_domid)
		next_domid = id;
}

unsigned domain_count(void)
{
	struct domain *d;
	unsigned n = 0;

	for (d = domains; d; d = d->next)
		n++;
	return n;
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
	char *end;
	unsigned long id;

	for (d = domains; d; d = d->next)
		if (!strcmp(d->name, name_or_id))
			return d;
	errno = 0;
	id = strtoul(name_or_id, &end, 10);
	if (*name_or_id && !*end && !errno && id <= 0xffffffffUL)
		return domain_by_id(id);
	return NULL;
}

static int vm_setup(struct domain *dom)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };

	dom->vm_fd = kvm_create_vm();
	if (dom->vm_fd < 0)
		return -1;
	if (ioctl(dom->vm_fd, KVM_SET_TSS_ADDR, TSS_ADDR) < 0 ||
	    ioctl(dom->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0 ||
	    ioctl(dom->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return -1;
	return guest_mem_map_slots(dom);
}

/* Create the VM, its RAM, devices and vCPUs; undone by domain_teardown(). */
static int domain_build_vm(struct domain *dom, char *err, size_t errlen,
			   int *code)
{
	unsigned i;

	*code = -ENOMEM;
	dom->nr_vcpus = dom->cfg.vcpus;
	dom->vcpus = calloc(dom->nr_vcpus, sizeof(*dom->vcpus));
	if (!dom->vcpus) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < dom->nr_vcpus; i++)
		dom->vcpus[i].fd = -1;
	if (guest_mem_init(dom, (uint64_t)dom->cfg.memory_mib << 20,
			   dom->adopt_ram_fd) < 0) {
		snprintf(err, errlen, "cannot allocate %u MiB of guest RAM: %s",
			 dom->cfg.memory_mib, strerror(errno));
		return -1;
	}
	if (vm_setup(dom) < 0) {
		snprintf(err, errlen, "KVM refused to create the VM: %s",
			 strerror(errno));
		return -1;
	}
	*code = devices_init(dom, err, errlen);
	if (*code < 0)
		return -1;
	*code = -ENOMEM;
	if (cpuid_domain_init(dom) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < dom->nr_vcpus; i++) {
		if (vcpu_create(dom, i) < 0) {
			snprintf(err, errlen, "KVM refused vCPU %u: %s", i,
				 strerror(errno));
			return -1;
		}
	}
	return 0;
}

/*
 * Every protocol we boot starts the APs itself with INIT-SIPI-SIPI, as on
 * a PC: they wait in KVM_MP_STATE_UNINITIALIZED for the in-kernel local
 * APIC to deliver them.  KVM creates non-BSP vCPUs so with an in-kernel
 * irqchip; saying it here keeps it true whatever made the vCPU.
 */
static int domain_aps_wait_for_sipi(struct domain *dom, char *err,
				    size_t errlen)
{
	struct kvm_mp_state mp = { KVM_MP_STATE_UNINITIALIZED };
	unsigned i;

	for (i = 1; i < dom->nr_vcpus; i++) {
		if (ioctl(dom->vcpus[i].fd, KVM_SET_MP_STATE, &mp) < 0) {
			snprintf(err, errlen, "vCPU %u: cannot make it wait "
				 "for INIT-SIPI: %s", i, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Load the kernel and give vCPU 0 its entry state. */
static int domain_boot(struct domain *dom, char *err, size_t errlen,
		       int *code)
{
	struct boot_cpu_state boot;

	memset(&boot, 0, sizeof(boot));
	*code = -ENOEXEC;
	if (boot_load(dom, &boot, err, errlen) < 0)
		return -1;
	*code = -ENOMEM;
	if (vcpu_set_boot_state(&dom->vcpus[0], &boot) < 0) {
		snprintf(err, errlen, "cannot set boot registers: %s",
			 strerror(errno));
		return -1;
	}
	return domain_aps_wait_for_sipi(dom, err, errlen);
}

/* Start the vCPU threads, parked if paused. */
static int domain_start(struct domain *dom, bool paused, char *err,
			size_t errlen)
{
	unsigned i;

	dom->run_ok = !paused;
	dom->state = paused ? DOM_PAUSED : DOM_RUNNING;
	dom->pending = DOM_EV_NONE;
	dom->stopping = false;
	clock_gettime(CLOCK_MONOTONIC, &dom->created);
	for (i = 0; i < dom->nr_vcpus; i++) {
		if (vcpu_start(&dom->vcpus[i]) < 0) {
			snprintf(err, errlen, "cannot start vCPU thread: %s",
				 strerror(errno));
			return -1;
		}
	}
	return 0;
}

static int domain_build(struct domain *dom, bool paused, char *err,
			size_t errlen, int *code)
{
	if (domain_build_vm(dom, err, errlen, code) < 0 ||
	    domain_boot(dom, err, errlen, code) < 0)
		return -1;
	*code = -ENOMEM;
	return domain_start(dom, paused, err, errlen);
}

/* Stop every vCPU thread for good and free the VM; keep the record. */
static void domain_teardown(struct domain *dom)
{
	unsigned i;

	pthread_mutex_lock(&dom->lock);
	dom->stopping = true;
	dom->run_ok = false;
	pthread_cond_broadcast(&dom->cond);
	pthread_mutex_unlock(&dom->lock);
	/* Past the gate, they see `stopping` (the others, parked, too). */
	if (dom->gated)
		vcpu_gate_open();
	for (i = 0; dom->vcpus && i < dom->nr_vcpus; i++)
		vcpu_kick(&dom->vcpus[i]);
	dom->cpu_time_dead = domain_cpu_time(dom);
	for (i = 0; dom->vcpus && i < dom->nr_vcpus; i++)
		vcpu_destroy(&dom->vcpus[i]);
	free(dom->vcpus);
	dom->vcpus = NULL;
	dom->nr_vcpus = 0;
	devices_destroy(dom);
	irq_routing_free(dom);
	if (dom->vm_fd >= 0)
		close(dom->vm_fd);
	dom->vm_fd = -1;
	guest_mem_free(&dom->mem);
}

static struct domain *domain_alloc(const struct domcfg *cfg)
{
	struct domain *dom = calloc(1, sizeof(*dom));

	if (!dom)
		return NULL;
	if (domcfg_copy(&dom->cfg, cfg) < 0 ||
	    ring_init(&dom->console, CONFIG_CONSOLE_HISTORY_KIB * 1024) < 0) {
		domcfg_free(&dom->cfg);
		free(dom);
		return NULL;
	}
	snprintf(dom->name, sizeof(dom->name), "%s", cfg->name);
	dom->vm_fd = -1;
	dom->mem.fd = -1;
	dom->adopt_ram_fd = -1;
	dom->exit_code = -1;
	pthread_mutex_init(&dom->lock, NULL);
	pthread_cond_init(&dom->cond, NULL);
	pthread_mutex_init(&dom->console_lock, NULL);
	mmio_map_init(&dom->mmio);
	return dom;
}

/* The guest's log budget (log_limit.h) is named after its id. */
static void domain_name_log(struct domain *dom)
{
	snprintf(dom->log_limit.who, sizeof(dom->log_limit.who), "d%u",
		 dom->id);
}

static void domain_free(struct domain *dom)
{
	log_limit_flush(&dom->log_limit);
	free(dom->cpuid);
	ring_free(&dom->console);
	domcfg_free(&dom->cfg);
	pthread_mutex_destroy(&dom->lock);
	pthread_cond_destroy(&dom->cond);
	pthread_mutex_destroy(&dom->console_lock);
	mmio_map_destroy(&dom->mmio);
	free(dom);
}

static void domain_link(struct domain *dom)
{
	struct domain **p = &domains;

	while (*p)
		p = &(*p)->next;
	*p = dom;
}

static void domain_unlink(struct domain *dom)
{
	struct domain **p;

	for (p = &domains; *p; p = &(*p)->next) {
		if (*p == dom) {
			*p = dom->next;
			return;
		}
	}
}


static struct domain *domain_by_name_other(struct domain *self,
					   const char *name)
{
	struct domain *d;

	for (d = domains; d; d = d->next)
		if (d != self && !strcmp(d->name, name))
			return d;
	return NULL;
}

static struct domain *domain_by_name(const char *name)
{
	return domain_by_name_other(NULL, name);
}

static int domain_admit(const char *name, char *err, size_t errlen)
{
	if (domain_by_name(name)) {
		snprintf(err, errlen, "a domain named '%s' already exists",
			 name);
		return -EEXIST;
	}
	if (domain_count() >= CONFIG_MAX_DOMAINS) {
		snprintf(err, errlen, "too many domains (at most %d)",
			 CONFIG_MAX_DOMAINS);
		return -ENOSPC;
	}
	return 0;
}

int domain_create(const struct domcfg *cfg, bool paused, struct domain **out,
		  char *err, size_t errlen)
{
	struct domain *dom;
	int code = domain_admit(cfg->name, err, errlen);

	if (code)
		return code;
	dom = domain_alloc(cfg);
	if (!dom) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	dom->id = next_domid++;
	domain_name_log(dom);
	if (domain_build(dom, paused, err, errlen, &code) < 0) {
		log_err("d%u: create '%s' failed: %s", dom->id, dom->name, err);
		domain_teardown(dom);
		domain_free(dom);
		return code;
	}
	domain_link(dom);
	log_info("d%u: created '%s': %u MiB, %u vCPU(s), kernel %s%s",
		 dom->id, dom->name, cfg->memory_mib, cfg->vcpus, cfg->kernel,
		 paused ? " (paused)" : "");
	*out = dom;
	return 0;
}

int domain_prepare(const struct domcfg *cfg, const char *name, int ram_fd,
		   bool inherit_fds, unsigned domid, struct domain **out, char *err,
		   size_t errlen)
{
	struct domain *dom;
	int code = domain_admit(name, err, errlen);

	if (code)
		return code;
	dom = domain_alloc(cfg);
	if (!dom) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(dom->name, sizeof(dom->name), "%s", name);
	if (domid && domain_by_id(domid)) {
		snprintf(err, errlen, "domain id %u is in use", domid);
		domain_free(dom);
		return -EEXIST;
	}
	dom->id = domid ? domid : next_domid++;
	domain_name_log(dom);
	if (dom->id >= next_domid)
		next_domid = dom->id + 1;
	dom->adopt_ram_fd = ram_fd;
	dom->inherit_fds = inherit_fds;
	if (domain_build_vm(dom, err, errlen, &code) < 0) {
		domain_discard(dom);
		return code;
	}
	/*
	 * Its device threads wait for domain_commit(): the requests a
	 * loaded queue holds must not reach a disk or a tap from a restore
	 * that is refused later, or from a live-update image that rolls back.
	 */
	devices_pause(dom);
	*out = dom;
	return 0;
}

int domain_start_parked(struct domain *dom, char *err, size_t errlen)
{
	unsigned i;

	dom->gated = true;
	for (i = 0; i < dom->nr_vcpus; i++)
		dom->vcpus[i].gated = true;
	return domain_start(dom, true, err, errlen) < 0 ? -ENOMEM : 0;
}

int domain_commit(struct domain *dom, bool paused, char *err, size_t errlen)
{
	if (dom->nr_vcpus && dom->vcpus[0].thread_started) {
		/* Started parked (domain_start_parked()): let them run. */
		pthread_mutex_lock(&dom->lock);
		dom->run_ok = !paused;
		dom->state = paused ? DOM_PAUSED : DOM_RUNNING;
		pthread_cond_broadcast(&dom->cond);
		pthread_mutex_unlock(&dom->lock);
	} else if (domain_start(dom, paused, err, errlen) < 0) {
		return -ENOMEM;
	}
	domain_link(dom);
	/* A paused domain's devices go on at unpause (domain_resume()). */
	if (!paused)
		devices_resume(dom);
	return 0;
}

long long domain_commit_parked(struct domain **doms, const bool *paused,
			       unsigned n)
{
	long long released;
	unsigned k;

	for (k = 0; k < n; k++) {
		doms[k]->state = paused[k] ? DOM_PAUSED : DOM_RUNNING;
		domain_link(doms[k]);
	}
	for (k = 0; k < n; k++) {
		pthread_mutex_lock(&doms[k]->lock);
		doms[k]->run_ok = !paused[k];
		doms[k]->gated = false;
		pthread_mutex_unlock(&doms[k]->lock);
	}
	/* Every vCPU at once; then any that was already past the gate. */
	vcpu_gate_open();
	released = now_ns();
	for (k = 0; k < n; k++) {
		pthread_mutex_lock(&doms[k]->lock);
		pthread_cond_broadcast(&doms[k]->cond);
		pthread_mutex_unlock(&doms[k]->lock);
	}
	for (k = 0; k < n; k++)
		if (!paused[k])
			devices_resume(doms[k]);
	return released;
}

long long domain_wait_resumed(struct domain *dom, long long since,
			      long timeout_ms)
{
	long long last = 0;
	struct timespec dl;
	unsigned i;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (timeout_ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&dom->lock);
	for (i = 0; i < dom->nr_vcpus; i++) {
		struct vcpu *v = &dom->vcpus[i];

		while (v->thread_started && v->resumed_ns < since &&
		       dom->run_ok && !dom->stopping)
			if (pthread_cond_timedwait(&dom->cond, &dom->lock,
						   &dl) == ETIMEDOUT)
				break;
		if (v->resumed_ns < since) {
			last = -1;
			break;
		}
		if (v->resumed_ns > last)
			last = v->resumed_ns;
	}
	pthread_mutex_unlock(&dom->lock);
	return last;
}

void domain_discard(struct domain *dom)
{
	domain_teardown(dom);
	domain_free(dom);
}

void domain_destroy(struct domain *dom)
{
	log_info("d%u: destroying '%s'", dom->id, dom->name);
	dom->state = DOM_DYING;
	feature_domain_gone(dom);
	control_domain_gone(dom);
	domain_teardown(dom);
	domain_unlink(dom);
	domain_free(dom);
}

/*
 * Park every vCPU and keep them parked (pause, preserve).  A vCPU that
 * does not park within 5 s is reported and the domain stays held; so is
 * running out of memory for the set, which holds nothing.
 */
void domain_quiesce(struct domain *dom)
{
	struct quiesce q;
	char err[128];

	if (quiesce(&q, dom, 5000, err, sizeof(err)) < 0)
		log_warn("d%u: %s", dom->id, err);
	quiesce_keep(&q);
}

int domain_pause(struct domain *dom)
{
	if (dom->state != DOM_RUNNING)
		return -1;
	domain_quiesce(dom);
	dom->state = DOM_PAUSED;
	log_info("d%u: paused", dom->id);
	return 0;
}

void domain_resume(struct domain *dom)
{
	pthread_mutex_lock(&dom->lock);
	if (dom->pending == DOM_EV_NONE)
		dom->run_ok = true;
	pthread_cond_broadcast(&dom->cond);
	pthread_mutex_unlock(&dom->lock);
	devices_resume(dom);
}

int domain_unpause(struct domain *dom)
{
	if (dom->state != DOM_PAUSED)
		return -1;
	domain_resume(dom);
	dom->state = DOM_RUNNING;
	log_info("d%u: unpaused", dom->id);
	return 0;
}

void domain_raise(struct domain *dom, enum dom_event ev, const char *why)
{
	unsigned i;
	bool first;

	pthread_mutex_lock(&dom->lock);
	first = dom->pending == DOM_EV_NONE;
	if (first)
		dom->pending = ev;
	dom->run_ok = false;
	pthread_mutex_unlock(&dom->lock);
	if (!first)
		return;
	dom_log(dom, LOG_INFO, "d%u: %s (%s)", dom->id, why,
		dom_event_name(ev));
	for (i = 0; i < dom->nr_vcpus; i++)
		vcpu_kick(&dom->vcpus[i]);
	loop_wake();
}

static enum domcfg_action action_for(struct domain *dom, enum dom_event ev)
{
	switch (ev) {
	case DOM_EV_POWEROFF:
		return dom->cfg.on_poweroff;
	case DOM_EV_REBOOT:
		return dom->cfg.on_reboot;
	default:
		return dom->cfg.on_crash;
	}
}

static void domain_restart(struct domain *dom)
{
	char err[256];
	int code;

	domain_teardown(dom);
	dom->exit_code = -1;
	dom->shutdown_reason = DOM_EV_NONE;
	if (domain_build(dom, false, err, sizeof(err), &code) < 0) {
		log_err("d%u: restart failed: %s", dom->id, err);
		domain_destroy(dom);
		return;
	}
	dom_log(dom, LOG_INFO, "d%u: restarted", dom->id);
}

static void domain_preserve(struct domain *dom, enum dom_event ev)
{
	domain_quiesce(dom);
	dom->state = ev == DOM_EV_CRASH ? DOM_CRASHED : DOM_SHUTDOWN;
	dom_log(dom, LOG_INFO, "d%u: preserved in state %s", dom->id,
		dom_state_name(dom->state));
}

/* Restarts put off (crash_restart.h): one timer for all domains. */
static int restart_tfd = -1;

static void restart_timer_arm(void)
{
	struct itimerspec its = { { 0, 0 }, { 0, 0 } };
	long long due = 0, now = now_ns();
	struct domain *dom;

	for (dom = domains; dom; dom = dom->next)
		if (dom->restart_at_ns && (!due || dom->restart_at_ns < due))
			due = dom->restart_at_ns;
	if (due) {
		due = due > now ? due - now : 1;
		its.it_value.tv_sec = due / 1000000000LL;
		its.it_value.tv_nsec = due % 1000000000LL;
	}
	if (timerfd_settime(restart_tfd, 0, &its, NULL) < 0)
		log_err("restart timer: %s", strerror(errno));
}

static void on_restart_timer(int fd, short revents, void *opaque)
{
	struct domain *dom, *next;
	long long now = now_ns();
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_warn("restart timer: %s", strerror(errno));
	for (dom = domains; dom; dom = next) {
		next = dom->next;
		if (!dom->restart_at_ns || dom->restart_at_ns > now)
			continue;
		dom->restart_at_ns = 0;
		if (dom->state == DOM_CRASHED)
			domain_restart(dom);
	}
	restart_timer_arm();
}

/* Kept crashed until @ms have passed, then restarted. */
static int domain_restart_later(struct domain *dom, long long ms)
{
	if (restart_tfd < 0) {
		restart_tfd = timerfd_create(CLOCK_MONOTONIC,
					     TFD_NONBLOCK | TFD_CLOEXEC);
		if (restart_tfd < 0 ||
		    loop_add(restart_tfd, POLLIN, on_restart_timer, NULL) < 0) {
			log_err("restart timer: %s", strerror(errno));
			if (restart_tfd >= 0)
				close(restart_tfd);
			restart_tfd = -1;
			return -1;
		}
	}
	domain_preserve(dom, DOM_EV_CRASH);
	dom->restart_at_ns = now_ns() + ms * 1000000LL;
	restart_timer_arm();
	return 0;
}

/*
 * on_crash = "restart": at once the first time, later each time it
 * crashes again within the window, not at all past the limit.
 */
static void domain_crash_restart(struct domain *dom)
{
	unsigned recent;
	long long ms = crash_restart_delay(&dom->crashes, now_ns(), &recent);

	if (ms < 0) {
		log_warn("d%u: crashed %u times within %d s: not restarted "
			 "again (on_crash = restart gives up after %d); kept "
			 "crashed", dom->id, recent, CRASH_RESTART_WINDOW_S,
			 CRASH_RESTART_MAX);
		domain_preserve(dom, DOM_EV_CRASH);
		return;
	}
	if (!ms) {
		domain_restart(dom);
		return;
	}
	dom_log(dom, LOG_INFO, "d%u: crash %u within %d s: restart in %lld ms",
		dom->id, recent, CRASH_RESTART_WINDOW_S, ms);
	if (domain_restart_later(dom, ms) < 0)
		domain_restart(dom);
}

/* Keep the ended domain under a new name and start a fresh one. */
static void domain_rename_restart(struct domain *dom, enum dom_event ev)
{
	struct domain *fresh;
	char err[256];
	unsigned n = 0, recent;
	int ret;

	domain_preserve(dom, ev);
	/* Each crash leaves a domain behind: the same limit as restart, the
	 * history going on to the fresh domain (no delay: nothing spins). */
	if (ev == DOM_EV_CRASH &&
	    crash_restart_delay(&dom->crashes, now_ns(), &recent) < 0) {
		log_warn("d%u: crashed %u times within %d s: not restarted "
			 "again (on_crash = rename-restart gives up after %d)",
			 dom->id, recent, CRASH_RESTART_WINDOW_S,
			 CRASH_RESTART_MAX);
		return;
	}
	/* NAME-ID, made unique if a domain already has that name. */
	snprintf(dom->name, sizeof(dom->name), "%.40s-%u", dom->cfg.name,
		 dom->id);
	while (domain_by_name_other(dom, dom->name))
		snprintf(dom->name, sizeof(dom->name), "%.40s-%u-%u",
			 dom->cfg.name, dom->id, ++n);
	ret = domain_create(&dom->cfg, false, &fresh, err, sizeof(err));
	if (ret)
		log_err("d%u: rename-restart failed: %s", dom->id, err);
	else
		fresh->crashes = dom->crashes;
}

static void domain_act(struct domain *dom, enum dom_event ev)
{
	enum domcfg_action act = action_for(dom, ev);

	dom->shutdown_reason = ev;
	dom_log(dom, LOG_INFO, "d%u: %s -> %s", dom->id, dom_event_name(ev),
		domcfg_action_name(act));
	switch (act) {
	case DOMCFG_ACTION_RESTART:
		if (ev == DOM_EV_CRASH)
			domain_crash_restart(dom);
		else
			domain_restart(dom);
		break;
	case DOMCFG_ACTION_PRESERVE:
		domain_preserve(dom, ev);
		break;
	case DOMCFG_ACTION_RENAME_RESTART:
		domain_rename_restart(dom, ev);
		break;
	default:
		domain_destroy(dom);
		break;
	}
}

void domain_handle_events(void)
{
	struct domain *dom, *next;

	for (dom = domains; dom; dom = next) {
		enum dom_event ev;

		next = dom->next;
		if (dom->state == DOM_SHUTDOWN || dom->state == DOM_CRASHED)
			continue;
		pthread_mutex_lock(&dom->lock);
		ev = dom->pending;
		pthread_mutex_unlock(&dom->lock);
		if (ev != DOM_EV_NONE)
			domain_act(dom, ev);
	}
}

void domain_end(struct domain *dom, enum dom_event ev)
{
	const char *why = ev == DOM_EV_REBOOT ? "reboot requested by the toolstack"
					  : "shutdown requested by the toolstack";

	domain_raise(dom, ev, why);
	domain_handle_events();
}

double domain_cpu_time(struct domain *dom)
{
	double t = dom->cpu_time_dead;
	unsigned i;

	for (i = 0; dom->vcpus && i < dom->nr_vcpus; i++) {
		struct timespec ts;
		clockid_t cid;

		if (!dom->vcpus[i].thread_started ||
		    pthread_getcpuclockid(dom->vcpus[i].thread, &cid) ||
		    clock_gettime(cid, &ts))
			continue;
		t += ts.tv_sec + ts.tv_nsec / 1e9;
	}
	return t;
}

void console_output(struct domain *dom, const void *data, size_t len)
{
	pthread_mutex_lock(&dom->console_lock);
	ring_write(&dom->console, data, len);
	pthread_mutex_unlock(&dom->console_lock);
	loop_wake();
}
