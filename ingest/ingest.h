/* ingest.h: `nightshift ingest`, the Telegram webhook endpoint (see
 * ingest.c). */
#ifndef NS_INGEST_H
#define NS_INGEST_H

#include <signal.h>

#include "ns/config.h"
#include "ns/err.h"

typedef struct ns_ingest ns_ingest_t;

/** @brief Checks the settings (a secret token is required), connects the
 *  producer, makes sure the topic exists and starts listening. */
ns_ingest_t *ns_ingest_new(const ns_config_t *cfg, ns_error_t *err);
/** @brief The port listened on (ingest.port 0: an ephemeral one). */
int ns_ingest_port(const ns_ingest_t *in);
/** @brief Serves until *running drops; then answers what is in flight,
 *  flushes and returns 0. */
int ns_ingest_run(ns_ingest_t *in, volatile sig_atomic_t *running);
void ns_ingest_destroy(ns_ingest_t *in);

#endif
