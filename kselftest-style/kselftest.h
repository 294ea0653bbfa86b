/* SPDX-License-Identifier: MIT */
/*
 * kselftest.h - minimal TAP 13 helpers for crsub's whole-system subjects.
 *
 * Written for crsub; modelled on the interface of the Linux kernel's
 * tools/testing/selftests/kselftest.h (same names, same exit codes) so the
 * subjects read like kernel selftests, but this is an independent
 * implementation.
 *
 *   ksft_print_header();            "TAP version 13"
 *   ksft_set_plan(n);               "1..n"
 *   ksft_test_result_pass(fmt...);  "ok N fmt"
 *   ksft_test_result_fail(fmt...);  "not ok N fmt"
 *   ksft_test_result_skip(fmt...);  "ok N # SKIP fmt"
 *   ksft_test_result(cond, fmt...); pass or fail
 *   ksft_print_msg(fmt...);         "# fmt" (diagnostic)
 *   ksft_finished();                exit 0 if nothing failed, else 1
 *   ksft_exit_pass/fail/skip(), ksft_exit_fail_msg(fmt...)
 *
 * Every line is flushed as soon as it is printed: subjects are frozen and
 * killed by a checkpoint, and their stdout is a log file, so nothing may sit
 * in a stdio buffer across the checkpoint. errno is preserved by all helpers.
 */
#ifndef CRSUB_KSELFTEST_H
#define CRSUB_KSELFTEST_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define KSFT_PASS  0
#define KSFT_FAIL  1
#define KSFT_XFAIL 2
#define KSFT_XPASS 3
#define KSFT_SKIP  4

#define KSFT_PRINTF(a, b) __attribute__((format(printf, a, b)))

struct ksft_count {
	unsigned int pass, fail, skip;
};

static struct ksft_count ksft_cnt;
static unsigned int ksft_plan;

static inline unsigned int ksft_test_num(void)
{
	return ksft_cnt.pass + ksft_cnt.fail + ksft_cnt.skip;
}
static inline unsigned int ksft_get_pass_cnt(void) { return ksft_cnt.pass; }
static inline unsigned int ksft_get_fail_cnt(void) { return ksft_cnt.fail; }
static inline unsigned int ksft_get_skip_cnt(void) { return ksft_cnt.skip; }

static inline void ksft_print_header(void)
{
	printf("TAP version 13\n");
	fflush(stdout);
}

static inline void ksft_set_plan(unsigned int plan)
{
	ksft_plan = plan;
	printf("1..%u\n", plan);
	fflush(stdout);
}

static inline void ksft_print_cnts(void)
{
	if (ksft_plan && ksft_plan != ksft_test_num())
		printf("# Planned tests != run tests (%u != %u)\n",
		       ksft_plan, ksft_test_num());
	printf("# Totals: pass:%u fail:%u xfail:0 xpass:0 skip:%u error:0\n",
	       ksft_cnt.pass, ksft_cnt.fail, ksft_cnt.skip);
	fflush(stdout);
}

static inline void ksft_vline(const char *prefix, const char *fmt, va_list ap)
{
	fputs(prefix, stdout);
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
}

static inline KSFT_PRINTF(1, 2) void ksft_print_msg(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	errno = saved;
	ksft_vline("# ", fmt, ap);
	va_end(ap);
	errno = saved;
}

static inline void ksft_vresult(int kind, const char *fmt, va_list ap)
{
	char prefix[48];

	switch (kind) {
	case KSFT_PASS:
		ksft_cnt.pass++;
		snprintf(prefix, sizeof(prefix), "ok %u ", ksft_test_num());
		break;
	case KSFT_SKIP:
		ksft_cnt.skip++;
		snprintf(prefix, sizeof(prefix), "ok %u # SKIP ", ksft_test_num());
		break;
	default:
		ksft_cnt.fail++;
		snprintf(prefix, sizeof(prefix), "not ok %u ", ksft_test_num());
		break;
	}
	ksft_vline(prefix, fmt, ap);
}

#define KSFT_DEFINE_RESULT(name, kind)					\
static inline KSFT_PRINTF(1, 2) void name(const char *fmt, ...)	\
{									\
	int saved = errno;						\
	va_list ap;							\
									\
	va_start(ap, fmt);						\
	errno = saved;							\
	ksft_vresult(kind, fmt, ap);					\
	va_end(ap);							\
	errno = saved;							\
}
KSFT_DEFINE_RESULT(ksft_test_result_pass, KSFT_PASS)
KSFT_DEFINE_RESULT(ksft_test_result_fail, KSFT_FAIL)
KSFT_DEFINE_RESULT(ksft_test_result_skip, KSFT_SKIP)

/* ok/not ok depending on cond; returns cond so callers can chain. */
static inline KSFT_PRINTF(2, 3) int ksft_test_result(int cond, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	errno = saved;
	ksft_vresult(cond ? KSFT_PASS : KSFT_FAIL, fmt, ap);
	va_end(ap);
	errno = saved;
	return cond;
}

static inline __attribute__((noreturn)) void ksft_exit(int code)
{
	ksft_print_cnts();
	exit(code);
}

static inline __attribute__((noreturn)) void ksft_exit_pass(void) { ksft_exit(KSFT_PASS); }
static inline __attribute__((noreturn)) void ksft_exit_fail(void) { ksft_exit(KSFT_FAIL); }

/* Exit with the overall result: fail if any test failed. */
static inline __attribute__((noreturn)) void ksft_finished(void)
{
	if (ksft_plan && ksft_plan != ksft_test_num())
		ksft_exit(KSFT_FAIL);
	ksft_exit(ksft_cnt.fail ? KSFT_FAIL : KSFT_PASS);
}

static inline KSFT_PRINTF(1, 2) __attribute__((noreturn))
void ksft_exit_fail_msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ksft_vline("Bail out! ", fmt, ap);
	va_end(ap);
	ksft_exit(KSFT_FAIL);
}

static inline KSFT_PRINTF(1, 2) __attribute__((noreturn))
void ksft_exit_skip(const char *fmt, ...)
{
	va_list ap;

	/* A whole-program skip: plan 0 tests, say why, exit 4. */
	if (!ksft_test_num() && !ksft_plan) {
		printf("1..0 # SKIP ");
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		putchar('\n');
	} else {
		va_start(ap, fmt);
		ksft_vline("# SKIP ", fmt, ap);
		va_end(ap);
	}
	fflush(stdout);
	exit(KSFT_SKIP);
}

#endif /* CRSUB_KSELFTEST_H */
