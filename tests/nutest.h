/* nutest.h — private to the test suites: CUnit boilerplate shared by them.
 *
 * Each suite file defines its tests and a table, then ends with
 *   NUTEST_MAIN("suite name", tests)
 * where tests is a CU_TestInfo array terminated by CU_TEST_INFO_NULL.
 * The program exits 0 only when every test passed; meson runs each suite
 * as its own program, so a crash in one suite cannot hide another's result.
 *
 * With -DNUTEST_STANDALONE (cross builds, where no CUnit is available) a
 * tiny built-in shim stands in for CUnit: the CU_TestInfo table, the
 * CU_ASSERT family (failures are counted; *_FATAL and CU_FAIL_FATAL leave
 * the test with longjmp, as CUnit does) and a main that runs each test and
 * prints "N passed, N failed", exiting nonzero on any failure.
 */
#ifndef NUTEST_H
#define NUTEST_H

#ifdef NUTEST_STANDALONE
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

typedef void (*CU_TestFunc)(void);
typedef struct CU_TestInfo {
	const char *pName;
	CU_TestFunc pTestFunc;
} CU_TestInfo;
#define CU_TEST_INFO_NULL { NULL, NULL }

static unsigned nutest_failed_asserts;	/* within the running test */
static jmp_buf nutest_abort;

/* Record one assertion; on failure print where, and leave the test when
 * fatal.  Returns ok so the macros can be used as expressions. */
static inline int nutest_assert(int ok, const char *expr, const char *file,
				int line, int fatal)
{
	if (ok)
		return 1;
	nutest_failed_asserts++;
	fprintf(stderr, "  %s:%d: assertion failed: %s\n", file, line, expr);
	if (fatal)
		longjmp(nutest_abort, 1);
	return 0;
}

#define NUTEST_A_(v, s, f) nutest_assert(!!(v), (s), __FILE__, __LINE__, (f))
#define CU_ASSERT(v)			NUTEST_A_((v), #v, 0)
#define CU_ASSERT_FATAL(v)		NUTEST_A_((v), #v, 1)
#define CU_TEST(v)			NUTEST_A_((v), #v, 0)
#define CU_TEST_FATAL(v)		NUTEST_A_((v), #v, 1)
#define CU_ASSERT_TRUE(v)		NUTEST_A_((v), #v, 0)
#define CU_ASSERT_TRUE_FATAL(v)		NUTEST_A_((v), #v, 1)
#define CU_ASSERT_FALSE(v)		NUTEST_A_(!(v), "!(" #v ")", 0)
#define CU_ASSERT_FALSE_FATAL(v)	NUTEST_A_(!(v), "!(" #v ")", 1)
#define CU_ASSERT_EQUAL(a, e)		NUTEST_A_((a) == (e), #a " == " #e, 0)
#define CU_ASSERT_EQUAL_FATAL(a, e)	NUTEST_A_((a) == (e), #a " == " #e, 1)
#define CU_ASSERT_NOT_EQUAL(a, e)	NUTEST_A_((a) != (e), #a " != " #e, 0)
#define CU_ASSERT_NOT_EQUAL_FATAL(a, e)	NUTEST_A_((a) != (e), #a " != " #e, 1)
#define CU_ASSERT_PTR_EQUAL(a, e) \
	NUTEST_A_((const void *)(a) == (const void *)(e), #a " == " #e, 0)
#define CU_ASSERT_PTR_NOT_EQUAL(a, e) \
	NUTEST_A_((const void *)(a) != (const void *)(e), #a " != " #e, 0)
#define CU_ASSERT_PTR_NULL(v)		NUTEST_A_((v) == NULL, #v " == NULL", 0)
#define CU_ASSERT_PTR_NULL_FATAL(v)	NUTEST_A_((v) == NULL, #v " == NULL", 1)
#define CU_ASSERT_PTR_NOT_NULL(v)	NUTEST_A_((v) != NULL, #v " != NULL", 0)
#define CU_ASSERT_PTR_NOT_NULL_FATAL(v)	NUTEST_A_((v) != NULL, #v " != NULL", 1)
#define CU_PASS(msg)			((void)(msg))
#define CU_FAIL(msg)			NUTEST_A_(0, (msg), 0)
#define CU_FAIL_FATAL(msg)		NUTEST_A_(0, (msg), 1)

/* Run one test; a fatal assertion longjmps back here.  Returns the number
 * of failed assertions.  (No locals live across setjmp, so none can be
 * clobbered by the longjmp.) */
static inline unsigned nutest_run_one(CU_TestFunc f)
{
	nutest_failed_asserts = 0;
	if (setjmp(nutest_abort) == 0)
		f();
	return nutest_failed_asserts;
}

/* Run every test of the NULL-terminated table in order; print each result
 * and the totals.  Returns 0 when all passed, 1 otherwise, 2 when the table
 * is empty. */
static inline int nutest_run(const char *name, CU_TestInfo *tests)
{
	unsigned passed = 0, failed = 0;

	for (CU_TestInfo *t = tests; t->pName; t++) {
		if (nutest_run_one(t->pTestFunc)) {
			failed++;
			printf("%s: %s ... FAILED\n", name, t->pName);
		} else {
			passed++;
			printf("%s: %s ... passed\n", name, t->pName);
		}
		fflush(stdout);
	}
	printf("%s: %u passed, %u failed\n", name, passed, failed);
	if (passed + failed == 0)
		return 2;
	return failed ? 1 : 0;
}

#else /* CUnit */

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>

static inline int nutest_run(const char *name, CU_TestInfo *tests)
{
	CU_SuiteInfo suites[] = {
		{ (char *)name, NULL, NULL, NULL, NULL, tests },
		CU_SUITE_INFO_NULL,
	};
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	if (CU_register_suites(suites) != CUE_SUCCESS) {
		CU_cleanup_registry();
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() +
			  CU_get_number_of_tests_failed();
	unsigned run = CU_get_number_of_tests_run();
	CU_cleanup_registry();
	if (run == 0) {
		fprintf(stderr, "%s: no test ran\n", name);
		return 2;
	}
	return failed ? 1 : 0;
}

#endif /* NUTEST_STANDALONE */

#define NUTEST_MAIN(name, tests) \
	int main(void) { return nutest_run((name), (tests)); }

#endif
