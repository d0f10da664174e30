/* test_term.c — CUnit suite for Erlang terms (term.c, term_parse.c).
 *
 * Most tests build terms in an explicit heap over a private mapping, with
 * no node running; one test runs a node and uses the public constructors
 * inside a process (and checks them outside one).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "../runtime/proc.h" /* builds with -I. (meson) */
#include "../runtime/term.h"
#include "nutest.h"
#include "nutest_node.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifdef NU__HEAP_ASAN
#include <sanitizer/asan_interface.h>
#endif

#define MiB ((size_t)1 << 20)
#define WIN (64 * MiB)

typedef struct theap {
	nu__heap h;
	void *base;
	size_t size;
} theap;

static void theap_open(theap *t, size_t size)
{
	t->size = size;
	t->base = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CU_ASSERT_FATAL(t->base != MAP_FAILED);
	nu__heap_init2(&t->h, t->base, size, NULL, 0);
}

static void theap_close(theap *t)
{
	munmap(t->base, t->size);
}

static theap H; /* the default heap of a test */

static void setup(void) { theap_open(&H, WIN); }
static void teardown(void) { theap_close(&H); }

static nu_term P(const char *s)
{
	nu_term t = NU_NONE;
	size_t pos = 99;
	int rc = nu__term_parse_in(&H.h, s, &t, &pos);
	if (rc)
		fprintf(stderr, "parse '%s': %d at %zu\n", s, rc, pos);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	return t;
}

static char pbuf[1 << 20];

static const char *S(nu_term t)
{
	int n = nu_term_print(t, pbuf, sizeof(pbuf));
	CU_ASSERT_FATAL(n >= 0 && (size_t)n < sizeof(pbuf));
	return pbuf;
}

/* ------------------------------------------------------- random terms */

static uint64_t rng;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static const char *const atom_pool[] = {
	"ok", "error", "EXIT", "hello world", "", "end", "a'b", "back\\slash",
	"new\nline", "caf\xc3\xa9", "x@y_Z9", "_under", "9lives", "true",
	"tab\there", "del\x7f", "ctl\x01",
};

static double rnd_float(void)
{
	static const double special[] = {
		0.0, -0.0, 0.1, 1e300, -1e300, 5e-324, 1.0, -2.5, 1e15, 1e16,
		1e17, 123456789.125, 9007199254740993.0, 1.8446744073709552e19,
		2.2250738585072014e-308, 1.7976931348623157e308,
	};
	if (rnd() % 2)
		return special[rnd() % (sizeof(special) / sizeof(*special))];
	double d;
	do {
		uint64_t b = rnd();
		memcpy(&d, &b, 8);
	} while (!isfinite(d));
	return d;
}

static nu_term rnd_int(void)
{
	uint64_t limbs[4];
	size_t n = 1 + rnd() % 4;
	switch (rnd() % 4) {
	case 0:
		return nu_int((int64_t)(rnd() % 2001) - 1000);
	case 1:
		return nu__int64_in(&H.h, (int64_t)rnd() >> (rnd() % 64));
	default:
		for (size_t i = 0; i < n; i++)
			limbs[i] = rnd() >> (rnd() % 64);
		return nu__bigint_in(&H.h, rnd() % 2, limbs, n);
	}
}

static nu_term gen(int depth);

static nu_term gen_compound(int kind, int depth)
{
	nu_term e[5], v[5];
	size_t n = rnd() % 5;
	for (size_t i = 0; i < n; i++) {
		e[i] = gen(depth + 1);
		v[i] = gen(depth + 1);
	}
	switch (kind) {
	case 0:
		return nu__tuplev_in(&H.h, n, e);
	case 1:
		return nu__map_in(&H.h, n, e, v);
	case 2:
		return nu__list_in(&H.h, n, e);
	default:
		return nu__cons_in(&H.h, gen(depth + 1), gen(depth + 1));
	}
}

static nu_term gen(int depth)
{
	unsigned char bytes[12];
	size_t n = rnd() % sizeof(bytes);
	int k = (int)(rnd() % (depth > 4 ? 9 : 13));
	switch (k) {
	case 0:
	case 1:
		return rnd_int();
	case 2:
		return nu__float_in(&H.h, rnd_float());
	case 3:
		return nu_atom(atom_pool[rnd() % (sizeof(atom_pool) /
						  sizeof(*atom_pool))]);
	case 4:
		for (size_t i = 0; i < n; i++)
			bytes[i] = (unsigned char)(rnd() % 2 ? 'a' + rnd() % 26
							     : rnd());
		return nu__binary_in(&H.h, bytes, n);
	case 5:
		return nu_pid_term((nu_pid)(rnd() % (1ull << 56)) | 1);
	case 6:
		return nu__ref_in(&H.h, rnd());
	case 7:
		return NU_NIL;
	case 8:
		return nu_int((int64_t)(rnd() % 10));
	default:
		return gen_compound(k - 9, depth);
	}
}

static void test_roundtrip_random(void)
{
	static char a[1 << 16];
	rng = 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < 5000; i++) {
		nu_term t = gen(0), u;
		CU_ASSERT_FATAL(t != NU_NONE);
		int n = nu_term_print(t, a, sizeof(a));
		CU_ASSERT_FATAL(n > 0 && (size_t)n < sizeof(a));
		if (getenv("NUTEST_SHOW") && i < 40) /* eyeball the generator */
			fprintf(stderr, "%s\n", a);
		size_t pos;
		int rc = nu__term_parse_in(&H.h, a, &u, &pos);
		if (rc)
			fprintf(stderr, "reparse of %s: %d at %zu\n", a, rc, pos);
		CU_ASSERT_EQUAL_FATAL(rc, 0);
		CU_ASSERT_FATAL(nu_term_equal(t, u));
		CU_ASSERT_EQUAL(nu_term_compare(t, u), 0);
		CU_ASSERT_STRING_EQUAL(S(u), a);
	}
}

/* ----------------------------------------------------- fixed examples */

static void check_print(const char *in, const char *want)
{
	nu_term t = P(in);
	CU_ASSERT_STRING_EQUAL(S(t), want);
	nu_term u = P(pbuf);
	CU_ASSERT(nu_term_equal(t, u));
}

static void test_fixed(void)
{
	check_print("{ok, [1,2,3], <<\"bin\">>, #{a => 1}}",
		    "{ok,[1,2,3],<<\"bin\">>,#{a => 1}}");
	check_print("'quoted atom'", "'quoted atom'");
	check_print(" [a|b] ", "[a|b]");
	check_print("-12345678901234567890123", "-12345678901234567890123");
	check_print("'EXIT'", "'EXIT'");
	check_print("'ok'", "ok");
	check_print("'end'", "'end'");
	check_print("\"abc\"", "[97,98,99]");
	check_print("\"\"", "[]");
	check_print("0.1", "0.1");
	check_print("1.0e300", "1.0e+300");
	check_print("-0.0", "-0.0");
	check_print("2.5E-3", "0.0025");
	check_print("<<>>", "<<>>");
	check_print("<<1,2,3>>", "<<1,2,3>>");
	check_print("<<\"a\", 0, \"b\">>", "<<97,0,98>>");
	check_print("<<104,105>>", "<<\"hi\">>");
	check_print("#{b => 2, a => 1, b => 3}", "#{a => 1,b => 3}");
	check_print("#{1.0 => x, 1 => y}", "#{1 => y,1.0 => x}");
	check_print("{}", "{}");
	check_print("[[],[[]]|{}]", "[[],[[]]|{}]");
	check_print("<0.5.7>", "<0.5.7>");
	check_print("#Ref<0.0.1.2>", "#Ref<0.0.1.2>");
	check_print("'a\\'b\\\\c\\n'", "'a\\'b\\\\c\\n'");
	check_print("'\\x{e9}t\\xe9'", "'\xc3\xa9t\xc3\xa9'");
	check_print("1152921504606846975", "1152921504606846975");
	check_print("-1152921504606846976", "-1152921504606846976");
	check_print("% comment\n foo % more\n", "foo");
	check_print("\"\xc3\xa9\\n\"", "[233,10]");
	/* Small/big boundary: an integer has one representation. */
	CU_ASSERT(nu_is_int(P("1152921504606846975")));
	CU_ASSERT(!nu_is_int(P("1152921504606846976")));
	CU_ASSERT(nu_is_int(P("-00000000000000000000000000000042")));
	CU_ASSERT(nu_term_equal(P("18446744073709551615"),
				nu__uint64_in(&H.h, UINT64_MAX)));
	CU_ASSERT(nu_term_equal(P("-9223372036854775808"),
				nu__int64_in(&H.h, INT64_MIN)));
}

static void test_print_snprintf(void)
{
	char b[8];
	nu_term t = P("{hello,world}");
	memset(b, 'x', sizeof(b));
	CU_ASSERT_EQUAL(nu_term_print(t, b, sizeof(b)), 13);
	CU_ASSERT_STRING_EQUAL(b, "{hello,");
	CU_ASSERT_EQUAL(nu_term_print(t, NULL, 0), 13);
	CU_ASSERT_EQUAL(nu_term_print(NU_NONE, b, sizeof(b)), -EINVAL);
	CU_ASSERT_EQUAL(nu_term_print(t, NULL, 4), -EINVAL);
}

/* ------------------------------------------------------------ errors */

static void test_malformed(void)
{
	static const struct {
		const char *text;
		size_t pos;
	} cases[] = {
		{ "{ok,", 4 }, { "[1,2", 4 }, { "<<300>>", 2 }, { "#{a}", 3 },
		{ "'unterminated", 0 }, { "1.2.3", 3 }, { "ok ok", 3 },
		{ "", 0 }, { "   ", 3 }, { "{a b}", 3 }, { "X", 0 },
		{ "[|a]", 1 }, { "<<-1>>", 2 }, { "<<a>>", 2 },
		{ "#{a => }", 7 }, { "{a,}", 3 }, { "\"abc", 0 },
		{ "'\\q'", 0 }, { "<1.2.3>", 0 }, { "[a|b|c]", 4 },
		{ "1.0e400", 0 }, { "#Ref<1.0.0.0>", 0 }, { "{a}}", 3 },
		{ "<< \"\xe2\x82\xac\" >>", 3 }, { "\xff", 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		nu_term t = NU_NIL;
		size_t pos = 12345;
		int rc = nu__term_parse_in(&H.h, cases[i].text, &t, &pos);
		if (rc != -EINVAL || pos != cases[i].pos)
			fprintf(stderr, "'%s': rc %d pos %zu (want %zu)\n",
				cases[i].text, rc, pos, cases[i].pos);
		CU_ASSERT_EQUAL(rc, -EINVAL);
		CU_ASSERT_EQUAL(pos, cases[i].pos);
		CU_ASSERT_EQUAL(t, NU_NIL); /* untouched */
		CU_ASSERT_EQUAL(nu__term_parse_in(&H.h, cases[i].text, &t,
						  NULL), -EINVAL);
	}
	/* Nesting beyond the parser's bound is an error, not a crash. */
	static char deep[20001];
	memset(deep, '[', 20000);
	size_t pos;
	nu_term t;
	CU_ASSERT_EQUAL(nu__term_parse_in(&H.h, deep, &t, &pos), -EINVAL);
	CU_ASSERT_EQUAL(nu__term_parse_in(NULL, "ok", &t, &pos), -EPERM);
	CU_ASSERT_EQUAL(nu__term_parse_in(&H.h, NULL, &t, &pos), -EINVAL);
}

static void test_bad_input(void)
{
	char longname[300];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[299] = 0;
	CU_ASSERT_EQUAL(nu_atom(NULL), NU_NONE);
	CU_ASSERT_EQUAL(nu_atom(longname), NU_NONE);
	longname[255] = 0;
	CU_ASSERT_NOT_EQUAL(nu_atom(longname), NU_NONE);
	CU_ASSERT_EQUAL(nu_atom("bad\xc3"), NU_NONE);
	CU_ASSERT_EQUAL(nu_atom("\xc0\x80"), NU_NONE);
	CU_ASSERT_EQUAL(nu_atom_len("a\0b", 3), NU_NONE);
	/* a bad name is checked when not found, also next to a known one */
	CU_ASSERT_EQUAL(nu_atom_len("ok\0", 3), NU_NONE);
	CU_ASSERT_EQUAL(nu_atom_len("ok\xff", 3), NU_NONE);
	CU_ASSERT_EQUAL(nu_atom("ok\xe2\x82"), NU_NONE);
	CU_ASSERT_EQUAL(nu_atom("ok"), nu_atom_len("okay", 2));
	CU_ASSERT_EQUAL(nu_atom("true"), NU_ATOM_TRUE);
	CU_ASSERT_EQUAL(nu_atom("undefined"), NU_ATOM_UNDEFINED);
	CU_ASSERT_STRING_EQUAL(nu_atom_name(NU_ATOM_SHUTDOWN), "shutdown");
	CU_ASSERT_PTR_NULL(nu_atom_name(nu_int(3)));
	CU_ASSERT_EQUAL(nu__float_in(&H.h, NAN), NU_NONE);
	CU_ASSERT_EQUAL(nu__float_in(&H.h, INFINITY), NU_NONE);
	nu_term e[2] = { nu_int(1), NU_NONE };
	CU_ASSERT_EQUAL(nu__tuplev_in(&H.h, 2, e), NU_NONE);
	CU_ASSERT_EQUAL(nu__list_in(&H.h, 2, e), NU_NONE);
	CU_ASSERT_EQUAL(nu__map_in(&H.h, 1, e + 1, e), NU_NONE);
	CU_ASSERT_EQUAL(nu__cons_in(&H.h, NU_NONE, NU_NIL), NU_NONE);
	CU_ASSERT_EQUAL(nu__float_in(NULL, 1.0), NU_NONE);
	CU_ASSERT_EQUAL(nu_pid_term(0), NU_NONE);
	CU_ASSERT_EQUAL(nu_pid_term(-5), NU_NONE);
	CU_ASSERT_EQUAL(nu_pid_term((nu_pid)1 << 57), NU_NONE);
	CU_ASSERT_EQUAL(nu_term_type(NU_NONE), NU_T_NONE);
	CU_ASSERT(!nu_term_equal(NU_NONE, NU_NONE));
	CU_ASSERT_EQUAL(nu_map_get(NU_NIL, nu_int(1), NULL), -EINVAL);
	CU_ASSERT_EQUAL(nu__term_copy(NU_NONE, &H.h), NU_NONE);
}

/* --------------------------------------------------------- accessors */

static void test_accessors(void)
{
	nu_term t = P("{ok, 2.5, <<1,2>>, [x|y], #{k => v}, <0.3.4>, 1}");
	int64_t v;
	CU_ASSERT_EQUAL(nu_term_type(t), NU_T_TUPLE);
	CU_ASSERT_EQUAL(nu_tuple_size(t), 7);
	CU_ASSERT_EQUAL(nu_tuple_elem(t, 0), nu_atom("ok"));
	CU_ASSERT_EQUAL(nu_tuple_elem(t, 7), NU_NONE);
	CU_ASSERT_EQUAL(nu_float_value(nu_tuple_elem(t, 1)), 2.5);
	CU_ASSERT(isnan(nu_float_value(t)));
	nu_term b = nu_tuple_elem(t, 2);
	CU_ASSERT_EQUAL(nu_binary_size(b), 2);
	CU_ASSERT(!memcmp(nu_binary_data(b), "\1\2", 2));
	CU_ASSERT_PTR_NULL(nu_binary_data(t));
	nu_term l = nu_tuple_elem(t, 3);
	CU_ASSERT_EQUAL(nu_term_type(l), NU_T_LIST);
	CU_ASSERT_EQUAL(nu_list_head(l), nu_atom("x"));
	CU_ASSERT_EQUAL(nu_list_tail(l), nu_atom("y"));
	CU_ASSERT_EQUAL(nu_list_head(NU_NIL), NU_NONE);
	nu_term m = nu_tuple_elem(t, 4), got;
	CU_ASSERT_EQUAL(nu_map_size(m), 1);
	CU_ASSERT_EQUAL(nu_map_get(m, nu_atom("k"), &got), 0);
	CU_ASSERT_EQUAL(got, nu_atom("v"));
	CU_ASSERT_EQUAL(nu_map_get(m, nu_atom("v"), &got), -ENOENT);
	nu_term m2 = nu__map_put_in(&H.h, m, nu_atom("a"), nu_int(1));
	nu_term m3 = nu__map_put_in(&H.h, m2, nu_atom("k"), nu_int(2));
	CU_ASSERT_STRING_EQUAL(S(m3), "#{a => 1,k => 2}");
	CU_ASSERT_STRING_EQUAL(S(m), "#{k => v}");
	CU_ASSERT_EQUAL(nu_pid_value(nu_tuple_elem(t, 5)), nu__pid_make(3, 4));
	CU_ASSERT_EQUAL(nu_pid_value(t), -EINVAL);
	CU_ASSERT_EQUAL(nu_int64_value(nu_tuple_elem(t, 6), &v), 0);
	CU_ASSERT_EQUAL(v, 1);
	CU_ASSERT_EQUAL(nu_int64_value(nu__int64_in(&H.h, INT64_MIN), &v), 0);
	CU_ASSERT_EQUAL(v, INT64_MIN);
	CU_ASSERT_EQUAL(nu_int64_value(P("9223372036854775807"), &v), 0);
	CU_ASSERT_EQUAL(v, INT64_MAX);
	CU_ASSERT_EQUAL(nu_int64_value(P("9223372036854775808"), &v), -ERANGE);
	CU_ASSERT_EQUAL(nu_int64_value(P("-9223372036854775809"), &v), -ERANGE);
	CU_ASSERT_EQUAL(nu_int64_value(P("99999999999999999999999"), &v),
			-ERANGE);
	CU_ASSERT_EQUAL(nu_int64_value(t, &v), -EINVAL);
	CU_ASSERT_EQUAL(nu_term_type(P("123456789012345678901234567890")),
			NU_T_INT);
	CU_ASSERT_EQUAL(nu_term_type(NU_NIL), NU_T_NIL);
	CU_ASSERT_EQUAL(nu_term_type(P("#Ref<0.0.0.9>")), NU_T_REF);
	nu_term r1 = nu__make_ref_in(&H.h), r2 = nu__make_ref_in(&H.h);
	CU_ASSERT(!nu_term_equal(r1, r2));
	CU_ASSERT(nu_term_compare(r1, r2) < 0);
}

/* -------------------------------------------------------- term order */

static void test_order_table(void)
{
	static const char *const asc[] = {
		"-100000000000000000000000", "-1.0e19",
		"-1152921504606846977", "-1152921504606846976", "-1.5", "-1",
		"-0.5", "0", "0.5", "1", "1.5", "2", "9007199254740992.0",
		"9007199254740993", "1152921504606846975",
		"1152921504606846976", "18446744073709551615",
		"18446744073709551616.0", "18446744073709551617", "1.0e300",
		"'A'", "'EXIT'", "a", "ab", "b", "'caf\xc3\xa9'",
		"#Ref<0.0.0.1>", "#Ref<0.0.0.2>", "#Ref<0.0.1.0>",
		"<0.1.1>", "<0.1.3>", "<0.2.1>",
		"{}", "{z}", "{a,a}", "{a,b}", "{1,2,3}",
		"#{}", "#{z => 1}", "#{a => 1,b => 1}", "#{a => 1,b => 2}",
		"#{a => 2,b => 0}", "#{a => 0,c => 0}", "#{1 => a,2 => a,3 => a}",
		"[]", "[1|a]", "[1,2]", "[1,2,3]", "[1.5]", "[2]", "[a]",
		"<<>>", "<<0>>", "<<1,2>>", "<<1,2,3>>", "<<2>>",
	};
	size_t n = sizeof(asc) / sizeof(*asc);
	nu_term t[sizeof(asc) / sizeof(*asc)];
	for (size_t i = 0; i < n; i++)
		t[i] = P(asc[i]);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++) {
			int c = nu_term_compare(t[i], t[j]);
			int want = (i > j) - (i < j);
			if ((c > 0) - (c < 0) != want)
				fprintf(stderr, "compare %s %s = %d\n", asc[i],
					asc[j], c);
			CU_ASSERT_EQUAL((c > 0) - (c < 0), want);
			CU_ASSERT_EQUAL(nu_term_equal(t[i], t[j]), i == j);
		}
	/* Numbers by value; exact equality tells the types apart. */
	static const char *const same[][2] = {
		{ "1", "1.0" }, { "0.0", "-0.0" }, { "-3", "-3.0" },
		{ "18446744073709551616", "18446744073709551616.0" },
		{ "[1,{2}]", "[1.0,{2.0}]" }, { "{1,a}", "{1.0,a}" },
	};
	for (size_t i = 0; i < sizeof(same) / sizeof(*same); i++) {
		nu_term a = P(same[i][0]), b = P(same[i][1]);
		CU_ASSERT_EQUAL(nu_term_compare(a, b), 0);
		CU_ASSERT(!nu_term_equal(a, b));
		CU_ASSERT(nu__term_compare_exact(a, b) < 0 ||
			  !strcmp(same[i][0], "0.0"));
	}
	/* Maps compare keys exactly: #{1 => a} /= #{1.0 => a}. */
	CU_ASSERT(nu_term_compare(P("#{1 => a}"), P("#{1.0 => a}")) != 0);
	CU_ASSERT_EQUAL(nu_term_compare(P("#{a => 1}"), P("#{a => 1.0}")), 0);
}

static int sgn(int x) { return (x > 0) - (x < 0); }

static void test_order_random(void)
{
	enum { N = 400 };
	static nu_term t[N];
	rng = 12345;
	for (int i = 0; i < N; i++)
		t[i] = i % 3 ? gen(2) : rnd_int(); /* plenty of numbers */
	for (int i = 0; i < N; i++)
		for (int j = 0; j < N; j++) {
			int c = nu_term_compare(t[i], t[j]);
			CU_ASSERT_EQUAL(sgn(c), -sgn(nu_term_compare(t[j], t[i])));
			int e = nu__term_compare_exact(t[i], t[j]);
			CU_ASSERT_EQUAL(e == 0, nu_term_equal(t[i], t[j]));
			CU_ASSERT(c == 0 || sgn(c) == sgn(e));
		}
	for (int k = 0; k < 100000; k++) {
		nu_term a = t[rnd() % N], b = t[rnd() % N], c = t[rnd() % N];
		if (nu_term_compare(a, b) <= 0 && nu_term_compare(b, c) <= 0)
			CU_ASSERT(nu_term_compare(a, c) <= 0);
		if (nu__term_compare_exact(a, b) < 0 &&
		    nu__term_compare_exact(b, c) < 0)
			CU_ASSERT(nu__term_compare_exact(a, c) < 0);
	}
}

/* ------------------------------------------------------------- atoms */

enum { ATHREADS = 8, ANAMES = 3000 };
static nu_term atom_seen[ATHREADS][ANAMES];

static void *atom_worker(void *arg)
{
	int id = (int)(intptr_t)arg;
	char name[32];
	for (int k = 0; k < ANAMES; k++) {
		int i = (id % 2) ? ANAMES - 1 - k : (k * 7 + id) % ANAMES;
		if (!(id % 2) && ANAMES % 7 == 0)
			i = k;
		snprintf(name, sizeof(name), "conc_%d", i);
		atom_seen[id][i] = nu_atom(name);
	}
	return NULL;
}

static void test_atoms_concurrent(void)
{
	pthread_t th[ATHREADS];
	for (int i = 0; i < ATHREADS; i++)
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, atom_worker,
						     (void *)(intptr_t)i), 0);
	for (int i = 0; i < ATHREADS; i++)
		pthread_join(th[i], NULL);
	char name[32];
	for (int i = 0; i < ANAMES; i++) {
		snprintf(name, sizeof(name), "conc_%d", i);
		CU_ASSERT_NOT_EQUAL(atom_seen[0][i], NU_NONE);
		CU_ASSERT_STRING_EQUAL(nu_atom_name(atom_seen[0][i]), name);
		for (int t = 1; t < ATHREADS; t++)
			CU_ASSERT_EQUAL(atom_seen[t][i], atom_seen[0][i]);
		for (int j = 0; j < i; j += 97)
			CU_ASSERT_NOT_EQUAL(atom_seen[0][j], atom_seen[0][i]);
	}
}

/* -------------------------------------------------------------- copy */

static void test_copy(void)
{
	static char text[1 << 16];
	enum { N = 300 };
	static nu_term orig[N], copy[N], flat[N];
	static char *saved[N];
	static void *bufs[N];
	theap dst;
	theap_open(&dst, WIN);
	rng = 777;
	for (int i = 0; i < N; i++) {
		orig[i] = gen(0);
		size_t sz = nu__term_flat_size(orig[i]);
		size_t before = nu__heap_used(&dst.h);
		copy[i] = nu__term_copy(orig[i], &dst.h);
		CU_ASSERT_FATAL(copy[i] != NU_NONE);
		CU_ASSERT(nu__heap_used(&dst.h) - before >= sz);
		CU_ASSERT(nu_term_equal(orig[i], copy[i]));
		void *buf = sz ? aligned_alloc(16, (sz + 15) & ~(size_t)15)
			       : NULL;
		flat[i] = nu__term_copy_buf(orig[i], buf, sz);
		CU_ASSERT(nu_term_equal(orig[i], flat[i]));
		if (sz) {
			CU_ASSERT_EQUAL(nu__term_copy_buf(orig[i], buf, sz - 8),
					NU_NONE);
		}
		nu_term_print(orig[i], text, sizeof(text));
		saved[i] = strdup(text);
		bufs[i] = buf;
	}
	/* Poison the source heap: the copies must not notice. */
	size_t used = nu__heap_top(&H.h) - (uintptr_t)H.base;
#ifdef NU__HEAP_ASAN
	__asan_unpoison_memory_region(H.base, used); /* block headers */
#endif
	memset(H.base, 0xa5, used);
	for (int i = 0; i < N; i++) {
		CU_ASSERT_STRING_EQUAL(S(copy[i]), saved[i]);
		CU_ASSERT_STRING_EQUAL(S(flat[i]), saved[i]);
		CU_ASSERT(nu_term_equal(copy[i], flat[i]));
		free(saved[i]);
		free(bufs[i]);
	}
	theap_close(&dst);
}

static void test_copy_small_heap(void)
{
	theap small;
	theap_open(&small, 4096);
	nu_term big[200];
	for (int i = 0; i < 200; i++)
		big[i] = nu__float_in(&H.h, i + 0.5);
	nu_term t = nu__list_in(&H.h, 200, big);
	size_t before = nu__heap_used(&small.h);
	CU_ASSERT_EQUAL(nu__term_copy(t, &small.h), NU_NONE);
	CU_ASSERT_EQUAL(nu__heap_used(&small.h), before);
	/* Immediates copy for free, even into a full heap. */
	CU_ASSERT_EQUAL(nu__term_copy(nu_atom("ok"), &small.h), nu_atom("ok"));
	CU_ASSERT_EQUAL(nu__term_flat_size(NU_NIL), 0);
	CU_ASSERT_EQUAL(nu__term_flat_size(P("{a,[1.0]}")), 24 + 16 + 16);
	/* A small heap runs out while building: NU_NONE, and parse says
	 * -ENOMEM. */
	nu_term l = NU_NIL;
	int k = 0;
	while (l != NU_NONE && k++ < 10000)
		l = nu__cons_in(&small.h, nu_int(k), l);
	CU_ASSERT_EQUAL(l, NU_NONE);
	nu_term out;
	CU_ASSERT_EQUAL(nu__term_parse_in(&small.h, "{1.0}", &out, NULL),
			-ENOMEM);
	theap_close(&small);
}

/* ------------------------------------------------------ inside a node */

static struct {
	int in_ok;
	char printed[256];
	nu_term parsed_ok;
	int refs_differ;
	int pid_ok;
	int none_ok;
	int count_ok;
} NR;

static void node_main(void *arg)
{
	(void)arg;
	nu_term t = nu_tuple(4, nu_atom("ok"), nu_int64(INT64_MAX),
			     nu_float(0.1), nu_binary("hi", 2));
	nu_term l[3] = { nu_int(1), nu_uint64(UINT64_MAX), NU_NIL };
	nu_term k[1] = { nu_atom("k") };
	nu_term m = nu_map_put(nu_map(1, k, l), nu_atom("z"), nu_list(3, l));
	nu_term u = nu_tuple(3, t, m, nu_cons(nu_int(1), nu_atom("b")));
	NR.in_ok = u != NU_NONE && nu_term_type(m) == NU_T_MAP;
	nu_term_print(u, NR.printed, sizeof(NR.printed));
	nu_term back;
	NR.parsed_ok = nu_term_parse(NR.printed, &back, NULL) == 0 &&
		       nu_term_equal(back, u);
	nu_term r1 = nu_make_ref(), r2 = nu_make_ref();
	NR.refs_differ = r1 != NU_NONE && !nu_term_equal(r1, r2);
	nu_term p = nu_pid_term(nu_self());
	NR.pid_ok = nu_pid_value(p) == nu_self() &&
		    nu_term_type(p) == NU_T_PID;
	nu_term tv[1] = { nu_int(1) };
	NR.none_ok = nu_tuple(2, nu_int(1), NU_NONE) == NU_NONE &&
		     nu_tuplev(1, tv) != NU_NONE &&
		     nu_map_put(NU_NIL, NU_NIL, NU_NIL) == NU_NONE;
	/* the macro counts the terms; the function form stays */
	nu_term a = nu_atom("a"), b = nu_int(2);
	nu_term f2 = (nu_tuple)(2, a, b), m2 = nu_tuple(2, a, b);
	nu_term z = nu_tuple(0);
	NR.count_ok = nu_tuple(3, a, b) == NU_NONE &&
		      nu_tuple(1, a, b) == NU_NONE &&
		      nu_tuple((size_t)-1, a) == NU_NONE &&
		      f2 != NU_NONE && m2 != NU_NONE &&
		      nu_term_equal(f2, m2) && nu_tuple_size(m2) == 2 &&
		      nu_tuple_elem(m2, 0) == a && nu_tuple_elem(m2, 1) == b &&
		      z != NU_NONE && nu_tuple_size(z) == 0 &&
		      (nu_tuple)(2, a, NU_NONE) == NU_NONE;
}

static void test_node(void)
{
	nu_config c;
	nt_config(&c, 1, 64, 1 << 20);
	CU_ASSERT_EQUAL_FATAL(nu_start(&c, node_main, NULL), 0);
	CU_ASSERT(NR.in_ok);
	CU_ASSERT_STRING_EQUAL(NR.printed,
			       "{{ok,9223372036854775807,0.1,<<\"hi\">>},"
			       "#{k => 1,z => [1,18446744073709551615,[]]},"
			       "[1|b]}");
	CU_ASSERT(NR.parsed_ok);
	CU_ASSERT(NR.refs_differ);
	CU_ASSERT(NR.pid_ok);
	CU_ASSERT(NR.none_ok);
	CU_ASSERT(NR.count_ok);
	/* Outside a process: allocating constructors fail cleanly. */
	nu_term out;
	CU_ASSERT_EQUAL(nu_float(1.0), NU_NONE);
	CU_ASSERT_EQUAL(nu_int64(INT64_MAX), NU_NONE);
	CU_ASSERT_EQUAL(nu_int64(5), nu_int(5)); /* immediate: no heap */
	CU_ASSERT_EQUAL(nu_tuple(0), NU_NONE);
	CU_ASSERT_EQUAL(nu_cons(nu_int(1), NU_NIL), NU_NONE);
	CU_ASSERT_EQUAL(nu_make_ref(), NU_NONE);
	CU_ASSERT_EQUAL(nu_binary("x", 1), NU_NONE);
	CU_ASSERT_EQUAL(nu_list(0, NULL), NU_NIL);
	CU_ASSERT_EQUAL(nu_term_parse("ok", &out, NULL), -EPERM);
	CU_ASSERT_NOT_EQUAL(nu_atom("outside"), NU_NONE);
	CU_ASSERT_NOT_EQUAL(nu_pid_term(nu__pid_make(1, 1)), NU_NONE);
}

#define T(f) { #f, f }
#define TH(f) { #f, f##_h }
#define WRAP(f)                                                              \
	static void f##_h(void)                                              \
	{                                                                    \
		setup();                                                     \
		f();                                                         \
		teardown();                                                  \
	}
WRAP(test_roundtrip_random)
WRAP(test_fixed)
WRAP(test_print_snprintf)
WRAP(test_malformed)
WRAP(test_bad_input)
WRAP(test_accessors)
WRAP(test_order_table)
WRAP(test_order_random)
WRAP(test_copy)
WRAP(test_copy_small_heap)

static CU_TestInfo tests[] = {
	TH(test_roundtrip_random),
	TH(test_fixed),
	TH(test_print_snprintf),
	TH(test_malformed),
	TH(test_bad_input),
	TH(test_accessors),
	TH(test_order_table),
	TH(test_order_random),
	T(test_atoms_concurrent),
	TH(test_copy),
	TH(test_copy_small_heap),
	T(test_node),
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("term", tests)
