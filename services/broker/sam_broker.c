/*  sam_broker.c — the samordna broker.

    One ROUTER socket carries both sides of ZeroMQ RFC 7/MDP 0.1: clients speak "MDPC01",
    workers speak "MDPW01", and the header frame after the optional empty delimiter tells
    them apart. The broker owns no data; it keeps three kinds of state, all in this file:

    - services (a hash by name): the workers that offer a service, a FIFO list of those
      with spare credit (least recently used first), rings of queued requests (for any
      worker, writes for the primary, requests for one instance), and the epoch of its
      primary (see "Primaries and standbys" below);
    - workers (a hash by the hex of their routing id): the service they offer, their
      credit, and one slot per request in flight (the client's address, whether it used an
      empty delimiter, and the request id) so a lost worker's clients get an answer;
    - counters and timers.

    A request is never decoded on the way through. The broker only peeks at field 1 of the
    body (the Request id) with a few varint reads, so that an error it invents later can
    carry the id the client is waiting for; a REPLY is matched to its slot the same way.
    The same walk finds what routing needs: the caller's deadline, whether the request is
    a write (its method is events.publish, or it asks for the primary) and the instance it
    names (sam_broker_peek).
    The error paths (413, 429, 503) are rare and may unpack with protobuf-c.

    Credit is samordna's negotiated extension to 7/MDP (see sam_mdp.h): a worker may declare
    in READY how many requests it takes at once and whether it wants the caller's identity.
    A worker that also asks for `batch` gets its requests, and sends its replies, as one
    Batch frame holding many (sam_batch.h): requests dispatched during one pass over the
    socket are gathered per worker and sent when the pass ends, so a busy worker costs a
    few frames per pass instead of seven per request.
    A worker that says nothing is a plain 7/MDP worker: credit 1, no extra frames. Every
    dispatch goes to the head of the service's list of workers with spare credit and then
    moves that worker to the tail, so work spreads over all of them.

    The socket is ROUTER_MANDATORY with a send timeout of zero: a reply to a client that is
    gone or is not reading fails at once and is logged, instead of blocking the broker or
    vanishing. Receives also use a zero timeout so one poll drains a batch of messages.

    The hot path works on libzmq frames (zmq_msg_t) directly: a request's routing id and
    body frames are moved from the receive buffer to the worker (or into the queue) and
    never copied; the small fixed frames are sent from constants. CZMQ provides the socket,
    the hash tables and the signal handling. This keeps the broker at a few microseconds of
    CPU per request; a zmsg_t per message costs several allocations per frame.

    Authentication is CURVE with a ZAP handler (CZMQ's zauth) over a directory of trusted
    public certificates (--curve-dir): a peer whose key is not there never completes the
    handshake, and a NULL or PLAIN peer cannot talk to a CURVE server socket at all. The
    broker also keeps its own table of that directory (sam_keyring_t), reloaded every
    second when the directory changed: every request is checked against it, so removing a
    certificate revokes its key for connections that are already open too, and workers
    whose key was removed are disconnected. The caller's identity (agency and role from the
    certificate's metadata, its public key from the connection's ZAP User-Id) travels to
    workers that negotiated it; only certificates of role "service" may register as workers.

    Nothing that arrives from the network is trusted: every frame count and size is checked
    before use; bad traffic is counted, logged at warn with the peer's id and dropped.
*/
#include "sam_broker.h"
#include "sam_batch.h"
#include "sam_check.h"
#include "sam_keys.h"
#include "sam_log.h"
#include "sam_mdp.h"
#include "sam_status.h"
#include "sam_testkit.h"
#include "samordna/v1/envelope.pb-c.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <inttypes.h>
#include <czmq.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <malloc.h>
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#define S_ADDR_MAX 255                 /* a ZeroMQ routing id is 1..255 bytes */
#define S_HEX_MAX (2 * S_ADDR_MAX + 1) /* its hex form with the terminating NUL */
#define S_SERVICE_MAX 255              /* longest service name we accept */
#define S_DRAIN_MAX 1000               /* messages handled per poll before timers run */
#define S_TICK_MS 50                   /* how often queue expiry is checked */
#define S_STATS_MS 60000               /* how often counters are logged */
#define S_HWM 10000                    /* per-peer message queue limit of the socket */
#define S_MAXMSG_SLACK 65536           /* ZMQ_MAXMSGSIZE is this much above --max-msg */
#define S_LINGER_MS 500                /* time to flush DISCONNECTs at shutdown */
#define S_PARTS_MAX 64                 /* frames in one message; more is malformed */
#define S_SLOTS_FIRST 8                /* in-flight slots a worker starts with */
#define S_KEYS_MS 1000                 /* how often the certificate directory is checked */
#define S_KEYS_FULL_MS 30000           /* and reloaded even when it looks unchanged */
#define S_KEYS_RETRY_MS 100            /* an unknown key re-reads the folder this often at most */
#define S_CALLER_MAX 512               /* largest packed Caller frame */
#define S_BATCH_BYTES (32 * 1024)      /* a Batch to a worker is sent once it holds this much */
#define S_ZAP_DOMAIN "samordna"
#define S_DEADLINE_MAX_MS 600000 /* the longest deadline a caller may ask for */
#define S_TRIM_MS 10000          /* how often freed memory goes back to the system */
#define S_TRIES_MAX 3            /* workers one request may be lost with before a 503 */
#define S_LOST_GRACE_MS 250      /* how long replies of a worker found gone are still taken */
#define S_FOLD_MS 10000          /* repeated warnings of one peer: one line per interval */
#define S_FOLD_MAX 4096          /* peers folded apart; beyond, they share one count */
#define S_TARGETED_MAX 64        /* queued requests for one instance, per service: more get 429 */

/* Which workers may take a request (s_request_t.route). */
#define S_ROUTE_WRITE 1    /* only a primary of the service's epoch (events.publish, primary) */
#define S_ROUTE_INSTANCE 2 /* only the worker whose instance= is Request.instance */

typedef struct s_worker_t s_worker_t;
typedef struct s_service_t s_service_t;

/* A request on its way to a worker, waiting in a queue or being refused. */
typedef struct {
    zmq_msg_t client;  /* the client's routing id frame, as received (with its metadata) */
    zmq_msg_t body;    /* the body when it is one frame */
    zmq_msg_t *bodies; /* all body frames when there are several (owned), else NULL */
    uint16_t nbody;    /* body frames */
    bool delim;        /* the client sent an empty delimiter */
    uint8_t tries;     /* how many workers it was handed to */
    int64_t enqueued;  /* when it arrived (monotonic ms) */
    int64_t deadline;  /* when its caller stops waiting (monotonic ms): dropped if still queued */
    uint64_t seq;      /* its place in the order requests reached its service */
    uint8_t route;     /* S_ROUTE_* bits; 0: any worker */
    uint16_t inst_len; /* S_ROUTE_INSTANCE: the instance name's bytes, */
    uint32_t inst_off; /* found this far into the first body frame */
} s_request_t;

/* A FIFO of requests, as a ring that grows. */
typedef struct {
    s_request_t *items; /* owned; the ones outside head..head+len are not initialised */
    size_t cap, head, len;
} s_ring_t;

/* One request in flight to a worker. */
typedef struct {
    uint8_t addr[S_ADDR_MAX]; /* the client's routing id */
    uint8_t addr_size;
    bool delim;      /* the client sent an empty delimiter, so the reply carries one */
    bool busy;       /* the slot holds a request */
    uint64_t id;     /* field 1 of the request body (0 when absent) */
    s_request_t req; /* a copy of the request (frames shared, not copied), kept until it is
                        answered: handed to another worker if this one is lost */
} s_slot_t;

/* A message as received: its frames, owned here until moved out or closed. */
typedef struct {
    zmq_msg_t part[S_PARTS_MAX];
    int count;      /* frames received, the routing id included */
    size_t bytes;   /* sum of the frame sizes after the routing id */
    bool truncated; /* more than S_PARTS_MAX frames arrived; the rest were dropped */
} s_msg_t;

struct s_service_t {
    char *name;                        /* owned; the same string is the key in services */
    size_t nworkers;                   /* workers that offer this service */
    s_worker_t *free_head, *free_tail; /* workers with spare credit, least recently used first */
    s_ring_t queue;                    /* queued requests any worker may take */
    s_ring_t writes;                   /* queued writes: for a primary of `epoch` only */
    s_ring_t targeted;     /* queued requests for one instance (at most S_TARGETED_MAX) */
    uint64_t seq;          /* requests numbered as they arrive: the order across the three rings */
    uint64_t epoch;        /* the highest epoch a primary registered with: writes go to it alone */
    size_t nprimaries;     /* registered workers that take writes: not standby, of that epoch */
    int64_t orphaned_at;   /* when the service last had no worker (monotonic ms) */
    int64_t busy_logged;   /* when a full queue was last logged (monotonic ms) */
    uint64_t busy_refused; /* requests refused with 429 since then */
    uint64_t expired_now;  /* requests dropped past their deadline since the last tick */
    uint64_t requests;     /* requests that reached its queue or a worker, for the metrics */
    uint64_t replies;      /* replies forwarded */
    uint64_t expired;      /* requests dropped past their deadline */
    uint64_t busy;         /* requests refused with 429 */
};

struct s_worker_t {
    char key[S_HEX_MAX];      /* hex of the routing id; the key in workers */
    uint8_t addr[S_ADDR_MAX]; /* routing id */
    uint8_t addr_size;
    s_service_t *service; /* borrowed; a service outlives its workers */
    int64_t expiry;       /* purged when silent past this (monotonic ms) */
    uint32_t credit;      /* requests it takes at once (1 for a plain worker) */
    uint32_t inflight;    /* requests sent and not yet answered */
    bool identity;        /* wants a Caller frame with every request */
    bool batch;           /* takes requests as Batch frames (sam_batch.h) */
    sam_batch_t out;      /* requests gathered for it, sent at the end of the pass */
    s_worker_t *pending;  /* next in the broker's list of workers with gathered requests */
    bool gathered;        /* is in that list */
    char pubkey[SAM_KEY_Z85_LEN + 1]; /* its CURVE key ("" when insecure) */
    s_slot_t *slots;                  /* slots for requests in flight, owned; grows up to credit */
    uint32_t nslots;                  /* slots allocated */
    size_t head;                      /* slot of the oldest request in flight, a search hint */
    s_worker_t *prev, *next;          /* links in the service's list of workers with spare credit */
    bool listed;                      /* is in that list */
    char instance[64];                /* its instance name, from READY ("" when not said) */
    char version[32];                 /* its program's version, from READY */
    uint64_t epoch;                   /* its leadership epoch, from READY (0 when not said) */
    bool standby;                     /* said `standby` in READY: never given a write */
    char agency[64];                  /* the agency of its certificate ("" when insecure) */
    int64_t since;                    /* when it registered (wall clock ms) */
    bool lost;                        /* a send found it gone: replies taken, nothing sent */
    int64_t lost_at;                  /* when (monotonic ms) */
    const char *lost_why;             /* how it was found gone (a literal) */
};

struct sam_broker_t {
    zsock_t *router;    /* the one socket, clients and workers */
    void *handle;       /* its libzmq handle, for zmq_poll */
    zhashx_t *services; /* name -> s_service_t, owned */
    /* name -> uint64_t: the epoch a service had when it was forgotten (no workers, nothing
       queued), given back when it comes again — the fence outlives an idle moment */
    zhashx_t *epochs;
    zhashx_t *workers; /* hex routing id -> s_worker_t, owned */
    int heartbeat_ms;
    int liveness;
    int request_timeout_ms;
    size_t queue_max;
    size_t max_msg;
    bool insecure;
    uint8_t *caller; /* packed Caller sent to identity workers in insecure mode, owned */
    size_t caller_size;
    zactor_t *auth;         /* zauth, the ZAP handler (CURVE only) */
    sam_keyring_t *keyring; /* the trusted certificates (CURVE only) */
    int64_t next_keys, next_keys_full, keys_retry_at;
    bool keys_removed; /* a lookup's reload removed keys; workers still to be checked */
    int keys_watch;    /* inotify on the certificate directory, -1 when none */
    zhashx_t *folds;   /* "<what> <peer>" → s_fold_t: warnings being folded */
    uint8_t caller_buf[S_CALLER_MAX]; /* the packed Caller of the request being sent */
    uint64_t refused;                 /* requests refused for an untrusted or revoked key */
    uint64_t expired;      /* requests dropped in the queue: their caller's deadline passed */
    uint64_t redispatched; /* requests of lost workers handed to another worker */
    bool stopping;         /* the broker is shutting down: nothing is dispatched again */
    bool dispatching;      /* inside s_service_dispatch (a lost worker's requests wait) */
    int send_errno;        /* why the last s_route failed */
    int64_t now;           /* monotonic ms, refreshed around every poll */
    int64_t next_tick, next_heartbeat, next_stats, next_trim;
    uint64_t requests;         /* client requests received (MMI excluded) */
    uint64_t replies;          /* worker replies forwarded to clients */
    uint64_t errors;           /* error replies the broker made itself */
    uint64_t malformed;        /* messages dropped as malformed */
    uint64_t purged;           /* workers purged or lost */
    size_t nlost;              /* workers found gone whose replies are still being read */
    char gone_peer[S_HEX_MAX]; /* the last peer a send found gone, so a burst logs once */
    uint64_t gone_repeats;     /* further sends to it that failed, not logged one by one */
    s_msg_t in;                /* the message being handled, reused */
    sam_metrics_t *metrics;    /* the --metrics registry (borrowed), or NULL */
    sam_metric_t *m_requests, *m_replies, *m_expired, *m_busy, *m_queue, *m_workers;
    sam_metric_t *m_errors, *m_malformed, *m_untrusted, *m_redispatched, *m_lost;
    s_worker_t *gathered; /* workers whose Batch waits for the end of the pass */
};

/* ---- small helpers --------------------------------------------------------------------- */

/* Writes the hex of `data` into `out` (S_HEX_MAX bytes) and returns it. */
static char *s_hex(const uint8_t *data, size_t size, char *out)
{
    static const char digits[] = "0123456789abcdef";
    if (size > S_ADDR_MAX) size = S_ADDR_MAX;
    for (size_t i = 0; i < size; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 15];
    }
    out[2 * size] = '\0';
    return out;
}

uint64_t sam_broker_peek_id(const uint8_t *data, size_t size)
{
    uint32_t timeout_ms;
    return sam_broker_peek_request(data, size, &timeout_ms);
}

uint64_t sam_broker_peek_request(const uint8_t *data, size_t size, uint32_t *timeout_ms)
{
    const uint8_t *on_behalf;
    size_t len;
    return sam_broker_peek_on_behalf(data, size, timeout_ms, &on_behalf, &len);
}

uint64_t sam_broker_peek_on_behalf(const uint8_t *data, size_t size, uint32_t *timeout_ms,
                                   const uint8_t **on_behalf, size_t *len)
{
    sam_broker_peek_t peek;
    uint64_t id = sam_broker_peek(data, size, &peek);
    *timeout_ms = peek.timeout_ms;
    *on_behalf = peek.on_behalf;
    *len = peek.on_behalf_len;
    return id;
}

#define S_PUBLISH "events.publish" /* the method that is a write wherever it is sent */

uint64_t sam_broker_peek(const uint8_t *data, size_t size, sam_broker_peek_t *out)
{
    uint64_t id = 0, key = 0, v = 0, wait = 0;
    size_t i = 0;
    bool request = true; /* only the fields of a samordna.v1.Request, each in its wire type */
    bool publish = false, primary = false;
    const uint8_t *behalf = NULL, *instance = NULL;
    size_t behalf_len = 0, instance_len = 0;
    *out = (sam_broker_peek_t){0};
    while (i < size) {
        if (!sam_batch_varint(data, size, &i, &key) || (key >> 3) == 0) return 0;
        uint64_t field = key >> 3;
        switch (key & 7) {
        case 0:
            if (!sam_batch_varint(data, size, &i, &v)) return 0;
            if (field == 1)
                id = v;
            else if (field == 4)
                wait = v;
            else if (field == 6)
                primary = v != 0; /* proto3: the last occurrence wins */
            else
                request = false;
            break;
        case 2:
            if (!sam_batch_varint(data, size, &i, &v) || v > size - i || field == 1) return 0;
            if (field == 2) publish = v == strlen(S_PUBLISH) && memcmp(data + i, S_PUBLISH, v) == 0;
            if (field == 5) {
                behalf = data + i;
                behalf_len = (size_t)v;
            }
            if (field == 7) {
                instance = v ? data + i : NULL;
                instance_len = (size_t)v;
            }
            i += (size_t)v;
            if (field != 2 && field != 3 && field != 5 && field != 7) request = false;
            break;
        case 1: /* fixed 64 bits */
        case 5: /* fixed 32 bits */ {
            size_t width = (key & 7) == 1 ? 8 : 4;
            if (size - i < width || field == 1) return 0;
            i += width;
            request = false;
            break;
        }
        default:
            return 0;
        }
    }
    out->id = id;
    /* a deadline, a presented caller and a route are read from a body that is a
       samordna.v1.Request and nothing else, so a plain 7/MDP client's own bytes are never
       taken for one */
    if (request && id) {
        out->timeout_ms = wait > UINT32_MAX ? UINT32_MAX : (uint32_t)wait;
        out->on_behalf = behalf;
        out->on_behalf_len = behalf_len;
        out->write = publish || primary;
        out->instance = instance;
        out->instance_len = instance ? instance_len : 0;
    }
    return id;
}

/* Copies a name token of the READY extension when it is of safe characters only: a worker
   names itself in logs and in mmi.workers, and nothing else may pass for a name there. */
static void s_ext_word(const char *word, char *out, size_t cap)
{
    size_t n = strlen(word);
    if (n == 0 || n >= cap ||
        strspn(word, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789._-:+") != n)
        return;
    memcpy(out, word, n + 1);
}

bool sam_broker_parse_extension(const uint8_t *data, size_t size, sam_broker_ext_t *ext)
{
    char text[256];
    if (!data || size >= sizeof text || memchr(data, '\0', size)) return false;
    memcpy(text, data, size);
    text[size] = '\0';
    char *save = NULL;
    char *token = strtok_r(text, " \t", &save);
    if (!token || strcmp(token, SAM_MDP_EXT_PREFIX) != 0) return false;
    *ext = (sam_broker_ext_t){.credit = 1};
    while ((token = strtok_r(NULL, " \t", &save))) {
        if (strncmp(token, "credit=", 7) == 0) {
            char *end = NULL;
            long long n = strtoll(token + 7, &end, 10);
            if (end == token + 7 || *end) continue; /* not a number: keep the default */
            ext->credit = n < 1 ? 1 : n > SAM_MDP_MAX_CREDIT ? SAM_MDP_MAX_CREDIT : (uint32_t)n;
        } else if (strcmp(token, "identity") == 0) {
            ext->identity = true;
        } else if (strcmp(token, "batch") == 0) {
            ext->batch = true;
        } else if (strncmp(token, "instance=", 9) == 0) {
            s_ext_word(token + 9, ext->instance, sizeof ext->instance);
        } else if (strncmp(token, "version=", 8) == 0) {
            s_ext_word(token + 8, ext->version, sizeof ext->version);
        } else if (strncmp(token, "epoch=", 6) == 0) {
            /* digits only: strtoull would take "-1" as 2^64-1 and " 7" as 7 */
            const char *digits = token + 6;
            size_t n = strlen(digits);
            if (n == 0 || strspn(digits, "0123456789") != n) continue;
            errno = 0;
            unsigned long long epoch = strtoull(digits, NULL, 10);
            if (errno == ERANGE) continue; /* over 64 bits: keep the default */
            ext->epoch = (uint64_t)epoch;
        } else if (strcmp(token, "standby") == 0) {
            ext->standby = true;
        }
    }
    return true;
}

bool sam_broker_endpoint_is_loopback(const char *endpoint)
{
    if (!endpoint) return false;
    if (strncmp(endpoint, "ipc://", 6) == 0 || strncmp(endpoint, "inproc://", 9) == 0) return true;
    if (strncmp(endpoint, "tcp://", 6) != 0) return false;
    const char *host = endpoint + 6;
    const char *colon = strrchr(host, ':');
    if (!colon || colon[1] == '\0') return false;
    size_t len = (size_t)(colon - host);
    if (len == 5 && strncmp(host, "[::1]", 5) == 0) return true;
    if (len == 9 && strncmp(host, "localhost", 9) == 0) return true;
    char ip[INET_ADDRSTRLEN];
    if (len == 0 || len >= sizeof ip) return false;
    memcpy(ip, host, len);
    ip[len] = '\0';
    struct in_addr addr;
    if (inet_pton(AF_INET, ip, &addr) != 1) return false;
    return (ntohl(addr.s_addr) >> 24) == 127;
}

/* ---- frames ---------------------------------------------------------------------------- */

static void s_msg_close(s_msg_t *msg)
{
    for (int i = 0; i < msg->count; i++)
        zmq_msg_close(&msg->part[i]);
    msg->count = 0;
}

/*  Receives one whole message; `flags` ZMQ_DONTWAIT or 0 (wait up to the socket's receive
    timeout). Returns 0, or -1 when nothing came (errno EAGAIN, or EINTR on a signal).
    A message of more than S_PARTS_MAX frames is read to its end and marked truncated. */
static int s_msg_recv(sam_broker_t *self, s_msg_t *msg, int flags)
{
    msg->count = 0;
    msg->bytes = 0;
    msg->truncated = false;
    zmq_msg_init(&msg->part[0]);
    if (zmq_msg_recv(&msg->part[0], self->handle, flags) == -1) {
        zmq_msg_close(&msg->part[0]);
        return -1;
    }
    msg->count = 1;
    while (zmq_msg_more(&msg->part[msg->count - 1])) {
        if (msg->count == S_PARTS_MAX) {
            zmq_msg_t rest;
            zmq_msg_init(&rest);
            while (zmq_msg_recv(&rest, self->handle, 0) != -1 && zmq_msg_more(&rest))
                ;
            zmq_msg_close(&rest);
            msg->truncated = true;
            break;
        }
        zmq_msg_t *part = &msg->part[msg->count];
        zmq_msg_init(part);
        if (zmq_msg_recv(part, self->handle, 0) == -1) { /* not after the first frame */
            zmq_msg_close(part);
            msg->truncated = true;
            break;
        }
        msg->bytes += zmq_msg_size(part);
        msg->count++;
    }
    return 0;
}

static bool s_part_is(zmq_msg_t *part, const char *text)
{
    size_t n = strlen(text);
    return zmq_msg_size(part) == n && memcmp(zmq_msg_data(part), text, n) == 0;
}

/* Copies a frame that must be a name (1..S_SERVICE_MAX bytes of UTF-8 text on one line: no
   NUL, no control character) into `out` (S_SERVICE_MAX + 1 bytes). Returns false when it is
   not one. */
static bool s_part_name(zmq_msg_t *part, char *out)
{
    size_t n = zmq_msg_size(part);
    if (n == 0 || n > S_SERVICE_MAX || memchr(zmq_msg_data(part), '\0', n)) return false;
    memcpy(out, zmq_msg_data(part), n);
    out[n] = '\0';
    return sam_check_line_why(out) == NULL;
}

/* Sends one frame of a message; the last one without `more`. */
static inline void s_put(sam_broker_t *self, const void *data, size_t size, bool more)
{
    zmq_send(self->handle, data, size, more ? ZMQ_SNDMORE : 0);
}

/* Sends (and so empties) a received frame. */
static inline void s_put_part(sam_broker_t *self, zmq_msg_t *part, bool more)
{
    zmq_msg_send(part, self->handle, more ? ZMQ_SNDMORE : 0);
}

/*  Folding repeated warnings. A slow consumer makes every send to it fail, a revoked key
    every request it sends, a broken peer every frame: the first warning of each (what,
    peer, reason) in an interval is logged as it is, the rest only counted, and when the
    interval is over — or the broker stops — one line says how many more there were
    (`<what>.repeated peer=… reason=… count=N`). Returns true when the caller should log
    this one. */
typedef struct {
    uint64_t count; /* folded since the logged one */
    int64_t since;  /* when the logged one was */
    char what[32], peer[S_HEX_MAX], reason[128];
} s_fold_t;

static bool s_fold(sam_broker_t *self, const char *what, const char *peer, const char *reason)
{
    if (!self->folds) return true;
    bool many = zhashx_size(self->folds) >= S_FOLD_MAX;
    char key[sizeof((s_fold_t *)0)->what + S_HEX_MAX + 128 + 2];
    snprintf(key, sizeof key, "%s %s %s", what, many ? "(many peers)" : peer, reason);
    s_fold_t *f = zhashx_lookup(self->folds, key);
    if (f) {
        f->count++;
        return false;
    }
    f = calloc(1, sizeof *f);
    if (!f) return true;
    f->since = self->now;
    snprintf(f->what, sizeof f->what, "%s", what);
    snprintf(f->peer, sizeof f->peer, "%s", many ? "(many peers)" : peer);
    snprintf(f->reason, sizeof f->reason, "%s", reason);
    if (zhashx_insert(self->folds, key, f) != 0) free(f);
    return true;
}

/* Ends the intervals that are over (all of them when `all`), with one line for each that
   folded anything. */
static void s_fold_flush(sam_broker_t *self, bool all)
{
    if (!self->folds || zhashx_size(self->folds) == 0) return;
    zlist_t *done = zlist_new();
    for (s_fold_t *f = zhashx_first(self->folds); f && done; f = zhashx_next(self->folds)) {
        if (!all && self->now - f->since < S_FOLD_MS) continue;
        if (f->count)
            sam_warn("%s.repeated peer=%s reason=%s count=%" PRIu64 " interval_ms=%d", f->what,
                     f->peer, sam_logv(f->reason), f->count, S_FOLD_MS);
        zlist_append(done, (void *)zhashx_cursor(self->folds));
    }
    for (const char *key = zlist_first(done); key; key = zlist_next(done))
        zhashx_delete(self->folds, key);
    zlist_destroy(&done);
}

static void s_fold_free(void **item)
{
    free(*item);
    *item = NULL;
}

/*  Starts a message to a peer with its routing id. On failure nothing was sent: the peer is
    gone (EHOSTUNREACH) or not reading (EAGAIN); that is logged and -1 returned. Once the
    routing id is accepted the rest of the message cannot fail. */
static int s_route(sam_broker_t *self, const uint8_t *addr, size_t size, const char *role)
{
    if (zmq_send(self->handle, addr, size, ZMQ_SNDMORE) >= 0) return 0;
    int err = zmq_errno();
    self->send_errno = err;
    char hex[S_HEX_MAX];
    s_hex(addr, size, hex);
    /* A client that left with many requests queued makes every one of their replies fail:
       one line for the peer, and a count when the next peer fails. */
    if (err == EHOSTUNREACH && strcmp(hex, self->gone_peer) == 0) {
        self->gone_repeats++;
        return -1;
    }
    if (self->gone_repeats)
        sam_warn("send.failed to=%s peer=%s reason=\"peer is gone\" repeats=%" PRIu64, role,
                 self->gone_peer, self->gone_repeats);
    self->gone_repeats = 0;
    snprintf(self->gone_peer, sizeof self->gone_peer, "%s", err == EHOSTUNREACH ? hex : "");
    const char *why = err == EHOSTUNREACH ? "peer is gone"
                      : err == EAGAIN     ? "peer is not reading (queue full)"
                                          : zmq_strerror(err);
    if (err == EHOSTUNREACH || s_fold(self, "send.failed", hex, why))
        sam_warn("send.failed to=%s peer=%s reason=%s", role, hex, sam_logv(why));
    return -1;
}

static void s_malformed(sam_broker_t *self, zmq_msg_t *addr, const char *reason)
{
    char hex[S_HEX_MAX];
    self->malformed++;
    s_hex(zmq_msg_data(addr), zmq_msg_size(addr), hex);
    if (s_fold(self, "message.malformed", hex, reason))
        sam_warn("message.malformed peer=%s reason=%s", hex, sam_logv(reason));
}

/* ---- requests -------------------------------------------------------------------------- */

static zmq_msg_t *s_request_body(s_request_t *request, uint16_t i)
{
    return request->nbody > 1 ? &request->bodies[i] : &request->body;
}

/* Closes the request's frames and leaves it empty, so closing it again is harmless. */
static void s_request_close(s_request_t *request)
{
    zmq_msg_close(&request->client);
    zmq_msg_init(&request->client);
    zmq_msg_close(&request->body);
    zmq_msg_init(&request->body);
    if (request->bodies)
        for (uint16_t i = 0; i < request->nbody; i++)
            zmq_msg_close(&request->bodies[i]);
    free(request->bodies);
    request->bodies = NULL;
    request->nbody = 0;
}

/* What a moved or copied request keeps besides its frames: count, delimiter, times, tries. */
static void s_request_scalars(s_request_t *dst, const s_request_t *src)
{
    dst->nbody = src->nbody;
    dst->delim = src->delim;
    dst->tries = src->tries;
    dst->enqueued = src->enqueued;
    dst->deadline = src->deadline;
    dst->seq = src->seq;
    dst->route = src->route;
    dst->inst_len = src->inst_len;
    dst->inst_off = src->inst_off;
}

/* Moves a request (its frames and body array) from `src` to the uninitialised `dst`. */
static void s_request_move(s_request_t *dst, s_request_t *src)
{
    s_request_scalars(dst, src);
    zmq_msg_init(&dst->client);
    zmq_msg_move(&dst->client, &src->client);
    zmq_msg_init(&dst->body);
    zmq_msg_move(&dst->body, &src->body);
    dst->bodies = src->bodies;
    src->bodies = NULL;
    src->nbody = 0;
}

/*  Copies a request into the uninitialised `dst`: libzmq shares the frames' data (a copy is
    a reference), so keeping a copy of each request in flight costs its frame headers only.
    Returns 0, or -1 when out of memory (dst is then empty and safe to close). */
static int s_request_copy(s_request_t *dst, s_request_t *src)
{
    memset(dst, 0, sizeof *dst);
    zmq_msg_init(&dst->client);
    zmq_msg_init(&dst->body);
    zmq_msg_copy(&dst->client, &src->client);
    if (src->bodies) {
        dst->bodies = malloc(src->nbody * sizeof *dst->bodies);
        if (!dst->bodies) return -1;
        for (uint16_t i = 0; i < src->nbody; i++) {
            zmq_msg_init(&dst->bodies[i]);
            zmq_msg_copy(&dst->bodies[i], &src->bodies[i]);
        }
    } else
        zmq_msg_copy(&dst->body, &src->body);
    s_request_scalars(dst, src);
    return 0;
}

/* ---- identity -------------------------------------------------------------------------- */

/*  The trusted certificate of `key`. A key the table does not know may be one that was
    added a moment ago (ZAP let it in: zauth reads the folder at every handshake), so the
    folder is checked again at once, at most every S_KEYS_RETRY_MS. */
static const sam_key_info_t *s_lookup(sam_broker_t *self, const char *key)
{
    if (!key) return NULL;
    const sam_key_info_t *info = sam_keyring_lookup(self->keyring, key);
    if (!info && self->now >= self->keys_retry_at) {
        self->keys_retry_at = self->now + S_KEYS_RETRY_MS;
        if (sam_keyring_refresh(self->keyring, false) > 0)
            self->keys_removed = true; /* the next tick disconnects workers whose key went */
        info = sam_keyring_lookup(self->keyring, key);
    }
    return info;
}

/*  The CURVE key of the peer that sent `frame`: the ZAP User-Id, which zauth sets to the
    Z85 public key. NULL when the connection has none (insecure). `frame` must be one that
    came over the wire: the routing id frame a ROUTER makes up itself does not always carry
    the connection's metadata (not when zmq_poll had the message prefetched). */
static const char *s_peer_key(zmq_msg_t *frame)
{
    const char *key = zmq_msg_gets(frame, "User-Id");
    return key && strlen(key) == SAM_KEY_Z85_LEN ? key : NULL;
}

/*  The trusted certificate behind the connection that sent `msg` (its second frame is the
    first one from the wire), or NULL when its key is unknown or was removed from the
    certificate directory since the connection was made. */
static const sam_key_info_t *s_peer_info(sam_broker_t *self, s_msg_t *msg)
{
    return msg->count > 1 ? s_lookup(self, s_peer_key(&msg->part[1])) : NULL;
}

/*  The caller a request presents (Request.on_behalf: `data`, `len` bytes, NULL when none)
    from a connection whose certificate is `info`. Returns 0 when the request presents none,
    1 with *owned set (the caller frees it with samordna__v1__on_behalf__free_unpacked) when
    it presents one it may, or the status code to refuse it with, the reason in *why: 403
    from any role but gateway, 400 when what it presents is not an agency id and one of
    admin, publisher, reader. */
static int s_presented(const sam_key_info_t *info, const uint8_t *data, size_t len,
                       Samordna__V1__OnBehalf **owned, const char **why)
{
    *owned = NULL;
    if (!data) return 0;
    if (strcmp(info->role, "gateway") != 0) {
        *why = "only a certificate of role gateway may present a caller (Request.on_behalf)";
        return SAM_FORBIDDEN;
    }
    Samordna__V1__OnBehalf *p = samordna__v1__on_behalf__unpack(NULL, len, data);
    if (!p || !sam_keys_agency_ok(p->agency) ||
        (strcmp(p->role, "admin") != 0 && strcmp(p->role, "publisher") != 0 &&
         strcmp(p->role, "reader") != 0)) {
        if (p) samordna__v1__on_behalf__free_unpacked(p, NULL);
        *why = "the presented caller (Request.on_behalf) needs an agency id and a role of "
               "admin, publisher or reader";
        return SAM_BAD_REQUEST;
    }
    *owned = p;
    return 1;
}

/*  The packed samordna.v1.Caller for a request; sets *data (valid until the next call) and
    returns its size, or 0 with the status to refuse the request with in *code and the
    reason in *why: 401 when the caller is not (or no longer) trusted, 403 or 400 for a
    caller presented by a certificate that may not (s_presented). `body` is the request's
    first body frame, which still carries the connection's metadata.
    Agency and role come from the broker's current table of the certificate directory, not
    from the metadata ZAP attached at the handshake, so a certificate that was replaced or
    removed takes effect on open connections too. A gateway certificate's requests carry the
    caller it presents, or its own agency as a reader, with via "gateway".
    Insecure: Caller{insecure, role=admin}, whatever the request presents. */
static size_t s_caller(sam_broker_t *self, zmq_msg_t *body, const uint8_t **data, uint32_t *code,
                       const char **why)
{
    if (self->insecure) {
        *data = self->caller;
        return self->caller_size;
    }
    const char *key = s_peer_key(body);
    const sam_key_info_t *info = s_lookup(self, key);
    *code = SAM_UNAUTHORIZED;
    *why = "the caller's key is not trusted by the broker (unknown or revoked)";
    if (!info) return 0;
    uint32_t wait_ms;
    const uint8_t *behalf;
    size_t behalf_len;
    sam_broker_peek_on_behalf(zmq_msg_data(body), zmq_msg_size(body), &wait_ms, &behalf,
                              &behalf_len);
    Samordna__V1__OnBehalf *presented;
    int rc = s_presented(info, behalf, behalf_len, &presented, why);
    if (rc > 1) {
        *code = (uint32_t)rc;
        return 0;
    }
    bool gateway = strcmp(info->role, "gateway") == 0;
    Samordna__V1__Caller caller = SAMORDNA__V1__CALLER__INIT;
    caller.agency = (char *)(presented ? presented->agency : info->agency);
    caller.role = (char *)(presented ? presented->role : gateway ? "reader" : info->role);
    caller.key = (char *)key;
    caller.via = gateway ? "gateway" : "";
    size_t size = samordna__v1__caller__get_packed_size(&caller);
    if (size <= sizeof self->caller_buf) samordna__v1__caller__pack(&caller, self->caller_buf);
    if (presented) samordna__v1__on_behalf__free_unpacked(presented, NULL);
    if (size > sizeof self->caller_buf) {
        *code = SAM_INTERNAL;
        *why = "the caller's identity is too large to pass on";
        return 0;
    }
    *data = self->caller_buf;
    return size;
}

/* ---- error replies --------------------------------------------------------------------- */

/*  Sends the broker's own error to a client.
    Error reply:  [client] [""] "MDPC01" service Reply{id, status{code, message}} */
static void s_send_error(sam_broker_t *self, const uint8_t *addr, size_t addr_size, bool delim,
                         const char *service, uint64_t id, uint32_t code, const char *text)
{
    Samordna__V1__Status status = SAMORDNA__V1__STATUS__INIT;
    status.code = code;
    status.message = (char *)text;
    Samordna__V1__Reply reply = SAMORDNA__V1__REPLY__INIT;
    reply.id = id;
    reply.status = &status;
    uint8_t packed[2048];
    size_t size = samordna__v1__reply__get_packed_size(&reply);
    self->errors++;
    if (size > sizeof packed || s_route(self, addr, addr_size, "client") != 0) return;
    samordna__v1__reply__pack(&reply, packed);
    if (delim) s_put(self, "", 0, true);
    s_put(self, SAM_MDPC, strlen(SAM_MDPC), true);
    s_put(self, service, strlen(service), true);
    s_put(self, packed, size, false);
}

/*  The id of a client's request for an error reply: decoded with protobuf-c when the body
    is one frame that is a samordna.v1.Request, else 0. Only on error paths. */
static uint64_t s_request_id(s_request_t *request)
{
    if (request->nbody != 1) return 0;
    Samordna__V1__Request *decoded = samordna__v1__request__unpack(
        NULL, zmq_msg_size(&request->body), zmq_msg_data(&request->body));
    if (!decoded) return 0;
    uint64_t id = decoded->id;
    samordna__v1__request__free_unpacked(decoded, NULL);
    return id;
}

/* Answers a request that the broker will not route with an error, and closes it. */
static void s_refuse(sam_broker_t *self, s_request_t *request, const char *service, uint32_t code,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void s_refuse(sam_broker_t *self, s_request_t *request, const char *service, uint32_t code,
                     const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    s_send_error(self, zmq_msg_data(&request->client), zmq_msg_size(&request->client),
                 request->delim, service, s_request_id(request), code, text);
    s_request_close(request);
}

/* ---- services -------------------------------------------------------------------------- */

/* The i-th oldest request of a ring (i < len). */
static s_request_t *s_ring_at(s_ring_t *ring, size_t i)
{
    return &ring->items[(ring->head + i) % ring->cap];
}

/* Doubles a ring's room, leaving `front` free slots before its first request. */
static int s_ring_grow(s_ring_t *ring, size_t front)
{
    size_t cap = ring->cap ? ring->cap * 2 : 16;
    s_request_t *items = malloc(cap * sizeof *items);
    if (!items) return -1;
    for (size_t i = 0; i < ring->len; i++)
        s_request_move(&items[i + front], s_ring_at(ring, i));
    free(ring->items);
    ring->items = items;
    ring->cap = cap;
    ring->head = front;
    return 0;
}

/* Moves a request to the tail of a ring; the caller checked queue_max. */
static int s_ring_push(s_ring_t *ring, s_request_t *request)
{
    if (ring->len == ring->cap && s_ring_grow(ring, 0) != 0) return -1;
    s_request_move(&ring->items[(ring->head + ring->len) % ring->cap], request);
    ring->len++;
    return 0;
}

/* Puts a request back at the head of a ring (a lost worker's): it is served next. */
static int s_ring_push_front(s_ring_t *ring, s_request_t *request)
{
    if (ring->len == ring->cap && s_ring_grow(ring, 1) != 0) return -1;
    ring->head = (ring->head + ring->cap - 1) % ring->cap;
    s_request_move(&ring->items[ring->head], request);
    ring->len++;
    return 0;
}

/* Forgets the i-th request of a ring (closing what is left of it); the later ones move up. */
static void s_ring_remove(s_ring_t *ring, size_t i)
{
    s_request_close(s_ring_at(ring, i));
    if (i == 0) {
        ring->head = (ring->head + 1) % ring->cap;
    } else {
        for (size_t j = i; j + 1 < ring->len; j++)
            s_request_move(s_ring_at(ring, j), s_ring_at(ring, j + 1));
    }
    ring->len--;
}

static void s_ring_free(s_ring_t *ring)
{
    for (size_t i = 0; i < ring->len; i++)
        s_request_close(s_ring_at(ring, i));
    free(ring->items);
    *ring = (s_ring_t){0};
}

/* Requests waiting in all of a service's rings. */
static size_t s_queued(const s_service_t *service)
{
    return service->queue.len + service->writes.len + service->targeted.len;
}

static void s_service_destroy(void **item)
{
    s_service_t *service = *item;
    s_ring_free(&service->queue);
    s_ring_free(&service->writes);
    s_ring_free(&service->targeted);
    free(service->name);
    free(service);
    *item = NULL;
}

static void s_epoch_free(void **item)
{
    free(*item);
    *item = NULL;
}

/* The service named `name`, created on first use; NULL when out of memory. */
static s_service_t *s_service_require(sam_broker_t *self, const char *name)
{
    s_service_t *service = zhashx_lookup(self->services, name);
    if (service) return service;
    service = calloc(1, sizeof *service);
    if (!service || !(service->name = strdup(name))) {
        free(service);
        return NULL;
    }
    service->orphaned_at = self->now;
    const uint64_t *kept = self->epochs ? zhashx_lookup(self->epochs, name) : NULL;
    if (kept) service->epoch = *kept;
    zhashx_insert(self->services, name, service);
    return service;
}

/* The service's list of workers with spare credit: an intrusive FIFO. */
static void s_free_append(s_service_t *service, s_worker_t *worker)
{
    if (worker->lost) return; /* is given nothing more */
    worker->prev = service->free_tail;
    worker->next = NULL;
    if (service->free_tail)
        service->free_tail->next = worker;
    else
        service->free_head = worker;
    service->free_tail = worker;
    worker->listed = true;
}

static void s_free_unlink(s_service_t *service, s_worker_t *worker)
{
    if (!worker->listed) return;
    if (worker->prev)
        worker->prev->next = worker->next;
    else
        service->free_head = worker->next;
    if (worker->next)
        worker->next->prev = worker->prev;
    else
        service->free_tail = worker->prev;
    worker->prev = worker->next = NULL;
    worker->listed = false;
}

/*  Primaries and standbys (docs/protocol.md). A worker may say in READY which leadership
    epoch it serves and that it is a standby. Writes (events.publish, or Request.primary) go
    only to a primary of the service's epoch: the highest epoch a primary has registered
    with since the broker learnt of the service. The epoch never goes down while the service
    is known here, so an old primary that comes back with its old epoch (it has not yet
    noticed it lost its lease) gets reads but no write again: fencing, beside the store's own
    lease check. When the last primary of that epoch is lost, writes wait (to their deadline)
    for the next one — a promoted standby registers again with a higher epoch. The service,
    and with it its epoch, is forgotten only once it has neither workers nor queued requests.
    A request that names an instance (Request.instance) goes to that worker only; both rules
    hold for a write that names one. Workers that say no epoch are all of epoch 0 and take
    writes, so a service without epochs and standbys routes as if none of this existed. */

/* Whether `worker` may take `request`. */
static bool s_worker_takes(const s_service_t *service, const s_worker_t *worker,
                           s_request_t *request)
{
    if ((request->route & S_ROUTE_WRITE) && (worker->standby || worker->epoch != service->epoch))
        return false;
    if (request->route & S_ROUTE_INSTANCE) {
        const uint8_t *name =
            (const uint8_t *)zmq_msg_data(s_request_body(request, 0)) + request->inst_off;
        size_t n = strlen(worker->instance);
        if (n != request->inst_len || memcmp(name, worker->instance, n) != 0) return false;
    }
    return true;
}

/*  The least recently used worker with spare credit that may take `request`, or NULL. The
    head of the list in the common case (any worker, or a write with only primaries
    registered); a walk of the few workers with credit otherwise. */
static s_worker_t *s_free_for(s_service_t *service, s_request_t *request)
{
    if (request->route == 0) return service->free_head;
    if ((request->route & S_ROUTE_WRITE) && service->nprimaries == 0) return NULL;
    for (s_worker_t *worker = service->free_head; worker; worker = worker->next)
        if (s_worker_takes(service, worker, request)) return worker;
    return NULL;
}

/* The ring a request waits in. */
static s_ring_t *s_ring_for(s_service_t *service, const s_request_t *request)
{
    return request->route & S_ROUTE_INSTANCE ? &service->targeted
           : request->route & S_ROUTE_WRITE  ? &service->writes
                                             : &service->queue;
}

/* Whether `worker` takes writes now: not a standby, and of the service's epoch. */
static bool s_worker_writes(const s_worker_t *worker)
{
    return !worker->standby && worker->epoch == worker->service->epoch;
}

/* ---- workers --------------------------------------------------------------------------- */

static void s_worker_destroy(void **item)
{
    s_worker_t *worker = *item;
    sam_batch_free(&worker->out);
    for (uint32_t i = 0; i < worker->nslots; i++)
        if (worker->slots[i].busy) s_request_close(&worker->slots[i].req);
    free(worker->slots);
    free(worker);
    *item = NULL;
}

/* Sends a bare command to a peer: [peer] "" "MDPW01" command [extension] */
/* Returns 0, or -1 when the peer is gone or not reading (logged by s_route). */
static int s_command(sam_broker_t *self, const uint8_t *addr, size_t addr_size, uint8_t command,
                     const char *extension)
{
    if (s_route(self, addr, addr_size, "worker") != 0) return -1;
    s_put(self, "", 0, true);
    s_put(self, SAM_MDPW, strlen(SAM_MDPW), true);
    s_put(self, &command, 1, extension != NULL);
    if (extension) s_put(self, extension, strlen(extension), false);
    return 0;
}

/*  Removes a worker: its requests in flight go to another worker of the service (or, past
    S_TRIES_MAX or their deadline, get 503), the worker gets DISCONNECT when `disconnect` is
    set, and it leaves its service. */
static void s_service_dispatch(sam_broker_t *self, s_service_t *service);

static void s_worker_delete(sam_broker_t *self, s_worker_t *worker, bool disconnect,
                            const char *reason)
{
    s_service_t *service = worker->service;
    char text[S_HEX_MAX + S_SERVICE_MAX + 128];
    snprintf(text, sizeof text, "worker %s of service '%s' lost while handling the request (%s)",
             worker->key, service->name, reason);
    /* Its requests in flight go to another worker at once, in the order they came, ahead of
       the queue: a service's writes are idempotent by event id, so a request the lost worker
       had already applied is answered as a duplicate. One that has been lost with
       S_TRIES_MAX workers, or whose caller has stopped waiting, is answered 503. */
    size_t again = 0, lost = 0;
    for (uint32_t n = 0, i = worker->head; n < worker->nslots && worker->inflight; n++) {
        s_slot_t *slot = &worker->slots[(i + worker->nslots - 1 - n) % worker->nslots];
        if (!slot->busy) continue;
        slot->busy = false;
        worker->inflight--;
        if (!self->stopping && slot->req.tries < S_TRIES_MAX && self->now < slot->req.deadline &&
            s_ring_push_front(s_ring_for(service, &slot->req), &slot->req) == 0) {
            again++;
            continue;
        }
        s_request_close(&slot->req);
        lost++;
        s_send_error(self, slot->addr, slot->addr_size, slot->delim, service->name, slot->id,
                     SAM_UNAVAILABLE, text);
    }
    if (again || lost)
        sam_info("worker.requests worker=%s service=%s redispatched=%zu lost=%zu", worker->key,
                 sam_logv(service->name), again, lost);
    self->redispatched += again;
    if (disconnect) s_command(self, worker->addr, worker->addr_size, SAM_MDPW_DISCONNECT, NULL);
    s_free_unlink(service, worker);
    s_worker_t **at = &self->gathered;
    while (worker->gathered && *at) {
        if (*at == worker) {
            *at = worker->pending;
            worker->gathered = false;
        } else
            at = &(*at)->pending;
    }
    if (--service->nworkers == 0) service->orphaned_at = self->now;
    if (s_worker_writes(worker) && --service->nprimaries == 0 && service->epoch && !self->stopping)
        sam_info("service.primary_lost service=%s epoch=%" PRIu64 " instance=%s reason=\"its "
                 "last primary of this epoch left; writes wait until one of this epoch or a "
                 "later one registers\"",
                 sam_logv(service->name), service->epoch,
                 sam_logv(*worker->instance ? worker->instance : "-"));
    self->purged++;
    if (worker->lost) self->nlost--;
    sam_info("worker.removed worker=%s service=%s reason=%s", worker->key, sam_logv(service->name),
             sam_logv(reason));
    zhashx_delete(self->workers, worker->key);
    if (again && !self->dispatching) s_service_dispatch(self, service);
}

/*  A send to a worker found its connection gone. What it sent before it went may still be
    unread here: a worker that drains (SIGTERM) answers what it was given, says DISCONNECT and
    closes, and a send to it can fail before those replies are read. So it is given nothing
    more, but it is removed (and its requests still in flight handed on) only once everything
    that came in has been read, or S_LOST_GRACE_MS later on a broker that never runs dry: a
    reply it sent reaches its client, and is not lost to a second worker that answers the
    request again (a long poll parked anew, a write answered as a duplicate). */
static void s_worker_lose(sam_broker_t *self, s_worker_t *worker, const char *why)
{
    if (worker->lost) return;
    worker->lost = true;
    worker->lost_why = why;
    worker->lost_at = self->now;
    self->nlost++;
    s_free_unlink(worker->service, worker);
}

/*  Removes the workers found gone whose time is up: all of them when `drained` (nothing more
    to read came in), else those lost S_LOST_GRACE_MS ago. */
static void s_lost_sweep(sam_broker_t *self, bool drained)
{
    while (self->nlost) {
        s_worker_t *found = NULL;
        for (s_worker_t *worker = zhashx_first(self->workers); worker && !found;
             worker = zhashx_next(self->workers))
            if (worker->lost && (drained || self->now - worker->lost_at >= S_LOST_GRACE_MS))
                found = worker;
        if (!found) return;
        s_worker_delete(self, found, false, found->lost_why);
    }
}

/*  Doubles a worker's slots, up to its credit: a worker that declares a large credit but
    never uses it costs little. Returns 0, or -1 when out of memory. */
static int s_worker_grow(s_worker_t *worker)
{
    uint32_t nslots = worker->nslots * 2 < worker->credit ? worker->nslots * 2 : worker->credit;
    s_slot_t *slots = calloc(nslots, sizeof *slots);
    if (!slots) return -1;
    for (uint32_t i = 0; i < worker->nslots; i++) { /* frames are moved, never copied bytewise */
        s_slot_t *from = &worker->slots[i];
        memcpy(slots[i].addr, from->addr, from->addr_size);
        slots[i].addr_size = from->addr_size;
        slots[i].delim = from->delim;
        slots[i].busy = from->busy;
        slots[i].id = from->id;
        if (from->busy) s_request_move(&slots[i].req, &from->req);
    }
    free(worker->slots);
    worker->slots = slots;
    worker->nslots = nslots;
    return 0;
}

/*  Sends a worker's gathered requests: [worker] "" "MDPW01" 0x02 Batch. Returns 0, or -1
    when the worker cannot be reached (the caller removes it, which answers the requests). */
static int s_batch_send(sam_broker_t *self, s_worker_t *worker)
{
    if (worker->out.count == 0) return 0;
    int rc = s_route(self, worker->addr, worker->addr_size, "worker");
    if (rc == 0) {
        uint8_t command = SAM_MDPW_REQUEST;
        s_put(self, "", 0, true);
        s_put(self, SAM_MDPW, strlen(SAM_MDPW), true);
        s_put(self, &command, 1, true);
        s_put(self, worker->out.data, worker->out.len, false);
    }
    sam_batch_reset(&worker->out);
    return rc;
}

/* Sends every Batch gathered during this pass over the socket. */
static void s_batch_flush(sam_broker_t *self)
{
    while (self->gathered) {
        s_worker_t *worker = self->gathered;
        self->gathered = worker->pending;
        worker->gathered = false;
        if (s_batch_send(self, worker) != 0)
            s_worker_lose(self, worker, "cannot send to the worker");
    }
}

/*  Adds a request to a batch worker's gathered Batch (sent first when it is full). Returns
    0, or -1 when the worker cannot be reached or memory ran out. */
static int s_batch_add(sam_broker_t *self, s_worker_t *worker, s_request_t *request,
                       const uint8_t *caller, size_t caller_size)
{
    ProtobufCBinaryData body[SAM_BATCH_MAX_BODY];
    size_t nbody = request->nbody < SAM_BATCH_MAX_BODY ? request->nbody : SAM_BATCH_MAX_BODY;
    for (size_t i = 0; i < nbody; i++) {
        zmq_msg_t *part = s_request_body(request, (uint16_t)i);
        body[i] = (ProtobufCBinaryData){zmq_msg_size(part), zmq_msg_data(part)};
    }
    size_t csize = zmq_msg_size(&request->client);
    size_t need = sam_batch_delivery_size(csize, caller_size, body, nbody);
    if (worker->out.len && worker->out.len + need > S_BATCH_BYTES &&
        s_batch_send(self, worker) != 0)
        return -1;
    if (sam_batch_add(&worker->out, zmq_msg_data(&request->client), csize, caller, caller_size,
                      body, nbody) != 0)
        return -1;
    if (!worker->gathered) {
        worker->pending = self->gathered;
        self->gathered = worker;
        worker->gathered = true;
    }
    return 0;
}

/*  Sends one request to a worker with spare credit.
        [worker] "" "MDPW01" 0x02 client "" [caller] body…
    The Caller frame only goes to a worker that negotiated "identity"; a worker that
    negotiated "batch" gets the request in its next Batch instead. Returns 0 when the
    request was sent (its frames are consumed), -1 when the worker cannot be reached (the
    request is untouched; the caller removes the worker). */
static int s_worker_send_request(sam_broker_t *self, s_worker_t *worker, s_request_t *request)
{
    const uint8_t *caller = NULL;
    size_t caller_size = 0;
    if (worker->identity || !self->insecure) {
        uint32_t code = SAM_INTERNAL;
        const char *why = "";
        caller_size = s_caller(self, s_request_body(request, 0), &caller, &code, &why);
        if (caller_size == 0) { /* revoked (or its certificate replaced) while it waited */
            self->refused++;
            if (code != SAM_UNAUTHORIZED)
                sam_warn("request.refused service=%s code=%u reason=%s",
                         sam_logv(worker->service->name), code, sam_logv(why));
            s_refuse(self, request, worker->service->name, code, "%s", why);
            return 0;
        }
    }
    if (worker->inflight == worker->nslots && s_worker_grow(worker) != 0) return -1;
    if (worker->batch) {
        if (s_batch_add(self, worker, request, worker->identity ? caller : NULL,
                        worker->identity ? caller_size : 0) != 0)
            return -1;
    } else if (s_route(self, worker->addr, worker->addr_size, "worker") != 0) {
        return -1;
    }
    s_service_t *service = worker->service;

    size_t index = (worker->head + worker->inflight) % worker->nslots;
    while (worker->slots[index].busy)
        index = (index + 1) % worker->nslots;
    s_slot_t *slot = &worker->slots[index];
    if (s_request_copy(&slot->req, request) != 0) {
        s_request_close(&slot->req);
        return -1;
    }
    slot->req.tries = (uint8_t)(request->tries < 255 ? request->tries + 1 : 255);
    slot->busy = true;
    slot->delim = request->delim;
    slot->addr_size = (uint8_t)zmq_msg_size(&request->client);
    memcpy(slot->addr, zmq_msg_data(&request->client), slot->addr_size);
    zmq_msg_t *first = s_request_body(request, 0);
    slot->id = sam_broker_peek_id(zmq_msg_data(first), zmq_msg_size(first));
    if (worker->inflight++ == 0) worker->head = index;

    if (!worker->batch) {
        uint8_t command = SAM_MDPW_REQUEST;
        s_put(self, "", 0, true);
        s_put(self, SAM_MDPW, strlen(SAM_MDPW), true);
        s_put(self, &command, 1, true);
        s_put_part(self, &request->client, true);
        s_put(self, "", 0, true);
        if (worker->identity) s_put(self, caller, caller_size, true);
        for (uint16_t i = 0; i < request->nbody; i++)
            s_put_part(self, s_request_body(request, i), i + 1 < request->nbody);
    }
    s_request_close(request);

    /* Least recently used first: a worker that still has credit goes to the back. */
    s_free_unlink(service, worker);
    if (worker->inflight < worker->credit) s_free_append(service, worker);
    return 0;
}

/*  Drops the request at the head of a ring when its caller has stopped waiting (its
    deadline passed while it was queued): no worker spends time on it. Answered 504 all the
    same, for a caller that still listens. Returns true when it dropped one. */
static bool s_drop_expired(sam_broker_t *self, s_service_t *service, s_ring_t *ring, size_t i)
{
    s_request_t *request = s_ring_at(ring, i);
    if (self->now < request->deadline) return false;
    s_refuse(self, request, service->name, SAM_TIMEOUT,
             "the caller's deadline of %" PRId64 " ms passed while the request was queued",
             request->deadline - request->enqueued);
    s_ring_remove(ring, i);
    self->expired++;
    service->expired_now++;
    service->expired++;
    return true;
}

/*  Drops every request of a ring whose caller has stopped waiting, in one pass that keeps
    the others in order. For the rings whose requests may wait long and not in deadline
    order: held writes (no primary) and requests for one instance. */
static void s_ring_expire(sam_broker_t *self, s_service_t *service, s_ring_t *ring)
{
    size_t kept = 0, len = ring->len;
    for (size_t i = 0; i < len; i++) {
        s_request_t *request = s_ring_at(ring, i);
        if (self->now >= request->deadline) {
            s_refuse(self, request, service->name, SAM_TIMEOUT,
                     "the caller's deadline of %" PRId64 " ms passed while the request was queued",
                     request->deadline - request->enqueued);
            self->expired++;
            service->expired_now++;
            service->expired++;
        } else if (kept++ != i) {
            s_request_t *to = s_ring_at(ring, kept - 1);
            s_request_move(to, request);
        }
    }
    ring->len = kept;
}

/*  The queued request to hand out next and the worker to take it: of the requests that a
    worker with spare credit may take now, the one that arrived first. Each ring is in
    arrival order, so only its head can be the oldest — except `targeted`, which is walked
    (S_TARGETED_MAX bounds it: naming an instance is for operators, samctl promote and the
    like). False when no queued request can be served now.

    Why three rings and not one queue: a write or a request for one instance at the head of
    a single queue, with no worker that may take it, would hold back every read behind it
    (a service without a primary must still answer reads), and skipping ahead in one queue
    costs a walk over everything held at every dispatch. Kept apart, a held write costs a
    comparison of sequence numbers; reads and writes still leave in the order they came
    whenever both can go, and in the common case (no epochs, no standbys) every request's
    worker is the head of the free list, as before. */
static bool s_next(s_service_t *service, s_ring_t **ring, size_t *at, s_worker_t **worker)
{
    *ring = NULL;
    uint64_t oldest = UINT64_MAX;
    if (service->queue.len && service->free_head) {
        *ring = &service->queue;
        *at = 0;
        *worker = service->free_head;
        oldest = s_ring_at(&service->queue, 0)->seq;
    }
    if (service->writes.len) {
        s_request_t *head = s_ring_at(&service->writes, 0);
        s_worker_t *primary = head->seq < oldest ? s_free_for(service, head) : NULL;
        if (primary) {
            *ring = &service->writes;
            *at = 0;
            *worker = primary;
            oldest = head->seq;
        }
    }
    for (size_t i = 0; i < service->targeted.len; i++) {
        s_request_t *request = s_ring_at(&service->targeted, i);
        if (request->seq > oldest) break;
        s_worker_t *target = s_free_for(service, request);
        if (target) {
            *ring = &service->targeted;
            *at = i;
            *worker = target;
            break;
        }
    }
    return *ring != NULL;
}

/* Hands queued requests to workers with spare credit, oldest request first. */
static void s_service_dispatch(sam_broker_t *self, s_service_t *service)
{
    bool outer = !self->dispatching;
    self->dispatching = true;
    s_ring_t *ring;
    size_t at;
    s_worker_t *worker;
    while (service->free_head) {
        if (service->queue.len && s_drop_expired(self, service, &service->queue, 0)) continue;
        if (service->writes.len && s_drop_expired(self, service, &service->writes, 0)) continue;
        if (!s_next(service, &ring, &at, &worker)) break;
        if (s_worker_send_request(self, worker, s_ring_at(ring, at)) == 0)
            s_ring_remove(ring, at);
        else
            s_worker_lose(self, worker, "cannot send to the worker");
    }
    if (outer) self->dispatching = false;
}

/*  A worker that just registered takes its part in its service: a primary of a higher
    epoch than the service's raises it (and every primary of the lower one stops getting
    writes), one of the same epoch is one more primary, one of a lower epoch is fenced. */
static void s_worker_role(s_service_t *service, s_worker_t *worker)
{
    if (worker->standby) return;
    if (worker->epoch > service->epoch) {
        sam_info("service.epoch service=%s epoch=%" PRIu64 " previous=%" PRIu64 " instance=%s "
                 "fenced=%zu",
                 sam_logv(service->name), worker->epoch, service->epoch,
                 sam_logv(*worker->instance ? worker->instance : "-"), service->nprimaries);
        service->epoch = worker->epoch;
        service->nprimaries = 0;
    }
    if (worker->epoch == service->epoch)
        service->nprimaries++;
    else
        sam_warn("worker.fenced worker=%s service=%s instance=%s epoch=%" PRIu64
                 " service_epoch=%" PRIu64 " reason=\"a primary of a later epoch has "
                 "registered; it gets no writes\"",
                 worker->key, sam_logv(service->name),
                 sam_logv(*worker->instance ? worker->instance : "-"), worker->epoch,
                 service->epoch);
}

/*  READY: [worker] "" "MDPW01" 0x01 service [extension]
    A samordna extension frame is answered at once with
        [worker] "" "MDPW01" 0x04 "x-samordna/1 credit=N[ identity][ batch][ epoch=N][ standby]"
    listing what was accepted, before any request goes to the worker. */
static void s_worker_ready(sam_broker_t *self, s_msg_t *msg, int at, const char *key)
{
    zmq_msg_t *addr = &msg->part[0];
    char name[S_SERVICE_MAX + 1];
    if (at >= msg->count || !s_part_name(&msg->part[at], name)) {
        s_malformed(self, addr, "READY without a valid service name");
        s_command(self, zmq_msg_data(addr), zmq_msg_size(addr), SAM_MDPW_DISCONNECT, NULL);
        return;
    }
    if (strncmp(name, "mmi.", 4) == 0) {
        s_malformed(self, addr, "READY for a reserved mmi.* service");
        s_command(self, zmq_msg_data(addr), zmq_msg_size(addr), SAM_MDPW_DISCONNECT, NULL);
        return;
    }
    const sam_key_info_t *info = NULL;
    if (!self->insecure) {
        info = s_peer_info(self, msg);
        if (!info || strcmp(info->role, "service") != 0) {
            self->refused++;
            sam_warn("worker.refused worker=%s service=%s agency=%s role=%s reason=%s", key,
                     sam_logv(name), sam_logv(info ? info->agency : "-"),
                     sam_logv(info && info->role[0] ? info->role : "-"),
                     info ? "only a certificate of role service may register as a worker"
                          : "key not trusted (unknown or revoked)");
            s_command(self, zmq_msg_data(addr), zmq_msg_size(addr), SAM_MDPW_DISCONNECT, NULL);
            return;
        }
        if (!sam_keys_may_offer(info->services, name)) {
            self->refused++;
            sam_warn("worker.refused worker=%s service=%s agency=%s reason=%s", key, sam_logv(name),
                     sam_logv(info->agency),
                     sam_logv(*info->services ? "its certificate may offer only other services"
                                              : "its certificate names no services (make one "
                                                "with samctl keys new --role service "
                                                "--service NAME)"));
            s_command(self, zmq_msg_data(addr), zmq_msg_size(addr), SAM_MDPW_DISCONNECT, NULL);
            return;
        }
    }
    sam_broker_ext_t ext = {.credit = 1};
    bool extended = false;
    if (at + 1 < msg->count) {
        zmq_msg_t *extension = &msg->part[at + 1];
        extended =
            sam_broker_parse_extension(zmq_msg_data(extension), zmq_msg_size(extension), &ext);
        if (!extended)
            sam_warn("worker.extension_ignored worker=%s reason=\"not %s\"", key,
                     SAM_MDP_EXT_PREFIX);
    }
    s_service_t *service = s_service_require(self, name);
    s_worker_t *worker = calloc(1, sizeof *worker);
    uint32_t nslots = ext.credit < S_SLOTS_FIRST ? ext.credit : S_SLOTS_FIRST;
    s_slot_t *slots = calloc(nslots, sizeof *slots);
    if (!service || !worker || !slots) {
        free(worker);
        free(slots);
        sam_error("worker.refused worker=%s reason=\"out of memory\"", key);
        s_command(self, zmq_msg_data(addr), zmq_msg_size(addr), SAM_MDPW_DISCONNECT, NULL);
        return;
    }
    snprintf(worker->key, sizeof worker->key, "%s", key);
    worker->addr_size = (uint8_t)zmq_msg_size(addr);
    memcpy(worker->addr, zmq_msg_data(addr), worker->addr_size);
    worker->service = service;
    worker->credit = ext.credit;
    worker->identity = ext.identity;
    worker->batch = ext.batch;
    memcpy(worker->instance, ext.instance, sizeof worker->instance);
    memcpy(worker->version, ext.version, sizeof worker->version);
    worker->epoch = ext.epoch;
    worker->standby = ext.standby;
    worker->since = zclock_time();
    if (info) s_ext_word(info->agency, worker->agency, sizeof worker->agency);
    if (info) snprintf(worker->pubkey, sizeof worker->pubkey, "%s", s_peer_key(&msg->part[1]));
    worker->slots = slots;
    worker->nslots = nslots;
    worker->expiry = self->now + (int64_t)self->heartbeat_ms * self->liveness;
    zhashx_insert(self->workers, worker->key, worker);
    service->nworkers++;
    s_free_append(service, worker);
    sam_info("worker.ready worker=%s service=%s instance=%s version=%s credit=%u identity=%s "
             "batch=%s epoch=%" PRIu64 " role=%s",
             key, sam_logv(name), sam_logv(*ext.instance ? ext.instance : "-"),
             sam_logv(*ext.version ? ext.version : "-"), ext.credit, ext.identity ? "yes" : "no",
             ext.batch ? "yes" : "no", ext.epoch, ext.standby ? "standby" : "primary");
    s_worker_role(service, worker);
    if (extended) {
        char accepted[128];
        char epoch[32] = "";
        if (ext.epoch) snprintf(epoch, sizeof epoch, " epoch=%" PRIu64, ext.epoch);
        snprintf(accepted, sizeof accepted, "%s credit=%u%s%s%s%s", SAM_MDP_EXT_PREFIX, ext.credit,
                 ext.identity ? " identity" : "", ext.batch ? " batch" : "", epoch,
                 ext.standby ? " standby" : "");
        s_command(self, worker->addr, worker->addr_size, SAM_MDPW_HEARTBEAT, accepted);
    }
    s_service_dispatch(self, service);
}

/*  Frees the slot of the request a reply answers: the same client and id, else the oldest
    request of that client. Sets *delim and *id from the slot. False (logged) when the
    client has no request in flight to this worker. */
static bool s_slot_take(sam_broker_t *self, s_worker_t *worker, const uint8_t *caddr, size_t csize,
                        uint64_t id, bool *delim, uint64_t *slot_id)
{
    s_slot_t *slot = NULL;
    for (uint32_t n = 0, i = (uint32_t)worker->head; n < worker->nslots;
         n++, i = (i + 1) % worker->nslots) {
        s_slot_t *s = &worker->slots[i];
        if (!s->busy || s->addr_size != csize || memcmp(s->addr, caddr, csize) != 0) continue;
        if (s->id == id) {
            slot = s;
            break;
        }
        if (!slot) slot = s;
    }
    if (!slot) {
        char hex[S_HEX_MAX];
        self->malformed++;
        sam_warn("reply.unknown_client worker=%s client=%s reason=\"no request of that client "
                 "is in flight to this worker\"",
                 worker->key, s_hex(caddr, csize, hex));
        return false;
    }
    *delim = slot->delim;
    *slot_id = slot->id;
    slot->busy = false;
    s_request_close(&slot->req);
    worker->inflight--;
    while (worker->inflight && !worker->slots[worker->head].busy)
        worker->head = (worker->head + 1) % worker->nslots;
    return true;
}

/*  Starts passing a worker's reply to its client, [client] [""] "MDPC01" service, after the
    checks every reply goes through: one that is malformed or over --max-msg becomes the
    broker's own error reply. True when the caller is to send the body frames. */
static bool s_reply_start(sam_broker_t *self, s_worker_t *worker, zmq_msg_t *addr,
                          const uint8_t *caddr, size_t csize, uint64_t id, bool well_formed,
                          size_t bytes)
{
    s_service_t *service = worker->service;
    bool delim;
    uint64_t slot_id;
    if (!s_slot_take(self, worker, caddr, csize, id, &delim, &slot_id)) return false;
    if (!well_formed) {
        s_malformed(self, addr, "REPLY without an empty delimiter and a body");
        s_send_error(self, caddr, csize, delim, service->name, slot_id, SAM_INTERNAL,
                     "the worker sent a malformed reply");
        return false;
    }
    if (bytes > self->max_msg) {
        char text[160];
        snprintf(text, sizeof text, "reply of %zu bytes is over the broker's limit of %zu bytes",
                 bytes, self->max_msg);
        sam_warn("reply.too_large worker=%s service=%s size=%zu max=%zu", worker->key,
                 sam_logv(service->name), bytes, self->max_msg);
        s_send_error(self, caddr, csize, delim, service->name, slot_id, SAM_TOO_LARGE, text);
        return false;
    }
    if (s_route(self, caddr, csize, "client") != 0) return false;
    if (delim) s_put(self, "", 0, true);
    s_put(self, SAM_MDPC, strlen(SAM_MDPC), true);
    s_put(self, service->name, strlen(service->name), true);
    self->replies++;
    service->replies++;
    return true;
}

/* After replies freed credit: the worker takes queued requests again. */
static void s_worker_freed(sam_broker_t *self, s_worker_t *worker)
{
    if (!worker->listed && worker->inflight < worker->credit)
        s_free_append(worker->service, worker);
    s_service_dispatch(self, worker->service);
}

/*  REPLY: [worker] "" "MDPW01" 0x03 client "" body…
    goes to the client as [client] [""] "MDPC01" service body…
    `at` is the index of the client frame. */
static void s_worker_reply(sam_broker_t *self, s_worker_t *worker, s_msg_t *msg, int at)
{
    zmq_msg_t *addr = &msg->part[0];
    if (at >= msg->count || zmq_msg_size(&msg->part[at]) == 0 ||
        zmq_msg_size(&msg->part[at]) > S_ADDR_MAX) {
        s_malformed(self, addr, "REPLY without a client address");
        return;
    }
    zmq_msg_t *client = &msg->part[at];
    bool well_formed = at + 2 < msg->count && zmq_msg_size(&msg->part[at + 1]) == 0;
    zmq_msg_t *body = well_formed ? &msg->part[at + 2] : NULL;
    uint64_t id = body ? sam_broker_peek_id(zmq_msg_data(body), zmq_msg_size(body)) : 0;
    if (s_reply_start(self, worker, addr, zmq_msg_data(client), zmq_msg_size(client), id,
                      well_formed && !msg->truncated, msg->bytes))
        for (int i = at + 2; i < msg->count; i++)
            s_put_part(self, &msg->part[i], i + 1 < msg->count);
    s_worker_freed(self, worker);
}

/*  REPLY from a batch worker: [worker] "" "MDPW01" 0x03 Batch; each item goes to its client
    as a REPLY would. Items before a malformed part of the frame are delivered. */
static void s_worker_batch_reply(sam_broker_t *self, s_worker_t *worker, s_msg_t *msg, int at)
{
    zmq_msg_t *addr = &msg->part[0];
    sam_batch_reader_t reader;
    sam_batch_reader_init(&reader, zmq_msg_data(&msg->part[at]), zmq_msg_size(&msg->part[at]));
    sam_delivery_t item;
    int rc;
    while ((rc = sam_batch_next(&reader, &item)) == 1) {
        if (item.client_len == 0 || item.client_len > S_ADDR_MAX) {
            s_malformed(self, addr, "REPLY batch item without a client address");
            continue;
        }
        uint64_t id = item.nbody ? sam_broker_peek_id(item.body[0].data, item.body[0].len) : 0;
        if (s_reply_start(self, worker, addr, item.client, item.client_len, id, item.nbody > 0,
                          item.bytes))
            for (size_t i = 0; i < item.nbody; i++)
                s_put(self, item.body[i].data, item.body[i].len, i + 1 < item.nbody);
    }
    if (rc < 0) s_malformed(self, addr, "REPLY batch that is not a samordna.v1.Batch");
    s_worker_freed(self, worker);
}

/*  Everything a worker sends: [worker] "" "MDPW01" command … ; `at` is the index of the
    command frame. */
static void s_worker_message(sam_broker_t *self, s_msg_t *msg, int at)
{
    zmq_msg_t *addr = &msg->part[0];
    char key[S_HEX_MAX];
    s_hex(zmq_msg_data(addr), zmq_msg_size(addr), key);
    if (at >= msg->count || zmq_msg_size(&msg->part[at]) != 1) {
        s_malformed(self, addr, "worker message without a one-byte command");
        return;
    }
    uint8_t code = ((uint8_t *)zmq_msg_data(&msg->part[at]))[0];
    s_worker_t *worker = zhashx_lookup(self->workers, key);

    if (!worker) {
        if (code == SAM_MDPW_READY) {
            if (msg->truncated || msg->bytes > 2 * S_SERVICE_MAX + 64)
                s_malformed(self, addr, "READY is too large");
            else
                s_worker_ready(self, msg, at + 1, key);
        } else if (code == SAM_MDPW_HEARTBEAT || code == SAM_MDPW_REPLY) {
            /* a worker of a broker that restarted, or one purged a moment ago: ordinary
               traffic, answered as 7/MDP says, so that it registers again */
            if (s_fold(self, "worker.unknown", key, "not registered here"))
                sam_info("worker.unknown worker=%s command=0x%02x action=disconnect "
                         "reason=\"not registered here (a broker restart?); it is asked to "
                         "register again\"",
                         key, code);
            s_command(self, zmq_msg_data(addr), zmq_msg_size(addr), SAM_MDPW_DISCONNECT, NULL);
        } else if (code != SAM_MDPW_DISCONNECT) {
            char reason[80];
            snprintf(reason, sizeof reason, "command 0x%02x from a worker that is not registered",
                     code);
            s_malformed(self, addr, reason);
            s_command(self, zmq_msg_data(addr), zmq_msg_size(addr), SAM_MDPW_DISCONNECT, NULL);
        }
        return;
    }
    worker->expiry = self->now + (int64_t)self->heartbeat_ms * self->liveness;
    switch (code) {
    case SAM_MDPW_REPLY:
        if (worker->batch && at + 2 == msg->count && !msg->truncated)
            s_worker_batch_reply(self, worker, msg, at + 1);
        else
            s_worker_reply(self, worker, msg, at + 1);
        break;
    case SAM_MDPW_HEARTBEAT:
        break;
    case SAM_MDPW_DISCONNECT:
        s_worker_delete(self, worker, false, "the worker disconnected");
        break;
    case SAM_MDPW_READY:
        s_malformed(self, addr, "READY from a worker that is already registered");
        s_worker_delete(self, worker, true, "READY twice");
        break;
    default: {
        char reason[64];
        snprintf(reason, sizeof reason, "unknown worker command 0x%02x", code);
        s_malformed(self, addr, reason);
    }
    }
}

/* ---- clients --------------------------------------------------------------------------- */

/*  8/MMI: "mmi.service" with a service name answers "200" when a worker offers it, else
    "404"; any other mmi.* answers "501". Reply: [client] [""] "MDPC01" mmi.name answer */
/*  mmi.workers: what samctl status shows of this broker, as JSON text (MMI bodies are plain
    strings): its counters, and per service its queue and every worker. Caller frees; NULL on
    out of memory. */
static char *s_workers_json(sam_broker_t *self)
{
    size_t queued = 0;
    json_t *services = json_array();
    for (s_service_t *s = zhashx_first(self->services); s; s = zhashx_next(self->services)) {
        queued += s_queued(s);
        json_t *workers = json_array();
        for (s_worker_t *w = zhashx_first(self->workers); w; w = zhashx_next(self->workers))
            if (w->service == s)
                json_array_append_new(
                    workers,
                    json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:b}", "instance",
                              w->instance, "version", w->version, "agency", w->agency, "credit",
                              (json_int_t)w->credit, "inflight", (json_int_t)w->inflight,
                              "since_ms", (json_int_t)w->since, "epoch", (json_int_t)w->epoch,
                              "role", w->standby ? "standby" : "primary", "writes",
                              s_worker_writes(w)));
        json_array_append_new(
            services,
            json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "name", s->name,
                      "queued", (json_int_t)s_queued(s), "writes_queued", (json_int_t)s->writes.len,
                      "requests", (json_int_t)s->requests, "replies", (json_int_t)s->replies,
                      "expired", (json_int_t)s->expired, "busy", (json_int_t)s->busy, "epoch",
                      (json_int_t)s->epoch, "primaries", (json_int_t)s->nprimaries, "workers",
                      workers));
    }
    json_t *j = json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "version", SAMORDNA_VERSION,
        "requests", (json_int_t)self->requests, "replies", (json_int_t)self->replies, "errors",
        (json_int_t)self->errors, "malformed", (json_int_t)self->malformed, "untrusted",
        (json_int_t)self->refused, "expired", (json_int_t)self->expired, "redispatched",
        (json_int_t)self->redispatched, "lost_workers", (json_int_t)self->purged, "queued",
        (json_int_t)queued, "services", services);
    char *out = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    return out;
}

static void s_mmi_request(sam_broker_t *self, s_msg_t *msg, bool delim, const char *name, int at)
{
    const char *answer = "501";
    char *text = NULL;
    if (strcmp(name, "mmi.service") == 0) {
        char wanted[S_SERVICE_MAX + 1];
        s_service_t *service =
            s_part_name(&msg->part[at], wanted) ? zhashx_lookup(self->services, wanted) : NULL;
        answer = service && service->nworkers ? "200" : "404";
    } else if (strcmp(name, "mmi.heartbeat") == 0) {
        answer = "200"; /* a client's heartbeat (docs/protocol.md, "Clients of several brokers") */
    } else if (strcmp(name, "mmi.workers") == 0) {
        /* who runs where is for the operators: admins only when keys are checked */
        const sam_key_info_t *info = self->insecure ? NULL : s_peer_info(self, msg);
        if (!self->insecure && (!info || strcmp(info->role, "admin") != 0))
            answer = "403";
        else
            answer = (text = s_workers_json(self)) ? text : "500";
    }
    zmq_msg_t *addr = &msg->part[0];
    if (s_route(self, zmq_msg_data(addr), zmq_msg_size(addr), "client") == 0) {
        if (delim) s_put(self, "", 0, true);
        s_put(self, SAM_MDPC, strlen(SAM_MDPC), true);
        s_put(self, name, strlen(name), true);
        s_put(self, answer, strlen(answer), false);
    }
    free(text);
}

/*  Refuses a request that presents a caller (Request.on_behalf: `data`, `len` bytes) from a
    certificate (`info`) that may not, or presents one that is malformed: 403 or 400 and a
    log line, at once, so it is never queued. `at` is the index of the first body frame.
    True when it was refused. */
static bool s_presents_badly(sam_broker_t *self, s_msg_t *msg, bool delim, const char *name, int at,
                             const sam_key_info_t *info, const uint8_t *data, size_t len)
{
    Samordna__V1__OnBehalf *presented;
    const char *why = NULL;
    int rc = s_presented(info, data, len, &presented, &why);
    if (presented) samordna__v1__on_behalf__free_unpacked(presented, NULL);
    if (rc <= 1) return false;
    zmq_msg_t *addr = &msg->part[0];
    char hex[S_HEX_MAX];
    const char *key = s_peer_key(&msg->part[1]);
    self->refused++;
    s_hex(zmq_msg_data(addr), zmq_msg_size(addr), hex);
    if (s_fold(self, "request.refused", key ? key : hex, why))
        sam_warn("request.refused client=%s service=%s key=%s agency=%s role=%s code=%d "
                 "reason=%s",
                 hex, sam_logv(name), sam_logv(key ? key : "-"), sam_logv(info->agency),
                 sam_logv(info->role), rc, sam_logv(why));
    s_send_error(self, zmq_msg_data(addr), zmq_msg_size(addr), delim, name,
                 sam_broker_peek_id(zmq_msg_data(&msg->part[at]), zmq_msg_size(&msg->part[at])),
                 (uint32_t)rc, why);
    return true;
}

/*  A client request: [client] [""] "MDPC01" service body… ; `at` is the index of the
    service frame. It goes to a worker now, waits in the service's queue, or is refused at
    once (413 too large, 429 queue full). */
static void s_client_request(sam_broker_t *self, s_msg_t *msg, bool delim, int at)
{
    zmq_msg_t *addr = &msg->part[0];
    char name[S_SERVICE_MAX + 1];
    if (at >= msg->count || !s_part_name(&msg->part[at], name)) {
        s_malformed(self, addr, "client request without a valid service name");
        return;
    }
    if (at + 1 >= msg->count) {
        s_malformed(self, addr, "client request without a body");
        return;
    }
    if (msg->truncated) {
        s_malformed(self, addr, "client request of too many frames");
        return;
    }
    const sam_key_info_t *info = self->insecure ? NULL : s_peer_info(self, msg);
    if (!self->insecure && !info) {
        char hex[S_HEX_MAX];
        self->refused++;
        const char *key = s_peer_key(&msg->part[1]);
        s_hex(zmq_msg_data(addr), zmq_msg_size(addr), hex);
        if (s_fold(self, "request.refused", key ? key : hex, "key not trusted"))
            sam_warn("request.refused client=%s service=%s key=%s reason=\"key not trusted "
                     "(unknown or revoked)\"",
                     hex, sam_logv(name), sam_logv(key ? key : "-"));
        uint64_t id = at + 1 < msg->count ? sam_broker_peek_id(zmq_msg_data(&msg->part[at + 1]),
                                                               zmq_msg_size(&msg->part[at + 1]))
                                          : 0;
        s_send_error(self, zmq_msg_data(addr), zmq_msg_size(addr), delim, name, id,
                     SAM_UNAUTHORIZED,
                     "the caller's key is not trusted by the broker (unknown or revoked)");
        return;
    }
    if (strncmp(name, "mmi.", 4) == 0) {
        s_mmi_request(self, msg, delim, name, at + 1);
        return;
    }
    self->requests++;

    sam_broker_peek_t peek;
    zmq_msg_t *first = &msg->part[at + 1];
    sam_broker_peek(zmq_msg_data(first), zmq_msg_size(first), &peek);
    if (peek.on_behalf && !self->insecure &&
        s_presents_badly(self, msg, delim, name, at + 1, info, peek.on_behalf, peek.on_behalf_len))
        return;
    uint32_t wait_ms = peek.timeout_ms > S_DEADLINE_MAX_MS ? S_DEADLINE_MAX_MS : peek.timeout_ms;
    s_request_t request = {
        .delim = delim,
        .enqueued = self->now,
        .deadline = self->now + (wait_ms ? (int64_t)wait_ms : (int64_t)self->request_timeout_ms),
        .route =
            (uint8_t)((peek.write ? S_ROUTE_WRITE : 0) | (peek.instance ? S_ROUTE_INSTANCE : 0))};
    if (peek.instance) { /* an offset, not a pointer: a small frame's bytes move with it */
        request.inst_off = (uint32_t)(peek.instance - (const uint8_t *)zmq_msg_data(first));
        request.inst_len =
            (uint16_t)(peek.instance_len > UINT16_MAX ? UINT16_MAX : peek.instance_len);
    }
    zmq_msg_init(&request.client);
    zmq_msg_move(&request.client, addr);
    zmq_msg_init(&request.body);
    request.nbody = (uint16_t)(msg->count - at - 1);
    if (request.nbody == 1) {
        zmq_msg_move(&request.body, &msg->part[at + 1]);
    } else if ((request.bodies = malloc(request.nbody * sizeof *request.bodies))) {
        for (uint16_t i = 0; i < request.nbody; i++) {
            zmq_msg_init(&request.bodies[i]);
            zmq_msg_move(&request.bodies[i], &msg->part[at + 1 + i]);
        }
    } else {
        request.nbody = 0;
        s_refuse(self, &request, name, SAM_INTERNAL, "broker out of memory");
        return;
    }

    if (msg->bytes > self->max_msg) {
        char hex[S_HEX_MAX];
        sam_warn("request.too_large client=%s service=%s size=%zu max=%zu",
                 s_hex(zmq_msg_data(&request.client), zmq_msg_size(&request.client), hex),
                 sam_logv(name), msg->bytes, self->max_msg);
        s_refuse(self, &request, name, SAM_TOO_LARGE,
                 "message of %zu bytes is over the broker's limit of %zu bytes", msg->bytes,
                 self->max_msg);
        return;
    }
    s_service_t *service = s_service_require(self, name);
    if (!service) {
        s_refuse(self, &request, name, SAM_INTERNAL, "broker out of memory");
        return;
    }
    service->requests++;
    request.seq = ++service->seq;
    /* at once when nothing queued in its ring comes first (queued targeted requests are for
       workers without credit, else they would have gone) and a worker may take it */
    s_ring_t *ring = s_ring_for(service, &request);
    s_worker_t *worker;
    while ((ring->len == 0 || ring == &service->targeted) &&
           (worker = s_free_for(service, &request))) {
        if (s_worker_send_request(self, worker, &request) == 0) return;
        s_worker_lose(self, worker, "cannot send to the worker");
    }
    if (ring == &service->targeted && ring->len >= S_TARGETED_MAX) {
        service->busy++;
        if (s_fold(self, "request.refused", sam_logv(name), "too many for single instances"))
            sam_warn("request.refused service=%s reason=\"requests for single instances "
                     "(Request.instance) waiting\" queued=%zu",
                     sam_logv(name), ring->len);
        s_refuse(self, &request, name, SAM_BUSY,
                 "%d requests for single instances of service '%s' are waiting already",
                 S_TARGETED_MAX, name);
        return;
    }
    size_t queued = s_queued(service);
    if (queued >= self->queue_max) {
        /* At most one line a second per service: a full queue means a flood. */
        service->busy_refused++;
        service->busy++;
        if (self->now >= service->busy_logged + 1000) {
            sam_warn("request.refused service=%s reason=\"queue full\" queued=%zu "
                     "refused=%" PRIu64,
                     sam_logv(name), queued, service->busy_refused);
            service->busy_logged = self->now;
            service->busy_refused = 0;
        }
        s_refuse(self, &request, name, SAM_BUSY,
                 "the queue for service '%s' is full (%zu requests waiting)", name, queued);
        return;
    }
    if ((request.route & S_ROUTE_WRITE) && service->nworkers && service->nprimaries == 0) {
        /* workers, but none that takes writes: one line per interval and service */
        char reason[96];
        snprintf(reason, sizeof reason, "no primary of epoch %" PRIu64 " is registered",
                 service->epoch);
        if (s_fold(self, "request.held", sam_logv(name), reason))
            sam_warn("request.held service=%s epoch=%" PRIu64 " workers=%zu queued=%zu "
                     "reason=%s",
                     sam_logv(name), service->epoch, service->nworkers, service->writes.len + 1,
                     sam_logv(reason));
    }
    if (s_ring_push(ring, &request) != 0)
        s_refuse(self, &request, name, SAM_INTERNAL, "broker out of memory");
}

/*  Every message on the socket: [peer] [""] header … ; the header decides who speaks. */
static void s_on_message(sam_broker_t *self, s_msg_t *msg)
{
    zmq_msg_t *addr = &msg->part[0];
    if (zmq_msg_size(addr) == 0 || zmq_msg_size(addr) > S_ADDR_MAX) {
        self->malformed++;
        sam_warn("message.malformed peer=- reason=\"message without a routing id\"");
        return;
    }
    int at = 1;
    bool delim = false;
    if (at < msg->count && zmq_msg_size(&msg->part[at]) == 0) {
        delim = true;
        at++;
    }
    if (at >= msg->count)
        s_malformed(self, addr, "empty message");
    else if (s_part_is(&msg->part[at], SAM_MDPC))
        s_client_request(self, msg, delim, at + 1);
    else if (s_part_is(&msg->part[at], SAM_MDPW))
        s_worker_message(self, msg, at + 1);
    else
        s_malformed(self, addr, "unknown protocol header");
}

/* ---- timers ---------------------------------------------------------------------------- */

static void s_log_stats(sam_broker_t *self, const char *event)
{
    size_t queued = 0;
    for (s_service_t *s = zhashx_first(self->services); s; s = zhashx_next(self->services))
        queued += s_queued(s);
    sam_info("%s requests=%" PRIu64 " replies=%" PRIu64 " errors=%" PRIu64 " malformed=%" PRIu64
             " untrusted=%" PRIu64 " expired=%" PRIu64 " redispatched=%" PRIu64
             " workers=%zu services=%zu queued=%zu lost_workers=%" PRIu64,
             event, self->requests, self->replies, self->errors, self->malformed, self->refused,
             self->expired, self->redispatched, zhashx_size(self->workers),
             zhashx_size(self->services), queued, self->purged);
}

/*  Requests for a service that has had no worker for request_timeout_ms get 503; a
    service with neither workers nor requests is forgotten. */
static void s_expire_queues(sam_broker_t *self)
{
    zlist_t *idle = NULL;
    for (s_service_t *service = zhashx_first(self->services); service;
         service = zhashx_next(self->services)) {
        /* a service without workers answers "no worker" below, after its own wait; held
           writes and requests for one instance are each checked (s_ring_expire) */
        s_ring_t *rings[] = {&service->queue, &service->writes, &service->targeted};
        while (service->nworkers && service->queue.len &&
               s_drop_expired(self, service, &service->queue, 0))
            ;
        if (service->nworkers && service->writes.len)
            s_ring_expire(self, service, &service->writes);
        if (service->nworkers && service->targeted.len)
            s_ring_expire(self, service, &service->targeted);
        if (service->expired_now) /* one line per service and tick */
            sam_warn("request.dropped service=%s count=%" PRIu64
                     " reason=\"the caller's deadline passed while it was queued\"",
                     sam_logv(service->name), service->expired_now);
        service->expired_now = 0;
        if (service->nworkers) continue;
        size_t expired = 0;
        for (size_t r = 0; r < sizeof rings / sizeof rings[0]; r++)
            while (rings[r]->len) {
                s_request_t *head = s_ring_at(rings[r], 0);
                int64_t since =
                    head->enqueued > service->orphaned_at ? head->enqueued : service->orphaned_at;
                if (self->now < since + self->request_timeout_ms) break;
                s_refuse(self, head, service->name, SAM_UNAVAILABLE,
                         "no worker for service '%s' within %d ms", service->name,
                         self->request_timeout_ms);
                s_ring_remove(rings[r], 0);
                expired++;
            }
        if (expired) /* one line per service and tick, not one per request */
            sam_warn("request.expired service=%s count=%zu timeout_ms=%d", sam_logv(service->name),
                     expired, self->request_timeout_ms);
        if (s_queued(service) == 0) {
            if (!idle) idle = zlist_new();
            if (idle) zlist_append(idle, service->name);
        }
    }
    if (!idle) return;
    for (char *name = zlist_first(idle); name; name = zlist_next(idle)) {
        s_service_t *gone = zhashx_lookup(self->services, name);
        uint64_t *keep = gone && gone->epoch && self->epochs ? malloc(sizeof *keep) : NULL;
        if (keep) {
            *keep = gone->epoch;
            zhashx_update(self->epochs, name, keep);
        }
        zhashx_delete(self->services, name); /* frees the name only after the delete */
    }
    zlist_destroy(&idle);
}

/* Sends HEARTBEAT to every worker and purges those silent past their liveness. */
static void s_heartbeat(sam_broker_t *self)
{
    zlist_t *expired = NULL;
    for (s_worker_t *worker = zhashx_first(self->workers); worker;
         worker = zhashx_next(self->workers)) {
        if (worker->expiry < self->now) { /* silent past its liveness */
            if (!expired) expired = zlist_new();
            if (expired) zlist_append(expired, worker);
        } else if (!worker->lost &&
                   s_command(self, worker->addr, worker->addr_size, SAM_MDPW_HEARTBEAT, NULL) !=
                       0 &&
                   self->send_errno == EHOSTUNREACH) {
            s_worker_lose(self, worker, "its connection is gone"); /* removed once read dry */
        }
    }
    if (!expired) return;
    for (s_worker_t *worker = zlist_first(expired); worker; worker = zlist_next(expired))
        s_worker_delete(self, worker, false, "silent past its heartbeat liveness");
    zlist_destroy(&expired);
}

/*  Reloads the certificate directory when it changed; workers whose key is gone are
    disconnected at once (clients with a revoked key are refused request by request). */
static void s_refresh_keys(sam_broker_t *self)
{
    bool full = self->now >= self->next_keys_full;
    int removed = sam_keyring_refresh(self->keyring, full);
    self->next_keys = self->now + S_KEYS_MS;
    if (full) self->next_keys_full = self->now + S_KEYS_FULL_MS;
    if (removed < 0)
        sam_error("keys.unreadable reason=\"the certificate directory cannot be read; no key "
                  "is trusted until it can\"");
    if (removed == 0 && !self->keys_removed) return;
    self->keys_removed = false;
    sam_info("keys.reloaded trusted=%zu removed=%d", sam_keyring_size(self->keyring),
             removed > 0 ? removed : 0);
    zlist_t *revoked = zlist_new();
    for (s_worker_t *worker = zhashx_first(self->workers); worker && revoked;
         worker = zhashx_next(self->workers))
        if (!sam_keyring_lookup(self->keyring, worker->pubkey)) zlist_append(revoked, worker);
    for (s_worker_t *worker = zlist_first(revoked); worker; worker = zlist_next(revoked))
        s_worker_delete(self, worker, true, "its key was revoked");
    zlist_destroy(&revoked);
}

/*  Revocation at once: the kernel queues an inotify event on the certificate directory as
    the file is removed, so draining that queue before each message (one read that finds
    nothing, almost always; only with CURVE) reloads the keyring before any request that
    arrives after the change is handled. The once-a-second check stays, for folders inotify cannot
   watch. */
static void s_watch_keys(sam_broker_t *self)
{
    if (self->keys_watch < 0) return;
    char buf[4096];
    bool changed = false;
    while (read(self->keys_watch, buf, sizeof buf) > 0)
        changed = true;
    if (!changed) return;
    self->next_keys_full = self->now; /* a full reload: a rewritten file keeps its size */
    s_refresh_keys(self);
}

/*  Memory back to the system. A thousand clients connecting and leaving make libzmq's I/O
    threads allocate and free per connection in their own malloc arenas; the freed chunks
    stay with the process (measured: 8 MB → 86 MB over three such rounds, back to 9 MB by
    malloc_trim — retention, not a leak: LeakSanitizer finds nothing). Trimming every ten
    seconds bounds the broker's RSS under churn at the cost of a few milliseconds. */
static void s_trim(sam_broker_t *self)
{
    if (self->now < self->next_trim) return;
    self->next_trim = self->now + S_TRIM_MS;
    malloc_trim(0);
}

/*  The counters as metrics (--metrics): copied from the broker's own numbers once a tick, so
    the routing path never takes the registry's lock. */
static void s_publish_metrics(sam_broker_t *self)
{
    if (!self->metrics) return;
    for (s_service_t *s = zhashx_first(self->services); s; s = zhashx_next(self->services)) {
        const char *const label[] = {s->name};
        sam_metric_set(self->m_requests, label, (double)s->requests);
        sam_metric_set(self->m_replies, label, (double)s->replies);
        sam_metric_set(self->m_expired, label, (double)s->expired);
        sam_metric_set(self->m_busy, label, (double)s->busy);
        sam_metric_set(self->m_queue, label, (double)s_queued(s));
        sam_metric_set(self->m_workers, label, (double)s->nworkers);
    }
    sam_metric_set(self->m_errors, NULL, (double)self->errors);
    sam_metric_set(self->m_malformed, NULL, (double)self->malformed);
    sam_metric_set(self->m_untrusted, NULL, (double)self->refused);
    sam_metric_set(self->m_redispatched, NULL, (double)self->redispatched);
    sam_metric_set(self->m_lost, NULL, (double)self->purged);
}

static void s_declare_metrics(sam_broker_t *self)
{
    sam_metrics_t *m = self->metrics;
    if (!m) return;
    self->m_requests = sam_metrics_counter(m, "broker_requests_total",
                                           "Client requests routed to a service.", "service");
    self->m_replies = sam_metrics_counter(m, "broker_replies_total",
                                          "Worker replies forwarded to clients.", "service");
    self->m_expired =
        sam_metrics_counter(m, "broker_expired_total",
                            "Queued requests dropped: their caller's deadline passed.", "service");
    self->m_busy = sam_metrics_counter(m, "broker_busy_total",
                                       "Requests refused with 429: the queue was full.", "service");
    self->m_queue = sam_metrics_gauge(m, "broker_queue_depth",
                                      "Requests waiting for a worker of the service.", "service");
    self->m_workers =
        sam_metrics_gauge(m, "broker_workers", "Workers offering the service.", "service");
    self->m_errors = sam_metrics_counter(m, "broker_errors_total",
                                         "Error replies the broker made itself.", NULL);
    self->m_malformed =
        sam_metrics_counter(m, "broker_malformed_total", "Messages dropped as malformed.", NULL);
    self->m_untrusted = sam_metrics_counter(
        m, "broker_untrusted_total", "Requests refused for an untrusted or revoked key.", NULL);
    self->m_redispatched = sam_metrics_counter(
        m, "broker_redispatched_total", "Requests of lost workers handed to another worker.", NULL);
    self->m_lost = sam_metrics_counter(m, "broker_lost_workers_total",
                                       "Workers purged for silence or lost.", NULL);
}

static void s_tick(sam_broker_t *self)
{
    s_fold_flush(self, false);
    s_trim(self);
    if (self->keyring && self->now >= self->next_keys) s_refresh_keys(self);
    if (self->now >= self->next_heartbeat) {
        s_heartbeat(self);
        self->next_heartbeat = self->now + self->heartbeat_ms;
    }
    s_expire_queues(self);
    if (self->now >= self->next_stats) {
        s_log_stats(self, "broker.stats");
        self->next_stats = self->now + S_STATS_MS;
    }
    s_publish_metrics(self);
    int64_t next = self->now + S_TICK_MS;
    self->next_tick = next < self->next_heartbeat ? next : self->next_heartbeat;
}

/* ---- lifecycle ------------------------------------------------------------------------- */

/*  CURVE on the router: the broker's own certificate, the ZAP handler over the trusted
    directory, and the broker's own table of it. Before any bind. Returns 0 or -1 (logged). */
static int s_curve_setup(sam_broker_t *self, const sam_broker_config_t *config)
{
    char err[512];
    if (sam_keys_check_secret(config->cert, err, sizeof err) != 0) {
        char why[300];
        snprintf(why, sizeof why, "--cert: %.250s", err);
        sam_error("broker.refused reason=%s", sam_logv(why));
        return -1;
    }
    self->keyring = sam_keyring_new(config->curve_dir);
    if (!self->keyring) {
        char why[300];
        snprintf(why, sizeof why, "--curve-dir: cannot read folder %.250s", config->curve_dir);
        sam_error("broker.refused reason=%s", sam_logv(why));
        return -1;
    }
    self->auth = zactor_new(zauth, NULL);
    if (!self->auth) {
        sam_error("broker.refused reason=\"cannot start the ZAP handler\"");
        return -1;
    }
    zstr_sendx(self->auth, "CURVE", config->curve_dir, NULL);
    zsock_wait(self->auth);
    zcert_t *cert = zcert_load(config->cert);
    if (!cert) {
        char why[300];
        snprintf(why, sizeof why, "--cert: cannot read %.250s", config->cert);
        sam_error("broker.refused reason=%s", sam_logv(why));
        return -1;
    }
    zcert_apply(cert, self->router);
    self->keys_watch = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (self->keys_watch >= 0 &&
        inotify_add_watch(self->keys_watch, config->curve_dir,
                          IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE |
                              IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF) < 0) {
        close(self->keys_watch);
        self->keys_watch = -1;
    }
    if (self->keys_watch < 0) {
        char why[200];
        snprintf(why, sizeof why, "inotify: %s; revocation is checked once a second",
                 strerror(errno));
        sam_warn("keys.unwatched curve_dir=%s reason=%s", sam_logv(config->curve_dir),
                 sam_logv(why));
    }
    sam_info("broker.curve public_key=%s curve_dir=%s trusted_keys=%zu", zcert_public_txt(cert),
             sam_logv(config->curve_dir), sam_keyring_size(self->keyring));
    zcert_destroy(&cert);
    zsock_set_curve_server(self->router, 1);
    zsock_set_zap_domain(self->router, S_ZAP_DOMAIN);
    return 0;
}

sam_broker_t *sam_broker_new(const sam_broker_config_t *config)
{
    if (!config->insecure && (!config->curve_dir || !config->cert)) {
        sam_error("broker.refused reason=\"CURVE needs --curve-dir (trusted certificates) and "
                  "--cert (the broker's secret certificate); --insecure runs without, on "
                  "loopback only\"");
        return NULL;
    }
    if (config->nbinds == 0) {
        sam_error("broker.refused reason=\"no endpoint to bind\"");
        return NULL;
    }
    for (size_t i = 0; config->insecure && i < config->nbinds; i++)
        if (!sam_broker_endpoint_is_loopback(config->binds[i])) {
            sam_error("broker.refused endpoint=%s reason=\"--insecure is only allowed on "
                      "loopback endpoints (127.0.0.0/8, [::1], localhost, ipc://, inproc://); "
                      "CURVE is required for any other\"",
                      sam_logv(config->binds[i]));
            return NULL;
        }
    if (config->heartbeat_ms < 1 || config->liveness < 1 || config->request_timeout_ms < 0 ||
        config->queue_max < 1 || config->max_msg < 1) {
        sam_error("broker.refused reason=\"heartbeat, liveness, queue and size limits must be "
                  "positive\"");
        return NULL;
    }

    sam_broker_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    self->keys_watch = -1;
    self->folds = zhashx_new();
    if (self->folds) zhashx_set_destructor(self->folds, s_fold_free);
    self->heartbeat_ms = config->heartbeat_ms;
    self->liveness = config->liveness;
    self->request_timeout_ms = config->request_timeout_ms;
    self->queue_max = config->queue_max;
    self->max_msg = config->max_msg;
    self->insecure = config->insecure;
    self->metrics = config->metrics;
    s_declare_metrics(self);
    self->services = zhashx_new();
    self->epochs = zhashx_new();
    if (self->epochs) zhashx_set_destructor(self->epochs, s_epoch_free);
    self->workers = zhashx_new();
    Samordna__V1__Caller caller = SAMORDNA__V1__CALLER__INIT;
    caller.insecure = true;
    caller.role = "admin";
    self->caller_size = samordna__v1__caller__get_packed_size(&caller);
    self->caller = malloc(self->caller_size ? self->caller_size : 1);
    self->router = zsock_new(ZMQ_ROUTER);
    if (!self->services || !self->workers || !self->caller || !self->router) {
        sam_error("broker.refused reason=\"cannot create the socket or tables\"");
        sam_broker_destroy(&self);
        return NULL;
    }
    samordna__v1__caller__pack(&caller, self->caller);
    zhashx_set_destructor(self->services, s_service_destroy);
    zhashx_set_destructor(self->workers, s_worker_destroy);
    if (!self->insecure && s_curve_setup(self, config) != 0) {
        sam_broker_destroy(&self);
        return NULL;
    }

    self->handle = zsock_resolve(self->router);
    zsock_set_router_mandatory(self->router, 1);
    zsock_set_sndtimeo(self->router, 0);
    zsock_set_rcvtimeo(self->router, 0);
    zsock_set_sndhwm(self->router, S_HWM);
    zsock_set_rcvhwm(self->router, S_HWM);
    zsock_set_linger(self->router, 0);
    int64_t hard_cap = (int64_t)config->max_msg + S_MAXMSG_SLACK;
    zmq_setsockopt(self->handle, ZMQ_MAXMSGSIZE, &hard_cap, sizeof hard_cap);
    for (size_t i = 0; i < config->nbinds; i++) {
        /* libzmq binds numeric addresses and interface names only: name the loopback
           address for it, and enable IPv6 for a bracketed address. */
        const char *endpoint = config->binds[i];
        char numeric[64];
        if (strncmp(endpoint, "tcp://localhost:", 16) == 0 && strlen(endpoint) < 40) {
            snprintf(numeric, sizeof numeric, "tcp://127.0.0.1:%s", endpoint + 16);
            endpoint = numeric;
        }
        if (strncmp(endpoint, "tcp://[", 7) == 0) zsock_set_ipv6(self->router, 1);
        if (zsock_bind(self->router, "%s", endpoint) == -1) {
            char why[200];
            snprintf(why, sizeof why, "cannot bind: %s", zmq_strerror(zmq_errno()));
            sam_error("broker.refused endpoint=%s reason=%s", sam_logv(config->binds[i]),
                      sam_logv(why));
            sam_broker_destroy(&self);
            return NULL;
        }
        sam_info("broker.listening endpoint=%s", sam_logv(zsock_endpoint(self->router)));
    }
    self->now = zclock_mono();
    self->next_heartbeat = self->now + self->heartbeat_ms;
    self->next_stats = self->now + S_STATS_MS;
    self->next_tick = self->now + S_TICK_MS;
    self->next_keys = self->now + S_KEYS_MS;
    self->next_keys_full = self->now + S_KEYS_FULL_MS;
    sam_info("broker.started insecure=%s trusted_keys=%zu heartbeat_ms=%d liveness=%d "
             "request_timeout_ms=%d "
             "queue_max=%zu max_msg=%zu",
             self->insecure ? "yes" : "no", sam_keyring_size(self->keyring), self->heartbeat_ms,
             self->liveness, self->request_timeout_ms, self->queue_max, self->max_msg);
    return self;
}

void sam_broker_destroy(sam_broker_t **self_p)
{
    if (!self_p || !*self_p) return;
    sam_broker_t *self = *self_p;
    if (self->router && self->workers && self->services) {
        self->now = zclock_mono();
        self->stopping = true;
        zsock_set_linger(self->router, S_LINGER_MS);
        s_worker_t *worker;
        while ((worker = zhashx_first(self->workers)))
            s_worker_delete(self, worker, true, "the broker is shutting down");
        for (s_service_t *service = zhashx_first(self->services); service;
             service = zhashx_next(self->services)) {
            s_ring_t *rings[] = {&service->queue, &service->writes, &service->targeted};
            for (size_t r = 0; r < sizeof rings / sizeof rings[0]; r++)
                while (rings[r]->len) {
                    s_refuse(self, s_ring_at(rings[r], 0), service->name, SAM_UNAVAILABLE,
                             "the broker is shutting down");
                    s_ring_remove(rings[r], 0);
                }
        }
        s_fold_flush(self, true);
        s_log_stats(self, "broker.stopped");
    }
    zhashx_destroy(&self->folds);
    zhashx_destroy(&self->workers);
    zhashx_destroy(&self->services);
    zhashx_destroy(&self->epochs);
    zsock_destroy(&self->router);
    zactor_destroy(&self->auth);
    sam_keyring_destroy(&self->keyring);
    if (self->keys_watch >= 0) close(self->keys_watch);
    free(self->caller);
    free(self);
    *self_p = NULL;
}

static volatile sig_atomic_t s_hup; /* SIGHUP arrived: reload (the handler only sets it) */

static void s_on_hup(int sig)
{
    (void)sig;
    s_hup = 1;
}

/*  One turn of the loop: waits up to the next timer for a message, handles what came in (up
    to S_DRAIN_MAX messages), runs the timers that are due and sends the gathered batches.
    Returns 0, or -1 when the socket failed (logged). */
static int s_pass(sam_broker_t *self)
{
    self->now = zclock_mono();
    /* The wait for the first message is libzmq's own blocking receive, bounded by the next
       timer: it sleeps on the socket's mailbox with fewer system calls per wake-up than
       zmq_poll, which is most of a lone request's cost in the broker. No wait while a worker
       found gone waits to be read dry. */
    int wait = self->next_tick > self->now && !self->nlost ? (int)(self->next_tick - self->now) : 0;
    zmq_setsockopt(self->handle, ZMQ_RCVTIMEO, &wait, sizeof wait);
    int rc = s_msg_recv(self, &self->in, wait ? 0 : ZMQ_DONTWAIT);
    if (rc == -1 && zmq_errno() != EAGAIN && zmq_errno() != EINTR) {
        char why[200];
        snprintf(why, sizeof why, "receive: %s", zmq_strerror(zmq_errno()));
        sam_error("broker.failed reason=%s", sam_logv(why));
        return -1;
    }
    self->now = zclock_mono();
    bool drained = rc != 0; /* read dry: nothing more had come in */
    for (int i = 0; rc == 0 && i < S_DRAIN_MAX; i++) {
        if (i > 0 && s_msg_recv(self, &self->in, ZMQ_DONTWAIT) != 0) {
            drained = true;
            break;
        }
        s_watch_keys(self); /* before every message: one read, nothing found, almost always */
        s_on_message(self, &self->in);
        s_msg_close(&self->in);
        if ((i & 127) == 127) self->now = zclock_mono();
    }
    if (self->nlost) s_lost_sweep(self, drained);
    if (self->now >= self->next_tick) s_tick(self);
    s_batch_flush(self);
    return 0;
}

int sam_broker_run(sam_broker_t *self, void (*on_reload)(void))
{
    struct sigaction sa = {0};
    sa.sa_handler = s_on_hup;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
    sd_notify(0, "READY=1");
    sam_metrics_ready(self->metrics, "router", true, NULL);
    while (!zsys_interrupted) {
        sam_metrics_beat(self->metrics);
        if (s_hup) {
            s_hup = 0;
            if (on_reload) on_reload();
            if (self->keyring) {
                self->next_keys_full = self->now;
                s_refresh_keys(self);
            }
            sam_info("broker.reloaded trusted_keys=%zu log_level=%d",
                     sam_keyring_size(self->keyring), (int)sam_log_threshold);
        }
        if (s_pass(self) != 0) return -1;
    }
    sd_notify(0, "STOPPING=1");
    sam_metrics_ready(self->metrics, "router", false, "stopping");
    sam_info("broker.stopping reason=signal");
    return 0;
}

void sam_broker_feed(sam_broker_t *self, const uint8_t *const *frames, const size_t *sizes,
                     int count)
{
    s_msg_t *msg = &self->in;
    msg->count = 0;
    msg->bytes = 0;
    msg->truncated = false;
    for (int i = 0; i < count; i++) {
        if (msg->count == S_PARTS_MAX) {
            msg->truncated = true;
            break;
        }
        zmq_msg_t *part = &msg->part[msg->count];
        if (zmq_msg_init_size(part, sizes[i]) != 0) break;
        if (sizes[i]) memcpy(zmq_msg_data(part), frames[i], sizes[i]);
        if (msg->count) msg->bytes += sizes[i];
        msg->count++;
    }
    self->now = zclock_mono();
    if (msg->count) s_on_message(self, msg);
    s_msg_close(msg);
    /* what is fed may go on: a worker found gone is removed only past its grace */
    if (self->nlost) s_lost_sweep(self, false);
    if (self->now >= self->next_tick) s_tick(self);
    s_batch_flush(self);
}

/* ---- self-test ------------------------------------------------------------------------- */

/* A check of this selftest (sam_testkit.h); `failed` is this run's count. */
#define S_CHECK(cond) ((void)(SAM_CHECK(cond) || failed++))

int sam_broker_selftest(bool verbose)
{
    int failed = 0;

    /* Endpoints that --insecure accepts, and some it must refuse. */
    static const struct {
        const char *endpoint;
        bool loopback;
    } endpoints[] = {
        {"tcp://127.0.0.1:5555", true},
        {"tcp://127.8.9.10:1", true},
        {"tcp://[::1]:5555", true},
        {"tcp://localhost:5555", true},
        {"ipc:///run/samordna/broker", true},
        {"inproc://broker", true},
        {"tcp://0.0.0.0:5555", false},
        {"tcp://*:5555", false},
        {"tcp://10.0.0.1:5555", false},
        {"tcp://128.0.0.1:5555", false},
        {"tcp://[::]:5555", false},
        {"tcp://localhost.example.org:5555", false},
        {"tcp://127.0.0.1", false},
        {"udp://127.0.0.1:5555", false},
        {NULL, false},
    };
    for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++)
        S_CHECK(sam_broker_endpoint_is_loopback(endpoints[i].endpoint) == endpoints[i].loopback);

    /* The READY extension frame. */
    sam_broker_ext_t ext;
#define S_EXT(text) sam_broker_parse_extension((const uint8_t *)(text), strlen(text), &ext)
    S_CHECK(S_EXT("x-samordna/1 identity credit=64 future-token batch"));
    S_CHECK(ext.credit == 64 && ext.identity && ext.batch);
    S_CHECK(S_EXT("x-samordna/1"));
    S_CHECK(ext.credit == 1 && !ext.identity && !ext.batch);
    S_CHECK(S_EXT("x-samordna/1 credit=0") && ext.credit == 1);
    S_CHECK(S_EXT("x-samordna/1 credit=99999999999999999999999"));
    S_CHECK(ext.credit == SAM_MDP_MAX_CREDIT);
    S_CHECK(S_EXT("x-samordna/1 credit=12abc batched") && ext.credit == 1 && !ext.batch);
    S_CHECK(S_EXT("x-samordna/1 instance=vm-12 version=0.3.0") &&
            strcmp(ext.instance, "vm-12") == 0 && strcmp(ext.version, "0.3.0") == 0);
    S_CHECK(S_EXT("x-samordna/1 instance=a\"b version=") && ext.instance[0] == 0 &&
            ext.version[0] == 0);
    S_CHECK(!S_EXT("x-other/2 credit=5"));
    /* primaries and standbys: epoch=N (decimal digits, 64 bits) and standby */
    S_CHECK(S_EXT("x-samordna/1 credit=8 epoch=42 standby") && ext.epoch == 42 && ext.standby &&
            ext.credit == 8);
    S_CHECK(S_EXT("x-samordna/1 epoch=18446744073709551615") && ext.epoch == UINT64_MAX &&
            !ext.standby);
    S_CHECK(S_EXT("x-samordna/1") && ext.epoch == 0 && !ext.standby);
    static const char *const bad_epochs[] = {
        "x-samordna/1 epoch=abc",
        "x-samordna/1 epoch=-1",
        "x-samordna/1 epoch=+7",
        "x-samordna/1 epoch=",
        "x-samordna/1 epoch=7x",
        "x-samordna/1 epoch=0x10",
        "x-samordna/1 epoch=18446744073709551616", /* 2^64 */
        "x-samordna/1 epoch=99999999999999999999999999999999",
        "x-samordna/1 epoch=1.5",
    };
    for (size_t i = 0; i < sizeof bad_epochs / sizeof bad_epochs[0]; i++)
        S_CHECK(S_EXT(bad_epochs[i]) && ext.epoch == 0);
    S_CHECK(S_EXT("x-samordna/1 epoch=abc epoch=9") && ext.epoch == 9); /* the last good one */
    S_CHECK(S_EXT("x-samordna/1 standbys stand-by Standby") && !ext.standby);
    S_CHECK(S_EXT("x-samordna/1 epoch=007 instance=db-2") && ext.epoch == 7 &&
            strcmp(ext.instance, "db-2") == 0);
#undef S_EXT
    S_CHECK(!sam_broker_parse_extension((const uint8_t *)"x-samordna/1\0", 13, &ext));

    /* Peeking at the id of packed messages, and refusing broken ones. */
    Samordna__V1__Request request = SAMORDNA__V1__REQUEST__INIT;
    request.id = 1234567890123ULL;
    request.method = "registry.agencies.list";
    request.body.data = (uint8_t *)"abc";
    request.body.len = 3;
    uint8_t packed[128];
    size_t n = samordna__v1__request__pack(&request, packed);
    S_CHECK(sam_broker_peek_id(packed, n) == 1234567890123ULL);
    S_CHECK(sam_broker_peek_id(packed, n - 1) == 0); /* truncated body */
    S_CHECK(sam_broker_peek_id(packed, 0) == 0);
    const uint8_t later_id[] = {0x12, 0x01, 'x', 0x08, 0x07}; /* method first, then id 7 */
    S_CHECK(sam_broker_peek_id(later_id, sizeof later_id) == 7);
    const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    S_CHECK(sam_broker_peek_id(garbage, sizeof garbage) == 0);
    /* the caller's deadline: from a Request only */
    uint32_t wait = 99;
    S_CHECK(sam_broker_peek_request(packed, n, &wait) == 1234567890123ULL && wait == 0);
    request.timeout_ms = 250;
    n = samordna__v1__request__pack(&request, packed);
    S_CHECK(sam_broker_peek_request(packed, n, &wait) == 1234567890123ULL && wait == 250);
    const uint8_t not_a_request[] = {0x08, 0x07, 0x20, 0x05, 0x28, 0x01}; /* field 5 too */
    S_CHECK(sam_broker_peek_request(not_a_request, sizeof not_a_request, &wait) == 7 && wait == 0);
    /* the caller a gateway presents: found in a Request, never in anything else */
    const uint8_t *behalf = (const uint8_t *)"x";
    size_t behalf_len = 9;
    S_CHECK(sam_broker_peek_on_behalf(packed, n, &wait, &behalf, &behalf_len) == 1234567890123ULL &&
            behalf == NULL && behalf_len == 0);
    Samordna__V1__OnBehalf on_behalf = SAMORDNA__V1__ON_BEHALF__INIT;
    on_behalf.agency = "nav-ost-viken";
    on_behalf.role = "publisher";
    request.on_behalf = &on_behalf;
    n = samordna__v1__request__pack(&request, packed);
    S_CHECK(sam_broker_peek_on_behalf(packed, n, &wait, &behalf, &behalf_len) == 1234567890123ULL &&
            wait == 250 && behalf &&
            behalf_len == samordna__v1__on_behalf__get_packed_size(&on_behalf));
    Samordna__V1__OnBehalf *back =
        behalf ? samordna__v1__on_behalf__unpack(NULL, behalf_len, behalf) : NULL;
    S_CHECK(back && strcmp(back->agency, "nav-ost-viken") == 0 &&
            strcmp(back->role, "publisher") == 0);
    if (back) samordna__v1__on_behalf__free_unpacked(back, NULL);
    const uint8_t behalf_not_request[] = {0x08, 0x07, 0x2a, 0x00, 0x40, 0x01}; /* + field 8 */
    S_CHECK(sam_broker_peek_on_behalf(behalf_not_request, sizeof behalf_not_request, &wait, &behalf,
                                      &behalf_len) == 7 &&
            behalf == NULL);
    const uint8_t wrong_type[] = {0x0a, 0x01, 0x00}; /* field 1 as bytes */
    S_CHECK(sam_broker_peek_id(wrong_type, sizeof wrong_type) == 0);

    /* Routing: events.publish and Request.primary are writes, Request.instance names one */
    sam_broker_peek_t peek;
    Samordna__V1__Request route = SAMORDNA__V1__REQUEST__INIT;
    route.id = 5;
    route.method = "events.list";
    n = samordna__v1__request__pack(&route, packed);
    S_CHECK(sam_broker_peek(packed, n, &peek) == 5 && !peek.write && !peek.instance);
    route.method = "events.publish";
    n = samordna__v1__request__pack(&route, packed);
    S_CHECK(sam_broker_peek(packed, n, &peek) == 5 && peek.write && !peek.instance);
    route.method = "events.publish.x"; /* the method exactly, not a prefix */
    n = samordna__v1__request__pack(&route, packed);
    S_CHECK(sam_broker_peek(packed, n, &peek) == 5 && !peek.write);
    route.method = "events.publis";
    n = samordna__v1__request__pack(&route, packed);
    S_CHECK(sam_broker_peek(packed, n, &peek) == 5 && !peek.write);
    route.method = "registry.agencies.put";
    route.primary = true;
    route.instance = "vm-12";
    route.timeout_ms = 300;
    n = samordna__v1__request__pack(&route, packed);
    S_CHECK(sam_broker_peek(packed, n, &peek) == 5 && peek.write && peek.timeout_ms == 300 &&
            peek.instance_len == 5 && peek.instance && memcmp(peek.instance, "vm-12", 5) == 0);
    route.primary = false;
    route.instance = "";
    n = samordna__v1__request__pack(&route, packed);
    S_CHECK(sam_broker_peek(packed, n, &peek) == 5 && !peek.write && !peek.instance);
    /* not a Request: never a route, even with the fields of one */
    const uint8_t
        publish_not_request[] = {0x08, 0x07, 0x12, 0x0e, 'e', 'v', 'e', 'n', 't',  's',
                                 '.',  'p',  'u',  'b',  'l', 'i', 's', 'h', 0x30, 0x01,
                                 0x3a, 0x01, 'a',  0x45, 0,   0,   0,   0}; /* + field 8 fixed32 */
    S_CHECK(sam_broker_peek(publish_not_request, sizeof publish_not_request, &peek) == 7 &&
            !peek.write && !peek.instance && peek.timeout_ms == 0);
    const uint8_t primary_no_id[] = {0x30, 0x01, 0x3a, 0x01, 'a'}; /* id 0: not a Request */
    S_CHECK(sam_broker_peek(primary_no_id, sizeof primary_no_id, &peek) == 0 && !peek.write &&
            !peek.instance);
    const uint8_t primary_as_bytes[] = {0x08, 0x07, 0x32, 0x01, 0x01}; /* field 6 as bytes */
    S_CHECK(sam_broker_peek(primary_as_bytes, sizeof primary_as_bytes, &peek) == 7 && !peek.write);
    const uint8_t primary_last_wins[] = {0x08, 0x07, 0x30, 0x01, 0x30, 0x00};
    S_CHECK(sam_broker_peek(primary_last_wins, sizeof primary_last_wins, &peek) == 7 &&
            !peek.write);
    const uint8_t instance_past_end[] = {0x08, 0x07, 0x3a, 0x09, 'a'}; /* longer than the body */
    S_CHECK(sam_broker_peek(instance_past_end, sizeof instance_past_end, &peek) == 0 &&
            !peek.instance);

    /* A broker refuses to start with neither CURVE nor --insecure, and --insecure off
       loopback. */
    const char *binds[] = {"tcp://10.1.2.3:5555"};
    sam_broker_config_t config = SAM_BROKER_CONFIG_DEFAULTS;
    config.binds = binds;
    config.nbinds = 1;
    sam_broker_t *broker = sam_broker_new(&config);
    S_CHECK(broker == NULL);
    config.insecure = true;
    broker = sam_broker_new(&config);
    S_CHECK(broker == NULL);

    /* And starts, binds and stops on inproc. */
    const char *inproc[] = {"inproc://sam-broker-selftest"};
    config.binds = inproc;
    broker = sam_broker_new(&config);
    S_CHECK(broker != NULL);
    sam_broker_destroy(&broker);
    S_CHECK(broker == NULL);
    sam_broker_destroy(&broker); /* accepts NULL */

    /*  A worker that answers and leaves at once, as one that drains does: a send to it fails
        (here a heartbeat) before its reply is read, and the reply still reaches its client,
        nothing handed on to be answered twice. */
    const char *lost_ep[] = {"inproc://sam-broker-selftest-lost"};
    config.binds = lost_ep;
    broker = sam_broker_new(&config);
    S_CHECK(broker != NULL);
    zsock_t *w = zsock_new(ZMQ_DEALER), *c = zsock_new(ZMQ_DEALER);
    zsock_set_identity(w, "W1");
    zsock_set_identity(c, "C1");
    zsock_set_rcvtimeo(w, 2000);
    zsock_set_rcvtimeo(c, 2000);
    S_CHECK(broker && zsock_connect(w, "%s", lost_ep[0]) == 0 &&
            zsock_connect(c, "%s", lost_ep[0]) == 0);
    const uint8_t ready = SAM_MDPW_READY, reply = SAM_MDPW_REPLY;
    zsock_send(w, "ssbs", "", SAM_MDPW, &ready, (size_t)1, "selftest");
    s_worker_t *lost = NULL;
    for (int i = 0; broker && i < 100 && !(lost = zhashx_lookup(broker->workers, "5731")); i++)
        s_pass(broker);
    S_CHECK(lost != NULL);
    request.id = 7;
    request.on_behalf = NULL;
    n = samordna__v1__request__pack(&request, packed);
    zsock_send(c, "sssb", "", SAM_MDPC, "selftest", packed, n);
    for (int i = 0; lost && i < 100 && lost->inflight == 0; i++)
        s_pass(broker);
    zmsg_t *got = zmsg_recv(w); /* "" MDPW01 0x02 client "" body */
    S_CHECK(got && zmsg_size(got) == 6);
    zsock_send(w, "ssbssb", "", SAM_MDPW, &reply, (size_t)1, "C1", "", packed, n);
    zmsg_destroy(&got);
    zsock_destroy(&w);
    for (int i = 0; lost && i < 400 && !lost->lost; i++) {
        s_heartbeat(broker);
        zclock_sleep(5);
    }
    S_CHECK(lost && lost->lost && lost->inflight == 1);
    for (int i = 0; broker && i < 10 && zhashx_size(broker->workers); i++)
        s_pass(broker);
    got = zmsg_recv(c); /* "" MDPC01 service body */
    S_CHECK(got && zmsg_size(got) == 4);
    zmsg_destroy(&got);
    S_CHECK(broker && zhashx_size(broker->workers) == 0 && broker->redispatched == 0 &&
            broker->replies == 1 && broker->nlost == 0);
    zsock_destroy(&c);
    sam_broker_destroy(&broker);

    /* CURVE: refused without a readable folder or a secret certificate; starts with both.
       The scratch folder is relative: tests run in the build tree. */
    char dir[256], trusted[300], secret[320], pub[320], err[256];
    snprintf(dir, sizeof dir, "broker-selftest-%d", (int)getpid());
    snprintf(trusted, sizeof trusted, "%s/trusted", dir);
    snprintf(secret, sizeof secret, "%s/broker.cert_secret", dir);
    snprintf(pub, sizeof pub, "%s/public.cert", trusted);
    S_CHECK(sam_keys_new(dir, "broker", "broker", "broker", NULL, NULL, err, sizeof err) == 0);
    S_CHECK(sam_keys_new(trusted, "public", "fmov", "admin", NULL, NULL, err, sizeof err) == 0);
    const char *loop[] = {"tcp://127.0.0.1:*"};
    config = (sam_broker_config_t)SAM_BROKER_CONFIG_DEFAULTS;
    config.binds = loop;
    config.nbinds = 1;
    config.curve_dir = trusted;
    config.cert = pub; /* its _secret sits beside it, so CZMQ finds a secret key: */
    broker = sam_broker_new(&config);
    S_CHECK(broker != NULL);
    sam_broker_destroy(&broker);
    config.cert = "/nonexistent/broker.cert_secret";
    S_CHECK(sam_broker_new(&config) == NULL);
    config.cert = secret;
    config.curve_dir = "/nonexistent/trusted";
    S_CHECK(sam_broker_new(&config) == NULL);
    config.curve_dir = trusted;
    broker = sam_broker_new(&config);
    S_CHECK(broker != NULL && sam_keyring_size(broker->keyring) == 1);
    sam_broker_destroy(&broker);
    const char *files[] = {"trusted/public.cert", "trusted/public.cert_secret", "trusted",
                           "broker.cert",         "broker.cert_secret",         ""};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[400];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        S_CHECK(remove(path) == 0);
    }

    if (verbose) printf("sam_broker_selftest: %s\n", failed ? "FAILED" : "OK");
    return failed ? -1 : 0;
}
