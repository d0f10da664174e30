/* term.c — Erlang terms: representation, atoms, constructors, accessors,
 * term order, deep copy. (The text form, lexer/parser/printer, is in
 * term_parse.c.)
 *
 * Entities
 *   A term is one 64-bit word; its low three bits are the tag (nuproc.h):
 *     0 boxed    pointer to a header word + payload (8-byte aligned; 0 is
 *                no term). Header = size << 8 | kind (term.h NU__K_*):
 *                  POSBIG/NEGBIG  size limbs of magnitude, little-endian
 *                  FLOAT          one double
 *                  BINARY         size bytes, padded to a word
 *                  TUPLE          size elements
 *                  MAP            size keys, sorted, then size values
 *                  REF            one 64-bit id
 *     1 cons     pointer to two words: head, tail
 *     2 int      61-bit two's complement small integer
 *     3 atom     index into the node-wide atom table
 *     4 pid      a local nu_pid (< 2^56) shifted up three bits
 *     7 special  NU_NIL (payload 0), NU_NONE (payload 1)
 *   Atom table: node-wide (really OS-process-wide: atoms outlive nodes, as
 *   their indices are baked into terms and code). A fixed array of name
 *   records indexed by atom index, and an open-addressing hash of indices
 *   twice as large (never full). Records are malloc'd once and never freed.
 *
 * Invariants
 *   - An integer in NU_INT_MIN..NU_INT_MAX is always a small int; a bignum
 *     never fits that range and has no leading zero limb. So integer
 *     equality is structural, and nu_term_equal is a structural compare.
 *   - Floats are finite (no NaN, no infinity), as in Erlang.
 *   - Map keys are strictly ascending in exact order
 *     (nu__term_compare_exact): unique by =:=, binary-searchable, and two
 *     equal maps have identical layouts.
 *   - Terms are immutable once returned; no constructor returns a term
 *     containing NU_NONE.
 *   - Atom table: a record is published (release) in the index array
 *     before its index is published (release) in the hash; readers
 *     acquire the hash slot, so lookups and nu_atom_name take no lock.
 *     Inserts serialise on one mutex (rare: atoms are few and long-lived).
 *
 * Alternatives rejected
 *   - Boxed pids: a local pid fits 56 bits, so an immediate costs no heap,
 *     compares in one step and copies for free. Remote pids (node bits
 *     set) will need a boxed kind; the header has room for it.
 *   - A per-term heap header word for list cells (BEAM has none either):
 *     cells are the most common object; two words is the minimum.
 *   - A hash-array mapped trie for big maps (BEAM does this above 32
 *     keys): sorted arrays are simpler and fast for the small maps that
 *     messages carry; put is O(n). Revisit if big maps show up.
 *   - Sharing subterms in copies: a copy duplicates shared subterms (like
 *     BEAM's send), trading size for a one-pass, stackless-ish copy.
 *   - Off-heap binaries now: binaries are copied. A later kind
 *     NU__K_BINREF (header + pointer to a refcounted {count, size, bytes}
 *     block outside every heap) will hold big ones; copy will bump the
 *     count instead of copying bytes, and exit will drop it (that needs a
 *     list of a heap's BINREFs, kept by the heap owner).
 *   - Atom garbage collection: Erlang has none either; the table is
 *     bounded (1,048,576) and insertion fails cleanly when full.
 */
#include "term.h"
#include "mailbox.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "proc.h"
#include "sched.h"

/* ------------------------------------------------------------- atoms */

#define ATOM_MAX NU__ATOM_MAX
#define ATOM_HASH (2u * ATOM_MAX)

typedef struct atom_rec {
	uint64_t hash;
	uint32_t len;
	char name[]; /* NUL-terminated */
} atom_rec;

static _Atomic(atom_rec *) atom_tab[ATOM_MAX];
static _Atomic uint32_t atom_hash[ATOM_HASH]; /* 0 empty, else index + 1 */
static uint32_t atom_count;                   /* under atom_lock */
static pthread_mutex_t atom_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t atom_once = PTHREAD_ONCE_INIT;

static const char *const builtin_atoms[] = {
	"normal", "kill", "killed", "shutdown", "noproc", "true", "false",
	"undefined",
};

static uint64_t atom_hashfn(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

/* Index + 1 of the atom, or 0 with *slot the empty hash slot ending the
 * probe. */
static uint32_t atom_find(const char *s, size_t len, uint64_t hv,
			  uint32_t *slot)
{
	uint32_t j = (uint32_t)hv & (ATOM_HASH - 1);
	for (;;) {
		uint32_t v = atomic_load_explicit(&atom_hash[j],
						  memory_order_acquire);
		if (!v) {
			*slot = j;
			return 0;
		}
		atom_rec *r = atomic_load_explicit(&atom_tab[v - 1],
						   memory_order_acquire);
		if (r->hash == hv && r->len == len && !memcmp(r->name, s, len))
			return v;
		j = (j + 1) & (ATOM_HASH - 1);
	}
}

/* Add a new atom; caller holds atom_lock and found none. */
static uint32_t atom_add(const char *s, size_t len, uint64_t hv, uint32_t slot)
{
	if (atom_count >= ATOM_MAX)
		return 0;
	atom_rec *r = malloc(sizeof(*r) + len + 1);
	if (!r)
		return 0;
	r->hash = hv;
	r->len = (uint32_t)len;
	memcpy(r->name, s, len);
	r->name[len] = 0;
	uint32_t i = atom_count++;
	atomic_store_explicit(&atom_tab[i], r, memory_order_release);
	atomic_store_explicit(&atom_hash[slot], i + 1, memory_order_release);
	return i + 1;
}

/* 1 when s[0..len) is valid UTF-8 without NUL bytes. */
static int utf8_ok(const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		unsigned c = s[i], n, cp;
		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c < 0xe0)
			n = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c < 0xf0)
			n = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c < 0xf5)
			n = 3, cp = c & 0x07;
		else
			return 0;
		if (i + n >= len)
			return 0;
		for (unsigned k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000))
			return 0;
		i += n + 1;
	}
	return 1;
}

/* Index + 1 of the atom named s[0..len), added when new; 0 when the table
 * is full, out of memory, or (check) s is not valid UTF-8 without NULs.
 * A name found needs no check: it equals one that passed it. */
static uint32_t atom_intern(const char *s, size_t len, int check)
{
	uint64_t hv = atom_hashfn(s, len);
	uint32_t slot, v = atom_find(s, len, hv, &slot);
	if (v)
		return v;
	if (check && !utf8_ok((const unsigned char *)s, len))
		return 0;
	pthread_mutex_lock(&atom_lock);
	v = atom_find(s, len, hv, &slot);
	if (!v)
		v = atom_add(s, len, hv, slot);
	pthread_mutex_unlock(&atom_lock);
	return v;
}

static void atom_init(void)
{
	for (size_t i = 0; i < sizeof(builtin_atoms) / sizeof(*builtin_atoms);
	     i++) {
		const char *s = builtin_atoms[i];
		if (atom_intern(s, strlen(s), 0) != i + 1)
			abort(); /* the builtin indices are ABI */
	}
}

nu_term nu_atom_len(const char *name, size_t len)
{
	if (!name || len > NU__ATOM_MAX_LEN)
		return NU_NONE;
	pthread_once(&atom_once, atom_init);
	uint32_t v = atom_intern(name, len, 1);
	return v ? NU__ATOM(v - 1) : NU_NONE;
}

nu_term nu_atom(const char *name)
{
	return name ? nu_atom_len(name, strnlen(name, NU__ATOM_MAX_LEN + 1))
		    : NU_NONE;
}

const char *nu__atom_text(nu_term t, size_t *len)
{
	if (!nu_is_atom(t) || (t >> NU__TAG_BITS) >= ATOM_MAX)
		return NULL;
	pthread_once(&atom_once, atom_init);
	atom_rec *r = atomic_load_explicit(&atom_tab[t >> NU__TAG_BITS],
					   memory_order_acquire);
	if (!r)
		return NULL;
	if (len)
		*len = r->len;
	return r->name;
}

const char *nu_atom_name(nu_term t)
{
	return nu__atom_text(t, NULL);
}

/* ------------------------------------------------------ construction */

/* The calling process's heap, or NULL outside a process. */
static inline nu__heap *heap_here(void)
{
	nu__sched *s = nu__sched_here(); /* (constructors never switch) */
	return s && s->current ? &s->current->heap : NULL;
}

nu__heap *nu__term_heap(void)
{
	return heap_here();
}

static uint64_t *alloc_words(nu__heap *h, size_t words)
{
	return h ? nu__heap_alloc(h, words * 8) : NULL;
}

static nu_term box_term(const uint64_t *p)
{
	return (nu_term)(uintptr_t)p;
}

/* Words of the boxed object with header hdr. */
static size_t box_words(uint64_t hdr)
{
	size_t n = NU__HDR_SIZE(hdr);
	switch (NU__HDR_KIND(hdr)) {
	case NU__K_BINARY:
		return 1 + (n + 7) / 8;
	case NU__K_MAP:
		return 1 + 2 * n;
	case NU__K_FLOAT:
	case NU__K_REF:
		return 2;
	default:
		return 1 + n;
	}
}

nu_term nu__bigint_in(nu__heap *h, int neg, const uint64_t *limbs, size_t n)
{
	while (n && !limbs[n - 1])
		n--;
	if (n == 0)
		return nu_int(0);
	if (n == 1 && !neg && limbs[0] <= (uint64_t)NU_INT_MAX)
		return nu_int((int64_t)limbs[0]);
	if (n == 1 && neg && limbs[0] <= (uint64_t)1 << 60)
		return nu_int(-(int64_t)limbs[0]);
	if (n > NU__BIG_MAX_LIMBS)
		return NU_NONE;
	uint64_t *p = alloc_words(h, 1 + n);
	if (!p)
		return NU_NONE;
	p[0] = NU__HDR(neg ? NU__K_NEGBIG : NU__K_POSBIG, n);
	memcpy(p + 1, limbs, n * 8);
	return box_term(p);
}

nu_term nu__int64_in(nu__heap *h, int64_t n)
{
	if (n >= NU_INT_MIN && n <= NU_INT_MAX)
		return nu_int(n);
	uint64_t mag = n < 0 ? (uint64_t)0 - (uint64_t)n : (uint64_t)n;
	return nu__bigint_in(h, n < 0, &mag, 1);
}

nu_term nu__uint64_in(nu__heap *h, uint64_t n)
{
	return nu__bigint_in(h, 0, &n, 1);
}

nu_term nu__float_in(nu__heap *h, double d)
{
	if (!isfinite(d))
		return NU_NONE;
	uint64_t *p = alloc_words(h, 2);
	if (!p)
		return NU_NONE;
	p[0] = NU__HDR(NU__K_FLOAT, 1);
	memcpy(p + 1, &d, 8);
	return box_term(p);
}

nu_term nu__binary_in(nu__heap *h, const void *data, size_t n)
{
	if ((!data && n) || n > ((size_t)1 << 40))
		return NU_NONE;
	uint64_t *p = alloc_words(h, 1 + (n + 7) / 8);
	if (!p)
		return NU_NONE;
	p[0] = NU__HDR(NU__K_BINARY, n);
	if (n) {
		p[(n + 7) / 8] = 0; /* zero the padding */
		memcpy(p + 1, data, n);
	}
	return box_term(p);
}

static int any_none(size_t n, const nu_term *e)
{
	for (size_t i = 0; i < n; i++)
		if (e[i] == NU_NONE || e[i] == 0)
			return 1;
	return 0;
}

nu_term nu__tuplev_in(nu__heap *h, size_t n, const nu_term *elems)
{
	if ((!elems && n) || n > ((size_t)1 << 40) || any_none(n, elems))
		return NU_NONE;
	uint64_t *p = alloc_words(h, 1 + n);
	if (!p)
		return NU_NONE;
	p[0] = NU__HDR(NU__K_TUPLE, n);
	if (n)
		memcpy(p + 1, elems, n * 8);
	return box_term(p);
}

nu_term nu__cons_in(nu__heap *h, nu_term head, nu_term tail)
{
	if (head == NU_NONE || tail == NU_NONE || !head || !tail)
		return NU_NONE;
	uint64_t *p = alloc_words(h, 2);
	if (!p)
		return NU_NONE;
	p[0] = head;
	p[1] = tail;
	return (nu_term)(uintptr_t)p | NU__TAG_CONS;
}

nu_term nu__list_in(nu__heap *h, size_t n, const nu_term *elems)
{
	if ((!elems && n) || any_none(n, elems))
		return NU_NONE;
	nu_term l = NU_NIL;
	while (n--) {
		l = nu__cons_in(h, elems[n], l);
		if (l == NU_NONE)
			return NU_NONE;
	}
	return l;
}

/* Position of key among the sorted keys[0..m): 1 and *at its index when
 * present, else 0 and *at where it belongs. */
static int key_search(const nu_term *keys, size_t m, nu_term key, size_t *at)
{
	size_t lo = 0, hi = m;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = nu__term_compare_exact(keys[mid], key);
		if (c == 0) {
			*at = mid;
			return 1;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*at = lo;
	return 0;
}

nu_term nu__map_in(nu__heap *h, size_t n, const nu_term *keys,
		   const nu_term *vals)
{
	if ((n && (!keys || !vals)) || n > ((size_t)1 << 39) ||
	    any_none(n, keys) || any_none(n, vals))
		return NU_NONE;
	uint64_t *p = alloc_words(h, 1 + 2 * n);
	if (!p)
		return NU_NONE;
	nu_term *k = p + 1, *v = p + 1 + n;
	size_t m = 0, at;
	for (size_t i = 0; i < n; i++) {
		if (key_search(k, m, keys[i], &at)) {
			v[at] = vals[i];
			continue;
		}
		memmove(k + at + 1, k + at, (m - at) * 8);
		memmove(v + at + 1, v + at, (m - at) * 8);
		k[at] = keys[i];
		v[at] = vals[i];
		m++;
	}
	if (m < n)
		memmove(p + 1 + m, v, m * 8);
	p[0] = NU__HDR(NU__K_MAP, m);
	return box_term(p);
}

nu_term nu__map_put_in(nu__heap *h, nu_term map, nu_term key, nu_term val)
{
	if (nu__box_kind(map) != NU__K_MAP || key == NU_NONE || !key ||
	    val == NU_NONE || !val)
		return NU_NONE;
	const uint64_t *q = nu__box_ptr(map);
	size_t n = NU__HDR_SIZE(q[0]), at;
	const nu_term *k = q + 1, *v = q + 1 + n;
	int found = key_search(k, n, key, &at);
	size_t m = n + !found;
	uint64_t *p = alloc_words(h, 1 + 2 * m);
	if (!p)
		return NU_NONE;
	p[0] = NU__HDR(NU__K_MAP, m);
	nu_term *pk = p + 1, *pv = p + 1 + m;
	memcpy(pk, k, at * 8);
	memcpy(pv, v, at * 8);
	pk[at] = key;
	pv[at] = val;
	size_t from = at + found;
	memcpy(pk + at + 1, k + from, (n - from) * 8);
	memcpy(pv + at + 1, v + from, (n - from) * 8);
	return box_term(p);
}

static _Atomic uint64_t ref_counter;

nu_term nu__ref_in(nu__heap *h, uint64_t id)
{
	uint64_t *p = alloc_words(h, 2);
	if (!p)
		return NU_NONE;
	p[0] = NU__HDR(NU__K_REF, 1);
	p[1] = id;
	return box_term(p);
}

/* Reference ids come from one node-wide counter, but a locked add on a
 * line every scheduler writes was one per gen_server call: a scheduler
 * takes REF_BLOCK ids at a time and hands them out by itself. */
#define REF_BLOCK 4096

uint64_t nu__ref_next(void)
{
	nu__sched *s = nu__sched_here(); /* read once, no switch here */
	if (!s)
		return atomic_fetch_add_explicit(&ref_counter, 1,
						 memory_order_relaxed) + 1;
	if (s->ref_next == s->ref_end) {
		s->ref_next = atomic_fetch_add_explicit(&ref_counter, REF_BLOCK,
							memory_order_relaxed) + 1;
		s->ref_end = s->ref_next + REF_BLOCK;
	}
	return s->ref_next++;
}

nu_term nu__make_ref_in(nu__heap *h)
{
	return h ? nu__ref_in(h, nu__ref_next()) : NU_NONE;
}

nu_term nu_int64(int64_t n) { return nu__int64_in(nu__term_heap(), n); }
nu_term nu_uint64(uint64_t n) { return nu__uint64_in(nu__term_heap(), n); }
nu_term nu_float(double d) { return nu__float_in(nu__term_heap(), d); }
nu_term nu_make_ref(void)
{
	nu_term t = nu__make_ref_in(nu__term_heap());
	if (t != NU_NONE) /* the receive marker (mailbox.c) */
		nu__mailbox_mark_ref(nu__ref_id(t));
	return t;
}

nu_term nu_binary(const void *p, size_t n)
{
	return nu__binary_in(nu__term_heap(), p, n);
}

nu_term nu_tuplev(size_t n, const nu_term *elems)
{
	return nu__tuplev_in(nu__term_heap(), n, elems);
}

nu_term nu__tuple_of(const nu_term *a, size_t count)
{
	size_t n = count - 1; /* count >= 1: a[0] is n */
	nu__heap *h = heap_here();
	if (!h || a[0] != n)
		return NU_NONE;
	uint64_t *p = alloc_words(h, 1 + n);
	if (!p)
		return NU_NONE;
	int bad = 0;
	for (size_t i = 1; i <= n; i++) {
		p[i] = a[i];
		bad |= a[i] == NU_NONE || !a[i];
	}
	if (bad) {
		nu__heap_free(h, p);
		return NU_NONE;
	}
	p[0] = NU__HDR(NU__K_TUPLE, n);
	return box_term(p);
}

nu_term (nu_tuple)(size_t n, ...)
{
	nu__heap *h = nu__term_heap();
	if (!h || n > ((size_t)1 << 40))
		return NU_NONE;
	uint64_t *p = alloc_words(h, 1 + n);
	if (!p)
		return NU_NONE;
	va_list ap;
	va_start(ap, n);
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		p[1 + i] = va_arg(ap, nu_term);
		bad |= p[1 + i] == NU_NONE || !p[1 + i];
	}
	va_end(ap);
	if (bad) {
		nu__heap_free(h, p);
		return NU_NONE;
	}
	p[0] = NU__HDR(NU__K_TUPLE, n);
	return box_term(p);
}

nu_term nu_cons(nu_term head, nu_term tail)
{
	return nu__cons_in(nu__term_heap(), head, tail);
}

nu_term nu_list(size_t n, const nu_term *elems)
{
	return nu__list_in(nu__term_heap(), n, elems);
}

nu_term nu_map(size_t n, const nu_term *keys, const nu_term *vals)
{
	return nu__map_in(nu__term_heap(), n, keys, vals);
}

nu_term nu_map_put(nu_term map, nu_term key, nu_term val)
{
	return nu__map_put_in(nu__term_heap(), map, key, val);
}

nu_term nu_pid_term(nu_pid pid)
{
	if (!nu__pid_is_local(pid))
		return NU_NONE;
	return ((nu_term)pid << NU__TAG_BITS) | NU__TAG_PID;
}

/* --------------------------------------------------------- accessors */

const void *nu_binary_data(nu_term t)
{
	return nu__box_kind(t) == NU__K_BINARY ? nu__box_ptr(t) + 1 : NULL;
}

size_t nu_binary_size(nu_term t)
{
	return nu__box_kind(t) == NU__K_BINARY ? NU__HDR_SIZE(*nu__box_ptr(t))
					       : 0;
}

double nu_float_value(nu_term t)
{
	double d = NAN;
	if (nu__box_kind(t) == NU__K_FLOAT)
		memcpy(&d, nu__box_ptr(t) + 1, 8);
	return d;
}

int nu_int64_value(nu_term t, int64_t *out)
{
	if (!out)
		return -EINVAL;
	if (nu_is_int(t)) {
		*out = nu_int_value(t);
		return 0;
	}
	unsigned k = nu__box_kind(t);
	if (k != NU__K_POSBIG && k != NU__K_NEGBIG)
		return -EINVAL;
	const uint64_t *p = nu__box_ptr(t);
	if (NU__HDR_SIZE(p[0]) != 1)
		return -ERANGE;
	if (k == NU__K_POSBIG && p[1] <= (uint64_t)INT64_MAX)
		*out = (int64_t)p[1];
	else if (k == NU__K_NEGBIG && p[1] <= (uint64_t)1 << 63)
		*out = (int64_t)((uint64_t)0 - p[1]);
	else
		return -ERANGE;
	return 0;
}

size_t nu_map_size(nu_term t)
{
	return nu__box_kind(t) == NU__K_MAP ? NU__HDR_SIZE(*nu__box_ptr(t))
					    : 0;
}

int nu_map_get(nu_term map, nu_term key, nu_term *val)
{
	if (nu__box_kind(map) != NU__K_MAP || key == NU_NONE || !key)
		return -EINVAL;
	const uint64_t *p = nu__box_ptr(map);
	size_t n = NU__HDR_SIZE(p[0]), at;
	if (!key_search(p + 1, n, key, &at))
		return -ENOENT;
	if (val)
		*val = p[1 + n + at];
	return 0;
}

/* --------------------------------------------------------- term order */

/* An integer or float as sign and magnitude: sign -1/0/1, magnitude limbs
 * (for a float: its integer part) and frac (a float's nonzero fraction). */
typedef struct num {
	int sign;
	int frac;
	size_t n;
	const uint64_t *limbs;
	uint64_t buf[17]; /* a double below 2^1024 */
} num;

static void num_of_int(nu_term t, num *x)
{
	x->frac = 0;
	if (nu_is_int(t)) {
		int64_t v = nu_int_value(t);
		x->sign = (v > 0) - (v < 0);
		x->buf[0] = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
		x->limbs = x->buf;
		x->n = v != 0;
		return;
	}
	const uint64_t *p = nu__box_ptr(t);
	x->sign = NU__HDR_KIND(p[0]) == NU__K_NEGBIG ? -1 : 1;
	x->n = NU__HDR_SIZE(p[0]);
	x->limbs = p + 1;
}

static void num_of_float(double d, num *x)
{
	x->sign = (d > 0) - (d < 0);
	double a = fabs(d);
	x->limbs = x->buf;
	if (a < 18446744073709551616.0) { /* 2^64 */
		x->buf[0] = (uint64_t)a;
		x->frac = a != (double)x->buf[0];
		x->n = x->buf[0] != 0;
		return;
	}
	int e;
	uint64_t mant = (uint64_t)ldexp(frexp(a, &e), 53); /* a = mant*2^(e-53) */
	int sh = e - 53; /* >= 12 */
	size_t w = (size_t)sh / 64;
	unsigned b = (unsigned)sh % 64;
	memset(x->buf, 0, sizeof(x->buf));
	x->buf[w] = mant << b;
	if (b)
		x->buf[w + 1] = mant >> (64 - b);
	x->n = w + 2;
	while (x->n && !x->buf[x->n - 1])
		x->n--;
	x->frac = 0;
}

static int num_cmp(const num *a, const num *b)
{
	if (a->sign != b->sign)
		return a->sign < b->sign ? -1 : 1;
	int c = 0;
	if (a->n != b->n)
		c = a->n < b->n ? -1 : 1;
	for (size_t i = a->n; !c && i--;)
		if (a->limbs[i] != b->limbs[i])
			c = a->limbs[i] < b->limbs[i] ? -1 : 1;
	if (!c)
		c = a->frac - b->frac;
	return a->sign < 0 ? -c : c;
}

static int number_cmp(nu_term a, int fa, nu_term b, int fb, int exact)
{
	if (!fa && !fb && nu_is_int(a) && nu_is_int(b))
		return (nu_int_value(a) > nu_int_value(b)) -
		       (nu_int_value(a) < nu_int_value(b));
	double da = fa ? nu_float_value(a) : 0, db = fb ? nu_float_value(b) : 0;
	if (fa && fb) {
		if (da != db)
			return da < db ? -1 : 1;
		return exact ? !!signbit(db) - !!signbit(da) : 0;
	}
	num x, y;
	if (fa)
		num_of_float(da, &x);
	else
		num_of_int(a, &x);
	if (fb)
		num_of_float(db, &y);
	else
		num_of_int(b, &y);
	int c = num_cmp(&x, &y);
	if (!c && exact && fa != fb)
		c = fa ? 1 : -1; /* an integer before the equal float */
	return c;
}

static int bytes_cmp(const void *a, size_t na, const void *b, size_t nb)
{
	int c = memcmp(a, b, na < nb ? na : nb);
	if (c)
		return c < 0 ? -1 : 1;
	return (na > nb) - (na < nb);
}

static int rank(nu_term_type_t t)
{
	return t == NU_T_FLOAT ? NU_T_INT : t;
}

static int term_cmp(nu_term a, nu_term b, int exact);

static int tuple_cmp(const uint64_t *p, const uint64_t *q, int exact)
{
	size_t n = NU__HDR_SIZE(p[0]), m = NU__HDR_SIZE(q[0]);
	if (n != m)
		return n < m ? -1 : 1;
	for (size_t i = 1; i <= n; i++) {
		int c = term_cmp(p[i], q[i], exact);
		if (c)
			return c;
	}
	return 0;
}

static int map_cmp(const uint64_t *p, const uint64_t *q, int exact)
{
	size_t n = NU__HDR_SIZE(p[0]), m = NU__HDR_SIZE(q[0]);
	if (n != m)
		return n < m ? -1 : 1;
	for (size_t i = 1; i <= n; i++) {
		int c = term_cmp(p[i], q[i], 1);
		if (c)
			return c;
	}
	for (size_t i = n + 1; i <= 2 * n; i++) {
		int c = term_cmp(p[i], q[i], exact);
		if (c)
			return c;
	}
	return 0;
}

/* Compare two terms of the same rank that are not lists. */
static int same_rank_cmp(nu_term a, nu_term_type_t ta, nu_term b,
			 nu_term_type_t tb, int exact)
{
	const uint64_t *p = nu__box_ptr(a), *q = nu__box_ptr(b);
	size_t la = 0, lb = 0;
	const char *sa, *sb;
	switch (ta) {
	case NU_T_INT:
	case NU_T_FLOAT:
		return number_cmp(a, ta == NU_T_FLOAT, b, tb == NU_T_FLOAT,
				  exact);
	case NU_T_ATOM:
		sa = nu__atom_text(a, &la);
		sb = nu__atom_text(b, &lb);
		return bytes_cmp(sa ? sa : "", la, sb ? sb : "", lb);
	case NU_T_REF:
		return (p[1] > q[1]) - (p[1] < q[1]);
	case NU_T_PID: {
		uint64_t x = (uint64_t)nu_pid_value(a),
			 y = (uint64_t)nu_pid_value(b);
		x = (x & NU__PID_MAX_INDEX) << 40 | x >> NU__PID_INDEX_BITS;
		y = (y & NU__PID_MAX_INDEX) << 40 | y >> NU__PID_INDEX_BITS;
		return (x > y) - (x < y);
	}
	case NU_T_TUPLE:
		return tuple_cmp(p, q, exact);
	case NU_T_MAP:
		return map_cmp(p, q, exact);
	case NU_T_BINARY:
		return bytes_cmp(p + 1, NU__HDR_SIZE(p[0]), q + 1,
				 NU__HDR_SIZE(q[0]));
	default:
		return 0; /* nil, or two non-terms */
	}
}

static int term_cmp(nu_term a, nu_term b, int exact)
{
	for (;;) {
		if (a == b)
			return 0;
		nu_term_type_t ta = nu_term_type(a), tb = nu_term_type(b);
		if (rank(ta) != rank(tb))
			return rank(ta) < rank(tb) ? -1 : 1;
		if (ta != NU_T_LIST)
			return same_rank_cmp(a, ta, b, tb, exact);
		int c = term_cmp(nu__box_ptr(a)[0], nu__box_ptr(b)[0], exact);
		if (c)
			return c;
		a = nu__box_ptr(a)[1];
		b = nu__box_ptr(b)[1];
	}
}

int nu_term_compare(nu_term a, nu_term b)
{
	return term_cmp(a, b, 0);
}

int nu__term_compare_exact(nu_term a, nu_term b)
{
	return term_cmp(a, b, 1);
}

int nu_term_equal(nu_term a, nu_term b)
{
	if (a == NU_NONE || b == NU_NONE)
		return 0;
	return term_cmp(a, b, 1) == 0;
}

/* -------------------------------------------------------------- copy */

#define has_body nu__has_body

size_t nu__term_flat_size(nu_term t)
{
	size_t sz = 0;
	while (nu__is_cons(t)) {
		sz += 16 + nu__term_flat_size(nu__box_ptr(t)[0]);
		t = nu__box_ptr(t)[1];
	}
	if (!nu__is_boxed(t))
		return sz;
	const uint64_t *p = nu__box_ptr(t);
	size_t w = box_words(p[0]);
	if (NU__HDR_KIND(p[0]) == NU__K_TUPLE || NU__HDR_KIND(p[0]) == NU__K_MAP)
		for (size_t i = 1; i < w; i++)
			if (has_body(p[i])) /* immediates add nothing */
				sz += nu__term_flat_size(p[i]);
	return sz + w * 8;
}

typedef struct cbuf {
	uint64_t *p, *end;
} cbuf;

static uint64_t *cbuf_take(cbuf *cb, size_t words)
{
	uint64_t *r = cb->p;
	cb->p += words; /* the caller checked the room */
	return r;
}

/* The deep copy of t into [cb->p, cb->end), the room checked as it goes:
 * NU_NONE as soon as it is too small (a copy of a list cell or a box is
 * never NU_NONE; the runtime's own messages may hold NU_NONE as an
 * immediate element, copied as it is). Callers that measured t first
 * never see NU_NONE; the one-pass copy of a message (mailbox.c) does. */
static __attribute__((noinline)) nu_term copy_term(nu_term t, cbuf *cb)
{
	nu_term res = t, *link = &res;
	while (nu__is_cons(t)) {
		if (cb->end - cb->p < 2)
			return NU_NONE;
		uint64_t *c = cbuf_take(cb, 2);
		nu_term h = nu__box_ptr(t)[0];
		if (!has_body(h))
			c[0] = h;
		else if ((c[0] = copy_term(h, cb)) == NU_NONE)
			return NU_NONE;
		*link = (nu_term)(uintptr_t)c | NU__TAG_CONS;
		link = &c[1];
		t = nu__box_ptr(t)[1];
	}
	if (!nu__is_boxed(t)) {
		*link = t;
		return res;
	}
	const uint64_t *p = nu__box_ptr(t);
	size_t w = box_words(p[0]);
	if ((size_t)(cb->end - cb->p) < w)
		return NU_NONE;
	uint64_t *q = cbuf_take(cb, w);
	if (NU__HDR_KIND(p[0]) == NU__K_TUPLE || NU__HDR_KIND(p[0]) == NU__K_MAP) {
		q[0] = p[0];
		for (size_t i = 1; i < w; i++) /* immediates as they are */
			if (!has_body(p[i]))
				q[i] = p[i];
			else if ((q[i] = copy_term(p[i], cb)) == NU_NONE)
				return NU_NONE;
	} else if (w <= 8) {
		for (size_t i = 0; i < w; i++) /* short: no call */
			q[i] = p[i];
	} else {
		memcpy(q, p, w * 8); /* a binary or a bignum */
	}
	*link = box_term(q);
	return res;
}

nu_term nu__term_copy_bounded(nu_term t, void *buf, size_t cap, size_t *used)
{
	cbuf cb = { buf, (uint64_t *)buf + cap / 8 };
	nu_term r = copy_term(t, &cb);
	*used = (size_t)((char *)cb.p - (char *)buf);
	return r;
}

nu_term nu__term_copy_buf(nu_term t, void *buf, size_t len)
{
	if (t == NU_NONE || !t || ((uintptr_t)buf & 7))
		return NU_NONE;
	size_t sz = nu__term_flat_size(t);
	if (sz == 0)
		return t;
	if (!buf || len < sz)
		return NU_NONE;
	cbuf cb = { buf, (uint64_t *)buf + sz / 8 };
	return copy_term(t, &cb);
}

nu_term nu__term_copy_sized(nu_term t, void *buf, size_t sz)
{
	cbuf cb = { buf, (uint64_t *)buf + sz / 8 };
	return copy_term(t, &cb);
}

nu_term nu__term_copy(nu_term t, nu__heap *dst)
{
	if (t == NU_NONE || !t)
		return NU_NONE;
	size_t sz = nu__term_flat_size(t);
	if (sz == 0)
		return t;
	void *buf = dst ? nu__heap_alloc(dst, sz) : NULL;
	if (!buf)
		return NU_NONE;
	return nu__term_copy_buf(t, buf, sz);
}

void nu_term_free(nu_term t)
{
	if (!has_body(t)) /* NU_NONE, 0 and immediates: nothing to free */
		return;
	/* A copy's root is the first cell of its block (copy_term takes
	 * the root before its children), and a constructor's term is the
	 * start of its own allocation: either way the block starts here. */
	nu__free_here((void *)nu__box_ptr(t));
}
