/*
 * heap.c — the per-process heap allocator (nu_alloc and friends).
 *
 * Entities
 *   window  [base, end) of one process slot, 64 KiB .. 1 GiB, 16-aligned,
 *           lazily backed: an untouched page costs nothing, and a touched
 *           one is charged to the process (userfaultfd) — so the allocator
 *           touches nothing but what it hands out and its own headers.
 *   block   a 16-byte header followed by its payload; blocks tile
 *           [base, bump) with no gaps. The header holds the block's total
 *           size (a multiple of 16; low bits are flags USED and LARGE), the
 *           total size of the block just below it (0 for the first), and
 *           two free-list links. Every address is 16-aligned because the
 *           base, the header and every size are.
 *   small   a block whose payload is exactly one of 24 class sizes, 16 ..
 *           2048 (16-steps to 128, then four steps per power of two: a
 *           request wastes at most 15 bytes up to 128, under 20% of its
 *           block above). A free small block sits on its class's LIFO list;
 *           it is never split or merged but by the sweep.
 *   large   a block of at least LARGE_MIN (2080) bytes, 16-byte granular.
 *           A free large block sits on the bin of its power of two (a
 *           doubly linked list, so it can be unlinked when a neighbour
 *           merges with it).
 *   bump    the end of the tiled region; fresh blocks are cut there. The
 *           high-water mark top is the highest bump since init.
 *   sweep   the last resort before an allocation fails: one pass over the
 *           blocks that merges runs of adjacent free blocks (small ones
 *           included) into large free blocks and gives a free tail back to
 *           the bump pointer. It runs only if something was freed since the
 *           last sweep (the frag flag): failing again on a full heap is O(1).
 *   ref     a free-list link: the payload's offset from base, 32 bits (the
 *           window is at most 1 GiB), never 0.
 *
 * Invariants (nu__heap_check() verifies them)
 *   I1  base <= bump <= top <= end; blocks tile [base, bump) exactly, each
 *       header's prev is the size of the block below, last is the size of
 *       the block ending at bump.
 *   I2  used is the sum of (size - 16) over blocks with USED set.
 *   I3  A free small block is on exactly the list of its class; a free
 *       large block on exactly the bin of its size; a list head is
 *       meaningful only while its bit in smallmap/bigmap is set.
 *   I4  No free large block ends at bump, and no two free large blocks are
 *       adjacent: a freed large block merges with free large neighbours
 *       and, reaching bump, gives its space back to the bump pointer. So a
 *       process that allocates and frees a big buffer does not grow top.
 *   I5  The allocator reads and writes only below bump (headers and, for
 *       calloc/realloc, payloads it hands out), so nothing at or above top
 *       was touched since init and init need not look at the window.
 *
 * Paths
 *   alloc(n <= 2048): class from a table; pop its list (a handful of
 *     instructions), else split a free large block that leaves a large
 *     remainder (the memory is resident already), else cut at bump, else
 *     take a whole free large block, else a bigger class; else sweep once
 *     and retry.
 *   alloc(n > 2048): first fit in the bin of n (at most SCAN_LIMIT looks),
 *     else the head of the next non-empty bin (fits by construction), else
 *     a full scan of n's bin, else bump; else sweep once and retry. The
 *     rest of a split block stays free when it can make a large block.
 *   free: small blocks are pushed on their list; large ones merge with
 *     free large neighbours (boundary tags: the header's prev) and return
 *     to the bump pointer when they end there.
 *   realloc: a small block that still fits stays; a block ending at bump
 *     grows or shrinks by moving bump; a large block shrinks by splitting
 *     off its tail, grows into a free large block just above it; anything
 *     else is alloc + copy + free.
 *
 * Alternatives rejected
 *   - Header-free size-class pages (slabs found by aligning the pointer
 *     down): a process with a few objects of k classes would touch k pages,
 *     against the one page it shares with its stack top and control block
 *     here (the idle-process cost is one page), and the window base is not
 *     page-aligned. Headers cost 16 bytes per block; they buy O(1) free and
 *     realloc of any pointer, and boundary tags for merging.
 *   - 8-byte headers overlapping the block below (dlmalloc): saves 8 bytes
 *     for half the request sizes, but the header would be inside another
 *     block's payload, which defeats poisoning headers under ASan.
 *   - Links inside free payloads: keeping them in the header means a free
 *     block's payload is never touched again (it stays fully poisoned under
 *     ASan, and a freed big buffer's pages are not dirtied by bookkeeping).
 *   - Clearing the list heads in init: 176 bytes of stores on every spawn;
 *     the bitmaps make an all-zero pair of words mean "all lists empty".
 *   - Coalescing small blocks eagerly: costs a neighbour check on every
 *     small free; the sweep recovers that memory only when it is needed.
 *   - Locks or atomics: only the owner allocates in its window.
 *
 * Concurrency: none. One process, hence one thread at a time, uses a heap;
 * a process that migrates between schedulers does so through the
 * scheduler's own synchronisation, which orders these plain accesses.
 *
 * AddressSanitizer builds
 *   Free payloads, headers and the unused window are poisoned; hand-outs
 *   unpoison exactly the usable bytes. The allocator never relies on the
 *   state a previous owner of the window left: it unpoisons what it hands
 *   out and opens a header around each access (hd_load/hd_store). Init
 *   poisons the first 64 KiB of the window and, as top rises, the next
 *   64 KiB ahead of it: stray accesses near the heap are caught, while init
 *   stays cheap whatever the window size. A wild access far above top into
 *   memory an earlier process left unpoisoned goes unseen.
 */
#include "heap.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef NU__HEAP_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(a, n) ASAN_POISON_MEMORY_REGION((void *)(a), (n))
#define UNPOISON(a, n) ASAN_UNPOISON_MEMORY_REGION((void *)(a), (n))
#define ASAN_AHEAD ((uintptr_t)64 << 10)
#else
#define POISON(a, n) ((void)(a), (void)(n))
#define UNPOISON(a, n) ((void)(a), (void)(n))
#endif

#define HD 16u			/* header bytes */
#define F_USED 1u		/* the block is handed out */
#define F_LARGE 2u		/* the block is large (else small) */
#define F_MASK 15u
#define LARGE_MIN (NU__HEAP_SMALL_MAX + 2 * HD) /* smallest large block */
#define BIN_SHIFT 11		/* bin i holds sizes [2^(i+11), 2^(i+12)) */
#define SCAN_LIMIT 32		/* first-fit looks before trying other bins */

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

_Static_assert(sizeof(nu__heap) <= 256, "nu__heap must fit the control block");
_Static_assert(NU__HEAP_NLARGE == 30 - BIN_SHIFT + 1, "bins cover 2^11..2^30");

/* A block header, as stored in the window just below the payload. */
typedef struct hd {
	uint32_t size;	/* total bytes of the block, header included | flags */
	uint32_t prev;	/* total bytes of the block just below; 0 at base */
	uint32_t next;	/* free list: ref of the next free block, 0 = end */
	uint32_t back;	/* bin: ref of the previous free block, 0 = head */
} hd;

/* Payload bytes of each small class. */
static const uint16_t class_size[NU__HEAP_NSMALL] = {
	16, 32, 48, 64, 80, 96, 112, 128,
	160, 192, 224, 256, 320, 384, 448, 512,
	640, 768, 896, 1024, 1280, 1536, 1792, 2048,
};

/* The class of a request of up to 16*i bytes, i in 0..128. */
#define C_(i) ((i) <= 8 ? ((i) ? (i) - 1 : 0)			\
	       : (i) <= 16 ? 8 + ((i) - 9) / 2			\
	       : (i) <= 32 ? 12 + ((i) - 17) / 4		\
	       : (i) <= 64 ? 16 + ((i) - 33) / 8		\
	       : 20 + ((i) - 65) / 16)
#define C4_(i) C_(i), C_((i) + 1), C_((i) + 2), C_((i) + 3)
#define C16_(i) C4_(i), C4_((i) + 4), C4_((i) + 8), C4_((i) + 12)
static const uint8_t class_of16[129] = {
	C16_(0), C16_(16), C16_(32), C16_(48),
	C16_(64), C16_(80), C16_(96), C16_(112), C_(128),
};

/* ------------------------------------------------------------ checking */

#ifndef NDEBUG
/* Report a corrupted heap (a bad free, an overwritten header) and abort. */
__attribute__((noreturn, cold)) static void corrupt(const nu__heap *h,
						    uintptr_t b, const char *what)
{
	fprintf(stderr, "nuproc: heap %p: %s (block %p, window %p..%p)\n",
		(const void *)h, what, (void *)b, (void *)h->base,
		(void *)h->end);
	abort();
}
#define CHECK(h, c, b, what)					\
	do {							\
		if (unlikely(!(c)))				\
			corrupt(h, b, what);			\
	} while (0)
#else
#define CHECK(h, c, b, what) ((void)0)
#endif

/* ------------------------------------------------------------- headers */

/* Read the header of the block at b (opening it for ASan around the read). */
static inline hd hd_load(uintptr_t b)
{
	hd x;
	UNPOISON(b, HD);
	memcpy(&x, (const void *)b, sizeof x);
	POISON(b, HD);
	return x;
}

/* Write the header of the block at b (it stays poisoned for ASan). */
static inline void hd_store(uintptr_t b, hd x)
{
	UNPOISON(b, HD);
	memcpy((void *)b, &x, sizeof x);
	POISON(b, HD);
}

static inline uint32_t hd_bytes(hd x) { return x.size & ~F_MASK; }
static inline bool hd_free_large(hd x)
{
	return (x.size & (F_USED | F_LARGE)) == F_LARGE;
}

/* The ref (payload offset) of the block at b, and back. */
static inline uint32_t ref_of(const nu__heap *h, uintptr_t b)
{
	return (uint32_t)(b + HD - h->base);
}
static inline uintptr_t blk_of(const nu__heap *h, uint32_t r)
{
	return h->base + r - HD;
}

/* Set the prev field of the block at b to s. */
static void set_prev(uintptr_t b, uint32_t s)
{
	hd x = hd_load(b);
	x.prev = s;
	hd_store(b, x);
}

/* Total block size for a large request of n bytes (n <= NU__HEAP_MAX). */
static inline uint32_t large_total(size_t n)
{
	uint32_t t = (uint32_t)((n + 15) & ~(size_t)15) + HD;
	return t < LARGE_MIN ? LARGE_MIN : t;
}

/* The bin of a large size s (s >= 2048). */
static inline unsigned bin_of(uint32_t s)
{
	return (unsigned)(31 - __builtin_clz(s)) - BIN_SHIFT;
}

/* ----------------------------------------------------------- free lists */

/* Push the free small block at b (header x, class c) on its class's list. */
static inline void small_push(nu__heap *h, uintptr_t b, hd x, unsigned c)
{
	x.size = hd_bytes(x);
	x.next = (h->smallmap >> c & 1) ? h->small[c] : 0;
	hd_store(b, x);
	h->small[c] = ref_of(h, b);
	h->smallmap |= 1u << c;
}

/* Pop the head of class c's list, which must not be empty, and hand it
 * out. */
static inline void *small_pop(nu__heap *h, unsigned c)
{
	uintptr_t b = blk_of(h, h->small[c]);
	hd x = hd_load(b);
	uint32_t u = class_size[c];

	CHECK(h, x.size == u + HD, b, "small free list corrupted");
	h->small[c] = x.next;
	h->smallmap &= ~((uint32_t)(x.next == 0) << c);
	x.size |= F_USED;
	hd_store(b, x); /* whole: a narrower store stalls a quick free's load */
	h->used += u;
	UNPOISON(b + HD, u);
	return (void *)(b + HD);
}

/* File the free large block at b (header x, its size in x.size) on the
 * bin of its size, at the head. */
static void bin_insert(nu__heap *h, uintptr_t b, hd x)
{
	unsigned i = bin_of(hd_bytes(x));
	uint32_t head = (h->bigmap >> i & 1) ? h->large[i] : 0;

	x.size = hd_bytes(x) | F_LARGE;
	x.next = head;
	x.back = 0;
	hd_store(b, x);
	if (head) {
		uintptr_t n = blk_of(h, head);
		hd y = hd_load(n);
		y.back = ref_of(h, b);
		hd_store(n, y);
	}
	h->large[i] = ref_of(h, b);
	h->bigmap |= 1u << i;
}

/* Take the free large block whose header is x off its bin. */
static void bin_unlink(nu__heap *h, hd x)
{
	unsigned i = bin_of(hd_bytes(x));

	if (x.back) {
		uintptr_t p = blk_of(h, x.back);
		hd y = hd_load(p);
		y.next = x.next;
		hd_store(p, y);
	} else {
		h->large[i] = x.next;
		if (!x.next)
			h->bigmap &= ~(1u << i);
	}
	if (x.next) {
		uintptr_t n = blk_of(h, x.next);
		hd y = hd_load(n);
		y.back = x.back;
		hd_store(n, y);
	}
}

/* First fit for min bytes among the first `limit` blocks of bin i: unlink
 * and return it, or 0. */
static uintptr_t bin_scan(nu__heap *h, unsigned i, uint32_t min,
			  unsigned limit)
{
	uint32_t r = (h->bigmap >> i & 1) ? h->large[i] : 0;

	for (; r && limit; limit--) {
		uintptr_t b = blk_of(h, r);
		hd x = hd_load(b);
		if (hd_bytes(x) >= min) {
			bin_unlink(h, x);
			return b;
		}
		r = x.next;
	}
	return 0;
}

/* Unlink and return a free large block of at least min bytes, or 0: first
 * fit among `looks` blocks of min's bin, else the head of the next
 * non-empty bin (any block there fits), else — when full is set — first
 * fit over all of min's bin. */
static uintptr_t large_find(nu__heap *h, uint32_t min, unsigned looks,
			    bool full)
{
	unsigned i;
	uintptr_t b;
	uint32_t up;

	if (min < LARGE_MIN)
		min = LARGE_MIN; /* for a small block: any large block fits */
	i = bin_of(min);
	if (i >= NU__HEAP_NLARGE)
		return 0;
	if ((b = bin_scan(h, i, min, looks)))
		return b;
	up = h->bigmap & ~((2u << i) - 1);
	if (up) {
		b = blk_of(h, h->large[__builtin_ctz(up)]);
		bin_unlink(h, hd_load(b));
		return b;
	}
	return full ? bin_scan(h, i, min, ~0u) : 0;
}

/* ------------------------------------------------------ bump and top */

/* Move top up to bump; under ASan keep the window ahead of it poisoned. */
static void raise_top(nu__heap *h)
{
	h->top = h->bump;
#ifdef NU__HEAP_ASAN
	if (h->top + ASAN_AHEAD / 2 > h->poisoned && h->poisoned < h->end) {
		uintptr_t lo = h->poisoned > h->top ? h->poisoned : h->top;
		uintptr_t hi = h->end - h->top > ASAN_AHEAD ? h->top + ASAN_AHEAD
							    : h->end;
		POISON(lo, hi - lo);
		h->poisoned = hi;
	}
#endif
}

/* Cut a block of t bytes with flags fl at bump and hand it out; NULL when
 * the window has no room. */
static void *carve(nu__heap *h, uint32_t t, uint32_t fl)
{
	uintptr_t b = h->bump;

	if (t > h->end - b)
		return NULL;
	hd_store(b, (hd){ t | fl | F_USED, h->last, 0, 0 });
	h->bump = b + t;
	h->last = t;
	if (h->bump > h->top)
		raise_top(h);
	h->used += t - HD;
	UNPOISON(b + HD, t - HD);
	return (void *)(b + HD);
}

/* The free block at b, whose header's prev is prev, ends at bump: give it
 * back to the bump pointer, with a free large block just below it. */
static void release_to_bump(nu__heap *h, uintptr_t b, uint32_t prev)
{
	if (prev) {
		hd y = hd_load(b - prev);
		if (hd_free_large(y)) {
			bin_unlink(h, y);
			b -= prev;
			prev = y.prev;
		}
	}
	POISON(b, h->bump - b);
	h->bump = b;
	h->last = prev;
}

/* ---------------------------------------------------------- large blocks */

/* Hand out the unlinked free large block at b as a block of t bytes with
 * flags fl; the rest becomes a free large block when it can, else the
 * whole block is handed out (as large). */
static void *large_use(nu__heap *h, uintptr_t b, uint32_t t, uint32_t fl)
{
	hd x = hd_load(b);
	uint32_t s = hd_bytes(x);

	if (s - t >= LARGE_MIN) {
		bin_insert(h, b + t, (hd){ s - t, t, 0, 0 });
		set_prev(b + s, s - t); /* below bump: I4 */
	} else {
		t = s;
		fl = F_LARGE;
	}
	x.size = t | fl | F_USED;
	hd_store(b, x);
	h->used += t - HD;
	UNPOISON(b + HD, t - HD);
	return (void *)(b + HD);
}

/* The large block at b (header x; out of use, already off `used`) is free:
 * merge it with free large neighbours and file it on its bin, or give it
 * back to the bump pointer when it ends there. */
static void large_release(nu__heap *h, uintptr_t b, hd x)
{
	uint32_t s = hd_bytes(x);
	hd y;

	h->frag = 1;
	if (b + s == h->bump) {
		release_to_bump(h, b, x.prev);
		return;
	}
	y = hd_load(b + s);
	if (hd_free_large(y)) {
		bin_unlink(h, y);
		s += hd_bytes(y);
	}
	if (x.prev) {
		y = hd_load(b - x.prev);
		if (hd_free_large(y)) {
			bin_unlink(h, y);
			b -= x.prev;
			s += x.prev;
			x.prev = y.prev;
		}
	}
	x.size = s;
	set_prev(b + s, s);
	bin_insert(h, b, x);
}

/* A small block of class c when its list is empty: split a free large
 * block that leaves a large rest, else cut at bump, else take a whole free
 * large block, else a block of a bigger class; NULL when none works. */
static void *small_get(nu__heap *h, unsigned c)
{
	uint32_t t = class_size[c] + HD;
	uint32_t up;
	uintptr_t b;
	void *p;

	if (h->bigmap && (b = large_find(h, t + LARGE_MIN, 4, false)))
		return large_use(h, b, t, 0);
	if ((p = carve(h, t, 0)))
		return p;
	if (h->bigmap && (b = large_find(h, t, SCAN_LIMIT, true)))
		return large_use(h, b, t, 0);
	up = h->smallmap & ~((2u << c) - 1);
	if (up)
		return small_pop(h, (unsigned)__builtin_ctz(up));
	return NULL;
}

/* A large block of t bytes: from the bins, else at bump; NULL if none. */
static void *large_get(nu__heap *h, uint32_t t)
{
	uintptr_t b;

	if (h->bigmap && (b = large_find(h, t, SCAN_LIMIT, true)))
		return large_use(h, b, t, F_LARGE);
	return carve(h, t, F_LARGE);
}

/* ----------------------------------------------------------------- sweep */

/* File the free block at b (header x) on its list or bin. */
static void refile(nu__heap *h, uintptr_t b, hd x)
{
	if (x.size & F_LARGE)
		bin_insert(h, b, x);
	else
		small_push(h, b, x, class_of16[(hd_bytes(x) - HD) >> 4]);
}

/* [rs, re) is a maximal run of n free blocks, the first of them with prev
 * field prev, and the lists are being rebuilt: give the run back to bump
 * if it ends there, else merge it into one large block if it is big
 * enough, else file its blocks as they are. */
static void sweep_run(nu__heap *h, uintptr_t rs, uintptr_t re, uint32_t prev,
		      unsigned n)
{
	uint32_t s = (uint32_t)(re - rs);

	if (re == h->bump) {
		POISON(rs, s);
		h->bump = rs;
		h->last = prev;
	} else if (n > 1 && s >= LARGE_MIN) {
		bin_insert(h, rs, (hd){ s, prev, 0, 0 });
		set_prev(re, s);
	} else {
		for (uintptr_t b = rs; b < re;) {
			hd x = hd_load(b);
			refile(h, b, x);
			b += hd_bytes(x);
		}
	}
}

/*
 * Merge every run of adjacent free blocks (small ones included) and
 * rebuild the lists: the last resort before an allocation fails. O(blocks
 * below bump), all of them resident already. Returns false, doing nothing,
 * when no block was freed since the last sweep.
 */
static bool sweep(nu__heap *h)
{
	uintptr_t b = h->base, rs = 0;
	uint32_t prev = 0;
	unsigned n = 0;

	if (!h->frag)
		return false;
	h->frag = 0;
	h->smallmap = 0;
	h->bigmap = 0;
	while (b < h->bump) {
		hd x = hd_load(b);
		if (!(x.size & F_USED)) {
			if (!n++) {
				rs = b;
				prev = x.prev;
			}
		} else if (n) {
			sweep_run(h, rs, b, prev, n);
			n = 0;
		}
		b += hd_bytes(x);
	}
	if (n)
		sweep_run(h, rs, b, prev, n);
	return true;
}

/* ---------------------------------------------------------------- resize */

/* Shrink the large block at b (header x, not ending at bump) to t bytes,
 * freeing its tail when that can make a large block; else leave it. */
static void shrink(nu__heap *h, uintptr_t b, hd x, uint32_t t)
{
	uint32_t s = hd_bytes(x);

	if (s - t < LARGE_MIN)
		return;
	x.size = t | F_LARGE | F_USED;
	hd_store(b, x);
	h->used -= s - t;
	POISON(b + t, s - t);
	large_release(h, b + t, (hd){ s - t, t, 0, 0 });
}

/* Resize the block at b (header x), which ends at bump, to t bytes with
 * flags fl by moving bump; false when the window has no room. */
static bool resize_top(nu__heap *h, uintptr_t b, hd x, uint32_t t,
		       uint32_t fl)
{
	uint32_t s = hd_bytes(x);

	if (t > s && t - s > h->end - h->bump)
		return false;
	x.size = t | fl | F_USED;
	hd_store(b, x);
	h->used = h->used - s + t;
	h->bump = b + t;
	h->last = t;
	if (h->bump > h->top)
		raise_top(h);
	if (t > s)
		UNPOISON(b + s, t - s);
	else
		POISON(b + t, s - t);
	return true;
}

/* Grow the large block at b (header x, not ending at bump) to t bytes by
 * taking in the free large block just above it; false if that is not
 * there or too small. */
static bool grow_into_next(nu__heap *h, uintptr_t b, hd x, uint32_t t)
{
	uint32_t s = hd_bytes(x);
	hd y = hd_load(b + s); /* below bump */
	uint32_t s2 = s + hd_bytes(y);

	if (!hd_free_large(y) || s2 < t)
		return false;
	bin_unlink(h, y);
	x.size = s2 | F_LARGE | F_USED;
	hd_store(b, x);
	set_prev(b + s2, s2);
	h->used += s2 - s;
	UNPOISON(b + s, s2 - s);
	shrink(h, b, x, t);
	return true;
}

/* Resize the block at b (header x) in place to hold n bytes
 * (0 < n <= NU__HEAP_MAX); false, changing nothing, when it cannot. */
static bool resize(nu__heap *h, uintptr_t b, hd x, size_t n)
{
	uint32_t s = hd_bytes(x), t, fl;

	if (!(x.size & F_LARGE) && n <= NU__HEAP_SMALL_MAX) {
		t = class_size[class_of16[(n + 15) >> 4]] + HD;
		fl = 0;
	} else {
		t = large_total(n);
		fl = F_LARGE;
	}
	if (b + s == h->bump)
		return resize_top(h, b, x, t, fl);
	if (!(x.size & F_LARGE))
		return false;
	if (t <= s) {
		shrink(h, b, x, t);
		return true;
	}
	return grow_into_next(h, b, x, t);
}

/* ------------------------------------------------------------ public API */

/* See heap.h. Stores to *h only, never reads it: the previous owner's
 * state, and the window behind it, are abandoned as they are. */
void nu__heap_init(nu__heap *h, void *base, size_t size)
{
	uintptr_t b = ((uintptr_t)base + 15) & ~(uintptr_t)15;
	uintptr_t e;

	if (size > NU__HEAP_MAX)
		size = NU__HEAP_MAX;
	e = ((uintptr_t)base + size) & ~(uintptr_t)15;
	h->base = h->bump = h->top = b;
	h->end = e > b ? e : b;
	h->used = 0;
	h->smallmap = 0;
	h->bigmap = 0;
	h->last = 0;
	h->frag = 0;
#ifdef NU__HEAP_ASAN
	h->poisoned = h->end - b > ASAN_AHEAD ? b + ASAN_AHEAD : h->end;
	POISON(b, h->poisoned - b);
#endif
}

/* Everything but a pop from a non-empty class list: kept out of line so
 * that the fast path in nu__heap_alloc needs no stack frame. */
__attribute__((noinline)) static void *alloc_slow(nu__heap *h, size_t n)
{
	void *p;

	if (n - 1 < NU__HEAP_SMALL_MAX) {
		unsigned c = class_of16[(n + 15) >> 4];
		p = (h->smallmap >> c & 1) ? small_pop(h, c) : small_get(h, c);
	} else {
		if (n == 0 || n > NU__HEAP_MAX)
			return NULL;
		p = large_get(h, large_total(n));
	}
	if (unlikely(!p) && sweep(h))
		return alloc_slow(h, n); /* sweeps at most once */
	return p;
}

/* See heap.h. The fast path pops a class list: no loop, no frame. */
void *nu__heap_alloc(nu__heap *h, size_t n)
{
	if (likely(n - 1 < NU__HEAP_SMALL_MAX)) {
		unsigned c = class_of16[(n + 15) >> 4];
		if (likely(h->smallmap & (1u << c)))
			return small_pop(h, c);
	}
	return alloc_slow(h, n);
}

/* See heap.h. Always clears: memory above top may hold a previous
 * process's data, so nothing in the window is known to be zero. */
void *nu__heap_calloc(nu__heap *h, size_t n, size_t m)
{
	size_t t;
	void *p;

	if (__builtin_mul_overflow(n, m, &t))
		return NULL;
	p = nu__heap_alloc(h, t);
	if (p)
		memset(p, 0, t);
	return p;
}

/* See heap.h. In place when p's class still fits, when p ends at bump,
 * when a large p shrinks, or grows into a free large block above it. */
void *nu__heap_realloc(nu__heap *h, void *p, size_t n)
{
	uintptr_t b = (uintptr_t)p - HD;
	uint32_t u;
	void *q;
	hd x;

	if (!p)
		return nu__heap_alloc(h, n);
	if (!n) {
		nu__heap_free(h, p);
		return NULL;
	}
	if (n > NU__HEAP_MAX)
		return NULL;
	CHECK(h, b >= h->base && b < h->bump, b, "realloc of a foreign pointer");
	x = hd_load(b);
	CHECK(h, x.size & F_USED, b, "realloc of a block not in use");
	u = hd_bytes(x) - HD;
	if ((n <= u && !(x.size & F_LARGE)) || resize(h, b, x, n))
		return p;
	q = nu__heap_alloc(h, n);
	if (!q)
		return NULL;
	memcpy(q, p, n < u ? n : u);
	nu__heap_free(h, p);
	return q;
}

/* See heap.h. Small blocks: a push on the class list. Large ones merge
 * and may lower bump. Debug builds check the header first. */
void nu__heap_free(nu__heap *h, void *p)
{
	uintptr_t b = (uintptr_t)p - HD;
	uint32_t s;
	hd x;

	if (!p)
		return;
	CHECK(h, b >= h->base && b < h->bump && !(b & 15), b,
	      "free of a foreign pointer");
	x = hd_load(b);
	s = hd_bytes(x);
	CHECK(h, (x.size & F_USED) && s >= 2 * HD && s <= h->bump - b, b,
	      "free of a block not in use (double free?)");
	h->used -= s - HD;
	POISON(p, s - HD);
	if (likely(!(x.size & F_LARGE))) {
		CHECK(h, s - HD <= NU__HEAP_SMALL_MAX &&
		      class_size[class_of16[(s - HD) >> 4]] == s - HD, b,
		      "corrupted block header");
		h->frag = 1;
		small_push(h, b, x, class_of16[(s - HD) >> 4]);
		return;
	}
	large_release(h, b, x);
}

/* See heap.h. Reads p's header only. */
size_t nu__heap_usable_size(const nu__heap *h, const void *p)
{
	(void)h;
	if (!p)
		return 0;
	return hd_bytes(hd_load((uintptr_t)p - HD)) - HD;
}

/* See heap.h. */
size_t nu__heap_used(const nu__heap *h) { return h->used; }

/* See heap.h. bump can fall below top (give-backs); top only rises. */
uintptr_t nu__heap_top(const nu__heap *h) { return h->top; }

/* See heap.h. */
int nu__heap_owns(const nu__heap *h, const void *p)
{
	return (uintptr_t)p >= h->base && (uintptr_t)p < h->end;
}

/* ------------------------------------------------------------ self-check */

#define FAIL_IF(c) do { if (c) return -__LINE__; } while (0)

/* Walk the blocks of [base, bump): I1, I2, I4 and block sanity; count the
 * free small and free large blocks into *nfs and *nfl. */
static int check_blocks(const nu__heap *h, size_t *nfs, size_t *nfl)
{
	uintptr_t b = h->base;
	uint32_t prev = 0;
	bool below_free_large = false;
	size_t used = 0;

	FAIL_IF(!(h->base <= h->bump && h->bump <= h->top && h->top <= h->end));
	FAIL_IF((h->base | h->bump | h->end) & 15);
	while (b < h->bump) {
		hd x = hd_load(b);
		uint32_t s = hd_bytes(x);
		FAIL_IF(s < 2 * HD || s > h->bump - b || x.prev != prev);
		if (x.size & F_LARGE)
			FAIL_IF(s < LARGE_MIN);
		else
			FAIL_IF(s - HD > NU__HEAP_SMALL_MAX ||
				class_size[class_of16[(s - HD) >> 4]] != s - HD);
		if (x.size & F_USED)
			used += s - HD;
		else if (x.size & F_LARGE)
			++*nfl;
		else
			++*nfs;
		FAIL_IF(below_free_large && hd_free_large(x));
		below_free_large = hd_free_large(x);
		prev = s;
		b += s;
	}
	FAIL_IF(h->last != prev || below_free_large || used != h->used);
	return 0;
}

/* Check that ref r names a block boundary-aligned inside [base, bump). */
static bool bad_ref(const nu__heap *h, uint32_t r)
{
	return r < HD || (r & 15) || blk_of(h, r) >= h->bump;
}

/* Walk the small lists and the bins: I3, no cycles, the counts match. */
static int check_lists(const nu__heap *h, size_t nfs, size_t nfl)
{
	size_t k = 0;

	FAIL_IF(h->smallmap >> NU__HEAP_NSMALL || h->bigmap >> NU__HEAP_NLARGE);
	for (unsigned c = 0; c < NU__HEAP_NSMALL; c++) {
		uint32_t r = (h->smallmap >> c & 1) ? h->small[c] : 0;
		FAIL_IF((h->smallmap >> c & 1) && !r);
		for (; r; k++) {
			FAIL_IF(bad_ref(h, r) || k >= nfs);
			hd x = hd_load(blk_of(h, r));
			FAIL_IF(x.size != class_size[c] + HD);
			r = x.next;
		}
	}
	FAIL_IF(k != nfs);
	k = 0;
	for (unsigned i = 0; i < NU__HEAP_NLARGE; i++) {
		uint32_t r = (h->bigmap >> i & 1) ? h->large[i] : 0, back = 0;
		FAIL_IF((h->bigmap >> i & 1) && !r);
		for (; r; k++) {
			FAIL_IF(bad_ref(h, r) || k >= nfl);
			hd x = hd_load(blk_of(h, r));
			FAIL_IF(!hd_free_large(x) || bin_of(hd_bytes(x)) != i);
			FAIL_IF(x.back != back);
			back = r;
			r = x.next;
		}
	}
	FAIL_IF(k != nfl);
	return 0;
}

/* See heap.h. */
int nu__heap_check(const nu__heap *h)
{
	size_t nfs = 0, nfl = 0;
	int e = check_blocks(h, &nfs, &nfl);

	return e ? e : check_lists(h, nfs, nfl);
}
