/* httpd.h: the embedded HTTP server (libmicrohttpd) every daemon runs:
 * /metrics, /healthz, /readyz, plus routes a subcommand adds (ingest). */
#ifndef NS_HTTPD_H
#define NS_HTTPD_H

#include <stddef.h>

#include "ns/err.h"

typedef struct ns_httpd ns_httpd_t;

typedef struct ns_httpd_request {
    const char *method;
    const char *path;
    const char *body; /**< NUL-terminated; bounded by max_body */
    size_t body_len;
    /** Looks up a request header (case-insensitive); NULL if absent. */
    const char *(*header)(const struct ns_httpd_request *req, const char *name);
    /** Looks up a query-string argument (?job=x, percent-decoded); NULL if
     *  absent. */
    const char *(*query)(const struct ns_httpd_request *req, const char *name);
    void *impl;
} ns_httpd_request_t;

/** A route handler: fills status, content type and a malloc'd body. */
typedef void (*ns_httpd_route_fn)(void *arg, const ns_httpd_request_t *req,
                                  int *status, const char **content_type,
                                  char **body);

/** Readiness probe: returns 1 when the daemon is ready for traffic. */
typedef int (*ns_httpd_ready_fn)(void *arg);

/** @brief Starts a server on bind_addr:port (port 0 = ephemeral) with
 *  /metrics (ns_metrics_render), /healthz (always 200 while the process
 *  runs) and /readyz (ready(arg) ? 200 : 503).
 *  @returns NULL with err set on failure. */
ns_httpd_t *ns_httpd_new(const char *bind_addr, int port,
                         ns_httpd_ready_fn ready, void *ready_arg,
                         ns_error_t *err);
/** @brief Adds a route (method NULL = any). A path ending in an asterisk
 *  matches every path that starts with the rest of it (e.g. the runs/
 *  prefix of a run's detail); others match exactly, and an exact route
 *  wins over a prefix. Call before traffic arrives. max_body bounds the
 *  request body (413 past it). */
ns_err_t ns_httpd_route(ns_httpd_t *h, const char *method, const char *path,
                        size_t max_body, ns_httpd_route_fn fn, void *arg);
/** @brief Adds a header to every response of h (security headers such as
 *  Content-Security-Policy). Call before traffic arrives. */
ns_err_t ns_httpd_header(ns_httpd_t *h, const char *name, const char *value);
/** @brief The port actually bound. */
int ns_httpd_port(const ns_httpd_t *h);
void ns_httpd_destroy(ns_httpd_t *h);

#endif
