/* clock.h: the time source, injectable for tests.
 * When NS_TEST_CLOCK_FILE names a file, "now" is the number (epoch seconds,
 * may be fractional) written in it; tests move time by rewriting the file. */
#ifndef NS_CLOCK_H
#define NS_CLOCK_H

#include <stdint.h>

/** @brief Wall-clock now in epoch milliseconds (or the test clock). */
int64_t ns_clock_now_ms(void);
/** @brief Monotonic milliseconds, for durations and timeouts; never faked. */
int64_t ns_clock_mono_ms(void);
/** @brief Formats epoch ms as RFC 3339 UTC ("2026-11-23T09:30:00.123Z"). */
void ns_clock_format_utc(int64_t epoch_ms, char *out, int outlen);

#endif
