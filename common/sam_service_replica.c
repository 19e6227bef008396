/*  sam_service_replica.c — a service across hosts: primary and standbys (docs/scaling.md,
    "Across hosts").

    A service's store lives on one host. A STANDBY, on another host with a store of its own,
    follows the primary's outbox through the brokers (the outbox is the replication log) and
    applies every record exactly as the primary did: the event type's apply with the
    record's sequence number, caller and wall-clock time, then the record itself, byte for
    byte, and its (source, id) record — so its tables, its outbox and its duplicate check are
    the primary's as of that record, and it answers reads. It writes nothing of its own: an
    events.publish that reaches it is answered 503 (the broker sends writes only to the
    primary: docs/protocol.md, "Primaries and standbys").

    The modes (--replica):
      primary   the default: this instance writes; nothing is followed. A store on one host
                with no standby is exactly what it always was.
      standby   follows the primary until `samctl promote` makes it the primary by hand; the
                operator then makes sure the old one is stopped (the broker sends it no
                write anyway: its epoch is lower).
      elect     etcd decides (sam_elect.h): the leader of the election is the primary and
                writes only while its lease holds; the others are standbys; when the leader
                is lost the standby with the most records takes over.

    EPOCHS. Every record carries the epoch of the primary that wrote it (StoredEvent.epoch):
    the etcd revision of its election, or one more than any epoch its store knows when it
    was promoted by hand. The store's meta table keeps where each epoch began
    ("epoch:" + 8-byte epoch → 8-byte first seq), and a standby's events.read asks for that
    list. With it a standby tells whether its own records are in the new primary's history:
    its last record (seq L, epoch e) is, unless a later epoch began at or before L — then
    the records from there on were written by a primary that lost its place before they
    reached the new one (never acknowledged in synchronous mode; see below), and the store
    has DIVERGED. A diverged store is moved aside whole (<data-dir>/<service>.diverged-…,
    nothing deleted) and the process exits 3, for its supervisor to start it again on an
    empty store that follows the primary from the start.

    SYNCHRONOUS MODE (--sync-standby): a write is answered only once a standby has committed
    it. A standby's events.read names it (ReadRequest.replica) and asks after what it has
    committed, so the primary learns each standby's position from its polls. The replies of
    a committed batch wait (rt_replica_hold) until some standby's position reaches their
    sequence number, or --sync-timeout-ms: then 503 "stored on the primary as seq N, not yet
    confirmed by a standby" — the event is stored, and the publisher's retry with the same
    id is answered as a duplicate once confirmed.
*/
#include "sam_service_int.h"

#include "sam_elect.h"
#include "sam_follow.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_EPOCH_PREFIX "epoch:"
#define S_EPOCH_KEY_LEN (sizeof S_EPOCH_PREFIX - 1 + 8)
#define S_MAX_EPOCHS 64 /* epochs sent to a standby: the newest, enough to place any record */
#define S_EXIT_DIVERGED 3
#define S_BY_HAND_KEY "replica:promoted-by-hand" /* meta: the epoch a standby began as primary */
#define S_ALIVE_MS 500 /* how long promote's ping waits for a primary that may still run */

typedef enum { S_MODE_PRIMARY, S_MODE_STANDBY, S_MODE_ELECT } s_mode_t;

struct rt_replica_t {
    s_mode_t mode;
    bool writer;          /* writes now (before the elect deadline is looked at) */
    uint64_t epoch;       /* the epoch stamped on our writes, while a primary */
    sam_follow_t *follow; /* following the primary, while a standby */
    sam_elect_t *elect;   /* --replica elect */
    uint64_t elect_epoch; /* the leadership the loop last acted on (0: none) */
    bool leads;           /* holds that leadership in etcd, writing or not (a handover) */
    /* what a standby last learnt of its primary */
    uint64_t primary_head, primary_epoch;
    char primary[96];
    char state[200];
    int64_t stalled_logged;
    /* synchronous mode */
    bool sync;
    int sync_timeout_ms;
    uint64_t confirmed;              /* the highest seq a standby has committed */
    rt_request_t *held, **held_tail; /* replies waiting for a standby, oldest first */
    size_t nheld;
    bool diverged;
    bool stuck;            /* diverged, and the store could not be moved aside */
    int exit_code;         /* why the loop was stopped from here (0: it was not) */
    int64_t credit_logged; /* when held replies last filled the credit (logged) */
    uint64_t cursor_epoch; /* our last record's epoch, sent with each poll */
    bool reregister;       /* the brokers must be told our new part (READY again) */
    /* --metrics: the part, the epoch, a standby's lag, a primary's confirmed position */
    sam_metric_t *m_primary, *m_epoch, *m_lag, *m_confirmed;
    int64_t metrics_due;
};

static const char *s_mode_name(s_mode_t m)
{
    return m == S_MODE_STANDBY ? "standby" : m == S_MODE_ELECT ? "elect" : "primary";
}

/* ---- the store's epochs ------------------------------------------------------------------- */

static void s_epoch_key(uint8_t key[S_EPOCH_KEY_LEN], uint64_t epoch)
{
    memcpy(key, S_EPOCH_PREFIX, sizeof S_EPOCH_PREFIX - 1);
    sam_be64_put(key + sizeof S_EPOCH_PREFIX - 1, epoch);
}

/*  Calls fn for every epoch the store knows, oldest first; stops when fn returns false. */
static int s_epochs_each(sam_service_t *svc, MDB_txn *txn,
                         bool (*fn)(void *arg, uint64_t epoch, uint64_t first), void *arg)
{
    MDB_dbi meta = sam_store_dbi(svc->store, "meta");
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, meta, &cur);
    if (rc) return rc;
    uint8_t start[S_EPOCH_KEY_LEN];
    s_epoch_key(start, 0);
    MDB_val k = {sizeof start, start}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size == S_EPOCH_KEY_LEN &&
           memcmp(k.mv_data, S_EPOCH_PREFIX, sizeof S_EPOCH_PREFIX - 1) == 0 && v.mv_size == 8) {
        if (!fn(arg, sam_be64_get((const uint8_t *)k.mv_data + sizeof S_EPOCH_PREFIX - 1),
                sam_be64_get(v.mv_data)))
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static bool s_max_epoch(void *arg, uint64_t epoch, uint64_t first)
{
    (void)first;
    uint64_t *max = arg;
    if (epoch > *max) *max = epoch;
    return true;
}

/* Records that `epoch` begins at first_seq (kept when already known). */
static int s_epoch_put(sam_service_t *svc, MDB_txn *txn, uint64_t epoch, uint64_t first_seq)
{
    uint8_t key[S_EPOCH_KEY_LEN], val[8];
    s_epoch_key(key, epoch);
    sam_be64_put(val, first_seq);
    MDB_val k = {sizeof key, key}, v = {sizeof val, val};
    int rc = mdb_put(txn, sam_store_dbi(svc->store, "meta"), &k, &v, MDB_NOOVERWRITE);
    return rc == MDB_KEYEXIST ? 0 : rc;
}

/* The last record's seq and epoch (0, 0 for an empty outbox). */
static int s_last_record(sam_service_t *svc, MDB_txn *txn, uint64_t *seq, uint64_t *epoch)
{
    *seq = *epoch = 0;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, svc->outbox, &cur);
    if (rc) return rc;
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == 0 && k.mv_size == 8) {
        *seq = sam_be64_get(k.mv_data);
        Samordna__V1__StoredEvent *se =
            samordna__v1__stored_event__unpack(NULL, v.mv_size, v.mv_data);
        if (se) {
            *epoch = se->epoch;
            samordna__v1__stored_event__free_unpacked(se, NULL);
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

typedef struct {
    Samordna__V1__EpochStart *items;
    size_t n, cap;
} s_epoch_list_t;

static bool s_epoch_collect(void *arg, uint64_t epoch, uint64_t first)
{
    s_epoch_list_t *l = arg;
    if (l->n == l->cap) { /* keep the newest: shift the oldest out */
        memmove(l->items, l->items + 1, (l->cap - 1) * sizeof *l->items);
        l->n--;
    }
    samordna__v1__epoch_start__init(&l->items[l->n]);
    l->items[l->n].epoch = epoch;
    l->items[l->n].first_seq = first;
    l->n++;
    return true;
}

size_t rt_replica_epochs_pack(sam_service_t *svc, MDB_txn *txn, uint8_t *out, size_t cap)
{
    Samordna__V1__EpochStart items[S_MAX_EPOCHS];
    s_epoch_list_t l = {items, 0, S_MAX_EPOCHS};
    if (s_epochs_each(svc, txn, s_epoch_collect, &l) != 0) return 0;
    Samordna__V1__ReadReply rr = SAMORDNA__V1__READ_REPLY__INIT;
    Samordna__V1__EpochStart *ptrs[S_MAX_EPOCHS];
    for (size_t i = 0; i < l.n; i++)
        ptrs[i] = &items[i];
    rr.n_epochs = l.n;
    rr.epochs = ptrs;
    rt_replica_t *rp = svc->replica;
    /* the epoch of a primary, and of a leader that stopped writing for a handover: its
       records are its term's, and the standby taking over reads them from it */
    rr.epoch = rp && (rp->writer || rp->leads) ? rp->epoch : 0;
    /* fields 3 and 4 only: what s_read_reply appends to the events it wrote itself */
    size_t need = samordna__v1__read_reply__get_packed_size(&rr);
    if (need > cap) return 0;
    return samordna__v1__read_reply__pack(&rr, out);
}

/* ---- applying the primary's records (a standby) -------------------------------------------- */

typedef struct {
    sam_service_t *svc;
    uint64_t last_seq, last_epoch; /* the store's last record, as of the page's check */
    const Samordna__V1__ReadReply *rr;
} s_check_t;

static void s_set_state(rt_replica_t *rp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s_set_state(rt_replica_t *rp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rp->state, sizeof rp->state, fmt, ap);
    va_end(ap);
}

/*  Moves the store aside (nothing deleted) and stops the process with exit code 3: its
    supervisor starts it again on an empty store, which follows the primary from the start.
    When the store cannot be moved (a mount point, permissions), the process stays up as a
    standby that applies nothing, and says so: a restart would find the same store. */
static void s_diverged(sam_service_t *svc, uint64_t last, uint64_t epoch, uint64_t new_epoch,
                       uint64_t began)
{
    rt_replica_t *rp = svc->replica;
    char dir[4096], aside[4200];
    snprintf(dir, sizeof dir, "%s/%s", sam_config_get(svc->config, "data-dir"), svc->def->name);
    snprintf(aside, sizeof aside, "%s.diverged-%" PRIu64 "-%" PRIu64 "-%lld", dir, epoch, last,
             (long long)time(NULL));
    if (rename(dir, aside) != 0) {
        sam_error("replica.diverged last_seq=%" PRIu64 " epoch=%" PRIu64 " primary_epoch=%" PRIu64
                  " began=%" PRIu64 " action=stalled reason=%s hint=\"this store holds records "
                  "the primary's history does not, and could not be moved aside to %s: move "
                  "%s away by hand (keep it: its last records are nowhere else) and start the "
                  "service again\"",
                  last, epoch, new_epoch, began, sam_logv(strerror(errno)), sam_logv(aside),
                  sam_logv(dir));
        s_set_state(rp,
                    "diverged: records after seq %" PRIu64
                    " are not the primary's; the store could not be moved aside",
                    began - 1);
        rp->stuck = true;
        return;
    }
    sam_error("replica.diverged last_seq=%" PRIu64 " epoch=%" PRIu64 " primary_epoch=%" PRIu64
              " began=%" PRIu64 " moved_to=%s action=exit hint=\"this store holds records the "
              "primary's history does not (written by a primary that lost its place before a "
              "standby had them): it is kept aside, and the service, started again, follows "
              "the primary from an empty store\"",
              last, epoch, new_epoch, began, sam_logv(aside));
    s_set_state(rp, "diverged: records after seq %" PRIu64 " are not the primary's", began - 1);
    rp->diverged = true;
    zsys_interrupted = 1; /* the loop ends; sam_service_main returns 3 */
}

/* A page of the primary's outbox, before it is applied: does our store still belong? */
static int s_check(void *arg, const Samordna__V1__ReadReply *rr)
{
    sam_service_t *svc = arg;
    rt_replica_t *rp = svc->replica;
    if (!rp || rp->writer || rp->stuck || rp->diverged) return -1;
    MDB_txn *txn;
    if (sam_store_begin(svc->store, NULL, false, &txn) != 0) return -1;
    uint64_t last, epoch;
    int rc = s_last_record(svc, txn, &last, &epoch);
    mdb_txn_abort(txn);
    if (rc) return -1;
    /* An answer from an instance of an older epoch than ours is not our primary's: a broker
       that has not seen the new primary yet, an old primary left running. Judged by it, a
       sound store would look diverged. */
    uint64_t known = epoch > rp->epoch ? epoch : rp->epoch;
    if (rr->epoch < known) {
        int64_t now = zclock_mono();
        if (now - rp->stalled_logged >= 10000) {
            sam_warn("replica.stale_primary epoch=%" PRIu64 " ours=%" PRIu64 " hint=\"an instance "
                     "of an older epoch answered as the primary; waiting for the current one\"",
                     rr->epoch, known);
            rp->stalled_logged = now;
        }
        s_set_state(rp, "waiting: an instance of epoch %" PRIu64 " answered, ours is %" PRIu64,
                    rr->epoch, known);
        return -1;
    }
    rp->primary_head = rr->last_seq;
    rp->primary_epoch = rr->epoch;
    /* Our last record is in the primary's history unless an epoch after its own began at or
       before it. */
    for (size_t i = 0; last && i < rr->n_epochs; i++) {
        const Samordna__V1__EpochStart *es = rr->epochs[i];
        if (es->epoch > epoch && es->first_seq <= last) {
            s_diverged(svc, last, epoch, es->epoch, es->first_seq);
            return -1;
        }
    }
    if (rr->last_seq < last) {
        s_diverged(svc, last, epoch, rr->epoch, rr->last_seq + 1);
        return -1;
    }
    return 0;
}

/* The replica follower's cursor is the outbox itself; its last record's epoch goes with the
   poll (ReadRequest.after_epoch), so the primary can tell our position is its history. */
static uint64_t s_cursor_get(void *arg, MDB_txn *txn)
{
    sam_service_t *svc = arg;
    uint64_t seq = 0, epoch = 0;
    if (s_last_record(svc, txn, &seq, &epoch) == 0) svc->replica->cursor_epoch = epoch;
    return seq;
}

static int s_cursor_put(void *arg, MDB_txn *txn, uint64_t seq)
{
    (void)arg;
    (void)txn;
    (void)seq;
    return 0; /* written by the records themselves */
}

static int s_apply_page(void *arg, MDB_txn *txn, Samordna__V1__StoredEvent *const *events, size_t n)
{
    sam_service_t *svc = arg;
    rt_replica_t *rp = svc->replica;
    uint64_t last, epoch;
    int rc = s_last_record(svc, txn, &last, &epoch);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const Samordna__V1__StoredEvent *se = events[i];
        char why[300] = "";
        if (se->seq != last + 1)
            snprintf(why, sizeof why, "seq %" PRIu64 " after %" PRIu64 ": a gap", se->seq, last);
        else if (se->epoch < epoch)
            snprintf(why, sizeof why,
                     "seq %" PRIu64 " is of epoch %" PRIu64 ", older than %" PRIu64
                     " of the record before it",
                     se->seq, se->epoch, epoch);
        else
            rc = rt_replay_one(svc, txn, se, why, sizeof why);
        if (why[0]) {
            s_set_state(rp, "stalled: %s", why);
            int64_t now = zclock_mono();
            if (now - rp->stalled_logged >= 10000) { /* once in a while: it is asked again */
                sam_error("replica.stalled seq=%" PRIu64 " reason=%s hint=\"the primary's record "
                          "cannot be applied here; the page is asked again every second\"",
                          se->seq, sam_logv(why));
                rp->stalled_logged = now;
            }
            return rc ? rc : SAM_STORE_CORRUPT;
        }
        if (rc) return rc;
        if (se->epoch != epoch && (rc = s_epoch_put(svc, txn, se->epoch, se->seq))) return rc;
        last = se->seq;
        epoch = se->epoch;
    }
    if (rc == 0) {
        s_set_state(rp, "%s", last >= rp->primary_head ? "caught-up" : "following");
        if (epoch > rp->epoch) rp->epoch = epoch; /* a standby's: of its last record */
    }
    return rc;
}

static void s_follow_start(sam_service_t *svc)
{
    rt_replica_t *rp = svc->replica;
    if (rp->follow) return;
    sam_follow_def_t fd = {.service = svc->def->name,
                           .wait_ms = 2000,
                           .store = svc->store,
                           .svc = svc,
                           .apply = s_apply_page,
                           .arg = svc,
                           .cursor_get = s_cursor_get,
                           .cursor_put = s_cursor_put,
                           .replica = svc->instance,
                           .replica_epoch = &rp->cursor_epoch,
                           .check = s_check};
    rp->follow = sam_follow_new(&fd);
    if (!rp->follow)
        sam_error("replica.follow_failed reason=\"out of memory\"");
    else
        s_set_state(rp, "following");
}

/* ---- becoming a primary -------------------------------------------------------------------- */

/*  Starts writing as the primary of `epoch`: the follower is stopped, the epoch's start is
    recorded (at the head + 1), and the brokers are told at once. */
static int s_become_primary(sam_service_t *svc, uint64_t epoch, const char *how)
{
    rt_replica_t *rp = svc->replica;
    sam_follow_destroy(&rp->follow);
    MDB_txn *txn;
    int rc = sam_store_begin(svc->store, NULL, true, &txn);
    uint64_t head = 0;
    if (rc == 0) {
        head = sam_service_last_seq(svc, txn);
        rc = s_epoch_put(svc, txn, epoch, head + 1);
        if (rc == 0 && rp->mode == S_MODE_STANDBY) { /* remembered, for a restart's warning */
            uint8_t val[8];
            sam_be64_put(val, epoch);
            MDB_val k = {sizeof S_BY_HAND_KEY - 1, (void *)S_BY_HAND_KEY}, v = {8, val};
            rc = mdb_put(txn, sam_store_dbi(svc->store, "meta"), &k, &v, 0);
        }
        rc = rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
    }
    if (rc) {
        sam_error("replica.promote_failed epoch=%" PRIu64 " reason=%s", epoch,
                  sam_logv(sam_store_strerror(rc)));
        return rc;
    }
    rp->epoch = epoch;
    rp->writer = true;
    rp->reregister = true;
    s_set_state(rp, "writing");
    sam_info("replica.primary epoch=%" PRIu64 " head=%" PRIu64 " how=%s", epoch, head,
             sam_logv(how));
    return 0;
}

static void s_become_standby(sam_service_t *svc, const char *why)
{
    rt_replica_t *rp = svc->replica;
    bool was = rp->writer;
    rp->writer = false;
    if (was) {
        rp->reregister = true;
        sam_warn("replica.standby reason=%s", sam_logv(why));
    }
    s_follow_start(svc);
}

/* ---- metrics ------------------------------------------------------------------------------ */

static void s_metrics_declare(sam_service_t *svc)
{
    rt_replica_t *rp = svc->replica;
    sam_metrics_t *m = svc->metrics;
    if (!m) return;
    rp->m_primary = sam_metrics_gauge(m, "replica_primary",
                                      "1 while this instance is the primary and may write, 0 "
                                      "while a standby (docs/scaling.md, \"Across hosts\").",
                                      "service");
    rp->m_epoch = sam_metrics_gauge(m, "replica_epoch",
                                    "The epoch this instance writes under (a primary) or of its "
                                    "last record (a standby).",
                                    "service");
    rp->m_lag = sam_metrics_gauge(
        m, "replica_lag_events",
        "A standby: the primary's outbox head as last learnt minus its own (0 on a primary).",
        "service");
    rp->m_confirmed = sam_metrics_gauge(
        m, "replica_confirmed_seq",
        "A primary: the highest sequence number a standby has confirmed committing.", "service");
}

static void s_metrics_update(sam_service_t *svc, int64_t now)
{
    rt_replica_t *rp = svc->replica;
    if (!svc->metrics || now < rp->metrics_due) return;
    rp->metrics_due = now + 500;
    const char *const label[] = {svc->def->name};
    uint64_t head = 0;
    MDB_txn *txn;
    if (sam_store_begin(svc->store, NULL, false, &txn) == 0) {
        head = sam_service_last_seq(svc, txn);
        mdb_txn_abort(txn);
    }
    bool writer = rt_replica_writer(svc, now);
    sam_metric_set(rp->m_primary, label, writer ? 1 : 0);
    sam_metric_set(rp->m_epoch, label, (double)rp->epoch);
    sam_metric_set(rp->m_lag, label,
                   !writer && rp->primary_head > head ? (double)(rp->primary_head - head) : 0);
    sam_metric_set(rp->m_confirmed, label, (double)rp->confirmed);
}

/*  A standby whose store began the newest epoch it knows as the primary (promoted by hand,
    then started again with its old --replica standby): it stays a standby, as told — two
    primaries are worse than none — but says so, since writes now wait for a primary. */
static void s_warn_was_primary(sam_service_t *svc, uint64_t newest)
{
    MDB_txn *txn;
    if (sam_store_begin(svc->store, NULL, false, &txn) != 0) return;
    MDB_val k = {sizeof S_BY_HAND_KEY - 1, (void *)S_BY_HAND_KEY}, v;
    if (mdb_get(txn, sam_store_dbi(svc->store, "meta"), &k, &v) == 0 && v.mv_size == 8 &&
        sam_be64_get(v.mv_data) == newest)
        sam_warn("replica.was_primary epoch=%" PRIu64 " hint=\"this store became the primary "
                 "by hand (samctl promote) and starts now as a standby, as --replica standby "
                 "says: start it with --replica primary to go on as the primary, or promote it "
                 "again; until then writes wait for a primary\"",
                 newest);
    mdb_txn_abort(txn);
}

/* ---- the runtime's calls --------------------------------------------------------------------- */

int rt_replica_open(sam_service_t *svc)
{
    rt_replica_t *rp = calloc(1, sizeof *rp);
    if (!rp) return -1;
    svc->replica = rp;
    rp->held_tail = &rp->held;
    const char *mode = sam_config_get(svc->config, "replica");
    if (!mode || strcmp(mode, "primary") == 0)
        rp->mode = S_MODE_PRIMARY;
    else if (strcmp(mode, "standby") == 0)
        rp->mode = S_MODE_STANDBY;
    else if (strcmp(mode, "elect") == 0)
        rp->mode = S_MODE_ELECT;
    else {
        sam_error("options.invalid option=replica value=%s reason=\"primary, standby or elect\"",
                  sam_logv(mode));
        return -1;
    }
    bool ok = true;
    rp->sync = sam_config_flag(svc->config, "sync-standby");
    rp->sync_timeout_ms = (int)sam_config_int(svc->config, "sync-timeout-ms", 10, 600000, &ok);
    int ttl_ms = (int)sam_config_int(svc->config, "etcd-ttl-ms", 1000, 60000, &ok);
    int min_members = (int)sam_config_int(svc->config, "etcd-min-members", 1, 64, &ok);
    if (!ok) {
        sam_error("options.invalid option=sync-timeout-ms|etcd-ttl-ms|etcd-min-members "
                  "reason=\"out of range\"");
        return -1;
    }
    const char *etcd = sam_config_get(svc->config, "etcd");
    if (etcd && !*etcd) etcd = NULL; /* a configuration file's etcd = "" */
    if ((rp->mode == S_MODE_ELECT) != (etcd != NULL)) {
        sam_error("options.invalid option=etcd reason=\"--replica elect needs --etcd, and "
                  "--etcd is only for --replica elect\"");
        return -1;
    }
    MDB_txn *txn;
    int rc = sam_store_begin(svc->store, NULL, false, &txn);
    uint64_t last = 0, epoch = 0, known = 0;
    if (rc == 0) {
        rc = s_last_record(svc, txn, &last, &epoch);
        if (rc == 0) rc = s_epochs_each(svc, txn, s_max_epoch, &known);
        mdb_txn_abort(txn);
    }
    if (rc) {
        sam_error("replica.open_failed reason=%s", sam_logv(sam_store_strerror(rc)));
        return -1;
    }
    rp->epoch = known > epoch ? known : epoch;
    if (rp->mode == S_MODE_PRIMARY) {
        rp->writer = true;
        s_set_state(rp, "writing");
    } else if (rp->mode == S_MODE_STANDBY) {
        s_warn_was_primary(svc, rp->epoch);
        s_follow_start(svc);
    } else {
        sam_elect_opts_t eo = {.endpoints = etcd,
                               .prefix = sam_config_get(svc->config, "etcd-prefix"),
                               .service = svc->def->name,
                               .instance = svc->instance,
                               .ttl_ms = ttl_ms,
                               .min_members = min_members};
        rp->elect = sam_elect_new(&eo);
        if (!rp->elect) {
            sam_error("options.invalid option=etcd value=%s reason=\"unusable\"", sam_logv(etcd));
            return -1;
        }
        sam_elect_set_position(rp->elect, last);
        s_set_state(rp, "candidate");
    }
    s_metrics_declare(svc);
    sam_info("replica.mode mode=%s epoch=%" PRIu64 " head=%" PRIu64 " sync=%s",
             s_mode_name(rp->mode), rp->epoch, last, rp->sync ? "yes" : "no");
    return 0;
}

int rt_replica_exit_code(sam_service_t *svc)
{
    if (!svc->replica) return 0;
    return svc->replica->diverged ? S_EXIT_DIVERGED : svc->replica->exit_code;
}

bool rt_replica_writer(sam_service_t *svc, int64_t now)
{
    rt_replica_t *rp = svc->replica;
    if (!rp) return true; /* the harness: no replication */
    if (!rp->writer) return false;
    return !rp->elect || sam_elect_may_write(rp->elect, now);
}

uint64_t rt_replica_epoch(sam_service_t *svc)
{
    return svc->replica ? svc->replica->epoch : 0;
}

void rt_replica_ext(sam_service_t *svc, char *out, size_t cap)
{
    rt_replica_t *rp = svc->replica;
    if (!rp || rp->mode == S_MODE_PRIMARY) {
        /* a primary that never had a standby says nothing new, unless its store has epochs */
        if (rp && rp->epoch)
            snprintf(out, cap, " epoch=%" PRIu64, rp->epoch);
        else
            out[0] = '\0';
        return;
    }
    snprintf(out, cap, " epoch=%" PRIu64 "%s", rp->epoch, rp->writer ? "" : " standby");
}

void rt_replica_confirm(sam_service_t *svc, MDB_txn *txn, uint64_t after_seq, uint64_t after_epoch)
{
    rt_replica_t *rp = svc->replica;
    if (!rp || !rp->writer || after_seq <= rp->confirmed) return;
    /* A standby's position confirms our records only if its record there is ours: the same
       epoch at the same seq (a store that diverged — an old primary back as a standby —
       holds other records under those numbers, and confirms nothing). */
    uint8_t key[8];
    sam_be64_put(key, after_seq);
    Samordna__V1__StoredEvent *se = NULL;
    if (sam_store_get_msg(txn, svc->outbox, key, 8, &samordna__v1__stored_event__descriptor,
                          (ProtobufCMessage **)&se) != 0)
        return; /* past our head, or unreadable: not a position of ours */
    bool ours = se->epoch == after_epoch;
    samordna__v1__stored_event__free_unpacked(se, NULL);
    if (!ours) return;
    rp->confirmed = after_seq;
}

bool rt_replica_hold(sam_service_t *svc, rt_request_t *r, int64_t now)
{
    rt_replica_t *rp = svc->replica;
    if (!rp || !rp->sync || r->reply.code != SAM_OK || !r->seq || r->seq <= rp->confirmed)
        return false;
    r->deadline = now + rp->sync_timeout_ms;
    r->next = NULL;
    *rp->held_tail = r;
    rp->held_tail = &r->next;
    rp->nheld++;
    /* Held replies keep their credit with the broker, and the standby's confirming poll
       needs one too: at the credit, it waits behind them until they time out. */
    if (rp->nheld + 1 >= (size_t)svc->credit && now - rp->credit_logged >= 10000) {
        sam_warn("replica.sync_credit held=%zu credit=%d hint=\"every credit slot holds a write "
                 "waiting for a standby, so the standby's poll that would confirm them waits in "
                 "the broker: keep fewer writes in flight than --credit, or raise it\"",
                 rp->nheld, svc->credit);
        rp->credit_logged = now;
    }
    return true;
}

/* Sends the held replies a standby has confirmed, and refuses the ones past their wait. */
static void s_serve_held(sam_service_t *svc, int64_t now, bool all)
{
    rt_replica_t *rp = svc->replica;
    rt_request_t **link = &rp->held;
    while (*link) {
        rt_request_t *r = *link;
        bool confirmed = r->seq <= rp->confirmed;
        if (!confirmed && !all && now < r->deadline) {
            link = &r->next;
            continue;
        }
        *link = r->next;
        rp->nheld--;
        if (!confirmed)
            sam_reply_error(&r->reply, SAM_UNAVAILABLE,
                            "stored on the primary as seq %" PRIu64 ", not yet confirmed by a "
                            "standby within %d ms (synchronous mode); send it again with the "
                            "same id to learn when it is",
                            r->seq, rp->sync_timeout_ms);
        rt_send_reply(svc, r);
        rt_request_destroy(&r);
    }
    rp->held_tail = link;
}

/*  The elect mode's turn: act on what the election says. This instance writes exactly while
    it leads a term it accepted and etcd's lease allows it (sam_elect_may_write); the moment
    that ends — the lease runs out, a handover begins, another instance leads — it registers
    as a standby, so the brokers hold the writes for the next primary rather than send them
    here to be refused. */
static void s_elect_turn(sam_service_t *svc, int64_t now)
{
    rt_replica_t *rp = svc->replica;
    sam_elect_state_t st;
    sam_elect_state(rp->elect, &st);
    snprintf(rp->primary, sizeof rp->primary, "%s", st.leader);
    bool lead = st.role == SAM_ELECT_LEADER && st.epoch;
    if (lead && st.epoch != rp->elect_epoch) {
        if (st.epoch <= rp->epoch) {
            /* a term no newer than what the store holds: etcd's revisions only grow, so this
               is a store from another cluster, or etcd restored from an old backup */
            sam_error("replica.epoch_behind elect_epoch=%" PRIu64 " store_epoch=%" PRIu64
                      " action=exit hint=\"etcd's revisions are older than this store's "
                      "records: writing under them would break the fencing; check --etcd and "
                      "--etcd-prefix\"",
                      st.epoch, rp->epoch);
            rp->exit_code = 1;
            zsys_interrupted = 1; /* the lease is revoked as the process stops: another leads */
            return;
        }
        rp->elect_epoch = st.epoch;
    }
    rp->leads = lead && rp->epoch == st.epoch; /* a term accepted above, and written under */
    bool can = lead && st.epoch == rp->elect_epoch && sam_elect_may_write(rp->elect, now);
    if (can && !rp->writer) {
        if (s_become_primary(svc, st.epoch, "elected") != 0) rp->elect_epoch = 0;
    } else if (!can && rp->writer) {
        s_become_standby(svc, lead ? "the lease runs out, or a handover is under way"
                              : st.role == SAM_ELECT_FOLLOWER ? "another instance leads"
                                                              : "the etcd lease was lost");
    } else if (!rp->writer && !rp->follow) {
        s_follow_start(svc);
    }
    /* A handover to this instance: the leader stops writing and registers as a standby, so
       its last records (a write whose commit overlapped the handover's start among them)
       are read from it by name until this instance has them all and the leader resigns. */
    bool taking_over = strcmp(st.handover, svc->instance) == 0 && *st.leader &&
                       strcmp(st.leader, svc->instance) != 0;
    if (rp->follow) sam_follow_from(rp->follow, taking_over ? st.leader : NULL);
}

void rt_replica_tick(sam_service_t *svc, int64_t now)
{
    rt_replica_t *rp = svc->replica;
    if (!rp) return;
    if (rp->elect) {
        s_elect_turn(svc, now);
        MDB_txn *txn;
        if (sam_store_begin(svc->store, NULL, false, &txn) == 0) {
            sam_elect_set_position(rp->elect, sam_service_last_seq(svc, txn));
            mdb_txn_abort(txn);
        }
    }
    if (rp->follow && !rp->writer) sam_follow_tick(rp->follow);
    if (rp->held) s_serve_held(svc, now, false);
    s_metrics_update(svc, now);
    if (rp->reregister && !rp->diverged) {
        rp->reregister = false;
        /* What was parked here was asked of our old part: answered now with what it has,
           then every broker hears READY with the new one (sam_service_wire.c). */
        if (rp->held) s_serve_held(svc, now, true);
        rt_serve_waiters(svc, now + RT_MAX_WAIT_MS + 1);
        rt_brokers_reregister(svc, now);
    }
}

size_t rt_replica_pollitems(sam_service_t *svc, zmq_pollitem_t *items, size_t cap)
{
    rt_replica_t *rp = svc->replica;
    return rp && rp->follow && !rp->writer ? sam_follow_pollitems(rp->follow, items, cap) : 0;
}

bool rt_replica_busy(sam_service_t *svc)
{
    rt_replica_t *rp = svc->replica;
    return rp && (rp->follow || rp->held || rp->elect);
}

void rt_replica_close(sam_service_t *svc)
{
    rt_replica_t *rp = svc->replica;
    if (!rp) return;
    if (rp->held) s_serve_held(svc, zclock_mono(), true);
    sam_follow_destroy(&rp->follow);
    sam_elect_destroy(&rp->elect);
    free(rp);
    svc->replica = NULL;
}

void rt_replica_fill(sam_service_t *svc, Samordna__V1__ReplicaState *rs)
{
    rt_replica_t *rp = svc->replica;
    if (!rp) return;
    rs->role = rp->writer                                    ? "primary"
               : rp->mode == S_MODE_ELECT && !rp->primary[0] ? "candidate"
                                                             : "standby";
    rs->mode = (char *)s_mode_name(rp->mode);
    rs->epoch = rp->epoch;
    rs->primary = rp->writer ? svc->instance : rp->primary;
    rs->primary_head = rp->primary_head;
    rs->synchronous = rp->sync;
    rs->confirmed = rp->confirmed;
    rs->state = rp->state;
}

/*  Whether a primary of our service answers a ping within S_ALIVE_MS (its instance name into
    `who`): promote's check that the old primary was stopped. A killed one does not answer
    (the broker may not know yet, but the ping goes unanswered); one too busy to answer in
    time is taken for stopped, and the brokers fence it by its lower epoch anyway. */
static bool s_primary_answers(sam_service_t *svc, char *who, size_t cap)
{
    sam_client_t *c = sam_service_client(svc);
    if (!c) return false;
    sam_client_set_route(c, true, NULL);
    sam_result_t res = {0};
    Samordna__V1__PingReply *pr = NULL;
    uint32_t code =
        sam_client_call(c, svc->def->name, "ping", NULL, &samordna__v1__ping_reply__descriptor,
                        (ProtobufCMessage **)&pr, S_ALIVE_MS, false, &res);
    sam_client_set_route(c, false, NULL);
    sam_result_clear(&res);
    bool up = code == SAM_OK && pr && strcmp(pr->instance, svc->instance) != 0;
    if (up) snprintf(who, cap, "%s", pr->instance);
    if (pr) protobuf_c_message_free_unpacked(&pr->base, NULL);
    return up;
}

/* replica.promote: this standby becomes the primary (samctl promote). */
int rt_builtin_promote(sam_service_t *svc, rt_request_t *r, MDB_txn *rtxn, int64_t now)
{
    (void)now;
    rt_replica_t *rp = svc->replica;
    Samordna__V1__ReplicaState rs = SAMORDNA__V1__REPLICA_STATE__INIT;
    if (!rp) return sam_reply_error(&r->reply, SAM_INTERNAL, "no replication here");
    if (rp->writer) {
        rt_replica_fill(svc, &rs);
        return sam_reply_message(&r->reply, &rs.base);
    }
    if (rp->mode == S_MODE_ELECT) {
        /* etcd decides: ask the leader to hand over to us once we have caught up */
        if (sam_elect_handover(rp->elect, svc->instance) != 0)
            return sam_reply_error(&r->reply, SAM_UNAVAILABLE,
                                   "etcd did not take the handover; try again");
        sam_info("replica.handover_asked instance=%s", sam_logv(svc->instance));
        s_set_state(rp, "handover asked: the primary hands over once this standby has caught up");
        rt_replica_fill(svc, &rs);
        return sam_reply_message(&r->reply, &rs.base);
    }
    const Samordna__V1__PromoteRequest *pq = (const Samordna__V1__PromoteRequest *)r->msg;
    char alive[96];
    if (!(pq && pq->force) && s_primary_answers(svc, alive, sizeof alive))
        return sam_reply_error(&r->reply, SAM_CONFLICT,
                               "the primary (%s) still answers: stop it first (the brokers would "
                               "send it no more writes, but it would go on answering reads from "
                               "a store that no longer grows), or promote with --force",
                               alive);
    uint64_t last = 0, epoch = 0, known = 0;
    int rc = s_last_record(svc, rtxn, &last, &epoch);
    if (!rc) rc = s_epochs_each(svc, rtxn, s_max_epoch, &known);
    if (rc) return rc;
    uint64_t next = epoch > known ? epoch : known;
    if (rp->primary_epoch > next) next = rp->primary_epoch;
    if (rp->epoch > next) next = rp->epoch;
    sam_warn("replica.promoted_by_hand head=%" PRIu64 " primary_head=%" PRIu64
             " hint=\"make sure the old primary is stopped: the broker sends it no writes, "
             "but it still answers reads\"",
             last, rp->primary_head);
    if ((rc = s_become_primary(svc, next + 1, "by hand"))) return rc;
    rt_replica_fill(svc, &rs);
    return sam_reply_message(&r->reply, &rs.base);
}
