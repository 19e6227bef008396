/*  grants_refs.c — the registry facts grants relies on: a projection of the registry's
    outbox kept in the "refs" table (agencies, municipalities, pilots by id).

    Why a projection: an award names its recipient and funders, and the apply function must
    refuse an unknown one inside the write transaction, where no call across the broker may
    happen (it would hold LMDB's single writer while waiting on the network). So the
    service follows the registry's outbox — one events.read long poll kept in flight from the
    tick, never blocking the loop — and applies what it reads to "refs" with the cursor in
    the same transaction, so a restart resumes exactly where it stopped.

    The projection may lag the registry by a moment. The prepare hook closes that gap: before
    the write transaction opens, it looks up every reference the event names, asks the
    registry (registry.<table>.get) for those not yet known, and records the ones that exist.
    A caller who has just registered a municipality is never told it does not exist.

    The registry never deletes agencies, municipalities or pilots (a merged municipality keeps
    its record and gains a successor), so the projection only grows.
*/
#include "grants_handlers.h"
#include "sam_client.h"
#include "samordna/v1/registry.pb-c.h"

#include <czmq.h>
#include <stdio.h>
#include <string.h>

#define S_READ_MAX 500

/* ---- applying the registry's events ----------------------------------------------------- */

/* The kind letter, id and name a registry event introduces; false when it introduces none. */
static bool s_ref_of_event(const Io__Cloudevents__V1__CloudEvent *ce, char *kind, char *id,
                           size_t idlen, char *name, size_t namelen)
{
    const uint8_t *data = NULL;
    size_t len = 0;
    if (ce->data_case == IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_BINARY_DATA) {
        data = ce->binary_data.data;
        len = ce->binary_data.len;
    } else if (ce->data_case == IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_PROTO_DATA &&
               ce->proto_data) {
        data = ce->proto_data->value.data;
        len = ce->proto_data->value.len;
    }
    name[0] = 0;
    if (strcmp(ce->type, "no.samordna.registry.agency.registered") == 0) {
        Samordna__V1__Agency *a = samordna__v1__agency__unpack(NULL, len, data);
        if (!a) return false;
        *kind = 'a';
        snprintf(id, idlen, "%s", a->id);
        snprintf(name, namelen, "%s", a->name);
        samordna__v1__agency__free_unpacked(a, NULL);
    } else if (strcmp(ce->type, "no.samordna.registry.municipality.registered") == 0) {
        Samordna__V1__Municipality *m = samordna__v1__municipality__unpack(NULL, len, data);
        if (!m) return false;
        *kind = 'm';
        snprintf(id, idlen, "%s", m->id);
        snprintf(name, namelen, "%s", m->name);
        samordna__v1__municipality__free_unpacked(m, NULL);
    } else if (strcmp(ce->type, "no.samordna.registry.pilot.registered") == 0) {
        Samordna__V1__Pilot *p = samordna__v1__pilot__unpack(NULL, len, data);
        if (!p) return false;
        *kind = 'p';
        snprintf(id, idlen, "%s", p->id);
        samordna__v1__pilot__free_unpacked(p, NULL);
    } else
        return false;
    return grants_valid_id(id);
}

/* Applies a page of the registry's outbox and moves the cursor, in one transaction.
   Returns how many events it read. */
static size_t s_apply_page(grants_t *g, const Samordna__V1__ReadReply *rr)
{
    MDB_txn *txn;
    if (sam_store_begin(sam_service_store(g->svc), NULL, true, &txn) != 0) return 0;
    uint64_t cursor = grants_ref_cursor(g, txn);
    size_t added = 0;
    int rc = 0;
    for (size_t i = 0; i < rr->n_events && rc == 0; i++) {
        const Samordna__V1__StoredEvent *se = rr->events[i];
        if (se->seq <= cursor || !se->event) continue;
        char kind, id[80], name[256];
        if (s_ref_of_event(se->event, &kind, id, sizeof id, name, sizeof name)) {
            rc = grants_ref_put(g, txn, kind, id, name);
            added++;
        }
        cursor = se->seq;
    }
    if (rc == 0) rc = grants_ref_set_cursor(g, txn, cursor);
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    if (rc) {
        sam_error("refs.failed reason=\"%s\"", sam_store_strerror(rc));
        return 0;
    }
    if (added) sam_info("refs.applied added=%zu cursor=%" PRIu64, added, cursor);
    return rr->n_events;
}

static void s_follow_send(grants_t *g)
{
    MDB_txn *txn;
    if (sam_store_begin(sam_service_store(g->svc), NULL, false, &txn) != 0) return;
    uint64_t cursor = grants_ref_cursor(g, txn);
    mdb_txn_abort(txn);
    Samordna__V1__ReadRequest req = SAMORDNA__V1__READ_REQUEST__INIT;
    req.after_seq = cursor;
    req.max = S_READ_MAX;
    req.wait_ms = (uint32_t)g->follow_wait_ms;
    uint8_t buf[64];
    size_t len = samordna__v1__read_request__pack(&req, buf);
    g->follow_req = sam_client_send(g->follower, g->registry, "events.read", buf, len);
    g->follow_sent_ms = zclock_mono();
}

void grants_refs_tick(grants_t *g)
{
    if (!g->follower) {
        g->follower = sam_service_client_new(g->svc); /* with the service's certificate */
        if (!g->follower) return;
    }
    int64_t now = zclock_mono();
    if (g->follow_req) {
        sam_result_t res;
        while (g->follow_req && sam_client_recv(g->follower, 0, &res) == 0) {
            if (res.id == g->follow_req) {
                g->follow_req = 0;
                bool again = false;
                if (res.code == SAM_OK) {
                    Samordna__V1__ReadReply *rr =
                        samordna__v1__read_reply__unpack(NULL, res.body_len, res.body);
                    if (rr) {
                        again = s_apply_page(g, rr) == S_READ_MAX;
                        samordna__v1__read_reply__free_unpacked(rr, NULL);
                    }
                } else {
                    sam_debug("refs.unavailable code=%u reason=\"%s\"", res.code, res.message);
                }
                /* A full page: read on at once. Otherwise the long poll returned empty or
                   failed: wait a little before asking again so a missing registry costs
                   nothing. */
                g->follow_backoff_ms = again ? 0 : now + (res.code == SAM_OK ? 0 : 1000);
            }
            sam_result_clear(&res);
        }
        /* A reply that never comes (registry restarted mid-poll): ask again. */
        if (g->follow_req && now - g->follow_sent_ms > g->follow_wait_ms + 10000) g->follow_req = 0;
        if (g->follow_req) return;
    }
    if (now < g->follow_backoff_ms) return;
    s_follow_send(g);
}

void grants_refs_stop(grants_t *g)
{
    sam_client_destroy(&g->follower);
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
    sam_client_t *c = sam_service_client(g->svc);
    if (!c) return -1;
    const char *method = kind == 'a'   ? "registry.agencies.get"
                         : kind == 'm' ? "registry.municipalities.get"
                                       : "registry.pilots.get";
    Samordna__V1__GetRequest req = SAMORDNA__V1__GET_REQUEST__INIT;
    req.id = (char *)id;
    sam_result_t res = {0};
    uint32_t code =
        sam_client_call(c, g->registry, method, &req.base, NULL, NULL, 1500, false, &res);
    sam_result_clear(&res);
    sam_debug("refs.asked service=%s kind=%c id=%s code=%u", g->registry, kind, id, code);
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
            sam_warn("refs.registry_unavailable asked=%s", missing[i].id);
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
    if (rc) sam_warn("refs.record_failed reason=\"%s\"", sam_store_strerror(rc));
    return 0;
}
