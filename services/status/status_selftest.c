/*  status_selftest — the status service's pure parts on their own: date and id checks, the
    order of history keys (the board as of a day relies on it), the scan bound of a day, and
    page tokens. Exits 0 when every check holds, 1 (with the failed check) otherwise.
*/
#include "sam_testkit.h"
#include "status.h"

#include <stdio.h>
#include <string.h>

#define CHECK SAM_CHECK /* sam_testkit.h */

static int s_cmp(const status_key_t *a, const status_key_t *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->b, b->b, n);
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

int main(void)
{
    /* dates: the calendar, not just the shape */
    CHECK(status_date_ok("2019-11-11"));
    CHECK(status_date_ok("2020-02-29"));
    CHECK(!status_date_ok("2019-02-29"));
    CHECK(status_date_ok("2000-02-29"));
    CHECK(!status_date_ok("1900-02-29"));
    CHECK(!status_date_ok("2019-13-01"));
    CHECK(!status_date_ok("2019-04-31"));
    CHECK(!status_date_ok("2019-1-01"));
    CHECK(!status_date_ok("11.11.2019"));
    CHECK(!status_date_ok("2019-11-11 "));
    CHECK(!status_date_ok(""));
    CHECK(!status_date_ok(NULL));

    /* ids and tokens */
    CHECK(status_id_ok("indre-ostfold"));
    CHECK(!status_id_ok("defined_challenge"));
    CHECK(status_token_ok("defined_challenge"));
    CHECK(!status_id_ok("Halden"));
    CHECK(!status_id_ok(""));
    char long_id[66];
    CHECK(!status_id_ok(sam_testkit_fill(long_id, 'a', 65)));
    CHECK(status_id_ok(sam_testkit_fill(long_id, 'a', 64)));

    /* history keys: one pilot's records sort by date, then publication order; another
       pilot whose id extends this one's never falls inside its range */
    status_key_t a, b, c, end, other;
    status_key_hist(&a, "halden", "2018-09-19", 40);
    status_key_hist(&b, "halden", "2018-09-19", 41);
    status_key_hist(&c, "halden", "2019-01-18", 2);
    status_key_hist_end(&end, "halden", "2018-09-19");
    status_key_hist(&other, "halden-2", "2000-01-01", 1);
    CHECK(s_cmp(&a, &b) < 0);
    CHECK(s_cmp(&b, &c) < 0);
    CHECK(s_cmp(&b, &end) < 0); /* the day's last record is inside the bound */
    CHECK(s_cmp(&c, &end) > 0); /* the next day is not */
    status_key_t prefix;
    status_key_pair(&prefix, "halden", "");
    CHECK(other.len < prefix.len || memcmp(other.b, prefix.b, prefix.len) != 0);

    /* timeline keys sort by date first */
    status_key_t t1, t2;
    status_key_timeline(&t1, "2019-01-01", 900, 0);
    status_key_timeline(&t2, "2019-01-02", 1, 0);
    CHECK(s_cmp(&t1, &t2) < 0);

    /* page tokens round-trip; malformed ones are refused */
    char token[2 * STATUS_KEY_MAX + 1];
    status_token_encode(&b, token, sizeof token);
    status_key_t back;
    CHECK(status_token_decode(token, &back) == 0 && s_cmp(&back, &b) == 0);
    CHECK(status_token_decode("zz", &back) == -1);
    CHECK(status_token_decode("abc", &back) == -1);
    CHECK(status_token_decode("", &back) == 0 && back.len == 0);

    /* barrier states */
    CHECK(status_barrier_open("identified") && status_barrier_open("raised_nationally"));
    CHECK(!status_barrier_open("changed") && !status_barrier_open("withdrawn"));
    CHECK(!status_barrier_open("nonsense"));

    return sam_testkit_done("status_selftest");
}
