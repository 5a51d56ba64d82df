/* A domain: one KVM VM with its RAM, vCPU threads and devices. */
#ifndef XEN_DOMAIN_H
#define XEN_DOMAIN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "crash_restart.h"
#include "domcfg.h"
#include "ioport.h"
#include "log_limit.h"
#include "mmio.h"
#include "ring.h"

enum dom_state {
	DOM_RUNNING,
	DOM_PAUSED,
	DOM_SHUTDOWN,	/* ended, preserved */
	DOM_CRASHED,	/* ended by a crash, preserved */
	DOM_DYING,
};

enum dom_event {
	DOM_EV_NONE,
	DOM_EV_POWEROFF,
	DOM_EV_REBOOT,
	DOM_EV_CRASH,
};

struct domain;
struct device_set;
struct irq_routing;

struct vcpu {
	struct domain *dom;
	unsigned id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;
	bool parked;		/* waiting in vcpu_park(), not in KVM_RUN */
	bool gated;		/* waits at the start gate (vcpu.h); its own */
	/* When it last left the park to run (now_ns(); under dom->lock). */
	long long resumed_ns;
	bool nmi_pending;	/* vcpu_nmi(): KVM_NMI before the next run */
	unsigned long exits;	/* KVM_RUN returns handled (atomic) */
	/* Restore: IA32_TSC_DEADLINE from VCPU_MSRS, set again once the
	 * LAPIC and the TSC are in (vcpu_state.c). */
	uint64_t restore_tsc_deadline;
};

struct guest_mem {
	int fd;			/* memfd holding all guest RAM */
	uint8_t *base;		/* whole memfd mapped shared */
	uint64_t size;		/* bytes of RAM */
	uint64_t low_size;	/* RAM below the 32-bit PCI hole */
	/*
	 * While KVM logs dirty pages (migration), the pages device threads
	 * write, which KVM does not see: a bit per page of the memfd.
	 */
	uint64_t *dev_dirty;
	bool dev_log;
};

struct domain {
	unsigned id;
	char name[64];
	struct domcfg cfg;
	enum dom_state state;
	enum dom_event shutdown_reason;	/* why it ended, if it did */
	int exit_code;			/* debug-exit code or -1 */
	struct timespec created;
	struct domain *next;

	int vm_fd;
	struct guest_mem mem;
	int adopt_ram_fd;		/* restore RAM from this memfd, or -1 */
	unsigned nr_vcpus;
	struct vcpu *vcpus;
	/* Every vCPU's CPUID but the APIC ids (cpuid.h); kept by reboots. */
	struct kvm_cpuid2 *cpuid;

	/* Quiesce: vCPU threads park while run_ok is false. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool run_ok;
	bool stopping;
	bool gated;		/* its vCPUs were started at the gate */
	unsigned nr_parked;
	enum dom_event pending;		/* set by a vCPU, handled by main */
	double cpu_time_dead;		/* CPU seconds of finished threads */

	struct ioport_map ports;
	struct mmio_map mmio;
	unsigned mmio_logged;		/* unclaimed MMIO accesses seen */
	struct device_set *devices;	/* each device's state (dev/devices.c) */
	struct irq_routing *irq_routing;	/* MSI routes (irq_routing.c) */
	/*
	 * Being taken over in a live update: devices adopt the backend fds
	 * (disk images, taps) their records name instead of opening them.
	 */
	bool inherit_fds;
	/* While it is restored: how its clocks resume (enum state_clock). */
	int restore_clock;
	bool devices_paused;		/* device threads parked (quiesce) */

	/* Console history; console_lock guards it. */
	pthread_mutex_t console_lock;
	struct ring console;

	/* on_crash = "restart" (crash_restart.h): recent crashes, and when
	 * a restart put off is due (0: none waits). */
	struct crash_history crashes;
	long long restart_at_ns;

	/* What the guest makes the daemon log is limited (log_limit.h). */
	struct log_limit log_limit;
};

/* A log line the guest's doing caused (a reset, a crash, an unclaimed
 * access): within its budget. */
#define dom_log(dom, level, ...) \
	log_limited(&(dom)->log_limit, (level), __VA_ARGS__)

/* The domain table (owned by the main thread). */
struct domain *domain_first(void);
struct domain *domain_lookup(const char *name_or_id);
struct domain *domain_by_id(unsigned id);
unsigned domain_count(void);
unsigned domain_next_id(void);
void domain_set_next_id(unsigned id);

/* These return 0 or a negative errno, with `err` saying what failed. */
int domain_create(const struct domcfg *cfg, bool paused, struct domain **out,
		  char *err, size_t errlen);
void domain_destroy(struct domain *dom);
/*
 * Restore path: domain_prepare() makes a domain with its VM, RAM, devices
 * (their threads parked) and vCPUs but no kernel and no running threads,
 * not yet listed; domain_commit() starts and lists it (and lets the
 * devices work unless paused), domain_discard() throws it away.
 */
int domain_prepare(const struct domcfg *cfg, const char *name, int ram_fd,
		   bool inherit_fds, unsigned domid, struct domain **out, char *err,
		   size_t errlen);
int domain_commit(struct domain *dom, bool paused, char *err, size_t errlen);
/*
 * Start a prepared domain's vCPU threads parked, before its state is
 * loaded (live update's build-ahead: threads and their sandbox filters
 * are made while the guests still run on the old image); a later
 * domain_commit() only lets them run.
 */
int domain_start_parked(struct domain *dom, char *err, size_t errlen);
/*
 * domain_commit() for n domains whose vCPU threads were started parked,
 * all at once: every domain is listed first, then their vCPUs are let go
 * in one tight loop, so that no guest's release waits behind another's
 * bookkeeping, nor behind a guest released before it that took the CPU
 * (a live update's blackout ends when the last one runs).  It cannot fail.
 * Returns now_ns() once the gate is open (every vCPU let go).
 */
long long domain_commit_parked(struct domain **doms, const bool *paused,
			       unsigned n);
/*
 * When the last of dom's vCPUs let go after `since` (now_ns()) left its
 * park to run, waiting up to timeout_ms for each: that time, or -1 if one
 * did not within it (or the domain is not let run).
 */
long long domain_wait_resumed(struct domain *dom, long long since,
			      long timeout_ms);
void domain_discard(struct domain *dom);
/* Park all vCPUs outside KVM_RUN / let them run again. */
void domain_quiesce(struct domain *dom);
void domain_resume(struct domain *dom);
int domain_pause(struct domain *dom);
int domain_unpause(struct domain *dom);
/* Called from a vCPU thread: end the domain with this reason. */
void domain_raise(struct domain *dom, enum dom_event ev, const char *why);
/* Main thread: act on events raised by vCPUs (on_poweroff etc). */
void domain_handle_events(void);
/* Main thread: end a domain as if the guest did (xl shutdown/reboot). */
void domain_end(struct domain *dom, enum dom_event ev);
double domain_cpu_time(struct domain *dom);

const char *dom_state_name(enum dom_state s);
const char *dom_event_name(enum dom_event e);

/* Console output from the UART (any thread). */
void console_output(struct domain *dom, const void *data, size_t len);

#endif
