/* test_metrics.c: the Prometheus registry (ns/metrics.h): text exposition,
 * escaping, ordering, type clashes, concurrency and the series cap. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns/metrics.h"
#include "nstest.h"

/* Renders and compares against the exact expected exposition. */
#define ASSERT_RENDER(expected)                                                \
    do {                                                                       \
        char *got_ = ns_metrics_render();                                      \
        ASSERT_STREQ(got_, expected);                                          \
        free(got_);                                                            \
    } while (0)

TEST(empty_registry_renders_empty)
{
    ns_metrics_reset();
    ASSERT_RENDER("");
}

TEST(counter_adds)
{
    ns_metrics_reset();
    ns_metrics_counter_add("items_total", "Items done.", "job=\"a\"", 1);
    ns_metrics_counter_add("items_total", "ignored later help", "job=\"a\"", 2);
    ns_metrics_counter_add("items_total", NULL, NULL, 0.5);
    ns_metrics_counter_add("items_total", NULL, "job=\"a\"", -1);  /* no */
    ns_metrics_counter_add("items_total", NULL, "job=\"a\"", NAN); /* no */
    ASSERT_RENDER("# HELP items_total Items done.\n"
                  "# TYPE items_total counter\n"
                  "items_total 0.5\n"
                  "items_total{job=\"a\"} 3\n");
}

TEST(gauge_sets)
{
    ns_metrics_reset();
    ns_metrics_gauge_set("lag", "Consumer lag.", "topic=\"t\"", 10);
    ns_metrics_gauge_set("lag", NULL, "topic=\"t\"", -2.25);
    ns_metrics_gauge_set("up", "Up.", "", 1);
    ns_metrics_gauge_set("big", "Big.", NULL, 1e20);
    ns_metrics_gauge_set("inf", "Inf.", "x=\"p\"", INFINITY);
    ns_metrics_gauge_set("inf", "Inf.", "x=\"n\"", -INFINITY);
    ns_metrics_gauge_set("nan", "NaN.", NULL, NAN);
    ns_metrics_gauge_set("tenth", "A tenth.", NULL, 0.1);
    ns_metrics_gauge_set("neg_zero", "Minus zero.", NULL, -0.0);
    ns_metrics_gauge_set("ms", "Epoch ms.", NULL, 1763890200123.0);
    ASSERT_RENDER("# HELP big Big.\n# TYPE big gauge\nbig 1e+20\n"
                  "# HELP inf Inf.\n# TYPE inf gauge\n"
                  "inf{x=\"n\"} -Inf\ninf{x=\"p\"} +Inf\n"
                  "# HELP lag Consumer lag.\n# TYPE lag gauge\n"
                  "lag{topic=\"t\"} -2.25\n"
                  "# HELP ms Epoch ms.\n# TYPE ms gauge\nms 1763890200123\n"
                  "# HELP nan NaN.\n# TYPE nan gauge\nnan NaN\n"
                  "# HELP neg_zero Minus zero.\n# TYPE neg_zero gauge\n"
                  "neg_zero 0\n"
                  "# HELP tenth A tenth.\n# TYPE tenth gauge\ntenth 0.1\n"
                  "# HELP up Up.\n# TYPE up gauge\nup 1\n");
}

TEST(histogram_exact_text)
{
    ns_metrics_reset();
    const char *l = "job=\"a\"";
    ns_metrics_histogram_observe("dur_seconds", "Item time.", l, 0.003);
    ns_metrics_histogram_observe("dur_seconds", NULL, l, 0.5); /* le=0.5 */
    ns_metrics_histogram_observe("dur_seconds", NULL, l, 7);
    ns_metrics_histogram_observe("dur_seconds", NULL, l, 120); /* +Inf */
    ns_metrics_histogram_observe("dur_seconds", NULL, l, NAN); /* no */
    ASSERT_RENDER("# HELP dur_seconds Item time.\n"
                  "# TYPE dur_seconds histogram\n"
                  "dur_seconds_bucket{job=\"a\",le=\"0.005\"} 1\n"
                  "dur_seconds_bucket{job=\"a\",le=\"0.01\"} 1\n"
                  "dur_seconds_bucket{job=\"a\",le=\"0.025\"} 1\n"
                  "dur_seconds_bucket{job=\"a\",le=\"0.05\"} 1\n"
                  "dur_seconds_bucket{job=\"a\",le=\"0.1\"} 1\n"
                  "dur_seconds_bucket{job=\"a\",le=\"0.25\"} 1\n"
                  "dur_seconds_bucket{job=\"a\",le=\"0.5\"} 2\n"
                  "dur_seconds_bucket{job=\"a\",le=\"1\"} 2\n"
                  "dur_seconds_bucket{job=\"a\",le=\"2.5\"} 2\n"
                  "dur_seconds_bucket{job=\"a\",le=\"5\"} 2\n"
                  "dur_seconds_bucket{job=\"a\",le=\"10\"} 3\n"
                  "dur_seconds_bucket{job=\"a\",le=\"30\"} 3\n"
                  "dur_seconds_bucket{job=\"a\",le=\"60\"} 3\n"
                  "dur_seconds_bucket{job=\"a\",le=\"+Inf\"} 4\n"
                  "dur_seconds_sum{job=\"a\"} 127.503\n"
                  "dur_seconds_count{job=\"a\"} 4\n");
}

TEST(histogram_without_labels)
{
    ns_metrics_reset();
    ns_metrics_histogram_observe("h", "H.", NULL, 1);
    char *text = ns_metrics_render();
    ASSERT(strstr(text, "\nh_bucket{le=\"0.5\"} 0\n") != NULL);
    ASSERT(strstr(text, "\nh_bucket{le=\"1\"} 1\n") != NULL);
    ASSERT(strstr(text, "\nh_bucket{le=\"+Inf\"} 1\n") != NULL);
    ASSERT(strstr(text, "\nh_sum 1\nh_count 1\n") != NULL);
    free(text);
}

TEST(histogram_rejects_le_label)
{
    ns_metrics_reset();
    ns_metrics_histogram_observe("h", "H.", "le=\"1\"", 1);
    char *text = ns_metrics_render();
    ASSERT(strstr(text, "h_bucket") == NULL);
    ASSERT(strstr(text, "nightshift_metrics_dropped_series_total"
                        "{family=\"h\"} 1\n") != NULL);
    free(text);
}

TEST(label_escape)
{
    char out[64];
    ns_metrics_label_escape("a\\b\"c\nd", out, (int)sizeof(out));
    ASSERT_STREQ(out, "a\\\\b\\\"c\\nd");
    ns_metrics_label_escape(NULL, out, (int)sizeof(out));
    ASSERT_STREQ(out, "");
    /* Truncation never leaves half an escape. */
    ns_metrics_label_escape("ab\"", out, 4);
    ASSERT_STREQ(out, "ab");
    ns_metrics_label_escape("abcdef", out, 4);
    ASSERT_STREQ(out, "abc");
    ns_metrics_label_escape("x", out, 0); /* no write, no crash */
}

TEST(escaped_label_and_help_render)
{
    ns_metrics_reset();
    char value[64], labels[128];
    ns_metrics_label_escape("say \"hi\"\\\n", value, (int)sizeof(value));
    snprintf(labels, sizeof(labels), "chat=\"%s\"", value);
    ns_metrics_counter_add("msgs_total", "Line one\nback\\slash", labels, 1);
    ASSERT_RENDER("# HELP msgs_total Line one\\nback\\\\slash\n"
                  "# TYPE msgs_total counter\n"
                  "msgs_total{chat=\"say \\\"hi\\\"\\\\\\n\"} 1\n");
}

TEST(labels_canonical)
{
    ns_metrics_reset();
    /* Order and spacing do not make a second series. */
    ns_metrics_counter_add("c_total", "C.", "b=\"2\",a=\"1\"", 1);
    ns_metrics_counter_add("c_total", "C.", " a = \"1\" , b=\"2\", ", 1);
    ASSERT_RENDER("# HELP c_total C.\n# TYPE c_total counter\n"
                  "c_total{a=\"1\",b=\"2\"} 2\n");
}

TEST(malformed_labels_dropped)
{
    ns_metrics_reset();
    ns_metrics_counter_add("c_total", "C.", "a=\"unterminated", 1);
    ns_metrics_counter_add("c_total", "C.", "a=\"raw\"quote\"", 1);
    ns_metrics_counter_add("c_total", "C.", "a=\"x\",a=\"y\"", 1);
    ns_metrics_counter_add("c_total", "C.", "a=\"bad \\t escape\"", 1);
    ns_metrics_counter_add("bad name", "C.", NULL, 1); /* ignored */
    ASSERT_RENDER("# HELP nightshift_metrics_dropped_series_total Metric "
                  "updates dropped because a family reached its series "
                  "limit or the labels were malformed.\n"
                  "# TYPE nightshift_metrics_dropped_series_total counter\n"
                  "nightshift_metrics_dropped_series_total"
                  "{family=\"c_total\"} 4\n");
}

TEST(sorted_stable_output)
{
    ns_metrics_reset();
    ns_metrics_gauge_set("zeta", "Z.", "k=\"b\"", 1);
    ns_metrics_gauge_set("alpha", "A.", NULL, 1);
    ns_metrics_gauge_set("zeta", "Z.", "k=\"a\"", 2);
    ns_metrics_gauge_set("mid", "M.", NULL, 3);
    for (int i = 0; i < 50; i++) {
        char labels[32];
        snprintf(labels, sizeof(labels), "n=\"%d\"", (i * 37) % 50);
        ns_metrics_gauge_set("many", "Many.", labels, i);
    }
    char *first = ns_metrics_render();
    char *second = ns_metrics_render();
    ASSERT_STREQ(first, second);
    const char *a = strstr(first, "# HELP alpha");
    const char *m = strstr(first, "# HELP many");
    const char *mid = strstr(first, "# HELP mid");
    const char *z = strstr(first, "# HELP zeta");
    ASSERT(a != NULL && m != NULL && mid != NULL && z != NULL);
    ASSERT(a < m && m < mid && mid < z);
    ASSERT(strstr(first, "zeta{k=\"a\"} 2\nzeta{k=\"b\"} 1\n") != NULL);
    ASSERT(strstr(first, "many{n=\"0\"}") < strstr(first, "many{n=\"1\"}"));
    free(first);
    free(second);
}

TEST(type_mismatch_ignored)
{
    ns_metrics_reset();
    ns_metrics_counter_add("x_total", "X.", NULL, 1);
    ns_metrics_gauge_set("x_total", "X.", NULL, 100);
    ns_metrics_histogram_observe("x_total", "X.", NULL, 1);
    ns_metrics_counter_add("x_total", "X.", NULL, 1); /* still works */
    ASSERT_RENDER("# HELP x_total X.\n# TYPE x_total counter\n"
                  "x_total 2\n");
}

#define THREADS 4
#define INCREMENTS 10000

static void *increment(void *arg)
{
    for (int i = 0; i < INCREMENTS; i++) {
        ns_metrics_counter_add("conc_total", "Concurrent.", "k=\"v\"", 1);
        ns_metrics_histogram_observe("conc_seconds", "Concurrent.", NULL, 0.2);
        if (i % 1000 == 0)
            free(ns_metrics_render());
    }
    return arg;
}

TEST(concurrent_increments_exact)
{
    ns_metrics_reset();
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++)
        ASSERT_EQ(pthread_create(&threads[i], NULL, increment, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        ASSERT_EQ(pthread_join(threads[i], NULL), 0);
    char *text = ns_metrics_render();
    ASSERT(strstr(text, "\nconc_total{k=\"v\"} 40000\n") != NULL);
    ASSERT(strstr(text, "\nconc_seconds_count 40000\n") != NULL);
    ASSERT(strstr(text, "\nconc_seconds_bucket{le=\"0.25\"} 40000\n") != NULL);
    ASSERT(strstr(text, "\nconc_seconds_bucket{le=\"0.1\"} 0\n") != NULL);
    free(text);
}

static int count_lines_with(const char *text, const char *prefix)
{
    int n = 0;
    size_t len = strlen(prefix);
    for (const char *p = text; p != NULL && *p; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        if (strncmp(p, prefix, len) == 0)
            n++;
    }
    return n;
}

TEST(series_cap)
{
    ns_metrics_reset();
    char labels[64];
    for (int i = 0; i < 10005; i++) {
        snprintf(labels, sizeof(labels), "user=\"u%d\"", i);
        ns_metrics_counter_add("hostile_total", "H.", labels, 1);
    }
    /* Existing series keep counting once the family is full. */
    ns_metrics_counter_add("hostile_total", "H.", "user=\"u0\"", 1);
    char *text = ns_metrics_render();
    ASSERT_EQ(count_lines_with(text, "hostile_total{"), 10000);
    ASSERT(strstr(text, "\nhostile_total{user=\"u0\"} 2\n") != NULL);
    ASSERT(strstr(text, "nightshift_metrics_dropped_series_total"
                        "{family=\"hostile_total\"} 5\n") != NULL);
    free(text);
}

TEST(reset_drops_everything)
{
    ns_metrics_counter_add("a_total", "A.", NULL, 1);
    ns_metrics_reset();
    ASSERT_RENDER("");
    /* After a reset a name may come back with another type. */
    ns_metrics_gauge_set("a_total", "A.", NULL, 5);
    ASSERT_RENDER("# HELP a_total A.\n# TYPE a_total gauge\na_total 5\n");
}

NSTEST_MAIN
