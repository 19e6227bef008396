/*  cmd_notify.c — `samctl notify …`: subscriptions, the delivery log, dead letters, inboxes,
    cursors and the briefing. The subcommands and their options are the table at the bottom
    (`samctl notify --help`).

    Subscribing and unsubscribing publish notify events with samctl_publish(); everything
    else calls notify.* queries. Lists print as every samctl list does (samctl.h): the
    subscriptions, the delivery log, dead letters, an inbox read and the cursors.
*/
#include "samctl.h"
#include "sam_check.h"
#include "sam_service.h"

#include "samordna/v1/events.pb-c.h"
#include "samordna/v1/notify.pb-c.h"

#include <errno.h>
#include <jansson.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define FREE(m) protobuf_c_message_free_unpacked(&(m)->base, NULL)

/* The words of NotifyChannel and NotifySubState values, by value (SAMCTL_PICK). */
static const char *const s_channels[] = {NULL, "inbox", "webhook", "email"};
static const char *const s_states[] = {NULL, "pending", "active", "disabled"};
/* WebhookFormat and WebhookSignature, by value; what a subscription stored with 0 means */
static const char *const s_formats[] = {"protobuf", "json", "protobuf"};
static const char *const s_schemes[] = {"legacy", "v1", "v1a", "legacy"};
#define s_channel(c) SAMCTL_PICK(s_channels, c, "?")
#define s_state(s) SAMCTL_PICK(s_states, s, "?")

static void s_time(int64_t ms, char *out, size_t cap)
{
    if (ms <= 0) {
        snprintf(out, cap, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *s_subscription_json(const ProtobufCMessage *rec)
{
    const Samordna__V1__SubscriptionInfo *in = (const Samordna__V1__SubscriptionInfo *)rec;
    const Samordna__V1__Subscription *s = in->subscription;
    const char *target = *s->url ? s->url : *s->email ? s->email : "";
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "id", s->id,
                          "agency", s->agency, "channel", s_channel(s->channel), "state",
                          s_state(in->state ? in->state->state : 0), "reason",
                          in->state ? in->state->reason : "", "type", s->type, "source", s->source,
                          "subject", s->subject, "target", target, "queued", (json_int_t)in->queued,
                          "dead", (json_int_t)in->dead);
    if (j && s->channel == SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_WEBHOOK) {
        json_object_set_new(j, "format", json_string(SAMCTL_PICK(s_formats, s->format, "?")));
        json_object_set_new(j, "signature", json_string(SAMCTL_PICK(s_schemes, s->signature, "?")));
    }
    return j;
}

static void s_subscription_row(const ProtobufCMessage *rec)
{
    const Samordna__V1__SubscriptionInfo *in = (const Samordna__V1__SubscriptionInfo *)rec;
    const Samordna__V1__Subscription *s = in->subscription;
    const char *target = *s->url ? s->url : *s->email ? s->email : "";
    printf("%-24s %-14s %-8s %-9s %-32s %7llu %5llu  %s%s%s%s%s\n", s->id, s->agency,
           s_channel(s->channel), s_state(in->state ? in->state->state : 0),
           *s->type ? s->type : "*", (unsigned long long)in->queued, (unsigned long long)in->dead,
           target, *s->source ? " from=" : "", s->source, *s->subject ? " subject=" : "",
           s->subject);
}

/* The service whose types a filter names (no.samordna.<service>.…), into out; false if none. */
static bool s_service_of_type(const char *type, char *out, size_t cap)
{
    const char *ns = "no.samordna.";
    if (strncmp(type, ns, strlen(ns)) != 0) return false;
    const char *svc = type + strlen(ns), *dot = strchr(svc, '.');
    size_t len = dot ? (size_t)(dot - svc) : 0;
    if (!len || len >= cap || svc[0] == '*') return false;
    memcpy(out, svc, len);
    out[len] = 0;
    return true;
}

#define S_MAX_FROM 8

/* --from-seq [SERVICE:]N: history from after N in SERVICE's outbox (the type's service when
   not named). Returns 0, or a usage error (printed). */
static int s_from_seq(const samctl_args_t *a, const char *arg, const char *type,
                      Samordna__V1__HistoryFrom *h, char *svc, size_t cap)
{
    char shown[64];
    sam_check_escape(arg, 40, shown, sizeof shown);
    const char *colon = strchr(arg, ':');
    const char *num = colon ? colon + 1 : arg;
    if (colon) {
        size_t len = (size_t)(colon - arg);
        if (!len || len >= cap)
            return samctl_usage_error(a, "--from-seq '%s': write [SERVICE:]N", shown);
        memcpy(svc, arg, len);
        svc[len] = 0;
    } else if (!s_service_of_type(type, svc, cap)) {
        return samctl_usage_error(a,
                                  "--from-seq %s: name the service (e.g. --from-seq grants:%s): "
                                  "the type filter names none",
                                  shown, shown);
    }
    char *end;
    unsigned long long n = strtoull(num, &end, 10);
    if (!*num || *end || *num == '-')
        return samctl_usage_error(a, "--from-seq '%s': N is a sequence number (0 or more)", shown);
    h->service = svc;
    h->after_seq = n;
    return 0;
}

static int s_subscribe(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__Subscription s = SAMORDNA__V1__SUBSCRIPTION__INIT;
    samctl_fill(a, &s.base); /* the channel's --webhook and --email too */
    s.source = (char *)samctl_str(a, "from");
    int channels = 0;
    if (samctl_flag(a, "inbox")) {
        s.channel = SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_INBOX;
        channels++;
    }
    if (samctl_opt(a, "webhook")) {
        s.channel = SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_WEBHOOK;
        s.url = (char *)samctl_opt(a, "webhook");
        channels++;
    }
    if (samctl_opt(a, "email")) {
        s.channel = SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_EMAIL;
        channels++;
    }
    if (channels != 1)
        return samctl_usage_error(a, "name one channel: --inbox, --webhook URL or --email ADDRESS");
    /* a webhook's format and signature scheme; notify's defaults (json, v1) when not given */
    const char *format = samctl_str(a, "format"), *scheme = samctl_str(a, "signature");
    if ((*format || *scheme) && !samctl_opt(a, "webhook"))
        return samctl_usage_error(a, "--format and --signature are for --webhook");
    if (!strcmp(format, "json"))
        s.format = SAMORDNA__V1__WEBHOOK_FORMAT__WEBHOOK_FORMAT_JSON;
    else if (!strcmp(format, "protobuf"))
        s.format = SAMORDNA__V1__WEBHOOK_FORMAT__WEBHOOK_FORMAT_PROTOBUF;
    else if (*format)
        return samctl_usage_error(a, "--format: json or protobuf");
    if (!strcmp(scheme, "v1"))
        s.signature = SAMORDNA__V1__WEBHOOK_SIGNATURE__WEBHOOK_SIGNATURE_V1;
    else if (!strcmp(scheme, "v1a"))
        s.signature = SAMORDNA__V1__WEBHOOK_SIGNATURE__WEBHOOK_SIGNATURE_V1A;
    else if (!strcmp(scheme, "legacy"))
        s.signature = SAMORDNA__V1__WEBHOOK_SIGNATURE__WEBHOOK_SIGNATURE_LEGACY;
    else if (*scheme)
        return samctl_usage_error(a, "--signature: v1, v1a or legacy");
    const char *from_args[S_MAX_FROM];
    size_t nfrom = samctl_opt_all(a, "from-seq", from_args, S_MAX_FROM);
    if (nfrom > S_MAX_FROM) return samctl_usage_error(a, "at most %d --from-seq", S_MAX_FROM);
    Samordna__V1__HistoryFrom from[S_MAX_FROM], *fromp[S_MAX_FROM];
    char services[S_MAX_FROM][64];
    for (size_t i = 0; i < nfrom; i++) {
        samordna__v1__history_from__init(&from[i]);
        int rc = s_from_seq(a, from_args[i], s.type, &from[i], services[i], sizeof services[i]);
        if (rc) return rc;
        fromp[i] = &from[i];
    }
    s.n_from = nfrom;
    s.from = fromp;
    Samordna__V1__SubscriptionCreated ev = SAMORDNA__V1__SUBSCRIPTION_CREATED__INIT;
    ev.subscription = &s;
    return samctl_write(ctl, a, &ev.base);
}

static int s_secret(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__SubscriptionSecretRequest req = SAMORDNA__V1__SUBSCRIPTION_SECRET_REQUEST__INIT;
    samctl_fill(a, &req.base);
    Samordna__V1__SubscriptionSecretReply *rep =
        (Samordna__V1__SubscriptionSecretReply *)samctl_call(
            ctl, "notify", "notify.subscriptions.secret", &req.base,
            &samordna__v1__subscription_secret_reply__descriptor);
    if (!rep) return 1;
    bool v1a = *rep->public_key && !*rep->secret;
    if (ctl->json)
        samctl_print_json(json_pack("{s:s, s:s, s:s, s:s}", "id", req.id, "scheme", rep->scheme,
                                    "secret", rep->secret, "public_key", rep->public_key));
    else if (v1a)
        printf("%s\n", rep->public_key);
    else
        printf("%s\n", rep->secret);
    if (v1a && !ctl->json)
        fprintf(stderr,
                "samctl notify secret: %s is signed with notify's key (v1a) and has no secret; "
                "the line above is the public key that verifies it\n",
                req.id);
    FREE(rep);
    return 0;
}

static int s_public_key(samctl_t *ctl, const samctl_args_t *a)
{
    Samordna__V1__WebhookKeyReply *rep = (Samordna__V1__WebhookKeyReply *)samctl_call(
        ctl, "notify", "notify.webhooks.key", NULL, &samordna__v1__webhook_key_reply__descriptor);
    if (!rep) return 1;
    if (ctl->json)
        samctl_print_json(json_pack("{s:s}", "public_key", rep->public_key));
    else
        printf("%s\n", rep->public_key);
    FREE(rep);
    return 0;
}

static json_t *s_entry_json(const ProtobufCMessage *rec)
{
    const Samordna__V1__LogEntry *e = (const Samordna__V1__LogEntry *)rec;
    const Samordna__V1__Attempt *at = e->attempt;
    char when[32];
    s_time(at->at_ms, when, sizeof when);
    return json_pack("{s:I, s:s, s:s, s:i, s:I, s:s, s:s, s:I, s:s}", "n", (json_int_t)e->n, "at",
                     when, "outcome", at->outcome, "status", (int)at->status, "latency_us",
                     (json_int_t)at->latency_us, "event_id", at->event_id, "event_type",
                     at->event_type, "qseq", (json_int_t)at->qseq, "error", at->error);
}

static void s_entry_row(const ProtobufCMessage *rec)
{
    const Samordna__V1__LogEntry *e = (const Samordna__V1__LogEntry *)rec;
    const Samordna__V1__Attempt *at = e->attempt;
    char when[32];
    s_time(at->at_ms, when, sizeof when);
    printf("%-8llu %-20s %-17s %6u %8.1fms  %-32s %s\n", (unsigned long long)e->n, when,
           at->outcome, at->status, (double)at->latency_us / 1000.0, at->event_id, at->error);
}

/* A dead letter's name: SUBSCRIPTION/QSEQ, what `notify replay` takes. */
static const char *s_dead_id(const Samordna__V1__Delivery *d, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%llu", d->subscription, (unsigned long long)d->qseq);
    return out;
}

static json_t *s_dead_json(const ProtobufCMessage *rec)
{
    const Samordna__V1__Delivery *d = (const Samordna__V1__Delivery *)rec;
    char id[100];
    return json_pack("{s:s, s:s, s:s, s:s, s:i, s:s}", "id", s_dead_id(d, id, sizeof id), "service",
                     d->service, "event_id", d->event ? d->event->id : "", "event_type",
                     d->event ? d->event->type : "", "attempts", (int)d->attempts, "last_error",
                     d->last_error);
}

static void s_dead_row(const ProtobufCMessage *rec)
{
    const Samordna__V1__Delivery *d = (const Samordna__V1__Delivery *)rec;
    char id[100];
    printf("%-32s %-32s %-36s %8u  %s\n", s_dead_id(d, id, sizeof id), d->event ? d->event->id : "",
           d->event ? d->event->type : "", d->attempts, d->last_error);
}

/* Inboxes and dead letters live on notify's primary (docs/notify.md, "Across hosts"): this
   command's requests go there, whichever instances serve reads. */
static void s_to_primary(samctl_t *ctl)
{
    sam_client_t *c = samctl_client(ctl);
    if (c) sam_client_set_route(c, true, sam_config_get(ctl->config, "instance"));
}

static int s_replay(samctl_t *ctl, const samctl_args_t *a)
{
    s_to_primary(ctl);
    Samordna__V1__DeadReplayRequest req = SAMORDNA__V1__DEAD_REPLAY_REQUEST__INIT;
    samctl_fill(a, &req.base);
    req.id = (char *)(a->npos ? a->pos[0] : "");
    if (req.all == (a->npos == 1))
        return samctl_usage_error(a, "name one dead letter (SUBSCRIPTION/QSEQ) or --all");
    if (*req.subscription && !req.all) return samctl_usage_error(a, "--subscription narrows --all");
    Samordna__V1__DeadReplayReply *rep =
        (Samordna__V1__DeadReplayReply *)samctl_call(ctl, "notify", "notify.dead.replay", &req.base,
                                                     &samordna__v1__dead_replay_reply__descriptor);
    if (!rep) return 1;
    if (ctl->json)
        samctl_print_json(json_pack("{s:i}", "replayed", (int)rep->replayed));
    else
        printf("replayed %u\n", rep->replayed);
    FREE(rep);
    return 0;
}

/* The text people read in a briefing or a reminder notify issued, or NULL for any other
   event (the caller frees it). */
static char *s_event_text(const Io__Cloudevents__V1__CloudEvent *ev)
{
    if (!ev || ev->data_case != IO__CLOUDEVENTS__V1__CLOUD_EVENT__DATA_BINARY_DATA) return NULL;
    const ProtobufCBinaryData *d = &ev->binary_data;
    char *text = NULL;
    if (strcmp(ev->type, "no.samordna.notify.briefing.issued") == 0) {
        Samordna__V1__Briefing *b = samordna__v1__briefing__unpack(NULL, d->len, d->data);
        if (b) text = strdup(b->text);
        if (b) FREE(b);
    } else if (strcmp(ev->type, "no.samordna.notify.reminder.due") == 0) {
        Samordna__V1__Reminder *r = samordna__v1__reminder__unpack(NULL, d->len, d->data);
        if (r) text = strdup(r->text);
        if (r) FREE(r);
    }
    return text;
}

static int s_inbox(samctl_t *ctl, const samctl_args_t *a)
{
    s_to_primary(ctl);
    Samordna__V1__InboxReadRequest req = SAMORDNA__V1__INBOX_READ_REQUEST__INIT;
    samctl_fill(a, &req.base);
    /* A read that waits on purpose is not sent again half-way through its wait. */
    sam_result_t res;
    ProtobufCMessage *out = NULL;
    uint32_t code =
        samctl_request(ctl, "notify", "notify.inbox.read", &req.base,
                       &samordna__v1__inbox_read_reply__descriptor, &out, req.wait_ms == 0, &res);
    if (code != SAM_OK)
        fprintf(stderr, "samctl: notify notify.inbox.read: %u %s: %s\n", code,
                sam_status_name(code), res.message);
    sam_result_clear(&res);
    Samordna__V1__InboxReadReply *rep = (Samordna__V1__InboxReadReply *)out;
    if (!rep) return 1;
    samctl_list_t list;
    char header[128];
    snprintf(header, sizeof header, "%-8s %-24s %-36s %s", "QSEQ", "OUTBOX/SEQ", "TYPE",
             "SOURCE ID");
    samctl_list_begin(&list, ctl, "events waiting", header);
    uint64_t last = 0;
    for (size_t i = 0; i < rep->n_items; i++) {
        Samordna__V1__InboxItem *it = rep->items[i];
        const char *subject = it->event ? sam_event_attr(it->event, "subject") : NULL;
        json_t *j = ctl->json ? json_pack("{s:I, s:s, s:I, s:s, s:s, s:s, s:s}", "qseq",
                                          (json_int_t)it->qseq, "service", it->service, "seq",
                                          (json_int_t)it->seq, "id", it->event ? it->event->id : "",
                                          "type", it->event ? it->event->type : "", "source",
                                          it->event ? it->event->source : "", "subject",
                                          subject ? subject : "")
                              : NULL;
        char *text = s_event_text(it->event); /* a briefing's or a reminder's, shown with it */
        if (j && text) json_object_set_new(j, "text", json_string(text));
        if (samctl_list_row(&list, j)) {
            char where[96];
            snprintf(where, sizeof where, "%s/%llu", it->service, (unsigned long long)it->seq);
            printf("%-8llu %-24s %-36s %s %s%s%s\n", (unsigned long long)it->qseq, where,
                   it->event ? it->event->type : "", it->event ? it->event->source : "",
                   it->event ? it->event->id : "", subject ? " subject=" : "",
                   subject ? subject : "");
            for (const char *l = text; l && *l;) { /* indented under its row */
                size_t len = strcspn(l, "\n");
                printf("    %.*s\n", (int)len, l);
                l += len + (l[len] == '\n');
            }
        }
        free(text);
        last = it->qseq;
    }
    FREE(rep);
    uint32_t acked = 0;
    if (samctl_flag(a, "ack") && last) {
        Samordna__V1__InboxAckRequest ack = SAMORDNA__V1__INBOX_ACK_REQUEST__INIT;
        ack.subscription = req.subscription;
        ack.upto = last;
        Samordna__V1__InboxAckReply *ar =
            (Samordna__V1__InboxAckReply *)samctl_call(ctl, "notify", "notify.inbox.ack", &ack.base,
                                                       &samordna__v1__inbox_ack_reply__descriptor);
        if (!ar) {
            samctl_list_drop(&list);
            return 1;
        }
        acked = ar->acked;
        FREE(ar);
    }
    samctl_list_end(&list, NULL);
    if (!ctl->json && samctl_flag(a, "ack")) printf("acknowledged %u\n", acked);
    return 0;
}

static json_t *s_cursor_json(const ProtobufCMessage *rec)
{
    const Samordna__V1__Cursor *c = (const Samordna__V1__Cursor *)rec;
    char at[32];
    s_time(c->updated_ms, at, sizeof at);
    return json_pack("{s:s, s:I, s:s}", "service", c->service, "seq", (json_int_t)c->seq, "updated",
                     at);
}

static void s_cursor_row(const ProtobufCMessage *rec)
{
    const Samordna__V1__Cursor *c = (const Samordna__V1__Cursor *)rec;
    char at[32];
    s_time(c->updated_ms, at, sizeof at);
    printf("%-12s %10llu  %s\n", c->service, (unsigned long long)c->seq, at);
}

/* ---- the briefing ---------------------------------------------------------------------------

    A briefing is shown in one of three forms (--format): its text, its HTML page, or a PDF
    made from that page by weasyprint (Debian's weasyprint package), for printing and for
    reading on a phone. HTML and PDF go to --out FILE or to stdout. */

static json_t *s_briefing_json(const Samordna__V1__Briefing *b)
{
    json_t *notes = json_array();
    for (size_t i = 0; i < b->n_notes; i++)
        json_array_append_new(notes, json_string(b->notes[i]));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "id", b->id, "date", b->date,
                     "period_from", b->period_from, "period_to", b->period_to, "programme",
                     b->programme, "lang", b->lang, "text", b->text, "notes", notes);
}

/* Writes data to `out` ("" or NULL: stdout). 0, or 1 after saying why. */
static int s_write_out(const char *out, const char *data, size_t len)
{
    FILE *f = out && *out ? fopen(out, "wb") : stdout;
    if (!f) {
        fprintf(stderr, "samctl: cannot write %s: %s\n", out, strerror(errno));
        return 1;
    }
    bool ok = fwrite(data, 1, len, f) == len;
    if (f != stdout) ok = fclose(f) == 0 && ok;
    if (!ok) fprintf(stderr, "samctl: writing %s failed\n", out && *out ? out : "stdout");
    return ok ? 0 : 1;
}

/* The page as a PDF, by weasyprint, to `out` (or stdout). 0, or 1 after saying why. */
static int s_pdf(const char *html, const char *out)
{
    if (!(out && *out) && isatty(STDOUT_FILENO)) {
        fprintf(stderr, "samctl: a PDF is not for a terminal: give --out FILE or send stdout to a "
                        "file (> orientering.pdf)\n");
        return 1;
    }
    const char *tmpdir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/samctl-briefing-XXXXXX.html",
             tmpdir && *tmpdir ? tmpdir : "/tmp");
    int fd = mkstemps(path, 5);
    if (fd < 0) {
        fprintf(stderr, "samctl: cannot make a temporary file in %s: %s\n",
                tmpdir && *tmpdir ? tmpdir : "/tmp", strerror(errno));
        return 1;
    }
    size_t len = strlen(html);
    bool ok = write(fd, html, len) == (ssize_t)len;
    close(fd);
    int rc = 1;
    if (ok) {
        char *argv[] = {"weasyprint", "--quiet", path, (char *)(out && *out ? out : "-"), NULL};
        pid_t pid;
        int err = posix_spawnp(&pid, "weasyprint", NULL, NULL, argv, environ);
        int status = 0;
        if (err)
            fprintf(stderr,
                    "samctl: --format pdf needs weasyprint (Debian package weasyprint): %s\n",
                    strerror(err));
        else if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
            fprintf(stderr, "samctl: weasyprint could not make the PDF (exit %d)\n",
                    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        else
            rc = 0;
    } else
        fprintf(stderr, "samctl: cannot write the temporary file %s\n", path);
    unlink(path);
    return rc;
}

/* A briefing in the form --format asks for. */
static int s_briefing_show(samctl_t *ctl, const samctl_args_t *a, const Samordna__V1__Briefing *b)
{
    const char *format = samctl_opt(a, "format");
    const char *out = samctl_opt(a, "out");
    if (!format || strcmp(format, "text") == 0) {
        if (ctl->json) {
            samctl_print_json(s_briefing_json(b));
            return 0;
        }
        return s_write_out(out, b->text, strlen(b->text));
    }
    if (!*b->html) {
        fprintf(stderr,
                "samctl: briefing %s was composed without an HTML page (by an earlier "
                "version); --format text shows it\n",
                b->id);
        return 1;
    }
    if (strcmp(format, "html") == 0) return s_write_out(out, b->html, strlen(b->html));
    return s_pdf(b->html, out);
}

static int s_format_ok(const samctl_args_t *a)
{
    const char *f = samctl_opt(a, "format");
    if (!f || !strcmp(f, "text") || !strcmp(f, "html") || !strcmp(f, "pdf")) return 0;
    return samctl_usage_error(a, "--format is text, html or pdf, not '%s'", f);
}

/* notify briefing --preview: the briefing due next, composed now as of --date. */
static int s_briefing(samctl_t *ctl, const samctl_args_t *a)
{
    if (!samctl_flag(a, "preview"))
        return samctl_usage_error(a, "--preview composes the next one; `notify briefings` lists "
                                     "those issued, `notify briefing show ID` shows one");
    if (s_format_ok(a)) return 2;
    Samordna__V1__BriefingPreviewRequest req = SAMORDNA__V1__BRIEFING_PREVIEW_REQUEST__INIT;
    samctl_fill(a, &req.base);
    req.lang = (char *)sam_lang_code(ctl->lang);
    Samordna__V1__Briefing *b = (Samordna__V1__Briefing *)samctl_call(
        ctl, "notify", "notify.briefing.preview", &req.base, &samordna__v1__briefing__descriptor);
    if (!b) return 1;
    int rc = s_briefing_show(ctl, a, b);
    FREE(b);
    return rc;
}

/* notify briefing show ID: an issued briefing as it was composed on its date. */
static int s_briefing_get(samctl_t *ctl, const samctl_args_t *a)
{
    if (s_format_ok(a)) return 2;
    Samordna__V1__BriefingGetRequest req = SAMORDNA__V1__BRIEFING_GET_REQUEST__INIT;
    req.id = (char *)a->pos[0];
    Samordna__V1__BriefingRecord *r = (Samordna__V1__BriefingRecord *)samctl_call(
        ctl, "notify", "notify.briefings.get", &req.base,
        &samordna__v1__briefing_record__descriptor);
    if (!r) return 1;
    int rc = 1;
    if (r->briefing) {
        if (ctl->json && !samctl_opt(a, "format")) {
            json_t *j = s_briefing_json(r->briefing);
            json_object_set_new(j, "state", json_string(r->state));
            json_object_set_new(j, "deliveries", json_integer(r->deliveries));
            json_object_set_new(j, "resends", json_integer(r->resends));
            samctl_print_json(j);
            rc = 0;
        } else
            rc = s_briefing_show(ctl, a, r->briefing);
    }
    FREE(r);
    return rc;
}

static json_t *s_record_json(const ProtobufCMessage *rec)
{
    const Samordna__V1__BriefingRecord *r = (const Samordna__V1__BriefingRecord *)rec;
    char composed[32], sent[32] = "";
    s_time(r->composed_ms, composed, sizeof composed);
    if (r->sent_ms) s_time(r->sent_ms, sent, sizeof sent);
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:i, s:i, s:i}", "id", r->briefing->id,
                     "date", r->briefing->date, "period_from", r->briefing->period_from,
                     "period_to", r->briefing->period_to, "state", r->state, "composed", composed,
                     "sent", r->sent_ms ? sent : NULL, "deliveries", (int)r->deliveries, "resends",
                     (int)r->resends, "notes", (int)r->briefing->n_notes);
}

static void s_record_row(const ProtobufCMessage *rec)
{
    const Samordna__V1__BriefingRecord *r = (const Samordna__V1__BriefingRecord *)rec;
    char period[32];
    snprintf(period, sizeof period, "%s – %s", r->briefing->period_from, r->briefing->period_to);
    bool en = samctl_lang == SAM_LANG_EN;
    const char *state = strcmp(r->state, "sent") == 0   ? (en ? "sent" : "sendt")
                        : strcmp(r->state, "held") == 0 ? (en ? "held" : "venter")
                                                        : r->state;
    printf("%-20s %-10s  %-25s %-8s %10u %7u %5zu\n", r->briefing->id, r->briefing->date, period,
           state, r->deliveries, r->resends, r->briefing->n_notes);
}

/* ---- the table ----------------------------------------------------------------------------- */

/* A list (samctl_list_query) of a notify query: every page or one, records without `needs`
   (a message field) passed over. */
#define S_LISTS(method, request, reply, items, noun, columns, titles, json, row, every, needs)     \
    (&(const samctl_query_t){"notify", method, request, &samordna__v1__##reply##__descriptor,      \
                             items, noun, columns, titles, json, row, every, 0, needs, NULL})

/* What a write publishes (samctl_write): no subject, a fresh event id. */
#define S_WRITES(what, payload)                                                                    \
    (&(const samctl_write_t){"notify", "no.samordna.notify." what,                                 \
                             &samordna__v1__##payload##__descriptor, 0, NULL})

static const samctl_opt_t s_subscriptions_opts[] = {
    {"agency", 0, "AGENCY", SAMCTL_TEXT, 0, "only this agency's subscriptions"},
    {NULL},
};
static const samctl_opt_t s_subscribe_opts[] = {
    {"inbox", 0, NULL, SAMCTL_TEXT, 0, "deliver into an inbox read with `notify inbox`"},
    {"webhook", 0, "URL", SAMCTL_TEXT, 0, "or POST each event to URL, signed (notify secret)"},
    {"format", 0, "json|protobuf", SAMCTL_TEXT, 0,
     "webhook: data as JSON (the default) or as base64 protobuf"},
    {"signature", 0, "v1|v1a|legacy", SAMCTL_TEXT, 0,
     "webhook: Standard Webhooks v1 (HMAC, the default), v1a (Ed25519, notify public-key) "
     "or the deprecated X-Samordna-Signature"},
    {"email", 0, "ADDRESS", SAMCTL_TEXT, 0, "or mail each event to ADDRESS"},
    {"type", 0, "TYPE", SAMCTL_TEXT, 0,
     "only events of this type, or a prefix ending in .* (no.samordna.grants.*)"},
    {"from", 0, "AGENCY", SAMCTL_TEXT, 0, "only events this agency published"},
    {"subject", 0, "SUBJECT", SAMCTL_TEXT, 0, "only events about this subject (a pilot, …)"},
    {"description", 0, "TEXT", SAMCTL_TEXT, 0, "what it is for"},
    {"from-seq", 0, "[SERVICE:]N", SAMCTL_TEXT, SAMCTL_REPEAT,
     "history too: every event after N in SERVICE's outbox (the type's service by default)"},
    {"since", 0, "DATE", SAMCTL_TEXT, 0,
     "history too: every event since that day (YYYY-MM-DD, or epoch ms)"},
    {NULL},
};
static const samctl_opt_t s_log_opts[] = {
    {"page-size", 0, "N", SAMCTL_COUNT, 0, "attempts asked for per call (every page is read)"},
    {NULL},
};
static const samctl_opt_t s_replay_opts[] = {
    {"all", 0, NULL, SAMCTL_TEXT, 0, "every dead letter"},
    {"subscription", 0, "SUBSCRIPTION", SAMCTL_TEXT, 0, "with --all: only this subscription's"},
    {NULL},
};
static const samctl_opt_t s_inbox_opts[] = {
    {"max", 0, "N", SAMCTL_COUNT, 0, "at most N events (the service's default when not given)"},
    {"wait-ms", 0, "MS", SAMCTL_COUNT, 0,
     "wait up to MS for an event when none is there (give --timeout-ms longer than that)"},
    {"ack", 0, NULL, SAMCTL_TEXT, 0, "acknowledge what was read: it is not delivered again"},
    {NULL},
};
#define S_FORMAT_OPTS                                                                              \
    {"format",    0, "text|html|pdf",                                                              \
     SAMCTL_TEXT, 0, "text (default), the HTML page, or a PDF of it (made by weasyprint)"},        \
    {                                                                                              \
        "out", 0, "FILE", SAMCTL_TEXT, 0, "write it to FILE instead of stdout"                     \
    }
static const samctl_opt_t s_briefing_opts[] = {
    {"preview", 0, NULL, SAMCTL_TEXT, 0, "compose the briefing due next, now, and show it"},
    {"date", 0, "YYYY-MM-DD", SAMCTL_DATE, 0,
     "as of that day (default today): what was recorded up to it, the barriers open on it"},
    S_FORMAT_OPTS,
    {NULL},
};
static const samctl_opt_t s_briefing_show_opts[] = {
    S_FORMAT_OPTS,
    {NULL},
};
static const samctl_opt_t s_briefing_resend_opts[] = {
    {"reason", 0, "TEXT", SAMCTL_TEXT, 0, "why it is sent again (kept in notify's log)"},
    {NULL},
};
static const samctl_opt_t s_briefings_opts[] = {
    {"page-size", 0, "N", SAMCTL_COUNT, 0, "at most N (100 when not given)"},
    {"page-token", 0, "TOKEN", SAMCTL_TEXT, 0, "go on where the last page ended"},
    {NULL},
};
static const samctl_cmd_t s_briefing_subs[] = {
    {.name = "show",
     .args = "ID",
     .about = "An issued briefing as it was composed on its date (notify briefings lists them).",
     .opts = s_briefing_show_opts,
     .run = s_briefing_get},
    {.name = "resend",
     .args = "ID",
     .about = "Sends an issued briefing again, to every subscription of it as they are now.",
     .opts = s_briefing_resend_opts,
     .run = samctl_write_run,
     .writes = S_WRITES("briefing.resent", briefing_resend)},
    {NULL},
};

static const samctl_cmd_t s_notify_subs[] = {
    {.name = "subscriptions",
     .about = "The subscriptions: channel, state, filter, queued and dead deliveries.",
     .opts = s_subscriptions_opts,
     .run = samctl_query_run,
     .query = S_LISTS("notify.subscriptions.list",
                      &samordna__v1__subscription_list_request__descriptor, subscription_list_reply,
                      "subscriptions", "subscriptions", "%-24s %-14s %-8s %-9s %-32s %7s %5s  %s",
                      "ID|AGENCY|CHANNEL|STATE|TYPE|QUEUED|DEAD|TARGET", s_subscription_json,
                      s_subscription_row, true, "subscription")},
    {.name = "subscribe",
     .args = "ID",
     .about = "Subscribes to events, delivered by one channel: --inbox, --webhook or --email.\n"
              "By default only events committed from now on; --from-seq and --since ask for\n"
              "history on purpose (docs/notify.md says which events a subscription gets).",
     .opts = s_subscribe_opts,
     .run = s_subscribe,
     .writes = S_WRITES("subscription.created", subscription_created)},
    {.name = "unsubscribe",
     .args = "ID",
     .about = "Ends a subscription (its owner or an admin).",
     .run = samctl_write_run,
     .writes = S_WRITES("subscription.deleted", subscription_deleted)},
    {.name = "secret",
     .args = "ID",
     .about = "The key a webhook receiver verifies the signature with: whsec_… (v1), or\n"
              "for v1a notify's public key whpk_… (there is no secret).",
     .run = s_secret},
    {.name = "public-key",
     .about = "notify's public key whpk_…, that verifies every v1a webhook signature.",
     .run = s_public_key},
    {.name = "log",
     .args = "SUBSCRIPTION",
     .about = "Every delivery attempt: time, outcome, status, latency and error.",
     .opts = s_log_opts,
     .run = samctl_query_run,
     .query = S_LISTS("notify.log", &samordna__v1__log_request__descriptor, log_reply, "entries",
                      "delivery attempts", "%-8s %-20s %-17s %6s %10s  %-32s %s",
                      "N|AT|OUTCOME|STATUS|LATENCY|EVENT|ERROR", s_entry_json, s_entry_row, true,
                      "attempt")},
    {.name = "dead",
     .args = "[SUBSCRIPTION]",
     .about = "Dead letters: deliveries given up after the last retry.",
     .run = samctl_query_run,
     .query = S_LISTS("notify.dead.list", &samordna__v1__dead_list_request__descriptor,
                      dead_list_reply, "deliveries", "dead letters", "%-32s %-32s %-36s %8s  %s",
                      "ID|EVENT|TYPE|ATTEMPTS|LAST ERROR", s_dead_json, s_dead_row, true, NULL)},
    {.name = "replay",
     .args = "[SUBSCRIPTION/QSEQ]",
     .about = "Delivers a dead letter again, or --all of them.",
     .opts = s_replay_opts,
     .run = s_replay},
    {.name = "inbox",
     .args = "SUBSCRIPTION",
     .about = "Reads the events waiting in an inbox subscription, oldest first.",
     .opts = s_inbox_opts,
     .run = s_inbox},
    {.name = "cursors",
     .about = "How far notify has read each service's outbox.",
     .run = samctl_query_run,
     .query =
         S_LISTS("notify.cursors", NULL, cursors_reply, "cursors", "outboxes followed",
                 "%-12s %10s  %s", "OUTBOX|SEQ|UPDATED", s_cursor_json, s_cursor_row, false, NULL)},
    {.name = "briefings",
     .about = "The briefings issued: due date, period, sent or held (waiting for a\n"
              "subscription), deliveries, resends, and parts that could not be composed.",
     .opts = s_briefings_opts,
     .run = samctl_query_run,
     .query = S_LISTS("notify.briefings.list", &samordna__v1__briefing_list_request__descriptor,
                      briefing_list, "items", "briefings", "%-20s %-10s  %-25s %-8s %10s %7s %5s",
                      "ID|DUE|PERIOD|STATE|DELIVERIES|RESENDS|NOTES", s_record_json, s_record_row,
                      false, "briefing")},
    {.name = "briefing",
     .about = "The steering group's briefing: --preview composes the one due next, as of\n"
              "--date; `show ID` an issued one; `resend ID` sends one again. --format html|pdf\n"
              "gives the page to print or read on a phone.",
     .opts = s_briefing_opts,
     .run = s_briefing,
     .subs = s_briefing_subs},
    {NULL},
};

const samctl_cmd_t samctl_notify_cmd = {
    .name = "notify",
    .about =
        "Subscriptions to the services' events and their deliveries (inbox, webhook, e-mail),\n"
        "the delivery log, dead letters, and the steering group's briefing.",
    .subs = s_notify_subs,
};
