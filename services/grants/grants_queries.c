/*  grants_queries.c — the grants service's read side. Every handler runs on a read
    transaction of its own and answers one samordna.v1 message (grants_handlers.h).

    The overview of one recipient is a prefix scan of "by_recipient" (recipient, year,
    funder, award): it touches only that recipient's awards, never the whole table, which is
    what keeps it in milliseconds in a store of hundreds of municipalities and agencies over
    many years. Lists page by their last key: page_token is the last id of the previous page.
*/
#include "grants_handlers.h"
#include "grants_ledger.h"
#include "sam_array.h"
#include "sam_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_PAGE_DEFAULT 100
#define S_PAGE_MAX 1000

static size_t s_page_size(uint32_t asked)
{
    if (asked == 0) return S_PAGE_DEFAULT;
    return asked > S_PAGE_MAX ? S_PAGE_MAX : asked;
}

/* Grows a pointer array by one slot; NULL when out of memory. */
static void **s_push(void ***arr, size_t *n, size_t *cap)
{
    if (sam_array_grow(arr, cap, *n, sizeof **arr, 16)) return NULL;
    return &(*arr)[(*n)++];
}

/* A set of unpacked messages a reply borrows strings from, freed after packing. */
typedef struct {
    ProtobufCMessage **items;
    size_t n, cap;
} s_keep_t;

static bool s_keep(s_keep_t *k, void *msg)
{
    void **slot = s_push((void ***)&k->items, &k->n, &k->cap);
    if (!slot) {
        protobuf_c_message_free_unpacked(msg, NULL);
        return false;
    }
    *slot = msg;
    return true;
}

/*  Appends msg to a reply's list and keeps it for freeing after the reply is packed. Returns
    false (msg freed, the list as it was) when out of memory. */
static bool s_take(void ***arr, size_t *n, size_t *cap, s_keep_t *keep, void *msg)
{
    void **slot = s_push(arr, n, cap);
    if (!slot) {
        protobuf_c_message_free_unpacked(msg, NULL);
        return false;
    }
    if (!s_keep(keep, msg)) { /* freed it; the slot must not stay counted */
        (*n)--;
        return false;
    }
    *slot = msg;
    return true;
}

/*  One candidate of a filtered page: msg goes on the list when `wanted` and the page has
    room; otherwise it is freed, and *more set when the page was full. Returns false when the
    scan should stop (the page is full, or out of memory). */
static bool s_page_add(void ***arr, size_t *n, size_t *cap, s_keep_t *keep, size_t page, bool *more,
                       ProtobufCMessage *msg, bool wanted)
{
    if (wanted && *n == page) *more = true;
    if (!wanted || *more) {
        protobuf_c_message_free_unpacked(msg, NULL);
        return !*more;
    }
    return s_take(arr, n, cap, keep, msg);
}

static void s_keep_free(s_keep_t *k)
{
    for (size_t i = 0; i < k->n; i++)
        protobuf_c_message_free_unpacked(k->items[i], NULL);
    free(k->items);
    k->items = NULL;
    k->n = k->cap = 0;
}

static bool s_has_prefix(const MDB_val *key, const grants_key_t *prefix)
{
    return key->mv_size >= prefix->n && memcmp(key->mv_data, prefix->b, prefix->n) == 0;
}

/*  A query's id filter when the answer is empty: an id grants knows nothing of — no
    reference of one of `kinds` in the projection of the registry ('a' agency, 'm'
    municipality), or with kinds "s" no scheme — is refused 404 naming it, rather than
    answered with an empty list that reads as "nothing there". -1 with the refusal, or 0. */
static int s_known(grants_t *g, MDB_txn *txn, sam_reply_t *reply, const char *field,
                   const char *kinds, const char *what, const char *id)
{
    if (!id[0]) return 0;
    if (!grants_valid_id(id))
        return sam_reply_error(reply, SAM_BAD_REQUEST, "%s: '%.80s' is not an id", field, id);
    for (const char *k = kinds; *k; k++) {
        if (*k != 's' && grants_ref_known(g, txn, *k, id)) return 0;
        if (*k == 's') {
            grants_key_t sk = {0};
            grants_key_raw(&sk, id);
            if (grants_has(g, txn, GRANTS_T_SCHEMES, &sk)) return 0;
        }
    }
    return sam_reply_error(reply, SAM_NOT_FOUND, "%s: unknown %s '%s'", field, what, id);
}

/* ---- schemes ------------------------------------------------------------------------------ */

int grants_q_scheme_get(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                        sam_reply_t *reply)
{
    grants_t *g = sam_service_ctx(svc);
    const Samordna__V1__GrantsGetRequest *req = (const Samordna__V1__GrantsGetRequest *)call->msg;
    int rc;
    Samordna__V1__Scheme *s = grants_valid_id(req->id) ? grants_scheme_get(g, txn, req->id) : NULL;
    if (!s)
        rc = sam_reply_error(reply, SAM_NOT_FOUND, "id: unknown scheme '%.80s'", req->id);
    else {
        rc = sam_reply_message(reply, &s->base);
        protobuf_c_message_free_unpacked(&s->base, NULL);
    }
    return rc;
}

int grants_q_schemes_list(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                          sam_reply_t *reply)
{
    grants_t *g = sam_service_ctx(svc);
    const Samordna__V1__ListSchemesRequest *req =
        (const Samordna__V1__ListSchemesRequest *)call->msg;
    size_t page = s_page_size(req->page_size);
    Samordna__V1__SchemeList out = SAMORDNA__V1__SCHEME_LIST__INIT;
    size_t cap = 0;
    s_keep_t keep = {0};
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, g->dbi[GRANTS_T_SCHEMES], &cur);
    if (rc) return rc;
    MDB_val k, v;
    bool more = false;
    for (rc = sam_store_cursor_after(cur, req->page_token, strlen(req->page_token), &k, &v);
         rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        Samordna__V1__Scheme *s = samordna__v1__scheme__unpack(NULL, v.mv_size, v.mv_data);
        bool wanted = s && (!req->owner[0] || strcmp(req->owner, s->owner) == 0) &&
                      (!req->year || req->year == s->year);
        if (s && !s_page_add((void ***)&out.schemes, &out.n_schemes, &cap, &keep, page, &more,
                             &s->base, wanted))
            break;
    }
    mdb_cursor_close(cur);
    if (more && out.n_schemes) out.next_page_token = out.schemes[out.n_schemes - 1]->id;
    if (out.n_schemes == 0 && !req->page_token[0] &&
        s_known(g, txn, reply, "owner", "a", "agency", req->owner))
        rc = -1;
    else
        rc = sam_reply_message(reply, &out.base);
    free(out.schemes);
    s_keep_free(&keep);
    return rc;
}

/* ---- awards ------------------------------------------------------------------------------- */

int grants_q_award_get(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply)
{
    grants_t *g = sam_service_ctx(svc);
    const Samordna__V1__GrantsGetRequest *req = (const Samordna__V1__GrantsGetRequest *)call->msg;
    Samordna__V1__Award *a = grants_valid_id(req->id) ? grants_award_get(g, txn, req->id) : NULL;
    if (!a) return sam_reply_error(reply, SAM_NOT_FOUND, "id: unknown award '%.80s'", req->id);
    Samordna__V1__AwardDetail out = SAMORDNA__V1__AWARD_DETAIL__INIT;
    out.award = a;
    size_t cap = 0;
    s_keep_t keep = {0};
    grants_key_t prefix = {0};
    grants_key_str(&prefix, a->id);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, g->dbi[GRANTS_T_PAYMENTS], &cur);
    if (rc == 0) {
        MDB_val k = {prefix.n, prefix.b}, v;
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && s_has_prefix(&k, &prefix);
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            Samordna__V1__Payment *p = samordna__v1__payment__unpack(NULL, v.mv_size, v.mv_data);
            if (!p) continue;
            if (!s_take((void ***)&out.payments, &out.n_payments, &cap, &keep, p)) break;
        }
        mdb_cursor_close(cur);
    }
    rc = sam_reply_message(reply, &out.base);
    free(out.payments);
    s_keep_free(&keep);
    protobuf_c_message_free_unpacked(&a->base, NULL);
    return rc;
}

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool s_award_matches(const Samordna__V1__Award *a, const Samordna__V1__ListAwardsRequest *r)
{
    if (r->recipient[0] && strcmp(r->recipient, a->recipient) != 0) return false;
    if (r->year && r->year != a->year) return false;
    if (r->scheme[0] && strcmp(r->scheme, a->scheme) != 0) return false;
    if (r->funder[0]) {
        for (size_t i = 0; i < a->n_funders; i++)
            if (strcmp(a->funders[i]->agency, r->funder) == 0) return true;
        return false;
    }
    return true;
}

int grants_q_awards_list(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                         sam_reply_t *reply)
{
    grants_t *g = sam_service_ctx(svc);
    const Samordna__V1__ListAwardsRequest *req = (const Samordna__V1__ListAwardsRequest *)call->msg;
    size_t page = s_page_size(req->page_size);
    Samordna__V1__AwardList out = SAMORDNA__V1__AWARD_LIST__INIT;
    size_t cap = 0;
    s_keep_t keep = {0};
    bool more = false;
    MDB_cursor *cur;
    int rc;
    if (req->recipient[0]) {
        /* One recipient: its award ids from the index, sorted and deduplicated (a joint
           award has one index entry per funder). */
        char **ids = NULL;
        size_t n = 0, icap = 0;
        grants_key_t prefix = {0};
        grants_key_str(&prefix, req->recipient);
        if (req->year) grants_key_be32(&prefix, req->year);
        rc = mdb_cursor_open(txn, g->dbi[GRANTS_T_BY_RECIPIENT], &cur);
        if (rc == 0) {
            MDB_val k = {prefix.n, prefix.b}, v;
            size_t rl = strlen(req->recipient) + 1;
            for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
                 rc == 0 && s_has_prefix(&k, &prefix); rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
                const char *kb = k.mv_data;
                if (k.mv_size < rl + 4) continue;
                const char *funder = kb + rl + 4;
                size_t fl = strnlen(funder, k.mv_size - rl - 4);
                if (rl + 4 + fl + 1 > k.mv_size) continue;
                char *id = strndup(funder + fl + 1, k.mv_size - (rl + 4 + fl + 1));
                void **slot = id ? s_push((void ***)&ids, &n, &icap) : NULL;
                if (!slot) {
                    free(id);
                    break;
                }
                *slot = id;
            }
            mdb_cursor_close(cur);
        }
        if (n) qsort(ids, n, sizeof *ids, s_cmp_str);
        for (size_t i = 0; i < n; i++) {
            if (i > 0 && strcmp(ids[i], ids[i - 1]) == 0) continue;
            if (req->page_token[0] && strcmp(ids[i], req->page_token) <= 0) continue;
            Samordna__V1__Award *a = grants_award_get(g, txn, ids[i]);
            if (a && !s_page_add((void ***)&out.awards, &out.n_awards, &cap, &keep, page, &more,
                                 &a->base, s_award_matches(a, req)))
                break;
        }
        for (size_t i = 0; i < n; i++)
            free(ids[i]);
        free(ids);
    } else {
        rc = mdb_cursor_open(txn, g->dbi[GRANTS_T_AWARDS], &cur);
        if (rc == 0) {
            MDB_val k, v;
            for (rc = sam_store_cursor_after(cur, req->page_token, strlen(req->page_token), &k, &v);
                 rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
                Samordna__V1__Award *a = samordna__v1__award__unpack(NULL, v.mv_size, v.mv_data);
                if (a && !s_page_add((void ***)&out.awards, &out.n_awards, &cap, &keep, page, &more,
                                     &a->base, s_award_matches(a, req)))
                    break;
            }
            mdb_cursor_close(cur);
        }
    }
    if (more && out.n_awards) out.next_page_token = out.awards[out.n_awards - 1]->id;
    if (out.n_awards == 0 && !req->page_token[0] &&
        (s_known(g, txn, reply, "recipient", "ma", "municipality or agency", req->recipient) ||
         s_known(g, txn, reply, "scheme", "s", "scheme", req->scheme) ||
         s_known(g, txn, reply, "funder", "a", "agency", req->funder)))
        rc = -1;
    else
        rc = sam_reply_message(reply, &out.base);
    free(out.awards);
    s_keep_free(&keep);
    return rc;
}

/* ---- instruments and needs ---------------------------------------------------------------- */

/* Appends the instruments and needs of a municipality (and year, when not 0) to the lists;
   the messages are kept in keep. */
static void s_collect_instruments(grants_t *g, MDB_txn *txn, const char *municipality,
                                  uint32_t year, s_keep_t *keep, Samordna__V1__Instrument ***instr,
                                  size_t *n_instr, Samordna__V1__Need ***needs, size_t *n_needs)
{
    size_t icap = *n_instr, ncap = *n_needs; /* called again for a predecessor: room for n */
    grants_key_t prefix = {0};
    grants_key_str(&prefix, municipality);
    if (year) grants_key_be32(&prefix, year);
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, g->dbi[GRANTS_T_INSTR_BY_MUNI], &cur) == 0) {
        MDB_val k = {prefix.n, prefix.b}, v;
        size_t ml = strlen(municipality) + 1;
        for (int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
             rc == 0 && s_has_prefix(&k, &prefix); rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            const char *kb = k.mv_data;
            if (k.mv_size < ml + 4) continue;
            const char *agency = kb + ml + 4;
            size_t al = strnlen(agency, k.mv_size - ml - 4);
            if (ml + 4 + al + 1 > k.mv_size) continue;
            grants_key_t ik = {0};
            char id[80];
            size_t idl = k.mv_size - (ml + 4 + al + 1);
            if (idl >= sizeof id) continue;
            memcpy(id, agency + al + 1, idl);
            id[idl] = 0;
            grants_key_raw(&ik, id);
            ProtobufCMessage *m = NULL;
            if (grants_get(g, txn, GRANTS_T_INSTRUMENTS, &ik, &samordna__v1__instrument__descriptor,
                           &m) != 0)
                continue;
            if (!s_take((void ***)instr, n_instr, &icap, keep, m)) break;
        }
        mdb_cursor_close(cur);
    }
    if (mdb_cursor_open(txn, g->dbi[GRANTS_T_NEEDS], &cur) == 0) {
        MDB_val k = {prefix.n, prefix.b}, v;
        for (int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
             rc == 0 && s_has_prefix(&k, &prefix); rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            Samordna__V1__Need *nd = samordna__v1__need__unpack(NULL, v.mv_size, v.mv_data);
            if (!nd) continue;
            if (!s_take((void ***)needs, n_needs, &ncap, keep, nd)) break;
        }
        mdb_cursor_close(cur);
    }
}

int grants_q_instruments_list(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                              sam_reply_t *reply)
{
    grants_t *g = sam_service_ctx(svc);
    const Samordna__V1__ListInstrumentsRequest *req =
        (const Samordna__V1__ListInstrumentsRequest *)call->msg;
    if (!grants_valid_id(req->municipality))
        return sam_reply_error(reply, SAM_BAD_REQUEST, "municipality: '%.80s' is not an id",
                               req->municipality);
    Samordna__V1__InstrumentList out = SAMORDNA__V1__INSTRUMENT_LIST__INIT;
    s_keep_t keep = {0};
    s_collect_instruments(g, txn, req->municipality, req->year, &keep, &out.instruments,
                          &out.n_instruments, &out.needs, &out.n_needs);
    int rc = out.n_instruments == 0 && out.n_needs == 0 &&
                     s_known(g, txn, reply, "municipality", "m", "municipality", req->municipality)
                 ? -1
                 : sam_reply_message(reply, &out.base);
    free(out.instruments);
    free(out.needs);
    s_keep_free(&keep);
    return rc;
}

/* ---- overview ----------------------------------------------------------------------------- */

typedef struct {
    Samordna__V1__OverviewGroup *items;
    size_t n, cap;
} s_groups_t;

static Samordna__V1__OverviewGroup *s_group(s_groups_t *gs, const char *key)
{
    for (size_t i = 0; i < gs->n; i++)
        if (strcmp(gs->items[i].key, key) == 0) return &gs->items[i];
    if (gs->n == gs->cap) {
        size_t nc = gs->cap ? gs->cap * 2 : 16;
        Samordna__V1__OverviewGroup *ni = realloc(gs->items, nc * sizeof *ni);
        if (!ni) return NULL;
        gs->items = ni;
        gs->cap = nc;
    }
    Samordna__V1__OverviewGroup *gr = &gs->items[gs->n++];
    samordna__v1__overview_group__init(gr);
    gr->key = (char *)key;
    return gr;
}

static int s_cmp_group(const void *a, const void *b)
{
    return strcmp(((const Samordna__V1__OverviewGroup *)a)->key,
                  ((const Samordna__V1__OverviewGroup *)b)->key);
}

/* Parses an index key of by_recipient (recipient\0 year funder\0 award) or by_year
   (year recipient\0 funder\0 award) into its parts (pointers into buf). */
static bool s_parse_index(const MDB_val *k, bool by_year, char *buf, size_t buflen,
                          const char **recipient, uint32_t *year, const char **funder,
                          const char **award)
{
    if (k->mv_size + 1 > buflen || k->mv_size < 4) return false;
    memcpy(buf, k->mv_data, k->mv_size);
    buf[k->mv_size] = 0;
    size_t at = 0;
    if (by_year) {
        *year = sam_be32_get((const uint8_t *)buf);
        at = 4;
        *recipient = buf + at;
        at += strnlen(buf + at, k->mv_size - at) + 1;
    } else {
        *recipient = buf;
        at = strnlen(buf, k->mv_size) + 1;
        if (at + 4 > k->mv_size) return false;
        *year = sam_be32_get((const uint8_t *)buf + at);
        at += 4;
    }
    if (at >= k->mv_size) return false;
    *funder = buf + at;
    at += strnlen(buf + at, k->mv_size - at) + 1;
    if (at >= k->mv_size) return false;
    *award = buf + at;
    return true;
}

int grants_q_overview(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply)
{
    grants_t *g = sam_service_ctx(svc);
    const Samordna__V1__OverviewRequest *req = (const Samordna__V1__OverviewRequest *)call->msg;
    int rc = -1;
    const char *group_by = req->group_by[0] ? req->group_by : "agency";
    bool all = req->recipient[0] == 0;
    if (strcmp(group_by, "agency") && strcmp(group_by, "scheme") && strcmp(group_by, "pilot"))
        return sam_reply_error(reply, SAM_BAD_REQUEST,
                               "group_by: '%.20s' is not agency, scheme or pilot", req->group_by);
    if (all && !req->year)
        return sam_reply_error(reply, SAM_BAD_REQUEST,
                               "year: required when no recipient is named (totals per recipient)");
    if (!all && !grants_valid_id(req->recipient))
        return sam_reply_error(reply, SAM_BAD_REQUEST, "recipient: '%.80s' is not an id",
                               req->recipient);
    Samordna__V1__Overview out = SAMORDNA__V1__OVERVIEW__INIT;
    out.recipient = req->recipient;
    out.year = req->year;
    out.group_by = all ? "recipient" : (char *)group_by;
    s_keep_t keep = {0};
    s_groups_t groups = {0};
    Samordna__V1__OverviewLine *lines = NULL;
    size_t n_lines = 0, lcap = 0;
    /* A recipient's overview includes what the municipalities merged into it received. */
    char preds[GRANTS_MAX_PREDECESSORS][80];
    size_t npred =
        all ? 0 : grants_predecessors(g, txn, req->recipient, preds, GRANTS_MAX_PREDECESSORS);
    Samordna__V1__Award *last = NULL; /* a joint award's funders are usually adjacent */
    for (size_t r = 0; r <= npred; r++) {
        const char *who = r == 0 ? req->recipient : preds[r - 1];
        grants_key_t prefix = {0};
        if (all) {
            grants_key_be32(&prefix, req->year);
        } else {
            grants_key_str(&prefix, who);
            if (req->year) grants_key_be32(&prefix, req->year);
        }
        MDB_cursor *cur;
        int mrc =
            mdb_cursor_open(txn, g->dbi[all ? GRANTS_T_BY_YEAR : GRANTS_T_BY_RECIPIENT], &cur);
        if (mrc) {
            rc = mrc;
            goto done;
        }
        MDB_val k = {prefix.n, prefix.b}, v;
        for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
             mrc == 0 && s_has_prefix(&k, &prefix); mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            char buf[512];
            const char *recipient, *funder, *award_id;
            uint32_t year;
            if (!s_parse_index(&k, all, buf, sizeof buf, &recipient, &year, &funder, &award_id))
                continue;
            Samordna__V1__Award *a = last && strcmp(last->id, award_id) == 0 ? last : NULL;
            if (!a) {
                a = grants_award_get(g, txn, award_id);
                if (!a || !s_keep(&keep, a)) continue;
                last = a;
            }
            const Samordna__V1__FunderShare *f = NULL;
            for (size_t i = 0; i < a->n_funders; i++)
                if (strcmp(a->funders[i]->agency, funder) == 0) f = a->funders[i];
            if (!f) continue;
            int64_t committed = f->amount_ore - f->cancelled_ore - f->repaid_ore;
            int64_t paid = f->paid_ore - f->repaid_ore;
            const char *gkey = all                               ? a->recipient
                               : strcmp(group_by, "agency") == 0 ? f->agency
                               : strcmp(group_by, "scheme") == 0 ? a->scheme
                                                                 : a->pilot;
            Samordna__V1__OverviewGroup *gr = s_group(&groups, gkey);
            if (!gr) break;
            gr->committed_ore += committed;
            gr->paid_ore += paid;
            /* A joint award has an index entry per funder: it counts once in a group, by its
               first funder's entry, unless the groups are the funders themselves. */
            if ((!all && strcmp(group_by, "agency") == 0) || f == a->funders[0]) gr->awards++;
            out.committed_ore += committed;
            out.paid_ore += paid;
            if (all) continue;
            if (n_lines == lcap) {
                size_t nc = lcap ? lcap * 2 : 32;
                Samordna__V1__OverviewLine *nl = realloc(lines, nc * sizeof *nl);
                if (!nl) break;
                lines = nl;
                lcap = nc;
            }
            Samordna__V1__OverviewLine *l = &lines[n_lines++];
            samordna__v1__overview_line__init(l);
            l->award = a->id;
            l->scheme = a->scheme;
            l->pilot = a->pilot;
            l->agency = f->agency;
            l->recipient = a->recipient;
            l->year = a->year;
            l->purpose = a->purpose;
            l->committed_ore = committed;
            l->paid_ore = paid;
            l->status = a->status;
            l->joint = a->n_funders > 1;
        }
        mdb_cursor_close(cur);
        if (!all)
            s_collect_instruments(g, txn, who, req->year, &keep, &out.instruments,
                                  &out.n_instruments, &out.needs, &out.n_needs);
    }
    for (size_t i = 0; i < out.n_instruments; i++) {
        const Samordna__V1__Instrument *in = out.instruments[i];
        const char *gkey = strcmp(group_by, "agency") == 0  ? in->agency
                           : strcmp(group_by, "pilot") == 0 ? in->pilot
                                                            : "";
        Samordna__V1__OverviewGroup *gr = s_group(&groups, gkey);
        if (gr) gr->instruments++;
    }
    if (groups.n) qsort(groups.items, groups.n, sizeof *groups.items, s_cmp_group);
    Samordna__V1__OverviewGroup **gp = groups.n ? calloc(groups.n, sizeof *gp) : NULL;
    Samordna__V1__OverviewLine **lp = n_lines ? calloc(n_lines, sizeof *lp) : NULL;
    if ((groups.n && !gp) || (n_lines && !lp)) {
        free(gp);
        free(lp);
        rc = sam_reply_error(reply, SAM_INTERNAL, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < groups.n; i++)
        gp[i] = &groups.items[i];
    for (size_t i = 0; i < n_lines; i++)
        lp[i] = &lines[i];
    out.groups = gp;
    out.n_groups = groups.n;
    out.lines = lp;
    out.n_lines = n_lines;
    if (!all && groups.n == 0 && out.n_needs == 0 &&
        s_known(g, txn, reply, "recipient", "ma", "municipality or agency", req->recipient))
        rc = -1;
    else
        rc = sam_reply_message(reply, &out.base);
    free(gp);
    free(lp);
done:
    free(lines);
    free(groups.items);
    free(out.instruments);
    free(out.needs);
    s_keep_free(&keep);
    return rc;
}

/* ---- deadlines ---------------------------------------------------------------------------- */

static bool s_cancelled(const Samordna__V1__Award *a)
{
    return a->status == SAMORDNA__V1__AWARD_STATUS__AWARD_STATUS_CANCELLED;
}

int grants_q_deadlines(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply)
{
    grants_t *g = sam_service_ctx(svc);
    const Samordna__V1__DeadlinesRequest *req = (const Samordna__V1__DeadlinesRequest *)call->msg;
    int rc;
    char err[200];
    if (sam_check_date("before", req->before, true, err, sizeof err) ||
        sam_check_date("from", req->from, false, err, sizeof err))
        return sam_reply_error(reply, SAM_BAD_REQUEST, "%s", err);
    size_t page = s_page_size(req->page_size);
    Samordna__V1__DeadlineList out = SAMORDNA__V1__DEADLINE_LIST__INIT;
    Samordna__V1__Deadline *items = NULL;
    size_t cap = 0;
    s_keep_t keep = {0};
    char token[96] = "";
    /* Start at the page token ("date/award", exclusive) or at `from`. */
    grants_key_t start = {0};
    const char *slash = strchr(req->page_token, '/');
    bool skip_token = false;
    if (slash && slash - req->page_token == 10) {
        char date[11];
        memcpy(date, req->page_token, 10);
        date[10] = 0;
        grants_key_str(&start, date);
        grants_key_raw(&start, slash + 1);
        skip_token = true;
    } else if (req->from[0]) {
        grants_key_raw(&start, req->from);
    }
    MDB_cursor *cur;
    rc = mdb_cursor_open(txn, g->dbi[GRANTS_T_DEADLINES], &cur);
    if (rc) return rc;
    MDB_val k = {start.n, start.b}, v;
    rc = start.n ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)
                 : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (rc == 0 && skip_token && k.mv_size == start.n && memcmp(k.mv_data, start.b, start.n) == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    bool more = false;
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 12) continue;
        char date[11];
        memcpy(date, k.mv_data, 10);
        date[10] = 0;
        if (strcmp(date, req->before) >= 0) break;
        char id[80];
        size_t idl = k.mv_size - 11;
        if (idl >= sizeof id) continue;
        memcpy(id, (const char *)k.mv_data + 11, idl);
        id[idl] = 0;
        Samordna__V1__Award *a = grants_award_get(g, txn, id);
        /* Stores from before cancelling removed the entry still hold cancelled awards. */
        bool listed = a && !s_cancelled(a);
        if (listed && out.n_deadlines == page) /* a next page only when it has an entry */
            more = true;
        if (a && (!listed || more)) protobuf_c_message_free_unpacked(&a->base, NULL);
        if (more) break;
        if (!listed || !s_keep(&keep, a)) continue;
        if (out.n_deadlines == cap) {
            size_t nc = cap ? cap * 2 : 32;
            Samordna__V1__Deadline *ni = realloc(items, nc * sizeof *ni);
            if (!ni) break;
            items = ni;
            cap = nc;
        }
        Samordna__V1__Deadline *d = &items[out.n_deadlines++];
        samordna__v1__deadline__init(d);
        d->award = a->id;
        d->report_due = a->report_due;
        d->recipient = a->recipient;
        d->scheme = a->scheme;
        d->purpose = a->purpose;
        d->amount_ore = a->amount_ore;
        snprintf(token, sizeof token, "%s/%s", a->report_due, a->id);
    }
    mdb_cursor_close(cur);
    Samordna__V1__Deadline **dp = out.n_deadlines ? calloc(out.n_deadlines, sizeof *dp) : NULL;
    char ***fun = out.n_deadlines ? calloc(out.n_deadlines, sizeof *fun) : NULL;
    for (size_t i = 0; dp && fun && i < out.n_deadlines; i++) {
        dp[i] = &items[i];
        const Samordna__V1__Award *a = (const Samordna__V1__Award *)keep.items[i];
        fun[i] = calloc(a->n_funders ? a->n_funders : 1, sizeof **fun);
        if (!fun[i]) continue;
        for (size_t j = 0; j < a->n_funders; j++)
            fun[i][j] = a->funders[j]->agency;
        items[i].funders = fun[i];
        items[i].n_funders = a->n_funders;
    }
    if (out.n_deadlines && (!dp || !fun)) {
        out.n_deadlines = 0;
        more = false;
    }
    out.deadlines = dp;
    if (more) out.next_page_token = token;
    rc = sam_reply_message(reply, &out.base);
    for (size_t i = 0; fun && i < out.n_deadlines; i++)
        free(fun[i]);
    free(fun);
    free(dp);
    free(items);
    s_keep_free(&keep);
    return rc;
}

/* ---- ledger ------------------------------------------------------------------------------- */

int grants_q_ledger_verify(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                           sam_reply_t *reply)
{
    grants_t *g = sam_service_ctx(svc);
    Samordna__V1__LedgerReport out = SAMORDNA__V1__LEDGER_REPORT__INIT;
    int mrc = grants_ledger_verify(g, txn, &out);
    int rc;
    if (mrc)
        rc = mrc;
    else
        rc = sam_reply_message(reply, &out.base);
    if (!out.balanced || out.n_problems)
        sam_warn("ledger.unbalanced problems=%zu first=%s", out.n_problems,
                 sam_logv(out.n_problems ? out.problems[0] : ""));
    grants_ledger_report_clear(&out);
    return rc;
}

int grants_q_ledger_accounts(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                             sam_reply_t *reply)
{
    grants_t *g = sam_service_ctx(svc);
    const Samordna__V1__AccountsRequest *req = (const Samordna__V1__AccountsRequest *)call->msg;
    size_t page = s_page_size(req->page_size);
    Samordna__V1__AccountList out = SAMORDNA__V1__ACCOUNT_LIST__INIT;
    size_t cap = 0;
    s_keep_t keep = {0};
    bool more = false;
    grants_key_t prefix = {0};
    grants_key_raw(&prefix, req->prefix);
    const char *from = req->page_token[0] ? req->page_token : req->prefix;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, g->dbi[GRANTS_T_BALANCES], &cur);
    if (rc == 0) {
        MDB_val k = {strlen(from), (void *)from}, v;
        rc = k.mv_size ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)
                       : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (rc == 0 && req->page_token[0] && k.mv_size == strlen(from) &&
            memcmp(k.mv_data, from, k.mv_size) == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        for (; rc == 0 && s_has_prefix(&k, &prefix); rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (out.n_accounts == page) {
                more = true;
                break;
            }
            Samordna__V1__AccountBalance *b =
                samordna__v1__account_balance__unpack(NULL, v.mv_size, v.mv_data);
            if (!b) continue;
            if (!s_take((void ***)&out.accounts, &out.n_accounts, &cap, &keep, b)) break;
        }
        mdb_cursor_close(cur);
    }
    if (more && out.n_accounts) out.next_page_token = out.accounts[out.n_accounts - 1]->account;
    rc = sam_reply_message(reply, &out.base);
    free(out.accounts);
    s_keep_free(&keep);
    return rc;
}
