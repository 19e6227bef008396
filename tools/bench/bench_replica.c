/*  bench_replica.c — what a standby, and synchronous mode, cost the registry's writers.

    Three phases in one run, each with a broker and fresh stores of its own (docs/scaling.md,
    "Across hosts"; the hosts are folders here, as in tests/replica_test.py):
    1. primary: `samordna-registry --instance reg-a` alone — the baseline;
    2. async: the same primary and a standby `--replica standby --instance reg-b` following
       it through the broker;
    3. sync: the primary with `--sync-standby` and the same standby: an acknowledgement waits
       until the standby's next poll says it has committed the write.
    Both instances run with credit 1 024, as `samordna-bench registry` does.

    In each phase, one client publishes n person.registered events (50 000 × --scale)
    pipelined, 512 in flight (S_WINDOW), and then m events (300 × --scale) one at a time
    (sam_client_call): events/s, and call latency p50/p99. With a standby, two more figures:
    - lag p50/p99: another m events one at a time; after each acknowledgement, an events.read
      sent to the standby alone (Request.instance) asking for that seq, with wait_ms: from the
      acknowledgement to the standby's answer, so one round trip to the standby (about
      0.25 ms on loopback) is part of every figure;
    - catch-up: from the last acknowledgement of the pipelined burst to the standby having
      its last event.
    Every figure of phases 2 and 3 that phase 1 has too is printed beside it as a ratio.

    At the end of phase 2, a promotion by hand: the primary is killed with SIGKILL, then
    replica.promote with force (samctl promote --force: without it a standby that heard its
    primary moments ago refuses) is sent to the standby (Request.instance), then one event
    is published: the time from the kill to the promotion answered and to that write
    acknowledged. One sample a run.
*/
#include "bench.h"
#include "sam_client.h"
#include "sam_status.h"

#include "samordna/v1/envelope.pb-c.h"
#include "samordna/v1/events.pb-c.h"
#include "samordna/v1/registry.pb-c.h"

#include <czmq.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Events in flight, in every phase: below the primary's credit (1 024). In synchronous mode
   the replies a primary holds for the standby's confirmation count against its credit with
   the broker, and the standby's poll that would confirm them needs a credit slot of its own:
   with more than the credit in flight none is left, and every held write waits out
   --sync-timeout-ms and is answered 503 (measured with 2 048, the registry bench's window). */
#define S_WINDOW 512

typedef enum { S_PRIMARY, S_ASYNC, S_SYNC } s_mode_t;

static const char *s_mode_name[] = {"primary", "async", "sync"};

/* The figures of one phase. */
typedef struct {
    double rate;         /* pipelined events/s */
    double p50, p99;     /* one publish at a time, ms */
    double lag50, lag99; /* acknowledgement → the standby has it, ms */
    double catchup;      /* the burst's last acknowledgement → the standby has it all, ms */
    double promoted;     /* kill -9 → replica.promote answered, ms (async only) */
    double first_write;  /* kill -9 → the first write acknowledged again, ms */
} s_figures_t;

/* One phase's processes and clients. */
typedef struct {
    bench_t *b;
    char ep[64];
    s_mode_t mode;
    bench_proc_t broker, primary, standby;
    sam_client_t *pub;  /* the writer: no route (the broker picks the primary) */
    sam_client_t *to_b; /* routed to reg-b alone */
    uint64_t stored;    /* events stored in this phase so far (the outbox head) */
    size_t next_id;     /* the next event's number (unique ids in the phase) */
} s_phase_t;

static sam_client_t *s_client(const char *ep, const char *instance)
{
    const char *eps[] = {ep};
    char err[256];
    sam_client_opts_t opts = {.max_pending = S_WINDOW};
    sam_client_t *c = sam_client_new(eps, 1, &opts, err, sizeof err);
    if (!c) fprintf(stderr, "bench replica: %s\n", err);
    if (c && instance) sam_client_set_route(c, false, instance);
    return c;
}

/* One packed events.publish body: a person.registered with the phase's next unique id. */
static uint8_t *s_event(s_phase_t *ph, size_t *len)
{
    return bench_person_event("replica", ph->next_id++, len);
}

/* Publishes one event and waits for its acknowledgement; its seq, or 0 (said why). */
static uint64_t s_publish_one(s_phase_t *ph, int timeout_ms)
{
    size_t len;
    uint8_t *body = s_event(ph, &len);
    if (!body) return 0;
    uint64_t rid = sam_client_send(ph->pub, "registry", "events.publish", body, len);
    free(body);
    if (!rid) return 0;
    sam_result_t res = {0};
    uint64_t seq = 0;
    int64_t until = zclock_mono() + timeout_ms;
    while (zclock_mono() < until) {
        if (sam_client_recv(ph->pub, (int)(until - zclock_mono()), &res) != 0) break;
        if (res.id != rid) { /* a late answer of an earlier request */
            sam_result_clear(&res);
            continue;
        }
        Samordna__V1__PublishReply *pr =
            res.code == SAM_OK ? samordna__v1__publish_reply__unpack(NULL, res.body_len, res.body)
                               : NULL;
        if (pr) seq = pr->seq;
        if (!pr)
            fprintf(stderr, "bench replica (%s): a publish answered %u %s\n", s_mode_name[ph->mode],
                    res.code, res.message);
        if (pr) protobuf_c_message_free_unpacked(&pr->base, NULL);
        sam_result_clear(&res);
        break;
    }
    if (seq > ph->stored) ph->stored = seq;
    if (!seq && zclock_mono() >= until)
        fprintf(stderr, "bench replica (%s): a publish unanswered in %d ms\n",
                s_mode_name[ph->mode], timeout_ms);
    return seq;
}

/* Waits until the standby's outbox holds `seq` (events.read to reg-b with wait_ms). 0 or -1. */
static int s_standby_has(s_phase_t *ph, uint64_t seq, int timeout_ms)
{
    Samordna__V1__ReadRequest rr = SAMORDNA__V1__READ_REQUEST__INIT;
    rr.after_seq = seq - 1;
    rr.max = 1;
    rr.wait_ms = 1000;
    int64_t until = zclock_mono() + timeout_ms;
    while (zclock_mono() < until) {
        Samordna__V1__ReadReply *rep = NULL;
        sam_result_t res = {0};
        uint32_t code = sam_client_call(ph->to_b, "registry", "events.read", &rr.base,
                                        &samordna__v1__read_reply__descriptor,
                                        (ProtobufCMessage **)&rep, 3000, true, &res);
        bool has = code == SAM_OK && rep && rep->n_events > 0 && rep->events[0]->seq >= seq;
        if (code != SAM_OK)
            fprintf(stderr, "bench replica (%s): the standby's events.read answered %u %s\n",
                    s_mode_name[ph->mode], code, res.message);
        if (rep) protobuf_c_message_free_unpacked(&rep->base, NULL);
        sam_result_clear(&res);
        if (has) return 0;
        if (code != SAM_OK) zclock_sleep(20);
    }
    fprintf(stderr, "bench replica (%s): the standby did not have seq %llu in %d ms\n",
            s_mode_name[ph->mode], (unsigned long long)seq, timeout_ms);
    return -1;
}

/* The role reg-b reports (ping sent to it alone) is `role`; waits up to timeout_ms. 0 or -1. */
static int s_wait_role(s_phase_t *ph, const char *role, int timeout_ms)
{
    int64_t until = zclock_mono() + timeout_ms;
    while (zclock_mono() < until) {
        Samordna__V1__PingReply *pr = NULL;
        sam_result_t res = {0};
        bool is = sam_client_call(ph->to_b, "registry", "ping", NULL,
                                  &samordna__v1__ping_reply__descriptor, (ProtobufCMessage **)&pr,
                                  500, false, &res) == SAM_OK &&
                  pr && pr->replica && strcmp(pr->replica->role, role) == 0;
        if (pr) protobuf_c_message_free_unpacked(&pr->base, NULL);
        sam_result_clear(&res);
        if (is) return 0;
        zclock_sleep(20);
    }
    fprintf(stderr, "bench replica (%s): reg-b did not report itself %s\n", s_mode_name[ph->mode],
            role);
    return -1;
}

/* Publishes n events pipelined; *rate, and *last_ack (monotonic µs). 0 or -1. */
static int s_burst(s_phase_t *ph, size_t n, double *rate, int64_t *last_ack)
{
    uint8_t **bodies = calloc(n, sizeof *bodies);
    size_t *lens = calloc(n, sizeof *lens);
    int rc = -1;
    if (!bodies || !lens) goto done;
    for (size_t i = 0; i < n; i++)
        if (!(bodies[i] = s_event(ph, &lens[i]))) goto done;
    size_t next = 0, acked = 0, refused = 0;
    int64_t t0 = zclock_usecs();
    while (acked < n) {
        while (next < n && next - acked < S_WINDOW) {
            if (!sam_client_send(ph->pub, "registry", "events.publish", bodies[next], lens[next]))
                goto done;
            next++;
        }
        sam_result_t res;
        if (sam_client_recv(ph->pub, 10000, &res) != 0) {
            fprintf(stderr, "bench replica (%s): no acknowledgement within 10 s (%zu of %zu)\n",
                    s_mode_name[ph->mode], acked, n);
            goto done;
        }
        acked++;
        if (res.code != SAM_OK && refused++ == 0)
            fprintf(stderr, "bench replica (%s): refused: %u %s\n", s_mode_name[ph->mode], res.code,
                    res.message);
        sam_result_clear(&res);
    }
    *last_ack = zclock_usecs();
    *rate = (double)n / ((double)(*last_ack - t0) / 1e6);
    ph->stored += n; /* every one acknowledged 200 and none a duplicate: ids are unique */
    rc = refused ? -1 : 0;
done:
    if (bodies)
        for (size_t i = 0; i < n; i++)
            free(bodies[i]);
    free(bodies);
    free(lens);
    return rc;
}

/* m publishes one at a time; p50/p99 in ms, and with `lag` the standby's lag after each. */
static int s_calls(s_phase_t *ph, size_t m, bool lag, double *p50, double *p99)
{
    int64_t *lat = calloc(m, sizeof *lat);
    int rc = -1;
    if (!lat) return -1;
    for (size_t i = 0; i < m; i++) {
        int64_t t0 = zclock_usecs();
        uint64_t seq = s_publish_one(ph, 10000);
        if (!seq) goto done;
        int64_t acked = zclock_usecs();
        lat[i] = acked - t0;
        if (lag) {
            if (s_standby_has(ph, seq, 10000) != 0) goto done;
            lat[i] = zclock_usecs() - acked;
        }
    }
    *p50 = bench_percentile(lat, m, 50) / 1000.0;
    *p99 = bench_percentile(lat, m, 99) / 1000.0;
    rc = 0;
done:
    free(lat);
    return rc;
}

/* kill -9 of the primary, replica.promote to reg-b, one write: the two times in ms. */
static int s_promote(s_phase_t *ph, s_figures_t *f)
{
    int64_t t0 = zclock_usecs();
    kill(ph->primary.pid, SIGKILL);
    waitpid(ph->primary.pid, NULL, 0);
    ph->primary.pid = 0;
    /* force: the standby heard the primary moments ago and would refuse (409) for some
       seconds more; the bench knows it is dead, as an operator using --force does. */
    Samordna__V1__PromoteRequest pq = SAMORDNA__V1__PROMOTE_REQUEST__INIT;
    pq.force = true;
    Samordna__V1__ReplicaState *rs = NULL;
    sam_result_t res = {0};
    uint32_t code = sam_client_call(ph->to_b, "registry", "replica.promote", &pq.base,
                                    &samordna__v1__replica_state__descriptor,
                                    (ProtobufCMessage **)&rs, 5000, true, &res);
    bool ok = code == SAM_OK && rs && strcmp(rs->role, "primary") == 0;
    if (!ok)
        fprintf(stderr, "bench replica: replica.promote answered %u %s (%s)\n", code, res.message,
                rs ? rs->role : "no state");
    if (rs) protobuf_c_message_free_unpacked(&rs->base, NULL);
    sam_result_clear(&res);
    if (!ok) return -1;
    f->promoted = (double)(zclock_usecs() - t0) / 1000.0;
    if (!s_publish_one(ph, 10000)) return -1;
    f->first_write = (double)(zclock_usecs() - t0) / 1000.0;
    return 0;
}

static void s_phase_stop(s_phase_t *ph)
{
    sam_client_destroy(&ph->pub);
    sam_client_destroy(&ph->to_b);
    bench_stop(&ph->standby);
    bench_stop(&ph->primary);
    bench_stop(&ph->broker);
}

/* Runs one phase from fresh stores; fills f. 0 or -1. */
static int s_phase(s_phase_t *ph, size_t n, size_t m, s_figures_t *f)
{
    bench_t *b = ph->b;
    const char *mode = s_mode_name[ph->mode];
    char dir[2][1100], log[2][64];
    for (int i = 0; i < 2; i++) {
        snprintf(dir[i], sizeof dir[i], "%s/%s-%c", b->work_dir, mode, 'a' + i);
        snprintf(log[i], sizeof log[i], "%s-reg-%c.log", mode, 'a' + i);
        /* An earlier run's store would answer every publish as a duplicate. */
        char path[2400];
        snprintf(path, sizeof path, "%s/registry/data.mdb", dir[i]);
        zsys_file_delete(path);
        snprintf(path, sizeof path, "%s/registry/lock.mdb", dir[i]);
        zsys_file_delete(path);
        zsys_dir_create("%s", dir[i]);
    }
    /* A broker of its own: one that saw phase 2's promotion keeps epoch 1 as the service's,
       and the next phase's primaries start again at epoch 0. */
    char blog[64];
    snprintf(blog, sizeof blog, "%s-broker.log", mode);
    bench_endpoint(ph->ep, sizeof ph->ep);
    if (bench_spawn(b, &ph->broker, blog, "samordna-broker", "--bind", ph->ep, "--insecure", NULL))
        return -1;
    if (bench_spawn(b, &ph->primary, log[0], "samordna-registry", "--broker", ph->ep, "--data-dir",
                    dir[0], "--insecure", "--instance", "reg-a", "--credit", "1024",
                    ph->mode == S_SYNC ? "--sync-standby" : NULL, NULL)) /* NULL: no more */
        return -1;
    if (bench_wait_service(ph->ep, "registry", 10000) != 0) {
        fprintf(stderr, "bench replica (%s): the registry did not answer\n", mode);
        return -1;
    }
    if (ph->mode != S_PRIMARY &&
        bench_spawn(b, &ph->standby, log[1], "samordna-registry", "--broker", ph->ep, "--data-dir",
                    dir[1], "--insecure", "--instance", "reg-b", "--credit", "1024", "--replica",
                    "standby", NULL))
        return -1;
    if (!(ph->pub = s_client(ph->ep, NULL)) || !(ph->to_b = s_client(ph->ep, "reg-b"))) return -1;
    if (ph->mode != S_PRIMARY && s_wait_role(ph, "standby", 10000) != 0) return -1;
    /* One write before the figures: in synchronous mode it waits for the standby's first
       poll, which the first figures would otherwise include. */
    uint64_t seq = 0;
    for (int i = 0; i < 5 && !seq; i++)
        seq = s_publish_one(ph, 10000);
    if (!seq || (ph->mode != S_PRIMARY && s_standby_has(ph, seq, 10000) != 0)) return -1;

    int64_t last_ack = 0;
    if (s_burst(ph, n, &f->rate, &last_ack) != 0) return -1;
    if (ph->mode != S_PRIMARY) {
        if (s_standby_has(ph, ph->stored, 30000) != 0) return -1;
        f->catchup = (double)(zclock_usecs() - last_ack) / 1000.0;
    }
    if (s_calls(ph, m, false, &f->p50, &f->p99) != 0) return -1;
    if (ph->mode != S_PRIMARY && s_calls(ph, m, true, &f->lag50, &f->lag99) != 0) return -1;
    if (ph->mode == S_ASYNC && s_promote(ph, f) != 0) return -1;
    return 0;
}

/* A figure of phase 2 or 3, and beside it its ratio to the baseline's. */
static void s_beside(const char *mode, const char *what, double value, double base,
                     const char *unit)
{
    char name[96];
    snprintf(name, sizeof name, "replica.%s.%s", mode, what);
    bench_figure(name, value, unit);
    if (base > 0) {
        snprintf(name, sizeof name, "replica.%s.%s / primary", mode, what);
        printf("%-44s %14.2f x  (against the primary alone, same run)\n", name, value / base);
        fflush(stdout);
    }
}

int bench_replica(bench_t *b)
{
    size_t n = (size_t)(50000 * b->scale), m = (size_t)(300 * b->scale);
    if (n < 1000) n = 1000;
    if (m < 50) m = 50;
    s_figures_t fig[3];
    memset(fig, 0, sizeof fig);
    for (int p = S_PRIMARY; p <= S_SYNC; p++) {
        s_phase_t ph = {.b = b, .mode = (s_mode_t)p};
        int prc = s_phase(&ph, n, m, &fig[p]);
        s_phase_stop(&ph);
        if (prc != 0) {
            fprintf(stderr, "bench replica: the %s phase failed (logs in %s)\n", s_mode_name[p],
                    b->work_dir);
            return 1;
        }
        const s_figures_t *f = &fig[p], *base = p == S_PRIMARY ? NULL : &fig[S_PRIMARY];
        const char *mode = s_mode_name[p];
        s_beside(mode, "publish (pipelined)", f->rate, base ? base->rate : 0, "events/s");
        s_beside(mode, "call p50", f->p50, base ? base->p50 : 0, "ms");
        s_beside(mode, "call p99", f->p99, base ? base->p99 : 0, "ms");
        if (p == S_PRIMARY) continue;
        s_beside(mode, "standby lag p50", f->lag50, 0, "ms");
        s_beside(mode, "standby lag p99", f->lag99, 0, "ms");
        s_beside(mode, "standby catch-up after burst", f->catchup, 0, "ms");
        if (p == S_ASYNC) {
            bench_figure("replica.promote: kill -9 to promoted", f->promoted, "ms");
            bench_figure("replica.promote: kill -9 to first write", f->first_write, "ms");
        }
    }
    return 0;
}
