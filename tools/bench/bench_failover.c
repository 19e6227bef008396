/*  bench_failover.c — what a broker kill costs the clients of two brokers.

    Two brokers and the registry on both. S_CALLERS threads call the registry one request
    after another, as samctl does (sam_client_call, idempotent), and one thread keeps
    S_WINDOW requests in flight, as the gateway does (sam_client_send/recv). Every round the
    main thread kills one broker with SIGKILL, the clients carry on with the other for a
    moment, the broker is started again and the registry registers with it; the brokers
    take turns. --rounds N rounds (default 10 × --scale).

    Figures, over every round (and every caller):
    - failover-call p50/p99: from the kill to the first answer a caller gets after it: the
      whole wait for a caller whose request was with the killed broker (the client finds
      the broker gone and sends the request to the other), nearly nothing for the rest;
    - failover-pipelined p50/p99: from the kill to the answer of the last request that was
      in flight at the kill: every request the killed broker held, sent again and answered;
    - failover-errors: answers other than 200 and requests never answered (must be 0);
    - failover-reregister p50: from the broker's restart to the registry registered with it.
*/
#include "bench.h"
#include "sam_client.h"
#include "sam_status.h"

#include <czmq.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define S_CALLERS 4      /* samctl-like clients */
#define S_WINDOW 64      /* requests in flight of the pipelined client */
#define S_ROUNDS_MAX 200 /* rounds recorded */
#define S_RING 4096      /* send times of the pipelined client, by id */

typedef struct {
    const char *eps[2];
    atomic_bool stop;
    atomic_int round;        /* the round whose kill is the latest, -1 before the first */
    _Atomic int64_t kill_us; /* when that kill was made (monotonic µs) */
    int64_t call_us[S_ROUNDS_MAX][S_CALLERS]; /* kill → a caller's first answer after it */
    int64_t pipe_us[S_ROUNDS_MAX];            /* kill → the last in-flight request answered */
    atomic_long errors;
    atomic_long requests;
} s_run_t;

typedef struct {
    s_run_t *run;
    int index;
} s_caller_t;

static void *s_caller(void *arg)
{
    s_caller_t *me = arg;
    s_run_t *run = me->run;
    char err[256];
    sam_client_t *c = sam_client_new(run->eps, 2, NULL, err, sizeof err);
    if (!c) {
        fprintf(stderr, "bench failover: %s\n", err);
        atomic_fetch_add(&run->errors, 1);
        return NULL;
    }
    int recorded = -1; /* the last round this caller has its figure of */
    while (!atomic_load(&run->stop)) {
        sam_result_t res = {0};
        uint32_t code = sam_client_call(c, "registry", "ping", NULL, NULL, NULL, 5000, true, &res);
        int64_t done = zclock_usecs();
        atomic_fetch_add(&run->requests, 1);
        if (code != SAM_OK) {
            if (atomic_fetch_add(&run->errors, 1) < 5)
                fprintf(stderr, "bench failover: a call answered %u %s\n", code, res.message);
        }
        sam_result_clear(&res);
        int round = atomic_load(&run->round);
        if (round >= 0 && round != recorded && round < S_ROUNDS_MAX &&
            done >= atomic_load(&run->kill_us)) {
            run->call_us[round][me->index] = done - atomic_load(&run->kill_us);
            recorded = round;
        }
    }
    sam_client_destroy(&c);
    return NULL;
}

static void *s_pipeliner(void *arg)
{
    s_run_t *run = arg;
    char err[256];
    sam_client_t *c = sam_client_new(run->eps, 2, NULL, err, sizeof err);
    if (!c) {
        fprintf(stderr, "bench failover: %s\n", err);
        atomic_fetch_add(&run->errors, 1);
        return NULL;
    }
    sam_client_set_deadline(c, 5000);
    static int64_t sent_at[S_RING];
    size_t inflight = 0;
    while (!atomic_load(&run->stop) || inflight) {
        while (!atomic_load(&run->stop) && inflight < S_WINDOW) {
            int64_t now = zclock_usecs();
            uint64_t id = sam_client_send(c, "registry", "ping", NULL, 0);
            if (!id) {
                atomic_fetch_add(&run->errors, 1);
                break;
            }
            sent_at[id % S_RING] = now;
            inflight++;
        }
        sam_result_t res;
        if (sam_client_recv(c, 10000, &res) != 0) {
            fprintf(stderr, "bench failover: %zu pipelined requests never answered\n", inflight);
            atomic_fetch_add(&run->errors, (long)inflight);
            break;
        }
        int64_t done = zclock_usecs();
        inflight--;
        atomic_fetch_add(&run->requests, 1);
        if (res.code != SAM_OK && atomic_fetch_add(&run->errors, 1) < 5)
            fprintf(stderr, "bench failover: a pipelined request answered %u %s\n", res.code,
                    res.message);
        sam_result_clear(&res);
        int round = atomic_load(&run->round);
        int64_t kill_us = atomic_load(&run->kill_us);
        if (round >= 0 && round < S_ROUNDS_MAX && sent_at[res.id % S_RING] < kill_us &&
            done - kill_us > run->pipe_us[round])
            run->pipe_us[round] = done - kill_us;
    }
    sam_client_destroy(&c);
    return NULL;
}

/* Whether the registry is registered with the broker at ep (8/MMI mmi.service). */
static bool s_registered(const char *ep)
{
    char err[256];
    sam_client_t *c = sam_client_new(&ep, 1, NULL, err, sizeof err);
    char *answer = c ? sam_client_mmi(c, "mmi.service", "registry", 500) : NULL;
    bool yes = answer && strcmp(answer, "200") == 0;
    free(answer);
    sam_client_destroy(&c);
    return yes;
}

static int s_start_broker(bench_t *b, bench_proc_t *p, const char *ep, int i)
{
    char log[32];
    snprintf(log, sizeof log, "broker-%d.log", i);
    return bench_spawn(b, p, log, "samordna-broker", "--bind", ep, "--insecure", NULL);
}

int bench_failover(bench_t *b)
{
    int rounds = b->rounds > 0 ? b->rounds : (int)(10 * b->scale + 0.5);
    if (rounds < 1) rounds = 1;
    if (rounds > S_ROUNDS_MAX) rounds = S_ROUNDS_MAX;
    char ep[2][64];
    bench_endpoint(ep[0], sizeof ep[0]);
    bench_endpoint(ep[1], sizeof ep[1]);
    s_run_t *run = calloc(1, sizeof *run);
    if (!run) return -1;
    run->eps[0] = ep[0];
    run->eps[1] = ep[1];
    atomic_store(&run->round, -1);
    bench_proc_t broker[2] = {{0}, {0}}, reg = {0};
    pthread_t callers[S_CALLERS], piper;
    s_caller_t caller[S_CALLERS];
    int started = 0, rc = -1;
    bool piping = false;
    int64_t rereg_us[S_ROUNDS_MAX];
    if (s_start_broker(b, &broker[0], ep[0], 0) || s_start_broker(b, &broker[1], ep[1], 1) ||
        bench_spawn(b, &reg, "registry.log", "samordna-registry", "--broker", ep[0], "--broker",
                    ep[1], "--data-dir", b->work_dir, "--insecure", NULL))
        goto done;
    int64_t until = zclock_mono() + 10000;
    while (!(s_registered(ep[0]) && s_registered(ep[1])) && zclock_mono() < until)
        zclock_sleep(20);
    if (!s_registered(ep[0]) || !s_registered(ep[1])) {
        fprintf(stderr, "bench failover: the registry did not register with both brokers\n");
        goto done;
    }
    for (; started < S_CALLERS; started++) {
        caller[started] = (s_caller_t){run, started};
        if (pthread_create(&callers[started], NULL, s_caller, &caller[started]) != 0) goto done;
    }
    if (pthread_create(&piper, NULL, s_pipeliner, run) != 0) goto done;
    piping = true;
    zclock_sleep(1000);
    for (int r = 0; r < rounds; r++) {
        int v = r % 2;
        atomic_store(&run->kill_us, zclock_usecs());
        kill(broker[v].pid, SIGKILL);
        atomic_store(&run->round, r);
        waitpid(broker[v].pid, NULL, 0);
        broker[v].pid = 0;
        zclock_sleep(1500); /* the clients on one broker */
        int64_t restarted = zclock_usecs();
        if (s_start_broker(b, &broker[v], ep[v], v) != 0) goto done;
        until = zclock_mono() + 10000;
        while (!s_registered(ep[v]) && zclock_mono() < until)
            zclock_sleep(5);
        rereg_us[r] = zclock_usecs() - restarted;
        if (!s_registered(ep[v])) {
            fprintf(stderr, "bench failover: the registry did not register again with %s\n", ep[v]);
            goto done;
        }
        zclock_sleep(1000); /* both brokers in use again */
    }
    rc = 0;
done:
    atomic_store(&run->stop, true);
    for (int i = 0; i < started; i++)
        pthread_join(callers[i], NULL);
    if (piping) pthread_join(piper, NULL);
    if (rc == 0) {
        int64_t *calls = calloc((size_t)rounds * S_CALLERS, sizeof *calls);
        if (calls) {
            for (int r = 0; r < rounds; r++)
                for (int i = 0; i < S_CALLERS; i++)
                    calls[r * S_CALLERS + i] = run->call_us[r][i];
            size_t n = (size_t)rounds * S_CALLERS;
            bench_figure("failover-call p50", bench_percentile(calls, n, 50) / 1000.0, "ms");
            bench_figure("failover-call p99", bench_percentile(calls, n, 99) / 1000.0, "ms");
            free(calls);
        }
        bench_figure("failover-pipelined p50",
                     bench_percentile(run->pipe_us, (size_t)rounds, 50) / 1000.0, "ms");
        bench_figure("failover-pipelined p99",
                     bench_percentile(run->pipe_us, (size_t)rounds, 99) / 1000.0, "ms");
        bench_figure("failover-reregister p50",
                     bench_percentile(rereg_us, (size_t)rounds, 50) / 1000.0, "ms");
        bench_figure("failover-rounds", rounds, "kills");
        bench_figure("failover-requests", (double)atomic_load(&run->requests), "requests");
        bench_figure("failover-errors", (double)atomic_load(&run->errors), "requests");
        if (atomic_load(&run->errors)) rc = -1;
    }
    bench_stop(&reg);
    bench_stop(&broker[0]);
    bench_stop(&broker[1]);
    free(run);
    return rc;
}
