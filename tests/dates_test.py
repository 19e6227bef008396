"""The date-sensitive tests again, on the days and at the hours where a clock goes wrong.

No test reads the host's date (samtest.today(), SAMORDNA_TEST_NOW). This runs the tests that
derive a "today" — the briefing and reminder schedule, steps dated today, commit times —
once for each moment below, with the test clock set there: every service then runs as if it
were that moment, in Europe/Oslo.

  1 December, 31 December    the last day of a month, of a year
  29 February                a leap day (a briefing due on it; a year later it is not there)
  00:30 on 1 January, Oslo   UTC still reads 31 December: a "today" taken in UTC is a year off
  23:59 on 30 June, Oslo     the last minute of a half year; the clock runs on past midnight,
                             so only the quick tests run here (the briefing test takes longer
                             than the minute, and a day that changes under it is a new day)

Each moment is one test here; its failures name the inner test that failed.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import samtest  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
INNER = [
    ("notify_test.py", ["test_briefing_and_reminders_from_the_real_services",
                        "test_only_the_owner_changes_or_reads_a_subscription"]),
    ("status_test.py", ["test_steps"]),
    ("runtime_test.py", ["test_publish_duplicate_refusal_and_read"]),
]


def _run_at(moment, inner=INNER):
    env = dict(os.environ, SAMORDNA_TEST_NOW=moment,
               PYTHONPATH=os.pathsep.join(filter(None, [os.path.join(HERE, "lib"),
                                                        os.environ.get("PYTHONPATH")])))
    failed = []
    for script, tests in inner:
        p = subprocess.run([sys.executable, os.path.join(HERE, script), *tests], env=env,
                           capture_output=True, text=True, timeout=600 * samtest.SLOW)
        if p.returncode != 0:
            failed.append(f"{script}: {p.stdout[-3000:]}{p.stderr[-2000:]}")
    assert not failed, f"at {moment}:\n" + "\n".join(failed)


def test_first_of_december():
    _run_at("2026-12-01T12:00")


def test_new_years_eve():
    _run_at("2026-12-31T12:00")


def test_leap_day():
    _run_at("2028-02-29T12:00")


def test_half_past_midnight_in_oslo_while_utc_is_still_last_year():
    _run_at("2027-01-01T00:30")


def test_a_minute_before_midnight_at_midsummer():
    _run_at("2027-06-30T23:59", INNER[1:])


if __name__ == "__main__":
    samtest.main()
