/* test_configcheck.c: `nightshift config check [--json]`: the job list
 * with next fire times (in the job's zone, printed in UTC), suspended and
 * manual jobs without one, and an invalid file as {"ok": false}. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "configcheck.h"
#include "nstest.h"

static char path[64];

static void write_yaml(const char *yaml)
{
    snprintf(path, sizeof(path), "/tmp/ns_configcheck_XXXXXX");
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    size_t len = strlen(yaml);
    ASSERT_EQ(write(fd, yaml, len), len);
    close(fd);
}

/* 2026-12-03 10:50 UTC. */
static int64_t now_s(void)
{
    struct tm tm = {.tm_year = 126,
                    .tm_mon = 11,
                    .tm_mday = 3,
                    .tm_hour = 10,
                    .tm_min = 50};
    return (int64_t)timegm(&tm);
}

/* Runs the check on yaml; *out_text gets what it printed (caller frees). */
static int check(const char *yaml, bool json, char **out_text, char **err_text)
{
    write_yaml(yaml);
    size_t out_len = 0, err_len = 0;
    FILE *out = open_memstream(out_text, &out_len);
    FILE *err = open_memstream(err_text, &err_len);
    int rc = ns_ops_config_check(path, NULL, json, now_s(), out, err);
    fclose(out);
    fclose(err);
    unlink(path);
    return rc;
}

static const char *const jobs_yaml = "jobs:\n"
                                     "  - name: nightly\n"
                                     "    handler: h\n"
                                     "    schedule: \"0 3 * * *\"\n"
                                     "    timezone: Europe/Moscow\n"
                                     "    source: {type: one}\n"
                                     "  - name: paused\n"
                                     "    handler: h\n"
                                     "    schedule: \"@hourly\"\n"
                                     "    suspend: true\n"
                                     "    source: {type: one}\n"
                                     "  - name: by-hand\n"
                                     "    handler: h\n"
                                     "    source: {type: one}\n";

static const cJSON *job_named(const cJSON *doc, const char *name)
{
    const cJSON *job;
    cJSON_ArrayForEach(job, cJSON_GetObjectItem(doc, "jobs"))
    {
        if (strcmp(cJSON_GetObjectItem(job, "name")->valuestring, name) == 0)
            return job;
    }
    NSTEST_FAIL("no job %s", name);
}

TEST(json_lists_every_job_with_its_next_fire_time)
{
    char *out, *err;
    ASSERT_EQ(check(jobs_yaml, true, &out, &err), 0);
    ASSERT_STREQ(err, "");
    cJSON *doc = cJSON_Parse(out);
    ASSERT(doc != NULL);
    ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(doc, "ok")));
    ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "jobs")), 3);
    /* 03:00 in Moscow (UTC+3) is midnight UTC: the next one is the 4th. */
    const cJSON *nightly = job_named(doc, "nightly");
    ASSERT_STREQ(cJSON_GetObjectItem(nightly, "next_fire")->valuestring,
                 "2026-12-04T00:00:00.000Z");
    ASSERT_STREQ(cJSON_GetObjectItem(nightly, "timezone")->valuestring,
                 "Europe/Moscow");
    ASSERT_STREQ(cJSON_GetObjectItem(nightly, "source")->valuestring, "one");
    ASSERT(cJSON_IsNull(cJSON_GetObjectItem(nightly, "finalizer")));
    const cJSON *paused = job_named(doc, "paused");
    ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(paused, "suspend")));
    ASSERT(cJSON_IsNull(cJSON_GetObjectItem(paused, "next_fire")));
    const cJSON *by_hand = job_named(doc, "by-hand");
    ASSERT(cJSON_IsNull(cJSON_GetObjectItem(by_hand, "schedule")));
    ASSERT(cJSON_IsNull(cJSON_GetObjectItem(by_hand, "next_fire")));
    cJSON_Delete(doc);
    free(out);
    free(err);
}

TEST(text_names_each_job_and_when_it_fires)
{
    char *out, *err;
    ASSERT_EQ(check(jobs_yaml, false, &out, &err), 0);
    ASSERT(strstr(out, ": ok (3 jobs)\n") != NULL);
    ASSERT(strstr(out, "next 2026-12-04T00:00:00.000Z") != NULL);
    ASSERT(strstr(out, "suspended") != NULL);
    ASSERT(strstr(out, "manual only") != NULL);
    free(out);
    free(err);
}

TEST(an_invalid_file_is_exit_2_with_its_line)
{
    static const char *const bad = "jobs:\n"
                                   "  - name: a\n"
                                   "    handler: h\n"
                                   "    schedule: \"61 * * * *\"\n"
                                   "    source: {type: one}\n";
    char *out, *err;
    ASSERT_EQ(check(bad, false, &out, &err), 2);
    ASSERT_STREQ(out, "");
    ASSERT(strncmp(err, path, strlen(path)) == 0);
    ASSERT(strstr(err, ":4: ") != NULL);
    free(out);
    free(err);

    ASSERT_EQ(check(bad, true, &out, &err), 2);
    ASSERT_STREQ(err, "");
    cJSON *doc = cJSON_Parse(out);
    ASSERT(doc != NULL);
    ASSERT(cJSON_IsFalse(cJSON_GetObjectItem(doc, "ok")));
    ASSERT(strstr(cJSON_GetObjectItem(doc, "error")->valuestring, ":4: ") !=
           NULL);
    cJSON_Delete(doc);
    free(out);
    free(err);
}

TEST(source_kinds_have_their_jobs_file_names)
{
    ASSERT_STREQ(ns_source_kind_name(NS_SOURCE_SQL), "sql");
    ASSERT_STREQ(ns_source_kind_name(NS_SOURCE_SHARDS), "shards");
    ASSERT_STREQ(ns_source_kind_name(NS_SOURCE_STREAM), "stream");
    ASSERT_STREQ(ns_source_kind_name(NS_SOURCE_WINDOWS), "windows");
}

NSTEST_MAIN
