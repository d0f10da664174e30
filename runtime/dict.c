/* dict.c — the process dictionary: Erlang's put/get/erase, a map from
 * term keys to term values private to one process.
 *
 * Entities
 *   table   one heap block of the owning process: a header {cap, count}
 *           followed by cap entries {key, value, hash}; p->dict points at
 *           it (NULL until the first put, and again once the last key is
 *           erased). cap is a power of two, at least DICT_MIN_CAP.
 *   entry   key NU_NONE marks an empty slot (NU_NONE is never a valid
 *           key). hash is the key's structural hash (below), stored so that
 *           probes compare one word before calling nu_term_equal and so
 *           that growing and deleting never rehash a term.
 *   hash    a structural hash consistent with exact equality
 *           (nu_term_equal): immediates hash their word (an atom is
 *           interned, so equal atoms are the same word; 1 and 1.0 differ
 *           in tag); boxed terms and list cells hash their contents
 *           recursively. The walk is bounded — at most HASH_DEPTH levels of
 *           nesting, HASH_BUDGET visited terms, HASH_BYTES bytes of a
 *           binary, HASH_LIMBS limbs of a bignum — and depends only on the
 *           term's structure, so two equal terms always get the same hash
 *           (huge terms that differ only past the bound collide, which
 *           costs time, not correctness).
 *
 * Algorithm
 *   Open addressing with linear probing from hash & (cap - 1). The table
 *   doubles when an insert would take the load above 3/4 (a new block;
 *   the old one is freed). Erase uses backward-shift deletion: later
 *   entries of the probe run that may live in the hole move back, so there
 *   are no tombstones and probe runs stay short under churn. All three
 *   operations are O(1) expected; growth is amortised O(1).
 *
 * Ownership
 *   Keys and values are stored by value, not copied: a term the caller
 *   built already lives in its own heap and is immutable, so it stays
 *   valid as long as the caller does not nu_term_free() it (or the
 *   message block it is part of). Everything is in the process heap, so
 *   it all goes at exit with no hook; a new process in the same slot
 *   starts with p->dict == NULL (proc.c).
 *
 * Failure
 *   Only growth allocates. When the new table cannot be had, nu_put
 *   returns -ENOMEM before touching anything, so the dictionary is left
 *   exactly as it was. Overwriting an existing key never allocates.
 *
 * Rejected
 *   - Tombstones: simpler erase, but they pile up under put/erase churn
 *     and need periodic rehashing; backward shift is a few lines more.
 *   - Copying keys/values into a private block (nu__term_copy): would
 *     survive nu_term_free of the original, but doubles the memory and
 *     the cost of every put for terms that are already safe.
 *   - Shrinking on erase: the table is freed when it becomes empty; a
 *     dictionary that was big and is now small keeps its size otherwise.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "heap.h"
#include "nuproc.h"
#include "proc.h"
#include "sched.h"
#include "term.h"

#define DICT_MIN_CAP 8
#define HASH_DEPTH 8    /* nesting levels whose contents are hashed */
#define HASH_BUDGET 64  /* terms visited per hash */
#define HASH_BYTES 256  /* leading bytes of a binary that are hashed */
#define HASH_LIMBS 16   /* low limbs of a bignum that are hashed */

typedef struct dict_ent {
	nu_term key;   /* NU_NONE: empty slot */
	nu_term val;
	uint64_t hash; /* hash of key */
} dict_ent;

typedef struct dict {
	size_t cap;    /* slots, a power of two */
	size_t count;  /* keys stored */
	dict_ent ent[];
} dict;

/* ------------------------------------------------------------------ hash */

/* Fold v into h (multiply-xorshift). */
static inline uint64_t mix(uint64_t h, uint64_t v)
{
	h = (h ^ v) * 0x9e3779b97f4a7c15ull;
	return h ^ (h >> 31);
}

/* Final avalanche so that the low bits (the home slot) depend on all. */
static inline uint64_t finish(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	return h ^ (h >> 33);
}

static uint64_t hash_term(nu_term t, unsigned depth, unsigned *budget);

/* Hash n bytes at b, at most HASH_BYTES of them, in 8-byte words (the last
 * one zero-filled: the padding of a binary is not part of it). */
static uint64_t hash_bytes(uint64_t h, const unsigned char *b, size_t n)
{
	if (n > HASH_BYTES)
		n = HASH_BYTES;
	for (size_t i = 0; i < n; i += 8) {
		uint64_t w = 0;
		memcpy(&w, b + i, n - i < 8 ? n - i : 8);
		h = mix(h, w);
	}
	return h;
}

/* Hash the contents of a boxed object whose header is p[0]. */
static uint64_t hash_box(const uint64_t *p, unsigned depth, unsigned *budget)
{
	uint64_t h = mix(0, p[0]); /* kind and size */
	size_t n = NU__HDR_SIZE(p[0]);
	switch (NU__HDR_KIND(p[0])) {
	case NU__K_POSBIG:
	case NU__K_NEGBIG:
		for (size_t i = 1; i <= n && i <= HASH_LIMBS; i++)
			h = mix(h, p[i]);
		return h;
	case NU__K_FLOAT: /* the bits: 0.0 and -0.0 are different keys */
	case NU__K_REF:
		return mix(h, p[1]);
	case NU__K_BINARY:
		return hash_bytes(h, (const unsigned char *)(p + 1), n);
	case NU__K_TUPLE:
		break;
	case NU__K_MAP: /* keys then values: equal maps share one layout */
		n *= 2;
		break;
	default:
		return h;
	}
	if (depth >= HASH_DEPTH)
		return h;
	for (size_t i = 1; i <= n && *budget; i++)
		h = mix(h, hash_term(p[i], depth + 1, budget));
	return h;
}

/* Structural hash of t (see the top comment); list tails are iterated. */
static uint64_t hash_term(nu_term t, unsigned depth, unsigned *budget)
{
	uint64_t h = 0x2545f4914f6cdd1dull;
	for (;;) {
		if (!*budget)
			return h;
		(*budget)--;
		if (nu__is_cons(t)) {
			const uint64_t *c = nu__box_ptr(t);
			h = mix(h, NU__TAG_CONS);
			if (depth < HASH_DEPTH)
				h = mix(h, hash_term(c[0], depth + 1, budget));
			t = c[1];
			continue;
		}
		if (nu__is_boxed(t))
			return mix(h, hash_box(nu__box_ptr(t), depth, budget));
		return mix(h, t); /* an immediate */
	}
}

static uint64_t dict_hash(nu_term key)
{
	unsigned budget = HASH_BUDGET;
	return finish(hash_term(key, 0, &budget));
}

/* ----------------------------------------------------------------- table */

/* The calling process, NULL outside one. */
static nu__proc *self(void)
{
	nu__sched *s = nu__sched_self();
	return s ? s->current : NULL;
}

/* The entry holding key (hash h) in d, NULL when absent or d is NULL. */
static dict_ent *dict_find(dict *d, nu_term key, uint64_t h)
{
	if (!d)
		return NULL;
	size_t mask = d->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		dict_ent *e = &d->ent[i];
		if (e->key == NU_NONE)
			return NULL;
		if (e->hash == h && (e->key == key || nu_term_equal(e->key, key)))
			return e;
	}
}

/* Store a new key in d (not present, and d has an empty slot). */
static void dict_place(dict *d, nu_term key, nu_term val, uint64_t h)
{
	size_t mask = d->cap - 1, i = h & mask;
	while (d->ent[i].key != NU_NONE)
		i = (i + 1) & mask;
	d->ent[i] = (dict_ent){ key, val, h };
	d->count++;
}

/* Make room for one more key in p's dictionary: allocate it or double it
 * when the load would pass 3/4. 0 or -ENOMEM (nothing changed). */
static int dict_reserve(nu__proc *p)
{
	dict *d = p->dict;
	if (d && (d->count + 1) * 4 <= d->cap * 3)
		return 0;
	size_t cap = d ? d->cap * 2 : DICT_MIN_CAP;
	if (cap > (NU__HEAP_MAX - sizeof(dict)) / sizeof(dict_ent))
		return -ENOMEM;
	dict *nd = nu__heap_alloc(&p->heap,
				  sizeof(dict) + cap * sizeof(dict_ent));
	if (!nd)
		return -ENOMEM;
	nd->cap = cap;
	nd->count = 0;
	for (size_t i = 0; i < cap; i++)
		nd->ent[i].key = NU_NONE;
	if (d) {
		for (size_t i = 0; i < d->cap; i++)
			if (d->ent[i].key != NU_NONE)
				dict_place(nd, d->ent[i].key, d->ent[i].val,
					   d->ent[i].hash);
		nu__heap_free(&p->heap, d);
	}
	p->dict = nd;
	return 0;
}

/* Empty entry e of d by backward shift: each later entry of the probe run
 * whose home slot lies cyclically at or before the hole moves into it,
 * and the hole moves on to where it was. */
static void dict_remove(dict *d, dict_ent *e)
{
	size_t mask = d->cap - 1;
	size_t i = (size_t)(e - d->ent), j = i;
	for (;;) {
		j = (j + 1) & mask;
		if (d->ent[j].key == NU_NONE)
			break;
		size_t home = d->ent[j].hash & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			d->ent[i] = d->ent[j];
			i = j;
		}
	}
	d->ent[i].key = NU_NONE;
	d->count--;
}

/* ------------------------------------------------------------------- API */

/* Store value under key in the caller's dictionary; *old (old may be
 * NULL) gets the previous value, NU_NONE when there was none or on error.
 * 0, -EPERM outside a process, -EINVAL for a NU_NONE key or value,
 * -ENOMEM when the table must grow and the heap has no room (dictionary
 * unchanged). */
int nu_put(nu_term key, nu_term value, nu_term *old)
{
	if (old)
		*old = NU_NONE;
	nu__proc *p = self();
	if (!p)
		return -EPERM;
	if (key == NU_NONE || value == NU_NONE)
		return -EINVAL;
	uint64_t h = dict_hash(key);
	dict_ent *e = dict_find(p->dict, key, h);
	if (e) {
		if (old)
			*old = e->val;
		e->val = value;
		return 0;
	}
	int rc = dict_reserve(p);
	if (rc)
		return rc;
	dict_place(p->dict, key, value, h);
	return 0;
}

/* The value under key in the caller's dictionary; NU_NONE when absent,
 * for a NU_NONE key, or outside a process. */
nu_term nu_get(nu_term key)
{
	nu__proc *p = self();
	if (!p || key == NU_NONE)
		return NU_NONE;
	dict_ent *e = dict_find(p->dict, key, dict_hash(key));
	return e ? e->val : NU_NONE;
}

/* Remove key from the caller's dictionary; *old (old may be NULL) gets
 * the removed value, NU_NONE when key was absent or on error. 0, -EPERM
 * outside a process, -EINVAL for a NU_NONE key. Frees the table when the
 * last key goes. */
int nu_erase(nu_term key, nu_term *old)
{
	if (old)
		*old = NU_NONE;
	nu__proc *p = self();
	if (!p)
		return -EPERM;
	if (key == NU_NONE)
		return -EINVAL;
	dict *d = p->dict;
	dict_ent *e = dict_find(d, key, dict_hash(key));
	if (!e)
		return 0;
	if (old)
		*old = e->val;
	dict_remove(d, e);
	if (!d->count) {
		nu__heap_free(&p->heap, d);
		p->dict = NULL;
	}
	return 0;
}

/* Keys in the caller's dictionary; 0 outside a process. */
size_t nu_dict_size(void)
{
	nu__proc *p = self();
	const dict *d = p ? p->dict : NULL;
	return d ? d->count : 0;
}
