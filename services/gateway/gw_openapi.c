/*  gw_openapi.c — GET /v1/openapi.json: the gateway described in OpenAPI 3.1, made from the
    same tables the gateway routes by (gw_read.h) and the protobuf-c descriptors of their
    messages, so the document cannot drift from what the gateway answers.

    Schemas follow the proto3 JSON mapping that sam_pbjson speaks (common/sam_pbjson.h):
    one schema per message under components/schemas, named by its full protobuf name
    ("samordna.v1.BoardReply"), its properties by their JSON names; 64-bit integers are
    strings of digits, enums strings of their value names (a schema of their own), bytes
    base64, repeated fields arrays, a map an object of its values, google.protobuf.Timestamp
    an RFC 3339 date-time. The reads' answers write every field, defaults too; a request's
    fields are all optional, as in proto3.

    Paths: each short route, each /v1/<service>/<method>, POST /v1/events in the three
    modes of the CloudEvents HTTP binding, /v1/healthz and this document. Every refusal is an
    RFC 9457 problem (components/schemas/Problem).

    The document is made once, on the first request, and kept: the tables are compiled in.
*/
#include "gateway.h"
#include "gw_read.h"
#include "sam_pbjson.h"
#include "samordna/v1/grants.pb-c.h"
#include "samordna/v1/notify.pb-c.h"
#include "samordna/v1/registry.pb-c.h"
#include "samordna/v1/status.pb-c.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The event types of the services' tables, for POST /v1/events: type → payload. */
typedef struct {
    const char *type;
    const ProtobufCMessageDescriptor *payload;
} s_event_t;

#define Q(method, request, reply, roles, handler)
#define L(method, request, reply, roles,                                                           \
          handler) /* a long query (runs off the loop): read like Q */
#define W(method, request, reply, roles, handler)
#define E(type, payload, roles, limit, apply, prepare) {type, payload},
static const s_event_t s_events[] = {
#include "../registry/registry.def"
#include "../status/status.def"
#include "../grants/grants.def"
#include "../notify/notify.def"
};
#undef Q
#undef L
#undef W
#undef E
#define S_NEVENTS (sizeof s_events / sizeof s_events[0])

static json_t *s_ref(const char *where, const char *name)
{
    char ref[256];
    snprintf(ref, sizeof ref, "#/components/%s/%s", where, name);
    return json_pack("{s:s}", "$ref", ref);
}

/* ---- schemas ------------------------------------------------------------------------------- */

static json_t *s_message(json_t *schemas, const ProtobufCMessageDescriptor *d);

/* The schema of one value of field f (its items, when repeated). */
static json_t *s_scalar(json_t *schemas, const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        return json_pack("{s:s}", "type", "string");
    case PROTOBUF_C_TYPE_BYTES:
        return json_pack("{s:s, s:s}", "type", "string", "contentEncoding", "base64");
    case PROTOBUF_C_TYPE_BOOL:
        return json_pack("{s:s}", "type", "boolean");
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_pack("{s:s, s:s}", "type", "integer", "format", "int32");
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_pack("{s:s, s:i, s:I}", "type", "integer", "minimum", 0, "maximum",
                         (json_int_t)UINT32_MAX);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return json_pack("{s:s, s:s, s:s}", "type", "string", "format", "int64", "pattern",
                         "^-?[0-9]+$");
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return json_pack("{s:s, s:s, s:s}", "type", "string", "description",
                         "an unsigned 64-bit whole number", "pattern", "^[0-9]+$");
    case PROTOBUF_C_TYPE_FLOAT:
        return json_pack("{s:s, s:s}", "type", "number", "format", "float");
    case PROTOBUF_C_TYPE_DOUBLE:
        return json_pack("{s:s, s:s}", "type", "number", "format", "double");
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *e = f->descriptor;
        if (!json_object_get(schemas, e->name)) {
            json_t *names = json_array();
            for (unsigned i = 0; i < e->n_values; i++)
                json_array_append_new(names, json_string(e->values[i].name));
            json_object_set_new(schemas, e->name,
                                json_pack("{s:s, s:o}", "type", "string", "enum", names));
        }
        return s_ref("schemas", e->name);
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        return s_message(schemas, f->descriptor);
    }
    return json_object();
}

/* The schema of field f: its value's, an array of them, or a map's object. */
static json_t *s_field(json_t *schemas, const ProtobufCFieldDescriptor *f)
{
    const ProtobufCFieldDescriptor *v = gw_map_value(f);
    if (v)
        return json_pack("{s:s, s:o}", "type", "object", "additionalProperties",
                         s_scalar(schemas, v));
    json_t *one = s_scalar(schemas, f);
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return json_pack("{s:s, s:o}", "type", "array", "items", one);
    return one;
}

/*  A reference to the schema of message d, which is added to schemas (with every message
    and enum it holds) the first time. The well-known types have their JSON forms inline. */
static json_t *s_message(json_t *schemas, const ProtobufCMessageDescriptor *d)
{
    if (strcmp(d->name, "google.protobuf.Timestamp") == 0)
        return json_pack("{s:s, s:s}", "type", "string", "format", "date-time");
    if (strcmp(d->name, "google.protobuf.Any") == 0)
        return json_pack("{s:s}", "description",
                         "google.protobuf.Any: not mapped to JSON (samordna carries payloads "
                         "as binary data)");
    if (!json_object_get(schemas, d->name)) {
        json_t *props = json_object();
        json_t *schema = json_pack("{s:s, s:s, s:o, s:b}", "type", "object", "title", d->short_name,
                                   "properties", props, "additionalProperties", 0);
        json_object_set_new(schemas, d->name, schema); /* before the fields: it may recur */
        for (unsigned i = 0; i < d->n_fields; i++) {
            char json[128];
            const ProtobufCFieldDescriptor *f = &d->fields[i];
            json_object_set_new(props, sam_pbjson_name(f, json, sizeof json), s_field(schemas, f));
        }
    }
    return s_ref("schemas", d->name);
}

/* ---- paths --------------------------------------------------------------------------------- */

/* "get_v1_grants_overview_recipient" from a method and path. */
static json_t *s_operation_id(const char *method, const char *path)
{
    char id[256];
    size_t at = (size_t)snprintf(id, sizeof id, "%s", method);
    for (const char *c = path; *c && at + 1 < sizeof id; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9'))
            id[at++] = *c;
        else if (*c != '{' && *c != '}')
            id[at++] = '_';
    }
    id[at] = '\0';
    return json_string(id);
}

/* The parameters of a read: the path segment and one query parameter per other field. */
static json_t *s_parameters(json_t *schemas, const gw_read_query_t *q, const gw_read_route_t *r)
{
    json_t *list = json_array();
    for (unsigned i = 0; q->request && i < q->request->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &q->request->fields[i];
        char json[128], about[256];
        const char *name = sam_pbjson_name(f, json, sizeof json);
        bool in_path = r && r->path_field && strcmp(r->path_field, f->name) == 0;
        if (in_path) {
            const char *open = strchr(r->pattern, '{');
            size_t n = (size_t)(strchr(open, '}') - open - 1);
            snprintf(json, sizeof json, "%.*s", (int)n, open + 1);
            name = json;
        } else if (r && r->alias && strcmp(r->alias_field, f->name) == 0) {
            name = r->alias;
        }
        snprintf(about, sizeof about, "the field %s of %s%s%s", f->name, q->request->name,
                 strcmp(name, f->name) && !in_path ? "; also as " : "",
                 strcmp(name, f->name) && !in_path ? f->name : "");
        json_t *p =
            json_pack("{s:s, s:s, s:b, s:s, s:o}", "name", name, "in", in_path ? "path" : "query",
                      "required", in_path, "description", about, "schema", s_field(schemas, f));
        if (gw_read_is_page_token(f))
            json_object_set_new(p, "description",
                                json_string("the nextPageToken of the previous page (the Link "
                                            "header rel=\"next\" carries it)"));
        json_array_append_new(list, p);
    }
    return list;
}

/* The GET operation of query q at path (route r, or NULL for the generic form). */
static json_t *s_get(json_t *schemas, const gw_read_query_t *q, const gw_read_route_t *r,
                     const char *path)
{
    char about[512];
    snprintf(about, sizeof about, "%s — %s → %s", q->method,
             q->request ? q->request->name : "no parameters", q->reply->name);
    json_t *ok = json_pack("{s:s, s:{s:{s:o}}}", "description", about, "content",
                           "application/json", "schema", s_message(schemas, q->reply));
    if (q->request && q->request->n_fields &&
        protobuf_c_message_descriptor_get_field_by_name(q->request, "page_token"))
        json_object_set_new(ok, "headers", json_pack("{s:o}", "Link", s_ref("headers", "Link")));
    return json_pack("{s:o, s:s, s:s, s:[s], s:o, s:{s:o, s:o}}", "operationId",
                     s_operation_id("get", path), "summary", r ? r->summary : q->method,
                     "description", about, "tags", q->service, "parameters",
                     s_parameters(schemas, q, r), "responses", "200", ok, "default",
                     s_ref("responses", "Problem"));
}

/* POST /v1/events: the three modes of the CloudEvents HTTP binding. */
static json_t *s_post_events(json_t *schemas)
{
    json_t *types = json_array(), *payloads = json_array();
    for (size_t i = 0; i < S_NEVENTS; i++) {
        json_array_append_new(types, json_string(s_events[i].type));
        json_t *ref = s_message(schemas, s_events[i].payload);
        bool seen = false;
        for (size_t j = 0; j < json_array_size(payloads); j++)
            seen = seen || json_equal(json_array_get(payloads, j), ref);
        if (seen)
            json_decref(ref);
        else
            json_array_append_new(payloads, ref);
    }
    json_object_set_new(schemas, "EventData",
                        json_pack("{s:s, s:o}", "description",
                                  "the payload message of the event's type (the type's row in "
                                  "its service's table), in the proto3 JSON mapping",
                                  "anyOf", payloads));
    json_object_set_new(
        schemas, "CloudEvent",
        json_pack("{s:s, s:s, s:[s,s,s,s], s:{s:{s:s}, s:{s:s}, s:{s:s, s:[s]}, s:{s:s, s:o}, "
                  "s:{s:s}, s:{s:s, s:s}, s:{s:s}, s:o, s:{s:s, s:s}}}",
                  "type", "object", "description",
                  "a CloudEvent in the structured JSON format; data is the JSON of the type's "
                  "payload, data_base64 its packed protobuf",
                  "required", "id", "source", "specversion", "type", "properties", "id", "type",
                  "string", "source", "type", "string", "specversion", "type", "string", "enum",
                  "1.0", "type", "type", "string", "enum", types, "subject", "type", "string",
                  "time", "type", "string", "format", "date-time", "datacontenttype", "type",
                  "string", "data", s_ref("schemas", "EventData"), "data_base64", "type", "string",
                  "contentEncoding", "base64"));
    json_t *params = json_array();
    const char *ce[] = {"ce-id", "ce-source", "ce-specversion", "ce-type", "ce-subject", "ce-time"};
    for (size_t i = 0; i < sizeof ce / sizeof ce[0]; i++)
        json_array_append_new(
            params, json_pack("{s:s, s:s, s:b, s:s, s:{s:s}}", "name", ce[i], "in", "header",
                              "required", 0, "description",
                              "binary mode: the CloudEvents attribute (required in that mode)",
                              "schema", "type", "string"));
    json_object_set_new(
        schemas, "PublishResult",
        json_pack("{s:s, s:s, s:{s:{s:s}, s:{s:s}, s:{s:s, s:i}, s:{s:s}}}", "type", "object",
                  "description",
                  "one stored event: its sequence number in the owning service's outbox (the "
                  "original one for a retried duplicate)",
                  "properties", "id", "type", "string", "status", "type", "integer", "seq", "type",
                  "integer", "minimum", 1, "duplicate", "type", "boolean"));
    json_t *batch =
        json_pack("{s:s, s:s, s:{s:[o, o]}}", "type", "array", "description",
                  "one result per event of the batch, in order: a PublishResult or a Problem",
                  "items", "anyOf", s_ref("schemas", "PublishResult"), s_ref("schemas", "Problem"));
    return json_pack(
        "{s:s, s:s, s:[s], s:o, s:{s:b, s:{s:{s:o}, s:{s:o}, s:{s:o}, s:{s:{s:s, s:s}}}}, "
        "s:{s:{s:s, s:{s:{s:o}}}, s:{s:s, s:{s:{s:{s:[o, o]}}}}, s:o, s:o}}",
        "operationId", "post_v1_events", "summary", "publish CloudEvents", "tags", "events",
        "parameters", params, "requestBody", "required", 1, "content",
        "application/cloudevents+json", "schema", s_ref("schemas", "CloudEvent"),
        "application/cloudevents-batch+json", "schema",
        json_pack("{s:s, s:o}", "type", "array", "items", s_ref("schemas", "CloudEvent")),
        "application/json", "schema", s_ref("schemas", "EventData"), "application/protobuf",
        "schema", "type", "string", "contentMediaType", "application/protobuf", "responses", "201",
        "description", "stored (binary or structured mode)", "content", "application/json",
        "schema", s_ref("schemas", "PublishResult"), "200", "description",
        "a retried duplicate's original sequence, or a batch's per-event results", "content",
        "application/json", "schema", "anyOf", s_ref("schemas", "PublishResult"), batch, "409",
        s_ref("responses", "Problem"), "default", s_ref("responses", "Problem"));
}

static json_t *s_build(void)
{
    json_t *schemas = json_object(), *paths = json_object();
    json_object_set_new(
        schemas, "Problem",
        json_pack("{s:s, s:s, s:{s:{s:s, s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s, s:s}, "
                  "s:{s:s, s:{s:s, s:{s:{s:s}, s:{s:s}}}}}}",
                  "type", "object", "description", "RFC 9457 problem details", "properties", "type",
                  "type", "string", "format", "uri", "title", "type", "string", "status", "type",
                  "integer", "detail", "type", "string", "instance", "type", "string", "format",
                  "uri-reference", "errors", "type", "array", "items", "type", "object",
                  "properties", "pointer", "type", "string", "reason", "type", "string"));
    for (size_t i = 0; i < gw_read_n_routes; i++) {
        const gw_read_route_t *r = &gw_read_routes[i];
        const gw_read_query_t *q = gw_read_query_find(NULL, r->method);
        if (q)
            json_object_set_new(paths, r->pattern,
                                json_pack("{s:o}", "get", s_get(schemas, q, r, r->pattern)));
    }
    for (size_t i = 0; i < gw_read_n_queries; i++) {
        const gw_read_query_t *q = &gw_read_queries[i];
        char path[160];
        snprintf(path, sizeof path, "/v1/%s/%s", q->service, q->method);
        json_object_set_new(paths, path, json_pack("{s:o}", "get", s_get(schemas, q, NULL, path)));
    }
    json_object_set_new(paths, "/v1/events", json_pack("{s:o}", "post", s_post_events(schemas)));
    /* the two routes that need no token (gw_auth.c): an empty security list each */
    json_object_set_new(paths, "/v1/openapi.json",
                        json_pack("{s:{s:s, s:s, s:[], s:{s:{s:s, s:{s:{s:{s:s}}}}}}}", "get",
                                  "operationId", "get_v1_openapi", "summary", "this document",
                                  "security", "responses", "200", "description",
                                  "the OpenAPI 3.1 document", "content", "application/json",
                                  "schema", "type", "object"));
    json_object_set_new(paths, "/v1/healthz",
                        json_pack("{s:{s:s, s:s, s:[], s:{s:{s:s}, s:o}}}", "get", "operationId",
                                  "get_v1_healthz", "summary",
                                  "200 while the gateway serves and knows every service's table",
                                  "security", "responses", "200", "description", "healthy", "503",
                                  s_ref("responses", "Problem")));
    json_t *bearer = json_pack(
        "{s:s, s:s, s:s, s:s}", "type", "http", "scheme", "bearer", "bearerFormat", "JWT",
        "description",
        "A Maskinporten-style OAuth2 access token: a JWT signed RS256 or ES256 by the issuer "
        "the gateway trusts (--jwks, --issuer), for its audience (--audience), within exp and "
        "nbf. Its consumer organisation maps to an agency and its scopes to a role (--auth-map): "
        "a read needs samordna:read, samordna:write or samordna:admin, POST /v1/events "
        "samordna:write or samordna:admin. A gateway started without the token options, or "
        "with reads \"open\" for GET, does not ask for one (docs/gateway.md, \"Tokens\").");
    return json_pack(
        "{s:s, s:{s:s, s:s, s:s}, s:o, s:[{s:[]}], s:{s:o, s:{s:o}, s:{s:{s:s, s:{s:{s:o}}}}, "
        "s:{s:{s:s, s:{s:s}}}}}",
        "openapi", "3.1.0", "info", "title", "samordna gateway", "version", SAMORDNA_VERSION,
        "description",
        "Every query of every samordna service as JSON over GET, and publishing CloudEvents. "
        "Generated from the services' tables; docs/gateway.md explains it.",
        "paths", paths, "security", "bearer", "components", "schemas", schemas, "securitySchemes",
        "bearer", bearer, "responses", "Problem", "description",
        "a refusal or a failure, as RFC 9457 problem details", "content",
        "application/problem+json", "schema", s_ref("schemas", "Problem"), "headers", "Link",
        "description", "RFC 8288: <the next page>; rel=\"next\", on a page that has one", "schema",
        "type", "string");
}

static json_t *s_document;
static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static void s_make(void)
{
    s_document = s_build();
}

json_t *gw_openapi_document(void)
{
    pthread_once(&s_once, s_make);
    return s_document ? json_incref(s_document) : NULL;
}

/* GET /v1/openapi.json */
void gw_openapi_get(gw_request_t *req)
{
    json_t *doc = gw_openapi_document();
    if (!doc) {
        gw_problem(req, 500, "internal", "Internal error", NULL,
                   "the OpenAPI document could not be made");
        return;
    }
    gw_respond_json(req, 200, doc);
}
