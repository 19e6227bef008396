/*  samordna-bench — see bench.h. */
#include "bench.h"
#include "sam_client.h"
#include "sam_status.h"

#include "cloudevents/v1/cloudevents.pb-c.h"
#include "samordna/v1/envelope.pb-c.h"
#include "samordna/v1/events.pb-c.h"
#include "samordna/v1/registry.pb-c.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    const char *name;
    bench_fn fn;
    const char *summary;
} s_family_t;

static const s_family_t s_families[] = {
#define X(name, fn, summary) {name, fn, summary},
#include "benches.def"
#undef X
    {NULL, NULL, NULL},
};

int bench_spawn(bench_t *b, bench_proc_t *p, const char *log, const char *prog, ...)
{
    char *argv[64];
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", b->bin_dir, prog);
    argv[0] = path;
    int n = 1;
    va_list ap;
    va_start(ap, prog);
    const char *a;
    while (n < 63 && (a = va_arg(ap, const char *)))
        argv[n++] = (char *)a;
    va_end(ap);
    argv[n] = NULL;
    char logpath[1024];
    snprintf(logpath, sizeof logpath, "%s/%s", b->work_dir, log);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        FILE *f = freopen(logpath, "a", stderr);
        (void)f;
        execv(path, argv);
        _exit(127);
    }
    p->pid = pid;
    return 0;
}

void bench_stop(bench_proc_t *p)
{
    if (p->pid <= 0) return;
    kill(p->pid, SIGTERM);
    int status;
    waitpid(p->pid, &status, 0);
    p->pid = 0;
}

void bench_endpoint(char *out, size_t len)
{
    /* The kernel's choice of a free port (port 0), read back and closed: free a moment ago,
       like the tests do. Not CZMQ's "*", which takes the lowest free port from 49152 up, so
       two runs side by side (or a test beside a bench) pick the same one. */
    int port = 0, fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    snprintf(out, len, "tcp://127.0.0.1:%d", port);
}

int bench_wait_service(const char *broker, const char *service, int timeout_ms)
{
    const char *eps[] = {broker};
    char err[256];
    sam_client_t *c = sam_client_new(eps, 1, NULL, err, sizeof err);
    if (!c) return -1;
    int64_t end = zclock_mono() + timeout_ms;
    int rc = -1;
    while (rc != 0 && zclock_mono() < end) {
        sam_result_t res = {0};
        if (sam_client_call(c, service, "ping", NULL, NULL, NULL, 300, false, &res) == SAM_OK)
            rc = 0;
        else
            zclock_sleep(20);
        sam_result_clear(&res);
    }
    sam_client_destroy(&c);
    return rc;
}

uint8_t *bench_person_event(const char *prefix, size_t i, size_t *len)
{
    char id[32], eid[96], name[48];
    snprintf(id, sizeof id, "p-%08zu", i);
    snprintf(eid, sizeof eid, "%s:%s", prefix, id);
    snprintf(name, sizeof name, "Person %zu", i);
    Samordna__V1__Person p = SAMORDNA__V1__PERSON__INIT;
    p.id = id;
    p.name = name;
    p.agency = "";
    return bench_event("no.samordna.registry.person.registered", eid, "fmov", NULL, &p.base, len);
}

uint8_t *bench_event(const char *type, const char *id, const char *source, const char *subject,
                     const ProtobufCMessage *payload, size_t *len)
{
    uint8_t x = 'x';
    size_t dlen = payload ? protobuf_c_message_get_packed_size(payload) : 1;
    uint8_t *data = payload ? malloc(dlen ? dlen : 1) : &x;
    if (!data) return NULL;
    if (payload) protobuf_c_message_pack(payload, data);
    Io__Cloudevents__V1__CloudEvent ce = IO__CLOUDEVENTS__V1__CLOUD_EVENT__INIT;
    Io__Cloudevents__V1__CloudEvent__AttributesEntry a =
        IO__CLOUDEVENTS__V1__CLOUD_EVENT__ATTRIBUTES_ENTRY__INIT;
    Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue v =
        IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__INIT;
    Io__Cloudevents__V1__CloudEvent__AttributesEntry *attrs[] = {&a};
    if (subject) {
        v.attr_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_STRING;
        v.ce_string = (char *)subject;
        a.key = "subject";
        a.value = &v;
        ce.n_attributes = 1;
        ce.attributes = attrs;
    }
    ce.id = (char *)id;
    ce.source = (char *)source;
    ce.spec_version = "1.0";
    ce.type = (char *)type;
    ce.data_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_BINARY_DATA;
    ce.binary_data.data = data;
    ce.binary_data.len = dlen;
    Samordna__V1__PublishRequest pr = SAMORDNA__V1__PUBLISH_REQUEST__INIT;
    pr.event = &ce;
    *len = samordna__v1__publish_request__get_packed_size(&pr);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf) samordna__v1__publish_request__pack(&pr, buf);
    if (payload) free(data);
    return buf;
}

uint64_t bench_publish(sam_client_t *c, const char *service, const char *type, const char *id,
                       const char *source, const char *subject, const ProtobufCMessage *payload)
{
    size_t len;
    uint8_t *body = bench_event(type, id, source, subject, payload, &len);
    uint64_t rid = body ? sam_client_send(c, service, "events.publish", body, len) : 0;
    free(body);
    return rid;
}

static int s_cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

double bench_percentile(int64_t *lat_us, size_t n, double p)
{
    if (n == 0) return 0;
    qsort(lat_us, n, sizeof *lat_us, s_cmp64);
    size_t i = (size_t)((p / 100.0) * (double)(n - 1) + 0.5);
    return (double)lat_us[i];
}

void bench_figure(const char *name, double value, const char *unit)
{
    /* Ratios are read against floors such as 2.0x, so they get one more digit. */
    printf(strcmp(unit, "x") == 0 ? "%-44s %14.2f %s\n" : "%-44s %14.1f %s\n", name, value, unit);
    fflush(stdout);
}

static void s_usage(void)
{
    printf("Usage: samordna-bench [--scale X] [--rounds N] [--bin-dir DIR] [--work-dir DIR] "
           "FAMILY|all\n\n"
           "Runs benchmarks on loopback and prints one line per figure.\n\nFamilies:\n");
    for (const s_family_t *f = s_families; f->name; f++)
        printf("  %-12s %s\n", f->name, f->summary);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--raw-echo") == 0) return bench_raw_echo_process(argv[2]);
    if (argc == 4 && strcmp(argv[1], "--raw-relay") == 0)
        return bench_raw_relay_process(argv[2], argv[3]);
    bench_t b = {.bin_dir = NULL, .work_dir = "bench-data", .scale = 1.0};
    const char *family = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc)
            b.scale = atof(argv[++i]);
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            b.rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--bin-dir") == 0 && i + 1 < argc)
            b.bin_dir = argv[++i];
        else if (strcmp(argv[i], "--work-dir") == 0 && i + 1 < argc)
            b.work_dir = argv[++i];
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage();
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("samordna-bench %s\n", SAMORDNA_VERSION);
            return 0;
        } else if (argv[i][0] != '-' && !family)
            family = argv[i];
        else {
            fprintf(stderr, "samordna-bench: unexpected argument '%s' (try --help)\n", argv[i]);
            return 2;
        }
    }
    if (!family || b.scale <= 0) {
        s_usage();
        return 2;
    }
    /* By default the services are the ones built beside this program. */
    static char self_dir[1024];
    if (!b.bin_dir) {
        ssize_t n = readlink("/proc/self/exe", self_dir, sizeof self_dir - 1);
        if (n <= 0) return 1;
        self_dir[n] = '\0';
        char *slash = strrchr(self_dir, '/');
        if (slash) *slash = '\0';
        b.bin_dir = self_dir;
    }
    zsys_init();
    zsys_set_linger(0);
    zsys_handler_set(NULL);
    zsys_dir_create("%s", b.work_dir);
    int rc = 0, ran = 0;
    for (const s_family_t *f = s_families; f->name; f++) {
        if (strcmp(family, "all") != 0 && strcmp(family, f->name) != 0) continue;
        printf("== %s: %s\n", f->name, f->summary);
        fflush(stdout);
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s", b.work_dir, f->name);
        zsys_dir_delete("%s", dir);
        bench_t fb = b;
        fb.work_dir = dir;
        zsys_dir_create("%s", dir);
        if (f->fn(&fb) != 0) rc = 1;
        ran++;
    }
    if (!ran) {
        fprintf(stderr, "samordna-bench: no family '%s' (try --help)\n", family);
        return 2;
    }
    return rc;
}
