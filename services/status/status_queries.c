/*  status_queries.c — the status.* queries, each answered from one read transaction.

    The board of today reads each pilot's standing (pilotstate: the milestones standing and
    the open barrier count, kept up to date by every milestone and barrier event in the same
    transaction). The board as of a day folds the pilot's own milestone and barrier history up
    to that day instead — a scan of that pilot's history and nothing else. Both find the last
    meeting with one backwards step in the per-pilot meeting index. The tests check that the
    two ways agree.
*/
#include "status.h"

#include "sam_array.h"
#include "sam_check.h"
#include "sam_words.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FREE(m) protobuf_c_message_free_unpacked(&(m)->base, NULL)
#define PAGE_DEFAULT 100
#define PAGE_MAX 1000
#define REPORT_MAX 10000

static uint32_t s_page_size(uint32_t asked)
{
    return asked == 0 ? PAGE_DEFAULT : asked > PAGE_MAX ? PAGE_MAX : asked;
}

/* A growing array of unpacked messages, freed together. */
typedef struct {
    ProtobufCMessage **v;
    size_t n, cap;
} s_list_t;

static int s_list_push(s_list_t *l, ProtobufCMessage *m)
{
    if (sam_array_grow(&l->v, &l->cap, l->n, sizeof *l->v, 16)) return -1;
    l->v[l->n++] = m;
    return 0;
}

static void s_list_free(s_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        protobuf_c_message_free_unpacked(l->v[i], NULL);
    free(l->v);
    *l = (s_list_t){0};
}

/* ---- milestone kinds --------------------------------------------------------------------- */

static int s_kind_cmp(const void *a, const void *b)
{
    const Samordna__V1__MilestoneKind *x = *(Samordna__V1__MilestoneKind *const *)a;
    const Samordna__V1__MilestoneKind *y = *(Samordna__V1__MilestoneKind *const *)b;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Every kind, in canonical order. */
static int s_load_kinds(sam_service_t *svc, MDB_txn *txn, s_list_t *out)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, sam_service_dbi(svc, "kinds"), &cur);
    if (rc) return rc;
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        ProtobufCMessage *m = protobuf_c_message_unpack(&samordna__v1__milestone_kind__descriptor,
                                                        NULL, v.mv_size, v.mv_data);
        if (!m) {
            rc = SAM_STORE_CORRUPT;
            break;
        }
        if (s_list_push(out, m)) {
            FREE((Samordna__V1__MilestoneKind *)m);
            rc = SAM_STORE_NOMEM;
            break;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND) return rc;
    if (out->n > 1) qsort(out->v, out->n, sizeof *out->v, s_kind_cmp);
    return 0;
}

/* status.kinds.list: empty request → KindsReply */
int status_q_kinds(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply)
{
    s_list_t kinds = {0};
    int rc = s_load_kinds(svc, txn, &kinds);
    if (rc) {
        s_list_free(&kinds);
        return rc;
    }
    Samordna__V1__MilestoneKindsReply r = SAMORDNA__V1__MILESTONE_KINDS_REPLY__INIT;
    r.n_kinds = kinds.n;
    r.kinds = (Samordna__V1__MilestoneKind **)kinds.v;
    rc = sam_reply_message(reply, &r.base);
    s_list_free(&kinds);
    return rc;
}

/* ---- the board --------------------------------------------------------------------------- */

/*  The board as of a day unpacks every record of every pilot's history: an arena gives
    protobuf-c its memory for one record at a time (reset after each), so the fold costs no
    malloc per record. A record larger than the arena (none is, given the field limits)
    falls back to malloc and is freed as usual. */
typedef struct {
    uint8_t *buf;
    size_t cap, used;
} s_arena_t;

static void *s_arena_alloc(void *data, size_t size)
{
    s_arena_t *a = data;
    size = (size + 15) & ~(size_t)15;
    if (size <= a->cap - a->used) {
        void *p = a->buf + a->used;
        a->used += size;
        return p;
    }
    return malloc(size);
}

static void s_arena_free(void *data, void *p)
{
    s_arena_t *a = data;
    uint8_t *b = p;
    if (b && (b < a->buf || b >= a->buf + a->cap)) free(p);
}

/* A fold unpacks each history record into the arena and empties it after the record. */
static ProtobufCMessage *s_fold_unpack(const ProtobufCMessageDescriptor *desc, const MDB_val *v,
                                       ProtobufCAllocator *alloc, s_arena_t *arena)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, alloc, v->mv_size, v->mv_data);
    if (!m) arena->used = 0;
    return m;
}

static void s_fold_free(ProtobufCMessage *m, ProtobufCAllocator *alloc, s_arena_t *arena)
{
    protobuf_c_message_free_unpacked(m, alloc);
    arena->used = 0;
}

typedef struct {
    s_list_t *kinds;
    char (*dates)[11]; /* per kind: date reached, "" when not (standing) */
    ProtobufCAllocator *alloc;
    s_arena_t *arena;
} s_fold_ms_t;

static int s_fold_ms(const MDB_val *v, void *arg)
{
    s_fold_ms_t *f = arg;
    Samordna__V1__MilestoneChange *c = (Samordna__V1__MilestoneChange *)s_fold_unpack(
        &samordna__v1__milestone_change__descriptor, v, f->alloc, f->arena);
    if (!c) return 0;
    for (size_t i = 0; i < f->kinds->n && !c->superseded_by; i++) {
        Samordna__V1__MilestoneKind *k = (Samordna__V1__MilestoneKind *)f->kinds->v[i];
        if (strcmp(k->id, c->kind) == 0) {
            snprintf(f->dates[i], 11, "%s", c->reached ? c->date : "");
            break;
        }
    }
    s_fold_free(&c->base, f->alloc, f->arena);
    return 0;
}

/* Barriers seen in one pilot's history and whether each is open at the end of the fold. */
typedef struct {
    char id[65];
    bool open;
} s_bar_seen_t;

typedef struct {
    s_bar_seen_t *seen;
    size_t n, cap;
    bool nomem;
    ProtobufCAllocator *alloc;
    s_arena_t *arena;
} s_fold_bar_t;

static int s_fold_bar(const MDB_val *v, void *arg)
{
    s_fold_bar_t *f = arg;
    Samordna__V1__BarrierMark *c = (Samordna__V1__BarrierMark *)s_fold_unpack(
        &samordna__v1__barrier_mark__descriptor, v, f->alloc, f->arena);
    if (!c) return 0;
    bool open = status_barrier_open(c->state);
    size_t i = 0;
    while (i < f->n && strcmp(f->seen[i].id, c->barrier) != 0)
        i++;
    if (i == f->n) {
        if (sam_array_grow(&f->seen, &f->cap, f->n, sizeof *f->seen, 32)) {
            f->nomem = true;
            samordna__v1__barrier_mark__free_unpacked(c, f->alloc);
            return 1;
        }
        snprintf(f->seen[f->n].id, sizeof f->seen[f->n].id, "%s", c->barrier);
        f->n++;
    }
    f->seen[i].open = open;
    s_fold_free(&c->base, f->alloc, f->arena);
    return 0;
}

/* The last meeting of a pilot on or before as_of: one seek, one step back. */
static Samordna__V1__Meeting *s_last_meeting(sam_service_t *svc, MDB_txn *txn, const char *pilot,
                                             const char *as_of)
{
    char scope[80];
    snprintf(scope, sizeof scope, "p:%s", pilot);
    status_key_t prefix, end;
    status_key_pair(&prefix, scope, "");
    status_key_hist_end(&end, scope, as_of);
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, sam_service_dbi(svc, "meetidx"), &cur)) return NULL;
    MDB_val k = {end.len, end.b}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    rc = rc == 0 ? mdb_cursor_get(cur, &k, &v, MDB_PREV) : mdb_cursor_get(cur, &k, &v, MDB_LAST);
    Samordna__V1__Meeting *m = NULL;
    if (rc == 0 && k.mv_size > prefix.len + 10 && memcmp(k.mv_data, prefix.b, prefix.len) == 0) {
        const uint8_t *id = (const uint8_t *)k.mv_data + prefix.len + 10;
        ProtobufCMessage *out = NULL;
        if (sam_store_get_msg(txn, sam_service_dbi(svc, "meetings"), id,
                              k.mv_size - prefix.len - 10, &samordna__v1__meeting__descriptor,
                              &out) == 0)
            m = (Samordna__V1__Meeting *)out;
    }
    mdb_cursor_close(cur);
    return m;
}

/* One row: the pilot's standing now (as_of NULL), or its histories folded up to as_of. */
static int s_board_row(sam_service_t *svc, MDB_txn *txn, const Samordna__V1__StatusFact *p,
                       s_list_t *kinds, const char *as_of, Samordna__V1__BoardRow *row,
                       s_fold_bar_t *bar)
{
    char(*dates)[11] = calloc(kinds->n ? kinds->n : 1, sizeof *dates);
    if (!dates) return SAM_STORE_NOMEM;
    bar->n = 0;
    bar->nomem = false;
    uint32_t open_now = 0;
    int rc = 0;
    if (as_of) { /* as it stood: fold the pilot's own history up to the day */
        s_fold_ms_t fm = {kinds, dates, bar->alloc, bar->arena};
        rc = status_hist_each(svc, txn, "mshist", p->id, as_of, s_fold_ms, &fm);
        if (!rc) rc = status_hist_each(svc, txn, "barhist", p->id, as_of, s_fold_bar, bar);
        if (!rc && bar->nomem) rc = SAM_STORE_NOMEM;
        for (size_t i = 0; i < bar->n; i++)
            open_now += bar->seen[i].open;
    } else { /* now: the pilot's standing, one record */
        status_key_t k;
        status_key_id(&k, p->id);
        ProtobufCMessage *got = NULL;
        rc = status_get(svc, txn, "pilotstate", &k, &samordna__v1__pilot_state__descriptor, &got);
        if (rc == 0) {
            Samordna__V1__PilotState *st = (Samordna__V1__PilotState *)got;
            char today[11]; /* a planned milestone shows once its day has come */
            status_today(today);
            for (size_t i = 0; i < st->n_reached; i++)
                for (size_t j = 0; j < kinds->n && strcmp(st->reached[i]->date, today) <= 0; j++)
                    if (strcmp(((Samordna__V1__MilestoneKind *)kinds->v[j])->id,
                               st->reached[i]->kind) == 0)
                        snprintf(dates[j], 11, "%s", st->reached[i]->date);
            open_now = st->open_barriers;
            FREE(st);
        } else if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    if (rc) {
        free(dates);
        return rc;
    }
    samordna__v1__board_row__init(row);
    row->pilot = strdup(p->id);
    row->municipality = strdup(p->municipality);
    row->challenge = strdup(p->challenge);
    row->investment_leader = strdup(p->investment_leader);
    Samordna__V1__StatusFact *mu =
        status_fact_find(svc, txn, false, "municipality", p->municipality);
    /* a municipality merged away is shown as the one it became, its old name beside it */
    Samordna__V1__StatusFact *succ =
        mu && *mu->successor ? status_fact_find(svc, txn, false, "municipality", mu->successor)
                             : NULL;
    char merged[300];
    if (succ)
        snprintf(merged, sizeof merged, "%s (was %s)", *succ->name ? succ->name : succ->id,
                 *mu->name ? mu->name : mu->id);
    row->municipality_name = strdup(succ ? merged : mu && *mu->name ? mu->name : p->municipality);
    if (succ) FREE(succ);
    if (mu) FREE(mu);
    Samordna__V1__StatusFact *ag =
        status_fact_find(svc, txn, false, "agency", p->investment_leader);
    row->investment_leader_name = strdup(ag && *ag->name ? ag->name : p->investment_leader);
    if (ag) FREE(ag);
    row->n_cells = kinds->n;
    row->cells = calloc(kinds->n ? kinds->n : 1, sizeof *row->cells);
    row->phase = strdup("");
    row->phase_label = strdup("");
    for (size_t i = 0; row->cells && i < kinds->n; i++) {
        Samordna__V1__MilestoneKind *k = (Samordna__V1__MilestoneKind *)kinds->v[i];
        row->cells[i] = malloc(sizeof *row->cells[i]);
        if (!row->cells[i]) continue;
        samordna__v1__board_cell__init(row->cells[i]);
        row->cells[i]->kind = strdup(k->id);
        row->cells[i]->date = strdup(dates[i]);
        if (*dates[i]) { /* kinds are in canonical order: the last reached is the phase */
            free(row->phase);
            free(row->phase_label);
            row->phase = strdup(k->id);
            row->phase_label = strdup(k->label);
        }
    }
    free(dates);
    row->open_barriers = open_now;
    Samordna__V1__Meeting *m = s_last_meeting(svc, txn, p->id, as_of ? as_of : "9999-12-31");
    row->last_meeting_date = strdup(m ? m->date : "");
    row->last_meeting_kind = strdup(m ? m->kind : "");
    row->last_meeting_title = strdup(m ? m->title : "");
    if (m) FREE(m);
    return 0;
}

/* Frees what s_board_row allocated (the row struct itself is the caller's). */
static void s_row_free(Samordna__V1__BoardRow *row)
{
    free(row->pilot);
    free(row->municipality);
    free(row->municipality_name);
    free(row->challenge);
    free(row->investment_leader);
    free(row->investment_leader_name);
    for (size_t i = 0; row->cells && i < row->n_cells; i++) {
        if (!row->cells[i]) continue;
        free(row->cells[i]->kind);
        free(row->cells[i]->date);
        free(row->cells[i]);
    }
    free(row->cells);
    free(row->phase);
    free(row->phase_label);
    free(row->last_meeting_date);
    free(row->last_meeting_kind);
    free(row->last_meeting_title);
}

static bool s_row_complete(const Samordna__V1__BoardRow *r)
{
    if (!r->pilot || !r->municipality || !r->municipality_name || !r->challenge ||
        !r->investment_leader || !r->investment_leader_name || !r->cells || !r->phase ||
        !r->phase_label || !r->last_meeting_date || !r->last_meeting_kind || !r->last_meeting_title)
        return false;
    for (size_t i = 0; i < r->n_cells; i++)
        if (!r->cells[i] || !r->cells[i]->kind || !r->cells[i]->date) return false;
    return true;
}

/* status.board: BoardRequest {as_of, pilot} → BoardReply, one row per pilot the registry
   knows, in pilot id order. */
int status_q_board(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply)
{
    const Samordna__V1__BoardRequest *req = (const Samordna__V1__BoardRequest *)call->msg;
    char as_of[11];
    if (*req->as_of) {
        char err[200];
        if (sam_check_date("as_of", req->as_of, true, err, sizeof err))
            return sam_reply_error(reply, SAM_BAD_REQUEST, "%s", err);
        snprintf(as_of, sizeof as_of, "%s", req->as_of);
    } else
        status_today(as_of); /* for the reply; the rows are everything recorded */
    const char *fold_to = *req->as_of ? as_of : NULL;

    s_list_t kinds = {0};
    Samordna__V1__BoardRow **rows = NULL;
    size_t n_rows = 0, cap = 0;
    /* fold state shared by every row: the barrier table and the record arena */
    s_arena_t arena = {malloc(65536), 65536, 0};
    ProtobufCAllocator alloc = {s_arena_alloc, s_arena_free, &arena};
    s_fold_bar_t fold = {.alloc = &alloc, .arena = &arena};
    s_fold_bar_t *bar = arena.buf ? &fold : NULL;
    MDB_cursor *cur = NULL;
    int rc = bar ? s_load_kinds(svc, txn, &kinds) : SAM_STORE_NOMEM;
    if (!rc) rc = mdb_cursor_open(txn, sam_service_dbi(svc, "registry"), &cur);
    status_key_t prefix;
    if (*req->pilot)
        status_key_fact(&prefix, "pilot", req->pilot);
    else
        status_key_fact(&prefix, "pilot", "");
    MDB_val k = {prefix.len, prefix.b}, v;
    int g = rc ? rc : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (!rc && g == 0) {
        if (k.mv_size < prefix.len || memcmp(k.mv_data, prefix.b, prefix.len) != 0) break;
        if (*req->pilot && k.mv_size != prefix.len) break;
        Samordna__V1__StatusFact *p = samordna__v1__status_fact__unpack(NULL, v.mv_size, v.mv_data);
        if (!p) {
            rc = SAM_STORE_CORRUPT;
            break;
        }
        if (n_rows == cap) {
            cap = cap ? cap * 2 : 64;
            Samordna__V1__BoardRow **nr = realloc(rows, cap * sizeof *nr);
            if (!nr)
                rc = SAM_STORE_NOMEM;
            else
                rows = nr;
        }
        Samordna__V1__BoardRow *row = rc ? NULL : calloc(1, sizeof *row);
        if (!rc && !row) rc = SAM_STORE_NOMEM;
        if (!rc) {
            rows[n_rows++] = row;
            rc = s_board_row(svc, txn, p, &kinds, fold_to, row, bar);
            if (!rc && !s_row_complete(row)) rc = SAM_STORE_NOMEM;
        }
        FREE(p);
        g = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (cur) mdb_cursor_close(cur);
    if (!rc && g != 0 && g != MDB_NOTFOUND) rc = g;
    if (!rc && *req->pilot && n_rows == 0)
        rc = sam_reply_error(reply, SAM_NOT_FOUND, "pilot: unknown pilot '%s'", req->pilot);
    else if (!rc) {
        Samordna__V1__BoardReply r = SAMORDNA__V1__BOARD_REPLY__INIT;
        r.as_of = as_of;
        r.n_kinds = kinds.n;
        r.kinds = (Samordna__V1__MilestoneKind **)kinds.v;
        r.n_rows = n_rows;
        r.rows = rows;
        rc = sam_reply_message(reply, &r.base);
    }
    for (size_t i = 0; i < n_rows; i++) {
        s_row_free(rows[i]);
        free(rows[i]);
    }
    free(rows);
    free(fold.seen);
    free(arena.buf);
    s_list_free(&kinds);
    return rc;
}

/* ---- milestone history ------------------------------------------------------------------- */

static int s_collect(const MDB_val *v, void *arg)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(&samordna__v1__milestone_change__descriptor,
                                                    NULL, v->mv_size, v->mv_data);
    if (m && s_list_push(arg, m)) protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

/* status.milestones.history: HistoryRequest {pilot} → HistoryReply (date order) */
int status_q_history(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply)
{
    const Samordna__V1__MilestoneHistoryRequest *req =
        (const Samordna__V1__MilestoneHistoryRequest *)call->msg;
    int rc;
    s_list_t l = {0};
    Samordna__V1__StatusFact *p = NULL;
    char err[200];
    if (sam_check_id("pilot", req->pilot, true, err, sizeof err))
        rc = sam_reply_error(reply, SAM_BAD_REQUEST, "%s", err);
    else if (!(p = status_fact_find(svc, txn, false, "pilot", req->pilot)))
        rc = sam_reply_error(reply, SAM_NOT_FOUND, "pilot: unknown pilot '%s'", req->pilot);
    else if (!(rc = status_hist_each(svc, txn, "mshist", req->pilot, NULL, s_collect, &l))) {
        Samordna__V1__MilestoneHistoryReply r = SAMORDNA__V1__MILESTONE_HISTORY_REPLY__INIT;
        r.n_changes = l.n;
        r.changes = (Samordna__V1__MilestoneChange **)l.v;
        rc = sam_reply_message(reply, &r.base);
    }
    if (p) FREE(p);
    s_list_free(&l);
    return rc;
}

/* ---- meetings ---------------------------------------------------------------------------- */

/*  An empty list filtered by an id the projection of the registry does not hold: the id is
    unknown, which is a 404 naming it rather than an empty list. (A list with records in it
    shows the id exists, so only an empty one is checked.) -1 with the refusal in reply, or 0. */
static int s_filter_known(sam_service_t *svc, MDB_txn *txn, sam_reply_t *reply, const char *field,
                          const char *kind, const char *id)
{
    char err[200];
    if (!*id) return 0;
    if (sam_check_id(field, id, false, err, sizeof err))
        return sam_reply_error(reply, SAM_BAD_REQUEST, "%s", err);
    Samordna__V1__StatusFact *f = status_fact_find(svc, txn, false, kind, id);
    if (f) {
        FREE(f);
        return 0;
    }
    return sam_reply_error(reply, SAM_NOT_FOUND, "%s: unknown %s '%s'", field, kind, id);
}

/* Remembers key k as the last of a page, for the next page's token. */
static void s_last_key(status_key_t *last, const MDB_val *k)
{
    last->len = k->mv_size <= STATUS_KEY_MAX ? k->mv_size : STATUS_KEY_MAX;
    memcpy(last->b, k->mv_data, last->len);
}

/* Packs the list reply r; its next_page_token (*token) is the token of `last`, "" when NULL
   (the last page). */
static int s_reply_page(sam_reply_t *reply, ProtobufCMessage *r, char **token,
                        const status_key_t *last)
{
    char text[2 * STATUS_KEY_MAX + 1] = "";
    if (last) status_token_encode(last, text, sizeof text);
    *token = text;
    return sam_reply_message(reply, r);
}

/* status.meetings.list: MeetingsRequest {pilot | municipality, from, to, kind, page} →
   MeetingsReply in date order. */
int status_q_meetings(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply)
{
    const Samordna__V1__MeetingsRequest *req = (const Samordna__V1__MeetingsRequest *)call->msg;
    int rc = 0;
    char scope[80] = "*";
    char err[200];
    if (sam_check_id("pilot", req->pilot, false, err, sizeof err) ||
        sam_check_id("municipality", req->municipality, false, err, sizeof err) ||
        sam_check_date("from", req->from, false, err, sizeof err) ||
        sam_check_date("to", req->to, false, err, sizeof err))
        return sam_reply_error(reply, SAM_BAD_REQUEST, "%s", err);
    if (*req->pilot)
        snprintf(scope, sizeof scope, "p:%s", req->pilot);
    else if (*req->municipality)
        snprintf(scope, sizeof scope, "m:%s", req->municipality);
    status_key_t prefix, start, end;
    status_key_pair(&prefix, scope, "");
    status_key_pair(&start, scope, req->from);
    status_key_hist_end(&end, scope, *req->to ? req->to : "9999-99-99");
    if (*req->page_token) {
        if (status_token_decode(req->page_token, &start) || start.len < prefix.len ||
            memcmp(start.b, prefix.b, prefix.len) != 0) {
            sam_reply_error(reply, SAM_BAD_REQUEST, "page_token: not a token of this listing");
            return -1;
        }
    }
    uint32_t want = s_page_size(req->page_size);
    s_list_t l = {0};
    MDB_cursor *cur;
    rc = mdb_cursor_open(txn, sam_service_dbi(svc, "meetidx"), &cur);
    MDB_val k, v; /* no key is start itself: a token is a key, and the keys are longer */
    int g = rc ? rc : sam_store_cursor_after(cur, start.b, start.len, &k, &v);
    status_key_t last = {.len = 0};
    bool more = false;
    while (!rc && g == 0) {
        if (k.mv_size < prefix.len + 10 || memcmp(k.mv_data, prefix.b, prefix.len) != 0) break;
        size_t n = k.mv_size < end.len ? k.mv_size : end.len;
        if (memcmp(k.mv_data, end.b, n) > 0) break;
        if (l.n == want) {
            more = true;
            break;
        }
        const uint8_t *id = (const uint8_t *)k.mv_data + prefix.len + 10;
        ProtobufCMessage *m = NULL;
        int gr =
            sam_store_get_msg(txn, sam_service_dbi(svc, "meetings"), id,
                              k.mv_size - prefix.len - 10, &samordna__v1__meeting__descriptor, &m);
        if (gr == 0) {
            Samordna__V1__Meeting *mt = (Samordna__V1__Meeting *)m;
            if (*req->kind && strcmp(mt->kind, req->kind) != 0)
                FREE(mt);
            else if (s_list_push(&l, m))
                FREE(mt);
        }
        s_last_key(&last, &k);
        g = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (!rc) mdb_cursor_close(cur);
    if (!rc && l.n == 0 && !*req->page_token &&
        (s_filter_known(svc, txn, reply, "pilot", "pilot", req->pilot) ||
         s_filter_known(svc, txn, reply, "municipality", "municipality", req->municipality)))
        rc = -1;
    if (!rc) {
        Samordna__V1__MeetingsReply r = SAMORDNA__V1__MEETINGS_REPLY__INIT;
        r.n_meetings = l.n;
        r.meetings = (Samordna__V1__Meeting **)l.v;
        rc = s_reply_page(reply, &r.base, &r.next_page_token, more ? &last : NULL);
    }
    s_list_free(&l);
    return rc;
}

/*  A get-by-id query: StatusGetRequest {id} → the record of `table`, called `what` in
    errors. `id_ok` says what a well-formed id of the table is, `id_shape` names it. */
static int s_get_by_id(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply,
                       const char *table, const char *what, bool (*id_ok)(const char *),
                       const char *id_shape, const ProtobufCMessageDescriptor *desc)
{
    const Samordna__V1__StatusGetRequest *req = (const Samordna__V1__StatusGetRequest *)call->msg;
    int rc;
    ProtobufCMessage *m = NULL;
    status_key_t k;
    if (!id_ok(req->id))
        rc = sam_reply_error(reply, SAM_BAD_REQUEST, "id: '%.70s' is not %s", req->id, id_shape);
    else {
        status_key_id(&k, req->id);
        int g = status_get(svc, txn, table, &k, desc, &m);
        if (g == MDB_NOTFOUND)
            rc = sam_reply_error(reply, SAM_NOT_FOUND, "id: unknown %s '%s'", what, req->id);
        else if (g)
            rc = g;
        else
            rc = sam_reply_message(reply, m);
    }
    if (m) protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

/* status.meetings.get: GetRequest {id} → Meeting */
int status_q_meeting_get(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                         sam_reply_t *reply)
{
    return s_get_by_id(svc, txn, call, reply, "meetings", "meeting", status_id_ok, "an id",
                       &samordna__v1__meeting__descriptor);
}

/* status.kinds.get: StatusGetRequest {id} → MilestoneKind */
int status_q_kind_get(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply)
{
    return s_get_by_id(svc, txn, call, reply, "kinds", "milestone kind", status_token_ok,
                       "a kind id", &samordna__v1__milestone_kind__descriptor);
}

/* status.barriers.get: GetRequest {id} → Barrier with its history */
int status_q_barrier_get(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                         sam_reply_t *reply)
{
    return s_get_by_id(svc, txn, call, reply, "barriers", "barrier", status_id_ok, "an id",
                       &samordna__v1__barrier__descriptor);
}

/* ---- steps ------------------------------------------------------------------------------- */

/* status.steps.list: StepsRequest {pilot, state} → StepsReply (pilot, then step id order) */
int status_q_steps(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply)
{
    const Samordna__V1__PlanStepsRequest *req = (const Samordna__V1__PlanStepsRequest *)call->msg;
    char err[200];
    if (sam_check_id("pilot", req->pilot, false, err, sizeof err))
        return sam_reply_error(reply, SAM_BAD_REQUEST, "%s", err);
    status_key_t prefix = {.len = 0};
    if (*req->pilot) status_key_pair(&prefix, req->pilot, "");
    s_list_t l = {0};
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, sam_service_dbi(svc, "steps"), &cur);
    MDB_val k = {prefix.len, prefix.b}, v;
    int g = rc ? rc : mdb_cursor_get(cur, &k, &v, prefix.len ? MDB_SET_RANGE : MDB_FIRST);
    while (!rc && g == 0 && l.n < PAGE_MAX * 10) {
        if (prefix.len && (k.mv_size < prefix.len || memcmp(k.mv_data, prefix.b, prefix.len)))
            break;
        ProtobufCMessage *m = protobuf_c_message_unpack(&samordna__v1__plan_step__descriptor, NULL,
                                                        v.mv_size, v.mv_data);
        if (m) {
            Samordna__V1__PlanStep *st = (Samordna__V1__PlanStep *)m;
            if ((*req->state && strcmp(st->state, req->state) != 0) || s_list_push(&l, m)) FREE(st);
        }
        g = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (!rc) mdb_cursor_close(cur);
    if (!rc && l.n == 0 && s_filter_known(svc, txn, reply, "pilot", "pilot", req->pilot)) rc = -1;
    if (!rc) {
        Samordna__V1__PlanStepsReply r = SAMORDNA__V1__PLAN_STEPS_REPLY__INIT;
        r.n_steps = l.n;
        r.steps = (Samordna__V1__PlanStep **)l.v;
        rc = sam_reply_message(reply, &r.base);
    }
    s_list_free(&l);
    return rc;
}

/* ---- barriers ---------------------------------------------------------------------------- */

static bool s_barrier_match(const Samordna__V1__BarriersRequest *q, const Samordna__V1__Barrier *b)
{
    if (*q->state && strcmp(q->state, b->state) != 0) return false;
    if (*q->pilot && strcmp(q->pilot, b->pilot) != 0) return false;
    if (*q->municipality && strcmp(q->municipality, b->municipality) != 0) return false;
    if (*q->raised_by && strcmp(q->raised_by, b->raised_by) != 0) return false;
    if (*q->concerns && strcmp(q->concerns, b->concerns) != 0) return false;
    if (q->open_only && !status_barrier_open(b->state)) return false;
    return true;
}

/* status.barriers.list: BarriersRequest {filters, page} → BarriersReply in id order */
int status_q_barriers(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply)
{
    const Samordna__V1__BarriersRequest *req = (const Samordna__V1__BarriersRequest *)call->msg;
    static const char *const states[] = {"identified", "raised_regionally", "raised_nationally",
                                         "changed",    "rejected",          "withdrawn"};
    bool state_ok = !*req->state;
    for (size_t i = 0; i < 6; i++)
        state_ok |= strcmp(req->state, states[i]) == 0;
    status_key_t start = {.len = 0};
    if (!state_ok) {
        char shown[128];
        sam_check_escape(req->state, 40, shown, sizeof shown);
        sam_reply_error(reply, SAM_BAD_REQUEST,
                        "state: unknown barrier state '%s' (one of identified, raised_regionally, "
                        "raised_nationally, changed, rejected, withdrawn)",
                        shown);
        return -1;
    }
    if (*req->page_token && status_token_decode(req->page_token, &start)) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "page_token: not a token of this listing");
        return -1;
    }
    uint32_t want = s_page_size(req->page_size);
    s_list_t l = {0};
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, sam_service_dbi(svc, "barriers"), &cur);
    MDB_val k, v;
    int g = rc ? rc : sam_store_cursor_after(cur, start.b, start.len, &k, &v);
    status_key_t last = {.len = 0};
    bool more = false;
    while (!rc && g == 0) {
        ProtobufCMessage *m = protobuf_c_message_unpack(&samordna__v1__barrier__descriptor, NULL,
                                                        v.mv_size, v.mv_data);
        if (m && s_barrier_match(req, (Samordna__V1__Barrier *)m)) {
            if (l.n == want) {
                more = true;
                protobuf_c_message_free_unpacked(m, NULL);
                break;
            }
            if (s_list_push(&l, m)) protobuf_c_message_free_unpacked(m, NULL);
            s_last_key(&last, &k);
        } else if (m)
            protobuf_c_message_free_unpacked(m, NULL);
        g = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (!rc) mdb_cursor_close(cur);
    if (!rc && l.n == 0 && !*req->page_token &&
        (s_filter_known(svc, txn, reply, "pilot", "pilot", req->pilot) ||
         s_filter_known(svc, txn, reply, "municipality", "municipality", req->municipality) ||
         s_filter_known(svc, txn, reply, "raised_by", "agency", req->raised_by)))
        rc = -1;
    if (!rc) {
        Samordna__V1__BarriersReply r = SAMORDNA__V1__BARRIERS_REPLY__INIT;
        r.n_barriers = l.n;
        r.barriers = (Samordna__V1__Barrier **)l.v;
        rc = s_reply_page(reply, &r.base, &r.next_page_token, more ? &last : NULL);
    }
    s_list_free(&l);
    return rc;
}

/* ---- report ------------------------------------------------------------------------------ */

/* The name people know an agency or a municipality by, or the id when the projection has
   none. */
static void s_fact_name(sam_service_t *svc, MDB_txn *txn, const char *kind, const char *id,
                        char *out, size_t cap)
{
    snprintf(out, cap, "%s", id);
    if (!*id) return;
    Samordna__V1__StatusFact *f = status_fact_find(svc, txn, false, kind, id);
    if (f && *f->name) snprintf(out, cap, "%s", f->name);
    if (f) protobuf_c_message_free_unpacked(&f->base, NULL);
}

/* Where a change happened, by name: the pilot's municipality, the municipality, or "" for
   the programme as a whole. */
static void s_where(sam_service_t *svc, MDB_txn *txn, const Samordna__V1__StatusChange *c,
                    char *out, size_t cap)
{
    const char *muni = c->municipality;
    Samordna__V1__StatusFact *p =
        !*muni && *c->pilot ? status_fact_find(svc, txn, false, "pilot", c->pilot) : NULL;
    if (p) muni = p->municipality;
    s_fact_name(svc, txn, "municipality", *muni ? muni : c->pilot, out, cap);
    if (p) protobuf_c_message_free_unpacked(&p->base, NULL);
}

/* A milestone kind's label: the store's own (Norwegian, from kinds define), else the
   vocabulary's. */
static void s_label(sam_service_t *svc, MDB_txn *txn, sam_lang_t lang, const char *kind, char *out,
                    size_t cap)
{
    ProtobufCMessage *m = NULL;
    if (lang == SAM_LANG_NB &&
        sam_store_get_msg(txn, sam_service_dbi(svc, "kinds"), kind, strlen(kind),
                          &samordna__v1__milestone_kind__descriptor, &m) == 0 &&
        *((Samordna__V1__MilestoneKind *)m)->label)
        snprintf(out, cap, "%s", ((Samordna__V1__MilestoneKind *)m)->label);
    else
        sam_word_cap(lang, "milestone", kind, out, cap);
    if (m) protobuf_c_message_free_unpacked(m, NULL);
}

/*  One change as a line for people in `lang`, with names, not ids: "Halden nådde
    Kunnskapsgrunnlag", "Arbeidsmøte i Halden: Oppfølging". A change stored before its
    fields were kept (no kind, no title) keeps the line it was stored with. */
static void s_render(sam_service_t *svc, MDB_txn *txn, sam_lang_t lang,
                     const Samordna__V1__StatusChange *c, char *out, size_t cap)
{
    bool en = lang == SAM_LANG_EN;
    char where[256], word[128], label[256], owner[256], note[1100] = "";
    s_where(svc, txn, c, where, sizeof where);
    if (*c->note) snprintf(note, sizeof note, ": %s", c->note);
    const char *w = c->what;
    if (!strcmp(w, "milestone.corrected") && *c->kind) {
        char was[64];
        s_label(svc, txn, lang, c->kind, label, sizeof label);
        sam_words_date(lang, c->state, was, sizeof was);
        snprintf(out, cap, en ? "%s: %s corrected (was %s)%s" : "%s: %s rettet (var %s)%s", where,
                 label, was, note);
    } else if ((!strcmp(w, "meeting.corrected") || !strcmp(w, "meeting.cancelled")) && *c->kind) {
        sam_word_cap(lang, "meeting", c->kind, word, sizeof word);
        bool cancelled = !strcmp(w, "meeting.cancelled");
        snprintf(out, cap, "%s%s%s%s%s %s%s", word, *where ? (en ? " in " : " i ") : "", where,
                 *c->title ? ": " : "", c->title,
                 cancelled ? (en ? "cancelled" : "avlyst") : (en ? "corrected" : "rettet"), note);
    } else if (!strcmp(w, "barrier.reopened") && *c->title) {
        sam_word(lang, "barrier", c->state, word, sizeof word);
        snprintf(out, cap,
                 en ? "Barrier in %s “%s” reopened: %s%s" : "Hinder i %s «%s» gjenåpnet: %s%s",
                 where, c->title, word, note);
    } else if (!strncmp(w, "milestone.", 10) && *c->kind) {
        s_label(svc, txn, lang, c->kind, label, sizeof label);
        bool reached = !strcmp(w, "milestone.reached");
        snprintf(out, cap, "%s %s %s%s", where,
                 reached ? (en ? "reached" : "nådde") : (en ? "took back" : "tok tilbake"), label,
                 note);
    } else if (!strcmp(w, "meeting.logged") && *c->kind) {
        sam_word_cap(lang, "meeting", c->kind, word, sizeof word);
        snprintf(out, cap, "%s%s%s%s%s", word, *where ? (en ? " in " : " i ") : "", where,
                 *c->title ? ": " : "", c->title);
    } else if (!strncmp(w, "step.", 5) && *c->title) {
        s_fact_name(svc, txn, "agency", c->owner, owner, sizeof owner);
        sam_word(lang, "step", c->state, word, sizeof word);
        if (!strcmp(w, "step.added"))
            snprintf(out, cap,
                     en ? "New step for %s: “%s” (%s, %s)%s"
                        : "Nytt tiltak for %s: «%s» (%s, %s)%s",
                     where, c->title, owner, word, note);
        else
            snprintf(out, cap, en ? "Step for %s “%s” (%s): %s%s" : "Tiltak for %s «%s» (%s): %s%s",
                     where, c->title, owner, word, note);
    } else if (!strncmp(w, "barrier.", 8) && *c->title) {
        sam_word(lang, "barrier", c->state, word, sizeof word);
        if (!strcmp(w, "barrier.registered"))
            snprintf(out, cap, en ? "New barrier in %s: “%s”" : "Nytt hinder i %s: «%s»", where,
                     c->title);
        else
            snprintf(out, cap, en ? "Barrier in %s “%s”: %s%s" : "Hinder i %s «%s»: %s%s", where,
                     c->title, word, note);
    } else
        snprintf(out, cap, "%s", c->summary);
}

/* status.report: ReportRequest {from, to, lang} → ReportReply: every change dated in [from,
   to], each summary a line in the language asked for */
int status_q_report(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply)
{
    const Samordna__V1__StatusReportRequest *req =
        (const Samordna__V1__StatusReportRequest *)call->msg;
    int rc = 0;
    char err[200];
    if (sam_check_date("from", req->from, true, err, sizeof err) ||
        sam_check_date("to", req->to, true, err, sizeof err))
        rc = sam_reply_error(reply, SAM_BAD_REQUEST, "%s", err);
    else if (strcmp(req->from, req->to) > 0)
        rc =
            sam_reply_error(reply, SAM_BAD_REQUEST, "to: %s is before from %s", req->to, req->from);
    sam_lang_t lang = SAM_LANG_NB;
    if (!rc && sam_lang_parse(req->lang, &lang))
        rc = sam_reply_error(reply, SAM_BAD_REQUEST, "lang: '%s' is not nb or en",
                             sam_check_escape(req->lang, 16, err, sizeof err));
    if (rc) return rc;
    s_list_t l = {0};
    bool truncated = false;
    MDB_cursor *cur;
    rc = mdb_cursor_open(txn, sam_service_dbi(svc, "timeline"), &cur);
    MDB_val k = {10, req->from}, v;
    int g = rc ? rc : mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (!rc && g == 0) {
        if (k.mv_size < 10 || memcmp(k.mv_data, req->to, 10) > 0) break;
        if (l.n == REPORT_MAX) {
            truncated = true;
            break;
        }
        ProtobufCMessage *m = protobuf_c_message_unpack(&samordna__v1__status_change__descriptor,
                                                        NULL, v.mv_size, v.mv_data);
        if (m && s_list_push(&l, m)) protobuf_c_message_free_unpacked(m, NULL);
        g = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (!rc) mdb_cursor_close(cur);
    /* each summary rendered into lines[i]; the stored one is put back before the list is
       freed (it belongs to the unpacked message) */
    char **lines = !rc && l.n ? calloc(l.n, sizeof *lines) : NULL;
    char **stored = lines ? calloc(l.n, sizeof *stored) : NULL;
    if (!rc && l.n && (!lines || !stored)) rc = ENOMEM;
    for (size_t i = 0; !rc && i < l.n; i++) {
        Samordna__V1__StatusChange *c = (Samordna__V1__StatusChange *)l.v[i];
        if (!(lines[i] = malloc(2048))) {
            rc = ENOMEM;
            break;
        }
        s_render(svc, txn, lang, c, lines[i], 2048);
        stored[i] = c->summary;
        c->summary = lines[i];
    }
    if (!rc) {
        Samordna__V1__StatusReportReply r = SAMORDNA__V1__STATUS_REPORT_REPLY__INIT;
        r.from = req->from;
        r.to = req->to;
        r.n_changes = l.n;
        r.changes = (Samordna__V1__StatusChange **)l.v;
        r.truncated = truncated;
        rc = sam_reply_message(reply, &r.base);
    }
    for (size_t i = 0; lines && i < l.n; i++) {
        if (stored && stored[i]) ((Samordna__V1__StatusChange *)l.v[i])->summary = stored[i];
        free(lines[i]);
    }
    free(lines);
    free(stored);
    s_list_free(&l);
    return rc;
}
