/*  sam_service.h — the runtime every samordna service is built on.

    A service is a context struct plus a loop, and a table. The service declares, in one
    definition:
      - its table (services/<service>/<service>.def, see "The table" below): one row per
        method and per event type, naming its request and reply message types, who may call
        it, whether it writes, its size limit and its handler;
      - its LMDB tables, schema version and migration;
    and calls sam_service_main() from main(). The runtime does everything else: options and
    configuration, logging, the LMDB store, 7/MDP worker connections to one or more brokers
    with heartbeats and reconnection, the samordna extension (credit and caller identity),
    and, for every request, all that its row decides, in one place before the handler runs
    (unknown method 501, role 403, size 413, decoding into the row's message type and the
    text rule 400), so a handler gets the decoded message and does domain work only; what
    it returns becomes the answer in one place too (a store error: 500 with its reason).
    Its own rows (common/sam_builtin.def) are added to every service's table:

      ping              (no body → samordna.v1.PingReply)
      events.publish    (samordna.v1.PublishRequest → PublishReply)   the write path
      events.read       (samordna.v1.ReadRequest → ReadReply)         outbox long poll
      service.describe  (no body → samordna.v1.ServiceDescription)    the table itself

    The write path (ARCHITECTURE.md, "Writes are events"): the runtime takes every request the
    broker has in flight for it (up to its credit). For each events.publish it first finds
    the event type's row (unknown type → 501), checks the caller's role and that a
    publisher's event `source` is the publisher's own agency (403), checks the payload's size
    and decodes it as the row's payload type (413, 400: answered after step 1 below), and
    runs the row's prepare hook. Then it applies all publishes of the batch in ONE LMDB write
    transaction: per event, in a nested transaction, it
      1. answers a retry of a stored (source, id) — the same type, subject and data — with
         the original sequence number, and refuses a reuse of it for other content 409;
      2. refuses a payload its row refused, or calls apply(); a refusal (-1, or a store error)
         undoes that event's writes and nothing else (the batch is retried with a nested
         transaction per event, see sam_apply_fn);
      3. appends the event to the outbox under the next sequence number and records (source,id);
    then commits once (synced unless --nosync), and only then replies to every request of the
    batch. A failed commit answers every event of the batch 500; nothing is acknowledged that
    is not durable.

    Two instances may share one environment: the next sequence number is read from the outbox
    inside each write transaction, never cached.
*/
#ifndef SAM_SERVICE_H
#define SAM_SERVICE_H

#include "sam_clock.h"
#include "sam_config.h"
#include "sam_log.h"
#include "sam_status.h"
#include "sam_metrics.h"
#include "sam_store.h"

#include "cloudevents/v1/cloudevents.pb-c.h"
#include "samordna/v1/envelope.pb-c.h"
#include "samordna/v1/events.pb-c.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct sam_service_t sam_service_t;
typedef struct sam_client_t sam_client_t;

/* Roles, as named in a certificate's metadata. A row's `roles` is a mask of these. */
enum {
    SAM_ROLE_ADMIN = 1u << 0,
    SAM_ROLE_PUBLISHER = 1u << 1,
    SAM_ROLE_READER = 1u << 2,
    SAM_ROLE_SERVICE = 1u << 3,
    /* Not a role: the row asks for none, so a caller without one passes too (ping, which
       liveness probes call, and events.publish, whose event rows check their own roles). */
    SAM_ROLE_ANYONE = 1u << 4,
};
#define SAM_ROLES_ANY (SAM_ROLE_ADMIN | SAM_ROLE_PUBLISHER | SAM_ROLE_READER | SAM_ROLE_SERVICE)
#define SAM_ROLES_WRITE (SAM_ROLE_ADMIN | SAM_ROLE_PUBLISHER | SAM_ROLE_SERVICE)

/* The role bit of a role name, 0 when unknown. */
unsigned sam_role_bit(const char *role);

/* The name of one role bit ("admin", …, "anyone"), NULL when it is none of them. */
const char *sam_role_name(unsigned bit);

/*  One request as a handler sees it. Everything is borrowed for the handler call only: the
    runtime owns it and frees it after the handler has returned (after the last call, for a
    long poll that is called again). */
typedef struct {
    uint64_t id;        /* the client's correlation id */
    const char *method; /* "registry.agencies.list" */
    /* The body decoded as the row's request type, text rule applied (cast it to that type);
       NULL when the row names no request type. */
    const ProtobufCMessage *msg;
    /* The body as it came, only for a row that names no request type (a body that is not a
       message: echo); NULL and 0 otherwise. */
    const uint8_t *body;
    size_t body_len;
    const Samordna__V1__Caller *caller; /* never NULL */
} sam_call_t;

/* What a handler answers. The runtime owns `body` and frees it after sending. */
typedef struct {
    uint32_t code;     /* SAM_OK unless set otherwise */
    char message[512]; /* human reason; names the field on refusals */
    uint8_t *body;     /* packed reply message (malloc'd), or NULL */
    size_t body_len;
    /* A query's long poll: a handler that has nothing to answer yet may set wait_ms (at most
       30000) and return 0 with no body; the runtime then parks the request and calls the
       handler again, on a fresh read transaction, whenever the service may have news (after
       each write batch and loop turn, at least every 20 ms) until it answers with a body or
       an error, or the wait is over — then the last answer goes out as it is. */
    uint32_t wait_ms;
} sam_reply_t;

/* Sets an error status and message. Returns -1, so a handler can `return sam_reply_error(…)`. */
int sam_reply_error(sam_reply_t *reply, uint32_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Packs msg as the reply body with status 200. Returns 0, or -1 (500) when out of memory. */
int sam_reply_message(sam_reply_t *reply, const ProtobufCMessage *msg);

/*  What every handler returns, and the one place it becomes an answer (rt_outcome, in
    sam_service_table.c):
      0            done; the reply is what the handler set (a body, or a long poll's wait)
      -1           refused; the handler set the code and message (sam_reply_error), else
                   the runtime answers 500 for a query, 422 for an event
      other        a store error (an LMDB code or SAM_STORE_*): the runtime logs it and
                   answers 500 "store failed: <sam_store_strerror>"; for an event that is a
                   refusal like -1, and everything the event wrote is undone. */

/* A query: answered from a read transaction; must not write into it. */
typedef int (*sam_query_fn)(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                            sam_reply_t *reply);

/* An event on its way into the store. Borrowed for the prepare and apply calls only. */
typedef struct {
    const Io__Cloudevents__V1__CloudEvent *ce;
    /* The payload decoded as the row's payload type, text rule applied (cast it to that
       type); NULL when the row names no payload type. */
    const ProtobufCMessage *msg;
    /* The payload as it came (binary_data, or proto_data's value), only for a row that names
       no payload type; NULL and 0 otherwise. */
    const uint8_t *data;
    size_t data_len;
    const Samordna__V1__Caller *caller;
    uint64_t seq;   /* the sequence number it will be stored under (apply only) */
    int64_t now_ms; /* wall clock of the batch, ms since the epoch */
    /* A standby applying its primary's record (docs/scaling.md, "Across hosts"): the primary
       accepted it. A check against another service's facts as this instance's projection
       holds them may refuse it only while the projection LACKS a fact (the page is asked
       again once it has caught up); a check that a later fact turns from "accept" into
       "refuse" — a municipality merged since — must not refuse on a replay, or the standby
       would stall for good on what its primary rightly took. */
    bool replay;
} sam_event_t;

/* Validates the event against the current state and applies it to the service's tables in
   `txn`. On a refusal or a store error the runtime undoes everything the call wrote, so a
   refusal never leaves a partial write. The runtime first applies a batch straight into one
   transaction and, when an event is refused, undoes the batch and applies it again with a
   nested transaction per event: so apply may run more than once for one event and must
   change nothing outside txn. */
typedef int (*sam_apply_fn)(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                            sam_reply_t *reply);

/* Optional check before the write transaction opens, where a service may ask another
   service over the broker (e.g. "does this pilot exist?"). */
typedef int (*sam_prepare_fn)(sam_service_t *svc, const sam_event_t *ev, sam_reply_t *reply);

/*  ---- The table ----------------------------------------------------------------------------

    A service is its table: one row per method and per event type. The rows are written in
    services/<service>/<service>.def, one line each, and expanded with the SAM_ROW_* macros
    below; the runtime adds the built-in rows of common/sam_builtin.def (ping, events.publish,
    events.read, service.describe) to every service's and refuses to start when a name is
    there twice. Before any handler runs, the runtime does everything a row decides, in this
    order, through one reject path:
      no row for the method or the event type                                   501
      the caller's role is not in `roles`                                       403
      the body (for an event: its payload) is over `limit`                      413
      the body is not a packed `request` message                                400
      a string field at any depth breaks the text rule (sam_check.h)            400
    and gives the handler the decoded message (sam_call_t.msg, sam_event_t.msg). Afterwards
    it turns the handler's result into the answer in one place (see above). service.describe
    answers the table itself.

    Lifetime: rows are static data of the program; the runtime keeps pointers to them and
    to their descriptors for as long as the service runs. */
typedef enum {
    SAM_KIND_QUERY = 1, /* a method answered by `query` from a read transaction */
    SAM_KIND_EVENT,     /* a CloudEvents type, published with events.publish, run by `apply` */
    SAM_KIND_BUILTIN,   /* a method of the runtime itself (common/sam_builtin.def) */
} sam_kind_t;

/*  A request as the runtime holds it (opaque): only the built-in rows' functions see it,
    inside the runtime (common/sam_service_int.h). */
typedef struct sam_request_t sam_request_t;

/*  A built-in method: answers r now (returns 0, reply set in r), or takes r over (returns 1:
    parked as a long poll, or queued for the batch's write transaction). */
typedef int (*sam_builtin_fn)(sam_service_t *svc, sam_request_t *r, MDB_txn *rtxn, int64_t now);

typedef struct {
    /* the method ("registry.agencies.get"), or the exact CloudEvents type of an event
       ("no.samordna.registry.agency.registered") */
    const char *name;
    sam_kind_t kind;
    /* The message a query's or built-in's body is decoded as; for an event, its payload's.
       NULL: the row takes no message (any body is passed as bytes, checked for size only). */
    const ProtobufCMessageDescriptor *request;
    /* The message a 200 answers with; NULL for an event (events.publish answers its
       PublishReply) and for a row whose answer is not a message (echo). */
    const ProtobufCMessageDescriptor *reply;
    unsigned roles; /* SAM_ROLE_* mask of who may call it (an event: publish it); not 0 */
    bool writes;    /* it changes the store: every event, and a query that opens a write
                       transaction of its own (notify.inbox.ack) */
    /* The largest body in bytes (for an event: its payload); 0 is the service default,
       --max-event-bytes (plus the PublishRequest around an event, for a method's body). */
    size_t limit;
    sam_query_fn query;     /* SAM_KIND_QUERY: the handler */
    sam_apply_fn apply;     /* SAM_KIND_EVENT: the handler */
    sam_prepare_fn prepare; /* SAM_KIND_EVENT: run before the write transaction; may be NULL */
    sam_builtin_fn builtin; /* SAM_KIND_BUILTIN: the runtime's function */
    /* A long query (L in a .def): it may read for long (a walk of a whole table), so the
       runtime runs it in a worker thread on a read transaction of that thread's own, the
       request parked meanwhile, and heartbeats, writes and other queries go on. Its handler
       must use nothing but its arguments and the service's context, and only read that. */
    bool threaded;
} sam_row_t;

/*  The lines of a <service>.def, expanded into rows (common/sam_service_rows.h does it):
      Q(method, request, reply, roles, handler)   a query
      W(method, request, reply, roles, handler)   a query that writes a transaction of its own
      L(method, request, reply, roles, handler)   a long query, answered from a worker thread
      E(type, payload, roles, limit, apply, prepare)  an event type                            */
#define SAM_ROW_QUERY(method, request_type, reply_type, who, handler)                              \
    SAM_ROW_METHOD_(method, request_type, reply_type, who, false, SAM_KIND_QUERY, .query, handler)
#define SAM_ROW_WRITING_QUERY(method, request_type, reply_type, who, handler)                      \
    SAM_ROW_METHOD_(method, request_type, reply_type, who, true, SAM_KIND_QUERY, .query, handler)
#define SAM_ROW_LONG_QUERY(method, request_type, reply_type, who, handler)                         \
    {.name = (method),                                                                             \
     .kind = SAM_KIND_QUERY,                                                                       \
     .request = (request_type),                                                                    \
     .reply = (reply_type),                                                                        \
     .roles = (who),                                                                               \
     .query = (handler),                                                                           \
     .threaded = true},
/* A method's row (a query's, or a built-in's with .builtin): the two above and the runtime's
   own rows (common/sam_builtin.def) are made with it; not for a service's .def. */
#define SAM_ROW_METHOD_(method, request_type, reply_type, who, writing, row_kind, field, fn)       \
    {.name = (method),                                                                             \
     .kind = (row_kind),                                                                           \
     .request = (request_type),                                                                    \
     .reply = (reply_type),                                                                        \
     .roles = (who),                                                                               \
     .writes = (writing),                                                                          \
     field = (fn)},
#define SAM_ROW_EVENT(type, payload_type, who, max_bytes, apply_fn, prepare_fn)                    \
    {.name = (type),                                                                               \
     .kind = SAM_KIND_EVENT,                                                                       \
     .request = (payload_type),                                                                    \
     .roles = (who),                                                                               \
     .writes = true,                                                                               \
     .limit = (max_bytes),                                                                         \
     .apply = (apply_fn),                                                                          \
     .prepare = (prepare_fn)},

typedef struct {
    const char *name;      /* service name on the broker and folder under --data-dir */
    const char *summary;   /* one line for --help */
    const sam_row_t *rows; /* the service's table (without the built-ins) */
    size_t n_rows;
    const char *const *tables; /* the service's own named tables, NULL-terminated */
    uint32_t schema_version;   /* what this build writes */
    /* Brings a store from `from` (0: new) to schema_version inside txn; NULL when there is
       nothing to migrate. Returns 0 or an error code. */
    int (*migrate)(sam_service_t *svc, MDB_txn *txn, uint32_t from);
    const sam_option_t *options; /* extra options, NULL-name terminated; may be NULL */
    /* Called after the store is open and before the loop; returns 0 or -1 (exit 1). */
    int (*start)(sam_service_t *svc);
    /* Called every tick_ms while the loop runs (0: never): catch-up work, timers. */
    void (*tick)(sam_service_t *svc);
    int tick_ms;
    /* Called once after the loop ends, before the store closes. */
    void (*stop)(sam_service_t *svc);
    /* SIGHUP: the configuration as read again (borrowed for the call); takes what may change
       while running and logs it. Returns 0, or -1 when a value is refused (logged; the old
       one stays). NULL: the service reloads nothing of its own. */
    int (*reload)(sam_service_t *svc, sam_config_t *again);
} sam_service_def_t;

/* A definition's store, in one line: its tables, the schema version it writes, its migration
   (NULL when there is nothing to migrate). */
#define SAM_SERVICE_STORE(table_names, version, migration)                                         \
    .tables = (table_names), .schema_version = (version), .migrate = (migration)

/*  Runs the service: parses argv (standard options: --broker (repeatable), --data-dir,
    --credit, --insecure, --nosync, --map-size-mb, --instance, --config, --log-level,
    --help, --version, plus def->options), opens the store, migrates, connects to the
    brokers, loops until SIGTERM/SIGINT, shuts down cleanly. `ctx` is the service's own
    context, reachable from handlers with sam_service_ctx(). Returns the process exit code. */
int sam_service_main(const sam_service_def_t *def, void *ctx, int argc, char **argv);

void *sam_service_ctx(sam_service_t *svc);
sam_store_t *sam_service_store(sam_service_t *svc);
sam_config_t *sam_service_config(sam_service_t *svc);
/*  This instance's leases on the work it shares with the other instances on its store
    (sam_lease.h): a service adds the names it competes for (sam_lease_want) in its start
    hook; the runtime renews them from the loop (every SAM_LEASE_RENEW_MS, --lease-ms ttl)
    and gives them up at a clean shutdown. Never NULL once start runs. */
typedef struct sam_lease_t sam_lease_t;
sam_lease_t *sam_service_lease(sam_service_t *svc);
MDB_dbi sam_service_dbi(sam_service_t *svc, const char *table);

/*  A follower of another service's outbox tells where it stands (sam_follow does, on every
    poll): `ping` shows it, for samctl status. At most 8 followed services are kept. */
void sam_service_follower(sam_service_t *svc, const char *followed, uint64_t cursor, uint64_t head,
                          bool down);

/*  Whether this instance is the primary of its service and may write now (docs/scaling.md,
    "Across hosts"): always true with --replica primary (the default); false on a standby,
    on a candidate of an election, and on a primary whose etcd lease is running out or that
    is handing over. Work that must be done once across hosts — notify's deliveries and
    schedules — runs only while it is true. Cheap: read it on every tick. */
bool sam_service_is_primary(sam_service_t *svc);

/*  The process's metrics registry (--metrics), for a service's own families (declare them
    in its start hook); NULL without --metrics, which every sam_metric_* call accepts. */
sam_metrics_t *sam_service_metrics(sam_service_t *svc);

/*  A client connected to the same brokers with the service's own identity, for calls to
    other services (created on first use, owned by the runtime). NULL if it cannot connect. */
sam_client_t *sam_service_client(sam_service_t *svc);

/*  A new client of the service's own, connected like sam_service_client() (same brokers,
    same certificate when CURVE is on), for a service that needs a second connection (a long
    poll beside its other calls). The caller owns it (sam_client_destroy). NULL (logged) if
    it cannot connect. */
sam_client_t *sam_service_client_new(sam_service_t *svc);

/*  Driving a service without a broker (fuzzers, see fuzz/). When a harness is set,
    sam_service_main() parses its options, opens the store and runs start() as usual, then
    calls harness(svc, arg) instead of connecting to brokers, and returns its result after
    stop(). sam_service_client() answers NULL in that mode: nothing leaves the process. */
typedef int (*sam_service_harness_fn)(sam_service_t *svc, void *arg);
void sam_service_set_harness(sam_service_harness_fn fn, void *arg);

/* The definition the service runs with (for a harness choosing methods and event types). */
const sam_service_def_t *sam_service_def(sam_service_t *svc);

/*  Inside a harness: handles one message exactly as if the broker had sent it on an
    identity connection: "" "MDPW01" command [client "" caller body] (msg is consumed).
    Returns the status code of the reply the service made, or 0 when it made none (a
    heartbeat, a malformed message, or no harness). */
typedef struct _zmsg_t zmsg_t;
uint32_t sam_service_feed(sam_service_t *svc, zmsg_t **msg_p);

/*  The outbox head (highest stored sequence number) as seen by `txn`. */
uint64_t sam_service_last_seq(sam_service_t *svc, MDB_txn *txn);

/*  A string attribute of the event ("subject", "time", "datacontenttype"), or NULL. */
const char *sam_event_attr(const Io__Cloudevents__V1__CloudEvent *ce, const char *name);

/*  The event's payload (binary_data, or proto_data's value) with its length in *len; NULL
    and 0 when it carries neither. Borrowed from ce. (Defined in sam_follow.c, for the
    followers that read stored events; the write path, sam_service_write.c, still reads the
    payload its own way.) */
const uint8_t *sam_event_data(const Io__Cloudevents__V1__CloudEvent *ce, size_t *len);

#endif
