/* block.h — private to nuproc: the small blocks runtime records are made
 * of (messages, relation records), cached per scheduler (see block.c).
 */
#ifndef NU_BLOCK_H
#define NU_BLOCK_H

#include <stddef.h>

struct nu__sched;

/* Bytes of every block. */
#define NU__BLOCK_SIZE 128

/* A block of NU__BLOCK_SIZE bytes (16-byte aligned), or NULL: outside a
 * scheduler thread, when this scheduler has many blocks out (block.c),
 * or out of memory. The caller then mallocs what it needs. Any thread. */
void *nu__block_get(void);

/* Give back a block from nu__block_get(). Any thread. */
void nu__block_put(void *b);

/* Free the blocks scheduler s keeps (its thread has ended). */
void nu__block_cache_fini(struct nu__sched *s);

#endif
