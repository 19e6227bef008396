/*  sam_check.h — the field rules every service applies, in one place.

    Text from outside is hostile (CONVENTIONS.md 14). Before any handler runs, the runtime
    walks each request body and each event payload on the wire, as the message type its
    table row names, and applies the text rule to every string field at any depth (nested
    messages, repeated fields, map keys and values): a strict reader in another language
    must be able to decode whatever samordna stores and answers.

    The meaning of a field is the services' to know, so the other rules are theirs to call,
    but each exists once, here: an id (one spelling for every key a client names), a date
    (one calendar, one year range), an amount (whole øre, one ceiling). A service adds only
    its domain's rules on top (a municipality number, a budget year, "more than zero").

    Every function that refuses writes "<path>: <reason>" into err (cap bytes, always
    NUL-terminated) and returns -1; the path is the field's as the client wrote it
    ("subscription.url", "attributes[2].key"). A reason never quotes the client's bytes raw:
    sam_check_escape() is for any value a refusal or a log line must show.
*/
#ifndef SAM_CHECK_H
#define SAM_CHECK_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest string field the wire check lets through (a row's payload limit bounds it too). */
#define SAM_CHECK_TEXT_MAX (64 * 1024)
/* Deepest nesting of messages the wire check follows. */
#define SAM_CHECK_DEPTH_MAX 32
/* The one year range of every date in samordna: the oldest date the data holds is from this
   century, and 2999 is far past any plan; a year outside is a typing error. */
#define SAM_CHECK_YEAR_MIN 1900
#define SAM_CHECK_YEAR_MAX 2999
/* Longest id. */
#define SAM_CHECK_ID_MAX 64
/* Largest amount in øre: 10^15 øre is ten thousand billion kroner, several times the state
   budget, and a sum of thousands of such amounts still fits an int64_t. */
#define SAM_CHECK_AMOUNT_MAX 1000000000000000LL

/*  The text rule on len bytes: valid UTF-8 (shortest form, no surrogates, at most U+10FFFF),
    no NUL, no control character (C0 and C1, DEL) other than tab, line feed and carriage
    return. Returns NULL when s passes, else the reason (a constant string). */
const char *sam_check_text_why(const char *s, size_t len);

/*  Only the UTF-8 part of the text rule: true when the len bytes of s are valid UTF-8
    (shortest form, no surrogates, at most U+10FFFF). For mappings that must keep any text
    but refuse bytes that are no text (sam_pbjson). */
bool sam_check_is_utf8(const char *s, size_t len);

/*  The text rule, and no tab, line feed or carriage return either: for names that stand on
    one line (ids, types, sources, subjects). NULL when s (NUL-terminated) passes. */
const char *sam_check_line_why(const char *s);

/*  Walks data (len bytes) on the wire as a message of type desc and applies the text rule to
    every string field. prefix (may be "") is put before each path ("data."). Unknown fields
    are skipped as protobuf says. Returns 0; -1 with err set when a string breaks the rule;
    -2 with err set when the bytes are not protobuf at all (the caller answers that as
    undecodable, as protobuf-c's own unpack would). */
int sam_check_wire(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                   const char *prefix, char *err, size_t cap);

/*  The id rule: 1 to SAM_CHECK_ID_MAX of a-z, 0-9 and '-'. True when s (may be NULL) is one;
    for lookups that answer "not found" rather than refuse. */
bool sam_check_is_id(const char *s);

/*  The id rule as a refusal "<field>: required" or "<field>: '<id>' is not an id …". Empty
    (or NULL) passes unless required. Returns 0 or -1 (err set). */
int sam_check_id(const char *field, const char *id, bool required, char *err, size_t cap);

/*  The date rule: a calendar date YYYY-MM-DD between SAM_CHECK_YEAR_MIN and _MAX, leap years
    by the Gregorian rule (2028-02-29 is one, 2027-02-29 and 2100-02-29 are not). True when
    s (may be NULL) is one. */
bool sam_check_is_date(const char *s);

/*  The date rule as a refusal "<field>: required (YYYY-MM-DD)", "<field>: '<s>' is not a
    date YYYY-MM-DD" or "<field>: <s> is outside the years 1900 to 2999". Empty (or NULL)
    passes unless required. Returns 0 or -1 (err set). */
int sam_check_date(const char *field, const char *date, bool required, char *err, size_t cap);

/*  The amount rule: whole øre, at least min_ore (0: none negative; 1: more than zero), at
    most SAM_CHECK_AMOUNT_MAX. Returns 0 or -1 (err set: "<field>: <n> øre — must be more
    than zero", "… is negative", "… is below <min> øre" or "… is more than 10^15 øre"). */
int sam_check_amount(const char *field, int64_t ore, int64_t min_ore, char *err, size_t cap);

/*  Writes s as safe text into out (cap bytes, NUL-terminated): `"` and `\` are escaped with a
    backslash, tab, newline and carriage return as \t \n \r, every other control character and
    every byte that is not part of valid UTF-8 as \xNN. At most max_in bytes of s are read
    (SIZE_MAX: all); a cut never splits a character. Returns out. */
const char *sam_check_escape(const char *s, size_t max_in, char *out, size_t cap);

/*  An amount of øre as Norwegian kroner: whole kroner grouped by three with a space
    ("1 500 000"), and a decimal comma only when there are øre ("-12,50"). Writes into out
    (cap bytes; 32 hold any int64_t) and returns out. */
const char *sam_check_format_ore(int64_t ore, char *out, size_t cap);

/*  Makes buf (NUL-terminated) safe text in place: each invalid UTF-8 byte and each control
    character other than tab becomes '?'; a newline becomes a space. For whole lines
    (refusals, log lines) whose values may have come from outside. Returns buf. */
char *sam_check_sanitize(char *buf);

#endif
