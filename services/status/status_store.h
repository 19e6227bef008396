/*  status_store.h — the status service's tables: keys, values, and the scans they serve.

    Every value is a packed samordna.v1 message from proto/samordna/v1/status.proto, so
    `mdb_dump -s <table>` piped through `protoc --decode samordna.v1.<Message>` reads it.
    Dates inside keys are the 10 ASCII bytes "YYYY-MM-DD", which sort as dates; sequence
    numbers are 8-byte big-endian, so equal dates keep publication order.

    table      key                                         value
    kinds      <kind id>                                   MilestoneKind
    mshist     <pilot> 0x00 <date> <seq:8>                 MilestoneChange
    meetings   <meeting id>                                Meeting
    meetidx    <scope> 0x00 <date> <meeting id>            (empty)
               scope: "*" every meeting, "p:<pilot>", "m:<municipality>", "programme"
    steps      <pilot> 0x00 <step id>                      Step
    barriers   <barrier id>                                Barrier
    barhist    <pilot> 0x00 <date> <seq:8>                 Change (barrier.registered/moved,
                                                             summary = the new state)
    timeline   <date> <seq:8> <n:2>                        Change
    registry   <kind> ":" <id>                             RegistryFact (projection)
    cursor     "registry"                                  <seq:8> last registry event applied
                                                             (written by the follower,
                                                             common/sam_follow.h)

    Scans: the board of today reads one pilotstate record per pilot; the board as of a day reads,
   per pilot, mshist and barhist from "<pilot>\0" up to
    "<pilot>\0<as_of>\xff" — the pilot's own history and nothing else — and finds the last
    meeting with one backwards step from "p:<pilot>\0<as_of>\xff" in meetidx. The report scans
    timeline from <from> to <to>.

    Schema version 1. Migration path: a later version adds tables or fields (protobuf keeps
    old values readable); a key change rewrites the table inside migrate() in one transaction.
*/
#ifndef STATUS_STORE_H
#define STATUS_STORE_H

#include "sam_service.h"

#include "samordna/v1/status.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STATUS_SCHEMA_VERSION 1

/* The table names, NULL-terminated, for the service definition. */
extern const char *const status_tables[];

/* Longest key we build: two ids (64 each), a scope prefix, a date, a seq and separators. */
#define STATUS_KEY_MAX 192

typedef struct {
    uint8_t b[STATUS_KEY_MAX];
    size_t len;
} status_key_t;

/* Key builders (see the table above). `seq` 0 with `upper` builds the scan bound after every
   key of that date. */
void status_key_hist(status_key_t *k, const char *pilot, const char *date, uint64_t seq);
void status_key_hist_end(status_key_t *k, const char *pilot, const char *as_of);
void status_key_meetidx(status_key_t *k, const char *scope, const char *date, const char *id);
void status_key_id(status_key_t *k, const char *id);
void status_key_pair(status_key_t *k, const char *a, const char *b);
void status_key_timeline(status_key_t *k, const char *date, uint64_t seq, uint16_t n);
void status_key_fact(status_key_t *k, const char *kind, const char *id);

/* Hex page tokens: the last key of a page, and back. Returns 0, or -1 when malformed. */
void status_token_encode(const status_key_t *k, char *out, size_t outlen);
int status_token_decode(const char *token, status_key_t *k);

/* Convenience over sam_store_get_msg with the service's table by name. Returns 0,
   MDB_NOTFOUND, or another error. */
int status_get(sam_service_t *svc, MDB_txn *txn, const char *table, const status_key_t *k,
               const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out);
int status_put(sam_service_t *svc, MDB_txn *txn, const char *table, const status_key_t *k,
               const ProtobufCMessage *msg);

/*  Calls fn(value, arg) for each record of a per-pilot history table ("mshist" or "barhist")
    of `pilot`, in date order, up to and including `as_of` (NULL: all). Stops early when fn
    returns non-zero. Returns 0 or an LMDB error. */
typedef int (*status_hist_fn)(const MDB_val *value, void *arg);
int status_hist_each(sam_service_t *svc, MDB_txn *txn, const char *table, const char *pilot,
                     const char *as_of, status_hist_fn fn, void *arg);

#endif
