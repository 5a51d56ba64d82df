/*
 * xen: the hypervisor daemon.  One process per host owns every domain;
 * xl and other clients drive it over a Unix socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <generated/autoconf.h>

#include "buildinfo.h"
#include "control.h"
#include "dev/devices.h"
#include "domain.h"
#include "kvm.h"
#include "liveupdate/lu.h"
#include "log.h"
#include "loop.h"
#include "vcpu.h"

struct options {
	const char *socket;
	const char *state_dir;
	const char *log;
	int foreground;
	/* Live update (set by the old image when it execs us). */
	int handover_fd;
	int handover_check_fd;
	const char *rollback_reason;
	long long lu_exec_ns;
	int lu_old_image_fd;
};

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	stop_requested = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: xen --socket PATH --state-dir DIR [--foreground] [--log FILE]\n"
		"  --socket PATH     control socket (created mode 0600)\n"
		"  --state-dir DIR   daemon state: pid file, default log\n"
		"  --foreground      stay attached; log to stderr unless --log\n"
		"  --log FILE        append the log to FILE\n");
}

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "state-dir", required_argument, NULL, 'd' },
		{ "log", required_argument, NULL, 'l' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "handover", required_argument, NULL, 'H' },
		{ "handover-check", required_argument, NULL, 'C' },
		{ "rollback", required_argument, NULL, 'R' },
		{ "lu-exec-ns", required_argument, NULL, 'T' },
		{ "lu-old-image-fd", required_argument, NULL, 'O' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "s:d:l:fhV", longopts, NULL)) != -1) {
		switch (c) {
		case 's': o->socket = optarg; break;
		case 'd': o->state_dir = optarg; break;
		case 'l': o->log = optarg; break;
		case 'f': o->foreground = 1; break;
		case 'h': usage(stdout); exit(0);
		case 'V': printf("xen %s\n", XEN_VERSION); exit(0);
		case 'H': o->handover_fd = atoi(optarg); break;
		case 'C': o->handover_check_fd = atoi(optarg); break;
		case 'R': o->rollback_reason = optarg; break;
		case 'T': o->lu_exec_ns = atoll(optarg); break;
		case 'O': o->lu_old_image_fd = atoi(optarg); break;
		default: usage(stderr); return -1;
		}
	}
	if (o->handover_check_fd >= 0 && optind == argc)
		return 0;
	if (optind != argc || !o->socket || !o->state_dir) {
		usage(stderr);
		return -1;
	}
	return 0;
}

static void on_wake(void)
{
	domain_handle_events();
	control_console_pump();
}

/* Fork; the parent waits until the child says it is serving. */
static int daemonize(int *ready_fd)
{
	int p[2];
	pid_t pid;
	char status = 1;

	if (pipe(p) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		close(p[1]);
		if (read(p[0], &status, 1) != 1)
			status = 1;
		_exit(status);
	}
	close(p[0]);
	setsid();
	*ready_fd = p[1];
	return 0;
}

static void detach_stdio(void)
{
	int fd = open("/dev/null", O_RDWR);

	if (fd < 0)
		return;
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
}

static int write_pid_file(const char *dir)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/xen.pid", dir);
	f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f, "%d\n", getpid());
	return fclose(f);
}

static void install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	vcpu_signals_init();
}

#ifdef CONFIG_LIVE_UPDATE
static int handover_check(int fd)
{
	char err[256];

	if (log_open(NULL) < 0 || devices_check() < 0 ||
	    kvm_host_open(false, err, sizeof(err)) < 0)
		return 1;
	return lu_check_handover(fd);
}

static int take_over(const struct options *o)
{
	struct lu_daemon_opts d = { o->socket, o->state_dir, o->log };

	lu_set_daemon_opts(&d);
	log_info("xen %s (build-id %s) taking over from a live update%s%s",
		 XEN_VERSION, build_id_hex(),
		 o->rollback_reason ? ", rolling back: " : "",
		 o->rollback_reason ? o->rollback_reason : "");
	return lu_takeover(o->handover_fd, o->rollback_reason, o->lu_exec_ns);
}

static void set_lu_opts(const struct options *o)
{
	struct lu_daemon_opts d = { o->socket, o->state_dir, o->log };

	lu_set_daemon_opts(&d);
}

/* Arm the rollback before anything can fail in a new image. */
static void early_handover(const struct options *o)
{
	struct lu_daemon_opts d = { o->socket, o->state_dir, o->log };

	if (o->handover_fd >= 0)
		lu_early_init(o->handover_fd, o->lu_old_image_fd,
			      o->rollback_reason, &d);
}

/* A new image that cannot start gives the guests back to the old one. */
static int startup_failed(const struct options *o, const char *why)
{
	char reason[600];

	if (o->handover_fd >= 0) {
		snprintf(reason, sizeof(reason), "new image failed to start: %s",
			 why);
		lu_fail_early(reason);
	}
	return 1;
}
#else
static void early_handover(const struct options *o)
{
}

static int startup_failed(const struct options *o, const char *why)
{
	return 1;
}

static int handover_check(int fd)
{
	fprintf(stderr, "xen: live update is not built in\n");
	return 1;
}

static int take_over(const struct options *o)
{
	log_err("live update is not built in; cannot take over");
	return -1;
}

static void set_lu_opts(const struct options *o)
{
}
#endif

int main(int argc, char **argv)
{
	struct options o = { .handover_fd = -1, .handover_check_fd = -1,
			     .lu_old_image_fd = -1 };
	char err[512], logpath[4096];
	int ready_fd = -1;
	char ok = 0;

	if (parse_args(argc, argv, &o) < 0)
		return 64;
	daemon_mark_start();
	if (o.handover_check_fd >= 0)
		return handover_check(o.handover_check_fd);
	early_handover(&o);
	if (mkdir(o.state_dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "xen: %s: %s\n", o.state_dir, strerror(errno));
		return startup_failed(&o, "cannot create the state directory");
	}
	if (!o.log && !o.foreground) {
		snprintf(logpath, sizeof(logpath), "%s/xen.log", o.state_dir);
		o.log = logpath;
	}
	if (log_open(o.log) < 0) {
		fprintf(stderr, "xen: cannot open log %s: %s\n", o.log,
			strerror(errno));
		return startup_failed(&o, "cannot open the log");
	}
	if (!o.foreground && o.handover_fd < 0 && daemonize(&ready_fd) < 0) {
		fprintf(stderr, "xen: fork: %s\n", strerror(errno));
		return 1;
	}
	install_signals();
	if (devices_check() < 0) {
		fprintf(stderr, "xen: a device has no state record\n");
		return startup_failed(&o, "a device has no state record");
	}
	if (kvm_host_open(o.handover_fd < 0, err, sizeof(err)) < 0 ||
	    loop_init(on_wake) < 0) {
		log_err("startup failed: %s", err);
		fprintf(stderr, "xen: %s\n", err);
		return startup_failed(&o, err);
	}
	if (o.handover_fd >= 0) {
		if (take_over(&o) < 0)
			return 1;
	} else if (control_listen(o.socket, err, sizeof(err)) < 0) {
		log_err("startup failed: %s", err);
		fprintf(stderr, "xen: %s\n", err);
		return 1;
	}
	set_lu_opts(&o);
	write_pid_file(o.state_dir);
	log_info("xen %s (build-id %s) serving on %s, pid %d", XEN_VERSION,
		 build_id_hex(), o.socket, getpid());
	if (ready_fd >= 0) {
		if (write(ready_fd, &ok, 1) != 1)
			return 1;
		close(ready_fd);
		detach_stdio();
	}
	loop_run(&stop_requested);
	log_info("shutting down: destroying %u domain(s)", domain_count());
	while (domain_first())
		domain_destroy(domain_first());
	control_close();
	return 0;
}
