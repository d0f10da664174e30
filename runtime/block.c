/* block.c — small blocks, cached per scheduler.
 *
 * Entities
 *   block  NU__BLOCK_SIZE bytes from malloc. Runtime records that come and
 *          go at message rate are blocks: a message whose copy fits
 *          (mailbox.c).
 *   cache  each scheduler's list of free blocks, at most CACHE_MAX, used
 *          by its own thread only (no atomics, no locks); trimmed to
 *          NU__BLOCK_IDLE_KEEP when the scheduler has been idle a while,
 *          and by half of what it holds beyond that every second while
 *          it stays busy (nu__block_decay; sched.c, "Decay": no low-water
 *          mark, which would cost every message a compare). CACHE_MAX
 *          is twice NU__BLOCK_FLOOD: with 512, a burst of sends up to
 *          the flood limit came back mostly to free() and the next
 *          burst's blocks from malloc() one at a time (fanin: malloc and
 *          free ~23% of its time; 15.7 -> 20.7 M msg/s with 4096, A/B, 5
 *          rounds).
 *   chain  blocks of one scheduler given back on another, on their way
 *          home (see Invariants).
 *
 * Why. A send/receive pair on one scheduler was a malloc and a free of the
 * message, and a gen_server call added a malloc and a free of its monitor
 * record: glibc's free alone was ~100 instructions of a ~1100-instruction
 * one-way message. A get and a put here are a few loads and stores.
 *
 * Not monitor and link records: made blocks, they took ~25 ns off a
 * gen_server call (before calls stopped making monitors, call.c), but a
 * target on another scheduler then fell behind in pruning the records a
 * caller turned off (test_monitor's "do not pile up" saw 2-5 MB where
 * malloc'd records stay under 1 MB); not understood. They come from the
 * record pool (pool.c, nu__rec_alloc below), as do messages that are not
 * blocks but fit its largest record (128 bytes).
 *
 * Invariants. A block is taken from the cache of the scheduler it is
 * taken on, and carries that scheduler (its tag: id + 1) while it is out.
 * Given back on the same scheduler it joins the cache (or free() beyond
 * CACHE_MAX). Given back on another, it goes home: gathered in a chain of
 * BACK_BATCH blocks of one origin, pushed with one CAS onto the origin's
 * blocks_back, a LIFO only its owner empties (by exchange: no ABA), when
 * its cache runs dry. So a producer on one scheduler and a consumer on
 * another recycle the same blocks instead of a malloc on one side and a
 * free() on the other (a 2-scheduler cast: 225 -> 182 ns, a call 146 ->
 * 124 ns). An origin that has BACK_MAX blocks waiting already (idle, or
 * its senders are done) gets a count instead (back_freed) and the blocks
 * are freed where they are. Outside a scheduler thread (the node's
 * caller, the blocking pool) no block is taken; one given back there
 * goes home at once. A cache is freed when its node is torn down, after
 * its thread has ended.
 *
 * Blocks out. blocks_made - nblocks is what a scheduler's processes sent
 * that nobody has received (up to BACK_BATCH - 1 per other scheduler, and
 * the chains not yet taken in, late): nothing to count on the fast path.
 * At NU__BLOCK_FLOOD the scheduler is flooded (mailbox.c ends the slice
 * of a sender to a local receiver); at OUT_MAX it makes no more blocks
 * and messages are exact records (nu__rec_alloc) or mallocs. Before the
 * tag, a block from the cache was not counted when taken but was when
 * given back, so the count
 * drifted below zero on one scheduler (the limit never held) and above
 * OUT_MAX on a producer whose consumer ran elsewhere (its messages were
 * malloc'd from then on). Schedulers 254 and above tag their blocks 255
 * and are not counted (their blocks stay where they are given back).
 *
 * Rejected: one global pool (a locked operation per block, what malloc's
 * arenas already pay), size classes (the records that matter fit one
 * size; bigger messages keep using malloc).
 */
#include "block.h"

#include <stdlib.h>

#include "node.h"
#include "sched.h"

/* Blocks out beyond which a scheduler makes no more: a deep mailbox (a
 * million messages) in 128-byte blocks would be nearly twice its exact
 * size, and first touches of the extra memory cost more than the cache
 * saves (fanin on two schedulers, whose queue is that deep: 5.1 M msg/s
 * in blocks, 7.2 M in exact mallocs; exact records from the pool then
 * took it from 10.9 to 13.3 M). 2 MiB of blocks. */
#define OUT_MAX 16384
/* Blocks of one other scheduler given back here before they go home as
 * one chain (one CAS). */
#define BACK_BATCH 64
#define TAG_UNTRACKED 255 /* the tag of schedulers 254 and above */
#define CACHE_MAX NU__BLOCK_CACHE_MAX
/* Blocks waiting to be taken in at their origin beyond which more are
 * freed where they are given back (send_home). */
#define BACK_MAX 512

nu__pool *nu__recs_g;

static void free_list(nu__block *b)
{
	while (b) {
		nu__block *next = b->next;
		free(b);
		b = next;
	}
}

/* Take the chains other schedulers gave back to s: into its cache (or
 * free() beyond CACHE_MAX), and the counts of those freed elsewhere off
 * its count. Acquire: pairs with chain_push's release, the chains' links
 * and lengths are seen. */
static void back_take(nu__sched *s)
{
	if (atomic_load_explicit(&s->back_freed, memory_order_relaxed))
		s->blocks_made -= atomic_exchange_explicit(
			&s->back_freed, 0, memory_order_relaxed);
	if (!atomic_load_explicit(&s->blocks_back, memory_order_relaxed))
		return; /* (no locked instruction for nothing) */
	nu__block *c = atomic_exchange_explicit(&s->blocks_back, NULL,
						memory_order_acquire);
	int64_t taken = 0;
	while (c) {
		nu__block *next = c->chains;
		uint64_t n = c->n;
		taken += (int64_t)n;
		if (s->nblocks >= CACHE_MAX) {
			c->last->next = NULL;
			free_list(c); /* (c->n is gone now) */
			s->blocks_made -= (int64_t)n;
		} else {
			c->last->next = s->blocks;
			s->blocks = c;
			nu__block_count(s, s->nblocks + (uint32_t)n);
		}
		c = next;
	}
	atomic_fetch_sub_explicit(&s->back_pending, taken,
				  memory_order_relaxed);
}

int nu__block_flood_slow(nu__sched *s)
{
	if (s->block_tag == TAG_UNTRACKED)
		return 0; /* its blocks do not come home: never counted */
	back_take(s);
	return s->blocks_made - (int64_t)s->nblocks >= NU__BLOCK_FLOOD;
}

int nu__block_refill(nu__sched *s)
{
	back_take(s);
	if (s->blocks)
		return 1;
	if (s->blocks_made >= OUT_MAX && s->block_tag != TAG_UNTRACKED)
		return 0; /* a deep queue: exact sizes from malloc */
	nu__block *b = malloc(NU__BLOCK_SIZE);
	if (!b)
		return 0;
	s->blocks_made++;
	b->next = NULL;
	s->blocks = b;
	nu__block_count(s, 1);
	return 1;
}

/* Push the chain head..tail of n blocks onto `to`'s chains. Release:
 * the chain is written before it is seen (back_take). A LIFO that only
 * its owner empties, by exchange, has no ABA. */
static void chain_push(nu__sched *to, nu__block *head, nu__block *tail,
		       uint64_t n)
{
	head->last = tail;
	head->n = n;
	nu__block *old = atomic_load_explicit(&to->blocks_back,
					      memory_order_relaxed);
	do
		head->chains = old;
	while (!atomic_compare_exchange_weak_explicit(
		&to->blocks_back, &old, head, memory_order_release,
		memory_order_relaxed));
}

/* Send n blocks, the chain head..tail, home to o; or, when o has
 * BACK_MAX of them waiting already (it has not needed any lately: its
 * senders are done, or it is idle), free them here and tell o so. */
static void send_home(nu__sched *o, nu__block *head, nu__block *tail,
		      uint64_t n)
{
	if (atomic_load_explicit(&o->back_pending, memory_order_relaxed) >=
	    BACK_MAX) {
		tail->next = NULL;
		free_list(head);
		atomic_fetch_add_explicit(&o->back_freed, (int64_t)n,
					  memory_order_relaxed);
		return;
	}
	chain_push(o, head, tail, n);
	atomic_fetch_add_explicit(&o->back_pending, (int64_t)n,
				  memory_order_relaxed);
}

/* Send the blocks of s->back_to given back here home. */
static void back_flush(nu__sched *s)
{
	if (s->back_n)
		send_home(nu__node_get()->sched[s->back_to], s->back_head,
			  s->back_tail, s->back_n);
	s->back_n = 0;
	s->back_head = NULL;
}

/* Block b of another scheduler (tag) given back on s (NULL: a foreign
 * thread): home in chains of BACK_BATCH, or at once from a foreign
 * thread. 0 when it is not ours to send (an untracked tag). */
static int give_home(nu__sched *s, nu__block *b, uint8_t tag)
{
	if (tag == TAG_UNTRACKED)
		return 0;
	int origin = tag - 1;
	if (!s) {
		send_home(nu__node_get()->sched[origin], b, b, 1);
		return 1;
	}
	if (origin != s->back_to) {
		back_flush(s);
		s->back_to = origin;
	}
	b->next = s->back_head;
	if (!s->back_head)
		s->back_tail = b;
	s->back_head = b;
	if (++s->back_n == BACK_BATCH)
		back_flush(s);
	return 1;
}

void nu__block_put_slow(nu__sched *s, void *p, uint8_t tag)
{
	if (tag != s->block_tag && give_home(s, p, tag))
		return;
	if (s->nblocks < CACHE_MAX) {
		nu__block_push(s, p);
		return;
	}
	s->blocks_made--;
	free(p);
}

void nu__block_put_foreign(void *p, uint8_t tag)
{
	if (!give_home(NULL, p, tag))
		free(p);
}

void nu__block_trim(nu__sched *s, uint32_t keep)
{
	while (s->nblocks > keep) {
		nu__block *b = s->blocks;
		s->blocks = b->next;
		nu__block_count(s, s->nblocks - 1);
		s->blocks_made--;
		free(b);
	}
}

void nu__block_decay(nu__sched *s, uint32_t keep, uint32_t max)
{
	uint32_t n = s->nblocks > keep ? (s->nblocks - keep + 1) / 2 : 0;
	nu__block_trim(s, s->nblocks - (n < max ? n : max));
}

void nu__block_cache_fini(nu__sched *s)
{
	back_take(s);
	free_list(s->blocks);
	free_list(s->back_head);
	s->blocks = s->back_head = NULL;
	s->nblocks = s->back_n = 0;
}

void *nu__rec_alloc(size_t size)
{
	nu__sched *s = nu__sched_here();
	void *p = s ? nu__pool_alloc(&s->recs, size) : NULL;
	return p ? p : malloc(size);
}

void nu__rec_free(void *p)
{
	nu__pool *pl = nu__recs_g;
	if (pl && nu__pool_owns(pl, p)) {
		nu__sched *s = nu__sched_here();
		nu__pool_free(pl, s ? &s->recs : NULL, p);
	} else {
		free(p);
	}
}
