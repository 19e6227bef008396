/*  sam_client.c — see sam_client.h.

    One broker: one DEALER socket, requests and replies straight through it, nothing kept.

    Several brokers: one DEALER per broker (a link), each with ZMQ_IMMEDIATE so a message is
    only taken by a connection that is up. Every request goes to the next link that is
    answering, round robin, and is remembered (a flight: its id, method and body) until its
    reply comes. Links are heartbeaten through 8/MMI: a link that nothing came from for
    heartbeat_ms gets an "mmi.heartbeat" request, which every samordna broker answers at
    once. A link is lost when that heartbeat cannot be sent (its connection is gone: a broker
    killed or restarting) or stays unanswered for heartbeat_ms × liveness (a broker that is
    hung or cut off); its flights then go to the other links at once — the idempotent ones,
    with the same id — and the others are answered 503 here. A lost link is heartbeaten on
    and used again once it answers. Replies are matched to flights by id; a second reply to
    one id (a resent request that both brokers answered) is dropped.

    Heartbeats and failover run inside the calls (send, recv, call): a client that is idle
    costs nothing and, as nothing is then waited for, nothing needs failing over.
*/
#include "sam_client.h"
#include "sam_keys.h"
#include "sam_log.h"
#include "sam_mdp.h"
#include "sam_status.h"

#include "samordna/v1/envelope.pb-c.h"

#include <czmq.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_HEARTBEAT_MS 100     /* default client → broker heartbeat interval */
#define S_LIVENESS 5           /* default unanswered intervals before a link is lost */
#define S_UNSENT_MS 5000       /* how long a request may wait for a live broker by default */
#define S_FLIGHT_MAX_MS 600000 /* a flight nobody read the reply of is forgotten after this */
#define S_HEARTBEAT "mmi.heartbeat"

typedef struct {
    zsock_t *sock;     /* DEALER to this broker */
    zsock_t *watch;    /* PAIR receiving sock's ZMQ_EVENT_DISCONNECTED (several brokers) */
    char *endpoint;    /* as given */
    bool up;           /* answering: new requests go here */
    int64_t heard_at;  /* when anything last came from it */
    int64_t ping_at;   /* when the unanswered heartbeat went out; 0: none outstanding */
    int64_t grace_end; /* before this, a link not yet connected is connecting, not lost */
} s_link_t;

typedef struct {
    uint64_t id;
    int link;        /* the link it went out on; -1 while it waits for a live one */
    bool idempotent; /* may be sent again after a lost link */
    int timeout_ms;  /* what the request tells the broker */
    int64_t expires; /* waiting for a live link past this: answered 503 here */
    int64_t born;    /* forgotten after S_FLIGHT_MAX_MS */
    char *service;   /* these point into the same allocation */
    char *method;
    uint8_t *body;
    size_t len;
    sam_caller_as_t as; /* on behalf of (agency, role into the allocation); NULL fields: none */
    bool primary;       /* its route when it was sent (sam_client_set_route), for a resend */
    char instance[96];
} s_flight_t;

struct sam_client_t {
    s_link_t *links;
    size_t nlinks;
    size_t next_link; /* round robin over the links */
    uint64_t next_id;
    int deadline_ms;       /* what pipelined requests tell the broker they wait (0: its default) */
    int heartbeat_ms;      /* several brokers: heartbeat interval */
    int liveness;          /* several brokers: unanswered intervals before a link is lost */
    zhashx_t *flights;     /* several brokers: id → s_flight_t */
    size_t unsent;         /* flights waiting for a live link */
    zlist_t *local;        /* several brokers: sam_result_t answered here, for recv */
    zmq_pollitem_t *items; /* the links' sockets, then their watches */
    int64_t tick_at;       /* when heartbeats are next looked at */
    int64_t sweep_at;      /* when flights are next looked at for age */
    bool fail_fast;        /* sends never wait: no connection or a full queue fails them */
    bool primary;          /* every request routed to the primary (sam_client_set_route) */
    char instance[96];     /* every request routed to this instance ("" none) */
};

void sam_client_set_route(sam_client_t *self, bool primary, const char *instance)
{
    self->primary = primary;
    snprintf(self->instance, sizeof self->instance, "%s", instance ? instance : "");
}

void sam_result_clear(sam_result_t *r)
{
    if (!r) return;
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

static bool s_several(const sam_client_t *self)
{
    return self->nlinks > 1;
}

/* ---- flights: a hash keyed by the request id ------------------------------------------- */

static size_t s_id_hash(const void *key)
{
    uint64_t id = *(const uint64_t *)key;
    return (size_t)(id ^ (id >> 29));
}

static int s_id_compare(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void s_flight_free(void **item)
{
    free(*item);
    *item = NULL;
}

static void s_flight_remove(sam_client_t *self, s_flight_t *f)
{
    if (f->link < 0) self->unsent--;
    zhashx_delete(self->flights, &f->id);
}

static s_flight_t *s_flight_new(sam_client_t *self, uint64_t id, const char *service,
                                const char *method, const uint8_t *body, size_t len, int timeout_ms,
                                bool idempotent, const sam_caller_as_t *as)
{
    size_t ls = strlen(service) + 1, lm = strlen(method) + 1;
    size_t la = as && as->agency ? strlen(as->agency) + 1 : 0;
    size_t lr = as && as->role ? strlen(as->role) + 1 : 0;
    s_flight_t *f = malloc(sizeof *f + ls + lm + len + la + lr);
    if (!f) return NULL;
    int64_t now = zclock_mono();
    *f = (s_flight_t){.id = id,
                      .link = -1,
                      .idempotent = idempotent,
                      .timeout_ms = timeout_ms,
                      .expires = now + (timeout_ms > 0 ? timeout_ms : S_UNSENT_MS),
                      .born = now,
                      .len = len};
    f->primary = self->primary;
    snprintf(f->instance, sizeof f->instance, "%s", self->instance);
    f->service = (char *)(f + 1);
    f->method = f->service + ls;
    f->body = (uint8_t *)f->method + lm;
    memcpy(f->service, service, ls);
    memcpy(f->method, method, lm);
    if (len) memcpy(f->body, body, len);
    /* a resend to another broker speaks for the same caller */
    char *at = (char *)f->body + len;
    f->as.agency = la ? memcpy(at, as->agency, la) : NULL;
    f->as.role = lr ? memcpy(at + la, as->role, lr) : NULL;
    s_flight_t *old = zhashx_lookup(self->flights, &id); /* a call's second attempt */
    if (old) s_flight_remove(self, old);
    if (zhashx_insert(self->flights, &f->id, f) != 0) {
        free(f);
        return NULL;
    }
    self->unsent++;
    return f;
}

/* Answers a flight here (it is then forgotten): recv hands the answer out next. */
static void s_flight_answer(sam_client_t *self, s_flight_t *f, uint32_t code, const char *fmt, ...)
{
    sam_result_t *r = calloc(1, sizeof *r);
    if (r) {
        r->id = f->id;
        r->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->message, sizeof r->message, fmt, ap);
        va_end(ap);
        if (zlist_append(self->local, r) != 0) free(r);
    }
    s_flight_remove(self, f);
}

/* ---- links ------------------------------------------------------------------------------ */

static zsock_t *s_socket(const sam_client_opts_t *opts, char *err, size_t errlen)
{
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    if (!sock) {
        snprintf(err, errlen, "cannot create socket");
        return NULL;
    }
    zsock_set_linger(sock, 0);
    zsock_set_maxmsgsize(sock, 256 << 20); /* the broker's largest --max-msg */
    zsock_set_sndhwm(sock, 100000);
    zsock_set_rcvhwm(sock, 100000);
    if (opts && opts->fail_fast) {
        zsock_set_immediate(sock, 1); /* before connecting: it applies to new pipes */
        zsock_set_sndtimeo(sock, 0);
    }
    if (opts && (opts->client_cert || opts->server_key)) {
        char server_key[SAM_KEY_Z85_LEN + 1];
        zcert_t *cert = NULL;
        if (!opts->client_cert || !opts->server_key) {
            snprintf(err, errlen, "CURVE needs both a client certificate and the broker's key");
        } else if (sam_keys_check_secret(opts->client_cert, err, errlen) == 0 &&
                   sam_keys_server_key(opts->server_key, server_key, err, errlen) == 0 &&
                   !(cert = zcert_load(opts->client_cert))) {
            snprintf(err, errlen, "cannot read certificate %s", opts->client_cert);
        }
        if (!cert) {
            zsock_destroy(&sock);
            return NULL;
        }
        zcert_apply(cert, sock);
        zsock_set_curve_serverkey(sock, server_key);
        zcert_destroy(&cert);
    }
    return sock;
}

/*  "" "MDPC01" service Request on link li, straight onto the socket. `flags` is 0 or
    ZMQ_DONTWAIT. Once the first frame is accepted the rest of a multipart message cannot
    fail. */
static int s_send(sam_client_t *self, size_t li, const char *service, uint64_t id,
                  const char *method, const uint8_t *body, size_t len, int timeout_ms, int flags,
                  const sam_caller_as_t *as, bool primary, const char *instance)
{
    Samordna__V1__Request req = SAMORDNA__V1__REQUEST__INIT;
    Samordna__V1__OnBehalf behalf = SAMORDNA__V1__ON_BEHALF__INIT;
    if (as && (as->agency || as->role)) {
        behalf.agency = (char *)(as->agency ? as->agency : "");
        behalf.role = (char *)(as->role ? as->role : "");
        req.on_behalf = &behalf;
    }
    req.id = id;
    req.timeout_ms = timeout_ms > 0 ? (uint32_t)timeout_ms : 0; /* the broker's deadline */
    req.primary = primary;
    req.instance = (char *)instance;
    req.method = (char *)method;
    req.body.data = (uint8_t *)body;
    req.body.len = len;
    size_t size = samordna__v1__request__get_packed_size(&req);
    uint8_t stack[2048];
    uint8_t *packed = size <= sizeof stack ? stack : malloc(size);
    if (!packed) return -1;
    samordna__v1__request__pack(&req, packed);
    void *h = zsock_resolve(self->links[li].sock);
    int rc = zmq_send(h, "", 0, ZMQ_SNDMORE | flags) < 0 ? -1 : 0;
    if (rc == 0) {
        zmq_send(h, SAM_MDPC, strlen(SAM_MDPC), ZMQ_SNDMORE);
        zmq_send(h, service, strlen(service), ZMQ_SNDMORE);
        zmq_send(h, packed, size, 0);
    }
    if (packed != stack) free(packed);
    return rc;
}

/*  Sends a flight on the next link that takes it: an answering one, else (none answers)
    any whose connection is up. Stays waiting (link -1) when none takes it. */
static void s_dispatch(sam_client_t *self, s_flight_t *f, int64_t now);

/*  The ids of the flights on link li (-1: those waiting for a link), malloc'd, *n of them:
    what failing over walks, as sending may answer (free) flights on the way. */
static uint64_t *s_flight_ids(sam_client_t *self, int li, size_t *n)
{
    *n = 0;
    uint64_t *ids = malloc((zhashx_size(self->flights) + 1) * sizeof *ids);
    if (!ids) return NULL;
    for (s_flight_t *f = zhashx_first(self->flights); f; f = zhashx_next(self->flights))
        if (f->link == li) ids[(*n)++] = f->id;
    return ids;
}

/*  Link li is lost: nothing more goes to it until it answers again, and its flights go to
    the others — the idempotent ones; the others are answered 503. */
static void s_link_lost(sam_client_t *self, size_t li, int64_t now, const char *why)
{
    s_link_t *l = &self->links[li];
    bool was_up = l->up;
    l->up = false;
    l->ping_at = 0;
    size_t n = 0;
    uint64_t *ids = s_flight_ids(self, (int)li, &n);
    if (was_up || n) /* once per loss, not at every heartbeat of a broker still away */
        sam_info("client.broker_lost endpoint=%s reason=%s in_flight=%zu", sam_logv(l->endpoint),
                 sam_logv(why), n);
    for (size_t i = 0; i < n; i++) {
        s_flight_t *f = zhashx_lookup(self->flights, &ids[i]);
        if (!f || f->link != (int)li) continue; /* answered or moved meanwhile */
        if (!f->idempotent) {
            s_flight_answer(self, f, SAM_UNAVAILABLE,
                            "the broker %s was lost (%s) with this request in flight; it is not "
                            "sent again as it is not idempotent",
                            l->endpoint, why);
            continue;
        }
        f->link = -1;
        self->unsent++;
        s_dispatch(self, f, now);
    }
    free(ids);
}

static void s_dispatch(sam_client_t *self, s_flight_t *f, int64_t now)
{
    for (int pass = 0; pass < 2; pass++)
        for (size_t n = 0; n < self->nlinks; n++) {
            size_t li = (self->next_link + n) % self->nlinks;
            s_link_t *l = &self->links[li];
            if (l->up != (pass == 0)) continue;
            if (s_send(self, li, f->service, f->id, f->method, f->body, f->len, f->timeout_ms,
                       ZMQ_DONTWAIT, &f->as, f->primary, f->instance) == 0) {
                f->link = (int)li;
                self->unsent--;
                self->next_link = (li + 1) % self->nlinks;
                return;
            }
            /* not taken: no connection (or its queue is full) */
            if (l->up && now >= l->grace_end) s_link_lost(self, li, now, "its connection is gone");
            if (f->link >= 0) return; /* sent meanwhile, by the failover of that link */
        }
}

/*  A link whose connection broke (its broker stopped or was killed) is lost at once, even
    when it is connected again by now (a broker restarted quickly has forgotten what it
    held). */
static void s_watch_links(sam_client_t *self, int64_t now)
{
    for (size_t li = 0; li < self->nlinks; li++) {
        if (!self->links[li].watch) continue;
        void *h = zsock_resolve(self->links[li].watch);
        bool broke = false;
        zmq_msg_t part;
        zmq_msg_init(&part);
        while (zmq_msg_recv(&part, h, ZMQ_DONTWAIT) >= 0) {
            /* frame 1: uint16 event, uint32 value; frame 2: the endpoint */
            if (zmq_msg_more(&part) && zmq_msg_size(&part) >= 2) {
                uint16_t event;
                memcpy(&event, zmq_msg_data(&part), sizeof event);
                broke |= event == ZMQ_EVENT_DISCONNECTED;
            }
            while (zmq_msg_more(&part) && zmq_msg_recv(&part, h, ZMQ_DONTWAIT) >= 0)
                ;
        }
        zmq_msg_close(&part);
        if (broke) s_link_lost(self, li, now, "its connection broke");
    }
}

/*  Heartbeats: every link nothing came from for heartbeat_ms gets one; a link whose
    heartbeat cannot be sent, or stays unanswered past heartbeat_ms × liveness, is lost.
    Then flights waiting for a link go out, or are answered 503 past their time. */
static void s_tick(sam_client_t *self, int64_t now)
{
    if (now < self->tick_at && !self->unsent) return;
    self->tick_at = now + self->heartbeat_ms / 2;
    int64_t dead_after = (int64_t)self->heartbeat_ms * self->liveness;
    for (size_t li = 0; li < self->nlinks; li++) {
        s_link_t *l = &self->links[li];
        /* An answer waiting unread (a caller that looks in seldom, as a follower does) is
           an answer. */
        if (l->ping_at && now - l->ping_at > dead_after && (zsock_events(l->sock) & ZMQ_POLLIN))
            l->ping_at = 0;
        if (l->ping_at && now - l->ping_at > dead_after) /* heartbeaten on, to see it back */
            s_link_lost(self, li, now, "its heartbeat went unanswered");
        if (l->ping_at || now - l->heard_at < self->heartbeat_ms) continue;
        void *h = zsock_resolve(l->sock);
        if (zmq_send(h, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) == 0) {
            zmq_send(h, SAM_MDPC, strlen(SAM_MDPC), ZMQ_SNDMORE);
            zmq_send(h, S_HEARTBEAT, strlen(S_HEARTBEAT), ZMQ_SNDMORE);
            zmq_send(h, "", 0, 0);
            l->ping_at = now;
        } else if (l->up && now >= l->grace_end)
            s_link_lost(self, li, now, "its connection is gone");
    }
    if (now >= self->sweep_at) { /* replies nobody read for ten minutes: forgotten */
        self->sweep_at = now + 1000;
        zlist_t *old = zlist_new();
        for (s_flight_t *f = zhashx_first(self->flights); f; f = zhashx_next(self->flights))
            if (old && f->link >= 0 && now - f->born > S_FLIGHT_MAX_MS) zlist_append(old, f);
        for (s_flight_t *f = old ? zlist_first(old) : NULL; f; f = zlist_next(old))
            s_flight_remove(self, f);
        zlist_destroy(&old);
    }
    if (!self->unsent) return;
    size_t n = 0;
    uint64_t *ids = s_flight_ids(self, -1, &n);
    for (size_t i = 0; i < n; i++) {
        s_flight_t *f = zhashx_lookup(self->flights, &ids[i]);
        if (!f || f->link >= 0) continue; /* sent meanwhile */
        if (now >= f->expires)
            s_flight_answer(self, f, SAM_UNAVAILABLE,
                            "cannot send to any of the %zu brokers within %d ms (is one "
                            "running, and does it accept this certificate?)",
                            self->nlinks, f->timeout_ms > 0 ? f->timeout_ms : S_UNSENT_MS);
        else
            s_dispatch(self, f, now);
    }
    free(ids);
}

sam_client_t *sam_client_new(const char *const *brokers, size_t n, const sam_client_opts_t *opts,
                             char *err, size_t errlen)
{
    if (n == 0) {
        snprintf(err, errlen, "no broker endpoint given");
        return NULL;
    }
    sam_client_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    self->links = calloc(n, sizeof *self->links);
    self->items = calloc(2 * n, sizeof *self->items);
    if (!self->links || !self->items) {
        snprintf(err, errlen, "out of memory");
        sam_client_destroy(&self);
        return NULL;
    }
    self->heartbeat_ms = opts && opts->heartbeat_ms > 0 ? opts->heartbeat_ms : S_HEARTBEAT_MS;
    self->liveness = opts && opts->liveness > 0 ? opts->liveness : S_LIVENESS;
    self->fail_fast = opts && opts->fail_fast;
    int64_t now = zclock_mono();
    for (size_t i = 0; i < n; i++) {
        s_link_t *l = &self->links[i];
        if (!(l->sock = s_socket(opts, err, errlen))) {
            sam_client_destroy(&self);
            return NULL;
        }
        self->nlinks++;
        /* several brokers: a message goes only to a connection that is up, never queued
           for one that is down (it is sent elsewhere instead) */
        if (n > 1) zsock_set_immediate(l->sock, 1);
        l->endpoint = strdup(brokers[i]);
        if (!l->endpoint || zsock_connect(l->sock, "%s", brokers[i]) != 0) {
            snprintf(err, errlen, "cannot connect to '%s'", brokers[i]);
            sam_client_destroy(&self);
            return NULL;
        }
        if (n > 1) {
            /* a name never used before in this process: libzmq unbinds a closed monitor's
               endpoint later, and a new client may have the same address as one destroyed */
            static _Atomic unsigned long generation;
            char ep[96];
            snprintf(ep, sizeof ep, "inproc://sam-client-watch-%p-%zu-%lu", (void *)self, i,
                     ++generation);
            if (zmq_socket_monitor(zsock_resolve(l->sock), ep, ZMQ_EVENT_DISCONNECTED) != 0 ||
                !(l->watch = zsock_new_pair(ep))) {
                snprintf(err, errlen, "cannot watch the connection to '%s': %s", brokers[i],
                         zmq_strerror(zmq_errno()));
                sam_client_destroy(&self);
                return NULL;
            }
            self->items[n + i] =
                (zmq_pollitem_t){.socket = zsock_resolve(l->watch), .events = ZMQ_POLLIN};
        }
        l->up = true;
        l->heard_at = now - self->heartbeat_ms; /* heartbeaten at the first call */
        l->grace_end = now + (int64_t)self->heartbeat_ms * self->liveness;
        self->items[i] = (zmq_pollitem_t){.socket = zsock_resolve(l->sock), .events = ZMQ_POLLIN};
    }
    if (n > 1) {
        self->flights = zhashx_new();
        self->local = zlist_new();
        if (!self->flights || !self->local) {
            snprintf(err, errlen, "out of memory");
            sam_client_destroy(&self);
            return NULL;
        }
        zhashx_set_key_hasher(self->flights, s_id_hash);
        zhashx_set_key_comparator(self->flights, s_id_compare);
        zhashx_set_key_duplicator(self->flights, NULL);
        zhashx_set_key_destructor(self->flights, NULL);
        zhashx_set_destructor(self->flights, s_flight_free);
        self->next_link = (size_t)randof((int)n); /* clients spread over the brokers */
    }
    /* Ids start at a random point so replies meant for an earlier process are not mistaken. */
    self->next_id = ((uint64_t)randof(1 << 30) << 20) + 1;
    return self;
}

void sam_client_destroy(sam_client_t **self_p)
{
    if (!self_p || !*self_p) return;
    sam_client_t *self = *self_p;
    for (size_t i = 0; self->links && i < self->nlinks; i++) {
        zsock_destroy(&self->links[i].sock);
        zsock_destroy(&self->links[i].watch);
        free(self->links[i].endpoint);
    }
    zhashx_destroy(&self->flights);
    if (self->local) {
        for (sam_result_t *r = zlist_pop(self->local); r; r = zlist_pop(self->local))
            free(r);
        zlist_destroy(&self->local);
    }
    free(self->links);
    free(self->items);
    free(self);
    *self_p = NULL;
}

/*  Several brokers: a request is remembered and goes out on a live link (or waits for one).
    Returns 0, or -1 out of memory. */
static int s_send_tracked(sam_client_t *self, uint64_t id, const char *service, const char *method,
                          const uint8_t *body, size_t len, int timeout_ms, bool idempotent,
                          const sam_caller_as_t *as)
{
    s_flight_t *f = s_flight_new(self, id, service, method, body, len, timeout_ms, idempotent, as);
    if (!f) return -1;
    int64_t now = zclock_mono();
    s_watch_links(self, now);
    s_tick(self, now);
    s_dispatch(self, f, now);
    if (self->fail_fast && f->link < 0) { /* no broker takes it now: the caller says so */
        s_flight_remove(self, f);
        return -1;
    }
    return 0;
}

uint64_t sam_client_send(sam_client_t *self, const char *service, const char *method,
                         const uint8_t *body, size_t len)
{
    return sam_client_send_as(self, service, method, body, len, NULL);
}

uint64_t sam_client_send_as(sam_client_t *self, const char *service, const char *method,
                            const uint8_t *body, size_t len, const sam_caller_as_t *as)
{
    uint64_t id = self->next_id++;
    if (s_several(self))
        return s_send_tracked(self, id, service, method, body, len, self->deadline_ms, true, as) ==
                       0
                   ? id
                   : 0;
    return s_send(self, 0, service, id, method, body, len, self->deadline_ms, 0, as, self->primary,
                  self->instance) == 0
               ? id
               : 0;
}

char *sam_client_mmi(sam_client_t *self, const char *name, const char *body, int timeout_ms)
{
    zsock_t *sock = self->links[0].sock;
    if (zsock_send(sock, "ssss", "", SAM_MDPC, name, body ? body : "") != 0) return NULL;
    int64_t deadline = zclock_mono() + timeout_ms;
    zpoller_t *poller = zpoller_new(sock, NULL);
    char *answer = NULL;
    for (int left; !answer && poller && (left = (int)(deadline - zclock_mono())) > 0;) {
        if (!zpoller_wait(poller, left)) {
            if (zpoller_terminated(poller)) break;
            continue;
        }
        zmsg_t *msg = zmsg_recv(sock);
        if (msg && zmsg_size(msg) == 4) {
            char *empty = zmsg_popstr(msg), *proto = zmsg_popstr(msg), *what = zmsg_popstr(msg);
            if (empty && proto && what && !*empty && strcmp(proto, SAM_MDPC) == 0 &&
                strcmp(what, name) == 0)
                answer = zmsg_popstr(msg);
            zstr_free(&empty);
            zstr_free(&proto);
            zstr_free(&what);
        }
        zmsg_destroy(&msg);
    }
    zpoller_destroy(&poller);
    return answer;
}

/*  Reads one message from link li (flags: 0 or ZMQ_DONTWAIT) and decodes it as a samordna
    reply into *out. Returns 1 for a reply, 0 for anything else that came (an MMI answer,
    garbage: not ours to report), -1 when nothing came. */
static int s_read(sam_client_t *self, size_t li, int flags, sam_result_t *out)
{
    void *h = zsock_resolve(self->links[li].sock);
    zmq_msg_t part[4];
    int n = 0;
    zmq_msg_init(&part[0]);
    if (zmq_msg_recv(&part[0], h, flags) < 0) {
        zmq_msg_close(&part[0]);
        return -1;
    }
    n = 1;
    bool more = zmq_msg_more(&part[0]);
    while (more) { /* "" "MDPC01" service body; anything longer is not a samordna reply */
        zmq_msg_t extra;
        zmq_msg_t *into = n < 4 ? &part[n] : &extra;
        zmq_msg_init(into);
        if (zmq_msg_recv(into, h, 0) < 0) {
            zmq_msg_close(into);
            break;
        }
        more = zmq_msg_more(into);
        if (into == &extra) {
            zmq_msg_close(&extra);
            n = 5;
        } else
            n++;
    }
    Samordna__V1__Reply *rep = NULL;
    if (n == 4 && zmq_msg_size(&part[0]) == 0 && zmq_msg_size(&part[1]) == strlen(SAM_MDPC) &&
        memcmp(zmq_msg_data(&part[1]), SAM_MDPC, strlen(SAM_MDPC)) == 0 &&
        !(zmq_msg_size(&part[2]) >= 4 && memcmp(zmq_msg_data(&part[2]), "mmi.", 4) == 0))
        rep = samordna__v1__reply__unpack(NULL, zmq_msg_size(&part[3]), zmq_msg_data(&part[3]));
    for (int i = 0; i < n && i < 4; i++)
        zmq_msg_close(&part[i]);
    if (!rep) return 0;
    out->id = rep->id;
    out->code = rep->status ? rep->status->code : SAM_INTERNAL;
    snprintf(out->message, sizeof out->message, "%s",
             rep->status && rep->status->message ? rep->status->message : "");
    if (rep->body.len) {
        out->body = malloc(rep->body.len);
        if (out->body) {
            memcpy(out->body, rep->body.data, rep->body.len);
            out->body_len = rep->body.len;
        }
    }
    samordna__v1__reply__free_unpacked(rep, NULL);
    return 1;
}

/*  Several brokers: the next reply to a flight, or one answered here, within timeout_ms.
    A reply no flight waits for (the second answer to a resent request) is dropped. */
static int s_recv_several(sam_client_t *self, int timeout_ms, sam_result_t *out)
{
    int64_t deadline = zclock_mono() + timeout_ms;
    for (;;) {
        int64_t now = zclock_mono();
        s_watch_links(self, now);
        s_tick(self, now);
        sam_result_t *local = zlist_pop(self->local);
        if (local) {
            *out = *local;
            free(local);
            return 0;
        }
        /* what is already there first, link by link, without waiting */
        bool got = false;
        for (size_t n = 0; n < self->nlinks; n++) {
            size_t li = (self->next_link + n) % self->nlinks;
            int rc = s_read(self, li, ZMQ_DONTWAIT, out);
            if (rc < 0) continue;
            got = true;
            s_link_t *l = &self->links[li];
            l->heard_at = now;
            l->ping_at = 0;
            if (!l->up) sam_info("client.broker_back endpoint=%s", sam_logv(l->endpoint));
            l->up = true;
            if (rc == 0) continue;
            s_flight_t *f = zhashx_lookup(self->flights, &out->id);
            if (f) {
                s_flight_remove(self, f);
                return 0;
            }
            sam_result_clear(out); /* answered already, by another broker */
            memset(out, 0, sizeof *out);
        }
        if (got) continue;
        if (now >= deadline) {
            out->code = SAM_TIMEOUT;
            snprintf(out->message, sizeof out->message, "no reply within %d ms", timeout_ms);
            return -1;
        }
        int64_t wait = deadline - now;
        int64_t tick = self->tick_at - now;
        if (tick < wait) wait = tick < 1 ? 1 : tick;
        for (size_t i = 0; i < self->nlinks; i++) /* a link coming up takes waiting flights */
            self->items[i].events = (short)(ZMQ_POLLIN | (self->unsent ? ZMQ_POLLOUT : 0));
        if (zmq_poll(self->items, 2 * (int)self->nlinks, (long)wait) < 0 && zmq_errno() != EINTR) {
            out->code = SAM_TIMEOUT;
            snprintf(out->message, sizeof out->message, "no reply: %s", zmq_strerror(zmq_errno()));
            return -1;
        }
    }
}

int sam_client_recv(sam_client_t *self, int timeout_ms, sam_result_t *out)
{
    memset(out, 0, sizeof *out);
    if (s_several(self)) return s_recv_several(self, timeout_ms, out);
    void *h = zsock_resolve(self->links[0].sock);
    int64_t deadline = zclock_mono() + timeout_ms;
    for (;;) {
        int left = (int)(deadline - zclock_mono());
        if (left < 0) left = 0;
        /* libzmq's blocking receive, bounded by the deadline: it takes a waiting message
           without a system call and sleeps on the socket's mailbox with fewer of them than
           zmq_poll would. */
        zmq_setsockopt(h, ZMQ_RCVTIMEO, &left, sizeof left);
        int rc = s_read(self, 0, 0, out);
        if (rc == 1) return 0;
        if (rc == 0) continue; /* not a samordna reply (MMI, garbage): not ours to report */
        if (zclock_mono() < deadline && zmq_errno() == EINTR) continue;
        out->code = SAM_TIMEOUT;
        snprintf(out->message, sizeof out->message, "no reply within %d ms", timeout_ms);
        return -1;
    }
}

uint32_t sam_client_call(sam_client_t *self, const char *service, const char *method,
                         const ProtobufCMessage *req, const ProtobufCMessageDescriptor *reply_desc,
                         ProtobufCMessage **reply_out, int timeout_ms, bool idempotent,
                         sam_result_t *result)
{
    return sam_client_call_as(self, service, method, req, reply_desc, reply_out, timeout_ms,
                              idempotent, NULL, result);
}

uint32_t sam_client_call_as(sam_client_t *self, const char *service, const char *method,
                            const ProtobufCMessage *req,
                            const ProtobufCMessageDescriptor *reply_desc,
                            ProtobufCMessage **reply_out, int timeout_ms, bool idempotent,
                            const sam_caller_as_t *as, sam_result_t *result)
{
    if (reply_out) *reply_out = NULL;
    uint8_t stack[4096];
    uint8_t *body = stack;
    size_t len = req ? protobuf_c_message_get_packed_size(req) : 0;
    if (len > sizeof stack && !(body = malloc(len))) {
        result->code = SAM_INTERNAL;
        snprintf(result->message, sizeof result->message, "out of memory");
        return result->code;
    }
    if (req) protobuf_c_message_pack(req, body);
    uint64_t id = self->next_id++;
    int attempts = idempotent ? 2 : 1;
    memset(result, 0, sizeof *result);
    result->code = SAM_TIMEOUT;
    for (int a = 0; a < attempts && result->code == SAM_TIMEOUT; a++) {
        int sent;
        if (s_several(self)) {
            sent = s_send_tracked(self, id, service, method, body, len, timeout_ms, idempotent, as);
        } else {
            /* A DEALER blocks on send while it has no connection (a broker that is down, or
               one that refused our handshake): never longer than the call may take. */
            zsock_set_sndtimeo(self->links[0].sock, timeout_ms);
            sent = s_send(self, 0, service, id, method, body, len, timeout_ms, 0, as, self->primary,
                          self->instance);
            zsock_set_sndtimeo(self->links[0].sock, -1);
        }
        if (sent != 0) {
            result->code = SAM_UNAVAILABLE;
            snprintf(result->message, sizeof result->message,
                     "cannot send to the broker within %d ms (is it running, and does it accept "
                     "this certificate?)",
                     timeout_ms);
            break;
        }
        int64_t deadline = zclock_mono() + timeout_ms;
        for (;;) {
            int64_t left = deadline - zclock_mono();
            if (left < 0) left = 0;
            if (sam_client_recv(self, (int)left, result) != 0) break; /* timeout */
            if (result->id == id) break;
            sam_result_clear(result); /* a late reply to an earlier call */
            result->code = SAM_TIMEOUT;
        }
    }
    if (s_several(self)) { /* a reply after this is dropped */
        s_flight_t *f = zhashx_lookup(self->flights, &id);
        if (f) s_flight_remove(self, f);
    }
    if (result->code == SAM_TIMEOUT)
        snprintf(result->message, sizeof result->message,
                 "no reply from '%s' within %d ms (is the broker running?)", service, timeout_ms);
    if (body != stack) free(body);
    if (result->code == SAM_OK && reply_desc && reply_out) {
        *reply_out = protobuf_c_message_unpack(reply_desc, NULL, result->body_len, result->body);
        if (!*reply_out) {
            result->code = SAM_BAD_REQUEST;
            snprintf(result->message, sizeof result->message, "reply does not decode as %s",
                     reply_desc->name);
        }
    }
    return result->code;
}

void *sam_client_handle(sam_client_t *self)
{
    return zsock_resolve(self->links[0].sock);
}

size_t sam_client_pollitems(sam_client_t *self, zmq_pollitem_t *items, size_t cap)
{
    size_t n = s_several(self) ? 2 * self->nlinks : 1;
    for (size_t i = 0; i < n && i < cap; i++)
        items[i] = (zmq_pollitem_t){.socket = self->items[i].socket, .events = ZMQ_POLLIN};
    return n < cap ? n : cap;
}

int sam_client_poll_ms(const sam_client_t *self)
{
    return s_several(self) ? self->heartbeat_ms : -1;
}

void sam_client_set_deadline(sam_client_t *self, int timeout_ms)
{
    self->deadline_ms = timeout_ms > 0 ? timeout_ms : 0;
}
