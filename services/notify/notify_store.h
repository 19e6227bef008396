/*  notify_store.h — the notify service's tables.

    On-disk layout (in <data_dir>/notify/, beside the runtime's meta/outbox/dedup):
      subs     "<id>"                        → samordna.v1.Subscription
      state    "<id>"                        → samordna.v1.SubscriptionState
      match    "<k>\0<pattern>\0<source>\0<subject>\0<id>" → 1 byte: the channel;
               the matching index, k one of
                   T  exact type           pattern = the type
                   P  type prefix          pattern = the prefix with its final '.'
                                           ("no.samordna.grants.*" → "no.samordna.grants.")
                   A  any type             pattern = ""
               and source/subject the subscription's filters ("" when it has none).
               An event of type t, source s, subject j is matched by seeking, for each of
               (T t), (P p) for every dot-prefix p of t, and (A), the four prefixes
               (s or "") × (j or ""): a handful of seeks whatever the number of
               subscriptions, and every entry found is a match — never a scan.
      queue    "<id>\0" be64 qseq            → samordna.v1.Delivery   (webhook and e-mail
                                                    deliveries waiting, in order)
      inbox    "<id>\0" be64 qseq            → samordna.v1.Delivery   (inbox deliveries not yet
                                                    acknowledged; apart, so the delivery scan
                                                    never walks inboxes)
      dead     "<id>\0" be64 qseq            → samordna.v1.Delivery   (dead letters)
      log      "<id>\0" be64 n               → samordna.v1.Attempt    (every attempt)
      cursors  "<service>"                   → samordna.v1.Cursor     (outbox followed)
      starts   "<id>\0<service>"             → samordna.v1.SubscriptionStart: where the
               subscription starts in that outbox (none: it matches every event, as
               subscriptions made before schema 2 did)
      sent     "<message id>"                → be64 ms   (briefings, reminders issued)
      briefings "briefing-YYYY-MM-DD"        → samordna.v1.BriefingRecord: each briefing as
               composed on its due date, held until a subscription takes it, then sent
      nmeta    "qseq" → be64, "logn" → be64 (counters); "key" → 32 random bytes from which
               each webhook's signing secret is derived.
    Schema version 2 (2 added "starts"; a version-1 store needs nothing else).
*/
#ifndef NOTIFY_STORE_H
#define NOTIFY_STORE_H

#include "sam_store.h"

#include "samordna/v1/notify.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NOTIFY_SCHEMA 2
#define NOTIFY_ID_MAX 64
/* A queue/dead/log key: id, NUL, 8 bytes. */
#define NOTIFY_QKEY_MAX (NOTIFY_ID_MAX + 1 + 8)

extern const char *const notify_tables[];

typedef struct {
    MDB_dbi subs, state, match, queue, inbox, dead, log, cursors, sent, meta, starts, briefings;
} notify_dbis_t;

/* Builds "<id>\0" be64 n into out (NOTIFY_QKEY_MAX bytes); returns its length. */
size_t notify_qkey(uint8_t *out, const char *id, uint64_t n);
/* Splits such a key; false when it is not one. id_out holds NOTIFY_ID_MAX + 1 bytes. */
bool notify_qkey_split(const MDB_val *key, char *id_out, uint64_t *n);
/* Moves `cur` past every "<id>\0…" key to the first key of a later subscription, as
   mdb_cursor_get with MDB_SET_RANGE does (k and v set, MDB_NOTFOUND at the end). */
int notify_qkey_skip(MDB_cursor *cur, const char *id, MDB_val *k, MDB_val *v);

/* Next value of the counter `name` in nmeta (1, 2, …), or 0 on a store error. */
uint64_t notify_counter_next(MDB_txn *txn, const notify_dbis_t *d, const char *name);

/* Index entries of a subscription: add (on created) or remove (on deleted). */
int notify_index_put(MDB_txn *txn, const notify_dbis_t *d, const Samordna__V1__Subscription *s);
int notify_index_del(MDB_txn *txn, const notify_dbis_t *d, const Samordna__V1__Subscription *s);

/* Calls fn for every subscription the index holds for exactly (kind, pattern, source,
   subject), with its channel; stops early when fn returns non-zero. Returns 0 or an LMDB
   error. */
typedef int (*notify_match_fn)(void *arg, const char *sub_id, int channel);
int notify_index_scan(MDB_txn *txn, const notify_dbis_t *d, char kind, const char *pattern,
                      const char *source, const char *subject, notify_match_fn fn, void *arg);

/* Deletes every row of table dbi whose key starts with "<id>\0"; returns how many or -1. */
long notify_drop_prefix(MDB_txn *txn, MDB_dbi dbi, const char *id);
/* Counts rows whose key starts with "<id>\0". */
uint64_t notify_count_prefix(MDB_txn *txn, MDB_dbi dbi, const char *id);

/* The subscription's delivery state, as a plain struct (SubscriptionState on disk). */
typedef struct {
    int state; /* SAMORDNA__V1__NOTIFY_SUB_STATE__* */
    char reason[256];
    uint32_t handshake_attempts;
    int64_t next_handshake_ms;
    int64_t changed_ms;
} notify_state_t;

/* Reads the state; when none is stored, the default: pending for a webhook (it must answer
   its handshake first), active otherwise. */
void notify_state_get(MDB_txn *txn, const notify_dbis_t *d, const Samordna__V1__Subscription *s,
                      notify_state_t *out);
int notify_state_put(MDB_txn *txn, const notify_dbis_t *d, const char *id,
                     const notify_state_t *st);

/* Appends one attempt to the subscription's log. */
int notify_log_append(MDB_txn *txn, const notify_dbis_t *d, const Samordna__V1__Attempt *a);

/* Deletes the log entries older than before_ms. Each subscription's entries are in time
   order, so this reads only what it deletes plus one entry per subscription. Returns how
   many were deleted, or -1 on a store error. */
long notify_log_prune(MDB_txn *txn, const notify_dbis_t *d, int64_t before_ms);

/* Cursor of a followed service (0 when none). */
uint64_t notify_cursor_get(MDB_txn *txn, const notify_dbis_t *d, const char *service);
int notify_cursor_put(MDB_txn *txn, const notify_dbis_t *d, const char *service, uint64_t seq,
                      int64_t now_ms);

/* Where subscription `id` starts in `service`'s outbox. Returns 0, MDB_NOTFOUND (no row: the
   subscription matches everything) or an LMDB error; out is set on 0 (free it with
   protobuf_c_message_free_unpacked). */
int notify_start_get(MDB_txn *txn, const notify_dbis_t *d, const char *id, const char *service,
                     Samordna__V1__SubscriptionStart **out);
int notify_start_put(MDB_txn *txn, const notify_dbis_t *d, const char *id, const char *service,
                     const Samordna__V1__SubscriptionStart *st);

/* True when a lowercase id of [a-z0-9-]{1,64}. */
bool notify_valid_id(const char *id);

#endif
