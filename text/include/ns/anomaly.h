/* anomaly.h: is a template's count in one window unusual for it? A
 * robust baseline (median and MAD of comparable windows: the same time
 * of day on earlier days), an EWMA of the recent windows while that
 * history is short, and bursts of new or rare templates. */
#ifndef NS_ANOMALY_H
#define NS_ANOMALY_H

#include <stddef.h>
#include <stdint.h>

#include "ns/logline.h"

/** Thresholds; zero fields take the defaults. */
typedef struct ns_anomaly_opts {
    int min_history;     /**< comparable windows for median/MAD: 5 */
    double spike_score;  /**< robust z-score for a spike: 6 */
    double spike_ratio;  /**< and at least this x the baseline: 3 */
    int64_t min_count;   /**< fewer lines are never a spike: 10 */
    double ewma_alpha;   /**< weight of the newest recent window: 0.3 */
    int64_t burst_count; /**< a new or rare template this often: 20 */
    int64_t rare_total;  /**< seen fewer times before: rare, 5 */
} ns_anomaly_opts_t;

typedef enum ns_anomaly_kind {
    NS_ANOMALY_NONE = 0,
    NS_ANOMALY_SPIKE, /**< far above its own history */
    NS_ANOMALY_BURST, /**< new or rare, at a high rate */
} ns_anomaly_kind_t;

typedef enum ns_severity {
    NS_SEVERITY_INFO = 0,
    NS_SEVERITY_WARNING,
    NS_SEVERITY_CRITICAL,
} ns_severity_t;

typedef struct ns_anomaly {
    ns_anomaly_kind_t kind;
    ns_severity_t severity;
    double baseline;    /**< expected lines (median or EWMA) */
    double spread;      /**< robust sigma used for the score */
    double score;       /**< (count - baseline) / spread */
    const char *method; /**< "median/MAD", "EWMA", "new", "rare", "none" */
} ns_anomaly_t;

/** @brief Judges count (this window's lines of one template).
 *  comparable[0..n_comparable): its lines in the same window of earlier
 *  days (0 where a processed window had none); recent[0..n_recent): the
 *  windows just before, newest first; seen_before: its lines in all
 *  earlier windows. Severity comes from level (error: warning, critical
 *  and above: critical, else info) raised one step for a large magnitude
 *  (score at least twice spike_score, or ten times the baseline). */
ns_anomaly_t ns_anomaly_judge(int64_t count, const int64_t *comparable,
                              size_t n_comparable, const int64_t *recent,
                              size_t n_recent, int64_t seen_before,
                              ns_loglevel_t level,
                              const ns_anomaly_opts_t *opts);

/** @brief "info", "warning", "critical". */
const char *ns_severity_name(ns_severity_t s);

/** @brief The median of v[0..n) (v is reordered). 0 when n is 0. */
double ns_anomaly_median(double *v, size_t n);

#endif
