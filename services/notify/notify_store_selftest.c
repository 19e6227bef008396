/*  notify_store_selftest.c — the notify tables on a real LMDB store in a scratch folder:
    keys, the matching index, dropping and counting a subscription's rows, counters, state,
    cursors and pruning the delivery log. Usage: notify_store_selftest SCRATCH_DIR
*/
#include "notify_store.h"
#include "sam_testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK SAM_CHECK /* sam_testkit.h */

typedef struct {
    char ids[16][NOTIFY_ID_MAX + 1];
    int channels[16];
    int n;
} s_found_t;

static int s_collect(void *arg, const char *sub_id, int channel)
{
    s_found_t *f = arg;
    if (f->n < 16) {
        snprintf(f->ids[f->n], sizeof f->ids[0], "%s", sub_id);
        f->channels[f->n] = channel;
        f->n++;
    }
    return 0;
}

static Samordna__V1__Subscription s_sub(const char *id, const char *type, const char *source,
                                        const char *subject, int channel)
{
    Samordna__V1__Subscription s = SAMORDNA__V1__SUBSCRIPTION__INIT;
    s.id = (char *)id;
    s.type = (char *)type;
    s.source = (char *)source;
    s.subject = (char *)subject;
    s.channel = channel;
    return s;
}

static void s_put_attempt(MDB_txn *txn, const notify_dbis_t *d, const char *sub, int64_t at)
{
    Samordna__V1__Attempt a = SAMORDNA__V1__ATTEMPT__INIT;
    a.subscription = (char *)sub;
    a.at_ms = at;
    a.outcome = "delivered";
    CHECK(notify_log_append(txn, d, &a) == 0);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: notify_store_selftest SCRATCH_DIR\n");
        return 2;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/notify-store-selftest", argv[1]);
    sam_store_t *st = sam_testkit_store(dir, notify_tables);
    if (!st) return sam_testkit_done("notify_store_selftest");
    notify_dbis_t d = {
        .subs = sam_store_dbi(st, "subs"),
        .state = sam_store_dbi(st, "state"),
        .match = sam_store_dbi(st, "match"),
        .queue = sam_store_dbi(st, "queue"),
        .inbox = sam_store_dbi(st, "inbox"),
        .dead = sam_store_dbi(st, "dead"),
        .log = sam_store_dbi(st, "log"),
        .cursors = sam_store_dbi(st, "cursors"),
        .sent = sam_store_dbi(st, "sent"),
        .meta = sam_store_dbi(st, "nmeta"),
    };
    MDB_txn *txn;
    CHECK(sam_store_begin(st, NULL, true, &txn) == 0);

    /* ids and queue keys */
    CHECK(notify_valid_id("halden-2019"));
    CHECK(!notify_valid_id("Halden"));
    CHECK(!notify_valid_id(""));
    CHECK(!notify_valid_id("a b"));
    uint8_t key[NOTIFY_QKEY_MAX];
    size_t kl = notify_qkey(key, "sub-a", 42);
    MDB_val kv = {kl, key};
    char id[NOTIFY_ID_MAX + 1];
    uint64_t n = 0;
    CHECK(notify_qkey_split(&kv, id, &n) && strcmp(id, "sub-a") == 0 && n == 42);
    kv.mv_size = 5;
    CHECK(!notify_qkey_split(&kv, id, &n));

    /* counters start at 1 and go up */
    CHECK(notify_counter_next(txn, &d, "qseq") == 1);
    CHECK(notify_counter_next(txn, &d, "qseq") == 2);
    CHECK(notify_counter_next(txn, &d, "other") == 1);

    /* the index: exact, prefix, any, with source and subject filters */
    Samordna__V1__Subscription subs[] = {
        s_sub("exact", "no.samordna.grants.award.granted", "", "", 1),
        s_sub("prefix", "no.samordna.grants.*", "", "", 2),
        s_sub("any", "", "", "", 3),
        s_sub("star", "*", "ofk", "", 1),
        s_sub("halden", "no.samordna.grants.award.granted", "", "halden", 1),
        s_sub("fmov-halden", "no.samordna.*", "fmov", "halden", 1),
    };
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        CHECK(notify_index_put(txn, &d, &subs[i]) == 0);
    s_found_t f = {0};
    CHECK(notify_index_scan(txn, &d, 'T', "no.samordna.grants.award.granted", "", "", s_collect,
                            &f) == 0);
    CHECK(f.n == 1 && strcmp(f.ids[0], "exact") == 0 && f.channels[0] == 1);
    memset(&f, 0, sizeof f);
    notify_index_scan(txn, &d, 'T', "no.samordna.grants.award.granted", "", "halden", s_collect,
                      &f);
    CHECK(f.n == 1 && strcmp(f.ids[0], "halden") == 0);
    memset(&f, 0, sizeof f);
    notify_index_scan(txn, &d, 'P', "no.samordna.grants.", "", "", s_collect, &f);
    CHECK(f.n == 1 && strcmp(f.ids[0], "prefix") == 0 && f.channels[0] == 2);
    memset(&f, 0, sizeof f);
    notify_index_scan(txn, &d, 'P', "no.samordna.", "fmov", "halden", s_collect, &f);
    CHECK(f.n == 1 && strcmp(f.ids[0], "fmov-halden") == 0);
    memset(&f, 0, sizeof f);
    notify_index_scan(txn, &d, 'P', "no.samordna.", "fmov", "", s_collect, &f);
    CHECK(f.n == 0); /* a subject filter is not a prefix of another subject */
    memset(&f, 0, sizeof f);
    notify_index_scan(txn, &d, 'A', "", "ofk", "", s_collect, &f);
    CHECK(f.n == 1 && strcmp(f.ids[0], "star") == 0);
    memset(&f, 0, sizeof f);
    notify_index_scan(txn, &d, 'A', "", "", "", s_collect, &f);
    CHECK(f.n == 1 && strcmp(f.ids[0], "any") == 0 && f.channels[0] == 3);
    CHECK(notify_index_del(txn, &d, &subs[0]) == 0);
    memset(&f, 0, sizeof f);
    notify_index_scan(txn, &d, 'T', "no.samordna.grants.award.granted", "", "", s_collect, &f);
    CHECK(f.n == 0);
    CHECK(notify_index_del(txn, &d, &subs[0]) == 0); /* twice is fine */

    /* a subscription's rows: counted and dropped without touching a neighbour's */
    Samordna__V1__Delivery del = SAMORDNA__V1__DELIVERY__INIT;
    for (uint64_t q = 1; q <= 5; q++) {
        kl = notify_qkey(key, "a", q);
        CHECK(sam_store_put_msg(txn, d.queue, key, kl, &del.base, 0) == 0);
        kl = notify_qkey(key, "ab", q);
        CHECK(sam_store_put_msg(txn, d.queue, key, kl, &del.base, 0) == 0);
    }
    CHECK(notify_count_prefix(txn, d.queue, "a") == 5);
    CHECK(notify_drop_prefix(txn, d.queue, "a") == 5);
    CHECK(notify_count_prefix(txn, d.queue, "a") == 0);
    CHECK(notify_count_prefix(txn, d.queue, "ab") == 5);

    /* state: defaults, then stored */
    notify_state_t s;
    Samordna__V1__Subscription hook = s_sub("hook", "", "", "", 2);
    notify_state_get(txn, &d, &hook, &s);
    CHECK(s.state == SAMORDNA__V1__NOTIFY_SUB_STATE__NOTIFY_SUB_STATE_PENDING);
    Samordna__V1__Subscription box = s_sub("box", "", "", "", 1);
    notify_state_get(txn, &d, &box, &s);
    CHECK(s.state == SAMORDNA__V1__NOTIFY_SUB_STATE__NOTIFY_SUB_STATE_ACTIVE);
    s.state = SAMORDNA__V1__NOTIFY_SUB_STATE__NOTIFY_SUB_STATE_DISABLED;
    snprintf(s.reason, sizeof s.reason, "gone");
    CHECK(notify_state_put(txn, &d, "box", &s) == 0);
    notify_state_get(txn, &d, &box, &s);
    CHECK(s.state == SAMORDNA__V1__NOTIFY_SUB_STATE__NOTIFY_SUB_STATE_DISABLED &&
          strcmp(s.reason, "gone") == 0);

    /* cursors */
    CHECK(notify_cursor_get(txn, &d, "registry") == 0);
    CHECK(notify_cursor_put(txn, &d, "registry", 77, 1000) == 0);
    CHECK(notify_cursor_get(txn, &d, "registry") == 77);

    /* pruning: older attempts go, newer stay, for every subscription */
    for (int i = 0; i < 10; i++)
        s_put_attempt(txn, &d, "p1", 1000 + i * 100);
    for (int i = 0; i < 4; i++)
        s_put_attempt(txn, &d, "p2", 1000 + i * 600);
    s_put_attempt(txn, &d, "p3", 5000);
    CHECK(notify_log_prune(txn, &d, 1500) == 5 + 1);
    CHECK(notify_count_prefix(txn, d.log, "p1") == 5);
    CHECK(notify_count_prefix(txn, d.log, "p2") == 3);
    CHECK(notify_count_prefix(txn, d.log, "p3") == 1);
    CHECK(notify_log_prune(txn, &d, 1500) == 0);
    CHECK(notify_log_prune(txn, &d, 100000) == 9);
    CHECK(notify_count_prefix(txn, d.log, "p1") == 0);

    mdb_txn_abort(txn);
    sam_store_destroy(&st);
    return sam_testkit_done("notify_store_selftest");
}
