#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "monotime.h"

struct watch {
	unsigned long id;	/* unique: an fd number can be reused at once */
	int fd;
	short events;
	loop_fn fn;
	void *opaque;
};

static struct watch *watches;
static unsigned nr_watches, cap_watches;
static unsigned long next_watch_id;
static int wake_fd = -1;
static void (*wake_fn)(void);
/* now_ns() at which on_wake() is due, 0 for none (loop_wake_after). */
static _Atomic long long wake_due_ns;

static void on_wake_fd(int fd, short revents, void *opaque)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("loop: eventfd read: %s", strerror(errno));
	if (wake_fn)
		wake_fn();
}

int loop_init(void (*on_wake)(void))
{
	wake_fn = on_wake;
	wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (wake_fd < 0)
		return -1;
	return loop_add(wake_fd, POLLIN, on_wake_fd, NULL);
}

void loop_wake(void)
{
	uint64_t one = 1;

	if (write(wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("loop: eventfd write: %s", strerror(errno));
}

void loop_wake_after(unsigned ms)
{
	long long due = now_ns() + ms * 1000000LL;
	long long cur = wake_due_ns;

	while ((!cur || due < cur) &&
	       !__atomic_compare_exchange_n(&wake_due_ns, &cur, due, false,
					    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		;
	if (!cur || due < cur)
		loop_wake();	/* poll() must take the nearer deadline */
}

/* poll()'s timeout: 1 s, or less when a timed wake is due sooner. */
static int poll_timeout_ms(void)
{
	long long due = wake_due_ns, left;

	if (!due)
		return 1000;
	left = (due - now_ns() + 999999) / 1000000;
	return left <= 0 ? 0 : left < 1000 ? (int)left : 1000;
}

/* A timed wake that has come due: clear it, then run on_wake(). */
static void run_due_wake(void)
{
	long long due = wake_due_ns;

	if (!due || due > now_ns())
		return;
	if (__atomic_compare_exchange_n(&wake_due_ns, &due, 0, false,
					__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) &&
	    wake_fn)
		wake_fn();
}

int loop_add(int fd, short events, loop_fn fn, void *opaque)
{
	if (nr_watches == cap_watches) {
		unsigned cap = cap_watches ? cap_watches * 2 : 16;
		struct watch *w = realloc(watches, cap * sizeof(*w));

		if (!w)
			return -1;
		watches = w;
		cap_watches = cap;
	}
	watches[nr_watches++] = (struct watch){ ++next_watch_id, fd, events, fn,
						opaque };
	return 0;
}

static struct watch *find(int fd)
{
	unsigned i;

	for (i = 0; i < nr_watches; i++)
		if (watches[i].fd == fd)
			return &watches[i];
	return NULL;
}

void loop_set_events(int fd, short events)
{
	struct watch *w = find(fd);

	if (w)
		w->events = events;
}

void loop_del(int fd)
{
	struct watch *w = find(fd);

	if (w)
		w->fd = -1;	/* compacted after the current dispatch */
}

static struct watch *find_id(unsigned long id)
{
	unsigned i;

	for (i = 0; i < nr_watches; i++)
		if (watches[i].id == id)
			return &watches[i];
	return NULL;
}

static void compact(void)
{
	unsigned i, j = 0;

	for (i = 0; i < nr_watches; i++)
		if (watches[i].fd >= 0)
			watches[j++] = watches[i];
	nr_watches = j;
}

void loop_run(volatile sig_atomic_t *stop)
{
	struct pollfd *pfds = NULL;
	unsigned long *ids = NULL;
	unsigned cap = 0, n, i;

	while (!*stop) {
		compact();
		n = nr_watches;
		if (n > cap) {
			free(pfds);
			free(ids);
			cap = n * 2;
			pfds = calloc(cap, sizeof(*pfds));
			ids = calloc(cap, sizeof(*ids));
			if (!pfds || !ids)
				abort();
		}
		for (i = 0; i < n; i++) {
			ids[i] = watches[i].id;
			pfds[i].fd = watches[i].fd;
			pfds[i].events = watches[i].events;
			pfds[i].revents = 0;
		}
		if (poll(pfds, n, poll_timeout_ms()) < 0) {
			if (errno != EINTR)
				log_err("loop: poll: %s", strerror(errno));
			continue;
		}
		run_due_wake();
		/*
		 * Handlers may add or remove watches.  Match by id, not fd: a
		 * handler may close an fd whose number the next one (an
		 * accept) reuses, and the old revents must not reach the new
		 * watch (a stale POLLHUP would hang up on a new client).
		 */
		for (i = 0; i < n; i++) {
			struct watch *w;

			if (!pfds[i].revents)
				continue;
			w = find_id(ids[i]);
			if (w && w->fd >= 0)
				w->fn(w->fd, pfds[i].revents, w->opaque);
		}
	}
	free(pfds);
	free(ids);
}
