/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The checks of a C unit test program: one line per failed check, then
 * "N passed, M failed" from unit_done(), which is the exit status.
 */
#ifndef TESTS_UNIT_UNIT_H
#define TESTS_UNIT_UNIT_H

#include <stdarg.h>
#include <stdio.h>

static int unit_passed, unit_failed;

static void unit_check(int ok, const char *file, int line, const char *fmt,
		       ...) __attribute__((format(printf, 4, 5)));

static void unit_check(int ok, const char *file, int line, const char *fmt,
		       ...)
{
	va_list ap;

	if (ok) {
		unit_passed++;
		return;
	}
	unit_failed++;
	printf("%s:%d: FAIL: ", file, line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static inline int unit_done(void)
{
	printf("%d passed, %d failed\n", unit_passed, unit_failed);
	return unit_failed ? 1 : 0;
}

#define CHECK(cond) unit_check(!!(cond), __FILE__, __LINE__, "%s", #cond)
#define CHECK_INT(a, b) do {						\
	long long a_ = (a), b_ = (b);					\
	unit_check(a_ == b_, __FILE__, __LINE__,			\
		   "%s == %lld (%#llx), want %lld (%#llx)", #a, a_, a_, b_, b_); \
} while (0)

#endif
