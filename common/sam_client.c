/*  sam_client.c — see sam_client.h.

    One DEALER socket connected to every broker: ZeroMQ spreads requests over the brokers
    and a reply comes back on whichever connection carried its request. Requests carry an id;
    replies are matched by it, so many may be in flight. A reply for an id nobody waits for
    any more (it timed out earlier) is dropped.
*/
#include "sam_client.h"
#include "sam_keys.h"
#include "sam_mdp.h"
#include "sam_status.h"

#include "samordna/v1/envelope.pb-c.h"

#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sam_client_t {
    zsock_t *sock; /* DEALER to every broker */
    uint64_t next_id;
    int deadline_ms; /* what pipelined requests tell the broker they wait (0: its default) */
};

void sam_result_clear(sam_result_t *r)
{
    if (!r) return;
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
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
    self->sock = zsock_new(ZMQ_DEALER);
    if (!self->sock) {
        snprintf(err, errlen, "cannot create socket");
        free(self);
        return NULL;
    }
    zsock_set_linger(self->sock, 0);
    zsock_set_maxmsgsize(self->sock, 256 << 20); /* the broker's largest --max-msg */
    zsock_set_sndhwm(self->sock, 100000);
    zsock_set_rcvhwm(self->sock, 100000);
    if (opts && opts->fail_fast) {
        zsock_set_immediate(self->sock, 1); /* before connecting: it applies to new pipes */
        zsock_set_sndtimeo(self->sock, 0);
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
            sam_client_destroy(&self);
            return NULL;
        }
        zcert_apply(cert, self->sock);
        zsock_set_curve_serverkey(self->sock, server_key);
        zcert_destroy(&cert);
    }
    for (size_t i = 0; i < n; i++) {
        if (zsock_connect(self->sock, "%s", brokers[i]) != 0) {
            snprintf(err, errlen, "cannot connect to '%s'", brokers[i]);
            sam_client_destroy(&self);
            return NULL;
        }
    }
    /* Ids start at a random point so replies meant for an earlier process are not mistaken. */
    self->next_id = ((uint64_t)randof(1 << 30) << 20) + 1;
    return self;
}

void sam_client_destroy(sam_client_t **self_p)
{
    if (!self_p || !*self_p) return;
    zsock_destroy(&(*self_p)->sock);
    free(*self_p);
    *self_p = NULL;
}

static int s_send(sam_client_t *self, const char *service, uint64_t id, const char *method,
                  const uint8_t *body, size_t len, int timeout_ms)
{
    Samordna__V1__Request req = SAMORDNA__V1__REQUEST__INIT;
    req.id = id;
    req.timeout_ms = timeout_ms > 0 ? (uint32_t)timeout_ms : 0; /* the broker's deadline */
    req.method = (char *)method;
    req.body.data = (uint8_t *)body;
    req.body.len = len;
    size_t size = samordna__v1__request__get_packed_size(&req);
    uint8_t stack[2048];
    uint8_t *packed = size <= sizeof stack ? stack : malloc(size);
    if (!packed) return -1;
    samordna__v1__request__pack(&req, packed);
    /* "" "MDPC01" service Request, straight onto the socket. Once the first frame is
       accepted the rest of a multipart message cannot fail. */
    void *h = zsock_resolve(self->sock);
    int rc = zmq_send(h, "", 0, ZMQ_SNDMORE) < 0 ? -1 : 0;
    if (rc == 0) {
        zmq_send(h, SAM_MDPC, strlen(SAM_MDPC), ZMQ_SNDMORE);
        zmq_send(h, service, strlen(service), ZMQ_SNDMORE);
        zmq_send(h, packed, size, 0);
    }
    if (packed != stack) free(packed);
    return rc;
}

uint64_t sam_client_send(sam_client_t *self, const char *service, const char *method,
                         const uint8_t *body, size_t len)
{
    uint64_t id = self->next_id++;
    return s_send(self, service, id, method, body, len, self->deadline_ms) == 0 ? id : 0;
}

char *sam_client_mmi(sam_client_t *self, const char *name, const char *body, int timeout_ms)
{
    if (zsock_send(self->sock, "ssss", "", SAM_MDPC, name, body ? body : "") != 0) return NULL;
    int64_t deadline = zclock_mono() + timeout_ms;
    zpoller_t *poller = zpoller_new(self->sock, NULL);
    char *answer = NULL;
    for (int left; !answer && poller && (left = (int)(deadline - zclock_mono())) > 0;) {
        if (!zpoller_wait(poller, left)) {
            if (zpoller_terminated(poller)) break;
            continue;
        }
        zmsg_t *msg = zmsg_recv(self->sock);
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

int sam_client_recv(sam_client_t *self, int timeout_ms, sam_result_t *out)
{
    memset(out, 0, sizeof *out);
    void *h = zsock_resolve(self->sock);
    int64_t deadline = zclock_mono() + timeout_ms;
    for (;;) {
        int left = (int)(deadline - zclock_mono());
        if (left < 0) left = 0;
        /* libzmq's blocking receive, bounded by the deadline: it takes a waiting message
           without a system call and sleeps on the socket's mailbox with fewer of them than
           zmq_poll would. */
        zmq_setsockopt(h, ZMQ_RCVTIMEO, &left, sizeof left);
        zmq_msg_t part[4];
        int n = 0;
        zmq_msg_init(&part[0]);
        if (zmq_msg_recv(&part[0], h, 0) < 0) {
            zmq_msg_close(&part[0]);
            if (zclock_mono() < deadline && zmq_errno() == EINTR) continue;
            out->code = SAM_TIMEOUT;
            snprintf(out->message, sizeof out->message, "no reply within %d ms", timeout_ms);
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
            memcmp(zmq_msg_data(&part[1]), SAM_MDPC, strlen(SAM_MDPC)) == 0)
            rep = samordna__v1__reply__unpack(NULL, zmq_msg_size(&part[3]), zmq_msg_data(&part[3]));
        for (int i = 0; i < n && i < 4; i++)
            zmq_msg_close(&part[i]);
        if (!rep) continue; /* not a samordna reply (MMI, garbage): not ours to report */
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
        return 0;
    }
}

uint32_t sam_client_call(sam_client_t *self, const char *service, const char *method,
                         const ProtobufCMessage *req, const ProtobufCMessageDescriptor *reply_desc,
                         ProtobufCMessage **reply_out, int timeout_ms, bool idempotent,
                         sam_result_t *result)
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
        /* A DEALER blocks on send while it has no connection (a broker that is down, or
           one that refused our handshake): never longer than the call may take. */
        zsock_set_sndtimeo(self->sock, timeout_ms);
        int sent = s_send(self, service, id, method, body, len, timeout_ms);
        zsock_set_sndtimeo(self->sock, -1);
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
    return zsock_resolve(self->sock);
}

void sam_client_set_deadline(sam_client_t *self, int timeout_ms)
{
    self->deadline_ms = timeout_ms > 0 ? timeout_ms : 0;
}
