/*  status_events.c — the apply functions of every no.samordna.status.* event.

    Each runs inside the runtime's nested write transaction on the payload the runtime has
    decoded (ev->msg, as status.def's row says), checks every field (shape → 400, unknown reference
   → 422, unknown target → 404, wrong state or illegal transition → 409, not the publisher's to
   change → 403), and only then writes. A refusal returns -1 with the reason naming the field, a
   store error its code (answered 500 by the runtime); either way the runtime aborts the nested
   transaction, so nothing of a refused event is stored.

    History is never overwritten: a milestone taken back is a new record in the pilot's
    history, a barrier keeps every step it took, and every change lands in the timeline that
    status.report reads. A milestone change may not be dated before the last change of the
    same milestone, so date order and publication order agree, and the state as of any day is
    a fold of the history up to that day.
*/
#include "status.h"

#include "sam_calendar.h"
#include "sam_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TITLE_MAX 200
#define TEXT_MAX 4000
#define PARTICIPANTS_MAX 100
#define SERIES_MAX 240

#define FREE(m) protobuf_c_message_free_unpacked(&(m)->base, NULL)

/* ---- small shared checks ------------------------------------------------------------------- */

static int s_text(sam_reply_t *reply, const char *field, const char *s, size_t max, bool required)
{
    if (required && (!s || !*s))
        return sam_reply_error(reply, SAM_BAD_REQUEST, "%s: required", field);
    if (s && strlen(s) > max)
        return sam_reply_error(reply, SAM_BAD_REQUEST, "%s: longer than %zu bytes", field, max);
    return 0;
}

/* A date and an id by everyone's rules (sam_check.h), both required here. */
static int s_date(sam_reply_t *reply, const char *field, const char *s)
{
    char err[200];
    if (!sam_check_date(field, s, true, err, sizeof err)) return 0;
    return sam_reply_error(reply, SAM_BAD_REQUEST, "%s", err);
}

static int s_id(sam_reply_t *reply, const char *field, const char *s)
{
    char err[200];
    if (!sam_check_id(field, s, true, err, sizeof err)) return 0;
    return sam_reply_error(reply, SAM_BAD_REQUEST, "%s", err);
}

static int s_token(sam_reply_t *reply, const char *field, const char *s)
{
    if (!s || !*s) return sam_reply_error(reply, SAM_BAD_REQUEST, "%s: required", field);
    if (!status_token_ok(s))
        return sam_reply_error(reply, SAM_BAD_REQUEST,
                               "%s: '%.70s' is not a name ([a-z0-9_-], at most 64)", field, s);
    return 0;
}

static bool s_member(const Samordna__V1__StatusFact *pilot, const char *agency)
{
    if (!agency || !*agency) return false;
    if (strcmp(pilot->investment_leader, agency) == 0) return true;
    for (size_t i = 0; i < pilot->n_team; i++)
        if (strcmp(pilot->team[i], agency) == 0) return true;
    return false;
}

/* A publisher acts for a pilot only when it leads it or sits on its investment team. */
static int s_may_act_for(const sam_event_t *ev, const Samordna__V1__StatusFact *pilot,
                         const char *extra_owner, sam_reply_t *reply)
{
    if (status_caller_admin(ev->caller) || s_member(pilot, ev->caller->agency)) return 0;
    if (extra_owner && *extra_owner && strcmp(extra_owner, ev->caller->agency) == 0) return 0;
    return sam_reply_error(reply, SAM_FORBIDDEN,
                           "pilot: agency '%s' is not on the investment team of pilot '%s'",
                           ev->caller->agency, pilot->id);
}

/* The acting agency: the field when given, else the event's source. */
static const char *s_actor(const sam_event_t *ev, const char *given)
{
    return given && *given ? given : ev->ce->source;
}

/* The day the event is recorded on, in the programme's time zone. */
static void s_today_of(const sam_event_t *ev, char out[11])
{
    sam_clock_date_of(ev->now_ms, out);
}

/* Appends one entry to the timeline (n tells apart several entries of one event). Returns 0
   or a store error. */
static int s_timeline(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev, uint16_t n,
                      Samordna__V1__StatusChange *c)
{
    c->seq = ev->seq;
    status_key_t k;
    status_key_timeline(&k, c->date, ev->seq, n);
    return status_put(svc, txn, "timeline", &k, &c->base);
}

/* Brings a pilot's current standing up to date: `kind` reached on `date` (date NULL: taken
   back), and/or the open barrier count moved by `barrier_delta`. Returns 0, -1 (reply set)
   or a store error. */
static int s_state_update(sam_service_t *svc, MDB_txn *txn, const char *pilot, const char *kind,
                          const char *date, int barrier_delta, sam_reply_t *reply)
{
    status_key_t k;
    status_key_id(&k, pilot);
    ProtobufCMessage *got = NULL;
    int g = status_get(svc, txn, "pilotstate", &k, &samordna__v1__pilot_state__descriptor, &got);
    if (g && g != MDB_NOTFOUND) return g;
    Samordna__V1__PilotState *old = (Samordna__V1__PilotState *)got;
    size_t n_old = old ? old->n_reached : 0;
    Samordna__V1__BoardCell **cells = calloc(n_old + 1, sizeof *cells);
    Samordna__V1__BoardCell added = SAMORDNA__V1__BOARD_CELL__INIT;
    if (!cells) {
        if (old) FREE(old);
        return sam_reply_error(reply, SAM_INTERNAL, "out of memory");
    }
    size_t n = 0;
    for (size_t i = 0; i < n_old; i++)
        if (!kind || strcmp(old->reached[i]->kind, kind) != 0) cells[n++] = old->reached[i];
    if (kind && date) {
        added.kind = (char *)kind;
        added.date = (char *)date;
        cells[n++] = &added;
    }
    Samordna__V1__PilotState st = SAMORDNA__V1__PILOT_STATE__INIT;
    st.pilot = (char *)pilot;
    st.n_reached = n;
    st.reached = cells;
    int64_t open = (old ? (int64_t)old->open_barriers : 0) + barrier_delta;
    st.open_barriers = open > 0 ? (uint32_t)open : 0;
    int rc = status_put(svc, txn, "pilotstate", &k, &st.base);
    free(cells);
    if (old) FREE(old);
    return rc;
}

/* ---- milestone kinds --------------------------------------------------------------------- */

/* MilestoneKind {id, label, order}: defines or redefines a kind; orders stay unique. */
int status_ev_kind_defined(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                           sam_reply_t *reply)
{
    const Samordna__V1__MilestoneKind *m = (const Samordna__V1__MilestoneKind *)ev->msg;
    int rc = -1;
    if (s_token(reply, "id", m->id) || s_text(reply, "label", m->label, 64, true)) goto done;
    if (m->order < 1 || m->order > 1000) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "order: must be 1..1000");
        goto done;
    }
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, sam_service_dbi(svc, "kinds"), &cur))) goto done;
    MDB_val k, v;
    int g = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    rc = 0;
    while (g == 0 && rc == 0) {
        Samordna__V1__MilestoneKind *o =
            samordna__v1__milestone_kind__unpack(NULL, v.mv_size, v.mv_data);
        if (o && o->order == m->order && strcmp(o->id, m->id) != 0)
            rc = sam_reply_error(reply, SAM_CONFLICT, "order: %u is taken by kind '%s'", m->order,
                                 o->id);
        if (o) FREE(o);
        g = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc) goto done;
    status_key_t key;
    status_key_id(&key, m->id);
    rc = status_put(svc, txn, "kinds", &key, &m->base);
done:
    return rc;
}

static Samordna__V1__MilestoneKind *s_kind(sam_service_t *svc, MDB_txn *txn, const char *id)
{
    ProtobufCMessage *out = NULL;
    int rc = sam_store_get_msg(txn, sam_service_dbi(svc, "kinds"), id, strlen(id),
                               &samordna__v1__milestone_kind__descriptor, &out);
    return rc == 0 ? (Samordna__V1__MilestoneKind *)out : NULL;
}

/* ---- milestones -------------------------------------------------------------------------- */

typedef struct {
    const char *kind;
    bool found;
    bool reached;
    char date[11];
    uint64_t seq;       /* the last change's */
    char evidence[512]; /* and its evidence */
} s_last_t;

static int s_last_cb(const MDB_val *v, void *arg)
{
    s_last_t *l = arg;
    Samordna__V1__MilestoneChange *c =
        samordna__v1__milestone_change__unpack(NULL, v->mv_size, v->mv_data);
    if (!c) return 0;
    /* a change a correction replaced is history, not the standing */
    if (strcmp(c->kind, l->kind) == 0 && !c->superseded_by) {
        l->found = true;
        l->reached = c->reached;
        l->seq = c->seq;
        snprintf(l->date, sizeof l->date, "%s", c->date);
        snprintf(l->evidence, sizeof l->evidence, "%s", c->evidence);
    }
    FREE(c);
    return 0;
}

/* The checks reached and reverted share; on success *pilot_out is the pilot's fact. */
static int s_milestone_common(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                              const char *pilot, const char *kind, const char *date,
                              const char *actor, s_last_t *last, sam_reply_t *reply,
                              Samordna__V1__StatusFact **pilot_out)
{
    if (s_id(reply, "pilot", pilot) || s_token(reply, "kind", kind) ||
        s_date(reply, "date", date) || s_id(reply, "actor", actor))
        return -1;
    Samordna__V1__StatusFact *p = status_fact_require(svc, txn, "pilot", pilot, "pilot", reply);
    if (!p) return -1;
    Samordna__V1__MilestoneKind *k = s_kind(svc, txn, kind);
    if (!k) {
        FREE(p);
        return sam_reply_error(reply, SAM_UNPROCESSABLE, "kind: unknown milestone kind '%s'", kind);
    }
    FREE(k);
    Samordna__V1__StatusFact *a = status_fact_require(svc, txn, "agency", actor, "actor", reply);
    if (!a || s_may_act_for(ev, p, NULL, reply)) {
        if (a) FREE(a);
        FREE(p);
        return -1;
    }
    FREE(a);
    last->kind = kind;
    int rc = status_hist_each(svc, txn, "mshist", pilot, NULL, s_last_cb, last);
    if (rc) {
        FREE(p);
        return rc;
    }
    if (last->found && strcmp(date, last->date) < 0) {
        FREE(p);
        return sam_reply_error(reply, SAM_CONFLICT,
                               "date: %s is before the last change of milestone '%s' (%s)", date,
                               kind, last->date);
    }
    *pilot_out = p;
    return 0;
}

static int s_milestone_store(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                             Samordna__V1__MilestoneChange *c, const Samordna__V1__StatusFact *p,
                             sam_reply_t *reply)
{
    c->seq = ev->seq;
    status_key_t k;
    status_key_hist(&k, c->pilot, c->date, ev->seq);
    int rc = status_put(svc, txn, "mshist", &k, &c->base);
    if (!rc)
        rc = s_state_update(svc, txn, c->pilot, c->kind, c->reached ? c->date : NULL, 0, reply);
    if (rc) return rc;
    char summary[512];
    if (c->reached)
        snprintf(summary, sizeof summary, "%s reached %s%s%s", c->pilot, c->kind,
                 *c->evidence ? ": " : "", c->evidence);
    else
        snprintf(summary, sizeof summary, "%s took back %s: %s", c->pilot, c->kind, c->reason);
    Samordna__V1__StatusChange ch = SAMORDNA__V1__STATUS_CHANGE__INIT;
    ch.date = c->date;
    ch.what = c->reached ? "milestone.reached" : "milestone.reverted";
    ch.pilot = c->pilot;
    ch.municipality = p->municipality;
    ch.subject = c->kind;
    ch.summary = summary;
    ch.by = c->actor;
    ch.kind = c->kind;
    ch.note = c->reached ? c->evidence : c->reason;
    return s_timeline(svc, txn, ev, 0, &ch);
}

/*  A milestone reached (text is the evidence, optional) or reverted (text is the reason,
    required): both are checked the same way and record one MilestoneChange. */
/* A day still to come is refused unless the milestone is marked planned. -1 (reply set) or 0. */
static int s_not_future(const sam_event_t *ev, const char *date, bool planned, bool may_plan,
                        sam_reply_t *reply)
{
    char today[11];
    s_today_of(ev, today);
    if (planned || strcmp(date, today) <= 0) return 0;
    return sam_reply_error(reply, SAM_UNPROCESSABLE, "date: %s is still to come (today is %s)%s",
                           date, today,
                           may_plan ? "; a milestone planned for that day is marked planned"
                                    : "; a milestone is taken back on a day that has come");
}

static int s_milestone_event(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev, char *pilot,
                             char *kind, char *date, const char *actor_given, bool reached,
                             bool planned, char *text, sam_reply_t *reply)
{
    Samordna__V1__StatusFact *p = NULL;
    s_last_t last = {0};
    const char *actor = s_actor(ev, actor_given);
    int rc = -1;
    if (s_text(reply, reached ? "evidence" : "reason", text, TEXT_MAX, !reached)) goto done;
    if (s_date(reply, "date", date) || s_not_future(ev, date, planned, reached, reply)) goto done;
    if ((rc = s_milestone_common(svc, txn, ev, pilot, kind, date, actor, &last, reply, &p)))
        goto done;
    rc = -1;
    if (reached && last.found && last.reached) {
        sam_reply_error(reply, SAM_CONFLICT, "kind: pilot '%s' reached '%s' already on %s", pilot,
                        kind, last.date);
        goto done;
    }
    if (!reached && (!last.found || !last.reached)) {
        sam_reply_error(reply, SAM_CONFLICT, "kind: pilot '%s' has not reached '%s'", pilot, kind);
        goto done;
    }
    Samordna__V1__MilestoneChange c = SAMORDNA__V1__MILESTONE_CHANGE__INIT;
    c.pilot = pilot;
    c.kind = kind;
    c.date = date;
    c.reached = reached;
    c.planned = planned;
    c.actor = (char *)actor;
    if (reached)
        c.evidence = text;
    else
        c.reason = text;
    rc = s_milestone_store(svc, txn, ev, &c, p, reply);
done:
    if (p) FREE(p);
    return rc;
}

/* MilestoneReached {pilot, kind, date, actor, evidence} */
int status_ev_reached(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev, sam_reply_t *reply)
{
    const Samordna__V1__MilestoneReached *m = (const Samordna__V1__MilestoneReached *)ev->msg;
    return s_milestone_event(svc, txn, ev, m->pilot, m->kind, m->date, m->actor, true, m->planned,
                             m->evidence, reply);
}

/* MilestoneReverted {pilot, kind, date, actor, reason} — the reason is required. */
int status_ev_reverted(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev, sam_reply_t *reply)
{
    const Samordna__V1__MilestoneReverted *m = (const Samordna__V1__MilestoneReverted *)ev->msg;
    return s_milestone_event(svc, txn, ev, m->pilot, m->kind, m->date, m->actor, false, false,
                             m->reason, reply);
}

/*  MilestoneCorrected {pilot, kind, date, evidence, reason, actor, planned}: the change the
    pilot stands at for `kind` (reached) is replaced by a corrected one — its day may move
    earlier or later — and marked superseded, so the board, its folds and the next change see
    the correction while the pilot's history keeps both. */
int status_ev_milestone_corrected(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                                  sam_reply_t *reply)
{
    const Samordna__V1__MilestoneCorrected *m = (const Samordna__V1__MilestoneCorrected *)ev->msg;
    Samordna__V1__StatusFact *p = NULL, *a = NULL;
    Samordna__V1__MilestoneChange *old = NULL;
    s_last_t last = {.kind = m->kind};
    const char *actor = s_actor(ev, m->actor);
    int rc = -1;
    if (s_id(reply, "pilot", m->pilot) || s_token(reply, "kind", m->kind) ||
        s_id(reply, "actor", actor) || s_text(reply, "reason", m->reason, TEXT_MAX, true) ||
        s_text(reply, "evidence", m->evidence, TEXT_MAX, false))
        goto done;
    if (*m->date &&
        (s_date(reply, "date", m->date) || s_not_future(ev, m->date, m->planned, true, reply)))
        goto done;
    if (!*m->date && !*m->evidence) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "date: nothing to correct; give date or evidence");
        goto done;
    }
    if (!(p = status_fact_require(svc, txn, "pilot", m->pilot, "pilot", reply)) ||
        !(a = status_fact_require(svc, txn, "agency", actor, "actor", reply)) ||
        s_may_act_for(ev, p, NULL, reply))
        goto done;
    if ((rc = status_hist_each(svc, txn, "mshist", m->pilot, NULL, s_last_cb, &last))) goto done;
    rc = -1;
    if (!last.found || !last.reached) {
        sam_reply_error(reply, SAM_CONFLICT,
                        "kind: pilot '%s' does not stand at '%s'; only a milestone reached is "
                        "corrected (one taken back is reached again)",
                        m->pilot, m->kind);
        goto done;
    }
    /* the change corrected: marked superseded where it lies in the history */
    status_key_t ok;
    status_key_hist(&ok, m->pilot, last.date, last.seq);
    ProtobufCMessage *got = NULL;
    if ((rc = status_get(svc, txn, "mshist", &ok, &samordna__v1__milestone_change__descriptor,
                         &got)))
        goto done;
    old = (Samordna__V1__MilestoneChange *)got;
    old->superseded_by = ev->seq;
    if ((rc = status_put(svc, txn, "mshist", &ok, &old->base))) goto done;
    Samordna__V1__MilestoneChange c = SAMORDNA__V1__MILESTONE_CHANGE__INIT;
    c.pilot = m->pilot;
    c.kind = m->kind;
    c.date = *m->date ? m->date : last.date;
    c.reached = true;
    c.planned = m->planned;
    c.actor = (char *)actor;
    c.evidence = *m->evidence ? m->evidence : last.evidence;
    c.reason = m->reason;
    c.corrects = last.seq;
    c.seq = ev->seq;
    status_key_t k;
    status_key_hist(&k, c.pilot, c.date, ev->seq);
    if ((rc = status_put(svc, txn, "mshist", &k, &c.base))) goto done;
    if ((rc = s_state_update(svc, txn, c.pilot, c.kind, c.date, 0, reply))) goto done;
    char summary[700];
    snprintf(summary, sizeof summary, "%s: %s corrected to %s (was %s): %s", c.pilot, c.kind,
             c.date, last.date, m->reason);
    Samordna__V1__StatusChange ch = SAMORDNA__V1__STATUS_CHANGE__INIT;
    ch.date = c.date;
    ch.what = "milestone.corrected";
    ch.pilot = c.pilot;
    ch.municipality = p->municipality;
    ch.subject = c.kind;
    ch.summary = summary;
    ch.by = (char *)actor;
    ch.kind = c.kind;
    ch.note = m->reason;
    ch.state = last.date; /* the day it was corrected from */
    rc = s_timeline(svc, txn, ev, 0, &ch);
done:
    if (old) FREE(old);
    if (a) FREE(a);
    if (p) FREE(p);
    return rc;
}

/* ---- meetings ---------------------------------------------------------------------------- */

/* The same day `months` months later, clamped to the month's last day. */
static void s_add_months(const char *date, int months, char out[16])
{
    int y = atoi(date), m = atoi(date + 5), d = atoi(date + 8);
    int idx = (y * 12 + (m - 1)) + months;
    y = idx / 12;
    m = idx % 12 + 1;
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int max = days[m - 1];
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) max = 29;
    if (d > max) d = max;
    snprintf(out, 16, "%04d-%02d-%02d", y % 10000, m, d);
}

/* A meeting's entries in the date index of each scope it is listed in (every meeting, its
   pilot's, its municipality's, or the programme's): put, or deleted. 0 or a store error. */
static int s_meeting_index(sam_service_t *svc, MDB_txn *txn, const Samordna__V1__Meeting *mt,
                           bool put)
{
    int rc = 0;
    status_key_t k;
    char scope[80];
    MDB_val empty = {0, ""};
    const char *scopes[3] = {"*", NULL, NULL};
    char pscope[80], mscope[80];
    if (*mt->pilot) {
        snprintf(pscope, sizeof pscope, "p:%s", mt->pilot);
        scopes[1] = pscope;
    }
    if (*mt->municipality) {
        snprintf(mscope, sizeof mscope, "m:%s", mt->municipality);
        scopes[2] = mscope;
    }
    if (!*mt->pilot && !*mt->municipality) scopes[1] = "programme";
    for (int i = 0; i < 3 && rc == 0; i++) {
        if (!scopes[i]) continue;
        snprintf(scope, sizeof scope, "%s", scopes[i]);
        status_key_meetidx(&k, scope, mt->date, mt->id);
        MDB_val key = {k.len, k.b};
        rc = put ? mdb_put(txn, sam_service_dbi(svc, "meetidx"), &key, &empty, 0)
                 : mdb_del(txn, sam_service_dbi(svc, "meetidx"), &key, NULL);
        if (rc == MDB_NOTFOUND) rc = 0;
    }
    return rc;
}

static int s_meeting_put(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev, uint16_t n,
                         Samordna__V1__Meeting *mt, sam_reply_t *reply)
{
    status_key_t k;
    status_key_id(&k, mt->id);
    if (sam_store_has(txn, sam_service_dbi(svc, "meetings"), k.b, k.len))
        return sam_reply_error(reply, SAM_CONFLICT, "id: meeting '%s' exists already", mt->id);
    int rc = status_put(svc, txn, "meetings", &k, &mt->base);
    if (!rc) rc = s_meeting_index(svc, txn, mt, true);
    if (rc) return rc;
    char summary[512];
    snprintf(summary, sizeof summary, "%s meeting%s%s", mt->kind, *mt->title ? ": " : "",
             mt->title);
    Samordna__V1__StatusChange ch = SAMORDNA__V1__STATUS_CHANGE__INIT;
    ch.date = mt->date;
    ch.what = "meeting.logged";
    ch.pilot = mt->pilot;
    ch.municipality = mt->municipality;
    ch.subject = mt->id;
    ch.summary = summary;
    ch.by = mt->recorded_by;
    ch.kind = mt->kind;
    ch.title = mt->title;
    return s_timeline(svc, txn, ev, n, &ch);
}

/* MeetingLogged {id, kind, date, pilot | municipality | neither (the programme), title,
   participants, notes, monthly_until} */
int status_ev_meeting(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev, sam_reply_t *reply)
{
    const Samordna__V1__MeetingLogged *m = (const Samordna__V1__MeetingLogged *)ev->msg;
    Samordna__V1__StatusFact *p = NULL, *mu = NULL;
    int rc = -1;
    if (s_id(reply, "id", m->id) || s_token(reply, "kind", m->kind) ||
        s_date(reply, "date", m->date) || s_text(reply, "title", m->title, TITLE_MAX, false) ||
        s_text(reply, "notes", m->notes, TEXT_MAX, false))
        goto done;
    if (m->n_participants > PARTICIPANTS_MAX) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "participants: more than %d", PARTICIPANTS_MAX);
        goto done;
    }
    /* A participant is an agency, by its id, which must be the registry's, or anyone else by
       name as written ("Kari Nordmann, NAV Halden"): a word of id shape is taken as an id. */
    for (size_t i = 0; i < m->n_participants; i++) {
        if (s_text(reply, "participants", m->participants[i], 128, true)) goto done;
        if (!status_id_ok(m->participants[i])) continue;
        Samordna__V1__StatusFact *who =
            status_fact_find(svc, txn, true, "agency", m->participants[i]);
        if (!who) {
            sam_reply_error(reply, SAM_UNPROCESSABLE,
                            "participants: unknown agency '%s' (an agency by its registry id, "
                            "anyone else by name, e.g. \"Kari Nordmann, NAV Halden\")",
                            m->participants[i]);
            goto done;
        }
        FREE(who);
    }
    const char *municipality = m->municipality;
    if (*m->pilot) {
        if (s_id(reply, "pilot", m->pilot)) goto done;
        if (!(p = status_fact_require(svc, txn, "pilot", m->pilot, "pilot", reply))) goto done;
        if (s_may_act_for(ev, p, NULL, reply)) goto done;
        if (!*municipality) municipality = p->municipality;
        if (*p->municipality && strcmp(municipality, p->municipality) != 0) {
            sam_reply_error(reply, SAM_UNPROCESSABLE,
                            "municipality: pilot '%s' belongs to '%s', not '%s'", m->pilot,
                            p->municipality, municipality);
            goto done;
        }
    }
    /* a municipality named by the event is checked; the pilot's own is the registry's word */
    if (*m->municipality) {
        if (s_id(reply, "municipality", municipality)) goto done;
        if (!(mu = status_fact_require(svc, txn, "municipality", municipality, "municipality",
                                       reply)))
            goto done;
    }
    int count = 1;
    if (*m->monthly_until) {
        if (s_date(reply, "monthly_until", m->monthly_until)) goto done;
        if (strcmp(m->monthly_until, m->date) < 0) {
            sam_reply_error(reply, SAM_BAD_REQUEST, "monthly_until: before date %s", m->date);
            goto done;
        }
        int months = (atoi(m->monthly_until) - atoi(m->date)) * 12 +
                     (atoi(m->monthly_until + 5) - atoi(m->date + 5));
        if (months >= SERIES_MAX) {
            sam_reply_error(reply, SAM_BAD_REQUEST,
                            "monthly_until: a series holds at most %d meetings", SERIES_MAX);
            goto done;
        }
        count = months + 1;
        if (strlen(m->id) > 56) {
            sam_reply_error(reply, SAM_BAD_REQUEST,
                            "id: a series id is at most 56 characters (the month is added)");
            goto done;
        }
    }
    Samordna__V1__Meeting mt = SAMORDNA__V1__MEETING__INIT;
    mt.kind = m->kind;
    mt.pilot = m->pilot;
    mt.municipality = (char *)municipality;
    mt.title = m->title;
    mt.n_participants = m->n_participants;
    mt.participants = m->participants;
    mt.notes = m->notes;
    mt.recorded_by = ev->ce->source;
    rc = 0;
    for (int i = 0; i < count && rc == 0; i++) {
        char date[16], id[72];
        if (count == 1) {
            snprintf(date, sizeof date, "%s", m->date);
            snprintf(id, sizeof id, "%s", m->id);
        } else {
            char nominal[16];
            s_add_months(m->date, i, nominal);
            if (m->any_day)
                snprintf(date, sizeof date, "%s", nominal);
            else
                sam_calendar_working_date(nominal, date);
            if (strcmp(date, m->monthly_until) > 0) break;
            snprintf(id, sizeof id, "%s-%.7s", m->id, date);
            mt.series = m->id;
        }
        mt.id = id;
        mt.date = date;
        rc = s_meeting_put(svc, txn, ev, (uint16_t)i, &mt, reply);
    }
done:
    if (p) FREE(p);
    if (mu) FREE(mu);
    return rc;
}

/* ---- work-plan steps --------------------------------------------------------------------- */

static bool s_step_state_ok(const char *s)
{
    return strcmp(s, "planned") == 0 || strcmp(s, "in_progress") == 0 || strcmp(s, "done") == 0 ||
           strcmp(s, "dropped") == 0;
}

static int s_step_change(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                         const Samordna__V1__PlanStep *st, const char *what, const char *date,
                         const char *note, const char *municipality, sam_reply_t *reply)
{
    status_key_t k;
    status_key_pair(&k, st->pilot, st->id);
    int rc = status_put(svc, txn, "steps", &k, &st->base);
    if (rc) return rc;
    char summary[512];
    snprintf(summary, sizeof summary, "step '%s' (%s, %s)%s%s", st->title, st->owner, st->state,
             note && *note ? ": " : "", note ? note : "");
    Samordna__V1__StatusChange ch = SAMORDNA__V1__STATUS_CHANGE__INIT;
    ch.date = (char *)date;
    ch.what = (char *)what;
    ch.pilot = st->pilot;
    ch.municipality = (char *)municipality;
    ch.subject = st->id;
    ch.summary = summary;
    ch.by = ev->ce->source;
    ch.title = st->title;
    ch.state = st->state;
    ch.owner = st->owner;
    ch.note = (char *)(note ? note : "");
    return s_timeline(svc, txn, ev, 0, &ch);
}

/* StepAdded {pilot, id, title, owner, due, state, date} */
int status_ev_step_added(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                         sam_reply_t *reply)
{
    const Samordna__V1__PlanStepAdded *m = (const Samordna__V1__PlanStepAdded *)ev->msg;
    Samordna__V1__StatusFact *p = NULL, *o = NULL;
    int rc = -1;
    char today[11];
    s_today_of(ev, today);
    const char *state = *m->state ? m->state : "planned";
    const char *date = *m->date ? m->date : today;
    if (s_id(reply, "pilot", m->pilot) || s_id(reply, "id", m->id) ||
        s_text(reply, "title", m->title, TITLE_MAX, true) || s_id(reply, "owner", m->owner) ||
        s_date(reply, "date", date))
        goto done;
    if (*m->due && s_date(reply, "due", m->due)) goto done;
    if (!s_step_state_ok(state)) {
        sam_reply_error(reply, SAM_BAD_REQUEST,
                        "state: unknown step state '%.40s' (planned, in_progress, done, dropped)",
                        state);
        goto done;
    }
    if (!(p = status_fact_require(svc, txn, "pilot", m->pilot, "pilot", reply)) ||
        !(o = status_fact_require(svc, txn, "agency", m->owner, "owner", reply)) ||
        s_may_act_for(ev, p, m->owner, reply))
        goto done;
    status_key_t k;
    status_key_pair(&k, m->pilot, m->id);
    if (sam_store_has(txn, sam_service_dbi(svc, "steps"), k.b, k.len)) {
        sam_reply_error(reply, SAM_CONFLICT, "id: pilot '%s' has a step '%s' already", m->pilot,
                        m->id);
        goto done;
    }
    Samordna__V1__PlanStep st = SAMORDNA__V1__PLAN_STEP__INIT;
    st.pilot = m->pilot;
    st.id = m->id;
    st.title = m->title;
    st.owner = m->owner;
    st.due = m->due;
    st.state = (char *)state;
    st.added = (char *)date;
    st.changed = (char *)date;
    rc = s_step_change(svc, txn, ev, &st, "step.added", date, NULL, p->municipality, reply);
done:
    if (p) FREE(p);
    if (o) FREE(o);
    return rc;
}

/* StepUpdated {pilot, id, title?, owner?, due?, state?, date, note} */
int status_ev_step_updated(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                           sam_reply_t *reply)
{
    const Samordna__V1__PlanStepUpdated *m = (const Samordna__V1__PlanStepUpdated *)ev->msg;
    Samordna__V1__StatusFact *p = NULL, *o = NULL;
    Samordna__V1__PlanStep *st = NULL;
    int rc = -1;
    if (s_id(reply, "pilot", m->pilot) || s_id(reply, "id", m->id) ||
        s_date(reply, "date", m->date) || s_text(reply, "title", m->title, TITLE_MAX, false) ||
        s_text(reply, "note", m->note, TEXT_MAX, false))
        goto done;
    if (*m->due && s_date(reply, "due", m->due)) goto done;
    if (*m->owner && s_id(reply, "owner", m->owner)) goto done;
    if (*m->state && !s_step_state_ok(m->state)) {
        sam_reply_error(reply, SAM_BAD_REQUEST,
                        "state: unknown step state '%.40s' (planned, in_progress, done, dropped)",
                        m->state);
        goto done;
    }
    if (!(p = status_fact_require(svc, txn, "pilot", m->pilot, "pilot", reply))) goto done;
    status_key_t k;
    status_key_pair(&k, m->pilot, m->id);
    ProtobufCMessage *got = NULL;
    int g = status_get(svc, txn, "steps", &k, &samordna__v1__plan_step__descriptor, &got);
    if (g == MDB_NOTFOUND) {
        sam_reply_error(reply, SAM_NOT_FOUND, "id: pilot '%s' has no step '%s'", m->pilot, m->id);
        goto done;
    }
    if (g) {
        rc = g;
        goto done;
    }
    st = (Samordna__V1__PlanStep *)got;
    if (s_may_act_for(ev, p, st->owner, reply)) goto done;
    if (*m->owner && !(o = status_fact_require(svc, txn, "agency", m->owner, "owner", reply)))
        goto done;
    if (strcmp(m->date, st->changed) < 0) {
        sam_reply_error(reply, SAM_CONFLICT, "date: %s is before the step's last change (%s)",
                        m->date, st->changed);
        goto done;
    }
    /* The unpacked step owns its strings; point the changed fields at the event's, which
       outlive this call, and restore before freeing. */
    Samordna__V1__PlanStep upd = *st;
    if (*m->title) upd.title = m->title;
    if (*m->owner) upd.owner = m->owner;
    if (*m->due) upd.due = m->due;
    if (*m->state) upd.state = m->state;
    upd.changed = m->date;
    rc =
        s_step_change(svc, txn, ev, &upd, "step.updated", m->date, m->note, p->municipality, reply);
done:
    if (st) FREE(st);
    if (p) FREE(p);
    if (o) FREE(o);
    return rc;
}

/* The stored meeting `id` into *out: 0, -1 (404 in reply) or a store error. */
static int s_meeting_get(sam_service_t *svc, MDB_txn *txn, const char *id, sam_reply_t *reply,
                         Samordna__V1__Meeting **out)
{
    status_key_t k;
    status_key_id(&k, id);
    ProtobufCMessage *got = NULL;
    int g = status_get(svc, txn, "meetings", &k, &samordna__v1__meeting__descriptor, &got);
    if (g == MDB_NOTFOUND)
        return sam_reply_error(reply, SAM_NOT_FOUND, "id: unknown meeting '%s'", id);
    *out = (Samordna__V1__Meeting *)got;
    return g;
}

/* Who may correct or cancel a meeting: whoever recorded it, the pilot's leadership, an admin. */
static int s_may_change_meeting(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                                const Samordna__V1__Meeting *mt, sam_reply_t *reply)
{
    if (status_caller_admin(ev->caller) || strcmp(mt->recorded_by, ev->ce->source) == 0) return 0;
    Samordna__V1__StatusFact *p =
        *mt->pilot ? status_fact_find(svc, txn, true, "pilot", mt->pilot) : NULL;
    int rc = p ? s_may_act_for(ev, p, NULL, reply)
               : sam_reply_error(reply, SAM_FORBIDDEN,
                                 "id: meeting '%s' was recorded by '%s'; agency '%s' may not "
                                 "change it",
                                 mt->id, mt->recorded_by, ev->ce->source);
    if (p) FREE(p);
    return rc;
}

/* The timeline entry of a meeting's correction or cancellation. */
static int s_meeting_change(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                            const Samordna__V1__Meeting *mt, const char *what, const char *how,
                            const char *reason)
{
    char summary[700];
    snprintf(summary, sizeof summary, "%s meeting%s%s %s: %s", mt->kind, *mt->title ? " " : "",
             mt->title, how, reason);
    Samordna__V1__StatusChange ch = SAMORDNA__V1__STATUS_CHANGE__INIT;
    ch.date = mt->date;
    ch.what = (char *)what;
    ch.pilot = mt->pilot;
    ch.municipality = mt->municipality;
    ch.subject = mt->id;
    ch.summary = summary;
    ch.by = ev->ce->source;
    ch.kind = mt->kind;
    ch.title = mt->title;
    ch.note = (char *)reason;
    return s_timeline(svc, txn, ev, 0, &ch);
}

/* MeetingCorrected {id, kind, date, title, participants, notes, reason}: the fields given
   replace the meeting's, a new day moves it in the lists; the reason is required. */
int status_ev_meeting_corrected(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                                sam_reply_t *reply)
{
    const Samordna__V1__MeetingCorrected *m = (const Samordna__V1__MeetingCorrected *)ev->msg;
    Samordna__V1__Meeting *mt = NULL;
    int rc = -1;
    if (s_id(reply, "id", m->id) || s_text(reply, "reason", m->reason, TEXT_MAX, true) ||
        (*m->kind && s_token(reply, "kind", m->kind)) ||
        (*m->date && s_date(reply, "date", m->date)) ||
        s_text(reply, "title", m->title, TITLE_MAX, false) ||
        s_text(reply, "notes", m->notes, TEXT_MAX, false))
        goto done;
    if (!*m->kind && !*m->date && !*m->title && !m->n_participants && !*m->notes) {
        sam_reply_error(reply, SAM_BAD_REQUEST,
                        "id: nothing to correct; give kind, date, title, participants or notes");
        goto done;
    }
    if (m->n_participants > PARTICIPANTS_MAX) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "participants: more than %d", PARTICIPANTS_MAX);
        goto done;
    }
    for (size_t i = 0; i < m->n_participants; i++) {
        if (s_text(reply, "participants", m->participants[i], 128, true)) goto done;
        if (!status_id_ok(m->participants[i])) continue;
        Samordna__V1__StatusFact *who =
            status_fact_find(svc, txn, true, "agency", m->participants[i]);
        if (!who) {
            sam_reply_error(reply, SAM_UNPROCESSABLE,
                            "participants: unknown agency '%s' (an agency by its registry id, "
                            "anyone else by name)",
                            m->participants[i]);
            goto done;
        }
        FREE(who);
    }
    if ((rc = s_meeting_get(svc, txn, m->id, reply, &mt))) goto done;
    rc = -1;
    if (mt->cancelled) {
        sam_reply_error(reply, SAM_CONFLICT, "id: meeting '%s' was cancelled", m->id);
        goto done;
    }
    if (s_may_change_meeting(svc, txn, ev, mt, reply)) goto done;
    Samordna__V1__Meeting upd = *mt;
    if (*m->kind) upd.kind = m->kind;
    if (*m->date) upd.date = m->date;
    if (*m->title) upd.title = m->title;
    if (*m->notes) upd.notes = m->notes;
    if (m->n_participants) {
        upd.participants = m->participants;
        upd.n_participants = m->n_participants;
    }
    status_key_t k;
    status_key_id(&k, mt->id);
    if ((rc = s_meeting_index(svc, txn, mt, false)) ||
        (rc = s_meeting_index(svc, txn, &upd, true)) ||
        (rc = status_put(svc, txn, "meetings", &k, &upd.base)))
        goto done;
    char how[64];
    snprintf(how, sizeof how, "corrected%s%s", *m->date ? " (was on " : "",
             *m->date ? mt->date : "");
    if (*m->date) snprintf(how + strlen(how), sizeof how - strlen(how), ")");
    rc = s_meeting_change(svc, txn, ev, &upd, "meeting.corrected", how, m->reason);
done:
    if (mt) FREE(mt);
    return rc;
}

/* MeetingCancelled {id, reason}: the meeting stays, marked cancelled, out of the lists. */
int status_ev_meeting_cancelled(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                                sam_reply_t *reply)
{
    const Samordna__V1__MeetingCancelled *m = (const Samordna__V1__MeetingCancelled *)ev->msg;
    Samordna__V1__Meeting *mt = NULL;
    int rc = -1;
    if (s_id(reply, "id", m->id) || s_text(reply, "reason", m->reason, TEXT_MAX, true)) goto done;
    if ((rc = s_meeting_get(svc, txn, m->id, reply, &mt))) goto done;
    rc = -1;
    if (mt->cancelled) {
        sam_reply_error(reply, SAM_CONFLICT, "id: meeting '%s' was cancelled already", m->id);
        goto done;
    }
    if (s_may_change_meeting(svc, txn, ev, mt, reply)) goto done;
    Samordna__V1__Meeting upd = *mt;
    upd.cancelled = true;
    upd.cancel_reason = m->reason;
    status_key_t k;
    status_key_id(&k, mt->id);
    if ((rc = s_meeting_index(svc, txn, mt, false)) ||
        (rc = status_put(svc, txn, "meetings", &k, &upd.base)))
        goto done;
    rc = s_meeting_change(svc, txn, ev, &upd, "meeting.cancelled", "cancelled", m->reason);
done:
    if (mt) FREE(mt);
    return rc;
}

/* ---- barriers ---------------------------------------------------------------------------- */

static int s_barrier_hist(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                          const Samordna__V1__Barrier *b, const Samordna__V1__BarrierStep *step,
                          const char *what, int open_delta, sam_reply_t *reply)
{
    Samordna__V1__StatusChange ch = SAMORDNA__V1__STATUS_CHANGE__INIT;
    char summary[512];
    snprintf(summary, sizeof summary, "barrier '%s' %s%s%s", b->title, step->state,
             *step->note ? ": " : "", step->note);
    ch.date = step->date;
    ch.what = (char *)what;
    ch.pilot = b->pilot;
    ch.municipality = b->municipality;
    ch.subject = b->id;
    ch.summary = summary;
    ch.by = step->by;
    ch.title = b->title;
    ch.state = step->state;
    ch.note = step->note;
    if (*b->pilot) {
        /* the pilot's barrier history, for the board as of a day, and its standing now */
        Samordna__V1__BarrierMark mark = SAMORDNA__V1__BARRIER_MARK__INIT;
        mark.barrier = b->id;
        mark.state = step->state;
        status_key_t k;
        status_key_hist(&k, b->pilot, step->date, ev->seq);
        int rc = status_put(svc, txn, "barhist", &k, &mark.base);
        if (!rc && open_delta)
            rc = s_state_update(svc, txn, b->pilot, NULL, NULL, open_delta, reply);
        if (rc) return rc;
    }
    return s_timeline(svc, txn, ev, 0, &ch);
}

static bool s_concerns_ok(const char *s)
{
    return strcmp(s, "rule") == 0 || strcmp(s, "practice") == 0 ||
           strcmp(s, "allocation_letter") == 0;
}

/* BarrierRegistered {id, title, description, pilot | municipality, raised_by, concerns,
   reference, concerns_agency, date} */
int status_ev_barrier_registered(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                                 sam_reply_t *reply)
{
    const Samordna__V1__BarrierRegistered *m = (const Samordna__V1__BarrierRegistered *)ev->msg;
    Samordna__V1__StatusFact *facts[4] = {NULL, NULL, NULL, NULL};
    int rc = -1;
    const char *raised_by = s_actor(ev, m->raised_by);
    const char *municipality = m->municipality;
    if (s_id(reply, "id", m->id) || s_text(reply, "title", m->title, TITLE_MAX, true) ||
        s_text(reply, "description", m->description, TEXT_MAX, false) ||
        s_text(reply, "reference", m->reference, TITLE_MAX, false) ||
        s_id(reply, "raised_by", raised_by) || s_date(reply, "date", m->date))
        goto done;
    if (!s_concerns_ok(m->concerns)) {
        sam_reply_error(reply, SAM_BAD_REQUEST,
                        "concerns: '%.40s' is not rule, practice or allocation_letter",
                        m->concerns);
        goto done;
    }
    if (!*m->pilot && !*municipality) {
        sam_reply_error(reply, SAM_BAD_REQUEST,
                        "pilot: a barrier is found in a pilot or a municipality; name one");
        goto done;
    }
    if (!status_caller_admin(ev->caller) && strcmp(raised_by, ev->caller->agency) != 0) {
        sam_reply_error(reply, SAM_FORBIDDEN,
                        "raised_by: agency '%s' may register barriers only as itself",
                        ev->caller->agency);
        goto done;
    }
    if (*m->pilot) {
        if (s_id(reply, "pilot", m->pilot) ||
            !(facts[0] = status_fact_require(svc, txn, "pilot", m->pilot, "pilot", reply)))
            goto done;
        if (!*municipality) municipality = facts[0]->municipality;
    }
    if (*m->municipality && (s_id(reply, "municipality", municipality) ||
                             !(facts[1] = status_fact_require(
                                   svc, txn, "municipality", municipality, "municipality", reply))))
        goto done;
    if (!(facts[2] = status_fact_require(svc, txn, "agency", raised_by, "raised_by", reply)))
        goto done;
    if (*m->concerns_agency &&
        (s_id(reply, "concerns_agency", m->concerns_agency) ||
         !(facts[3] = status_fact_require(svc, txn, "agency", m->concerns_agency, "concerns_agency",
                                          reply))))
        goto done;
    status_key_t k;
    status_key_id(&k, m->id);
    if (sam_store_has(txn, sam_service_dbi(svc, "barriers"), k.b, k.len)) {
        sam_reply_error(reply, SAM_CONFLICT, "id: barrier '%s' exists already", m->id);
        goto done;
    }
    Samordna__V1__BarrierStep step = SAMORDNA__V1__BARRIER_STEP__INIT;
    step.state = "identified";
    step.date = m->date;
    step.by = (char *)raised_by;
    Samordna__V1__BarrierStep *steps[1] = {&step};
    Samordna__V1__Barrier b = SAMORDNA__V1__BARRIER__INIT;
    b.id = m->id;
    b.title = m->title;
    b.description = m->description;
    b.pilot = m->pilot;
    b.municipality = (char *)municipality;
    b.raised_by = (char *)raised_by;
    b.concerns = m->concerns;
    b.reference = m->reference;
    b.concerns_agency = m->concerns_agency;
    b.state = "identified";
    b.n_history = 1;
    b.history = steps;
    int prc = status_put(svc, txn, "barriers", &k, &b.base);
    if (prc) {
        rc = prc;
        goto done;
    }
    rc = s_barrier_hist(svc, txn, ev, &b, &step, "barrier.registered", 1, reply);
done:
    for (int i = 0; i < 4; i++)
        if (facts[i]) FREE(facts[i]);
    return rc;
}

/*  What every next step of a barrier must pass: not dated before its last step, `by` an
    agency the registry knows, and the publisher the agency that raised it or the pilot's
    investment leader (or an admin). 0, or -1 with the refusal in reply; *by_fact and *p
    (the pilot, when it was looked up) are the caller's to free. `verb` says what the step
    does, for the refusal ("move", "reopen"). */
static int s_barrier_step_ok(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                             const Samordna__V1__Barrier *b, const char *date, const char *by,
                             const char *verb, Samordna__V1__StatusFact **by_fact,
                             Samordna__V1__StatusFact **p, sam_reply_t *reply)
{
    const char *last = b->n_history ? b->history[b->n_history - 1]->date : "";
    if (strcmp(date, last) < 0)
        return sam_reply_error(reply, SAM_CONFLICT,
                               "date: %s is before the barrier's last step (%s)", date, last);
    if (!(*by_fact = status_fact_require(svc, txn, "agency", by, "by", reply))) return -1;
    if (status_caller_admin(ev->caller) || strcmp(b->raised_by, ev->caller->agency) == 0) return 0;
    if (*b->pilot && (*p = status_fact_find(svc, txn, true, "pilot", b->pilot)) &&
        strcmp((*p)->investment_leader, ev->caller->agency) == 0)
        return 0;
    return sam_reply_error(reply, SAM_FORBIDDEN,
                           "id: barrier '%s' was raised by '%s'; agency '%s' may not %s it", b->id,
                           b->raised_by, ev->caller->agency, verb);
}

/* BarrierMoved {id, state, date, by, note} */
int status_ev_barrier_moved(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                            sam_reply_t *reply)
{
    const Samordna__V1__BarrierMoved *m = (const Samordna__V1__BarrierMoved *)ev->msg;
    Samordna__V1__Barrier *b = NULL;
    Samordna__V1__StatusFact *by_fact = NULL, *p = NULL;
    Samordna__V1__BarrierStep **hist = NULL;
    int rc = -1;
    const char *by = s_actor(ev, m->by);
    if (s_id(reply, "id", m->id) || s_date(reply, "date", m->date) || s_id(reply, "by", by) ||
        s_text(reply, "note", m->note, TEXT_MAX, false))
        goto done;
    int to = status_barrier_rank(m->state);
    if (to < 0) {
        sam_reply_error(reply, SAM_BAD_REQUEST,
                        "state: unknown barrier state '%.40s' (identified, raised_regionally, "
                        "raised_nationally, changed, rejected, withdrawn)",
                        m->state);
        goto done;
    }
    status_key_t k;
    status_key_id(&k, m->id);
    ProtobufCMessage *got = NULL;
    int g = status_get(svc, txn, "barriers", &k, &samordna__v1__barrier__descriptor, &got);
    if (g == MDB_NOTFOUND) {
        sam_reply_error(reply, SAM_NOT_FOUND, "id: unknown barrier '%s'", m->id);
        goto done;
    }
    if (g) {
        rc = g;
        goto done;
    }
    b = (Samordna__V1__Barrier *)got;
    int from = status_barrier_rank(b->state);
    if (from == 3 || to <= from) {
        sam_reply_error(reply, SAM_CONFLICT, "state: barrier '%s' cannot move from %s to %s%s",
                        m->id, b->state, m->state,
                        from == 3 ? " (it is closed)" : " (a barrier only moves forward)");
        goto done;
    }
    if (s_barrier_step_ok(svc, txn, ev, b, m->date, by, "move", &by_fact, &p, reply)) goto done;
    Samordna__V1__BarrierStep step = SAMORDNA__V1__BARRIER_STEP__INIT;
    step.state = m->state;
    step.date = m->date;
    step.by = (char *)by;
    step.note = m->note;
    hist = malloc((b->n_history + 1) * sizeof *hist);
    if (!hist) {
        sam_reply_error(reply, SAM_INTERNAL, "out of memory");
        goto done;
    }
    memcpy(hist, b->history, b->n_history * sizeof *hist);
    hist[b->n_history] = &step;
    Samordna__V1__Barrier upd = *b;
    upd.state = m->state;
    upd.history = hist;
    upd.n_history = b->n_history + 1;
    int prc = status_put(svc, txn, "barriers", &k, &upd.base);
    if (prc) {
        rc = prc;
        goto done;
    }
    rc = s_barrier_hist(svc, txn, ev, &upd, &step, "barrier.moved",
                        status_barrier_open(m->state) ? 0 : -1, reply);
done:
    free(hist);
    if (b) FREE(b);
    if (p) FREE(p);
    if (by_fact) FREE(by_fact);
    return rc;
}

/*  BarrierMoved {id, state, date, by, note} as no.samordna.status.barrier.reopened: a barrier
    closed by mistake (changed, rejected, withdrawn) opens again, in `state` (an open one;
    default the state it was in before it closed). The note says why and is required; the
    closing step stays in its history. */
int status_ev_barrier_reopened(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                               sam_reply_t *reply)
{
    const Samordna__V1__BarrierMoved *m = (const Samordna__V1__BarrierMoved *)ev->msg;
    Samordna__V1__Barrier *b = NULL;
    Samordna__V1__StatusFact *by_fact = NULL, *p = NULL;
    Samordna__V1__BarrierStep **hist = NULL;
    int rc = -1;
    const char *by = s_actor(ev, m->by);
    if (s_id(reply, "id", m->id) || s_date(reply, "date", m->date) || s_id(reply, "by", by) ||
        s_text(reply, "note", m->note, TEXT_MAX, true))
        goto done;
    status_key_t k;
    status_key_id(&k, m->id);
    ProtobufCMessage *got = NULL;
    int g = status_get(svc, txn, "barriers", &k, &samordna__v1__barrier__descriptor, &got);
    if (g == MDB_NOTFOUND) {
        sam_reply_error(reply, SAM_NOT_FOUND, "id: unknown barrier '%s'", m->id);
        goto done;
    }
    if (g) {
        rc = g;
        goto done;
    }
    b = (Samordna__V1__Barrier *)got;
    if (status_barrier_open(b->state)) {
        sam_reply_error(reply, SAM_CONFLICT,
                        "id: barrier '%s' is open (%s); only a closed one "
                        "is reopened",
                        m->id, b->state);
        goto done;
    }
    const char *state = m->state;
    for (size_t i = b->n_history; !*state && i > 0; i--)
        if (status_barrier_open(b->history[i - 1]->state)) state = b->history[i - 1]->state;
    if (!*state) state = "identified";
    if (status_barrier_rank(state) < 0 || !status_barrier_open(state)) {
        sam_reply_error(reply, SAM_BAD_REQUEST,
                        "state: '%.40s' is not an open state (identified, raised_regionally, "
                        "raised_nationally)",
                        state);
        goto done;
    }
    if (s_barrier_step_ok(svc, txn, ev, b, m->date, by, "reopen", &by_fact, &p, reply)) goto done;
    char note[TEXT_MAX + 64];
    snprintf(note, sizeof note, "reopened (was %s): %s", b->state, m->note);
    Samordna__V1__BarrierStep step = SAMORDNA__V1__BARRIER_STEP__INIT;
    step.state = (char *)state;
    step.date = m->date;
    step.by = (char *)by;
    step.note = note;
    hist = malloc((b->n_history + 1) * sizeof *hist);
    if (!hist) {
        sam_reply_error(reply, SAM_INTERNAL, "out of memory");
        goto done;
    }
    memcpy(hist, b->history, b->n_history * sizeof *hist);
    hist[b->n_history] = &step;
    Samordna__V1__Barrier upd = *b;
    upd.state = (char *)state;
    upd.history = hist;
    upd.n_history = b->n_history + 1;
    if ((rc = status_put(svc, txn, "barriers", &k, &upd.base))) goto done;
    rc = s_barrier_hist(svc, txn, ev, &upd, &step, "barrier.reopened", 1, reply);
done:
    free(hist);
    if (b) FREE(b);
    if (p) FREE(p);
    if (by_fact) FREE(by_fact);
    return rc;
}
