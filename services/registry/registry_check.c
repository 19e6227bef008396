/*  registry_check.c — see registry_check.h. */
#include "registry_check.h"

#include "sam_check.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* The id and date rules are everyone's (sam_check.h); the registry only answers them. */
static int s_refuse(sam_reply_t *reply, int rc, const char *err)
{
    return rc ? sam_reply_error(reply, SAM_BAD_REQUEST, "%s", err) : 0;
}

int registry_check_id(sam_reply_t *reply, const char *field, const char *id, bool required)
{
    char err[200];
    return s_refuse(reply, sam_check_id(field, id, required, err, sizeof err), err);
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
    char err[200];
    return s_refuse(reply, sam_check_date(field, s, required, err, sizeof err), err);
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
