/*  fuzz_check — the field rules of common/sam_check.h on any bytes.

    The input is read as one message of a type chosen by its first byte (a CloudEvent inside
    a PublishRequest, a registry Agency, a notify Subscription, a status barrier …) and
    walked on the wire as the runtime does before any handler. Beside not crashing, it checks
    what the walk promises: when it lets a message through and protobuf-c decodes it, every
    string of the decoded message passes the text rule — so nothing the runtime accepts can
    hold a string a strict reader refuses. The escaping and sanitizing of values for
    refusals and logs are fuzzed on the same bytes: their output must itself be clean text.
    So are the id, date and amount rules: a refusal is clean text that names the field, and
    the predicate and the refusing form of a rule agree.
*/
#include "sam_check.h"

#include "cloudevents/v1/cloudevents.pb-c.h"
#include "samordna/v1/envelope.pb-c.h"
#include "samordna/v1/events.pb-c.h"
#include "samordna/v1/grants.pb-c.h"
#include "samordna/v1/notify.pb-c.h"
#include "samordna/v1/registry.pb-c.h"
#include "samordna/v1/status.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const ProtobufCMessageDescriptor *const s_types[] = {
    &samordna__v1__publish_request__descriptor,
    &io__cloudevents__v1__cloud_event__descriptor,
    &samordna__v1__request__descriptor,
    &samordna__v1__agency__descriptor,
    &samordna__v1__pilot__descriptor,
    &samordna__v1__subscription_created__descriptor,
    &samordna__v1__barrier_registered__descriptor,
    &samordna__v1__award__descriptor,
};
#define S_NTYPES (sizeof s_types / sizeof s_types[0])

/* Every string of m, at any depth, passes the text rule. */
static void s_all_clean(const ProtobufCMessage *m, int depth)
{
    if (!m || depth > SAM_CHECK_DEPTH_MAX) return;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)m + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
            void *const *items = *(void *const *const *)base;
            for (size_t k = 0; k < n; k++) {
                if (f->type == PROTOBUF_C_TYPE_STRING) {
                    const char *s = items[k];
                    if (s && sam_check_text_why(s, strlen(s))) abort();
                } else if (f->type == PROTOBUF_C_TYPE_MESSAGE)
                    s_all_clean(items[k], depth + 1);
            }
            continue;
        }
        if (f->quantifier_offset && (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)((const char *)m + f->quantifier_offset) != f->id)
            continue; /* another member of the oneof is set */
        if (f->type == PROTOBUF_C_TYPE_STRING) {
            const char *s = *(const char *const *)base;
            if (s && sam_check_text_why(s, strlen(s))) abort();
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE)
            s_all_clean(*(const ProtobufCMessage *const *)base, depth + 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const ProtobufCMessageDescriptor *d = s_types[data[0] % S_NTYPES];
    char err[300];
    int rc = sam_check_wire(d, data + 1, size - 1, "data", err, sizeof err);
    if (rc != 0 && (!*err || sam_check_text_why(err, strlen(err)))) abort();
    if (rc == 0) {
        ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, size - 1, data + 1);
        if (m) s_all_clean(m, 0);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    /* values shown in refusals and logs */
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    char out[512];
    sam_check_escape(text, size, out, sizeof out);
    if (sam_check_text_why(out, strlen(out)) || strpbrk(out, "\n\r\t")) abort();
    /* the id, date and amount rules on the same bytes */
    bool is_id = sam_check_is_id(text), is_date = sam_check_is_date(text);
    if (is_id != (sam_check_id("f.id", text, true, err, sizeof err) == 0)) abort();
    if (!is_id && (strncmp(err, "f.id: ", 6) || sam_check_text_why(err, strlen(err)))) abort();
    if (is_date != (sam_check_date("f.date", text, true, err, sizeof err) == 0)) abort();
    if (!is_date && (strncmp(err, "f.date: ", 8) || sam_check_text_why(err, strlen(err)))) abort();
    if (is_date && strlen(text) != 10) abort();
    int64_t ore = 0;
    memcpy(&ore, data, size < sizeof ore ? size : sizeof ore);
    int ok = sam_check_amount("f.ore", ore, data[0] & 1, err, sizeof err) == 0;
    if (ok != (ore >= (data[0] & 1) && ore <= SAM_CHECK_AMOUNT_MAX)) abort();
    if (!ok && strncmp(err, "f.ore: ", 7)) abort();
    sam_check_sanitize(text);
    if (sam_check_text_why(text, strlen(text)) || strpbrk(text, "\n\r")) abort();
    free(text);
    return 0;
}
