/* The PostgreSQL engine: not built yet. */
#include <stdio.h>
#include <stdlib.h>

#include "db_engine.h"

struct pg {
	struct ac_db base;
};

static enum ac_err
pg_open(const struct ac_db_conf *conf, struct ac_db **out)
{
	struct pg *p = calloc(1, sizeof(*p));

	(void)conf;
	*out = NULL;
	if (p == NULL)
		return AC_ENOMEM;
	p->base.ops = &ac_db_pg_ops;
	*out = &p->base;
	return AC_EDB;
}

static void
pg_close(struct ac_db *d)
{
	free(d);
}

static const char *
pg_errmsg(const struct ac_db *d)
{
	(void)d;
	return "PostgreSQL is not supported by this build";
}

const struct ac_db_ops ac_db_pg_ops = {
	.kind = AC_DB_PG,
	.open = pg_open,
	.close = pg_close,
	.errmsg = pg_errmsg,
};
