/*  sam_common_selftest — unit selftests of the shared modules: config, store, status, keys.
    Each check prints nothing when it holds; the program prints one line per failed check
    and a closing 'N passed, N failed' line, and exits non-zero when any failed. It writes
    only under the folder given as its first argument. */
#include "sam_config.h"
#include "sam_keys.h"
#include "sam_status.h"
#include "sam_store.h"

#include "samordna/v1/envelope.pb-c.h"

#include <czmq.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int s_passed, s_failed;
#define CHECK(cond)                                                                               \
    do {                                                                                           \
        if (cond)                                                                                  \
            s_passed++;                                                                            \
        else {                                                                                     \
            s_failed++;                                                                            \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                                 \
        }                                                                                          \
    } while (0)

static const sam_option_t s_opts[] = {
    {"broker", "ENDPOINT", "tcp://127.0.0.1:5555", "broker", true},
    {"credit", "N", "256", "credit", false},
    {"insecure", NULL, NULL, "no auth", false},
    {"name", "NAME", NULL, "a name", false},
    {NULL, NULL, NULL, NULL, false},
};

static int s_parse(sam_config_t **cfg, int argc, char **argv)
{
    *cfg = sam_config_new("selftest", NULL, "selftest", s_opts);
    return sam_config_parse(*cfg, argc, argv);
}

static void s_config_test(const char *dir)
{
    sam_config_t *cfg;
    char *a1[] = {"x", "--credit", "7", "--broker=tcp://a:1", "--broker", "tcp://b:2", "--insecure",
                  "pos1", "--", "--pos2"};
    CHECK(s_parse(&cfg, 10, a1) == 0);
    bool ok = true;
    CHECK(sam_config_int(cfg, "credit", 1, 100, &ok) == 7 && ok);
    CHECK(sam_config_count(cfg, "broker") == 2);
    CHECK(strcmp(sam_config_nth(cfg, "broker", 1), "tcp://b:2") == 0);
    CHECK(sam_config_flag(cfg, "insecure"));
    CHECK(sam_config_get(cfg, "name") == NULL);
    CHECK(sam_config_npos(cfg) == 2 && strcmp(sam_config_pos(cfg, 1), "--pos2") == 0);
    CHECK(strcmp(sam_config_get(cfg, "log-level"), "info") == 0);
    sam_config_destroy(&cfg);
    CHECK(cfg == NULL);
    sam_config_destroy(&cfg); /* NULL is accepted */

    char *a2[] = {"x"};
    CHECK(s_parse(&cfg, 1, a2) == 0);
    CHECK(sam_config_count(cfg, "broker") == 1); /* the default counts as one */
    CHECK(strcmp(sam_config_nth(cfg, "broker", 0), "tcp://127.0.0.1:5555") == 0);
    ok = true;
    CHECK(sam_config_int(cfg, "credit", 300, 400, &ok) == -1 && !ok); /* 256 out of range */
    sam_config_destroy(&cfg);

    char *bad[][3] = {{"x", "--nope", NULL}, {"x", "--credit", NULL}, {"x", "--insecure=1", NULL},
                      {"x", "--log-level", "loud"}};
    int bad_argc[] = {2, 2, 2, 3};
    for (int i = 0; i < 4; i++) {
        CHECK(s_parse(&cfg, bad_argc[i], bad[i]) == -1);
        sam_config_destroy(&cfg);
    }

    /* A ZPL file: values apply unless the command line gave the option. */
    char path[1024];
    snprintf(path, sizeof path, "%s/test.cfg", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "credit = \"9\"\nname = \"from file\"\nbroker\n    1 = \"tcp://c:3\"\n"
               "    2 = \"tcp://d:4\"\n");
    fclose(f);
    char *a3[] = {"x", "--config", path, "--credit", "11"};
    CHECK(s_parse(&cfg, 5, a3) == 0);
    CHECK(strcmp(sam_config_get(cfg, "credit"), "11") == 0);
    CHECK(strcmp(sam_config_get(cfg, "name"), "from file") == 0);
    CHECK(sam_config_count(cfg, "broker") == 2);
    CHECK(strcmp(sam_config_nth(cfg, "broker", 0), "tcp://c:3") == 0);
    sam_config_destroy(&cfg);
    f = fopen(path, "w");
    fprintf(f, "unknown = \"1\"\n");
    fclose(f);
    char *a4[] = {"x", "--config", path};
    CHECK(s_parse(&cfg, 3, a4) == -1);
    sam_config_destroy(&cfg);
    char *a5[] = {"x", "--config", "/nonexistent/samordna.cfg"};
    CHECK(s_parse(&cfg, 3, a5) == -1);
    sam_config_destroy(&cfg);
}

static void s_store_test(const char *dir)
{
    uint8_t b[8];
    sam_be64_put(b, 0x0102030405060708ull);
    CHECK(b[0] == 1 && b[7] == 8 && sam_be64_get(b) == 0x0102030405060708ull);
    sam_be32_put(b, 0xdeadbeef);
    CHECK(sam_be32_get(b) == 0xdeadbeef);

    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/store/data.mdb", dir);
    remove(path); /* a store left by an earlier run would not be new */
    snprintf(path, sizeof path, "%s/store/lock.mdb", dir);
    remove(path);
    snprintf(path, sizeof path, "%s/store", dir);
    const char *const tables[] = {"things", NULL};
    sam_store_t *st = sam_store_open(path, tables, NULL, err, sizeof err);
    CHECK(st != NULL);
    if (!st) return;
    MDB_txn *txn;
    CHECK(sam_store_begin(st, NULL, true, &txn) == 0);
    CHECK(sam_store_schema(st, txn) == 0);
    CHECK(sam_store_set_schema(st, txn, 3) == 0);
    Samordna__V1__Status msg = SAMORDNA__V1__STATUS__INIT;
    msg.code = 404;
    msg.message = "not here";
    MDB_dbi dbi = sam_store_dbi(st, "things");
    CHECK(sam_store_put_msg(txn, dbi, "k1", 2, &msg.base, 0) == 0);
    Samordna__V1__Status empty = SAMORDNA__V1__STATUS__INIT; /* packs to zero bytes */
    CHECK(sam_store_put_msg(txn, dbi, "k0", 2, &empty.base, 0) == 0);
    MDB_val k = {2, "kx"}, v = {3, "\xff\xff\xff"};
    CHECK(mdb_put(txn, dbi, &k, &v, 0) == 0);
    CHECK(mdb_txn_commit(txn) == 0);

    CHECK(sam_store_begin(st, NULL, false, &txn) == 0);
    CHECK(sam_store_schema(st, txn) == 3);
    ProtobufCMessage *out = NULL;
    CHECK(sam_store_get_msg(txn, dbi, "k1", 2, &samordna__v1__status__descriptor, &out) == 0);
    Samordna__V1__Status *got = (Samordna__V1__Status *)out;
    CHECK(got && got->code == 404 && strcmp(got->message, "not here") == 0);
    protobuf_c_message_free_unpacked(out, NULL);
    CHECK(sam_store_get_msg(txn, dbi, "k0", 2, &samordna__v1__status__descriptor, &out) == 0);
    protobuf_c_message_free_unpacked(out, NULL);
    CHECK(sam_store_get_msg(txn, dbi, "zz", 2, &samordna__v1__status__descriptor, &out) ==
          MDB_NOTFOUND);
    CHECK(sam_store_get_msg(txn, dbi, "kx", 2, &samordna__v1__status__descriptor, &out) ==
          SAM_STORE_CORRUPT);
    CHECK(sam_store_has(txn, dbi, "k1", 2) && !sam_store_has(txn, dbi, "k9", 2));
    mdb_txn_abort(txn);
    CHECK(strstr(sam_store_strerror(SAM_STORE_CORRUPT), "corrupt") != NULL);
    sam_store_destroy(&st);
    CHECK(st == NULL);

    /* A folder that cannot be made is refused with a reason, not a crash. */
    char bad[1024];
    snprintf(bad, sizeof bad, "%s/test.cfg/sub", dir);
    st = sam_store_open(bad, tables, NULL, err, sizeof err);
    CHECK(st == NULL && strlen(err) > 0);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "selftest-data";
    zsys_dir_create("%s", dir);
    CHECK(strcmp(sam_status_name(SAM_NOT_FOUND), "not found") == 0);
    CHECK(strcmp(sam_status_name(999), "error") == 0);
    s_config_test(dir);
    s_store_test(dir);
    char keys[1024];
    snprintf(keys, sizeof keys, "%s/keys-%d", dir, (int)getpid());
    CHECK(sam_keys_selftest(keys, false) == 0);
    printf("%d passed, %d failed\n", s_passed, s_failed);
    return s_failed ? 1 : 0;
}
