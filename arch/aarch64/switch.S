/* switch.S — aarch64 (AAPCS64) context switch for nuproc; see arch/ctx.h.
 *
 * nu__ctx_switch(save_sp=x0, to_sp=x1, arg=x2)
 *   stores x19-x28, x29/x30 and d8-d15 in a 160-byte frame below sp,
 *   stores sp to *save_sp, loads to_sp, loads the same frame from the other
 *   stack, sets x0 = arg and branches to the other side's x30 with `br`.
 *   Not `ret`: ret is predicted from the return-address stack, which holds
 *   an address from the stack we just left (the x86 pop+jmp argument).
 *
 * nu__ctx_make(stack_top=x0, entry=x1, p=x2)
 *   writes that frame just below stack_top & ~15 with x19 = entry,
 *   x20 = p, x29 = 0, x30 = trampoline and zeros elsewhere.  After the first
 *   switch pops it, sp equals the aligned top (16-aligned, as AAPCS64
 *   requires at all times) and the trampoline calls entry(x0 = arg, x1 = p).
 *
 * The CFI of nu__ctx_switch stays truthful after sp moves to the other
 * stack because both frames have the same shape.
 *
 * FPCR/FPSR are deliberately not switched (ctx.h).  No GNU property note:
 * `br x30` to a return address cannot satisfy BTI, nor would it keep a
 * guarded control stack in step, so the linker drops both markings from a
 * binary that links this file.
 */

	.text

	.globl	nu__ctx_switch
	.hidden	nu__ctx_switch
	.type	nu__ctx_switch, %function
	.p2align 4
nu__ctx_switch:
	.cfi_startproc
	sub	sp, sp, #160
	.cfi_def_cfa_offset 160
	stp	x19, x20, [sp, #0]
	.cfi_offset x19, -160
	.cfi_offset x20, -152
	stp	x21, x22, [sp, #16]
	.cfi_offset x21, -144
	.cfi_offset x22, -136
	stp	x23, x24, [sp, #32]
	.cfi_offset x23, -128
	.cfi_offset x24, -120
	stp	x25, x26, [sp, #48]
	.cfi_offset x25, -112
	.cfi_offset x26, -104
	stp	x27, x28, [sp, #64]
	.cfi_offset x27, -96
	.cfi_offset x28, -88
	stp	x29, x30, [sp, #80]
	.cfi_offset x29, -80
	.cfi_offset x30, -72
	stp	d8, d9, [sp, #96]
	.cfi_offset d8, -64
	.cfi_offset d9, -56
	stp	d10, d11, [sp, #112]
	.cfi_offset d10, -48
	.cfi_offset d11, -40
	stp	d12, d13, [sp, #128]
	.cfi_offset d12, -32
	.cfi_offset d13, -24
	stp	d14, d15, [sp, #144]
	.cfi_offset d14, -16
	.cfi_offset d15, -8

	mov	x9, sp
	str	x9, [x0]
	mov	sp, x1			/* now on the other stack, same frame shape */

	ldp	x19, x20, [sp, #0]
	ldp	x21, x22, [sp, #16]
	ldp	x23, x24, [sp, #32]
	ldp	x25, x26, [sp, #48]
	ldp	x27, x28, [sp, #64]
	ldp	d8, d9, [sp, #96]
	ldp	d10, d11, [sp, #112]
	ldp	d12, d13, [sp, #128]
	ldp	d14, d15, [sp, #144]
	ldp	x29, x30, [sp, #80]
	add	sp, sp, #160
	.cfi_def_cfa_offset 0
	.cfi_restore x19
	.cfi_restore x20
	.cfi_restore x21
	.cfi_restore x22
	.cfi_restore x23
	.cfi_restore x24
	.cfi_restore x25
	.cfi_restore x26
	.cfi_restore x27
	.cfi_restore x28
	.cfi_restore x29
	.cfi_restore x30
	.cfi_restore d8
	.cfi_restore d9
	.cfi_restore d10
	.cfi_restore d11
	.cfi_restore d12
	.cfi_restore d13
	.cfi_restore d14
	.cfi_restore d15
	mov	x0, x2
	br	x30
	.cfi_endproc
	.size	nu__ctx_switch, .-nu__ctx_switch

/* First code run by a fresh context: x0 = arg, x19 = entry, x20 = p,
 * x29 = 0, sp 16-aligned.  The return address is undefined so unwinding
 * ends here. */
	.type	nu__ctx_trampoline, %function
	.p2align 4
nu__ctx_trampoline:
	.cfi_startproc
	.cfi_undefined x30
	nop		/* an unwinder's lookup of the resume address less one lands here */
nu__ctx_trampoline_resume:
	mov	x1, x20
	blr	x19
	brk	#0			/* entry returned: nowhere to go */
	.cfi_endproc
	.size	nu__ctx_trampoline, .-nu__ctx_trampoline

	.globl	nu__ctx_make
	.hidden	nu__ctx_make
	.type	nu__ctx_make, %function
	.p2align 4
nu__ctx_make:
	.cfi_startproc
	and	x9, x0, #~15
	sub	x9, x9, #160
	adr	x10, nu__ctx_trampoline_resume
	stp	x1, x2, [x9, #0]	/* x19 = entry, x20 = p */
	stp	xzr, xzr, [x9, #16]
	stp	xzr, xzr, [x9, #32]
	stp	xzr, xzr, [x9, #48]
	stp	xzr, xzr, [x9, #64]
	stp	xzr, x10, [x9, #80]	/* x29 = 0 ends fp chains, x30 = trampoline */
	stp	xzr, xzr, [x9, #96]
	stp	xzr, xzr, [x9, #112]
	stp	xzr, xzr, [x9, #128]
	stp	xzr, xzr, [x9, #144]
	mov	x0, x9
	ret
	.cfi_endproc
	.size	nu__ctx_make, .-nu__ctx_make

	.section .note.GNU-stack,"",%progbits
