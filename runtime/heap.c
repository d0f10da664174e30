/*
 * heap.c — the per-process heap allocator (nu_alloc and friends).
 *
 * Why two windows
 *   Process slots sit one after another in one big reservation: [guard]
 *   [stack window][page P: stack top | control block | heap start][heap
 *   window]. An idle process costs its page P plus its share of a
 *   page-table page (4 KiB of PTEs per 2 MiB of address space). With a
 *   16 MiB heap window in the slot, every idle process would own a whole
 *   page-table page: page tables would double the memory of a million idle
 *   processes. So the heap window in the slot is small — the "near" window:
 *   the rest of P plus a few pages (~57 KiB by default), letting ~6 slots
 *   share a page-table page — and a heap that outgrows it continues in a
 *   "far" window (16 MiB by default), one per slot in another reservation,
 *   touched only by the processes that need it. Most processes never get
 *   there; for those that do, the far window's page tables are the price.
 *
 * Entities
 *   window  near or far: [base, end), 16-aligned, up to 1 GiB, lazily
 *           backed: an untouched page costs nothing, and a touched one is
 *           charged to the process (userfaultfd) — so the allocator
 *           touches nothing but what it hands out and its own headers.
 *           Either may be empty (base == end); the far one is optional.
 *   block   a 16-byte header followed by its payload; in each window the
 *           blocks tile [base, bump) with no gaps. The header holds the
 *           block's total size (a multiple of 16; low bits are flags USED
 *           and LARGE), the total size of the block just below it in its
 *           window (0 for the first), and two free-list links. Every
 *           address is 16-aligned because the bases, the header and every
 *           size are. No block spans two windows, and only boundary tags
 *           (prev, size) find neighbours: merging never crosses windows.
 *   small   a block whose payload is exactly one of 24 class sizes, 16 ..
 *           2048 (16-steps to 128, then four steps per power of two: a
 *           request wastes at most 15 bytes up to 128, under 20% of its
 *           block above). A free small block sits on its class's LIFO list;
 *           it is never split or merged but by the sweep.
 *   large   a block of at least LARGE_MIN (2080) bytes, 16-byte granular.
 *           A free large block sits on the bin of its power of two (a
 *           doubly linked list, so it can be unlinked when a neighbour
 *           merges with it).
 *   bump    per window, the end of its tiled region; fresh blocks are cut
 *           there. The window's high-water mark top is its highest bump
 *           since init.
 *   big     a large request above a quarter of the near window: it goes to
 *           the far window first, so that one buffer cannot eat the room
 *           the near window keeps for a process's many small blocks.
 *   sweep   the last resort before an allocation fails, and before the far
 *           window is first touched: one pass over the blocks of both
 *           windows that merges runs of adjacent free blocks (small ones
 *           included) into large free blocks and gives a free tail back to
 *           its bump pointer. It runs only if something was freed since the
 *           last sweep (the frag flag): failing again on a full heap is
 *           O(1), and so is spilling again once the sweep did not help.
 *           Before a first spill it also "retiles" runs too short for a
 *           large block: cuts each into as few small blocks as it holds,
 *           biggest class first, so that the bigger-class fallback finds
 *           them. That is what keeps a churning small heap in its near
 *           window (ad hoc, 40 seeds of 200,000 random operations of up to
 *           512 bytes in 57 KiB: none spilled up to 36 KiB live; without
 *           retiling, 8 spilled at 24 KiB, 25 at 28). It is not done
 *           otherwise: handing out big retiled
 *           blocks whole to small requests costs room for large ones (in a
 *           cramped 256 KiB single window, 84% more failed allocations).
 *   ref     a free-list link, 32 bits: the payload's offset in its window
 *           (a multiple of 16, at most 1 GiB, never 0), plus 1 for the far
 *           window. The lists and bins mix blocks of both windows; decoding
 *           is a predicted branch on the low bit and one add, as before:
 *           block = near base + ref - 16, or far base + ref - 17.
 *
 * Invariants (nu__heap_check() verifies them), for each window
 *   I1  base <= bump <= top <= end; blocks tile [base, bump) exactly, each
 *       header's prev is the size of the block below, the window's last is
 *       the size of the block ending at bump.
 *   I2  used is the sum of (size - 16) over blocks with USED set (in both
 *       windows).
 *   I3  A free small block is on exactly the list of its class; a free
 *       large block on exactly the bin of its size; a list head is
 *       meaningful only while its bit in smallmap/bigmap is set; a ref's
 *       low bit names the window holding its block.
 *   I4  No free large block ends at bump, and no two free large blocks are
 *       adjacent: a freed large block merges with free large neighbours
 *       and, reaching bump, gives its space back to the bump pointer. So a
 *       process that allocates and frees a big buffer does not grow top.
 *   I5  The allocator reads and writes only below bump (headers and, for
 *       calloc/realloc, payloads it hands out), so nothing at or above top
 *       was touched since init and init need not look at the windows. A
 *       heap whose far top is still the far base has not touched the far
 *       window.
 *
 * Paths
 *   alloc(n <= 2048): class from a table; pop its list (a handful of
 *     instructions), else split a free large block that leaves a large
 *     remainder (the memory is resident already), else cut at the near
 *     bump, else take a whole free large block, else a block of a bigger
 *     class; else sweep once and retry. Cutting at the far bump comes
 *     right after the near bump once the far window is in use, else after
 *     everything the near window can still give (see "spill").
 *   alloc(n > 2048): first fit in the bin of n (at most SCAN_LIMIT looks),
 *     else the head of the next non-empty bin (fits by construction), else
 *     a full scan of n's bin, else bump (near then far; far then near for
 *     a big request); else sweep once and retry. The rest of a split block
 *     stays free when it can make a large block.
 *   spill: while the far window is untouched and something was freed,
 *     an allocation that would cut at the far bump sweeps first instead
 *     (then retries, far allowed): fragmentation alone should not push a
 *     small heap out of its near window. A big request does not wait.
 *   free: small blocks are pushed on their list; large ones merge with
 *     free large neighbours (boundary tags: the header's prev) and return
 *     to their window's bump pointer when they end there.
 *   realloc: a small block that still fits stays; a block ending at bump
 *     grows or shrinks by moving bump; a large block shrinks by splitting
 *     off its tail, grows into a free large block just above it; anything
 *     else is alloc + copy + free, which may move the block to the other
 *     window. A near block growing big moves (once) to the far window
 *     when that has room at its bump, as a fresh block that size would.
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
 *   - Per-window lists and bins: 176 more bytes in the control block (over
 *     its 320-byte budget) and two list heads to try on every miss. 64-bit
 *     links: the header would grow to 32 bytes. The window bit in the ref
 *     costs a predicted branch on a pop and a compare on a push.
 *   - A window flag in the header: free would get the window for free, but
 *     every header write would have to carry it; the address tells it with
 *     one compare against the near window.
 *   - One window in the slot, as big as the far one: see "Why two
 *     windows". One window of ~57 KiB per process and nothing else: no
 *     process could hold a big buffer.
 *   - Locks or atomics: only the owner allocates in its windows.
 *
 * Concurrency: none. One process, hence one thread at a time, uses a heap;
 * a process that migrates between schedulers does so through the
 * scheduler's own synchronisation, which orders these plain accesses.
 *
 * AddressSanitizer builds
 *   Free payloads, headers and the unused windows are poisoned; hand-outs
 *   unpoison exactly the usable bytes. The allocator never relies on the
 *   state a previous owner of a window left: it unpoisons what it hands
 *   out and opens a header around each access (hd_load/hd_store). Init
 *   poisons the first 64 KiB of the near window (all of it, by default);
 *   as a window's top rises, the next 64 KiB ahead of it get poisoned too,
 *   so the far window is poisoned lazily from its first use on: stray
 *   accesses near the heap are caught, while init stays cheap whatever the
 *   windows' sizes. A wild access far above a top, or into a far window
 *   this process has not used, that hits memory an earlier process left
 *   unpoisoned goes unseen.
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

_Static_assert(sizeof(nu__heap) <= 320, "nu__heap must fit the control block");
_Static_assert(NU__HEAP_NLARGE == 30 - BIN_SHIFT + 1, "bins cover 2^11..2^30");

/* A block header, as stored in the window just below the payload. */
typedef struct hd {
	uint32_t size;	/* total bytes of the block, header included | flags */
	uint32_t prev;	/* total bytes of the block just below; 0 at a base */
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
	fprintf(stderr, "nuproc: heap %p: %s (block %p, windows %p..%p, "
		"%p..%p)\n", (const void *)h, what, (void *)b,
		(void *)h->win[0].base, (void *)h->win[0].end,
		(void *)h->win[1].base, (void *)h->win[1].end);
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

/* 0 when address b lies in the near window, else 1 (b is then taken to be
 * in the far window). */
static inline unsigned win_idx(const nu__heap *h, uintptr_t b)
{
	return b - h->win[0].base >= h->nspan;
}

/* The window holding the block at b. */
static inline nu__heap_win *win_of(nu__heap *h, uintptr_t b)
{
	return &h->win[win_idx(h, b)];
}

/* For the debug checks: the bytes from b to the bump of the window b lies
 * in, when b could be a block header there (16-aligned, in [base, bump));
 * else 0. Pure: without the checks, the compiler drops it. */
static inline uintptr_t room_at(const nu__heap *h, uintptr_t b)
{
	const nu__heap_win *w = &h->win[0];

	if (unlikely(b - w->base >= h->nspan))
		w = &h->win[1];
	return !(b & 15) && b >= w->base && b < w->bump ? w->bump - b : 0;
}

/* The ref of the block at b (its payload offset in its window, plus 1 in
 * the far window), and back. Branches, not selects: predicted, they keep
 * the window out of the data path (base + offset, as with one window),
 * which runs through a free and the next alloc of the same class. */
static inline uint32_t ref_of(const nu__heap *h, uintptr_t b)
{
	uintptr_t d = b - h->win[0].base;

	if (likely(d < h->nspan))
		return (uint32_t)d + HD;
	return (uint32_t)(b + HD + 1 - h->win[1].base);
}
static inline uintptr_t blk_of(const nu__heap *h, uint32_t r)
{
	if (likely(!(r & 1)))
		return h->win[0].base + r - HD;
	return h->win[1].base + r - (HD + 1);
}

/* The size of the block ending at the bump of window w, 0 if none. */
static inline uint32_t *last_of(nu__heap *h, const nu__heap_win *w)
{
	return &h->last[w - h->win];
}

/* True when a request whose block is t bytes is big: it goes to the far
 * window first (see "big"). */
static inline bool is_big(const nu__heap *h, uint32_t t)
{
	return t > h->nspan / 4;
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
	uint32_t r = ref_of(h, b);

	x.size = hd_bytes(x) | F_LARGE;
	x.next = head;
	x.back = 0;
	hd_store(b, x);
	if (head) {
		uintptr_t n = blk_of(h, head);
		hd y = hd_load(n);
		y.back = r;
		hd_store(n, y);
	}
	h->large[i] = r;
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

/* Move w's top up to its bump; under ASan keep the window ahead of it
 * poisoned. */
static void raise_top(nu__heap_win *w)
{
	w->top = w->bump;
#ifdef NU__HEAP_ASAN
	if (w->top + ASAN_AHEAD / 2 > w->poisoned && w->poisoned < w->end) {
		uintptr_t lo = w->poisoned > w->top ? w->poisoned : w->top;
		uintptr_t hi = w->end - w->top > ASAN_AHEAD ? w->top + ASAN_AHEAD
							    : w->end;
		POISON(lo, hi - lo);
		w->poisoned = hi;
	}
#endif
}

/* Cut a block of t bytes with flags fl at the bump of window w and hand it
 * out; NULL when w has no room. Inlined in its callers: a heap that grows
 * by fresh small blocks (a list being built) comes here for every one,
 * and the calls cost ~9% of a churn_latency worker (4096 cons cells: 97
 * -> 88 us; churn_latency at 10k workers/s on one scheduler: 9.6k ->
 * 9.99k done a second). */
static inline __attribute__((always_inline)) void *
carve(nu__heap *h, nu__heap_win *w, uint32_t t, uint32_t fl)
{
	uintptr_t b = w->bump;

	if (t > w->end - b)
		return NULL;
	if (h->limit && b + t > w->top &&
	    (w == &h->win[0] ? h->win[1].top - h->win[1].base
			     : h->win[0].top - h->win[0].base) +
			    (b + t - w->base) >
		    h->limit)
		nu__heap_over_limit(); /* does not return */
	hd_store(b, (hd){ t | fl | F_USED, *last_of(h, w), 0, 0 });
	w->bump = b + t;
	*last_of(h, w) = t;
	if (w->bump > w->top)
		raise_top(w);
	h->used += t - HD;
	UNPOISON(b + HD, t - HD);
	return (void *)(b + HD);
}

/* The free block at b, whose header's prev is prev, ends at the bump of
 * its window w: give it back to that bump pointer, with a free large block
 * just below it. */
static void release_to_bump(nu__heap *h, nu__heap_win *w, uintptr_t b,
			    uint32_t prev)
{
	if (prev) {
		hd y = hd_load(b - prev);
		if (hd_free_large(y)) {
			bin_unlink(h, y);
			b -= prev;
			prev = y.prev;
		}
	}
	POISON(b, w->bump - b);
	w->bump = b;
	*last_of(h, w) = prev;
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
 * back to its window's bump pointer when it ends there. */
static void large_release(nu__heap *h, uintptr_t b, hd x)
{
	nu__heap_win *w = win_of(h, b);
	uint32_t s = hd_bytes(x);
	hd y;

	h->frag = 1;
	if (b + s == w->bump) {
		release_to_bump(h, w, b, x.prev);
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

/* True once the far window has been touched since init. */
static inline bool far_used(const nu__heap *h)
{
	return h->win[1].top != h->win[1].base;
}

/* A small block of class c when its list is empty: split a free large
 * block that leaves a large rest, else cut at the near bump, else take a
 * whole free large block, else a block of a bigger class; NULL when none
 * works. When far is set, cutting at the far bump comes in too: right
 * after the near bump once the far window is in use (it is the bump then),
 * else last (resident memory, even wasted, before a first far touch). */
static void *small_get(nu__heap *h, unsigned c, bool far)
{
	uint32_t t = class_size[c] + HD;
	bool far_now = far && far_used(h);
	uint32_t up;
	uintptr_t b;
	void *p;

	if (h->bigmap && (b = large_find(h, t + LARGE_MIN, 4, false)))
		return large_use(h, b, t, 0);
	if ((p = carve(h, &h->win[0], t, 0)))
		return p;
	if (far_now && (p = carve(h, &h->win[1], t, 0)))
		return p;
	if (h->bigmap && (b = large_find(h, t, SCAN_LIMIT, true)))
		return large_use(h, b, t, 0);
	up = h->smallmap & ~((2u << c) - 1);
	if (up)
		return small_pop(h, (unsigned)__builtin_ctz(up));
	return far && !far_now ? carve(h, &h->win[1], t, 0) : NULL;
}

/* A large block of t bytes: from the bins, else at a bump — near then far
 * (only if far is set), or for a big block far then near; NULL if none. */
static void *large_get(nu__heap *h, uint32_t t, bool far)
{
	uintptr_t b;
	void *p;

	if (h->bigmap && (b = large_find(h, t, SCAN_LIMIT, true)))
		return large_use(h, b, t, F_LARGE);
	if (is_big(h, t)) {
		p = carve(h, &h->win[1], t, F_LARGE);
		return p ? p : carve(h, &h->win[0], t, F_LARGE);
	}
	p = carve(h, &h->win[0], t, F_LARGE);
	return p || !far ? p : carve(h, &h->win[1], t, F_LARGE);
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

/* The free run [rs, re), shorter than LARGE_MIN, its first block's prev
 * field prev, not ending at bump: cut it afresh into free small blocks,
 * each of the biggest class that fits (leaving no 16-byte scrap), and file
 * them. A few big blocks serve more requests (exactly or through the
 * bigger-class fallback) than the many scattered ones the run was made of;
 * this is what keeps a fragmented near window from spilling early. */
static void retile(nu__heap *h, uintptr_t rs, uintptr_t re, uint32_t prev)
{
	while (rs < re) {
		uint32_t r = (uint32_t)(re - rs);
		unsigned c = class_of16[(r - HD) >> 4];
		if (class_size[c] + HD > r)
			c--;	/* the biggest class not above r - HD */
		if (r - (class_size[c] + HD) == HD)
			c--;	/* a 16-byte rest could not be a block */
		uint32_t t = class_size[c] + HD;
		small_push(h, rs, (hd){ t, prev, 0, 0 }, c);
		prev = t;
		rs += t;
	}
	set_prev(re, prev);
}

/* [rs, re) is a maximal run of n free blocks of window w, the first of
 * them with prev field prev, and the lists are being rebuilt: give the run
 * back to w's bump if it ends there, else merge it into one large block if
 * it is big enough, else — when cut is set — cut it into as few small
 * blocks as it holds (retile), else file its blocks as they are. */
static void sweep_run(nu__heap *h, nu__heap_win *w, uintptr_t rs,
		      uintptr_t re, uint32_t prev, unsigned n, bool cut)
{
	uint32_t s = (uint32_t)(re - rs);

	if (re == w->bump) {
		POISON(rs, s);
		w->bump = rs;
		*last_of(h, w) = prev;
	} else if (n > 1 && s >= LARGE_MIN) {
		bin_insert(h, rs, (hd){ s, prev, 0, 0 });
		set_prev(re, s);
	} else if (n > 1 && cut) {
		retile(h, rs, re, prev);
	} else {
		for (uintptr_t b = rs; b < re;) {
			hd x = hd_load(b);
			refile(h, b, x);
			b += hd_bytes(x);
		}
	}
}

/* Walk the blocks of window w, merging runs of free ones and filing them
 * again (the lists were emptied by sweep()); cut: see sweep_run(). */
static void sweep_win(nu__heap *h, nu__heap_win *w, bool cut)
{
	uintptr_t b = w->base, rs = 0;
	uint32_t prev = 0;
	unsigned n = 0;

	while (b < w->bump) {
		hd x = hd_load(b);
		if (!(x.size & F_USED)) {
			if (!n++) {
				rs = b;
				prev = x.prev;
			}
		} else if (n) {
			sweep_run(h, w, rs, b, prev, n, cut);
			n = 0;
		}
		b += hd_bytes(x);
	}
	if (n)
		sweep_run(h, w, rs, b, prev, n, cut);
}

/*
 * Merge every run of adjacent free blocks (small ones included) in both
 * windows and rebuild the lists: the last resort before an allocation
 * fails or first spills into the far window. Before a first spill, short
 * runs are retiled too (see "sweep"). O(blocks below the bumps), all of
 * them resident already. Returns false, doing nothing, when no block was
 * freed since the last sweep.
 */
static bool sweep(nu__heap *h)
{
	bool cut = h->win[1].end != h->win[1].base && !far_used(h);

	if (!h->frag)
		return false;
	h->frag = 0;
	h->smallmap = 0;
	h->bigmap = 0;
	sweep_win(h, &h->win[0], cut);
	sweep_win(h, &h->win[1], cut);
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

/* Resize the block at b (header x), which ends at the bump of its window
 * w, to t bytes with flags fl by moving that bump; false when w has no
 * room. */
static bool resize_top(nu__heap *h, nu__heap_win *w, uintptr_t b, hd x,
		       uint32_t t, uint32_t fl)
{
	uint32_t s = hd_bytes(x);

	if (t > s && t - s > w->end - w->bump)
		return false;
	x.size = t | fl | F_USED;
	hd_store(b, x);
	h->used = h->used - s + t;
	w->bump = b + t;
	*last_of(h, w) = t;
	if (w->bump > w->top)
		raise_top(w);
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
 * (0 < n <= NU__HEAP_MAX); false, changing nothing, when it cannot — or
 * should not: a near block growing big moves to the far window when that
 * has room at its bump (so the move cannot fail for want of room). */
static bool resize(nu__heap *h, uintptr_t b, hd x, size_t n)
{
	nu__heap_win *w = win_of(h, b);
	uint32_t s = hd_bytes(x), t, fl;

	if (!(x.size & F_LARGE) && n <= NU__HEAP_SMALL_MAX) {
		t = class_size[class_of16[(n + 15) >> 4]] + HD;
		fl = 0;
	} else {
		t = large_total(n);
		fl = F_LARGE;
	}
	if (t > s && w == &h->win[0] && is_big(h, t) &&
	    t <= h->win[1].end - h->win[1].bump)
		return false;
	if (b + s == w->bump)
		return resize_top(h, w, b, x, t, fl);
	if (!(x.size & F_LARGE))
		return false;
	if (t <= s) {
		shrink(h, b, x, t);
		return true;
	}
	return grow_into_next(h, b, x, t);
}

/* ------------------------------------------------------------ public API */

/* Take [base, base + size) (16-aligned, size at most NU__HEAP_MAX) as the
 * empty window w: stores to *w only. */
static inline void win_init(nu__heap_win *w, void *base, size_t size)
{
	w->base = w->bump = w->top = (uintptr_t)base;
	w->end = (uintptr_t)base + size;
}

/* See heap.h. Stores to *h only, never reads it: the previous owner's
 * state, and the windows behind it, are abandoned as they are. No
 * rounding (init does it): this runs on every spawn. */
void nu__heap_init2(nu__heap *h, void *near, size_t near_size, void *far,
		    size_t far_size)
{
	if (near_size > NU__HEAP_MAX)
		near_size = NU__HEAP_MAX;
	if (far_size > NU__HEAP_MAX || !far)
		far_size = far ? NU__HEAP_MAX : 0;
	win_init(&h->win[0], near, near_size);
	win_init(&h->win[1], far, far_size);
	h->nspan = near_size;
	h->used = 0;
	h->smallmap = 0;
	h->bigmap = 0;
	h->frag = 0;
	h->last[0] = 0;
	h->last[1] = 0;
	h->limit = 0;
#ifdef NU__HEAP_ASAN
	{
		nu__heap_win *w = &h->win[0];
		w->poisoned = w->end - w->base > ASAN_AHEAD ?
			w->base + ASAN_AHEAD : w->end;
		POISON(w->base, w->poisoned - w->base);
		h->win[1].poisoned = h->win[1].base; /* lazily: raise_top */
	}
#endif
}

/* See heap.h. Rounds the window in to 16 bytes, as init2 expects. */
void nu__heap_init(nu__heap *h, void *base, size_t size)
{
	uintptr_t b = ((uintptr_t)base + 15) & ~(uintptr_t)15;
	uintptr_t e;

	if (size > NU__HEAP_MAX)
		size = NU__HEAP_MAX;
	e = ((uintptr_t)base + size) & ~(uintptr_t)15;
	nu__heap_init2(h, (void *)b, e > b ? e - b : 0, NULL, 0);
}

/* Everything but a pop from a non-empty class list: kept out of line so
 * that the fast path in nu__heap_alloc needs no stack frame. Cutting at
 * the far bump is allowed once the far window is in use, or when a sweep
 * could not help (see "spill"). */
__attribute__((noinline)) static void *alloc_slow(nu__heap *h, size_t n)
{
	bool far = !h->frag || far_used(h);
	void *p;

	if (n - 1 < NU__HEAP_SMALL_MAX) {
		unsigned c = class_of16[(n + 15) >> 4];
		p = (h->smallmap >> c & 1) ? small_pop(h, c)
					   : small_get(h, c, far);
	} else {
		if (n == 0 || n > NU__HEAP_MAX)
			return NULL;
		p = large_get(h, large_total(n), far);
	}
	if (unlikely(!p) && sweep(h))
		return alloc_slow(h, n); /* sweeps at most once: far is set */
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
	CHECK(h, room_at(h, b), b, "realloc of a foreign pointer");
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
	uintptr_t b = (uintptr_t)p - HD, room;
	uint32_t s;
	hd x;

	if (!p)
		return;
	room = room_at(h, b);
	(void)room; /* only the checks use it */
	CHECK(h, room, b, "free of a foreign pointer");
	x = hd_load(b);
	s = hd_bytes(x);
	CHECK(h, (x.size & F_USED) && s >= 2 * HD && s <= room, b,
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
uintptr_t nu__heap_top(const nu__heap *h) { return h->win[0].top; }

/* See heap.h. */
uintptr_t nu__heap_far_top(const nu__heap *h) { return h->win[1].top; }

/* ------------------------------------------------------------ self-check */

#define FAIL_IF(c) do { if (c) return -__LINE__; } while (0)

/* Walk the blocks of window w, the size of whose block ending at bump is
 * last: I1, I4 and block sanity; add the usable bytes of the blocks in use
 * to *used, count the free small and free large blocks into *nfs and
 * *nfl. */
static int check_blocks(const nu__heap_win *w, uint32_t last, size_t *used,
			size_t *nfs, size_t *nfl)
{
	uintptr_t b = w->base;
	uint32_t prev = 0;
	bool below_free_large = false;

	FAIL_IF(!(w->base <= w->bump && w->bump <= w->top && w->top <= w->end));
	FAIL_IF((w->base | w->bump | w->end) & 15);
	FAIL_IF(w->end - w->base > NU__HEAP_MAX);
	while (b < w->bump) {
		hd x = hd_load(b);
		uint32_t s = hd_bytes(x);
		FAIL_IF(s < 2 * HD || s > w->bump - b || x.prev != prev);
		if (x.size & F_LARGE)
			FAIL_IF(s < LARGE_MIN);
		else
			FAIL_IF(s - HD > NU__HEAP_SMALL_MAX ||
				class_size[class_of16[(s - HD) >> 4]] != s - HD);
		if (x.size & F_USED)
			*used += s - HD;
		else if (x.size & F_LARGE)
			++*nfl;
		else
			++*nfs;
		FAIL_IF(below_free_large && hd_free_large(x));
		below_free_large = hd_free_large(x);
		prev = s;
		b += s;
	}
	FAIL_IF(last != prev || below_free_large);
	return 0;
}

/* Check that ref r names a block boundary inside [base, bump) of the
 * window its low bit picks. */
static bool bad_ref(const nu__heap *h, uint32_t r)
{
	const nu__heap_win *w = &h->win[r & 1];
	uintptr_t b = blk_of(h, r);

	return (r & 14) || b < w->base || b >= w->bump;
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
	size_t used = 0, nfs = 0, nfl = 0;
	const nu__heap_win *n = &h->win[0], *f = &h->win[1];
	int e;

	FAIL_IF(h->nspan != n->end - n->base);
	FAIL_IF(n->base < n->end && f->base < f->end && n->base < f->end &&
		f->base < n->end); /* the windows overlap */
	if ((e = check_blocks(n, h->last[0], &used, &nfs, &nfl)) ||
	    (e = check_blocks(f, h->last[1], &used, &nfs, &nfl)))
		return e;
	FAIL_IF(used != h->used);
	return check_lists(h, nfs, nfl);
}
