/* pattern.c — patterns for selective receive: compiler and matcher.
 *
 * Entities.
 *   - A compiled pattern (struct nu_pattern) is one malloc'd block: the
 *     header, the code (an array of 8-byte instructions), the literal
 *     table (nu_term words), the variable names (NUL-terminated, for
 *     nu_pattern_var) and the literals' heap cells, laid out flat by
 *     nu__term_copy_buf(). Nothing in it points outside the block except
 *     atoms and pids (immediates), so it outlives any process and is
 *     shared read-only by any number of threads.
 *   - The code is the pattern tree in preorder: LIT (compare with a
 *     literal, nu_term_equal), ANY (_), BIND (first occurrence of a
 *     variable: check it against pre[] when fixed, then record the
 *     subterm), SAME (a later occurrence: compare with the recorded one),
 *     TUPLE n, CONS (head then tail), MAP n (then n times: KEY k followed
 *     by the value's code).
 *   - The matcher walks the code once with an explicit stack of frames,
 *     one per compound whose children are not all consumed yet: a frame
 *     hands out the subject's next child (the next tuple element, list
 *     head then tail, or the value under the next KEY). A frame is popped
 *     when it hands out its last child, so trailing positions (list tails,
 *     last tuple elements) do not deepen the stack. The stack is a local
 *     array of NU__PATTERN_MAX_FRAMES; the compiler rejects patterns that
 *     would need more, so matching never allocates.
 *
 * Invariants.
 *   - A compound whose children are all literals is folded into one LIT
 *     (except maps: a map pattern allows extra keys, so it is never a
 *     literal). So LIT compares whole variable-free subtrees at once.
 *   - Each named variable has exactly one BIND, and it precedes all its
 *     SAMEs in code order (= matching order).
 *   - KEY instructions follow their MAP in code order, each right after
 *     the previous value's code, so the matcher finds the next KEY at pc
 *     when a map frame hands out a child.
 *
 * Literals are parsed by the term parser itself (nu__term_parse_in) on
 * the literal's source span, into a scratch heap (a private anonymous
 * mapping, unmapped at the end of the compile); the compiler drives the
 * shared lexer only to find structure, variables and spans. The literals
 * the final code uses are then copied into the pattern's block.
 *
 * Rejected alternatives.
 *   - Keeping the scratch heap as the pattern's storage: simpler, but a
 *     whole mapping per pattern and fragmentation from the parser's
 *     temporary vectors; the flat copy is exactly sized.
 *   - A recursive matcher: simplest, but its stack use grows with the
 *     pattern and receive runs on small process stacks; the frame array
 *     is bounded and about 1 KiB.
 *   - Matching against a map's sorted key array in one merge pass: faster
 *     for big map patterns, but a receive pattern names a few keys and
 *     nu_map_get's binary search is enough.
 */
#include "pattern.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "term.h"

enum { OP_LIT, OP_ANY, OP_BIND, OP_SAME, OP_TUPLE, OP_CONS, OP_MAP, OP_KEY };

typedef struct pins {
	uint32_t op;
	uint32_t arg; /* LIT, KEY: literal; BIND, SAME: variable; TUPLE,
			 MAP: count */
} pins;

struct nu_pattern {
	nu__pattern_head h; /* first: pattern.h reads it inline */
	uint32_t ncode, nlits;
	const pins *code;
	const nu_term *lits;
	const char *const *names; /* h.nvars NUL-terminated names */
};

static nu__pattern_sig quick_sig(const nu_pattern *p);

/* ------------------------------------------------------------ matcher */

typedef struct frame {
	const nu_term *elems; /* tuple or cons: the next child */
	nu_term map;          /* map frames: the subject map, else 0 */
	uint32_t left;        /* children still to hand out */
} frame;

/* The subject's next child from the top frame (popped when it hands out
 * its last one), or NU_NONE when a map lacks the key at code[*pc]. */
static nu_term next_child(const nu_pattern *p, frame *st, int *sp,
			  uint32_t *pc)
{
	frame *f = &st[*sp - 1];
	nu_term t;
	if (f->map) {
		const pins *k = &p->code[(*pc)++];
		if (nu_map_get(f->map, p->lits[k->arg], &t))
			return NU_NONE;
	} else {
		t = *f->elems++;
	}
	if (--f->left == 0)
		--*sp;
	return t;
}

static int lit_equal(nu_term lit, nu_term t)
{
	if (!nu__is_boxed(lit) && !nu__is_cons(lit))
		return lit == t; /* immediates are canonical */
	return nu_term_equal(lit, t);
}

/* Push a frame for cur's children when cur has the shape of compound
 * instruction i; 0 when it does not. */
static int enter(const pins *i, nu_term cur, frame *st, int *sp)
{
	frame f = { 0 };
	if (i->op == OP_CONS) {
		if (!nu__is_cons(cur))
			return 0;
		f.elems = nu__box_ptr(cur);
		f.left = 2;
	} else if (i->op == OP_TUPLE) {
		if (nu__box_kind(cur) != NU__K_TUPLE ||
		    NU__HDR_SIZE(*nu__box_ptr(cur)) != i->arg)
			return 0;
		f.elems = nu__box_ptr(cur) + 1;
		f.left = i->arg;
	} else {
		if (nu__box_kind(cur) != NU__K_MAP)
			return 0;
		f.map = cur;
		f.left = i->arg;
	}
	if (f.left)
		st[(*sp)++] = f;
	return 1;
}

int nu_pattern_match(const nu_pattern *p, nu_term t, const nu_term *pre,
		     nu_term *vars)
{
	if (!p || t == NU_NONE || (!vars && p->h.nvars))
		return -EINVAL;
	frame st[NU__PATTERN_MAX_FRAMES];
	int sp = 0;
	uint32_t pc = 0;
	nu_term cur = t;
	for (;;) {
		const pins *i = &p->code[pc++];
		switch (i->op) {
		case OP_LIT:
			if (!lit_equal(p->lits[i->arg], cur))
				return 0;
			break;
		case OP_ANY:
			break;
		case OP_BIND:
			if (pre && pre[i->arg] != NU_NONE &&
			    !nu_term_equal(pre[i->arg], cur))
				return 0;
			vars[i->arg] = cur;
			break;
		case OP_SAME:
			if (vars[i->arg] != cur && !nu_term_equal(vars[i->arg], cur))
				return 0;
			break;
		default: /* TUPLE, CONS, MAP */
			if (!enter(i, cur, st, &sp))
				return 0;
			break;
		}
		if (sp == 0)
			return 1;
		if ((cur = next_child(p, st, &sp, &pc)) == NU_NONE)
			return 0;
	}
}

/* ------------------------------------------------------------ queries */

void nu_pattern_free(nu_pattern *p)
{
	free(p);
}

int nu_pattern_nvars(const nu_pattern *p)
{
	return p ? (int)p->h.nvars : -EINVAL;
}

int nu_pattern_var(const nu_pattern *p, const char *name)
{
	if (!p || !name)
		return -EINVAL;
	for (uint32_t i = 0; i < p->h.nvars; i++)
		if (!strcmp(p->names[i], name))
			return (int)i;
	return -ENOENT;
}

int nu__pattern_fixed_ref(const nu_pattern *p, const nu_term *pre)
{
	if (!p || !pre)
		return -1;
	for (uint32_t i = 0; i < p->h.nvars; i++)
		if (pre[i] != NU_NONE && nu_term_type(pre[i]) == NU_T_REF)
			return (int)i;
	return -1;
}

/* ----------------------------------------------------------- compiler */

typedef struct vname {
	const char *s; /* into the source */
	size_t n;
} vname;

typedef struct comp {
	nu__lexer lx;
	nu__token tok;    /* lookahead */
	nu__heap h;       /* scratch heap for literals */
	void *win;
	size_t winsz;
	pins *code;
	size_t *cpos;     /* source offset of each instruction */
	size_t ncode, capcode, capcpos;
	nu_term *lits;
	size_t nlits, caplits;
	vname *vars;
	size_t nvars, capvars;
	char *buf;        /* NUL-terminated copy of a literal's span */
	size_t capbuf;
	int rc;           /* first error */
	size_t err;       /* its offset */
	int depth;
} comp;

static int fail_at(comp *c, size_t pos, int rc)
{
	if (!c->rc) {
		c->rc = rc;
		c->err = pos;
	}
	return 0;
}

static void advance(comp *c)
{
	nu__lex_next(&c->lx, &c->tok);
}

static int expect(comp *c, int kind)
{
	if (c->tok.kind != kind)
		return fail_at(c, c->tok.pos, -EINVAL);
	advance(c);
	return 1;
}

/* Grow *v (*cap elements of size sz) to hold at least n + 1. */
static int grow(comp *c, void **v, size_t *cap, size_t n, size_t sz)
{
	if (n < *cap)
		return 1;
	size_t nc = *cap ? *cap * 2 : 16;
	while (nc <= n)
		nc *= 2;
	void *q = realloc(*v, nc * sz);
	if (!q)
		return fail_at(c, c->tok.pos, -ENOMEM);
	*v = q;
	*cap = nc;
	return 1;
}

static int emit(comp *c, uint32_t op, uint32_t arg, size_t pos)
{
	if (!grow(c, (void **)&c->code, &c->capcode, c->ncode, sizeof(pins)))
		return 0;
	if (!grow(c, (void **)&c->cpos, &c->capcpos, c->ncode, sizeof(size_t)))
		return 0;
	c->code[c->ncode] = (pins){ op, arg };
	c->cpos[c->ncode++] = pos;
	return 1;
}

/* Emit LIT for t (built in the scratch heap; NU_NONE: out of room). */
static int emit_lit(comp *c, nu_term t, size_t pos)
{
	if (t == NU_NONE)
		return fail_at(c, pos, -ENOMEM);
	if (!grow(c, (void **)&c->lits, &c->caplits, c->nlits, sizeof(nu_term)))
		return 0;
	c->lits[c->nlits] = t;
	return emit(c, OP_LIT, (uint32_t)c->nlits++, pos);
}

static int comp_pat(comp *c);
static int parse_span(comp *c, size_t start, nu_term *t);

/* A variable or _: BIND at its first occurrence, SAME after. */
static int comp_var(comp *c)
{
	size_t pos = c->tok.pos, n = c->tok.len;
	const char *s = c->tok.text;
	advance(c);
	if (n == 1 && *s == '_')
		return emit(c, OP_ANY, 0, pos);
	for (size_t i = 0; i < c->nvars; i++)
		if (c->vars[i].n == n && !memcmp(c->vars[i].s, s, n))
			return emit(c, OP_SAME, (uint32_t)i, pos);
	if (!grow(c, (void **)&c->vars, &c->capvars, c->nvars, sizeof(vname)))
		return 0;
	c->vars[c->nvars] = (vname){ s, n };
	return emit(c, OP_BIND, (uint32_t)c->nvars++, pos);
}

/* A literal leaf (one token, or << ... >>): its source span is handed to
 * the term parser, which reports errors at span offsets. */
static int comp_leaf(comp *c)
{
	size_t start = c->tok.pos;
	if (c->tok.kind == NU__TOK_LTLT)
		while (c->tok.kind != NU__TOK_GTGT && c->tok.kind != NU__TOK_END &&
		       c->tok.kind != NU__TOK_ERROR)
			advance(c);
	if (c->tok.kind == NU__TOK_ERROR)
		return fail_at(c, c->tok.pos, -EINVAL);
	nu_term t;
	return parse_span(c, start, &t) && emit_lit(c, t, start);
}

static nu_term lit_of(const comp *c, size_t pc)
{
	return c->lits[c->code[pc].arg];
}

/* Fold TUPLE n at code[at] into one LIT when its n children are LITs. */
static int fold_tuple(comp *c, size_t at)
{
	size_t n = c->code[at].arg;
	if (c->ncode - at - 1 != n)
		return 1;
	for (size_t k = 1; k <= n; k++)
		if (c->code[at + k].op != OP_LIT)
			return 1;
	nu_term *e = n ? malloc(n * sizeof(*e)) : NULL;
	if (n && !e)
		return fail_at(c, c->cpos[at], -ENOMEM);
	for (size_t k = 0; k < n; k++)
		e[k] = lit_of(c, at + 1 + k);
	nu_term t = nu__tuplev_in(&c->h, n, e);
	free(e);
	c->ncode = at;
	return emit_lit(c, t, c->cpos[at]);
}

/* A braced, comma-separated sequence ({...} or #{...}, the opening token
 * current): instruction op, then elem() for each element; op's arg is
 * the count. The instruction's index, or -1 on failure. */
static ptrdiff_t comp_braced(comp *c, uint32_t op, int (*elem)(comp *))
{
	size_t at = c->ncode;
	uint32_t n = 0;
	if (!emit(c, op, 0, c->tok.pos))
		return -1;
	advance(c);
	if (c->tok.kind != NU__TOK_RBRACE)
		for (;;) {
			if (!elem(c))
				return -1;
			n++;
			if (c->tok.kind != NU__TOK_COMMA)
				break;
			advance(c);
		}
	if (!expect(c, NU__TOK_RBRACE))
		return -1;
	c->code[at].arg = n;
	return (ptrdiff_t)at;
}

static int comp_tuple(comp *c)
{
	ptrdiff_t at = comp_braced(c, OP_TUPLE, comp_pat);
	return at >= 0 && fold_tuple(c, (size_t)at);
}

/* Fold the list's trailing cells whose head and tail are LITs, innermost
 * first. Code ending in CONS LIT LIT at or after `start` can only be a
 * cell of this list: every element's code is a complete subtree, already
 * folded as far as it goes. */
static int fold_list(comp *c, size_t start)
{
	while (c->ncode >= start + 3) {
		size_t at = c->ncode - 3;
		if (c->code[at].op != OP_CONS || c->code[at + 1].op != OP_LIT ||
		    c->code[at + 2].op != OP_LIT)
			return 1;
		nu_term t = nu__cons_in(&c->h, lit_of(c, at + 1),
					lit_of(c, at + 2));
		c->ncode = at;
		if (!emit_lit(c, t, c->cpos[at]))
			return 0;
	}
	return 1;
}

static int comp_list(comp *c)
{
	size_t start = c->ncode, pos = c->tok.pos;
	advance(c);
	if (c->tok.kind == NU__TOK_RBRACK) {
		advance(c);
		return emit_lit(c, NU_NIL, pos);
	}
	for (;;) {
		if (!emit(c, OP_CONS, 0, c->tok.pos) || !comp_pat(c))
			return 0;
		if (c->tok.kind != NU__TOK_COMMA)
			break;
		advance(c);
	}
	if (c->tok.kind == NU__TOK_BAR) {
		advance(c);
		if (!comp_pat(c))
			return 0;
	} else if (!emit_lit(c, NU_NIL, c->tok.pos)) {
		return 0;
	}
	return expect(c, NU__TOK_RBRACK) && fold_list(c, start);
}

/* Parse the source span [start, c->lx.pos) (which ends with the current
 * token) as a literal with the term parser, then move past it. */
static int parse_span(comp *c, size_t start, nu_term *t)
{
	size_t n = c->lx.pos - start, e = 0;
	if (!grow(c, (void **)&c->buf, &c->capbuf, n, 1))
		return 0;
	memcpy(c->buf, c->lx.src + start, n);
	c->buf[n] = 0;
	int rc = nu__term_parse_in(&c->h, c->buf, t, &e);
	if (rc)
		return fail_at(c, start + e, rc);
	advance(c);
	return 1;
}

static int is_open(int k)
{
	return k == NU__TOK_LBRACE || k == NU__TOK_LBRACK ||
	       k == NU__TOK_MAPOPEN || k == NU__TOK_LTLT;
}

static int is_close(int k)
{
	return k == NU__TOK_RBRACE || k == NU__TOK_RBRACK || k == NU__TOK_GTGT;
}

/* A map key: one literal term (any the parser accepts, maps with =>
 * included), found by bracket balance and handed whole to the parser, so
 * a variable in it is reported where it stands. Emitted as KEY. */
static int comp_key(comp *c)
{
	size_t start = c->tok.pos, end;
	int d = 0;
	if (is_close(c->tok.kind))
		return fail_at(c, c->tok.pos, -EINVAL);
	for (;;) {
		int k = c->tok.kind;
		if (k == NU__TOK_ERROR)
			return fail_at(c, c->tok.pos, -EINVAL);
		d += is_open(k) - is_close(k);
		if (d <= 0 || k == NU__TOK_END)
			break;
		advance(c);
	}
	end = c->ncode;
	nu_term t;
	if (!parse_span(c, start, &t) || !emit_lit(c, t, start))
		return 0;
	c->code[end].op = OP_KEY;
	return 1;
}

/* One Key => Pattern association of a map pattern. */
static int comp_assoc(comp *c)
{
	return comp_key(c) && expect(c, NU__TOK_ASSOC) && comp_pat(c);
}

static int comp_map(comp *c)
{
	return comp_braced(c, OP_MAP, comp_assoc) >= 0;
}

static int comp_pat(comp *c)
{
	if (++c->depth > NU__PATTERN_MAX_DEPTH)
		return fail_at(c, c->tok.pos, -EINVAL);
	int ok;
	switch (c->tok.kind) {
	case NU__TOK_VAR: ok = comp_var(c); break;
	case NU__TOK_LBRACE: ok = comp_tuple(c); break;
	case NU__TOK_LBRACK: ok = comp_list(c); break;
	case NU__TOK_MAPOPEN: ok = comp_map(c); break;
	case NU__TOK_ATOM:
	case NU__TOK_QATOM:
	case NU__TOK_INT:
	case NU__TOK_FLOAT:
	case NU__TOK_STRING:
	case NU__TOK_PID:
	case NU__TOK_REF:
	case NU__TOK_LTLT: ok = comp_leaf(c); break;
	default: ok = fail_at(c, c->tok.pos, -EINVAL); break;
	}
	c->depth--;
	return ok;
}

/* Run the matcher's stack discipline over the code without a subject:
 * reject code that would need more than NU__PATTERN_MAX_FRAMES frames. */
static int check_frames(comp *c)
{
	uint32_t left[NU__PATTERN_MAX_FRAMES];
	uint8_t map[NU__PATTERN_MAX_FRAMES];
	int sp = 0;
	for (size_t pc = 0; pc < c->ncode;) {
		const pins *i = &c->code[pc++];
		uint32_t n = i->op == OP_CONS ? 2 :
			     i->op == OP_TUPLE || i->op == OP_MAP ? i->arg : 0;
		if (n && sp == NU__PATTERN_MAX_FRAMES)
			return fail_at(c, c->cpos[pc - 1], -EINVAL);
		if (n) {
			left[sp] = n;
			map[sp++] = i->op == OP_MAP;
		}
		if (sp == 0)
			break;
		pc += map[sp - 1]; /* the KEY */
		if (--left[sp - 1] == 0)
			sp--;
	}
	return 1;
}

/* Lay the code, the literals it uses, the names and the literals' cells
 * out in one malloc'd block. */
static nu_pattern *finish(comp *c)
{
	size_t nl = 0, flat = 0, chars = 0;
	for (size_t i = 0; i < c->ncode; i++)
		if (c->code[i].op == OP_LIT || c->code[i].op == OP_KEY) {
			nl++;
			flat += (nu__term_flat_size(lit_of(c, i)) + 7) & ~(size_t)7;
		}
	for (size_t i = 0; i < c->nvars; i++)
		chars += c->vars[i].n + 1;
	size_t hdr = (sizeof(nu_pattern) + 15) & ~(size_t)15;
	size_t sz = hdr + c->ncode * sizeof(pins) + nl * sizeof(nu_term) +
		    c->nvars * sizeof(char *) + flat + chars;
	char *b = malloc(sz);
	if (!b) {
		fail_at(c, 0, -ENOMEM);
		return NULL;
	}
	nu_pattern *p = (nu_pattern *)b;
	pins *code = (pins *)(b + hdr);
	nu_term *lits = (nu_term *)(code + c->ncode);
	const char **names = (const char **)(lits + nl);
	char *cells = (char *)(names + c->nvars), *str = cells + flat;
	*p = (nu_pattern){ { { 0, 0, 0 }, (uint32_t)c->nvars },
			   (uint32_t)c->ncode, (uint32_t)nl, code, lits, names };
	nl = 0;
	for (size_t i = 0; i < c->ncode; i++) {
		code[i] = c->code[i];
		if (code[i].op != OP_LIT && code[i].op != OP_KEY)
			continue;
		nu_term t = lit_of(c, i);
		size_t n = (nu__term_flat_size(t) + 7) & ~(size_t)7;
		lits[nl] = nu__term_copy_buf(t, cells, n);
		code[i].arg = (uint32_t)nl++;
		cells += n;
	}
	for (size_t i = 0; i < c->nvars; i++) {
		names[i] = str;
		memcpy(str, c->vars[i].s, c->vars[i].n);
		str[c->vars[i].n] = 0;
		str += c->vars[i].n + 1;
	}
	p->h.sig = quick_sig(p);
	return p;
}

/* The shape a subject must have at its top (nu__pattern_sig). */
static nu__pattern_sig quick_sig(const nu_pattern *p)
{
	nu__pattern_sig sg = { 0, 0, 0 };
	if (p->ncode < 2 || p->code[0].op != OP_TUPLE || !p->code[0].arg)
		return sg;
	sg.hdr = NU__HDR(NU__K_TUPLE, p->code[0].arg);
	if (p->code[1].op == OP_LIT) {
		nu_term l = p->lits[p->code[1].arg];
		if (!nu__is_boxed(l) && !nu__is_cons(l))
			sg.first = l; /* an immediate: equal iff the same word */
	}
	/* exact: the tuple's elements are that literal, then only `_` */
	sg.exact = sg.first && p->ncode == p->code[0].arg + 1;
	for (uint32_t i = 2; sg.exact && i < p->ncode; i++)
		sg.exact = p->code[i].op == OP_ANY;
	return sg;
}

static void comp_done(comp *c)
{
	if (c->win)
		munmap(c->win, c->winsz);
	free(c->code);
	free(c->cpos);
	free(c->lits);
	free(c->vars);
	free(c->buf);
}

int nu_pattern_compile(const char *src, nu_pattern **out, size_t *err_pos)
{
	comp c = { 0 };
	nu_pattern *p = NULL;
	if (err_pos)
		*err_pos = 0;
	if (!src || !out)
		return -EINVAL;
	size_t len = strlen(src);
	if (len > ((size_t)1 << 26)) /* bounds the scratch window below */
		return -ENOMEM;
	c.winsz = (((size_t)1 << 20) + 64 * len + 4095) & ~(size_t)4095;
	c.win = mmap(NULL, c.winsz, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (c.win == MAP_FAILED) {
		c.win = NULL;
		return -ENOMEM;
	}
	nu__heap_init2(&c.h, c.win, c.winsz, NULL, 0);
	nu__lex_init(&c.lx, src, len);
	advance(&c);
	if (comp_pat(&c) && c.tok.kind != NU__TOK_END)
		fail_at(&c, c.tok.pos, -EINVAL);
	if (!c.rc && check_frames(&c))
		p = finish(&c);
	comp_done(&c);
	if (c.rc) {
		if (err_pos)
			*err_pos = c.err;
		return c.rc;
	}
	*out = p;
	return 0;
}
