/*  notify_compose.c — the steering group's briefing, written for the people who read it.

    One briefing is composed from the facts of its period as of its last day, asked of the
    services that own them:
      status.board(as_of)                 the board: each pilot's milestones and phase
      status.report(from, to, lang)       what changed, each change a line with names
      status.barriers.list                every barrier, with its history: which were open
                                          on the last day, and at which level
      grants.overview(year)               committed and paid per recipient, and for each
      grants.overview(recipient, year)    recipient per funding agency
    and the registry's names of agencies and municipalities (notify_names_refresh). It is
    written twice, as plain text (the e-mail's text part, the inbox) and as one HTML page
    (the e-mail's HTML part, readable on a phone and printable; samctl turns it into a PDF),
    in one language (--briefing-lang, or the preview's lang): Norwegian by default, with
    names, not ids or enum words, dates and amounts the Norwegian way.

    A service that does not answer leaves a note naming what is missing and why; the rest
    is still composed. Grants are those of the period's years as they stand when composed
    (an award carries its year, not the day it was decided).
*/
#include "notify.h"
#include "sam_check.h"
#include "sam_words.h"

#include "samordna/v1/grants.pb-c.h"
#include "samordna/v1/registry.pb-c.h"
#include "samordna/v1/status.pb-c.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_REPORT_LINES 200 /* changes listed in full; the rest are counted */
#define S_RECIPIENTS 64    /* recipients whose funders are asked for, a year */

/* ---- names --------------------------------------------------------------------------------- */

static void s_name_free(void **item)
{
    free(*item);
    *item = NULL;
}

/* Reads every page of a registry list into the names table; false when it did not answer. */
static bool s_names_of(notify_t *n, const char *method, bool agencies)
{
    char token[256] = "";
    do {
        Samordna__V1__ListRequest rq = SAMORDNA__V1__LIST_REQUEST__INIT;
        rq.page_size = 1000;
        rq.page_token = token;
        ProtobufCMessage *rep = NULL;
        sam_result_t res;
        const ProtobufCMessageDescriptor *d = agencies
                                                  ? &samordna__v1__agency_list__descriptor
                                                  : &samordna__v1__municipality_list__descriptor;
        uint32_t code =
            notify_call(n, "registry", method, &rq.base, d, &rep, (int)n->call_timeout_ms, &res);
        sam_result_clear(&res);
        if (code != SAM_OK) return false;
        if (agencies) {
            Samordna__V1__AgencyList *l = (Samordna__V1__AgencyList *)rep;
            for (size_t i = 0; i < l->n_items; i++)
                zhashx_update(n->names, l->items[i]->id, strdup(l->items[i]->name));
            snprintf(token, sizeof token, "%s", l->next_page_token);
        } else {
            Samordna__V1__MunicipalityList *l = (Samordna__V1__MunicipalityList *)rep;
            for (size_t i = 0; i < l->n_items; i++)
                zhashx_update(n->names, l->items[i]->id, strdup(l->items[i]->name));
            snprintf(token, sizeof token, "%s", l->next_page_token);
        }
        protobuf_c_message_free_unpacked(rep, NULL);
    } while (token[0]);
    return true;
}

bool notify_names_refresh(notify_t *n)
{
    if (!n->names) {
        n->names = zhashx_new();
        if (!n->names) return false;
        zhashx_set_destructor(n->names, s_name_free);
    }
    /* the programme: its name, and the dates the briefing is due on */
    Samordna__V1__ListRequest rq = SAMORDNA__V1__LIST_REQUEST__INIT;
    rq.page_size = 1000;
    Samordna__V1__ProgrammeList *l = NULL;
    sam_result_t res;
    uint32_t code = notify_call(n, "registry", "registry.programmes.list", &rq.base,
                                &samordna__v1__programme_list__descriptor, (ProtobufCMessage **)&l,
                                (int)n->call_timeout_ms, &res);
    sam_result_clear(&res);
    if (code != SAM_OK) return false; /* the registry is away: what was known stays */
    const Samordna__V1__Programme *p = NULL;
    for (size_t i = 0; i < l->n_items && !p; i++)
        if (!*n->programme || strcmp(l->items[i]->id, n->programme) == 0) p = l->items[i];
    bool known = p && p->period && sam_check_is_date(p->period->from) &&
                 sam_check_is_date(p->period->to) && p->briefing_interval_months > 0;
    if (known &&
        (!n->prog_known || strcmp(n->prog_id, p->id) || strcmp(n->prog_from, p->period->from) ||
         strcmp(n->prog_to, p->period->to) || n->prog_months != p->briefing_interval_months))
        sam_info("schedule.programme id=%s from=%s to=%s every_months=%u", sam_logv(p->id),
                 sam_logv(p->period->from), sam_logv(p->period->to), p->briefing_interval_months);
    if (known) {
        snprintf(n->prog_id, sizeof n->prog_id, "%s", p->id);
        snprintf(n->prog_name, sizeof n->prog_name, "%s", *p->name ? p->name : p->id);
        snprintf(n->prog_from, sizeof n->prog_from, "%s", p->period->from);
        snprintf(n->prog_to, sizeof n->prog_to, "%s", p->period->to);
        n->prog_months = p->briefing_interval_months;
    }
    n->prog_known = known;
    protobuf_c_message_free_unpacked(&l->base, NULL);
    s_names_of(n, "registry.agencies.list", true);
    s_names_of(n, "registry.municipalities.list", false);
    return true;
}

const char *notify_name(notify_t *n, const char *id)
{
    const char *name = n->names && id && *id ? zhashx_lookup(n->names, id) : NULL;
    return name && *name ? name : id;
}

/* ---- text and HTML side by side ------------------------------------------------------------ */

typedef struct {
    char *buf;
    size_t len, cap;
} s_buf_t;

static void s_put(s_buf_t *t, const char *s, size_t len)
{
    if (t->len + len + 1 > t->cap) {
        size_t cap = (t->cap + len + 1) * 2;
        char *nb = realloc(t->buf, cap);
        if (!nb) return;
        t->buf = nb;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, s, len);
    t->len += len;
    t->buf[t->len] = 0;
}

static void s_add(s_buf_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_add(s_buf_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char line[2048];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0) s_put(t, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* `s` and spaces after it to `width` columns (characters, not bytes: "Indre Østfold" is 13
   wide), for the text's columns. A longer one is not cut. */
static void s_pad(s_buf_t *t, const char *s, int width)
{
    int cols = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        cols += (*p & 0xC0) != 0x80;
    s_put(t, s, strlen(s));
    for (; cols < width; cols++)
        s_put(t, " ", 1);
}

/* Text from the store into HTML: & < > " ' escaped. */
static void s_esc(s_buf_t *h, const char *s)
{
    for (; s && *s; s++) {
        const char *e = *s == '&'    ? "&amp;"
                        : *s == '<'  ? "&lt;"
                        : *s == '>'  ? "&gt;"
                        : *s == '"'  ? "&quot;"
                        : *s == '\'' ? "&#39;"
                                     : NULL;
        if (e)
            s_put(h, e, strlen(e));
        else
            s_put(h, s, 1);
    }
}

/* An HTML element with escaped text: s_el(h, "td", text). */
static void s_el(s_buf_t *h, const char *tag, const char *text)
{
    s_add(h, "<%s>", tag);
    s_esc(h, text);
    const char *sp = strchr(tag, ' ');
    s_add(h, "</%.*s>", sp ? (int)(sp - tag) : (int)strlen(tag), tag);
}

typedef struct {
    notify_t *n;
    sam_lang_t lang;
    bool en;
    s_buf_t text, html;
    char *notes[8];
    size_t n_notes;
} s_brief_t;

static void s_note(s_brief_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_note(s_brief_t *b, const char *fmt, ...)
{
    if (b->n_notes == sizeof b->notes / sizeof b->notes[0]) return;
    char buf[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if ((b->notes[b->n_notes] = strdup(buf))) b->n_notes++;
}

/* Asks `service` for a section's facts: the reply (free it), or NULL when it did not answer;
   then the section says so and a note says what is missing. */
static ProtobufCMessage *s_ask(s_brief_t *b, const char *service, const char *method,
                               const char *label, const ProtobufCMessage *rq,
                               const ProtobufCMessageDescriptor *desc, const char *missing)
{
    ProtobufCMessage *rep = NULL;
    sam_result_t res;
    uint32_t code =
        notify_call(b->n, service, method, rq, desc, &rep, (int)b->n->call_timeout_ms, &res);
    if (code != SAM_OK) {
        const char *na = b->en ? "(not available)" : "(ikke tilgjengelig)";
        s_add(&b->text, "   %s\n", na);
        s_el(&b->html, "p class=\"missing\"", na);
        s_note(b, "%s: %u %s — %s %s", label ? label : method, code, res.message, missing,
               b->en ? "are missing" : "mangler");
        rep = NULL;
    }
    sam_result_clear(&res);
    return rep;
}

static void s_heading(s_brief_t *b, int no, const char *nb, const char *en)
{
    s_add(&b->text, "\n%d. %s\n", no, b->en ? en : nb);
    s_add(&b->html, "<h2>%d. ", no);
    s_esc(&b->html, b->en ? en : nb);
    s_add(&b->html, "</h2>\n");
}

/* ---- the sections -------------------------------------------------------------------------- */

static void s_board(s_brief_t *b, const char *as_of)
{
    char day[64];
    sam_words_date(b->lang, as_of, day, sizeof day);
    char title[128];
    snprintf(title, sizeof title, "%s %s", b->en ? "The status board as of" : "Statustavle per",
             day);
    s_heading(b, 1, title, title);
    Samordna__V1__BoardRequest rq = SAMORDNA__V1__BOARD_REQUEST__INIT;
    rq.as_of = (char *)as_of;
    Samordna__V1__BoardReply *r = (Samordna__V1__BoardReply *)s_ask(
        b, "status", "status.board", NULL, &rq.base, &samordna__v1__board_reply__descriptor,
        b->en ? "the board" : "statustavlen");
    if (!r) return;
    if (!r->n_rows) {
        const char *none = b->en ? "No pilots yet." : "Ingen piloter ennå.";
        s_add(&b->text, "   %s\n", none);
        s_el(&b->html, "p", none);
    }
    char label[128];
    if (r->n_rows) {
        s_add(&b->html, "<div class=\"wide\"><table>\n<thead><tr><th scope=\"col\">%s</th>",
              b->en ? "Municipality" : "Kommune");
        for (size_t k = 0; k < r->n_kinds; k++) {
            if (b->en)
                sam_word_cap(b->lang, "milestone", r->kinds[k]->id, label, sizeof label);
            else
                snprintf(label, sizeof label, "%s", r->kinds[k]->label);
            s_el(&b->html, "th scope=\"col\"", label);
        }
        s_add(&b->html,
              "<th scope=\"col\">%s</th><th scope=\"col\">%s</th></tr></thead>\n<tbody>\n",
              b->en ? "Phase" : "Fase", b->en ? "Barriers" : "Hindre");
    }
    for (size_t i = 0; i < r->n_rows; i++) {
        const Samordna__V1__BoardRow *row = r->rows[i];
        const char *where = *row->municipality_name ? row->municipality_name : row->pilot;
        char phase[128] = "-";
        if (*row->phase && b->en)
            sam_word_cap(b->lang, "milestone", row->phase, phase, sizeof phase);
        else if (*row->phase_label)
            snprintf(phase, sizeof phase, "%s", row->phase_label);
        size_t reached = 0;
        for (size_t k = 0; k < row->n_cells; k++)
            reached += *row->cells[k]->date != 0;
        s_add(&b->text, "   ");
        s_pad(&b->text, where, 16);
        s_add(&b->text, " %s (%zu %s %zu %s), %u %s\n", phase, reached, b->en ? "of" : "av",
              row->n_cells, b->en ? "milestones" : "milepæler", row->open_barriers,
              b->en ? (row->open_barriers == 1 ? "open barrier" : "open barriers")
                    : (row->open_barriers == 1 ? "åpent hinder" : "åpne hindre"));
        s_add(&b->html, "<tr><th scope=\"row\">");
        s_esc(&b->html, where);
        s_add(&b->html, "</th>");
        for (size_t k = 0; k < row->n_cells; k++) {
            /* the grid's dates short, as the Norwegian way writes them in tables: 11.11.2019 */
            char d[64] = "–";
            const char *c = row->cells[k]->date;
            if (*c && strlen(c) == 10 && !b->en)
                snprintf(d, sizeof d, "%.2s.%.2s.%.4s", c + 8, c + 5, c);
            else if (*c)
                snprintf(d, sizeof d, "%s", c);
            s_add(&b->html, "<td%s>", *row->cells[k]->date ? " class=\"reached\"" : "");
            s_esc(&b->html, d);
            s_add(&b->html, "</td>");
        }
        s_el(&b->html, "td", phase);
        s_add(&b->html, "<td class=\"num\">%u</td></tr>\n", row->open_barriers);
    }
    if (r->n_rows) s_add(&b->html, "</tbody></table></div>\n");
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void s_changes(s_brief_t *b, const char *from, const char *to)
{
    s_heading(b, 2, "Hva som har skjedd i perioden", "What changed in the period");
    Samordna__V1__StatusReportRequest rq = SAMORDNA__V1__STATUS_REPORT_REQUEST__INIT;
    rq.from = (char *)from;
    rq.to = (char *)to;
    rq.lang = (char *)sam_lang_code(b->lang);
    Samordna__V1__StatusReportReply *r = (Samordna__V1__StatusReportReply *)s_ask(
        b, "status", "status.report", NULL, &rq.base,
        &samordna__v1__status_report_reply__descriptor,
        b->en ? "the milestones, meetings, steps and barrier moves of the period"
              : "periodens milepæler, møter, tiltak og hindre");
    if (!r) return;
    if (!r->n_changes) {
        const char *none =
            b->en ? "Nothing was recorded in the period." : "Ingenting ble registrert i perioden.";
        s_add(&b->text, "   %s\n", none);
        s_el(&b->html, "p", none);
    } else
        s_add(&b->html, "<ul class=\"changes\">\n");
    for (size_t i = 0; i < r->n_changes && i < S_REPORT_LINES; i++) {
        char day[64];
        sam_words_date(b->lang, r->changes[i]->date, day, sizeof day);
        s_add(&b->text, "   %-18s %s\n", day, r->changes[i]->summary);
        s_add(&b->html, "<li><time datetime=\"%s\">", r->changes[i]->date);
        s_esc(&b->html, day);
        s_add(&b->html, "</time> ");
        s_esc(&b->html, r->changes[i]->summary);
        s_add(&b->html, "</li>\n");
    }
    if (r->n_changes > S_REPORT_LINES) {
        char more[96];
        snprintf(more, sizeof more, b->en ? "… and %zu more changes" : "… og %zu endringer til",
                 r->n_changes - S_REPORT_LINES);
        s_add(&b->text, "   %s\n", more);
        s_el(&b->html, "li", more);
    }
    if (r->n_changes) s_add(&b->html, "</ul>\n");
    if (r->truncated)
        s_note(b, "status.report: %s",
               b->en ? "more changes than one report holds"
                     : "flere endringer enn én rapport rommer");
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

/* One row of money: text and HTML. */
static void s_money_row(s_brief_t *b, const char *who, int64_t committed, int64_t paid, bool total,
                        int indent)
{
    char c[64], p[64];
    sam_words_nok(b->lang, committed, c, sizeof c);
    sam_words_nok(b->lang, paid, p, sizeof p);
    s_add(&b->text, "   %*s", indent, "");
    s_pad(&b->text, who, 32 - indent);
    s_add(&b->text, " %s %18s   %s %18s\n", b->en ? "committed" : "tildelt", c,
          b->en ? "paid" : "utbetalt", p);
    s_add(&b->html, "<tr%s><th scope=\"row\"%s>", total ? " class=\"total\"" : "",
          indent ? " class=\"funder\"" : "");
    s_esc(&b->html, who);
    s_add(&b->html, "</th><td class=\"num\">");
    s_esc(&b->html, c);
    s_add(&b->html, "</td><td class=\"num\">");
    s_esc(&b->html, p);
    s_add(&b->html, "</td></tr>\n");
}

static void s_grants(s_brief_t *b, int y0, int y1)
{
    s_heading(b, 3, "Tilskudd: tildelt og utbetalt per kommune og etat",
              "Grants: committed and paid per municipality and agency");
    for (int y = y0; y <= y1; y++) {
        Samordna__V1__OverviewRequest rq = SAMORDNA__V1__OVERVIEW_REQUEST__INIT;
        rq.year = (uint32_t)y;
        char what[96], label[48];
        snprintf(what, sizeof what, b->en ? "the grants of %d" : "tilskuddene for %d", y);
        snprintf(label, sizeof label, "grants.overview %d", y);
        s_add(&b->text, "   %d\n", y);
        s_add(&b->html, "<h3>%d</h3>\n", y);
        Samordna__V1__Overview *ov =
            (Samordna__V1__Overview *)s_ask(b, "grants", "grants.overview", label, &rq.base,
                                            &samordna__v1__overview__descriptor, what);
        if (!ov) continue;
        if (!ov->n_groups) {
            const char *none = b->en ? "No grants." : "Ingen tilskudd.";
            s_add(&b->text, "     %s\n", none);
            s_el(&b->html, "p", none);
            protobuf_c_message_free_unpacked(&ov->base, NULL);
            continue;
        }
        s_add(&b->html,
              "<div class=\"wide\"><table>\n<thead><tr><th scope=\"col\">%s</th><th "
              "scope=\"col\">%s</th><th scope=\"col\">%s</th></tr></thead>\n<tbody>\n",
              b->en ? "Recipient / funding agency" : "Mottaker / etat",
              b->en ? "Committed" : "Tildelt", b->en ? "Paid" : "Utbetalt");
        for (size_t i = 0; i < ov->n_groups; i++) {
            const Samordna__V1__OverviewGroup *g = ov->groups[i];
            s_money_row(b, notify_name(b->n, g->key), g->committed_ore, g->paid_ore, false, 0);
            if (i >= S_RECIPIENTS) continue;
            /* the recipient's money per funding agency: a joint award shows under each */
            Samordna__V1__OverviewRequest rr = SAMORDNA__V1__OVERVIEW_REQUEST__INIT;
            rr.recipient = g->key;
            rr.year = (uint32_t)y;
            rr.group_by = "agency";
            Samordna__V1__Overview *per = NULL;
            sam_result_t res;
            uint32_t code = notify_call(
                b->n, "grants", "grants.overview", &rr.base, &samordna__v1__overview__descriptor,
                (ProtobufCMessage **)&per, (int)b->n->call_timeout_ms, &res);
            sam_result_clear(&res);
            if (code != SAM_OK) continue;
            for (size_t j = 0; j < per->n_groups; j++)
                s_money_row(b, notify_name(b->n, per->groups[j]->key),
                            per->groups[j]->committed_ore, per->groups[j]->paid_ore, false, 2);
            protobuf_c_message_free_unpacked(&per->base, NULL);
        }
        s_money_row(b, b->en ? "In all" : "I alt", ov->committed_ore, ov->paid_ore, true, 0);
        s_add(&b->html, "</tbody></table></div>\n");
        protobuf_c_message_free_unpacked(&ov->base, NULL);
    }
}

/* identified, raised_regionally and raised_nationally: not yet changed, rejected or withdrawn */
static bool s_open(const char *state)
{
    return !strcmp(state, "identified") || !strcmp(state, "raised_regionally") ||
           !strcmp(state, "raised_nationally");
}

/* A barrier's state on `day` from its history (oldest first), or NULL when it was not yet
   recorded then. */
static const Samordna__V1__BarrierStep *s_state_on(const Samordna__V1__Barrier *br, const char *day)
{
    const Samordna__V1__BarrierStep *at = NULL;
    for (size_t i = 0; i < br->n_history; i++)
        if (strcmp(br->history[i]->date, day) <= 0) at = br->history[i];
    return at;
}

static void s_barriers(s_brief_t *b, const char *as_of)
{
    char day[64];
    sam_words_date(b->lang, as_of, day, sizeof day);
    char title[160];
    snprintf(title, sizeof title,
             b->en ? "Open barriers on %s, by level" : "Åpne hindre per %s, etter nivå", day);
    s_heading(b, 4, title, title);
    /* every barrier (open ones may have been closed since): the state on the day decides */
    static const char *const levels[] = {"raised_nationally", "raised_regionally", "identified"};
    Samordna__V1__BarrierStep const *on[1000];
    Samordna__V1__BarriersRequest rq = SAMORDNA__V1__BARRIERS_REQUEST__INIT;
    rq.page_size = 1000;
    Samordna__V1__BarriersReply *r =
        (Samordna__V1__BarriersReply *)s_ask(b, "status", "status.barriers.list", NULL, &rq.base,
                                             &samordna__v1__barriers_reply__descriptor,
                                             b->en ? "the open barriers" : "de åpne hindrene");
    if (!r) return;
    size_t open = 0;
    for (size_t i = 0; i < r->n_barriers && i < 1000; i++) {
        on[i] = s_state_on(r->barriers[i], as_of);
        open += on[i] && s_open(on[i]->state);
    }
    if (!open) {
        const char *none = b->en ? "None." : "Ingen.";
        s_add(&b->text, "   %s\n", none);
        s_el(&b->html, "p", none);
    }
    char word[96];
    for (size_t l = 0; open && l < sizeof levels / sizeof levels[0]; l++) {
        size_t here = 0;
        for (size_t i = 0; i < r->n_barriers && i < 1000; i++)
            here += on[i] && strcmp(on[i]->state, levels[l]) == 0;
        if (!here) continue;
        sam_word_cap(b->lang, "barrier", levels[l], word, sizeof word);
        s_add(&b->text, "   %s (%zu)\n", word, here);
        s_add(&b->html, "<h3>");
        s_esc(&b->html, word);
        s_add(&b->html, " (%zu)</h3>\n<ul class=\"barriers\">\n", here);
        for (size_t i = 0; i < r->n_barriers && i < 1000; i++) {
            if (!on[i] || strcmp(on[i]->state, levels[l])) continue;
            const Samordna__V1__Barrier *br = r->barriers[i];
            const char *where = notify_name(b->n, *br->municipality ? br->municipality : br->pilot);
            char since[64], concerns[64], line[1400];
            sam_words_date(b->lang, on[i]->date, since, sizeof since);
            sam_word(b->lang, "concerns", br->concerns, concerns, sizeof concerns);
            snprintf(line, sizeof line,
                     b->en ? "%s: “%s” — %s, raised by %s, at this level since %s"
                           : "%s: «%s» — %s, meldt av %s, på dette nivået siden %s",
                     where, br->title, concerns, notify_name(b->n, br->raised_by), since);
            s_add(&b->text, "     %s\n", line);
            s_el(&b->html, "li", line);
        }
        s_add(&b->html, "</ul>\n");
    }
    if (*r->next_page_token)
        s_note(b, "status.barriers.list: %s",
               b->en ? "more than 1000 barriers; the first 1000 were read"
                     : "flere enn 1000 hindre; de første 1000 ble lest");
    protobuf_c_message_free_unpacked(&r->base, NULL);
}

/* ---- the whole briefing -------------------------------------------------------------------- */

static const char s_style[] =
    "body{font-family:system-ui,sans-serif;line-height:1.45;margin:1rem auto;max-width:60rem;"
    "padding:0 1rem;color:#1a1a1a}h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;"
    "border-bottom:1px solid #ccc}h3{font-size:1rem}.wide{overflow-x:auto}\n"
    "table{border-collapse:collapse;margin:.5rem 0}th,td{padding:.25rem .5rem;"
    "border-bottom:1px solid #ddd;text-align:left;vertical-align:top}td.num{text-align:right;"
    "white-space:nowrap}td.reached{background:#e3f1e3}tr.total th,tr.total td{font-weight:bold;"
    "border-top:2px solid #999}th.funder{font-weight:normal;padding-left:1.5rem}\n"
    ".missing{color:#a00}time{font-variant-numeric:tabular-nums}\n"
    "td.reached{white-space:nowrap}thead th{hyphens:auto}\n"
    "@page{size:A4 landscape;margin:1.2cm}@media "
    "print{body{max-width:none;font-size:10pt}table{font-size:7pt}"
    "h2{break-after:avoid}}\n";

Samordna__V1__Briefing *notify_compose(notify_t *n, const char *id, const char *due,
                                       const char *from, const char *to, sam_lang_t lang)
{
    Samordna__V1__Briefing *out = calloc(1, sizeof *out);
    if (!out) return NULL;
    samordna__v1__briefing__init(out);
    s_brief_t b = {.n = n, .lang = lang, .en = lang == SAM_LANG_EN};
    char d_due[64], d_from[64], d_to[64];
    sam_words_date(lang, due, d_due, sizeof d_due);
    sam_words_date(lang, from, d_from, sizeof d_from);
    sam_words_date(lang, to, d_to, sizeof d_to);
    const char *title = b.en ? "Briefing of the steering group" : "Orientering til styringsgruppen";
    const char *prog = n->prog_known ? n->prog_name : "";
    char sub[512];
    snprintf(sub, sizeof sub,
             b.en ? "Due %s. The period %s – %s; the state as of %s."
                  : "Forfaller %s. Perioden %s – %s; tilstanden per %s.",
             d_due, d_from, d_to, d_to);
    s_add(&b.text, "%s%s%s\n%s\n", title, *prog ? " — " : "", prog, sub);
    s_add(&b.html,
          "<!DOCTYPE html>\n<html lang=\"%s\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<title>",
          b.en ? "en" : "nb");
    s_esc(&b.html, title);
    s_add(&b.html, " %s</title>\n<style>%s</style>\n</head>\n<body>\n<h1>", due, s_style);
    s_esc(&b.html, title);
    if (*prog) {
        s_add(&b.html, " — ");
        s_esc(&b.html, prog);
    }
    s_add(&b.html, "</h1>\n");
    s_el(&b.html, "p class=\"period\"", sub);
    s_board(&b, to);
    s_changes(&b, from, to);
    s_grants(&b, atoi(from), atoi(to));
    s_barriers(&b, to);
    if (b.n_notes) {
        const char *h = b.en ? "Notes: parts of this briefing could not be composed."
                             : "Merknader: deler av denne orienteringen kunne ikke settes sammen.";
        s_add(&b.text, "\n%s\n", h);
        s_add(&b.html, "<h2>");
        s_esc(&b.html, h);
        s_add(&b.html, "</h2>\n<ul>\n");
        for (size_t i = 0; i < b.n_notes; i++) {
            s_add(&b.text, "   - %s\n", b.notes[i]);
            s_el(&b.html, "li", b.notes[i]);
        }
        s_add(&b.html, "</ul>\n");
    }
    s_add(&b.html, "</body>\n</html>\n");
    out->id = strdup(id);
    out->date = strdup(due);
    out->period_from = strdup(from);
    out->period_to = strdup(to);
    out->text = b.text.buf ? b.text.buf : strdup("");
    out->html = b.html.buf ? b.html.buf : strdup("");
    out->programme = strdup(prog);
    out->lang = strdup(sam_lang_code(lang));
    out->n_notes = b.n_notes;
    out->notes = b.n_notes ? calloc(b.n_notes, sizeof *out->notes) : NULL;
    for (size_t i = 0; i < b.n_notes; i++) {
        if (out->notes)
            out->notes[i] = b.notes[i];
        else
            free(b.notes[i]);
    }
    if (!out->notes) out->n_notes = 0;
    if (!out->id || !out->date || !out->period_from || !out->period_to || !out->text ||
        !out->html || !out->programme || !out->lang) {
        notify_briefing_free(out);
        return NULL;
    }
    return out;
}

void notify_briefing_free(Samordna__V1__Briefing *b)
{
    if (!b) return;
    free(b->id);
    free(b->date);
    free(b->period_from);
    free(b->period_to);
    free(b->text);
    free(b->html);
    free(b->programme);
    free(b->lang);
    for (size_t i = 0; i < b->n_notes; i++)
        free(b->notes[i]);
    free(b->notes);
    free(b);
}
