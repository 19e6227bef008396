/*  import_registry.c — the registry's section of `samctl import`: the programme, agencies,
    people, municipalities (with their successors), invitations and answers, pilots and
    reports of a samordna-fixture/1 file, as no.samordna.registry.* events.

    File shape (every member optional unless marked *):
      programme        {id*, name*, motto, owner*, leadership, steering_group,
                        briefing_interval_months*, period {from*, to}, themes [], goals []}
      agencies         [{id*, name*, former_names [], kind*, roles [], unit}]
      people           [{id*, name*, email, phone, agency,
                         roles [{role*, agency | pilot | programme, from, until}]}]
      municipalities   [{id*, name*, population, numbers [{number*, from, until}],
                         constituents [{name*, number*}], successor {municipality, name*,
                         number, from*}, note}]
      invitations      [{programme*, municipality*, sent, answer, channel, answered, note}]
      pilots           [{id*, programme, municipality*, challenge*, investment_leader*,
                         investment_team [], contact_person, municipal_steering_group, aims []}]
      reports          [{id*, by*, title*, series, published, url}]

    A successor without an id gets one from its name (lower case, æ→ae, ø→o, å→a, other
    runs of non-letters → '-'): the merged Moss of "moss-rygge" is registered as "moss"
    with its new number, and a lookup of "moss-rygge" then resolves to it. When that id is
    the municipality's own ("indre-ostfold" became Indre Østfold), the municipality lives on
    under its id and keeps the successor's name, number and date as history.
    A pilot without a programme belongs to the file's programme.
*/
#include "import.h"

#include "samordna/v1/registry.pb-c.h"

#include <stdio.h>
#include <string.h>

#define SVC "registry"
#define T(noun_verb) "no.samordna.registry." noun_verb

#define S_NAMED (IMPORT_REQUIRED | IMPORT_ID)

/* ---- programme ------------------------------------------------------------------------------ */

static const import_field_t s_programme_fields[] = {
    {"id", S_NAMED},           {"name", IMPORT_REQUIRED}, {"motto", 0}, {"owner", S_NAMED},
    {"leadership", IMPORT_ID}, {"steering_group", 0},     {NULL}};
static const import_field_t s_programme_lists[] = {{"themes", 0}, {"goals", 0}, {NULL}};
static const import_field_t s_period_fields[] = {
    {"from", IMPORT_REQUIRED | IMPORT_DATE}, {"to", IMPORT_DATE}, {NULL}};

static const char *s_programme(import_t *imp, json_t *root)
{
    json_t *o = json_object_get(root, "programme");
    if (!o) return "";
    const char *path = "$.programme";
    if (!import_object(imp, o, path,
                       "id name motto owner leadership steering_group briefing_interval_months "
                       "period themes goals"))
        return NULL;
    Samordna__V1__Programme p = SAMORDNA__V1__PROGRAMME__INIT;
    Samordna__V1__Period period = SAMORDNA__V1__PERIOD__INIT;
    int64_t months = 0;
    bool ok = import_record(imp, o, path, NULL, &p.base, s_programme_fields) &&
              import_int(imp, o, path, "briefing_interval_months", true, 1, 24, &months) &&
              import_record(imp, o, path, NULL, &p.base, s_programme_lists);
    if (!ok) return NULL;
    p.briefing_interval_months = (uint32_t)months;
    json_t *per = json_object_get(o, "period");
    if (per) {
        const char *pp = "$.programme.period";
        if (!import_record(imp, per, pp, "from to", &period.base, s_period_fields)) return NULL;
        if (period.to[0] && strcmp(period.from, period.to) > 0) {
            import_error(imp, "$.programme.period.to", "%s is before from %s", period.to,
                         period.from);
            return NULL;
        }
        p.period = &period;
    }
    import_define(imp, "programme", p.id, path);
    import_require(imp, "agency", p.owner, "$.programme.owner");
    if (p.leadership[0]) import_require(imp, "agency", p.leadership, "$.programme.leadership");
    import_event(imp, SVC, T("programme.registered"), p.id, &p.base);
    return p.id;
}

/* ---- agencies -------------------------------------------------------------------------------- */

static const import_field_t s_agency_fields[] = {
    {"id", S_NAMED}, {"name", IMPORT_REQUIRED}, {"unit", 0}, {"former_names", 0}, {NULL}};

static void s_agency(import_t *imp, json_t *o, const char *path, size_t i, void *arg)
{
    (void)i, (void)arg;
    Samordna__V1__Agency a = SAMORDNA__V1__AGENCY__INIT;
    const char *kind;
    if (!import_record(imp, o, path, "id name former_names kind roles unit", &a.base,
                       s_agency_fields) ||
        !(kind = import_str(imp, o, path, "kind", IMPORT_REQUIRED)))
        return;
    int k = import_enum(imp, &samordna__v1__agency_kind__descriptor, kind,
                        import_path(imp, "%s.kind", path));
    if (k < 0) return;
    a.kind = (Samordna__V1__AgencyKind)k;
    char **roles;
    size_t n_roles;
    if (!import_strings(imp, o, path, "roles", &roles, &n_roles)) return;
    a.roles = import_alloc(imp, (n_roles + 1) * sizeof *a.roles);
    if (!a.roles) return;
    for (size_t r = 0; r < n_roles; r++) {
        int v = import_enum(imp, &samordna__v1__agency_role__descriptor, roles[r],
                            import_path(imp, "%s.roles[%zu]", path, r));
        if (v < 0) return;
        a.roles[r] = (Samordna__V1__AgencyRole)v;
    }
    a.n_roles = n_roles;
    import_define(imp, "agency", a.id, path);
    import_event(imp, SVC, T("agency.registered"), a.id, &a.base);
}

/* ---- people ------------------------------------------------------------------------------------
 */

/* person.registered for each person (their roles are assigned once the pilots exist). */
static const import_field_t s_person_fields[] = {{"id", S_NAMED},       {"name", IMPORT_REQUIRED},
                                                 {"email", 0},          {"phone", 0},
                                                 {"agency", IMPORT_ID}, {NULL}};

static void s_person(import_t *imp, json_t *o, const char *path, size_t i, void *arg)
{
    (void)i, (void)arg;
    Samordna__V1__Person p = SAMORDNA__V1__PERSON__INIT;
    if (!import_record(imp, o, path, "id name email phone agency roles", &p.base, s_person_fields))
        return;
    if (p.email[0] && !strchr(p.email, '@')) {
        import_error(imp, import_path(imp, "%s.email", path), "'%s' is not an e-mail address",
                     p.email);
        return;
    }
    if (p.agency[0]) import_require(imp, "agency", p.agency, import_path(imp, "%s.agency", path));
    import_define(imp, "person", p.id, path);
    import_event(imp, SVC, T("person.registered"), p.id, &p.base);
}

static const import_field_t s_role_fields[] = {{"role", IMPORT_REQUIRED},
                                               {"agency", IMPORT_ID},
                                               {"pilot", IMPORT_ID},
                                               {"programme", IMPORT_ID},
                                               {"from", IMPORT_DATE},
                                               {"until", IMPORT_DATE},
                                               {NULL}};

/* role.assigned for every role of every person (after pilots exist). */
static void s_roles(import_t *imp, json_t *root)
{
    json_t *arr = json_object_get(root, "people");
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        const char *person = json_string_value(json_object_get(o, "id"));
        json_t *roles = import_array(imp, o, import_path(imp, "$.people[%zu]", i), "roles", false);
        size_t r;
        json_t *ro;
        json_array_foreach(roles, r, ro)
        {
            const char *path = import_path(imp, "$.people[%zu].roles[%zu]", i, r);
            if (!person || !import_object(imp, ro, path, "role agency pilot programme from until"))
                continue;
            Samordna__V1__RoleHeld h = SAMORDNA__V1__ROLE_HELD__INIT;
            if (!import_record(imp, ro, path, NULL, &h.base, s_role_fields)) continue;
            if ((h.agency[0] != 0) + (h.pilot[0] != 0) + (h.programme[0] != 0) > 1) {
                import_error(imp, path, "name at most one of agency, pilot and programme");
                continue;
            }
            if (h.agency[0])
                import_require(imp, "agency", h.agency, import_path(imp, "%s.agency", path));
            if (h.pilot[0])
                import_require(imp, "pilot", h.pilot, import_path(imp, "%s.pilot", path));
            if (h.programme[0])
                import_require(imp, "programme", h.programme,
                               import_path(imp, "%s.programme", path));
            Samordna__V1__RoleAssignment a = SAMORDNA__V1__ROLE_ASSIGNMENT__INIT;
            a.person = (char *)person;
            a.role = &h;
            import_event(imp, SVC, T("role.assigned"), import_path(imp, "%s/%zu", person, r),
                         &a.base);
        }
    }
}

/* ---- municipalities
 * ------------------------------------------------------------------------------ */

/* The id a successor gets from its name: "Indre Østfold" → "indre-ostfold". */
static void s_slug(const char *name, char *out, size_t len)
{
    static const struct {
        const char *utf8, *ascii;
    } fold[] = {{"æ", "ae"}, {"Æ", "ae"}, {"ø", "o"}, {"Ø", "o"}, {"å", "a"},
                {"Å", "a"},  {"é", "e"},  {"ü", "u"}, {"ö", "o"}, {"ä", "a"}};
    size_t n = 0;
    bool dash = false;
    for (const char *p = name; *p && n + 3 < len;) {
        char c = *p;
        const char *ascii = NULL;
        size_t adv = 1;
        for (size_t f = 0; f < sizeof fold / sizeof fold[0] && !ascii; f++) {
            size_t fl = strlen(fold[f].utf8);
            if (strncmp(p, fold[f].utf8, fl) == 0) {
                ascii = fold[f].ascii;
                adv = fl;
            }
        }
        if (ascii || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
            if (dash && n) out[n++] = '-';
            dash = false;
            if (ascii)
                for (const char *a = ascii; *a && n + 1 < len; a++)
                    out[n++] = *a;
            else
                out[n++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        } else {
            dash = true;
            while ((p[adv] & 0xC0) == 0x80)
                adv++; /* a letter we do not fold: skip it whole */
        }
        p += adv;
    }
    out[n] = '\0';
}

/* A municipality read from the file, waiting for its successor to be planned. */
typedef struct {
    Samordna__V1__Municipality m;
    Samordna__V1__Successor succ;
    const char *path;
    bool planned;
} s_muni_t;

static const import_field_t s_municipality_fields[] = {
    {"id", S_NAMED}, {"name", IMPORT_REQUIRED}, {"note", 0}, {NULL}};
static const import_field_t s_number_fields[] = {{"number", IMPORT_REQUIRED | IMPORT_NUMBER},
                                                 {"from", IMPORT_DATE},
                                                 {"until", IMPORT_DATE},
                                                 {NULL}};
static const import_field_t s_constituent_fields[] = {
    {"name", IMPORT_REQUIRED}, {"number", IMPORT_REQUIRED | IMPORT_NUMBER}, {NULL}};
static const import_field_t s_successor_fields[] = {{"municipality", IMPORT_ID},
                                                    {"name", IMPORT_REQUIRED},
                                                    {"number", IMPORT_NUMBER},
                                                    {"from", IMPORT_REQUIRED | IMPORT_DATE},
                                                    {NULL}};

static bool s_read_municipality(import_t *imp, json_t *o, const char *path, s_muni_t *mu)
{
    Samordna__V1__Municipality *m = &mu->m;
    *m = (Samordna__V1__Municipality)SAMORDNA__V1__MUNICIPALITY__INIT;
    mu->succ = (Samordna__V1__Successor)SAMORDNA__V1__SUCCESSOR__INIT;
    mu->path = path;
    int64_t pop = 0;
    if (!import_record(imp, o, path, "id name population numbers constituents successor note",
                       &m->base, s_municipality_fields) ||
        !import_int(imp, o, path, "population", false, 0, 100000000, &pop))
        return false;
    m->population = pop;
    json_t *nums = import_array(imp, o, path, "numbers", false);
    m->n_numbers = json_array_size(nums);
    m->numbers = import_alloc(imp, (m->n_numbers + 1) * sizeof *m->numbers);
    if (!m->numbers) return false;
    for (size_t i = 0; i < m->n_numbers; i++) {
        const char *np = import_path(imp, "%s.numbers[%zu]", path, i);
        json_t *no = json_array_get(nums, i);
        Samordna__V1__MunicipalityNumber *n = import_alloc(imp, sizeof *n);
        if (!n) return false;
        samordna__v1__municipality_number__init(n);
        if (!import_record(imp, no, np, "number from until", &n->base, s_number_fields))
            return false;
        if (n->from[0] && n->until[0] && strcmp(n->from, n->until) > 0)
            return import_error(imp, import_path(imp, "%s.until", np), "%s is before from %s",
                                n->until, n->from),
                   false;
        m->numbers[i] = n;
    }
    json_t *cons = import_array(imp, o, path, "constituents", false);
    m->n_constituents = json_array_size(cons);
    m->constituents = import_alloc(imp, (m->n_constituents + 1) * sizeof *m->constituents);
    if (!m->constituents) return false;
    for (size_t i = 0; i < m->n_constituents; i++) {
        const char *cp = import_path(imp, "%s.constituents[%zu]", path, i);
        json_t *co = json_array_get(cons, i);
        Samordna__V1__Constituent *c = import_alloc(imp, sizeof *c);
        if (!c) return false;
        samordna__v1__constituent__init(c);
        if (!import_record(imp, co, cp, "name number", &c->base, s_constituent_fields))
            return false;
        m->constituents[i] = c;
    }
    json_t *so = json_object_get(o, "successor");
    if (so) {
        const char *sp = import_path(imp, "%s.successor", path);
        Samordna__V1__Successor *s = &mu->succ;
        if (!import_record(imp, so, sp, "municipality name number from", &s->base,
                           s_successor_fields))
            return false;
        m->successor = s;
    }
    return true;
}

static void s_municipalities(import_t *imp, json_t *root)
{
    json_t *arr = import_array(imp, root, "$", "municipalities", false);
    size_t n = json_array_size(arr);
    if (!n) return;
    /* Room for every municipality and one successor each. */
    s_muni_t *mu = import_alloc(imp, 2 * n * sizeof *mu);
    if (!mu) return;
    size_t count = 0;
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        const char *path = import_path(imp, "$.municipalities[%zu]", i);
        if (!s_read_municipality(imp, json_array_get(arr, i), path, &mu[count])) {
            ok = false;
            continue;
        }
        import_define(imp, "municipality", mu[count].m.id, path);
        count++;
    }
    if (!ok) return;
    /* Successors named only by name and number: registered under the id of their name,
       unless the file has that municipality itself or it is the municipality's own id. */
    size_t read = count;
    for (size_t i = 0; i < read; i++) {
        Samordna__V1__Successor *s = mu[i].m.successor;
        if (!s || s->municipality[0]) continue;
        char slug[65];
        s_slug(s->name, slug, sizeof slug);
        if (!slug[0] || strcmp(slug, mu[i].m.id) == 0) continue; /* it lives on under its id */
        char *id = (char *)import_path(imp, "%s", slug);
        s->municipality = id;
        bool in_file = false;
        for (size_t j = 0; j < count && !in_file; j++)
            in_file = strcmp(mu[j].m.id, id) == 0;
        if (in_file) continue;
        s_muni_t *nu = &mu[count++];
        nu->m = (Samordna__V1__Municipality)SAMORDNA__V1__MUNICIPALITY__INIT;
        nu->path = import_path(imp, "%s.successor", mu[i].path);
        nu->m.id = id;
        nu->m.name = s->name;
        if (s->number[0]) {
            Samordna__V1__MunicipalityNumber *num = import_alloc(imp, sizeof *num);
            nu->m.numbers = import_alloc(imp, sizeof *nu->m.numbers);
            if (!num || !nu->m.numbers) return;
            samordna__v1__municipality_number__init(num);
            num->number = s->number;
            num->from = s->from;
            num->until = "";
            nu->m.numbers[0] = num;
            nu->m.n_numbers = 1;
        }
        import_define(imp, "municipality", id, nu->path);
    }
    /* Plan in rounds: a municipality goes once its successor is planned (or is not in the
       file: then the registry must have it). */
    size_t planned = 0;
    while (planned < count) {
        size_t before = planned;
        for (size_t i = 0; i < count; i++) {
            if (mu[i].planned) continue;
            const char *succ = mu[i].m.successor ? mu[i].m.successor->municipality : "";
            bool wait = false;
            for (size_t j = 0; j < count && succ[0] && !wait; j++)
                wait = !mu[j].planned && strcmp(mu[j].m.id, succ) == 0;
            if (wait) continue;
            if (succ[0] && strcmp(succ, mu[i].m.id) == 0) {
                import_error(imp, import_path(imp, "%s.successor.municipality", mu[i].path),
                             "a municipality cannot succeed itself");
                return;
            }
            if (succ[0])
                import_require(imp, "municipality", succ,
                               import_path(imp, "%s.successor.municipality", mu[i].path));
            mu[i].planned = true;
            planned++;
            import_event(imp, SVC, T("municipality.registered"), mu[i].m.id, &mu[i].m.base);
        }
        if (planned == before) {
            import_error(imp, "$.municipalities", "successors form a cycle");
            return;
        }
        import_barrier(imp);
    }
}

/* ---- invitations ---------------------------------------------------------------------------- */

/* The answers read with the invitations, published after the pilots. */
typedef struct {
    Samordna__V1__InvitationAnswer *items;
    size_t n;
} s_answers_t;

static void s_invitations(import_t *imp, json_t *root, s_answers_t *answers)
{
    json_t *arr = import_array(imp, root, "$", "invitations", false);
    answers->n = 0;
    answers->items = import_alloc(imp, (json_array_size(arr) + 1) * sizeof *answers->items);
    if (!answers->items) return;
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        const char *path = import_path(imp, "$.invitations[%zu]", i);
        const char *prog, *muni, *sent, *answer, *channel, *answered, *note;
        if (!import_object(imp, o, path,
                           "programme municipality sent answer channel answered note") ||
            !(prog = import_str(imp, o, path, "programme", IMPORT_REQUIRED | IMPORT_ID)) ||
            !(muni = import_str(imp, o, path, "municipality", IMPORT_REQUIRED | IMPORT_ID)) ||
            !(sent = import_str(imp, o, path, "sent", IMPORT_DATE)) ||
            !(answer = import_str(imp, o, path, "answer", 0)) ||
            !(channel = import_str(imp, o, path, "channel", 0)) ||
            !(answered = import_str(imp, o, path, "answered", IMPORT_DATE)) ||
            !(note = import_str(imp, o, path, "note", 0)))
            continue;
        const char *key = import_path(imp, "%s/%s", prog, muni);
        import_require(imp, "programme", prog, import_path(imp, "%s.programme", path));
        import_require(imp, "municipality", muni, import_path(imp, "%s.municipality", path));
        import_define(imp, "invitation", key, path);
        Samordna__V1__Invitation inv = SAMORDNA__V1__INVITATION__INIT;
        inv.programme = (char *)prog;
        inv.municipality = (char *)muni;
        inv.sent = (char *)sent;
        if (!answer[0]) inv.note = (char *)note; /* otherwise the note goes with the answer */
        import_event(imp, SVC, T("invitation.sent"), key, &inv.base);
        if (!answer[0] && !channel[0]) continue;
        if (!answer[0]) {
            import_error(imp, import_path(imp, "%s.answer", path), "required with a channel");
            continue;
        }
        if (!channel[0]) {
            import_error(imp, import_path(imp, "%s.channel", path), "required with an answer");
            continue;
        }
        int a = import_enum(imp, &samordna__v1__answer__descriptor, answer,
                            import_path(imp, "%s.answer", path));
        int c = import_enum(imp, &samordna__v1__channel__descriptor, channel,
                            import_path(imp, "%s.channel", path));
        if (a < 0 || c < 0) continue;
        Samordna__V1__InvitationAnswer *ans = &answers->items[answers->n++];
        samordna__v1__invitation_answer__init(ans);
        ans->programme = (char *)prog;
        ans->municipality = (char *)muni;
        ans->answer = (Samordna__V1__Answer)a;
        ans->channel = (Samordna__V1__Channel)c;
        ans->answered = (char *)answered;
        ans->note = (char *)note;
    }
}

/* ---- pilots ------------------------------------------------------------------------------------
 */

static const import_field_t s_pilot_fields[] = {
    {"id", S_NAMED},
    {"programme", IMPORT_ID},
    {"municipality", S_NAMED},
    {"challenge", IMPORT_REQUIRED},
    {"investment_leader", S_NAMED},
    {"contact_person", IMPORT_ID},
    {"municipal_steering_group", 0},
    {"investment_team", 0},
    {"aims", 0},
    {NULL},
};

/* A pilot; arg is the file's programme ("" when it has none, NULL when it was refused). */
static void s_pilot(import_t *imp, json_t *o, const char *path, size_t i, void *arg)
{
    (void)i;
    const char *programme = arg;
    Samordna__V1__Pilot p = SAMORDNA__V1__PILOT__INIT;
    if (!import_record(imp, o, path,
                       "id programme municipality challenge investment_leader investment_team "
                       "contact_person municipal_steering_group aims",
                       &p.base, s_pilot_fields))
        return;
    if (!p.programme[0]) {
        if (!programme) return; /* the programme itself was refused */
        if (!programme[0]) {
            import_error(imp, import_path(imp, "%s.programme", path),
                         "required when the file has no programme");
            return;
        }
        p.programme = (char *)programme;
    }
    import_require(imp, "programme", p.programme, import_path(imp, "%s.programme", path));
    import_require(imp, "municipality", p.municipality, import_path(imp, "%s.municipality", path));
    import_require(imp, "agency", p.investment_leader,
                   import_path(imp, "%s.investment_leader", path));
    for (size_t t = 0; t < p.n_investment_team; t++)
        import_require(imp, "agency", p.investment_team[t],
                       import_path(imp, "%s.investment_team[%zu]", path, t));
    if (p.contact_person[0])
        import_require(imp, "person", p.contact_person,
                       import_path(imp, "%s.contact_person", path));
    import_define(imp, "pilot", p.id, path);
    import_event(imp, SVC, T("pilot.registered"), p.id, &p.base);
}

/* ---- reports ------------------------------------------------------------------------------------
 */

static const import_field_t s_report_fields[] = {
    {"id", S_NAMED},
    {"by", S_NAMED},
    {"title", IMPORT_REQUIRED},
    {"series", 0},
    {"published", IMPORT_DATE},
    {"url", 0},
    {NULL},
};

static void s_report(import_t *imp, json_t *o, const char *path, size_t i, void *arg)
{
    (void)i, (void)arg;
    Samordna__V1__Report r = SAMORDNA__V1__REPORT__INIT;
    if (!import_record(imp, o, path, "id by title series published url", &r.base, s_report_fields))
        return;
    import_require(imp, "agency", r.by, import_path(imp, "%s.by", path));
    import_define(imp, "report", r.id, path);
    import_event(imp, SVC, T("report.published"), r.id, &r.base);
}

/* The registry's part of the file, in dependency order with barriers between the layers. */
int import_registry(import_t *imp, json_t *root)
{
    import_kind(imp, "agency", SVC, "registry.agencies.get");
    import_kind(imp, "municipality", SVC, "registry.municipalities.get");
    import_kind(imp, "programme", SVC, "registry.programmes.get");
    import_kind(imp, "person", SVC, "registry.people.get");
    import_kind(imp, "pilot", SVC, "registry.pilots.get");

    import_each(imp, root, "agencies", s_agency, NULL);
    import_barrier(imp);
    const char *programme = s_programme(imp, root);
    import_each(imp, root, "people", s_person, NULL);
    s_municipalities(imp, root); /* ends with a barrier */
    s_answers_t answers;
    s_invitations(imp, root, &answers);
    import_each(imp, root, "reports", s_report, NULL);
    import_each(imp, root, "pilots", s_pilot, (void *)programme);
    import_barrier(imp);
    for (size_t i = 0; i < answers.n; i++) {
        Samordna__V1__InvitationAnswer *a = &answers.items[i];
        import_event(imp, SVC, T("invitation.answered"),
                     import_path(imp, "%s/%s", a->programme, a->municipality), &a->base);
    }
    s_roles(imp, root);
    return 0;
}
