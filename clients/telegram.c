#include "ns/telegram.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/buf.h"
#include "ns/http.h"
#include "ns/utf8.h"

#define TG_DEFAULT_API_URL "https://api.telegram.org"
#define TG_DEFAULT_TIMEOUT_S 30
#define TG_MAX_MESSAGE_BYTES ((size_t)1 << 30)

/* ---- escaping ---------------------------------------------------------- */

char *ns_tg_escape_html(const char *text)
{
    if (text == NULL)
        return strdup("");
    char *clean = ns_utf8_sanitize(text, strlen(text));
    if (clean == NULL)
        return NULL;
    ns_buf_t b;
    ns_buf_init(&b, TG_MAX_MESSAGE_BYTES);
    ns_err_t rc = NS_OK;
    const unsigned char *p = (const unsigned char *)clean;
    for (; *p != '\0' && rc == NS_OK; p++) {
        if (*p == '&')
            rc = ns_buf_adds(&b, "&amp;");
        else if (*p == '<')
            rc = ns_buf_adds(&b, "&lt;");
        else if (*p == '>')
            rc = ns_buf_adds(&b, "&gt;");
        else if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f)
            continue;
        else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
            p++; /* C1 control (U+0080..U+009F): drop both bytes */
        else
            rc = ns_buf_add(&b, p, 1);
    }
    free(clean);
    if (rc != NS_OK) {
        ns_buf_free(&b);
        return NULL;
    }
    return ns_buf_take(&b);
}

/* ---- splitting --------------------------------------------------------- */

typedef enum unit_kind {
    UNIT_TEXT,  /**< one visible character: code point, entity, stray byte */
    UNIT_OPEN,  /**< <name ...> */
    UNIT_CLOSE, /**< </name> */
    UNIT_VOID,  /**< <name/>, <!-- -->: no effect on nesting */
} unit_kind_t;

typedef struct unit {
    unit_kind_t kind;
    size_t len;      /**< bytes */
    size_t name_off; /**< tags: offset of the name from the unit start */
    size_t name_len;
} unit_t;

typedef struct open_tag {
    size_t off; /**< of the whole opening tag in the input */
    size_t len;
    size_t name_off; /**< absolute */
    size_t name_len;
} open_tag_t;

typedef struct tag_stack {
    open_tag_t *tags;
    size_t n;
    size_t cap;
} tag_stack_t;

static int is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-';
}

static size_t utf8_len(const unsigned char *s, size_t avail)
{
    size_t n = 1;
    if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else if (s[0] >= 0xe0)
        n = 3;
    else if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    if (s[0] >= 0xf5 || n > avail)
        return 1;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 1;
    return n;
}

/* "&amp;", "&#1234;", "&#x1F600;": a name of up to 10 characters. */
static size_t entity_len(const char *s, size_t avail)
{
    size_t i = 1;
    while (i < avail && i <= 10 && (is_name_char(s[i]) || s[i] == '#'))
        i++;
    if (i > 1 && i < avail && s[i] == ';')
        return i + 1;
    return 0;
}

/* Returns 0 when s is not a well-formed tag (a stray '<' is text). */
static size_t tag_unit(const char *s, size_t avail, unit_t *u)
{
    size_t i = 1;
    char quote = 0;
    if (avail > 3 && strncmp(s, "<!--", 4) == 0) {
        const char *end = strstr(s + 4, "-->");
        if (end == NULL || (size_t)(end - s) + 3 > avail)
            return 0;
        u->kind = UNIT_VOID;
        return (size_t)(end - s) + 3;
    }
    u->kind = UNIT_OPEN;
    if (i < avail && s[i] == '/') {
        u->kind = UNIT_CLOSE;
        i++;
    }
    u->name_off = i;
    while (i < avail && is_name_char(s[i]))
        i++;
    u->name_len = i - u->name_off;
    if (u->name_len == 0)
        return 0;
    for (; i < avail; i++) {
        if (quote != 0) {
            quote = s[i] == quote ? 0 : quote;
        } else if (s[i] == '"' || s[i] == '\'') {
            quote = s[i];
        } else if (s[i] == '<') {
            return 0;
        } else if (s[i] == '>') {
            if (u->kind == UNIT_OPEN && s[i - 1] == '/')
                u->kind = UNIT_VOID;
            return i + 1;
        }
    }
    return 0;
}

static unit_t next_unit(const char *s, size_t avail)
{
    unit_t u = {UNIT_TEXT, 1, 0, 0};
    if (s[0] == '<') {
        u.len = tag_unit(s, avail, &u);
        if (u.len > 0)
            return u;
        u.kind = UNIT_TEXT;
        u.len = 1;
    } else if (s[0] == '&') {
        u.len = entity_len(s, avail);
        if (u.len == 0)
            u.len = 1;
    } else {
        u.len = utf8_len((const unsigned char *)s, avail);
    }
    return u;
}

static int stack_push(tag_stack_t *st, open_tag_t tag)
{
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 8;
        open_tag_t *p = realloc(st->tags, cap * sizeof(*p));
        if (p == NULL)
            return 0;
        st->tags = p;
        st->cap = cap;
    }
    st->tags[st->n++] = tag;
    return 1;
}

/* Pops up to and including the innermost open tag of that name; a closing
 * tag that matches nothing open is ignored. */
static void stack_close(tag_stack_t *st, const char *html, const char *name,
                        size_t name_len)
{
    for (size_t i = st->n; i > 0; i--) {
        const open_tag_t *t = &st->tags[i - 1];
        if (t->name_len == name_len &&
            strncmp(html + t->name_off, name, name_len) == 0) {
            st->n = i - 1;
            return;
        }
    }
}

/* Applies the tags of html[from, to) to st. */
static int stack_walk(tag_stack_t *st, const char *html, size_t from, size_t to)
{
    size_t p = from;
    while (p < to) {
        unit_t u = next_unit(html + p, to - p);
        if (u.kind == UNIT_OPEN) {
            open_tag_t tag = {p, u.len, p + u.name_off, u.name_len};
            if (!stack_push(st, tag))
                return 0;
        } else if (u.kind == UNIT_CLOSE) {
            stack_close(st, html, html + p + u.name_off, u.name_len);
        }
        p += u.len;
    }
    return 1;
}

/* Telegram counts UTF-16 code units: a code point above U+FFFF (4 bytes
 * of UTF-8, or a numeric entity such as &#128512;) counts 2. */
static size_t text_width(const char *s, size_t len)
{
    if (len == 4 && (unsigned char)s[0] >= 0xf0)
        return 2;
    if (len > 3 && s[0] == '&' && s[1] == '#') {
        int hex = s[2] == 'x' || s[2] == 'X';
        unsigned long cp = strtoul(s + 2 + hex, NULL, hex ? 16 : 10);
        return cp > 0xffff ? 2 : 1;
    }
    return 1;
}

/* The end of the chunk starting at start: after the last newline within
 * limit visible units, else after the last space, else after the last
 * character that fits; closing tags that follow go with the chunk. */
static size_t chunk_end(const char *html, size_t len, size_t start,
                        size_t limit)
{
    size_t vis = 0, p = start, after_nl = 0, after_sp = 0, split;
    while (p < len) {
        unit_t u = next_unit(html + p, len - p);
        size_t width = u.kind == UNIT_TEXT ? text_width(html + p, u.len) : 0;
        /* A chunk holds at least one character, even one wider than a
         * limit of 1, so that splitting always makes progress. */
        if (width > 0 && vis > 0 && vis + width > limit)
            break;
        vis += width;
        p += u.len;
        if (u.kind == UNIT_TEXT && html[p - 1] == '\n')
            after_nl = p;
        else if (u.kind == UNIT_TEXT && html[p - 1] == ' ')
            after_sp = p;
    }
    if (p >= len)
        return len;
    split = after_nl ? after_nl : after_sp ? after_sp : p;
    if (split == p) {
        /* Hard split: back up over tags so that opening tags begin the
         * next chunk instead of ending this one empty. */
        size_t q = start, last_text_end = start;
        while (q < p) {
            unit_t u = next_unit(html + q, len - q);
            q += u.len;
            if (u.kind == UNIT_TEXT)
                last_text_end = q;
        }
        split = last_text_end;
    }
    while (split < len) {
        unit_t u = next_unit(html + split, len - split);
        if (u.kind != UNIT_CLOSE)
            break;
        split += u.len;
    }
    return split;
}

static char *build_chunk(const char *html, size_t start, size_t end,
                         const tag_stack_t *open_at_start,
                         const tag_stack_t *open_at_end)
{
    ns_buf_t b;
    ns_buf_init(&b, TG_MAX_MESSAGE_BYTES);
    ns_err_t rc = NS_OK;
    for (size_t i = 0; i < open_at_start->n && rc == NS_OK; i++)
        rc = ns_buf_add(&b, html + open_at_start->tags[i].off,
                        open_at_start->tags[i].len);
    if (rc == NS_OK)
        rc = ns_buf_add(&b, html + start, end - start);
    for (size_t i = open_at_end->n; i > 0 && rc == NS_OK; i--) {
        const open_tag_t *t = &open_at_end->tags[i - 1];
        rc = ns_buf_addf(&b, "</%.*s>", (int)t->name_len, html + t->name_off);
    }
    if (rc != NS_OK) {
        ns_buf_free(&b);
        return NULL;
    }
    return ns_buf_take(&b);
}

static int stack_copy(tag_stack_t *dst, const tag_stack_t *src)
{
    dst->n = 0;
    for (size_t i = 0; i < src->n; i++)
        if (!stack_push(dst, src->tags[i]))
            return 0;
    return 1;
}

static int chunks_append(char ***chunks, size_t *n, size_t *cap, char *chunk)
{
    if (*n == *cap) {
        size_t new_cap = *cap ? *cap * 2 : 4;
        char **p = realloc(*chunks, new_cap * sizeof(*p));
        if (p == NULL)
            return 0;
        *chunks = p;
        *cap = new_cap;
    }
    (*chunks)[(*n)++] = chunk;
    return 1;
}

size_t ns_tg_split_html(const char *html, size_t limit, char ***chunks)
{
    *chunks = NULL;
    if (html == NULL || html[0] == '\0')
        return 0;
    if (limit == 0)
        limit = NS_TG_MAX_TEXT;
    size_t len = strlen(html), start = 0, n = 0, cap = 0;
    tag_stack_t at_start = {0}, at_end = {0};
    int ok = 1;
    while (ok && start < len) {
        size_t end = chunk_end(html, len, start, limit);
        ok = stack_copy(&at_end, &at_start) &&
             stack_walk(&at_end, html, start, end);
        /* The last chunk keeps whatever nesting the input had. */
        tag_stack_t none = {0};
        char *chunk = ok ? build_chunk(html, start, end, &at_start,
                                       end < len ? &at_end : &none)
                         : NULL;
        ok = chunk != NULL && chunks_append(chunks, &n, &cap, chunk);
        if (!ok)
            free(chunk);
        ok = ok && stack_copy(&at_start, &at_end);
        start = end;
    }
    free(at_start.tags);
    free(at_end.tags);
    if (!ok) {
        ns_tg_chunks_free(*chunks, n);
        *chunks = NULL;
        return 0;
    }
    return n;
}

size_t ns_tg_html_width(const char *html)
{
    size_t len = strlen(html), vis = 0;
    for (size_t p = 0; p < len;) {
        unit_t u = next_unit(html + p, len - p);
        if (u.kind == UNIT_TEXT)
            vis += text_width(html + p, u.len);
        p += u.len;
    }
    return vis;
}

size_t ns_tg_digest_fit(const size_t *widths, size_t n, size_t limit)
{
    size_t sep = strlen(NS_TG_DIGEST_SEP), total = 0, k = 0;
    for (; k < n; k++) {
        size_t next = total + (k > 0 ? sep : 0) + widths[k];
        if (k > 0 && next > limit)
            break;
        total = next;
    }
    return k;
}

char *ns_tg_digest_join(const char *const *html, size_t n)
{
    size_t sep = strlen(NS_TG_DIGEST_SEP), len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(html[i]) + (i > 0 ? sep : 0);
    char *out = malloc(len);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            memcpy(out + o, NS_TG_DIGEST_SEP, sep);
            o += sep;
        }
        size_t l = strlen(html[i]);
        memcpy(out + o, html[i], l);
        o += l;
    }
    out[o] = '\0';
    return out;
}

void ns_tg_chunks_free(char **chunks, size_t n)
{
    if (chunks == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(chunks[i]);
    free(chunks);
}

/* ---- Bot API ----------------------------------------------------------- */

static void mask_token(char *msg, const char *token)
{
    if (token == NULL || strlen(token) < 4)
        return;
    size_t tlen = strlen(token);
    char *hit = strstr(msg, token);
    while (hit != NULL) {
        memcpy(hit, "***", 3);
        memmove(hit + 3, hit + tlen, strlen(hit + tlen) + 1);
        hit = strstr(hit + 3, token);
    }
}

static char *method_url(const ns_telegram_settings_t *cfg, const char *method)
{
    const char *api =
        cfg->api_url && cfg->api_url[0] ? cfg->api_url : TG_DEFAULT_API_URL;
    size_t len = strlen(api);
    while (len > 0 && api[len - 1] == '/')
        len--;
    ns_buf_t b;
    ns_buf_init(&b, TG_MAX_MESSAGE_BYTES);
    if (ns_buf_addf(&b, "%.*s/bot%s/%s", (int)len, api, cfg->bot_token,
                    method) != NS_OK) {
        ns_buf_free(&b);
        return NULL;
    }
    return ns_buf_take(&b);
}

/* Judges a Bot API answer: {"ok":true,...} or {"ok":false,"error_code":..,
 * "description":..,"parameters":{"retry_after":..}}. */
static ns_err_t judge_answer(const ns_http_resp_t *resp, ns_error_t *err)
{
    cJSON *root = cJSON_ParseWithLength(resp->body, resp->body_len);
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(root, "ok");
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(root, "description");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "parameters");
    const cJSON *retry =
        cJSON_GetObjectItemCaseSensitive(params, "retry_after");
    ns_err_t code = ns_http_classify(resp->status);
    if (code == NS_OK && cJSON_IsTrue(ok)) {
        cJSON_Delete(root);
        return NS_OK;
    }
    if (code == NS_OK || !cJSON_IsObject(root) || !cJSON_IsBool(ok)) {
        /* A 200 that is not {"ok":true}, or an answer from something other
         * than the Bot API (a proxy's error page): worth another try unless
         * the status says otherwise. */
        if (code == NS_OK)
            code = NS_ERR_TRANSIENT;
        ns_error_set(err, code, "telegram %ld: malformed response",
                     resp->status);
    } else {
        ns_error_set(err, code, "telegram %ld: %s", resp->status,
                     cJSON_IsString(desc) ? desc->valuestring
                                          : "(no description)");
    }
    if (err != NULL) {
        err->http_status = resp->status;
        err->retry_after_s = -1;
        if (code == NS_ERR_TRANSIENT)
            err->retry_after_s = cJSON_IsNumber(retry) ? retry->valuedouble
                                                       : resp->retry_after_s;
    }
    cJSON_Delete(root);
    return code;
}

static ns_err_t tg_call(const ns_telegram_settings_t *cfg, const char *method,
                        ns_http_req_t *req, ns_error_t *err)
{
    char *url = method_url(cfg, method);
    if (url == NULL)
        return ns_error_set(err, NS_ERR_NOMEM, "telegram: out of memory");
    int timeout_s = cfg->timeout_s > 0 ? cfg->timeout_s : TG_DEFAULT_TIMEOUT_S;
    req->url = url;
    req->method = "POST";
    req->timeout_ms = (long)timeout_s * 1000;
    ns_http_resp_t resp;
    ns_err_t code = ns_http_do(req, &resp, err);
    if (code == NS_OK)
        code = judge_answer(&resp, err);
    ns_http_resp_free(&resp);
    free(url);
    if (code != NS_OK && err != NULL)
        mask_token(err->msg, cfg->bot_token);
    return code;
}

static int is_integer_id(const char *s)
{
    const char *p = s[0] == '-' ? s + 1 : s;
    size_t n = strspn(p, "0123456789");
    return n > 0 && n <= 18 && p[n] == '\0' && !(p[0] == '0' && n > 1);
}

static ns_err_t check_args(const ns_telegram_settings_t *cfg,
                           const char *chat_id, ns_error_t *err)
{
    ns_error_clear(err);
    if (cfg == NULL || cfg->bot_token == NULL || cfg->bot_token[0] == '\0')
        return ns_error_set(err, NS_ERR_INVALID, "telegram: no bot token");
    if (chat_id == NULL || chat_id[0] == '\0')
        return ns_error_set(err, NS_ERR_INVALID, "telegram: no chat_id");
    return NS_OK;
}

ns_err_t ns_tg_send_message(const ns_telegram_settings_t *cfg,
                            const char *chat_id, const char *html,
                            ns_error_t *err)
{
    ns_err_t code = check_args(cfg, chat_id, err);
    if (code != NS_OK)
        return code;
    cJSON *root = cJSON_CreateObject();
    cJSON *preview = cJSON_CreateObject();
    cJSON *id = is_integer_id(chat_id) ? cJSON_CreateRaw(chat_id)
                                       : cJSON_CreateString(chat_id);
    cJSON_AddItemToObject(root, "chat_id", id);
    cJSON_AddStringToObject(root, "text", html ? html : "");
    cJSON_AddStringToObject(root, "parse_mode", "HTML");
    cJSON_AddBoolToObject(preview, "is_disabled", 1);
    cJSON_AddItemToObject(root, "link_preview_options", preview);
    char *body = root && preview && id ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (body == NULL)
        return ns_error_set(err, NS_ERR_NOMEM, "telegram: out of memory");

    const char *headers[] = {"Content-Type: application/json", NULL};
    ns_http_req_t req = {
        .headers = headers,
        .body = body,
        .body_len = strlen(body),
    };
    code = tg_call(cfg, "sendMessage", &req, err);
    free(body);
    return code;
}

ns_err_t ns_tg_send_document(const ns_telegram_settings_t *cfg,
                             const char *chat_id, const char *filename,
                             const void *data, size_t len,
                             const char *caption_html, ns_error_t *err)
{
    ns_err_t code = check_args(cfg, chat_id, err);
    if (code != NS_OK)
        return code;
    if (filename == NULL || filename[0] == '\0' || (data == NULL && len > 0))
        return ns_error_set(err, NS_ERR_INVALID,
                            "telegram: document without a file name");
    ns_http_part_t parts[4] = {
        {.name = "chat_id", .data = chat_id, .len = strlen(chat_id)},
        {.name = "parse_mode", .data = "HTML", .len = 4},
        {.name = "document",
         .data = data,
         .len = len,
         .filename = filename,
         .mime_type = NULL},
    };
    size_t n_parts = 3;
    if (caption_html != NULL) {
        parts[3] = (ns_http_part_t){.name = "caption",
                                    .data = caption_html,
                                    .len = strlen(caption_html)};
        n_parts = 4;
    }
    ns_http_req_t req = {.parts = parts, .n_parts = n_parts};
    return tg_call(cfg, "sendDocument", &req, err);
}

ns_err_t ns_tg_get_file(const ns_telegram_settings_t *cfg, const char *file_id,
                        size_t max_bytes, char **data, size_t *len,
                        ns_error_t *err)
{
    *data = NULL;
    *len = 0;
    ns_err_t code = check_args(cfg, "-", err);
    if (code != NS_OK)
        return code;
    if (file_id == NULL || file_id[0] == '\0')
        return ns_error_set(err, NS_ERR_PERMANENT, "telegram: no file_id");
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "file_id", file_id);
    char *json = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    char *url = method_url(cfg, "getFile");
    const char *headers[] = {"Content-Type: application/json", NULL};
    int timeout_s = cfg->timeout_s > 0 ? cfg->timeout_s : TG_DEFAULT_TIMEOUT_S;
    ns_http_req_t req = {.method = "POST",
                         .url = url,
                         .headers = headers,
                         .body = json,
                         .body_len = json ? strlen(json) : 0,
                         .timeout_ms = (long)timeout_s * 1000};
    ns_http_resp_t resp = {0};
    code = json && url ? ns_http_do(&req, &resp, err)
                       : ns_error_set(err, NS_ERR_NOMEM, "out of memory");
    if (code == NS_OK)
        code = judge_answer(&resp, err);
    char *path = NULL;
    if (code == NS_OK) {
        cJSON *root = cJSON_ParseWithLength(resp.body, resp.body_len);
        const cJSON *fp = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(root, "result"), "file_path");
        /* A path that could leave the file URL is not followed. */
        if (cJSON_IsString(fp) && fp->valuestring[0] != '\0' &&
            strstr(fp->valuestring, "..") == NULL &&
            strpbrk(fp->valuestring, "?#\\ \r\n") == NULL)
            path = strdup(fp->valuestring);
        else
            code = ns_error_set(err, NS_ERR_PERMANENT,
                                "telegram getFile: no usable file_path");
        cJSON_Delete(root);
    }
    ns_http_resp_free(&resp);
    free(url);
    free(json);
    if (code == NS_OK) {
        /* The content: <api>/file/bot<token>/<file_path>. */
        const char *api =
            cfg->api_url && cfg->api_url[0] ? cfg->api_url : TG_DEFAULT_API_URL;
        size_t alen = strlen(api);
        while (alen > 0 && api[alen - 1] == '/')
            alen--;
        ns_buf_t b;
        ns_buf_init(&b, TG_MAX_MESSAGE_BYTES);
        code = ns_buf_addf(&b, "%.*s/file/bot%s/%s", (int)alen, api,
                           cfg->bot_token, path);
        char *furl = ns_buf_take(&b);
        ns_http_req_t get = {.method = "GET",
                             .url = furl,
                             .timeout_ms = (long)timeout_s * 4000,
                             .max_response = max_bytes};
        code = code == NS_OK && furl
                   ? ns_http_do(&get, &resp, err)
                   : ns_error_set(err, NS_ERR_NOMEM, "out of memory");
        if (code == NS_OK && resp.status != 200) {
            code = ns_http_classify(resp.status);
            if (code == NS_OK)
                code = NS_ERR_TRANSIENT;
            ns_error_set(err, code, "telegram file download: HTTP %ld",
                         resp.status);
        }
        if (code == NS_OK) {
            *data = resp.body;
            *len = resp.body_len;
            resp.body = NULL;
        }
        ns_http_resp_free(&resp);
        free(furl);
    }
    free(path);
    if (code != NS_OK && err != NULL)
        mask_token(err->msg, cfg->bot_token);
    return code;
}
