/*  notify_briefing.c — the steering group's briefing: its schedule, its life cycle, its
    resending; and the reminders before award reporting deadlines.

    The schedule. The pilot owner briefs the steering group every briefing_interval_months
    of the programme (registry: the programme's period and interval; --programme picks one
    when there are several): the briefings are due on the period's first day plus one, two, …
    intervals, up to its last day. --briefing-dates MM-DD,… overrides that with the same days
    every year.

    The life cycle of one briefing, from the check every --schedule-interval-ms:
      due      on its date (or the first check after it) it is composed from the facts of its
               period as of the period's last day (notify_compose.c) and kept in the
               "briefings" table;
      held     while no subscription takes no.samordna.notify.briefing.issued, it waits
               (logged once: schedule.held) — it is not lost and not sent to nobody — and is
               composed again when a subscription comes, so that what is recorded late for
               its period (an import after the due day) is in it when it goes out;
      sent     as soon as a subscription takes it, its deliveries are queued, once, in the
               transaction that keeps it as sent: from then on it stays as it was.
               notify.briefings.list and .get show each one;
      resent   the event no.samordna.notify.briefing.resent {id} queues it again to every
               subscription as it is now (event id "<id>-resend-N").
    A briefing that could not be composed whole (a service did not answer) is composed
    again at the next five checks, and sent with its notes after that. Briefings
    due before notify's store was first opened are not sent after the fact.

    notify.briefing.preview composes the briefing due next after a day as of that day:
    what was recorded up to the day only, the barriers open on it.

    --reminder-days (default 60) before each reporting deadline that grants.deadlines lists,
    a no.samordna.notify.reminder.due (payload samordna.v1.Reminder, subject the recipient) is
    issued, once: its id goes into the "sent" table in the transaction that queues its
    deliveries. Its text says which award, how much, which deadline, to whom, in
    --briefing-lang.

    With several instances on one store only the holder of the lease "notify.schedule"
    composes and issues (notify_share.c), and the transaction that issues checks the lease
    too. Across hosts only the primary does (sam_service_is_primary); a standby learns what
    it issued (notify_replica.c).

    Dates are calendar dates in the programme's time zone (--time-zone, Europe/Oslo).
*/
#define _GNU_SOURCE /* asprintf */
#include "notify.h"
#include "sam_check.h"
#include "sam_words.h"
#include "sam_lease.h"

#include "samordna/v1/grants.pb-c.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- dates ------------------------------------------------------------------------------- */

typedef struct {
    int y, m, d;
} s_date_t;

static bool s_date_parse(const char *s, s_date_t *out)
{
    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-') return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) return false;
    out->y = atoi(s);
    out->m = atoi(s + 5);
    out->d = atoi(s + 8);
    static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (out->m < 1 || out->m > 12 || out->d < 1 || out->d > days[out->m - 1]) return false;
    bool leap = (out->y % 4 == 0 && out->y % 100 != 0) || out->y % 400 == 0;
    return !(out->m == 2 && out->d == 29 && !leap);
}

static void s_date_str(s_date_t d, char out[11])
{
    unsigned y = (unsigned)d.y % 10000u, m = (unsigned)d.m % 100u, dd = (unsigned)d.d % 100u;
    snprintf(out, 11, "%04u-%02u-%02u", y, m, dd);
}

static time_t s_date_time(s_date_t d)
{
    struct tm tm = {0};
    tm.tm_year = d.y - 1900;
    tm.tm_mon = d.m - 1;
    tm.tm_mday = d.d;
    tm.tm_hour = 12;
    return timegm(&tm);
}

static s_date_t s_date_of(time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    return (s_date_t){tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday};
}

static s_date_t s_add_days(s_date_t d, int days)
{
    return s_date_of(s_date_time(d) + (time_t)days * 86400);
}

static int s_cmp(s_date_t a, s_date_t b)
{
    return a.y != b.y ? a.y - b.y : a.m != b.m ? a.m - b.m : a.d - b.d;
}

/* Today in the programme's time zone. */
static s_date_t s_today(void)
{
    char d[11];
    s_date_t t = {0, 0, 0};
    sam_clock_today(d);
    sscanf(d, "%4d-%2d-%2d", &t.y, &t.m, &t.d);
    return t;
}

/* The briefing dates (month, day) of --briefing-dates, sorted; how many (0 when malformed). */
static size_t s_briefing_days(const char *list, int md[][2], size_t cap)
{
    size_t n = 0;
    for (const char *p = list; p && *p;) {
        /* 29 February is not offered: a briefing date must come every year */
        static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        int m, d;
        size_t len = strcspn(p, ",");
        if (len != 5 || p[2] != '-' || sscanf(p, "%2d-%2d", &m, &d) != 2 || m < 1 || m > 12 ||
            d < 1 || d > days[m - 1] || n == cap)
            return 0;
        md[n][0] = m;
        md[n][1] = d;
        n++;
        p += len;
        if (*p == ',') p++;
    }
    for (size_t i = 1; i < n; i++) /* insertion sort: a handful of dates */
        for (size_t j = i; j > 0 && (md[j][0] * 100 + md[j][1] < md[j - 1][0] * 100 + md[j - 1][1]);
             j--) {
            int t0 = md[j][0], t1 = md[j][1];
            md[j][0] = md[j - 1][0];
            md[j][1] = md[j - 1][1];
            md[j - 1][0] = t0;
            md[j - 1][1] = t1;
        }
    return n;
}

/* The briefing date at or before `day` (latest) or at or after it (next), and the one before
   that date. */
static void s_briefing_around(const int md[][2], size_t n, s_date_t day, bool next, s_date_t *due,
                              s_date_t *prev)
{
    if (n == 0) { /* no dates: the start refuses such options; a year back, to be defined */
        *due = day;
        *prev = (s_date_t){day.y - 1, day.m, day.d};
        return;
    }
    /* candidates over three years around `day`, in order */
    s_date_t all[3 * 16] = {{0, 0, 0}};
    size_t k = 0;
    for (int y = day.y - 1; y <= day.y + 1; y++)
        for (size_t i = 0; i < n && k < sizeof all / sizeof all[0]; i++)
            all[k++] = (s_date_t){y, md[i][0], md[i][1]};
    size_t at = 0;
    for (size_t i = 0; i < k; i++) {
        if (next) {
            if (s_cmp(all[i], day) >= 0) {
                at = i;
                break;
            }
        } else if (s_cmp(all[i], day) <= 0) {
            at = i;
        }
    }
    *due = all[at];
    *prev = at > 0 ? all[at - 1] : (s_date_t){all[at].y - 1, all[at].m, all[at].d};
}

/* The day `months` after d, clamped to the month's last day (31 August + 6 → 28 February). */
static s_date_t s_add_months(s_date_t d, int months)
{
    int idx = d.y * 12 + (d.m - 1) + months;
    s_date_t o = {idx / 12, idx % 12 + 1, d.d};
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int max = days[o.m - 1] + (o.m == 2 && ((o.y % 4 == 0 && o.y % 100 != 0) || o.y % 400 == 0));
    if (o.d > max) o.d = max;
    return o;
}

/*  The briefing due at or before `day` (latest) or at or after it (next), and the day its
    period starts (the previous due date, or the programme's first day). -1 when there is
    no schedule (no --briefing-dates and no programme known) or no such briefing. */
static int s_around(notify_t *n, s_date_t day, bool next, s_date_t *due, s_date_t *prev)
{
    if (*n->briefing_dates) {
        int md[16][2];
        size_t nd = s_briefing_days(n->briefing_dates, md, 16);
        if (!nd) return -1;
        s_briefing_around((const int(*)[2])md, nd, day, next, due, prev);
        return 0;
    }
    s_date_t from, to;
    if (!n->prog_known || !s_date_parse(n->prog_from, &from) || !s_date_parse(n->prog_to, &to))
        return -1;
    s_date_t before = from;
    for (int k = 1; k <= 1200; k++) {
        s_date_t d = s_add_months(from, k * (int)n->prog_months);
        if (s_cmp(d, to) > 0) break;
        if (next && s_cmp(d, day) >= 0) {
            *due = d, *prev = before;
            return 0;
        }
        if (!next && s_cmp(d, day) > 0) break;
        if (!next) *due = d, *prev = before;
        before = d;
    }
    return !next && s_cmp(before, from) != 0 ? 0 : -1;
}

/* ---- issuing ----------------------------------------------------------------------------- */

/* Queues the deliveries of one message of notify's own (ce id `id`) in txn w: how many, or -1
   on a store error. */
static int s_enqueue(notify_t *n, MDB_txn *w, const char *id, const char *type, const char *subject,
                     const ProtobufCMessage *payload)
{
    size_t len = protobuf_c_message_get_packed_size(payload);
    uint8_t *data = malloc(len ? len : 1);
    if (!data) return -1;
    protobuf_c_message_pack(payload, data);
    int64_t now = notify_now_ms();
    Io__Cloudevents__V1__CloudEvent ce = IO__CLOUDEVENTS__V1__CLOUD_EVENT__INIT;
    Io__Cloudevents__V1__CloudEvent__AttributesEntry a_subj =
        IO__CLOUDEVENTS__V1__CLOUD_EVENT__ATTRIBUTES_ENTRY__INIT;
    Io__Cloudevents__V1__CloudEvent__AttributesEntry a_ct =
        IO__CLOUDEVENTS__V1__CLOUD_EVENT__ATTRIBUTES_ENTRY__INIT;
    Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue v_subj =
        IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__INIT;
    Io__Cloudevents__V1__CloudEvent__CloudEventAttributeValue v_ct =
        IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__INIT;
    v_subj.attr_case =
        IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_STRING;
    v_subj.ce_string = (char *)subject;
    v_ct.attr_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__CLOUD_EVENT_ATTRIBUTE_VALUE__ATTR_CE_STRING;
    v_ct.ce_string = "application/protobuf";
    a_subj.key = "subject";
    a_subj.value = &v_subj;
    a_ct.key = "datacontenttype";
    a_ct.value = &v_ct;
    Io__Cloudevents__V1__CloudEvent__AttributesEntry *attrs[] = {&a_subj, &a_ct};
    ce.id = (char *)id;
    ce.source = (char *)n->briefing_from;
    ce.spec_version = "1.0";
    ce.type = (char *)type;
    ce.n_attributes = 2;
    ce.attributes = attrs;
    ce.data_case = IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_BINARY_DATA;
    ce.binary_data.data = data;
    ce.binary_data.len = len;
    int q = notify_enqueue_matches(n, w, "notify", 0, &ce, now, now);
    free(data);
    return q;
}

/* Issues a reminder once: false when it was issued before (or the store failed). */
static bool s_issue(notify_t *n, const char *id, const char *type, const char *subject,
                    const ProtobufCMessage *payload)
{
    MDB_txn *w;
    if (sam_store_begin(sam_service_store(n->svc), NULL, true, &w)) return false;
    if (sam_store_has(w, n->dbi.sent, id, strlen(id))) {
        mdb_txn_abort(w);
        return false;
    }
    if (!sam_service_is_primary(n->svc) ||
        !sam_lease_check(sam_service_lease(n->svc), w, NOTIFY_SCHEDULE_LEASE)) {
        mdb_txn_abort(w); /* the schedule moved to another instance, which issues it */
        sam_warn("schedule.not_holder id=%s", sam_logv(id));
        return false;
    }
    int q = s_enqueue(n, w, id, type, subject, payload);
    uint8_t when[8];
    sam_be64_put(when, (uint64_t)notify_now_ms());
    MDB_val k = {strlen(id), (void *)id}, v = {8, when};
    int rc = q < 0 ? SAM_STORE_CORRUPT : mdb_put(w, n->dbi.sent, &k, &v, 0);
    if (!rc)
        rc = mdb_txn_commit(w);
    else
        mdb_txn_abort(w);
    if (rc) {
        sam_error("schedule.issue_failed id=%s error=%s", sam_logv(id),
                  sam_logv(sam_store_strerror(rc)));
        return false;
    }
    n->next_deliver_scan_ms = 0;
    sam_info("schedule.issued id=%s type=%s deliveries=%d", sam_logv(id), sam_logv(type), q);
    return true;
}

/* ---- the briefings table ------------------------------------------------------------------- */

static Samordna__V1__BriefingRecord *s_record_get(notify_t *n, MDB_txn *txn, const char *id)
{
    ProtobufCMessage *m = NULL;
    int rc = sam_store_get_msg(txn, n->dbi.briefings, id, strlen(id),
                               &samordna__v1__briefing_record__descriptor, &m);
    return rc == 0 ? (Samordna__V1__BriefingRecord *)m : NULL;
}

static int s_record_put(notify_t *n, MDB_txn *w, const Samordna__V1__BriefingRecord *r)
{
    return sam_store_put_msg(w, n->dbi.briefings, r->briefing->id, strlen(r->briefing->id),
                             &r->base, 0);
}

/*  Keeps briefing b and, when a subscription takes it, queues its deliveries and marks it
    sent — one transaction. Returns its deliveries, 0 when it is held (kept, nobody takes it
    yet), or -1 on a store error (logged). A briefing sent already is left as it is (0). */
static int s_issue_briefing(notify_t *n, Samordna__V1__Briefing *b)
{
    MDB_txn *w;
    if (sam_store_begin(sam_service_store(n->svc), NULL, true, &w)) return -1;
    Samordna__V1__BriefingRecord *old = s_record_get(n, w, b->id);
    bool sent = old && strcmp(old->state, "sent") == 0;
    if (old) protobuf_c_message_free_unpacked(&old->base, NULL);
    if (sent) {
        mdb_txn_abort(w);
        return 0;
    }
    if (!sam_service_is_primary(n->svc) ||
        !sam_lease_check(sam_service_lease(n->svc), w, NOTIFY_SCHEDULE_LEASE)) {
        mdb_txn_abort(w); /* the schedule moved to another instance, which issues it */
        sam_warn("schedule.not_holder id=%s", sam_logv(b->id));
        return -1;
    }
    int q =
        s_enqueue(n, w, b->id, "no.samordna.notify.briefing.issued", "steering-group", &b->base);
    Samordna__V1__BriefingRecord r = SAMORDNA__V1__BRIEFING_RECORD__INIT;
    r.briefing = b;
    r.state = q > 0 ? "sent" : "held";
    r.composed_ms = notify_now_ms();
    r.sent_ms = q > 0 ? r.composed_ms : 0;
    r.deliveries = q > 0 ? (uint32_t)q : 0;
    int rc = q < 0 ? SAM_STORE_CORRUPT : s_record_put(n, w, &r);
    if (!rc && q > 0) {
        uint8_t when[8];
        sam_be64_put(when, (uint64_t)r.sent_ms);
        MDB_val k = {strlen(b->id), b->id}, v = {8, when};
        rc = mdb_put(w, n->dbi.sent, &k, &v, 0);
    }
    if (!rc)
        rc = mdb_txn_commit(w);
    else
        mdb_txn_abort(w);
    if (rc) {
        sam_error("schedule.issue_failed id=%s error=%s", sam_logv(b->id),
                  sam_logv(sam_store_strerror(rc)));
        return -1;
    }
    if (q > 0) {
        n->next_deliver_scan_ms = 0;
        n->held_logged = false;
        sam_info("schedule.issued id=%s type=no.samordna.notify.briefing.issued deliveries=%d "
                 "period_from=%s period_to=%s notes=%zu lang=%s",
                 sam_logv(b->id), q, sam_logv(b->period_from), sam_logv(b->period_to), b->n_notes,
                 sam_logv(b->lang));
    }
    return q;
}

#define S_INCOMPLETE_CHECKS 5 /* checks a briefing with a part missing is composed again */

static void s_check_briefing(notify_t *n, s_date_t today)
{
    s_date_t due, prev, since;
    if (s_around(n, today, false, &due, &prev)) return;
    if (!s_date_parse(n->since, &since) || s_cmp(due, since) < 0) return;
    char id[32], ds[11], fs[11], ts[11];
    s_date_str(due, ds);
    s_date_str(prev, fs);
    s_date_str(s_add_days(due, -1), ts);
    snprintf(id, sizeof id, "briefing-%s", ds);
    MDB_txn *txn;
    if (sam_store_begin(sam_service_store(n->svc), NULL, false, &txn)) return;
    Samordna__V1__BriefingRecord *r = s_record_get(n, txn, id);
    /* a briefing issued by an earlier version is in "sent" only */
    bool sent = (r && strcmp(r->state, "sent") == 0) ||
                (!r && sam_store_has(txn, n->dbi.sent, id, strlen(id)));
    mdb_txn_abort(txn);
    /* held: composed again only once a subscription would take it (a trial queueing, undone)
       — not at every check of the months nobody subscribes */
    int takers = 1;
    if (r && !sent && r->briefing &&
        !sam_store_begin(sam_service_store(n->svc), NULL, true, &txn)) {
        takers = s_enqueue(n, txn, id, "no.samordna.notify.briefing.issued", "steering-group",
                           &r->briefing->base);
        mdb_txn_abort(txn);
    }
    if (r) protobuf_c_message_free_unpacked(&r->base, NULL);
    if (sent || takers == 0) return;
    /* composed when it is due, and again when it goes out, from the facts of its period as of
       its last day: what is recorded late for the period (an import after the due day) is in
       what is sent */
    Samordna__V1__Briefing *b = notify_compose(n, id, ds, fs, ts, n->briefing_lang);
    if (!b) return;
    if (b->n_notes && n->incomplete_checks < S_INCOMPLETE_CHECKS) {
        /* a part missing (a service away for a moment): composed again at the next checks,
           then, if still missing, sent with its notes */
        n->incomplete_checks++;
        sam_warn("schedule.incomplete id=%s notes=%zu first=%s again=%d", sam_logv(id), b->n_notes,
                 sam_logv(b->notes[0]), S_INCOMPLETE_CHECKS - n->incomplete_checks);
        notify_briefing_free(b);
        return;
    }
    n->incomplete_checks = 0;
    if (s_issue_briefing(n, b) == 0 && !n->held_logged) {
        n->held_logged = true;
        sam_info("schedule.held id=%s reason=%s", sam_logv(id),
                 sam_logv("no subscription takes no.samordna.notify.briefing.issued yet: it is "
                          "sent when one does"));
    }
    notify_briefing_free(b);
}

/* ---- reminders ------------------------------------------------------------------------------ */

/* Asks grants for the next page of deadlines in the reminder window, without waiting: the
   reply comes through the follower's receive loop to notify_reminders_reply. */
static void s_ask_deadlines(notify_t *n)
{
    sam_client_t *c = sam_service_client(n->svc);
    if (!c) return;
    Samordna__V1__DeadlinesRequest rq = SAMORDNA__V1__DEADLINES_REQUEST__INIT;
    rq.from = n->rem_from;
    rq.before = n->rem_before;
    rq.page_size = 500;
    rq.page_token = n->rem_token;
    uint8_t buf[512];
    if (samordna__v1__deadlines_request__get_packed_size(&rq) > sizeof buf) return;
    size_t len = samordna__v1__deadlines_request__pack(&rq, buf);
    n->rem_req = sam_client_send(c, "grants", "grants.deadlines", buf, len);
    n->rem_sent_ms = notify_now_ms();
}

/* A reminder's text: which award, how much, which deadline, to whom, in --briefing-lang. */
static char *s_reminder_text(notify_t *n, const Samordna__V1__Deadline *d, int days)
{
    bool en = n->briefing_lang == SAM_LANG_EN;
    char due[64], amount[64], funders[1024] = "";
    sam_words_date(n->briefing_lang, d->report_due, due, sizeof due);
    sam_words_nok(n->briefing_lang, d->amount_ore, amount, sizeof amount);
    size_t at = 0;
    for (size_t f = 0; f < d->n_funders && at < sizeof funders; f++)
        at += (size_t)snprintf(funders + at, sizeof funders - at, "%s%s", f ? ", " : "",
                               notify_name(n, d->funders[f]));
    const char *to = notify_name(n, d->recipient);
    char *text = NULL;
    int len = en ? asprintf(&text,
                            "Reporting deadline reminder\n\n"
                            "The report on the award “%s” (%s) of %s to %s is due %s, in %d days.\n"
                            "Scheme: %s\nFunded by: %s\n",
                            d->purpose, d->award, amount, to, due, days, d->scheme, funders)
                 : asprintf(&text,
                            "Påminnelse om rapporteringsfrist\n\n"
                            "Rapporten om tilskuddet «%s» (%s) på %s til %s skal leveres innen %s, "
                            "om %d dager.\nOrdning: %s\nFinansiert av: %s\n",
                            d->purpose, d->award, amount, to, due, days, d->scheme, funders);
    return len < 0 ? NULL : text;
}

void notify_reminders_reply(notify_t *n, const sam_result_t *res)
{
    n->rem_req = 0;
    Samordna__V1__DeadlineList *dl =
        res->code == SAM_OK ? samordna__v1__deadline_list__unpack(NULL, res->body_len, res->body)
                            : NULL;
    if (!dl) {
        if (!n->grants_down)
            sam_warn("schedule.deadlines_unavailable code=%u reason=%s", res->code,
                     sam_logv(res->code == SAM_OK ? "undecodable samordna.v1.DeadlineList"
                                                  : res->message));
        n->grants_down = true;
        return;
    }
    if (n->grants_down) sam_info("schedule.deadlines_available");
    n->grants_down = false;
    s_date_t today;
    if (!s_date_parse(n->rem_from, &today)) today = s_today();
    for (size_t i = 0; i < dl->n_deadlines; i++) {
        Samordna__V1__Deadline *d = dl->deadlines[i];
        s_date_t due;
        if (!s_date_parse(d->report_due, &due)) continue;
        char id[160];
        snprintf(id, sizeof id, "reminder-%s-%s", d->award, d->report_due);
        int days = (int)((s_date_time(due) - s_date_time(today)) / 86400);
        char *text = s_reminder_text(n, d, days);
        Samordna__V1__Reminder r = SAMORDNA__V1__REMINDER__INIT;
        r.id = id;
        r.award = d->award;
        r.deadline = d->report_due;
        r.recipient = d->recipient;
        r.text = text ? text : "";
        s_issue(n, id, "no.samordna.notify.reminder.due", d->recipient, &r.base);
        free(text);
    }
    snprintf(n->rem_token, sizeof n->rem_token, "%s", dl->next_page_token);
    protobuf_c_message_free_unpacked(&dl->base, NULL);
    if (*n->rem_token) s_ask_deadlines(n); /* the next page at once */
}

static void s_check_reminders(notify_t *n, s_date_t today)
{
    int64_t now = notify_now_ms();
    if (n->rem_req && now - n->rem_sent_ms < n->call_timeout_ms + 5000) return; /* in flight */
    s_date_str(today, n->rem_from);
    s_date_str(s_add_days(today, (int)n->reminder_days + 1), n->rem_before);
    n->rem_token[0] = 0;
    s_ask_deadlines(n);
}

/* ---- the schedule ---------------------------------------------------------------------------- */

#define S_NAMES_MS (10 * 60 * 1000) /* the registry's names and programme, asked again */

void notify_schedule_tick(notify_t *n)
{
    int64_t now = notify_now_ms();
    if (now < n->next_schedule_ms) return;
    if (!sam_service_is_primary(n->svc)) return; /* the primary issues; a standby learns it */
    if (!sam_lease_mine(sam_service_lease(n->svc), NOTIFY_SCHEDULE_LEASE)) return; /* another's */
    n->next_schedule_ms = now + n->schedule_interval_ms;
    if (now >= n->next_names_ms) {
        bool answered = notify_names_refresh(n);
        /* known: asked again in ten minutes; not known yet (no import yet): at the next
           check; the registry away: in half a minute, so that it costs the loop one
           --call-timeout-ms that often, not at every check */
        n->next_names_ms = now + (n->prog_known || *n->briefing_dates ? S_NAMES_MS
                                  : answered                          ? 0
                                                                      : 30000);
    }
    s_date_t today = s_today();
    s_check_briefing(n, today);
    if (n->reminder_days > 0) s_check_reminders(n, today);
}

int notify_schedule_start(notify_t *n)
{
    int md[16][2];
    if (*n->briefing_dates && !s_briefing_days(n->briefing_dates, md, 16)) {
        sam_error("options.invalid briefing-dates=%s reason=\"MM-DD,MM-DD…\"",
                  sam_logv(n->briefing_dates));
        return -1;
    }
    /* the first day this store ran: briefings due before it are not sent after the fact */
    MDB_txn *w;
    int rc = sam_store_begin(sam_service_store(n->svc), NULL, true, &w);
    if (rc) return -1;
    MDB_val k = {5, "since"}, v;
    rc = mdb_get(w, n->dbi.meta, &k, &v);
    if (rc == 0 && v.mv_size == 10) {
        memcpy(n->since, v.mv_data, 10);
        n->since[10] = 0;
        mdb_txn_abort(w);
    } else {
        s_date_str(s_today(), n->since);
        v.mv_size = 10;
        v.mv_data = n->since;
        rc = mdb_put(w, n->dbi.meta, &k, &v, 0);
        if (!rc)
            rc = mdb_txn_commit(w);
        else
            mdb_txn_abort(w);
        if (rc) return -1;
    }
    n->next_schedule_ms = notify_now_ms() + 1000;
    return 0;
}

void notify_schedule_stop(notify_t *n)
{
    zhashx_destroy(&n->names);
}

/* ---- queries and the resend --------------------------------------------------------------------
 */

/* notify.briefing.preview  BriefingPreviewRequest {date, lang} → Briefing: the one due next
   after `date` (default today), as of that day */
int notify_q_briefing_preview(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                              sam_reply_t *reply)
{
    (void)txn;
    notify_t *n = sam_service_ctx(svc);
    const Samordna__V1__BriefingPreviewRequest *req =
        (const Samordna__V1__BriefingPreviewRequest *)call->msg;
    s_date_t day = s_today();
    if (*req->date && !s_date_parse(req->date, &day))
        return sam_reply_error(reply, SAM_BAD_REQUEST, "date: '%.40s' is not a date YYYY-MM-DD",
                               req->date);
    sam_lang_t lang = n->briefing_lang;
    if (*req->lang && sam_lang_parse(req->lang, &lang))
        return sam_reply_error(reply, SAM_BAD_REQUEST, "lang: '%.16s' is not nb or en", req->lang);
    if (!n->names || (!n->prog_known && !*n->briefing_dates)) notify_names_refresh(n);
    s_date_t due, prev;
    if (s_around(n, day, true, &due, &prev))
        return sam_reply_error(
            reply, SAM_NOT_FOUND, "%s",
            *n->briefing_dates || n->prog_known
                ? "date: no briefing is due after it (the programme's period has ended)"
                : "no briefing schedule: the registry has no programme with a period and "
                  "briefing_interval_months (notify --briefing-dates sets days instead)");
    char id[32], ds[11], fs[11], ts[11];
    s_date_str(due, ds);
    s_date_str(prev, fs);
    /* as of the day asked about; on a due day itself, the period up to the day before */
    s_date_str(s_cmp(day, due) < 0 ? day : s_add_days(due, -1), ts);
    snprintf(id, sizeof id, "briefing-%s", ds);
    Samordna__V1__Briefing *b = notify_compose(n, id, ds, fs, ts, lang);
    if (!b) return sam_reply_error(reply, SAM_INTERNAL, "out of memory");
    int rc = sam_reply_message(reply, &b->base);
    notify_briefing_free(b);
    return rc;
}

/* notify.briefings.list  BriefingListRequest {page_size, page_token} → BriefingList, newest
   first; page_token is the id the last page ended with */
int notify_q_briefings_list(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                            sam_reply_t *reply)
{
    notify_t *n = sam_service_ctx(svc);
    const Samordna__V1__BriefingListRequest *req =
        (const Samordna__V1__BriefingListRequest *)call->msg;
    size_t page = req->page_size ? req->page_size : 100;
    if (page > 1000) page = 1000;
    if (*req->page_token && !notify_valid_id(req->page_token))
        return sam_reply_error(reply, SAM_BAD_REQUEST,
                               "page_token: not one this query gave (a briefing id)");
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, n->dbi.briefings, &cur);
    if (rc) return rc;
    Samordna__V1__BriefingRecord **items = calloc(page + 1, sizeof *items);
    size_t got = 0;
    bool more = false;
    MDB_val k, v;
    int g;
    if (*req->page_token) { /* the last key before the token */
        k.mv_size = strlen(req->page_token);
        k.mv_data = (void *)req->page_token;
        g = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        g = g == 0 ? mdb_cursor_get(cur, &k, &v, MDB_PREV) : mdb_cursor_get(cur, &k, &v, MDB_LAST);
    } else
        g = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    for (; items && g == 0; g = mdb_cursor_get(cur, &k, &v, MDB_PREV)) {
        if (got == page) {
            more = true;
            break;
        }
        Samordna__V1__BriefingRecord *r =
            samordna__v1__briefing_record__unpack(NULL, v.mv_size, v.mv_data);
        if (r && r->briefing)
            items[got++] = r;
        else if (r)
            protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    mdb_cursor_close(cur);
    if (!items) return sam_reply_error(reply, SAM_INTERNAL, "out of memory");
    Samordna__V1__BriefingList out = SAMORDNA__V1__BRIEFING_LIST__INIT;
    out.n_items = got;
    out.items = items;
    out.next_page_token = more && got ? items[got - 1]->briefing->id : "";
    rc = sam_reply_message(reply, &out.base);
    for (size_t i = 0; i < got; i++)
        protobuf_c_message_free_unpacked(&items[i]->base, NULL);
    free(items);
    return rc;
}

/* notify.briefings.get  BriefingGetRequest {id} → BriefingRecord */
int notify_q_briefings_get(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                           sam_reply_t *reply)
{
    notify_t *n = sam_service_ctx(svc);
    const Samordna__V1__BriefingGetRequest *req =
        (const Samordna__V1__BriefingGetRequest *)call->msg;
    if (!notify_valid_id(req->id))
        return sam_reply_error(reply, SAM_BAD_REQUEST, "id: '%.80s' is not a briefing id", req->id);
    Samordna__V1__BriefingRecord *r = s_record_get(n, txn, req->id);
    if (!r)
        return sam_reply_error(reply, SAM_NOT_FOUND,
                               "id: no briefing '%s' (notify.briefings.list shows those issued)",
                               req->id);
    int rc = sam_reply_message(reply, &r->base);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}

/* no.samordna.notify.briefing.resent  BriefingResend {id, reason}: the briefing's deliveries
   queued again, to the subscriptions of no.samordna.notify.briefing.issued as they are now */
int notify_apply_briefing_resent(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev,
                                 sam_reply_t *reply)
{
    notify_t *n = sam_service_ctx(svc);
    const Samordna__V1__BriefingResend *m = (const Samordna__V1__BriefingResend *)ev->msg;
    if (!notify_valid_id(m->id))
        return sam_reply_error(reply, SAM_BAD_REQUEST, "id: '%.80s' is not a briefing id", m->id);
    Samordna__V1__BriefingRecord *r = s_record_get(n, txn, m->id);
    if (!r)
        return sam_reply_error(reply, SAM_NOT_FOUND,
                               "id: no briefing '%s' (notify.briefings.list shows those issued)",
                               m->id);
    int rc = -1;
    if (strcmp(r->state, "sent") != 0) {
        sam_reply_error(reply, SAM_CONFLICT,
                        "id: briefing '%s' has not been sent yet: it waits for a subscription of "
                        "no.samordna.notify.briefing.issued and goes out when one is made",
                        m->id);
        goto done;
    }
    char eid[96];
    snprintf(eid, sizeof eid, "%s-resend-%u", m->id, r->resends + 1);
    int q = s_enqueue(n, txn, eid, "no.samordna.notify.briefing.issued", "steering-group",
                      &r->briefing->base);
    if (q < 0) {
        rc = SAM_STORE_CORRUPT;
        goto done;
    }
    if (q == 0) {
        sam_reply_error(reply, SAM_CONFLICT,
                        "id: no subscription takes no.samordna.notify.briefing.issued now");
        goto done;
    }
    r->resends++;
    r->deliveries += (uint32_t)q;
    rc = s_record_put(n, txn, r);
    if (!rc) {
        n->next_deliver_scan_ms = 0;
        sam_info("briefing.resent id=%s event=%s deliveries=%d reason=%s", sam_logv(m->id),
                 sam_logv(eid), q, sam_logv(m->reason));
    }
done:
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return rc;
}
