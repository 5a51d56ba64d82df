/*
 * Fitting a saved vCPU's XSAVE area and XCRs to this host's KVM, for
 * streams written on a host with more XSAVE components (save/restore,
 * live update rollback between hosts, migration).
 */
#ifndef XEN_XSAVE_FIT_H
#define XEN_XSAVE_FIT_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

/* The XSAVE components (XCR0 bits) this host's KVM gives guests. */
uint64_t host_xsave_components(void);

/*
 * Clear, in the header of the standard-format XSAVE area `x` (`size`
 * bytes), every component the host lacks whose saved state is its initial
 * state, so KVM_SET_XSAVE takes it.  Fails, saying which component, when
 * a component the host lacks holds state.
 */
int xsave_fit_host(void *x, size_t size, char *err, size_t errlen);

/*
 * 1 when the saved XCRs are to be set; 0 when there is nothing to set: none
 * were saved (a host without XSAVE), or this host has no XSAVE and XCR0 is
 * still its reset value (x87 only), which is all such a host has.  -1 with
 * `err` set when the vCPU enabled components this host lacks.
 */
int xcrs_fit_host(const struct kvm_xcrs *x, char *err, size_t errlen);

#endif
