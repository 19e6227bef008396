/*  gw_board_selftest — the board's HTML from replies made here, without a broker: the grid
    with names and Norwegian labels, the grants in kroner with no-break spaces, barriers by
    level as of the day, escaping of everything from the store, and the page when parts are
    missing. With an argument, writes the full page there. Exits 0 when every check holds, 1 (with
   the failed check) otherwise.
*/
#include "gw_board_html.h"
#include "sam_testkit.h"

#include "samordna/v1/grants.pb-c.h"
#include "samordna/v1/notify.pb-c.h"
#include "samordna/v1/registry.pb-c.h"
#include "samordna/v1/status.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK SAM_CHECK /* sam_testkit.h */

static const char *const s_kinds[][2] = {{"defined_challenge", "Definert utfordring"},
                                         {"anchored", "Forankret"},
                                         {"knowledge_base", "Kunnskapsgrunnlag"},
                                         {"defined_need", "Definert behov"},
                                         {"organised", "Organisert"},
                                         {"operative", "Operativ"},
                                         {"sustainable_structures", "Bærekraftige strukturer"}};

/* Packs m into the view as part p, the way the route keeps a reply body. */
static void s_keep(gw_board_view_t *v, gw_board_part_t p, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(len + 1);
    protobuf_c_message_pack(m, b);
    SAM_CHECK(gw_board_keep(v, p, b, len) == 0);
    free(b);
}

/* The section of the page that starts at `from` up to the next "<tr" (one table row). */
static char *s_row(const char *html, const char *from)
{
    const char *a = strstr(html, from);
    if (!a) return strdup("");
    const char *z = strstr(a + 1, "<tr");
    return strndup(a, z ? (size_t)(z - a) : strlen(a));
}

static void s_fill(gw_board_view_t *v)
{
    /* the grid: Halden reached all six up to operative, Fredrikstad two */
    Samordna__V1__MilestoneKind kind[7], *kinds[7];
    for (int k = 0; k < 7; k++) {
        samordna__v1__milestone_kind__init(&kind[k]);
        kind[k].id = (char *)s_kinds[k][0];
        kind[k].label = (char *)s_kinds[k][1];
        kind[k].order = (uint32_t)k + 1;
        kinds[k] = &kind[k];
    }
    Samordna__V1__BoardCell cell[2][7], *cells[2][7];
    Samordna__V1__BoardRow row[2], *rows[2];
    const char *pilot[2] = {"halden", "fredrikstad"}, *name[2] = {"Halden", "Fredrikstad"};
    const int reached[2] = {6, 2};
    for (int r = 0; r < 2; r++) {
        samordna__v1__board_row__init(&row[r]);
        row[r].pilot = row[r].municipality = (char *)pilot[r];
        row[r].municipality_name = (char *)name[r];
        for (int k = 0; k < 7; k++) {
            samordna__v1__board_cell__init(&cell[r][k]);
            cell[r][k].kind = (char *)s_kinds[k][0];
            cell[r][k].date = k < reached[r] ? "2019-11-11" : "";
            cells[r][k] = &cell[r][k];
        }
        row[r].n_cells = 7;
        row[r].cells = cells[r];
        row[r].phase = (char *)s_kinds[reached[r] - 1][0];
        row[r].phase_label = (char *)s_kinds[reached[r] - 1][1];
        rows[r] = &row[r];
    }
    row[0].last_meeting_date = "2019-01-18";
    row[0].last_meeting_kind = "working";
    Samordna__V1__BoardReply board = SAMORDNA__V1__BOARD_REPLY__INIT;
    board.as_of = "2019-11-30";
    board.n_kinds = 7;
    board.kinds = kinds;
    board.n_rows = 2;
    board.rows = rows;
    s_keep(v, GW_BOARD_GRID, &board.base);

    /* meetings: one of Halden's, one with a hostile title, one of the programme */
    Samordna__V1__Meeting m[3], *ms[3];
    for (int i = 0; i < 3; i++) {
        samordna__v1__meeting__init(&m[i]);
        ms[i] = &m[i];
    }
    m[0].id = "m1", m[0].kind = "anchoring", m[0].date = "2018-09-19", m[0].pilot = "halden";
    m[0].title = "Forankringsmøte / oppstartmøte Halden";
    m[1].id = "m2", m[1].kind = "working", m[1].date = "2018-10-18", m[1].pilot = "halden";
    m[1].title = "<img src=x onerror=alert(1)>";
    m[2].id = "m3", m[2].kind = "briefing", m[2].date = "2019-02-01";
    m[2].title = "Møte med ordførere og rådmenn";
    Samordna__V1__MeetingsReply meetings = SAMORDNA__V1__MEETINGS_REPLY__INIT;
    meetings.n_meetings = 3;
    meetings.meetings = ms;
    s_keep(v, GW_BOARD_MEETINGS, &meetings.base);

    /* barriers: one raised regionally on 2019-10-01 and nationally on 2019-12-15 (so it is
       regional as of 2019-11-30), one registered after the day (not shown) */
    Samordna__V1__BarrierStep st[3], *sts[3];
    for (int i = 0; i < 3; i++) {
        samordna__v1__barrier_step__init(&st[i]);
        sts[i] = &st[i];
    }
    st[0].state = "identified", st[0].date = "2019-09-01";
    st[1].state = "raised_regionally", st[1].date = "2019-10-01";
    st[2].state = "raised_nationally", st[2].date = "2019-12-15";
    Samordna__V1__BarrierStep late = SAMORDNA__V1__BARRIER_STEP__INIT, *lates[1] = {&late};
    late.state = "identified", late.date = "2020-01-10";
    Samordna__V1__Barrier b[2], *bs[2];
    for (int i = 0; i < 2; i++) {
        samordna__v1__barrier__init(&b[i]);
        bs[i] = &b[i];
    }
    b[0].id = "b1", b[0].title = "Tildelingsbrev <script>alert(\"x\")</script> & co";
    b[0].pilot = "halden", b[0].raised_by = "fmov", b[0].concerns = "allocation_letter";
    b[0].state = "raised_nationally", b[0].n_history = 3, b[0].history = sts;
    b[1].id = "b2", b[1].title = "Senere barriere", b[1].municipality = "fredrikstad";
    b[1].raised_by = "fmov", b[1].concerns = "rule", b[1].state = "identified";
    b[1].n_history = 1, b[1].history = lates;
    Samordna__V1__BarriersReply barriers = SAMORDNA__V1__BARRIERS_REPLY__INIT;
    barriers.n_barriers = 2;
    barriers.barriers = bs;
    s_keep(v, GW_BOARD_BARRIERS, &barriers.base);

    /* grants 2019: the fixture's five awards */
    const char *rec[5] = {"halden", "sarpsborg", "fredrikstad", "indre-ostfold", "hiof"};
    const int64_t kr[5] = {200000, 200000, 200000, 500000, 400000};
    Samordna__V1__OverviewGroup g[5], *gs[5];
    Samordna__V1__Overview ov = SAMORDNA__V1__OVERVIEW__INIT;
    for (int i = 0; i < 5; i++) {
        samordna__v1__overview_group__init(&g[i]);
        g[i].key = (char *)rec[i];
        g[i].committed_ore = kr[i] * 100;
        g[i].awards = 1;
        gs[i] = &g[i];
        ov.committed_ore += kr[i] * 100;
    }
    ov.year = 2019, ov.group_by = "recipient", ov.n_groups = 5, ov.groups = gs;
    s_keep(v, GW_BOARD_GRANTS, &ov.base);

    /* names: the registry's, one with bytes that are not UTF-8 */
    Samordna__V1__Agency ag[2], *ags[2];
    for (int i = 0; i < 2; i++) {
        samordna__v1__agency__init(&ag[i]);
        ags[i] = &ag[i];
    }
    ag[0].id = "hiof", ag[0].name = "Høgskolen i Østfold";
    ag[1].id = "fmov", ag[1].name = "Fylkesmannen i Oslo og Viken\xff";
    Samordna__V1__AgencyList al = SAMORDNA__V1__AGENCY_LIST__INIT;
    al.n_items = 2, al.items = ags;
    s_keep(v, GW_BOARD_AGENCIES, &al.base);
    Samordna__V1__Municipality mu[2], *mus[2] = {&mu[0], &mu[1]};
    samordna__v1__municipality__init(&mu[0]);
    samordna__v1__municipality__init(&mu[1]);
    mu[0].id = "indre-ostfold", mu[0].name = "Indre Østfold";
    mu[1].id = "sarpsborg", mu[1].name = "Sarpsborg kommune med et svært langt navn";
    Samordna__V1__MunicipalityList ml = SAMORDNA__V1__MUNICIPALITY_LIST__INIT;
    ml.n_items = 2, ml.items = mus;
    s_keep(v, GW_BOARD_MUNICIPALITIES, &ml.base);

    /* the briefings issued, newest first: one after the day, one before it */
    Samordna__V1__Briefing br[2];
    Samordna__V1__BriefingRecord brec[2], *brecs[2] = {&brec[0], &brec[1]};
    for (int i = 0; i < 2; i++) {
        samordna__v1__briefing__init(&br[i]);
        samordna__v1__briefing_record__init(&brec[i]);
        brec[i].briefing = &br[i];
    }
    br[0].id = "briefing-2019-12-01", br[0].date = "2019-12-01";
    br[0].text = "Senere orientering";
    br[1].id = "briefing-2019-06-01\"<x>", br[1].date = "2019-06-01";
    br[1].period_from = "2018-12-01", br[1].period_to = "2019-05-31";
    br[1].text = "Velferdspiloten – status\n\nHalden nådde Operativ";
    Samordna__V1__BriefingList bl = SAMORDNA__V1__BRIEFING_LIST__INIT;
    bl.n_items = 2, bl.items = brecs;
    s_keep(v, GW_BOARD_BRIEFING, &bl.base);
}

int main(int argc, char **argv)
{
    char day[11], err[256];
    CHECK(gw_board_day("2019-11-30", day, err, sizeof err) == 0 && !strcmp(day, "2019-11-30"));
    CHECK(gw_board_day("", day, err, sizeof err) == 0 && strlen(day) == 10);
    CHECK(gw_board_day("30.11.2019", day, err, sizeof err) == -1);
    CHECK(strstr(err, "as_of") && strstr(err, "ÅÅÅÅ-MM-DD") && strstr(err, "30.11.2019"));
    CHECK(gw_board_day("2019-02-29", day, err, sizeof err) == -1);
    CHECK(gw_board_day("<b>\n", day, err, sizeof err) == -1 && !strchr(err, '\n'));

    /* each part's request decodes as its method's request type */
    size_t len;
    uint8_t *body = gw_board_request(GW_BOARD_GRANTS, "2019-11-30", &len);
    Samordna__V1__OverviewRequest *orq = samordna__v1__overview_request__unpack(NULL, len, body);
    CHECK(orq && orq->year == 2019 && !*orq->recipient);
    samordna__v1__overview_request__free_unpacked(orq, NULL);
    free(body);
    body = gw_board_request(GW_BOARD_MEETINGS, "2019-11-30", &len);
    Samordna__V1__MeetingsRequest *mrq = samordna__v1__meetings_request__unpack(NULL, len, body);
    CHECK(mrq && !strcmp(mrq->to, "2019-11-30") && mrq->page_size == 1000);
    samordna__v1__meetings_request__free_unpacked(mrq, NULL);
    free(body);
    CHECK(!strcmp(gw_board_method(GW_BOARD_GRID), "status.board"));

    gw_board_view_t v = {0};
    memcpy(v.as_of, "2019-11-30", 11);
    s_fill(&v);
    int status = 0;
    char *html = gw_board_render(&v, &len, &status);
    CHECK(html && status == 200 && strlen(html) == len);
    CHECK(strstr(html, "<html lang=\"nb\">"));
    CHECK(strstr(html, "<a class=\"skip\" href=\"#innhold\">"));
    CHECK(strstr(html, "<main id=\"innhold\""));
    CHECK(strstr(html, "<input type=\"date\" id=\"as_of\" name=\"as_of\" required "
                       "value=\"2019-11-30\">"));
    CHECK(strstr(html, "<th scope=\"col\">Operativ</th>"));
    CHECK(strstr(html, "<th scope=\"col\">Bærekraftige strukturer</th>"));
    CHECK(strstr(html, "Milepæler per 30.\xC2\xA0november 2019"));

    char *halden = s_row(html, "<tr data-pilot=\"halden\">");
    CHECK(strstr(halden, "<th scope=\"row\">Halden</th>"));
    CHECK(strstr(halden, "data-kind=\"operative\" class=\"naadd\""));
    CHECK(strstr(halden, "data-kind=\"sustainable_structures\" class=\"ikke\""));
    CHECK(strstr(halden, "<td class=\"fase\">Operativ</td>"));
    CHECK(strstr(halden, "Arbeidsmøte")); /* the last meeting's kind in Norwegian */
    CHECK(!strstr(halden, "working"));
    free(halden);
    char *fredrikstad = s_row(html, "<tr data-pilot=\"fredrikstad\">");
    CHECK(strstr(fredrikstad, "data-kind=\"anchored\" class=\"naadd\""));
    CHECK(strstr(fredrikstad, "data-kind=\"knowledge_base\" class=\"ikke\""));
    CHECK(strstr(fredrikstad, "<td class=\"fase\">Forankret</td>"));
    free(fredrikstad);

    /* grants: names not ids, kroner grouped with no-break spaces */
    CHECK(strstr(html, "<th scope=\"row\">Høgskolen i Østfold</th>"));
    CHECK(strstr(html, "<th scope=\"row\">Indre Østfold</th>"));
    CHECK(strstr(html, "id=\"sum\">1\xC2\xA0"
                       "500\xC2\xA0"
                       "000\xC2\xA0kr</td>"));
    CHECK(strstr(html, "500\xC2\xA0"
                       "000\xC2\xA0kr"));
    CHECK(strstr(html, "<svg class=\"stolper\""));
    /* a long name is cut in the chart, whole in the table */
    CHECK(strstr(html, ">Sarpsborg kommune med…</text>"));
    CHECK(strstr(html, "<th scope=\"row\">Sarpsborg kommune med et svært langt navn</th>"));
    CHECK(!strstr(html, ">hiof<"));

    /* meetings and barriers: Norwegian words, escaped titles, the state as of the day */
    CHECK(strstr(html, "Forankringsmøte</strong>: Forankringsmøte / oppstartmøte Halden"));
    CHECK(strstr(html, "&lt;img src=x onerror=alert(1)&gt;"));
    CHECK(!strstr(html, "<img"));
    CHECK(strstr(html, "Felles for programmet"));
    CHECK(
        strstr(html, "Tildelingsbrev &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co"));
    CHECK(!strstr(html, "<script>"));
    const char *regional = strstr(html, "Løftet regionalt <span class=\"antall\">(1)</span>");
    const char *national = strstr(html, "Løftet nasjonalt <span class=\"antall\">(0)</span>");
    CHECK(regional && national && regional < national);
    CHECK(strstr(regional, "Tildelingsbrev &lt;script") < national);
    CHECK(!strstr(html, "Senere barriere"));
    CHECK(strstr(html, "Fylkesmannen i Oslo og Viken\xEF\xBF\xBD")); /* \xff replaced */
    CHECK(!strstr(html, "\xff"));
    /* the briefing: the latest issued on or before the day, linked with its id encoded */
    CHECK(strstr(html, "Halden nådde Operativ") && !strstr(html, "Senere orientering"));
    CHECK(strstr(html, "ble utstedt 1.\xC2\xA0juni 2019"));
    CHECK(strstr(html, "href=\"/briefing/briefing-2019-06-01%22%3Cx%3E\""));
    CHECK(!strstr(html, "Noe mangler"));
    if (argc > 1) { /* the page to look at: gw_board_selftest OUT.html */
        FILE *f = fopen(argv[1], "w");
        CHECK(f && fwrite(html, 1, len, f) == len);
        if (f) fclose(f);
    }
    free(html);

    /* a day before every briefing: none yet, said plainly */
    memcpy(v.as_of, "2019-05-31", 11);
    CHECK(!gw_board_briefing(&v));
    html = gw_board_render(&v, &len, &status);
    CHECK(html && strstr(html, "Ingen orientering er utstedt ennå per 31.\xC2\xA0mai 2019."));
    CHECK(!strstr(html, "href=\"/briefing/"));
    free(html);
    memcpy(v.as_of, "2019-12-01", 11); /* the day of one: that one */
    CHECK(gw_board_briefing(&v) && !strcmp(gw_board_briefing(&v)->id, "briefing-2019-12-01"));
    memcpy(v.as_of, "2019-11-30", 11);

    /* a part missing: named, the rest shown, still 200 */
    gw_board_miss(&v, GW_BOARD_GRANTS, "503 no worker for <grants>");
    protobuf_c_message_free_unpacked(v.reply[GW_BOARD_GRANTS], NULL);
    v.reply[GW_BOARD_GRANTS] = NULL;
    html = gw_board_render(&v, &len, &status);
    CHECK(html && status == 200);
    CHECK(strstr(html, "Mangler tilskuddsoversikten (tilskuddstjenesten): <code>503 no worker "
                       "for &lt;grants&gt;</code>"));
    CHECK(strstr(html, "<td class=\"fase\">Operativ</td>"));
    free(html);

    /* the grid missing: 503, and a body that says so */
    protobuf_c_message_free_unpacked(v.reply[GW_BOARD_GRID], NULL);
    v.reply[GW_BOARD_GRID] = NULL;
    gw_board_miss(&v, GW_BOARD_GRID, "504 status did not answer");
    html = gw_board_render(&v, &len, &status);
    CHECK(html && status == 503 && strstr(html, "Mangler milepælstavla"));
    free(html);

    /* a body that is not the part's reply type */
    const uint8_t junk[] = {0xff, 0xff, 0xff};
    CHECK(gw_board_keep(&v, GW_BOARD_BRIEFING, junk, sizeof junk) == -1);
    CHECK(!v.reply[GW_BOARD_BRIEFING] &&
          strstr(v.missing[GW_BOARD_BRIEFING], "samordna.v1.BriefingList"));
    gw_board_view_clear(&v);
    CHECK(!v.reply[GW_BOARD_AGENCIES] && !v.missing[GW_BOARD_GRID]);

    /* nothing at all: every part named, no crash */
    gw_board_view_t none = {0};
    memcpy(none.as_of, "2019-11-30", 11);
    html = gw_board_render(&none, &len, &status);
    CHECK(html && status == 503 && strstr(html, "Mangler orienteringen til styringsgruppen"));
    CHECK(strstr(html, "Milepælstavla kan ikke vises nå") && strstr(html, "Møtene kan ikke vises"));
    free(html);

    html = gw_board_render_refusal("as_of: '<x>' er ikke en dato", &len);
    CHECK(html && strstr(html, "&lt;x&gt;") && strstr(html, "lang=\"nb\""));
    free(html);
    return sam_testkit_done("gw_board_selftest");
}
