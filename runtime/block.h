/* block.h — private to nuproc: the small blocks runtime records are made
 * of (messages, relation records), cached per scheduler (see block.c).
 */
#ifndef NU_BLOCK_H
#define NU_BLOCK_H

#include <stddef.h>
#include <stdint.h>

struct nu__sched;

/* Bytes of every block. */
#define NU__BLOCK_SIZE 128

/* A block of NU__BLOCK_SIZE bytes (16-byte aligned), or NULL: outside a
 * scheduler thread, when this scheduler has many blocks out already
 * (block.c), or out of memory. The caller then mallocs what it needs.
 * *tag gets the block's origin (never 0), to keep with it for
 * nu__block_put. Any thread. */
void *nu__block_get(uint8_t *tag);

/* Give back a block from nu__block_get() with its tag. Any thread. */
void nu__block_put(void *b, uint8_t tag);

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

/* Free the blocks scheduler s keeps (its thread has ended). */
void nu__block_cache_fini(struct nu__sched *s);

#endif
