/*  sam_service.c — the service runtime: worker side of 7/MDP, dispatch, the write path.

    The loop, in one thread:
      1. wait on every broker socket (and on the nearest timer: heartbeat, tick, long poll);
      2. drain what has arrived, up to the credit, into one batch;
      3. answer the batch: each request is first admitted against its row of the table
         (s_admit: row, role, size, decoding — the one reject path), then pings and queries
         at once from one read transaction; every events.publish of the batch in ONE write
         transaction (nested per event so a refusal never leaves a partial write), committed
         and synced once; then all replies. What a handler returns becomes its answer in one
         place (s_outcome);
      4. answer long polls whose events have arrived, expire the rest;
      5. heartbeat the brokers, reconnect the silent ones with backoff.
    Because the broker keeps up to `credit` requests in flight to us, a burst of publishes
    arrives as a batch and costs one fsync instead of one per event: that is group commit.

    Nothing read from the store is cached across iterations (the outbox head is read inside
    each write transaction), so several instances can share one environment on one host.
*/
#include "sam_service.h"
#include "sam_batch.h"
#include "sam_check.h"
#include "sam_client.h"
#include "sam_mdp.h"

#include "sam_keys.h"

#include "samordna/v1/service.pb-c.h"

#include <czmq.h>
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_MAX_BROKERS 8
#define S_READ_MAX_BYTES (512 * 1024) /* an events.read reply stays well under the broker cap */
#define S_BATCH_BYTES (32 * 1024)     /* a Batch of replies is sent once it holds this much */

/* One broker connection. */
typedef struct {
    char *endpoint;       /* owned copy */
    zsock_t *sock;        /* DEALER, NULL while waiting to reconnect */
    unsigned generation;  /* bumped on every reconnect; parked requests remember theirs */
    bool ext_credit;      /* the broker accepted our credit */
    bool ext_identity;    /* the broker sends a Caller frame with each request */
    bool ext_batch;       /* requests and replies travel as Batch frames (sam_batch.h) */
    sam_batch_t out;      /* replies gathered for it, sent at the end of the iteration */
    int64_t heard_at;     /* last time anything arrived from it (monotonic ms) */
    int64_t hb_due;       /* when our next heartbeat is due */
    int64_t reconnect_at; /* when to reconnect, while sock is NULL */
    int64_t connected_at; /* when the current connection was made */
    int backoff_ms;       /* next reconnect delay */
} s_broker_t;

/* One request of a batch, or a parked long poll. */
typedef struct sam_request_t {
    int broker;          /* index into brokers */
    unsigned generation; /* the broker connection it came on */
    uint8_t client[256]; /* the client's address (a ZeroMQ routing id, ≤ 255 bytes) */
    size_t client_len;
    Samordna__V1__Request *req;   /* unpacked envelope, owned */
    Samordna__V1__Caller *caller; /* unpacked or NULL (then s_anonymous/s_insecure) */
    sam_reply_t reply;
    const sam_row_t *row;  /* the method's row, once found */
    ProtobufCMessage *msg; /* the body decoded as row->request, owned; NULL when none */
    /* events.publish: the event's own row and its payload */
    const sam_row_t *erow;
    ProtobufCMessage *payload; /* decoded as erow->request, owned; NULL when none */
    sam_event_t ev;
    sam_reply_t late; /* the payload's refusal by its row, answered after the duplicate check */
    bool done;        /* reply decided before the write transaction */
    uint64_t seq;
    bool duplicate;
    /* events.read long poll, or a query's (sam_reply_t.wait_ms) */
    uint64_t after_seq;
    uint32_t max;
    int64_t deadline;
    struct sam_request_t *next; /* in the waiter list */
} s_request_t;

struct sam_service_t {
    const sam_service_def_t *def;
    void *ctx;
    sam_option_t *options; /* standard + the service's own, owned */
    sam_config_t *config;
    sam_store_t *store;
    sam_client_t *client;
    char instance[96];
    bool insecure;
    const char *cert;                     /* --cert: our secret certificate (CURVE) */
    char server_key[SAM_KEY_Z85_LEN + 1]; /* --server-key: the brokers' public key */
    int credit;
    size_t max_event_bytes;
    int heartbeat_ms;
    int liveness;
    s_broker_t brokers[S_MAX_BROKERS];
    size_t nbrokers;
    s_request_t *waiters; /* parked long polls (events.read, queries with wait_ms) */
    /* The table: the service's rows then the built-ins (all), and the same rows sorted by
       name for lookup, methods (queries and built-ins) and event types apart. Arrays owned,
       rows borrowed from the program's static data. */
    const sam_row_t **all, **methods, **events;
    size_t n_all, n_methods, n_events;
    size_t max_body; /* a method body's default limit: an event plus its PublishRequest */
    /* the batch being handled: its wall-clock time and its publishes, for the write pass */
    int64_t batch_ms;
    s_request_t *pubs[SAM_MDP_MAX_CREDIT];
    size_t npubs;
    int64_t tick_due;
    bool sd_ready; /* READY=1 was told to systemd (the first word from a broker) */
    int argc;      /* the command line, for SIGHUP's second reading of the file */
    char **argv;
    MDB_dbi outbox, dedup;
    bool harness;       /* driven by sam_service_feed() instead of brokers */
    uint32_t last_code; /* status of the last reply made (read by sam_service_feed) */
    /* counters, logged at shutdown */
    uint64_t n_requests, n_applied, n_refused, n_duplicates, n_batches, n_bad;
};

/* The built-in rows' functions (common/sam_builtin.def), and the lookup in the table. */
#define B(name, request, reply, roles, writes, fn)                                                 \
    static int fn(sam_service_t *svc, s_request_t *r, MDB_txn *rtxn, int64_t now);
#include "sam_builtin.def"
#undef B
static const sam_row_t *s_find(const sam_row_t *const *rows, size_t n, const char *name);

static const Samordna__V1__Caller s_anonymous = {
    PROTOBUF_C_MESSAGE_INIT(&samordna__v1__caller__descriptor), "", "", "", 0};
static const Samordna__V1__Caller s_insecure = {
    PROTOBUF_C_MESSAGE_INIT(&samordna__v1__caller__descriptor), "", "admin", "", 1};

static const sam_option_t s_std_options[] = {
    {"broker", "ENDPOINT", "tcp://127.0.0.1:5555", "broker to serve through", true},
    {"data-dir", "DIR", "var", "folder of the stores; this service uses DIR/<service>", false},
    {"credit", "N", "256", "requests the broker may keep in flight to this instance", false},
    {"insecure", NULL, NULL, "accept callers without authentication (loopback runs, tests)", false},
    {"cert", "FILE", NULL,
     "this service's secret CURVE certificate (samctl keys new --role service)", false},
    {"server-key", "KEY|FILE", NULL, "the broker's public key: Z85 text or its certificate file",
     false},
    {"nosync", NULL, NULL,
     "opt-in weaker durability: do not fsync each commit (survives a process crash, not a "
     "power loss)",
     false},
    {"map-size-mb", "MB", "16384", "largest size the store may grow to", false},
    {"instance", "NAME", NULL, "name of this instance in logs and ping (default host-pid)", false},
    {"max-event-bytes", "N", "262144",
     "largest CloudEvent accepted, and the default limit of a row's body or payload", false},
    {"heartbeat-ms", "MS", "2500", "heartbeat interval towards the brokers", false},
    {"liveness", "N", "3", "missed heartbeats before a broker counts as gone", false},
};

/*  The harness (fuzzers): set once before sam_service_main(), read by it. The one piece of
    process-wide state in the runtime, because a fuzzer's driver owns main(). */
static sam_service_harness_fn s_harness;
static void *s_harness_arg;

void sam_service_set_harness(sam_service_harness_fn fn, void *arg)
{
    s_harness = fn;
    s_harness_arg = arg;
}

static const struct {
    unsigned bit;
    const char *name;
} s_role_names[] = {
    {SAM_ROLE_ADMIN, "admin"},     {SAM_ROLE_PUBLISHER, "publisher"}, {SAM_ROLE_READER, "reader"},
    {SAM_ROLE_SERVICE, "service"}, {SAM_ROLE_ANYONE, "anyone"},
};

const char *sam_role_name(unsigned bit)
{
    for (size_t i = 0; i < sizeof s_role_names / sizeof s_role_names[0]; i++)
        if (s_role_names[i].bit == bit) return s_role_names[i].name;
    return NULL;
}

unsigned sam_role_bit(const char *role)
{
    if (!role) return 0;
    if (strcmp(role, "admin") == 0) return SAM_ROLE_ADMIN;
    if (strcmp(role, "publisher") == 0) return SAM_ROLE_PUBLISHER;
    if (strcmp(role, "reader") == 0) return SAM_ROLE_READER;
    if (strcmp(role, "service") == 0) return SAM_ROLE_SERVICE;
    return 0;
}

int sam_reply_error(sam_reply_t *reply, uint32_t code, const char *fmt, ...)
{
    reply->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reply->message, sizeof reply->message, fmt, ap);
    va_end(ap);
    /* a refusal is text a strict client must decode, whatever a handler quoted into it */
    sam_check_sanitize(reply->message);
    free(reply->body);
    reply->body = NULL;
    reply->body_len = 0;
    return -1;
}

int sam_reply_message(sam_reply_t *reply, const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *body = malloc(len ? len : 1);
    if (!body) return sam_reply_error(reply, SAM_INTERNAL, "out of memory");
    protobuf_c_message_pack(msg, body);
    free(reply->body);
    reply->body = body;
    reply->body_len = len;
    reply->code = SAM_OK;
    return 0;
}

/*  Decodes len bytes as desc, the text rule first (sam_check_wire, fields' paths after
    `prefix`). Returns 0 with *out set (the caller frees it), -1 with 400 in reply when a
    string breaks the rule, or -2 with reply untouched when the bytes are not a packed desc:
    the caller says what was undecodable. */
static int s_decode(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                    const char *prefix, ProtobufCMessage **out, sam_reply_t *reply)
{
    char err[300];
    *out = NULL;
    if (sam_check_wire(desc, data, len, prefix, err, sizeof err) == -1) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "%s", err);
        return -1;
    }
    *out = protobuf_c_message_unpack(desc, NULL, len, data);
    return *out ? 0 : -2;
}

const char *sam_event_attr(const Io__Cloudevents__V1__CloudEvent *ce, const char *name)
{
    for (size_t i = 0; i < ce->n_attributes; i++) {
        const Io__Cloudevents__V1__CloudEvent__AttributesEntry *a = ce->attributes[i];
        if (!a->key || strcmp(a->key, name) != 0 || !a->value) continue;
        switch (a->value->attr_case) {
        case IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_STRING:
            return a->value->ce_string;
        case IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_URI:
            return a->value->ce_uri;
        case IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_URI_REF:
            return a->value->ce_uri_ref;
        default:
            return NULL;
        }
    }
    return NULL;
}

void *sam_service_ctx(sam_service_t *svc)
{
    return svc->ctx;
}

sam_store_t *sam_service_store(sam_service_t *svc)
{
    return svc->store;
}

sam_config_t *sam_service_config(sam_service_t *svc)
{
    return svc->config;
}

MDB_dbi sam_service_dbi(sam_service_t *svc, const char *table)
{
    return sam_store_dbi(svc->store, table);
}

sam_client_t *sam_service_client(sam_service_t *svc)
{
    if (!svc->client) svc->client = sam_service_client_new(svc);
    return svc->client;
}

sam_client_t *sam_service_client_new(sam_service_t *svc)
{
    if (svc->harness) return NULL; /* no brokers to ask */
    const char *eps[S_MAX_BROKERS];
    for (size_t i = 0; i < svc->nbrokers; i++)
        eps[i] = svc->brokers[i].endpoint;
    char err[256] = "";
    sam_client_opts_t opts = {0};
    if (!svc->insecure) {
        opts.client_cert = svc->cert;
        opts.server_key = svc->server_key;
    }
    sam_client_t *client = sam_client_new(eps, svc->nbrokers, &opts, err, sizeof err);
    if (!client) sam_error("client.failed reason=\"%s\"", err);
    return client;
}

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

/* ---- broker connections ------------------------------------------------------------------ */

static void s_broker_send(s_broker_t *b, int command, zmsg_t **tail_p)
{
    if (!b->sock) {
        zmsg_destroy(tail_p);
        return;
    }
    zmsg_t *msg = tail_p && *tail_p ? *tail_p : zmsg_new();
    if (tail_p) *tail_p = NULL;
    uint8_t cmd = (uint8_t)command;
    zmsg_pushmem(msg, &cmd, 1);
    zmsg_pushstr(msg, SAM_MDPW);
    zmsg_pushmem(msg, "", 0);
    if (zmsg_send(&msg, b->sock) != 0) zmsg_destroy(&msg);
}

static void s_broker_connect(sam_service_t *svc, s_broker_t *b, int64_t now)
{
    if (svc->harness) return; /* driven by a harness: no network */
    zsock_destroy(&b->sock);
    b->generation++;
    b->ext_credit = b->ext_identity = b->ext_batch = false;
    sam_batch_reset(&b->out);
    b->sock = zsock_new(ZMQ_DEALER);
    if (b->sock && !svc->insecure) {
        zcert_t *cert = zcert_load(svc->cert);
        if (cert) {
            zcert_apply(cert, b->sock);
            zsock_set_curve_serverkey(b->sock, svc->server_key);
            zcert_destroy(&cert);
        } else {
            sam_error("broker.connect_failed endpoint=%s reason=\"cannot read %s\"", b->endpoint,
                      svc->cert);
            zsock_destroy(&b->sock);
        }
    }
    if (!b->sock || zsock_connect(b->sock, "%s", b->endpoint) != 0) {
        sam_error("broker.connect_failed endpoint=%s", b->endpoint);
        zsock_destroy(&b->sock);
        b->reconnect_at = now + b->backoff_ms;
        return;
    }
    zsock_set_linger(b->sock, 0);
    /* No frame from a broker may make us allocate without bound: a request is at most an
       event (or a query) plus the broker's framing. */
    zsock_set_maxmsgsize(b->sock, (int)(svc->max_event_bytes + (16 << 20)));
    zsock_set_sndhwm(b->sock, 0);
    zsock_set_rcvhwm(b->sock, 0);
    zmsg_t *ready = zmsg_new();
    zmsg_addstr(ready, svc->def->name);
    zmsg_addstrf(ready, "%s credit=%d identity batch", SAM_MDP_EXT_PREFIX, svc->credit);
    s_broker_send(b, SAM_MDPW_READY, &ready);
    b->heard_at = now;
    b->connected_at = now;
    b->hb_due = now + svc->heartbeat_ms;
    sam_info("broker.connected endpoint=%s credit=%d", b->endpoint, svc->credit);
}

/* Whether the space-separated `text` has the token `token` (or, with a '=', one that starts
   with it). */
static bool s_has_token(const char *text, const char *token)
{
    size_t n = strlen(token);
    bool prefix = n && token[n - 1] == '=';
    for (const char *at = text; (at = strstr(at, token)); at += n)
        if ((at == text || at[-1] == ' ') && (prefix || at[n] == ' ' || at[n] == '\0')) return true;
    return false;
}

/* The broker's answering HEARTBEAT may carry the accepted extension set. */
static void s_broker_extensions(s_broker_t *b, const char *ext)
{
    if (strncmp(ext, SAM_MDP_EXT_PREFIX, strlen(SAM_MDP_EXT_PREFIX)) != 0) return;
    b->ext_credit = s_has_token(ext, "credit=");
    b->ext_identity = s_has_token(ext, "identity");
    b->ext_batch = s_has_token(ext, "batch");
    sam_info("broker.extensions endpoint=%s accepted=\"%s\"", b->endpoint, ext);
}

/* ---- replies ------------------------------------------------------------------------------ */

static void s_request_destroy(s_request_t **r_p)
{
    if (!r_p || !*r_p) return;
    s_request_t *r = *r_p;
    if (r->req) samordna__v1__request__free_unpacked(r->req, NULL);
    if (r->caller) samordna__v1__caller__free_unpacked(r->caller, NULL);
    if (r->msg) protobuf_c_message_free_unpacked(r->msg, NULL);
    if (r->payload) protobuf_c_message_free_unpacked(r->payload, NULL);
    free(r->reply.body);
    free(r);
    *r_p = NULL;
}

/* Sends the replies gathered for a batch broker: "" "MDPW01" 0x03 Batch. */
static void s_flush_replies(s_broker_t *b)
{
    if (b->out.count && b->sock) {
        void *h = zsock_resolve(b->sock);
        uint8_t cmd = SAM_MDPW_REPLY;
        zmq_send(h, "", 0, ZMQ_SNDMORE);
        zmq_send(h, SAM_MDPW, strlen(SAM_MDPW), ZMQ_SNDMORE);
        zmq_send(h, &cmd, 1, ZMQ_SNDMORE);
        zmq_send(h, b->out.data, b->out.len, 0);
    }
    sam_batch_reset(&b->out);
}

/* REPLY: "" "MDPW01" 0x03 client "" Reply, or one item of a Batch */
static void s_send_reply(sam_service_t *svc, s_request_t *r)
{
    s_broker_t *b = &svc->brokers[r->broker];
    svc->last_code = r->reply.code ? r->reply.code : SAM_OK;
    if (!b->sock || b->generation != r->generation) return; /* broker gone: it told the client */
    Samordna__V1__Status status = SAMORDNA__V1__STATUS__INIT;
    status.code = r->reply.code ? r->reply.code : SAM_OK;
    status.message = r->reply.message;
    Samordna__V1__Reply rep = SAMORDNA__V1__REPLY__INIT;
    rep.id = r->req ? r->req->id : 0;
    rep.status = &status;
    rep.body.data = r->reply.body;
    rep.body.len = r->reply.body_len;
    /* Straight onto the socket, frame by frame, or into the broker's Batch: no message
       object per reply. */
    uint8_t stack[2048];
    size_t size = samordna__v1__reply__get_packed_size(&rep);
    uint8_t *packed = size <= sizeof stack ? stack : malloc(size);
    if (packed && b->ext_batch) {
        samordna__v1__reply__pack(&rep, packed);
        ProtobufCBinaryData body = {size, packed};
        size_t need = sam_batch_delivery_size(r->client_len, 0, &body, 1);
        if (b->out.len && b->out.len + need > S_BATCH_BYTES) s_flush_replies(b);
        if (sam_batch_add(&b->out, r->client, r->client_len, NULL, 0, &body, 1) != 0)
            sam_error("reply.lost req=%" PRIu64 " reason=\"out of memory\"", rep.id);
        if (packed != stack) free(packed);
    } else if (packed) {
        samordna__v1__reply__pack(&rep, packed);
        void *h = zsock_resolve(b->sock);
        uint8_t cmd = SAM_MDPW_REPLY;
        zmq_send(h, "", 0, ZMQ_SNDMORE);
        zmq_send(h, SAM_MDPW, strlen(SAM_MDPW), ZMQ_SNDMORE);
        zmq_send(h, &cmd, 1, ZMQ_SNDMORE);
        zmq_send(h, r->client, r->client_len, ZMQ_SNDMORE);
        zmq_send(h, "", 0, ZMQ_SNDMORE);
        zmq_send(h, packed, size, 0);
        if (packed != stack) free(packed);
    }
    if (status.code != SAM_OK)
        sam_info("request.refused req=%" PRIu64 " method=%s code=%u reason=%s", rep.id,
                 sam_logv(r->req ? r->req->method : "?"), status.code, sam_logv(status.message));
}

static const Samordna__V1__Caller *s_caller(sam_service_t *svc, const s_request_t *r)
{
    if (r->caller) return r->caller;
    return svc->insecure ? &s_insecure : &s_anonymous;
}

/*  A service that runs with CURVE trusts only identities its brokers authenticated: a
    Caller that says "insecure" (or a request without a Caller) has no role here. */
static bool s_role_ok(sam_service_t *svc, const Samordna__V1__Caller *c, unsigned roles)
{
    if (roles & SAM_ROLE_ANYONE) return true;
    if (!svc->insecure) return !c->insecure && (sam_role_bit(c->role) & roles) != 0;
    if (c->insecure || !c->role[0]) return true;
    return (sam_role_bit(c->role) & roles) != 0;
}

/* ---- events.read -------------------------------------------------------------------------- */

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
static size_t s_read_reply(sam_service_t *svc, MDB_txn *txn, s_request_t *r)
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
    free(r->reply.body);
    r->reply.body = buf;
    r->reply.body_len = len;
    r->reply.code = SAM_OK;
    return count;
}

/*  The one translation point (Mosquitto's handle__packet tail): what a handler of `row`
    returned (sam_service.h) into its reply. A refusal without a code becomes 500 for a
    query, 422 for an event; a store error is logged and answered 500 with its reason. */
static void s_outcome(sam_service_t *svc, const sam_row_t *row, uint64_t id, int rc,
                      sam_reply_t *reply)
{
    bool event = row->kind == SAM_KIND_EVENT;
    if (rc == 0) return;
    if (rc == -1) {
        if (reply->code == SAM_OK || reply->code == 0) {
            if (event)
                sam_reply_error(reply, SAM_UNPROCESSABLE, "refused by %s", svc->def->name);
            else
                sam_reply_error(reply, SAM_INTERNAL, "%s failed", row->name);
        }
        return;
    }
    sam_error("store.failed req=%" PRIu64 " %s=%s error=\"%s\"", id, event ? "type" : "method",
              sam_logv(row->name), sam_store_strerror(rc));
    sam_reply_error(reply, SAM_INTERNAL, "store failed: %s", sam_store_strerror(rc));
}

/* Calls a query's handler; true when it asks to wait (wait_ms, no body, no error). */
static bool s_query_call(sam_service_t *svc, s_request_t *r, MDB_txn *txn)
{
    sam_call_t call = {
        .id = r->req->id,
        .method = r->req->method,
        .msg = r->msg,
        .body = r->row->request ? NULL : r->req->body.data,
        .body_len = r->row->request ? 0 : r->req->body.len,
        .caller = s_caller(svc, r),
    };
    free(r->reply.body);
    memset(&r->reply, 0, sizeof r->reply);
    r->reply.code = SAM_OK;
    s_outcome(svc, r->row, r->req->id, r->row->query(svc, txn, &call, &r->reply), &r->reply);
    return r->reply.code == SAM_OK && !r->reply.body && r->reply.wait_ms > 0;
}

/* A parked query: true while it still waits. */
static bool s_query_again(sam_service_t *svc, s_request_t *r, MDB_txn *txn, int64_t now)
{
    return s_query_call(svc, r, txn) && now < r->deadline;
}

/* Answers the parked long polls that have news or whose wait is over. */
static void s_serve_waiters(sam_service_t *svc, int64_t now)
{
    if (!svc->waiters) return;
    MDB_txn *txn;
    if (sam_store_begin(svc->store, NULL, false, &txn) != 0) return;
    uint64_t last = sam_service_last_seq(svc, txn);
    s_request_t **link = &svc->waiters;
    while (*link) {
        s_request_t *w = *link;
        if (w->row->kind == SAM_KIND_QUERY) {
            if (s_query_again(svc, w, txn, now)) {
                link = &w->next;
                continue;
            }
            *link = w->next;
            s_send_reply(svc, w);
            s_request_destroy(&w);
        } else if (last > w->after_seq || now >= w->deadline) {
            *link = w->next;
            s_read_reply(svc, txn, w);
            s_send_reply(svc, w);
            s_request_destroy(&w);
        } else {
            link = &w->next;
        }
    }
    mdb_txn_abort(txn);
}

/* events.read: answer now when there is something, else park until there is or wait_ms. */
static int s_builtin_read(sam_service_t *svc, s_request_t *r, MDB_txn *rtxn, int64_t now)
{
    const Samordna__V1__ReadRequest *rr = (const Samordna__V1__ReadRequest *)r->msg;
    r->after_seq = rr->after_seq;
    r->max = rr->max == 0 ? 100 : rr->max > 1000 ? 1000 : rr->max;
    uint32_t wait = rr->wait_ms > 30000 ? 30000 : rr->wait_ms;
    size_t n = s_read_reply(svc, rtxn, r);
    if (n > 0 || wait == 0 || r->reply.code != SAM_OK) return 0;
    r->deadline = now + wait;
    r->next = svc->waiters;
    svc->waiters = r;
    return 1; /* parked: the caller must not free it */
}

/* ---- the write path ----------------------------------------------------------------------- */

/*  Checks an events.publish before the transaction: the envelope's attributes, the type's
    row, role and source, then the payload as the row says (size, type, text rule). Its
    PublishRequest is decoded already (the method's row). */
static void s_publish_check(sam_service_t *svc, s_request_t *r, int64_t wall_ms)
{
    sam_reply_t *rep = &r->reply;
    r->done = true;
    const Samordna__V1__PublishRequest *pub = (const Samordna__V1__PublishRequest *)r->msg;
    if (!pub->event) {
        sam_reply_error(rep, SAM_BAD_REQUEST,
                        "undecodable samordna.v1.PublishRequest (no CloudEvent in field 1)");
        return;
    }
    const Io__Cloudevents__V1__CloudEvent *ce = pub->event;
    const char *subject = sam_event_attr(ce, "subject"), *why;
    if ((why = sam_check_line_why(ce->id)))
        sam_reply_error(rep, SAM_BAD_REQUEST, "event.id: %s", why);
    else if ((why = sam_check_line_why(ce->source)))
        sam_reply_error(rep, SAM_BAD_REQUEST, "event.source: %s", why);
    else if ((why = sam_check_line_why(ce->type)))
        sam_reply_error(rep, SAM_BAD_REQUEST, "event.type: %s", why);
    else if (subject && (why = sam_check_line_why(subject)))
        sam_reply_error(rep, SAM_BAD_REQUEST, "event.subject: %s", why);
    else if (!ce->id[0] || strlen(ce->id) > 256)
        sam_reply_error(rep, SAM_BAD_REQUEST, "event.id: required, at most 256 characters");
    else if (!ce->source[0] || strlen(ce->source) > 256)
        sam_reply_error(rep, SAM_BAD_REQUEST, "event.source: required, at most 256 characters");
    else if (strcmp(ce->spec_version, "1.0") != 0)
        sam_reply_error(rep, SAM_BAD_REQUEST, "event.spec_version: must be \"1.0\", not \"%s\"",
                        ce->spec_version);
    else if (!(r->erow = s_find(svc->events, svc->n_events, ce->type)))
        sam_reply_error(rep, SAM_NOT_IMPLEMENTED, "event.type: '%s' is not a %s event type",
                        ce->type, svc->def->name);
    else {
        const Samordna__V1__Caller *c = s_caller(svc, r);
        if (!s_role_ok(svc, c, r->erow->roles))
            sam_reply_error(rep, SAM_FORBIDDEN, "role '%s' may not publish %s",
                            c->role[0] ? c->role : "(none)", ce->type);
        else if ((!c->insecure || !svc->insecure) && sam_role_bit(c->role) == SAM_ROLE_PUBLISHER &&
                 strcmp(c->agency, ce->source) != 0)
            sam_reply_error(rep, SAM_FORBIDDEN,
                            "event.source: agency '%s' may publish only as itself, not as '%s'",
                            c->agency, ce->source);
        else
            r->done = false;
    }
    if (r->done) return;
    r->ev.ce = ce;
    r->ev.caller = s_caller(svc, r);
    r->ev.now_ms = wall_ms;
    const uint8_t *data = NULL;
    size_t len = 0;
    if (ce->data_case == IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_BINARY_DATA) {
        data = ce->binary_data.data;
        len = ce->binary_data.len;
    } else if (ce->data_case == IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_PROTO_DATA &&
               ce->proto_data) {
        data = ce->proto_data->value.data;
        len = ce->proto_data->value.len;
    }
    /* The payload, as the event type's row says: size, message type, text rule. A refusal
       here waits in r->late for the duplicate check (s_apply_one): a repeated (source, id)
       is answered with its original sequence number whatever its payload says. */
    const sam_row_t *row = r->erow;
    size_t limit = row->limit ? row->limit : svc->max_event_bytes;
    if (!row->request) { /* not a message: the handler gets the bytes */
        r->ev.data = data;
        r->ev.data_len = len;
    }
    if (len > limit) {
        sam_reply_error(&r->late, SAM_TOO_LARGE, "data: %zu bytes, over the limit of %zu for %s",
                        len, limit, row->name);
    } else if (row->request) {
        int d = data ? s_decode(row->request, data, len, "data", &r->payload, &r->late) : -2;
        if (d == -2)
            sam_reply_error(&r->late, SAM_BAD_REQUEST, "event %s: data is %s, expected a packed %s",
                            ce->type, data ? "undecodable" : "missing", row->request->name);
        r->ev.msg = r->payload;
    }
}

/* Dedup key: source \0 id. */
static size_t s_dedup_key(const Io__Cloudevents__V1__CloudEvent *ce, uint8_t *key, size_t cap)
{
    size_t s = strlen(ce->source), i = strlen(ce->id);
    if (s + 1 + i > cap) return 0;
    memcpy(key, ce->source, s);
    key[s] = 0;
    memcpy(key + s + 1, ce->id, i);
    return s + 1 + i;
}

/*  Applies one checked event inside the batch transaction `txn`, directly or (nested) in a
    child transaction of its own. Returns 0 when applied or a duplicate, -1 when refused
    (reply set; with `nested` nothing of it remains, without it the caller must abort txn),
    or an LMDB error that dooms the whole batch. */
static int s_apply_one(sam_service_t *svc, MDB_txn *txn, s_request_t *r, uint64_t *last,
                       bool nested)
{
    const Io__Cloudevents__V1__CloudEvent *ce = r->ev.ce;
    uint8_t key[520];
    size_t klen = s_dedup_key(ce, key, sizeof key);
    Samordna__V1__DedupRecord *dup = NULL;
    int rc = sam_store_get_msg(txn, svc->dedup, key, klen, &samordna__v1__dedup_record__descriptor,
                               (ProtobufCMessage **)&dup);
    if (rc == 0) {
        r->seq = dup->seq;
        r->duplicate = true;
        samordna__v1__dedup_record__free_unpacked(dup, NULL);
        return 0;
    }
    if (rc != MDB_NOTFOUND) return rc;
    if (r->late.code) /* the payload its row refused: a refusal, as if apply had made it */
        return sam_reply_error(&r->reply, r->late.code, "%s", r->late.message);
    MDB_txn *work = txn;
    if (nested && (rc = sam_store_begin(svc->store, txn, true, &work))) return rc;
    r->ev.seq = *last + 1;
    int arc = r->erow->apply(svc, work, &r->ev, &r->reply);
    if (arc != 0) {
        if (nested) mdb_txn_abort(work);
        s_outcome(svc, r->erow, r->req->id, arc, &r->reply);
        return -1;
    }
    /* The handler's reply body is not sent for events: the answer is the PublishReply. */
    Samordna__V1__StoredEvent stored = SAMORDNA__V1__STORED_EVENT__INIT;
    stored.seq = r->ev.seq;
    stored.event = (Io__Cloudevents__V1__CloudEvent *)ce;
    stored.caller = (Samordna__V1__Caller *)r->ev.caller;
    stored.recorded_ms = r->ev.now_ms;
    uint8_t seqkey[8];
    sam_be64_put(seqkey, r->ev.seq);
    Samordna__V1__DedupRecord rec = SAMORDNA__V1__DEDUP_RECORD__INIT;
    rec.seq = r->ev.seq;
    if ((rc = sam_store_put_msg(work, svc->outbox, seqkey, 8, &stored.base, MDB_APPEND)) ||
        (rc = sam_store_put_msg(work, svc->dedup, key, klen, &rec.base, 0))) {
        if (nested) mdb_txn_abort(work);
        return rc;
    }
    if (nested && (rc = mdb_txn_commit(work))) return rc; /* commit frees it even on failure */
    *last = r->ev.seq;
    r->seq = r->ev.seq;
    sam_debug("event.applied type=%s source=%s id=%s seq=%" PRIu64, sam_logv(ce->type),
              sam_logv(ce->source), sam_logv(ce->id), r->seq);
    return 0;
}

/*  One pass over the batch in one write transaction. Returns 0 (committed), 1 when a
    refusal in a pass without nesting means the batch must be run again nested, or an
    LMDB error (nothing committed). */
static int s_write_pass(sam_service_t *svc, s_request_t **pubs, size_t n, bool nested)
{
    MDB_txn *txn = NULL;
    int rc = sam_store_begin(svc->store, NULL, true, &txn);
    if (rc) return rc;
    uint64_t last = sam_service_last_seq(svc, txn);
    for (size_t i = 0; i < n && rc == 0; i++) {
        s_request_t *r = pubs[i];
        if (r->done) continue;
        r->seq = 0;
        r->duplicate = false;
        int a = s_apply_one(svc, txn, r, &last, nested);
        if (a == -1 && !nested)
            rc = 1; /* undo the whole pass, then go event by event */
        else if (a != 0 && a != -1)
            rc = a; /* a store error: the batch fails whole */
    }
    if (rc == 0) return mdb_txn_commit(txn);
    mdb_txn_abort(txn);
    if (rc == 1)
        for (size_t i = 0; i < n; i++) /* the refusal is found again in the nested pass */
            if (!pubs[i]->done) pubs[i]->reply.code = 0;
    return rc;
}

/*  All publishes of a batch: one write transaction, one sync, then the replies.
    The first pass applies every event straight into the batch transaction: a child
    transaction per event costs LMDB a dirty-page list each, and almost every event is
    accepted. When one is refused, the pass is undone whole and the batch runs again with a
    child transaction per event, so the refusal leaves nothing behind and the rest commit. */
static void s_write_batch(sam_service_t *svc, s_request_t **pubs, size_t n)
{
    /* Cross-service checks happen before the transaction: nothing slow holds the writer. */
    for (size_t i = 0; i < n; i++) {
        s_request_t *r = pubs[i];
        bool run = !r->done && !r->late.code && r->erow->prepare;
        int prc = run ? r->erow->prepare(svc, &r->ev, &r->reply) : 0;
        if (prc != 0) {
            r->done = true;
            s_outcome(svc, r->erow, r->req->id, prc, &r->reply);
        }
    }
    int rc = s_write_pass(svc, pubs, n, false);
    if (rc == 1) rc = s_write_pass(svc, pubs, n, true);
    svc->n_batches++;
    for (size_t i = 0; i < n; i++) {
        s_request_t *r = pubs[i];
        if (rc != 0 && !r->done) {
            sam_reply_error(&r->reply, SAM_INTERNAL, "store write failed, nothing stored: %s",
                            sam_store_strerror(rc));
        } else if (!r->done && r->reply.code != SAM_OK && r->reply.code != 0) {
            svc->n_refused++; /* refused in apply: reply already set */
        } else if (!r->done) {
            Samordna__V1__PublishReply pr = SAMORDNA__V1__PUBLISH_REPLY__INIT;
            pr.seq = r->seq;
            pr.duplicate = r->duplicate;
            if (r->duplicate)
                svc->n_duplicates++;
            else
                svc->n_applied++;
            sam_reply_message(&r->reply, &pr.base);
        }
        s_send_reply(svc, r);
    }
    if (rc != 0) sam_error("batch.failed events=%zu reason=\"%s\"", n, sam_store_strerror(rc));
}

/* ---- dispatch ----------------------------------------------------------------------------- */

/* ping: the service, this instance, the version and the outbox head. */
static int s_builtin_ping(sam_service_t *svc, s_request_t *r, MDB_txn *rtxn, int64_t now)
{
    (void)now;
    Samordna__V1__PingReply pr = SAMORDNA__V1__PING_REPLY__INIT;
    pr.service = (char *)svc->def->name;
    pr.instance = svc->instance;
    pr.version = SAMORDNA_VERSION;
    pr.last_seq = sam_service_last_seq(svc, rtxn);
    sam_reply_message(&r->reply, &pr.base);
    return 0;
}

/* events.publish: checked now, applied with the batch's other publishes in one write
   transaction (s_write_batch), which answers it. */
static int s_builtin_publish(sam_service_t *svc, s_request_t *r, MDB_txn *rtxn, int64_t now)
{
    (void)rtxn;
    (void)now;
    s_publish_check(svc, r, svc->batch_ms);
    svc->pubs[svc->npubs++] = r;
    return 1;
}

static size_t s_row_limit(const sam_service_t *svc, const sam_row_t *row)
{
    if (row->limit) return row->limit;
    return row->kind == SAM_KIND_EVENT ? svc->max_event_bytes : svc->max_body;
}

/* service.describe: the table, as the runtime checks against it. */
static int s_builtin_describe(sam_service_t *svc, s_request_t *r, MDB_txn *rtxn, int64_t now)
{
    (void)rtxn;
    (void)now;
    size_t nroles = sizeof s_role_names / sizeof s_role_names[0]; /* role names per row, at most */
    Samordna__V1__MethodDescription *m = calloc(svc->n_all ? svc->n_all : 1, sizeof *m);
    Samordna__V1__MethodDescription **mp = calloc(svc->n_all ? svc->n_all : 1, sizeof *mp);
    char **roles = calloc(svc->n_all * nroles + 1, sizeof *roles);
    if (!m || !mp || !roles) {
        sam_reply_error(&r->reply, SAM_INTERNAL, "out of memory");
    } else {
        for (size_t i = 0; i < svc->n_all; i++) {
            const sam_row_t *row = svc->all[i];
            samordna__v1__method_description__init(&m[i]);
            m[i].name = (char *)row->name;
            m[i].kind = row->kind == SAM_KIND_QUERY ? SAMORDNA__V1__METHOD_KIND__METHOD_KIND_QUERY
                        : row->kind == SAM_KIND_EVENT
                            ? SAMORDNA__V1__METHOD_KIND__METHOD_KIND_EVENT
                            : SAMORDNA__V1__METHOD_KIND__METHOD_KIND_BUILTIN;
            m[i].request = (char *)(row->request ? row->request->name : "");
            m[i].reply = (char *)(row->reply ? row->reply->name : "");
            m[i].roles = roles + i * nroles;
            for (unsigned bit = 1; bit <= SAM_ROLE_ANYONE; bit <<= 1)
                if ((row->roles & bit) && sam_role_name(bit))
                    m[i].roles[m[i].n_roles++] = (char *)sam_role_name(bit);
            m[i].writes = row->writes;
            m[i].limit = s_row_limit(svc, row);
            mp[i] = &m[i];
        }
        Samordna__V1__ServiceDescription d = SAMORDNA__V1__SERVICE_DESCRIPTION__INIT;
        d.service = (char *)svc->def->name;
        d.n_methods = svc->n_all;
        d.methods = mp;
        sam_reply_message(&r->reply, &d.base);
    }
    free(roles);
    free(mp);
    free(m);
    return 0;
}

/* ---- the table ------------------------------------------------------------------------------ */

static const sam_row_t s_builtins[] = {
#define B(method, request_type, reply_type, who, changes, fn)                                      \
    {.name = (method),                                                                             \
     .kind = SAM_KIND_BUILTIN,                                                                     \
     .request = (request_type),                                                                    \
     .reply = (reply_type),                                                                        \
     .roles = (who),                                                                               \
     .writes = (changes),                                                                          \
     .builtin = (fn)},
#include "sam_builtin.def"
#undef B
};

static int s_row_cmp(const void *a, const void *b)
{
    return strcmp((*(const sam_row_t *const *)a)->name, (*(const sam_row_t *const *)b)->name);
}

static int s_name_cmp(const void *key, const void *elem)
{
    return strcmp((const char *)key, (*(const sam_row_t *const *)elem)->name);
}

/* The row named `name` among n rows sorted by name, or NULL. */
static const sam_row_t *s_find(const sam_row_t *const *rows, size_t n, const char *name)
{
    const sam_row_t *const *at = n ? bsearch(name, rows, n, sizeof *rows, s_name_cmp) : NULL;
    return at ? *at : NULL;
}

/* Why a row cannot be served, or NULL when it can. */
static const char *s_row_why(const sam_row_t *row, bool builtin)
{
    if (!row->name || !row->name[0]) return "no name";
    if (!row->roles) return "no roles: name who may call it";
    switch (row->kind) {
    case SAM_KIND_QUERY:
        return builtin ? "a built-in row of a query" : row->query ? NULL : "no handler";
    case SAM_KIND_EVENT:
        return builtin ? "a built-in row of an event" : row->apply ? NULL : "no apply";
    case SAM_KIND_BUILTIN:
        return !builtin ? "built-in rows are the runtime's" : row->builtin ? NULL : "no function";
    }
    return "no kind";
}

/*  The service's table: its rows then the built-ins, and the sorted lookup arrays. Returns
    0, or -1 (logged) when a row is malformed or a name is there twice. */
static int s_table_build(sam_service_t *svc)
{
    size_t nb = sizeof s_builtins / sizeof s_builtins[0], n = svc->def->n_rows + nb;
    svc->all = calloc(n, sizeof *svc->all);
    svc->methods = calloc(n, sizeof *svc->methods);
    svc->events = calloc(n, sizeof *svc->events);
    if (!svc->all || !svc->methods || !svc->events) return -1;
    for (size_t i = 0; i < n; i++) {
        bool builtin = i >= svc->def->n_rows;
        const sam_row_t *row = builtin ? &s_builtins[i - svc->def->n_rows] : &svc->def->rows[i];
        const char *why = s_row_why(row, builtin);
        if (why) {
            sam_error("service.table_invalid row=%zu name=%s reason=\"%s\"", i,
                      sam_logv(row->name ? row->name : ""), why);
            return -1;
        }
        svc->all[svc->n_all++] = row;
        if (row->kind == SAM_KIND_EVENT)
            svc->events[svc->n_events++] = row;
        else
            svc->methods[svc->n_methods++] = row;
    }
    qsort(svc->methods, svc->n_methods, sizeof *svc->methods, s_row_cmp);
    qsort(svc->events, svc->n_events, sizeof *svc->events, s_row_cmp);
    for (int pass = 0; pass < 2; pass++) {
        const sam_row_t **rows = pass ? svc->events : svc->methods;
        size_t count = pass ? svc->n_events : svc->n_methods;
        for (size_t i = 1; i < count; i++)
            if (strcmp(rows[i - 1]->name, rows[i]->name) == 0) {
                sam_error("service.table_invalid name=%s reason=\"two rows of that name\"",
                          sam_logv(rows[i]->name));
                return -1;
            }
    }
    return 0;
}

/*  Redis's processCommand: everything the method's row decides, before any handler runs,
    through one reject path: the row (501), the caller's role (403), the body's size (413),
    its decoding into the row's request type with the text rule on every string (400).
    Returns the row with r->msg decoded, or NULL with the refusal in r->reply. */
static const sam_row_t *s_admit(sam_service_t *svc, s_request_t *r)
{
    const char *method = r->req->method;
    const Samordna__V1__Caller *c = s_caller(svc, r);
    const sam_row_t *row = s_find(svc->methods, svc->n_methods, method);
    size_t len = r->req->body.len;
    if (!row) {
        sam_reply_error(&r->reply, SAM_NOT_IMPLEMENTED, "%s has no method '%s'", svc->def->name,
                        method);
    } else if (!s_role_ok(svc, c, row->roles)) {
        sam_reply_error(&r->reply, SAM_FORBIDDEN, "role '%s' may not call %s",
                        c->role[0] ? c->role : "(none)", method);
    } else if (len > s_row_limit(svc, row)) {
        sam_reply_error(&r->reply, SAM_TOO_LARGE, "%s: a body of %zu bytes, over the limit of %zu",
                        method, len, s_row_limit(svc, row));
    } else if (row->request) {
        int d = s_decode(row->request, r->req->body.data, len, "", &r->msg, &r->reply);
        if (d == -2)
            sam_reply_error(&r->reply, SAM_BAD_REQUEST, "undecodable %s for %s", row->request->name,
                            method);
        return d == 0 ? row : NULL;
    } else {
        return row;
    }
    return NULL;
}

/*  A request from its parts: the client's routing id, the packed Caller (NULL when the
    broker sends none) and the body, a samordna.v1.Request. Undecodable ones are answered
    here and NULL returned. */
static s_request_t *s_request_new(sam_service_t *svc, int bi, const uint8_t *client,
                                  size_t client_len, const uint8_t *caller, size_t caller_len,
                                  const uint8_t *body, size_t body_len)
{
    s_broker_t *b = &svc->brokers[bi];
    s_request_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->broker = bi;
    r->generation = b->generation;
    r->client_len = client_len;
    memcpy(r->client, client, client_len);
    r->req = samordna__v1__request__unpack(NULL, body_len, body);
    if (caller) r->caller = samordna__v1__caller__unpack(NULL, caller_len, caller);
    if (!r->req) {
        sam_warn("request.malformed broker=%s reason=\"undecodable samordna.v1.Request\"",
                 b->endpoint);
        svc->n_bad++;
        sam_reply_error(&r->reply, SAM_BAD_REQUEST, "undecodable samordna.v1.Request envelope");
    } else if (caller && !r->caller) {
        sam_reply_error(&r->reply, SAM_BAD_REQUEST, "undecodable caller identity");
    } else {
        return r;
    }
    s_send_reply(svc, r);
    s_request_destroy(&r);
    return NULL;
}

/*  Parses one plain REQUEST into a request, or NULL (logged, or answered) when malformed.
    `part` holds the frames after the command: client "" [caller] body. */
static s_request_t *s_parse_request(sam_service_t *svc, int bi, zmq_msg_t *part, int nparts)
{
    s_broker_t *b = &svc->brokers[bi];
    int want = b->ext_identity ? 4 : 3;
    if (nparts != want || zmq_msg_size(&part[1]) != 0 || zmq_msg_size(&part[0]) == 0 ||
        zmq_msg_size(&part[0]) > sizeof((s_request_t *)0)->client) {
        sam_warn("request.malformed broker=%s reason=\"%d frames after the command, %d "
                 "expected\"",
                 b->endpoint, nparts, want);
        svc->n_bad++;
        return NULL;
    }
    zmq_msg_t *caller = b->ext_identity ? &part[2] : NULL;
    zmq_msg_t *body = &part[want - 1];
    return s_request_new(svc, bi, zmq_msg_data(&part[0]), zmq_msg_size(&part[0]),
                         caller ? zmq_msg_data(caller) : NULL, caller ? zmq_msg_size(caller) : 0,
                         zmq_msg_data(body), zmq_msg_size(body));
}

/*  REQUEST from a batch broker: one Batch frame after the command. Its requests go into
    out[0..room); returns how many. Items that do not fit (a broker over our credit) are
    answered 503 at once. */
static size_t s_parse_batch(sam_service_t *svc, int bi, zmq_msg_t *part, int nparts,
                            s_request_t **out, size_t room)
{
    s_broker_t *b = &svc->brokers[bi];
    if (nparts != 1) {
        sam_warn("request.malformed broker=%s reason=\"%d frames after the command, one Batch "
                 "expected\"",
                 b->endpoint, nparts);
        svc->n_bad++;
        return 0;
    }
    static const uint8_t none[1];
    sam_batch_reader_t reader;
    sam_batch_reader_init(&reader, zmq_msg_data(&part[0]), zmq_msg_size(&part[0]));
    sam_delivery_t item;
    size_t n = 0, over = 0;
    int rc;
    while ((rc = sam_batch_next(&reader, &item)) == 1) {
        if (item.client_len == 0 || item.client_len > sizeof((s_request_t *)0)->client) {
            sam_warn("request.malformed broker=%s reason=\"batch item without a client\"",
                     b->endpoint);
            svc->n_bad++;
            continue;
        }
        /* With identity every item has a Caller; an empty one decodes as no role at all. */
        const uint8_t *caller = b->ext_identity ? (item.caller ? item.caller : none) : NULL;
        s_request_t *r =
            s_request_new(svc, bi, item.client, item.client_len, caller, item.caller_len,
                          item.nbody ? item.body[0].data : none, item.nbody ? item.body[0].len : 0);
        if (!r) continue;
        if (item.nbody != 1)
            sam_reply_error(&r->reply, SAM_BAD_REQUEST, "%zu body frames, one expected",
                            item.nbody);
        else if (n == room)
            sam_reply_error(&r->reply, SAM_UNAVAILABLE,
                            "the broker sent more requests than this worker's credit");
        else {
            out[n++] = r;
            continue;
        }
        over += item.nbody == 1;
        svc->n_bad++;
        s_send_reply(svc, r);
        s_request_destroy(&r);
    }
    if (rc < 0) {
        sam_warn("request.malformed broker=%s reason=\"REQUEST batch that is not a "
                 "samordna.v1.Batch\"",
                 b->endpoint);
        svc->n_bad++;
    }
    if (over)
        sam_warn("request.refused broker=%s count=%zu reason=\"over the credit\"", b->endpoint,
                 over);
    return n;
}

/*  Runs an admitted request's row: a query's handler, or a built-in. Returns true when the
    request was taken over (parked as a long poll, or queued for the write transaction),
    false when its reply is ready to send. */
static bool s_run(sam_service_t *svc, s_request_t *r, MDB_txn *rtxn, int64_t now)
{
    if (r->row->kind == SAM_KIND_BUILTIN) return r->row->builtin(svc, r, rtxn, now) == 1;
    if (!s_query_call(svc, r, rtxn)) return false;
    uint32_t wait = r->reply.wait_ms > 30000 ? 30000 : r->reply.wait_ms; /* a long poll */
    r->deadline = now + wait;
    r->next = svc->waiters;
    svc->waiters = r;
    return true;
}

static void s_handle_batch(sam_service_t *svc, s_request_t **batch, size_t n, int64_t now)
{
    svc->npubs = 0;
    svc->batch_ms = sam_clock_now_ms(); /* the batch's time, stored with its events */
    MDB_txn *rtxn = NULL;
    if (sam_store_begin(svc->store, NULL, false, &rtxn) != 0) rtxn = NULL;
    for (size_t i = 0; i < n; i++) {
        s_request_t *r = batch[i];
        svc->n_requests++;
        if (!rtxn)
            sam_reply_error(&r->reply, SAM_INTERNAL, "cannot open a read transaction");
        else if ((r->row = s_admit(svc, r)) && s_run(svc, r, rtxn, now)) {
            batch[i] = NULL; /* parked, or answered by the write batch */
            continue;
        }
        s_send_reply(svc, r);
    }
    if (rtxn) mdb_txn_abort(rtxn);
    size_t npubs = svc->npubs;
    if (npubs) s_write_batch(svc, svc->pubs, npubs);
    for (size_t i = 0; i < npubs; i++)
        s_request_destroy(&svc->pubs[i]);
    svc->npubs = 0;
    for (size_t i = 0; i < n; i++)
        s_request_destroy(&batch[i]);
    if (npubs) s_serve_waiters(svc, now);
}

#define S_MAX_PARTS 8 /* more frames than any 7/MDP command has: the rest are dropped */

/*  Everything a broker sends: part[0..n) = "" "MDPW01" command … (too_many: the message had
    more frames than were kept). Requests go into out[0..room); returns how many (none for a
    heartbeat, a disconnect or a malformed message, all handled here). The caller closes
    the parts. */
static size_t s_on_parts(sam_service_t *svc, int bi, zmq_msg_t *part, int n, bool too_many,
                         int64_t now, s_request_t **out, size_t room)
{
    s_broker_t *b = &svc->brokers[bi];
    if (too_many || n < 3 || zmq_msg_size(&part[0]) != 0 ||
        zmq_msg_size(&part[1]) != strlen(SAM_MDPW) ||
        memcmp(zmq_msg_data(&part[1]), SAM_MDPW, strlen(SAM_MDPW)) != 0 ||
        zmq_msg_size(&part[2]) != 1) {
        sam_warn("broker.malformed endpoint=%s frames=%d", b->endpoint, n);
        svc->n_bad++;
        return 0;
    }
    uint8_t command = *(uint8_t *)zmq_msg_data(&part[2]);
    switch (command) {
    case SAM_MDPW_REQUEST:
        if (b->ext_batch) return s_parse_batch(svc, bi, part + 3, n - 3, out, room);
        if (room == 0) return 0; /* cannot happen: the loop keeps room for one */
        return (out[0] = s_parse_request(svc, bi, part + 3, n - 3)) ? 1 : 0;
    case SAM_MDPW_HEARTBEAT:
        if (n > 3) {
            char ext[256];
            size_t len = zmq_msg_size(&part[3]);
            if (len >= sizeof ext) len = sizeof ext - 1;
            memcpy(ext, zmq_msg_data(&part[3]), len);
            ext[len] = '\0';
            s_broker_extensions(b, ext);
        }
        return 0;
    case SAM_MDPW_DISCONNECT: /* the parts stay valid below: they own their bytes */
        if (now - b->connected_at < 1000) {
            /* Sent away right after READY: the broker refuses us (our certificate is
               not a service's, or was revoked). Ask again, but less and less often. */
            sam_warn("broker.refused endpoint=%s (retrying in %d ms; is this service's "
                     "certificate trusted with role service?)",
                     b->endpoint, b->backoff_ms);
            zsock_destroy(&b->sock);
            b->generation++;
            b->reconnect_at = now + b->backoff_ms;
            b->backoff_ms = b->backoff_ms * 2 > 5000 ? 5000 : b->backoff_ms * 2;
        } else {
            sam_warn("broker.disconnect endpoint=%s (re-registering)", b->endpoint);
            s_broker_connect(svc, b, now);
        }
        return 0;
    default:
        sam_warn("broker.unknown_command endpoint=%s command=%d", b->endpoint, command);
        svc->n_bad++;
        return 0;
    }
}

/*  Reads one message from broker bi into zmq_msg_t parts on the stack (no allocation per
    frame on the hot path) and handles it; its requests go into out[0..room) and their
    number is returned. `flags` is ZMQ_DONTWAIT, or 0 to wait up to the socket's receive
    timeout (then *now_p is brought up to date). *got says whether anything came. */
static size_t s_receive(sam_service_t *svc, int bi, int64_t *now_p, int flags, bool *got,
                        s_request_t **out, size_t room)
{
    s_broker_t *b = &svc->brokers[bi];
    void *h = zsock_resolve(b->sock);
    zmq_msg_t part[S_MAX_PARTS];
    int n = 0;
    bool too_many = false;
    zmq_msg_init(&part[0]);
    int rc = zmq_msg_recv(&part[0], h, flags);
    if (!(flags & ZMQ_DONTWAIT)) *now_p = zclock_mono(); /* it may have waited */
    int64_t now = *now_p;
    if (rc < 0) {
        zmq_msg_close(&part[0]);
        *got = false;
        return 0;
    }
    *got = true;
    n = 1;
    bool more = zmq_msg_more(&part[0]);
    while (more) {
        zmq_msg_t extra;
        zmq_msg_t *into = n < S_MAX_PARTS ? &part[n] : &extra;
        zmq_msg_init(into);
        if (zmq_msg_recv(into, h, 0) < 0) {
            zmq_msg_close(into);
            break;
        }
        more = zmq_msg_more(into);
        if (into == &extra) { /* read to the end of the message, keep nothing more */
            too_many = true;
            zmq_msg_close(&extra);
        } else
            n++;
    }
    b->heard_at = now;
    if (!svc->sd_ready) { /* the store is open and a broker answers: ready (sd_notify) */
        svc->sd_ready = true;
        sd_notify(0, "READY=1");
    }
    size_t got_n = s_on_parts(svc, bi, part, n, too_many, now, out, room);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&part[i]);
    return got_n;
}

/* Heartbeats out, silent brokers reconnected with backoff. */
static void s_heartbeat(sam_service_t *svc, int64_t now)
{
    for (size_t i = 0; i < svc->nbrokers; i++) {
        s_broker_t *b = &svc->brokers[i];
        if (!b->sock) {
            if (now >= b->reconnect_at) s_broker_connect(svc, b, now);
            continue;
        }
        if (now - b->heard_at > (int64_t)svc->heartbeat_ms * svc->liveness) {
            sam_warn("broker.silent endpoint=%s after_ms=%" PRId64 " (reconnecting in %d ms)",
                     b->endpoint, now - b->heard_at, b->backoff_ms);
            zsock_destroy(&b->sock);
            b->generation++;
            b->reconnect_at = now + b->backoff_ms;
            b->backoff_ms = b->backoff_ms * 2 > 5000 ? 5000 : b->backoff_ms * 2;
            continue;
        }
        if (now - b->heard_at < svc->heartbeat_ms && now - b->connected_at > 1000)
            b->backoff_ms = 100;
        if (now >= b->hb_due) {
            s_broker_send(b, SAM_MDPW_HEARTBEAT, NULL);
            b->hb_due = now + svc->heartbeat_ms;
        }
    }
}

static volatile sig_atomic_t s_hup; /* SIGHUP arrived (the handler only sets it) */

static void s_on_hup(int sig)
{
    (void)sig;
    s_hup = 1;
}

/*  SIGHUP: what can change without a restart — the log level — is read again from the
    configuration file (a flag on the command line still wins), and the service's own
    reload hook runs; what was done is logged. */
static void s_reload(sam_service_t *svc)
{
    s_hup = 0;
    char program[64];
    snprintf(program, sizeof program, "samordna-%s", svc->def->name);
    sam_config_t *again = sam_config_new(program, "[options]", "", svc->options);
    if (again && sam_config_parse(again, svc->argc, svc->argv) == 0) {
        int level = sam_log_level_parse(sam_config_get(again, "log-level"));
        if (level >= 0) sam_log_threshold = (sam_log_level_t)level;
        sam_info("service.reloaded log_level=%s", sam_config_get(again, "log-level"));
    } else
        sam_warn("service.reload_failed reason=\"the configuration no longer reads; nothing "
                 "changed\"");
    sam_config_destroy(&again);
}

static void s_loop(sam_service_t *svc)
{
    s_request_t *batch[SAM_MDP_MAX_CREDIT];
    struct sigaction sa = {0};
    sa.sa_handler = s_on_hup;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
    while (!zsys_interrupted) {
        if (s_hup) s_reload(svc);
        int64_t now = zclock_mono();
        int64_t due = now + 1000;
        for (size_t i = 0; i < svc->nbrokers; i++) {
            s_broker_t *b = &svc->brokers[i];
            int64_t t = b->sock ? b->hb_due : b->reconnect_at;
            if (t < due) due = t;
        }
        if (svc->def->tick && svc->tick_due < due) due = svc->tick_due;
        if (svc->waiters && now + 20 < due) due = now + 20; /* another instance may commit */
        zmq_pollitem_t items[S_MAX_BROKERS];
        int map[S_MAX_BROKERS], nitems = 0;
        for (size_t i = 0; i < svc->nbrokers; i++)
            if (svc->brokers[i].sock) {
                items[nitems] =
                    (zmq_pollitem_t){zsock_resolve(svc->brokers[i].sock), 0, ZMQ_POLLIN, 0};
                map[nitems++] = (int)i;
            }
        long timeout = due > now ? (long)(due - now) : 0;
        bool more = true;
        int flags = ZMQ_DONTWAIT;
        if (nitems == 1) {
            /* One broker, the usual case: the first receive is libzmq's own blocking one,
               bounded by the timers. It sleeps on the socket's mailbox with fewer system
               calls per wake-up than zmq_poll. */
            int wait = (int)timeout;
            zmq_setsockopt(items[0].socket, ZMQ_RCVTIMEO, &wait, sizeof wait);
            flags = 0;
        } else {
            int rc = zmq_poll(items, nitems, timeout);
            if (rc < 0 && errno != EINTR) break;
            more = rc > 0;
            now = zclock_mono();
        }
        /* Drain everything that is there, up to the credit, into one batch. */
        size_t n = 0;
        while (more && n < (size_t)svc->credit) {
            more = false;
            for (int k = 0; k < nitems && n < (size_t)svc->credit; k++) {
                int bi = map[k];
                if (!svc->brokers[bi].sock) continue;
                /* A non-blocking receive says whether anything is waiting: asking
                   zsock_events first would cost a second trip into libzmq per message. */
                bool got;
                /* A broker never has more than our credit in flight, so one Batch holds no
                   more: the items past it are answered 503 (s_parse_batch). */
                size_t room = SAM_MDP_MAX_CREDIT - n;
                if (room > (size_t)svc->credit) room = (size_t)svc->credit;
                n += s_receive(svc, bi, &now, flags, &got, batch + n, room);
                flags = ZMQ_DONTWAIT;
                if (got) more = true;
            }
        }
        if (n) s_handle_batch(svc, batch, n, now);
        s_serve_waiters(svc, now);
        s_heartbeat(svc, now);
        if (svc->def->tick && now >= svc->tick_due) {
            svc->def->tick(svc);
            svc->tick_due = zclock_mono() + svc->def->tick_ms;
        }
        for (size_t i = 0; i < svc->nbrokers; i++)
            s_flush_replies(&svc->brokers[i]);
    }
}

/* ---- set-up and tear-down ----------------------------------------------------------------- */

static void s_destroy(sam_service_t *svc)
{
    while (svc->waiters) {
        s_request_t *w = svc->waiters;
        svc->waiters = w->next;
        s_request_destroy(&w);
    }
    for (size_t i = 0; i < svc->nbrokers; i++) {
        s_broker_t *b = &svc->brokers[i];
        s_flush_replies(b);
        sam_batch_free(&b->out);
        if (b->sock) s_broker_send(b, SAM_MDPW_DISCONNECT, NULL);
        zsock_destroy(&b->sock);
        free(b->endpoint);
    }
    sam_client_destroy(&svc->client);
    sam_store_destroy(&svc->store);
    sam_config_destroy(&svc->config);
    free(svc->options);
    free(svc->all);
    free(svc->methods);
    free(svc->events);
}

static int s_open_store(sam_service_t *svc)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", sam_config_get(svc->config, "data-dir"), svc->def->name);
    bool ok = true;
    sam_store_opts_t so = {0};
    so.map_size_mb = (size_t)sam_config_int(svc->config, "map-size-mb", 16, 1 << 24, &ok);
    so.nosync = sam_config_flag(svc->config, "nosync");
    if (!ok) return -1;
    char err[512];
    svc->store = sam_store_open(dir, svc->def->tables, &so, err, sizeof err);
    if (!svc->store) {
        sam_error("store.open_failed reason=\"%s\"", err);
        return -1;
    }
    svc->outbox = sam_store_dbi(svc->store, "outbox");
    svc->dedup = sam_store_dbi(svc->store, "dedup");
    MDB_txn *txn;
    int rc = sam_store_begin(svc->store, NULL, true, &txn);
    if (rc) {
        sam_error("store.open_failed reason=\"%s\"", sam_store_strerror(rc));
        return -1;
    }
    uint32_t have = sam_store_schema(svc->store, txn);
    if (have > svc->def->schema_version) {
        mdb_txn_abort(txn);
        sam_error("store.too_new dir=%s schema=%u understood=%u", dir, have,
                  svc->def->schema_version);
        return -1;
    }
    if (have < svc->def->schema_version) {
        if (svc->def->migrate) rc = svc->def->migrate(svc, txn, have);
        if (!rc) rc = sam_store_set_schema(svc->store, txn, svc->def->schema_version);
        if (!rc)
            sam_info("store.migrated dir=%s from=%u to=%u", dir, have, svc->def->schema_version);
    }
    if (!rc)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    if (rc) {
        sam_error("store.migration_failed dir=%s reason=\"%s\"", dir, sam_store_strerror(rc));
        return -1;
    }
    sam_info("store.open dir=%s schema=%u nosync=%s", dir, svc->def->schema_version,
             so.nosync ? "yes" : "no");
    return 0;
}

/* --insecure on anything but loopback would open the service to anyone. */
static bool s_loopback(const char *ep)
{
    return strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "inproc://", 9) == 0 ||
           strncmp(ep, "tcp://127.", 10) == 0 || strncmp(ep, "tcp://localhost:", 16) == 0 ||
           strncmp(ep, "tcp://[::1]:", 12) == 0;
}

const sam_service_def_t *sam_service_def(sam_service_t *svc)
{
    return svc->def;
}

uint32_t sam_service_feed(sam_service_t *svc, zmsg_t **msg_p)
{
    svc->last_code = 0;
    if (!svc->harness || !msg_p || !*msg_p) return 0;
    int64_t now = zclock_mono();
    zmq_msg_t part[S_MAX_PARTS];
    int n = 0;
    bool too_many = false;
    zframe_t *f;
    while ((f = zmsg_pop(*msg_p))) {
        if (n == S_MAX_PARTS)
            too_many = true;
        else if (zmq_msg_init_size(&part[n], zframe_size(f)) == 0) {
            if (zframe_size(f)) memcpy(zmq_msg_data(&part[n]), zframe_data(f), zframe_size(f));
            n++;
        }
        zframe_destroy(&f);
    }
    zmsg_destroy(msg_p);
    s_request_t *r = NULL;
    size_t got = s_on_parts(svc, 0, part, n, too_many, now, &r, 1);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&part[i]);
    if (got) s_handle_batch(svc, &r, 1, now);
    s_serve_waiters(svc, now + 60000); /* a parked long poll is answered, not kept */
    return svc->last_code;
}

int sam_service_main(const sam_service_def_t *def, void *ctx, int argc, char **argv)
{
    sam_service_t svc_s, *svc = &svc_s;
    memset(svc, 0, sizeof *svc);
    svc->def = def;
    svc->ctx = ctx;
    size_t nstd = sizeof s_std_options / sizeof s_std_options[0], nown = 0;
    while (def->options && def->options[nown].name)
        nown++;
    svc->options = calloc(nstd + nown + 1, sizeof *svc->options);
    if (!svc->options) return 1;
    memcpy(svc->options, s_std_options, sizeof s_std_options);
    if (nown) memcpy(svc->options + nstd, def->options, nown * sizeof *def->options);
    char program[64];
    snprintf(program, sizeof program, "samordna-%s", def->name);
    svc->config = sam_config_new(program, "[options]", def->summary, svc->options);
    int rc = svc->config ? sam_config_parse(svc->config, argc, argv) : -1;
    svc->argc = argc;
    svc->argv = argv;
    if (rc != 0) {
        s_destroy(svc);
        return rc == 1 ? 0 : 2;
    }
    bool ok = true;
    sam_log_init(def->name,
                 (sam_log_level_t)sam_log_level_parse(sam_config_get(svc->config, "log-level")));
    svc->insecure = sam_config_flag(svc->config, "insecure");
    svc->credit = (int)sam_config_int(svc->config, "credit", 1, SAM_MDP_MAX_CREDIT, &ok);
    svc->max_event_bytes =
        (size_t)sam_config_int(svc->config, "max-event-bytes", 1024, 16 << 20, &ok);
    svc->max_body = svc->max_event_bytes + 64;
    svc->heartbeat_ms = (int)sam_config_int(svc->config, "heartbeat-ms", 10, 600000, &ok);
    svc->liveness = (int)sam_config_int(svc->config, "liveness", 1, 100, &ok);
    svc->nbrokers = sam_config_count(svc->config, "broker");
    if (svc->nbrokers > S_MAX_BROKERS) {
        fprintf(stderr, "%s: at most %d brokers\n", program, S_MAX_BROKERS);
        ok = false;
    }
    for (size_t i = 0; ok && i < svc->nbrokers; i++) {
        const char *ep = sam_config_nth(svc->config, "broker", i);
        if (svc->insecure && !s_loopback(ep)) {
            fprintf(stderr, "%s: --insecure is refused for the non-loopback broker %s\n", program,
                    ep);
            ok = false;
        }
        svc->brokers[i].endpoint = strdup(ep);
        svc->brokers[i].backoff_ms = 100;
    }
    svc->cert = sam_config_get(svc->config, "cert");
    const char *server_key = sam_config_get(svc->config, "server-key");
    if (ok && svc->insecure && (svc->cert || server_key)) {
        fprintf(stderr, "%s: --insecure and --cert/--server-key exclude each other\n", program);
        ok = false;
    } else if (ok && !svc->insecure) {
        char err[512];
        if (!svc->cert || !server_key) {
            fprintf(stderr,
                    "%s: CURVE needs --cert (this service's secret certificate) and "
                    "--server-key (the broker's public key); --insecure runs without, on "
                    "loopback only\n",
                    program);
            ok = false;
        } else if (sam_keys_check_secret(svc->cert, err, sizeof err) != 0 ||
                   sam_keys_server_key(server_key, svc->server_key, err, sizeof err) != 0) {
            fprintf(stderr, "%s: %s\n", program, err);
            ok = false;
        }
    }
    const char *inst = sam_config_get(svc->config, "instance");
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    if (inst)
        snprintf(svc->instance, sizeof svc->instance, "%s", inst);
    else
        snprintf(svc->instance, sizeof svc->instance, "%s-%d", host, (int)getpid());
    if (!ok) {
        s_destroy(svc);
        return 2;
    }
    if (s_table_build(svc) != 0) {
        s_destroy(svc);
        return 1;
    }
    zsys_init();
    zsys_set_linger(0);
    rc = 1;
    svc->harness = s_harness != NULL;
    if (svc->harness && svc->nbrokers == 0) svc->nbrokers = 1;
    bool up = s_open_store(svc) == 0 && (!def->start || def->start(svc) == 0);
    if (up && svc->harness) {
        svc->brokers[0].generation = 1;
        svc->brokers[0].ext_identity = true;
        rc = s_harness(svc, s_harness_arg);
        if (def->stop) def->stop(svc);
    } else if (up) {
        int64_t now = zclock_mono();
        for (size_t i = 0; i < svc->nbrokers; i++)
            s_broker_connect(svc, &svc->brokers[i], now);
        svc->tick_due = now;
        sam_info("service.started instance=%s brokers=%zu credit=%d", svc->instance, svc->nbrokers,
                 svc->credit);
        s_loop(svc);
        sd_notify(0, "STOPPING=1");
        if (def->stop) def->stop(svc);
        sam_info("service.stopped requests=%" PRIu64 " applied=%" PRIu64 " refused=%" PRIu64
                 " duplicates=%" PRIu64 " batches=%" PRIu64 " malformed=%" PRIu64,
                 svc->n_requests, svc->n_applied, svc->n_refused, svc->n_duplicates, svc->n_batches,
                 svc->n_bad);
        rc = 0;
    }
    s_destroy(svc);
    return rc;
}
