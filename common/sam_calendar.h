/*  sam_calendar.h — the Norwegian working calendar: weekdays and public holidays.

    The public holidays are the ones of the law on public holidays (helligdagsloven) and the
    two days of the law on 1 and 17 May: 1. nyttårsdag, skjærtorsdag, langfredag,
    1. and 2. påskedag, 1. mai, 17. mai, Kristi himmelfartsdag, 1. and 2. pinsedag, 1. and
    2. juledag. Easter is the Gregorian one (the years 1900–2999 of sam_check). Dates are
    "YYYY-MM-DD" strings as everywhere in samordna; a string that is not one is never a
    working day.
*/
#ifndef SAM_CALENDAR_H
#define SAM_CALENDAR_H

#include <stdbool.h>

/* The holiday on that day in Norwegian ("1. påskedag"), or NULL when it is none. */
const char *sam_calendar_holiday(int year, int month, int day);

/* The day of the week: 1 Monday … 7 Sunday. */
int sam_calendar_weekday(int year, int month, int day);

/* True when date is a Monday to Friday that is not a public holiday. */
bool sam_calendar_working_day(const char *date);

/*  The day a meeting planned for `date` is held on: that day when it is a working day,
    else the next working day of the same month, else (the month ends first) the last
    working day before it. Into out (11 bytes); a date that is not one is copied as it is. */
void sam_calendar_working_date(const char *date, char out[11]);

#endif
