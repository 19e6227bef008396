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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sam_client_t {
    zsock_t *sock;   /* DEALER to every broker */
    uint64_t next_id;
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
                  const uint8_t *body, size_t len)
{
    Samordna__V1__Request req = SAMORDNA__V1__REQUEST__INIT;
    req.id = id;
    req.method = (char *)method;
    req.body.data = (uint8_t *)body;
    req.body.len = len;
    size_t size = samordna__v1__request__get_packed_size(&req);
    zmsg_t *msg = zmsg_new();
    zmsg_addmem(msg, "", 0);
    zmsg_addstr(msg, SAM_MDPC);
    zmsg_addstr(msg, service);
    zframe_t *frame = zframe_new(NULL, size);
    samordna__v1__request__pack(&req, zframe_data(frame));
    zmsg_append(msg, &frame);
    int rc = zmsg_send(&msg, self->sock);
    zmsg_destroy(&msg); /* zmsg_send keeps ownership with us on failure */
    return rc;
}

uint64_t sam_client_send(sam_client_t *self, const char *service, const char *method,
                         const uint8_t *body, size_t len)
{
    uint64_t id = self->next_id++;
    return s_send(self, service, id, method, body, len) == 0 ? id : 0;
}

int sam_client_recv(sam_client_t *self, int timeout_ms, sam_result_t *out)
{
    memset(out, 0, sizeof *out);
    for (;;) {
        zsock_set_rcvtimeo(self->sock, timeout_ms);
        zmsg_t *msg = zmsg_recv(self->sock);
        if (!msg) {
            out->code = SAM_TIMEOUT;
            snprintf(out->message, sizeof out->message, "no reply within %d ms", timeout_ms);
            return -1;
        }
        /* "" "MDPC01" service body */
        zframe_t *empty = zmsg_pop(msg);
        char *header = zmsg_popstr(msg);
        char *service = zmsg_popstr(msg);
        zframe_t *body = zmsg_pop(msg);
        Samordna__V1__Reply *rep = NULL;
        if (empty && header && strcmp(header, SAM_MDPC) == 0 && service && body)
            rep = samordna__v1__reply__unpack(NULL, zframe_size(body), zframe_data(body));
        zframe_destroy(&empty);
        zstr_free(&header);
        zstr_free(&service);
        zframe_destroy(&body);
        zmsg_destroy(&msg);
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
        int sent = s_send(self, service, id, method, body, len);
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
