/*  grants_selftest — the grants store helpers and the ledger on a scratch LMDB environment,
    without a broker: money formatting, id and date checks, posting balanced and unbalanced
    entries, the sign invariants, overflow, and verification catching a tampered balance.

    Usage: grants_selftest [SCRATCH_DIR]   (default: grants-selftest in the current folder)
*/
#include "grants_ledger.h"
#include "sam_testkit.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK SAM_CHECK /* sam_testkit.h */

static void s_test_formats(void)
{
    char b[64];
    CHECK(strcmp(grants_fmt_ore(0, b, sizeof b), "0") == 0);
    CHECK(strcmp(grants_fmt_ore(20000000, b, sizeof b), "200 000") == 0);
    CHECK(strcmp(grants_fmt_ore(150000000, b, sizeof b), "1 500 000") == 0);
    CHECK(strcmp(grants_fmt_ore(123456, b, sizeof b), "1 234,56") == 0);
    CHECK(strcmp(grants_fmt_ore(-5, b, sizeof b), "-0,05") == 0);
    CHECK(strcmp(grants_fmt_ore(INT64_MIN, b, sizeof b), "-92 233 720 368 547 758,08") == 0);
    CHECK(grants_valid_id("ps19-halden"));
    CHECK(!grants_valid_id(""));
    CHECK(!grants_valid_id("Halden"));
    CHECK(!grants_valid_id("a b"));
    char longid[80];
    CHECK(!grants_valid_id(sam_testkit_fill(longid, 'a', 65)));
    CHECK(grants_valid_id(sam_testkit_fill(longid, 'a', 64)));
    CHECK(grants_valid_date("2020-02-29"));
    CHECK(!grants_valid_date("2019-02-29"));
    CHECK(!grants_valid_date("2019-13-01"));
    CHECK(!grants_valid_date("2019-1-01"));
    CHECK(!grants_valid_date("20190101"));
}

static int s_post(grants_t *g, MDB_txn *txn, uint64_t seq, const grants_entry_t *e, char *err,
                  size_t len)
{
    Io__Cloudevents__V1__CloudEvent ce = IO__CLOUDEVENTS__V1__CLOUD_EVENT__INIT;
    ce.type = "no.samordna.grants.selftest";
    ce.id = "selftest";
    sam_event_t ev = {.ce = &ce, .seq = seq};
    return grants_ledger_post(g, txn, &ev, e, err, len);
}

static void s_test_ledger(const char *dir)
{
    char err[256] = "";
    sam_store_t *store = sam_testkit_store(dir, grants_table_names);
    if (!store) return;
    grants_t g = {0};
    for (int i = 0; i < GRANTS_T_COUNT; i++)
        g.dbi[i] = sam_store_dbi(store, grants_table_names[i]);
    char budget[GRANTS_ACCOUNT_LEN], approp[GRANTS_ACCOUNT_LEN], com[GRANTS_ACCOUNT_LEN],
        paid[GRANTS_ACCOUNT_LEN];
    grants_account_budget(budget, "s");
    grants_account_appropriation(approp, "s");
    grants_account_committed(com, "a", "fmov");
    grants_account_paid(paid, "a", "fmov");

    MDB_txn *txn;
    CHECK(sam_store_begin(store, NULL, true, &txn) == 0);
    grants_entry_t e = {0};
    grants_entry_move(&e, budget, approp, 1000);
    CHECK(s_post(&g, txn, 1, &e, err, sizeof err) == 0);
    grants_entry_t e2 = {0};
    grants_entry_move(&e2, com, budget, 600);
    grants_entry_move(&e2, paid, com, 250);
    CHECK(s_post(&g, txn, 2, &e2, err, sizeof err) == 0);
    CHECK(grants_balance(&g, txn, budget) == 400);
    CHECK(grants_balance(&g, txn, com) == 350);
    CHECK(grants_balance(&g, txn, paid) == 250);
    CHECK(grants_balance(&g, txn, approp) == -1000);

    /* Overspending the frame: refused by the sign of budget/s, in a nested txn. */
    MDB_txn *child;
    CHECK(sam_store_begin(store, txn, true, &child) == 0);
    grants_entry_t e3 = {0};
    grants_entry_move(&e3, com, budget, 401);
    CHECK(s_post(&g, child, 3, &e3, err, sizeof err) == -1);
    CHECK(strstr(err, "budget/s") != NULL);
    mdb_txn_abort(child);
    CHECK(grants_balance(&g, txn, budget) == 400);

    /* A hand-made entry that does not balance is refused. */
    grants_entry_t e4 = {0};
    snprintf(e4.lines[0].account, GRANTS_ACCOUNT_LEN, "%s", paid);
    e4.lines[0].amount = 5;
    e4.n = 1;
    CHECK(s_post(&g, txn, 4, &e4, err, sizeof err) == -1);
    CHECK(strstr(err, "does not balance") != NULL);

    /* Negative moves and overflow are refused. */
    grants_entry_t e5 = {0};
    grants_entry_move(&e5, com, budget, -1);
    CHECK(e5.overflow);
    CHECK(s_post(&g, txn, 5, &e5, err, sizeof err) == -1);
    CHECK(sam_store_begin(store, txn, true, &child) == 0);
    grants_entry_t e6 = {0};
    grants_entry_move(&e6, budget, approp, INT64_MAX);
    CHECK(s_post(&g, child, 6, &e6, err, sizeof err) == -1);
    CHECK(strstr(err, "overflows") != NULL);
    mdb_txn_abort(child);

    Samordna__V1__LedgerReport r = SAMORDNA__V1__LEDGER_REPORT__INIT;
    CHECK(grants_ledger_verify(&g, txn, &r) == 0);
    CHECK(r.balanced && r.entries == 2 && r.postings == 6 && r.accounts == 4);
    CHECK(r.debits_ore == 1850 && r.credits_ore == 1850);
    grants_ledger_report_clear(&r);

    /* A balance changed behind the journal's back is found. */
    grants_key_t k = {0};
    grants_key_raw(&k, paid);
    Samordna__V1__AccountBalance b = SAMORDNA__V1__ACCOUNT_BALANCE__INIT;
    b.account = paid;
    b.balance_ore = 251;
    CHECK(grants_put(&g, txn, GRANTS_T_BALANCES, &k, &b.base) == 0);
    samordna__v1__ledger_report__init(&r);
    CHECK(grants_ledger_verify(&g, txn, &r) == 0);
    CHECK(!r.balanced && r.n_problems == 1 && strstr(r.problems[0], "paid/a/fmov"));
    grants_ledger_report_clear(&r);
    mdb_txn_abort(txn);
    sam_store_destroy(&store);
    CHECK(store == NULL);
}

int main(int argc, char **argv)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", argc > 1 ? argv[1] : "grants-selftest");
    s_test_formats();
    s_test_ledger(dir);
    zsys_dir_delete("%s", dir);
    return sam_testkit_done("grants_selftest");
}
