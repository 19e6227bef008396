/*  samctl.h — what every samctl command shares: the connection, output mode, and the
    command table.

    A command is one line in commands.def — X(name, function, summary) — plus its function
    in the file of its area (cmd_registry.c, cmd_status.c, …). samctl.c parses the global
    options before the command word, connects, and calls the function with the rest of argv
    (argv[0] is the command word). A command prints readable tables by default and JSON with
    --json; it returns the process exit code: 0 ok, 1 the service refused or failed, 2 usage.
*/
#ifndef SAMCTL_H
#define SAMCTL_H

#include "sam_client.h"
#include "sam_config.h"
#include "sam_status.h"

#include "cloudevents/v1/cloudevents.pb-c.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

typedef struct {
    sam_config_t *config; /* global options */
    sam_client_t *client; /* connected to --broker (created on first samctl_client call) */
    bool json;            /* --json: machine output */
    int timeout_ms;       /* --timeout-ms for each call */
    const char *source;   /* --source: agency id used as CloudEvent source (default fmov) */
} samctl_t;

typedef int (*samctl_cmd_fn)(samctl_t *ctl, int argc, char **argv);

/* The client, connecting on first use; NULL (message printed) when it cannot connect. */
sam_client_t *samctl_client(samctl_t *ctl);

/*  Calls service.method with req within --timeout-ms, all attempts included: with `resend`
    (reads and publishes, which are idempotent) the request is sent again, with the same id,
    when half of it has passed without an answer. Returns the status; on 200 with reply_desc,
    *reply_out is the unpacked reply (the caller frees it). res->message says why otherwise
    (res is cleared first; sam_result_clear() it). Prints nothing. */
uint32_t samctl_request(samctl_t *ctl, const char *service, const char *method,
                        const ProtobufCMessage *req, const ProtobufCMessageDescriptor *reply_desc,
                        ProtobufCMessage **reply_out, bool resend, sam_result_t *res);

/*  samctl_request() with resend, for the common case: the unpacked reply (the caller frees
    it), or NULL after printing "samctl: <service> <method>: <code> <name>: <message>" to
    stderr. */
ProtobufCMessage *samctl_call(samctl_t *ctl, const char *service, const char *method,
                              const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *reply_desc);

/* Prints one JSON document (compact, keys in insertion order) on its own line to stdout and
   releases j; the --json output of every command. */
void samctl_print_json(json_t *j);

/*  A CloudEvent around a packed payload, with the storage it points into. It points into
    itself, so it stays where samctl_event_init() filled it; samctl_event_clear() frees. */
typedef struct {
    Io__Cloudevents__V1__CloudEvent ce;
    Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue value[2];
    Io__Cloudevents__V1__CloudEvent__AttributesEntry entry[2];
    Io__Cloudevents__V1__CloudEvent__AttributesEntry *entries[2];
    uint8_t *data; /* the packed payload, owned */
} samctl_event_t;

/*  Fills e->ce: id, source, spec 1.0, type and the packed payload as binary data; with a
    subject also the attributes datacontenttype (application/protobuf) and subject. The
    strings are borrowed. Returns 0, or -1 when out of memory. */
int samctl_event_init(samctl_event_t *e, const char *id, const char *source, const char *type,
                      const char *subject, const ProtobufCMessage *payload);
void samctl_event_clear(samctl_event_t *e);

/* Prints "samctl <cmd>: <message>" and the command's usage line to stderr; returns 2. */
int samctl_usage(const char *cmd, const char *usage, const char *message);

/* Declarations of every command function. */
#define X(name, fn, summary) int fn(samctl_t *ctl, int argc, char **argv);
#include "commands.def"
#undef X

#endif
