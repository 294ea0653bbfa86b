// SPDX-License-Identifier: MIT
/*
 * fpu_regs: FPU/SSE/AVX register contents and control words survive
 * checkpoint/restart while the subject is blocked in a raw rt_sigsuspend
 * made from inline asm right after loading them (nothing else runs in
 * between, so the values are live in registers at the checkpoint):
 *
 *   xmm0-15 / ymm0-15   distinct byte patterns (ymm only with AVX)
 *   st(0)               an 80-bit long double (1/3)
 *   x87 control word    0x0e7f: round toward zero, 53-bit precision
 *   MXCSR               0xff80: round toward zero, flush-to-zero
 *
 * After the loop the asm stores everything back, converts 2.7 to an integer
 * with SSE (cvtsd2si) and x87 (fistp): both must give 2 under those modes.
 */
#define _GNU_SOURCE
#include <cpuid.h>

#include "cr.h"

#define FCW	0x0e7f
#define MXCSR	0xff80

struct fpu {
	unsigned char in[16][32], out[16][32];
	long double st_in, st_out;
	uint16_t fcw_in, fcw_out, fcw_def;
	uint32_t mx_in, mx_out, mx_def;
	double cvt_val;
	int32_t sse_cvt, x87_cvt;
};

#define LY(n) "vmovdqu " #n "*32(%[in]), %%ymm" #n "\n\t"
#define SY(n) "vmovdqu %%ymm" #n ", " #n "*32(%[out])\n\t"
#define LX(n) "movdqu " #n "*32(%[in]), %%xmm" #n "\n\t"
#define SX(n) "movdqu %%xmm" #n ", " #n "*32(%[out])\n\t"
#define ALL(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) \
	       M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)

/* Load, then rt_sigsuspend(mask) until *flag, then store and convert. */
#define FPU_ASM(LOADS, STORES, TAIL)						\
	asm volatile(								\
		"fldcw %[fcw_in]\n\t"						\
		"ldmxcsr %[mx_in]\n\t"						\
		"fldt %[st_in]\n\t"						\
		LOADS								\
		"1:\n\t"							\
		"cmpl $0, (%[flag])\n\t"					\
		"jne 2f\n\t"							\
		"mov %[nr], %%eax\n\t"						\
		"mov %[mask], %%rdi\n\t"					\
		"mov $8, %%esi\n\t"						\
		"syscall\n\t"							\
		"jmp 1b\n\t"							\
		"2:\n\t"							\
		STORES								\
		"fstpt %[st_out]\n\t"						\
		"fnstcw %[fcw_out]\n\t"						\
		"stmxcsr %[mx_out]\n\t"						\
		"cvtsd2si %[cvt_val], %%eax\n\t"				\
		"mov %%eax, %[sse_cvt]\n\t"					\
		"fldl %[cvt_val]\n\t"						\
		"fistpl %[x87_cvt]\n\t"						\
		"ldmxcsr %[mx_def]\n\t"						\
		"fldcw %[fcw_def]\n\t"						\
		TAIL								\
		: [st_out] "=m"(f->st_out), [fcw_out] "=m"(f->fcw_out),		\
		  [mx_out] "=m"(f->mx_out), [sse_cvt] "=m"(f->sse_cvt),		\
		  [x87_cvt] "=m"(f->x87_cvt)					\
		: [in] "r"(f->in), [out] "r"(f->out), [flag] "r"(flag),	\
		  [mask] "r"(mask), [nr] "i"(SYS_rt_sigsuspend),		\
		  [fcw_in] "m"(f->fcw_in), [mx_in] "m"(f->mx_in),		\
		  [st_in] "m"(f->st_in), [cvt_val] "m"(f->cvt_val),		\
		  [mx_def] "m"(f->mx_def), [fcw_def] "m"(f->fcw_def)		\
		: "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11",	\
		  "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4",	\
		  "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",	\
		  "xmm12", "xmm13", "xmm14", "xmm15")

static void run_avx(struct fpu *f, volatile sig_atomic_t *flag, sigset_t *mask)
{
	FPU_ASM(ALL(LY), ALL(SY), "vzeroupper\n\t");
}

static void run_sse(struct fpu *f, volatile sig_atomic_t *flag, sigset_t *mask)
{
	FPU_ASM(ALL(LX), ALL(SX), "");
}

static int have_avx(void)
{
	unsigned int a, b, c, d, lo, hi;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_AVX) || !(c & bit_OSXSAVE))
		return 0;
	asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	(void)hi;
	return (lo & 6) == 6;
}

static void prepare(struct fpu *f)
{
	int r, i;

	memset(f, 0, sizeof(*f));
	for (r = 0; r < 16; r++)
		for (i = 0; i < 32; i++)
			f->in[r][i] = (unsigned char)(r * 37 + i * 11 + 0x5a);
	f->st_in = 1.0L / 3.0L;
	f->fcw_in = FCW;
	f->mx_in = MXCSR;
	asm volatile("fnstcw %0" : "=m"(f->fcw_def));
	asm volatile("stmxcsr %0" : "=m"(f->mx_def));
	f->cvt_val = 2.7;
}

static void run(struct fpu *f, int avx, volatile sig_atomic_t *flag, sigset_t *mask)
{
	if (avx)
		run_avx(f, flag, mask);
	else
		run_sse(f, flag, mask);
}

static int regs_ok(struct fpu *f, int from, int len)
{
	int r;

	for (r = 0; r < 16; r++)
		if (memcmp(f->in[r] + from, f->out[r] + from, len))
			return 0;
	return 1;
}

static int first_bad_reg(struct fpu *f, int from, int len)
{
	int r;

	for (r = 0; r < 16; r++)
		if (memcmp(f->in[r] + from, f->out[r] + from, len))
			return r;
	return -1;
}

int main(void)
{
	static struct fpu f;
	volatile sig_atomic_t one = 1;
	sigset_t mask;
	int avx = have_avx();

	cr_init();
	ksft_print_header();
	ksft_set_plan(6);
	sigprocmask(SIG_BLOCK, NULL, &mask);
	sigdelset(&mask, SIGTERM);

	/* Setup verification: one pass without blocking. */
	prepare(&f);
	run(&f, avx, &one, &mask);
	if (!regs_ok(&f, 0, avx ? 32 : 16) || memcmp(&f.st_in, &f.st_out, 10) ||
	    f.fcw_out != FCW || f.mx_out != MXCSR || f.sse_cvt != 2 || f.x87_cvt != 2)
		ksft_exit_fail_msg("setup: asm round trip failed (fcw %#x mxcsr %#x cvt %d/%d)",
				   f.fcw_out, f.mx_out, f.sse_cvt, f.x87_cvt);
	ksft_print_msg("setup ok: %s, default fcw %#x mxcsr %#x", avx ? "AVX" : "SSE only",
		       f.fcw_def, f.mx_def);

	prepare(&f);
	cr_ready();	/* the runner waits for rt_sigsuspend: only the asm makes it */
	run(&f, avx, &cr_got_sigterm, &mask);

	ksft_test_result(regs_ok(&f, 0, 16), "xmm0-15 intact (first bad xmm%d)", first_bad_reg(&f, 0, 16));
	if (avx)
		ksft_test_result(regs_ok(&f, 16, 16), "ymm0-15 upper halves intact (first bad ymm%d)",
				 first_bad_reg(&f, 16, 16));
	else
		ksft_test_result_skip("ymm upper halves: no AVX");
	ksft_test_result(!memcmp(&f.st_in, &f.st_out, 10), "x87 st(0) intact");
	ksft_test_result(f.fcw_out == FCW, "x87 control word %#x == %#x", f.fcw_out, FCW);
	ksft_test_result(f.mx_out == MXCSR, "MXCSR %#x == %#x", f.mx_out, MXCSR);
	ksft_test_result(f.sse_cvt == 2 && f.x87_cvt == 2,
			 "round-toward-zero still in effect: 2.7 -> %d (SSE), %d (x87)", f.sse_cvt, f.x87_cvt);
	ksft_finished();
}
