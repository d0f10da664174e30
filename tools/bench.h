/* bench.h — private to nuproc-bench: what its scenario files share. */
#ifndef NU_BENCH_H
#define NU_BENCH_H

#include <stdint.h>

/* Monotonic clock, ns. */
uint64_t now_ns(void);

/* Report one figure ("name value unit") from inside a run. */
void emit(const char *name, double value, const char *unit);

/* Yield until at most target processes are alive. */
void wait_count(int64_t target);

/* ns per page for a first touch of `pages` fresh anonymous pages (a plain
 * page fault on this machine, in this run). */
double first_touch_ns(long pages);

/* A scenario's string argument (echo_load's HOST:PORT), or NULL. */
extern const char *bench_text;

/* Scenarios of bench_mem.c (issue 4): args as in the scenario table. */
void run_heap_churn(const long *a);
void run_fault(const long *a);
void run_churn_latency(const long *a);
void run_noise(const long *a);

/* Scenarios of bench_echo.c (issue 5). */
void run_echo_load(const long *a);
void run_echo_server(const long *a);
void run_echo(const long *a);

/* Scenarios of bench_otp.c (issue 6). */
void run_call(const long *a);
void run_cast(const long *a);
void run_sup_restart(const long *a);

#endif
