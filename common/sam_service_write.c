/*  sam_service_write.c — the write path (ARCHITECTURE.md, "Writes are events").

    An events.publish is checked as it arrives (rt_builtin_publish: the envelope's
    attributes, the event type's row, role and source, then the payload as the row says) and
    queued for the batch. Once the batch is read, rt_write_batch runs the rows' prepare hooks
    (where a service may ask another one: nothing slow holds the writer), then applies every
    queued publish in ONE write transaction — per event: the duplicate check, the row's
    apply, the outbox record and the (source, id) record — commits once, and only then
    replies to each.

    The duplicate check tells a retry from a reuse. The (source, id) record keeps a digest of
    the event's content (type, subject, data: s_content_digest); a repeat with the same
    digest is a retry, answered with the original sequence number and `duplicate`, and a
    repeat with another is a publisher reusing an id for a different event: refused 409
    naming the original and what differs, since answering it as stored would drop it
    silently. A record from before the digest (none kept) is taken as a retry.

    A write pass (s_write_pass) has one of three outcomes, s_pass_t below. The first pass
    applies every event straight into the batch transaction: a child transaction per event
    costs LMDB a dirty-page list each, and almost every event is accepted. When one is
    refused, the pass is undone whole and the batch runs again with a child transaction per
    event, so the refusal leaves nothing behind and the rest commit.
*/
#include "sam_service_int.h"

#include "sam_check.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*  The payload bytes a service reads from an event: binary_data, or the value of proto_data
    (the row, not the type_url, says what they are); NULL when there are none. */
static const uint8_t *s_event_data(const Io__Cloudevents__V1__CloudEvent *ce, size_t *len)
{
    *len = 0;
    if (ce->data_case == IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_BINARY_DATA) {
        *len = ce->binary_data.len;
        return ce->binary_data.data;
    }
    if (ce->data_case == IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_PROTO_DATA && ce->proto_data) {
        *len = ce->proto_data->value.len;
        return ce->proto_data->value.data;
    }
    return NULL;
}

/*  Checks an events.publish before the transaction: the envelope's attributes, the type's
    row, role and source, then the payload as the row says (size, type, text rule). Its
    PublishRequest is decoded already (the method's row). */
static void s_publish_check(sam_service_t *svc, rt_request_t *r, int64_t wall_ms)
{
    sam_reply_t *rep = &r->reply;
    r->done = true;
    const Samordna__V1__PublishRequest *pub = (const Samordna__V1__PublishRequest *)r->msg;
    if (!pub->event) {
        sam_reply_error(rep, SAM_BAD_REQUEST,
                        "undecodable samordna.v1.PublishRequest (no CloudEvent in field 1)");
        return;
    }
    const Io__Cloudevents__V1__CloudEvent *ce = pub->event;
    r->ev.ce = ce; /* from here on a refusal is logged with the event's id */
    const char *subject = sam_event_attr(ce, "subject"), *why;
    if ((why = sam_check_line_why(ce->id)))
        sam_reply_error(rep, SAM_BAD_REQUEST, "event.id: %s", why);
    else if ((why = sam_check_line_why(ce->source)))
        sam_reply_error(rep, SAM_BAD_REQUEST, "event.source: %s", why);
    else if ((why = sam_check_line_why(ce->type)))
        sam_reply_error(rep, SAM_BAD_REQUEST, "event.type: %s", why);
    else if (subject && (why = sam_check_line_why(subject)))
        sam_reply_error(rep, SAM_BAD_REQUEST, "event.subject: %s", why);
    else if (!ce->id[0] || strlen(ce->id) > 256)
        sam_reply_error(rep, SAM_BAD_REQUEST, "event.id: required, at most 256 characters");
    else if (!ce->source[0] || strlen(ce->source) > 256)
        sam_reply_error(rep, SAM_BAD_REQUEST, "event.source: required, at most 256 characters");
    else if (strcmp(ce->spec_version, "1.0") != 0)
        sam_reply_error(rep, SAM_BAD_REQUEST, "event.spec_version: must be \"1.0\", not \"%s\"",
                        ce->spec_version);
    else if (!(r->erow = rt_find(svc->events, svc->n_events, ce->type)))
        sam_reply_error(rep, SAM_NOT_IMPLEMENTED, "event.type: '%s' is not a %s event type",
                        ce->type, svc->def->name);
    else {
        const Samordna__V1__Caller *c = rt_caller(svc, r);
        if (!rt_role_ok(svc, c, r->erow->roles))
            sam_reply_error(rep, SAM_FORBIDDEN, "role '%s' may not publish %s",
                            c->role[0] ? c->role : "(none)", ce->type);
        else if ((!c->insecure || !svc->insecure) && sam_role_bit(c->role) == SAM_ROLE_PUBLISHER &&
                 strcmp(c->agency, ce->source) != 0)
            sam_reply_error(rep, SAM_FORBIDDEN,
                            "event.source: agency '%s' may publish only as itself, not as '%s'",
                            c->agency, ce->source);
        else
            r->done = false;
    }
    if (r->done) return;
    r->ev.caller = rt_caller(svc, r);
    r->ev.now_ms = wall_ms;
    size_t len = 0;
    const uint8_t *data = s_event_data(ce, &len);
    /* The payload, as the event type's row says: size, message type, text rule. A refusal
       here waits in r->late for the duplicate check (s_apply_one): a true retry of a stored
       event is answered with its original sequence number, and a reuse of its id is refused
       409, before the payload is judged. */
    const sam_row_t *row = r->erow;
    size_t limit = row->limit ? row->limit : svc->max_event_bytes;
    if (!row->request) { /* not a message: the handler gets the bytes */
        r->ev.data = data;
        r->ev.data_len = len;
    }
    if (len > limit) {
        sam_reply_error(&r->late, SAM_TOO_LARGE, "data: %zu bytes, over the limit of %zu for %s",
                        len, limit, row->name);
    } else if (row->request) {
        int d = data ? rt_decode(row->request, data, len, "data", &r->payload, &r->late) : -2;
        if (d == -2)
            sam_reply_error(&r->late, SAM_BAD_REQUEST, "event %s: data is %s, expected a packed %s",
                            ce->type, data ? "undecodable" : "missing", row->request->name);
        r->ev.msg = r->payload;
    }
}

/* Dedup key: source \0 id. */
static size_t s_dedup_key(const Io__Cloudevents__V1__CloudEvent *ce, uint8_t *key, size_t cap)
{
    size_t s = strlen(ce->source), i = strlen(ce->id);
    if (s + 1 + i > cap) return 0;
    memcpy(key, ce->source, s);
    key[s] = 0;
    memcpy(key + s + 1, ce->id, i);
    return s + 1 + i;
}

/*  One part of the content digest: a tag, the length as 8 big-endian bytes, the bytes; so
    no two different contents feed the hash the same stream. */
static void s_digest_part(crypto_hash_sha256_state *st, char tag, const void *p, size_t len)
{
    uint8_t head[9];
    head[0] = (uint8_t)tag;
    sam_be64_put(head + 1, len);
    crypto_hash_sha256_update(st, head, sizeof head);
    if (len) crypto_hash_sha256_update(st, p, len);
}

/*  The digest kept with the dedup record: SHA-256 over what the event says — its type,
    subject and data — and nothing of how it travelled (time, datacontenttype, other
    attributes), so a retry with a fresh `time` is still a retry. The data counts as the
    bytes the service reads (s_event_data) or, for a text_data event, its text. (SHA-256 in
    libsodium needs no sodium_init: it has no CPU-dependent variants to pick.) */
static void s_content_digest(const Io__Cloudevents__V1__CloudEvent *ce,
                             uint8_t out[crypto_hash_sha256_BYTES])
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    s_digest_part(&st, 'T', ce->type, strlen(ce->type));
    const char *subject = sam_event_attr(ce, "subject");
    if (subject) s_digest_part(&st, 'S', subject, strlen(subject));
    size_t len = 0;
    const uint8_t *data = s_event_data(ce, &len);
    if (data) s_digest_part(&st, 'D', data, len);
    if (ce->data_case == IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_TEXT_DATA && ce->text_data)
        s_digest_part(&st, 'X', ce->text_data, strlen(ce->text_data));
    crypto_hash_sha256_final(&st, out);
}

static bool s_same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/*  Refuses a reuse of a stored (source, id) for other content: 409 naming the original
    sequence number and what differs, found by comparing with the original in the outbox
    (kept for ever: it is the audit trail). Ids and sources are shown escaped. */
static int s_refuse_reuse(sam_service_t *svc, MDB_txn *txn, rt_request_t *r, uint64_t seq)
{
    const Io__Cloudevents__V1__CloudEvent *ce = r->ev.ce;
    uint8_t seqkey[8];
    sam_be64_put(seqkey, seq);
    Samordna__V1__StoredEvent *orig = NULL;
    int rc = sam_store_get_msg(txn, svc->outbox, seqkey, 8, &samordna__v1__stored_event__descriptor,
                               (ProtobufCMessage **)&orig);
    if (rc != 0 && rc != MDB_NOTFOUND && rc != SAM_STORE_CORRUPT) return rc;
    char what[64] = "";
    size_t n = 0;
    const Io__Cloudevents__V1__CloudEvent *o = orig ? orig->event : NULL;
    if (o) {
        size_t la = 0, lb = 0;
        const uint8_t *da = s_event_data(ce, &la), *db = s_event_data(o, &lb);
        bool ta = ce->data_case == IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_TEXT_DATA;
        bool tb = o->data_case == IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_TEXT_DATA;
        bool data_same = !da == !db && la == lb && (!la || memcmp(da, db, la) == 0) && ta == tb &&
                         (!ta || s_same_text(ce->text_data, o->text_data));
        const char *parts[3];
        if (!s_same_text(ce->type, o->type)) parts[n++] = "type";
        if (!s_same_text(sam_event_attr(ce, "subject"), sam_event_attr(o, "subject")))
            parts[n++] = "subject";
        if (!data_same) parts[n++] = "data";
        for (size_t i = 0; i < n; i++)
            snprintf(what + strlen(what), sizeof what - strlen(what), "%s%s",
                     i == 0       ? ""
                     : i + 1 == n ? " and "
                                  : ", ",
                     parts[i]);
    }
    if (!n) snprintf(what, sizeof what, "content"); /* the original is not at hand */
    char id[200], source[200];
    sam_reply_error(&r->reply, SAM_CONFLICT,
                    "event id \"%s\" of source \"%s\" is taken: it was stored as seq %" PRIu64
                    " and this event's %s differ%s from it (a retry repeats the event's type, "
                    "subject and data unchanged; a new event needs a new id)",
                    sam_check_escape(ce->id, 160, id, sizeof id),
                    sam_check_escape(ce->source, 160, source, sizeof source), seq, what,
                    n > 1 ? "" : "s");
    if (orig) samordna__v1__stored_event__free_unpacked(orig, NULL);
    return 0;
}

//* What one event's turn in a write pass came to (s_apply_one). */
typedef enum {
    S_EVENT_DONE,    /* applied, or a retry (answered with its original sequence number) */
    S_EVENT_REFUSED, /* refused, reply set: nested, nothing of it remains; else the pass is void */
    S_EVENT_FAILED,  /* a store error that dooms the whole batch */
} s_event_outcome_t;

/* What a write pass came to (s_write_pass). */
typedef enum {
    /* committed (and synced unless --nosync): every event not decided before the pass is
       applied, a duplicate or (in a nested pass) refused with nothing of it left */
    S_PASS_COMMITTED,
    /* a pass without nesting met a refusal: everything undone and the refusals forgotten;
       the batch must run again nested, where each refusal is found again */
    S_PASS_RETRY_NESTED,
    /* a store error (begin, put, a child's or the batch's commit): nothing committed; the
       caller answers every undecided event 500 with the error */
    S_PASS_FAILED,
    /* this instance stopped being the primary before the commit: nothing committed; every
       undecided event is answered 503, to be sent again (to the primary) */
    S_PASS_FENCED,
} s_pass_t;

/*  Applies one checked event inside the batch transaction `txn`, directly or (nested) in a
    child transaction of its own; *store_rc gets the LMDB or SAM_STORE_* code of an
    S_EVENT_FAILED. */
static s_event_outcome_t s_apply_one(sam_service_t *svc, MDB_txn *txn, rt_request_t *r,
                                     uint64_t *last, bool nested, int *store_rc)
{
    const Io__Cloudevents__V1__CloudEvent *ce = r->ev.ce;
    uint8_t key[520];
    size_t klen = s_dedup_key(ce, key, sizeof key);
    Samordna__V1__DedupRecord *dup = NULL;
    int rc = sam_store_get_msg(txn, svc->dedup, key, klen, &samordna__v1__dedup_record__descriptor,
                               (ProtobufCMessage **)&dup);
    uint8_t digest[crypto_hash_sha256_BYTES];
    s_content_digest(ce, digest);
    if (rc == 0) {
        /* A record without a digest predates it (events.proto): taken as a retry. */
        bool retry = dup->digest.len == 0 || (dup->digest.len == sizeof digest &&
                                              memcmp(dup->digest.data, digest, sizeof digest) == 0);
        uint64_t seq = dup->seq;
        samordna__v1__dedup_record__free_unpacked(dup, NULL);
        if (!retry) {
            if ((rc = s_refuse_reuse(svc, txn, r, seq))) goto failed;
            if (nested) /* the pass where it is final (a first pass is done again nested) */
                sam_info("event.reused type=%s source=%s id=%s seq=%" PRIu64, sam_logv(ce->type),
                         sam_logv(ce->source), sam_logv(ce->id), seq);
            return S_EVENT_REFUSED;
        }
        r->seq = seq;
        r->duplicate = true;
        return S_EVENT_DONE;
    }
    if (rc != MDB_NOTFOUND) goto failed;
    if (r->late.code) { /* the payload its row refused: a refusal, as if apply had made it */
        sam_reply_error(&r->reply, r->late.code, "%s", r->late.message);
        return S_EVENT_REFUSED;
    }
    MDB_txn *work = txn;
    if (nested && (rc = sam_store_begin(svc->store, txn, true, &work))) goto failed;
    r->ev.seq = *last + 1;
    int arc = r->erow->apply(svc, work, &r->ev, &r->reply);
    if (arc != 0) {
        if (nested) mdb_txn_abort(work);
        rt_outcome(svc, r->erow, r->req->id, arc, &r->reply);
        return S_EVENT_REFUSED;
    }
    /* The handler's reply body is not sent for events: the answer is the PublishReply. */
    Samordna__V1__StoredEvent stored = SAMORDNA__V1__STORED_EVENT__INIT;
    stored.seq = r->ev.seq;
    stored.event = (Io__Cloudevents__V1__CloudEvent *)ce;
    stored.caller = (Samordna__V1__Caller *)r->ev.caller;
    stored.recorded_ms = r->ev.now_ms;
    stored.epoch = rt_replica_epoch(svc);
    uint8_t seqkey[8];
    sam_be64_put(seqkey, r->ev.seq);
    Samordna__V1__DedupRecord rec = SAMORDNA__V1__DEDUP_RECORD__INIT;
    rec.seq = r->ev.seq;
    rec.digest.data = digest;
    rec.digest.len = sizeof digest;
    if ((rc = sam_store_put_msg(work, svc->outbox, seqkey, 8, &stored.base, MDB_APPEND)) ||
        (rc = sam_store_put_msg(work, svc->dedup, key, klen, &rec.base, 0))) {
        if (nested) mdb_txn_abort(work);
        goto failed;
    }
    if (nested && (rc = mdb_txn_commit(work))) goto failed; /* commit frees it even on failure */
    *last = r->ev.seq;
    r->seq = r->ev.seq;
    sam_debug("event.applied req=%" PRIu64 " type=%s source=%s id=%s seq=%" PRIu64, r->req->id,
              sam_logv(ce->type), sam_logv(ce->source), sam_logv(ce->id), r->seq);
    return S_EVENT_DONE;
failed:
    *store_rc = rc;
    return S_EVENT_FAILED;
}

/*  One pass over the batch in one write transaction (see s_pass_t); *store_rc gets the
    error of an S_PASS_FAILED. */
static s_pass_t s_write_pass(sam_service_t *svc, rt_request_t **pubs, size_t n, bool nested,
                             int *store_rc)
{
    MDB_txn *txn = NULL;
    if ((*store_rc = sam_store_begin(svc->store, NULL, true, &txn))) return S_PASS_FAILED;
    uint64_t last = sam_service_last_seq(svc, txn);
    s_pass_t pass = S_PASS_COMMITTED;
    for (size_t i = 0; i < n && pass == S_PASS_COMMITTED; i++) {
        rt_request_t *r = pubs[i];
        if (r->done) continue;
        r->seq = 0;
        r->duplicate = false;
        s_event_outcome_t ev = s_apply_one(svc, txn, r, &last, nested, store_rc);
        if (ev == S_EVENT_REFUSED && !nested)
            pass = S_PASS_RETRY_NESTED; /* undo the whole pass, then go event by event */
        else if (ev == S_EVENT_FAILED)
            pass = S_PASS_FAILED; /* a store error: the batch fails whole */
    }
    /* The fence again, at the last moment: prepare hooks and the pass took time, and a
       primary whose lease ran out meanwhile must not commit (sam_service_replica.c). */
    if (pass == S_PASS_COMMITTED && !rt_replica_writer(svc, zclock_mono())) {
        mdb_txn_abort(txn);
        return S_PASS_FENCED;
    }
    if (pass == S_PASS_COMMITTED)
        return (*store_rc = mdb_txn_commit(txn)) ? S_PASS_FAILED : S_PASS_COMMITTED;
    mdb_txn_abort(txn);
    if (pass == S_PASS_RETRY_NESTED)
        for (size_t i = 0; i < n; i++) /* the refusal is found again in the nested pass */
            if (!pubs[i]->done) pubs[i]->reply.code = 0;
    return pass;
}

/*  All publishes of a batch: one write transaction, one sync, then the replies (the first
    pass straight, a second one nested when the first met a refusal: see the top). */
void rt_write_batch(sam_service_t *svc, rt_request_t **pubs, size_t n)
{
    /* A standby, or a primary whose lease runs out: nothing is written here. The broker
       sends writes to the primary, so this is the moment of a change of primary. */
    if (!rt_replica_writer(svc, zclock_mono())) {
        for (size_t i = 0; i < n; i++) {
            rt_request_t *r = pubs[i];
            if (!r->done)
                sam_reply_error(&r->reply, SAM_UNAVAILABLE,
                                "this %s instance is not the primary now (a standby, or a primary "
                                "whose lease runs out); nothing stored: send it again, the broker "
                                "routes it to the primary",
                                svc->def->name);
            rt_send_reply(svc, r);
        }
        return;
    }
    /* Cross-service checks happen before the transaction: nothing slow holds the writer. */
    for (size_t i = 0; i < n; i++) {
        rt_request_t *r = pubs[i];
        bool run = !r->done && !r->late.code && r->erow->prepare;
        int prc = run ? r->erow->prepare(svc, &r->ev, &r->reply) : 0;
        if (prc != 0) {
            r->done = true;
            rt_outcome(svc, r->erow, r->req->id, prc, &r->reply);
        }
    }
    int rc = 0;
    int64_t started = zclock_usecs();
    s_pass_t pass = s_write_pass(svc, pubs, n, false, &rc);
    if (pass == S_PASS_RETRY_NESTED) pass = s_write_pass(svc, pubs, n, true, &rc);
    svc->n_batches++;
    if (pass == S_PASS_COMMITTED) {
        rt_metric_batch(svc, n, (double)(zclock_usecs() - started) / 1e6);
        uint64_t head = 0;
        for (size_t i = 0; i < n; i++)
            if (pubs[i]->seq > head) head = pubs[i]->seq;
        rt_metric_head(svc, head);
    }
    /* Committed, but the fence closed during the commit (a slow fsync, a lease that ran out):
       another primary may be elected without these records, so they are not acknowledged. */
    bool fenced_after = pass == S_PASS_COMMITTED && !rt_replica_writer(svc, zclock_mono());
    for (size_t i = 0; i < n; i++) {
        rt_request_t *r = pubs[i];
        if (pass == S_PASS_FENCED && !r->done) {
            sam_reply_error(&r->reply, SAM_UNAVAILABLE,
                            "this %s instance stopped being the primary before the commit; "
                            "nothing stored: send it again, the broker routes it to the primary",
                            svc->def->name);
        } else if (fenced_after && !r->done && r->reply.code != SAM_OK && r->reply.code != 0) {
            svc->n_refused++; /* refused in apply: its refusal stands */
        } else if (fenced_after && !r->done) {
            sam_reply_error(&r->reply, SAM_UNAVAILABLE,
                            "stored as seq %" PRIu64 " by a %s primary whose lease ran out during "
                            "the commit: it may not survive a change of primary; send it again "
                            "(the same id) to the primary",
                            r->seq, svc->def->name);
        } else if (pass == S_PASS_FAILED && !r->done) {
            sam_reply_error(&r->reply, SAM_INTERNAL, "store write failed, nothing stored: %s",
                            sam_store_strerror(rc));
        } else if (!r->done && r->reply.code != SAM_OK && r->reply.code != 0) {
            svc->n_refused++; /* refused in apply: reply already set */
        } else if (!r->done) {
            Samordna__V1__PublishReply pr = SAMORDNA__V1__PUBLISH_REPLY__INIT;
            pr.seq = r->seq;
            pr.duplicate = r->duplicate;
            if (r->duplicate)
                svc->n_duplicates++;
            else
                svc->n_applied++;
            sam_reply_message(&r->reply, &pr.base);
            /* synchronous mode: answered once a standby has it (sam_service_replica.c) */
            if (rt_replica_hold(svc, r, zclock_mono())) {
                pubs[i] = NULL;
                continue;
            }
        }
        rt_send_reply(svc, r);
    }
    if (pass == S_PASS_FAILED)
        sam_error("batch.failed events=%zu reason=%s", n, sam_logv(sam_store_strerror(rc)));
}

/* events.publish: checked now, applied with the batch's other publishes in one write
   transaction (rt_write_batch), which answers it. */
int rt_builtin_publish(sam_service_t *svc, rt_request_t *r, MDB_txn *rtxn, int64_t now)
{
    (void)rtxn;
    (void)now;
    s_publish_check(svc, r, svc->batch_ms);
    svc->pubs[svc->npubs++] = r;
    return 1;
}

/*  A standby applies one record of its primary's outbox (sam_service_replica.c) in txn: the
    event type's apply as the primary ran it — the record's sequence number, caller and
    wall-clock time — then the record byte for byte and its (source, id) record. Returns 0,
    a store error, or 0 with `why` set when the record cannot be applied here (an unknown
    type, a payload or apply refusal, a (source, id) already stored): the page is then
    aborted and asked again. */
int rt_replay_one(sam_service_t *svc, MDB_txn *txn, const Samordna__V1__StoredEvent *se, char *why,
                  size_t cap)
{
    const Io__Cloudevents__V1__CloudEvent *ce = se->event;
    const sam_row_t *row = ce ? rt_find(svc->events, svc->n_events, ce->type) : NULL;
    if (!row) {
        snprintf(why, cap, "seq %" PRIu64 ": event type '%s' is unknown to this build", se->seq,
                 ce ? ce->type : "(none)");
        return 0;
    }
    uint8_t key[520];
    size_t klen = s_dedup_key(ce, key, sizeof key);
    MDB_val dk = {klen, key}, dv;
    int rc = klen ? mdb_get(txn, svc->dedup, &dk, &dv) : MDB_NOTFOUND;
    if (rc == 0) {
        snprintf(why, cap, "seq %" PRIu64 ": its (source, id) is stored here already", se->seq);
        return 0;
    }
    if (rc != MDB_NOTFOUND) return rc;
    sam_event_t ev = {
        .ce = ce, .caller = se->caller, .seq = se->seq, .now_ms = se->recorded_ms, .replay = true};
    size_t len = 0;
    const uint8_t *data = s_event_data(ce, &len);
    ProtobufCMessage *payload = NULL;
    sam_reply_t reply = {0};
    if (!row->request) {
        ev.data = data;
        ev.data_len = len;
    } else if (!data || rt_decode(row->request, data, len, "data", &payload, &reply) != 0) {
        snprintf(why, cap, "seq %" PRIu64 ": its data does not decode as %s", se->seq,
                 row->request->name);
        free(reply.body);
        return 0;
    }
    ev.msg = payload;
    MDB_txn *work;
    if ((rc = sam_store_begin(svc->store, txn, true, &work))) goto done;
    int arc = row->apply(svc, work, &ev, &reply);
    if (arc != 0) {
        mdb_txn_abort(work);
        if (arc == -1)
            snprintf(why, cap, "seq %" PRIu64 " (%s) refused here: %u %s", se->seq, ce->type,
                     reply.code, reply.message);
        else
            rc = arc;
        goto done;
    }
    uint8_t seqkey[8];
    sam_be64_put(seqkey, se->seq);
    uint8_t digest[crypto_hash_sha256_BYTES];
    s_content_digest(ce, digest);
    Samordna__V1__DedupRecord rec = SAMORDNA__V1__DEDUP_RECORD__INIT;
    rec.seq = se->seq;
    rec.digest.data = digest;
    rec.digest.len = sizeof digest;
    if ((rc = sam_store_put_msg(work, svc->outbox, seqkey, 8, &se->base, MDB_APPEND)) ||
        (rc = sam_store_put_msg(work, svc->dedup, key, klen, &rec.base, 0))) {
        mdb_txn_abort(work);
        goto done;
    }
    rc = mdb_txn_commit(work);
done:
    if (payload) protobuf_c_message_free_unpacked(payload, NULL);
    free(reply.body);
    return rc;
}
