/*  status_store.c — key builders and table helpers of the status service (layout in the
    header). Keys are built into a fixed buffer; every id that reaches here was validated
    ([a-z0-9_-], at most 64 bytes), so a key never overflows — the builders still truncate
    rather than write past the buffer.
*/
#include "status_store.h"

#include <stdio.h>
#include <string.h>

const char *const status_tables[] = {"kinds",    "mshist",   "meetings",   "meetidx",
                                     "steps",    "barriers", "barhist",    "timeline",
                                     "registry", "cursor",   "pilotstate", NULL};

static void s_add(status_key_t *k, const void *p, size_t n)
{
    if (k->len >= STATUS_KEY_MAX) return;
    if (n > STATUS_KEY_MAX - k->len) n = STATUS_KEY_MAX - k->len;
    memcpy(k->b + k->len, p, n);
    k->len += n;
}

static void s_add_str(status_key_t *k, const char *s)
{
    s_add(k, s, strlen(s));
}

static void s_add_byte(status_key_t *k, uint8_t c)
{
    s_add(k, &c, 1);
}

static void s_add_seq(status_key_t *k, uint64_t seq)
{
    uint8_t be[8];
    sam_be64_put(be, seq);
    s_add(k, be, 8);
}

/* The keys below are a pair (a\0b) and one part more. */
void status_key_hist(status_key_t *k, const char *pilot, const char *date, uint64_t seq)
{
    status_key_pair(k, pilot, date);
    s_add_seq(k, seq);
}

void status_key_hist_end(status_key_t *k, const char *pilot, const char *as_of)
{
    status_key_pair(k, pilot, as_of);
    s_add_byte(k, 0xff);
}

void status_key_meetidx(status_key_t *k, const char *scope, const char *date, const char *id)
{
    status_key_pair(k, scope, date);
    s_add_str(k, id);
}

void status_key_id(status_key_t *k, const char *id)
{
    k->len = 0;
    s_add_str(k, id);
}

void status_key_pair(status_key_t *k, const char *a, const char *b)
{
    k->len = 0;
    s_add_str(k, a);
    s_add_byte(k, 0);
    s_add_str(k, b);
}

void status_key_timeline(status_key_t *k, const char *date, uint64_t seq, uint16_t n)
{
    k->len = 0;
    s_add_str(k, date);
    s_add_seq(k, seq);
    uint8_t be[2] = {(uint8_t)(n >> 8), (uint8_t)n};
    s_add(k, be, 2);
}

void status_key_fact(status_key_t *k, const char *kind, const char *id)
{
    k->len = 0;
    s_add_str(k, kind);
    s_add_byte(k, ':');
    s_add_str(k, id);
}

void status_token_encode(const status_key_t *k, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < k->len && o + 2 < outlen; i++) {
        out[o++] = hex[k->b[i] >> 4];
        out[o++] = hex[k->b[i] & 15];
    }
    out[o] = 0;
}

static int s_nibble(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int status_token_decode(const char *token, status_key_t *k)
{
    size_t n = strlen(token);
    if (n % 2 || n / 2 > STATUS_KEY_MAX) return -1;
    k->len = 0;
    for (size_t i = 0; i < n; i += 2) {
        int hi = s_nibble(token[i]), lo = s_nibble(token[i + 1]);
        if (hi < 0 || lo < 0) return -1;
        k->b[k->len++] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int status_get(sam_service_t *svc, MDB_txn *txn, const char *table, const status_key_t *k,
               const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
    return sam_store_get_msg(txn, sam_service_dbi(svc, table), k->b, k->len, desc, out);
}

int status_put(sam_service_t *svc, MDB_txn *txn, const char *table, const status_key_t *k,
               const ProtobufCMessage *msg)
{
    return sam_store_put_msg(txn, sam_service_dbi(svc, table), k->b, k->len, msg, 0);
}

int status_hist_each(sam_service_t *svc, MDB_txn *txn, const char *table, const char *pilot,
                     const char *as_of, status_hist_fn fn, void *arg)
{
    status_key_t start, end;
    status_key_pair(&start, pilot, "");
    status_key_hist_end(&end, pilot, as_of ? as_of : "9999-99-99");
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, sam_service_dbi(svc, table), &cur);
    if (rc) return rc;
    MDB_val k = {start.len, start.b}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0) {
        if (k.mv_size < start.len || memcmp(k.mv_data, start.b, start.len) != 0) break;
        size_t n = k.mv_size < end.len ? k.mv_size : end.len;
        int c = memcmp(k.mv_data, end.b, n);
        if (c > 0 || (c == 0 && k.mv_size > end.len)) break;
        if (fn(&v, arg)) break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}
