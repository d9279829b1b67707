/* cron.c: 5-field cron expressions, matched in local wall-clock time and
 * mapped to UTC through the zone's TZif data (see tz.h). */
#include "ns/cron.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ns/tz.h"

#define CRON_FIELDS 5
#define SECS_PER_DAY 86400
/* ns_cron_next gives up after this much local time (the header's 5 years). */
#define CRON_HORIZON_S ((int64_t)(5 * 365 + 2) * SECS_PER_DAY)
/* Instants beyond about +-31,000 years are refused, so no sum overflows. */
#define CRON_MAX_ABS_S ((int64_t)1000000000000)

struct ns_cron {
    uint64_t minutes; /* bit n set: minute n matches */
    uint32_t hours;
    uint32_t mdays;  /* bits 1..31 */
    uint16_t months; /* bits 1..12 */
    uint8_t wdays;   /* bits 0..6, 0 = Sunday */
    bool dom_star;   /* the field starts with '*' (Vixie's DOM_STAR) */
    bool dow_star;
};

struct cron_field {
    const char *name;
    int lo, hi;
    const char *const *names; /* three-letter names of lo, lo + 1, ... */
    int nnames;
};

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR",
                                          "MAY", "JUN", "JUL", "AUG",
                                          "SEP", "OCT", "NOV", "DEC"};
static const char *const wday_names[] = {"SUN", "MON", "TUE", "WED",
                                         "THU", "FRI", "SAT"};

static const struct cron_field cron_fields[CRON_FIELDS] = {
    {"minute", 0, 59, NULL, 0},           {"hour", 0, 23, NULL, 0},
    {"day-of-month", 1, 31, NULL, 0},     {"month", 1, 12, month_names, 12},
    {"day-of-week", 0, 7, wday_names, 7},
};

static const struct {
    const char *name;
    const char *fields;
} cron_macros[] = {
    {"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"},
    {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
    {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

/* ---- parsing ---- */

/* A field's text: [p, end). why receives the reason a parse failed. */
struct field_cursor {
    const char *p, *end;
    const struct cron_field *field;
    char *why;
    size_t whylen;
};

static bool fail(struct field_cursor *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static bool fail(struct field_cursor *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, c->whylen, fmt, ap);
    va_end(ap);
    return false;
}

static bool unexpected(struct field_cursor *c)
{
    if (c->p >= c->end)
        return fail(c, "unexpected end of field");
    return fail(c, "unexpected \"%.*s\"", (int)(c->end - c->p), c->p);
}

/* Reads a run of digits; values past 9999 read as 10000 (all too big). */
static int parse_digits(struct field_cursor *c)
{
    int n = 0;
    while (c->p < c->end && isdigit((unsigned char)*c->p)) {
        n = n < 1000 ? n * 10 + (*c->p - '0') : 10000;
        c->p++;
    }
    return n;
}

/* A number, or a three-letter name in fields that have names. */
static bool parse_value(struct field_cursor *c, int *value)
{
    if (c->p < c->end && isdigit((unsigned char)*c->p)) {
        const char *digits = c->p;
        *value = parse_digits(c);
        if (*value >= c->field->lo && *value <= c->field->hi)
            return true;
        return fail(c, "%.*s is out of range %d-%d", (int)(c->p - digits),
                    digits, c->field->lo, c->field->hi);
    }
    size_t len = 0;
    while (c->p + len < c->end && isalpha((unsigned char)c->p[len]))
        len++;
    if (len == 0 || c->field->names == NULL)
        return unexpected(c);
    for (int i = 0; i < c->field->nnames; i++) {
        if (len == 3 && strncasecmp(c->p, c->field->names[i], 3) == 0) {
            *value = c->field->lo + i;
            c->p += len;
            return true;
        }
    }
    return fail(c, "unknown name \"%.*s\"", (int)len, c->p);
}

/* One list element: '*' or value or value-value, then an optional /step.
 * "N/step" means N through the field's maximum, every step. */
static bool parse_element(struct field_cursor *c, uint64_t *bits)
{
    int lo, hi, step = 1;
    if (c->p < c->end && *c->p == '*') {
        c->p++;
        lo = c->field->lo;
        hi = c->field->hi;
    } else {
        if (!parse_value(c, &lo))
            return false;
        hi = lo;
        if (c->p < c->end && *c->p == '-') {
            c->p++;
            if (!parse_value(c, &hi))
                return false;
            if (hi < lo)
                return fail(c, "range %d-%d is backwards", lo, hi);
        } else if (c->p < c->end && *c->p == '/') {
            hi = c->field->hi;
        }
    }
    if (c->p < c->end && *c->p == '/') {
        c->p++;
        if (c->p >= c->end)
            return fail(c, "missing step after \"/\"");
        if (!isdigit((unsigned char)*c->p))
            return unexpected(c);
        const char *digits = c->p;
        step = parse_digits(c);
        if (step < 1 || step > c->field->hi)
            return fail(c, "step %.*s is out of range 1-%d",
                        (int)(c->p - digits), digits, c->field->hi);
    }
    for (int v = lo; v <= hi; v += step)
        *bits |= (uint64_t)1 << v;
    return true;
}

static bool parse_field(struct field_cursor *c, uint64_t *bits)
{
    *bits = 0;
    for (;;) {
        if (c->p >= c->end || *c->p == ',')
            return fail(c, "empty list element");
        if (!parse_element(c, bits))
            return false;
        if (c->p >= c->end)
            return true;
        if (*c->p != ',')
            return unexpected(c);
        c->p++;
    }
}

static bool is_blank(char ch)
{
    return isspace((unsigned char)ch) != 0;
}

/* Parses the fields of text into cron; expr is what error messages quote. */
static bool parse_fields(const char *expr, const char *text, ns_cron_t *cron,
                         ns_error_t *err)
{
    const char *start[CRON_FIELDS], *end[CRON_FIELDS];
    int count = 0;
    for (const char *p = text; *p != '\0';) {
        if (is_blank(*p)) {
            p++;
            continue;
        }
        const char *s = p;
        while (*p != '\0' && !is_blank(*p))
            p++;
        if (count < CRON_FIELDS) {
            start[count] = s;
            end[count] = p;
        }
        count++;
    }
    if (count != CRON_FIELDS) {
        ns_error_set(err, NS_ERR_INVALID,
                     "cron \"%.200s\": expected 5 fields (minute hour "
                     "day-of-month month day-of-week), got %d",
                     expr, count);
        return false;
    }
    uint64_t bits[CRON_FIELDS];
    for (int i = 0; i < CRON_FIELDS; i++) {
        char why[160];
        struct field_cursor c = {start[i], end[i], &cron_fields[i], why,
                                 sizeof(why)};
        if (!parse_field(&c, &bits[i])) {
            ns_error_set(err, NS_ERR_INVALID, "cron \"%.200s\": %s: %s", expr,
                         cron_fields[i].name, why);
            return false;
        }
    }
    if (bits[4] & (1u << 7)) /* 7 is Sunday too */
        bits[4] = (bits[4] | 1u) & ~(uint64_t)(1u << 7);
    cron->minutes = bits[0];
    cron->hours = (uint32_t)bits[1];
    cron->mdays = (uint32_t)bits[2];
    cron->months = (uint16_t)bits[3];
    cron->wdays = (uint8_t)bits[4];
    cron->dom_star = *start[2] == '*';
    cron->dow_star = *start[4] == '*';
    return true;
}

/* The fields a macro such as "@daily" stands for; NULL with err set if
 * text (which starts with '@') is not exactly one known macro. */
static const char *expand_macro(const char *expr, const char *text,
                                ns_error_t *err)
{
    size_t len = 0;
    while (text[len] != '\0' && !is_blank(text[len]))
        len++;
    const char *rest = text + len;
    while (is_blank(*rest))
        rest++;
    for (size_t i = 0; i < sizeof(cron_macros) / sizeof(cron_macros[0]); i++) {
        if (strlen(cron_macros[i].name) != len ||
            strncasecmp(text, cron_macros[i].name, len) != 0)
            continue;
        if (*rest == '\0')
            return cron_macros[i].fields;
        ns_error_set(err, NS_ERR_INVALID,
                     "cron \"%.200s\": unexpected \"%.100s\" after %.*s", expr,
                     rest, (int)len, text);
        return NULL;
    }
    ns_error_set(err, NS_ERR_INVALID,
                 "cron \"%.200s\": unknown macro \"%.*s\" (expected @yearly "
                 "@annually @monthly @weekly @daily @midnight @hourly)",
                 expr, (int)len, text);
    return NULL;
}

ns_cron_t *ns_cron_parse(const char *expr, ns_error_t *err)
{
    if (expr == NULL) {
        ns_error_set(err, NS_ERR_INVALID, "cron: no expression");
        return NULL;
    }
    const char *text = expr;
    while (is_blank(*text))
        text++;
    if (*text == '\0') {
        ns_error_set(err, NS_ERR_INVALID, "cron \"%.200s\": empty expression",
                     expr);
        return NULL;
    }
    if (*text == '@') {
        text = expand_macro(expr, text, err);
        if (text == NULL)
            return NULL;
    }
    ns_cron_t *cron = calloc(1, sizeof(*cron));
    if (cron == NULL) {
        ns_error_set(err, NS_ERR_NOMEM, "cron: out of memory");
        return NULL;
    }
    if (!parse_fields(expr, text, cron, err)) {
        free(cron);
        return NULL;
    }
    return cron;
}

void ns_cron_destroy(ns_cron_t *cron)
{
    free(cron);
}

int ns_tz_valid(const char *tz)
{
    return ns_tz_get(tz) != NULL;
}

/* ---- finding the next firing ---- */

static bool day_matches(const ns_cron_t *cron, int64_t days, int mday)
{
    bool dom = cron->mdays & (1u << mday);
    bool dow = cron->wdays & (1u << ns_tz_weekday(days));
    /* Vixie cron: when both fields are restricted, either one suffices. */
    if (cron->dom_star || cron->dow_star)
        return dom && dow;
    return dom || dow;
}

/* The first set bit of bits at or after from, or -1. */
static int next_bit(uint64_t bits, int from)
{
    if (from > 63)
        return -1;
    bits >>= from;
    return bits == 0 ? -1 : from + __builtin_ctzll(bits);
}

/* The first local wall time at or after local_s (a whole minute) that the
 * expression matches, or -1 if there is none up to limit. Skips whole
 * months, days and hours that cannot match. */
static int64_t next_local_match(const ns_cron_t *cron, int64_t local_s,
                                int64_t limit)
{
    int64_t days = local_s / SECS_PER_DAY;
    if (local_s % SECS_PER_DAY < 0)
        days--;
    int secs = (int)(local_s - days * SECS_PER_DAY);
    int hour = secs / 3600, minute = secs % 3600 / 60;
    while (days * SECS_PER_DAY <= limit) {
        int64_t year;
        int month, mday;
        ns_tz_civil_from_days(days, &year, &month, &mday);
        if (!(cron->months & (1u << month))) {
            days = month == 12 ? ns_tz_days_from_civil(year + 1, 1, 1)
                               : ns_tz_days_from_civil(year, month + 1, 1);
            hour = minute = 0;
            continue;
        }
        int h =
            day_matches(cron, days, mday) ? next_bit(cron->hours, hour) : -1;
        if (h < 0) {
            days++;
            hour = minute = 0;
            continue;
        }
        int m = next_bit(cron->minutes, h == hour ? minute : 0);
        if (m < 0) {
            hour = h + 1;
            minute = 0;
            continue; /* next_bit finds nothing past 23: next day */
        }
        int64_t found = days * SECS_PER_DAY + h * 3600 + m * 60;
        return found <= limit ? found : -1;
    }
    return -1;
}

int64_t ns_cron_next(const ns_cron_t *cron, const char *tz, int64_t after_s)
{
    const ns_tz_t *zone = ns_tz_get(tz == NULL ? "UTC" : tz);
    if (cron == NULL || zone == NULL || after_s < -CRON_MAX_ABS_S ||
        after_s > CRON_MAX_ABS_S)
        return -1;
    /* Wall times map to UTC monotonically (first occurrence, or the end of
     * a gap), so the answer is the first matching wall time after the
     * local time of after_s whose instant is after after_s; only wall
     * times repeated by a fall-back get skipped here. */
    int64_t local = after_s + ns_tz_utc_offset(zone, after_s);
    int64_t limit = local + CRON_HORIZON_S;
    int64_t minute = local / 60 - (local % 60 < 0);
    int64_t candidate = (minute + 1) * 60;
    for (;;) {
        candidate = next_local_match(cron, candidate, limit);
        if (candidate < 0)
            return -1;
        int64_t utc = ns_tz_local_to_utc(zone, candidate);
        if (utc > after_s)
            return utc;
        candidate += 60;
    }
}
