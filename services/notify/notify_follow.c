/*  notify_follow.c — following the outboxes of the other services.

    For each service of --follow, one events.read long poll is in flight at a time, sent over
    the runtime's client from the tick and collected without blocking. A reply's events are
    matched and queued in ONE write transaction that also moves the service's cursor, so
    after a crash the next events.read starts exactly after the last event whose deliveries
    are durable. Events at or below the stored cursor are skipped, which makes a late or
    repeated reply harmless.

    A service that is not running answers nothing or 503 through the broker: its follower
    logs that once, waits, and asks again; it logs again when the service answers.

    The runtime's client drops replies nobody waits for, so every call notify makes on it —
    the long polls, the reminders' grants.deadlines and the synchronous calls of the briefing —
    goes through one receive loop here that hands each reply to whoever sent it.
*/
#include "notify.h"

#include <string.h>

#define S_READ_MAX 500       /* events per events.read */
#define S_LOST_MARGIN_MS 5000 /* a long poll unanswered this long past its wait is resent */
#define S_RETRY_MS 1000      /* after a failed events.read */

int64_t notify_now_ms(void)
{
    return zclock_time();
}

void notify_follow_start(notify_t *n)
{
    MDB_txn *txn;
    if (sam_store_begin(sam_service_store(n->svc), NULL, false, &txn)) return;
    for (size_t i = 0; i < n->n_follow; i++) {
        n->follow[i].cursor = notify_cursor_get(txn, &n->dbi, n->follow[i].service);
        sam_info("follow.start service=%s after_seq=%llu", n->follow[i].service,
                 (unsigned long long)n->follow[i].cursor);
    }
    mdb_txn_abort(txn);
}

/* ---- matching ---------------------------------------------------------------------------- */

typedef struct {
    notify_t *n;
    MDB_txn *txn;
    const char *service;
    uint64_t seq;
    const Io__Cloudevents__V1__CloudEvent *ce;
    const char *subject;
    int64_t committed_ms, now_ms;
    int queued;
    int err;
} s_match_t;

static int s_candidate(void *arg, const char *sub_id, int channel)
{
    s_match_t *m = arg;
    notify_t *n = m->n;
    /* only webhooks and disabled subscriptions have a state row; none means active */
    Samordna__V1__SubscriptionState *st = NULL;
    int rc = sam_store_get_msg(m->txn, n->dbi.state, sub_id, strlen(sub_id),
                               &samordna__v1__subscription_state__descriptor,
                               (ProtobufCMessage **)&st);
    if (rc == 0) {
        bool disabled = st->state == SAMORDNA__V1__NOTIFY_SUB_STATE__NOTIFY_SUB_STATE_DISABLED;
        protobuf_c_message_free_unpacked(&st->base, NULL);
        if (disabled) return 0;
    } else if (rc != MDB_NOTFOUND) {
        m->err = rc;
        return 1;
    }
    uint64_t qseq = notify_counter_next(m->txn, &n->dbi, "qseq");
    Samordna__V1__Delivery d = SAMORDNA__V1__DELIVERY__INIT;
    d.subscription = (char *)sub_id;
    d.qseq = qseq;
    d.service = (char *)m->service;
    d.seq = m->seq;
    d.event = (Io__Cloudevents__V1__CloudEvent *)m->ce;
    d.enqueued_ms = m->now_ms;
    d.committed_ms = m->committed_ms;
    uint8_t key[NOTIFY_QKEY_MAX];
    size_t kl = notify_qkey(key, sub_id, qseq);
    MDB_dbi q = channel == SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_INBOX ? n->dbi.inbox
                                                                             : n->dbi.queue;
    rc = qseq ? sam_store_put_msg(m->txn, q, key, kl, &d.base, 0) : SAM_STORE_CORRUPT;
    if (rc) {
        m->err = rc;
        return 1;
    }
    m->queued++;
    return 0;
}

/* Every (source, subject) filter combination an event satisfies, for one (kind, pattern). */
static int s_scan4(s_match_t *m, char kind, const char *pattern)
{
    const char *src = m->ce->source ? m->ce->source : "";
    const char *subj = m->subject ? m->subject : "";
    const char *srcs[2] = {"", src}, *subjs[2] = {"", subj};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            if ((i && !*src) || (j && !*subj)) continue; /* same as the empty filter */
            int rc = notify_index_scan(m->txn, &m->n->dbi, kind, pattern, srcs[i], subjs[j],
                                       s_candidate, m);
            if (rc || m->err) return rc ? rc : m->err;
        }
    return 0;
}

int notify_enqueue_matches(notify_t *n, MDB_txn *txn, const char *service, uint64_t seq,
                           const Io__Cloudevents__V1__CloudEvent *ce, int64_t committed_ms,
                           int64_t now_ms)
{
    s_match_t m = {.n = n,
                   .txn = txn,
                   .service = service,
                   .seq = seq,
                   .ce = ce,
                   .subject = sam_event_attr(ce, "subject"),
                   .committed_ms = committed_ms,
                   .now_ms = now_ms};
    const char *type = ce->type ? ce->type : "";
    int rc = s_scan4(&m, 'T', type);
    /* every dot-prefix of the type: "no.", "no.samordna.", "no.samordna.grants.", … */
    char prefix[300];
    size_t tl = strlen(type);
    for (size_t i = 0; !rc && i < tl && i + 1 < sizeof prefix; i++) {
        if (type[i] != '.') continue;
        memcpy(prefix, type, i + 1);
        prefix[i + 1] = 0;
        rc = s_scan4(&m, 'P', prefix);
    }
    if (!rc) rc = s_scan4(&m, 'A', "");
    if (rc) {
        sam_error("match.failed type=%s error=\"%s\"", type, sam_store_strerror(rc));
        return -1;
    }
    return m.queued;
}

/* ---- following --------------------------------------------------------------------------- */

static sam_client_t *s_client(notify_t *n)
{
    if (!n->client) n->client = sam_service_client(n->svc);
    return n->client;
}

/* Queues the deliveries of one events.read reply and moves the cursor, in one transaction. */
static void s_take_events(notify_t *n, notify_follow_t *f, const Samordna__V1__ReadReply *rr)
{
    if (rr->n_events == 0) return;
    MDB_txn *txn;
    int rc = sam_store_begin(sam_service_store(n->svc), NULL, true, &txn);
    if (rc) {
        sam_error("follow.store service=%s error=\"%s\"", f->service, sam_store_strerror(rc));
        return;
    }
    int64_t now = notify_now_ms();
    uint64_t cursor = notify_cursor_get(txn, &n->dbi, f->service);
    size_t taken = 0, queued = 0;
    for (size_t i = 0; i < rr->n_events; i++) {
        const Samordna__V1__StoredEvent *se = rr->events[i];
        if (!se || !se->event || se->seq <= cursor) continue;
        int q = notify_enqueue_matches(n, txn, f->service, se->seq, se->event, se->recorded_ms,
                                       now);
        if (q < 0) {
            mdb_txn_abort(txn);
            return;
        }
        queued += (size_t)q;
        cursor = se->seq;
        taken++;
    }
    if (taken) rc = notify_cursor_put(txn, &n->dbi, f->service, cursor, now);
    if (!rc) rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    if (rc) {
        sam_error("follow.commit service=%s error=\"%s\"", f->service, sam_store_strerror(rc));
        return;
    }
    f->cursor = cursor;
    if (queued) n->next_deliver_scan_ms = 0;
    sam_debug("follow.took service=%s events=%zu queued=%zu cursor=%llu", f->service, taken,
              queued, (unsigned long long)cursor);
}

/* Hands one reply to the follower that sent it; false when it belongs to nobody here. */
static bool s_dispatch(notify_t *n, sam_result_t *res)
{
    if (n->rem_req && res->id == n->rem_req) {
        notify_reminders_reply(n, res);
        return true;
    }
    for (size_t i = 0; i < n->n_follow; i++) {
        notify_follow_t *f = &n->follow[i];
        if (!f->req_id || f->req_id != res->id) continue;
        int64_t now = notify_now_ms();
        f->req_id = 0;
        if (res->code != SAM_OK) {
            if (!f->down)
                sam_warn("follow.unavailable service=%s code=%u reason=\"%s\" retry_ms=%d",
                         f->service, res->code, res->message, S_RETRY_MS);
            f->down = true;
            f->next_try_ms = now + S_RETRY_MS;
            return true;
        }
        Samordna__V1__ReadReply *rr =
            samordna__v1__read_reply__unpack(NULL, res->body_len, res->body);
        if (!rr) {
            sam_warn("follow.undecodable service=%s", f->service);
            f->next_try_ms = now + S_RETRY_MS;
            return true;
        }
        if (f->down) sam_info("follow.resumed service=%s after_seq=%llu", f->service,
                              (unsigned long long)f->cursor);
        f->down = false;
        s_take_events(n, f, rr);
        /* An empty answer long before the wait was up means the service does not hold long
           polls: ask again a little later rather than spin. */
        bool early = rr->n_events == 0 && now - f->sent_ms < n->follow_wait_ms / 2;
        f->next_try_ms = early ? now + 200 : now;
        protobuf_c_message_free_unpacked(&rr->base, NULL);
        return true;
    }
    return false;
}

static void s_send_reads(notify_t *n, sam_client_t *c)
{
    int64_t now = notify_now_ms();
    for (size_t i = 0; i < n->n_follow; i++) {
        notify_follow_t *f = &n->follow[i];
        if (f->req_id && now - f->sent_ms > n->follow_wait_ms + S_LOST_MARGIN_MS) {
            if (!f->down)
                sam_warn("follow.unavailable service=%s reason=\"no answer within %d ms\"",
                         f->service, n->follow_wait_ms + S_LOST_MARGIN_MS);
            f->down = true;
            f->req_id = 0;
        }
        if (f->req_id || now < f->next_try_ms) continue;
        Samordna__V1__ReadRequest rq = SAMORDNA__V1__READ_REQUEST__INIT;
        rq.after_seq = f->cursor;
        rq.max = S_READ_MAX;
        rq.wait_ms = (uint32_t)n->follow_wait_ms;
        uint8_t buf[64];
        size_t len = samordna__v1__read_request__pack(&rq, buf);
        f->req_id = sam_client_send(c, f->service, "events.read", buf, len);
        f->sent_ms = now;
        if (!f->req_id) f->next_try_ms = now + S_RETRY_MS;
    }
}

void notify_follow_tick(notify_t *n)
{
    sam_client_t *c = s_client(n);
    if (!c) return;
    s_send_reads(n, c);
    sam_result_t res = {0};
    while (sam_client_recv(c, 0, &res) == 0) {
        s_dispatch(n, &res);
        sam_result_clear(&res);
        s_send_reads(n, c);
    }
    sam_result_clear(&res);
}

uint32_t notify_call(notify_t *n, const char *service, const char *method,
                     const ProtobufCMessage *req, const ProtobufCMessageDescriptor *reply_desc,
                     ProtobufCMessage **reply_out, int timeout_ms, sam_result_t *result)
{
    memset(result, 0, sizeof *result);
    if (reply_out) *reply_out = NULL;
    sam_client_t *c = s_client(n);
    if (!c) {
        result->code = SAM_UNAVAILABLE;
        snprintf(result->message, sizeof result->message, "no connection to the broker");
        return result->code;
    }
    size_t len = req ? protobuf_c_message_get_packed_size(req) : 0;
    uint8_t *body = len ? malloc(len) : NULL;
    if (len && !body) {
        result->code = SAM_INTERNAL;
        snprintf(result->message, sizeof result->message, "out of memory");
        return result->code;
    }
    if (len) protobuf_c_message_pack(req, body);
    uint64_t id = sam_client_send(c, service, method, body, len);
    free(body);
    if (!id) {
        result->code = SAM_UNAVAILABLE;
        snprintf(result->message, sizeof result->message, "could not send");
        return result->code;
    }
    int64_t end = notify_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = end - notify_now_ms();
        if (left <= 0) {
            result->code = SAM_TIMEOUT;
            snprintf(result->message, sizeof result->message, "no answer within %d ms",
                     timeout_ms);
            return result->code;
        }
        sam_result_t res = {0};
        if (sam_client_recv(c, (int)left, &res) != 0) {
            sam_result_clear(&res);
            continue;
        }
        if (res.id == id) {
            *result = res;
            break;
        }
        s_dispatch(n, &res);
        sam_result_clear(&res);
    }
    if (result->code == SAM_OK && reply_desc && reply_out) {
        *reply_out = protobuf_c_message_unpack(reply_desc, NULL, result->body_len, result->body);
        if (!*reply_out) {
            result->code = SAM_BAD_REQUEST;
            snprintf(result->message, sizeof result->message, "undecodable %s",
                     reply_desc->name);
        }
    }
    return result->code;
}
