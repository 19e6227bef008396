/*  notify_briefing.c — the half-yearly briefing of the steering group and the reminders
    before award reporting deadlines.

    The pilot owner must brief the steering group every half year. On each date of
    --briefing-dates (MM-DD, every year; by default 06-01 and 12-01, the programme's six
    months) notify composes the briefing of the period since the previous date from
      - status.report(from, to)          what changed: milestones, meetings, steps, barriers
      - grants.overview(year)            committed and paid per recipient, for each year
      - status.barriers.list(open_only)  the barriers still open
    and issues it as the event no.samordna.notify.briefing.issued (payload
    samordna.v1.Briefing, subject "steering-group"), delivered like any other event to the
    subscriptions of that type. A service that does not answer leaves a note in the briefing
    naming what is missing and why; the rest is still composed and sent.

    --reminder-days (default 60) before each reporting deadline that grants.deadlines lists,
    a no.samordna.notify.reminder.due (payload samordna.v1.Reminder, subject the recipient) is
    issued the same way.

    Each briefing and reminder is issued once: its id goes into the "sent" table in the same
    transaction that queues its deliveries. With several instances on one store only the
    holder of the lease "notify.schedule" composes and issues (notify_share.c), and that
    transaction checks the lease too. Briefings due before notify's store was first
    opened are not sent after the fact.

    Dates are calendar dates in the programme's time zone (--time-zone, Europe/Oslo).
*/
#include "notify.h"
#include "sam_check.h"
#include "sam_lease.h"

#include "samordna/v1/grants.pb-c.h"
#include "samordna/v1/status.pb-c.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_REPORT_LINES 200 /* changes listed in full; the rest are counted */

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

/* ---- composing --------------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, cap;
} s_text_t;

static void s_add(s_text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_add(s_text_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char line[1024];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if (t->len + len + 1 > t->cap) {
        size_t cap = (t->cap + len + 1) * 2;
        char *nb = realloc(t->buf, cap);
        if (!nb) return;
        t->buf = nb;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, line, len);
    t->len += len;
    t->buf[t->len] = 0;
}

typedef struct {
    char *notes[8];
    size_t n;
} s_notes_t;

static void s_note(s_notes_t *ns, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_note(s_notes_t *ns, const char *fmt, ...)
{
    if (ns->n == sizeof ns->notes / sizeof ns->notes[0]) return;
    char buf[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    ns->notes[ns->n] = strdup(buf);
    if (ns->notes[ns->n]) ns->n++;
}

/*  Asks status for a section's facts: the reply (free it), or NULL when status did not
    answer, and then the section says "(not available)" and a note says what is missing. */
static ProtobufCMessage *s_ask_status(notify_t *n, s_text_t *t, s_notes_t *ns, const char *method,
                                      const ProtobufCMessage *rq,
                                      const ProtobufCMessageDescriptor *desc, const char *missing)
{
    ProtobufCMessage *rep = NULL;
    sam_result_t res;
    uint32_t code = notify_call(n, "status", method, rq, desc, &rep, (int)n->call_timeout_ms, &res);
    if (code != SAM_OK) {
        s_add(t, "   (not available)\n");
        s_note(ns, "%s: %u %s — %s are missing", method, code, res.message, missing);
        rep = NULL;
    }
    sam_result_clear(&res);
    return rep;
}

static void s_section_report(notify_t *n, s_text_t *t, s_notes_t *ns, const char *from,
                             const char *to)
{
    s_add(t, "\n1. What changed (status report)\n");
    Samordna__V1__StatusReportRequest rq = SAMORDNA__V1__STATUS_REPORT_REQUEST__INIT;
    rq.from = (char *)from;
    rq.to = (char *)to;
    Samordna__V1__StatusReportReply *rep = (Samordna__V1__StatusReportReply *)s_ask_status(
        n, t, ns, "status.report", &rq.base, &samordna__v1__status_report_reply__descriptor,
        "milestones, meetings, steps and barrier moves of the period");
    if (!rep) return;
    if (rep->n_changes == 0) s_add(t, "   Nothing was recorded in the period.\n");
    for (size_t i = 0; i < rep->n_changes && i < S_REPORT_LINES; i++) {
        Samordna__V1__StatusChange *c = rep->changes[i];
        const char *where = *c->pilot ? c->pilot : *c->municipality ? c->municipality : "programme";
        s_add(t, "   %s  %-14s %-19s %s\n", c->date, where, c->what, c->summary);
    }
    if (rep->n_changes > S_REPORT_LINES)
        s_add(t, "   … and %zu more changes\n", rep->n_changes - S_REPORT_LINES);
    if (rep->truncated) s_note(ns, "status.report: more changes than one report holds");
    protobuf_c_message_free_unpacked(&rep->base, NULL);
}

static void s_section_grants(notify_t *n, s_text_t *t, s_notes_t *ns, int y0, int y1)
{
    s_add(t, "\n2. Grants (committed and paid per recipient)\n");
    for (int y = y0; y <= y1; y++) {
        Samordna__V1__OverviewRequest rq = SAMORDNA__V1__OVERVIEW_REQUEST__INIT;
        rq.year = (uint32_t)y;
        Samordna__V1__Overview *ov = NULL;
        sam_result_t res;
        uint32_t code = notify_call(n, "grants", "grants.overview", &rq.base,
                                    &samordna__v1__overview__descriptor, (ProtobufCMessage **)&ov,
                                    (int)n->call_timeout_ms, &res);
        if (code != SAM_OK) {
            s_add(t, "   %d: (not available)\n", y);
            s_note(ns, "grants.overview %d: %u %s — the grants of %d are missing", y, code,
                   res.message, y);
            sam_result_clear(&res);
            continue;
        }
        sam_result_clear(&res);
        char c[48], p[48];
        s_add(t, "   %d\n", y);
        for (size_t i = 0; i < ov->n_groups; i++) {
            sam_check_format_ore(ov->groups[i]->committed_ore, c, sizeof c);
            sam_check_format_ore(ov->groups[i]->paid_ore, p, sizeof p);
            s_add(t, "     %-24s committed NOK %14s   paid NOK %14s\n", ov->groups[i]->key, c, p);
        }
        sam_check_format_ore(ov->committed_ore, c, sizeof c);
        sam_check_format_ore(ov->paid_ore, p, sizeof p);
        s_add(t, "     %-24s committed NOK %14s   paid NOK %14s\n", "in all", c, p);
        protobuf_c_message_free_unpacked(&ov->base, NULL);
    }
}

static void s_section_barriers(notify_t *n, s_text_t *t, s_notes_t *ns)
{
    s_add(t, "\n3. Open barriers\n");
    Samordna__V1__BarriersRequest rq = SAMORDNA__V1__BARRIERS_REQUEST__INIT;
    rq.open_only = true;
    rq.page_size = 1000;
    Samordna__V1__BarriersReply *rep = (Samordna__V1__BarriersReply *)s_ask_status(
        n, t, ns, "status.barriers.list", &rq.base, &samordna__v1__barriers_reply__descriptor,
        "the open barriers");
    if (!rep) return;
    if (rep->n_barriers == 0) s_add(t, "   None.\n");
    for (size_t i = 0; i < rep->n_barriers; i++) {
        Samordna__V1__Barrier *b = rep->barriers[i];
        const char *where = *b->pilot ? b->pilot : b->municipality;
        s_add(t, "   %-20s %-18s %-14s %s (raised by %s)\n", b->id, b->state, where, b->title,
              b->raised_by);
    }
    if (*rep->next_page_token) s_note(ns, "status.barriers.list: more than 1000 open barriers");
    protobuf_c_message_free_unpacked(&rep->base, NULL);
}

/* Composes the briefing due on `due` for the period [prev, due - 1]. The caller frees it. */
static Samordna__V1__Briefing *s_compose(notify_t *n, s_date_t due, s_date_t prev)
{
    Samordna__V1__Briefing *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    samordna__v1__briefing__init(b);
    char ds[11], fs[11], ts[11];
    s_date_str(due, ds);
    s_date_str(prev, fs);
    s_date_str(s_add_days(due, -1), ts);
    s_text_t t = {0};
    s_notes_t ns = {0};
    s_add(&t, "Halvårlig orientering til styringsgruppen / Half-yearly briefing of the steering "
              "group\n");
    s_add(&t, "Due %s. Period %s to %s.\n", ds, fs, ts);
    s_section_report(n, &t, &ns, fs, ts);
    s_section_grants(n, &t, &ns, prev.y, s_add_days(due, -1).y);
    s_section_barriers(n, &t, &ns);
    if (ns.n) {
        s_add(&t, "\nNotes: parts of this briefing could not be composed.\n");
        for (size_t i = 0; i < ns.n; i++)
            s_add(&t, "   - %s\n", ns.notes[i]);
    }
    char id[32];
    snprintf(id, sizeof id, "briefing-%s", ds);
    b->id = strdup(id);
    b->date = strdup(ds);
    b->period_from = strdup(fs);
    b->period_to = strdup(ts);
    b->text = t.buf ? t.buf : strdup("");
    b->n_notes = ns.n;
    b->notes = ns.n ? calloc(ns.n, sizeof *b->notes) : NULL;
    for (size_t i = 0; i < ns.n; i++) {
        if (b->notes)
            b->notes[i] = ns.notes[i];
        else
            free(ns.notes[i]);
    }
    if (!b->notes) b->n_notes = 0;
    return b;
}

static void s_briefing_free(Samordna__V1__Briefing *b)
{
    if (!b) return;
    free(b->id);
    free(b->date);
    free(b->period_from);
    free(b->period_to);
    free(b->text);
    for (size_t i = 0; i < b->n_notes; i++)
        free(b->notes[i]);
    free(b->notes);
    free(b);
}

/* ---- issuing ----------------------------------------------------------------------------- */

/* Queues the deliveries of one message of notify's own, once: false when it was issued
   before (or the store failed). */
static bool s_issue(notify_t *n, const char *id, const char *type, const char *subject,
                    const ProtobufCMessage *payload)
{
    MDB_txn *w;
    if (sam_store_begin(sam_service_store(n->svc), NULL, true, &w)) return false;
    if (sam_store_has(w, n->dbi.sent, id, strlen(id))) {
        mdb_txn_abort(w);
        return false;
    }
    if (!sam_lease_check(sam_service_lease(n->svc), w, NOTIFY_SCHEDULE_LEASE)) {
        mdb_txn_abort(w); /* the schedule moved to another instance, which issues it */
        sam_warn("schedule.not_holder id=%s", sam_logv(id));
        return false;
    }
    size_t len = protobuf_c_message_get_packed_size(payload);
    uint8_t *data = malloc(len ? len : 1);
    if (!data) {
        mdb_txn_abort(w);
        return false;
    }
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
    uint8_t when[8];
    sam_be64_put(when, (uint64_t)now);
    MDB_val k = {strlen(id), (void *)id}, v = {8, when};
    int rc = q < 0 ? SAM_STORE_CORRUPT : mdb_put(w, n->dbi.sent, &k, &v, 0);
    if (!rc)
        rc = mdb_txn_commit(w);
    else
        mdb_txn_abort(w);
    free(data);
    if (rc) {
        sam_error("schedule.issue_failed id=%s error=%s", sam_logv(id),
                  sam_logv(sam_store_strerror(rc)));
        return false;
    }
    n->next_deliver_scan_ms = 0;
    sam_info("schedule.issued id=%s type=%s deliveries=%d", sam_logv(id), sam_logv(type), q);
    return true;
}

static void s_check_briefing(notify_t *n, s_date_t today)
{
    int md[16][2];
    size_t nd = s_briefing_days(n->briefing_dates, md, 16);
    if (!nd) return;
    s_date_t due, prev;
    s_briefing_around((const int(*)[2])md, nd, today, false, &due, &prev);
    s_date_t since;
    if (!s_date_parse(n->since, &since) || s_cmp(due, since) < 0) return;
    char id[32], ds[11];
    s_date_str(due, ds);
    snprintf(id, sizeof id, "briefing-%s", ds);
    MDB_txn *txn;
    if (sam_store_begin(sam_service_store(n->svc), NULL, false, &txn)) return;
    bool sent = sam_store_has(txn, n->dbi.sent, id, strlen(id));
    mdb_txn_abort(txn);
    if (sent) return;
    Samordna__V1__Briefing *b = s_compose(n, due, prev);
    if (!b) return;
    s_issue(n, id, "no.samordna.notify.briefing.issued", "steering-group", &b->base);
    s_briefing_free(b);
}

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
        s_text_t t = {0};
        s_add(&t, "Påminnelse om rapporteringsfrist / Reporting deadline reminder\n\n");
        s_add(&t, "The report on award %s to %s is due %s, in %d days.\n", d->award, d->recipient,
              d->report_due, days);
        s_add(&t, "Scheme: %s\nPurpose: %s\nFunded by:", d->scheme, d->purpose);
        for (size_t f = 0; f < d->n_funders; f++)
            s_add(&t, " %s", d->funders[f]);
        s_add(&t, "\n");
        Samordna__V1__Reminder r = SAMORDNA__V1__REMINDER__INIT;
        r.id = id;
        r.award = d->award;
        r.deadline = d->report_due;
        r.recipient = d->recipient;
        r.text = t.buf ? t.buf : "";
        s_issue(n, id, "no.samordna.notify.reminder.due", d->recipient, &r.base);
        free(t.buf);
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

void notify_schedule_tick(notify_t *n)
{
    int64_t now = notify_now_ms();
    if (now < n->next_schedule_ms) return;
    if (!sam_lease_mine(sam_service_lease(n->svc), NOTIFY_SCHEDULE_LEASE)) return; /* another's */
    n->next_schedule_ms = now + n->schedule_interval_ms;
    s_date_t today = s_today();
    s_check_briefing(n, today);
    if (n->reminder_days > 0) s_check_reminders(n, today);
}

int notify_schedule_start(notify_t *n)
{
    int md[16][2];
    if (!s_briefing_days(n->briefing_dates, md, 16)) {
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

/* notify.briefing.preview  BriefingPreviewRequest → Briefing (the next one, composed now) */
int notify_q_briefing_preview(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call,
                              sam_reply_t *reply)
{
    notify_t *n = sam_service_ctx(svc);
    const Samordna__V1__BriefingPreviewRequest *req =
        (const Samordna__V1__BriefingPreviewRequest *)call->msg;
    s_date_t day = s_today();
    int rc = -1;
    if (*req->date && !s_date_parse(req->date, &day)) {
        sam_reply_error(reply, SAM_BAD_REQUEST, "date: '%.40s' is not a date YYYY-MM-DD",
                        req->date);
        goto done;
    }
    int md[16][2];
    size_t nd = s_briefing_days(n->briefing_dates, md, 16);
    s_date_t due, prev;
    s_briefing_around((const int(*)[2])md, nd, day, true, &due, &prev);
    Samordna__V1__Briefing *b = s_compose(n, due, prev);
    if (!b) {
        sam_reply_error(reply, SAM_INTERNAL, "out of memory");
        goto done;
    }
    rc = sam_reply_message(reply, &b->base);
    s_briefing_free(b);
done:
    return rc;
}
