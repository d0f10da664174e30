/* block.h — private to nuproc: the small blocks runtime records are made
 * of (messages, relation records), cached per scheduler (see block.c).
 */
#ifndef NU_BLOCK_H
#define NU_BLOCK_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "pool.h"
#include "sched.h"

/* Bytes of every block. */
#define NU__BLOCK_SIZE 128
/* Free blocks a scheduler keeps: 512 KiB (+ one chain) at most while it
 * works, twice what its processes may have out before a send ends their
 * slice (NU__BLOCK_FLOOD), so that a burst's blocks come back to the
 * cache instead of going to free() and the next burst's to malloc();
 * NU__BLOCK_IDLE_KEEP (64 KiB) once it has been idle a while (sched.c). */
#define NU__BLOCK_CACHE_MAX 4096
#define NU__BLOCK_IDLE_KEEP 512

/* A free block: its first word links the cache. The head of a chain given
 * back to its origin also holds the chain's last block and length and
 * the next chain (block.c). */
typedef struct nu__block {
	struct nu__block *next;
	struct nu__block *last;
	struct nu__block *chains;
	uint64_t n;
} nu__block;

/* s's cache is empty: fill it (block.c). 0 when it stays empty. */
int nu__block_refill(nu__sched *s);

/* The slow halves of nu__block_put: a block given back on s that is not
 * s's own or finds its cache full, and one given back off any scheduler
 * thread. */
void nu__block_put_slow(nu__sched *s, void *b, uint8_t tag);
void nu__block_put_foreign(void *b, uint8_t tag);

/* Set s->nblocks, which only s's thread writes; relaxed, since
 * nu_node_info reads it from any thread (msg_blocks_cached). */
static inline void nu__block_count(nu__sched *s, uint32_t n)
{
	__atomic_store_n(&s->nblocks, n, __ATOMIC_RELAXED);
}

static inline void nu__block_push(nu__sched *s, void *p)
{
	nu__block *b = p;
	b->next = s->blocks;
	s->blocks = b;
	nu__block_count(s, s->nblocks + 1);
}

/* A block of NU__BLOCK_SIZE bytes (16-byte aligned), or NULL: outside a
 * scheduler thread, when this scheduler has many blocks out already
 * (block.c), or out of memory. The caller then mallocs what it needs.
 * *tag gets the block's origin (never 0), to keep with it for
 * nu__block_put. s: the calling thread's scheduler (nu__sched_here(),
 * NULL off the scheduler threads). Inline: the common case is a pop. */
static inline void *nu__block_get_on(nu__sched *s, uint8_t *tag)
{
	if (!s || (__builtin_expect(!s->blocks, 0) && !nu__block_refill(s)))
		return NULL;
	nu__block *b = s->blocks;
	s->blocks = b->next;
	nu__block_count(s, s->nblocks - 1);
	*tag = s->block_tag;
	return b;
}

/* nu__block_get_on for the calling thread's scheduler. Any thread. */
static inline void *nu__block_get(uint8_t *tag)
{
	return nu__block_get_on(nu__sched_here(), tag);
}

/* Give back a block from nu__block_get() with its tag. Any thread; the
 * common case (a block of this scheduler, room in its cache) is a push. */
static inline void nu__block_put(void *b, uint8_t tag)
{
	nu__sched *s = nu__sched_here();
	if (__builtin_expect(!s, 0))
		nu__block_put_foreign(b, tag);
	else if (__builtin_expect(tag == s->block_tag &&
					  s->nblocks < NU__BLOCK_CACHE_MAX,
				  1))
		nu__block_push(s, b);
	else
		nu__block_put_slow(s, b, tag);
}

/* The tag of the blocks scheduler `id` gives out: id + 1, or 255 above
 * 253 (those are not counted back: see block.c). */
static inline uint8_t nu__block_tag(int id)
{
	return id < 254 ? (uint8_t)(id + 1) : 255;
}

/* Blocks out (taken on a scheduler and not given back anywhere) from which
 * the scheduler is flooded: its processes' messages pile up unreceived. */
#define NU__BLOCK_FLOOD 2048

/* Called when s's count of blocks out (blocks_made - nblocks) reached
 * NU__BLOCK_FLOOD: takes in the blocks that came home from other
 * schedulers; nonzero when s is still flooded. s's own thread. */
int nu__block_flood_slow(struct nu__sched *s);

/* Free the blocks beyond keep in s's cache. s's own thread. */
void nu__block_trim(struct nu__sched *s, uint32_t keep);

/* The busy decay's share (sched.c, "Decay"): free half of what s's cache
 * holds beyond keep, at most max blocks. s's own thread. */
void nu__block_decay(struct nu__sched *s, uint32_t keep, uint32_t max);

/* Free the blocks scheduler s keeps (its thread has ended). */
void nu__block_cache_fini(struct nu__sched *s);

/* Records: relation records and signal messages, from the record pool
 * (pool.c) on a scheduler thread, from malloc elsewhere or when the pool
 * has none left; NULL when out of memory. nu__recs_g is the running
 * node's pool, set before its threads start and cleared after they end;
 * a record must not outlive its node. Out of line: the message paths call
 * them only when a message is not a block. */
extern nu__pool *nu__recs_g;
void *nu__rec_alloc(size_t size);

/* Give back a record from nu__rec_alloc(). Any thread. */
void nu__rec_free(void *p);

/* The reservation of the record pool, bytes (address space: pages are
 * populated as records are made), and the free pages it keeps resident
 * once its schedulers have been idle a while. */
#define NU__RECS_RESERVE ((size_t)16 << 30)
#define NU__RECS_IDLE_KEEP 16

#endif
