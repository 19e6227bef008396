/*  registry_check.h — the syntax rules of registry fields, each refusal naming the field.

    Every function takes the field's full name as the caller knows it ("pilot.municipality",
    "agency.former_names[2]"), returns 0 when the value is acceptable, and otherwise sets a
    400 refusal "<field>: <reason>" in reply and returns -1.
*/
#ifndef REGISTRY_CHECK_H
#define REGISTRY_CHECK_H

#include "sam_service.h"

#include <stdbool.h>
#include <stddef.h>

/* Size limits of the registry's fields (bytes of UTF-8, items of a list). */
#define REGISTRY_NAME_MAX 200
#define REGISTRY_TEXT_MAX 2000
#define REGISTRY_LIST_MAX 100
/* Largest event payload the registry takes; larger ones are refused 413. */
#define REGISTRY_PAYLOAD_MAX (64 * 1024)

/* An id by the rule of sam_check_id: [a-z0-9-]{1,64}. Empty is refused when required,
   accepted otherwise. */
int registry_check_id(sam_reply_t *reply, const char *field, const char *id, bool required);

/* Text of at most max bytes of valid UTF-8 without control characters other than newline
   and tab; empty is refused when required. */
int registry_check_text(sam_reply_t *reply, const char *field, const char *s, size_t max,
                        bool required);

/* A calendar date "YYYY-MM-DD" by the rule of sam_check_date (years 1900 to 2999); empty is
   refused when required. */
int registry_check_date(sam_reply_t *reply, const char *field, const char *s, bool required);

/* A municipality number: four digits. */
int registry_check_number(sam_reply_t *reply, const char *field, const char *s);

/* A list of at most REGISTRY_LIST_MAX items, at least one when required. */
int registry_check_count(sam_reply_t *reply, const char *field, size_t n, bool required);

/* An enum value that its descriptor knows and that is not the UNSPECIFIED zero. */
int registry_check_enum(sam_reply_t *reply, const char *field, const ProtobufCEnumDescriptor *d,
                        int value);

/* The file name of an enum value: "AGENCY_KIND_COUNTY_GOVERNOR" → "county_governor", written
   into out; "?" when the value is unknown. Returns out. */
const char *registry_enum_word(const ProtobufCEnumDescriptor *d, int value, char *out, size_t len);

/* The enum value of a file word ("county_governor" → AGENCY_KIND_COUNTY_GOVERNOR), or -1
   when the enum has no such value. */
int registry_enum_value(const ProtobufCEnumDescriptor *d, const char *word);

#endif
