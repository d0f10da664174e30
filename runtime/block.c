/* block.c — small blocks, cached per scheduler.
 *
 * Entities
 *   block  NU__BLOCK_SIZE bytes from malloc. Runtime records that come and
 *          go at message rate are blocks: a message whose copy fits
 *          (mailbox.c).
 *   cache  each scheduler's list of free blocks, at most CACHE_MAX, used
 *          by its own thread only (no atomics, no locks).
 *
 * Why. A send/receive pair on one scheduler was a malloc and a free of the
 * message, and a gen_server call added a malloc and a free of its monitor
 * record: glibc's free alone was ~100 instructions of a ~1100-instruction
 * one-way message. A get and a put here are a few loads and stores.
 *
 * Not (yet) monitor and link records: made blocks, they took ~25 ns off a
 * gen_server call, but a target on another scheduler then fell behind in
 * pruning the records a caller turned off (test_monitor's "do not pile
 * up" saw 2-5 MB where malloc'd records stay under 1 MB); not understood
 * yet, so they stay malloc'd.
 *
 * Invariants. A block freed on another scheduler joins that scheduler's
 * cache (the threads are pinned; a producer/consumer pair across two of
 * them moves blocks one way: the consumer's cache overflows to free(), the
 * producer soon has OUT_MAX blocks out and its callers use malloc as they
 * did before). Outside a scheduler thread (the node's caller, the
 * blocking pool) there are no blocks. A cache is freed when its node is
 * torn down, after its thread has ended.
 *
 * Rejected: one global pool (a locked operation per block, what malloc's
 * arenas already pay), size classes (the records that matter fit one
 * size; bigger messages keep using malloc).
 */
#include "block.h"

#include <stdlib.h>

#include "sched.h"

#define CACHE_MAX 512 /* 64 KiB per scheduler at most */
/* Blocks a scheduler makes (malloc) beyond those given back on it before
 * nu__block_get() says no: a deep mailbox (1000 senders filling one
 * receiver's queue) would hold its messages in 128-byte blocks, nearly
 * twice their exact size, and first touches of the extra memory cost more
 * than the cache saves (fanin went from 5.9 to 4.8 M msg/s). */
#define OUT_MAX 4096

/* A free block: its first word links the cache. */
typedef struct nu__block {
	struct nu__block *next;
} nu__block;

/* nu__sched_here(): these functions read it once and never switch. */
void *nu__block_get(void)
{
	nu__sched *s = nu__sched_here();
	if (!s)
		return NULL;
	nu__block *b = s->blocks;
	if (!b) {
		if (s->blocks_out >= OUT_MAX)
			return NULL; /* a deep queue: exact sizes from malloc */
		s->blocks_out++;
		return malloc(NU__BLOCK_SIZE);
	}
	s->blocks = b->next;
	s->nblocks--;
	return b;
}

void nu__block_put(void *p)
{
	nu__sched *s = nu__sched_here();
	if (s)
		s->blocks_out--; /* (on a consumer's scheduler: below zero) */
	if (!s || s->nblocks >= CACHE_MAX) {
		free(p);
		return;
	}
	nu__block *b = p;
	b->next = s->blocks;
	s->blocks = b;
	s->nblocks++;
}

void nu__block_cache_fini(nu__sched *s)
{
	while (s->blocks) {
		nu__block *b = s->blocks;
		s->blocks = b->next;
		free(b);
	}
	s->nblocks = 0;
}
