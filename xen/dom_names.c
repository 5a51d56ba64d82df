/*
 * The names of domain states and shutdown events, as the control API and
 * the log say them: one table, linked by the daemon and by the fuzz
 * targets' fake domain table.
 */
#include "domain.h"

const char *dom_state_name(enum dom_state s)
{
	static const char *const names[] = {
		[DOM_RUNNING] = "running", [DOM_PAUSED] = "paused",
		[DOM_SHUTDOWN] = "shutdown", [DOM_CRASHED] = "crashed",
		[DOM_DYING] = "dying",
	};
	return names[s];
}

const char *dom_event_name(enum dom_event e)
{
	static const char *const names[] = {
		[DOM_EV_NONE] = NULL, [DOM_EV_POWEROFF] = "poweroff",
		[DOM_EV_REBOOT] = "reboot", [DOM_EV_CRASH] = "crash",
	};
	return names[e];
}
