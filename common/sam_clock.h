/*  sam_clock.h — the time samordna stores and shows, and the programme's "today".

    Two clocks, never mixed:
      - the wall clock, sam_clock_now_ms(): milliseconds since the epoch, for everything that
        is stored or shown (an event's commit time, a subscription's creation, a step dated
        today, the briefing's schedule);
      - the monotonic clock (zclock_mono()), for timeouts and intervals only.

    "Today" is a date in the programme's time zone (Europe/Oslo unless --time-zone says
    otherwise), never the host's UTC: at 00:30 in Oslo on 1 January it is already the new year
    while UTC still reads 31 December.

    A test (or an operator replaying a day) may set the wall clock with sam_clock_set(): the
    clock then reads that moment and runs on from it at the real rate. Nothing else differs,
    so every process of a test given the same --now agrees on the date.

    The clock and the zone are process-wide, like the log level: a process has one of each.
    Set them once at start-up, before any thread is started.
*/
#ifndef SAM_CLOCK_H
#define SAM_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

/* The time zone "today" is reckoned in unless set otherwise. */
#define SAM_CLOCK_DEFAULT_ZONE "Europe/Oslo"

/*  Sets the programme's time zone: an IANA name ("Europe/Oslo", "UTC"). Returns 0, or -1
    when the zone is unknown (no tz database entry; Europe/Oslo is known even without one,
    by its rule). */
int sam_clock_zone_set(const char *zone);

/*  Sets the wall clock to read `when` now and run on from there: "YYYY-MM-DD" (noon that
    day), "YYYY-MM-DDTHH:MM" or "YYYY-MM-DDTHH:MM:SS", local time in the programme's zone, or
    a plain number of milliseconds since the epoch. NULL or "" puts the real clock back.
    Returns 0, or -1 when `when` is not one of those forms. */
int sam_clock_set(const char *when);

/* Wall clock, milliseconds since the epoch (shifted when sam_clock_set was given a time). */
int64_t sam_clock_now_ms(void);

/* The date (YYYY-MM-DD) of the moment `ms` in the programme's zone. */
void sam_clock_date_of(int64_t ms, char out[11]);

/* Today's date (YYYY-MM-DD) in the programme's zone. */
void sam_clock_today(char out[11]);

#endif
