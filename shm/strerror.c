/*
 * strerror.c - names of the error values the library returns.
 *
 * The errors of sesh.h get wording that says what they mean here (-ENOENT
 * is "no such session or domain", not "no such file"); anything else falls
 * back to the C library's description. Only static strings are returned,
 * so this is thread-safe and async-signal-safe.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "sesh.h"

const char *sesh_strerror(int err)
{
	const char *s;

	if (err < 0)
		err = -err;
	switch (err) {
	case 0:
		return "success";
	case EINVAL:
		return "invalid argument";
	case ENOENT:
		return "no such domain or session";
	case EEXIST:
		return "already exists";
	case E2BIG:
		return "message or metadata larger than the domain's limit";
	case ENOSPC:
		return "no space left: table, quota, registry or segment full";
	case EAGAIN:
		return "try again: nothing to read yet, or busy";
	case ETIMEDOUT:
		return "timed out, or held up past the unblock timeout";
	case EBUSY:
		return "busy: another reaper pass is running";
	case EOVERFLOW:
		return "messages were overwritten before they were read";
	case EPROTO:
		return "not a sesh domain, or another layout version";
	case EUCLEAN:
		return "the shared-memory segment is corrupt";
	case EACCES:
		return "permission denied";
	case ENOMEM:
		return "out of memory";
	case EIO:
		return "input/output error: an unexpected system error, or "
		       "the database did not commit the change";
	}
	s = strerrordesc_np(err);
	return s != NULL ? s : "unknown error";
}
