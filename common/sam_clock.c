/*  sam_clock.c — wall clock, test clock and the programme's time zone.

    The zone is the process's TZ: glibc's localtime_r and mktime then do the reckoning, with
    the host's tz database. A machine without tzdata still knows Europe/Oslo, through the
    POSIX rule that database entry reduces to (CET, CEST from the last Sunday of March to the
    last Sunday of October), so a minimal container reckons the programme's days right.

    The test clock is an offset added to the real wall clock, fixed when it is set.
*/
#include "sam_clock.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define S_OSLO_RULE "CET-1CEST,M3.5.0,M10.5.0/3"

static int64_t s_offset_ms; /* added to the real clock: 0 unless sam_clock_set was given a time */
static bool s_zone_set;

static int64_t s_real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sam_clock_zone_set(const char *zone)
{
    if (!zone || !*zone) zone = SAM_CLOCK_DEFAULT_ZONE;
    char path[512], tz[520];
    for (const char *p = zone; *p; p++) /* a name, never a path of the caller's choosing */
        if (!(isalnum((unsigned char)*p) || strchr("/_+-", *p))) return -1;
    if (zone[0] == '/') return -1;
    snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", zone);
    if (access(path, R_OK) == 0)
        snprintf(tz, sizeof tz, ":%s", zone);
    else if (strcmp(zone, "Europe/Oslo") == 0)
        snprintf(tz, sizeof tz, "%s", S_OSLO_RULE);
    else if (strcmp(zone, "UTC") == 0)
        snprintf(tz, sizeof tz, "UTC0");
    else
        return -1;
    setenv("TZ", tz, 1);
    tzset();
    s_zone_set = true;
    return 0;
}

static void s_zone_default(void)
{
    if (!s_zone_set) sam_clock_zone_set(SAM_CLOCK_DEFAULT_ZONE);
}

int sam_clock_set(const char *when)
{
    s_zone_default();
    if (!when || !*when) {
        s_offset_ms = 0;
        return 0;
    }
    char *end;
    long long ms = strtoll(when, &end, 10);
    if (*end == 0 && end - when > 8) { /* milliseconds since the epoch */
        s_offset_ms = (int64_t)ms - s_real_ms();
        return 0;
    }
    struct tm tm = {0};
    int y, mo, d, h = 12, mi = 0, s = 0, n = 0;
    size_t len = strlen(when);
    if (len == 10 && sscanf(when, "%4d-%2d-%2d%n", &y, &mo, &d, &n) == 3 && n == 10) {
    } else if (len == 16 && sscanf(when, "%4d-%2d-%2dT%2d:%2d%n", &y, &mo, &d, &h, &mi, &n) == 5 &&
               n == 16) {
    } else if (len == 19 &&
               sscanf(when, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &n) == 6 &&
               n == 19) {
    } else
        return -1;
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    if (t == (time_t)-1 || tm.tm_mday != d) return -1; /* 31 February and the like */
    s_offset_ms = (int64_t)t * 1000 - s_real_ms();
    return 0;
}

int64_t sam_clock_now_ms(void)
{
    return s_real_ms() + s_offset_ms;
}

void sam_clock_date_of(int64_t ms, char out[11])
{
    s_zone_default();
    time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    unsigned y = (unsigned)(tm.tm_year + 1900) % 10000u, m = (unsigned)(tm.tm_mon + 1) % 100u,
             d = (unsigned)tm.tm_mday % 100u;
    snprintf(out, 11, "%04u-%02u-%02u", y, m, d);
}

void sam_clock_today(char out[11])
{
    sam_clock_date_of(sam_clock_now_ms(), out);
}
