/*  notify_deliver.c — webhooks and e-mail through libcurl's multi interface.

    Every tick: curl_multi_perform moves the transfers in flight without blocking; finished
    ones are recorded in one write transaction (log row, queue row removed or rescheduled,
    dead letter, subscription state); then, when something may be due, a scan of the queue's
    heads — one per subscription, found by jumping from one subscription's key range to the
    next — starts new transfers up to --max-in-flight. A subscription has at most one
    transfer in flight, so its deliveries arrive in queue order.

    Webhook request (CloudEvents HTTP binding, structured mode):
        POST <url>
        Content-Type: application/cloudevents+json; charset=utf-8
        webhook-id: <subscription>_<32 hex of SHA-256(source NUL id)>
        webhook-timestamp: <unix seconds>
        webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>
                        or v1a,<base64 Ed25519 signature of the same, notify's key>
        X-Samordna-Delivery: <subscription>/<qseq>
        <the event as CloudEvents JSON: data in the proto3 JSON mapping, or data_base64>
    That is Standard Webhooks 1.0: the receiver verifies with its language's library, v1 with
    the subscription's whsec_ secret (notify.subscriptions.secret), v1a with notify's whpk_
    public key (notify.webhooks.key), and drops duplicates by webhook-id — the same for every
    attempt at one event, a replayed dead letter's too: delivery is at least once.
    A subscription stored before formats and schemes existed is delivered as it was: data as
    data_base64, and instead of the webhook-* headers
        X-Samordna-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

    Before the first delivery the endpoint must answer a handshake: an event of type
    no.samordna.notify.webhook.handshake whose data is {"challenge": "<hex>"}, signed the
    same way; a 2xx answer whose body holds the challenge activates the subscription.

    Outcomes: 2xx delivered; 410 disables the subscription; 429 waits Retry-After (or the
    next step of the schedule) without counting as a failure; anything else counts an
    attempt and waits the next step of --retry-schedule; past the last step the delivery is
    a dead letter.
*/
#include "notify.h"
#include "sam_lease.h"
#include "sam_catalog.h"
#include "sam_pbjson.h"

#include <jansson.h>
#include <sodium.h>
#include <string.h>
#include <time.h>

#define S_RESP_MAX 4096

typedef enum { S_DELIVERY, S_HANDSHAKE } s_kind_t;

struct notify_flight_t {
    CURL *easy;
    s_kind_t kind;
    int channel;
    char sub[NOTIFY_ID_MAX + 1];
    uint64_t qseq;
    char event_id[128];
    char event_type[128];
    char msg_id[NOTIFY_ID_MAX + 80]; /* webhook-id */
    char challenge[65];
    char *body; /* request body or mail message */
    size_t body_len, body_off;
    struct curl_slist *headers;
    struct curl_slist *rcpt;
    char resp[S_RESP_MAX + 1]; /* start of the answer's body */
    size_t resp_len;
    int64_t start_us;
};

static void s_flight_free(notify_flight_t **fp)
{
    notify_flight_t *f = *fp;
    if (!f) return;
    free(f->body);
    curl_slist_free_all(f->headers);
    curl_slist_free_all(f->rcpt);
    free(f);
    *fp = NULL;
}

static size_t s_on_write(char *data, size_t size, size_t nmemb, void *arg)
{
    notify_flight_t *f = arg;
    size_t len = size * nmemb;
    size_t room = S_RESP_MAX - f->resp_len;
    size_t take = len < room ? len : room;
    memcpy(f->resp + f->resp_len, data, take);
    f->resp_len += take;
    f->resp[f->resp_len] = 0;
    return len;
}

static size_t s_on_read(char *buf, size_t size, size_t nmemb, void *arg)
{
    notify_flight_t *f = arg;
    size_t room = size * nmemb, left = f->body_len - f->body_off;
    size_t take = left < room ? left : room;
    memcpy(buf, f->body + f->body_off, take);
    f->body_off += take;
    return take;
}

/* ---- the event as CloudEvents JSON -------------------------------------------------------- */

static json_t *s_attr_json(const Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue *v)
{
    switch (v->attr_case) {
    case IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_BOOLEAN:
        return json_boolean(v->ce_boolean);
    case IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_INTEGER:
        return json_integer(v->ce_integer);
    case IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_STRING:
        return json_string(v->ce_string);
    case IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_URI:
        return json_string(v->ce_uri);
    case IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_URI_REF:
        return json_string(v->ce_uri_ref);
    case IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_BYTES: {
        size_t cap = sodium_base64_ENCODED_LEN(v->ce_bytes.len, sodium_base64_VARIANT_ORIGINAL);
        char *b = malloc(cap);
        if (!b) return NULL;
        sodium_bin2base64(b, cap, v->ce_bytes.data, v->ce_bytes.len,
                          sodium_base64_VARIANT_ORIGINAL);
        json_t *j = json_string(b);
        free(b);
        return j;
    }
    case IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_TIMESTAMP: {
        if (!v->ce_timestamp) return NULL;
        time_t t = (time_t)v->ce_timestamp->seconds;
        struct tm tm;
        gmtime_r(&t, &tm);
        char buf[64];
        snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 v->ce_timestamp->nanos);
        return json_string(buf);
    }
    default:
        return NULL;
    }
}

/* The payload of ce as the proto3 JSON of its type's message, or NULL (the reason in why). */
static json_t *s_data_json(const Io__Cloudevents__V1__CloudEvent *ce, const char **why)
{
    const sam_catalog_event_t *t = sam_catalog_event(ce->type);
    size_t len = 0;
    const uint8_t *data = sam_event_data(ce, &len);
    *why = !t ? "not an event type samordna knows" : !data ? "no payload" : NULL;
    if (*why) return NULL;
    ProtobufCMessage *m = protobuf_c_message_unpack(t->payload, NULL, len, data);
    json_t *j = m ? sam_pbjson_encode(m, 0) : NULL;
    protobuf_c_message_free_unpacked(m, NULL);
    if (!j) *why = m ? "the payload has no JSON form" : "the payload does not decode as its type";
    return j;
}

static json_t *s_base64(const uint8_t *data, size_t len)
{
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *b = malloc(cap);
    if (!b) return NULL;
    sodium_bin2base64(b, cap, data ? data : (const uint8_t *)"", len,
                      sodium_base64_VARIANT_ORIGINAL);
    json_t *j = json_string(b);
    free(b);
    return j;
}

char *notify_event_json(const Io__Cloudevents__V1__CloudEvent *ce, bool json_data,
                        const char **why_out)
{
    if (why_out) *why_out = NULL;
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "specversion",
                        json_string(*ce->spec_version ? ce->spec_version : "1.0"));
    json_object_set_new(o, "id", json_string(ce->id));
    json_object_set_new(o, "source", json_string(ce->source));
    json_object_set_new(o, "type", json_string(ce->type));
    for (size_t i = 0; i < ce->n_attributes; i++) {
        const char *name = ce->attributes[i]->key;
        if (!name || !ce->attributes[i]->value) continue;
        /* context attribute names are [a-z0-9]; anything else is not forwarded */
        bool ok = *name && strlen(name) <= 20;
        for (const char *p = name; ok && *p; p++)
            ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9');
        if (!ok || strcmp(name, "data") == 0 || strcmp(name, "data_base64") == 0) continue;
        json_t *v = s_attr_json(ce->attributes[i]->value);
        if (v) json_object_set_new(o, name, v);
    }
    switch (ce->data_case) {
    case IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_BINARY_DATA:
    case IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_PROTO_DATA: {
        const char *why = NULL;
        json_t *data = json_data ? s_data_json(ce, &why) : NULL;
        if (data) {
            json_object_set_new(o, "datacontenttype", json_string("application/json"));
            json_object_set_new(o, "data", data);
            break;
        }
        if (why_out) *why_out = why;
        size_t len = 0;
        const uint8_t *bytes = sam_event_data(ce, &len);
        json_object_set_new(o, "data_base64", s_base64(bytes, len));
        if (!json_object_get(o, "datacontenttype"))
            json_object_set_new(o, "datacontenttype", json_string("application/protobuf"));
        break;
    }
    case IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_TEXT_DATA: {
        json_t *dct = json_object_get(o, "datacontenttype");
        const char *ct = json_is_string(dct) ? json_string_value(dct) : "";
        json_t *parsed = NULL;
        if (strstr(ct, "json")) parsed = json_loads(ce->text_data, 0, NULL);
        json_object_set_new(o, "data", parsed ? parsed : json_string(ce->text_data));
        break;
    }
    default:
        break;
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* ---- starting transfers ------------------------------------------------------------------- */

/* The legacy header "X-Samordna-Signature: t=<unix>,v1=<hex>" over "<t>.<body>". */
static void s_sign_legacy(notify_t *n, const Samordna__V1__Subscription *s, const char *body,
                          size_t len, const char *t, char *out, size_t cap)
{
    char secret[65];
    notify_sub_secret(n, s, secret);
    crypto_auth_hmacsha256_state st;
    uint8_t mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_init(&st, (const uint8_t *)secret, 64);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)t, strlen(t));
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    char hex[2 * sizeof mac + 1];
    sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
    snprintf(out, cap, "X-Samordna-Signature: t=%s,v1=%s", t, hex);
    sodium_memzero(secret, sizeof secret);
}

/* "webhook-signature: v1,<base64>" or "v1a,<base64>" over "<id>.<t>.<body>" (Standard
   Webhooks 1.0). Returns 0, or -1 when out of memory. */
static int s_sign_standard(notify_t *n, const Samordna__V1__Subscription *s, const char *id,
                           const char *t, const char *body, size_t len, char *out, size_t cap)
{
    size_t il = strlen(id), tl = strlen(t), ml = il + tl + 2 + len;
    uint8_t *msg = malloc(ml);
    if (!msg) return -1;
    memcpy(msg, id, il);
    msg[il] = '.';
    memcpy(msg + il + 1, t, tl);
    msg[il + 1 + tl] = '.';
    memcpy(msg + il + tl + 2, body, len);
    uint8_t sig[crypto_sign_BYTES];
    size_t sl;
    const char *version;
    if (notify_sub_scheme(s) == SAMORDNA__V1__WEBHOOK_SIGNATURE__WEBHOOK_SIGNATURE_V1A) {
        crypto_sign_detached(sig, NULL, msg, ml, n->sign_sk);
        sl = crypto_sign_BYTES;
        version = "v1a";
    } else {
        uint8_t key[32];
        notify_sub_whsec_key(n, s, key);
        crypto_auth_hmacsha256_state st;
        crypto_auth_hmacsha256_init(&st, key, sizeof key);
        crypto_auth_hmacsha256_update(&st, msg, ml);
        crypto_auth_hmacsha256_final(&st, sig);
        sodium_memzero(key, sizeof key);
        sl = crypto_auth_hmacsha256_BYTES;
        version = "v1";
    }
    free(msg);
    char b64[sodium_base64_ENCODED_LEN(crypto_sign_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(b64, sizeof b64, sig, sl, sodium_base64_VARIANT_ORIGINAL);
    snprintf(out, cap, "webhook-signature: %s,%s", version, b64);
    return 0;
}

static int s_start(notify_t *n, notify_flight_t *f, const char *url)
{
    CURL *e = curl_easy_init();
    if (!e) return -1;
    f->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, f);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, n->http_timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, n->http_timeout_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
    f->start_us = zclock_usecs();
    if (curl_multi_add_handle(n->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        f->easy = NULL;
        return -1;
    }
    zhashx_insert(n->flights, f->sub, f);
    return 0;
}

static int s_start_webhook(notify_t *n, const Samordna__V1__Subscription *s, notify_flight_t *f)
{
    char t[24], line[200];
    snprintf(t, sizeof t, "%lld", (long long)time(NULL));
    f->headers =
        curl_slist_append(f->headers, "Content-Type: application/cloudevents+json; charset=utf-8");
    if (notify_sub_scheme(s) == SAMORDNA__V1__WEBHOOK_SIGNATURE__WEBHOOK_SIGNATURE_LEGACY) {
        s_sign_legacy(n, s, f->body, f->body_len, t, line, sizeof line);
        f->headers = curl_slist_append(f->headers, line);
    } else {
        if (s_sign_standard(n, s, f->msg_id, t, f->body, f->body_len, line, sizeof line)) return -1;
        char id[sizeof f->msg_id + 16], ts[48];
        snprintf(id, sizeof id, "webhook-id: %s", f->msg_id);
        snprintf(ts, sizeof ts, "webhook-timestamp: %s", t);
        f->headers = curl_slist_append(f->headers, id);
        f->headers = curl_slist_append(f->headers, ts);
        f->headers = curl_slist_append(f->headers, line);
    }
    char dl[NOTIFY_ID_MAX + 48];
    snprintf(dl, sizeof dl, "X-Samordna-Delivery: %s/%llu", s->id, (unsigned long long)f->qseq);
    f->headers = curl_slist_append(f->headers, dl);
    f->headers = curl_slist_append(f->headers, "Expect:");
    if (!f->headers) return -1;
    int rc = s_start(n, f, s->url);
    if (rc) return rc;
    curl_easy_setopt(f->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(f->easy, CURLOPT_HTTPHEADER, f->headers);
    curl_easy_setopt(f->easy, CURLOPT_POSTFIELDS, f->body);
    curl_easy_setopt(f->easy, CURLOPT_POSTFIELDSIZE, (long)f->body_len);
    return 0;
}

/* A header value with CR, LF and other controls replaced by spaces, RFC 2047-encoded when it
   is not ASCII. */
static void s_mail_header(const char *in, char *out, size_t cap)
{
    char clean[512];
    size_t j = 0;
    bool ascii = true;
    for (size_t i = 0; in[i] && j + 1 < sizeof clean; i++) {
        unsigned char c = (unsigned char)in[i];
        clean[j++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
        if (c >= 0x80) ascii = false;
    }
    clean[j] = 0;
    if (ascii) {
        snprintf(out, cap, "%s", clean);
        return;
    }
    char b64[sodium_base64_ENCODED_LEN(512, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(b64, sizeof b64, (const uint8_t *)clean, j, sodium_base64_VARIANT_ORIGINAL);
    snprintf(out, cap, "=?UTF-8?B?%s?=", b64);
}

/* The mail text of an event: the composed text of a briefing or reminder, else its JSON;
   and for a briefing its HTML page too (*html, malloc'd, else NULL). */
static char *s_mail_text(const Io__Cloudevents__V1__CloudEvent *ce, const char *json, char **html)
{
    ProtobufCMessage *m = NULL; /* the briefing or reminder whose text is the mail's */
    const char *text = json;
    *html = NULL;
    if (ce->data_case == IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_BINARY_DATA) {
        const ProtobufCBinaryData *d = &ce->binary_data;
        if (strcmp(ce->type, "no.samordna.notify.briefing.issued") == 0) {
            Samordna__V1__Briefing *b = samordna__v1__briefing__unpack(NULL, d->len, d->data);
            if (b) {
                m = &b->base;
                text = b->text;
                if (*b->html) *html = strdup(b->html);
            }
        } else if (strcmp(ce->type, "no.samordna.notify.reminder.due") == 0) {
            Samordna__V1__Reminder *r = samordna__v1__reminder__unpack(NULL, d->len, d->data);
            if (r) {
                m = &r->base;
                text = r->text;
            }
        }
    }
    char *t = strdup(text);
    if (m) protobuf_c_message_free_unpacked(m, NULL);
    return t;
}

/* Appends text with bare LF made CRLF, as SMTP wants; returns the new length. */
static int s_crlf(char *msg, int len, size_t cap, const char *text)
{
    for (const char *p = text; *p && (size_t)len + 4 < cap; p++) {
        if (*p == '\n' && (p == text || p[-1] != '\r')) msg[len++] = '\r';
        msg[len++] = *p;
    }
    msg[len++] = '\r';
    msg[len++] = '\n';
    return len;
}

static int s_start_email(notify_t *n, const Samordna__V1__Subscription *s, notify_flight_t *f,
                         const Io__Cloudevents__V1__CloudEvent *ce)
{
    const char *subject = sam_event_attr(ce, "subject");
    char subj[700], raw[600];
    snprintf(raw, sizeof raw, "[samordna] %s%s%s", ce->type, subject ? " " : "",
             subject ? subject : "");
    s_mail_header(raw, subj, sizeof subj);
    char *html = NULL;
    char *text = s_mail_text(ce, f->body, &html);
    if (!text) {
        free(html);
        return -1;
    }
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    char eid[200];
    s_mail_header(ce->id, eid, sizeof eid);
    /* room for every LF to become CRLF, and the headers */
    size_t cap = 2 * (strlen(text) + (html ? strlen(html) : 0)) + 4096;
    char *msg = malloc(cap);
    if (!msg) {
        free(text);
        free(html);
        return -1;
    }
    /* a briefing: its text and its HTML page as alternatives (RFC 2046), the text first */
    char boundary[64];
    snprintf(boundary, sizeof boundary, "samordna-%llu-%s", (unsigned long long)f->qseq,
             "alternative");
    char ctype[160];
    if (html)
        snprintf(ctype, sizeof ctype, "multipart/alternative; boundary=\"%s\"", boundary);
    else
        snprintf(ctype, sizeof ctype, "text/plain; charset=utf-8");
    int len = snprintf(msg, cap,
                       "Date: %s\r\nFrom: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
                       "Message-ID: <%s.%llu@samordna.invalid>\r\nX-Samordna-Event-Id: %s\r\n"
                       "X-Samordna-Delivery: %s/%llu\r\nMIME-Version: 1.0\r\n"
                       "Content-Type: %s\r\n"
                       "%s\r\n",
                       date, n->mail_from, s->email, subj, s->id, (unsigned long long)f->qseq, eid,
                       s->id, (unsigned long long)f->qseq, ctype,
                       html ? "" : "Content-Transfer-Encoding: 8bit\r\n");
    if (html) {
        len += snprintf(msg + len, cap - (size_t)len,
                        "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        "Content-Transfer-Encoding: 8bit\r\n\r\n",
                        boundary);
        len = s_crlf(msg, len, cap, text);
        len += snprintf(msg + len, cap - (size_t)len,
                        "--%s\r\nContent-Type: text/html; charset=utf-8\r\n"
                        "Content-Transfer-Encoding: 8bit\r\n\r\n",
                        boundary);
        len = s_crlf(msg, len, cap, html);
        len += snprintf(msg + len, cap - (size_t)len, "--%s--\r\n", boundary);
    } else
        len = s_crlf(msg, len, cap, text);
    free(text);
    free(html);
    free(f->body);
    f->body = msg;
    f->body_len = (size_t)len;
    char rcpt[300];
    snprintf(rcpt, sizeof rcpt, "<%s>", s->email);
    f->rcpt = curl_slist_append(NULL, rcpt);
    if (!f->rcpt) return -1;
    int rc = s_start(n, f, n->smtp_url);
    if (rc) return rc;
    char from[300];
    snprintf(from, sizeof from, "<%s>", n->mail_from);
    curl_easy_setopt(f->easy, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(f->easy, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(f->easy, CURLOPT_MAIL_RCPT, f->rcpt);
    curl_easy_setopt(f->easy, CURLOPT_READFUNCTION, s_on_read);
    curl_easy_setopt(f->easy, CURLOPT_READDATA, f);
    curl_easy_setopt(f->easy, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(f->easy, CURLOPT_INFILESIZE, (long)f->body_len);
    return 0;
}

/* Starts the delivery of the queue head d to s. */
static void s_start_delivery(notify_t *n, const Samordna__V1__Subscription *s,
                             const Samordna__V1__Delivery *d)
{
    notify_flight_t *f = calloc(1, sizeof *f);
    if (!f) return;
    f->kind = S_DELIVERY;
    f->channel = s->channel;
    snprintf(f->sub, sizeof f->sub, "%s", s->id);
    f->qseq = d->qseq;
    snprintf(f->event_id, sizeof f->event_id, "%s", d->event->id);
    snprintf(f->event_type, sizeof f->event_type, "%s", d->event->type);
    /* webhook-id: one per (subscription, event), whatever the attempt */
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state hs;
    crypto_hash_sha256_init(&hs);
    crypto_hash_sha256_update(&hs, (const uint8_t *)d->event->source, strlen(d->event->source) + 1);
    crypto_hash_sha256_update(&hs, (const uint8_t *)d->event->id, strlen(d->event->id));
    crypto_hash_sha256_final(&hs, h);
    char hex[33];
    sodium_bin2hex(hex, sizeof hex, h, 16);
    snprintf(f->msg_id, sizeof f->msg_id, "%s_%s", s->id, hex);
    bool webhook = s->channel == SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_WEBHOOK;
    const char *why = NULL;
    f->body = notify_event_json(
        d->event,
        webhook && notify_sub_format(s) == SAMORDNA__V1__WEBHOOK_FORMAT__WEBHOOK_FORMAT_JSON, &why);
    if (why && n->no_json && !zhashx_lookup(n->no_json, d->event->type)) {
        zhashx_insert(n->no_json, d->event->type, (void *)1);
        sam_warn("deliver.json_unavailable type=%s reason=%s delivered=data_base64 "
                 "(logged once per type)",
                 sam_logv(d->event->type), sam_logv(why));
    }
    f->body_len = f->body ? strlen(f->body) : 0;
    int rc = f->body ? 0 : -1;
    if (!rc && s->channel == SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_WEBHOOK)
        rc = s_start_webhook(n, s, f);
    else if (!rc)
        rc = s_start_email(n, s, f, d->event);
    if (rc) {
        sam_error("deliver.start_failed subscription=%s qseq=%llu", sam_logv(s->id),
                  (unsigned long long)d->qseq);
        if (f->easy) {
            zhashx_delete(n->flights, f->sub);
            curl_multi_remove_handle(n->multi, f->easy);
            curl_easy_cleanup(f->easy);
        }
        s_flight_free(&f);
    }
}

static void s_start_handshake(notify_t *n, const Samordna__V1__Subscription *s)
{
    notify_flight_t *f = calloc(1, sizeof *f);
    if (!f) return;
    f->kind = S_HANDSHAKE;
    f->channel = s->channel;
    snprintf(f->sub, sizeof f->sub, "%s", s->id);
    uint8_t rnd[16];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(f->challenge, sizeof f->challenge, rnd, sizeof rnd);
    snprintf(f->event_id, sizeof f->event_id, "handshake-%s", f->challenge);
    snprintf(f->msg_id, sizeof f->msg_id, "%s_%s", s->id, f->event_id);
    snprintf(f->event_type, sizeof f->event_type, "no.samordna.notify.webhook.handshake");
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s}}", "specversion", "1.0", "id",
                          f->event_id, "source", "notify", "type", f->event_type, "subject", s->id,
                          "datacontenttype", "application/json", "data", "challenge", f->challenge);
    f->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    f->body_len = f->body ? strlen(f->body) : 0;
    if (!f->body || s_start_webhook(n, s, f)) {
        if (f->easy) {
            zhashx_delete(n->flights, f->sub);
            curl_multi_remove_handle(n->multi, f->easy);
            curl_easy_cleanup(f->easy);
        }
        s_flight_free(&f);
    }
}

/* ---- outcomes ----------------------------------------------------------------------------- */

static int64_t s_backoff(notify_t *n, uint32_t attempts)
{
    size_t i = attempts ? attempts - 1 : 0;
    if (i >= n->n_schedule) i = n->n_schedule - 1;
    return n->schedule_ms[i];
}

static void s_log(notify_t *n, MDB_txn *w, const notify_flight_t *f, long status, int64_t now,
                  int64_t latency_us, const char *outcome, const char *error)
{
    sam_metric_add(n->m_attempts, (const char *const[]){f->sub, outcome}, 1);
    Samordna__V1__Attempt a = SAMORDNA__V1__ATTEMPT__INIT;
    a.subscription = (char *)f->sub;
    a.qseq = f->qseq;
    a.event_id = (char *)f->event_id;
    a.event_type = (char *)f->event_type;
    a.at_ms = now;
    a.status = (uint32_t)status;
    a.latency_us = latency_us;
    a.outcome = (char *)outcome;
    a.error = (char *)(error ? error : "");
    notify_log_append(w, &n->dbi, &a);
}

/* Records a finished handshake. */
static int s_handshake_done(notify_t *n, MDB_txn *w, notify_flight_t *f,
                            const Samordna__V1__Subscription *s, long status, const char *err,
                            int64_t now, int64_t lat)
{
    notify_state_t st;
    notify_state_get(w, &n->dbi, s, &st);
    if (st.state != SAMORDNA__V1__NOTIFY_SUB_STATE__NOTIFY_SUB_STATE_PENDING) return 0;
    bool ok = status >= 200 && status < 300 && strstr(f->resp, f->challenge);
    st.changed_ms = now;
    if (ok) {
        st.state = SAMORDNA__V1__NOTIFY_SUB_STATE__NOTIFY_SUB_STATE_ACTIVE;
        st.reason[0] = 0;
        st.next_handshake_ms = 0;
        sam_info("webhook.validated subscription=%s status=%ld", sam_logv(s->id), status);
    } else if (status == 410) {
        st.state = SAMORDNA__V1__NOTIFY_SUB_STATE__NOTIFY_SUB_STATE_DISABLED;
        snprintf(st.reason, sizeof st.reason, "the endpoint answered the handshake 410 Gone");
        sam_warn("webhook.gone subscription=%s", sam_logv(s->id));
    } else {
        st.handshake_attempts++;
        st.next_handshake_ms = now + s_backoff(n, st.handshake_attempts);
        if (err && *err)
            snprintf(st.reason, sizeof st.reason, "handshake failed: %s", err);
        else if (status >= 200 && status < 300)
            snprintf(st.reason, sizeof st.reason,
                     "handshake failed: the answer did not echo the challenge");
        else
            snprintf(st.reason, sizeof st.reason, "handshake failed: HTTP %ld", status);
        sam_info("webhook.handshake_failed subscription=%s status=%ld attempts=%u", sam_logv(s->id),
                 status, st.handshake_attempts);
    }
    s_log(n, w, f, status, now, lat, ok ? "handshake" : "handshake-failed", ok ? NULL : st.reason);
    return notify_state_put(w, &n->dbi, s->id, &st);
}

/* Records a finished delivery. */
static int s_delivery_done(notify_t *n, MDB_txn *w, notify_flight_t *f,
                           const Samordna__V1__Subscription *s, long status, bool transfer_ok,
                           const char *err, long retry_after_s, int64_t now, int64_t lat)
{
    uint8_t key[NOTIFY_QKEY_MAX];
    size_t kl = notify_qkey(key, s->id, f->qseq);
    Samordna__V1__Delivery *d = NULL;
    int rc = sam_store_get_msg(w, n->dbi.queue, key, kl, &samordna__v1__delivery__descriptor,
                               (ProtobufCMessage **)&d);
    if (rc) return rc == MDB_NOTFOUND ? 0 : rc; /* gone meanwhile (deleted subscription) */
    MDB_val k = {kl, key};
    bool email = f->channel == SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_EMAIL;
    bool ok = email ? transfer_ok : transfer_ok && status >= 200 && status < 300;
    char why[300] = "";
    if (ok) {
        s_log(n, w, f, status, now, lat, "delivered", NULL);
        rc = mdb_del(w, n->dbi.queue, &k, NULL);
    } else if (!email && status == 410) {
        notify_state_t st;
        notify_state_get(w, &n->dbi, s, &st);
        st.state = SAMORDNA__V1__NOTIFY_SUB_STATE__NOTIFY_SUB_STATE_DISABLED;
        st.changed_ms = now;
        snprintf(st.reason, sizeof st.reason, "the endpoint answered 410 Gone");
        s_log(n, w, f, status, now, lat, "gone", st.reason);
        rc = notify_state_put(w, &n->dbi, s->id, &st);
        sam_warn("webhook.gone subscription=%s qseq=%llu", sam_logv(s->id),
                 (unsigned long long)f->qseq);
    } else if (!email && status == 429) {
        int64_t wait = retry_after_s > 0 ? retry_after_s * 1000 : s_backoff(n, d->attempts + 1);
        if (wait > 86400000) wait = 86400000;
        d->next_attempt_ms = now + wait;
        snprintf(why, sizeof why, "HTTP 429, retry after %lld ms", (long long)wait);
        d->last_error = why;
        s_log(n, w, f, status, now, lat, "throttled", why);
        rc = sam_store_put_msg(w, n->dbi.queue, key, kl, &d->base, 0);
    } else {
        d->attempts++;
        if (err && *err)
            snprintf(why, sizeof why, "%s", err);
        else
            snprintf(why, sizeof why, "%s %ld", email ? "SMTP" : "HTTP", status);
        d->last_error = why;
        if (d->attempts > n->n_schedule) {
            d->dead_ms = now;
            s_log(n, w, f, status, now, lat, "dead", why);
            rc = sam_store_put_msg(w, n->dbi.dead, key, kl, &d->base, 0);
            if (!rc) rc = mdb_del(w, n->dbi.queue, &k, NULL);
            sam_warn("deliver.dead subscription=%s qseq=%llu attempts=%u error=%s", sam_logv(s->id),
                     (unsigned long long)f->qseq, d->attempts, sam_logv(why));
        } else {
            d->next_attempt_ms = now + s_backoff(n, d->attempts);
            s_log(n, w, f, status, now, lat, "retry", why);
            rc = sam_store_put_msg(w, n->dbi.queue, key, kl, &d->base, 0);
        }
    }
    d->last_error = NULL;
    protobuf_c_message_free_unpacked(&d->base, NULL);
    return rc;
}

/* Takes every finished transfer and records them all in one transaction. */
static void s_collect(notify_t *n)
{
    int left;
    CURLMsg *msg;
    MDB_txn *w = NULL;
    int64_t now = notify_now_ms();
    while ((msg = curl_multi_info_read(n->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) continue;
        CURL *e = msg->easy_handle;
        CURLcode res = msg->data.result;
        notify_flight_t *f = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&f);
        long status = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        curl_off_t ra = -1;
        curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &ra);
        curl_multi_remove_handle(n->multi, e);
        curl_easy_cleanup(e);
        if (!f) continue;
        zhashx_delete(n->flights, f->sub);
        int64_t lat = zclock_usecs() - f->start_us;
        const char *err = res == CURLE_OK ? NULL : curl_easy_strerror(res);
        if (!w && sam_store_begin(sam_service_store(n->svc), NULL, true, &w)) {
            w = NULL;
            sam_error("deliver.store subscription=%s", sam_logv(f->sub));
            s_flight_free(&f);
            continue;
        }
        if (!notify_sub_check(n, w, f->sub)) {
            /* the shard moved to another instance, which sends this delivery again */
            sam_warn("deliver.not_holder subscription=%s qseq=%llu status=%ld", sam_logv(f->sub),
                     (unsigned long long)f->qseq, status);
            s_flight_free(&f);
            continue;
        }
        Samordna__V1__Subscription *s = NULL;
        if (sam_store_get_msg(w, n->dbi.subs, f->sub, strlen(f->sub),
                              &samordna__v1__subscription__descriptor,
                              (ProtobufCMessage **)&s) == 0) {
            int rc = f->kind == S_HANDSHAKE ? s_handshake_done(n, w, f, s, status, err, now, lat)
                                            : s_delivery_done(n, w, f, s, status, res == CURLE_OK,
                                                              err, (long)ra, now, lat);
            if (rc)
                sam_error("deliver.record subscription=%s error=%s", sam_logv(f->sub),
                          sam_logv(sam_store_strerror(rc)));
            if (f->kind == S_HANDSHAKE) n->next_handshake_scan_ms = 0; /* its retry is due */
            protobuf_c_message_free_unpacked(&s->base, NULL);
        }
        s_flight_free(&f);
    }
    if (w) {
        int rc = notify_commit_relaxed(n, w);
        if (rc) sam_error("deliver.commit error=%s", sam_logv(sam_store_strerror(rc)));
        n->next_deliver_scan_ms = 0;
    }
}

/* ---- scans -------------------------------------------------------------------------------- */

/* A scan: a read transaction and its cursor on one table. */
typedef struct {
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v; /* the record the cursor is on */
    int rc;       /* how the cursor got there: 0, MDB_NOTFOUND at the end, or an error */
} s_scan_t;

/* Opens a scan of dbi on its first record. False when no transaction or cursor could be
   opened (nothing is open then). */
static bool s_scan_begin(notify_t *n, MDB_dbi dbi, s_scan_t *sc)
{
    if (sam_store_begin(sam_service_store(n->svc), NULL, false, &sc->txn)) return false;
    if (mdb_cursor_open(sc->txn, dbi, &sc->cur)) {
        mdb_txn_abort(sc->txn);
        return false;
    }
    sc->rc = mdb_cursor_get(sc->cur, &sc->k, &sc->v, MDB_FIRST);
    return true;
}

static void s_scan_end(s_scan_t *sc)
{
    mdb_cursor_close(sc->cur);
    mdb_txn_abort(sc->txn);
}

/* Starts the transfers that are due: the head of each push queue. */
static void s_scan_queue(notify_t *n, int64_t now)
{
    s_scan_t sc;
    if (!s_scan_begin(n, n->dbi.queue, &sc)) return;
    /* alone, this instance queues what it delivers and knows when to scan; beside others,
       whose followers queue for its shards too, it looks more often */
    int64_t next = now + (sam_lease_live(sam_service_lease(n->svc)) > 1 ? 250 : 1000);
    while (sc.rc == 0 && (long)zhashx_size(n->flights) < n->max_in_flight) {
        char id[NOTIFY_ID_MAX + 1];
        uint64_t qseq;
        if (!notify_qkey_split(&sc.k, id, &qseq)) {
            sc.rc = mdb_cursor_get(sc.cur, &sc.k, &sc.v, MDB_NEXT);
            continue;
        }
        if (!zhashx_lookup(n->flights, id) && notify_sub_mine(n, id)) {
            Samordna__V1__Delivery *d =
                samordna__v1__delivery__unpack(NULL, sc.v.mv_size, sc.v.mv_data);
            Samordna__V1__Subscription *s = NULL;
            if (d && d->event && d->next_attempt_ms <= now &&
                sam_store_get_msg(sc.txn, n->dbi.subs, id, strlen(id),
                                  &samordna__v1__subscription__descriptor,
                                  (ProtobufCMessage **)&s) == 0) {
                notify_state_t st;
                notify_state_get(sc.txn, &n->dbi, s, &st);
                bool email = s->channel == SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_EMAIL;
                if (st.state == SAMORDNA__V1__NOTIFY_SUB_STATE__NOTIFY_SUB_STATE_ACTIVE &&
                    (!email || n->smtp_url))
                    s_start_delivery(n, s, d);
            } else if (d && d->next_attempt_ms > now && d->next_attempt_ms < next) {
                next = d->next_attempt_ms;
            }
            if (s) protobuf_c_message_free_unpacked(&s->base, NULL);
            if (d) protobuf_c_message_free_unpacked(&d->base, NULL);
        }
        sc.rc =
            notify_qkey_skip(sc.cur, id, &sc.k, &sc.v); /* on to the next subscription's range */
    }
    s_scan_end(&sc);
    n->next_deliver_scan_ms = next;
}

/* Starts the handshakes that are due. */
static void s_scan_handshakes(notify_t *n, int64_t now)
{
    s_scan_t sc;
    if (!s_scan_begin(n, n->dbi.state, &sc)) return;
    /* beside other instances, a subscription applied by another one may be this one's to
       validate: look every second */
    int64_t next = now + (sam_lease_live(sam_service_lease(n->svc)) > 1 ? 1000 : 60000);
    for (; sc.rc == 0; sc.rc = mdb_cursor_get(sc.cur, &sc.k, &sc.v, MDB_NEXT)) {
        Samordna__V1__SubscriptionState *st =
            samordna__v1__subscription_state__unpack(NULL, sc.v.mv_size, sc.v.mv_data);
        if (!st) continue;
        if (st->state == SAMORDNA__V1__NOTIFY_SUB_STATE__NOTIFY_SUB_STATE_PENDING) {
            char id[NOTIFY_ID_MAX + 1];
            size_t il = sc.k.mv_size < NOTIFY_ID_MAX ? sc.k.mv_size : NOTIFY_ID_MAX;
            memcpy(id, sc.k.mv_data, il);
            id[il] = 0;
            if (st->next_handshake_ms > now) {
                if (st->next_handshake_ms < next) next = st->next_handshake_ms;
            } else if (!notify_sub_mine(n, id)) {
                /* another instance's shard */
            } else if (!zhashx_lookup(n->flights, id) &&
                       (long)zhashx_size(n->flights) < n->max_in_flight) {
                Samordna__V1__Subscription *s = NULL;
                if (sam_store_get_msg(sc.txn, n->dbi.subs, id, il,
                                      &samordna__v1__subscription__descriptor,
                                      (ProtobufCMessage **)&s) == 0) {
                    s_start_handshake(n, s);
                    protobuf_c_message_free_unpacked(&s->base, NULL);
                }
            } else {
                next = now + 100;
            }
        }
        protobuf_c_message_free_unpacked(&st->base, NULL);
    }
    s_scan_end(&sc);
    n->next_handshake_scan_ms = next;
}

int notify_commit_relaxed(notify_t *n, MDB_txn *txn)
{
    MDB_env *env = sam_store_env(sam_service_store(n->svc));
    unsigned flags = 0;
    mdb_env_get_flags(env, &flags);
    if (flags & MDB_NOSYNC) return mdb_txn_commit(txn); /* --nosync: nothing to relax */
    mdb_env_set_flags(env, MDB_NOSYNC, 1);
    int rc = mdb_txn_commit(txn);
    mdb_env_set_flags(env, MDB_NOSYNC, 0);
    return rc;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

int notify_deliver_start(notify_t *n)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return -1;
    n->multi = curl_multi_init();
    n->flights = zhashx_new();
    n->no_json = zhashx_new();
    if (!n->multi || !n->flights || !n->no_json) return -1;
    curl_multi_setopt(n->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)n->max_in_flight);
    return 0;
}

/*  After a lease renewal: transfers under shards no longer held are abandoned (their
    outcome could not be recorded), and a change in the shards held brings the next scans
    forward, so that work taken over starts at once. */
static void s_leases_follow(notify_t *n)
{
    size_t held = sam_lease_held(sam_service_lease(n->svc));
    if (held != n->shards_seen) {
        n->shards_seen = held;
        n->next_deliver_scan_ms = 0;
        n->next_handshake_scan_ms = 0;
    }
    if (!zhashx_size(n->flights)) return;
    bool primary = sam_service_is_primary(n->svc);
    zlistx_t *keys = zhashx_keys(n->flights);
    for (char *k = keys ? zlistx_first(keys) : NULL; k; k = zlistx_next(keys))
        if (!notify_sub_held(n, k)) {
            sam_warn("deliver.abandoned subscription=%s reason=%s", sam_logv(k),
                     sam_logv(primary ? "its shard moved to another instance"
                                      : "this instance is no longer the primary"));
            notify_deliver_forget(n, k);
        }
    zlistx_destroy(&keys);
}

void notify_deliver_tick(notify_t *n)
{
    /* A few rounds, each waiting at most 1 ms for the receivers: a loopback answer is taken
       in this tick rather than the next, and the service loop is never held for long. */
    s_leases_follow(n);
    if (!sam_service_is_primary(n->svc)) return; /* a standby delivers nothing (above: abandoned) */
    int64_t until = zclock_mono() + 3;
    do {
        int running = 0, fds = 0;
        curl_multi_perform(n->multi, &running);
        s_collect(n);
        int64_t now = notify_now_ms();
        if (now >= n->next_handshake_scan_ms) s_scan_handshakes(n, now);
        if (now >= n->next_deliver_scan_ms) s_scan_queue(n, now);
        if (!zhashx_size(n->flights)) break;
        curl_multi_perform(n->multi, &running);
        curl_multi_wait(n->multi, NULL, 0, 1, &fds);
    } while (zclock_mono() < until);
}

void notify_deliver_forget(notify_t *n, const char *sub_id)
{
    notify_flight_t *f = zhashx_lookup(n->flights, sub_id);
    if (!f) return;
    zhashx_delete(n->flights, sub_id);
    curl_multi_remove_handle(n->multi, f->easy);
    curl_easy_cleanup(f->easy);
    s_flight_free(&f);
}

void notify_deliver_stop(notify_t *n)
{
    if (n->flights) {
        /* transfers in flight are simply dropped: their queue rows are still there and are
           delivered again after a restart (at least once) */
        zlistx_t *keys = zhashx_keys(n->flights);
        for (char *k = zlistx_first(keys); k; k = zlistx_next(keys))
            notify_deliver_forget(n, k);
        zlistx_destroy(&keys);
        zhashx_destroy(&n->flights);
    }
    zhashx_destroy(&n->no_json);
    if (n->multi) curl_multi_cleanup(n->multi);
    n->multi = NULL;
    curl_global_cleanup();
}
