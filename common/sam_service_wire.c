/*  sam_service_wire.c — the worker side of 7/MDP: one DEALER per broker, READY with the
    samordna extensions (credit, identity, batch), the extensions the broker accepted,
    heartbeats both ways, reconnection with backoff, and the frames of requests and replies.

    Requests are read frame by frame into zmq_msg_t parts on the stack (no allocation per
    frame on the hot path); a batch broker sends many requests in one Batch frame and gets its
    replies back the same way, gathered per broker and flushed at the end of each loop turn
    (rt_flush_replies). Nothing from a broker is trusted: a malformed message is logged and
    counted, an undecodable request answered 400, never an assert.
*/
#include "sam_service_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#define S_BATCH_BYTES (32 * 1024) /* a Batch of replies is sent once it holds this much */

/* ---- broker connections ------------------------------------------------------------------ */

void rt_broker_send(rt_broker_t *b, int command, zmsg_t **tail_p)
{
    if (!b->sock) {
        zmsg_destroy(tail_p);
        return;
    }
    zmsg_t *msg = tail_p && *tail_p ? *tail_p : zmsg_new();
    if (tail_p) *tail_p = NULL;
    uint8_t cmd = (uint8_t)command;
    zmsg_pushmem(msg, &cmd, 1);
    zmsg_pushstr(msg, SAM_MDPW);
    zmsg_pushmem(msg, "", 0);
    if (zmsg_send(&msg, b->sock) != 0) zmsg_destroy(&msg);
}

void rt_broker_close(rt_broker_t *b)
{
    zsock_destroy(&b->sock); /* stops its monitor too */
    zsock_destroy(&b->watch);
}

/*  Watches b->sock's connection: libzmq's socket monitor publishes its DISCONNECTED events
    on an inproc PAIR. Without a watch a broker restart is only noticed when our next
    heartbeat is answered DISCONNECT, up to --heartbeat-ms later; with it, at once. */
static void s_watch(rt_broker_t *b)
{
    char ep[96];
    snprintf(ep, sizeof ep, "inproc://sam-broker-watch-%p-%u", (void *)b, b->generation);
    if (zmq_socket_monitor(zsock_resolve(b->sock), ep, ZMQ_EVENT_DISCONNECTED) != 0 ||
        !(b->watch = zsock_new_pair(ep)))
        sam_warn("broker.watch_failed endpoint=%s reason=%s hint=\"a restart of this broker is "
                 "noticed at the next heartbeat\"",
                 sam_logv(b->endpoint), sam_logv(zmq_strerror(zmq_errno())));
}

bool rt_broker_watch(sam_service_t *svc, rt_broker_t *b, int64_t now)
{
    if (!b->watch || !b->sock) return false;
    bool lost = false;
    zmq_msg_t part;
    zmq_msg_init(&part);
    void *h = zsock_resolve(b->watch);
    while (zmq_msg_recv(&part, h, ZMQ_DONTWAIT) >= 0) {
        /* frame 1: uint16 event, uint32 value; frame 2: the endpoint */
        if (zmq_msg_more(&part) && zmq_msg_size(&part) >= 2) {
            uint16_t event;
            memcpy(&event, zmq_msg_data(&part), sizeof event);
            lost |= event == ZMQ_EVENT_DISCONNECTED;
        }
        while (zmq_msg_more(&part) && zmq_msg_recv(&part, h, ZMQ_DONTWAIT) >= 0)
            ;
    }
    zmq_msg_close(&part);
    if (!lost) return false;
    sam_warn("broker.lost endpoint=%s action=register reason=\"the connection broke (the broker "
             "stopped or was killed)\"",
             sam_logv(b->endpoint));
    rt_broker_connect(svc, b, now);
    return true;
}

void rt_broker_connect(sam_service_t *svc, rt_broker_t *b, int64_t now)
{
    if (svc->harness) return; /* driven by a harness: no network */
    rt_broker_close(b);
    b->generation++;
    b->ext_credit = b->ext_identity = b->ext_batch = false;
    sam_batch_reset(&b->out);
    b->sock = zsock_new(ZMQ_DEALER);
    if (b->sock && !svc->insecure) {
        zcert_t *cert = zcert_load(svc->cert);
        if (cert) {
            zcert_apply(cert, b->sock);
            zsock_set_curve_serverkey(b->sock, svc->server_key);
            zcert_destroy(&cert);
        } else {
            char why[300];
            snprintf(why, sizeof why, "cannot read %.250s", svc->cert);
            sam_error("broker.connect_failed endpoint=%s reason=%s", sam_logv(b->endpoint),
                      sam_logv(why));
            rt_broker_close(b);
        }
    }
    if (!b->sock || zsock_connect(b->sock, "%s", b->endpoint) != 0) {
        sam_error("broker.connect_failed endpoint=%s", sam_logv(b->endpoint));
        rt_broker_close(b);
        b->reconnect_at = now + b->backoff_ms;
        return;
    }
    zsock_set_linger(b->sock, 0);
    s_watch(b);
    /* No frame from a broker may make us allocate without bound: a request is at most an
       event (or a query) plus the broker's framing. */
    zsock_set_maxmsgsize(b->sock, (int)(svc->max_event_bytes + (16 << 20)));
    zsock_set_sndhwm(b->sock, 0);
    zsock_set_rcvhwm(b->sock, 0);
    zmsg_t *ready = zmsg_new();
    zmsg_addstr(ready, svc->def->name);
    /* instance and version are for mmi.workers (samctl status): characters the broker takes */
    char inst[64];
    size_t i = 0;
    for (; svc->instance[i] && i + 1 < sizeof inst; i++) {
        char c = svc->instance[i];
        inst[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                          strchr("._-:+", c)
                      ? c
                      : '-';
    }
    inst[i] = 0;
    char part[96];
    rt_replica_ext(svc, part, sizeof part);
    zmsg_addstrf(ready, "%s credit=%d identity batch instance=%s version=%s%s", SAM_MDP_EXT_PREFIX,
                 svc->credit, inst, SAMORDNA_VERSION, part);
    rt_broker_send(b, SAM_MDPW_READY, &ready);
    b->heard_at = now;
    b->connected_at = now;
    b->answered = false;
    b->hb_due = now + svc->heartbeat_ms;
    sam_info("broker.connected endpoint=%s credit=%d", sam_logv(b->endpoint), svc->credit);
}

void rt_brokers_reregister(sam_service_t *svc, int64_t now)
{
    for (size_t i = 0; i < svc->nbrokers; i++) {
        rt_broker_t *b = &svc->brokers[i];
        if (!b->sock) continue; /* READY goes out with the next connection anyway */
        rt_flush_replies(b);
        rt_broker_send(b, SAM_MDPW_DISCONNECT, NULL); /* what it holds for us goes elsewhere */
        /* closed with a moment's linger, so the replies and the DISCONNECT still go out */
        zsock_set_linger(b->sock, 200);
        rt_broker_connect(svc, b, now);
    }
}

/* Whether the space-separated `text` has the token `token` (or, with a '=', one that starts
   with it). */
static bool s_has_token(const char *text, const char *token)
{
    size_t n = strlen(token);
    bool prefix = n && token[n - 1] == '=';
    for (const char *at = text; (at = strstr(at, token)); at += n)
        if ((at == text || at[-1] == ' ') && (prefix || at[n] == ' ' || at[n] == '\0')) return true;
    return false;
}

/* The broker's answering HEARTBEAT may carry the accepted extension set. */
static void s_broker_extensions(rt_broker_t *b, const char *ext)
{
    if (strncmp(ext, SAM_MDP_EXT_PREFIX, strlen(SAM_MDP_EXT_PREFIX)) != 0) return;
    b->ext_credit = s_has_token(ext, "credit=");
    b->ext_identity = s_has_token(ext, "identity");
    b->ext_batch = s_has_token(ext, "batch");
    sam_info("broker.extensions endpoint=%s accepted=%s", sam_logv(b->endpoint), sam_logv(ext));
}

/* ---- replies ------------------------------------------------------------------------------ */

void rt_request_destroy(rt_request_t **r_p)
{
    if (!r_p || !*r_p) return;
    rt_request_t *r = *r_p;
    if (r->req) samordna__v1__request__free_unpacked(r->req, NULL);
    if (r->caller) samordna__v1__caller__free_unpacked(r->caller, NULL);
    if (r->msg) protobuf_c_message_free_unpacked(r->msg, NULL);
    if (r->payload) protobuf_c_message_free_unpacked(r->payload, NULL);
    if (r->job) rt_backup_abandon(r);
    if (r->slow) rt_slow_abandon(r);
    free(r->reply.body);
    free(r);
    *r_p = NULL;
}

/* Sends the replies gathered for a batch broker: "" "MDPW01" 0x03 Batch. */
void rt_flush_replies(rt_broker_t *b)
{
    if (b->out.count && b->sock) {
        void *h = zsock_resolve(b->sock);
        uint8_t cmd = SAM_MDPW_REPLY;
        zmq_send(h, "", 0, ZMQ_SNDMORE);
        zmq_send(h, SAM_MDPW, strlen(SAM_MDPW), ZMQ_SNDMORE);
        zmq_send(h, &cmd, 1, ZMQ_SNDMORE);
        zmq_send(h, b->out.data, b->out.len, 0);
    }
    sam_batch_reset(&b->out);
}

/* REPLY: "" "MDPW01" 0x03 client "" Reply, or one item of a Batch */
void rt_send_reply(sam_service_t *svc, rt_request_t *r)
{
    rt_broker_t *b = &svc->brokers[r->broker];
    svc->last_code = r->reply.code ? r->reply.code : SAM_OK;
    rt_metric_reply(svc, r, svc->last_code);
    if (!b->sock || b->generation != r->generation) return; /* broker gone: it told the client */
    Samordna__V1__Status status = SAMORDNA__V1__STATUS__INIT;
    status.code = r->reply.code ? r->reply.code : SAM_OK;
    status.message = r->reply.message;
    Samordna__V1__Reply rep = SAMORDNA__V1__REPLY__INIT;
    rep.id = r->req ? r->req->id : 0;
    rep.status = &status;
    rep.body.data = r->reply.body;
    rep.body.len = r->reply.body_len;
    /* Straight onto the socket, frame by frame, or into the broker's Batch: no message
       object per reply. */
    uint8_t stack[2048];
    size_t size = samordna__v1__reply__get_packed_size(&rep);
    uint8_t *packed = size <= sizeof stack ? stack : malloc(size);
    if (packed && b->ext_batch) {
        samordna__v1__reply__pack(&rep, packed);
        ProtobufCBinaryData body = {size, packed};
        size_t need = sam_batch_delivery_size(r->client_len, 0, &body, 1);
        if (b->out.len && b->out.len + need > S_BATCH_BYTES) rt_flush_replies(b);
        if (sam_batch_add(&b->out, r->client, r->client_len, NULL, 0, &body, 1) != 0)
            sam_error("reply.lost req=%" PRIu64 " reason=\"out of memory\"", rep.id);
        if (packed != stack) free(packed);
    } else if (packed) {
        samordna__v1__reply__pack(&rep, packed);
        void *h = zsock_resolve(b->sock);
        uint8_t cmd = SAM_MDPW_REPLY;
        zmq_send(h, "", 0, ZMQ_SNDMORE);
        zmq_send(h, SAM_MDPW, strlen(SAM_MDPW), ZMQ_SNDMORE);
        zmq_send(h, &cmd, 1, ZMQ_SNDMORE);
        zmq_send(h, r->client, r->client_len, ZMQ_SNDMORE);
        zmq_send(h, "", 0, ZMQ_SNDMORE);
        zmq_send(h, packed, size, 0);
        if (packed != stack) free(packed);
    }
    if (status.code != SAM_OK && r->ev.ce) /* a refused event: its CloudEvent id as well */
        sam_info("request.refused req=%" PRIu64 " method=%s id=%s code=%u reason=%s", rep.id,
                 sam_logv(r->req ? r->req->method : "?"), sam_logv(r->ev.ce->id), status.code,
                 sam_logv(status.message));
    else if (status.code != SAM_OK)
        sam_info("request.refused req=%" PRIu64 " method=%s code=%u reason=%s", rep.id,
                 sam_logv(r->req ? r->req->method : "?"), status.code, sam_logv(status.message));
}

/*  A request from its parts: the client's routing id, the packed Caller (NULL when the
    broker sends none) and the body, a samordna.v1.Request. Undecodable ones are answered
    here and NULL returned. */
static rt_request_t *s_request_new(sam_service_t *svc, int bi, const uint8_t *client,
                                   size_t client_len, const uint8_t *caller, size_t caller_len,
                                   const uint8_t *body, size_t body_len)
{
    rt_broker_t *b = &svc->brokers[bi];
    rt_request_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->broker = bi;
    r->received_us = zclock_usecs();
    r->generation = b->generation;
    r->client_len = client_len;
    memcpy(r->client, client, client_len);
    r->req = samordna__v1__request__unpack(NULL, body_len, body);
    if (caller) r->caller = samordna__v1__caller__unpack(NULL, caller_len, caller);
    if (!r->req) {
        sam_warn("request.malformed broker=%s reason=\"undecodable samordna.v1.Request\"",
                 sam_logv(b->endpoint));
        svc->n_bad++;
        sam_reply_error(&r->reply, SAM_BAD_REQUEST, "undecodable samordna.v1.Request envelope");
    } else if (caller && !r->caller) {
        sam_reply_error(&r->reply, SAM_BAD_REQUEST, "undecodable caller identity");
    } else {
        return r;
    }
    rt_send_reply(svc, r);
    rt_request_destroy(&r);
    return NULL;
}

/*  Parses one plain REQUEST into a request, or NULL (logged, or answered) when malformed.
    `part` holds the frames after the command: client "" [caller] body. */
static rt_request_t *s_parse_request(sam_service_t *svc, int bi, zmq_msg_t *part, int nparts)
{
    rt_broker_t *b = &svc->brokers[bi];
    int want = b->ext_identity ? 4 : 3;
    if (nparts != want || zmq_msg_size(&part[1]) != 0 || zmq_msg_size(&part[0]) == 0 ||
        zmq_msg_size(&part[0]) > sizeof((rt_request_t *)0)->client) {
        sam_warn("request.malformed broker=%s reason=\"%d frames after the command, %d "
                 "expected\"",
                 sam_logv(b->endpoint), nparts, want);
        svc->n_bad++;
        return NULL;
    }
    zmq_msg_t *caller = b->ext_identity ? &part[2] : NULL;
    zmq_msg_t *body = &part[want - 1];
    return s_request_new(svc, bi, zmq_msg_data(&part[0]), zmq_msg_size(&part[0]),
                         caller ? zmq_msg_data(caller) : NULL, caller ? zmq_msg_size(caller) : 0,
                         zmq_msg_data(body), zmq_msg_size(body));
}

/*  REQUEST from a batch broker: one Batch frame after the command. Its requests go into
    out[0..room); returns how many. Items that do not fit (a broker over our credit) are
    answered 503 at once. */
static size_t s_parse_batch(sam_service_t *svc, int bi, zmq_msg_t *part, int nparts,
                            rt_request_t **out, size_t room)
{
    rt_broker_t *b = &svc->brokers[bi];
    if (nparts != 1) {
        sam_warn("request.malformed broker=%s reason=\"%d frames after the command, one Batch "
                 "expected\"",
                 sam_logv(b->endpoint), nparts);
        svc->n_bad++;
        return 0;
    }
    static const uint8_t none[1];
    sam_batch_reader_t reader;
    sam_batch_reader_init(&reader, zmq_msg_data(&part[0]), zmq_msg_size(&part[0]));
    sam_delivery_t item;
    size_t n = 0, over = 0;
    int rc;
    while ((rc = sam_batch_next(&reader, &item)) == 1) {
        if (item.client_len == 0 || item.client_len > sizeof((rt_request_t *)0)->client) {
            sam_warn("request.malformed broker=%s reason=\"batch item without a client\"",
                     sam_logv(b->endpoint));
            svc->n_bad++;
            continue;
        }
        /* With identity every item has a Caller; an empty one decodes as no role at all. */
        const uint8_t *caller = b->ext_identity ? (item.caller ? item.caller : none) : NULL;
        rt_request_t *r =
            s_request_new(svc, bi, item.client, item.client_len, caller, item.caller_len,
                          item.nbody ? item.body[0].data : none, item.nbody ? item.body[0].len : 0);
        if (!r) continue;
        if (item.nbody != 1)
            sam_reply_error(&r->reply, SAM_BAD_REQUEST, "%zu body frames, one expected",
                            item.nbody);
        else if (n == room)
            sam_reply_error(&r->reply, SAM_UNAVAILABLE,
                            "the broker sent more requests than this worker's credit");
        else {
            out[n++] = r;
            continue;
        }
        over += item.nbody == 1;
        svc->n_bad++;
        rt_send_reply(svc, r);
        rt_request_destroy(&r);
    }
    if (rc < 0) {
        sam_warn("request.malformed broker=%s reason=\"REQUEST batch that is not a "
                 "samordna.v1.Batch\"",
                 sam_logv(b->endpoint));
        svc->n_bad++;
    }
    if (over)
        sam_warn("request.refused broker=%s count=%zu reason=\"over the credit\"",
                 sam_logv(b->endpoint), over);
    return n;
}

/*  Everything a broker sends: part[0..n) = "" "MDPW01" command … (too_many: the message had
    more frames than were kept). Requests go into out[0..room); returns how many (none for a
    heartbeat, a disconnect or a malformed message, all handled here). The caller closes
    the parts. */
size_t rt_on_parts(sam_service_t *svc, int bi, zmq_msg_t *part, int n, bool too_many, int64_t now,
                   rt_request_t **out, size_t room)
{
    rt_broker_t *b = &svc->brokers[bi];
    if (too_many || n < 3 || zmq_msg_size(&part[0]) != 0 ||
        zmq_msg_size(&part[1]) != strlen(SAM_MDPW) ||
        memcmp(zmq_msg_data(&part[1]), SAM_MDPW, strlen(SAM_MDPW)) != 0 ||
        zmq_msg_size(&part[2]) != 1) {
        sam_warn("broker.malformed endpoint=%s frames=%d", sam_logv(b->endpoint), n);
        svc->n_bad++;
        return 0;
    }
    uint8_t command = *(uint8_t *)zmq_msg_data(&part[2]);
    switch (command) {
    case SAM_MDPW_REQUEST:
        if (b->ext_batch) return s_parse_batch(svc, bi, part + 3, n - 3, out, room);
        if (room == 0) return 0; /* cannot happen: the loop keeps room for one */
        return (out[0] = s_parse_request(svc, bi, part + 3, n - 3)) ? 1 : 0;
    case SAM_MDPW_HEARTBEAT:
        if (n > 3) {
            char ext[256];
            size_t len = zmq_msg_size(&part[3]);
            if (len >= sizeof ext) len = sizeof ext - 1;
            memcpy(ext, zmq_msg_data(&part[3]), len);
            ext[len] = '\0';
            s_broker_extensions(b, ext);
        }
        return 0;
    case SAM_MDPW_DISCONNECT: /* the parts stay valid below: they own their bytes */
        if (now - b->connected_at < 1000) {
            /* Sent away right after READY: the broker refuses us (our certificate is
               not a service's, or was revoked). Ask again, but less and less often. */
            sam_warn("broker.refused endpoint=%s retry_ms=%d hint=\"is this service's "
                     "certificate trusted with role service?\"",
                     sam_logv(b->endpoint), b->backoff_ms);
            rt_broker_close(b);
            b->generation++;
            b->reconnect_at = now + b->backoff_ms;
            b->backoff_ms = b->backoff_ms * 2 > 5000 ? 5000 : b->backoff_ms * 2;
        } else {
            sam_warn("broker.disconnect endpoint=%s action=register", sam_logv(b->endpoint));
            rt_broker_connect(svc, b, now);
        }
        return 0;
    default:
        sam_warn("broker.unknown_command endpoint=%s command=%d", sam_logv(b->endpoint), command);
        svc->n_bad++;
        return 0;
    }
}

/*  Reads one message from broker bi into zmq_msg_t parts on the stack (no allocation per
    frame on the hot path) and handles it; its requests go into out[0..room) and their
    number is returned. `flags` is ZMQ_DONTWAIT, or 0 to wait up to the socket's receive
    timeout (then *now_p is brought up to date). *got says whether anything came. */
size_t rt_receive(sam_service_t *svc, int bi, int64_t *now_p, int flags, bool *got,
                  rt_request_t **out, size_t room)
{
    rt_broker_t *b = &svc->brokers[bi];
    void *h = zsock_resolve(b->sock);
    zmq_msg_t part[RT_MAX_PARTS];
    int n = 0;
    bool too_many = false;
    zmq_msg_init(&part[0]);
    int rc = zmq_msg_recv(&part[0], h, flags);
    if (!(flags & ZMQ_DONTWAIT)) *now_p = zclock_mono(); /* it may have waited */
    int64_t now = *now_p;
    if (rc < 0) {
        zmq_msg_close(&part[0]);
        *got = false;
        return 0;
    }
    *got = true;
    n = 1;
    bool more = zmq_msg_more(&part[0]);
    while (more) {
        zmq_msg_t extra;
        zmq_msg_t *into = n < RT_MAX_PARTS ? &part[n] : &extra;
        zmq_msg_init(into);
        if (zmq_msg_recv(into, h, 0) < 0) {
            zmq_msg_close(into);
            break;
        }
        more = zmq_msg_more(into);
        if (into == &extra) { /* read to the end of the message, keep nothing more */
            too_many = true;
            zmq_msg_close(&extra);
        } else
            n++;
    }
    b->heard_at = now;
    b->answered = true;
    if (!svc->sd_ready) { /* the store is open and a broker answers: ready (sd_notify) */
        svc->sd_ready = true;
        sd_notify(0, "READY=1");
    }
    size_t got_n = rt_on_parts(svc, bi, part, n, too_many, now, out, room);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&part[i]);
    return got_n;
}

/*  /readyz's "broker" check: at least one broker answered since its connection was made.
    Told to the registry only when the count changes. */
static void s_ready_brokers(sam_service_t *svc)
{
    size_t up = 0;
    for (size_t i = 0; i < svc->nbrokers; i++)
        up += svc->brokers[i].sock && svc->brokers[i].answered;
    if (up == svc->brokers_up) return;
    svc->brokers_up = up;
    sam_metric_set(svc->m_brokers, NULL, (double)up);
    sam_metrics_ready(svc->metrics, "broker", up > 0, "no broker answers");
}

/* Heartbeats out, silent brokers reconnected with backoff. */
void rt_heartbeat(sam_service_t *svc, int64_t now)
{
    s_ready_brokers(svc);
    for (size_t i = 0; i < svc->nbrokers; i++) {
        rt_broker_t *b = &svc->brokers[i];
        if (!b->sock) {
            if (now >= b->reconnect_at) rt_broker_connect(svc, b, now);
            continue;
        }
        if (rt_broker_watch(svc, b, now)) continue;
        if (now - b->heard_at > (int64_t)svc->heartbeat_ms * svc->liveness) {
            sam_warn("broker.silent endpoint=%s after_ms=%" PRId64 " retry_ms=%d",
                     sam_logv(b->endpoint), now - b->heard_at, b->backoff_ms);
            rt_broker_close(b);
            b->generation++;
            b->reconnect_at = now + b->backoff_ms;
            b->backoff_ms = b->backoff_ms * 2 > 5000 ? 5000 : b->backoff_ms * 2;
            continue;
        }
        if (now - b->heard_at < svc->heartbeat_ms && now - b->connected_at > 1000)
            b->backoff_ms = 100;
        if (now >= b->hb_due) {
            rt_broker_send(b, SAM_MDPW_HEARTBEAT, NULL);
            b->hb_due = now + svc->heartbeat_ms;
        }
    }
}
