/* term.c — Erlang terms (this release: the immediates exit reasons need).
 *
 * A term is one 64-bit word whose low three bits are its tag (nuproc.h):
 * small integers and atoms are immediate. Atoms are indices into a
 * node-wide table; the first entries are the atoms every node knows, in
 * the order of the NU_ATOM_* constants. The rest of the data model (boxed
 * integers, floats, binaries, tuples, lists, maps, pids, references) keeps
 * this encoding: tag 0 for boxed pointers, 1 for list cells.
 */
#include "nuproc.h"

static const char *const builtin_atoms[] = {
	"normal", "kill", "killed", "shutdown", "noproc", "true", "false",
	"undefined",
};

const char *nu_atom_name(nu_term t)
{
	if (!nu_is_atom(t))
		return 0;
	nu_term i = t >> NU__TAG_BITS;
	if (i >= sizeof(builtin_atoms) / sizeof(builtin_atoms[0]))
		return 0;
	return builtin_atoms[i];
}
