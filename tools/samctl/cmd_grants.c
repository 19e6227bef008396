/*  cmd_grants.c — samctl's grants commands: `samctl grants SUBCOMMAND …`.

    Reads print tables with amounts the Norwegian way ("1 500 000", decimal comma only when
    there are øre); --json prints exact øre. Writes publish one no.samordna.grants.* event
    each, as the --source agency, with an event id derived from what it creates
    ("award.granted/ps19-halden"), so running the same command twice stores it once.

    Amounts on the command line are NOK: "200000", "200 000", "1234,50" or "1234.50".
*/
#include "samctl.h"

#include "cloudevents/v1/cloudevents.pb-c.h"
#include "samordna/v1/events.pb-c.h"
#include "samordna/v1/grants.pb-c.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *s_usage =
    "grants overview [RECIPIENT] [--year Y] [--by agency|scheme|pilot]\n"
    "       samctl grants ledger verify | ledger accounts [PREFIX]\n"
    "       samctl grants schemes [--owner A] [--year Y] | scheme ID\n"
    "       samctl grants awards [--recipient R] [--year Y] [--scheme S] [--funder A] | award ID\n"
    "       samctl grants deadlines --before DATE [--from DATE]\n"
    "       samctl grants instruments MUNICIPALITY [--year Y]\n"
    "       samctl grants add-scheme ID --name N --owner A --year Y [--frame NOK] [--chapter C]\n"
    "                                   [--item I] [--note T]\n"
    "       samctl grants add-award ID --scheme S --recipient R --amount NOK --purpose P\n"
    "                       [--funder AGENCY=NOK]… [--pilot P] [--report-due DATE] [--decided "
    "DATE]\n"
    "       samctl grants disburse AWARD ID --amount NOK [--final] [--date DATE]\n"
    "       samctl grants repay AWARD ID --amount NOK [--date DATE]\n"
    "       samctl grants cancel AWARD ID [--amount NOK] [--date DATE]\n"
    "       samctl grants add-instrument ID --agency A --municipality M --year Y --kind K --title "
    "T\n"
    "                       [--description D] [--pilot P] [--value NOK]\n"
    "       samctl grants add-need ID --municipality M --year Y --title T [--description D]\n"
    "                       [--pilot P]";

/* ---- money --------------------------------------------------------------------------------- */

/* "200 000", "1234,50" → øre; -1 when not a non-negative amount or it overflows. */
static int s_parse_nok(const char *s, int64_t *out)
{
    int64_t kr = 0, ore = 0;
    int decimals = -1, digits = 0;
    for (const char *p = s; *p; p++) {
        if (*p == ' ' || *p == '_') continue;
        if ((*p == ',' || *p == '.') && decimals < 0) {
            decimals = 0;
            continue;
        }
        if (*p < '0' || *p > '9') return -1;
        if (decimals >= 0) {
            if (++decimals > 2) return -1;
            ore = ore * 10 + (*p - '0');
        } else if (__builtin_mul_overflow(kr, 10, &kr) || __builtin_add_overflow(kr, *p - '0', &kr))
            return -1;
        digits++;
    }
    if (!digits) return -1;
    if (decimals == 1) ore *= 10;
    int64_t v;
    if (__builtin_mul_overflow(kr, 100, &v) || __builtin_add_overflow(v, ore, &v)) return -1;
    *out = v;
    return 0;
}

static const char *s_nok(int64_t ore, char *out, size_t len)
{
    uint64_t v = ore < 0 ? (uint64_t)0 - (uint64_t)ore : (uint64_t)ore;
    char digits[32], grouped[48];
    int nd = snprintf(digits, sizeof digits, "%llu", (unsigned long long)(v / 100));
    size_t gi = 0;
    for (int i = 0; i < nd; i++) {
        if (i > 0 && (nd - i) % 3 == 0) grouped[gi++] = ' ';
        grouped[gi++] = digits[i];
    }
    grouped[gi] = 0;
    int n = v % 100 ? snprintf(out, len, "%s%s,%02llu", ore < 0 ? "-" : "", grouped,
                               (unsigned long long)(v % 100))
                    : snprintf(out, len, "%s%s", ore < 0 ? "-" : "", grouped);
    return n >= 0 && (size_t)n < len ? out : "(too wide)";
}

/* ---- arguments ----------------------------------------------------------------------------- */

typedef struct {
    const char *pos[4];
    int npos;
    const char *opt[24][2]; /* name, value (NULL for flags) */
    int nopt;
} s_args_t;

/* Options with no value. */
static bool s_is_flag(const char *name)
{
    return strcmp(name, "final") == 0;
}

static int s_args(int argc, char **argv, int from, s_args_t *a)
{
    memset(a, 0, sizeof *a);
    for (int i = from; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) == 0) {
            if (a->nopt == 24) return -1;
            const char *name = argv[i] + 2;
            const char *val = NULL;
            if (!s_is_flag(name)) {
                if (i + 1 >= argc) return -1;
                val = argv[++i];
            }
            a->opt[a->nopt][0] = name;
            a->opt[a->nopt][1] = val;
            a->nopt++;
        } else {
            if (a->npos == 4) return -1;
            a->pos[a->npos++] = argv[i];
        }
    }
    return 0;
}

static const char *s_opt(const s_args_t *a, const char *name)
{
    const char *v = NULL;
    for (int i = 0; i < a->nopt; i++)
        if (strcmp(a->opt[i][0], name) == 0) v = a->opt[i][1] ? a->opt[i][1] : "true";
    return v;
}

static const char *s_str(const s_args_t *a, const char *name)
{
    const char *v = s_opt(a, name);
    return v ? v : "";
}

/* Rejects options not in the NULL-terminated list; prints the first unknown. */
static bool s_only(const s_args_t *a, const char *const *known)
{
    for (int i = 0; i < a->nopt; i++) {
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++)
            ok = strcmp(*k, a->opt[i][0]) == 0;
        if (!ok) {
            fprintf(stderr, "samctl grants: unknown option --%s\n", a->opt[i][0]);
            return false;
        }
    }
    return true;
}

static int s_year(const s_args_t *a, uint32_t *year)
{
    const char *v = s_opt(a, "year");
    *year = 0;
    if (!v) return 0;
    char *end;
    long y = strtol(v, &end, 10);
    if (*end || y < 1 || y > 9999) return -1;
    *year = (uint32_t)y;
    return 0;
}

static int s_amount(const s_args_t *a, const char *name, int64_t *ore)
{
    const char *v = s_opt(a, name);
    *ore = 0;
    if (!v) return 0;
    if (s_parse_nok(v, ore) != 0) {
        fprintf(stderr, "samctl grants: --%s: '%s' is not an amount in NOK\n", name, v);
        return -1;
    }
    return 0;
}

/* ---- JSON output ------------------------------------------------------------------------- */

static const char *s_status_name(Samordna__V1__AwardStatus s)
{
    switch (s) {
    case SAMORDNA__V1__AWARD_STATUS__AWARD_STATUS_OPEN:
        return "open";
    case SAMORDNA__V1__AWARD_STATUS__AWARD_STATUS_COMPLETED:
        return "completed";
    case SAMORDNA__V1__AWARD_STATUS__AWARD_STATUS_CANCELLED:
        return "cancelled";
    default:
        return "unknown";
    }
}

static const char *const s_instrument_kinds[] = {"",       "project",  "programme",
                                                 "advice", "position", "other"};

static json_t *s_award_json(const Samordna__V1__Award *a)
{
    json_t *funders = json_array();
    for (size_t i = 0; i < a->n_funders; i++) {
        const Samordna__V1__FunderShare *f = a->funders[i];
        json_array_append_new(funders, json_pack("{s:s,s:I,s:I,s:I,s:I}", "agency", f->agency,
                                                 "amount_ore", (json_int_t)f->amount_ore,
                                                 "paid_ore", (json_int_t)f->paid_ore,
                                                 "cancelled_ore", (json_int_t)f->cancelled_ore,
                                                 "repaid_ore", (json_int_t)f->repaid_ore));
    }
    return json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:i,s:o}", "id", a->id, "scheme",
                     a->scheme, "recipient", a->recipient, "recipient_kind", a->recipient_kind,
                     "amount_ore", (json_int_t)a->amount_ore, "purpose", a->purpose, "pilot",
                     a->pilot, "report_due", a->report_due, "status", s_status_name(a->status),
                     "year", (int)a->year, "funders", funders);
}

static json_t *s_scheme_json(const Samordna__V1__Scheme *s)
{
    json_t *j = json_pack("{s:s,s:s,s:s,s:i,s:s,s:s,s:I,s:I}", "id", s->id, "name", s->name,
                          "owner", s->owner, "year", (int)s->year, "chapter", s->chapter, "item",
                          s->item, "committed_ore", (json_int_t)s->committed_ore, "paid_ore",
                          (json_int_t)s->paid_ore);
    json_object_set_new(j, "frame_ore", s->has_frame ? json_integer(s->frame_ore) : json_null());
    return j;
}

/* ---- reads ------------------------------------------------------------------------------- */

static int s_overview(samctl_t *ctl, const s_args_t *a)
{
    static const char *const known[] = {"year", "by", NULL};
    Samordna__V1__OverviewRequest req = SAMORDNA__V1__OVERVIEW_REQUEST__INIT;
    if (!s_only(a, known) || s_year(a, &req.year) != 0 || a->npos > 2)
        return samctl_usage("grants", s_usage, "overview [RECIPIENT] [--year Y] [--by …]");
    req.recipient = (char *)(a->npos == 2 ? a->pos[1] : "");
    req.group_by = (char *)s_str(a, "by");
    Samordna__V1__Overview *o = (Samordna__V1__Overview *)samctl_call(
        ctl, "grants", "grants.overview", &req.base, &samordna__v1__overview__descriptor);
    if (!o) return 1;
    char c[48], p[48];
    if (ctl->json) {
        json_t *groups = json_array(), *lines = json_array(), *instr = json_array(),
               *needs = json_array();
        for (size_t i = 0; i < o->n_groups; i++)
            json_array_append_new(groups, json_pack("{s:s,s:I,s:I,s:i,s:i}", "key",
                                                    o->groups[i]->key, "committed_ore",
                                                    (json_int_t)o->groups[i]->committed_ore,
                                                    "paid_ore", (json_int_t)o->groups[i]->paid_ore,
                                                    "awards", (int)o->groups[i]->awards,
                                                    "instruments", (int)o->groups[i]->instruments));
        for (size_t i = 0; i < o->n_lines; i++) {
            const Samordna__V1__OverviewLine *l = o->lines[i];
            json_array_append_new(
                lines, json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:I,s:I,s:s,s:b}", "award", l->award,
                                 "scheme", l->scheme, "pilot", l->pilot, "agency", l->agency,
                                 "year", (int)l->year, "purpose", l->purpose, "committed_ore",
                                 (json_int_t)l->committed_ore, "paid_ore", (json_int_t)l->paid_ore,
                                 "status", s_status_name(l->status), "joint", l->joint));
        }
        for (size_t i = 0; i < o->n_instruments; i++) {
            const Samordna__V1__Instrument *in = o->instruments[i];
            json_array_append_new(
                instr,
                json_pack("{s:s,s:s,s:i,s:s,s:s,s:I}", "id", in->id, "agency", in->agency, "year",
                          (int)in->year, "kind", in->kind <= 5 ? s_instrument_kinds[in->kind] : "",
                          "title", in->title, "value_ore", (json_int_t)in->value_ore));
        }
        for (size_t i = 0; i < o->n_needs; i++)
            json_array_append_new(needs,
                                  json_pack("{s:s,s:i,s:s,s:s}", "id", o->needs[i]->id, "year",
                                            (int)o->needs[i]->year, "title", o->needs[i]->title,
                                            "description", o->needs[i]->description));
        samctl_print_json(json_pack("{s:s,s:i,s:s,s:I,s:I,s:o,s:o,s:o,s:o}", "recipient",
                                    o->recipient, "year", (int)o->year, "group_by", o->group_by,
                                    "committed_ore", (json_int_t)o->committed_ore, "paid_ore",
                                    (json_int_t)o->paid_ore, "groups", groups, "lines", lines,
                                    "instruments", instr, "needs", needs));
        protobuf_c_message_free_unpacked(&o->base, NULL);
        return 0;
    }
    if (o->recipient[0])
        printf("What %s received%s%.0u, by %s (NOK)\n\n", o->recipient, o->year ? " in " : "",
               o->year, o->group_by);
    else
        printf("Awards in %u, by recipient (NOK)\n\n", o->year);
    printf("%-28s %15s %15s %7s %6s\n",
           strcmp(o->group_by, "recipient") == 0 ? "RECIPIENT"
           : strcmp(o->group_by, "scheme") == 0  ? "SCHEME"
           : strcmp(o->group_by, "pilot") == 0   ? "PILOT"
                                                 : "AGENCY",
           "COMMITTED", "PAID", "AWARDS", "INSTR");
    for (size_t i = 0; i < o->n_groups; i++) {
        const Samordna__V1__OverviewGroup *g = o->groups[i];
        printf("%-28s %15s %15s %7u %6u\n", g->key[0] ? g->key : "(none)",
               s_nok(g->committed_ore, c, sizeof c), s_nok(g->paid_ore, p, sizeof p), g->awards,
               g->instruments);
        for (size_t j = 0; j < o->n_lines; j++) {
            const Samordna__V1__OverviewLine *l = o->lines[j];
            const char *key = strcmp(o->group_by, "scheme") == 0  ? l->scheme
                              : strcmp(o->group_by, "pilot") == 0 ? l->pilot
                                                                  : l->agency;
            if (strcmp(key, g->key) != 0) continue;
            printf("  award %-20s %15s %15s  %s%s%s\n", l->award,
                   s_nok(l->committed_ore, c, sizeof c), s_nok(l->paid_ore, p, sizeof p), l->scheme,
                   l->joint ? " (joint)" : "",
                   l->status == SAMORDNA__V1__AWARD_STATUS__AWARD_STATUS_OPEN ? "" : " [closed]");
        }
        for (size_t j = 0; j < o->n_instruments; j++) {
            const Samordna__V1__Instrument *in = o->instruments[j];
            const char *key = strcmp(o->group_by, "pilot") == 0    ? in->pilot
                              : strcmp(o->group_by, "agency") == 0 ? in->agency
                                                                   : "";
            if (strcmp(key, g->key) != 0) continue;
            printf("  %-10s %-20s %s\n", in->kind <= 5 ? s_instrument_kinds[in->kind] : "?", in->id,
                   in->title);
        }
    }
    printf("%-28s %15s %15s\n", "TOTAL", s_nok(o->committed_ore, c, sizeof c),
           s_nok(o->paid_ore, p, sizeof p));
    if (o->n_needs) {
        printf("\nMissing, as the municipality sees it:\n");
        for (size_t i = 0; i < o->n_needs; i++)
            printf("  %-20s %u  %s\n", o->needs[i]->id, o->needs[i]->year, o->needs[i]->title);
    }
    protobuf_c_message_free_unpacked(&o->base, NULL);
    return 0;
}

static int s_ledger(samctl_t *ctl, const s_args_t *a)
{
    if (a->npos >= 2 && strcmp(a->pos[1], "verify") == 0 && a->npos == 2) {
        Samordna__V1__LedgerReport *r = (Samordna__V1__LedgerReport *)samctl_call(
            ctl, "grants", "grants.ledger.verify", NULL, &samordna__v1__ledger_report__descriptor);
        if (!r) return 1;
        char d[48], c[48];
        if (ctl->json) {
            json_t *pr = json_array();
            for (size_t i = 0; i < r->n_problems; i++)
                json_array_append_new(pr, json_string(r->problems[i]));
            samctl_print_json(
                json_pack("{s:b,s:I,s:I,s:I,s:I,s:I,s:o}", "balanced", r->balanced, "entries",
                          (json_int_t)r->entries, "postings", (json_int_t)r->postings, "accounts",
                          (json_int_t)r->accounts, "debits_ore", (json_int_t)r->debits_ore,
                          "credits_ore", (json_int_t)r->credits_ore, "problems", pr));
        } else {
            printf("%s: %llu journal entries, %llu postings, %llu accounts; debits NOK %s, "
                   "credits NOK %s\n",
                   r->balanced ? "the books balance" : "THE BOOKS DO NOT BALANCE",
                   (unsigned long long)r->entries, (unsigned long long)r->postings,
                   (unsigned long long)r->accounts, s_nok(r->debits_ore, d, sizeof d),
                   s_nok(r->credits_ore, c, sizeof c));
            for (size_t i = 0; i < r->n_problems; i++)
                printf("  %s\n", r->problems[i]);
        }
        int rc = r->balanced ? 0 : 1;
        protobuf_c_message_free_unpacked(&r->base, NULL);
        return rc;
    }
    if (a->npos >= 2 && strcmp(a->pos[1], "accounts") == 0 && a->npos <= 3) {
        Samordna__V1__AccountsRequest req = SAMORDNA__V1__ACCOUNTS_REQUEST__INIT;
        req.prefix = (char *)(a->npos == 3 ? a->pos[2] : "");
        req.page_size = 1000;
        json_t *arr = ctl->json ? json_array() : NULL;
        for (;;) {
            Samordna__V1__AccountList *l = (Samordna__V1__AccountList *)samctl_call(
                ctl, "grants", "grants.ledger.accounts", &req.base,
                &samordna__v1__account_list__descriptor);
            if (!l) {
                json_decref(arr);
                return 1;
            }
            char b[48];
            for (size_t i = 0; i < l->n_accounts; i++) {
                if (arr)
                    json_array_append_new(arr, json_pack("{s:s,s:I}", "account",
                                                         l->accounts[i]->account, "balance_ore",
                                                         (json_int_t)l->accounts[i]->balance_ore));
                else
                    printf("%-60s %18s\n", l->accounts[i]->account,
                           s_nok(l->accounts[i]->balance_ore, b, sizeof b));
            }
            static char token[256];
            bool more = l->next_page_token[0] != 0;
            snprintf(token, sizeof token, "%s", l->next_page_token);
            protobuf_c_message_free_unpacked(&l->base, NULL);
            if (!more) break;
            req.page_token = token;
        }
        if (arr) samctl_print_json(arr);
        return 0;
    }
    return samctl_usage("grants", s_usage, "ledger verify | ledger accounts [PREFIX]");
}

static int s_schemes(samctl_t *ctl, const s_args_t *a)
{
    static const char *const known[] = {"owner", "year", NULL};
    Samordna__V1__ListSchemesRequest req = SAMORDNA__V1__LIST_SCHEMES_REQUEST__INIT;
    if (!s_only(a, known) || s_year(a, &req.year) != 0 || a->npos != 1)
        return samctl_usage("grants", s_usage, "schemes [--owner A] [--year Y]");
    req.owner = (char *)s_str(a, "owner");
    req.page_size = 1000;
    json_t *arr = ctl->json ? json_array() : NULL;
    char token[80] = "";
    if (!arr)
        printf("%-28s %-14s %4s %15s %15s %15s\n", "SCHEME", "OWNER", "YEAR", "FRAME", "COMMITTED",
               "PAID");
    for (;;) {
        req.page_token = token;
        Samordna__V1__SchemeList *l =
            (Samordna__V1__SchemeList *)samctl_call(ctl, "grants", "grants.schemes.list", &req.base,
                                                    &samordna__v1__scheme_list__descriptor);
        if (!l) {
            json_decref(arr);
            return 1;
        }
        for (size_t i = 0; i < l->n_schemes; i++) {
            const Samordna__V1__Scheme *s = l->schemes[i];
            char f[48], c[48], p[48];
            if (arr)
                json_array_append_new(arr, s_scheme_json(s));
            else
                printf("%-28s %-14s %4u %15s %15s %15s\n", s->id, s->owner, s->year,
                       s->has_frame ? s_nok(s->frame_ore, f, sizeof f) : "(no frame)",
                       s_nok(s->committed_ore, c, sizeof c), s_nok(s->paid_ore, p, sizeof p));
        }
        bool more = l->next_page_token[0] != 0;
        snprintf(token, sizeof token, "%s", l->next_page_token);
        protobuf_c_message_free_unpacked(&l->base, NULL);
        if (!more) break;
    }
    if (arr) samctl_print_json(arr);
    return 0;
}

static int s_scheme_show(samctl_t *ctl, const s_args_t *a)
{
    if (a->npos != 2 || a->nopt) return samctl_usage("grants", s_usage, "scheme ID");
    Samordna__V1__GrantsGetRequest req = SAMORDNA__V1__GRANTS_GET_REQUEST__INIT;
    req.id = (char *)a->pos[1];
    Samordna__V1__Scheme *s = (Samordna__V1__Scheme *)samctl_call(
        ctl, "grants", "grants.schemes.get", &req.base, &samordna__v1__scheme__descriptor);
    if (!s) return 1;
    char f[48], c[48], p[48];
    if (ctl->json)
        samctl_print_json(s_scheme_json(s));
    else
        printf("%s — %s\n  owner %s, year %u, chapter %s item %s\n  frame %s, committed NOK %s, "
               "paid NOK %s\n",
               s->id, s->name, s->owner, s->year, s->chapter[0] ? s->chapter : "-",
               s->item[0] ? s->item : "-",
               s->has_frame ? s_nok(s->frame_ore, f, sizeof f) : "none (unbounded)",
               s_nok(s->committed_ore, c, sizeof c), s_nok(s->paid_ore, p, sizeof p));
    protobuf_c_message_free_unpacked(&s->base, NULL);
    return 0;
}

static int s_awards(samctl_t *ctl, const s_args_t *a)
{
    static const char *const known[] = {"recipient", "year", "scheme", "funder", NULL};
    Samordna__V1__ListAwardsRequest req = SAMORDNA__V1__LIST_AWARDS_REQUEST__INIT;
    if (!s_only(a, known) || s_year(a, &req.year) != 0 || a->npos != 1)
        return samctl_usage("grants", s_usage, "awards [--recipient R] [--year Y] …");
    req.recipient = (char *)s_str(a, "recipient");
    req.scheme = (char *)s_str(a, "scheme");
    req.funder = (char *)s_str(a, "funder");
    req.page_size = 1000;
    json_t *arr = ctl->json ? json_array() : NULL;
    char token[80] = "";
    if (!arr)
        printf("%-24s %-22s %-16s %15s %-10s %s\n", "AWARD", "SCHEME", "RECIPIENT", "AMOUNT",
               "STATUS", "FUNDERS");
    for (;;) {
        req.page_token = token;
        Samordna__V1__AwardList *l = (Samordna__V1__AwardList *)samctl_call(
            ctl, "grants", "grants.awards.list", &req.base, &samordna__v1__award_list__descriptor);
        if (!l) {
            json_decref(arr);
            return 1;
        }
        for (size_t i = 0; i < l->n_awards; i++) {
            const Samordna__V1__Award *aw = l->awards[i];
            char m[48];
            if (arr) {
                json_array_append_new(arr, s_award_json(aw));
                continue;
            }
            printf("%-24s %-22s %-16s %15s %-10s", aw->id, aw->scheme, aw->recipient,
                   s_nok(aw->amount_ore, m, sizeof m), s_status_name(aw->status));
            for (size_t j = 0; j < aw->n_funders; j++)
                printf("%s%s", j ? ", " : " ", aw->funders[j]->agency);
            printf("\n");
        }
        bool more = l->next_page_token[0] != 0;
        snprintf(token, sizeof token, "%s", l->next_page_token);
        protobuf_c_message_free_unpacked(&l->base, NULL);
        if (!more) break;
    }
    if (arr) samctl_print_json(arr);
    return 0;
}

static int s_award_show(samctl_t *ctl, const s_args_t *a)
{
    if (a->npos != 2 || a->nopt) return samctl_usage("grants", s_usage, "award ID");
    Samordna__V1__GrantsGetRequest req = SAMORDNA__V1__GRANTS_GET_REQUEST__INIT;
    req.id = (char *)a->pos[1];
    Samordna__V1__AwardDetail *d = (Samordna__V1__AwardDetail *)samctl_call(
        ctl, "grants", "grants.awards.get", &req.base, &samordna__v1__award_detail__descriptor);
    if (!d) return 1;
    static const char *const kinds[] = {"?", "disbursement", "repayment", "cancellation"};
    const Samordna__V1__Award *aw = d->award;
    if (ctl->json) {
        json_t *j = s_award_json(aw), *pays = json_array();
        for (size_t i = 0; i < d->n_payments; i++) {
            const Samordna__V1__Payment *p = d->payments[i];
            json_array_append_new(pays, json_pack("{s:s,s:s,s:I,s:s,s:b}", "id", p->id, "kind",
                                                  kinds[p->kind <= 3 ? p->kind : 0], "amount_ore",
                                                  (json_int_t)p->amount_ore, "date", p->date,
                                                  "final", p->final));
        }
        json_object_set_new(j, "payments", pays);
        samctl_print_json(j);
    } else if (aw) {
        char m[48], x[48], y[48], z[48];
        printf("%s: NOK %s from %s to %s (%s), %s\n  purpose: %s\n", aw->id,
               s_nok(aw->amount_ore, m, sizeof m), aw->scheme, aw->recipient, aw->recipient_kind,
               s_status_name(aw->status), aw->purpose);
        if (aw->report_due[0]) printf("  report due %s\n", aw->report_due);
        for (size_t i = 0; i < aw->n_funders; i++) {
            const Samordna__V1__FunderShare *f = aw->funders[i];
            printf("  funder %-16s share %12s  paid %12s  cancelled %12s  repaid %12s\n", f->agency,
                   s_nok(f->amount_ore, m, sizeof m), s_nok(f->paid_ore, x, sizeof x),
                   s_nok(f->cancelled_ore, y, sizeof y), s_nok(f->repaid_ore, z, sizeof z));
        }
        for (size_t i = 0; i < d->n_payments; i++) {
            const Samordna__V1__Payment *p = d->payments[i];
            printf("  %-12s %-16s %12s %s%s\n", kinds[p->kind <= 3 ? p->kind : 0], p->id,
                   s_nok(p->amount_ore, m, sizeof m), p->date, p->final ? " final" : "");
        }
    }
    protobuf_c_message_free_unpacked(&d->base, NULL);
    return 0;
}

static int s_deadlines(samctl_t *ctl, const s_args_t *a)
{
    static const char *const known[] = {"before", "from", NULL};
    if (!s_only(a, known) || !s_opt(a, "before") || a->npos != 1)
        return samctl_usage("grants", s_usage, "deadlines --before DATE [--from DATE]");
    Samordna__V1__DeadlinesRequest req = SAMORDNA__V1__DEADLINES_REQUEST__INIT;
    req.before = (char *)s_str(a, "before");
    req.from = (char *)s_str(a, "from");
    req.page_size = 1000;
    json_t *arr = ctl->json ? json_array() : NULL;
    char token[128] = "";
    for (;;) {
        req.page_token = token;
        Samordna__V1__DeadlineList *l = (Samordna__V1__DeadlineList *)samctl_call(
            ctl, "grants", "grants.deadlines", &req.base, &samordna__v1__deadline_list__descriptor);
        if (!l) {
            json_decref(arr);
            return 1;
        }
        for (size_t i = 0; i < l->n_deadlines; i++) {
            const Samordna__V1__Deadline *d = l->deadlines[i];
            if (arr)
                json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s}", "award", d->award,
                                                     "report_due", d->report_due, "recipient",
                                                     d->recipient, "scheme", d->scheme));
            else
                printf("%s  %-24s %-16s %s\n", d->report_due, d->award, d->recipient, d->purpose);
        }
        bool more = l->next_page_token[0] != 0;
        snprintf(token, sizeof token, "%s", l->next_page_token);
        protobuf_c_message_free_unpacked(&l->base, NULL);
        if (!more) break;
    }
    if (arr) samctl_print_json(arr);
    return 0;
}

static int s_instruments(samctl_t *ctl, const s_args_t *a)
{
    static const char *const known[] = {"year", NULL};
    Samordna__V1__ListInstrumentsRequest req = SAMORDNA__V1__LIST_INSTRUMENTS_REQUEST__INIT;
    if (!s_only(a, known) || s_year(a, &req.year) != 0 || a->npos != 2)
        return samctl_usage("grants", s_usage, "instruments MUNICIPALITY [--year Y]");
    req.municipality = (char *)a->pos[1];
    Samordna__V1__InstrumentList *l = (Samordna__V1__InstrumentList *)samctl_call(
        ctl, "grants", "grants.instruments.list", &req.base,
        &samordna__v1__instrument_list__descriptor);
    if (!l) return 1;
    if (ctl->json) {
        json_t *in = json_array(), *nd = json_array();
        for (size_t i = 0; i < l->n_instruments; i++)
            json_array_append_new(
                in,
                json_pack("{s:s,s:s,s:i,s:s,s:s}", "id", l->instruments[i]->id, "agency",
                          l->instruments[i]->agency, "year", (int)l->instruments[i]->year, "kind",
                          l->instruments[i]->kind <= 5 ? s_instrument_kinds[l->instruments[i]->kind]
                                                       : "",
                          "title", l->instruments[i]->title));
        for (size_t i = 0; i < l->n_needs; i++)
            json_array_append_new(nd,
                                  json_pack("{s:s,s:i,s:s}", "id", l->needs[i]->id, "year",
                                            (int)l->needs[i]->year, "title", l->needs[i]->title));
        samctl_print_json(json_pack("{s:o,s:o}", "instruments", in, "needs", nd));
    } else {
        for (size_t i = 0; i < l->n_instruments; i++) {
            const Samordna__V1__Instrument *x = l->instruments[i];
            printf("%-16s %4u %-10s %-20s %s\n", x->agency, x->year,
                   x->kind <= 5 ? s_instrument_kinds[x->kind] : "?", x->id, x->title);
        }
        for (size_t i = 0; i < l->n_needs; i++)
            printf("%-16s %4u %-10s %-20s %s\n", "(missing)", l->needs[i]->year, "need",
                   l->needs[i]->id, l->needs[i]->title);
    }
    protobuf_c_message_free_unpacked(&l->base, NULL);
    return 0;
}

/* ---- writes ------------------------------------------------------------------------------ */

static int s_add_scheme(samctl_t *ctl, const s_args_t *a)
{
    static const char *const known[] = {"name",    "owner", "year", "frame",
                                        "chapter", "item",  "note", NULL};
    Samordna__V1__Scheme s = SAMORDNA__V1__SCHEME__INIT;
    if (!s_only(a, known) || a->npos != 2 || s_year(a, &s.year) != 0 ||
        s_amount(a, "frame", &s.frame_ore) != 0)
        return samctl_usage("grants", s_usage, "add-scheme ID --name N --owner A --year Y …");
    s.id = (char *)a->pos[1];
    s.name = (char *)s_str(a, "name");
    s.owner = (char *)(s_opt(a, "owner") ? s_str(a, "owner") : ctl->source);
    s.has_frame = s_opt(a, "frame") != NULL;
    s.chapter = (char *)s_str(a, "chapter");
    s.item = (char *)s_str(a, "item");
    s.note = (char *)s_str(a, "note");
    s.currency = "NOK";
    char eid[128];
    snprintf(eid, sizeof eid, "scheme.created/%s", s.id);
    return samctl_publish(ctl, "grants", "no.samordna.grants.scheme.created", eid, s.id, &s.base);
}

static int s_award_add(samctl_t *ctl, const s_args_t *a)
{
    static const char *const known[] = {"scheme", "recipient",  "amount",  "purpose", "funder",
                                        "pilot",  "report-due", "decided", NULL};
    Samordna__V1__Award aw = SAMORDNA__V1__AWARD__INIT;
    if (!s_only(a, known) || a->npos != 2 || s_amount(a, "amount", &aw.amount_ore) != 0)
        return samctl_usage("grants", s_usage, "add-award ID --scheme S --recipient R …");
    aw.id = (char *)a->pos[1];
    aw.scheme = (char *)s_str(a, "scheme");
    aw.recipient = (char *)s_str(a, "recipient");
    aw.purpose = (char *)s_str(a, "purpose");
    aw.pilot = (char *)s_str(a, "pilot");
    aw.report_due = (char *)s_str(a, "report-due");
    aw.decided = (char *)s_str(a, "decided");
    aw.currency = "NOK";
    Samordna__V1__FunderShare shares[24], *sp[24];
    char agencies[24][80];
    size_t n = 0;
    for (int i = 0; i < a->nopt; i++) {
        if (strcmp(a->opt[i][0], "funder") != 0) continue;
        const char *eq = strchr(a->opt[i][1], '=');
        samordna__v1__funder_share__init(&shares[n]);
        if (!eq || (size_t)(eq - a->opt[i][1]) >= sizeof agencies[n] ||
            s_parse_nok(eq + 1, &shares[n].amount_ore) != 0)
            return samctl_usage("grants", s_usage, "--funder AGENCY=NOK");
        snprintf(agencies[n], sizeof agencies[n], "%.*s", (int)(eq - a->opt[i][1]), a->opt[i][1]);
        shares[n].agency = agencies[n];
        sp[n] = &shares[n];
        n++;
    }
    if (n == 0) {
        /* One funder, the publishing agency, for the whole amount. */
        samordna__v1__funder_share__init(&shares[0]);
        shares[0].agency = (char *)ctl->source;
        shares[0].amount_ore = aw.amount_ore;
        sp[0] = &shares[0];
        n = 1;
    }
    aw.funders = sp;
    aw.n_funders = n;
    char eid[128];
    snprintf(eid, sizeof eid, "award.granted/%s", aw.id);
    return samctl_publish(ctl, "grants", "no.samordna.grants.award.granted", eid, aw.id, &aw.base);
}

static int s_payment(samctl_t *ctl, const s_args_t *a, const char *type, const char *what)
{
    static const char *const known[] = {"amount", "final", "date", "note", NULL};
    Samordna__V1__Payment p = SAMORDNA__V1__PAYMENT__INIT;
    if (!s_only(a, known) || a->npos != 3 || s_amount(a, "amount", &p.amount_ore) != 0)
        return samctl_usage("grants", s_usage, "disburse|repay|cancel AWARD ID [--amount NOK]");
    p.award = (char *)a->pos[1];
    p.id = (char *)a->pos[2];
    p.final = s_opt(a, "final") != NULL;
    p.date = (char *)s_str(a, "date");
    p.note = (char *)s_str(a, "note");
    p.currency = "NOK";
    char eid[200], subject[160];
    snprintf(eid, sizeof eid, "%s/%s/%s", what, p.award, p.id);
    snprintf(subject, sizeof subject, "%s/%s", p.award, p.id);
    return samctl_publish(ctl, "grants", type, eid, subject, &p.base);
}

static int s_add_instrument(samctl_t *ctl, const s_args_t *a)
{
    static const char *const known[] = {"agency",      "municipality", "year",  "kind", "title",
                                        "description", "pilot",        "value", NULL};
    Samordna__V1__Instrument in = SAMORDNA__V1__INSTRUMENT__INIT;
    if (!s_only(a, known) || a->npos != 2 || s_year(a, &in.year) != 0 ||
        s_amount(a, "value", &in.value_ore) != 0)
        return samctl_usage("grants", s_usage, "add-instrument ID --agency A --municipality M …");
    in.id = (char *)a->pos[1];
    in.agency = (char *)(s_opt(a, "agency") ? s_str(a, "agency") : ctl->source);
    in.municipality = (char *)s_str(a, "municipality");
    in.title = (char *)s_str(a, "title");
    in.description = (char *)s_str(a, "description");
    in.pilot = (char *)s_str(a, "pilot");
    const char *kind = s_str(a, "kind");
    for (int k = 1; k <= 5; k++)
        if (strcmp(kind, s_instrument_kinds[k]) == 0) in.kind = k;
    if (!in.kind)
        return samctl_usage("grants", s_usage,
                            "--kind: project, programme, advice, position or other");
    char eid[128];
    snprintf(eid, sizeof eid, "instrument.registered/%s", in.id);
    return samctl_publish(ctl, "grants", "no.samordna.grants.instrument.registered", eid, in.id,
                          &in.base);
}

static int s_add_need(samctl_t *ctl, const s_args_t *a)
{
    static const char *const known[] = {"municipality", "year",  "title",
                                        "description",  "pilot", NULL};
    Samordna__V1__Need nd = SAMORDNA__V1__NEED__INIT;
    if (!s_only(a, known) || a->npos != 2 || s_year(a, &nd.year) != 0)
        return samctl_usage("grants", s_usage, "add-need ID --municipality M --year Y --title T");
    nd.id = (char *)a->pos[1];
    nd.municipality = (char *)(s_opt(a, "municipality") ? s_str(a, "municipality") : ctl->source);
    nd.title = (char *)s_str(a, "title");
    nd.description = (char *)s_str(a, "description");
    nd.pilot = (char *)s_str(a, "pilot");
    char eid[200];
    snprintf(eid, sizeof eid, "need.recorded/%s/%u/%s", nd.municipality, nd.year, nd.id);
    return samctl_publish(ctl, "grants", "no.samordna.grants.need.recorded", eid, nd.id, &nd.base);
}

/* grants SUBCOMMAND …: see s_usage. */
int samctl_cmd_grants(samctl_t *ctl, int argc, char **argv)
{
    s_args_t a;
    if (argc < 2 || s_args(argc, argv, 1, &a) != 0 || a.npos == 0)
        return samctl_usage("grants", s_usage, argc < 2 ? "name a subcommand" : "bad arguments");
    const char *sub = a.pos[0];
    if (strcmp(sub, "overview") == 0) return s_overview(ctl, &a);
    if (strcmp(sub, "ledger") == 0) return s_ledger(ctl, &a);
    if (strcmp(sub, "schemes") == 0) return s_schemes(ctl, &a);
    if (strcmp(sub, "scheme") == 0) return s_scheme_show(ctl, &a);
    if (strcmp(sub, "awards") == 0) return s_awards(ctl, &a);
    if (strcmp(sub, "award") == 0) return s_award_show(ctl, &a);
    if (strcmp(sub, "deadlines") == 0) return s_deadlines(ctl, &a);
    if (strcmp(sub, "instruments") == 0) return s_instruments(ctl, &a);
    if (strcmp(sub, "add-scheme") == 0) return s_add_scheme(ctl, &a);
    if (strcmp(sub, "add-award") == 0) return s_award_add(ctl, &a);
    if (strcmp(sub, "disburse") == 0)
        return s_payment(ctl, &a, "no.samordna.grants.disbursement.made", "disbursement.made");
    if (strcmp(sub, "repay") == 0)
        return s_payment(ctl, &a, "no.samordna.grants.repayment.received", "repayment.received");
    if (strcmp(sub, "cancel") == 0)
        return s_payment(ctl, &a, "no.samordna.grants.award.cancelled", "award.cancelled");
    if (strcmp(sub, "add-instrument") == 0) return s_add_instrument(ctl, &a);
    if (strcmp(sub, "add-need") == 0) return s_add_need(ctl, &a);
    return samctl_usage("grants", s_usage, "unknown subcommand");
}
