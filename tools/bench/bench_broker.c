/*  bench_broker.c — request/reply through samordna-broker to samordna-echo, against a raw
    ZeroMQ DEALER↔ROUTER echo measured in the same run.

    Both paths carry 200-byte bodies. "Pipelined" keeps a window of requests in flight from
    one client and reports replies per second; "sequential" sends one request, waits for its
    reply, and reports the round trip's p50 and p99. The raw echo runs in a thread of this
    process, and again as a process of its own: the broker path crosses processes (client,
    broker, worker), so the raw echo in another process is the like-for-like baseline that
    the ratios are taken against, and the in-process figure shows the best raw ZeroMQ does.

    The relay figures put a bare zmq_proxy process (ROUTER in, DEALER out, no protocol at
    all) between the raw client and the raw echo: the same four ZeroMQ hops per round trip
    as client → broker → worker → broker → client, so they show what the hops themselves
    cost on this machine, apart from anything the broker and the runtime do.
*/
#include "bench.h"
#include "sam_client.h"
#include "sam_status.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_BODY 200
#define S_WINDOW 1000

/* The raw baseline's echo: a ROUTER that sends every message back as it came. It binds an
   ephemeral loopback port itself and sends the port number up the pipe (0: bind failed). */
static void s_raw_echo(zsock_t *pipe, void *unused)
{
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    zsock_set_sndhwm(router, 0);
    zsock_set_rcvhwm(router, 0);
    int port = zsock_bind(router, "tcp://127.0.0.1:*");
    zsock_signal(pipe, 0);
    zsock_send(pipe, "i", port > 0 ? port : 0);
    zpoller_t *poller = zpoller_new(pipe, router, NULL);
    void *handle = zsock_resolve(router);
    while (true) {
        void *which = zpoller_wait(poller, -1);
        if (which != router) break;
        /* Drain everything waiting, frame by frame, without a poll per message. */
        zmq_msg_t part;
        zmq_msg_init(&part);
        while (zmq_msg_recv(&part, handle, ZMQ_DONTWAIT) >= 0) {
            int more = zmq_msg_more(&part);
            zmq_msg_send(&part, handle, more ? ZMQ_SNDMORE : 0);
        }
        zmq_msg_close(&part);
    }
    zpoller_destroy(&poller);
    zsock_destroy(&router);
}

int bench_raw_echo_process(const char *endpoint)
{
    zsys_init(); /* keeps CZMQ's SIGTERM handler: zsys_interrupted ends the loop */
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    zsock_set_sndhwm(router, 0);
    zsock_set_rcvhwm(router, 0);
    if (!router || zsock_bind(router, "%s", endpoint) < 0) {
        fprintf(stderr, "samordna-bench --raw-echo: cannot bind %s\n", endpoint);
        zsock_destroy(&router);
        return 1;
    }
    void *handle = zsock_resolve(router);
    /* The simplest echo there is, and the quickest: libzmq's blocking receive, each frame
       sent straight back. SIGTERM interrupts the receive. */
    zmq_msg_t part;
    zmq_msg_init(&part);
    while (!zsys_interrupted && zmq_msg_recv(&part, handle, 0) >= 0) {
        int more = zmq_msg_more(&part);
        zmq_msg_send(&part, handle, more ? ZMQ_SNDMORE : 0);
    }
    zmq_msg_close(&part);
    zsock_destroy(&router);
    return 0;
}

int bench_raw_relay_process(const char *front, const char *back)
{
    zsys_init(); /* SIGTERM interrupts zmq_proxy */
    zsock_t *in = zsock_new(ZMQ_ROUTER), *out = zsock_new(ZMQ_DEALER);
    if (in && out) { /* before bind and connect: they apply to the pipes made then */
        zsock_set_sndhwm(in, 0);
        zsock_set_rcvhwm(in, 0);
        zsock_set_sndhwm(out, 0);
        zsock_set_rcvhwm(out, 0);
    }
    if (!in || !out || zsock_bind(in, "%s", front) < 0 || zsock_connect(out, "%s", back) != 0) {
        fprintf(stderr, "samordna-bench --raw-relay: cannot bind %s or connect %s\n", front, back);
        zsock_destroy(&in);
        zsock_destroy(&out);
        return 1;
    }
    zmq_proxy(zsock_resolve(in), zsock_resolve(out), NULL);
    zsock_destroy(&in);
    zsock_destroy(&out);
    return 0;
}

typedef struct {
    double per_s;
    double p50_us, p99_us;
} s_result_t;

/* One way of sending a request and taking its reply — the raw baseline's DEALER or the
   samordna client — so that the same pipelined and sequential loops measure both. */
typedef struct {
    int (*send)(void *ctx, const uint8_t *body, size_t len); /* 0, or -1 when not sent */
    int (*recv)(void *ctx); /* 0; 1 for a wrong reply (an error, the wrong size); -1 for none */
    void *ctx;
} s_wire_t;

/* Throughput with S_WINDOW requests in flight, then the latency of one at a time. 0, or -1
   when a reply did not come or any was wrong. */
static int s_measure(const s_wire_t *w, size_t pipelined, size_t sequential, s_result_t *out)
{
    uint8_t body[S_BODY];
    memset(body, 'x', sizeof body);
    size_t sent = 0, got = 0, bad = 0;
    int64_t t0 = zclock_usecs();
    while (got < pipelined) {
        while (sent < pipelined && sent - got < S_WINDOW) {
            if (w->send(w->ctx, body, sizeof body) != 0) break;
            sent++;
        }
        int rc = w->recv(w->ctx);
        if (rc < 0) {
            fprintf(stderr, "bench: no reply within 5 s after %zu of %zu\n", got, pipelined);
            return -1;
        }
        bad += (size_t)rc;
        got++;
    }
    out->per_s = (double)pipelined / ((double)(zclock_usecs() - t0) / 1e6);
    int64_t *lat = calloc(sequential ? sequential : 1, sizeof *lat);
    if (!lat) return -1;
    for (size_t i = 0; i < sequential; i++) {
        int64_t s = zclock_usecs();
        if (w->send(w->ctx, body, sizeof body) != 0 || w->recv(w->ctx) != 0) bad++;
        lat[i] = zclock_usecs() - s;
    }
    out->p50_us = bench_percentile(lat, sequential, 50);
    out->p99_us = bench_percentile(lat, sequential, 99);
    free(lat);
    if (bad) fprintf(stderr, "bench: %zu replies were errors or the wrong size\n", bad);
    return bad ? -1 : 0;
}

static int s_raw_send(void *ctx, const uint8_t *body, size_t len)
{
    zframe_t *f = zframe_new(body, len);
    return zframe_send(&f, (zsock_t *)ctx, 0);
}

static int s_raw_recv(void *ctx)
{
    zframe_t *f = zframe_recv((zsock_t *)ctx);
    zframe_destroy(&f);
    return 0;
}

static void s_raw(const char *ep, size_t pipelined, size_t sequential, s_result_t *out)
{
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    zsock_set_sndhwm(dealer, 0);
    zsock_set_rcvhwm(dealer, 0);
    zsock_connect(dealer, "%s", ep);
    uint8_t body[S_BODY];
    memset(body, 'x', sizeof body);
    s_raw_send(dealer, body, sizeof body); /* the connection is made before timing */
    s_raw_recv(dealer);
    s_wire_t w = {s_raw_send, s_raw_recv, dealer};
    s_measure(&w, pipelined, sequential, out);
    zsock_destroy(&dealer);
}

static int s_client_send(void *ctx, const uint8_t *body, size_t len)
{
    return sam_client_send((sam_client_t *)ctx, "echo", "echo", body, len) ? 0 : -1;
}

static int s_client_recv(void *ctx)
{
    sam_result_t r;
    if (sam_client_recv((sam_client_t *)ctx, 5000, &r) != 0) return -1;
    int wrong = r.code != SAM_OK || r.body_len != S_BODY;
    sam_result_clear(&r);
    return wrong;
}

static int s_brokered(const char *ep, size_t pipelined, size_t sequential, s_result_t *out)
{
    const char *eps[] = {ep};
    char err[256];
    sam_client_t *c = sam_client_new(eps, 1, NULL, err, sizeof err);
    if (!c) return -1;
    s_wire_t w = {s_client_send, s_client_recv, c};
    int rc = s_measure(&w, pipelined, sequential, out);
    sam_client_destroy(&c);
    return rc;
}

int bench_broker(bench_t *b)
{
    size_t pipelined = (size_t)(200000 * b->scale), sequential = (size_t)(20000 * b->scale);
    char raw_ep[64], broker_ep[64];
    zactor_t *echo = zactor_new(s_raw_echo, NULL);
    int port = 0;
    zsock_recv(echo, "i", &port);
    if (port <= 0) {
        fprintf(stderr, "bench broker: cannot bind the raw echo\n");
        zactor_destroy(&echo);
        return 1;
    }
    snprintf(raw_ep, sizeof raw_ep, "tcp://127.0.0.1:%d", port);
    s_result_t thread, raw, brk;
    s_raw(raw_ep, pipelined, sequential, &thread);
    zactor_destroy(&echo);

    bench_proc_t echo_proc = {0};
    bench_endpoint(raw_ep, sizeof raw_ep);
    if (bench_spawn(b, &echo_proc, "raw-echo.log", "samordna-bench", "--raw-echo", raw_ep, NULL)) {
        fprintf(stderr, "bench broker: cannot start the raw echo process\n");
        return 1;
    }
    s_raw(raw_ep, pipelined, sequential, &raw);

    s_result_t relay;
    char relay_ep[64];
    bench_endpoint(relay_ep, sizeof relay_ep);
    bench_proc_t relay_proc = {0};
    if (bench_spawn(b, &relay_proc, "raw-relay.log", "samordna-bench", "--raw-relay", relay_ep,
                    raw_ep, NULL)) {
        fprintf(stderr, "bench broker: cannot start the relay process\n");
        bench_stop(&echo_proc);
        return 1;
    }
    s_raw(relay_ep, pipelined, sequential, &relay);
    bench_stop(&relay_proc);
    bench_stop(&echo_proc);

    bench_endpoint(broker_ep, sizeof broker_ep);
    bench_proc_t broker = {0}, worker = {0};
    bench_spawn(b, &broker, "broker.log", "samordna-broker", "--bind", broker_ep, "--insecure",
                NULL);
    bench_spawn(b, &worker, "echo.log", "samordna-echo", "--broker", broker_ep, "--data-dir",
                b->work_dir, "--insecure", "--credit", "256", NULL);
    int rc = bench_wait_service(broker_ep, "echo", 10000);
    if (rc == 0) rc = s_brokered(broker_ep, pipelined, sequential, &brk);
    bench_stop(&worker);
    bench_stop(&broker);
    if (rc != 0) {
        fprintf(stderr, "bench broker: the broker path failed (logs in %s)\n", b->work_dir);
        return 1;
    }
    bench_figure("raw in-process pipelined", thread.per_s, "req/s");
    bench_figure("raw in-process sequential p50", thread.p50_us, "us");
    bench_figure("raw dealer-router pipelined", raw.per_s, "req/s");
    bench_figure("broker+echo pipelined", brk.per_s, "req/s");
    bench_figure("pipelined ratio broker/raw", brk.per_s / raw.per_s, "x");
    bench_figure("raw sequential p50", raw.p50_us, "us");
    bench_figure("raw sequential p99", raw.p99_us, "us");
    bench_figure("broker+echo sequential p50", brk.p50_us, "us");
    bench_figure("broker+echo sequential p99", brk.p99_us, "us");
    bench_figure("sequential p50 ratio broker/raw", brk.p50_us / raw.p50_us, "x");
    bench_figure("relay+raw pipelined", relay.per_s, "req/s");
    bench_figure("relay+raw sequential p50", relay.p50_us, "us");
    bench_figure("sequential p50 ratio relay/raw (the hops)", relay.p50_us / raw.p50_us, "x");
    return 0;
}
