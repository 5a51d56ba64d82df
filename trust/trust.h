/*
 * Signature enforcement in the daemon (docs/live-update.md, "Signed
 * images"; docs/livepatch.md, "Signed payloads"): with --trusted-keys DIR
 * every live-update image and livepatch payload must carry a detached
 * Ed25519 signature (common/signature.h) by one of the keys in DIR.  The
 * check runs on the very bytes that are then used, before anything pauses
 * and before any code of them runs.  Live update and livepatch call these
 * hooks; a build without CONFIG_SIGNATURE links trust/not_built.c, where
 * nothing is enforced.
 */
#ifndef TRUST_TRUST_H
#define TRUST_TRUST_H

#include <jansson.h>
#include <stddef.h>

#include "control.h"
#include "elfnote.h"
#include "signature.h"

/*
 * An image that enforces signatures in turn says so in its
 * XKVM_NOTE_SIGNATURE note (common/elfnote.h); desc: u32 SIG_VERSION.
 */
#define TRUST_NOTE_NAME		XKVM_NOTE_NAME
#define TRUST_NOTE_SIGNATURE	XKVM_NOTE_SIGNATURE

/*
 * The optional "signature" argument of live-update-load and
 * livepatch-upload/-load: an absolute path, or NULL (FILE.sig).  CTL_OK
 * or CTL_EINVAL (said in r).
 */
int trust_sig_arg(json_t *args, const char **sig_path, struct ctl_reply *r);

/*
 * data (len bytes, read from path) may be used as purpose: CTL_OK, or
 * CTL_ESIG with the reason, naming the key id, in err.  The signature is
 * read from sig_path, or from path + ".sig" if NULL.  CTL_OK at once when
 * enforcement is off.
 */
int trust_check(unsigned purpose, const void *data, size_t len,
		const char *path, const char *sig_path, char *err,
		size_t errlen);

/*
 * A live-update image staged in fd (the sealed memfd that is later
 * executed): its signature as trust_check(), and then that the image
 * enforces signatures too, so an update cannot end enforcement (CTL_EKERNEL
 * if it does not).
 */
int trust_check_image(int fd, const char *path, const char *sig_path,
		      char *err, size_t errlen);

#endif
