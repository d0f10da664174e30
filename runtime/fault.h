/* fault.h — private to nuproc: the userfaultfd fault path. See fault.c. */
#ifndef NU_FAULT_H
#define NU_FAULT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"

struct nu__sched;

/* Register the node's reservations with a userfaultfd in SIGBUS mode and
 * install the fault handlers, or choose the fallback (plain anonymous
 * memory, said once on stderr). 0, or -errno when NUPROC_UFFD=1 forces
 * userfaultfd and it is refused. Sets m->uffd (-1 in the fallback). */
int nu__fault_init(nu__mem *m, unsigned batch);
void nu__fault_fini(nu__mem *m);

/* Make page P of slot idx (its stack top, control block and heap start)
 * resident, charged to the slot, with one UFFDIO_COPY, when it is
 * missing: a slot taken cold (never used, or its pages released) is
 * written at once by its spawn, and a fault costs far more (the kernel
 * allocates and clears a page before it sees the range is userfaultfd's,
 * then the SIGBUS, the handler, the copy). 0 (also when P is resident
 * already, or in the fallback mode) or -errno (the spawn's write then
 * takes the fault path). */
int nu__fault_prefault_p(nu__mem *m, uint32_t idx);

/* Per scheduler thread: the signal stack and the stack a process that
 * dies of a fault exits on. 0 or -ENOMEM. */
int nu__fault_thread_init(struct nu__sched *s);
void nu__fault_thread_fini(struct nu__sched *s);

/* In a signal handler: make the interrupted thread (uc, a ucontext_t)
 * continue in fn(arg) on s's fault stack when the handler returns. fn
 * must not return: it ends s->current (nu__proc_exit), in normal
 * context. The kernel's sigreturn restores the signal mask. */
void nu__fault_redirect(void *uc, struct nu__sched *s, void (*fn)(uintptr_t),
			uintptr_t arg);

/* Pass a signal on to the handler old (as saved by sigaction), or, when
 * that was the default action, reset it so that the faulting instruction
 * runs again and dies; a sent signal (kill, raise, abort) is raised
 * again. */
void nu__fault_chain(const struct sigaction *old, int sig, siginfo_t *si,
		     void *uc);

/* Make [addr, addr + len) resident before the kernel writes into it
 * (system calls and io_uring get EFAULT from a missing page in SIGBUS
 * mode). Charges the pages to their slot as a touch would. 0 or -errno. */
int nu__mem_populate(void *addr, size_t len);

/* Pages of slot idx populated through the fault path and not released. */
uint32_t nu__fault_resident(const nu__mem *m, uint32_t idx);
/* The slot's pages went back: all of them (full), or all but P. */
void nu__fault_released(nu__mem *m, uint32_t idx, int full);

#endif
