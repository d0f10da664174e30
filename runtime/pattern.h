/* pattern.h — private to nuproc: compiled receive patterns (see pattern.c).
 *
 * The public API (nu_pattern_compile/free/nvars/var/match) is declared in
 * nuproc.h under "patterns"; this header adds what the receive machinery
 * needs and nothing else.
 */
#ifndef NU_PATTERN_H
#define NU_PATTERN_H

#include "nuproc.h"

/* Nesting of sub-patterns that still have siblings to match (the
 * matcher's explicit stack) a pattern may need; deeper patterns are
 * rejected by nu_pattern_compile() (-EINVAL). Trailing positions (the
 * last element of a tuple, a list tail) do not count, so long lists and
 * right-nested tuples cost nothing. */
#define NU__PATTERN_MAX_FRAMES 48
/* Bracket nesting the compiler accepts (it recurses once per level). */
#define NU__PATTERN_MAX_DEPTH 256

/*
 * BEAM's reference trick: when a pattern can only match a message that
 * holds a given reference at a fixed position, receive may skip every
 * message queued before that reference was made.
 * Returns the index of a pre-bound variable (pre[i] != NU_NONE) whose
 * value is a reference (nu_term_type() == NU_T_REF) — the lowest such
 * index — or -1 when there is none (also for a NULL p or pre). Every
 * position in this pattern language is fixed (no alternatives, guards or
 * list appends) and every named variable occurs in the pattern, so each
 * such variable qualifies. Read-only; thread-safe.
 */
int nu__pattern_fixed_ref(const nu_pattern *p, const nu_term *pre);

/*
 * A quick test a receive runs on each queued message before the full
 * match: when hdr is not 0 the subject must be a tuple whose header word
 * is hdr (kind and arity), and when first is not 0 its first element must
 * be that immediate. Both 0: no quick test. A subject that fails it does
 * not match; one that passes still needs nu_pattern_match(), unless
 * `exact`: the pattern is that tuple with `_` everywhere else (no
 * variable, nothing more to test), as {'DOWN', _, _, _, _} or {msg, _}.
 */
typedef struct nu__pattern_sig {
	uint64_t hdr;
	nu_term first;
	int exact;
} nu__pattern_sig;

/* The start of every compiled pattern (pattern.c's struct nu_pattern
 * opens with it), so that a receive reads the quick test and the count
 * of variables inline, with no call per clause. */
typedef struct nu__pattern_head {
	nu__pattern_sig sig;
	uint32_t nvars;
} nu__pattern_head;

static inline const nu__pattern_head *nu__pattern_head_of(const nu_pattern *p)
{
	return (const nu__pattern_head *)(const void *)p;
}

#endif /* NU_PATTERN_H */
