/*  sam_pbjson_selftest — the proto3 JSON mapping (sam_pbjson.h) on samordna's own messages.

    Every kind of field round-trips: a message is packed, unpacked, written as JSON, the
    text read back and packed again, and the two packings must be the same bytes, with and
    without defaults and in both naming styles. The kinds samordna's .proto files do not use
    (float, double, sint, sfixed, fixed, a message nested in itself) come from a message
    described by hand below, as protoc-c would describe it. Then what the JSON looks like,
    the spellings taken on input, and each refusal with its path and reason.
    Prints nothing while the checks hold; see sam_testkit.h. With arguments it is the
    mapping as a filter (s_filter), which tests/pbjson_test.py compares with protobuf's own.
*/
#include "sam_catalog.h"
#include "sam_pbjson.h"
#include "sam_testkit.h"

#include "cloudevents/v1/cloudevents.pb-c.h"
#include "samordna/v1/envelope.pb-c.h"
#include "samordna/v1/events.pb-c.h"
#include "samordna/v1/grants.pb-c.h"
#include "samordna/v1/notify.pb-c.h"
#include "samordna/v1/registry.pb-c.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK SAM_CHECK

/* ---- a message of the kinds samordna's protos do not use ------------------------------------ */

typedef struct s_kinds s_kinds_t;
struct s_kinds {
    ProtobufCMessage base;
    double a_double;
    float b_float;
    int32_t c_sint32;
    int64_t d_sint64;
    uint32_t e_fixed32;
    uint64_t f_fixed64;
    int32_t g_sfixed32;
    int64_t h_sfixed64;
    size_t n_i_doubles;
    double *i_doubles;
    s_kinds_t *j_child;
};

static const ProtobufCMessageDescriptor s_kinds_desc;

static void s_kinds_init(ProtobufCMessage *m)
{
    memset(m, 0, sizeof(s_kinds_t));
    m->descriptor = &s_kinds_desc;
}

#define S_FIELD(name, id, label, type, q, desc, flags)                                             \
    {                                                                                              \
#name, id, label, type, q, offsetof(s_kinds_t, name), desc, NULL, flags, 0, NULL, NULL     \
    }
static const ProtobufCFieldDescriptor s_kinds_fields[] = {
    S_FIELD(a_double, 1, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_DOUBLE, 0, NULL, 0),
    S_FIELD(b_float, 2, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_FLOAT, 0, NULL, 0),
    S_FIELD(c_sint32, 3, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_SINT32, 0, NULL, 0),
    S_FIELD(d_sint64, 4, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_SINT64, 0, NULL, 0),
    S_FIELD(e_fixed32, 5, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_FIXED32, 0, NULL, 0),
    S_FIELD(f_fixed64, 6, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_FIXED64, 0, NULL, 0),
    S_FIELD(g_sfixed32, 7, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_SFIXED32, 0, NULL, 0),
    S_FIELD(h_sfixed64, 8, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_SFIXED64, 0, NULL, 0),
    S_FIELD(i_doubles, 9, PROTOBUF_C_LABEL_REPEATED, PROTOBUF_C_TYPE_DOUBLE,
            offsetof(s_kinds_t, n_i_doubles), NULL, PROTOBUF_C_FIELD_FLAG_PACKED),
    S_FIELD(j_child, 10, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_MESSAGE, 0, &s_kinds_desc, 0),
};
static const unsigned s_kinds_by_name[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
static const ProtobufCIntRange s_kinds_ranges[] = {{1, 0}, {0, 10}};
static const ProtobufCMessageDescriptor s_kinds_desc = {
    PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    "selftest.Kinds",
    "Kinds",
    "Selftest__Kinds",
    "selftest",
    sizeof(s_kinds_t),
    10,
    s_kinds_fields,
    s_kinds_by_name,
    1,
    s_kinds_ranges,
    s_kinds_init,
    NULL,
    NULL,
    NULL,
};

/* ---- helpers -------------------------------------------------------------------------------- */

/* packed → unpacked → JSON text → decoded → packed equals packed, with these flags. */
static bool s_roundtrip(const ProtobufCMessage *msg, unsigned flags)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *a = malloc(n + 1);
    protobuf_c_message_pack(msg, a);
    ProtobufCMessage *u = protobuf_c_message_unpack(msg->descriptor, NULL, n, a);
    json_t *j = u ? sam_pbjson_encode(u, flags) : NULL;
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    sam_pbjson_error_t err;
    ProtobufCMessage *back =
        text ? sam_pbjson_decode_text(msg->descriptor, text, strlen(text), 0, &err) : NULL;
    bool ok = false;
    if (back) {
        size_t m = protobuf_c_message_get_packed_size(back);
        uint8_t *b = malloc(m + 1);
        protobuf_c_message_pack(back, b);
        ok = m == n && memcmp(a, b, n) == 0;
        free(b);
    } else if (text) {
        fprintf(stderr, "round trip of %s: %s: %s\n", msg->descriptor->name, err.path, err.reason);
    }
    if (!ok && text) fprintf(stderr, "round trip of %s failed: %s\n", msg->descriptor->name, text);
    protobuf_c_message_free_unpacked(back, NULL);
    free(text);
    json_decref(j);
    protobuf_c_message_free_unpacked(u, NULL);
    free(a);
    return ok;
}

static bool s_roundtrips(const ProtobufCMessage *msg)
{
    return s_roundtrip(msg, 0) && s_roundtrip(msg, SAM_PBJSON_DEFAULTS) &&
           s_roundtrip(msg, SAM_PBJSON_PROTO_NAMES) &&
           s_roundtrip(msg, SAM_PBJSON_DEFAULTS | SAM_PBJSON_PROTO_NAMES);
}

/* msg as compact JSON text (sorted keys), for comparing with what a test expects. */
static bool s_encodes_as(const ProtobufCMessage *msg, unsigned flags, const char *want)
{
    json_t *j = sam_pbjson_encode(msg, flags);
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    bool ok = text && strcmp(text, want) == 0;
    if (!ok) fprintf(stderr, "encoded as %s\n  expected %s\n", text ? text : "(null)", want);
    free(text);
    json_decref(j);
    return ok;
}

static ProtobufCMessage *s_decode(const ProtobufCMessageDescriptor *d, const char *text)
{
    sam_pbjson_error_t err;
    ProtobufCMessage *m = sam_pbjson_decode_text(d, text, strlen(text), 0, &err);
    if (!m) fprintf(stderr, "decode %s: %s: %s\n", text, err.path, err.reason);
    return m;
}

/* text is refused at path with a reason that holds `reason`. */
static bool s_refused(const ProtobufCMessageDescriptor *d, const char *text, unsigned flags,
                      const char *path, const char *reason)
{
    sam_pbjson_error_t err;
    ProtobufCMessage *m = sam_pbjson_decode_text(d, text, strlen(text), flags, &err);
    bool ok = !m && strcmp(err.path, path) == 0 && strstr(err.reason, reason);
    if (!ok)
        fprintf(stderr, "%s: %s\n  got %s: '%s' — '%s'\n", text, m ? "accepted" : "refused",
                m ? "" : "path", m ? "" : err.path, m ? "" : err.reason);
    protobuf_c_message_free_unpacked(m, NULL);
    return ok;
}

/* ---- the tests ------------------------------------------------------------------------------ */

static void s_award_test(void)
{
    Samordna__V1__FunderShare s1 = SAMORDNA__V1__FUNDER_SHARE__INIT;
    Samordna__V1__FunderShare s2 = SAMORDNA__V1__FUNDER_SHARE__INIT;
    s1.agency = "imdi";
    s1.amount_ore = 100000000;
    s1.paid_ore = 25000000;
    s2.agency = "nav-ost-viken";
    s2.amount_ore = 50000000;
    s2.repaid_ore = -1; /* not a value samordna stores; a negative int64 all the same */
    Samordna__V1__FunderShare *shares[] = {&s1, &s2};
    Samordna__V1__Award a = SAMORDNA__V1__AWARD__INIT;
    a.id = "ps19-halden";
    a.scheme = "imdi-2019";
    a.recipient = "halden";
    a.amount_ore = 150000000;
    a.currency = "NOK";
    a.purpose = "Koordinator for «Saman» – første år";
    a.n_funders = 2;
    a.funders = shares;
    a.status = SAMORDNA__V1__AWARD_STATUS__AWARD_STATUS_OPEN;
    a.year = 2019;
    CHECK(s_roundtrips(&a.base));
    CHECK(s_encodes_as(
        &s1.base, 0, "{\"agency\":\"imdi\",\"amountOre\":\"100000000\",\"paidOre\":\"25000000\"}"));
    CHECK(s_encodes_as(
        &s1.base, SAM_PBJSON_PROTO_NAMES,
        "{\"agency\":\"imdi\",\"amount_ore\":\"100000000\",\"paid_ore\":\"25000000\"}"));
    CHECK(s_encodes_as(&s1.base, SAM_PBJSON_DEFAULTS,
                       "{\"agency\":\"imdi\",\"amountOre\":\"100000000\",\"cancelledOre\":\"0\","
                       "\"paidOre\":\"25000000\",\"repaidOre\":\"0\"}"));
    json_t *j = sam_pbjson_encode(&a.base, 0);
    CHECK(j && strcmp(json_string_value(json_object_get(j, "status")), "AWARD_STATUS_OPEN") == 0);
    CHECK(j && json_integer_value(json_object_get(j, "year")) == 2019);
    CHECK(j && !json_object_get(j, "pilot"));
    CHECK(j && json_array_size(json_object_get(j, "funders")) == 2);
    CHECK(j && strcmp(json_string_value(json_object_get(
                          json_array_get(json_object_get(j, "funders"), 1), "repaidOre")),
                      "-1") == 0);
    json_decref(j);

    /* the spellings taken on input: both names, numbers for int64, an enum's number, null */
    Samordna__V1__Award *d = (Samordna__V1__Award *)s_decode(
        &samordna__v1__award__descriptor,
        "{\"id\":\"x\",\"amount_ore\":150000000,\"reportDue\":\"2020-03-01\",\"status\":2,"
        "\"funders\":[{\"agency\":\"imdi\",\"amountOre\":\"-0\",\"paid_ore\":1e3}],"
        "\"pilot\":null,\"year\":\"2019\",\"recipientKind\":null}");
    CHECK(d && d->amount_ore == 150000000 && strcmp(d->report_due, "2020-03-01") == 0);
    CHECK(d && d->status == SAMORDNA__V1__AWARD_STATUS__AWARD_STATUS_COMPLETED && d->year == 2019);
    CHECK(d && d->n_funders == 1 && d->funders[0]->amount_ore == 0 &&
          d->funders[0]->paid_ore == 1000);
    CHECK(d && strcmp(d->pilot, "") == 0);
    protobuf_c_message_free_unpacked(&d->base, NULL);

    /* the 64-bit limits, both ways */
    Samordna__V1__FunderShare lim = SAMORDNA__V1__FUNDER_SHARE__INIT;
    lim.amount_ore = INT64_MAX;
    lim.paid_ore = INT64_MIN;
    CHECK(s_roundtrips(&lim.base));
    CHECK(s_encodes_as(&lim.base, 0,
                       "{\"amountOre\":\"9223372036854775807\",\"paidOre\":"
                       "\"-9223372036854775808\"}"));
}

static void s_registry_test(void)
{
    char *former[] = {"Fylkesmannen i Østfold", "Fylkesmannen i Oslo og Viken"};
    Samordna__V1__AgencyRole roles[] = {SAMORDNA__V1__AGENCY_ROLE__AGENCY_ROLE_PILOT_OWNER,
                                        SAMORDNA__V1__AGENCY_ROLE__AGENCY_ROLE_STEERING_GROUP};
    Samordna__V1__Agency ag = SAMORDNA__V1__AGENCY__INIT;
    ag.id = "fmov";
    ag.name = "Statsforvalteren i Oslo og Viken";
    ag.n_former_names = 2;
    ag.former_names = former;
    ag.kind = SAMORDNA__V1__AGENCY_KIND__AGENCY_KIND_COUNTY_GOVERNOR;
    ag.n_roles = 2;
    ag.roles = roles;
    CHECK(s_roundtrips(&ag.base));
    CHECK(s_encodes_as(&ag.base, 0,
                       "{\"formerNames\":[\"Fylkesmannen i \u00d8stfold\",\"Fylkesmannen i Oslo "
                       "og Viken\"],\"id\":\"fmov\",\"kind\":\"AGENCY_KIND_COUNTY_GOVERNOR\","
                       "\"name\":\"Statsforvalteren i Oslo og Viken\",\"roles\":["
                       "\"AGENCY_ROLE_PILOT_OWNER\",\"AGENCY_ROLE_STEERING_GROUP\"]}"));
    Samordna__V1__Agency empty = SAMORDNA__V1__AGENCY__INIT;
    CHECK(s_encodes_as(&empty.base, 0, "{}"));
    CHECK(s_encodes_as(&empty.base, SAM_PBJSON_DEFAULTS,
                       "{\"formerNames\":[],\"id\":\"\",\"kind\":\"AGENCY_KIND_UNSPECIFIED\","
                       "\"name\":\"\",\"roles\":[],\"unit\":\"\"}"));
    CHECK(s_roundtrips(&empty.base));
    Samordna__V1__Agency *d = (Samordna__V1__Agency *)s_decode(
        &samordna__v1__agency__descriptor, "{\"roles\":[\"AGENCY_ROLE_RESEARCHER\",3],"
                                           "\"former_names\":null,\"kind\":null}");
    CHECK(d && d->n_roles == 2 &&
          d->roles[0] == SAMORDNA__V1__AGENCY_ROLE__AGENCY_ROLE_RESEARCHER &&
          d->roles[1] == SAMORDNA__V1__AGENCY_ROLE__AGENCY_ROLE_INVESTMENT_TEAM);
    CHECK(d && d->n_former_names == 0 && d->kind == 0);
    protobuf_c_message_free_unpacked(&d->base, NULL);
}

static void s_envelope_test(void)
{
    /* bytes (single and repeated), bool, uint32, uint64, nested messages */
    uint8_t digest[32];
    for (int i = 0; i < 32; i++)
        digest[i] = (uint8_t)(i * 37 + 250);
    Samordna__V1__DedupRecord dr = SAMORDNA__V1__DEDUP_RECORD__INIT;
    dr.seq = UINT64_MAX;
    dr.digest.len = sizeof digest;
    dr.digest.data = digest;
    CHECK(s_roundtrips(&dr.base));
    ProtobufCBinaryData bodies[] = {{3, (uint8_t *)"\xfb\xff\xfe"}, {0, NULL}, {1, digest}};
    Samordna__V1__Batch__Item item = SAMORDNA__V1__BATCH__ITEM__INIT;
    item.client.len = 5;
    item.client.data = (uint8_t *)"\0abc\xff";
    item.n_body = 3;
    item.body = bodies;
    Samordna__V1__Batch__Item *items[] = {&item, &item};
    Samordna__V1__Batch b = SAMORDNA__V1__BATCH__INIT;
    b.n_item = 2;
    b.item = items;
    CHECK(s_roundtrips(&b.base));
    CHECK(
        s_encodes_as(&item.base, 0, "{\"body\":[\"+//+\",\"\",\"+g==\"],\"client\":\"AGFiY/8=\"}"));
    /* URL-safe and unpadded base64 are taken */
    Samordna__V1__Batch__Item *d = (Samordna__V1__Batch__Item *)s_decode(
        &samordna__v1__batch__item__descriptor,
        "{\"body\":[\"-__-\",\"+g\",\"-g\",\"+//+\",\"AGFiY_8\"],\"caller\":\"AGFiY/8\"}");
    CHECK(d && d->n_body == 5 && d->body[0].len == 3 &&
          memcmp(d->body[0].data, "\xfb\xff\xfe", 3) == 0);
    CHECK(d && d->body[1].len == 1 && d->body[1].data[0] == 0xfa && d->body[2].data[0] == 0xfa);
    CHECK(d && d->body[4].len == 5 && memcmp(d->body[4].data, "\0abc\xff", 5) == 0);
    CHECK(d && d->caller.len == 5 && memcmp(d->caller.data, "\0abc\xff", 5) == 0);
    protobuf_c_message_free_unpacked(&d->base, NULL);

    Samordna__V1__Caller caller = SAMORDNA__V1__CALLER__INIT;
    caller.agency = "imdi";
    caller.role = "publisher";
    caller.insecure = 1;
    Samordna__V1__StoredEvent se = SAMORDNA__V1__STORED_EVENT__INIT;
    se.seq = 42;
    se.caller = &caller;
    se.recorded_ms = 1575072000000;
    CHECK(s_roundtrips(&se.base));
    CHECK(s_encodes_as(&se.base, 0,
                       "{\"caller\":{\"agency\":\"imdi\",\"insecure\":true,\"role\":\"publisher\"},"
                       "\"recordedMs\":\"1575072000000\",\"seq\":\"42\"}"));
    Samordna__V1__ReadRequest rr = SAMORDNA__V1__READ_REQUEST__INIT;
    rr.after_seq = 7;
    rr.max = UINT32_MAX;
    rr.wait_ms = 1;
    CHECK(s_roundtrips(&rr.base));
    CHECK(s_encodes_as(&rr.base, 0, "{\"afterSeq\":\"7\",\"max\":4294967295,\"waitMs\":1}"));
}

static void s_cloudevent_test(void)
{
    /* a map, oneofs, google.protobuf.Timestamp, int32 */
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = 1575115200; /* 2019-11-30T12:00:00Z */
    ts.nanos = 500000000;
    Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue v[4] = {
        IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__INIT,
        IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__INIT,
        IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__INIT,
        IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__INIT,
    };
    v[0].attr_case =
        IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_TIMESTAMP;
    v[0].ce_timestamp = &ts;
    v[1].attr_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_STRING;
    v[1].ce_string = "halden";
    v[2].attr_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_INTEGER;
    v[2].ce_integer = 0; /* a set member of a oneof is written even at its default */
    v[3].attr_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_BOOLEAN;
    v[3].ce_boolean = 0;
    Io__Cloudevents__V1__CloudEvent__AttributesEntry e[4] = {
        IO__CLOUDEVENTS__V1__CLOUD_EVENT__ATTRIBUTES_ENTRY__INIT,
        IO__CLOUDEVENTS__V1__CLOUD_EVENT__ATTRIBUTES_ENTRY__INIT,
        IO__CLOUDEVENTS__V1__CLOUD_EVENT__ATTRIBUTES_ENTRY__INIT,
        IO__CLOUDEVENTS__V1__CLOUD_EVENT__ATTRIBUTES_ENTRY__INIT,
    };
    const char *keys[] = {"time", "subject", "n", "flag"};
    Io__Cloudevents__V1__CloudEvent__AttributesEntry *ep[4];
    for (int i = 0; i < 4; i++) {
        e[i].key = (char *)keys[i];
        e[i].value = &v[i];
        ep[i] = &e[i];
    }
    Io__Cloudevents__V1__CloudEvent ce = IO__CLOUDEVENTS__V1__CLOUD_EVENT__INIT;
    ce.id = "e1";
    ce.source = "imdi";
    ce.spec_version = "1.0";
    ce.type = "no.samordna.grants.award.granted";
    ce.n_attributes = 4;
    ce.attributes = ep;
    ce.data_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_BINARY_DATA;
    ce.binary_data.len = 3;
    ce.binary_data.data = (uint8_t *)"\x0a\x01x";
    CHECK(s_roundtrips(&ce.base));
    CHECK(s_encodes_as(&ce.base, 0,
                       "{\"attributes\":{\"flag\":{\"ceBoolean\":false},\"n\":{\"ceInteger\":0},"
                       "\"subject\":{\"ceString\":\"halden\"},\"time\":{\"ceTimestamp\":"
                       "\"2019-11-30T12:00:00.500Z\"}},\"binaryData\":\"CgF4\",\"id\":\"e1\","
                       "\"source\":\"imdi\",\"specVersion\":\"1.0\",\"type\":"
                       "\"no.samordna.grants.award.granted\"}"));
    ts.nanos = 0;
    CHECK(s_encodes_as(&ts.base, 0, "\"2019-11-30T12:00:00Z\""));
    ts.nanos = 1;
    CHECK(s_encodes_as(&ts.base, 0, "\"2019-11-30T12:00:00.000000001Z\""));
    ts.seconds = -62135596800;
    ts.nanos = 120000;
    CHECK(s_encodes_as(&ts.base, 0, "\"0001-01-01T00:00:00.000120Z\""));
    CHECK(s_roundtrips(&ts.base));
    ts.seconds = 253402300800; /* year 10000 */
    CHECK(sam_pbjson_encode(&ts.base, 0) == NULL);

    /* offsets, a leap day, and the dates that are none */
    Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue *av =
        (Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue *)s_decode(
            &io__cloudevents__v1__cloud_event__cloud_event_attribute_value__descriptor,
            "{\"ce_timestamp\":\"2028-02-29T01:30:00.25+02:00\"}");
    CHECK(av && av->ce_timestamp && av->ce_timestamp->seconds == 1835393400 &&
          av->ce_timestamp->nanos == 250000000);
    protobuf_c_message_free_unpacked(&av->base, NULL);
    const ProtobufCMessageDescriptor *avd =
        &io__cloudevents__v1__cloud_event__cloud_event_attribute_value__descriptor;
    CHECK(s_refused(avd, "{\"ceTimestamp\":\"2027-02-29T00:00:00Z\"}", 0, "ceTimestamp",
                    "not a valid date"));
    CHECK(s_refused(avd, "{\"ceTimestamp\":\"2019-11-30 12:00:00Z\"}", 0, "ceTimestamp",
                    "expected an RFC 3339 time"));
    CHECK(s_refused(avd, "{\"ceTimestamp\":\"2019-11-30T12:00:00\"}", 0, "ceTimestamp",
                    "with Z or an offset"));
    CHECK(s_refused(avd, "{\"ceTimestamp\":1575115200}", 0, "ceTimestamp", "got a number"));
    CHECK(s_refused(avd, "{\"ceString\":\"a\",\"ceUri\":\"b\"}", 0, "ceUri",
                    "'ceString' and 'ceUri' are members of one oneof"));
    /* a null member of a oneof is no member */
    av = (Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue *)s_decode(
        avd, "{\"ceString\":null,\"ceUri\":\"b\"}");
    CHECK(av && av->attr_case ==
                    IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_URI);
    protobuf_c_message_free_unpacked(&av->base, NULL);

    const ProtobufCMessageDescriptor *ced = &io__cloudevents__v1__cloud_event__descriptor;
    CHECK(s_refused(ced, "{\"attributes\":{\"a\":{\"ceInteger\":\"x\"}}}", 0,
                    "attributes[\"a\"].ceInteger", "expected a whole number"));
    CHECK(s_refused(ced, "{\"attributes\":{\"a\":null}}", 0, "attributes[\"a\"]", "null"));
    CHECK(s_refused(ced, "{\"attributes\":[]}", 0, "attributes", "expected an object (a map)"));
    CHECK(s_refused(ced, "{\"protoData\":{}}", 0, "protoData", "google.protobuf.Any"));
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    ce.data_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_PROTO_DATA;
    ce.proto_data = &any;
    CHECK(sam_pbjson_encode(&ce.base, 0) == NULL);
}

static void s_kinds_test(void)
{
    double ds[] = {0.5, -0.0, 1e300};
    s_kinds_t child;
    s_kinds_init(&child.base);
    child.a_double = NAN;
    child.b_float = -INFINITY;
    s_kinds_t k;
    s_kinds_init(&k.base);
    k.a_double = 3.25;
    k.b_float = 1.5f;
    k.c_sint32 = INT32_MIN;
    k.d_sint64 = -5;
    k.e_fixed32 = UINT32_MAX;
    k.f_fixed64 = 1;
    k.g_sfixed32 = -7;
    k.h_sfixed64 = INT64_MIN;
    k.n_i_doubles = 3;
    k.i_doubles = ds;
    k.j_child = &child;
    CHECK(s_roundtrips(&k.base));
    CHECK(s_encodes_as(
        &k.base, 0,
        "{\"aDouble\":3.25,\"bFloat\":1.5,\"cSint32\":-2147483648,\"dSint64\":"
        "\"-5\",\"eFixed32\":4294967295,\"fFixed64\":\"1\",\"gSfixed32\":-7,"
        "\"hSfixed64\":\"-9223372036854775808\",\"iDoubles\":[0.5,-0.0,1.0000000000000001e300],"
        "\"jChild\":{\"aDouble\":\"NaN\",\"bFloat\":\"-Infinity\"}}"));
    s_kinds_t *d = (s_kinds_t *)s_decode(
        &s_kinds_desc, "{\"aDouble\":\"-Infinity\",\"b_float\":\"2.5e1\",\"cSint32\":\"-12\","
                       "\"iDoubles\":[1,\"NaN\",\"Infinity\"],\"jChild\":{\"jChild\":{}}}");
    CHECK(d && isinf(d->a_double) && d->a_double < 0 && d->b_float == 25.0f && d->c_sint32 == -12);
    CHECK(d && d->n_i_doubles == 3 && d->i_doubles[0] == 1 && isnan(d->i_doubles[1]) &&
          isinf(d->i_doubles[2]));
    CHECK(d && d->j_child && d->j_child->j_child && !d->j_child->j_child->j_child);
    protobuf_c_message_free_unpacked(&d->base, NULL);
    CHECK(s_refused(&s_kinds_desc, "{\"bFloat\":1e39}", 0, "bFloat", "out of the range of float"));
    CHECK(s_refused(&s_kinds_desc, "{\"aDouble\":\"inf\"}", 0, "aDouble", "expected a number"));
    CHECK(s_refused(&s_kinds_desc, "{\"aDouble\":\"0x10\"}", 0, "aDouble", "expected a number"));
    CHECK(s_refused(&s_kinds_desc, "{\"aDouble\":true}", 0, "aDouble", "got true"));
    CHECK(s_refused(&s_kinds_desc, "{\"cSint32\":2147483648}", 0, "cSint32",
                    "out of the range of sint32 (-2147483648 to 2147483647)"));
    CHECK(s_refused(&s_kinds_desc, "{\"cSint32\":1.5}", 0, "cSint32", "expected a whole number"));
    CHECK(s_refused(&s_kinds_desc, "{\"eFixed32\":-1}", 0, "eFixed32", "out of the range"));
    CHECK(s_refused(&s_kinds_desc, "{\"fFixed64\":\"18446744073709551616\"}", 0, "fFixed64",
                    "out of the range of fixed64"));
    CHECK(s_refused(&s_kinds_desc, "{\"hSfixed64\":\"-9223372036854775809\"}", 0, "hSfixed64",
                    "out of the range of sfixed64"));
    CHECK(s_refused(&s_kinds_desc, "{\"iDoubles\":[1,null]}", 0, "iDoubles[1]",
                    "null is not allowed in a list"));
    /* nesting deeper than the bound */
    char deep[4096] = "";
    size_t n = 0;
    for (int i = 0; i < SAM_PBJSON_DEPTH_MAX + 2; i++)
        n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"jChild\":");
    n += (size_t)snprintf(deep + n, sizeof deep - n, "{}");
    for (int i = 0; i < SAM_PBJSON_DEPTH_MAX + 2; i++)
        deep[n++] = '}';
    deep[n] = '\0';
    sam_pbjson_error_t err;
    ProtobufCMessage *m = sam_pbjson_decode_text(&s_kinds_desc, deep, n, 0, &err);
    CHECK(!m && strstr(err.reason, "nested deeper than 32") &&
          strncmp(err.path, "jChild.jChild.jChild", 20) == 0);
    protobuf_c_message_free_unpacked(m, NULL);
}

static void s_refusal_test(void)
{
    const ProtobufCMessageDescriptor *aw = &samordna__v1__award__descriptor;
    CHECK(s_refused(aw, "{\"funders\":[{},{\"amountOre\":\"12 kr\"}]}", 0, "funders[1].amountOre",
                    "expected a string of digits"));
    CHECK(s_refused(aw, "{\"funders\":[{\"amount_ore\":true}]}", 0, "funders[0].amount_ore",
                    "expected a string of digits"));
    CHECK(s_refused(aw, "{\"amuont\":1}", 0, "", "unknown field 'amuont' of samordna.v1.Award"));
    CHECK(s_refused(aw, "{\"funders\":[{\"agency\":\"a\",\"x\\\"y\":1}]}", 0, "funders[0]",
                    "unknown field 'x\\\"y'"));
    CHECK(s_refused(aw, "{\"status\":\"OPEN\"}", 0, "status",
                    "unknown enum value 'OPEN' for samordna.v1.AwardStatus: one of "
                    "AWARD_STATUS_UNSPECIFIED, AWARD_STATUS_OPEN, AWARD_STATUS_COMPLETED, "
                    "AWARD_STATUS_CANCELLED"));
    CHECK(s_refused(aw, "{\"status\":9}", 0, "status", "unknown enum value '9'"));
    CHECK(s_refused(aw, "{\"status\":[]}", 0, "status", "got an array"));
    CHECK(s_refused(aw, "{\"year\":\"-1\"}", 0, "year", "out of the range of uint32"));
    CHECK(s_refused(aw, "{\"year\":4294967296}", 0, "year", "out of the range of uint32"));
    CHECK(s_refused(aw, "{\"amountOre\":\"9223372036854775808\"}", 0, "amountOre",
                    "out of the range of int64"));
    CHECK(s_refused(aw, "{\"amountOre\":\"\"}", 0, "amountOre", "expected a string of digits"));
    CHECK(s_refused(aw, "{\"amountOre\":\"+5\"}", 0, "amountOre", "expected a string of digits"));
    CHECK(s_refused(aw, "{\"amountOre\":1,\"amount_ore\":1}", 0, "amount_ore",
                    "given twice, as 'amountOre' and as 'amount_ore'"));
    CHECK(s_refused(aw, "{\"id\":1}", 0, "id", "expected a string, got a number"));
    CHECK(s_refused(aw, "{\"funders\":{}}", 0, "funders", "expected an array"));
    CHECK(s_refused(aw, "{\"funders\":[1]}", 0, "funders[0]", "expected an object"));
    CHECK(s_refused(aw, "[]", 0, "", "expected an object (samordna.v1.Award)"));
    CHECK(s_refused(aw, "{\"id\":\"a\",\"id\":\"b\"}", 0, "", "duplicate object key"));
    CHECK(s_refused(aw, "{\"id\":\"a\\u0000b\"}", 0, "", "not JSON"));
    CHECK(s_refused(aw, "{\"id\":\"\xff\"}", 0, "", "not JSON"));
    CHECK(s_refused(aw, "{\"id\":", 0, "", "not JSON"));
    /* unknown fields may be skipped on request; every other rule holds then too */
    Samordna__V1__Award *d = (Samordna__V1__Award *)sam_pbjson_decode_text(
        aw, "{\"amuont\":1,\"id\":\"x\"}", 21, SAM_PBJSON_IGNORE_UNKNOWN, NULL);
    CHECK(d && strcmp(d->id, "x") == 0);
    protobuf_c_message_free_unpacked(&d->base, NULL);
    CHECK(s_refused(aw, "{\"amuont\":1,\"id\":2}", SAM_PBJSON_IGNORE_UNKNOWN, "id",
                    "expected a string"));

    /* a json_t that did not come from the parser: NUL and invalid UTF-8 refused */
    sam_pbjson_error_t err;
    json_t *in = json_object();
    json_object_set_new(in, "id", json_stringn("a\0b", 3));
    CHECK(!sam_pbjson_decode(aw, in, 0, &err) && strcmp(err.path, "id") == 0 &&
          strstr(err.reason, "NUL"));
    json_object_set_new(in, "id", json_stringn_nocheck("a\xc3(", 3));
    CHECK(!sam_pbjson_decode(aw, in, 0, &err) && strstr(err.reason, "not valid UTF-8"));
    json_decref(in);
    CHECK(!sam_pbjson_decode(aw, NULL, 0, &err) && *err.reason);
    const ProtobufCMessageDescriptor *it = &samordna__v1__batch__item__descriptor;
    CHECK(s_refused(it, "{\"client\":\"a+b_\"}", 0, "client", "expected base64"));
    CHECK(s_refused(it, "{\"client\":\"ab=c\"}", 0, "client", "expected base64"));
    CHECK(s_refused(it, "{\"client\":\"a\"}", 0, "client", "expected base64"));
    CHECK(s_refused(it, "{\"client\":\"ab c\"}", 0, "client", "expected base64"));

    /* a message whose strings would hold more than the size bound; text over it */
    size_t big = SAM_PBJSON_SIZE_MAX / 3 + 16;
    char *s = malloc(big + 1);
    memset(s, 'a', big);
    s[big] = '\0';
    json_t *names = json_array();
    for (int i = 0; i < 3; i++)
        json_array_append_new(names, json_string(s));
    in = json_pack("{so}", "formerNames", names);
    CHECK(!sam_pbjson_decode(&samordna__v1__agency__descriptor, in, 0, &err) &&
          strcmp(err.path, "formerNames[2]") == 0 && strstr(err.reason, "larger than"));
    json_decref(in);
    free(s);
    char *text = malloc(SAM_PBJSON_SIZE_MAX + 2);
    memset(text, ' ', SAM_PBJSON_SIZE_MAX + 1);
    text[0] = '{';
    text[SAM_PBJSON_SIZE_MAX] = '}';
    CHECK(!sam_pbjson_decode_text(aw, text, SAM_PBJSON_SIZE_MAX + 1, 0, &err) &&
          strstr(err.reason, "more than the"));
    free(text);

    /* encode refuses what is no JSON text: a string that is not UTF-8 */
    Samordna__V1__Agency bad = SAMORDNA__V1__AGENCY__INIT;
    bad.id = "\xff";
    CHECK(sam_pbjson_encode(&bad.base, 0) == NULL);
    char name[16];
    CHECK(strcmp(sam_pbjson_name(&samordna__v1__award__descriptor.fields[12], name, sizeof name),
                 "recipientKind") == 0);
    CHECK(strcmp(sam_pbjson_name(&samordna__v1__award__descriptor.fields[12], name, 5), "reci") ==
          0);
}

/* ---- the mapping as a filter, for tests/pbjson_test.py ------------------------------------- */

/* The payload message of the event type, or of the message named `name`, from the catalog. */
static const ProtobufCMessageDescriptor *s_type(const char *name)
{
    size_t n;
    const sam_catalog_event_t *ev = sam_catalog_events(&n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(ev[i].payload->name, name) == 0) return ev[i].payload;
    return NULL;
}

/*  types              every payload message of the catalog, one full name a line
    encode TYPE FLAGS  packed TYPE on stdin → its JSON on stdout (sam_pbjson_encode)
    decode TYPE        JSON on stdin → TYPE packed on stdout; a refusal "path: reason" on
                       stderr and exit 1 */
static int s_filter(int argc, char **argv)
{
    if (strcmp(argv[1], "types") == 0) {
        size_t n;
        const sam_catalog_event_t *ev = sam_catalog_events(&n);
        for (size_t i = 0; i < n; i++)
            printf("%s\n", ev[i].payload->name);
        return 0;
    }
    const ProtobufCMessageDescriptor *d = argc > 2 ? s_type(argv[2]) : NULL;
    if (!d) {
        fprintf(stderr, "usage: sam_pbjson_selftest [types | encode TYPE FLAGS | decode TYPE]\n");
        return 2;
    }
    size_t cap = SAM_PBJSON_SIZE_MAX + 1, n = 0, got;
    uint8_t *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, stdin)) > 0)
        n += got;
    int rc = 1;
    if (buf && strcmp(argv[1], "encode") == 0) {
        ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, n, buf);
        json_t *j = m ? sam_pbjson_encode(m, argc > 3 ? (unsigned)atoi(argv[3]) : 0) : NULL;
        char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        if (text) printf("%s\n", text);
        rc = text ? 0 : 1;
        free(text);
        json_decref(j);
        protobuf_c_message_free_unpacked(m, NULL);
    } else if (buf && strcmp(argv[1], "decode") == 0) {
        sam_pbjson_error_t err;
        ProtobufCMessage *m = sam_pbjson_decode_text(d, (const char *)buf, n, 0, &err);
        if (m) {
            size_t len = protobuf_c_message_get_packed_size(m);
            uint8_t *out = malloc(len + 1);
            protobuf_c_message_pack(m, out);
            fwrite(out, 1, len, stdout);
            free(out);
            rc = 0;
        } else {
            fprintf(stderr, "%s: %s\n", err.path, err.reason);
        }
        protobuf_c_message_free_unpacked(m, NULL);
    }
    free(buf);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1) return s_filter(argc, argv);
    s_award_test();
    s_registry_test();
    s_envelope_test();
    s_cloudevent_test();
    s_kinds_test();
    s_refusal_test();
    return sam_testkit_done("sam_pbjson_selftest");
}
