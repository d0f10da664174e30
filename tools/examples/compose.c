/* compose.c — sequential and parallel composition: one pipeline stage
 * (the longest Collatz chain in each block of numbers) run in a loop,
 * then as nu_pmap over one worker per scheduler; then nu_race of two
 * factoring strategies, twice: the first to answer wins, the other is
 * killed.
 *
 * Build against the installed library:
 *   cc -O2 compose.c $(pkg-config --static --cflags --libs nuproc) -o compose
 */
#include <nuproc.h>
#include <stdint.h>
#include <stdio.h>

#define BLOCKS 1000
#define BLOCK 1000 /* numbers per block: coarse items, or copying dominates */

static double ms(uint64_t t0) { return (double)(nu_clock_ns() - t0) / 1e6; }

/* The stage: block b -> {Steps, N}, the longest chain in the block. */
static nu_term longest(nu_term b, void *arg)
{
	(void)arg;
	int64_t best = -1, at = 0;
	for (int64_t k = 1; k <= BLOCK; k++) {
		int64_t m = nu_int_value(b) * BLOCK + k, steps = 0;
		for (uint64_t n = (uint64_t)m; n != 1; steps++)
			n = n % 2 ? 3 * n + 1 : n / 2;
		if (steps > best)
			best = steps, at = m;
	}
	return nu_tuple(2, nu_int(best), nu_int(at));
}

/* Two strategies for a factor of an odd n. Nothing preempts a process
 * that never calls the runtime, so each yields now and then: a loser
 * is killed at its next runtime call. */
static nu_term trial_division(void *arg)
{
	uint64_t n = *(const uint64_t *)arg;
	for (uint64_t d = 3; d * d <= n; d += 2) {
		if (n % d == 0)
			return nu_int64((int64_t)d);
		if ((d & 0xffff) == 1)
			nu_yield();
	}
	return nu_int64((int64_t)n);
}

static uint64_t isqrt(uint64_t n)
{
	uint64_t x = n, y = (x + 1) / 2;
	while (y < x) {
		x = y;
		y = (x + n / x) / 2;
	}
	return x;
}

/* Fermat: n = a^2 - b^2 = (a - b)(a + b), quick when the factors are
 * close to the square root. */
static nu_term fermat(void *arg)
{
	uint64_t n = *(const uint64_t *)arg, a = isqrt(n);
	a += a * a < n;
	for (uint64_t i = 0;; i++, a++) {
		uint64_t b = isqrt(a * a - n);
		if (b * b == a * a - n)
			return nu_int64((int64_t)(a - b));
		if ((i & 0xffff) == 0)
			nu_yield();
	}
}

static void race(uint64_t n)
{
	static const char *const names[2] = { "trial division", "Fermat" };
	const nu_race_fn fns[2] = { trial_division, fermat };
	void *const args[2] = { &n, &n };
	nu_term r;
	size_t w;
	int64_t f;
	uint64_t t0 = nu_clock_ns();
	int rc = nu_race(fns, args, 2, 10000, &r, &w);
	if (rc < 0 || nu_int64_value(r, &f) < 0)
		printf("race: %s\n", nu_strerror(rc));
	else
		printf("race: %llu = %lld x %llu, %s won in %.1f ms\n",
		       (unsigned long long)n, (long long)f,
		       (unsigned long long)(n / (uint64_t)f), names[w], ms(t0));
}

static void main_process(void *arg)
{
	(void)arg;
	nu_term items = NU_NIL, seq = NU_NIL, par, best = nu_int(0);
	for (int64_t b = BLOCKS - 1; b >= 0; b--)
		items = nu_cons(nu_int(b), items);

	uint64_t t0 = nu_clock_ns(); /* sequential: one process, in order */
	for (int64_t b = BLOCKS - 1; b >= 0; b--)
		seq = nu_cons(longest(nu_int(b), NULL), seq);
	printf("sequential: %d numbers in %.1f ms\n", BLOCKS * BLOCK, ms(t0));

	t0 = nu_clock_ns(); /* parallel: a chunk of blocks per scheduler */
	if (nu_pmap(longest, NULL, items, 0, &par, NULL) < 0)
		nu_exit(nu_int(1)); /* nu_start returns 1 */
	printf("nu_pmap:    %d numbers in %.1f ms, same results: %s\n",
	       BLOCKS * BLOCK, ms(t0), nu_term_equal(seq, par) ? "yes" : "no");
	for (nu_term t = par; t != NU_NIL; t = nu_list_tail(t))
		if (nu_term_compare(nu_list_head(t), best) > 0)
			best = nu_list_head(t); /* tuples: by steps first */
	printf("longest chain: %lld, %lld steps\n",
	       (long long)nu_int_value(nu_tuple_elem(best, 1)),
	       (long long)nu_int_value(nu_tuple_elem(best, 0)));

	race(100000007ull * 100000037ull); /* close factors: Fermat */
	race(1000003ull * 9999999967ull);  /* a small factor: division */
}

int main(void)
{
	int rc = nu_start(NULL, main_process, NULL);
	if (rc < 0)
		fprintf(stderr, "nu_start: %s\n", nu_strerror(rc));
	return rc < 0 ? 1 : rc;
}
