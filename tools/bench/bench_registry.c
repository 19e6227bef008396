/*  bench_registry.c — the durable publish figure: events published through the broker to
    the registry by one client, pipelined, each acknowledged only after the batch it was
    applied in has been committed and synced (the runtime's group commit). Beside it, in the
    same run and on the same disk, the raw rate of single-record LMDB commits, each with its
    own sync: what the registry would manage if it committed every event alone.

    Figures: events/s over the whole run, p50 and p99 acknowledgement latency (from the send
    of an event to its acknowledgement, as the client sees it), commits/s of the raw LMDB
    loop, and the ratio between the two rates.
*/
#include "bench.h"
#include "sam_client.h"
#include "sam_status.h"

#include "samordna/v1/registry.pb-c.h"

#include <czmq.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_WINDOW 2048 /* events in flight: more than the service's credit keeps it busy */

/* One packed events.publish body: a person.registered with a unique id. */
static uint8_t *s_event(size_t i, size_t *len)
{
    return bench_person_event("bench", i, len);
}

/* Publishes n events pipelined; fills lat_us[i]. Returns 0 or -1. */
static int s_publish(const char *broker, size_t n, int64_t *lat_us, double *secs)
{
    const char *eps[] = {broker};
    char err[256];
    sam_client_opts_t opts = {.max_pending = S_WINDOW};
    sam_client_t *c = sam_client_new(eps, 1, &opts, err, sizeof err);
    if (!c) {
        fprintf(stderr, "bench registry: %s\n", err);
        return -1;
    }
    uint8_t **bodies = calloc(n, sizeof *bodies);
    size_t *lens = calloc(n, sizeof *lens);
    int64_t *sent_at = calloc(n, sizeof *sent_at);
    uint64_t *rids = calloc(n, sizeof *rids);
    int rc = -1;
    if (!bodies || !lens || !sent_at || !rids) goto done;
    for (size_t i = 0; i < n; i++)
        if (!(bodies[i] = s_event(i, &lens[i]))) goto done;
    size_t next = 0, acked = 0, refused = 0;
    uint64_t first_rid = 0;
    int64_t t0 = zclock_usecs();
    while (acked < n) {
        while (next < n && next - acked < S_WINDOW) {
            sent_at[next] = zclock_usecs();
            uint64_t rid =
                sam_client_send(c, "registry", "events.publish", bodies[next], lens[next]);
            if (!rid) goto done;
            if (next == 0) first_rid = rid;
            rids[next++] = rid;
        }
        sam_result_t res;
        if (sam_client_recv(c, 10000, &res) != 0) {
            fprintf(stderr, "bench registry: no acknowledgement within 10 s (%zu of %zu)\n", acked,
                    n);
            goto done;
        }
        /* Ids are consecutive from the first one: the index is the difference. */
        uint64_t idx = res.id - first_rid;
        if (res.id >= first_rid && idx < next) {
            lat_us[acked++] = zclock_usecs() - sent_at[idx];
            if (res.code != SAM_OK && refused++ == 0)
                fprintf(stderr, "bench registry: refused: %u %s\n", res.code, res.message);
        }
        sam_result_clear(&res);
    }
    *secs = (double)(zclock_usecs() - t0) / 1e6;
    rc = refused ? -1 : 0;
done:
    if (bodies)
        for (size_t i = 0; i < n; i++)
            free(bodies[i]);
    free(bodies);
    free(lens);
    free(sent_at);
    free(rids);
    sam_client_destroy(&c);
    return rc;
}

/* Single-record synced LMDB commits in a scratch environment for about `budget_s` seconds;
   returns commits/s, or -1. */
static double s_raw_lmdb(const char *dir, double budget_s, size_t max)
{
    MDB_env *env = NULL;
    MDB_dbi dbi;
    MDB_txn *txn;
    double rate = -1;
    if (mdb_env_create(&env) || mdb_env_set_mapsize(env, (size_t)1 << 30) ||
        mdb_env_set_maxdbs(env, 4) || mdb_env_open(env, dir, 0, 0644))
        goto done;
    if (mdb_txn_begin(env, NULL, 0, &txn)) goto done;
    if (mdb_dbi_open(txn, "people", MDB_CREATE, &dbi) || mdb_txn_commit(txn)) goto done;
    int64_t t0 = zclock_usecs(), limit = t0 + (int64_t)(budget_s * 1e6);
    size_t i = 0;
    for (; i < max && zclock_usecs() < limit; i++) {
        char key[32], val[64];
        int kl = snprintf(key, sizeof key, "p-%08zu", i);
        int vl = snprintf(val, sizeof val, "Person %zu", i);
        MDB_val k = {(size_t)kl, key}, v = {(size_t)vl, val};
        if (mdb_txn_begin(env, NULL, 0, &txn)) goto done;
        if (mdb_put(txn, dbi, &k, &v, 0)) {
            mdb_txn_abort(txn);
            goto done;
        }
        if (mdb_txn_commit(txn)) goto done; /* synced: the environment is opened without NOSYNC */
    }
    rate = (double)i / ((double)(zclock_usecs() - t0) / 1e6);
done:
    if (env) mdb_env_close(env);
    return rate;
}

int bench_registry(bench_t *b)
{
    char ep[64];
    bench_endpoint(ep, sizeof ep);
    /* Every run starts from empty stores: a store left by an earlier run would answer every
       publish as a duplicate and measure something else. */
    const char *stores[] = {"registry/data.mdb", "registry/lock.mdb", "raw-lmdb/data.mdb",
                            "raw-lmdb/lock.mdb"};
    for (size_t i = 0; i < sizeof stores / sizeof stores[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", b->work_dir, stores[i]);
        zsys_file_delete(path);
    }
    bench_proc_t broker = {0}, reg = {0};
    int rc = 1;
    if (bench_spawn(b, &broker, "broker.log", "samordna-broker", "--bind", ep, "--insecure",
                    NULL) ||
        bench_spawn(b, &reg, "registry.log", "samordna-registry", "--broker", ep, "--data-dir",
                    b->work_dir, "--insecure", "--credit", "1024", NULL))
        goto done;
    if (bench_wait_service(ep, "registry", 10000) != 0) {
        fprintf(stderr, "bench registry: the registry did not answer\n");
        goto done;
    }
    size_t n = (size_t)(100000 * b->scale);
    if (n < 1000) n = 1000;
    int64_t *lat = calloc(n, sizeof *lat);
    double secs = 0;
    if (!lat) goto done;
    if (s_publish(ep, n, lat, &secs) != 0) {
        free(lat);
        goto done;
    }
    double rate = (double)n / secs;
    bench_figure("registry.publish.durable (1 client, pipelined)", rate, "events/s");
    bench_figure("registry.publish.ack.p50", bench_percentile(lat, n, 50) / 1000.0, "ms");
    bench_figure("registry.publish.ack.p99", bench_percentile(lat, n, 99) / 1000.0, "ms");
    free(lat);
    bench_stop(&reg);
    bench_stop(&broker);

    char raw[1024];
    snprintf(raw, sizeof raw, "%s/raw-lmdb", b->work_dir);
    zsys_dir_create("%s", raw);
    double raw_rate = s_raw_lmdb(raw, 3.0 * b->scale, n);
    if (raw_rate <= 0) {
        fprintf(stderr, "bench registry: the raw LMDB loop failed\n");
        goto done;
    }
    bench_figure("lmdb.commit.single-record synced", raw_rate, "commits/s");
    printf("%-44s %14.1f x  (group commit over one sync per record)\n",
           "registry.publish.durable / lmdb.single", rate / raw_rate);
    fflush(stdout);
    rc = 0;
done:
    bench_stop(&reg);
    bench_stop(&broker);
    return rc;
}
