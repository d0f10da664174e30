/* crash.h — private to nuproc: crash isolation (nu_config.crash_isolation).
 * See crash.c. */
#ifndef NU_CRASH_H
#define NU_CRASH_H

#include <signal.h>

#include "nuproc.h"

/* At node start: decide whether crashes are isolated (the config, or
 * NUPROC_CRASH_ISOLATION=1) and, if so, install the SIGFPE, SIGILL and
 * SIGABRT handlers (SIGSEGV comes through fault.c). 0, or -ENOTSUP when
 * isolation is asked for and the library was built without the runtime's
 * text range, or -errno from sigaction. */
int nu__crash_init(const nu_config *cfg);

/* At node teardown: isolation off, the previous handlers back. */
void nu__crash_fini(void);

/* In a fault signal handler, for a fault the userfaultfd path did not
 * claim: 1 when the fault ends only the running process (uc now resumes
 * in the crash exit), 0 when it must go on to the previous handler (a
 * fault in the runtime is reported on stderr first). */
int nu__crash_isolate(int sig, siginfo_t *si, void *uc);

#endif
