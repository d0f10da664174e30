/* test_pattern.c — CUnit suite for receive patterns (pattern.c).
 *
 * Subjects are built in an explicit heap over a private mapping (with the
 * term parser or the nu__*_in constructors); no node runs. Patterns need
 * neither a node nor a process.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "../runtime/pattern.h" /* builds with -I. (meson) */
#include "../runtime/term.h"
#include "nutest.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define WIN ((size_t)256 << 20)

static nu__heap H;
static void *hbase;

static void setup(void)
{
	hbase = mmap(NULL, WIN, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CU_ASSERT_FATAL(hbase != MAP_FAILED);
	nu__heap_init2(&H, hbase, WIN, NULL, 0);
}

static void teardown(void) { munmap(hbase, WIN); }

/* A subject term from text. */
static nu_term T(const char *s)
{
	nu_term t = NU_NONE;
	size_t pos = 0;
	int rc = nu__term_parse_in(&H, s, &t, &pos);
	if (rc)
		fprintf(stderr, "parse '%s': %d at %zu\n", s, rc, pos);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	return t;
}

static nu_pattern *C(const char *src)
{
	nu_pattern *p = NULL;
	size_t pos = 0;
	int rc = nu_pattern_compile(src, &p, &pos);
	if (rc)
		fprintf(stderr, "compile '%s': %d at %zu\n", src, rc, pos);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	return p;
}

static nu_term V[64]; /* bindings of the last M() */

/* Match the text subject s against the text pattern pat. */
static int M(const char *pat, const char *s)
{
	nu_pattern *p = C(pat);
	for (int i = 0; i < 64; i++)
		V[i] = NU_NONE;
	int r = nu_pattern_match(p, T(s), NULL, V);
	nu_pattern_free(p);
	return r;
}

/* V[i] equals the text term s. */
static int B(int i, const char *s)
{
	return nu_term_equal(V[i], T(s));
}

static void test_literals(void)
{
	static const char *const yes[][2] = {
		{ "ok", "ok" }, { "'EXIT'", "'EXIT'" }, { "42", "42" },
		{ "-7", "-7" }, { "123456789012345678901234567890",
				  "123456789012345678901234567890" },
		{ "1.5", "1.5" }, { "<<\"bin\">>", "<<98,105,110>>" },
		{ "<<>>", "<<>>" }, { "\"abc\"", "[97,98,99]" },
		{ "[]", "[]" }, { "{}", "{}" }, { "<0.5.1>", "<0.5.1>" },
		{ "#Ref<0.0.1.2>", "#Ref<0.0.1.2>" },
		{ "{ok, [1, 2 | 3], {<<1>>, 'a b'}}",
		  "{ok,[1,2|3],{<<1>>,'a b'}}" },
		{ "{ok, _, <<\"bin\">>}", "{ok, 17, <<\"bin\">>}" },
		{ "{ok, _, <<\"bin\">>}", "{ok, {deep, [x]}, <<\"bin\">>}" },
	};
	static const char *const no[][2] = {
		{ "ok", "error" }, { "42", "43" }, { "1", "1.0" },
		{ "1.0", "1" }, { "0.0", "-0.0" },
		{ "123456789012345678901234567890",
		  "123456789012345678901234567891" },
		{ "<<\"bin\">>", "<<\"bim\">>" }, { "<<\"bin\">>", "<<\"bi\">>" },
		{ "\"abc\"", "[97,98]" }, { "[]", "{}" }, { "{}", "[]" },
		{ "<0.5.1>", "<0.5.2>" }, { "#Ref<0.0.1.2>", "#Ref<0.0.1.3>" },
		{ "{ok, _, <<\"bin\">>}", "{ok, 1, <<\"bin\">>, x}" },
		{ "{ok, _, <<\"bin\">>}", "{error, 1, <<\"bin\">>}" },
		{ "{ok, _, <<\"bin\">>}", "[ok, 1, <<\"bin\">>]" },
		{ "{a}", "a" }, { "[a]", "[a|b]" }, { "[a|b]", "[a]" },
	};
	for (size_t i = 0; i < sizeof(yes) / sizeof(*yes); i++) {
		int r = M(yes[i][0], yes[i][1]);
		if (r != 1)
			fprintf(stderr, "expected match: %s ~ %s\n", yes[i][0],
				yes[i][1]);
		CU_ASSERT_EQUAL(r, 1);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(*no); i++) {
		int r = M(no[i][0], no[i][1]);
		if (r != 0)
			fprintf(stderr, "expected no match: %s ~ %s\n",
				no[i][0], no[i][1]);
		CU_ASSERT_EQUAL(r, 0);
	}
}

static void test_variables(void)
{
	CU_ASSERT_EQUAL(M("{reply, Ref, Value}", "{reply, #Ref<0.0.0.9>, [1]}"), 1);
	CU_ASSERT(B(0, "#Ref<0.0.0.9>") && B(1, "[1]"));
	CU_ASSERT_EQUAL(M("{reply, Ref, Value}", "{reply, x}"), 0);
	CU_ASSERT_EQUAL(M("{'EXIT', Pid, _}", "{'EXIT', <0.3.4>, normal}"), 1);
	CU_ASSERT(B(0, "<0.3.4>"));
	CU_ASSERT_EQUAL(V[1], NU_NONE); /* _ binds nothing */
	CU_ASSERT_EQUAL(M("[H|T]", "[1,2,3]"), 1);
	CU_ASSERT(B(0, "1") && B(1, "[2,3]"));
	CU_ASSERT_EQUAL(M("[H|T]", "[x|y]"), 1);
	CU_ASSERT(B(0, "x") && B(1, "y"));
	CU_ASSERT_EQUAL(M("[H|T]", "[]"), 0);
	CU_ASSERT_EQUAL(M("[A, B | C]", "[1]"), 0);
	CU_ASSERT_EQUAL(M("[A, B | C]", "[1,2]"), 1);
	CU_ASSERT(B(0, "1") && B(1, "2") && B(2, "[]"));
	CU_ASSERT_EQUAL(M("[A, b]", "[1, b]"), 1);
	CU_ASSERT_EQUAL(M("[A, b]", "[1, b, c]"), 0);
	CU_ASSERT_EQUAL(M("X", "{any, [thing]}"), 1);
	CU_ASSERT(B(0, "{any, [thing]}"));
	CU_ASSERT_EQUAL(M("_", "1.0"), 1);
	/* repeated variables */
	CU_ASSERT_EQUAL(M("{tag, 42, X, X}", "{tag, 42, {a,[b]}, {a,[b]}}"), 1);
	CU_ASSERT(B(0, "{a,[b]}"));
	CU_ASSERT_EQUAL(M("{tag, 42, X, X}", "{tag, 42, {a,[b]}, {a,[c]}}"), 0);
	CU_ASSERT_EQUAL(M("{tag, 42, X, X}", "{tag, 42, 1, 1.0}"), 0);
	CU_ASSERT_EQUAL(M("{tag, 42, X, X}", "{tag, 41, 1, 1}"), 0);
	CU_ASSERT_EQUAL(M("[X, {Y, X} | Y]", "[1, {2, 1} | 2]"), 1);
	CU_ASSERT_EQUAL(M("[X, {Y, X} | Y]", "[1, {2, 1} | 3]"), 0);
	CU_ASSERT_EQUAL(M("{_, _}", "{1, 2}"), 1); /* _ never repeats */
	CU_ASSERT_EQUAL(M("{_A, _A}", "{1, 2}"), 0); /* _A does */
	CU_ASSERT_EQUAL(M("{_A, _A}", "{2, 2}"), 1);
	/* deep nesting */
	CU_ASSERT_EQUAL(M("{a, {b, {c, {d, [e, {f, X} | _]}}}, Y}",
			  "{a, {b, {c, {d, [e, {f, 1}, g]}}}, 2}"), 1);
	CU_ASSERT(B(0, "1") && B(1, "2"));
	CU_ASSERT_EQUAL(M("{a, {b, {c, {d, [e, {f, X} | _]}}}, Y}",
			  "{a, {b, {c, {d, [e, {g, 1}, g]}}}, 2}"), 0);
}

static void test_nvars(void)
{
	nu_pattern *p = C("{A, _, B, A, _C, [B | D]}");
	CU_ASSERT_EQUAL(nu_pattern_nvars(p), 4);
	CU_ASSERT_EQUAL(nu_pattern_var(p, "A"), 0);
	CU_ASSERT_EQUAL(nu_pattern_var(p, "B"), 1);
	CU_ASSERT_EQUAL(nu_pattern_var(p, "_C"), 2);
	CU_ASSERT_EQUAL(nu_pattern_var(p, "D"), 3);
	CU_ASSERT_EQUAL(nu_pattern_var(p, "_"), -ENOENT);
	CU_ASSERT_EQUAL(nu_pattern_var(p, "E"), -ENOENT);
	CU_ASSERT_EQUAL(nu_pattern_var(p, "Ab"), -ENOENT);
	CU_ASSERT_EQUAL(nu_pattern_var(p, NULL), -EINVAL);
	CU_ASSERT_EQUAL(nu_pattern_var(NULL, "A"), -EINVAL);
	CU_ASSERT_EQUAL(nu_pattern_nvars(NULL), -EINVAL);
	nu_pattern_free(p);
	p = C("{ok, _}");
	CU_ASSERT_EQUAL(nu_pattern_nvars(p), 0);
	CU_ASSERT_EQUAL(nu_pattern_match(p, T("{ok, 1}"), NULL, NULL), 1);
	CU_ASSERT_EQUAL(nu_pattern_match(p, T("{ok, 1, 2}"), NULL, NULL), 0);
	nu_pattern_free(p);
	nu_pattern_free(NULL);
}

static void test_prebound(void)
{
	nu_pattern *p = C("{reply, Ref, Value}");
	nu_term ref = T("#Ref<0.0.7.7>"), pre[2] = { ref, NU_NONE }, v[2];
	CU_ASSERT_EQUAL(nu_pattern_match(p, T("{reply, #Ref<0.0.7.7>, 5}"),
					 pre, v), 1);
	CU_ASSERT(nu_term_equal(v[0], ref) && nu_term_equal(v[1], nu_int(5)));
	CU_ASSERT_EQUAL(nu_pattern_match(p, T("{reply, #Ref<0.0.7.8>, 5}"),
					 pre, v), 0);
	CU_ASSERT_EQUAL(nu__pattern_fixed_ref(p, pre), 0);
	CU_ASSERT_EQUAL(nu__pattern_fixed_ref(p, NULL), -1);
	CU_ASSERT_EQUAL(nu__pattern_fixed_ref(NULL, pre), -1);
	nu_term pre2[2] = { NU_NONE, T("{x, 1}") };
	CU_ASSERT_EQUAL(nu__pattern_fixed_ref(p, pre2), -1); /* not a ref */
	CU_ASSERT_EQUAL(nu_pattern_match(p, T("{reply, 1, {x, 1}}"), pre2, v), 1);
	CU_ASSERT_EQUAL(nu_pattern_match(p, T("{reply, 1, {x, 2}}"), pre2, v), 0);
	CU_ASSERT_EQUAL(nu_pattern_match(p, T("{reply, 1, {x, 1.0}}"), pre2, v), 0);
	nu_term pre3[2] = { T("5"), ref };
	CU_ASSERT_EQUAL(nu__pattern_fixed_ref(p, pre3), 1);
	nu_pattern_free(p);
	/* a fixed variable that repeats */
	p = C("{X, [X]}");
	nu_term one[1] = { T("a") };
	CU_ASSERT_EQUAL(nu_pattern_match(p, T("{a, [a]}"), one, v), 1);
	CU_ASSERT_EQUAL(nu_pattern_match(p, T("{b, [b]}"), one, v), 0);
	CU_ASSERT_EQUAL(nu_pattern_match(p, T("{a, [b]}"), one, v), 0);
	nu_pattern_free(p);
}

static void test_maps(void)
{
	CU_ASSERT_EQUAL(M("#{key := V}", "#{key => 1, other => 2}"), 1);
	CU_ASSERT(B(0, "1"));
	CU_ASSERT_EQUAL(M("#{key := V}", "#{other => 2}"), 0);
	CU_ASSERT_EQUAL(M("#{key := V}", "#{}"), 0);
	CU_ASSERT_EQUAL(M("#{key := V}", "[key]"), 0);
	CU_ASSERT_EQUAL(M("#{}", "#{a => 1}"), 1);
	CU_ASSERT_EQUAL(M("#{}", "{}"), 0);
	CU_ASSERT_EQUAL(M("#{a := 1}", "#{a => 1}"), 1);
	CU_ASSERT_EQUAL(M("#{a := 1}", "#{a => 2}"), 0);
	CU_ASSERT_EQUAL(M("#{a := 1}", "#{a => 1.0}"), 0);
	CU_ASSERT_EQUAL(M("#{1 := x}", "#{1.0 => x}"), 0); /* exact keys */
	CU_ASSERT_EQUAL(M("#{{k, [1]} := X, <<\"b\">> := {Y, X}}",
			  "#{<<\"b\">> => {2, 1}, {k, [1]} => 1, z => 0}"), 1);
	CU_ASSERT(B(0, "1") && B(1, "2"));
	CU_ASSERT_EQUAL(M("#{{k, [1]} := X, <<\"b\">> := {Y, X}}",
			  "#{<<\"b\">> => {2, 3}, {k, [1]} => 1}"), 0);
	CU_ASSERT_EQUAL(M("{msg, #{from := F, body := #{n := N}}}",
			  "{msg, #{from => <0.1.1>, body => #{n => 3, m => 4}}}"),
			1);
	CU_ASSERT(B(0, "<0.1.1>") && B(1, "3"));
	CU_ASSERT_EQUAL(M("{msg, #{from := F, body := #{n := N}}}",
			  "{msg, #{from => <0.1.1>, body => #{m => 4}}}"), 0);
	/* any literal key, a map with => included */
	CU_ASSERT_EQUAL(M("#{#{x => [1]} := V, [] := _}",
			  "#{[] => 0, #{x => [1]} => y}"), 1);
	CU_ASSERT(B(0, "y"));
	CU_ASSERT_EQUAL(M("#{#{x => [1]} := V}", "#{#{x => [2]} => y}"), 0);
}

static void compile_err(const char *src, int rc, size_t pos)
{
	nu_pattern *p = (nu_pattern *)&p;
	size_t at = 12345;
	int r = nu_pattern_compile(src, &p, &at);
	if (r != rc || at != pos)
		fprintf(stderr, "compile '%.40s': %d at %zu, want %d at %zu\n",
			src, r, at, rc, pos);
	CU_ASSERT_EQUAL(r, rc);
	CU_ASSERT_EQUAL(at, pos);
	CU_ASSERT_EQUAL(nu_pattern_compile(src, &p, NULL), rc);
}

static void test_errors(void)
{
	compile_err("{a,", -EINVAL, 3);
	compile_err("[H|]", -EINVAL, 3);
	compile_err("#{K := 1}", -EINVAL, 2);
	compile_err("#{{a, K} := 1}", -EINVAL, 6);
	compile_err("#{_ := 1}", -EINVAL, 2);
	compile_err("#{a => 1}", -EINVAL, 4);
	compile_err("#{a := 1, }", -EINVAL, 10);
	compile_err("#{[1 | X] := 1}", -EINVAL, 7);
	compile_err("#{{a, 1} := 1", -EINVAL, 13);
	compile_err("X Y", -EINVAL, 2);
	compile_err("'abc", -EINVAL, 0);
	compile_err("{ok, \"ab}", -EINVAL, 5);
	compile_err("", -EINVAL, 0);
	compile_err("   ", -EINVAL, 3);
	compile_err("{a, b", -EINVAL, 5);
	compile_err("{1 2}", -EINVAL, 3);
	compile_err("[1,2|3,4]", -EINVAL, 6);
	compile_err("<<1, X>>", -EINVAL, 5);
	compile_err("<<1, 256>>", -EINVAL, 5);
	compile_err("<<1, 2", -EINVAL, 6);
	compile_err("{a, 'b\\q'}", -EINVAL, 4);
	compile_err("{a, <0.1>}", -EINVAL, 4);
	compile_err("}", -EINVAL, 0);
	compile_err("{a, \xc3\xa9}", -EINVAL, 4);
	/* nesting deeper than the compiler's bound */
	char deep[2 * NU__PATTERN_MAX_DEPTH + 8];
	memset(deep, '[', NU__PATTERN_MAX_DEPTH + 1);
	strcpy(deep + NU__PATTERN_MAX_DEPTH + 1, "X");
	compile_err(deep, -EINVAL, NU__PATTERN_MAX_DEPTH);
	/* more pending siblings than the matcher's stack: {{{...{X,a}...,a},a} */
	char left[8 * NU__PATTERN_MAX_FRAMES + 16], *q = left;
	for (int i = 0; i <= NU__PATTERN_MAX_FRAMES; i++)
		*q++ = '{';
	q += sprintf(q, "X,a}");
	for (int i = 0; i < NU__PATTERN_MAX_FRAMES; i++)
		q += sprintf(q, ",a}");
	compile_err(left, -EINVAL, NU__PATTERN_MAX_FRAMES);
	nu_pattern *p;
	/* one level less compiles and matches */
	CU_ASSERT_EQUAL(nu_pattern_compile(left + 1, &p, NULL), -EINVAL);
	left[strlen(left) - 3] = 0;
	CU_ASSERT_EQUAL_FATAL(nu_pattern_compile(left + 1, &p, NULL), 0);
	nu_term v[1];
	*strchr(left, 'X') = '7';
	CU_ASSERT_EQUAL(nu_pattern_match(p, T(left + 1), NULL, v), 1);
	CU_ASSERT_EQUAL(v[0], nu_int(7));
	nu_pattern_free(p);
	/* right-nested and long lists need no frames */
	static char lst[40000];
	q = lst;
	*q++ = '[';
	for (int i = 0; i < 5000; i++)
		q += sprintf(q, "%sX%d", i ? "," : "", i);
	strcpy(q, "|T]");
	CU_ASSERT_EQUAL(nu_pattern_compile(lst, &p, NULL), 0);
	CU_ASSERT_EQUAL(nu_pattern_nvars(p), 5001);
	nu_pattern_free(p);
}

static void test_bad_input(void)
{
	nu_pattern *p = NULL;
	size_t at = 7;
	CU_ASSERT_EQUAL(nu_pattern_compile(NULL, &p, &at), -EINVAL);
	CU_ASSERT_EQUAL(nu_pattern_compile("x", NULL, &at), -EINVAL);
	p = C("{A, b}");
	nu_term v[1];
	CU_ASSERT_EQUAL(nu_pattern_match(p, NU_NONE, NULL, v), -EINVAL);
	CU_ASSERT_EQUAL(nu_pattern_match(NULL, T("{1, b}"), NULL, v), -EINVAL);
	CU_ASSERT_EQUAL(nu_pattern_match(p, T("{1, b}"), NULL, NULL), -EINVAL);
	CU_ASSERT_EQUAL(nu_pattern_match(p, T("{1, b}"), NULL, v), 1);
	nu_pattern_free(p);
}

/* ------------------------------------------------------- random terms */

static uint64_t seed;

static uint64_t rnd(void)
{
	seed = seed * 6364136223846793005ull + 1442695040888963407ull;
	return seed >> 17;
}

static nu_term gen(int depth);

static nu_term gen_leaf(void)
{
	static const char *const atoms[] = { "ok", "EXIT", "a b", "x", "" };
	uint64_t limbs[2] = { rnd() << 20 | rnd(), rnd() };
	unsigned char bytes[6];
	switch (rnd() % 9) {
	case 0: return nu_int((int64_t)(rnd() % 21) - 10);
	case 1: return nu__bigint_in(&H, rnd() % 2, limbs, 2);
	case 2: return nu__float_in(&H, (double)(rnd() % 100) / 4);
	case 3: return nu_atom(atoms[rnd() % 5]);
	case 4:
		for (size_t i = 0; i < sizeof(bytes); i++)
			bytes[i] = (unsigned char)rnd();
		return nu__binary_in(&H, bytes, rnd() % sizeof(bytes));
	case 5: return nu_pid_term((nu_pid)(rnd() % 1000 + 1));
	case 6: return nu__ref_in(&H, rnd() % 50);
	case 7: return NU_NIL;
	default: return nu_int((int64_t)(rnd() % 3));
	}
}

static nu_term gen(int depth)
{
	nu_term a[4], b[4];
	size_t n = rnd() % 4;
	unsigned k = depth > 4 ? 0 : (unsigned)(rnd() % 13);
	if (k < 9)
		return gen_leaf();
	for (size_t i = 0; i < n; i++) {
		a[i] = gen(depth + 1);
		b[i] = gen(depth + 1);
	}
	switch (k) {
	case 9: return nu__tuplev_in(&H, n, a);
	case 10: return nu__list_in(&H, n, a);
	case 11: return nu__cons_in(&H, a[0] = gen(depth + 1), gen(depth + 1));
	default: return nu__map_in(&H, n, a, b);
	}
}

/* Pattern text for a term: subterms replaced by fresh variables (their
 * expected bindings in want[]) or _, map pairs dropped at random; with
 * mutate >= 0, the mutate-th literal leaf is wrapped in a 1-tuple (which
 * no leaf equals). */
typedef struct pgen {
	char *buf;
	size_t len, n;
	nu_term want[256];
	int nvars;
	int leaves;  /* literal leaves written so far */
	int mutate;
} pgen;

static void put(pgen *g, const char *s)
{
	size_t k = strlen(s);
	CU_ASSERT_FATAL(g->n + k < g->len);
	memcpy(g->buf + g->n, s, k + 1);
	g->n += k;
}

static void put_term(pgen *g, nu_term t)
{
	int k = nu_term_print(t, g->buf + g->n, g->len - g->n);
	CU_ASSERT_FATAL(k >= 0 && g->n + (size_t)k < g->len);
	g->n += (size_t)k;
}

static void pat_of(pgen *g, nu_term t);

static void pat_compound(pgen *g, nu_term t)
{
	const uint64_t *p = nu__box_ptr(t);
	size_t n = NU__HDR_SIZE(p[0]);
	if (nu__is_cons(t)) {
		put(g, "[");
		pat_of(g, p[0]);
		put(g, " | ");
		pat_of(g, p[1]);
		put(g, "]");
	} else if (nu__box_kind(t) == NU__K_TUPLE) {
		put(g, "{");
		for (size_t i = 0; i < n; i++) {
			put(g, i ? ", " : "");
			pat_of(g, p[1 + i]);
		}
		put(g, "}");
	} else { /* map: keys literal, some pairs left out */
		put(g, "#{");
		for (size_t i = 0, first = 1; i < n; i++) {
			if (rnd() % 4 == 0)
				continue;
			put(g, first ? "" : ", ");
			first = 0;
			put_term(g, p[1 + i]);
			put(g, " := ");
			pat_of(g, p[1 + n + i]);
		}
		put(g, "}");
	}
}

static void pat_of(pgen *g, nu_term t)
{
	unsigned r = (unsigned)(rnd() % 10);
	char name[16];
	if (r == 0 && g->nvars < 256) {
		snprintf(name, sizeof(name), "V%d", g->nvars);
		g->want[g->nvars++] = t;
		put(g, name);
	} else if (r == 1) {
		put(g, "_");
	} else if (nu__is_cons(t) || nu__box_kind(t) == NU__K_TUPLE ||
		   nu__box_kind(t) == NU__K_MAP) {
		pat_compound(g, t);
	} else {
		int wrap = g->leaves++ == g->mutate;
		put(g, wrap ? "{" : "");
		put_term(g, t);
		put(g, wrap ? "}" : "");
	}
}

static void test_random(void)
{
	static char text[1 << 16];
	nu_term vars[256];
	seed = 42;
	for (int it = 0; it < 4000; it++) {
		nu_term t = gen(0);
		CU_ASSERT_FATAL(t != NU_NONE);
		uint64_t s0 = seed;
		pgen g = { .buf = text, .len = sizeof(text), .mutate = -1 };
		pat_of(&g, t);
		nu_pattern *p = C(text);
		CU_ASSERT_EQUAL_FATAL(nu_pattern_nvars(p), g.nvars);
		int r = nu_pattern_match(p, t, NULL, vars);
		if (r != 1)
			fprintf(stderr, "no match: %s\n", text);
		CU_ASSERT_EQUAL_FATAL(r, 1);
		for (int i = 0; i < g.nvars; i++)
			CU_ASSERT(nu_term_equal(vars[i], g.want[i]));
		nu_pattern_free(p);
		if (g.leaves == 0)
			continue;
		int m = (int)(rnd() % (uint64_t)g.leaves);
		seed = s0; /* the same choices, one leaf wrapped */
		pgen g2 = { .buf = text, .len = sizeof(text), .mutate = m };
		pat_of(&g2, t);
		p = C(text);
		r = nu_pattern_match(p, t, NULL, vars);
		if (r != 0)
			fprintf(stderr, "mutant matches: %s\n", text);
		CU_ASSERT_EQUAL(r, 0);
		nu_pattern_free(p);
	}
}

/* ----------------------------------------------------------- threads */

#define NSUBJ 2000

static nu_pattern *shared;
static nu_term subj[NSUBJ];
static int want_r[NSUBJ];
static nu_term want_v[NSUBJ][3];

static void *matcher(void *arg)
{
	long bad = 0;
	nu_term v[3];
	(void)arg;
	for (int round = 0; round < 50; round++)
		for (int i = 0; i < NSUBJ; i++) {
			int r = nu_pattern_match(shared, subj[i], NULL, v);
			bad += r != want_r[i];
			for (int k = 0; r == 1 && k < 3; k++)
				bad += v[k] != want_v[i][k];
		}
	return (void *)bad;
}

static void test_threads(void)
{
	shared = C("{msg, X, [Y | _], #{k := Z}, X}");
	seed = 7;
	int matches = 0;
	for (int i = 0; i < NSUBJ; i++) {
		nu_term x = gen(2), y = gen(3), z = gen(3);
		nu_term x2 = rnd() % 4 ? x : gen(2);
		nu_term k = rnd() % 4 ? nu_atom("k") : nu_atom("j");
		nu_term m = nu__map_in(&H, 1, &k, &z);
		nu_term e[5] = { nu_atom(rnd() % 8 ? "msg" : "gsm"), x,
				 nu__cons_in(&H, y, gen(3)), m, x2 };
		subj[i] = nu__tuplev_in(&H, 5, e);
		want_r[i] = nu_pattern_match(shared, subj[i], NULL, want_v[i]);
		CU_ASSERT(want_r[i] == 0 || want_r[i] == 1);
		matches += want_r[i];
	}
	CU_ASSERT(matches > NSUBJ / 4 && matches < NSUBJ);
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, matcher, NULL), 0);
	for (int i = 0; i < 4; i++) {
		void *bad;
		pthread_join(th[i], &bad);
		CU_ASSERT_EQUAL((long)bad, 0);
	}
	nu_pattern_free(shared);
}

#define T_(f) { #f, f##_h }
#define WRAP(f)                                                              \
	static void f##_h(void)                                              \
	{                                                                    \
		setup();                                                     \
		f();                                                         \
		teardown();                                                  \
	}
WRAP(test_literals)
WRAP(test_variables)
WRAP(test_nvars)
WRAP(test_prebound)
WRAP(test_maps)
WRAP(test_errors)
WRAP(test_bad_input)
WRAP(test_random)
WRAP(test_threads)

static CU_TestInfo tests[] = {
	T_(test_literals),
	T_(test_variables),
	T_(test_nvars),
	T_(test_prebound),
	T_(test_maps),
	T_(test_errors),
	T_(test_bad_input),
	T_(test_random),
	T_(test_threads),
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("pattern", tests)
