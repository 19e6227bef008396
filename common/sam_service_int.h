/*  sam_service_int.h — the inside of the service runtime, shared by its files and by no one
    else (it is not installed; services see sam_service.h only).

    The runtime is split by concern, one file each:
      sam_service.c         the loop, dispatch of a batch, options, set-up and tear-down,
                            the harness (sam_service_main, sam_service_feed)
      sam_service_table.c   the table and the one check path: building and looking up rows,
                            admitting a request against its row, turning a handler's result
                            into its answer, the built-ins ping and service.describe
      sam_service_wire.c    the worker transport: broker connections, extensions, heartbeats
                            and reconnection, reading requests (plain and Batch), sending
                            replies
      sam_service_write.c   the write path: events.publish's checks, dedup, the write passes
                            and the batch's one transaction
      sam_service_backup.c  store.backup: a hot copy of the store in a thread of its own
      sam_service_slow.c    long queries (L rows) in worker threads, off the loop
      sam_service_outbox.c  the outbox read side: events.read, and the one way every long
                            poll (events.read and a query's wait_ms) is parked and answered
      sam_service_replica.c primaries and standbys across hosts: following the primary,
                            epochs, synchronous mode, promotion (by hand or by etcd)

    Names: what one of these files offers the others starts with `rt_` (types `rt_*_t`),
    never `sam_`, so a reader tells the runtime's inside from the contract at a glance;
    what stays in one file starts with `s_`.
*/
#ifndef SAM_SERVICE_INT_H
#define SAM_SERVICE_INT_H

#include "sam_batch.h"
#include "sam_mdp.h"
#include "sam_service.h"

#include "sam_http.h"
#include "sam_keys.h"
#include "sam_lease.h"
#include "sam_metrics.h"

#include <czmq.h>
#include <stdatomic.h>

#define RT_MAX_BROKERS 8
#define RT_MAX_PARTS 8       /* more frames than any 7/MDP command has: the rest are dropped */
#define RT_MAX_WAIT_MS 30000 /* the longest a long poll is kept parked */
#define RT_MAX_SLOW 4        /* long queries running at once per instance; the rest wait */

typedef struct rt_slow_t rt_slow_t;
typedef struct rt_replica_t rt_replica_t;

/* One broker connection. */
typedef struct {
    char *endpoint;       /* owned copy */
    zsock_t *sock;        /* DEALER, NULL while waiting to reconnect */
    zsock_t *watch;       /* PAIR receiving sock's ZMQ_EVENT_DISCONNECTED (a broker lost) */
    unsigned generation;  /* bumped on every reconnect; parked requests remember theirs */
    bool ext_credit;      /* the broker accepted our credit */
    bool ext_identity;    /* the broker sends a Caller frame with each request */
    bool ext_batch;       /* requests and replies travel as Batch frames (sam_batch.h) */
    sam_batch_t out;      /* replies gathered for it, sent at the end of the iteration */
    int64_t heard_at;     /* last time anything arrived from it (monotonic ms) */
    int64_t hb_due;       /* when our next heartbeat is due */
    int64_t reconnect_at; /* when to reconnect, while sock is NULL */
    int64_t connected_at; /* when the current connection was made */
    bool answered;        /* the broker has sent something on the current connection */
    int backoff_ms;       /* next reconnect delay */
} rt_broker_t;

typedef struct sam_request_t rt_request_t;

/*  What a parked long poll does whenever the service may have news (rt_serve_waiters):
    answers r again from `txn`, whose outbox head is `last_seq`. Returns true while r still
    has nothing to say and its deadline is not reached (it stays parked), false when r's
    reply is ready to send. */
typedef bool (*rt_again_fn)(sam_service_t *svc, rt_request_t *r, MDB_txn *txn, uint64_t last_seq,
                            int64_t now);

/* One request of a batch, or a parked long poll. */
struct sam_request_t {
    int broker;          /* index into brokers */
    unsigned generation; /* the broker connection it came on */
    uint8_t client[256]; /* the client's address (a ZeroMQ routing id, ≤ 255 bytes) */
    size_t client_len;
    int64_t received_us;          /* when it arrived (monotonic µs), for the latency metric */
    Samordna__V1__Request *req;   /* unpacked envelope, owned */
    Samordna__V1__Caller *caller; /* unpacked or NULL (then anonymous, or insecure) */
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
    /* events.read: where it reads from and how many */
    uint64_t after_seq;
    uint32_t max;
    bool replica; /* asked by a standby: the reply carries the epochs */
    /* a parked long poll (rt_park): when its wait is over, how it answers again, the list */
    int64_t deadline;
    rt_again_fn again;
    rt_request_t *next;
    void *job;       /* store.backup: its copy in progress (sam_service_backup.c), owned */
    rt_slow_t *slow; /* a long query's job (sam_service_slow.c), owned */
};

struct sam_service_t {
    const sam_service_def_t *def;
    void *ctx;
    sam_option_t *options; /* standard + the service's own, owned */
    sam_config_t *config;
    sam_store_t *store;
    sam_client_t *client;
    sam_lease_t *lease; /* this instance's leases on shared work (sam_lease.h) */
    char instance[96];
    bool insecure;
    const char *cert;                     /* --cert: our secret certificate (CURVE) */
    char server_key[SAM_KEY_Z85_LEN + 1]; /* --server-key: the brokers' public key */
    int credit;
    size_t max_event_bytes;
    int heartbeat_ms;
    int liveness;
    rt_broker_t brokers[RT_MAX_BROKERS];
    size_t nbrokers;
    rt_request_t *waiters; /* parked long polls (events.read, queries with wait_ms): rt_park */
    /* The table: the service's rows then the built-ins (all), and the same rows sorted by
       name for lookup, methods (queries and built-ins) and event types apart. Arrays owned,
       rows borrowed from the program's static data. */
    const sam_row_t **all, **methods, **events;
    size_t n_all, n_methods, n_events;
    size_t max_body; /* a method body's default limit: an event plus its PublishRequest */
    /* the batch being handled: its wall-clock time and its publishes, for the write pass */
    int64_t batch_ms;
    rt_request_t *pubs[SAM_MDP_MAX_CREDIT];
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
    /* --metrics: the registry, its HTTP port and the runtime's own families (NULL without) */
    sam_metrics_t *metrics;
    sam_http_t *http;
    sam_metric_t *m_requests, *m_latency, *m_batch, *m_commit, *m_head, *m_brokers;
    uint64_t head_shown;     /* the outbox head last set in m_head */
    bool backing_up;         /* a store.backup copy is running (one at a time) */
    size_t n_slow;           /* long queries' threads started and not yet joined or left */
    atomic_int slow_threads; /* their threads still running (the store outlives them) */
    struct {                 /* where the followers of other outboxes stand (ping shows it) */
        char service[64];
        uint64_t cursor, head;
        bool down;
    } followers[8];
    size_t nfollowers;
    size_t brokers_up;     /* brokers that answered since their connection, last told */
    rt_replica_t *replica; /* primary or standby across hosts (sam_service_replica.c), owned */
};

/*  The runtime's metrics (sam_service.c): declares its families when --metrics is given.
    rt_metric_reply counts r's answer and its latency; rt_metric_batch a write batch of n
    events that took `seconds`; rt_metric_head the outbox head. All do nothing without
    --metrics. */
void rt_metrics_declare(sam_service_t *svc);
void rt_metric_reply(sam_service_t *svc, const rt_request_t *r, uint32_t code);
void rt_metric_batch(sam_service_t *svc, size_t n, double seconds);
void rt_metric_head(sam_service_t *svc, uint64_t head);

/* The built-in rows' functions (common/sam_builtin.def), each in the file of its concern. */
#define B(name, request, reply, roles, writes, fn)                                                 \
    int fn(sam_service_t *svc, rt_request_t *r, MDB_txn *rtxn, int64_t now);
#include "sam_builtin.def"
#undef B

/* ---- sam_service_table.c: the table and the one check path ------------------------------- */

/*  Builds the service's table: its rows then the built-ins, and the sorted lookup arrays.
    Returns 0, or -1 (logged) when a row is malformed or a name is there twice. */
int rt_table_build(sam_service_t *svc);

/* The row named `name` among n rows sorted by name, or NULL. */
const sam_row_t *rt_find(const sam_row_t *const *rows, size_t n, const char *name);

/*  Everything the method's row decides, before any handler runs, through one reject path
    (sam_service.h, "The table"). Returns the row with r->msg decoded, or NULL with the
    refusal in r->reply. */
const sam_row_t *rt_admit(sam_service_t *svc, rt_request_t *r);

/*  Decodes len bytes as desc, the text rule first (sam_check_wire, fields' paths after
    `prefix`). Returns 0 with *out set (the caller frees it), -1 with 400 in reply when a
    string breaks the rule, or -2 with reply untouched when the bytes are not a packed desc:
    the caller says what was undecodable. */
int rt_decode(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
              const char *prefix, ProtobufCMessage **out, sam_reply_t *reply);

/* Who sent r: its Caller, or the anonymous (CURVE) or insecure one. Borrowed. */
const Samordna__V1__Caller *rt_caller(sam_service_t *svc, const rt_request_t *r);

/* Whether caller c may call a row of these roles. */
bool rt_role_ok(sam_service_t *svc, const Samordna__V1__Caller *c, unsigned roles);

/*  The one translation point: what a handler of `row` returned (sam_service.h) into its
    reply. */
void rt_outcome(sam_service_t *svc, const sam_row_t *row, uint64_t id, int rc, sam_reply_t *reply);

/* ---- sam_service_wire.c: the worker transport -------------------------------------------- */

/* Sends "" "MDPW01" command [tail] to broker b (tail consumed; dropped while b is down). */
void rt_broker_send(rt_broker_t *b, int command, zmsg_t **tail_p);

/* (Re)connects broker b and sends READY with our extensions; on failure schedules a retry. */
void rt_broker_connect(sam_service_t *svc, rt_broker_t *b, int64_t now);

/* Closes broker b's connection (its socket and its watch); b->sock is NULL after. */
void rt_broker_close(rt_broker_t *b);

/*  Whether broker b's connection broke (its watch saw ZMQ_EVENT_DISCONNECTED: the broker
    stopped or was killed); then b is connected anew at once, so that READY is the first
    thing a restarted broker hears from us. Cheap: one non-blocking receive. */
bool rt_broker_watch(sam_service_t *svc, rt_broker_t *b, int64_t now);

/* Heartbeats out, silent brokers reconnected with backoff. */
void rt_heartbeat(sam_service_t *svc, int64_t now);

/*  Reads one message from broker bi and handles it; its requests go into out[0..room) and
    their number is returned. `flags` is ZMQ_DONTWAIT, or 0 to wait up to the socket's
    receive timeout (then *now_p is brought up to date). *got says whether anything came. */
size_t rt_receive(sam_service_t *svc, int bi, int64_t *now_p, int flags, bool *got,
                  rt_request_t **out, size_t room);

/*  Everything a broker sends: part[0..n) = "" "MDPW01" command … (too_many: the message had
    more frames than were kept). Requests go into out[0..room); returns how many. The caller
    closes the parts. */
size_t rt_on_parts(sam_service_t *svc, int bi, zmq_msg_t *part, int n, bool too_many, int64_t now,
                   rt_request_t **out, size_t room);

/* Sends r's reply to its client (or into its broker's Batch); r stays the caller's. */
void rt_send_reply(sam_service_t *svc, rt_request_t *r);

/* Sends the replies gathered for a batch broker. */
void rt_flush_replies(rt_broker_t *b);

/* Frees a request and everything it owns; NULL-safe, nulls the pointer. */
void rt_request_destroy(rt_request_t **r_p);

/* ---- sam_service_write.c: the write path ------------------------------------------------- */

/*  All publishes of a batch (checked by rt_builtin_publish): prepare hooks, one write
    transaction, one sync, then every reply sent. The requests stay the caller's. */
void rt_write_batch(sam_service_t *svc, rt_request_t **pubs, size_t n);

/*  A standby applies one record of its primary (sam_service_replica.c): see the definition. */
int rt_replay_one(sam_service_t *svc, MDB_txn *txn, const Samordna__V1__StoredEvent *se, char *why,
                  size_t cap);

/* ---- sam_service_backup.c: store.backup -------------------------------------------------- */

/* Waits for r's copy in progress and frees it (r is being freed unanswered). */
void rt_backup_abandon(rt_request_t *r);

/* ---- sam_service_slow.c: long queries off the loop ---------------------------------------- */

/*  Runs r's row (a long query) in a worker thread on a read transaction of its own; r is
    parked and answered from the loop when the thread is done. Returns 1 (taken over), or 0
    with a refusal in r->reply. */
int rt_slow_start(sam_service_t *svc, rt_request_t *r, int64_t now);

/* Leaves r's job to its thread (r is being freed unanswered). */
void rt_slow_abandon(rt_request_t *r);

/* Waits until no long query's thread runs any more (before the store is closed). */
void rt_slow_wait_all(sam_service_t *svc);

/* ---- sam_service_outbox.c: events.read and the long polls -------------------------------- */

/*  Parks r as a long poll, the one way for every kind: it waits up to wait_ms (at most
    RT_MAX_WAIT_MS) and `again` answers it whenever the service may have news. The runtime
    owns r from here (rt_serve_waiters sends and frees it). */
void rt_park(sam_service_t *svc, rt_request_t *r, uint32_t wait_ms, int64_t now, rt_again_fn again);

/* Answers the parked long polls that have news or whose wait is over. */
void rt_serve_waiters(sam_service_t *svc, int64_t now);

/* ---- sam_service_replica.c: primaries and standbys ------------------------------------------ */

/* Reads --replica and its options after the store is open; starts a standby's follower or
   the election. 0, or -1 (logged) when an option is unusable. */
int rt_replica_open(sam_service_t *svc);
/* The loop's turn: the election, the follower, held replies, a re-registration. */
void rt_replica_tick(sam_service_t *svc, int64_t now);
/* A standby's follower sockets, polled with the brokers' so that each page of the primary is
   taken the moment it arrives (the standby's lag, and a synchronous write's wait). */
size_t rt_replica_pollitems(sam_service_t *svc, zmq_pollitem_t *items, size_t cap);
/* Whether the loop must turn soon (a follower, held replies, an election). */
bool rt_replica_busy(sam_service_t *svc);
void rt_replica_close(sam_service_t *svc);
/* 3 when the store diverged and was moved aside (the process's exit code), else 0. */
int rt_replica_exit_code(sam_service_t *svc);
/* Whether this instance may write at monotonic time now. */
bool rt_replica_writer(sam_service_t *svc, int64_t now);
/* The epoch stamped on this instance's writes. */
uint64_t rt_replica_epoch(sam_service_t *svc);
/* READY's tokens for our part (" epoch=N standby"), or "". */
void rt_replica_ext(sam_service_t *svc, char *out, size_t cap);
/* A standby's events.read: it has committed everything up to after_seq, its record there of
   after_epoch (confirming ours only when our record at after_seq is of that epoch too). */
void rt_replica_confirm(sam_service_t *svc, MDB_txn *txn, uint64_t after_seq, uint64_t after_epoch);
/* Synchronous mode: keeps r's reply until a standby has r->seq; true when it took r. */
bool rt_replica_hold(sam_service_t *svc, rt_request_t *r, int64_t now);
/* Packs ReadReply fields 3 and 4 (the epochs, our epoch) into out; returns the length. */
size_t rt_replica_epochs_pack(sam_service_t *svc, MDB_txn *txn, uint8_t *out, size_t cap);
/* ping's ReplicaState (strings borrowed from the runtime). */
void rt_replica_fill(sam_service_t *svc, Samordna__V1__ReplicaState *rs);

/* sam_service_wire.c: tells every broker our part again (DISCONNECT, then READY anew). */
void rt_brokers_reregister(sam_service_t *svc, int64_t now);

#endif
