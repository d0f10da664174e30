/*
 * test_resumable.c — the entry stubs of arch/<cpu>/resumable.S (see
 * arch/ctx.h, "Returns after a switch"), alone: this file stands in for
 * their C bodies, so the stubs' two ways back (a `ret`, and the indirect
 * jump used after a switch) are checked on each architecture, under
 * qemu-user for aarch64 (tests/run_aarch64.sh). The runtime's own bodies
 * are exercised by every other suite on the host.
 *
 * Builds with CUnit, or with -DNUTEST_STANDALONE (cross builds).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "ctx.h"
#include "nutest.h"
#include "nuproc.h"

/* What the fake bodies saw and did. */
static struct {
	nu_term *out;
	int64_t timeout;
	const nu_clause *clauses;
	size_t n;
	uintptr_t frame;
	unsigned calls;
} seen;

/* Fake body of nu_receive: result timeout_ms (as an int), NU__SWITCHED
 * when it is odd; *out gets 1000 + timeout_ms. */
__attribute__((noinline)) uint64_t nu__receive(nu_term *out,
					       int64_t timeout_ms);
__attribute__((noinline)) uint64_t nu__receive(nu_term *out,
					       int64_t timeout_ms)
{
	seen.out = out;
	seen.timeout = timeout_ms;
	seen.frame = (uintptr_t)__builtin_frame_address(0);
	seen.calls++;
	if (out)
		*out = (nu_term)(1000 + timeout_ms);
	return (uint32_t)(int32_t)timeout_ms |
	       ((timeout_ms & 1) ? NU__SWITCHED : 0);
}

/* Fake body of nu_receive_select: result (int)n, NU__SWITCHED when
 * timeout_ms is nonzero. */
__attribute__((noinline)) uint64_t nu__receive_select(
	const nu_clause *clauses, size_t n, int64_t timeout_ms, nu_term *msg);
__attribute__((noinline)) uint64_t nu__receive_select(
	const nu_clause *clauses, size_t n, int64_t timeout_ms, nu_term *msg)
{
	seen.clauses = clauses;
	seen.n = n;
	seen.timeout = timeout_ms;
	seen.frame = (uintptr_t)__builtin_frame_address(0);
	seen.calls++;
	if (msg)
		*msg = (nu_term)n;
	return (uint32_t)(int32_t)n | (timeout_ms ? NU__SWITCHED : 0);
}

/* The address of a local of a fresh frame: moves if the stack does. */
__attribute__((noinline)) static uintptr_t probe_sp(void)
{
	volatile char c = 0;
	return (uintptr_t)&c;
}

static void test_results_both_ways(void)
{
	static const int64_t vals[] = { 0, 1, 2, 3, -1, -EINVAL, -EPERM,
					-ETIMEDOUT, 0x7ffffffe, 0x7fffffff };
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
		nu_term t = 0;
		memset(&seen, 0, sizeof seen);
		int rc = nu_receive(&t, vals[i]);
		CU_ASSERT_EQUAL(rc, (int)vals[i]);
		CU_ASSERT_EQUAL(seen.calls, 1);
		CU_ASSERT(seen.out == &t);
		CU_ASSERT_EQUAL(seen.timeout, vals[i]);
		CU_ASSERT_EQUAL(t, (nu_term)(1000 + vals[i]));
		/* the ABI's alignment at the body's entry */
		CU_ASSERT_EQUAL(seen.frame % 16, 0);
	}
}

static void test_select_args(void)
{
	nu_clause c[3];
	for (int sw = 0; sw < 2; sw++) {
		nu_term t = 0;
		memset(&seen, 0, sizeof seen);
		int k = nu_receive_select(c, 3, sw ? -1 : 0, &t);
		CU_ASSERT_EQUAL(k, 3);
		CU_ASSERT(seen.clauses == c);
		CU_ASSERT_EQUAL(seen.n, 3);
		CU_ASSERT_EQUAL(seen.timeout, sw ? -1 : 0);
		CU_ASSERT_EQUAL(t, 3);
		CU_ASSERT_EQUAL(seen.frame % 16, 0);
	}
}

/* A million calls, half of them returning by the jump: the stack stays
 * where it was, and every result arrives where it should. */
static void test_balanced(void)
{
	uintptr_t before = probe_sp();
	long bad = 0;
	for (int64_t i = 0; i < 1000000; i++) {
		nu_term t;
		bad += nu_receive(&t, i & 0xff) != (int)(i & 0xff);
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(probe_sp(), before);
}

/* Through a pointer, from a recursion: each return lands in its own
 * frame. */
static int (*volatile recv_fn)(nu_term *, int64_t) = nu_receive;

__attribute__((noinline)) static int64_t nest(int64_t d)
{
	nu_term t;
	if (d == 0)
		return 0;
	int rc = recv_fn(&t, d);
	return rc + nest(d - 1) + (int64_t)(t - 1000 - (nu_term)d);
}

static void test_nested(void)
{
	CU_ASSERT_EQUAL(nest(200), 200 * 201 / 2);
}

static CU_TestInfo tests[] = {
	{ "results by ret and by jump", test_results_both_ways },
	{ "nu_receive_select's arguments", test_select_args },
	{ "a million calls keep the stack balanced", test_balanced },
	{ "returns from a recursion, by pointer", test_nested },
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("resumable", tests)
