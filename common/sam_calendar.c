/*  sam_calendar.c — weekdays and Norwegian public holidays (sam_calendar.h). */
#include "sam_calendar.h"

#include "sam_check.h"

#include <stdio.h>
#include <stdlib.h>

/* Days since 1970-01-01 of a Gregorian date (the "days from civil" count). */
static long s_days(int y, int m, int d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long doy = (153L * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The date of a day count (the inverse of s_days). */
static void s_civil(long z, int *y, int *m, int *d)
{
    z += 719468;
    long era = (z >= 0 ? z : z - 146096) / 146097;
    long doe = z - era * 146097;
    long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

/* Easter Sunday of a Gregorian year (the anonymous Gregorian computus), as a day count. */
static long s_easter(int y)
{
    int a = y % 19, b = y / 100, c = y % 100, d = b / 4, e = b % 4;
    int f = (b + 8) / 25, g = (b - f + 1) / 3, h = (19 * a + b - d - g + 15) % 30;
    int i = c / 4, k = c % 4, l = (32 + 2 * e + 2 * i - h - k) % 7;
    int m = (a + 11 * h + 22 * l) / 451;
    int month = (h + l - 7 * m + 114) / 31, day = (h + l - 7 * m + 114) % 31 + 1;
    return s_days(y, month, day);
}

const char *sam_calendar_holiday(int year, int month, int day)
{
    static const struct {
        int month, day;
        const char *name;
    } fixed[] = {{1, 1, "1. nyttårsdag"},
                 {5, 1, "1. mai"},
                 {5, 17, "17. mai"},
                 {12, 25, "1. juledag"},
                 {12, 26, "2. juledag"}};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (fixed[i].month == month && fixed[i].day == day) return fixed[i].name;
    static const struct {
        int offset;
        const char *name;
    } moving[] = {
        {-3, "skjærtorsdag"},          {-2, "langfredag"},  {0, "1. påskedag"}, {1, "2. påskedag"},
        {39, "Kristi himmelfartsdag"}, {49, "1. pinsedag"}, {50, "2. pinsedag"}};
    long offset = s_days(year, month, day) - s_easter(year);
    for (size_t i = 0; i < sizeof moving / sizeof moving[0]; i++)
        if (moving[i].offset == offset) return moving[i].name;
    return NULL;
}

int sam_calendar_weekday(int year, int month, int day)
{
    long z = s_days(year, month, day); /* 1970-01-01 was a Thursday (4) */
    return (int)(((z % 7) + 7 + 3) % 7) + 1;
}

static bool s_working(int y, int m, int d)
{
    return sam_calendar_weekday(y, m, d) <= 5 && !sam_calendar_holiday(y, m, d);
}

bool sam_calendar_working_day(const char *date)
{
    if (!date || !sam_check_is_date(date)) return false;
    return s_working(atoi(date), atoi(date + 5), atoi(date + 8));
}

void sam_calendar_working_date(const char *date, char out[11])
{
    snprintf(out, 11, "%s", date ? date : "");
    if (!date || !sam_check_is_date(date)) return;
    int y0 = atoi(date), m0 = atoi(date + 5);
    long z0 = s_days(y0, m0, atoi(date + 8));
    for (int step = 1; step >= -1; step -= 2) /* forward within the month, then back */
        for (long z = z0;; z += step) {
            int y, m, d;
            s_civil(z, &y, &m, &d);
            if (m != m0 || y != y0) break;
            if (s_working(y, m, d)) {
                snprintf(out, 11, "%04d-%02d-%02d", y, m, d);
                return;
            }
        }
}
