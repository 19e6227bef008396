/*  cmd_status.c — samctl's commands of the status service.

      board     the pilot status board (also --as-of a past day)
      kinds     milestone kinds; `kinds define` adds or relabels one
      milestone reach / revert / history
      meeting   log; meetings lists them
      step      add / update; steps lists them
      barrier   register / move / show; barriers lists them
      report    what changed in a period

    Writes publish one event each with samctl_publish() (a fresh random id: reaching the
    same milestone twice is refused by the service, not merged); reads call status.*
    queries. Lists print as every samctl list does (samctl.h); the board, a barrier and a
    report are one object each. JSON records are the reply messages as status.proto names
    their fields (samctl_json_message).
*/
#include "samctl.h"

#include "sam_clock.h"

#include "samordna/v1/events.pb-c.h"
#include "samordna/v1/status.pb-c.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FREE(m) protobuf_c_message_free_unpacked(&(m)->base, NULL)

/* ---- text columns (UTF-8 aware: Norwegian labels hold æ, ø, å) ------------------------------ */

/* The board fits a terminal of this many columns. */
#define S_BOARD_WIDTH 120

/* The display columns of a UTF-8 string: one a character (the board's text is Latin). */
static int s_columns(const char *s)
{
    int n = 0;
    for (const unsigned char *q = (const unsigned char *)s; *q; q++)
        n += (*q & 0xC0) != 0x80;
    return n;
}

/* Prints s in exactly `width` columns: cut with "…" when longer, padded when shorter, so a
   long name never shifts the columns after it. */
static void s_cell(const char *s, int width)
{
    int cols = s_columns(s);
    if (cols <= width) {
        fputs(s, stdout);
    } else if (width > 0) {
        int kept = 0;
        const unsigned char *q = (const unsigned char *)s;
        for (; *q; q++) {
            if ((*q & 0xC0) != 0x80 && kept++ == width - 1) break;
        }
        fwrite(s, 1, (size_t)(q - (const unsigned char *)s), stdout);
        fputs("…", stdout);
        cols = width;
    } else {
        cols = 0;
    }
    for (; cols < width; cols++)
        putchar(' ');
}

#define EV(name) "no.samordna.status." name

/* ---- board --------------------------------------------------------------------------------- */

/* A milestone label on two header lines of `w` columns: first word, then the rest. */
static void s_head_word(const char *label, int line, int w)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", label);
    char *sp = strchr(buf, ' ');
    if (line == 0) {
        if (sp) *sp = 0;
        s_cell(buf, w);
    } else
        s_cell(sp ? sp + 1 : "", w);
}

/*  The board in S_BOARD_WIDTH columns: a pilot's first line holds what is compared down the
    board — the day each milestone was reached, the phase, the open barriers — and its
    second, indented, what describes it: the municipality, who leads, the last meeting and
    the challenge, cut with "…". A date column is as wide as a date while the kinds leave
    the phase room; with more kinds than fit, the dates are cut too, never the layout. */
static void s_board_text(const ProtobufCMessage *rec)
{
    const Samordna__V1__BoardReply *b = (const Samordna__V1__BoardReply *)rec;
    const int pilot_w = 13, barriers_w = 6, phase_min = 10;
    int kinds = (int)b->n_kinds, room = S_BOARD_WIDTH - (pilot_w + 1) - barriers_w;
    int date_w = 10;
    if (kinds > 0 && kinds * (date_w + 1) + phase_min + 1 > room)
        date_w = (room - phase_min - 1) / kinds - 1;
    if (date_w < 3) date_w = 3;
    int phase_w = room - kinds * (date_w + 1) - 1;
    if (phase_w > 20) phase_w = 20;
    if (phase_w < 1) phase_w = 1;
    bool en = samctl_lang == SAM_LANG_EN;
    char day[64];
    printf("%s %s\n\n", en ? "Status board as of" : "Statustavle per",
           sam_words_date(samctl_lang, b->as_of, day, sizeof day));
    for (int line = 0; line < 2; line++) {
        s_cell(line ? "" : "Pilot", pilot_w + 1);
        for (size_t k = 0; k < b->n_kinds; k++) {
            char label[128];
            if (en)
                sam_word_cap(samctl_lang, "milestone", b->kinds[k]->id, label, sizeof label);
            else
                snprintf(label, sizeof label, "%s", b->kinds[k]->label);
            s_head_word(label, line, date_w);
            putchar(' ');
        }
        s_cell(line ? "" : en ? "Phase" : "Fase", phase_w + 1);
        printf("%*s\n", barriers_w, line ? "" : en ? "Barriers" : "Hindre");
    }
    for (size_t r = 0; r < b->n_rows; r++) {
        const Samordna__V1__BoardRow *row = b->rows[r];
        s_cell(row->pilot, pilot_w);
        putchar(' ');
        for (size_t k = 0; k < row->n_cells; k++) {
            s_cell(*row->cells[k]->date ? row->cells[k]->date : "-", date_w);
            putchar(' ');
        }
        char phase[128] = "-";
        if (*row->phase && en)
            sam_word_cap(samctl_lang, "milestone", row->phase, phase, sizeof phase);
        else if (*row->phase_label)
            snprintf(phase, sizeof phase, "%s", row->phase_label);
        s_cell(phase, phase_w);
        printf(" %*u\n", barriers_w - 1, row->open_barriers);
        char about[1024], meeting[256] = "-", kind[96];
        if (*row->last_meeting_date)
            snprintf(meeting, sizeof meeting, "%s (%s)", row->last_meeting_date,
                     sam_word(samctl_lang, "meeting", row->last_meeting_kind, kind, sizeof kind));
        const char *leader = *row->investment_leader_name ? row->investment_leader_name
                             : *row->investment_leader    ? row->investment_leader
                                                          : "-";
        snprintf(about, sizeof about,
                 en ? "%s · led by %s · last meeting %s · %s"
                    : "%s · ledes av %s · siste møte %s · %s",
                 row->municipality_name[0] ? row->municipality_name : row->municipality, leader,
                 meeting, row->challenge);
        fputs("    ", stdout);
        int left = S_BOARD_WIDTH - 4;
        s_cell(about, s_columns(about) < left ? s_columns(about) : left);
        putchar('\n');
    }
    if (b->n_rows == 0)
        printf(en ? "no pilots\n" : "ingen piloter\n");
    else
        printf("(%zu)\n", b->n_rows);
}

/* ---- kinds --------------------------------------------------------------------------------- */

/* The milestone kinds, or NULL (nothing printed: it only adds to a refusal). */
static Samordna__V1__MilestoneKindsReply *s_kinds_get(samctl_t *ctl)
{
    sam_result_t res;
    ProtobufCMessage *out = NULL;
    samctl_request(ctl, "status", "status.kinds.list", NULL,
                   &samordna__v1__milestone_kinds_reply__descriptor, &out, true, &res);
    sam_result_clear(&res);
    return (Samordna__V1__MilestoneKindsReply *)out;
}

static void s_kind_row(const ProtobufCMessage *rec)
{
    const Samordna__V1__MilestoneKind *k = (const Samordna__V1__MilestoneKind *)rec;
    printf("%5u  %-24s %s\n", k->order, k->id, k->label);
}

/* ---- milestones ---------------------------------------------------------------------------- */

/* After a refusal of a milestone event: when `kind` is not one the service knows, say which
   ones it knows (asked of the service; nothing more when it cannot be asked). */
static void s_name_the_kinds(samctl_t *ctl, const samctl_args_t *a, const char *kind)
{
    Samordna__V1__MilestoneKindsReply *r = s_kinds_get(ctl);
    if (!r) return;
    bool known = false;
    char list[1024] = "";
    for (size_t i = 0; i < r->n_kinds; i++) {
        known = known || strcmp(r->kinds[i]->id, kind) == 0;
        size_t at = strlen(list);
        snprintf(list + at, sizeof list - at, "%s%s", i ? ", " : "", r->kinds[i]->id);
    }
    if (!known)
        fprintf(stderr, "samctl %s: the milestone kinds are: %s (samctl kinds)\n", a->path,
                r->n_kinds ? list : "none defined yet");
    FREE(r);
}

/* reach and revert: the event their row names, and the known kinds when it was refused. */
static int s_milestone_change(samctl_t *ctl, const samctl_args_t *a)
{
    int rc = samctl_write_run(ctl, a);
    if (rc) s_name_the_kinds(ctl, a, a->pos[1]);
    return rc;
}

static void s_change_row(const ProtobufCMessage *rec)
{
    const Samordna__V1__MilestoneChange *c = (const Samordna__V1__MilestoneChange *)rec;
    printf("%-10s  %-9s %-24s %-14s %s%s%s%s\n", c->date,
           c->corrects  ? "corrected"
           : c->reached ? "reached"
                        : "reverted",
           c->kind, c->actor, c->reached ? c->evidence : c->reason, c->corrects ? " — why: " : "",
           c->corrects ? c->reason : "", c->superseded_by ? " (superseded by a correction)" : "");
}

/* ---- meetings ------------------------------------------------------------------------------ */

static int s_meeting_log(samctl_t *ctl, const samctl_args_t *a)
{
    const char *participants[64];
    size_t n = samctl_opt_all(a, "participant", participants, 64);
    if (n > 64) return samctl_usage_error(a, "at most 64 --participant");
    Samordna__V1__MeetingLogged m = SAMORDNA__V1__MEETING_LOGGED__INIT;
    samctl_fill(a, &m.base);
    m.n_participants = n;
    m.participants = (char **)participants;
    return samctl_write(ctl, a, &m.base);
}

/* meeting correct ID: the fields given, the whole list of participants when any is given. */
static int s_meeting_correct(samctl_t *ctl, const samctl_args_t *a)
{
    const char *participants[64];
    size_t n = samctl_opt_all(a, "participant", participants, 64);
    if (n > 64) return samctl_usage_error(a, "at most 64 --participant");
    Samordna__V1__MeetingCorrected m = SAMORDNA__V1__MEETING_CORRECTED__INIT;
    samctl_fill(a, &m.base);
    m.n_participants = n;
    m.participants = (char **)participants;
    return samctl_write(ctl, a, &m.base);
}

static void s_meeting_row(const ProtobufCMessage *rec)
{
    const Samordna__V1__Meeting *m = (const Samordna__V1__Meeting *)rec;
    printf("%-10s  ", m->date);
    s_cell(m->kind, 15);
    s_cell(*m->pilot ? m->pilot : *m->municipality ? m->municipality : "(programmet)", 16);
    printf("%s\n", m->title);
}

/* ---- meetings as a calendar (--ical) --------------------------------------------------------

    RFC 5545: a VCALENDAR of one all-day VEVENT per meeting (samordna records the day a
    meeting is held, not its hour, so DTSTART is a DATE in the programme's calendar,
    Europe/Oslo, whose VTIMEZONE names it), CRLF line ends, lines folded at 75 octets without
    splitting a UTF-8 character, text values escaped. UID is the meeting's id, so a calendar
    program that imports the file again updates the events instead of doubling them. */

static void s_ical_line(const char *name, const char *value)
{
    char line[4096];
    size_t n = 0;
    n += (size_t)snprintf(line, sizeof line, "%s:", name);
    for (const char *p = value; *p && n < sizeof line - 4; p++) {
        if (*p == '\\' || *p == ';' || *p == ',')
            line[n++] = '\\', line[n++] = *p;
        else if (*p == '\n')
            line[n++] = '\\', line[n++] = 'n';
        else if (*p != '\r')
            line[n++] = *p;
    }
    size_t col = 0;
    for (size_t i = 0; i < n; i++) {
        /* fold before 75 octets, never inside a UTF-8 sequence (continuation bytes 10xxxxxx) */
        size_t len = 1;
        while (i + len < n && ((unsigned char)line[i + len] & 0xC0) == 0x80)
            len++;
        if (col + len > 75) {
            fputs("\r\n ", stdout);
            col = 1;
        }
        fwrite(line + i, 1, len, stdout);
        col += len;
        i += len - 1;
    }
    fputs("\r\n", stdout);
}

static void s_ical_event(const Samordna__V1__Meeting *m, const char *stamp)
{
    char day[16] = "", next[16] = "";
    int y = atoi(m->date), mo = atoi(m->date + 5), d = atoi(m->date + 8);
    struct tm t = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d + 1, .tm_hour = 12};
    time_t after = timegm(&t);
    gmtime_r(&after, &t);
    snprintf(day, sizeof day, "%04d%02d%02d", y, mo, d);
    strftime(next, sizeof next, "%Y%m%d", &t);
    char uid[128], summary[600], text[4096];
    snprintf(uid, sizeof uid, "%s@samordna", m->id);
    snprintf(summary, sizeof summary, "%s", *m->title ? m->title : m->kind);
    size_t n = (size_t)snprintf(text, sizeof text, "Type: %s", m->kind);
    if (m->n_participants && n < sizeof text) {
        n += (size_t)snprintf(text + n, sizeof text - n, "\nDeltakere: ");
        for (size_t i = 0; i < m->n_participants && n < sizeof text; i++)
            n += (size_t)snprintf(text + n, sizeof text - n, "%s%s", i ? ", " : "",
                                  m->participants[i]);
    }
    if (*m->notes && n < sizeof text)
        n += (size_t)snprintf(text + n, sizeof text - n, "\n%s", m->notes);
    fputs("BEGIN:VEVENT\r\n", stdout);
    s_ical_line("UID", uid);
    printf("DTSTAMP:%s\r\nDTSTART;VALUE=DATE:%s\r\nDTEND;VALUE=DATE:%s\r\n", stamp, day, next);
    s_ical_line("SUMMARY", summary);
    s_ical_line("DESCRIPTION", text);
    s_ical_line("CATEGORIES", m->kind);
    if (*m->pilot || *m->municipality)
        s_ical_line("LOCATION", *m->municipality ? m->municipality : m->pilot);
    fputs("END:VEVENT\r\n", stdout);
}

/* Every page of the meetings the line asks for, as one calendar on stdout. */
static int s_meetings_ical(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__MeetingsRequest req = SAMORDNA__V1__MEETINGS_REQUEST__INIT;
    samctl_fill(a, &req.base);
    char token[256] = "", stamp[32];
    time_t now = (time_t)(sam_clock_now_ms() / 1000);
    struct tm t;
    gmtime_r(&now, &t);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &t);
    /* the first page before anything is written: a refusal (an unknown pilot) prints no
       calendar at all */
    req.page_token = token;
    Samordna__V1__MeetingsReply *r =
        (Samordna__V1__MeetingsReply *)samctl_call(ctl, "status", "status.meetings.list", &req.base,
                                                   &samordna__v1__meetings_reply__descriptor);
    if (!r) return 1;
    fputs("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//samordna//samctl meetings//NO\r\n"
          "CALSCALE:GREGORIAN\r\nMETHOD:PUBLISH\r\n",
          stdout);
    s_ical_line("X-WR-CALNAME", "Samordna – møter");
    fputs("X-WR-TIMEZONE:Europe/Oslo\r\n"
          "BEGIN:VTIMEZONE\r\nTZID:Europe/Oslo\r\n"
          "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\n"
          "DTSTART:19810329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
          "BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\n"
          "DTSTART:19961027T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n"
          "END:VTIMEZONE\r\n",
          stdout);
    for (;;) {
        for (size_t i = 0; i < r->n_meetings; i++)
            s_ical_event(r->meetings[i], stamp);
        snprintf(token, sizeof token, "%s", r->next_page_token);
        protobuf_c_message_free_unpacked(&r->base, NULL);
        if (!token[0]) break;
        req.page_token = token;
        r = (Samordna__V1__MeetingsReply *)samctl_call(ctl, "status", "status.meetings.list",
                                                       &req.base,
                                                       &samordna__v1__meetings_reply__descriptor);
        if (!r) return 1; /* the calendar is cut short: the exit code and stderr say so */
    }
    fputs("END:VCALENDAR\r\n", stdout);
    return 0;
}

static int s_meetings(samctl_t *ctl, const samctl_args_t *a)
{
    if (samctl_flag(a, "ical")) return s_meetings_ical(ctl, a);
    return samctl_query_run(ctl, a);
}

/* ---- steps --------------------------------------------------------------------------------- */

static void s_step_row(const ProtobufCMessage *rec)
{
    const Samordna__V1__PlanStep *s = (const Samordna__V1__PlanStep *)rec;
    s_cell(s->pilot, 14);
    s_cell(s->id, 16);
    s_cell(s->state, 12);
    s_cell(s->owner, 14);
    s_cell(*s->due ? s->due : "-", 11);
    printf("%s\n", s->title);
}

/* ---- barriers ------------------------------------------------------------------------------ */

static void s_barrier_text(const ProtobufCMessage *rec)
{
    const Samordna__V1__Barrier *b = (const Samordna__V1__Barrier *)rec;
    printf("%s: %s\n", b->id, b->title);
    printf("  state      %s\n", b->state);
    printf("  found in   %s%s%s\n", b->pilot, *b->pilot && *b->municipality ? " / " : "",
           b->municipality);
    printf("  raised by  %s\n", b->raised_by);
    printf("  concerns   %s%s%s", b->concerns, *b->reference ? ": " : "", b->reference);
    if (*b->concerns_agency) printf(" (%s)", b->concerns_agency);
    printf("\n");
    if (*b->description) printf("  %s\n", b->description);
    for (size_t i = 0; i < b->n_history; i++)
        printf("  %s  %-18s %-14s %s\n", b->history[i]->date, b->history[i]->state,
               b->history[i]->by, b->history[i]->note);
}

static void s_barrier_row(const ProtobufCMessage *rec)
{
    const Samordna__V1__Barrier *b = (const Samordna__V1__Barrier *)rec;
    const char *since = b->n_history ? b->history[b->n_history - 1]->date : "";
    s_cell(b->id, 18);
    s_cell(b->state, 18);
    printf("%-10s  ", since);
    s_cell(*b->pilot ? b->pilot : b->municipality, 14);
    s_cell(b->raised_by, 14);
    s_cell(b->concerns, 18);
    printf("%s\n", b->title);
}

static int s_barriers(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__BarriersRequest req = SAMORDNA__V1__BARRIERS_REQUEST__INIT;
    samctl_fill(a, &req.base);
    req.open_only = samctl_flag(a, "open");
    return samctl_list_query(ctl, a->cmd->query, &req.base);
}

/* ---- report -------------------------------------------------------------------------------- */

static void s_report_text(const ProtobufCMessage *rec)
{
    const Samordna__V1__StatusReportReply *r = (const Samordna__V1__StatusReportReply *)rec;
    bool en = samctl_lang == SAM_LANG_EN;
    char from[64], to[64];
    printf("%s %s – %s: %zu\n", en ? "Changes" : "Endringer",
           sam_words_date(samctl_lang, r->from, from, sizeof from),
           sam_words_date(samctl_lang, r->to, to, sizeof to), r->n_changes);
    if (r->n_changes)
        printf("%-10s  %s\n", en ? "DATE" : "DATO", en ? "CHANGE" : "ENDRING");
    else
        printf(en ? "no changes in the period\n" : "ingen endringer i perioden\n");
    for (size_t i = 0; i < r->n_changes; i++) /* each summary in --lang, names not ids */
        printf("%-10s  %s\n", r->changes[i]->date, r->changes[i]->summary);
    if (r->truncated)
        printf(en ? "(cut at %zu changes: narrow the period)\n"
                  : "(avkortet ved %zu endringer: velg en kortere periode)\n",
               r->n_changes);
}

/* ---- the tables ---------------------------------------------------------------------------- */

/* One record (samctl_list_query): the reply, as samctl_json_message or its text. */
#define S_SHOWS(method, request, reply, text)                                                      \
    (&(const samctl_query_t){"status", method, &samordna__v1__##request##__descriptor,             \
                             &samordna__v1__##reply##__descriptor, NULL, NULL, NULL, NULL, NULL,   \
                             text, false, 0, NULL, NULL})
/* A list (samctl_list_query): one page of a status query, its records as the reply has them. */
#define S_LISTS(method, request, reply, items, noun, columns, titles, row)                         \
    (&(const samctl_query_t){"status", method, request, &samordna__v1__##reply##__descriptor,      \
                             items, noun, columns, titles, NULL, row, false, 0, NULL, NULL})

/* What a write publishes (samctl_write): the subject is the first N arguments, the ids the
   command names; the event id a fresh UUID (reaching the same milestone twice is refused by
   the service, not merged). */
#define S_WRITES(type, payload, n)                                                                 \
    (&(const samctl_write_t){"status", EV(type), &samordna__v1__##payload##__descriptor, n, NULL})

/* The date of an event: the service checks it (YYYY-MM-DD) and says so when it is not one. */
#define S_EVENT_DATE(what)                                                                         \
    {                                                                                              \
        "date", 0, "YYYY-MM-DD", SAMCTL_TEXT, 0, what                                              \
    }

static const samctl_opt_t s_board_opts[] = {
    {"as-of", 0, "YYYY-MM-DD", SAMCTL_DATE, 0, "as it stood at the end of that day"},
    {"pilot", 0, "PILOT", SAMCTL_TEXT, 0, "only this pilot's row"},
    {NULL},
};
const samctl_cmd_t samctl_board_cmd = {
    .name = "board",
    .about =
        "The pilot status board: one row per pilot, one column per milestone kind with the day\n"
        "it was reached, the phase, the last meeting and the open barriers. --as-of shows it as\n"
        "it stood that day, folded from each pilot's history. It fits 120 columns: a pilot's\n"
        "second line tells who and where; a long cell is cut with \"…\". --json: the board as\n"
        "one object; --csv: a row a pilot, a column a milestone kind, for a spreadsheet.",
    .opts = s_board_opts,
    .run = samctl_query_run,
    .query = S_SHOWS("status.board", board_request, board_reply, s_board_text),
};

static const samctl_opt_t s_define_opts[] = {
    {"label", 0, "LABEL", SAMCTL_TEXT, 0, "the column's label on the board"},
    {"order", 0, "N", SAMCTL_COUNT, 0, "its place among the kinds (1 is first)"},
    {NULL},
};
static const samctl_cmd_t s_kinds_subs[] = {
    {.name = "define",
     .args = "ID",
     .about = "Adds a milestone kind, or gives an existing one a new label or place.",
     .opts = s_define_opts,
     .run = samctl_write_run,
     .writes = S_WRITES("milestone_kind.defined", milestone_kind, 1)},
    {NULL},
};
const samctl_cmd_t samctl_kinds_cmd = {
    .name = "kinds",
    .about = "The milestone kinds, in the board's order: a pilot reaches each of them once.",
    .run = samctl_query_run,
    .query = S_LISTS("status.kinds.list", NULL, milestone_kinds_reply, "kinds", "milestone kinds",
                     "%5s  %-24s %s", "ORDER|KIND|LABEL", s_kind_row),
    .subs = s_kinds_subs,
};

static const samctl_opt_t s_reach_opts[] = {
    S_EVENT_DATE("the day it was reached"),
    {"actor", 0, "AGENCY", SAMCTL_TEXT, 0, "who says so"},
    {"evidence", 0, "TEXT", SAMCTL_TEXT, 0, "what shows it (a document, a meeting)"},
    {"planned", 0, NULL, SAMCTL_TEXT, 0, "a day still to come: the milestone is planned"},
    {NULL},
};
static const samctl_opt_t s_correct_ms_opts[] = {
    S_EVENT_DATE("the right day it was reached (default: kept)"),
    {"evidence", 0, "TEXT", SAMCTL_TEXT, 0, "the right evidence (default: kept)"},
    {"reason", 0, "TEXT", SAMCTL_TEXT, SAMCTL_REQUIRED, "why: kept with the correction"},
    {"actor", 0, "AGENCY", SAMCTL_TEXT, 0, "who corrects it (default --source)"},
    {"planned", 0, NULL, SAMCTL_TEXT, 0, "the right day is still to come"},
    {NULL},
};
static const samctl_opt_t s_revert_opts[] = {
    S_EVENT_DATE("the day it no longer held"),
    {"reason", 0, "TEXT", SAMCTL_TEXT, 0, "why (the service requires one)"},
    {"actor", 0, "AGENCY", SAMCTL_TEXT, 0, "who says so"},
    {NULL},
};
static const samctl_cmd_t s_milestone_subs[] = {
    {.name = "reach",
     .args = "PILOT KIND",
     .about = "Records that PILOT reached the milestone KIND (samctl kinds lists them).",
     .opts = s_reach_opts,
     .run = s_milestone_change,
     .writes = S_WRITES("milestone.reached", milestone_reached, 2)},
    {.name = "revert",
     .args = "PILOT KIND",
     .about = "Records that a milestone PILOT reached no longer holds.",
     .opts = s_revert_opts,
     .run = s_milestone_change,
     .writes = S_WRITES("milestone.reverted", milestone_reverted, 2)},
    {.name = "correct",
     .args = "PILOT KIND",
     .about = "Corrects the day or the evidence of a milestone PILOT reached, with --reason.\n"
              "The change corrected stays in the history, marked superseded; the board, also\n"
              "as it stood on a past day, follows the correction. A day still to come needs\n"
              "--planned, as when reaching one.",
     .opts = s_correct_ms_opts,
     .run = s_milestone_change,
     .writes = S_WRITES("milestone.corrected", milestone_corrected, 2)},
    {.name = "history",
     .args = "PILOT",
     .about = "Every milestone change of PILOT, in date order.",
     .run = samctl_query_run,
     .query = S_LISTS("status.milestones.history",
                      &samordna__v1__milestone_history_request__descriptor, milestone_history_reply,
                      "changes", "milestone changes", "%-10s  %-8s %-24s %-14s %s",
                      "DATE|CHANGE|KIND|ACTOR|EVIDENCE OR REASON", s_change_row)},
    {NULL},
};
const samctl_cmd_t samctl_milestone_cmd = {
    .name = "milestone",
    .about = "A pilot's milestones: reach one, revert one, or list its history.",
    .subs = s_milestone_subs,
};

static const samctl_opt_t s_log_opts[] = {
    {"kind", 0, "KIND", SAMCTL_TEXT, 0, "what meeting (working, steering, startup, internal, …)"},
    S_EVENT_DATE("the day it was held (the first one of a series)"),
    {"pilot", 0, "PILOT", SAMCTL_TEXT, 0, "the pilot it was about"},
    {"municipality", 0, "MUNICIPALITY", SAMCTL_TEXT, 0, "or the municipality, without a pilot"},
    {"title", 0, "TEXT", SAMCTL_TEXT, 0, "its title"},
    {"participant", 0, "WHO", SAMCTL_TEXT, SAMCTL_REPEAT,
     "an agency by its id (checked), or anyone else by name, who took part"},
    {"notes", 0, "TEXT", SAMCTL_TEXT, 0, "the minutes, or a pointer to them"},
    {"monthly-until", 0, "YYYY-MM-DD", SAMCTL_TEXT, 0,
     "a series: the same meeting every month until that day, each on a working day (the next\n"
     "one of its month when the day is a weekend or a public holiday, else the one before)"},
    {"any-day", 0, NULL, SAMCTL_TEXT, 0, "a series keeps its day on weekends and holidays too"},
    {NULL},
};
static const samctl_opt_t s_correct_meeting_opts[] = {
    {"kind", 0, "KIND", SAMCTL_TEXT, 0, "the right kind"},
    S_EVENT_DATE("the right day"),
    {"title", 0, "TEXT", SAMCTL_TEXT, 0, "the right title"},
    {"participant", 0, "WHO", SAMCTL_TEXT, SAMCTL_REPEAT,
     "the whole list of who took part, one each (agency ids checked)"},
    {"notes", 0, "TEXT", SAMCTL_TEXT, 0, "the right notes"},
    {"reason", 0, "TEXT", SAMCTL_TEXT, SAMCTL_REQUIRED, "why: kept with the correction"},
    {NULL},
};
static const samctl_opt_t s_cancel_meeting_opts[] = {
    {"reason", 0, "TEXT", SAMCTL_TEXT, SAMCTL_REQUIRED, "why it did not take place"},
    {NULL},
};
static const samctl_cmd_t s_meeting_subs[] = {
    {.name = "log",
     .args = "ID",
     .about = "Logs a meeting (or, with --monthly-until, a monthly series) under ID.",
     .opts = s_log_opts,
     .run = s_meeting_log,
     .writes = S_WRITES("meeting.logged", meeting_logged, 1)},
    {.name = "correct",
     .args = "ID",
     .about = "Corrects a logged meeting's day, kind, title, participants or notes, with --reason.",
     .opts = s_correct_meeting_opts,
     .run = s_meeting_correct,
     .writes = S_WRITES("meeting.corrected", meeting_corrected, 1)},
    {.name = "cancel",
     .args = "ID",
     .about = "Cancels a logged meeting that did not take place: it stays, marked cancelled,\n"
              "and leaves the lists and the board.",
     .opts = s_cancel_meeting_opts,
     .run = samctl_write_run,
     .writes = S_WRITES("meeting.cancelled", meeting_cancelled, 1)},
    {.name = "history",
     .args = "ID",
     .about = "Every event of a meeting: logged, corrected, cancelled (who, when, why).",
     .run = samctl_history_run,
     .query = &(const samctl_query_t){.service = "status", .method = EV("meeting.")}},
    {NULL},
};
const samctl_cmd_t samctl_meeting_cmd = {
    .name = "meeting",
    .about = "Meetings of the programme, a pilot or a municipality: `meeting log` records one.",
    .subs = s_meeting_subs,
};

static const samctl_opt_t s_meetings_opts[] = {
    {"pilot", 0, "PILOT", SAMCTL_TEXT, 0, "only this pilot's"},
    {"municipality", 0, "MUNICIPALITY", SAMCTL_TEXT, 0, "only this municipality's"},
    {"from", 0, "YYYY-MM-DD", SAMCTL_DATE, 0, "held on that day or later"},
    {"to", 0, "YYYY-MM-DD", SAMCTL_DATE, 0, "held on that day or earlier"},
    {"kind", 0, "KIND", SAMCTL_TEXT, 0, "only meetings of this kind"},
    {"page-size", 0, "N", SAMCTL_COUNT, 0, "at most N (the service's default when not given)"},
    {"page-token", 0, "TOKEN", SAMCTL_TEXT, 0, "go on where the last page ended"},
    {"ical", 0, NULL, SAMCTL_TEXT, 0,
     "every page as one iCalendar file (RFC 5545, all-day events, Europe/Oslo) on stdout"},
    {NULL},
};
const samctl_cmd_t samctl_meetings_cmd = {
    .name = "meetings",
    .about =
        "Meetings in date order, one page; \"next\" (--json) or the last line names the rest.\n"
        "--ical: all of them as a calendar to import: samctl meetings --ical > møter.ics",
    .opts = s_meetings_opts,
    .run = s_meetings,
    .query = S_LISTS("status.meetings.list", &samordna__v1__meetings_request__descriptor,
                     meetings_reply, "meetings", "meetings", "%-10s  %-15s%-16s%s",
                     "DATE|KIND|WHERE|TITLE", s_meeting_row),
};

static const samctl_opt_t s_add_opts[] = {
    {"title", 0, "TEXT", SAMCTL_TEXT, 0, "what the step is"},
    {"owner", 0, "AGENCY", SAMCTL_TEXT, 0, "who carries it"},
    {"due", 0, "YYYY-MM-DD", SAMCTL_TEXT, 0, "when it is due"},
    {"state", 0, "STATE", SAMCTL_TEXT, 0, "planned, started, done, … (default planned)"},
    S_EVENT_DATE("the day it was added (default today, in the programme's time zone)"),
    {NULL},
};
static const samctl_opt_t s_update_opts[] = {
    S_EVENT_DATE("the day of the change"),
    {"title", 0, "TEXT", SAMCTL_TEXT, 0, "a new title"},
    {"owner", 0, "AGENCY", SAMCTL_TEXT, 0, "a new owner"},
    {"due", 0, "YYYY-MM-DD", SAMCTL_TEXT, 0, "a new due date"},
    {"state", 0, "STATE", SAMCTL_TEXT, 0, "a new state"},
    {"note", 0, "TEXT", SAMCTL_TEXT, 0, "why"},
    {NULL},
};
static const samctl_cmd_t s_step_subs[] = {
    {.name = "add",
     .args = "PILOT ID",
     .about = "Adds a step to PILOT's work plan.",
     .opts = s_add_opts,
     .run = samctl_write_run,
     .writes = S_WRITES("step.added", plan_step_added, 2)},
    {.name = "update",
     .args = "PILOT ID",
     .about = "Changes a step: what is given changes, the rest stays.",
     .opts = s_update_opts,
     .run = samctl_write_run,
     .writes = S_WRITES("step.updated", plan_step_updated, 2)},
    {NULL},
};
const samctl_cmd_t samctl_step_cmd = {
    .name = "step",
    .about = "A pilot's work-plan steps: add one, update one (steps lists them).",
    .subs = s_step_subs,
};

static const samctl_opt_t s_steps_opts[] = {
    {"state", 0, "STATE", SAMCTL_TEXT, 0, "only steps in this state"},
    {NULL},
};
const samctl_cmd_t samctl_steps_cmd = {
    .name = "steps",
    .args = "[PILOT]",
    .about = "Work-plan steps, of every pilot or of PILOT.",
    .opts = s_steps_opts,
    .run = samctl_query_run,
    .query = S_LISTS("status.steps.list", &samordna__v1__plan_steps_request__descriptor,
                     plan_steps_reply, "steps", "steps", "%-14s%-16s%-12s%-14s%-11s%s",
                     "PILOT|STEP|STATE|OWNER|DUE|TITLE", s_step_row),
};

static const samctl_opt_t s_register_opts[] = {
    {"title", 0, "TEXT", SAMCTL_TEXT, 0, "what gets in the way"},
    {"concerns", 0, "rule|practice|allocation_letter", SAMCTL_TEXT, 0, "what kind of barrier"},
    S_EVENT_DATE("the day it was found"),
    {"pilot", 0, "PILOT", SAMCTL_TEXT, 0, "the pilot that found it"},
    {"municipality", 0, "MUNICIPALITY", SAMCTL_TEXT, 0, "or the municipality"},
    {"raised-by", 0, "AGENCY", SAMCTL_TEXT, 0, "who raised it"},
    {"reference", 0, "TEXT", SAMCTL_TEXT, 0, "the rule's name or paragraph"},
    {"concerns-agency", 0, "AGENCY", SAMCTL_TEXT, 0, "the agency whose rule it is"},
    {"description", 0, "TEXT", SAMCTL_TEXT, 0, "more about it"},
    {NULL},
};
static const samctl_opt_t s_move_opts[] = {
    S_EVENT_DATE("the day it moved"),
    {"by", 0, "AGENCY", SAMCTL_TEXT, 0, "who moved it"},
    {"note", 0, "TEXT", SAMCTL_TEXT, 0, "why, or what happened"},
    {NULL},
};
static const samctl_opt_t s_reopen_opts[] = {
    S_EVENT_DATE("the day it was reopened"),
    {"state", 0, "STATE", SAMCTL_TEXT, 0,
     "the open state it returns to (default: the one before it closed)"},
    {"by", 0, "AGENCY", SAMCTL_TEXT, 0, "who reopened it"},
    {"note", 0, "TEXT", SAMCTL_TEXT, SAMCTL_REQUIRED, "why it was closed by mistake"},
    {NULL},
};
static const samctl_cmd_t s_barrier_subs[] = {
    {.name = "register",
     .args = "ID",
     .about = "Registers a barrier: a rule, practice or allocation letter in the way of a pilot.",
     .opts = s_register_opts,
     .run = samctl_write_run,
     .writes = S_WRITES("barrier.registered", barrier_registered, 1)},
    {.name = "move",
     .args = "ID STATE",
     .about = "Moves a barrier to STATE (raised_regionally, raised_nationally, resolved, …).",
     .opts = s_move_opts,
     .run = samctl_write_run,
     .writes = S_WRITES("barrier.moved", barrier_moved, 1)},
    {.name = "reopen",
     .args = "ID",
     .about = "Reopens a barrier closed by mistake (changed, rejected, withdrawn), with --note.",
     .opts = s_reopen_opts,
     .run = samctl_write_run,
     .writes = &(const samctl_write_t){"status", EV("barrier.reopened"),
                                       &samordna__v1__barrier_moved__descriptor, 1, NULL}},
    {.name = "history",
     .args = "ID",
     .about = "Every event of a barrier: registered, moved, reopened (who, when, why).",
     .run = samctl_history_run,
     .query = &(const samctl_query_t){.service = "status", .method = EV("barrier.")}},
    {.name = "show",
     .args = "ID",
     .about = "One barrier and its history.",
     .run = samctl_query_run,
     .query = S_SHOWS("status.barriers.get", status_get_request, barrier, s_barrier_text)},
    {NULL},
};
const samctl_cmd_t samctl_barrier_cmd = {
    .name = "barrier",
    .about =
        "Rules that get in the way: register one, move it along, show it (barriers lists them).",
    .subs = s_barrier_subs,
};

static const samctl_opt_t s_barriers_opts[] = {
    {"state", 0, "STATE", SAMCTL_TEXT, 0, "only barriers in this state"},
    {"pilot", 0, "PILOT", SAMCTL_TEXT, 0, "only this pilot's"},
    {"municipality", 0, "MUNICIPALITY", SAMCTL_TEXT, 0, "only this municipality's"},
    {"raised-by", 0, "AGENCY", SAMCTL_TEXT, 0, "only those this agency raised"},
    {"concerns", 0, "KIND", SAMCTL_TEXT, 0, "rule, practice or allocation_letter"},
    {"open", 0, NULL, SAMCTL_TEXT, 0, "only those not resolved"},
    {"page-size", 0, "N", SAMCTL_COUNT, 0, "at most N (the service's default when not given)"},
    {"page-token", 0, "TOKEN", SAMCTL_TEXT, 0, "go on where the last page ended"},
    {NULL},
};
const samctl_cmd_t samctl_barriers_cmd = {
    .name = "barriers",
    .about = "Barriers, one page; a municipality's barrier without a pilot is listed here, not on\n"
             "the board.",
    .opts = s_barriers_opts,
    .run = s_barriers,
    .query = S_LISTS("status.barriers.list", &samordna__v1__barriers_request__descriptor,
                     barriers_reply, "barriers", "barriers", "%-18s%-18s%-12s%-14s%-14s%-18s%s",
                     "BARRIER|STATE|SINCE|WHERE|RAISED BY|CONCERNS|TITLE", s_barrier_row),
};

static const samctl_opt_t s_report_opts[] = {
    {"from", 0, "YYYY-MM-DD", SAMCTL_DATE, SAMCTL_REQUIRED, "the first day of the period"},
    {"to", 0, "YYYY-MM-DD", SAMCTL_DATE, SAMCTL_REQUIRED, "the last day of the period"},
    {NULL},
};
const samctl_cmd_t samctl_report_cmd = {
    .name = "report",
    .about = "What changed in a period: milestones, meetings, steps and barriers, in date order;\n"
             "the half-yearly briefing's raw material. --json: the report as one object.",
    .opts = s_report_opts,
    .run = samctl_query_run,
    .query = S_SHOWS("status.report", status_report_request, status_report_reply, s_report_text),
};
