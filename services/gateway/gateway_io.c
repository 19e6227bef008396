/*  gateway_io.c — samordna-gateway's one loop: HTTP and the broker on one thread.

    The loop polls (zmq_poll) the broker client's socket, libmicrohttpd's epoll descriptor
    (the daemon has no thread of its own) and an eventfd that only says "stop" or
    "quiesce". Each turn: MHD_run reads requests and runs their handlers, whose calls were
    queued (gw_io_submit, after the request was suspended) and are now sent, pipelined
    (sam_client_send); the replies that came are matched by request id to their calls, each
    call's callback runs, and after a request's last one its connection is resumed; a second
    MHD_run then writes those answers at once. Every call shares one timeout
    (--request-timeout-ms), so the in-flight list in sending order is also the list by
    deadline: the oldest are looked at every turn and answered SAM_TIMEOUT once due. The
    client fails fast: with no broker connected, or its queue full, a send fails at once and
    the call is answered SAM_UNAVAILABLE (503), never left to hang.

    One thread instead of libmicrohttpd's polling thread and a broker thread beside it: the
    hand-over between the two (a queue, two wake-ups a request) cost more than the work it
    spread (`samordna-bench gateway`, README).

    The same thread keeps the service tables: it asks every configured service for
    service.describe at start, again every S_REFRESH_MS, and every S_RETRY_MS while one has
    not answered; each event row (kind EVENT) says which service owns a type, its payload
    message and its limit. gw_type_find reads them under the mutex (handlers of another
    thread may call it too).
*/
#include "gateway_int.h"
#include "sam_log.h"
#include "sam_status.h"

#include "samordna/v1/service.pb-c.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define S_REFRESH_MS 30000 /* a described service is asked again this often */
#define S_RETRY_MS 1000    /* one that did not answer: again after this long */
#define S_QUIET_MS 3000    /* a start's failures are logged only after this long */

int64_t gw_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t s_id_hash(const void *key)
{
    uint64_t id = *(const uint64_t *)key;
    return (size_t)(id * 0x9E3779B97F4A7C15ULL >> 17);
}

static int s_id_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- the in-flight list ---------------------------------------------------------------- */

static void s_unlink(gw_t *gw, gw_call_t *call)
{
    if (call->prev)
        call->prev->next = call->next;
    else
        gw->oldest = call->next;
    if (call->next)
        call->next->prev = call->prev;
    else
        gw->newest = call->prev;
    call->next = call->prev = NULL;
    zhashx_delete(gw->inflight, &call->id);
}

/* Runs a call's callback with `res` and frees the call; after a request's last one, resumes
   its connection. A call of the gateway's own (conn NULL) has no callback of a request. */
static void s_answered(gw_t *gw, gw_call_t *call, const sam_result_t *res)
{
    if (gw->m_calls) {
        char code[8];
        snprintf(code, sizeof code, "%u", res->code);
        const char *labels[] = {call->service, code};
        sam_metric_add(gw->m_calls, labels, 1);
    }
    gw_conn_t *conn = call->conn;
    if (call->done) call->done(conn ? &conn->req : NULL, call->arg, res);
    free(call->body);
    free(call);
    atomic_fetch_sub(&gw->outstanding, 1);
    if (conn && --conn->pending == 0) {
        if (conn->req.after_calls) conn->req.after_calls(&conn->req);
        gw_conn_finish(conn);
    }
}

void gw_conn_finish(gw_conn_t *conn)
{
    MHD_resume_connection(conn->req.conn); /* the last touch: libmicrohttpd has it again */
}

/* ---- the service tables ------------------------------------------------------------------ */

static void s_type_free(void **item)
{
    free(*item);
    *item = NULL;
}

static void s_describe_done(gw_request_t *req, void *arg, const sam_result_t *res)
{
    (void)req;
    gw_service_t *svc = arg;
    svc->asking = 0;
    int64_t now = gw_now();
    Samordna__V1__ServiceDescription *d =
        res->code == SAM_OK
            ? samordna__v1__service_description__unpack(NULL, res->body_len, res->body)
            : NULL;
    if (!d) {
        svc->next_ask = now + S_RETRY_MS;
        /* the first seconds: the broker connection (its CURVE handshake) may not be up yet */
        if (!svc->failing && (svc->types || now - svc->first_ask > S_QUIET_MS)) {
            sam_warn("gateway.describe_failed service=%s code=%u reason=%s", sam_logv(svc->name),
                     res->code,
                     sam_logv(res->code == SAM_OK ? "the reply does not decode" : res->message));
            svc->failing = true;
        }
        return;
    }
    zhashx_t *types = zhashx_new();
    if (!types) {
        samordna__v1__service_description__free_unpacked(d, NULL);
        svc->next_ask = now + S_RETRY_MS;
        return;
    }
    zhashx_set_destructor(types, s_type_free);
    size_t n = 0;
    for (size_t i = 0; i < d->n_methods; i++) {
        const Samordna__V1__MethodDescription *m = d->methods[i];
        if (m->kind != SAMORDNA__V1__METHOD_KIND__METHOD_KIND_EVENT || !m->name) continue;
        gw_type_t *t = calloc(1, sizeof *t);
        if (!t) continue;
        snprintf(t->service, sizeof t->service, "%s", svc->name);
        snprintf(t->payload, sizeof t->payload, "%s", m->request ? m->request : "");
        t->limit = m->limit;
        zhashx_update(types, m->name, t);
        n++;
    }
    samordna__v1__service_description__free_unpacked(d, NULL);
    bool news = svc->types == NULL || svc->failing;
    svc->failing = false;
    svc->described = now;
    svc->next_ask = now + S_REFRESH_MS;
    if (news) sam_info("gateway.described service=%s event_types=%zu", sam_logv(svc->name), n);
    /* swapped under the lock: readers see the old table or the new one */
    zhashx_t *old = svc->types;
    svc->types = types;
    zhashx_destroy(&old);
}

/* /readyz: ready once every service's table is known (until then some types get 503). */
static void s_readiness(gw_t *gw)
{
    if (!gw->config.metrics) return;
    char why[256] = "";
    for (size_t i = 0; i < gw->nservices; i++)
        if (!gw->services[i].types)
            snprintf(why + strlen(why), sizeof why - strlen(why), "%s%s", why[0] ? ", " : "",
                     gw->services[i].name);
    if (why[0]) {
        char text[300];
        snprintf(text, sizeof text, "no service.describe answer from %s", why);
        sam_metrics_ready(gw->config.metrics, "services", false, text);
    } else
        sam_metrics_ready(gw->config.metrics, "services", true, NULL);
}

int gw_type_find(gw_t *gw, const char *type, gw_type_t *out)
{
    int found = 0;
    pthread_mutex_lock(&gw->lock);
    for (size_t i = 0; i < gw->nservices && found != 1; i++) {
        if (!gw->services[i].types) {
            found = -1;
            continue;
        }
        gw_type_t *t = zhashx_lookup(gw->services[i].types, type);
        if (t) {
            *out = *t;
            found = 1;
        }
    }
    pthread_mutex_unlock(&gw->lock);
    return found;
}

/* ---- the thread ---------------------------------------------------------------------------- */

static void s_send(gw_t *gw, gw_call_t *call, int64_t now)
{
    sam_caller_as_t as;
    /* Reads may be answered by a standby (docs/scaling.md, "Across hosts"), but an inbox is
       read where it is acknowledged: on notify's primary (docs/notify.md, "Across hosts"). */
    sam_client_set_route(gw->client, strcmp(call->method, "notify.inbox.read") == 0, NULL);
    call->id = sam_client_send_as(gw->client, call->service, call->method, call->body, call->len,
                                  gw_auth_as(call->conn ? &call->conn->req.caller : NULL, &as));
    if (call->id == 0) {
        sam_result_t res = {.code = SAM_UNAVAILABLE};
        snprintf(res.message, sizeof res.message,
                 "the broker cannot be reached (not running, or not accepting the gateway's "
                 "certificate)");
        s_answered(gw, call, &res);
        return;
    }
    call->deadline = now + gw->config.request_timeout_ms;
    call->prev = gw->newest;
    call->next = NULL;
    if (gw->newest)
        gw->newest->next = call;
    else
        gw->oldest = call;
    gw->newest = call;
    zhashx_insert(gw->inflight, &call->id, call);
}

/* The tables: a describe for every service that is due. Its callback runs under the lock
   (s_result takes it for the gateway's own calls), so gw_type_find never sees a table half made. */
static void s_ask_tables(gw_t *gw, int64_t now)
{
    for (size_t i = 0; i < gw->nservices; i++) {
        gw_service_t *svc = &gw->services[i];
        if (svc->asking || now < svc->next_ask) continue;
        gw_call_t *call = calloc(1, sizeof *call);
        if (!call || !(call->body = malloc(1))) {
            free(call);
            continue;
        }
        snprintf(call->service, sizeof call->service, "%s", svc->name);
        snprintf(call->method, sizeof call->method, "service.describe");
        call->done = s_describe_done;
        call->arg = svc;
        atomic_fetch_add(&gw->outstanding, 1);
        svc->asking = 1; /* until s_describe_done, which says when to ask again */
        if (!svc->first_ask) svc->first_ask = now;
        s_send(gw, call, now);
    }
}

static void s_result(gw_t *gw, gw_call_t *call, const sam_result_t *res)
{
    if (call->conn) {
        s_answered(gw, call, res);
        return;
    }
    pthread_mutex_lock(&gw->lock); /* the gateway's own calls change the tables */
    s_answered(gw, call, res);
    pthread_mutex_unlock(&gw->lock);
    s_readiness(gw);
}

/* Sends what the handlers queued (gw_io_submit) in this turn of the loop. */
static void s_send_queued(gw_t *gw)
{
    pthread_mutex_lock(&gw->lock);
    gw_call_t *queued = gw->queue;
    gw->queue = gw->queue_tail = NULL;
    pthread_mutex_unlock(&gw->lock);
    int64_t now = gw_now();
    for (gw_call_t *call = queued, *next; call; call = next) {
        next = call->next;
        s_send(gw, call, now);
    }
}

static void *s_thread(void *arg)
{
    gw_t *gw = arg;
    /* the broker client's sockets (one per broker, and their connection watches), then
       libmicrohttpd's epoll descriptor and the wake-up */
    zmq_pollitem_t items[2 * 16 + 2];
    size_t nclient = sam_client_pollitems(gw->client, items, 2 * 16);
    int client_ms = sam_client_poll_ms(gw->client); /* several brokers: heartbeats */
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(gw->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    int http = info ? info->epoll_fd : -1;
    s_readiness(gw);
    for (;;) {
        if (gw->config.metrics) sam_metrics_beat(gw->config.metrics);
        int64_t now = gw_now();
        s_ask_tables(gw, now);
        long timeout = S_RETRY_MS;
        if (gw->oldest) timeout = gw->oldest->deadline - now;
        MHD_UNSIGNED_LONG_LONG mhd_ms;
        if (MHD_get_timeout(gw->daemon, &mhd_ms) == MHD_YES && (long long)mhd_ms < timeout)
            timeout = (long)mhd_ms;
        if (client_ms > 0 && timeout > client_ms) timeout = client_ms;
        if (timeout < 0) timeout = 0;
        items[nclient] = (zmq_pollitem_t){NULL, http, ZMQ_POLLIN, 0};
        items[nclient + 1] = (zmq_pollitem_t){NULL, gw->wake, ZMQ_POLLIN, 0};
        if (zmq_poll(items, (int)nclient + 2, timeout) < 0 && zmq_errno() != EINTR) break;
        if (items[nclient + 1].revents & ZMQ_POLLIN) {
            uint64_t count;
            if (read(gw->wake, &count, sizeof count) < 0 && errno != EAGAIN) break;
        }
        pthread_mutex_lock(&gw->lock);
        bool stop = gw->stop, quiesce = gw->quiesce;
        gw->quiesce = false;
        pthread_mutex_unlock(&gw->lock);
        if (quiesce && gw->quiesced == MHD_INVALID_SOCKET)
            gw->quiesced = MHD_quiesce_daemon(gw->daemon);
        /* HTTP: read what came, run handlers (their calls queue), write answers */
        MHD_run(gw->daemon);
        s_send_queued(gw);
        bool answered = false;
        sam_result_t res;
        while (sam_client_recv(gw->client, 0, &res) == 0) {
            gw_call_t *call = zhashx_lookup(gw->inflight, &res.id);
            if (call) {
                s_unlink(gw, call);
                s_result(gw, call, &res);
                answered = true;
            }
            sam_result_clear(&res);
        }
        now = gw_now();
        while (gw->oldest && gw->oldest->deadline <= now) {
            gw_call_t *call = gw->oldest;
            s_unlink(gw, call);
            sam_result_t timeout_res = {.code = SAM_TIMEOUT};
            snprintf(timeout_res.message, sizeof timeout_res.message,
                     "'%s' did not answer within %d ms (--request-timeout-ms)", call->service,
                     gw->config.request_timeout_ms);
            s_result(gw, call, &timeout_res);
            answered = true;
        }
        if (answered) { /* the connections just resumed: their answers out now */
            MHD_run(gw->daemon);
            s_send_queued(gw);
        }
        if (gw->m_inflight) sam_metric_set(gw->m_inflight, NULL, (double)zhashx_size(gw->inflight));
        if (stop && !gw->oldest) break;
    }
    /* Stopping with calls in flight (only after the drain's wait ran out): answer them. */
    while (gw->oldest) {
        gw_call_t *call = gw->oldest;
        s_unlink(gw, call);
        sam_result_t res = {.code = SAM_UNAVAILABLE};
        snprintf(res.message, sizeof res.message, "the gateway is shutting down");
        s_result(gw, call, &res);
    }
    return NULL;
}

void gw_io_submit(gw_t *gw, gw_conn_t *conn)
{
    /* the handler queued its calls newest first: reverse them, so they go out in order */
    gw_call_t *first = NULL, *last = NULL;
    for (gw_call_t *call = conn->calls, *next; call; call = next) {
        next = call->next;
        call->next = first;
        call->prev = NULL;
        first = call;
        if (!last) last = call;
    }
    conn->pending = conn->ncalls;
    conn->calls = NULL;
    conn->ncalls = 0;
    atomic_fetch_add(&gw->outstanding, conn->pending);
    pthread_mutex_lock(&gw->lock);
    if (gw->queue_tail)
        gw->queue_tail->next = first;
    else
        gw->queue = first;
    gw->queue_tail = last;
    pthread_mutex_unlock(&gw->lock);
    /* no wake-up: the loop sends the queue as soon as MHD_run, which called the handler,
       returns */
}

void gw_io_quiesce(gw_t *gw)
{
    pthread_mutex_lock(&gw->lock);
    gw->quiesce = true;
    pthread_mutex_unlock(&gw->lock);
    uint64_t one = 1;
    if (write(gw->wake, &one, sizeof one) < 0) sam_warn("gateway.wake_failed errno=%d", errno);
}

int gw_io_start(gw_t *gw, char *err, size_t errlen)
{
    const gw_config_t *cfg = &gw->config;
    /* fail_fast in either mode: with no broker connected, 503 at once (docs/gateway.md) */
    sam_client_opts_t opts = {.fail_fast = true};
    if (!cfg->insecure) {
        opts.client_cert = cfg->cert;
        opts.server_key = cfg->server_key;
    }
    gw->client =
        sam_client_new((const char *const *)cfg->brokers, cfg->nbrokers, &opts, err, errlen);
    if (!gw->client) return -1;
    sam_client_set_deadline(gw->client, cfg->request_timeout_ms);
    gw->inflight = zhashx_new();
    gw->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    gw->services = calloc(cfg->nservices ? cfg->nservices : 1, sizeof *gw->services);
    if (!gw->inflight || gw->wake < 0 || !gw->services) {
        snprintf(err, errlen, "cannot set up the broker thread (out of memory or descriptors)");
        return -1;
    }
    zhashx_set_key_hasher(gw->inflight, s_id_hash);
    zhashx_set_key_comparator(gw->inflight, s_id_cmp);
    zhashx_set_key_duplicator(gw->inflight, NULL);
    zhashx_set_key_destructor(gw->inflight, NULL);
    gw->nservices = cfg->nservices;
    for (size_t i = 0; i < cfg->nservices; i++)
        gw->services[i].name = cfg->services[i];
    if (pthread_create(&gw->io, NULL, s_thread, gw) != 0) {
        snprintf(err, errlen, "cannot start the broker thread");
        return -1;
    }
    gw->io_started = true;
    return 0;
}

void gw_io_stop(gw_t *gw)
{
    if (gw->io_started) {
        pthread_mutex_lock(&gw->lock);
        gw->stop = true;
        pthread_mutex_unlock(&gw->lock);
        uint64_t one = 1;
        if (write(gw->wake, &one, sizeof one) < 0) sam_warn("gateway.wake_failed errno=%d", errno);
        pthread_join(gw->io, NULL);
        gw->io_started = false;
    }
    for (size_t i = 0; gw->services && i < gw->nservices; i++)
        zhashx_destroy(&gw->services[i].types);
    free(gw->services);
    gw->services = NULL;
    zhashx_destroy(&gw->inflight);
    if (gw->wake >= 0) close(gw->wake);
    gw->wake = -1;
    sam_client_destroy(&gw->client);
}
