/*  sam_http.c — /metrics, /healthz and /readyz on libmicrohttpd's internal thread.

    The server runs beside the process's own loop and reads nothing of it but the
    sam_metrics_t, which is locked for each read; so a slow or stuck scraper costs the
    service nothing. Connections are limited (a monitoring port has few clients) and time out,
    so a client that opens sockets and never speaks cannot pile them up.
*/
#include "sam_http.h"
#include "sam_log.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* /healthz fails when the main loop has not turned for this long: the loop turns at least
   once a second when idle, and no single step of it takes more than a few seconds. */
#define S_STALE_MS 30000

struct sam_http_t {
    struct MHD_Daemon *daemon;
    sam_metrics_t *metrics;
    uint16_t port;
};

static enum MHD_Result s_answer(struct MHD_Connection *conn, unsigned status, const char *type,
                                char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result s_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    char *body = strdup(text);
    return body ? s_answer(conn, status, "text/plain; charset=utf-8", body, strlen(body)) : MHD_NO;
}

static enum MHD_Result s_request(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload,
                                 size_t *upload_len, void **state)
{
    (void)version;
    (void)upload;
    sam_http_t *self = cls;
    if (*upload_len) { /* a body we do not want: take it and ignore it */
        *upload_len = 0;
        return MHD_YES;
    }
    if (!*state) { /* the headers only; answer once the (empty) body is in */
        *state = self;
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return s_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    if (strcmp(url, "/metrics") == 0) {
        size_t len = 0;
        char *text = sam_metrics_render(self->metrics, &len);
        if (!text) return s_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
        return s_answer(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len);
    }
    if (strcmp(url, "/healthz") == 0) {
        int64_t silent = 0;
        if (sam_metrics_alive(self->metrics, S_STALE_MS, &silent))
            return s_text(conn, MHD_HTTP_OK, "ok\n");
        char text[96];
        snprintf(text, sizeof text, "stuck: the main loop has not turned for %lld ms\n",
                 (long long)silent);
        return s_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, text);
    }
    if (strcmp(url, "/readyz") == 0) {
        char *text = NULL;
        bool ready = sam_metrics_is_ready(self->metrics, &text);
        if (!text) return s_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
        return s_answer(conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                        "text/plain; charset=utf-8", text, strlen(text));
    }
    return s_text(conn, MHD_HTTP_NOT_FOUND,
                  "not found: the paths are /metrics, /healthz, /readyz\n");
}

/* Parses "HOST:PORT" or "[HOST]:PORT" into addr; false when malformed. */
static bool s_parse(const char *endpoint, struct sockaddr_storage *addr, bool *v6)
{
    char host[64];
    const char *colon = strrchr(endpoint, ':');
    if (!colon || colon == endpoint) return false;
    size_t hlen = (size_t)(colon - endpoint);
    const char *h = endpoint;
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof host) return false;
    memcpy(host, h, hlen);
    host[hlen] = 0;
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 0 || port > 65535) return false;
    memset(addr, 0, sizeof *addr);
    struct sockaddr_in *in4 = (struct sockaddr_in *)addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        *v6 = false;
        return true;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *v6 = true;
        return true;
    }
    return false;
}

static void s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char text[256];
    vsnprintf(text, sizeof text, fmt, ap);
    text[strcspn(text, "\n")] = 0;
    sam_warn("metrics.http reason=%s", sam_logv(text));
}

sam_http_t *sam_http_new(const char *endpoint, sam_metrics_t *metrics, char *err, size_t errlen)
{
    struct sockaddr_storage addr;
    bool v6 = false;
    if (!endpoint || !s_parse(endpoint, &addr, &v6)) {
        snprintf(err, errlen,
                 "--metrics wants HOST:PORT with a numeric address (127.0.0.1:9100, [::1]:9100), "
                 "not %s",
                 endpoint ? endpoint : "nothing");
        return NULL;
    }
    sam_http_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    self->metrics = metrics;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (v6) flags |= MHD_USE_IPv6;
    self->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, s_request, self, MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)32,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!self->daemon) {
        snprintf(err, errlen, "cannot serve metrics on %s (in use, or not an address of this host)",
                 endpoint);
        free(self);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->daemon, MHD_DAEMON_INFO_BIND_PORT);
    self->port = info ? info->port : 0;
    return self;
}

void sam_http_destroy(sam_http_t **self_p)
{
    if (!self_p || !*self_p) return;
    if ((*self_p)->daemon) MHD_stop_daemon((*self_p)->daemon);
    free(*self_p);
    *self_p = NULL;
}

uint16_t sam_http_port(const sam_http_t *self)
{
    return self ? self->port : 0;
}
