/*  fuzz_pbjson — the proto3 JSON mapping (common/sam_pbjson.h) on any bytes.

    The input is parsed as JSON once and decoded as the payload of every event type samordna
    knows (sam_catalog.h: the E rows of the services' tables), then as that same text through
    sam_pbjson_decode_text. Beside not crashing or leaking, it checks
    what the mapping promises:
      - a refusal has a reason, and its path and reason are clean text (they are logged and
        answered to clients as they are);
      - whatever is decoded can be written as JSON again, and that JSON decodes to a message
        that packs to the same bytes (the mapping is stable: a gateway that answers what it
        stored answers what was sent);
      - with unknown fields skipped nothing that was accepted without is refused.
*/
#include "sam_catalog.h"
#include "sam_check.h"
#include "sam_pbjson.h"

#include <stdlib.h>
#include <string.h>

static void s_clean_refusal(const sam_pbjson_error_t *err)
{
    if (!*err->reason || sam_check_text_why(err->reason, strlen(err->reason)) ||
        sam_check_text_why(err->path, strlen(err->path)))
        abort();
}

static uint8_t *s_pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(*len + 1);
    if (!buf) abort();
    protobuf_c_message_pack(m, buf);
    return buf;
}

/* m, decoded from JSON, written and read again packs the same. */
static void s_stable(const ProtobufCMessage *m, unsigned flags)
{
    json_t *j = sam_pbjson_encode(m, flags);
    if (!j) abort();
    sam_pbjson_error_t err;
    ProtobufCMessage *again = sam_pbjson_decode(m->descriptor, j, 0, &err);
    if (!again) abort();
    size_t n1, n2;
    uint8_t *a = s_pack(m, &n1), *b = s_pack(again, &n2);
    if (n1 != n2 || memcmp(a, b, n1) != 0) abort();
    free(a);
    free(b);
    protobuf_c_message_free_unpacked(again, NULL);
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sam_pbjson_error_t err;
    size_t n_types;
    const sam_catalog_event_t *types = sam_catalog_events(&n_types);
    const ProtobufCMessageDescriptor *first = types[size ? data[0] % n_types : 0].payload;
    ProtobufCMessage *m = sam_pbjson_decode_text(first, (const char *)data, size, 0, &err);
    if (!m) s_clean_refusal(&err);
    protobuf_c_message_free_unpacked(m, NULL);

    json_t *in =
        json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    if (!in) return 0;
    for (size_t i = 0; i < n_types; i++) {
        m = sam_pbjson_decode(types[i].payload, in, 0, &err);
        if (!m) s_clean_refusal(&err);
        ProtobufCMessage *lax =
            sam_pbjson_decode(types[i].payload, in, SAM_PBJSON_IGNORE_UNKNOWN, &err);
        if (m && !lax) abort();
        if (!lax) s_clean_refusal(&err);
        if (m) {
            s_stable(m, 0);
            s_stable(m, SAM_PBJSON_DEFAULTS | SAM_PBJSON_PROTO_NAMES);
        }
        protobuf_c_message_free_unpacked(m, NULL);
        protobuf_c_message_free_unpacked(lax, NULL);
    }
    json_decref(in);
    return 0;
}
