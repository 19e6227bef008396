/*  sam_pbjson.c — see sam_pbjson.h.

    Both directions walk the descriptor, field by field, and reach each value through the
    field's offset in the C struct, as protobuf-c's own pack and unpack do. A message is
    decoded into memory laid out exactly as protobuf_c_message_unpack would lay it out, from
    malloc, so protobuf_c_message_free_unpacked frees it; after every step what is built is
    such a message (a list's count grows with each element made), so a refusal anywhere frees
    it whole and returns nothing.

    A map field is, to protobuf-c, a repeated message of a generated "<Name>Entry" type with
    the fields key = 1 and value = 2; such a field is written as an object. Well-known types
    are recognised by their full name.
*/
#include "sam_pbjson.h"

#include "sam_check.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TIMESTAMP "google.protobuf.Timestamp"
#define S_ANY "google.protobuf.Any"
#define S_SECONDS_MIN (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define S_SECONDS_MAX 253402300799LL   /* 9999-12-31T23:59:59Z */

/* ---- shared -------------------------------------------------------------------------------- */

const char *sam_pbjson_name(const ProtobufCFieldDescriptor *f, char *out, size_t cap)
{
    size_t n = 0;
    bool upper = false;
    for (const char *p = f->name; *p && n + 1 < cap; p++) {
        if (*p == '_') {
            upper = true;
            continue;
        }
        out[n++] = upper && *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
        upper = false;
    }
    if (cap) out[n] = '\0';
    return out;
}

static void *s_at(const ProtobufCMessage *m, unsigned offset)
{
    return (char *)m + offset;
}

/* A map field: repeated <Name>Entry with key = 1 and value = 2. */
static bool s_is_map(const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE) return false;
    const ProtobufCMessageDescriptor *e = f->descriptor;
    if (e->n_fields != 2 || e->fields[0].id != 1 || strcmp(e->fields[0].name, "key") != 0 ||
        e->fields[1].id != 2 || strcmp(e->fields[1].name, "value") != 0)
        return false;
    char want[128];
    size_t n = 0;
    bool upper = true;
    for (const char *p = f->name; *p && n + 1 < sizeof want; p++) {
        if (*p == '_') {
            upper = true;
            continue;
        }
        want[n++] = upper && *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
        upper = false;
    }
    want[n] = '\0';
    size_t sl = strlen(e->short_name);
    return sl == n + 5 && strncmp(e->short_name, want, n) == 0 &&
           strcmp(e->short_name + n, "Entry") == 0;
}

static size_t s_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    default:
        return 4;
    }
}

static const char *s_type_name(ProtobufCType t)
{
    static const char *const names[] = {
        [PROTOBUF_C_TYPE_INT32] = "int32",       [PROTOBUF_C_TYPE_SINT32] = "sint32",
        [PROTOBUF_C_TYPE_SFIXED32] = "sfixed32", [PROTOBUF_C_TYPE_INT64] = "int64",
        [PROTOBUF_C_TYPE_SINT64] = "sint64",     [PROTOBUF_C_TYPE_SFIXED64] = "sfixed64",
        [PROTOBUF_C_TYPE_UINT32] = "uint32",     [PROTOBUF_C_TYPE_FIXED32] = "fixed32",
        [PROTOBUF_C_TYPE_UINT64] = "uint64",     [PROTOBUF_C_TYPE_FIXED64] = "fixed64",
        [PROTOBUF_C_TYPE_FLOAT] = "float",       [PROTOBUF_C_TYPE_DOUBLE] = "double",
        [PROTOBUF_C_TYPE_BOOL] = "bool",         [PROTOBUF_C_TYPE_ENUM] = "enum",
        [PROTOBUF_C_TYPE_STRING] = "string",     [PROTOBUF_C_TYPE_BYTES] = "bytes",
        [PROTOBUF_C_TYPE_MESSAGE] = "message",
    };
    return (unsigned)t < sizeof names / sizeof names[0] && names[t] ? names[t] : "?";
}

/* Days since 1970-01-01 of a proleptic Gregorian date, and back (the civil-calendar rule:
   years counted from March, so the leap day ends a year). */
static int64_t s_days(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void s_civil(int64_t days, int64_t *y, int *m, int *d)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* ---- encode -------------------------------------------------------------------------------- */

static json_t *s_enc_message(const ProtobufCMessage *m, unsigned flags, int depth);

static json_t *s_enc_timestamp(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const ProtobufCFieldDescriptor *fs =
        protobuf_c_message_descriptor_get_field_by_name(d, "seconds");
    const ProtobufCFieldDescriptor *fn =
        protobuf_c_message_descriptor_get_field_by_name(d, "nanos");
    if (!fs || !fn) return NULL;
    int64_t secs = *(const int64_t *)s_at(m, fs->offset);
    int32_t nanos = *(const int32_t *)s_at(m, fn->offset);
    if (secs < S_SECONDS_MIN || secs > S_SECONDS_MAX || nanos < 0 || nanos > 999999999) return NULL;
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t rest = secs - days * 86400, y;
    int mo, da;
    s_civil(days, &y, &mo, &da);
    char buf[48], frac[16] = "";
    if (nanos % 1000000 == 0 && nanos)
        snprintf(frac, sizeof frac, ".%03d", (int)(nanos / 1000000));
    else if (nanos % 1000 == 0 && nanos)
        snprintf(frac, sizeof frac, ".%06d", (int)(nanos / 1000));
    else if (nanos)
        snprintf(frac, sizeof frac, ".%09d", (int)nanos);
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d%sZ", (int)y, mo, da,
             (int)(rest / 3600), (int)(rest / 60 % 60), (int)(rest % 60), frac);
    return json_string(buf);
}

static json_t *s_enc_double(double v)
{
    if (isnan(v)) return json_string("NaN");
    if (isinf(v)) return json_string(v > 0 ? "Infinity" : "-Infinity");
    return json_real(v);
}

/* One value of field f (not a list) at p. */
static json_t *s_enc_value(const ProtobufCFieldDescriptor *f, const void *p, unsigned flags,
                           int depth)
{
    char buf[32];
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        snprintf(buf, sizeof buf, "%" PRId64, *(const int64_t *)p);
        return json_string(buf);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(buf, sizeof buf, "%" PRIu64, *(const uint64_t *)p);
        return json_string(buf);
    case PROTOBUF_C_TYPE_FLOAT:
        return s_enc_double(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return s_enc_double(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)p;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
        return ev ? json_string(ev->name) : json_integer(v); /* a value of a newer .proto */
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)p;
        return json_string(s ? s : ""); /* NULL when s is not UTF-8 */
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        size_t cap = sodium_base64_ENCODED_LEN(b->len, sodium_base64_VARIANT_ORIGINAL);
        char *out = malloc(cap);
        if (!out) return NULL;
        sodium_bin2base64(out, cap, b->data ? b->data : (const unsigned char *)"", b->len,
                          sodium_base64_VARIANT_ORIGINAL);
        json_t *j = json_string(out);
        free(out);
        return j;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return s_enc_message(*(const ProtobufCMessage *const *)p, flags, depth + 1);
    default:
        return NULL;
    }
}

static json_t *s_enc_map(const ProtobufCFieldDescriptor *f, size_t n, void *const *entries,
                         unsigned flags, int depth)
{
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
    json_t *obj = json_object();
    for (size_t i = 0; obj && i < n; i++) {
        const ProtobufCMessage *e = entries[i];
        if (!e) goto fail;
        const void *kp = s_at(e, kf->offset);
        char kbuf[32];
        const char *key = kbuf;
        if (kf->type == PROTOBUF_C_TYPE_STRING) {
            key = *(const char *const *)kp;
            if (!key) key = "";
        } else if (kf->type == PROTOBUF_C_TYPE_BOOL) {
            key = *(const protobuf_c_boolean *)kp ? "true" : "false";
        } else {
            json_t *k = s_enc_value(kf, kp, flags, depth); /* a number or a digit string */
            if (!k) goto fail;
            if (json_is_string(k))
                snprintf(kbuf, sizeof kbuf, "%s", json_string_value(k));
            else
                snprintf(kbuf, sizeof kbuf, "%" JSON_INTEGER_FORMAT, json_integer_value(k));
            json_decref(k);
        }
        json_t *v = s_enc_value(vf, s_at(e, vf->offset), flags, depth);
        if (vf->type == PROTOBUF_C_TYPE_MESSAGE && !*(void *const *)s_at(e, vf->offset)) {
            json_decref(v);
            v = json_object(); /* an entry without its value: the value's default */
        }
        if (!v || json_object_set_new(obj, key, v) != 0) goto fail; /* key not UTF-8 */
    }
    return obj;
fail:
    json_decref(obj);
    return NULL;
}

/* Whether field f of m is written at all (see sam_pbjson.h: defaults left out). */
static bool s_enc_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                          unsigned flags)
{
    const void *p = s_at(m, f->offset);
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return *(const size_t *)s_at(m, f->quantifier_offset) > 0 || (flags & SAM_PBJSON_DEFAULTS);
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)s_at(m, f->quantifier_offset) == f->id;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) return *(void *const *)p != NULL;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset)
        return *(const protobuf_c_boolean *)s_at(m, f->quantifier_offset);
    if (flags & SAM_PBJSON_DEFAULTS) return true;
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)p;
        return s && *s;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len > 0;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)p != 0 || signbit(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)p != 0 || signbit(*(const double *)p);
    default: {
        static const unsigned char zero[8];
        return memcmp(p, zero, s_size(f->type)) != 0;
    }
    }
}

static json_t *s_enc_message(const ProtobufCMessage *m, unsigned flags, int depth)
{
    if (!m || depth > SAM_PBJSON_DEPTH_MAX) return NULL;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (strcmp(d->name, S_TIMESTAMP) == 0) return s_enc_timestamp(m);
    if (strcmp(d->name, S_ANY) == 0) return NULL;
    json_t *obj = json_object();
    for (unsigned i = 0; obj && i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!s_enc_present(m, f, flags)) continue;
        char name[128];
        if (flags & SAM_PBJSON_PROTO_NAMES)
            snprintf(name, sizeof name, "%s", f->name);
        else
            sam_pbjson_name(f, name, sizeof name);
        const void *p = s_at(m, f->offset);
        json_t *v;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)s_at(m, f->quantifier_offset);
            const char *items = *(const char *const *)p;
            if (s_is_map(f)) {
                v = s_enc_map(f, n, (void *const *)items, flags, depth);
            } else {
                v = json_array();
                for (size_t k = 0; v && k < n; k++) {
                    json_t *item = s_enc_value(f, items + k * s_size(f->type), flags, depth);
                    if (!item || json_array_append_new(v, item) != 0) {
                        json_decref(v);
                        v = NULL;
                    }
                }
            }
        } else {
            v = s_enc_value(f, p, flags, depth);
        }
        if (!v || json_object_set_new(obj, name, v) != 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

json_t *sam_pbjson_encode(const ProtobufCMessage *msg, unsigned flags)
{
    return s_enc_message(msg, flags, 0);
}

/* ---- decode -------------------------------------------------------------------------------- */

typedef struct {
    unsigned flags;
    sam_pbjson_error_t *err;
    size_t used;    /* bytes of strings, bytes, list items and messages made so far */
    char path[256]; /* the field being decoded, as the input names it */
    size_t plen;
} s_dec_t;

static int s_fail(s_dec_t *dc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int s_fail(s_dec_t *dc, const char *fmt, ...)
{
    if (!dc->err) return -1;
    snprintf(dc->err->path, sizeof dc->err->path, "%s", dc->path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dc->err->reason, sizeof dc->err->reason, fmt, ap);
    va_end(ap);
    return -1;
}

static size_t s_push(s_dec_t *dc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t s_push(s_dec_t *dc, const char *fmt, ...)
{
    size_t old = dc->plen;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dc->path + old, sizeof dc->path - old, fmt, ap);
    va_end(ap);
    dc->plen = strlen(dc->path);
    return old;
}

static void s_pop(s_dec_t *dc, size_t old)
{
    dc->plen = old;
    dc->path[old] = '\0';
}

static int s_spend(s_dec_t *dc, size_t n)
{
    if (n > SAM_PBJSON_SIZE_MAX - dc->used)
        return s_fail(dc, "the message would be larger than %d bytes decoded", SAM_PBJSON_SIZE_MAX);
    dc->used += n;
    return 0;
}

/* What a JSON value is, for "expected …, got …". */
static const char *s_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    default:
        return "null";
    }
}

/* A string value for a refusal: escaped, at most 64 bytes of it. */
static const char *s_quote(const char *s, size_t len, char *out, size_t cap)
{
    return sam_check_escape(s, len < 64 ? len : 64, out, cap);
}

/* An integer of field f's type from v: a JSON number that is a whole number, or a string of
   digits with an optional '-'. */
static int s_dec_int(s_dec_t *dc, const ProtobufCFieldDescriptor *f, const json_t *v, void *dst)
{
    bool wide = s_size(f->type) == 8;
    bool is_unsigned = f->type == PROTOBUF_C_TYPE_UINT32 || f->type == PROTOBUF_C_TYPE_FIXED32 ||
                       f->type == PROTOBUF_C_TYPE_UINT64 || f->type == PROTOBUF_C_TYPE_FIXED64;
    const char *expected = wide ? "expected a string of digits (64-bit integers are written as "
                                  "strings; a JSON number is taken too)"
                                : "expected a whole number";
    bool neg = false;
    uint64_t mag = 0;
    char shown[160];
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        neg = i < 0;
        mag = neg ? (uint64_t)0 - (uint64_t)i : (uint64_t)i;
        snprintf(shown, sizeof shown, "%" JSON_INTEGER_FORMAT, i);
    } else if (json_is_real(v)) {
        double x = json_real_value(v);
        if (!isfinite(x) || x != floor(x) || fabs(x) >= 18446744073709551616.0)
            return s_fail(dc, "%s, got %.17g", expected, x);
        neg = x < 0;
        mag = (uint64_t)fabs(x);
        snprintf(shown, sizeof shown, "%.17g", x);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        char q[160];
        s_quote(s, len, q, sizeof q);
        size_t i = 0;
        if (len > 0 && s[0] == '-') {
            neg = true;
            i = 1;
        }
        if (i == len) return s_fail(dc, "%s, got '%s'", expected, q);
        for (; i < len; i++) {
            if (s[i] < '0' || s[i] > '9') return s_fail(dc, "%s, got '%s'", expected, q);
            unsigned digit = (unsigned)(s[i] - '0');
            if (mag > (UINT64_MAX - digit) / 10)
                return s_fail(dc, "'%s' is out of the range of %s", q, s_type_name(f->type));
            mag = mag * 10 + digit;
        }
        snprintf(shown, sizeof shown, "%s", q);
    } else {
        return s_fail(dc, "%s, got %s", expected, s_kind(v));
    }
    if (neg && mag == 0) neg = false; /* "-0" */
    uint64_t max = is_unsigned ? (wide ? UINT64_MAX : UINT32_MAX)
                               : (wide ? (uint64_t)INT64_MAX : (uint64_t)INT32_MAX);
    if ((neg && is_unsigned) || (!neg && mag > max) || (neg && mag > max + 1)) {
        if (is_unsigned)
            return s_fail(dc, "%s is out of the range of %s (0 to %" PRIu64 ")", shown,
                          s_type_name(f->type), max);
        return s_fail(dc, "%s is out of the range of %s (-%" PRIu64 " to %" PRIu64 ")", shown,
                      s_type_name(f->type), max + 1, max);
    }
    if (wide && is_unsigned)
        *(uint64_t *)dst = mag;
    else if (wide)
        *(int64_t *)dst = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    else if (is_unsigned)
        *(uint32_t *)dst = (uint32_t)mag;
    else
        *(int32_t *)dst = neg ? (int32_t)(0 - (uint32_t)mag) : (int32_t)mag;
    return 0;
}

static int s_dec_float(s_dec_t *dc, const ProtobufCFieldDescriptor *f, const json_t *v, void *dst)
{
    double x;
    if (json_is_number(v)) {
        x = json_number_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        char q[160];
        s_quote(s, len, q, sizeof q);
        if (strcmp(s, "NaN") == 0)
            x = NAN;
        else if (strcmp(s, "Infinity") == 0)
            x = INFINITY;
        else if (strcmp(s, "-Infinity") == 0)
            x = -INFINITY;
        else {
            /* a decimal number only: strtod alone would take "inf", "nan" and hex too */
            char *end = NULL;
            bool digit = false;
            for (size_t i = 0; i < len; i++) {
                if (!strchr("0123456789+-.eE", s[i]) || !s[i])
                    return s_fail(dc,
                                  "expected a number, \"NaN\", \"Infinity\" or "
                                  "\"-Infinity\", got '%s'",
                                  q);
                digit |= s[i] >= '0' && s[i] <= '9';
            }
            x = digit ? strtod(s, &end) : 0;
            if (!digit || !end || *end || !isfinite(x))
                return s_fail(dc,
                              "expected a number, \"NaN\", \"Infinity\" or \"-Infinity\", "
                              "got '%s'",
                              q);
        }
    } else {
        return s_fail(dc, "expected a number, got %s", s_kind(v));
    }
    if (f->type == PROTOBUF_C_TYPE_FLOAT) {
        if (isfinite(x) && fabs(x) > FLT_MAX)
            return s_fail(dc, "%.17g is out of the range of float", x);
        *(float *)dst = (float)x;
    } else {
        *(double *)dst = x;
    }
    return 0;
}

static int s_dec_enum(s_dec_t *dc, const ProtobufCFieldDescriptor *f, const json_t *v, void *dst)
{
    const ProtobufCEnumDescriptor *ed = f->descriptor;
    const ProtobufCEnumValue *ev = NULL;
    char q[160] = "";
    if (json_is_string(v)) {
        ev = protobuf_c_enum_descriptor_get_value_by_name(ed, json_string_value(v));
        s_quote(json_string_value(v), json_string_length(v), q, sizeof q);
    } else if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i >= INT32_MIN && i <= INT32_MAX) ev = protobuf_c_enum_descriptor_get_value(ed, (int)i);
        snprintf(q, sizeof q, "%" JSON_INTEGER_FORMAT, i);
    } else {
        return s_fail(dc, "expected the name of a %s value, got %s", ed->name, s_kind(v));
    }
    if (ev) {
        *(int *)dst = ev->value;
        return 0;
    }
    char list[300] = "";
    size_t n = 0;
    for (unsigned i = 0; i < ed->n_values && n < sizeof list; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", ed->values[i].name);
    return s_fail(dc, "unknown enum value '%s' for %s: one of %s", q, ed->name, list);
}

static int s_dec_string(s_dec_t *dc, const json_t *v, char **dst)
{
    if (!json_is_string(v)) return s_fail(dc, "expected a string, got %s", s_kind(v));
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (memchr(s, 0, len)) return s_fail(dc, "the string contains a NUL (\\u0000)");
    if (!sam_check_is_utf8(s, len)) return s_fail(dc, "the string is not valid UTF-8");
    if (s_spend(dc, len + 1) != 0) return -1;
    char *copy = malloc(len + 1);
    if (!copy) return s_fail(dc, "out of memory");
    memcpy(copy, s, len + 1);
    *dst = copy;
    return 0;
}

static int s_dec_bytes(s_dec_t *dc, const json_t *v, ProtobufCBinaryData *dst)
{
    if (!json_is_string(v)) return s_fail(dc, "expected a base64 string, got %s", s_kind(v));
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0) {
        dst->len = 0;
        dst->data = NULL;
        return 0;
    }
    bool url = strpbrk(s, "-_") != NULL, std = strpbrk(s, "+/") != NULL;
    bool padded = s[len - 1] == '=';
    int variant =
        url ? (padded ? sodium_base64_VARIANT_URLSAFE : sodium_base64_VARIANT_URLSAFE_NO_PADDING)
            : (padded ? sodium_base64_VARIANT_ORIGINAL : sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    size_t cap = len / 4 * 3 + 3, n = 0;
    if (s_spend(dc, cap) != 0) return -1;
    unsigned char *bin = malloc(cap);
    if (!bin) return s_fail(dc, "out of memory");
    const char *end = NULL;
    if ((url && std) || memchr(s, 0, len) ||
        sodium_base642bin(bin, cap, s, len, NULL, &n, &end, variant) != 0 || end != s + len) {
        free(bin);
        return s_fail(dc, "expected base64 (standard or URL-safe alphabet, padded or not)");
    }
    dst->len = n;
    dst->data = bin;
    return 0;
}

static ProtobufCMessage *s_dec_message(s_dec_t *dc, const ProtobufCMessageDescriptor *d,
                                       const json_t *in, int depth);

/* One value (not a list) of field f from v into dst; v is not null. */
static int s_dec_value(s_dec_t *dc, const ProtobufCFieldDescriptor *f, const json_t *v, void *dst,
                       int depth)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        return s_dec_float(dc, f, v, dst);
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v)) return s_fail(dc, "expected true or false, got %s", s_kind(v));
        *(protobuf_c_boolean *)dst = json_is_true(v);
        return 0;
    case PROTOBUF_C_TYPE_ENUM:
        return s_dec_enum(dc, f, v, dst);
    case PROTOBUF_C_TYPE_STRING:
        return s_dec_string(dc, v, dst);
    case PROTOBUF_C_TYPE_BYTES:
        return s_dec_bytes(dc, v, dst);
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage *sub = s_dec_message(dc, f->descriptor, v, depth + 1);
        if (!sub) return -1;
        *(ProtobufCMessage **)dst = sub;
        return 0;
    }
    default:
        return s_dec_int(dc, f, v, dst);
    }
}

/* A new element of list field f of m: the list grows by one, zeroed, and is counted only
   once it holds a value (the caller bumps *count). Returns the element or NULL. */
static void *s_grow(s_dec_t *dc, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                    size_t total)
{
    size_t *count = s_at(m, f->quantifier_offset);
    char **items = s_at(m, f->offset);
    size_t size = s_size(f->type);
    if (!*items) {
        if (s_spend(dc, total * size) != 0) return NULL;
        *items = calloc(total ? total : 1, size);
        if (!*items) {
            s_fail(dc, "out of memory");
            return NULL;
        }
    }
    return *items + *count * size;
}

static int s_dec_list(s_dec_t *dc, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                      const json_t *v, int depth)
{
    if (!json_is_array(v)) return s_fail(dc, "expected an array, got %s", s_kind(v));
    size_t n = json_array_size(v);
    size_t *count = s_at(m, f->quantifier_offset);
    for (size_t i = 0; i < n; i++) {
        size_t old = s_push(dc, "[%zu]", i);
        const json_t *item = json_array_get(v, i);
        if (json_is_null(item)) return s_fail(dc, "null is not allowed in a list");
        void *slot = s_grow(dc, m, f, n);
        if (!slot || s_dec_value(dc, f, item, slot, depth) != 0) return -1;
        (*count)++;
        s_pop(dc, old);
    }
    return 0;
}

static int s_dec_map(s_dec_t *dc, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                     const json_t *v, int depth)
{
    if (!json_is_object(v)) return s_fail(dc, "expected an object (a map), got %s", s_kind(v));
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
    size_t n = json_object_size(v), *count = s_at(m, f->quantifier_offset);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val)
    {
        char q[160];
        size_t old = s_push(dc, "[\"%s\"]", s_quote(key, strlen(key), q, sizeof q));
        ProtobufCMessage **slot = s_grow(dc, m, f, n);
        if (!slot || s_spend(dc, ed->sizeof_message) != 0) return -1;
        ProtobufCMessage *e = malloc(ed->sizeof_message);
        if (!e) return s_fail(dc, "out of memory");
        protobuf_c_message_init(ed, e);
        *slot = e;
        (*count)++;
        void *kp = s_at(e, kf->offset);
        int rc;
        if (kf->type == PROTOBUF_C_TYPE_BOOL) {
            rc = strcmp(key, "true") == 0 || strcmp(key, "false") == 0
                     ? (*(protobuf_c_boolean *)kp = key[0] == 't', 0)
                     : s_fail(dc, "a key of this map is true or false, not '%s'", q);
        } else {
            json_t *k = json_string(key);
            rc = k ? s_dec_value(dc, kf, k, kp, depth) : s_fail(dc, "the key is not UTF-8");
            json_decref(k);
        }
        if (rc != 0) return -1;
        if (json_is_null(val)) return s_fail(dc, "null is not allowed as a map value");
        if (s_dec_value(dc, vf, val, s_at(e, vf->offset), depth) != 0) return -1;
        s_pop(dc, old);
    }
    return 0;
}

/* The field of d that key names: its .proto name or its JSON name. */
static const ProtobufCFieldDescriptor *s_field(const ProtobufCMessageDescriptor *d, const char *key)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, key);
    if (f) return f;
    for (unsigned i = 0; i < d->n_fields; i++) {
        char name[128];
        if (strcmp(sam_pbjson_name(&d->fields[i], name, sizeof name), key) == 0)
            return &d->fields[i];
    }
    return NULL;
}

static int s_unknown(s_dec_t *dc, const ProtobufCMessageDescriptor *d, const char *key)
{
    char q[160], list[300] = "";
    size_t n = 0;
    for (unsigned i = 0; i < d->n_fields && n < sizeof list; i++) {
        char name[128];
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "",
                              sam_pbjson_name(&d->fields[i], name, sizeof name));
    }
    return s_fail(dc, "unknown field '%s' of %s (its fields: %s)",
                  s_quote(key, strlen(key), q, sizeof q), d->name, list);
}

/* "2019-11-30T12:00:00.5Z" or with an offset "+01:00". */
static int s_dec_timestamp(s_dec_t *dc, ProtobufCMessage *m, const json_t *v)
{
    const char *why = "expected an RFC 3339 time such as \"2019-11-30T12:00:00Z\"";
    if (!json_is_string(v)) return s_fail(dc, "%s, got %s", why, s_kind(v));
    const char *s = json_string_value(v);
    char q[160];
    s_quote(s, json_string_length(v), q, sizeof q);
    int y, mo, da, h, mi, se, used = 0;
    if (json_string_length(v) < 19 ||
        sscanf(s, "%4d-%2d-%2d%*1[Tt]%2d:%2d:%2d%n", &y, &mo, &da, &h, &mi, &se, &used) != 6 ||
        used != 19 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':')
        return s_fail(dc, "%s, got '%s'", why, q);
    for (int i = 0; i < 19; i++)
        if (i != 4 && i != 7 && i != 10 && i != 13 && i != 16 && (s[i] < '0' || s[i] > '9'))
            return s_fail(dc, "%s, got '%s'", why, q);
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || mo < 1 || mo > 12 || da < 1 || da > mdays[mo - 1] ||
        (mo == 2 && da == 29 && !leap) || h > 23 || mi > 59 || se > 59)
        return s_fail(dc, "'%s' is not a valid date and time", q);
    const char *p = s + 19;
    int32_t nanos = 0;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
            if (digits == 9) return s_fail(dc, "'%s' has more than 9 fraction digits", q);
            nanos = nanos * 10 + (*p - '0');
        }
        if (!digits) return s_fail(dc, "%s, got '%s'", why, q);
        for (int i = digits; i < 9; i++)
            nanos *= 10;
    }
    int64_t offset = 0;
    if ((*p == 'Z' || *p == 'z') && !p[1]) {
        offset = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':' && p[1] >= '0' &&
               p[1] <= '2' && p[2] >= '0' && p[2] <= '9' && p[4] >= '0' && p[4] <= '5' &&
               p[5] >= '0' && p[5] <= '9') {
        offset =
            ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 + ((p[4] - '0') * 10 + (p[5] - '0')) * 60;
        if (*p == '-') offset = -offset;
    } else {
        return s_fail(dc, "%s (with Z or an offset such as +01:00), got '%s'", why, q);
    }
    int64_t secs = s_days(y, mo, da) * 86400 + h * 3600 + mi * 60 + se - offset;
    if (secs < S_SECONDS_MIN || secs > S_SECONDS_MAX)
        return s_fail(dc, "'%s' is outside the years 1 to 9999 in UTC", q);
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const ProtobufCFieldDescriptor *fs =
        protobuf_c_message_descriptor_get_field_by_name(d, "seconds");
    const ProtobufCFieldDescriptor *fn =
        protobuf_c_message_descriptor_get_field_by_name(d, "nanos");
    if (!fs || !fn) return s_fail(dc, "%s has no seconds and nanos", d->name);
    *(int64_t *)s_at(m, fs->offset) = secs;
    *(int32_t *)s_at(m, fn->offset) = nanos;
    return 0;
}

/* Sets one field of m from v (not null). */
static int s_dec_field(s_dec_t *dc, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                       const json_t *v, int depth)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return s_is_map(f) ? s_dec_map(dc, m, f, v, depth) : s_dec_list(dc, m, f, v, depth);
    void *p = s_at(m, f->offset);
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t *which = s_at(m, f->quantifier_offset);
        if (*which) {
            const ProtobufCFieldDescriptor *other =
                protobuf_c_message_descriptor_get_field(m->descriptor, *which);
            char a[128], b[128];
            return s_fail(dc, "'%s' and '%s' are members of one oneof: only one may be set",
                          other ? sam_pbjson_name(other, a, sizeof a) : "?",
                          sam_pbjson_name(f, b, sizeof b));
        }
        /* the union holds nothing yet: the member starts from zero, not the default */
        memset(p, 0, s_size(f->type));
        if (s_dec_value(dc, f, v, p, depth) != 0) return -1;
        *which = f->id;
        return 0;
    }
    if (s_dec_value(dc, f, v, p, depth) != 0) return -1;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset)
        *(protobuf_c_boolean *)s_at(m, f->quantifier_offset) = 1;
    return 0;
}

static ProtobufCMessage *s_dec_message(s_dec_t *dc, const ProtobufCMessageDescriptor *d,
                                       const json_t *in, int depth)
{
    if (depth > SAM_PBJSON_DEPTH_MAX) {
        s_fail(dc, "messages nested deeper than %d", SAM_PBJSON_DEPTH_MAX);
        return NULL;
    }
    if (strcmp(d->name, S_ANY) == 0) {
        s_fail(dc, "google.protobuf.Any is not taken as JSON: publish the payload as data of "
                   "the event type's message");
        return NULL;
    }
    bool ts = strcmp(d->name, S_TIMESTAMP) == 0;
    if (!ts && !json_is_object(in)) {
        s_fail(dc, "expected an object (%s), got %s", d->name, s_kind(in));
        return NULL;
    }
    if (s_spend(dc, d->sizeof_message) != 0) return NULL;
    ProtobufCMessage *m = malloc(d->sizeof_message);
    if (!m) {
        s_fail(dc, "out of memory");
        return NULL;
    }
    protobuf_c_message_init(d, m);
    if (ts) {
        if (s_dec_timestamp(dc, m, in) == 0) return m;
        protobuf_c_message_free_unpacked(m, NULL);
        return NULL;
    }
    const char **seen = calloc(d->n_fields ? d->n_fields : 1, sizeof *seen);
    if (!seen) {
        s_fail(dc, "out of memory");
        protobuf_c_message_free_unpacked(m, NULL);
        return NULL;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)in, key, v)
    {
        const ProtobufCFieldDescriptor *f = s_field(d, key);
        if (!f) {
            if (dc->flags & SAM_PBJSON_IGNORE_UNKNOWN) continue;
            s_unknown(dc, d, key);
            goto fail;
        }
        size_t old = s_push(dc, dc->plen ? ".%s" : "%s", key);
        size_t i = (size_t)(f - d->fields);
        if (seen[i]) {
            s_fail(dc, "the field is given twice, as '%s' and as '%s'", seen[i], key);
            goto fail;
        }
        seen[i] = key;
        if (!json_is_null(v) && s_dec_field(dc, m, f, v, depth) != 0) goto fail;
        s_pop(dc, old);
    }
    free(seen);
    return m;
fail:
    free(seen);
    protobuf_c_message_free_unpacked(m, NULL);
    return NULL;
}

ProtobufCMessage *sam_pbjson_decode(const ProtobufCMessageDescriptor *d, const json_t *in,
                                    unsigned flags, sam_pbjson_error_t *err)
{
    s_dec_t dc = {.flags = flags, .err = err};
    if (err) err->path[0] = err->reason[0] = '\0';
    if (!d || !in) {
        s_fail(&dc, "no message given");
        return NULL;
    }
    return s_dec_message(&dc, d, in, 0);
}

ProtobufCMessage *sam_pbjson_decode_text(const ProtobufCMessageDescriptor *d, const char *text,
                                         size_t len, unsigned flags, sam_pbjson_error_t *err)
{
    s_dec_t dc = {.flags = flags, .err = err};
    if (err) err->path[0] = err->reason[0] = '\0';
    if (len > SAM_PBJSON_SIZE_MAX) {
        s_fail(&dc, "the JSON text is %zu bytes, more than the %d allowed", len,
               SAM_PBJSON_SIZE_MAX);
        return NULL;
    }
    json_error_t jerr;
    json_t *in = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!in) {
        char q[400];
        sam_check_escape(jerr.text, SIZE_MAX, q, sizeof q);
        s_fail(&dc, "not JSON: %s (line %d, column %d)", q, jerr.line, jerr.column);
        return NULL;
    }
    ProtobufCMessage *m = sam_pbjson_decode(d, in, flags, err);
    json_decref(in);
    return m;
}
