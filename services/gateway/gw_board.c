/*  gw_board.c — the gateway's routes of the web status board:

        GET /             the page for ?as_of=YYYY-MM-DD (default: today in the programme's zone)
        GET /briefing/{id} an issued briefing (notify.briefings.get) as its own page
        GET /board.css    its style sheet
        GET /board.js     its script (the page works without it)
        GET /board.svg    its icon

    The page asks its seven parts (board/gw_board_html.h lists them) of four services at once
    with gw_call: they travel pipelined on the gateway's broker connection, and the page is
    rendered by the request's after_calls when the last reply or timeout is in. The page
    being gathered is the request's `user`, freed with the request however it ends. A part
    whose service did not answer is named on the page and logged (board.part_missing); the
    rest is shown. The answer is 200 while the grid is there, 503 with Retry-After when
    status.board itself is missing: the grid is what the page is for, and a monitor or a
    reverse proxy should see that it is not served.

    Every answer carries GW_BOARD_CSP: the page runs no inline script or style, so a record
    that slipped past the escaping could still not run anything.
*/
#include "gateway.h"
#include "gw_board_html.h"

#include "sam_check.h"
#include "sam_log.h"
#include "sam_status.h"

#include <stdlib.h>
#include <string.h>

/* One page being gathered: its view and one call per part; the request's `user`, freed
   with it. */
typedef struct s_page_t s_page_t;
typedef struct {
    s_page_t *page;
    gw_board_part_t part;
} s_call_t;

struct s_page_t {
    gw_board_view_t view;
    s_call_t calls[GW_BOARD_PARTS];
};

static void s_page_free(void *user)
{
    s_page_t *pg = user;
    gw_board_view_clear(&pg->view);
    free(pg);
}

/* The headers of every answer of the board (the gateway adds Cache-Control: no-store to
   every answer, the board's own included). */
static void s_headers(gw_request_t *req)
{
    gw_add_header(req, "Content-Security-Policy", GW_BOARD_CSP);
    gw_add_header(req, "X-Content-Type-Options", "nosniff");
    gw_add_header(req, "Referrer-Policy", "no-referrer");
}

/* Every part is in (or timed out): the page. The request's after_calls, or called by the
   handler when no call could be made. */
static void s_render(gw_request_t *req)
{
    s_page_t *pg = req->user;
    for (int p = 0; p < GW_BOARD_PARTS; p++)
        if (!pg->view.reply[p])
            sam_warn("board.part_missing rid=%llu as_of=%s method=%s reason=%s",
                     (unsigned long long)req->rid, pg->view.as_of,
                     gw_board_method((gw_board_part_t)p),
                     sam_logv(pg->view.missing[p] ? pg->view.missing[p] : "not asked"));
    size_t len = 0;
    int status = 500;
    char *html = gw_board_render(&pg->view, &len, &status);
    s_headers(req);
    if (!html) {
        gw_respond(req, 500, "text/plain; charset=utf-8", "out of memory\n", 14);
    } else {
        if (status == 503) gw_add_header(req, "Retry-After", "5");
        gw_respond(req, (unsigned)status, "text/html; charset=utf-8", html, len);
    }
    free(html);
}

/* A part's reply (or timeout) is in: keep it. */
static void s_part_done(gw_request_t *req, void *arg, const sam_result_t *res)
{
    s_call_t *call = arg;
    if (res->code == 200)
        gw_board_keep(&call->page->view, call->part, res->body, res->body_len);
    else
        gw_board_miss(&call->page->view, call->part, "%u %s", res->code, res->message);
}

/* The service a part's method belongs to: the method's first word. */
static void s_service_of(const char *method, char out[32])
{
    size_t n = strcspn(method, ".");
    if (n >= 32) n = 31;
    memcpy(out, method, n);
    out[n] = 0;
}

/* GET /?as_of=YYYY-MM-DD */
void gw_board_page(gw_request_t *req)
{
    char day[11], err[200];
    if (gw_board_day(gw_query(req, "as_of"), day, err, sizeof err)) {
        sam_warn("board.refused rid=%llu reason=%s", (unsigned long long)req->rid, sam_logv(err));
        size_t len = 0;
        char *html = gw_board_render_refusal(err, &len);
        s_headers(req);
        if (html)
            gw_respond(req, 400, "text/html; charset=utf-8", html, len);
        else
            gw_respond(req, 500, "text/plain; charset=utf-8", "out of memory\n", 14);
        free(html);
        return;
    }
    s_page_t *pg = calloc(1, sizeof *pg);
    if (!pg) {
        gw_respond(req, 500, "text/plain; charset=utf-8", "out of memory\n", 14);
        return;
    }
    memcpy(pg->view.as_of, day, sizeof day);
    req->user = pg;
    req->user_free = s_page_free;
    int asked = 0;
    for (int p = 0; p < GW_BOARD_PARTS; p++) {
        gw_board_part_t part = (gw_board_part_t)p;
        const char *method = gw_board_method(part);
        char service[32];
        s_service_of(method, service);
        size_t len = 0;
        uint8_t *body = gw_board_request(part, day, &len);
        pg->calls[p] = (s_call_t){pg, part};
        if (!body || gw_call(req, service, method, body, len, s_part_done, &pg->calls[p]))
            gw_board_miss(&pg->view, part, "the gateway ran out of memory asking %s", method);
        else
            asked++;
        free(body);
    }
    if (asked)
        req->after_calls = s_render;
    else
        s_render(req);
}

/* A short page of the board's saying why a briefing is not shown, with its status. */
static void s_briefing_refused(gw_request_t *req, unsigned status, const char *message)
{
    size_t len = 0;
    char *html = gw_board_render_refusal(message, &len);
    s_headers(req);
    if (html)
        gw_respond(req, status, "text/html; charset=utf-8", html, len);
    else
        gw_respond(req, 500, "text/plain; charset=utf-8", "out of memory\n", 14);
    free(html);
}

static void s_briefing_done(gw_request_t *req, void *arg, const sam_result_t *res)
{
    (void)arg;
    const char *id = req->path + strlen("/briefing/");
    char msg[400];
    if (res->code != SAM_OK) {
        unsigned status = res->code == SAM_NOT_FOUND ? 404 : gw_http_status(res->code);
        sam_warn("board.briefing_refused rid=%llu id=%s code=%u reason=%s",
                 (unsigned long long)req->rid, sam_logv(id), res->code, sam_logv(res->message));
        if (status == 404)
            snprintf(msg, sizeof msg,
                     "Orienteringen «%.64s» finnes ikke: tavla på / lenker til dem som er utstedt.",
                     id);
        else
            snprintf(msg, sizeof msg,
                     "Orienteringen kan ikke hentes nå (varslingstjenesten svarte %u %.200s). Prøv "
                     "igjen om litt.",
                     res->code, res->message);
        if (status == 503 || status == 504) gw_add_header(req, "Retry-After", "5");
        s_briefing_refused(req, status, msg);
        return;
    }
    Samordna__V1__BriefingRecord *r =
        samordna__v1__briefing_record__unpack(NULL, res->body_len, res->body);
    if (!r || !r->briefing || !*r->briefing->html) {
        sam_warn("board.briefing_refused rid=%llu id=%s reason=%s", (unsigned long long)req->rid,
                 sam_logv(id), r ? "the record has no HTML page" : "not a BriefingRecord");
        s_briefing_refused(req, 502,
                           "Varslingstjenesten svarte med noe som ikke er en orientering.");
    } else {
        gw_add_header(req, "Content-Security-Policy", GW_BRIEFING_CSP);
        gw_add_header(req, "X-Content-Type-Options", "nosniff");
        gw_add_header(req, "Referrer-Policy", "no-referrer");
        gw_respond(req, 200, "text/html; charset=utf-8", r->briefing->html,
                   strlen(r->briefing->html));
    }
    if (r) samordna__v1__briefing_record__free_unpacked(r, NULL);
}

/* GET /briefing/{id}: the id is a briefing's ("briefing-2019-12-01"), one path segment. */
void gw_board_briefing_page(gw_request_t *req)
{
    const char *id = req->path + strlen("/briefing/");
    size_t n = strlen(id);
    bool ok = n > 0 && n <= 64;
    for (size_t i = 0; ok && i < n; i++)
        ok = (id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') || id[i] == '-';
    if (!ok) {
        char shown[100], msg[200];
        sam_check_escape(id, 60, shown, sizeof shown);
        sam_warn("board.briefing_refused rid=%llu id=%s reason=%s", (unsigned long long)req->rid,
                 sam_logv(id), "not a briefing id");
        snprintf(msg, sizeof msg,
                 "«%s» er ikke id-en til en orientering (for eksempel briefing-2019-12-01).",
                 shown);
        s_briefing_refused(req, 404, msg);
        return;
    }
    Samordna__V1__BriefingGetRequest g = SAMORDNA__V1__BRIEFING_GET_REQUEST__INIT;
    g.id = (char *)id;
    size_t len = samordna__v1__briefing_get_request__get_packed_size(&g);
    uint8_t *body = malloc(len ? len : 1);
    if (body) samordna__v1__briefing_get_request__pack(&g, body);
    if (!body ||
        gw_call(req, "notify", "notify.briefings.get", body, len, s_briefing_done, NULL) != 0)
        gw_respond(req, 500, "text/plain; charset=utf-8", "out of memory\n", 14);
    free(body);
}

/* GET /board.css */
void gw_board_style(gw_request_t *req)
{
    s_headers(req);
    gw_respond(req, 200, "text/css; charset=utf-8", gw_board_css, gw_board_css_len);
}

/* GET /board.js */
void gw_board_script(gw_request_t *req)
{
    s_headers(req);
    gw_respond(req, 200, "text/javascript; charset=utf-8", gw_board_js, gw_board_js_len);
}

/* GET /board.svg */
void gw_board_icon(gw_request_t *req)
{
    s_headers(req);
    gw_respond(req, 200, "image/svg+xml", gw_board_svg, gw_board_svg_len);
}
