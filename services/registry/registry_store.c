/*  registry_store.c — see registry_store.h for the layout. */
#include "registry_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const registry_table_names[] = {
#define X(t) #t,
    REGISTRY_TABLES(X)
#undef X
        NULL,
};

void registry_store_bind(registry_store_t *self, sam_service_t *svc)
{
#define X(t) self->t = sam_service_dbi(svc, #t);
    REGISTRY_TABLES(X)
#undef X
    self->outbox = sam_store_dbi(sam_service_store(svc), "outbox");
}

int registry_migrate(sam_service_t *svc, MDB_txn *txn, uint32_t from)
{
    (void)svc;
    (void)txn;
    /* 0 → 1: the tables exist once the store is open; there is nothing to convert. */
    if (from > REGISTRY_SCHEMA_VERSION) return SAM_STORE_VERSION;
    return 0;
}

int registry_get(MDB_txn *txn, MDB_dbi dbi, const char *key, const ProtobufCMessageDescriptor *desc,
                 ProtobufCMessage **out)
{
    return sam_store_get_msg(txn, dbi, key, strlen(key), desc, out);
}

int registry_put(MDB_txn *txn, MDB_dbi dbi, const char *key, const ProtobufCMessage *msg)
{
    return sam_store_put_msg(txn, dbi, key, strlen(key), msg, 0);
}

bool registry_has(MDB_txn *txn, MDB_dbi dbi, const char *key)
{
    return sam_store_has(txn, dbi, key, strlen(key));
}

void registry_invitation_key(char *out, const char *programme, const char *municipality)
{
    snprintf(out, REGISTRY_KEY_MAX + 1, "%s/%s", programme, municipality);
}

void registry_page_clear(registry_page_t *page)
{
    for (size_t i = 0; i < page->n; i++)
        protobuf_c_message_free_unpacked(page->items[i], NULL);
    free(page->items);
    page->items = NULL;
    page->n = 0;
    page->next[0] = '\0';
}

int registry_page(MDB_txn *txn, MDB_dbi dbi, const ProtobufCMessageDescriptor *desc,
                  const char *after, size_t page_size, registry_match_fn match, const void *arg,
                  registry_page_t *page)
{
    page->items = NULL;
    page->n = 0;
    page->next[0] = '\0';
    if (page_size == 0) return 0;
    page->items = calloc(page_size, sizeof *page->items);
    if (!page->items) return SAM_STORE_NOMEM;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc) return rc;
    MDB_val k = {0, NULL}, v;
    bool more = false;
    size_t alen = after ? strlen(after) : 0;
    if (alen) {
        k.mv_size = alen;
        k.mv_data = (void *)after;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        /* Start strictly after the token: skip it when it is still there. */
        if (rc == 0 && k.mv_size == alen && memcmp(k.mv_data, after, alen) == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    } else {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, v.mv_size, v.mv_data);
        if (!m) {
            rc = SAM_STORE_CORRUPT;
            break;
        }
        if (match && !match(m, arg)) {
            protobuf_c_message_free_unpacked(m, NULL);
            continue;
        }
        if (page->n == page_size) {
            /* One more match exists: the page is full and the caller gets a token. */
            protobuf_c_message_free_unpacked(m, NULL);
            more = true;
            rc = MDB_NOTFOUND;
            break;
        }
        page->items[page->n++] = m;
        size_t kl = k.mv_size < REGISTRY_KEY_MAX ? k.mv_size : REGISTRY_KEY_MAX;
        memcpy(page->next, k.mv_data, kl);
        page->next[kl] = '\0';
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND) {
        registry_page_clear(page);
        return rc;
    }
    /* The full page's next token stays only when a further match was seen. */
    if (!more) page->next[0] = '\0';
    return 0;
}
