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

static void s_kinds(import_t *imp, json_t *root)
{
    json_t *arr = import_array(imp, root, "$", "milestone_kinds", false);
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        const char *path = import_path(imp, "$.milestone_kinds[%zu]", i);
        if (!import_object(imp, o, path, "id label order")) continue;
        Samordna__V1__MilestoneKind *k = import_alloc(imp, sizeof *k);
        if (!k) return;
        samordna__v1__milestone_kind__init(k);
        int64_t order = (int64_t)i + 1;
        if (!(k->id = (char *)import_str(imp, o, path, "id", IMPORT_REQUIRED)) ||
            !(k->label = (char *)import_str(imp, o, path, "label", IMPORT_REQUIRED)) ||
            !import_int(imp, o, path, "order", false, 1, 1000, &order) ||
            !s_token(imp, k->id, import_path(imp, "%s.id", path)))
            continue;
        k->order = (uint32_t)order;
        import_define(imp, "milestone_kind", k->id, path);
        import_event(imp, SVC, T("milestone_kind.defined"), k->id, &k->base);
    }
}

static void s_milestones(import_t *imp, json_t *root)
{
    json_t *arr = import_array(imp, root, "$", "milestones", false);
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        const char *path = import_path(imp, "$.milestones[%zu]", i);
        if (!import_object(imp, o, path, "pilot reached as_of evidence actor")) continue;
        const char *pilot, *as_of, *evidence, *actor;
        char **kinds;
        size_t n;
        if (!(pilot = import_str(imp, o, path, "pilot", IMPORT_REQUIRED | IMPORT_ID)) ||
            !(as_of = import_str(imp, o, path, "as_of", IMPORT_REQUIRED | IMPORT_DATE)) ||
            !(evidence = import_str(imp, o, path, "evidence", 0)) ||
            !(actor = import_str(imp, o, path, "actor", IMPORT_ID)) ||
            !import_strings(imp, o, path, "reached", &kinds, &n))
            continue;
        if (n == 0) {
            import_error(imp, import_path(imp, "%s.reached", path), "required");
            continue;
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

static void s_meetings(import_t *imp, json_t *root)
{
    json_t *arr = import_array(imp, root, "$", "meetings", false);
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        const char *path = import_path(imp, "$.meetings[%zu]", i);
        if (!import_object(imp, o, path,
                           "id date kind title pilot municipality participants notes "
                           "monthly_until"))
            continue;
        Samordna__V1__MeetingLogged m = SAMORDNA__V1__MEETING_LOGGED__INIT;
        if (!(m.id = (char *)import_str(imp, o, path, "id", IMPORT_ID)) ||
            !(m.date = (char *)import_str(imp, o, path, "date", IMPORT_REQUIRED | IMPORT_DATE)) ||
            !(m.kind = (char *)import_str(imp, o, path, "kind", IMPORT_REQUIRED)) ||
            !(m.title = (char *)import_str(imp, o, path, "title", 0)) ||
            !(m.pilot = (char *)import_str(imp, o, path, "pilot", IMPORT_ID)) ||
            !(m.municipality = (char *)import_str(imp, o, path, "municipality", IMPORT_ID)) ||
            !(m.notes = (char *)import_str(imp, o, path, "notes", 0)) ||
            !(m.monthly_until = (char *)import_str(imp, o, path, "monthly_until", IMPORT_DATE)) ||
            !import_strings(imp, o, path, "participants", &m.participants, &m.n_participants) ||
            !s_token(imp, m.kind, import_path(imp, "%s.kind", path)))
            continue;
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
}

static void s_steps(import_t *imp, json_t *root)
{
    json_t *arr = import_array(imp, root, "$", "steps", false);
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        const char *path = import_path(imp, "$.steps[%zu]", i);
        if (!import_object(imp, o, path, "pilot id title owner due state date")) continue;
        Samordna__V1__PlanStepAdded s = SAMORDNA__V1__PLAN_STEP_ADDED__INIT;
        if (!(s.pilot = (char *)import_str(imp, o, path, "pilot", IMPORT_REQUIRED | IMPORT_ID)) ||
            !(s.id = (char *)import_str(imp, o, path, "id", IMPORT_REQUIRED | IMPORT_ID)) ||
            !(s.title = (char *)import_str(imp, o, path, "title", IMPORT_REQUIRED)) ||
            !(s.owner = (char *)import_str(imp, o, path, "owner", IMPORT_REQUIRED | IMPORT_ID)) ||
            !(s.due = (char *)import_str(imp, o, path, "due", IMPORT_DATE)) ||
            !(s.state = (char *)import_str(imp, o, path, "state", 0)) ||
            !(s.date = (char *)import_str(imp, o, path, "date", IMPORT_DATE)))
            continue;
        import_require(imp, "pilot", s.pilot, import_path(imp, "%s.pilot", path));
        import_require(imp, "agency", s.owner, import_path(imp, "%s.owner", path));
        import_event(imp, SVC, T("step.added"), import_path(imp, "%s/%s", s.pilot, s.id), &s.base);
    }
}

static void s_barriers(import_t *imp, json_t *root)
{
    json_t *arr = import_array(imp, root, "$", "barriers", false);
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        const char *path = import_path(imp, "$.barriers[%zu]", i);
        if (!import_object(imp, o, path,
                           "id title description pilot municipality raised_by concerns "
                           "reference concerns_agency date steps"))
            continue;
        Samordna__V1__BarrierRegistered b = SAMORDNA__V1__BARRIER_REGISTERED__INIT;
        if (!(b.id = (char *)import_str(imp, o, path, "id", IMPORT_REQUIRED | IMPORT_ID)) ||
            !(b.title = (char *)import_str(imp, o, path, "title", IMPORT_REQUIRED)) ||
            !(b.description = (char *)import_str(imp, o, path, "description", 0)) ||
            !(b.pilot = (char *)import_str(imp, o, path, "pilot", IMPORT_ID)) ||
            !(b.municipality = (char *)import_str(imp, o, path, "municipality", IMPORT_ID)) ||
            !(b.raised_by = (char *)import_str(imp, o, path, "raised_by", IMPORT_ID)) ||
            !(b.concerns = (char *)import_str(imp, o, path, "concerns", IMPORT_REQUIRED)) ||
            !(b.reference = (char *)import_str(imp, o, path, "reference", 0)) ||
            !(b.concerns_agency = (char *)import_str(imp, o, path, "concerns_agency", IMPORT_ID)) ||
            !(b.date = (char *)import_str(imp, o, path, "date", IMPORT_REQUIRED | IMPORT_DATE)))
            continue;
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
            if (!import_object(imp, so, sp, "state date by note")) continue;
            Samordna__V1__BarrierMoved mv = SAMORDNA__V1__BARRIER_MOVED__INIT;
            mv.id = b.id;
            if (!(mv.state = (char *)import_str(imp, so, sp, "state", IMPORT_REQUIRED)) ||
                !(mv.date =
                      (char *)import_str(imp, so, sp, "date", IMPORT_REQUIRED | IMPORT_DATE)) ||
                !(mv.by = (char *)import_str(imp, so, sp, "by", IMPORT_ID)) ||
                !(mv.note = (char *)import_str(imp, so, sp, "note", 0)))
                continue;
            if (*mv.by) import_require(imp, "agency", mv.by, import_path(imp, "%s.by", sp));
            import_event(imp, SVC, T("barrier.moved"),
                         import_path(imp, "%s/%s/%s", b.id, mv.state, mv.date), &mv.base);
        }
    }
}

int import_status(import_t *imp, json_t *root)
{
    import_kind(imp, "milestone_kind", SVC, "status.kinds.get");
    import_barrier(imp); /* the registry's records first */
    s_kinds(imp, root);
    import_barrier(imp);
    s_milestones(imp, root);
    s_meetings(imp, root);
    s_steps(imp, root);
    s_barriers(imp, root);
    return 0;
}
