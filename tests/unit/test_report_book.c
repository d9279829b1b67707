/* test_report_book.c: the hourly report workbook, written with libxlsxwriter
 * and read back with openpyxl (tests/check_report_book.py): sheets, styles,
 * cell types and values, totals, the empty hour, hostile text.
 *   test_report_book --sample out.xlsx   writes the normal hour's workbook
 *                                        (tests/render_report.sh uses it) */
#include "report_book.h"

#include "nstest.h"

#include <errno.h>
#include <libgen.h>
#include <sys/stat.h>

/* 2026-11-30 04:00 UTC: 05:00 in Europe/Berlin (UTC+01:00). */
#define HOUR_MS INT64_C(1796011200000)
#define MIN_MS INT64_C(60000)

static const ns_report_hour_t normal_hour = {HOUR_MS, HOUR_MS + 60 * MIN_MS,
                                             "Europe/Berlin"};

/* The values check_report_book.py expects; keep the two in step. */
static const ns_report_run_t normal_runs[] = {
    {"batch-analyzer", 101, HOUR_MS + 5500, "succeeded", 12.5, 40, 0, 40},
    {"stopwords-refresh", 102, HOUR_MS + 10 * MIN_MS, "failed", 63.25, 7, 3,
     10},
    {"log-analyzer", 103, HOUR_MS + 45 * MIN_MS, "running", -1, 2, 0, 96},
    {"reports-generator", 104, HOUR_MS + 60 * MIN_MS - 1000, "running", -1, 0,
     0, 1},
    {"webhook", 1234567, HOUR_MS + 30 * MIN_MS, "succeeded", 3725.0, 12345, 0,
     12345},
};

static const ns_report_analysis_t normal_analyses[] = {
    {"Apollo", HOUR_MS + 20 * MIN_MS, "sonar-pro", 1532,
     "Assessment: on track.\r\n\r\nRisks: the vendor API changes in "
     "January.\n\x07Next steps: pin the client version.\nLine four is not "
     "shown.\n"},
    {"Zeus \xF0\x9F\x9A\x80", HOUR_MS + 50 * MIN_MS, "gpt-4o-mini", 980,
     "Short answer.\n\n\n"},
};

static const ns_report_run_t hostile_runs[] = {
    {"=HYPERLINK(\"http://x\",\"y\")", 1, HOUR_MS, "+1", 1.0, 1, 0, 1},
    {"-2", 2, HOUR_MS, "@SUM(A1)", 1.0, 1, 0, 1},
    {"\t=1+1", 3, HOUR_MS, "\r=2+3", 1.0, 1, 0, 1},
    {"ctl\x01\x1b[31mred\x7f\xC2\x85"
     "end",
     4, HOUR_MS, "a\tb\r\nc", 1.0, 1, 0, 1},
    {"bad\xFF\xFE\xC3(utf8", 5, HOUR_MS,
     "\xEF\xBF\xBE"
     "x",
     1.0, 1, 0, 1},
    {"deploy \xF0\x9F\x9A\x80\xE2\x9C\x85", 6, HOUR_MS,
     "\xD9\x85\xD8\xB4\xD8\xB1\xD9\x88\xD8\xB9 \xD7\xA2\xD7\x91\xD7\xA8\xD7"
     "\x99\xD7\xAA",
     1.0, 1, 0, 1},
    {"_x0041_", 7, HOUR_MS, NULL, 1.0, 1, 0, 1},
    {"=cmd|' /C calc'!A0", 8, HOUR_MS, "succeeded", 1.0, 1, 0, 1},
};

static const ns_report_analysis_t hostile_analyses[] = {
    {"=1+2", HOUR_MS, "@model", 1, "=HYPERLINK(\"http://x\",\"y\")\nsecond"},
    {"+cmd", HOUR_MS, "-m", 2, "\t-tab first\r\n\x1b[2Jcleared\x7f"},
    {NULL, HOUR_MS, NULL, 3, NULL},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static ns_err_t write_normal(const char *path, ns_error_t *err)
{
    return ns_report_book_write(path, &normal_hour, normal_runs, N(normal_runs),
                                normal_analyses, N(normal_analyses), err);
}

static void path_in(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    ASSERT(n > 0 && (size_t)n < cap);
}

/* tests/check_report_book.py, beside this file's directory. */
static void checker_path(char *out, size_t cap)
{
    const char *src = getenv("NS_SRC");
    if (src != NULL && *src != '\0') {
        path_in(out, cap, src, "tests/check_report_book.py");
        return;
    }
    char here[4096];
    snprintf(here, sizeof(here), "%s", __FILE__);
    char *unit_dir = dirname(here);
    char tests_dir[4096];
    snprintf(tests_dir, sizeof(tests_dir), "%s", unit_dir);
    path_in(out, cap, dirname(tests_dir), "check_report_book.py");
}

/* Debian's python3 (where python3-openpyxl lives), not a pyenv shim. */
static int run_checker(const char *dir)
{
    char script[4096];
    checker_path(script, sizeof(script));
    const char *python =
        access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        execlp(python, python, script, dir, (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", python, strerror(errno));
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void remove_dir(const char *dir, const char *const *names, size_t n)
{
    char path[4096];
    for (size_t i = 0; i < n; i++) {
        path_in(path, sizeof(path), dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

TEST(workbooks_read_back_with_openpyxl)
{
    char dir[] = "/tmp/ns-report-book.XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    static const char *const names[] = {"normal.xlsx", "empty.xlsx",
                                        "hostile.xlsx", "runs_only.xlsx"};
    char path[4096];
    ns_error_t err;

    path_in(path, sizeof(path), dir, names[0]);
    ASSERT_EQ(write_normal(path, &err), NS_OK);

    /* 22:00 UTC: the local hour runs past midnight into December. */
    ns_report_hour_t late = {HOUR_MS + 18 * 60 * MIN_MS,
                             HOUR_MS + 19 * 60 * MIN_MS, "Europe/Berlin"};
    path_in(path, sizeof(path), dir, names[1]);
    ASSERT_EQ(ns_report_book_write(path, &late, NULL, 0, NULL, 0, &err), NS_OK);

    ns_report_hour_t utc = {HOUR_MS, HOUR_MS + 60 * MIN_MS, "UTC"};
    path_in(path, sizeof(path), dir, names[2]);
    ASSERT_EQ(ns_report_book_write(path, &utc, hostile_runs, N(hostile_runs),
                                   hostile_analyses, N(hostile_analyses), &err),
              NS_OK);

    path_in(path, sizeof(path), dir, names[3]);
    ASSERT_EQ(ns_report_book_write(path, &utc, normal_runs, 1, NULL, 0, &err),
              NS_OK);

    int rc = run_checker(dir);
    if (rc != 0)
        NSTEST_FAIL("check_report_book.py failed (exit %d); files kept in %s",
                    rc, dir);
    remove_dir(dir, names, N(names));
}

TEST(unknown_zone_and_unwritable_path_are_errors)
{
    char dir[] = "/tmp/ns-report-book.XXXXXX";
    ASSERT(mkdtemp(dir) != NULL);
    char path[4096];
    path_in(path, sizeof(path), dir, "r.xlsx");
    ns_error_t err;
    ns_report_hour_t bad = {HOUR_MS, HOUR_MS + 60 * MIN_MS, "Mars/Olympus"};
    ASSERT_EQ(ns_report_book_write(path, &bad, normal_runs, 1, NULL, 0, &err),
              NS_ERR_INVALID);
    ASSERT(strstr(err.msg, "Mars/Olympus") != NULL);
    ASSERT(access(path, F_OK) != 0);

    path_in(path, sizeof(path), dir, "missing/r.xlsx");
    ASSERT_EQ(write_normal(path, &err), NS_ERR_IO);
    ASSERT(strstr(err.msg, "missing/r.xlsx") != NULL);
    ASSERT_EQ(ns_report_book_write(NULL, &normal_hour, NULL, 0, NULL, 0, &err),
              NS_ERR_INVALID);
    ASSERT_EQ(ns_report_book_write(path, &normal_hour, NULL, 2, NULL, 0, &err),
              NS_ERR_INVALID);
    ns_report_hour_t backwards = {HOUR_MS, HOUR_MS, "UTC"};
    ASSERT_EQ(ns_report_book_write(path, &backwards, NULL, 0, NULL, 0, &err),
              NS_ERR_INVALID);
    /* Nothing half-written is left beside the target. */
    ASSERT_EQ(rmdir(dir), 0);
}

TEST(filename_is_the_local_hour_start)
{
    char name[64];
    ns_report_book_filename(&normal_hour, name, sizeof(name));
    ASSERT_STREQ(name, "report_2026-11-30_0500.xlsx");

    ns_report_hour_t utc = {HOUR_MS, HOUR_MS + 60 * MIN_MS, "UTC"};
    ns_report_book_filename(&utc, name, sizeof(name));
    ASSERT_STREQ(name, "report_2026-11-30_0400.xlsx");

    ns_report_hour_t kolkata = {HOUR_MS, HOUR_MS + 60 * MIN_MS, "Asia/Kolkata"};
    ns_report_book_filename(&kolkata, name, sizeof(name));
    ASSERT_STREQ(name, "report_2026-11-30_0930.xlsx");

    /* 2026-10-25: Berlin's 02:00-03:00 happens twice (CEST, then CET). */
    int64_t first = INT64_C(1792886400000); /* 00:00 UTC */
    ns_report_hour_t cest = {first, first + 60 * MIN_MS, "Europe/Berlin"};
    ns_report_book_filename(&cest, name, sizeof(name));
    ASSERT_STREQ(name, "report_2026-10-25_0200.xlsx");
    ns_report_hour_t cet = {first + 60 * MIN_MS, first + 120 * MIN_MS,
                            "Europe/Berlin"};
    ns_report_book_filename(&cet, name, sizeof(name));
    ASSERT_STREQ(name, "report_2026-10-25_0200+0100.xlsx");

    ns_report_hour_t unknown = {HOUR_MS, HOUR_MS + 60 * MIN_MS, "No/Such"};
    ns_report_book_filename(&unknown, name, sizeof(name));
    ASSERT_STREQ(name, "report_2026-11-30_0400.xlsx");

    char small[8];
    ns_report_book_filename(&utc, small, sizeof(small));
    ASSERT_STREQ(small, "report_");
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--sample") == 0) {
        ns_error_t err;
        if (write_normal(argv[2], &err) != NS_OK) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        return 0;
    }
    return nstest_main(argc, argv);
}
