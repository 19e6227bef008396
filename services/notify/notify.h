/*  notify.h — the notify service's context and the functions its files share.

    notify follows the outbox of every configured service (registry, status, grants) with
    events.read long polls sent from its tick, matches each event against the subscriptions
    through an index (notify_store.h), and queues one delivery per (subscription, event) in
    the same write transaction that advances the service's cursor — so a restart resumes
    exactly where it stopped, with nothing lost and nothing queued twice.

    Deliveries leave by three channels:
      inbox    the agency's system reads notify.inbox.read and acknowledges with
               notify.inbox.ack; what is not acknowledged is read again;
      webhook  HTTP POST (CloudEvents structured JSON, the payload as JSON or as base64
               protobuf) signed the Standard Webhooks way — HMAC-SHA256 with the
               subscription's secret (v1) or Ed25519 with notify's key (v1a) — or, for
               subscriptions made before, with X-Samordna-Signature; after the endpoint has
               answered a handshake;
      e-mail   through the SMTP relay of --smtp-url.
    Webhooks and e-mail go through libcurl's multi interface, driven from the tick, so the
    service loop never blocks on a receiver. Each subscription has at most one delivery in
    flight and takes its queue in order; a failure is retried on the --retry-schedule, a 429
    waits for its Retry-After, a 410 disables the subscription, and after the last retry the
    delivery moves to the dead-letter table, from where notify.dead.replay puts it back.
*/
#ifndef NOTIFY_H
#define NOTIFY_H

#include "notify_store.h"
#include "sam_client.h"
#include "sam_follow.h"
#include "sam_service.h"
#include "sam_words.h"

#include "samordna/v1/notify.pb-c.h"

#include <czmq.h>
#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#define NOTIFY_MAX_FOLLOW 16
#define NOTIFY_MAX_SCHEDULE 32

typedef struct notify_t notify_t;

/* One followed outbox: the common follower (sam_follow.h) does the polling, the back-off and
   the cursor; notify matches what it reads (notify_follow.c). */
typedef struct {
    char service[64];
    sam_follow_t *follower; /* owned; NULL before notify_follow_start */
    notify_t *n;            /* the context, for the follower's callbacks */
} notify_follow_t;

/* A subscription replaying one followed outbox's history (SubscriptionStart.replaying). */
typedef struct {
    char sub[NOTIFY_ID_MAX + 1];
    char service[64];
    uint64_t pos;    /* events up to here are considered */
    uint64_t req_id; /* events.read in flight, 0 when none */
    int64_t sent_ms;
    int64_t next_try_ms;
} notify_replay_t;

#define NOTIFY_MAX_REPLAY 32

typedef struct notify_flight_t notify_flight_t;

/* What a standby knows of its primary's deliveries (notify_replica.c). */
typedef struct {
    int part;             /* 1 primary, 0 standby, -1 before the first tick */
    sam_client_t *client; /* owned; routed to the primary */
    uint64_t req;         /* notify.replica.positions in flight, 0 when none */
    int64_t req_mono;
    int64_t next_mono;     /* when the next question is due */
    int64_t synced_ms;     /* when the last answer was taken in (0: never) */
    uint64_t syncs;        /* answers taken in */
    int64_t sent_after_ms; /* the latest briefing or reminder learnt: asked from there on */
    bool failing;          /* the last question got no answer (logged once) */
    bool keys;             /* the primary's signing keys are this store's now */
    bool keys_refused;     /* the primary gave none (logged once) */
    char own_key[41];      /* Z85 public key of our --cert ("" without CURVE) */
} notify_standby_t;

struct notify_t {
    sam_service_t *svc;
    /* --metrics: every attempt's outcome per subscription (delivered, retry, dead, throttled,
       gone, handshake…), one family, so deliveries, retries and dead letters are rates */
    sam_metric_t *m_attempts;
    notify_dbis_t dbi;

    /* options */
    notify_follow_t follow[NOTIFY_MAX_FOLLOW];
    size_t n_follow;
    int follow_wait_ms;                       /* wait_ms of each events.read */
    int64_t schedule_ms[NOTIFY_MAX_SCHEDULE]; /* retry delays; after the last → dead */
    size_t n_schedule;
    long http_timeout_ms;
    long max_in_flight;   /* webhook/e-mail transfers at once */
    const char *smtp_url; /* smtp://host:port, NULL: e-mail deliveries retry */
    const char *mail_from;
    const char *briefing_dates; /* "MM-DD,MM-DD", or "": the programme's own (registry) */
    const char *programme;      /* --programme: the one briefed on ("": the registry's first) */
    sam_lang_t briefing_lang;   /* --briefing-lang: the language of briefings and reminders */
    const char *briefing_from;  /* source of briefings and reminders (the pilot owner) */
    long reminder_days;         /* before a reporting deadline; 0: no reminders */
    long call_timeout_ms;       /* calls to status and grants while composing */
    long schedule_interval_ms;  /* how often briefings and deadlines are checked */
    char since[11];             /* first day the store ran: no briefing before it */
    long log_keep_days;         /* the delivery log forgets attempts older than this */
    int64_t next_prune_ms;      /* next pruning of the log */
    bool grants_down;           /* grants.deadlines failed last time (logged once) */
    uint64_t rem_req;           /* grants.deadlines in flight, 0 when none */
    int64_t rem_sent_ms;
    char rem_from[11], rem_before[11]; /* the reminder window being asked about */
    char rem_token[128];               /* the page being asked for */

    /* run-time state */
    notify_replay_t replay[NOTIFY_MAX_REPLAY]; /* history replays under way */
    size_t n_replay;
    bool replay_scan;     /* the starts table may hold replays not in replay[] */
    sam_client_t *client; /* the runtime's client, for events.read and calls */
    CURLM *multi;
    zhashx_t *flights;              /* subscription id → notify_flight_t (in flight) */
    int64_t next_schedule_ms;       /* next check of briefing/reminders */
    int64_t next_deliver_scan_ms;   /* next scan of the queue for due deliveries */
    int64_t next_handshake_scan_ms; /* next scan of pending webhooks for due handshakes */
    uint8_t master_key[32];         /* derives each webhook's signing secret */

    /* what the briefing and the reminders are written with (notify_briefing.c), asked of
       the registry at each schedule check and kept when it does not answer */
    zhashx_t *names; /* agency and municipality id → name */
    bool prog_known; /* the programme below is the registry's */
    char prog_id[65], prog_name[256], prog_from[11], prog_to[11];
    uint32_t prog_months;  /* briefing_interval_months */
    bool held_logged;      /* "schedule.held" said for the briefing held now */
    int incomplete_checks; /* checks the briefing due was composed with a part missing */
    int64_t next_names_ms; /* next time the registry is asked for names, programme */
    size_t shards_seen;    /* leases held at the last delivery tick */
    /* v1a: the Ed25519 key webhooks are signed with (--webhook-signing-key, or made once
       and kept in the store); receivers verify with sign_pk */
    uint8_t sign_sk[64];
    uint8_t sign_pk[32];
    zhashx_t *no_json; /* event types a JSON webhook got as data_base64 (logged once each) */
    notify_standby_t standby;
};

/* Wall clock, ms since the epoch. */
int64_t notify_now_ms(void);

/* notify_subs.c — subscription events and queries. */
int notify_apply_sub_created(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                             sam_reply_t *reply);
int notify_apply_sub_deleted(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                             sam_reply_t *reply);
int notify_q_sub_get(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply);
int notify_q_sub_list(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply);
int notify_q_sub_secret(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                        sam_reply_t *reply);
/* True when the caller acts for every agency (admin, service, or an insecure test). */
bool notify_caller_admin(const Samordna__V1__Caller *c);
/* Loads subscription `id` (`field` names it in refusals: 400 not an id, 404 unknown). When
   caller is not NULL, `agency` (the acting agency) must own it unless the caller is an
   admin: 403 otherwise. Returns 0 with *out set (the caller frees it), -1 with the refusal
   in reply, or a store error. */
int notify_sub_load(notify_t *n, MDB_txn *txn, const char *field, const char *id,
                    const Samordna__V1__Caller *caller, const char *agency,
                    Samordna__V1__Subscription **out, sam_reply_t *reply);
/* The legacy (X-Samordna-Signature) signing secret of a subscription, as 64 hex characters
   and a NUL. */
void notify_sub_secret(notify_t *n, const Samordna__V1__Subscription *s, char out[65]);
/* The Standard Webhooks v1 key of a subscription: 32 bytes, shown as "whsec_<base64>". */
void notify_sub_whsec_key(notify_t *n, const Samordna__V1__Subscription *s, uint8_t out[32]);
/* What a webhook subscription's stored format and signature mean: the values given, or for
   a subscription stored before they existed (0) protobuf and legacy, as it was made. */
Samordna__V1__WebhookFormat notify_sub_format(const Samordna__V1__Subscription *s);
Samordna__V1__WebhookSignature notify_sub_scheme(const Samordna__V1__Subscription *s);
/* "json"/"protobuf" and "v1"/"v1a"/"legacy"; "?" for anything else. */
const char *notify_format_name(Samordna__V1__WebhookFormat f);
const char *notify_scheme_name(Samordna__V1__WebhookSignature sig);
/* notify's public key as "whpk_<base64>" into out (cap bytes; 64 hold it). Returns out. */
const char *notify_public_key(const notify_t *n, char *out, size_t cap);
int notify_q_webhook_key(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                         sam_reply_t *reply);

/* notify_inbox.c — inbox, log, dead letters, cursors. */
int notify_q_inbox_read(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                        sam_reply_t *reply);
int notify_q_inbox_ack(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                       sam_reply_t *reply);
int notify_q_log(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply);
int notify_q_dead_list(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                       sam_reply_t *reply);
int notify_q_dead_replay(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                         sam_reply_t *reply);
int notify_q_cursors(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply);

/* notify_follow.c — following outboxes and queuing matches. */
/* Makes one follower per --follow service (their cursors read from the store). 0, or -1
   (logged) when out of memory. notify_follow_stop destroys them. */
int notify_follow_start(notify_t *n);
void notify_follow_stop(notify_t *n);
/* The prepare hook of subscription.created: learns the head of every followed outbox the
   subscription's type can match, so that apply starts it exactly there. Never refuses: an
   outbox whose head cannot be learnt is started by time instead (docs/notify.md). */
int notify_prepare_sub(sam_service_t *svc, const sam_event_t *ev, sam_reply_t *reply);
/* Writes the subscription's start in every followed outbox, in the transaction that applies
   it (history per s->from and s->since). Returns 0, -1 with reply set, or an LMDB error. */
int notify_starts_put(notify_t *n, MDB_txn *txn, const Samordna__V1__Subscription *s,
                      int64_t now_ms, sam_reply_t *reply);
/* Sends due events.read requests and takes in replies for up to wait_ms. */
void notify_follow_tick(notify_t *n);
/* Calls service.method synchronously over the runtime's client, while still taking in the
   follower's replies that arrive meanwhile. Same contract as sam_client_call. */
uint32_t notify_call(notify_t *n, const char *service, const char *method,
                     const ProtobufCMessage *req, const ProtobufCMessageDescriptor *reply_desc,
                     ProtobufCMessage **reply_out, int timeout_ms, sam_result_t *result);
/* Matches ev against every subscription and queues a delivery for each match in txn.
   Returns the number queued, or -1 on a store error. */
int notify_enqueue_matches(notify_t *n, MDB_txn *txn, const char *service, uint64_t seq,
                           const Io__Cloudevents__V1__CloudEvent *ce, int64_t committed_ms,
                           int64_t now_ms);

/* Commits a transaction that records delivery outcomes (delivered, retry, acked…) without
   waiting for the disk: after a power loss such a record may be missing, and the delivery
   is simply made again — at least once, as promised. Queued deliveries and cursors are
   always committed synced. Returns mdb_txn_commit's code. */
int notify_commit_relaxed(notify_t *n, MDB_txn *txn);

/* notify_deliver.c — webhooks and e-mail. */
int notify_deliver_start(notify_t *n);
void notify_deliver_tick(notify_t *n);
void notify_deliver_stop(notify_t *n);
/* Forgets an in-flight transfer of a subscription that is being deleted. */
void notify_deliver_forget(notify_t *n, const char *sub_id);
/* The body of one delivery: CloudEvents structured JSON (malloc'd, NUL-terminated). With
   json_data the payload is `data` in the proto3 JSON mapping of its event type's message
   (datacontenttype application/json); otherwise, or when the type is not one samordna knows
   or the payload does not decode as it, `data_base64` (application/protobuf); then
   *why (may be NULL) is set to the reason when json_data was asked for and not given. */
char *notify_event_json(const Io__Cloudevents__V1__CloudEvent *ce, bool json_data,
                        const char **why);

/* notify_share.c — sharing the work among instances on one store (leases, sam_lease.h).
   None of it is this instance's while it is not the primary (sam_service_is_primary): the
   leases are the store's, and a standby's store is its own. */
#define NOTIFY_SHARDS 32                        /* delivery shards: leases notify.deliver.NN */
#define NOTIFY_SCHEDULE_LEASE "notify.schedule" /* the briefing and the reminders */
/* Wants every shard and the schedule's lease; -1 when the pool is full. */
int notify_share_start(notify_t *n);
/* The shard of a subscription (FNV-1a of its id, modulo NOTIFY_SHARDS). */
unsigned notify_shard_of(const char *sub_id);
/* Whether new work of the subscription may start here (its shard held, not draining). */
bool notify_sub_mine(notify_t *n, const char *sub_id);
/* Whether its shard is still held here at all (draining included). */
bool notify_sub_held(notify_t *n, const char *sub_id);
/* Whether txn shows its shard held here: the condition of committing an outcome. */
bool notify_sub_check(notify_t *n, MDB_txn *txn, const char *sub_id);

/* notify_replica.c — across hosts: a standby delivers nothing and drops from its queue what
   its primary has done (docs/notify.md, "Across hosts"). */
/* Every tick, first: logs a change of part (notify.standby / notify.primary); on a standby,
   asks the primary for its positions every second and takes its answer in. */
void notify_replica_tick(notify_t *n);
/* In the start hook: before the first tick; learns our certificate's public key. */
void notify_replica_start(notify_t *n);
void notify_replica_stop(notify_t *n);
/* notify.replica.positions: the primary's answer; 503 on a standby. */
int notify_q_replica_positions(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                               sam_reply_t *reply);

/* notify_briefing.c — the half-yearly briefing and the reminders. */
int notify_schedule_start(notify_t *n);
void notify_schedule_tick(notify_t *n);
/* Takes the reply of grants.deadlines (sent without waiting) and issues the reminders due. */
void notify_reminders_reply(notify_t *n, const sam_result_t *res);
int notify_q_briefings_list(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                            sam_reply_t *reply);
int notify_q_briefings_get(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                           sam_reply_t *reply);
int notify_apply_briefing_resent(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                                 sam_reply_t *reply);
void notify_schedule_stop(notify_t *n);

/* notify_compose.c — the briefing's text and HTML, and the names they are written with. */
/* Asks the registry for the names of agencies and municipalities and for the programme
   (n->names, n->prog_*); what it does not answer stays as it was. False when the registry
   did not answer. */
bool notify_names_refresh(notify_t *n);
/* The name of an agency or municipality id, or the id when none is known. */
const char *notify_name(notify_t *n, const char *id);
/* Composes briefing `id`, due on `due`, of the period [from, to] as of `to`, in `lang`.
   NULL when out of memory; free with notify_briefing_free. */
Samordna__V1__Briefing *notify_compose(notify_t *n, const char *id, const char *due,
                                       const char *from, const char *to, sam_lang_t lang);
void notify_briefing_free(Samordna__V1__Briefing *b);
int notify_q_briefing_preview(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                              sam_reply_t *reply);

#endif
