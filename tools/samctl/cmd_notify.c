/*  cmd_notify.c — `samctl notify …`: subscriptions, the delivery log, dead letters, inboxes.

    samctl notify subscriptions [--agency A]
    samctl notify subscribe ID (--inbox | --webhook URL | --email ADDRESS)
                            [--type TYPE] [--from AGENCY] [--subject S] [--description D]
                            [--from-seq [SERVICE:]N]... [--since DATE]
    samctl notify unsubscribe ID
    samctl notify secret ID
    samctl notify log SUBSCRIPTION [--page-size N]
    samctl notify dead [SUBSCRIPTION]
    samctl notify replay (SUBSCRIPTION/QSEQ | --all [--subscription S])
    samctl notify inbox SUBSCRIPTION [--max N] [--wait-ms MS] [--ack]
    samctl notify cursors
    samctl notify briefing --preview [--date YYYY-MM-DD]
*/
#include "samctl.h"
#include "sam_service.h"

#include "samordna/v1/events.pb-c.h"
#include "samordna/v1/notify.pb-c.h"

#include <czmq.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *s_usage =
    "notify subscriptions [--agency A] | subscribe ID (--inbox|--webhook URL|--email ADDR) "
    "[--type T] [--from AGENCY] [--subject S] [--description D] [--from-seq [SERVICE:]N] "
    "[--since YYYY-MM-DD] | unsubscribe ID | secret ID | "
    "log SUB | dead [SUB] | replay (SUB/QSEQ | --all [--subscription SUB]) | "
    "inbox SUB [--max N] [--wait-ms MS] [--ack] | cursors | briefing --preview [--date D]";

static const char *s_channel(int c)
{
    switch (c) {
    case SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_INBOX:
        return "inbox";
    case SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_WEBHOOK:
        return "webhook";
    case SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_EMAIL:
        return "email";
    default:
        return "?";
    }
}

static const char *s_state(int s)
{
    switch (s) {
    case SAMORDNA__V1__NOTIFY_SUB_STATE__NOTIFY_SUB_STATE_PENDING:
        return "pending";
    case SAMORDNA__V1__NOTIFY_SUB_STATE__NOTIFY_SUB_STATE_ACTIVE:
        return "active";
    case SAMORDNA__V1__NOTIFY_SUB_STATE__NOTIFY_SUB_STATE_DISABLED:
        return "disabled";
    default:
        return "?";
    }
}

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

static int s_subscriptions(samctl_t *ctl, int argc, char **argv)
{
    Samordna__V1__SubscriptionListRequest req = SAMORDNA__V1__SUBSCRIPTION_LIST_REQUEST__INIT;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--agency") == 0 && i + 1 < argc)
            req.agency = argv[++i];
        else
            return samctl_usage("notify", s_usage, "subscriptions: unexpected argument");
    }
    if (!ctl->json)
        printf("%-24s %-14s %-8s %-9s %-32s %7s %5s  %s\n", "ID", "AGENCY", "CHANNEL", "STATE",
               "TYPE", "QUEUED", "DEAD", "TARGET");
    char token[80] = "";
    do {
        req.page_token = token;
        Samordna__V1__SubscriptionListReply *rep =
            (Samordna__V1__SubscriptionListReply *)samctl_call(
                ctl, "notify", "notify.subscriptions.list", &req.base,
                &samordna__v1__subscription_list_reply__descriptor);
        if (!rep) return 1;
        for (size_t i = 0; i < rep->n_subscriptions; i++) {
            Samordna__V1__SubscriptionInfo *in = rep->subscriptions[i];
            Samordna__V1__Subscription *s = in->subscription;
            int st = in->state ? in->state->state : 0;
            const char *target = *s->url ? s->url : *s->email ? s->email : "";
            if (ctl->json) {
                samctl_print_json(
                    json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "id",
                              s->id, "agency", s->agency, "channel", s_channel(s->channel), "state",
                              s_state(st), "reason", in->state ? in->state->reason : "", "type",
                              s->type, "source", s->source, "subject", s->subject, "target", target,
                              "queued", (json_int_t)in->queued, "dead", (json_int_t)in->dead));
            } else {
                printf("%-24s %-14s %-8s %-9s %-32s %7llu %5llu  %s%s%s%s%s\n", s->id, s->agency,
                       s_channel(s->channel), s_state(st), *s->type ? s->type : "*",
                       (unsigned long long)in->queued, (unsigned long long)in->dead, target,
                       *s->source ? " from=" : "", s->source, *s->subject ? " subject=" : "",
                       s->subject);
            }
        }
        snprintf(token, sizeof token, "%s", rep->next_page_token);
        protobuf_c_message_free_unpacked(&rep->base, NULL);
    } while (*token);
    return 0;
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
   not named). Returns 0, or a usage error. */
static int s_from_seq(const char *arg, const char *type, Samordna__V1__HistoryFrom *h, char *svc,
                      size_t cap)
{
    const char *colon = strchr(arg, ':');
    const char *num = colon ? colon + 1 : arg;
    if (colon) {
        size_t len = (size_t)(colon - arg);
        if (!len || len >= cap) return -1;
        memcpy(svc, arg, len);
        svc[len] = 0;
    } else if (!s_service_of_type(type, svc, cap)) {
        fprintf(stderr,
                "samctl: --from-seq %s: name the service (e.g. --from-seq grants:%s): "
                "the type filter names none\n",
                arg, arg);
        return -2;
    }
    char *end;
    unsigned long long n = strtoull(num, &end, 10);
    if (!*num || *end || *num == '-') return -1;
    h->service = svc;
    h->after_seq = n;
    return 0;
}

static int s_subscribe(samctl_t *ctl, int argc, char **argv)
{
    Samordna__V1__Subscription s = SAMORDNA__V1__SUBSCRIPTION__INIT;
    const char *from_args[S_MAX_FROM];
    size_t nfrom = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(a, "--inbox") == 0)
            s.channel = SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_INBOX;
        else if (strcmp(a, "--webhook") == 0 && has) {
            s.channel = SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_WEBHOOK;
            s.url = argv[++i];
        } else if (strcmp(a, "--email") == 0 && has) {
            s.channel = SAMORDNA__V1__NOTIFY_CHANNEL__NOTIFY_CHANNEL_EMAIL;
            s.email = argv[++i];
        } else if (strcmp(a, "--type") == 0 && has)
            s.type = argv[++i];
        else if (strcmp(a, "--from") == 0 && has)
            s.source = argv[++i];
        else if (strcmp(a, "--subject") == 0 && has)
            s.subject = argv[++i];
        else if (strcmp(a, "--description") == 0 && has)
            s.description = argv[++i];
        else if (strcmp(a, "--from-seq") == 0 && has && nfrom < S_MAX_FROM)
            from_args[nfrom++] = argv[++i];
        else if (strcmp(a, "--since") == 0 && has)
            s.since = argv[++i];
        else if (a[0] != '-' && !*s.id)
            s.id = (char *)a;
        else
            return samctl_usage("notify", s_usage, "subscribe: unexpected argument");
    }
    if (!*s.id || !s.channel)
        return samctl_usage("notify", s_usage, "subscribe: name an id and a channel");
    Samordna__V1__HistoryFrom from[S_MAX_FROM], *fromp[S_MAX_FROM];
    char services[S_MAX_FROM][64];
    for (size_t i = 0; i < nfrom; i++) {
        samordna__v1__history_from__init(&from[i]);
        int rc = s_from_seq(from_args[i], s.type, &from[i], services[i], sizeof services[i]);
        if (rc == -2) return 2;
        if (rc) return samctl_usage("notify", s_usage, "--from-seq: [SERVICE:]N, N a number");
        fromp[i] = &from[i];
    }
    s.n_from = nfrom;
    s.from = fromp;
    Samordna__V1__SubscriptionCreated ev = SAMORDNA__V1__SUBSCRIPTION_CREATED__INIT;
    ev.subscription = &s;
    return samctl_publish(ctl, "notify", "no.samordna.notify.subscription.created", NULL, NULL,
                          &ev.base);
}

static int s_unsubscribe(samctl_t *ctl, int argc, char **argv)
{
    if (argc != 3) return samctl_usage("notify", s_usage, "unsubscribe: name one subscription");
    Samordna__V1__SubscriptionDeleted ev = SAMORDNA__V1__SUBSCRIPTION_DELETED__INIT;
    ev.id = argv[2];
    return samctl_publish(ctl, "notify", "no.samordna.notify.subscription.deleted", NULL, NULL,
                          &ev.base);
}

static int s_secret(samctl_t *ctl, int argc, char **argv)
{
    if (argc != 3) return samctl_usage("notify", s_usage, "secret: name one subscription");
    Samordna__V1__SubscriptionSecretRequest req = SAMORDNA__V1__SUBSCRIPTION_SECRET_REQUEST__INIT;
    req.id = argv[2];
    Samordna__V1__SubscriptionSecretReply *rep =
        (Samordna__V1__SubscriptionSecretReply *)samctl_call(
            ctl, "notify", "notify.subscriptions.secret", &req.base,
            &samordna__v1__subscription_secret_reply__descriptor);
    if (!rep) return 1;
    if (ctl->json)
        samctl_print_json(json_pack("{s:s}", "secret", rep->secret));
    else
        printf("%s\n", rep->secret);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    return 0;
}

static int s_log(samctl_t *ctl, int argc, char **argv)
{
    Samordna__V1__LogRequest req = SAMORDNA__V1__LOG_REQUEST__INIT;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--page-size") == 0 && i + 1 < argc)
            req.page_size = (uint32_t)atoi(argv[++i]);
        else if (argv[i][0] != '-' && !*req.subscription)
            req.subscription = argv[i];
        else
            return samctl_usage("notify", s_usage, "log: unexpected argument");
    }
    if (!*req.subscription) return samctl_usage("notify", s_usage, "log: name a subscription");
    if (!ctl->json)
        printf("%-8s %-20s %-17s %6s %10s  %-32s %s\n", "N", "AT", "OUTCOME", "STATUS", "LATENCY",
               "EVENT", "ERROR");
    do {
        Samordna__V1__LogReply *rep = (Samordna__V1__LogReply *)samctl_call(
            ctl, "notify", "notify.log", &req.base, &samordna__v1__log_reply__descriptor);
        if (!rep) return 1;
        for (size_t i = 0; i < rep->n_entries; i++) {
            Samordna__V1__Attempt *a = rep->entries[i]->attempt;
            char at[32];
            s_time(a->at_ms, at, sizeof at);
            if (ctl->json)
                samctl_print_json(json_pack("{s:I, s:s, s:s, s:i, s:I, s:s, s:s, s:I, s:s}", "n",
                                            (json_int_t)rep->entries[i]->n, "at", at, "outcome",
                                            a->outcome, "status", (int)a->status, "latency_us",
                                            (json_int_t)a->latency_us, "event_id", a->event_id,
                                            "event_type", a->event_type, "qseq",
                                            (json_int_t)a->qseq, "error", a->error));
            else
                printf("%-8llu %-20s %-17s %6u %8.1fms  %-32s %s\n",
                       (unsigned long long)rep->entries[i]->n, at, a->outcome, a->status,
                       (double)a->latency_us / 1000.0, a->event_id, a->error);
        }
        req.page_token = rep->next_page_token;
        protobuf_c_message_free_unpacked(&rep->base, NULL);
    } while (req.page_token);
    return 0;
}

static int s_dead(samctl_t *ctl, int argc, char **argv)
{
    Samordna__V1__DeadListRequest req = SAMORDNA__V1__DEAD_LIST_REQUEST__INIT;
    if (argc > 3) return samctl_usage("notify", s_usage, "dead: at most one subscription");
    if (argc == 3) req.subscription = argv[2];
    if (!ctl->json)
        printf("%-32s %-32s %-36s %8s  %s\n", "ID", "EVENT", "TYPE", "ATTEMPTS", "LAST ERROR");
    char token[100] = "";
    do {
        req.page_token = token;
        Samordna__V1__DeadListReply *rep =
            (Samordna__V1__DeadListReply *)samctl_call(ctl, "notify", "notify.dead.list", &req.base,
                                                       &samordna__v1__dead_list_reply__descriptor);
        if (!rep) return 1;
        for (size_t i = 0; i < rep->n_deliveries; i++) {
            Samordna__V1__Delivery *d = rep->deliveries[i];
            char id[100];
            snprintf(id, sizeof id, "%s/%llu", d->subscription, (unsigned long long)d->qseq);
            const char *eid = d->event ? d->event->id : "";
            const char *type = d->event ? d->event->type : "";
            if (ctl->json)
                samctl_print_json(json_pack("{s:s, s:s, s:s, s:s, s:i, s:s}", "id", id, "service",
                                            d->service, "event_id", eid, "event_type", type,
                                            "attempts", (int)d->attempts, "last_error",
                                            d->last_error));
            else
                printf("%-32s %-32s %-36s %8u  %s\n", id, eid, type, d->attempts, d->last_error);
        }
        snprintf(token, sizeof token, "%s", rep->next_page_token);
        protobuf_c_message_free_unpacked(&rep->base, NULL);
    } while (*token);
    return 0;
}

static int s_replay(samctl_t *ctl, int argc, char **argv)
{
    Samordna__V1__DeadReplayRequest req = SAMORDNA__V1__DEAD_REPLAY_REQUEST__INIT;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--all") == 0)
            req.all = true;
        else if (strcmp(argv[i], "--subscription") == 0 && i + 1 < argc)
            req.subscription = argv[++i];
        else if (argv[i][0] != '-' && !*req.id)
            req.id = argv[i];
        else
            return samctl_usage("notify", s_usage, "replay: unexpected argument");
    }
    Samordna__V1__DeadReplayReply *rep =
        (Samordna__V1__DeadReplayReply *)samctl_call(ctl, "notify", "notify.dead.replay", &req.base,
                                                     &samordna__v1__dead_replay_reply__descriptor);
    if (!rep) return 1;
    if (ctl->json)
        printf("{\"replayed\":%u}\n", rep->replayed);
    else
        printf("replayed %u\n", rep->replayed);
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    return 0;
}

static int s_inbox(samctl_t *ctl, int argc, char **argv)
{
    Samordna__V1__InboxReadRequest req = SAMORDNA__V1__INBOX_READ_REQUEST__INIT;
    bool ack = false;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--max") == 0 && i + 1 < argc)
            req.max = (uint32_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--wait-ms") == 0 && i + 1 < argc)
            req.wait_ms = (uint32_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--ack") == 0)
            ack = true;
        else if (argv[i][0] != '-' && !*req.subscription)
            req.subscription = argv[i];
        else
            return samctl_usage("notify", s_usage, "inbox: unexpected argument");
    }
    if (!*req.subscription) return samctl_usage("notify", s_usage, "inbox: name a subscription");
    Samordna__V1__InboxReadReply *rep = (Samordna__V1__InboxReadReply *)samctl_call(
        ctl, "notify", "notify.inbox.read", &req.base, &samordna__v1__inbox_read_reply__descriptor);
    if (!rep) return 1;
    uint64_t last = 0;
    for (size_t i = 0; i < rep->n_items; i++) {
        Samordna__V1__InboxItem *it = rep->items[i];
        const char *subject = it->event ? sam_event_attr(it->event, "subject") : NULL;
        if (ctl->json)
            samctl_print_json(json_pack(
                "{s:I, s:s, s:I, s:s, s:s, s:s, s:s}", "qseq", (json_int_t)it->qseq, "service",
                it->service, "seq", (json_int_t)it->seq, "id", it->event ? it->event->id : "",
                "type", it->event ? it->event->type : "", "source",
                it->event ? it->event->source : "", "subject", subject ? subject : ""));
        else
            printf("%-8llu %s/%llu %s %s %s%s%s\n", (unsigned long long)it->qseq, it->service,
                   (unsigned long long)it->seq, it->event ? it->event->type : "",
                   it->event ? it->event->source : "", it->event ? it->event->id : "",
                   subject ? " subject=" : "", subject ? subject : "");
        last = it->qseq;
    }
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    if (ack && last) {
        Samordna__V1__InboxAckRequest a = SAMORDNA__V1__INBOX_ACK_REQUEST__INIT;
        a.subscription = req.subscription;
        a.upto = last;
        Samordna__V1__InboxAckReply *ar = (Samordna__V1__InboxAckReply *)samctl_call(
            ctl, "notify", "notify.inbox.ack", &a.base, &samordna__v1__inbox_ack_reply__descriptor);
        if (!ar) return 1;
        if (!ctl->json) printf("acknowledged %u\n", ar->acked);
        protobuf_c_message_free_unpacked(&ar->base, NULL);
    }
    return 0;
}

static int s_cursors(samctl_t *ctl, int argc, char **argv)
{
    Samordna__V1__CursorsReply *rep = (Samordna__V1__CursorsReply *)samctl_call(
        ctl, "notify", "notify.cursors", NULL, &samordna__v1__cursors_reply__descriptor);
    if (!rep) return 1;
    for (size_t i = 0; i < rep->n_cursors; i++) {
        Samordna__V1__Cursor *c = rep->cursors[i];
        char at[32];
        s_time(c->updated_ms, at, sizeof at);
        if (ctl->json)
            samctl_print_json(json_pack("{s:s, s:I, s:s}", "service", c->service, "seq",
                                        (json_int_t)c->seq, "updated", at));
        else
            printf("%-12s %10llu  %s\n", c->service, (unsigned long long)c->seq, at);
    }
    protobuf_c_message_free_unpacked(&rep->base, NULL);
    return 0;
}

/* The next briefing, composed now from the status and grants services. */
static int s_briefing(samctl_t *ctl, int argc, char **argv)
{
    Samordna__V1__BriefingPreviewRequest req = SAMORDNA__V1__BRIEFING_PREVIEW_REQUEST__INIT;
    bool preview = false;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--preview") == 0)
            preview = true;
        else if (strcmp(argv[i], "--date") == 0 && i + 1 < argc)
            req.date = argv[++i];
        else
            return samctl_usage("notify", s_usage, "briefing: unexpected argument");
    }
    if (!preview)
        return samctl_usage("notify", s_usage,
                            "briefing: --preview shows the next one (briefings are issued on "
                            "their dates by the service)");
    Samordna__V1__Briefing *b = (Samordna__V1__Briefing *)samctl_call(
        ctl, "notify", "notify.briefing.preview", &req.base, &samordna__v1__briefing__descriptor);
    if (!b) return 1;
    if (ctl->json) {
        json_t *notes = json_array();
        for (size_t i = 0; i < b->n_notes; i++)
            json_array_append_new(notes, json_string(b->notes[i]));
        samctl_print_json(json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "id", b->id, "date", b->date,
                                    "period_from", b->period_from, "period_to", b->period_to,
                                    "text", b->text, "notes", notes));
    } else {
        fputs(b->text, stdout);
    }
    protobuf_c_message_free_unpacked(&b->base, NULL);
    return 0;
}

int samctl_cmd_notify(samctl_t *ctl, int argc, char **argv)
{
    static const struct {
        const char *word;
        int (*fn)(samctl_t *, int, char **);
    } subs[] = {
        {"subscriptions", s_subscriptions},
        {"subscribe", s_subscribe},
        {"unsubscribe", s_unsubscribe},
        {"secret", s_secret},
        {"log", s_log},
        {"dead", s_dead},
        {"replay", s_replay},
        {"inbox", s_inbox},
        {"cursors", s_cursors},
        {"briefing", s_briefing},
    };
    if (argc < 2) return samctl_usage("notify", s_usage, "name a subcommand");
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (strcmp(argv[1], subs[i].word) == 0) return subs[i].fn(ctl, argc, argv);
    return samctl_usage("notify", s_usage, "unknown subcommand");
}
