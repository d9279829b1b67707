/* test_httpd.c: the embedded HTTP server (ns/httpd.h) on an ephemeral
 * port, driven by libcurl: built-in routes, a custom route, 404/405/413. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/buf.h"
#include "ns/httpd.h"
#include "ns/metrics.h"
#include "nstest.h"

typedef struct reply {
    long status;
    ns_buf_t body;
    ns_buf_t headers;
} reply_t;

static size_t collect(char *data, size_t size, size_t n, void *userdata)
{
    ns_buf_t *b = userdata;
    return ns_buf_add(b, data, size * n) == NS_OK ? size * n : 0;
}

/* One request; body NULL = no body, chunked = send without a length. */
static reply_t fetch(int port, const char *method, const char *path,
                     const char *body, int chunked)
{
    reply_t r = {0};
    ns_buf_init(&r.body, 1 << 20);
    ns_buf_init(&r.headers, 1 << 16);
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    CURL *curl = curl_easy_init();
    ASSERT(curl != NULL);
    struct curl_slist *hdrs = NULL;
    hdrs = curl_slist_append(hdrs, "x-ECHO-Me: shout");
    if (chunked)
        hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r.headers);
    if (body != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        if (!chunked)
            curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK)
        NSTEST_FAIL("%s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(curl);
    if (r.body.data == NULL)
        ns_buf_adds(&r.body, "");
    return r;
}

static void reply_free(reply_t *r)
{
    ns_buf_free(&r->body);
    ns_buf_free(&r->headers);
}

static ns_httpd_t *start(ns_httpd_ready_fn ready, void *arg)
{
    ns_error_t err;
    ns_error_clear(&err);
    ns_httpd_t *h = ns_httpd_new("127.0.0.1", 0, ready, arg, &err);
    if (h == NULL)
        NSTEST_FAIL("ns_httpd_new: %s", err.msg);
    ASSERT(ns_httpd_port(h) > 0);
    return h;
}

static int ready_flag(void *arg)
{
    return *(int *)arg;
}

/* Echoes method, the X-Echo-Me header and the body. */
static void echo(void *arg, const ns_httpd_request_t *req, int *status,
                 const char **content_type, char **body)
{
    ns_buf_t b;
    ns_buf_init(&b, 1 << 20);
    const char *hdr = req->header(req, "X-Echo-Me");
    ns_buf_addf(&b, "%s %s hdr=%s len=%zu body=%s", req->method, req->path,
                hdr ? hdr : "(none)", req->body_len, req->body);
    *status = 201;
    *content_type = "application/x-echo";
    *body = ns_buf_take(&b);
    (*(int *)arg)++;
}

TEST(builtin_routes)
{
    ns_metrics_reset();
    ns_metrics_counter_add("things_total", "Things.", "job=\"a\"", 3);
    ns_httpd_t *h = start(NULL, NULL);
    int port = ns_httpd_port(h);

    reply_t r = fetch(port, "GET", "/metrics", NULL, 0);
    ASSERT_EQ(r.status, 200);
    ASSERT_STREQ(r.body.data, "# HELP things_total Things.\n"
                              "# TYPE things_total counter\n"
                              "things_total{job=\"a\"} 3\n");
    ASSERT(strstr(r.headers.data, "Content-Type: text/plain; version=0.0.4; "
                                  "charset=utf-8\r\n") != NULL);
    reply_free(&r);

    r = fetch(port, "GET", "/healthz", NULL, 0);
    ASSERT_EQ(r.status, 200);
    ASSERT_STREQ(r.body.data, "ok\n");
    reply_free(&r);

    r = fetch(port, "GET", "/readyz", NULL, 0); /* NULL callback = ready */
    ASSERT_EQ(r.status, 200);
    ASSERT_STREQ(r.body.data, "ready\n");
    reply_free(&r);

    r = fetch(port, "HEAD", "/healthz", NULL, 0); /* GET routes answer HEAD */
    ASSERT_EQ(r.status, 200);
    ASSERT_STREQ(r.body.data, "");
    reply_free(&r);
    ns_httpd_destroy(h);
}

TEST(readyz_follows_callback)
{
    int ready = 0;
    ns_httpd_t *h = start(ready_flag, &ready);
    reply_t r = fetch(ns_httpd_port(h), "GET", "/readyz", NULL, 0);
    ASSERT_EQ(r.status, 503);
    ASSERT_STREQ(r.body.data, "not ready\n");
    reply_free(&r);
    ready = 1;
    r = fetch(ns_httpd_port(h), "GET", "/readyz", NULL, 0);
    ASSERT_EQ(r.status, 200);
    ASSERT_STREQ(r.body.data, "ready\n");
    reply_free(&r);
    ns_httpd_destroy(h);
}

TEST(custom_route_echoes_body_and_header)
{
    int calls = 0;
    ns_httpd_t *h = start(NULL, NULL);
    ASSERT_EQ(ns_httpd_route(h, "POST", "/echo", 1024, echo, &calls), NS_OK);
    reply_t r = fetch(ns_httpd_port(h), "POST", "/echo", "hello body", 0);
    ASSERT_EQ(r.status, 201);
    ASSERT_STREQ(r.body.data, "POST /echo hdr=shout len=10 body=hello body");
    ASSERT(strstr(r.headers.data, "Content-Type: application/x-echo\r\n") !=
           NULL);
    reply_free(&r);
    /* Chunked upload, arriving over several callbacks. */
    r = fetch(ns_httpd_port(h), "POST", "/echo", "chunked body", 1);
    ASSERT_EQ(r.status, 201);
    ASSERT_STREQ(r.body.data, "POST /echo hdr=shout len=12 body=chunked body");
    reply_free(&r);
    ns_httpd_destroy(h);
    ASSERT_EQ(calls, 2);
}

TEST(any_method_route)
{
    int calls = 0;
    ns_httpd_t *h = start(NULL, NULL);
    ASSERT_EQ(ns_httpd_route(h, NULL, "/any", 64, echo, &calls), NS_OK);
    reply_t r = fetch(ns_httpd_port(h), "DELETE", "/any", NULL, 0);
    ASSERT_EQ(r.status, 201);
    ASSERT_STREQ(r.body.data, "DELETE /any hdr=shout len=0 body=");
    reply_free(&r);
    ns_httpd_destroy(h);
}

TEST(unknown_path_404)
{
    ns_httpd_t *h = start(NULL, NULL);
    reply_t r = fetch(ns_httpd_port(h), "GET", "/nope", NULL, 0);
    ASSERT_EQ(r.status, 404);
    reply_free(&r);
    r = fetch(ns_httpd_port(h), "GET", "/metrics/extra", NULL, 0);
    ASSERT_EQ(r.status, 404);
    reply_free(&r);
    ns_httpd_destroy(h);
}

TEST(wrong_method_405)
{
    int calls = 0;
    ns_httpd_t *h = start(NULL, NULL);
    ASSERT_EQ(ns_httpd_route(h, "POST", "/echo", 64, echo, &calls), NS_OK);
    reply_t r = fetch(ns_httpd_port(h), "POST", "/metrics", "x", 0);
    ASSERT_EQ(r.status, 405);
    ASSERT(strstr(r.headers.data, "Allow: GET\r\n") != NULL);
    reply_free(&r);
    r = fetch(ns_httpd_port(h), "GET", "/echo", NULL, 0);
    ASSERT_EQ(r.status, 405);
    ASSERT(strstr(r.headers.data, "Allow: POST\r\n") != NULL);
    reply_free(&r);
    ns_httpd_destroy(h);
    ASSERT_EQ(calls, 0);
}

TEST(body_too_large_413)
{
    int calls = 0;
    ns_httpd_t *h = start(NULL, NULL);
    ASSERT_EQ(ns_httpd_route(h, "POST", "/small", 8, echo, &calls), NS_OK);
    /* Exactly max_body is allowed. */
    reply_t r = fetch(ns_httpd_port(h), "POST", "/small", "12345678", 0);
    ASSERT_EQ(r.status, 201);
    reply_free(&r);
    /* Declared by Content-Length: refused before the body is read. */
    r = fetch(ns_httpd_port(h), "POST", "/small", "123456789", 0);
    ASSERT_EQ(r.status, 413);
    reply_free(&r);
    /* Chunked: found while reading, the rest is discarded. */
    r = fetch(ns_httpd_port(h), "POST", "/small", "123456789abcdef", 1);
    ASSERT_EQ(r.status, 413);
    reply_free(&r);
    ns_httpd_destroy(h);
    ASSERT_EQ(calls, 1);
}

TEST(route_rejects_bad_arguments)
{
    int calls = 0;
    ns_httpd_t *h = start(NULL, NULL);
    ASSERT_EQ(ns_httpd_route(NULL, "GET", "/x", 0, echo, &calls),
              NS_ERR_INVALID);
    ASSERT_EQ(ns_httpd_route(h, "GET", "x", 0, echo, &calls), NS_ERR_INVALID);
    ASSERT_EQ(ns_httpd_route(h, "GET", "/x", 0, NULL, NULL), NS_ERR_INVALID);
    ASSERT_EQ(ns_httpd_route(h, "GET", "/metrics", 0, echo, &calls),
              NS_ERR_INVALID);
    ns_httpd_destroy(h);
}

/* Echoes the path and the ?q= argument. */
static void echo_query(void *arg, const ns_httpd_request_t *req, int *status,
                       const char **content_type, char **body)
{
    (void)status;
    (void)content_type;
    ns_buf_t b;
    ns_buf_init(&b, 1 << 16);
    const char *q = req->query(req, "q");
    ns_buf_addf(&b, "%s %s q=%s", (const char *)arg, req->path,
                q ? q : "(none)");
    *body = ns_buf_take(&b);
}

TEST(prefix_routes_and_query)
{
    ns_httpd_t *h = start(NULL, NULL);
    ASSERT_EQ(ns_httpd_route(h, "GET", "/runs/*", 0, echo_query, "prefix"),
              NS_OK);
    ASSERT_EQ(ns_httpd_route(h, "GET", "/runs/special", 0, echo_query, "exact"),
              NS_OK);
    ASSERT_EQ(ns_httpd_route(h, "GET", "/runs", 0, echo_query, "list"), NS_OK);
    reply_t r = fetch(ns_httpd_port(h), "GET", "/runs/42?q=a%20b%3C", NULL, 0);
    ASSERT_EQ(r.status, 200);
    ASSERT_STREQ(r.body.data, "prefix /runs/42 q=a b<");
    reply_free(&r);
    /* The exact route wins over the prefix one. */
    r = fetch(ns_httpd_port(h), "GET", "/runs/special", NULL, 0);
    ASSERT_STREQ(r.body.data, "exact /runs/special q=(none)");
    reply_free(&r);
    r = fetch(ns_httpd_port(h), "GET", "/runs?q=x", NULL, 0);
    ASSERT_STREQ(r.body.data, "list /runs q=x");
    reply_free(&r);
    /* Only what starts with the prefix matches; methods still count. */
    r = fetch(ns_httpd_port(h), "GET", "/runsx", NULL, 0);
    ASSERT_EQ(r.status, 404);
    reply_free(&r);
    r = fetch(ns_httpd_port(h), "POST", "/runs/42", "x", 0);
    ASSERT_EQ(r.status, 405);
    reply_free(&r);
    ns_httpd_destroy(h);
}

TEST(default_headers_on_every_response)
{
    ns_httpd_t *h = start(NULL, NULL);
    ASSERT_EQ(ns_httpd_header(h, "X-Content-Type-Options", "nosniff"), NS_OK);
    /* Header injection is refused. */
    ASSERT_EQ(ns_httpd_header(h, "X-Bad", "a\r\nSet-Cookie: x=1"),
              NS_ERR_INVALID);
    ASSERT_EQ(ns_httpd_header(h, "X-Bad: y", "a"), NS_ERR_INVALID);
    reply_t r = fetch(ns_httpd_port(h), "GET", "/healthz", NULL, 0);
    ASSERT(strstr(r.headers.data, "X-Content-Type-Options: nosniff\r\n") !=
           NULL);
    ASSERT(strstr(r.headers.data, "Set-Cookie") == NULL);
    reply_free(&r);
    r = fetch(ns_httpd_port(h), "GET", "/nope", NULL, 0);
    ASSERT_EQ(r.status, 404);
    ASSERT(strstr(r.headers.data, "X-Content-Type-Options: nosniff\r\n") !=
           NULL);
    reply_free(&r);
    ns_httpd_destroy(h);
}

TEST(new_rejects_bad_address)
{
    ns_error_t err;
    ns_error_clear(&err);
    ASSERT(ns_httpd_new("localhost:80", 0, NULL, NULL, &err) == NULL);
    ASSERT_EQ(err.code, NS_ERR_INVALID);
    ASSERT(ns_httpd_new("127.0.0.1", 70000, NULL, NULL, &err) == NULL);
    ASSERT_EQ(err.code, NS_ERR_INVALID);
    /* A port in use is an I/O error naming the address. */
    ns_httpd_t *h = start(NULL, NULL);
    ASSERT(ns_httpd_new("127.0.0.1", ns_httpd_port(h), NULL, NULL, &err) ==
           NULL);
    ASSERT_EQ(err.code, NS_ERR_IO);
    ASSERT(strstr(err.msg, "127.0.0.1") != NULL);
    ns_httpd_destroy(h);
    ns_httpd_destroy(NULL);
}

NSTEST_MAIN
