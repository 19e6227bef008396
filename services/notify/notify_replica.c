/*  notify_replica.c — notify across hosts: a standby that delivers nothing, and that resumes
    about where its primary was when it is promoted (docs/notify.md, "Across hosts").

    A notify standby (--replica standby, or a candidate of --replica elect) has a store of
    its own. The runtime fills it with notify's own events — subscriptions made and deleted,
    briefings resent — from the primary's outbox. Its followers of the other services run as
    on a primary, so its queue and inboxes fill with the same deliveries. What it must not do
    is what has to happen once across hosts: webhooks and e-mail, handshakes, the briefing
    and the reminders. Those run only while sam_service_is_primary() is true: the delivery
    shards and the schedule are leases of one store (notify_share.c), which a standby on its
    own store would hold, so notify_sub_mine, _held and _check and the schedule ask the
    runtime too.

    What the primary has delivered is its own delivery state, not an event, and never reaches
    the standby's store. So the standby asks (notify.replica.positions, every second, routed
    to the primary) how far each subscription has got, in terms that mean the same in both
    stores — the queue numbers do not:
      - per followed service, the primary's cursor: everything up to it is queued there;
      - per subscription and followed service, the lowest seq it still has waiting (queue
        or inbox; a history replay under way counts as waiting from its position). Each
        subscription takes its deliveries of one outbox in seq order, so everything below
        that is done there — delivered, acknowledged, or a dead letter — and with nothing
        waiting, everything up to the cursor is;
      - notify's own messages (a briefing's deliveries, resent): the event ids still waiting;
      - each subscription's delivery state (a webhook's answered handshake, a disabled one);
      - the briefings and reminders issued (table "sent"), with the briefings' records: they
        are issued by the schedule, not by events, and must not be issued twice;
      - once, the keys webhooks are signed with (the secret every subscription's whsec_ is
        derived from, the Ed25519 seed of v1a): each store makes its own at its first start,
        and a promoted standby must sign as the primary did. Only to a caller of role
        service with the primary's own certificate (--cert); a --webhook-signing-key given
        to the standby is kept (a warning when it is not the primary's).
    The standby drops from its own queue and inboxes what the primary has done, and keeps the
    rest. Promoted, it delivers what it kept: what the primary had not done as of the last
    answer, so at most about a second of deliveries is made twice, each with the webhook-id
    the primary gave it (one per subscription and event), by which receivers drop duplicates
    the Standard Webhooks way. Nothing is lost that the primary had not done: an entry is
    dropped only on the primary's word, and the cursor bounds that word to what the primary
    had read (a late answer drops nothing the primary had not yet seen).

    What promotion does not carry over: the delivery log and the dead letters stay in the old
    primary's store; a briefing or reminder issued in the last second before the primary was
    lost may be issued again; inbox reads and acknowledgements name queue numbers of one
    store, so they are the primary's only (a standby answers them 503).
*/
#include "notify.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_SYNC_MS 1000       /* how often a standby asks */
#define S_SYNC_LOST_MS 10000 /* an answer not come in this long is given up */
/* The answer is made on the primary's loop, each second for each standby: the rows it looks
   at are bounded. Past a bound a subscription is answered incomplete, and the standby keeps
   what the answer does not name — a long backlog costs repeats at a promotion, never a loss. */
#define S_WALK_SUB 1024  /* queue and inbox rows looked at per subscription and answer */
#define S_WALK_ALL 20000 /* … and per answer */
#define S_OWN "notify"   /* the service of notify's own messages in Delivery.service */

/* ---- the primary's answer ------------------------------------------------------------------ */

/* A growing array of pointers (the reply's repeated fields). */
typedef struct {
    void **at;
    size_t n, cap;
} s_vec_t;

static int s_push(s_vec_t *v, void *p)
{
    if (!p) return -1;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        void **at = realloc(v->at, cap * sizeof *at);
        if (!at) return -1;
        v->at = at;
        v->cap = cap;
    }
    v->at[v->n++] = p;
    return 0;
}

/* Notes a delivery still waiting in pend: the lowest seq per followed service, and every
   event id of notify's own. 0, or -1 when out of memory. */
static int s_note_pending(notify_t *n, s_vec_t *pend, const Samordna__V1__Delivery *d)
{
    if (!d->service) return 0;
    if (strcmp(d->service, S_OWN) == 0) {
        if (!d->event || !d->event->id) return 0;
        Samordna__V1__PositionPending *p = calloc(1, sizeof *p);
        if (!p) return -1;
        samordna__v1__position_pending__init(p);
        p->service = S_OWN;
        p->event_id = strdup(d->event->id);
        if (!p->event_id || s_push(pend, p)) {
            free(p->event_id);
            free(p);
            return -1;
        }
        return 0;
    }
    bool followed = false;
    for (size_t i = 0; i < n->n_follow; i++)
        followed |= strcmp(n->follow[i].service, d->service) == 0;
    if (!followed) return 0; /* a service no longer followed: the standby keeps its rows */
    for (size_t i = 0; i < pend->n; i++) {
        Samordna__V1__PositionPending *p = pend->at[i];
        if (strcmp(p->service, d->service) == 0) {
            if (d->seq < p->seq) p->seq = d->seq;
            return 0;
        }
    }
    Samordna__V1__PositionPending *p = calloc(1, sizeof *p);
    if (!p) return -1;
    samordna__v1__position_pending__init(p);
    for (size_t i = 0; i < n->n_follow; i++) /* a name that lives as long as the service */
        if (strcmp(n->follow[i].service, d->service) == 0) p->service = n->follow[i].service;
    p->seq = d->seq;
    p->event_id = NULL;
    if (s_push(pend, p)) {
        free(p);
        return -1;
    }
    return 0;
}

/* Walks one subscription's rows of table dbi (queue or inbox) into pend, within *budget. */
static int s_walk(notify_t *n, MDB_txn *txn, MDB_dbi dbi, const char *id,
                  Samordna__V1__SubscriptionPosition *sp, s_vec_t *pend, long *budget, long *left)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc) return rc;
    uint8_t key[NOTIFY_QKEY_MAX];
    size_t kl = notify_qkey(key, id, 0);
    MDB_val k = {kl, key}, v;
    int crc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (crc == 0 && k.mv_size == kl && memcmp(k.mv_data, key, kl - 8) == 0) {
        if (*budget <= 0 || *left <= 0) {
            sp->complete = false;
            break;
        }
        (*budget)--;
        (*left)--;
        Samordna__V1__Delivery *d = samordna__v1__delivery__unpack(NULL, v.mv_size, v.mv_data);
        if (d) {
            rc = s_note_pending(n, pend, d);
            samordna__v1__delivery__free_unpacked(d, NULL);
            if (rc) break;
        }
        crc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc) return SAM_STORE_CORRUPT; /* out of memory */
    return crc == 0 || crc == MDB_NOTFOUND ? 0 : crc;
}

/* A history replay under way waits from its position on: the primary has not queued it. */
static int s_note_replays(notify_t *n, MDB_txn *txn, const char *id, s_vec_t *pend)
{
    for (size_t i = 0; i < n->n_follow; i++) {
        Samordna__V1__SubscriptionStart *st = NULL;
        int rc = notify_start_get(txn, &n->dbi, id, n->follow[i].service, &st);
        if (rc == MDB_NOTFOUND) continue;
        if (rc) return rc;
        bool replaying = st->replaying;
        Samordna__V1__Delivery d = SAMORDNA__V1__DELIVERY__INIT;
        d.service = n->follow[i].service;
        d.seq = st->replay_pos + 1;
        protobuf_c_message_free_unpacked(&st->base, NULL);
        if (replaying && s_note_pending(n, pend, &d)) return SAM_STORE_CORRUPT;
    }
    return 0;
}

static void s_sub_free(Samordna__V1__SubscriptionPosition *sp)
{
    if (!sp) return;
    for (size_t i = 0; i < sp->n_pending; i++) {
        free(sp->pending[i]->event_id);
        free(sp->pending[i]);
    }
    free(sp->pending);
    if (sp->state) protobuf_c_message_free_unpacked(&sp->state->base, NULL);
    free(sp->id);
    free(sp);
}

/* One subscription's position; NULL with *rc set on a store error or out of memory. */
static Samordna__V1__SubscriptionPosition *s_sub_position(notify_t *n, MDB_txn *txn, const char *id,
                                                          size_t il, long *left, int *rc)
{
    Samordna__V1__SubscriptionPosition *sp = calloc(1, sizeof *sp);
    s_vec_t pend = {0};
    if (!sp) {
        *rc = SAM_STORE_CORRUPT;
        return NULL;
    }
    samordna__v1__subscription_position__init(sp);
    sp->id = strndup(id, il);
    sp->complete = true;
    long budget = S_WALK_SUB;
    *rc = sp->id ? 0 : SAM_STORE_CORRUPT;
    if (!*rc) *rc = s_walk(n, txn, n->dbi.queue, sp->id, sp, &pend, &budget, left);
    if (!*rc) *rc = s_walk(n, txn, n->dbi.inbox, sp->id, sp, &pend, &budget, left);
    if (!*rc) *rc = s_note_replays(n, txn, sp->id, &pend);
    sp->pending = (Samordna__V1__PositionPending **)pend.at;
    sp->n_pending = pend.n;
    if (!*rc) {
        ProtobufCMessage *st = NULL;
        int src = sam_store_get_msg(txn, n->dbi.state, sp->id, strlen(sp->id),
                                    &samordna__v1__subscription_state__descriptor, &st);
        if (src == 0)
            sp->state = (Samordna__V1__SubscriptionState *)st;
        else if (src != MDB_NOTFOUND)
            *rc = src;
    }
    if (*rc) {
        s_sub_free(sp);
        return NULL;
    }
    return sp;
}

/* The briefings and reminders issued at or after `after_ms`, with the briefings' records. */
static int s_sent(notify_t *n, MDB_txn *txn, int64_t after_ms, s_vec_t *sent, s_vec_t *briefings)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, n->dbi.sent, &cur);
    if (rc) return rc;
    MDB_val k, v;
    int crc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; crc == 0 && !rc; crc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (v.mv_size != 8 || (int64_t)sam_be64_get(v.mv_data) < after_ms) continue;
        Samordna__V1__SentMark *m = calloc(1, sizeof *m);
        if (!m) {
            rc = SAM_STORE_CORRUPT;
            break;
        }
        samordna__v1__sent_mark__init(m);
        m->id = strndup(k.mv_data, k.mv_size);
        m->sent_ms = (int64_t)sam_be64_get(v.mv_data);
        if (!m->id || s_push(sent, m)) {
            free(m->id);
            free(m);
            rc = SAM_STORE_CORRUPT;
            break;
        }
        ProtobufCMessage *r = NULL;
        int brc = sam_store_get_msg(txn, n->dbi.briefings, k.mv_data, k.mv_size,
                                    &samordna__v1__briefing_record__descriptor, &r);
        if (brc == 0 && s_push(briefings, r)) {
            protobuf_c_message_free_unpacked(r, NULL);
            rc = SAM_STORE_CORRUPT;
        } else if (brc && brc != MDB_NOTFOUND)
            rc = brc;
    }
    mdb_cursor_close(cur);
    if (!rc && crc != MDB_NOTFOUND) rc = crc;
    return rc;
}

/* notify.replica.positions  ReplicaPositionsRequest → ReplicaPositionsReply: what this
   primary has done, for its standbys (see the top). */
int notify_q_replica_positions(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                               sam_reply_t *reply)
{
    notify_t *n = sam_service_ctx(svc);
    const Samordna__V1__ReplicaPositionsRequest *req =
        (const Samordna__V1__ReplicaPositionsRequest *)call->msg;
    if (!sam_service_is_primary(svc))
        return sam_reply_error(reply, SAM_UNAVAILABLE,
                               "this notify instance is a standby: the positions are the "
                               "primary's (send it routed to the primary)");
    Samordna__V1__ReplicaPositionsReply out = SAMORDNA__V1__REPLICA_POSITIONS_REPLY__INIT;
    Samordna__V1__Cursor cursors[NOTIFY_MAX_FOLLOW], *cptr[NOTIFY_MAX_FOLLOW];
    for (size_t i = 0; i < n->n_follow; i++) {
        samordna__v1__cursor__init(&cursors[i]);
        cursors[i].service = n->follow[i].service;
        cursors[i].seq = notify_cursor_get(txn, &n->dbi, n->follow[i].service);
        cptr[i] = &cursors[i];
    }
    out.cursors = cptr;
    out.n_cursors = n->n_follow;
    out.outbox_seq = sam_service_last_seq(svc, txn);
    s_vec_t subs = {0}, sent = {0}, briefings = {0};
    long left = S_WALK_ALL;
    int rc = 0;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, n->dbi.subs, &cur)) == 0) {
        MDB_val k, v;
        int crc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        for (; crc == 0 && !rc; crc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size == 0 || k.mv_size > NOTIFY_ID_MAX) continue;
            Samordna__V1__SubscriptionPosition *sp =
                s_sub_position(n, txn, k.mv_data, k.mv_size, &left, &rc);
            if (sp && s_push(&subs, sp)) {
                s_sub_free(sp);
                rc = SAM_STORE_CORRUPT;
            }
        }
        mdb_cursor_close(cur);
        if (!rc && crc != MDB_NOTFOUND) rc = crc;
    }
    if (!rc) rc = s_sent(n, txn, req->sent_after_ms, &sent, &briefings);
    /* the keys only to notify itself: a caller of role service, not through a gateway, with
       our own certificate (the one both hosts' notify run with) */
    const Samordna__V1__Caller *c = call->caller;
    bool ours = c->insecure || (strcmp(c->role, "service") == 0 && !*c->via &&
                                *n->standby.own_key && strcmp(c->key, n->standby.own_key) == 0);
    if (req->keys && ours) {
        out.secret_key.data = n->master_key;
        out.secret_key.len = sizeof n->master_key;
        out.signing_seed.data = n->sign_sk; /* libsodium's secret key begins with the seed */
        out.signing_seed.len = 32;
    }
    if (!rc) {
        out.subscriptions = (Samordna__V1__SubscriptionPosition **)subs.at;
        out.n_subscriptions = subs.n;
        out.sent = (Samordna__V1__SentMark **)sent.at;
        out.n_sent = sent.n;
        out.briefings = (Samordna__V1__BriefingRecord **)briefings.at;
        out.n_briefings = briefings.n;
        rc = sam_reply_message(reply, &out.base);
    }
    for (size_t i = 0; i < subs.n; i++)
        s_sub_free(subs.at[i]);
    for (size_t i = 0; i < sent.n; i++) {
        Samordna__V1__SentMark *m = sent.at[i];
        free(m->id);
        free(m);
    }
    for (size_t i = 0; i < briefings.n; i++)
        protobuf_c_message_free_unpacked(briefings.at[i], NULL);
    free(subs.at);
    free(sent.at);
    free(briefings.at);
    return rc;
}

/* ---- the standby's side -------------------------------------------------------------------- */

/* Whether the primary's answer says that the standby's row d of subscription sp is done. */
static bool s_done(const Samordna__V1__ReplicaPositionsReply *rr,
                   const Samordna__V1__SubscriptionPosition *sp, const Samordna__V1__Delivery *d,
                   bool own_known)
{
    if (!d->service) return false;
    if (strcmp(d->service, S_OWN) == 0) {
        /* notify's own: done when the primary no longer has it waiting — known only when
           the answer was made after every notify event the standby has applied */
        if (!own_known || !sp->complete || !d->event || !d->event->id) return false;
        for (size_t i = 0; i < sp->n_pending; i++)
            if (strcmp(sp->pending[i]->service, S_OWN) == 0 && sp->pending[i]->event_id &&
                strcmp(sp->pending[i]->event_id, d->event->id) == 0)
                return false;
        return true;
    }
    for (size_t i = 0; i < sp->n_pending; i++)
        if (strcmp(sp->pending[i]->service, d->service) == 0) return d->seq < sp->pending[i]->seq;
    if (!sp->complete) return false;
    for (size_t i = 0; i < rr->n_cursors; i++)
        if (rr->cursors[i]->service && strcmp(rr->cursors[i]->service, d->service) == 0)
            return d->seq <= rr->cursors[i]->seq;
    return false;
}

/* Drops sp's rows of table dbi that the primary has done; how many, or -1 (*rc set). */
static long s_drop(notify_t *n, MDB_txn *w, MDB_dbi dbi,
                   const Samordna__V1__ReplicaPositionsReply *rr,
                   const Samordna__V1__SubscriptionPosition *sp, bool own_known, int *rc)
{
    MDB_cursor *cur;
    if ((*rc = mdb_cursor_open(w, dbi, &cur))) return -1;
    uint8_t key[NOTIFY_QKEY_MAX];
    size_t kl = notify_qkey(key, sp->id, 0);
    MDB_val k = {kl, key}, v;
    long dropped = 0;
    int crc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (crc == 0 && k.mv_size == kl && memcmp(k.mv_data, key, kl - 8) == 0) {
        Samordna__V1__Delivery *d = samordna__v1__delivery__unpack(NULL, v.mv_size, v.mv_data);
        bool done = d && s_done(rr, sp, d, own_known);
        if (d) samordna__v1__delivery__free_unpacked(d, NULL);
        if (done) {
            if ((crc = mdb_cursor_del(cur, 0))) break;
            dropped++;
        }
        crc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (crc && crc != MDB_NOTFOUND) {
        *rc = crc;
        return -1;
    }
    return dropped;
}

/* Takes the primary's answer into the standby's store, in one write transaction. */
static void s_apply(notify_t *n, const Samordna__V1__ReplicaPositionsReply *rr)
{
    MDB_txn *w = NULL;
    int rc = sam_store_begin(sam_service_store(n->svc), NULL, true, &w);
    long dropped = 0;
    size_t marks = 0;
    /* the primary's answer covers notify's own events up to its outbox head then */
    bool own_known = !rc && sam_service_last_seq(n->svc, w) <= rr->outbox_seq;
    for (size_t i = 0; !rc && i < rr->n_subscriptions; i++) {
        const Samordna__V1__SubscriptionPosition *sp = rr->subscriptions[i];
        if (!sp->id || !notify_valid_id(sp->id) ||
            !sam_store_has(w, n->dbi.subs, sp->id, strlen(sp->id)))
            continue; /* not applied here yet: its rows, if any, wait for the next answer */
        if (sp->state)
            rc = sam_store_put_msg(w, n->dbi.state, sp->id, strlen(sp->id), &sp->state->base, 0);
        long q = rc ? -1 : s_drop(n, w, n->dbi.queue, rr, sp, own_known, &rc);
        long b = q < 0 ? -1 : s_drop(n, w, n->dbi.inbox, rr, sp, own_known, &rc);
        if (b >= 0) dropped += q + b;
    }
    for (size_t i = 0; !rc && i < rr->n_sent; i++) {
        const Samordna__V1__SentMark *m = rr->sent[i];
        if (m->sent_ms > n->standby.sent_after_ms) n->standby.sent_after_ms = m->sent_ms;
        if (!m->id || !*m->id || sam_store_has(w, n->dbi.sent, m->id, strlen(m->id))) continue;
        uint8_t when[8];
        sam_be64_put(when, (uint64_t)m->sent_ms);
        MDB_val k = {strlen(m->id), m->id}, v = {8, when};
        rc = mdb_put(w, n->dbi.sent, &k, &v, 0);
        marks++;
    }
    bool keys = !rc && !n->standby.keys && rr->secret_key.len == sizeof n->master_key &&
                rr->signing_seed.len == 32;
    const char *key_file = sam_config_get(sam_service_config(n->svc), "webhook-signing-key");
    bool own_seed = key_file && *key_file; /* the operator gave it: that one is kept */
    if (keys) {
        MDB_val k = {3, "key"}, v = {rr->secret_key.len, rr->secret_key.data};
        rc = mdb_put(w, n->dbi.meta, &k, &v, 0);
        MDB_val sk = {4, "sign"}, sv = {32, rr->signing_seed.data};
        if (!rc && !own_seed) rc = mdb_put(w, n->dbi.meta, &sk, &sv, 0);
    }
    for (size_t i = 0; !rc && i < rr->n_briefings; i++) {
        const Samordna__V1__BriefingRecord *r = rr->briefings[i];
        if (r->briefing && r->briefing->id && notify_valid_id(r->briefing->id))
            rc = sam_store_put_msg(w, n->dbi.briefings, r->briefing->id, strlen(r->briefing->id),
                                   &r->base, 0);
    }
    if (rc && w)
        mdb_txn_abort(w);
    else if (!rc)
        rc = notify_commit_relaxed(n, w); /* lost in a power cut: dropped again next time */
    if (rc) {
        sam_error("notify.standby_sync_failed error=%s", sam_logv(sam_store_strerror(rc)));
        return;
    }
    if (keys) {
        memcpy(n->master_key, rr->secret_key.data, sizeof n->master_key);
        uint8_t pk[32], sk[64];
        crypto_sign_seed_keypair(pk, sk, rr->signing_seed.data);
        if (!own_seed) {
            memcpy(n->sign_pk, pk, sizeof pk);
            memcpy(n->sign_sk, sk, sizeof sk);
        } else if (sodium_memcmp(pk, n->sign_pk, sizeof pk) != 0) {
            sam_warn("notify.standby_key_differs option=webhook-signing-key reason=%s",
                     sam_logv("the primary signs v1a webhooks with another key: once promoted, "
                              "receivers that know the primary's whpk_ refuse this one's"));
        }
        sodium_memzero(sk, sizeof sk);
        n->standby.keys = true;
        char pub[64];
        sam_info("notify.standby_keys from=primary public_key=%s",
                 notify_public_key(n, pub, sizeof pub));
    } else if (!n->standby.keys && !n->standby.keys_refused && !rr->secret_key.len) {
        n->standby.keys_refused = true;
        sam_warn("notify.standby_keys_refused reason=%s",
                 sam_logv("the primary gave no signing keys (they go only to an instance "
                          "with the primary's own certificate): promoted, this one would sign "
                          "webhooks with keys of its own"));
    }
    n->standby.synced_ms = notify_now_ms();
    n->standby.syncs++;
    if (n->standby.syncs == 1 || marks)
        sam_info("notify.standby_synced subscriptions=%zu dropped=%ld issued=%zu syncs=%llu",
                 rr->n_subscriptions, dropped, marks, (unsigned long long)n->standby.syncs);
    else
        sam_debug("notify.standby_synced subscriptions=%zu dropped=%ld issued=%zu syncs=%llu",
                  rr->n_subscriptions, dropped, marks, (unsigned long long)n->standby.syncs);
}

/* Sends the next question when it is due, and takes in its answer. */
static void s_sync(notify_t *n)
{
    notify_standby_t *sb = &n->standby;
    int64_t mono = zclock_mono();
    if (!sb->client) {
        if (mono < sb->next_mono) return;
        sb->client = sam_service_client_new(n->svc);
        if (!sb->client) {
            sb->next_mono = mono + S_SYNC_MS;
            return;
        }
        sam_client_set_route(sb->client, true, NULL); /* the primary's answer, not a standby's */
        sam_client_set_deadline(sb->client, S_SYNC_LOST_MS / 2);
    }
    if (sb->req && mono - sb->req_mono > S_SYNC_LOST_MS) sb->req = 0; /* lost: ask again */
    if (!sb->req && mono >= sb->next_mono) {
        Samordna__V1__ReplicaPositionsRequest rq = SAMORDNA__V1__REPLICA_POSITIONS_REQUEST__INIT;
        rq.sent_after_ms = sb->sent_after_ms;
        rq.keys = !sb->keys && !sb->keys_refused;
        uint8_t buf[32];
        size_t len = samordna__v1__replica_positions_request__pack(&rq, buf);
        sb->req = sam_client_send(sb->client, "notify", "notify.replica.positions", buf, len);
        sb->req_mono = mono;
        sb->next_mono = mono + S_SYNC_MS;
    }
    sam_result_t res = {0};
    while (sam_client_recv(sb->client, 0, &res) == 0) {
        if (sb->req && res.id == sb->req) {
            sb->req = 0;
            Samordna__V1__ReplicaPositionsReply *rr =
                res.code == SAM_OK
                    ? samordna__v1__replica_positions_reply__unpack(NULL, res.body_len, res.body)
                    : NULL;
            if (rr) {
                if (sb->failing)
                    sam_info("notify.standby_sync_back syncs=%llu", (unsigned long long)sb->syncs);
                sb->failing = false;
                s_apply(n, rr);
                samordna__v1__replica_positions_reply__free_unpacked(rr, NULL);
            } else if (!sb->failing) {
                sb->failing = true; /* said once, until an answer comes */
                sam_warn("notify.standby_sync_failed code=%u reason=%s", res.code,
                         sam_logv(res.code == SAM_OK ? "undecodable" : res.message));
            }
        }
        sam_result_clear(&res);
    }
    sam_result_clear(&res);
}

/* Rows waiting in a table of the store (for the log line of a change of part). */
static size_t s_rows(notify_t *n, MDB_dbi dbi)
{
    MDB_txn *txn;
    MDB_stat st = {0};
    if (sam_store_begin(sam_service_store(n->svc), NULL, false, &txn)) return 0;
    mdb_stat(txn, dbi, &st);
    mdb_txn_abort(txn);
    return st.ms_entries;
}

void notify_replica_tick(notify_t *n)
{
    notify_standby_t *sb = &n->standby;
    bool primary = sam_service_is_primary(n->svc);
    int part = primary ? 1 : 0;
    if (part != sb->part) {
        if (primary && sb->part == 0) {
            /* promoted: what the queue holds is what the primary had not done as of the last
               answer; the scans and the schedule start at once */
            int64_t ago = sb->synced_ms ? notify_now_ms() - sb->synced_ms : -1;
            sam_info("notify.primary deliveries_resumed_from=%s synced_ms_ago=%lld syncs=%llu "
                     "queued=%zu inbox=%zu",
                     sam_logv(sb->synced_ms ? "the primary's positions at the last sync"
                                            : "this store, never synced with a primary"),
                     (long long)ago, (unsigned long long)sb->syncs, s_rows(n, n->dbi.queue),
                     s_rows(n, n->dbi.inbox));
            n->next_deliver_scan_ms = 0;
            n->next_handshake_scan_ms = 0;
            n->next_schedule_ms = 0;
        } else if (!primary) {
            sam_info("notify.standby deliveries=off schedule=off handshakes=off sync_ms=%d "
                     "reason=%s",
                     S_SYNC_MS,
                     sam_logv("not the primary: the primary delivers, this store follows"));
        }
        sb->part = part;
    }
    if (!primary) s_sync(n);
}

void notify_replica_stop(notify_t *n)
{
    sam_client_destroy(&n->standby.client);
}

void notify_replica_start(notify_t *n)
{
    n->standby.part = -1;
    const char *cert = sam_config_get(sam_service_config(n->svc), "cert");
    zcert_t *zc = cert && *cert ? zcert_load(cert) : NULL;
    if (zc) snprintf(n->standby.own_key, sizeof n->standby.own_key, "%s", zcert_public_txt(zc));
    zcert_destroy(&zc);
}
