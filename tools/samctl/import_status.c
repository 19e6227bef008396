/*  import_status.c — the status service's section of `samctl import`: milestone kinds,
    milestones reached, meetings, work-plan steps and barriers of a samordna-fixture/1 file,
    as no.samordna.status.* events.

    File shape (every member optional unless marked *):
      milestone_kinds  [{id*, label*, order}]        order: canonical place, default the
                                                     position in the list (1, 2, …)
      milestones       [{pilot*, reached* [kind ids], as_of*, evidence, actor}]
                       each kind reached on or before as_of: one milestone.reached per kind
      meetings         [{date*, kind*, title, pilot | municipality, participants [], notes,
                         id, monthly_until}]
                       without an id, one is made of pilot (or municipality, or "programme"),
                       date and kind: "halden-2018-10-18-working"
      steps            [{pilot*, id*, title*, owner*, due, state, date}]
      barriers         [{id*, title*, pilot | municipality, raised_by, concerns*, reference,
                         concerns_agency, description, date*,
                         steps [{state*, date*, by, note}]}]

    The section starts with a barrier, so the registry's pilots, agencies and municipalities
    of the same file are stored before any status event that names them; the kinds get one
    too, before the milestones that use them.
*/
#include "import.h"

#include "samordna/v1/status.pb-c.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define SVC "status"
#define T(noun_verb) "no.samordna.status." noun_verb

/* A kind id is a token: [a-z0-9_-]{1,64}. */
static bool s_token(import_t *imp, const char *s, const char *path)
{
    size_t n = strlen(s);
    bool ok = n >= 1 && n <= 64;
    for (size_t i = 0; ok && i < n; i++)
        ok = islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_' ||
             s[i] == '-';
    if (!ok) import_error(imp, path, "'%s' is not a kind id ([a-z0-9_-], at most 64)", s);
    return ok;
}

#define S_NAMED (IMPORT_REQUIRED | IMPORT_ID)
#define S_DAY (IMPORT_REQUIRED | IMPORT_DATE)

static const import_field_t s_kind_fields[] = {
    {"id", IMPORT_REQUIRED}, {"label", IMPORT_REQUIRED}, {NULL}};

static void s_kind(import_t *imp, json_t *o, const char *path, size_t i, void *arg)
{
    (void)arg;
    Samordna__V1__MilestoneKind *k = import_alloc(imp, sizeof *k);
    if (!k) return;
    samordna__v1__milestone_kind__init(k);
    int64_t order = (int64_t)i + 1;
    if (!import_record(imp, o, path, "id label order", &k->base, s_kind_fields) ||
        !import_int(imp, o, path, "order", false, 1, 1000, &order) ||
        !s_token(imp, k->id, import_path(imp, "%s.id", path)))
        return;
    k->order = (uint32_t)order;
    import_define(imp, "milestone_kind", k->id, path);
    import_event(imp, SVC, T("milestone_kind.defined"), k->id, &k->base);
}

/* One record names the kinds a pilot had reached by a day (as_of): one event per kind. */
static void s_milestone(import_t *imp, json_t *o, const char *path, size_t i, void *arg)
{
    (void)i, (void)arg;
    const char *pilot, *as_of, *evidence, *actor;
    char **kinds;
    size_t n;
    if (!import_object(imp, o, path, "pilot reached as_of evidence actor") ||
        !(pilot = import_str(imp, o, path, "pilot", S_NAMED)) ||
        !(as_of = import_str(imp, o, path, "as_of", S_DAY)) ||
        !(evidence = import_str(imp, o, path, "evidence", 0)) ||
        !(actor = import_str(imp, o, path, "actor", IMPORT_ID)) ||
        !import_strings(imp, o, path, "reached", &kinds, &n))
        return;
    if (n == 0) {
        import_error(imp, import_path(imp, "%s.reached", path), "required");
        return;
    }
    import_require(imp, "pilot", pilot, import_path(imp, "%s.pilot", path));
    if (*actor) import_require(imp, "agency", actor, import_path(imp, "%s.actor", path));
    for (size_t k = 0; k < n; k++) {
        const char *kp = import_path(imp, "%s.reached[%zu]", path, k);
        if (!s_token(imp, kinds[k], kp)) continue;
        import_require(imp, "milestone_kind", kinds[k], kp);
        Samordna__V1__MilestoneReached m = SAMORDNA__V1__MILESTONE_REACHED__INIT;
        m.pilot = (char *)pilot;
        m.kind = kinds[k];
        m.date = (char *)as_of;
        m.actor = (char *)actor;
        m.evidence = (char *)evidence;
        import_event(imp, SVC, T("milestone.reached"),
                     import_path(imp, "%s/%s/%s", pilot, kinds[k], as_of), &m.base);
    }
}

/* "working_group" → "working-group": a kind as part of an id. */
static const char *s_id_part(import_t *imp, const char *s)
{
    char *out = import_alloc(imp, strlen(s) + 1);
    if (!out) return "";
    for (size_t i = 0; s[i]; i++)
        out[i] = s[i] == '_' ? '-' : s[i];
    return out;
}

static const import_field_t s_meeting_fields[] = {
    {"id", IMPORT_ID},
    {"date", S_DAY},
    {"kind", IMPORT_REQUIRED},
    {"title", 0},
    {"pilot", IMPORT_ID},
    {"municipality", IMPORT_ID},
    {"notes", 0},
    {"monthly_until", IMPORT_DATE},
    {"participants", 0},
    {NULL},
};

static void s_meeting(import_t *imp, json_t *o, const char *path, size_t i, void *arg)
{
    (void)i, (void)arg;
    Samordna__V1__MeetingLogged m = SAMORDNA__V1__MEETING_LOGGED__INIT;
    if (!import_record(imp, o, path,
                       "id date kind title pilot municipality participants notes monthly_until",
                       &m.base, s_meeting_fields) ||
        !s_token(imp, m.kind, import_path(imp, "%s.kind", path)))
        return;
    if (!*m.id)
        m.id = (char *)import_path(imp, "%s-%s-%s",
                                   *m.pilot          ? m.pilot
                                   : *m.municipality ? m.municipality
                                                     : "programme",
                                   m.date, s_id_part(imp, m.kind));
    import_define(imp, "meeting", m.id, path);
    if (*m.pilot) import_require(imp, "pilot", m.pilot, import_path(imp, "%s.pilot", path));
    if (*m.municipality)
        import_require(imp, "municipality", m.municipality,
                       import_path(imp, "%s.municipality", path));
    import_event(imp, SVC, T("meeting.logged"), m.id, &m.base);
}

static const import_field_t s_step_fields[] = {
    {"pilot", S_NAMED},   {"id", S_NAMED}, {"title", IMPORT_REQUIRED}, {"owner", S_NAMED},
    {"due", IMPORT_DATE}, {"state", 0},    {"date", IMPORT_DATE},      {NULL},
};

static void s_step(import_t *imp, json_t *o, const char *path, size_t i, void *arg)
{
    (void)i, (void)arg;
    Samordna__V1__PlanStepAdded s = SAMORDNA__V1__PLAN_STEP_ADDED__INIT;
    if (!import_record(imp, o, path, "pilot id title owner due state date", &s.base, s_step_fields))
        return;
    import_require(imp, "pilot", s.pilot, import_path(imp, "%s.pilot", path));
    import_require(imp, "agency", s.owner, import_path(imp, "%s.owner", path));
    import_event(imp, SVC, T("step.added"), import_path(imp, "%s/%s", s.pilot, s.id), &s.base);
}

static const import_field_t s_barrier_fields[] = {
    {"id", S_NAMED},
    {"title", IMPORT_REQUIRED},
    {"description", 0},
    {"pilot", IMPORT_ID},
    {"municipality", IMPORT_ID},
    {"raised_by", IMPORT_ID},
    {"concerns", IMPORT_REQUIRED},
    {"reference", 0},
    {"concerns_agency", IMPORT_ID},
    {"date", S_DAY},
    {NULL},
};

static const import_field_t s_move_fields[] = {
    {"state", IMPORT_REQUIRED}, {"date", S_DAY}, {"by", IMPORT_ID}, {"note", 0}, {NULL}};

static void s_barrier(import_t *imp, json_t *o, const char *path, size_t i, void *arg)
{
    (void)i, (void)arg;
    Samordna__V1__BarrierRegistered b = SAMORDNA__V1__BARRIER_REGISTERED__INIT;
    if (!import_record(imp, o, path,
                       "id title description pilot municipality raised_by concerns reference "
                       "concerns_agency date steps",
                       &b.base, s_barrier_fields))
        return;
    import_define(imp, "barrier", b.id, path);
    if (*b.pilot) import_require(imp, "pilot", b.pilot, import_path(imp, "%s.pilot", path));
    if (*b.municipality)
        import_require(imp, "municipality", b.municipality,
                       import_path(imp, "%s.municipality", path));
    if (*b.raised_by)
        import_require(imp, "agency", b.raised_by, import_path(imp, "%s.raised_by", path));
    import_event(imp, SVC, T("barrier.registered"), b.id, &b.base);
    json_t *steps = import_array(imp, o, path, "steps", false);
    size_t k;
    json_t *so;
    json_array_foreach(steps, k, so)
    {
        const char *sp = import_path(imp, "%s.steps[%zu]", path, k);
        Samordna__V1__BarrierMoved mv = SAMORDNA__V1__BARRIER_MOVED__INIT;
        mv.id = b.id;
        if (!import_record(imp, so, sp, "state date by note", &mv.base, s_move_fields)) continue;
        if (*mv.by) import_require(imp, "agency", mv.by, import_path(imp, "%s.by", sp));
        import_event(imp, SVC, T("barrier.moved"),
                     import_path(imp, "%s/%s/%s", b.id, mv.state, mv.date), &mv.base);
    }
}

int import_status(import_t *imp, json_t *root)
{
    import_kind(imp, "milestone_kind", SVC, "status.kinds.get");
    import_barrier(imp); /* the registry's records first */
    import_each(imp, root, "milestone_kinds", s_kind, NULL);
    import_barrier(imp);
    import_each(imp, root, "milestones", s_milestone, NULL);
    import_each(imp, root, "meetings", s_meeting, NULL);
    import_each(imp, root, "steps", s_step, NULL);
    import_each(imp, root, "barriers", s_barrier, NULL);
    return 0;
}
