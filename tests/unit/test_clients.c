/* test_clients.c: ns_http_do, ns_llm_chat, the Telegram and Teams clients
 * against
 * the Python fakes in tests/fakes (NS_SRC = repo root, default "../..").
 * Each test starts its own fake; tests skip only when python3 is missing. */
#include <cjson/cJSON.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>

#include "ns/buf.h"
#include "ns/confluence.h"
#include "ns/http.h"
#include "ns/llm.h"
#include "ns/teams.h"
#include "ns/telegram.h"
#include "ns/utf8.h"
#include "nstest.h"

#define LLM_KEY "sk-test-0123456789"
#define TG_TOKEN "123456:TEST-secret_token"

typedef struct fake {
    pid_t pid;
    int port;
    char dir[64];
    char port_file[96];
} fake_t;

static fake_t running;

static void fake_stop(void)
{
    if (running.pid > 0) {
        kill(running.pid, SIGTERM);
        waitpid(running.pid, NULL, 0);
        running.pid = 0;
    }
    unlink(running.port_file);
    rmdir(running.dir);
}

static int have_python3(void)
{
    const char *path = getenv("PATH");
    if (path == NULL)
        return 0;
    char dir[4096];
    while (*path != '\0') {
        size_t len = strcspn(path, ":");
        snprintf(dir, sizeof(dir), "%.*s/python3", (int)len, path);
        if (access(dir, X_OK) == 0)
            return 1;
        path += len + (path[len] == ':');
    }
    return 0;
}

static int read_port(const char *path)
{
    FILE *f = fopen(path, "r");
    int port = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%d", &port) != 1)
        port = 0;
    fclose(f);
    return port;
}

/* Starts tests/fakes/<script> with "--<secret_flag> secret"; returns 0 when
 * the test must be skipped. */
static int fake_start(const char *script, const char *secret_flag,
                      const char *secret)
{
    if (!have_python3()) {
        printf("skipped: python3 not found\n");
        return 0;
    }
    const char *src = getenv("NS_SRC") ? getenv("NS_SRC") : "../..";
    char script_path[4096];
    snprintf(script_path, sizeof(script_path), "%s/tests/fakes/%s", src,
             script);
    if (access(script_path, R_OK) != 0)
        NSTEST_FAIL("%s not found (set NS_SRC to the repo root)", script_path);
    snprintf(running.dir, sizeof(running.dir), "/tmp/nsfake.XXXXXX");
    ASSERT(mkdtemp(running.dir) != NULL);
    snprintf(running.port_file, sizeof(running.port_file), "%s/port",
             running.dir);
    atexit(fake_stop);

    pid_t parent = getpid();
    running.pid = fork();
    ASSERT(running.pid >= 0);
    if (running.pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        if (getenv("NS_TEST_VERBOSE") == NULL)
            freopen("/dev/null", "w", stderr);
        execlp("python3", "python3", script_path, "--port", "0", "--port-file",
               running.port_file, secret_flag, secret, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 300 && running.port == 0; i++) {
        running.port = read_port(running.port_file);
        if (running.port == 0 && waitpid(running.pid, NULL, WNOHANG) != 0)
            NSTEST_FAIL("%s exited before listening", script);
        if (running.port == 0)
            usleep(50 * 1000);
    }
    if (running.port == 0)
        NSTEST_FAIL("%s did not write its port file", script);
    return 1;
}

static char *fake_url(const char *path)
{
    ns_buf_t b;
    ns_buf_init(&b, 1024);
    ns_buf_addf(&b, "http://127.0.0.1:%d%s", running.port, path);
    return ns_buf_take(&b);
}

/* POST /_control/faults with the given JSON list. */
static void fake_faults(const char *faults_json)
{
    char *url = fake_url("/_control/faults");
    ns_buf_t body;
    ns_buf_init(&body, 4096);
    ns_buf_addf(&body, "{\"faults\":%s}", faults_json);
    const char *headers[] = {"Content-Type: application/json", NULL};
    ns_http_req_t req = {.url = url,
                         .headers = headers,
                         .body = body.data,
                         .body_len = body.len};
    ns_http_resp_t resp;
    ns_error_t err;
    ASSERT_EQ(ns_http_do(&req, &resp, &err), NS_OK);
    if (resp.status != 200)
        NSTEST_FAIL("faults rejected: %s", resp.body);
    ns_http_resp_free(&resp);
    ns_buf_free(&body);
    free(url);
}

/* The fake's request log (a JSON array; cJSON_Delete it). */
static cJSON *fake_requests(void)
{
    char *url = fake_url("/_control/requests");
    ns_http_req_t req = {.url = url, .method = "GET"};
    ns_http_resp_t resp;
    ns_error_t err;
    ASSERT_EQ(ns_http_do(&req, &resp, &err), NS_OK);
    ASSERT_EQ(resp.status, 200);
    cJSON *log = cJSON_Parse(resp.body);
    ASSERT(cJSON_IsArray(log));
    ns_http_resp_free(&resp);
    free(url);
    return log;
}

static const cJSON *get(const cJSON *obj, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (item == NULL)
        NSTEST_FAIL("no \"%s\" in the fake's request log", name);
    return item;
}

static long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* ---- LLM ------------------------------------------------------------- */

static ns_llm_settings_t llm_settings(char *base_url)
{
    ns_llm_settings_t cfg = {.base_url = base_url,
                             .model = "test-model",
                             .api_key = LLM_KEY,
                             .max_tokens = 100,
                             .timeout_s = 5};
    return cfg;
}

static int llm_start(void)
{
    return fake_start("fake_llm.py", "--api-key", LLM_KEY);
}

TEST(llm_success)
{
    if (!llm_start())
        return;
    char *base = fake_url("/"); /* the trailing slash is stripped */
    ns_llm_settings_t cfg = llm_settings(base);
    ns_llm_result_t out;
    ns_error_t err;
    ns_err_t rc =
        ns_llm_chat(&cfg, "You are terse.", "Analyze project X", &out, &err);
    if (rc != NS_OK)
        NSTEST_FAIL("ns_llm_chat: %s", err.msg);
    ASSERT(strncmp(out.content, "ANALYSIS(", 9) == 0);
    ASSERT(strstr(out.content, "\n3. Next steps: continue") != NULL);
    ASSERT_STREQ(out.model, "test-model");
    ASSERT_EQ(out.prompt_tokens, 6);
    ASSERT_EQ(out.completion_tokens, 11);
    ASSERT_EQ(out.total_tokens, 17);
    ASSERT(out.latency_ms >= 0 && out.latency_ms < 5000);
    ns_llm_result_free(&out);

    ASSERT_EQ(ns_llm_chat(&cfg, NULL, "only user", &out, &err), NS_OK);
    ns_llm_result_free(&out);

    cJSON *log = fake_requests();
    ASSERT_EQ(cJSON_GetArraySize(log), 2);
    const cJSON *first = cJSON_GetArrayItem(log, 0);
    ASSERT_STREQ(get(first, "method")->valuestring, "POST");
    ASSERT_STREQ(get(first, "path")->valuestring, "/chat/completions");
    const cJSON *headers = get(first, "headers");
    ASSERT_STREQ(get(headers, "authorization")->valuestring,
                 "Bearer <redacted>");
    ASSERT_STREQ(get(headers, "content-type")->valuestring, "application/json");
    const cJSON *body = get(first, "json");
    ASSERT_STREQ(get(body, "model")->valuestring, "test-model");
    ASSERT_EQ(get(body, "max_tokens")->valueint, 100);
    const cJSON *msgs = get(body, "messages");
    ASSERT_EQ(cJSON_GetArraySize(msgs), 2);
    ASSERT_STREQ(get(cJSON_GetArrayItem(msgs, 0), "role")->valuestring,
                 "system");
    ASSERT_STREQ(get(cJSON_GetArrayItem(msgs, 1), "content")->valuestring,
                 "Analyze project X");
    msgs = get(get(cJSON_GetArrayItem(log, 1), "json"), "messages");
    ASSERT_EQ(cJSON_GetArraySize(msgs), 1);
    ASSERT_STREQ(get(cJSON_GetArrayItem(msgs, 0), "role")->valuestring, "user");
    cJSON_Delete(log);
    free(base);
    fake_stop();
}

TEST(llm_rate_limited)
{
    if (!llm_start())
        return;
    char *base = fake_url("");
    ns_llm_settings_t cfg = llm_settings(base);
    ns_llm_result_t out;
    ns_error_t err;
    fake_faults("[{\"kind\":\"status\",\"status\":429,\"retry_after\":2}]");
    ASSERT_EQ(ns_llm_chat(&cfg, NULL, "hi", &out, &err), NS_ERR_TRANSIENT);
    ASSERT_EQ(err.code, NS_ERR_TRANSIENT);
    ASSERT_EQ(err.http_status, 429);
    ASSERT_EQ((long)err.retry_after_s, 2);
    ASSERT(strncmp(err.msg, "LLM API 429: Rate limit", 23) == 0);
    ASSERT(out.content == NULL);
    /* The fault was consumed: the next call succeeds. */
    ASSERT_EQ(ns_llm_chat(&cfg, NULL, "hi", &out, &err), NS_OK);
    ns_llm_result_free(&out);
    free(base);
    fake_stop();
}

TEST(llm_server_error)
{
    if (!llm_start())
        return;
    char *base = fake_url("");
    ns_llm_settings_t cfg = llm_settings(base);
    ns_llm_result_t out;
    ns_error_t err;
    fake_faults("[{\"kind\":\"status\",\"status\":500}]");
    ASSERT_EQ(ns_llm_chat(&cfg, NULL, "hi", &out, &err), NS_ERR_TRANSIENT);
    ASSERT_EQ(err.http_status, 500);
    ASSERT(err.retry_after_s < 0);
    ASSERT(strncmp(err.msg, "LLM API 500: ", 13) == 0);
    free(base);
    fake_stop();
}

TEST(llm_timeout)
{
    if (!llm_start())
        return;
    char *base = fake_url("");
    ns_llm_settings_t cfg = llm_settings(base);
    cfg.timeout_s = 1;
    ns_llm_result_t out;
    ns_error_t err;
    fake_faults("[{\"kind\":\"timeout\",\"seconds\":3}]");
    long t0 = mono_ms();
    ASSERT_EQ(ns_llm_chat(&cfg, NULL, "hi", &out, &err), NS_ERR_TRANSIENT);
    ASSERT(mono_ms() - t0 < 2500);
    ASSERT(strstr(err.msg, "/chat/completions: timeout after 1000 ms") != NULL);
    ASSERT_EQ(err.http_status, 0);
    free(base);
    fake_stop();
}

TEST(llm_malformed_and_empty)
{
    if (!llm_start())
        return;
    char *base = fake_url("");
    ns_llm_settings_t cfg = llm_settings(base);
    ns_llm_result_t out;
    ns_error_t err;
    fake_faults("[{\"kind\":\"malformed\"},{\"kind\":\"empty\"}]");
    ASSERT_EQ(ns_llm_chat(&cfg, NULL, "hi", &out, &err), NS_ERR_TRANSIENT);
    ASSERT(strstr(err.msg, "malformed response") != NULL);
    ASSERT_EQ(err.http_status, 200);
    ASSERT_EQ(ns_llm_chat(&cfg, NULL, "hi", &out, &err), NS_ERR_TRANSIENT);
    ASSERT(strstr(err.msg, "malformed response: empty choices") != NULL);
    ASSERT(out.content == NULL && out.model == NULL);
    free(base);
    fake_stop();
}

TEST(llm_wrong_key_is_permanent)
{
    if (!llm_start())
        return;
    char *base = fake_url("");
    ns_llm_settings_t cfg = llm_settings(base);
    cfg.api_key = "sk-wrong-key-987654";
    ns_llm_result_t out;
    ns_error_t err;
    ASSERT_EQ(ns_llm_chat(&cfg, NULL, "hi", &out, &err), NS_ERR_PERMANENT);
    ASSERT_EQ(err.http_status, 401);
    ASSERT(strncmp(err.msg, "LLM API 401: Incorrect API key provided", 39) ==
           0);
    ASSERT(strstr(err.msg, cfg.api_key) == NULL);
    free(base);
    fake_stop();
}

/* ---- Telegram -------------------------------------------------------- */

static ns_telegram_settings_t tg_settings(char *api_url)
{
    ns_telegram_settings_t cfg = {
        .api_url = api_url, .bot_token = TG_TOKEN, .timeout_s = 5};
    return cfg;
}

static int tg_start(void)
{
    return fake_start("fake_telegram.py", "--token", TG_TOKEN);
}

TEST(tg_send_message)
{
    if (!tg_start())
        return;
    char *api = fake_url("/");
    ns_telegram_settings_t cfg = tg_settings(api);
    ns_error_t err;
    const char *html = "<b>Report</b> &amp; <a href=\"https://x.y/\">link</a>";
    ns_err_t rc = ns_tg_send_message(&cfg, "-1001234567890", html, &err);
    if (rc != NS_OK)
        NSTEST_FAIL("send: %s", err.msg);
    ASSERT_EQ(ns_tg_send_message(&cfg, "@nightshift_ch", "hi", &err), NS_OK);

    cJSON *log = fake_requests();
    ASSERT_EQ(cJSON_GetArraySize(log), 2);
    const cJSON *first = cJSON_GetArrayItem(log, 0);
    ASSERT_STREQ(get(first, "path")->valuestring, "/bot<token>/sendMessage");
    const cJSON *body = get(first, "json");
    const cJSON *chat_id = get(body, "chat_id");
    ASSERT(cJSON_IsNumber(chat_id));
    ASSERT(chat_id->valuedouble == -1001234567890.0);
    ASSERT_STREQ(get(body, "text")->valuestring, html);
    ASSERT_STREQ(get(body, "parse_mode")->valuestring, "HTML");
    ASSERT(cJSON_IsTrue(get(get(body, "link_preview_options"), "is_disabled")));
    body = get(cJSON_GetArrayItem(log, 1), "json");
    ASSERT_STREQ(get(body, "chat_id")->valuestring, "@nightshift_ch");
    cJSON_Delete(log);
    free(api);
    fake_stop();
}

TEST(tg_rate_limited)
{
    if (!tg_start())
        return;
    char *api = fake_url("");
    ns_telegram_settings_t cfg = tg_settings(api);
    ns_error_t err;
    fake_faults("[{\"kind\":\"status\",\"status\":429,\"retry_after\":3},"
                "{\"kind\":\"status\",\"status\":502}]");
    ASSERT_EQ(ns_tg_send_message(&cfg, "42", "hi", &err), NS_ERR_TRANSIENT);
    ASSERT_EQ(err.http_status, 429);
    ASSERT_EQ((long)err.retry_after_s, 3);
    ASSERT_STREQ(err.msg, "telegram 429: Too Many Requests: retry after 3");
    ASSERT_EQ(ns_tg_send_message(&cfg, "42", "hi", &err), NS_ERR_TRANSIENT);
    ASSERT_EQ(err.http_status, 502);
    ASSERT(err.retry_after_s < 0);
    free(api);
    fake_stop();
}

TEST(tg_timeout_and_malformed)
{
    if (!tg_start())
        return;
    char *api = fake_url("");
    ns_telegram_settings_t cfg = tg_settings(api);
    cfg.timeout_s = 1;
    ns_error_t err;
    fake_faults("[{\"kind\":\"timeout\",\"seconds\":3},{\"kind\":"
                "\"malformed\"},{\"kind\":\"empty\"}]");
    ASSERT_EQ(ns_tg_send_message(&cfg, "42", "hi", &err), NS_ERR_TRANSIENT);
    ASSERT(strstr(err.msg, "/bot***/sendMessage: timeout after 1000 ms") !=
           NULL);
    ASSERT(strstr(err.msg, TG_TOKEN) == NULL);
    ASSERT(strstr(err.msg, "TEST-secret") == NULL);
    ASSERT_EQ(ns_tg_send_message(&cfg, "42", "hi", &err), NS_ERR_TRANSIENT);
    ASSERT_STREQ(err.msg, "telegram 200: malformed response");
    ASSERT_EQ(ns_tg_send_message(&cfg, "42", "hi", &err), NS_ERR_TRANSIENT);
    ASSERT_STREQ(err.msg, "telegram 200: malformed response");
    free(api);
    fake_stop();
}

TEST(tg_permanent_errors)
{
    if (!tg_start())
        return;
    char *api = fake_url("");
    ns_telegram_settings_t cfg = tg_settings(api);
    ns_error_t err;
    ASSERT_EQ(ns_tg_send_message(&cfg, "not-a-chat", "hi", &err),
              NS_ERR_PERMANENT);
    ASSERT_EQ(err.http_status, 400);
    ASSERT_STREQ(err.msg, "telegram 400: Bad Request: chat not found");
    ASSERT_EQ(ns_tg_send_message(&cfg, "42", "<b>unclosed", &err),
              NS_ERR_PERMANENT);
    ASSERT(strncmp(err.msg, "telegram 400: Bad Request: can't parse", 38) == 0);

    cfg.bot_token = "999:WRONG-token";
    ASSERT_EQ(ns_tg_send_message(&cfg, "42", "hi", &err), NS_ERR_PERMANENT);
    ASSERT_STREQ(err.msg, "telegram 401: Unauthorized");

    cfg.bot_token = NULL;
    ASSERT_EQ(ns_tg_send_message(&cfg, "42", "hi", &err), NS_ERR_INVALID);
    free(api);
    fake_stop();
}

TEST(tg_send_document)
{
    if (!tg_start())
        return;
    char *api = fake_url("");
    ns_telegram_settings_t cfg = tg_settings(api);
    ns_error_t err;
    static const char csv[] = "project,score\nalpha,7\n";
    const char *caption = "<b>Hourly report</b> 09:00";
    ns_err_t rc = ns_tg_send_document(&cfg, "12345", "report.csv", csv,
                                      sizeof(csv) - 1, caption, &err);
    if (rc != NS_OK)
        NSTEST_FAIL("sendDocument: %s", err.msg);

    cJSON *log = fake_requests();
    ASSERT_EQ(cJSON_GetArraySize(log), 1);
    const cJSON *entry = cJSON_GetArrayItem(log, 0);
    ASSERT_STREQ(get(entry, "path")->valuestring, "/bot<token>/sendDocument");
    const cJSON *body = get(entry, "json");
    ASSERT_STREQ(get(body, "chat_id")->valuestring, "12345");
    ASSERT_STREQ(get(body, "caption")->valuestring, caption);
    ASSERT_STREQ(get(body, "parse_mode")->valuestring, "HTML");
    const cJSON *doc = get(body, "document");
    ASSERT_STREQ(get(doc, "filename")->valuestring, "report.csv");
    ASSERT_EQ(get(doc, "size")->valueint, sizeof(csv) - 1);
    cJSON_Delete(log);

    /* An empty file is the API's "file must be non-empty". */
    ASSERT_EQ(
        ns_tg_send_document(&cfg, "12345", "empty.csv", "", 0, NULL, &err),
        NS_ERR_PERMANENT);
    ASSERT(strstr(err.msg, "file must be non-empty") != NULL);
    free(api);
    fake_stop();
}

/* ---- Teams ---- */

static char *card_message(const char *title, const char *text,
                          const char *severity)
{
    cJSON *card = cJSON_CreateObject();
    cJSON_AddStringToObject(card, "title", title);
    cJSON_AddStringToObject(card, "text", text);
    cJSON_AddStringToObject(card, "severity", severity);
    cJSON *facts = cJSON_AddArrayToObject(card, "facts");
    cJSON *f = cJSON_CreateArray();
    cJSON_AddItemToArray(f, cJSON_CreateString("service"));
    cJSON_AddItemToArray(f, cJSON_CreateString("api_<1>"));
    cJSON_AddItemToArray(facts, f);
    char *msg = ns_teams_message(card);
    cJSON_Delete(card);
    ASSERT(msg != NULL);
    return msg;
}

TEST(teams_escape)
{
    char *e = ns_teams_escape("*bold* _x_ [a](http://evil) <b>&\x01ok\n#1");
    ASSERT_STREQ(e, "\\*bold\\* \\_x\\_ \\[a\\]\\(http://evil\\) "
                    "&lt;b&gt;&amp;ok\n\\#1");
    free(e);
    e = ns_teams_escape("bad \xff utf8");
    ASSERT_STREQ(e, "bad \xef\xbf\xbd utf8");
    free(e);
    e = ns_teams_escape(NULL);
    ASSERT_STREQ(e, "");
    free(e);
}

TEST(teams_message_fits_28kb)
{
    ns_buf_t b;
    ns_buf_init(&b, 1 << 20);
    for (int i = 0; i < 20000; i++)
        ns_buf_adds(&b, "ж*\"");
    char *msg = card_message("Big", b.data, "warning");
    ASSERT(strlen(msg) <= NS_TEAMS_MAX_PAYLOAD - 1024);
    cJSON *root = cJSON_Parse(msg);
    ASSERT(root != NULL);
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(
            cJSON_GetObjectItemCaseSensitive(root, "attachments"), 0),
        "content");
    const cJSON *text = cJSON_GetArrayItem(
        cJSON_GetObjectItemCaseSensitive(content, "body"), 1);
    const char *t = cJSON_GetObjectItemCaseSensitive(text, "text")->valuestring;
    size_t len = strlen(t);
    ASSERT(len > 1000);
    ASSERT(strcmp(t + len - strlen("…"), "…") == 0);
    ASSERT(ns_utf8_invalid_at(t, len) < 0);
    cJSON_Delete(root);
    free(msg);
    ns_buf_free(&b);
}

TEST(teams_post_ok_and_literal)
{
    if (!fake_start("fake_teams.py", "--rate-limit", "100"))
        return;
    char *msg = card_message("Spike in <api>", "*x* [y](z)", "critical");
    ns_error_t err;
    char *url = fake_url("/webhookb2/ops");
    ASSERT_EQ(ns_teams_post(url, msg, 5000, &err), NS_OK);
    free(url);
    url = fake_url("/workflows/flow1");
    ASSERT_EQ(ns_teams_post(url, msg, 5000, &err), NS_OK);
    free(url);
    free(msg);
    cJSON *log = fake_requests();
    ASSERT_EQ(cJSON_GetArraySize(log), 2);
    const cJSON *first = cJSON_GetArrayItem(log, 0);
    const cJSON *att =
        cJSON_GetArrayItem(get(get(first, "json"), "attachments"), 0);
    const cJSON *blocks = get(get(att, "content"), "body");
    /* Title and text arrive escaped: Teams shows them literally. */
    ASSERT_STREQ(get(cJSON_GetArrayItem(blocks, 0), "text")->valuestring,
                 "Spike in &lt;api&gt;");
    ASSERT_STREQ(get(cJSON_GetArrayItem(blocks, 1), "text")->valuestring,
                 "\\*x\\* \\[y\\]\\(z\\)");
    ASSERT_STREQ(get(cJSON_GetArrayItem(blocks, 0), "color")->valuestring,
                 "Attention");
    cJSON_Delete(log);
}

TEST(teams_errors_are_classified)
{
    if (!fake_start("fake_teams.py", "--rate-limit", "100"))
        return;
    char *url = fake_url("/webhookb2/ops");
    ns_error_t err;
    ns_error_clear(&err);
    ASSERT_EQ(ns_teams_post(url, "{\"type\":\"message\"}", 5000, &err),
              NS_ERR_PERMANENT);
    ASSERT_EQ(err.http_status, 400);
    ASSERT(strstr(err.msg, "/webhookb2/") == NULL); /* the URL is secret */
    char *msg = card_message("t", "x", "default");
    fake_faults("[{\"kind\":\"status\",\"status\":429,\"retry_after\":3},"
                "{\"kind\":\"status\",\"status\":503},"
                "{\"kind\":\"status\",\"status\":413}]");
    ASSERT_EQ(ns_teams_post(url, msg, 5000, &err), NS_ERR_TRANSIENT);
    ASSERT_EQ(err.http_status, 429);
    ASSERT(err.retry_after_s == 3.0);
    ASSERT_EQ(ns_teams_post(url, msg, 5000, &err), NS_ERR_TRANSIENT);
    ASSERT_EQ(ns_teams_post(url, msg, 5000, &err), NS_ERR_PERMANENT);
    ASSERT_EQ(err.http_status, 413);
    ASSERT_EQ(ns_teams_post(url, msg, 5000, &err), NS_OK);
    ASSERT_EQ(ns_teams_post("", msg, 5000, &err), NS_ERR_PERMANENT);
    free(msg);
    free(url);
}

/* ---- Confluence ---- */

static void fake_post(const char *path, const char *json)
{
    char *url = fake_url(path);
    const char *headers[] = {"Content-Type: application/json", NULL};
    ns_http_req_t req = {
        .url = url, .headers = headers, .body = json, .body_len = strlen(json)};
    ns_http_resp_t resp;
    ns_error_t err;
    ASSERT_EQ(ns_http_do(&req, &resp, &err), NS_OK);
    if (resp.status != 200)
        NSTEST_FAIL("%s refused: %s", path, resp.body);
    ns_http_resp_free(&resp);
    free(url);
}

static cJSON *fake_get(const char *path)
{
    char *url = fake_url(path);
    ns_http_req_t req = {.url = url, .method = "GET"};
    ns_http_resp_t resp;
    ns_error_t err;
    ASSERT_EQ(ns_http_do(&req, &resp, &err), NS_OK);
    cJSON *doc = cJSON_Parse(resp.body);
    ASSERT(doc != NULL);
    ns_http_resp_free(&resp);
    free(url);
    return doc;
}

static ns_confluence_settings_t confluence_at(const char *token)
{
    char *base = fake_url("");
    return (ns_confluence_settings_t){.base_url = base,
                                      .user = "",
                                      .token = (char *)token,
                                      .auth = "bearer",
                                      .timeout_s = 5};
}

TEST(confluence_escape)
{
    char *e = ns_confluence_escape("a<b> & \"c\" 'd'\x01\xff");
    ASSERT_STREQ(e, "a&lt;b&gt; &amp; &quot;c&quot; &#39;d&#39;\xef\xbf\xbd");
    free(e);
}

TEST(confluence_publish_versions_and_attachments)
{
    if (!fake_start("fake_confluence.py", "--token", "pat-123"))
        return;
    fake_post("/_control/pages", "{\"id\":\"42\",\"title\":\"Known "
                                 "errors\",\"version\":7}");
    ns_confluence_settings_t cfg = confluence_at("pat-123");
    ns_confluence_file_t csv = {"errors_table_latest.csv", "text/csv",
                                "\xef\xbb\xbf"
                                "a,b\r\n",
                                8};
    ns_error_t err;
    ns_error_clear(&err);
    ASSERT_EQ(ns_confluence_publish(&cfg, "42", NULL, "<p>one &amp; two</p>",
                                    &csv, 1, &err),
              NS_OK);
    /* Again, after someone else's edit sneaks in right before the PUT. */
    fake_post("/_control/edit", "{\"id\":\"42\",\"before_next_put\":1}");
    ASSERT_EQ(ns_confluence_publish(&cfg, "42", "Renamed", "<p>three</p>", &csv,
                                    1, &err),
              NS_OK);
    cJSON *pages = fake_get("/_control/pages");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(pages, "42");
    ASSERT_EQ(get(p, "version")->valueint, 10); /* 7, 8, edit 9, 10 */
    ASSERT_STREQ(get(p, "body")->valuestring, "<p>three</p>");
    ASSERT_STREQ(get(p, "title")->valuestring, "Renamed");
    const cJSON *att = get(get(p, "attachments"), "errors_table_latest.csv");
    ASSERT_EQ(get(att, "version")->valueint, 2);
    ASSERT_EQ(get(att, "size")->valueint, 8);
    cJSON_Delete(pages);
    free(cfg.base_url);
}

TEST(confluence_errors_name_the_setting)
{
    if (!fake_start("fake_confluence.py", "--token", "pat-123"))
        return;
    fake_post("/_control/pages", "{\"id\":\"1\"}");
    fake_post("/_control/pages", "{\"id\":\"2\",\"forbidden\":true}");
    ns_error_t err;
    ns_error_clear(&err);
    ns_confluence_settings_t bad = confluence_at("wrong-token-xyz");
    ASSERT_EQ(ns_confluence_publish(&bad, "1", NULL, "<p/>", NULL, 0, &err),
              NS_ERR_PERMANENT);
    ASSERT_EQ(err.http_status, 401);
    ASSERT(strstr(err.msg, "NS_CONFLUENCE_TOKEN") != NULL);
    ASSERT(strstr(err.msg, "wrong-token-xyz") == NULL);
    free(bad.base_url);
    ns_confluence_settings_t cfg = confluence_at("pat-123");
    ASSERT_EQ(ns_confluence_publish(&cfg, "2", NULL, "<p/>", NULL, 0, &err),
              NS_ERR_PERMANENT);
    ASSERT_EQ(err.http_status, 403);
    ASSERT_EQ(ns_confluence_publish(&cfg, "999", NULL, "<p/>", NULL, 0, &err),
              NS_ERR_PERMANENT);
    ASSERT_EQ(err.http_status, 404);
    ASSERT_EQ(
        ns_confluence_publish(&cfg, "1", NULL, "<p>unclosed", NULL, 0, &err),
        NS_ERR_PERMANENT);
    ASSERT_EQ(err.http_status, 400);
    fake_faults("[{\"kind\":\"status\",\"status\":429,\"retry_after\":7}]");
    ASSERT_EQ(ns_confluence_publish(&cfg, "1", NULL, "<p/>", NULL, 0, &err),
              NS_ERR_TRANSIENT);
    ASSERT(err.retry_after_s == 7.0);
    /* A conflict that persists is transient: the outbox tries later. */
    fake_post("/_control/edit", "{\"id\":\"1\",\"before_next_put\":5}");
    ASSERT_EQ(ns_confluence_publish(&cfg, "1", NULL, "<p/>", NULL, 0, &err),
              NS_ERR_TRANSIENT);
    ASSERT_EQ(err.http_status, 409);
    free(cfg.base_url);
}

NSTEST_MAIN
