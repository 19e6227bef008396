/*  broker_main.c — samordna-broker: reads the options, builds the broker, runs it until
    SIGINT or SIGTERM, destroys it. Everything else is in sam_broker.c. */
#include "sam_broker.h"
#include "sam_config.h"
#include "sam_http.h"
#include "sam_log.h"

#include <stdio.h>
#include <stdlib.h>

static const sam_option_t s_options[] = {
    {"bind", "ENDPOINT", "tcp://127.0.0.1:5555", "endpoint for clients and workers", true},
    {"curve-dir", "DIR", NULL,
     "folder of trusted public certificates (samctl keys new); removing one revokes its key "
     "within about a second",
     false},
    {"cert", "FILE", NULL, "the broker's own secret certificate (samctl keys new --role broker)",
     false},
    {"insecure", NULL, NULL,
     "run without authentication (tests, local runs); only loopback endpoints are accepted", false},
    {"heartbeat-ms", "MS", "2500", "interval of heartbeats to workers", false},
    {"liveness", "N", "3", "missed heartbeats before a silent worker is purged", false},
    {"request-timeout-ms", "MS", "5000",
     "how long a request waits while its service has no worker, then gets 503", false},
    {"queue-max", "N", "10000", "queued requests per service; more are refused with 429", false},
    {"max-msg", "BYTES", "1048576", "largest message; larger ones are refused with 413", false},
    {"metrics", "HOST:PORT", NULL,
     "serve Prometheus metrics, /healthz and /readyz over HTTP here (e.g. 127.0.0.1:9100)", false},
    {NULL, NULL, NULL, NULL, false},
};

/* The command line, kept for SIGHUP: the configuration file is read again from it. */
static int s_argc;
static char **s_argv;

/* SIGHUP: the log level from the configuration file (a --log-level flag still wins). */
static void s_reload(void)
{
    sam_config_t *again = sam_config_new("samordna-broker", "[options]", "", s_options);
    if (again && sam_config_parse(again, s_argc, s_argv) == 0) {
        int level = sam_log_level_parse(sam_config_get(again, "log-level"));
        if (level >= 0) sam_log_threshold = (sam_log_level_t)level;
    } else
        sam_warn("broker.reload_failed reason=\"the configuration no longer reads; the log level "
                 "stays\"");
    sam_config_destroy(&again);
}

int main(int argc, char **argv)
{
    s_argc = argc;
    s_argv = argv;
    sam_config_t *config = sam_config_new(
        "samordna-broker", "[options]",
        "Routes 7/MDP requests from clients to the workers of each service, with 8/MMI, "
        "heartbeats and samordna's credit and identity extensions.",
        s_options);
    if (!config) return 1;
    int rc = sam_config_parse(config, argc, argv);
    if (rc != 0) {
        sam_config_destroy(&config);
        return rc > 0 ? 0 : 2;
    }
    sam_log_init("broker",
                 (sam_log_level_t)sam_log_level_parse(sam_config_get(config, "log-level")));

    bool ok = true;
    sam_broker_config_t cfg = SAM_BROKER_CONFIG_DEFAULTS;
    cfg.insecure = sam_config_flag(config, "insecure");
    cfg.curve_dir = sam_config_get(config, "curve-dir");
    cfg.cert = sam_config_get(config, "cert");
    if (cfg.insecure && (cfg.curve_dir || cfg.cert)) {
        fprintf(stderr, "samordna-broker: --insecure and --curve-dir/--cert exclude each other\n");
        ok = false;
    }
    cfg.heartbeat_ms = (int)sam_config_int(config, "heartbeat-ms", 10, 3600000, &ok);
    cfg.liveness = (int)sam_config_int(config, "liveness", 1, 1000, &ok);
    cfg.request_timeout_ms = (int)sam_config_int(config, "request-timeout-ms", 0, 86400000, &ok);
    cfg.queue_max = (size_t)sam_config_int(config, "queue-max", 1, 10000000, &ok);
    cfg.max_msg = (size_t)sam_config_int(config, "max-msg", 1024, 256L * 1024 * 1024, &ok);
    if (sam_config_npos(config) > 0) {
        fprintf(stderr, "samordna-broker: unexpected argument '%s' (try --help)\n",
                sam_config_pos(config, 0));
        ok = false;
    }
    cfg.nbinds = sam_config_count(config, "bind");
    const char **binds = calloc(cfg.nbinds ? cfg.nbinds : 1, sizeof *binds);
    if (!ok || !binds) {
        free(binds);
        sam_config_destroy(&config);
        return 2;
    }
    for (size_t i = 0; i < cfg.nbinds; i++)
        binds[i] = sam_config_nth(config, "bind", i);
    cfg.binds = binds;

    sam_metrics_t *metrics = NULL;
    sam_http_t *http = NULL;
    const char *metrics_at = sam_config_get(config, "metrics");
    if (metrics_at) {
        char err[256];
        metrics = sam_metrics_new("samordna_");
        http = metrics ? sam_http_new(metrics_at, metrics, err, sizeof err) : NULL;
        if (!http) {
            fprintf(stderr, "samordna-broker: %s\n", metrics ? err : "out of memory");
            sam_metrics_destroy(&metrics);
            free(binds);
            sam_config_destroy(&config);
            return 2;
        }
        sam_info("metrics.listening endpoint=%s port=%u", sam_logv(metrics_at),
                 (unsigned)sam_http_port(http));
    }
    cfg.metrics = metrics;
    sam_broker_t *broker = sam_broker_new(&cfg);
    free(binds);
    rc = 1;
    if (broker) {
        rc = sam_broker_run(broker, s_reload) == 0 ? 0 : 1;
        sam_broker_destroy(&broker);
    }
    sam_http_destroy(&http); /* before the registry it reads */
    sam_metrics_destroy(&metrics);
    sam_config_destroy(&config);
    return rc;
}
