/*  gw_events.c — POST /v1/events: CloudEvents over HTTP, in the three modes of the CloudEvents
    HTTP binding (1.0), published to the service that owns each event's type.

        binary      the attributes as ce-* headers, the body is the data; Content-Type is its
                    datacontenttype
        structured  Content-Type application/cloudevents+json: one event as a JSON object
        batch       Content-Type application/cloudevents-batch+json: a JSON array of them

    Each event becomes the io.cloudevents.v1 protobuf (attributes as the protobuf format maps
    them: time a Timestamp, dataschema a URI, the rest strings, an extension's number or
    boolean as itself) and one events.publish to the service whose table (service.describe)
    owns the type; a batch's events are all sent at once, pipelined, and answered together.
    The data is the type's payload message (the row's payload in service.describe, whose
    compiled descriptor gw_messages.c finds): `application/protobuf` bytes (the body in binary
    mode, `data_base64` in JSON), or JSON (a body of application/json in binary mode, `data`
    in JSON) in the proto3 JSON mapping (common/sam_pbjson.h), packed here; the stored event's
    datacontenttype then says application/protobuf, which is what its data is.

    Answers (docs/gateway.md): 201 {"seq", "duplicate": false, …} for a new event, 200 with the
    original seq and "duplicate": true for a retry, the service's refusal mapped to HTTP as a
    problem (409 for an id reused with other content), and the gateway's own refusals before
    anything is sent: 400 (malformed JSON, a missing or wrong attribute, an unknown type), 415
    (a content type it does not take). A batch answers 200 with one result per event, in order.
*/
#include "gateway.h"
#include "sam_check.h"
#include "sam_log.h"
#include "sam_pbjson.h"
#include "sam_status.h"

#include "cloudevents/v1/cloudevents.pb-c.h"
#include "samordna/v1/events.pb-c.h"

#include <ctype.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define S_MAX_ATTRS 32 /* attributes of one event beyond id, source, specversion, type */
#define S_NAME_MAX 20  /* CloudEvents: attribute names of at most 20 characters */

typedef Io__Cloudevents__V1__CloudEvent s_ce_t;
typedef Io__Cloudevents__V1__CloudEvent__AttributesEntry s_entry_t;
typedef Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue s_value_t;

/* One event being built: the protobuf and the storage its pointers borrow. */
typedef struct {
    s_ce_t ce;
    s_entry_t entries[S_MAX_ATTRS];
    s_entry_t *entry_p[S_MAX_ATTRS];
    s_value_t values[S_MAX_ATTRS];
    Google__Protobuf__Timestamp time;
    char *texts[S_MAX_ATTRS + 4]; /* decoded header values, freed with the event */
    size_t ntexts;
    uint8_t *data; /* decoded data (base64, or packed from JSON), freed with the event */
    /* data as JSON, decoded once the type (and so its payload message) is known: */
    const json_t *json_data; /* the "data" member (structured, batch), borrowed */
    const char *json_text;   /* or the body (binary mode), borrowed */
    size_t json_len;
    bool json_pending;
    char json_where[96];     /* the JSON pointer of the data ("/data", "/3/data", "" for a body) */
    s_value_t *content_type; /* its datacontenttype attribute, rewritten once packed */
} s_event_t;

static void s_event_init(s_event_t *e)
{
    memset(e, 0, sizeof *e);
    io__cloudevents__v1__cloud_event__init(&e->ce);
    e->ce.attributes = e->entry_p;
}

static void s_event_clear(s_event_t *e)
{
    for (size_t i = 0; i < e->ntexts; i++)
        free(e->texts[i]);
    free(e->data);
}

static char *s_keep(s_event_t *e, char *text)
{
    if (!text || e->ntexts == sizeof e->texts / sizeof e->texts[0]) {
        free(text);
        return NULL;
    }
    return e->texts[e->ntexts++] = text;
}

/* A new attribute entry, or NULL when the event has S_MAX_ATTRS already. */
static s_value_t *s_attr(s_event_t *e, const char *name)
{
    if (e->ce.n_attributes == S_MAX_ATTRS) return NULL;
    size_t i = e->ce.n_attributes++;
    io__cloudevents__v1__cloud_event__attributes_entry__init(&e->entries[i]);
    io__cloudevents__v1__cloud_event__cloud_event_attribute_value__init(&e->values[i]);
    e->entries[i].key = (char *)name;
    e->entries[i].value = &e->values[i];
    e->entry_p[i] = &e->entries[i];
    return &e->values[i];
}

/* An attribute name as CloudEvents allows one: a-z and 0-9, 1 to 20 of them. */
static bool s_attr_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > S_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)name[i]) || isdigit((unsigned char)name[i]))) return false;
    return true;
}

/* RFC 3339 (2019-11-30T10:00:00Z, with a fraction and an offset) as a Timestamp. */
static bool s_parse_time(const char *s, Google__Protobuf__Timestamp *ts)
{
    int y, mo, d, h, mi, se, n = 0;
    if (sscanf(s, "%4d-%2d-%2d%*1[Tt]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &se, &n) != 6 || n != 19)
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return false;
    const char *p = s + 19;
    int32_t nanos = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; isdigit((unsigned char)*p); p++, digits++)
            if (digits < 9) nanos = nanos * 10 + (*p - '0');
        if (digits == 0) return false;
        for (; digits < 9; digits++)
            nanos *= 10;
    }
    long offset = 0;
    if (*p == 'Z' || *p == 'z')
        p++;
    else if (*p == '+' || *p == '-') {
        int oh, om, m = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &m) != 2 || m != 5 || oh > 23 || om > 59)
            return false;
        offset = (*p == '+' ? 1 : -1) * (oh * 3600L + om * 60L);
        p += 6;
    } else
        return false;
    if (*p) return false;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = se};
    time_t t = timegm(&tm);
    if (tm.tm_mday != d) return false; /* 2019-02-30 */
    ts->seconds = (int64_t)t - offset;
    ts->nanos = nanos;
    return true;
}

/* The media type of a Content-Type, lower case, without parameters, in out. */
static const char *s_media_type(const char *content_type, char *out, size_t cap)
{
    size_t n = 0;
    const char *p = content_type ? content_type : "";
    while (*p == ' ')
        p++;
    for (; *p && *p != ';' && *p != ' ' && n + 1 < cap; p++)
        out[n++] = (char)tolower((unsigned char)*p);
    out[n] = '\0';
    return out;
}

static bool s_is_protobuf(const char *media)
{
    return strcmp(media, "application/protobuf") == 0 ||
           strcmp(media, "application/x-protobuf") == 0;
}

static bool s_is_json(const char *media)
{
    size_t n = strlen(media);
    return strcmp(media, "application/json") == 0 || strcmp(media, "text/json") == 0 ||
           (n > 5 && strcmp(media + n - 5, "+json") == 0);
}

/* ---- a refusal, for a single event or a batch's slot ------------------------------------- */

typedef struct {
    unsigned status;
    const char *type;
    const char *title;
    json_t *errors;
    char detail[512];
} s_refusal_t;

static void s_refuse(s_refusal_t *r, unsigned status, const char *type, const char *pointer,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void s_refuse(s_refusal_t *r, unsigned status, const char *type, const char *pointer,
                     const char *fmt, ...)
{
    r->status = status;
    r->type = type;
    r->title = status == 415   ? "Unsupported media type"
               : status == 503 ? "Service unavailable"
                               : "Invalid event";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->detail, sizeof r->detail, fmt, ap);
    va_end(ap);
    gw_error_add(&r->errors, pointer, r->detail);
}

/* value, escaped for a detail (at most 80 bytes of it). */
static const char *s_esc(const char *value, char *out, size_t cap)
{
    return sam_check_escape(value ? value : "", 80, out, cap);
}

/* ---- the attributes ---------------------------------------------------------------------- */

/*  Sets a context attribute or an extension from a string value. `where` is the pointer or
    header for a refusal. Returns 0, or -1 with r filled. */
static int s_set_string(s_event_t *e, const char *name, const char *value, const char *where,
                        s_refusal_t *r)
{
    char esc[200];
    const char *why = sam_check_line_why(value);
    if (why) {
        s_refuse(r, 400, "invalid-event", where, "%s: %s", where, why);
        return -1;
    }
    if (strcmp(name, "id") == 0)
        e->ce.id = (char *)value;
    else if (strcmp(name, "source") == 0)
        e->ce.source = (char *)value;
    else if (strcmp(name, "type") == 0)
        e->ce.type = (char *)value;
    else if (strcmp(name, "specversion") == 0) {
        if (strcmp(value, "1.0") != 0) {
            s_refuse(r, 400, "invalid-event", where, "%s: must be \"1.0\", not \"%s\"", where,
                     s_esc(value, esc, sizeof esc));
            return -1;
        }
        e->ce.spec_version = (char *)value;
    } else {
        s_value_t *v = s_attr(e, name);
        if (!v) {
            s_refuse(r, 400, "invalid-event", where, "an event has at most %d attributes",
                     S_MAX_ATTRS);
            return -1;
        }
        if (strcmp(name, "time") == 0) {
            google__protobuf__timestamp__init(&e->time);
            if (!s_parse_time(value, &e->time)) {
                s_refuse(r, 400, "invalid-event", where,
                         "%s: \"%s\" is not an RFC 3339 time (2019-11-30T10:00:00Z)", where,
                         s_esc(value, esc, sizeof esc));
                return -1;
            }
            v->attr_case =
                IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_TIMESTAMP;
            v->ce_timestamp = &e->time;
        } else if (strcmp(name, "dataschema") == 0) {
            v->attr_case =
                IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_URI;
            v->ce_uri = (char *)value;
        } else {
            v->attr_case =
                IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_STRING;
            v->ce_string = (char *)value;
        }
    }
    return 0;
}

/* The required attributes are there (after they were all read). */
static int s_check_required(s_event_t *e, const char *prefix, bool headers, s_refusal_t *r)
{
    static const char *const names[] = {"specversion", "id", "source", "type"};
    const char *const have[] = {e->ce.spec_version, e->ce.id, e->ce.source, e->ce.type};
    for (size_t i = 0; i < 4; i++) {
        if (have[i] && have[i][0]) continue;
        char where[64];
        snprintf(where, sizeof where, headers ? "ce-%s" : "%s/%s", headers ? names[i] : prefix,
                 names[i]);
        if (headers)
            s_refuse(r, 400, "invalid-event", where,
                     "the header %s is required (binary mode: ce-specversion, ce-id, ce-source, "
                     "ce-type)",
                     where);
        else
            s_refuse(r, 400, "invalid-event", where,
                     "%s is required (specversion, id, source and type are)", where);
        return -1;
    }
    return 0;
}

/* ---- the data ----------------------------------------------------------------------------- */

/* The data as the type's payload: protobuf bytes, as they are (the service decodes and checks
   them against its row). A media type other than protobuf is refused 415, naming what is
   accepted. */
static int s_set_data(s_event_t *e, const char *media, const uint8_t *data, size_t len,
                      const char *where, s_refusal_t *r)
{
    char esc[200];
    if (s_is_json(media)) { /* decoded by s_json_data once the type is known */
        if (data) {
            e->json_text = (const char *)data;
            e->json_len = len;
        }
        e->json_pending = true;
        return 0;
    }
    if (!s_is_protobuf(media)) {
        s_refuse(r, 415, "unsupported-media-type", where,
                 "%s: data of type \"%s\" is not accepted; the payload is application/protobuf",
                 where, s_esc(media, esc, sizeof esc));
        return -1;
    }
    e->ce.data_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_BINARY_DATA;
    e->ce.binary_data.data = (uint8_t *)data;
    e->ce.binary_data.len = len;
    return 0;
}

/* ---- binary mode ------------------------------------------------------------------------- */

/* A ce-* header value, percent-decoded (the binding's encoding of non-ASCII). NULL when a
   %XX is malformed or out of memory. */
static char *s_percent_decode(const char *v)
{
    size_t n = strlen(v);
    char *out = malloc(n + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (v[i] != '%') {
            *o++ = v[i];
            continue;
        }
        if (i + 2 >= n + 0 || !isxdigit((unsigned char)v[i + 1]) ||
            !isxdigit((unsigned char)v[i + 2])) {
            free(out);
            return NULL;
        }
        char hex[3] = {v[i + 1], v[i + 2], 0};
        *o++ = (char)strtol(hex, NULL, 16);
        i += 2;
    }
    *o = '\0';
    return out;
}

static int s_from_headers(gw_request_t *req, s_event_t *e, s_refusal_t *r)
{
    size_t n = 0;
    const gw_pair_t *h = gw_headers(req, &n);
    char esc[200];
    for (size_t i = 0; i < n; i++) {
        if (strncasecmp(h[i].name, "ce-", 3) != 0) continue;
        char name[64];
        snprintf(name, sizeof name, "%s", h[i].name + 3);
        for (char *p = name; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        char where[80];
        snprintf(where, sizeof where, "ce-%s", name);
        if (!s_attr_name_ok(name) || strcmp(name, "datacontenttype") == 0) {
            s_refuse(r, 400, "invalid-event", where,
                     "the header %s names no attribute (a-z and 0-9, at most 20; the data's "
                     "type is Content-Type)",
                     s_esc(h[i].name, esc, sizeof esc));
            return -1;
        }
        char *value = s_keep(e, s_percent_decode(h[i].value));
        char *key = s_keep(e, strdup(name));
        if (!value || !key) {
            s_refuse(r, 400, "invalid-event", where, "%s: malformed %%-encoding", where);
            return -1;
        }
        if (s_set_string(e, key, value, where, r) != 0) return -1;
    }
    if (s_check_required(e, "", true, r) != 0) return -1;
    const char *ct = gw_header(req, "Content-Type");
    char media[128];
    s_media_type(ct, media, sizeof media);
    if (!ct && req->body_len == 0) return 0; /* an event without data */
    if (!ct) {
        s_refuse(r, 415, "unsupported-media-type", "Content-Type",
                 "Content-Type is required: application/protobuf for the data in binary mode, "
                 "or application/cloudevents+json / application/cloudevents-batch+json");
        return -1;
    }
    s_value_t *v = s_attr(e, "datacontenttype");
    if (!v) {
        s_refuse(r, 400, "invalid-event", "Content-Type", "an event has at most %d attributes",
                 S_MAX_ATTRS);
        return -1;
    }
    v->attr_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_STRING;
    v->ce_string = s_keep(e, strdup(media));
    e->content_type = v;
    return s_set_data(e, media, req->body ? req->body : (const uint8_t *)"", req->body_len,
                      "Content-Type", r);
}

/* ---- structured mode (one JSON object) --------------------------------------------------- */

/* prefix "/" name into out (cap bytes): a JSON pointer, made for every attribute of every
   event of a batch, so without snprintf. */
static void s_join(char *out, size_t cap, const char *prefix, const char *name)
{
    size_t p = strlen(prefix), n = strlen(name);
    if (p + n + 2 > cap) n = cap > p + 2 ? cap - p - 2 : 0;
    if (p + 2 > cap) p = 0;
    memcpy(out, prefix, p);
    out[p] = '/';
    memcpy(out + p + 1, name, n);
    out[p + 1 + n] = '\0';
}

static int s_from_json(json_t *obj, const char *prefix, s_event_t *e, s_refusal_t *r)
{
    char where[96], esc[200];
    if (!json_is_object(obj)) {
        s_refuse(r, 400, "invalid-event", prefix[0] ? prefix : "/", "%s: an event is a JSON object",
                 prefix[0] ? prefix : "the body");
        return -1;
    }
    const char *key;
    json_t *value;
    json_t *data = NULL, *data_b64 = NULL;
    const char *media = NULL;
    json_object_foreach(obj, key, value)
    {
        s_join(where, sizeof where, prefix, key);
        if (strcmp(key, "data") == 0) {
            data = value;
            continue;
        }
        if (strcmp(key, "data_base64") == 0) {
            data_b64 = value;
            continue;
        }
        if (!s_attr_name_ok(key)) {
            s_refuse(r, 400, "invalid-event", where,
                     "%s: not an attribute name (a-z and 0-9, at most 20 characters)",
                     s_esc(where, esc, sizeof esc));
            return -1;
        }
        if (strcmp(key, "datacontenttype") == 0) {
            if (!json_is_string(value)) {
                s_refuse(r, 400, "invalid-event", where, "%s: must be a string", where);
                return -1;
            }
            media = json_string_value(value);
            continue;
        }
        if (json_is_string(value)) {
            if (s_set_string(e, key, json_string_value(value), where, r) != 0) return -1;
            continue;
        }
        bool context = strcmp(key, "id") == 0 || strcmp(key, "source") == 0 ||
                       strcmp(key, "type") == 0 || strcmp(key, "specversion") == 0 ||
                       strcmp(key, "time") == 0 || strcmp(key, "subject") == 0 ||
                       strcmp(key, "dataschema") == 0;
        s_value_t *v = context ? NULL : s_attr(e, key);
        if (context || !(json_is_boolean(value) || json_is_integer(value))) {
            s_refuse(r, 400, "invalid-event", where,
                     context ? "%s: must be a string"
                             : "%s: an extension is a string, an integer or a boolean",
                     where);
            return -1;
        }
        if (!v) {
            s_refuse(r, 400, "invalid-event", where, "an event has at most %d attributes",
                     S_MAX_ATTRS);
            return -1;
        }
        if (json_is_boolean(value)) {
            v->attr_case =
                IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_BOOLEAN;
            v->ce_boolean = json_is_true(value);
        } else {
            json_int_t i = json_integer_value(value);
            if (i < INT32_MIN || i > INT32_MAX) {
                s_refuse(r, 400, "invalid-event", where,
                         "%s: an integer extension is a 32-bit signed integer", where);
                return -1;
            }
            v->attr_case =
                IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_INTEGER;
            v->ce_integer = (int32_t)i;
        }
    }
    if (s_check_required(e, prefix, false, r) != 0) return -1;
    char mt[128];
    s_media_type(media, mt, sizeof mt);
    if (media) {
        s_value_t *v = s_attr(e, "datacontenttype");
        if (!v) {
            s_refuse(r, 400, "invalid-event", "/datacontenttype",
                     "an event has at most %d attributes", S_MAX_ATTRS);
            return -1;
        }
        v->attr_case =
            IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_STRING;
        v->ce_string = (char *)media;
        e->content_type = v;
    }
    if (data && data_b64) {
        s_join(where, sizeof where, prefix, "data_base64");
        s_refuse(r, 400, "invalid-event", where, "an event has data or data_base64, not both");
        return -1;
    }
    if (data_b64) {
        s_join(where, sizeof where, prefix, "data_base64");
        const char *b64 = json_string_value(data_b64);
        size_t blen = b64 ? strlen(b64) : 0, len = 0;
        const char *end = NULL;
        e->data = malloc(blen / 4 * 3 + 3);
        if (!b64 || !e->data ||
            sodium_base642bin(e->data, blen / 4 * 3 + 3, b64, blen, NULL, &len, &end,
                              sodium_base64_VARIANT_ORIGINAL) != 0 ||
            end != b64 + blen) {
            s_refuse(r, 400, "invalid-event", where, "%s: not base64 (RFC 4648, with padding)",
                     where);
            return -1;
        }
        s_join(where, sizeof where, prefix, "datacontenttype");
        return s_set_data(e, media ? mt : "application/protobuf", e->data, len, where, r);
    }
    if (data && !json_is_null(data)) {
        s_join(where, sizeof where, prefix, "data");
        snprintf(e->json_where, sizeof e->json_where, "%s", where);
        if (!s_is_json(media ? mt : "application/json")) {
            s_refuse(r, 415, "unsupported-media-type", where,
                     "%s: data given as JSON must have a JSON datacontenttype "
                     "(application/json), not \"%s\"; protobuf data goes in data_base64",
                     where, s_esc(mt, esc, sizeof esc));
            return -1;
        }
        e->json_data = data;
        e->json_pending = true;
        if (!media) { /* the binding's default for JSON data */
            s_value_t *v = s_attr(e, "datacontenttype");
            if (!v) {
                s_refuse(r, 400, "invalid-event", where, "an event has at most %d attributes",
                         S_MAX_ATTRS);
                return -1;
            }
            v->attr_case =
                IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_STRING;
            e->content_type = v;
        }
        return 0;
    }
    return 0;
}

/* ---- data as JSON ------------------------------------------------------------------------- */

/* A field path of sam_pbjson ("funders[1].amountOre", "labels[\"x\"]") as a JSON pointer
   under base ("/data/funders/1/amountOre"). */
static void s_pointer(char *out, size_t cap, const char *base, const char *path)
{
    size_t n = (size_t)snprintf(out, cap, "%s", base);
    if (n >= cap) n = cap - 1;
    if (*path && n + 1 < cap) out[n++] = '/';
    for (const char *p = path; *p && n + 3 < cap; p++) {
        if (*p == '.' || (*p == '[' && p != path)) {
            out[n++] = '/';
            if (*p == '[' && p[1] == '"') p++;
        } else if (*p == ']' || (*p == '"' && p[1] == ']') || *p == '[')
            continue;
        else if (*p == '~' || *p == '/') {
            out[n++] = '~';
            out[n++] = *p == '~' ? '0' : '1';
        } else
            out[n++] = *p;
    }
    out[n] = '\0';
}

/*  The event's JSON data as its type's payload: decoded by the proto3 JSON mapping
    (common/sam_pbjson.h: lowerCamelCase or .proto names, enums by name, 64-bit integers as
    strings, unknown fields refused), packed into binary_data, and datacontenttype made
    application/protobuf (what the data now is). Returns 0, or -1 with r filled. */
static int s_json_data(s_event_t *e, const gw_type_t *t, s_refusal_t *r)
{
    if (!e->json_pending) return 0;
    char esc[200], pointer[400];
    const char *where = e->json_where[0] ? e->json_where : "Content-Type";
    const ProtobufCMessageDescriptor *d = gw_message(t->payload);
    if (!d) {
        s_refuse(r, 415, "unsupported-media-type", where,
                 "%s: this gateway does not know %s's payload message \"%s\" (a newer "
                 "service?): send the data as application/protobuf",
                 where, s_esc(e->ce.type, esc, sizeof esc), t->payload);
        return -1;
    }
    sam_pbjson_error_t err = {{0}, {0}};
    ProtobufCMessage *m = e->json_data
                              ? sam_pbjson_decode(d, e->json_data, 0, &err)
                              : sam_pbjson_decode_text(d, e->json_text, e->json_len, 0, &err);
    if (!m) {
        s_pointer(pointer, sizeof pointer, e->json_data ? e->json_where : "", err.path);
        if (!pointer[0]) snprintf(pointer, sizeof pointer, "%s", e->json_data ? "/data" : "/");
        s_refuse(r, 400, "invalid-data", pointer,
                 "%s: %s (the data is a %s in the proto3 "
                 "JSON mapping)",
                 pointer, err.reason, d->name);
        return -1;
    }
    size_t len = protobuf_c_message_get_packed_size(m);
    e->data = malloc(len ? len : 1);
    if (e->data) protobuf_c_message_pack(m, e->data);
    protobuf_c_message_free_unpacked(m, NULL);
    if (!e->data) {
        s_refuse(r, 500, "internal", where, "out of memory");
        return -1;
    }
    e->ce.data_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_BINARY_DATA;
    e->ce.binary_data.data = e->data;
    e->ce.binary_data.len = len;
    if (e->content_type) e->content_type->ce_string = "application/protobuf";
    e->json_pending = false;
    return 0;
}

/* ---- publishing ---------------------------------------------------------------------------- */

/* s as the inside of a JSON string into out (cap bytes): the line rule has refused control
   characters already (sam_check_line_why), so only `"` and `\` need a backslash. */
static void s_json_inside(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; s && *s && n + 3 < cap; s++) {
        if (*s == '"' || *s == '\\') out[n++] = '\\';
        out[n++] = *s;
    }
    out[n] = '\0';
}

/* A problem as text, with the event's id and (in a batch) nothing else added. */
static char *s_problem_text(json_t *problem, const char *id)
{
    if (problem && id) json_object_set_new(problem, "id", json_string(id));
    char *text = problem ? json_dumps(problem, JSON_COMPACT) : NULL;
    json_decref(problem);
    return text;
}

/*  What one event's reply is, as the text of a JSON object: {"seq", "duplicate"} for a new
    event (*status 201) or a retry (200), else the problem the service's status maps to. In a
    batch (id not NULL) the object also has "status" and "id". Caller frees; NULL when out of
    memory. These are made by hand, not through jansson: a batch of thousands makes one each. */
static char *s_result(const sam_result_t *res, const char *id, unsigned *status)
{
    if (res->code == SAM_OK) {
        Samordna__V1__PublishReply *pr =
            samordna__v1__publish_reply__unpack(NULL, res->body_len, res->body);
        if (!pr) {
            *status = 502;
            return s_problem_text(
                gw_problem_json(502, "internal", "Bad reply", NULL,
                                "the service's reply does not decode as a PublishReply"),
                id);
        }
        *status = pr->duplicate ? 200 : 201;
        char esc[600], *text = malloc(sizeof esc + 96);
        s_json_inside(esc, sizeof esc, id);
        if (text && id)
            snprintf(text, sizeof esc + 96,
                     "{\"status\":%u,\"id\":\"%s\",\"seq\":%llu,"
                     "\"duplicate\":%s}",
                     *status, esc, (unsigned long long)pr->seq, pr->duplicate ? "true" : "false");
        else if (text)
            snprintf(text, sizeof esc + 96, "{\"seq\":%llu,\"duplicate\":%s}",
                     (unsigned long long)pr->seq, pr->duplicate ? "true" : "false");
        samordna__v1__publish_reply__free_unpacked(pr, NULL);
        return text;
    }
    *status = gw_http_status(res->code);
    json_t *errors = NULL;
    gw_error_add_service(&errors, res->message);
    return s_problem_text(gw_problem_json(*status, gw_problem_type(*status),
                                          *status == 409   ? "Conflict"
                                          : *status == 503 ? "Service unavailable"
                                                           : "Event refused",
                                          errors, res->message),
                          id);
}

/* Where an event goes: fills service, or r (unknown type, or tables not known yet). */
static int s_route(gw_request_t *req, const s_ce_t *ce, const char *pointer, gw_type_t *t,
                   s_refusal_t *r)
{
    char esc[200];
    int found = gw_type_find(req->gw, ce->type, t);
    if (found == 1) return 0;
    if (found == 0)
        s_refuse(r, 400, "unknown-event-type", pointer,
                 "%s: \"%s\" is not an event type of any service (docs/events.md lists them)",
                 pointer, s_esc(ce->type, esc, sizeof esc));
    else
        s_refuse(r, 503, "service-unavailable", pointer,
                 "not every service has told the gateway its event types yet (service.describe "
                 "unanswered); try again in a moment");
    return -1;
}

static uint8_t *s_pack(const s_ce_t *ce, size_t *len)
{
    Samordna__V1__PublishRequest pr = SAMORDNA__V1__PUBLISH_REQUEST__INIT;
    pr.event = (s_ce_t *)ce;
    *len = samordna__v1__publish_request__get_packed_size(&pr);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf) samordna__v1__publish_request__pack(&pr, buf);
    return buf;
}

static void s_problem_from(gw_request_t *req, s_refusal_t *r)
{
    gw_problem(req, r->status, r->type, r->title, r->errors, "%s", r->detail);
    r->errors = NULL;
}

/* One event's reply, answered as the request's answer. */
static void s_single_done(gw_request_t *req, void *arg, const sam_result_t *res)
{
    (void)arg;
    unsigned status = 0;
    char *text = s_result(res, NULL, &status);
    if (!text) {
        gw_problem(req, 500, "internal", "Internal error", NULL, "out of memory");
        return;
    }
    if (status >= 400) {
        if (status >= 500)
            sam_warn("gateway.refused rid=%llu path=/v1/events status=%u code=%u detail=%s",
                     (unsigned long long)req->rid, status, res->code, sam_logv(res->message));
        else
            sam_info("gateway.refused rid=%llu path=/v1/events status=%u code=%u detail=%s",
                     (unsigned long long)req->rid, status, res->code, sam_logv(res->message));
        if (status == 503) gw_add_header(req, "Retry-After", "1");
    }
    gw_respond(req, status, status >= 400 ? "application/problem+json" : "application/json", text,
               strlen(text));
    free(text);
}

static void s_publish_one(gw_request_t *req, s_event_t *e, const char *pointer)
{
    s_refusal_t r = {0};
    gw_type_t t;
    if (s_route(req, &e->ce, pointer, &t, &r) != 0 || s_json_data(e, &t, &r) != 0) {
        s_problem_from(req, &r);
        return;
    }
    size_t len = 0;
    uint8_t *buf = s_pack(&e->ce, &len);
    if (!buf || gw_call(req, t.service, "events.publish", buf, len, s_single_done, NULL) != 0)
        gw_problem(req, 500, "internal", "Internal error", NULL, "out of memory");
    free(buf);
}

/* ---- batch mode ----------------------------------------------------------------------------- */

/* A batch's results, in the order of its events: each slot the text of its result (NULL until
   its reply came), and the ids of the events sent (the request's JSON is gone by then). */
typedef struct {
    char **texts;
    char **ids;
    size_t n;
    size_t refused; /* results with a status of 400 or more */
    bool failed;    /* out of memory: the batch answers 500 */
} s_batch_t;

static void s_batch_free(void *user)
{
    s_batch_t *b = user;
    if (!b) return;
    for (size_t i = 0; i < b->n; i++) {
        free(b->texts[i]);
        free(b->ids[i]);
    }
    free(b->texts);
    free(b->ids);
    free(b);
}

static void s_batch_slot(s_batch_t *b, size_t i, char *text, unsigned status)
{
    if (!text) b->failed = true;
    if (status >= 400) b->refused++;
    b->texts[i] = text;
}

static void s_batch_done(gw_request_t *req, void *arg, const sam_result_t *res)
{
    s_batch_t *b = req->user;
    size_t i = (size_t)(uintptr_t)arg;
    unsigned status = 0;
    s_batch_slot(b, i, s_result(res, b->ids[i] ? b->ids[i] : "", &status), status);
}

/* The answer: 200 and the JSON array of every event's result. */
static void s_batch_answer(gw_request_t *req)
{
    s_batch_t *b = req->user;
    size_t len = 2;
    for (size_t i = 0; i < b->n && !b->failed; i++)
        len += (b->texts[i] ? strlen(b->texts[i]) : 0) + 1;
    char *out = b->failed ? NULL : malloc(len + 1);
    if (!out) {
        gw_problem(req, 500, "internal", "Internal error", NULL, "out of memory");
        return;
    }
    size_t at = 0;
    out[at++] = '[';
    for (size_t i = 0; i < b->n; i++) {
        if (i) out[at++] = ',';
        size_t l = strlen(b->texts[i]);
        memcpy(out + at, b->texts[i], l);
        at += l;
    }
    out[at++] = ']';
    if (b->refused)
        sam_info("gateway.batch rid=%llu events=%zu refused=%zu", (unsigned long long)req->rid,
                 b->n, b->refused);
    gw_respond(req, 200, "application/json", out, at);
    free(out);
}

static void s_events_batch(gw_request_t *req, json_t *array)
{
    size_t n = json_array_size(array);
    s_batch_t *b = calloc(1, sizeof *b);
    if (b) {
        b->texts = calloc(n ? n : 1, sizeof *b->texts);
        b->ids = calloc(n ? n : 1, sizeof *b->ids);
        b->n = n;
    }
    if (!b || !b->texts || !b->ids) {
        s_batch_free(b);
        gw_problem(req, 500, "internal", "Internal error", NULL, "out of memory");
        return;
    }
    req->user = b;
    req->user_free = s_batch_free;
    size_t sent = 0;
    for (size_t i = 0; i < n; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "/%zu", i);
        s_event_t e;
        s_event_init(&e);
        s_refusal_t r = {0};
        gw_type_t t;
        int ok = s_from_json(json_array_get(array, i), prefix, &e, &r);
        char pointer[48];
        s_join(pointer, sizeof pointer, prefix, "type");
        if (ok == 0) ok = s_route(req, &e.ce, pointer, &t, &r);
        if (ok == 0) ok = s_json_data(&e, &t, &r);
        const char *id = e.ce.id && e.ce.id[0] ? e.ce.id : NULL;
        json_t *problem = NULL;
        if (ok != 0)
            problem = gw_problem_json(r.status, r.type, r.title, r.errors, r.detail);
        else {
            size_t len = 0;
            uint8_t *buf = s_pack(&e.ce, &len);
            if (buf && (b->ids[i] = strdup(id ? id : "")) &&
                gw_call(req, t.service, "events.publish", buf, len, s_batch_done,
                        (void *)(uintptr_t)i) == 0)
                sent++;
            else
                problem = gw_problem_json(500, "internal", "Internal error", NULL, "out of memory");
            free(buf);
        }
        if (problem) {
            if (!json_object_get(problem, "status"))
                json_object_set_new(problem, "status", json_integer(r.status));
            s_batch_slot(b, i, s_problem_text(problem, id), r.status ? r.status : 500);
        }
        s_event_clear(&e);
    }
    if (sent)
        req->after_calls = s_batch_answer;
    else
        s_batch_answer(req);
}

/* ---- the route ------------------------------------------------------------------------------ */

/* POST /v1/events */
void gw_events_post(gw_request_t *req)
{
    char media[128];
    s_media_type(gw_header(req, "Content-Type"), media, sizeof media);
    bool structured = strcmp(media, "application/cloudevents+json") == 0;
    bool batch = strcmp(media, "application/cloudevents-batch+json") == 0;
    if (!structured && !batch) {
        if (!gw_header(req, "ce-specversion")) {
            char esc[200];
            gw_problem(req, 415, "unsupported-media-type", "Unsupported media type", NULL,
                       "Content-Type \"%s\" with no ce-specversion header: send "
                       "application/cloudevents+json (one event), "
                       "application/cloudevents-batch+json (an array), or the event in ce-* "
                       "headers with the data as the body (binary mode)",
                       s_esc(media, esc, sizeof esc));
            return;
        }
        s_event_t e;
        s_event_init(&e);
        s_refusal_t r = {0};
        if (s_from_headers(req, &e, &r) != 0)
            s_problem_from(req, &r);
        else
            s_publish_one(req, &e, "ce-type");
        s_event_clear(&e);
        return;
    }
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) {
        char esc[200];
        json_t *errors = NULL;
        char where[64];
        snprintf(where, sizeof where, "line %d, column %d", jerr.line, jerr.column);
        gw_error_add(&errors, "/", jerr.text);
        gw_problem(req, 400, "malformed-json", "Malformed JSON", errors,
                   "the body is not JSON (%s): %s", where, s_esc(jerr.text, esc, sizeof esc));
        return;
    }
    if (structured) {
        s_event_t e;
        s_event_init(&e);
        s_refusal_t r = {0};
        if (s_from_json(doc, "", &e, &r) != 0)
            s_problem_from(req, &r);
        else
            s_publish_one(req, &e, "/type");
        s_event_clear(&e);
    } else if (!json_is_array(doc)) {
        json_t *errors = NULL;
        gw_error_add(&errors, "/", "a batch is a JSON array of events");
        gw_problem(req, 400, "invalid-event", "Invalid batch", errors,
                   "application/cloudevents-batch+json is a JSON array of events");
    } else
        s_events_batch(req, doc);
    json_decref(doc);
}
