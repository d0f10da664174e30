/* error.c — naming the negative errno codes the API returns.
 *
 * The runtime never sets errno; every fallible call returns -code. This
 * file gives each code nuproc uses a sentence about what it means *here*
 * (libc's strerror says "Resource temporarily unavailable" for EAGAIN; a
 * nuproc user wants to know the process table is full), and falls back to
 * strerror_r's text for anything else. The texts are static.
 */
#include <errno.h>
#include <string.h>

#include "nuproc.h"

struct nu__errtext {
	int code;
	const char *text;
};

static const struct nu__errtext texts[] = {
	{ 0, "success" },
	{ EINVAL, "invalid argument" },
	{ EAGAIN, "no room: the process table or a bounded queue is full" },
	{ EPERM, "not called from a nuproc process" },
	{ EBUSY, "a node is already running in this OS process" },
	{ ESRCH, "no node is running" },
	{ ENOMEM, "out of memory (reservation, table or heap window)" },
	{ ETIMEDOUT, "timed out" },
	{ EOPNOTSUPP, "not supported by this kernel" },
	{ ESHUTDOWN, "the node is stopping" },
};

const char *nu_strerror(int code)
{
	if (code < 0)
		code = -code;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (texts[i].code == code)
			return texts[i].text;
	/* glibc's strerror returns static text for known codes and a
	 * thread-local buffer only for unknown ones. */
	return strerror(code);
}
