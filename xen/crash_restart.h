/*
 * on_crash = "restart" without a loop at full speed: a guest that crashes
 * again at once is restarted later each time, and not at all once it
 * crashed CRASH_RESTART_MAX times within CRASH_RESTART_WINDOW_S (it is
 * then kept crashed, for the operator).  README.md, "Limits".
 */
#ifndef XEN_CRASH_RESTART_H
#define XEN_CRASH_RESTART_H

#define CRASH_RESTART_MAX	5	/* restarts within the window */
#define CRASH_RESTART_WINDOW_S	60
#define CRASH_RESTART_DELAY_MS	250	/* before the 2nd; doubles after */

/* A domain's recent crashes that led to a restart. */
struct crash_history {
	long long at_ns[CRASH_RESTART_MAX];	/* a ring, 0: empty */
	unsigned next;
};

/*
 * The domain crashed at @now_ns and its action is to restart: record it
 * and return how many ms to wait before restarting (0: at once), or -1:
 * give up, it has crashed CRASH_RESTART_MAX times within the window.
 * *@recent: the crashes within the window, this one included.
 */
long long crash_restart_delay(struct crash_history *h, long long now_ns,
			      unsigned *recent);

#endif
