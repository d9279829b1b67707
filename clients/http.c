#include "ns/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "ns/buf.h"
#include "ns/clock.h"

#define HTTP_DEFAULT_TIMEOUT_MS 30000L
#define HTTP_DEFAULT_MAX_RESPONSE ((size_t)8 << 20)

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t handle_key;

/* One easy handle per thread keeps connections (and TLS sessions) alive
 * between requests; the key's destructor frees it when the thread ends. */
static _Thread_local CURL *tl_curl;

static void global_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void ns_http_global_init(void)
{
    pthread_once(&global_once, global_init_once);
}

static void handle_destroy(void *handle)
{
    curl_easy_cleanup(handle);
}

/* A forked child must not touch the parent's connections (a TLS
 * close_notify would break them): it forgets the handle and makes its own. */
static void forget_handle_in_child(void)
{
    tl_curl = NULL;
    pthread_setspecific(handle_key, NULL);
}

static void key_init_once(void)
{
    pthread_key_create(&handle_key, handle_destroy);
    pthread_atfork(NULL, NULL, forget_handle_in_child);
}

static CURL *thread_handle(void)
{
    if (tl_curl != NULL) {
        curl_easy_reset(tl_curl);
        return tl_curl;
    }
    ns_http_global_init();
    pthread_once(&key_once, key_init_once);
    tl_curl = curl_easy_init();
    if (tl_curl != NULL)
        pthread_setspecific(handle_key, tl_curl);
    return tl_curl;
}

ns_err_t ns_http_classify(long status)
{
    if (status >= 200 && status < 300)
        return NS_OK;
    if (status == 408 || status == 425 || status == 429 || status >= 500)
        return NS_ERR_TRANSIENT;
    if (status >= 400)
        return NS_ERR_PERMANENT;
    /* 1xx/3xx are not followed here: the caller got something unexpected,
     * and a retry will get the same. */
    return NS_ERR_PERMANENT;
}

/* Writes "scheme://host[:port]/path" without user info, query or fragment,
 * and with a Telegram "/bot<token>" segment masked as "/bot***". */
static void safe_url(const char *url, char *out, size_t outlen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL;
    if (u == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        snprintf(out, outlen, "(invalid url)");
        curl_url_cleanup(u);
        return;
    }
    curl_url_get(u, CURLUPART_PORT, &port, 0);
    curl_url_get(u, CURLUPART_PATH, &path, 0);

    ns_buf_t b;
    ns_buf_init(&b, 4096);
    ns_buf_addf(&b, "%s://%s%s%s", scheme, host, port ? ":" : "",
                port ? port : "");
    const char *p = path ? path : "";
    while (*p != '\0') {
        size_t seg = strcspn(p + 1, "/") + 1; /* "/name" */
        if (seg > 4 && strncmp(p, "/bot", 4) == 0)
            ns_buf_adds(&b, "/bot***");
        else
            ns_buf_add(&b, p, seg);
        p += seg;
    }
    snprintf(out, outlen, "%s", b.data ? b.data : "(invalid url)");
    ns_buf_free(&b);
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
}

typedef struct http_call {
    ns_buf_t body;
    int too_large;
    double retry_after_s;
} http_call_t;

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    http_call_t *call = arg;
    size_t n = size * nmemb;
    if (ns_buf_add(&call->body, data, n) != NS_OK) {
        call->too_large = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    return n;
}

/* Retry-After is either delta-seconds or an HTTP-date. */
static double parse_retry_after(const char *value)
{
    while (*value == ' ' || *value == '\t')
        value++;
    if (*value >= '0' && *value <= '9') {
        char *end = NULL;
        long secs = strtol(value, &end, 10);
        if (*end != '\0' && *end != ' ' && *end != '\t')
            return -1;
        return (double)secs;
    }
    time_t when = curl_getdate(value, NULL);
    if (when < 0)
        return -1;
    double delta = difftime(when, time(NULL));
    return delta < 0 ? 0 : delta;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    http_call_t *call = arg;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    /* A status line starts a new response (after 100 Continue). */
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        call->retry_after_s = -1;
        return n;
    }
    if (n <= sizeof(name) - 1 || strncasecmp(data, name, sizeof(name) - 1))
        return n;
    char value[128];
    size_t vlen = n - (sizeof(name) - 1);
    if (vlen >= sizeof(value))
        return n;
    memcpy(value, data + sizeof(name) - 1, vlen);
    while (vlen > 0 && (value[vlen - 1] == '\r' || value[vlen - 1] == '\n' ||
                        value[vlen - 1] == ' '))
        vlen--;
    value[vlen] = '\0';
    call->retry_after_s = parse_retry_after(value);
    return n;
}

static int has_header(const char *const *headers, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        if (strncasecmp(headers[i], name, len) == 0 && headers[i][len] == ':')
            return 1;
    return 0;
}

static struct curl_slist *build_headers(const ns_http_req_t *req, int *ok)
{
    struct curl_slist *list = NULL, *next;
    *ok = 1;
    for (size_t i = 0; req->headers != NULL && req->headers[i] != NULL; i++) {
        next = curl_slist_append(list, req->headers[i]);
        if (next == NULL) {
            *ok = 0;
            return list;
        }
        list = next;
    }
    /* "Expect: 100-continue" costs a round trip on every large upload. */
    if (!has_header(req->headers, "Expect")) {
        next = curl_slist_append(list, "Expect:");
        if (next == NULL)
            *ok = 0;
        else
            list = next;
    }
    return list;
}

static curl_mime *build_mime(CURL *curl, const ns_http_req_t *req)
{
    curl_mime *mime = curl_mime_init(curl);
    if (mime == NULL)
        return NULL;
    for (size_t i = 0; i < req->n_parts; i++) {
        const ns_http_part_t *part = &req->parts[i];
        curl_mimepart *mp = curl_mime_addpart(mime);
        if (mp == NULL || curl_mime_name(mp, part->name) != CURLE_OK ||
            curl_mime_data(mp, part->data ? part->data : "", part->len) !=
                CURLE_OK ||
            (part->filename != NULL &&
             curl_mime_filename(mp, part->filename) != CURLE_OK) ||
            (part->mime_type != NULL &&
             curl_mime_type(mp, part->mime_type) != CURLE_OK)) {
            curl_mime_free(mime);
            return NULL;
        }
    }
    return mime;
}

static const char *request_method(const ns_http_req_t *req)
{
    if (req->method != NULL && req->method[0] != '\0')
        return req->method;
    return (req->body != NULL || req->n_parts > 0) ? "POST" : "GET";
}

static void set_method_and_body(CURL *curl, const ns_http_req_t *req,
                                const char *method, curl_mime *mime)
{
    if (mime != NULL) {
        curl_easy_setopt(curl, CURLOPT_MIMEPOST, mime);
    } else if (req->body != NULL || strcmp(method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(req->body ? req->body_len : 0));
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req->body ? req->body : "");
    }
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "GET") == 0 && mime == NULL && req->body == NULL)
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    else if (strcmp(method, "POST") != 0)
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
}

static ns_err_t transport_error(CURLcode rc, const char *method,
                                const char *url, const char *errbuf,
                                long timeout_ms, ns_error_t *err)
{
    char where[512];
    safe_url(url, where, sizeof(where));
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return ns_error_set(err, NS_ERR_TRANSIENT,
                            "%s %s: timeout after %ld ms", method, where,
                            timeout_ms);
    ns_err_t code = NS_ERR_TRANSIENT;
    if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL)
        code = NS_ERR_INVALID;
    else if (rc == CURLE_OUT_OF_MEMORY)
        code = NS_ERR_NOMEM;
    /* curl's detailed message names hosts and ports, never the path; use
     * it unless it quotes the URL anyway. */
    const char *detail = errbuf;
    if (detail[0] == '\0' || strstr(detail, url) != NULL ||
        strstr(detail, "/bot") != NULL)
        detail = curl_easy_strerror(rc);
    return ns_error_set(err, code, "%s %s: %s", method, where, detail);
}

static void resp_init(ns_http_resp_t *resp)
{
    resp->status = 0;
    resp->body = NULL;
    resp->body_len = 0;
    resp->retry_after_s = -1;
    resp->elapsed_ms = 0;
}

static void set_common_options(CURL *curl, const ns_http_req_t *req,
                               http_call_t *call, char *errbuf, long timeout_ms)
{
    curl_easy_setopt(curl, CURLOPT_URL, req->url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, call);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, call);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "nightshift/0.1");
    curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
}

/* What one request needs while it is on its easy handle: set up by
 * xfer_setup, torn down (and judged) by xfer_finish, on the same thread. */
typedef struct xfer_state {
    http_call_t call;
    char errbuf[CURL_ERROR_SIZE];
    struct curl_slist *headers;
    curl_mime *mime;
    long timeout_ms;
    const char *method;
    int64_t started;
} xfer_state_t;

static ns_err_t xfer_setup(CURL *curl, const ns_http_req_t *req,
                           xfer_state_t *st, ns_error_t *err)
{
    memset(st, 0, sizeof(*st));
    if (req == NULL || req->url == NULL)
        return ns_error_set(err, NS_ERR_INVALID, "http: no url");
    st->timeout_ms =
        req->timeout_ms > 0 ? req->timeout_ms : HTTP_DEFAULT_TIMEOUT_MS;
    st->method = request_method(req);
    st->call.retry_after_s = -1;
    ns_buf_init(&st->call.body, req->max_response > 0
                                    ? req->max_response
                                    : HTTP_DEFAULT_MAX_RESPONSE);
    int headers_ok = 1;
    st->headers = build_headers(req, &headers_ok);
    st->mime = req->n_parts > 0 ? build_mime(curl, req) : NULL;
    if (!headers_ok || (req->n_parts > 0 && st->mime == NULL)) {
        curl_slist_free_all(st->headers);
        curl_mime_free(st->mime);
        st->headers = NULL;
        st->mime = NULL;
        return ns_error_set(err, NS_ERR_NOMEM, "http: out of memory");
    }
    set_common_options(curl, req, &st->call, st->errbuf, st->timeout_ms);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, st->headers);
    set_method_and_body(curl, req, st->method, st->mime);
    st->started = ns_clock_mono_ms();
    return NS_OK;
}

/* The outcome of a finished transfer (rc: curl's), as ns_http_do
 * returns it; frees what xfer_setup made. */
static ns_err_t xfer_finish(CURL *curl, CURLcode rc, const ns_http_req_t *req,
                            xfer_state_t *st, ns_http_resp_t *resp,
                            ns_error_t *err)
{
    resp->elapsed_ms = (long)(ns_clock_mono_ms() - st->started);
    /* The handle outlives the call: drop pointers into the state. */
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(curl, CURLOPT_MIMEPOST, NULL);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(st->headers);
    curl_mime_free(st->mime);
    st->headers = NULL;
    st->mime = NULL;

    ns_err_t code = NS_OK;
    if (st->call.too_large) {
        char where[512];
        safe_url(req->url, where, sizeof(where));
        code = ns_error_set(err, NS_ERR_PERMANENT,
                            "%s %s: response too large (over %zu bytes)",
                            st->method, where, st->call.body.max);
    } else if (rc != CURLE_OK) {
        code = transport_error(rc, st->method, req->url, st->errbuf,
                               st->timeout_ms, err);
    }
    if (code != NS_OK) {
        ns_buf_free(&st->call.body);
        return code;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
    resp->body_len = st->call.body.len;
    resp->body = ns_buf_take(&st->call.body);
    resp->retry_after_s = st->call.retry_after_s;
    if (err != NULL)
        err->http_status = resp->status;
    if (resp->body == NULL)
        return ns_error_set(err, NS_ERR_NOMEM, "http: out of memory");
    return NS_OK;
}

ns_err_t ns_http_do(const ns_http_req_t *req, ns_http_resp_t *resp,
                    ns_error_t *err)
{
    ns_error_clear(err);
    resp_init(resp);
    if (req == NULL || req->url == NULL)
        return ns_error_set(err, NS_ERR_INVALID, "http: no url");
    CURL *curl = thread_handle();
    if (curl == NULL)
        return ns_error_set(err, NS_ERR_NOMEM, "http: curl_easy_init failed");
    xfer_state_t st;
    if (xfer_setup(curl, req, &st, err) != NS_OK)
        return err->code;
    CURLcode rc = curl_easy_perform(curl);
    return xfer_finish(curl, rc, req, &st, resp, err);
}

void ns_http_resp_free(ns_http_resp_t *resp)
{
    if (resp == NULL)
        return;
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}

/* ---- many requests on one thread --------------------------------------- */

/* Easy handles kept for reuse between transfers (curl_easy_reset keeps
 * nothing of the last request but is cheaper than a new handle). */
#define ASYNC_IDLE_MAX 256

/* A transfer's state while it is on an easy handle. */
typedef struct async_xfer {
    CURL *curl;
    xfer_state_t st;
    struct async_xfer *prev, *next; /* the running list */
} async_xfer_t;

/* Groups of transfers with a limit on those running (set before the
 * thread starts; then the loop's thread only, but for released, under the
 * lock). */
#define ASYNC_GROUPS NS_HTTP_GROUPS_MAX

typedef struct async_group {
    size_t limit;
    size_t running; /* started and holding a slot */
    ns_http_xfer_t *wait_head, **wait_tail;
} async_group_t;

struct ns_http_async {
    async_group_t groups[ASYNC_GROUPS + 1]; /* [0]: no group */
    int n_groups;
    size_t released[ASYNC_GROUPS + 1]; /* under lock */
    CURLM *multi;
    int epfd;    /* the transfers' sockets, and wake_fd */
    int wake_fd; /* eventfd: something was queued, or stop */
    pthread_t thread;
    ns_http_done_fn done;
    void *arg;
    pthread_mutex_t lock;
    ns_http_xfer_t *queued, **queued_tail; /* under lock */
    bool stop;                             /* under lock */
    size_t in_flight;                      /* under lock */
    /* The loop's thread only: */
    CURL *idle[ASYNC_IDLE_MAX];
    size_t n_idle;
    async_xfer_t *running; /* on the multi handle */
    int64_t deadline_ms;   /* curl's timer (monotonic), -1: none */
};

static void running_add(ns_http_async_t *a, async_xfer_t *ax)
{
    ax->prev = NULL;
    ax->next = a->running;
    if (a->running != NULL)
        a->running->prev = ax;
    a->running = ax;
}

static void running_remove(ns_http_async_t *a, async_xfer_t *ax)
{
    if (ax->prev != NULL)
        ax->prev->next = ax->next;
    else
        a->running = ax->next;
    if (ax->next != NULL)
        ax->next->prev = ax->prev;
}

static CURL *async_handle(ns_http_async_t *a)
{
    if (a->n_idle > 0) {
        CURL *curl = a->idle[--a->n_idle];
        curl_easy_reset(curl);
        return curl;
    }
    return curl_easy_init();
}

static void async_keep(ns_http_async_t *a, CURL *curl)
{
    if (a->n_idle < ASYNC_IDLE_MAX)
        a->idle[a->n_idle++] = curl;
    else
        curl_easy_cleanup(curl);
}

/* Puts x on the done list with its outcome. */
static void async_back(ns_http_xfer_t *x, ns_http_xfer_t **done)
{
    free(x->priv);
    x->priv = NULL;
    x->next = *done;
    *done = x;
}

static async_group_t *group_of(ns_http_async_t *a, const ns_http_xfer_t *x)
{
    return x->group > 0 && x->group <= a->n_groups ? &a->groups[x->group]
                                                   : NULL;
}

static void async_end(ns_http_async_t *a, ns_http_xfer_t *x,
                      ns_http_xfer_t **done);

/* Puts x on an easy handle in the multi handle (or, failing that, on the
 * done list). */
static void async_launch(ns_http_async_t *a, ns_http_xfer_t *x,
                         ns_http_xfer_t **done)
{
    ns_error_clear(&x->err);
    resp_init(&x->resp);
    async_xfer_t *ax = calloc(1, sizeof(*ax));
    x->priv = ax;
    if (ax == NULL || (ax->curl = async_handle(a)) == NULL) {
        x->rc = ns_error_set(&x->err, NS_ERR_NOMEM, "http: out of memory");
        async_end(a, x, done);
        return;
    }
    x->rc = xfer_setup(ax->curl, x->req, &ax->st, &x->err);
    if (x->rc == NS_OK) {
        curl_easy_setopt(ax->curl, CURLOPT_PRIVATE, x);
        if (curl_multi_add_handle(a->multi, ax->curl) == CURLM_OK) {
            running_add(a, ax);
            return;
        }
        x->rc = xfer_finish(ax->curl, CURLE_OUT_OF_MEMORY, x->req, &ax->st,
                            &x->resp, &x->err);
    }
    async_keep(a, ax->curl);
    async_end(a, x, done);
}

/* Starts what waits in g while it has free slots. */
static void group_pump(ns_http_async_t *a, async_group_t *g,
                       ns_http_xfer_t **done)
{
    while (g->running < g->limit && g->wait_head != NULL) {
        ns_http_xfer_t *x = g->wait_head;
        g->wait_head = x->next;
        if (g->wait_head == NULL)
            g->wait_tail = &g->wait_head;
        g->running++;
        async_launch(a, x, done);
    }
}

/* A transfer is back: on the done list, its slot free unless it failed. */
static void async_end(ns_http_async_t *a, ns_http_xfer_t *x,
                      ns_http_xfer_t **done)
{
    async_group_t *g = group_of(a, x);
    x->slot_kept = g != NULL && !(x->rc == NS_OK && x->resp.status >= 200 &&
                                  x->resp.status < 300);
    async_back(x, done);
    if (g != NULL && !x->slot_kept) {
        g->running--;
        group_pump(a, g, done);
    }
}

/* Moves the queued transfers onto easy handles in the multi handle, or
 * behind their group's running ones. */
static void async_start(ns_http_async_t *a, ns_http_xfer_t *list,
                        ns_http_xfer_t **done)
{
    while (list != NULL) {
        ns_http_xfer_t *x = list;
        list = x->next;
        x->next = NULL;
        async_group_t *g = group_of(a, x);
        if (g != NULL && g->running >= g->limit) {
            *g->wait_tail = x;
            g->wait_tail = &x->next;
            continue;
        }
        if (g != NULL)
            g->running++;
        async_launch(a, x, done);
    }
}

/* Slots given back by ns_http_async_release. */
static void async_released(ns_http_async_t *a, const size_t *released,
                           ns_http_xfer_t **done)
{
    for (int i = 1; i <= a->n_groups; i++) {
        async_group_t *g = &a->groups[i];
        g->running -= released[i] < g->running ? released[i] : g->running;
        group_pump(a, g, done);
    }
}

/* Takes the finished transfers off the multi handle. */
static void async_collect(ns_http_async_t *a, ns_http_xfer_t **done)
{
    CURLMsg *m;
    int left = 0;
    while ((m = curl_multi_info_read(a->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        ns_http_xfer_t *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURL *curl = m->easy_handle;
        CURLcode rc = m->data.result;
        curl_multi_remove_handle(a->multi, curl); /* m is gone after it */
        async_xfer_t *ax = x->priv;
        running_remove(a, ax);
        x->rc = xfer_finish(curl, rc, x->req, &ax->st, &x->resp, &x->err);
        async_keep(a, curl);
        async_end(a, x, done);
    }
}

/* Ends every transfer still running or waiting (stopping). */
static void async_abort(ns_http_async_t *a, ns_http_xfer_t **done)
{
    for (int i = 1; i <= a->n_groups; i++) {
        async_group_t *g = &a->groups[i];
        while (g->wait_head != NULL) {
            ns_http_xfer_t *x = g->wait_head;
            g->wait_head = x->next;
            resp_init(&x->resp);
            x->rc = ns_error_set(&x->err, NS_ERR_TRANSIENT, "http: stopped");
            x->slot_kept = false;
            async_back(x, done);
        }
        g->wait_tail = &g->wait_head;
    }
    while (a->running != NULL) {
        async_xfer_t *ax = a->running;
        running_remove(a, ax);
        ns_http_xfer_t *x = NULL;
        curl_easy_getinfo(ax->curl, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(a->multi, ax->curl);
        xfer_finish(ax->curl, CURLE_ABORTED_BY_CALLBACK, x->req, &ax->st,
                    &x->resp, NULL);
        ns_http_resp_free(&x->resp);
        x->rc = ns_error_set(&x->err, NS_ERR_TRANSIENT, "http: stopped");
        x->slot_kept = false;
        async_keep(a, ax->curl);
        async_back(x, done);
    }
}

size_t ns_http_xfers_count(ns_http_xfer_t *list, ns_http_xfer_t **last)
{
    size_t n = 0;
    for (ns_http_xfer_t *x = list; x != NULL; x = x->next) {
        n++;
        if (last != NULL)
            *last = x;
    }
    return n;
}

/* curl's socket callback: which of a transfer's sockets to watch for
 * what. (curl_multi_perform would walk every transfer on each call;
 * socket_action touches only those whose sockets are ready, which is what
 * keeps a thousand transfers on one thread cheap.) */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *arg,
                     void *socketp)
{
    (void)easy;
    ns_http_async_t *a = arg;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(a->epfd, EPOLL_CTL_DEL, fd, NULL);
        return 0;
    }
    struct epoll_event ev = {
        .events = (what & CURL_POLL_IN ? EPOLLIN : 0u) |
                  (what & CURL_POLL_OUT ? EPOLLOUT : 0u),
        .data.fd = fd,
    };
    if (socketp == NULL) {
        /* New to us (or its number reused after a close we were not told
         * of): added, or changed when epoll has it already. */
        if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &ev) != 0 && errno == EEXIST)
            epoll_ctl(a->epfd, EPOLL_CTL_MOD, fd, &ev);
        curl_multi_assign(a->multi, fd, a);
    } else {
        epoll_ctl(a->epfd, EPOLL_CTL_MOD, fd, &ev);
    }
    return 0;
}

/* curl's timer callback: when to call it with CURL_SOCKET_TIMEOUT. */
static int on_timer(CURLM *multi, long timeout_ms, void *arg)
{
    (void)multi;
    ns_http_async_t *a = arg;
    a->deadline_ms = timeout_ms < 0 ? -1 : ns_clock_mono_ms() + timeout_ms;
    return 0;
}

#define ASYNC_EVENTS 256

/* Waits for ready sockets (or curl's timer, or a wake-up) and lets curl
 * act on them. */
static void async_wait(ns_http_async_t *a)
{
    int64_t now = ns_clock_mono_ms();
    int wait = 1000;
    if (a->deadline_ms >= 0)
        wait = a->deadline_ms <= now         ? 0
               : a->deadline_ms - now < 1000 ? (int)(a->deadline_ms - now)
                                             : 1000;
    struct epoll_event evs[ASYNC_EVENTS];
    int n = epoll_wait(a->epfd, evs, ASYNC_EVENTS, wait);
    int running = 0;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.fd == a->wake_fd) {
            uint64_t sink;
            ssize_t rd = read(a->wake_fd, &sink, sizeof(sink));
            (void)rd;
            continue;
        }
        int flags =
            (evs[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
            (evs[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
            (evs[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
        curl_multi_socket_action(a->multi, evs[i].data.fd, flags, &running);
    }
    if (a->deadline_ms >= 0 && a->deadline_ms <= ns_clock_mono_ms()) {
        a->deadline_ms = -1; /* (the action may set it again) */
        curl_multi_socket_action(a->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
}

static void *async_main(void *arg)
{
    ns_http_async_t *a = arg;
    for (;;) {
        pthread_mutex_lock(&a->lock);
        ns_http_xfer_t *queued = a->queued;
        a->queued = NULL;
        a->queued_tail = &a->queued;
        bool stop = a->stop;
        size_t released[ASYNC_GROUPS + 1];
        memcpy(released, a->released, sizeof(released));
        memset(a->released, 0, sizeof(a->released));
        pthread_mutex_unlock(&a->lock);

        ns_http_xfer_t *done = NULL;
        async_released(a, released, &done);
        async_start(a, queued, &done);
        if (stop)
            async_abort(a, &done);
        else
            async_wait(a);
        async_collect(a, &done);
        if (done != NULL) {
            size_t n = ns_http_xfers_count(done, NULL);
            pthread_mutex_lock(&a->lock);
            a->in_flight -= n;
            pthread_mutex_unlock(&a->lock);
            a->done(a->arg, done);
        }
        if (stop)
            break;
    }
    return NULL;
}

static void async_wake(ns_http_async_t *a)
{
    uint64_t one = 1;
    ssize_t wr = write(a->wake_fd, &one, sizeof(one));
    (void)wr;
}

ns_http_async_t *ns_http_async_new(const size_t *limits, int n_groups,
                                   ns_http_done_fn done, void *arg,
                                   ns_error_t *err)
{
    ns_http_global_init();
    if (n_groups < 0 || n_groups > ASYNC_GROUPS) {
        ns_error_set(err, NS_ERR_INVALID, "http: at most %d groups",
                     ASYNC_GROUPS);
        return NULL;
    }
    ns_http_async_t *a = calloc(1, sizeof(*a));
    if (a == NULL || (a->multi = curl_multi_init()) == NULL) {
        free(a);
        ns_error_set(err, NS_ERR_NOMEM, "http: out of memory");
        return NULL;
    }
    a->n_groups = n_groups;
    for (int i = 1; i <= n_groups; i++) {
        a->groups[i].limit = limits[i - 1] > 0 ? limits[i - 1] : 1;
        a->groups[i].wait_tail = &a->groups[i].wait_head;
    }
    a->done = done;
    a->arg = arg;
    a->queued_tail = &a->queued;
    a->deadline_ms = -1;
    a->epfd = epoll_create1(EPOLL_CLOEXEC);
    a->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = a->wake_fd};
    if (a->epfd < 0 || a->wake_fd < 0 ||
        epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->wake_fd, &ev) != 0) {
        ns_error_set(err, NS_ERR_IO, "http: %s", strerror(errno));
        goto fail;
    }
    curl_multi_setopt(a->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(a->multi, CURLMOPT_SOCKETDATA, a);
    curl_multi_setopt(a->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(a->multi, CURLMOPT_TIMERDATA, a);
    pthread_mutex_init(&a->lock, NULL);
    if (pthread_create(&a->thread, NULL, async_main, a) != 0) {
        pthread_mutex_destroy(&a->lock);
        ns_error_set(err, NS_ERR_IO, "http: cannot start its thread");
        goto fail;
    }
    return a;
fail:
    if (a->epfd >= 0)
        close(a->epfd);
    if (a->wake_fd >= 0)
        close(a->wake_fd);
    curl_multi_cleanup(a->multi);
    free(a);
    return NULL;
}

void ns_http_async_submit(ns_http_async_t *a, ns_http_xfer_t *list)
{
    if (list == NULL)
        return;
    ns_http_xfer_t *last = list;
    size_t n = ns_http_xfers_count(list, &last);
    pthread_mutex_lock(&a->lock);
    bool idle = a->queued == NULL; /* else a wake-up is on its way */
    *a->queued_tail = list;
    a->queued_tail = &last->next;
    a->in_flight += n;
    pthread_mutex_unlock(&a->lock);
    if (idle)
        async_wake(a);
}

void ns_http_async_release(ns_http_async_t *a, int group)
{
    if (group <= 0 || group > a->n_groups)
        return;
    pthread_mutex_lock(&a->lock);
    a->released[group]++;
    pthread_mutex_unlock(&a->lock);
    async_wake(a);
}

size_t ns_http_async_in_flight(ns_http_async_t *a)
{
    pthread_mutex_lock(&a->lock);
    size_t n = a->in_flight;
    pthread_mutex_unlock(&a->lock);
    return n;
}

void ns_http_async_destroy(ns_http_async_t *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->lock);
    a->stop = true;
    pthread_mutex_unlock(&a->lock);
    async_wake(a);
    pthread_join(a->thread, NULL);
    for (size_t i = 0; i < a->n_idle; i++)
        curl_easy_cleanup(a->idle[i]);
    curl_multi_cleanup(a->multi);
    close(a->epfd);
    close(a->wake_fd);
    pthread_mutex_destroy(&a->lock);
    free(a);
}
