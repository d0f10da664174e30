/* test_ctx.c — suite for arch/: nu__ctx_switch and nu__ctx_make.
 *
 * What is checked: (arg, p) reach a fresh entry; values travel both ways
 * between the main stack and several contexts, including context to
 * context; every callee-saved register (integer, and d8-d15 on aarch64)
 * survives a switch while the other side loads its own values into all of
 * them (a hand-written asm caller does both, so the compiler cannot hide a
 * missing save); live floating-point values and the thread's rounding mode
 * survive switches, and the rounding mode is shared per thread as ctx.h
 * documents; deep recursion suspended at its bottom; a million switches;
 * ABI stack alignment at entry; nu__ctx_make aligns a ragged top and writes
 * nothing at or above it; an unwinder walking out of a context stops at
 * the trampoline; an entry that returns traps.
 *
 * nu__ctx_swap (the runtime's inline switch) keeps twelve live values on
 * both sides, and a context saved by either switch resumes through the
 * other.
 *
 * Builds with CUnit, or with -DNUTEST_STANDALONE (cross builds run under
 * qemu-user).  Under AddressSanitizer every switch is annotated with
 * __sanitizer_start/finish_switch_fiber, and stacks are unpoisoned before
 * they are unmapped, so ASan follows the stack changes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "ctx.h"
#include "nutest.h"

#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define TC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TC_ASAN 1
#endif
#endif
#ifdef TC_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#define TC_STOP ((void *)(uintptr_t)0x5707)
#define TC_DONE ((void *)(uintptr_t)0xd09e)

/* A context under test: its saved sp and its stack mapping. */
typedef struct tctx {
	void *sp;
	void *lo;	/* lowest usable stack address (for ASan) */
	size_t size;
	void *map;	/* mapping including the guard page, or NULL */
	size_t maplen;
} tctx;

static tctx t_main;	/* the test thread's own stack */

/* Fill in t_main's stack bounds (needed only by the ASan annotations). */
static void tc_main_init(void)
{
#ifdef TC_ASAN
	pthread_attr_t a;
	if (t_main.lo || pthread_getattr_np(pthread_self(), &a) != 0)
		return;
	pthread_attr_getstack(&a, &t_main.lo, &t_main.size);
	pthread_attr_destroy(&a);
#endif
}

/* Tell ASan we are leaving for `to`; last means never to come back. */
static inline void tc_asan_leave(tctx *to, void **fake, int last)
{
#ifdef TC_ASAN
	__sanitizer_start_switch_fiber(last ? NULL : fake, to->lo, to->size);
#else
	(void)to, (void)fake, (void)last;
#endif
}

/* Tell ASan we arrived (fake: what tc_asan_leave saved, NULL when new). */
static inline void tc_asan_arrive(void *fake)
{
#ifdef TC_ASAN
	__sanitizer_finish_switch_fiber(fake, NULL, NULL);
#else
	(void)fake;
#endif
}

/* First statement of every entry function. */
static inline void tc_started(void)
{
	tc_asan_arrive(NULL);
}

/* nu__ctx_switch, or (swap) the runtime's inline nu__ctx_swap, with the
 * sanitizer bookkeeping around it. */
static void *tc_switch_by(tctx *from, tctx *to, void *arg, int swap)
{
	void *fake = NULL;
	tc_asan_leave(to, &fake, 0);
	void *r = swap ? nu__ctx_swap(&from->sp, to->sp, arg)
		       : nu__ctx_switch(&from->sp, to->sp, arg);
	tc_asan_arrive(fake);
	return r;
}

static void *tc_switch(tctx *from, tctx *to, void *arg)
{
	return tc_switch_by(from, to, arg, 0);
}

/* Leave a context for good. */
static _Noreturn void tc_exit(tctx *self, tctx *to, void *arg)
{
	tc_asan_leave(to, NULL, 1);
	nu__ctx_switch(&self->sp, to->sp, arg);
	abort();
}

/* Map a stack of `size` bytes plus a guard page and make a fresh context
 * on it.  Returns 0 or -1. */
static int tc_new(tctx *c, size_t size, void (*entry)(void *, void *),
		  void *p)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	memset(c, 0, sizeof(*c));
	c->maplen = size + page;
	c->map = mmap(NULL, c->maplen, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
		      -1, 0);
	if (c->map == MAP_FAILED) {
		c->map = NULL;
		return -1;
	}
	if (mprotect(c->map, page, PROT_NONE) != 0)
		return -1;
	c->lo = (char *)c->map + page;
	c->size = size;
	c->sp = nu__ctx_make((char *)c->lo + size, entry, p);
	return 0;
}

/* Unmap a context's stack (it must not be resumed again). */
static void tc_free(tctx *c)
{
	if (!c->map)
		return;
#ifdef TC_ASAN
	/* Frames that never returned leave poisoned shadow behind. */
	ASAN_UNPOISON_MEMORY_REGION(c->lo, c->size);
#endif
	munmap(c->map, c->maplen);
	c->map = NULL;
}

/* ---- entry receives (arg, p) ------------------------------------------ */

static struct {
	tctx c;
	void *arg, *p;
	int ran;
} s_ea;

static void ea_entry(void *arg, void *p)
{
	tc_started();
	s_ea.arg = arg;
	s_ea.p = p;
	s_ea.ran++;
	tc_exit(&s_ea.c, &t_main, TC_DONE);
}

static void test_entry_args(void)
{
	tc_main_init();
	CU_ASSERT_FATAL(tc_new(&s_ea.c, 64 * 1024, ea_entry, &s_ea) == 0);
	void *r = tc_switch(&t_main, &s_ea.c, (void *)(uintptr_t)0x123456789abcdef0);
	CU_ASSERT_PTR_EQUAL(r, TC_DONE);
	CU_ASSERT_EQUAL(s_ea.ran, 1);
	CU_ASSERT_PTR_EQUAL(s_ea.arg, (void *)(uintptr_t)0x123456789abcdef0);
	CU_ASSERT_PTR_EQUAL(s_ea.p, &s_ea);
	tc_free(&s_ea.c);
}

/* ---- ping-pong: main -> A -> B -> main, and main -> B -> main --------- */

static struct {
	tctx a, b;
	unsigned rounds_a, rounds_b;
} s_pp;

/* A forwards v*3+1 to B, or passes STOP on and leaves. */
static void pp_a(void *arg, void *p)
{
	tc_started();
	CU_ASSERT_PTR_EQUAL(p, &s_pp.a);
	void *v = arg;
	for (;;) {
		if (v == TC_STOP)
			tc_exit(&s_pp.a, &s_pp.b, TC_STOP);
		s_pp.rounds_a++;
		v = tc_switch(&s_pp.a, &s_pp.b, (void *)((uintptr_t)v * 3 + 1));
	}
}

/* B answers main with v+7, or DONE on STOP. */
static void pp_b(void *arg, void *p)
{
	tc_started();
	CU_ASSERT_PTR_EQUAL(p, &s_pp.b);
	void *v = arg;
	for (;;) {
		if (v == TC_STOP)
			tc_exit(&s_pp.b, &t_main, TC_DONE);
		s_pp.rounds_b++;
		v = tc_switch(&s_pp.b, &t_main, (void *)((uintptr_t)v + 7));
	}
}

static void test_pingpong(void)
{
	const unsigned n = 10000;
	unsigned bad = 0, via_a = 0;

	tc_main_init();
	memset(&s_pp, 0, sizeof(s_pp));
	CU_ASSERT_FATAL(tc_new(&s_pp.a, 64 * 1024, pp_a, &s_pp.a) == 0);
	CU_ASSERT_FATAL(tc_new(&s_pp.b, 64 * 1024, pp_b, &s_pp.b) == 0);
	/* B has not run yet: the first round has to go through A. */
	for (unsigned i = 0; i < n; i++) {
		uintptr_t v = (uintptr_t)i * 0x100000001u + 0x10;
		int through_a = i < 2 || i % 3 != 0;
		void *r = tc_switch(&t_main, through_a ? &s_pp.a : &s_pp.b,
				    (void *)v);
		uintptr_t want = through_a ? v * 3 + 1 + 7 : v + 7;
		bad += (uintptr_t)r != want;
		via_a += through_a;
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(s_pp.rounds_a, via_a);
	CU_ASSERT_EQUAL(s_pp.rounds_b, n);
	CU_ASSERT_PTR_EQUAL(tc_switch(&t_main, &s_pp.a, TC_STOP), TC_DONE);
	tc_free(&s_pp.a);
	tc_free(&s_pp.b);
}

/* ---- nu__ctx_swap, the runtime's switch, mixed with nu__ctx_switch ---- */

static void *tc_swap(tctx *from, tctx *to, void *arg)
{
	return tc_switch_by(from, to, arg, 1);
}

static struct {
	tctx c;
	unsigned rounds, bad;
} s_sw;

/* Twelve values, more than the callee-saved registers, kept live across
 * every switch and checked after it: on x86_64 nu__ctx_swap saves only
 * rbp, so these survive only if the compiler keeps them as the asm's
 * clobbers tell it to. */
__attribute__((noinline)) static uint64_t sw_mix(uint64_t x)
{
	__asm__ volatile("" : "+r"(x));
	return x * 0x9e3779b97f4a7c15u + 1;
}

static void sw_entry(void *arg, void *p)
{
	tc_started();
	(void)p;
	uint64_t v[12], w = (uintptr_t)arg;
	for (;;) {
		for (int k = 0; k < 12; k++)
			v[k] = w = sw_mix(w);
		uint64_t a0 = v[0], a1 = v[1], a2 = v[2], a3 = v[3], a4 = v[4],
			 a5 = v[5], a6 = v[6], a7 = v[7], a8 = v[8], a9 = v[9],
			 a10 = v[10], a11 = v[11];
		w = (uintptr_t)tc_swap(&s_sw.c, &t_main,
				       (void *)(uintptr_t)(a0 ^ a11));
		if (w == (uintptr_t)TC_STOP)
			tc_exit(&s_sw.c, &t_main, TC_DONE);
		s_sw.bad += a0 != v[0] || a1 != v[1] || a2 != v[2] ||
			    a3 != v[3] || a4 != v[4] || a5 != v[5] ||
			    a6 != v[6] || a7 != v[7] || a8 != v[8] ||
			    a9 != v[9] || a10 != v[10] || a11 != v[11];
		s_sw.rounds++;
	}
}

/* The context always leaves with nu__ctx_swap; main comes back into it
 * with nu__ctx_switch or nu__ctx_swap in turn, so each kind of saved frame
 * is resumed by each kind of switch. Main's own live values are checked
 * the same way. */
static void test_swap_mixed(void)
{
	const unsigned n = 20000;
	unsigned bad = 0;

	tc_main_init();
	memset(&s_sw, 0, sizeof(s_sw));
	CU_ASSERT_FATAL(tc_new(&s_sw.c, 64 * 1024, sw_entry, NULL) == 0);
	uint64_t w = 1, m0 = sw_mix(7), m1 = sw_mix(m0), m2 = sw_mix(m1),
		 m3 = sw_mix(m2), m4 = sw_mix(m3), m5 = sw_mix(m4);
	for (unsigned i = 0; i < n; i++) {
		uint64_t want = 0, x = w;
		for (int k = 0; k < 12; k++) {
			x = sw_mix(x);
			want = k == 0 ? x : k == 11 ? want ^ x : want;
		}
		void *arg = (void *)(uintptr_t)w;
		void *r = i % 2 ? tc_swap(&t_main, &s_sw.c, arg)
				: tc_switch(&t_main, &s_sw.c, arg);
		bad += (uintptr_t)r != want;
		w = sw_mix(w + i);
		if (w == (uintptr_t)TC_STOP)
			w++;
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(m0, sw_mix(7));
	CU_ASSERT_EQUAL(m5, sw_mix(sw_mix(sw_mix(sw_mix(sw_mix(m0))))));
	CU_ASSERT_EQUAL(m1 ^ m2 ^ m3 ^ m4,
			sw_mix(m0) ^ sw_mix(sw_mix(m0)) ^
				sw_mix(sw_mix(sw_mix(m0))) ^
				sw_mix(sw_mix(sw_mix(sw_mix(m0)))));
	CU_ASSERT_PTR_EQUAL(tc_swap(&t_main, &s_sw.c, TC_STOP), TC_DONE);
	CU_ASSERT_EQUAL(s_sw.rounds, n - 1);
	CU_ASSERT_EQUAL(s_sw.bad, 0);
	tc_free(&s_sw.c);
}

/* ---- callee-saved registers, checked from assembly -------------------- */

/* tc_regs_switch(save, to, arg, in, out): load in[] into every callee-saved
 * register, call nu__ctx_switch(save, to, arg), store the registers to out[]
 * once it returns, restore the caller's registers and return its result. */
#if defined(__x86_64__)
#define TC_NREGS 6	/* rbx rbp r12 r13 r14 r15 */
#define TC_FRAME 32	/* bytes nu__ctx_make writes */
#define TC_RESUME_SLOT 1	/* word of that frame holding the resume pc */
__asm__(
	"	.pushsection .text\n"
	"	.globl	tc_regs_switch\n"
	"	.hidden	tc_regs_switch\n"
	"	.type	tc_regs_switch, @function\n"
	"tc_regs_switch:\n"
	"	pushq	%rbp\n"
	"	pushq	%rbx\n"
	"	pushq	%r12\n"
	"	pushq	%r13\n"
	"	pushq	%r14\n"
	"	pushq	%r15\n"
	"	pushq	%r8\n"		/* 7 pushes: rsp is 16-aligned */
	"	movq	0(%rcx), %rbx\n"
	"	movq	8(%rcx), %rbp\n"
	"	movq	16(%rcx), %r12\n"
	"	movq	24(%rcx), %r13\n"
	"	movq	32(%rcx), %r14\n"
	"	movq	40(%rcx), %r15\n"
	"	call	nu__ctx_switch\n"
	"	popq	%r8\n"
	"	movq	%rbx, 0(%r8)\n"
	"	movq	%rbp, 8(%r8)\n"
	"	movq	%r12, 16(%r8)\n"
	"	movq	%r13, 24(%r8)\n"
	"	movq	%r14, 32(%r8)\n"
	"	movq	%r15, 40(%r8)\n"
	"	popq	%r15\n"
	"	popq	%r14\n"
	"	popq	%r13\n"
	"	popq	%r12\n"
	"	popq	%rbx\n"
	"	popq	%rbp\n"
	"	ret\n"
	"	.size	tc_regs_switch, .-tc_regs_switch\n"
	"	.popsection\n");
#elif defined(__aarch64__)
#define TC_NREGS 19	/* x19-x28, d8-d15, x29 */
#define TC_FRAME 160
#define TC_RESUME_SLOT 11
__asm__(
	"	.pushsection .text\n"
	"	.globl	tc_regs_switch\n"
	"	.hidden	tc_regs_switch\n"
	"	.type	tc_regs_switch, %function\n"
	"tc_regs_switch:\n"
	"	stp	x29, x30, [sp, #-176]!\n"
	"	mov	x29, sp\n"
	"	stp	x19, x20, [sp, #16]\n"
	"	stp	x21, x22, [sp, #32]\n"
	"	stp	x23, x24, [sp, #48]\n"
	"	stp	x25, x26, [sp, #64]\n"
	"	stp	x27, x28, [sp, #80]\n"
	"	stp	d8, d9, [sp, #96]\n"
	"	stp	d10, d11, [sp, #112]\n"
	"	stp	d12, d13, [sp, #128]\n"
	"	stp	d14, d15, [sp, #144]\n"
	"	str	x4, [sp, #160]\n"
	"	ldp	x19, x20, [x3, #0]\n"
	"	ldp	x21, x22, [x3, #16]\n"
	"	ldp	x23, x24, [x3, #32]\n"
	"	ldp	x25, x26, [x3, #48]\n"
	"	ldp	x27, x28, [x3, #64]\n"
	"	ldp	d8, d9, [x3, #80]\n"
	"	ldp	d10, d11, [x3, #96]\n"
	"	ldp	d12, d13, [x3, #112]\n"
	"	ldp	d14, d15, [x3, #128]\n"
	"	ldr	x29, [x3, #144]\n"
	"	bl	nu__ctx_switch\n"
	"	ldr	x4, [sp, #160]\n"
	"	stp	x19, x20, [x4, #0]\n"
	"	stp	x21, x22, [x4, #16]\n"
	"	stp	x23, x24, [x4, #32]\n"
	"	stp	x25, x26, [x4, #48]\n"
	"	stp	x27, x28, [x4, #64]\n"
	"	stp	d8, d9, [x4, #80]\n"
	"	stp	d10, d11, [x4, #96]\n"
	"	stp	d12, d13, [x4, #112]\n"
	"	stp	d14, d15, [x4, #128]\n"
	"	str	x29, [x4, #144]\n"
	"	ldp	x19, x20, [sp, #16]\n"
	"	ldp	x21, x22, [sp, #32]\n"
	"	ldp	x23, x24, [sp, #48]\n"
	"	ldp	x25, x26, [sp, #64]\n"
	"	ldp	x27, x28, [sp, #80]\n"
	"	ldp	d8, d9, [sp, #96]\n"
	"	ldp	d10, d11, [sp, #112]\n"
	"	ldp	d12, d13, [sp, #128]\n"
	"	ldp	d14, d15, [sp, #144]\n"
	"	ldp	x29, x30, [sp], #176\n"
	"	ret\n"
	"	.size	tc_regs_switch, .-tc_regs_switch\n"
	"	.popsection\n");
#else
#error "test_ctx.c: no register check for this CPU"
#endif

__attribute__((visibility("hidden")))
void *tc_regs_switch(void **save, void *to, void *arg, const uint64_t *in,
		     uint64_t *out);

/* One switch through tc_regs_switch with registers derived from seed;
 * counts registers that came back changed into *bad. */
static void *tc_regs_round(tctx *from, tctx *to, void *arg, uint64_t seed,
			   unsigned *bad)
{
	uint64_t in[TC_NREGS], out[TC_NREGS];
	void *fake = NULL;

	for (int k = 0; k < TC_NREGS; k++) {
		in[k] = seed * 0x9e3779b97f4a7c15u + (uint64_t)k * 0x0101010101010101u + 1;
		out[k] = 0;
	}
	tc_asan_leave(to, &fake, 0);
	void *r = tc_regs_switch(&from->sp, to->sp, arg, in, out);
	tc_asan_arrive(fake);
	for (int k = 0; k < TC_NREGS; k++)
		*bad += out[k] != in[k];
	return r;
}

static struct {
	tctx c;
	unsigned bad_ctx, rounds;
} s_rg;

static void rg_entry(void *arg, void *p)
{
	uint64_t seed = 1u << 20;

	tc_started();
	(void)p;
	while (arg != TC_STOP) {
		s_rg.rounds++;
		arg = tc_regs_round(&s_rg.c, &t_main,
				    (void *)((uintptr_t)arg ^ 0x5555), seed++,
				    &s_rg.bad_ctx);
	}
	tc_exit(&s_rg.c, &t_main, TC_DONE);
}

static void test_callee_saved(void)
{
	unsigned bad_main = 0, bad_ret = 0;
	const unsigned n = 1000;

	tc_main_init();
	memset(&s_rg, 0, sizeof(s_rg));
	CU_ASSERT_FATAL(tc_new(&s_rg.c, 64 * 1024, rg_entry, NULL) == 0);
	for (unsigned i = 0; i < n; i++) {
		void *r = tc_regs_round(&t_main, &s_rg.c, (void *)(uintptr_t)i,
					i + 7, &bad_main);
		bad_ret += (uintptr_t)r != (i ^ 0x5555);
	}
	void *r = tc_regs_round(&t_main, &s_rg.c, TC_STOP, 3, &bad_main);
	CU_ASSERT_PTR_EQUAL(r, TC_DONE);
	CU_ASSERT_EQUAL(bad_main, 0);
	CU_ASSERT_EQUAL(bad_ret, 0);
	CU_ASSERT_EQUAL(s_rg.bad_ctx, 0);
	CU_ASSERT_EQUAL(s_rg.rounds, n);
	tc_free(&s_rg.c);
}

/* ---- floating point: live values and the rounding mode --------------- */

static struct {
	tctx c;
	double q_up;		/* 1/3 rounded upward */
	unsigned mode_bad, value_bad, rounds;
} s_fp;

/* The thread's rounding mode, read and set straight from the control
 * registers (fenv.h would need libm): x86_64 sets MXCSR.RC and the x87
 * control word together, as fesetround does, and reads both back; aarch64
 * uses FPCR.RMode.  Modes: 0 nearest, 1 down, 2 up, 3 toward zero;
 * tc_getround returns -1 when x87 and SSE disagree. */
enum { TC_NEAREST, TC_DOWNWARD, TC_UPWARD, TC_TOWARDZERO };

static void tc_setround(unsigned mode)
{
#if defined(__x86_64__)
	unsigned mx = __builtin_ia32_stmxcsr();
	unsigned short cw;
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	cw = (unsigned short)((cw & ~0xc00u) | (mode << 10));
	__asm__ volatile("fldcw %0" : : "m"(cw) : "memory");
	__builtin_ia32_ldmxcsr((mx & ~0x6000u) | (mode << 13));
#else
	static const unsigned rmode[] = { 0, 2, 1, 3 };	/* RN RM RP RZ */
	uint64_t fpcr;
	__asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
	fpcr = (fpcr & ~(3ull << 22)) | ((uint64_t)rmode[mode & 3] << 22);
	__asm__ volatile("msr fpcr, %0" : : "r"(fpcr) : "memory");
#endif
}

static int tc_getround(void)
{
#if defined(__x86_64__)
	unsigned short cw;
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	unsigned sse = (__builtin_ia32_stmxcsr() >> 13) & 3;
	return sse == ((cw >> 10) & 3u) ? (int)sse : -1;
#else
	static const int mode[] = { TC_NEAREST, TC_UPWARD, TC_DOWNWARD,
				    TC_TOWARDZERO };
	uint64_t fpcr;
	__asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
	return mode[(fpcr >> 22) & 3];
#endif
}

static void fp_entry(void *arg, void *p)
{
	volatile double one = 1.0, three = 3.0;

	tc_started();
	(void)arg, (void)p;
	for (int i = 0; i < 100; i++) {
		s_fp.rounds++;
		s_fp.mode_bad += tc_getround() != TC_UPWARD;
		s_fp.value_bad += one / three != s_fp.q_up;
		/* Clobber the FP registers with work of our own. */
		double x = one;
		for (int k = 0; k < 50; k++)
			x = x / three + (double)k / 7.0;
		s_fp.value_bad += !(x > 0);
		tc_switch(&s_fp.c, &t_main, NULL);
	}
	tc_setround(TC_DOWNWARD);	/* shared with the thread: main sees it */
	tc_exit(&s_fp.c, &t_main, TC_DONE);
}

static void test_fp(void)
{
	volatile double one = 1.0, three = 3.0, seed = 1.25;
	unsigned bad = 0;

	tc_main_init();
	memset(&s_fp, 0, sizeof(s_fp));
	CU_ASSERT_FATAL(tc_new(&s_fp.c, 64 * 1024, fp_entry, NULL) == 0);
	double q_near = one / three;
	tc_setround(TC_UPWARD);
	CU_ASSERT(tc_getround() == TC_UPWARD);
	s_fp.q_up = one / three;
	CU_ASSERT(s_fp.q_up != q_near);

	/* Ten values live across every switch, so some sit in callee-saved
	 * FP registers on aarch64 and in spill slots on x86_64. */
	double v0 = seed / 3, v1 = seed / 5, v2 = seed / 7, v3 = seed / 11,
	       v4 = seed / 13, v5 = seed / 17, v6 = seed / 19, v7 = seed / 23,
	       v8 = seed / 29, v9 = seed / 31;
	volatile double keep[10] = { v0, v1, v2, v3, v4, v5, v6, v7, v8, v9 };
	void *r = NULL;
	for (int i = 0; i < 101 && r != TC_DONE; i++) {
		r = tc_switch(&t_main, &s_fp.c, NULL);
		if (r != TC_DONE) {
			bad += tc_getround() != TC_UPWARD;
			bad += one / three != s_fp.q_up;
		}
		bad += v0 != keep[0] || v1 != keep[1] || v2 != keep[2] ||
		       v3 != keep[3] || v4 != keep[4] || v5 != keep[5] ||
		       v6 != keep[6] || v7 != keep[7] || v8 != keep[8] ||
		       v9 != keep[9];
	}
	CU_ASSERT_PTR_EQUAL(r, TC_DONE);
	CU_ASSERT(tc_getround() == TC_DOWNWARD); /* per thread, not per context */
	tc_setround(TC_NEAREST);
	CU_ASSERT(tc_getround() == TC_NEAREST);
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(s_fp.rounds, 100);
	CU_ASSERT_EQUAL(s_fp.mode_bad, 0);
	CU_ASSERT_EQUAL(s_fp.value_bad, 0);
	tc_free(&s_fp.c);
}

/* ---- deep recursion, suspended at the bottom -------------------------- */

#define DEEP_N 50000u

static struct {
	tctx c;
	uintptr_t lowest;	/* address of the deepest frame's local */
} s_dp;

__attribute__((noinline)) static uint64_t deep(unsigned n)
{
	volatile unsigned char pad[40];
	uint64_t r;

	pad[0] = (unsigned char)n;
	pad[39] = (unsigned char)(n >> 8);
	if (n == 0) {
		s_dp.lowest = (uintptr_t)pad;
		tc_switch(&s_dp.c, &t_main, NULL);	/* park at the bottom */
		r = 1;
	} else {
		r = deep(n - 1) + n;
	}
	return r + pad[0] + pad[39] - (unsigned char)n -
	       (unsigned char)(n >> 8);
}

static void dp_entry(void *arg, void *p)
{
	tc_started();
	(void)arg, (void)p;
	uint64_t r = deep(DEEP_N);
	tc_exit(&s_dp.c, &t_main, (void *)(uintptr_t)r);
}

/* Churn the main stack while the context is parked. */
__attribute__((noinline)) static unsigned churn(unsigned n)
{
	volatile char buf[256];
	memset((char *)buf, (int)n, sizeof(buf));
	return n ? churn(n - 1) + (unsigned char)buf[n % 256] : 0;
}

static void test_deep_recursion(void)
{
	const size_t size = 32u << 20;

	tc_main_init();
	memset(&s_dp, 0, sizeof(s_dp));
	CU_ASSERT_FATAL(tc_new(&s_dp.c, size, dp_entry, NULL) == 0);
	CU_ASSERT_PTR_NULL(tc_switch(&t_main, &s_dp.c, NULL));
	uintptr_t used = (uintptr_t)s_dp.c.lo + size - s_dp.lowest;
	CU_ASSERT(used > (size_t)DEEP_N * 32);	/* it really went deep */
	CU_ASSERT(used < size);
	CU_ASSERT(churn(200) > 0);
	void *r = tc_switch(&t_main, &s_dp.c, NULL);
	uint64_t want = 1 + (uint64_t)DEEP_N * (DEEP_N + 1) / 2;
	CU_ASSERT_EQUAL((uintptr_t)r, (uintptr_t)want);
	tc_free(&s_dp.c);
}

/* ---- a million switches ----------------------------------------------- */

static struct {
	tctx c;
	unsigned long n;
} s_mc;

static void mc_entry(void *arg, void *p)
{
	tc_started();
	(void)p;
	while (arg != TC_STOP) {
		s_mc.n++;
		arg = tc_switch(&s_mc.c, &t_main, (void *)((uintptr_t)arg + 1));
	}
	tc_exit(&s_mc.c, &t_main, TC_DONE);
}

static void test_million(void)
{
	const unsigned long rounds = 500000;	/* two switches each */
	unsigned long bad = 0;

	tc_main_init();
	memset(&s_mc, 0, sizeof(s_mc));
	CU_ASSERT_FATAL(tc_new(&s_mc.c, 64 * 1024, mc_entry, NULL) == 0);
	for (unsigned long i = 0; i < rounds; i++)
		bad += (uintptr_t)tc_switch(&t_main, &s_mc.c, (void *)(i << 4)) !=
		       (i << 4) + 1;
	CU_ASSERT_PTR_EQUAL(tc_switch(&t_main, &s_mc.c, TC_STOP), TC_DONE);
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(s_mc.n, rounds);
	tc_free(&s_mc.c);
}

/* ---- stack alignment at entry ----------------------------------------- */

/* tc_probe_entry records the stack pointer exactly as the trampoline left
 * it at entry, then tail-jumps to tc_align_entry with (arg, p) intact. */
__attribute__((visibility("hidden"), used)) uintptr_t tc_probe_sp;
__attribute__((visibility("hidden"))) void tc_probe_entry(void *, void *);
__attribute__((visibility("hidden"), used)) void tc_align_entry(void *, void *);
#if defined(__x86_64__)
__asm__(
	"	.pushsection .text\n"
	"	.globl	tc_probe_entry\n"
	"	.hidden	tc_probe_entry\n"
	"	.type	tc_probe_entry, @function\n"
	"tc_probe_entry:\n"
	"	movq	%rsp, tc_probe_sp(%rip)\n"
	"	jmp	tc_align_entry\n"
	"	.size	tc_probe_entry, .-tc_probe_entry\n"
	"	.popsection\n");
#define TC_ENTRY_SP_OK(sp) (((sp) + 8) % 16 == 0)	/* SysV: rsp+8 */
#else
__asm__(
	"	.pushsection .text\n"
	"	.globl	tc_probe_entry\n"
	"	.hidden	tc_probe_entry\n"
	"	.type	tc_probe_entry, %function\n"
	"tc_probe_entry:\n"
	"	mov	x9, sp\n"
	"	adrp	x10, tc_probe_sp\n"
	"	str	x9, [x10, :lo12:tc_probe_sp]\n"
	"	b	tc_align_entry\n"
	"	.size	tc_probe_entry, .-tc_probe_entry\n"
	"	.popsection\n");
#define TC_ENTRY_SP_OK(sp) ((sp) % 16 == 0)		/* AAPCS64: sp */
#endif

static struct {
	tctx c;
	void *arg, *p;
	uintptr_t frame, callee_frame;
	char text[64];
} s_al;

__attribute__((noinline)) static uintptr_t frame_of_callee(void)
{
	return (uintptr_t)__builtin_frame_address(0);
}

/* Referenced only from tc_probe_entry's asm, hence `used` (LTO). */
__attribute__((used)) void tc_align_entry(void *arg, void *p)
{
	volatile double d = 2.5;
	_Alignas(16) volatile __int128 wide = 1;

	tc_started();
	s_al.arg = arg;
	s_al.p = p;
	s_al.frame = (uintptr_t)__builtin_frame_address(0);
	s_al.callee_frame = frame_of_callee();
	wide = wide * 3;
	/* Variadic double passing spills vector registers with aligned
	 * stores in the callee: it faults on a misaligned stack. */
	snprintf(s_al.text, sizeof(s_al.text), "%.2f %d", d, (int)wide);
	tc_exit(&s_al.c, &t_main, TC_DONE);
}

static void test_alignment(void)
{
	tc_main_init();
	memset(&s_al, 0, sizeof(s_al));
	tc_probe_sp = 1;
	CU_ASSERT_FATAL(tc_new(&s_al.c, 64 * 1024, tc_probe_entry, &s_al) == 0);
	void *r = tc_switch(&t_main, &s_al.c, (void *)(uintptr_t)42);
	CU_ASSERT_PTR_EQUAL(r, TC_DONE);
	CU_ASSERT(TC_ENTRY_SP_OK(tc_probe_sp));
	CU_ASSERT_EQUAL(s_al.frame % 16, 0);
	CU_ASSERT_EQUAL(s_al.callee_frame % 16, 0);
	CU_ASSERT_PTR_EQUAL(s_al.arg, (void *)(uintptr_t)42);
	CU_ASSERT_PTR_EQUAL(s_al.p, &s_al);
	CU_ASSERT(strcmp(s_al.text, "2.50 3") == 0);
	tc_free(&s_al.c);
}

/* ---- nu__ctx_make: ragged top, nothing written at or above it ---------- */

static struct {
	tctx c;
	void *arg;
} s_rt;

static void rt_entry(void *arg, void *p)
{
	tc_started();
	(void)p;
	s_rt.arg = arg;
	tc_exit(&s_rt.c, &t_main, TC_DONE);
}

static void test_ragged_top(void)
{
	const size_t size = 64 * 1024, slack = 4096;

	tc_main_init();
	CU_ASSERT_FATAL(tc_new(&s_rt.c, size, rt_entry, NULL) == 0);
	unsigned char *lo = s_rt.c.lo, *end = lo + size;
	memset(lo, 0xa5, size);
	unsigned char *top = end - slack + 9;		/* not 16-aligned */
	unsigned char *atop = (unsigned char *)((uintptr_t)top & ~(uintptr_t)15);
	s_rt.c.sp = nu__ctx_make(top, rt_entry, NULL);
	CU_ASSERT_PTR_EQUAL(s_rt.c.sp, atop - TC_FRAME);	/* the ctx.h layout */
	s_rt.c.size = (size_t)(atop - lo);	/* for ASan: usable part */
	void *r = tc_switch(&t_main, &s_rt.c, (void *)(uintptr_t)77);
	CU_ASSERT_PTR_EQUAL(r, TC_DONE);
	CU_ASSERT_PTR_EQUAL(s_rt.arg, (void *)(uintptr_t)77);
	size_t touched = 0;
	for (unsigned char *q = atop; q < end; q++)
		touched += *q != 0xa5;
	CU_ASSERT_EQUAL(touched, 0);
	s_rt.c.size = size;
	tc_free(&s_rt.c);
}

/* ---- unwinding from inside a context stops at the trampoline --------- */

static struct {
	tctx c;
	void *pcs[32];
	int n;
} s_bt;

__attribute__((noinline)) static void bt_collect(void)
{
	s_bt.n = backtrace(s_bt.pcs, 32);
	__asm__ volatile("" : : : "memory");	/* not a tail call */
}

static void bt_entry(void *arg, void *p)
{
	tc_started();
	(void)arg, (void)p;
	bt_collect();
	tc_exit(&s_bt.c, &t_main, TC_DONE);
}

static void test_unwind_stops(void)
{
	tc_main_init();
	memset(&s_bt, 0, sizeof(s_bt));
	CU_ASSERT_FATAL(tc_new(&s_bt.c, 64 * 1024, bt_entry, NULL) == 0);
	/* Plant plausible return addresses above the top, so an unwinder that
	 * does not stop at the trampoline walks on instead of finding 0. */
	void **end = (void **)((char *)s_bt.c.lo + s_bt.c.size);
	for (int k = 1; k <= 8; k++)
		end[-k] = (void *)((uintptr_t)bt_collect + 4);
	s_bt.c.sp = nu__ctx_make(end - 8, bt_entry, NULL);
	/* The fresh frame's resume address is the trampoline itself. */
	uintptr_t tramp = (uintptr_t)((void **)s_bt.c.sp)[TC_RESUME_SLOT];
	CU_ASSERT_PTR_EQUAL(tc_switch(&t_main, &s_bt.c, NULL), TC_DONE);
	/* bt_collect, bt_entry, the trampoline; then the unwinder must stop
	 * (an unwinder that ran on would add garbage frames or crash). */
	CU_ASSERT(s_bt.n >= 3 && s_bt.n <= 4);
	uintptr_t last = s_bt.n > 0 ? (uintptr_t)s_bt.pcs[s_bt.n - 1] : 0;
	CU_ASSERT(last > tramp && last <= tramp + 16);
	tc_free(&s_bt.c);
}

/* ---- an entry that returns traps --------------------------------------- */

static tctx s_rte;

static void returning_entry(void *arg, void *p)
{
	tc_started();
	(void)arg, (void)p;
}

/* The child reports the trap by exit status, so neither a core file nor
 * qemu's "uncaught target signal" notice is produced. */
static void trap_handler(int sig)
{
	_exit(100 + sig);
}

static void test_entry_return_traps(void)
{
	fflush(NULL);
	pid_t pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = trap_handler;
		sigaction(SIGILL, &sa, NULL);
		sigaction(SIGTRAP, &sa, NULL);
		if (tc_new(&s_rte, 64 * 1024, returning_entry, NULL) != 0)
			_exit(3);
		tc_main_init();
		tc_asan_leave(&s_rte, NULL, 1);
		nu__ctx_switch(&t_main.sp, s_rte.sp, NULL);
		_exit(4);	/* unreachable: the trampoline traps */
	}
	int st = 0;
	CU_ASSERT_FATAL(waitpid(pid, &st, 0) == pid);
	CU_ASSERT(WIFEXITED(st));
#if defined(__x86_64__)
	CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 100 + SIGILL);	/* ud2 */
#else
	CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 100 + SIGTRAP);	/* brk */
#endif
}

static CU_TestInfo tests[] = {
	{ "entry gets arg and p", test_entry_args },
	{ "ping-pong main/A/B", test_pingpong },
	{ "callee-saved registers", test_callee_saved },
	{ "nu__ctx_swap mixed with nu__ctx_switch", test_swap_mixed },
	{ "fp values and rounding mode", test_fp },
	{ "deep recursion", test_deep_recursion },
	{ "a million switches", test_million },
	{ "stack alignment at entry", test_alignment },
	{ "ragged stack top", test_ragged_top },
	{ "unwinding stops at trampoline", test_unwind_stops },
	{ "returning entry traps", test_entry_return_traps },
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("ctx", tests)
