/*
 * Capabilities after start-up (docs/sandbox.md).  The main thread keeps
 * only CAP_NET_ADMIN: a domain created later with a vif needs it to make
 * its tap (TUNSETIFF), bring it up and put it on its bridge
 * (SIOCSIFFLAGS, SIOCBRADDIF).  Nothing else the daemon does after it
 * serves needs a capability: /dev/kvm is opened at start, guest RAM is a
 * memfd, and files a client names are opened as their modes allow the
 * daemon's user (no CAP_DAC_OVERRIDE: a client cannot make a root daemon
 * read another user's private file).  Every other thread keeps none.
 *
 * Live update keeps working: the main thread execs the new image with
 * NO_NEW_PRIVS set, so even as root the image gets no capability back
 * (its permitted set is the old one's), and it needs no more than the
 * old image kept.  The bounding set is cut the same way, so a root
 * daemon cannot regain what it dropped through any exec.
 *
 * Capabilities are per thread, like filters: each thread drops its own.
 */
#include <errno.h>
#include <sys/capability.h>
#include <sys/prctl.h>

#include "sandbox_internal.h"

static const cap_value_t kept[] = { CAP_NET_ADMIN };

#define NR_KEPT	(sizeof(kept) / sizeof(kept[0]))

static bool is_kept(cap_value_t c)
{
	unsigned i;

	for (i = 0; i < NR_KEPT; i++)
		if (kept[i] == c)
			return true;
	return false;
}

/* Keep what we have of `keep` (a non-root daemon may have none of it). */
static int set_caps(const cap_value_t *keep, unsigned n)
{
	cap_t now = cap_get_proc(), want = cap_init();
	cap_flag_value_t have;
	int ret = -1;
	unsigned i;

	if (!now || !want)
		goto out;
	for (i = 0; i < n; i++) {
		if (cap_get_flag(now, keep[i], CAP_PERMITTED, &have) < 0)
			goto out;
		if (have != CAP_SET)
			continue;
		if (cap_set_flag(want, CAP_PERMITTED, 1, &keep[i], CAP_SET) ||
		    cap_set_flag(want, CAP_EFFECTIVE, 1, &keep[i], CAP_SET))
			goto out;
	}
	ret = cap_set_proc(want);
out:
	cap_free(now);
	cap_free(want);
	return ret;
}

int sandbox_caps_drop_main(void)
{
	cap_value_t c, last = cap_max_bits();

	/* The bounding set first: dropping from it needs CAP_SETPCAP. */
	for (c = 0; c < last; c++) {
		if (is_kept(c) || cap_get_bound(c) != 1)
			continue;
		if (cap_drop_bound(c) < 0 && errno != EPERM)
			return -1;
	}
	if (CAP_AMBIENT_SUPPORTED())
		cap_reset_ambient();
	return set_caps(kept, NR_KEPT);
}

int sandbox_caps_drop_thread(void)
{
	return set_caps(NULL, 0);
}

/* The main thread's effective capabilities, by name. */
json_t *sandbox_caps_json(void)
{
	cap_value_t c, last = cap_max_bits();
	json_t *a = json_array();
	cap_t now = cap_get_proc();
	cap_flag_value_t v;
	char *name;

	for (c = 0; now && c < last; c++) {
		if (cap_get_flag(now, c, CAP_EFFECTIVE, &v) < 0 ||
		    v != CAP_SET)
			continue;
		name = cap_to_name(c);
		json_array_append_new(a, json_string(name ? name : "?"));
		cap_free(name);
	}
	cap_free(now);
	return a;
}
