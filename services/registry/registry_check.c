/*  registry_check.c — see registry_check.h. */
#include "registry_check.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

int registry_check_id(sam_reply_t *reply, const char *field, const char *id, bool required)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0)
        return required ? sam_reply_error(reply, SAM_BAD_REQUEST, "%s: required", field) : 0;
    if (n > 64)
        return sam_reply_error(reply, SAM_BAD_REQUEST, "%s: id longer than 64 characters", field);
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return sam_reply_error(reply, SAM_BAD_REQUEST,
                                   "%s: id '%.64s' may hold only a-z, 0-9 and '-'", field, id);
    }
    return 0;
}

/* Length of the UTF-8 sequence at s, or 0 when it is not valid UTF-8. */
static size_t s_utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80) return 1;
    size_t n;
    unsigned min;
    unsigned cp;
    if ((s[0] & 0xE0) == 0xC0) {
        n = 2;
        min = 0x80;
        cp = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        n = 3;
        min = 0x800;
        cp = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        n = 4;
        min = 0x10000;
        cp = s[0] & 0x07;
    } else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

int registry_check_text(sam_reply_t *reply, const char *field, const char *s, size_t max,
                        bool required)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0)
        return required ? sam_reply_error(reply, SAM_BAD_REQUEST, "%s: required", field) : 0;
    if (n > max)
        return sam_reply_error(reply, SAM_BAD_REQUEST, "%s: longer than %zu bytes (%zu)", field,
                               max, n);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        if (*p < 0x20 && *p != '\n' && *p != '\t')
            return sam_reply_error(reply, SAM_BAD_REQUEST, "%s: control character at byte %zu",
                                   field, (size_t)(p - (const unsigned char *)s));
        size_t l = s_utf8_len(p);
        if (!l)
            return sam_reply_error(reply, SAM_BAD_REQUEST, "%s: not UTF-8 at byte %zu", field,
                                   (size_t)(p - (const unsigned char *)s));
        p += l;
    }
    return 0;
}

int registry_check_date(sam_reply_t *reply, const char *field, const char *s, bool required)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0)
        return required ? sam_reply_error(reply, SAM_BAD_REQUEST, "%s: required", field) : 0;
    bool shape = n == 10 && s[4] == '-' && s[7] == '-';
    for (size_t i = 0; shape && i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i])) shape = false;
    if (!shape)
        return sam_reply_error(reply, SAM_BAD_REQUEST, "%s: '%.40s' is not a date YYYY-MM-DD",
                               field, s);
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    int m = (s[5] - '0') * 10 + (s[6] - '0');
    int d = (s[8] - '0') * 10 + (s[9] - '0');
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1800 || m < 1 || m > 12 || d < 1 || d > days[m - 1] + (m == 2 && leap))
        return sam_reply_error(reply, SAM_BAD_REQUEST, "%s: '%s' is not a calendar date", field, s);
    return 0;
}

int registry_check_number(sam_reply_t *reply, const char *field, const char *s)
{
    bool ok = s && strlen(s) == 4;
    for (int i = 0; ok && i < 4; i++)
        if (!isdigit((unsigned char)s[i])) ok = false;
    if (!ok)
        return sam_reply_error(reply, SAM_BAD_REQUEST,
                               "%s: '%.20s' is not a municipality number (four digits)", field,
                               s ? s : "");
    return 0;
}

int registry_check_count(sam_reply_t *reply, const char *field, size_t n, bool required)
{
    if (n == 0 && required) return sam_reply_error(reply, SAM_BAD_REQUEST, "%s: required", field);
    if (n > REGISTRY_LIST_MAX)
        return sam_reply_error(reply, SAM_BAD_REQUEST, "%s: more than %d items (%zu)", field,
                               REGISTRY_LIST_MAX, n);
    return 0;
}

int registry_check_enum(sam_reply_t *reply, const char *field, const ProtobufCEnumDescriptor *d,
                        int value)
{
    if (value == 0) return sam_reply_error(reply, SAM_BAD_REQUEST, "%s: required", field);
    if (!protobuf_c_enum_descriptor_get_value(d, value))
        return sam_reply_error(reply, SAM_BAD_REQUEST, "%s: unknown value %d", field, value);
    return 0;
}

const char *registry_enum_word(const ProtobufCEnumDescriptor *d, int value, char *out, size_t len)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
    if (!v || len == 0) {
        snprintf(out, len, "?");
        return out;
    }
    /* The prefix is the enum's name in upper snake case: AgencyKind → AGENCY_KIND_. */
    size_t skip = 0;
    for (const char *p = d->short_name; *p; p++)
        skip += (p != d->short_name && isupper((unsigned char)*p)) ? 2 : 1;
    skip++; /* the underscore after the prefix */
    const char *name = strlen(v->name) > skip ? v->name + skip : v->name;
    size_t i = 0;
    for (; name[i] && i + 1 < len; i++)
        out[i] = (char)tolower((unsigned char)name[i]);
    out[i] = '\0';
    return out;
}

int registry_enum_value(const ProtobufCEnumDescriptor *d, const char *word)
{
    char name[128];
    size_t n = 0;
    for (const char *p = d->short_name; *p && n + 2 < sizeof name; p++) {
        if (p != d->short_name && isupper((unsigned char)*p)) name[n++] = '_';
        name[n++] = (char)toupper((unsigned char)*p);
    }
    if (n + 1 < sizeof name) name[n++] = '_';
    for (const char *p = word; *p && n + 1 < sizeof name; p++)
        name[n++] = (char)toupper((unsigned char)*p);
    name[n] = '\0';
    if (!word[0] || strlen(word) > 60) return -1;
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(d, name);
    return v && v->value != 0 ? v->value : -1;
}
