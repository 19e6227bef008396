/*  sam_store.c — see sam_store.h.

    The environment is opened with MDB_NOTLS so read transactions are not bound to a thread
    (the runtime is single-threaded per process, but the client library's users may not be),
    and with MDB_NOSYNC only when the operator asked for the weaker mode. Named tables are
    opened once, in one write transaction at start, and their handles kept for the life of
    the environment, as LMDB recommends.
*/
#include "sam_store.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_MAX_TABLES 32

static const char *const s_builtin_tables[] = {"meta", "outbox", "dedup", "leases", NULL};

struct sam_store_t {
    MDB_env *env;
    size_t ntables;
    char *names[S_MAX_TABLES]; /* owned copies */
    MDB_dbi dbis[S_MAX_TABLES];
};

void sam_be64_put(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)v;
}

uint64_t sam_be64_get(const uint8_t in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | in[i];
    return v;
}

void sam_be32_put(uint8_t out[4], uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)v;
}

uint32_t sam_be32_get(const uint8_t in[4])
{
    return ((uint32_t)in[0] << 24) | ((uint32_t)in[1] << 16) | ((uint32_t)in[2] << 8) | in[3];
}

const char *sam_store_strerror(int rc)
{
    switch (rc) {
    case SAM_STORE_CORRUPT:
        return "stored value does not decode (corrupt store?)";
    case SAM_STORE_NOMEM:
        return "out of memory";
    case SAM_STORE_VERSION:
        return "store schema is newer than this program";
    default:
        return mdb_strerror(rc);
    }
}

/* mkdir -p for the data folder. */
static int s_mkdirs(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) return -1;
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(path, 0750) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return (mkdir(path, 0750) == 0 || errno == EEXIST) ? 0 : -1;
}

static int s_add_table(sam_store_t *self, MDB_txn *txn, const char *name)
{
    if (self->ntables == S_MAX_TABLES) return MDB_DBS_FULL;
    int rc = mdb_dbi_open(txn, name, MDB_CREATE, &self->dbis[self->ntables]);
    if (rc) return rc;
    if (!(self->names[self->ntables] = strdup(name))) return SAM_STORE_NOMEM;
    self->ntables++;
    return 0;
}

sam_store_t *sam_store_open(const char *dir, const char *const *tables,
                            const sam_store_opts_t *opts, char *err, size_t errlen)
{
    sam_store_opts_t defaults = {0};
    if (!opts) opts = &defaults;
    sam_store_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int rc;
    const char *step = "create folder";
    if (s_mkdirs(dir) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        goto fail_quiet;
    }
    step = "mdb_env_create";
    if ((rc = mdb_env_create(&self->env))) goto fail;
    size_t mb = opts->map_size_mb ? opts->map_size_mb : 16384;
    step = "set map size";
    if ((rc = mdb_env_set_mapsize(self->env, mb * 1024 * 1024))) goto fail;
    step = "set max tables";
    if ((rc = mdb_env_set_maxdbs(self->env, S_MAX_TABLES))) goto fail;
    step = "set max readers";
    if ((rc = mdb_env_set_maxreaders(self->env, 512))) goto fail;
    step = "open";
    unsigned flags = MDB_NOTLS | (opts->nosync ? MDB_NOSYNC : 0);
    if ((rc = mdb_env_open(self->env, dir, flags, 0640))) goto fail;
    MDB_txn *txn;
    step = "begin";
    if ((rc = mdb_txn_begin(self->env, NULL, 0, &txn))) goto fail;
    step = "open tables";
    for (const char *const *t = s_builtin_tables; *t && !rc; t++)
        rc = s_add_table(self, txn, *t);
    for (const char *const *t = tables; t && *t && !rc; t++)
        rc = s_add_table(self, txn, *t);
    if (rc) {
        mdb_txn_abort(txn);
        goto fail;
    }
    step = "commit";
    if ((rc = mdb_txn_commit(txn))) goto fail;
    return self;
fail:
    snprintf(err, errlen, "store %s: %s: %s", dir, step, sam_store_strerror(rc));
fail_quiet:
    sam_store_destroy(&self);
    return NULL;
}

void sam_store_destroy(sam_store_t **self_p)
{
    if (!self_p || !*self_p) return;
    sam_store_t *self = *self_p;
    if (self->env) mdb_env_close(self->env);
    for (size_t i = 0; i < self->ntables; i++)
        free(self->names[i]);
    free(self);
    *self_p = NULL;
}

MDB_env *sam_store_env(sam_store_t *self)
{
    return self->env;
}

MDB_dbi sam_store_dbi(sam_store_t *self, const char *table)
{
    for (size_t i = 0; i < self->ntables; i++)
        if (strcmp(self->names[i], table) == 0) return self->dbis[i];
    assert(!"table was not declared when the store was opened");
    return 0;
}

int sam_store_begin(sam_store_t *self, MDB_txn *parent, bool write, MDB_txn **txn)
{
    return mdb_txn_begin(self->env, parent, write ? 0 : MDB_RDONLY, txn);
}

int sam_store_get_msg(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
                      const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc) return rc;
    *out = protobuf_c_message_unpack(desc, NULL, v.mv_size, v.mv_data);
    return *out ? 0 : SAM_STORE_CORRUPT;
}

int sam_store_put_msg(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
                      const ProtobufCMessage *msg, unsigned flags)
{
    MDB_val k = {klen, (void *)key};
    MDB_val v = {protobuf_c_message_get_packed_size(msg), NULL};
    /* MDB_RESERVE lets protobuf-c pack straight into the page: no temporary buffer. An empty
       message still needs a valid pointer, so reserve and pack nothing. */
    int rc = mdb_put(txn, dbi, &k, &v, flags | MDB_RESERVE);
    if (rc) return rc;
    if (v.mv_size) protobuf_c_message_pack(msg, v.mv_data);
    return 0;
}

bool sam_store_has(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen)
{
    MDB_val k = {klen, (void *)key}, v;
    return mdb_get(txn, dbi, &k, &v) == 0;
}

uint64_t sam_store_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *key)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    if (mdb_get(txn, dbi, &k, &v) != 0 || v.mv_size != 8) return 0;
    return sam_be64_get(v.mv_data);
}

int sam_store_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t value)
{
    uint8_t buf[8];
    sam_be64_put(buf, value);
    MDB_val k = {strlen(key), (void *)key}, v = {8, buf};
    return mdb_put(txn, dbi, &k, &v, 0);
}

int sam_store_cursor_after(MDB_cursor *cur, const void *after, size_t klen, MDB_val *k, MDB_val *v)
{
    *k = (MDB_val){klen, (void *)after};
    int rc = mdb_cursor_get(cur, k, v, klen ? MDB_SET_RANGE : MDB_FIRST);
    if (rc == 0 && klen && k->mv_size == klen && memcmp(k->mv_data, after, klen) == 0)
        rc = mdb_cursor_get(cur, k, v, MDB_NEXT);
    return rc;
}

uint32_t sam_store_schema(sam_store_t *self, MDB_txn *txn)
{
    MDB_val k = {6, "schema"}, v;
    if (mdb_get(txn, sam_store_dbi(self, "meta"), &k, &v) != 0 || v.mv_size != 4) return 0;
    return sam_be32_get(v.mv_data);
}

int sam_store_set_schema(sam_store_t *self, MDB_txn *txn, uint32_t version)
{
    uint8_t buf[4];
    sam_be32_put(buf, version);
    MDB_val k = {6, "schema"}, v = {4, buf};
    return mdb_put(txn, sam_store_dbi(self, "meta"), &k, &v, 0);
}
