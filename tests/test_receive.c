/* test_receive.c — receive against a model: a process runs tens of
 * thousands of random operations on its own mailbox (sends to itself,
 * priority sends, batches sent by a feeder on the same or another
 * scheduler, tuples and bare integers, references made before sends,
 * plain and selective receives with wildcards, variables and pre-bound
 * values, polls and short timeouts), and after each receive compares
 * what it got, and which clause took it, with a plain list that follows
 * the rules: priority messages first, then arrival order (per sender);
 * the first message any clause takes, and the first clause that takes
 * it. The mailbox's fast
 * paths (the inline take, head_select, the short way to a deferred park,
 * the receiver's own message for an immediate, the receive marker)
 * must agree with the slow ones on every step. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "nutest.h"
#include "nuproc.h"
#include "nutest_node.h"

#define OPS 30000
#define TAGS 4
#define MAXQ (OPS * BATCH) /* an operation adds at most BATCH */
#define BATCH 12

/* One message of the model, in arrival order. */
typedef struct {
	int prio;   /* sent with priority */
	int tag;    /* 0..TAGS-1: {tK, val}; -1: {Ref, val}, ref_no's;
		     * -2: the integer val (an immediate: no block) */
	long val;
	int ref_no; /* which reference (tag -1) */
	int taken;
} mmsg;

static mmsg q[MAXQ];
static int nq, qfirst; /* q[qfirst..nq): may still be queued */
static uint64_t rng;
static nu_term tag_atom[TAGS];
static nu_term refs[OPS]; /* the references made, by number */
static int nrefs;
static long next_val;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

static nu_term term_of(const mmsg *m)
{
	if (m->tag == -2)
		return nu_int(m->val);
	nu_term first = m->tag < 0 ? refs[m->ref_no] : tag_atom[m->tag];
	return nu_tuple(2, first, nu_int(m->val));
}

static mmsg *model_add(int prio, int tag, int ref_no)
{
	CU_ASSERT_FATAL(nq < MAXQ);
	mmsg *m = &q[nq++];
	*m = (mmsg){ prio, tag, next_val++, ref_no, 0 };
	return m;
}

/* A clause of the model: tag (or -1: the reference ref_no; -2: an
 * integer, always pre-bound), and a value it must have when pre-bound. */
typedef struct {
	int tag, ref_no;
	int bound; /* 0: `_`; 1: a variable; 2: pre-bound to val */
	long val;
} mclause;

static int clause_takes(const mclause *c, const mmsg *m)
{
	if (c->tag != m->tag || (c->tag < 0 && c->ref_no != m->ref_no))
		return 0;
	return c->bound != 2 || c->val == m->val;
}

/* The message a receive with these clauses takes (n 0: any), and the
 * clause: priority messages first, then the normal ones, each in arrival
 * order. NULL when none. */
static mmsg *model_take(const mclause *c, int n, int *clause)
{
	for (int lane = 1; lane >= 0; lane--)
		for (int i = qfirst; i < nq; i++) {
			mmsg *m = &q[i];
			if (m->taken || m->prio != lane)
				continue;
			for (int k = 0; k < (n ? n : 1); k++)
				if (!n || clause_takes(&c[k], m)) {
					*clause = k;
					return m;
				}
		}
	return NULL;
}

static void model_remove(mmsg *m)
{
	m->taken = 1;
	while (qfirst < nq && q[qfirst].taken)
		qfirst++;
}

/* --------------------------------------------------------- the feeder */

static mmsg *feed[BATCH];
static int nfeed;

/* Sends each message of the batch it is told about, in order, then
 * {fed}; {stop} ends it. */
static void feeder(void *a)
{
	nu_pid to = (nu_pid)(uintptr_t)a;
	nu_term t;
	while (nu_receive(&t, 10000) == 0 && t != nu_atom("stop")) {
		for (int i = 0; i < nfeed; i++) {
			nu_term m = term_of(feed[i]);
			CU_ASSERT_EQUAL(feed[i]->prio ? nu_send_priority(to, m)
						      : nu_send(to, m),
					0);
			nu_term_free(m);
		}
		nu_send(to, nu_tuple(1, nu_atom("fed")));
	}
}

/* ------------------------------------------------------------ the run */

static nu_pattern *pat_any[TAGS], *pat_var[TAGS], *pat_ref, *pat_fed,
	*pat_int;

static void compile_all(void)
{
	for (int k = 0; k < TAGS; k++) {
		char src[32];
		snprintf(src, sizeof(src), "{t%d, _}", k);
		CU_ASSERT_FATAL(nu_pattern_compile(src, &pat_any[k], NULL) == 0);
		snprintf(src, sizeof(src), "{t%d, V}", k);
		CU_ASSERT_FATAL(nu_pattern_compile(src, &pat_var[k], NULL) == 0);
		snprintf(src, sizeof(src), "t%d", k);
		tag_atom[k] = nu_atom(src);
	}
	CU_ASSERT_FATAL(nu_pattern_compile("{R, V}", &pat_ref, NULL) == 0);
	CU_ASSERT_FATAL(nu_pattern_compile("{fed}", &pat_fed, NULL) == 0);
	CU_ASSERT_FATAL(nu_pattern_compile("I", &pat_int, NULL) == 0);
}

static void free_all(void)
{
	for (int k = 0; k < TAGS; k++) {
		nu_pattern_free(pat_any[k]);
		nu_pattern_free(pat_var[k]);
	}
	nu_pattern_free(pat_ref);
	nu_pattern_free(pat_fed);
	nu_pattern_free(pat_int);
}

/* Send one message to ourselves (and the model). */
static void op_send(nu_pid me)
{
	int ref = nrefs && !rnd(6);
	mmsg *m = model_add(!rnd(8),
			    ref ? -1 : rnd(5) ? (int)rnd(TAGS) : -2,
			    ref ? (int)rnd((uint32_t)nrefs) : 0);
	nu_term t = term_of(m);
	CU_ASSERT_EQUAL(m->prio ? nu_send_priority(me, t) : nu_send(me, t),
			0);
	nu_term_free(t);
}

/* A batch from the feeder, then its {fed}: taken by a selective receive
 * that skips what is queued (and may park, deferred, while it comes). */
static void op_feed(nu_pid f)
{
	nfeed = 1 + (int)rnd(BATCH);
	for (int i = 0; i < nfeed; i++)
		feed[i] = model_add(!rnd(8), rnd(4) ? (int)rnd(TAGS) : -2, 0);
	CU_ASSERT_EQUAL(nu_send(f, nu_atom("go")), 0);
	nu_clause c = { pat_fed, NULL, NULL };
	nu_term t;
	CU_ASSERT_EQUAL_FATAL(nu_receive_select(&c, 1, 10000, &t), 0);
	nu_term_free(t);
}

/* A reference, then maybe junk and a message carrying it, taken by a
 * receive that needs it (the receive marker may skip the queue). */
static void op_ref(nu_pid me)
{
	if (nrefs == OPS)
		return;
	refs[nrefs] = nu_make_ref();
	int no = nrefs++;
	for (int j = (int)rnd(3); j > 0; j--)
		op_send(me);
	if (rnd(4)) {
		mmsg *m = model_add(0, -1, no);
		nu_term t = term_of(m);
		CU_ASSERT_EQUAL(nu_send(me, t), 0);
		nu_term_free(t);
	}
}

/* Random clauses: 1-3 (sometimes 9, past the quick tests' eight), tags
 * or a reference, `_`, a variable or a pre-bound value. */
static int make_clauses(mclause *mc, nu_clause *c, nu_term pre[][2],
			nu_term vars[][2])
{
	int n = rnd(10) ? 1 + (int)rnd(3) : 9;
	for (int k = 0; k < n; k++) {
		mclause *x = &mc[k];
		x->tag = nrefs && !rnd(5) ? -1 : rnd(6) ? (int)rnd(TAGS) : -2;
		x->ref_no = x->tag == -1 ? (int)rnd((uint32_t)nrefs) : 0;
		x->bound = x->tag == -2	  ? 2
			   : x->tag == -1 ? 1 + (int)rnd(2)
					  : (int)rnd(3);
		x->val = next_val > 0 ? (long)rnd((uint32_t)next_val) : 0;
		if (x->bound == 2 && qfirst < nq && rnd(2))
			x->val = q[qfirst + (int)rnd((uint32_t)(nq - qfirst))].val;
		pre[k][0] = pre[k][1] = NU_NONE;
		if (x->tag == -2) {
			pre[k][0] = nu_int(x->val);
			c[k] = (nu_clause){ pat_int, pre[k], vars[k] };
		} else if (x->tag == -1) {
			pre[k][0] = refs[x->ref_no];
			if (x->bound == 2)
				pre[k][1] = nu_int(x->val);
			c[k] = (nu_clause){ pat_ref, pre[k], vars[k] };
		} else if (x->bound == 0) {
			c[k] = (nu_clause){ pat_any[x->tag], NULL, NULL };
		} else {
			if (x->bound == 2)
				pre[k][0] = nu_int(x->val);
			c[k] = (nu_clause){ pat_var[x->tag], pre[k], vars[k] };
		}
	}
	return n;
}

/* A receive: plain or selective, a poll or a short wait; what it takes
 * must be what the model takes. */
static void op_receive(void)
{
	mclause mc[9] = { { 0, 0, 0, 0 } };
	nu_clause c[9];
	nu_term pre[9][2], vars[9][2], t;
	int n = rnd(3) ? make_clauses(mc, c, pre, vars) : 0;
	int64_t tmo = rnd(200) ? 0 : 1;
	int k = -1;
	mmsg *want = model_take(mc, n, &k);
	int rc = n ? nu_receive_select(c, (size_t)n, tmo, &t)
		   : nu_receive(&t, tmo);
	if (!want) {
		CU_ASSERT_EQUAL_FATAL(rc, -ETIMEDOUT);
		return;
	}
	CU_ASSERT_EQUAL_FATAL(rc, n ? k : 0);
	nu_term e = term_of(want);
	CU_ASSERT_FATAL(nu_term_equal(t, e));
	if (n && mc[k].bound) /* V is the second variable with R */
		CU_ASSERT_EQUAL(vars[k][mc[k].tag == -1 ? 1 : 0],
				nu_int(want->val));
	nu_term_free(e);
	nu_term_free(t);
	model_remove(want);
}

static void model_main(void *a)
{
	nu_pid me = nu_self();
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	o.scheduler = (int)(uintptr_t)a; /* the feeder's */
	nu_pid f = nu_spawn_opt(feeder, (void *)(uintptr_t)me, &o);
	CU_ASSERT_FATAL(f > 0);
	compile_all();
	for (int i = 0; i < OPS; i++) {
		uint32_t op = rnd(100);
		if (op < 35)
			op_send(me);
		else if (op < 40)
			op_feed(f);
		else if (op < 45)
			op_ref(me);
		else
			op_receive();
	}
	int k;
	nu_term t;
	for (mmsg *want; (want = model_take(NULL, 0, &k));) { /* the rest */
		CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 0), 0);
		nu_term e = term_of(want);
		CU_ASSERT(nu_term_equal(t, e));
		model_remove(want);
	}
	CU_ASSERT_EQUAL(nu_receive(&t, 0), -ETIMEDOUT);
	nu_send(f, nu_atom("stop"));
	free_all();
	nt_wait_alone();
}

static void run_model(unsigned scheds, int feeder_sched, uint64_t seed)
{
	nu_config c;
	nt_config(&c, scheds, 1000, 16 << 20);
	rng = seed;
	nq = qfirst = nrefs = 0;
	next_val = 0;
	CU_ASSERT_EQUAL(nu_start(&c, model_main,
				 (void *)(uintptr_t)feeder_sched), 0);
}

/* The feeder on our scheduler: its sends find us parked, deferred. */
static void test_model_one(void)
{
	run_model(1, 0, 0x9e3779b97f4a7c15u);
	run_model(1, 0, 12345);
}

/* The feeder on the other scheduler: its sends are pushes. */
static void test_model_two(void)
{
	unsigned s = nt_two();
	run_model(s, s > 1 ? 1 : 0, 0xdeadbeefcafef00du);
}

static CU_TestInfo tests[] = {
	{ "receives agree with a model: one scheduler", test_model_one },
	{ "receives agree with a model: a feeder elsewhere", test_model_two },
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("receive", tests)
