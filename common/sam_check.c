/*  sam_check.c — see sam_check.h.

    The wire walk reads protobuf's encoding directly (tag, wire type, length) rather than the
    unpacked message: protobuf-c keeps a string only up to its first NUL, so an embedded NUL —
    "an id stored under the part before it while the payload keeps all of it" — is visible
    only in the bytes. Each length-delimited field is looked up in the descriptor: a string
    is checked, a message is walked in turn, bytes and packed numbers are skipped.
*/
#include "sam_check.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Length of the UTF-8 character at s (n bytes left), 0 when it is not valid there. */
static size_t s_utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned cp;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else
        return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* A C1 control (U+0080–U+009F) is the two bytes C2 80 … C2 9F. */
static bool s_c1(const unsigned char *s, size_t len)
{
    return len == 2 && s[0] == 0xc2 && s[1] < 0xa0;
}

bool sam_check_is_utf8(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < len;) {
        size_t l = s_utf8_len(s + i, len - i);
        if (!l) return false;
        i += l;
    }
    return true;
}

const char *sam_check_text_why(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        if (c == 0) return "contains a NUL byte";
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
            return "contains a control character";
        size_t l = s_utf8_len(s + i, len - i);
        if (!l) return "is not valid UTF-8";
        if (s_c1(s + i, l)) return "contains a control character";
        i += l;
    }
    return NULL;
}

const char *sam_check_line_why(const char *s)
{
    const char *why = sam_check_text_why(s, strlen(s));
    if (why) return why;
    return strpbrk(s, "\t\n\r") ? "contains a control character" : NULL;
}

/* ---- the wire walk ------------------------------------------------------------------------ */

typedef struct {
    const uint8_t *p, *end;
} s_reader_t;

static bool s_varint(s_reader_t *r, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return false;
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

static int s_fail(char *err, size_t cap, const char *path, const char *why)
{
    snprintf(err, cap, "%s: %s", *path ? path : "body", why);
    return -1;
}

/* Not protobuf at all: -2, so the caller answers "undecodable" as protobuf-c would. */
static int s_broken(char *err, size_t cap, const char *path, const char *why)
{
    s_fail(err, cap, path, why);
    return -2;
}

/* The index of field f within desc's fields (for counting repeated items). */
static size_t s_field_index(const ProtobufCMessageDescriptor *desc,
                            const ProtobufCFieldDescriptor *f)
{
    return (size_t)(f - desc->fields);
}

static int s_walk(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                  char *path, size_t plen, size_t pcap, int depth, char *err, size_t cap)
{
    if (depth > SAM_CHECK_DEPTH_MAX) return s_fail(err, cap, path, "nested too deep");
    s_reader_t r = {data, data + len};
    uint32_t counts[64] = {0}; /* items seen per field, for the path of a repeated one */
    while (r.p < r.end) {
        uint64_t tag;
        if (!s_varint(&r, &tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
            return s_broken(err, cap, path, "is not protobuf (bad tag)");
        unsigned wire = (unsigned)(tag & 7);
        const ProtobufCFieldDescriptor *f =
            desc ? protobuf_c_message_descriptor_get_field(desc, (unsigned)(tag >> 3)) : NULL;
        uint64_t n;
        switch (wire) {
        case 0:
            if (!s_varint(&r, &n)) return s_broken(err, cap, path, "is not protobuf (varint)");
            continue;
        case 1:
            if (r.end - r.p < 8) return s_broken(err, cap, path, "is not protobuf (truncated)");
            r.p += 8;
            continue;
        case 5:
            if (r.end - r.p < 4) return s_broken(err, cap, path, "is not protobuf (truncated)");
            r.p += 4;
            continue;
        case 2:
            break;
        default:
            return s_broken(err, cap, path, "is not protobuf (wire type)");
        }
        if (!s_varint(&r, &n) || n > (uint64_t)(r.end - r.p))
            return s_broken(err, cap, path, "is not protobuf (length past the end)");
        const uint8_t *val = r.p;
        r.p += n;
        if (!f || (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE))
            continue; /* unknown, bytes, or packed numbers */
        /* this field's path: prefix + name, and [i] when repeated */
        size_t at = plen;
        int w;
        size_t idx = s_field_index(desc, f);
        if (f->label == PROTOBUF_C_LABEL_REPEATED)
            w = snprintf(path + at, pcap - at, "%s%s[%" PRIu32 "]", at ? "." : "", f->name,
                         idx < 64 ? counts[idx]++ : 0);
        else
            w = snprintf(path + at, pcap - at, "%s%s", at ? "." : "", f->name);
        size_t nl = w > 0 && (size_t)w < pcap - at ? at + (size_t)w : pcap - 1;
        int rc = 0;
        if (f->type == PROTOBUF_C_TYPE_STRING) {
            const char *why = n > SAM_CHECK_TEXT_MAX ? "is longer than 65536 bytes"
                                                     : sam_check_text_why((const char *)val, n);
            if (why) rc = s_fail(err, cap, path, why);
        } else {
            rc = s_walk(f->descriptor, val, n, path, nl, pcap, depth + 1, err, cap);
        }
        path[plen] = 0;
        if (rc) return rc;
    }
    return 0;
}

int sam_check_wire(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                   const char *prefix, char *err, size_t cap)
{
    if (!data || !len) return 0; /* an empty message: nothing to check */
    char path[256];
    size_t pl = prefix ? strlen(prefix) : 0;
    if (pl >= sizeof path) pl = sizeof path - 1;
    memcpy(path, prefix ? prefix : "", pl);
    /* a prefix "data." ends in the separator the walk would add: drop it, the walk adds one */
    if (pl && path[pl - 1] == '.') pl--;
    path[pl] = 0;
    return s_walk(desc, data, len, path, pl, sizeof path, 0, err, cap);
}

/* ---- field rules -------------------------------------------------------------------------- */

static bool s_day(int y, int m, int d)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12 || d < 1) return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= days[m - 1] + (m == 2 && leap);
}

bool sam_check_is_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > SAM_CHECK_ID_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

int sam_check_id(const char *field, const char *id, bool required, char *err, size_t cap)
{
    if (!id || !*id) {
        if (!required) return 0;
        snprintf(err, cap, "%s: required", field);
        return -1;
    }
    if (sam_check_is_id(id)) return 0;
    char shown[100];
    snprintf(err, cap, "%s: '%s' is not an id (1 to %d of a-z, 0-9 and '-')", field,
             sam_check_escape(id, 80, shown, sizeof shown), SAM_CHECK_ID_MAX);
    return -1;
}

/* The year of a date-shaped s (YYYY-MM-DD, digits), 0 when s has not that shape or is no
   calendar day; m and d set. */
static int s_date_year(const char *s, int *m, int *d)
{
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-') return 0;
    for (size_t i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) return 0;
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + s[3] - '0';
    *m = (s[5] - '0') * 10 + s[6] - '0';
    *d = (s[8] - '0') * 10 + s[9] - '0';
    return y && s_day(y, *m, *d) ? y : 0;
}

bool sam_check_is_date(const char *s)
{
    int m, d, y = s_date_year(s, &m, &d);
    return y >= SAM_CHECK_YEAR_MIN && y <= SAM_CHECK_YEAR_MAX;
}

int sam_check_date(const char *field, const char *date, bool required, char *err, size_t cap)
{
    if (!date || !*date) {
        if (!required) return 0;
        snprintf(err, cap, "%s: required (YYYY-MM-DD)", field);
        return -1;
    }
    int m, d, y = s_date_year(date, &m, &d);
    if (!y) {
        char shown[64];
        snprintf(err, cap, "%s: '%s' is not a date YYYY-MM-DD", field,
                 sam_check_escape(date, 40, shown, sizeof shown));
        return -1;
    }
    if (y < SAM_CHECK_YEAR_MIN || y > SAM_CHECK_YEAR_MAX) {
        snprintf(err, cap, "%s: %s is outside the years %d to %d", field, date, SAM_CHECK_YEAR_MIN,
                 SAM_CHECK_YEAR_MAX);
        return -1;
    }
    return 0;
}

int sam_check_amount(const char *field, int64_t ore, int64_t min_ore, char *err, size_t cap)
{
    if (ore >= min_ore && ore <= SAM_CHECK_AMOUNT_MAX) return 0;
    if (ore > SAM_CHECK_AMOUNT_MAX)
        snprintf(err, cap, "%s: %" PRId64 " øre is more than 10^15 øre", field, ore);
    else if (min_ore == 1)
        snprintf(err, cap, "%s: %" PRId64 " øre — must be more than zero", field, ore);
    else if (min_ore == 0)
        snprintf(err, cap, "%s: %" PRId64 " øre is negative", field, ore);
    else
        snprintf(err, cap, "%s: %" PRId64 " øre is below %" PRId64 " øre", field, ore, min_ore);
    return -1;
}

/* ---- showing values ------------------------------------------------------------------------ */

const char *sam_check_escape(const char *str, size_t max_in, char *out, size_t cap)
{
    const unsigned char *s = (const unsigned char *)(str ? str : "");
    size_t n = strnlen((const char *)s, max_in), o = 0;
    if (!cap) return out;
    for (size_t i = 0; i < n;) {
        char esc[8];
        size_t el = 0, l = s_utf8_len(s + i, n - i);
        unsigned c = s[i];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            el = 2;
            l = 1;
        } else if (c == '\t' || c == '\n' || c == '\r') {
            esc[0] = '\\';
            esc[1] = c == '\t' ? 't' : c == '\n' ? 'n' : 'r';
            el = 2;
            l = 1;
        } else if (!l || c < 0x20 || c == 0x7f || s_c1(s + i, l)) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            el = 4;
            l = 1;
        } else {
            memcpy(esc, s + i, l);
            el = l;
        }
        if (o + el >= cap) break;
        memcpy(out + o, esc, el);
        o += el;
        i += l;
    }
    out[o] = 0;
    return out;
}

const char *sam_check_format_ore(int64_t ore, char *out, size_t cap)
{
    uint64_t v = ore < 0 ? (uint64_t)0 - (uint64_t)ore : (uint64_t)ore;
    uint64_t kr = v / 100, o = v % 100;
    char digits[24], grouped[32]; /* 20 digits and 6 spaces at most */
    int nd = snprintf(digits, sizeof digits, "%" PRIu64, kr);
    size_t g = 0;
    for (int i = 0; i < nd; i++) {
        if (i > 0 && (nd - i) % 3 == 0) grouped[g++] = ' ';
        grouped[g++] = digits[i];
    }
    grouped[g] = 0;
    if (o)
        snprintf(out, cap, "%s%s,%02" PRIu64, ore < 0 ? "-" : "", grouped, o);
    else
        snprintf(out, cap, "%s%s", ore < 0 ? "-" : "", grouped);
    return out;
}

char *sam_check_sanitize(char *buf)
{
    unsigned char *s = (unsigned char *)buf;
    size_t n = strlen(buf);
    for (size_t i = 0; i < n;) {
        size_t l = s_utf8_len(s + i, n - i);
        if (s[i] == '\n' || s[i] == '\r') {
            s[i] = ' ';
            l = 1;
        } else if (!l || (s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f) {
            s[i] = '?';
            l = 1;
        } else if (s_c1(s + i, l)) {
            s[i] = '?';
            s[i + 1] = '?';
        }
        i += l;
    }
    return buf;
}
