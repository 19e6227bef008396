/*  gw_board.c — the gateway's routes of the web status board:

        GET /             the page for ?as_of=YYYY-MM-DD (default: today in the programme's zone)
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

#include "sam_log.h"

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
