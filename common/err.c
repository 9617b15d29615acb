#include "err.h"

const char *
ac_strerror(enum ac_err err)
{
	switch (err) {
	case AC_OK:
		return "success";
	case AC_ENOMEM:
		return "out of memory";
	case AC_EINVAL:
		return "invalid input";
	case AC_ETOOBIG:
		return "too large";
	case AC_ENOTFOUND:
		return "not found";
	case AC_ECONFLICT:
		return "already exists";
	case AC_EBUSY:
		return "database busy";
	case AC_EDB:
		return "database error";
	case AC_EIO:
		return "input/output error";
	case AC_ESYS:
		return "system error";
	}
	return "unknown error";
}
