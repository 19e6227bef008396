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
#include "sam_check.h"

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
    "id? programme? municipality? challenge? investment_leader? investment_leader_from? "          \
    "former_leaders? investment_team contact_person? municipal_steering_group? aims"
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
    printf("investment leader         %s%s%s\n", p->investment_leader,
           p->investment_leader_from[0] ? " since " : "", p->investment_leader_from);
    for (size_t i = 0; i < p->n_former_leaders; i++)
        printf("former investment leader  %s (%s to %s)\n", p->former_leaders[i]->agency,
               p->former_leaders[i]->from[0] ? p->former_leaders[i]->from : "?",
               p->former_leaders[i]->until[0] ? p->former_leaders[i]->until : "?");
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

/* ---- writes ------------------------------------------------------------------------------- */

/* The value of an enum from its word ("county_governor"), or -1 after printing the words. */
static int s_enum(const samctl_args_t *a, const char *opt, const ProtobufCEnumDescriptor *d,
                  const char *word)
{
    char w[64], words[512] = "", shown[64];
    for (unsigned i = 0; i < d->n_values; i++) {
        if (d->values[i].value == 0) continue;
        samctl_enum_word(d, d->values[i].value, w, sizeof w);
        if (strcmp(w, word) == 0) return d->values[i].value;
        size_t at = strlen(words);
        snprintf(words + at, sizeof words - at, "%s%s", at ? ", " : "", w);
    }
    samctl_value_error(a, "--%s: '%s' is not one of %s", opt,
                       sam_check_escape(word, 40, shown, sizeof shown), words);
    return -1;
}

#define S_MANY 64 /* values of one repeated option */

/* agencies register ID --name --kind [--role …] [--unit] */
static int s_agency_register(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__Agency ag = SAMORDNA__V1__AGENCY__INIT;
    samctl_fill(a, &ag.base);
    int kind = s_enum(a, "kind", &samordna__v1__agency_kind__descriptor, samctl_str(a, "kind"));
    if (kind < 0) return 2;
    ag.kind = kind;
    const char *words[S_MANY];
    size_t n = samctl_opt_all(a, "role", words, S_MANY);
    if (n > S_MANY) return samctl_usage_error(a, "at most %d --role", S_MANY);
    Samordna__V1__AgencyRole roles[S_MANY];
    for (size_t i = 0; i < n; i++) {
        int r = s_enum(a, "role", &samordna__v1__agency_role__descriptor, words[i]);
        if (r < 0) return 2;
        roles[i] = r;
    }
    ag.roles = roles;
    ag.n_roles = n;
    return samctl_write(ctl, a, &ag.base);
}

/* "NUMBER", "NUMBER:FROM" or "NUMBER:FROM:UNTIL" (FROM may be empty) into n; 0 or -1. */
static int s_number(const samctl_args_t *a, const char *v, Samordna__V1__MunicipalityNumber *n,
                    char *buf, size_t len)
{
    snprintf(buf, len, "%s", v);
    samordna__v1__municipality_number__init(n);
    n->number = buf;
    char *c1 = strchr(buf, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (c1) *c1 = 0, n->from = c1 + 1;
    if (c2) *c2 = 0, n->until = c2 + 1;
    if (strlen(n->number) == 4 && strspn(n->number, "0123456789") == 4) return 0;
    char shown[64];
    samctl_value_error(a,
                       "--number: '%s' is not NUMBER[:FROM[:UNTIL]], e.g. 3001:2020-01-01 or "
                       "0101::2019-12-31 (four digits, then the days it was valid)",
                       sam_check_escape(v, 40, shown, sizeof shown));
    return -1;
}

/* municipalities register ID --name [--population N] [--number N[:FROM[:UNTIL]] …] */
static int s_municipality_register(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__Municipality m = SAMORDNA__V1__MUNICIPALITY__INIT;
    samctl_fill(a, &m.base);
    m.population = samctl_u32(a, "population");
    const char *given[S_MANY];
    size_t n = samctl_opt_all(a, "number", given, S_MANY);
    if (n > S_MANY) return samctl_usage_error(a, "at most %d --number", S_MANY);
    Samordna__V1__MunicipalityNumber nums[S_MANY], *np[S_MANY];
    char bufs[S_MANY][64];
    for (size_t i = 0; i < n; i++) {
        if (s_number(a, given[i], &nums[i], bufs[i], sizeof bufs[i])) return 2;
        np[i] = &nums[i];
    }
    m.numbers = np;
    m.n_numbers = n;
    return samctl_write(ctl, a, &m.base);
}

/* municipalities merge INTO --merged A [--merged B …] --from DATE */
static int s_municipality_merge(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__MunicipalityMerger mg = SAMORDNA__V1__MUNICIPALITY_MERGER__INIT;
    samctl_fill(a, &mg.base);
    const char *merged[S_MANY];
    size_t n = samctl_opt_all(a, "merged", merged, S_MANY);
    if (n > S_MANY) return samctl_usage_error(a, "at most %d --merged", S_MANY);
    mg.merged = (char **)merged;
    mg.n_merged = n;
    return samctl_write(ctl, a, &mg.base);
}

/* people assign PERSON --role TEXT [--agency|--pilot|--programme ID] [--from] [--until] */
static int s_person_assign(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__RoleHeld r = SAMORDNA__V1__ROLE_HELD__INIT;
    samctl_fill(a, &r.base);
    Samordna__V1__RoleAssignment ra = SAMORDNA__V1__ROLE_ASSIGNMENT__INIT;
    samctl_fill(a, &ra.base);
    ra.role = &r;
    return samctl_write(ctl, a, &ra.base);
}

/* invitations answer PROGRAMME MUNICIPALITY --answer yes|no [--channel] [--answered] [--note] */
static int s_invitation_answer(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__InvitationAnswer ans = SAMORDNA__V1__INVITATION_ANSWER__INIT;
    samctl_fill(a, &ans.base);
    int v = s_enum(a, "answer", &samordna__v1__answer__descriptor, samctl_str(a, "answer"));
    if (v < 0) return 2;
    ans.answer = v;
    if (samctl_opt(a, "channel")) {
        int c = s_enum(a, "channel", &samordna__v1__channel__descriptor, samctl_str(a, "channel"));
        if (c < 0) return 2;
        ans.channel = c;
    }
    return samctl_write(ctl, a, &ans.base);
}

/* The repeated text options of a pilot (--team, --aim) into a field, when given. */
static size_t s_many(const samctl_args_t *a, const char *opt, const char **out)
{
    return samctl_opt_all(a, opt, out, S_MANY);
}

/* pilots register ID --programme --municipality --challenge --leader [--team …] [--aim …] … */
static int s_pilot_register(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__Pilot p = SAMORDNA__V1__PILOT__INIT;
    samctl_fill(a, &p.base);
    p.investment_leader = (char *)samctl_str(a, "leader");
    p.contact_person = (char *)samctl_str(a, "contact");
    p.municipal_steering_group = (char *)samctl_str(a, "steering-group");
    const char *team[S_MANY], *aims[S_MANY];
    size_t nt = s_many(a, "team", team), na = s_many(a, "aim", aims);
    if (nt > S_MANY || na > S_MANY) return samctl_usage_error(a, "at most %d of each", S_MANY);
    p.investment_team = (char **)team;
    p.n_investment_team = nt;
    p.aims = (char **)aims;
    p.n_aims = na;
    return samctl_write(ctl, a, &p.base);
}

/*  pilots update ID: the pilot as the registry holds it, with what the options change —
    a new --leader (with --leader-from, the day it took over), --team and --aim (each the
    whole new list), --contact, --steering-group, --challenge — published as pilot.updated. */
static int s_pilot_update(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__GetRequest req = SAMORDNA__V1__GET_REQUEST__INIT;
    req.id = (char *)a->pos[0];
    Samordna__V1__Pilot *p = (Samordna__V1__Pilot *)samctl_call(
        ctl, "registry", "registry.pilots.get", &req.base, &samordna__v1__pilot__descriptor);
    if (!p) return 1;
    Samordna__V1__Pilot upd = *p;
    const char *team[S_MANY], *aims[S_MANY];
    size_t nt = s_many(a, "team", team), na = s_many(a, "aim", aims);
    int rc = 2;
    if (nt > S_MANY || na > S_MANY) {
        samctl_usage_error(a, "at most %d of each", S_MANY);
        goto done;
    }
    if (samctl_opt(a, "leader")) upd.investment_leader = (char *)samctl_str(a, "leader");
    if (samctl_opt(a, "leader-from") && !samctl_opt(a, "leader")) {
        samctl_usage_error(a, "--leader-from is the day a new --leader took over; give both");
        goto done;
    }
    upd.investment_leader_from = (char *)samctl_str(a, "leader-from");
    if (samctl_opt(a, "contact")) upd.contact_person = (char *)samctl_str(a, "contact");
    if (samctl_opt(a, "steering-group"))
        upd.municipal_steering_group = (char *)samctl_str(a, "steering-group");
    if (samctl_opt(a, "challenge")) upd.challenge = (char *)samctl_str(a, "challenge");
    if (nt) upd.investment_team = (char **)team, upd.n_investment_team = nt;
    if (na) upd.aims = (char **)aims, upd.n_aims = na;
    if (samctl_flag(a, "no-team")) upd.n_investment_team = 0;
    upd.n_former_leaders = 0; /* the registry keeps those */
    rc = samctl_write(ctl, a, &upd.base);
done:
    protobuf_c_message_free_unpacked(&p->base, NULL);
    return rc;
}

/* An event of a registry write: the first N arguments its subject; `id` its event id's
   word, deterministic for what creates a record (registering it twice stores it once),
   NULL for a change (a fresh UUID: the same change twice is two changes). */
#define S_WRITES(type, payload, n, id)                                                             \
    (&(const samctl_write_t){"registry", "no.samordna.registry." type,                             \
                             &samordna__v1__##payload##__descriptor, n, id})

/* `history ID` of a registry record (history.c) */
#define S_HISTORY(what, types)                                                                     \
    {                                                                                              \
        .name = "history", .args = "ID",                                                           \
        .about = "Every event of " what ": who published it, when, what it said.",                 \
        .run = samctl_history_run,                                                                 \
        .query = &(const samctl_query_t){.service = "registry", .method = types},                  \
    }
#define S_TYPE "no.samordna.registry."

static const samctl_opt_t s_agency_register_opts[] = {
    {"name", 0, "NAME", SAMCTL_TEXT, SAMCTL_REQUIRED, "its name"},
    {"kind", 0, "KIND", SAMCTL_TEXT, SAMCTL_REQUIRED,
     "county_governor, state_regional, county_municipality, college, police, municipality, other"},
    {"role", 0, "ROLE", SAMCTL_TEXT, SAMCTL_REPEAT,
     "a role in the programme: pilot_owner, pilot_leadership, investment_team, steering_group, "
     "researcher, evaluator"},
    {"unit", 0, "TEXT", SAMCTL_TEXT, 0, "the department taking part, when not the whole agency"},
    {NULL},
};
static const samctl_opt_t s_agency_rename_opts[] = {
    {"name", 0, "NAME", SAMCTL_TEXT, SAMCTL_REQUIRED, "the new name; the old one is kept"},
    {NULL},
};
static const samctl_opt_t s_municipality_register_opts[] = {
    {"name", 0, "NAME", SAMCTL_TEXT, SAMCTL_REQUIRED, "its name"},
    {"population", 0, "N", SAMCTL_COUNT, 0, "its population"},
    {"number", 0, "NUMBER[:FROM[:UNTIL]]", SAMCTL_TEXT, SAMCTL_REPEAT,
     "a municipality number and the days it was valid (3001:2020-01-01)"},
    {"note", 0, "TEXT", SAMCTL_TEXT, 0, "anything more"},
    {NULL},
};
static const samctl_opt_t s_merge_opts[] = {
    {"merged", 0, "MUNICIPALITY", SAMCTL_TEXT, SAMCTL_REQUIRED | SAMCTL_REPEAT,
     "a registered municipality merged into INTO (one each)"},
    {"from", 0, "YYYY-MM-DD", SAMCTL_DATE, SAMCTL_REQUIRED, "the day the merger took effect"},
    {NULL},
};
static const samctl_opt_t s_person_register_opts[] = {
    {"name", 0, "NAME", SAMCTL_TEXT, SAMCTL_REQUIRED, "the person's name"},
    {"email", 0, "ADDRESS", SAMCTL_TEXT, 0, "e-mail"},
    {"phone", 0, "NUMBER", SAMCTL_TEXT, 0, "phone"},
    {"agency", 0, "AGENCY", SAMCTL_TEXT, 0, "the agency the person works for"},
    {NULL},
};
static const samctl_opt_t s_person_assign_opts[] = {
    {"role", 0, "TEXT", SAMCTL_TEXT, SAMCTL_REQUIRED, "the role (\"contact person\", …)"},
    {"agency", 0, "AGENCY", SAMCTL_TEXT, 0, "held in this agency, or"},
    {"pilot", 0, "PILOT", SAMCTL_TEXT, 0, "in this pilot, or"},
    {"programme", 0, "PROGRAMME", SAMCTL_TEXT, 0, "in this programme"},
    {"from", 0, "YYYY-MM-DD", SAMCTL_DATE, 0, "held since"},
    {"until", 0, "YYYY-MM-DD", SAMCTL_DATE, 0, "held until"},
    {NULL},
};
static const samctl_opt_t s_person_erase_opts[] = {
    {"requested", 0, "YYYY-MM-DD", SAMCTL_DATE, SAMCTL_REQUIRED,
     "the day the person asked to be erased"},
    {NULL},
};
static const samctl_opt_t s_invitation_send_opts[] = {
    {"sent", 0, "YYYY-MM-DD", SAMCTL_DATE, 0, "the day it was sent"},
    {"note", 0, "TEXT", SAMCTL_TEXT, 0, "anything more"},
    {NULL},
};
static const samctl_opt_t s_invitation_answer_opts[] = {
    {"answer", 0, "yes|no", SAMCTL_TEXT, SAMCTL_REQUIRED, "the municipality's answer"},
    {"channel", 0, "written|oral", SAMCTL_TEXT, 0, "how it answered"},
    {"answered", 0, "YYYY-MM-DD", SAMCTL_DATE, 0, "the day it answered"},
    {"note", 0, "TEXT", SAMCTL_TEXT, 0, "anything more"},
    {NULL},
};
#define S_PILOT_OPTS(required)                                                                     \
    {"challenge", 0, "TEXT", SAMCTL_TEXT, required, "the tangle the municipality chose"},          \
        {"leader", 0, "AGENCY", SAMCTL_TEXT, required, "the investment leader"},                   \
        {"team",        0,                                                                         \
         "AGENCY",      SAMCTL_TEXT,                                                               \
         SAMCTL_REPEAT, "an agency of the investment team (one each; the whole team)"},            \
        {"contact", 0, "PERSON", SAMCTL_TEXT, 0, "the contact person (a registered person's id)"}, \
        {"steering-group", 0, "TEXT", SAMCTL_TEXT, 0, "the municipal steering group"},             \
    {                                                                                              \
        "aim", 0, "TEXT", SAMCTL_TEXT, SAMCTL_REPEAT, "an aim (one each; all of them)"             \
    }
static const samctl_opt_t s_pilot_register_opts[] = {
    {"programme", 0, "PROGRAMME", SAMCTL_TEXT, SAMCTL_REQUIRED, "the programme"},
    {"municipality", 0, "MUNICIPALITY", SAMCTL_TEXT, SAMCTL_REQUIRED, "its municipality"},
    S_PILOT_OPTS(SAMCTL_REQUIRED),
    {NULL},
};
static const samctl_opt_t s_pilot_update_opts[] = {
    S_PILOT_OPTS(0),
    {"leader-from", 0, "YYYY-MM-DD", SAMCTL_DATE, 0, "the day the new --leader took over"},
    {"no-team", 0, NULL, SAMCTL_TEXT, 0, "the pilot has no investment team any more"},
    {NULL},
};
static const samctl_opt_t s_programme_register_opts[] = {
    {"name", 0, "NAME", SAMCTL_TEXT, SAMCTL_REQUIRED, "its name"},
    {"motto", 0, "TEXT", SAMCTL_TEXT, 0, "its motto"},
    {"owner", 0, "AGENCY", SAMCTL_TEXT, SAMCTL_REQUIRED, "the pilot owner"},
    {"leadership", 0, "AGENCY", SAMCTL_TEXT, SAMCTL_REQUIRED, "the pilot leadership"},
    {"steering-group", 0, "TEXT", SAMCTL_TEXT, 0, "who the steering group is"},
    {"briefing-interval-months", 0, "N", SAMCTL_COUNT, 0,
     "the owner briefs the steering group this often (1 to 24 months)"},
    {"from", 0, "YYYY-MM-DD", SAMCTL_DATE, 0, "the first day of its period"},
    {"to", 0, "YYYY-MM-DD", SAMCTL_DATE, 0, "the last day of its period"},
    {"theme", 0, "TEXT", SAMCTL_TEXT, SAMCTL_REPEAT, "a theme (one each)"},
    {"goal", 0, "TEXT", SAMCTL_TEXT, SAMCTL_REPEAT, "a goal (one each)"},
    {NULL},
};
static const samctl_opt_t s_report_publish_opts[] = {
    {"by", 0, "AGENCY", SAMCTL_TEXT, 0, "the agency that published it (default --source)"},
    {"title", 0, "TEXT", SAMCTL_TEXT, SAMCTL_REQUIRED, "its title"},
    {"series", 0, "TEXT", SAMCTL_TEXT, 0, "the series (\"Oppdragsrapport 2019:2\")"},
    {"published", 0, "YYYY-MM-DD", SAMCTL_DATE, 0, "the day it was published"},
    {"url", 0, "URL", SAMCTL_TEXT, 0, "where it is"},
    {NULL},
};

/* programmes register ID --name --owner --leadership … [--from --to] [--theme …] [--goal …] */
static int s_programme_register(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__Programme pr = SAMORDNA__V1__PROGRAMME__INIT;
    samctl_fill(a, &pr.base);
    Samordna__V1__Period period = SAMORDNA__V1__PERIOD__INIT;
    if (samctl_opt(a, "from") || samctl_opt(a, "to")) {
        period.from = (char *)samctl_str(a, "from");
        period.to = (char *)samctl_str(a, "to");
        pr.period = &period;
    }
    const char *themes[S_MANY], *goals[S_MANY];
    size_t nt = s_many(a, "theme", themes), ng = s_many(a, "goal", goals);
    if (nt > S_MANY || ng > S_MANY) return samctl_usage_error(a, "at most %d of each", S_MANY);
    pr.themes = (char **)themes;
    pr.n_themes = nt;
    pr.goals = (char **)goals;
    pr.n_goals = ng;
    return samctl_write(ctl, a, &pr.base);
}

/* reports publish ID: by --source unless --by. */
static int s_report_publish(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__Report r = SAMORDNA__V1__REPORT__INIT;
    r.by = (char *)ctl->source;
    samctl_fill(a, &r.base);
    return samctl_write(ctl, a, &r.base);
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
        .subs = s_##word##_subs,                                                                   \
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
        {.name = "register",
         .args = "ID",
         .about = "Registers a municipality with its numbers and when each was valid.",
         .opts = s_municipality_register_opts,
         .run = s_municipality_register,
         .writes = S_WRITES("municipality.registered", municipality, 1, "municipality.registered")},
        {.name = "merge",
         .args = "INTO",
         .about = "Merges registered municipalities into INTO (registered first, with its new\n"
                  "number) from a day: each keeps its record and gains INTO as successor.",
         .opts = s_merge_opts,
         .run = s_municipality_merge,
         .writes = S_WRITES("municipality.merged", municipality_merger, 1, "municipality.merged")},
        S_HISTORY("a municipality", S_TYPE "municipality."),
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
    {.name = "register",
     .args = "ID",
     .about = "Registers a pilot of a programme in a municipality.",
     .opts = s_pilot_register_opts,
     .run = s_pilot_register,
     .writes = S_WRITES("pilot.registered", pilot, 1, "pilot.registered")},
    {.name = "update",
     .args = "ID",
     .about = "Changes a pilot: a new investment leader from a day (the one before is kept,\n"
              "with when), the team, the contact person, the steering group, the aims or the\n"
              "challenge. What is not given stays.",
     .opts = s_pilot_update_opts,
     .run = s_pilot_update,
     .writes = S_WRITES("pilot.updated", pilot, 1, NULL)},
    S_HISTORY("a pilot", S_TYPE "pilot."),
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
    .subs = ((const samctl_cmd_t[]){
        {.name = "send",
         .args = "PROGRAMME MUNICIPALITY",
         .about = "Records an invitation to take part in a programme.",
         .opts = s_invitation_send_opts,
         .run = samctl_write_run,
         .writes = S_WRITES("invitation.sent", invitation, 2, "invitation.sent")},
        {.name = "answer",
         .args = "PROGRAMME MUNICIPALITY",
         .about = "Records the municipality's answer: yes or no, written or oral.",
         .opts = s_invitation_answer_opts,
         .run = s_invitation_answer,
         .writes = S_WRITES("invitation.answered", invitation_answer, 2, NULL)},
        S_HISTORY("an invitation (PROGRAMME/MUNICIPALITY)", S_TYPE "invitation."),
        {NULL}}),
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

#define S_SHOW_ROW(word, record, what)                                                             \
    {                                                                                              \
        .name = "show", .args = "ID", .about = what, .run = samctl_query_run,                      \
        .query = S_GET("registry." #word ".get", record, s_##record##_fields, s_##record##_text)   \
    }
static const samctl_cmd_t s_agencies_subs[] = {
    S_SHOW_ROW(agencies, agency, "One agency, with its former names and unit."),
    {.name = "register",
     .args = "ID",
     .about = "Registers an agency: name, kind and its roles in the programme.",
     .opts = s_agency_register_opts,
     .run = s_agency_register,
     .writes = S_WRITES("agency.registered", agency, 1, "agency.registered")},
    {.name = "rename",
     .args = "AGENCY",
     .about = "Renames an agency; the name it had is kept among its former names.",
     .opts = s_agency_rename_opts,
     .run = samctl_write_run,
     .writes = S_WRITES("agency.renamed", agency_rename, 1, NULL)},
    S_HISTORY("an agency", S_TYPE "agency."),
    {NULL},
};
static const samctl_cmd_t s_people_subs[] = {
    S_SHOW_ROW(people, person, "One person: contact details and every role held, with when."),
    {.name = "register",
     .args = "ID",
     .about = "Registers a person (an opaque id such as p-0042, never derived from the name).",
     .opts = s_person_register_opts,
     .run = samctl_write_run,
     .writes = S_WRITES("person.registered", person, 1, "person.registered")},
    {.name = "assign",
     .args = "PERSON",
     .about = "Records a role a person held: in an agency, a pilot or the programme, with when.",
     .opts = s_person_assign_opts,
     .run = s_person_assign,
     .writes = S_WRITES("role.assigned", role_assignment, 1, NULL)},
    {.name = "erase",
     .args = "PERSON",
     .about = "Erases a person on request: the name and contact details leave the registry and\n"
              "the outbox; the fact that roles were held stays.",
     .opts = s_person_erase_opts,
     .run = samctl_write_run,
     .writes = S_WRITES("person.erased", person_erasure, 1, "person.erased")},
    S_HISTORY("a person", S_TYPE "person."
                                 " " S_TYPE "role."),
    {NULL},
};
static const samctl_cmd_t s_programmes_subs[] = {
    S_SHOW_ROW(programmes, programme,
               "One programme: leadership, steering group, themes and goals."),
    {.name = "register",
     .args = "ID",
     .about = "Registers a programme: owner, leadership, steering group, briefing interval,\n"
              "period, themes and goals.",
     .opts = s_programme_register_opts,
     .run = s_programme_register,
     .writes = S_WRITES("programme.registered", programme, 1, "programme.registered")},
    S_HISTORY("a programme", S_TYPE "programme."),
    {NULL},
};
static const samctl_cmd_t s_reports_subs[] = {
    S_SHOW_ROW(reports, report, "One report, with when it was published and where."),
    {.name = "publish",
     .args = "ID",
     .about = "Records a report an agency published.",
     .opts = s_report_publish_opts,
     .run = s_report_publish,
     .writes = S_WRITES("report.published", report, 1, "report.published")},
    S_HISTORY("a report", S_TYPE "report."),
    {NULL},
};

S_TABLES(S_TABLE)
