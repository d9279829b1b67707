#include "ns/retry.h"

#include <math.h>
#include <stdlib.h>

int64_t ns_backoff_ms(const ns_retry_t *policy, int attempt,
                      double retry_after_s, unsigned *seed)
{
    double base = policy->backoff_s > 0 ? policy->backoff_s : 1.0;
    double cap = policy->backoff_max_s > 0 ? policy->backoff_max_s : 60.0;
    int exp = attempt < 1 ? 0 : (attempt > 30 ? 30 : attempt - 1);
    double ceiling = fmin(cap, base * ldexp(1.0, exp));
    double delay = ceiling * ((double)rand_r(seed) / ((double)RAND_MAX + 1));
    /* A server may ask for more patience than we will give one item: a
     * Retry-After beyond an hour is honoured as an hour. */
    if (retry_after_s > NS_RETRY_AFTER_MAX_S)
        retry_after_s = NS_RETRY_AFTER_MAX_S;
    if (retry_after_s >= 0 && delay < retry_after_s)
        delay = retry_after_s;
    /* Saturate: converting an out-of-range double (a hostile Retry-After
     * of 1e300 or inf) is undefined and comes out negative on x86-64,
     * which would mean "retry at once". */
    double ms = delay * 1000.0;
    if (!(ms < 9.2e18))
        return INT64_MAX;
    return (int64_t)ms;
}
