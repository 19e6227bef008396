/*  sam_service.c — the service runtime's loop and life: options, set-up and tear-down, the
    dispatch of a batch, and the harness that drives it without brokers.

    The loop, in one thread:
      1. wait on every broker socket (and on the nearest timer: heartbeat, tick, long poll);
      2. drain what has arrived, up to the credit, into one batch (sam_service_wire.c);
      3. answer the batch: each request is first admitted against its row of the table
         (rt_admit in sam_service_table.c: row, role, size, decoding — the one reject path),
         then pings and queries at once from one read transaction; every events.publish of
         the batch in ONE write transaction (sam_service_write.c: nested per event so a
         refusal never leaves a partial write), committed and synced once; then all replies.
         What a handler returns becomes its answer in one place (rt_outcome);
      4. answer long polls whose news has arrived, expire the rest (sam_service_outbox.c:
         events.read and a query's wait_ms are parked the same way, rt_park);
      5. heartbeat the brokers, reconnect the silent ones with backoff.
    Because the broker keeps up to `credit` requests in flight to us, a burst of publishes
    arrives as a batch and costs one fsync instead of one per event: that is group commit.

    Nothing read from the store is cached across iterations (the outbox head is read inside
    each write transaction), so several instances can share one environment on one host.
    How the runtime's files divide the work is in sam_service_int.h.
*/
#include "sam_service_int.h"

#include "sam_client.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#define S_WATCH_MS 100 /* one broker: how often its connection watch is looked at at most */

static const sam_option_t s_std_options[] = {
    {"broker", "ENDPOINT", "tcp://127.0.0.1:5555", "broker to serve through", true},
    {"data-dir", "DIR", "var", "folder of the stores; this service uses DIR/<service>", false},
    {"credit", "N", "256", "requests the broker may keep in flight to this instance", false},
    {"insecure", NULL, NULL, "accept callers without authentication (loopback runs, tests)", false},
    {"cert", "FILE", NULL,
     "this service's secret CURVE certificate (samctl keys new --role service)", false},
    {"server-key", "KEY|FILE", NULL, "the broker's public key: Z85 text or its certificate file",
     false},
    {"nosync", NULL, NULL,
     "opt-in weaker durability: do not fsync each commit (survives a process crash, not a "
     "power loss)",
     false},
    {"map-size-mb", "MB", "16384", "largest size the store may grow to", false},
    {"instance", "NAME", NULL, "name of this instance in logs and ping (default host-pid)", false},
    {"max-event-bytes", "N", "262144",
     "largest CloudEvent accepted, and the default limit of a row's body or payload", false},
    {"heartbeat-ms", "MS", "2500", "heartbeat interval towards the brokers", false},
    {"liveness", "N", "3", "missed heartbeats before a broker counts as gone", false},
    {"lease-ms", "MS", "1000",
     "how long shared work (a follower, a schedule, a delivery shard) stays with an instance "
     "after its last renewal: the takeover time when it dies",
     false},
    {"metrics", "HOST:PORT", NULL,
     "serve Prometheus metrics, /healthz and /readyz over HTTP here (e.g. 127.0.0.1:9101)", false},
    {"replica", "MODE", "primary",
     "primary (writes; the default), standby (follows the primary's outbox into its own store "
     "and answers reads until samctl promote) or elect (etcd decides which instance is the "
     "primary: --etcd); docs/scaling.md, \"Across hosts\"",
     false},
    {"etcd", "URLS", NULL,
     "etcd endpoints for --replica elect, comma-separated (http://10.0.0.1:2379,…)", false},
    {"etcd-prefix", "PATH", "/samordna", "where in etcd the elections are kept", false},
    {"etcd-ttl-ms", "MS", "2000",
     "the primary's etcd lease: how long a lost primary keeps its place, and the takeover time",
     false},
    {"etcd-min-members", "N", "1",
     "campaign only while this many instances of the service are live in etcd (this one "
     "included): with 3 in synchronous mode, 2, so that a restart of all of them elects one "
     "that has every acknowledged write",
     false},
    {"sync-standby", NULL, NULL,
     "synchronous mode: answer a write only once a standby has committed it", false},
    {"sync-timeout-ms", "MS", "2000",
     "synchronous mode: how long a write waits for a standby before it is answered 503", false},
};

/*  The harness (fuzzers): set once before sam_service_main(), read by it. The one piece of
    process-wide state in the runtime, because a fuzzer's driver owns main(). */
static sam_service_harness_fn s_harness;
static void *s_harness_arg;

void sam_service_set_harness(sam_service_harness_fn fn, void *arg)
{
    s_harness = fn;
    s_harness_arg = arg;
}

/* ---- what handlers reach -------------------------------------------------------------------- */

void *sam_service_ctx(sam_service_t *svc)
{
    return svc->ctx;
}

void sam_service_follower(sam_service_t *svc, const char *followed, uint64_t cursor, uint64_t head,
                          bool down)
{
    size_t i = 0;
    while (i < svc->nfollowers && strcmp(svc->followers[i].service, followed) != 0)
        i++;
    if (i == svc->nfollowers) {
        if (i == sizeof svc->followers / sizeof svc->followers[0]) return;
        svc->nfollowers++;
        snprintf(svc->followers[i].service, sizeof svc->followers[i].service, "%s", followed);
    }
    svc->followers[i].cursor = cursor;
    svc->followers[i].head = head;
    svc->followers[i].down = down;
}

sam_metrics_t *sam_service_metrics(sam_service_t *svc)
{
    return svc->metrics;
}

/* ---- metrics (--metrics) ------------------------------------------------------------------ */

/* Group-commit batch sizes: powers of two up to the largest credit. */
static const double s_batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

void rt_metrics_declare(sam_service_t *svc)
{
    sam_metrics_t *m = svc->metrics;
    svc->m_requests = sam_metrics_counter(
        m, "requests_total", "Requests answered, by method (or event type) and status code.",
        "service,method,code");
    svc->m_latency =
        sam_metrics_histogram(m, "request_duration_seconds",
                              "From a request's arrival to its answer, by method (or event type).",
                              "service,method", NULL, 0);
    svc->m_batch = sam_metrics_histogram(
        m, "write_batch_events", "Events written per group commit (one transaction).", "service",
        s_batch_bounds, sizeof s_batch_bounds / sizeof s_batch_bounds[0]);
    svc->m_commit =
        sam_metrics_histogram(m, "write_batch_seconds",
                              "Time of a group commit, the fsync included.", "service", NULL, 0);
    svc->m_head =
        sam_metrics_gauge(m, "outbox_head", "The newest outbox sequence number.", "service");
    svc->m_brokers = sam_metrics_gauge(
        m, "brokers_connected", "Brokers that answered on their current connection.", "service");
    sam_metric_set(svc->m_brokers, (const char *const[]){svc->def->name}, 0);
    sam_metrics_ready(m, "broker", false, "no broker answers yet");
}

void rt_metric_reply(sam_service_t *svc, const rt_request_t *r, uint32_t code)
{
    if (!svc->metrics) return;
    /* the row's own name, never the client's: an unknown method must not make a series */
    const char *method = r->erow ? r->erow->name : r->row ? r->row->name : "(unknown)";
    char status[12];
    snprintf(status, sizeof status, "%u", code);
    sam_metric_add(svc->m_requests, (const char *const[]){svc->def->name, method, status}, 1);
    if (r->received_us)
        sam_metric_observe(svc->m_latency, (const char *const[]){svc->def->name, method},
                           (double)(zclock_usecs() - r->received_us) / 1e6);
}

void rt_metric_batch(sam_service_t *svc, size_t n, double seconds)
{
    if (!svc->metrics) return;
    const char *const label[] = {svc->def->name};
    sam_metric_observe(svc->m_batch, label, (double)n);
    sam_metric_observe(svc->m_commit, label, seconds);
}

void rt_metric_head(sam_service_t *svc, uint64_t head)
{
    if (!svc->metrics || head <= svc->head_shown) return;
    svc->head_shown = head;
    sam_metric_set(svc->m_head, (const char *const[]){svc->def->name}, (double)head);
}

sam_store_t *sam_service_store(sam_service_t *svc)
{
    return svc->store;
}

sam_lease_t *sam_service_lease(sam_service_t *svc)
{
    return svc->lease;
}

bool sam_service_is_primary(sam_service_t *svc)
{
    return rt_replica_writer(svc, zclock_mono());
}

sam_config_t *sam_service_config(sam_service_t *svc)
{
    return svc->config;
}

MDB_dbi sam_service_dbi(sam_service_t *svc, const char *table)
{
    return sam_store_dbi(svc->store, table);
}

sam_client_t *sam_service_client(sam_service_t *svc)
{
    if (!svc->client) svc->client = sam_service_client_new(svc);
    return svc->client;
}

sam_client_t *sam_service_client_new(sam_service_t *svc)
{
    if (svc->harness) return NULL; /* no brokers to ask */
    const char *eps[RT_MAX_BROKERS];
    for (size_t i = 0; i < svc->nbrokers; i++)
        eps[i] = svc->brokers[i].endpoint;
    char err[256] = "";
    sam_client_opts_t opts = {0};
    if (!svc->insecure) {
        opts.client_cert = svc->cert;
        opts.server_key = svc->server_key;
    }
    sam_client_t *client = sam_client_new(eps, svc->nbrokers, &opts, err, sizeof err);
    if (!client) sam_error("client.failed reason=%s", sam_logv(err));
    return client;
}

const sam_service_def_t *sam_service_def(sam_service_t *svc)
{
    return svc->def;
}

/* ---- dispatch ------------------------------------------------------------------------------- */

/* Calls a query's handler; true when it asks to wait (wait_ms, no body, no error). */
static bool s_query_call(sam_service_t *svc, rt_request_t *r, MDB_txn *txn)
{
    sam_call_t call = {
        .id = r->req->id,
        .method = r->req->method,
        .msg = r->msg,
        .body = r->row->request ? NULL : r->req->body.data,
        .body_len = r->row->request ? 0 : r->req->body.len,
        .caller = rt_caller(svc, r),
    };
    free(r->reply.body);
    memset(&r->reply, 0, sizeof r->reply);
    r->reply.code = SAM_OK;
    rt_outcome(svc, r->row, r->req->id, r->row->query(svc, txn, &call, &r->reply), &r->reply);
    return r->reply.code == SAM_OK && !r->reply.body && r->reply.wait_ms > 0;
}

/* A parked query (rt_again_fn): its handler runs again; true while it still waits. */
static bool s_query_again(sam_service_t *svc, rt_request_t *r, MDB_txn *txn, uint64_t last_seq,
                          int64_t now)
{
    (void)last_seq; /* a query knows its own news */
    return s_query_call(svc, r, txn) && now < r->deadline;
}

/*  Runs an admitted request's row: a query's handler, or a built-in. Returns true when the
    request was taken over (parked as a long poll, or queued for the write transaction),
    false when its reply is ready to send. */
static bool s_run(sam_service_t *svc, rt_request_t *r, MDB_txn *rtxn, int64_t now)
{
    if (r->row->kind == SAM_KIND_BUILTIN) return r->row->builtin(svc, r, rtxn, now) == 1;
    if (r->row->threaded && !svc->harness) return rt_slow_start(svc, r, now) == 1;
    if (!s_query_call(svc, r, rtxn)) return false;
    rt_park(svc, r, r->reply.wait_ms, now, s_query_again); /* a long poll */
    return true;
}

static void s_handle_batch(sam_service_t *svc, rt_request_t **batch, size_t n, int64_t now)
{
    svc->npubs = 0;
    svc->batch_ms = sam_clock_now_ms(); /* the batch's time, stored with its events */
    MDB_txn *rtxn = NULL;
    if (sam_store_begin(svc->store, NULL, false, &rtxn) != 0) rtxn = NULL;
    for (size_t i = 0; i < n; i++) {
        rt_request_t *r = batch[i];
        svc->n_requests++;
        if (!rtxn)
            sam_reply_error(&r->reply, SAM_INTERNAL, "cannot open a read transaction");
        else if ((r->row = rt_admit(svc, r)) && s_run(svc, r, rtxn, now)) {
            batch[i] = NULL; /* parked, or answered by the write batch */
            continue;
        }
        rt_send_reply(svc, r);
    }
    if (rtxn) mdb_txn_abort(rtxn);
    size_t npubs = svc->npubs;
    if (npubs) rt_write_batch(svc, svc->pubs, npubs);
    for (size_t i = 0; i < npubs; i++)
        rt_request_destroy(&svc->pubs[i]);
    svc->npubs = 0;
    for (size_t i = 0; i < n; i++)
        rt_request_destroy(&batch[i]);
    if (npubs) rt_serve_waiters(svc, now);
}

/* ---- the loop ------------------------------------------------------------------------------- */

static volatile sig_atomic_t s_hup; /* SIGHUP arrived (the handler only sets it) */

static void s_on_hup(int sig)
{
    (void)sig;
    s_hup = 1;
}

/*  SIGHUP: what can change without a restart — the log level — is read again from the
    configuration file (a flag on the command line still wins), and the service's own
    reload hook runs; what was done is logged. */
static void s_reload(sam_service_t *svc)
{
    s_hup = 0;
    char program[64];
    snprintf(program, sizeof program, "samordna-%s", svc->def->name);
    sam_config_t *again = sam_config_new(program, "[options]", "", svc->options);
    if (again && sam_config_parse(again, svc->argc, svc->argv) == 0) {
        int level = sam_log_level_parse(sam_config_get(again, "log-level"));
        if (level >= 0) sam_log_threshold = (sam_log_level_t)level;
        bool own = !svc->def->reload || svc->def->reload(svc, again) == 0;
        sam_info("service.reloaded log_level=%s own=%s", sam_config_get(again, "log-level"),
                 !svc->def->reload ? "none"
                 : own             ? "applied"
                                   : "refused");
    } else
        sam_warn("service.reload_failed reason=\"the configuration no longer reads; nothing "
                 "changed\"");
    sam_config_destroy(&again);
}

static void s_loop(sam_service_t *svc)
{
    rt_request_t *batch[SAM_MDP_MAX_CREDIT];
    struct sigaction sa = {0};
    sa.sa_handler = s_on_hup;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
    while (!zsys_interrupted) {
        sam_metrics_beat(svc->metrics);
        if (s_hup) s_reload(svc);
        int64_t now = zclock_mono();
        int64_t due = now + 1000;
        for (size_t i = 0; i < svc->nbrokers; i++) {
            rt_broker_t *b = &svc->brokers[i];
            int64_t t = b->sock ? b->hb_due : b->reconnect_at;
            if (t < due) due = t;
        }
        if (svc->def->tick && svc->tick_due < due) due = svc->tick_due;
        int64_t lease_in = sam_lease_due_ms(svc->lease);
        if (lease_in >= 0 && now + lease_in < due) due = now + lease_in;
        if (svc->waiters && now + 20 < due) due = now + 20; /* another instance may commit */
        if (svc->n_slow && now + 2 < due) due = now + 2;    /* a long query's answer, soon */
        if (rt_replica_busy(svc) && now + 20 < due) due = now + 20; /* following, an election */
        zmq_pollitem_t items[2 * RT_MAX_BROKERS + 2 * RT_MAX_BROKERS];
        int map[RT_MAX_BROKERS], nitems = 0, nwatch = 0, nextra = 0;
        for (size_t i = 0; i < svc->nbrokers; i++)
            if (svc->brokers[i].sock) {
                items[nitems] =
                    (zmq_pollitem_t){zsock_resolve(svc->brokers[i].sock), 0, ZMQ_POLLIN, 0};
                map[nitems++] = (int)i;
            }
        /* after the brokers: their watches, so that a broken connection wakes us */
        for (int k = 0; k < nitems; k++)
            if (svc->brokers[map[k]].watch)
                items[nitems + nwatch++] =
                    (zmq_pollitem_t){zsock_resolve(svc->brokers[map[k]].watch), 0, ZMQ_POLLIN, 0};
        /* after those: a standby's follower, whose pages are taken as soon as they come */
        nextra =
            (int)rt_replica_pollitems(svc, items + nitems + nwatch,
                                      sizeof items / sizeof items[0] - (size_t)(nitems + nwatch));
        long timeout = due > now ? (long)(due - now) : 0;
        bool more = true;
        int flags = ZMQ_DONTWAIT;
        if (nitems == 1 && nextra == 0) {
            /* One broker, the usual case: the first receive is libzmq's own blocking one,
               bounded by the timers. It sleeps on the socket's mailbox with fewer system
               calls per wake-up than zmq_poll. Its watch is looked at every 100 ms. */
            int wait = timeout > S_WATCH_MS ? S_WATCH_MS : (int)timeout;
            zmq_setsockopt(items[0].socket, ZMQ_RCVTIMEO, &wait, sizeof wait);
            flags = 0;
        } else {
            int rc = zmq_poll(items, nitems + nwatch + nextra, timeout);
            if (rc < 0 && errno != EINTR) break;
            more = rc > 0;
            now = zclock_mono();
        }
        /* Drain everything that is there, up to the credit, into one batch. */
        size_t n = 0;
        while (more && n < (size_t)svc->credit) {
            more = false;
            for (int k = 0; k < nitems && n < (size_t)svc->credit; k++) {
                int bi = map[k];
                if (!svc->brokers[bi].sock) continue;
                /* A non-blocking receive says whether anything is waiting: asking
                   zsock_events first would cost a second trip into libzmq per message. */
                bool got;
                /* A broker never has more than our credit in flight, so one Batch holds no
                   more: the items past it are answered 503 (sam_service_wire.c). */
                size_t room = SAM_MDP_MAX_CREDIT - n;
                if (room > (size_t)svc->credit) room = (size_t)svc->credit;
                n += rt_receive(svc, bi, &now, flags, &got, batch + n, room);
                flags = ZMQ_DONTWAIT;
                if (got) more = true;
            }
        }
        if (n) s_handle_batch(svc, batch, n, now);
        rt_serve_waiters(svc, now);
        rt_replica_tick(svc, now);
        rt_heartbeat(svc, now);
        sam_lease_renew(svc->lease, false); /* when due; logs its own failures */
        if (svc->def->tick && now >= svc->tick_due) {
            svc->def->tick(svc);
            svc->tick_due = zclock_mono() + svc->def->tick_ms;
        }
        for (size_t i = 0; i < svc->nbrokers; i++)
            rt_flush_replies(&svc->brokers[i]);
    }
}

/*  SIGTERM: stop taking new work, finish what was given. The requests the brokers already
    sent (up to the credit each) are read without waiting and handled like any batch — a
    write is committed and answered — and the parked long polls are answered with what they
    have, all within S_DRAIN_MS. Only then does s_destroy tell each broker DISCONNECT, and a
    broker hands whatever it sent after that to another instance, or keeps it queued: nothing
    given to this instance is dropped. */
#define S_DRAIN_MS 5000
static void s_drain(sam_service_t *svc)
{
    rt_request_t *batch[SAM_MDP_MAX_CREDIT];
    int64_t now = zclock_mono(), end = now + S_DRAIN_MS;
    size_t answered = 0, parked = 0;
    for (rt_request_t *w = svc->waiters; w; w = w->next)
        parked++;
    sam_info("service.draining parked=%zu within_ms=%d", parked, S_DRAIN_MS);
    for (bool more = true; more && now < end;) {
        more = false;
        size_t n = 0;
        for (size_t bi = 0; bi < svc->nbrokers && n < (size_t)svc->credit; bi++) {
            bool got = true;
            while (svc->brokers[bi].sock && got && n < (size_t)svc->credit) {
                size_t room = SAM_MDP_MAX_CREDIT - n;
                if (room > (size_t)svc->credit) room = (size_t)svc->credit;
                n += rt_receive(svc, (int)bi, &now, ZMQ_DONTWAIT, &got, batch + n, room);
                more |= got;
            }
        }
        if (n) s_handle_batch(svc, batch, n, now);
        answered += n;
        now = zclock_mono();
    }
    rt_serve_waiters(svc, end + RT_MAX_WAIT_MS); /* past every deadline: answered now */
    for (size_t i = 0; i < svc->nbrokers; i++)
        rt_flush_replies(&svc->brokers[i]);
    sam_info("service.drained requests=%zu long_polls=%zu", answered, parked);
}

/* ---- set-up and tear-down ----------------------------------------------------------------- */

static void s_destroy(sam_service_t *svc)
{
    while (svc->waiters) {
        rt_request_t *w = svc->waiters;
        svc->waiters = w->next;
        rt_request_destroy(&w);
    }
    for (size_t i = 0; i < svc->nbrokers; i++) {
        rt_broker_t *b = &svc->brokers[i];
        rt_flush_replies(b);
        sam_batch_free(&b->out);
        if (b->sock) rt_broker_send(b, SAM_MDPW_DISCONNECT, NULL);
        rt_broker_close(b);
        free(b->endpoint);
    }
    rt_replica_close(svc); /* when the loop did not run (it is closed there otherwise) */
    sam_client_destroy(&svc->client);
    sam_lease_destroy(&svc->lease);
    rt_slow_wait_all(svc);        /* a long query left running reads the store until it ends */
    sam_http_destroy(&svc->http); /* before the registry it reads */
    sam_metrics_destroy(&svc->metrics);
    sam_store_destroy(&svc->store);
    sam_config_destroy(&svc->config);
    free(svc->options);
    free(svc->all);
    free(svc->methods);
    free(svc->events);
}

static int s_open_store(sam_service_t *svc)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", sam_config_get(svc->config, "data-dir"), svc->def->name);
    bool ok = true;
    sam_store_opts_t so = {0};
    so.map_size_mb = (size_t)sam_config_int(svc->config, "map-size-mb", 16, 1 << 24, &ok);
    so.nosync = sam_config_flag(svc->config, "nosync");
    if (!ok) return -1;
    char err[512];
    svc->store = sam_store_open(dir, svc->def->tables, &so, err, sizeof err);
    if (!svc->store) {
        sam_error("store.open_failed reason=%s", sam_logv(err));
        return -1;
    }
    svc->outbox = sam_store_dbi(svc->store, "outbox");
    svc->dedup = sam_store_dbi(svc->store, "dedup");
    MDB_txn *txn;
    int rc = sam_store_begin(svc->store, NULL, true, &txn);
    if (rc) {
        sam_error("store.open_failed reason=%s", sam_logv(sam_store_strerror(rc)));
        return -1;
    }
    uint32_t have = sam_store_schema(svc->store, txn);
    if (have > svc->def->schema_version) {
        mdb_txn_abort(txn);
        sam_error("store.too_new dir=%s schema=%u understood=%u", sam_logv(dir), have,
                  svc->def->schema_version);
        return -1;
    }
    if (have < svc->def->schema_version) {
        if (svc->def->migrate) rc = svc->def->migrate(svc, txn, have);
        if (!rc) rc = sam_store_set_schema(svc->store, txn, svc->def->schema_version);
        if (!rc)
            sam_info("store.migrated dir=%s from=%u to=%u", sam_logv(dir), have,
                     svc->def->schema_version);
    }
    if (!rc)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    if (rc) {
        sam_error("store.migration_failed dir=%s reason=%s", sam_logv(dir),
                  sam_logv(sam_store_strerror(rc)));
        return -1;
    }
    sam_info("store.open dir=%s schema=%u nosync=%s", sam_logv(dir), svc->def->schema_version,
             so.nosync ? "yes" : "no");
    return 0;
}

/* --insecure on anything but loopback would open the service to anyone. */
static bool s_loopback(const char *ep)
{
    return strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "inproc://", 9) == 0 ||
           strncmp(ep, "tcp://127.", 10) == 0 || strncmp(ep, "tcp://localhost:", 16) == 0 ||
           strncmp(ep, "tcp://[::1]:", 12) == 0;
}

uint32_t sam_service_feed(sam_service_t *svc, zmsg_t **msg_p)
{
    svc->last_code = 0;
    if (!svc->harness || !msg_p || !*msg_p) return 0;
    int64_t now = zclock_mono();
    zmq_msg_t part[RT_MAX_PARTS];
    int n = 0;
    bool too_many = false;
    zframe_t *f;
    while ((f = zmsg_pop(*msg_p))) {
        if (n == RT_MAX_PARTS)
            too_many = true;
        else if (zmq_msg_init_size(&part[n], zframe_size(f)) == 0) {
            if (zframe_size(f)) memcpy(zmq_msg_data(&part[n]), zframe_data(f), zframe_size(f));
            n++;
        }
        zframe_destroy(&f);
    }
    zmsg_destroy(msg_p);
    rt_request_t *r = NULL;
    size_t got = rt_on_parts(svc, 0, part, n, too_many, now, &r, 1);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&part[i]);
    if (got) s_handle_batch(svc, &r, 1, now);
    rt_serve_waiters(svc, now + 60000); /* a parked long poll is answered, not kept */
    return svc->last_code;
}

int sam_service_main(const sam_service_def_t *def, void *ctx, int argc, char **argv)
{
    sam_service_t svc_s, *svc = &svc_s;
    memset(svc, 0, sizeof *svc);
    svc->def = def;
    svc->ctx = ctx;
    size_t nstd = sizeof s_std_options / sizeof s_std_options[0], nown = 0;
    while (def->options && def->options[nown].name)
        nown++;
    svc->options = calloc(nstd + nown + 1, sizeof *svc->options);
    if (!svc->options) return 1;
    memcpy(svc->options, s_std_options, sizeof s_std_options);
    if (nown) memcpy(svc->options + nstd, def->options, nown * sizeof *def->options);
    char program[64];
    snprintf(program, sizeof program, "samordna-%s", def->name);
    svc->config = sam_config_new(program, "[options]", def->summary, svc->options);
    int rc = svc->config ? sam_config_parse(svc->config, argc, argv) : -1;
    svc->argc = argc;
    svc->argv = argv;
    if (rc != 0) {
        s_destroy(svc);
        return rc == 1 ? 0 : 2;
    }
    bool ok = true;
    sam_log_init(def->name,
                 (sam_log_level_t)sam_log_level_parse(sam_config_get(svc->config, "log-level")));
    svc->insecure = sam_config_flag(svc->config, "insecure");
    svc->credit = (int)sam_config_int(svc->config, "credit", 1, SAM_MDP_MAX_CREDIT, &ok);
    svc->max_event_bytes =
        (size_t)sam_config_int(svc->config, "max-event-bytes", 1024, 16 << 20, &ok);
    svc->max_body = svc->max_event_bytes + 64;
    svc->heartbeat_ms = (int)sam_config_int(svc->config, "heartbeat-ms", 10, 600000, &ok);
    svc->liveness = (int)sam_config_int(svc->config, "liveness", 1, 100, &ok);
    svc->nbrokers = sam_config_count(svc->config, "broker");
    if (svc->nbrokers > RT_MAX_BROKERS) {
        fprintf(stderr, "%s: at most %d brokers\n", program, RT_MAX_BROKERS);
        ok = false;
    }
    for (size_t i = 0; ok && i < svc->nbrokers; i++) {
        const char *ep = sam_config_nth(svc->config, "broker", i);
        if (svc->insecure && !s_loopback(ep)) {
            fprintf(stderr, "%s: --insecure is refused for the non-loopback broker %s\n", program,
                    ep);
            ok = false;
        }
        svc->brokers[i].endpoint = strdup(ep);
        svc->brokers[i].backoff_ms = 100;
    }
    svc->cert = sam_config_get(svc->config, "cert");
    const char *server_key = sam_config_get(svc->config, "server-key");
    if (ok && svc->insecure && (svc->cert || server_key)) {
        fprintf(stderr, "%s: --insecure and --cert/--server-key exclude each other\n", program);
        ok = false;
    } else if (ok && !svc->insecure) {
        char err[512];
        if (!svc->cert || !server_key) {
            fprintf(stderr,
                    "%s: CURVE needs --cert (this service's secret certificate) and "
                    "--server-key (the broker's public key); --insecure runs without, on "
                    "loopback only\n",
                    program);
            ok = false;
        } else if (sam_keys_check_secret(svc->cert, err, sizeof err) != 0 ||
                   sam_keys_server_key(server_key, svc->server_key, err, sizeof err) != 0) {
            fprintf(stderr, "%s: %s\n", program, err);
            ok = false;
        }
    }
    const char *inst = sam_config_get(svc->config, "instance");
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    if (inst)
        snprintf(svc->instance, sizeof svc->instance, "%s", inst);
    else
        snprintf(svc->instance, sizeof svc->instance, "%s-%d", host, (int)getpid());
    if (!ok) {
        s_destroy(svc);
        return 2;
    }
    if (rt_table_build(svc) != 0) {
        s_destroy(svc);
        return 1;
    }
    const char *metrics_at = sam_config_get(svc->config, "metrics");
    if (metrics_at) {
        char err[256];
        svc->metrics = sam_metrics_new("samordna_");
        svc->http = svc->metrics ? sam_http_new(metrics_at, svc->metrics, err, sizeof err) : NULL;
        if (!svc->http) {
            fprintf(stderr, "%s: %s\n", program, svc->metrics ? err : "out of memory");
            s_destroy(svc);
            return 2;
        }
        rt_metrics_declare(svc);
        sam_info("metrics.listening endpoint=%s port=%u", sam_logv(metrics_at),
                 (unsigned)sam_http_port(svc->http));
    }
    zsys_init();
    zsys_set_linger(0);
    rc = 1;
    svc->harness = s_harness != NULL;
    if (svc->harness && svc->nbrokers == 0) svc->nbrokers = 1;
    bool up = s_open_store(svc) == 0;
    sam_metrics_ready(svc->metrics, "store", up, "the store did not open");
    MDB_txn *rtxn = NULL;
    if (up && svc->metrics &&
        mdb_txn_begin(sam_store_env(svc->store), NULL, MDB_RDONLY, &rtxn) == 0) {
        rt_metric_head(svc, sam_service_last_seq(svc, rtxn));
        mdb_txn_abort(rtxn);
    }
    if (up) {
        bool lok = true;
        int lease_ms = (int)sam_config_int(svc->config, "lease-ms", 200, 600000, &lok);
        svc->lease = lok ? sam_lease_new(svc->store, svc->instance, lease_ms) : NULL;
        if (!svc->lease) {
            sam_error("options.invalid option=lease-ms reason=\"needs 200..600000 ms\"");
            up = false;
        }
    }
    up = up && (!def->start || def->start(svc) == 0);
    up = up && (svc->harness || rt_replica_open(svc) == 0);
    if (up && svc->harness) {
        svc->brokers[0].generation = 1;
        svc->brokers[0].ext_identity = true;
        rc = s_harness(svc, s_harness_arg);
        if (def->stop) def->stop(svc);
    } else if (up) {
        int64_t now = zclock_mono();
        for (size_t i = 0; i < svc->nbrokers; i++)
            rt_broker_connect(svc, &svc->brokers[i], now);
        svc->tick_due = now;
        sam_lease_renew(svc->lease, true); /* this instance's share from the start */
        sam_info("service.started instance=%s brokers=%zu credit=%d", sam_logv(svc->instance),
                 svc->nbrokers, svc->credit);
        s_loop(svc);
        sd_notify(0, "STOPPING=1");
        s_drain(svc);
        sam_metrics_ready(svc->metrics, "stopping", false, "the service is stopping");
        rc = rt_replica_exit_code(svc);
        rt_replica_close(svc); /* held replies answered; a leader resigns */
        if (def->stop) def->stop(svc);
        sam_lease_release_all(svc->lease); /* the others take over at their next renewal */
        sam_info("service.stopped requests=%" PRIu64 " applied=%" PRIu64 " refused=%" PRIu64
                 " duplicates=%" PRIu64 " batches=%" PRIu64 " malformed=%" PRIu64,
                 svc->n_requests, svc->n_applied, svc->n_refused, svc->n_duplicates, svc->n_batches,
                 svc->n_bad);
    }
    s_destroy(svc);
    return rc;
}
