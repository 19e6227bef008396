/*  sam_pbjson.h — any protobuf-c message as JSON and back, by the proto3 JSON mapping.

    One generic walk over the protobuf-c descriptors: no message is mapped by hand, so a
    field added to a .proto is in the JSON the moment it is compiled. The mapping is
    protobuf's own ("ProtoJSON"), the one every protobuf library of another language speaks:

      message        object; names in lowerCamelCase ("amountOre") on output, and on input
                     either that or the .proto name ("amount_ore"); unknown names refused
      enum           the value's name ("AWARD_STATUS_OPEN"); on input a number too
      int64, uint64, sint64, fixed64, sfixed64
                     a string of digits ("150000000"); on input a JSON number too, when it
                     is a whole number within the type's range
      other integers a number; on input a string of digits too
      float, double  a number, or "NaN", "Infinity", "-Infinity"
      bool           true or false
      string         a string: valid UTF-8 without NUL
      bytes          base64 (standard alphabet, padded) on output; on input standard or
                     URL-safe, padded or not
      repeated       an array; map<K, V> an object whose keys are the K values as strings
      oneof          its members are fields of their own, and at most one may be set
      google.protobuf.Timestamp
                     an RFC 3339 string in UTC, "2019-11-30T12:00:00Z" (0, 3, 6 or 9
                     fraction digits on output; any offset on input)
      null           on input, the field's default (not set); not inside an array

    google.protobuf.Any is not mapped: its JSON form needs the message type behind any
    type URL, and samordna's events carry their payload as binary_data, a message of the
    type the service's table names. A message holding an Any is refused both ways.

    On output a field with its default value (0, "", false, the zero enum, an empty list, no
    message) is left out unless SAM_PBJSON_DEFAULTS asks for it; a set member of a oneof is
    always written, a message field always when it is there.

    Bounds: messages nest at most SAM_PBJSON_DEPTH_MAX deep, and a decoded message holds at
    most SAM_PBJSON_SIZE_MAX bytes of strings, bytes and list items; a caller that reads JSON
    from the network bounds the text before parsing it (sam_pbjson_decode_text does both).
*/
#ifndef SAM_PBJSON_H
#define SAM_PBJSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#define SAM_PBJSON_DEPTH_MAX 32
#define SAM_PBJSON_SIZE_MAX (8 * 1024 * 1024)

/* Flags of sam_pbjson_encode and sam_pbjson_decode (or-ed). */
enum {
    SAM_PBJSON_DEFAULTS = 1,       /* encode: write fields that hold their default value too */
    SAM_PBJSON_PROTO_NAMES = 2,    /* encode: the .proto names ("amount_ore") as keys */
    SAM_PBJSON_IGNORE_UNKNOWN = 4, /* decode: skip fields the message does not have */
};

/*  Why a decode failed. path is the field as the client wrote it, from the top of the
    message given to decode: "funders[1].amountOre", "attributes[\"x\"]"; empty for the
    top itself. A caller that nests the message puts its own prefix before it ("data.").
    reason is one line: "expected a string of digits", "unknown field 'amuont'" … Values
    from the input are escaped (sam_check_escape), so both may be logged and answered. */
typedef struct {
    char path[256];
    char reason[512];
} sam_pbjson_error_t;

/*  msg as JSON. Returns a new reference the caller releases with json_decref, or NULL when
    msg cannot be written as JSON: a string that is not valid UTF-8, a google.protobuf.Any,
    a Timestamp out of the years 1 to 9999, nesting deeper than SAM_PBJSON_DEPTH_MAX. */
json_t *sam_pbjson_encode(const ProtobufCMessage *msg, unsigned flags);

/*  The message of type d that the JSON object `in` describes. Returns a new message the
    caller frees with protobuf_c_message_free_unpacked(m, NULL), or NULL with err (may be
    NULL) saying where and why. Nothing is returned half-made: any refusal frees what was
    built. The result packs with protobuf_c_message_pack like any unpacked message. */
ProtobufCMessage *sam_pbjson_decode(const ProtobufCMessageDescriptor *d, const json_t *in,
                                    unsigned flags, sam_pbjson_error_t *err);

/*  The same from JSON text (len bytes, need not be NUL-terminated): refuses text over
    SAM_PBJSON_SIZE_MAX bytes, text that is not one JSON object, and an object that names a
    key twice, with the parser's line and column in reason. */
ProtobufCMessage *sam_pbjson_decode_text(const ProtobufCMessageDescriptor *d, const char *text,
                                         size_t len, unsigned flags, sam_pbjson_error_t *err);

/*  The JSON name of field f (protoc's rule: each '_' dropped and the letter after it
    upper-cased) into out (cap bytes, NUL-terminated). Returns out. For callers that name
    fields the way the JSON does (OpenAPI schemas, refusals). */
const char *sam_pbjson_name(const ProtobufCFieldDescriptor *f, char *out, size_t cap);

#endif
