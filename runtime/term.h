/* term.h — private to nuproc: term layout, heap-explicit constructors,
 * copying, and the Erlang-syntax lexer (see term.c for the design).
 */
#ifndef NU_TERM_H
#define NU_TERM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "heap.h"
#include "nuproc.h"

/* Kinds of boxed objects (low 8 bits of the header word; the rest is the
 * size field, whose unit depends on the kind). */
enum {
	NU__K_POSBIG = 1, /* size: limbs (uint64, little-endian magnitude) */
	NU__K_NEGBIG = 2, /* the same, value negative */
	NU__K_FLOAT = 3,  /* size 1: one double */
	NU__K_BINARY = 4, /* size: bytes, padded to 8 */
	/* NU__K_TUPLE (5; nuproc.h): size: arity; then the elements */
	NU__K_MAP = 6,    /* size: pairs; then the keys (sorted), the values */
	NU__K_REF = 7,    /* size 1: the 64-bit id */
	/* Reserved: NU__K_BINREF (off-heap refcounted binary), funs, remote
	 * pids. */
};

#define NU__HDR(kind, size) (((uint64_t)(size) << 8) | (uint64_t)(kind))
/* NU__HDR_KIND, NU__HDR_SIZE: nuproc.h (its inline accessors read them) */

#define NU__BIG_MAX_LIMBS 128 /* 8192 bits */
#define NU__ATOM_MAX_LEN 255
/* Atoms a node can hold (the atom table's size). */
#define NU__ATOM_MAX (1u << 20)

static inline int nu__is_boxed(nu_term t)
{
	return (t & NU__TAG_MASK) == NU__TAG_BOXED && t != 0;
}
static inline int nu__is_cons(nu_term t)
{
	return (t & NU__TAG_MASK) == NU__TAG_CONS;
}
/* nu__term_words (nuproc.h), writable: for the runtime's constructors. */
static inline uint64_t *nu__box_ptr(nu_term t)
{
	return (uint64_t *)(uintptr_t)nu__term_words(t);
}
static inline unsigned nu__box_kind(nu_term t)
{
	return nu__is_boxed(t) ? NU__HDR_KIND(*nu__box_ptr(t)) : 0;
}

/* A term with words of its own to copy (boxed or a list cell). */
static inline int nu__has_body(nu_term t)
{
	return nu__is_boxed(t) || nu__is_cons(t);
}

/* A valid term with no body: an integer, an atom, a pid or []. One
 * look at the tag (bits 2, 3 and 4 of the mask) for the common ones. */
static inline int nu__term_immediate(nu_term t)
{
	_Static_assert(NU__TAG_INT == 2 && NU__TAG_ATOM == 3 &&
		       NU__TAG_PID == 4, "the mask below");
	return ((0x1cu >> (t & NU__TAG_MASK)) & 1) || t == NU_NIL;
}

/* nu_term_type(t) != NU_T_NONE, inline for the send path: an integer,
 * atom or pid, [], a list cell, or a box of a known kind. */
static inline int nu__term_valid(nu_term t)
{
	switch (t & NU__TAG_MASK) {
	case NU__TAG_BOXED:
		return t && NU__HDR_KIND(*nu__box_ptr(t)) - 1u < 7u;
	case NU__TAG_SPECIAL:
		return t == NU_NIL;
	default:
		return (t & NU__TAG_MASK) <= NU__TAG_PID;
	}
}

/* Bytes of t when it is a small tuple of immediates ({tag, Pid, 42}, most
 * messages), else 0: its deep copy is its words as they are. */
static inline size_t nu__term_flat_tuple(nu_term t)
{
	if (!nu__is_boxed(t))
		return 0;
	const uint64_t *p = nu__box_ptr(t);
	size_t n = NU__HDR_SIZE(p[0]);
	if (NU__HDR_KIND(p[0]) != NU__K_TUPLE || n > 8)
		return 0;
	/* tag 0 or 1: a box, a list cell, or 0 (which no constructor
	 * builds: the deep copy takes it as it is); one test of the tag's
	 * two high bits */
	_Static_assert(NU__TAG_BOXED == 0 && NU__TAG_CONS == 1,
		       "the test below");
	for (size_t i = 1; i <= n; i++)
		if (!(p[i] & 6))
			return 0;
	return (n + 1) * 8;
}

/* The atom name of index i and its length (lock-free); NULL if unknown. */
const char *nu__atom_text(nu_term t, size_t *len);

/*
 * Constructors building in heap h (usable without a node: tests, and the
 * runtime building in another process's heap). Same contracts as the
 * public nu_* ones, with h in place of "the calling process's heap".
 */
nu_term nu__int64_in(nu__heap *h, int64_t n);
nu_term nu__uint64_in(nu__heap *h, uint64_t n);
/* An integer from sign and magnitude limbs[0..n) (little-endian; leading
 * zero limbs allowed): small when it fits, else a bignum. NU_NONE when
 * more than NU__BIG_MAX_LIMBS limbs are significant. */
nu_term nu__bigint_in(nu__heap *h, int neg, const uint64_t *limbs, size_t n);
nu_term nu__float_in(nu__heap *h, double d);
nu_term nu__binary_in(nu__heap *h, const void *p, size_t n);
nu_term nu__tuplev_in(nu__heap *h, size_t n, const nu_term *elems);
nu_term nu__cons_in(nu__heap *h, nu_term head, nu_term tail);
nu_term nu__list_in(nu__heap *h, size_t n, const nu_term *elems);
nu_term nu__map_in(nu__heap *h, size_t n, const nu_term *keys,
		   const nu_term *vals);
nu_term nu__map_put_in(nu__heap *h, nu_term map, nu_term key, nu_term val);
nu_term nu__make_ref_in(nu__heap *h);
/* A fresh reference id: unique in the node, never 0 (ids one scheduler
 * hands out grow; across schedulers they need not). */
uint64_t nu__ref_next(void);
/* The id of a reference term (t must be one: nu_term_type(t) == NU_T_REF). */
/* The atom `name`, looked up once into *slot (atoms are never freed or
 * moved, so a racing second lookup stores the same value). */
static inline nu_term nu__atom_cached(_Atomic nu_term *slot, const char *name)
{
	nu_term a = atomic_load_explicit(slot, memory_order_relaxed);
	if (!a) {
		a = nu_atom(name);
		atomic_store_explicit(slot, a, memory_order_relaxed);
	}
	return a;
}

static inline uint64_t nu__ref_id(nu_term t)
{
	return nu__box_ptr(t)[1];
}
/* A reference with the given id (the parser's #Ref<...> form). */
nu_term nu__ref_in(nu__heap *h, uint64_t id);
/* The calling process's heap, NULL outside a process. */
nu__heap *nu__term_heap(void);
/* nu_term_parse() building in h. */
int nu__term_parse_in(nu__heap *h, const char *text, nu_term *out,
		      size_t *err_pos);

/* Total order used for map keys: as nu_term_compare() but 0 only for
 * exactly equal terms (an integer sorts before the equal float, -0.0
 * before 0.0). */
int nu__term_compare_exact(nu_term a, nu_term b);

/*
 * Copying. A deep copy is laid out in one contiguous block: it shares
 * nothing with the source (shared subterms are duplicated, as Erlang does
 * when sending), and it cannot be half-made.
 */

/* Bytes a deep copy of t needs (0 for an immediate). t must be valid. */
size_t nu__term_flat_size(nu_term t);
/* Deep copy of t into one block allocated from dst; t itself when it is an
 * immediate; NU_NONE (nothing allocated) when dst has no room or t is
 * NU_NONE. The block is never freed piecemeal: it goes with the heap. */
nu_term nu__term_copy(nu_term t, nu__heap *dst);
/* Deep copy of t into buf (8-byte aligned, len >= nu__term_flat_size(t));
 * NU_NONE when len is too small or t is NU_NONE. */
nu_term nu__term_copy_buf(nu_term t, void *buf, size_t len);
/* Deep copy of t (boxed or a list cell) into buf (8-byte aligned, cap
 * bytes) in one pass, without measuring it first: the copy with *used the
 * bytes it took, or NU_NONE when it does not fit (buf then holds junk). */
nu_term nu__term_copy_bounded(nu_term t, void *buf, size_t cap, size_t *used);
/* nu__term_copy_buf for a caller that already knows sz ==
 * nu__term_flat_size(t) > 0 (no second walk to measure it). */
nu_term nu__term_copy_sized(nu_term t, void *buf, size_t sz);

/*
 * The lexer of Erlang-syntax text, shared with the pattern compiler.
 * Tokens point into the source; quoted text is decoded with
 * nu__lex_char(). White space and % comments are skipped.
 */
enum {
	NU__TOK_END = 0,   /* end of text */
	NU__TOK_ERROR,     /* bad character or unterminated quote (at pos) */
	NU__TOK_ATOM,      /* bare atom: [a-z][A-Za-z0-9_@]* */
	NU__TOK_QATOM,     /* 'quoted atom': text inside the quotes */
	NU__TOK_VAR,       /* variable: [A-Z_][A-Za-z0-9_@]* */
	NU__TOK_INT,       /* integer: [-]digits */
	NU__TOK_FLOAT,     /* float: [-]digits.digits[e[+-]digits] */
	NU__TOK_STRING,    /* "string": text inside the quotes */
	NU__TOK_PID,       /* <A.B.C> (three integers in v[]) */
	NU__TOK_REF,       /* #Ref<A.B.C.D> (four integers in v[]) */
	NU__TOK_LBRACE,    /* { */
	NU__TOK_RBRACE,    /* } */
	NU__TOK_LBRACK,    /* [ */
	NU__TOK_RBRACK,    /* ] */
	NU__TOK_BAR,       /* | */
	NU__TOK_COMMA,     /* , */
	NU__TOK_MAPOPEN,   /* #{ */
	NU__TOK_ARROW,     /* => */
	NU__TOK_ASSOC,     /* := */
	NU__TOK_LTLT,      /* << */
	NU__TOK_GTGT,      /* >> */
	NU__TOK_OTHER,     /* any other single punctuation character */
};

typedef struct nu__lexer {
	const char *src;
	size_t len;
	size_t pos;  /* next byte to scan */
} nu__lexer;

typedef struct nu__token {
	int kind;          /* NU__TOK_* */
	size_t pos;        /* offset of the token's first byte */
	const char *text;  /* token text (quoted kinds: inside the quotes) */
	size_t len;
	uint64_t v[4];     /* PID, REF: the dot-separated numbers */
} nu__token;

void nu__lex_init(nu__lexer *lx, const char *src, size_t len);
/* Scan the next token into *tok. Returns tok->kind. */
int nu__lex_next(nu__lexer *lx, nu__token *tok);
/* Decode one character of quoted text at *p (before end), advancing *p:
 * the byte or escape value (0..255), -1 for a bad escape. */
int nu__lex_char(const char **p, const char *end);

#endif
