/* switch.S — x86_64 (System V) context switch for nuproc; see arch/ctx.h.
 *
 * The saved frame is two words: the resume address and rbp below it (the
 * saved sp points at rbp). Two ways in:
 *
 * nu__ctx_jump(save_sp=rdi, to_sp=rsi, arg=rdx)
 *   entered with a jump, the resume address already pushed (nu__ctx_swap in
 *   ctx.h, which declares rbx and r12-r15 clobbered so that the compiler
 *   keeps what it needs of them): pushes rbp, stores rsp to *save_sp, loads
 *   to_sp, pops rbp and the other side's resume address into rcx, sets
 *   rax = arg and jumps to rcx. No `ret`: the return-stack buffer holds an
 *   address from the stack we just left, so a ret would mispredict on every
 *   switch.
 *
 * nu__ctx_switch(save_sp=rdi, to_sp=rsi, arg=rdx)
 *   an ordinary call that keeps the ABI (tests, and any C caller): pushes
 *   rbx r12-r15 itself, pushes its own resume label and jumps into
 *   nu__ctx_jump; resumed there, it pops them and returns. Either way the
 *   frame at the saved sp has the same shape, so a context saved by one
 *   may be resumed by the other.
 *
 * nu__ctx_make(stack_top=rdi, entry=rsi, p=rdx)
 *   writes, just below stack_top & ~15: p, entry, the trampoline as resume
 *   address and rbp = 0. The first switch pops rbp and the resume address;
 *   the trampoline pops entry and p, so rsp equals the aligned top and its
 *   call leaves rsp+8 ≡ 0 (mod 16) at entry, as the ABI wants.
 *
 * The CFI stays truthful after rsp moves to the other stack, because the
 * frame there has the same shape: gdb at any instruction unwinds into
 * whichever context that frame belongs to (in nu__ctx_switch, through its
 * resume label, whose CFI describes the registers it pushed).
 *
 * MXCSR and the x87 control word are deliberately not switched (ctx.h).
 * With -fcf-protection, entry points get endbr64 and the resume jump is
 * `notrack`; no GNU property note is emitted (shadow stacks cannot work
 * with pop+jmp), so the linker clears IBT/SHSTK on binaries using this.
 */
#ifdef __CET__
#define NU_ENDBR endbr64
#define NU_NOTRACK notrack
#else
#define NU_ENDBR
#define NU_NOTRACK
#endif

	.text
	.globl	nu__ctx_jump
	.hidden	nu__ctx_jump
	.type	nu__ctx_jump, @function
	.p2align 4
nu__ctx_jump:
	/* the state after a call: CFA = rsp + 8, resume address at CFA - 8 */
	.cfi_startproc
	pushq	%rbp
	.cfi_def_cfa_offset 16
	.cfi_offset %rbp, -16
	movq	%rsp, (%rdi)
	movq	%rsi, %rsp		/* now on the other stack, same frame shape */
	popq	%rbp
	.cfi_def_cfa_offset 8
	.cfi_restore %rbp
	popq	%rcx
	.cfi_def_cfa_offset 0
	.cfi_register %rip, %rcx
	movq	%rdx, %rax
	NU_NOTRACK jmp *%rcx
	.cfi_endproc
	.size	nu__ctx_jump, .-nu__ctx_jump

	.globl	nu__ctx_switch
	.hidden	nu__ctx_switch
	.type	nu__ctx_switch, @function
	.p2align 4
nu__ctx_switch:
	.cfi_startproc
	NU_ENDBR
	pushq	%rbx
	.cfi_def_cfa_offset 16
	.cfi_offset %rbx, -16
	pushq	%r12
	.cfi_def_cfa_offset 24
	.cfi_offset %r12, -24
	pushq	%r13
	.cfi_def_cfa_offset 32
	.cfi_offset %r13, -32
	pushq	%r14
	.cfi_def_cfa_offset 40
	.cfi_offset %r14, -40
	pushq	%r15
	.cfi_def_cfa_offset 48
	.cfi_offset %r15, -48
	leaq	1f(%rip), %rax
	pushq	%rax
	.cfi_def_cfa_offset 56
	jmp	nu__ctx_jump
1:	/* resumed: the pops of nu__ctx_jump took the resume address */
	.cfi_def_cfa_offset 48
	popq	%r15
	.cfi_def_cfa_offset 40
	.cfi_restore %r15
	popq	%r14
	.cfi_def_cfa_offset 32
	.cfi_restore %r14
	popq	%r13
	.cfi_def_cfa_offset 24
	.cfi_restore %r13
	popq	%r12
	.cfi_def_cfa_offset 16
	.cfi_restore %r12
	popq	%rbx
	.cfi_def_cfa_offset 8
	.cfi_restore %rbx
	ret
	.cfi_endproc
	.size	nu__ctx_switch, .-nu__ctx_switch

/* First code run by a fresh context: rax = arg, entry and p on the stack
 * (nu__ctx_make). The return address is undefined so unwinding ends here.
 * The resume address is one byte in, past a nop: an unwinder looks up a
 * return address less one, which then falls in this function's unwind
 * info, not in whatever precedes it (gdb stopped in the first switch
 * into a context showed a frame of garbage after the switch's). */
	.type	nu__ctx_trampoline, @function
	.p2align 4
nu__ctx_trampoline:
	.cfi_startproc
	.cfi_undefined %rip
	nop
nu__ctx_trampoline_resume:
	NU_ENDBR
	movq	%rax, %rdi
	popq	%rcx			/* entry */
	popq	%rsi			/* p; rsp is the aligned top now */
	call	*%rcx
	ud2				/* entry returned: nowhere to go */
	.cfi_endproc
	.size	nu__ctx_trampoline, .-nu__ctx_trampoline

	.globl	nu__ctx_make
	.hidden	nu__ctx_make
	.type	nu__ctx_make, @function
	.p2align 4
nu__ctx_make:
	.cfi_startproc
	NU_ENDBR
	movq	%rdi, %rax
	andq	$-16, %rax
	movq	%rdx, -8(%rax)		/* p */
	movq	%rsi, -16(%rax)		/* entry */
	leaq	nu__ctx_trampoline_resume(%rip), %rcx
	movq	%rcx, -24(%rax)		/* resume address */
	movq	$0, -32(%rax)		/* rbp: ends frame-pointer chains */
	subq	$32, %rax
	ret
	.cfi_endproc
	.size	nu__ctx_make, .-nu__ctx_make

	.section .note.GNU-stack,"",@progbits
