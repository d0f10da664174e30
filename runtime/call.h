/* call.h — private to nuproc: the watch a caller keeps on its server
 * during a call (gen.c's nu_call), and the server's open calls. See
 * call.c for the design.
 */
#ifndef NU_CALL_H
#define NU_CALL_H

#include <stdint.h>

#include "nuproc.h"

struct nu__proc;
struct nu__call_hdr;

/* A call taken from a mailbox and not answered yet (server side). */
typedef struct nu__open_call {
	nu_pid caller;
	uint64_t id;              /* the call's reference id */
} nu__open_call;

/* Caller, in process me: start a call to server. 0 with *id a fresh
 * reference id (marked for the receive, the mailbox's alias, the watch
 * set); 1 when server is not alive (noproc); -EINVAL for a bad pid. */
int nu__call_begin(struct nu__proc *me, nu_pid server, uint64_t *id);

/* Caller: send the call message (hdr->id from nu__call_begin) and check
 * the server did not exit under it. 0: sent, an answer (reply or call
 * DOWN) will come; 1: the server is gone and nobody will answer (noproc);
 * nu_send's negative codes. */
int nu__call_send(struct nu__proc *me, nu_pid server,
		  const struct nu__call_hdr *hdr, nu_term req);

/* Caller: the call tagged id is over (answered, timed out or failed):
 * no later reply or call DOWN for it reaches the mailbox. */
void nu__call_end(struct nu__proc *me, uint64_t id);

/* Server p took a call message of caller tagged id from its mailbox. */
void nu__call_taken(struct nu__proc *p, nu_pid caller, uint64_t id);

/* Process p (or NULL: outside a process) answers caller's call tagged
 * id: it is no longer open in p. */
void nu__call_replied(struct nu__proc *p, nu_pid caller, uint64_t id);

/* The exiting process p (process context, p->reason set, `exiting` set)
 * sends a call DOWN with its reason to every caller still waiting on it:
 * calls in its mailbox and calls it took and did not answer. */
void nu__call_exit(struct nu__proc *p);

#endif
