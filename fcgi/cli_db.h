/* ai-chat-fcgi db ...: database commands run from the shell (fcgi/cli_db.c). */
#ifndef AC_CLI_DB_H
#define AC_CLI_DB_H

#include "../common/config.h"

/* argv[0] is "db".  Returns the process's exit status. */
int ac_cli_db(const struct ac_config *cfg, int argc, char **argv);

/* cli_backup.c: db backup PATH [--force], db check [URL]; -1 when argv is neither. */
int ac_cli_db_ops(const struct ac_config *cfg, int argc, char **argv);

#endif
