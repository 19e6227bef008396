/*  sam_follow.c — the outbox follower (contract and clock in sam_follow.h).

    A follower is a small state machine around one request id: idle (nothing in flight,
    next_ms says when the next poll may go), or polling (req set, sent_ms when). Every way out
    of polling sets next_ms, so the clock of sam_follow.h is the whole of the decision: an
    answer that applied, an early empty one, a failure, or a poll given up as lost. The page
    and the cursor are written in one transaction here, so no consumer can commit one without
    the other.
*/
#include "sam_follow.h"

#include <czmq.h>
#include <stdlib.h>
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
                  role);
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
    snprintf(self->service, sizeof self->service, "%s", def->service);
    self->def.service = self->service;
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
    MDB_val k = {strlen(self->def.cursor_key), (void *)self->def.cursor_key}, v;
    if (mdb_get(txn, self->def.cursor_dbi, &k, &v) != 0 || v.mv_size != 8) return 0;
    return sam_be64_get(v.mv_data);
}

static int s_cursor_put(sam_follow_t *self, MDB_txn *txn, uint64_t seq)
{
    if (self->def.cursor_put) return self->def.cursor_put(self->def.arg, txn, seq);
    uint8_t b[8];
    sam_be64_put(b, seq);
    MDB_val k = {strlen(self->def.cursor_key), (void *)self->def.cursor_key}, v = {8, b};
    return mdb_put(txn, self->def.cursor_dbi, &k, &v, 0);
}

/* ---- polling ------------------------------------------------------------------------------ */

static void s_failed(sam_follow_t *self, int64_t now, uint32_t code, const char *reason)
{
    if (!self->down)
        sam_warn("follow.unavailable service=%s code=%u reason=\"%s\" retry_ms=%d", self->service,
                 code, reason, SAM_FOLLOW_RETRY_MS);
    self->down = true;
    self->next_ms = now + SAM_FOLLOW_RETRY_MS;
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
    MDB_txn *txn;
    int rc = sam_store_begin(self->def.store, NULL, false, &txn);
    if (rc) {
        sam_error("follow.store service=%s error=\"%s\"", self->service, sam_store_strerror(rc));
        self->next_ms = now + SAM_FOLLOW_RETRY_MS;
        return;
    }
    self->cursor = s_cursor_get(self, txn);
    mdb_txn_abort(txn);
    Samordna__V1__ReadRequest rq = SAMORDNA__V1__READ_REQUEST__INIT;
    rq.after_seq = self->cursor;
    rq.max = SAM_FOLLOW_READ_MAX;
    rq.wait_ms = (uint32_t)self->def.wait_ms;
    uint8_t buf[64];
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
    int rc = s_apply(self, rr);
    if (rc) {
        sam_error("follow.store service=%s error=\"%s\"", self->service, sam_store_strerror(rc));
        self->next_ms = now + SAM_FOLLOW_RETRY_MS;
    } else {
        if (self->down)
            sam_info("follow.resumed service=%s after_seq=%llu", self->service,
                     (unsigned long long)self->cursor);
        self->down = false;
        /* An empty answer long before the wait was up: the service does not hold long polls;
           ask again a little later rather than spin. */
        bool early = rr->n_events == 0 && now - self->sent_ms < self->def.wait_ms / 2;
        self->next_ms = early ? now + SAM_FOLLOW_EARLY_MS : now;
    }
    samordna__v1__read_reply__free_unpacked(rr, NULL);
    return true;
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
    uint32_t code = sam_client_call(c, self->service, method, req, reply_desc, reply_out,
                                    SAM_FOLLOW_ASK_MS, false, &res);
    if (code == SAM_TIMEOUT || code == SAM_UNAVAILABLE || code == SAM_BUSY) {
        self->ask_blocked_ms = zclock_mono() + SAM_FOLLOW_ASK_BLOCK_MS;
        sam_warn("follow.ask_failed service=%s method=%s code=%u reason=\"%s\" blocked_ms=%d",
                 self->service, method, code, res.message, SAM_FOLLOW_ASK_BLOCK_MS);
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
