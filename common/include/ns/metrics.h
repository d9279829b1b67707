/* metrics.h: a process-wide Prometheus registry.
 * Counters, gauges and histograms keyed by name + label string; rendered in
 * the text exposition format for /metrics. Thread-safe. */
#ifndef NS_METRICS_H
#define NS_METRICS_H

/** labels: a Prometheus label set without braces, e.g.
 *  "job=\"batch-analyzer\",status=\"done\"", or NULL. Values are escaped by
 *  the caller with ns_metrics_label_escape. help is used on first sight. */
void ns_metrics_counter_add(const char *name, const char *help,
                            const char *labels, double v);
void ns_metrics_gauge_set(const char *name, const char *help,
                          const char *labels, double v);
/** Default buckets: 0.005 .. 60 seconds. */
void ns_metrics_histogram_observe(const char *name, const char *help,
                                  const char *labels, double v);
/** @brief The whole registry in text format; malloc'd. */
char *ns_metrics_render(void);
/** @brief Escapes \, " and newline for a label value into out. */
void ns_metrics_label_escape(const char *value, char *out, int outlen);
/** @brief Drops every series (tests). */
void ns_metrics_reset(void);

#endif
