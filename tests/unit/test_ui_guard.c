/* test_ui_guard.c: the status page's write guard (ui/guard.h): the bearer
 * token, the cross-site checks, and the ids in its paths. */
#include <string.h>

#include "guard.h"
#include "nstest.h"

TEST(bearer_token_must_match_exactly)
{
    ASSERT(ns_ui_bearer_ok("s3cret", "Bearer s3cret"));
    ASSERT(ns_ui_bearer_ok("s3cret", "bearer s3cret"));
    ASSERT(ns_ui_bearer_ok("s3cret", "Bearer   s3cret"));
    ASSERT(!ns_ui_bearer_ok("s3cret", "Bearer s3cre"));
    ASSERT(!ns_ui_bearer_ok("s3cret", "Bearer s3cret "));
    ASSERT(!ns_ui_bearer_ok("s3cret", "Bearer s3cretX"));
    ASSERT(!ns_ui_bearer_ok("s3cret", "Bearer S3CRET"));
    ASSERT(!ns_ui_bearer_ok("s3cret", "Basic s3cret"));
    ASSERT(!ns_ui_bearer_ok("s3cret", "s3cret"));
    ASSERT(!ns_ui_bearer_ok("s3cret", "Bearer "));
    ASSERT(!ns_ui_bearer_ok("s3cret", NULL));
    /* No token configured: nothing matches, not even an empty one. */
    ASSERT(!ns_ui_bearer_ok("", "Bearer "));
    ASSERT(!ns_ui_bearer_ok(NULL, "Bearer x"));
}

TEST(same_origin_json_passes)
{
    const char *json = "application/json";
    ASSERT(ns_ui_cross_site("http://127.0.0.1:8089", "127.0.0.1:8089",
                            "same-origin", json) == NULL);
    ASSERT(ns_ui_cross_site("https://ops.example.com", "ops.example.com", NULL,
                            "application/json; charset=utf-8") == NULL);
    /* curl and scripts send neither Origin nor Sec-Fetch-Site. */
    ASSERT(ns_ui_cross_site(NULL, "127.0.0.1:8089", NULL, json) == NULL);
    ASSERT(ns_ui_cross_site(NULL, NULL, "none", "Application/JSON") == NULL);
}

TEST(cross_site_is_refused)
{
    const char *json = "application/json";
    const char *why;
    why = ns_ui_cross_site("http://evil.example", "127.0.0.1:8089",
                           "cross-site", json);
    ASSERT(why != NULL && strstr(why, "Sec-Fetch-Site") != NULL);
    why =
        ns_ui_cross_site("http://127.0.0.1:9999", "127.0.0.1:8089", NULL, json);
    ASSERT(why != NULL && strstr(why, "Origin") != NULL);
    ASSERT(ns_ui_cross_site("null", "127.0.0.1:8089", NULL, json) != NULL);
    ASSERT(ns_ui_cross_site("http://127.0.0.1:8089.evil.example",
                            "127.0.0.1:8089", NULL, json) != NULL);
    ASSERT(ns_ui_cross_site("http://127.0.0.1:8089", NULL, NULL, json) != NULL);
    ASSERT(ns_ui_cross_site(NULL, "h", "same-site", json) != NULL);
}

TEST(only_json_bodies)
{
    /* What an HTML form can send without a preflight. */
    const char *forms[] = {"application/x-www-form-urlencoded",
                           "multipart/form-data; boundary=x",
                           "text/plain",
                           "application/jsonx",
                           "application/json-patch",
                           "",
                           NULL};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        const char *why = ns_ui_cross_site(NULL, "h", NULL, forms[i]);
        ASSERT(why != NULL && strstr(why, "application/json") != NULL);
    }
}

TEST(path_ids)
{
    int64_t id = 0;
    const char *rest = NULL;
    ASSERT(ns_ui_path_id("/api/v1/dlq/42", "/api/v1/dlq/", &id, &rest));
    ASSERT_EQ(id, 42);
    ASSERT_STREQ(rest, "");
    ASSERT(ns_ui_path_id("/api/v1/dlq/7/replay", "/api/v1/dlq/", &id, &rest));
    ASSERT_EQ(id, 7);
    ASSERT_STREQ(rest, "/replay");
    ASSERT(ns_ui_path_id("/api/v1/runs/123456789012345678", "/api/v1/runs/",
                         &id, &rest));
    ASSERT_EQ(id, 123456789012345678LL);
    ASSERT(!ns_ui_path_id("/api/v1/runs/1234567890123456789", "/api/v1/runs/",
                          &id, &rest));
    ASSERT(!ns_ui_path_id("/api/v1/dlq/", "/api/v1/dlq/", &id, &rest));
    ASSERT(!ns_ui_path_id("/api/v1/dlq/x1", "/api/v1/dlq/", &id, &rest));
    ASSERT(!ns_ui_path_id("/api/v1/dlq/-1", "/api/v1/dlq/", &id, &rest));
    ASSERT(!ns_ui_path_id("/api/v1/runs/1", "/api/v1/dlq/", &id, &rest));
    ASSERT(!ns_ui_path_id(NULL, "/api/v1/dlq/", &id, &rest));
}

NSTEST_MAIN
