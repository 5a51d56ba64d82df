/*
 * xen: the hypervisor daemon.  One process per host owns every domain;
 * xl and other clients drive it over a Unix socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buildinfo.h"
#include "control.h"
#include "dev/devices.h"
#include "dev/uart.h"
#include "domain.h"
#include "feature.h"
#include "identity.h"
#include "kvm.h"
#include "log.h"
#include "loop.h"
#include "memory.h"
#include "vcpu.h"

struct options {
	struct daemon_opts d;
	int foreground;
	char bad[80];		/* the first argument refused, for the log */
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
		"           [--socket-group GROUP]\n"
		"  --socket PATH     control socket (created mode 0600)\n"
		"  --socket-group GROUP  the socket is mode 0660, group GROUP\n"
		"  --client-idle-timeout S  close a connection idle for S s\n"
		"                    (default 600; 0: never)\n"
		"  --console-limit RATE[,BURST]  a guest's console output:\n"
		"                    RATE bytes a second after BURST at once\n"
		"                    (K/M suffixes; default 128K,1M; 0: none)\n"
		"  --mem-path DIR    guest RAM in unnamed files in DIR, a tmpfs\n"
		"                    (default: memfds; docs/page-pipeline.md)\n"
		"  --state-dir DIR   daemon state: pid file, default log\n"
		"  --foreground      stay attached; log to stderr unless --log\n"
		"  --log FILE        append the log to FILE\n"
		"  --no-sandbox      no seccomp filters, keep every capability\n"
		"                    (for debugging; docs/sandbox.md)\n");
}

static int parse_idle_timeout(const char *arg, struct daemon_opts *d)
{
	char *end;
	unsigned long s = strtoul(arg, &end, 10);

	if (!*arg || *end || s > 86400 * 365) {
		fprintf(stderr, "xen: --client-idle-timeout %s: not a number "
			"of seconds\n", arg);
		return -1;
	}
	d->client_idle_s = arg;
	control_set_idle_timeout(s);
	return 0;
}

/* A byte count with an optional K or M suffix (binary). */
static bool parse_bytes(const char *s, unsigned long *out)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (end == s || *s == '-')
		return false;
	if (*end == 'K' || *end == 'k')
		v <<= 10, end++;
	else if (*end == 'M' || *end == 'm')
		v <<= 20, end++;
	*out = v;
	return !*end && v <= (1UL << 40);
}

static int parse_console_limit(const char *arg, struct daemon_opts *d)
{
	char rate[32], *comma;
	unsigned long per_s, burst = UART_TX_BURST;

	snprintf(rate, sizeof(rate), "%s", arg);
	comma = strchr(rate, ',');
	if (comma)
		*comma++ = '\0';
	if (strlen(arg) >= sizeof(rate) || !parse_bytes(rate, &per_s) ||
	    (comma && (!parse_bytes(comma, &burst) || !burst))) {
		fprintf(stderr, "xen: --console-limit %s: want RATE[,BURST] "
			"in bytes (K, M), e.g. 128K,1M\n", arg);
		return -1;
	}
	d->console_limit = arg;
	uart_set_tx_limit(per_s, burst);
	return 0;
}

static int parse_mem_path(const char *arg, struct daemon_opts *d)
{
	char err[PATH_MAX + 128];

	if (guest_mem_set_dir(arg, err, sizeof(err)) < 0) {
		fprintf(stderr, "xen: --mem-path: %s\n", err);
		return -1;
	}
	d->mem_path = guest_mem_dir();	/* absolute */
	return 0;
}

/* The core's options, then the features' (xen/feature.h). */
static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option core[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "socket-group", required_argument, NULL, 'g' },
		{ "client-idle-timeout", required_argument, NULL, 'i' },
		{ "console-limit", required_argument, NULL, 'c' },
		{ "mem-path", required_argument, NULL, 'm' },
		{ "state-dir", required_argument, NULL, 'd' },
		{ "log", required_argument, NULL, 'l' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "no-sandbox", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct option *longopts = feature_options(core);
	int c, ret = -1;
	bool bad = false;

	if (!longopts)
		return -1;
	while ((c = getopt_long(argc, argv, "s:d:l:fhV", longopts,
				NULL)) != -1) {
		switch (c) {
		case 's': o->d.socket = optarg; break;
		case 'g': o->d.socket_group = optarg; break;
		case 'i':
			if (parse_idle_timeout(optarg, &o->d) < 0)
				bad = true;
			break;
		case 'c':
			if (parse_console_limit(optarg, &o->d) < 0)
				bad = true;
			break;
		case 'm':
			if (parse_mem_path(optarg, &o->d) < 0)
				bad = true;
			break;
		case 'd': o->d.state_dir = optarg; break;
		case 'l': o->d.log = optarg; break;
		case 'f': o->foreground = 1; break;
		case 'S': o->d.no_sandbox = true; break;
		case 'h': usage(stdout); exit(0);
		case 'V': printf("xen %s\n", XEN_VERSION); exit(0);
		default:
			/* Parse on: a live update's new image must still
			 * find its handover to give the guests back. */
			if (feature_parse_option(c, optarg) < 0 && !bad) {
				bad = true;
				snprintf(o->bad, sizeof(o->bad), "%s",
					 argv[optind - 1]);
			}
		}
	}
	if (optind == argc && !bad)
		ret = 0;
	else if (!o->bad[0])
		snprintf(o->bad, sizeof(o->bad), "%s",
			 optind < argc ? argv[optind] : "?");
	free(longopts);
	if (ret < 0)
		usage(stderr);
	return ret;
}

static void on_wake(void)
{
	domain_handle_events();
	uart_release_busy_lines();
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

/* A start that cannot go on: a feature may still undo it. */
static int start_failed(const char *why)
{
	feature_start_failed(why);
	return 1;
}

/*
 * The state directory: made 0700, or one that is there already must be
 * ours and writable by no one else.  A directory others can write to is
 * refused, not fixed: it may be shared (/tmp), and what others may have
 * put in it already would stay there.
 */
static int state_dir_ours(const char *dir, const struct stat *st)
{
	if (!S_ISDIR(st->st_mode)) {
		fprintf(stderr, "xen: %s: %s\n", dir, strerror(ENOTDIR));
		return -1;
	}
	if (st->st_uid == geteuid() && !(st->st_mode & 022))
		return 0;
	fprintf(stderr, "xen: %s: the state directory must belong to uid %u "
		"and be writable by no one else (it is mode %04o, uid %u): "
		"chmod go-w it or use another one\n", dir,
		(unsigned)geteuid(), (unsigned)(st->st_mode & 07777),
		(unsigned)st->st_uid);
	return -1;
}

static int state_dir_ok(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0700) == 0) {
		if (chmod(dir, 0700) == 0)	/* whatever the umask */
			return 0;
	} else if (errno == EEXIST && stat(dir, &st) == 0) {
		return state_dir_ours(dir, &st);
	}
	fprintf(stderr, "xen: %s: %s\n", dir, strerror(errno));
	return -1;
}

/* The state directory and the log. */
static int prepare(const struct options *o)
{
	if (state_dir_ok(o->d.state_dir) < 0)
		return start_failed("cannot use the state directory");
	if (log_open(o->d.log) < 0) {
		fprintf(stderr, "xen: cannot open log %s: %s\n", o->d.log,
			strerror(errno));
		return start_failed("cannot open the log");
	}
	return 0;
}

/* KVM, the event loop, then guests to take over or a socket to serve. */
static int start(const struct options *o, const struct feature *taker)
{
	char err[512];

	install_signals();
	if (devices_check() < 0) {
		fprintf(stderr, "xen: a device has no state record\n");
		return start_failed("a device has no state record");
	}
	if (kvm_host_open(!taker, err, sizeof(err)) < 0 ||
	    loop_init(on_wake) < 0) {
		log_err("startup failed: %s", err);
		fprintf(stderr, "xen: %s\n", err);
		return start_failed(err);
	}
	if (taker) {
		if (taker->take_over() < 0)
			return 1;
		/* The guests are ours now: a feature that fails says so. */
		if (feature_started() < 0)
			log_err("a feature failed to start after the takeover");
		return 0;
	}
	if (control_listen(o->d.socket, o->d.socket_group, err,
			   sizeof(err)) < 0) {
		log_err("startup failed: %s", err);
		fprintf(stderr, "xen: %s\n", err);
		return 1;
	}
	if (feature_started() < 0) {
		fprintf(stderr, "xen: a feature failed to start (see the log)\n");
		return 1;
	}
	return 0;
}

/* The command line as given: getopt_long() permutes argv.  Kept for the
 * process's life (a static, not a leak). */
static char **volatile argv_given;	/* volatile: the store stays */

static char *const *argv_copy(int argc, char **argv)
{
	argv_given = calloc(argc + 1, sizeof(*argv_given));
	if (argv_given)
		memcpy(argv_given, argv, argc * sizeof(*argv_given));
	return argv_given;
}

int main(int argc, char **argv)
{
	struct options o = { .foreground = 0 };
	const struct feature *taker;
	char logpath[4096], note[64];
	int ready_fd = -1, ret;
	char ok = 0;

	o.d.argv = argv_copy(argc, argv);
	if (parse_args(argc, argv, &o) < 0) {
		/*
		 * A new image given an option it does not know: the old
		 * image carried a feature this build is without (listening
		 * for migrations, say).  It gives the guests back.
		 */
		if (feature_taking_over() && o.d.socket && o.d.state_dir) {
			char why[160];

			snprintf(why, sizeof(why), "it does not know the "
				 "option %s (a feature it is built without?)",
				 o.bad);
			feature_early(&o.d);
			start_failed(why);
		}
		return 64;
	}
	daemon_mark_start();
	ret = feature_run();
	if (ret >= 0)
		return ret;
	if (!o.d.socket || !o.d.state_dir) {
		usage(stderr);
		return 64;
	}
	if (!o.d.log && !o.foreground) {
		snprintf(logpath, sizeof(logpath), "%s/xen.log", o.d.state_dir);
		o.d.log = logpath;
	}
	feature_early(&o.d);
	taker = feature_taking_over();
	if (prepare(&o))
		return 1;
	if (!o.foreground && !taker && daemonize(&ready_fd) < 0) {
		fprintf(stderr, "xen: fork: %s\n", strerror(errno));
		return 1;
	}
	if (start(&o, taker))
		return 1;
	pid_file_write(o.d.state_dir);
	log_info("xen %s (build-id %s) serving on %s, pid %d", XEN_VERSION,
		 build_id_hex(), o.d.socket, getpid());
	/* Under systemd (Type=notify): serving, and which pid is the daemon. */
	snprintf(note, sizeof(note), "READY=1\nMAINPID=%d", getpid());
	supervisor_notify(note);
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
