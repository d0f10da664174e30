/* switch.S — x86_64 (System V) context switch for nuproc; see arch/ctx.h.
 *
 * nu__ctx_switch(save_sp=rdi, to_sp=rsi, arg=rdx)
 *   pushes rbp rbx r12 r13 r14 r15 below the return address left by the
 *   caller's call, stores rsp to *save_sp, loads to_sp, pops the same six
 *   registers from the other stack, pops the other side's resume address
 *   into rcx, sets rax = arg and jumps to rcx.  No `ret`: the return-stack
 *   buffer holds an address from the stack we just left, so a ret would
 *   mispredict on every switch.
 *
 * nu__ctx_make(stack_top=rdi, entry=rsi, p=rdx)
 *   writes the same 7-word frame just below stack_top & ~15 with
 *   r12 = entry, r13 = p, rbp = rbx = r14 = r15 = 0 and the trampoline as
 *   resume address.  After the first switch pops that frame, rsp equals the
 *   aligned top, so the trampoline's call leaves rsp+8 ≡ 0 (mod 16) at
 *   entry, as the ABI wants.
 *
 * The CFI of nu__ctx_switch stays truthful after rsp moves to the other
 * stack, because the frame there has the same shape: gdb at any instruction
 * unwinds into whichever context that frame belongs to.
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

	.globl	nu__ctx_switch
	.hidden	nu__ctx_switch
	.type	nu__ctx_switch, @function
	.p2align 4
nu__ctx_switch:
	.cfi_startproc
	NU_ENDBR
	pushq	%rbp
	.cfi_def_cfa_offset 16
	.cfi_offset %rbp, -16
	pushq	%rbx
	.cfi_def_cfa_offset 24
	.cfi_offset %rbx, -24
	pushq	%r12
	.cfi_def_cfa_offset 32
	.cfi_offset %r12, -32
	pushq	%r13
	.cfi_def_cfa_offset 40
	.cfi_offset %r13, -40
	pushq	%r14
	.cfi_def_cfa_offset 48
	.cfi_offset %r14, -48
	pushq	%r15
	.cfi_def_cfa_offset 56
	.cfi_offset %r15, -56

	movq	%rsp, (%rdi)
	movq	%rsi, %rsp		/* now on the other stack, same frame shape */

	popq	%r15
	.cfi_def_cfa_offset 48
	.cfi_restore %r15
	popq	%r14
	.cfi_def_cfa_offset 40
	.cfi_restore %r14
	popq	%r13
	.cfi_def_cfa_offset 32
	.cfi_restore %r13
	popq	%r12
	.cfi_def_cfa_offset 24
	.cfi_restore %r12
	popq	%rbx
	.cfi_def_cfa_offset 16
	.cfi_restore %rbx
	popq	%rbp
	.cfi_def_cfa_offset 8
	.cfi_restore %rbp
	popq	%rcx
	.cfi_def_cfa_offset 0
	.cfi_register %rip, %rcx
	movq	%rdx, %rax
	NU_NOTRACK jmp *%rcx
	.cfi_endproc
	.size	nu__ctx_switch, .-nu__ctx_switch

/* First code run by a fresh context: rax = arg, r12 = entry, r13 = p,
 * rsp 16-aligned.  The return address is undefined so unwinding ends here. */
	.type	nu__ctx_trampoline, @function
	.p2align 4
nu__ctx_trampoline:
	.cfi_startproc
	.cfi_undefined %rip
	NU_ENDBR
	movq	%rax, %rdi
	movq	%r13, %rsi
	call	*%r12
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
	leaq	nu__ctx_trampoline(%rip), %rcx
	movq	%rcx, -8(%rax)		/* resume address */
	movq	$0, -16(%rax)		/* rbp: ends frame-pointer chains */
	movq	$0, -24(%rax)		/* rbx */
	movq	%rsi, -32(%rax)		/* r12 = entry */
	movq	%rdx, -40(%rax)		/* r13 = p */
	movq	$0, -48(%rax)		/* r14 */
	movq	$0, -56(%rax)		/* r15 */
	subq	$56, %rax
	ret
	.cfi_endproc
	.size	nu__ctx_make, .-nu__ctx_make

	.section .note.GNU-stack,"",@progbits
