/*  gw_board_html.h — the web status board at / of the gateway, as one HTML page.

    The page is made of parts, each the reply of one query through the broker:
        GW_BOARD_GRID            status.board(as_of)                the municipality × milestone
   grid GW_BOARD_MEETINGS        status.meetings.list(to = as_of)   each pilot's meetings
        GW_BOARD_BARRIERS        status.barriers.list               barriers, by level as of the day
        GW_BOARD_GRANTS          grants.overview(year of as_of)     committed and paid per recipient
        GW_BOARD_MUNICIPALITIES  registry.municipalities.list       names instead of ids
        GW_BOARD_AGENCIES        registry.agencies.list             names instead of ids
        GW_BOARD_BRIEFING        notify.briefings.list              the briefings issued, newest
   first The caller (the route in gw_board.c, or a test) asks every part, keeps each reply (or the
    reason it has none) in a gw_board_view_t and renders the page once every part is settled.
    A part that is missing is named on the page, the others are shown; the page is 503 only
    when the grid itself is missing (docs/gateway.md, "The web board").

    Everything from the store is HTML-escaped; the page loads its style and script from
    /board.css, /board.js and /board.svg only (served by ../gw_board.c), under the
   Content-Security-Policy GW_BOARD_CSP.
*/
#ifndef GW_BOARD_HTML_H
#define GW_BOARD_HTML_H

#include "samordna/v1/notify.pb-c.h"

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    GW_BOARD_GRID = 0,
    GW_BOARD_MEETINGS,
    GW_BOARD_BARRIERS,
    GW_BOARD_GRANTS,
    GW_BOARD_MUNICIPALITIES,
    GW_BOARD_AGENCIES,
    GW_BOARD_BRIEFING,
    GW_BOARD_PARTS
} gw_board_part_t;

/* The header every answer of the board's routes carries. */
#define GW_BOARD_CSP                                                                               \
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "                    \
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

/* The header of GET /briefing/{id}: notify's page of an issued briefing has its style inline
   (it is an e-mail's HTML part too) and no script, and may run none. */
#define GW_BRIEFING_CSP                                                                            \
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'none'; "    \
    "base-uri 'none'; frame-ancestors 'none'"

/* What one page shows: the day, and for each part its reply or why there is none. */
typedef struct {
    char as_of[11];                          /* YYYY-MM-DD */
    ProtobufCMessage *reply[GW_BOARD_PARTS]; /* owned; NULL when the part is missing */
    char *missing[GW_BOARD_PARTS];           /* owned; why reply is NULL ("503 no worker …") */
} gw_board_view_t;

/*  The day a request asks for: `value` (the as_of parameter, may be NULL) when it is a date
    YYYY-MM-DD, today in the programme's zone when it is NULL or empty. Returns 0, or -1 with
    a refusal naming the parameter and the form that would be right in err. */
int gw_board_day(const char *value, char out[11], char *err, size_t errlen);

/* The method a part asks, and the type of its reply. */
const char *gw_board_method(gw_board_part_t part);
const ProtobufCMessageDescriptor *gw_board_reply_type(gw_board_part_t part);

/*  The packed request of a part for the day as_of. Returns the body (the caller frees it) and
    its length in *len, or NULL when out of memory. */
uint8_t *gw_board_request(gw_board_part_t part, const char *as_of, size_t *len);

/*  Keeps a part's reply body: unpacked into view->reply[part]. Returns 0, or -1 when the body
    is not a reply of the part's type (the part is then missing with that reason). */
int gw_board_keep(gw_board_view_t *view, gw_board_part_t part, const uint8_t *body, size_t len);

/*  Marks a part missing with a reason (copied; printf-style). */
void gw_board_miss(gw_board_view_t *view, gw_board_part_t part, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*  Frees the replies and reasons a view holds and clears them; the day stays. */
void gw_board_view_clear(gw_board_view_t *view);

/*  The briefing the page shows: the latest issued on or before the day (the first of the
    newest-first list whose date is <= as_of), or NULL when there is none yet or the part is
    missing. Borrowed from the view. */
const Samordna__V1__Briefing *gw_board_briefing(const gw_board_view_t *view);

/*  The page as HTML (UTF-8). Returns a NUL-terminated buffer the caller frees, its length in
    *len and the HTTP status in *status (200, or 503 when the grid is missing), or NULL when
    out of memory. */
char *gw_board_render(const gw_board_view_t *view, size_t *len, int *status);

/*  A short page for a refused request (a bad as_of): `message` is escaped. Same ownership as
    gw_board_render. */
char *gw_board_render_refusal(const char *message, size_t *len);

/* The compiled-in style sheet, script and icon (services/gateway/board/). */
extern const unsigned char gw_board_css[];
extern const size_t gw_board_css_len;
extern const unsigned char gw_board_js[];
extern const size_t gw_board_js_len;
extern const unsigned char gw_board_svg[];
extern const size_t gw_board_svg_len;

#endif
