/* The main thread's event loop: poll() over registered fds. */
#ifndef XEN_LOOP_H
#define XEN_LOOP_H

#include <signal.h>

typedef void (*loop_fn)(int fd, short revents, void *opaque);

int loop_init(void (*on_wake)(void));
int loop_add(int fd, short events, loop_fn fn, void *opaque);
void loop_set_events(int fd, short events);
void loop_del(int fd);
void loop_run(volatile sig_atomic_t *stop);
/* Wake the main thread from any thread; it then calls on_wake(). */
void loop_wake(void);
/*
 * From any thread: call on_wake() again in `ms` milliseconds at the
 * latest (an earlier request wins; a wake before it does not cancel it).
 */
void loop_wake_after(unsigned ms);

#endif
