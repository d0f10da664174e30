/* ctx.h — private to nuproc: the machine context switch (arch/<cpu>/switch.S).
 *
 * A context is nothing but a stack pointer.  Everything else a suspended
 * context needs lives on its own stack: what the switch itself saves, in a
 * frame it pushes before it leaves and pops when it comes back, and, on
 * x86_64, whatever callee-saved registers its caller keeps live across
 * the switch, which the caller's compiler saves in its own frame:
 *
 *   x86_64 (2 words, the saved sp points at rbp):
 *
 *       higher addresses
 *       [sp+8] resume address    (pushed by nu__ctx_swap or the `call`)
 *       [sp+0] rbp               <- saved sp
 *
 *   aarch64 (160 bytes, 16-aligned, the saved sp points at x19):
 *
 *       [sp+  0] x19 x20   [sp+ 16] x21 x22   [sp+ 32] x23 x24
 *       [sp+ 48] x25 x26   [sp+ 64] x27 x28   [sp+ 80] x29 x30(resume address)
 *       [sp+ 96] d8  d9    [sp+112] d10 d11   [sp+128] d12 d13
 *       [sp+144] d14 d15   [sp+160] caller's frame
 *
 * Only what the ABI makes callee-saved is kept (x86_64: rbx rbp r12-r15;
 * aarch64: x19-x29, lr and the low halves of v8-v15).  Everything else is
 * already dead across a call as far as the compiler is concerned, because
 * nu__ctx_switch is an ordinary out-of-line call to it.  On x86_64 the
 * runtime's own switch, nu__ctx_swap below, saves only rbp in the frame
 * and declares rbx and r12-r15 clobbered, so the compiler saves those it
 * needs: most are saved anyway by the prologue of the function around the
 * switch (for its own caller), and saving all five again in the frame
 * cost a ring hop a stack line (see nu__ctx_swap).
 *
 * Design choices:
 *
 * - Resume with a pop and an indirect jump, never `ret`.  A `ret` is
 *   predicted from the return-stack buffer, which holds the return address
 *   of the call made on the *old* stack, so every switch would mispredict
 *   (about 10 ns against 2 ns on the reference machine, DESIGN §3).  An
 *   indirect jump goes through the branch-target predictor instead.
 *   Consequence: this code is incompatible with hardware return-address
 *   protection (x86 CET shadow stacks, arm64 GCS) and with arm64 BTI /
 *   x86 IBT on the resume jump.  The .S files deliberately emit no
 *   .note.gnu.property, so the linker drops those markings from any binary
 *   that links them and the loader never enables the features for it.
 *
 * - No floating-point control state is switched: not MXCSR, not the x87
 *   control word, not FPCR/FPSR.  Rounding mode, exception masks and sticky
 *   flags are per *thread*: a context that calls fesetround() changes it
 *   for every context on that scheduler thread, and a context that migrates
 *   to another thread sees that thread's mode.  Saving it per switch costs
 *   little, but restoring it with ldmxcsr costs ~70 ns whenever the sticky
 *   status bits differ (DESIGN §3), which is most of the time.
 *
 * - The argument travels in the return-value register.  nu__ctx_switch
 *   puts `arg` in rax / x0 just before it jumps, so the resumed context
 *   sees it as the return value of its own earlier nu__ctx_switch call.
 *
 * - A fresh context has no pending nu__ctx_switch call to return from, so
 *   nu__ctx_make builds a fake saved frame whose resume address is a small
 *   trampoline and which carries entry and p (x86_64: two words above
 *   the frame; aarch64: callee-saved slots).  The first
 *   switch "returns" into the trampoline with arg in rax / x0; the
 *   trampoline moves (arg, p) into the first two argument registers and
 *   calls entry on a stack aligned as the ABI requires.  The trampoline's
 *   unwind info marks the return address undefined, so debuggers and
 *   unwinders stop there cleanly, and the frame pointer slot is zero for
 *   frame-pointer walkers.  If entry returns, the trampoline traps
 *   (ud2 / brk): there is nothing sensible to return to.
 *
 * Both functions are hidden symbols of the static library and may be
 * called on any thread; they touch no memory but the two stacks and
 * *save_sp.  Sanitizer and Valgrind annotations (DESIGN §3) belong to the
 * callers, which know the stacks' bounds: __sanitizer_start_switch_fiber
 * just before nu__ctx_switch, __sanitizer_finish_switch_fiber just after
 * it returns and first thing in an entry function (tests/test_ctx.c does
 * exactly this).
 */
#ifndef NU_ARCH_CTX_H
#define NU_ARCH_CTX_H

#include <stdint.h>

/*
 * Returns after a switch.
 *
 * The runtime's own returns after a switch are predicted (nu__ctx_swap
 * below), up to the public function that parked: its return goes to
 * whichever place in the caller's code called it, and the return-stack
 * buffer holds the place of the context that switched to this one. Two
 * processes that receive from different places (a ping-pong's two loops,
 * a client and its server) mispredict that return at every switch:
 * an ad hoc ping-pong whose two sides ran one loop function took 27 ns a
 * round trip, against 40 ns for the usual two loops, with the same work.
 * So the receives (nu_receive, nu_receive_select) are stubs in
 * arch/<cpu>/resumable.S (NU_RESUMABLE) that call their C bodies, which
 * return the public result in the low 32 bits and NU__SWITCHED when they
 * switched out; the stub then returns with an indirect jump, predicted
 * from the branch history, instead of a `ret`. Without a switch, a `ret`
 * keeps the buffer in step. A missed switch costs a mispredicted return;
 * a switch reported that did not happen, mispredicted returns up the
 * caller's chain: nothing else, the target is the same either way.
 */
#define NU__SWITCHED ((uint64_t)1 << 32)

/* Save the callee-saved registers and stack pointer of the running context
 * into *save_sp, switch to the context whose saved stack pointer is to_sp,
 * and make that context's pending nu__ctx_switch call (or its entry
 * function, for a fresh context) see `arg` as the return value.  Returns the
 * arg passed by whoever later switches back to us.  to_sp must come from
 * nu__ctx_make or from a *save_sp written by an earlier switch, and may be
 * resumed once only (a saved sp is consumed by the switch into it). */
__attribute__((visibility("hidden")))
void *nu__ctx_switch(void **save_sp, void *to_sp, void *arg);

/* Prepare a fresh context on a stack whose highest usable address is
 * stack_top (aligned down to 16 here; nothing at or above it is written).
 * Writes one frame (32 bytes on x86_64, 160 on aarch64) just below it and
 * returns the sp to pass to nu__ctx_switch.  The first switch into it calls
 * entry(arg, p), where arg is the value passed by that switch and p the
 * value given here.  entry must never return; if it does, the trampoline
 * traps (ud2 / brk #0). */
__attribute__((visibility("hidden")))
void *nu__ctx_make(void *stack_top, void (*entry)(void *arg, void *p), void *p);

/*
 * nu__ctx_swap: the same switch, entered with a jump instead of a call.
 *
 * A `call` into nu__ctx_switch pushes an entry on the CPU's return-stack
 * predictor that no `ret` ever pops (the switch resumes with a jump), so
 * after each switch every later `ret` up the resumed context's call chain
 * is predicted one entry off and mispredicts. In the runtime that made a
 * yield cost ~30 ns against a 2.5 ns bare switch. nu__ctx_swap pushes the
 * resume address itself and jumps, so the predictor stays balanced: the
 * entries it holds come from the contexts' own calls, which are the same
 * runtime functions on every side.
 *
 * The frame it leaves is exactly the one a call would have left, so the
 * switch's CFI holds and gdb unwinds from inside it to the label below.
 * Every register the ABI does not preserve across a call is declared
 * clobbered, as a call would; on x86_64 the asm first steps over the
 * 128-byte red zone the compiler may be using below rsp.
 *
 * On x86_64 it jumps to nu__ctx_jump, the switch without the ABI's
 * callee-saved registers but rbp (the frame pointer, which an asm may not
 * clobber), and declares rbx and r12-r15 clobbered as well: the function
 * around the switch saves in its prologue those it uses, for its own
 * caller, so the frame saving all five again was mostly a second copy.
 * Five words less per parked stack, and pingpong 681 -> 677
 * instructions a round trip (the prologue saves one register more).
 * Ring 100k went 9.52 -> 10.17 M msg/s with a first draft (alternating
 * runs, medians of 5), but showed no change in a later run as landed
 * (9.27 -> 9.17, 9 rounds): that figure moves with the machine's state.
 */
#if defined(__x86_64__)
static inline void *nu__ctx_swap(void **save_sp, void *to_sp, void *arg)
{
	register void **rdi __asm__("rdi") = save_sp;
	register void *rsi __asm__("rsi") = to_sp;
	register void *rdx __asm__("rdx") = arg;
	void *ret;
	__asm__ volatile(
		"leaq -128(%%rsp), %%rsp\n\t"
		"leaq 1f(%%rip), %%rax\n\t"
		"pushq %%rax\n\t"
		"jmp nu__ctx_jump\n"
		"1:\n\t"
		"leaq 128(%%rsp), %%rsp"
		: "=a"(ret), "+D"(rdi), "+S"(rsi), "+d"(rdx)
		:
		: "rcx", "r8", "r9", "r10", "r11", "rbx", "r12", "r13", "r14",
		  "r15", "memory", "cc",
		  "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6",
		  "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13",
		  "xmm14", "xmm15",
#ifdef __AVX512F__
		  "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21",
		  "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27",
		  "xmm28", "xmm29", "xmm30", "xmm31",
#endif
		  "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)",
		  "st(7)");
	return ret;
}
#elif defined(__aarch64__)
static inline void *nu__ctx_swap(void **save_sp, void *to_sp, void *arg)
{
	register void *x0 __asm__("x0") = (void *)save_sp;
	register void *x1 __asm__("x1") = to_sp;
	register void *x2 __asm__("x2") = arg;
	__asm__ volatile(
		"adr x30, 1f\n\t"
		"b nu__ctx_switch\n"
		"1:"
		: "+r"(x0), "+r"(x1), "+r"(x2)
		:
		: "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11",
		  "x12", "x13", "x14", "x15", "x16", "x17", "x18", "x30",
		  "memory", "cc",
		  "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9",
		  "v10", "v11", "v12", "v13", "v14", "v15", "v16", "v17",
		  "v18", "v19", "v20", "v21", "v22", "v23", "v24", "v25",
		  "v26", "v27", "v28", "v29", "v30", "v31");
	return x0;
}
#endif

#endif
