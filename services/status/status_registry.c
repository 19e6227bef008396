/*  status_registry.c — the status service's projection of the registry.

    Status events name pilots, agencies and municipalities the registry owns. The service
    never calls across the broker inside its write transaction; instead it keeps, in its own
    "registry" table, the few facts it needs (a pilot's municipality, challenge, investment
    leader and team; agency and municipality names), fed from the registry's outbox:

      tick:    one events.read long poll in flight at a time, sent and collected without
               blocking the service loop; the facts of the events it returns and the cursor
               (the last registry seq applied) are written in ONE transaction, so a restart
               resumes exactly where the projection stands.
      prepare: before the write transaction, each reference of an incoming event that the
               projection lacks is asked of the registry once (registry.<table>.get); the
               answer is kept in a small ring in the context, and the apply function writes
               it into the projection when it uses it. So a pilot registered a moment ago is
               known even when the outbox feed has not caught up.

    Registry payloads are read through the *View messages of status.proto, which repeat the
    field numbers of the registry's records for the fields kept here.
*/
#include "status.h"

#include <czmq.h>
#include <stdio.h>
#include <string.h>

#define FREE(m) protobuf_c_message_free_unpacked(&(m)->base, NULL)
#define ASK_TIMEOUT_MS 2000
#define ASK_BLOCK_MS 5000 /* after the registry did not answer, refuse without asking */
#define READ_WAIT_MS 2000
#define READ_MAX 500
#define READ_LOST_MS 35000 /* a long poll with no answer after this is sent again */
#define RETRY_MS 1000

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
    if (known) return;
    /* an unreachable registry is not asked again for a while: a batch of events naming
       unknown pilots must not stall the service one timeout per event */
    if (zclock_mono() < ctx->ask_blocked_until) return;
    sam_client_t *client = sam_service_client(svc);
    if (!client) return;
    char method[64];
    snprintf(method, sizeof method, "registry.%s.get", s_table_of(kind));
    Samordna__V1__RegistryGetView req = SAMORDNA__V1__REGISTRY_GET_VIEW__INIT;
    req.id = (char *)id;
    const ProtobufCMessageDescriptor *desc =
        strcmp(kind, "pilot") == 0          ? &samordna__v1__registry_pilot_view__descriptor
        : strcmp(kind, "municipality") == 0 ? &samordna__v1__registry_lookup_view__descriptor
                                            : &samordna__v1__registry_named_view__descriptor;
    ProtobufCMessage *out = NULL;
    sam_result_t res = {0};
    uint32_t code = sam_client_call(client, "registry", method, &req.base, desc, &out,
                                    ASK_TIMEOUT_MS, true, &res);
    /* The synchronous call drops replies it does not wait for: forget the feed's poll. */
    ctx->feed_pending = 0;
    if (code != SAM_OK || !out) {
        if (code == SAM_TIMEOUT || code == SAM_UNAVAILABLE || code == SAM_BUSY)
            ctx->ask_blocked_until = zclock_mono() + ASK_BLOCK_MS;
        sam_info("registry.ask kind=%s id=%s code=%u", kind, id, code);
        sam_result_clear(&res);
        return;
    }
    sam_result_clear(&res);
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

/* The references of each status event type, asked for when the projection lacks them. The
   payload is the runtime's, decoded as the type's row in status.def says. */
int status_prepare_refs(sam_service_t *svc, const sam_event_t *ev, sam_reply_t *reply)
{
    const char *type = ev->ce->type;
    const char *src = ev->ce->source;
#define REF(kind, v)                                                                               \
    do {                                                                                           \
        if ((v) && *(v)) s_ask(svc, kind, v);                                                      \
    } while (0)
#define ACTOR(v) REF("agency", (v) && *(v) ? (v) : src)
    if (strstr(type, ".milestone.reached")) {
        const Samordna__V1__MilestoneReached *m = (const Samordna__V1__MilestoneReached *)ev->msg;
        REF("pilot", m->pilot);
        ACTOR(m->actor);
    } else if (strstr(type, ".milestone.reverted")) {
        const Samordna__V1__MilestoneReverted *m = (const Samordna__V1__MilestoneReverted *)ev->msg;
        REF("pilot", m->pilot);
        ACTOR(m->actor);
    } else if (strstr(type, ".meeting.logged")) {
        const Samordna__V1__MeetingLogged *m = (const Samordna__V1__MeetingLogged *)ev->msg;
        REF("pilot", m->pilot);
        REF("municipality", m->municipality);
    } else if (strstr(type, ".step.added")) {
        const Samordna__V1__PlanStepAdded *m = (const Samordna__V1__PlanStepAdded *)ev->msg;
        REF("pilot", m->pilot);
        REF("agency", m->owner);
    } else if (strstr(type, ".step.updated")) {
        const Samordna__V1__PlanStepUpdated *m = (const Samordna__V1__PlanStepUpdated *)ev->msg;
        REF("pilot", m->pilot);
        REF("agency", m->owner);
    } else if (strstr(type, ".barrier.registered")) {
        const Samordna__V1__BarrierRegistered *m = (const Samordna__V1__BarrierRegistered *)ev->msg;
        REF("pilot", m->pilot);
        REF("municipality", m->municipality);
        ACTOR(m->raised_by);
        REF("agency", m->concerns_agency);
    } else if (strstr(type, ".barrier.moved")) {
        const Samordna__V1__BarrierMoved *m = (const Samordna__V1__BarrierMoved *)ev->msg;
        ACTOR(m->by);
    }
#undef ACTOR
#undef REF
    (void)reply;
    return 0; /* apply decides: a reference still unknown there is refused with its field */
}

/* ---- tick: follow the registry's outbox ---------------------------------------------------- */

static const uint8_t *s_payload(const Io__Cloudevents__V1__CloudEvent *ce, size_t *len)
{
    if (ce->data_case == IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_BINARY_DATA) {
        *len = ce->binary_data.len;
        return ce->binary_data.data;
    }
    if (ce->data_case == IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_PROTO_DATA && ce->proto_data) {
        *len = ce->proto_data->value.len;
        return ce->proto_data->value.data;
    }
    *len = 0;
    return NULL;
}

/* Applies one registry event to the projection. Returns 0 or an LMDB error. */
static int s_project(sam_service_t *svc, MDB_txn *txn, const Io__Cloudevents__V1__CloudEvent *ce)
{
    size_t len;
    const uint8_t *data = s_payload(ce, &len);
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

static void s_feed_reply(sam_service_t *svc, status_ctx_t *ctx, sam_result_t *res)
{
    if (res->code != SAM_OK) {
        sam_debug("registry.feed code=%u reason=\"%s\"", res->code, res->message);
        ctx->registry_retry_at = zclock_mono() + RETRY_MS;
        return;
    }
    Samordna__V1__ReadReply *rr = samordna__v1__read_reply__unpack(NULL, res->body_len, res->body);
    if (!rr) {
        sam_warn("registry.feed reason=\"undecodable ReadReply\"");
        ctx->registry_retry_at = zclock_mono() + RETRY_MS;
        return;
    }
    MDB_txn *txn;
    int rc = sam_store_begin(sam_service_store(svc), NULL, true, &txn);
    if (rc == 0) {
        uint64_t cursor = status_cursor_get(svc, txn), first = cursor;
        for (size_t i = 0; rc == 0 && i < rr->n_events; i++) {
            Samordna__V1__StoredEvent *se = rr->events[i];
            if (se->seq <= cursor || !se->event) continue;
            rc = s_project(svc, txn, se->event);
            cursor = se->seq;
        }
        if (rc == 0 && cursor != first) rc = status_cursor_put(svc, txn, cursor);
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
        if (rc == 0 && cursor != first)
            sam_info("registry.projected events=%zu cursor=%" PRIu64, rr->n_events, cursor);
    }
    if (rc) {
        sam_error("registry.feed reason=\"%s\"", sam_store_strerror(rc));
        ctx->registry_retry_at = zclock_mono() + RETRY_MS;
    }
    FREE(rr);
}

void status_registry_tick(sam_service_t *svc)
{
    status_ctx_t *ctx = sam_service_ctx(svc);
    sam_client_t *client = sam_service_client(svc);
    if (!client) return;
    int64_t now = zclock_mono();
    sam_result_t res;
    while (ctx->feed_pending && sam_client_recv(client, 0, &res) == 0) {
        if (res.id == ctx->feed_pending) {
            ctx->feed_pending = 0;
            s_feed_reply(svc, ctx, &res);
        }
        sam_result_clear(&res);
    }
    if (ctx->feed_pending && now - ctx->feed_sent_at > READ_LOST_MS) ctx->feed_pending = 0;
    if (ctx->feed_pending || now < ctx->registry_retry_at) return;
    MDB_txn *txn;
    if (sam_store_begin(sam_service_store(svc), NULL, false, &txn)) return;
    uint64_t cursor = status_cursor_get(svc, txn);
    mdb_txn_abort(txn);
    Samordna__V1__ReadRequest rq = SAMORDNA__V1__READ_REQUEST__INIT;
    rq.after_seq = cursor;
    rq.max = READ_MAX;
    rq.wait_ms = READ_WAIT_MS;
    size_t n = samordna__v1__read_request__get_packed_size(&rq);
    uint8_t buf[64];
    if (n > sizeof buf) return;
    samordna__v1__read_request__pack(&rq, buf);
    ctx->feed_pending = sam_client_send(client, "registry", "events.read", buf, n);
    ctx->feed_sent_at = now;
    if (!ctx->feed_pending) ctx->registry_retry_at = now + RETRY_MS;
}
