/* test_http.c: status classification and ns_http_do against a tiny
 * one-shot HTTP server forked by the test itself. */
#include "ns/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>

#include "ns/buf.h"
#include "nstest.h"

typedef struct server {
    pid_t pid;
    int port;
    char log_path[64]; /**< the raw requests it received */
} server_t;

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT(fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    ASSERT_EQ(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    ASSERT_EQ(listen(fd, 8), 0);
    ASSERT_EQ(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    *port = ntohs(addr.sin_port);
    return fd;
}

/* Reads one request (headers and a Content-Length body) into b. */
static void read_request(int conn, ns_buf_t *b)
{
    char chunk[4096];
    size_t want = 0;
    for (;;) {
        const char *end = b->data ? strstr(b->data, "\r\n\r\n") : NULL;
        if (end != NULL && want == 0) {
            const char *cl = strstr(b->data, "Content-Length: ");
            size_t head = (size_t)(end - b->data) + 4;
            want = head + (cl ? strtoul(cl + 16, NULL, 10) : 0);
        }
        if (want > 0 && b->len >= want)
            return;
        ssize_t n = read(conn, chunk, sizeof(chunk));
        if (n <= 0)
            return;
        ns_buf_add(b, chunk, (size_t)n);
    }
}

/* Serves n_conns connections, each answered with response after delay_ms. */
static void server_start(server_t *s, const char *response, size_t resp_len,
                         int n_conns, int delay_ms)
{
    int fd = listen_any(&s->port);
    snprintf(s->log_path, sizeof(s->log_path), "/tmp/ns_http_test.%d",
             (int)getpid());
    unlink(s->log_path);
    s->pid = fork();
    ASSERT(s->pid >= 0);
    if (s->pid > 0) {
        close(fd);
        return;
    }
    for (int i = 0; i < n_conns; i++) {
        int conn = accept(fd, NULL, NULL);
        if (conn < 0)
            _exit(1);
        ns_buf_t req;
        ns_buf_init(&req, (size_t)1 << 24);
        read_request(conn, &req);
        FILE *log = fopen(s->log_path, "a");
        if (log != NULL) {
            fwrite(req.data, 1, req.len, log);
            fclose(log);
        }
        ns_buf_free(&req);
        usleep((useconds_t)delay_ms * 1000);
        if (write(conn, response, resp_len) < 0)
            _exit(1);
        close(conn);
    }
    _exit(0);
}

static void server_stop(server_t *s)
{
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
}

static char *server_log(const server_t *s)
{
    FILE *f = fopen(s->log_path, "r");
    ASSERT(f != NULL);
    ns_buf_t b;
    ns_buf_init(&b, (size_t)1 << 24);
    char chunk[4096];
    size_t n = fread(chunk, 1, sizeof(chunk), f);
    while (n > 0) {
        ns_buf_add(&b, chunk, n);
        n = fread(chunk, 1, sizeof(chunk), f);
    }
    fclose(f);
    unlink(s->log_path);
    return ns_buf_take(&b);
}

static char *url_of(const server_t *s, const char *path)
{
    ns_buf_t b;
    ns_buf_init(&b, 1024);
    ns_buf_addf(&b, "http://127.0.0.1:%d%s", s->port, path);
    return ns_buf_take(&b);
}

#define CANNED(status_line, headers, body)                                     \
    "HTTP/1.1 " status_line "\r\n" headers "Connection: close\r\n"             \
    "Content-Length: " #body "\r\n\r\n"

TEST(classify_table)
{
    static const struct {
        long status;
        ns_err_t want;
    } cases[] = {
        {200, NS_OK},
        {201, NS_OK},
        {204, NS_OK},
        {299, NS_OK},
        {301, NS_ERR_PERMANENT},
        {400, NS_ERR_PERMANENT},
        {401, NS_ERR_PERMANENT},
        {403, NS_ERR_PERMANENT},
        {404, NS_ERR_PERMANENT},
        {408, NS_ERR_TRANSIENT},
        {409, NS_ERR_PERMANENT},
        {413, NS_ERR_PERMANENT},
        {422, NS_ERR_PERMANENT},
        {425, NS_ERR_TRANSIENT},
        {429, NS_ERR_TRANSIENT},
        {500, NS_ERR_TRANSIENT},
        {502, NS_ERR_TRANSIENT},
        {503, NS_ERR_TRANSIENT},
        {504, NS_ERR_TRANSIENT},
        {599, NS_ERR_TRANSIENT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (ns_http_classify(cases[i].status) != cases[i].want)
            NSTEST_FAIL("status %ld: got %s", cases[i].status,
                        ns_err2str(ns_http_classify(cases[i].status)));
    }
}

TEST(post_json_and_retry_after_seconds)
{
    static const char resp_text[] = "HTTP/1.1 429 Too Many Requests\r\n"
                                    "Retry-After: 7\r\n"
                                    "Content-Length: 12\r\n"
                                    "Connection: close\r\n\r\n"
                                    "{\"slow\":\"x\"}";
    server_t s;
    server_start(&s, resp_text, sizeof(resp_text) - 1, 1, 0);
    char *url = url_of(&s, "/v1/things?key=x");
    const char *headers[] = {"Content-Type: application/json", "X-Trace: abc",
                             NULL};
    ns_http_req_t req = {
        .url = url, .headers = headers, .body = "{\"a\":1}", .body_len = 7};
    ns_http_resp_t resp;
    ns_error_t err;
    ASSERT_EQ(ns_http_do(&req, &resp, &err), NS_OK);
    ASSERT_EQ(resp.status, 429);
    ASSERT_EQ(err.http_status, 429);
    ASSERT_EQ((long)resp.retry_after_s, 7);
    ASSERT_STREQ(resp.body, "{\"slow\":\"x\"}");
    ASSERT_EQ(resp.body_len, 12);
    ASSERT_EQ(ns_http_classify(resp.status), NS_ERR_TRANSIENT);
    ns_http_resp_free(&resp);
    server_stop(&s);

    char *seen = server_log(&s);
    ASSERT(strncmp(seen, "POST /v1/things?key=x HTTP/1.1\r\n", 32) == 0);
    ASSERT(strstr(seen, "\r\nX-Trace: abc\r\n") != NULL);
    ASSERT(strstr(seen, "\r\nContent-Length: 7\r\n") != NULL);
    ASSERT(strstr(seen, "Expect:") == NULL);
    ASSERT(strstr(seen, "\r\n\r\n{\"a\":1}") != NULL);
    free(seen);
    free(url);
}

TEST(get_and_retry_after_http_date)
{
    char date[64];
    time_t when = time(NULL) + 30;
    struct tm tm;
    gmtime_r(&when, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    char resp_text[256];
    int n = snprintf(resp_text, sizeof(resp_text),
                     "HTTP/1.1 503 Service Unavailable\r\nRetry-After: %s\r\n"
                     "Content-Length: 0\r\nConnection: close\r\n\r\n",
                     date);
    server_t s;
    server_start(&s, resp_text, (size_t)n, 1, 0);
    char *url = url_of(&s, "/health");
    ns_http_req_t req = {.url = url};
    ns_http_resp_t resp;
    ns_error_t err;
    ASSERT_EQ(ns_http_do(&req, &resp, &err), NS_OK);
    ASSERT_EQ(resp.status, 503);
    ASSERT(resp.retry_after_s >= 27 && resp.retry_after_s <= 31);
    ASSERT_STREQ(resp.body, "");
    ns_http_resp_free(&resp);
    server_stop(&s);
    char *seen = server_log(&s);
    ASSERT(strncmp(seen, "GET /health HTTP/1.1\r\n", 22) == 0);
    free(seen);
    free(url);
}

TEST(response_size_bound)
{
    ns_buf_t b;
    ns_buf_init(&b, 1 << 16);
    ns_buf_adds(&b, "HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n"
                    "Connection: close\r\n\r\n");
    for (int i = 0; i < 2000; i++)
        ns_buf_add(&b, "x", 1);
    server_t s;
    server_start(&s, b.data, b.len, 2, 0);
    char *url = url_of(&s, "/big");
    ns_http_req_t req = {.url = url, .max_response = 1999};
    ns_http_resp_t resp;
    ns_error_t err;
    ASSERT_EQ(ns_http_do(&req, &resp, &err), NS_ERR_PERMANENT);
    ASSERT(strstr(err.msg, "response too large") != NULL);
    ASSERT(resp.body == NULL);
    /* Exactly at the bound is fine, on the same (reused) handle. */
    req.max_response = 2000;
    ASSERT_EQ(ns_http_do(&req, &resp, &err), NS_OK);
    ASSERT_EQ(resp.body_len, 2000);
    ns_http_resp_free(&resp);
    server_stop(&s);
    free(server_log(&s));
    free(url);
    ns_buf_free(&b);
}

TEST(timeout_message_hides_secrets)
{
    static const char resp_text[] = CANNED("200 OK", "", 0);
    server_t s;
    server_start(&s, resp_text, sizeof(resp_text) - 1, 1, 3000);
    char *url = url_of(&s, "/bot123456:SECRET-tok/sendMessage?q=qsecret#frag");
    ns_http_req_t req = {
        .url = url, .body = "{}", .body_len = 2, .timeout_ms = 300};
    ns_http_resp_t resp;
    ns_error_t err;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ASSERT_EQ(ns_http_do(&req, &resp, &err), NS_ERR_TRANSIENT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ASSERT(t1.tv_sec - t0.tv_sec < 2);
    char want[256];
    snprintf(want, sizeof(want),
             "POST http://127.0.0.1:%d/bot***/sendMessage: timeout after "
             "300 ms",
             s.port);
    ASSERT_STREQ(err.msg, want);
    ASSERT_EQ(err.http_status, 0);
    server_stop(&s);
    unlink(s.log_path);
    free(url);
}

TEST(refused_connection_is_transient)
{
    int port;
    close(listen_any(&port));
    char url[256];
    snprintf(url, sizeof(url),
             "http://user:pw-secret@127.0.0.1:%d/botTOKEN42/x?k=qsecret", port);
    ns_http_req_t req = {.url = url, .timeout_ms = 2000};
    ns_http_resp_t resp;
    ns_error_t err;
    ASSERT_EQ(ns_http_do(&req, &resp, &err), NS_ERR_TRANSIENT);
    ASSERT(strncmp(err.msg, "GET http://127.0.0.1:", 21) == 0);
    ASSERT(strstr(err.msg, "/bot***/x: ") != NULL);
    ASSERT(strstr(err.msg, "TOKEN42") == NULL);
    ASSERT(strstr(err.msg, "pw-secret") == NULL);
    ASSERT(strstr(err.msg, "qsecret") == NULL);

    req.url = "ftp://127.0.0.1/file";
    ASSERT_EQ(ns_http_do(&req, &resp, &err), NS_ERR_INVALID);
}

TEST(multipart_upload)
{
    static const char resp_text[] = CANNED("200 OK", "", 2) "ok";
    server_t s;
    server_start(&s, resp_text, sizeof(resp_text) - 1, 1, 0);
    char *url = url_of(&s, "/upload");
    static const char bytes[] = "a,b\n1,2\n";
    ns_http_part_t parts[] = {
        {.name = "chat_id", .data = "42", .len = 2},
        {.name = "document",
         .data = bytes,
         .len = sizeof(bytes) - 1,
         .filename = "report.csv",
         .mime_type = "text/csv"},
    };
    ns_http_req_t req = {.url = url, .parts = parts, .n_parts = 2};
    ns_http_resp_t resp;
    ns_error_t err;
    ASSERT_EQ(ns_http_do(&req, &resp, &err), NS_OK);
    ASSERT_STREQ(resp.body, "ok");
    ns_http_resp_free(&resp);
    server_stop(&s);
    char *seen = server_log(&s);
    ASSERT(strncmp(seen, "POST /upload HTTP/1.1\r\n", 23) == 0);
    ASSERT(strstr(seen, "Content-Type: multipart/form-data; boundary=") !=
           NULL);
    ASSERT(strstr(seen, "name=\"chat_id\"\r\n\r\n42\r\n") != NULL);
    ASSERT(strstr(seen,
                  "name=\"document\"; filename=\"report.csv\"\r\n"
                  "Content-Type: text/csv\r\n\r\na,b\n1,2\n\r\n") != NULL);
    free(seen);
    free(url);
}

static void *thread_request(void *arg)
{
    ns_http_req_t req = {.url = arg, .method = "DELETE"};
    ns_http_resp_t resp;
    ns_error_t err;
    ns_err_t rc = ns_http_do(&req, &resp, &err);
    long status = rc == NS_OK ? resp.status : -1;
    ns_http_resp_free(&resp);
    return (void *)(intptr_t)status;
}

TEST(threads_have_their_own_handle)
{
    static const char resp_text[] = CANNED("204 No Content", "", 0);
    server_t s;
    server_start(&s, resp_text, sizeof(resp_text) - 1, 4, 50);
    char *url = url_of(&s, "/item/1");
    ns_http_global_init();
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(pthread_create(&threads[i], NULL, thread_request, url), 0);
    for (int i = 0; i < 4; i++) {
        void *status;
        pthread_join(threads[i], &status);
        ASSERT_EQ((intptr_t)status, 204);
    }
    server_stop(&s);
    char *seen = server_log(&s);
    ASSERT(strncmp(seen, "DELETE /item/1 HTTP/1.1\r\n", 25) == 0);
    free(seen);
    free(url);
}

/* ---- many requests on one thread ------------------------------------- */

/* Accepts n connections and reads a request from each before answering
 * any: a client that waited for one answer before sending the next
 * request would never get one. Each answer's body is its request's path. */
static void server_start_together(server_t *s, int n)
{
    int fd = listen_any(&s->port);
    s->log_path[0] = '\0';
    s->pid = fork();
    ASSERT(s->pid >= 0);
    if (s->pid > 0) {
        close(fd);
        return;
    }
    int conns[64];
    char paths[64][64];
    for (int i = 0; i < n; i++) {
        conns[i] = accept(fd, NULL, NULL);
        if (conns[i] < 0)
            _exit(1);
        ns_buf_t req;
        ns_buf_init(&req, (size_t)1 << 20);
        read_request(conns[i], &req);
        if (req.data == NULL || sscanf(req.data, "POST %63s ", paths[i]) != 1)
            _exit(2);
        ns_buf_free(&req);
    }
    for (int i = 0; i < n; i++) {
        char out[256];
        int len = snprintf(out, sizeof(out),
                           "HTTP/1.1 200 OK\r\nConnection: close\r\n"
                           "Content-Length: %zu\r\n\r\n%s",
                           strlen(paths[i]), paths[i]);
        if (write(conns[i], out, (size_t)len) < 0)
            _exit(1);
        close(conns[i]);
    }
    _exit(0);
}

typedef struct back {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    ns_http_xfer_t *list;
    int n;
} back_t;

static void on_back(void *arg, ns_http_xfer_t *done)
{
    back_t *b = arg;
    pthread_mutex_lock(&b->lock);
    while (done != NULL) {
        ns_http_xfer_t *x = done;
        done = x->next;
        x->next = b->list;
        b->list = x;
        b->n++;
    }
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
}

static void wait_back(back_t *b, int n)
{
    pthread_mutex_lock(&b->lock);
    while (b->n < n)
        pthread_cond_wait(&b->cond, &b->lock);
    pthread_mutex_unlock(&b->lock);
}

TEST(async_requests_are_in_flight_together)
{
    enum { N = 40 };
    server_t s;
    server_start_together(&s, N);
    back_t b = {.lock = PTHREAD_MUTEX_INITIALIZER,
                .cond = PTHREAD_COND_INITIALIZER};
    ns_error_t err;
    size_t limit = N; /* a group's limit lets that many run together */
    ns_http_async_t *a = ns_http_async_new(&limit, 1, on_back, &b, &err);
    ASSERT(a != NULL);
    static ns_http_xfer_t xfers[N];
    static ns_http_req_t reqs[N];
    static char *urls[N];
    ns_http_xfer_t *list = NULL;
    for (int i = 0; i < N; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/call/%d", i);
        urls[i] = url_of(&s, path);
        reqs[i] = (ns_http_req_t){
            .url = urls[i], .body = "{}", .body_len = 2, .timeout_ms = 20000};
        xfers[i] = (ns_http_xfer_t){.req = &reqs[i], .group = 1, .next = list};
        list = &xfers[i];
    }
    /* Half in one list, the rest one by one from here. */
    ns_http_xfer_t *rest = xfers[N / 2].next;
    xfers[N / 2].next = NULL;
    ns_http_async_submit(a, list);
    while (rest != NULL) {
        ns_http_xfer_t *x = rest;
        rest = x->next;
        x->next = NULL;
        ns_http_async_submit(a, x);
    }
    wait_back(&b, N);
    ASSERT_EQ(ns_http_async_in_flight(a), 0);
    for (int i = 0; i < N; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/call/%d", i);
        ASSERT_EQ(xfers[i].rc, NS_OK);
        ASSERT_EQ(xfers[i].resp.status, 200);
        ASSERT_STREQ(xfers[i].resp.body, path);
        ns_http_resp_free(&xfers[i].resp);
        free(urls[i]);
    }
    ns_http_async_destroy(a);
    waitpid(s.pid, NULL, 0);
}

TEST(async_failures_come_back_classified)
{
    int closed;
    close(listen_any(&closed));
    int silent_port;
    int silent = listen_any(&silent_port); /* accepts, never answers */
    char refused[128], hang[128], stuck[128];
    snprintf(refused, sizeof(refused), "http://127.0.0.1:%d/botSECRET7/x",
             closed);
    snprintf(hang, sizeof(hang), "http://127.0.0.1:%d/slow", silent_port);
    snprintf(stuck, sizeof(stuck), "http://127.0.0.1:%d/stuck", silent_port);
    ns_http_req_t reqs[4] = {
        {.url = refused, .timeout_ms = 5000},
        {.url = "ftp://127.0.0.1/file"},
        {.url = hang, .timeout_ms = 200},
        {.url = NULL},
    };
    back_t b = {.lock = PTHREAD_MUTEX_INITIALIZER,
                .cond = PTHREAD_COND_INITIALIZER};
    ns_error_t err;
    ns_http_async_t *a = ns_http_async_new(NULL, 0, on_back, &b, &err);
    ASSERT(a != NULL);
    ns_http_xfer_t x[5];
    for (int i = 0; i < 4; i++) {
        x[i] = (ns_http_xfer_t){.req = &reqs[i]};
        ns_http_async_submit(a, &x[i]);
    }
    wait_back(&b, 4);
    ASSERT_EQ(x[0].rc, NS_ERR_TRANSIENT);
    ASSERT(strstr(x[0].err.msg, "/bot***/x: ") != NULL);
    ASSERT(strstr(x[0].err.msg, "SECRET7") == NULL);
    ASSERT_EQ(x[1].rc, NS_ERR_INVALID);
    ASSERT_EQ(x[2].rc, NS_ERR_TRANSIENT);
    char want[160];
    snprintf(want, sizeof(want),
             "GET http://127.0.0.1:%d/slow: timeout after 200 ms", silent_port);
    ASSERT_STREQ(x[2].err.msg, want);
    ASSERT_EQ(x[3].rc, NS_ERR_INVALID);

    /* One still waiting when the loop stops comes back "stopped". */
    ns_http_req_t long_req = {.url = stuck, .timeout_ms = 60000};
    x[4] = (ns_http_xfer_t){.req = &long_req};
    ns_http_async_submit(a, &x[4]);
    ASSERT_EQ(ns_http_async_in_flight(a), 1);
    ns_http_async_destroy(a);
    ASSERT_EQ(b.n, 5);
    ASSERT_EQ(x[4].rc, NS_ERR_TRANSIENT);
    ASSERT_STREQ(x[4].err.msg, "http: stopped");
    close(silent);
}

TEST(async_group_limits_running_transfers)
{
    int closed;
    close(listen_any(&closed));
    char refused[128];
    snprintf(refused, sizeof(refused), "http://127.0.0.1:%d/x", closed);
    ns_http_req_t req = {.url = refused, .timeout_ms = 5000};
    back_t b = {.lock = PTHREAD_MUTEX_INITIALIZER,
                .cond = PTHREAD_COND_INITIALIZER};
    ns_error_t err;
    size_t limit = 1;
    ns_http_async_t *a = ns_http_async_new(&limit, 1, on_back, &b, &err);
    ASSERT(a != NULL);
    ns_http_xfer_t x[3];
    for (int i = 0; i < 3; i++) {
        x[i] = (ns_http_xfer_t){.req = &req, .group = 1};
        ns_http_async_submit(a, &x[i]);
    }
    /* The first fails at once and keeps the group's only slot: the others
     * wait for it to be given back. */
    wait_back(&b, 1);
    ASSERT(b.list == &x[0]);
    ASSERT(x[0].slot_kept);
    ASSERT_EQ(x[0].rc, NS_ERR_TRANSIENT);
    usleep(200 * 1000); /* time for a wrong second start to show */
    ASSERT_EQ(b.n, 1);
    ASSERT_EQ(ns_http_async_in_flight(a), 2);
    ns_http_async_release(a, 1);
    wait_back(&b, 2);
    ASSERT(b.list == &x[1]);
    ASSERT(x[1].slot_kept);
    /* Stopping: the one still waiting comes back too. */
    ns_http_async_destroy(a);
    ASSERT_EQ(b.n, 3);
    ASSERT(b.list == &x[2]);
    ASSERT_STREQ(x[2].err.msg, "http: stopped");
    ASSERT(!x[2].slot_kept);
}

NSTEST_MAIN
