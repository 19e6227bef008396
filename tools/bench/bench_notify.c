/*  bench_notify.c — the notify service's figures.

      notify-match-events-per-s      events followed and matched per second against 10 000
                                     subscriptions (exact types, prefixes, sources, subjects;
                                     a few match), from a backlog in a service's outbox;
                                     compared to the same backlog with no subscriptions.
                                     notify is running, its store open and caught up; it is
                                     paused (SIGSTOP) while the backlog is written and timed
                                     from SIGCONT until its cursor reaches the backlog's end,
                                     so starting it and opening its store are not counted
      notify-webhook-deliveries-per-s  signed webhook POSTs per second to a local receiver
                                     (8 subscriptions, each in order) from queues already
                                     filled: the events are matched and queued while the
                                     receiver holds the handshakes off, and the deliveries
                                     are timed from the first handshake it accepts to the
                                     last delivery. The receiver verifies every signature
                                     (Standard Webhooks v1: HMAC-SHA256 over "<id>.<t>.<body>"
                                     with the subscription's whsec_ key, docs/notify.md) and
                                     the run fails on any bad one
      notify-lag-p50-ms / -p99-ms    from publishing an event to a service to its webhook
                                     delivery, one event at a time (includes the service's
                                     commit and fsync)

    The followed service is samordna-echo (a real service with an outbox); the receiver is a
    small keep-alive HTTP/1.1 server in this file, one thread per connection.
*/
#include "bench.h"
#include "sam_client.h"
#include "sam_status.h"
#include "sam_store.h"

#include "samordna/v1/events.pb-c.h"
#include "samordna/v1/notify.pb-c.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define S_MAX_IDS 200000

/* ---- the receiver ------------------------------------------------------------------------- */

#define S_HOOKS 8

typedef struct {
    int listen_fd;
    int port;
    pthread_mutex_t lock;
    long deliveries;     /* accepted non-handshake requests, each signature verified */
    long verified;       /* requests whose signature verified, handshakes included */
    long bad_signatures; /* requests whose signature did not (answered 401) */
    int64_t *arrival_us; /* by event number, for ids "<prefix>-<n>" */
    int nsubs;           /* the subscriptions' secrets, by id */
    char sub[S_HOOKS][32];
    uint8_t key[S_HOOKS][32]; /* the subscriptions' whsec_ keys, decoded */
    bool hold;                /* handshakes answered 503: subscriptions stay pending */
    int64_t released_us;      /* the first handshake accepted since the last reset */
    int64_t last_us;          /* the last delivery accepted */
    volatile int stop;
} s_receiver_t;

typedef struct {
    s_receiver_t *r;
    int fd;
} s_conn_t;

/* Reads until "\r\n\r\n" plus Content-Length bytes; returns the body length or -1. */
static long s_read_request(int fd, char *buf, size_t cap, char **body)
{
    size_t len = 0;
    char *end = NULL;
    while (!end) {
        if (len + 1 >= cap) return -1;
        ssize_t got = read(fd, buf + len, cap - 1 - len);
        if (got <= 0) return -1;
        len += (size_t)got;
        buf[len] = 0;
        end = strstr(buf, "\r\n\r\n");
    }
    long clen = 0;
    const char *cl = strstr(buf, "Content-Length:"); /* as libcurl writes it */
    if (!cl) cl = strstr(buf, "content-length:");
    if (cl) clen = atol(cl + 15);
    size_t head = (size_t)(end + 4 - buf);
    if (head + (size_t)clen + 1 > cap) return -1;
    while (len < head + (size_t)clen) {
        ssize_t got = read(fd, buf + len, head + (size_t)clen - len);
        if (got <= 0) return -1;
        len += (size_t)got;
    }
    buf[head + (size_t)clen] = 0;
    *body = buf + head;
    return clen;
}

/* The value of header `name` among the header lines in [head, end); false when absent. */
static bool s_header(const char *head, const char *end, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = head; p < end;) {
        const char *eol = strstr(p, "\r\n");
        if (!eol || eol > end) eol = end;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < eol && *v == ' ')
                v++;
            size_t len = (size_t)(eol - v) < cap - 1 ? (size_t)(eol - v) : cap - 1;
            memcpy(out, v, len);
            out[len] = 0;
            return true;
        }
        p = eol + 2;
    }
    return false;
}

/* 1 when the request carries a Standard Webhooks v1 signature — webhook-signature:
   v1,<base64 HMAC-SHA256 over "<webhook-id>.<webhook-timestamp>.<body>"> — made with the
   whsec_ key of the subscription X-Samordna-Delivery names, within the last 300 s
   (docs/notify.md); 0 when it does not; -1 when the receiver has not been told that
   subscription's key yet (a handshake right after it was created). */
static int s_verify(s_receiver_t *r, const char *head, const char *end, const char *body, long len)
{
    char delivery[96], id[160], ts[32], sig[200];
    uint8_t key[32];
    bool known = false;
    if (!s_header(head, end, "X-Samordna-Delivery", delivery, sizeof delivery) ||
        !s_header(head, end, "webhook-id", id, sizeof id) ||
        !s_header(head, end, "webhook-timestamp", ts, sizeof ts) ||
        !s_header(head, end, "webhook-signature", sig, sizeof sig))
        return 0;
    char *slash = strchr(delivery, '/');
    if (slash) *slash = 0;
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < r->nsubs; i++)
        if (strcmp(r->sub[i], delivery) == 0) {
            memcpy(key, r->key[i], sizeof key);
            known = true;
        }
    pthread_mutex_unlock(&r->lock);
    if (!known) return -1;
    uint8_t got[crypto_auth_hmacsha256_BYTES];
    size_t got_len = 0;
    if (!*ts || strspn(ts, "0123456789") != strlen(ts) ||
        llabs((long long)time(NULL) - atoll(ts)) > 300 || strncmp(sig, "v1,", 3) != 0 ||
        sodium_base642bin(got, sizeof got, sig + 3, strlen(sig + 3), NULL, &got_len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        got_len != sizeof got)
        return 0;
    crypto_auth_hmacsha256_state st;
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init(&st, key, sizeof key);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)id, strlen(id));
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)ts, strlen(ts));
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)body, (unsigned long long)len);
    crypto_auth_hmacsha256_final(&st, mac);
    return sodium_memcmp(mac, got, sizeof mac) == 0 ? 1 : 0;
}

static void *s_conn_run(void *arg)
{
    s_conn_t *c = arg;
    s_receiver_t *r = c->r;
    char *buf = malloc(1 << 20);
    while (buf && !r->stop) {
        char *body;
        long len = s_read_request(c->fd, buf, 1 << 20, &body);
        if (len < 0) break;
        char out[512];
        int n;
        const char *ch = strstr(body, "\"challenge\":\"");
        int verdict = s_verify(r, buf, body - 2, body, len);
        pthread_mutex_lock(&r->lock);
        if (verdict == 1)
            r->verified++;
        else if (verdict == 0)
            r->bad_signatures++;
        bool hold = r->hold || verdict < 0;
        pthread_mutex_unlock(&r->lock);
        if (verdict == 0) {
            n = snprintf(out, sizeof out,
                         "HTTP/1.1 401 Unauthorized\r\nContent-Length: 13\r\n\r\nbad signature");
        } else if (verdict < 0 ||
                   (strstr(body, "no.samordna.notify.webhook.handshake") && ch && hold)) {
            n = snprintf(out, sizeof out,
                         "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
        } else if (strstr(body, "no.samordna.notify.webhook.handshake") && ch) {
            char hex[65] = "";
            sscanf(ch + 13, "%64[0-9a-f]", hex);
            char json[128];
            int jl = snprintf(json, sizeof json, "{\"challenge\":\"%s\"}", hex);
            n = snprintf(out, sizeof out,
                         "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         "Content-Length: %d\r\n\r\n%s",
                         jl, json);
            int64_t now = zclock_usecs();
            pthread_mutex_lock(&r->lock);
            if (!r->released_us) r->released_us = now;
            pthread_mutex_unlock(&r->lock);
        } else {
            int64_t now = zclock_usecs();
            const char *id = strstr(body, "\"id\":\"");
            long num = -1;
            if (id) {
                const char *dash = strchr(id + 6, '-');
                if (dash) num = atol(dash + 1);
            }
            pthread_mutex_lock(&r->lock);
            r->deliveries++;
            r->last_us = now;
            if (num >= 0 && num < S_MAX_IDS && !r->arrival_us[num]) r->arrival_us[num] = now;
            pthread_mutex_unlock(&r->lock);
            n = snprintf(out, sizeof out, "HTTP/1.1 204 No Content\r\n\r\n");
        }
        if (write(c->fd, out, (size_t)n) != n) break;
    }
    free(buf);
    close(c->fd);
    free(c);
    return NULL;
}

static void *s_accept_run(void *arg)
{
    s_receiver_t *r = arg;
    while (!r->stop) {
        int fd = accept(r->listen_fd, NULL, NULL);
        if (fd < 0) continue;
        s_conn_t *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->r = r;
        c->fd = fd;
        pthread_t t;
        if (pthread_create(&t, NULL, s_conn_run, c) != 0) {
            close(fd);
            free(c);
            continue;
        }
        pthread_detach(t);
    }
    return NULL;
}

static int s_receiver_start(s_receiver_t *r, pthread_t *t)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    r->arrival_us = calloc(S_MAX_IDS, sizeof *r->arrival_us);
    r->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (!r->arrival_us || r->listen_fd < 0 || bind(r->listen_fd, (void *)&a, sizeof a) != 0 ||
        listen(r->listen_fd, 128) != 0 || getsockname(r->listen_fd, (void *)&a, &al) != 0)
        return -1;
    r->port = ntohs(a.sin_port);
    return pthread_create(t, NULL, s_accept_run, r);
}

static void s_receiver_reset(s_receiver_t *r)
{
    pthread_mutex_lock(&r->lock);
    r->deliveries = 0;
    r->released_us = r->last_us = 0;
    memset(r->arrival_us, 0, S_MAX_IDS * sizeof *r->arrival_us);
    pthread_mutex_unlock(&r->lock);
}

static long s_receiver_count(s_receiver_t *r)
{
    pthread_mutex_lock(&r->lock);
    long n = r->deliveries;
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* ---- publishing --------------------------------------------------------------------------- */

/* Pipelined publishes of n events made by make(i); 0 when all were acknowledged. */
typedef uint8_t *(*s_make_fn)(long i, size_t *len, void *arg);

static int s_publish_many(sam_client_t *c, const char *service, long n, s_make_fn make, void *arg)
{
    long sent = 0, done = 0, window = 500;
    while (done < n) {
        while (sent < n && sent - done < window) {
            size_t len;
            uint8_t *body = make(sent, &len, arg);
            if (!body || !sam_client_send(c, service, "events.publish", body, len)) {
                free(body);
                return -1;
            }
            free(body);
            sent++;
        }
        sam_result_t res = {0};
        if (sam_client_recv(c, 10000, &res) != 0) return -1;
        if (res.code != SAM_OK) {
            fprintf(stderr, "bench notify: %s publish: %u %s\n", service, res.code, res.message);
            sam_result_clear(&res);
            return -1;
        }
        sam_result_clear(&res);
        done++;
    }
    return 0;
}

static uint8_t *s_make_sub(long i, size_t *len, void *arg)
{
    /* a quarter each: exact types that never occur, prefixes of other families, sources
       that never publish, subjects that never occur; every 1000th matches everything */
    char id[32], type[64], source[32], subject[32];
    snprintf(id, sizeof id, "s%ld", i);
    Samordna__V1__Subscription s = SAMORDNA__V1__SUBSCRIPTION__INIT;
    s.id = id;
    s.channel = SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_INBOX;
    switch (i % 4) {
    case 0:
        snprintf(type, sizeof type, "no.samordna.bench.kind%ld.made", i);
        s.type = type;
        break;
    case 1:
        snprintf(type, sizeof type, "no.samordna.family%ld.*", i);
        s.type = type;
        break;
    case 2:
        snprintf(source, sizeof source, "agency-%ld", i);
        s.source = source;
        break;
    default:
        snprintf(subject, sizeof subject, "municipality-%ld", i);
        s.type = "no.samordna.echo.recorded";
        s.subject = subject;
    }
    if (i % 1000 == 999) {
        s.type = "no.samordna.echo.*";
        s.source = "";
        s.subject = "";
    }
    Samordna__V1__SubscriptionCreated ev = SAMORDNA__V1__SUBSCRIPTION_CREATED__INIT;
    ev.subscription = &s;
    char eid[40];
    snprintf(eid, sizeof eid, "bench-sub-%ld", i);
    return bench_event("no.samordna.notify.subscription.created", eid, "fmov", NULL, &ev.base, len);
}

static uint8_t *s_make_echo(long i, size_t *len, void *arg)
{
    char id[48];
    snprintf(id, sizeof id, "%s-%ld", (const char *)arg, i);
    return bench_event("no.samordna.echo.recorded", id, "fmov", "halden", NULL, len);
}

/* Waits until notify's cursor on `service` reaches seq; returns 0 or -1 after timeout_ms. */
static int s_wait_cursor(sam_client_t *c, const char *service, uint64_t seq, int timeout_ms)
{
    int64_t end = zclock_mono() + timeout_ms;
    while (zclock_mono() < end) {
        sam_result_t res = {0};
        Samordna__V1__CursorsReply *rep = NULL;
        sam_client_call(c, "notify", "notify.cursors", NULL,
                        &samordna__v1__cursors_reply__descriptor, (ProtobufCMessage **)&rep, 2000,
                        true, &res);
        sam_result_clear(&res);
        bool there = false;
        for (size_t i = 0; rep && i < rep->n_cursors; i++)
            if (strcmp(rep->cursors[i]->service, service) == 0 && rep->cursors[i]->seq >= seq)
                there = true;
        if (rep) protobuf_c_message_free_unpacked(&rep->base, NULL);
        if (there) return 0;
        zclock_sleep(5);
    }
    return -1;
}

static uint64_t s_last_seq(sam_client_t *c, const char *service)
{
    sam_result_t res = {0};
    Samordna__V1__PingReply *p = NULL;
    sam_client_call(c, service, "ping", NULL, &samordna__v1__ping_reply__descriptor,
                    (ProtobufCMessage **)&p, 2000, true, &res);
    sam_result_clear(&res);
    uint64_t seq = p ? p->last_seq : 0;
    if (p) protobuf_c_message_free_unpacked(&p->base, NULL);
    return seq;
}

/* ---- the figures -------------------------------------------------------------------------- */

typedef struct {
    bench_t *b;
    char ep[64];
    char dir[1024];
    bench_proc_t broker, echo, notify;
    sam_client_t *c;
} s_env_t;

static int s_start_notify(s_env_t *e, const char *follow)
{
    /* No briefing or reminder falls due while measuring (the briefing day is half a year
       away, so never today), and a refused handshake is tried again after 200 ms, not the
       default 10 s. */
    time_t later = time(NULL) + 182 * 86400;
    struct tm tm;
    gmtime_r(&later, &tm);
    char day[8];
    strftime(day, sizeof day, "%m-%d", &tm);
    if (bench_spawn(e->b, &e->notify, "notify.log", "samordna-notify", "--broker", e->ep,
                    "--data-dir", e->dir, "--insecure", "--follow", follow, "--follow-wait-ms",
                    "1000", "--max-in-flight", "64", "--reminder-days", "0", "--briefing-dates",
                    day, "--retry-schedule", "200ms,200ms,200ms,200ms,200ms", NULL))
        return -1;
    return bench_wait_service(e->ep, "notify", 10000);
}

/*  Events followed and matched per second from a backlog of n events, with the subscriptions
    there are. notify is up and caught up; it is paused while the backlog is written, so the
    time from its resumption to its cursor at the backlog's end is following and matching
    alone, not starting it or opening its store. */
static double s_match_rate(s_env_t *e, long n, const char *tag)
{
    uint64_t before = s_last_seq(e->c, "echo");
    if (s_wait_cursor(e->c, "echo", before, 60000)) {
        fprintf(stderr, "bench notify: notify is not caught up with echo\n");
        return -1;
    }
    if (kill(e->notify.pid, SIGSTOP) != 0) return -1;
    int pub = s_publish_many(e->c, "echo", n, s_make_echo, (void *)tag);
    uint64_t last = s_last_seq(e->c, "echo");
    int64_t t0 = zclock_usecs();
    kill(e->notify.pid, SIGCONT);
    if (pub) return -1;
    if (last < before + (uint64_t)n) {
        fprintf(stderr, "bench notify: echo's outbox is at %llu, not %llu\n",
                (unsigned long long)last, (unsigned long long)(before + (uint64_t)n));
        return -1;
    }
    if (s_wait_cursor(e->c, "echo", last, 120000)) {
        fprintf(stderr, "bench notify: notify did not reach seq %llu of echo\n",
                (unsigned long long)last);
        return -1;
    }
    double s = (double)(zclock_usecs() - t0) / 1e6;
    return (double)n / s;
}

static uint8_t *s_make_hook(long i, size_t *len, void *arg)
{
    (void)arg;
    char id[48];
    snprintf(id, sizeof id, "w-%ld", i);
    return bench_event("no.samordna.echo.recorded", id, "fmov", "webhook", NULL, len);
}

/* The v1 key of subscription `id` (notify.subscriptions.secret: whsec_<base64>) into out;
   0 or -1. */
static int s_secret(sam_client_t *c, const char *id, uint8_t out[32])
{
    Samordna__V1__SubscriptionSecretRequest req = SAMORDNA__V1__SUBSCRIPTION_SECRET_REQUEST__INIT;
    req.id = (char *)id;
    sam_result_t res = {0};
    Samordna__V1__SubscriptionSecretReply *rep = NULL;
    sam_client_call(c, "notify", "notify.subscriptions.secret", &req.base,
                    &samordna__v1__subscription_secret_reply__descriptor, (ProtobufCMessage **)&rep,
                    5000, true, &res);
    sam_result_clear(&res);
    size_t n = 0;
    int rc = rep && strncmp(rep->secret, "whsec_", 6) == 0 &&
                     sodium_base642bin(out, 32, rep->secret + 6, strlen(rep->secret + 6), NULL, &n,
                                       NULL, sodium_base64_VARIANT_ORIGINAL) == 0 &&
                     n == 32
                 ? 0
                 : -1;
    if (rep) protobuf_c_message_free_unpacked(&rep->base, NULL);
    return rc;
}

/* Deliveries waiting for subscription `id`, or -1. */
static long s_queued(sam_client_t *c, const char *id)
{
    Samordna__V1__SubscriptionGetRequest req = SAMORDNA__V1__SUBSCRIPTION_GET_REQUEST__INIT;
    req.id = (char *)id;
    sam_result_t res = {0};
    Samordna__V1__SubscriptionInfo *info = NULL;
    sam_client_call(c, "notify", "notify.subscriptions.get", &req.base,
                    &samordna__v1__subscription_info__descriptor, (ProtobufCMessage **)&info, 5000,
                    true, &res);
    sam_result_clear(&res);
    long q = info ? (long)info->queued : -1;
    if (info) protobuf_c_message_free_unpacked(&info->base, NULL);
    return q;
}

int bench_notify(bench_t *b)
{
    s_env_t e = {.b = b};
    bench_endpoint(e.ep, sizeof e.ep);
    snprintf(e.dir, sizeof e.dir, "%s", b->work_dir);
    /* stores of an earlier run would change what is measured: start empty */
    zdir_t *old = zdir_new(e.dir, NULL);
    if (old) zdir_remove(old, true);
    zdir_destroy(&old);
    zsys_dir_create("%s", e.dir);
    int rc = 1;
    s_receiver_t recv;
    pthread_t recv_thread;
    if (s_receiver_start(&recv, &recv_thread)) {
        fprintf(stderr, "bench notify: cannot start the receiver\n");
        return 1;
    }
    if (bench_spawn(b, &e.broker, "broker.log", "samordna-broker", "--bind", e.ep, "--insecure",
                    NULL) ||
        bench_spawn(b, &e.echo, "echo.log", "samordna-echo", "--broker", e.ep, "--data-dir", e.dir,
                    "--insecure", NULL) ||
        bench_wait_service(e.ep, "echo", 10000) || s_start_notify(&e, "echo")) {
        fprintf(stderr, "bench notify: services did not start\n");
        goto done;
    }
    const char *eps[] = {e.ep};
    char err[256];
    e.c = sam_client_new(eps, 1, NULL, err, sizeof err);
    if (!e.c) goto done;

    long n_events = (long)(20000 * b->scale);
    if (n_events < 1000) n_events = 1000;
    double base = s_match_rate(&e, n_events, "base");
    if (s_publish_many(e.c, "notify", 10000, s_make_sub, NULL)) {
        fprintf(stderr, "bench notify: subscriptions refused\n");
        goto done;
    }
    double rate = s_match_rate(&e, n_events, "match");
    if (base <= 0 || rate <= 0) {
        fprintf(stderr, "bench notify: matching did not finish\n");
        goto done;
    }
    printf("notify-match-events-per-s  %.0f events/s  [compared-to no-subscriptions: %.2f]\n", rate,
           rate / base);
    fflush(stdout);

    /* webhooks: 8 subscriptions to the receiver; each event is delivered 8 times. The
       receiver holds the handshakes off while the events are matched and queued, so the
       deliveries are timed from filled queues. */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", recv.port);
    pthread_mutex_lock(&recv.lock);
    recv.hold = true;
    pthread_mutex_unlock(&recv.lock);
    for (int i = 0; i < S_HOOKS; i++) {
        char id[32], eid[32];
        uint8_t secret[32];
        snprintf(id, sizeof id, "hook%d", i);
        snprintf(eid, sizeof eid, "bench-hook-%d", i);
        Samordna__V1__Subscription s = SAMORDNA__V1__SUBSCRIPTION__INIT;
        s.id = id;
        s.channel = SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_WEBHOOK;
        s.url = url;
        s.type = "no.samordna.echo.recorded";
        s.subject = "webhook";
        Samordna__V1__SubscriptionCreated ev = SAMORDNA__V1__SUBSCRIPTION_CREATED__INIT;
        ev.subscription = &s;
        sam_result_t res = {0};
        uint64_t id_sent = bench_publish(e.c, "notify", "no.samordna.notify.subscription.created",
                                         eid, "fmov", NULL, &ev.base);
        if (!id_sent || sam_client_recv(e.c, 5000, &res) != 0 || res.code != SAM_OK) {
            sam_result_clear(&res);
            goto done;
        }
        sam_result_clear(&res);
        if (s_secret(e.c, id, secret)) {
            fprintf(stderr, "bench notify: no secret for %s\n", id);
            goto done;
        }
        pthread_mutex_lock(&recv.lock);
        snprintf(recv.sub[recv.nsubs], sizeof recv.sub[0], "%s", id);
        memcpy(recv.key[recv.nsubs++], secret, sizeof secret);
        pthread_mutex_unlock(&recv.lock);
    }
    long n_hook = (long)(2000 * b->scale);
    if (n_hook < 200) n_hook = 200;
    if (s_publish_many(e.c, "echo", n_hook, s_make_hook, NULL) ||
        s_wait_cursor(e.c, "echo", s_last_seq(e.c, "echo"), 60000)) {
        fprintf(stderr, "bench notify: the webhook events were not followed\n");
        goto done;
    }
    for (int i = 0; i < S_HOOKS; i++) {
        long q = s_queued(e.c, recv.sub[i]);
        if (q != n_hook) {
            fprintf(stderr, "bench notify: %s has %ld deliveries queued, not %ld\n", recv.sub[i], q,
                    n_hook);
            goto done;
        }
    }
    s_receiver_reset(&recv);
    pthread_mutex_lock(&recv.lock);
    recv.hold = false; /* the next handshake of each subscription is accepted */
    pthread_mutex_unlock(&recv.lock);
    int64_t end = zclock_mono() + 120000;
    while (s_receiver_count(&recv) < n_hook * S_HOOKS && zclock_mono() < end) {
        pthread_mutex_lock(&recv.lock);
        long bad_now = recv.bad_signatures;
        pthread_mutex_unlock(&recv.lock);
        if (bad_now) break; /* a signature that does not verify ends the run */
        zclock_sleep(2);
    }
    pthread_mutex_lock(&recv.lock);
    long got = recv.deliveries, bad = recv.bad_signatures, verified = recv.verified;
    double secs = (double)(recv.last_us - recv.released_us) / 1e6;
    pthread_mutex_unlock(&recv.lock);
    if (got < n_hook * S_HOOKS || bad || secs <= 0) {
        fprintf(stderr, "bench notify: %ld of %ld webhook deliveries, %ld bad signatures\n", got,
                n_hook * S_HOOKS, bad);
        goto done;
    }
    bench_figure("notify-webhook-deliveries-per-s", (double)got / secs, "deliveries/s");
    fprintf(stderr, "bench notify: %ld signatures verified, none bad\n", verified);
    fflush(stdout);

    /* lag: one event at a time, publish → first webhook delivery */
    long n_lag = (long)(300 * b->scale);
    if (n_lag < 50) n_lag = 50;
    if (n_lag > S_MAX_IDS) n_lag = S_MAX_IDS;
    int64_t *lat = calloc((size_t)n_lag, sizeof *lat);
    if (!lat) goto done;
    s_receiver_reset(&recv);
    size_t nl = 0;
    for (long i = 0; i < n_lag; i++) {
        char id[48];
        snprintf(id, sizeof id, "l-%ld", i);
        size_t len;
        uint8_t *body = bench_event("no.samordna.echo.recorded", id, "fmov", "webhook", NULL, &len);
        int64_t sent = zclock_usecs();
        sam_result_t res = {0};
        if (!body || !sam_client_send(e.c, "echo", "events.publish", body, len) ||
            sam_client_recv(e.c, 5000, &res) != 0) {
            free(body);
            sam_result_clear(&res);
            break;
        }
        free(body);
        sam_result_clear(&res);
        int64_t until = zclock_mono() + 5000;
        int64_t arrived = 0;
        while (zclock_mono() < until) {
            pthread_mutex_lock(&recv.lock);
            arrived = recv.arrival_us[i];
            pthread_mutex_unlock(&recv.lock);
            if (arrived) break;
            zclock_sleep(0);
        }
        if (!arrived) break;
        lat[nl++] = arrived - sent;
    }
    if (nl < (size_t)n_lag) {
        fprintf(stderr, "bench notify: %zu of %ld lag samples\n", nl, n_lag);
        free(lat);
        goto done;
    }
    printf("notify-lag-p50-ms  %.2f ms\n", bench_percentile(lat, nl, 50) / 1000.0);
    printf("notify-lag-p99-ms  %.2f ms\n", bench_percentile(lat, nl, 99) / 1000.0);
    free(lat);
    rc = 0;
done:
    sam_client_destroy(&e.c);
    bench_stop(&e.notify);
    bench_stop(&e.echo);
    bench_stop(&e.broker);
    recv.stop = 1;
    shutdown(recv.listen_fd, SHUT_RDWR);
    close(recv.listen_fd);
    pthread_join(recv_thread, NULL);
    return rc;
}
