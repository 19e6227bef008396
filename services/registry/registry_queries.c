/*  registry_queries.c — the registry's queries: get by id and paged, filtered lists.

    Every query runs on a read transaction the runtime opens. Requests are GetRequest or
    ListRequest (registry.proto). A list answers at most page_size records (default 100, at
    most 1000) in id order; its next_page_token is the last key of the page when more match.
    A filter that does not apply to the table is refused (400 naming it), so a misspelt
    call never silently answers the whole table.
*/
#include "registry.h"
#include "sam_check.h"
#include "registry_check.h"

#include <stdio.h>
#include <string.h>

#define FREE_MSG(m)                                                                                \
    do {                                                                                           \
        if (m) protobuf_c_message_free_unpacked(&(m)->base, NULL);                                 \
        (m) = NULL;                                                                                \
    } while (0)

#define PAGE_DEFAULT 100
#define PAGE_MAX 1000

static registry_t *s_reg(sam_service_t *svc)
{
    return (registry_t *)sam_service_ctx(svc);
}

/* ---- get ------------------------------------------------------------------------------------ */

/* GetRequest{id} → the record of `dbi` as `desc`, 404 naming the id when there is none. */
static int s_get(MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply, MDB_dbi dbi,
                 const ProtobufCMessageDescriptor *desc, const char *noun)
{
    const Samordna__V1__GetRequest *req = (const Samordna__V1__GetRequest *)call->msg;
    int rc = -1;
    ProtobufCMessage *rec = NULL;
    if (req->number[0]) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "number: applies to municipalities only");
        goto done;
    }
    if (registry_check_id(reply, "id", req->id, true)) goto done;
    int grc = registry_get(txn, dbi, req->id, desc, &rec);
    if (grc == MDB_NOTFOUND) {
        sam_reply_error(reply, SAM_NOT_FOUND, "id: unknown %s '%s'", noun, req->id);
        goto done;
    }
    if (grc) {
        rc = grc;
        goto done;
    }
    if (desc == &samordna__v1__person__descriptor)
        ((Samordna__V1__Person *)rec)->n_event_seqs = 0; /* internal bookkeeping */
    rc = sam_reply_message(reply, rec);
done:
    if (rec) protobuf_c_message_free_unpacked(rec, NULL);
    return rc;
}

/* The get queries that are s_get on one table: name, table, message type, noun. */
#define S_GET_QUERY(name, table, type, noun)                                                       \
    int registry_query_##name##_get(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,      \
                                    sam_reply_t *reply)                                            \
    {                                                                                              \
        return s_get(txn, call, reply, s_reg(svc)->store.table,                                    \
                     &samordna__v1__##type##__descriptor, noun);                                   \
    }
S_GET_QUERY(agencies, agencies, agency, "agency")
S_GET_QUERY(programmes, programmes, programme, "programme")
S_GET_QUERY(pilots, pilots, pilot, "pilot")
S_GET_QUERY(people, people, person, "person")
S_GET_QUERY(reports, reports, report, "report")
#undef S_GET_QUERY

/* Whether m ever had `number`: one of its own, a constituent's (Moss 0104 in Moss/Rygge), or
   the number it took at a merger (Indre Østfold 3014). */
static bool s_had_number(const Samordna__V1__Municipality *m, const char *number)
{
    for (size_t j = 0; j < m->n_numbers; j++)
        if (strcmp(m->numbers[j]->number, number) == 0) return true;
    for (size_t j = 0; j < m->n_constituents; j++)
        if (strcmp(m->constituents[j]->number, number) == 0) return true;
    return m->successor && strcmp(m->successor->number, number) == 0;
}

/* The id of the municipality that held `number` (any period, its own numbers first), or NULL.
   Returns a copy in out. */
static bool s_find_number(registry_t *reg, MDB_txn *txn, const char *number, char *out, size_t len)
{
    registry_page_t page;
    const char *after = "";
    char token[REGISTRY_KEY_MAX + 1] = "";
    bool found = false;
    do {
        if (registry_page(txn, reg->store.municipalities, &samordna__v1__municipality__descriptor,
                          after, PAGE_MAX, NULL, NULL, &page))
            return false;
        for (size_t i = 0; i < page.n && !found; i++) {
            Samordna__V1__Municipality *m = (Samordna__V1__Municipality *)page.items[i];
            if (s_had_number(m, number)) {
                snprintf(out, len, "%s", m->id);
                found = true;
            }
        }
        snprintf(token, sizeof token, "%s", page.next);
        after = token;
        registry_page_clear(&page);
    } while (!found && token[0]);
    return found;
}

/* registry.municipalities.get: GetRequest{id | number} → MunicipalityLookup. An id that was
   merged resolves to its registered successor and says so. */
int registry_query_municipalities_get(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                                      sam_reply_t *reply)
{
    registry_t *reg = s_reg(svc);
    const Samordna__V1__GetRequest *req = (const Samordna__V1__GetRequest *)call->msg;
    Samordna__V1__Municipality *m = NULL, *from = NULL;
    int rc = -1;
    char id[REGISTRY_KEY_MAX + 1];
    if (req->id[0] && req->number[0]) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "number: give an id or a number, not both");
        goto done;
    }
    if (req->number[0]) {
        if (registry_check_number(reply, "number", req->number)) goto done;
        if (!s_find_number(reg, txn, req->number, id, sizeof id)) {
            sam_reply_error(reply, SAM_NOT_FOUND, "number: no municipality had number %s",
                            req->number);
            goto done;
        }
    } else {
        if (registry_check_id(reply, "id", req->id, true)) goto done;
        snprintf(id, sizeof id, "%s", req->id);
    }
    int grc = registry_resolve_municipality(reg, txn, id, &m, &from);
    if (grc == MDB_NOTFOUND) {
        sam_reply_error(reply, SAM_NOT_FOUND, "id: unknown municipality '%s'", id);
        goto done;
    }
    if (grc) {
        rc = grc;
        goto done;
    }
    Samordna__V1__MunicipalityLookup out = SAMORDNA__V1__MUNICIPALITY_LOOKUP__INIT;
    char msg[512] = "";
    out.municipality = m;
    if (from) {
        out.resolved_from = id;
        snprintf(msg, sizeof msg, "%s was merged into %s on %s", id, m->id, from->successor->from);
    } else if (m->successor) {
        const Samordna__V1__Successor *s = m->successor;
        snprintf(msg, sizeof msg, "%s became %s%s%s%s on %s", m->id, s->name,
                 s->number[0] ? " (" : "", s->number, s->number[0] ? ")" : "", s->from);
    }
    out.message = msg;
    rc = sam_reply_message(reply, &out.base);
done:
    FREE_MSG(m);
    FREE_MSG(from);
    return rc;
}

/* ---- lists ---------------------------------------------------------------------------------- */

/* Which ListRequest filters a table takes. */
enum {
    F_AGENCY = 1 << 0,
    F_MUNICIPALITY = 1 << 1,
    F_PROGRAMME = 1 << 2,
    F_KIND = 1 << 3,
    F_ROLE = 1 << 4,
    F_ANSWER = 1 << 5,
};

/* A ListRequest with its word filters turned into enum values. */
typedef struct {
    const Samordna__V1__ListRequest *req;
    int kind;   /* AgencyKind, 0 = any */
    int role;   /* AgencyRole, 0 = any */
    int answer; /* Answer, -1 = any (0 = not answered) */
} s_filter_t;

/* Checks the call's ListRequest against the filters the table takes. Returns the request
   (the runtime's) or NULL with the refusal in reply. */
static const Samordna__V1__ListRequest *s_list_request(sam_service_t *svc, MDB_txn *txn,
                                                       const sam_call_t *call, sam_reply_t *reply,
                                                       unsigned allowed, const char *table,
                                                       s_filter_t *f, size_t *page_size)
{
    const registry_store_t *st = &s_reg(svc)->store;
    const Samordna__V1__ListRequest *req = (const Samordna__V1__ListRequest *)call->msg;
    /* An id filter names a record that must exist: an unknown one is a 404, not an empty
       list (a misspelt id would otherwise read as "nothing there"). */
    struct {
        unsigned bit;
        const char *name;
        const char *value;
        MDB_dbi dbi; /* the table the id must be in; 0: not an id */
    } given[] = {
        {F_AGENCY, "agency", req->agency, st->agencies},
        {F_MUNICIPALITY, "municipality", req->municipality, st->municipalities},
        {F_PROGRAMME, "programme", req->programme, st->programmes},
        {F_KIND, "kind", req->kind, 0},
        {F_ROLE, "role", req->role, 0},
        {F_ANSWER, "answer", req->answer, 0},
    };
    *f = (s_filter_t){.req = req, .kind = 0, .role = 0, .answer = -1};
    for (size_t i = 0; i < sizeof given / sizeof given[0]; i++) {
        if (!given[i].value[0]) continue;
        if (!(allowed & given[i].bit)) {
            sam_reply_error(reply, SAM_BAD_REQUEST, "%s: not a filter of %s", given[i].name, table);
            return NULL;
        }
        if ((given[i].bit & (F_AGENCY | F_MUNICIPALITY | F_PROGRAMME)) &&
            registry_check_id(reply, given[i].name, given[i].value, true))
            return NULL;
        if (given[i].dbi && !registry_has(txn, given[i].dbi, given[i].value)) {
            sam_reply_error(reply, SAM_NOT_FOUND, "%s: unknown %s '%s'", given[i].name,
                            given[i].name, given[i].value);
            return NULL;
        }
    }
    if (req->kind[0] &&
        (f->kind = registry_enum_value(&samordna__v1__agency_kind__descriptor, req->kind)) < 0) {
        char shown[160], words[512] = "", one[64];
        sam_check_escape(req->kind, 64, shown, sizeof shown);
        const ProtobufCEnumDescriptor *d = &samordna__v1__agency_kind__descriptor;
        for (unsigned i = 0, at = 0; i < d->n_values && at < sizeof words; i++)
            if (d->values[i].value != 0)
                at +=
                    (unsigned)snprintf(words + at, sizeof words - at, "%s%s", at ? ", " : "",
                                       registry_enum_word(d, d->values[i].value, one, sizeof one));
        sam_reply_error(reply, SAM_BAD_REQUEST, "kind: unknown agency kind '%s' (one of %s)", shown,
                        words);
        return NULL;
    }
    if (req->role[0] &&
        (f->role = registry_enum_value(&samordna__v1__agency_role__descriptor, req->role)) < 0) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "role: unknown agency role '%.64s'", req->role);
        return NULL;
    }
    if (req->answer[0]) {
        if (strcmp(req->answer, "none") == 0)
            f->answer = 0;
        else if ((f->answer = registry_enum_value(&samordna__v1__answer__descriptor, req->answer)) <
                 0) {
            sam_reply_error(reply, SAM_BAD_REQUEST, "answer: '%.64s' is not yes, no or none",
                            req->answer);
            return NULL;
        }
    }
    if (req->page_size > PAGE_MAX) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "page_size: at most %d", PAGE_MAX);
        return NULL;
    }
    if (strlen(req->page_token) > REGISTRY_KEY_MAX) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "page_token: not a token of %s", table);
        return NULL;
    }
    *page_size = req->page_size ? req->page_size : PAGE_DEFAULT;
    return req;
}

static bool s_match_agency(const ProtobufCMessage *rec, const void *arg)
{
    const Samordna__V1__Agency *a = (const Samordna__V1__Agency *)rec;
    const s_filter_t *f = arg;
    if (f->kind && (int)a->kind != f->kind) return false;
    if (f->role) {
        bool has = false;
        for (size_t i = 0; i < a->n_roles && !has; i++)
            has = (int)a->roles[i] == f->role;
        if (!has) return false;
    }
    return true;
}

static bool s_match_pilot(const ProtobufCMessage *rec, const void *arg)
{
    const Samordna__V1__Pilot *p = (const Samordna__V1__Pilot *)rec;
    const Samordna__V1__ListRequest *q = ((const s_filter_t *)arg)->req;
    if (q->municipality[0] && strcmp(p->municipality, q->municipality)) return false;
    if (q->programme[0] && strcmp(p->programme, q->programme)) return false;
    if (q->agency[0]) {
        bool in = strcmp(p->investment_leader, q->agency) == 0;
        for (size_t i = 0; i < p->n_investment_team && !in; i++)
            in = strcmp(p->investment_team[i], q->agency) == 0;
        if (!in) return false;
    }
    return true;
}

static bool s_match_invitation(const ProtobufCMessage *rec, const void *arg)
{
    const Samordna__V1__Invitation *inv = (const Samordna__V1__Invitation *)rec;
    const s_filter_t *f = arg;
    if (f->req->municipality[0] && strcmp(inv->municipality, f->req->municipality)) return false;
    if (f->req->programme[0] && strcmp(inv->programme, f->req->programme)) return false;
    if (f->answer >= 0 && (int)inv->answer != f->answer) return false;
    return true;
}

static bool s_match_person(const ProtobufCMessage *rec, const void *arg)
{
    const Samordna__V1__Person *p = (const Samordna__V1__Person *)rec;
    const Samordna__V1__ListRequest *q = ((const s_filter_t *)arg)->req;
    return !q->agency[0] || strcmp(p->agency, q->agency) == 0;
}

static bool s_match_report(const ProtobufCMessage *rec, const void *arg)
{
    const Samordna__V1__Report *r = (const Samordna__V1__Report *)rec;
    const Samordna__V1__ListRequest *q = ((const s_filter_t *)arg)->req;
    return !q->agency[0] || strcmp(r->by, q->agency) == 0;
}

/* One list query: ListRequest → <Type>List of records of `dbi` that `match` keeps. Every list
   reply message has the same shape (items, next_page_token), which the macro fills in. */
#define S_LIST(fn, dbi_field, Rec, rec_desc, List, LIST_INIT, allowed, match, table)               \
    int fn(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply)           \
    {                                                                                              \
        s_filter_t f;                                                                              \
        size_t page_size;                                                                          \
        const Samordna__V1__ListRequest *req =                                                     \
            s_list_request(svc, txn, call, reply, (allowed), table, &f, &page_size);               \
        if (!req) return -1;                                                                       \
        registry_page_t page;                                                                      \
        int prc = registry_page(txn, s_reg(svc)->store.dbi_field, (rec_desc), req->page_token,     \
                                page_size, (match), &f, &page);                                    \
        int rc;                                                                                    \
        if (prc) {                                                                                 \
            rc = prc;                                                                              \
        } else {                                                                                   \
            List out = LIST_INIT;                                                                  \
            out.n_items = page.n;                                                                  \
            out.items = (Rec **)page.items;                                                        \
            out.next_page_token = page.next;                                                       \
            s_strip(page.items, page.n);                                                           \
            rc = sam_reply_message(reply, &out.base);                                              \
            registry_page_clear(&page);                                                            \
        }                                                                                          \
        return rc;                                                                                 \
    }

/* Removes internal bookkeeping from records before they are answered. */
static void s_strip(ProtobufCMessage **items, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (items[i]->descriptor == &samordna__v1__person__descriptor)
            ((Samordna__V1__Person *)items[i])->n_event_seqs = 0;
}

S_LIST(registry_query_agencies_list, agencies, Samordna__V1__Agency,
       &samordna__v1__agency__descriptor, Samordna__V1__AgencyList, SAMORDNA__V1__AGENCY_LIST__INIT,
       F_KIND | F_ROLE, s_match_agency, "agencies")
S_LIST(registry_query_municipalities_list, municipalities, Samordna__V1__Municipality,
       &samordna__v1__municipality__descriptor, Samordna__V1__MunicipalityList,
       SAMORDNA__V1__MUNICIPALITY_LIST__INIT, 0, NULL, "municipalities")
S_LIST(registry_query_programmes_list, programmes, Samordna__V1__Programme,
       &samordna__v1__programme__descriptor, Samordna__V1__ProgrammeList,
       SAMORDNA__V1__PROGRAMME_LIST__INIT, 0, NULL, "programmes")
S_LIST(registry_query_invitations_list, invitations, Samordna__V1__Invitation,
       &samordna__v1__invitation__descriptor, Samordna__V1__InvitationList,
       SAMORDNA__V1__INVITATION_LIST__INIT, F_MUNICIPALITY | F_PROGRAMME | F_ANSWER,
       s_match_invitation, "invitations")
S_LIST(registry_query_pilots_list, pilots, Samordna__V1__Pilot, &samordna__v1__pilot__descriptor,
       Samordna__V1__PilotList, SAMORDNA__V1__PILOT_LIST__INIT,
       F_AGENCY | F_MUNICIPALITY | F_PROGRAMME, s_match_pilot, "pilots")
S_LIST(registry_query_people_list, people, Samordna__V1__Person, &samordna__v1__person__descriptor,
       Samordna__V1__PersonList, SAMORDNA__V1__PERSON_LIST__INIT, F_AGENCY, s_match_person,
       "people")
S_LIST(registry_query_reports_list, reports, Samordna__V1__Report,
       &samordna__v1__report__descriptor, Samordna__V1__ReportList, SAMORDNA__V1__REPORT_LIST__INIT,
       F_AGENCY, s_match_report, "reports")
