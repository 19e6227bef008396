/*  sam_common_selftest — unit selftests of the shared modules: config, store, status, keys,
    the batch frame, the outbox follower, the field rules, the working calendar, metrics and
    the HTTP port.
    Each check prints nothing when it holds; the program prints one line per failed check
    and a closing 'N passed, N failed' line, and exits non-zero when any failed. It writes
    only under the folder given as its first argument. */
#include "sam_auth.h"
#include "sam_batch.h"
#include "sam_calendar.h"
#include "sam_check.h"
#include "sam_config.h"
#include "sam_follow.h"
#include "sam_http.h"
#include "sam_lease.h"
#include "sam_jwt.h"
#include "sam_keys.h"
#include "sam_status.h"
#include "sam_store.h"
#include "sam_testkit.h"
#include "sam_words.h"

#include "samordna/v1/envelope.pb-c.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHECK SAM_CHECK /* sam_testkit.h */

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
    char *a1[] = {"x",        "--credit",  "7",          "--broker=tcp://a:1",
                  "--broker", "tcp://b:2", "--insecure", "pos1",
                  "--",       "--pos2"};
    CHECK(s_parse(&cfg, 10, a1) == 0);
    bool ok = true;
    CHECK(sam_config_int(cfg, "credit", 1, 100, &ok) == 7 && ok);
    CHECK(sam_config_count(cfg, "broker") == 2);
    CHECK(strcmp(sam_config_nth(cfg, "broker", 1), "tcp://b:2") == 0);
    CHECK(sam_config_flag(cfg, "insecure"));
    CHECK(sam_config_get(cfg, "name") == NULL);
    CHECK(sam_config_npos(cfg) == 2 && strcmp(sam_config_pos(cfg, 1), "--pos2") == 0);
    CHECK(strcmp(sam_config_get(cfg, "log-level"), "info") == 0);
    CHECK(sam_config_find(cfg, "credit=7", 6)->arg != NULL);               /* own, takes a value */
    CHECK(sam_config_find(cfg, "insecure", 8)->arg == NULL);               /* own flag */
    CHECK(strcmp(sam_config_find(cfg, "config", 6)->name, "config") == 0); /* a built-in */
    CHECK(sam_config_find(cfg, "cred", 4) == NULL);                        /* no prefixes */
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

    char *bad[][3] = {{"x", "--nope", NULL},
                      {"x", "--credit", NULL},
                      {"x", "--insecure=1", NULL},
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

    /* SAMORDNA_*: over the file, under the command line; lists split at commas. */
    f = fopen(path, "w");
    fprintf(f, "credit = \"9\"\nname = \"from file\"\n");
    fclose(f);
    setenv("SAMORDNA_NAME", "from env", 1);
    setenv("SAMORDNA_BROKER", "tcp://e:5,tcp://f:6", 1);
    setenv("SAMORDNA_INSECURE", "yes", 1);
    setenv("SAMORDNA_LOG_LEVEL", "warn", 1);
    char *a6[] = {"x", "--config", path, "--broker", "tcp://g:7"};
    CHECK(s_parse(&cfg, 5, a6) == 0);
    CHECK(strcmp(sam_config_get(cfg, "name"), "from env") == 0);
    CHECK(strcmp(sam_config_get(cfg, "credit"), "9") == 0);
    CHECK(sam_config_count(cfg, "broker") == 1); /* the command line wins */
    CHECK(sam_config_flag(cfg, "insecure"));
    CHECK(strcmp(sam_config_get(cfg, "log-level"), "warn") == 0);
    sam_config_destroy(&cfg);
    char *a7[] = {"x"};
    CHECK(s_parse(&cfg, 1, a7) == 0);
    CHECK(sam_config_count(cfg, "broker") == 2 &&
          strcmp(sam_config_nth(cfg, "broker", 1), "tcp://f:6") == 0);
    sam_config_destroy(&cfg);
    setenv("SAMORDNA_INSECURE", "maybe", 1);
    CHECK(s_parse(&cfg, 1, a7) == -1);
    sam_config_destroy(&cfg);
    setenv("SAMORDNA_INSECURE", "no", 1);
    CHECK(s_parse(&cfg, 1, a7) == 0 && !sam_config_flag(cfg, "insecure"));
    sam_config_destroy(&cfg);
    unsetenv("SAMORDNA_NAME");
    unsetenv("SAMORDNA_BROKER");
    unsetenv("SAMORDNA_INSECURE");
    unsetenv("SAMORDNA_LOG_LEVEL");
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

/* The reader's verdict on raw bytes: the items it returned before the end, or -1 when it
   refused the rest. After a refusal it must stay at the end. */
static int s_batch_read(const void *data, size_t size, sam_delivery_t *last)
{
    sam_batch_reader_t reader;
    sam_batch_reader_init(&reader, data, size);
    int n = 0, rc;
    while ((rc = sam_batch_next(&reader, last)) == 1)
        n++;
    if (rc < 0) {
        CHECK(sam_batch_next(&reader, last) == 0); /* stays at its end */
        return -1;
    }
    return n;
}

#define S_RAW(text) (const uint8_t *)(text), sizeof(text) - 1

static bool s_bytes_are(const uint8_t *data, size_t len, const char *text)
{
    return len == strlen(text) && (len == 0 || memcmp(data, text, len) == 0);
}

static void s_batch_test(void)
{
    /* Written with protobuf-c, read back in place: with and without caller, 0, 1, 3 bodies. */
    ProtobufCBinaryData three[3] = {
        {3, (uint8_t *)"one"}, {0, (uint8_t *)""}, {5, (uint8_t *)"three"}};
    ProtobufCBinaryData one[1] = {{4, (uint8_t *)"solo"}};
    sam_batch_t batch = {0};
    size_t before = batch.len;
    size_t want = sam_batch_delivery_size(2, 6, three, 3);
    CHECK(sam_batch_add(&batch, (const uint8_t *)"C1", 2, (const uint8_t *)"caller", 6, three, 3) ==
          0);
    CHECK(batch.len - before == want && batch.count == 1);
    before = batch.len;
    want = sam_batch_delivery_size(3, 0, one, 1);
    CHECK(sam_batch_add(&batch, (const uint8_t *)"C22", 3, NULL, 0, one, 1) == 0);
    CHECK(batch.len - before == want);
    before = batch.len;
    want = sam_batch_delivery_size(1, 0, NULL, 0);
    CHECK(sam_batch_add(&batch, (const uint8_t *)"\x00", 1, NULL, 0, NULL, 0) == 0);
    CHECK(batch.len - before == want && batch.count == 3);
    /* A large body: its length takes a varint of several bytes. */
    static uint8_t big[70000];
    memset(big, 'b', sizeof big);
    ProtobufCBinaryData large[1] = {{sizeof big, big}};
    before = batch.len;
    want = sam_batch_delivery_size(255, 300, large, 1);
    static uint8_t long_id[255], long_caller[300];
    memset(long_id, 'i', sizeof long_id);
    memset(long_caller, 'c', sizeof long_caller);
    CHECK(sam_batch_add(&batch, long_id, sizeof long_id, long_caller, sizeof long_caller, large,
                        1) == 0);
    CHECK(batch.len - before == want && batch.count == 4);

    sam_batch_reader_t reader;
    sam_delivery_t d;
    sam_batch_reader_init(&reader, batch.data, batch.len);
    CHECK(sam_batch_next(&reader, &d) == 1);
    CHECK(s_bytes_are(d.client, d.client_len, "C1"));
    CHECK(d.caller && s_bytes_are(d.caller, d.caller_len, "caller"));
    CHECK(d.nbody == 3 && d.bytes == 8);
    CHECK(s_bytes_are(d.body[0].data, d.body[0].len, "one") && d.body[1].len == 0 &&
          s_bytes_are(d.body[2].data, d.body[2].len, "three"));
    CHECK(sam_batch_next(&reader, &d) == 1);
    CHECK(s_bytes_are(d.client, d.client_len, "C22") && d.caller == NULL && d.caller_len == 0);
    CHECK(d.nbody == 1 && s_bytes_are(d.body[0].data, d.body[0].len, "solo") && d.bytes == 4);
    CHECK(sam_batch_next(&reader, &d) == 1);
    CHECK(d.client_len == 1 && d.client[0] == 0 && d.caller == NULL && d.nbody == 0 &&
          d.bytes == 0);
    CHECK(sam_batch_next(&reader, &d) == 1);
    CHECK(d.client_len == 255 && memcmp(d.client, long_id, 255) == 0);
    CHECK(d.caller_len == 300 && memcmp(d.caller, long_caller, 300) == 0);
    CHECK(d.nbody == 1 && d.bytes == sizeof big && memcmp(d.body[0].data, big, sizeof big) == 0);
    CHECK(sam_batch_next(&reader, &d) == 0);
    CHECK(sam_batch_next(&reader, &d) == 0); /* and stays at the end */

    /* protobuf-c reads the same frame the same way. */
    Samordna__V1__Batch *unpacked = samordna__v1__batch__unpack(NULL, batch.len, batch.data);
    CHECK(unpacked && unpacked->n_item == 4);
    if (unpacked && unpacked->n_item == 4) {
        Samordna__V1__Batch__Item **it = unpacked->item;
        CHECK(s_bytes_are(it[0]->client.data, it[0]->client.len, "C1"));
        CHECK(s_bytes_are(it[0]->caller.data, it[0]->caller.len, "caller"));
        CHECK(it[0]->n_body == 3 && it[0]->body[1].len == 0 &&
              s_bytes_are(it[0]->body[2].data, it[0]->body[2].len, "three"));
        CHECK(it[1]->caller.len == 0 && it[1]->n_body == 1);
        CHECK(it[2]->client.len == 1 && it[2]->n_body == 0);
        CHECK(it[3]->client.len == 255 && it[3]->caller.len == 300 && it[3]->n_body == 1 &&
              it[3]->body[0].len == sizeof big);
    }
    samordna__v1__batch__free_unpacked(unpacked, NULL);

    /* And what protobuf-c packs, the reader reads. */
    Samordna__V1__Batch__Item item = SAMORDNA__V1__BATCH__ITEM__INIT;
    Samordna__V1__Batch__Item *items[] = {&item};
    item.client = (ProtobufCBinaryData){2, (uint8_t *)"PB"};
    item.n_body = 3;
    item.body = three;
    Samordna__V1__Batch pb = SAMORDNA__V1__BATCH__INIT;
    pb.n_item = 1;
    pb.item = items;
    uint8_t packed[256];
    size_t npacked = samordna__v1__batch__pack(&pb, packed);
    CHECK(s_batch_read(packed, npacked, &d) == 1);
    CHECK(s_bytes_are(d.client, d.client_len, "PB") && d.caller == NULL && d.nbody == 3 &&
          s_bytes_are(d.body[2].data, d.body[2].len, "three"));

    /* Reset empties it for the next frame; a buffer past 1 MiB is given back. */
    sam_batch_reset(&batch);
    CHECK(batch.len == 0 && batch.count == 0 && batch.data != NULL);
    CHECK(sam_batch_add(&batch, (const uint8_t *)"C3", 2, NULL, 0, one, 1) == 0);
    CHECK(batch.count == 1 && s_batch_read(batch.data, batch.len, &d) == 1 &&
          s_bytes_are(d.client, d.client_len, "C3"));
    for (int i = 0; i < 20; i++)
        CHECK(sam_batch_add(&batch, (const uint8_t *)"C4", 2, NULL, 0, large, 1) == 0);
    CHECK(batch.cap > (1u << 20) && s_batch_read(batch.data, batch.len, &d) == 21);
    sam_batch_reset(&batch);
    CHECK(batch.len == 0 && batch.count == 0 && batch.data == NULL && batch.cap == 0);
    CHECK(sam_batch_add(&batch, (const uint8_t *)"C5", 2, NULL, 0, one, 1) == 0);
    CHECK(batch.count == 1 && s_batch_read(batch.data, batch.len, &d) == 1);
    sam_batch_free(&batch);
    CHECK(batch.data == NULL && batch.len == 0 && batch.count == 0);
    sam_batch_free(&batch); /* twice is harmless */

    /* Empty frames and exactly SAM_BATCH_MAX_BODY bodies are fine, one more is not. */
    CHECK(s_batch_read("", 0, &d) == 0);
    CHECK(s_batch_read(S_RAW("\x0a\x00"), &d) == 1 && d.client == NULL && d.nbody == 0);
    ProtobufCBinaryData many[SAM_BATCH_MAX_BODY + 1];
    for (int i = 0; i <= SAM_BATCH_MAX_BODY; i++)
        many[i] = (ProtobufCBinaryData){1, (uint8_t *)"m"};
    CHECK(sam_batch_add(&batch, (const uint8_t *)"C6", 2, NULL, 0, many, SAM_BATCH_MAX_BODY) == 0);
    CHECK(s_batch_read(batch.data, batch.len, &d) == 1 && d.nbody == SAM_BATCH_MAX_BODY &&
          d.bytes == SAM_BATCH_MAX_BODY);
    sam_batch_reset(&batch);
    CHECK(sam_batch_add(&batch, (const uint8_t *)"C7", 2, NULL, 0, many, SAM_BATCH_MAX_BODY + 1) ==
          0);
    CHECK(s_batch_read(batch.data, batch.len, &d) == -1);
    /* A good item first, then the one with too many bodies: the first still comes out. */
    sam_batch_reset(&batch);
    CHECK(sam_batch_add(&batch, (const uint8_t *)"ok", 2, NULL, 0, one, 1) == 0);
    CHECK(sam_batch_add(&batch, (const uint8_t *)"C7", 2, NULL, 0, many, SAM_BATCH_MAX_BODY + 1) ==
          0);
    sam_batch_reader_init(&reader, batch.data, batch.len);
    CHECK(sam_batch_next(&reader, &d) == 1 && s_bytes_are(d.client, d.client_len, "ok"));
    CHECK(sam_batch_next(&reader, &d) == -1);
    CHECK(sam_batch_next(&reader, &d) == 0);
    sam_batch_free(&batch);

    /* Broken frames: -1, never a read past the end. Each is a copy of its own size so the
       sanitizers see any overrun. */
    static const struct {
        const uint8_t *bytes;
        size_t size;
    } bad[] = {
        {S_RAW("\x80")},                                             /* truncated key varint */
        {S_RAW("\x0a")},                                             /* item without its length */
        {S_RAW("\x0a\x80")},                                         /* truncated length varint */
        {S_RAW("\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")}, /* varint over 64 bits */
        {S_RAW("\x0a\x05\x0a\x01x")},                                /* item length past the end */
        {S_RAW("\x0a\x03\x0a\x05x")}, /* client length past the item's end */
        {S_RAW("\x0a\x02\x0a\x80")},  /* truncated varint inside the item */
        {S_RAW("\x0a\x81\x80\x80\x80\x80\x80\x80\x80\x80\x01")}, /* a length near 2^64 */
        {S_RAW("\x08\x01")},                                     /* Batch.item as a varint */
        {S_RAW("\x0d\x01\x02\x03\x04")},                         /* Batch.item as fixed32 */
        {S_RAW("\x0a\x02\x08\x01")},                             /* Item.client as a varint */
        {S_RAW("\x0a\x02\x10\x01")},                             /* Item.caller as a varint */
        {S_RAW("\x0a\x02\x18\x01")},                             /* Item.body as a varint */
        {S_RAW("\x0a\x09\x19\x01\x02\x03\x04\x05\x06\x07\x08")}, /* Item.body as fixed64 */
        {S_RAW("\x0b\x0c")},                                     /* a group (wire type 3) */
        {S_RAW("\x0a\x02\x1b\x1c")},                             /* a group inside the item */
        {S_RAW("\x0e")},                                         /* wire type 6 */
        {S_RAW("\x02\x00")},                                     /* field number 0 */
        {S_RAW("\x0a\x02\x02\x00")},                 /* field number 0 inside the item */
        {S_RAW("\x39\x01\x02\x03\x04\x05\x06\x07")}, /* an unknown fixed64 a byte short */
        {S_RAW("\x0a\x04\x3d\x01\x02\x03")}, /* an unknown fixed32 a byte short, in the item */
        {S_RAW("\x0a\x08\x41\x01\x02\x03\x04\x05\x06\x07")}, /* and an unknown fixed64 */
        {S_RAW("\x0a\x03\x4a\x02z")},         /* an unknown length a byte past the item */
        {S_RAW("\x0a\x03\x1a\x02z\x0a\x00")}, /* a body a byte past the item */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t *copy = malloc(bad[i].size);
        memcpy(copy, bad[i].bytes, bad[i].size);
        int got = s_batch_read(copy, bad[i].size, &d);
        if (got != -1) printf("     bad frame %zu read as %d items\n", i, got);
        CHECK(got == -1);
        free(copy);
    }

    /* Fields a later version may add are skipped, in the Batch and in the Item: varint,
       fixed64, length-delimited and fixed32. */
    static const uint8_t later[] = {
        0x38, 0x05,                              /* Batch field 7, varint */
        0x0a, 0x1e,                              /* item, 30 bytes: */
        0x38, 0x96, 0x01,                        /*   field 7, varint 150 */
        0x0a, 0x02, 'C',  '9',                   /*   client */
        0x41, 1,    2,    3,    4,   5, 6, 7, 8, /*   field 8, fixed64 */
        0x1a, 0x01, 'b',                         /*   body */
        0x4a, 0x02, 'z',  'z',                   /*   field 9, bytes */
        0x55, 1,    2,    3,    4,               /*   field 10, fixed32 */
        0x62, 0x00,                              /* ...field 12, empty bytes */
        0x12, 0x03, 'x',  'y',  'z',             /* Batch field 2, bytes */
        0x0a, 0x03, 0x0a, 0x01, 'D',             /* item: client only */
        0x79, 1,    2,    3,    4,   5, 6, 7, 8, /* Batch field 15, fixed64 */
    };
    sam_batch_reader_init(&reader, later, sizeof later);
    CHECK(sam_batch_next(&reader, &d) == 1);
    CHECK(s_bytes_are(d.client, d.client_len, "C9") && d.caller == NULL && d.nbody == 1 &&
          s_bytes_are(d.body[0].data, d.body[0].len, "b"));
    CHECK(sam_batch_next(&reader, &d) == 1);
    CHECK(s_bytes_are(d.client, d.client_len, "D") && d.nbody == 0);
    CHECK(sam_batch_next(&reader, &d) == 0);
    unpacked = samordna__v1__batch__unpack(NULL, sizeof later, later);
    CHECK(unpacked && unpacked->n_item == 2);
    samordna__v1__batch__free_unpacked(unpacked, NULL);

    /* The varint helper on its own. */
    size_t at = 0;
    uint64_t v = 0;
    CHECK(sam_batch_varint((const uint8_t *)"\xac\x02", 2, &at, &v) && v == 300 && at == 2);
    at = 0;
    CHECK(!sam_batch_varint((const uint8_t *)"\xac", 1, &at, &v));
    at = 0;
    CHECK(sam_batch_varint((const uint8_t *)"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10, &at,
                           &v) &&
          v == UINT64_MAX && at == 10);
    at = 0; /* eleven bytes are more than a varint has */
    CHECK(!sam_batch_varint((const uint8_t *)"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 11,
                            &at, &v));
}

/* One GET over loopback; the status line and body land in out. */
static void s_get(uint16_t port, const char *path, char *out, size_t cap)
{
    out[0] = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0) close(fd);
        return;
    }
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);
    if (write(fd, req, (size_t)n) == n) {
        size_t len = 0;
        ssize_t got;
        while (len + 1 < cap && (got = read(fd, out + len, cap - 1 - len)) > 0)
            len += (size_t)got;
        out[len] = 0;
    }
    close(fd);
}

static void s_http_test(void)
{
    CHECK(sam_metrics_selftest() == 0);
    char err[256], out[8192];
    CHECK(sam_http_new("localhost:9100", NULL, err, sizeof err) == NULL &&
          strstr(err, "HOST:PORT"));
    CHECK(sam_http_new("127.0.0.1:99999", NULL, err, sizeof err) == NULL);
    sam_metrics_t *m = sam_metrics_new("selftest_");
    sam_metric_add(sam_metrics_counter(m, "hits_total", "Hits.", NULL), NULL, 2);
    sam_http_t *h = sam_http_new("127.0.0.1:0", m, err, sizeof err);
    CHECK(h && sam_http_port(h) > 0);
    if (!h) return;
    s_get(sam_http_port(h), "/metrics", out, sizeof out);
    CHECK(strstr(out, "HTTP/1.1 200") == out && strstr(out, "\nselftest_hits_total 2\n"));
    s_get(sam_http_port(h), "/healthz", out, sizeof out);
    CHECK(strstr(out, " 200 ") && strstr(out, "\r\n\r\nok\n"));
    s_get(sam_http_port(h), "/readyz", out, sizeof out);
    CHECK(strstr(out, " 503 ") && strstr(out, "starting"));
    sam_metrics_ready(m, "store", true, NULL);
    s_get(sam_http_port(h), "/readyz", out, sizeof out);
    CHECK(strstr(out, " 200 ") && strstr(out, "store ok"));
    s_get(sam_http_port(h), "/nosuch", out, sizeof out);
    CHECK(strstr(out, " 404 "));
    sam_http_destroy(&h);
    CHECK(h == NULL);
    sam_metrics_destroy(&m);
}

/* The id, date and amount rules (sam_check.h): the one spelling every service answers. */
static void s_rules_test(void)
{
    char err[200];
    CHECK(sam_check_is_id("indre-ostfold") && sam_check_is_id("a") && !sam_check_is_id(""));
    CHECK(!sam_check_is_id(NULL) && !sam_check_is_id("Halden") && !sam_check_is_id("a_b"));
    char id[SAM_CHECK_ID_MAX + 2];
    memset(id, 'a', sizeof id - 1);
    id[sizeof id - 1] = 0;
    CHECK(!sam_check_is_id(id));
    id[SAM_CHECK_ID_MAX] = 0;
    CHECK(sam_check_is_id(id));
    CHECK(sam_check_id("pilot.id", "", false, err, sizeof err) == 0);
    CHECK(sam_check_id("pilot.id", NULL, true, err, sizeof err) == -1 &&
          strcmp(err, "pilot.id: required") == 0);
    /* the refusal names the field and shows the value escaped, never raw */
    CHECK(sam_check_id("pilot.id", "a\nb\"", true, err, sizeof err) == -1 &&
          strstr(err, "pilot.id: 'a\\nb\\\"' is not an id") == err);

    /* one leap-year rule: Gregorian */
    CHECK(sam_check_is_date("2028-02-29") && !sam_check_is_date("2027-02-29"));
    CHECK(sam_check_is_date("2000-02-29") && !sam_check_is_date("2100-02-29"));
    CHECK(!sam_check_is_date("2019-04-31") && !sam_check_is_date("2019-13-01"));
    CHECK(!sam_check_is_date("2019-1-01") && !sam_check_is_date("2019-01-01 "));
    CHECK(!sam_check_is_date("") && !sam_check_is_date(NULL) && !sam_check_is_date("0000-01-01"));
    /* one year range */
    CHECK(sam_check_is_date("1900-01-01") && sam_check_is_date("2999-12-31"));
    CHECK(!sam_check_is_date("1899-12-31") && !sam_check_is_date("3000-01-01"));
    CHECK(sam_check_date("from", "", false, err, sizeof err) == 0);
    CHECK(sam_check_date("from", "", true, err, sizeof err) == -1 &&
          strncmp(err, "from: required", 14) == 0);
    CHECK(sam_check_date("award.decided", "1850-06-01", false, err, sizeof err) == -1 &&
          strcmp(err, "award.decided: 1850-06-01 is outside the years 1900 to 2999") == 0);
    CHECK(sam_check_date("d", "2027-02-29", true, err, sizeof err) == -1 &&
          strcmp(err, "d: '2027-02-29' is not a date YYYY-MM-DD") == 0);
    CHECK(sam_check_date("d", "x\x1b[31m", true, err, sizeof err) == -1 && strstr(err, "\\x1b") &&
          !strchr(err, 0x1b));

    /* amounts: whole øre, a floor the caller names, one ceiling */
    CHECK(sam_check_amount("a", 0, 0, err, sizeof err) == 0);
    CHECK(sam_check_amount("a", SAM_CHECK_AMOUNT_MAX, 1, err, sizeof err) == 0);
    CHECK(sam_check_amount("a", SAM_CHECK_AMOUNT_MAX + 1, 0, err, sizeof err) == -1 &&
          strstr(err, "a: ") == err && strstr(err, "10^15"));
    CHECK(sam_check_amount("award.amount_ore", 0, 1, err, sizeof err) == -1 &&
          strstr(err, "award.amount_ore: 0 øre") == err && strstr(err, "more than zero"));
    CHECK(sam_check_amount("v", -5, 0, err, sizeof err) == -1 && strstr(err, "is negative"));
    CHECK(sam_check_amount("v", 5, 10, err, sizeof err) == -1 && strstr(err, "below 10"));
    /* and shown the Norwegian way */
    CHECK(strcmp(sam_check_format_ore(150000000, err, sizeof err), "1 500 000") == 0);
    CHECK(strcmp(sam_check_format_ore(-1250, err, sizeof err), "-12,50") == 0);
    CHECK(strcmp(sam_check_format_ore(INT64_MIN, err, sizeof err), "-92 233 720 368 547 758,08") ==
          0);
}

/* The Norwegian working calendar against the almanac: Easter 2019 was 21 April, 2020
   12 April, 2024 31 March. */
static void s_calendar_test(void)
{
    CHECK(sam_calendar_weekday(2019, 11, 11) == 1); /* a Monday */
    CHECK(sam_calendar_weekday(2000, 1, 1) == 6);
    CHECK(sam_calendar_weekday(1970, 1, 1) == 4);
    CHECK(strcmp(sam_calendar_holiday(2019, 4, 21), "1. påskedag") == 0);
    CHECK(strcmp(sam_calendar_holiday(2019, 4, 18), "skjærtorsdag") == 0);
    CHECK(strcmp(sam_calendar_holiday(2019, 4, 19), "langfredag") == 0);
    CHECK(strcmp(sam_calendar_holiday(2019, 4, 22), "2. påskedag") == 0);
    CHECK(strcmp(sam_calendar_holiday(2019, 5, 30), "Kristi himmelfartsdag") == 0);
    CHECK(strcmp(sam_calendar_holiday(2019, 6, 10), "2. pinsedag") == 0);
    CHECK(strcmp(sam_calendar_holiday(2024, 3, 28), "skjærtorsdag") == 0);
    CHECK(strcmp(sam_calendar_holiday(2020, 6, 1), "2. pinsedag") == 0);
    CHECK(strcmp(sam_calendar_holiday(2019, 5, 17), "17. mai") == 0);
    CHECK(strcmp(sam_calendar_holiday(2019, 12, 26), "2. juledag") == 0);
    CHECK(sam_calendar_holiday(2019, 4, 17) == NULL);
    CHECK(sam_calendar_holiday(2019, 12, 24) == NULL); /* julaften is not a public holiday */
    CHECK(sam_calendar_working_day("2019-11-11"));
    CHECK(!sam_calendar_working_day("2019-11-10")); /* a Sunday */
    CHECK(!sam_calendar_working_day("2019-05-17"));
    CHECK(!sam_calendar_working_day("2019-02-30"));
    char out[11];
    sam_calendar_working_date("2019-11-11", out);
    CHECK(strcmp(out, "2019-11-11") == 0);
    sam_calendar_working_date("2019-12-25", out); /* 1. and 2. juledag: on to Friday */
    CHECK(strcmp(out, "2019-12-27") == 0);
    sam_calendar_working_date("2019-11-30", out); /* the month's last day, a Saturday: back */
    CHECK(strcmp(out, "2019-11-29") == 0);
    sam_calendar_working_date("2020-05-31", out); /* Sunday, then 2. pinsedag in June */
    CHECK(strcmp(out, "2020-05-29") == 0);
    sam_calendar_working_date("nonsense", out);
    CHECK(strcmp(out, "nonsense") == 0);
}

/* The readers' words: one language an output, Norwegian unless English is asked for. */
static void s_words_test(void)
{
    sam_lang_t l = SAM_LANG_EN;
    CHECK(sam_lang_parse("", &l) == 0 && l == SAM_LANG_NB);
    CHECK(sam_lang_parse("en-GB", &l) == 0 && l == SAM_LANG_EN);
    CHECK(sam_lang_parse("nb_NO", &l) == 0 && l == SAM_LANG_NB);
    CHECK(sam_lang_parse("de", &l) == -1 && l == SAM_LANG_NB);
    char w[64];
    CHECK(strcmp(sam_word(SAM_LANG_NB, "meeting", "working", w, sizeof w), "arbeidsmøte") == 0);
    CHECK(strcmp(sam_word_cap(SAM_LANG_NB, "meeting", "working", w, sizeof w), "Arbeidsmøte") == 0);
    CHECK(strcmp(sam_word(SAM_LANG_EN, "barrier", "raised_nationally", w, sizeof w),
                 "raised nationally") == 0);
    CHECK(strcmp(sam_word(SAM_LANG_NB, "barrier", "raised_nationally", w, sizeof w),
                 "løftet nasjonalt") == 0);
    CHECK(strcmp(sam_word(SAM_LANG_NB, "meeting", "some_new_kind", w, sizeof w), "some new kind") ==
          0);
    CHECK(strcmp(sam_word_cap(SAM_LANG_NB, "x", "øvelse", w, sizeof w), "Øvelse") == 0);
    CHECK(strcmp(sam_words_date(SAM_LANG_NB, "2019-11-11", w, sizeof w), "11. november 2019") == 0);
    CHECK(strcmp(sam_words_date(SAM_LANG_EN, "2019-03-01", w, sizeof w), "1 March 2019") == 0);
    CHECK(strcmp(sam_words_date(SAM_LANG_NB, "not a date", w, sizeof w), "not a date") == 0);
    CHECK(strcmp(sam_words_nok(SAM_LANG_NB, 150000000, w, sizeof w), "1\xC2\xA0"
                                                                     "500\xC2\xA0"
                                                                     "000\xC2\xA0kr") == 0);
    CHECK(strcmp(sam_words_nok(SAM_LANG_NB, 20000050, w, sizeof w), "200\xC2\xA0"
                                                                    "000,50\xC2\xA0kr") == 0);
    CHECK(strcmp(sam_words_nok(SAM_LANG_EN, 150000000, w, sizeof w), "NOK 1,500,000") == 0);
    CHECK(strcmp(sam_words_nok(SAM_LANG_EN, -5, w, sizeof w), "-NOK 0.05") == 0);
    CHECK(strcmp(sam_words_nok(SAM_LANG_NB, 99900, w, sizeof w), "999\xC2\xA0kr") == 0);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "selftest-data";
    zsys_dir_create("%s", dir);
    CHECK(strcmp(sam_status_name(SAM_NOT_FOUND), "not found") == 0);
    CHECK(strcmp(sam_status_name(999), "error") == 0);
    s_config_test(dir);
    s_store_test(dir);
    s_batch_test();
    s_http_test();
    s_rules_test();
    s_calendar_test();
    s_words_test();
    char keys[1024];
    snprintf(keys, sizeof keys, "%s/keys-%d", dir, (int)getpid());
    CHECK(sam_keys_selftest(keys, false) == 0);
    CHECK(sam_follow_selftest(dir) == 0);
    CHECK(sam_lease_selftest(dir) == 0);
    snprintf(keys, sizeof keys, "%s/jwt-%d", dir, (int)getpid());
    CHECK(sam_jwt_selftest(keys, getenv("SAM_SELFTEST_VERBOSE") != NULL) == 0);
    CHECK(sam_auth_selftest(keys, getenv("SAM_SELFTEST_VERBOSE") != NULL) == 0);
    return sam_testkit_done("sam_common_selftest");
}
