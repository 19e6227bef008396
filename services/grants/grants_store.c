/*  grants_store.c — keys and typed access to the grants tables (layout in grants_store.h).

    Everything here runs inside a transaction the caller owns; values read from LMDB are
    unpacked (copied) before the call returns, so nothing points into the map afterwards.
*/
#include "grants_store.h"

#include "sam_check.h"

#include <stdio.h>
#include <string.h>

const char *const grants_table_names[GRANTS_T_COUNT + 1] = {
#define X(tag, name) name,
    GRANTS_TABLES(X)
#undef X
        NULL,
};

static void s_key_bytes(grants_key_t *k, const void *p, size_t n)
{
    if (k->overflow || n > sizeof k->b - k->n) {
        k->overflow = true;
        return;
    }
    memcpy(k->b + k->n, p, n);
    k->n += n;
}

void grants_key_str(grants_key_t *k, const char *s)
{
    s_key_bytes(k, s, strlen(s) + 1);
}

void grants_key_raw(grants_key_t *k, const char *s)
{
    s_key_bytes(k, s, strlen(s));
}

void grants_key_be32(grants_key_t *k, uint32_t v)
{
    uint8_t b[4];
    sam_be32_put(b, v);
    s_key_bytes(k, b, 4);
}

void grants_key_be64(grants_key_t *k, uint64_t v)
{
    uint8_t b[8];
    sam_be64_put(b, v);
    s_key_bytes(k, b, 8);
}

int grants_get(grants_t *g, MDB_txn *txn, grants_table_t table, const grants_key_t *k,
               const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
    *out = NULL;
    if (k->overflow || k->n == 0) return MDB_NOTFOUND;
    return sam_store_get_msg(txn, g->dbi[table], k->b, k->n, desc, out);
}

int grants_put(grants_t *g, MDB_txn *txn, grants_table_t table, const grants_key_t *k,
               const ProtobufCMessage *msg)
{
    if (k->overflow || k->n == 0) return MDB_BAD_VALSIZE;
    return sam_store_put_msg(txn, g->dbi[table], k->b, k->n, msg, 0);
}

int grants_put_empty(grants_t *g, MDB_txn *txn, grants_table_t table, const grants_key_t *k)
{
    if (k->overflow || k->n == 0) return MDB_BAD_VALSIZE;
    MDB_val key = {k->n, (void *)k->b}, val = {0, (void *)""};
    return mdb_put(txn, g->dbi[table], &key, &val, 0);
}

int grants_del(grants_t *g, MDB_txn *txn, grants_table_t table, const grants_key_t *k)
{
    if (k->overflow || k->n == 0) return MDB_BAD_VALSIZE;
    MDB_val key = {k->n, (void *)k->b};
    int rc = mdb_del(txn, g->dbi[table], &key, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

bool grants_has(grants_t *g, MDB_txn *txn, grants_table_t table, const grants_key_t *k)
{
    if (k->overflow || k->n == 0) return false;
    return sam_store_has(txn, g->dbi[table], k->b, k->n);
}

/* The record of `table` keyed by its id alone, or NULL. */
static ProtobufCMessage *s_get_by_id(grants_t *g, MDB_txn *txn, grants_table_t table,
                                     const char *id, const ProtobufCMessageDescriptor *desc)
{
    grants_key_t k = {0};
    grants_key_raw(&k, id);
    ProtobufCMessage *m = NULL;
    return grants_get(g, txn, table, &k, desc, &m) == 0 ? m : NULL;
}

Samordna__V1__Scheme *grants_scheme_get(grants_t *g, MDB_txn *txn, const char *id)
{
    return (Samordna__V1__Scheme *)s_get_by_id(g, txn, GRANTS_T_SCHEMES, id,
                                               &samordna__v1__scheme__descriptor);
}

Samordna__V1__Award *grants_award_get(grants_t *g, MDB_txn *txn, const char *id)
{
    return (Samordna__V1__Award *)s_get_by_id(g, txn, GRANTS_T_AWARDS, id,
                                              &samordna__v1__award__descriptor);
}

int64_t grants_balance(grants_t *g, MDB_txn *txn, const char *account)
{
    grants_key_t k = {0};
    grants_key_raw(&k, account);
    ProtobufCMessage *m = NULL;
    if (grants_get(g, txn, GRANTS_T_BALANCES, &k, &samordna__v1__account_balance__descriptor, &m) !=
        0)
        return 0;
    int64_t v = ((Samordna__V1__AccountBalance *)m)->balance_ore;
    protobuf_c_message_free_unpacked(m, NULL);
    return v;
}

static void s_ref_key(grants_key_t *k, char kind, const char *id)
{
    char c[2] = {kind, 0};
    grants_key_raw(k, c);
    grants_key_raw(k, id);
}

bool grants_ref_known(grants_t *g, MDB_txn *txn, char kind, const char *id)
{
    grants_key_t k = {0};
    s_ref_key(&k, kind, id);
    return grants_has(g, txn, GRANTS_T_REFS, &k);
}

int grants_ref_put(grants_t *g, MDB_txn *txn, char kind, const char *id, const char *name)
{
    grants_key_t k = {0};
    s_ref_key(&k, kind, id);
    Samordna__V1__RegistryRef ref = SAMORDNA__V1__REGISTRY_REF__INIT;
    ref.kind = kind == 'a'   ? "agency"
               : kind == 'm' ? "municipality"
               : kind == 'p' ? "pilot"
               : kind == 's' ? "successor"
                             : "predecessor";
    ref.id = (char *)id;
    ref.name = (char *)(name ? name : "");
    return grants_put(g, txn, GRANTS_T_REFS, &k, &ref.base);
}

int grants_merger_put(grants_t *g, MDB_txn *txn, const char *merged, const char *into,
                      const char *from)
{
    char both[200];
    snprintf(both, sizeof both, "%s %s", into, from);
    int rc = grants_ref_put(g, txn, 's', merged, both);
    snprintf(both, sizeof both, "%s/%s", into, merged);
    return rc ? rc : grants_ref_put(g, txn, 'q', both, "");
}

bool grants_successor(grants_t *g, MDB_txn *txn, const char *id, char into[80], char from[11])
{
    grants_key_t k = {0};
    s_ref_key(&k, 's', id);
    ProtobufCMessage *m = NULL;
    if (grants_get(g, txn, GRANTS_T_REFS, &k, &samordna__v1__registry_ref__descriptor, &m))
        return false;
    const char *name = ((Samordna__V1__RegistryRef *)m)->name, *sp = strchr(name, ' ');
    bool ok = sp && (size_t)(sp - name) < 80;
    if (ok) {
        snprintf(into, 80, "%.*s", (int)(sp - name), name);
        snprintf(from, 11, "%s", sp + 1);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return ok;
}

size_t grants_predecessors(grants_t *g, MDB_txn *txn, const char *into, char (*out)[80], size_t cap)
{
    size_t n = 0;
    /* breadth first over the 'q' refs: into's predecessors, then theirs */
    for (size_t next = 0; next <= n && n < cap; next++) {
        const char *of = next == 0 ? into : out[next - 1];
        grants_key_t prefix = {0};
        char p[100];
        snprintf(p, sizeof p, "%s/", of);
        s_ref_key(&prefix, 'q', p);
        MDB_cursor *cur;
        if (prefix.overflow || mdb_cursor_open(txn, g->dbi[GRANTS_T_REFS], &cur)) break;
        MDB_val k = {prefix.n, prefix.b}, v;
        for (int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
             rc == 0 && k.mv_size > prefix.n && memcmp(k.mv_data, prefix.b, prefix.n) == 0 &&
             n < cap;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            size_t l = k.mv_size - prefix.n;
            if (l >= 80) continue;
            memcpy(out[n], (const char *)k.mv_data + prefix.n, l);
            out[n][l] = 0;
            n++;
        }
        mdb_cursor_close(cur);
        if (next == n) break;
    }
    return n;
}

/* Everyone's id and date rules (sam_check.h), under the names grants' callers know. */
bool grants_valid_id(const char *s)
{
    return sam_check_is_id(s);
}

bool grants_valid_date(const char *s)
{
    return sam_check_is_date(s);
}

const char *grants_fmt_ore(int64_t ore, char *out, size_t len)
{
    return sam_check_format_ore(ore, out, len);
}
