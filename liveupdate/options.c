/*
 * The options an image is exec'd with, linked whatever the Kconfig: a
 * build without live update still reads them, to say so (not_built.c).
 */
#include "liveupdate/lu.h"

const struct option lu_options[] = {
	[LU_OPT_HANDOVER] = { "handover", required_argument, NULL, 0 },
	[LU_OPT_HANDOVER_CHECK] = { "handover-check", required_argument,
				    NULL, 0 },
	[LU_OPT_ROLLBACK] = { "rollback", required_argument, NULL, 0 },
	[LU_OPT_EXEC_NS] = { "lu-exec-ns", required_argument, NULL, 0 },
	[LU_OPT_OLD_IMAGE_FD] = { "lu-old-image-fd", required_argument,
				  NULL, 0 },
	[LU_OPT_BUILD_AHEAD] = { "lu-build-ahead", required_argument,
				 NULL, 0 },
	{ NULL, 0, NULL, 0 },
};
