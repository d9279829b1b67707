/* jsonschema_format.c: the string checks of jsonschema/jsonschema.c: the
 * "date" and "date-time" formats (RFC 3339) and lengths in code points. */
#include "jsonschema_format.h"

#include <string.h>
#include <utf8proc.h>

/* Whether s starts with the shape of tmpl, where 'd' is an ASCII digit. */
static bool shaped(const char *s, const char *tmpl)
{
    for (; *tmpl != '\0'; s++, tmpl++)
        if (*tmpl == 'd' ? *s < '0' || *s > '9' : *s != *tmpl)
            return false;
    return true;
}

static int two_digits(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* RFC 3339 full-date "YYYY-MM-DD" at s, the day valid for its month. */
bool ns_jsonschema_is_date(const char *s)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!shaped(s, "dddd-dd-dd"))
        return false;
    int year = two_digits(s) * 100 + two_digits(s + 2);
    int month = two_digits(s + 5), day = two_digits(s + 8);
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month >= 1 && month <= 12 && day >= 1 &&
           day <= days[month - 1] + (month == 2 && leap);
}

/* RFC 3339 date-time: full-date "T" HH:MM:SS[.frac] ("Z" / +HH:MM / -HH:MM).
 * A leap second (:60) is valid only at 23:59:60 UTC. */
bool ns_jsonschema_is_date_time(const char *s)
{
    if (!ns_jsonschema_is_date(s) || (s[10] != 'T' && s[10] != 't') ||
        !shaped(s + 11, "dd:dd:dd"))
        return false;
    int hour = two_digits(s + 11), minute = two_digits(s + 14);
    int second = two_digits(s + 17);
    const char *t = s + 19;
    if (*t == '.' && shaped(t + 1, "d"))
        for (t++; shaped(t, "d"); t++)
            ;
    int offset = 0; /* minutes east of UTC */
    if (*t == 'Z' || *t == 'z') {
        t++;
    } else if ((*t == '+' || *t == '-') && shaped(t + 1, "dd:dd") &&
               two_digits(t + 1) <= 23 && two_digits(t + 4) <= 59) {
        offset =
            (two_digits(t + 1) * 60 + two_digits(t + 4)) * (*t == '-' ? -1 : 1);
        t += 6;
    } else {
        return false;
    }
    if (*t != '\0' || hour > 23 || minute > 59 || second > 60)
        return false;
    int utc = ((hour * 60 + minute - offset) % 1440 + 1440) % 1440;
    return second < 60 || utc == 23 * 60 + 59;
}

/* Code points in s, or -1 if s is not valid UTF-8. */
long ns_jsonschema_utf8_length(const char *s)
{
    size_t len = strlen(s), pos = 0;
    long count = 0;
    while (pos < len) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n =
            utf8proc_iterate((const utf8proc_uint8_t *)s + pos,
                             (utf8proc_ssize_t)(len - pos), &cp);
        if (n <= 0)
            return -1;
        pos += (size_t)n;
        count++;
    }
    return count;
}
