/*
 * nuproc.h — the whole public API of nuproc.
 *
 * nuproc runs Erlang-style processes in C: coroutines with their own stack
 * and heap, run by one pinned scheduler thread per CPU, grouped by NUMA node.
 *
 * Conventions (as in liburing and libuv):
 *   - every fallible call returns 0 or a non-negative value on success and a
 *     negative errno code on failure; the errno global is never set by the
 *     runtime API; nu_strerror() names a code;
 *   - calls that only make sense inside a process return -EPERM when called
 *     from any other thread;
 *   - nothing here prints unless asked.
 */
#ifndef NUPROC_H
#define NUPROC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NUPROC_VERSION_MAJOR 0
#define NUPROC_VERSION_MINOR 1

/* ------------------------------------------------------------------ terms */

/*
 * A term is one tagged 64-bit word (Erlang's data model). This release has
 * the immediates an exit reason needs: small integers and atoms. The low
 * three bits are the tag; the rest of the data model keeps this encoding.
 */
typedef uint64_t nu_term;

#define NU__TAG_BITS 3
#define NU__TAG_MASK ((nu_term)7)
#define NU__TAG_INT ((nu_term)2)
#define NU__TAG_ATOM ((nu_term)3)

/* A small integer term; n must fit in 61 bits (two's complement). */
static inline nu_term nu_int(int64_t n)
{
	return ((nu_term)n << NU__TAG_BITS) | NU__TAG_INT;
}
static inline int nu_is_int(nu_term t) { return (t & NU__TAG_MASK) == NU__TAG_INT; }
/* The value of a small integer term (undefined for other terms). */
static inline int64_t nu_int_value(nu_term t)
{
	return (int64_t)t >> NU__TAG_BITS;
}
static inline int nu_is_atom(nu_term t) { return (t & NU__TAG_MASK) == NU__TAG_ATOM; }

#define NU__ATOM(i) ((((nu_term)(i)) << NU__TAG_BITS) | NU__TAG_ATOM)
/* Atoms every node knows. */
#define NU_ATOM_NORMAL NU__ATOM(0)   /* 'normal' */
#define NU_ATOM_KILL NU__ATOM(1)     /* 'kill' */
#define NU_ATOM_KILLED NU__ATOM(2)   /* 'killed' */
#define NU_ATOM_SHUTDOWN NU__ATOM(3) /* 'shutdown' */
#define NU_ATOM_NOPROC NU__ATOM(4)   /* 'noproc' */
#define NU_ATOM_TRUE NU__ATOM(5)     /* 'true' */
#define NU_ATOM_FALSE NU__ATOM(6)    /* 'false' */
#define NU_ATOM_UNDEFINED NU__ATOM(7) /* 'undefined' */

/*
 * The printable name of an atom term, or NULL when t is not an atom this
 * node knows.
 */
const char *nu_atom_name(nu_term t);

/* ------------------------------------------------------------------ errors */

/* A static, human-readable description of a code returned by this API
 * (negative errno codes; a positive code is treated as its negation). */
const char *nu_strerror(int code);

/* ------------------------------------------------------------------- nodes */

/*
 * Node configuration. Call nu_config_init() first, then change fields.
 * Zero in a numeric field means "the default".
 */
typedef struct nu_config {
	/* Scheduler threads to start; 0 = one per online CPU of the chosen
	 * nodes. More than the CPUs available gives -EINVAL. */
	unsigned schedulers;
	/* NUMA nodes to run on (libnuma numbering); NULL/0 = every node. */
	const int *nodes;
	unsigned nnodes;
	/* Room in the process table; default 1,048,576, at most 16,777,215. */
	size_t max_procs;
	/* Stack window of every process slot (bytes, rounded up to a page);
	 * default 256 KiB, from 16 KiB to 64 MiB. A spawn may ask for any
	 * stack size up to this. */
	size_t stack_size;
	/* Heap a process may grow to beyond the ~57 KiB inside its slot
	 * (its far heap window; bytes, rounded up to a page); default
	 * 16 MiB, from 64 KiB to 1 GiB. Address space only: pages are
	 * used as the heap grows and go back when the process exits. */
	size_t heap_size;
	/* Reductions a process may spend before it is made to yield;
	 * default 4000. */
	unsigned reductions;
	/* Warm slots each scheduler keeps resident for fast spawns;
	 * default 4096. */
	unsigned warm_slots;
} nu_config;

/* Fill *cfg with the defaults. */
void nu_config_init(nu_config *cfg);

/* The body of a process. Returning from it is an exit with reason normal. */
typedef void (*nu_fn)(void *arg);

/*
 * Start a node: scheduler threads (pinned, grouped by NUMA node), then
 * main_fn(arg) as the first process. Blocks the calling thread until the
 * main process has exited and every other process has been stopped (they
 * are killed when the main process exits), then tears the node down.
 *
 * cfg may be NULL for the defaults. One node runs at a time per OS process.
 *
 * Returns the main process's status: 0 when it exited normal, n when its
 * reason was a small integer n in 0..255, 1 for any other reason.
 * Errors: -EINVAL (NULL main_fn, a config field out of range, an unknown
 * node), -EBUSY (a node is already running), -ENOMEM (the reservation or
 * the table could not be made), or the error of a failed thread or ring
 * setup.
 */
int nu_start(const nu_config *cfg, nu_fn main_fn, void *arg);

/* Information about the running node (see nu_node_info()). */
typedef struct nu_node_stats {
	uint64_t processes;     /* live processes */
	uint64_t slots_carved;  /* slots ever taken from the reservations */
	uint64_t slots_warm;    /* free slots kept resident, all schedulers */
	uint64_t slots_cold;    /* free slots whose pages went back to the OS */
	uint64_t slots_pending; /* free slots waiting for their pages to go back */
	uint64_t spawns;        /* processes spawned since start */
	uint64_t steals;        /* successful steals since start */
	unsigned schedulers;
	unsigned nodes;
} nu_node_stats;

/* Fill *st with the node's counters. -EINVAL for NULL, -ESRCH when no node
 * runs. The counters are read without stopping the node: each is exact, the
 * set is not one snapshot. */
int nu_node_info(nu_node_stats *st);

/* Number of live processes on this node, or -ESRCH when no node runs. */
int64_t nu_process_count(void);

/* ---------------------------------------------------------------- processes */

/*
 * A process identifier. Positive; encodes the slot index and a generation
 * so that a dead pid never names a later process.
 */
typedef int64_t nu_pid;

/* Options for nu_spawn_opt(). Initialise with nu_spawn_opts_init(). */
typedef struct nu_spawn_opts {
	int scheduler;     /* run only on this scheduler (0-based); -1 = any */
	int node;          /* run only on this NUMA node's schedulers; -1 = any */
	size_t stack_size; /* usable stack, bytes; 0 = the node's stack window */
} nu_spawn_opts;

/* Fill *o with the defaults (no affinity, default stack). */
void nu_spawn_opts_init(nu_spawn_opts *o);

/*
 * Spawn a process running fn(arg) on the calling scheduler (it may be
 * stolen by another). Returns its pid, or -EINVAL (NULL fn), -EAGAIN (the
 * process table is full; the node keeps running), -EPERM (not called from a
 * process). Makes no system call and takes no page fault when a warm slot
 * is available.
 */
nu_pid nu_spawn(nu_fn fn, void *arg);

/*
 * As nu_spawn() with options. -EINVAL also for a NULL opts, a scheduler or
 * node that does not run here, a node and a scheduler that disagree, or a
 * stack size above the node's stack window or below 16 KiB.
 */
nu_pid nu_spawn_opt(nu_fn fn, void *arg, const nu_spawn_opts *opts);

/* The calling process's pid, or -EPERM outside a process. */
nu_pid nu_self(void);

/*
 * Let other processes run; the caller stays runnable and resumes later,
 * possibly on another scheduler thread. 0, or -EPERM outside a process.
 */
int nu_yield(void);

/*
 * End the calling process with reason (a term: NU_ATOM_NORMAL is a normal
 * exit). Does not return. Outside a process it does nothing but return.
 */
void nu_exit(nu_term reason);

/* 1 if pid names a live process, 0 if not, -EINVAL for a pid that could
 * never name one here, -ESRCH when no node runs. */
int nu_is_alive(nu_pid pid);

/* The index of the scheduler running the caller (0-based), or -EPERM
 * outside a process. May change after any call that can yield. */
int nu_scheduler_id(void);

/* ------------------------------------------------ per-process allocator */

/*
 * Allocate from the calling process's heap window: 16-byte aligned, no
 * locks, no system call. Everything a process allocated goes away when it
 * exits; nu_free() is optional. A pointer is valid only in the process
 * that allocated it (send a copy to share data).
 *
 * nu_alloc returns NULL when n is 0, when the heap window is exhausted, or
 * outside a process. nu_calloc returns zeroed memory, NULL on overflow of
 * n * size. nu_realloc(NULL, n) is nu_alloc(n); nu_realloc(p, 0) frees p
 * and returns NULL; on failure p is left untouched. nu_free(NULL) does
 * nothing; freeing a pointer that nu_alloc did not return is undefined.
 */
void *nu_alloc(size_t n);
void *nu_calloc(size_t n, size_t size);
void *nu_realloc(void *p, size_t n);
void nu_free(void *p);

/* Bytes currently allocated in the calling process's heap (0 outside a
 * process). */
size_t nu_heap_used(void);

#ifdef __cplusplus
}
#endif
#endif /* NUPROC_H */
