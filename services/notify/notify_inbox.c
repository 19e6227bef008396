/*  notify_inbox.c — the inbox channel, the delivery log, dead letters and cursors.

    An inbox subscription's queue is the inbox: notify.inbox.read returns its oldest
    deliveries — or, when there are none and the reader gives wait_ms, waits for them as a
    long poll (sam_reply_t.wait_ms) — and they stay until notify.inbox.ack removes them, so whatever
   a reader did not acknowledge (it crashed, the reply was lost) is read again. Receivers drop
    duplicates by the CloudEvent id.

    Acknowledging and replaying change only notify's own delivery state, never the facts of
    the system, so they are not events: the handler opens its own write transaction after
    checking the request on the read transaction it was given (their rows in notify.def are
    W, a query that writes). Both are idempotent.
*/
#include "notify.h"
#include "sam_check.h"

#include <string.h>

static notify_t *s_ctx(sam_service_t *svc)
{
    return sam_service_ctx(svc);
}

/* An inbox read and its acknowledgement name queue numbers, which are one store's own, and
   a replay queues in it: a standby (notify_replica.c) refuses them. -1 with the reply set,
   or 0 on the primary. */
static int s_primary_only(sam_service_t *svc, sam_reply_t *reply)
{
    if (sam_service_is_primary(svc)) return 0;
    sam_warn("notify.standby_refused reason=\"inbox and dead letters are the primary's\"");
    return sam_reply_error(reply, SAM_UNAVAILABLE,
                           "this notify instance is a standby: inbox reads, acknowledgements "
                           "and dead-letter replays are the primary's (send it again, routed "
                           "to the primary)");
}

/* Ends the write transaction w of a query that writes: commits it when src is 0 (relaxed:
   without waiting for the sync, see notify_commit_relaxed), else aborts it. Returns src or
   the commit's error. */
static int s_end_write(notify_t *n, MDB_txn *w, int src, bool relaxed)
{
    if (src) {
        mdb_txn_abort(w);
        return src;
    }
    return relaxed ? notify_commit_relaxed(n, w) : mdb_txn_commit(w);
}

/* notify.inbox.read  InboxReadRequest → InboxReadReply (oldest first) */
int notify_q_inbox_read(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                        sam_reply_t *reply)
{
    if (s_primary_only(svc, reply)) return -1;
    notify_t *n = s_ctx(svc);
    const Samordna__V1__InboxReadRequest *req = (const Samordna__V1__InboxReadRequest *)call->msg;
    int rc = -1;
    size_t max = req->max ? req->max : 100;
    if (max > 1000) max = 1000;
    Samordna__V1__InboxItem *items = NULL, **ptrs = NULL;
    Samordna__V1__Delivery **ds = NULL;
    size_t count = 0;
    Samordna__V1__Subscription *s = NULL;
    if ((rc = notify_sub_load(n, txn, "subscription", req->subscription, call->caller,
                              call->caller->agency, &s, reply)))
        goto done;
    rc = -1;
    if (s->channel != SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_INBOX) {
        sam_reply_error(reply, SAM_UNPROCESSABLE, "subscription: '%s' is not an inbox subscription",
                        s->id);
        goto done;
    }
    items = calloc(max, sizeof *items);
    ptrs = calloc(max, sizeof *ptrs);
    ds = calloc(max, sizeof *ds);
    if (!items || !ptrs || !ds) {
        sam_reply_error(reply, SAM_INTERNAL, "out of memory");
        goto done;
    }
    uint8_t key[NOTIFY_QKEY_MAX];
    size_t kl = notify_qkey(key, s->id, 0);
    size_t plen = kl - 8;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, n->dbi.inbox, &cur))) goto done;
    MDB_val k = {kl, key}, v;
    int crc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (crc == 0 && count < max && k.mv_size == kl && memcmp(k.mv_data, key, plen) == 0) {
        Samordna__V1__Delivery *d = samordna__v1__delivery__unpack(NULL, v.mv_size, v.mv_data);
        if (d) {
            ds[count] = d;
            samordna__v1__inbox_item__init(&items[count]);
            items[count].qseq = d->qseq;
            items[count].event = d->event;
            items[count].service = d->service;
            items[count].seq = d->seq;
            items[count].committed_ms = d->committed_ms;
            ptrs[count] = &items[count];
            count++;
        }
        crc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (count == 0 && req->wait_ms) {
        /* a long poll: the runtime calls again as deliveries may have been queued */
        reply->wait_ms = req->wait_ms > 30000 ? 30000 : req->wait_ms;
        rc = 0;
        goto done;
    }
    Samordna__V1__InboxReadReply out = SAMORDNA__V1__INBOX_READ_REPLY__INIT;
    out.n_items = count;
    out.items = ptrs;
    rc = sam_reply_message(reply, &out.base);
done:
    for (size_t i = 0; ds && i < count; i++)
        protobuf_c_message_free_unpacked(&ds[i]->base, NULL);
    free(ds);
    free(ptrs);
    free(items);
    if (s) protobuf_c_message_free_unpacked(&s->base, NULL);
    return rc;
}

/* Removes one queued delivery (cursor on it) and logs the acknowledgement. */
static int s_ack_one(notify_t *n, MDB_txn *w, MDB_cursor *cur, const MDB_val *v, int64_t now)
{
    Samordna__V1__Delivery *d = samordna__v1__delivery__unpack(NULL, v->mv_size, v->mv_data);
    int rc = mdb_cursor_del(cur, 0);
    if (rc || !d) {
        if (d) protobuf_c_message_free_unpacked(&d->base, NULL);
        return rc;
    }
    Samordna__V1__Attempt a = SAMORDNA__V1__ATTEMPT__INIT;
    a.subscription = d->subscription;
    a.qseq = d->qseq;
    a.event_id = d->event && d->event->id ? d->event->id : "";
    a.event_type = d->event && d->event->type ? d->event->type : "";
    a.at_ms = now;
    a.status = SAM_OK;
    a.latency_us = (now - (d->committed_ms ? d->committed_ms : d->enqueued_ms)) * 1000;
    a.outcome = "acked";
    rc = notify_log_append(w, &n->dbi, &a);
    protobuf_c_message_free_unpacked(&d->base, NULL);
    return rc;
}

/* notify.inbox.ack  InboxAckRequest → InboxAckReply */
int notify_q_inbox_ack(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply)
{
    if (s_primary_only(svc, reply)) return -1;
    notify_t *n = s_ctx(svc);
    const Samordna__V1__InboxAckRequest *req = (const Samordna__V1__InboxAckRequest *)call->msg;
    int rc = -1;
    MDB_txn *w = NULL;
    Samordna__V1__Subscription *s = NULL;
    if ((rc = notify_sub_load(n, txn, "subscription", req->subscription, call->caller,
                              call->caller->agency, &s, reply)))
        goto done;
    rc = -1;
    if (!req->upto && !req->n_qseqs) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "upto: give upto or qseqs");
        goto done;
    }
    if (req->n_qseqs > 10000) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "qseqs: more than 10000");
        goto done;
    }
    int src = sam_store_begin(sam_service_store(svc), NULL, true, &w);
    if (src) {
        rc = src;
        goto done;
    }
    int64_t now = notify_now_ms();
    uint32_t acked = 0;
    MDB_cursor *cur;
    src = mdb_cursor_open(w, n->dbi.inbox, &cur);
    uint8_t key[NOTIFY_QKEY_MAX];
    size_t kl = notify_qkey(key, s->id, 0);
    size_t plen = kl - 8;
    if (!src && req->upto) {
        MDB_val k = {kl, key}, v;
        int crc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        while (crc == 0 && k.mv_size == kl && memcmp(k.mv_data, key, plen) == 0 &&
               sam_be64_get((const uint8_t *)k.mv_data + plen) <= req->upto) {
            if ((src = s_ack_one(n, w, cur, &v, now))) break;
            acked++;
            crc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
    }
    for (size_t i = 0; !src && i < req->n_qseqs; i++) {
        kl = notify_qkey(key, s->id, req->qseqs[i]);
        MDB_val k = {kl, key}, v;
        if (mdb_cursor_get(cur, &k, &v, MDB_SET_KEY) != 0) continue;
        if ((src = s_ack_one(n, w, cur, &v, now))) break;
        acked++;
    }
    src = s_end_write(n, w, src, true);
    w = NULL;
    if (src) {
        rc = src;
        goto done;
    }
    Samordna__V1__InboxAckReply out = SAMORDNA__V1__INBOX_ACK_REPLY__INIT;
    out.acked = acked;
    rc = sam_reply_message(reply, &out.base);
done:
    if (s) protobuf_c_message_free_unpacked(&s->base, NULL);
    return rc;
}

/* notify.log  LogRequest → LogReply (attempts of one subscription, oldest first) */
int notify_q_log(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply)
{
    notify_t *n = s_ctx(svc);
    const Samordna__V1__LogRequest *req = (const Samordna__V1__LogRequest *)call->msg;
    int rc = -1;
    size_t page = req->page_size ? req->page_size : 100;
    if (page > 1000) page = 1000;
    Samordna__V1__LogEntry *es = calloc(page, sizeof *es);
    Samordna__V1__LogEntry **ptrs = calloc(page, sizeof *ptrs);
    size_t count = 0;
    bool more = false;
    if (!es || !ptrs) {
        sam_reply_error(reply, SAM_INTERNAL, "out of memory");
        goto done;
    }
    /* the owner's or an admin's (docs/api.md); a deleted subscription's log, kept until it
       is pruned, is an admin's only: nobody else can be shown to own it */
    Samordna__V1__Subscription *sub = NULL;
    rc = notify_sub_load(n, txn, "subscription", req->subscription, call->caller,
                         call->caller->agency, &sub, reply);
    bool known = sub != NULL;
    if (sub) protobuf_c_message_free_unpacked(&sub->base, NULL);
    if (rc && !(notify_caller_admin(call->caller) && reply->code == SAM_NOT_FOUND)) goto done;
    rc = -1;
    uint8_t key[NOTIFY_QKEY_MAX];
    size_t kl = notify_qkey(key, req->subscription, req->page_token + 1);
    size_t plen = kl - 8;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, n->dbi.log, &cur))) goto done;
    MDB_val k = {kl, key}, v;
    int crc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (crc == 0 && k.mv_size == kl && memcmp(k.mv_data, key, plen) == 0) {
        if (count == page) {
            more = true;
            break;
        }
        Samordna__V1__Attempt *a = samordna__v1__attempt__unpack(NULL, v.mv_size, v.mv_data);
        if (a) {
            samordna__v1__log_entry__init(&es[count]);
            es[count].n = sam_be64_get((const uint8_t *)k.mv_data + plen);
            es[count].attempt = a;
            ptrs[count] = &es[count];
            count++;
        }
        crc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (!known && !count && !req->page_token) goto done; /* unknown, no log: the 404 stands */
    if (!known) {                                        /* deleted: its log, to an admin */
        reply->code = SAM_OK;
        reply->message[0] = '\0';
    }
    Samordna__V1__LogReply out = SAMORDNA__V1__LOG_REPLY__INIT;
    out.n_entries = count;
    out.entries = ptrs;
    out.next_page_token = more && count ? es[count - 1].n : 0;
    rc = sam_reply_message(reply, &out.base);
done:
    for (size_t i = 0; i < count; i++)
        protobuf_c_message_free_unpacked(&es[i].attempt->base, NULL);
    free(ptrs);
    free(es);
    return rc;
}

/* Parses "<subscription>/<qseq>"; false when it is not one. */
static bool s_parse_dead_id(const char *s, char *id, uint64_t *qseq)
{
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || (size_t)(slash - s) > NOTIFY_ID_MAX) return false;
    memcpy(id, s, (size_t)(slash - s));
    id[slash - s] = 0;
    char *end;
    unsigned long long q = strtoull(slash + 1, &end, 10);
    if (!slash[1] || *end || q == 0) return false;
    *qseq = q;
    return notify_valid_id(id);
}

/* notify.dead.list  DeadListRequest → DeadListReply */
int notify_q_dead_list(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply)
{
    notify_t *n = s_ctx(svc);
    const Samordna__V1__DeadListRequest *req = (const Samordna__V1__DeadListRequest *)call->msg;
    int rc = -1;
    size_t page = req->page_size ? req->page_size : 100;
    if (page > 1000) page = 1000;
    Samordna__V1__Delivery **ds = calloc(page, sizeof *ds);
    size_t count = 0;
    bool more = false;
    char next[NOTIFY_ID_MAX + 24] = "";
    if (!ds) {
        sam_reply_error(reply, SAM_INTERNAL, "out of memory");
        goto done;
    }
    char err[200];
    if (sam_check_id("subscription", req->subscription, false, err, sizeof err)) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "%s", err);
        goto done;
    }
    uint8_t key[NOTIFY_QKEY_MAX];
    size_t kl = 0, plen = 0;
    if (*req->page_token) {
        char id[NOTIFY_ID_MAX + 1];
        uint64_t q;
        if (!s_parse_dead_id(req->page_token, id, &q)) {
            sam_reply_error(reply, SAM_BAD_REQUEST, "page_token: not '<subscription>/<qseq>'");
            goto done;
        }
        kl = notify_qkey(key, id, q + 1);
    } else if (*req->subscription) {
        kl = notify_qkey(key, req->subscription, 0);
    }
    if (*req->subscription) plen = strlen(req->subscription) + 1;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, n->dbi.dead, &cur))) goto done;
    MDB_val k = {kl, key}, v;
    int crc =
        kl ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    uint8_t prefix[NOTIFY_ID_MAX + 1];
    if (plen) notify_qkey(prefix, req->subscription, 0);
    while (crc == 0 && (!plen || (k.mv_size > plen && memcmp(k.mv_data, prefix, plen) == 0))) {
        if (count == page) {
            more = true;
            break;
        }
        Samordna__V1__Delivery *d = samordna__v1__delivery__unpack(NULL, v.mv_size, v.mv_data);
        if (d) ds[count++] = d;
        crc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (more && count)
        snprintf(next, sizeof next, "%s/%llu", ds[count - 1]->subscription,
                 (unsigned long long)ds[count - 1]->qseq);
    Samordna__V1__DeadListReply out = SAMORDNA__V1__DEAD_LIST_REPLY__INIT;
    out.n_deliveries = count;
    out.deliveries = ds;
    out.next_page_token = next;
    rc = sam_reply_message(reply, &out.base);
done:
    for (size_t i = 0; i < count; i++)
        protobuf_c_message_free_unpacked(&ds[i]->base, NULL);
    free(ds);
    return rc;
}

/* Moves the dead letter under the cursor back to its subscription's queue. */
static int s_replay_one(notify_t *n, MDB_txn *w, MDB_cursor *cur, const MDB_val *v)
{
    Samordna__V1__Delivery *d = samordna__v1__delivery__unpack(NULL, v->mv_size, v->mv_data);
    if (!d) return mdb_cursor_del(cur, 0);
    uint64_t qseq = notify_counter_next(w, &n->dbi, "qseq");
    int rc = qseq ? 0 : SAM_STORE_CORRUPT;
    if (!rc) {
        d->qseq = qseq;
        d->attempts = 0;
        d->next_attempt_ms = 0;
        d->dead_ms = 0;
        uint8_t key[NOTIFY_QKEY_MAX];
        size_t kl = notify_qkey(key, d->subscription, qseq);
        rc = sam_store_put_msg(w, n->dbi.queue, key, kl, &d->base, 0);
    }
    if (!rc) rc = mdb_cursor_del(cur, 0);
    protobuf_c_message_free_unpacked(&d->base, NULL);
    return rc;
}

/* notify.dead.replay  DeadReplayRequest → DeadReplayReply */
int notify_q_dead_replay(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                         sam_reply_t *reply)
{
    if (s_primary_only(svc, reply)) return -1;
    notify_t *n = s_ctx(svc);
    const Samordna__V1__DeadReplayRequest *req = (const Samordna__V1__DeadReplayRequest *)call->msg;
    int rc = -1;
    char id[NOTIFY_ID_MAX + 1] = "";
    uint64_t qseq = 0;
    Samordna__V1__Subscription *s = NULL;
    if (*req->id) {
        if (req->all) {
            sam_reply_error(reply, SAM_BAD_REQUEST, "id: give an id or all, not both");
            goto done;
        }
        if (!s_parse_dead_id(req->id, id, &qseq)) {
            sam_reply_error(reply, SAM_BAD_REQUEST, "id: '%.80s' is not '<subscription>/<qseq>'",
                            req->id);
            goto done;
        }
    } else if (!req->all) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "id: give a dead letter id or all");
        goto done;
    } else if (*req->subscription) {
        snprintf(id, sizeof id, "%s", req->subscription);
    }
    if (*id) {
        if ((rc = notify_sub_load(n, txn, *req->id ? "id" : "subscription", id, call->caller,
                                  call->caller->agency, &s, reply)))
            goto done;
        rc = -1;
    } else if (!notify_caller_admin(call->caller)) {
        sam_reply_error(reply, SAM_FORBIDDEN, "all: replaying every subscription needs admin");
        goto done;
    }
    MDB_txn *w;
    int src = sam_store_begin(sam_service_store(svc), NULL, true, &w);
    if (src) {
        rc = src;
        goto done;
    }
    MDB_cursor *cur;
    uint32_t replayed = 0;
    src = mdb_cursor_open(w, n->dbi.dead, &cur);
    uint8_t key[NOTIFY_QKEY_MAX];
    if (!src && qseq) {
        size_t kl = notify_qkey(key, id, qseq);
        MDB_val k = {kl, key}, v;
        if (mdb_cursor_get(cur, &k, &v, MDB_SET_KEY) != 0) {
            mdb_txn_abort(w);
            sam_reply_error(reply, SAM_NOT_FOUND, "id: no dead letter '%s'", req->id);
            goto done;
        }
        src = s_replay_one(n, w, cur, &v);
        replayed = src ? 0 : 1;
    } else if (!src) {
        size_t kl = *id ? notify_qkey(key, id, 0) : 0;
        size_t plen = *id ? kl - 8 : 0;
        MDB_val k = {kl, key}, v;
        int crc = kl ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)
                     : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        while (crc == 0 && (!plen || (k.mv_size == kl && memcmp(k.mv_data, key, plen) == 0))) {
            if ((src = s_replay_one(n, w, cur, &v))) break;
            replayed++;
            crc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
    }
    if ((src = s_end_write(n, w, src, false))) {
        rc = src;
        goto done;
    }
    if (replayed) {
        n->next_deliver_scan_ms = 0;
        sam_info("dead.replayed count=%u subscription=%s", replayed, sam_logv(*id ? id : "*"));
    }
    Samordna__V1__DeadReplayReply out = SAMORDNA__V1__DEAD_REPLAY_REPLY__INIT;
    out.replayed = replayed;
    rc = sam_reply_message(reply, &out.base);
done:
    if (s) protobuf_c_message_free_unpacked(&s->base, NULL);
    return rc;
}

/* notify.cursors  (empty) → CursorsReply */
int notify_q_cursors(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply)
{
    notify_t *n = s_ctx(svc);
    Samordna__V1__Cursor *cs[NOTIFY_MAX_FOLLOW] = {0};
    Samordna__V1__Cursor *ptrs[NOTIFY_MAX_FOLLOW];
    Samordna__V1__Cursor zero[NOTIFY_MAX_FOLLOW];
    for (size_t i = 0; i < n->n_follow; i++) {
        const char *name = n->follow[i].service;
        if (sam_store_get_msg(txn, n->dbi.cursors, name, strlen(name),
                              &samordna__v1__cursor__descriptor, (ProtobufCMessage **)&cs[i])) {
            samordna__v1__cursor__init(&zero[i]);
            zero[i].service = (char *)name;
            ptrs[i] = &zero[i];
        } else {
            ptrs[i] = cs[i];
        }
    }
    Samordna__V1__CursorsReply out = SAMORDNA__V1__CURSORS_REPLY__INIT;
    out.n_cursors = n->n_follow;
    out.cursors = ptrs;
    int rc = sam_reply_message(reply, &out.base);
    for (size_t i = 0; i < n->n_follow; i++)
        if (cs[i]) protobuf_c_message_free_unpacked(&cs[i]->base, NULL);
    return rc;
}
