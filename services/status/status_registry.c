/*  status_registry.c — the status service's projection of the registry.

    Status events name pilots, agencies and municipalities the registry owns. The service
    never calls across the broker inside its write transaction; instead it keeps, in its own
    "registry" table, the few facts it needs (a pilot's municipality, challenge, investment
    leader and team; agency and municipality names), fed from the registry's outbox:

      tick:    the common follower (common/sam_follow.h; --registry names the service,
               --registry-wait-ms its long poll, as for grants) keeps one events.read in
               flight without blocking the service loop; s_project_page writes the facts of
               a page in the transaction in which the follower moves the cursor (the last
               registry seq applied), so a restart resumes exactly where the projection
               stands.
      prepare: before the write transaction, each reference of an incoming event is looked
               up in the projection first; only one it lacks is asked of the registry, once
               (registry.<table>.get through sam_follow_ask, which stops asking for a while
               once the registry goes unanswered); the answer is kept in a small ring in the
               context, and the apply function writes it into the projection when it uses
               it. So a pilot registered a moment ago is known even when the outbox feed has
               not caught up, and a fact the projection holds costs no call at all.

    Registry payloads are read through the *View messages of status.proto, which repeat the
    field numbers of the registry's records for the fields kept here.
*/
#include "status.h"

#include <czmq.h>
#include <stdio.h>
#include <string.h>

#define FREE(m) protobuf_c_message_free_unpacked(&(m)->base, NULL)

/* ---- facts ------------------------------------------------------------------------------- */

static Samordna__V1__StatusFact *s_copy(const Samordna__V1__StatusFact *f)
{
    size_t n = protobuf_c_message_get_packed_size(&f->base);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return NULL;
    protobuf_c_message_pack(&f->base, buf);
    Samordna__V1__StatusFact *c = samordna__v1__status_fact__unpack(NULL, n, buf);
    free(buf);
    return c;
}

static Samordna__V1__StatusFact *s_cache_find(status_ctx_t *ctx, const char *kind, const char *id)
{
    for (size_t i = 0; i < STATUS_FACT_CACHE; i++) {
        Samordna__V1__StatusFact *f = ctx->cache[i];
        if (f && strcmp(f->kind, kind) == 0 && strcmp(f->id, id) == 0) return f;
    }
    return NULL;
}

/* Takes ownership of f. */
static void s_cache_put(status_ctx_t *ctx, Samordna__V1__StatusFact *f)
{
    size_t slot = ctx->cache_next;
    for (size_t i = 0; i < STATUS_FACT_CACHE; i++) {
        Samordna__V1__StatusFact *o = ctx->cache[i];
        if (o && strcmp(o->kind, f->kind) == 0 && strcmp(o->id, f->id) == 0) {
            slot = i;
            break;
        }
    }
    if (slot == ctx->cache_next) ctx->cache_next = (ctx->cache_next + 1) % STATUS_FACT_CACHE;
    if (ctx->cache[slot]) FREE(ctx->cache[slot]);
    ctx->cache[slot] = f;
}

void status_ctx_clear(status_ctx_t *ctx)
{
    sam_follow_destroy(&ctx->follow);
    for (size_t i = 0; i < STATUS_FACT_CACHE; i++)
        if (ctx->cache[i]) FREE(ctx->cache[i]);
    memset(ctx->cache, 0, sizeof ctx->cache);
}

static int s_fact_put(sam_service_t *svc, MDB_txn *txn, const Samordna__V1__StatusFact *f)
{
    status_key_t k;
    status_key_fact(&k, f->kind, f->id);
    return status_put(svc, txn, "registry", &k, &f->base);
}

Samordna__V1__StatusFact *status_fact_find(sam_service_t *svc, MDB_txn *txn, bool write,
                                           const char *kind, const char *id)
{
    status_key_t k;
    status_key_fact(&k, kind, id);
    ProtobufCMessage *out = NULL;
    if (status_get(svc, txn, "registry", &k, &samordna__v1__status_fact__descriptor, &out) == 0)
        return (Samordna__V1__StatusFact *)out;
    status_ctx_t *ctx = sam_service_ctx(svc);
    Samordna__V1__StatusFact *cached = s_cache_find(ctx, kind, id);
    if (!cached) return NULL;
    if (write) s_fact_put(svc, txn, cached);
    return s_copy(cached);
}

Samordna__V1__StatusFact *status_fact_require(sam_service_t *svc, MDB_txn *txn, const char *kind,
                                              const char *id, const char *field, sam_reply_t *reply)
{
    Samordna__V1__StatusFact *f = status_fact_find(svc, txn, true, kind, id);
    if (!f) sam_reply_error(reply, SAM_UNPROCESSABLE, "%s: unknown %s '%s'", field, kind, id);
    return f;
}

/* A fact from a registry record view. Returns NULL when out of memory. */
static Samordna__V1__StatusFact *s_fact_new(const char *kind, const char *id, const char *name)
{
    Samordna__V1__StatusFact *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    samordna__v1__status_fact__init(f);
    f->kind = strdup(kind);
    f->id = strdup(id);
    f->name = strdup(name ? name : "");
    f->municipality = strdup("");
    f->challenge = strdup("");
    f->investment_leader = strdup("");
    if (!f->kind || !f->id || !f->name || !f->municipality || !f->challenge ||
        !f->investment_leader) {
        FREE(f); /* protobuf-c frees set strings and the struct with the default allocator */
        return NULL;
    }
    return f;
}

static Samordna__V1__StatusFact *s_fact_from_pilot(const Samordna__V1__RegistryPilotView *p)
{
    Samordna__V1__StatusFact *f = s_fact_new("pilot", p->id, "");
    if (!f) return NULL;
    free(f->municipality);
    free(f->challenge);
    free(f->investment_leader);
    f->municipality = strdup(p->municipality);
    f->challenge = strdup(p->challenge);
    f->investment_leader = strdup(p->investment_leader);
    f->team = calloc(p->n_investment_team ? p->n_investment_team : 1, sizeof *f->team);
    bool ok = f->municipality && f->challenge && f->investment_leader && f->team;
    for (size_t i = 0; ok && i < p->n_investment_team; i++) {
        f->team[i] = strdup(p->investment_team[i]);
        if (f->team[i])
            f->n_team++;
        else
            ok = false;
    }
    if (!ok) {
        if (!f->municipality) f->municipality = strdup("");
        if (!f->challenge) f->challenge = strdup("");
        if (!f->investment_leader) f->investment_leader = strdup("");
        FREE(f);
        return NULL;
    }
    return f;
}

/* ---- prepare: ask the registry for references the projection lacks ----------------------- */

static const char *s_table_of(const char *kind)
{
    return strcmp(kind, "pilot") == 0    ? "pilots"
           : strcmp(kind, "agency") == 0 ? "agencies"
                                         : "municipalities";
}

static void s_ask(sam_service_t *svc, const char *kind, const char *id)
{
    status_ctx_t *ctx = sam_service_ctx(svc);
    if (!status_id_ok(id) || s_cache_find(ctx, kind, id)) return;
    MDB_txn *txn;
    if (sam_store_begin(sam_service_store(svc), NULL, false, &txn)) return;
    status_key_t k;
    status_key_fact(&k, kind, id);
    bool known = sam_store_has(txn, sam_service_dbi(svc, "registry"), k.b, k.len);
    mdb_txn_abort(txn);
    if (known || !ctx->follow) return;
    char method[64];
    snprintf(method, sizeof method, "registry.%s.get", s_table_of(kind));
    Samordna__V1__RegistryGetView req = SAMORDNA__V1__REGISTRY_GET_VIEW__INIT;
    req.id = (char *)id;
    const ProtobufCMessageDescriptor *desc =
        strcmp(kind, "pilot") == 0          ? &samordna__v1__registry_pilot_view__descriptor
        : strcmp(kind, "municipality") == 0 ? &samordna__v1__registry_lookup_view__descriptor
                                            : &samordna__v1__registry_named_view__descriptor;
    ProtobufCMessage *out = NULL;
    uint32_t code = sam_follow_ask(ctx->follow, method, &req.base, desc, &out);
    if (code != SAM_OK || !out) {
        sam_info("registry.ask kind=%s id=%s code=%u", kind, sam_logv(id), code);
        return;
    }
    Samordna__V1__StatusFact *f = NULL;
    if (desc == &samordna__v1__registry_pilot_view__descriptor) {
        Samordna__V1__RegistryPilotView *p = (Samordna__V1__RegistryPilotView *)out;
        if (strcmp(p->id, id) == 0) f = s_fact_from_pilot(p);
    } else if (desc == &samordna__v1__registry_lookup_view__descriptor) {
        /* A merged municipality answers with its successor; the old id stays valid here,
           named after the record the registry keeps for it. */
        Samordna__V1__RegistryLookupView *l = (Samordna__V1__RegistryLookupView *)out;
        if (l->municipality) f = s_fact_new("municipality", id, l->municipality->name);
    } else {
        Samordna__V1__RegistryNamedView *a = (Samordna__V1__RegistryNamedView *)out;
        if (strcmp(a->id, id) == 0) f = s_fact_new("agency", id, a->name);
    }
    protobuf_c_message_free_unpacked(out, NULL);
    if (f) s_cache_put(ctx, f);
}

/* The fields of status events that name a registry fact, in the order they are asked: the
   payload types of status.def use these names for nothing else. An actor field left empty
   names the publishing agency (the event's source). */
static const struct {
    const char *field;
    const char *kind;
    bool actor;
} s_ref_fields[] = {
    {"pilot", "pilot", false},     {"municipality", "municipality", false},
    {"owner", "agency", false},    {"actor", "agency", true},
    {"raised_by", "agency", true}, {"concerns_agency", "agency", false},
    {"by", "agency", true},
};

/* The references of each status event, asked for when the projection lacks them. The
   payload is the runtime's, decoded as the type's row in status.def says. */
int status_prepare_refs(sam_service_t *svc, const sam_event_t *ev, sam_reply_t *reply)
{
    (void)reply;
    if (!ev->msg) return 0;
    for (size_t i = 0; i < sizeof s_ref_fields / sizeof s_ref_fields[0]; i++) {
        const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field_by_name(
            ev->msg->descriptor, s_ref_fields[i].field);
        if (!fd) continue;
        const char *v = sam_follow_field(ev->msg, s_ref_fields[i].field);
        if (!*v && s_ref_fields[i].actor) v = ev->ce->source;
        if (v && *v) s_ask(svc, s_ref_fields[i].kind, v);
    }
    /* a meeting's participants: each written as an id is an agency's (status_ev_meeting) */
    if (ev->msg->descriptor == &samordna__v1__meeting_logged__descriptor) {
        const Samordna__V1__MeetingLogged *m = (const Samordna__V1__MeetingLogged *)ev->msg;
        for (size_t i = 0; i < m->n_participants && i < 100; i++)
            if (status_id_ok(m->participants[i])) s_ask(svc, "agency", m->participants[i]);
    }
    return 0; /* apply decides: a reference still unknown there is refused with its field */
}

/* ---- tick: follow the registry's outbox ---------------------------------------------------- */

/* A municipality merged into `into` on `from`: its fact says so (the board names the
   successor). A municipality the projection does not hold yet is skipped: it is registered
   before it is merged, so its own registration, earlier in the outbox, made the fact. */
static int s_successor_put(sam_service_t *svc, MDB_txn *txn, const char *id, const char *into,
                           const char *from)
{
    status_key_t k;
    status_key_fact(&k, "municipality", id);
    ProtobufCMessage *got = NULL;
    int rc = status_get(svc, txn, "registry", &k, &samordna__v1__status_fact__descriptor, &got);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return rc;
    Samordna__V1__StatusFact copy = *(Samordna__V1__StatusFact *)got;
    copy.successor = (char *)into;
    copy.successor_from = (char *)from;
    rc = s_fact_put(svc, txn, &copy);
    protobuf_c_message_free_unpacked(got, NULL);
    return rc;
}

/* Applies one registry event to the projection. Returns 0 or an LMDB error. */
static int s_project(sam_service_t *svc, MDB_txn *txn, const Io__Cloudevents__V1__CloudEvent *ce)
{
    size_t len;
    const uint8_t *data = sam_event_data(ce, &len);
    const char *t = ce->type;
    if (!data) return 0;
    Samordna__V1__StatusFact *f = NULL;
    if (strcmp(t, "no.samordna.registry.pilot.registered") == 0 ||
        strcmp(t, "no.samordna.registry.pilot.updated") == 0) {
        Samordna__V1__RegistryPilotView *p =
            samordna__v1__registry_pilot_view__unpack(NULL, len, data);
        if (p && status_id_ok(p->id)) f = s_fact_from_pilot(p);
        if (p) FREE(p);
    } else if (strcmp(t, "no.samordna.registry.agency.registered") == 0 ||
               strcmp(t, "no.samordna.registry.municipality.registered") == 0) {
        Samordna__V1__RegistryNamedView *a =
            samordna__v1__registry_named_view__unpack(NULL, len, data);
        if (a && status_id_ok(a->id))
            f = s_fact_new(strstr(t, ".agency.") ? "agency" : "municipality", a->id, a->name);
        if (a) FREE(a);
        /* a municipality registered as merged into a registered successor */
        Samordna__V1__RegistryMunicipalityView *mv =
            f && strstr(t, ".municipality.")
                ? samordna__v1__registry_municipality_view__unpack(NULL, len, data)
                : NULL;
        const Samordna__V1__RegistrySuccessorView *sv = mv ? mv->successor : NULL;
        if (sv && status_id_ok(sv->municipality) && strcmp(sv->municipality, f->id) != 0) {
            Samordna__V1__StatusFact copy = *f;
            copy.successor = sv->municipality;
            copy.successor_from = sv->from;
            int rc = s_fact_put(svc, txn, &copy);
            FREE(mv);
            FREE(f);
            return rc;
        }
        if (mv) FREE(mv);
    } else if (strcmp(t, "no.samordna.registry.municipality.merged") == 0) {
        Samordna__V1__RegistryMergerView *mg =
            samordna__v1__registry_merger_view__unpack(NULL, len, data);
        int rc = 0;
        for (size_t i = 0; mg && rc == 0 && i < mg->n_merged; i++)
            if (status_id_ok(mg->merged[i]) && status_id_ok(mg->into))
                rc = s_successor_put(svc, txn, mg->merged[i], mg->into, mg->from);
        if (mg) FREE(mg);
        return rc;
    } else if (strcmp(t, "no.samordna.registry.agency.renamed") == 0) {
        Samordna__V1__RegistryRenameView *r =
            samordna__v1__registry_rename_view__unpack(NULL, len, data);
        if (r && status_id_ok(r->agency)) f = s_fact_new("agency", r->agency, r->name);
        if (r) FREE(r);
    }
    if (!f) return 0;
    int rc = s_fact_put(svc, txn, f);
    FREE(f);
    return rc;
}

/* The follower's page, projected in its transaction (sam_follow_apply_fn). */
static int s_project_page(void *arg, MDB_txn *txn, Samordna__V1__StoredEvent *const *events,
                          size_t n)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = s_project(arg, txn, events[i]->event);
    if (rc == 0) sam_info("registry.projected events=%zu cursor=%" PRIu64, n, events[n - 1]->seq);
    return rc;
}

int status_registry_start(sam_service_t *svc)
{
    status_ctx_t *ctx = sam_service_ctx(svc);
    sam_follow_def_t def = {.store = sam_service_store(svc),
                            .svc = svc,
                            .apply = s_project_page,
                            .arg = svc,
                            .cursor_dbi = sam_service_dbi(svc, "cursor"),
                            .cursor_key = "registry"};
    if (sam_follow_config(sam_service_config(svc), "registry", &def.service, &def.wait_ms))
        return -1;
    ctx->follow = sam_follow_new(&def);
    return ctx->follow ? 0 : -1;
}

void status_registry_tick(sam_service_t *svc)
{
    status_ctx_t *ctx = sam_service_ctx(svc);
    if (ctx->follow) sam_follow_tick(ctx->follow);
}
