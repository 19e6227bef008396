/*  sam_batch.c — see sam_batch.h. */
#include "sam_batch.h"

#include "samordna/v1/envelope.pb-c.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define S_KEEP_MAX (1u << 20) /* a reset gives back a buffer larger than this */

static size_t s_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v > 0x7f) {
        v >>= 7;
        n++;
    }
    return n;
}

static size_t s_varint_put(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v > 0x7f) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

bool sam_batch_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *i < n; shift += 7) {
        uint8_t b = p[(*i)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

static void s_delivery(Samordna__V1__Batch__Item *d, const uint8_t *client, size_t client_len,
                       const uint8_t *caller, size_t caller_len, const ProtobufCBinaryData *body,
                       size_t nbody)
{
    samordna__v1__batch__item__init(d);
    d->client = (ProtobufCBinaryData){client_len, (uint8_t *)client};
    d->caller = (ProtobufCBinaryData){caller_len, (uint8_t *)caller};
    d->n_body = nbody;
    d->body = (ProtobufCBinaryData *)body;
}

size_t sam_batch_delivery_size(size_t client_len, size_t caller_len,
                               const ProtobufCBinaryData *body, size_t nbody)
{
    /* Only the sizes matter to protobuf-c here, so the pointers may stay NULL. */
    Samordna__V1__Batch__Item d;
    s_delivery(&d, NULL, client_len, NULL, caller_len, body, nbody);
    size_t size = protobuf_c_message_get_packed_size(&d.base);
    return 1 + s_varint_size(size) + size;
}

int sam_batch_add(sam_batch_t *batch, const uint8_t *client, size_t client_len,
                  const uint8_t *caller, size_t caller_len, const ProtobufCBinaryData *body,
                  size_t nbody)
{
    Samordna__V1__Batch__Item d;
    s_delivery(&d, client, client_len, caller, caller_len, body, nbody);
    size_t size = protobuf_c_message_get_packed_size(&d.base);
    size_t need = batch->len + 1 + s_varint_size(size) + size;
    if (need > batch->cap) {
        size_t cap = batch->cap ? batch->cap : 4096;
        while (cap < need)
            cap *= 2;
        uint8_t *data = realloc(batch->data, cap);
        if (!data) return -1;
        batch->data = data;
        batch->cap = cap;
    }
    batch->data[batch->len++] = 0x0a; /* Batch.item: field 1, length-delimited */
    batch->len += s_varint_put(batch->data + batch->len, size);
    batch->len += protobuf_c_message_pack(&d.base, batch->data + batch->len);
    batch->count++;
    return 0;
}

void sam_batch_reset(sam_batch_t *batch)
{
    batch->len = 0;
    batch->count = 0;
    if (batch->cap > S_KEEP_MAX) sam_batch_free(batch);
}

void sam_batch_free(sam_batch_t *batch)
{
    free(batch->data);
    *batch = (sam_batch_t){0};
}

void sam_batch_reader_init(sam_batch_reader_t *reader, const void *data, size_t size)
{
    reader->at = data;
    reader->end = reader->at + size;
}

/* One field of a message in p[*i..n): its number, and for length-delimited fields where
   its bytes are. Any other wire type is skipped. False when the field runs past n. */
static bool s_field(const uint8_t *p, size_t n, size_t *i, uint64_t *number, int *type,
                    const uint8_t **value, size_t *len)
{
    uint64_t key, v;
    if (!sam_batch_varint(p, n, i, &key) || (key >> 3) == 0) return false;
    *number = key >> 3;
    *type = (int)(key & 7);
    switch (*type) {
    case 0:
        return sam_batch_varint(p, n, i, &v);
    case 1:
        if (n - *i < 8) return false;
        *i += 8;
        return true;
    case 2:
        if (!sam_batch_varint(p, n, i, &v) || v > n - *i) return false;
        *value = p + *i;
        *len = (size_t)v;
        *i += (size_t)v;
        return true;
    case 5:
        if (n - *i < 4) return false;
        *i += 4;
        return true;
    default:
        return false;
    }
}

static int s_malformed(sam_batch_reader_t *reader)
{
    reader->at = reader->end;
    return -1;
}

int sam_batch_next(sam_batch_reader_t *reader, sam_delivery_t *out)
{
    const uint8_t *p = reader->at;
    size_t n = (size_t)(reader->end - reader->at), i = 0;
    /* Skip fields of the Batch that are not deliveries (a later version's). */
    for (;;) {
        if (i == n) {
            reader->at = reader->end;
            return 0;
        }
        uint64_t number;
        int type;
        const uint8_t *value = NULL;
        size_t len = 0;
        if (!s_field(p, n, &i, &number, &type, &value, &len)) return s_malformed(reader);
        if (number != 1) continue;
        if (type != 2) return s_malformed(reader);
        reader->at = p + i;
        memset(out, 0, offsetof(sam_delivery_t, body));
        out->nbody = 0;
        out->bytes = 0;
        size_t j = 0;
        while (j < len) {
            const uint8_t *field = NULL;
            size_t flen = 0;
            if (!s_field(value, len, &j, &number, &type, &field, &flen)) return s_malformed(reader);
            if (number > 3) continue;
            if (type != 2) return s_malformed(reader);
            if (number == 1) {
                out->client = field;
                out->client_len = flen;
            } else if (number == 2) {
                out->caller = field;
                out->caller_len = flen;
            } else {
                if (out->nbody == SAM_BATCH_MAX_BODY) return s_malformed(reader);
                out->body[out->nbody++] = (ProtobufCBinaryData){flen, (uint8_t *)field};
                out->bytes += flen;
            }
        }
        return 1;
    }
}
