/* The live-update commands of the control API (docs/control-api.md). */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "liveupdate/lu.h"
#include "trust/trust.h"

static bool known_phase(const char *p)
{
	const char *phases = " " LU_PHASES " ";
	char buf[32];

	if (strlen(p) > 20)
		return false;
	snprintf(buf, sizeof(buf), " %s ", p);
	return strstr(phases, buf) != NULL;
}

bool lu_phase_ahead_only(const char *phase)
{
	return !strcmp(phase, "build") || !strcmp(phase, "confirm") ||
	       !strcmp(phase, "started");
}

int cmd_lu_load(struct client *c, json_t *args, struct ctl_reply *r)
{
	const char *path = json_string_value(json_object_get(args, "image"));
	const char *sig;
	int code;

	if (!path || path[0] != '/')
		return ctl_fail(r, CTL_EINVAL, "%s",
				"'image' must be an absolute file name");
	if (trust_sig_arg(args, &sig, r))
		return CTL_EINVAL;
	if (lu_others_busy(r->msg, sizeof(r->msg)))
		return CTL_EBUSY;
	code = lu_stage(path, sig, r->msg, sizeof(r->msg));
	if (code)
		return code;
	r->result = lu_status();
	return CTL_OK;
}

int cmd_lu_exec(struct client *c, json_t *args, struct ctl_reply *r)
{
	json_t *f = json_object_get(args, "fail_phase");
	const char *phase = json_string_value(f);

	if (f && (!phase || !known_phase(phase)))
		return ctl_fail(r, CTL_EINVAL, "'fail_phase' must be one of: %s",
				LU_PHASES);
	json_t *m = json_object_get(args, "mode");
	const char *mode = m ? json_string_value(m) : "build-ahead";
	enum lu_mode md;
	bool dry_run = false;

	if (ctl_arg_bool(args, "dry_run", false, &dry_run, r))
		return CTL_EINVAL;
	if (mode && !strcmp(mode, "build-ahead"))
		md = LU_MODE_AHEAD;
	else if (mode && !strcmp(mode, "reexec"))
		md = LU_MODE_REEXEC;
	else
		return ctl_fail(r, CTL_EINVAL, "%s", "'mode' must be "
				"\"build-ahead\" or \"reexec\"");
	/* Phases only the build-ahead conversation has. */
	if (phase && md == LU_MODE_REEXEC && lu_phase_ahead_only(phase))
		return ctl_fail(r, CTL_EINVAL, "phase '%s' exists only in "
				"mode build-ahead", phase);
	if (lu_others_busy(r->msg, sizeof(r->msg)))
		return CTL_EBUSY;
	return lu_exec(c, phase, dry_run, md, r);
}

int cmd_lu_unload(struct client *c, json_t *args, struct ctl_reply *r)
{
	if (!lu_staged())
		return ctl_fail(r, CTL_ESTATE, "%s", "no image is staged");
	lu_unstage();
	r->result = lu_status();
	return CTL_OK;
}

int cmd_lu_status(struct client *c, json_t *args, struct ctl_reply *r)
{
	r->result = lu_status();
	return CTL_OK;
}
