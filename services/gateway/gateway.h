/*  gateway.h — samordna-gateway's inside: the process state, what a route handler sees, the
    route table and the one way to ask a service.

    The gateway is HTTP/1.1 in front of the broker, served by one loop (gateway_io.c) that
    polls libmicrohttpd's epoll descriptor and the broker socket together. libmicrohttpd
    accepts and parses; a route handler runs on the whole request (headers and body read) and
    either answers at once (gw_respond, gw_problem) or asks services (gw_call, any number of
    calls). A request with calls is suspended (MHD_suspend_connection) when its handler
    returns; its calls are then sent, pipelined with every other request's (many in flight,
    matched by id), and each call's callback runs when its reply comes, or when it times out
    (code SAM_TIMEOUT). After the last callback the connection is resumed and its answer
    sent. So nothing ever waits on a broker round trip, and 64 keep-alive connections keep
    the services' batches full, with no hand-over between threads on the way.

    Threads: handlers and callbacks run on that one loop thread, one at a time; the main
    thread only waits for signals. A handler must not block (a slow one holds every
    connection).

    Route families, one file each (a branch adds its file and its lines in gateway_routes.def,
    it does not edit another's file):
        gw_events.c    POST /v1/events (binary, structured and batch CloudEvents)   gateway
        gw_read.c      GET /v1/... queries of every service                         gateway-read
        gw_openapi.c   GET /v1/openapi.json                                         gateway-read
        gw_auth.c      bearer tokens → gw_caller_t (gw_auth_caller)                 auth
        gw_board.c     GET / and the board's pages                                  board
        gateway.c      the HTTP server, the route table, answers, problem details, /v1/healthz
        gateway_io.c   the loop: HTTP and broker I/O, the service tables (types → services)
        gw_messages.c  the compiled descriptors by full name (for JSON ↔ protobuf)
*/
#ifndef GATEWAY_H
#define GATEWAY_H

#include "sam_client.h"
#include "sam_metrics.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gw_t gw_t;
typedef struct gw_request_t gw_request_t;

/* A route handler: answers (gw_respond, gw_problem, gw_respond_json) or makes calls
   (gw_call) whose callbacks answer. A handler that does neither gets 500. */
typedef void(gw_handler_fn)(gw_request_t *req);

/* Everything the options say; gateway_main.c fills it. Strings are borrowed. */
typedef struct {
    const char *const *brokers; /* broker endpoints */
    size_t nbrokers;
    const char *listen;          /* HOST:PORT to serve HTTP on */
    bool insecure;               /* no CURVE to the broker; callers are admin (loopback only) */
    const char *cert;            /* CURVE: the gateway's secret certificate */
    const char *server_key;      /* CURVE: the broker's public key or certificate file */
    const char *const *services; /* the services whose tables are read (service.describe) */
    size_t nservices;
    size_t max_body;          /* largest request body, bytes; larger → 413 */
    unsigned max_connections; /* more at once → 503 */
    unsigned idle_timeout_s;  /* a connection silent this long is closed (slow clients) */
    int header_timeout_ms;    /* headers must be complete this long after connecting → 408 */
    int body_timeout_ms;      /* the body must be complete this long after the headers → 408 */
    int request_timeout_ms;   /* a service's answer waited for this long → 503 */
    sam_metrics_t *metrics;   /* may be NULL */
} gw_config_t;

/* Who asks. Filled by gw_auth.c (branch auth) from the bearer token; until then and with
   --insecure: the admin, as an insecure broker makes every caller. */
typedef struct {
    char agency[65]; /* the caller's agency id; "" when insecure */
    char role[16];   /* admin, publisher, reader or service */
    bool insecure;   /* no authentication at all (--insecure) */
} gw_caller_t;

/* One query parameter or header, as received (decoded); both borrowed from libmicrohttpd,
   valid while the request lives. */
typedef struct {
    const char *name;
    const char *value;
} gw_pair_t;

/* What a handler sees. Everything is borrowed and lives as long as the request. */
struct gw_request_t {
    gw_t *gw;
    struct MHD_Connection *conn;
    const char *method;  /* "GET", "POST", … */
    const char *path;    /* the URL's path, without the query ("/v1/events") */
    const uint8_t *body; /* the whole body (NUL-terminated after body_len), or NULL */
    size_t body_len;
    gw_caller_t caller;
    uint64_t rid; /* the request's number in the gateway's log lines */
    /* A handler's own state across its calls' callbacks: freed with user_free (may be NULL)
       when the request ends. */
    void *user;
    void (*user_free)(void *user);
    /* Run after the last callback of the request's calls, before the
       answer is sent (a batch answers there with every result); NULL: none. */
    gw_handler_fn *after_calls;
    struct gw_conn_t *inner; /* the server's own state of this request (gateway.c) */
};

/* A header of the request (case-insensitive name), or NULL. */
const char *gw_header(const gw_request_t *req, const char *name);
/* A query parameter of the request, or NULL. */
const char *gw_query(const gw_request_t *req, const char *name);
/* Every header and every query parameter, in order; *n receives the count. The array is the
   request's (freed with it). */
const gw_pair_t *gw_headers(gw_request_t *req, size_t *n);
const gw_pair_t *gw_queries(gw_request_t *req, size_t *n);

/* ---- the route table ------------------------------------------------------------------- */

typedef struct {
    const char *method; /* "GET", "POST"; "GET" also answers HEAD */
    const char *path;   /* exact path, or a prefix ending in '/' when prefix is true */
    bool prefix;        /* the path is a prefix ("/v1/grants/overview/") */
    gw_handler_fn *handler;
    const char *summary; /* one line for logs and the docs */
} gw_route_t;

/* Declares every handler of gateway_routes.def. */
#define GW_ROUTE(method, path, prefix, handler, summary) gw_handler_fn handler;
#include "gateway_routes.def"
#undef GW_ROUTE

/* ---- answers ---------------------------------------------------------------------------- */

/* Answers with status, content type and body (copied). Once per request; a second answer is
   ignored (and logged). In a handler or in a callback. */
void gw_respond(gw_request_t *req, unsigned status, const char *content_type, const void *body,
                size_t len);
/* Answers with a JSON value (taken: the reference is stolen), as application/json. */
void gw_respond_json(gw_request_t *req, unsigned status, json_t *value);
/* Adds a header to the coming answer (copied), e.g. Location or Retry-After. */
void gw_add_header(gw_request_t *req, const char *name, const char *value);

/*  RFC 9457 problem details. Every problem type is a URI under GW_PROBLEM_BASE (docs/gateway.md
    lists them); `type` is the last part ("invalid-event"). errors is an array of
    {"pointer": JSON pointer or field path, "reason": …} objects or NULL (taken). 503 answers
    also carry Retry-After. Logs the refusal (gateway.refused, with the detail escaped). */
#define GW_PROBLEM_BASE "https://samordna.no/problems/"
void gw_problem(gw_request_t *req, unsigned status, const char *type, const char *title,
                json_t *errors, const char *detail_fmt, ...) __attribute__((format(printf, 6, 7)));
/* The JSON object of a problem, for a batch's per-event result; errors taken. */
json_t *gw_problem_json(unsigned status, const char *type, const char *title, json_t *errors,
                        const char *detail);
/* One {"pointer": …, "reason": …} entry appended to *errors (made when NULL): pointer is a
   JSON pointer into the request's body ("/data/name", "/3/id") or the header that was wrong
   ("ce-id"). */
void gw_error_add(json_t **errors, const char *pointer, const char *reason);
/* One {"field": …, "reason": …} entry from a service's refusal "<field>: <reason>" (the field
   path of the event's payload as docs/events.md writes it, "pilot.municipality"); a message
   without a field gives {"reason": …}. */
void gw_error_add_service(json_t **errors, const char *message);
/* The HTTP status of a samordna status code (SAM_TIMEOUT and 503/504 → 503, …), and the
   problem type for it ("conflict", "service-unavailable", …). */
unsigned gw_http_status(uint32_t code);
const char *gw_problem_type(unsigned http_status);

/* ---- asking services --------------------------------------------------------------------- */

/* A call's callback, on the loop thread: `res` is the reply (res->code is SAM_TIMEOUT when none
   came within --request-timeout-ms or the broker could not be reached); borrowed, freed
   after the callback returns. */
typedef void(gw_reply_fn)(gw_request_t *req, void *arg, const sam_result_t *res);

/*  Queues one request to `service` (`method`, `body` packed, copied) for when the handler
    returns. Returns 0, or -1 on out of memory (the handler answers 500). */
int gw_call(gw_request_t *req, const char *service, const char *method, const uint8_t *body,
            size_t len, gw_reply_fn *done, void *arg);

/* ---- the service tables ------------------------------------------------------------------- */

/* What the gateway knows of an event type (from its service's service.describe). */
typedef struct {
    char service[64];  /* the service that owns it: where events.publish goes */
    char payload[128]; /* full name of its payload message ("samordna.v1.Agency") */
    uint64_t limit;    /* its payload limit, bytes */
} gw_type_t;

/*  Looks up an event type. Returns 1 and fills *out when a described service owns it, 0 when
    none of the described services does and every configured one has been described, -1 when
    some service has not answered service.describe yet (it may own it: answer 503). */
int gw_type_find(gw_t *gw, const char *type, gw_type_t *out);

/* The compiled descriptor of a message by its full name ("samordna.v1.Agency", as
   service.describe names it), from the services' tables (gw_messages.c); NULL when this gateway
   was built without it. */
const ProtobufCMessageDescriptor *gw_message(const char *full_name);

/* The process state (opaque outside gateway.c/gateway_io.c). Before gw_new the caller blocks
   SIGINT, SIGTERM and SIGHUP (gw_block_signals), so that every thread of the gateway inherits
   the mask and gw_run alone takes them. */
void gw_block_signals(void);
gw_t *gw_new(const gw_config_t *config, char *err, size_t errlen);
/* Serves until SIGTERM or SIGINT (SIGHUP calls reload, which may be NULL), then drains: new
   requests are answered 503 with Connection: close, the ones in flight are answered (or time
   out); returns 0 once they are. */
int gw_run(gw_t *gw, void (*reload)(void));
void gw_destroy(gw_t **gw_p);
/* The HTTP port actually bound (useful with port 0). */
uint16_t gw_port(const gw_t *gw);
const gw_config_t *gw_config(const gw_t *gw);

#endif
