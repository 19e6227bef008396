/*  sam_store.h — a service's LMDB environment: opening it, its named tables, its schema
    version, and packing protobuf values in and out.

    On-disk layout shared by every service (each service documents its own tables in its
    own <service>_store.h):
      <data_dir>/<service>/data.mdb, lock.mdb     one LMDB environment per service
      table "meta"     key "schema"  → 4-byte big-endian schema version of the service
      table "outbox"   key 8-byte big-endian seq → samordna.v1.StoredEvent (packed)
      table "dedup"    key "<source>\0<id>"      → samordna.v1.DedupRecord (packed): the
                       seq, and the SHA-256 of the event's type, subject and data that tells a
                       retry from a reuse of the id (sam_service_write.c); empty in records
                       written before it was kept, which are taken as retries (no migration:
                       a new field of the same message, so the schema version stays)
      table "leases"   "l/<name>", "i/<holder>" → samordna.v1.Lease: who of the instances on
                       this store holds which shared work (sam_lease.h); only live state,
                       safe to drop while every instance is stopped
    Values are packed protobuf messages, so `mdb_dump -s outbox` piped through
    `protoc --decode samordna.v1.StoredEvent` reads a store with no project code.

    Several processes may open one environment at once (LMDB's own locking); nothing here
    caches table contents in memory, so no instance reads stale data behind another's write.
    Memory returned by LMDB lives only until its transaction ends: the helpers here unpack
    (copy) protobuf values before returning.
*/
#ifndef SAM_STORE_H
#define SAM_STORE_H

#include <lmdb.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sam_store_t sam_store_t;

typedef struct {
    size_t map_size_mb; /* largest the store may grow to (sparse file); 0 → 16384 */
    bool nosync;        /* opt-in weaker durability: MDB_NOSYNC (survives a crash of the
                           process, not of the machine) */
} sam_store_opts_t;

/* Errors of the store layer beyond LMDB's own codes (which are negative or MDB_*). */
enum {
    SAM_STORE_CORRUPT = -30000, /* a stored value did not unpack as the expected message */
    SAM_STORE_NOMEM = -30001,
    SAM_STORE_VERSION = -30002, /* the store's schema is newer than this program knows */
};

/*  Opens (creating when missing) the environment in `dir` with the given named tables
    (NULL-terminated) plus "meta", "outbox", "dedup" and "leases". On failure returns NULL and
   writes a reason to err. */
sam_store_t *sam_store_open(const char *dir, const char *const *tables,
                            const sam_store_opts_t *opts, char *err, size_t errlen);

/*  Closes the environment; accepts NULL; sets *self_p to NULL. */
void sam_store_destroy(sam_store_t **self_p);

/*  The LMDB handles, for the service's own store module. A table name the store was not
    opened with is a programming error (asserts). */
MDB_env *sam_store_env(sam_store_t *self);
MDB_dbi sam_store_dbi(sam_store_t *self, const char *table);

/*  Begins a transaction (read-only or write), optionally nested in `parent` (write only).
    Returns 0 or an LMDB error code. */
int sam_store_begin(sam_store_t *self, MDB_txn *parent, bool write, MDB_txn **txn);

/*  One string for an LMDB or SAM_STORE_* code. */
const char *sam_store_strerror(int rc);

/*  Reads the value at key and unpacks it as `desc`. Returns 0 with *out set (free it with
    protobuf_c_message_free_unpacked), MDB_NOTFOUND, SAM_STORE_CORRUPT, or an LMDB error. */
int sam_store_get_msg(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
                      const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out);

/*  Packs msg and stores it at key (flags as mdb_put). Returns 0 or an error code. */
int sam_store_put_msg(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
                      const ProtobufCMessage *msg, unsigned flags);

/*  True when the key exists. */
bool sam_store_has(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen);

/*  A counter or cursor kept as a big-endian 64-bit value at key: its value (0 when absent or
    not 8 bytes), and storing it. The put returns 0 or an LMDB error. */
uint64_t sam_store_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *key);
int sam_store_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t v);

/*  Positions cur on the first key after the klen bytes of `after` (a page token: the last
    key of the previous page, exclusive), or on the first key when klen is 0; *k and *v are
    that record. Returns 0, MDB_NOTFOUND at the end, or an LMDB error. */
int sam_store_cursor_after(MDB_cursor *cur, const void *after, size_t klen, MDB_val *k, MDB_val *v);

/*  The schema version stored in "meta" (0 when the store is new), and setting it. */
uint32_t sam_store_schema(sam_store_t *self, MDB_txn *txn);
int sam_store_set_schema(sam_store_t *self, MDB_txn *txn, uint32_t version);

/*  Big-endian integers for keys that sort numerically. */
void sam_be64_put(uint8_t out[8], uint64_t v);
uint64_t sam_be64_get(const uint8_t in[8]);
void sam_be32_put(uint8_t out[4], uint32_t v);
uint32_t sam_be32_get(const uint8_t in[4]);

#endif
