/*  grants_store.h — the grants service's tables, their keys, and the service context.

    On-disk layout (one LMDB environment, <data_dir>/grants/; values are packed
    samordna.v1 messages from proto/samordna/v1/grants.proto unless said otherwise;
    "\0" is one zero byte, be32/be64 big-endian integers so keys sort numerically):

      schemes        id                                   → Scheme
      awards         id                                   → Award
      payments       award \0 payment-id                  → Payment
      by_recipient   recipient \0 be32(year) funder \0 award   → (empty)   overview of one
                                                                          recipient: prefix scan
      by_year        be32(year) recipient \0 funder \0 award   → (empty)   every recipient's
                                                                          totals for a year
      deadlines      YYYY-MM-DD \0 award                  → (empty)       report deadlines of
                                                                          awards not cancelled
      instruments    id                                   → Instrument
      instr_by_muni  municipality \0 be32(year) agency \0 id → (empty)
      needs          municipality \0 be32(year) id        → Need
      journal        be64(outbox seq)                     → JournalEntry  the ledger's journal
      balances       account name                         → AccountBalance
      refs           kind-letter id ('a' agency, 'm' municipality, 'p' pilot) → RegistryRef
                     "#cursor"                            → be64 registry outbox seq followed

    Schema version 1. A store written by a newer version is refused at start (the runtime).
    Migration path: a new version adds tables or fields (protobuf keeps old values readable)
    and, where an index is added, grants_migrate() rebuilds it from "awards" in one txn.
*/
#ifndef GRANTS_STORE_H
#define GRANTS_STORE_H

#include "sam_follow.h"
#include "sam_service.h"
#include "samordna/v1/grants.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GRANTS_SCHEMA_VERSION 1u

/* The tables, in one list: the enum of handles and the NULL-terminated name list. */
#define GRANTS_TABLES(X)                                                                           \
    X(SCHEMES, "schemes")                                                                          \
    X(AWARDS, "awards")                                                                            \
    X(PAYMENTS, "payments")                                                                        \
    X(BY_RECIPIENT, "by_recipient")                                                                \
    X(BY_YEAR, "by_year")                                                                          \
    X(DEADLINES, "deadlines")                                                                      \
    X(INSTRUMENTS, "instruments")                                                                  \
    X(INSTR_BY_MUNI, "instr_by_muni")                                                              \
    X(NEEDS, "needs")                                                                              \
    X(JOURNAL, "journal")                                                                          \
    X(BALANCES, "balances")                                                                        \
    X(REFS, "refs")

typedef enum {
#define X(tag, name) GRANTS_T_##tag,
    GRANTS_TABLES(X)
#undef X
        GRANTS_T_COUNT
} grants_table_t;

extern const char *const grants_table_names[GRANTS_T_COUNT + 1];

/* Limits on what one event may carry. */
#define GRANTS_MAX_FUNDERS 32
#define GRANTS_MAX_TEXT 2000 /* purpose, description, note */
#define GRANTS_MAX_NAME 200  /* name, title */

/* The service context: table handles and the registry follower's state. */
typedef struct {
    sam_service_t *svc;
    MDB_dbi dbi[GRANTS_T_COUNT];
    sam_follow_t *follow; /* the registry's outbox follower (owned), also asked in prepare */
} grants_t;

/* A key under construction: strings with their terminating zero, big-endian integers. */
typedef struct {
    uint8_t b[512];
    size_t n;
    bool overflow; /* a part did not fit; the key must not be used */
} grants_key_t;

void grants_key_str(grants_key_t *k, const char *s); /* s and a zero byte */
void grants_key_raw(grants_key_t *k, const char *s); /* s without the zero byte */
void grants_key_be32(grants_key_t *k, uint32_t v);
void grants_key_be64(grants_key_t *k, uint64_t v);

/* Reads a value of `table` at key as `desc`: 0, MDB_NOTFOUND, or an error code. The
   message is the caller's (protobuf_c_message_free_unpacked). */
int grants_get(grants_t *g, MDB_txn *txn, grants_table_t table, const grants_key_t *k,
               const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out);
/* Packs and stores msg at key. 0 or an error code. */
int grants_put(grants_t *g, MDB_txn *txn, grants_table_t table, const grants_key_t *k,
               const ProtobufCMessage *msg);
/* Stores an empty value at key (index entries). 0 or an error code. */
int grants_put_empty(grants_t *g, MDB_txn *txn, grants_table_t table, const grants_key_t *k);
bool grants_has(grants_t *g, MDB_txn *txn, grants_table_t table, const grants_key_t *k);
/* Removes the value at key; a key that is not there counts as removed. 0 or an error code. */
int grants_del(grants_t *g, MDB_txn *txn, grants_table_t table, const grants_key_t *k);

/* Typed getters by id; NULL when absent or unreadable. Free with
   protobuf_c_message_free_unpacked. */
Samordna__V1__Scheme *grants_scheme_get(grants_t *g, MDB_txn *txn, const char *id);
Samordna__V1__Award *grants_award_get(grants_t *g, MDB_txn *txn, const char *id);

/* The balance of a ledger account (0 when it has none). */
int64_t grants_balance(grants_t *g, MDB_txn *txn, const char *account);

/* Registry projection: true when the registry is known to hold `id` of `kind`
   ('a' agency, 'm' municipality, 'p' pilot). */
bool grants_ref_known(grants_t *g, MDB_txn *txn, char kind, const char *id);
/* Records that the registry holds it. 0 or an error code. */
int grants_ref_put(grants_t *g, MDB_txn *txn, char kind, const char *id, const char *name);
/*  Mergers, from the registry's outbox: `merged` became part of `into` on `from`. Kept as two
    refs: 's' merged → "into from" and 'q' "into/merged" (a successor's predecessors). */
int grants_merger_put(grants_t *g, MDB_txn *txn, const char *merged, const char *into,
                      const char *from);
/* The successor of a municipality merged away, and the day: true, or false when it was not. */
bool grants_successor(grants_t *g, MDB_txn *txn, const char *id, char into[80], char from[11]);
#define GRANTS_MAX_PREDECESSORS 16 /* followed back from a municipality in one overview */
/* The municipalities merged into `into` (and theirs, in turn), at most cap ids into out
   (each 80 bytes); returns how many. */
size_t grants_predecessors(grants_t *g, MDB_txn *txn, const char *into, char (*out)[80],
                           size_t cap);

/* Validators shared by apply and query code. */
bool grants_valid_id(const char *s);   /* [a-z0-9-]{1,64} */
bool grants_valid_date(const char *s); /* YYYY-MM-DD, a real calendar day */

/* Formats øre as Norwegian kroner ("200 000,00"): sam_check_format_ore; returns out. */
const char *grants_fmt_ore(int64_t ore, char *out, size_t len);

#endif
