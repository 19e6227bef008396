/*  broker_bench.c — sam_broker_bench: pipelined throughput through a running broker.

    One client thread keeps --window requests of --size bytes outstanding; --workers worker
    threads declare --credit with the samordna extension and echo every body back. Both
    sides use libzmq directly and move frames without copying, so the figure measures the
    broker, not the load generator. Each request's body is its own: its number in the first
    8 bytes, then bytes that follow from the number; each reply must be a client reply of
    service "bench" whose body is that of a request sent and not yet answered, byte for byte
    (a reply that is short, altered, another request's, or a second one counts as bad).
    Prints requests per second and exits non-zero when fewer than --min-rate were reached or
    a reply was missing or wrong.
*/
#include "sam_config.h"
#include "sam_log.h"
#include "sam_mdp.h"

#include <czmq.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    void *ctx; /* the process's libzmq context */
    const char *endpoint;
    int credit;
    volatile int *stop;
} s_worker_args_t;

static void *s_worker(void *arg)
{
    s_worker_args_t *args = arg;
    void *sock = zmq_socket(args->ctx, ZMQ_DEALER);
    int linger = 0, timeout = 100, hwm = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_connect(sock, args->endpoint);
    char ext[64];
    snprintf(ext, sizeof ext, "%s credit=%d", SAM_MDP_EXT_PREFIX, args->credit);
    zmq_send(sock, "", 0, ZMQ_SNDMORE);
    zmq_send(sock, SAM_MDPW, 6, ZMQ_SNDMORE);
    zmq_send(sock, "\x01", 1, ZMQ_SNDMORE);
    zmq_send(sock, "bench", 5, ZMQ_SNDMORE);
    zmq_send(sock, ext, strlen(ext), 0);
    zmq_msg_t part[8];
    while (!*args->stop) {
        int n = 0, more = 1;
        while (more && n < 8) {
            zmq_msg_init(&part[n]);
            if (zmq_msg_recv(&part[n], sock, 0) == -1) break;
            more = zmq_msg_more(&part[n]);
            n++;
        }
        if (more) { /* timeout or an oversized message: drop what we have */
            for (int i = 0; i <= n && i < 8; i++)
                zmq_msg_close(&part[i]);
            continue;
        }
        /* "" MDPW01 0x02 client "" body  ->  "" MDPW01 0x03 client "" body */
        if (n == 6 && zmq_msg_size(&part[2]) == 1 &&
            ((uint8_t *)zmq_msg_data(&part[2]))[0] == SAM_MDPW_REQUEST) {
            ((uint8_t *)zmq_msg_data(&part[2]))[0] = SAM_MDPW_REPLY;
            for (int i = 0; i < 6; i++)
                zmq_msg_send(&part[i], sock, i < 5 ? ZMQ_SNDMORE : 0);
        } else {
            for (int i = 0; i < n; i++)
                zmq_msg_close(&part[i]);
        }
    }
    zmq_send(sock, "", 0, ZMQ_SNDMORE); /* a polite worker says goodbye */
    zmq_send(sock, SAM_MDPW, 6, ZMQ_SNDMORE);
    zmq_send(sock, "\x05", 1, 0);
    zmq_close(sock);
    return NULL;
}

/* The body of request `n`: n (8 bytes, little-endian), then a pattern that depends on n. */
static void s_body(uint8_t *body, long size, uint64_t n)
{
    for (int i = 0; i < 8; i++)
        body[i] = (uint8_t)(n >> (8 * i));
    for (long i = 8; i < size; i++)
        body[i] = (uint8_t)(n * 131 + (uint64_t)i * 7);
}

/* True when `data` is the body of a request below `sent` that has not been answered yet;
   marks it answered. */
static bool s_reply_ok(const uint8_t *data, size_t len, long size, long sent, uint8_t *answered,
                       uint8_t *expect)
{
    if (len != (size_t)size) return false;
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n |= (uint64_t)data[i] << (8 * i);
    if (n >= (uint64_t)sent || answered[n / 8] & (1u << (n % 8))) return false;
    s_body(expect, size, n);
    if (memcmp(data, expect, (size_t)size) != 0) return false;
    answered[n / 8] |= (uint8_t)(1u << (n % 8));
    return true;
}

static const sam_option_t s_options[] = {
    {"broker", "ENDPOINT", "tcp://127.0.0.1:5555", "broker to measure", false},
    {"requests", "N", "500000", "requests to send", false},
    {"window", "N", "2000", "requests kept outstanding", false},
    {"size", "BYTES", "200", "body size (at least 8)", false},
    {"workers", "N", "1", "worker threads", false},
    {"credit", "N", "200", "credit each worker declares", false},
    {"min-rate", "N", "0", "fail below this many requests per second", false},
    {NULL, NULL, NULL, NULL, false},
};

int main(int argc, char **argv)
{
    sam_config_t *config =
        sam_config_new("sam_broker_bench", "[options]",
                       "Pipelined request throughput through a broker.", s_options);
    int rc = config ? sam_config_parse(config, argc, argv) : -1;
    if (rc != 0) {
        sam_config_destroy(&config);
        return rc > 0 ? 0 : 2;
    }
    bool ok = true;
    const char *endpoint = sam_config_get(config, "broker");
    long requests = sam_config_int(config, "requests", 1, 100000000, &ok);
    long window = sam_config_int(config, "window", 1, 1000000, &ok);
    long size = sam_config_int(config, "size", 8, 1 << 20, &ok);
    long nworkers = sam_config_int(config, "workers", 1, 64, &ok);
    long credit = sam_config_int(config, "credit", 1, SAM_MDP_MAX_CREDIT, &ok);
    long min_rate = sam_config_int(config, "min-rate", 0, 100000000, &ok);
    if (!ok) {
        sam_config_destroy(&config);
        return 2;
    }

    uint8_t *body = malloc((size_t)size), *expect = malloc((size_t)size);
    uint8_t *answered = calloc((size_t)requests / 8 + 1, 1);
    if (!body || !expect || !answered) {
        fprintf(stderr, "sam_broker_bench: out of memory\n");
        free(body);
        free(expect);
        free(answered);
        sam_config_destroy(&config);
        return 2;
    }

    void *ctx = zsys_init();
    volatile int stop = 0;
    s_worker_args_t args = {ctx, endpoint, (int)credit, &stop};
    pthread_t threads[64];
    for (long i = 0; i < nworkers; i++)
        pthread_create(&threads[i], NULL, s_worker, &args);

    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, timeout = 5000, hwm = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_connect(sock, endpoint);

    /* Wait until the workers are registered: mmi.service answers 200. */
    char answer[16] = "";
    for (int tries = 0; tries < 100 && strcmp(answer, "200") != 0; tries++) {
        zclock_sleep(50);
        zmq_send(sock, "", 0, ZMQ_SNDMORE);
        zmq_send(sock, SAM_MDPC, 6, ZMQ_SNDMORE);
        zmq_send(sock, "mmi.service", 11, ZMQ_SNDMORE);
        zmq_send(sock, "bench", 5, 0);
        char frame[16];
        int more = 1;
        for (int part = 0; more; part++) {
            int n = zmq_recv(sock, frame, sizeof frame - 1, 0);
            if (n < 0) break;
            frame[n < 15 ? n : 15] = '\0';
            if (part == 3) snprintf(answer, sizeof answer, "%s", frame);
            size_t len = sizeof more;
            zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &len);
        }
    }
    zclock_sleep(100); /* the other workers' READYs */

    long sent = 0, received = 0, bad = 0;
    int64_t start = zclock_usecs();
    while (received < requests) {
        while (sent < requests && sent - received < window) {
            s_body(body, size, (uint64_t)sent);
            zmq_send(sock, "", 0, ZMQ_SNDMORE);
            zmq_send(sock, SAM_MDPC, 6, ZMQ_SNDMORE);
            zmq_send(sock, "bench", 5, ZMQ_SNDMORE);
            zmq_send(sock, body, (size_t)size, 0);
            sent++;
        }
        /* "" "MDPC01" "bench" body */
        zmq_msg_t msg;
        int parts = 0, more = 1, ok_reply = 1;
        while (more) {
            zmq_msg_init(&msg);
            if (zmq_msg_recv(&msg, sock, 0) == -1) {
                zmq_msg_close(&msg);
                fprintf(stderr, "sam_broker_bench: no reply within 5 s after %ld of %ld\n",
                        received, requests);
                goto done;
            }
            more = zmq_msg_more(&msg);
            const uint8_t *data = zmq_msg_data(&msg);
            size_t len = zmq_msg_size(&msg);
            if (parts == 0)
                ok_reply &= len == 0;
            else if (parts == 1)
                ok_reply &= len == 6 && memcmp(data, SAM_MDPC, 6) == 0;
            else if (parts == 2)
                ok_reply &= len == 5 && memcmp(data, "bench", 5) == 0;
            else if (parts == 3)
                ok_reply &= s_reply_ok(data, len, size, sent, answered, expect);
            zmq_msg_close(&msg);
            parts++;
        }
        if (parts != 4 || !ok_reply) bad++;
        received++;
    }
done:;
    double seconds = (double)(zclock_usecs() - start) / 1e6;
    double rate = received / (seconds > 0 ? seconds : 1e-9);
    printf("requests=%ld replies=%ld bad=%ld seconds=%.3f rate=%.0f/s size=%ld window=%ld "
           "workers=%ld credit=%ld\n",
           sent, received, bad, seconds, rate, size, window, nworkers, credit);
    stop = 1;
    for (long i = 0; i < nworkers; i++)
        pthread_join(threads[i], NULL);
    zmq_close(sock);
    free(body);
    free(expect);
    free(answered);
    sam_config_destroy(&config);
    return (received == requests && bad == 0 && rate >= (double)min_rate) ? 0 : 1;
}
