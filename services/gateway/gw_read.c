/*  gw_read.c — GET /v1/…: every query of every service, as JSON.

    The queries are the services' tables (gw_read.h): each Q row of the four .def files,
    included here with a Q macro of our own that keeps the method and its two messages and
    drops the rest, plus the built-ins that read (ping, events.read, service.describe). The
    built-ins that are not reads stay out: events.publish is POST /v1/events, and
    store.backup writes a copy of the store on the service's host — an operator's act
    (samctl backup), not something a GET may start. The W rows (notify.inbox.ack,
    notify.dead.replay) change notify's state and are left out for the same reason.

    One request, in the order of its checks:
      1. the route: a short route of gw_read_routes[] whose pattern matches the path, else
         /v1/<service>/<method> naming a query of that service's table; else 404;
      2. the request message: each query parameter fills the field of that name (its JSON
         name "asOf" or its .proto name "as_of"; the short route's alias, "open"), converted
         by the field's type and checked here, so a refusal names the parameter and what
         would be right; a path segment fills the field its route names. Then the JSON
         object so made is decoded by sam_pbjson, the one mapping of the gateway, and packed;
      3. one call to the service through the broker (gw_call); its status becomes the HTTP
         status (gw_http_status), a refusal an RFC 9457 problem carrying the service's words;
      4. the reply message as proto3 JSON, every field written (defaults too, so a reader
         finds each field of the schema in each answer), and, when the reply has a
         next_page_token and the request a page_token, a Link header rel="next": this URL
         with pageToken set to that token.
*/
#include "gw_read.h"

#include "gateway.h"
#include "sam_check.h"
#include "sam_log.h"
#include "sam_pbjson.h"
#include "sam_status.h"
#include "samordna/v1/envelope.pb-c.h"
#include "samordna/v1/events.pb-c.h"
#include "samordna/v1/grants.pb-c.h"
#include "samordna/v1/notify.pb-c.h"
#include "samordna/v1/registry.pb-c.h"
#include "samordna/v1/service.pb-c.h"
#include "samordna/v1/status.pb-c.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the queries ------------------------------------------------------------------------- */

/* The built-ins every service answers that read (common/sam_builtin.def). */
#define GW_READ_BUILTINS(svc)                                                                      \
    {svc, "ping", NULL, &samordna__v1__ping_reply__descriptor},                                    \
        {svc, "events.read", &samordna__v1__read_request__descriptor,                              \
         &samordna__v1__read_reply__descriptor},                                                   \
    {                                                                                              \
        svc, "service.describe", NULL, &samordna__v1__service_description__descriptor              \
    }

#define Q(method, request, reply, roles, handler) {GW_SERVICE, method, request, reply},
#define L(method, request, reply, roles, handler)                                                  \
    {GW_SERVICE, method, request, reply}, /* a long query (runs off the loop): read like Q */
#define W(method, request, reply, roles, handler)
#define E(type, payload, roles, limit, apply, prepare)
const gw_read_query_t gw_read_queries[] = {
#define GW_SERVICE "registry"
#include "../registry/registry.def"
    GW_READ_BUILTINS(GW_SERVICE),
#undef GW_SERVICE
#define GW_SERVICE "status"
#include "../status/status.def"
    GW_READ_BUILTINS(GW_SERVICE),
#undef GW_SERVICE
#define GW_SERVICE "grants"
#include "../grants/grants.def"
    GW_READ_BUILTINS(GW_SERVICE),
#undef GW_SERVICE
#define GW_SERVICE "notify"
#include "../notify/notify.def"
    GW_READ_BUILTINS(GW_SERVICE),
#undef GW_SERVICE
};
#undef Q
#undef L
#undef W
#undef E
const size_t gw_read_n_queries = sizeof gw_read_queries / sizeof gw_read_queries[0];

/*  The short routes: one line each, pattern → query, the field its {segment} fills, a
    parameter name of its own. Every query is also /v1/<service>/<method>; these are the
    names people type. */
const gw_read_route_t gw_read_routes[] = {
    {"/v1/agencies", "registry.agencies.list", NULL, NULL, NULL,
     "agencies in id order; filters kind, role"},
    {"/v1/agencies/{id}", "registry.agencies.get", "id", NULL, NULL, "one agency"},
    {"/v1/municipalities", "registry.municipalities.list", NULL, NULL, NULL,
     "municipalities in id order, with their numbers and mergers"},
    {"/v1/municipalities/{id}", "registry.municipalities.get", "id", NULL, NULL,
     "one municipality by id or any id it had; a merged one answers its successor"},
    {"/v1/programmes", "registry.programmes.list", NULL, NULL, NULL, "the programmes"},
    {"/v1/programmes/{id}", "registry.programmes.get", "id", NULL, NULL, "one programme"},
    {"/v1/invitations", "registry.invitations.list", NULL, NULL, NULL,
     "invitations and answers; filters programme, municipality, answer"},
    {"/v1/pilots", "registry.pilots.list", NULL, NULL, NULL,
     "the pilots; filters agency, municipality, programme"},
    {"/v1/pilots/{id}", "registry.pilots.get", "id", NULL, NULL, "one pilot"},
    {"/v1/pilots/{pilot}/history", "status.milestones.history", "pilot", NULL, NULL,
     "every change of a pilot's milestones, in date order"},
    {"/v1/people", "registry.people.list", NULL, NULL, NULL, "people; filter agency"},
    {"/v1/people/{id}", "registry.people.get", "id", NULL, NULL, "one person, with the roles held"},
    {"/v1/reports", "registry.reports.list", NULL, NULL, NULL, "reports; filter agency"},
    {"/v1/reports/{id}", "registry.reports.get", "id", NULL, NULL, "one report"},
    {"/v1/kinds", "status.kinds.list", NULL, NULL, NULL,
     "the milestone kinds in their canonical order"},
    {"/v1/kinds/{id}", "status.kinds.get", "id", NULL, NULL, "one milestone kind"},
    {"/v1/board", "status.board", NULL, NULL, NULL,
     "one row per pilot: milestones, open barriers, the last meeting; asOf a day"},
    {"/v1/meetings", "status.meetings.list", NULL, NULL, NULL,
     "meetings in date order; filters pilot, municipality, from, to, kind"},
    {"/v1/meetings/{id}", "status.meetings.get", "id", NULL, NULL, "one meeting"},
    {"/v1/steps", "status.steps.list", NULL, NULL, NULL, "work-plan steps; filters pilot, state"},
    {"/v1/barriers", "status.barriers.list", NULL, "open", "open_only",
     "barriers in id order; filters state, pilot, municipality, raisedBy, concerns, open"},
    {"/v1/barriers/{id}", "status.barriers.get", "id", NULL, NULL,
     "one barrier with every step it took"},
    {"/v1/report", "status.report", NULL, NULL, NULL, "every change dated within from and to"},
    {"/v1/grants/schemes", "grants.schemes.list", NULL, NULL, NULL,
     "grant schemes; filters owner, year"},
    {"/v1/grants/schemes/{id}", "grants.schemes.get", "id", NULL, NULL,
     "one scheme with its committed and paid totals"},
    {"/v1/grants/awards", "grants.awards.list", NULL, NULL, NULL,
     "awards; filters recipient, year, scheme, funder"},
    {"/v1/grants/awards/{id}", "grants.awards.get", "id", NULL, NULL,
     "one award with its payments"},
    {"/v1/grants/instruments/{municipality}", "grants.instruments.list", "municipality", NULL, NULL,
     "the instruments and needs of one municipality"},
    {"/v1/grants/overview", "grants.overview", NULL, NULL, NULL,
     "every recipient's totals for a year"},
    {"/v1/grants/overview/{recipient}", "grants.overview", "recipient", NULL, NULL,
     "one recipient's grants grouped by agency, scheme or pilot"},
    {"/v1/grants/deadlines", "grants.deadlines", NULL, NULL, NULL,
     "awards whose report is due before a day"},
    {"/v1/grants/ledger/verify", "grants.ledger.verify", NULL, NULL, NULL,
     "the books recomputed from the journal and compared"},
    {"/v1/grants/ledger/accounts", "grants.ledger.accounts", NULL, NULL, NULL,
     "account balances under a prefix"},
    {"/v1/notify/subscriptions", "notify.subscriptions.list", NULL, NULL, NULL,
     "subscriptions in id order; filters agency, channel"},
    {"/v1/notify/subscriptions/{id}", "notify.subscriptions.get", "id", NULL, NULL,
     "one subscription with its state and counts"},
    {"/v1/notify/inbox/{subscription}", "notify.inbox.read", "subscription", NULL, NULL,
     "an inbox subscription's oldest deliveries (not acknowledged by reading)"},
    {"/v1/notify/log/{subscription}", "notify.log", "subscription", NULL, NULL,
     "the delivery attempts of one subscription, oldest first"},
    {"/v1/notify/dead", "notify.dead.list", NULL, NULL, NULL, "dead letters; filter subscription"},
    {"/v1/notify/cursors", "notify.cursors", NULL, NULL, NULL,
     "how far notify has followed each service's outbox"},
    {"/v1/notify/briefing", "notify.briefing.preview", NULL, NULL, NULL,
     "the next steering-group briefing, composed now"},
};
const size_t gw_read_n_routes = sizeof gw_read_routes / sizeof gw_read_routes[0];

const gw_read_query_t *gw_read_query_find(const char *service, const char *method)
{
    for (size_t i = 0; i < gw_read_n_queries; i++) {
        const gw_read_query_t *q = &gw_read_queries[i];
        if ((!service || strcmp(q->service, service) == 0) && strcmp(q->method, method) == 0)
            return q;
    }
    return NULL;
}

bool gw_read_is_page_token(const ProtobufCFieldDescriptor *f)
{
    return strcmp(f->name, "page_token") == 0 && f->label != PROTOBUF_C_LABEL_REPEATED;
}

const ProtobufCFieldDescriptor *gw_map_value(const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE) return NULL;
    const ProtobufCMessageDescriptor *e = f->descriptor;
    size_t n = strlen(e->name);
    if (n < 5 || strcmp(e->name + n - 5, "Entry") != 0 || e->n_fields != 2) return NULL;
    const ProtobufCFieldDescriptor *k = protobuf_c_message_descriptor_get_field(e, 1);
    const ProtobufCFieldDescriptor *v = protobuf_c_message_descriptor_get_field(e, 2);
    if (!k || !v || strcmp(k->name, "key") != 0 || strcmp(v->name, "value") != 0) return NULL;
    return v;
}

/* ---- the route --------------------------------------------------------------------------- */

/*  Matches path against a pattern of literal segments and at most one {name}, which takes
    one whole, non-empty segment (copied into seg). */
static bool s_match(const char *pattern, const char *path, char *seg, size_t cap)
{
    const char *open = strchr(pattern, '{');
    if (!open) return strcmp(pattern, path) == 0;
    size_t head = (size_t)(open - pattern);
    if (strncmp(pattern, path, head) != 0) return false;
    const char *tail = strchr(open, '}') + 1;
    const char *value = path + head;
    size_t len = strcspn(value, "/");
    if (len == 0 || len >= cap || strcmp(value + len, tail) != 0) return false;
    memcpy(seg, value, len);
    seg[len] = '\0';
    return true;
}

/*  The query of the path: a short route's (with *route and seg set), or the generic
    /v1/<service>/<method>'s (*route NULL). NULL when none. */
static const gw_read_query_t *s_route(const char *path, const gw_read_route_t **route, char *seg,
                                      size_t cap)
{
    for (size_t i = 0; i < gw_read_n_routes; i++) {
        if (s_match(gw_read_routes[i].pattern, path, seg, cap)) {
            *route = &gw_read_routes[i];
            return gw_read_query_find(NULL, gw_read_routes[i].method);
        }
    }
    *route = NULL;
    if (strncmp(path, "/v1/", 4) != 0) return NULL;
    const char *service = path + 4, *slash = strchr(service, '/');
    char name[64];
    if (!slash || (size_t)(slash - service) >= sizeof name) return NULL;
    memcpy(name, service, (size_t)(slash - service));
    name[slash - service] = '\0';
    return gw_read_query_find(name, slash + 1);
}

/* ---- the request message ------------------------------------------------------------------ */

/* The field named `name` (JSON or .proto name) of d, or NULL. */
static const ProtobufCFieldDescriptor *s_field(const ProtobufCMessageDescriptor *d,
                                               const char *name)
{
    if (!d) return NULL;
    for (unsigned i = 0; i < d->n_fields; i++) {
        char json[128];
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (strcmp(f->name, name) == 0 || strcmp(sam_pbjson_name(f, json, sizeof json), name) == 0)
            return f;
    }
    return NULL;
}

/* The parameters a route takes, for a refusal: "asOf, pilot" or "none". */
static void s_param_names(const gw_read_query_t *q, const gw_read_route_t *route, char *out,
                          size_t cap)
{
    size_t at = 0;
    out[0] = '\0';
    for (unsigned i = 0; q->request && i < q->request->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &q->request->fields[i];
        char json[128];
        if (route && route->path_field && strcmp(route->path_field, f->name) == 0) continue;
        const char *name = route && route->alias && strcmp(route->alias_field, f->name) == 0
                               ? route->alias
                               : sam_pbjson_name(f, json, sizeof json);
        int n = snprintf(out + at, cap - at, "%s%s", at ? ", " : "", name);
        if (n < 0 || (size_t)n >= cap - at) break;
        at += (size_t)n;
    }
    if (!at) snprintf(out, cap, "none");
}

/* A whole number in [min, max] written plainly (an optional '-', digits, nothing else). */
static bool s_whole(const char *v, long long min, unsigned long long max, bool *neg,
                    unsigned long long *abs)
{
    *neg = v[0] == '-';
    const char *d = v + *neg;
    if (!*d || strspn(d, "0123456789") != strlen(d)) return false;
    errno = 0;
    *abs = strtoull(d, NULL, 10);
    if (errno == ERANGE) return false;
    if (*neg) return min < 0 && *abs <= (unsigned long long)(-(min + 1)) + 1;
    return *abs <= max;
}

/*  value (a parameter's text) as the JSON value of field f, or NULL with why set: what
    would be right, in the words of the type. */
static json_t *s_value(const ProtobufCFieldDescriptor *f, const char *value, char *why, size_t cap)
{
    char shown[96];
    sam_check_escape(value, 64, shown, sizeof shown);
    const char *bad = sam_check_text_why(value, strlen(value));
    if (bad) {
        snprintf(why, cap, "\"%s\" is not text: %s", shown, bad);
        return NULL;
    }
    bool neg;
    unsigned long long n;
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
        return json_string(value);
    case PROTOBUF_C_TYPE_BOOL:
        if (strcmp(value, "true") == 0) return json_true();
        if (strcmp(value, "false") == 0) return json_false();
        snprintf(why, cap, "\"%s\" is not true or false", shown);
        return NULL;
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if (s_whole(value, INT32_MIN, INT32_MAX, &neg, &n))
            return json_integer(neg ? -(json_int_t)n : (json_int_t)n);
        snprintf(why, cap, "\"%s\" is not a whole number from -2147483648 to 2147483647", shown);
        return NULL;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (s_whole(value, 0, UINT32_MAX, &neg, &n)) return json_integer((json_int_t)n);
        snprintf(why, cap, "\"%s\" is not a whole number from 0 to 4294967295", shown);
        return NULL;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (s_whole(value, INT64_MIN, INT64_MAX, &neg, &n)) return json_string(value);
        snprintf(why, cap, "\"%s\" is not a whole number of 64 bits", shown);
        return NULL;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (s_whole(value, 0, UINT64_MAX, &neg, &n)) return json_string(value);
        snprintf(why, cap, "\"%s\" is not a whole number from 0 to 18446744073709551615", shown);
        return NULL;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE: {
        char *end;
        errno = 0;
        double d = strtod(value, &end);
        if (*value && !*end && errno == 0 && d == d) return json_real(d);
        snprintf(why, cap, "\"%s\" is not a number", shown);
        return NULL;
    }
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *e = f->descriptor;
        if (protobuf_c_enum_descriptor_get_value_by_name(e, value)) return json_string(value);
        size_t at = (size_t)snprintf(why, cap, "\"%s\" is not one of", shown);
        for (unsigned i = 0; i < e->n_values && at < cap; i++)
            at += (size_t)snprintf(why + at, cap - at, "%s %s", i ? "," : "", e->values[i].name);
        return NULL;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        snprintf(why, cap, "is a message (%s), which no query parameter can hold",
                 ((const ProtobufCMessageDescriptor *)f->descriptor)->name);
        return NULL;
    }
    snprintf(why, cap, "has a type the gateway does not read");
    return NULL;
}

/*  Sets field f in obj from one parameter (a repeated field gathers every one given). -1
    with *errors grown when the value is wrong or a single field is given twice. */
static int s_set(json_t *obj, const ProtobufCFieldDescriptor *f, const char *param,
                 const char *value, json_t **errors)
{
    char json[128], why[512];
    sam_pbjson_name(f, json, sizeof json);
    json_t *v = s_value(f, value, why, sizeof why);
    if (!v) {
        gw_error_add(errors, param, why);
        return -1;
    }
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        json_t *list = json_object_get(obj, json);
        if (!list) json_object_set_new(obj, json, list = json_array());
        json_array_append_new(list, v);
        return 0;
    }
    if (json_object_get(obj, json)) {
        json_decref(v);
        gw_error_add(errors, param, "given twice (or in the path too); give it once");
        return -1;
    }
    json_object_set_new(obj, json, v);
    return 0;
}

/*  The request of q as a JSON object from the route's segment and the query parameters,
    or NULL with *errors holding one entry per parameter that is wrong. */
static json_t *s_request_json(gw_request_t *req, const gw_read_query_t *q,
                              const gw_read_route_t *route, const char *seg, json_t **errors)
{
    json_t *obj = json_object();
    if (!obj) return NULL;
    if (route && route->path_field)
        s_set(obj, s_field(q->request, route->path_field), route->path_field, seg, errors);
    size_t n;
    const gw_pair_t *p = gw_queries(req, &n);
    for (size_t i = 0; i < n; i++) {
        const char *field = p[i].name;
        if (route && route->alias && strcmp(p[i].name, route->alias) == 0)
            field = route->alias_field;
        const ProtobufCFieldDescriptor *f = s_field(q->request, field);
        if (f && route && route->path_field && strcmp(f->name, route->path_field) == 0) {
            gw_error_add(errors, p[i].name, "is the path's segment already; give it once");
            continue;
        }
        if (!f) {
            char names[512], why[700];
            s_param_names(q, route, names, sizeof names);
            snprintf(why, sizeof why, "unknown parameter; %s takes: %s", q->method, names);
            char shown[96];
            gw_error_add(errors, sam_check_escape(p[i].name, 64, shown, sizeof shown), why);
            continue;
        }
        s_set(obj, f, p[i].name, p[i].value ? p[i].value : "", errors);
    }
    if (*errors) json_decref(obj), obj = NULL;
    return obj;
}

/* ---- the next link ------------------------------------------------------------------------ */

/* Writes s at out percent-encoded (all but RFC 3986's unreserved characters and, when
   keep_slash, '/'); at most 3 bytes per byte of s. Returns the end. */
static char *s_encode(char *out, const char *s, bool keep_slash)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-._~", c) || (keep_slash && c == '/'))
            *out++ = (char)c;
        else
            out += sprintf(out, "%%%02X", c);
    }
    *out = '\0';
    return out;
}

/*  The Link header value of the next page: this path with its parameters, the page token's
    replaced by `token`. malloc'd, or NULL when out of memory. */
static char *s_next_link(gw_request_t *req, const gw_read_query_t *q, const char *token)
{
    size_t n, need = strlen(req->path) + strlen(token) + 16;
    const gw_pair_t *p = gw_queries(req, &n);
    for (size_t i = 0; i < n; i++)
        need += strlen(p[i].name) + (p[i].value ? strlen(p[i].value) : 0) + 2;
    char *link = malloc(3 * need + 32), *at = link;
    if (!link) return NULL;
    *at++ = '<';
    at = s_encode(at, req->path, true);
    char sep = '?';
    for (size_t i = 0; i < n; i++) {
        const ProtobufCFieldDescriptor *f = s_field(q->request, p[i].name);
        if (f && gw_read_is_page_token(f)) continue;
        *at++ = sep, sep = '&';
        at = s_encode(at, p[i].name, false);
        *at++ = '=';
        at = s_encode(at, p[i].value ? p[i].value : "", false);
    }
    *at++ = sep;
    at = s_encode(at, "pageToken", false);
    *at++ = '=';
    at = s_encode(at, token, false);
    strcpy(at, ">; rel=\"next\"");
    return link;
}

/* The reply's next_page_token as text, "" when there is none (the last page). */
static void s_next_token(const ProtobufCMessage *m, char *out, size_t cap)
{
    out[0] = '\0';
    const ProtobufCFieldDescriptor *f = s_field(m->descriptor, "next_page_token");
    if (!f || f->label == PROTOBUF_C_LABEL_REPEATED) return;
    const char *at = (const char *)m + f->offset;
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        const char *s = *(char *const *)at;
        if (s) snprintf(out, cap, "%s", s);
    } else if (f->type == PROTOBUF_C_TYPE_UINT64) {
        uint64_t v = *(const uint64_t *)at;
        if (v) snprintf(out, cap, "%" PRIu64, v);
    }
}

/* ---- the call ------------------------------------------------------------------------------ */

static void s_read_done(gw_request_t *req, void *arg, const sam_result_t *res)
{
    const gw_read_query_t *q = arg;
    if (res->code != SAM_OK) {
        unsigned status = gw_http_status(res->code);
        char detail[600], title[64];
        sam_check_escape(res->message[0] ? res->message : sam_status_name(res->code), SIZE_MAX,
                         detail, sizeof detail);
        snprintf(title, sizeof title, "%s", sam_status_name(res->code));
        if (title[0] >= 'a' && title[0] <= 'z') title[0] = (char)(title[0] - 'a' + 'A');
        /* a service's 400 on a query is about the fields the parameters filled */
        const char *type = res->code == SAM_BAD_REQUEST       ? "invalid-parameter"
                           : res->code == SAM_NOT_IMPLEMENTED ? "invalid-request"
                                                              : gw_problem_type(status);
        gw_problem(req, status, type, title, NULL, "%s: %s", q->method, detail);
        return;
    }
    ProtobufCMessage *m = protobuf_c_message_unpack(q->reply, NULL, res->body_len,
                                                    res->body ? res->body : (const uint8_t *)"");
    if (!m) {
        gw_problem(req, 502, "internal", "Bad reply", NULL,
                   "%s answered %s with a body that is not a %s", q->service, q->method,
                   q->reply->name);
        return;
    }
    json_t *doc = sam_pbjson_encode(m, SAM_PBJSON_DEFAULTS);
    char token[512];
    s_next_token(m, token, sizeof token);
    protobuf_c_message_free_unpacked(m, NULL);
    if (!doc) {
        gw_problem(req, 500, "internal", "Internal error", NULL,
                   "the %s reply of %s cannot be written as JSON", q->reply->name, q->method);
        return;
    }
    if (token[0] && q->request && s_field(q->request, "page_token")) {
        char *link = s_next_link(req, q, token);
        if (link) gw_add_header(req, "Link", link);
        free(link);
    }
    gw_respond_json(req, 200, doc);
}

/* GET /v1/… (every path gw_read_routes[] or a service table has). */
void gw_read_get(gw_request_t *req)
{
    const gw_read_route_t *route;
    char seg[256], shown[300];
    const gw_read_query_t *q = s_route(req->path, &route, seg, sizeof seg);
    if (!q) {
        gw_problem(req, 404, "not-found", "Not found", NULL,
                   "no route GET %s: GET /v1/openapi.json lists every one, and every query "
                   "is /v1/<service>/<method>",
                   sam_check_escape(req->path, 200, shown, sizeof shown));
        return;
    }
    json_t *errors = NULL;
    json_t *obj = s_request_json(req, q, route, seg, &errors);
    if (!obj && !errors) {
        gw_problem(req, 500, "internal", "Internal error", NULL, "out of memory");
        return;
    }
    if (!obj) {
        json_t *first = json_array_get(errors, 0);
        size_t more = json_array_size(errors) - 1;
        char rest[64] = "";
        if (more) snprintf(rest, sizeof rest, " (and %zu more in errors)", more);
        gw_problem(req, 400, "invalid-parameter", "Invalid parameter", errors, "%s: %s: %s%s",
                   q->method, json_string_value(json_object_get(first, "pointer")),
                   json_string_value(json_object_get(first, "reason")), rest);
        return;
    }
    uint8_t *body = NULL;
    size_t len = 0;
    if (q->request) {
        sam_pbjson_error_t err;
        ProtobufCMessage *m = sam_pbjson_decode(q->request, obj, 0, &err);
        if (!m) {
            json_decref(obj);
            gw_error_add(&errors, err.path, err.reason);
            gw_problem(req, 400, "invalid-parameter", "Invalid parameter", errors, "%s: %s: %s",
                       q->method, err.path, err.reason);
            return;
        }
        len = protobuf_c_message_get_packed_size(m);
        body = malloc(len ? len : 1);
        if (body) protobuf_c_message_pack(m, body);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    json_decref(obj);
    if ((q->request && !body) ||
        gw_call(req, q->service, q->method, body, len, s_read_done, (void *)q) != 0) {
        free(body);
        gw_problem(req, 500, "internal", "Internal error", NULL, "out of memory");
        return;
    }
    free(body);
}
