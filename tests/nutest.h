/* nutest.h — private to the test suites: CUnit boilerplate shared by them.
 *
 * Each suite file defines its tests and a table, then ends with
 *   NUTEST_MAIN("suite name", tests)
 * where tests is a CU_TestInfo array terminated by CU_TEST_INFO_NULL.
 * The program exits 0 only when every test passed; meson runs each suite
 * as its own program, so a crash in one suite cannot hide another's result.
 */
#ifndef NUTEST_H
#define NUTEST_H

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

#define NUTEST_MAIN(name, tests) \
	int main(void) { return nutest_run((name), (tests)); }

#endif
