/*  sam_follow.h — following another service's outbox: the one follower every consumer uses
    (status and grants follow the registry, notify follows every service of --follow).

    A follower keeps ONE events.read(after_seq, max, wait_ms) long poll in flight on the
    followed service, sent without blocking from the consumer's tick and taken in when its
    answer arrives. The events of an answer that lie past the cursor go to the consumer's
    apply callback inside ONE write transaction of the consumer's own store, and the follower
    writes the new cursor into that same transaction before it commits: the projection (or
    the queue) and the cursor are never apart, so a consumer that was down resumes exactly
    after the last event it applied, and a late or repeated answer is harmless (what is at or
    below the stored cursor is skipped). The cursor is read from the store before every poll,
    never cached, so instances sharing one environment each ask from where the store stands.

    The clock of a follower, the same for every consumer:
      - after an answer with events, or a long poll that ran its full wait: ask again at once;
      - an empty answer long before the wait was up (a service that does not hold long polls):
        ask again SAM_FOLLOW_EARLY_MS later, rather than spin;
      - a failure (an error status, an undecodable answer, a store error, a send that did not
        go out): the one back-off, SAM_FOLLOW_RETRY_MS, then ask again;
      - an answer that never comes (the service restarted mid-poll, a broker lost it): after
        wait_ms + SAM_FOLLOW_LOST_MS the poll is forgotten and asked again.
    A followed service that fails is logged once (follow.unavailable service=…) and again when
    it answers (follow.resumed service=… after_seq=…).

    Instances sharing one store: a follower made with def->svc competes for the lease
    "follow.<service>" of that service's instances (sam_lease.h, sam_service_lease). Only
    the holder polls; the page is applied only if the write transaction still shows the
    lease held, so each followed event is applied by exactly one instance — and the cursor
    read in that same transaction would skip it anyway. When the holder dies another
    instance takes the lease within --lease-ms plus a renewal and polls from the stored
    cursor.

    Every broker: the follower's requests go over a sam_client_t, which is connected to every
    broker the service serves through; with several brokers any of them may carry the poll,
    and the answer is matched by its request id, whichever broker brings it.

    Asking the followed service (sam_follow_ask): a consumer whose projection lacks a fact an
    incoming event names may ask the followed service once, synchronously, from its prepare
    hook (before the write transaction opens, never inside it). The projection answers first:
    only what it does not hold is asked. One ask has one attempt of SAM_FOLLOW_ASK_MS; when it
    goes unanswered (timeout, no worker, busy) no further asks are made for
    SAM_FOLLOW_ASK_BLOCK_MS, so a batch naming many unknown facts while the service is down
    costs one timeout, not one per event. The apply function then refuses what is still
    unknown, and the caller may send again.

    Options (SAM_FOLLOW_OPTIONS): a consumer that follows one service by role takes
    --<role> SERVICE (the followed service's name on the broker, default <role>) and
    --<role>-wait-ms MS (the long-poll wait, default SAM_FOLLOW_WAIT_DEFAULT) — status and
    grants both as --registry and --registry-wait-ms.

    Lifetime: a follower borrows its definition's store, service and callbacks for its whole
    life; the service name is copied.
*/
#ifndef SAM_FOLLOW_H
#define SAM_FOLLOW_H

#include "sam_client.h"
#include "sam_config.h"
#include "sam_service.h"
#include "sam_store.h"

#include "samordna/v1/events.pb-c.h"

#include <stdbool.h>
#include <stdint.h>

#define SAM_FOLLOW_READ_MAX 500      /* events asked for per events.read */
#define SAM_FOLLOW_WAIT_DEFAULT 5000 /* ms, the default long-poll wait */
#define SAM_FOLLOW_RETRY_MS 1000     /* the back-off after a failure */
#define SAM_FOLLOW_EARLY_MS 200      /* after an empty answer that came early */
#define SAM_FOLLOW_LOST_MS 5000      /* past the wait, a poll with no answer is asked again */
#define SAM_FOLLOW_ASK_MS 2000       /* one synchronous ask (sam_follow_ask) */
#define SAM_FOLLOW_ASK_BLOCK_MS 5000 /* after an unanswered ask, no asks for this long */

/*  The option rows of a follower known by `role` (a string literal, e.g. "registry"), for a
    sam_service_def_t's options table; read them with sam_follow_config(). */
#define SAM_FOLLOW_OPTIONS(role)                                                                   \
    {role, "SERVICE", role, "service name of the " role " whose outbox is followed and asked",     \
     false},                                                                                       \
        {role "-wait-ms", "MS", "5000", "long-poll wait of each events.read on the " role, false},

/*  Reads the options of SAM_FOLLOW_OPTIONS(role): the followed service's name into *service
    (borrowed from cfg) and the wait into *wait_ms (0..30000). Returns 0, or -1 (logged) when
    a value is unusable. */
int sam_follow_config(sam_config_t *cfg, const char *role, const char **service, int *wait_ms);

typedef struct sam_follow_t sam_follow_t;

/*  Applies a page of the followed outbox in the consumer's write transaction: `events` are
    the answer's events past the stored cursor, in order, each with its event set (n >= 1).
    Returns 0, or an error code (an LMDB one, or any non-zero): the transaction is then
    aborted, the cursor stays, and the page is asked again after the back-off. Must change
    nothing outside txn before it commits (the follower may abort it). */
typedef int (*sam_follow_apply_fn)(void *arg, MDB_txn *txn,
                                   Samordna__V1__StoredEvent *const *events, size_t n);

/* A cursor kept the consumer's own way (notify's samordna.v1.Cursor records): read in txn (0
   when none), and written in txn. */
typedef uint64_t (*sam_follow_cursor_get_fn)(void *arg, MDB_txn *txn);
typedef int (*sam_follow_cursor_put_fn)(void *arg, MDB_txn *txn, uint64_t seq);

typedef struct {
    const char *service; /* the followed service's name on the broker */
    int wait_ms;         /* long-poll wait of each events.read, 0..30000 */
    sam_store_t *store;  /* the consumer's store, where the page and the cursor are written */
    /* The consumer's service: its client (sam_service_client) carries sam_follow_ask, and a
       client of the follower's own (sam_service_client_new) carries sam_follow_tick's
       polls. May be NULL for a follower only driven with sam_follow_send/take. */
    sam_service_t *svc;
    sam_follow_apply_fn apply;
    void *arg; /* passed to the callbacks */
    /* Where the cursor lives: by default an 8-byte big-endian value at cursor_key in table
       cursor_dbi; or, when both are set, the consumer's own get and put. */
    MDB_dbi cursor_dbi;
    const char *cursor_key;
    sam_follow_cursor_get_fn cursor_get;
    sam_follow_cursor_put_fn cursor_put;
    /* A standby following its own primary (sam_service_replica.c): its instance name, sent
       as ReadRequest.replica, and every poll routed to the primary (sam_client_set_route);
       NULL for every other follower. */
    const char *replica;
    /* With replica: the epoch of the consumer's record at the cursor, read as each poll is
       built (after cursor_get), sent as ReadRequest.after_epoch. */
    const uint64_t *replica_epoch;
    /* Looks at each answer before its events are applied (NULL: none): non-zero refuses the
       page (nothing applied, the back-off, then asked again); the callback logs why. */
    int (*check)(void *arg, const Samordna__V1__ReadReply *rr);
} sam_follow_def_t;

/*  A follower of def->service (def borrowed as said above). Returns NULL when out of memory
    or def lacks service, store or apply. Sends nothing yet. */
sam_follow_t *sam_follow_new(const sam_follow_def_t *def);

/*  Destroys the follower and its own client; accepts NULL; sets *self_p to NULL. A poll
    still in flight is simply abandoned (its answer goes nowhere). */
void sam_follow_destroy(sam_follow_t **self_p);

/*  One turn with a client of the follower's own (made from def->svc on first use, again
    after the back-off when that fails): takes every answer already waiting, then sends the
    next poll when one is due. Never blocks. For a consumer that makes no other calls on the
    follower's connection (status, grants). */
void sam_follow_tick(sam_follow_t *self);

/*  The sockets of the follower's own client (sam_follow_tick's), to poll beside the loop's
    others (ZMQ_POLLIN): when one is readable, sam_follow_tick takes the answer at once
    instead of at the loop's next turn. Fills at most cap items; returns how many (0 before
    the client exists). */
size_t sam_follow_pollitems(sam_follow_t *self, zmq_pollitem_t *items, size_t cap);

/*  For a consumer that reads a shared client itself (notify, whose one receive loop hands
    each answer to whoever sent it): sends the next poll over `client` when one is due. */
void sam_follow_send(sam_follow_t *self, sam_client_t *client);

/*  Takes `res` when it answers this follower's poll: applies it (or backs off) and returns
    true; false when the answer is not this follower's. res stays the caller's. */
bool sam_follow_take(sam_follow_t *self, const sam_result_t *res);

/*  Asks the followed service `method` once, synchronously, over def->svc's client (see
    "Asking" above): at most SAM_FOLLOW_ASK_MS, or nothing at all while asks are suspended.
    Returns the status (SAM_OK with *reply_out unpacked as reply_desc when both are given;
    the caller frees it), SAM_UNAVAILABLE when suspended or without a client. */
uint32_t sam_follow_ask(sam_follow_t *self, const char *method, const ProtobufCMessage *req,
                        const ProtobufCMessageDescriptor *reply_desc, ProtobufCMessage **reply_out);

/* The followed service's name (owned by the follower). */
const char *sam_follow_service(const sam_follow_t *self);

/* The last cursor this follower committed or read (0 before the first poll). */
uint64_t sam_follow_cursor(const sam_follow_t *self);

/*  Where a replica follower's polls go (def.replica set; nothing otherwise): to `instance`
    by name (Request.instance), or with NULL or "" to the service's primary of the highest
    epoch (Request.primary), the default. A standby taking over in a handover reads the
    tail of the leader it takes over from, which no longer registers as a primary. A change
    drops the poll in flight and sends the next at once. */
void sam_follow_from(sam_follow_t *self, const char *instance);

/*  The highest outbox head (ReadReply.last_seq) the follower has learnt, and into *mono_ms
    (may be NULL) the monotonic time it last learnt one, 0 when never. sam_follow_learn_head
    records a head learnt another way (a one-off events.read of the consumer's own). */
uint64_t sam_follow_head(const sam_follow_t *self, int64_t *mono_ms);
void sam_follow_learn_head(sam_follow_t *self, uint64_t head);

/*  A singular string field of a message, by name ("id", "name"), for a projection that
    reads the facts of the followed service's records (or of its own events) from a table of
    field names rather than one branch per message type. "" when the message has no such
    field; borrowed from msg. */
const char *sam_follow_field(const ProtobufCMessage *msg, const char *name);

/* Whether the last poll failed (the followed service is down, as far as the follower knows). */
bool sam_follow_down(const sam_follow_t *self);

/* The selftest (run by the common selftest, checks counted by sam_testkit.h): writes only
   under `scratch`. Returns how many of its checks failed. */
int sam_follow_selftest(const char *scratch);

#endif
