/*  notify_store.c — the notify tables: keys, the matching index, counters, state, cursors.
    The layout is documented in notify_store.h.
*/
#include "notify_store.h"

#include "sam_check.h"

#include <stdio.h>
#include <string.h>

const char *const notify_tables[] = {"subs",   "state",     "match",   "queue", "inbox",
                                     "dead",   "log",       "cursors", "sent",  "nmeta",
                                     "starts", "briefings", NULL};

size_t notify_qkey(uint8_t *out, const char *id, uint64_t n)
{
    size_t len = strnlen(id, NOTIFY_ID_MAX);
    memcpy(out, id, len);
    out[len] = 0;
    sam_be64_put(out + len + 1, n);
    return len + 9;
}

bool notify_qkey_split(const MDB_val *key, char *id_out, uint64_t *n)
{
    const uint8_t *k = key->mv_data;
    if (key->mv_size < 10 || key->mv_size > NOTIFY_QKEY_MAX) return false;
    size_t len = key->mv_size - 9;
    if (k[len] != 0) return false;
    memcpy(id_out, k, len);
    id_out[len] = 0;
    *n = sam_be64_get(k + len + 1);
    return true;
}

int notify_qkey_skip(MDB_cursor *cur, const char *id, MDB_val *k, MDB_val *v)
{
    /* "<id>\x01" sorts after every "<id>\0…" and before any longer id. */
    uint8_t skip[NOTIFY_ID_MAX + 1];
    size_t il = strlen(id);
    memcpy(skip, id, il);
    skip[il] = 1;
    k->mv_size = il + 1;
    k->mv_data = skip;
    return mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
}

uint64_t notify_counter_next(MDB_txn *txn, const notify_dbis_t *d, const char *name)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    uint64_t cur = 0;
    int rc = mdb_get(txn, d->meta, &k, &v);
    if (rc == 0 && v.mv_size == 8)
        cur = sam_be64_get(v.mv_data);
    else if (rc != MDB_NOTFOUND && rc != 0)
        return 0;
    uint8_t buf[8];
    sam_be64_put(buf, cur + 1);
    v.mv_size = 8;
    v.mv_data = buf;
    if (mdb_put(txn, d->meta, &k, &v, 0) != 0) return 0;
    return cur + 1;
}

#define S_INDEX_KEY_MAX 511 /* LMDB's default key size limit */

/* "<k>\0<pattern>\0<source>\0<subject>\0" into out; its length, 0 when it does not fit. */
static size_t s_index_prefix(uint8_t *out, size_t cap, char kind, const char *pattern,
                             const char *source, const char *subject)
{
    size_t pl = strlen(pattern), sl = strlen(source), jl = strlen(subject);
    size_t len = 2 + pl + 1 + sl + 1 + jl + 1;
    if (len > cap) return 0;
    uint8_t *p = out;
    *p++ = (uint8_t)kind;
    *p++ = 0;
    memcpy(p, pattern, pl);
    p += pl;
    *p++ = 0;
    memcpy(p, source, sl);
    p += sl;
    *p++ = 0;
    memcpy(p, subject, jl);
    p += jl;
    *p++ = 0;
    return len;
}

/* The index key of a subscription; its length, 0 when it does not fit. */
static size_t s_index_key(uint8_t *out, size_t cap, const Samordna__V1__Subscription *s)
{
    const char *type = s->type ? s->type : "";
    char kind;
    char pattern[300];
    size_t tl = strlen(type);
    if (tl == 0 || strcmp(type, "*") == 0) {
        kind = 'A';
        pattern[0] = 0;
    } else if (tl >= 2 && strcmp(type + tl - 2, ".*") == 0) {
        kind = 'P';
        snprintf(pattern, sizeof pattern, "%.*s", (int)(tl - 1), type);
    } else {
        kind = 'T';
        snprintf(pattern, sizeof pattern, "%s", type);
    }
    size_t len = s_index_prefix(out, cap, kind, pattern, s->source ? s->source : "",
                                s->subject ? s->subject : "");
    size_t il = strlen(s->id);
    if (!len || len + il > cap) return 0;
    memcpy(out + len, s->id, il);
    return len + il;
}

int notify_index_put(MDB_txn *txn, const notify_dbis_t *d, const Samordna__V1__Subscription *s)
{
    uint8_t key[S_INDEX_KEY_MAX];
    size_t len = s_index_key(key, sizeof key, s);
    if (!len) return MDB_BAD_VALSIZE;
    uint8_t channel = (uint8_t)s->channel;
    MDB_val k = {len, key}, v = {1, &channel};
    return mdb_put(txn, d->match, &k, &v, 0);
}

int notify_index_del(MDB_txn *txn, const notify_dbis_t *d, const Samordna__V1__Subscription *s)
{
    uint8_t key[S_INDEX_KEY_MAX];
    size_t len = s_index_key(key, sizeof key, s);
    if (!len) return MDB_BAD_VALSIZE;
    MDB_val k = {len, key};
    int rc = mdb_del(txn, d->match, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int notify_index_scan(MDB_txn *txn, const notify_dbis_t *d, char kind, const char *pattern,
                      const char *source, const char *subject, notify_match_fn fn, void *arg)
{
    uint8_t prefix[S_INDEX_KEY_MAX];
    size_t plen = s_index_prefix(prefix, sizeof prefix, kind, pattern, source, subject);
    if (!plen) return 0; /* longer than any stored key can be */
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, d->match, &cur);
    if (rc) return rc;
    MDB_val k = {plen, prefix}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size > plen && memcmp(k.mv_data, prefix, plen) == 0) {
        char id[NOTIFY_ID_MAX + 1];
        size_t il = k.mv_size - plen;
        if (il <= NOTIFY_ID_MAX && v.mv_size == 1) {
            memcpy(id, (const uint8_t *)k.mv_data + plen, il);
            id[il] = 0;
            if (fn(arg, id, *(const uint8_t *)v.mv_data)) break;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND || rc == 0 ? 0 : rc;
}

/* Counts the rows of dbi under "id\0", deleting each when drop. Returns the count, -1 when
   the cursor cannot be opened or a delete fails. */
static long s_prefix_rows(MDB_txn *txn, MDB_dbi dbi, const char *id, bool drop)
{
    uint8_t prefix[NOTIFY_ID_MAX + 1];
    size_t plen = strnlen(id, NOTIFY_ID_MAX);
    memcpy(prefix, id, plen);
    prefix[plen++] = 0;
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, dbi, &cur)) return -1;
    MDB_val k = {plen, prefix}, v;
    long n = 0;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size >= plen && memcmp(k.mv_data, prefix, plen) == 0) {
        if (drop && mdb_cursor_del(cur, 0)) {
            n = -1;
            break;
        }
        n++;
        /* after a delete, MDB_NEXT yields the row that took the deleted one's place */
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return n;
}

long notify_drop_prefix(MDB_txn *txn, MDB_dbi dbi, const char *id)
{
    return s_prefix_rows(txn, dbi, id, true);
}

uint64_t notify_count_prefix(MDB_txn *txn, MDB_dbi dbi, const char *id)
{
    long n = s_prefix_rows(txn, dbi, id, false);
    return n < 0 ? 0 : (uint64_t)n;
}

void notify_state_get(MDB_txn *txn, const notify_dbis_t *d, const Samordna__V1__Subscription *s,
                      notify_state_t *out)
{
    memset(out, 0, sizeof *out);
    Samordna__V1__SubscriptionState *st = NULL;
    int rc =
        sam_store_get_msg(txn, d->state, s->id, strlen(s->id),
                          &samordna__v1__subscription_state__descriptor, (ProtobufCMessage **)&st);
    if (rc == 0) {
        out->state = st->state;
        snprintf(out->reason, sizeof out->reason, "%s", st->reason ? st->reason : "");
        out->handshake_attempts = st->handshake_attempts;
        out->next_handshake_ms = st->next_handshake_ms;
        out->changed_ms = st->changed_ms;
        protobuf_c_message_free_unpacked(&st->base, NULL);
        return;
    }
    if (s->channel == SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_WEBHOOK) {
        out->state = SAMORDNA__V1__NOTIFY_SUB_STATE__NOTIFY_SUB_STATE_PENDING;
        snprintf(out->reason, sizeof out->reason, "waiting for the endpoint's handshake");
    } else {
        out->state = SAMORDNA__V1__NOTIFY_SUB_STATE__NOTIFY_SUB_STATE_ACTIVE;
    }
    out->changed_ms = s->created_ms;
}

int notify_state_put(MDB_txn *txn, const notify_dbis_t *d, const char *id, const notify_state_t *st)
{
    Samordna__V1__SubscriptionState m = SAMORDNA__V1__SUBSCRIPTION_STATE__INIT;
    m.state = st->state;
    m.reason = (char *)st->reason;
    m.handshake_attempts = st->handshake_attempts;
    m.next_handshake_ms = st->next_handshake_ms;
    m.changed_ms = st->changed_ms;
    return sam_store_put_msg(txn, d->state, id, strlen(id), &m.base, 0);
}

int notify_log_append(MDB_txn *txn, const notify_dbis_t *d, const Samordna__V1__Attempt *a)
{
    uint64_t n = notify_counter_next(txn, d, "logn");
    if (!n) return SAM_STORE_CORRUPT;
    uint8_t key[NOTIFY_QKEY_MAX];
    size_t kl = notify_qkey(key, a->subscription, n);
    return sam_store_put_msg(txn, d->log, key, kl, &a->base, 0);
}

long notify_log_prune(MDB_txn *txn, const notify_dbis_t *d, int64_t before_ms)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, d->log, &cur)) return -1;
    long deleted = 0;
    MDB_val k, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        char id[NOTIFY_ID_MAX + 1];
        uint64_t n;
        Samordna__V1__Attempt *a = samordna__v1__attempt__unpack(NULL, v.mv_size, v.mv_data);
        bool old = !a || a->at_ms < before_ms;
        if (a) protobuf_c_message_free_unpacked(&a->base, NULL);
        if (old) {
            if (mdb_cursor_del(cur, 0)) {
                deleted = -1;
                break;
            }
            deleted++;
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        if (!notify_qkey_split(&k, id, &n)) {
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            continue;
        }
        /* the rest of this subscription's log is newer: on to the next subscription */
        rc = notify_qkey_skip(cur, id, &k, &v);
    }
    mdb_cursor_close(cur);
    return deleted;
}

uint64_t notify_cursor_get(MDB_txn *txn, const notify_dbis_t *d, const char *service)
{
    Samordna__V1__Cursor *c = NULL;
    if (sam_store_get_msg(txn, d->cursors, service, strlen(service),
                          &samordna__v1__cursor__descriptor, (ProtobufCMessage **)&c) != 0)
        return 0;
    uint64_t seq = c->seq;
    protobuf_c_message_free_unpacked(&c->base, NULL);
    return seq;
}

int notify_cursor_put(MDB_txn *txn, const notify_dbis_t *d, const char *service, uint64_t seq,
                      int64_t now_ms)
{
    Samordna__V1__Cursor c = SAMORDNA__V1__CURSOR__INIT;
    c.service = (char *)service;
    c.seq = seq;
    c.updated_ms = now_ms;
    return sam_store_put_msg(txn, d->cursors, service, strlen(service), &c.base, 0);
}

_Static_assert(NOTIFY_ID_MAX == SAM_CHECK_ID_MAX, "a subscription id is an id");

bool notify_valid_id(const char *id)
{
    return sam_check_is_id(id); /* everyone's id rule; NOTIFY_ID_MAX is its length */
}

static size_t s_start_key(uint8_t *out, size_t cap, const char *id, const char *service)
{
    size_t il = strlen(id), sl = strlen(service);
    if (il + 1 + sl > cap) return 0;
    memcpy(out, id, il);
    out[il] = 0;
    memcpy(out + il + 1, service, sl);
    return il + 1 + sl;
}

int notify_start_get(MDB_txn *txn, const notify_dbis_t *d, const char *id, const char *service,
                     Samordna__V1__SubscriptionStart **out)
{
    uint8_t key[NOTIFY_ID_MAX + 1 + 64];
    size_t kl = s_start_key(key, sizeof key, id, service);
    if (!kl) return MDB_NOTFOUND;
    return sam_store_get_msg(txn, d->starts, key, kl, &samordna__v1__subscription_start__descriptor,
                             (ProtobufCMessage **)out);
}

int notify_start_put(MDB_txn *txn, const notify_dbis_t *d, const char *id, const char *service,
                     const Samordna__V1__SubscriptionStart *st)
{
    uint8_t key[NOTIFY_ID_MAX + 1 + 64];
    size_t kl = s_start_key(key, sizeof key, id, service);
    if (!kl) return MDB_BAD_VALSIZE;
    return sam_store_put_msg(txn, d->starts, key, kl, &st->base, 0);
}
