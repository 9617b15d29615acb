/* The schema scripts of sql/, compiled in by the Makefile (build/migrations.c), in order. */
#ifndef AC_MIGRATIONS_H
#define AC_MIGRATIONS_H

#include <stddef.h>

struct ac_migration {
	int version;		/* the NNN of sql/NNN_name.sql */
	const char *name;
	const char *sql;
};

extern const struct ac_migration ac_migrations[];
extern const size_t ac_migrations_count;

#endif
