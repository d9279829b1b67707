/* metrics.c: the process-wide Prometheus registry behind ns/metrics.h.
 * One mutex guards everything: updates are a hash lookup and an add, and a
 * scrape every few seconds holding it for a render is cheap enough. */
#include "ns/metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/buf.h"
#include "ns/log.h"

/* Bounds, so that a label fed from user input cannot exhaust memory. */
#define MAX_FAMILIES 1000
#define MAX_SERIES 10000
#define MAX_NAME_LEN 200
#define MAX_LABELS_LEN 1024
#define MAX_LABEL_PAIRS 32
#define MAX_RENDER_BYTES ((size_t)1 << 30)

#define DROPPED_NAME "nightshift_metrics_dropped_series_total"
#define DROPPED_HELP                                                           \
    "Metric updates dropped because a family reached its series limit "        \
    "or the labels were malformed."

typedef enum metric_type {
    METRIC_COUNTER,
    METRIC_GAUGE,
    METRIC_HISTOGRAM,
} metric_type_t;

static const char *const type_names[] = {"counter", "gauge", "histogram"};

static const double default_buckets[] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
#define NBUCKETS (sizeof(default_buckets) / sizeof(default_buckets[0]))

typedef struct series {
    struct series *next; /* hash chain */
    char *labels;        /* canonical: sorted pairs, no spaces; "" = none */
    uint32_t hash;
    double value; /* counter / gauge */
    double sum;   /* histogram */
    uint64_t count;
    uint64_t buckets[]; /* histogram only: per-bucket, not cumulative */
} series_t;

typedef struct family {
    char *name;
    char *help;
    metric_type_t type;
    int mismatch_warned;
    series_t **table;
    size_t nslots; /* power of two */
    size_t nseries;
} family_t;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static family_t **families; /* sorted by name */
static size_t nfamilies;
static size_t families_cap;

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

static int valid_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > MAX_NAME_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    c == '_' || c == ':';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return 0;
    }
    return 1;
}

typedef struct label_pair {
    const char *name;
    size_t name_len;
    const char *value; /* escaped, without the quotes */
    size_t value_len;
} label_pair_t;

static int pair_cmp(const void *a, const void *b)
{
    const label_pair_t *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c != 0)
        return c;
    return (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

static const char *skip_spaces(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Parses one `name="value"` at p into pair; returns the end or NULL. */
static const char *parse_pair(const char *p, label_pair_t *pair)
{
    pair->name = p;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
           (p > pair->name && *p >= '0' && *p <= '9'))
        p++;
    pair->name_len = (size_t)(p - pair->name);
    p = skip_spaces(p);
    if (pair->name_len == 0 || *p != '=')
        return NULL;
    p = skip_spaces(p + 1);
    if (*p != '"')
        return NULL;
    pair->value = ++p;
    while (*p != '"') {
        if (*p == '\0' || *p == '\n')
            return NULL;
        if (*p == '\\') {
            if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
                return NULL;
            p++;
        }
        p++;
    }
    pair->value_len = (size_t)(p - pair->value);
    return p + 1;
}

/* Rewrites a caller's label set into one canonical form (pairs sorted by
 * name, no whitespace, no trailing comma) so that the same labels written
 * two ways are one series, never a duplicate Prometheus rejects. Returns
 * 0 and fills out (MAX_LABELS_LEN + 1 bytes), or -1 if malformed. */
static int canonical_labels(const char *labels, int forbid_le, char *out)
{
    label_pair_t pairs[MAX_LABEL_PAIRS];
    size_t npairs = 0;
    const char *p = skip_spaces(labels ? labels : "");
    out[0] = '\0';
    if (strlen(p) > MAX_LABELS_LEN)
        return -1;
    while (*p != '\0') {
        if (npairs == MAX_LABEL_PAIRS)
            return -1;
        p = parse_pair(p, &pairs[npairs]);
        if (p == NULL)
            return -1;
        npairs++;
        p = skip_spaces(p);
        if (*p == ',')
            p = skip_spaces(p + 1);
        else if (*p != '\0')
            return -1;
    }
    qsort(pairs, npairs, sizeof(pairs[0]), pair_cmp);
    size_t len = 0;
    for (size_t i = 0; i < npairs; i++) {
        if (i > 0 && pair_cmp(&pairs[i - 1], &pairs[i]) == 0)
            return -1;
        if (forbid_le && pairs[i].name_len == 2 &&
            memcmp(pairs[i].name, "le", 2) == 0)
            return -1;
        int n =
            snprintf(out + len, MAX_LABELS_LEN + 1 - len, "%s%.*s=\"%.*s\"",
                     i > 0 ? "," : "", (int)pairs[i].name_len, pairs[i].name,
                     (int)pairs[i].value_len, pairs[i].value);
        if (n < 0 || (size_t)n > MAX_LABELS_LEN - len)
            return -1;
        len += (size_t)n;
    }
    return 0;
}

static family_t *family_find(const char *name, size_t *pos)
{
    size_t lo = 0, hi = nfamilies;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(families[mid]->name, name);
        if (c == 0)
            return families[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos = lo;
    return NULL;
}

static family_t *family_insert(size_t pos, const char *name, const char *help,
                               metric_type_t type)
{
    if (nfamilies == families_cap) {
        size_t cap = families_cap ? families_cap * 2 : 16;
        family_t **grown = realloc(families, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        families = grown;
        families_cap = cap;
    }
    family_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    f->type = type;
    if (f->name == NULL || f->help == NULL) {
        free(f->name);
        free(f->help);
        free(f);
        return NULL;
    }
    memmove(&families[pos + 1], &families[pos],
            (nfamilies - pos) * sizeof(*families));
    families[pos] = f;
    nfamilies++;
    return f;
}

static void family_free(family_t *f)
{
    for (size_t i = 0; i < f->nslots; i++) {
        series_t *s = f->table[i];
        while (s != NULL) {
            series_t *next = s->next;
            free(s->labels);
            free(s);
            s = next;
        }
    }
    free(f->table);
    free(f->name);
    free(f->help);
    free(f);
}

static int family_grow(family_t *f)
{
    size_t nslots = f->nslots ? f->nslots * 2 : 8;
    series_t **table = calloc(nslots, sizeof(*table));
    if (table == NULL)
        return -1;
    for (size_t i = 0; i < f->nslots; i++) {
        series_t *s = f->table[i];
        while (s != NULL) {
            series_t *next = s->next;
            size_t slot = s->hash & (nslots - 1);
            s->next = table[slot];
            table[slot] = s;
            s = next;
        }
    }
    free(f->table);
    f->table = table;
    f->nslots = nslots;
    return 0;
}

typedef enum lookup {
    LOOKUP_FOUND,
    LOOKUP_FULL, /* the family is at MAX_SERIES */
    LOOKUP_NOMEM,
} lookup_t;

static series_t *series_get(family_t *f, const char *labels, lookup_t *why)
{
    uint32_t hash = hash_str(labels);
    if (f->nslots > 0) {
        series_t *s = f->table[hash & (f->nslots - 1)];
        for (; s != NULL; s = s->next) {
            if (s->hash == hash && strcmp(s->labels, labels) == 0)
                return s;
        }
    }
    if (f->nseries >= MAX_SERIES) {
        *why = LOOKUP_FULL;
        return NULL;
    }
    *why = LOOKUP_NOMEM;
    if (f->nseries >= f->nslots && family_grow(f) != 0)
        return NULL;
    size_t extra =
        f->type == METRIC_HISTOGRAM ? NBUCKETS * sizeof(uint64_t) : 0;
    series_t *s = calloc(1, sizeof(*s) + extra);
    if (s == NULL)
        return NULL;
    s->labels = strdup(labels);
    if (s->labels == NULL) {
        free(s);
        return NULL;
    }
    s->hash = hash;
    size_t slot = hash & (f->nslots - 1);
    s->next = f->table[slot];
    f->table[slot] = s;
    f->nseries++;
    return s;
}

/* Counts a dropped update under family="<name>". The dropped family is
 * exempt from MAX_FAMILIES, and drops within itself are not recounted. */
static void count_dropped(const char *family_name)
{
    if (strcmp(family_name, DROPPED_NAME) == 0)
        return;
    size_t pos = 0;
    family_t *f = family_find(DROPPED_NAME, &pos);
    if (f == NULL)
        f = family_insert(pos, DROPPED_NAME, DROPPED_HELP, METRIC_COUNTER);
    if (f == NULL || f->type != METRIC_COUNTER)
        return;
    char escaped[MAX_NAME_LEN * 2 + 1];
    char labels[MAX_LABELS_LEN + 1];
    ns_metrics_label_escape(family_name, escaped, (int)sizeof(escaped));
    snprintf(labels, sizeof(labels), "family=\"%s\"", escaped);
    lookup_t why;
    series_t *s = series_get(f, labels, &why);
    if (s != NULL)
        s->value += 1;
}

/* Finds the series to update with the registry locked; NULL means the
 * update is ignored. *mismatch tells the caller to warn (once). */
static series_t *lookup_locked(const char *name, const char *help,
                               const char *labels, metric_type_t type,
                               int *mismatch)
{
    size_t pos = 0;
    family_t *f = family_find(name, &pos);
    if (f != NULL && f->type != type) {
        *mismatch = !f->mismatch_warned;
        f->mismatch_warned = 1;
        return NULL;
    }
    char canon[MAX_LABELS_LEN + 1];
    if (canonical_labels(labels, type == METRIC_HISTOGRAM, canon) != 0) {
        count_dropped(name);
        return NULL;
    }
    if (f == NULL && nfamilies >= MAX_FAMILIES) {
        count_dropped(name);
        return NULL;
    }
    if (f == NULL)
        f = family_insert(pos, name, help, type);
    if (f == NULL)
        return NULL;
    lookup_t why = LOOKUP_FOUND;
    series_t *s = series_get(f, canon, &why);
    if (s == NULL && why == LOOKUP_FULL)
        count_dropped(name);
    return s;
}

static void update(const char *name, const char *help, const char *labels,
                   metric_type_t type, double v)
{
    if (name == NULL || !valid_name(name))
        return;
    int mismatch = 0;
    pthread_mutex_lock(&registry_lock);
    series_t *s = lookup_locked(name, help, labels, type, &mismatch);
    if (s != NULL && type == METRIC_COUNTER) {
        s->value += v;
    } else if (s != NULL && type == METRIC_GAUGE) {
        s->value = v;
    } else if (s != NULL) {
        size_t i = 0;
        while (i < NBUCKETS && v > default_buckets[i])
            i++;
        if (i < NBUCKETS)
            s->buckets[i]++;
        s->sum += v;
        s->count++;
    }
    pthread_mutex_unlock(&registry_lock);
    if (mismatch)
        NS_WARN(NULL,
                "metrics: %s used as a %s, but it is a different type; "
                "update ignored",
                name, type_names[type]);
}

void ns_metrics_counter_add(const char *name, const char *help,
                            const char *labels, double v)
{
    /* A counter only goes up; NaN would stick for the process's life. */
    if (!(v >= 0))
        return;
    update(name, help, labels, METRIC_COUNTER, v);
}

void ns_metrics_gauge_set(const char *name, const char *help,
                          const char *labels, double v)
{
    update(name, help, labels, METRIC_GAUGE, v);
}

void ns_metrics_histogram_observe(const char *name, const char *help,
                                  const char *labels, double v)
{
    if (isnan(v))
        return;
    update(name, help, labels, METRIC_HISTOGRAM, v);
}

void ns_metrics_label_escape(const char *value, char *out, int outlen)
{
    if (out == NULL || outlen <= 0)
        return;
    size_t len = 0, room = (size_t)outlen - 1;
    for (const char *p = value ? value : ""; *p != '\0'; p++) {
        char esc = *p == '\\' ? '\\' : *p == '"' ? '"' : *p == '\n' ? 'n' : 0;
        size_t need = esc ? 2 : 1;
        /* Never split an escape: a lone backslash would break the line. */
        if (len + need > room)
            break;
        if (esc) {
            out[len++] = '\\';
            out[len++] = esc;
        } else {
            out[len++] = *p;
        }
    }
    out[len] = '\0';
}

/* Formats v so Prometheus parses it: integers without exponent, else the
 * shortest form that reads back exactly. */
static void format_value(double v, char *out, size_t outlen)
{
    if (isnan(v)) {
        snprintf(out, outlen, "NaN");
    } else if (isinf(v)) {
        snprintf(out, outlen, "%s", v > 0 ? "+Inf" : "-Inf");
    } else if (v == 0) {
        snprintf(out, outlen, "0"); /* also -0 */
    } else if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(out, outlen, "%.0f", v);
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(out, outlen, "%.*g", prec, v);
            if (strtod(out, NULL) == v)
                break;
        }
    }
}

/* The render buffer with a sticky error: one failed append fails the
 * whole render, since a truncated exposition would be half-parsed. */
typedef struct out {
    ns_buf_t buf;
    ns_err_t err;
} out_t;

static void out_addf(out_t *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void out_addf(out_t *o, const char *fmt, ...)
{
    if (o->err != NS_OK)
        return;
    va_list ap;
    va_start(ap, fmt);
    o->err = ns_buf_vaddf(&o->buf, fmt, ap);
    va_end(ap);
}

static void render_help(out_t *o, const family_t *f)
{
    out_addf(o, "# HELP %s ", f->name);
    const char *p = f->help;
    while (*p != '\0') {
        size_t plain = strcspn(p, "\\\n");
        out_addf(o, "%.*s", (int)plain, p);
        p += plain;
        if (*p != '\0') {
            out_addf(o, "%s", *p == '\\' ? "\\\\" : "\\n");
            p++;
        }
    }
    out_addf(o, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
}

static void render_histogram(out_t *o, const family_t *f, const series_t *s)
{
    const char *sep = s->labels[0] ? "," : "";
    char num[64];
    uint64_t cumulative = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
        cumulative += s->buckets[i];
        format_value(default_buckets[i], num, sizeof(num));
        out_addf(o, "%s_bucket{%s%sle=\"%s\"} %" PRIu64 "\n", f->name,
                 s->labels, sep, num, cumulative);
    }
    out_addf(o, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", f->name, s->labels,
             sep, s->count);
    format_value(s->sum, num, sizeof(num));
    if (s->labels[0]) {
        out_addf(o, "%s_sum{%s} %s\n", f->name, s->labels, num);
        out_addf(o, "%s_count{%s} %" PRIu64 "\n", f->name, s->labels, s->count);
    } else {
        out_addf(o, "%s_sum %s\n", f->name, num);
        out_addf(o, "%s_count %" PRIu64 "\n", f->name, s->count);
    }
}

static int series_cmp(const void *a, const void *b)
{
    const series_t *x = *(const series_t *const *)a;
    const series_t *y = *(const series_t *const *)b;
    return strcmp(x->labels, y->labels);
}

static void render_family(out_t *o, const family_t *f)
{
    size_t n = 0;
    series_t **sorted = malloc((f->nseries ? f->nseries : 1) * sizeof(*sorted));
    if (sorted == NULL) {
        o->err = NS_ERR_NOMEM;
        return;
    }
    for (size_t i = 0; i < f->nslots; i++) {
        for (series_t *s = f->table[i]; s != NULL; s = s->next)
            sorted[n++] = s;
    }
    qsort(sorted, n, sizeof(*sorted), series_cmp);
    render_help(o, f);
    char num[64];
    for (size_t i = 0; i < n; i++) {
        const series_t *s = sorted[i];
        if (f->type == METRIC_HISTOGRAM) {
            render_histogram(o, f, s);
            continue;
        }
        format_value(s->value, num, sizeof(num));
        if (s->labels[0])
            out_addf(o, "%s{%s} %s\n", f->name, s->labels, num);
        else
            out_addf(o, "%s %s\n", f->name, num);
    }
    free(sorted);
}

char *ns_metrics_render(void)
{
    out_t o = {.err = NS_OK};
    ns_buf_init(&o.buf, MAX_RENDER_BYTES);
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < nfamilies && o.err == NS_OK; i++)
        render_family(&o, families[i]);
    pthread_mutex_unlock(&registry_lock);
    if (o.err != NS_OK) {
        ns_buf_free(&o.buf);
        return NULL;
    }
    return ns_buf_take(&o.buf);
}

void ns_metrics_reset(void)
{
    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < nfamilies; i++)
        family_free(families[i]);
    free(families);
    families = NULL;
    nfamilies = 0;
    families_cap = 0;
    pthread_mutex_unlock(&registry_lock);
}
