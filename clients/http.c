#include "ns/http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

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

    long timeout_ms =
        req->timeout_ms > 0 ? req->timeout_ms : HTTP_DEFAULT_TIMEOUT_MS;
    const char *method = request_method(req);
    http_call_t call = {.too_large = 0, .retry_after_s = -1};
    ns_buf_init(&call.body, req->max_response > 0 ? req->max_response
                                                  : HTTP_DEFAULT_MAX_RESPONSE);
    char errbuf[CURL_ERROR_SIZE] = "";
    int headers_ok = 1;
    struct curl_slist *headers = build_headers(req, &headers_ok);
    curl_mime *mime = req->n_parts > 0 ? build_mime(curl, req) : NULL;
    if (!headers_ok || (req->n_parts > 0 && mime == NULL)) {
        curl_slist_free_all(headers);
        curl_mime_free(mime);
        return ns_error_set(err, NS_ERR_NOMEM, "http: out of memory");
    }

    set_common_options(curl, req, &call, errbuf, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    set_method_and_body(curl, req, method, mime);

    int64_t started = ns_clock_mono_ms();
    CURLcode rc = curl_easy_perform(curl);
    resp->elapsed_ms = (long)(ns_clock_mono_ms() - started);
    /* The handle outlives this call: drop pointers into our stack frame. */
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(curl, CURLOPT_MIMEPOST, NULL);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(headers);
    curl_mime_free(mime);

    ns_err_t code = NS_OK;
    if (call.too_large) {
        char where[512];
        safe_url(req->url, where, sizeof(where));
        code = ns_error_set(err, NS_ERR_PERMANENT,
                            "%s %s: response too large (over %zu bytes)",
                            method, where, call.body.max);
    } else if (rc != CURLE_OK) {
        code = transport_error(rc, method, req->url, errbuf, timeout_ms, err);
    }
    if (code != NS_OK) {
        ns_buf_free(&call.body);
        return code;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
    resp->body_len = call.body.len;
    resp->body = ns_buf_take(&call.body);
    resp->retry_after_s = call.retry_after_s;
    if (err != NULL)
        err->http_status = resp->status;
    if (resp->body == NULL)
        return ns_error_set(err, NS_ERR_NOMEM, "http: out of memory");
    return NS_OK;
}

void ns_http_resp_free(ns_http_resp_t *resp)
{
    if (resp == NULL)
        return;
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}
