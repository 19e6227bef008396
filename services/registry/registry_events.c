/*  registry_events.c — the apply functions of every no.samordna.registry.* event.

    Each one runs inside the runtime's write path, in a nested write transaction of the
    batch (sam_service.h): the runtime has already answered duplicates, checked the
    publisher's role and that the event's source is the publisher's agency, and decoded the
    payload as its row in registry.def says (413 over REGISTRY_PAYLOAD_MAX, 400 undecodable
    or breaking the text rule). An apply function then does, in this order, and stops at the
    first refusal:
      1. take the decoded payload (ev->msg, the runtime's);
      2. check its syntax field by field (400 naming the field);
      3. check the publisher may change this record (403);
      4. check the state: existence (409 when registering what exists, 404 when changing what
         does not), references (422 naming the field and the missing id);
      5. write.
    Nothing is written before step 5, and on refusal the runtime aborts the nested
    transaction anyway, so a refusal never leaves a partial write. A store error is returned
    as it is: the runtime answers it 500 with its reason.

    Who may change what. Insecure callers and the admin role may do everything. A publisher:
      - registers and renames only its own agency (source = agency id);
      - registers programmes it owns, and as a programme owner registers municipalities,
        mergers, invitations and pilots;
      - answers an invitation when it owns the programme or is the invited municipality;
      - updates a pilot when it owns the programme or is the pilot's investment leader;
      - registers, assigns roles to and erases the people of its own agency;
      - publishes reports by itself.
*/
#include "registry.h"
#include "registry_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FREE_MSG(m)                                                                                \
    do {                                                                                           \
        if (m) protobuf_c_message_free_unpacked(&(m)->base, NULL);                                 \
        (m) = NULL;                                                                                \
    } while (0)

static registry_t *s_reg(sam_service_t *svc)
{
    return (registry_t *)sam_service_ctx(svc);
}

static bool s_admin(const sam_event_t *ev)
{
    return ev->caller->insecure || strcmp(ev->caller->role, "admin") == 0;
}

/* The publishing agency: the authenticated one, which the runtime has checked against the
   event's source. */
static const char *s_publisher(const sam_event_t *ev)
{
    return ev->caller->agency[0] ? ev->caller->agency : ev->ce->source;
}

static bool s_is(const sam_event_t *ev, const char *agency)
{
    return agency && agency[0] && strcmp(s_publisher(ev), agency) == 0;
}

static int s_forbidden(sam_reply_t *reply, const char *field, const sam_event_t *ev,
                       const char *rule)
{
    return sam_reply_error(reply, SAM_FORBIDDEN, "%s: publisher '%s' %s", field, s_publisher(ev),
                           rule);
}

/* Loads record `id` of dbi as desc into *out (free it). Returns 0; -1 with `code` and
   "<field>: unknown <noun> '<id>'" when there is none; or a store error. */
static int s_load(sam_reply_t *reply, MDB_txn *txn, MDB_dbi dbi, const char *id,
                  const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out, uint32_t code,
                  const char *field, const char *noun)
{
    int rc = registry_get(txn, dbi, id, desc, out);
    if (rc == MDB_NOTFOUND)
        return sam_reply_error(reply, code, "%s: unknown %s '%s'", field, noun, id);
    return rc;
}

/* The publisher is `agency` itself, or an admin: else 403 with `rule`. Returns 0 or -1. */
static int s_acts_as(sam_reply_t *reply, const sam_event_t *ev, const char *field,
                     const char *agency, const char *rule)
{
    return s_admin(ev) || s_is(ev, agency) ? 0 : s_forbidden(reply, field, ev, rule);
}

/* No record has `id` in dbi yet: else 409 "<field>: '<id>' is already registered". */
static int s_is_new(sam_reply_t *reply, MDB_txn *txn, MDB_dbi dbi, const char *field,
                    const char *id)
{
    if (!registry_has(txn, dbi, id)) return 0;
    return sam_reply_error(reply, SAM_CONFLICT, "%s: '%s' is already registered", field, id);
}

/* A reference to a record of `table` that must exist: 422 naming the field otherwise. */
static int s_ref(sam_reply_t *reply, MDB_txn *txn, MDB_dbi dbi, const char *field, const char *noun,
                 const char *id)
{
    if (registry_has(txn, dbi, id)) return 0;
    return sam_reply_error(reply, SAM_UNPROCESSABLE, "%s: unknown %s '%s'", field, noun, id);
}

/* True when the agency owns at least one programme. */
static bool s_owns_a_programme(registry_t *reg, MDB_txn *txn, const char *agency)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, reg->store.programmes, &cur)) return false;
    MDB_val k, v;
    bool owns = false;
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && !owns;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        Samordna__V1__Programme *p =
            samordna__v1__programme__unpack(NULL, v.mv_size, (const uint8_t *)v.mv_data);
        if (p && strcmp(p->owner, agency) == 0) owns = true;
        FREE_MSG(p);
    }
    mdb_cursor_close(cur);
    return owns;
}

/* True when the agency owns the programme `id`. */
static bool s_owns_programme(registry_t *reg, MDB_txn *txn, const char *agency, const char *id)
{
    Samordna__V1__Programme *p = NULL;
    if (registry_get(txn, reg->store.programmes, id, &samordna__v1__programme__descriptor,
                     (ProtobufCMessage **)&p))
        return false;
    bool owns = strcmp(p->owner, agency) == 0;
    FREE_MSG(p);
    return owns;
}

/* Writes msg at key: 0 or a store error. */
static int s_put(MDB_txn *txn, MDB_dbi dbi, const char *key, const ProtobufCMessage *msg)
{
    return registry_put(txn, dbi, key, msg);
}

/* ---- agencies --------------------------------------------------------------------------- */

static int s_check_agency(sam_reply_t *r, const Samordna__V1__Agency *a)
{
    char f[64];
    if (registry_check_id(r, "agency.id", a->id, true) ||
        registry_check_text(r, "agency.name", a->name, REGISTRY_NAME_MAX, true) ||
        registry_check_count(r, "agency.former_names", a->n_former_names, false) ||
        registry_check_enum(r, "agency.kind", &samordna__v1__agency_kind__descriptor, a->kind) ||
        registry_check_count(r, "agency.roles", a->n_roles, false) ||
        registry_check_text(r, "agency.unit", a->unit, REGISTRY_NAME_MAX, false))
        return -1;
    for (size_t i = 0; i < a->n_former_names; i++) {
        snprintf(f, sizeof f, "agency.former_names[%zu]", i);
        if (registry_check_text(r, f, a->former_names[i], REGISTRY_NAME_MAX, true)) return -1;
    }
    for (size_t i = 0; i < a->n_roles; i++) {
        snprintf(f, sizeof f, "agency.roles[%zu]", i);
        if (registry_check_enum(r, f, &samordna__v1__agency_role__descriptor, a->roles[i]))
            return -1;
    }
    return 0;
}

/* agency.registered: Agency → a new agency. */
int registry_apply_agency_registered(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                                     sam_reply_t *reply)
{
    registry_t *reg = s_reg(svc);
    const Samordna__V1__Agency *a = (const Samordna__V1__Agency *)ev->msg;
    int rc = -1;
    if (s_check_agency(reply, a)) goto done;
    if (s_acts_as(reply, ev, "agency.id", a->id, "may register only itself")) goto done;
    if (s_is_new(reply, txn, reg->store.agencies, "agency.id", a->id)) goto done;
    rc = s_put(txn, reg->store.agencies, a->id, &a->base);
done:
    return rc;
}

/* agency.renamed: AgencyRename → the agency's name changes, the old one joins former_names. */
int registry_apply_agency_renamed(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                                  sam_reply_t *reply)
{
    registry_t *reg = s_reg(svc);
    const Samordna__V1__AgencyRename *rn = (const Samordna__V1__AgencyRename *)ev->msg;
    Samordna__V1__Agency *a = NULL;
    char **names = NULL;
    int rc = -1;
    if (registry_check_id(reply, "agency.agency", rn->agency, true) ||
        registry_check_text(reply, "agency.name", rn->name, REGISTRY_NAME_MAX, true))
        goto done;
    if (s_acts_as(reply, ev, "agency.agency", rn->agency, "may rename only itself")) goto done;
    if ((rc = s_load(reply, txn, reg->store.agencies, rn->agency, &samordna__v1__agency__descriptor,
                     (ProtobufCMessage **)&a, SAM_NOT_FOUND, "agency.agency", "agency")))
        goto done;
    rc = -1;
    if (strcmp(a->name, rn->name) == 0) {
        sam_reply_error(reply, SAM_CONFLICT, "agency.name: '%s' is already called '%s'", a->id,
                        a->name);
        goto done;
    }
    if (a->n_former_names >= REGISTRY_LIST_MAX) {
        sam_reply_error(reply, SAM_UNPROCESSABLE, "agency.former_names: already %d names",
                        REGISTRY_LIST_MAX);
        goto done;
    }
    /* A new record borrowing the old one's strings, packed before anything is freed. */
    names = calloc(a->n_former_names + 1, sizeof *names);
    if (!names) {
        sam_reply_error(reply, SAM_INTERNAL, "agency: out of memory");
        goto done;
    }
    if (a->n_former_names) memcpy(names, a->former_names, a->n_former_names * sizeof *names);
    names[a->n_former_names] = a->name;
    Samordna__V1__Agency nu = *a;
    nu.former_names = names;
    nu.n_former_names = a->n_former_names + 1;
    nu.name = rn->name;
    rc = s_put(txn, reg->store.agencies, a->id, &nu.base);
done:
    free(names);
    FREE_MSG(a);
    return rc;
}

/* ---- municipalities --------------------------------------------------------------------- */

static int s_check_municipality(sam_reply_t *r, const Samordna__V1__Municipality *m)
{
    char f[80];
    if (registry_check_id(r, "municipality.id", m->id, true) ||
        registry_check_text(r, "municipality.name", m->name, REGISTRY_NAME_MAX, true) ||
        registry_check_count(r, "municipality.numbers", m->n_numbers, false) ||
        registry_check_count(r, "municipality.constituents", m->n_constituents, false) ||
        registry_check_text(r, "municipality.note", m->note, REGISTRY_TEXT_MAX, false))
        return -1;
    if (m->population < 0 || m->population > 100000000)
        return sam_reply_error(r, SAM_BAD_REQUEST,
                               "municipality.population: %lld is not a population",
                               (long long)m->population);
    for (size_t i = 0; i < m->n_numbers; i++) {
        const Samordna__V1__MunicipalityNumber *n = m->numbers[i];
        snprintf(f, sizeof f, "municipality.numbers[%zu].number", i);
        if (registry_check_number(r, f, n->number)) return -1;
        snprintf(f, sizeof f, "municipality.numbers[%zu].from", i);
        if (registry_check_date(r, f, n->from, false)) return -1;
        snprintf(f, sizeof f, "municipality.numbers[%zu].until", i);
        if (registry_check_date(r, f, n->until, false)) return -1;
        if (n->from[0] && n->until[0] && strcmp(n->from, n->until) > 0)
            return sam_reply_error(r, SAM_BAD_REQUEST, "%s: %s is before from %s", f, n->until,
                                   n->from);
    }
    for (size_t i = 0; i < m->n_constituents; i++) {
        snprintf(f, sizeof f, "municipality.constituents[%zu].name", i);
        if (registry_check_text(r, f, m->constituents[i]->name, REGISTRY_NAME_MAX, true)) return -1;
        snprintf(f, sizeof f, "municipality.constituents[%zu].number", i);
        if (registry_check_number(r, f, m->constituents[i]->number)) return -1;
    }
    if (m->successor) {
        const Samordna__V1__Successor *s = m->successor;
        if (registry_check_id(r, "municipality.successor.municipality", s->municipality, false) ||
            registry_check_text(r, "municipality.successor.name", s->name, REGISTRY_NAME_MAX,
                                true) ||
            (s->number[0] &&
             registry_check_number(r, "municipality.successor.number", s->number)) ||
            registry_check_date(r, "municipality.successor.from", s->from, true))
            return -1;
        if (strcmp(s->municipality, m->id) == 0)
            return sam_reply_error(r, SAM_BAD_REQUEST,
                                   "municipality.successor.municipality: a municipality cannot "
                                   "succeed itself");
    }
    if (m->n_predecessors)
        return sam_reply_error(r, SAM_BAD_REQUEST,
                               "municipality.predecessors: kept by the registry from successors "
                               "and mergers, not published");
    return 0;
}

/* Adds `id` to the predecessors of municipality `into` (which exists). Returns 0, -1 (reply
   set) or a store error. */
static int s_add_predecessor(registry_t *reg, MDB_txn *txn, const char *into, const char *id,
                             sam_reply_t *reply)
{
    Samordna__V1__Municipality *m = NULL;
    int rc = registry_get(txn, reg->store.municipalities, into,
                          &samordna__v1__municipality__descriptor, (ProtobufCMessage **)&m);
    if (rc) return rc;
    char **ids = calloc(m->n_predecessors + 1, sizeof *ids);
    if (!ids) {
        FREE_MSG(m);
        return sam_reply_error(reply, SAM_INTERNAL, "municipality: out of memory");
    }
    if (m->n_predecessors) memcpy(ids, m->predecessors, m->n_predecessors * sizeof *ids);
    ids[m->n_predecessors] = (char *)id;
    Samordna__V1__Municipality nu = *m;
    nu.predecessors = ids;
    nu.n_predecessors = m->n_predecessors + 1;
    rc = s_put(txn, reg->store.municipalities, into, &nu.base);
    free(ids);
    FREE_MSG(m);
    return rc;
}

/* municipality.registered: Municipality → a new municipality; when its successor names a
   registered municipality, that one lists it among its predecessors. */
int registry_apply_municipality_registered(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                                           sam_reply_t *reply)
{
    registry_t *reg = s_reg(svc);
    const Samordna__V1__Municipality *m = (const Samordna__V1__Municipality *)ev->msg;
    int rc = -1;
    if (s_check_municipality(reply, m)) goto done;
    if (!s_admin(ev) && !s_owns_a_programme(reg, txn, s_publisher(ev))) {
        s_forbidden(reply, "municipality.id", ev, "owns no programme");
        goto done;
    }
    if (s_is_new(reply, txn, reg->store.municipalities, "municipality.id", m->id)) goto done;
    const char *succ = m->successor ? m->successor->municipality : "";
    if (succ[0] && s_ref(reply, txn, reg->store.municipalities,
                         "municipality.successor.municipality", "municipality", succ))
        goto done;
    rc = s_put(txn, reg->store.municipalities, m->id, &m->base);
    if (rc == 0 && succ[0]) rc = s_add_predecessor(reg, txn, succ, m->id, reply);
done:
    return rc;
}

/* The number of municipality m valid on `date` (the latest one when none says so). */
static const char *s_number_on(const Samordna__V1__Municipality *m, const char *date)
{
    const char *best = "";
    for (size_t i = 0; i < m->n_numbers; i++) {
        const Samordna__V1__MunicipalityNumber *n = m->numbers[i];
        bool after = !n->from[0] || strcmp(n->from, date) <= 0;
        bool before = !n->until[0] || strcmp(date, n->until) <= 0;
        if (after && before) return n->number;
        best = n->number;
    }
    return best;
}

/* municipality.merged: MunicipalityMerger → each merged municipality gets `into` as its
   successor (its record is kept), `into` lists them as predecessors. */
int registry_apply_municipality_merged(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                                       sam_reply_t *reply)
{
    registry_t *reg = s_reg(svc);
    const Samordna__V1__MunicipalityMerger *mg = (const Samordna__V1__MunicipalityMerger *)ev->msg;
    Samordna__V1__Municipality *into = NULL, *old = NULL;
    int rc = -1;
    char f[64];
    if (registry_check_count(reply, "merger.merged", mg->n_merged, true) ||
        registry_check_id(reply, "merger.into", mg->into, true) ||
        registry_check_date(reply, "merger.from", mg->from, true))
        goto done;
    for (size_t i = 0; i < mg->n_merged; i++) {
        snprintf(f, sizeof f, "merger.merged[%zu]", i);
        if (registry_check_id(reply, f, mg->merged[i], true)) goto done;
        if (strcmp(mg->merged[i], mg->into) == 0) {
            sam_reply_error(reply, SAM_BAD_REQUEST, "%s: '%s' cannot merge into itself", f,
                            mg->into);
            goto done;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(mg->merged[i], mg->merged[j]) == 0) {
                sam_reply_error(reply, SAM_BAD_REQUEST, "%s: '%s' is listed twice", f,
                                mg->merged[i]);
                goto done;
            }
    }
    if (!s_admin(ev) && !s_owns_a_programme(reg, txn, s_publisher(ev))) {
        s_forbidden(reply, "merger.into", ev, "owns no programme");
        goto done;
    }
    if ((rc = s_load(reply, txn, reg->store.municipalities, mg->into,
                     &samordna__v1__municipality__descriptor, (ProtobufCMessage **)&into,
                     SAM_UNPROCESSABLE, "merger.into", "municipality")))
        goto done;
    rc = -1;
    if (into->successor && into->successor->municipality[0]) {
        sam_reply_error(reply, SAM_CONFLICT, "merger.into: '%s' was itself merged into '%s'",
                        mg->into, into->successor->municipality);
        goto done;
    }
    for (size_t i = 0; i < mg->n_merged; i++) {
        snprintf(f, sizeof f, "merger.merged[%zu]", i);
        if ((rc = s_load(reply, txn, reg->store.municipalities, mg->merged[i],
                         &samordna__v1__municipality__descriptor, (ProtobufCMessage **)&old,
                         SAM_UNPROCESSABLE, f, "municipality")))
            goto done;
        rc = -1;
        if (old->successor && old->successor->municipality[0]) {
            sam_reply_error(reply, SAM_CONFLICT, "%s: '%s' was already merged into '%s' on %s", f,
                            old->id, old->successor->municipality, old->successor->from);
            goto done;
        }
        Samordna__V1__Successor s = SAMORDNA__V1__SUCCESSOR__INIT;
        s.municipality = into->id;
        s.name = into->name;
        s.number = (char *)s_number_on(into, mg->from);
        s.from = mg->from;
        Samordna__V1__Municipality nu = *old;
        nu.successor = &s;
        int wrc = s_put(txn, reg->store.municipalities, old->id, &nu.base);
        if (wrc == 0) wrc = s_add_predecessor(reg, txn, mg->into, old->id, reply);
        if (wrc) {
            rc = wrc;
            goto done;
        }
        FREE_MSG(old);
    }
    rc = 0;
done:
    FREE_MSG(old);
    FREE_MSG(into);
    return rc;
}

int registry_resolve_municipality(registry_t *reg, MDB_txn *txn, const char *id,
                                  Samordna__V1__Municipality **out,
                                  Samordna__V1__Municipality **merged_from)
{
    *out = NULL;
    *merged_from = NULL;
    Samordna__V1__Municipality *m = NULL;
    int rc = registry_get(txn, reg->store.municipalities, id,
                          &samordna__v1__municipality__descriptor, (ProtobufCMessage **)&m);
    if (rc) return rc;
    /* Follow successors that are registered; a chain longer than 8 stops where it is. */
    for (int hop = 0; hop < 8 && m->successor && m->successor->municipality[0]; hop++) {
        Samordna__V1__Municipality *next = NULL;
        rc = registry_get(txn, reg->store.municipalities, m->successor->municipality,
                          &samordna__v1__municipality__descriptor, (ProtobufCMessage **)&next);
        if (rc == MDB_NOTFOUND) break;
        if (rc) {
            FREE_MSG(m);
            if (*merged_from) FREE_MSG(*merged_from);
            return rc;
        }
        if (!*merged_from)
            *merged_from = m;
        else
            FREE_MSG(m);
        m = next;
    }
    *out = m;
    return 0;
}

/* ---- programmes ---------------------------------------------------------------------------- */

static int s_check_programme(sam_reply_t *r, const Samordna__V1__Programme *p)
{
    char f[64];
    if (registry_check_id(r, "programme.id", p->id, true) ||
        registry_check_text(r, "programme.name", p->name, REGISTRY_NAME_MAX, true) ||
        registry_check_text(r, "programme.motto", p->motto, REGISTRY_TEXT_MAX, false) ||
        registry_check_id(r, "programme.owner", p->owner, true) ||
        registry_check_id(r, "programme.leadership", p->leadership, false) ||
        registry_check_text(r, "programme.steering_group", p->steering_group, REGISTRY_TEXT_MAX,
                            false) ||
        registry_check_count(r, "programme.themes", p->n_themes, false) ||
        registry_check_count(r, "programme.goals", p->n_goals, false))
        return -1;
    if (p->briefing_interval_months < 1 || p->briefing_interval_months > 24)
        return sam_reply_error(r, SAM_BAD_REQUEST,
                               "programme.briefing_interval_months: %u is not 1 to 24 months",
                               p->briefing_interval_months);
    if (p->period) {
        if (registry_check_date(r, "programme.period.from", p->period->from, true) ||
            registry_check_date(r, "programme.period.to", p->period->to, false))
            return -1;
        if (p->period->to[0] && strcmp(p->period->from, p->period->to) > 0)
            return sam_reply_error(r, SAM_BAD_REQUEST, "programme.period.to: %s is before from %s",
                                   p->period->to, p->period->from);
    }
    for (size_t i = 0; i < p->n_themes; i++) {
        snprintf(f, sizeof f, "programme.themes[%zu]", i);
        if (registry_check_text(r, f, p->themes[i], REGISTRY_TEXT_MAX, true)) return -1;
    }
    for (size_t i = 0; i < p->n_goals; i++) {
        snprintf(f, sizeof f, "programme.goals[%zu]", i);
        if (registry_check_text(r, f, p->goals[i], REGISTRY_TEXT_MAX, true)) return -1;
    }
    return 0;
}

/* programme.registered: Programme → a new programme owned by an agency. */
int registry_apply_programme_registered(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                                        sam_reply_t *reply)
{
    registry_t *reg = s_reg(svc);
    const Samordna__V1__Programme *p = (const Samordna__V1__Programme *)ev->msg;
    int rc = -1;
    if (s_check_programme(reply, p)) goto done;
    if (s_acts_as(reply, ev, "programme.owner", p->owner, "may register only programmes it owns"))
        goto done;
    if (s_is_new(reply, txn, reg->store.programmes, "programme.id", p->id)) goto done;
    if (s_ref(reply, txn, reg->store.agencies, "programme.owner", "agency", p->owner) ||
        (p->leadership[0] &&
         s_ref(reply, txn, reg->store.agencies, "programme.leadership", "agency", p->leadership)))
        goto done;
    rc = s_put(txn, reg->store.programmes, p->id, &p->base);
done:
    return rc;
}

/* ---- invitations --------------------------------------------------------------------------- */

/* invitation.sent: Invitation (without answer) → a municipality is invited to a programme. */
int registry_apply_invitation_sent(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                                   sam_reply_t *reply)
{
    registry_t *reg = s_reg(svc);
    const Samordna__V1__Invitation *inv = (const Samordna__V1__Invitation *)ev->msg;
    int rc = -1;
    char key[REGISTRY_KEY_MAX + 1];
    if (registry_check_id(reply, "invitation.programme", inv->programme, true) ||
        registry_check_id(reply, "invitation.municipality", inv->municipality, true) ||
        registry_check_date(reply, "invitation.sent", inv->sent, false) ||
        registry_check_text(reply, "invitation.note", inv->note, REGISTRY_TEXT_MAX, false))
        goto done;
    if (inv->answer || inv->channel || inv->answered[0]) {
        sam_reply_error(reply, SAM_BAD_REQUEST,
                        "invitation.answer: an answer is published as invitation.answered");
        goto done;
    }
    if (!s_admin(ev) && !s_owns_programme(reg, txn, s_publisher(ev), inv->programme)) {
        s_forbidden(reply, "invitation.programme", ev, "does not own the programme");
        goto done;
    }
    registry_invitation_key(key, inv->programme, inv->municipality);
    if (registry_has(txn, reg->store.invitations, key)) {
        sam_reply_error(reply, SAM_CONFLICT, "invitation: '%s' was already invited to '%s'",
                        inv->municipality, inv->programme);
        goto done;
    }
    if (s_ref(reply, txn, reg->store.programmes, "invitation.programme", "programme",
              inv->programme) ||
        s_ref(reply, txn, reg->store.municipalities, "invitation.municipality", "municipality",
              inv->municipality))
        goto done;
    rc = s_put(txn, reg->store.invitations, key, &inv->base);
done:
    return rc;
}

/* invitation.answered: InvitationAnswer → the municipality's yes or no, how it was given. */
int registry_apply_invitation_answered(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                                       sam_reply_t *reply)
{
    registry_t *reg = s_reg(svc);
    const Samordna__V1__InvitationAnswer *a = (const Samordna__V1__InvitationAnswer *)ev->msg;
    Samordna__V1__Invitation *inv = NULL;
    int rc = -1;
    char key[REGISTRY_KEY_MAX + 1];
    if (registry_check_id(reply, "invitation.programme", a->programme, true) ||
        registry_check_id(reply, "invitation.municipality", a->municipality, true) ||
        registry_check_enum(reply, "invitation.answer", &samordna__v1__answer__descriptor,
                            a->answer) ||
        registry_check_enum(reply, "invitation.channel", &samordna__v1__channel__descriptor,
                            a->channel) ||
        registry_check_date(reply, "invitation.answered", a->answered, false) ||
        registry_check_text(reply, "invitation.note", a->note, REGISTRY_TEXT_MAX, false))
        goto done;
    if (!s_admin(ev) && !s_is(ev, a->municipality) &&
        !s_owns_programme(reg, txn, s_publisher(ev), a->programme)) {
        s_forbidden(reply, "invitation.municipality", ev,
                    "is neither the invited municipality nor the programme's owner");
        goto done;
    }
    registry_invitation_key(key, a->programme, a->municipality);
    int grc = registry_get(txn, reg->store.invitations, key, &samordna__v1__invitation__descriptor,
                           (ProtobufCMessage **)&inv);
    if (grc == MDB_NOTFOUND) {
        sam_reply_error(reply, SAM_NOT_FOUND,
                        "invitation: '%s' was not invited to '%s' (publish invitation.sent first)",
                        a->municipality, a->programme);
        goto done;
    }
    if (grc) {
        rc = grc;
        goto done;
    }
    if (inv->answer) {
        sam_reply_error(reply, SAM_CONFLICT, "invitation.answer: '%s' has already answered '%s'",
                        a->municipality, a->programme);
        goto done;
    }
    Samordna__V1__Invitation nu = *inv;
    nu.answer = a->answer;
    nu.channel = a->channel;
    nu.answered = a->answered;
    if (a->note[0]) nu.note = a->note;
    rc = s_put(txn, reg->store.invitations, key, &nu.base);
done:
    FREE_MSG(inv);
    return rc;
}

/* ---- pilots -----------------------------------------------------------------------------------
 */

/* Syntax and references of a pilot (the same for registered and updated). */
static int s_check_pilot(registry_t *reg, MDB_txn *txn, sam_reply_t *r,
                         const Samordna__V1__Pilot *p)
{
    char f[64];
    if (registry_check_id(r, "pilot.id", p->id, true) ||
        registry_check_id(r, "pilot.programme", p->programme, true) ||
        registry_check_id(r, "pilot.municipality", p->municipality, true) ||
        registry_check_text(r, "pilot.challenge", p->challenge, REGISTRY_TEXT_MAX, true) ||
        registry_check_id(r, "pilot.investment_leader", p->investment_leader, true) ||
        registry_check_count(r, "pilot.investment_team", p->n_investment_team, false) ||
        registry_check_id(r, "pilot.contact_person", p->contact_person, false) ||
        registry_check_text(r, "pilot.municipal_steering_group", p->municipal_steering_group,
                            REGISTRY_TEXT_MAX, false) ||
        registry_check_count(r, "pilot.aims", p->n_aims, false))
        return -1;
    for (size_t i = 0; i < p->n_investment_team; i++) {
        snprintf(f, sizeof f, "pilot.investment_team[%zu]", i);
        if (registry_check_id(r, f, p->investment_team[i], true)) return -1;
    }
    for (size_t i = 0; i < p->n_aims; i++) {
        snprintf(f, sizeof f, "pilot.aims[%zu]", i);
        if (registry_check_text(r, f, p->aims[i], REGISTRY_TEXT_MAX, true)) return -1;
    }
    if (s_ref(r, txn, reg->store.programmes, "pilot.programme", "programme", p->programme) ||
        s_ref(r, txn, reg->store.municipalities, "pilot.municipality", "municipality",
              p->municipality) ||
        s_ref(r, txn, reg->store.agencies, "pilot.investment_leader", "agency",
              p->investment_leader) ||
        (p->contact_person[0] &&
         s_ref(r, txn, reg->store.people, "pilot.contact_person", "person", p->contact_person)))
        return -1;
    for (size_t i = 0; i < p->n_investment_team; i++) {
        snprintf(f, sizeof f, "pilot.investment_team[%zu]", i);
        if (s_ref(r, txn, reg->store.agencies, f, "agency", p->investment_team[i])) return -1;
    }
    return 0;
}

/* pilot.registered: Pilot → a municipality's pilot in a programme. */
int registry_apply_pilot_registered(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                                    sam_reply_t *reply)
{
    registry_t *reg = s_reg(svc);
    const Samordna__V1__Pilot *p = (const Samordna__V1__Pilot *)ev->msg;
    int rc = -1;
    if (registry_check_id(reply, "pilot.id", p->id, true) ||
        registry_check_id(reply, "pilot.programme", p->programme, true))
        goto done;
    if (!s_admin(ev) && !s_owns_programme(reg, txn, s_publisher(ev), p->programme)) {
        s_forbidden(reply, "pilot.programme", ev, "does not own the programme");
        goto done;
    }
    if (s_is_new(reply, txn, reg->store.pilots, "pilot.id", p->id)) goto done;
    if (s_check_pilot(reg, txn, reply, p)) goto done;
    rc = s_put(txn, reg->store.pilots, p->id, &p->base);
done:
    return rc;
}

/* pilot.updated: Pilot → the pilot's record replaced; programme and municipality stay. */
int registry_apply_pilot_updated(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                                 sam_reply_t *reply)
{
    registry_t *reg = s_reg(svc);
    const Samordna__V1__Pilot *p = (const Samordna__V1__Pilot *)ev->msg;
    Samordna__V1__Pilot *old = NULL;
    int rc = -1;
    if (registry_check_id(reply, "pilot.id", p->id, true)) goto done;
    if ((rc = s_load(reply, txn, reg->store.pilots, p->id, &samordna__v1__pilot__descriptor,
                     (ProtobufCMessage **)&old, SAM_NOT_FOUND, "pilot.id", "pilot")))
        goto done;
    rc = -1;
    if (!s_admin(ev) && !s_is(ev, old->investment_leader) &&
        !s_owns_programme(reg, txn, s_publisher(ev), old->programme)) {
        s_forbidden(reply, "pilot.id", ev,
                    "is neither the pilot's investment leader nor the programme's owner");
        goto done;
    }
    if (strcmp(old->programme, p->programme) != 0 || strcmp(old->municipality, p->municipality)) {
        sam_reply_error(reply, SAM_CONFLICT,
                        "pilot.municipality: a pilot keeps its programme and municipality "
                        "(%s, %s)",
                        old->programme, old->municipality);
        goto done;
    }
    if (s_check_pilot(reg, txn, reply, p)) goto done;
    if (p->investment_leader_from[0] && registry_check_date(reply, "pilot.investment_leader_from",
                                                            p->investment_leader_from, false))
        goto done;
    /* The record: the leaders it had before are the registry's to keep, never the payload's;
       a new leader puts the one before among them, with when. */
    Samordna__V1__Pilot upd = *p;
    Samordna__V1__FormerLeader prev = SAMORDNA__V1__FORMER_LEADER__INIT;
    Samordna__V1__FormerLeader **formers = NULL;
    upd.former_leaders = old->former_leaders;
    upd.n_former_leaders = old->n_former_leaders;
    if (strcmp(old->investment_leader, p->investment_leader) != 0) {
        formers = calloc(old->n_former_leaders + 1, sizeof *formers);
        if (!formers) {
            sam_reply_error(reply, SAM_INTERNAL, "out of memory");
            goto done;
        }
        if (old->n_former_leaders)
            memcpy(formers, old->former_leaders, old->n_former_leaders * sizeof *formers);
        prev.agency = old->investment_leader;
        prev.from = old->investment_leader_from;
        prev.until = p->investment_leader_from;
        formers[old->n_former_leaders] = &prev;
        upd.former_leaders = formers;
        upd.n_former_leaders = old->n_former_leaders + 1;
    } else if (!p->investment_leader_from[0]) {
        upd.investment_leader_from = old->investment_leader_from; /* the same leader, as since */
    }
    rc = s_put(txn, reg->store.pilots, p->id, &upd.base);
    free(formers);
done:
    FREE_MSG(old);
    return rc;
}

/* ---- people -----------------------------------------------------------------------------------
 */

/* person.registered: Person (id, name, contact, agency) → a new person. The registry records
   which outbox record holds the person's data, so an erasure can scrub it. */
int registry_apply_person_registered(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                                     sam_reply_t *reply)
{
    registry_t *reg = s_reg(svc);
    const Samordna__V1__Person *p = (const Samordna__V1__Person *)ev->msg;
    int rc = -1;
    if (registry_check_id(reply, "person.id", p->id, true) ||
        registry_check_text(reply, "person.name", p->name, REGISTRY_NAME_MAX, true) ||
        registry_check_text(reply, "person.email", p->email, 254, false) ||
        registry_check_text(reply, "person.phone", p->phone, 32, false) ||
        registry_check_id(reply, "person.agency", p->agency, false))
        goto done;
    if (p->email[0] && !strchr(p->email, '@')) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "person.email: '%s' is not an e-mail address",
                        p->email);
        goto done;
    }
    if (p->n_roles || p->erased || p->erased_on[0] || p->n_event_seqs) {
        sam_reply_error(reply, SAM_BAD_REQUEST,
                        "person.roles: roles and erasure are published as role.assigned and "
                        "person.erased");
        goto done;
    }
    if (s_acts_as(reply, ev, "person.agency", p->agency, "may register only its own people"))
        goto done;
    if (s_is_new(reply, txn, reg->store.people, "person.id", p->id)) goto done;
    if (p->agency[0] &&
        s_ref(reply, txn, reg->store.agencies, "person.agency", "agency", p->agency))
        goto done;
    uint64_t seq = ev->seq;
    Samordna__V1__Person nu = *p;
    nu.event_seqs = &seq;
    nu.n_event_seqs = 1;
    rc = s_put(txn, reg->store.people, p->id, &nu.base);
done:
    return rc;
}

/* Reads a person who must exist (404 otherwise) and may be changed by the publisher.
   Returns 0 with *out set (free it), -1 (reply set) or a store error. */
static int s_person_for_change(registry_t *reg, MDB_txn *txn, const sam_event_t *ev,
                               const char *field, const char *id, Samordna__V1__Person **out,
                               sam_reply_t *reply)
{
    Samordna__V1__Person *p = NULL;
    *out = NULL;
    int grc = registry_get(txn, reg->store.people, id, &samordna__v1__person__descriptor,
                           (ProtobufCMessage **)&p);
    if (grc == MDB_NOTFOUND)
        return sam_reply_error(reply, SAM_NOT_FOUND, "%s: unknown person '%s'", field, id);
    if (grc) return grc;
    if (!s_admin(ev) && !s_is(ev, p->agency)) {
        FREE_MSG(p);
        return s_forbidden(reply, field, ev, "may change only its own people");
    }
    if (p->erased) {
        sam_reply_error(reply, SAM_CONFLICT, "%s: '%s' was erased on %s", field, id, p->erased_on);
        FREE_MSG(p);
        return -1;
    }
    *out = p;
    return 0;
}

/* role.assigned: RoleAssignment → a role the person holds (or held) somewhere. */
int registry_apply_role_assigned(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                                 sam_reply_t *reply)
{
    registry_t *reg = s_reg(svc);
    const Samordna__V1__RoleAssignment *a = (const Samordna__V1__RoleAssignment *)ev->msg;
    Samordna__V1__Person *p = NULL;
    Samordna__V1__RoleHeld **roles = NULL;
    int rc = -1;
    if (registry_check_id(reply, "assignment.person", a->person, true)) goto done;
    if (!a->role) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "assignment.role: required");
        goto done;
    }
    const Samordna__V1__RoleHeld *r = a->role;
    if (registry_check_text(reply, "assignment.role.role", r->role, REGISTRY_NAME_MAX, true) ||
        registry_check_id(reply, "assignment.role.agency", r->agency, false) ||
        registry_check_id(reply, "assignment.role.pilot", r->pilot, false) ||
        registry_check_id(reply, "assignment.role.programme", r->programme, false) ||
        registry_check_date(reply, "assignment.role.from", r->from, false) ||
        registry_check_date(reply, "assignment.role.until", r->until, false))
        goto done;
    if ((r->agency[0] != 0) + (r->pilot[0] != 0) + (r->programme[0] != 0) > 1) {
        sam_reply_error(reply, SAM_BAD_REQUEST,
                        "assignment.role: name at most one of agency, pilot and programme");
        goto done;
    }
    if (r->from[0] && r->until[0] && strcmp(r->from, r->until) > 0) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "assignment.role.until: %s is before from %s",
                        r->until, r->from);
        goto done;
    }
    if ((rc = s_person_for_change(reg, txn, ev, "assignment.person", a->person, &p, reply)))
        goto done;
    rc = -1;
    if (p->n_roles >= REGISTRY_LIST_MAX) {
        sam_reply_error(reply, SAM_UNPROCESSABLE, "assignment.person: '%s' already holds %d roles",
                        p->id, REGISTRY_LIST_MAX);
        goto done;
    }
    if ((r->agency[0] &&
         s_ref(reply, txn, reg->store.agencies, "assignment.role.agency", "agency", r->agency)) ||
        (r->pilot[0] &&
         s_ref(reply, txn, reg->store.pilots, "assignment.role.pilot", "pilot", r->pilot)) ||
        (r->programme[0] && s_ref(reply, txn, reg->store.programmes, "assignment.role.programme",
                                  "programme", r->programme)))
        goto done;
    roles = calloc(p->n_roles + 1, sizeof *roles);
    if (!roles) {
        sam_reply_error(reply, SAM_INTERNAL, "assignment: out of memory");
        goto done;
    }
    if (p->n_roles) memcpy(roles, p->roles, p->n_roles * sizeof *roles);
    roles[p->n_roles] = (Samordna__V1__RoleHeld *)r;
    Samordna__V1__Person nu = *p;
    nu.roles = roles;
    nu.n_roles = p->n_roles + 1;
    rc = s_put(txn, reg->store.people, p->id, &nu.base);
done:
    free(roles);
    FREE_MSG(p);
    return rc;
}

/* Replaces the payload of the outbox record `seq` with what is left of the person after
   erasure. A record that is not there (never, but the outbox is not ours) is skipped.
   Returns 0, -1 (reply set) or a store error. */
static int s_scrub_outbox(registry_t *reg, MDB_txn *txn, uint64_t seq,
                          const Samordna__V1__Person *left, sam_reply_t *reply)
{
    uint8_t key[8];
    sam_be64_put(key, seq);
    Samordna__V1__StoredEvent *se = NULL;
    int rc = sam_store_get_msg(txn, reg->store.outbox, key, sizeof key,
                               &samordna__v1__stored_event__descriptor, (ProtobufCMessage **)&se);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return rc;
    size_t len = protobuf_c_message_get_packed_size(&left->base);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        FREE_MSG(se);
        return sam_reply_error(reply, SAM_INTERNAL, "erasure: out of memory");
    }
    protobuf_c_message_pack(&left->base, buf);
    Io__Cloudevents__V1__CloudEvent ce = *se->event;
    ce.data_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_BINARY_DATA;
    ce.binary_data.data = buf;
    ce.binary_data.len = len;
    Samordna__V1__StoredEvent nu = *se;
    nu.event = &ce;
    rc = sam_store_put_msg(txn, reg->store.outbox, key, sizeof key, &nu.base, 0);
    free(buf);
    FREE_MSG(se);
    return rc;
}

/* person.erased: PersonErasure → name and contact details removed from the registry and from
   the outbox records that held them; the person's roles stay, so the fact that a role was
   held is kept. */
int registry_apply_person_erased(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                                 sam_reply_t *reply)
{
    registry_t *reg = s_reg(svc);
    const Samordna__V1__PersonErasure *e = (const Samordna__V1__PersonErasure *)ev->msg;
    Samordna__V1__Person *p = NULL;
    int rc = -1;
    if (registry_check_id(reply, "erasure.person", e->person, true) ||
        registry_check_date(reply, "erasure.requested", e->requested, false))
        goto done;
    if ((rc = s_person_for_change(reg, txn, ev, "erasure.person", e->person, &p, reply))) goto done;
    char today[11];
    sam_clock_date_of(ev->now_ms, today);
    Samordna__V1__Person left = SAMORDNA__V1__PERSON__INIT;
    left.id = p->id;
    left.agency = p->agency;
    left.erased = true;
    left.erased_on = e->requested[0] ? e->requested : today;
    for (size_t i = 0; i < p->n_event_seqs; i++)
        if ((rc = s_scrub_outbox(reg, txn, p->event_seqs[i], &left, reply))) goto done;
    left.roles = p->roles;
    left.n_roles = p->n_roles;
    rc = s_put(txn, reg->store.people, p->id, &left.base);
done:
    FREE_MSG(p);
    return rc;
}

/* ---- reports -----------------------------------------------------------------------------------
 */

/* report.published: Report → a publication of an agency (e.g. the evaluation report). */
int registry_apply_report_published(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                                    sam_reply_t *reply)
{
    registry_t *reg = s_reg(svc);
    const Samordna__V1__Report *r = (const Samordna__V1__Report *)ev->msg;
    int rc = -1;
    if (registry_check_id(reply, "report.id", r->id, true) ||
        registry_check_id(reply, "report.by", r->by, true) ||
        registry_check_text(reply, "report.title", r->title, REGISTRY_TEXT_MAX, true) ||
        registry_check_text(reply, "report.series", r->series, REGISTRY_NAME_MAX, false) ||
        registry_check_date(reply, "report.published", r->published, false) ||
        registry_check_text(reply, "report.url", r->url, 500, false))
        goto done;
    if (s_acts_as(reply, ev, "report.by", r->by, "may publish only its own reports")) goto done;
    if (s_is_new(reply, txn, reg->store.reports, "report.id", r->id)) goto done;
    if (s_ref(reply, txn, reg->store.agencies, "report.by", "agency", r->by)) goto done;
    rc = s_put(txn, reg->store.reports, r->id, &r->base);
done:
    return rc;
}
