/* The one error convention: every fallible function returns an enum ac_err, AC_OK on success. */
#ifndef AC_ERR_H
#define AC_ERR_H

enum ac_err {
	AC_OK = 0,
	AC_ENOMEM,	/* out of memory */
	AC_EINVAL,	/* malformed input or setting */
	AC_ETOOBIG,	/* a limit was passed */
	AC_ENOTFOUND,	/* no such row, or not the caller's */
	AC_ECONFLICT,	/* a unique key already taken */
	AC_EBUSY,	/* the database stayed locked past the busy timeout */
	AC_EDB,		/* any other database failure (I/O, read-only, disk full, corrupt) */
	AC_EIO,		/* the peer went away or a read/write failed */
	AC_ESYS,	/* a system call failed */
};

/* A short English description of the error, for logs and details. */
const char *ac_strerror(enum ac_err err);

#endif
