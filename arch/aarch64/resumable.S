/* resumable.S — aarch64 entry stubs of the public calls that may switch
 * out; see arch/ctx.h, "Returns after a switch".
 *
 * NU_RESUMABLE(name, impl): name calls impl, its C body, whose result
 * has name's int result in w0 and bit 32 of x0 (NU__SWITCHED) set when
 * the call switched out, and then returns to its caller with `br x30`,
 * predicted from the branch history, instead of `ret`, predicted from the
 * return-address stack that a switch leaves holding the other context's
 * addresses. Without a switch, `ret`. No BTI landing pad, as switch.S.
 */
#define NU_RESUMABLE(name, impl)			\
	.globl	name;					\
	.type	name, %function;			\
	.p2align 4;					\
name:							\
	.cfi_startproc;					\
	stp	x29, x30, [sp, #-16]!;			\
	.cfi_def_cfa_offset 16;				\
	.cfi_offset x29, -16;				\
	.cfi_offset x30, -8;				\
	mov	x29, sp;				\
	bl	impl;					\
	ldp	x29, x30, [sp], #16;			\
	.cfi_def_cfa_offset 0;				\
	.cfi_restore x29;				\
	.cfi_restore x30;				\
	tbnz	x0, #32, 1f;				\
	ret;						\
1:	br	x30;					\
	.cfi_endproc;					\
	.size	name, .-name

	.text
NU_RESUMABLE(nu_receive, nu__receive)
NU_RESUMABLE(nu_receive_select, nu__receive_select)

	.section .note.GNU-stack,"",%progbits
