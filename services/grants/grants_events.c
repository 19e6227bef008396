/*  grants_events.c — the apply function of every no.samordna.grants.* event.

    Each function runs inside the event's nested write transaction (sam_service.h) on the
    payload the runtime has decoded (ev->msg, as grants.def's row says): it validates every
    field against the current state, refuses with the field and the reason (the runtime then
    aborts the nested transaction, so a refusal never leaves a partial write), and otherwise
    writes its tables and posts ONE balanced journal entry (grants_ledger.h). A store error is
    returned as its code, which the runtime answers 500. The payload is the runtime's and
    stays as it came: a function that completes a record (currency, totals, the split) does
    so on a copy of its top level. Money checks read the ledger's balances, so two agencies racing
    for the last kroner of a frame are decided by LMDB's single writer: the second award sees
    the first one's commitment and is refused with what is left.

    Ownership: a scheme's owner creates it and awards from it; the owner or any funder of an
    award pays, cancels or takes repayments on it; an agency registers only its own
    instruments; a municipality records only its own needs. Admins and insecure (test)
    callers may act for anyone. The runtime has already checked that a publisher's event
    source is its own agency.
*/
#include "grants_handlers.h"
#include "grants_ledger.h"
#include "sam_check.h"
#include "sam_clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool s_admin(const sam_event_t *ev)
{
    return ev->caller->insecure || strcmp(ev->caller->role, "admin") == 0;
}

/* The publisher acts for `owner` (itself, or anyone when an admin): else 403 "<field>: '<source>'
   may not <doing> '<owner>'". Returns 0 or -1. */
static int s_acts_for(const sam_event_t *ev, const char *field, const char *doing,
                      const char *owner, sam_reply_t *reply)
{
    if (s_admin(ev) || strcmp(ev->ce->source, owner) == 0) return 0;
    return sam_reply_error(reply, SAM_FORBIDDEN, "%s: '%s' may not %s '%s'", field, ev->ce->source,
                           doing, owner);
}

static const char *s_money(int64_t ore, char *buf, size_t len)
{
    char f[48];
    snprintf(buf, len, "NOK %s", sam_check_format_ore(ore, f, sizeof f));
    return buf;
}

/* 422 unless the currency is NOK (or empty, meaning NOK). */
static int s_check_currency(const char *currency, sam_reply_t *reply)
{
    if (currency[0] == 0 || strcmp(currency, "NOK") == 0) return 0;
    return sam_reply_error(reply, SAM_UNPROCESSABLE, "currency: only NOK is accepted, got '%.16s'",
                           currency);
}

/* Ids, dates and amounts follow everyone's rules (sam_check.h): rc is one of those, err its
   refusal. */
static int s_refuse(int rc, const char *err, sam_reply_t *reply)
{
    return rc ? sam_reply_error(reply, SAM_BAD_REQUEST, "%s", err) : 0;
}

static int s_check_id(const char *field, const char *id, sam_reply_t *reply)
{
    char err[200];
    return s_refuse(sam_check_id(field, id, true, err, sizeof err), err, reply);
}

/* An amount of at least min_ore (0 or 1) øre. */
static int s_check_amount(const char *field, int64_t ore, int64_t min_ore, sam_reply_t *reply)
{
    char err[200];
    return s_refuse(sam_check_amount(field, ore, min_ore, err, sizeof err), err, reply);
}

static int s_check_text(const char *field, const char *s, size_t max, bool required,
                        sam_reply_t *reply)
{
    size_t n = strlen(s);
    if (required && n == 0) return sam_reply_error(reply, SAM_BAD_REQUEST, "%s: required", field);
    if (n > max)
        return sam_reply_error(reply, SAM_BAD_REQUEST, "%s: %zu bytes, at most %zu allowed", field,
                               n, max);
    return 0;
}

static int s_check_date(const char *field, const char *s, sam_reply_t *reply)
{
    char err[200];
    return s_refuse(sam_check_date(field, s, false, err, sizeof err), err, reply);
}

static int s_check_year(const char *field, uint32_t year, sam_reply_t *reply)
{
    if (year >= 2000 && year <= 2100) return 0;
    return sam_reply_error(reply, SAM_BAD_REQUEST, "%s: %u is not a year in 2000..2100", field,
                           year);
}

static int s_check_agency(grants_t *g, MDB_txn *txn, const char *field, const char *id,
                          sam_reply_t *reply)
{
    if (s_check_id(field, id, reply)) return -1;
    if (grants_ref_known(g, txn, 'a', id)) return 0;
    return sam_reply_error(reply, SAM_UNPROCESSABLE, "%s: unknown agency '%s'", field, id);
}

static int s_check_municipality(grants_t *g, MDB_txn *txn, const char *field, const char *id,
                                sam_reply_t *reply)
{
    if (s_check_id(field, id, reply)) return -1;
    if (grants_ref_known(g, txn, 'm', id)) return 0;
    return sam_reply_error(reply, SAM_UNPROCESSABLE, "%s: unknown municipality '%s'", field, id);
}

static int s_check_pilot(grants_t *g, MDB_txn *txn, const char *field, const char *id,
                         sam_reply_t *reply)
{
    if (id[0] == 0) return 0;
    if (s_check_id(field, id, reply)) return -1;
    if (grants_ref_known(g, txn, 'p', id)) return 0;
    return sam_reply_error(reply, SAM_UNPROCESSABLE, "%s: unknown pilot '%s'", field, id);
}

static int s_post(grants_t *g, MDB_txn *txn, const sam_event_t *ev, const grants_entry_t *e,
                  sam_reply_t *reply)
{
    char err[400];
    if (grants_ledger_post(g, txn, ev, e, err, sizeof err) == 0) return 0;
    return sam_reply_error(reply, SAM_UNPROCESSABLE, "%s", err);
}

/* The scheme and award records: 0 or a store error. */
static int s_put_scheme(grants_t *g, MDB_txn *txn, const Samordna__V1__Scheme *s)
{
    grants_key_t k = {0};
    grants_key_raw(&k, s->id);
    return grants_put(g, txn, GRANTS_T_SCHEMES, &k, &s->base);
}

static int s_put_award(grants_t *g, MDB_txn *txn, const Samordna__V1__Award *a)
{
    grants_key_t k = {0};
    grants_key_raw(&k, a->id);
    return grants_put(g, txn, GRANTS_T_AWARDS, &k, &a->base);
}

/* ---- no.samordna.grants.scheme.created ---------------------------------------------------- */

int grants_apply_scheme_created(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                                sam_reply_t *reply)
{
    grants_t *g = sam_service_ctx(svc);
    Samordna__V1__Scheme copy = *(const Samordna__V1__Scheme *)ev->msg, *s = &copy;
    int rc = -1;
    if (s_check_id("scheme.id", s->id, reply) ||
        s_check_text("scheme.name", s->name, GRANTS_MAX_NAME, true, reply) ||
        s_check_text("scheme.chapter", s->chapter, 32, false, reply) ||
        s_check_text("scheme.item", s->item, 32, false, reply) ||
        s_check_text("scheme.note", s->note, GRANTS_MAX_TEXT, false, reply) ||
        s_check_year("scheme.year", s->year, reply) || s_check_currency(s->currency, reply) ||
        s_check_agency(g, txn, "scheme.owner", s->owner, reply))
        goto done;
    if (s->has_frame && s_check_amount("scheme.frame_ore", s->frame_ore, 1, reply)) goto done;
    if (!s->has_frame && s->frame_ore != 0) {
        sam_reply_error(reply, SAM_BAD_REQUEST,
                        "scheme.frame_ore: set without has_frame; say has_frame to give a frame");
        goto done;
    }
    if (s_acts_for(ev, "scheme.owner", "create a scheme owned by", s->owner, reply)) goto done;
    grants_key_t k = {0};
    grants_key_raw(&k, s->id);
    if (grants_has(g, txn, GRANTS_T_SCHEMES, &k)) {
        sam_reply_error(reply, SAM_CONFLICT, "scheme.id: scheme '%s' exists already", s->id);
        goto done;
    }
    s->committed_ore = 0;
    s->paid_ore = 0;
    s->currency = "NOK";
    grants_entry_t e = {0};
    if (s->has_frame) {
        char budget[GRANTS_ACCOUNT_LEN], approp[GRANTS_ACCOUNT_LEN];
        grants_account_budget(budget, s->id);
        grants_account_appropriation(approp, s->id);
        grants_entry_move(&e, budget, approp, s->frame_ore);
    }
    rc = s_post(g, txn, ev, &e, reply);
    if (!rc) rc = s_put_scheme(g, txn, s);
done:
    return rc;
}

/* ---- no.samordna.grants.award.granted ----------------------------------------------------- */

/* The award's index entries: 0 or a store error. */
static int s_award_indexes(grants_t *g, MDB_txn *txn, const Samordna__V1__Award *a)
{
    for (size_t i = 0; i < a->n_funders; i++) {
        const char *f = a->funders[i]->agency;
        grants_key_t k1 = {0}, k2 = {0};
        grants_key_str(&k1, a->recipient);
        grants_key_be32(&k1, a->year);
        grants_key_str(&k1, f);
        grants_key_raw(&k1, a->id);
        grants_key_be32(&k2, a->year);
        grants_key_str(&k2, a->recipient);
        grants_key_str(&k2, f);
        grants_key_raw(&k2, a->id);
        int rc = grants_put_empty(g, txn, GRANTS_T_BY_RECIPIENT, &k1);
        if (!rc) rc = grants_put_empty(g, txn, GRANTS_T_BY_YEAR, &k2);
        if (rc) return rc;
    }
    if (a->report_due[0]) {
        grants_key_t k = {0};
        grants_key_str(&k, a->report_due);
        grants_key_raw(&k, a->id);
        int rc = grants_put_empty(g, txn, GRANTS_T_DEADLINES, &k);
        if (rc) return rc;
    }
    return 0;
}

int grants_apply_award_granted(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                               sam_reply_t *reply)
{
    grants_t *g = sam_service_ctx(svc);
    const Samordna__V1__Award *in = (const Samordna__V1__Award *)ev->msg;
    /* The record stored: the payload's top level and shares, completed below. */
    Samordna__V1__Award copy = *in, *a = &copy;
    Samordna__V1__FunderShare shares[GRANTS_MAX_FUNDERS], *sharep[GRANTS_MAX_FUNDERS];
    Samordna__V1__Scheme *s = NULL;
    int rc = -1;
    char m1[64], m2[64];
    if (s_check_id("award.id", a->id, reply) || s_check_id("award.scheme", a->scheme, reply) ||
        s_check_text("award.purpose", a->purpose, GRANTS_MAX_TEXT, true, reply) ||
        s_check_date("award.report_due", a->report_due, reply) ||
        s_check_date("award.decided", a->decided, reply) || s_check_currency(a->currency, reply))
        goto done;
    if (s_check_amount("award.amount_ore", a->amount_ore, 1, reply)) goto done;
    s = grants_scheme_get(g, txn, a->scheme);
    if (!s) {
        sam_reply_error(reply, SAM_UNPROCESSABLE, "award.scheme: unknown scheme '%s'", a->scheme);
        goto done;
    }
    if (!s_admin(ev) && strcmp(ev->ce->source, s->owner) != 0) {
        sam_reply_error(reply, SAM_FORBIDDEN,
                        "award.scheme: '%s' may not award from scheme '%s' owned by '%s'",
                        ev->ce->source, s->id, s->owner);
        goto done;
    }
    if (s_check_id("award.recipient", a->recipient, reply)) goto done;
    if (grants_ref_known(g, txn, 'm', a->recipient))
        a->recipient_kind = "municipality";
    else if (grants_ref_known(g, txn, 'a', a->recipient))
        a->recipient_kind = "agency";
    else {
        sam_reply_error(reply, SAM_UNPROCESSABLE,
                        "award.recipient: unknown recipient '%s' (neither a municipality nor an "
                        "agency)",
                        a->recipient);
        goto done;
    }
    /* A municipality merged away gets no award dated on or after the merger: its successor
       does. The award's day is its decision, or the day it is stored. */
    char into[80], merged_on[11], day[11];
    if (a->decided[0])
        snprintf(day, sizeof day, "%s", a->decided);
    else
        sam_clock_date_of(ev->now_ms, day);
    /* (Not on a standby's replay: its projection may know of a merger its primary's did not
       yet; sam_event_t.replay.) */
    if (!ev->replay && strcmp(a->recipient_kind, "municipality") == 0 &&
        grants_successor(g, txn, a->recipient, into, merged_on) && strcmp(day, merged_on) >= 0) {
        sam_reply_error(reply, SAM_UNPROCESSABLE,
                        "award.recipient: '%s' was merged into '%s' on %s; an award of %s goes "
                        "to '%s'",
                        a->recipient, into, merged_on, day, into);
        goto done;
    }
    if (s_check_pilot(g, txn, "award.pilot", a->pilot, reply)) goto done;
    if (a->n_funders == 0 || a->n_funders > GRANTS_MAX_FUNDERS) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "award.funders: %zu funders, 1 to %d allowed",
                        a->n_funders, GRANTS_MAX_FUNDERS);
        goto done;
    }
    int64_t sum = 0;
    for (size_t i = 0; i < a->n_funders; i++) {
        shares[i] = *in->funders[i];
        Samordna__V1__FunderShare *f = sharep[i] = &shares[i];
        char field[64];
        snprintf(field, sizeof field, "award.funders[%zu].agency", i);
        if (s_check_agency(g, txn, field, f->agency, reply)) goto done;
        for (size_t j = 0; j < i; j++)
            if (strcmp(a->funders[j]->agency, f->agency) == 0) {
                sam_reply_error(reply, SAM_BAD_REQUEST, "%s: '%s' is named twice", field,
                                f->agency);
                goto done;
            }
        snprintf(field, sizeof field, "award.funders[%zu].amount_ore", i);
        if (s_check_amount(field, f->amount_ore, 1, reply)) goto done;
        if (__builtin_add_overflow(sum, f->amount_ore, &sum)) {
            sam_reply_error(reply, SAM_BAD_REQUEST, "award.funders: the shares overflow");
            goto done;
        }
        f->paid_ore = f->cancelled_ore = f->repaid_ore = 0;
    }
    a->funders = sharep;
    if (sum != a->amount_ore) {
        sam_reply_error(reply, SAM_UNPROCESSABLE,
                        "award.funders: the shares sum to %s, the award is %s",
                        s_money(sum, m1, sizeof m1), s_money(a->amount_ore, m2, sizeof m2));
        goto done;
    }
    grants_key_t k = {0};
    grants_key_raw(&k, a->id);
    if (grants_has(g, txn, GRANTS_T_AWARDS, &k)) {
        sam_reply_error(reply, SAM_CONFLICT, "award.id: award '%s' exists already", a->id);
        goto done;
    }
    char budget[GRANTS_ACCOUNT_LEN], approp[GRANTS_ACCOUNT_LEN], acc[GRANTS_ACCOUNT_LEN];
    grants_account_budget(budget, s->id);
    grants_account_appropriation(approp, s->id);
    int64_t left = grants_balance(g, txn, budget);
    grants_entry_t e = {0};
    if (a->amount_ore > left) {
        if (s->has_frame) {
            sam_reply_error(reply, SAM_UNPROCESSABLE,
                            "award.amount_ore: %s exceeds the frame of scheme '%s': %s left",
                            s_money(a->amount_ore, m1, sizeof m1), s->id,
                            s_money(left, m2, sizeof m2));
            goto done;
        }
        /* No frame: the scheme draws what the award needs from its appropriation. */
        grants_entry_move(&e, budget, approp, a->amount_ore - left);
    }
    for (size_t i = 0; i < a->n_funders; i++) {
        grants_account_committed(acc, a->id, a->funders[i]->agency);
        grants_entry_move(&e, acc, budget, a->funders[i]->amount_ore);
    }
    a->status = SAMORDNA__V1__AWARD_STATUS__AWARD_STATUS_OPEN;
    a->year = s->year;
    a->currency = "NOK";
    if (__builtin_add_overflow(s->committed_ore, a->amount_ore, &s->committed_ore)) {
        sam_reply_error(reply, SAM_UNPROCESSABLE, "award.amount_ore: scheme total overflows");
        goto done;
    }
    rc = s_post(g, txn, ev, &e, reply);
    if (!rc) rc = s_put_award(g, txn, a);
    if (!rc) rc = s_award_indexes(g, txn, a);
    if (!rc) rc = s_put_scheme(g, txn, s);
done:
    if (s) protobuf_c_message_free_unpacked(&s->base, NULL);
    return rc;
}

/* ---- payments: disbursement, repayment, cancellation -------------------------------------- */

/*  Spreads `amount` over n funders in proportion to cap[i] (amount ≤ Σcap), in whole øre:
    the floor of each proportional part, then the remaining øre one funder at a time in
    order, never above a funder's cap. */
static void s_split(int64_t amount, const int64_t *cap, size_t n, int64_t *out)
{
    __int128 total = 0;
    for (size_t i = 0; i < n; i++)
        total += cap[i];
    int64_t given = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = total ? (int64_t)((__int128)amount * cap[i] / total) : 0;
        given += out[i];
    }
    int64_t rest = amount - given;
    for (size_t i = 0; i < n && rest > 0; i++) {
        int64_t room = cap[i] - out[i];
        int64_t add = room < rest ? room : rest;
        out[i] += add;
        rest -= add;
    }
}

static int64_t s_unpaid(const Samordna__V1__FunderShare *f)
{
    return f->amount_ore - f->paid_ore - f->cancelled_ore;
}

static const char *s_kind_name(Samordna__V1__PaymentKind kind)
{
    switch (kind) {
    case SAMORDNA__V1__PAYMENT_KIND__PAYMENT_KIND_DISBURSEMENT:
        return "disbursement";
    case SAMORDNA__V1__PAYMENT_KIND__PAYMENT_KIND_REPAYMENT:
        return "repayment";
    default:
        return "cancellation";
    }
}

/*  The award a payment (or its correction) is on, and its scheme: 0 with *a and *s set (the
    caller frees them), or -1 with the refusal in reply — 404 an unknown award, 403 a
    publisher who neither owns the scheme nor funds the award. `field` names the award's
    field in the refusal. */
static int s_award_to_pay(grants_t *g, MDB_txn *txn, const sam_event_t *ev, const char *field,
                          const char *award, Samordna__V1__Award **a, Samordna__V1__Scheme **s,
                          sam_reply_t *reply)
{
    if (!(*a = grants_award_get(g, txn, award)))
        return sam_reply_error(reply, SAM_NOT_FOUND, "%s: unknown award '%s'", field, award);
    if (!(*s = grants_scheme_get(g, txn, (*a)->scheme)))
        return sam_reply_error(reply, SAM_INTERNAL, "award '%s' names scheme '%s' which is missing",
                               (*a)->id, (*a)->scheme);
    bool allowed = s_admin(ev) || strcmp(ev->ce->source, (*s)->owner) == 0;
    for (size_t i = 0; !allowed && i < (*a)->n_funders; i++)
        allowed = strcmp(ev->ce->source, (*a)->funders[i]->agency) == 0;
    if (!allowed)
        return sam_reply_error(reply, SAM_FORBIDDEN,
                               "%s: '%s' is neither the owner of scheme '%s' nor a funder of "
                               "award '%s'",
                               field, ev->ce->source, (*s)->id, (*a)->id);
    return 0;
}

/*  A cancelled award has no report due any more: its entry leaves the deadlines index, so
    grants.deadlines (and notify's reminders) stop naming it. A completed award keeps its
    deadline: the money was paid and is reported on. */
static int s_drop_deadline(grants_t *g, MDB_txn *txn, const Samordna__V1__Award *a)
{
    if (!a->report_due[0]) return 0;
    grants_key_t k = {0};
    grants_key_str(&k, a->report_due);
    grants_key_raw(&k, a->id);
    return grants_del(g, txn, GRANTS_T_DEADLINES, &k);
}

static int s_apply_payment(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                           sam_reply_t *reply, Samordna__V1__PaymentKind kind)
{
    grants_t *g = sam_service_ctx(svc);
    /* The record stored: the payload's top level, completed below with this frame's memory. */
    Samordna__V1__Payment copy = *(const Samordna__V1__Payment *)ev->msg, *p = &copy;
    const char *what = s_kind_name(kind);
    Samordna__V1__Award *a = NULL;
    Samordna__V1__Scheme *s = NULL;
    Samordna__V1__FunderAmount split[GRANTS_MAX_FUNDERS], *splitp[GRANTS_MAX_FUNDERS];
    int rc = -1;
    char f_id[48], f_award[48], f_amount[48], f_date[48], m1[64], m2[64];
    snprintf(f_id, sizeof f_id, "%s.id", what);
    snprintf(f_award, sizeof f_award, "%s.award", what);
    snprintf(f_amount, sizeof f_amount, "%s.amount_ore", what);
    snprintf(f_date, sizeof f_date, "%s.date", what);
    if (s_check_id(f_id, p->id, reply) || s_check_id(f_award, p->award, reply) ||
        s_check_date(f_date, p->date, reply) || s_check_amount(f_amount, p->amount_ore, 0, reply) ||
        s_check_text("note", p->note, GRANTS_MAX_TEXT, false, reply) ||
        s_check_currency(p->currency, reply))
        goto done;
    /* A payment without a date is dated the day it is stored, in the programme's zone (the
       batch's clock, sam_clock.h): never left empty. */
    char today[11];
    if (!p->date[0]) {
        sam_clock_date_of(ev->now_ms, today);
        p->date = today;
    }
    bool cancel_all =
        kind == SAMORDNA__V1__PAYMENT_KIND__PAYMENT_KIND_CANCELLATION && p->amount_ore == 0;
    if (p->amount_ore == 0 && !cancel_all) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "%s: %lld øre — a %s must be more than zero",
                        f_amount, (long long)p->amount_ore, what);
        goto done;
    }
    if (p->final && kind != SAMORDNA__V1__PAYMENT_KIND__PAYMENT_KIND_DISBURSEMENT) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "final: only a disbursement can be final");
        goto done;
    }
    if (s_award_to_pay(g, txn, ev, f_award, p->award, &a, &s, reply)) goto done;
    grants_key_t pk = {0};
    grants_key_str(&pk, a->id);
    grants_key_raw(&pk, p->id);
    if (grants_has(g, txn, GRANTS_T_PAYMENTS, &pk)) {
        sam_reply_error(reply, SAM_CONFLICT, "%s: '%s' exists already on award '%s'", f_id, p->id,
                        a->id);
        goto done;
    }
    size_t n = a->n_funders;
    int64_t cap[GRANTS_MAX_FUNDERS], part[GRANTS_MAX_FUNDERS], room = 0;
    if (n == 0 || n > GRANTS_MAX_FUNDERS) {
        sam_reply_error(reply, SAM_INTERNAL, "award '%s' has %zu funders", a->id, n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const Samordna__V1__FunderShare *f = a->funders[i];
        cap[i] = kind == SAMORDNA__V1__PAYMENT_KIND__PAYMENT_KIND_REPAYMENT
                     ? f->paid_ore - f->repaid_ore
                     : s_unpaid(f);
        room += cap[i];
    }
    if (kind != SAMORDNA__V1__PAYMENT_KIND__PAYMENT_KIND_REPAYMENT &&
        a->status != SAMORDNA__V1__AWARD_STATUS__AWARD_STATUS_OPEN) {
        sam_reply_error(reply, SAM_CONFLICT,
                        "%s: award '%s' is %s; nothing more is paid or "
                        "cancelled",
                        f_award, a->id,
                        a->status == SAMORDNA__V1__AWARD_STATUS__AWARD_STATUS_CANCELLED
                            ? "cancelled"
                            : "completed");
        goto done;
    }
    if (cancel_all) p->amount_ore = room;
    if (p->amount_ore > room || room == 0) {
        if (kind == SAMORDNA__V1__PAYMENT_KIND__PAYMENT_KIND_REPAYMENT)
            sam_reply_error(reply, SAM_UNPROCESSABLE,
                            "%s: %s is more than what was paid on award '%s' and not repaid "
                            "(%s)",
                            f_amount, s_money(p->amount_ore, m1, sizeof m1), a->id,
                            s_money(room, m2, sizeof m2));
        else
            sam_reply_error(reply, SAM_UNPROCESSABLE,
                            "%s: %s is more than what is awarded on '%s' and not yet paid (%s)",
                            f_amount, s_money(p->amount_ore, m1, sizeof m1), a->id,
                            s_money(room, m2, sizeof m2));
        goto done;
    }
    s_split(p->amount_ore, cap, n, part);

    char budget[GRANTS_ACCOUNT_LEN], committed[GRANTS_ACCOUNT_LEN], paid[GRANTS_ACCOUNT_LEN];
    grants_account_budget(budget, s->id);
    grants_entry_t e = {0};
    int64_t released = 0; /* what goes back to the scheme's budget (committed total falls) */
    int64_t paid_delta = 0;
    for (size_t i = 0; i < n; i++) {
        Samordna__V1__FunderShare *f = a->funders[i];
        grants_account_committed(committed, a->id, f->agency);
        grants_account_paid(paid, a->id, f->agency);
        switch (kind) {
        case SAMORDNA__V1__PAYMENT_KIND__PAYMENT_KIND_DISBURSEMENT:
            grants_entry_move(&e, paid, committed, part[i]);
            f->paid_ore += part[i];
            paid_delta += part[i];
            if (p->final) {
                int64_t rest = s_unpaid(f);
                grants_entry_move(&e, budget, committed, rest);
                f->cancelled_ore += rest;
                released += rest;
            }
            break;
        case SAMORDNA__V1__PAYMENT_KIND__PAYMENT_KIND_REPAYMENT:
            grants_entry_move(&e, budget, paid, part[i]);
            f->repaid_ore += part[i];
            released += part[i];
            paid_delta -= part[i];
            break;
        default:
            grants_entry_move(&e, budget, committed, part[i]);
            f->cancelled_ore += part[i];
            released += part[i];
            break;
        }
        samordna__v1__funder_amount__init(&split[i]);
        split[i].agency = f->agency;
        split[i].amount_ore = part[i];
        splitp[i] = &split[i];
    }
    int64_t unpaid_left = 0;
    for (size_t i = 0; i < n; i++)
        unpaid_left += s_unpaid(a->funders[i]);
    if (kind != SAMORDNA__V1__PAYMENT_KIND__PAYMENT_KIND_REPAYMENT && unpaid_left == 0)
        a->status = kind == SAMORDNA__V1__PAYMENT_KIND__PAYMENT_KIND_CANCELLATION
                        ? SAMORDNA__V1__AWARD_STATUS__AWARD_STATUS_CANCELLED
                        : SAMORDNA__V1__AWARD_STATUS__AWARD_STATUS_COMPLETED;
    s->committed_ore -= released;
    if (__builtin_add_overflow(s->paid_ore, paid_delta, &s->paid_ore)) {
        sam_reply_error(reply, SAM_UNPROCESSABLE, "%s: scheme total overflows", f_amount);
        goto done;
    }
    p->kind = kind;
    p->n_split = n;
    p->split = splitp;
    p->currency = "NOK";
    rc = s_post(g, txn, ev, &e, reply);
    if (!rc) rc = grants_put(g, txn, GRANTS_T_PAYMENTS, &pk, &p->base);
    if (!rc) rc = s_put_award(g, txn, a);
    if (!rc) rc = s_put_scheme(g, txn, s);
    if (!rc && a->status == SAMORDNA__V1__AWARD_STATUS__AWARD_STATUS_CANCELLED)
        rc = s_drop_deadline(g, txn, a);
done:
    if (a) protobuf_c_message_free_unpacked(&a->base, NULL);
    if (s) protobuf_c_message_free_unpacked(&s->base, NULL);
    return rc;
}

/* The three payment events are one handler with their kind. */
#define S_PAYMENT_EVENT(name, kind)                                                                \
    int grants_apply_##name(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,               \
                            sam_reply_t *reply)                                                    \
    {                                                                                              \
        return s_apply_payment(svc, txn, ev, reply,                                                \
                               SAMORDNA__V1__PAYMENT_KIND__PAYMENT_KIND_##kind);                   \
    }
S_PAYMENT_EVENT(disbursement, DISBURSEMENT)
S_PAYMENT_EVENT(repayment, REPAYMENT)
S_PAYMENT_EVENT(cancellation, CANCELLATION)
#undef S_PAYMENT_EVENT

/*  The fields an instrument and a need share, as "<what>.<field>": id, title, description,
    year, the agency (an instrument's; NULL for a need), municipality and pilot. */
static int s_check_local(grants_t *g, MDB_txn *txn, const char *what, const char *id,
                         const char *title, const char *description, uint32_t year,
                         const char *agency, const char *municipality, const char *pilot,
                         sam_reply_t *reply)
{
    char f[7][48];
    static const char *const names[] = {"id",     "title",        "description", "year",
                                        "agency", "municipality", "pilot"};
    for (size_t i = 0; i < 7; i++)
        snprintf(f[i], sizeof f[i], "%s.%s", what, names[i]);
    if (s_check_id(f[0], id, reply) || s_check_text(f[1], title, GRANTS_MAX_NAME, true, reply) ||
        s_check_text(f[2], description, GRANTS_MAX_TEXT, false, reply) ||
        s_check_year(f[3], year, reply) ||
        (agency && s_check_agency(g, txn, f[4], agency, reply)) ||
        s_check_municipality(g, txn, f[5], municipality, reply) ||
        s_check_pilot(g, txn, f[6], pilot, reply))
        return -1;
    return 0;
}

/* ---- no.samordna.grants.disbursement.corrected ------------------------------------------- */

/*  PaymentCorrection: the disbursement `corrects` reversed and the right amount paid, in one
    journal entry (paid/A/F → committed/A/F by the original's split, then committed → paid by
    the new split over what each funder has unpaid). A final disbursement (which released the
    rest of the award) and the payments of a cancelled award are not corrected this way. */
int grants_apply_disbursement_corrected(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                                        sam_reply_t *reply)
{
    grants_t *g = sam_service_ctx(svc);
    const Samordna__V1__PaymentCorrection *pc = (const Samordna__V1__PaymentCorrection *)ev->msg;
    Samordna__V1__Award *a = NULL;
    Samordna__V1__Scheme *s = NULL;
    Samordna__V1__Payment *orig = NULL;
    Samordna__V1__FunderAmount split[GRANTS_MAX_FUNDERS], *splitp[GRANTS_MAX_FUNDERS];
    int rc = -1;
    char m1[64], m2[64];
    if (s_check_id("correction.award", pc->award, reply) ||
        s_check_id("correction.id", pc->id, reply) ||
        s_check_id("correction.corrects", pc->corrects, reply) ||
        s_check_date("correction.date", pc->date, reply) ||
        s_check_amount("correction.amount_ore", pc->amount_ore, 0, reply) ||
        s_check_text("correction.reason", pc->reason, GRANTS_MAX_TEXT, true, reply))
        goto done;
    if (s_award_to_pay(g, txn, ev, "correction.award", pc->award, &a, &s, reply)) goto done;
    grants_key_t ok = {0}, nk = {0};
    grants_key_str(&ok, a->id);
    grants_key_raw(&ok, pc->corrects);
    grants_key_str(&nk, a->id);
    grants_key_raw(&nk, pc->id);
    ProtobufCMessage *got = NULL;
    if (grants_get(g, txn, GRANTS_T_PAYMENTS, &ok, &samordna__v1__payment__descriptor, &got)) {
        sam_reply_error(reply, SAM_NOT_FOUND, "correction.corrects: award '%s' has no payment '%s'",
                        a->id, pc->corrects);
        goto done;
    }
    orig = (Samordna__V1__Payment *)got;
    if (orig->kind != SAMORDNA__V1__PAYMENT_KIND__PAYMENT_KIND_DISBURSEMENT) {
        sam_reply_error(reply, SAM_CONFLICT,
                        "correction.corrects: '%s' is a %s, not a disbursement (a repayment or "
                        "cancellation is not corrected by a reversing entry)",
                        orig->id, s_kind_name(orig->kind));
        goto done;
    }
    if (orig->corrected_by[0]) {
        sam_reply_error(reply, SAM_CONFLICT,
                        "correction.corrects: '%s' was corrected already by '%s'; correct that "
                        "one",
                        orig->id, orig->corrected_by);
        goto done;
    }
    if (orig->final || a->status == SAMORDNA__V1__AWARD_STATUS__AWARD_STATUS_CANCELLED) {
        sam_reply_error(reply, SAM_CONFLICT,
                        "correction.corrects: '%s' %s; it is not corrected by a reversing entry "
                        "(repay or amend the award instead)",
                        orig->id,
                        orig->final ? "was final and released the rest of the award"
                                    : "belongs to a cancelled award");
        goto done;
    }
    if (grants_has(g, txn, GRANTS_T_PAYMENTS, &nk)) {
        sam_reply_error(reply, SAM_CONFLICT, "correction.id: '%s' exists already on award '%s'",
                        pc->id, a->id);
        goto done;
    }
    size_t n = a->n_funders;
    if (n == 0 || n > GRANTS_MAX_FUNDERS) {
        sam_reply_error(reply, SAM_INTERNAL, "award '%s' has %zu funders", a->id, n);
        goto done;
    }
    /* the reversal: each funder's part of the original back to committed */
    char committed[GRANTS_ACCOUNT_LEN], paid[GRANTS_ACCOUNT_LEN];
    grants_entry_t e = {0};
    int64_t cap[GRANTS_MAX_FUNDERS], part[GRANTS_MAX_FUNDERS], room = 0, back = 0;
    for (size_t i = 0; i < n; i++) {
        Samordna__V1__FunderShare *f = a->funders[i];
        int64_t was = 0;
        for (size_t j = 0; j < orig->n_split; j++)
            if (strcmp(orig->split[j]->agency, f->agency) == 0) was = orig->split[j]->amount_ore;
        grants_account_committed(committed, a->id, f->agency);
        grants_account_paid(paid, a->id, f->agency);
        if (was) grants_entry_move(&e, committed, paid, was);
        f->paid_ore -= was;
        back += was;
        cap[i] = s_unpaid(f);
        room += cap[i];
    }
    if (pc->amount_ore > room) {
        sam_reply_error(reply, SAM_UNPROCESSABLE,
                        "correction.amount_ore: %s is more than what is awarded on '%s' and not "
                        "paid once '%s' is taken back (%s)",
                        s_money(pc->amount_ore, m1, sizeof m1), a->id, orig->id,
                        s_money(room, m2, sizeof m2));
        goto done;
    }
    s_split(pc->amount_ore, cap, n, part);
    for (size_t i = 0; i < n; i++) {
        Samordna__V1__FunderShare *f = a->funders[i];
        grants_account_committed(committed, a->id, f->agency);
        grants_account_paid(paid, a->id, f->agency);
        if (part[i]) grants_entry_move(&e, paid, committed, part[i]);
        f->paid_ore += part[i];
        if (f->paid_ore < f->repaid_ore) {
            sam_reply_error(reply, SAM_UNPROCESSABLE,
                            "correction.amount_ore: %s would have been paid less than it was "
                            "repaid on '%s'",
                            f->agency, a->id);
            goto done;
        }
        samordna__v1__funder_amount__init(&split[i]);
        split[i].agency = f->agency;
        split[i].amount_ore = part[i];
        splitp[i] = &split[i];
    }
    int64_t unpaid_left = 0;
    for (size_t i = 0; i < n; i++)
        unpaid_left += s_unpaid(a->funders[i]);
    a->status = unpaid_left == 0 ? SAMORDNA__V1__AWARD_STATUS__AWARD_STATUS_COMPLETED
                                 : SAMORDNA__V1__AWARD_STATUS__AWARD_STATUS_OPEN;
    s->paid_ore += pc->amount_ore - back;
    Samordna__V1__Payment fix = SAMORDNA__V1__PAYMENT__INIT;
    fix.id = pc->id;
    fix.award = a->id;
    fix.kind = SAMORDNA__V1__PAYMENT_KIND__PAYMENT_KIND_DISBURSEMENT;
    fix.amount_ore = pc->amount_ore;
    fix.currency = "NOK";
    fix.date = pc->date[0] ? pc->date : orig->date;
    fix.note = pc->reason;
    fix.split = splitp;
    fix.n_split = n;
    fix.corrects = orig->id;
    Samordna__V1__Payment marked = *orig;
    marked.corrected_by = pc->id;
    rc = s_post(g, txn, ev, &e, reply);
    if (!rc) rc = grants_put(g, txn, GRANTS_T_PAYMENTS, &nk, &fix.base);
    if (!rc) rc = grants_put(g, txn, GRANTS_T_PAYMENTS, &ok, &marked.base);
    if (!rc) rc = s_put_award(g, txn, a);
    if (!rc) rc = s_put_scheme(g, txn, s);
done:
    if (orig) protobuf_c_message_free_unpacked(&orig->base, NULL);
    if (a) protobuf_c_message_free_unpacked(&a->base, NULL);
    if (s) protobuf_c_message_free_unpacked(&s->base, NULL);
    return rc;
}

/* ---- no.samordna.grants.award.amended ----------------------------------------------------- */

/* The index entries of one funder of an award (by recipient, by year): put or deleted. */
static int s_funder_index(grants_t *g, MDB_txn *txn, const Samordna__V1__Award *a,
                          const char *funder, bool put)
{
    grants_key_t k1 = {0}, k2 = {0};
    grants_key_str(&k1, a->recipient);
    grants_key_be32(&k1, a->year);
    grants_key_str(&k1, funder);
    grants_key_raw(&k1, a->id);
    grants_key_be32(&k2, a->year);
    grants_key_str(&k2, a->recipient);
    grants_key_str(&k2, funder);
    grants_key_raw(&k2, a->id);
    int rc = put ? grants_put_empty(g, txn, GRANTS_T_BY_RECIPIENT, &k1)
                 : grants_del(g, txn, GRANTS_T_BY_RECIPIENT, &k1);
    if (!rc)
        rc = put ? grants_put_empty(g, txn, GRANTS_T_BY_YEAR, &k2)
                 : grants_del(g, txn, GRANTS_T_BY_YEAR, &k2);
    return rc;
}

static const Samordna__V1__FunderShare *s_share_of(const Samordna__V1__Award *a, const char *agency)
{
    for (size_t i = 0; i < a->n_funders; i++)
        if (strcmp(a->funders[i]->agency, agency) == 0) return a->funders[i];
    return NULL;
}

/*  AwardAmendment: the award takes the new amount, shares, purpose, report deadline or
    decision date. Each funder's share moves by its difference: more is committed from the
    scheme's budget (within the frame; a scheme without one draws it from its
    appropriation), less is released to it — never below what the funder has paid and
    cancelled. A funder left out leaves the award when nothing of its share was paid or
    cancelled. One journal entry holds the postings. */
int grants_apply_award_amended(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                               sam_reply_t *reply)
{
    grants_t *g = sam_service_ctx(svc);
    const Samordna__V1__AwardAmendment *am = (const Samordna__V1__AwardAmendment *)ev->msg;
    Samordna__V1__Award *a = NULL;
    Samordna__V1__Scheme *s = NULL;
    Samordna__V1__FunderShare shares[GRANTS_MAX_FUNDERS], *sharep[GRANTS_MAX_FUNDERS];
    int rc = -1;
    char m1[64], m2[64], field[64];
    if (s_check_id("amendment.award", am->award, reply) ||
        s_check_text("amendment.reason", am->reason, GRANTS_MAX_TEXT, true, reply) ||
        s_check_text("amendment.purpose", am->purpose, GRANTS_MAX_TEXT, false, reply) ||
        s_check_date("amendment.report_due", am->report_due, reply) ||
        s_check_date("amendment.decided", am->decided, reply) ||
        s_check_amount("amendment.amount_ore", am->amount_ore, 0, reply))
        goto done;
    if (!am->amount_ore && !am->n_funders && !am->purpose[0] && !am->report_due[0] &&
        !am->decided[0]) {
        sam_reply_error(reply, SAM_BAD_REQUEST,
                        "amendment: nothing to amend; give amount_ore, funders, purpose, "
                        "report_due or decided");
        goto done;
    }
    if (am->n_funders > GRANTS_MAX_FUNDERS) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "amendment.funders: %zu funders, at most %d",
                        am->n_funders, GRANTS_MAX_FUNDERS);
        goto done;
    }
    a = grants_award_get(g, txn, am->award);
    if (!a) {
        sam_reply_error(reply, SAM_NOT_FOUND, "amendment.award: unknown award '%s'", am->award);
        goto done;
    }
    s = grants_scheme_get(g, txn, a->scheme);
    if (!s) {
        sam_reply_error(reply, SAM_INTERNAL, "award '%s' names scheme '%s' which is missing", a->id,
                        a->scheme);
        goto done;
    }
    if (!s_admin(ev) && strcmp(ev->ce->source, s->owner) != 0) {
        sam_reply_error(reply, SAM_FORBIDDEN,
                        "amendment.award: '%s' may not amend award '%s' of scheme '%s' owned by "
                        "'%s'",
                        ev->ce->source, a->id, s->id, s->owner);
        goto done;
    }
    if (a->status != SAMORDNA__V1__AWARD_STATUS__AWARD_STATUS_OPEN) {
        sam_reply_error(reply, SAM_CONFLICT,
                        "amendment.award: award '%s' is %s; only an open "
                        "award is amended",
                        a->id,
                        a->status == SAMORDNA__V1__AWARD_STATUS__AWARD_STATUS_CANCELLED
                            ? "cancelled"
                            : "completed");
        goto done;
    }
    int64_t amount = am->amount_ore ? am->amount_ore : a->amount_ore;
    /* The new shares: as given, or one funder's following the amount, or as they are. */
    size_t n = am->n_funders ? am->n_funders : a->n_funders;
    if (n == 0 || n > GRANTS_MAX_FUNDERS) {
        sam_reply_error(reply, SAM_INTERNAL, "award '%s' has %zu funders", a->id, n);
        goto done;
    }
    if (!am->n_funders && a->n_funders > 1 && amount != a->amount_ore) {
        sam_reply_error(reply, SAM_UNPROCESSABLE,
                        "amendment.funders: award '%s' is joint (%zu funders); a new amount needs "
                        "each funder's new share",
                        a->id, a->n_funders);
        goto done;
    }
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        const Samordna__V1__FunderShare *old;
        if (am->n_funders) {
            const Samordna__V1__FunderShare *given = am->funders[i];
            snprintf(field, sizeof field, "amendment.funders[%zu].agency", i);
            if (s_check_agency(g, txn, field, given->agency, reply)) goto done;
            for (size_t j = 0; j < i; j++)
                if (strcmp(am->funders[j]->agency, given->agency) == 0) {
                    sam_reply_error(reply, SAM_BAD_REQUEST, "%s: '%s' is named twice", field,
                                    given->agency);
                    goto done;
                }
            snprintf(field, sizeof field, "amendment.funders[%zu].amount_ore", i);
            if (s_check_amount(field, given->amount_ore, 1, reply)) goto done;
            old = s_share_of(a, given->agency);
            if (old)
                shares[i] = *old;
            else {
                samordna__v1__funder_share__init(&shares[i]);
                shares[i].agency = given->agency;
            }
            shares[i].amount_ore = given->amount_ore;
        } else {
            old = a->funders[i];
            shares[i] = *old;
            if (a->n_funders == 1) shares[i].amount_ore = amount;
        }
        const Samordna__V1__FunderShare *f = &shares[i];
        int64_t used = f->paid_ore + f->cancelled_ore;
        if (f->amount_ore < used) {
            sam_reply_error(reply, SAM_UNPROCESSABLE,
                            "amendment.funders: %s's share of %s is less than it has paid and "
                            "cancelled (%s)",
                            f->agency, s_money(f->amount_ore, m1, sizeof m1),
                            s_money(used, m2, sizeof m2));
            goto done;
        }
        if (__builtin_add_overflow(sum, f->amount_ore, &sum)) {
            sam_reply_error(reply, SAM_BAD_REQUEST, "amendment.funders: the shares overflow");
            goto done;
        }
        sharep[i] = &shares[i];
    }
    if (sum != amount) {
        sam_reply_error(reply, SAM_UNPROCESSABLE,
                        "amendment.funders: the shares sum to %s, the award is %s",
                        s_money(sum, m1, sizeof m1), s_money(amount, m2, sizeof m2));
        goto done;
    }
    /* A funder left out: only when nothing of its share has moved. */
    for (size_t i = 0; i < a->n_funders; i++) {
        const Samordna__V1__FunderShare *f = a->funders[i];
        bool kept = false;
        for (size_t j = 0; j < n && !kept; j++)
            kept = strcmp(sharep[j]->agency, f->agency) == 0;
        if (!kept && (f->paid_ore || f->cancelled_ore || f->repaid_ore)) {
            sam_reply_error(reply, SAM_UNPROCESSABLE,
                            "amendment.funders: %s has paid or cancelled part of its share and "
                            "stays a funder; name it with the share it keeps",
                            f->agency);
            goto done;
        }
    }
    /* The postings: each funder's difference between budget and committed. */
    char budget[GRANTS_ACCOUNT_LEN], approp[GRANTS_ACCOUNT_LEN], acc[GRANTS_ACCOUNT_LEN];
    grants_account_budget(budget, s->id);
    grants_account_appropriation(approp, s->id);
    grants_entry_t e = {0};
    int64_t net = amount - a->amount_ore, left = grants_balance(g, txn, budget);
    if (net > left) {
        if (s->has_frame) {
            sam_reply_error(reply, SAM_UNPROCESSABLE,
                            "amendment.amount_ore: %s more exceeds the frame of scheme '%s': %s "
                            "left",
                            s_money(net, m1, sizeof m1), s->id, s_money(left, m2, sizeof m2));
            goto done;
        }
        grants_entry_move(&e, budget, approp, net - left);
    }
    for (size_t i = 0; i < n; i++) {
        const Samordna__V1__FunderShare *old = s_share_of(a, sharep[i]->agency);
        int64_t delta = sharep[i]->amount_ore - (old ? old->amount_ore : 0);
        grants_account_committed(acc, a->id, sharep[i]->agency);
        if (delta > 0) grants_entry_move(&e, acc, budget, delta);
        if (delta < 0) grants_entry_move(&e, budget, acc, -delta);
    }
    for (size_t i = 0; i < a->n_funders; i++) {
        const Samordna__V1__FunderShare *f = a->funders[i];
        bool kept = false;
        for (size_t j = 0; j < n && !kept; j++)
            kept = strcmp(sharep[j]->agency, f->agency) == 0;
        if (kept) continue;
        grants_account_committed(acc, a->id, f->agency);
        grants_entry_move(&e, budget, acc, f->amount_ore);
        if ((rc = s_funder_index(g, txn, a, f->agency, false))) goto done;
        rc = -1;
    }
    if (__builtin_add_overflow(s->committed_ore, net, &s->committed_ore)) {
        sam_reply_error(reply, SAM_UNPROCESSABLE, "amendment.amount_ore: scheme total overflows");
        goto done;
    }
    /* The record: old deadline entry out, the new values in, the new funders indexed. */
    if (am->report_due[0] && (rc = s_drop_deadline(g, txn, a))) goto done;
    Samordna__V1__FunderShare **old_funders = a->funders;
    size_t old_n = a->n_funders;
    char *old_purpose = a->purpose, *old_due = a->report_due, *old_decided = a->decided;
    a->amount_ore = amount;
    a->funders = sharep;
    a->n_funders = n;
    if (am->purpose[0]) a->purpose = am->purpose;
    if (am->report_due[0]) a->report_due = am->report_due;
    if (am->decided[0]) a->decided = am->decided;
    rc = s_post(g, txn, ev, &e, reply);
    for (size_t i = 0; !rc && i < n; i++) {
        bool was = false;
        for (size_t j = 0; j < old_n && !was; j++)
            was = strcmp(old_funders[j]->agency, sharep[i]->agency) == 0;
        if (!was) rc = s_funder_index(g, txn, a, sharep[i]->agency, true);
    }
    if (!rc && am->report_due[0]) {
        grants_key_t k = {0};
        grants_key_str(&k, a->report_due);
        grants_key_raw(&k, a->id);
        rc = grants_put_empty(g, txn, GRANTS_T_DEADLINES, &k);
    }
    if (!rc) rc = s_put_award(g, txn, a);
    if (!rc) rc = s_put_scheme(g, txn, s);
    /* The unpacked award frees what it allocated, not the borrowed values. */
    a->funders = old_funders;
    a->n_funders = old_n;
    a->purpose = old_purpose;
    a->report_due = old_due;
    a->decided = old_decided;
done:
    if (a) protobuf_c_message_free_unpacked(&a->base, NULL);
    if (s) protobuf_c_message_free_unpacked(&s->base, NULL);
    return rc;
}

/* ---- no.samordna.grants.instrument.registered --------------------------------------------- */

int grants_apply_instrument(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                            sam_reply_t *reply)
{
    grants_t *g = sam_service_ctx(svc);
    const Samordna__V1__Instrument *in = (const Samordna__V1__Instrument *)ev->msg;
    int rc = -1;
    if (s_check_local(g, txn, "instrument", in->id, in->title, in->description, in->year,
                      in->agency, in->municipality, in->pilot, reply))
        goto done;
    if (in->kind < SAMORDNA__V1__INSTRUMENT_KIND__INSTRUMENT_KIND_PROJECT ||
        in->kind > SAMORDNA__V1__INSTRUMENT_KIND__INSTRUMENT_KIND_OTHER) {
        sam_reply_error(reply, SAM_BAD_REQUEST,
                        "instrument.kind: %d is not project, programme, advice, position or "
                        "other",
                        (int)in->kind);
        goto done;
    }
    if (s_check_amount("instrument.value_ore", in->value_ore, 0, reply)) goto done;
    if (s_acts_for(ev, "instrument.agency", "register an instrument of", in->agency, reply))
        goto done;
    grants_key_t k = {0};
    grants_key_raw(&k, in->id);
    if (grants_has(g, txn, GRANTS_T_INSTRUMENTS, &k)) {
        sam_reply_error(reply, SAM_CONFLICT, "instrument.id: instrument '%s' exists already",
                        in->id);
        goto done;
    }
    grants_key_t ik = {0};
    grants_key_str(&ik, in->municipality);
    grants_key_be32(&ik, in->year);
    grants_key_str(&ik, in->agency);
    grants_key_raw(&ik, in->id);
    rc = grants_put(g, txn, GRANTS_T_INSTRUMENTS, &k, &in->base);
    if (!rc) rc = grants_put_empty(g, txn, GRANTS_T_INSTR_BY_MUNI, &ik);
done:
    return rc;
}

/* ---- no.samordna.grants.need.recorded ----------------------------------------------------- */

int grants_apply_need(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev, sam_reply_t *reply)
{
    grants_t *g = sam_service_ctx(svc);
    const Samordna__V1__Need *nd = (const Samordna__V1__Need *)ev->msg;
    int rc = -1;
    if (s_check_local(g, txn, "need", nd->id, nd->title, nd->description, nd->year, NULL,
                      nd->municipality, nd->pilot, reply))
        goto done;
    if (s_acts_for(ev, "need.municipality", "record needs for", nd->municipality, reply)) goto done;
    grants_key_t k = {0};
    grants_key_str(&k, nd->municipality);
    grants_key_be32(&k, nd->year);
    grants_key_raw(&k, nd->id);
    if (grants_has(g, txn, GRANTS_T_NEEDS, &k)) {
        sam_reply_error(reply, SAM_CONFLICT, "need.id: need '%s' exists already for %s %u", nd->id,
                        nd->municipality, nd->year);
        goto done;
    }
    rc = grants_put(g, txn, GRANTS_T_NEEDS, &k, &nd->base);
done:
    return rc;
}
