/*  bench_grants.c — the grants service's figures: group-committed writes, and the overview
    of one municipality in a big store, both through the broker.

    It starts a broker, a registry and grants on loopback, registers 50 agencies and
    400 municipalities (× --scale), then builds the store the overview target is stated for:
    one scheme per agency and year, one award per municipality × agency × year over ten years
    (200 000 awards at scale 1), with a disbursement on every award of the last year — all
    published pipelined (many requests in flight), so the service commits them in groups.
    Then it asks for single municipalities' overviews, one at a time, and reports the
    latency percentiles against a ping through the same broker, and times a full ledger
    verification.
*/
#include "bench.h"
#include "sam_client.h"
#include "sam_status.h"

#include "samordna/v1/envelope.pb-c.h"
#include "samordna/v1/events.pb-c.h"
#include "samordna/v1/grants.pb-c.h"
#include "samordna/v1/registry.pb-c.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_AGENCIES 50
#define S_YEARS 10
#define S_FIRST_YEAR 2016
#define S_WINDOW 2000

typedef struct {
    sam_client_t *c;
    size_t in_flight, sent, acked, refused;
    char first_refusal[600];
} s_pipe_t;

/* Takes one reply off the pipe, counting it as acknowledged or refused (the first refusal
   kept for the report). 0, or -1 when none came within 30 s. */
static int s_recv_one(s_pipe_t *p)
{
    sam_result_t r;
    if (sam_client_recv(p->c, 30000, &r) != 0) return -1;
    p->in_flight--;
    if (r.code == SAM_OK)
        p->acked++;
    else if (p->refused++ == 0)
        snprintf(p->first_refusal, sizeof p->first_refusal, "%u %s", r.code, r.message);
    sam_result_clear(&r);
    return 0;
}

/* Packs payload into a PublishRequest of `type` and sends it to `service`, keeping at most
   S_WINDOW requests in flight. The event's id is "bench-<noun>-<key>", the noun being the
   type's ("award" of "no.samordna.grants.award.granted"). */
static int s_send(s_pipe_t *p, const char *service, const char *type, const char *key,
                  const char *source, const ProtobufCMessage *payload)
{
    while (p->in_flight >= S_WINDOW)
        if (s_recv_one(p) != 0) return -1;
    const char *verb = strrchr(type, '.'), *noun = verb;
    while (noun > type && noun[-1] != '.')
        noun--;
    char eid[128];
    snprintf(eid, sizeof eid, "bench-%.*s-%s", (int)(verb - noun), noun, key);
    if (!bench_publish(p->c, service, type, eid, source, NULL, payload)) return -1;
    p->in_flight++;
    p->sent++;
    return 0;
}

static int s_drain(s_pipe_t *p)
{
    while (p->in_flight > 0)
        if (s_recv_one(p) != 0) return -1;
    return 0;
}

static void s_agency_id(char *out, size_t len, int i)
{
    snprintf(out, len, "agency-%02d", i);
}

static void s_municipality_id(char *out, size_t len, int i)
{
    snprintf(out, len, "kommune-%04d", i);
}

static int s_register(s_pipe_t *p, int n_munis)
{
    char id[32], name[64];
    for (int i = 0; i < S_AGENCIES; i++) {
        s_agency_id(id, sizeof id, i);
        snprintf(name, sizeof name, "Etat %d", i);
        Samordna__V1__Agency a = SAMORDNA__V1__AGENCY__INIT;
        a.id = id;
        a.name = name;
        a.kind = SAMORDNA__V1__AGENCY_KIND__AGENCY_KIND_STATE_REGIONAL;
        if (s_send(p, "registry", "no.samordna.registry.agency.registered", id, id, &a.base))
            return -1;
    }
    for (int i = 0; i < n_munis; i++) {
        s_municipality_id(id, sizeof id, i);
        snprintf(name, sizeof name, "Kommune %d", i);
        Samordna__V1__Municipality m = SAMORDNA__V1__MUNICIPALITY__INIT;
        m.id = id;
        m.name = name;
        if (s_send(p, "registry", "no.samordna.registry.municipality.registered", id, "fmov",
                   &m.base))
            return -1;
    }
    return s_drain(p);
}

static int s_schemes(s_pipe_t *p)
{
    char id[48], owner[32];
    for (int a = 0; a < S_AGENCIES; a++)
        for (int y = 0; y < S_YEARS; y++) {
            s_agency_id(owner, sizeof owner, a);
            snprintf(id, sizeof id, "ordning-%02d-%d", a, S_FIRST_YEAR + y);
            Samordna__V1__Scheme s = SAMORDNA__V1__SCHEME__INIT;
            s.id = id;
            s.name = id;
            s.owner = owner;
            s.year = (uint32_t)(S_FIRST_YEAR + y);
            if (s_send(p, "grants", "no.samordna.grants.scheme.created", id, owner, &s.base))
                return -1;
        }
    return s_drain(p);
}

/* One award per municipality × agency × year; a disbursement on each of the last year's. */
static int s_awards(s_pipe_t *p, int n_munis)
{
    char id[64], scheme[48], agency[32], muni[32];
    for (int y = 0; y < S_YEARS; y++)
        for (int m = 0; m < n_munis; m++)
            for (int a = 0; a < S_AGENCIES; a++) {
                int year = S_FIRST_YEAR + y;
                s_agency_id(agency, sizeof agency, a);
                s_municipality_id(muni, sizeof muni, m);
                snprintf(scheme, sizeof scheme, "ordning-%02d-%d", a, year);
                snprintf(id, sizeof id, "t-%d-%04d-%02d", year, m, a);
                Samordna__V1__FunderShare share = SAMORDNA__V1__FUNDER_SHARE__INIT;
                Samordna__V1__FunderShare *shares[] = {&share};
                share.agency = agency;
                share.amount_ore = (int64_t)(10000 + 100 * a + m) * 100;
                Samordna__V1__Award aw = SAMORDNA__V1__AWARD__INIT;
                aw.id = id;
                aw.scheme = scheme;
                aw.recipient = muni;
                aw.amount_ore = share.amount_ore;
                aw.purpose = "Tilskudd";
                aw.currency = "NOK";
                aw.funders = shares;
                aw.n_funders = 1;
                if (s_send(p, "grants", "no.samordna.grants.award.granted", id, agency, &aw.base))
                    return -1;
                if (y == S_YEARS - 1) {
                    Samordna__V1__Payment pay = SAMORDNA__V1__PAYMENT__INIT;
                    pay.award = id;
                    pay.id = "utbetaling-1";
                    pay.amount_ore = share.amount_ore / 2;
                    if (s_send(p, "grants", "no.samordna.grants.disbursement.made", id, agency,
                               &pay.base))
                        return -1;
                }
            }
    return s_drain(p);
}

int bench_grants(bench_t *b)
{
    int n_munis = (int)(400 * b->scale);
    if (n_munis < 4) n_munis = 4;
    char ep[64], reg_dir[1100], grants_dir[1100];
    bench_endpoint(ep, sizeof ep);
    snprintf(reg_dir, sizeof reg_dir, "%s/registry", b->work_dir);
    snprintf(grants_dir, sizeof grants_dir, "%s/grants", b->work_dir);
    bench_proc_t broker = {0}, registry = {0}, grants = {0};
    int rc = 1;
    sam_client_t *c = NULL;
    if (bench_spawn(b, &broker, "broker.log", "samordna-broker", "--bind", ep, "--insecure",
                    "--queue-max", "100000", NULL) != 0 ||
        bench_spawn(b, &registry, "registry.log", "samordna-registry", "--broker", ep, "--data-dir",
                    reg_dir, "--insecure", NULL) != 0 ||
        bench_spawn(b, &grants, "grants.log", "samordna-grants", "--broker", ep, "--data-dir",
                    grants_dir, "--insecure", NULL) != 0)
        goto done;
    if (bench_wait_service(ep, "registry", 10000) != 0 ||
        bench_wait_service(ep, "grants", 10000) != 0) {
        fprintf(stderr, "bench grants: services did not start (logs in %s)\n", b->work_dir);
        goto done;
    }
    const char *eps[] = {ep};
    char err[256];
    c = sam_client_new(eps, 1, NULL, err, sizeof err);
    if (!c) goto done;
    s_pipe_t p = {.c = c};
    if (s_register(&p, n_munis) != 0 || p.refused) {
        fprintf(stderr, "bench grants: registering failed: %s\n", p.first_refusal);
        goto done;
    }
    /* Let the follower bring the registry's facts into grants' projection. */
    zclock_sleep(1000);
    if (s_schemes(&p) != 0 || p.refused) {
        fprintf(stderr, "bench grants: schemes failed: %s\n", p.first_refusal);
        goto done;
    }
    p.sent = p.acked = 0;
    int64_t t0 = zclock_usecs();
    if (s_awards(&p, n_munis) != 0 || p.refused) {
        fprintf(stderr, "bench grants: awards failed (%zu refused): %s\n", p.refused,
                p.first_refusal);
        goto done;
    }
    double secs = (double)(zclock_usecs() - t0) / 1e6;
    bench_figure("grants.write.events", (double)p.acked, "events");
    bench_figure("grants.write.rate (awards+disbursements)", (double)p.acked / secs, "events/s");

    /* Overview of one municipality, one year and all years, one request at a time. */
    int n = (int)(500 * (b->scale < 1 ? 1 : b->scale));
    int64_t *lat = calloc((size_t)n, sizeof *lat), *lat_all = calloc((size_t)n, sizeof *lat);
    int64_t *lat_ping = calloc((size_t)n, sizeof *lat);
    if (!lat || !lat_all || !lat_ping) goto done_lat;
    int lines = 0;
    for (int i = 0; i < n; i++) {
        char muni[32];
        s_municipality_id(muni, sizeof muni, (i * 7919) % n_munis);
        Samordna__V1__OverviewRequest req = SAMORDNA__V1__OVERVIEW_REQUEST__INIT;
        req.recipient = muni;
        req.year = S_FIRST_YEAR + (uint32_t)(i % S_YEARS);
        sam_result_t r = {0};
        ProtobufCMessage *out = NULL;
        int64_t s0 = zclock_usecs();
        uint32_t code = sam_client_call(c, "grants", "grants.overview", &req.base,
                                        &samordna__v1__overview__descriptor, &out, 5000, true, &r);
        lat[i] = zclock_usecs() - s0;
        if (code != SAM_OK) {
            fprintf(stderr, "bench grants: overview: %u %s\n", code, r.message);
            sam_result_clear(&r);
            goto done_lat;
        }
        lines = (int)((Samordna__V1__Overview *)out)->n_lines;
        protobuf_c_message_free_unpacked(out, NULL);
        sam_result_clear(&r);
        req.year = 0;
        s0 = zclock_usecs();
        code = sam_client_call(c, "grants", "grants.overview", &req.base,
                               &samordna__v1__overview__descriptor, &out, 5000, true, &r);
        lat_all[i] = zclock_usecs() - s0;
        if (code == SAM_OK) protobuf_c_message_free_unpacked(out, NULL);
        sam_result_clear(&r);
        s0 = zclock_usecs();
        sam_client_call(c, "grants", "ping", NULL, NULL, NULL, 5000, true, &r);
        lat_ping[i] = zclock_usecs() - s0;
        sam_result_clear(&r);
    }
    printf("store: %d municipalities x %d agencies x %d years = %d awards; one overview year "
           "has %d lines\n",
           n_munis, S_AGENCIES, S_YEARS, n_munis * S_AGENCIES * S_YEARS, lines);
    double ping50 = bench_percentile(lat_ping, (size_t)n, 50) / 1000.0;
    bench_figure("grants.ping p50 (baseline)", ping50, "ms");
    double p50 = bench_percentile(lat, (size_t)n, 50) / 1000.0;
    double p99 = bench_percentile(lat, (size_t)n, 99) / 1000.0;
    bench_figure("grants.overview municipality+year p50", p50, "ms");
    bench_figure("grants.overview municipality+year p99", p99, "ms");
    printf("  compared-to ping p50: %.1fx; target p99 < 20 ms: %s\n", ping50 > 0 ? p50 / ping50 : 0,
           p99 < 20.0 ? "met" : "NOT met");
    bench_figure("grants.overview municipality, all years p50",
                 bench_percentile(lat_all, (size_t)n, 50) / 1000.0, "ms");
    bench_figure("grants.overview municipality, all years p99",
                 bench_percentile(lat_all, (size_t)n, 99) / 1000.0, "ms");

    /* The whole ledger recomputed from the journal. */
    {
        sam_result_t r = {0};
        ProtobufCMessage *out = NULL;
        int64_t s0 = zclock_usecs();
        uint32_t code =
            sam_client_call(c, "grants", "grants.ledger.verify", NULL,
                            &samordna__v1__ledger_report__descriptor, &out, 600000, false, &r);
        double ms = (double)(zclock_usecs() - s0) / 1000.0;
        if (code == SAM_OK) {
            Samordna__V1__LedgerReport *lr = (Samordna__V1__LedgerReport *)out;
            bench_figure("grants.ledger.verify", ms, "ms");
            printf("  %s: %llu entries, %llu postings\n",
                   lr->balanced ? "balanced" : "NOT BALANCED", (unsigned long long)lr->entries,
                   (unsigned long long)lr->postings);
            if (lr->balanced) rc = 0;
            protobuf_c_message_free_unpacked(out, NULL);
        } else
            fprintf(stderr, "bench grants: ledger verify: %u %s\n", code, r.message);
        sam_result_clear(&r);
    }
done_lat:
    free(lat);
    free(lat_all);
    free(lat_ping);
done:
    sam_client_destroy(&c);
    bench_stop(&grants);
    bench_stop(&registry);
    bench_stop(&broker);
    return rc;
}
