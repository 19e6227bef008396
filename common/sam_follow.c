/*  sam_follow.c — the outbox follower (contract and clock in sam_follow.h).

    A follower is a small state machine around one request id: idle (nothing in flight,
    next_ms says when the next poll may go), or polling (req set, sent_ms when). Every way out
    of polling sets next_ms, so the clock of sam_follow.h is the whole of the decision: an
    answer that applied, an early empty one, a failure, or a poll given up as lost. The page
    and the cursor are written in one transaction here, so no consumer can commit one without
    the other.
*/
#include "sam_follow.h"
#include "sam_lease.h"
#include "sam_testkit.h"

#include <czmq.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

struct sam_follow_t {
    sam_follow_def_t def;   /* borrowed callbacks, store, service */
    char service[64];       /* the followed service's name */
    sam_client_t *own;      /* the client of sam_follow_tick, NULL until first use */
    uint64_t req;           /* id of the events.read in flight, 0 when none */
    int64_t sent_ms;        /* monotonic ms the poll in flight went out */
    int64_t next_ms;        /* monotonic ms before which no poll is sent */
    uint64_t cursor;        /* last cursor read or committed */
    uint64_t head;          /* highest outbox head learnt */
    int64_t head_ms;        /* monotonic ms it was last learnt, 0: never */
    bool down;              /* the last poll failed (logged once until it answers) */
    int64_t ask_blocked_ms; /* monotonic ms: an ask went unanswered, none before this */
    sam_metric_t *lag;      /* --metrics: the lag gauge, declared at the first poll */
    int told;               /* the readiness last told: 1 ok, 0 failing, -1 not yet */
    sam_lease_t *lease;     /* the service's leases (borrowed), NULL: no sharing */
    char lease_name[80];    /* "follow.<service>" */
    bool leased;            /* held the lease at the last poll (logged when it changes) */
    char from[96];          /* a replica's polls go to this instance ("": the primary) */
};

int sam_follow_config(sam_config_t *cfg, const char *role, const char **service, int *wait_ms)
{
    char wait_opt[80];
    snprintf(wait_opt, sizeof wait_opt, "%s-wait-ms", role);
    bool ok = true;
    *service = sam_config_get(cfg, role);
    *wait_ms = (int)sam_config_int(cfg, wait_opt, 0, 30000, &ok);
    if (!ok || !*service || !**service || strlen(*service) >= sizeof((sam_follow_t *)0)->service) {
        sam_error("options.invalid option=%s reason=\"needs a service name (under 64 bytes) "
                  "and a wait of 0..30000 ms\"",
                  sam_logv(role));
        return -1;
    }
    return 0;
}

sam_follow_t *sam_follow_new(const sam_follow_def_t *def)
{
    if (!def || !def->service || !def->store || !def->apply ||
        strlen(def->service) >= sizeof((sam_follow_t *)0)->service ||
        (!def->cursor_get != !def->cursor_put) || (!def->cursor_get && !def->cursor_key))
        return NULL;
    sam_follow_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    self->def = *def;
    self->told = -1;
    snprintf(self->service, sizeof self->service, "%s", def->service);
    self->def.service = self->service;
    self->lease = def->svc ? sam_service_lease(def->svc) : NULL;
    snprintf(self->lease_name, sizeof self->lease_name, "follow.%s", self->service);
    if (self->lease && sam_lease_want(self->lease, self->lease_name)) {
        free(self);
        return NULL;
    }
    return self;
}

void sam_follow_destroy(sam_follow_t **self_p)
{
    if (!self_p || !*self_p) return;
    sam_client_destroy(&(*self_p)->own);
    free(*self_p);
    *self_p = NULL;
}

/* ---- the cursor, in the consumer's store ------------------------------------------------- */

static uint64_t s_cursor_get(sam_follow_t *self, MDB_txn *txn)
{
    if (self->def.cursor_get) return self->def.cursor_get(self->def.arg, txn);
    return sam_store_get_u64(txn, self->def.cursor_dbi, self->def.cursor_key);
}

static int s_cursor_put(sam_follow_t *self, MDB_txn *txn, uint64_t seq)
{
    if (self->def.cursor_put) return self->def.cursor_put(self->def.arg, txn, seq);
    return sam_store_put_u64(txn, self->def.cursor_dbi, self->def.cursor_key, seq);
}

/* ---- polling ------------------------------------------------------------------------------ */

/*  What the operator's port shows of this follower (--metrics): its lag behind the followed
    outbox, and a readiness check "follower.<service>" that fails while polls fail. */
static void s_observe(sam_follow_t *self)
{
    if (!self->def.svc) return;
    sam_service_follower(self->def.svc, self->service, self->cursor, self->head, self->down);
    sam_metrics_t *m = sam_service_metrics(self->def.svc);
    if (!m) return;
    const char *consumer = sam_service_def(self->def.svc)->name;
    if (!self->lag)
        self->lag = sam_metrics_gauge(m, "follower_lag_events",
                                      "Events of the followed outbox not yet applied here.",
                                      "service,followed");
    uint64_t behind = self->head > self->cursor ? self->head - self->cursor : 0;
    sam_metric_set(self->lag, (const char *const[]){consumer, self->service}, (double)behind);
    if (self->told == !self->down) return; /* readiness told only when it changes */
    self->told = !self->down;
    char check[96], why[128];
    snprintf(check, sizeof check, "follower.%s", self->service);
    snprintf(why, sizeof why, "%s does not answer events.read", self->service);
    sam_metrics_ready(m, check, !self->down, why);
}

static void s_failed(sam_follow_t *self, int64_t now, uint32_t code, const char *reason)
{
    if (!self->down)
        sam_warn("follow.unavailable service=%s code=%u reason=%s retry_ms=%d",
                 sam_logv(self->service), code, sam_logv(reason), SAM_FOLLOW_RETRY_MS);
    self->down = true;
    self->next_ms = now + SAM_FOLLOW_RETRY_MS;
    s_observe(self);
}

void sam_follow_send(sam_follow_t *self, sam_client_t *client)
{
    int64_t now = zclock_mono();
    if (self->req && now - self->sent_ms > self->def.wait_ms + SAM_FOLLOW_LOST_MS) {
        char why[64];
        snprintf(why, sizeof why, "no answer within %d ms", self->def.wait_ms + SAM_FOLLOW_LOST_MS);
        self->req = 0;
        s_failed(self, now, SAM_TIMEOUT, why);
        self->next_ms = now; /* lost, not refused: ask again at once */
    }
    if (self->req || now < self->next_ms || !client) return;
    if (self->lease) { /* another instance on the store may be the one following */
        bool mine = sam_lease_mine(self->lease, self->lease_name);
        if (mine != self->leased)
            sam_info("follow.%s service=%s", mine ? "leading" : "standing_by",
                     sam_logv(self->service));
        self->leased = mine;
        if (!mine) return;
    }
    MDB_txn *txn;
    int rc = sam_store_begin(self->def.store, NULL, false, &txn);
    if (rc) {
        sam_error("follow.store service=%s error=%s", sam_logv(self->service),
                  sam_logv(sam_store_strerror(rc)));
        self->next_ms = now + SAM_FOLLOW_RETRY_MS;
        return;
    }
    self->cursor = s_cursor_get(self, txn);
    mdb_txn_abort(txn);
    Samordna__V1__ReadRequest rq = SAMORDNA__V1__READ_REQUEST__INIT;
    rq.after_seq = self->cursor;
    rq.max = SAM_FOLLOW_READ_MAX;
    rq.wait_ms = (uint32_t)self->def.wait_ms;
    if (self->def.replica) rq.replica = (char *)self->def.replica;
    if (self->def.replica_epoch) rq.after_epoch = *self->def.replica_epoch;
    uint8_t buf[512];
    if (samordna__v1__read_request__get_packed_size(&rq) > sizeof buf) return;
    size_t len = samordna__v1__read_request__pack(&rq, buf);
    self->req = sam_client_send(client, self->service, "events.read", buf, len);
    self->sent_ms = now;
    if (!self->req) s_failed(self, now, SAM_UNAVAILABLE, "could not send");
}

/* Applies the events past the cursor and moves it, in one transaction. 0 or an error. */
static int s_apply(sam_follow_t *self, const Samordna__V1__ReadReply *rr)
{
    if (rr->n_events == 0) return 0;
    Samordna__V1__StoredEvent **page = malloc(rr->n_events * sizeof *page);
    if (!page) return SAM_STORE_NOMEM;
    MDB_txn *txn;
    int rc = sam_store_begin(self->def.store, NULL, true, &txn);
    if (rc) {
        free(page);
        return rc;
    }
    if (self->lease && !sam_lease_check(self->lease, txn, self->lease_name)) {
        /* the lease moved while the poll was out: the page is the new holder's to apply */
        mdb_txn_abort(txn);
        free(page);
        sam_info("follow.not_holder service=%s events=%zu", sam_logv(self->service), rr->n_events);
        return 0;
    }
    uint64_t cursor = s_cursor_get(self, txn);
    size_t n = 0;
    for (size_t i = 0; i < rr->n_events; i++) {
        Samordna__V1__StoredEvent *se = rr->events[i];
        if (!se || !se->event || se->seq <= cursor) continue;
        page[n++] = se;
        cursor = se->seq;
    }
    if (n) {
        rc = self->def.apply(self->def.arg, txn, page, n);
        if (rc == 0) rc = s_cursor_put(self, txn, cursor);
    }
    free(page);
    if (rc == 0 && n)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    if (rc == 0) self->cursor = cursor;
    return rc;
}

bool sam_follow_take(sam_follow_t *self, const sam_result_t *res)
{
    if (!self->req || res->id != self->req) return false;
    self->req = 0;
    int64_t now = zclock_mono();
    if (res->code != SAM_OK) {
        s_failed(self, now, res->code, res->message);
        return true;
    }
    Samordna__V1__ReadReply *rr = samordna__v1__read_reply__unpack(NULL, res->body_len, res->body);
    if (!rr) {
        s_failed(self, now, SAM_BAD_REQUEST, "undecodable ReadReply");
        return true;
    }
    sam_follow_learn_head(self, rr->last_seq);
    if (self->def.check && self->def.check(self->def.arg, rr) != 0) {
        self->next_ms = now + SAM_FOLLOW_RETRY_MS;
        samordna__v1__read_reply__free_unpacked(rr, NULL);
        return true;
    }
    int rc = s_apply(self, rr);
    if (rc) {
        sam_error("follow.store service=%s error=%s", sam_logv(self->service),
                  sam_logv(sam_store_strerror(rc)));
        self->next_ms = now + SAM_FOLLOW_RETRY_MS;
    } else {
        if (self->down)
            sam_info("follow.resumed service=%s after_seq=%llu", sam_logv(self->service),
                     (unsigned long long)self->cursor);
        self->down = false;
        s_observe(self);
        /* An empty answer long before the wait was up: the service does not hold long polls;
           ask again a little later rather than spin. */
        bool early = rr->n_events == 0 && now - self->sent_ms < self->def.wait_ms / 2;
        self->next_ms = early ? now + SAM_FOLLOW_EARLY_MS : now;
    }
    samordna__v1__read_reply__free_unpacked(rr, NULL);
    return true;
}

size_t sam_follow_pollitems(sam_follow_t *self, zmq_pollitem_t *items, size_t cap)
{
    return self->own ? sam_client_pollitems(self->own, items, cap) : 0;
}

void sam_follow_tick(sam_follow_t *self)
{
    int64_t now = zclock_mono();
    if (!self->own) {
        if (!self->def.svc || now < self->next_ms) return;
        self->own = sam_service_client_new(self->def.svc); /* with the service's certificate */
        if (!self->own) {
            self->next_ms = now + SAM_FOLLOW_RETRY_MS;
            return;
        }
        if (self->def.replica) sam_client_set_route(self->own, !*self->from, self->from);
    }
    sam_result_t res;
    while (self->req && sam_client_recv(self->own, 0, &res) == 0) {
        sam_follow_take(self, &res); /* an answer that is not the poll's is a stale one */
        sam_result_clear(&res);
    }
    sam_follow_send(self, self->own);
}

/* ---- asking ------------------------------------------------------------------------------- */

uint32_t sam_follow_ask(sam_follow_t *self, const char *method, const ProtobufCMessage *req,
                        const ProtobufCMessageDescriptor *reply_desc, ProtobufCMessage **reply_out)
{
    if (reply_out) *reply_out = NULL;
    sam_client_t *c = self->def.svc ? sam_service_client(self->def.svc) : NULL;
    if (!c || zclock_mono() < self->ask_blocked_ms) return SAM_UNAVAILABLE;
    sam_result_t res = {0};
    /* An ask is a query, so idempotent: one in flight to a broker that is lost is sent again
       to another rather than answered 503. An idempotent call may take two attempts of its
       timeout each: half of SAM_FOLLOW_ASK_MS apiece keeps the whole ask within it. */
    uint32_t code = sam_client_call(c, self->service, method, req, reply_desc, reply_out,
                                    SAM_FOLLOW_ASK_MS / 2, true, &res);
    if (code == SAM_TIMEOUT || code == SAM_UNAVAILABLE || code == SAM_BUSY) {
        self->ask_blocked_ms = zclock_mono() + SAM_FOLLOW_ASK_BLOCK_MS;
        sam_warn("follow.ask_failed service=%s method=%s code=%u reason=%s blocked_ms=%d",
                 sam_logv(self->service), sam_logv(method), code, sam_logv(res.message),
                 SAM_FOLLOW_ASK_BLOCK_MS);
    }
    sam_result_clear(&res);
    return code;
}

/* ---- state -------------------------------------------------------------------------------- */

const char *sam_follow_service(const sam_follow_t *self)
{
    return self->service;
}

uint64_t sam_follow_cursor(const sam_follow_t *self)
{
    return self->cursor;
}

uint64_t sam_follow_head(const sam_follow_t *self, int64_t *mono_ms)
{
    if (mono_ms) *mono_ms = self->head_ms;
    return self->head;
}

void sam_follow_from(sam_follow_t *self, const char *instance)
{
    const char *want = instance ? instance : "";
    if (!self->def.replica || strcmp(self->from, want) == 0) return;
    snprintf(self->from, sizeof self->from, "%s", want);
    if (self->own) sam_client_set_route(self->own, !*self->from, self->from);
    /* the poll in flight went the old way (and may wait there for no one): its answer, if
       one comes, is a stale one; the next goes at once */
    self->req = 0;
    self->next_ms = 0;
}

void sam_follow_learn_head(sam_follow_t *self, uint64_t head)
{
    if (head > self->head) self->head = head;
    self->head_ms = zclock_mono();
}

bool sam_follow_down(const sam_follow_t *self)
{
    return self->down;
}

const char *sam_follow_field(const ProtobufCMessage *msg, const char *name)
{
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field_by_name(msg->descriptor, name);
    if (!fd || fd->type != PROTOBUF_C_TYPE_STRING || fd->label == PROTOBUF_C_LABEL_REPEATED)
        return "";
    const char *v = *(const char *const *)(const void *)((const char *)msg + fd->offset);
    return v ? v : "";
}

const uint8_t *sam_event_data(const Io__Cloudevents__V1__CloudEvent *ce, size_t *len)
{
    switch (ce->data_case) {
    case IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_BINARY_DATA:
        *len = ce->binary_data.len;
        return ce->binary_data.data;
    case IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_PROTO_DATA:
        if (!ce->proto_data) break;
        *len = ce->proto_data->value.len;
        return ce->proto_data->value.data;
    default:
        break;
    }
    *len = 0;
    return NULL;
}

/* ---- selftest ------------------------------------------------------------------------------

    The follower against a ROUTER that plays the broker and the followed service: the poll
    it sends, a page applied with the cursor in one transaction, a repeated event skipped,
    a refused page leaving the cursor and backing off, an error status marking the service
    down, and the options. Also the example of a consumer. */

/* A check of this selftest (sam_testkit.h); `failed` is this run's count. */
#define S_CHECK(cond) ((void)(SAM_CHECK(cond) || failed++))

typedef struct {
    size_t pages, events;
    uint64_t last;
    int fail; /* the error the next page is refused with, 0: applied */
} s_test_consumer_t;

static int s_test_apply(void *arg, MDB_txn *txn, Samordna__V1__StoredEvent *const *events, size_t n)
{
    s_test_consumer_t *c = arg;
    (void)txn;
    if (c->fail) return c->fail;
    c->pages++;
    c->events += n;
    c->last = events[n - 1]->seq;
    return 0;
}

/* Receives the poll on the router: its ReadRequest into *rq, its id returned; 0 when none
   came within timeout_ms. */
static uint64_t s_test_poll(zsock_t *router, int timeout_ms, zframe_t **who,
                            Samordna__V1__ReadRequest **rq)
{
    *rq = NULL;
    zsock_set_rcvtimeo(router, timeout_ms);
    zmsg_t *m = zmsg_recv(router);
    if (!m) return 0;
    *who = zmsg_pop(m);
    zframe_t *body = zmsg_last(m);
    Samordna__V1__Request *req =
        body ? samordna__v1__request__unpack(NULL, zframe_size(body), zframe_data(body)) : NULL;
    uint64_t id = 0;
    if (req && strcmp(req->method, "events.read") == 0) {
        *rq = samordna__v1__read_request__unpack(NULL, req->body.len, req->body.data);
        id = req->id;
    }
    if (req) samordna__v1__request__free_unpacked(req, NULL);
    zmsg_destroy(&m);
    return id;
}

/* Answers poll `id` with status `code` and events first..last (none when first > last). */
static void s_test_answer(zsock_t *router, zframe_t **who, uint64_t id, uint32_t code,
                          uint64_t first, uint64_t last)
{
    Samordna__V1__StoredEvent se[8], *ps[8];
    Io__Cloudevents__V1__CloudEvent ce = IO__CLOUDEVENTS__V1__CLOUD_EVENT__INIT;
    ce.id = "e";
    ce.source = "s";
    ce.type = "t";
    Samordna__V1__ReadReply rr = SAMORDNA__V1__READ_REPLY__INIT;
    for (uint64_t s = first; s <= last && rr.n_events < 8; s++) {
        samordna__v1__stored_event__init(&se[rr.n_events]);
        se[rr.n_events].seq = s;
        se[rr.n_events].event = &ce;
        ps[rr.n_events] = &se[rr.n_events];
        rr.n_events++;
    }
    rr.events = ps;
    rr.last_seq = last;
    uint8_t body[1024];
    Samordna__V1__Status st = SAMORDNA__V1__STATUS__INIT;
    st.code = code;
    st.message = code == SAM_OK ? "" : "no worker";
    Samordna__V1__Reply rep = SAMORDNA__V1__REPLY__INIT;
    rep.id = id;
    rep.status = &st;
    if (code == SAM_OK) {
        rep.body.len = samordna__v1__read_reply__pack(&rr, body);
        rep.body.data = body;
    }
    uint8_t packed[2048];
    size_t n = samordna__v1__reply__pack(&rep, packed);
    zmsg_t *m = zmsg_new();
    zmsg_append(m, who);
    zmsg_addmem(m, "", 0);
    zmsg_addstr(m, "MDPC01");
    zmsg_addstr(m, "registry");
    zmsg_addmem(m, packed, n);
    zmsg_send(&m, router);
}

/* Hands every answer waiting on the client to the follower. */
static void s_test_take(sam_follow_t *f, sam_client_t *client)
{
    sam_result_t res;
    while (sam_client_recv(client, 2000, &res) == 0) {
        bool mine = sam_follow_take(f, &res);
        sam_result_clear(&res);
        if (mine) return;
    }
}

static uint64_t s_test_stored(sam_store_t *store)
{
    MDB_txn *txn;
    if (sam_store_begin(store, NULL, false, &txn)) return UINT64_MAX;
    uint64_t seq = sam_store_get_u64(txn, sam_store_dbi(store, "refs"), "#cursor");
    mdb_txn_abort(txn);
    return seq;
}

int sam_follow_selftest(const char *scratch)
{
    int failed = 0;
    char dir[1024], err[256];
    snprintf(dir, sizeof dir, "%s/follow", scratch);
    const char *const tables[] = {"refs", NULL};
    sam_store_t *store = sam_testkit_store(dir, tables); /* counts a failed check itself */
    zsock_t *router = zsock_new_router("tcp://127.0.0.1:*");
    S_CHECK(router);
    if (!store || !router) {
        zsock_destroy(&router);
        sam_store_destroy(&store);
        return failed + 1;
    }
    const char *ep = zsock_endpoint(router);
    sam_client_t *client = sam_client_new(&ep, 1, NULL, err, sizeof err);
    S_CHECK(client);

    s_test_consumer_t c = {0};
    sam_follow_def_t def = {.service = "registry",
                            .wait_ms = 1000,
                            .store = store,
                            .apply = s_test_apply,
                            .arg = &c,
                            .cursor_dbi = sam_store_dbi(store, "refs"),
                            .cursor_key = "#cursor"};
    S_CHECK(sam_follow_new(&(sam_follow_def_t){.service = "x", .store = store}) == NULL);
    sam_follow_t *f = sam_follow_new(&def);
    S_CHECK(f && strcmp(sam_follow_service(f), "registry") == 0);

    /* the first poll asks from 0 with the wait; its page is applied, the cursor stored */
    zframe_t *who = NULL;
    Samordna__V1__ReadRequest *rq;
    sam_follow_send(f, client);
    uint64_t id = s_test_poll(router, 5000, &who, &rq);
    S_CHECK(id && rq && rq->after_seq == 0 && rq->wait_ms == 1000 &&
            rq->max == SAM_FOLLOW_READ_MAX);
    if (rq) samordna__v1__read_request__free_unpacked(rq, NULL);
    sam_result_t other = {.id = id + 1000, .code = SAM_OK};
    S_CHECK(!sam_follow_take(f, &other)); /* not its poll */
    s_test_answer(router, &who, id, SAM_OK, 1, 2);
    s_test_take(f, client);
    S_CHECK(c.pages == 1 && c.events == 2 && c.last == 2);
    S_CHECK(s_test_stored(store) == 2 && sam_follow_cursor(f) == 2);
    S_CHECK(sam_follow_head(f, NULL) == 2);

    /* the next poll goes at once, after the cursor; a repeated event is skipped */
    sam_follow_send(f, client);
    id = s_test_poll(router, 5000, &who, &rq);
    S_CHECK(id && rq && rq->after_seq == 2);
    if (rq) samordna__v1__read_request__free_unpacked(rq, NULL);
    s_test_answer(router, &who, id, SAM_OK, 2, 3);
    s_test_take(f, client);
    S_CHECK(c.pages == 2 && c.events == 3 && s_test_stored(store) == 3);

    /* a refused page: nothing committed, the cursor stays, and the next poll waits */
    sam_follow_send(f, client);
    id = s_test_poll(router, 5000, &who, &rq);
    if (rq) samordna__v1__read_request__free_unpacked(rq, NULL);
    c.fail = MDB_MAP_FULL;
    s_test_answer(router, &who, id, SAM_OK, 4, 5);
    int64_t failed_at = zclock_mono();
    s_test_take(f, client);
    S_CHECK(c.pages == 2 && s_test_stored(store) == 3);
    sam_follow_send(f, client);
    uint64_t early = s_test_poll(router, 0, &who, &rq);
    if (zclock_mono() - failed_at < SAM_FOLLOW_RETRY_MS) S_CHECK(early == 0); /* backing off */
    if (rq) samordna__v1__read_request__free_unpacked(rq, NULL);
    zframe_destroy(&who);

    /* an error status: the service counts as down until it answers again */
    c.fail = 0;
    sam_follow_destroy(&f);
    f = sam_follow_new(&def);
    sam_follow_send(f, client);
    id = s_test_poll(router, 5000, &who, &rq);
    S_CHECK(id && rq && rq->after_seq == 3); /* read from the store, not remembered */
    if (rq) samordna__v1__read_request__free_unpacked(rq, NULL);
    s_test_answer(router, &who, id, SAM_UNAVAILABLE, 1, 0);
    s_test_take(f, client);
    S_CHECK(sam_follow_down(f) && s_test_stored(store) == 3);
    sam_follow_destroy(&f);
    sam_follow_destroy(&f); /* NULL is fine */

    /* the options, as status and grants declare them */
    static const sam_option_t opts[] = {
        SAM_FOLLOW_OPTIONS("registry"){NULL, NULL, NULL, NULL, false}};
    sam_config_t *cfg = sam_config_new("selftest", NULL, "selftest", opts);
    char *argv[] = {"x", "--registry", "registry-b", "--registry-wait-ms", "250"};
    const char *service = NULL;
    int wait = -1;
    S_CHECK(cfg && sam_config_parse(cfg, 5, argv) == 0);
    S_CHECK(sam_follow_config(cfg, "registry", &service, &wait) == 0);
    S_CHECK(service && strcmp(service, "registry-b") == 0 && wait == 250);
    sam_config_destroy(&cfg);
    cfg = sam_config_new("selftest", NULL, "selftest", opts);
    S_CHECK(cfg && sam_config_parse(cfg, 1, argv) == 0);
    S_CHECK(sam_follow_config(cfg, "registry", &service, &wait) == 0);
    S_CHECK(strcmp(service, "registry") == 0 && wait == SAM_FOLLOW_WAIT_DEFAULT);
    sam_config_destroy(&cfg);

    /* fields by name, and the payload of an event */
    Samordna__V1__Status st = SAMORDNA__V1__STATUS__INIT;
    st.message = "why";
    S_CHECK(strcmp(sam_follow_field(&st.base, "message"), "why") == 0);
    S_CHECK(strcmp(sam_follow_field(&st.base, "code"), "") == 0); /* not a string */
    S_CHECK(strcmp(sam_follow_field(&st.base, "nothing"), "") == 0);
    Io__Cloudevents__V1__CloudEvent ce = IO__CLOUDEVENTS__V1__CLOUD_EVENT__INIT;
    size_t len = 1;
    S_CHECK(sam_event_data(&ce, &len) == NULL && len == 0);
    ce.data_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_BINARY_DATA;
    ce.binary_data.data = (uint8_t *)"ab";
    ce.binary_data.len = 2;
    S_CHECK(sam_event_data(&ce, &len) == ce.binary_data.data && len == 2);

    sam_client_destroy(&client);
    zsock_destroy(&router);
    sam_store_destroy(&store);
    return failed;
}
