/*  cmd_grants.c — samctl's grants commands: `samctl grants SUBCOMMAND …`.

    Reads print tables with amounts the Norwegian way ("1 500 000", decimal comma only when
    there are øre); --json prints exact øre. Writes publish one no.samordna.grants.* event
    each, as the --source agency, with an event id derived from what it creates
    ("award.granted/ps19-halden"), so running the same command twice stores it once.

    Amounts on the command line are NOK as people paste them: "200000", "200 000" (also with
    a no-break space), "200 000,50", "200000.50", "kr 200 000", "200 000 kr"; the one parser
    (samctl_parse_nok) refuses the rest in one line that says what would be right.
    Lists print as every samctl list does (samctl.h); `instruments` lists a municipality's
    instruments and its needs together, a need with kind "need". The subcommands and their
    options are the table at the bottom.
*/
#include "samctl.h"

#include "cloudevents/v1/cloudevents.pb-c.h"
#include "samordna/v1/events.pb-c.h"
#include "samordna/v1/grants.pb-c.h"
#include "sam_check.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- money --------------------------------------------------------------------------------- */

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

/* ---- JSON output ------------------------------------------------------------------------- */

/* The words of AwardStatus, PaymentKind and InstrumentKind values, by value (SAMCTL_PICK). */
static const char *const s_statuses[] = {NULL, "open", "completed", "cancelled"};
static const char *const s_payment_kinds[] = {NULL, "disbursement", "repayment", "cancellation"};
#define s_status_name(s) SAMCTL_PICK(s_statuses, s, "unknown")

static const char *const s_instrument_kinds[] = {"",       "project",  "programme",
                                                 "advice", "position", "other"};

static json_t *s_award_json(const ProtobufCMessage *rec)
{
    const Samordna__V1__Award *a = (const Samordna__V1__Award *)rec;
    json_t *funders = json_array();
    for (size_t i = 0; i < a->n_funders; i++) {
        const Samordna__V1__FunderShare *f = a->funders[i];
        json_array_append_new(funders, json_pack("{s:s,s:I,s:I,s:I,s:I}", "agency", f->agency,
                                                 "amount_ore", (json_int_t)f->amount_ore,
                                                 "paid_ore", (json_int_t)f->paid_ore,
                                                 "cancelled_ore", (json_int_t)f->cancelled_ore,
                                                 "repaid_ore", (json_int_t)f->repaid_ore));
    }
    return json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:i,s:o}", "id", a->id, "scheme",
                     a->scheme, "recipient", a->recipient, "recipient_kind", a->recipient_kind,
                     "amount_ore", (json_int_t)a->amount_ore, "purpose", a->purpose, "pilot",
                     a->pilot, "report_due", a->report_due, "decided", a->decided, "status",
                     s_status_name(a->status), "year", (int)a->year, "funders", funders);
}

static json_t *s_scheme_json(const ProtobufCMessage *rec)
{
    const Samordna__V1__Scheme *s = (const Samordna__V1__Scheme *)rec;
    json_t *j = json_pack("{s:s,s:s,s:s,s:i,s:s,s:s,s:I,s:I}", "id", s->id, "name", s->name,
                          "owner", s->owner, "year", (int)s->year, "chapter", s->chapter, "item",
                          s->item, "committed_ore", (json_int_t)s->committed_ore, "paid_ore",
                          (json_int_t)s->paid_ore);
    json_object_set_new(j, "note", json_string(s->note));
    json_object_set_new(j, "frame_ore", s->has_frame ? json_integer(s->frame_ore) : json_null());
    return j;
}

/* ---- reads ------------------------------------------------------------------------------- */

static int s_overview(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__OverviewRequest req = SAMORDNA__V1__OVERVIEW_REQUEST__INIT;
    samctl_fill(a, &req.base);
    req.group_by = (char *)samctl_str(a, "by");
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
                lines, json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:I,s:I,s:s,s:b}", "award", l->award,
                                 "recipient", l->recipient, "scheme", l->scheme, "pilot", l->pilot,
                                 "agency", l->agency, "year", (int)l->year, "purpose", l->purpose,
                                 "committed_ore", (json_int_t)l->committed_ore, "paid_ore",
                                 (json_int_t)l->paid_ore, "status", s_status_name(l->status),
                                 "joint", l->joint));
        }
        for (size_t i = 0; i < o->n_instruments; i++) {
            const Samordna__V1__Instrument *in = o->instruments[i];
            json_array_append_new(instr,
                                  json_pack("{s:s,s:s,s:i,s:s,s:s,s:I}", "id", in->id, "agency",
                                            in->agency, "year", (int)in->year, "kind",
                                            SAMCTL_PICK(s_instrument_kinds, in->kind, ""), "title",
                                            in->title, "value_ore", (json_int_t)in->value_ore));
        }
        for (size_t i = 0; i < o->n_needs; i++)
            json_array_append_new(needs,
                                  json_pack("{s:s,s:i,s:s,s:s}", "id", o->needs[i]->id, "year",
                                            (int)o->needs[i]->year, "title", o->needs[i]->title,
                                            "description", o->needs[i]->description));
        samctl_print(ctl, json_pack("{s:s,s:i,s:s,s:I,s:I,s:o,s:o,s:o,s:o}", "recipient",
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
            bool before = strcmp(l->recipient, o->recipient) != 0; /* to a predecessor */
            printf("  award %-20s %15s %15s  %s%s%s%s%s%s\n", l->award,
                   s_nok(l->committed_ore, c, sizeof c), s_nok(l->paid_ore, p, sizeof p), l->scheme,
                   l->joint ? " (joint)" : "",
                   l->status == SAMORDNA__V1__AWARD_STATUS__AWARD_STATUS_OPEN ? "" : " [closed]",
                   before ? " (to " : "", before ? l->recipient : "", before ? ")" : "");
        }
        for (size_t j = 0; j < o->n_instruments; j++) {
            const Samordna__V1__Instrument *in = o->instruments[j];
            const char *key = strcmp(o->group_by, "pilot") == 0    ? in->pilot
                              : strcmp(o->group_by, "agency") == 0 ? in->agency
                                                                   : "";
            if (strcmp(key, g->key) != 0) continue;
            printf("  %-10s %-20s %15s  %s\n", SAMCTL_PICK(s_instrument_kinds, in->kind, "?"),
                   in->id, in->value_ore ? s_nok(in->value_ore, c, sizeof c) : "-", in->title);
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

static int s_ledger_verify(samctl_t *ctl, const samctl_args_t *a)
{
    (void)a;
    Samordna__V1__LedgerReport *r = (Samordna__V1__LedgerReport *)samctl_call(
        ctl, "grants", "grants.ledger.verify", NULL, &samordna__v1__ledger_report__descriptor);
    if (!r) return 1;
    char d[48], c[48];
    if (ctl->json) {
        json_t *pr = json_array();
        for (size_t i = 0; i < r->n_problems; i++)
            json_array_append_new(pr, json_string(r->problems[i]));
        samctl_print_json(json_pack("{s:b,s:I,s:I,s:I,s:I,s:I,s:o}", "balanced", r->balanced,
                                    "entries", (json_int_t)r->entries, "postings",
                                    (json_int_t)r->postings, "accounts", (json_int_t)r->accounts,
                                    "debits_ore", (json_int_t)r->debits_ore, "credits_ore",
                                    (json_int_t)r->credits_ore, "problems", pr));
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

static json_t *s_account_json(const ProtobufCMessage *rec)
{
    const Samordna__V1__AccountBalance *b = (const Samordna__V1__AccountBalance *)rec;
    return json_pack("{s:s,s:I}", "account", b->account, "balance_ore", (json_int_t)b->balance_ore);
}

static void s_account_row(const ProtobufCMessage *rec)
{
    const Samordna__V1__AccountBalance *b = (const Samordna__V1__AccountBalance *)rec;
    char n[48];
    printf("%-60s %18s\n", b->account, s_nok(b->balance_ore, n, sizeof n));
}

static void s_scheme_row(const ProtobufCMessage *rec)
{
    const Samordna__V1__Scheme *sc = (const Samordna__V1__Scheme *)rec;
    char f[48], c[48], p[48];
    printf("%-28s %-14s %4u %15s %15s %15s\n", sc->id, sc->owner, sc->year,
           sc->has_frame ? s_nok(sc->frame_ore, f, sizeof f) : "(no frame)",
           s_nok(sc->committed_ore, c, sizeof c), s_nok(sc->paid_ore, p, sizeof p));
}

static void s_scheme_text(const ProtobufCMessage *rec)
{
    const Samordna__V1__Scheme *sc = (const Samordna__V1__Scheme *)rec;
    char f[48], c[48], p[48];
    printf("%s — %s\n  owner %s, year %u, chapter %s item %s\n  frame %s, committed NOK %s, "
           "paid NOK %s\n",
           sc->id, sc->name, sc->owner, sc->year, sc->chapter[0] ? sc->chapter : "-",
           sc->item[0] ? sc->item : "-",
           sc->has_frame ? s_nok(sc->frame_ore, f, sizeof f) : "none (unbounded)",
           s_nok(sc->committed_ore, c, sizeof c), s_nok(sc->paid_ore, p, sizeof p));
    if (sc->note[0]) printf("  note: %s\n", sc->note);
}

static void s_award_row(const ProtobufCMessage *rec)
{
    const Samordna__V1__Award *aw = (const Samordna__V1__Award *)rec;
    char m[48];
    printf("%-24s %-22s %-16s %15s %-10s", aw->id, aw->scheme, aw->recipient,
           s_nok(aw->amount_ore, m, sizeof m), s_status_name(aw->status));
    for (size_t j = 0; j < aw->n_funders; j++)
        printf("%s%s", j ? ", " : " ", aw->funders[j]->agency);
    printf("\n");
}

static int s_award_show(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__GrantsGetRequest req = SAMORDNA__V1__GRANTS_GET_REQUEST__INIT;
    samctl_fill(a, &req.base);
    Samordna__V1__AwardDetail *d = (Samordna__V1__AwardDetail *)samctl_call(
        ctl, "grants", "grants.awards.get", &req.base, &samordna__v1__award_detail__descriptor);
    if (!d) return 1;
    const Samordna__V1__Award *aw = d->award;
    if (!aw) {
        fprintf(stderr, "samctl grants award: the answer holds no award\n");
        protobuf_c_message_free_unpacked(&d->base, NULL);
        return 1;
    }
    if (ctl->json) {
        json_t *j = s_award_json(&aw->base), *pays = json_array();
        for (size_t i = 0; i < d->n_payments; i++) {
            const Samordna__V1__Payment *p = d->payments[i];
            json_t *split = json_array();
            for (size_t k = 0; k < p->n_split; k++)
                json_array_append_new(split,
                                      json_pack("{s:s,s:I}", "agency", p->split[k]->agency,
                                                "amount_ore", (json_int_t)p->split[k]->amount_ore));
            json_array_append_new(
                pays, json_pack("{s:s,s:s,s:I,s:s,s:b,s:s,s:o,s:s,s:s}", "id", p->id, "kind",
                                SAMCTL_PICK(s_payment_kinds, p->kind, "?"), "amount_ore",
                                (json_int_t)p->amount_ore, "date", p->date, "final", p->final,
                                "note", p->note, "split", split, "corrects", p->corrects,
                                "corrected_by", p->corrected_by));
        }
        json_object_set_new(j, "payments", pays);
        samctl_print_json(j);
    } else {
        char m[48], x[48], y[48], z[48];
        printf("%s: NOK %s from %s to %s (%s), %s\n  purpose: %s\n", aw->id,
               s_nok(aw->amount_ore, m, sizeof m), aw->scheme, aw->recipient, aw->recipient_kind,
               s_status_name(aw->status), aw->purpose);
        if (aw->pilot[0]) printf("  pilot %s\n", aw->pilot);
        if (aw->decided[0]) printf("  decided %s\n", aw->decided);
        if (aw->report_due[0]) printf("  report due %s\n", aw->report_due);
        for (size_t i = 0; i < aw->n_funders; i++) {
            const Samordna__V1__FunderShare *f = aw->funders[i];
            printf("  funder %-16s share %12s  paid %12s  cancelled %12s  repaid %12s\n", f->agency,
                   s_nok(f->amount_ore, m, sizeof m), s_nok(f->paid_ore, x, sizeof x),
                   s_nok(f->cancelled_ore, y, sizeof y), s_nok(f->repaid_ore, z, sizeof z));
        }
        for (size_t i = 0; i < d->n_payments; i++) {
            const Samordna__V1__Payment *p = d->payments[i];
            printf("  %-12s %-16s %12s %s%s%s%s%s%s%s%s\n",
                   SAMCTL_PICK(s_payment_kinds, p->kind, "?"), p->id,
                   s_nok(p->amount_ore, m, sizeof m), p->date, p->final ? " final" : "",
                   p->note[0] ? "  " : "", p->note, p->corrects[0] ? " (corrects " : "",
                   p->corrects, p->corrects[0] ? ")" : "",
                   p->corrected_by[0] ? " (taken back by a correction)" : "");
        }
    }
    protobuf_c_message_free_unpacked(&d->base, NULL);
    return 0;
}

static json_t *s_deadline_json(const ProtobufCMessage *rec)
{
    const Samordna__V1__Deadline *d = (const Samordna__V1__Deadline *)rec;
    return json_pack("{s:s,s:s,s:s,s:s,s:s}", "award", d->award, "report_due", d->report_due,
                     "recipient", d->recipient, "scheme", d->scheme, "purpose", d->purpose);
}

static void s_deadline_row(const ProtobufCMessage *rec)
{
    const Samordna__V1__Deadline *d = (const Samordna__V1__Deadline *)rec;
    printf("%-10s  %-24s %-16s %s\n", d->report_due, d->award, d->recipient, d->purpose);
}

/* A municipality's instruments and, in the same list as kind "need", what it says is missing. */
static int s_instruments(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__ListInstrumentsRequest req = SAMORDNA__V1__LIST_INSTRUMENTS_REQUEST__INIT;
    samctl_fill(a, &req.base);
    Samordna__V1__InstrumentList *l = (Samordna__V1__InstrumentList *)samctl_call(
        ctl, "grants", "grants.instruments.list", &req.base,
        &samordna__v1__instrument_list__descriptor);
    if (!l) return 1;
    samctl_list_t list;
    char header[128];
    snprintf(header, sizeof header, "%-16s %4s %-10s %-20s %12s  %s", "AGENCY", "YEAR", "KIND",
             "ID", "VALUE (NOK)", "TITLE");
    samctl_list_begin(&list, ctl, "instruments or needs", header);
    for (size_t i = 0; i < l->n_instruments; i++) {
        const Samordna__V1__Instrument *x = l->instruments[i];
        const char *kind = SAMCTL_PICK(s_instrument_kinds, x->kind, "?");
        if (samctl_list_row(
                &list, ctl->json ? json_pack("{s:s,s:s,s:s,s:i,s:s,s:s,s:s,s:s,s:I}", "id", x->id,
                                             "agency", x->agency, "municipality", x->municipality,
                                             "year", (int)x->year, "kind", kind, "title", x->title,
                                             "description", x->description, "pilot", x->pilot,
                                             "value_ore", (json_int_t)x->value_ore)
                                 : NULL)) {
            char v[48];
            printf("%-16s %4u %-10s %-20s %12s  %s\n", x->agency, x->year, kind, x->id,
                   x->value_ore ? s_nok(x->value_ore, v, sizeof v) : "-", x->title);
            if (x->description[0]) printf("%*s%s\n", 70, "", x->description);
        }
    }
    for (size_t i = 0; i < l->n_needs; i++) {
        const Samordna__V1__Need *n = l->needs[i];
        if (samctl_list_row(&list,
                            ctl->json ? json_pack("{s:s,s:n,s:s,s:i,s:s,s:s,s:s,s:s}", "id", n->id,
                                                  "agency", "municipality", n->municipality, "year",
                                                  (int)n->year, "kind", "need", "title", n->title,
                                                  "description", n->description, "pilot", n->pilot)
                                      : NULL)) {
            printf("%-16s %4u %-10s %-20s %12s  %s\n", "(missing)", n->year, "need", n->id, "-",
                   n->title);
            if (n->description[0]) printf("%*s%s\n", 70, "", n->description);
        }
    }
    samctl_list_end(&list, NULL);
    protobuf_c_message_free_unpacked(&l->base, NULL);
    return 0;
}

/* ---- writes ------------------------------------------------------------------------------ */

static int s_add_scheme(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__Scheme sc = SAMORDNA__V1__SCHEME__INIT;
    sc.frame_ore = samctl_amount(a, "frame");
    sc.owner = (char *)ctl->source; /* unless --owner */
    samctl_fill(a, &sc.base);
    sc.has_frame = samctl_opt(a, "frame") != NULL;
    sc.currency = "NOK";
    return samctl_write(ctl, a, &sc.base);
}

#define S_MAX_FUNDERS 24

/* The --funder AGENCY=NOK options of a command, parsed into shares (their agencies kept in
   agencies). Returns how many, or -2 after printing what was wrong (the exit code). */
static int s_funders(const samctl_args_t *a, Samordna__V1__FunderShare *shares,
                     Samordna__V1__FunderShare **sp, char (*agencies)[80])
{
    const char *given[S_MAX_FUNDERS];
    size_t n = samctl_opt_all(a, "funder", given, S_MAX_FUNDERS);
    if (n > S_MAX_FUNDERS) return samctl_usage_error(a, "at most %d --funder", S_MAX_FUNDERS), -2;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(given[i], '=');
        samordna__v1__funder_share__init(&shares[i]);
        char shown[64], why[128] = "";
        if (!eq || eq == given[i] || (size_t)(eq - given[i]) >= sizeof agencies[i] ||
            samctl_parse_nok(eq + 1, &shares[i].amount_ore, why, sizeof why) != 0)
            return samctl_value_error(a,
                                      "--funder: '%s'%s%s; write AGENCY=NOK, e.g. imdi-ost=500000 "
                                      "or \"imdi-ost=500 000\"",
                                      sam_check_escape(given[i], 40, shown, sizeof shown),
                                      why[0] ? ": " : "", why),
                   -2;
        snprintf(agencies[i], sizeof agencies[i], "%.*s", (int)(eq - given[i]), given[i]);
        shares[i].agency = agencies[i];
        sp[i] = &shares[i];
    }
    return (int)n;
}

static int s_award_add(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__Award aw = SAMORDNA__V1__AWARD__INIT;
    aw.amount_ore = samctl_amount(a, "amount");
    samctl_fill(a, &aw.base);
    aw.currency = "NOK";
    Samordna__V1__FunderShare shares[S_MAX_FUNDERS], *sp[S_MAX_FUNDERS];
    char agencies[S_MAX_FUNDERS][80];
    int n = s_funders(a, shares, sp, agencies);
    if (n < 0) return 2;
    if (n == 0) {
        /* One funder, the publishing agency, for the whole amount. */
        samordna__v1__funder_share__init(&shares[0]);
        shares[0].agency = (char *)ctl->source;
        shares[0].amount_ore = aw.amount_ore;
        sp[0] = &shares[0];
        n = 1;
    }
    aw.funders = sp;
    aw.n_funders = (size_t)n;
    return samctl_write(ctl, a, &aw.base);
}

/* amend AWARD: the award's new values, each option one; the reason is required. */
static int s_award_amend(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__AwardAmendment am = SAMORDNA__V1__AWARD_AMENDMENT__INIT;
    am.amount_ore = samctl_amount(a, "amount");
    samctl_fill(a, &am.base);
    Samordna__V1__FunderShare shares[S_MAX_FUNDERS], *sp[S_MAX_FUNDERS];
    char agencies[S_MAX_FUNDERS][80];
    int n = s_funders(a, shares, sp, agencies);
    if (n < 0) return 2;
    am.funders = sp;
    am.n_funders = (size_t)n;
    return samctl_write(ctl, a, &am.base);
}

/* disburse, repay and cancel: one payment of a kind, the event type and id word by command. */
/* disburse, repay and cancel: one payment, of the event type their rows name. */
static int s_payment(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__Payment p = SAMORDNA__V1__PAYMENT__INIT;
    p.amount_ore = samctl_amount(a, "amount");
    samctl_fill(a, &p.base);
    p.currency = "NOK";
    return samctl_write(ctl, a, &p.base);
}

/* correct-disbursement AWARD ID --corrects PAYMENT --amount NOK [--date] --reason */
static int s_payment_correct(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__PaymentCorrection pc = SAMORDNA__V1__PAYMENT_CORRECTION__INIT;
    pc.amount_ore = samctl_amount(a, "amount");
    samctl_fill(a, &pc.base);
    return samctl_write(ctl, a, &pc.base);
}

static int s_add_instrument(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__Instrument in = SAMORDNA__V1__INSTRUMENT__INIT;
    in.value_ore = samctl_amount(a, "value");
    const char *kind = samctl_str(a, "kind");
    for (int k = 1; k <= 5; k++)
        if (strcmp(kind, s_instrument_kinds[k]) == 0) in.kind = k;
    if (!in.kind) {
        char shown[64];
        return samctl_value_error(a,
                                  "--kind: '%s' is not an instrument kind; the kinds are project, "
                                  "programme, advice, position and other",
                                  sam_check_escape(kind, 40, shown, sizeof shown));
    }
    in.agency = (char *)ctl->source; /* unless --agency */
    samctl_fill(a, &in.base);
    return samctl_write(ctl, a, &in.base);
}

static int s_add_need(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__Need nd = SAMORDNA__V1__NEED__INIT;
    nd.municipality = (char *)ctl->source; /* unless --municipality */
    samctl_fill(a, &nd.base);
    /* A need is one a municipality has in a year: that is in its event id. */
    const samctl_write_t *w = a->cmd->writes;
    char eid[200];
    snprintf(eid, sizeof eid, "need.recorded/%s/%u/%s", nd.municipality, nd.year, nd.id);
    return samctl_publish(ctl, w->service, w->type, eid, nd.id, &nd.base);
}

/* ---- the table ----------------------------------------------------------------------------- */

/* A list (samctl_list_query): every page of a grants query, 1000 records a page. */
#define S_LISTS(method, request, reply, items, noun, columns, titles, json, row)                   \
    (&(const samctl_query_t){"grants", method, &samordna__v1__##request##__descriptor,             \
                             &samordna__v1__##reply##__descriptor, items, noun, columns, titles,   \
                             json, row, true, 1000, NULL, NULL})

/* What a write publishes (samctl_write): the subject is the first N arguments, the event id
   the type's last words and the subject ("award.granted/ps19-halden"), so the same command
   twice stores the event once. */
#define S_WRITES(what, payload, n)                                                                 \
    (&(const samctl_write_t){"grants", "no.samordna.grants." what,                                 \
                             &samordna__v1__##payload##__descriptor, n, what})

#define S_YEAR(what)                                                                               \
    {                                                                                              \
        "year", 0, "YEAR", SAMCTL_YEAR, 0, what                                                    \
    }
#define S_DATE(name, what)                                                                         \
    {                                                                                              \
        name, 0, "YYYY-MM-DD", SAMCTL_TEXT, 0, what                                                \
    }

static const samctl_opt_t s_overview_opts[] = {
    S_YEAR("only awards and instruments of that year (required without RECIPIENT)"),
    {"by", 0, "agency|scheme|pilot", SAMCTL_TEXT, 0,
     "how a recipient's lines are grouped (default agency)"},
    {NULL},
};
static const samctl_opt_t s_schemes_opts[] = {
    {"owner", 0, "AGENCY", SAMCTL_TEXT, 0, "only this agency's schemes"},
    S_YEAR("only schemes of that year"),
    {NULL},
};
static const samctl_opt_t s_awards_opts[] = {
    {"recipient", 0, "RECIPIENT", SAMCTL_TEXT, 0, "only awards to this municipality or agency"},
    S_YEAR("only awards of that year"),
    {"scheme", 0, "SCHEME", SAMCTL_TEXT, 0, "only awards of this scheme"},
    {"funder", 0, "AGENCY", SAMCTL_TEXT, 0, "only awards this agency pays a share of"},
    {NULL},
};
static const samctl_opt_t s_deadlines_opts[] = {
    {"before", 0, "YYYY-MM-DD", SAMCTL_DATE, SAMCTL_REQUIRED, "reports due before that day"},
    {"from", 0, "YYYY-MM-DD", SAMCTL_DATE, 0, "and on that day or later"},
    {NULL},
};
static const samctl_opt_t s_instruments_opts[] = {
    S_YEAR("only that year's"),
    {NULL},
};
static const samctl_opt_t s_add_scheme_opts[] = {
    {"name", 0, "NAME", SAMCTL_TEXT, 0, "the scheme's name"},
    {"owner", 0, "AGENCY", SAMCTL_TEXT, 0, "the agency that runs it (default --source)"},
    S_YEAR("the budget year"),
    {"frame", 0, "NOK", SAMCTL_AMOUNT, 0, "the most it may commit; without: unbounded"},
    {"chapter", 0, "CHAPTER", SAMCTL_TEXT, 0, "the state budget chapter"},
    {"item", 0, "ITEM", SAMCTL_TEXT, 0, "the state budget item (post)"},
    {"note", 0, "TEXT", SAMCTL_TEXT, 0, "anything more"},
    {NULL},
};
static const samctl_opt_t s_add_award_opts[] = {
    {"scheme", 0, "SCHEME", SAMCTL_TEXT, 0, "the scheme that pays it"},
    {"recipient", 0, "RECIPIENT", SAMCTL_TEXT, 0, "the municipality or agency that gets it"},
    {"amount", 0, "NOK", SAMCTL_AMOUNT, 0,
     "how much: 200000, \"200 000\", \"200 000,50\", \"kr 200 000\""},
    {"purpose", 0, "TEXT", SAMCTL_TEXT, 0, "what it is for"},
    {"funder", 0, "AGENCY=NOK", SAMCTL_TEXT, SAMCTL_REPEAT,
     "an agency's share of a joint award (default: --source pays all)"},
    {"pilot", 0, "PILOT", SAMCTL_TEXT, 0, "the pilot it belongs to"},
    S_DATE("report-due", "when the recipient's report is due"),
    S_DATE("decided", "the day of the decision"),
    {NULL},
};
static const samctl_opt_t s_amend_opts[] = {
    {"amount", 0, "NOK", SAMCTL_AMOUNT, 0, "the award's new amount (within the scheme's frame)"},
    {"funder", 0, "AGENCY=NOK", SAMCTL_TEXT, SAMCTL_REPEAT,
     "a funder's new share; a joint award names every funder (a single one follows --amount)"},
    {"purpose", 0, "TEXT", SAMCTL_TEXT, 0, "what it is for"},
    S_DATE("report-due", "when the recipient's report is due"),
    S_DATE("decided", "the day of the decision"),
    {"reason", 0, "TEXT", SAMCTL_TEXT, SAMCTL_REQUIRED, "why: kept with the correction"},
    {NULL},
};
static const samctl_opt_t s_payment_opts[] = {
    {"amount", 0, "NOK", SAMCTL_AMOUNT, 0, "how much (cancel: without, the whole rest)"},
    {"final", 0, NULL, SAMCTL_TEXT, 0, "the last payment: the award is completed"},
    S_DATE("date", "the day of the payment"),
    {"note", 0, "TEXT", SAMCTL_TEXT, 0, "anything more"},
    {NULL},
};
static const samctl_opt_t s_correct_payment_opts[] = {
    {"corrects", 0, "PAYMENT", SAMCTL_TEXT, SAMCTL_REQUIRED, "the disbursement paid wrong"},
    {"amount", 0, "NOK", SAMCTL_AMOUNT, SAMCTL_REQUIRED,
     "the right amount (0: nothing should have been paid)"},
    S_DATE("date", "the right day (default: the original's)"),
    {"reason", 0, "TEXT", SAMCTL_TEXT, SAMCTL_REQUIRED, "why: kept with the correction"},
    {NULL},
};
static const samctl_opt_t s_add_instrument_opts[] = {
    {"agency", 0, "AGENCY", SAMCTL_TEXT, 0, "the agency that offers it (default --source)"},
    {"municipality", 0, "MUNICIPALITY", SAMCTL_TEXT, 0, "the municipality it is for"},
    S_YEAR("the year"),
    {"kind", 0, "KIND", SAMCTL_TEXT, SAMCTL_REQUIRED,
     "project, programme, advice, position or other"},
    {"title", 0, "TEXT", SAMCTL_TEXT, 0, "what it is"},
    {"description", 0, "TEXT", SAMCTL_TEXT, 0, "more about it"},
    {"pilot", 0, "PILOT", SAMCTL_TEXT, 0, "the pilot it belongs to"},
    {"value", 0, "NOK", SAMCTL_AMOUNT, 0, "what it is worth, when money"},
    {NULL},
};
static const samctl_opt_t s_add_need_opts[] = {
    {"municipality", 0, "MUNICIPALITY", SAMCTL_TEXT, 0,
     "the municipality that misses it (default --source)"},
    S_YEAR("the year"),
    {"title", 0, "TEXT", SAMCTL_TEXT, 0, "what is missing"},
    {"description", 0, "TEXT", SAMCTL_TEXT, 0, "more about it"},
    {"pilot", 0, "PILOT", SAMCTL_TEXT, 0, "the pilot it belongs to"},
    {NULL},
};

static const samctl_cmd_t s_ledger_subs[] = {
    {.name = "verify",
     .about = "Recomputes the books from the journal: whether they balance.\n"
              "Also up to 100 problems; exits 1 when the books do not balance.",
     .run = s_ledger_verify},
    {.name = "accounts",
     .args = "[PREFIX]",
     .about = "The balances of the ledger's accounts (budget/, committed/ps19-halden/, …).",
     .run = samctl_query_run,
     .query =
         S_LISTS("grants.ledger.accounts", accounts_request, account_list, "accounts", "accounts",
                 "%-60s %18s", "ACCOUNT|BALANCE (NOK)", s_account_json, s_account_row)},
    {NULL},
};

static const samctl_cmd_t s_grants_subs[] = {
    {.name = "overview",
     .args = "[RECIPIENT]",
     .about = "What a recipient received, or every recipient's totals for a year.\n"
              "RECIPIENT's awards and instruments grouped by agency, scheme or pilot, with those\n"
              "of the municipalities merged into it; without RECIPIENT, every recipient's totals\n"
              "for --year. An unknown RECIPIENT exits 1. --json: one object, amounts in øre;\n"
              "--csv: the groups, amounts in NOK with a decimal comma.",
     .opts = s_overview_opts,
     .run = s_overview},
    {.name = "ledger",
     .about = "The double-entry ledger behind the awards: verify it, or list account balances.",
     .subs = s_ledger_subs},
    {.name = "schemes",
     .about = "Grant schemes: frame, committed and paid.",
     .opts = s_schemes_opts,
     .run = samctl_query_run,
     .query = S_LISTS("grants.schemes.list", list_schemes_request, scheme_list, "schemes",
                      "schemes", "%-28s %-14s %4s %15s %15s %15s",
                      "SCHEME|OWNER|YEAR|FRAME|COMMITTED|PAID", s_scheme_json, s_scheme_row)},
    {.name = "scheme",
     .args = "ID",
     .about = "One scheme.",
     .run = samctl_query_run,
     .query = &(const samctl_query_t){"grants", "grants.schemes.get",
                                      &samordna__v1__grants_get_request__descriptor,
                                      &samordna__v1__scheme__descriptor, NULL, NULL, NULL, NULL,
                                      s_scheme_json, s_scheme_text, false, 0, NULL, NULL}},
    {.name = "awards",
     .about = "Awards: scheme, recipient, amount, status and funders.",
     .opts = s_awards_opts,
     .run = samctl_query_run,
     .query = S_LISTS("grants.awards.list", list_awards_request, award_list, "awards", "awards",
                      "%-24s %-22s %-16s %15s %-10s %s",
                      "AWARD|SCHEME|RECIPIENT|AMOUNT|STATUS|FUNDERS", s_award_json, s_award_row)},
    {.name = "award",
     .args = "ID",
     .about = "One award: the funders' shares and every payment.",
     .run = s_award_show},
    {.name = "history",
     .args = "ID",
     .about = "Every event of an award, scheme, instrument or need: granted, paid, amended, …\n"
              "Each with who published it, the day it was stored and what it said (a\n"
              "correction's reason first), from the grants outbox; its payments are part of\n"
              "an award's history.",
     .run = samctl_history_run,
     .query = &(const samctl_query_t){.service = "grants", .method = "no.samordna.grants."}},
    {.name = "deadlines",
     .about = "Reports due in a period, of awards not cancelled (what reminders go out for).",
     .opts = s_deadlines_opts,
     .run = samctl_query_run,
     .query = S_LISTS("grants.deadlines", deadlines_request, deadline_list, "deadlines",
                      "reports due", "%-10s  %-24s %-16s %s", "DUE|AWARD|RECIPIENT|PURPOSE",
                      s_deadline_json, s_deadline_row)},
    {.name = "instruments",
     .args = "MUNICIPALITY",
     .about = "What agencies offer a municipality besides money, and what it misses.\n"
              "The instruments agencies offer MUNICIPALITY, and in the same list, with kind\n"
              "\"need\", what the municipality says is missing.",
     .opts = s_instruments_opts,
     .run = s_instruments},
    {.name = "add-scheme",
     .args = "ID",
     .about = "Creates a grant scheme.",
     .opts = s_add_scheme_opts,
     .run = s_add_scheme,
     .writes = S_WRITES("scheme.created", scheme, 1)},
    {.name = "add-award",
     .args = "ID",
     .about = "Grants an award from a scheme; a joint award names each funder's share.",
     .opts = s_add_award_opts,
     .run = s_award_add,
     .writes = S_WRITES("award.granted", award, 1)},
    {.name = "amend",
     .args = "AWARD",
     .about = "Corrects an open award: amount, shares, purpose, report deadline, decision date.\n"
              "A correction is an event of its own, with who, when and --reason; the ledger posts\n"
              "the difference (more committed from the scheme's budget, or less released to it),\n"
              "and `grants history AWARD` shows it. Options not given keep their values.",
     .opts = s_amend_opts,
     .run = s_award_amend,
     .writes = &(const samctl_write_t){"grants", "no.samordna.grants.award.amended",
                                       &samordna__v1__award_amendment__descriptor, 1, NULL}},
    {.name = "disburse",
     .args = "AWARD ID",
     .about = "Pays out (part of) an award; ID names the payment.",
     .opts = s_payment_opts,
     .run = s_payment,
     .writes = S_WRITES("disbursement.made", payment, 2)},
    {.name = "correct-disbursement",
     .args = "AWARD ID",
     .about = "Corrects a disbursement's amount or day by a reversing entry; ID names the\n"
              "correction. The ledger takes the original back and pays the right amount in one\n"
              "entry; the original stays in the award, marked corrected, and in its history.",
     .opts = s_correct_payment_opts,
     .run = s_payment_correct,
     .writes = S_WRITES("disbursement.corrected", payment_correction, 2)},
    {.name = "repay",
     .args = "AWARD ID",
     .about = "Records money paid back on an award.",
     .opts = s_payment_opts,
     .run = s_payment,
     .writes = S_WRITES("repayment.received", payment, 2)},
    {.name = "cancel",
     .args = "AWARD ID",
     .about = "Cancels (the rest of, or --amount of) an award.",
     .opts = s_payment_opts,
     .run = s_payment,
     .writes = S_WRITES("award.cancelled", payment, 2)},
    {.name = "add-instrument",
     .args = "ID",
     .about = "Registers an instrument an agency offers a municipality besides money.",
     .opts = s_add_instrument_opts,
     .run = s_add_instrument,
     .writes = S_WRITES("instrument.registered", instrument, 1)},
    {.name = "add-need",
     .args = "ID",
     .about = "Records what a municipality says is missing.",
     .opts = s_add_need_opts,
     .run = s_add_need,
     .writes = S_WRITES("need.recorded", need, 1)},
    {NULL},
};

const samctl_cmd_t samctl_grants_cmd = {
    .name = "grants",
    .about = "Grant accounting: schemes and their frames, awards (also joint ones), payments, the\n"
             "ledger, and what agencies offer besides money. Amounts are NOK on the command line\n"
             "(\"200 000\", 1234,50) and øre in JSON. Writes publish one event each, with an id\n"
             "derived from what they create, so the same command twice stores it once.",
    .subs = s_grants_subs,
};
