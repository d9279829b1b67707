/* redis.h: connecting to Redis through hiredis, shared by its users (the
 * rate limiter, ...). Parses "redis://" and "unix://" URLs, then connects,
 * authenticates and selects the db, with errors classified for retries. */
#ifndef NS_REDIS_H
#define NS_REDIS_H

#include <hiredis/hiredis.h>

#include "ns/err.h"

/** Where a Redis is and how to log in: a parsed URL. */
typedef struct ns_redis_url {
    char host[256];     /**< empty for a unix socket */
    int port;           /**< 6379 unless the URL gives one */
    char path[108];     /**< unix socket path */
    int db;             /**< 0 unless the URL gives one */
    char user[128];     /**< empty: the default user */
    char password[256]; /**< empty: no AUTH */
    char where[300];    /**< "redis 127.0.0.1:6379" or "redis unix:/path", for
                           messages; never holds the credentials */
} ns_redis_url_t;

/** @brief Parses "redis://[[user]:password@]host[:port][/db]" (user and
 *  password may be %-encoded; host a name or IPv4) or
 *  "unix://[[user]:password@]/path/to/socket[?db=N]" into *out.
 *  @returns NS_OK; NS_ERR_INVALID when url is NULL, empty, rediss:// (TLS
 *  is not supported) or malformed. The message never quotes the URL, which
 *  may hold a password.
 *  @remark The password is registered with ns_log_add_secret(). */
ns_err_t ns_redis_url_parse(const char *url, ns_redis_url_t *out,
                            ns_error_t *err);

/** @brief Connects to url (connect and command timeouts timeout_ms),
 *  authenticates, selects the db and, if client_name is not NULL, names
 *  the connection "nightshift-<client_name>-<pid>" in CLIENT LIST (an ACL
 *  that forbids CLIENT is not an error).
 *  @returns the connection (caller redisFree), or NULL with err set:
 *  NS_ERR_TRANSIENT when unreachable or busy, NS_ERR_INVALID when the
 *  server refuses the credentials or the db, NS_ERR_NOMEM. Messages start
 *  with url->where. */
redisContext *ns_redis_connect(const ns_redis_url_t *url,
                               const char *client_name, int timeout_ms,
                               ns_error_t *err);

/** @brief Runs one command given as argc NUL-terminated strings.
 *  @returns NS_OK with the reply in *reply (caller freeReplyObject; reply
 *  NULL: freed here); NS_ERR_TRANSIENT when the connection failed (c->err
 *  is then set) or the server cannot serve yet (LOADING, BUSY, MASTERDOWN,
 *  TRYAGAIN); NS_ERR_INVALID when it answers with any other error. Error
 *  replies are never returned in *reply. Messages start with url->where
 *  and the command's name. */
ns_err_t ns_redis_command(redisContext *c, const ns_redis_url_t *url, int argc,
                          const char **argv, redisReply **reply,
                          ns_error_t *err);

#endif
