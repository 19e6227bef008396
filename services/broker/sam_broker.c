/*  sam_broker.c — the samordna broker.

    One ROUTER socket carries both sides of ZeroMQ RFC 7/MDP 0.1: clients speak "MDPC01",
    workers speak "MDPW01", and the header frame after the optional empty delimiter tells
    them apart. The broker owns no data; it keeps three kinds of state, all in this file:

    - services (a hash by name): the workers that offer a service, a FIFO list of those
      with spare credit (least recently used first), and a ring of queued requests;
    - workers (a hash by the hex of their routing id): the service they offer, their
      credit, and one slot per request in flight (the client's address, whether it used an
      empty delimiter, and the request id) so a lost worker's clients get an answer;
    - counters and timers.

    A request is never decoded on the way through. The broker only peeks at field 1 of the
    body (the Request id) with a few varint reads, so that an error it invents later can
    carry the id the client is waiting for; a REPLY is matched to its slot the same way.
    The error paths (413, 429, 503) are rare and may unpack with protobuf-c.

    Credit is samordna's negotiated extension to 7/MDP (see sam_mdp.h): a worker may declare
    in READY how many requests it takes at once and whether it wants the caller's identity.
    A worker that says nothing is a plain 7/MDP worker: credit 1, no extra frames. Every
    dispatch goes to the head of the service's list of workers with spare credit and then
    moves that worker to the tail, so work spreads over all of them.

    The socket is ROUTER_MANDATORY with a send timeout of zero: a reply to a client that is
    gone or is not reading fails at once and is logged, instead of blocking the broker or
    vanishing. Receives also use a zero timeout so one poll drains a batch of messages.

    Nothing that arrives from the network is trusted: every frame count and size is checked
    before use; bad traffic is counted, logged at warn with the peer's id and dropped.
*/
#include "sam_broker.h"
#include "sam_log.h"
#include "sam_mdp.h"
#include "sam_status.h"
#include "samordna/v1/envelope.pb-c.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <czmq.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_ADDR_MAX 255                 /* a ZeroMQ routing id is 1..255 bytes */
#define S_HEX_MAX (2 * S_ADDR_MAX + 1) /* its hex form with the terminating NUL */
#define S_SERVICE_MAX 255              /* longest service name we accept */
#define S_DRAIN_MAX 1000               /* messages handled per poll before timers run */
#define S_TICK_MS 50                   /* how often queue expiry is checked */
#define S_STATS_MS 60000               /* how often counters are logged */
#define S_HWM 100000                   /* per-peer message queue limit of the socket */
#define S_MAXMSG_SLACK 65536           /* ZMQ_MAXMSGSIZE is this much above --max-msg */
#define S_LINGER_MS 500                /* time to flush DISCONNECTs at shutdown */

typedef struct s_worker_t s_worker_t;
typedef struct s_service_t s_service_t;

/* One request in flight to a worker. */
typedef struct {
    uint8_t addr[S_ADDR_MAX]; /* the client's routing id */
    uint8_t addr_size;
    bool delim;  /* the client sent an empty delimiter, so the reply carries one */
    bool busy;   /* the slot holds a request */
    uint64_t id; /* field 1 of the request body (0 when absent) */
} s_slot_t;

/* One request waiting for a worker. */
typedef struct {
    zmsg_t *msg;      /* the client's routing id, then the body frames */
    int64_t enqueued; /* monotonic ms */
    bool delim;
} s_queued_t;

struct s_service_t {
    char *name;                      /* owned; the same string is the key in services */
    size_t nworkers;                 /* workers that offer this service */
    s_worker_t *free_head, *free_tail; /* workers with spare credit, least recently used first */
    s_queued_t *queue;               /* ring of queued requests, owned */
    size_t qcap, qhead, qlen;
    int64_t orphaned_at; /* when the service last had no worker (monotonic ms) */
};

struct s_worker_t {
    char key[S_HEX_MAX];     /* hex of the routing id; the key in workers */
    uint8_t addr[S_ADDR_MAX]; /* routing id */
    uint8_t addr_size;
    s_service_t *service;    /* borrowed; a service outlives its workers */
    int64_t expiry;          /* purged when silent past this (monotonic ms) */
    uint32_t credit;         /* requests it takes at once (1 for a plain worker) */
    uint32_t inflight;       /* requests sent and not yet answered */
    bool identity;           /* wants a Caller frame with every request */
    s_slot_t *slots;         /* credit slots, owned */
    size_t head;             /* slot of the oldest request in flight, a search hint */
    s_worker_t *prev, *next; /* links in the service's list of workers with spare credit */
    bool listed;             /* is in that list */
};

struct sam_broker_t {
    zsock_t *router;     /* the one socket, clients and workers */
    void *handle;        /* its libzmq handle, for zmq_poll */
    zhashx_t *services;  /* name -> s_service_t, owned */
    zhashx_t *workers;   /* hex routing id -> s_worker_t, owned */
    int heartbeat_ms;
    int liveness;
    int request_timeout_ms;
    size_t queue_max;
    size_t max_msg;
    bool insecure;
    uint8_t *caller;     /* packed Caller sent to identity workers in insecure mode, owned */
    size_t caller_size;
    int64_t now;         /* monotonic ms, refreshed around every poll */
    int64_t next_tick, next_heartbeat, next_stats;
    uint64_t requests;   /* client requests received (MMI excluded) */
    uint64_t replies;    /* worker replies forwarded to clients */
    uint64_t errors;     /* error replies the broker made itself */
    uint64_t malformed;  /* messages dropped as malformed */
    uint64_t purged;     /* workers purged or lost */
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

static bool s_frame_is(zframe_t *frame, const char *text)
{
    size_t n = strlen(text);
    return frame && zframe_size(frame) == n && memcmp(zframe_data(frame), text, n) == 0;
}

/* Copies a frame that must be a printable name (1..S_SERVICE_MAX bytes, no NUL) into `out`
   (S_SERVICE_MAX + 1 bytes). Returns false when it is not one. */
static bool s_frame_name(zframe_t *frame, char *out)
{
    if (!frame) return false;
    size_t n = zframe_size(frame);
    if (n == 0 || n > S_SERVICE_MAX || memchr(zframe_data(frame), '\0', n)) return false;
    memcpy(out, zframe_data(frame), n);
    out[n] = '\0';
    return true;
}

static bool s_varint(const uint8_t *p, size_t n, size_t *i, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *i < n; shift += 7) {
        uint8_t b = p[(*i)++];
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

uint64_t sam_broker_peek_id(const uint8_t *data, size_t size)
{
    uint64_t id = 0, key = 0, v = 0;
    size_t i = 0;
    while (i < size) {
        if (!s_varint(data, size, &i, &key) || (key >> 3) == 0) return 0;
        switch (key & 7) {
        case 0:
            if (!s_varint(data, size, &i, &v)) return 0;
            if ((key >> 3) == 1) id = v;
            break;
        case 1:
            if (size - i < 8 || (key >> 3) == 1) return 0;
            i += 8;
            break;
        case 2:
            if (!s_varint(data, size, &i, &v) || v > size - i || (key >> 3) == 1) return 0;
            i += (size_t)v;
            break;
        case 5:
            if (size - i < 4 || (key >> 3) == 1) return 0;
            i += 4;
            break;
        default:
            return 0;
        }
    }
    return id;
}

bool sam_broker_parse_extension(const uint8_t *data, size_t size, uint32_t *credit,
                                bool *identity)
{
    char text[256];
    if (!data || size >= sizeof text || memchr(data, '\0', size)) return false;
    memcpy(text, data, size);
    text[size] = '\0';
    char *save = NULL;
    char *token = strtok_r(text, " \t", &save);
    if (!token || strcmp(token, SAM_MDP_EXT_PREFIX) != 0) return false;
    *credit = 1;
    *identity = false;
    while ((token = strtok_r(NULL, " \t", &save))) {
        if (strncmp(token, "credit=", 7) == 0) {
            char *end = NULL;
            long long n = strtoll(token + 7, &end, 10);
            if (end == token + 7 || *end) continue; /* not a number: keep the default */
            *credit = n < 1 ? 1 : n > SAM_MDP_MAX_CREDIT ? SAM_MDP_MAX_CREDIT : (uint32_t)n;
        } else if (strcmp(token, "identity") == 0) {
            *identity = true;
        }
    }
    return true;
}

bool sam_broker_endpoint_is_loopback(const char *endpoint)
{
    if (!endpoint) return false;
    if (strncmp(endpoint, "ipc://", 6) == 0 || strncmp(endpoint, "inproc://", 9) == 0)
        return true;
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

/* Sends and, on failure, destroys the message and logs why. `peer` names the peer. */
static int s_send(sam_broker_t *self, zmsg_t **msg_p, const char *role, const uint8_t *addr,
                  size_t addr_size)
{
    if (zmsg_send(msg_p, self->router) == 0) return 0;
    int err = zmq_errno();
    zmsg_destroy(msg_p);
    char hex[S_HEX_MAX];
    sam_warn("send.failed to=%s peer=%s reason=\"%s\"", role, s_hex(addr, addr_size, hex),
             err == EHOSTUNREACH ? "peer is gone"
             : err == EAGAIN    ? "peer is not reading (queue full)"
                                : zmq_strerror(err));
    return -1;
}

static void s_malformed(sam_broker_t *self, zframe_t *addr, const char *reason)
{
    char hex[S_HEX_MAX];
    self->malformed++;
    sam_warn("message.malformed peer=%s reason=\"%s\"",
             addr ? s_hex(zframe_data(addr), zframe_size(addr), hex) : "-", reason);
}

/* ---- identity -------------------------------------------------------------------------- */

/*  The packed samordna.v1.Caller for a request, as a new frame the caller owns; NULL when
    out of memory. `client` is the request's first frame as received, so it still carries
    the connection's metadata: this is the one place to read the ZAP User-Id and the
    certificate's "agency" and "role" properties (zframe_meta) once CURVE is configured.
    Without CURVE the broker only runs --insecure and says so: Caller{insecure, role=admin}. */
static zframe_t *s_caller_frame(sam_broker_t *self, zframe_t *client)
{
    (void)client;
    return zframe_new(self->caller, self->caller_size);
}

/* ---- error replies --------------------------------------------------------------------- */

/*  Sends the broker's own error to a client: "" "MDPC01" service Reply{id, status}.
    Reply shape:  [client] [""] "MDPC01" service reply */
static void s_send_error(sam_broker_t *self, const uint8_t *addr, size_t addr_size, bool delim,
                         const char *service, uint64_t id, uint32_t code, const char *text)
{
    Samordna__V1__Status status = SAMORDNA__V1__STATUS__INIT;
    status.code = code;
    status.message = (char *)text;
    Samordna__V1__Reply reply = SAMORDNA__V1__REPLY__INIT;
    reply.id = id;
    reply.status = &status;
    zframe_t *body = zframe_new(NULL, samordna__v1__reply__get_packed_size(&reply));
    zmsg_t *msg = zmsg_new();
    if (!body || !msg) {
        zframe_destroy(&body);
        zmsg_destroy(&msg);
        return;
    }
    samordna__v1__reply__pack(&reply, zframe_data(body));
    zmsg_addmem(msg, addr, addr_size);
    if (delim) zmsg_addmem(msg, "", 0);
    zmsg_addstr(msg, SAM_MDPC);
    zmsg_addstr(msg, service);
    zmsg_append(msg, &body);
    self->errors++;
    s_send(self, &msg, "client", addr, addr_size);
}

/*  The id of a client's request body, for an error reply: decoded with protobuf-c when the
    body is one frame that is a samordna.v1.Request, else 0. Only on error paths. */
static uint64_t s_request_id(zmsg_t *body)
{
    if (zmsg_size(body) != 1) return 0;
    zframe_t *frame = zmsg_first(body);
    Samordna__V1__Request *request =
        samordna__v1__request__unpack(NULL, zframe_size(frame), zframe_data(frame));
    if (!request) return 0;
    uint64_t id = request->id;
    samordna__v1__request__free_unpacked(request, NULL);
    return id;
}

/*  Answers a request that the broker will not route and destroys it. `*msg_p` holds the
    client's routing id, then the body frames. */
static void s_refuse(sam_broker_t *self, zmsg_t **msg_p, bool delim, const char *service,
                     uint32_t code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void s_refuse(sam_broker_t *self, zmsg_t **msg_p, bool delim, const char *service,
                     uint32_t code, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    zframe_t *client = zmsg_pop(*msg_p);
    if (client)
        s_send_error(self, zframe_data(client), zframe_size(client), delim, service,
                     s_request_id(*msg_p), code, text);
    zframe_destroy(&client);
    zmsg_destroy(msg_p);
}

/* ---- services -------------------------------------------------------------------------- */

static void s_service_destroy(void **item)
{
    s_service_t *service = *item;
    for (size_t i = 0; i < service->qlen; i++)
        zmsg_destroy(&service->queue[(service->qhead + i) % service->qcap].msg);
    free(service->queue);
    free(service->name);
    free(service);
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
    zhashx_insert(self->services, name, service);
    return service;
}

/* Appends a request to the service's queue; the caller checked queue_max. Takes the msg. */
static int s_queue_push(s_service_t *service, zmsg_t **msg_p, bool delim, int64_t now)
{
    if (service->qlen == service->qcap) {
        size_t cap = service->qcap ? service->qcap * 2 : 16;
        s_queued_t *queue = malloc(cap * sizeof *queue);
        if (!queue) return -1;
        for (size_t i = 0; i < service->qlen; i++)
            queue[i] = service->queue[(service->qhead + i) % service->qcap];
        free(service->queue);
        service->queue = queue;
        service->qcap = cap;
        service->qhead = 0;
    }
    s_queued_t *entry = &service->queue[(service->qhead + service->qlen) % service->qcap];
    *entry = (s_queued_t){*msg_p, now, delim};
    *msg_p = NULL;
    service->qlen++;
    return 0;
}

static s_queued_t s_queue_pop(s_service_t *service)
{
    s_queued_t entry = service->queue[service->qhead];
    service->qhead = (service->qhead + 1) % service->qcap;
    service->qlen--;
    return entry;
}

/* The service's list of workers with spare credit: an intrusive FIFO. */
static void s_free_append(s_service_t *service, s_worker_t *worker)
{
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

/* ---- workers --------------------------------------------------------------------------- */

static void s_worker_destroy(void **item)
{
    s_worker_t *worker = *item;
    free(worker->slots);
    free(worker);
    *item = NULL;
}

/* Sends a bare command to a worker: [worker] "" "MDPW01" command [extension] */
static void s_worker_command(sam_broker_t *self, s_worker_t *worker, uint8_t command,
                             const char *extension)
{
    zmsg_t *msg = zmsg_new();
    if (!msg) return;
    zmsg_addmem(msg, worker->addr, worker->addr_size);
    zmsg_addmem(msg, "", 0);
    zmsg_addstr(msg, SAM_MDPW);
    zmsg_addmem(msg, &command, 1);
    if (extension) zmsg_addstr(msg, extension);
    s_send(self, &msg, "worker", worker->addr, worker->addr_size);
}

/* Tells a peer that is not a registered worker to go away: "" "MDPW01" 0x05 */
static void s_disconnect_peer(sam_broker_t *self, zframe_t *addr)
{
    uint8_t command = SAM_MDPW_DISCONNECT;
    zmsg_t *msg = zmsg_new();
    if (!msg) return;
    zmsg_addmem(msg, zframe_data(addr), zframe_size(addr));
    zmsg_addmem(msg, "", 0);
    zmsg_addstr(msg, SAM_MDPW);
    zmsg_addmem(msg, &command, 1);
    s_send(self, &msg, "worker", zframe_data(addr), zframe_size(addr));
}

/*  Removes a worker: every client with a request in flight to it gets 503, the worker gets
    DISCONNECT when `disconnect` is set, and it leaves its service. */
static void s_worker_delete(sam_broker_t *self, s_worker_t *worker, bool disconnect,
                            const char *reason)
{
    s_service_t *service = worker->service;
    char text[S_HEX_MAX + S_SERVICE_MAX + 128];
    snprintf(text, sizeof text, "worker %s of service '%s' lost while handling the request (%s)",
             worker->key, service->name, reason);
    for (uint32_t i = 0; i < worker->credit && worker->inflight; i++) {
        s_slot_t *slot = &worker->slots[i];
        if (!slot->busy) continue;
        slot->busy = false;
        worker->inflight--;
        s_send_error(self, slot->addr, slot->addr_size, slot->delim, service->name, slot->id,
                     SAM_UNAVAILABLE, text);
    }
    if (disconnect) s_worker_command(self, worker, SAM_MDPW_DISCONNECT, NULL);
    s_free_unlink(service, worker);
    if (--service->nworkers == 0) service->orphaned_at = self->now;
    self->purged++;
    sam_info("worker.removed worker=%s service=%s reason=\"%s\"", worker->key, service->name,
             reason);
    zhashx_delete(self->workers, worker->key);
}

/*  Sends one request to a worker with spare credit and takes `*msg_p` (client routing id,
    then body frames). Request shape:
        [worker] "" "MDPW01" 0x02 client "" [caller] body…
    The Caller frame only goes to a worker that negotiated "identity". */
static void s_worker_send_request(sam_broker_t *self, s_worker_t *worker, zmsg_t **msg_p,
                                  bool delim)
{
    zmsg_t *msg = *msg_p;
    *msg_p = NULL;
    s_service_t *service = worker->service;
    zframe_t *client = zmsg_pop(msg);
    zframe_t *body = zmsg_first(msg);

    size_t index = (worker->head + worker->inflight) % worker->credit;
    while (worker->slots[index].busy)
        index = (index + 1) % worker->credit;
    s_slot_t *slot = &worker->slots[index];
    slot->busy = true;
    slot->delim = delim;
    slot->addr_size = (uint8_t)zframe_size(client);
    memcpy(slot->addr, zframe_data(client), slot->addr_size);
    slot->id = body ? sam_broker_peek_id(zframe_data(body), zframe_size(body)) : 0;
    if (worker->inflight++ == 0) worker->head = index;

    uint8_t command = SAM_MDPW_REQUEST;
    if (worker->identity) {
        zframe_t *caller = s_caller_frame(self, client);
        if (caller) zmsg_prepend(msg, &caller);
    }
    zmsg_pushmem(msg, "", 0);
    zmsg_prepend(msg, &client);
    zmsg_pushmem(msg, &command, 1);
    zmsg_pushstr(msg, SAM_MDPW);
    zmsg_pushmem(msg, "", 0);
    zmsg_pushmem(msg, worker->addr, worker->addr_size);

    /* Least recently used first: a worker that still has credit goes to the back. */
    s_free_unlink(service, worker);
    if (worker->inflight < worker->credit) s_free_append(service, worker);

    if (s_send(self, &msg, "worker", worker->addr, worker->addr_size) != 0)
        s_worker_delete(self, worker, false, "cannot send to the worker");
}

/* Hands queued requests to workers with spare credit, oldest request first. */
static void s_service_dispatch(sam_broker_t *self, s_service_t *service)
{
    while (service->qlen && service->free_head) {
        s_queued_t entry = s_queue_pop(service);
        s_worker_send_request(self, service->free_head, &entry.msg, entry.delim);
    }
}

/*  READY: [worker] "" "MDPW01" 0x01 service [extension]
    A samordna extension frame is answered at once with
        [worker] "" "MDPW01" 0x04 "x-samordna/1 credit=N[ identity]"
    listing what was accepted, before any request goes to the worker. */
static void s_worker_ready(sam_broker_t *self, zframe_t *addr, const char *key, zmsg_t *msg)
{
    char name[S_SERVICE_MAX + 1];
    if (!s_frame_name(zmsg_first(msg), name)) {
        s_malformed(self, addr, "READY without a valid service name");
        s_disconnect_peer(self, addr);
        return;
    }
    if (strncmp(name, "mmi.", 4) == 0) {
        s_malformed(self, addr, "READY for a reserved mmi.* service");
        s_disconnect_peer(self, addr);
        return;
    }
    uint32_t credit = 1;
    bool identity = false, extended = false;
    zframe_t *extension = zmsg_next(msg);
    if (extension) {
        extended = sam_broker_parse_extension(zframe_data(extension), zframe_size(extension),
                                              &credit, &identity);
        if (!extended)
            sam_warn("worker.extension_ignored worker=%s reason=\"not %s\"", key,
                     SAM_MDP_EXT_PREFIX);
    }
    s_service_t *service = s_service_require(self, name);
    s_worker_t *worker = calloc(1, sizeof *worker);
    s_slot_t *slots = calloc(credit, sizeof *slots);
    if (!service || !worker || !slots) {
        free(worker);
        free(slots);
        sam_error("worker.refused worker=%s reason=\"out of memory\"", key);
        s_disconnect_peer(self, addr);
        return;
    }
    snprintf(worker->key, sizeof worker->key, "%s", key);
    worker->addr_size = (uint8_t)zframe_size(addr);
    memcpy(worker->addr, zframe_data(addr), worker->addr_size);
    worker->service = service;
    worker->credit = credit;
    worker->identity = identity;
    worker->slots = slots;
    worker->expiry = self->now + (int64_t)self->heartbeat_ms * self->liveness;
    zhashx_insert(self->workers, worker->key, worker);
    service->nworkers++;
    s_free_append(service, worker);
    sam_info("worker.ready worker=%s service=%s credit=%u identity=%s", key, name, credit,
             identity ? "yes" : "no");
    if (extended) {
        char accepted[64];
        snprintf(accepted, sizeof accepted, "%s credit=%u%s", SAM_MDP_EXT_PREFIX, credit,
                 identity ? " identity" : "");
        s_worker_command(self, worker, SAM_MDPW_HEARTBEAT, accepted);
    }
    s_service_dispatch(self, service);
}

/*  REPLY: [worker] "" "MDPW01" 0x03 client "" body…
    goes to the client as [client] [""] "MDPC01" service body… */
static void s_worker_reply(sam_broker_t *self, s_worker_t *worker, zframe_t *addr, zmsg_t **msg_p,
                           size_t total)
{
    zmsg_t *msg = *msg_p;
    s_service_t *service = worker->service;
    zframe_t *client = zmsg_pop(msg);
    zframe_t *empty = zmsg_pop(msg);
    bool well_formed = client && zframe_size(client) > 0 && zframe_size(client) <= S_ADDR_MAX &&
                       empty && zframe_size(empty) == 0 && zmsg_size(msg) > 0;
    zframe_destroy(&empty);
    if (!client || zframe_size(client) == 0 || zframe_size(client) > S_ADDR_MAX) {
        s_malformed(self, addr, "REPLY without a client address");
        zframe_destroy(&client);
        return;
    }
    zframe_t *body = zmsg_first(msg);
    uint64_t id = body ? sam_broker_peek_id(zframe_data(body), zframe_size(body)) : 0;

    /* The slot of this request: same client and id, else the oldest of the same client. */
    s_slot_t *slot = NULL;
    for (uint32_t n = 0, i = (uint32_t)worker->head; n < worker->credit;
         n++, i = (i + 1) % worker->credit) {
        s_slot_t *s = &worker->slots[i];
        if (!s->busy || s->addr_size != zframe_size(client) ||
            memcmp(s->addr, zframe_data(client), s->addr_size) != 0)
            continue;
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
                 worker->key, s_hex(zframe_data(client), zframe_size(client), hex));
        zframe_destroy(&client);
        return;
    }
    bool delim = slot->delim;
    uint64_t slot_id = slot->id;
    slot->busy = false;
    worker->inflight--;
    while (worker->inflight && !worker->slots[worker->head].busy)
        worker->head = (worker->head + 1) % worker->credit;

    if (!well_formed) {
        s_malformed(self, addr, "REPLY without an empty delimiter or body");
        s_send_error(self, zframe_data(client), zframe_size(client), delim, service->name,
                     slot_id, SAM_INTERNAL, "the worker sent a malformed reply");
    } else if (total > self->max_msg) {
        char text[160];
        snprintf(text, sizeof text, "reply of %zu bytes is over the broker's limit of %zu bytes",
                 total, self->max_msg);
        sam_warn("reply.too_large worker=%s service=%s size=%zu max=%zu", worker->key,
                 service->name, total, self->max_msg);
        s_send_error(self, zframe_data(client), zframe_size(client), delim, service->name,
                     slot_id, SAM_TOO_LARGE, text);
    } else {
        zmsg_pushstr(msg, service->name);
        zmsg_pushstr(msg, SAM_MDPC);
        if (delim) zmsg_pushmem(msg, "", 0);
        const uint8_t *caddr = slot->addr; /* the slot keeps a copy while we send */
        zmsg_prepend(msg, &client);
        self->replies++;
        s_send(self, msg_p, "client", caddr, slot->addr_size);
    }
    zframe_destroy(&client);

    if (!worker->listed && worker->inflight < worker->credit) s_free_append(service, worker);
    s_service_dispatch(self, service);
}

/*  Everything a worker sends: [worker] "" "MDPW01" command … ; `*msg_p` starts at the
    command frame. */
static void s_worker_message(sam_broker_t *self, zframe_t *addr, zmsg_t **msg_p, size_t total)
{
    char key[S_HEX_MAX];
    s_hex(zframe_data(addr), zframe_size(addr), key);
    zframe_t *command = zmsg_pop(*msg_p);
    s_worker_t *worker = zhashx_lookup(self->workers, key);
    if (!command || zframe_size(command) != 1) {
        s_malformed(self, addr, "worker message without a one-byte command");
        zframe_destroy(&command);
        return;
    }
    uint8_t code = zframe_data(command)[0];
    zframe_destroy(&command);

    if (!worker) {
        if (code == SAM_MDPW_READY) {
            if (total > 2 * S_SERVICE_MAX + 64)
                s_malformed(self, addr, "READY is too large");
            else
                s_worker_ready(self, addr, key, *msg_p);
        } else if (code != SAM_MDPW_DISCONNECT) {
            char reason[80];
            snprintf(reason, sizeof reason, "command 0x%02x from a worker that is not registered",
                     code);
            s_malformed(self, addr, reason);
            s_disconnect_peer(self, addr);
        }
        return;
    }
    worker->expiry = self->now + (int64_t)self->heartbeat_ms * self->liveness;
    switch (code) {
    case SAM_MDPW_REPLY:
        s_worker_reply(self, worker, addr, msg_p, total);
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
static void s_mmi_request(sam_broker_t *self, zframe_t *addr, bool delim, const char *name,
                          zmsg_t *body)
{
    const char *answer = "501";
    if (strcmp(name, "mmi.service") == 0) {
        char wanted[S_SERVICE_MAX + 1];
        s_service_t *service =
            s_frame_name(zmsg_first(body), wanted) ? zhashx_lookup(self->services, wanted) : NULL;
        answer = service && service->nworkers ? "200" : "404";
    }
    zmsg_t *msg = zmsg_new();
    if (!msg) return;
    zmsg_addmem(msg, zframe_data(addr), zframe_size(addr));
    if (delim) zmsg_addmem(msg, "", 0);
    zmsg_addstr(msg, SAM_MDPC);
    zmsg_addstr(msg, name);
    zmsg_addstr(msg, answer);
    s_send(self, &msg, "client", zframe_data(addr), zframe_size(addr));
}

/*  A client request: [client] [""] "MDPC01" service body… ; `*msg_p` starts at the service
    frame. It goes to a worker now, waits in the service's queue, or is refused at once
    (413 too large, 429 queue full). */
static void s_client_request(sam_broker_t *self, zframe_t **addr_p, bool delim, zmsg_t **msg_p,
                             size_t total)
{
    char name[S_SERVICE_MAX + 1];
    zframe_t *service_frame = zmsg_pop(*msg_p);
    bool named = s_frame_name(service_frame, name);
    zframe_destroy(&service_frame);
    if (!named) {
        s_malformed(self, *addr_p, "client request without a valid service name");
        return;
    }
    if (zmsg_size(*msg_p) == 0) {
        s_malformed(self, *addr_p, "client request without a body");
        return;
    }
    if (strncmp(name, "mmi.", 4) == 0) {
        s_mmi_request(self, *addr_p, delim, name, *msg_p);
        return;
    }
    self->requests++;
    zmsg_prepend(*msg_p, addr_p);
    if (total > self->max_msg) {
        char hex[S_HEX_MAX];
        zframe_t *client = zmsg_first(*msg_p);
        sam_warn("request.too_large client=%s service=%s size=%zu max=%zu",
                 s_hex(zframe_data(client), zframe_size(client), hex), name, total,
                 self->max_msg);
        s_refuse(self, msg_p, delim, name, SAM_TOO_LARGE,
                 "message of %zu bytes is over the broker's limit of %zu bytes", total,
                 self->max_msg);
        return;
    }
    s_service_t *service = s_service_require(self, name);
    if (!service) {
        s_refuse(self, msg_p, delim, name, SAM_INTERNAL, "broker out of memory");
        return;
    }
    if (service->qlen == 0 && service->free_head) {
        s_worker_send_request(self, service->free_head, msg_p, delim);
        return;
    }
    if (service->qlen >= self->queue_max) {
        sam_warn("request.refused service=%s reason=\"queue full\" queued=%zu", name,
                 service->qlen);
        s_refuse(self, msg_p, delim, name, SAM_BUSY,
                 "the queue for service '%s' is full (%zu requests waiting)", name,
                 service->qlen);
        return;
    }
    if (s_queue_push(service, msg_p, delim, self->now) != 0)
        s_refuse(self, msg_p, delim, name, SAM_INTERNAL, "broker out of memory");
}

/*  Every message on the socket: [peer] [""] header … ; the header decides who speaks. */
static void s_on_message(sam_broker_t *self, zmsg_t **msg_p)
{
    zmsg_t *msg = *msg_p;
    size_t total = zmsg_content_size(msg);
    zframe_t *addr = zmsg_pop(msg);
    if (!addr || zframe_size(addr) == 0 || zframe_size(addr) > S_ADDR_MAX) {
        s_malformed(self, NULL, "message without a routing id");
        goto done;
    }
    total -= zframe_size(addr);
    zframe_t *header = zmsg_pop(msg);
    bool delim = false;
    if (header && zframe_size(header) == 0) {
        delim = true;
        zframe_destroy(&header);
        header = zmsg_pop(msg);
    }
    if (s_frame_is(header, SAM_MDPC))
        s_client_request(self, &addr, delim, msg_p, total);
    else if (s_frame_is(header, SAM_MDPW))
        s_worker_message(self, addr, msg_p, total);
    else
        s_malformed(self, addr, header ? "unknown protocol header" : "empty message");
    zframe_destroy(&header);
done:
    zframe_destroy(&addr);
    zmsg_destroy(msg_p);
}

/* ---- timers ---------------------------------------------------------------------------- */

static void s_log_stats(sam_broker_t *self, const char *event)
{
    size_t queued = 0;
    for (s_service_t *s = zhashx_first(self->services); s; s = zhashx_next(self->services))
        queued += s->qlen;
    sam_info("%s requests=%" PRIu64 " replies=%" PRIu64 " errors=%" PRIu64 " malformed=%" PRIu64
             " workers=%zu services=%zu queued=%zu lost_workers=%" PRIu64,
             event, self->requests, self->replies, self->errors, self->malformed,
             zhashx_size(self->workers), zhashx_size(self->services), queued, self->purged);
}

/*  Requests for a service that has had no worker for request_timeout_ms get 503; a
    service with neither workers nor requests is forgotten. */
static void s_expire_queues(sam_broker_t *self)
{
    zlist_t *idle = NULL;
    for (s_service_t *service = zhashx_first(self->services); service;
         service = zhashx_next(self->services)) {
        if (service->nworkers) continue;
        while (service->qlen) {
            s_queued_t *head = &service->queue[service->qhead];
            int64_t since = head->enqueued > service->orphaned_at ? head->enqueued
                                                                  : service->orphaned_at;
            if (self->now < since + self->request_timeout_ms) break;
            s_queued_t entry = s_queue_pop(service);
            sam_warn("request.expired service=%s waited_ms=%" PRId64, service->name,
                     self->now - entry.enqueued);
            s_refuse(self, &entry.msg, entry.delim, service->name, SAM_UNAVAILABLE,
                     "no worker for service '%s' within %d ms", service->name,
                     self->request_timeout_ms);
        }
        if (service->qlen == 0) {
            if (!idle) idle = zlist_new();
            if (idle) zlist_append(idle, service->name);
        }
    }
    if (!idle) return;
    for (char *name = zlist_first(idle); name; name = zlist_next(idle))
        zhashx_delete(self->services, name); /* frees the name only after the delete */
    zlist_destroy(&idle);
}

/* Sends HEARTBEAT to every worker and purges those silent past their liveness. */
static void s_heartbeat(sam_broker_t *self)
{
    zlist_t *expired = NULL;
    for (s_worker_t *worker = zhashx_first(self->workers); worker;
         worker = zhashx_next(self->workers)) {
        if (worker->expiry < self->now) {
            if (!expired) expired = zlist_new();
            if (expired) zlist_append(expired, worker);
        } else {
            s_worker_command(self, worker, SAM_MDPW_HEARTBEAT, NULL);
        }
    }
    if (!expired) return;
    for (s_worker_t *worker = zlist_first(expired); worker; worker = zlist_next(expired))
        s_worker_delete(self, worker, false, "silent past its heartbeat liveness");
    zlist_destroy(&expired);
}

static void s_tick(sam_broker_t *self)
{
    if (self->now >= self->next_heartbeat) {
        s_heartbeat(self);
        self->next_heartbeat = self->now + self->heartbeat_ms;
    }
    s_expire_queues(self);
    if (self->now >= self->next_stats) {
        s_log_stats(self, "broker.stats");
        self->next_stats = self->now + S_STATS_MS;
    }
    int64_t next = self->now + S_TICK_MS;
    self->next_tick = next < self->next_heartbeat ? next : self->next_heartbeat;
}

/* ---- lifecycle ------------------------------------------------------------------------- */

sam_broker_t *sam_broker_new(const sam_broker_config_t *config)
{
    if (!config->insecure) {
        sam_error("broker.refused reason=\"CURVE is not configured: pass --insecure for a "
                  "loopback-only run\"");
        return NULL;
    }
    if (config->nbinds == 0) {
        sam_error("broker.refused reason=\"no endpoint to bind\"");
        return NULL;
    }
    for (size_t i = 0; i < config->nbinds; i++)
        if (!sam_broker_endpoint_is_loopback(config->binds[i])) {
            sam_error("broker.refused endpoint=%s reason=\"--insecure is only allowed on "
                      "loopback endpoints (127.0.0.0/8, [::1], localhost, ipc://, inproc://); "
                      "CURVE is required for any other\"",
                      config->binds[i]);
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
    self->heartbeat_ms = config->heartbeat_ms;
    self->liveness = config->liveness;
    self->request_timeout_ms = config->request_timeout_ms;
    self->queue_max = config->queue_max;
    self->max_msg = config->max_msg;
    self->insecure = config->insecure;
    self->services = zhashx_new();
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
            sam_error("broker.refused endpoint=%s reason=\"cannot bind: %s\"", config->binds[i],
                      zmq_strerror(zmq_errno()));
            sam_broker_destroy(&self);
            return NULL;
        }
        sam_info("broker.listening endpoint=%s", zsock_endpoint(self->router));
    }
    self->now = zclock_mono();
    self->next_heartbeat = self->now + self->heartbeat_ms;
    self->next_stats = self->now + S_STATS_MS;
    self->next_tick = self->now + S_TICK_MS;
    sam_info("broker.started insecure=yes heartbeat_ms=%d liveness=%d request_timeout_ms=%d "
             "queue_max=%zu max_msg=%zu",
             self->heartbeat_ms, self->liveness, self->request_timeout_ms, self->queue_max,
             self->max_msg);
    return self;
}

void sam_broker_destroy(sam_broker_t **self_p)
{
    if (!self_p || !*self_p) return;
    sam_broker_t *self = *self_p;
    if (self->router && self->workers && self->services) {
        self->now = zclock_mono();
        zsock_set_linger(self->router, S_LINGER_MS);
        s_worker_t *worker;
        while ((worker = zhashx_first(self->workers)))
            s_worker_delete(self, worker, true, "the broker is shutting down");
        for (s_service_t *service = zhashx_first(self->services); service;
             service = zhashx_next(self->services))
            while (service->qlen) {
                s_queued_t entry = s_queue_pop(service);
                s_refuse(self, &entry.msg, entry.delim, service->name, SAM_UNAVAILABLE,
                         "the broker is shutting down");
            }
        s_log_stats(self, "broker.stopped");
    }
    zhashx_destroy(&self->workers);
    zhashx_destroy(&self->services);
    zsock_destroy(&self->router);
    free(self->caller);
    free(self);
    *self_p = NULL;
}

int sam_broker_run(sam_broker_t *self)
{
    zmq_pollitem_t item = {self->handle, 0, ZMQ_POLLIN, 0};
    while (!zsys_interrupted) {
        self->now = zclock_mono();
        long wait = self->next_tick > self->now ? (long)(self->next_tick - self->now) : 0;
        int rc = zmq_poll(&item, 1, wait);
        if (rc == -1) {
            if (zmq_errno() == EINTR) continue;
            sam_error("broker.failed reason=\"poll: %s\"", zmq_strerror(zmq_errno()));
            return -1;
        }
        self->now = zclock_mono();
        for (int i = 0; rc > 0 && i < S_DRAIN_MAX; i++) {
            zmsg_t *msg = zmsg_recv(self->router);
            if (!msg) break;
            s_on_message(self, &msg);
            if ((i & 127) == 127) self->now = zclock_mono();
        }
        if (self->now >= self->next_tick) s_tick(self);
    }
    sam_info("broker.stopping reason=signal");
    return 0;
}

/* ---- self-test ------------------------------------------------------------------------- */

#define S_CHECK(cond)                                                                          \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "sam_broker_selftest: %s:%d: check failed: %s\n", __FILE__,        \
                    __LINE__, #cond);                                                          \
            failed++;                                                                          \
        }                                                                                      \
    } while (0)

int sam_broker_selftest(bool verbose)
{
    int failed = 0;

    /* Endpoints that --insecure accepts, and some it must refuse. */
    S_CHECK(sam_broker_endpoint_is_loopback("tcp://127.0.0.1:5555"));
    S_CHECK(sam_broker_endpoint_is_loopback("tcp://127.8.9.10:1"));
    S_CHECK(sam_broker_endpoint_is_loopback("tcp://[::1]:5555"));
    S_CHECK(sam_broker_endpoint_is_loopback("tcp://localhost:5555"));
    S_CHECK(sam_broker_endpoint_is_loopback("ipc:///run/samordna/broker"));
    S_CHECK(sam_broker_endpoint_is_loopback("inproc://broker"));
    S_CHECK(!sam_broker_endpoint_is_loopback("tcp://0.0.0.0:5555"));
    S_CHECK(!sam_broker_endpoint_is_loopback("tcp://*:5555"));
    S_CHECK(!sam_broker_endpoint_is_loopback("tcp://10.0.0.1:5555"));
    S_CHECK(!sam_broker_endpoint_is_loopback("tcp://128.0.0.1:5555"));
    S_CHECK(!sam_broker_endpoint_is_loopback("tcp://[::]:5555"));
    S_CHECK(!sam_broker_endpoint_is_loopback("tcp://localhost.example.org:5555"));
    S_CHECK(!sam_broker_endpoint_is_loopback("tcp://127.0.0.1"));
    S_CHECK(!sam_broker_endpoint_is_loopback("udp://127.0.0.1:5555"));
    S_CHECK(!sam_broker_endpoint_is_loopback(NULL));

    /* The READY extension frame. */
    uint32_t credit = 0;
    bool identity = true;
    const char *ext = "x-samordna/1 identity credit=64 future-token";
    S_CHECK(sam_broker_parse_extension((const uint8_t *)ext, strlen(ext), &credit, &identity));
    S_CHECK(credit == 64 && identity);
    ext = "x-samordna/1";
    S_CHECK(sam_broker_parse_extension((const uint8_t *)ext, strlen(ext), &credit, &identity));
    S_CHECK(credit == 1 && !identity);
    ext = "x-samordna/1 credit=0";
    S_CHECK(sam_broker_parse_extension((const uint8_t *)ext, strlen(ext), &credit, &identity));
    S_CHECK(credit == 1);
    ext = "x-samordna/1 credit=99999999999999999999999";
    S_CHECK(sam_broker_parse_extension((const uint8_t *)ext, strlen(ext), &credit, &identity));
    S_CHECK(credit == SAM_MDP_MAX_CREDIT);
    ext = "x-samordna/1 credit=12abc";
    S_CHECK(sam_broker_parse_extension((const uint8_t *)ext, strlen(ext), &credit, &identity));
    S_CHECK(credit == 1);
    ext = "x-other/2 credit=5";
    S_CHECK(!sam_broker_parse_extension((const uint8_t *)ext, strlen(ext), &credit, &identity));
    S_CHECK(!sam_broker_parse_extension((const uint8_t *)"x-samordna/1\0", 13, &credit,
                                        &identity));

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
    const uint8_t wrong_type[] = {0x0a, 0x01, 0x00}; /* field 1 as bytes */
    S_CHECK(sam_broker_peek_id(wrong_type, sizeof wrong_type) == 0);

    /* A broker refuses to start without --insecure (no CURVE yet) and off loopback. */
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

    if (verbose) printf("sam_broker_selftest: %s\n", failed ? "FAILED" : "OK");
    return failed ? -1 : 0;
}
