/*  gw_board_html.c — the web status board: one server-rendered page for the people who
    follow the pilots (case workers, agency leaders, the pilot leader).

    The page is readable without JavaScript: the grid, the timelines, the barriers, the grants
    and the briefing are plain HTML tables and lists, the bar chart and the timeline strip are
    inline SVG drawn here. /board.js only enhances (the date form swaps the page in place and
    keeps the keyboard focus); /board.css lays it out without fixed widths, so it reflows at
    200 % zoom, and gives every control a visible focus ring.

    Everything that came from a store goes through s_text (HTML escaping, and bytes that are
    not UTF-8 text replaced), so no record can add markup. Ids are shown only where no name is
    known: names come from the board's rows and from the registry's lists.

    Norwegian words for the enum-like values (barrier states, meeting kinds, what a barrier
    concerns), dates and kroner come from common/sam_words, as in every other output people
    read; a value without a word is shown as it is, escaped.
*/
#include "gw_board_html.h"

#include "sam_check.h"
#include "sam_clock.h"
#include "sam_words.h"

#include "samordna/v1/grants.pb-c.h"
#include "samordna/v1/notify.pb-c.h"
#include "samordna/v1/registry.pb-c.h"
#include "samordna/v1/status.pb-c.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_LIST_MAX 1000 /* page size of every list the board asks for */
#define S_NBSP "\xC2\xA0"

/* ---- the parts ----------------------------------------------------------------------------- */

static const struct {
    const char *method;
    const ProtobufCMessageDescriptor *reply;
    const char *what; /* Norwegian: what is missing when the part is */
} s_parts[GW_BOARD_PARTS] = {
    [GW_BOARD_GRID] = {"status.board", &samordna__v1__board_reply__descriptor,
                       "milepælstavla (statustjenesten)"},
    [GW_BOARD_MEETINGS] = {"status.meetings.list", &samordna__v1__meetings_reply__descriptor,
                           "møtene (statustjenesten)"},
    [GW_BOARD_BARRIERS] = {"status.barriers.list", &samordna__v1__barriers_reply__descriptor,
                           "barrierene (statustjenesten)"},
    [GW_BOARD_GRANTS] = {"grants.overview", &samordna__v1__overview__descriptor,
                         "tilskuddsoversikten (tilskuddstjenesten)"},
    [GW_BOARD_MUNICIPALITIES] = {"registry.municipalities.list",
                                 &samordna__v1__municipality_list__descriptor,
                                 "kommunenavnene (registeret; id-er vises i stedet)"},
    [GW_BOARD_AGENCIES] = {"registry.agencies.list", &samordna__v1__agency_list__descriptor,
                           "aktørnavnene (registeret; id-er vises i stedet)"},
    [GW_BOARD_BRIEFING] = {"notify.briefings.list", &samordna__v1__briefing_list__descriptor,
                           "orienteringen til styringsgruppen (varslingstjenesten)"},
};

const char *gw_board_method(gw_board_part_t part)
{
    return part < GW_BOARD_PARTS ? s_parts[part].method : NULL;
}

const ProtobufCMessageDescriptor *gw_board_reply_type(gw_board_part_t part)
{
    return part < GW_BOARD_PARTS ? s_parts[part].reply : NULL;
}

int gw_board_day(const char *value, char out[11], char *err, size_t errlen)
{
    if (!value || !*value) {
        sam_clock_today(out);
        return 0;
    }
    if (!sam_check_is_date(value)) {
        char safe[64];
        sam_check_escape(value, 40, safe, sizeof safe);
        snprintf(err, errlen, "as_of: '%s' er ikke en dato ÅÅÅÅ-MM-DD (for eksempel 2019-11-30)",
                 safe);
        return -1;
    }
    memcpy(out, value, 10);
    out[10] = 0;
    return 0;
}

static uint8_t *s_pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(*len ? *len : 1);
    if (b) protobuf_c_message_pack(m, b);
    return b;
}

uint8_t *gw_board_request(gw_board_part_t part, const char *as_of, size_t *len)
{
    switch (part) {
    case GW_BOARD_GRID: {
        Samordna__V1__BoardRequest r = SAMORDNA__V1__BOARD_REQUEST__INIT;
        r.as_of = (char *)as_of;
        return s_pack(&r.base, len);
    }
    case GW_BOARD_MEETINGS: {
        Samordna__V1__MeetingsRequest r = SAMORDNA__V1__MEETINGS_REQUEST__INIT;
        r.to = (char *)as_of;
        r.page_size = S_LIST_MAX;
        return s_pack(&r.base, len);
    }
    case GW_BOARD_BARRIERS: {
        Samordna__V1__BarriersRequest r = SAMORDNA__V1__BARRIERS_REQUEST__INIT;
        r.page_size = S_LIST_MAX;
        return s_pack(&r.base, len);
    }
    case GW_BOARD_GRANTS: {
        Samordna__V1__OverviewRequest r = SAMORDNA__V1__OVERVIEW_REQUEST__INIT;
        r.year = (uint32_t)atoi(as_of);
        return s_pack(&r.base, len);
    }
    case GW_BOARD_MUNICIPALITIES:
    case GW_BOARD_AGENCIES: {
        Samordna__V1__ListRequest r = SAMORDNA__V1__LIST_REQUEST__INIT;
        r.page_size = S_LIST_MAX;
        return s_pack(&r.base, len);
    }
    case GW_BOARD_BRIEFING: {
        Samordna__V1__BriefingListRequest r = SAMORDNA__V1__BRIEFING_LIST_REQUEST__INIT;
        r.page_size = S_LIST_MAX;
        return s_pack(&r.base, len);
    }
    default:
        return NULL;
    }
}

void gw_board_miss(gw_board_view_t *view, gw_board_part_t part, const char *fmt, ...)
{
    if (part >= GW_BOARD_PARTS) return;
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(view->missing[part]);
    view->missing[part] = strdup(buf);
}

int gw_board_keep(gw_board_view_t *view, gw_board_part_t part, const uint8_t *body, size_t len)
{
    if (part >= GW_BOARD_PARTS) return -1;
    ProtobufCMessage *m = protobuf_c_message_unpack(s_parts[part].reply, NULL, len, body);
    if (view->reply[part]) protobuf_c_message_free_unpacked(view->reply[part], NULL);
    view->reply[part] = m;
    if (!m) {
        gw_board_miss(view, part, "%s answered a body that is not a %s", s_parts[part].method,
                      s_parts[part].reply->name);
        return -1;
    }
    free(view->missing[part]);
    view->missing[part] = NULL;
    return 0;
}

void gw_board_view_clear(gw_board_view_t *view)
{
    for (int p = 0; p < GW_BOARD_PARTS; p++) {
        if (view->reply[p]) protobuf_c_message_free_unpacked(view->reply[p], NULL);
        view->reply[p] = NULL;
        free(view->missing[p]);
        view->missing[p] = NULL;
    }
}

/* ---- the output buffer --------------------------------------------------------------------- */

typedef struct {
    char *b;
    size_t n, cap;
    bool oom;
} s_out_t;

static void s_put(s_out_t *o, const char *s, size_t n)
{
    if (o->oom) return;
    if (o->n + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 16384;
        while (o->n + n + 1 > cap)
            cap *= 2;
        char *b = realloc(o->b, cap);
        if (!b) {
            o->oom = true;
            return;
        }
        o->b = b;
        o->cap = cap;
    }
    memcpy(o->b + o->n, s, n);
    o->n += n;
    o->b[o->n] = 0;
}

/* Markup of the page's own (never a value from outside: those go through s_text). */
static void s_raw(s_out_t *o, const char *s)
{
    s_put(o, s, strlen(s));
}

static void s_fmt(s_out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_fmt(s_out_t *o, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0) s_put(o, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* The length of the UTF-8 character at s (1..4), or 0 when s does not start a valid one. */
static size_t s_utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80) return 1;
    size_t n = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 ? 2 : 0;
    if (!n || s[0] > 0xF4) return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (n == 3 && ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0))) return 0;
    if (n == 4 && ((s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] >= 0x90))) return 0;
    return n;
}

/* A value from outside as HTML text (also inside a quoted attribute): & < > " ' escaped, a
   control character other than tab and newline dropped, a byte that is not UTF-8 shown as
   U+FFFD. */
static void s_text(s_out_t *o, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        const char *rep = NULL;
        switch (*p) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        default:
            break;
        }
        if (rep) {
            s_raw(o, rep);
            p++;
            continue;
        }
        if (*p < 0x20 || *p == 0x7F) {
            if (*p == '\n' || *p == '\t') s_put(o, (const char *)p, 1);
            p++;
            continue;
        }
        size_t n = s_utf8_len(p);
        if (n) {
            s_put(o, (const char *)p, n);
            p += n;
        } else {
            s_raw(o, "\xEF\xBF\xBD");
            p++;
        }
    }
}

/* A value from outside as one path segment inside a quoted href: every byte but the
   unreserved ones (A-Z a-z 0-9 - . _ ~) percent-encoded, so it can neither leave the segment
   nor the attribute. */
static void s_path(s_out_t *o, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p))
            s_put(o, (const char *)p, 1);
        else
            s_fmt(o, "%%%02X", *p);
    }
}

/* A label inside a chart: at most `max` characters, the last a "…" when cut (the table or list
   beside the chart has the whole name). */
static void s_label(s_out_t *o, const char *s, size_t max)
{
    size_t chars = 0, i = 0;
    for (; s[i]; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80 && chars++ == max - 1) break;
    if (!s[i]) {
        s_text(o, s);
        return;
    }
    char *cut = strndup(s, i);
    s_text(o, cut ? cut : "");
    s_raw(o, "…");
    free(cut);
}

/* ---- Norwegian words (common/sam_words) ------------------------------------------------------ */

/* "2019-11-30" as "30. november 2019", the day and its month held together by a no-break
   space; anything else as it is. */
static void s_date_long(s_out_t *o, const char *d)
{
    if (!sam_check_is_date(d)) {
        s_text(o, d);
        return;
    }
    char buf[64];
    sam_words_date(SAM_LANG_NB, d, buf, sizeof buf);
    size_t n = strcspn(buf, " ");
    s_put(o, buf, n);
    if (buf[n]) {
        s_raw(o, S_NBSP);
        s_text(o, buf + n + 1);
    }
}

/* "2019-11-30" as "30.11.2019" in a <time>. */
static void s_date_short(s_out_t *o, const char *d)
{
    if (!sam_check_is_date(d)) {
        s_text(o, d);
        return;
    }
    s_fmt(o, "<time datetime=\"%.10s\">%.2s.%.2s.%.4s</time>", d, d + 8, d + 5, d);
}

/* Kroner the Norwegian way: "1 500 000 kr", no-break spaces. */
static void s_kr(s_out_t *o, int64_t ore)
{
    char buf[64];
    s_raw(o, sam_words_nok(SAM_LANG_NB, ore, buf, sizeof buf));
}

/* A value of a vocabulary group ("meeting", "barrier", "concerns") as its Norwegian word with
   a capital, as at the start of a cell; a value without a word as it is, escaped. */
static void s_word(s_out_t *o, const char *group, const char *value)
{
    char buf[128];
    s_text(o, sam_word_cap(SAM_LANG_NB, group, value, buf, sizeof buf));
}

/* The barrier states in the order of escalation, each a group of the page; a state not
   among them is shown under "Annen tilstand". */
static const char *const s_levels[] = {"identified", "raised_regionally", "raised_nationally",
                                       "changed",    "rejected",          "withdrawn"};
#define S_NLEVELS (sizeof s_levels / sizeof s_levels[0])

static bool s_known_level(const char *state)
{
    for (size_t l = 0; l < S_NLEVELS; l++)
        if (strcmp(state, s_levels[l]) == 0) return true;
    return false;
}

/* ---- names ---------------------------------------------------------------------------------- */

/* The name of a municipality or agency id: the registry's, the board's, or the id itself. */
static const char *s_name(const gw_board_view_t *v, const char *id)
{
    if (!id || !*id) return "";
    const Samordna__V1__MunicipalityList *ml =
        (const Samordna__V1__MunicipalityList *)v->reply[GW_BOARD_MUNICIPALITIES];
    for (size_t i = 0; ml && i < ml->n_items; i++)
        if (strcmp(ml->items[i]->id, id) == 0 && *ml->items[i]->name) return ml->items[i]->name;
    const Samordna__V1__AgencyList *al =
        (const Samordna__V1__AgencyList *)v->reply[GW_BOARD_AGENCIES];
    for (size_t i = 0; al && i < al->n_items; i++)
        if (strcmp(al->items[i]->id, id) == 0 && *al->items[i]->name) return al->items[i]->name;
    const Samordna__V1__BoardReply *b = (const Samordna__V1__BoardReply *)v->reply[GW_BOARD_GRID];
    for (size_t i = 0; b && i < b->n_rows; i++)
        if (strcmp(b->rows[i]->municipality, id) == 0 && *b->rows[i]->municipality_name)
            return b->rows[i]->municipality_name;
    return id;
}

/* The heading of a pilot: its municipality's name (a pilot is the municipality's). */
static const char *s_pilot_name(const gw_board_view_t *v, const char *pilot)
{
    const Samordna__V1__BoardReply *b = (const Samordna__V1__BoardReply *)v->reply[GW_BOARD_GRID];
    for (size_t i = 0; b && i < b->n_rows; i++)
        if (strcmp(b->rows[i]->pilot, pilot) == 0)
            return *b->rows[i]->municipality_name ? b->rows[i]->municipality_name
                                                  : s_name(v, b->rows[i]->municipality);
    return s_name(v, pilot);
}

/* ---- days ------------------------------------------------------------------------------------ */

/* Days since 1970-01-01 of a valid date (the civil-from-days inverse). */
static long s_days(const char *d)
{
    long y = atoi(d), m = atoi(d + 5), dd = atoi(d + 8);
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + dd - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* ---- the page -------------------------------------------------------------------------------- */

static void s_head(s_out_t *o, const char *title_day)
{
    s_raw(o, "<!DOCTYPE html>\n<html lang=\"nb\">\n<head>\n<meta charset=\"utf-8\">\n"
             "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
             "<title>Statustavle – Velferdspiloten");
    if (title_day) {
        s_raw(o, " per ");
        s_date_long(o, title_day);
    }
    s_raw(o, "</title>\n<link rel=\"icon\" type=\"image/svg+xml\" href=\"/board.svg\">\n"
             "<link rel=\"stylesheet\" href=\"/board.css\">\n"
             "<script src=\"/board.js\" defer></script>\n</head>\n<body>\n"
             "<a class=\"skip\" href=\"#innhold\">Hopp til innholdet</a>\n");
}

static void s_missing(s_out_t *o, const gw_board_view_t *v)
{
    bool any = false;
    for (int p = 0; p < GW_BOARD_PARTS; p++)
        any |= v->reply[p] == NULL;
    if (!any) return;
    s_raw(o, "<div class=\"mangler\" role=\"alert\">\n<h2>Noe mangler på tavla</h2>\n<ul>\n");
    for (int p = 0; p < GW_BOARD_PARTS; p++) {
        if (v->reply[p]) continue;
        s_raw(o, "<li>Mangler ");
        s_raw(o, s_parts[p].what);
        s_raw(o, ": <code>");
        s_text(o, v->missing[p] ? v->missing[p] : "ikke hentet");
        s_raw(o, "</code></li>\n");
    }
    s_raw(o, "</ul>\n<p>Resten av tavla vises. Prøv igjen om litt.</p>\n</div>\n");
}

static void s_form(s_out_t *o, const char *as_of)
{
    s_raw(o, "<form class=\"dato\" method=\"get\" action=\"/\">\n"
             "<label for=\"as_of\">Vis tavla per dato</label>\n"
             "<input type=\"date\" id=\"as_of\" name=\"as_of\" required value=\"");
    s_text(o, as_of);
    s_raw(o, "\">\n<button type=\"submit\">Vis</button>\n</form>\n");
}

/* The grid: a row per pilot, a column per milestone kind, then the phase. */
static void s_grid(s_out_t *o, const gw_board_view_t *v)
{
    const Samordna__V1__BoardReply *b = (const Samordna__V1__BoardReply *)v->reply[GW_BOARD_GRID];
    s_raw(o, "<section aria-labelledby=\"h-tavle\">\n<h2 id=\"h-tavle\">Milepæler per ");
    s_date_long(o, v->as_of);
    s_raw(o, "</h2>\n");
    if (!b) {
        s_raw(o, "<p>Milepælstavla kan ikke vises nå: statustjenesten svarte ikke.</p>\n"
                 "</section>\n");
        return;
    }
    if (!b->n_rows) {
        s_raw(o, "<p>Ingen piloter er registrert ennå.</p>\n</section>\n");
        return;
    }
    s_raw(o, "<div class=\"rull\" role=\"region\" aria-labelledby=\"h-tavle\" tabindex=\"0\">\n"
             "<table class=\"tavle\" id=\"tavle\" aria-labelledby=\"h-tavle\">\n"
             "<thead>\n<tr><th scope=\"col\">Kommune</th>");
    for (size_t k = 0; k < b->n_kinds; k++) {
        s_raw(o, "<th scope=\"col\">");
        s_text(o, *b->kinds[k]->label ? b->kinds[k]->label : b->kinds[k]->id);
        s_raw(o, "</th>");
    }
    s_raw(o, "<th scope=\"col\">Fase</th><th scope=\"col\">Siste møte</th>"
             "<th scope=\"col\">Åpne barrierer</th></tr>\n</thead>\n<tbody>\n");
    for (size_t r = 0; r < b->n_rows; r++) {
        const Samordna__V1__BoardRow *row = b->rows[r];
        s_raw(o, "<tr data-pilot=\"");
        s_text(o, row->pilot);
        s_raw(o, "\"><th scope=\"row\">");
        s_text(o, *row->municipality_name ? row->municipality_name : s_name(v, row->municipality));
        s_raw(o, "</th>");
        for (size_t k = 0; k < b->n_kinds; k++) {
            const char *date = "";
            for (size_t c = 0; c < row->n_cells; c++)
                if (strcmp(row->cells[c]->kind, b->kinds[k]->id) == 0) date = row->cells[c]->date;
            s_raw(o, "<td data-kind=\"");
            s_text(o, b->kinds[k]->id);
            if (*date) {
                s_raw(o, "\" class=\"naadd\"><span class=\"merke\" aria-hidden=\"true\">✓</span> "
                         "<span class=\"skjult\">Nådd </span>");
                s_date_short(o, date);
            } else {
                s_raw(o, "\" class=\"ikke\"><span aria-hidden=\"true\">–</span>"
                         "<span class=\"skjult\">Ikke nådd</span>");
            }
            s_raw(o, "</td>");
        }
        s_raw(o, "<td class=\"fase\">");
        s_text(o, *row->phase_label ? row->phase_label : *row->phase ? row->phase : "Ikke startet");
        s_raw(o, "</td><td>");
        if (*row->last_meeting_date) {
            s_date_short(o, row->last_meeting_date);
            /* the kind only: titles are long, and the meetings below have them */
            s_raw(o, " ");
            s_word(o, "meeting", row->last_meeting_kind);
        } else {
            s_raw(o, "Ingen");
        }
        s_fmt(o, "</td><td>%u</td></tr>\n", row->open_barriers);
    }
    s_raw(o, "</tbody>\n</table>\n</div>\n</section>\n");
}

/* One meeting as a list item. */
static void s_meeting(s_out_t *o, const Samordna__V1__Meeting *m)
{
    s_raw(o, "<li>");
    s_date_short(o, m->date);
    s_raw(o, " <strong>");
    s_word(o, "meeting", m->kind);
    s_raw(o, "</strong>");
    if (*m->title) {
        s_raw(o, ": ");
        s_text(o, m->title);
    }
    s_raw(o, "</li>\n");
}

/* Does a meeting belong to the group (a pilot, a municipality without one, or the programme)? */
static bool s_meeting_in(const Samordna__V1__Meeting *m, const char *pilot, const char *muni)
{
    if (pilot) return strcmp(m->pilot, pilot) == 0;
    if (muni) return !*m->pilot && strcmp(m->municipality, muni) == 0;
    return !*m->pilot && !*m->municipality;
}

/* The timeline strip of every group in one SVG (the lists below say the same in words). */
static void s_strip(s_out_t *o, const gw_board_view_t *v, const Samordna__V1__MeetingsReply *ml)
{
    const Samordna__V1__BoardReply *b = (const Samordna__V1__BoardReply *)v->reply[GW_BOARD_GRID];
    long first = s_days(v->as_of), last = s_days(v->as_of);
    for (size_t i = 0; i < ml->n_meetings; i++)
        if (sam_check_is_date(ml->meetings[i]->date) && s_days(ml->meetings[i]->date) < first)
            first = s_days(ml->meetings[i]->date);
    if (last - first < 30) first = last - 30;
    size_t rows = (b ? b->n_rows : 0) + 1;
    const int left = 120, width = 470, h = 26;
    s_fmt(o,
          "<svg class=\"tidslinje\" viewBox=\"0 0 600 %zu\" aria-hidden=\"true\" "
          "focusable=\"false\">\n",
          rows * h + 24);
    for (size_t r = 0; r < rows; r++) {
        const char *pilot = b && r < b->n_rows ? b->rows[r]->pilot : NULL;
        long y = (long)r * h + 16;
        s_fmt(o, "<text x=\"0\" y=\"%ld\" class=\"navn\">", y + 5);
        s_label(o, pilot ? s_pilot_name(v, pilot) : "Andre møter", 16);
        s_raw(o, "</text>");
        s_fmt(o, "<line x1=\"%d\" y1=\"%ld\" x2=\"%d\" y2=\"%ld\" class=\"akse\"/>", left, y,
              left + width, y);
        for (size_t i = 0; i < ml->n_meetings; i++) {
            const Samordna__V1__Meeting *m = ml->meetings[i];
            bool mine = pilot ? strcmp(m->pilot, pilot) == 0 : !*m->pilot;
            if (!mine || !sam_check_is_date(m->date)) continue;
            long x = left + (s_days(m->date) - first) * width / (last - first);
            s_fmt(o, "<circle cx=\"%ld\" cy=\"%ld\" r=\"6\" class=\"prikk\"/>", x, y);
        }
        s_raw(o, "\n");
    }
    long y = (long)rows * h + 16;
    char a[11], z[11];
    memcpy(a, "0000-00-00", 11);
    snprintf(z, sizeof z, "%.10s", v->as_of);
    for (size_t i = 0; i < ml->n_meetings; i++)
        if (sam_check_is_date(ml->meetings[i]->date) && s_days(ml->meetings[i]->date) == first)
            snprintf(a, sizeof a, "%.10s", ml->meetings[i]->date);
    s_fmt(o, "<text x=\"%d\" y=\"%ld\" class=\"dag\">", left, y);
    if (strcmp(a, "0000-00-00")) s_date_long(o, a);
    s_fmt(o, "</text><text x=\"%d\" y=\"%ld\" class=\"dag slutt\">", left + width, y);
    s_date_long(o, z);
    s_raw(o, "</text>\n</svg>\n");
}

static void s_meeting_group(s_out_t *o, const Samordna__V1__MeetingsReply *ml, const char *title,
                            const char *pilot, const char *muni)
{
    s_raw(o, "<h3>");
    s_text(o, title);
    s_raw(o, "</h3>\n");
    size_t n = 0;
    for (size_t i = 0; i < ml->n_meetings; i++)
        n += s_meeting_in(ml->meetings[i], pilot, muni);
    if (!n) {
        s_raw(o, "<p>Ingen møter ennå.</p>\n");
        return;
    }
    s_raw(o, "<ol class=\"moter\">\n");
    for (size_t i = 0; i < ml->n_meetings; i++)
        if (s_meeting_in(ml->meetings[i], pilot, muni)) s_meeting(o, ml->meetings[i]);
    s_raw(o, "</ol>\n");
}

static void s_meetings(s_out_t *o, const gw_board_view_t *v)
{
    const Samordna__V1__MeetingsReply *ml =
        (const Samordna__V1__MeetingsReply *)v->reply[GW_BOARD_MEETINGS];
    const Samordna__V1__BoardReply *b = (const Samordna__V1__BoardReply *)v->reply[GW_BOARD_GRID];
    s_raw(o, "<section aria-labelledby=\"h-moter\">\n<h2 id=\"h-moter\">Møter fram til ");
    s_date_long(o, v->as_of);
    s_raw(o, "</h2>\n");
    if (!ml) {
        s_raw(o, "<p>Møtene kan ikke vises nå.</p>\n</section>\n");
        return;
    }
    s_strip(o, v, ml);
    for (size_t r = 0; b && r < b->n_rows; r++)
        s_meeting_group(o, ml, s_pilot_name(v, b->rows[r]->pilot), b->rows[r]->pilot, NULL);
    /* municipalities without a pilot on the board, each once, in the order first met */
    for (size_t i = 0; i < ml->n_meetings; i++) {
        const Samordna__V1__Meeting *m = ml->meetings[i];
        if (*m->pilot || !*m->municipality) continue;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = !*ml->meetings[j]->pilot &&
                   strcmp(ml->meetings[j]->municipality, m->municipality) == 0;
        if (!seen) s_meeting_group(o, ml, s_name(v, m->municipality), NULL, m->municipality);
    }
    s_meeting_group(o, ml, "Felles for programmet", NULL, NULL);
    if (*ml->next_page_token) s_fmt(o, "<p>Bare de første %d møtene vises.</p>\n", S_LIST_MAX);
    s_raw(o, "</section>\n");
}

/* A barrier's state at the end of the day as_of, and since when: the last step of its
   history on or before that day. NULL when it was registered after the day. */
static const char *s_state_then(const Samordna__V1__Barrier *b, const char *as_of,
                                const char **since)
{
    if (!b->n_history) {
        *since = "";
        return b->state;
    }
    const char *state = NULL;
    for (size_t i = 0; i < b->n_history; i++) {
        if (strncmp(b->history[i]->date, as_of, 10) > 0) break;
        state = b->history[i]->state;
        *since = b->history[i]->date;
    }
    return state;
}

static void s_barriers(s_out_t *o, const gw_board_view_t *v)
{
    const Samordna__V1__BarriersReply *bl =
        (const Samordna__V1__BarriersReply *)v->reply[GW_BOARD_BARRIERS];
    s_raw(o, "<section aria-labelledby=\"h-barrierer\">\n"
             "<h2 id=\"h-barrierer\">Barrierer etter hvor langt de er løftet</h2>\n");
    if (!bl) {
        s_raw(o, "<p>Barrierene kan ikke vises nå.</p>\n</section>\n");
        return;
    }
    size_t nl = S_NLEVELS;
    /* the known levels in their order, then one group of every state without a word */
    for (size_t l = 0; l <= nl; l++) {
        size_t n = 0;
        for (size_t i = 0; i < bl->n_barriers; i++) {
            const char *since, *st = s_state_then(bl->barriers[i], v->as_of, &since);
            if (!st) continue;
            n += l < nl ? strcmp(st, s_levels[l]) == 0 : !s_known_level(st);
        }
        if (l == nl && !n) break;
        s_fmt(o, "<h3 id=\"nivaa-%zu\">", l);
        if (l < nl)
            s_word(o, "barrier", s_levels[l]);
        else
            s_raw(o, "Annen tilstand");
        s_fmt(o, " <span class=\"antall\">(%zu)</span></h3>\n", n);
        if (!n) {
            s_raw(o, "<p>Ingen.</p>\n");
            continue;
        }
        s_fmt(o,
              "<div class=\"rull\" role=\"region\" aria-labelledby=\"nivaa-%zu\" tabindex=\"0\">"
              "<table class=\"barrierer\" aria-labelledby=\"nivaa-%zu\">\n"
              "<thead><tr><th scope=\"col\">Barriere</th><th scope=\"col\">Hvor</th>"
              "<th scope=\"col\">Meldt av</th><th scope=\"col\">Gjelder</th>"
              "<th scope=\"col\">Siden</th></tr></thead>\n<tbody>\n",
              l, l);
        for (size_t i = 0; i < bl->n_barriers; i++) {
            const Samordna__V1__Barrier *b = bl->barriers[i];
            const char *since, *st = s_state_then(b, v->as_of, &since);
            if (!st || (l < nl ? strcmp(st, s_levels[l]) != 0 : s_known_level(st))) continue;
            s_raw(o, "<tr><th scope=\"row\">");
            s_text(o, *b->title ? b->title : b->id);
            if (l == nl) {
                s_raw(o, " (");
                s_text(o, st);
                s_raw(o, ")");
            }
            s_raw(o, "</th><td>");
            s_text(o, *b->pilot ? s_pilot_name(v, b->pilot) : s_name(v, b->municipality));
            s_raw(o, "</td><td>");
            s_text(o, s_name(v, b->raised_by));
            s_raw(o, "</td><td>");
            s_word(o, "concerns", b->concerns);
            if (*b->reference) {
                s_raw(o, ": ");
                s_text(o, b->reference);
            }
            s_raw(o, "</td><td>");
            s_date_short(o, since);
            s_raw(o, "</td></tr>\n");
        }
        s_raw(o, "</tbody>\n</table></div>\n");
    }
    if (*bl->next_page_token) s_fmt(o, "<p>Bare de første %d barrierene vises.</p>\n", S_LIST_MAX);
    s_raw(o, "</section>\n");
}

static void s_grants(s_out_t *o, const gw_board_view_t *v)
{
    const Samordna__V1__Overview *ov = (const Samordna__V1__Overview *)v->reply[GW_BOARD_GRANTS];
    s_fmt(o, "<section aria-labelledby=\"h-tilskudd\">\n<h2 id=\"h-tilskudd\">Tilskudd %.4s</h2>\n",
          v->as_of);
    if (!ov) {
        s_raw(o, "<p>Tilskuddsoversikten kan ikke vises nå.</p>\n</section>\n");
        return;
    }
    if (!ov->n_groups) {
        s_fmt(o, "<p>Ingen tilskudd er registrert for %.4s.</p>\n</section>\n", v->as_of);
        return;
    }
    int64_t max = 1;
    for (size_t i = 0; i < ov->n_groups; i++)
        if (ov->groups[i]->committed_ore > max) max = ov->groups[i]->committed_ore;
    /* the chart: a bar per recipient, its amount written beside it */
    const int bar_x = 180, bar_w = 300, h = 30;
    s_fmt(o,
          "<figure>\n<svg class=\"stolper\" viewBox=\"0 0 600 %zu\" role=\"img\" "
          "aria-labelledby=\"stolper-tittel\">\n<title id=\"stolper-tittel\">Tilsagn per "
          "mottaker %.4s</title>\n",
          ov->n_groups * (size_t)h + 8, v->as_of);
    for (size_t i = 0; i < ov->n_groups; i++) {
        const Samordna__V1__OverviewGroup *g = ov->groups[i];
        long y = (long)i * h + 4;
        long w = g->committed_ore > 0 ? (long)((double)g->committed_ore / (double)max * bar_w) : 0;
        s_fmt(o, "<text x=\"%d\" y=\"%ld\" class=\"navn\" text-anchor=\"end\">", bar_x - 10,
              y + 19);
        s_label(o, s_name(v, g->key), 22);
        s_fmt(o, "</text><rect x=\"%d\" y=\"%ld\" width=\"%ld\" height=\"24\" class=\"stolpe\"/>",
              bar_x, y, w < 2 ? 2 : w);
        s_fmt(o, "<text x=\"%ld\" y=\"%ld\" class=\"belop\">", bar_x + (w < 2 ? 2 : w) + 8, y + 19);
        s_kr(o, g->committed_ore);
        s_raw(o, "</text>\n");
    }
    s_fmt(o,
          "</svg>\n<figcaption>Tilsagn per mottaker i %.4s (tabellen under har tallene)."
          "</figcaption>\n</figure>\n",
          v->as_of);
    s_fmt(o,
          "<div class=\"rull\" role=\"region\" aria-labelledby=\"h-tilskudd\" tabindex=\"0\">"
          "<table class=\"tilskudd\" id=\"tilskudd\">\n<caption>Tilsagn og "
          "utbetalt per mottaker, %.4s</caption>\n<thead><tr><th scope=\"col\">Mottaker</th>"
          "<th scope=\"col\" class=\"tall\">Tilsagn</th><th scope=\"col\" class=\"tall\">"
          "Utbetalt</th><th scope=\"col\" class=\"tall\">Antall tilsagn</th></tr></thead>\n"
          "<tbody>\n",
          v->as_of);
    for (size_t i = 0; i < ov->n_groups; i++) {
        const Samordna__V1__OverviewGroup *g = ov->groups[i];
        s_raw(o, "<tr><th scope=\"row\">");
        s_text(o, s_name(v, g->key));
        s_raw(o, "</th><td class=\"tall\">");
        s_kr(o, g->committed_ore);
        s_raw(o, "</td><td class=\"tall\">");
        s_kr(o, g->paid_ore);
        s_fmt(o, "</td><td class=\"tall\">%u</td></tr>\n", g->awards);
    }
    s_raw(o, "</tbody>\n<tfoot><tr><th scope=\"row\">Sum</th><td class=\"tall\" id=\"sum\">");
    s_kr(o, ov->committed_ore);
    s_raw(o, "</td><td class=\"tall\">");
    s_kr(o, ov->paid_ore);
    s_raw(o, "</td><td></td></tr></tfoot>\n</table></div>\n</section>\n");
}

const Samordna__V1__Briefing *gw_board_briefing(const gw_board_view_t *view)
{
    const Samordna__V1__BriefingList *bl =
        (const Samordna__V1__BriefingList *)view->reply[GW_BOARD_BRIEFING];
    for (size_t i = 0; bl && i < bl->n_items; i++) {
        const Samordna__V1__Briefing *b = bl->items[i]->briefing;
        if (b && sam_check_is_date(b->date) && strncmp(b->date, view->as_of, 10) <= 0) return b;
    }
    return NULL;
}

/* The latest briefing issued on or before the day, and a link to its own page. */
static void s_briefing(s_out_t *o, const gw_board_view_t *v)
{
    s_raw(o, "<section aria-labelledby=\"h-orientering\">\n"
             "<h2 id=\"h-orientering\">Orientering til styringsgruppen</h2>\n");
    if (!v->reply[GW_BOARD_BRIEFING]) {
        s_raw(o, "<p>Orienteringen kan ikke vises nå.</p>\n</section>\n");
        return;
    }
    const Samordna__V1__Briefing *b = gw_board_briefing(v);
    if (!b) {
        s_raw(o, "<p>Ingen orientering er utstedt ennå per ");
        s_date_long(o, v->as_of);
        s_raw(o, ".</p>\n</section>\n");
        return;
    }
    s_raw(o, "<p>Den siste orienteringen per ");
    s_date_long(o, v->as_of);
    s_raw(o, " ble utstedt ");
    s_date_long(o, b->date);
    if (*b->period_from) {
        s_raw(o, " (perioden ");
        s_date_long(o, b->period_from);
        s_raw(o, " – ");
        s_date_long(o, b->period_to);
        s_raw(o, ")");
    }
    s_raw(o, ".</p>\n<p><a class=\"orientering-lenke\" href=\"/briefing/");
    s_path(o, b->id);
    s_raw(o, "\">Les orienteringen som egen side</a></p>\n");
    for (size_t i = 0; i < b->n_notes; i++) {
        s_raw(o, "<p class=\"merknad\">");
        s_text(o, b->notes[i]);
        s_raw(o, "</p>\n");
    }
    s_raw(o, "<pre class=\"orientering\">");
    s_text(o, b->text);
    s_raw(o, "</pre>\n</section>\n");
}

char *gw_board_render(const gw_board_view_t *v, size_t *len, int *status)
{
    s_out_t o = {0};
    s_head(&o, v->as_of);
    s_raw(&o, "<header>\n<h1>Statustavle for Velferdspiloten</h1>\n");
    s_form(&o, v->as_of);
    /* outside <main>, so that board.js changes its text in place and it is announced */
    s_raw(&o, "<p class=\"status\" role=\"status\" aria-live=\"polite\">Viser tavla per ");
    s_date_long(&o, v->as_of);
    s_raw(&o, ".</p>\n</header>\n<main id=\"innhold\" tabindex=\"-1\">\n");
    s_missing(&o, v);
    s_grid(&o, v);
    s_meetings(&o, v);
    s_barriers(&o, v);
    s_grants(&o, v);
    s_briefing(&o, v);
    s_raw(&o, "</main>\n</body>\n</html>\n");
    if (o.oom) {
        free(o.b);
        return NULL;
    }
    *len = o.n;
    *status = v->reply[GW_BOARD_GRID] ? 200 : 503;
    return o.b;
}

char *gw_board_render_refusal(const char *message, size_t *len)
{
    s_out_t o = {0};
    s_head(&o, NULL);
    s_raw(&o, "<main id=\"innhold\" tabindex=\"-1\">\n<h1>Tavla kan ikke vises</h1>\n<p>");
    s_text(&o, message);
    s_raw(&o, "</p>\n");
    s_form(&o, "");
    s_raw(&o, "</main>\n</body>\n</html>\n");
    if (o.oom) {
        free(o.b);
        return NULL;
    }
    *len = o.n;
    return o.b;
}
