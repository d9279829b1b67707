/* log.h: JSON-lines logging on stderr.
 * One object per line: time, level, component, job, run_id, item_key, msg.
 * Registered secrets are replaced by "***" wherever they would appear. */
#ifndef NS_LOG_H
#define NS_LOG_H

#include <stdint.h>

typedef enum ns_log_level {
    NS_LOG_DEBUG = 0,
    NS_LOG_INFO,
    NS_LOG_WARN,
    NS_LOG_ERROR,
} ns_log_level_t;

/** Context fields; any may be NULL / 0 and is then left out. */
typedef struct ns_log_ctx {
    const char *job;
    int64_t run_id;
    const char *item_key;
} ns_log_ctx_t;

/** @brief Sets the component name and the minimum level (NS_LOG_LEVEL env:
 *  debug|info|warn|error overrides min_level). Call once at start-up. */
void ns_log_init(const char *component, ns_log_level_t min_level);

/** @brief Registers a secret (copied); it is masked in every later line.
 *  Empty strings and NULL are ignored. Thread-safe. */
void ns_log_add_secret(const char *secret);

/** @brief Returns 1 when lines of this level are written. */
int ns_log_enabled(ns_log_level_t level);

void ns_logf(ns_log_level_t level, const ns_log_ctx_t *ctx, const char *fmt,
             ...) __attribute__((format(printf, 3, 4)));

/** @brief Masks registered secrets in s; returns a malloc'd copy. */
char *ns_log_redact(const char *s);

#define NS_LOG_AT(lvl, ctx, ...)                                               \
    do {                                                                       \
        if (ns_log_enabled(lvl))                                               \
            ns_logf(lvl, ctx, __VA_ARGS__);                                    \
    } while (0)
#define NS_DEBUG(ctx, ...) NS_LOG_AT(NS_LOG_DEBUG, ctx, __VA_ARGS__)
#define NS_INFO(ctx, ...) NS_LOG_AT(NS_LOG_INFO, ctx, __VA_ARGS__)
#define NS_WARN(ctx, ...) NS_LOG_AT(NS_LOG_WARN, ctx, __VA_ARGS__)
#define NS_ERROR(ctx, ...) NS_LOG_AT(NS_LOG_ERROR, ctx, __VA_ARGS__)

#endif
