/*  history.c — `samctl … history ID`: every event a record was made of and corrected by, from
    its service's outbox, which is the audit trail (docs/events.md): who published it (the
    CloudEvent's source), when it was stored (recorded_ms), what it said (the payload, with
    the reason of a correction) — a correction never overwrites, so the record's past stays
    readable here.

    A command's history row is its .query (samctl.h) naming the service, and in .method the
    event types that make that kind of record (prefixes, space-separated, e.g.
    "no.samordna.registry.pilot."; NULL: any of the service's), since a pilot and its
    municipality may share an id; the record's events are those of such a type whose subject
    is ID or starts with "ID/" (a payment "AWARD/ID" belongs to its award). The outbox is read from
   its start, a thousand events a call: the registry, status and grants of one programme hold
   thousands of events, not millions (docs/scaling.md).

    The payload of each type is decoded with the type's message from the services' own tables
    (the .def files, read here for their E rows only), so a new event type is shown without a
    change here.
*/
#include "samctl.h"

#include "sam_clock.h"
#include "sam_service.h"

#include "samordna/v1/envelope.pb-c.h"
#include "samordna/v1/grants.pb-c.h"
#include "samordna/v1/notify.pb-c.h"
#include "samordna/v1/registry.pb-c.h"
#include "samordna/v1/status.pb-c.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every event type of the services and its payload message, from their tables. */
static const struct {
    const char *type;
    const ProtobufCMessageDescriptor *payload;
} s_types[] = {
#define Q(...)
#define W(...)
#define L(...)
#define E(type, payload, ...) {type, payload},
#include "grants.def"
#include "notify.def"
#include "registry.def"
#include "status.def"
#undef Q
#undef W
#undef L
#undef E
};

static const ProtobufCMessageDescriptor *s_payload_of(const char *type)
{
    for (size_t i = 0; i < sizeof s_types / sizeof s_types[0]; i++)
        if (strcmp(s_types[i].type, type) == 0) return s_types[i].payload;
    return NULL;
}

/* The event's subject is id, or names a part of it ("id/…"). */
static bool s_concerns(const char *subject, const char *id)
{
    size_t n = strlen(id);
    return subject && strncmp(subject, id, n) == 0 && (subject[n] == 0 || subject[n] == '/');
}

/* The type is one of the prefixes (space-separated), or prefixes is NULL. */
static bool s_of_types(const char *type, const char *prefixes)
{
    if (!prefixes) return true;
    for (const char *p = prefixes; *p;) {
        size_t n = strcspn(p, " ");
        if (n && strncmp(type, p, n) == 0) return true;
        p += n + (p[n] == ' ');
    }
    return false;
}

/* One event as its JSON record: seq, recorded (ms and day), type, source, subject, data. */
static json_t *s_event_json(const Samordna__V1__StoredEvent *se)
{
    const Io__Cloudevents__V1__CloudEvent *ce = se->event;
    char day[11];
    sam_clock_date_of(se->recorded_ms, day);
    size_t len = 0;
    const uint8_t *data = sam_event_data(ce, &len);
    const ProtobufCMessageDescriptor *d = s_payload_of(ce->type);
    ProtobufCMessage *m =
        d ? protobuf_c_message_unpack(d, NULL, len, data ? data : (const uint8_t *)"") : NULL;
    const char *subject = sam_event_attr(ce, "subject");
    json_t *j =
        json_pack("{s:I,s:I,s:s,s:s,s:s,s:s,s:s}", "seq", (json_int_t)se->seq, "recorded_ms",
                  (json_int_t)se->recorded_ms, "recorded", day, "type", ce->type, "source",
                  ce->source, "id", ce->id, "subject", subject ? subject : "");
    json_object_set_new(j, "data", m ? samctl_json_message(m) : json_null());
    if (m) protobuf_c_message_free_unpacked(m, NULL);
    return j;
}

static bool s_empty(json_t *v)
{
    return json_is_null(v) || json_is_false(v) ||
           (json_is_string(v) && json_string_length(v) == 0) ||
           (json_is_integer(v) && json_integer_value(v) == 0) ||
           (json_is_array(v) && json_array_size(v) == 0);
}

static void s_event_row(json_t *j)
{
    const char *type = json_string_value(json_object_get(j, "type"));
    const char *shown = strncmp(type, "no.samordna.", 12) == 0 ? type + 12 : type;
    printf("%-6lld %-10s %-16s %-36s %s\n",
           (long long)json_integer_value(json_object_get(j, "seq")),
           json_string_value(json_object_get(j, "recorded")),
           json_string_value(json_object_get(j, "source")), shown,
           json_string_value(json_object_get(j, "subject")));
    json_t *data = json_object_get(j, "data");
    const char *reason = json_string_value(json_object_get(data, "reason"));
    if (reason && reason[0]) printf("       why: %s\n", reason);
    if (json_is_object(data)) {
        /* what it said: its non-empty fields, compact */
        json_t *shownd = json_object(), *v;
        const char *k;
        json_object_foreach(data, k, v)
        {
            if (strcmp(k, "reason") == 0 || s_empty(v)) continue;
            json_object_set(shownd, k, v);
        }
        char *text = json_dumps(shownd, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (text) printf("       %s\n", text);
        free(text);
        json_decref(shownd);
    }
}

int samctl_history_run(samctl_t *ctl, const samctl_args_t *a)
{
    const char *service = a->cmd->query->service, *id = a->pos[0];
    samctl_list_t list;
    char header[160];
    snprintf(header, sizeof header, "%-6s %-10s %-16s %-36s %s", "SEQ", "RECORDED", "BY", "EVENT",
             "SUBJECT");
    samctl_list_begin(&list, ctl, "events", header);
    Samordna__V1__ReadRequest req = SAMORDNA__V1__READ_REQUEST__INIT;
    req.max = 1000;
    for (;;) {
        Samordna__V1__ReadReply *r = (Samordna__V1__ReadReply *)samctl_call(
            ctl, service, "events.read", &req.base, &samordna__v1__read_reply__descriptor);
        if (!r) {
            samctl_list_drop(&list);
            return 1;
        }
        for (size_t i = 0; i < r->n_events; i++) {
            const Samordna__V1__StoredEvent *se = r->events[i];
            req.after_seq = se->seq;
            if (!se->event || !s_of_types(se->event->type, a->cmd->query->method) ||
                !s_concerns(sam_event_attr(se->event, "subject"), id))
                continue;
            json_t *j = s_event_json(se);
            if (ctl->json)
                samctl_list_row(&list, j);
            else {
                if (samctl_list_row(&list, NULL)) s_event_row(j);
                json_decref(j);
            }
        }
        bool done = r->n_events == 0 || req.after_seq >= r->last_seq;
        protobuf_c_message_free_unpacked(&r->base, NULL);
        if (done) break;
    }
    if (list.count == 0) {
        /* nothing: an unknown id, named as every query names one */
        samctl_list_drop(&list);
        fprintf(stderr, "samctl %s: no event of %s concerns '%s'\n", a->path, service, id);
        return 1;
    }
    samctl_list_end(&list, NULL);
    return 0;
}
