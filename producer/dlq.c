/* `nightshift dlq`: list, show and replay dead letters. A replay puts the
 * original bytes back on the job's topic; the worker's status check makes a
 * message whose item is no longer pending a no-op, so replaying twice never
 * processes an item twice. */
#include "dlq.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "ns/buf.h"
#include "ns/clock.h"
#include "ns/envelope.h"
#include "ns/kafka.h"
#include "ns/pg.h"
#include "ns/utf8.h"

#define HEXDUMP_MAX 512
#define UNZSTD_MAX (16u << 20)
#define SQL_MAX (64u << 20)
#define DELIVERY_TIMEOUT_MS 60000

/* to_char format of every timestamp shown: RFC 3339 UTC. */
#define UTC " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* h is the same message as d: the same item, or for messages that never
 * named an existing item, the same bytes from the same topic. */
#define SAME_MESSAGE                                                           \
    "(CASE WHEN d.run_id IS NOT NULL AND d.item_key IS NOT NULL "              \
    "THEN h.run_id = d.run_id AND h.item_key = d.item_key "                    \
    "ELSE h.run_id IS NULL AND h.topic = d.topic AND "                         \
    "h.msg_key IS NOT DISTINCT FROM d.msg_key AND "                            \
    "h.payload IS NOT DISTINCT FROM d.payload END)"

#define ROW_COLUMNS                                                            \
    "SELECT d.id, to_char(d.created_at" UTC ", d.job, d.run_id, "              \
    "d.item_key, d.msg_key, d.attempts, d.reason, d.replay_count, "            \
    "to_char(d.replayed_at" UTC ", d.topic, d.partition, d.\"offset\", "       \
    "d.handler"
/* Columns of ROW_COLUMNS, then those DETAIL_COLUMNS adds (show, replay). */
enum {
    C_ID,
    C_TIME,
    C_JOB,
    C_RUN,
    C_ITEM,
    C_KEY,
    C_ATTEMPTS,
    C_REASON,
    C_REPLAYS,
    C_REPLAYED_AT,
    C_TOPIC,
    C_PARTITION,
    C_OFFSET,
    C_HANDLER,
    C_FIRST,
    C_PAYLOAD,
    C_SIZE,
    C_BASE64,
    C_ITEM_STATUS,
    C_RUN_STATUS,
    C_SUPERSEDED_BY
};
#define DETAIL_COLUMNS                                                         \
    ", to_char(d.first_failed_at" UTC ", d.payload, octet_length(d.payload), " \
    "translate(encode(d.payload, 'base64'), E'\\n', ''), i.status, "           \
    "r.status, CASE WHEN d.replay_count > 0 THEN (SELECT min(h.id) FROM "      \
    "dead_letters h WHERE h.created_at >= d.created_at AND h.id > d.id "       \
    "AND " SAME_MESSAGE ") END "                                               \
    "FROM dead_letters d LEFT JOIN items i ON i.run_id = d.run_id AND "        \
    "i.item_key = d.item_key LEFT JOIN runs r ON r.run_id = d.run_id"

/* ---- --since ----------------------------------------------------------- */

/* s starts with pattern: '9' is any digit, anything else itself. */
static int matches(const char *s, const char *pattern)
{
    for (; *pattern != '\0'; pattern++, s++) {
        if (*pattern == '9' ? !isdigit((unsigned char)*s) : *s != *pattern)
            return 0;
    }
    return 1;
}

static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

static int parse_age(const char *s, int64_t now_ms, int64_t *epoch_ms)
{
    static const struct {
        char unit;
        int64_t ms;
    } units[] = {{'s', 1000},
                 {'m', 60000},
                 {'h', 3600000},
                 {'d', 86400000},
                 {'w', 604800000}};
    char *end = NULL;
    if (!isdigit((unsigned char)s[0]))
        return 0;
    long long n = strtoll(s, &end, 10);
    if (end[0] == '\0' || end[1] != '\0' || n > 100LL * 366 * 86400)
        return 0;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (units[i].unit == end[0]) {
            *epoch_ms = now_ms - (int64_t)n * units[i].ms;
            return 1;
        }
    return 0;
}

/* "YYYY-MM-DD[(T| )HH:MM[:SS[.fff]]][Z|±HH[:]MM]", UTC without a zone. */
static int parse_iso(const char *s, int64_t *epoch_ms)
{
    if (!matches(s, "9999-99-99"))
        return 0;
    struct tm tm = {.tm_year = digits(s, 4) - 1900,
                    .tm_mon = digits(s + 5, 2) - 1,
                    .tm_mday = digits(s + 8, 2)};
    const char *p = s + 10;
    int ms = 0, offset_s = 0;
    if ((*p == 'T' || *p == 't' || *p == ' ') && matches(p + 1, "99:99")) {
        tm.tm_hour = digits(p + 1, 2);
        tm.tm_min = digits(p + 4, 2);
        p += 6;
        if (matches(p, ":99")) {
            tm.tm_sec = digits(p + 1, 2);
            p += 3;
        }
        if (*p == '.' && isdigit((unsigned char)p[1])) {
            for (int scale = 100; isdigit((unsigned char)*++p); scale /= 10)
                ms += (*p - '0') * scale;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p == '-' ? -1 : 1;
            if (matches(p + 1, "99:99"))
                offset_s = digits(p + 1, 2) * 3600 + digits(p + 4, 2) * 60;
            else if (matches(p + 1, "9999"))
                offset_s = digits(p + 1, 2) * 3600 + digits(p + 3, 2) * 60;
            else
                return 0;
            offset_s *= sign;
            p += p[3] == ':' ? 6 : 5;
        }
    }
    if (*p != '\0' || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 59)
        return 0;
    struct tm want = tm;
    time_t t = timegm(&tm);
    /* timegm normalises 2026-02-30 to March 2: reject what moved. */
    if (tm.tm_year != want.tm_year || tm.tm_mon != want.tm_mon ||
        tm.tm_mday != want.tm_mday)
        return 0;
    *epoch_ms = ((int64_t)t - offset_s) * 1000 + ms;
    return 1;
}

ns_err_t ns_dlq_parse_time(const char *text, int64_t now_ms, int64_t *epoch_ms,
                           ns_error_t *err)
{
    if (text != NULL &&
        (parse_age(text, now_ms, epoch_ms) || parse_iso(text, epoch_ms)))
        return NS_OK;
    return ns_error_set(err, NS_ERR_INVALID,
                        "--since \"%s\": expected a date or time (2026-11-23, "
                        "2026-11-23T10:00:00Z) or an age (30m, 1h, 2d)",
                        text ? text : "");
}

/* ---- shared ------------------------------------------------------------- */

static int all_digits(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > 18)
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

typedef struct query {
    ns_buf_t sql;
    const char *params[5];
    int n;
    char topic[NS_TOPIC_MAX];
    char since[24];
} query_t;

/* Adds a parameter; @returns its number ($n). */
static int add_param(query_t *q, const char *value)
{
    q->params[q->n++] = value;
    return q->n;
}

/* Appends the filter's WHERE clause. @returns 0, or 2 (usage) with a
 * message on stderr. */
static int add_where(query_t *q, const ns_dlq_filter_t *f, const char *verb)
{
    ns_buf_adds(&q->sql, " WHERE true");
    if (f->job != NULL) {
        /* Messages too broken to name their job still name their topic. */
        ns_topic_items(f->job, q->topic);
        int job = add_param(q, f->job);
        int topic = add_param(q, q->topic);
        ns_buf_addf(&q->sql,
                    " AND (d.job = $%d OR (d.job IS NULL AND d.topic = $%d))",
                    job, topic);
    }
    if (f->item != NULL) {
        int item = add_param(q, f->item);
        ns_buf_addf(&q->sql,
                    " AND (d.item_key = $%d OR (d.item_key IS NULL AND "
                    "d.msg_key = convert_to($%d, 'UTF8')))",
                    item, item);
    }
    if (f->id != NULL) {
        if (!all_digits(f->id)) {
            fprintf(stderr, "nightshift dlq %s: --id \"%s\" is not a number\n",
                    verb, f->id);
            return 2;
        }
        ns_buf_addf(&q->sql, " AND d.id = $%d::bigint", add_param(q, f->id));
    }
    if (f->since != NULL) {
        ns_error_t err;
        int64_t since_ms = 0;
        if (ns_dlq_parse_time(f->since, ns_clock_now_ms(), &since_ms, &err) !=
            NS_OK) {
            fprintf(stderr, "nightshift dlq %s: %s\n", verb, err.msg);
            return 2;
        }
        ns_pg_i64str(since_ms, q->since);
        ns_buf_addf(&q->sql,
                    " AND d.created_at >= to_timestamp($%d::bigint / 1000.0)",
                    add_param(q, q->since));
    }
    return 0;
}

static PGresult *run_query(PGconn *pg, query_t *q, const char *verb)
{
    ns_error_t err;
    ns_error_clear(&err);
    PGresult *r = ns_pg_query(pg, q->sql.data, q->n, q->params, &err);
    if (r == NULL)
        fprintf(stderr, "nightshift dlq %s: %s\n", verb, err.msg);
    return r;
}

static PGconn *connect_pg(const ns_config_t *cfg, const char *verb)
{
    ns_error_t err;
    ns_error_clear(&err);
    PGconn *pg = ns_pg_connect(cfg->pg_dsn, &err);
    if (pg == NULL)
        fprintf(stderr, "nightshift dlq %s: %s\n", verb, err.msg);
    return pg;
}

static const char *value_or_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static unsigned char *unescape(const PGresult *r, int row, int col, size_t *len)
{
    *len = 0;
    if (PQgetisnull(r, row, col))
        return NULL;
    return PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), len);
}

/* The message key as text: itself when it is UTF-8, else "0x" + hex. */
static char *msg_key_text(const PGresult *r, int row)
{
    size_t len = 0;
    unsigned char *raw = unescape(r, row, C_KEY, &len);
    if (raw == NULL)
        return NULL;
    ns_buf_t b;
    ns_buf_init(&b, len * 2 + 8);
    if (ns_utf8_invalid_at((const char *)raw, len) < 0) {
        ns_buf_add(&b, raw, len);
    } else {
        ns_buf_adds(&b, "0x");
        for (size_t i = 0; i < len; i++)
            ns_buf_addf(&b, "%02x", raw[i]);
    }
    PQfreemem(raw);
    return ns_buf_take(&b);
}

static void add_str(cJSON *o, const char *name, const char *value)
{
    if (value != NULL)
        cJSON_AddStringToObject(o, name, value);
    else
        cJSON_AddNullToObject(o, name);
}

static void add_num(cJSON *o, const char *name, const PGresult *r, int row,
                    int col)
{
    if (PQgetisnull(r, row, col))
        cJSON_AddNullToObject(o, name);
    else
        cJSON_AddNumberToObject(o, name, (double)ns_pg_int64(r, row, col));
}

static cJSON *row_json(const PGresult *r, int row)
{
    cJSON *o = cJSON_CreateObject();
    add_num(o, "id", r, row, C_ID);
    add_str(o, "time", PQgetvalue(r, row, C_TIME));
    add_str(o, "job", value_or_null(r, row, C_JOB));
    add_num(o, "run_id", r, row, C_RUN);
    add_str(o, "item_key", value_or_null(r, row, C_ITEM));
    char *key = msg_key_text(r, row);
    add_str(o, "msg_key", key);
    free(key);
    add_num(o, "attempts", r, row, C_ATTEMPTS);
    add_str(o, "reason", PQgetvalue(r, row, C_REASON));
    add_str(o, "handler", value_or_null(r, row, C_HANDLER));
    add_str(o, "topic", PQgetvalue(r, row, C_TOPIC));
    add_num(o, "partition", r, row, C_PARTITION);
    add_num(o, "offset", r, row, C_OFFSET);
    add_num(o, "replay_count", r, row, C_REPLAYS);
    add_str(o, "replayed_at", value_or_null(r, row, C_REPLAYED_AT));
    return o;
}

/* Prints s in a column `width` code points wide: control characters become
 * spaces, longer text is cut with an ellipsis. */
static void put_cell(FILE *out, const char *s, int width, int pad)
{
    if (s == NULL || *s == '\0')
        s = "-";
    int total = 0;
    for (const char *p = s; *p; p++)
        total += ((unsigned char)*p & 0xC0) != 0x80;
    int keep = total > width ? width - 1 : total;
    int chars = 0;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c & 0xC0) != 0x80) {
            if (chars == keep)
                break;
            chars++;
        }
        fputc(c < 0x20 ? ' ' : c, out);
    }
    if (total > width) {
        fputs("\xe2\x80\xa6", out);
        chars++;
    }
    for (; pad && chars <= width; chars++)
        fputc(' ', out);
}

/* The item key, else the message key (malloc'd; NULL if neither). */
static char *key_text(const PGresult *r, int row)
{
    if (!PQgetisnull(r, row, C_ITEM))
        return strdup(PQgetvalue(r, row, C_ITEM));
    return msg_key_text(r, row);
}

/* ---- list --------------------------------------------------------------- */

static int64_t count_matching(PGconn *pg, const ns_dlq_filter_t *f)
{
    query_t q = {.n = 0};
    ns_buf_init(&q.sql, SQL_MAX);
    ns_buf_adds(&q.sql, "SELECT count(*) FROM dead_letters d");
    int64_t n = -1;
    if (add_where(&q, f, "list") == 0) {
        PGresult *r = run_query(pg, &q, "list");
        if (r != NULL)
            n = ns_pg_int64(r, 0, 0);
        PQclear(r);
    }
    ns_buf_free(&q.sql);
    return n;
}

int ns_dlq_list(const ns_config_t *cfg, const ns_dlq_filter_t *f, bool json,
                FILE *out)
{
    query_t q = {.n = 0};
    ns_buf_init(&q.sql, SQL_MAX);
    ns_buf_adds(&q.sql, ROW_COLUMNS " FROM dead_letters d");
    int rc = add_where(&q, f, "list");
    if (rc != 0) {
        ns_buf_free(&q.sql);
        return rc;
    }
    ns_buf_adds(&q.sql, " ORDER BY d.id DESC");
    if (f->limit > 0)
        ns_buf_addf(&q.sql, " LIMIT %d", f->limit);
    PGconn *pg = connect_pg(cfg, "list");
    PGresult *r = pg ? run_query(pg, &q, "list") : NULL;
    ns_buf_free(&q.sql);
    if (r == NULL) {
        PQfinish(pg);
        return 1;
    }
    int rows = PQntuples(r);
    int64_t total = rows;
    if (f->limit > 0 && rows == f->limit)
        total = count_matching(pg, f);
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(root, "dead_letters");
        for (int i = 0; i < rows; i++)
            cJSON_AddItemToArray(arr, row_json(r, i));
        cJSON_AddNumberToObject(root, "total", (double)total);
        char *text = cJSON_Print(root);
        fprintf(out, "%s\n", text ? text : "{}");
        free(text);
        cJSON_Delete(root);
    } else if (rows == 0) {
        fprintf(out, "no dead letters\n");
    } else {
        fprintf(out, "%-7s %-20s %-24s %-7s %-16s %4s %7s  %s\n", "ID", "TIME",
                "JOB", "RUN", "ITEM", "ATT", "REPLAYS", "REASON");
        for (int i = 0; i < rows; i++) {
            fprintf(out, "%-7s %-20s ", PQgetvalue(r, i, C_ID),
                    PQgetvalue(r, i, C_TIME));
            put_cell(out, value_or_null(r, i, C_JOB), 24, 1);
            put_cell(out, value_or_null(r, i, C_RUN), 7, 1);
            char *key = key_text(r, i);
            put_cell(out, key, 16, 1);
            free(key);
            fprintf(out, "%4s %7s  ", PQgetvalue(r, i, C_ATTEMPTS),
                    PQgetvalue(r, i, C_REPLAYS));
            put_cell(out, PQgetvalue(r, i, C_REASON), 60, 0);
            fputc('\n', out);
        }
        if (total > rows)
            fprintf(out, "(%lld older not shown; --limit 0 shows all)\n",
                    (long long)(total - rows));
    }
    PQclear(r);
    PQfinish(pg);
    return 0;
}

/* ---- show --------------------------------------------------------------- */

static int is_zstd(const unsigned char *p, size_t len)
{
    return len >= 4 && p[0] == 0x28 && p[1] == 0xB5 && p[2] == 0x2F &&
           p[3] == 0xFD;
}

/* Undoes zstd (the frames need not state their size), at most UNZSTD_MAX
 * bytes. @returns malloc'd NUL-terminated bytes, or NULL. */
static char *unzstd(const unsigned char *p, size_t len, size_t *out_len)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    ZSTD_inBuffer in = {p, len, 0};
    unsigned char chunk[16384];
    ns_buf_t b;
    ns_buf_init(&b, UNZSTD_MAX);
    bool ok = dctx != NULL;
    while (ok) {
        ZSTD_outBuffer o = {chunk, sizeof(chunk), 0};
        size_t left = ZSTD_decompressStream(dctx, &o, &in);
        ok = !ZSTD_isError(left) && ns_buf_add(&b, chunk, o.pos) == NS_OK;
        if (!ok || (left == 0 && in.pos == in.size))
            break;
        /* No progress with all input read: the frame is truncated. */
        ok = o.pos > 0 || in.pos < in.size;
    }
    ZSTD_freeDCtx(dctx);
    *out_len = b.len;
    if (!ok) {
        ns_buf_free(&b);
        return NULL;
    }
    return ns_buf_take(&b);
}

/* The bytes as a JSON document if they are UTF-8 JSON (after undoing zstd
 * when they start with its magic number), else NULL. */
static cJSON *payload_json(const unsigned char *p, size_t len, bool *zstd)
{
    *zstd = is_zstd(p, len);
    size_t text_len = len;
    char *text = *zstd ? unzstd(p, len, &text_len) : malloc(len + 1);
    if (text == NULL)
        return NULL;
    if (!*zstd) {
        memcpy(text, p, len);
        text[len] = '\0';
    }
    cJSON *doc = NULL;
    if (ns_utf8_invalid_at(text, text_len) < 0)
        doc = cJSON_ParseWithOpts(text, NULL, 1);
    free(text);
    return doc;
}

static void hexdump(FILE *out, const unsigned char *p, size_t len)
{
    size_t n = len < HEXDUMP_MAX ? len : HEXDUMP_MAX;
    for (size_t off = 0; off < n; off += 16) {
        fprintf(out, "  %08zx", off);
        for (size_t i = off; i < off + 16; i++) {
            if (i < n)
                fprintf(out, "%s%02x", i % 8 == 0 ? "  " : " ", p[i]);
            else
                fprintf(out, "%s  ", i % 8 == 0 ? "  " : " ");
        }
        fputs("  |", out);
        for (size_t i = off; i < off + 16 && i < n; i++)
            fputc(p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '.', out);
        fputs("|\n", out);
    }
    if (len > n)
        fprintf(out, "  ... %zu more bytes\n", len - n);
}

static void print_field(FILE *out, const char *name, const char *value)
{
    fprintf(out, "  %-15s %s\n", name, value && *value ? value : "-");
}

static void print_letter(FILE *out, const PGresult *r, const cJSON *doc,
                         bool zstd, const PGresult *history)
{
    char line[512];
    fprintf(out, "dead letter %s\n", PQgetvalue(r, 0, C_ID));
    print_field(out, "reason", PQgetvalue(r, 0, C_REASON));
    print_field(out, "job", value_or_null(r, 0, C_JOB));
    print_field(out, "handler", value_or_null(r, 0, C_HANDLER));
    print_field(out, "run", value_or_null(r, 0, C_RUN));
    print_field(out, "item", value_or_null(r, 0, C_ITEM));
    char *key = msg_key_text(r, 0);
    print_field(out, "message key", key);
    free(key);
    print_field(out, "attempts", PQgetvalue(r, 0, C_ATTEMPTS));
    print_field(out, "first failure", value_or_null(r, 0, C_FIRST));
    print_field(out, "last failure", PQgetvalue(r, 0, C_TIME));
    snprintf(line, sizeof(line), "%s partition %s offset %s",
             PQgetvalue(r, 0, C_TOPIC), PQgetvalue(r, 0, C_PARTITION),
             PQgetvalue(r, 0, C_OFFSET));
    print_field(out, "origin", line);
    const char *item = value_or_null(r, 0, C_ITEM_STATUS);
    const char *run = value_or_null(r, 0, C_RUN_STATUS);
    snprintf(line, sizeof(line), "item %s, run %s", item ? item : "unknown",
             run ? run : "unknown");
    print_field(out, "current state", line);
    const char *last = value_or_null(r, 0, C_REPLAYED_AT);
    snprintf(line, sizeof(line), "%s%s%s", PQgetvalue(r, 0, C_REPLAYS),
             last ? ", last at " : "", last ? last : "");
    print_field(out, "replays", line);
    size_t len = 0;
    unsigned char *payload = unescape(r, 0, C_PAYLOAD, &len);
    if (doc != NULL) {
        char *text = cJSON_Print(doc);
        fprintf(out, "payload (%s, %zu bytes):\n%s\n", zstd ? "zstd" : "json",
                len, text ? text : "");
        free(text);
    } else {
        fprintf(out, "payload (not JSON, %zu bytes%s):\n", len,
                len > HEXDUMP_MAX ? ", first 512 shown" : "");
        hexdump(out, payload ? payload : (const unsigned char *)"", len);
    }
    PQfreemem(payload);
    int n = history ? PQntuples(history) : 0;
    if (n > 1) {
        fprintf(out, "history of this message:\n");
        for (int i = 0; i < n; i++) {
            fprintf(out, "  %-7s %s  replays %-3s ", PQgetvalue(history, i, 0),
                    PQgetvalue(history, i, 1), PQgetvalue(history, i, 3));
            put_cell(out, PQgetvalue(history, i, 2), 60, 0);
            fputs(strcmp(PQgetvalue(history, i, 0), PQgetvalue(r, 0, C_ID))
                      ? "\n"
                      : "  (this one)\n",
                  out);
        }
    }
}

static cJSON *letter_json(const PGresult *r, cJSON *doc, bool zstd,
                          const PGresult *history)
{
    cJSON *o = row_json(r, 0);
    add_str(o, "first_failed_at", value_or_null(r, 0, C_FIRST));
    add_str(o, "item_status", value_or_null(r, 0, C_ITEM_STATUS));
    add_str(o, "run_status", value_or_null(r, 0, C_RUN_STATUS));
    add_num(o, "payload_size", r, 0, C_SIZE);
    if (doc != NULL) {
        cJSON_AddStringToObject(o, "payload_encoding", zstd ? "zstd" : "json");
        cJSON_AddItemToObject(o, "payload", doc);
    } else {
        add_str(o, "payload_base64", value_or_null(r, 0, C_BASE64));
    }
    cJSON *arr = cJSON_AddArrayToObject(o, "history");
    for (int i = 0; history != NULL && i < PQntuples(history); i++) {
        cJSON *h = cJSON_CreateObject();
        add_num(h, "id", history, i, 0);
        add_str(h, "time", PQgetvalue(history, i, 1));
        add_str(h, "reason", PQgetvalue(history, i, 2));
        add_num(h, "replay_count", history, i, 3);
        add_str(h, "replayed_at", value_or_null(history, i, 4));
        cJSON_AddItemToArray(arr, h);
    }
    return o;
}

int ns_dlq_show(const ns_config_t *cfg, const char *id, bool json, FILE *out)
{
    if (!all_digits(id)) {
        fprintf(stderr, "nightshift dlq show: \"%s\" is not a dead letter id\n",
                id ? id : "");
        return 2;
    }
    PGconn *pg = connect_pg(cfg, "show");
    if (pg == NULL)
        return 1;
    const char *params[] = {id};
    ns_error_t err;
    ns_error_clear(&err);
    PGresult *r =
        ns_pg_query(pg, ROW_COLUMNS DETAIL_COLUMNS " WHERE d.id = $1::bigint",
                    1, params, &err);
    if (r == NULL || PQntuples(r) == 0) {
        if (r == NULL)
            fprintf(stderr, "nightshift dlq show: %s\n", err.msg);
        else
            fprintf(stderr, "nightshift dlq show: no dead letter %s\n", id);
        PQclear(r);
        PQfinish(pg);
        return 1;
    }
    PGresult *history = ns_pg_query(
        pg,
        "SELECT h.id, to_char(h.created_at" UTC ", h.reason, "
        "h.replay_count, to_char(h.replayed_at" UTC " FROM dead_letters d "
        "JOIN dead_letters h ON " SAME_MESSAGE " WHERE d.id = $1::bigint "
        "ORDER BY h.id LIMIT 100",
        1, params, &err);
    size_t len = 0;
    unsigned char *payload = unescape(r, 0, C_PAYLOAD, &len);
    bool zstd = false;
    cJSON *doc = payload ? payload_json(payload, len, &zstd) : NULL;
    PQfreemem(payload);
    if (json) {
        cJSON *o = letter_json(r, doc, zstd, history);
        char *text = cJSON_Print(o);
        fprintf(out, "%s\n", text ? text : "{}");
        free(text);
        cJSON_Delete(o);
    } else {
        print_letter(out, r, doc, zstd, history);
        cJSON_Delete(doc);
    }
    PQclear(history);
    PQclear(r);
    PQfinish(pg);
    return 0;
}

/* ---- replay ------------------------------------------------------------- */

typedef enum action {
    REPLAY,
    SKIP_DONE,       /* its item succeeded meanwhile */
    SKIP_SUPERSEDED, /* replayed before and dead-lettered again since */
    SKIP_CANCELLED,  /* its run was cancelled or skipped */
} action_t;

static const char *const skip_reasons[] = {
    [SKIP_DONE] = "already done",
    [SKIP_SUPERSEDED] = "superseded",
    [SKIP_CANCELLED] = "run cancelled",
};

typedef struct letter {
    int row;
    action_t action;
    bool reopen_item; /* its item is failed: back to pending */
    bool reopen_run;  /* its run is finished: back to running */
    char topic[NS_TOPIC_MAX];
    unsigned char *key, *payload;
    size_t key_len, len;
    int delivery; /* 0 waiting, 1 delivered, -1 failed */
    rd_kafka_resp_err_t err;
} letter_t;

typedef struct tally {
    int replayed, failed, items, runs, skipped[SKIP_CANCELLED + 1];
    bool aborted; /* nothing was changed or produced */
} tally_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
    letter_t *l = m->_private;
    if (l == NULL)
        return;
    l->err = m->err;
    l->delivery = m->err ? -1 : 1;
}

static int is_finished(const char *run_status)
{
    return run_status != NULL && (strcmp(run_status, "succeeded") == 0 ||
                                  strcmp(run_status, "failed") == 0 ||
                                  strcmp(run_status, "finalizing") == 0);
}

static void plan(const ns_config_t *cfg, const PGresult *r, bool by_id,
                 letter_t *l)
{
    int row = l->row;
    const char *item = value_or_null(r, row, C_ITEM_STATUS);
    const char *run = value_or_null(r, row, C_RUN_STATUS);
    const char *job = value_or_null(r, row, C_JOB);
    if (item != NULL && strcmp(item, "done") == 0)
        l->action = SKIP_DONE;
    else if (!by_id && !PQgetisnull(r, row, C_SUPERSEDED_BY))
        l->action = SKIP_SUPERSEDED;
    else if (item != NULL && run != NULL &&
             (strcmp(run, "cancelled") == 0 || strcmp(run, "skipped") == 0))
        l->action = SKIP_CANCELLED;
    else
        l->action = REPLAY;
    l->reopen_item = l->action == REPLAY && item && strcmp(item, "failed") == 0;
    l->reopen_run = l->action == REPLAY && item != NULL && is_finished(run);
    /* A job this config does not know has no topic of ours: go back to
     * where the message came from. */
    if (job != NULL && ns_config_job(cfg, job) != NULL)
        ns_topic_items(job, l->topic);
    else
        snprintf(l->topic, sizeof(l->topic), "%s", PQgetvalue(r, row, C_TOPIC));
}

/* One line per selected dead letter: what was (or would be) done. */
static void print_line(FILE *out, const PGresult *r, const letter_t *l,
                       bool dry_run)
{
    if (l->action == REPLAY && !dry_run && l->delivery != 1)
        return; /* reported on stderr */
    const char *verb = l->action == REPLAY
                           ? (dry_run ? "would replay" : "replayed")
                           : (dry_run ? "would skip" : "skipped");
    fprintf(out, "%s #%s", verb, PQgetvalue(r, l->row, C_ID));
    if (!PQgetisnull(r, l->row, C_RUN))
        fprintf(out, " run %s", PQgetvalue(r, l->row, C_RUN));
    char *key = key_text(r, l->row);
    fprintf(out, " item %s", key ? key : "-");
    free(key);
    if (l->action == SKIP_SUPERSEDED)
        fprintf(out, ": superseded by #%s\n",
                PQgetvalue(r, l->row, C_SUPERSEDED_BY));
    else if (l->action != REPLAY)
        fprintf(out, ": %s\n", skip_reasons[l->action]);
    else
        fprintf(out, " -> %s%s\n", l->topic,
                l->reopen_item && l->reopen_run ? " (item and run reopened)"
                : l->reopen_item                ? " (item reopened)"
                : l->reopen_run                 ? " (run reopened)"
                                                : "");
}

/* Items back to pending and their finished runs back to running, in one
 * transaction, before anything is produced: a worker that sees the
 * replayed message must find the item pending. */
static int reopen(PGconn *pg, const PGresult *r, const letter_t *ls, size_t n,
                  tally_t *t)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        if (ls[i].action != REPLAY || PQgetisnull(r, ls[i].row, C_ITEM_STATUS))
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "run_id", PQgetvalue(r, ls[i].row, C_RUN));
        cJSON_AddStringToObject(o, "item_key",
                                PQgetvalue(r, ls[i].row, C_ITEM));
        cJSON_AddItemToArray(arr, o);
    }
    char *json = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    const char *params[] = {json};
    ns_error_t err;
    ns_error_clear(&err);
    PGresult *items = NULL, *runs = NULL;
    if (ns_pg_exec(pg, "BEGIN", 0, NULL, &err) == NS_OK)
        items = ns_pg_query(
            pg,
            "UPDATE items i SET status = 'pending', error = NULL, "
            "finished_at = NULL FROM jsonb_to_recordset($1::jsonb) AS "
            "x(run_id bigint, item_key text) WHERE i.run_id = x.run_id AND "
            "i.item_key = x.item_key AND i.status = 'failed'",
            1, params, &err);
    if (items != NULL)
        runs = ns_pg_query(
            pg,
            "UPDATE runs SET status = 'running', finished_at = NULL, "
            "finalize_after = NULL WHERE run_id IN (SELECT run_id FROM "
            "jsonb_to_recordset($1::jsonb) AS x(run_id bigint, item_key "
            "text)) AND status IN ('succeeded', 'failed', 'finalizing')",
            1, params, &err);
    int ok = runs != NULL && ns_pg_exec(pg, "COMMIT", 0, NULL, &err) == NS_OK;
    if (ok) {
        t->items = atoi(PQcmdTuples(items));
        t->runs = atoi(PQcmdTuples(runs));
    } else {
        ns_pg_rollback(pg);
        fprintf(stderr, "nightshift dlq replay: reopening items: %s\n",
                err.msg);
    }
    PQclear(items);
    PQclear(runs);
    free(json);
    return ok;
}

static void produce_one(rd_kafka_t *rk, letter_t *l, const char *id)
{
    const char *encoding = is_zstd(l->payload, l->len) ? "zstd" : "json";
    rd_kafka_resp_err_t e;
    for (;;) {
        e = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(l->topic), RD_KAFKA_V_KEY(l->key, l->key_len),
            RD_KAFKA_V_VALUE(l->payload, l->len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADER(NS_HEADER_ENCODING, encoding, -1),
            RD_KAFKA_V_HEADER("ns-replay-of", id, -1), RD_KAFKA_V_OPAQUE(l),
            RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(rk, 100);
    }
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        l->delivery = -1;
        l->err = e;
    }
    rd_kafka_poll(rk, 0);
}

/* Produces every REPLAY letter and waits for the broker's acknowledgements
 * (acks=all). */
static void produce_all(rd_kafka_t *rk, const PGresult *r, letter_t *ls,
                        size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ls[i].action == REPLAY)
            produce_one(rk, &ls[i], PQgetvalue(r, ls[i].row, C_ID));
    rd_kafka_flush(rk, DELIVERY_TIMEOUT_MS);
    /* What is still queued now fails: its report arrives on this flush. */
    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(rk, 5000);
}

static void mark_replayed(PGconn *pg, const PGresult *r, letter_t *ls, size_t n,
                          tally_t *t)
{
    ns_buf_t ids;
    ns_buf_init(&ids, SQL_MAX);
    ns_buf_adds(&ids, "{");
    for (size_t i = 0; i < n; i++) {
        if (ls[i].action != REPLAY)
            continue;
        if (ls[i].delivery != 1) {
            t->failed++;
            fprintf(stderr,
                    "nightshift dlq replay: #%s not delivered to %s: %s\n",
                    PQgetvalue(r, ls[i].row, C_ID), ls[i].topic,
                    ls[i].delivery == 0 ? "no acknowledgement"
                                        : rd_kafka_err2str(ls[i].err));
            continue;
        }
        ns_buf_addf(&ids, "%s%s", t->replayed > 0 ? "," : "",
                    PQgetvalue(r, ls[i].row, C_ID));
        t->replayed++;
    }
    ns_buf_adds(&ids, "}");
    const char *params[] = {ids.data};
    ns_error_t err;
    ns_error_clear(&err);
    if (t->replayed > 0 &&
        ns_pg_exec(pg,
                   "UPDATE dead_letters SET replayed_at = now(), "
                   "replay_count = replay_count + 1 WHERE id = "
                   "ANY($1::bigint[])",
                   1, params, &err) != NS_OK)
        fprintf(stderr,
                "nightshift dlq replay: delivered, but recording it "
                "failed: %s\n",
                err.msg);
    ns_buf_free(&ids);
}

static void print_summary(FILE *out, const tally_t *t, bool dry_run)
{
    fprintf(out, "%s %d dead letter%s", dry_run ? "would replay" : "replayed",
            t->replayed, t->replayed == 1 ? "" : "s");
    const char *sep = " (";
    if (t->items > 0) {
        fprintf(out, "%s%d item%s reopened", sep, t->items,
                t->items == 1 ? "" : "s");
        sep = ", ";
    }
    if (t->runs > 0) {
        fprintf(out, "%s%d run%s reopened", sep, t->runs,
                t->runs == 1 ? "" : "s");
        sep = ", ";
    }
    for (int a = SKIP_DONE; a <= SKIP_CANCELLED; a++) {
        if (t->skipped[a] > 0) {
            fprintf(out, "%s%d skipped: %s", sep, t->skipped[a],
                    skip_reasons[a]);
            sep = ", ";
        }
    }
    if (t->failed > 0)
        fprintf(out, "%s%d not delivered", sep, t->failed);
    fprintf(out, "%s%s\n", sep[0] == ',' ? ")" : "",
            dry_run ? "; nothing changed (dry run)" : "");
}

/* Dry run: the counts the real replay would report. */
static void tally_plan(const PGresult *r, const letter_t *ls, size_t n,
                       tally_t *t)
{
    for (size_t i = 0; i < n; i++) {
        if (ls[i].action != REPLAY) {
            t->skipped[ls[i].action]++;
            continue;
        }
        t->replayed++;
        t->items += ls[i].reopen_item;
        bool first = ls[i].reopen_run;
        for (size_t k = 0; first && k < i; k++)
            first = !(ls[k].reopen_run &&
                      strcmp(PQgetvalue(r, ls[k].row, C_RUN),
                             PQgetvalue(r, ls[i].row, C_RUN)) == 0);
        t->runs += first;
    }
}

static int execute(const ns_config_t *cfg, PGconn *pg, const PGresult *r,
                   letter_t *ls, size_t n, tally_t *t)
{
    size_t to_replay = 0;
    for (size_t i = 0; i < n; i++) {
        if (ls[i].action == REPLAY)
            to_replay++;
        else
            t->skipped[ls[i].action]++;
    }
    if (to_replay == 0)
        return 0;
    /* Kafka first: while no broker answers, nothing is reopened. */
    ns_error_t err;
    ns_error_clear(&err);
    rd_kafka_t *rk = ns_kafka_producer_new(cfg, on_delivery, &err);
    if (rk == NULL) {
        fprintf(stderr, "nightshift dlq replay: %s\n", err.msg);
        t->aborted = true;
        return 1;
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, NULL, &md, 10000);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr,
                "nightshift dlq replay: no Kafka broker answers (%s): %s; "
                "nothing changed\n",
                cfg->kafka_brokers, rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        t->aborted = true;
        return 1;
    }
    rd_kafka_metadata_destroy(md);
    if (!reopen(pg, r, ls, n, t)) {
        rd_kafka_destroy(rk);
        t->aborted = true;
        return 1;
    }
    produce_all(rk, r, ls, n);
    rd_kafka_destroy(rk);
    mark_replayed(pg, r, ls, n, t);
    if (t->failed > 0)
        fprintf(stderr,
                "nightshift dlq replay: %d not delivered; their items are "
                "pending, replay them again\n",
                t->failed);
    return t->failed > 0 ? 1 : 0;
}

int ns_dlq_replay(const ns_config_t *cfg, const ns_dlq_filter_t *f,
                  bool dry_run, FILE *out)
{
    if (!f->job && !f->item && !f->since && !f->id) {
        fprintf(stderr, "nightshift dlq replay: say what to replay: --job, "
                        "--item, --since or --id\n");
        return 2;
    }
    query_t q = {.n = 0};
    ns_buf_init(&q.sql, SQL_MAX);
    ns_buf_adds(&q.sql, ROW_COLUMNS DETAIL_COLUMNS);
    int rc = add_where(&q, f, "replay");
    if (rc != 0) {
        ns_buf_free(&q.sql);
        return rc;
    }
    ns_buf_adds(&q.sql, " ORDER BY d.id");
    PGconn *pg = connect_pg(cfg, "replay");
    PGresult *r = pg ? run_query(pg, &q, "replay") : NULL;
    ns_buf_free(&q.sql);
    if (r == NULL) {
        PQfinish(pg);
        return 1;
    }
    size_t n = (size_t)PQntuples(r);
    letter_t *ls = calloc(n + 1, sizeof(*ls));
    if (ls == NULL) {
        fprintf(stderr, "nightshift dlq replay: out of memory\n");
        rc = 1;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        ls[i].row = (int)i;
        plan(cfg, r, f->id != NULL, &ls[i]);
        ls[i].key = unescape(r, (int)i, C_KEY, &ls[i].key_len);
        ls[i].payload = unescape(r, (int)i, C_PAYLOAD, &ls[i].len);
    }
    if (n == 0) {
        fprintf(out, "no dead letters match\n");
        goto done;
    }
    tally_t t = {0};
    if (dry_run)
        tally_plan(r, ls, n, &t);
    else
        rc = execute(cfg, pg, r, ls, n, &t);
    for (size_t i = 0; i < n && !t.aborted; i++)
        print_line(out, r, &ls[i], dry_run);
    if (!t.aborted)
        print_summary(out, &t, dry_run);
done:
    for (size_t i = 0; ls != NULL && i < n; i++) {
        PQfreemem(ls[i].key);
        PQfreemem(ls[i].payload);
    }
    free(ls);
    PQclear(r);
    PQfinish(pg);
    return rc;
}
