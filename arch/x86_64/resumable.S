/* resumable.S — x86_64 entry stubs of the public calls that may switch
 * out; see arch/ctx.h, "Returns after a switch".
 *
 * NU_RESUMABLE(name, impl) defines the public function name as a call of
 * impl, its C body, which returns name's int result in eax and sets bit
 * 32 of rax (NU__SWITCHED) when the call switched out. The return to
 * name's caller is then a pop and an indirect jump instead of a `ret`: a
 * `ret` is predicted from the return-stack buffer, which after a switch
 * holds the return address of whichever context switched to this one,
 * and mispredicts whenever the two called from different places (a
 * ping-pong's two loops). The indirect jump is predicted from the branch
 * history instead. Without a switch it is a plain `ret`, which keeps the
 * buffer in step with the calls. The 8 bytes below the call keep the
 * ABI's 16-byte alignment at impl's entry. The CFI describes each step,
 * so gdb unwinds from impl through the stub to the caller.
 */
#ifdef __CET__
#define NU_ENDBR endbr64
#define NU_NOTRACK notrack
#else
#define NU_ENDBR
#define NU_NOTRACK
#endif

#define NU_RESUMABLE(name, impl)			\
	.globl	name;					\
	.type	name, @function;			\
	.p2align 4;					\
name:							\
	.cfi_startproc;					\
	NU_ENDBR;					\
	subq	$8, %rsp;				\
	.cfi_def_cfa_offset 16;				\
	call	impl;					\
	addq	$8, %rsp;				\
	.cfi_def_cfa_offset 8;				\
	btq	$32, %rax;				\
	jc	1f;					\
	ret;						\
1:	popq	%rcx;					\
	.cfi_def_cfa_offset 0;				\
	.cfi_register %rip, %rcx;			\
	NU_NOTRACK jmp *%rcx;				\
	.cfi_endproc;					\
	.size	name, .-name

	.text
NU_RESUMABLE(nu_receive, nu__receive)
NU_RESUMABLE(nu_receive_select, nu__receive_select)

	.section .note.GNU-stack,"",@progbits
