/*  sam_lease.c — named leases in the shared store (contract in sam_lease.h).

    The whole protocol is one function, sam_lease_renew, and one rule: a row of "leases"
    changes only inside a write transaction that first read it, so LMDB's single writer
    makes every take, renewal and release atomic across the processes on the store. Nothing
    is trusted from memory when an outcome is committed (sam_lease_check reads the row in
    the committing transaction); memory only decides whether new work may start, and then
    only with half of the ttl still ahead, so work started under a lease has time to finish
    and be recorded before the lease could expire.

    Renewals are committed like every other write of the store (synced unless --nosync): a
    lease is only about live processes, but a commit that skipped the sync could, on a power
    loss, leave the store's other tables behind a meta page written before their pages — one
    fsync every SAM_LEASE_RENEW_MS per instance is a small price for never risking that.
*/
#include "sam_lease.h"
#include "sam_log.h"
#include "sam_testkit.h"

#include "samordna/v1/service.pb-c.h"

#include <czmq.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_FORGET_MS 60000 /* a heartbeat expired this long ago is deleted */

typedef struct {
    char name[SAM_LEASE_NAME_MAX + 1];
    int64_t until; /* wall ms our hold ends, as of the last renewal; 0: not ours */
    bool draining; /* ours but to be given up: no new work under it */
} s_entry_t;

struct sam_lease_t {
    sam_store_t *store;
    MDB_dbi dbi;
    char holder[128];
    char instance[96];
    int ttl_ms;
    s_entry_t pool[SAM_LEASE_MAX];
    size_t n;
    size_t live, held;
    int64_t renewed_mono; /* monotonic ms of the last renewal, 0: never */
    size_t offset;        /* where in the pool this instance starts taking */
    sam_lease_busy_fn busy;
    void *busy_arg;
};

int64_t sam_lease_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

sam_lease_t *sam_lease_new(sam_store_t *store, const char *instance, int ttl_ms)
{
    if (!store || !instance || strlen(instance) >= sizeof((sam_lease_t *)0)->instance ||
        ttl_ms < 200 || ttl_ms > 600000)
        return NULL;
    sam_lease_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    self->store = store;
    self->dbi = sam_store_dbi(store, "leases");
    self->ttl_ms = ttl_ms;
    snprintf(self->instance, sizeof self->instance, "%s", instance);
    uint32_t token = randombytes_random();
    snprintf(self->holder, sizeof self->holder, "%s.%08x", instance, token);
    self->offset = token;
    self->live = 1;
    return self;
}

void sam_lease_destroy(sam_lease_t **self_p)
{
    if (!self_p || !*self_p) return;
    free(*self_p);
    *self_p = NULL;
}

static bool s_name_ok(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > SAM_LEASE_NAME_MAX) return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            return false;
    return true;
}

int sam_lease_want(sam_lease_t *self, const char *name)
{
    if (!s_name_ok(name)) return -1;
    for (size_t i = 0; i < self->n; i++)
        if (strcmp(self->pool[i].name, name) == 0) return 0;
    if (self->n == SAM_LEASE_MAX) return -1;
    snprintf(self->pool[self->n++].name, SAM_LEASE_NAME_MAX + 1, "%s", name);
    self->renewed_mono = 0; /* renew at the next chance */
    return 0;
}

void sam_lease_set_busy(sam_lease_t *self, sam_lease_busy_fn fn, void *arg)
{
    self->busy = fn;
    self->busy_arg = arg;
}

/* ---- rows ---------------------------------------------------------------------------------- */

static size_t s_key(char *out, size_t cap, char kind, const char *name)
{
    int n = snprintf(out, cap, "%c/%s", kind, name);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* Reads row (kind, name) into holder/expires/taken; 0, MDB_NOTFOUND or an error. */
static int s_get(const sam_lease_t *self, MDB_txn *txn, char kind, const char *name, char *holder,
                 size_t hcap, int64_t *expires, uint64_t *taken)
{
    char key[256];
    size_t kl = s_key(key, sizeof key, kind, name);
    Samordna__V1__Lease *l = NULL;
    int rc = sam_store_get_msg(txn, self->dbi, key, kl, &samordna__v1__lease__descriptor,
                               (ProtobufCMessage **)&l);
    if (rc) return rc;
    snprintf(holder, hcap, "%s", l->holder);
    *expires = l->expires_ms;
    if (taken) *taken = l->taken;
    protobuf_c_message_free_unpacked(&l->base, NULL);
    return 0;
}

static int s_put(sam_lease_t *self, MDB_txn *txn, char kind, const char *name, int64_t expires,
                 uint64_t taken)
{
    char key[256];
    size_t kl = s_key(key, sizeof key, kind, name);
    Samordna__V1__Lease l = SAMORDNA__V1__LEASE__INIT;
    l.holder = self->holder;
    l.expires_ms = expires;
    l.taken = taken;
    return sam_store_put_msg(txn, self->dbi, key, kl, &l.base, 0);
}

static int s_del(sam_lease_t *self, MDB_txn *txn, char kind, const char *name)
{
    char key[256];
    size_t kl = s_key(key, sizeof key, kind, name);
    MDB_val k = {kl, key};
    int rc = mdb_del(txn, self->dbi, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Counts the live heartbeats ("i/…" not expired) and deletes long-forgotten ones. */
static int s_count_live(sam_lease_t *self, MDB_txn *txn, int64_t now, size_t *live)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, self->dbi, &cur);
    if (rc) return rc;
    *live = 0;
    MDB_val k = {2, "i/"}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == 0 && k.mv_size >= 2 && memcmp(k.mv_data, "i/", 2) == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        Samordna__V1__Lease *l = samordna__v1__lease__unpack(NULL, v.mv_size, v.mv_data);
        int64_t expires = l ? l->expires_ms : 0;
        if (l) protobuf_c_message_free_unpacked(&l->base, NULL);
        if (expires > now)
            (*live)++;
        else if (expires < now - S_FORGET_MS && (rc = mdb_cursor_del(cur, 0)))
            break;
    }
    mdb_cursor_close(cur);
    if (*live == 0) *live = 1; /* this one, whose heartbeat was just written */
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* ---- renewal ------------------------------------------------------------------------------- */

typedef enum { S_FREE, S_MINE, S_OTHER } s_state_t;

/* A list of lease names for one log line: "a,b,c", cut with "+N" when long. */
typedef struct {
    char buf[200]; /* sam_logv shows 200 bytes of a value */
    size_t len, n, cut;
} s_names_t;

static void s_names_add(s_names_t *l, const char *name)
{
    l->n++;
    size_t need = strlen(name) + (l->len ? 1 : 0);
    if (l->cut || l->len + need + 8 >= sizeof l->buf) {
        l->cut++;
        return;
    }
    l->len +=
        (size_t)snprintf(l->buf + l->len, sizeof l->buf - l->len, "%s%s", l->len ? "," : "", name);
}

static const char *s_names(s_names_t *l)
{
    if (l->cut)
        snprintf(l->buf + l->len, sizeof l->buf - l->len, "%s+%zu", l->len ? "," : "", l->cut);
    return l->buf;
}

int sam_lease_renew(sam_lease_t *self, bool force)
{
    int64_t mono = s_mono_ms();
    if (!self->n) return 0;
    if (!force && self->renewed_mono && mono - self->renewed_mono < SAM_LEASE_RENEW_MS) return 0;
    self->renewed_mono = mono;
    int64_t now = sam_lease_clock_ms(), until = now + self->ttl_ms;
    MDB_txn *txn;
    int rc = sam_store_begin(self->store, NULL, true, &txn);
    if (rc) goto failed;
    size_t live = 1, before = self->live;
    if ((rc = s_put(self, txn, 'i', self->holder, until, 0))) goto aborted;
    if ((rc = s_count_live(self, txn, now, &live))) goto aborted;

    s_state_t state[SAM_LEASE_MAX];
    uint64_t taken[SAM_LEASE_MAX];
    char prev[SAM_LEASE_MAX][128];
    size_t held = 0;
    s_names_t lost = {0}, released = {0};
    for (size_t i = 0; i < self->n; i++) {
        int64_t expires = 0;
        prev[i][0] = 0;
        taken[i] = 0;
        rc =
            s_get(self, txn, 'l', self->pool[i].name, prev[i], sizeof prev[i], &expires, &taken[i]);
        if (rc && rc != MDB_NOTFOUND) goto aborted;
        rc = 0;
        bool ours = strcmp(prev[i], self->holder) == 0;
        state[i] = expires <= now ? S_FREE : ours ? S_MINE : S_OTHER;
        if (state[i] == S_FREE && ours) state[i] = S_MINE; /* we stalled, nobody took it */
        if (state[i] != S_MINE && self->pool[i].until) s_names_add(&lost, self->pool[i].name);
        if (state[i] == S_MINE) held++;
    }
    if (lost.n)
        sam_warn("lease.lost names=%s count=%zu holder=%s", sam_logv(s_names(&lost)), lost.n,
                 sam_logv(self->holder));
    size_t share = (self->n + live - 1) / live;

    /* the surplus: drained, and given up once idle (from the end of this instance's order) */
    size_t excess = held > share ? held - share : 0;
    for (size_t j = 0; j < self->n; j++) {
        size_t i = (self->offset + self->n - 1 - j) % self->n;
        s_entry_t *e = &self->pool[i];
        e->draining = false;
        if (state[i] != S_MINE || !excess) continue;
        excess--;
        if (self->busy && self->busy(self->busy_arg, e->name)) {
            e->draining = true;
            continue;
        }
        if ((rc = s_del(self, txn, 'l', e->name))) goto aborted;
        state[i] = S_OTHER; /* not to be taken again in this round */
        held--;
        s_names_add(&released, e->name);
    }
    if (released.n)
        sam_info("lease.released names=%s count=%zu holder=%s live=%zu share=%zu",
                 sam_logv(s_names(&released)), released.n, sam_logv(self->holder), live, share);
    /* renew what is ours, take free ones up to the share */
    for (size_t j = 0; j < self->n; j++) {
        size_t i = (self->offset + j) % self->n;
        if (state[i] == S_MINE) {
            if ((rc = s_put(self, txn, 'l', self->pool[i].name, until, taken[i]))) goto aborted;
        } else if (state[i] == S_FREE && held < share) {
            if ((rc = s_put(self, txn, 'l', self->pool[i].name, until, taken[i] + 1))) goto aborted;
            state[i] = S_MINE;
            held++;
            /* one line per previous holder, for the operator's "who took what from whom" */
            sam_info("lease.taken name=%s holder=%s from=%s live=%zu share=%zu",
                     sam_logv(self->pool[i].name), sam_logv(self->holder),
                     sam_logv(prev[i][0] ? prev[i] : "-"), live, share);
        }
    }
    if ((rc = mdb_txn_commit(txn))) goto failed;
    for (size_t i = 0; i < self->n; i++)
        self->pool[i].until = state[i] == S_MINE ? until : 0;
    self->live = live;
    self->held = held;
    if (live != before) {
        int dead = 0;
        if (live < before) mdb_reader_check(sam_store_env(self->store), &dead);
        sam_info("lease.instances live=%zu was=%zu holder=%s held=%zu stale_readers=%d", live,
                 before, sam_logv(self->holder), held, dead);
    }
    return 0;
aborted:
    mdb_txn_abort(txn);
failed:
    sam_error("lease.renew_failed holder=%s error=%s", sam_logv(self->holder),
              sam_logv(sam_store_strerror(rc)));
    for (size_t i = 0; i < self->n; i++) {
        self->pool[i].until = 0;
        self->pool[i].draining = false;
    }
    self->held = 0;
    return rc;
}

int64_t sam_lease_due_ms(const sam_lease_t *self)
{
    if (!self || !self->n) return -1;
    int64_t left = self->renewed_mono + SAM_LEASE_RENEW_MS - s_mono_ms();
    return self->renewed_mono && left > 0 ? left : 0;
}

bool sam_lease_mine(const sam_lease_t *self, const char *name)
{
    if (!self) return false;
    int64_t now = sam_lease_clock_ms();
    for (size_t i = 0; i < self->n; i++)
        if (strcmp(self->pool[i].name, name) == 0)
            return !self->pool[i].draining && self->pool[i].until - now >= self->ttl_ms / 2;
    return false;
}

bool sam_lease_holds(const sam_lease_t *self, const char *name)
{
    if (!self) return false;
    int64_t now = sam_lease_clock_ms();
    for (size_t i = 0; i < self->n; i++)
        if (strcmp(self->pool[i].name, name) == 0) return self->pool[i].until > now;
    return false;
}

bool sam_lease_check(const sam_lease_t *self, MDB_txn *txn, const char *name)
{
    if (!self) return false;
    char holder[128];
    int64_t expires = 0;
    if (s_get(self, txn, 'l', name, holder, sizeof holder, &expires, NULL)) return false;
    return strcmp(holder, self->holder) == 0 && expires > sam_lease_clock_ms();
}

void sam_lease_release_all(sam_lease_t *self)
{
    if (!self || !self->n) return;
    MDB_txn *txn;
    int rc = sam_store_begin(self->store, NULL, true, &txn);
    for (size_t i = 0; rc == 0 && i < self->n; i++) {
        char holder[128];
        int64_t expires;
        if (s_get(self, txn, 'l', self->pool[i].name, holder, sizeof holder, &expires, NULL) == 0 &&
            strcmp(holder, self->holder) == 0)
            rc = s_del(self, txn, 'l', self->pool[i].name);
        self->pool[i].until = 0;
    }
    if (rc == 0) rc = s_del(self, txn, 'i', self->holder);
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else if (txn)
        mdb_txn_abort(txn);
    if (rc)
        sam_warn("lease.release_failed holder=%s error=%s", sam_logv(self->holder),
                 sam_logv(sam_store_strerror(rc)));
    else
        sam_info("lease.released_all holder=%s held=%zu", sam_logv(self->holder), self->held);
    self->held = 0;
}

const char *sam_lease_holder(const sam_lease_t *self)
{
    return self->holder;
}

size_t sam_lease_live(const sam_lease_t *self)
{
    return self->live;
}

size_t sam_lease_held(const sam_lease_t *self)
{
    return self->held;
}

/* ---- selftest ------------------------------------------------------------------------------

    Two instances in one process on one store: the first takes the whole pool, the second
    joining gets its share as the first gives up its surplus, a busy lease is drained rather
    than given up, an outcome check in a transaction, and a takeover after the first "dies"
    (destroyed without release) once its ttl has passed. */

#define S_CHECK(cond) ((void)(SAM_CHECK(cond) || failed++))

static bool s_test_busy(void *arg, const char *name)
{
    return strcmp((const char *)arg, "*") == 0 || strcmp(name, (const char *)arg) == 0;
}

static size_t s_test_mine(const sam_lease_t *l, const char *const *names)
{
    size_t n = 0;
    for (size_t i = 0; names[i]; i++)
        n += sam_lease_mine(l, names[i]);
    return n;
}

int sam_lease_selftest(const char *scratch)
{
    int failed = 0;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/lease", scratch);
    const char *const tables[] = {NULL};
    sam_store_t *store = sam_testkit_store(dir, tables);
    if (!store) return 1;
    const char *const names[] = {"a", "b", "c", "d", "e", "f", NULL};
    S_CHECK(sam_lease_new(store, "x", 10) == NULL);
    sam_lease_t *one = sam_lease_new(store, "one", 200);
    sam_lease_t *two = sam_lease_new(store, "two", 200);
    S_CHECK(one && two && strcmp(sam_lease_holder(one), sam_lease_holder(two)) != 0);
    if (!one || !two) goto done;
    S_CHECK(sam_lease_want(one, "bad name") == -1 && sam_lease_want(one, "") == -1);
    for (size_t i = 0; names[i]; i++) {
        S_CHECK(sam_lease_want(one, names[i]) == 0);
        S_CHECK(sam_lease_want(two, names[i]) == 0);
    }
    S_CHECK(sam_lease_want(one, "a") == 0); /* twice is harmless */

    /* alone, the first takes everything */
    S_CHECK(sam_lease_renew(one, true) == 0);
    S_CHECK(s_test_mine(one, names) == 6 && sam_lease_held(one) == 6);
    S_CHECK(sam_lease_live(one) == 1);
    /* the second joins: nothing free yet; the first gives up its surplus, the second takes it */
    S_CHECK(sam_lease_renew(two, true) == 0 && sam_lease_held(two) == 0);
    S_CHECK(sam_lease_renew(one, true) == 0 && sam_lease_live(one) == 2);
    S_CHECK(sam_lease_held(one) == 3);
    S_CHECK(sam_lease_renew(two, true) == 0 && sam_lease_held(two) == 3);
    for (size_t i = 0; names[i]; i++)
        S_CHECK(sam_lease_mine(one, names[i]) != sam_lease_mine(two, names[i]));

    /* the outcome check reads the row: exactly one of them passes for each name */
    MDB_txn *txn;
    S_CHECK(sam_store_begin(store, NULL, false, &txn) == 0);
    for (size_t i = 0; names[i]; i++)
        S_CHECK(sam_lease_check(one, txn, names[i]) != sam_lease_check(two, txn, names[i]));
    S_CHECK(!sam_lease_check(one, txn, "unknown"));
    mdb_txn_abort(txn);

    /* a third instance: the share drops to 2; a busy surplus is drained, not given up */
    sam_lease_t *three = sam_lease_new(store, "three", 200);
    for (size_t i = 0; three && names[i]; i++)
        sam_lease_want(three, names[i]);
    S_CHECK(three && sam_lease_renew(three, true) == 0);
    sam_lease_set_busy(one, s_test_busy, (void *)"*");
    S_CHECK(sam_lease_renew(one, true) == 0 && sam_lease_live(one) == 3);
    S_CHECK(s_test_mine(one, names) == 2); /* draining one: no new work under it */
    S_CHECK(sam_lease_held(one) == 3);     /* but still held */
    sam_lease_set_busy(one, NULL, NULL);
    S_CHECK(sam_lease_renew(one, true) == 0 && sam_lease_held(one) == 2);
    S_CHECK(sam_lease_renew(three, true) == 0 && sam_lease_held(three) == 1);
    sam_lease_destroy(&three); /* dies without a word */

    /* the first dies too: its leases and the third's pass to the second after the ttl */
    sam_lease_destroy(&one);
    S_CHECK(one == NULL);
    S_CHECK(sam_lease_renew(two, true) == 0); /* the dead still count as live: share 2 */
    zclock_sleep(450);                        /* past the ttl of 200 ms */
    S_CHECK(sam_lease_renew(two, true) == 0 && sam_lease_live(two) == 1);
    S_CHECK(s_test_mine(two, names) == 6);

    /* a clean release: a newcomer takes everything at once */
    sam_lease_release_all(two);
    sam_lease_t *four = sam_lease_new(store, "four", 200);
    for (size_t i = 0; four && names[i]; i++)
        sam_lease_want(four, names[i]);
    S_CHECK(four && sam_lease_renew(four, true) == 0 && sam_lease_held(four) == 6);
    sam_lease_destroy(&four);
done:
    sam_lease_destroy(&one);
    sam_lease_destroy(&two);
    sam_store_destroy(&store);
    return failed;
}
