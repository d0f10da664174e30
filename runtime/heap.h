/* heap.h — private to nuproc: the per-process heap allocator (see heap.c).
 *
 * A nu__heap manages one process's heap: a "near" window inside the
 * process slot and, optionally, a "far" window elsewhere that the process
 * spills into once the near one is full. It hands out 16-byte aligned
 * blocks carved by a bump pointer per window and recycled through
 * size-class free lists (small blocks) and coalescing bins (large blocks),
 * shared by both windows. Only the owning process calls into its heap: no
 * locks, no atomics.
 *
 * The state is this struct alone (it lives in the process control block);
 * block headers live in the windows, just below each block.
 * nu__heap_init2() writes only the struct, so re-initialising abandons
 * everything in both windows at once: that is how a process's memory goes
 * at exit.
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

/* One window: blocks tile [base, bump); nothing at or above top has been
 * touched since init. (The size of the block ending at bump is in the
 * heap's last[], with the other fields init zeroes.) */
typedef struct nu__heap_win {
	uintptr_t base;		/* start (16-aligned) */
	uintptr_t end;		/* end (16-aligned); base == end: no window */
	uintptr_t bump;		/* next unused byte */
	uintptr_t top;		/* high-water mark of bump since init */
#ifdef NU__HEAP_ASAN
	uintptr_t poisoned;	/* [top, poisoned) is known to be poisoned */
#endif
} nu__heap_win;

/*
 * Allocator state of one process heap. Addresses are full pointers; free
 * lists hold 32-bit "refs" that name a block in either window (see heap.c:
 * the low bit picks the window, the rest is an offset in it, never 0). A
 * list head is meaningful only while its bit in smallmap/bigmap is set,
 * which is what lets init skip clearing the heads.
 */
typedef struct nu__heap {
	uintptr_t nspan;	/* near end - near base: b is near iff
				   b - near base < nspan (one compare) */
	size_t used;		/* usable bytes of the blocks in use */
	uint32_t smallmap;	/* bit c: small[c] holds a free block */
	uint32_t bigmap;	/* bit i: large[i] holds a free block */
	uint32_t frag;		/* a block was freed since the last sweep */
	uint32_t last[2];	/* per window: size of the block ending at its
				   bump, 0 if none */
	uint32_t small[NU__HEAP_NSMALL]; /* LIFO free list heads, per class */
	uint32_t large[NU__HEAP_NLARGE]; /* free large blocks, per power of 2 */
	nu__heap_win win[2];	/* [0] the near window, [1] the far one */
	size_t limit;		/* window bytes a heap may touch, 0 = all;
				   past it nu__heap_over_limit() */
} nu__heap;

/* A process heap grew past its limit (fault.c's fallback accounting):
 * ends the calling process with heap_limit (proc.c). */
void nu__heap_over_limit(void);

/*
 * Take near = [near, near + near_size) and far = [far, far + far_size) as
 * an empty heap. far may be NULL (or far_size 0): no far window. Both
 * starts and sizes must be multiples of 16 (the slot layout gives a
 * 16-aligned near start, a page-aligned near end and a page-aligned far
 * window), and the windows must not overlap; a window above NU__HEAP_MAX
 * is used up to its first NU__HEAP_MAX bytes. Meant for a small near
 * window (the rest of the page the heap shares with the control block,
 * plus a few pages: well under 1 MiB) and a big far one, but any sizes
 * work.
 * O(1): writes only *h (and, in AddressSanitizer builds, the shadow of the
 * first 64 KiB of the near window); never reads or writes either window,
 * whatever a previous owner left there.
 */
void nu__heap_init2(nu__heap *h, void *near, size_t near_size, void *far,
		    size_t far_size);

/* p lies in one of h's windows (a block of h, or part of one). */
static inline int nu__heap_owns(const nu__heap *h, const void *p)
{
	uintptr_t a = (uintptr_t)p;
	return (a - h->win[0].base < h->win[0].end - h->win[0].base) ||
	       (a - h->win[1].base < h->win[1].end - h->win[1].base);
}

/* nu__heap_init2(h, base, size, NULL, 0), except that base is rounded up
 * to 16 bytes and base + size down: one window, no far spill. */
void nu__heap_init(nu__heap *h, void *base, size_t size);

/*
 * A block of at least n usable bytes, 16-byte aligned, or NULL when n is 0,
 * above NU__HEAP_MAX, or neither window has room left. Small blocks come
 * from the near window while it has room: before touching the far window
 * for the first time, the allocator reuses and merges what was freed in
 * the near one (so a heap whose live data stays well under the near
 * window's size does not spill through fragmentation alone — a heuristic,
 * not a promise). A request above a quarter of the near window goes to
 * the far window first.
 */
void *nu__heap_alloc(nu__heap *h, size_t n);

/* As nu__heap_alloc(h, n * m) with the n * m bytes zeroed; NULL when the
 * product overflows. */
void *nu__heap_calloc(nu__heap *h, size_t n, size_t m);

/*
 * C realloc: (NULL, n) allocates; (p, 0) frees p and returns NULL; else a
 * block of at least n bytes holding p's first min(n, old size) bytes —
 * p itself when it can be resized in place. The block may move between
 * windows (a near block grown past a quarter of the near window moves to
 * the far window when that has room). On failure returns NULL and
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
 * The high-water mark of the near window: one past the highest byte of it
 * the allocator has handed out or written since init (its start when
 * none). Pages wholly above it hold nothing of this heap and may be
 * dropped (MADV_DONTNEED) at will.
 */
uintptr_t nu__heap_top(const nu__heap *h);

/* The same for the far window: its (rounded) start while the far window
 * has not been touched since init; 0 when there is none. */
uintptr_t nu__heap_far_top(const nu__heap *h);


/*
 * Walk every block and free list and check the invariants listed in
 * heap.c. For tests and debugging: O(blocks). Returns 0 when all hold,
 * else minus the heap.c source line of the first check that failed.
 */
int nu__heap_check(const nu__heap *h);

#endif /* NU_HEAP_H */
