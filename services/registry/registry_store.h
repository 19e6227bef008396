/*  registry_store.h — the registry's tables in its LMDB environment.

    The registry is small (tens of agencies and municipalities, a handful of programmes and
    pilots, some hundreds of people), so every table is keyed by the record's own id and the
    list queries scan a table in key order, filtering as they go. No secondary index is
    kept: there is nothing to keep consistent, and a scan of a few hundred records is
    microseconds.

    On-disk layout (environment <data_dir>/registry/, beside the runtime's meta, outbox and
    dedup tables described in sam_store.h). Keys are the ids as bytes, no terminator; ids are
    [a-z0-9-]{1,64}. Values are packed samordna.v1 messages (proto/samordna/v1/registry.proto):

      table            key                          value
      agencies         agency id                    Agency
      municipalities   municipality id              Municipality
      programmes       programme id                 Programme
      invitations      "<programme>/<municipality>" Invitation
      pilots           pilot id                     Pilot
      people           person id                    Person
      reports          report id                    Report

    Schema version (table "meta", key "schema"): 1. Version 1 is the first layout; a store
    with no version is new and gets version 1 with empty tables. A later layout adds its step
    to registry_migrate() and raises REGISTRY_SCHEMA_VERSION.

    Read one table with no project code:
        mdb_dump -p -s agencies <data_dir>/registry | …  then protoc --decode samordna.v1.Agency
*/
#ifndef REGISTRY_STORE_H
#define REGISTRY_STORE_H

#include "sam_service.h"

#include <stdbool.h>
#include <stddef.h>

#define REGISTRY_SCHEMA_VERSION 1

/* Longest key: an invitation key, two ids and a slash. */
#define REGISTRY_KEY_MAX 130

/* The tables, in one list: the handle struct and the name list are built from it. */
#define REGISTRY_TABLES(X)                                                                         \
    X(agencies)                                                                                    \
    X(municipalities)                                                                              \
    X(programmes)                                                                                  \
    X(invitations)                                                                                 \
    X(pilots)                                                                                      \
    X(people)                                                                                      \
    X(reports)

/* The table handles, bound once when the service starts. */
typedef struct {
#define X(t) MDB_dbi t;
    REGISTRY_TABLES(X)
#undef X
    MDB_dbi outbox; /* the runtime's outbox: person.erased scrubs personal data from it */
} registry_store_t;

/* The table names, NULL-terminated, for sam_service_def_t.tables. */
extern const char *const registry_table_names[];

/* Binds the handles from the running service. */
void registry_store_bind(registry_store_t *self, sam_service_t *svc);

/* Brings a store from schema `from` to REGISTRY_SCHEMA_VERSION. Returns 0 or an error code. */
int registry_migrate(sam_service_t *svc, MDB_txn *txn, uint32_t from);

/* The record at `key`, unpacked as desc. Returns 0 with *out set (free with
   protobuf_c_message_free_unpacked), MDB_NOTFOUND, SAM_STORE_CORRUPT or an LMDB error. */
int registry_get(MDB_txn *txn, MDB_dbi dbi, const char *key, const ProtobufCMessageDescriptor *desc,
                 ProtobufCMessage **out);

/* Stores msg at key, replacing what was there. Returns 0 or an error code. */
int registry_put(MDB_txn *txn, MDB_dbi dbi, const char *key, const ProtobufCMessage *msg);

/* True when key exists in the table. */
bool registry_has(MDB_txn *txn, MDB_dbi dbi, const char *key);

/* The invitations key "<programme>/<municipality>" into out (REGISTRY_KEY_MAX + 1 bytes). */
void registry_invitation_key(char *out, const char *programme, const char *municipality);

/* One page of a list query. items are unpacked records the caller frees with
   registry_page_clear. next is the key of the last item when more records match after it,
   "" otherwise. */
typedef struct {
    ProtobufCMessage **items;
    size_t n;
    char next[REGISTRY_KEY_MAX + 1];
} registry_page_t;

/* Tells whether a record belongs in a filtered list. */
typedef bool (*registry_match_fn)(const ProtobufCMessage *rec, const void *arg);

/* Scans the table in key order from just after `after` ("" = from the start), keeping up to
   page_size records that `match` accepts (NULL accepts all). Returns 0 or an error code
   (a record that does not unpack is SAM_STORE_CORRUPT). */
int registry_page(MDB_txn *txn, MDB_dbi dbi, const ProtobufCMessageDescriptor *desc,
                  const char *after, size_t page_size, registry_match_fn match, const void *arg,
                  registry_page_t *page);

/* Frees the page's records; the page may be reused. */
void registry_page_clear(registry_page_t *page);

#endif
