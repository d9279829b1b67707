/* ui.h: `nightshift ui`, the status web page: jobs with their schedule,
 * zone and next fire time; runs with live progress; failed items and
 * their reasons; dead letters, with a replay action only when a token is
 * configured. Everything the page shows comes from its JSON API under
 * /api/v1 (described by /api/v1/openapi.json), which scripts may use too.
 * Served by libmicrohttpd (ns/httpd.h) beside /metrics and /healthz. */
#ifndef NS_UI_H
#define NS_UI_H

#include <signal.h>
#include <stdio.h>

#include "ns/config.h"
#include "ns/err.h"

typedef struct ns_ui ns_ui_t;

/** @brief Starts the page on bind:port (NULL / -1: cfg->ui's; port 0 =
 *  ephemeral). version is shown in the page and /api/v1. cfg must outlive
 *  the handle. @returns NULL with err on failure. */
ns_ui_t *ns_ui_new(const ns_config_t *cfg, const char *bind, int port,
                   const char *version, ns_error_t *err);
/** @brief The port actually bound. */
int ns_ui_port(const ns_ui_t *ui);
/** @brief Stops serving; requests in flight get their answer first. */
void ns_ui_destroy(ns_ui_t *ui);

/** @brief Serves until *running drops. @returns the exit status. */
int ns_ui_run(ns_ui_t *ui, volatile sig_atomic_t *running);

#endif
