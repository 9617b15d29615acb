/* Retention (RETENTION_DAYS): the worker's periodic deletion of old chats (fcgi/retention.c). */
#ifndef AC_RETENTION_H
#define AC_RETENTION_H

#include "../common/config.h"

/* Starts the process's retention thread when RETENTION_DAYS is set; its first run is one
 * RETENTION_INTERVAL_S from now. */
void ac_retention_start(const struct ac_config *cfg);
/* Stops it (a run under way ends after its batch). */
void ac_retention_stop(void);

#endif
