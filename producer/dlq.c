/* `nightshift dlq list`, the --since parser, and what list, show
 * (dlq_show.c) and replay (dlq_replay.c) share: the filter's WHERE clause,
 * connecting, and formatting a dead letter's row. */
#include "dlq.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dlq_internal.h"
#include "ns/clock.h"
#include "ns/pg.h"
#include "ns/utf8.h"

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

int dlq_all_digits(const char *s)
{
    if (s == NULL || *s == '\0' || strlen(s) > 18)
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

/* Adds a parameter; @returns its number ($n). */
static int add_param(dlq_query_t *q, const char *value)
{
    q->params[q->n++] = value;
    return q->n;
}

/* Appends the filter's WHERE clause. @returns 0, or 2 (usage) with a
 * message on stderr. */
int dlq_add_where(dlq_query_t *q, const ns_dlq_filter_t *f, const char *verb)
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
        if (!dlq_all_digits(f->id)) {
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

PGresult *dlq_run_query(PGconn *pg, dlq_query_t *q, const char *verb)
{
    ns_error_t err;
    ns_error_clear(&err);
    PGresult *r = ns_pg_query(pg, q->sql.data, q->n, q->params, &err);
    if (r == NULL)
        fprintf(stderr, "nightshift dlq %s: %s\n", verb, err.msg);
    return r;
}

PGconn *dlq_connect_pg(const ns_config_t *cfg, const char *verb)
{
    ns_error_t err;
    ns_error_clear(&err);
    PGconn *pg = ns_pg_connect(cfg->pg_dsn, &err);
    if (pg == NULL)
        fprintf(stderr, "nightshift dlq %s: %s\n", verb, err.msg);
    return pg;
}

const char *dlq_value_or_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

unsigned char *dlq_unescape(const PGresult *r, int row, int col, size_t *len)
{
    *len = 0;
    if (PQgetisnull(r, row, col))
        return NULL;
    return PQunescapeBytea((const unsigned char *)PQgetvalue(r, row, col), len);
}

/* The message key as text: itself when it is UTF-8, else "0x" + hex. */
char *dlq_msg_key_text(const PGresult *r, int row)
{
    size_t len = 0;
    unsigned char *raw = dlq_unescape(r, row, C_KEY, &len);
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

void dlq_add_str(cJSON *o, const char *name, const char *value)
{
    if (value != NULL)
        cJSON_AddStringToObject(o, name, value);
    else
        cJSON_AddNullToObject(o, name);
}

void dlq_add_num(cJSON *o, const char *name, const PGresult *r, int row,
                 int col)
{
    if (PQgetisnull(r, row, col))
        cJSON_AddNullToObject(o, name);
    else
        cJSON_AddNumberToObject(o, name, (double)ns_pg_int64(r, row, col));
}

cJSON *dlq_row_json(const PGresult *r, int row)
{
    cJSON *o = cJSON_CreateObject();
    dlq_add_num(o, "id", r, row, C_ID);
    dlq_add_str(o, "time", PQgetvalue(r, row, C_TIME));
    dlq_add_str(o, "job", dlq_value_or_null(r, row, C_JOB));
    dlq_add_num(o, "run_id", r, row, C_RUN);
    dlq_add_str(o, "item_key", dlq_value_or_null(r, row, C_ITEM));
    char *key = dlq_msg_key_text(r, row);
    dlq_add_str(o, "msg_key", key);
    free(key);
    dlq_add_num(o, "attempts", r, row, C_ATTEMPTS);
    dlq_add_str(o, "reason", PQgetvalue(r, row, C_REASON));
    dlq_add_str(o, "handler", dlq_value_or_null(r, row, C_HANDLER));
    dlq_add_str(o, "topic", PQgetvalue(r, row, C_TOPIC));
    dlq_add_num(o, "partition", r, row, C_PARTITION);
    dlq_add_num(o, "offset", r, row, C_OFFSET);
    dlq_add_num(o, "replay_count", r, row, C_REPLAYS);
    dlq_add_str(o, "replayed_at", dlq_value_or_null(r, row, C_REPLAYED_AT));
    return o;
}

/* Prints s in a column `width` code points wide: control characters become
 * spaces, longer text is cut with an ellipsis. */
void dlq_put_cell(FILE *out, const char *s, int width, int pad)
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
char *dlq_key_text(const PGresult *r, int row)
{
    if (!PQgetisnull(r, row, C_ITEM))
        return strdup(PQgetvalue(r, row, C_ITEM));
    return dlq_msg_key_text(r, row);
}

/* ---- list --------------------------------------------------------------- */

static int64_t count_matching(PGconn *pg, const ns_dlq_filter_t *f)
{
    dlq_query_t q = {.n = 0};
    ns_buf_init(&q.sql, SQL_MAX);
    ns_buf_adds(&q.sql, "SELECT count(*) FROM dead_letters d");
    int64_t n = -1;
    if (dlq_add_where(&q, f, "list") == 0) {
        PGresult *r = dlq_run_query(pg, &q, "list");
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
    dlq_query_t q = {.n = 0};
    ns_buf_init(&q.sql, SQL_MAX);
    ns_buf_adds(&q.sql, ROW_COLUMNS " FROM dead_letters d");
    int rc = dlq_add_where(&q, f, "list");
    if (rc != 0) {
        ns_buf_free(&q.sql);
        return rc;
    }
    ns_buf_adds(&q.sql, " ORDER BY d.id DESC");
    if (f->limit > 0)
        ns_buf_addf(&q.sql, " LIMIT %d", f->limit);
    PGconn *pg = dlq_connect_pg(cfg, "list");
    PGresult *r = pg ? dlq_run_query(pg, &q, "list") : NULL;
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
            cJSON_AddItemToArray(arr, dlq_row_json(r, i));
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
            dlq_put_cell(out, dlq_value_or_null(r, i, C_JOB), 24, 1);
            dlq_put_cell(out, dlq_value_or_null(r, i, C_RUN), 7, 1);
            char *key = dlq_key_text(r, i);
            dlq_put_cell(out, key, 16, 1);
            free(key);
            fprintf(out, "%4s %7s  ", PQgetvalue(r, i, C_ATTEMPTS),
                    PQgetvalue(r, i, C_REPLAYS));
            dlq_put_cell(out, PQgetvalue(r, i, C_REASON), 60, 0);
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
