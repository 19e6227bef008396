/*  bench_scale.c — what more instances of one service on one store buy in reads.

    A registry store of 5 000 people (× --scale) is written once; then, in the same run, 1,
    2 and 4 registry instances are started on that one store (--data-dir shared, as
    docs/scaling.md describes) and one pipelined client asks registry.people.list for pages
    of 200 people as fast as the instances answer, for a fixed time each. The broker spreads
    the queries over the instances by credit. Each query is one read transaction and a page
    packed: real work on the service's side, not only the broker's.

    Figures: queries/s with 1, 2 and 4 instances, and each against the one instance. On a
    machine with fewer cores than instances (plus the broker and the client) the gain stops
    at the cores: that is the machine's figure, not the store's — LMDB readers do not block
    each other or the writer.
*/
#include "bench.h"
#include "sam_client.h"
#include "sam_status.h"

#include "samordna/v1/envelope.pb-c.h"
#include "samordna/v1/registry.pb-c.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_WINDOW 512 /* queries in flight */
#define S_PAGE 200   /* people per page */
#define S_MAX_INST 4

/* Writes n people into the registry (pipelined). 0 or -1. */
static int s_fill(const char *ep, size_t n)
{
    const char *eps[] = {ep};
    char err[256];
    sam_client_opts_t opts = {.max_pending = S_WINDOW};
    sam_client_t *c = sam_client_new(eps, 1, &opts, err, sizeof err);
    if (!c) return -1;
    size_t sent = 0, acked = 0, refused = 0;
    int rc = 0;
    while (acked < n && rc == 0) {
        while (sent < n && sent - acked < S_WINDOW) {
            char id[32], eid[48], name[48];
            snprintf(id, sizeof id, "p-%07zu", sent);
            snprintf(eid, sizeof eid, "scale:%s", id);
            snprintf(name, sizeof name, "Person %zu", sent);
            Samordna__V1__Person p = SAMORDNA__V1__PERSON__INIT;
            p.id = id;
            p.name = name;
            p.agency = "";
            if (!bench_publish(c, "registry", "no.samordna.registry.person.registered", eid, "fmov",
                               NULL, &p.base)) {
                rc = -1;
                break;
            }
            sent++;
        }
        sam_result_t res;
        if (rc == 0 && sam_client_recv(c, 10000, &res) != 0) rc = -1;
        if (rc == 0) {
            if (res.code != SAM_OK && refused++ == 0)
                fprintf(stderr, "bench scale: refused: %u %s\n", res.code, res.message);
            acked++;
            sam_result_clear(&res);
        }
    }
    sam_client_destroy(&c);
    return rc == 0 && refused == 0 ? 0 : -1;
}

/* Waits until `want` distinct instances answer ping; 0 or -1. */
static int s_wait_instances(const char *ep, size_t want)
{
    const char *eps[] = {ep};
    char err[256], seen[S_MAX_INST][96];
    size_t n_seen = 0;
    sam_client_t *c = sam_client_new(eps, 1, NULL, err, sizeof err);
    if (!c) return -1;
    int64_t end = zclock_mono() + 20000;
    while (n_seen < want && zclock_mono() < end) {
        Samordna__V1__PingReply *pr = NULL;
        sam_result_t res = {0};
        if (sam_client_call(c, "registry", "ping", NULL, &samordna__v1__ping_reply__descriptor,
                            (ProtobufCMessage **)&pr, 1000, false, &res) == SAM_OK &&
            pr) {
            bool have = false;
            for (size_t i = 0; i < n_seen; i++)
                have |= strcmp(seen[i], pr->instance) == 0;
            if (!have && n_seen < S_MAX_INST) snprintf(seen[n_seen++], 96, "%s", pr->instance);
        } else {
            zclock_sleep(20);
        }
        if (pr) protobuf_c_message_free_unpacked(&pr->base, NULL);
        sam_result_clear(&res);
    }
    sam_client_destroy(&c);
    return n_seen >= want ? 0 : -1;
}

/* Pipelined registry.people.list pages for `secs`; queries/s, or -1. */
static double s_query(const char *ep, size_t people, double secs)
{
    const char *eps[] = {ep};
    char err[256];
    sam_client_opts_t opts = {.max_pending = S_WINDOW};
    sam_client_t *c = sam_client_new(eps, 1, &opts, err, sizeof err);
    if (!c) return -1;
    size_t pages = people / S_PAGE ? people / S_PAGE : 1;
    uint8_t bodies[64][64];
    size_t lens[64];
    for (size_t i = 0; i < 64; i++) { /* pages from 64 places in the store */
        char token[32];
        snprintf(token, sizeof token, "p-%07zu", (i % pages) * S_PAGE);
        Samordna__V1__ListRequest lr = SAMORDNA__V1__LIST_REQUEST__INIT;
        lr.page_size = S_PAGE;
        lr.page_token = i ? token : "";
        lens[i] = samordna__v1__list_request__pack(&lr, bodies[i]);
    }
    size_t sent = 0, answered = 0, failed = 0;
    int64_t t0 = zclock_mono(), end = t0 + (int64_t)(secs * 1000);
    while (zclock_mono() < end || answered < sent) {
        while (zclock_mono() < end && sent - answered < S_WINDOW) {
            if (!sam_client_send(c, "registry", "registry.people.list", bodies[sent % 64],
                                 lens[sent % 64]))
                goto fail;
            sent++;
        }
        sam_result_t res;
        if (sam_client_recv(c, 10000, &res) != 0) goto fail;
        answered++;
        if (res.code != SAM_OK && failed++ == 0)
            fprintf(stderr, "bench scale: query answered %u %s\n", res.code, res.message);
        sam_result_clear(&res);
    }
    double rate = (double)answered / ((double)(zclock_mono() - t0) / 1000.0);
    sam_client_destroy(&c);
    return failed ? -1 : rate;
fail:
    fprintf(stderr, "bench scale: a query went unanswered (%zu of %zu)\n", answered, sent);
    sam_client_destroy(&c);
    return -1;
}

int bench_scale(bench_t *b)
{
    char ep[64], dir[1100];
    bench_endpoint(ep, sizeof ep);
    snprintf(dir, sizeof dir, "%s/scale", b->work_dir);
    const char *files[] = {"registry/data.mdb", "registry/lock.mdb"};
    for (size_t i = 0; i < 2; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        zsys_file_delete(path);
    }
    zsys_dir_create("%s", dir);
    size_t people = (size_t)(5000 * b->scale);
    if (people < S_PAGE) people = S_PAGE;
    double secs = 4.0 * b->scale < 1.0 ? 1.0 : 4.0 * b->scale;
    bench_proc_t broker = {0}, inst[S_MAX_INST] = {{0}};
    double base = 0;
    int rc = 1;
    if (bench_spawn(b, &broker, "scale-broker.log", "samordna-broker", "--bind", ep, "--insecure",
                    NULL))
        goto done;
    static const size_t counts[] = {1, 2, 4};
    size_t running = 0;
    for (size_t ci = 0; ci < 3; ci++) {
        while (running < counts[ci]) {
            char log[64], name[32];
            snprintf(log, sizeof log, "scale-registry-%zu.log", running);
            snprintf(name, sizeof name, "registry-%zu", running);
            if (bench_spawn(b, &inst[running], log, "samordna-registry", "--broker", ep,
                            "--data-dir", dir, "--insecure", "--instance", name, NULL))
                goto done;
            running++;
        }
        if (s_wait_instances(ep, running) != 0) {
            fprintf(stderr, "bench scale: %zu registry instances did not all answer\n", running);
            goto done;
        }
        if (ci == 0 && s_fill(ep, people) != 0) {
            fprintf(stderr, "bench scale: writing %zu people failed\n", people);
            goto done;
        }
        double rate = s_query(ep, people, secs);
        if (rate <= 0) goto done;
        char figure[96];
        snprintf(figure, sizeof figure, "scale.registry.people.list x%zu instance%s", running,
                 running > 1 ? "s" : "");
        bench_figure(figure, rate, "queries/s");
        if (ci == 0)
            base = rate;
        else
            printf("%-44s %14.2f x  (against one instance, same store)\n", figure, rate / base);
        fflush(stdout);
    }
    rc = 0;
done:
    for (size_t i = 0; i < S_MAX_INST; i++)
        bench_stop(&inst[i]);
    bench_stop(&broker);
    return rc;
}
