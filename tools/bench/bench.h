/*  bench.h — samordna's benchmarks: one program, one subcommand per figure family.

    `samordna-bench NAME [options]` runs one family, `samordna-bench all` runs every one.
    A family starts what it needs itself (broker, services, raw sockets) on loopback ports
    under a scratch folder, measures, prints one line per figure as
        figure-name  value unit  [compared-to baseline: ratio]
    and returns 0, or non-zero when it could not measure. Figures are never asserted in
    tests: machines are shared and noisy; a family compares against a baseline measured in
    the same run wherever one exists.

    Adding a family: a bench_<area>.c with its function, one line in benches.def.
*/
#ifndef BENCH_H
#define BENCH_H

#include "sam_client.h"

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *bin_dir;  /* folder of the samordna executables */
    const char *work_dir; /* scratch folder for stores and logs (created, emptied) */
    double scale;         /* --scale: multiplies iteration counts (default 1.0) */
    int rounds;           /* --rounds: repetitions where a family repeats (0: its own) */
} bench_t;

typedef int (*bench_fn)(bench_t *b);

/* A child process of the benchmark (broker, service), stopped with bench_stop. */
typedef struct {
    int pid;
} bench_proc_t;

/* Starts bin_dir/<prog> with a NULL-terminated argument list (stderr to work_dir/<log>). */
int bench_spawn(bench_t *b, bench_proc_t *p, const char *log, const char *prog, ...);
/* SIGTERM and wait. */
void bench_stop(bench_proc_t *p);
/* A free loopback TCP endpoint "tcp://127.0.0.1:PORT". */
void bench_endpoint(char *out, size_t len);
/* Waits until `service` answers ping through the broker; 0 or -1 after timeout_ms. */
int bench_wait_service(const char *broker, const char *service, int timeout_ms);

/* The raw baseline's echo as a process of its own (samordna-bench --raw-echo ENDPOINT):
   a ROUTER that sends every message back until SIGTERM. Returns the exit code. */
int bench_raw_echo_process(const char *endpoint);
/* A bare relay as a process of its own (samordna-bench --raw-relay FRONT BACK): zmq_proxy
   from a ROUTER bound at FRONT to a DEALER connected to BACK, until SIGTERM. */
int bench_raw_relay_process(const char *front, const char *back);

/* The packed events.publish body of one CloudEvent (spec 1.0): `type`, `id`, `source`, the
   subject attribute when `subject` is not NULL, and `payload` packed as its binary data (one
   byte "x" when NULL, for events whose data no one reads). Returns a buffer of *len bytes
   the caller frees, or NULL when out of memory. */
uint8_t *bench_event(const char *type, const char *id, const char *source, const char *subject,
                     const ProtobufCMessage *payload, size_t *len);

/* The packed events.publish body of a registry person.registered, person "p-<i>" (eight
   digits), event id "<prefix>:p-<i>": unique per i. NULL when out of memory. */
uint8_t *bench_person_event(const char *prefix, size_t i, size_t *len);

/* Sends bench_event(type, id, source, subject, payload) to `service` through `c` without
   waiting for its reply: the request id, or 0 when it could not be built or sent. */
uint64_t bench_publish(sam_client_t *c, const char *service, const char *type, const char *id,
                       const char *source, const char *subject, const ProtobufCMessage *payload);

/* Sorts n latencies (µs) and returns the p-th percentile (0..100). */
double bench_percentile(int64_t *lat_us, size_t n, double p);
/* Prints one figure line. */
void bench_figure(const char *name, double value, const char *unit);

#define X(name, fn, summary) int fn(bench_t *b);
#include "benches.def"
#undef X

#endif
