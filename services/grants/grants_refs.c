/*  grants_refs.c — the registry facts grants relies on: a projection of the registry's
    outbox kept in the "refs" table (agencies, municipalities, pilots by id).

    Why a projection: an award names its recipient and funders, and the apply function must
    refuse an unknown one inside the write transaction, where no call across the broker may
    happen (it would hold LMDB's single writer while waiting on the network). So the
    service follows the registry's outbox with the common follower (common/sam_follow.h:
    one events.read long poll kept in flight from the tick, never blocking the loop; the
    service named by --registry, --registry-wait-ms its wait, as for status) and applies
    what it reads to "refs" in the transaction in which the follower moves the cursor, so a
    restart resumes exactly where it stopped.

    The projection may lag the registry by a moment. The prepare hook closes that gap: before
    the write transaction opens, it looks up every reference the event names in the
    projection first, asks the registry (registry.<table>.get, through sam_follow_ask) only
    for those not yet known, and records the ones that exist. A caller who has just
    registered a municipality is never told it does not exist, and a reference the
    projection holds costs no call. Once the registry goes unanswered the follower stops
    asking for a while, so a burst of events naming unknown references costs one timeout.

    The registry never deletes agencies, municipalities or pilots (a merged municipality keeps
    its record and gains a successor), so the projection only grows.
*/
#include "grants_handlers.h"
#include "sam_client.h"
#include "samordna/v1/registry.pb-c.h"

#include <czmq.h>
#include <stdio.h>
#include <string.h>

/* ---- applying the registry's events ----------------------------------------------------- */

/* The registry's event types that introduce a reference, the record each carries, and the
   kind letter of the reference. */
static const struct {
    const char *type;
    const ProtobufCMessageDescriptor *record;
    char kind;
} s_introducers[] = {
    {"no.samordna.registry.agency.registered", &samordna__v1__agency__descriptor, 'a'},
    {"no.samordna.registry.municipality.registered", &samordna__v1__municipality__descriptor, 'm'},
    {"no.samordna.registry.pilot.registered", &samordna__v1__pilot__descriptor, 'p'},
};

/* A merger the registry recorded: municipality.merged, or a municipality registered with a
   registered successor. 0 or an error code. */
static int s_apply_merger(grants_t *g, MDB_txn *txn, const Io__Cloudevents__V1__CloudEvent *ce,
                          size_t *added)
{
    size_t len;
    const uint8_t *data = sam_event_data(ce, &len);
    int rc = 0;
    if (strcmp(ce->type, "no.samordna.registry.municipality.merged") == 0) {
        Samordna__V1__MunicipalityMerger *m =
            samordna__v1__municipality_merger__unpack(NULL, len, data ? data : (const uint8_t *)"");
        for (size_t i = 0; m && rc == 0 && i < m->n_merged; i++)
            if (grants_valid_id(m->merged[i]) && grants_valid_id(m->into)) {
                rc = grants_merger_put(g, txn, m->merged[i], m->into, m->from);
                (*added)++;
            }
        if (m) protobuf_c_message_free_unpacked(&m->base, NULL);
    } else if (strcmp(ce->type, "no.samordna.registry.municipality.registered") == 0) {
        Samordna__V1__Municipality *m =
            samordna__v1__municipality__unpack(NULL, len, data ? data : (const uint8_t *)"");
        const Samordna__V1__Successor *s = m ? m->successor : NULL;
        if (s && grants_valid_id(m->id) && grants_valid_id(s->municipality) &&
            strcmp(s->municipality, m->id) != 0) {
            rc = grants_merger_put(g, txn, m->id, s->municipality, s->from);
            (*added)++;
        }
        if (m) protobuf_c_message_free_unpacked(&m->base, NULL);
    }
    return rc;
}

/* Records the reference one registry event introduces, if any. 0 or an error code. */
static int s_apply_event(grants_t *g, MDB_txn *txn, const Io__Cloudevents__V1__CloudEvent *ce,
                         size_t *added)
{
    int mrc = s_apply_merger(g, txn, ce, added);
    if (mrc) return mrc;
    size_t i = 0, n = sizeof s_introducers / sizeof s_introducers[0];
    while (i < n && strcmp(ce->type, s_introducers[i].type) != 0)
        i++;
    size_t len;
    const uint8_t *data = sam_event_data(ce, &len);
    ProtobufCMessage *rec = i < n ? protobuf_c_message_unpack(s_introducers[i].record, NULL, len,
                                                              data ? data : (const uint8_t *)"")
                                  : NULL;
    if (!rec) return 0;
    const char *id = sam_follow_field(rec, "id");
    int rc = 0;
    if (grants_valid_id(id)) {
        /* a pilot's record has no name: it is kept with "" */
        rc = grants_ref_put(g, txn, s_introducers[i].kind, id, sam_follow_field(rec, "name"));
        (*added)++;
    }
    protobuf_c_message_free_unpacked(rec, NULL);
    return rc;
}

/* The follower's page, applied in its transaction (sam_follow_apply_fn). */
static int s_apply_page(void *arg, MDB_txn *txn, Samordna__V1__StoredEvent *const *events, size_t n)
{
    size_t added = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = s_apply_event(arg, txn, events[i]->event, &added);
    if (rc)
        sam_error("refs.failed reason=%s", sam_logv(sam_store_strerror(rc)));
    else /* every page, also one of events grants keeps nothing of: the cursor it reached */
        sam_info("refs.applied added=%zu cursor=%" PRIu64, added, events[n - 1]->seq);
    return rc;
}

int grants_refs_start(grants_t *g)
{
    sam_follow_def_t def = {.store = sam_service_store(g->svc),
                            .svc = g->svc,
                            .apply = s_apply_page,
                            .arg = g,
                            .cursor_dbi = g->dbi[GRANTS_T_REFS],
                            .cursor_key = "#cursor"};
    if (sam_follow_config(sam_service_config(g->svc), "registry", &def.service, &def.wait_ms))
        return -1;
    g->follow = sam_follow_new(&def);
    return g->follow ? 0 : -1;
}

void grants_refs_tick(grants_t *g)
{
    if (g->follow) sam_follow_tick(g->follow);
}

void grants_refs_stop(grants_t *g)
{
    sam_follow_destroy(&g->follow);
}

/* ---- the prepare hook ------------------------------------------------------------------- */

typedef struct {
    char kind; /* 'a', 'm', 'p', or 'r' (recipient: a municipality or an agency) */
    char id[80];
} s_ref_t;

static void s_add(s_ref_t *refs, size_t *n, size_t cap, char kind, const char *id)
{
    if (*n < cap && id && grants_valid_id(id)) {
        refs[*n].kind = kind;
        snprintf(refs[*n].id, sizeof refs[*n].id, "%s", id);
        (*n)++;
    }
}

/* The references an event names, from its payload as the runtime decoded it (grants.def). */
static size_t s_refs_of(const sam_event_t *ev, s_ref_t *refs, size_t cap)
{
    size_t n = 0;
    const char *t = ev->ce->type;
    if (strcmp(t, "no.samordna.grants.scheme.created") == 0) {
        const Samordna__V1__Scheme *s = (const Samordna__V1__Scheme *)ev->msg;
        s_add(refs, &n, cap, 'a', s->owner);
    } else if (strcmp(t, "no.samordna.grants.award.granted") == 0) {
        const Samordna__V1__Award *a = (const Samordna__V1__Award *)ev->msg;
        s_add(refs, &n, cap, 'r', a->recipient);
        if (a->pilot[0]) s_add(refs, &n, cap, 'p', a->pilot);
        for (size_t i = 0; i < a->n_funders; i++)
            s_add(refs, &n, cap, 'a', a->funders[i]->agency);
    } else if (strcmp(t, "no.samordna.grants.award.amended") == 0) {
        const Samordna__V1__AwardAmendment *am = (const Samordna__V1__AwardAmendment *)ev->msg;
        for (size_t i = 0; i < am->n_funders; i++)
            s_add(refs, &n, cap, 'a', am->funders[i]->agency);
    } else if (strcmp(t, "no.samordna.grants.instrument.registered") == 0) {
        const Samordna__V1__Instrument *in = (const Samordna__V1__Instrument *)ev->msg;
        s_add(refs, &n, cap, 'a', in->agency);
        s_add(refs, &n, cap, 'm', in->municipality);
        if (in->pilot[0]) s_add(refs, &n, cap, 'p', in->pilot);
    } else if (strcmp(t, "no.samordna.grants.need.recorded") == 0) {
        const Samordna__V1__Need *nd = (const Samordna__V1__Need *)ev->msg;
        s_add(refs, &n, cap, 'm', nd->municipality);
        if (nd->pilot[0]) s_add(refs, &n, cap, 'p', nd->pilot);
    }
    return n;
}

/* Asks the registry whether it holds id of kind: 1 yes, 0 no (it answered 404), -1 it did
   not answer (down, or the broker has no worker for it). One attempt, bounded: the loop of
   the service waits meanwhile. The request goes to the service --registry names; the
   method is the registry's own, whatever that name is. */
static int s_ask_registry(grants_t *g, char kind, const char *id)
{
    if (!g->follow) return -1;
    const char *method = kind == 'a'   ? "registry.agencies.get"
                         : kind == 'm' ? "registry.municipalities.get"
                                       : "registry.pilots.get";
    Samordna__V1__GetRequest req = SAMORDNA__V1__GET_REQUEST__INIT;
    req.id = (char *)id;
    uint32_t code = sam_follow_ask(g->follow, method, &req.base, NULL, NULL);
    sam_debug("refs.asked service=%s kind=%c id=%s code=%u",
              sam_logv(sam_follow_service(g->follow)), kind, sam_logv(id), code);
    return code == SAM_OK ? 1 : code == SAM_NOT_FOUND ? 0 : -1;
}

int grants_prepare_refs(sam_service_t *svc, const sam_event_t *ev, sam_reply_t *reply)
{
    grants_t *g = sam_service_ctx(svc);
    s_ref_t refs[GRANTS_MAX_FUNDERS + 4];
    size_t n = s_refs_of(ev, refs, sizeof refs / sizeof refs[0]);
    if (n == 0) return 0;
    MDB_txn *txn;
    if (sam_store_begin(sam_service_store(svc), NULL, false, &txn) != 0) return 0;
    s_ref_t missing[GRANTS_MAX_FUNDERS + 4];
    size_t nm = 0;
    for (size_t i = 0; i < n; i++) {
        bool known = refs[i].kind == 'r' ? grants_ref_known(g, txn, 'm', refs[i].id) ||
                                               grants_ref_known(g, txn, 'a', refs[i].id)
                                         : grants_ref_known(g, txn, refs[i].kind, refs[i].id);
        if (!known) missing[nm++] = refs[i];
    }
    mdb_txn_abort(txn);
    if (nm == 0) return 0;
    /* Ask, then record what exists in one small transaction of its own (no write
       transaction is open yet: the runtime calls prepare before it begins the batch). */
    s_ref_t found[GRANTS_MAX_FUNDERS + 4];
    size_t nf = 0;
    /* Once the registry does not answer, the rest is not asked: apply refuses what is
       still unknown, and the caller may send again when the registry is back. */
    for (size_t i = 0; i < nm; i++) {
        int known = 0;
        if (missing[i].kind == 'r') {
            known = s_ask_registry(g, 'm', missing[i].id);
            if (known == 1)
                found[nf] = missing[i], found[nf++].kind = 'm';
            else if (known == 0 && (known = s_ask_registry(g, 'a', missing[i].id)) == 1)
                found[nf] = missing[i], found[nf++].kind = 'a';
        } else if ((known = s_ask_registry(g, missing[i].kind, missing[i].id)) == 1) {
            found[nf++] = missing[i];
        }
        if (known < 0) {
            sam_warn("refs.registry_unavailable asked=%s", sam_logv(missing[i].id));
            break;
        }
    }
    if (nf == 0) return 0;
    if (sam_store_begin(sam_service_store(svc), NULL, true, &txn) != 0) return 0;
    int rc = 0;
    for (size_t i = 0; i < nf && rc == 0; i++)
        rc = grants_ref_put(g, txn, found[i].kind, found[i].id, NULL);
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    if (rc) sam_warn("refs.record_failed reason=%s", sam_logv(sam_store_strerror(rc)));
    return 0;
}
