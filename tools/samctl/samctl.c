/*  samctl — the command-line client of samordna.

    samctl COMMAND [SUBCOMMAND] [arguments and options], global options anywhere

    main() takes the global options out of the line wherever they stand (a word that names
    one is one, up to "--"), hands them to sam_config (which also reads --config files), and
    calls the command's function with the words left; the command parses those with
    samctl_run() and its table (samctl_args.c). Commands are listed in commands.def;
    `samctl --help` prints them, `samctl COMMAND --help` (or `samctl help COMMAND`) each one.
    The shared pieces every command uses live here: the connection and its bounded calls,
    the JSON printer, the event builder.
*/
#include "samctl.h"
#include "sam_check.h"
#include "sam_log.h"

#include "samordna/v1/envelope.pb-c.h"

#include <assert.h>
#include <czmq.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* A command word's table and its line in `samctl --help`. */
static const struct s_command {
    const samctl_cmd_t *cmd;
    const char *summary;
} s_commands[] = {
#define X(table, summary) {&table, summary},
#include "commands.def"
#undef X
};
#define S_NCOMMANDS (sizeof s_commands / sizeof s_commands[0])

sam_lang_t samctl_lang = SAM_LANG_NB;

const sam_option_t samctl_global_options[] = {
    {"broker", "ENDPOINT", "tcp://127.0.0.1:5555", "broker to connect to", true},
    {"json", NULL, NULL,
     "print JSON: a list as {\"items\": [...], \"next\": TOKEN or null}, one record as an object",
     false},
    {"csv", NULL, NULL,
     "print lists, the board and the overview as CSV for spreadsheets: UTF-8 with BOM, ';', "
     "CRLF, amounts in NOK with decimal comma",
     false},
    {"timeout-ms", "MS", "5000",
     "how long to wait for an answer, resends included; then samctl says so and exits 1", false},
    {"broker-heartbeat-ms", "MS", "100",
     "with several --broker: heartbeat each this often; one silent for 5 beats is left and "
     "what was sent to it goes to another",
     false},
    {"source", "AGENCY", "fmov", "agency id to publish events as", false},
    {"primary", NULL, NULL,
     "send every request to the service's primary only: reads that must see the latest "
     "writes, where standbys serve too (docs/scaling.md, \"Across hosts\")",
     false},
    {"instance", "NAME", NULL, "send every request to this instance of the service only", false},
    {"lang", "nb|en", "nb",
     "the language of what people read: the board, the report, the lists' texts (--json keeps "
     "the ids)",
     false},
    {"insecure", NULL, NULL, "connect without CURVE (loopback brokers run with --insecure)", false},
    {"cert", "FILE", NULL, "connect with CURVE as this secret certificate (samctl keys new)",
     false},
    {"server-key", "KEY|FILE", NULL, "the broker's public key (Z85 text or its certificate file)",
     false},
    {NULL, NULL, NULL, NULL, false},
};

/* The endpoints the services accept --insecure for (docs/security.md). */
static bool s_loopback(const char *ep)
{
    return strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "inproc://", 9) == 0 ||
           strncmp(ep, "tcp://127.", 10) == 0 || strncmp(ep, "tcp://localhost:", 16) == 0 ||
           strncmp(ep, "tcp://[::1]:", 12) == 0;
}

sam_client_t *samctl_client(samctl_t *ctl)
{
    if (ctl->client) return ctl->client;
    size_t n = sam_config_count(ctl->config, "broker");
    const char *eps[16];
    if (n > 16) n = 16;
    for (size_t i = 0; i < n; i++)
        eps[i] = sam_config_nth(ctl->config, "broker", i);
    ctl->client = samctl_client_of(ctl, eps, n);
    return ctl->client;
}

void samctl_route_default(samctl_t *ctl, sam_client_t *client)
{
    sam_client_set_route(client, sam_config_flag(ctl->config, "primary"),
                         sam_config_get(ctl->config, "instance"));
}

sam_client_t *samctl_client_of(samctl_t *ctl, const char *const *eps, size_t n)
{
    char err[256] = "";
    sam_client_opts_t opts = {.heartbeat_ms = ctl->heartbeat_ms};
    if (!sam_config_flag(ctl->config, "insecure")) {
        opts.client_cert = sam_config_get(ctl->config, "cert");
        opts.server_key = sam_config_get(ctl->config, "server-key");
    }
    /* Without a certificate samctl connects without CURVE, which is for loopback only. */
    for (size_t i = 0; !opts.client_cert && !opts.server_key && i < n; i++)
        if (!s_loopback(eps[i])) {
            fprintf(stderr,
                    "samctl: connecting without CURVE is refused for the non-loopback broker %s "
                    "(give --cert and --server-key)\n",
                    eps[i]);
            return NULL;
        }
    sam_client_t *client = sam_client_new(eps, n, &opts, err, sizeof err);
    if (client) samctl_route_default(ctl, client);
    if (!client)
        fprintf(stderr, "samctl: cannot connect: %s\n", err);
    else
        sam_info("client.connect brokers=%zu broker=%s curve=%s timeout_ms=%d", n, n ? eps[0] : "",
                 opts.client_cert ? "yes" : "no", ctl->timeout_ms);
    return client;
}

int samctl_event_init(samctl_event_t *e, const char *id, const char *source, const char *type,
                      const char *subject, const ProtobufCMessage *payload)
{
    memset(e, 0, sizeof *e);
    if (!id) {
        zuuid_t *uuid = zuuid_new();
        if (!uuid) return -1;
        snprintf(e->uuid, sizeof e->uuid, "%s", zuuid_str_canonical(uuid));
        zuuid_destroy(&uuid);
        id = e->uuid;
    }
    size_t len = protobuf_c_message_get_packed_size(payload);
    if (!(e->data = malloc(len ? len : 1))) return -1;
    protobuf_c_message_pack(payload, e->data);
    samordna__v1__publish_request__init(&e->request);
    e->request.event = &e->ce;
    io__cloudevents__v1__cloud_event__init(&e->ce);
    e->ce.id = (char *)id;
    e->ce.source = (char *)source;
    e->ce.spec_version = "1.0";
    e->ce.type = (char *)type;
    e->ce.data_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_BINARY_DATA;
    e->ce.binary_data.data = e->data;
    e->ce.binary_data.len = len;
    if (!subject) return 0;
    static const char *const keys[2] = {"datacontenttype", "subject"};
    const char *values[2] = {"application/protobuf", subject};
    for (int i = 0; i < 2; i++) {
        io__cloudevents__v1__cloud_event__cloud_event_attribute_value__init(&e->value[i]);
        e->value[i].attr_case =
            IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_STRING;
        e->value[i].ce_string = (char *)values[i];
        io__cloudevents__v1__cloud_event__attributes_entry__init(&e->entry[i]);
        e->entry[i].key = (char *)keys[i];
        e->entry[i].value = &e->value[i];
        e->entries[i] = &e->entry[i];
    }
    e->ce.n_attributes = 2;
    e->ce.attributes = e->entries;
    return 0;
}

void samctl_event_clear(samctl_event_t *e)
{
    free(e->data);
    e->data = NULL;
}

uint32_t samctl_request(samctl_t *ctl, const char *service, const char *method,
                        const ProtobufCMessage *req, const ProtobufCMessageDescriptor *reply_desc,
                        ProtobufCMessage **reply_out, bool resend, sam_result_t *res)
{
    if (reply_out) *reply_out = NULL;
    memset(res, 0, sizeof *res);
    sam_client_t *client = samctl_client(ctl);
    if (!client) {
        res->code = SAM_UNAVAILABLE;
        snprintf(res->message, sizeof res->message, "cannot connect to the broker");
        return res->code;
    }
    /* sam_client_call waits its timeout once per attempt: two halves make one --timeout-ms.
       The second attempt reuses the request id, so a late answer to the first still counts. */
    int total = ctl->timeout_ms > 0 ? ctl->timeout_ms : 1;
    int each = resend && total >= 2 ? total / 2 : total;
    sam_debug("call.request service=%s method=%s bytes=%zu", service, method,
              req ? protobuf_c_message_get_packed_size(req) : 0);
    int64_t t0 = zclock_usecs();
    uint32_t code =
        sam_client_call(client, service, method, req, reply_desc, reply_out, each, resend, res);
    sam_debug("call.reply service=%s method=%s code=%u bytes=%zu ms=%.3f", service, method, code,
              res->body_len, (double)(zclock_usecs() - t0) / 1000.0);
    if (code == SAM_TIMEOUT) {
        const char *broker = ctl->config ? sam_config_get(ctl->config, "broker") : NULL;
        snprintf(res->message, sizeof res->message,
                 "no reply from '%s' within %d ms (is the broker running at %s, with a '%s' "
                 "service attached?)",
                 service, total, broker ? broker : "the --broker endpoint", service);
    } else if (code == SAM_UNAVAILABLE && strncmp(res->message, "cannot send", 11) == 0)
        snprintf(res->message, sizeof res->message,
                 "cannot send to the broker within %d ms (is it running, and does it accept this "
                 "certificate?)",
                 total);
    return code;
}

ProtobufCMessage *samctl_call(samctl_t *ctl, const char *service, const char *method,
                              const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *reply_desc)
{
    sam_result_t res = {0};
    ProtobufCMessage *out = NULL;
    uint32_t code = samctl_request(ctl, service, method, req, reply_desc, &out, true, &res);
    if (code != SAM_OK) {
        fprintf(stderr, "samctl: %s %s: %u %s: %s\n", service, method, code, sam_status_name(code),
                res.message);
        out = NULL;
    }
    sam_result_clear(&res);
    return out;
}

int samctl_publish(samctl_t *ctl, const char *service, const char *type, const char *id,
                   const char *subject, const ProtobufCMessage *payload)
{
    samctl_event_t ev;
    if (samctl_event_init(&ev, id, ctl->source, type, subject, payload) != 0) {
        fprintf(stderr, "samctl: out of memory\n");
        return 1;
    }
    Samordna__V1__PublishReply *rep = (Samordna__V1__PublishReply *)samctl_call(
        ctl, service, SAMCTL_PUBLISH_METHOD, &ev.request.base,
        &samordna__v1__publish_reply__descriptor);
    int rc = rep ? 0 : 1;
    if (rep && ctl->json) {
        json_t *o = json_object();
        json_object_set_new(o, "service", json_string(service));
        json_object_set_new(o, "type", json_string(type));
        json_object_set_new(o, "id", json_string(ev.ce.id));
        json_object_set_new(o, "subject", subject ? json_string(subject) : json_null());
        json_object_set_new(o, "seq", json_integer((json_int_t)rep->seq));
        json_object_set_new(o, "duplicate", json_boolean(rep->duplicate));
        samctl_print_json(o);
    } else if (rep) {
        const char *ns = "no.samordna.";
        const char *shown = strncmp(type, ns, strlen(ns)) == 0 ? type + strlen(ns) : type;
        printf("%s%s%s: seq %" PRIu64 "%s\n", shown, subject ? " " : "", subject ? subject : "",
               rep->seq, rep->duplicate ? " (duplicate: already stored)" : "");
    }
    if (rep) protobuf_c_message_free_unpacked(&rep->base, NULL);
    samctl_event_clear(&ev);
    return rc;
}

int samctl_write(samctl_t *ctl, const samctl_args_t *a, const ProtobufCMessage *payload)
{
    const samctl_write_t *w = a->cmd->writes;
    assert(w && "samctl_write from a command without a .writes row");
    char subject[512] = "", id[640];
    for (size_t i = 0; i < (size_t)w->subject_args && i < a->npos; i++) {
        size_t at = strlen(subject);
        snprintf(subject + at, sizeof subject - at, "%s%s", i ? "/" : "", a->pos[i]);
    }
    if (w->id) snprintf(id, sizeof id, "%s/%s", w->id, subject);
    return samctl_publish(ctl, w->service, w->type, w->id ? id : NULL,
                          w->subject_args ? subject : NULL, payload);
}

int samctl_write_run(samctl_t *ctl, const samctl_args_t *a)
{
    const ProtobufCMessageDescriptor *d = a->cmd->writes->payload;
    ProtobufCMessage *m = calloc(1, d->sizeof_message);
    if (!m) {
        fprintf(stderr, "samctl: out of memory\n");
        return 1;
    }
    protobuf_c_message_init(d, m);
    samctl_fill(a, m);
    int rc = samctl_write(ctl, a, m);
    free(m); /* its strings are argv's */
    return rc;
}

void samctl_print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    printf("%s\n", s ? s : "null");
    free(s);
    json_decref(j);
}

const char *samctl_enum_word(const ProtobufCEnumDescriptor *d, int value, char *out, size_t len)
{
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
    if (!v || value == 0) {
        snprintf(out, len, "%s", value == 0 ? "" : "?");
        return out;
    }
    /* The prefix is the enum's name in upper snake case and '_': AgencyKind → AGENCY_KIND_. */
    size_t skip = 1;
    for (const char *p = d->short_name; *p; p++)
        skip += (p != d->short_name && isupper((unsigned char)*p)) ? 2 : 1;
    size_t i = 0;
    for (const char *p = strlen(v->name) > skip ? v->name + skip : v->name; *p && i + 1 < len; p++)
        out[i++] = (char)tolower((unsigned char)*p);
    out[i] = '\0';
    return out;
}

static json_t *s_json_value(const ProtobufCFieldDescriptor *f, const void *p)
{
    char w[128];
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        return json_string(*(char *const *)p ? *(char *const *)p : "");
    case PROTOBUF_C_TYPE_BYTES:
        return json_integer((json_int_t)((const ProtobufCBinaryData *)p)->len); /* its size */
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_ENUM:
        return json_string(samctl_enum_word(f->descriptor, *(const int *)p, w, sizeof w));
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return json_integer((json_int_t) * (const uint64_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return json_integer((json_int_t) * (const int64_t *)p);
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(ProtobufCMessage *const *)p ? samctl_json_message(*(ProtobufCMessage *const *)p)
                                             : json_null();
    default:
        return json_null();
    }
}

static size_t s_elem_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return 8;
    default:
        return 4;
    }
}

json_t *samctl_json_message(const ProtobufCMessage *m)
{
    json_t *o = json_object();
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)m;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const char *arr = *(char *const *)(base + f->offset);
            json_t *ja = json_array();
            for (size_t k = 0; k < n; k++)
                json_array_append_new(ja, s_json_value(f, arr + k * s_elem_size(f)));
            json_object_set_new(o, f->name, ja);
        } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF &&
                   *(const uint32_t *)(base + f->quantifier_offset) != f->id) {
            continue; /* another member of its oneof is set */
        } else {
            json_object_set_new(o, f->name, s_json_value(f, base + f->offset));
        }
    }
    return o;
}

/* Whether a field's value is empty: "", 0, false, an absent message. */
static bool s_empty(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        return !*(const char *const *)p || !**(const char *const *)p;
    case PROTOBUF_C_TYPE_MESSAGE:
        return !*(ProtobufCMessage *const *)p;
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len == 0;
    case PROTOBUF_C_TYPE_BOOL:
        return !*(const protobuf_c_boolean *)p;
    default: {
        static const char zero[8];
        return memcmp(p, zero, s_elem_size(f)) == 0;
    }
    }
}

/* A value for samctl_json_fields: messages with their non-empty fields only. */
static json_t *s_sparse_value(const ProtobufCFieldDescriptor *f, const void *p)
{
    if (f->type == PROTOBUF_C_TYPE_MESSAGE && *(ProtobufCMessage *const *)p)
        return samctl_json_fields(*(ProtobufCMessage *const *)p, NULL);
    return s_json_value(f, p);
}

json_t *samctl_json_fields(const ProtobufCMessage *m, const char *spec)
{
    json_t *o = json_object();
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    for (unsigned i = 0; spec ? *spec != '\0' : i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        bool sparse = true;
        if (spec) {
            size_t len = strcspn(spec, " ?");
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)len, spec);
            f = protobuf_c_message_descriptor_get_field_by_name(d, name);
            assert(f && "a JSON field list names a field the message does not have");
            sparse = spec[len] == '?';
            spec += len + sparse;
            spec += strspn(spec, " ");
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const char *arr = *(char *const *)(base + f->offset);
            if (sparse && n == 0) continue;
            json_t *ja = json_array();
            for (size_t k = 0; k < n; k++)
                json_array_append_new(ja, s_sparse_value(f, arr + k * s_elem_size(f)));
            json_object_set_new(o, f->name, ja);
        } else if (!(sparse && s_empty(f, base + f->offset))) {
            json_object_set_new(o, f->name, s_sparse_value(f, base + f->offset));
        }
    }
    return o;
}

void samctl_list_begin(samctl_list_t *l, samctl_t *ctl, const char *noun, const char *header)
{
    *l = (samctl_list_t){.ctl = ctl, .noun = noun, .header = header};
    if (ctl->json) l->items = json_array();
}

bool samctl_list_row(samctl_list_t *l, json_t *item)
{
    if (l->ctl->json) {
        if (item) json_array_append_new(l->items, item);
        l->count++;
        return false;
    }
    json_decref(item);
    if (l->count++ == 0 && l->header) printf("%s\n", l->header);
    return true;
}

void samctl_list_end(samctl_list_t *l, const char *next)
{
    bool more = next && *next;
    if (l->ctl->json) {
        json_t *doc = json_object();
        json_object_set_new(doc, "items", l->items);
        json_object_set_new(doc, "next", more ? json_string(next) : json_null());
        l->items = NULL;
        samctl_print(l->ctl, doc);
        return;
    }
    if (l->count == 0)
        printf("no %s\n", l->noun);
    else
        printf("(%zu)\n", l->count);
    if (more) printf("(more: --page-token %s)\n", next);
}

void samctl_list_drop(samctl_list_t *l)
{
    json_decref(l->items);
    l->items = NULL;
}

const char *samctl_pick(const char *const *words, size_t n, int value, const char *other)
{
    return value >= 0 && (size_t)value < n && words[value] ? words[value] : other;
}

/* A page token: a string, or (notify.log) the number of the last record read, 0 for none.
   The field `name` of m as text into out ("" when there is none), or set from text. */
static void s_token_get(const ProtobufCMessage *m, const char *name, char *out, size_t cap)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    const void *at = f ? (const char *)m + f->offset : NULL;
    out[0] = '\0';
    if (f && f->type == PROTOBUF_C_TYPE_STRING && *(const char *const *)at)
        snprintf(out, cap, "%s", *(const char *const *)at);
    else if (f && f->type == PROTOBUF_C_TYPE_UINT64 && *(const uint64_t *)at)
        snprintf(out, cap, "%" PRIu64, *(const uint64_t *)at);
}

static void s_token_set(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, char *token)
{
    if (f->type == PROTOBUF_C_TYPE_STRING)
        *(char **)((char *)m + f->offset) = token;
    else
        *(uint64_t *)((char *)m + f->offset) = strtoull(token, NULL, 10);
}

/* The message field `name` of m, or NULL when it is not set. */
static const ProtobufCMessage *s_message_field(const ProtobufCMessage *m, const char *name)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    assert(f && f->type == PROTOBUF_C_TYPE_MESSAGE && f->label != PROTOBUF_C_LABEL_REPEATED);
    return *(ProtobufCMessage *const *)((const char *)m + f->offset);
}

/* The header line of a column table: each %s conversion of `columns` (flags and width kept)
   given the next of the '|'-separated titles. */
static void s_header(const char *columns, const char *titles, char *out, size_t cap)
{
    size_t at = 0;
    for (const char *p = columns; *p && at + 1 < cap; p++) {
        if (*p != '%') {
            out[at++] = *p;
            continue;
        }
        bool left = p[1] == '-';
        size_t width = (size_t)strtoul(p + 1 + left, NULL, 10);
        size_t len = strcspn(titles, "|"), pad = width > len ? width - len : 0;
        for (size_t k = 0; !left && k < pad && at + 1 < cap; k++)
            out[at++] = ' ';
        for (size_t k = 0; k < len && at + 1 < cap; k++)
            out[at++] = titles[k];
        for (size_t k = 0; left && k < pad && at + 1 < cap; k++)
            out[at++] = ' ';
        titles += len + (titles[len] == '|');
        p += strcspn(p, "s");
    }
    out[at] = '\0';
}

/* Sets the uint32 field `name` of m. */
static void s_set_u32(ProtobufCMessage *m, const char *name, uint32_t v)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, name);
    assert(f && f->type == PROTOBUF_C_TYPE_UINT32);
    *(uint32_t *)((char *)m + f->offset) = v;
}

/* A record of a query in --json. */
static json_t *s_record_json(const samctl_query_t *q, const ProtobufCMessage *rec)
{
    return q->fields ? samctl_json_fields(rec, q->fields)
           : q->json ? q->json(rec)
                     : samctl_json_message(rec);
}

/* One record: the reply, as JSON or as its text. */
static int s_show(samctl_t *ctl, const samctl_query_t *q, const ProtobufCMessage *req)
{
    ProtobufCMessage *rec = samctl_call(ctl, q->service, q->method, req, q->reply);
    if (!rec) return 1;
    if (ctl->json)
        samctl_print(ctl, s_record_json(q, rec));
    else
        q->row(rec);
    protobuf_c_message_free_unpacked(rec, NULL);
    return 0;
}

int samctl_list_query(samctl_t *ctl, const samctl_query_t *q, ProtobufCMessage *req)
{
    if (!q->items) return s_show(ctl, q, req);
    const ProtobufCFieldDescriptor *items =
        protobuf_c_message_descriptor_get_field_by_name(q->reply, q->items);
    assert(items && items->label == PROTOBUF_C_LABEL_REPEATED &&
           items->type == PROTOBUF_C_TYPE_MESSAGE);
    const ProtobufCFieldDescriptor *token =
        req ? protobuf_c_message_descriptor_get_field_by_name(req->descriptor, "page_token") : NULL;
    assert(!q->every_page || (token && (token->type == PROTOBUF_C_TYPE_STRING ||
                                        token->type == PROTOBUF_C_TYPE_UINT64)));
    if (q->every_page && q->page_size) s_set_u32(req, "page_size", q->page_size);
    char header[256];
    s_header(q->columns, q->titles, header, sizeof header);
    samctl_list_t list;
    samctl_list_begin(&list, ctl, q->noun, header);
    char next[256] = "";
    do {
        if (q->every_page) s_token_set(req, token, next);
        ProtobufCMessage *page = samctl_call(ctl, q->service, q->method, req, q->reply);
        if (!page) {
            samctl_list_drop(&list);
            return 1;
        }
        size_t n = *(const size_t *)((const char *)page + items->quantifier_offset);
        ProtobufCMessage *const *recs =
            *(ProtobufCMessage *const *const *)((const char *)page + items->offset);
        for (size_t i = 0; i < n; i++) {
            if (q->needs && !s_message_field(recs[i], q->needs)) continue;
            json_t *j = ctl->json ? s_record_json(q, recs[i]) : NULL;
            if (samctl_list_row(&list, j)) q->row(recs[i]);
        }
        s_token_get(page, "next_page_token", next, sizeof next);
        protobuf_c_message_free_unpacked(page, NULL);
    } while (q->every_page && next[0]);
    samctl_list_end(&list, next);
    return 0;
}

int samctl_query_run(samctl_t *ctl, const samctl_args_t *a)
{
    const samctl_query_t *q = a->cmd->query;
    ProtobufCMessage *req = q->request ? calloc(1, q->request->sizeof_message) : NULL;
    if (q->request && !req) {
        fprintf(stderr, "samctl: out of memory\n");
        return 1;
    }
    if (req) {
        protobuf_c_message_init(q->request, req);
        samctl_fill(a, req);
        /* a request that takes a language gets the reader's (--lang) */
        const ProtobufCFieldDescriptor *lf =
            protobuf_c_message_descriptor_get_field_by_name(q->request, "lang");
        if (lf && lf->type == PROTOBUF_C_TYPE_STRING && lf->label != PROTOBUF_C_LABEL_REPEATED) {
            const char **at = (const char **)(void *)((char *)req + lf->offset);
            if (!*at || !**at) *at = sam_lang_code(ctl->lang);
        }
    }
    int rc = samctl_list_query(ctl, q, req);
    free(req); /* its strings are argv's */
    return rc;
}

/* ---- CSV: lists, the board and the overview for spreadsheets ------------------------------ */

/*  --csv is written for the spreadsheet programs people in Norway open it in: UTF-8 with a
    byte order mark (without one they guess a legacy code page and break æ, ø, å), ';'
    between fields (the ',' is the decimal comma), CRLF line ends, a header row, and amounts
    as NOK with a decimal comma ("200000" or "1500,50": no thousands spaces, so the cell is
    a number). The rows are the JSON records flattened: a member "x_ore" becomes "x_nok";
    an object's members become columns "x.member"; a list of pairs ({kind, date}, as the
    board's cells) one column a pair, named by its first value; any other list one cell. */

static void s_csv_field(const char *s)
{
    if (!strpbrk(s, ";\"\r\n") && s[0] != ' ') {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (const char *p = s; *p; p++) {
        if (*p == '"') putchar('"');
        putchar(*p);
    }
    putchar('"');
}

/* A scalar as its cell; ore: an amount in øre, written as NOK. The caller frees. */
static char *s_csv_scalar(const json_t *v, bool ore)
{
    char buf[64];
    if (json_is_string(v)) return strdup(json_string_value(v));
    if (json_is_integer(v) && ore) {
        json_int_t n = json_integer_value(v);
        unsigned long long a = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
        if (a % 100)
            snprintf(buf, sizeof buf, "%s%llu,%02llu", n < 0 ? "-" : "", a / 100, a % 100);
        else
            snprintf(buf, sizeof buf, "%s%llu", n < 0 ? "-" : "", a / 100);
    } else if (json_is_integer(v)) {
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v)) {
        snprintf(buf, sizeof buf, "%.3f", json_real_value(v));
        char *dot = strchr(buf, '.');
        if (dot) *dot = ',';
    } else if (json_is_boolean(v)) {
        snprintf(buf, sizeof buf, "%s", json_is_true(v) ? "true" : "false");
    } else if (json_is_null(v)) {
        buf[0] = '\0';
    } else {
        return json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
    }
    return strdup(buf);
}

static bool s_ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

/* Whether every element of a is an object of two members, the first a string. */
static bool s_pairs(const json_t *a)
{
    size_t i;
    const json_t *e;
    json_array_foreach(a, i, e) if (!json_is_object(e) || json_object_size(e) != 2 ||
                                    !json_is_string(json_object_iter_value(
                                        json_object_iter((json_t *)e)))) return false;
    return json_array_size(a) > 0;
}

static void s_csv_put(json_t *cells, const char *name, char *text)
{
    json_object_set_new(cells, name, json_string(text ? text : ""));
    free(text);
}

/* The cells of one record, flattened into cells (name → text), under prefix. */
static void s_csv_flatten(json_t *cells, const char *prefix, const json_t *rec)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)rec, key, v)
    {
        char name[160];
        snprintf(name, sizeof name, "%s%s", prefix, key);
        bool ore = json_is_integer(v) && s_ends_with(name, "_ore");
        if (ore) memcpy(name + strlen(name) - 3, "nok", 3);
        if (json_is_object(v)) {
            char sub[170];
            snprintf(sub, sizeof sub, "%s.", name);
            s_csv_flatten(cells, sub, v);
        } else if (json_is_array(v) && s_pairs(v)) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e)
            {
                void *it = json_object_iter(e);
                const char *col = json_string_value(json_object_iter_value(it));
                it = json_object_iter_next(e, it);
                s_csv_put(cells, col, s_csv_scalar(json_object_iter_value(it), false));
            }
        } else if (json_is_array(v) && json_array_size(v) && json_is_string(json_array_get(v, 0))) {
            size_t i, at = 0;
            json_t *e;
            char joined[1024] = "";
            json_array_foreach(v, i, e) at +=
                (size_t)snprintf(joined + at, at < sizeof joined ? sizeof joined - at : 0, "%s%s",
                                 i ? ", " : "", json_is_string(e) ? json_string_value(e) : "?");
            s_csv_put(cells, name, strdup(joined));
        } else {
            s_csv_put(cells, name, s_csv_scalar(v, ore));
        }
    }
}

/* The records as CSV: BOM, a header of every column any record has, one row each. */
static void s_csv_rows(const json_t *records)
{
    json_t *rows = json_array(), *columns = json_array(), *seen = json_object();
    size_t i;
    json_t *rec;
    json_array_foreach((json_t *)records, i, rec)
    {
        json_t *cells = json_object();
        if (json_is_object(rec))
            s_csv_flatten(cells, "", rec);
        else
            s_csv_put(cells, "value", s_csv_scalar(rec, false));
        const char *name;
        json_t *v;
        json_object_foreach(cells, name, v) if (!json_object_get(seen, name))
        {
            json_object_set_new(seen, name, json_true());
            json_array_append_new(columns, json_string(name));
        }
        json_array_append_new(rows, cells);
    }
    fputs("\xEF\xBB\xBF", stdout);
    json_t *col;
    json_array_foreach(columns, i, col)
    {
        if (i) putchar(';');
        s_csv_field(json_string_value(col));
    }
    if (json_array_size(columns)) fputs("\r\n", stdout);
    json_t *cells;
    json_array_foreach(rows, i, cells)
    {
        size_t k;
        json_array_foreach(columns, k, col)
        {
            if (k) putchar(';');
            const json_t *v = json_object_get(cells, json_string_value(col));
            s_csv_field(v ? json_string_value(v) : "");
        }
        fputs("\r\n", stdout);
    }
    json_decref(rows);
    json_decref(columns);
    json_decref(seen);
}

void samctl_print(samctl_t *ctl, json_t *j)
{
    if (!ctl->csv) {
        samctl_print_json(j);
        return;
    }
    /* A list: its items. One object: its records (the board's rows, the overview's
       groups), or else the object as one row. */
    json_t *records = NULL;
    static const char *const lists[] = {"items", "rows", "groups"};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0] && !json_is_array(records); i++)
        records = json_object_get(j, lists[i]);
    if (json_is_array(records)) {
        s_csv_rows(records);
    } else {
        json_t *one = json_pack("[O]", j);
        s_csv_rows(one);
        json_decref(one);
    }
    json_decref(j);
}

/* ---- ping, help and main -------------------------------------------------------------------- */

/* ping SERVICE [-n COUNT] → a list of the answers, each with its round trip. */
static int s_ping(samctl_t *ctl, const samctl_args_t *a)
{
    const char *service = a->pos[0];
    uint32_t count = samctl_opt(a, "count") ? samctl_u32(a, "count") : 1;
    if (count < 1) return samctl_usage_error(a, "-n: at least 1");
    samctl_list_t list;
    char header[128];
    snprintf(header, sizeof header, "%-12s %-28s %-10s %10s %10s", "SERVICE", "INSTANCE", "VERSION",
             "LAST SEQ", "MS");
    samctl_list_begin(&list, ctl, "answers", header);
    int failed = 0;
    for (uint32_t i = 0; i < count; i++) {
        int64_t t0 = zclock_usecs();
        Samordna__V1__PingReply *rep = (Samordna__V1__PingReply *)samctl_call(
            ctl, service, "ping", NULL, &samordna__v1__ping_reply__descriptor);
        if (!rep) {
            failed++;
            continue;
        }
        double ms = (double)(zclock_usecs() - t0) / 1000.0;
        json_t *j = ctl->json ? json_pack("{s:s, s:s, s:s, s:I, s:f}", "service", rep->service,
                                          "instance", rep->instance, "version", rep->version,
                                          "last_seq", (json_int_t)rep->last_seq, "ms", ms)
                              : NULL;
        if (samctl_list_row(&list, j))
            printf("%-12s %-28s %-10s %10" PRIu64 " %10.3f\n", rep->service, rep->instance,
                   rep->version, rep->last_seq, ms);
        protobuf_c_message_free_unpacked(&rep->base, NULL);
    }
    samctl_list_end(&list, NULL);
    return failed ? 1 : 0;
}

static const samctl_opt_t s_ping_opts[] = {
    {"count", 'n', "COUNT", SAMCTL_COUNT, 0, "how many pings, one after the other (default 1)"},
    {NULL},
};

const samctl_cmd_t samctl_ping_cmd = {
    .name = "ping",
    .args = "SERVICE",
    .about = "Checks that SERVICE answers through the broker: its instance, version, the last\n"
             "sequence number of its outbox, and the round trip.",
    .opts = s_ping_opts,
    .run = s_ping,
};

static const struct s_command *s_find_command(const char *name)
{
    for (size_t i = 0; i < S_NCOMMANDS; i++)
        if (strcmp(s_commands[i].cmd->name, name) == 0) return &s_commands[i];
    return NULL;
}

static void s_commands_list(FILE *f)
{
    fprintf(f, "\nCommands:\n");
    for (size_t i = 0; i < S_NCOMMANDS; i++)
        fprintf(f, "  %-15s %s\n", s_commands[i].cmd->name, s_commands[i].summary);
    fprintf(f, "\n`samctl COMMAND --help` (or `samctl help COMMAND`) tells a command's arguments,\n"
               "options and subcommands.\n");
}

static void s_unknown_command(const char *word)
{
    char shown[64];
    fprintf(stderr, "samctl: unknown command '%s'; the commands are:\n ",
            sam_check_escape(word, 40, shown, sizeof shown));
    for (size_t i = 0; i < S_NCOMMANDS; i++)
        fprintf(stderr, " %s", s_commands[i].cmd->name);
    fprintf(stderr, "\n(samctl --help says what each does)\n");
}

/* help [COMMAND [SUBCOMMAND…]]: the same as `samctl COMMAND SUBCOMMAND… --help`. */
static int s_help_run(samctl_t *ctl, const samctl_args_t *a)
{
    if (a->npos == 0) {
        sam_config_help(ctl->config, stdout);
        s_commands_list(stdout);
        return 0;
    }
    const struct s_command *cmd = s_find_command(a->pos[0]);
    if (!cmd) {
        s_unknown_command(a->pos[0]);
        return 2;
    }
    char *words[SAMCTL_MAX_ARGS + 2];
    int n = 0;
    for (size_t i = 0; i < a->npos; i++)
        words[n++] = (char *)a->pos[i];
    words[n++] = "--help";
    words[n] = NULL;
    return samctl_run(ctl, cmd->cmd, n, words);
}

const samctl_cmd_t samctl_help_cmd = {
    .name = "help",
    .args = "[COMMAND [SUBCOMMAND…]]",
    .about = "Without a command: the global options and the commands. With one: the same as\n"
             "`samctl COMMAND SUBCOMMAND… --help`.",
    .run = s_help_run,
};

int main(int argc, char **argv)
{
    samctl_t ctl = {0};
    ctl.config = sam_config_new("samctl", "COMMAND [SUBCOMMAND] [arguments and options]",
                                "The command-line client of samordna. Global options (below) go "
                                "anywhere on the line,\nbefore or after the command.",
                                samctl_global_options);
    char **globals = calloc((size_t)argc + 1, sizeof *globals);
    char **words = calloc((size_t)argc + 2, sizeof *words);
    if (!ctl.config || !globals || !words) {
        fprintf(stderr, "samctl: out of memory\n");
        return 1;
    }
    /* A word that names a global option is one, wherever it stands, up to "--"; its value is
       the next word unless given with '='. Everything else is the command's, in order. */
    int nglobals = 0, nwords = 0;
    bool help = false, ended = false;
    globals[nglobals++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i];
        if (!ended && strcmp(w, "--") == 0) {
            ended = true;
            if (nwords) words[nwords++] = argv[i]; /* the command's options end here too */
            continue;
        }
        if (!ended && (strcmp(w, "-h") == 0 || strcmp(w, "--help") == 0)) {
            help = true; /* the command's help when there is a command, else samctl's */
            continue;
        }
        if (!ended && strncmp(w, "--", 2) == 0) {
            const char *eq = strchr(w + 2, '=');
            const sam_option_t *o =
                sam_config_find(ctl.config, w + 2, eq ? (size_t)(eq - w - 2) : strlen(w + 2));
            if (o) {
                globals[nglobals++] = argv[i];
                if (o->arg && !eq && i + 1 < argc) globals[nglobals++] = argv[++i];
                continue;
            }
        }
        words[nwords++] = argv[i];
    }
    int rc = sam_config_parse(ctl.config, nglobals, globals);
    if (rc == 0 && nwords == 0) {
        sam_config_help(ctl.config, help ? stdout : stderr);
        s_commands_list(help ? stdout : stderr);
        rc = help ? 1 : -1;
    }
    const struct s_command *cmd = NULL;
    if (rc == 0 && words[0][0] == '-') {
        char shown[64];
        fprintf(stderr,
                "samctl: unknown option '%s' (samctl --help lists the global options; a command's "
                "own follow its word)\n",
                sam_check_escape(words[0], 40, shown, sizeof shown));
        rc = -1;
    } else if (rc == 0 && !(cmd = s_find_command(words[0]))) {
        s_unknown_command(words[0]);
        rc = -1;
    }
    bool ok = true;
    if (rc == 0) {
        ctl.csv = sam_config_flag(ctl.config, "csv");
        /* CSV is made from the JSON records: every command builds those under --csv. */
        ctl.json = ctl.csv || sam_config_flag(ctl.config, "json");
        ctl.timeout_ms = (int)sam_config_int(ctl.config, "timeout-ms", 1, 3600000, &ok);
        ctl.heartbeat_ms = (int)sam_config_int(ctl.config, "broker-heartbeat-ms", 10, 60000, &ok);
        ctl.source = sam_config_get(ctl.config, "source");
        const char *lang = sam_config_get(ctl.config, "lang");
        if (sam_lang_parse(lang, &ctl.lang)) {
            fprintf(stderr, "samctl: --lang must be nb (Norwegian) or en (English), not '%s'\n",
                    lang);
            ok = false;
        }
        samctl_lang = ctl.lang;
        /* samctl logs warnings only unless --log-level was given (on the line or in the
           file): the built-in default, info, is for services. sam_config_get returns the
           table's own default string when the option was not given. */
        const char *level = sam_config_get(ctl.config, "log-level");
        const sam_option_t *lo = sam_config_find(ctl.config, "log-level", strlen("log-level"));
        sam_log_init("samctl", lo && level != lo->def ? (sam_log_level_t)sam_log_level_parse(level)
                                                      : SAM_LOG_WARN);
        /* As the services do: --insecure would silently drop the certificate. */
        if (sam_config_flag(ctl.config, "insecure") &&
            (sam_config_get(ctl.config, "cert") || sam_config_get(ctl.config, "server-key"))) {
            fprintf(stderr, "samctl: --insecure and --cert/--server-key exclude each other\n");
            ok = false;
        }
    }
    if (rc == 0 && ok) {
        if (help) { /* at the end of the command's options: before its "--", if any */
            int at = 1;
            while (at < nwords && strcmp(words[at], "--") != 0)
                at++;
            memmove(words + at + 1, words + at, (size_t)(nwords - at) * sizeof *words);
            words[at] = "--help";
            nwords++;
        }
        rc = samctl_run(&ctl, cmd->cmd, nwords, words);
    } else {
        rc = rc == 1 ? 0 : 2; /* 1: --help or --version was answered */
    }
    sam_client_destroy(&ctl.client);
    sam_config_destroy(&ctl.config);
    free(globals);
    free(words);
    return rc;
}
