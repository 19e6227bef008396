/*  import.c — the core of `samctl import` (see import.h): reading the file, running the
    sections, checking references across the file, publishing the plan pipelined, and the
    summary.

    Why a plan first: a wrong file must leave nothing half-applied. Every section checks its
    part completely before anything is sent, so the only refusals left at publish time are
    those that depend on the services' state (a record registered differently before).
    Why barriers: the events of one batch are applied in order by one service instance, but
    a pilot sent while its municipality is still in flight could reach another instance
    first; waiting for the acknowledgements at a barrier makes the order hold everywhere.
*/
#include "import.h"
#include "samctl.h"

#include "samordna/v1/events.pb-c.h"
#include "samordna/v1/grants.pb-c.h"
#include "samordna/v1/registry.pb-c.h"
#include "sam_service.h"

#include <assert.h>
#include <czmq.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_FORMAT "samordna-fixture/1"
#define S_WINDOW 256      /* events in flight */
#define S_ERRORS_SHOWN 20 /* problems printed before "and N more" */
#define S_RESENDS 1       /* times the events in flight are sent again within --timeout-ms */

/* One event of the plan. */
typedef struct {
    const char *service;
    const char *type;
    const char *key;
    uint8_t *body; /* packed PublishRequest */
    size_t len;
    bool barrier;     /* wait for every earlier event before sending this one */
    const char *path; /* the record's JSON path in the file ("$.awards[0]"), or NULL */
    bool conflict;    /* refused 409: stored before with other content (s_reconcile) */
} s_item_t;

/* A required reference. */
typedef struct {
    const char *kind, *id, *path;
} s_ref_t;

/* A kind's owner, for references not in the file. */
typedef struct {
    const char *kind, *service, *method;
} s_kind_t;

/* The outcome per service and type. */
typedef struct {
    const char *service, *type;
    size_t fresh, dup, refused, unanswered;
    size_t conflicts; /* of the refused: 409, the event's id stored with other content */
    size_t differ;    /* of those: records that differ from the file (s_reconcile) */
    size_t corrected; /* of those: turned into corrections (--apply-changes) */
} s_tally_t;

struct import_t {
    const char *source; /* CloudEvent source: the importing agency */
    zlist_t *arena;     /* every import_alloc'd block */
    s_item_t *items;
    size_t n_items, cap_items;
    bool barrier_next; /* the next event added gets a barrier */
    zhashx_t *defined; /* "kind\x1fid" → path */
    s_ref_t *refs;
    size_t n_refs, cap_refs;
    s_kind_t kinds[16];
    size_t n_kinds;
    size_t errors;
    const char *at;                    /* the record import_each() is at, for its events' items */
    json_t *differences, *corrections; /* what s_reconcile found and did, for the summary */
};

/* ---- building the plan ---------------------------------------------------------------- */

void *import_alloc(import_t *imp, size_t size)
{
    void *p = calloc(1, size ? size : 1);
    if (!p || zlist_append(imp->arena, p) != 0) {
        free(p);
        import_error(imp, "$", "out of memory");
        return NULL;
    }
    return p;
}

static char *s_strdup(import_t *imp, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = import_alloc(imp, n);
    if (d) memcpy(d, s, n);
    return d;
}

const char *import_path(import_t *imp, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    const char *p = s_strdup(imp, buf);
    return p ? p : "$";
}

int import_error(import_t *imp, const char *path, const char *fmt, ...)
{
    if (imp->errors < S_ERRORS_SHOWN) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        fprintf(stderr, "samctl import: %s: %s\n", path, msg);
    }
    imp->errors++;
    return -1;
}

int import_event(import_t *imp, const char *service, const char *type, const char *key,
                 const ProtobufCMessage *payload)
{
    char id[300];
    if ((size_t)snprintf(id, sizeof id, "%s:%s:%s", S_FORMAT, type, key) >= 256)
        return import_error(imp, "$", "event key '%.64s…' is too long", key);
    if (imp->n_items == imp->cap_items) {
        size_t cap = imp->cap_items ? imp->cap_items * 2 : 64;
        s_item_t *items = realloc(imp->items, cap * sizeof *items);
        if (!items) return import_error(imp, "$", "out of memory");
        imp->items = items;
        imp->cap_items = cap;
    }
    samctl_event_t ev; /* the same event and request samctl_publish() sends, packed now */
    if (samctl_event_init(&ev, id, imp->source, type, key, payload) != 0)
        return import_error(imp, "$", "out of memory");
    size_t len = protobuf_c_message_get_packed_size(&ev.request.base);
    uint8_t *body = import_alloc(imp, len);
    if (body) protobuf_c_message_pack(&ev.request.base, body);
    samctl_event_clear(&ev);
    if (!body) return -1;
    s_item_t *it = &imp->items[imp->n_items++];
    it->service = s_strdup(imp, service);
    it->type = s_strdup(imp, type);
    it->key = s_strdup(imp, key);
    it->body = body;
    it->len = len;
    it->barrier = imp->barrier_next;
    it->path = imp->at;
    it->conflict = false;
    imp->barrier_next = false;
    return it->service && it->type && it->key ? 0 : -1;
}

void import_barrier(import_t *imp)
{
    if (imp->n_items) imp->barrier_next = true;
}

static char *s_def_key(import_t *imp, const char *kind, const char *id)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s\x1f%s", kind, id);
    return s_strdup(imp, buf);
}

void import_define(import_t *imp, const char *kind, const char *id, const char *path)
{
    char *k = s_def_key(imp, kind, id);
    if (!k) return;
    const char *before = zhashx_lookup(imp->defined, k);
    if (before) {
        import_error(imp, path, "%s '%s' is already defined at %s", kind, id, before);
        return;
    }
    zhashx_insert(imp->defined, k, (void *)path);
}

void import_require(import_t *imp, const char *kind, const char *id, const char *path)
{
    if (imp->n_refs == imp->cap_refs) {
        size_t cap = imp->cap_refs ? imp->cap_refs * 2 : 64;
        s_ref_t *refs = realloc(imp->refs, cap * sizeof *refs);
        if (!refs) {
            import_error(imp, path, "out of memory");
            return;
        }
        imp->refs = refs;
        imp->cap_refs = cap;
    }
    imp->refs[imp->n_refs++] = (s_ref_t){kind, id, path};
}

void import_kind(import_t *imp, const char *kind, const char *service, const char *method)
{
    for (size_t i = 0; i < imp->n_kinds; i++)
        if (strcmp(imp->kinds[i].kind, kind) == 0) return;
    if (imp->n_kinds < sizeof imp->kinds / sizeof imp->kinds[0])
        imp->kinds[imp->n_kinds++] = (s_kind_t){kind, service, method};
}

/* ---- reading JSON ----------------------------------------------------------------------- */

static bool s_is_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

static bool s_is_date(const char *s)
{
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-') return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)s[i])) return false;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return y >= 1800 && m >= 1 && m <= 12 && d >= 1 && d <= days[m - 1] + (m == 2 && leap);
}

const char *import_str(import_t *imp, json_t *obj, const char *path, const char *name,
                       unsigned flags)
{
    json_t *v = json_object_get(obj, name);
    if (!v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0)) {
        if (flags & IMPORT_REQUIRED) {
            import_error(imp, import_path(imp, "%s.%s", path, name), "required");
            return NULL;
        }
        return "";
    }
    if (!json_is_string(v)) {
        import_error(imp, import_path(imp, "%s.%s", path, name), "must be a string");
        return NULL;
    }
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v)) {
        import_error(imp, import_path(imp, "%s.%s", path, name), "holds a NUL character");
        return NULL;
    }
    if ((flags & IMPORT_ID) && !s_is_id(s)) {
        import_error(imp, import_path(imp, "%s.%s", path, name),
                     "'%.80s' is not an id (1 to 64 of a-z, 0-9 and '-')", s);
        return NULL;
    }
    if ((flags & IMPORT_DATE) && !s_is_date(s)) {
        import_error(imp, import_path(imp, "%s.%s", path, name), "'%.40s' is not a date YYYY-MM-DD",
                     s);
        return NULL;
    }
    if ((flags & IMPORT_NUMBER) && !(strlen(s) == 4 && strspn(s, "0123456789") == 4)) {
        import_error(imp, import_path(imp, "%s.%s", path, name),
                     "'%.40s' is not a municipality number (four digits)", s);
        return NULL;
    }
    return s;
}

bool import_int(import_t *imp, json_t *obj, const char *path, const char *name, bool required,
                int64_t min, int64_t max, int64_t *out)
{
    json_t *v = json_object_get(obj, name);
    if (!v || json_is_null(v)) {
        if (required)
            return import_error(imp, import_path(imp, "%s.%s", path, name), "required"), false;
        return true;
    }
    if (!json_is_integer(v))
        return import_error(imp, import_path(imp, "%s.%s", path, name), "must be a whole number"),
               false;
    json_int_t i = json_integer_value(v);
    if (i < min || i > max)
        return import_error(imp, import_path(imp, "%s.%s", path, name), "%lld is not in %lld..%lld",
                            (long long)i, (long long)min, (long long)max),
               false;
    *out = (int64_t)i;
    return true;
}

json_t *import_array(import_t *imp, json_t *obj, const char *path, const char *name, bool required)
{
    json_t *v = json_object_get(obj, name);
    if (!v || json_is_null(v)) {
        if (required) import_error(imp, import_path(imp, "%s.%s", path, name), "required");
        return NULL;
    }
    if (!json_is_array(v)) {
        import_error(imp, import_path(imp, "%s.%s", path, name), "must be an array");
        return NULL;
    }
    return v;
}

bool import_strings(import_t *imp, json_t *obj, const char *path, const char *name, char ***out,
                    size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t before = imp->errors;
    json_t *arr = import_array(imp, obj, path, name, false);
    if (!arr) return imp->errors == before;
    size_t len = json_array_size(arr);
    char **list = import_alloc(imp, (len ? len : 1) * sizeof *list);
    if (!list) return false;
    for (size_t i = 0; i < len; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_string(v) || json_string_length(v) == 0) {
            import_error(imp, import_path(imp, "%s.%s[%zu]", path, name, i),
                         "must be a non-empty string");
            return false;
        }
        list[i] = (char *)json_string_value(v);
    }
    *out = list;
    *n = len;
    return true;
}

bool import_object(import_t *imp, json_t *obj, const char *path, const char *known)
{
    if (!json_is_object(obj)) return import_error(imp, path, "must be an object"), false;
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        size_t kl = strlen(key);
        bool found = false;
        for (const char *p = known; *p && !found;) {
            size_t wl = strcspn(p, " ");
            found = wl == kl && strncmp(p, key, kl) == 0;
            p += wl;
            p += strspn(p, " ");
        }
        if (!found)
            return import_error(imp, import_path(imp, "%s.%s", path, key),
                                "unknown member (known: %s)", known),
                   false;
    }
    return true;
}

bool import_record(import_t *imp, json_t *obj, const char *path, const char *known,
                   ProtobufCMessage *m, const import_field_t *fields)
{
    if (known && !import_object(imp, obj, path, known)) return false;
    for (const import_field_t *f = fields; f->name; f++) {
        const ProtobufCFieldDescriptor *d =
            protobuf_c_message_descriptor_get_field_by_name(m->descriptor, f->name);
        assert(d && d->type == PROTOBUF_C_TYPE_STRING && "an import table names no string field");
        char *at = (char *)m + d->offset;
        if (d->label == PROTOBUF_C_LABEL_REPEATED) {
            if (!import_strings(imp, obj, path, f->name, (char ***)at,
                                (size_t *)((char *)m + d->quantifier_offset)))
                return false;
        } else if (!(*(const char **)at = import_str(imp, obj, path, f->name, f->flags))) {
            return false;
        }
    }
    return true;
}

void import_each(import_t *imp, json_t *root, const char *name, import_item_fn fn, void *arg)
{
    json_t *arr = import_array(imp, root, "$", name, false), *o;
    size_t i;
    json_array_foreach(arr, i, o)
    {
        imp->at = import_path(imp, "$.%s[%zu]", name, i);
        fn(imp, o, imp->at, i, arg);
    }
    imp->at = NULL;
}

int import_enum(import_t *imp, const ProtobufCEnumDescriptor *d, const char *word, const char *path)
{
    char name[128], prefix[64];
    size_t n = 0;
    for (const char *p = d->short_name; *p && n + 2 < sizeof prefix; p++) {
        if (p != d->short_name && isupper((unsigned char)*p)) prefix[n++] = '_';
        prefix[n++] = (char)toupper((unsigned char)*p);
    }
    prefix[n++] = '_';
    prefix[n] = '\0';
    snprintf(name, sizeof name, "%s", prefix);
    for (size_t i = 0; word[i] && n + 1 < sizeof name; i++)
        name[n++] = (char)toupper((unsigned char)word[i]);
    name[n] = '\0';
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(d, name);
    if (v && v->value != 0 && strlen(word) < 60) return v->value;
    char words[512] = "";
    for (unsigned i = 0; i < d->n_values; i++) {
        if (d->values[i].value == 0) continue;
        size_t at = strlen(words);
        snprintf(words + at, sizeof words - at, "%s", at ? ", " : "");
        at = strlen(words);
        for (const char *p = d->values[i].name + strlen(prefix); *p && at + 1 < sizeof words; p++)
            words[at++] = (char)tolower((unsigned char)*p);
        words[at] = '\0';
    }
    import_error(imp, path, "'%.60s' is not one of: %s", word, words);
    return -1;
}

/* ---- references ------------------------------------------------------------------------- */

/* Checks every required reference: in the file, or asked of its owner once per id. */
static void s_check_refs(import_t *imp, samctl_t *ctl)
{
    zhashx_t *asked = zhashx_new(); /* key → "y" exists, "n" does not */
    for (size_t i = 0; i < imp->n_refs; i++) {
        const s_ref_t *r = &imp->refs[i];
        char *k = s_def_key(imp, r->kind, r->id);
        if (!k || zhashx_lookup(imp->defined, k)) continue;
        const s_kind_t *owner = NULL;
        for (size_t j = 0; j < imp->n_kinds; j++)
            if (strcmp(imp->kinds[j].kind, r->kind) == 0) owner = &imp->kinds[j];
        if (!owner) {
            import_error(imp, r->path, "unknown %s '%s' (not in the file)", r->kind, r->id);
            continue;
        }
        const char *known = zhashx_lookup(asked, k);
        if (!known) {
            sam_result_t res = {0};
            Samordna__V1__GetRequest req = SAMORDNA__V1__GET_REQUEST__INIT;
            req.id = (char *)r->id;
            uint32_t code = samctl_request(ctl, owner->service, owner->method, &req.base, NULL,
                                           NULL, true, &res);
            if (code == SAM_OK || code == SAM_NOT_FOUND) {
                known = code == SAM_OK ? "y" : "n";
                zhashx_insert(asked, k, (void *)known);
            } else {
                import_error(imp, r->path,
                             "%s '%s' is not in the file and %s could not be asked: %u %s", r->kind,
                             r->id, owner->service, code,
                             res.message[0] ? res.message : sam_status_name(code));
            }
            sam_result_clear(&res);
            if (!known) continue;
        }
        if (strcmp(known, "n") == 0)
            import_error(imp, r->path, "unknown %s '%s' (neither in the file nor in the %s)",
                         r->kind, r->id, owner->service);
    }
    zhashx_destroy(&asked);
}

/* ---- publishing ------------------------------------------------------------------------- */

/* How a record of a type stored with other content is compared and corrected (below). */
typedef struct s_fix_t s_fix_t;
static const s_fix_t *s_fix_of(const char *type);

static s_tally_t *s_tally(s_tally_t *t, size_t *n, const s_item_t *it)
{
    for (size_t i = 0; i < *n; i++)
        if (t[i].type == it->type ||
            (strcmp(t[i].type, it->type) == 0 && strcmp(t[i].service, it->service) == 0))
            return &t[i];
    t[*n] = (s_tally_t){.service = it->service, .type = it->type};
    return &t[(*n)++];
}

static void s_progress(size_t done, size_t total, bool tty, bool final)
{
    static size_t shown_step = (size_t)-1;
    if (tty) {
        if (final || done % 16 == 0)
            fprintf(stderr, "\rimport: %zu/%zu events acknowledged%s", done, total,
                    final ? "\n" : "");
        return;
    }
    size_t step = total ? done * 4 / total : 4;
    if (final || step != shown_step) {
        fprintf(stderr, "import: %zu/%zu events acknowledged\n", done, total);
        shown_step = step;
    }
}

/* Publishes the plan; fills the tallies. Returns 0 when every event was answered. */
static int s_publish(import_t *imp, samctl_t *ctl, s_tally_t *tally, size_t *n_tally)
{
    sam_client_t *client = samctl_client(ctl);
    if (!client) return -1;
    struct {
        uint64_t rid[S_RESENDS + 1]; /* the request ids of every attempt: any answer counts */
        size_t item;
    } flight[S_WINDOW];
    /* --timeout-ms bounds the silence: the events in flight are sent again after each slice of
       it without any answer, and the import gives up when the whole of it has passed. */
    int slice = ctl->timeout_ms / (S_RESENDS + 1);
    if (slice < 1) slice = 1;
    size_t inflight = 0, next = 0, answered = 0;
    int resends = 0; /* in a row, without any answer between */
    bool tty = isatty(STDERR_FILENO);
    int rc = 0;
    for (size_t i = 0; i < imp->n_items; i++)
        s_tally(tally, n_tally, &imp->items[i]);
    s_progress(0, imp->n_items, tty, false);
    bool stop = false; /* a service is unavailable: send nothing more */
    while (answered < imp->n_items && !(stop && inflight == 0)) {
        while (!stop && next < imp->n_items && inflight < S_WINDOW &&
               !(imp->items[next].barrier && inflight > 0)) {
            const s_item_t *it = &imp->items[next];
            uint64_t rid =
                sam_client_send(client, it->service, SAMCTL_PUBLISH_METHOD, it->body, it->len);
            if (!rid) {
                fprintf(stderr, "samctl import: could not send %s %s\n", it->type, it->key);
                rc = -1;
                goto out;
            }
            memset(flight[inflight].rid, 0, sizeof flight[inflight].rid);
            flight[inflight].rid[0] = rid;
            flight[inflight].item = next++;
            inflight++;
        }
        sam_result_t res = {0};
        if (sam_client_recv(client, slice, &res) != 0) {
            sam_result_clear(&res);
            /* A service restarted, or the broker lost a worker with our requests: send what
               is in flight again. Publishes are idempotent, a repeat is a duplicate. */
            if (resends == S_RESENDS || stop) {
                fprintf(stderr,
                        "%ssamctl import: no answer within %d ms for %zu events in flight\n",
                        tty ? "\n" : "", slice * (resends + 1), inflight);
                rc = -1;
                goto out;
            }
            resends++;
            fprintf(stderr, "%ssamctl import: no answer within %d ms, sending %zu events again\n",
                    tty ? "\n" : "", slice * resends, inflight);
            for (size_t i = 0; i < inflight; i++) {
                const s_item_t *it = &imp->items[flight[i].item];
                flight[i].rid[resends] =
                    sam_client_send(client, it->service, SAMCTL_PUBLISH_METHOD, it->body, it->len);
                if (!flight[i].rid[resends]) {
                    fprintf(stderr, "samctl import: could not send %s %s\n", it->type, it->key);
                    rc = -1;
                    goto out;
                }
            }
            continue;
        }
        size_t slot = inflight;
        for (size_t i = 0; i < inflight && slot == inflight; i++)
            for (int k = 0; k <= S_RESENDS; k++)
                if (flight[i].rid[k] && flight[i].rid[k] == res.id) slot = i;
        if (slot == inflight) {
            /* The second answer to an event sent twice (the first one counted): it says
               nothing more about the event, but a 503 still says the service is gone. */
            if (res.code == SAM_UNAVAILABLE && !stop) {
                stop = true;
                fprintf(stderr,
                        "%ssamctl import: unavailable (%s); sending nothing more (run the "
                        "import again to finish it)\n",
                        tty ? "\n" : "", res.message);
            }
            sam_result_clear(&res);
            continue;
        }
        resends = 0;
        const s_item_t *it = &imp->items[flight[slot].item];
        flight[slot] = flight[--inflight];
        s_tally_t *t = s_tally(tally, n_tally, it);
        if (res.code == SAM_OK) {
            Samordna__V1__PublishReply *pr =
                samordna__v1__publish_reply__unpack(NULL, res.body_len, res.body);
            if (pr && pr->duplicate)
                t->dup++;
            else
                t->fresh++;
            if (pr) protobuf_c_message_free_unpacked(&pr->base, NULL);
        } else {
            if (res.code == SAM_UNAVAILABLE && !stop) {
                stop = true;
                fprintf(stderr,
                        "%ssamctl import: %s is unavailable; sending nothing more (run the "
                        "import again to finish it)\n",
                        tty ? "\n" : "", it->service);
            }
            t->refused++;
            if (res.code == SAM_CONFLICT) {
                t->conflicts++;
                imp->items[it - imp->items].conflict = true;
            }
            /* a record that reconciles is reported with its differences (s_reconcile) */
            if (res.code != SAM_CONFLICT || !s_fix_of(it->type))
                fprintf(stderr, "%ssamctl import: refused %s %s: %u %s: %s\n", tty ? "\n" : "",
                        it->type, it->key, res.code, sam_status_name(res.code), res.message);
        }
        sam_result_clear(&res);
        answered++;
        s_progress(answered, imp->n_items, tty, answered == imp->n_items);
    }
    if (stop) rc = -1;
out:
    /* What was never answered. */
    for (size_t i = 0; i < inflight; i++)
        s_tally(tally, n_tally, &imp->items[flight[i].item])->unanswered++;
    for (size_t i = next; i < imp->n_items; i++)
        s_tally(tally, n_tally, &imp->items[i])->unanswered++;
    return rc;
}

/* ---- reconciling: a record stored with other content ------------------------------------ */

/*  A record the file holds and the store holds differently is refused 409 when imported (its
    event id was taken by the first version). s_reconcile() then reads the record as it is
    stored now — the first version and every correction since — and compares it with the
    file, field by field, as each row below says. Without --apply-changes the differences are
    listed and nothing changes; with it each record's differences become one correction
    event of the record's owner, which keeps the first version in the history. A record the
    file holds as it is stored now (corrected before) is "already" there. */

/* The correction of one record: its payload published as `type`. 0, or 1 after printing. */
typedef int (*s_correct_fn)(samctl_t *ctl, const s_fix_t *fix, const char *file,
                            const ProtobufCMessage *in_file, const ProtobufCMessage *stored,
                            uint64_t *seq);

struct s_fix_t {
    const char *type;    /* the import's event type, whose record is compared */
    const char *service; /* the record's owner */
    const char *get;     /* its query by id: request field 1 the id */
    const ProtobufCMessageDescriptor *request, *reply;
    const char *record; /* the reply's field holding the record; NULL: the reply is it */
    const ProtobufCMessageDescriptor *payload; /* the record's (and the event's) message */
    /* The fields compared, in order: "name", or for a list of messages "name:key,key"
       (compared by those keys of each item); `fields` the correction changes, `kept` those
       it cannot (a record differing there is listed and left refused). */
    const char *fields, *kept;
    const char *correction; /* the correction's event type */
    s_correct_fn correct;
};

/* Publishes a correction without printing (the import prints its own report). */
static int s_publish_quiet(samctl_t *ctl, const char *service, const char *type,
                           const char *subject, const ProtobufCMessage *payload, uint64_t *seq)
{
    samctl_event_t ev;
    if (samctl_event_init(&ev, NULL, ctl->source && ctl->source[0] ? ctl->source : "fmov", type,
                          subject, payload) != 0) {
        fprintf(stderr, "samctl import: out of memory\n");
        return 1;
    }
    sam_result_t res = {0};
    ProtobufCMessage *reply = NULL;
    uint32_t code = samctl_request(ctl, service, SAMCTL_PUBLISH_METHOD, &ev.request.base,
                                   &samordna__v1__publish_reply__descriptor, &reply, true, &res);
    if (code == SAM_OK && reply)
        *seq = ((Samordna__V1__PublishReply *)reply)->seq;
    else
        fprintf(stderr, "samctl import: correction %s %s refused: %u %s: %s\n", type, subject, code,
                sam_status_name(code), res.message[0] ? res.message : "");
    if (reply) protobuf_c_message_free_unpacked(reply, NULL);
    sam_result_clear(&res);
    samctl_event_clear(&ev);
    return code == SAM_OK ? 0 : 1;
}

/* A pilot: the file's record replaces it (no.samordna.registry.pilot.updated). */
static int s_correct_pilot(samctl_t *ctl, const s_fix_t *fix, const char *file,
                           const ProtobufCMessage *in_file, const ProtobufCMessage *stored,
                           uint64_t *seq)
{
    (void)file, (void)stored;
    const Samordna__V1__Pilot *p = (const Samordna__V1__Pilot *)in_file;
    return s_publish_quiet(ctl, fix->service, fix->correction, p->id, in_file, seq);
}

/* An award: amended to the file's amount, shares, purpose and dates. */
static int s_correct_award(samctl_t *ctl, const s_fix_t *fix, const char *file,
                           const ProtobufCMessage *in_file, const ProtobufCMessage *stored,
                           uint64_t *seq)
{
    (void)stored;
    const Samordna__V1__Award *a = (const Samordna__V1__Award *)in_file;
    char reason[600];
    snprintf(reason, sizeof reason, "samctl import --apply-changes %s", file);
    Samordna__V1__AwardAmendment am = SAMORDNA__V1__AWARD_AMENDMENT__INIT;
    am.award = a->id;
    am.amount_ore = a->amount_ore;
    am.funders = a->funders;
    am.n_funders = a->n_funders;
    am.purpose = a->purpose;
    am.report_due = a->report_due;
    am.decided = a->decided;
    am.reason = reason;
    return s_publish_quiet(ctl, fix->service, fix->correction, a->id, &am.base, seq);
}

/* An agency: renamed to the file's name, the stored one kept as a former name. */
static int s_correct_agency(samctl_t *ctl, const s_fix_t *fix, const char *file,
                            const ProtobufCMessage *in_file, const ProtobufCMessage *stored,
                            uint64_t *seq)
{
    (void)file, (void)stored;
    const Samordna__V1__Agency *a = (const Samordna__V1__Agency *)in_file;
    Samordna__V1__AgencyRename r = SAMORDNA__V1__AGENCY_RENAME__INIT;
    r.agency = a->id;
    r.name = a->name;
    return s_publish_quiet(ctl, fix->service, fix->correction, a->id, &r.base, seq);
}

static const s_fix_t s_fixes[] = {
    {"no.samordna.registry.pilot.registered", "registry", "registry.pilots.get",
     &samordna__v1__get_request__descriptor, &samordna__v1__pilot__descriptor, NULL,
     &samordna__v1__pilot__descriptor,
     "challenge investment_leader investment_team contact_person municipal_steering_group aims",
     "programme municipality", "no.samordna.registry.pilot.updated", s_correct_pilot},
    {"no.samordna.grants.award.granted", "grants", "grants.awards.get",
     &samordna__v1__grants_get_request__descriptor, &samordna__v1__award_detail__descriptor,
     "award", &samordna__v1__award__descriptor,
     "amount_ore funders:agency,amount_ore purpose report_due decided", "scheme recipient pilot",
     "no.samordna.grants.award.amended", s_correct_award},
    {"no.samordna.registry.agency.registered", "registry", "registry.agencies.get",
     &samordna__v1__get_request__descriptor, &samordna__v1__agency__descriptor, NULL,
     &samordna__v1__agency__descriptor, "name", "kind roles unit",
     "no.samordna.registry.agency.renamed", s_correct_agency},
};

static const s_fix_t *s_fix_of(const char *type)
{
    for (size_t k = 0; k < sizeof s_fixes / sizeof s_fixes[0]; k++)
        if (strcmp(s_fixes[k].type, type) == 0) return &s_fixes[k];
    return NULL;
}

/* One field of a record's JSON, a list of messages reduced to `keys` ("agency,amount_ore"). */
static json_t *s_field(json_t *rec, const char *name, const char *keys)
{
    json_t *v = json_object_get(rec, name);
    if (!keys || !json_is_array(v)) return json_incref(v ? v : json_null());
    json_t *out = json_array(), *item;
    size_t i;
    json_array_foreach(v, i, item)
    {
        json_t *o = json_object();
        for (const char *k = keys; *k;) {
            size_t n = strcspn(k, ",");
            char key[64];
            snprintf(key, sizeof key, "%.*s", (int)n, k);
            json_t *kv = json_object_get(item, key);
            json_object_set(o, key, kv ? kv : json_null());
            k += n + (k[n] == ',');
        }
        json_array_append_new(out, o);
    }
    return out;
}

/*  Compares the file's record with the stored one: each difference printed (text) or added
    to imp->differences, with the record's path, and counted; those in fix->kept, which no
    correction of the import changes, also in *kept. Returns how many in all. */
static size_t s_differences(import_t *imp, samctl_t *ctl, const s_item_t *it, const s_fix_t *fix,
                            const ProtobufCMessage *in_file, const ProtobufCMessage *stored,
                            size_t *kept)
{
    json_t *f = samctl_json_message(in_file), *st = samctl_json_message(stored);
    size_t n = 0;
    char all[512];
    snprintf(all, sizeof all, "%s %s", fix->fields, fix->kept);
    size_t n_fixed = strlen(fix->fields);
    *kept = 0;
    for (const char *p = all; *p;) {
        bool fixed = (size_t)(p - all) < n_fixed;
        size_t wl = strcspn(p, " ");
        char word[128];
        snprintf(word, sizeof word, "%.*s", (int)wl, p);
        p += wl + (p[wl] == ' ');
        char *keys = strchr(word, ':');
        if (keys) *keys++ = 0;
        json_t *a = s_field(st, word, keys), *b = s_field(f, word, keys);
        if (!json_equal(a, b)) {
            n++;
            if (!fixed) ++*kept;
            char *sv = json_dumps(a, JSON_ENCODE_ANY | JSON_COMPACT | JSON_PRESERVE_ORDER);
            char *fv = json_dumps(b, JSON_ENCODE_ANY | JSON_COMPACT | JSON_PRESERVE_ORDER);
            const char *path = it->path ? it->path : "$";
            if (ctl->json)
                json_array_append_new(imp->differences,
                                      json_pack("{s:s,s:s,s:s,s:s,s:O,s:O,s:b}", "path", path,
                                                "type", it->type, "key", it->key, "field", word,
                                                "stored", a, "file", b, "correctable", fixed));
            else
                printf("%s.%s (%s %s): stored %s, file %s%s\n", path, word, it->type, it->key,
                       sv ? sv : "?", fv ? fv : "?", fixed ? "" : " (not corrected by import)");
            free(sv);
            free(fv);
        }
        json_decref(a);
        json_decref(b);
    }
    json_decref(f);
    json_decref(st);
    return n;
}

/*  Every item refused 409: compared with the stored record where a row of s_fixes says how,
    corrected with --apply-changes. The tallies move: a record the file holds as stored is
    "already", one that differs stays refused (counted in differ) unless corrected. Returns
    -1 when a record could not be read or a correction was refused, else 0. */
static int s_reconcile(import_t *imp, samctl_t *ctl, const char *file, bool apply, s_tally_t *tally,
                       size_t *n_tally)
{
    int rc = 0;
    for (size_t i = 0; i < imp->n_items; i++) {
        const s_item_t *it = &imp->items[i];
        if (!it->conflict) continue;
        const s_fix_t *fix = s_fix_of(it->type);
        if (!fix) continue; /* refused as it is: its 409 named what differs */
        s_tally_t *t = s_tally(tally, n_tally, it);
        /* the file's record, from the event planned for it */
        Samordna__V1__PublishRequest *pr =
            samordna__v1__publish_request__unpack(NULL, it->len, it->body);
        size_t len = 0;
        const uint8_t *data = pr && pr->event ? sam_event_data(pr->event, &len) : NULL;
        ProtobufCMessage *in_file =
            data ? protobuf_c_message_unpack(fix->payload, NULL, len, data) : NULL;
        if (pr) protobuf_c_message_free_unpacked(&pr->base, NULL);
        /* the stored record */
        ProtobufCMessage *req = calloc(1, fix->request->sizeof_message), *reply = NULL;
        if (req) {
            protobuf_c_message_init(fix->request, req);
            *(const char **)((char *)req +
                             protobuf_c_message_descriptor_get_field_by_name(fix->request, "id")
                                 ->offset) = it->key;
        }
        sam_result_t res = {0};
        uint32_t code = req && in_file ? samctl_request(ctl, fix->service, fix->get, req,
                                                        fix->reply, &reply, true, &res)
                                       : SAM_INTERNAL;
        const ProtobufCMessage *stored = reply;
        size_t kept = 0;
        if (reply && fix->record)
            stored = *(ProtobufCMessage **)((char *)reply +
                                            protobuf_c_message_descriptor_get_field_by_name(
                                                fix->reply, fix->record)
                                                ->offset);
        if (code != SAM_OK || !stored) {
            fprintf(stderr, "samctl import: %s %s could not be read from %s to compare: %u %s\n",
                    it->type, it->key, fix->service, code,
                    res.message[0] ? res.message : sam_status_name(code));
            rc = -1;
        } else if (s_differences(imp, ctl, it, fix, in_file, stored, &kept) == 0) {
            t->refused--, t->conflicts--, t->dup++; /* as the file says already */
        } else if (kept) {
            t->differ++;
            fprintf(stderr,
                    "samctl import: %s %s differs where no correction of the import reaches "
                    "(marked on stdout); not changed: correct it with samctl, or fix the file\n",
                    it->type, it->key);
            if (apply) rc = -1;
        } else {
            t->differ++;
            if (!apply)
                fprintf(stderr,
                        "samctl import: %s %s differs from what is stored (listed on stdout); "
                        "not changed\n",
                        it->type, it->key);
            uint64_t seq = 0;
            if (apply && fix->correct(ctl, fix, file, in_file, stored, &seq) == 0) {
                t->refused--, t->conflicts--, t->corrected++;
                if (ctl->json)
                    json_array_append_new(imp->corrections,
                                          json_pack("{s:s,s:s,s:s,s:s,s:I}", "type", it->type,
                                                    "key", it->key, "correction", fix->correction,
                                                    "service", fix->service, "seq",
                                                    (json_int_t)seq));
                else
                    printf("corrected %s %s: %s, seq %llu\n", it->type, it->key, fix->correction,
                           (unsigned long long)seq);
            } else if (apply) {
                rc = -1;
            }
        }
        sam_result_clear(&res);
        if (reply) protobuf_c_message_free_unpacked(reply, NULL);
        if (in_file) protobuf_c_message_free_unpacked(in_file, NULL);
        free(req);
    }
    return rc;
}

static void s_summary(samctl_t *ctl, import_t *imp, const char *file, const s_tally_t *t, size_t n,
                      bool sent)
{
    size_t fresh = 0, dup = 0, refused = 0, unanswered = 0, events = 0, differ = 0, corrected = 0;
    for (size_t i = 0; i < n; i++) {
        fresh += t[i].fresh;
        dup += t[i].dup;
        refused += t[i].refused;
        unanswered += t[i].unanswered;
        differ += t[i].differ;
        corrected += t[i].corrected;
    }
    events = fresh + dup + refused + unanswered + corrected;
    if (ctl->json) {
        json_t *root = json_object(), *types = json_array();
        json_object_set_new(root, "file", json_string(file));
        json_object_set_new(root, "sent", json_boolean(sent));
        json_object_set_new(root, "events", json_integer((json_int_t)events));
        json_object_set_new(root, "new", json_integer((json_int_t)fresh));
        json_object_set_new(root, "already", json_integer((json_int_t)dup));
        json_object_set_new(root, "refused", json_integer((json_int_t)refused));
        json_object_set_new(root, "unanswered", json_integer((json_int_t)unanswered));
        json_object_set_new(root, "differ", json_integer((json_int_t)differ));
        json_object_set_new(root, "corrected", json_integer((json_int_t)corrected));
        json_object_set(root, "differences", imp->differences);
        json_object_set(root, "corrections", imp->corrections);
        for (size_t i = 0; i < n; i++) {
            json_t *o = json_object();
            json_object_set_new(o, "service", json_string(t[i].service));
            json_object_set_new(o, "type", json_string(t[i].type));
            json_object_set_new(o, "new", json_integer((json_int_t)t[i].fresh));
            json_object_set_new(o, "already", json_integer((json_int_t)t[i].dup));
            json_object_set_new(o, "refused", json_integer((json_int_t)t[i].refused));
            json_object_set_new(o, "unanswered", json_integer((json_int_t)t[i].unanswered));
            json_object_set_new(o, "corrected", json_integer((json_int_t)t[i].corrected));
            json_array_append_new(types, o);
        }
        json_object_set_new(root, "types", types);
        samctl_print_json(root);
        return;
    }
    if (!sent) {
        printf("%-10s %-46s %8s\n", "service", "type", "planned");
        for (size_t i = 0; i < n; i++)
            printf("%-10s %-46s %8zu\n", t[i].service, t[i].type, t[i].unanswered);
        printf("%s: checked, %zu events planned, nothing sent (--dry-run)\n", file, events);
        return;
    }
    printf("%-10s %-46s %6s %8s %8s %9s\n", "service", "type", "new", "already", "refused",
           "corrected");
    for (size_t i = 0; i < n; i++)
        printf("%-10s %-46s %6zu %8zu %8zu %9zu%s\n", t[i].service, t[i].type, t[i].fresh, t[i].dup,
               t[i].refused, t[i].corrected, t[i].unanswered ? "  (unanswered)" : "");
    printf("%-10s %-46s %6zu %8zu %8zu %9zu\n", "total", "", fresh, dup, refused, corrected);
    if (unanswered)
        printf("%s: %zu events were not answered; run the import again to finish it\n", file,
               unanswered);
}

/* ---- the command -------------------------------------------------------------------------- */

static const struct {
    const char *name;
    int (*fn)(import_t *, json_t *);
} s_sections[] = {
#define X(name, fn) {name, fn},
#include "import_sections.def"
#undef X
};

/* import [--dry-run] FILE → checks the fixture file, publishes its events, prints a summary. */
static int s_import(samctl_t *ctl, const samctl_args_t *a)
{
    const char *file = a->pos[0];
    bool dry = samctl_flag(a, "dry-run"), apply = samctl_flag(a, "apply-changes");
    if (dry && apply)
        return samctl_usage_error(a, "--dry-run sends nothing: not with --apply-changes");

    json_error_t jerr;
    json_t *root = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        fprintf(stderr, "samctl import: %s:%d:%d: %s\n", file, jerr.line, jerr.column, jerr.text);
        return 1;
    }
    import_t imp = {.source = ctl->source && ctl->source[0] ? ctl->source : "fmov"};
    imp.arena = zlist_new();
    imp.defined = zhashx_new();
    imp.differences = json_array();
    imp.corrections = json_array();
    int rc = 1;
    if (!json_is_object(root)) {
        import_error(&imp, "$", "must be an object");
        goto done;
    }
    json_t *fmt = json_object_get(root, "format");
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), S_FORMAT) != 0) {
        import_error(&imp, "$.format", "must be \"%s\"", S_FORMAT);
        goto done;
    }
    for (size_t i = 0; i < sizeof s_sections / sizeof s_sections[0]; i++) {
        s_sections[i].fn(&imp, root);
        import_barrier(&imp);
    }
    if (imp.errors == 0) s_check_refs(&imp, ctl);
    if (imp.errors) {
        if (imp.errors > S_ERRORS_SHOWN)
            fprintf(stderr, "samctl import: and %zu more problems\n", imp.errors - S_ERRORS_SHOWN);
        fprintf(stderr, "samctl import: %s refused, nothing was sent (%zu problem%s)\n", file,
                imp.errors, imp.errors == 1 ? "" : "s");
        goto done;
    }
    s_tally_t *tally = calloc(imp.n_items + 1, sizeof *tally);
    size_t n_tally = 0;
    if (!tally) goto done;
    int prc = 0;
    if (dry) {
        for (size_t i = 0; i < imp.n_items; i++)
            s_tally(tally, &n_tally, &imp.items[i])->unanswered++;
    } else {
        prc = s_publish(&imp, ctl, tally, &n_tally);
        if (prc == 0 && s_reconcile(&imp, ctl, file, apply, tally, &n_tally) != 0) prc = -1;
    }
    s_summary(ctl, &imp, file, tally, n_tally, !dry);
    rc = prc != 0 ? 1 : 0;
    size_t conflicts = 0, differ = 0;
    for (size_t i = 0; i < n_tally; i++) {
        if (tally[i].refused || (!dry && tally[i].unanswered)) rc = 1;
        conflicts += tally[i].conflicts;
        differ += tally[i].differ - tally[i].corrected;
    }
    /* A record of the file stored before with other content is refused (409), never merged
       or overwritten: say so once, beside the refusals and differences that name each one. */
    if (conflicts)
        fprintf(stderr,
                "samctl import: %zu record%s from what is stored under the same id; "
                "nothing of %s was changed%s\n",
                conflicts, conflicts == 1 ? " differs" : "s differ", conflicts == 1 ? "it" : "them",
                differ && !apply ? " (samctl import --apply-changes FILE turns the differences "
                                   "listed into corrections)"
                                 : "");
    free(tally);
done:
    free(imp.items);
    free(imp.refs);
    zhashx_destroy(&imp.defined);
    for (void *p = zlist_first(imp.arena); p; p = zlist_next(imp.arena))
        free(p);
    zlist_destroy(&imp.arena);
    json_decref(root);
    json_decref(imp.differences);
    json_decref(imp.corrections);
    return rc;
}

static const samctl_opt_t s_import_opts[] = {
    {"dry-run", 0, NULL, SAMCTL_TEXT, 0, "check the file, the references and plan; send nothing"},
    {"apply-changes", 0, NULL, SAMCTL_TEXT, 0,
     "turn each difference from a stored record into a correction event (pilots, awards, "
     "agencies' names)"},
    {NULL},
};

const samctl_cmd_t samctl_import_cmd = {
    .name = "import",
    .args = "FILE",
    .about =
        "Loads a fixture file (format samordna-fixture/1, e.g. deploy/examples/ostfold-2019.json)\n"
        "into every service that owns a part of it. The whole file is checked first, references\n"
        "across it included, and nothing is sent when anything is wrong. Events are published\n"
        "in dependency order with deterministic ids, so importing again changes nothing. The\n"
        "summary says per service and type how many were new, already there, or refused.\n"
        "A record stored before with other content is refused (409) and never overwritten: its\n"
        "differences are listed (JSON path, stored value, file value) and nothing changes;\n"
        "with --apply-changes each record's differences become one correction event of its\n"
        "owner (a pilot updated, an award amended, an agency renamed), reported, with the\n"
        "first version kept in the history. Running it again then finds nothing to do.",
    .opts = s_import_opts,
    .run = s_import,
};
