/*  notify_subs.c — subscriptions: the events that create and delete them, and the queries
    that show them.

    A subscription is created by the event no.samordna.notify.subscription.created through
    the shared write path, so it applies in the same transaction that acknowledges it: the
    next event that matches is queued for it. Its owner is the publishing agency (the event's
    source, which the runtime has checked against the caller). Only the owner, an admin or a
    service may delete it.

    A webhook's signing secret is never in an event (the outbox is readable by followers):
    it is derived from the store's own random key, the subscription id and the seq of its
    created event, and handed to the owner by notify.subscriptions.secret. A webhook signed
    v1a has none: notify signs with its Ed25519 key, whose public half anyone may read
    (notify.webhooks.key). A new webhook is json and v1 unless it asks otherwise; one stored
    before formats and schemes existed keeps protobuf and the legacy signature.
*/
#include "notify.h"
#include "sam_check.h"

#include <inttypes.h>
#include <sodium.h>
#include <string.h>

#define S_TYPE_MAX 256
#define S_SUBJECT_MAX 256
#define S_URL_MAX 2048
#define S_EMAIL_MAX 254
#define S_DESC_MAX 1000

static notify_t *s_ctx(sam_service_t *svc)
{
    return sam_service_ctx(svc);
}

bool notify_caller_admin(const Samordna__V1__Caller *c)
{
    return c->insecure ||
           (c->role && (strcmp(c->role, "admin") == 0 || strcmp(c->role, "service") == 0));
}

int notify_sub_load(notify_t *n, MDB_txn *txn, const char *field, const char *id,
                    const Samordna__V1__Caller *caller, const char *agency,
                    Samordna__V1__Subscription **out, sam_reply_t *reply)
{
    *out = NULL;
    char err[200];
    if (sam_check_id(field, id, true, err, sizeof err))
        return sam_reply_error(reply, SAM_BAD_REQUEST, "%s", err);
    Samordna__V1__Subscription *s = NULL;
    int rc = sam_store_get_msg(txn, n->dbi.subs, id, strlen(id),
                               &samordna__v1__subscription__descriptor, (ProtobufCMessage **)&s);
    if (rc == MDB_NOTFOUND)
        return sam_reply_error(reply, SAM_NOT_FOUND, "%s: unknown subscription '%s'", field, id);
    if (rc) return rc;
    if (caller && !notify_caller_admin(caller) && strcmp(s->agency, agency) != 0) {
        sam_reply_error(reply, SAM_FORBIDDEN,
                        "%s: subscription '%s' belongs to agency '%s', not '%s'", field, id,
                        s->agency, agency);
        protobuf_c_message_free_unpacked(&s->base, NULL);
        return -1;
    }
    *out = s;
    return 0;
}

/* Type filter: empty, "*", an exact type, or a prefix ending in ".*". */
static const char *s_check_type(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || strcmp(t, "*") == 0) return NULL;
    if (n > S_TYPE_MAX) return "longer than 256 characters";
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_';
        if (c == '*' && i == n - 1 && n >= 3 && t[n - 2] == '.') ok = true;
        if (!ok) return "must be an event type, a prefix ending in \".*\", or \"*\"";
    }
    if (t[0] == '.' || strstr(t, "..")) return "has an empty segment";
    return NULL;
}

static bool s_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return false;
    return true;
}

static const char *s_check_url(const char *u)
{
    size_t n = strlen(u);
    if (n == 0) return "required for a webhook";
    if (n > S_URL_MAX) return "longer than 2048 characters";
    if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)
        return "must be an http:// or https:// URL";
    const char *host = strstr(u, "://") + 3;
    if (!*host || *host == '/') return "has no host";
    for (const char *p = u; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) return "has a space or control character";
    return NULL;
}

static const char *s_check_email(const char *e)
{
    size_t n = strlen(e);
    if (n == 0) return "required for an e-mail subscription";
    if (n > S_EMAIL_MAX) return "longer than 254 characters";
    const char *at = strchr(e, '@');
    if (!at || at == e || !at[1] || strchr(at + 1, '@')) return "is not an e-mail address";
    for (const char *p = e; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == '<' || *p == '>' || *p == ',' || *p == 0x7f)
            return "is not an e-mail address";
    return NULL;
}

/* The secret names the subscription's incarnation (id and created seq), so a subscription
   deleted and created again under the same id gets a new secret. */
void notify_sub_secret(notify_t *n, const Samordna__V1__Subscription *s, char out[65])
{
    char msg[128];
    int len = snprintf(msg, sizeof msg, "webhook-secret\n%s\n%llu", s->id,
                       (unsigned long long)s->created_seq);
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, n->master_key, sizeof n->master_key);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)msg, (unsigned long long)len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(out, 65, mac, sizeof mac);
}

/* The v1 key: the legacy secret's derivation under another label, so the two never share
   key material. */
void notify_sub_whsec_key(notify_t *n, const Samordna__V1__Subscription *s, uint8_t out[32])
{
    char msg[128];
    int len = snprintf(msg, sizeof msg, "webhook-whsec\n%s\n%llu", s->id,
                       (unsigned long long)s->created_seq);
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, n->master_key, sizeof n->master_key);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)msg, (unsigned long long)len);
    crypto_auth_hmacsha256_final(&st, out);
}

Samordna__V1__WebhookFormat notify_sub_format(const Samordna__V1__Subscription *s)
{
    return s->format ? s->format : SAMORDNA__V1__WEBHOOK_FORMAT__WEBHOOK_FORMAT_PROTOBUF;
}

Samordna__V1__WebhookSignature notify_sub_scheme(const Samordna__V1__Subscription *s)
{
    return s->signature ? s->signature : SAMORDNA__V1__WEBHOOK_SIGNATURE__WEBHOOK_SIGNATURE_LEGACY;
}

const char *notify_format_name(Samordna__V1__WebhookFormat f)
{
    switch (f) {
    case SAMORDNA__V1__WEBHOOK_FORMAT__WEBHOOK_FORMAT_JSON:
        return "json";
    case SAMORDNA__V1__WEBHOOK_FORMAT__WEBHOOK_FORMAT_PROTOBUF:
        return "protobuf";
    default:
        return "?";
    }
}

const char *notify_scheme_name(Samordna__V1__WebhookSignature sig)
{
    switch (sig) {
    case SAMORDNA__V1__WEBHOOK_SIGNATURE__WEBHOOK_SIGNATURE_V1:
        return "v1";
    case SAMORDNA__V1__WEBHOOK_SIGNATURE__WEBHOOK_SIGNATURE_V1A:
        return "v1a";
    case SAMORDNA__V1__WEBHOOK_SIGNATURE__WEBHOOK_SIGNATURE_LEGACY:
        return "legacy";
    default:
        return "?";
    }
}

const char *notify_public_key(const notify_t *n, char *out, size_t cap)
{
    char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(b64, sizeof b64, n->sign_pk, sizeof n->sign_pk,
                      sodium_base64_VARIANT_ORIGINAL);
    snprintf(out, cap, "whpk_%s", b64);
    return out;
}

/* A new webhook's format and scheme: json and v1 unless asked otherwise. Returns 0, or -1
   with the refusal in reply. */
static int s_webhook_form(Samordna__V1__Subscription *s, sam_reply_t *reply)
{
    if (s->channel != SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_WEBHOOK) {
        if (s->format || s->signature)
            return sam_reply_error(reply, SAM_BAD_REQUEST, "subscription.%s: only for a webhook",
                                   s->format ? "format" : "signature");
        return 0;
    }
    if (!s->format) s->format = SAMORDNA__V1__WEBHOOK_FORMAT__WEBHOOK_FORMAT_JSON;
    if (!s->signature) s->signature = SAMORDNA__V1__WEBHOOK_SIGNATURE__WEBHOOK_SIGNATURE_V1;
    if (!strcmp(notify_format_name(s->format), "?"))
        return sam_reply_error(reply, SAM_BAD_REQUEST,
                               "subscription.format: %d is not a format: json or protobuf",
                               (int)s->format);
    if (!strcmp(notify_scheme_name(s->signature), "?"))
        return sam_reply_error(reply, SAM_BAD_REQUEST,
                               "subscription.signature: %d is not a scheme: v1, v1a or legacy",
                               (int)s->signature);
    return 0;
}

/* ---- events ------------------------------------------------------------------------------ */

/* no.samordna.notify.subscription.created  { subscription } */
int notify_apply_sub_created(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                             sam_reply_t *reply)
{
    notify_t *n = s_ctx(svc);
    const Samordna__V1__SubscriptionCreated *m = (const Samordna__V1__SubscriptionCreated *)ev->msg;
    int rc = -1;
    if (!m->subscription) return sam_reply_error(reply, SAM_BAD_REQUEST, "subscription: missing");
    /* The record stored: the subscription as given, with who made it and when. */
    Samordna__V1__Subscription sub = *m->subscription, *s = &sub;
    const char *why;
    char err[200];
    if (sam_check_id("subscription.id", s->id, true, err, sizeof err) ||
        sam_check_id("subscription.source", s->source, false, err, sizeof err)) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "%s", err);
        goto done;
    }
    if (s->channel != SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_INBOX &&
        s->channel != SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_WEBHOOK &&
        s->channel != SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_EMAIL) {
        sam_reply_error(reply, SAM_BAD_REQUEST,
                        "subscription.channel: must be inbox, webhook or email");
        goto done;
    }
    if ((why = s_check_type(s->type))) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "subscription.type: '%.80s' %s", s->type, why);
        goto done;
    }
    if (strlen(s->subject) > S_SUBJECT_MAX || !s_printable(s->subject)) {
        sam_reply_error(reply, SAM_BAD_REQUEST,
                        "subscription.subject: longer than 256 characters or not printable");
        goto done;
    }
    if (strlen(s->description) > S_DESC_MAX) {
        sam_reply_error(reply, SAM_BAD_REQUEST,
                        "subscription.description: longer than 1000 characters");
        goto done;
    }
    if (s->channel == SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_WEBHOOK) {
        if ((why = s_check_url(s->url))) {
            sam_reply_error(reply, SAM_BAD_REQUEST, "subscription.url: %s", why);
            goto done;
        }
    } else if (*s->url) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "subscription.url: only for a webhook");
        goto done;
    }
    if (s->channel == SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_EMAIL) {
        if ((why = s_check_email(s->email))) {
            sam_reply_error(reply, SAM_BAD_REQUEST, "subscription.email: '%.80s' %s", s->email,
                            why);
            goto done;
        }
    } else if (*s->email) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "subscription.email: only for e-mail");
        goto done;
    }
    if (s_webhook_form(s, reply)) goto done;
    if (strlen(s->type) + strlen(s->source) + strlen(s->subject) + strlen(s->id) > 500) {
        sam_reply_error(reply, SAM_BAD_REQUEST,
                        "subscription.subject: id, type, source and subject together are longer "
                        "than 500 bytes");
        goto done;
    }
    /* since: epoch ms (digits only) or a date by everyone's rule */
    if (s->since && strspn(s->since, "0123456789") != strlen(s->since) &&
        sam_check_date("subscription.since", s->since, false, err, sizeof err)) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "%s", err);
        goto done;
    }
    Samordna__V1__Subscription *held = NULL;
    int grc =
        sam_store_get_msg(txn, n->dbi.subs, s->id, strlen(s->id),
                          &samordna__v1__subscription__descriptor, (ProtobufCMessage **)&held);
    if (grc == 0 || grc == SAM_STORE_CORRUPT) {
        /* subscribing carries a fresh event id: name the one that made it instead */
        sam_reply_error(reply, SAM_CONFLICT,
                        "subscription.id: '%s' exists already (created as seq %" PRIu64 ")", s->id,
                        held ? held->created_seq : 0);
        if (held) samordna__v1__subscription__free_unpacked(held, NULL);
        goto done;
    }
    if (grc != MDB_NOTFOUND) {
        rc = grc;
        goto done;
    }
    s->agency = ev->ce->source;
    s->created_ms = ev->now_ms;
    s->created_seq = ev->seq;
    int src = sam_store_put_msg(txn, n->dbi.subs, s->id, strlen(s->id), &s->base, 0);
    if (!src) src = notify_index_put(txn, &n->dbi, s);
    if (!src) src = notify_starts_put(n, txn, s, ev->now_ms, reply); /* -1: the reply says why */
    if (!src && s->channel == SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_WEBHOOK) {
        /* the handshake scan walks the state table: a webhook starts there, pending */
        notify_state_t st = {.state = SAMORDNA__V1__NOTIFY_SUB_STATE__NOTIFY_SUB_STATE_PENDING,
                             .changed_ms = ev->now_ms};
        snprintf(st.reason, sizeof st.reason, "waiting for the endpoint's handshake");
        src = notify_state_put(txn, &n->dbi, s->id, &st);
        n->next_handshake_scan_ms = 0;
    }
    rc = src;
done:
    return rc;
}

/* no.samordna.notify.subscription.deleted  { id, reason } */
int notify_apply_sub_deleted(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                             sam_reply_t *reply)
{
    notify_t *n = s_ctx(svc);
    const Samordna__V1__SubscriptionDeleted *m = (const Samordna__V1__SubscriptionDeleted *)ev->msg;
    int rc = -1;
    Samordna__V1__Subscription *s = NULL;
    if ((rc = notify_sub_load(n, txn, "id", m->id, ev->caller, ev->ce->source, &s, reply)))
        goto done;
    rc = -1;
    MDB_val k = {strlen(s->id), s->id};
    int drc = mdb_del(txn, n->dbi.subs, &k, NULL);
    if (!drc) {
        drc = mdb_del(txn, n->dbi.state, &k, NULL);
        if (drc == MDB_NOTFOUND) drc = 0;
    }
    if (!drc) drc = notify_index_del(txn, &n->dbi, s);
    if (!drc && (notify_drop_prefix(txn, n->dbi.queue, s->id) < 0 ||
                 notify_drop_prefix(txn, n->dbi.starts, s->id) < 0 ||
                 notify_drop_prefix(txn, n->dbi.inbox, s->id) < 0 ||
                 notify_drop_prefix(txn, n->dbi.dead, s->id) < 0))
        drc = SAM_STORE_CORRUPT;
    rc = drc;
done:
    if (s) protobuf_c_message_free_unpacked(&s->base, NULL);
    return rc;
}

/* ---- queries ----------------------------------------------------------------------------- */

/* What only the owner (or an admin) sees of a subscription: the webhook URL may carry a
   token of the receiver, and an e-mail address is a person's. Cleared in place. */
static void s_hide_private(const Samordna__V1__Caller *c, Samordna__V1__Subscription *s)
{
    if (notify_caller_admin(c) || strcmp(c->agency, s->agency) == 0) return;
    /* an empty field is protobuf-c's shared read-only "": only a real value is cleared */
    if (s->url && *s->url) s->url[0] = 0;
    if (s->email && *s->email) s->email[0] = 0;
}

/* Fills info (which borrows s) with the state and counts. */
static void s_info(notify_t *n, MDB_txn *txn, Samordna__V1__Subscription *s,
                   Samordna__V1__SubscriptionInfo *info, Samordna__V1__SubscriptionState *st,
                   notify_state_t *raw)
{
    notify_state_get(txn, &n->dbi, s, raw);
    samordna__v1__subscription_state__init(st);
    st->state = raw->state;
    st->reason = raw->reason;
    st->handshake_attempts = raw->handshake_attempts;
    st->next_handshake_ms = raw->next_handshake_ms;
    st->changed_ms = raw->changed_ms;
    samordna__v1__subscription_info__init(info);
    info->subscription = s;
    info->state = st;
    info->queued = notify_count_prefix(txn, n->dbi.queue, s->id) +
                   notify_count_prefix(txn, n->dbi.inbox, s->id);
    info->dead = notify_count_prefix(txn, n->dbi.dead, s->id);
}

/* notify.subscriptions.get  SubscriptionGetRequest → SubscriptionInfo */
int notify_q_sub_get(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply)
{
    notify_t *n = s_ctx(svc);
    const Samordna__V1__SubscriptionGetRequest *req =
        (const Samordna__V1__SubscriptionGetRequest *)call->msg;
    int rc = -1;
    Samordna__V1__Subscription *s = NULL;
    if ((rc = notify_sub_load(n, txn, "id", req->id, NULL, NULL, &s, reply))) goto done;
    Samordna__V1__SubscriptionInfo info;
    Samordna__V1__SubscriptionState st;
    notify_state_t raw;
    s_info(n, txn, s, &info, &st, &raw);
    s_hide_private(call->caller, s);
    rc = sam_reply_message(reply, &info.base);
done:
    if (s) protobuf_c_message_free_unpacked(&s->base, NULL);
    return rc;
}

/* notify.subscriptions.list  SubscriptionListRequest → SubscriptionListReply (by id) */
int notify_q_sub_list(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply)
{
    notify_t *n = s_ctx(svc);
    const Samordna__V1__SubscriptionListRequest *req =
        (const Samordna__V1__SubscriptionListRequest *)call->msg;
    size_t page = req->page_size ? req->page_size : 100;
    if (page > 1000) page = 1000;
    Samordna__V1__SubscriptionListReply out = SAMORDNA__V1__SUBSCRIPTION_LIST_REPLY__INIT;
    Samordna__V1__SubscriptionInfo **infos = calloc(page, sizeof *infos);
    Samordna__V1__SubscriptionInfo *info_store = calloc(page, sizeof *info_store);
    Samordna__V1__SubscriptionState *st_store = calloc(page, sizeof *st_store);
    notify_state_t *raw = calloc(page, sizeof *raw);
    Samordna__V1__Subscription **subs = calloc(page, sizeof *subs);
    char next[NOTIFY_ID_MAX + 1] = "";
    int rc = -1;
    if (!infos || !info_store || !st_store || !raw || !subs) {
        sam_reply_error(reply, SAM_INTERNAL, "out of memory");
        goto done;
    }
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, n->dbi.subs, &cur))) goto done;
    MDB_val k, v;
    int crc = sam_store_cursor_after(cur, req->page_token, strlen(req->page_token), &k, &v);
    size_t count = 0;
    bool more = false;
    for (; crc == 0; crc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        Samordna__V1__Subscription *s =
            samordna__v1__subscription__unpack(NULL, v.mv_size, v.mv_data);
        if (!s) continue;
        bool keep = (!*req->agency || strcmp(req->agency, s->agency) == 0) &&
                    (!req->channel || (int)req->channel == (int)s->channel);
        if (!keep) {
            protobuf_c_message_free_unpacked(&s->base, NULL);
            continue;
        }
        if (count == page) {
            more = true;
            protobuf_c_message_free_unpacked(&s->base, NULL);
            break;
        }
        subs[count] = s;
        s_info(n, txn, s, &info_store[count], &st_store[count], &raw[count]);
        s_hide_private(call->caller, s);
        infos[count] = &info_store[count];
        count++;
    }
    mdb_cursor_close(cur);
    if (more && count) snprintf(next, sizeof next, "%s", subs[count - 1]->id);
    out.n_subscriptions = count;
    out.subscriptions = infos;
    out.next_page_token = next;
    rc = sam_reply_message(reply, &out.base);
done:
    if (subs)
        for (size_t i = 0; i < page; i++)
            if (subs[i]) protobuf_c_message_free_unpacked(&subs[i]->base, NULL);
    free(subs);
    free(raw);
    free(st_store);
    free(info_store);
    free(infos);
    return rc;
}

/* notify.subscriptions.secret  SubscriptionSecretRequest → SubscriptionSecretReply */
int notify_q_sub_secret(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                        sam_reply_t *reply)
{
    notify_t *n = s_ctx(svc);
    const Samordna__V1__SubscriptionSecretRequest *req =
        (const Samordna__V1__SubscriptionSecretRequest *)call->msg;
    int rc = -1;
    Samordna__V1__Subscription *s = NULL;
    if ((rc =
             notify_sub_load(n, txn, "id", req->id, call->caller, call->caller->agency, &s, reply)))
        goto done;
    rc = -1;
    if (s->channel != SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_WEBHOOK) {
        sam_reply_error(reply, SAM_UNPROCESSABLE, "id: subscription '%s' is not a webhook", s->id);
        goto done;
    }
    Samordna__V1__SubscriptionSecretReply out = SAMORDNA__V1__SUBSCRIPTION_SECRET_REPLY__INIT;
    Samordna__V1__WebhookSignature scheme = notify_sub_scheme(s);
    out.scheme = (char *)notify_scheme_name(scheme);
    char secret[80] = "", pk[64] = "";
    if (scheme == SAMORDNA__V1__WEBHOOK_SIGNATURE__WEBHOOK_SIGNATURE_LEGACY) {
        notify_sub_secret(n, s, secret);
    } else if (scheme == SAMORDNA__V1__WEBHOOK_SIGNATURE__WEBHOOK_SIGNATURE_V1) {
        uint8_t key[32];
        notify_sub_whsec_key(n, s, key);
        memcpy(secret, "whsec_", 6);
        sodium_bin2base64(secret + 6, sizeof secret - 6, key, sizeof key,
                          sodium_base64_VARIANT_ORIGINAL);
        sodium_memzero(key, sizeof key);
    } else {
        notify_public_key(n, pk, sizeof pk); /* v1a: nothing secret to hand out */
    }
    out.secret = secret;
    out.public_key = pk;
    rc = sam_reply_message(reply, &out.base);
    sodium_memzero(secret, sizeof secret);
done:
    if (s) protobuf_c_message_free_unpacked(&s->base, NULL);
    return rc;
}

/* notify.webhooks.key  (no body) → WebhookKeyReply: the public key of v1a signatures. */
int notify_q_webhook_key(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                         sam_reply_t *reply)
{
    char pk[64];
    Samordna__V1__WebhookKeyReply out = SAMORDNA__V1__WEBHOOK_KEY_REPLY__INIT;
    out.public_key = (char *)notify_public_key(s_ctx(svc), pk, sizeof pk);
    return sam_reply_message(reply, &out.base);
}
