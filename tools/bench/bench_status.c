/*  bench_status.c — the status board through the broker, for 400 pilots with 20 years of
    history each.

    Starts a broker, the registry and the status service; registers 400 pilots (with their
    municipalities) in the registry and waits until the status service's projection holds them
    all; then loads twenty years (2000–2019) of history per pilot: a monthly meeting series
    (240 meetings), a milestone reached or taken back every year, and a barrier a year moved
    twice. Everything goes through events.publish, pipelined, as agencies would send it.

    Figures: the board now (one standing record per pilot), as of the history's last day (a
    fold of every pilot's whole history) and as of a day in its middle (p50/p99 over many
    calls), the board of one pilot as of that day, and a ping through the same broker as the
    floor. The target: the board of 400 pilots answers in under 50 ms. --scale
    multiplies the number of pilots.
*/
#include "bench.h"
#include "sam_client.h"
#include "sam_status.h"

#include "samordna/v1/events.pb-c.h"
#include "samordna/v1/registry.pb-c.h"
#include "samordna/v1/status.pb-c.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WINDOW 256
#define YEARS 20

typedef struct {
    sam_client_t *c;
    size_t in_flight;
    size_t sent, refused;
    uint64_t next_id; /* CloudEvent ids, unique per run */
} s_pub_t;

static int s_drain(s_pub_t *p, size_t down_to)
{
    while (p->in_flight > down_to) {
        sam_result_t r;
        if (sam_client_recv(p->c, 30000, &r) != 0) {
            fprintf(stderr, "bench status: no reply within 30 s\n");
            return -1;
        }
        if (r.code != SAM_OK) {
            if (p->refused++ < 3)
                fprintf(stderr, "bench status: refused: %u %s\n", r.code, r.message);
        }
        sam_result_clear(&r);
        p->in_flight--;
    }
    return 0;
}

/* Publishes one event (pipelined; at most WINDOW in flight). */
static int s_publish(s_pub_t *p, const char *service, const char *type,
                     const ProtobufCMessage *payload)
{
    char id[32];
    snprintf(id, sizeof id, "bench-%" PRIu64, ++p->next_id);
    if (!bench_publish(p->c, service, type, id, "fmov", NULL, payload)) return -1;
    p->in_flight++;
    p->sent++;
    return s_drain(p, WINDOW - 1);
}

static int s_registry(s_pub_t *p, int pilots)
{
    Samordna__V1__Agency a = SAMORDNA__V1__AGENCY__INIT;
    a.id = "fmov";
    a.name = "Fylkesmannen i Oslo og Viken";
    a.kind = SAMORDNA__V1__AGENCY_KIND__AGENCY_KIND_COUNTY_GOVERNOR;
    if (s_publish(p, "registry", "no.samordna.registry.agency.registered", &a.base)) return -1;
    if (s_drain(p, 0)) return -1;
    Samordna__V1__Programme pr = SAMORDNA__V1__PROGRAMME__INIT;
    pr.id = "velferdspiloten";
    pr.name = "Velferdspiloten";
    pr.owner = "fmov";
    pr.briefing_interval_months = 6;
    if (s_publish(p, "registry", "no.samordna.registry.programme.registered", &pr.base)) return -1;
    char id[32], name[32];
    for (int i = 0; i < pilots; i++) {
        Samordna__V1__Municipality m = SAMORDNA__V1__MUNICIPALITY__INIT;
        snprintf(id, sizeof id, "kommune-%04d", i);
        snprintf(name, sizeof name, "Kommune %d", i);
        m.id = id;
        m.name = name;
        m.population = 10000 + i;
        if (s_publish(p, "registry", "no.samordna.registry.municipality.registered", &m.base))
            return -1;
    }
    if (s_drain(p, 0)) return -1;
    for (int i = 0; i < pilots; i++) {
        Samordna__V1__Pilot pi = SAMORDNA__V1__PILOT__INIT;
        char pid[32], mid[32];
        snprintf(pid, sizeof pid, "pilot-%04d", i);
        snprintf(mid, sizeof mid, "kommune-%04d", i);
        pi.id = pid;
        pi.programme = "velferdspiloten";
        pi.municipality = mid;
        pi.challenge = "Barnefattigdom og utenforskap";
        pi.investment_leader = "fmov";
        if (s_publish(p, "registry", "no.samordna.registry.pilot.registered", &pi.base)) return -1;
    }
    return s_drain(p, 0);
}

static const char *const s_kinds[7][2] = {
    {"defined_challenge", "Definert utfordring"},
    {"anchored", "Forankret"},
    {"knowledge_base", "Kunnskapsgrunnlag"},
    {"defined_need", "Definert behov"},
    {"organised", "Organisert"},
    {"operative", "Operativ"},
    {"sustainable_structures", "Bærekraftige strukturer"},
};

static int s_history(s_pub_t *p, int pilots)
{
    for (int k = 0; k < 7; k++) {
        Samordna__V1__MilestoneKind mk = SAMORDNA__V1__MILESTONE_KIND__INIT;
        mk.id = (char *)s_kinds[k][0];
        mk.label = (char *)s_kinds[k][1];
        mk.order = (uint32_t)k + 1;
        if (s_publish(p, "status", "no.samordna.status.milestone_kind.defined", &mk.base))
            return -1;
    }
    if (s_drain(p, 0)) return -1;
    char pid[32], id[64], date[16], date2[16], date3[16];
    for (int i = 0; i < pilots; i++) {
        snprintf(pid, sizeof pid, "pilot-%04d", i);
        Samordna__V1__MeetingLogged m = SAMORDNA__V1__MEETING_LOGGED__INIT;
        snprintf(id, sizeof id, "%s-monthly", pid);
        m.id = id;
        m.kind = "working";
        m.date = "2000-01-15";
        m.monthly_until = "2019-12-15";
        m.pilot = pid;
        m.title = "Arbeidsmøte";
        if (s_publish(p, "status", "no.samordna.status.meeting.logged", &m.base)) return -1;
        bool reached[7] = {false};
        for (int y = 0; y < YEARS; y++) {
            int year = 2000 + y;
            int k = (y * 3 + i) % 7;
            snprintf(date, sizeof date, "%04d-03-01", year);
            /* kind k is reached this year if it was not, reverted if it was */
            Samordna__V1__MilestoneReached r = SAMORDNA__V1__MILESTONE_REACHED__INIT;
            Samordna__V1__MilestoneReverted v = SAMORDNA__V1__MILESTONE_REVERTED__INIT;
            r.pilot = v.pilot = pid;
            r.kind = v.kind = (char *)s_kinds[k][0];
            r.date = v.date = date;
            r.evidence = "årsrapport";
            v.reason = "ikke lenger oppfylt";
            if (s_publish(p, "status",
                          reached[k] ? "no.samordna.status.milestone.reverted"
                                     : "no.samordna.status.milestone.reached",
                          reached[k] ? &v.base : &r.base))
                return -1;
            reached[k] = !reached[k];
            Samordna__V1__BarrierRegistered b = SAMORDNA__V1__BARRIER_REGISTERED__INIT;
            snprintf(id, sizeof id, "%s-%04d", pid, year);
            b.id = id;
            b.title = "Regel i veien";
            b.pilot = pid;
            b.concerns = "rule";
            snprintf(date, sizeof date, "%04d-02-01", year);
            b.date = date;
            if (s_publish(p, "status", "no.samordna.status.barrier.registered", &b.base)) return -1;
            Samordna__V1__BarrierMoved mv = SAMORDNA__V1__BARRIER_MOVED__INIT;
            mv.id = id;
            mv.state = "raised_regionally";
            snprintf(date2, sizeof date2, "%04d-06-01", year);
            mv.date = date2;
            if (s_publish(p, "status", "no.samordna.status.barrier.moved", &mv.base)) return -1;
            mv.state = y % 2 ? "changed" : "rejected";
            snprintf(date3, sizeof date3, "%04d-11-01", year + 1);
            mv.date = date3;
            if (s_publish(p, "status", "no.samordna.status.barrier.moved", &mv.base)) return -1;
        }
    }
    return s_drain(p, 0);
}

/* CPU time (user + system) a process has used so far, in ms; -1 when unknown. Wall-clock
   latency on a shared, loaded machine says as much about the neighbours as about the code;
   the service's own CPU per call does not. */
static double s_cpu_ms(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p) return -1;
    unsigned long utime = 0, stime = 0;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
       stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

/* Calls status.board `n` times; p50 and p99 in ms; -1 when a call failed or rows differ. */
static int s_board_lat(sam_client_t *c, const char *as_of, const char *pilot, int n,
                       size_t want_rows, double *p50, double *p99)
{
    int64_t *lat = calloc((size_t)n, sizeof *lat);
    if (!lat) return -1;
    int rc = 0;
    Samordna__V1__BoardRequest req = SAMORDNA__V1__BOARD_REQUEST__INIT;
    req.as_of = (char *)as_of;
    req.pilot = (char *)pilot;
    for (int i = 0; i < n && rc == 0; i++) {
        sam_result_t res = {0};
        ProtobufCMessage *out = NULL;
        int64_t t0 = zclock_usecs();
        uint32_t code =
            sam_client_call(c, "status", "status.board", &req.base,
                            &samordna__v1__board_reply__descriptor, &out, 10000, true, &res);
        lat[i] = zclock_usecs() - t0;
        if (code != SAM_OK || ((Samordna__V1__BoardReply *)out)->n_rows != want_rows) {
            fprintf(stderr, "bench status: board: %u %s\n", code, res.message);
            rc = -1;
        }
        if (out) protobuf_c_message_free_unpacked(out, NULL);
        sam_result_clear(&res);
    }
    *p50 = bench_percentile(lat, (size_t)n, 50) / 1000.0;
    *p99 = bench_percentile(lat, (size_t)n, 99) / 1000.0;
    free(lat);
    return rc;
}

static size_t s_rows(sam_client_t *c)
{
    Samordna__V1__BoardRequest req = SAMORDNA__V1__BOARD_REQUEST__INIT;
    sam_result_t res = {0};
    ProtobufCMessage *out = NULL;
    size_t rows = 0;
    if (sam_client_call(c, "status", "status.board", &req.base,
                        &samordna__v1__board_reply__descriptor, &out, 10000, true, &res) == SAM_OK)
        rows = ((Samordna__V1__BoardReply *)out)->n_rows;
    if (out) protobuf_c_message_free_unpacked(out, NULL);
    sam_result_clear(&res);
    return rows;
}

int bench_status(bench_t *b)
{
    int pilots = (int)(400 * b->scale);
    if (pilots < 1) pilots = 1;
    char ep[64];
    bench_endpoint(ep, sizeof ep);
    bench_proc_t broker = {0}, reg = {0}, st = {0};
    int rc = -1;
    sam_client_t *c = NULL;
    if (bench_spawn(b, &broker, "broker.log", "samordna-broker", "--bind", ep, "--insecure",
                    "--log-level", "warn", NULL) ||
        bench_spawn(b, &reg, "registry.log", "samordna-registry", "--broker", ep, "--data-dir",
                    b->work_dir, "--insecure", "--log-level", "warn", NULL) ||
        bench_spawn(b, &st, "status.log", "samordna-status", "--broker", ep, "--data-dir",
                    b->work_dir, "--insecure", "--log-level", "warn", NULL))
        goto done;
    if (bench_wait_service(ep, "registry", 10000) || bench_wait_service(ep, "status", 10000))
        goto done;
    const char *eps[] = {ep};
    char err[256];
    if (!(c = sam_client_new(eps, 1, NULL, err, sizeof err))) goto done;
    s_pub_t p = {.c = c};
    int64_t t0 = zclock_mono();
    if (s_registry(&p, pilots)) goto done;
    /* the status service learns the pilots from the registry's outbox */
    int64_t until = zclock_mono() + 60000;
    while (s_rows(c) < (size_t)pilots && zclock_mono() < until)
        zclock_sleep(50);
    if (s_rows(c) < (size_t)pilots) {
        fprintf(stderr, "bench status: the projection did not reach %d pilots\n", pilots);
        goto done;
    }
    size_t before = p.sent;
    int64_t t1 = zclock_mono();
    if (s_history(&p, pilots)) goto done;
    int64_t t2 = zclock_mono();
    if (p.refused) {
        fprintf(stderr, "bench status: %zu events refused\n", p.refused);
        goto done;
    }
    bench_figure("status.load.registry_and_projection", (double)(t1 - t0), "ms");
    bench_figure("status.load.events", (double)(p.sent - before), "events");
    bench_figure("status.load.rate", (double)(p.sent - before) * 1000.0 / (double)(t2 - t1 + 1),
                 "events/s");
    int n = 200;
    double p50, p99;
    /* the floor: a ping through the same broker */
    int64_t *lat = calloc((size_t)n, sizeof *lat);
    if (!lat) goto done;
    for (int i = 0; i < n; i++) {
        sam_result_t res = {0};
        int64_t s = zclock_usecs();
        sam_client_call(c, "status", "ping", NULL, NULL, NULL, 5000, true, &res);
        lat[i] = zclock_usecs() - s;
        sam_result_clear(&res);
    }
    bench_figure("status.ping.p50", bench_percentile(lat, (size_t)n, 50) / 1000.0, "ms");
    free(lat);
    static const struct {
        const char *name, *as_of;
    } boards[] = {
        {"status.board.now", ""},
        {"status.board.as_of_2019_whole_history", "2019-12-31"},
        {"status.board.as_of_2010", "2010-06-01"},
    };
    for (size_t i = 0; i < sizeof boards / sizeof boards[0]; i++) {
        char name[96];
        double cpu0 = s_cpu_ms(st.pid);
        if (s_board_lat(c, boards[i].as_of, "", n, (size_t)pilots, &p50, &p99)) goto done;
        double cpu1 = s_cpu_ms(st.pid);
        snprintf(name, sizeof name, "%s.p50", boards[i].name);
        bench_figure(name, p50, "ms");
        snprintf(name, sizeof name, "%s.p99", boards[i].name);
        bench_figure(name, p99, "ms");
        if (cpu0 >= 0 && cpu1 >= 0) {
            snprintf(name, sizeof name, "%s.service_cpu_per_call", boards[i].name);
            bench_figure(name, (cpu1 - cpu0) / n, "ms");
        }
    }
    char one[32]; /* a pilot in the middle, at any --scale */
    snprintf(one, sizeof one, "pilot-%04d", pilots / 2);
    if (s_board_lat(c, "2010-06-01", one, n, 1, &p50, &p99)) goto done;
    bench_figure("status.board.one_pilot_as_of.p50", p50, "ms");
    rc = 0;
done:
    sam_client_destroy(&c);
    bench_stop(&st);
    bench_stop(&reg);
    bench_stop(&broker);
    return rc;
}
