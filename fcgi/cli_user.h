/* ai-chat-fcgi user ...: accounts made and changed on the host (fcgi/cli_user.c). */
#ifndef AC_CLI_USER_H
#define AC_CLI_USER_H

#include "../common/config.h"

/* argv[0] is "user".  Returns the process's exit status. */
int ac_cli_user(const struct ac_config *cfg, int argc, char **argv);

#endif
