/* retry.h: backoff delays: exponential with full jitter, and never
 * shorter than a server's Retry-After. */
#ifndef NS_RETRY_H
#define NS_RETRY_H

#include <stdint.h>

#include "ns/config.h"

/** The longest Retry-After honoured, in seconds. */
#define NS_RETRY_AFTER_MAX_S 3600.0

/** @brief Delay before attempt number `attempt + 1` after `attempt`
 *  failures: uniform in [0, min(max, base * 2^(attempt-1))], raised to
 *  retry_after_s when that is >= 0 (at most NS_RETRY_AFTER_MAX_S). seed:
 * per-thread rand_r state. */
int64_t ns_backoff_ms(const ns_retry_t *policy, int attempt,
                      double retry_after_s, unsigned *seed);

#endif
