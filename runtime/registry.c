/* registry.c — registered names: a process known by an atom.
 *
 * Entities
 *   name table  one word per possible atom (the atom table's size, a
 *               NORESERVE mapping touched only where names are used):
 *               names[atom index] = the pid registered under that atom, or
 *               0. Lookups are one atomic load; register and unregister are
 *               one CAS each, so no lock is taken anywhere.
 *   reg_name    in each process's control block: the atom it is registered
 *               under, or 0. A process has at most one name (as in Erlang).
 *               Claimed by CAS before the table entry, so two registrations
 *               of one process cannot both win.
 *
 * A name is released when its process exits (nu__registry_exit from the
 * reaper, after the pid is dead, so a lookup in between returns a dead pid:
 * sending to it is then the usual silent no-op, as in Erlang where
 * whereis/1 may return a pid that dies right after).
 *
 * Rejected: a hash table under a lock (a lock on every send to a name); a
 * per-process table of names (lookups would scan).
 */
#include <errno.h>
#include <sys/mman.h>

#include "node.h"
#include "proc.h"
#include "sched.h"
#include "term.h"

int nu__registry_init(nu__node *n)
{
	size_t len = (size_t)NU__ATOM_MAX * sizeof(nu_pid);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	n->names = p;
	return 0;
}

void nu__registry_fini(nu__node *n)
{
	if (n->names)
		munmap((void *)n->names, (size_t)NU__ATOM_MAX * sizeof(nu_pid));
	n->names = NULL;
}

/* The table slot of a name, or NULL for a bad name. */
static _Atomic nu_pid *slot_of(nu__node *n, nu_term name)
{
	if (!nu_is_atom(name) || name == NU_ATOM_UNDEFINED)
		return NULL;
	uint64_t i = name >> NU__TAG_BITS;
	if (i >= NU__ATOM_MAX || !nu_atom_name(name))
		return NULL;
	return &n->names[i];
}

/* The running node and name's slot: 0, -ESRCH (no node), -EINVAL. */
static int lookup(nu_term name, nu__node **np, _Atomic nu_pid **slotp)
{
	nu__node *n = nu__node_get();
	if (!n)
		return -ESRCH;
	*np = n;
	*slotp = slot_of(n, name);
	return *slotp ? 0 : -EINVAL;
}

int nu_register(nu_term name, nu_pid pid)
{
	nu__node *n;
	_Atomic nu_pid *slot;
	int rc = lookup(name, &n, &slot);
	if (rc)
		return rc;
	int alive = nu_is_alive(pid);
	if (alive < 0)
		return alive;
	if (!alive)
		return -ESRCH;
	nu__proc *p = nu__slot_proc(&n->mem, nu__pid_index(pid));
	nu_term none = 0;
	if (!atomic_compare_exchange_strong(&p->reg_name, &none, name))
		return -EEXIST; /* the process already has a name */
	nu_pid free_slot = 0;
	if (!atomic_compare_exchange_strong(slot, &free_slot, pid)) {
		atomic_store(&p->reg_name, 0);
		return -EEXIST; /* the name is taken */
	}
	/* The process may have exited between the liveness check and the
	 * claim: then its reaper may have missed the name; release it. */
	if (nu_is_alive(pid) != 1) {
		nu_pid exp = pid;
		atomic_compare_exchange_strong(slot, &exp, 0);
		return -ESRCH;
	}
	return 0;
}

int nu_unregister(nu_term name)
{
	nu__node *n;
	_Atomic nu_pid *slot;
	int rc = lookup(name, &n, &slot);
	if (rc)
		return rc;
	nu_pid pid = atomic_exchange(slot, 0);
	if (!pid)
		return -ENOENT;
	if (nu_is_alive(pid) == 1) {
		nu__proc *p = nu__slot_proc(&n->mem, nu__pid_index(pid));
		nu_term exp = name;
		atomic_compare_exchange_strong(&p->reg_name, &exp, 0);
	}
	return 0;
}

nu_pid nu_whereis(nu_term name)
{
	nu__node *n;
	_Atomic nu_pid *slot;
	int rc = lookup(name, &n, &slot);
	if (rc)
		return rc;
	nu_pid pid = atomic_load(slot);
	return pid && nu_is_alive(pid) == 1 ? pid : -ENOENT;
}

int nu_send_name(nu_term name, nu_term msg)
{
	nu_pid pid = nu_whereis(name);
	return pid < 0 ? (int)pid : nu_send(pid, msg);
}

void nu__registry_exit(nu__proc *p)
{
	/* Most processes have no name: skip the locked exchange. A racing
	 * nu_register re-checks liveness after its claim and undoes it. */
	if (!atomic_load_explicit(&p->reg_name, memory_order_relaxed))
		return;
	nu_term name = atomic_exchange(&p->reg_name, 0);
	nu__node *n = nu__node_get();
	_Atomic nu_pid *slot = name ? slot_of(n, name) : NULL;
	if (slot) {
		nu_pid exp = p->pid;
		atomic_compare_exchange_strong(slot, &exp, 0);
	}
}
