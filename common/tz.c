/* tz.c: a TZif (RFC 8536) reader and POSIX TZ rule evaluator, so cron can
 * work in any zone without switching the process-wide TZ. */
#include "ns/tz.h"

#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"
#define TZ_MAX_NAME 255
#define TZ_MAX_FILE (1024 * 1024)
#define TZ_MAX_FOOTER 256
/* RFC 8536 3.2: utoff must lie in -89999..93599 (-25:00 < x < +26:00). */
#define TZ_MIN_UTOFF (-89999)
#define TZ_MAX_UTOFF 93599
#define SECS_PER_DAY 86400

/* One date of a POSIX TZ rule: Jn (1..365, Feb 29 never counted), n
 * (0..365, counted) or Mm.w.d; secs is the local time of day it applies. */
struct tz_rule_date {
    char kind; /* 'J', 'N' or 'M' */
    int n, month, week, wday;
    int32_t secs;
};

struct tz_rule {
    int32_t std_utoff, dst_utoff;
    bool has_dst;
    struct tz_rule_date start, end; /* start of DST, end of DST */
};

struct ns_tz {
    char *path; /* cache key: the file the zone came from */
    size_t ntrans;
    int64_t *trans;      /* ntrans instants, strictly ascending */
    uint8_t *trans_type; /* ntrans indexes into utoff */
    size_t ntypes;
    int32_t *utoff;
    bool has_rule; /* footer rule for instants >= the last transition */
    struct tz_rule rule;
    struct ns_tz *next;
};

static int32_t tz_utc_utoff[1] = {0};
static const ns_tz_t tz_utc = {
    .path = "UTC", .ntypes = 1, .utoff = tz_utc_utoff};

static pthread_mutex_t tz_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static ns_tz_t *tz_cache;

/* ---- calendar (Howard Hinnant's civil algorithms) ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t ns_tz_days_from_civil(int64_t year, int month, int day)
{
    year -= month <= 2;
    int64_t era = floor_div(year, 400);
    int64_t yoe = year - era * 400;
    int64_t doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void ns_tz_civil_from_days(int64_t days, int64_t *year, int *month, int *day)
{
    days += 719468;
    int64_t era = floor_div(days, 146097);
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = m;
    *year = yoe + era * 400 + (m <= 2);
}

int ns_tz_weekday(int64_t days)
{
    int64_t wd = (days + 4) % 7; /* 1970-01-01 was a Thursday */
    return (int)(wd < 0 ? wd + 7 : wd);
}

static bool is_leap(int64_t year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int month_length(int64_t year, int month)
{
    static const int lengths[12] = {31, 28, 31, 30, 31, 30,
                                    31, 31, 30, 31, 30, 31};
    return lengths[month - 1] + (month == 2 && is_leap(year));
}

static int64_t year_of(int64_t utc_s)
{
    int64_t year;
    int month, day;
    ns_tz_civil_from_days(floor_div(utc_s, SECS_PER_DAY), &year, &month, &day);
    return year;
}

/* ---- POSIX TZ strings: STDoffset[DST[offset][,start[/time],end[/time]]] */

static bool parse_number(const char **p, int max_digits, int *out)
{
    int value = 0, digits = 0;
    while (isdigit((unsigned char)**p) && digits < max_digits) {
        value = value * 10 + (**p - '0');
        (*p)++;
        digits++;
    }
    *out = value;
    return digits > 0 && !isdigit((unsigned char)**p);
}

/* A zone abbreviation: three or more letters, or <...> of [A-Za-z0-9+-]. */
static bool parse_abbr(const char **p)
{
    const char *s = *p;
    size_t len = 0;
    if (*s == '<') {
        s++;
        while (isalnum((unsigned char)s[len]) || s[len] == '+' || s[len] == '-')
            len++;
        if (s[len] != '>' || len < 3)
            return false;
        *p = s + len + 1;
        return true;
    }
    while (isalpha((unsigned char)s[len]))
        len++;
    if (len < 3)
        return false;
    *p = s + len;
    return true;
}

/* [+-]hh[:mm[:ss]] with hh <= max_hours, as signed seconds. */
static bool parse_hms(const char **p, int max_hours, int32_t *out)
{
    int sign = 1, hours, minutes = 0, seconds = 0;
    if (**p == '+' || **p == '-') {
        sign = **p == '-' ? -1 : 1;
        (*p)++;
    }
    if (!parse_number(p, 3, &hours) || hours > max_hours)
        return false;
    if (**p == ':') {
        (*p)++;
        if (!parse_number(p, 2, &minutes) || minutes > 59)
            return false;
        if (**p == ':') {
            (*p)++;
            if (!parse_number(p, 2, &seconds) || seconds > 59)
                return false;
        }
    }
    *out = sign * (hours * 3600 + minutes * 60 + seconds);
    return true;
}

static bool parse_rule_date(const char **p, struct tz_rule_date *date)
{
    memset(date, 0, sizeof(*date));
    if (**p == 'J') {
        (*p)++;
        date->kind = 'J';
        if (!parse_number(p, 3, &date->n) || date->n < 1 || date->n > 365)
            return false;
    } else if (**p == 'M') {
        (*p)++;
        date->kind = 'M';
        if (!parse_number(p, 2, &date->month) || date->month < 1 ||
            date->month > 12 || *(*p)++ != '.')
            return false;
        if (!parse_number(p, 1, &date->week) || date->week < 1 ||
            date->week > 5 || *(*p)++ != '.')
            return false;
        if (!parse_number(p, 1, &date->wday) || date->wday > 6)
            return false;
    } else {
        date->kind = 'N';
        if (!parse_number(p, 3, &date->n) || date->n > 365)
            return false;
    }
    date->secs = 2 * 3600;
    if (**p == '/') {
        (*p)++;
        /* RFC 8536 3.3.1: hours may be negative and up to 167. */
        return parse_hms(p, 167, &date->secs);
    }
    return true;
}

static bool parse_posix_tz(const char *spec, struct tz_rule *rule)
{
    const char *p = spec;
    int32_t offset;
    memset(rule, 0, sizeof(*rule));
    if (!parse_abbr(&p) || !parse_hms(&p, 24, &offset))
        return false;
    rule->std_utoff = -offset; /* POSIX offsets are positive west */
    if (*p == '\0')
        return true;
    if (!parse_abbr(&p))
        return false;
    rule->has_dst = true;
    rule->dst_utoff = rule->std_utoff + 3600;
    if (*p != ',' && *p != '\0') {
        if (!parse_hms(&p, 24, &offset))
            return false;
        rule->dst_utoff = -offset;
    }
    if (*p == '\0')
        p = ",M3.2.0,M11.1.0"; /* no rule given: glibc's and tzcode's */
    if (*p++ != ',' || !parse_rule_date(&p, &rule->start) || *p++ != ',' ||
        !parse_rule_date(&p, &rule->end))
        return false;
    return *p == '\0';
}

/* The UTC instant a rule date falls on in year, given the offset in force
 * just before it. */
static int64_t rule_instant(const struct tz_rule_date *date, int64_t year,
                            int32_t utoff_before)
{
    int64_t day;
    if (date->kind == 'J') {
        day = ns_tz_days_from_civil(year, 1, 1) + date->n - 1 +
              (is_leap(year) && date->n >= 60);
    } else if (date->kind == 'N') {
        day = ns_tz_days_from_civil(year, 1, 1) + date->n;
    } else {
        int64_t first = ns_tz_days_from_civil(year, date->month, 1);
        int mday = 1 + (date->wday - ns_tz_weekday(first) + 7) % 7 +
                   7 * (date->week - 1);
        while (mday > month_length(year, date->month))
            mday -= 7;
        day = first + mday - 1;
    }
    return day * SECS_PER_DAY + date->secs - utoff_before;
}

static int32_t rule_offset(const struct tz_rule *rule, int64_t utc_s)
{
    if (!rule->has_dst)
        return rule->std_utoff;
    int64_t year = year_of(utc_s), best = INT64_MIN;
    bool dst = false;
    /* The latest change at or before utc_s wins; on a tie the start of DST
     * wins, so "DST all year" rules (end == next start) stay in DST. */
    for (int64_t y = year - 1; y <= year + 1; y++) {
        int64_t end = rule_instant(&rule->end, y, rule->dst_utoff);
        int64_t start = rule_instant(&rule->start, y, rule->std_utoff);
        if (end <= utc_s && end >= best) {
            best = end;
            dst = false;
        }
        if (start <= utc_s && start >= best) {
            best = start;
            dst = true;
        }
    }
    return dst ? rule->dst_utoff : rule->std_utoff;
}

static int64_t rule_next_change(const struct tz_rule *rule, int64_t utc_s)
{
    if (!rule->has_dst)
        return INT64_MAX;
    int64_t year = year_of(utc_s), next = INT64_MAX;
    for (int64_t y = year - 1; y <= year + 2; y++) {
        int64_t end = rule_instant(&rule->end, y, rule->dst_utoff);
        int64_t start = rule_instant(&rule->start, y, rule->std_utoff);
        if (end > utc_s && end < next)
            next = end;
        if (start > utc_s && start < next)
            next = start;
    }
    return next;
}

/* ---- offsets ---- */

/* Index of the last transition at or before utc_s; needs trans[0] <= t. */
static size_t last_transition(const ns_tz_t *tz, int64_t utc_s)
{
    size_t lo = 0, hi = tz->ntrans;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= utc_s)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

int32_t ns_tz_utc_offset(const ns_tz_t *tz, int64_t utc_s)
{
    if (tz->ntrans == 0)
        return tz->has_rule ? rule_offset(&tz->rule, utc_s) : tz->utoff[0];
    if (utc_s < tz->trans[0])
        return tz->utoff[0]; /* RFC 8536 3.2: time type 0 */
    if (utc_s >= tz->trans[tz->ntrans - 1] && tz->has_rule)
        return rule_offset(&tz->rule, utc_s);
    return tz->utoff[tz->trans_type[last_transition(tz, utc_s)]];
}

/* The first instant after utc_s at which the offset may change. */
static int64_t next_change(const ns_tz_t *tz, int64_t utc_s)
{
    if (tz->ntrans > 0 && utc_s < tz->trans[0])
        return tz->trans[0];
    if (tz->ntrans > 0 && utc_s < tz->trans[tz->ntrans - 1])
        return tz->trans[last_transition(tz, utc_s) + 1];
    return tz->has_rule ? rule_next_change(&tz->rule, utc_s) : INT64_MAX;
}

int64_t ns_tz_local_to_utc(const ns_tz_t *tz, int64_t local_s)
{
    /* Walk the spans of constant offset from well before local_s (offsets
     * are under 26 h) and stop in the first one whose local times reach
     * local_s: at its start if local_s fell into a gap. */
    int64_t span_start = local_s - 30 * 3600;
    for (int i = 0; i < 64; i++) {
        int32_t utoff = ns_tz_utc_offset(tz, span_start);
        if (span_start + utoff >= local_s)
            return span_start;
        int64_t span_end = next_change(tz, span_start);
        if (span_end == INT64_MAX || local_s - utoff < span_end)
            return local_s - utoff;
        span_start = span_end;
    }
    return local_s - ns_tz_utc_offset(tz, local_s);
}

/* ---- TZif files ---- */

struct tzif_header {
    char version;
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
};

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static bool read_header(const unsigned char *buf, size_t len, size_t *pos,
                        struct tzif_header *h)
{
    if (len - *pos < 44 || memcmp(buf + *pos, "TZif", 4) != 0)
        return false;
    const unsigned char *p = buf + *pos;
    h->version = (char)p[4];
    h->isutcnt = be32(p + 20);
    h->isstdcnt = be32(p + 24);
    h->leapcnt = be32(p + 28);
    h->timecnt = be32(p + 32);
    h->typecnt = be32(p + 36);
    h->charcnt = be32(p + 40);
    *pos += 44;
    /* RFC 8536 3.1; the caps keep the size arithmetic below overflow-free. */
    return h->typecnt >= 1 && h->typecnt <= 256 && h->charcnt >= 1 &&
           h->charcnt <= 65536 && h->timecnt <= TZ_MAX_FILE &&
           h->leapcnt <= TZ_MAX_FILE &&
           (h->isstdcnt == 0 || h->isstdcnt == h->typecnt) &&
           (h->isutcnt == 0 || h->isutcnt == h->typecnt);
}

static size_t block_size(const struct tzif_header *h, size_t time_size)
{
    return h->timecnt * time_size + h->timecnt + h->typecnt * 6 + h->charcnt +
           h->leapcnt * (time_size + 4) + h->isstdcnt + h->isutcnt;
}

static bool read_block(const unsigned char *p, const struct tzif_header *h,
                       size_t time_size, ns_tz_t *tz)
{
    tz->ntrans = h->timecnt;
    tz->ntypes = h->typecnt;
    tz->trans = malloc((h->timecnt ? h->timecnt : 1) * sizeof(*tz->trans));
    tz->trans_type = malloc(h->timecnt ? h->timecnt : 1);
    tz->utoff = malloc(h->typecnt * sizeof(*tz->utoff));
    if (tz->trans == NULL || tz->trans_type == NULL || tz->utoff == NULL)
        return false;
    for (size_t i = 0; i < h->timecnt; i++, p += time_size) {
        tz->trans[i] = time_size == 8 ? be64(p) : (int64_t)(int32_t)be32(p);
        if (i > 0 && tz->trans[i] <= tz->trans[i - 1])
            return false;
    }
    for (size_t i = 0; i < h->timecnt; i++, p++) {
        if (*p >= h->typecnt)
            return false;
        tz->trans_type[i] = *p;
    }
    for (size_t i = 0; i < h->typecnt; i++, p += 6) {
        int32_t utoff = (int32_t)be32(p);
        if (utoff < TZ_MIN_UTOFF || utoff > TZ_MAX_UTOFF || p[4] > 1)
            return false;
        tz->utoff[i] = utoff;
    }
    return true;
}

/* Parses a whole TZif file into tz (whose arrays the caller frees). */
static bool parse_tzif(const unsigned char *buf, size_t len, ns_tz_t *tz)
{
    struct tzif_header h;
    size_t pos = 0;
    if (!read_header(buf, len, &pos, &h) || len - pos < block_size(&h, 4))
        return false;
    if (h.version == '\0')
        return h.leapcnt == 0 && read_block(buf + pos, &h, 4, tz);
    pos += block_size(&h, 4); /* skip the 32-bit data, read the 64-bit */
    /* Leap-second ("right/") zones count TAI-like seconds: not supported. */
    if (!read_header(buf, len, &pos, &h) || len - pos < block_size(&h, 8) ||
        h.leapcnt != 0)
        return false;
    if (!read_block(buf + pos, &h, 8, tz))
        return false;
    pos += block_size(&h, 8);
    if (pos == len)
        return true; /* no footer at all: tolerated like tzcode does */
    if (buf[pos] != '\n')
        return false;
    const unsigned char *start = buf + pos + 1;
    const unsigned char *nl = memchr(start, '\n', len - pos - 1);
    if (nl == NULL || nl - start >= TZ_MAX_FOOTER)
        return false;
    if (nl == start)
        return true; /* empty footer: the last type stays in force */
    char footer[TZ_MAX_FOOTER];
    memcpy(footer, start, (size_t)(nl - start));
    footer[nl - start] = '\0';
    tz->has_rule = true;
    return parse_posix_tz(footer, &tz->rule);
}

static void tz_free(ns_tz_t *tz)
{
    if (tz == NULL)
        return;
    free(tz->path);
    free(tz->trans);
    free(tz->trans_type);
    free(tz->utoff);
    free(tz);
}

/* Reads path; NULL if it is not a regular, readable, valid TZif file. */
static ns_tz_t *tz_load(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    struct stat st;
    unsigned char *buf = NULL;
    ns_tz_t *tz = calloc(1, sizeof(*tz));
    bool ok = tz != NULL && fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) &&
              st.st_size >= 44 && st.st_size <= TZ_MAX_FILE;
    if (ok)
        buf = malloc((size_t)st.st_size);
    ok = ok && buf != NULL &&
         fread(buf, 1, (size_t)st.st_size, f) == (size_t)st.st_size;
    fclose(f);
    ok = ok && parse_tzif(buf, (size_t)st.st_size, tz);
    free(buf);
    if (ok) {
        size_t n = strlen(path) + 1;
        tz->path = malloc(n);
        ok = tz->path != NULL;
        if (ok)
            memcpy(tz->path, path, n);
    }
    if (!ok) {
        tz_free(tz);
        return NULL;
    }
    return tz;
}

/* Zone names are relative paths inside the zone directory, nothing else. */
static bool name_is_safe(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > TZ_MAX_NAME || name[0] == '/' ||
        strstr(name, "..") != NULL)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '/' && c != '_' && c != '-' && c != '+' &&
            c != '.')
            return false;
    }
    return true;
}

const ns_tz_t *ns_tz_get(const char *name)
{
    if (name == NULL || !name_is_safe(name))
        return NULL;
    if (strcmp(name, "UTC") == 0)
        return &tz_utc;
    const char *dir = getenv("TZDIR");
    if (dir == NULL || dir[0] == '\0')
        dir = TZ_DEFAULT_DIR;
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof(path))
        return NULL;

    pthread_mutex_lock(&tz_cache_lock);
    ns_tz_t *tz = tz_cache;
    while (tz != NULL && strcmp(tz->path, path) != 0)
        tz = tz->next;
    if (tz == NULL) {
        tz = tz_load(path); /* failures are not cached: tzdata may appear */
        if (tz != NULL) {
            tz->next = tz_cache;
            tz_cache = tz;
        }
    }
    pthread_mutex_unlock(&tz_cache_lock);
    return tz;
}
