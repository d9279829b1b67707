/* test_pacing.c: which shared buckets an outbox message takes
 * (worker/pacing.c): Telegram's documented limits by default, per chat,
 * per group and per bot, strictest first; rate_limits: overrides them and
 * "off" turns one off; email has its own row; unknown channels are not
 * paced. Without a limiter (NULL) everything may go at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ns/config.h"
#include "nstest.h"
#include "pacing.h"

static int known(const char *name, int is_finalizer)
{
    (void)is_finalizer;
    return strcmp(name, "h") == 0;
}

static ns_config_t *load(const char *head)
{
    char path[] = "/tmp/ns_pacing_XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "%sjobs:\n  - name: a\n    handler: h\n    source: {type: "
             "one}\n",
             head);
    ASSERT_EQ(write(fd, yaml, strlen(yaml)), strlen(yaml));
    close(fd);
    ns_error_t err;
    ns_config_t *cfg = ns_config_load(path, known, &err);
    unlink(path);
    if (cfg == NULL)
        NSTEST_FAIL("load: %s", err.msg);
    return cfg;
}

TEST(telegram_defaults_private_chat)
{
    ns_config_t *cfg = load("");
    ns_pace_t p[NS_PACE_MAX];
    size_t n = ns_pacing_buckets(cfg, "telegram", "4242", p);
    ASSERT_EQ(n, 2);
    ASSERT_STREQ(p[0].bucket, "telegram.chat:4242");
    ASSERT(p[0].rate == 1.0 && p[0].burst == 1.0);
    ASSERT_STREQ(p[1].bucket, "telegram");
    ASSERT(p[1].rate == 30.0 && p[1].burst == 30.0);
    ns_config_destroy(cfg);
}

TEST(telegram_groups_get_twenty_a_minute)
{
    ns_config_t *cfg = load("");
    ns_pace_t p[NS_PACE_MAX];
    const char *groups[] = {"-1001234567890", "-42", "@channelname"};
    for (int i = 0; i < 3; i++) {
        size_t n = ns_pacing_buckets(cfg, "telegram", groups[i], p);
        ASSERT_EQ(n, 3);
        ASSERT(strncmp(p[0].bucket, "telegram.group:", 15) == 0);
        ASSERT(p[0].rate > 0.33 && p[0].rate < 0.34 && p[0].burst == 1);
        ASSERT(strncmp(p[1].bucket, "telegram.chat:", 14) == 0);
    }
    ns_config_destroy(cfg);
}

TEST(configured_limits_win_and_off_turns_one_off)
{
    ns_config_t *cfg = load("rate_limits:\n  telegram.chat: \"4/s burst 2\"\n"
                            "  telegram: \"off\"\n  email: \"10/min\"\n"
                            "  email.target: \"1/s\"\n");
    ns_pace_t p[NS_PACE_MAX];
    size_t n = ns_pacing_buckets(cfg, "telegram", "7", p);
    ASSERT_EQ(n, 1);
    ASSERT(p[0].rate == 4.0 && p[0].burst == 2.0);
    n = ns_pacing_buckets(cfg, "email", "a@example.org", p);
    ASSERT_EQ(n, 2);
    ASSERT_STREQ(p[0].bucket, "email.target:a@example.org");
    ASSERT_STREQ(p[1].bucket, "email");
    ASSERT(p[1].rate > 0.166 && p[1].rate < 0.167);
    ns_config_destroy(cfg);
}

TEST(email_default_and_unknown_channels)
{
    ns_config_t *cfg = load("");
    ns_pace_t p[NS_PACE_MAX];
    size_t n = ns_pacing_buckets(cfg, "email", "a@example.org", p);
    ASSERT_EQ(n, 1);
    ASSERT_STREQ(p[0].bucket, "email");
    ASSERT(p[0].rate == 1.0 && p[0].burst == 10.0);
    /* Teams: 4 a second per webhook. */
    n = ns_pacing_buckets(cfg, "teams", "ops", p);
    ASSERT_EQ(n, 1);
    ASSERT_STREQ(p[0].bucket, "teams.target:ops");
    ASSERT(p[0].rate == 4.0 && p[0].burst == 1.0);
    ASSERT_EQ(ns_pacing_buckets(cfg, "carrier-pigeon", "x", p), 0);
    /* No limiter configured: everything may go now. */
    ASSERT_EQ(ns_pacing_take(NULL, cfg, "telegram", "4242"), 0);
    ns_config_destroy(cfg);
}

NSTEST_MAIN
