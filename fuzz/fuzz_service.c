/*  fuzz_service — one service's whole request path, from the frames the broker delivers to
    its store: envelope and caller decoding, role and source checks, every query and every
    event type's payload decoder and apply function. Built once per service (CMake names
    the service's renamed main as SAM_FUZZ_SERVICE_MAIN).

    The service really runs: its own main() parses options (--insecure, a scratch store,
    --nosync), opens and migrates its LMDB store and calls start(); the runtime's harness
    mode then hands the service to libFuzzer's driver instead of connecting to brokers, and
    each input becomes one message fed to sam_service_feed(). The store keeps what earlier
    inputs wrote, so later ones meet references that exist.

    Input: byte 0 picks the caller (an insecure broker's admin, or authenticated admin,
    publisher, reader, service, or a Caller frame from the input); byte 1 the shape of the
    request (see s_build); byte 2 an event type or query method of the service; byte 3
    whether a publisher names its own agency as source; the rest is the body.
*/
#define _XOPEN_SOURCE 700 /* nftw */
#include "fuzz_input.h"
#include "sam_service.h"

#include <czmq.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int SAM_FUZZ_SERVICE_MAIN(int argc, char **argv);
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*cb)(const uint8_t *, size_t));

static int s_argc;
static char **s_argv;
static sam_service_t *s_svc;
static uint64_t s_seq;

static const struct {
    const char *agency, *role;
    bool insecure;
} s_callers[] = {
    {"", "admin", true},       {"fmov", "admin", false},   {"nav-ost-viken", "publisher", false},
    {"hiof", "reader", false}, {"fmov", "service", false},
};
#define S_NCALLERS (sizeof s_callers / sizeof s_callers[0])

static zframe_t *s_packed(const ProtobufCMessage *m)
{
    zframe_t *f = zframe_new(NULL, protobuf_c_message_get_packed_size(m));
    if (f) protobuf_c_message_pack(m, zframe_data(f));
    return f;
}

/* The service's row of `kind` numbered pick (modulo their count), NULL when it has none. */
static const sam_row_t *s_nth_row(const sam_service_def_t *def, sam_kind_t kind, uint8_t pick)
{
    size_t n = 0;
    for (size_t i = 0; i < def->n_rows; i++)
        n += def->rows[i].kind == kind;
    if (n == 0) return NULL;
    size_t want = pick % n;
    for (size_t i = 0; i < def->n_rows; i++)
        if (def->rows[i].kind == kind && want-- == 0) return &def->rows[i];
    return NULL;
}

/*  The body frame (a packed samordna.v1.Request) for shapes 0..5; NULL for shape 6, where
    the input's frames follow the command as they are. */
static zframe_t *s_build(fuzz_input_t *in, uint8_t shape, const char *agency)
{
    const sam_service_def_t *def = sam_service_def(s_svc);
    uint8_t pick = fuzz_byte(in), own = fuzz_byte(in);
    const uint8_t *rest = in->data + in->at;
    size_t len = fuzz_left(in);
    Samordna__V1__Request req = SAMORDNA__V1__REQUEST__INIT;
    req.id = ++s_seq;
    req.body.data = (uint8_t *)rest;
    req.body.len = len;
    char id[32];
    Io__Cloudevents__V1__CloudEvent ce = IO__CLOUDEVENTS__V1__CLOUD_EVENT__INIT;
    Samordna__V1__PublishRequest pub = SAMORDNA__V1__PUBLISH_REQUEST__INIT;
    uint8_t *packed = NULL;
    zframe_t *frame = NULL;
    switch (shape) {
    case 0: /* a well-formed CloudEvent of one of the service's types, payload from input */
        if (!s_nth_row(def, SAM_KIND_EVENT, pick)) return NULL;
        snprintf(id, sizeof id, "fuzz-%" PRIu64, s_seq);
        ce.id = id;
        ce.source = (char *)((own & 1) && agency[0] ? agency : "fmov");
        ce.spec_version = "1.0";
        ce.type = (char *)s_nth_row(def, SAM_KIND_EVENT, pick)->name;
        ce.data_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_BINARY_DATA;
        ce.binary_data.data = (uint8_t *)rest;
        ce.binary_data.len = len;
        pub.event = &ce;
        packed = malloc(protobuf_c_message_get_packed_size(&pub.base) + 1);
        if (!packed) return NULL;
        req.method = "events.publish";
        req.body.len = protobuf_c_message_pack(&pub.base, packed);
        req.body.data = packed;
        break;
    case 1: /* one of the service's queries, request body from input */
        if (!s_nth_row(def, SAM_KIND_QUERY, pick)) return NULL;
        req.method = (char *)s_nth_row(def, SAM_KIND_QUERY, pick)->name;
        break;
    case 2:
        req.method = "events.read";
        break;
    case 3:
        req.method = "events.publish"; /* PublishRequest bytes from input */
        break;
    case 4:
        req.method = "ping";
        break;
    default: { /* a whole Request envelope from input */
        frame = zframe_new(rest, len);
        in->at = in->size;
        return frame;
    }
    }
    frame = s_packed(&req.base);
    free(packed);
    in->at = in->size;
    return frame;
}

static int s_one(const uint8_t *data, size_t size)
{
    fuzz_input_t in = {data, size, 0};
    uint8_t who = fuzz_byte(&in), shape = fuzz_byte(&in) % 7;
    zmsg_t *msg = zmsg_new();
    uint8_t command = 0x02;
    zmsg_addmem(msg, "", 0);
    zmsg_addstr(msg, "MDPW01");
    if (shape == 6) { /* raw: command and frames from input */
        size_t n;
        const uint8_t *f = fuzz_frame(&in, &n);
        zmsg_addmem(msg, f, n);
        while (fuzz_left(&in) > 0 && zmsg_size(msg) < 16) {
            f = fuzz_frame(&in, &n);
            zmsg_addmem(msg, f, n);
        }
        sam_service_feed(s_svc, &msg);
        return 0;
    }
    zmsg_addmem(msg, &command, 1);
    zmsg_addstr(msg, "fuzz-client");
    zmsg_addmem(msg, "", 0);
    const char *agency = "";
    if (who % (S_NCALLERS + 1) == S_NCALLERS) {
        size_t n;
        const uint8_t *f = fuzz_frame(&in, &n);
        zmsg_addmem(msg, f, n);
    } else {
        Samordna__V1__Caller caller = SAMORDNA__V1__CALLER__INIT;
        caller.agency = (char *)s_callers[who % (S_NCALLERS + 1)].agency;
        caller.role = (char *)s_callers[who % (S_NCALLERS + 1)].role;
        caller.insecure = s_callers[who % (S_NCALLERS + 1)].insecure;
        caller.key = caller.insecure ? "" : "fuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzzfuzz";
        agency = caller.agency;
        zframe_t *f = s_packed(&caller.base);
        zmsg_append(msg, &f);
    }
    zframe_t *body = s_build(&in, shape, agency);
    if (!body) {
        zmsg_destroy(&msg);
        return 0;
    }
    zmsg_append(msg, &body);
    sam_service_feed(s_svc, &msg);
    return 0;
}

static int s_harness(sam_service_t *svc, void *arg)
{
    (void)arg;
    s_svc = svc;
    return LLVMFuzzerRunDriver(&s_argc, &s_argv, s_one);
}

static int s_remove(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(int argc, char **argv)
{
    const char *tmp = fuzz_scratch_dir();
    zsys_dir_create("%s", tmp);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/samordna-fuzz-XXXXXX", tmp);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    s_argc = argc;
    s_argv = argv;
    sam_service_set_harness(s_harness, NULL);
    char *sargv[] = {"fuzz",     "--insecure",        "--data-dir", dir,
                     "--nosync", "--log-level",       "error",      "--map-size-mb",
                     "2048",     "--max-event-bytes", "65536",      NULL};
    int rc = SAM_FUZZ_SERVICE_MAIN((int)(sizeof sargv / sizeof sargv[0]) - 1, sargv);
    nftw(dir, s_remove, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
