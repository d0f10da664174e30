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

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NUPROC_VERSION_MAJOR 0
#define NUPROC_VERSION_MINOR 1

/* ------------------------------------------------------------------ terms */

/*
 * A term is one tagged 64-bit word (Erlang's data model; see term.c for
 * the representation). The low three bits are the tag:
 *   0 boxed (a pointer to a header word and its payload: bignum, float,
 *     binary, tuple, map, reference), 1 list cell (a pointer to two
 *     words), 2 small integer (61 bits, two's complement), 3 atom (an
 *     index into the node-wide atom table), 4 local pid, 7 special
 *     immediates (NU_NIL, NU_NONE).
 * Boxed terms and list cells live in the heap of the process that built
 * them (nu_alloc's heap) and are valid only there: send a copy to share.
 * Nothing is ever mutated after construction.
 *
 * Constructors return NU_NONE on failure: heap window exhausted, bad input,
 * or (for those that allocate) called outside a process. NU_NONE is never
 * a valid term: every constructor given NU_NONE returns NU_NONE, and every
 * other function taking a term rejects it (-EINVAL or the documented
 * "not this type" answer).
 */
typedef uint64_t nu_term;
/* (A process identifier, declared again under "processes".) */
typedef int64_t nu_pid;

#define NU__TAG_BITS 3
#define NU__TAG_MASK ((nu_term)7)
#define NU__TAG_BOXED ((nu_term)0)
#define NU__TAG_CONS ((nu_term)1)
#define NU__TAG_INT ((nu_term)2)
#define NU__TAG_ATOM ((nu_term)3)
#define NU__TAG_PID ((nu_term)4)
#define NU__TAG_SPECIAL ((nu_term)7)

/* The empty list [] (an immediate). */
#define NU_NIL ((nu_term)((0 << NU__TAG_BITS) | 7))
/* "No term": the failure value of constructors; never a valid term. */
#define NU_NONE ((nu_term)((1 << NU__TAG_BITS) | 7))

/* Smallest and largest small integer (61-bit immediate). */
#define NU_INT_MIN (-((int64_t)1 << 60))
#define NU_INT_MAX (((int64_t)1 << 60) - 1)

/* A small integer term; n must lie in NU_INT_MIN..NU_INT_MAX (use
 * nu_int64() for any int64_t). */
static inline nu_term nu_int(int64_t n)
{
	return ((nu_term)n << NU__TAG_BITS) | NU__TAG_INT;
}
/* 1 when t is a small integer (a bignum is not: see nu_term_type()). */
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
 * The printable name of an atom term (NUL-terminated UTF-8, valid for the
 * life of the OS process), or NULL when t is not an atom this node knows.
 * Lock-free.
 */
const char *nu_atom_name(nu_term t);

/* Term types, numbered in Erlang term order (NU_T_INT and NU_T_FLOAT are
 * both "number" and compare by value). */
typedef enum nu_term_type_t {
	NU_T_NONE = 0,	/* NU_NONE or a word that is no term */
	NU_T_INT,	/* small or big integer */
	NU_T_FLOAT,
	NU_T_ATOM,
	NU_T_REF,
	NU_T_PID,
	NU_T_TUPLE,
	NU_T_MAP,
	NU_T_NIL,
	NU_T_LIST,	/* a list cell (non-empty list, proper or not) */
	NU_T_BINARY,
} nu_term_type_t;

/* The layout the inline accessors read (private: may change; use the
 * accessors). A boxed term points at a header word: its kind (1 .. 7:
 * positive and negative bignum, float, binary, tuple, map, reference) in
 * the low 8 bits, its size above; a list cell at its head and tail. */
#define NU__K_TUPLE 5u
#define NU__HDR_KIND(h) ((unsigned)((h) & 0xff))
#define NU__HDR_SIZE(h) ((size_t)((h) >> 8))
static inline const uint64_t *nu__term_words(nu_term t)
{
	return (const uint64_t *)(uintptr_t)(t & ~NU__TAG_MASK);
}

/* The type of t; NU_T_NONE for NU_NONE. Inline, as the accessors below
 * (they run as the caller's own code: with crash isolation, a wild term
 * there ends only its process). */
static inline nu_term_type_t nu_term_type(nu_term t)
{
	static const unsigned char of_kind[8] = {
		NU_T_NONE, NU_T_INT, NU_T_INT, NU_T_FLOAT,
		NU_T_BINARY, NU_T_TUPLE, NU_T_MAP, NU_T_REF,
	};
	switch (t & NU__TAG_MASK) {
	case NU__TAG_BOXED: {
		unsigned k = t ? NU__HDR_KIND(*nu__term_words(t)) : 0;
		return k < 8 ? (nu_term_type_t)of_kind[k] : NU_T_NONE;
	}
	case NU__TAG_CONS:
		return NU_T_LIST;
	case NU__TAG_INT:
		return NU_T_INT;
	case NU__TAG_ATOM:
		return NU_T_ATOM;
	case NU__TAG_PID:
		return NU_T_PID;
	default:
		return t == NU_NIL ? NU_T_NIL : NU_T_NONE;
	}
}

/*
 * Constructors. Those that allocate build in the calling process's heap
 * and return NU_NONE outside a process, when the heap is exhausted, or
 * when an argument is NU_NONE or invalid.
 */

/* The atom named by the NUL-terminated UTF-8 name (interned node-wide;
 * the same name always gives the same term, from any thread, in or out
 * of a process). NU_NONE for NULL, longer than 255 bytes, invalid UTF-8,
 * or a full atom table (1,048,576 atoms). */
nu_term nu_atom(const char *name);
/* The same for name[0..len) (no NUL byte allowed inside). */
nu_term nu_atom_len(const char *name, size_t len);

/* An integer term: a small integer when n fits 61 bits, else a bignum in
 * the caller's heap (so an integer value has exactly one representation
 * and equality is structural). */
nu_term nu_int64(int64_t n);
nu_term nu_uint64(uint64_t n);
/* A float term; NU_NONE for NaN or an infinity (Erlang has neither). */
nu_term nu_float(double d);
/* A binary holding a copy of p[0..n) (p may be NULL when n is 0). */
nu_term nu_binary(const void *p, size_t n);
/* A tuple of the n terms following n (each of type nu_term: make integers
 * with nu_int()). In C, calls go through the macro below, which passes
 * the terms as an array (no variadic call: a 2-tuple takes about half the
 * instructions) and counts them: NU_NONE when that count is not n. The
 * function stays for C++ and for its address ((nu_tuple)(n, ...)). */
nu_term nu_tuple(size_t n, ...);
/* nu_tuple's body for the macro: a[0] is n, a[1..count) the terms. */
nu_term nu__tuple_of(const nu_term *a, size_t count);
#ifndef __cplusplus
#define nu_tuple(...)							\
	nu__tuple_of((const nu_term[]){ __VA_ARGS__ },			\
		     sizeof((nu_term[]){ __VA_ARGS__ }) / sizeof(nu_term))
#endif
/* A tuple of elems[0..n) (elems may be NULL when n is 0). */
nu_term nu_tuplev(size_t n, const nu_term *elems);
/* A list cell [head | tail]; tail need not be a list (improper list). */
nu_term nu_cons(nu_term head, nu_term tail);
/* The proper list [elems[0], ..., elems[n-1]]; NU_NIL when n is 0. */
nu_term nu_list(size_t n, const nu_term *elems);
/* A map of the n pairs keys[i] => vals[i]. Keys are unique by exact
 * equality (nu_term_equal): for a repeated key the last pair wins. */
nu_term nu_map(size_t n, const nu_term *keys, const nu_term *vals);
/* A new map: map with key => val added or replaced (map is unchanged). */
nu_term nu_map_put(nu_term map, nu_term key, nu_term val);
/* The pid term for a local pid (immediate: no allocation, works outside
 * a process); NU_NONE for a pid that is not positive or not local. */
nu_term nu_pid_term(nu_pid pid);
/* A fresh reference, unique on this node for the life of the OS process. */
nu_term nu_make_ref(void);

/*
 * Accessors. Each answers "not this type" as documented, never crashes on
 * a valid term of another type.
 */

/* Arity of a tuple; 0 when t is not a tuple. Inline: a receive loop
 * takes its messages apart with these. */
static inline size_t nu_tuple_size(nu_term t)
{
	if ((t & NU__TAG_MASK) != NU__TAG_BOXED || !t ||
	    NU__HDR_KIND(*nu__term_words(t)) != NU__K_TUPLE)
		return 0;
	return NU__HDR_SIZE(*nu__term_words(t));
}
/* Element i (0-based) of a tuple; NU_NONE when t is not a tuple or i is
 * out of range. */
static inline nu_term nu_tuple_elem(nu_term t, size_t i)
{
	return i < nu_tuple_size(t) ? nu__term_words(t)[1 + i] : NU_NONE;
}
/* Head and tail of a list cell; NU_NONE when t is not a list cell. */
static inline nu_term nu_list_head(nu_term t)
{
	return (t & NU__TAG_MASK) == NU__TAG_CONS ? nu__term_words(t)[0]
						  : NU_NONE;
}
static inline nu_term nu_list_tail(nu_term t)
{
	return (t & NU__TAG_MASK) == NU__TAG_CONS ? nu__term_words(t)[1]
						  : NU_NONE;
}
/* The bytes of a binary (valid as long as the term); NULL when t is not a
 * binary. */
const void *nu_binary_data(nu_term t);
/* Size in bytes of a binary; 0 when t is not a binary. */
size_t nu_binary_size(nu_term t);
/* The value of a float term; NaN when t is not a float. */
double nu_float_value(nu_term t);
/* The value of an integer (small or big) in *out: 0, -ERANGE for a
 * bignum outside int64_t, -EINVAL when t is not an integer or out NULL. */
int nu_int64_value(nu_term t, int64_t *out);
/* Number of pairs of a map; 0 when t is not a map. */
size_t nu_map_size(nu_term t);
/* Look key up in map (exact equality): 0 and *val set (val may be NULL),
 * -ENOENT when absent, -EINVAL when map is not a map or key is NU_NONE. */
int nu_map_get(nu_term map, nu_term key, nu_term *val);
/* The pid of a pid term, -EINVAL when t is not a pid. */
static inline nu_pid nu_pid_value(nu_term t)
{
	return (t & NU__TAG_MASK) == NU__TAG_PID ? (nu_pid)(t >> NU__TAG_BITS)
						 : -EINVAL;
}

/*
 * Erlang term order: number < atom < reference < fun < port < pid <
 * tuple < map < nil < list < binary. Numbers compare by value (1 == 1.0,
 * 0.0 == -0.0), atoms by name (bytes), references by creation order, pids
 * by (index, generation), tuples by size then elements, maps by size then
 * keys (ascending, integers before equal floats) then values, lists
 * element-wise (a shorter prefix first), binaries bytewise then by size.
 * Returns <0, 0 or >0. NU_NONE sorts before everything (it is not a term:
 * do not pass it). Recursion depth is the nesting of tuples, maps and
 * list heads (list tails are iterated).
 */
int nu_term_compare(nu_term a, nu_term b);
/* 1 when a and b are exactly equal (Erlang =:=: 1 =/= 1.0, 0.0 =/= -0.0),
 * else 0 (also when either is NU_NONE). */
int nu_term_equal(nu_term a, nu_term b);

/*
 * Print t in Erlang syntax into buf (snprintf-like: at most len bytes
 * including the NUL, which is always written when len > 0). Returns the
 * length the full text needs (excluding the NUL), or -EINVAL for NU_NONE
 * or a NULL buf with a nonzero len. Atoms are quoted when needed, lists of
 * integers print as lists (never as strings), floats with the fewest
 * digits that read back to the same double, always with a ".", binaries
 * as <<"text">> when printable ASCII else <<1,2,3>>, pids as
 * <0.INDEX.GENERATION>, references as #Ref<0.0.HI.LO> (the 64-bit id in
 * two 32-bit halves).
 */
int nu_term_print(nu_term t, char *buf, size_t len);

/*
 * Parse one term in Erlang syntax from the NUL-terminated text (white
 * space and % comments allowed around and between tokens), building it in
 * the calling process's heap. Literal forms: atoms (bare, quoted with
 * escapes), integers of any size (up to 8192 bits) with an optional
 * leading -, floats (1.5, -2.0e-3), "strings" (lists of code points),
 * <<1,2,"text">> binaries (bytes 0..255), tuples, lists incl. [a|b], maps
 * #{k => v}, pids <0.I.G> and references #Ref<0.0.HI.LO> as printed.
 * Returns 0 with *out set, -EINVAL for malformed text with *err_pos (when
 * err_pos is not NULL) the byte offset of the first offending character
 * (the text's length when it ends too early; the opening quote of an
 * unterminated quoted atom or string), -ENOMEM when the heap is exhausted,
 * -EPERM outside a process. On error the heap may hold unreachable pieces
 * (they go when the process exits).
 */
int nu_term_parse(const char *text, nu_term *out, size_t *err_pos);

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
	/* Default heap limit of a process (bytes; nu_spawn_opts.max_heap
	 * overrides it); 0 = its heap windows (~57 KiB + heap_size). A
	 * process whose heap grows past it exits with reason heap_limit. */
	size_t max_heap;
	/* Pages a fault on process memory populates at once (userfaultfd
	 * mode); default 16, from 1 to 64. */
	unsigned fault_batch;
	/* Crash isolation, 0 (default) or 1. When 1 (or when the environment
	 * has NUPROC_CRASH_ISOLATION=1), a SIGSEGV, SIGFPE, SIGILL or SIGABRT
	 * (abort()) raised while a process runs its own code ends only that
	 * process, with reason {signal, Name, Address}: Name the atom
	 * 'SIGSEGV', 'SIGFPE', 'SIGILL' or 'SIGABRT', Address the faulting
	 * address (si_addr; the instruction's for SIGFPE and SIGILL, 0 for
	 * SIGABRT) as an integer; its links and monitors see that reason and
	 * the node runs on. "Its own code" includes the libraries it calls:
	 * a lock it held there stays held, its malloc'd memory leaks. A crash
	 * in the runtime itself, or outside any process, is reported on
	 * stderr (signal, address, scheduler, the running pid, a backtrace)
	 * and the OS process dies of it as without isolation. Off, every
	 * crash kills the OS process. nu_start gives -ENOTSUP when the
	 * library was built without its code range (LTO, no objcopy). */
	int crash_isolation;
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
 * the table could not be made), -ENOTSUP (crash_isolation in a library
 * built without it), or the error of a failed thread or ring setup.
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
	uint64_t msg_blocks_cached; /* free 128-byte message blocks the
				     * schedulers keep for their next sends
				     * (up to 4096 each; a busy one gives
				     * back half of those beyond 512 every
				     * second, an idle one all of them after
				     * ~10 ms) */
	uint64_t records_bytes; /* memory of the runtime's own records
				 * (monitor and link records, exit signals and
				 * DOWNs in flight): 64 KiB pages in use, and
				 * up to 1 MiB of free ones kept after ~10 ms
				 * idle */
	unsigned schedulers;
	unsigned nodes;
} nu_node_stats;

/* Fill *st with the node's counters. -EINVAL for NULL, -ESRCH when no node
 * runs. The counters are read without stopping the node: each is exact, the
 * set is not one snapshot. */
int nu_node_info(nu_node_stats *st);

/* Number of live processes on this node, or -ESRCH when no node runs.
 * Exact when no process spawns or exits during the call; otherwise off by
 * at most the spawns and exits that happened meanwhile. */
int64_t nu_process_count(void);

/* ---------------------------------------------------------------- processes */

/*
 * A process identifier. Positive; encodes the slot index and a generation
 * so that a dead pid never names a later process.
 */
typedef int64_t nu_pid;

/* Options for nu_spawn_opt(). Initialise with nu_spawn_opts_init(). */
/* What a send to a full bounded mailbox does (nu_spawn_opts.mailbox_policy). */
typedef enum nu_mailbox_policy {
	NU_MAILBOX_WAIT = 0,  /* the sending process waits for room (a sender
			       * outside a process gets -EAGAIN) */
	NU_MAILBOX_FAIL = 1,  /* the send returns -EAGAIN */
	NU_MAILBOX_KILL = 2,  /* the receiver is killed, reason mailbox_overflow */
} nu_mailbox_policy;

typedef struct nu_spawn_opts {
	int scheduler;     /* run only on this scheduler (0-based); -1 = any */
	int node;          /* run only on this NUMA node's schedulers; -1 = any */
	size_t stack_size; /* usable stack, bytes; 0 = the node's stack window */
	uint32_t max_mailbox; /* queued messages at most; 0 = unbounded */
	nu_mailbox_policy mailbox_policy;
	/* When not NULL: the spawner monitors the new process from the
	 * start (Erlang's spawn_monitor; no window in which it could exit
	 * unobserved) and *monitor_ref gets the reference. */
	nu_term *monitor_ref;
	/* Nonzero: the spawner links to the new process from the start
	 * (Erlang's spawn_link). With monitor_ref, both or neither. */
	int link;
	/* Heap limit in bytes (rounded up to pages; counts received
	 * messages kept); 0 = the node's max_heap. Past it the process
	 * exits with reason heap_limit. */
	size_t max_heap;
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

/*
 * Suspend the calling process for at least ms milliseconds; other
 * processes run meanwhile. Never returns early (accuracy: the deadline plus
 * scheduling delay). ms == 0 is nu_yield(). 0, -EPERM outside a process,
 * -ENOMEM when no timer could be armed. A process killed while sleeping
 * exits at once.
 */
int nu_sleep(uint64_t ms);

/* --------------------------------------------------------------- patterns */

/*
 * Patterns for selective receive: Erlang-syntax terms with variables,
 * compiled once, then matched against terms any number of times, from
 * any thread (a compiled pattern is read-only; it lives in malloc'd
 * memory, not in a process heap, so it may outlive the process that
 * made it and be shared by many).
 *
 * Syntax: every literal nu_term_parse() accepts, plus
 *   - variables: Erlang variable names (uppercase first, or _ and more);
 *     a variable that occurs twice matches only exactly equal terms
 *     (nu_term_equal) at both places; _Name is an ordinary variable;
 *   - _ alone: a wildcard, matching anything and binding nothing;
 *   - tuples, lists and [H|T] tails whose elements are patterns;
 *   - #{K := Pat, ...}: a map that has key K (a literal, no variables)
 *     whose value matches Pat; other keys are allowed; #{} matches any
 *     map. (=> is not a pattern form, as in Erlang.)
 * Matching is exact (Erlang =:=): 1 does not match 1.0.
 */
typedef struct nu_pattern nu_pattern;

/*
 * Compile the NUL-terminated src. 0 with *out set (free it with
 * nu_pattern_free()); -EINVAL for NULL src/out or bad text, with *err_pos
 * (when err_pos is not NULL) the byte offset of the offending token (the
 * text's length when it ends too early; the opening quote of an
 * unterminated quoted atom or string; a map key's first variable), also
 * for nesting beyond the matcher's fixed stack (the subpattern that
 * overflows it); -ENOMEM. Needs no node and no process.
 */
int nu_pattern_compile(const char *src, nu_pattern **out, size_t *err_pos);
/* Free a compiled pattern (NULL does nothing). No match may be running. */
void nu_pattern_free(nu_pattern *p);
/* Number of distinct named variables (_ does not count), -EINVAL for a
 * NULL p. */
int nu_pattern_nvars(const nu_pattern *p);
/* Index of the named variable name: its rank in order of first
 * appearance in the source, 0-based; -ENOENT when the pattern has no such
 * variable (also for "_"), -EINVAL for a NULL p or name. */
int nu_pattern_var(const nu_pattern *p, const char *name);
/*
 * Match t against p. pre (may be NULL: nothing fixed) is an array of
 * nvars terms: pre[i] != NU_NONE fixes variable i to that term (Erlang's
 * already-bound variable), so it matches only terms exactly equal to it.
 * Returns 1 on a match with vars[0..nvars) set to the bound subterms of t
 * (pointers into t, not copies; a fixed variable gets t's equal subterm);
 * 0 when t does not match (vars may have been written); -EINVAL for a
 * NULL p, NU_NONE t, or NULL vars with nvars > 0. Never allocates, takes
 * no lock, O(size of the pattern) plus literal comparisons.
 */
int nu_pattern_match(const nu_pattern *p, nu_term t, const nu_term *pre,
		     nu_term *vars);

/* --------------------------------------------------------------- messages */

/*
 * Send a copy of msg to process `to` (Erlang's `To ! Msg`). The term is
 * copied, so the sender may reuse or drop its own at once; the receiver
 * gets its own copy in its heap. Messages from one sender to one receiver
 * arrive in send order. Sending to a dead pid is a silent no-op (returns
 * 0). A send costs the sender one reduction; when the sender's scheduler
 * runs alone and has 2048 or more messages out that nobody has received,
 * a send to a process on that scheduler ends the sender's time slice (it
 * stays runnable: its receivers run first). Callable from any thread. 0,
 * -EINVAL (NU_NONE or a pid that could never name a process here), -ESRCH
 * (no node), -ENOMEM.
 */
int nu_send(nu_pid to, nu_term msg);

/*
 * As nu_send(), on the receiver's priority lane: every receive (plain or
 * selective) looks at priority messages first, so this one passes the
 * ordinary queue (OTP 28's priority messages; here any sender may use it).
 * Priority messages from one sender arrive in send order among themselves.
 */
int nu_send_priority(nu_pid to, nu_term msg);

/*
 * Take the oldest message of the calling process's mailbox into *out (a
 * copy in the caller's heap), waiting up to timeout_ms milliseconds: 0
 * polls, -1 waits forever. 0, -ETIMEDOUT (nothing arrived in time),
 * -EPERM (outside a process), -EINVAL (NULL out, timeout below -1),
 * -ENOMEM (the caller's heap has no room for the message, which stays
 * queued).
 */
int nu_receive(nu_term *out, int64_t timeout_ms);

/* One clause of a selective receive: a compiled pattern, its pre-bound
 * values (may be NULL: see nu_pattern_match) and where the bound values go
 * (nvars entries; may be NULL when the pattern has no variables). */
typedef struct nu_clause {
	const nu_pattern *pattern;
	const nu_term *pre;
	nu_term *vars;
} nu_clause;

/*
 * Selective receive: take the oldest message that matches any of the n
 * clauses (for each message, oldest first, the clauses are tried in
 * order), waiting up to timeout_ms (0 polls, -1 forever). Messages that
 * match no clause stay queued, in order. *msg (may be NULL) gets the
 * message, a copy in the caller's heap; the matching clause's vars point
 * into it. Returns the index of the matching clause, or -ETIMEDOUT,
 * -EPERM (outside a process), -EINVAL (no clauses, a NULL pattern, NULL
 * vars for a pattern with variables, timeout below -1), -ENOMEM.
 */
int nu_receive_select(const nu_clause *clauses, size_t n, int64_t timeout_ms,
		      nu_term *msg);

/*
 * The predicate form: take the oldest message for which pred(msg, arg)
 * returns nonzero (pred sees the queued message; it must not keep it).
 * 0, -ETIMEDOUT, -EPERM, -EINVAL (NULL pred or out), -ENOMEM.
 */
int nu_receive_if(int (*pred)(nu_term msg, void *arg), void *arg,
		  nu_term *out, int64_t timeout_ms);

/*
 * Give back the heap block holding t's outermost cell: for a term returned
 * by nu_receive() that is the whole message (one block); for a term built
 * with the constructors, only its outermost cell. Immediates (small
 * integers, atoms, pids, []) are left alone. A process that lives long and
 * receives many messages frees each one when done with it; everything
 * else goes when the process exits. Using t or any part of it afterwards
 * is undefined. Must be called by the process that owns t.
 */
void nu_term_free(nu_term t);

/* ---------------------------------------------------------------- monitors */

/*
 * Monitor pid: when it exits (or at once, with reason noproc, when it is
 * not alive) the caller gets {'DOWN', Ref, process, Pid, Reason}. *ref
 * gets the monitor reference. 0, -EPERM (outside a process), -EINVAL (NULL
 * ref, a pid that could never name a process), -ENOMEM.
 */
int nu_monitor(nu_pid pid, nu_term *ref);

/*
 * Turn a monitor off. Once this returns, no DOWN for ref will arrive any
 * more; one may have arrived before: with flush, it is removed too. 0 (it
 * was on), 1 (no monitor of the caller with this reference was on: it
 * fired, and its DOWN may be queued, or it was off already, or never
 * existed: Erlang's demonitor/2 info), -EINVAL (not a reference), -EPERM
 * (outside a process). Never waits.
 */
int nu_demonitor(nu_term ref, int flush);

/* ------------------------------------------------- links and exit signals */

/*
 * Link the caller and pid: when either exits, the other gets an exit
 * signal with the reason. An exit signal with reason normal is ignored;
 * any other reason ends the receiver with that reason, unless it traps
 * exits (nu_trap_exit), in which case it gets {'EXIT', Pid, Reason} as a
 * message. Linking twice is linking once; linking to oneself does
 * nothing. A pid that is not alive gives the caller the exit signal
 * noproc at once (a caller that does not trap exits ends there). 0,
 * -EPERM (outside a process), -EINVAL (a pid that could never name a
 * process), -ENOMEM.
 */
int nu_link(nu_pid pid);

/*
 * Remove the link between the caller and pid, if any. Once this returns,
 * the link has no effect any more (a trapping caller may hold an
 * {'EXIT', Pid, _} message taken before). 0, -EPERM, -EINVAL.
 */
int nu_unlink(nu_pid pid);

/*
 * Set whether the caller traps exits: exit signals (other than kill)
 * become {'EXIT', From, Reason} messages instead of ending it. The flag
 * in force when a signal reaches the process decides. Returns the
 * previous setting (0 or 1), or -EPERM outside a process.
 */
int nu_trap_exit(int on);

/*
 * Send pid the exit signal reason from the caller (Erlang's exit/2).
 * kill cannot be trapped: pid exits with reason killed. Any other reason
 * acts as a link's exit signal would (normal is ignored unless pid traps
 * exits, or pid is the caller: then it exits normally). The signal comes
 * after everything the caller sent pid before. Sent to the caller itself,
 * it acts before nu_kill returns. 0 (also for a pid no longer alive),
 * -EPERM (outside a process), -EINVAL (a bad pid or reason), -ENOMEM.
 */
int nu_kill(nu_pid pid, nu_term reason);

/* --------------------------------------------------------- registered names */

/*
 * Register pid under the atom `name`, node-wide. A name is released when
 * its process exits. 0; -EEXIST (the name is taken, or the process already
 * has a name), -EINVAL (not an atom, the atom 'undefined', a bad pid),
 * -ESRCH (the process is not alive, or no node runs).
 */
int nu_register(nu_term name, nu_pid pid);

/* Remove a name. 0, -ENOENT (not registered), -EINVAL, -ESRCH (no node). */
int nu_unregister(nu_term name);

/* The pid registered under name, -ENOENT when none, -EINVAL for a bad
 * name, -ESRCH when no node runs. */
nu_pid nu_whereis(nu_term name);

/* Send to a registered name: as nu_send() on nu_whereis(name), but an
 * unregistered name is an error (-ENOENT), as in Erlang. */
int nu_send_name(nu_term name, nu_term msg);

/*
 * Send msg to dest after ms milliseconds (Erlang's erlang:send_after/3).
 * The message is copied now; if dest is dead when the timer fires, it is
 * dropped. *ref (when ref is not NULL) gets a reference naming the timer,
 * for nu_cancel_timer(). 0, -EPERM (outside a process), -EINVAL (NU_NONE
 * message, a pid that could never name a process), -ENOMEM.
 */
int nu_send_after(uint64_t ms, nu_pid dest, nu_term msg, nu_term *ref);

/*
 * Cancel a timer made by nu_send_after(): its message will not be sent.
 * Returns the milliseconds that were left (0 or more), -ENOENT when the
 * timer already fired or was cancelled (or ref names no timer), -EINVAL
 * when ref is not a reference. Callable from any process.
 */
int64_t nu_cancel_timer(nu_term ref);

/* 1 if pid names a live process, 0 if not, -EINVAL for a pid that could
 * never name one here, -ESRCH when no node runs. */
int nu_is_alive(nu_pid pid);

/* The index of the scheduler running the caller (0-based), or -EPERM
 * outside a process. May change after any call that can yield. */
int nu_scheduler_id(void);

/* ------------------------------------------------------ process dictionary */

/*
 * Erlang's put/get/erase: a map from term keys to term values private to
 * the calling process, in its heap (it goes when the process exits; a new
 * process starts with an empty one). Keys compare by exact equality
 * (nu_term_equal: 1 and 1.0 are different keys, structurally equal terms
 * built separately are the same key). O(1) expected per call.
 *
 * Keys and values are stored as they are, not copied: they must stay
 * valid while stored, so do not nu_term_free() a term (or the received
 * message it is part of) while the dictionary holds it or any part of it.
 * Terms built with the constructors are safe as long as the process lives.
 */

/* Store value under key. *old (old may be NULL) gets the previous value,
 * NU_NONE when there was none or on error. 0, -EPERM outside a process,
 * -EINVAL for a NU_NONE key or value, -ENOMEM when the heap has no room to
 * grow the dictionary (it is left unchanged; replacing the value of a key
 * already stored never needs room). */
int nu_put(nu_term key, nu_term value, nu_term *old);
/* The value stored under key, or NU_NONE when there is none, for a NU_NONE
 * key, or outside a process. */
nu_term nu_get(nu_term key);
/* Remove key. *old (old may be NULL) gets the removed value, NU_NONE when
 * key was not stored or on error. 0 (also for a missing key), -EPERM
 * outside a process, -EINVAL for a NU_NONE key. */
int nu_erase(nu_term key, nu_term *old);
/* The number of keys stored (0 outside a process). */
size_t nu_dict_size(void);

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

/*
 * Make [addr, addr + len) resident before handing it to the kernel. With
 * userfaultfd on (SIGBUS mode), a system call or io_uring operation that
 * writes into a process page never touched before fails with EFAULT
 * instead of waiting for it; the nu_ I/O calls do this themselves, a
 * process making its own system calls into its stack or heap calls this
 * first. The pages are charged to the process as a touch would (past its
 * heap limit it exits with heap_limit). 0; -EINVAL for a NULL addr with a
 * nonzero len or a range that wraps; 0 and nothing done outside a node or
 * in the fallback mode.
 */
int nu_mem_populate(void *addr, size_t len);

/* What a live process is doing (nu_proc_info.state). */
typedef enum nu_proc_state {
	NU_PROC_RUNNING = 1,  /* on a scheduler right now */
	NU_PROC_RUNNABLE = 2, /* ready, waiting for a scheduler */
	NU_PROC_WAITING = 3,  /* parked: receive, sleep, I/O, a full mailbox */
	NU_PROC_EXITING = 4,  /* ending: its exit signals are going out */
} nu_proc_state;

/* A snapshot of a live process (another process's figures may be a
 * moment old). */
typedef struct nu_proc_info {
	/* Bytes of its slot resident: pages the userfaultfd fault path
	 * populated and release did not give back (exact; a slot kept whole
	 * from the previous process brings its pages, see the README's
	 * "Release"); in the fallback mode an estimate from its stack depth
	 * and heap high-water mark. */
	size_t resident_bytes;
	size_t heap_pages_bytes; /* of which its heap windows (uffd mode) */
	size_t heap_limit;     /* bytes; 0 = its heap windows */
	uint32_t mailbox_len;  /* messages taken into its queue, not received */
	int scheduler;         /* the scheduler that runs or last ran it */
	nu_proc_state state;
	/* Reductions charged so far (runtime calls: sends, receives,
	 * spawns, ...; the unit of the scheduler's time slice), counted
	 * when it switches out: a running process's current slice is not
	 * in yet. */
	uint64_t reductions;
} nu_proc_info;

/* Fill *info for pid. 0, -EINVAL (NULL info or a pid that cannot be one),
 * -ESRCH (not alive, or no node). */
int nu_process_info(nu_pid pid, nu_proc_info *info);

/* Resident bytes the fault path accounts for on NUMA node `node` (libnuma
 * numbering), all slots together; -EINVAL for a node the node does not
 * run on, -ESRCH outside a node, -EOPNOTSUPP in the fallback mode. */
int64_t nu_node_resident(int node);


/* ------------------------------------------------------------ behaviours
 *
 * OTP's generic behaviours (runtime/otp/): the user writes callbacks, the
 * library runs the process loop, the start handshake, calls with replies,
 * stop, and supervision.
 *
 * A server is named by a nu_term: a pid term (nu_pid_term) or a
 * registered name (an atom). nu_call, nu_cast and nu_gen_stop work on any
 * behaviour (a gen_server, a gen_statem, a supervisor).
 *
 * Terms a callback receives (requests, casts, info messages) are freed by
 * the loop when the callback returns, unless it sets ret->keep: a
 * callback that stores a received term (or any part of it) in its state
 * sets keep, and frees the term with nu_term_free() when done with it.
 * Replies and stop reasons are copied when sent: they may be built on the
 * spot, but what a callback builds stays in the server's heap until freed
 * (there is no garbage collector): set ret->free_reply to have the loop
 * nu_term_free the reply once sent (its outermost cell: a reply made by
 * one constructor), or reply with nu_reply and free it yourself.
 */

/* What a callback asks the loop to do next (its return value). */
typedef enum nu_gen_action {
	NU_GEN_OK = 0,      /* init: started; elsewhere: go on, no reply now
			     * (a call is answered later with nu_reply) */
	NU_GEN_REPLY = 1,   /* handle_call: send ret->reply, go on */
	NU_GEN_STOP = 2,    /* stop with ret->reason: terminate(), then exit;
			     * handle_call: ret->reply goes first unless it
			     * is NU_NONE */
	NU_GEN_IGNORE = 3,  /* init only: exit normally, the starter gets
			     * -ECANCELED (a supervisor skips the child) */
} nu_gen_action;

/* A callback's results; the loop fills in the defaults before each
 * callback (reply and reason NU_NONE, timeout_ms -1, keep and free_reply
 * 0). */
typedef struct nu_gen_ret {
	nu_term reply;      /* NU_GEN_REPLY / NU_GEN_STOP from handle_call */
	nu_term reason;     /* NU_GEN_STOP (init: the starter's reason) */
	/* >= 0: when no message comes within this many ms, handle_info
	 * gets the atom timeout (gen_server's {noreply, S, Timeout}); -1 no
	 * timeout. */
	int64_t timeout_ms;
	int keep;           /* nonzero: the loop does not free the message */
	int free_reply;     /* nonzero: the loop frees reply once sent */
} nu_gen_ret;

/* A gen_server's callbacks; NULL ones are skipped (a cast or info with no
 * callback is dropped; a call to a server with no handle_call ends the
 * server with reason undef, and the caller gets that reason). The state
 * is the user's (a pointer; nu_alloc memory lives as long as the server).
 * The struct must stay valid while any server using it runs. */
typedef struct nu_gen_server_cbs {
	/* arg: the start argument, a copy in the server's heap. Returns
	 * NU_GEN_OK (with *state set), NU_GEN_STOP or NU_GEN_IGNORE. */
	int (*init)(nu_term arg, void **state, nu_gen_ret *ret);
	/* from: the caller, for nu_reply (may be sent to another process,
	 * which replies instead). */
	int (*handle_call)(nu_term request, nu_term from, void **state,
			   nu_gen_ret *ret);
	int (*handle_cast)(nu_term msg, void **state, nu_gen_ret *ret);
	/* Any other message: plain sends, {'EXIT', ...} of linked processes
	 * when the server traps exits, DOWNs, the atom timeout. */
	int (*handle_info)(nu_term msg, void **state, nu_gen_ret *ret);
	/* Called when the server stops: a callback returned NU_GEN_STOP,
	 * nu_gen_stop, or (when the server traps exits) an exit signal from
	 * its parent. Not called when it is killed or crashes. */
	void (*terminate)(nu_term reason, void *state);
	/* For nu_gen_status: print the state into buf (at most len bytes
	 * with the NUL); returns the length it needed (as snprintf). NULL:
	 * the status says "<state>". */
	int (*format_state)(void *state, char *buf, size_t len);
} nu_gen_server_cbs;

/* Start options (all may be left as nu_gen_opts_init sets them). */
typedef struct nu_gen_opts {
	/* An atom: register the new process under it (before init runs);
	 * NU_NONE: no name. A name that is taken gives -EEXIST. */
	nu_term name;
	/* How long init may take, ms; -1 forever. Past it the new process
	 * is killed and the start gives -ETIMEDOUT. */
	int64_t timeout_ms;
	/* Spawn options (scheduler, heap limit, mailbox bound...); NULL:
	 * the defaults. Their link and monitor_ref are ignored. */
	const nu_spawn_opts *spawn;
	/* When not NULL: why a start failed (init's stop reason, the
	 * reason it crashed with, or the pid holding the name for -EEXIST
	 * as a pid term); NU_NONE on success. */
	nu_term *reason;
} nu_gen_opts;

void nu_gen_opts_init(nu_gen_opts *o);

/*
 * Start a gen_server running cbs, init(arg) first, and wait until init has
 * returned. The caller is its parent. Returns the new server's pid, or
 * -EINVAL (NULL cbs or init, a bad name, NU_NONE arg), -EEXIST (the name
 * is taken), -ESRCH (init returned NU_GEN_STOP or the process died during
 * init: *opts->reason says why), -ECANCELED (init returned
 * NU_GEN_IGNORE), -ETIMEDOUT, -EPERM (outside a process), -EAGAIN,
 * -ENOMEM (no process could be spawned). opts may be NULL.
 */
nu_pid nu_gen_server_start(const nu_gen_server_cbs *cbs, nu_term arg,
			   const nu_gen_opts *opts);
/*
 * As nu_gen_server_start, linked to the caller from the spawn on (as a
 * supervisor starts its children). When init returns NU_GEN_STOP the
 * server unlinks before it exits (OTP 26's init_fail): the caller gets
 * -ESRCH, not an exit signal. A server that dies in init (nu_exit, a
 * crash) does pass its exit signal over the link, as in OTP.
 */
nu_pid nu_gen_server_start_link(const nu_gen_server_cbs *cbs, nu_term arg,
				const nu_gen_opts *opts);

/*
 * Call a server: send it request and wait up to timeout_ms (-1 forever)
 * for the reply, which goes to *reply (in the caller's heap; free it with
 * nu_term_free when done). The caller monitors the server during the call
 * and the reply is tagged with the monitor's fresh reference, so the wait
 * skips everything queued before (O(1) with a long mailbox), and a reply
 * that comes after a timeout is dropped: it never reaches the caller's
 * mailbox. 0; -ETIMEDOUT; -ESRCH with *reply the server's exit reason if
 * it died before replying (noproc: it was not alive, or no process has
 * that name); -EINVAL (bad server, NU_NONE request, NULL reply, timeout
 * below -1); -EDEADLK (a call to oneself); -EPERM; -ENOMEM.
 */
int nu_call(nu_term server, nu_term request, int64_t timeout_ms,
	    nu_term *reply);

/* Send a cast (handle_cast) to a server. 0, also when it is dead or the
 * name is not registered (a no-op, as in OTP); -EINVAL (bad server or
 * NU_NONE msg); -ENOMEM. Callable from any thread. */
int nu_cast(nu_term server, nu_term msg);

/* Answer a call whose handle_call returned NU_GEN_OK, from the server or
 * any other process given `from`. A reply to a caller that gave up
 * (timeout) or died goes nowhere. 0; -EINVAL (from is not a caller's
 * from, NU_NONE reply); -ENOMEM. Callable from any thread. */
int nu_reply(nu_term from, nu_term reply);

/*
 * Stop a server (any behaviour) with reason: it runs its terminate and
 * exits with reason; waits until it has, up to timeout_ms (-1 forever).
 * 0; -ESRCH (not alive, or no such name); -ETIMEDOUT (it had not exited
 * in time: it still stops when it gets to the request); -EPIPE (it
 * exited with another reason, e.g. terminate crashed); -EINVAL, -EPERM,
 * -ENOMEM.
 */
int nu_gen_stop(nu_term server, nu_term reason, int64_t timeout_ms);

/*
 * A behaviour's status (sys:get_status): "<behaviour> <pid> <state>" with
 * the state as the callbacks' format_state prints it, into buf (at most
 * len bytes with the NUL). Returns the length of the whole text (as
 * snprintf), -ESRCH, -ETIMEDOUT, -EINVAL, -EPERM.
 */
int nu_gen_status(nu_term server, char *buf, size_t len, int64_t timeout_ms);

/* ------------------------------------------------------------ supervisor */

typedef enum nu_restart {
	NU_PERMANENT = 0, /* always restarted */
	NU_TRANSIENT = 1, /* restarted unless it exits normal, shutdown or
			   * {shutdown, _} */
	NU_TEMPORARY = 2, /* never restarted (and forgotten when it exits) */
} nu_restart;

typedef enum nu_child_type { NU_WORKER = 0, NU_SUPERVISOR = 1 } nu_child_type;

/* nu_child_spec.shutdown_ms besides a timeout in ms: */
#define NU_SHUTDOWN_INFINITY ((int64_t)-1)   /* wait as long as it takes */
#define NU_SHUTDOWN_BRUTAL_KILL ((int64_t)-2) /* kill at once */

/*
 * A child specification. start runs in the supervisor's process: it
 * starts the child linked to the caller (nu_gen_server_start_link,
 * nu_sup_start_link, nu_spawn_opt with link...) and returns its pid, 0 to
 * be ignored (the child is kept, not running), or -errno (the start
 * fails). extra is [] for a static child; for a simple_one_for_one child,
 * the term given to nu_sup_start_child. arg and start must stay valid
 * while the supervisor lives. A shutdown with a timeout sends the exit
 * signal shutdown and waits that long for the child to exit, then kills
 * it (a child that traps exits gets to run its terminate).
 */
typedef struct nu_child_spec {
	const char *id;     /* unique among the supervisor's children (an
			     * atom of that name is its id in the calls
			     * below); ignored for simple_one_for_one */
	nu_pid (*start)(void *arg, nu_term extra);
	void *arg;
	nu_restart restart;
	int64_t shutdown_ms; /* or NU_SHUTDOWN_INFINITY/_BRUTAL_KILL */
	nu_child_type type;
} nu_child_spec;

typedef enum nu_sup_strategy {
	NU_ONE_FOR_ONE = 0,        /* restart the child that exited */
	NU_ONE_FOR_ALL = 1,        /* stop all the others, restart all */
	NU_REST_FOR_ONE = 2,       /* stop those started after it, restart
				    * it and them */
	NU_SIMPLE_ONE_FOR_ONE = 3, /* one_for_one over many instances of
				    * one spec, started on demand */
} nu_sup_strategy;

typedef struct nu_sup_flags {
	nu_sup_strategy strategy;
	/* More than `intensity` restarts within `period_s` seconds: the
	 * supervisor stops all its children and exits with reason shutdown
	 * (its own supervisor then acts on it). OTP's defaults: 1 in 5. */
	int intensity;
	int period_s;
} nu_sup_flags;

/*
 * Start a supervisor linked to the caller: it traps exits, starts the n
 * children in order (a failing start stops those already started, in
 * reverse, and the start fails: -ESRCH with *opts->reason
 * {shutdown, {failed_to_start_child, Id, Why}}) and supervises them. For
 * simple_one_for_one, n must be 1: the template (started by
 * nu_sup_start_child). At shutdown (its parent's exit signal, or
 * nu_gen_stop) it stops its children in reverse start order, each as its
 * spec's shutdown says. The specs are copied. Returns the supervisor's
 * pid or the codes of nu_gen_server_start; -EINVAL also for bad flags
 * (intensity < 0 or above 100,000, period_s < 1), a spec with a NULL start or id, two
 * specs with one id, a bad restart, shutdown or type.
 */
nu_pid nu_sup_start_link(const nu_sup_flags *flags,
			 const nu_child_spec *children, size_t n,
			 const nu_gen_opts *opts);

/*
 * Add a child and start it: spec for the strategies with static children
 * (extra is ignored), or NULL and extra for simple_one_for_one (the
 * template's start gets extra). Returns its pid, 0 when its start asked to
 * be ignored, -EEXIST (the id is taken), -EINVAL (a bad spec; a spec for
 * simple_one_for_one or none for the others), -ESRCH (the start failed;
 * the spec is not kept), or nu_call's codes (the supervisor is gone).
 */
nu_pid nu_sup_start_child(nu_term sup, const nu_child_spec *spec,
			  nu_term extra);

/* Stop a child (an id atom; for simple_one_for_one its pid term), as its
 * shutdown says; its spec is kept (a simple_one_for_one or temporary
 * child's is removed). 0; -ENOENT (no such child); nu_call's codes. */
int nu_sup_terminate_child(nu_term sup, nu_term child);
/* Start again a child that was terminated. Its pid (0: ignored);
 * -ENOENT, -EBUSY (it is running), -ESRCH (its start failed), -EINVAL
 * (simple_one_for_one). */
nu_pid nu_sup_restart_child(nu_term sup, nu_term id);
/* Remove a terminated child's spec. 0; -ENOENT; -EBUSY (running);
 * -EINVAL (simple_one_for_one). */
int nu_sup_delete_child(nu_term sup, nu_term id);

/* One child as nu_sup_which_children reports it. */
typedef struct nu_child_info {
	nu_term id;      /* the id atom (undefined for simple_one_for_one) */
	nu_pid pid;      /* 0 when not running */
	nu_child_type type;
} nu_child_info;
/* The children in start order (out may be NULL with cap 0: count only):
 * up to cap of them into out; returns how many there are (more than cap
 * when out was too small), or nu_call's codes. */
int nu_sup_which_children(nu_term sup, nu_child_info *out, size_t cap);

typedef struct nu_sup_counts {
	int specs, active, supervisors, workers;
} nu_sup_counts;
/* OTP's count_children. 0 or nu_call's codes. */
int nu_sup_count_children(nu_term sup, nu_sup_counts *c);

/* -------------------------------------------------------------- gen_statem */

/* The kind of event a state callback gets. */
typedef enum nu_statem_event_type {
	NU_EV_CALL = 1,          /* content: the request; from: for nu_reply */
	NU_EV_CAST = 2,          /* content: the cast message */
	NU_EV_INFO = 3,          /* content: any other message */
	NU_EV_STATE_TIMEOUT = 4, /* content: the timeout's message */
	NU_EV_EVENT_TIMEOUT = 5, /* content: the timeout's message */
	NU_EV_GENERIC_TIMEOUT = 6, /* name: its name; content: its message */
	NU_EV_ENTER = 7,         /* state enter call; content: the old state */
} nu_statem_event_type;

typedef struct nu_statem_event {
	nu_statem_event_type type;
	nu_term content;
	nu_term from;  /* NU_EV_CALL only, else NU_NONE */
	nu_term name;  /* NU_EV_GENERIC_TIMEOUT only, else NU_NONE */
} nu_statem_event;

/* nu_statem_ret timeouts: besides a time in ms (0 = as soon as the events
 * already queued are handled): */
#define NU_STATEM_KEEP ((int64_t)-1)   /* leave it as it is (the default) */
#define NU_STATEM_CANCEL ((int64_t)-2) /* cancel it */

/* A state callback's results. Return NU_GEN_OK (go on; a state change
 * when next_state is set and differs from the current state) or
 * NU_GEN_STOP (reason). The loop fills in the defaults before each
 * callback (next_state, reason, timeout messages NU_NONE; timeouts
 * NU_STATEM_KEEP; postpone and keep 0). */
typedef struct nu_statem_ret {
	nu_term next_state;
	nu_term reason;
	/* Postpone this event: it is handled again after the next state
	 * change (not for enter calls or timeouts). */
	int postpone;
	/* The state timeout: cancelled by a state change; the event
	 * timeout: cancelled by any event. Messages: NU_NONE means the
	 * atom timeout. */
	int64_t state_timeout_ms;
	nu_term state_timeout_msg;
	int64_t event_timeout_ms;
	nu_term event_timeout_msg;
	int keep;     /* as in nu_gen_ret */
	void *_loop;  /* private to the library */
} nu_statem_ret;

typedef int (*nu_statem_fn)(const nu_statem_event *ev, nu_term state,
			    void **data, nu_statem_ret *ret);

/* One state of a per-state machine (OTP's state_functions). */
typedef struct nu_statem_state {
	const char *name; /* the state is the atom of this name */
	nu_statem_fn fn;
} nu_statem_state;

/*
 * A gen_statem's callbacks: either handle_event (one function for all
 * states, OTP's handle_event_function; states may be any terms) or the
 * states table (a function per state; an event in a state not in it ends
 * the machine with reason {bad_state, State}). With state_enter, each
 * state change (and the initial state) first gets an NU_EV_ENTER call,
 * which may not change the state or postpone. Must stay valid while a
 * machine using it runs.
 */
typedef struct nu_statem_cbs {
	/* Returns NU_GEN_OK with *state and *data set (ret's timeouts
	 * apply), NU_GEN_STOP or NU_GEN_IGNORE. */
	int (*init)(nu_term arg, nu_term *state, void **data,
		    nu_statem_ret *ret);
	nu_statem_fn handle_event;
	const nu_statem_state *states;
	size_t nstates;
	int state_enter;
	void (*terminate)(nu_term reason, nu_term state, void *data);
	int (*format_state)(nu_term state, void *data, char *buf, size_t len);
} nu_statem_cbs;

/* Start a gen_statem (as nu_gen_server_start: same options and codes;
 * -EINVAL also when cbs has both or neither of handle_event and states). */
nu_pid nu_statem_start(const nu_statem_cbs *cbs, nu_term arg,
		       const nu_gen_opts *opts);
nu_pid nu_statem_start_link(const nu_statem_cbs *cbs, nu_term arg,
			    const nu_gen_opts *opts);

/* Inside a state callback: start (ms >= 0), restart or cancel
 * (NU_STATEM_CANCEL) the generic timeout `name` (any term); when it fires
 * the machine gets NU_EV_GENERIC_TIMEOUT with msg. Generic timeouts
 * survive state changes. 0; -EINVAL (ret not the callback's, NU_NONE
 * name, a bad ms); -ENOMEM. (A machine keeps one entry, '$nu_statem', in
 * its process dictionary to check ret: leave it alone.) */
int nu_statem_generic_timeout(nu_statem_ret *ret, nu_term name, int64_t ms,
			      nu_term msg);

/* ------------------------------------------------ parallel patterns */

/* A worker function of nu_pmap: runs in a worker process; its result is
 * copied back to the caller. Returning NU_NONE (or exiting) crashes the
 * worker. */
typedef nu_term (*nu_map_fn)(nu_term item, void *arg);

/*
 * Erlangen's parallel map: split the proper list `items` into chunks of
 * `chunk` items (0: one chunk per scheduler), spawn one monitored worker
 * process per chunk, send it its chunk (a copy), and gather the results
 * into *out, a list in input order (in the caller's heap). A worker that
 * crashes ends the whole map with its reason: the other workers are
 * killed and waited for, and nu_pmap returns -ESRCH with *reason (may be
 * NULL) set; call nu_exit(*reason) to pass it on as Erlang's pmap would.
 * 0; -EINVAL (NULL fn or out, items not a proper list); -EPERM; -ENOMEM,
 * -EAGAIN (no worker could be spawned).
 */
int nu_pmap(nu_map_fn fn, void *arg, nu_term items, size_t chunk,
	    nu_term *out, nu_term *reason);

/* A contender of nu_race: runs in its own process. */
typedef nu_term (*nu_race_fn)(void *arg);

/*
 * The farmer's first-wins: run fns[i](args[i]) (args may be NULL) for i <
 * n, each in its own process; the first to return a term wins: *result
 * gets it (in the caller's heap), *winner (may be NULL) its index. Every
 * other contender is killed, and nu_race returns only once all of them
 * have exited. A contender that crashes is out; if all crash, -ESRCH with
 * *result the last crash's reason. -ETIMEDOUT after timeout_ms (-1:
 * none; all are killed); -EINVAL (n 0, a NULL fn or result); -EPERM;
 * -ENOMEM, -EAGAIN.
 */
int nu_race(const nu_race_fn *fns, void *const *args, size_t n,
	    int64_t timeout_ms, nu_term *result, size_t *winner);

/* ------------------------------------------------------------------ I/O
 *
 * Blocking-style calls. Inside a process each is one io_uring submission:
 * the process parks and its scheduler runs others until the completion
 * arrives. Outside a process they are the plain system call, on the
 * caller's thread. Where io_uring is refused (the node said so at
 * start-up) a process's call runs on the blocking pool instead. Results
 * are the system call's: a count, a descriptor or 0, or -errno; errno is
 * never touched. An O_NONBLOCK descriptor is not special here: these calls
 * always wait (the libc hooks honour O_NONBLOCK; see the README).
 *
 * Each has an _until variant taking an absolute deadline in
 * nu_clock_ns() time: past it the call gives -ETIMEDOUT (the op is
 * cancelled; a linked timeout on the ring). Outside a process, and in the
 * fallback, the deadline bounds the wait for readiness (poll), and calls
 * without one (fsync, openat, statx, shutdown, close) ignore it.
 *
 * A process killed (or hit by an exit signal) while it waits has its op
 * cancelled and exits once the op has completed; a descriptor the op
 * made meanwhile is closed. An exit signal that does not end it (trapped,
 * or reason normal) leaves the call waiting. Buffers in the process's own
 * memory are made resident first (see nu_mem_populate).
 *
 * The socket send and receive calls are nu_sock_send and nu_recv: nu_send
 * is the message send. nu_sock_send, nu_sendmsg never raise SIGPIPE (they
 * add MSG_NOSIGNAL and return -EPIPE).
 */
struct iovec;
struct msghdr;
struct sockaddr;
struct statx;

/* CLOCK_MONOTONIC now, in ns: the clock of the _until deadlines. */
uint64_t nu_clock_ns(void);

ssize_t nu_read(int fd, void *buf, size_t n);
ssize_t nu_write(int fd, const void *buf, size_t n);
/* Positional: -EINVAL for a negative offset. */
ssize_t nu_pread(int fd, void *buf, size_t n, off_t off);
ssize_t nu_pwrite(int fd, const void *buf, size_t n, off_t off);
/* -EINVAL for cnt < 0 or above IOV_MAX. */
ssize_t nu_readv(int fd, const struct iovec *iov, int cnt);
ssize_t nu_writev(int fd, const struct iovec *iov, int cnt);
ssize_t nu_recv(int fd, void *buf, size_t n, int flags);
ssize_t nu_sock_send(int fd, const void *buf, size_t n, int flags);
ssize_t nu_recvmsg(int fd, struct msghdr *msg, int flags);
ssize_t nu_sendmsg(int fd, const struct msghdr *msg, int flags);
/* accept4(): the new descriptor. -EINVAL for addr without len. */
int nu_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int nu_connect(int fd, const struct sockaddr *addr, socklen_t len);
/* socket() never waits: always the plain call. */
int nu_socket(int domain, int type, int protocol);
int nu_shutdown(int fd, int how);
/* Cancels the ops in flight on fd, in every process (they complete with
 * -ECANCELED, or their result if they finished first), waits for them,
 * then closes it. -EBADF for fd < 0. */
int nu_close(int fd);
/* -EFAULT for a NULL path (or out). */
int nu_openat(int dirfd, const char *path, int flags, mode_t mode);
int nu_statx(int dirfd, const char *path, int flags, unsigned mask,
	     struct statx *out);
int nu_fsync(int fd);
/* Wait until fd has one of events (POLLIN, ...): the revents, or -errno
 * (-EBADF for fd < 0). */
int nu_poll(int fd, short events);

ssize_t nu_read_until(int fd, void *buf, size_t n, uint64_t deadline);
ssize_t nu_write_until(int fd, const void *buf, size_t n, uint64_t deadline);
ssize_t nu_pread_until(int fd, void *buf, size_t n, off_t off,
		       uint64_t deadline);
ssize_t nu_pwrite_until(int fd, const void *buf, size_t n, off_t off,
			uint64_t deadline);
ssize_t nu_readv_until(int fd, const struct iovec *iov, int cnt,
		       uint64_t deadline);
ssize_t nu_writev_until(int fd, const struct iovec *iov, int cnt,
			uint64_t deadline);
ssize_t nu_recv_until(int fd, void *buf, size_t n, int flags,
		      uint64_t deadline);
ssize_t nu_sock_send_until(int fd, const void *buf, size_t n, int flags,
			   uint64_t deadline);
ssize_t nu_recvmsg_until(int fd, struct msghdr *msg, int flags,
			 uint64_t deadline);
ssize_t nu_sendmsg_until(int fd, const struct msghdr *msg, int flags,
			 uint64_t deadline);
int nu_accept_until(int fd, struct sockaddr *addr, socklen_t *len, int flags,
		    uint64_t deadline);
int nu_connect_until(int fd, const struct sockaddr *addr, socklen_t len,
		     uint64_t deadline);
int nu_poll_until(int fd, short events, uint64_t deadline);
int nu_shutdown_until(int fd, int how, uint64_t deadline);
int nu_openat_until(int dirfd, const char *path, int flags, mode_t mode,
		    uint64_t deadline);
int nu_statx_until(int dirfd, const char *path, int flags, unsigned mask,
		   struct statx *out, uint64_t deadline);
int nu_fsync_until(int fd, uint64_t deadline);
/* nu_socket never waits; nu_close waits only for the ops it cancels:
 * neither has a deadline. */

/* Run fn(arg), which may block (getaddrinfo, a library with no hookable
 * call), on the blocking pool while the calling process parks; outside a
 * process, call it on the caller's thread. 0 once fn has returned, with
 * its value in *result (when result is not NULL); -EINVAL for a NULL fn;
 * -EAGAIN when no pool thread could be started (fn did not run). fn runs
 * on another thread: it must not call the nu_ process API. It cannot be
 * interrupted: a process killed meanwhile exits when fn returns. The pool
 * has NUPROC_BLOCKING_THREADS threads at most (default 8). */
int nu_blocking(void *(*fn)(void *arg), void *arg, void **result);

#ifdef __cplusplus
}
#endif
#endif /* NUPROC_H */
