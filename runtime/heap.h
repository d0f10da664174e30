/* heap.h — private to nuproc: the per-process heap allocator (see heap.c).
 *
 * A nu__heap manages one process's heap window [base, base + size): blocks
 * of 16-byte aligned memory, carved by a bump pointer and recycled through
 * size-class free lists (small blocks) and coalescing bins (large blocks).
 * Only the owning process calls into its heap: no locks, no atomics.
 *
 * The state is this struct alone (it lives in the process control block);
 * block headers live in the window, just below each block. nu__heap_init()
 * writes only the struct, so re-initialising a window abandons everything
 * in it at once: that is how a process's memory goes at exit.
 */
#ifndef NU_HEAP_H
#define NU_HEAP_H

#include <stddef.h>
#include <stdint.h>

#if defined(__SANITIZE_ADDRESS__)
#define NU__HEAP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NU__HEAP_ASAN 1
#endif
#endif

#define NU__HEAP_ALIGN 16		/* alignment of every block */
#define NU__HEAP_SMALL_MAX 2048		/* largest request served by a class */
#define NU__HEAP_NSMALL 24		/* small size classes, 16 .. 2048 */
#define NU__HEAP_NLARGE 20		/* large bins: block sizes 2^11 .. 2^30 */
#define NU__HEAP_MAX ((size_t)1 << 30)	/* largest window (and request) */

/*
 * Allocator state of one heap window. Addresses are full pointers; free
 * lists hold 32-bit "refs" (a block's payload offset from base, never 0).
 * A list head is meaningful only while its bit in smallmap/bigmap is set,
 * which is what lets init skip clearing the heads.
 */
typedef struct nu__heap {
	uintptr_t bump;		/* next unused byte; blocks tile [base, bump) */
	uintptr_t end;		/* end of the window (16-aligned) */
	size_t used;		/* usable bytes of the blocks in use */
	uint32_t smallmap;	/* bit c: small[c] holds a free block */
	uint32_t bigmap;	/* bit i: large[i] holds a free block */
	uint32_t small[NU__HEAP_NSMALL]; /* LIFO free list heads, per class */
	uintptr_t base;		/* start of the window (16-aligned) */
	uintptr_t top;		/* high-water mark of bump since init */
	uint32_t last;		/* size of the block ending at bump, 0 if none */
	uint32_t frag;		/* a small block was freed since the last sweep */
	uint32_t large[NU__HEAP_NLARGE]; /* free large blocks, per power of 2 */
#ifdef NU__HEAP_ASAN
	uintptr_t poisoned;	/* [top, poisoned) is known to be poisoned */
#endif
} nu__heap;

/*
 * Take the window [base, base + size) as an empty heap. base is rounded up
 * to 16 bytes, the end down to 16 bytes; a window above NU__HEAP_MAX is
 * used up to its first NU__HEAP_MAX bytes. O(1): writes only *h (and, in
 * AddressSanitizer builds, the shadow of the first 64 KiB of the window);
 * never reads or writes the window itself, whatever a previous owner left.
 */
void nu__heap_init(nu__heap *h, void *base, size_t size);

/*
 * A block of at least n usable bytes, 16-byte aligned, or NULL when n is 0,
 * above NU__HEAP_MAX, or the window has no room left.
 */
void *nu__heap_alloc(nu__heap *h, size_t n);

/* As nu__heap_alloc(h, n * m) with the n * m bytes zeroed; NULL when the
 * product overflows. */
void *nu__heap_calloc(nu__heap *h, size_t n, size_t m);

/*
 * C realloc: (NULL, n) allocates; (p, 0) frees p and returns NULL; else a
 * block of at least n bytes holding p's first min(n, old size) bytes —
 * p itself when it can be resized in place. On failure returns NULL and
 * leaves p, its contents and its size untouched.
 */
void *nu__heap_realloc(nu__heap *h, void *p, size_t n);

/* Give back a block from this heap. NULL does nothing. A pointer this heap
 * did not return, or a second free, is undefined (caught by an abort in
 * debug builds in most cases). */
void nu__heap_free(nu__heap *h, void *p);

/* The usable bytes of block p (at least what was asked for); 0 for NULL. */
size_t nu__heap_usable_size(const nu__heap *h, const void *p);

/* The sum of the usable sizes of the blocks in use. */
size_t nu__heap_used(const nu__heap *h);

/*
 * The high-water mark: one past the highest byte of the window the
 * allocator has handed out or written since init. Pages wholly above it
 * hold nothing of this heap and may be dropped (MADV_DONTNEED) at will.
 */
uintptr_t nu__heap_top(const nu__heap *h);

/* 1 when p lies inside this heap's window, else 0. */
int nu__heap_owns(const nu__heap *h, const void *p);

/*
 * Walk every block and free list and check the invariants listed in
 * heap.c. For tests and debugging: O(blocks). Returns 0 when all hold,
 * else minus the heap.c source line of the first check that failed.
 */
int nu__heap_check(const nu__heap *h);

#endif /* NU_HEAP_H */
