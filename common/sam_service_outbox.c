/*  sam_service_outbox.c — the outbox read side: events.read, and the long polls.

    An events.read reply is built straight from the stored bytes (each outbox value already
    is a packed StoredEvent). A request that has nothing to answer yet — an events.read with
    wait_ms and no event after its after_seq, or a query whose handler set wait_ms — is
    parked the one way, rt_park: on one list with its deadline and its `again` function. After
    every write batch and loop turn (at least every 20 ms, since another instance on the same
    environment may commit) rt_serve_waiters opens one read transaction, reads the outbox head
    once and asks every waiter again; the ones that answer, or whose wait is over, are sent
    and freed.
*/
#include "sam_service_int.h"

#include <stdlib.h>
#include <string.h>

#define S_READ_MAX_BYTES (512 * 1024) /* an events.read reply stays well under the broker cap */
#define S_MAX_EPOCH_BYTES 2048        /* the epochs a standby's poll is answered with */

uint64_t sam_service_last_seq(sam_service_t *svc, MDB_txn *txn)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, svc->outbox, &cur) != 0) return 0;
    MDB_val k, v;
    uint64_t seq = 0;
    if (mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 && k.mv_size == 8) seq = sam_be64_get(k.mv_data);
    mdb_cursor_close(cur);
    return seq;
}

static size_t s_varint(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    do {
        out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

/*  Builds a ReadReply straight from the stored bytes: each outbox value already is a packed
    StoredEvent, so the reply is field 1 (length-delimited) per event plus field 2, last_seq,
    with no unpacking. Returns the number of events put in. */
static size_t s_read_reply(sam_service_t *svc, MDB_txn *txn, rt_request_t *r)
{
    uint64_t last = sam_service_last_seq(svc, txn);
    size_t cap = 4096, len = 0, count = 0;
    uint8_t *buf = malloc(cap);
    MDB_cursor *cur = NULL;
    if (!buf || mdb_cursor_open(txn, svc->outbox, &cur) != 0) {
        free(buf);
        sam_reply_error(&r->reply, SAM_INTERNAL, "cannot read the outbox");
        return 0;
    }
    uint8_t key[8];
    sam_be64_put(key, r->after_seq + 1);
    MDB_val k = {8, key}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && count < r->max && len < S_READ_MAX_BYTES) {
        size_t need = len + v.mv_size + 16;
        if (need > cap) {
            while (cap < need)
                cap *= 2;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) break;
            buf = nb;
        }
        buf[len++] = 0x0a;
        len += s_varint(buf + len, v.mv_size);
        memcpy(buf + len, v.mv_data, v.mv_size);
        len += v.mv_size;
        count++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (len + 11 > cap) {
        uint8_t *nb = realloc(buf, len + 11);
        if (!nb) {
            free(buf);
            sam_reply_error(&r->reply, SAM_INTERNAL, "out of memory");
            return 0;
        }
        buf = nb;
    }
    buf[len++] = 0x10;
    len += s_varint(buf + len, last);
    if (r->replica) { /* a standby's poll: the epochs, for its divergence check */
        uint8_t tail[S_MAX_EPOCH_BYTES];
        size_t tl = rt_replica_epochs_pack(svc, txn, tail, sizeof tail);
        uint8_t *nb = tl ? realloc(buf, len + tl) : buf;
        if (nb) {
            buf = nb;
            memcpy(buf + len, tail, tl);
            len += tl;
        }
    }
    free(r->reply.body);
    r->reply.body = buf;
    r->reply.body_len = len;
    r->reply.code = SAM_OK;
    return count;
}

void rt_park(sam_service_t *svc, rt_request_t *r, uint32_t wait_ms, int64_t now, rt_again_fn again)
{
    r->deadline = now + (wait_ms > RT_MAX_WAIT_MS ? RT_MAX_WAIT_MS : wait_ms);
    r->again = again;
    r->next = svc->waiters;
    svc->waiters = r;
}

void rt_serve_waiters(sam_service_t *svc, int64_t now)
{
    if (!svc->waiters) return;
    MDB_txn *txn;
    if (sam_store_begin(svc->store, NULL, false, &txn) != 0) return;
    uint64_t last = sam_service_last_seq(svc, txn); /* once for every waiter */
    rt_request_t **link = &svc->waiters;
    while (*link) {
        rt_request_t *w = *link;
        if (w->again(svc, w, txn, last, now)) {
            link = &w->next;
            continue;
        }
        *link = w->next;
        rt_send_reply(svc, w);
        rt_request_destroy(&w);
    }
    mdb_txn_abort(txn);
}

/* A parked events.read: still waiting while nothing is stored after its after_seq and its
   wait is not over; else its reply is read (the events, or none at the deadline). */
static bool s_read_again(sam_service_t *svc, rt_request_t *r, MDB_txn *txn, uint64_t last_seq,
                         int64_t now)
{
    if (last_seq <= r->after_seq && now < r->deadline) return true;
    s_read_reply(svc, txn, r);
    return false;
}

/* events.read: answer now when there is something, else park until there is or wait_ms. */
int rt_builtin_read(sam_service_t *svc, rt_request_t *r, MDB_txn *rtxn, int64_t now)
{
    const Samordna__V1__ReadRequest *rr = (const Samordna__V1__ReadRequest *)r->msg;
    r->after_seq = rr->after_seq;
    r->max = rr->max == 0 ? 100 : rr->max > 1000 ? 1000 : rr->max;
    if (rr->replica && rr->replica[0]) { /* a standby: it has committed up to after_seq */
        r->replica = true;
        rt_replica_confirm(svc, rtxn, rr->after_seq, rr->after_epoch);
    }
    size_t n = s_read_reply(svc, rtxn, r);
    if (n > 0 || rr->wait_ms == 0 || r->reply.code != SAM_OK) return 0;
    rt_park(svc, r, rr->wait_ms, now, s_read_again);
    return 1; /* parked: the caller must not free it */
}
