/* term_parse.c — the text form of terms: lexer, parser, printer.
 *
 * The lexer (term.h) turns Erlang-syntax text into tokens that point into
 * the source; it knows variables and := so that the pattern compiler can
 * reuse it. The parser is recursive descent over one token of lookahead
 * and builds straight into a heap; its nesting is bounded (PARSE_DEPTH)
 * so hostile text cannot overflow a process stack. The printer writes
 * snprintf-style and is the parser's inverse: print then parse gives an
 * exactly equal term (floats print with the fewest digits that read back
 * to the same double).
 *
 * Not supported (not needed for data): base#digits, $c character
 * literals, digit separators, \x{...} above 255, funs, ports.
 */
#include "term.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proc.h"

#define PARSE_DEPTH 1000

/* -------------------------------------------------------------- lexer */

static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_lower(int c) { return c >= 'a' && c <= 'z'; }
static int is_upper(int c) { return c >= 'A' && c <= 'Z'; }
static int is_name(int c)
{
	return is_lower(c) || is_upper(c) || is_digit(c) || c == '_' ||
	       c == '@';
}

void nu__lex_init(nu__lexer *lx, const char *src, size_t len)
{
	lx->src = src;
	lx->len = len;
	lx->pos = 0;
}

static int peek(const nu__lexer *lx, size_t off)
{
	size_t i = lx->pos + off;
	return i < lx->len ? (unsigned char)lx->src[i] : -1;
}

static void skip_space(nu__lexer *lx)
{
	for (int c; (c = peek(lx, 0)) >= 0; lx->pos++) {
		if (c == '%') {
			while (peek(lx, 0) >= 0 && peek(lx, 0) != '\n')
				lx->pos++;
			if (peek(lx, 0) < 0)
				return;
		} else if (c != ' ' && c != '\t' && c != '\n' && c != '\r' &&
			   c != '\f' && c != '\v') {
			return;
		}
	}
}

/* Digits at lx->pos into *v (saturating at UINT64_MAX); count of digits. */
static size_t scan_uint(nu__lexer *lx, uint64_t *v)
{
	size_t n = 0;
	*v = 0;
	while (is_digit(peek(lx, 0))) {
		unsigned d = (unsigned)(peek(lx, 0) - '0');
		*v = *v > (UINT64_MAX - d) / 10 ? UINT64_MAX : *v * 10 + d;
		lx->pos++;
		n++;
	}
	return n;
}

/* k dot-separated numbers then '>' into v; restores pos and returns 0
 * when the text does not have that shape. */
static int scan_dotted(nu__lexer *lx, uint64_t *v, int k)
{
	size_t save = lx->pos;
	for (int i = 0; i < k; i++) {
		if (i && peek(lx, 0) != '.')
			goto no;
		lx->pos += i != 0;
		if (!scan_uint(lx, &v[i]))
			goto no;
	}
	if (peek(lx, 0) == '>') {
		lx->pos++;
		return 1;
	}
no:
	lx->pos = save;
	return 0;
}

static int lex_number(nu__lexer *lx, nu__token *tok)
{
	uint64_t v;
	if (peek(lx, 0) == '-')
		lx->pos++;
	scan_uint(lx, &v);
	tok->kind = NU__TOK_INT;
	if (peek(lx, 0) == '.' && is_digit(peek(lx, 1))) {
		lx->pos++;
		scan_uint(lx, &v);
		tok->kind = NU__TOK_FLOAT;
		int c = peek(lx, 1), s = (c == '+' || c == '-');
		if ((peek(lx, 0) == 'e' || peek(lx, 0) == 'E') &&
		    is_digit(peek(lx, 1 + s))) {
			lx->pos += 1 + s;
			scan_uint(lx, &v);
		}
	}
	return tok->kind;
}

static int lex_quoted(nu__lexer *lx, nu__token *tok, int kind)
{
	int q = peek(lx, 0);
	lx->pos++;
	for (int c; (c = peek(lx, 0)) != q; lx->pos++) {
		if (c < 0 || (c == '\\' && peek(lx, 1) < 0))
			return tok->kind = NU__TOK_ERROR; /* at the quote */
		if (c == '\\')
			lx->pos++;
	}
	lx->pos++;
	tok->text++;
	tok->len = lx->pos - tok->pos - 2;
	return tok->kind = kind;
}

static int lex_punct(nu__lexer *lx, nu__token *tok)
{
	static const struct {
		char s[6];
		int kind;
	} two[] = {
		{ "<<", NU__TOK_LTLT }, { ">>", NU__TOK_GTGT },
		{ "#{", NU__TOK_MAPOPEN }, { "=>", NU__TOK_ARROW },
		{ ":=", NU__TOK_ASSOC },
	};
	const char *s = lx->src + lx->pos;
	size_t left = lx->len - lx->pos;
	for (size_t i = 0; i < sizeof(two) / sizeof(*two); i++)
		if (left >= 2 && !memcmp(s, two[i].s, 2)) {
			lx->pos += 2;
			return tok->kind = two[i].kind;
		}
	if (left >= 5 && !memcmp(s, "#Ref<", 5)) {
		lx->pos += 5;
		if (scan_dotted(lx, tok->v, 4))
			return tok->kind = NU__TOK_REF;
		lx->pos -= 5;
	}
	lx->pos++;
	if (*s == '<' && scan_dotted(lx, tok->v, 3))
		return tok->kind = NU__TOK_PID;
	static const char one[] = "{}[]|,";
	static const int kinds[] = { NU__TOK_LBRACE, NU__TOK_RBRACE,
				     NU__TOK_LBRACK, NU__TOK_RBRACK,
				     NU__TOK_BAR, NU__TOK_COMMA };
	const char *p = *s ? strchr(one, *s) : NULL;
	return tok->kind = p ? kinds[p - one] : NU__TOK_OTHER;
}

int nu__lex_next(nu__lexer *lx, nu__token *tok)
{
	skip_space(lx);
	tok->pos = lx->pos;
	tok->text = lx->src + lx->pos;
	int c = peek(lx, 0), kind;
	if (c < 0)
		kind = tok->kind = NU__TOK_END;
	else if (is_lower(c) || is_upper(c) || c == '_') {
		while (is_name(peek(lx, 0)))
			lx->pos++;
		kind = tok->kind = is_lower(c) ? NU__TOK_ATOM : NU__TOK_VAR;
	} else if (is_digit(c) || (c == '-' && is_digit(peek(lx, 1))))
		kind = lex_number(lx, tok);
	else if (c == '\'')
		return lex_quoted(lx, tok, NU__TOK_QATOM);
	else if (c == '"')
		return lex_quoted(lx, tok, NU__TOK_STRING);
	else if (c >= 0x80 || c < 0x20)
		kind = tok->kind = NU__TOK_ERROR;
	else
		kind = lex_punct(lx, tok);
	tok->len = lx->pos - tok->pos;
	return kind;
}

static int hexval(int c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The escape after a backslash at *p (advanced past it). */
static int lex_escape(const char **p, const char *end)
{
	static const char from[] = "ntrsebfvd\\'\"", to[] = "\n\t\r \x1b\b\f\v\x7f\\'\"";
	int c = (unsigned char)*(*p)++, v = 0, n = 0;
	if (c >= '0' && c <= '7') {
		for (v = c - '0'; n < 2 && *p < end && **p >= '0' && **p <= '7';
		     n++)
			v = v * 8 + *(*p)++ - '0';
		return v <= 255 ? v : -1;
	}
	if (c == 'x' && *p < end && **p == '{') {
		for ((*p)++; *p < end && hexval(**p) >= 0 && v <= 255; (*p)++)
			v = v * 16 + hexval(**p);
		if (*p >= end || **p != '}' || v > 255)
			return -1;
		(*p)++;
		return v;
	}
	if (c == 'x') {
		if (end - *p < 2 || hexval((*p)[0]) < 0 || hexval((*p)[1]) < 0)
			return -1;
		v = hexval((*p)[0]) * 16 + hexval((*p)[1]);
		*p += 2;
		return v;
	}
	if (c == '^' && *p < end)
		return *(*p)++ & 31;
	const char *f = c ? strchr(from, c) : NULL;
	return f ? (unsigned char)to[f - from] : -1;
}

int nu__lex_char(const char **p, const char *end)
{
	if (*p >= end)
		return -1;
	int c = (unsigned char)*(*p)++;
	if (c != '\\')
		return c;
	if (*p >= end)
		return -1;
	return lex_escape(p, end);
}

/* One character of a string or binary literal as a code point: raw UTF-8
 * sequences are decoded, escapes give their value. -1 when malformed. */
static long lex_codepoint(const char **p, const char *end)
{
	int c = (unsigned char)**p;
	if (c < 0xc0)
		return nu__lex_char(p, end);
	int n = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
	long cp = c & (0x3f >> n);
	if (end - *p <= n)
		return -1;
	for (int k = 1; k <= n; k++) {
		if (((*p)[k] & 0xc0) != 0x80)
			return -1;
		cp = cp << 6 | ((*p)[k] & 0x3f);
	}
	*p += n + 1;
	return cp;
}

/* ------------------------------------------------------------- parser */

typedef struct parser {
	nu__lexer lx;
	nu__token tok; /* lookahead */
	nu__heap *h;
	int rc;        /* first error */
	size_t err;    /* its position */
	int depth;
} parser;

static void advance(parser *ps)
{
	nu__lex_next(&ps->lx, &ps->tok);
}

/* Record an error at pos (the first one wins); returns NU_NONE. */
static nu_term fail_at(parser *ps, size_t pos, int rc)
{
	if (!ps->rc) {
		ps->rc = rc;
		ps->err = pos;
	}
	return NU_NONE;
}

static nu_term fail(parser *ps)
{
	return fail_at(ps, ps->tok.pos, -EINVAL);
}

/* A constructor's result: NU_NONE there means the heap is full. */
static nu_term built(parser *ps, nu_term t)
{
	return t == NU_NONE ? fail_at(ps, ps->tok.pos, -ENOMEM) : t;
}

static int expect(parser *ps, int kind)
{
	if (ps->tok.kind != kind) {
		fail(ps);
		return 0;
	}
	advance(ps);
	return 1;
}

typedef struct vec {
	nu_term *v;
	size_t n, cap;
} vec;

static int vec_push(parser *ps, vec *x, nu_term t)
{
	if (x->n == x->cap) {
		size_t c = x->cap ? 2 * x->cap : 8;
		nu_term *p = nu__heap_realloc(ps->h, x->v, c * sizeof(*p));
		if (!p) {
			fail_at(ps, ps->tok.pos, -ENOMEM);
			return 0;
		}
		x->v = p;
		x->cap = c;
	}
	x->v[x->n++] = t;
	return 1;
}

static nu_term parse_term(parser *ps);

static nu_term parse_qatom(parser *ps)
{
	char name[NU__ATOM_MAX_LEN];
	size_t n = 0;
	const char *p = ps->tok.text, *end = p + ps->tok.len;
	while (p < end) {
		int esc = *p == '\\', c = nu__lex_char(&p, end);
		if (c < 0 || n + 2 > sizeof(name))
			return fail(ps);
		if (esc && c >= 0x80) { /* an escaped code point: UTF-8 */
			name[n++] = (char)(0xc0 | c >> 6);
			c = 0x80 | (c & 0x3f);
		}
		name[n++] = (char)c;
	}
	nu_term t = nu_atom_len(name, n);
	if (t == NU_NONE)
		return fail(ps);
	advance(ps);
	return t;
}

static nu_term parse_int(parser *ps)
{
	uint64_t limbs[NU__BIG_MAX_LIMBS + 1] = { 0 };
	size_t n = 0;
	const char *p = ps->tok.text, *end = p + ps->tok.len;
	int neg = *p == '-';
	for (p += neg; p < end;) {
		uint64_t chunk = 0, mul = 1;
		for (int k = 0; k < 18 && p < end; k++, p++) {
			chunk = chunk * 10 + (uint64_t)(*p - '0');
			mul *= 10;
		}
		for (size_t i = 0; i < n; i++) { /* limbs = limbs * mul + chunk */
			unsigned __int128 x = (unsigned __int128)limbs[i] * mul + chunk;
			limbs[i] = (uint64_t)x;
			chunk = (uint64_t)(x >> 64);
		}
		if (chunk && n == NU__BIG_MAX_LIMBS + 1)
			return fail(ps);
		if (chunk)
			limbs[n++] = chunk;
	}
	nu_term t = nu__bigint_in(ps->h, neg, limbs, n);
	if (t == NU_NONE && n > NU__BIG_MAX_LIMBS)
		return fail(ps);
	t = built(ps, t);
	advance(ps);
	return t;
}

static nu_term parse_float(parser *ps)
{
	char buf[512];
	if (ps->tok.len >= sizeof(buf))
		return fail(ps);
	memcpy(buf, ps->tok.text, ps->tok.len);
	buf[ps->tok.len] = 0;
	double d = strtod(buf, NULL);
	if (!isfinite(d))
		return fail(ps);
	nu_term t = built(ps, nu__float_in(ps->h, d));
	advance(ps);
	return t;
}

static nu_term parse_string(parser *ps)
{
	nu_term res = NU_NIL, *link = &res;
	const char *p = ps->tok.text, *end = p + ps->tok.len;
	while (p < end) {
		long c = lex_codepoint(&p, end);
		if (c < 0)
			return fail(ps);
		nu_term cell = built(ps, nu__cons_in(ps->h, nu_int(c), NU_NIL));
		if (cell == NU_NONE)
			return NU_NONE;
		*link = cell;
		link = &nu__box_ptr(cell)[1];
	}
	advance(ps);
	return res;
}

static nu_term parse_pid_ref(parser *ps)
{
	const uint64_t *v = ps->tok.v;
	nu_term t = NU_NONE;
	if (ps->tok.kind == NU__TOK_PID) {
		if (v[0] == 0 && v[1] <= NU__PID_MAX_INDEX && v[2] <= UINT32_MAX)
			t = nu_pid_term(nu__pid_make((uint32_t)v[1],
						     (uint32_t)v[2]));
		if (t == NU_NONE)
			return fail(ps);
	} else {
		if (v[0] || v[1] || v[2] > UINT32_MAX || v[3] > UINT32_MAX)
			return fail(ps);
		t = built(ps, nu__ref_in(ps->h, v[2] << 32 | v[3]));
	}
	advance(ps);
	return t;
}

/* Elements up to the closing token (the opening one is consumed). */
static int parse_seq(parser *ps, vec *x, int close)
{
	if (ps->tok.kind == close)
		return 1;
	for (;;) {
		nu_term t = parse_term(ps);
		if (t == NU_NONE || !vec_push(ps, x, t))
			return 0;
		if (ps->tok.kind != NU__TOK_COMMA)
			return 1;
		advance(ps);
	}
}

static nu_term parse_tuple(parser *ps)
{
	vec x = { 0 };
	nu_term t = NU_NONE;
	advance(ps);
	if (parse_seq(ps, &x, NU__TOK_RBRACE) && expect(ps, NU__TOK_RBRACE))
		t = built(ps, nu__tuplev_in(ps->h, x.n, x.v));
	nu__heap_free(ps->h, x.v);
	return t;
}

static nu_term parse_list(parser *ps)
{
	vec x = { 0 };
	nu_term t = NU_NONE, tail = NU_NIL;
	advance(ps);
	if (!parse_seq(ps, &x, NU__TOK_RBRACK))
		goto out;
	if (x.n && ps->tok.kind == NU__TOK_BAR) {
		advance(ps);
		if ((tail = parse_term(ps)) == NU_NONE)
			goto out;
	}
	if (!expect(ps, NU__TOK_RBRACK))
		goto out;
	t = tail;
	for (size_t i = x.n; i-- && t != NU_NONE;)
		t = built(ps, nu__cons_in(ps->h, x.v[i], t));
out:
	nu__heap_free(ps->h, x.v);
	return t;
}

static int parse_pairs(parser *ps, vec *k, vec *v)
{
	if (ps->tok.kind == NU__TOK_RBRACE)
		return 1;
	for (;;) {
		nu_term key = parse_term(ps);
		if (key == NU_NONE || !vec_push(ps, k, key) ||
		    !expect(ps, NU__TOK_ARROW))
			return 0;
		nu_term val = parse_term(ps);
		if (val == NU_NONE || !vec_push(ps, v, val))
			return 0;
		if (ps->tok.kind != NU__TOK_COMMA)
			return 1;
		advance(ps);
	}
}

static nu_term parse_map(parser *ps)
{
	vec k = { 0 }, v = { 0 };
	nu_term t = NU_NONE;
	advance(ps);
	if (parse_pairs(ps, &k, &v) && expect(ps, NU__TOK_RBRACE))
		t = built(ps, nu__map_in(ps->h, k.n, k.v, v.v));
	nu__heap_free(ps->h, k.v);
	nu__heap_free(ps->h, v.v);
	return t;
}

/* One binary element (integer 0..255 or string) appended to x. */
static int parse_bin_elem(parser *ps, vec *x)
{
	if (ps->tok.kind == NU__TOK_INT) {
		size_t pos = ps->tok.pos;
		nu_term t = parse_int(ps);
		if (t == NU_NONE)
			return 0;
		if (!nu_is_int(t) || nu_int_value(t) < 0 ||
		    nu_int_value(t) > 255)
			return fail_at(ps, pos, -EINVAL), 0;
		return vec_push(ps, x, t);
	}
	if (ps->tok.kind != NU__TOK_STRING)
		return fail(ps), 0;
	const char *p = ps->tok.text, *end = p + ps->tok.len;
	while (p < end) {
		long c = lex_codepoint(&p, end);
		if (c < 0 || c > 255)
			return fail(ps), 0;
		if (!vec_push(ps, x, nu_int(c)))
			return 0;
	}
	advance(ps);
	return 1;
}

static nu_term parse_binary(parser *ps)
{
	vec x = { 0 };
	nu_term t = NU_NONE;
	advance(ps);
	int ok = 1;
	if (ps->tok.kind != NU__TOK_GTGT)
		for (;;) {
			if (!(ok = parse_bin_elem(ps, &x)))
				break;
			if (ps->tok.kind != NU__TOK_COMMA)
				break;
			advance(ps);
		}
	if (ok && expect(ps, NU__TOK_GTGT)) {
		unsigned char *b = (unsigned char *)x.v; /* in place */
		for (size_t i = 0; i < x.n; i++)
			b[i] = (unsigned char)nu_int_value(x.v[i]);
		t = built(ps, nu__binary_in(ps->h, b, x.n));
	}
	nu__heap_free(ps->h, x.v);
	return t;
}

static nu_term parse_term(parser *ps)
{
	if (++ps->depth > PARSE_DEPTH)
		return fail(ps);
	nu_term t;
	switch (ps->tok.kind) {
	case NU__TOK_ATOM:
		t = nu_atom_len(ps->tok.text, ps->tok.len);
		t = t == NU_NONE ? fail(ps) : t;
		if (t != NU_NONE)
			advance(ps);
		break;
	case NU__TOK_QATOM: t = parse_qatom(ps); break;
	case NU__TOK_INT: t = parse_int(ps); break;
	case NU__TOK_FLOAT: t = parse_float(ps); break;
	case NU__TOK_STRING: t = parse_string(ps); break;
	case NU__TOK_PID:
	case NU__TOK_REF: t = parse_pid_ref(ps); break;
	case NU__TOK_LBRACE: t = parse_tuple(ps); break;
	case NU__TOK_LBRACK: t = parse_list(ps); break;
	case NU__TOK_MAPOPEN: t = parse_map(ps); break;
	case NU__TOK_LTLT: t = parse_binary(ps); break;
	default: t = fail(ps); break;
	}
	ps->depth--;
	return t;
}

int nu__term_parse_in(nu__heap *h, const char *text, nu_term *out,
		      size_t *err_pos)
{
	parser ps = { .h = h };
	if (err_pos)
		*err_pos = 0;
	if (!text || !out)
		return -EINVAL;
	if (!h)
		return -EPERM;
	nu__lex_init(&ps.lx, text, strlen(text));
	advance(&ps);
	nu_term t = parse_term(&ps);
	if (t != NU_NONE && ps.tok.kind != NU__TOK_END)
		fail(&ps);
	if (ps.rc) {
		if (err_pos)
			*err_pos = ps.err;
		return ps.rc;
	}
	*out = t;
	return 0;
}

int nu_term_parse(const char *text, nu_term *out, size_t *err_pos)
{
	return nu__term_parse_in(nu__term_heap(), text, out, err_pos);
}

/* ------------------------------------------------------------ printer */

typedef struct out {
	char *buf;
	size_t len;
	size_t n; /* bytes the full text needs so far */
} out;

static void put(out *o, const char *s, size_t n)
{
	if (o->n < o->len) {
		size_t room = o->len - 1 - o->n;
		memcpy(o->buf + o->n, s, n < room ? n : room);
	}
	o->n += n;
}

static void puts_(out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void putf(out *o, const char *fmt, ...)
{
	char tmp[64];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	put(o, tmp, n > 0 ? (size_t)n : 0);
}

static int atom_needs_quotes(const char *s, size_t n)
{
	static const char *const reserved[] = {
		"after", "and", "andalso", "band", "begin", "bnot", "bor",
		"bsl", "bsr", "bxor", "case", "catch", "cond", "div", "else",
		"end", "fun", "if", "let", "maybe", "not", "of", "or",
		"orelse", "receive", "rem", "try", "when", "xor",
	};
	if (n == 0 || !is_lower((unsigned char)s[0]))
		return 1;
	for (size_t i = 1; i < n; i++)
		if (!is_name((unsigned char)s[i]))
			return 1;
	for (size_t i = 0; i < sizeof(reserved) / sizeof(*reserved); i++)
		if (!strcmp(s, reserved[i]))
			return 1;
	return 0;
}

/* s[0..n) between quote characters q, escaped so that the lexer reads it
 * back byte for byte (bytes >= 0x80 go raw: UTF-8 text). */
static void put_quoted(out *o, const char *s, size_t n, char q)
{
	put(o, &q, 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == (unsigned char)q || c == '\\') {
			put(o, "\\", 1);
			put(o, (const char *)&c, 1);
		} else if (c == '\n') {
			put(o, "\\n", 2);
		} else if (c == '\t') {
			put(o, "\\t", 2);
		} else if (c < 0x20 || c == 0x7f) {
			putf(o, "\\%03o", c);
		} else {
			put(o, (const char *)&c, 1);
		}
	}
	put(o, &q, 1);
}

static void print_atom(out *o, nu_term t)
{
	size_t n;
	const char *s = nu__atom_text(t, &n);
	if (!s)
		putf(o, "'$unknown_atom_%llu'",
		     (unsigned long long)(t >> NU__TAG_BITS));
	else if (atom_needs_quotes(s, n))
		put_quoted(o, s, n, '\'');
	else
		put(o, s, n);
}

static void print_float(out *o, double d)
{
	char tmp[48];
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	char *e = strchr(tmp, 'e');
	if (strchr(tmp, '.')) {
		puts_(o, tmp);
	} else if (e) { /* 1e+300 -> 1.0e+300 */
		put(o, tmp, (size_t)(e - tmp));
		put(o, ".0", 2);
		puts_(o, e);
	} else {
		puts_(o, tmp);
		put(o, ".0", 2);
	}
}

static void print_bignum(out *o, const uint64_t *p)
{
	uint64_t limbs[NU__BIG_MAX_LIMBS], chunks[NU__BIG_MAX_LIMBS * 20 / 19 + 2];
	size_t n = NU__HDR_SIZE(p[0]), nc = 0;
	const uint64_t base = 10000000000000000000ull; /* 10^19 */
	memcpy(limbs, p + 1, n * 8);
	while (n) {
		unsigned __int128 rem = 0;
		for (size_t i = n; i--;) {
			unsigned __int128 cur = rem << 64 | limbs[i];
			limbs[i] = (uint64_t)(cur / base);
			rem = cur % base;
		}
		chunks[nc++] = (uint64_t)rem;
		while (n && !limbs[n - 1])
			n--;
	}
	if (NU__HDR_KIND(p[0]) == NU__K_NEGBIG)
		put(o, "-", 1);
	putf(o, "%llu", (unsigned long long)chunks[--nc]);
	while (nc--)
		putf(o, "%019llu", (unsigned long long)chunks[nc]);
}

static void print_binary(out *o, const unsigned char *b, size_t n)
{
	int text = n > 0;
	for (size_t i = 0; i < n && text; i++)
		text = b[i] >= 0x20 && b[i] < 0x7f;
	put(o, "<<", 2);
	if (text)
		put_quoted(o, (const char *)b, n, '"');
	for (size_t i = 0; i < n && !text; i++)
		putf(o, i ? ",%u" : "%u", b[i]);
	put(o, ">>", 2);
}

static void print_term(out *o, nu_term t);

static void print_seq(out *o, const nu_term *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i)
			put(o, ",", 1);
		print_term(o, e[i]);
	}
}

static void print_list(out *o, nu_term t)
{
	put(o, "[", 1);
	for (;;) {
		print_term(o, nu__box_ptr(t)[0]);
		t = nu__box_ptr(t)[1];
		if (!nu__is_cons(t))
			break;
		put(o, ",", 1);
	}
	if (t != NU_NIL) {
		put(o, "|", 1);
		print_term(o, t);
	}
	put(o, "]", 1);
}

static void print_map(out *o, const uint64_t *p)
{
	size_t n = NU__HDR_SIZE(p[0]);
	put(o, "#{", 2);
	for (size_t i = 0; i < n; i++) {
		if (i)
			put(o, ",", 1);
		print_term(o, p[1 + i]);
		put(o, " => ", 4);
		print_term(o, p[1 + n + i]);
	}
	put(o, "}", 1);
}

static void print_term(out *o, nu_term t)
{
	const uint64_t *p = nu__box_ptr(t);
	uint64_t v;
	switch (nu_term_type(t)) {
	case NU_T_INT:
		if (nu_is_int(t))
			putf(o, "%lld", (long long)nu_int_value(t));
		else
			print_bignum(o, p);
		break;
	case NU_T_FLOAT: print_float(o, nu_float_value(t)); break;
	case NU_T_ATOM: print_atom(o, t); break;
	case NU_T_REF:
		putf(o, "#Ref<0.0.%u.%u>", (unsigned)(p[1] >> 32),
		     (unsigned)p[1]);
		break;
	case NU_T_PID:
		v = (uint64_t)nu_pid_value(t);
		putf(o, "<0.%u.%u>", nu__pid_index((nu_pid)v),
		     nu__pid_gen((nu_pid)v));
		break;
	case NU_T_TUPLE:
		put(o, "{", 1);
		print_seq(o, p + 1, NU__HDR_SIZE(p[0]));
		put(o, "}", 1);
		break;
	case NU_T_MAP: print_map(o, p); break;
	case NU_T_NIL: put(o, "[]", 2); break;
	case NU_T_LIST: print_list(o, t); break;
	case NU_T_BINARY:
		print_binary(o, (const unsigned char *)(p + 1),
			     NU__HDR_SIZE(p[0]));
		break;
	default: puts_(o, "'$none'"); break;
	}
}

int nu_term_print(nu_term t, char *buf, size_t len)
{
	if (t == NU_NONE || nu_term_type(t) == NU_T_NONE || (!buf && len))
		return -EINVAL;
	out o = { buf, len, 0 };
	print_term(&o, t);
	if (len)
		buf[o.n < len ? o.n : len - 1] = 0;
	return o.n > INT_MAX ? -EOVERFLOW : (int)o.n;
}
