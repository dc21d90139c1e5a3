/* SPDX-License-Identifier: MIT */
/*
 * unwind-dl.S - two libraries for the capture-equality test (unwind-check):
 * built once as is (A) and once with -DUNWIND_DL_B (B), they have the
 * same layout byte for byte except for the frame of unwind_dl_alloc, so
 * that B, loaded where A was, has a return address at the very address
 * where A had one, with a different unwind rule:
 *   A: push %rbp; mov %rsp,%rbp   CFA = rbp + 16, rbp saved at CFA - 16
 *   B: sub $8,%rsp                CFA = rsp + 16, rbp unchanged
 * A rule remembered from A and applied in B (called from a frame whose CFA
 * is rbp-based) skips that caller's frame: a stack one frame short.
 */
	.text
	.globl	unwind_dl_alloc
	.type	unwind_dl_alloc, @function
	.p2align 4
unwind_dl_alloc:		/* void *unwind_dl_alloc(size_t bytes) */
	.cfi_startproc
#ifdef UNWIND_DL_B
	subq	$8, %rsp		/* 4 bytes */
	.cfi_def_cfa_offset 16
#else
	pushq	%rbp			/* 1 byte */
	.cfi_def_cfa_offset 16
	.cfi_offset %rbp, -16
	movq	%rsp, %rbp		/* 3 bytes */
	.cfi_def_cfa_register %rbp
#endif
	call	malloc@PLT
	nop
#ifdef UNWIND_DL_B
	addq	$8, %rsp		/* 4 bytes */
	.cfi_def_cfa_offset 8
	ret
#else
	popq	%rbp			/* 1 byte */
	.cfi_def_cfa %rsp, 8
	nop
	nop
	nop
	ret
#endif
	.cfi_endproc
	.size	unwind_dl_alloc, .-unwind_dl_alloc

	.section .note.GNU-stack,"",@progbits
