/*  sam_broker.h — the samordna broker: ZeroMQ RFC 7/MDP 0.1 with 8/MMI and samordna's
    negotiated worker extensions (credit, caller identity). docs/protocol.md describes the
    wire; sam_broker.c explains the design.

    Usage (what broker_main.c does):
        sam_broker_config_t cfg = SAM_BROKER_CONFIG_DEFAULTS;
        cfg.binds = endpoints; cfg.nbinds = n; cfg.insecure = true;
        sam_broker_t *broker = sam_broker_new(&cfg);
        if (broker) rc = sam_broker_run(broker, NULL);   // until SIGINT/SIGTERM
        sam_broker_destroy(&broker);
*/
#ifndef SAM_BROKER_H
#define SAM_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sam_metrics.h"

typedef struct {
    const char *const *binds; /* endpoints to bind, borrowed for the call to sam_broker_new */
    size_t nbinds;
    bool insecure;          /* no authentication; only loopback endpoints are accepted */
    const char *curve_dir;  /* CURVE: folder of trusted public certificates (borrowed) */
    const char *cert;       /* CURVE: the broker's own secret certificate file (borrowed) */
    int heartbeat_ms;       /* interval of HEARTBEAT to workers */
    int liveness;           /* missed heartbeats before a silent worker is purged */
    int request_timeout_ms; /* how long a request waits while its service has no worker */
    size_t queue_max;       /* queued requests per service; more are refused with 429 */
    size_t max_msg;         /* largest message (sum of frames) in bytes; more gets 413 */
    sam_metrics_t *metrics; /* where its counters and gauges go (borrowed), or NULL */
} sam_broker_config_t;

#define SAM_BROKER_CONFIG_DEFAULTS                                                                 \
    {                                                                                              \
        NULL, 0, false, NULL, NULL, 2500, 3, 5000, 10000, 1048576, NULL                            \
    }

typedef struct sam_broker_t sam_broker_t;

/*  Checks the configuration, creates the ROUTER socket and binds every endpoint. Returns
    NULL with an error line on stderr when the configuration is refused (neither --insecure
    nor a usable --curve-dir and --cert, --insecure on a non-loopback endpoint, bad numbers)
    or an endpoint cannot be bound. With CURVE the broker starts CZMQ's zauth over curve_dir
    and checks every request against that folder, reloaded within about a second. */
sam_broker_t *sam_broker_new(const sam_broker_config_t *config);

/*  Sends DISCONNECT to every known worker, logs the counters, closes the socket and frees
    everything. Accepts NULL; sets *self_p to NULL. */
void sam_broker_destroy(sam_broker_t **self_p);

/*  Routes messages until SIGINT or SIGTERM (CZMQ's zsys_interrupted). Returns 0 on a clean
    stop, -1 when the socket failed. Tells systemd READY=1 once it routes and STOPPING=1 when
    it stops (sd_notify; nothing when not run by systemd). SIGHUP reloads the trusted keys at
    once and calls `on_reload` (may be NULL: the program's own settings, e.g. its log level
    from its configuration file), then logs what it did. */
int sam_broker_run(sam_broker_t *self, void (*on_reload)(void));

/*  True when `endpoint` can only be reached from this host: tcp:// on 127.0.0.0/8, [::1] or
    localhost, and every ipc:// and inproc:// endpoint. */
bool sam_broker_endpoint_is_loopback(const char *endpoint);

/* What a worker asked for in its READY extension frame. */
typedef struct {
    uint32_t credit;   /* requests in flight at once, 1..SAM_MDP_MAX_CREDIT */
    bool identity;     /* a Caller with every request */
    bool batch;        /* requests and replies as one Batch frame */
    char instance[64]; /* instance=NAME: how the worker calls itself ("" when not said) */
    char version[32];  /* version=V: the program's version ("" when not said) */
    uint64_t epoch;    /* epoch=N: the leadership epoch it serves (0 when not said) */
    bool standby;      /* standby: it follows a primary; it takes no writes */
} sam_broker_ext_t;

/*  Parses a READY extension frame ("x-samordna/1 credit=N identity batch instance=NAME
    version=V epoch=N standby", tokens in any order, unknown ones ignored; a name or version
    of other characters than letters, digits and . _ - : + is ignored too, and so is an epoch
    that is not decimal digits only or does not fit in 64 bits). Returns false when the frame
    is not a samordna extension; else fills *ext (credit clamped to 1..SAM_MDP_MAX_CREDIT, 1
    when absent; epoch 0 when absent or ignored). */
bool sam_broker_parse_extension(const uint8_t *data, size_t size, sam_broker_ext_t *ext);

/*  Field 1 (a varint) of a packed protobuf message, found by walking its top-level fields
    without decoding anything else: the `id` of a samordna.v1.Request or Reply. Returns 0
    when the field is absent or the bytes are not a well-formed protobuf message. */
uint64_t sam_broker_peek_id(const uint8_t *data, size_t size);

/*  The same, and field 4 (`timeout_ms`, how long the caller waits; 0 when absent) into
 *timeout_ms. */
uint64_t sam_broker_peek_request(const uint8_t *data, size_t size, uint32_t *timeout_ms);

/*  The same, and field 5 (`on_behalf`, the caller a gateway presents): *on_behalf points at
    its bytes inside data (*len of them), or is NULL when the body has none or is not a
    samordna.v1.Request. */
uint64_t sam_broker_peek_on_behalf(const uint8_t *data, size_t size, uint32_t *timeout_ms,
                                   const uint8_t **on_behalf, size_t *len);

/*  What the broker reads of a request body for routing, without decoding it. All of it is
    zero (pointers NULL) unless the body is a samordna.v1.Request and nothing else, with a
    non-zero id: a plain 7/MDP client's own bytes are never taken for one. The pointers
    point into the body and live as long as it. */
typedef struct {
    uint64_t id;              /* field 1 (set even when the rest is not read: see above) */
    uint32_t timeout_ms;      /* field 4: how long the caller waits, 0 when absent */
    const uint8_t *on_behalf; /* field 5: the packed OnBehalf, or NULL */
    size_t on_behalf_len;     /* its bytes */
    bool write;               /* method (field 2) "events.publish", or primary (field 6) */
    const uint8_t *instance;  /* field 7: the one instance to route to, or NULL */
    size_t instance_len;      /* its bytes (never 0 when instance is set) */
} sam_broker_peek_t;

/*  Fills *out from a packed request body (see sam_broker_peek_t); returns out->id, 0 when
    the bytes are not a well-formed protobuf message. */
uint64_t sam_broker_peek(const uint8_t *data, size_t size, sam_broker_peek_t *out);

/*  Handles one message as if it had arrived on the socket (fuzzers, see fuzz/): frames[0]
    is the peer's routing id, the rest what the peer sent. The frames are copied; they carry
    no connection metadata, so with CURVE every such peer is untrusted. Replies go to the
    socket as usual (to peers that do not exist, they are dropped). Runs the timers when due. */
void sam_broker_feed(sam_broker_t *self, const uint8_t *const *frames, const size_t *sizes,
                     int count);

/*  Runs the class's self-test; returns 0 when all checks pass. */
int sam_broker_selftest(bool verbose);

#endif
