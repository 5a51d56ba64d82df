/*
 * The commands that act on a running guest as a machine's buttons and
 * pins would (docs/control-api.md): `shutdown` presses the ACPI power
 * button (or, with `force`, cuts the power), `trigger` is Xen's
 * `xl trigger`: power, reset or an NMI.
 */
#include <string.h>

#include "commands.h"
#include "dev/acpi_pm.h"
#include "domain.h"
#include "log.h"
#include "vcpu.h"

#define TRIGGERS	"power, reset, nmi"

static int running_domain(json_t *args, struct ctl_reply *r,
			  struct domain **dom)
{
	int code = ctl_arg_domain(args, r, dom);

	if (code)
		return code;
	if ((*dom)->state != DOM_RUNNING && (*dom)->state != DOM_PAUSED)
		return ctl_fail(r, CTL_ESTATE, "domain is %s already",
				dom_state_name((*dom)->state));
	return CTL_OK;
}

static int press_power_button(struct domain *dom, struct ctl_reply *r)
{
	if (acpi_pm_power_button(dom) < 0)
		return ctl_fail(r, CTL_EINTERNAL, "%s",
				"the domain has no ACPI power button");
	return CTL_OK;
}

int cmd_shutdown(struct client *c, json_t *args, struct ctl_reply *r)
{
	struct domain *dom;
	bool force = false;
	int code = running_domain(args, r, &dom);

	if (!code)
		code = ctl_arg_bool(args, "force", false, &force, r);
	if (code)
		return code;
	if (!force)
		return press_power_button(dom, r);
	domain_end(dom, DOM_EV_POWEROFF);
	return CTL_OK;
}

/* args.vcpu: absent or null is vCPU 0. */
static int arg_vcpu(json_t *args, const struct domain *dom, unsigned *out,
		    struct ctl_reply *r)
{
	json_t *v = json_object_get(args, "vcpu");
	json_int_t n;

	*out = 0;
	if (!v || json_is_null(v))
		return CTL_OK;
	if (!json_is_integer(v))
		return ctl_fail(r, CTL_EINVAL, "%s",
				"'vcpu' must be a vCPU number");
	n = json_integer_value(v);
	if (n < 0 || n >= dom->nr_vcpus)
		return ctl_fail(r, CTL_EINVAL,
				"no vCPU %lld: the domain has %u (0-%u)",
				(long long)n, dom->nr_vcpus,
				dom->nr_vcpus - 1);
	*out = n;
	return CTL_OK;
}

static int trigger_name(json_t *args, const char **out, struct ctl_reply *r)
{
	json_t *v = json_object_get(args, "trigger");
	const char *t = json_string_value(v);

	if (!json_is_string(v))
		return ctl_fail(r, CTL_EINVAL,
				"'trigger' must be one of %s", TRIGGERS);
	/* Xen's other triggers: ACPI sleep states and INIT, not here. */
	if (!strcmp(t, "init") || !strcmp(t, "sleep") ||
	    !strcmp(t, "s3resume"))
		return ctl_fail(r, CTL_ENOTSUP,
				"trigger '%s' is not supported (%s are)", t,
				TRIGGERS);
	if (strcmp(t, "power") && strcmp(t, "reset") && strcmp(t, "nmi"))
		return ctl_fail(r, CTL_EINVAL,
				"unknown trigger '%.64s' (%s)", t, TRIGGERS);
	*out = t;
	return CTL_OK;
}

int cmd_trigger(struct client *c, json_t *args, struct ctl_reply *r)
{
	struct domain *dom;
	const char *t = NULL;
	unsigned vcpu;
	int code = running_domain(args, r, &dom);

	if (!code)
		code = trigger_name(args, &t, r);
	if (!code)
		code = arg_vcpu(args, dom, &vcpu, r);
	if (code)
		return code;
	if (!strcmp(t, "power"))
		return press_power_button(dom, r);
	if (!strcmp(t, "nmi")) {
		log_info("d%u: NMI to vCPU %u (toolstack trigger)", dom->id,
			 vcpu);
		vcpu_nmi(&dom->vcpus[vcpu]);
		return CTL_OK;
	}
	/* reset: what a write of the reset bit to port 0xcf9 does. */
	domain_raise(dom, DOM_EV_REBOOT, "reset triggered by the toolstack");
	domain_handle_events();
	return CTL_OK;
}
