/* httpd.c: the embedded HTTP server behind ns/httpd.h (libmicrohttpd).
 * Built-in routes are ordinary rows of the route table, so /metrics,
 * /healthz and /readyz go through the same dispatch as a subcommand's. */
#include "ns/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ns/buf.h"
#include "ns/log.h"
#include "ns/metrics.h"

/* Threads are per connection, so a slow route (ingest waits on Kafka)
 * never stalls a scrape; the limit and timeout bound what clients hold. */
#define CONNECTION_LIMIT 64
#define CONNECTION_TIMEOUT_S 30
#define MAX_ROUTES 64
#define MAX_HEADERS 16
#define TEXT_PLAIN "text/plain; charset=utf-8"
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct route {
    char *method; /* NULL = any */
    char *path;
    size_t max_body;
    ns_httpd_route_fn fn;
    void *arg;
} route_t;

struct ns_httpd {
    struct MHD_Daemon *daemon;
    int port;
    ns_httpd_ready_fn ready;
    void *ready_arg;
    pthread_mutex_t routes_lock;
    route_t routes[MAX_ROUTES];
    size_t nroutes;
    char *headers[MAX_HEADERS][2]; /* name, value: on every response */
    size_t nheaders;
};

/* Per-request state, from the first access callback to completion. */
typedef struct request_state {
    route_t route;
    ns_buf_t body;
    int too_large;
} request_state_t;

static void route_metrics(void *arg, const ns_httpd_request_t *req, int *status,
                          const char **content_type, char **body)
{
    (void)arg;
    (void)req;
    *body = ns_metrics_render();
    if (*body == NULL) {
        *status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        *body = strdup("metrics render failed\n");
        return;
    }
    *content_type = METRICS_CONTENT_TYPE;
}

static void route_healthz(void *arg, const ns_httpd_request_t *req, int *status,
                          const char **content_type, char **body)
{
    (void)arg;
    (void)req;
    (void)status;
    (void)content_type;
    *body = strdup("ok\n");
}

static void route_readyz(void *arg, const ns_httpd_request_t *req, int *status,
                         const char **content_type, char **body)
{
    (void)req;
    (void)content_type;
    const ns_httpd_t *h = arg;
    int ready = h->ready == NULL || h->ready(h->ready_arg);
    *status = ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
    *body = strdup(ready ? "ready\n" : "not ready\n");
}

static const char *request_header(const ns_httpd_request_t *req,
                                  const char *name)
{
    if (req == NULL || name == NULL)
        return NULL;
    /* MHD compares header names case-insensitively for MHD_HEADER_KIND. */
    return MHD_lookup_connection_value(req->impl, MHD_HEADER_KIND, name);
}

static const char *request_query(const ns_httpd_request_t *req,
                                 const char *name)
{
    if (req == NULL || name == NULL)
        return NULL;
    return MHD_lookup_connection_value(req->impl, MHD_GET_ARGUMENT_KIND, name);
}

static int method_matches(const char *route_method, const char *method)
{
    if (route_method == NULL || strcmp(route_method, method) == 0)
        return 1;
    /* MHD sends no body for HEAD, so a GET route answers it. */
    return strcmp(route_method, MHD_HTTP_METHOD_GET) == 0 &&
           strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}

/* Whether route path rp matches path: exactly, or as a prefix when rp ends
 * in '*' (prefix = 1 selects which kind is asked for). */
static int path_matches(const char *rp, const char *path, int prefix)
{
    size_t n = strlen(rp);
    if (!prefix)
        return (n == 0 || rp[n - 1] != '*') && strcmp(rp, path) == 0;
    return n > 0 && rp[n - 1] == '*' && strncmp(rp, path, n - 1) == 0;
}

/* One pass of route_find over exact or prefix routes. */
static int route_scan(ns_httpd_t *h, const char *path, const char *method,
                      int prefix, route_t *out, char *allow, size_t allowlen)
{
    int path_known = 0;
    size_t used = 0;
    allow[0] = '\0';
    for (size_t i = 0; i < h->nroutes; i++) {
        const route_t *r = &h->routes[i];
        if (!path_matches(r->path, path, prefix))
            continue;
        if (method_matches(r->method, method)) {
            *out = *r;
            return MHD_HTTP_OK;
        }
        path_known = 1;
        int n = snprintf(allow + used, allowlen - used, "%s%s",
                         used ? ", " : "", r->method);
        if (n > 0 && (size_t)n < allowlen - used)
            used += (size_t)n;
    }
    return path_known ? MHD_HTTP_METHOD_NOT_ALLOWED : MHD_HTTP_NOT_FOUND;
}

/* Finds the route for path and method, exact routes before prefix ones.
 * Returns 200 with *out filled, 404 (no such path) or 405 (path known,
 * method not) with the allowed methods in allow. */
static int route_find(ns_httpd_t *h, const char *path, const char *method,
                      route_t *out, char *allow, size_t allowlen)
{
    pthread_mutex_lock(&h->routes_lock);
    int status = route_scan(h, path, method, 0, out, allow, allowlen);
    if (status == MHD_HTTP_NOT_FOUND)
        status = route_scan(h, path, method, 1, out, allow, allowlen);
    pthread_mutex_unlock(&h->routes_lock);
    return status;
}

/* Queues a response that owns body (malloc'd, may be NULL = empty). */
static enum MHD_Result respond(const ns_httpd_t *h, struct MHD_Connection *conn,
                               int status, const char *content_type, char *body,
                               const char *allow)
{
    size_t len = body ? strlen(body) : 0;
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, body ? body : "",
        body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            content_type ? content_type : TEXT_PLAIN);
    if (allow != NULL)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    for (size_t i = 0; i < h->nheaders; i++)
        MHD_add_response_header(resp, h->headers[i][0], h->headers[i][1]);
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned int)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result respond_text(const ns_httpd_t *h,
                                    struct MHD_Connection *conn, int status,
                                    const char *text, const char *allow)
{
    return respond(h, conn, status, TEXT_PLAIN, strdup(text), allow);
}

/* Declared length over the limit: answer 413 before reading the body. */
static int declared_too_large(struct MHD_Connection *conn, size_t max_body)
{
    const char *cl = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl == NULL)
        return 0;
    errno = 0;
    char *end = NULL;
    unsigned long long n = strtoull(cl, &end, 10);
    return errno == ERANGE || (end != cl && n > max_body);
}

static enum MHD_Result on_first_call(ns_httpd_t *h, struct MHD_Connection *conn,
                                     const char *url, const char *method,
                                     void **con_cls)
{
    route_t route;
    char allow[256];
    int status = route_find(h, url, method, &route, allow, sizeof(allow));
    if (status == MHD_HTTP_NOT_FOUND)
        return respond_text(h, conn, status, "not found\n", NULL);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        return respond_text(h, conn, status, "method not allowed\n", allow);
    if (declared_too_large(conn, route.max_body))
        return respond_text(h, conn, MHD_HTTP_CONTENT_TOO_LARGE,
                            "request body too large\n", NULL);
    request_state_t *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return MHD_NO;
    st->route = route;
    ns_buf_init(&st->body, route.max_body);
    *con_cls = st;
    return MHD_YES;
}

static enum MHD_Result run_route(const ns_httpd_t *h,
                                 struct MHD_Connection *conn,
                                 request_state_t *st, const char *url,
                                 const char *method)
{
    ns_httpd_request_t req = {
        .method = method,
        .path = url,
        .body = st->body.data ? st->body.data : "",
        .body_len = st->body.len,
        .header = request_header,
        .query = request_query,
        .impl = conn,
    };
    int status = MHD_HTTP_OK;
    const char *content_type = NULL;
    char *body = NULL;
    st->route.fn(st->route.arg, &req, &status, &content_type, &body);
    if (status < 100 || status > 599) {
        NS_ERROR(NULL, "httpd: route %s returned status %d", st->route.path,
                 status);
        free(body);
        return respond_text(h, conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                            "internal error\n", NULL);
    }
    return respond(h, conn, status, content_type, body, NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    const ns_httpd_t *h = cls;
    request_state_t *st = *con_cls;
    if (st == NULL)
        return on_first_call(cls, conn, url, method, con_cls);
    if (*upload_data_size > 0) {
        /* No response may be queued while upload data is being handed
         * over: remember the overflow, discard the rest, answer at the
         * end. Memory stays bounded by max_body either way. */
        if (!st->too_large &&
            ns_buf_add(&st->body, upload_data, *upload_data_size) != NS_OK)
            st->too_large = 1;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (st->too_large)
        return respond_text(h, conn, MHD_HTTP_CONTENT_TOO_LARGE,
                            "request body too large\n", NULL);
    return run_route(h, conn, st, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    request_state_t *st = *con_cls;
    if (st == NULL)
        return;
    ns_buf_free(&st->body);
    free(st);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    NS_DEBUG(NULL, "httpd: %s", line);
}

static ns_err_t add_route(ns_httpd_t *h, const char *method, const char *path,
                          size_t max_body, ns_httpd_route_fn fn, void *arg)
{
    ns_err_t rc = NS_OK;
    pthread_mutex_lock(&h->routes_lock);
    for (size_t i = 0; i < h->nroutes && rc == NS_OK; i++) {
        const route_t *r = &h->routes[i];
        int same_method = (r->method == NULL && method == NULL) ||
                          (r->method && method && !strcmp(r->method, method));
        if (same_method && strcmp(r->path, path) == 0)
            rc = NS_ERR_INVALID;
    }
    if (rc == NS_OK && h->nroutes == MAX_ROUTES)
        rc = NS_ERR_INVALID;
    route_t *r = &h->routes[h->nroutes];
    if (rc == NS_OK) {
        r->method = method ? strdup(method) : NULL;
        r->path = strdup(path);
        if (r->path == NULL || (method != NULL && r->method == NULL)) {
            free(r->method);
            free(r->path);
            rc = NS_ERR_NOMEM;
        }
    }
    if (rc == NS_OK) {
        r->max_body = max_body;
        r->fn = fn;
        r->arg = arg;
        h->nroutes++;
    }
    pthread_mutex_unlock(&h->routes_lock);
    return rc;
}

ns_err_t ns_httpd_route(ns_httpd_t *h, const char *method, const char *path,
                        size_t max_body, ns_httpd_route_fn fn, void *arg)
{
    if (h == NULL || path == NULL || path[0] != '/' || fn == NULL)
        return NS_ERR_INVALID;
    return add_route(h, method, path, max_body, fn, arg);
}

ns_err_t ns_httpd_header(ns_httpd_t *h, const char *name, const char *value)
{
    if (h == NULL || name == NULL || value == NULL ||
        strpbrk(name, "\r\n:") != NULL || strpbrk(value, "\r\n") != NULL)
        return NS_ERR_INVALID;
    if (h->nheaders == MAX_HEADERS)
        return NS_ERR_INVALID;
    char *n = strdup(name), *v = strdup(value);
    if (n == NULL || v == NULL) {
        free(n);
        free(v);
        return NS_ERR_NOMEM;
    }
    h->headers[h->nheaders][0] = n;
    h->headers[h->nheaders][1] = v;
    h->nheaders++;
    return NS_OK;
}

/* The listening address; IPv6 literals ("::", "::1") work as well. */
typedef struct listen_addr {
    struct sockaddr_storage ss;
    int ipv6;
} listen_addr_t;

static int parse_bind_addr(const char *bind_addr, int port, listen_addr_t *la)
{
    memset(la, 0, sizeof(*la));
    const char *host = bind_addr && bind_addr[0] ? bind_addr : "0.0.0.0";
    struct sockaddr_in *in4 = (struct sockaddr_in *)&la->ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&la->ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        la->ipv6 = 1;
        return 0;
    }
    return -1;
}

static int add_builtin_routes(ns_httpd_t *h)
{
    return add_route(h, MHD_HTTP_METHOD_GET, "/metrics", 0, route_metrics,
                     NULL) != NS_OK ||
           add_route(h, MHD_HTTP_METHOD_GET, "/healthz", 0, route_healthz,
                     NULL) != NS_OK ||
           add_route(h, MHD_HTTP_METHOD_GET, "/readyz", 0, route_readyz, h) !=
               NS_OK;
}

static struct MHD_Daemon *start_daemon(ns_httpd_t *h, const listen_addr_t *la,
                                       int port)
{
    /* AUTO picks poll() over select(), so a descriptor past FD_SETSIZE
     * (a worker holds many Kafka/Postgres sockets) is still served. */
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD |
                         MHD_USE_THREAD_PER_CONNECTION | MHD_USE_AUTO;
    if (la->ipv6)
        flags |= MHD_USE_IPv6;
    if (ns_log_enabled(NS_LOG_DEBUG))
        flags |= MHD_USE_ERROR_LOG;
    /* MHD binds to SOCK_ADDR; port is only named in its messages. The
     * logger goes first, or earlier options' errors reach stderr. */
    return MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, h,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h, MHD_OPTION_SOCK_ADDR,
        &la->ss, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONNECTION_LIMIT,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECTION_TIMEOUT_S,
        MHD_OPTION_END);
}

ns_httpd_t *ns_httpd_new(const char *bind_addr, int port,
                         ns_httpd_ready_fn ready, void *ready_arg,
                         ns_error_t *err)
{
    listen_addr_t la;
    if (port < 0 || port > 65535) {
        ns_error_set(err, NS_ERR_INVALID, "httpd: invalid port %d", port);
        return NULL;
    }
    if (parse_bind_addr(bind_addr, port, &la) != 0) {
        ns_error_set(err, NS_ERR_INVALID,
                     "httpd: invalid bind address \"%s\" (want an IP "
                     "literal such as 127.0.0.1 or 0.0.0.0)",
                     bind_addr);
        return NULL;
    }
    ns_httpd_t *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        ns_error_set(err, NS_ERR_NOMEM, "httpd: out of memory");
        return NULL;
    }
    pthread_mutex_init(&h->routes_lock, NULL);
    h->ready = ready;
    h->ready_arg = ready_arg;
    if (add_builtin_routes(h) != 0) {
        ns_error_set(err, NS_ERR_NOMEM, "httpd: out of memory");
        ns_httpd_destroy(h);
        return NULL;
    }
    errno = 0;
    h->daemon = start_daemon(h, &la, port);
    if (h->daemon == NULL) {
        int saved = errno;
        ns_error_set(err, NS_ERR_IO, "httpd: cannot listen on %s:%d: %s",
                     bind_addr && bind_addr[0] ? bind_addr : "0.0.0.0", port,
                     saved ? strerror(saved) : "start failed");
        ns_httpd_destroy(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? (int)info->port : port;
    return h;
}

int ns_httpd_port(const ns_httpd_t *h)
{
    return h ? h->port : -1;
}

void ns_httpd_destroy(ns_httpd_t *h)
{
    if (h == NULL)
        return;
    /* Joins the server threads: no handler runs after this returns. */
    if (h->daemon != NULL)
        MHD_stop_daemon(h->daemon);
    for (size_t i = 0; i < h->nroutes; i++) {
        free(h->routes[i].method);
        free(h->routes[i].path);
    }
    for (size_t i = 0; i < h->nheaders; i++) {
        free(h->headers[i][0]);
        free(h->headers[i][1]);
    }
    pthread_mutex_destroy(&h->routes_lock);
    free(h);
}
