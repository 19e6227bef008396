/*  cmd_registry.c — samctl's registry commands: agencies, municipalities, people,
    programmes, pilots (and `pilot show ID`), invitations, reports.

    Each command either lists (every page of registry.<table>.list, with the command's
    filters) or shows one record (`show ID`, registry.<table>.get). Lists print as every
    samctl list does (samctl.h: a header, one record a line, the count; --json {"items",
    "next"}); `show` prints one field a line, or one JSON object. Records in JSON have the
    proto field names, enum values as lower-case words, and leave out empty fields.
*/
#include "samctl.h"

#include "samordna/v1/registry.pb-c.h"

#include <ctype.h>
#include <stddef.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- output helpers -------------------------------------------------------------------------- */

/* Prints s in a column `width` characters wide (UTF-8 aware), cut with "…" when longer. */
static void s_cell(const char *s, size_t width)
{
    size_t chars = 0, i = 0;
    for (; s[i]; i++) {
        if (((unsigned char)s[i] & 0xC0) == 0x80) continue;
        if (chars == width - 1 && strlen(s + i) > 0) {
            size_t rest = 0;
            for (size_t j = i; s[j]; j++)
                rest += ((unsigned char)s[j] & 0xC0) != 0x80;
            if (rest > 1) {
                fwrite(s, 1, i, stdout);
                fputs("… ", stdout);
                return;
            }
        }
        chars++;
    }
    fputs(s, stdout);
    for (; chars <= width; chars++)
        putchar(' ');
}

/* "a, b, c" into out. */
static const char *s_join(char **items, size_t n, char *out, size_t len)
{
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t at = strlen(out);
        snprintf(out + at, len - at, "%s%s", i ? ", " : "", items[i]);
    }
    return out;
}

static void s_put_str(json_t *o, const char *key, const char *v)
{
    if (v && v[0]) json_object_set_new(o, key, json_string(v));
}

/* ---- records as JSON ------------------------------------------------------------------------- */

/* The fields of each record in --json (samctl_json_fields): empty ones are left out, except
   the lists a reader expects even when empty. */
static const char s_agency_fields[] = "id? name? former_names? kind? roles unit?";
#define s_municipality_fields                                                                      \
    "id? name? population? numbers constituents? successor? predecessors? note?"
#define s_programme_fields                                                                         \
    "id? name? motto? owner? leadership? steering_group? briefing_interval_months period? themes " \
    "goals"
#define s_pilot_fields                                                                             \
    "id? programme? municipality? challenge? investment_leader? investment_team contact_person? "  \
    "municipal_steering_group? aims"
static const char s_invitation_fields[] =
    "programme? municipality? sent? answer? channel? answered? note?";
static const char s_person_fields[] = "id? name? email? phone? agency? roles erased? erased_on?";
static const char s_report_fields[] = "id? by? title? series? published? url?";

/* ---- reading ------------------------------------------------------------------------------- */

/* Fetches one record with registry.<table>.get; NULL after printing the refusal. */
static ProtobufCMessage *s_get(samctl_t *ctl, const char *method, const char *id,
                               const char *number, const ProtobufCMessageDescriptor *desc)
{
    Samordna__V1__GetRequest g = SAMORDNA__V1__GET_REQUEST__INIT;
    g.id = (char *)(id ? id : "");
    g.number = (char *)(number ? number : "");
    return samctl_call(ctl, "registry", method, &g.base, desc);
}

/* ---- agencies ------------------------------------------------------------------------------ */

static void s_agency_row(const ProtobufCMessage *rec)
{
    const Samordna__V1__Agency *a = (const Samordna__V1__Agency *)rec;
    char w[64], roles[512] = "";
    for (size_t i = 0; i < a->n_roles; i++) {
        size_t at = strlen(roles);
        snprintf(
            roles + at, sizeof roles - at, "%s%s", i ? ", " : "",
            samctl_enum_word(&samordna__v1__agency_role__descriptor, a->roles[i], w, sizeof w));
    }
    s_cell(a->id, 15);
    s_cell(a->name, 31);
    s_cell(samctl_enum_word(&samordna__v1__agency_kind__descriptor, a->kind, w, sizeof w), 20);
    printf("%s\n", roles);
}

static void s_agency_text(const ProtobufCMessage *rec)
{
    const Samordna__V1__Agency *ag = (const Samordna__V1__Agency *)rec;
    char w[64], buf[2048];
    printf("id            %s\nname          %s\n", ag->id, ag->name);
    if (ag->n_former_names)
        printf("former names  %s\n", s_join(ag->former_names, ag->n_former_names, buf, sizeof buf));
    printf("kind          %s\n",
           samctl_enum_word(&samordna__v1__agency_kind__descriptor, ag->kind, w, sizeof w));
    if (ag->unit[0]) printf("unit          %s\n", ag->unit);
    printf("roles         ");
    for (size_t i = 0; i < ag->n_roles; i++)
        printf("%s%s", i ? ", " : "",
               samctl_enum_word(&samordna__v1__agency_role__descriptor, ag->roles[i], w, sizeof w));
    printf("\n");
}

/* ---- municipalities ------------------------------------------------------------------------ */

static void s_municipality_row(const ProtobufCMessage *rec)
{
    const Samordna__V1__Municipality *m = (const Samordna__V1__Municipality *)rec;
    char nums[256] = "", succ[256] = "";
    for (size_t i = 0; i < m->n_numbers; i++) {
        size_t at = strlen(nums);
        snprintf(nums + at, sizeof nums - at, "%s%s", i ? ", " : "", m->numbers[i]->number);
    }
    if (!m->n_numbers && m->n_constituents)
        snprintf(nums, sizeof nums, "(%zu constituents)", m->n_constituents);
    if (m->successor)
        snprintf(succ, sizeof succ, "%s%s%s from %s",
                 m->successor->municipality[0] ? m->successor->municipality : m->successor->name,
                 m->successor->number[0] ? " " : "", m->successor->number, m->successor->from);
    s_cell(m->id, 15);
    s_cell(m->name, 17);
    if (m->population)
        printf("%11lld  ", (long long)m->population);
    else
        printf("%11s  ", "-");
    s_cell(nums, 21);
    printf("%s\n", succ);
}

/* One municipality by id (show ID) or by number (--number N, whoever held it). */
static int s_municipality_get(samctl_t *ctl, const char *id, const char *number)
{
    Samordna__V1__MunicipalityLookup *l =
        (Samordna__V1__MunicipalityLookup *)s_get(ctl, "registry.municipalities.get", id, number,
                                                  &samordna__v1__municipality_lookup__descriptor);
    if (!l) return 1;
    const Samordna__V1__Municipality *m = l->municipality;
    if (!m) {
        fprintf(stderr, "samctl municipalities: the answer holds no municipality\n");
        protobuf_c_message_free_unpacked(&l->base, NULL);
        return 1;
    }
    if (ctl->json) {
        json_t *o = samctl_json_fields(&m->base, s_municipality_fields);
        s_put_str(o, "resolved_from", l->resolved_from);
        s_put_str(o, "message", l->message);
        samctl_print_json(o);
    } else {
        if (l->message[0]) printf("note          %s\n", l->message);
        printf("id            %s\nname          %s\n", m->id, m->name);
        if (m->population) printf("population    %lld\n", (long long)m->population);
        for (size_t i = 0; i < m->n_numbers; i++)
            printf("number        %s%s%s%s%s\n", m->numbers[i]->number,
                   m->numbers[i]->from[0] ? " from " : "", m->numbers[i]->from,
                   m->numbers[i]->until[0] ? " until " : "", m->numbers[i]->until);
        for (size_t i = 0; i < m->n_constituents; i++)
            printf("constituent   %s (%s)\n", m->constituents[i]->name, m->constituents[i]->number);
        if (m->successor)
            printf("successor     %s%s%s%s%s from %s\n", m->successor->name,
                   m->successor->number[0] ? " " : "", m->successor->number,
                   m->successor->municipality[0] ? " = " : "", m->successor->municipality,
                   m->successor->from);
        for (size_t i = 0; i < m->n_predecessors; i++)
            printf("predecessor   %s\n", m->predecessors[i]);
        if (m->note[0]) printf("about         %s\n", m->note);
    }
    protobuf_c_message_free_unpacked(&l->base, NULL);
    return 0;
}

static int s_municipalities(samctl_t *ctl, const samctl_args_t *a)
{
    if (samctl_opt(a, "number")) return s_municipality_get(ctl, NULL, samctl_opt(a, "number"));
    return samctl_query_run(ctl, a);
}

static int s_municipality_show(samctl_t *ctl, const samctl_args_t *a)
{
    return s_municipality_get(ctl, a->pos[0], NULL);
}

/* ---- programmes ---------------------------------------------------------------------------- */

static void s_programme_row(const ProtobufCMessage *rec)
{
    const Samordna__V1__Programme *p = (const Samordna__V1__Programme *)rec;
    char brief[32];
    snprintf(brief, sizeof brief, "%u months", p->briefing_interval_months);
    s_cell(p->id, 17);
    s_cell(p->name, 31);
    s_cell(p->owner, 9);
    s_cell(brief, 11);
    if (p->period) printf("%s – %s", p->period->from, p->period->to);
    printf("\n");
}

static void s_programme_text(const ProtobufCMessage *rec)
{
    const Samordna__V1__Programme *p = (const Samordna__V1__Programme *)rec;
    printf("id              %s\nname            %s\n", p->id, p->name);
    if (p->motto[0]) printf("motto           %s\n", p->motto);
    printf("owner           %s\n", p->owner);
    if (p->leadership[0]) printf("leadership      %s\n", p->leadership);
    if (p->steering_group[0]) printf("steering group  %s\n", p->steering_group);
    printf("briefing        every %u months\n", p->briefing_interval_months);
    if (p->period) printf("period          %s – %s\n", p->period->from, p->period->to);
    for (size_t i = 0; i < p->n_themes; i++)
        printf("theme           %s\n", p->themes[i]);
    for (size_t i = 0; i < p->n_goals; i++)
        printf("goal            %s\n", p->goals[i]);
}

/* ---- pilots -------------------------------------------------------------------------------- */

static void s_pilot_row(const ProtobufCMessage *rec)
{
    const Samordna__V1__Pilot *p = (const Samordna__V1__Pilot *)rec;
    s_cell(p->id, 15);
    s_cell(p->municipality, 15);
    s_cell(p->investment_leader, 15);
    s_cell(p->challenge, 60);
    printf("\n");
}

static void s_pilot_text(const ProtobufCMessage *rec)
{
    const Samordna__V1__Pilot *p = (const Samordna__V1__Pilot *)rec;
    char buf[2048];
    printf("pilot                     %s\nprogramme                 %s\n", p->id, p->programme);
    printf("municipality              %s\nchallenge                 %s\n", p->municipality,
           p->challenge);
    printf("investment leader         %s\n", p->investment_leader);
    if (p->n_investment_team)
        printf("investment team           %s\n",
               s_join(p->investment_team, p->n_investment_team, buf, sizeof buf));
    if (p->contact_person[0]) printf("contact person            %s\n", p->contact_person);
    if (p->municipal_steering_group[0])
        printf("municipal steering group  %s\n", p->municipal_steering_group);
    for (size_t i = 0; i < p->n_aims; i++)
        printf("aim                       %s\n", p->aims[i]);
}

/* ---- invitations --------------------------------------------------------------------------- */

static void s_invitation_row(const ProtobufCMessage *rec)
{
    const Samordna__V1__Invitation *inv = (const Samordna__V1__Invitation *)rec;
    char w[32];
    s_cell(inv->programme, 17);
    s_cell(inv->municipality, 15);
    s_cell(inv->answer
               ? samctl_enum_word(&samordna__v1__answer__descriptor, inv->answer, w, sizeof w)
               : "-",
           7);
    s_cell(samctl_enum_word(&samordna__v1__channel__descriptor, inv->channel, w, sizeof w), 8);
    s_cell(inv->answered, 11);
    printf("%s\n", inv->note);
}

/* ---- people -------------------------------------------------------------------------------- */

static void s_person_row(const ProtobufCMessage *rec)
{
    const Samordna__V1__Person *p = (const Samordna__V1__Person *)rec;
    char roles[512] = "";
    for (size_t i = 0; i < p->n_roles; i++) {
        const Samordna__V1__RoleHeld *r = p->roles[i];
        const char *where = r->pilot[0] ? r->pilot : r->agency[0] ? r->agency : r->programme;
        size_t at = strlen(roles);
        snprintf(roles + at, sizeof roles - at, "%s%s%s%s", i ? ", " : "", r->role,
                 where[0] ? " @ " : "", where);
    }
    s_cell(p->id, 15);
    s_cell(p->erased ? "(erased)" : p->name, 27);
    s_cell(p->agency, 15);
    printf("%s\n", roles);
}

static void s_person_text(const ProtobufCMessage *rec)
{
    const Samordna__V1__Person *p = (const Samordna__V1__Person *)rec;
    printf("id        %s\n", p->id);
    if (p->erased)
        printf("erased    on %s (name and contact details removed)\n", p->erased_on);
    else
        printf("name      %s\n", p->name);
    if (p->email[0]) printf("email     %s\n", p->email);
    if (p->phone[0]) printf("phone     %s\n", p->phone);
    if (p->agency[0]) printf("agency    %s\n", p->agency);
    for (size_t i = 0; i < p->n_roles; i++) {
        const Samordna__V1__RoleHeld *r = p->roles[i];
        const char *where = r->pilot[0] ? r->pilot : r->agency[0] ? r->agency : r->programme;
        printf("role      %s%s%s%s%s%s%s\n", r->role, where[0] ? " @ " : "", where,
               r->from[0] ? " from " : "", r->from, r->until[0] ? " until " : "", r->until);
    }
}

/* ---- reports ------------------------------------------------------------------------------- */

static void s_report_row(const ProtobufCMessage *rec)
{
    const Samordna__V1__Report *r = (const Samordna__V1__Report *)rec;
    s_cell(r->id, 15);
    s_cell(r->by, 9);
    s_cell(r->series, 25);
    printf("%s\n", r->title);
}

static void s_report_text(const ProtobufCMessage *rec)
{
    const Samordna__V1__Report *r = (const Samordna__V1__Report *)rec;
    printf("id        %s\nby        %s\ntitle     %s\n", r->id, r->by, r->title);
    if (r->series[0]) printf("series    %s\n", r->series);
    if (r->published[0]) printf("published %s\n", r->published);
    if (r->url[0]) printf("url       %s\n", r->url);
}

/* ---- the tables ---------------------------------------------------------------------------- */

/* A list (samctl_list_query): every page of registry.<table>.list, filtered by the options
   its command has (ListRequest fields of the same names). */
#define S_LISTS(method, reply, noun, columns, titles, fields, row)                                 \
    (&(const samctl_query_t){"registry", method, &samordna__v1__list_request__descriptor,          \
                             &samordna__v1__##reply##__descriptor, "items", noun, columns, titles, \
                             NULL, row, true, 500, NULL, fields})

/* `show ID`: one record of registry.<table>.get, the same for every table. */
#define S_GET(method, reply, fields, text)                                                         \
    (&(const samctl_query_t){"registry", method, &samordna__v1__get_request__descriptor,           \
                             &samordna__v1__##reply##__descriptor, NULL, NULL, NULL, NULL, NULL,   \
                             text, false, 0, NULL, fields})
#define S_SHOW(what, get)                                                                          \
    ((const samctl_cmd_t[]){                                                                       \
        {.name = "show", .args = "ID", .about = what, .run = samctl_query_run, .query = get},      \
        {NULL}})

static const samctl_opt_t s_agencies_opts[] = {
    {"kind", 0, "KIND", SAMCTL_TEXT, 0,
     "only agencies of this kind (state_regional, county_governor, municipality, …)"},
    {"role", 0, "ROLE", SAMCTL_TEXT, 0, "only agencies with this role (investment_team, …)"},
    {NULL},
};
/* The registry's plain tables: a list of every record, with its command's filters, and
   `show ID`. X(word, record, about, options, columns, titles, what show tells) makes
   samctl_<word>_cmd of registry.<word>.list and .get, with the record's fields in --json
   (s_<record>_fields) and its text (s_<record>_row, s_<record>_text). */
#define S_TABLES(X)                                                                                \
    X(agencies, agency,                                                                            \
      "The agencies: id, name, kind and roles; `agencies show ID` one of them, with its\n"         \
      "former names and unit.",                                                                    \
      s_agencies_opts, "%-16s%-32s%-21s%s", "ID|NAME|KIND|ROLES",                                  \
      "One agency, with its former names and unit.")                                               \
    X(people, person,                                                                              \
      "People and the roles they held (erased people keep their roles, not their names).",         \
      s_people_opts, "%-16s%-28s%-16s%s", "ID|NAME|AGENCY|ROLES",                                  \
      "One person: contact details and every role held, with when.")                               \
    X(programmes, programme, "The programmes: owner, briefing interval and period.", NULL,         \
      "%-18s%-32s%-10s%-12s%s", "ID|NAME|OWNER|BRIEFING|PERIOD",                                   \
      "One programme: leadership, steering group, themes and goals.")                              \
    X(reports, report, "Reports published by agencies: who, the series and the title.",            \
      s_reports_opts, "%-16s%-10s%-26s%s", "ID|BY|SERIES|TITLE",                                   \
      "One report, with when it was published and where.")

#define S_TABLE(word, record, about_, opts_, columns, titles, show)                                \
    const samctl_cmd_t samctl_##word##_cmd = {                                                     \
        .name = #word,                                                                             \
        .about = about_,                                                                           \
        .opts = opts_,                                                                             \
        .run = samctl_query_run,                                                                   \
        .query = S_LISTS("registry." #word ".list", record##_list, #word, columns, titles,         \
                         s_##record##_fields, s_##record##_row),                                   \
        .subs = S_SHOW(show, S_GET("registry." #word ".get", record, s_##record##_fields,          \
                                   s_##record##_text)),                                            \
    };

static const samctl_opt_t s_municipalities_opts[] = {
    {"number", 0, "NUMBER", SAMCTL_TEXT, 0,
     "the municipality that held this number (four digits), with when"},
    {NULL},
};
const samctl_cmd_t samctl_municipalities_cmd = {
    .name = "municipalities",
    .about = "Municipalities with their numbers, population and successor (a merger never\n"
             "overwrites: the old record stays and points to the new one).",
    .opts = s_municipalities_opts,
    .run = s_municipalities,
    .query = S_LISTS("registry.municipalities.list", municipality_list, "municipalities",
                     "%-16s%-18s%11s  %-22s%s", "ID|NAME|POPULATION|NUMBERS|SUCCESSOR",
                     s_municipality_fields, s_municipality_row),
    .subs = ((const samctl_cmd_t[]){
        {.name = "show",
         .args = "ID",
         .about = "One municipality; a merged one says into which, and when.",
         .run = s_municipality_show},
        {NULL}}),
};

static const samctl_opt_t s_people_opts[] = {
    {"agency", 0, "AGENCY", SAMCTL_TEXT, 0, "only people of this agency"},
    {NULL},
};

static const samctl_opt_t s_pilots_opts[] = {
    {"agency", 0, "AGENCY", SAMCTL_TEXT, 0, "only pilots this agency leads or is part of"},
    {"municipality", 0, "MUNICIPALITY", SAMCTL_TEXT, 0, "only this municipality's pilots"},
    {"programme", 0, "PROGRAMME", SAMCTL_TEXT, 0, "only pilots of this programme"},
    {NULL},
};
static const samctl_cmd_t s_pilot_show_subs[] = {
    {.name = "show",
     .args = "ID",
     .about = "One pilot: municipality, challenge, investment leader and team, aims.",
     .run = samctl_query_run,
     .query = S_GET("registry.pilots.get", pilot, s_pilot_fields, s_pilot_text)},
    {NULL},
};
const samctl_cmd_t samctl_pilots_cmd = {
    .name = "pilots",
    .about = "The pilots: municipality, investment leader and challenge.",
    .opts = s_pilots_opts,
    .run = samctl_query_run,
    .query = S_LISTS("registry.pilots.list", pilot_list, "pilots", "%-16s%-16s%-16s%s",
                     "ID|MUNICIPALITY|LEADER|CHALLENGE", s_pilot_fields, s_pilot_row),
    .subs = s_pilot_show_subs,
};
const samctl_cmd_t samctl_pilot_cmd = {
    .name = "pilot",
    .about = "One pilot: `pilot show ID` is `pilots show ID`.",
    .subs = s_pilot_show_subs,
};

static const samctl_opt_t s_invitations_opts[] = {
    {"programme", 0, "PROGRAMME", SAMCTL_TEXT, 0, "only invitations to this programme"},
    {"municipality", 0, "MUNICIPALITY", SAMCTL_TEXT, 0, "only those sent to this municipality"},
    {"answer", 0, "yes|no|none", SAMCTL_TEXT, 0, "only those answered so (none: not yet)"},
    {NULL},
};
const samctl_cmd_t samctl_invitations_cmd = {
    .name = "invitations",
    .about = "Invitations to a programme and their answers: yes or no, written or oral, and when.",
    .opts = s_invitations_opts,
    .run = samctl_query_run,
    .query =
        S_LISTS("registry.invitations.list", invitation_list, "invitations",
                "%-18s%-16s%-8s%-9s%-12s%s", "PROGRAMME|MUNICIPALITY|ANSWER|CHANNEL|ANSWERED|NOTE",
                s_invitation_fields, s_invitation_row),
};

static const samctl_opt_t s_reports_opts[] = {
    {"agency", 0, "AGENCY", SAMCTL_TEXT, 0, "only reports this agency published"},
    {NULL},
};

S_TABLES(S_TABLE)
