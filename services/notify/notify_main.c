/*  samordna-notify — subscriptions and lossless delivery of every service's events to agency
    systems (a durable inbox over ZeroMQ), webhooks and e-mail; the steering group's
    half-yearly briefing and the reminders before award reporting deadlines.

    The design is in notify.h; the tables in notify_store.h. This file holds the definition
    (its table built from notify.def), the options, and the start/tick/stop hooks.
*/
#include "notify.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The table: notify.def's rows (s_rows, SAM_SERVICE_ROWS). */
#define SAM_SERVICE_DEF_FILE "notify.def"
#include "sam_service_rows.h"

static const sam_option_t s_options[] = {
    {"follow", "SERVICES", "registry,status,grants",
     "comma-separated services whose outboxes are followed", false},
    {"follow-wait-ms", "MS", "5000", "how long each events.read long poll waits", false},
    {"retry-schedule", "LIST", "10s,30s,2m,10m,30m,1h,2h,4h,8h,12h,24h,48h",
     "delays between delivery attempts (ms, s, m, h); after the last, a dead letter", false},
    {"http-timeout-ms", "MS", "10000", "timeout of one webhook or SMTP transfer", false},
    {"max-in-flight", "N", "64", "webhook and e-mail transfers at once", false},
    {"smtp-url", "URL", NULL, "SMTP relay for e-mail subscriptions (smtp://host:port)", false},
    {"mail-from", "ADDRESS", "samordna@localhost", "sender address of e-mail", false},
    {"briefing-dates", "MM-DD,…", "",
     "when the steering group's briefing is due, every year; by default the programme's own "
     "dates: every briefing_interval_months from the start of its period (registry)",
     false},
    {"programme", "ID", "", "the programme briefed on (default: the registry's first)", false},
    {"briefing-lang", "nb|en", "nb", "the language of briefings and reminders", false},
    {"briefing-from", "AGENCY", "fmov", "source of briefings and reminders: the pilot owner",
     false},
    {"reminder-days", "N", "60", "days before an award's reporting deadline to remind (0: off)",
     false},
    {"schedule-interval-ms", "MS", "60000", "how often due briefings and deadlines are checked",
     false},
    {"call-timeout-ms", "MS", "1000", "timeout of each call to status and grants", false},
    {"log-keep-days", "DAYS", "90", "how long the delivery log keeps each attempt", false},
    {"webhook-signing-key", "FILE", NULL,
     "Ed25519 key of v1a webhook signatures: a file holding whsk_ and the key in base64, mode "
     "0600 "
     "(default: made once, kept in the store)",
     false},
    {NULL, NULL, NULL, NULL, false},
};

/* Parses "250ms", "10s", "2m", "1h" or a bare number of ms; -1 when malformed. */
static int64_t s_duration_ms(const char *s, size_t len)
{
    char buf[32];
    if (len == 0 || len >= sizeof buf) return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    char *end;
    long long v = strtoll(buf, &end, 10);
    if (end == buf || v < 0) return -1;
    int64_t mult = 1;
    if (strcmp(end, "ms") == 0 || *end == 0)
        mult = 1;
    else if (strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "m") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else
        return -1;
    if (v > 30LL * 86400000 / mult) return -1;
    return v * mult;
}

/* --retry-schedule into n's schedule; on a refusal (logged) n's schedule is unchanged. */
static int s_parse_schedule(notify_t *n, sam_config_t *cfg)
{
    int64_t ms[NOTIFY_MAX_SCHEDULE];
    size_t count = 0;
    const char *sched = sam_config_get(cfg, "retry-schedule");
    for (const char *p = sched; p && *p;) {
        size_t len = strcspn(p, ",");
        int64_t one = s_duration_ms(p, len);
        if (one < 0 || count == NOTIFY_MAX_SCHEDULE) {
            sam_error("options.invalid retry-schedule=%s reason=\"durations like 10s,5m,2h, "
                      "at most %d\"",
                      sam_logv(sched), NOTIFY_MAX_SCHEDULE);
            return -1;
        }
        ms[count++] = one;
        p += len;
        if (*p == ',') p++;
    }
    if (count == 0) {
        sam_error("options.invalid retry-schedule=\"\" reason=\"at least one delay\"");
        return -1;
    }
    memcpy(n->schedule_ms, ms, count * sizeof ms[0]);
    n->n_schedule = count;
    return 0;
}

/* SIGHUP: the retry schedule; deliveries already waiting keep the time they were given. */
static int s_reload(sam_service_t *svc, sam_config_t *again)
{
    notify_t *n = sam_service_ctx(svc);
    if (s_parse_schedule(n, again) != 0) return -1;
    sam_info("notify.reloaded retry_schedule=%s attempts=%zu",
             sam_logv(sam_config_get(again, "retry-schedule")), (size_t)n->n_schedule);
    return 0;
}

static int s_parse_options(notify_t *n, sam_config_t *cfg)
{
    const char *follow = sam_config_get(cfg, "follow");
    for (const char *p = follow; p && *p;) {
        size_t len = strcspn(p, ",");
        if (len > 0 && len < sizeof n->follow[0].service) {
            if (n->n_follow == NOTIFY_MAX_FOLLOW) {
                sam_error("options.invalid follow=%s reason=\"more than %d services\"",
                          sam_logv(follow), NOTIFY_MAX_FOLLOW);
                return -1;
            }
            memcpy(n->follow[n->n_follow].service, p, len);
            n->follow[n->n_follow].service[len] = 0;
            n->n_follow++;
        }
        p += len;
        if (*p == ',') p++;
    }
    if (s_parse_schedule(n, cfg) != 0) return -1;
    bool ok = true;
    n->follow_wait_ms = (int)sam_config_int(cfg, "follow-wait-ms", 0, 30000, &ok);
    n->http_timeout_ms = sam_config_int(cfg, "http-timeout-ms", 100, 600000, &ok);
    n->max_in_flight = sam_config_int(cfg, "max-in-flight", 1, 10000, &ok);
    n->smtp_url = sam_config_get(cfg, "smtp-url");
    n->mail_from = sam_config_get(cfg, "mail-from");
    n->briefing_dates = sam_config_get(cfg, "briefing-dates");
    n->briefing_from = sam_config_get(cfg, "briefing-from");
    n->programme = sam_config_get(cfg, "programme");
    const char *lang = sam_config_get(cfg, "briefing-lang");
    if (sam_lang_parse(lang, &n->briefing_lang)) {
        sam_error("options.invalid briefing-lang=%s reason=\"nb or en\"", sam_logv(lang));
        return -1;
    }
    n->reminder_days = sam_config_int(cfg, "reminder-days", 0, 3650, &ok);
    n->schedule_interval_ms = sam_config_int(cfg, "schedule-interval-ms", 100, 86400000, &ok);
    n->call_timeout_ms = sam_config_int(cfg, "call-timeout-ms", 100, 60000, &ok);
    n->log_keep_days = sam_config_int(cfg, "log-keep-days", 1, 36500, &ok);
    if (!notify_valid_id(n->briefing_from)) {
        sam_error("options.invalid briefing-from=%s reason=\"not an agency id\"",
                  sam_logv(n->briefing_from));
        return -1;
    }
    return ok ? 0 : -1;
}

/* The random key the webhook secrets are derived from: made once, kept in the store. */
static int s_master_key(notify_t *n)
{
    MDB_txn *w;
    int rc = sam_store_begin(sam_service_store(n->svc), NULL, true, &w);
    if (rc) return rc;
    MDB_val k = {3, "key"}, v;
    rc = mdb_get(w, n->dbi.meta, &k, &v);
    if (rc == 0 && v.mv_size == sizeof n->master_key) {
        memcpy(n->master_key, v.mv_data, sizeof n->master_key);
        mdb_txn_abort(w);
        return 0;
    }
    randombytes_buf(n->master_key, sizeof n->master_key);
    v.mv_size = sizeof n->master_key;
    v.mv_data = n->master_key;
    rc = mdb_put(w, n->dbi.meta, &k, &v, 0);
    if (!rc) return mdb_txn_commit(w);
    mdb_txn_abort(w);
    return rc;
}

/* The v1a key from a file: "whsk_<base64>" of the 32-byte seed or of libsodium's 64-byte
   secret key (seed and public key), readable by its owner only. 0, or -1 with why set. */
static int s_key_file(const char *file, uint8_t seed[32], char *why, size_t cap)
{
    struct stat st;
    FILE *f = fopen(file, "r");
    if (!f || fstat(fileno(f), &st) != 0) {
        snprintf(why, cap, "cannot read %s", file);
        if (f) fclose(f);
        return -1;
    }
    char text[256];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = 0;
    while (len && strchr(" \t\r\n", text[len - 1]))
        text[--len] = 0;
    uint8_t key[64];
    size_t n = 0;
    if (st.st_mode & 077) {
        snprintf(why, cap, "%s is readable by others than its owner (chmod 600 it)", file);
        return -1;
    }
    if (strncmp(text, "whsk_", 5) != 0 ||
        sodium_base642bin(key, sizeof key, text + 5, len - 5, NULL, &n, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        (n != 32 && n != 64)) {
        snprintf(why, cap,
                 "%s does not hold whsk_ and the base64 of a 32-byte Ed25519 seed (or a "
                 "64-byte secret key)",
                 file);
        sodium_memzero(key, sizeof key);
        return -1;
    }
    memcpy(seed, key, 32);
    if (n == 64) { /* the public half must be the seed's */
        uint8_t pk[32], sk[64];
        crypto_sign_seed_keypair(pk, sk, seed);
        bool same = sodium_memcmp(pk, key + 32, 32) == 0;
        sodium_memzero(sk, sizeof sk);
        if (!same) {
            snprintf(why, cap, "%s: its public half is not the key's own", file);
            sodium_memzero(key, sizeof key);
            return -1;
        }
    }
    sodium_memzero(key, sizeof key);
    return 0;
}

/* The v1a signing key: --webhook-signing-key, or a seed made once and kept in the store. */
static int s_signing_key(notify_t *n)
{
    const char *file = sam_config_get(sam_service_config(n->svc), "webhook-signing-key");
    uint8_t seed[32];
    char why[300];
    if (file && *file) { /* "" as no option: the key kept in the store */
        if (s_key_file(file, seed, why, sizeof why)) {
            sam_error("start.failed option=webhook-signing-key reason=%s", sam_logv(why));
            return -1;
        }
    } else {
        MDB_txn *w = NULL;
        int rc = sam_store_begin(sam_service_store(n->svc), NULL, true, &w);
        MDB_val k = {4, "sign"}, v;
        if (!rc) rc = mdb_get(w, n->dbi.meta, &k, &v);
        if (rc == 0 && v.mv_size == sizeof seed) {
            memcpy(seed, v.mv_data, sizeof seed);
            mdb_txn_abort(w);
        } else if (rc == MDB_NOTFOUND) {
            randombytes_buf(seed, sizeof seed);
            v.mv_size = sizeof seed;
            v.mv_data = seed;
            rc = mdb_put(w, n->dbi.meta, &k, &v, 0);
            rc = rc ? (mdb_txn_abort(w), rc) : mdb_txn_commit(w);
        } else if (rc == 0) {
            mdb_txn_abort(w);
            rc = SAM_STORE_CORRUPT;
        } else if (w) {
            mdb_txn_abort(w);
        }
        if (rc) {
            snprintf(why, sizeof why, "webhook signing key: %s", sam_store_strerror(rc));
            sam_error("start.failed reason=%s", sam_logv(why));
            return -1;
        }
    }
    crypto_sign_seed_keypair(n->sign_pk, n->sign_sk, seed);
    sodium_memzero(seed, sizeof seed);
    char pk[64];
    sam_info("webhook.signing_key public_key=%s from=%s", notify_public_key(n, pk, sizeof pk),
             sam_logv(file ? file : "store"));
    return 0;
}

static int s_start(sam_service_t *svc)
{
    notify_t *n = sam_service_ctx(svc);
    n->svc = svc;
    n->m_attempts = sam_metrics_counter(
        sam_service_metrics(svc), "notify_attempts_total",
        "Delivery attempts by subscription and outcome (delivered, retry, dead, throttled, gone, "
        "handshake, handshake-failed).",
        "subscription,outcome");
    if (sodium_init() < 0) return -1;
    if (s_parse_options(n, sam_service_config(svc))) return -1;
    n->dbi.subs = sam_service_dbi(svc, "subs");
    n->dbi.state = sam_service_dbi(svc, "state");
    n->dbi.match = sam_service_dbi(svc, "match");
    n->dbi.queue = sam_service_dbi(svc, "queue");
    n->dbi.inbox = sam_service_dbi(svc, "inbox");
    n->dbi.dead = sam_service_dbi(svc, "dead");
    n->dbi.log = sam_service_dbi(svc, "log");
    n->dbi.cursors = sam_service_dbi(svc, "cursors");
    n->dbi.sent = sam_service_dbi(svc, "sent");
    n->dbi.meta = sam_service_dbi(svc, "nmeta");
    n->dbi.starts = sam_service_dbi(svc, "starts");
    n->dbi.briefings = sam_service_dbi(svc, "briefings");
    n->replay_scan = true;
    notify_replica_start(n);
    int rc = s_master_key(n);
    if (rc) {
        char why[200];
        snprintf(why, sizeof why, "signing key: %s", sam_store_strerror(rc));
        sam_error("start.failed reason=%s", sam_logv(why));
        return -1;
    }
    if (s_signing_key(n)) return -1;
    if (notify_deliver_start(n)) {
        sam_error("start.failed reason=\"libcurl could not start\"");
        return -1;
    }
    if (notify_share_start(n)) {
        sam_error("start.failed reason=\"too many leases for one instance\"");
        return -1;
    }
    if (notify_schedule_start(n)) return -1;
    if (notify_follow_start(n)) return -1;
    sam_info("notify.started follow=%zu retries=%zu max_in_flight=%ld smtp=%s", n->n_follow,
             n->n_schedule, n->max_in_flight, sam_logv(n->smtp_url ? n->smtp_url : ""));
    return 0;
}

/* The delivery log keeps --log-keep-days of attempts; pruned hourly. */
static void s_prune(notify_t *n)
{
    int64_t now = notify_now_ms();
    if (now < n->next_prune_ms) return;
    n->next_prune_ms = now + 3600000;
    MDB_txn *w;
    if (sam_store_begin(sam_service_store(n->svc), NULL, true, &w)) return;
    long gone = notify_log_prune(w, &n->dbi, now - n->log_keep_days * 86400000L);
    int rc = gone < 0 ? SAM_STORE_CORRUPT : notify_commit_relaxed(n, w);
    if (gone < 0) mdb_txn_abort(w);
    if (rc)
        sam_error("log.prune_failed error=%s", sam_logv(sam_store_strerror(rc)));
    else if (gone)
        sam_info("log.pruned attempts=%ld keep_days=%ld", gone, n->log_keep_days);
}

static void s_tick(sam_service_t *svc)
{
    notify_t *n = sam_service_ctx(svc);
    notify_replica_tick(n); /* first: the deliveries and the schedule ask the same */
    notify_follow_tick(n);
    notify_deliver_tick(n);
    notify_schedule_tick(n);
    s_prune(n);
}

static void s_stop(sam_service_t *svc)
{
    notify_t *n = sam_service_ctx(svc);
    notify_deliver_stop(n);
    notify_follow_stop(n);
    notify_schedule_stop(n);
    notify_replica_stop(n);
}

static int s_migrate(sam_service_t *svc, MDB_txn *txn, uint32_t from)
{
    /* version 1 is the first: a new store needs nothing beyond its (empty) tables */
    return from <= NOTIFY_SCHEMA ? 0 : SAM_STORE_VERSION;
}

static const sam_service_def_t s_def = {
    .name = "notify",
    .summary = "Subscriptions and delivery of samordna's events: inbox, webhooks, e-mail.",
    .options = s_options,
    SAM_SERVICE_ROWS,
    SAM_SERVICE_STORE(notify_tables, NOTIFY_SCHEMA, s_migrate),
    .start = s_start,
    .tick = s_tick,
    .tick_ms = 5,
    .stop = s_stop,
    .reload = s_reload,
};

int main(int argc, char **argv)
{
    notify_t ctx = {0};
    return sam_service_main(&s_def, &ctx, argc, argv);
}
