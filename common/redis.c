#include "ns/redis.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "ns/log.h"

/* ------------------------------------------------------------ URL parsing */

/* Copies s[0..n) into out (outlen bytes), %-decoding; 0 when malformed. */
static int pct_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
                !isxdigit((unsigned char)s[i + 2]))
                return 0;
            char hex[3] = {s[i + 1], s[i + 2], '\0'};
            c = (int)strtol(hex, NULL, 16);
            i += 2;
        }
        if (c == 0 || o + 1 >= outlen)
            return 0;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 1;
}

/* "user:password", ":password" or "password" (as redis-cli reads it). */
static int parse_userinfo(const char *s, size_t n, ns_redis_url_t *t)
{
    const char *colon = memchr(s, ':', n);
    if (colon == NULL)
        return pct_decode(s, n, t->password, sizeof(t->password));
    return pct_decode(s, (size_t)(colon - s), t->user, sizeof(t->user)) &&
           pct_decode(colon + 1, n - (size_t)(colon - s) - 1, t->password,
                      sizeof(t->password));
}

/* Digits only, in [lo, hi]; 0 when not. */
static int parse_int(const char *s, size_t n, int lo, int hi, int *out)
{
    long v = 0;
    if (n == 0 || n > 9)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    if (v < lo || v > hi)
        return 0;
    *out = (int)v;
    return 1;
}

static int parse_hostport(const char *s, size_t n, ns_redis_url_t *t)
{
    const char *colon = memchr(s, ':', n);
    size_t host_len = colon != NULL ? (size_t)(colon - s) : n;
    if (host_len == 0 || host_len >= sizeof(t->host))
        return 0;
    memcpy(t->host, s, host_len);
    t->host[host_len] = '\0';
    t->port = 6379;
    return colon == NULL ||
           parse_int(colon + 1, n - host_len - 1, 1, 65535, &t->port);
}

static int parse_redis_url(const char *rest, ns_redis_url_t *t)
{
    size_t auth_len = strcspn(rest, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < auth_len; i++)
        if (rest[i] == '@')
            at = rest + i;
    if (at != NULL && !parse_userinfo(rest, (size_t)(at - rest), t))
        return 0;
    const char *hp = at != NULL ? at + 1 : rest;
    if (!parse_hostport(hp, (size_t)(rest + auth_len - hp), t))
        return 0;
    const char *path = rest + auth_len;
    if (*path == '\0' || strcmp(path, "/") == 0)
        return 1;
    return path[0] == '/' &&
           parse_int(path + 1, strlen(path + 1), 0, 1 << 20, &t->db);
}

static int parse_unix_url(const char *rest, ns_redis_url_t *t)
{
    if (rest[0] != '/') {
        const char *at = strstr(rest, "@/");
        if (at == NULL || !parse_userinfo(rest, (size_t)(at - rest), t))
            return 0;
        rest = at + 1;
    }
    size_t path_len = strcspn(rest, "?");
    if (path_len < 2 || path_len >= sizeof(t->path))
        return 0;
    memcpy(t->path, rest, path_len);
    t->path[path_len] = '\0';
    const char *query = rest + path_len;
    if (*query == '\0')
        return 1;
    return strncmp(query, "?db=", 4) == 0 &&
           parse_int(query + 4, strlen(query + 4), 0, 1 << 20, &t->db);
}

ns_err_t ns_redis_url_parse(const char *url, ns_redis_url_t *t, ns_error_t *err)
{
    memset(t, 0, sizeof(*t));
    int ok = 0;
    if (url == NULL || url[0] == '\0')
        return ns_error_set(err, NS_ERR_INVALID, "no Redis URL");
    if (strncmp(url, "redis://", 8) == 0)
        ok = parse_redis_url(url + 8, t);
    else if (strncmp(url, "unix://", 7) == 0)
        ok = parse_unix_url(url + 7, t);
    else if (strncmp(url, "rediss://", 9) == 0)
        return ns_error_set(err, NS_ERR_INVALID,
                            "rediss:// (TLS) is not supported");
    /* The URL may hold a password: name the problem, not the URL. */
    if (!ok)
        return ns_error_set(err, NS_ERR_INVALID,
                            "malformed Redis URL (expected "
                            "redis://[[user]:password@]host[:port][/db] or "
                            "unix://[[user]:password@]/path[?db=N])");
    if (t->host[0] != '\0')
        snprintf(t->where, sizeof(t->where), "redis %s:%d", t->host, t->port);
    else
        snprintf(t->where, sizeof(t->where), "redis unix:%s", t->path);
    ns_log_add_secret(t->password);
    return NS_OK;
}

/* ------------------------------------------------------------- connecting */

/* Redis answers these while it cannot serve yet; they are not refusals. */
static int is_busy_reply(const char *s)
{
    static const char *const busy[] = {"LOADING", "BUSY", "MASTERDOWN",
                                       "TRYAGAIN"};
    for (size_t i = 0; i < sizeof(busy) / sizeof(busy[0]); i++)
        if (strncmp(s, busy[i], strlen(busy[i])) == 0)
            return 1;
    return 0;
}

ns_err_t ns_redis_command(redisContext *c, const ns_redis_url_t *t, int argc,
                          const char **argv, redisReply **out, ns_error_t *err)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (r == NULL)
        return ns_error_set(err, NS_ERR_TRANSIENT, "%s: %s: %s", t->where,
                            argv[0], c->errstr);
    if (r->type == REDIS_REPLY_ERROR) {
        ns_err_t code =
            is_busy_reply(r->str) ? NS_ERR_TRANSIENT : NS_ERR_INVALID;
        ns_error_set(err, code, "%s: %s refused: %s", t->where, argv[0],
                     r->str);
        freeReplyObject(r);
        return code;
    }
    if (out != NULL)
        *out = r;
    else
        freeReplyObject(r);
    return NS_OK;
}

/* AUTH, SELECT and CLIENT SETNAME, as far as the URL asks for them. */
static ns_err_t setup(redisContext *c, const ns_redis_url_t *t,
                      const char *client_name, ns_error_t *err)
{
    ns_err_t rc = NS_OK;
    if (t->password[0] != '\0' && t->user[0] != '\0') {
        const char *argv[] = {"AUTH", t->user, t->password};
        rc = ns_redis_command(c, t, 3, argv, NULL, err);
    } else if (t->password[0] != '\0') {
        const char *argv[] = {"AUTH", t->password};
        rc = ns_redis_command(c, t, 2, argv, NULL, err);
    }
    if (rc == NS_OK && t->db != 0) {
        char db[16];
        snprintf(db, sizeof(db), "%d", t->db);
        const char *argv[] = {"SELECT", db};
        rc = ns_redis_command(c, t, 2, argv, NULL, err);
    }
    if (rc == NS_OK && client_name != NULL) {
        /* Named so that CLIENT LIST shows whose connection this is; an ACL
         * that forbids CLIENT is no reason to go without the connection. */
        char name[128];
        snprintf(name, sizeof(name), "nightshift-%s-%ld", client_name,
                 (long)getpid());
        const char *argv[] = {"CLIENT", "SETNAME", name};
        ns_error_t e;
        ns_error_clear(&e);
        rc = ns_redis_command(c, t, 3, argv, NULL, &e);
        if (rc == NS_ERR_INVALID)
            rc = NS_OK;
        else if (rc != NS_OK)
            ns_error_set(err, rc, "%s", e.msg);
    }
    return rc;
}

redisContext *ns_redis_connect(const ns_redis_url_t *t, const char *client_name,
                               int timeout_ms, ns_error_t *err)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = t->host[0] != '\0'
                          ? redisConnectWithTimeout(t->host, t->port, tv)
                          : redisConnectUnixWithTimeout(t->path, tv);
    if (c == NULL) {
        ns_error_set(err, NS_ERR_NOMEM, "%s: out of memory", t->where);
        return NULL;
    }
    ns_err_t rc = NS_OK;
    if (c->err != 0)
        rc = ns_error_set(err, NS_ERR_TRANSIENT, "%s: %s", t->where, c->errstr);
    else if (redisSetTimeout(c, tv) != REDIS_OK)
        rc = ns_error_set(err, NS_ERR_TRANSIENT, "%s: setting timeouts: %s",
                          t->where, c->errstr);
    else
        rc = setup(c, t, client_name, err);
    if (rc != NS_OK) {
        redisFree(c);
        return NULL;
    }
    return c;
}
