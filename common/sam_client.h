/*  sam_client.h — the C client of samordna (libsamordna): 7/MDP client to one or more
    brokers, samordna.v1.Request/Reply envelopes, synchronous calls and pipelined ones (many
    requests in flight, matched by id).

    Several brokers: the client heartbeats each one (8/MMI "mmi.heartbeat", docs/protocol.md)
    while a call, a send or a recv runs, and a broker whose connection is gone or whose
    heartbeat stays unanswered for heartbeat_ms × liveness (default 100 ms × 5) is left:
    new requests go to the others, and requests in flight to it are sent again, with their
    id, to a live one — every pipelined request (samordna's methods are idempotent) and every
    call marked idempotent; a call that is not is answered 503 at once. A broker that answers
    again is used again. With one broker nothing of this runs.

    Retries: sam_client_call() resends on timeout only when the caller says the request is
    idempotent (every query, and every events.publish — the service answers a retry of
    a stored (source, id) with the original result). A retry reuses the request id.
*/
#ifndef SAM_CLIENT_H
#define SAM_CLIENT_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

typedef struct sam_client_t sam_client_t;

typedef struct {
    const char *curve_dir;   /* unused; kept so existing initialisers stay valid */
    const char *client_cert; /* CURVE: path to this client's secret certificate */
    const char *server_key;  /* CURVE: the broker's public key (Z85) or a certificate file */
    size_t max_pending;      /* pipelining window for sam_client_send; 0 → 1000 */
    int heartbeat_ms;        /* several brokers: heartbeat interval; 0 → 100 */
    int liveness;            /* several brokers: unanswered intervals until a broker is left;
                                0 → 5 */
    bool fail_fast;          /* sam_client_send fails at once (returns 0) instead of queueing or
                                blocking while no broker takes it (no connection, a full queue):
                                for a caller that must never wait */
} sam_client_opts_t;

/* The outcome of one call. sam_result_clear() frees body. */
typedef struct {
    uint64_t id;
    uint32_t code; /* samordna.v1.Status code; SAM_TIMEOUT when no reply came */
    char message[512];
    uint8_t *body; /* packed reply message, malloc'd, or NULL */
    size_t body_len;
} sam_result_t;

void sam_result_clear(sam_result_t *r);

/*  Connects to the brokers (endpoints borrowed for the call). Returns NULL with a message
    in err when an endpoint or certificate is unusable. opts may be NULL, or have neither
    client_cert nor server_key: no CURVE (an --insecure broker). Both set: CURVE. */
sam_client_t *sam_client_new(const char *const *brokers, size_t n, const sam_client_opts_t *opts,
                             char *err, size_t errlen);
void sam_client_destroy(sam_client_t **self_p);

/*  Asks the broker itself (8/MMI; docs/protocol.md): "" "MDPC01" name body, and waits up to
    timeout_ms for the answer to that name, which is a plain string: returned malloc'd (the
    caller frees), or NULL on timeout. Meant for a client of one broker (samctl status makes
    one per broker); replies to other requests that arrive meanwhile are dropped. */
char *sam_client_mmi(sam_client_t *self, const char *name, const char *body, int timeout_ms);

/*  Sends one request and waits for its reply. `req` may be NULL (empty body). On status 200
    and reply_desc non-NULL, *reply_out is the unpacked reply (free with
    protobuf_c_message_free_unpacked). Resends up to `retries` times on timeout when
    idempotent. Returns the status code; result->message says why on errors. */
uint32_t sam_client_call(sam_client_t *self, const char *service, const char *method,
                         const ProtobufCMessage *req, const ProtobufCMessageDescriptor *reply_desc,
                         ProtobufCMessage **reply_out, int timeout_ms, bool idempotent,
                         sam_result_t *result);

/*  Who a gateway speaks for (Request.on_behalf, docs/security.md "The trust chain"): the
    agency and role it verified. The broker passes them to the service as the Caller (with
    via "gateway") only from a connection whose certificate has role gateway; from any other
    it refuses the request 403. Borrowed for the call (a resend to another broker keeps a
    copy). */
typedef struct {
    const char *agency; /* an agency id */
    const char *role;   /* admin, publisher or reader */
} sam_caller_as_t;

/*  sam_client_call on behalf of `as` (NULL: the connection's own identity). */
uint32_t sam_client_call_as(sam_client_t *self, const char *service, const char *method,
                            const ProtobufCMessage *req,
                            const ProtobufCMessageDescriptor *reply_desc,
                            ProtobufCMessage **reply_out, int timeout_ms, bool idempotent,
                            const sam_caller_as_t *as, sam_result_t *result);

/*  Pipelined: sends a request with a packed body and returns its id (never 0), or 0 when
    the message could not be sent. With several brokers and none reachable it waits in the
    client for one, up to its deadline (sam_client_set_deadline, else 5 s), then recv hands
    out a 503 for it. */
uint64_t sam_client_send(sam_client_t *self, const char *service, const char *method,
                         const uint8_t *body, size_t len);

/*  sam_client_send on behalf of `as` (NULL: as sam_client_send). */
uint64_t sam_client_send_as(sam_client_t *self, const char *service, const char *method,
                            const uint8_t *body, size_t len, const sam_caller_as_t *as);

/*  The first broker's ZeroMQ socket (a libzmq void *). Borrowed; lives as long as the
    client. A loop that polls the client beside other descriptors uses
    sam_client_pollitems instead, which also covers several brokers. */
void *sam_client_handle(sam_client_t *self);

/*  The client's sockets to poll (ZMQ_POLLIN) beside other descriptors: one per broker and,
    with several brokers, the watches of their connections. Fills at most cap items (their
    socket and events; the caller may add its own after them) and returns how many. When any
    is readable, read with sam_client_recv(self, 0, …) until it returns -1. With several
    brokers, call sam_client_recv at least every sam_client_poll_ms(self) ms even when
    nothing is readable: the heartbeats go out from there. */
size_t sam_client_pollitems(sam_client_t *self, zmq_pollitem_t *items, size_t cap);

/*  How often a polling loop must turn (see above): the heartbeat interval with several
    brokers, -1 with one (no need). */
int sam_client_poll_ms(const sam_client_t *self);

/*  How long pipelined requests (sam_client_send) say their caller waits: the broker drops
    one still queued after that rather than dispatch work nobody waits for. 0 (the default):
    the broker's own --request-timeout-ms. sam_client_call always sends its timeout_ms. */
void sam_client_set_deadline(sam_client_t *self, int timeout_ms);

/*  Where the broker sends this client's requests from now on (Request.primary, .instance;
    docs/protocol.md, "Primaries and standbys"): `primary` only to the service's primary of
    the highest epoch (a standby following its primary), `instance` (NULL or "": any) only
    to the instance of that name (samctl promote, samctl --instance). Copied; it holds for
    the requests sent after the call, their resends to another broker included. */
void sam_client_set_route(sam_client_t *self, bool primary, const char *instance);

/*  Receives the next reply (any id) within timeout_ms. Returns 0 with *out filled, or -1 on
    timeout (out->code = SAM_TIMEOUT). */
int sam_client_recv(sam_client_t *self, int timeout_ms, sam_result_t *out);

#endif
