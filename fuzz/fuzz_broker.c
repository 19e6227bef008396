/*  fuzz_broker — the broker's handling of whatever a peer can send.

    Input: messages, each a count byte (frames, up to 70: more than the broker keeps) and
    that many frames (fuzz_input.h); the first frame of each is the peer's routing id.
    Messages of one input go to one broker in order, so READY, requests and replies can
    meet; a fresh broker every 256 inputs keeps its tables from growing without end. The
    READY extension parser, the routing peek and the Batch reader get the raw input too.
*/
#include "fuzz_input.h"
#include "sam_batch.h"
#include "sam_broker.h"
#include "sam_log.h"

#include <czmq.h>
#include <stdio.h>

#define S_FRAMES_MAX 70

static sam_broker_t *s_broker;
static unsigned s_inputs;

static void s_new_broker(void)
{
    sam_broker_destroy(&s_broker);
    /* A closed inproc endpoint is released asynchronously: a fresh name each time. */
    static unsigned generation;
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "inproc://fuzz-broker-%u", generation++);
    const char *binds[] = {endpoint};
    sam_broker_config_t cfg = SAM_BROKER_CONFIG_DEFAULTS;
    cfg.binds = binds;
    cfg.nbinds = 1;
    cfg.insecure = true;
    cfg.queue_max = 64;
    cfg.max_msg = 4096;
    cfg.request_timeout_ms = 0;
    s_broker = sam_broker_new(&cfg);
    if (!s_broker) abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    zsys_init();
    zsys_set_linger(0);
    sam_log_init("broker", SAM_LOG_ERROR);
    s_new_broker();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sam_broker_ext_t ext;
    sam_broker_parse_extension(data, size, &ext);
    sam_broker_peek_t peek;
    sam_broker_peek(data, size, &peek);
    if (peek.instance && (peek.instance < data || peek.instance_len == 0 ||
                          peek.instance_len > size - (size_t)(peek.instance - data)))
        abort(); /* the instance must lie inside the body */
    if (peek.on_behalf && peek.on_behalf_len > size - (size_t)(peek.on_behalf - data)) abort();
    sam_batch_reader_t reader;
    sam_delivery_t item;
    sam_batch_reader_init(&reader, data, size);
    while (sam_batch_next(&reader, &item) > 0)
        if (item.bytes > size || item.client_len > size || item.caller_len > size) abort();

    if (++s_inputs % 256 == 0) s_new_broker();
    fuzz_input_t in = {data, size, 0};
    while (fuzz_left(&in) > 0) {
        int count = fuzz_byte(&in) % (S_FRAMES_MAX + 1);
        const uint8_t *frames[S_FRAMES_MAX];
        size_t sizes[S_FRAMES_MAX];
        for (int i = 0; i < count; i++)
            frames[i] = fuzz_frame(&in, &sizes[i]);
        sam_broker_feed(s_broker, frames, sizes, count);
    }
    return 0;
}
