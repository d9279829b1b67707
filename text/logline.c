/* logline.c: decoding log lines from logs.raw (see logline.h). JSON goes
 * through cJSON; syslog is parsed by hand, field by field, because it is a
 * handful of space-separated tokens that no library here covers. */
#include "ns/logline.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ns/tz.h"
#include "ns/utf8.h"

static const struct {
    const char *name;
    ns_loglevel_t level;
} level_names[] = {
    {"trace", NS_LOGLEVEL_TRACE},
    {"debug", NS_LOGLEVEL_DEBUG},
    {"dbg", NS_LOGLEVEL_DEBUG},
    {"info", NS_LOGLEVEL_INFO},
    {"information", NS_LOGLEVEL_INFO},
    {"informational", NS_LOGLEVEL_INFO},
    {"log", NS_LOGLEVEL_INFO},
    {"notice", NS_LOGLEVEL_NOTICE},
    {"warn", NS_LOGLEVEL_WARNING},
    {"warning", NS_LOGLEVEL_WARNING},
    {"err", NS_LOGLEVEL_ERROR},
    {"error", NS_LOGLEVEL_ERROR},
    {"crit", NS_LOGLEVEL_CRITICAL},
    {"critical", NS_LOGLEVEL_CRITICAL},
    {"fatal", NS_LOGLEVEL_CRITICAL},
    {"panic", NS_LOGLEVEL_EMERGENCY},
    {"alert", NS_LOGLEVEL_ALERT},
    {"emerg", NS_LOGLEVEL_EMERGENCY},
    {"emergency", NS_LOGLEVEL_EMERGENCY},
};

/* Syslog severities 0..7, emergency first. */
static const ns_loglevel_t syslog_levels[8] = {
    NS_LOGLEVEL_EMERGENCY, NS_LOGLEVEL_ALERT,   NS_LOGLEVEL_CRITICAL,
    NS_LOGLEVEL_ERROR,     NS_LOGLEVEL_WARNING, NS_LOGLEVEL_NOTICE,
    NS_LOGLEVEL_INFO,      NS_LOGLEVEL_DEBUG,
};

const char *ns_loglevel_name(ns_loglevel_t level)
{
    static const char *const names[] = {
        "unknown", "trace", "debug",    "info",  "notice",
        "warning", "error", "critical", "alert", "emergency"};
    return (unsigned)level < sizeof(names) / sizeof(names[0]) ? names[level]
                                                              : "unknown";
}

ns_loglevel_t ns_loglevel_parse(const char *name, size_t len)
{
    if (len == 1 && name[0] >= '0' && name[0] <= '7')
        return syslog_levels[name[0] - '0'];
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (strlen(level_names[i].name) == len &&
            strncasecmp(level_names[i].name, name, len) == 0)
            return level_names[i].level;
    return NS_LOGLEVEL_UNKNOWN;
}

/* ---- time --------------------------------------------------------------- */

static int digits(const char *s, size_t len, size_t at, size_t n, int *v)
{
    if (at + n > len)
        return -1;
    int x = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[at + i]))
            return -1;
        x = x * 10 + (s[at + i] - '0');
    }
    *v = x;
    return 0;
}

static int64_t to_ms(int year, int mon, int day, int h, int m, int sec)
{
    int64_t days = ns_tz_days_from_civil(year, mon, day);
    return ((days * 24 + h) * 60 + m) * 60000 + (int64_t)sec * 1000;
}

int ns_logline_parse_time(const char *s, size_t len, int64_t *ms)
{
    int y, mo, d, h = 0, mi = 0, sec = 0;
    if (digits(s, len, 0, 4, &y) || len < 10 || s[4] != '-' ||
        digits(s, len, 5, 2, &mo) || s[7] != '-' || digits(s, len, 8, 2, &d) ||
        mo < 1 || mo > 12 || d < 1 || d > 31)
        return -1;
    size_t p = 10;
    if (p < len && (s[p] == 'T' || s[p] == 't' || s[p] == ' ')) {
        if (digits(s, len, p + 1, 2, &h) || p + 3 >= len || s[p + 3] != ':' ||
            digits(s, len, p + 4, 2, &mi) || h > 23 || mi > 59)
            return -1;
        p += 6;
        if (p < len && s[p] == ':') {
            if (digits(s, len, p + 1, 2, &sec) || sec > 60)
                return -1;
            p += 3;
        }
    }
    int frac_ms = 0;
    if (p < len && (s[p] == '.' || s[p] == ',')) {
        p++;
        int scale = 100;
        size_t start = p;
        while (p < len && isdigit((unsigned char)s[p])) {
            frac_ms += (s[p] - '0') * scale;
            scale /= 10;
            p++;
        }
        if (p == start)
            return -1;
    }
    int64_t offset_min = 0;
    if (p < len && (s[p] == 'Z' || s[p] == 'z')) {
        p++;
    } else if (p < len && (s[p] == '+' || s[p] == '-')) {
        int oh, om = 0;
        int sign = s[p] == '-' ? -1 : 1;
        if (digits(s, len, p + 1, 2, &oh))
            return -1;
        p += 3;
        if (p < len && s[p] == ':')
            p++;
        if (p < len && digits(s, len, p, 2, &om) == 0)
            p += 2;
        offset_min = sign * (oh * 60 + om);
    }
    if (p != len)
        return -1;
    *ms = to_ms(y, mo, d, h, mi, sec) + frac_ms - offset_min * 60000;
    return 0;
}

/* ---- JSON --------------------------------------------------------------- */

/* obj's value at a dotted path ("kubernetes.labels.app"), also when the
 * dotted name is one key ("log.level" as Elastic Common Schema has it). */
static const cJSON *lookup(const cJSON *obj, const char *path)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, path);
    if (v != NULL)
        return v;
    const char *dot = strchr(path, '.');
    if (dot == NULL)
        return NULL;
    char head[64];
    size_t n = (size_t)(dot - path);
    if (n >= sizeof(head))
        return NULL;
    memcpy(head, path, n);
    head[n] = '\0';
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(obj, head);
    return cJSON_IsObject(sub) ? lookup(sub, dot + 1) : NULL;
}

static const cJSON *first_of(const cJSON *obj, const char *const *paths)
{
    for (; *paths != NULL; paths++) {
        const cJSON *v = lookup(obj, *paths);
        /* {"service": {"name": ...}} (ECS) is found by its dotted path. */
        if (cJSON_IsString(v) || cJSON_IsNumber(v))
            return v;
    }
    return NULL;
}

static void copy_field(char *out, const cJSON *v)
{
    out[0] = '\0';
    if (cJSON_IsString(v))
        snprintf(out, NS_LOGLINE_FIELD_MAX, "%s", v->valuestring);
    else if (cJSON_IsNumber(v))
        snprintf(out, NS_LOGLINE_FIELD_MAX, "%.0f", v->valuedouble);
}

/* "ERROR something", "[warn] x", "level=error ...", "E1203 ..." is not
 * sniffed (too ambiguous): only a level name as the first word. */
static ns_loglevel_t sniff_level(const char *msg)
{
    const char *p = msg;
    while (*p == ' ' || *p == '[' || *p == '<')
        p++;
    if (strncasecmp(p, "level=", 6) == 0)
        p += 6;
    size_t n = 0;
    while (isalpha((unsigned char)p[n]) && n < 16)
        n++;
    return n > 0 ? ns_loglevel_parse(p, n) : NS_LOGLEVEL_UNKNOWN;
}

static ns_err_t from_object(const cJSON *root, ns_logline_t *out,
                            ns_error_t *err)
{
    static const char *const ts_keys[] = {"@timestamp", "timestamp", "time",
                                          "date",       "ts",        NULL};
    static const char *const msg_keys[] = {"message", "log", "msg", "MESSAGE",
                                           NULL};
    static const char *const level_keys[] = {
        "level", "severity", "log.level", "levelname", "lvl", "PRIORITY", NULL};
    static const char *const service_keys[] = {"service",
                                               "service.name",
                                               "app",
                                               "application",
                                               "appname",
                                               "SYSLOG_IDENTIFIER",
                                               "kubernetes.labels.app",
                                               "kubernetes.container_name",
                                               NULL};
    static const char *const host_keys[] = {
        "host", "hostname", "host.name", "kubernetes.host", "_HOSTNAME", NULL};
    ns_err_t rc = NS_OK;
    const cJSON *ts = first_of(root, ts_keys);
    if (ts == NULL) /* present but neither text nor number */
        for (const char *const *k = ts_keys; *k != NULL && ts == NULL; k++)
            ts = lookup(root, *k);
    const cJSON *msg = first_of(root, msg_keys);
    if (cJSON_IsNumber(ts)) {
        double v = ts->valuedouble;
        /* Epoch seconds (Fluent Bit's double) or milliseconds. */
        out->ts_ms = v > 1e11 ? (int64_t)v : (int64_t)(v * 1000.0);
    } else if (!cJSON_IsString(ts) ||
               ns_logline_parse_time(ts->valuestring, strlen(ts->valuestring),
                                     &out->ts_ms) != 0) {
        rc = ns_error_set(err, NS_ERR_PERMANENT,
                          ts ? "bad input: unreadable timestamp"
                             : "bad input: no timestamp");
    }
    if (rc == NS_OK && !cJSON_IsString(msg))
        rc = ns_error_set(err, NS_ERR_PERMANENT, "bad input: no message");
    /* cJSON passes bytes through: a parsed object may still hold them. */
    if (rc == NS_OK &&
        ns_utf8_invalid_at(msg->valuestring, strlen(msg->valuestring)) >= 0)
        rc = ns_error_set(err, NS_ERR_PERMANENT,
                          "bad input: invalid UTF-8 in the message");
    if (rc == NS_OK) {
        out->message = strdup(msg->valuestring);
        if (out->message == NULL)
            rc = ns_error_set(err, NS_ERR_NOMEM, "out of memory");
    }
    if (rc == NS_OK) {
        out->message_len = strlen(out->message);
        out->format = NS_LOGFORMAT_JSON;
        copy_field(out->service, first_of(root, service_keys));
        copy_field(out->host, first_of(root, host_keys));
        const cJSON *lv = first_of(root, level_keys);
        char name[32];
        copy_field(name, lv);
        out->level = ns_loglevel_parse(name, strnlen(name, sizeof(name)));
        if (out->level == NS_LOGLEVEL_UNKNOWN)
            out->level = sniff_level(out->message);
    }
    return rc;
}

static ns_err_t parse_json(const char *data, size_t len, ns_logline_t *out,
                           ns_error_t *err)
{
    cJSON *root = cJSON_ParseWithLength(data, len);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "bad input: not a JSON object");
    }
    ns_err_t rc = from_object(root, out, err);
    cJSON_Delete(root);
    return rc;
}

ns_err_t ns_logline_from_object(const cJSON *obj, ns_logline_t *out,
                                ns_error_t *err)
{
    memset(out, 0, sizeof(*out));
    if (!cJSON_IsObject(obj))
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "bad input: not a JSON object");
    ns_err_t rc = from_object(obj, out, err);
    if (rc != NS_OK)
        ns_logline_free(out);
    return rc;
}

/* ---- syslog ------------------------------------------------------------- */

/* The next space-separated token from *p (end e); "" at the end. */
static size_t token(const char **p, const char *e, const char **tok)
{
    while (*p < e && **p == ' ')
        (*p)++;
    *tok = *p;
    while (*p < e && **p != ' ')
        (*p)++;
    return (size_t)(*p - *tok);
}

static void copy_token(char *out, const char *tok, size_t n)
{
    if (n == 1 && tok[0] == '-')
        n = 0; /* RFC 5424's NILVALUE */
    snprintf(out, NS_LOGLINE_FIELD_MAX, "%.*s", (int)n, tok);
}

static ns_err_t set_message(ns_logline_t *out, const char *p, const char *e,
                            ns_error_t *err)
{
    /* RFC 5424 allows a BOM before a UTF-8 MSG. */
    if (e - p >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
        p += 3;
    while (p < e && (e[-1] == '\n' || e[-1] == '\r'))
        e--;
    out->message_len = (size_t)(e - p);
    out->message = malloc(out->message_len + 1);
    if (out->message == NULL)
        return ns_error_set(err, NS_ERR_NOMEM, "out of memory");
    memcpy(out->message, p, out->message_len);
    out->message[out->message_len] = '\0';
    return NS_OK;
}

/* RFC 5424: VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID
 * SP STRUCTURED-DATA [SP MSG]. */
static ns_err_t parse_5424(const char *p, const char *e, ns_logline_t *out,
                           ns_error_t *err)
{
    const char *tok;
    size_t n = token(&p, e, &tok); /* version */
    n = token(&p, e, &tok);
    if (n == 1 && tok[0] == '-')
        return ns_error_set(err, NS_ERR_PERMANENT, "bad input: no timestamp");
    if (ns_logline_parse_time(tok, n, &out->ts_ms) != 0)
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "bad input: unreadable syslog timestamp");
    n = token(&p, e, &tok);
    copy_token(out->host, tok, n);
    n = token(&p, e, &tok);
    copy_token(out->service, tok, n);
    token(&p, e, &tok); /* procid */
    token(&p, e, &tok); /* msgid */
    while (p < e && *p == ' ')
        p++;
    if (p < e && *p == '-') {
        p++;
    } else {
        /* SD-ELEMENTs: [id k="v"]... with \] escaped inside values. */
        while (p < e && *p == '[') {
            bool in_quotes = false;
            for (p++; p < e; p++) {
                if (*p == '\\' && p + 1 < e)
                    p++;
                else if (*p == '"')
                    in_quotes = !in_quotes;
                else if (*p == ']' && !in_quotes)
                    break;
            }
            if (p >= e)
                return ns_error_set(err, NS_ERR_PERMANENT,
                                    "bad input: unterminated structured data");
            p++;
        }
    }
    if (p < e && *p == ' ')
        p++;
    out->format = NS_LOGFORMAT_SYSLOG5424;
    return set_message(out, p, e, err);
}

/* RFC 3164: TIMESTAMP ("Mmm dd hh:mm:ss") SP HOSTNAME SP TAG[pid]: MSG. */
static ns_err_t parse_3164(const char *p, const char *e, int64_t now_ms,
                           ns_logline_t *out, ns_error_t *err)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    if (e - p < 16)
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "bad input: not JSON and not syslog");
    const char *m = strstr(months, (char[4]){p[0], p[1], p[2], 0});
    int day, h, mi, s;
    const char *ds = p[4] == ' ' ? p + 5 : p + 4;
    size_t dl = p[4] == ' ' ? 1 : 2;
    if (m == NULL || (m - months) % 3 != 0 || p[3] != ' ' ||
        digits(ds, dl, 0, dl, &day) || p[6] != ' ' ||
        digits(p, (size_t)(e - p), 7, 2, &h) || p[9] != ':' ||
        digits(p, (size_t)(e - p), 10, 2, &mi) || p[12] != ':' ||
        digits(p, (size_t)(e - p), 13, 2, &s) || (e - p > 15 && p[15] != ' '))
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "bad input: not JSON and not syslog");
    int month = (int)((m - months) / 3) + 1;
    int64_t year;
    int now_month, now_day;
    ns_tz_civil_from_days(now_ms / 86400000, &year, &now_month, &now_day);
    out->ts_ms = to_ms((int)year, month, day, h, mi, s);
    if (out->ts_ms > now_ms + 86400000) /* December's lines in January */
        out->ts_ms = to_ms((int)year - 1, month, day, h, mi, s);
    p += 16;
    const char *tok;
    size_t n = token(&p, e, &tok);
    copy_token(out->host, tok, n);
    while (p < e && *p == ' ')
        p++;
    /* TAG: up to '[' or ':'; then "[pid]" and ": ". */
    const char *tag = p;
    while (p < e && *p != '[' && *p != ':' && *p != ' ')
        p++;
    snprintf(out->service, NS_LOGLINE_FIELD_MAX, "%.*s", (int)(p - tag), tag);
    if (p < e && *p == '[') {
        while (p < e && *p != ']')
            p++;
        if (p < e)
            p++;
    }
    if (p < e && *p == ':')
        p++;
    if (p < e && *p == ' ')
        p++;
    out->format = NS_LOGFORMAT_SYSLOG3164;
    return set_message(out, p, e, err);
}

static ns_err_t parse_syslog(const char *data, size_t len, int64_t now_ms,
                             ns_logline_t *out, ns_error_t *err)
{
    const char *p = data, *e = data + len;
    int pri = -1;
    if (p < e && *p == '<') {
        const char *q = p + 1;
        int v = 0;
        while (q < e && isdigit((unsigned char)*q) && q - p <= 3)
            v = v * 10 + (*q++ - '0');
        if (q == p + 1 || q >= e || *q != '>' || v > 191)
            return ns_error_set(err, NS_ERR_PERMANENT,
                                "bad input: not JSON and not syslog");
        pri = v;
        p = q + 1;
    }
    ns_err_t rc = (e - p > 2 && p[0] >= '1' && p[0] <= '9' && p[1] == ' ')
                      ? parse_5424(p, e, out, err)
                      : parse_3164(p, e, now_ms, out, err);
    if (rc == NS_OK)
        out->level =
            pri >= 0 ? syslog_levels[pri & 7] : sniff_level(out->message);
    return rc;
}

ns_err_t ns_logline_parse(const char *data, size_t len, size_t max_bytes,
                          int64_t now_ms, ns_logline_t *out, ns_error_t *err)
{
    memset(out, 0, sizeof(*out));
    if (len > max_bytes)
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "bad input: line of %zu bytes is over the limit "
                            "of %zu",
                            len, max_bytes);
    long bad = ns_utf8_invalid_at(data, len);
    if (bad >= 0)
        return ns_error_set(err, NS_ERR_PERMANENT,
                            "bad input: invalid UTF-8 at byte %ld", bad);
    size_t i = 0;
    while (i < len && isspace((unsigned char)data[i]))
        i++;
    ns_err_t rc = i < len && data[i] == '{'
                      ? parse_json(data, len, out, err)
                      : parse_syslog(data + i, len - i, now_ms, out, err);
    if (rc != NS_OK)
        ns_logline_free(out);
    return rc;
}

void ns_logline_free(ns_logline_t *out)
{
    if (out == NULL)
        return;
    free(out->message);
    out->message = NULL;
    out->message_len = 0;
}
