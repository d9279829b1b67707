/* guard.c: the token and cross-site checks behind ns/ui's replay. */
#include "guard.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool ns_ui_bearer_ok(const char *expected, const char *authorization)
{
    if (expected == NULL || expected[0] == '\0' || authorization == NULL)
        return false;
    if (strncasecmp(authorization, "Bearer ", 7) != 0)
        return false;
    const char *given = authorization + 7;
    while (*given == ' ')
        given++;
    size_t n = strlen(expected), m = strlen(given);
    /* Every byte of expected is looked at whatever given holds; only the
     * token's length can show in the time taken. */
    unsigned char diff = n != m;
    for (size_t i = 0; i < n; i++)
        diff |=
            (unsigned char)expected[i] ^ (unsigned char)(i < m ? given[i] : 0);
    return diff == 0;
}

/* The media type of a Content-Type value is exactly want. */
static bool media_type_is(const char *content_type, const char *want)
{
    if (content_type == NULL)
        return false;
    while (*content_type == ' ')
        content_type++;
    size_t n = strlen(want);
    if (strncasecmp(content_type, want, n) != 0)
        return false;
    char next = content_type[n];
    return next == '\0' || next == ';' || next == ' ';
}

const char *ns_ui_cross_site(const char *origin, const char *host,
                             const char *sec_fetch_site,
                             const char *content_type)
{
    if (!media_type_is(content_type, "application/json"))
        return "the body must be sent as application/json";
    if (sec_fetch_site != NULL && strcmp(sec_fetch_site, "same-origin") != 0 &&
        strcmp(sec_fetch_site, "none") != 0)
        return "the request came from another site (Sec-Fetch-Site)";
    if (origin == NULL)
        return NULL;
    if (host == NULL || host[0] == '\0')
        return "the request names an Origin but no Host";
    char http[300], https[300];
    snprintf(http, sizeof(http), "http://%s", host);
    snprintf(https, sizeof(https), "https://%s", host);
    if (strcasecmp(origin, http) == 0 || strcasecmp(origin, https) == 0)
        return NULL;
    return "the request came from another origin (Origin)";
}

bool ns_ui_path_id(const char *path, const char *prefix, int64_t *id,
                   const char **rest)
{
    size_t n = strlen(prefix);
    if (path == NULL || strncmp(path, prefix, n) != 0)
        return false;
    const char *p = path + n;
    size_t digits = 0;
    while (isdigit((unsigned char)p[digits]))
        digits++;
    if (digits == 0 || digits > 18)
        return false;
    *id = strtoll(p, NULL, 10);
    *rest = p + digits;
    return true;
}
