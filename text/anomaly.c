/* anomaly.c: spike and burst detection for log templates (anomaly.h).
 * Median and MAD rather than mean and standard deviation: one earlier
 * incident in the history must not hide the next one. */
#include "ns/anomaly.h"

#include <math.h>
#include <stdlib.h>

#define MAX_SAMPLES 512

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double ns_anomaly_median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

const char *ns_severity_name(ns_severity_t s)
{
    return s == NS_SEVERITY_CRITICAL  ? "critical"
           : s == NS_SEVERITY_WARNING ? "warning"
                                      : "info";
}

static ns_anomaly_opts_t with_defaults(const ns_anomaly_opts_t *o)
{
    ns_anomaly_opts_t d = o ? *o : (ns_anomaly_opts_t){0};
    if (d.min_history <= 0)
        d.min_history = 5;
    if (d.spike_score <= 0)
        d.spike_score = 6;
    if (d.spike_ratio <= 0)
        d.spike_ratio = 3;
    if (d.min_count <= 0)
        d.min_count = 10;
    if (d.ewma_alpha <= 0 || d.ewma_alpha > 1)
        d.ewma_alpha = 0.3;
    if (d.burst_count <= 0)
        d.burst_count = 20;
    if (d.rare_total <= 0)
        d.rare_total = 5;
    return d;
}

static ns_severity_t severity_of(ns_loglevel_t level, int large)
{
    ns_severity_t s = level >= NS_LOGLEVEL_CRITICAL ? NS_SEVERITY_CRITICAL
                      : level >= NS_LOGLEVEL_ERROR  ? NS_SEVERITY_WARNING
                                                    : NS_SEVERITY_INFO;
    if (large && s < NS_SEVERITY_CRITICAL)
        s++;
    return s;
}

/* Median and 1.4826 x MAD (a robust sigma), floored by Poisson noise so a
 * flat history of 2, 2, 2 does not make 3 a spike. */
static void robust(const int64_t *x, size_t n, double *centre, double *sigma)
{
    double v[MAX_SAMPLES];
    if (n > MAX_SAMPLES)
        n = MAX_SAMPLES;
    for (size_t i = 0; i < n; i++)
        v[i] = (double)x[i];
    *centre = ns_anomaly_median(v, n);
    for (size_t i = 0; i < n; i++)
        v[i] = fabs((double)x[i] - *centre);
    double mad = ns_anomaly_median(v, n);
    *sigma = fmax(1.4826 * mad, fmax(1.0, sqrt(*centre)));
}

/* Exponentially weighted mean and deviation, oldest first. */
static void ewma(const int64_t *recent, size_t n, double alpha, double *centre,
                 double *sigma)
{
    double mean = 0, var = 0;
    for (size_t k = n; k-- > 0;) {
        double x = (double)recent[k];
        if (k == n - 1) {
            mean = x;
            continue;
        }
        double d = x - mean;
        mean += alpha * d;
        var = (1 - alpha) * (var + alpha * d * d);
    }
    *centre = mean;
    *sigma = fmax(sqrt(var), fmax(1.0, sqrt(mean)));
}

ns_anomaly_t ns_anomaly_judge(int64_t count, const int64_t *comparable,
                              size_t n_comparable, const int64_t *recent,
                              size_t n_recent, int64_t seen_before,
                              ns_loglevel_t level,
                              const ns_anomaly_opts_t *opts)
{
    ns_anomaly_opts_t o = with_defaults(opts);
    ns_anomaly_t a = {.method = "none"};
    /* A new or rare template at a high rate. */
    if (seen_before < o.rare_total && count >= o.burst_count) {
        a.kind = NS_ANOMALY_BURST;
        a.method = seen_before == 0 ? "new" : "rare";
        a.baseline = (double)seen_before;
        a.spread = 1;
        a.score = (double)count;
        a.severity = severity_of(level, count >= 5 * o.burst_count);
        return a;
    }
    if (count < o.min_count)
        return a;
    if ((int)n_comparable >= o.min_history) {
        robust(comparable, n_comparable, &a.baseline, &a.spread);
        a.method = "median/MAD";
    } else if (n_recent > 0) {
        ewma(recent, n_recent, o.ewma_alpha, &a.baseline, &a.spread);
        a.method = "EWMA";
    } else {
        return a; /* nothing to compare with: a burst or nothing */
    }
    a.score = ((double)count - a.baseline) / a.spread;
    if (a.score >= o.spike_score &&
        (double)count >= o.spike_ratio * fmax(a.baseline, 1.0)) {
        a.kind = NS_ANOMALY_SPIKE;
        int large = a.score >= 2 * o.spike_score ||
                    (double)count >= 10 * fmax(a.baseline, 1.0);
        a.severity = severity_of(level, large);
    }
    return a;
}
