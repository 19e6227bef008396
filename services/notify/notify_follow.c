/*  notify_follow.c — following the outboxes of the other services.

    Each service of --follow has one follower (common/sam_follow.h, the one every consumer
    uses: status and grants follow the registry with it too). It keeps one events.read long
    poll in flight, sent over the runtime's client from the tick; its page of events is
    matched and queued here (s_take_page) in ONE write transaction in which the follower also
    moves the service's cursor (a samordna.v1.Cursor in "cursors"), so after a crash the next
    events.read starts exactly after the last event whose deliveries are durable. Events at
    or below the stored cursor are skipped, which makes a late or repeated reply harmless. A
    service that is not running is logged once, asked again after the follower's back-off,
    and logged again when it answers.

    What stays notify's own, beside the common follower: several followed services on the
    runtime's one client, with the one receive loop described next (sam_follow_send and
    sam_follow_take rather than the follower's own client and tick); the matching; the
    outbox heads for subscription starts (kept by the follower, also learnt by the prepare
    hook); and the replay readers, whose reads do not wait and stop at the follower's cursor.

    The runtime's client drops replies nobody waits for, so every call notify makes on it —
    the long polls, the reminders' grants.deadlines and the synchronous calls of the briefing —
    goes through one receive loop here that hands each reply to whoever sent it.

    Which events a subscription gets is decided by positions, never by when the follower
    happens to read an event. When a subscription is applied, its start in every followed
    outbox is written in the same transaction (table "starts"): the larger of the follower's
    cursor there (everything up to it was matched without the subscription) and the outbox
    head the prepare hook learnt just before (everything up to it was committed before the
    subscription). The follower matches an event to the subscription only past that start,
    however far behind it is. An outbox whose head could not be learnt (its service was down)
    starts at the cursor and, by time, with events recorded from the subscription's creation
    on; the log says so.

    History on purpose (from a sequence number, or since a day) starts a subscription lower.
    What the follower has already passed is then replayed by the subscription's own reader:
    events.read from the start up to the follower's cursor, matched against that subscription
    alone, while the follower skips it. Both move in notify's one writer, so when the replay
    reaches the cursor — checked in the transaction that queues the replayed events — the
    subscription joins the follower with nothing missed, nothing twice and everything in
    order.
*/
#include "notify.h"
#include "sam_lease.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_REPLAY_LOST_MS 30000 /* a replay's events.read unanswered this long is resent */
#define S_HEAD_FRESH_MS 5000   /* a head learnt this recently still starts a subscription */

int64_t notify_now_ms(void)
{
    return sam_clock_now_ms();
}

static int s_take_page(void *arg, MDB_txn *txn, Samordna__V1__StoredEvent *const *events,
                       size_t n_events);

static uint64_t s_cursor_get(void *arg, MDB_txn *txn)
{
    notify_follow_t *f = arg;
    return notify_cursor_get(txn, &f->n->dbi, f->service);
}

static int s_cursor_put(void *arg, MDB_txn *txn, uint64_t seq)
{
    notify_follow_t *f = arg;
    return notify_cursor_put(txn, &f->n->dbi, f->service, seq, notify_now_ms());
}

int notify_follow_start(notify_t *n)
{
    MDB_txn *txn;
    bool have = sam_store_begin(sam_service_store(n->svc), NULL, false, &txn) == 0;
    for (size_t i = 0; i < n->n_follow; i++) {
        notify_follow_t *f = &n->follow[i];
        f->n = n;
        sam_follow_def_t def = {.service = f->service,
                                .wait_ms = n->follow_wait_ms,
                                .store = sam_service_store(n->svc),
                                .svc = n->svc,
                                .apply = s_take_page,
                                .arg = f,
                                .cursor_get = s_cursor_get,
                                .cursor_put = s_cursor_put};
        f->follower = sam_follow_new(&def);
        if (!f->follower) {
            sam_error("start.failed reason=\"out of memory\"");
            if (have) mdb_txn_abort(txn);
            notify_follow_stop(n);
            return -1;
        }
        sam_info("follow.start service=%s after_seq=%llu", sam_logv(f->service),
                 (unsigned long long)(have ? notify_cursor_get(txn, &n->dbi, f->service) : 0));
    }
    if (have) mdb_txn_abort(txn);
    return 0;
}

void notify_follow_stop(notify_t *n)
{
    for (size_t i = 0; i < n->n_follow; i++)
        sam_follow_destroy(&n->follow[i].follower);
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

/* Queues the event for one subscription (unless it is disabled). Returns 0, or 1 with m->err
   set on a store error. */
static int s_queue_for(s_match_t *m, const char *sub_id, int channel)
{
    notify_t *n = m->n;
    /* only webhooks and disabled subscriptions have a state row; none means active */
    Samordna__V1__SubscriptionState *st = NULL;
    int rc =
        sam_store_get_msg(m->txn, n->dbi.state, sub_id, strlen(sub_id),
                          &samordna__v1__subscription_state__descriptor, (ProtobufCMessage **)&st);
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
    MDB_dbi q =
        channel == SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_INBOX ? n->dbi.inbox : n->dbi.queue;
    rc = qseq ? sam_store_put_msg(m->txn, q, key, kl, &d.base, 0) : SAM_STORE_CORRUPT;
    if (rc) {
        m->err = rc;
        return 1;
    }
    m->queued++;
    return 0;
}

/* The follower's candidate: queued only when the event is past the subscription's start in
   its outbox, and the subscription is not replaying that outbox's history. */
static int s_candidate(void *arg, const char *sub_id, int channel)
{
    s_match_t *m = arg;
    Samordna__V1__SubscriptionStart *st = NULL;
    int rc = notify_start_get(m->txn, &m->n->dbi, sub_id, m->service, &st);
    if (rc == 0) {
        bool skip = st->replaying || m->seq <= st->after_seq ||
                    (st->min_recorded_ms && m->committed_ms < st->min_recorded_ms);
        protobuf_c_message_free_unpacked(&st->base, NULL);
        if (skip) return 0;
    } else if (rc != MDB_NOTFOUND) {
        m->err = rc;
        return 1;
    }
    return s_queue_for(m, sub_id, channel);
}

/* Whether one subscription's filters take the event (the index's rule, for one). */
static bool s_sub_matches(const Samordna__V1__Subscription *s,
                          const Io__Cloudevents__V1__CloudEvent *ce, const char *subject)
{
    const char *type = ce->type ? ce->type : "";
    size_t tl = strlen(s->type);
    if (tl && strcmp(s->type, "*") != 0) {
        if (tl >= 2 && s->type[tl - 1] == '*') {
            if (strncmp(type, s->type, tl - 1) != 0) return false;
        } else if (strcmp(type, s->type) != 0)
            return false;
    }
    if (*s->source && strcmp(s->source, ce->source ? ce->source : "") != 0) return false;
    if (*s->subject && strcmp(s->subject, subject ? subject : "") != 0) return false;
    return true;
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
        sam_error("match.failed type=%s error=%s", sam_logv(type),
                  sam_logv(sam_store_strerror(rc)));
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

/* The follower's page: queues the deliveries of its events in txn, in which the follower
   then moves the service's cursor (sam_follow_apply_fn). */
static int s_take_page(void *arg, MDB_txn *txn, Samordna__V1__StoredEvent *const *events,
                       size_t n_events)
{
    notify_follow_t *f = arg;
    notify_t *n = f->n;
    int64_t now = notify_now_ms();
    size_t queued = 0;
    for (size_t i = 0; i < n_events; i++) {
        const Samordna__V1__StoredEvent *se = events[i];
        int q =
            notify_enqueue_matches(n, txn, f->service, se->seq, se->event, se->recorded_ms, now);
        if (q < 0) return SAM_STORE_CORRUPT; /* logged by notify_enqueue_matches */
        queued += (size_t)q;
    }
    if (queued) n->next_deliver_scan_ms = 0; /* at worst an early scan, should commit fail */
    sam_debug("follow.took service=%s events=%zu queued=%zu cursor=%llu", sam_logv(f->service),
              n_events, queued, (unsigned long long)events[n_events - 1]->seq);
    return 0;
}

static bool s_replay_dispatch(notify_t *n, sam_result_t *res);
static void s_replay_send(notify_t *n, sam_client_t *c);

/* Hands one reply to the follower that sent it; false when it belongs to nobody here. */
static bool s_dispatch(notify_t *n, sam_result_t *res)
{
    if (s_replay_dispatch(n, res)) return true;
    if (n->rem_req && res->id == n->rem_req) {
        notify_reminders_reply(n, res);
        return true;
    }
    for (size_t i = 0; i < n->n_follow; i++)
        if (sam_follow_take(n->follow[i].follower, res)) return true;
    return false;
}

static void s_send_reads(notify_t *n, sam_client_t *c)
{
    for (size_t i = 0; i < n->n_follow; i++)
        sam_follow_send(n->follow[i].follower, c);
}

void notify_follow_tick(notify_t *n)
{
    sam_client_t *c = s_client(n);
    if (!c) return;
    s_send_reads(n, c);
    s_replay_send(n, c);
    sam_result_t res = {0};
    while (sam_client_recv(c, 0, &res) == 0) {
        s_dispatch(n, &res);
        sam_result_clear(&res);
        s_send_reads(n, c);
        s_replay_send(n, c);
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
    int64_t end = zclock_mono() + timeout_ms;
    for (;;) {
        int64_t left = end - zclock_mono();
        if (left <= 0) {
            result->code = SAM_TIMEOUT;
            snprintf(result->message, sizeof result->message, "no answer within %d ms", timeout_ms);
            return result->code;
        }
        /* the instance's leases stay renewed while it waits (a composition makes several
           calls in a row, longer together than --lease-ms) */
        sam_lease_renew(sam_service_lease(n->svc), false);
        if (left > SAM_LEASE_RENEW_MS / 2) left = SAM_LEASE_RENEW_MS / 2;
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
            snprintf(result->message, sizeof result->message, "undecodable %s", reply_desc->name);
        }
    }
    return result->code;
}

/* ---- where a subscription starts ------------------------------------------------------- */

static notify_follow_t *s_follow_of(notify_t *n, const char *service)
{
    for (size_t i = 0; i < n->n_follow; i++)
        if (strcmp(n->follow[i].service, service) == 0) return &n->follow[i];
    return NULL;
}

/* Whether a subscription of type filter `type` can match events of `service`: types are
   named no.samordna.<service>.…, so a filter naming another service's types cannot. */
static bool s_type_can_match(const char *type, const char *service)
{
    const char *ns = "no.samordna.";
    size_t nl = strlen(ns), sl = strlen(service);
    if (!*type || strcmp(type, "*") == 0 || strncmp(type, ns, nl) != 0) return true;
    const char *rest = type + nl;
    if (strncmp(rest, service, sl) == 0 && (rest[sl] == '.' || rest[sl] == 0)) return true;
    return !strchr(rest, '.'); /* "no.samordna.*": every service */
}

int notify_prepare_sub(sam_service_t *svc, const sam_event_t *ev, sam_reply_t *reply)
{
    notify_t *n = sam_service_ctx(svc);
    const Samordna__V1__SubscriptionCreated *m = (const Samordna__V1__SubscriptionCreated *)ev->msg;
    const char *type = m->subscription && m->subscription->type ? m->subscription->type : "";
    int timeout = n->call_timeout_ms < 1000 ? (int)n->call_timeout_ms : 1000;
    for (size_t i = 0; i < n->n_follow; i++) {
        notify_follow_t *f = &n->follow[i];
        if (!s_type_can_match(type, f->service)) continue;
        Samordna__V1__ReadRequest rq = SAMORDNA__V1__READ_REQUEST__INIT;
        rq.after_seq = UINT64_MAX; /* nothing is after it: the answer carries only the head */
        rq.max = 1;
        Samordna__V1__ReadReply *rr = NULL;
        sam_result_t res;
        if (notify_call(n, f->service, "events.read", &rq.base,
                        &samordna__v1__read_reply__descriptor, (ProtobufCMessage **)&rr, timeout,
                        &res) == SAM_OK &&
            rr)
            sam_follow_learn_head(f->follower, rr->last_seq);
        else
            sam_warn("subscription.head_unknown service=%s code=%u reason=%s", sam_logv(f->service),
                     res.code, sam_logv(res.message));
        if (rr) protobuf_c_message_free_unpacked(&rr->base, NULL);
        sam_result_clear(&res);
    }
    return 0;
}

/* The moment of `since`: a day (its first moment in the programme's zone) or epoch ms. */
static int64_t s_since_ms(const char *since)
{
    char *end;
    long long ms = strtoll(since, &end, 10);
    if (*end == 0 && end - since > 8) return ms;
    int y, mo, d, k = 0;
    if (strlen(since) != 10 || sscanf(since, "%4d-%2d-%2d%n", &y, &mo, &d, &k) != 3 || k != 10)
        return -1;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_isdst = -1};
    if (mo < 1 || mo > 12 || d < 1 || d > 31) return -1;
    time_t t = mktime(&tm); /* TZ is the programme's zone (sam_clock) */
    if (t == (time_t)-1 || tm.tm_mday != d) return -1;
    return (int64_t)t * 1000;
}

int notify_starts_put(notify_t *n, MDB_txn *txn, const Samordna__V1__Subscription *s,
                      int64_t now_ms, sam_reply_t *reply)
{
    for (size_t i = 0; i < s->n_from; i++) {
        const Samordna__V1__HistoryFrom *h = s->from[i];
        if (!h || !s_follow_of(n, h->service ? h->service : "")) {
            char list[256] = "";
            for (size_t j = 0; j < n->n_follow; j++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", j ? ", " : "",
                         n->follow[j].service);
            return sam_reply_error(reply, SAM_BAD_REQUEST,
                                   "subscription.from[%zu].service: not a followed service (%s)", i,
                                   list);
        }
    }
    int64_t since = 0;
    if (s->since && *s->since && (since = s_since_ms(s->since)) < 0)
        return sam_reply_error(reply, SAM_BAD_REQUEST,
                               "subscription.since: must be a date YYYY-MM-DD or epoch ms");
    int64_t mono = zclock_mono();
    for (size_t i = 0; i < n->n_follow; i++) {
        notify_follow_t *f = &n->follow[i];
        uint64_t cursor = notify_cursor_get(txn, &n->dbi, f->service);
        int64_t head_ms;
        uint64_t head = sam_follow_head(f->follower, &head_ms);
        Samordna__V1__SubscriptionStart st = SAMORDNA__V1__SUBSCRIPTION_START__INIT;
        bool history = s->since && *s->since;
        uint64_t from = 0;
        for (size_t j = 0; j < s->n_from; j++)
            if (strcmp(s->from[j]->service, f->service) == 0) {
                history = true;
                from = s->from[j]->after_seq;
            }
        if (history) {
            st.min_recorded_ms = since;
            st.after_seq = from;
            if (from < cursor) { /* the follower is past it: replay up to the follower */
                st.replaying = true;
                st.replay_pos = from;
                n->replay_scan = true;
            }
        } else if (head_ms && mono - head_ms < S_HEAD_FRESH_MS) {
            st.after_seq = head > cursor ? head : cursor;
        } else {
            st.after_seq = cursor;
            st.min_recorded_ms = now_ms;
            if (s_type_can_match(s->type, f->service))
                sam_warn("subscription.started_by_time id=%s service=%s reason=\"its outbox "
                         "head was not learnt\" after_seq=%llu",
                         sam_logv(s->id), sam_logv(f->service), (unsigned long long)cursor);
        }
        int rc = notify_start_put(txn, &n->dbi, s->id, f->service, &st);
        if (rc) return rc;
        sam_debug("subscription.start id=%s service=%s after_seq=%llu replaying=%d",
                  sam_logv(s->id), sam_logv(f->service), (unsigned long long)st.after_seq,
                  (int)st.replaying);
    }
    return 0;
}

/* ---- replaying history for one subscription --------------------------------------------- */

/* Fills replay[] from the starts table (at start, and after a subscription asked for it). */
static void s_replay_scan(notify_t *n)
{
    n->replay_scan = false;
    MDB_txn *txn;
    if (sam_store_begin(sam_service_store(n->svc), NULL, false, &txn)) return;
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, n->dbi.starts, &cur) == 0) {
        MDB_val k, v;
        int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            Samordna__V1__SubscriptionStart *st =
                samordna__v1__subscription_start__unpack(NULL, v.mv_size, v.mv_data);
            const char *key = k.mv_data;
            size_t il = strnlen(key, k.mv_size);
            size_t sl = il < k.mv_size ? k.mv_size - il - 1 : 0;
            if (st && st->replaying && il <= NOTIFY_ID_MAX && sl && sl < 64) {
                bool have = false;
                for (size_t i = 0; i < n->n_replay; i++)
                    have |= strncmp(n->replay[i].sub, key, il) == 0 && !n->replay[i].sub[il] &&
                            strncmp(n->replay[i].service, key + il + 1, sl) == 0 &&
                            !n->replay[i].service[sl];
                if (!have && n->n_replay == NOTIFY_MAX_REPLAY)
                    n->replay_scan = true; /* the rest when a slot is free */
                else if (!have) {
                    notify_replay_t *r = &n->replay[n->n_replay++];
                    memset(r, 0, sizeof *r);
                    memcpy(r->sub, key, il);
                    memcpy(r->service, key + il + 1, sl);
                    r->pos = st->replay_pos;
                    sam_info("replay.start subscription=%s service=%s after_seq=%llu",
                             sam_logv(r->sub), sam_logv(r->service), (unsigned long long)r->pos);
                }
            }
            if (st) samordna__v1__subscription_start__free_unpacked(st, NULL);
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
}

/* Queues one reply's matching events for the replaying subscription and moves its position,
   in one transaction; joins the follower when the position reaches the follower's cursor.
   Returns true when the replay is over (done, or the subscription is gone). */
static bool s_take_replay(notify_t *n, notify_replay_t *r, const Samordna__V1__ReadReply *rr)
{
    MDB_txn *txn;
    if (sam_store_begin(sam_service_store(n->svc), NULL, true, &txn)) return false;
    Samordna__V1__SubscriptionStart *st = NULL;
    Samordna__V1__Subscription *s = NULL;
    int rc = notify_start_get(txn, &n->dbi, r->sub, r->service, &st);
    if (rc == 0 && st->replaying)
        rc = sam_store_get_msg(txn, n->dbi.subs, r->sub, strlen(r->sub),
                               &samordna__v1__subscription__descriptor, (ProtobufCMessage **)&s);
    if (rc || !st->replaying) { /* deleted meanwhile, or finished by another instance */
        if (rc && rc != MDB_NOTFOUND)
            sam_error("replay.store subscription=%s error=%s", sam_logv(r->sub),
                      sam_logv(sam_store_strerror(rc)));
        if (st) protobuf_c_message_free_unpacked(&st->base, NULL);
        mdb_txn_abort(txn);
        return !rc || rc == MDB_NOTFOUND;
    }
    uint64_t cursor = notify_cursor_get(txn, &n->dbi, r->service);
    s_match_t m = {.n = n, .txn = txn, .service = r->service, .now_ms = notify_now_ms()};
    uint64_t pos = st->replay_pos;
    for (size_t i = 0; i < rr->n_events && !rc; i++) {
        const Samordna__V1__StoredEvent *se = rr->events[i];
        if (!se || !se->event || se->seq <= pos) continue;
        if (se->seq > cursor) break; /* the follower's, from here on */
        pos = se->seq;
        const char *subject = sam_event_attr(se->event, "subject");
        if (!s_sub_matches(s, se->event, subject) ||
            (st->min_recorded_ms && se->recorded_ms < st->min_recorded_ms))
            continue;
        m.seq = se->seq;
        m.ce = se->event;
        m.subject = subject;
        m.committed_ms = se->recorded_ms;
        if (s_queue_for(&m, s->id, (int)s->channel)) rc = m.err;
    }
    /* nothing more in the outbox below the cursor: the rest of the way is empty */
    if (rr->last_seq <= pos && pos < cursor) pos = cursor;
    bool over = pos >= cursor;
    st->replay_pos = pos;
    if (over) {
        st->replaying = false;
        st->after_seq = pos;
    }
    if (!rc) rc = notify_start_put(txn, &n->dbi, r->sub, r->service, st);
    protobuf_c_message_free_unpacked(&st->base, NULL);
    protobuf_c_message_free_unpacked(&s->base, NULL);
    if (rc) {
        mdb_txn_abort(txn);
        sam_error("replay.store subscription=%s error=%s", sam_logv(r->sub),
                  sam_logv(sam_store_strerror(rc)));
        return false;
    }
    if ((rc = mdb_txn_commit(txn))) {
        sam_error("replay.commit subscription=%s error=%s", sam_logv(r->sub),
                  sam_logv(sam_store_strerror(rc)));
        return false;
    }
    r->pos = pos;
    if (m.queued) n->next_deliver_scan_ms = 0;
    if (over)
        sam_info("replay.done subscription=%s service=%s after_seq=%llu queued_last=%d",
                 sam_logv(r->sub), sam_logv(r->service), (unsigned long long)pos, m.queued);
    return over;
}

/* Sends the due events.read of every replay. */
static void s_replay_send(notify_t *n, sam_client_t *c)
{
    if (n->replay_scan) s_replay_scan(n);
    int64_t now = notify_now_ms();
    for (size_t i = 0; i < n->n_replay; i++) {
        notify_replay_t *r = &n->replay[i];
        if (r->req_id && now - r->sent_ms > S_REPLAY_LOST_MS) r->req_id = 0; /* lost: ask again */
        if (r->req_id || now < r->next_try_ms) continue;
        Samordna__V1__ReadRequest rq = SAMORDNA__V1__READ_REQUEST__INIT;
        rq.after_seq = r->pos;
        rq.max = SAM_FOLLOW_READ_MAX;
        uint8_t buf[64];
        size_t len = samordna__v1__read_request__pack(&rq, buf);
        r->req_id = sam_client_send(c, r->service, "events.read", buf, len);
        r->sent_ms = now;
        if (!r->req_id) r->next_try_ms = now + SAM_FOLLOW_RETRY_MS;
    }
}

/* Hands a reply to the replay that asked for it; false when none did. */
static bool s_replay_dispatch(notify_t *n, sam_result_t *res)
{
    for (size_t i = 0; i < n->n_replay; i++) {
        notify_replay_t *r = &n->replay[i];
        if (!r->req_id || r->req_id != res->id) continue;
        r->req_id = 0;
        int64_t now = notify_now_ms();
        Samordna__V1__ReadReply *rr =
            res->code == SAM_OK ? samordna__v1__read_reply__unpack(NULL, res->body_len, res->body)
                                : NULL;
        if (!rr) {
            sam_warn("replay.unavailable subscription=%s service=%s code=%u reason=%s",
                     sam_logv(r->sub), sam_logv(r->service), res->code,
                     sam_logv(res->code == SAM_OK ? "undecodable" : res->message));
            r->next_try_ms = now + SAM_FOLLOW_RETRY_MS;
            return true;
        }
        bool over = s_take_replay(n, r, rr);
        protobuf_c_message_free_unpacked(&rr->base, NULL);
        if (over) {
            n->replay[i] = n->replay[--n->n_replay];
            n->replay_scan = true; /* a slot is free for any waiting */
        }
        return true;
    }
    return false;
}
