/*
 * Linked instead of trust/enforce.c when CONFIG_SIGNATURE is off: nothing
 * is verified, --trusted-keys is refused, and the log says so at start.
 */
#include <stdio.h>

#include "feature.h"
#include "log.h"
#include "trust/trust.h"

int trust_sig_arg(json_t *args, const char **sig_path, struct ctl_reply *r)
{
	*sig_path = NULL;
	return CTL_OK;
}

int trust_check(unsigned purpose, const void *data, size_t len,
		const char *path, const char *sig_path, char *err,
		size_t errlen)
{
	return CTL_OK;
}

int trust_check_image(int fd, const char *path, const char *sig_path,
		      char *err, size_t errlen)
{
	return CTL_OK;
}

static const struct option trust_options[] = {
	{ "trusted-keys", required_argument, NULL, 0 },
	{ NULL, 0, NULL, 0 },
};

static int trust_parse_option(unsigned index, const char *arg)
{
	fprintf(stderr, "xen: --trusted-keys: signature verification is not "
		"built in (CONFIG_SIGNATURE is off)\n");
	return -1;
}

static int trust_started(void)
{
	log_warn("signature enforcement: OFF: this build has no signature "
		 "support (CONFIG_SIGNATURE is off); live-update images and "
		 "livepatch payloads are not verified");
	return 0;
}

static void trust_info(json_t *result)
{
	json_object_set_new(result, "signatures",
			    json_pack("{s:b, s:b}", "enforcement", 0,
				      "supported", 0));
}

static struct feature trust = {
	.name = "signatures (not built)",
	.info = trust_info,
	.options = trust_options,
	.parse_option = trust_parse_option,
	.started = trust_started,
};
FEATURE_REGISTER(trust)
