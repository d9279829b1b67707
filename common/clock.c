#include "ns/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int64_t ns_clock_now_ms(void)
{
    const char *path = getenv("NS_TEST_CLOCK_FILE");
    if (path != NULL && path[0] != '\0') {
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            double seconds = 0;
            int ok = fscanf(f, "%lf", &seconds) == 1;
            fclose(f);
            if (ok)
                return (int64_t)(seconds * 1000.0);
        }
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ns_clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ns_clock_format_utc(int64_t epoch_ms, char *out, int outlen)
{
    time_t secs = (time_t)(epoch_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, (size_t)outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)(epoch_ms % 1000));
}
