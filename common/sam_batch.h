/*  sam_batch.h — the `batch` extension's frame: a packed samordna.v1.Batch.

    A worker that negotiated `batch` exchanges REQUESTs and REPLYs with the broker as
        "" "MDPW01" command Batch
    where Batch holds one or more Delivery{client, caller, body…}. Each ZeroMQ frame costs
    about as much to move as a small message, so one frame for many requests instead of
    six or seven frames for each is most of what the broker and a worker spend per request.

    The writer appends Delivery records with protobuf-c; the reader walks the frame in place
    (no copy, no allocation) and checks every length against the frame it came in.
*/
#ifndef SAM_BATCH_H
#define SAM_BATCH_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Body frames one delivery may carry: the broker's limit of frames per message. */
#define SAM_BATCH_MAX_BODY 64

/* A frame being built: the bytes of a packed Batch, `count` deliveries so far. */
typedef struct {
    uint8_t *data; /* owned */
    size_t len, cap;
    size_t count;
} sam_batch_t;

/* Bytes sam_batch_add() would append for this delivery. */
size_t sam_batch_delivery_size(size_t client_len, size_t caller_len,
                               const ProtobufCBinaryData *body, size_t nbody);

/* Appends one delivery (caller_len 0: none). Returns 0, or -1 when out of memory (nothing
   appended). */
int sam_batch_add(sam_batch_t *batch, const uint8_t *client, size_t client_len,
                  const uint8_t *caller, size_t caller_len, const ProtobufCBinaryData *body,
                  size_t nbody);

/* Empties the batch for the next frame; a buffer grown past 1 MiB is given back. */
void sam_batch_reset(sam_batch_t *batch);

void sam_batch_free(sam_batch_t *batch);

/* One delivery as read: pointers into the frame, valid while the frame is. */
typedef struct {
    const uint8_t *client;
    size_t client_len;
    const uint8_t *caller; /* NULL when absent */
    size_t caller_len;
    ProtobufCBinaryData body[SAM_BATCH_MAX_BODY];
    size_t nbody;
    size_t bytes; /* sum of the body sizes */
} sam_delivery_t;

typedef struct {
    const uint8_t *at, *end;
} sam_batch_reader_t;

void sam_batch_reader_init(sam_batch_reader_t *reader, const void *data, size_t size);

/* The next delivery: 1 when *out holds one, 0 at the end of the frame, -1 when the rest of
   the frame is not a Batch (a bad length, wire type or varint, or more than
   SAM_BATCH_MAX_BODY body frames). After -1 the reader stays at its end. */
int sam_batch_next(sam_batch_reader_t *reader, sam_delivery_t *out);

/* A protobuf varint at p[*i], p[0..n): true and *out set, *i moved past it. */
bool sam_batch_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *out);

#endif
