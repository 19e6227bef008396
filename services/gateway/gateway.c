/*  gateway.c — the HTTP side of samordna-gateway: the server, the route table, answers and
    problem details, and /v1/healthz. The broker side is gateway_io.c.

    One request's life, on the gateway's loop thread (gateway_io.c runs the daemon):
      1. the request line arrives (s_uri_log): its context is made, the clock starts;
      2. the headers are in (first s_access call): refused here, before any body is read, when
         the gateway drains, has more connections than --max-connections, took longer than
         --header-timeout-ms for the headers, names no route (404/405) or announces a body over
         --max-body-bytes (413);
      3. the body arrives in pieces, appended; a chunked body that grows past the limit is
         dropped from there on and refused 413 when it ends (libmicrohttpd answers only after
         the upload), one that takes longer than --body-timeout-ms refused 408;
      4. the handler runs on the whole request. When it answered, the answer is queued. When it
         made calls, the connection is suspended and only then are the calls queued for
         sending, so a reply can never race the suspension;
      5. the loop runs each call's callback and resumes the connection after the last;
         libmicrohttpd calls s_access again and the answer is queued;
      6. s_completed frees the context.
*/
#include "gateway_int.h"
#include "sam_check.h"
#include "sam_log.h"
#include "sam_status.h"

#include <arpa/inet.h>
#include <signal.h>
#include <unistd.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* libmicrohttpd's memory of one connection: the request line and headers must fit (larger
   ones are refused 431), and it is cleared for every request, so it is kept small. */
#define S_CONN_MEMORY 16384

static const gw_route_t s_routes[] = {
#define GW_ROUTE(method, path, prefix, handler, summary) {method, path, prefix, handler, summary},
#include "gateway_routes.def"
#undef GW_ROUTE
};
#define S_NROUTES (sizeof s_routes / sizeof s_routes[0])

/* ---- answers ------------------------------------------------------------------------------ */

void gw_respond(gw_request_t *req, unsigned status, const char *content_type, const void *body,
                size_t len)
{
    gw_conn_t *c = req->inner;
    if (c->answered) {
        sam_warn("gateway.answered_twice rid=%llu status=%u", (unsigned long long)req->rid, status);
        return;
    }
    c->out = malloc(len ? len : 1);
    c->content_type = strdup(content_type ? content_type : "text/plain; charset=utf-8");
    if (!c->out || !c->content_type) {
        free(c->out);
        free(c->content_type);
        c->out = NULL;
        c->content_type = NULL;
        c->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    } else {
        if (len) memcpy(c->out, body, len);
        c->out_len = len;
        c->status = status;
    }
    c->answered = true;
}

void gw_respond_json(gw_request_t *req, unsigned status, json_t *value)
{
    char *text = value ? json_dumps(value, JSON_COMPACT) : NULL;
    json_decref(value);
    if (!text) {
        gw_respond(req, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory\n", 14);
        return;
    }
    size_t len = strlen(text);
    text[len] = '\0';
    gw_respond(req, status, "application/json", text, len);
    free(text);
}

void gw_add_header(gw_request_t *req, const char *name, const char *value)
{
    gw_conn_t *c = req->inner;
    char **grown = realloc(c->headers, (c->nheaders + 2) * sizeof *grown);
    if (!grown) return;
    c->headers = grown;
    c->headers[c->nheaders] = strdup(name);
    c->headers[c->nheaders + 1] = strdup(value);
    if (!c->headers[c->nheaders] || !c->headers[c->nheaders + 1]) {
        free(c->headers[c->nheaders]);
        free(c->headers[c->nheaders + 1]);
        return;
    }
    c->nheaders += 2;
}

void gw_error_add(json_t **errors, const char *pointer, const char *reason)
{
    if (!*errors) *errors = json_array();
    if (!*errors) return;
    json_array_append_new(*errors, json_pack("{s:s, s:s}", "pointer", pointer ? pointer : "",
                                             "reason", reason ? reason : ""));
}

void gw_error_add_service(json_t **errors, const char *message)
{
    if (!*errors) *errors = json_array();
    if (!*errors || !message) return;
    const char *colon = strstr(message, ": ");
    size_t flen = colon ? (size_t)(colon - message) : 0;
    bool field = colon && flen > 0 && flen < 128 && !memchr(message, ' ', flen);
    if (field)
        json_array_append_new(
            *errors, json_pack("{s:s%, s:s}", "field", message, flen, "reason", colon + 2));
    else
        json_array_append_new(*errors, json_pack("{s:s}", "reason", message));
}

json_t *gw_problem_json(unsigned status, const char *type, const char *title, json_t *errors,
                        const char *detail)
{
    char uri[160], safe[1024];
    snprintf(uri, sizeof uri, "%s%s", GW_PROBLEM_BASE, type);
    snprintf(safe, sizeof safe, "%s", detail ? detail : "");
    sam_check_sanitize(safe); /* a detail quoting input is escaped; this makes sure */
    json_t *p = json_pack("{s:s, s:s, s:i, s:s}", "type", uri, "title", title, "status",
                          (int)status, "detail", safe);
    if (p && errors) json_object_set(p, "errors", errors);
    json_decref(errors);
    return p;
}

void gw_problem(gw_request_t *req, unsigned status, const char *type, const char *title,
                json_t *errors, const char *detail_fmt, ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, detail_fmt);
    vsnprintf(detail, sizeof detail, detail_fmt, ap);
    va_end(ap);
    if (status >= 500)
        sam_warn("gateway.refused rid=%llu method=%s path=%s status=%u problem=%s detail=%s",
                 (unsigned long long)req->rid, req->method, sam_logv(req->path), status, type,
                 sam_logv(detail));
    else
        sam_info("gateway.refused rid=%llu method=%s path=%s status=%u problem=%s detail=%s",
                 (unsigned long long)req->rid, req->method, sam_logv(req->path), status, type,
                 sam_logv(detail));
    json_t *p = gw_problem_json(status, type, title, errors, detail);
    char *text = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE) gw_add_header(req, "Retry-After", "1");
    if (!text) {
        gw_respond(req, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory\n", 14);
        return;
    }
    gw_respond(req, status, "application/problem+json", text, strlen(text));
    free(text);
}

unsigned gw_http_status(uint32_t code)
{
    switch (code) {
    case SAM_TIMEOUT: /* maybe stored: a retry with the same id is answered its seq */
    case SAM_UNAVAILABLE:
    case SAM_BUSY:
        return 503; /* the service is away or busy: try again (Retry-After) */
    case 501:
        return 400; /* a method or type the service does not own: the caller's mistake */
    case SAM_UNAUTHORIZED:
        return 503; /* the broker does not trust the gateway's own key: not the client's 401 */
    default:
        return code >= 200 && code < 600 ? code : 502;
    }
}

const char *gw_problem_type(unsigned status)
{
    switch (status) {
    case 400:
        return "invalid-event";
    case 403:
        return "forbidden";
    case 404:
        return "not-found";
    case 408:
        return "request-timeout";
    case 409:
        return "conflict";
    case 413:
        return "too-large";
    case 415:
        return "unsupported-media-type";
    case 422:
        return "refused";
    case 503:
        return "service-unavailable";
    default:
        return status >= 500 ? "internal" : "invalid-request";
    }
}

/* ---- the request ---------------------------------------------------------------------------- */

const char *gw_header(const gw_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *gw_query(const gw_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

typedef struct {
    gw_conn_t *c;
    bool fail;
} s_collect_t;

static enum MHD_Result s_collect(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    s_collect_t *col = cls;
    gw_pair_t *grown = realloc(col->c->pairs, (col->c->npairs + 1) * sizeof *grown);
    if (!grown) {
        col->fail = true;
        return MHD_NO;
    }
    col->c->pairs = grown;
    col->c->pairs[col->c->npairs++] = (gw_pair_t){key, value ? value : ""};
    return MHD_YES;
}

static const gw_pair_t *s_pairs(gw_request_t *req, enum MHD_ValueKind kind, size_t *n)
{
    gw_conn_t *c = req->inner;
    free(c->pairs);
    c->pairs = NULL;
    c->npairs = 0;
    s_collect_t col = {c, false};
    MHD_get_connection_values(req->conn, kind, s_collect, &col);
    *n = col.fail ? 0 : c->npairs;
    return c->pairs;
}

const gw_pair_t *gw_headers(gw_request_t *req, size_t *n)
{
    return s_pairs(req, MHD_HEADER_KIND, n);
}

const gw_pair_t *gw_queries(gw_request_t *req, size_t *n)
{
    return s_pairs(req, MHD_GET_ARGUMENT_KIND, n);
}

int gw_call(gw_request_t *req, const char *service, const char *method, const uint8_t *body,
            size_t len, gw_reply_fn *done, void *arg)
{
    gw_call_t *call = calloc(1, sizeof *call);
    if (!call || !(call->body = malloc(len ? len : 1))) {
        free(call);
        return -1;
    }
    if (len) memcpy(call->body, body, len);
    call->len = len;
    snprintf(call->service, sizeof call->service, "%s", service);
    snprintf(call->method, sizeof call->method, "%s", method);
    call->done = done;
    call->arg = arg;
    call->conn = req->inner;
    call->next = req->inner->calls;
    req->inner->calls = call;
    req->inner->ncalls++;
    return 0;
}

/* ---- the server ------------------------------------------------------------------------------ */

static void s_conn_free(gw_conn_t *c)
{
    if (!c) return;
    free(c->body);
    free(c->content_type);
    free(c->out);
    for (size_t i = 0; i < c->nheaders; i++)
        free(c->headers[i]);
    free(c->headers);
    free(c->pairs);
    if (c->req.user_free) c->req.user_free(c->req.user);
    for (gw_call_t *call = c->calls, *next; call; call = next) {
        next = call->next;
        free(call->body);
        free(call);
    }
    free(c);
}

/* The request line is in: the context of the request, with its clock. */
static void *s_uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)uri;
    (void)conn;
    gw_t *gw = cls;
    gw_conn_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->started = gw_now();
    c->req.gw = gw;
    c->req.inner = c;
    c->req.rid = atomic_fetch_add(&gw->next_rid, 1) + 1;
    return c;
}

/*  The routes that own a path: those whose path is exactly it when there is any (an exact
    route wins over every prefix: GET /v1/events is the events route's, not the reads' /v1/),
    else those of the longest prefix the path starts with. */
static bool s_owns(const gw_route_t *r, const char *path, bool exact, size_t prefix_len)
{
    if (exact) return !r->prefix && strcmp(path, r->path) == 0;
    return r->prefix && strlen(r->path) == prefix_len && strncmp(path, r->path, prefix_len) == 0;
}

/* Whether an exact route has the path, else the length of the longest prefix route it starts
   with (0 when none). */
static bool s_owners(const char *path, size_t *prefix_len)
{
    *prefix_len = 0;
    for (size_t i = 0; i < S_NROUTES; i++) {
        const gw_route_t *r = &s_routes[i];
        if (!r->prefix && strcmp(path, r->path) == 0) return true;
        size_t n = strlen(r->path);
        if (r->prefix && n > *prefix_len && strncmp(path, r->path, n) == 0) *prefix_len = n;
    }
    return false;
}

/*  The route of a request, or NULL: then *wrong_method tells a path that is known, whose
    routes take other methods (405), from one no route has (404). HEAD is answered by GET. */
static const gw_route_t *s_route(const char *method, const char *path, bool *wrong_method)
{
    size_t prefix_len;
    bool exact = s_owners(path, &prefix_len);
    *wrong_method = false;
    for (size_t i = 0; i < S_NROUTES; i++) {
        const gw_route_t *r = &s_routes[i];
        if (!s_owns(r, path, exact, prefix_len)) continue;
        if (strcmp(method, r->method) == 0 ||
            (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0))
            return r;
        *wrong_method = true;
    }
    return NULL;
}

/* The methods a known path answers, for a 405's Allow header ("GET, HEAD", "POST"). */
static void s_allowed(const char *path, char *out, size_t len)
{
    size_t prefix_len;
    bool exact = s_owners(path, &prefix_len);
    out[0] = '\0';
    for (size_t i = 0; i < S_NROUTES; i++) {
        const gw_route_t *r = &s_routes[i];
        if (!s_owns(r, path, exact, prefix_len) || strstr(out, r->method)) continue;
        size_t at = strlen(out);
        snprintf(out + at, len - at, "%s%s%s", at ? ", " : "", r->method,
                 strcmp(r->method, "GET") == 0 ? ", HEAD" : "");
    }
}

static enum MHD_Result s_queue(gw_conn_t *c)
{
    gw_request_t *req = &c->req;
    gw_t *gw = req->gw;
    if (!c->answered)
        gw_problem(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "Internal error", NULL,
                   "the route %s gave no answer", req->path);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(c->out_len, c->out ? c->out : (void *)"",
                                        c->out ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    c->out = NULL; /* the response owns it now */
    if (c->content_type) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, c->content_type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    for (size_t i = 0; i + 1 < c->nheaders; i += 2)
        MHD_add_response_header(r, c->headers[i], c->headers[i + 1]);
    /* A refusal before the body was read, or while draining: the connection cannot go on. */
    if (atomic_load(&gw->draining) || (!c->handled && c->status >= 400))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(req->conn, c->status, r);
    MHD_destroy_response(r);
    if (gw->m_requests) {
        char code[8];
        snprintf(code, sizeof code, "%u", c->status);
        const char *route = c->route ? c->route->path : "none";
        const char *labels[] = {req->method, route, code};
        sam_metric_add(gw->m_requests, labels, 1);
        const char *rl[] = {route};
        sam_metric_observe(gw->m_seconds, rl, (double)(gw_now() - c->started) / 1000.0);
    }
    return ret;
}

/* Refuses a request before its handler runs (step 2 and 3 above). */
static enum MHD_Result s_refuse(gw_conn_t *c, unsigned status, const char *type, const char *title,
                                const char *detail)
{
    gw_problem(&c->req, status, type, title, NULL, "%s", detail);
    return s_queue(c);
}

/*  Who asks: the one place a request's caller is decided, before its route runs. Callers
    are not authenticated yet (gw_auth.c, branch auth, decides here from the bearer token and
    refuses with 401/403); until then every caller is the admin, as every caller of an
    insecure broker is, which is why --listen is loopback only (gw_new). */
static void s_caller(gw_t *gw, gw_request_t *req)
{
    req->caller = (gw_caller_t){"", "admin", gw->config.insecure};
}

static enum MHD_Result s_headers_in(gw_t *gw, gw_conn_t *c)
{
    gw_request_t *req = &c->req;
    c->headers_done = gw_now();
    const gw_config_t *cfg = &gw->config;
    char detail[256];
    if (atomic_load(&gw->draining))
        return s_refuse(c, 503, "service-unavailable", "Shutting down",
                        "the gateway is shutting down; send the request to another instance or "
                        "again in a moment");
    if (atomic_load(&gw->connections) > cfg->max_connections) {
        snprintf(detail, sizeof detail,
                 "the gateway serves at most %u connections at once (--max-connections); "
                 "close idle ones or try again",
                 cfg->max_connections);
        return s_refuse(c, 503, "service-unavailable", "Too many connections", detail);
    }
    if (cfg->header_timeout_ms > 0 && c->headers_done - c->started > cfg->header_timeout_ms) {
        snprintf(detail, sizeof detail,
                 "the request's headers took %lld ms to arrive; at most %d ms are waited for "
                 "(--header-timeout-ms)",
                 (long long)(c->headers_done - c->started), cfg->header_timeout_ms);
        return s_refuse(c, 408, "request-timeout", "Request too slow", detail);
    }
    bool wrong_method = false;
    c->route = s_route(req->method, req->path, &wrong_method);
    if (!c->route && wrong_method) {
        char allow[64];
        s_allowed(req->path, allow, sizeof allow);
        gw_add_header(req, "Allow", allow);
        snprintf(detail, sizeof detail, "%s is answered for %s only", req->method, allow);
        return s_refuse(c, 405, "method-not-allowed", "Method not allowed", detail);
    }
    if (!c->route) {
        snprintf(detail, sizeof detail, "there is no route %s (docs/gateway.md lists them)",
                 req->path);
        return s_refuse(c, 404, "not-found", "No such route", detail);
    }
    if (!gw_auth_caller(req)) return s_queue(c); /* 401, 403 or 400: answered and logged */
    const char *length = gw_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length) {
        char *end = NULL;
        unsigned long long n = strtoull(length, &end, 10);
        if (end && *end == '\0' && n > cfg->max_body) {
            snprintf(detail, sizeof detail,
                     "the body is %llu bytes; at most %zu are accepted (--max-body-bytes)", n,
                     cfg->max_body);
            return s_refuse(c, 413, "too-large", "Body too large", detail);
        }
    }
    return MHD_YES;
}

static enum MHD_Result s_body_in(gw_t *gw, gw_conn_t *c, const char *data, size_t *len)
{
    const gw_config_t *cfg = &gw->config;
    size_t n = *len;
    *len = 0;
    if (c->too_big) return MHD_YES; /* dropped; refused when the upload ends */
    if (c->body_len + n > cfg->max_body) {
        /* A body without a Content-Length (chunked) that grows past the limit: libmicrohttpd
           answers only once the upload ended, so the rest is read and dropped, never kept. */
        c->too_big = true;
        free(c->body);
        c->body = NULL;
        c->body_len = c->body_cap = 0;
        return MHD_YES;
    }
    if (cfg->body_timeout_ms > 0 && gw_now() - c->headers_done > cfg->body_timeout_ms) {
        c->too_slow = true;
        return MHD_YES;
    }
    if (c->body_len + n + 1 > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 1024;
        while (cap < c->body_len + n + 1)
            cap *= 2;
        uint8_t *grown = realloc(c->body, cap);
        if (!grown) return MHD_NO;
        c->body = grown;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, data, n);
    c->body_len += n;
    c->body[c->body_len] = '\0';
    return MHD_YES;
}

static enum MHD_Result s_access(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version, const char *upload,
                                size_t *upload_len, void **state)
{
    (void)version;
    gw_t *gw = cls;
    gw_conn_t *c = *state;
    if (!c) return MHD_NO; /* out of memory at the request line */
    if (c->answered && !c->suspended && c->req.conn) {
        /* refused when the headers came: the body is not read */
        *upload_len = 0;
        return MHD_YES;
    }
    if (!c->req.conn) { /* the headers are in */
        c->req.conn = conn;
        c->req.method = method;
        c->req.path = url;
        s_caller(gw, &c->req);
        return s_headers_in(gw, c);
    }
    if (*upload_len) return s_body_in(gw, c, upload, upload_len);
    if (c->suspended) { /* resumed: the calls are answered */
        c->suspended = false;
        return s_queue(c);
    }
    if (c->handled) return MHD_YES;
    char detail[160];
    if (c->too_big) {
        snprintf(detail, sizeof detail,
                 "the body is over %zu bytes, the most accepted (--max-body-bytes)",
                 gw->config.max_body);
        return s_refuse(c, 413, "too-large", "Body too large", detail);
    }
    if (c->too_slow) {
        snprintf(detail, sizeof detail,
                 "the body took longer than %d ms to arrive (--body-timeout-ms)",
                 gw->config.body_timeout_ms);
        return s_refuse(c, 408, "request-timeout", "Request too slow", detail);
    }
    c->handled = true;
    c->req.body = c->body;
    c->req.body_len = c->body_len;
    c->route->handler(&c->req);
    if (c->answered || !c->ncalls) return s_queue(c);
    c->suspended = true;
    MHD_suspend_connection(conn);
    gw_io_submit(gw, c);
    return MHD_YES;
}

static void s_completed(void *cls, struct MHD_Connection *conn, void **state,
                        enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)conn;
    gw_conn_t *c = *state;
    if (c && why != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        sam_info("gateway.dropped rid=%llu path=%s reason=%s", (unsigned long long)c->req.rid,
                 c->req.path ? sam_logv(c->req.path) : "\"(headers not complete)\"",
                 why == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED   ? "idle-timeout"
                 : why == MHD_REQUEST_TERMINATED_CLIENT_ABORT    ? "client-closed"
                 : why == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? "shutdown"
                                                                 : "error");
    s_conn_free(c);
    *state = NULL;
}

static void s_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                     enum MHD_ConnectionNotificationCode code)
{
    (void)conn;
    (void)socket_context;
    gw_t *gw = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add(&gw->connections, 1);
    else
        atomic_fetch_sub(&gw->connections, 1);
}

/* "HOST:PORT" → a socket address (numeric IPv4, or IPv6 in brackets). */
static int s_parse_listen(const char *endpoint, struct sockaddr_storage *ss, char *err,
                          size_t errlen)
{
    memset(ss, 0, sizeof *ss);
    const char *colon = strrchr(endpoint, ':');
    char host[64];
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    size_t hlen = colon ? (size_t)(colon - endpoint) : 0;
    if (!colon || !end || *end || colon[1] == '\0' || port < 0 || port > 65535 || hlen == 0 ||
        hlen >= sizeof host) {
        snprintf(err, errlen, "--listen '%s' is not HOST:PORT (e.g. 127.0.0.1:8080)", endpoint);
        return -1;
    }
    memcpy(host, endpoint, hlen);
    host[hlen] = '\0';
    if (host[0] == '[' && host[hlen - 1] == ']') {
        host[hlen - 1] = '\0';
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) == 1) return 0;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) == 1) return 0;
    }
    snprintf(err, errlen, "--listen '%s': the host must be a numeric IPv4 or [IPv6] address",
             endpoint);
    return -1;
}

static bool s_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

gw_t *gw_new(const gw_config_t *config, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    if (s_parse_listen(config->listen, &ss, err, errlen) != 0) return NULL;
    /* Without bearer tokens callers are not authenticated (every one is the gateway's own
       certificate, or the admin of an insecure broker): the port must not be reachable from
       another host. */
    if (!config->auth && !s_loopback(&ss)) {
        snprintf(err, errlen,
                 "--listen '%s': without bearer tokens (--jwks, --auth-map, --issuer, "
                 "--audience) the gateway does not authenticate its HTTP callers, so it listens "
                 "on a loopback address only (127.0.0.1 or [::1])",
                 config->listen);
        return NULL;
    }
    gw_t *gw = calloc(1, sizeof *gw);
    if (!gw) return NULL;
    gw->config = *config;
    gw->wake = -1;
    gw->quiesced = MHD_INVALID_SOCKET;
    pthread_mutex_init(&gw->lock, NULL);
    if (config->metrics) {
        gw->m_requests = sam_metrics_counter(config->metrics, "gateway_requests_total",
                                             "HTTP requests answered, by method, route and status",
                                             "method,route,code");
        gw->m_seconds =
            sam_metrics_histogram(config->metrics, "gateway_request_seconds",
                                  "time from the request line to the answer", "route", NULL, 0);
        gw->m_calls =
            sam_metrics_counter(config->metrics, "gateway_calls_total",
                                "requests to services, by service and outcome", "service,code");
        gw->m_inflight = sam_metrics_gauge(config->metrics, "gateway_calls_in_flight",
                                           "requests to services waiting for their reply", NULL);
    }
    /* No thread of libmicrohttpd's own: the gateway's one loop (gateway_io.c) polls its epoll
       descriptor beside the broker socket and runs it. */
    /* MHD_USE_TURBO: read and write a socket before asking epoll whether it is ready,
       saving a system call whenever it is (it is, under load). */
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC | MHD_USE_TURBO |
                     (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    /* libmicrohttpd's own limit is a little above ours, so that the ones over ours are
       answered 503 instead of being cut off unanswered. */
    gw->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, s_access, gw, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_URI_LOG_CALLBACK, s_uri_log, gw, MHD_OPTION_NOTIFY_COMPLETED, s_completed, gw,
        MHD_OPTION_NOTIFY_CONNECTION, s_notify, gw, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)(config->max_connections + 64), MHD_OPTION_CONNECTION_TIMEOUT,
        config->idle_timeout_s, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)S_CONN_MEMORY, MHD_OPTION_END);
    if (!gw->daemon) {
        snprintf(err, errlen, "cannot serve HTTP on %s (is the port taken?)", config->listen);
        gw_destroy(&gw);
        return NULL;
    }
    if (gw_io_start(gw, err, errlen) != 0) {
        gw_destroy(&gw);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(gw->daemon, MHD_DAEMON_INFO_BIND_PORT);
    gw->port = info ? info->port : 0;
    return gw;
}

void gw_destroy(gw_t **gw_p)
{
    if (!gw_p || !*gw_p) return;
    gw_t *gw = *gw_p;
    gw_io_stop(gw); /* the loop first: it runs the daemon */
    if (gw->daemon) MHD_stop_daemon(gw->daemon);
    if (gw->quiesced != MHD_INVALID_SOCKET) close(gw->quiesced);
    pthread_mutex_destroy(&gw->lock);
    free(gw);
    *gw_p = NULL;
}

void gw_block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int gw_run(gw_t *gw, void (*reload)(void))
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sam_info("gateway.listening endpoint=%s port=%u brokers=%zu services=%zu",
             sam_logv(gw->config.listen), (unsigned)gw->port, gw->config.nbrokers,
             gw->config.nservices);
    int sig = 0;
    for (;;) {
        if (sigwait(&set, &sig) != 0) continue;
        if (sig != SIGHUP) break;
        if (reload) reload();
    }
    /* Drain: no new connections; requests on open ones are refused 503 with Connection:
       close; every call in flight is answered or times out within --request-timeout-ms. */
    atomic_store(&gw->draining, true);
    gw_io_quiesce(gw); /* the loop stops accepting */
    size_t waiting = atomic_load(&gw->outstanding);
    sam_info("gateway.draining signal=%d calls=%zu connections=%u", sig, waiting,
             atomic_load(&gw->connections));
    int64_t until = gw_now() + gw->config.request_timeout_ms + 2000;
    while (atomic_load(&gw->outstanding) > 0 && gw_now() < until)
        usleep(10000);
    /* the answers just resumed are still to be written: a moment for them and their clients */
    until = gw_now() + 1000;
    while (atomic_load(&gw->connections) > 0 && gw_now() < until)
        usleep(10000);
    sam_info("gateway.drained calls=%zu connections=%u", atomic_load(&gw->outstanding),
             atomic_load(&gw->connections));
    return 0;
}

uint16_t gw_port(const gw_t *gw)
{
    return gw->port;
}

const gw_config_t *gw_config(const gw_t *gw)
{
    return &gw->config;
}

/* GET /v1/healthz: 200 {"status":"ok","services":{…}} when every configured service's table
   is known, else 503 naming those that are not (they did not answer service.describe). */
void gw_healthz(gw_request_t *req)
{
    gw_t *gw = req->gw;
    json_t *services = json_object();
    bool all = true;
    pthread_mutex_lock(&gw->lock);
    for (size_t i = 0; i < gw->nservices; i++) {
        bool known = gw->services[i].types != NULL;
        all = all && known;
        json_object_set_new(services, gw->services[i].name,
                            json_string(known ? "ok" : "no answer to service.describe"));
    }
    pthread_mutex_unlock(&gw->lock);
    if (!all) gw_add_header(req, "Retry-After", "1");
    gw_respond_json(
        req, all ? 200 : 503,
        json_pack("{s:s, s:o}", "status", all ? "ok" : "unavailable", "services", services));
}
