/*  import.h — `samctl import FILE`: loading a fixture file (format "samordna-fixture/1",
    e.g. deploy/examples/ostfold-2019.json) into every service that owns a part of it.

    The import is a plan built in memory, then published:
      1. the file is read with jansson (a syntax error names line and column) and its
         "format" checked;
      2. every section in import_sections.def runs in order — X(name, fn) with
         `int fn(import_t *imp, json_t *root)` — reading its part of the file, checking it,
         and adding CloudEvents to the plan with import_event();
      3. references are checked across the whole file: each import_require()d id must be
         import_define()d by some section or already be held by its owner service;
      4. only when no section and no reference reported a problem is anything sent: the plan
         is published in order, pipelined (up to 256 events in flight), with a progress line
         on stderr; an import_barrier() waits for every earlier event to be acknowledged;
      5. a summary per service and type says how many events were new, already there
         (duplicates of an earlier import) or refused.
    Every event id is deterministic, "<format>:<type>:<key>", so running the same import
    again publishes duplicates that change nothing.

    A section of another service is one file import_<area>.c with one function and one line
    in import_sections.def. Errors name the JSON path of the problem, as jq would write it:
    "$.pilots[2].investment_leader: unknown agency 'x'". The first problem is what the user
    sees first; all are printed.

    Memory: strings read from the JSON live as long as the import (the document is kept);
    import_alloc() gives zeroed memory that is freed with the import, for building payloads.
*/
#ifndef IMPORT_H
#define IMPORT_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct import_t import_t;

/* What a string member must look like (flags of import_str). */
enum {
    IMPORT_REQUIRED = 1 << 0, /* missing or empty is an error */
    IMPORT_ID = 1 << 1,       /* an id: [a-z0-9-]{1,64} */
    IMPORT_DATE = 1 << 2,     /* a calendar date YYYY-MM-DD */
    IMPORT_NUMBER = 1 << 3,   /* a municipality number: four digits */
};

/*  Adds one event to the plan: `payload` is packed into a CloudEvent of `type` with id
    "<format>:<type>:<key>", source the importing agency (--source), subject `key`, to be
    published to `service`. The payload is packed at once; it may be freed after the call.
    Returns 0, or -1 after recording an error (out of memory, key too long). */
int import_event(import_t *imp, const char *service, const char *type, const char *key,
                 const ProtobufCMessage *payload);

/*  Every event added after this is sent only once every event added before it has been
    acknowledged: use it between records and the records that refer to them. */
void import_barrier(import_t *imp);

/*  Records a problem at a JSON path ("$.agencies[3].kind"). Always returns -1. */
int import_error(import_t *imp, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*  Declares that the file holds a record of `kind` ("agency", "municipality", …) with `id`.
    A second definition of the same kind and id is an error at `path`. */
void import_define(import_t *imp, const char *kind, const char *id, const char *path);

/*  Requires that a record of `kind` with `id` exists — defined in the file, or held by the
    owner service named with import_kind(). Checked after every section ran; a missing one is
    an error at `path`. */
void import_require(import_t *imp, const char *kind, const char *id, const char *path);

/*  Names the owner of a kind: a record not in the file is looked up with service.method,
    whose request message carries the id as string field 1 (samordna.v1.GetRequest) and
    answers 200 when it exists, 404 when not. */
void import_kind(import_t *imp, const char *kind, const char *service, const char *method);

/*  Zeroed memory freed with the import; NULL (error recorded) when out of memory. */
void *import_alloc(import_t *imp, size_t size);

/*  A path string built with printf, allocated with the import ("$.pilots[2]"). */
const char *import_path(import_t *imp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*  The string member `name` of `obj` (at `path`), checked as `flags` say. Returns "" when
    absent and not required, NULL after recording an error. */
const char *import_str(import_t *imp, json_t *obj, const char *path, const char *name,
                       unsigned flags);

/*  The integer member `name`: false after recording an error (wrong type, out of
    [min, max], or missing when required); *out is left alone when absent. */
bool import_int(import_t *imp, json_t *obj, const char *path, const char *name, bool required,
                int64_t min, int64_t max, int64_t *out);

/*  The array member `name`, or NULL when absent (an error when required or not an array). */
json_t *import_array(import_t *imp, json_t *obj, const char *path, const char *name, bool required);

/*  The array of strings `name` as a NULL-free array allocated with the import; *n is its
    length. Returns false after recording an error. Absent gives 0 items. */
bool import_strings(import_t *imp, json_t *obj, const char *path, const char *name, char ***out,
                    size_t *n);

/*  Checks that `obj` is an object whose members are all in `known` (space-separated names);
    returns false after recording an error naming the first stranger. */
bool import_object(import_t *imp, json_t *obj, const char *path, const char *known);

/*  A member of a record that goes into the message field of the same name: a string
    (import_str with `flags`), or an array of strings into a repeated string field
    (import_strings). Numbers, enums and objects are the caller's to read. */
typedef struct {
    const char *name; /* the member and the field; NULL ends a table */
    unsigned flags;   /* of import_str */
} import_field_t;

/*  Reads the record `obj` at `path` into m: checks its members against `known`
    (import_object; NULL: checked already), then reads `fields` in order, stopping at the
    first problem. Returns false after recording it. */
bool import_record(import_t *imp, json_t *obj, const char *path, const char *known,
                   ProtobufCMessage *m, const import_field_t *fields);

/*  Calls fn for each item of the array member `name` of root, with its path "$.name[i]"
    and `arg`; an absent array has none (an error when it is not an array). */
typedef void (*import_item_fn)(import_t *imp, json_t *item, const char *path, size_t i, void *arg);
void import_each(import_t *imp, json_t *root, const char *name, import_item_fn fn, void *arg);

/*  An enum value from its word in the file: "county_governor" for AGENCY_KIND_COUNTY_GOVERNOR
    (the enum's name in upper snake case is the prefix). Returns the value, or -1 after
    recording an error at path listing the accepted words. */
int import_enum(import_t *imp, const ProtobufCEnumDescriptor *d, const char *word,
                const char *path);

/* The sections: X(name, fn). */
#define X(name, fn) int fn(import_t *imp, json_t *root);
#include "import_sections.def"
#undef X

#endif
