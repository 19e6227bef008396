/*  sam_service_table.c — the table, and the one path every request is checked through.

    A service is its table (sam_service.h, "The table"): the service's rows plus the
    built-ins of sam_builtin.def, sorted by name for lookup, methods and event types apart.
    Everything a row decides is done here before any handler runs (rt_admit, the habit of
    Redis's processCommand: row 501, role 403, size 413, decoding and the text rule 400), and
    what a handler returns becomes its answer here too (rt_outcome, the habit of the tail of
    Mosquitto's handle__packet). The built-ins that only read the table or the outbox head,
    ping and service.describe, live here as well.
*/
#include "sam_service_int.h"

#include "sam_check.h"

#include "samordna/v1/service.pb-c.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const Samordna__V1__Caller s_anonymous = {
    PROTOBUF_C_MESSAGE_INIT(&samordna__v1__caller__descriptor), "", "", "", 0, ""};
static const Samordna__V1__Caller s_insecure = {
    PROTOBUF_C_MESSAGE_INIT(&samordna__v1__caller__descriptor), "", "admin", "", 1, ""};

static const struct {
    unsigned bit;
    const char *name;
} s_role_names[] = {
    {SAM_ROLE_ADMIN, "admin"},     {SAM_ROLE_PUBLISHER, "publisher"}, {SAM_ROLE_READER, "reader"},
    {SAM_ROLE_SERVICE, "service"}, {SAM_ROLE_ANYONE, "anyone"},
};

const char *sam_role_name(unsigned bit)
{
    for (size_t i = 0; i < sizeof s_role_names / sizeof s_role_names[0]; i++)
        if (s_role_names[i].bit == bit) return s_role_names[i].name;
    return NULL;
}

unsigned sam_role_bit(const char *role)
{
    if (!role) return 0;
    if (strcmp(role, "admin") == 0) return SAM_ROLE_ADMIN;
    if (strcmp(role, "publisher") == 0) return SAM_ROLE_PUBLISHER;
    if (strcmp(role, "reader") == 0) return SAM_ROLE_READER;
    if (strcmp(role, "service") == 0) return SAM_ROLE_SERVICE;
    return 0;
}

int sam_reply_error(sam_reply_t *reply, uint32_t code, const char *fmt, ...)
{
    reply->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reply->message, sizeof reply->message, fmt, ap);
    va_end(ap);
    /* a refusal is text a strict client must decode, whatever a handler quoted into it */
    sam_check_sanitize(reply->message);
    free(reply->body);
    reply->body = NULL;
    reply->body_len = 0;
    return -1;
}

int sam_reply_message(sam_reply_t *reply, const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *body = malloc(len ? len : 1);
    if (!body) return sam_reply_error(reply, SAM_INTERNAL, "out of memory");
    protobuf_c_message_pack(msg, body);
    free(reply->body);
    reply->body = body;
    reply->body_len = len;
    reply->code = SAM_OK;
    return 0;
}

/*  Decodes len bytes as desc, the text rule first (sam_check_wire, fields' paths after
    `prefix`). Returns 0 with *out set (the caller frees it), -1 with 400 in reply when a
    string breaks the rule, or -2 with reply untouched when the bytes are not a packed desc:
    the caller says what was undecodable. */
int rt_decode(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
              const char *prefix, ProtobufCMessage **out, sam_reply_t *reply)
{
    char err[300];
    *out = NULL;
    if (sam_check_wire(desc, data, len, prefix, err, sizeof err) == -1) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "%s", err);
        return -1;
    }
    *out = protobuf_c_message_unpack(desc, NULL, len, data);
    return *out ? 0 : -2;
}

const char *sam_event_attr(const Io__Cloudevents__V1__CloudEvent *ce, const char *name)
{
    for (size_t i = 0; i < ce->n_attributes; i++) {
        const Io__Cloudevents__V1__CloudEvent__AttributesEntry *a = ce->attributes[i];
        if (!a->key || strcmp(a->key, name) != 0 || !a->value) continue;
        switch (a->value->attr_case) {
        case IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_STRING:
            return a->value->ce_string;
        case IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_URI:
            return a->value->ce_uri;
        case IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_URI_REF:
            return a->value->ce_uri_ref;
        default:
            return NULL;
        }
    }
    return NULL;
}

const Samordna__V1__Caller *rt_caller(sam_service_t *svc, const rt_request_t *r)
{
    if (r->caller) return r->caller;
    return svc->insecure ? &s_insecure : &s_anonymous;
}

/*  A service that runs with CURVE trusts only identities its brokers authenticated: a
    Caller that says "insecure" (or a request without a Caller) has no role here. */
bool rt_role_ok(sam_service_t *svc, const Samordna__V1__Caller *c, unsigned roles)
{
    if (roles & SAM_ROLE_ANYONE) return true;
    if (!svc->insecure) return !c->insecure && (sam_role_bit(c->role) & roles) != 0;
    if (c->insecure || !c->role[0]) return true;
    return (sam_role_bit(c->role) & roles) != 0;
}

/*  The one translation point (Mosquitto's handle__packet tail): what a handler of `row`
    returned (sam_service.h) into its reply. A refusal without a code becomes 500 for a
    query, 422 for an event; a store error is logged and answered 500 with its reason. */
void rt_outcome(sam_service_t *svc, const sam_row_t *row, uint64_t id, int rc, sam_reply_t *reply)
{
    bool event = row->kind == SAM_KIND_EVENT;
    if (rc == 0) return;
    if (rc == -1) {
        if (reply->code == SAM_OK || reply->code == 0) {
            if (event)
                sam_reply_error(reply, SAM_UNPROCESSABLE, "refused by %s", svc->def->name);
            else
                sam_reply_error(reply, SAM_INTERNAL, "%s failed", row->name);
        }
        return;
    }
    sam_error("store.failed req=%" PRIu64 " %s=%s error=%s", id, event ? "type" : "method",
              sam_logv(row->name), sam_logv(sam_store_strerror(rc)));
    sam_reply_error(reply, SAM_INTERNAL, "store failed: %s", sam_store_strerror(rc));
}

/* ---- the table ------------------------------------------------------------------------------ */

static const sam_row_t s_builtins[] = {
#define B(method, request_type, reply_type, who, changes, fn)                                      \
    SAM_ROW_METHOD_(method, request_type, reply_type, who, changes, SAM_KIND_BUILTIN, .builtin, fn)
#include "sam_builtin.def"
#undef B
};

static int s_row_cmp(const void *a, const void *b)
{
    return strcmp((*(const sam_row_t *const *)a)->name, (*(const sam_row_t *const *)b)->name);
}

static int s_name_cmp(const void *key, const void *elem)
{
    return strcmp((const char *)key, (*(const sam_row_t *const *)elem)->name);
}

/* The row named `name` among n rows sorted by name, or NULL. */
const sam_row_t *rt_find(const sam_row_t *const *rows, size_t n, const char *name)
{
    const sam_row_t *const *at = n ? bsearch(name, rows, n, sizeof *rows, s_name_cmp) : NULL;
    return at ? *at : NULL;
}

/* Why a row cannot be served, or NULL when it can. */
static const char *s_row_why(const sam_row_t *row, bool builtin)
{
    if (!row->name || !row->name[0]) return "no name";
    if (!row->roles) return "no roles: name who may call it";
    switch (row->kind) {
    case SAM_KIND_QUERY:
        return builtin ? "a built-in row of a query" : row->query ? NULL : "no handler";
    case SAM_KIND_EVENT:
        return builtin ? "a built-in row of an event" : row->apply ? NULL : "no apply";
    case SAM_KIND_BUILTIN:
        return !builtin ? "built-in rows are the runtime's" : row->builtin ? NULL : "no function";
    }
    return "no kind";
}

/*  The service's table: its rows then the built-ins, and the sorted lookup arrays. Returns
    0, or -1 (logged) when a row is malformed or a name is there twice. */
int rt_table_build(sam_service_t *svc)
{
    size_t nb = sizeof s_builtins / sizeof s_builtins[0], n = svc->def->n_rows + nb;
    svc->all = calloc(n, sizeof *svc->all);
    svc->methods = calloc(n, sizeof *svc->methods);
    svc->events = calloc(n, sizeof *svc->events);
    if (!svc->all || !svc->methods || !svc->events) return -1;
    for (size_t i = 0; i < n; i++) {
        bool builtin = i >= svc->def->n_rows;
        const sam_row_t *row = builtin ? &s_builtins[i - svc->def->n_rows] : &svc->def->rows[i];
        const char *why = s_row_why(row, builtin);
        if (why) {
            sam_error("service.table_invalid row=%zu name=%s reason=%s", i,
                      sam_logv(row->name ? row->name : ""), sam_logv(why));
            return -1;
        }
        svc->all[svc->n_all++] = row;
        if (row->kind == SAM_KIND_EVENT)
            svc->events[svc->n_events++] = row;
        else
            svc->methods[svc->n_methods++] = row;
    }
    qsort(svc->methods, svc->n_methods, sizeof *svc->methods, s_row_cmp);
    qsort(svc->events, svc->n_events, sizeof *svc->events, s_row_cmp);
    for (int pass = 0; pass < 2; pass++) {
        const sam_row_t **rows = pass ? svc->events : svc->methods;
        size_t count = pass ? svc->n_events : svc->n_methods;
        for (size_t i = 1; i < count; i++)
            if (strcmp(rows[i - 1]->name, rows[i]->name) == 0) {
                sam_error("service.table_invalid name=%s reason=\"two rows of that name\"",
                          sam_logv(rows[i]->name));
                return -1;
            }
    }
    return 0;
}

/* A row's size limit: its own, or the service default for its kind. */
static size_t s_row_limit(const sam_service_t *svc, const sam_row_t *row)
{
    if (row->limit) return row->limit;
    return row->kind == SAM_KIND_EVENT ? svc->max_event_bytes : svc->max_body;
}

/*  Redis's processCommand: everything the method's row decides, before any handler runs,
    through one reject path: the row (501), the caller's role (403), the body's size (413),
    its decoding into the row's request type with the text rule on every string (400).
    Returns the row with r->msg decoded, or NULL with the refusal in r->reply. */
const sam_row_t *rt_admit(sam_service_t *svc, rt_request_t *r)
{
    const char *method = r->req->method;
    const Samordna__V1__Caller *c = rt_caller(svc, r);
    const sam_row_t *row = rt_find(svc->methods, svc->n_methods, method);
    size_t len = r->req->body.len;
    if (!row) {
        sam_reply_error(&r->reply, SAM_NOT_IMPLEMENTED, "%s has no method '%s'", svc->def->name,
                        method);
    } else if (!rt_role_ok(svc, c, row->roles)) {
        sam_reply_error(&r->reply, SAM_FORBIDDEN, "role '%s' may not call %s",
                        c->role[0] ? c->role : "(none)", method);
    } else if (len > s_row_limit(svc, row)) {
        sam_reply_error(&r->reply, SAM_TOO_LARGE, "%s: a body of %zu bytes, over the limit of %zu",
                        method, len, s_row_limit(svc, row));
    } else if (row->request) {
        int d = rt_decode(row->request, r->req->body.data, len, "", &r->msg, &r->reply);
        if (d == -2)
            sam_reply_error(&r->reply, SAM_BAD_REQUEST, "undecodable %s for %s", row->request->name,
                            method);
        return d == 0 ? row : NULL;
    } else {
        return row;
    }
    return NULL;
}

/* ping: the service, this instance, the version and the outbox head. */
int rt_builtin_ping(sam_service_t *svc, rt_request_t *r, MDB_txn *rtxn, int64_t now)
{
    (void)now;
    Samordna__V1__PingReply pr = SAMORDNA__V1__PING_REPLY__INIT;
    pr.service = (char *)svc->def->name;
    pr.instance = svc->instance;
    pr.version = SAMORDNA_VERSION;
    pr.last_seq = sam_service_last_seq(svc, rtxn);
    Samordna__V1__FollowerState fs[8], *fp[8];
    for (size_t i = 0; i < svc->nfollowers; i++) {
        samordna__v1__follower_state__init(&fs[i]);
        fs[i].service = svc->followers[i].service;
        fs[i].cursor = svc->followers[i].cursor;
        fs[i].head = svc->followers[i].head;
        fs[i].down = svc->followers[i].down;
        fp[i] = &fs[i];
    }
    pr.n_followers = svc->nfollowers;
    pr.followers = fp;
    Samordna__V1__ReplicaState rs = SAMORDNA__V1__REPLICA_STATE__INIT;
    if (svc->replica) {
        rt_replica_fill(svc, &rs);
        pr.replica = &rs;
    }
    sam_reply_message(&r->reply, &pr.base);
    return 0;
}

/* service.describe: the table, as the runtime checks against it. */
int rt_builtin_describe(sam_service_t *svc, rt_request_t *r, MDB_txn *rtxn, int64_t now)
{
    (void)rtxn;
    (void)now;
    size_t nroles = sizeof s_role_names / sizeof s_role_names[0]; /* role names per row, at most */
    Samordna__V1__MethodDescription *m = calloc(svc->n_all ? svc->n_all : 1, sizeof *m);
    Samordna__V1__MethodDescription **mp = calloc(svc->n_all ? svc->n_all : 1, sizeof *mp);
    char **roles = calloc(svc->n_all * nroles + 1, sizeof *roles);
    if (!m || !mp || !roles) {
        sam_reply_error(&r->reply, SAM_INTERNAL, "out of memory");
    } else {
        for (size_t i = 0; i < svc->n_all; i++) {
            const sam_row_t *row = svc->all[i];
            samordna__v1__method_description__init(&m[i]);
            m[i].name = (char *)row->name;
            m[i].kind = row->kind == SAM_KIND_QUERY ? SAMORDNA__V1__METHOD_KIND__METHOD_KIND_QUERY
                        : row->kind == SAM_KIND_EVENT
                            ? SAMORDNA__V1__METHOD_KIND__METHOD_KIND_EVENT
                            : SAMORDNA__V1__METHOD_KIND__METHOD_KIND_BUILTIN;
            m[i].request = (char *)(row->request ? row->request->name : "");
            m[i].reply = (char *)(row->reply ? row->reply->name : "");
            m[i].roles = roles + i * nroles;
            for (unsigned bit = 1; bit <= SAM_ROLE_ANYONE; bit <<= 1)
                if ((row->roles & bit) && sam_role_name(bit))
                    m[i].roles[m[i].n_roles++] = (char *)sam_role_name(bit);
            m[i].writes = row->writes;
            m[i].limit = s_row_limit(svc, row);
            mp[i] = &m[i];
        }
        Samordna__V1__ServiceDescription d = SAMORDNA__V1__SERVICE_DESCRIPTION__INIT;
        d.service = (char *)svc->def->name;
        d.n_methods = svc->n_all;
        d.methods = mp;
        sam_reply_message(&r->reply, &d.base);
    }
    free(roles);
    free(mp);
    free(m);
    return 0;
}
