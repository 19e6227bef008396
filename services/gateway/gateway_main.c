/*  gateway_main.c — samordna-gateway: reads the options, builds the gateway, serves until
    SIGTERM or SIGINT, drains, destroys it. The server is gateway.c, the broker side
    gateway_io.c, the routes gw_*.c (gateway.h lists them). */
#include "gateway.h"
#include "sam_config.h"
#include "sam_http.h"
#include "sam_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The suite's services, whose tables say which event types exist (service.describe). */
static const char *const s_default_services[] = {"registry", "status", "grants", "notify"};

static const sam_option_t s_options[] = {
    {"broker", "ENDPOINT", "tcp://127.0.0.1:5555", "a broker to send requests to (repeatable)",
     true},
    {"listen", "HOST:PORT", "127.0.0.1:8080",
     "serve HTTP here: a loopback address (127.0.0.1 or [::1]; callers are not authenticated), "
     "port 0 for any free one",
     false},
    {"insecure", NULL, NULL, "no CURVE to the broker (an --insecure broker: tests, local runs)",
     false},
    {"cert", "FILE", NULL, "connect with CURVE as this secret certificate (samctl keys new)",
     false},
    {"server-key", "KEY|FILE", NULL, "the broker's public key (Z85 text or its certificate file)",
     false},
    {"service", "NAME", NULL,
     "a service whose event types the gateway accepts, read from its service.describe "
     "(repeatable; default registry, status, grants and notify)",
     true},
    {"max-body-bytes", "BYTES", "1048576",
     "largest request body; a larger one is refused 413 before it is read", false},
    {"max-connections", "N", "1024", "HTTP connections at once; requests on more get 503", false},
    {"idle-timeout-s", "S", "30",
     "close a connection that sends nothing for this long (slow or idle clients)", false},
    {"header-timeout-ms", "MS", "10000",
     "a request whose headers took longer than this to arrive is refused 408", false},
    {"body-timeout-ms", "MS", "30000",
     "a request whose body takes longer than this after its headers is refused 408", false},
    {"request-timeout-ms", "MS", "5000",
     "how long an answer of a service is waited for, then 503 with Retry-After", false},
    {"metrics", "HOST:PORT", NULL,
     "serve Prometheus metrics, /healthz and /readyz over HTTP here (e.g. 127.0.0.1:9104)", false},
    {NULL, NULL, NULL, NULL, false},
};

static int s_argc;
static char **s_argv;

/* SIGHUP: the log level from the configuration file (a --log-level flag still wins). */
static void s_reload(void)
{
    sam_config_t *again = sam_config_new("samordna-gateway", "[options]", "", s_options);
    if (again && sam_config_parse(again, s_argc, s_argv) == 0) {
        int level = sam_log_level_parse(sam_config_get(again, "log-level"));
        if (level >= 0) sam_log_threshold = (sam_log_level_t)level;
    } else
        sam_warn("gateway.reload_failed reason=\"the configuration no longer reads; the log "
                 "level stays\"");
    sam_config_destroy(&again);
}

int main(int argc, char **argv)
{
    s_argc = argc;
    s_argv = argv;
    sam_config_t *config = sam_config_new(
        "samordna-gateway", "[options]",
        "HTTP and JSON in front of the broker: CloudEvents published over HTTP (binary, "
        "structured and batch) go to the service that owns their type (docs/gateway.md).",
        s_options);
    if (!config) return 1;
    int rc = sam_config_parse(config, argc, argv);
    if (rc != 0) {
        sam_config_destroy(&config);
        return rc > 0 ? 0 : 2;
    }
    sam_log_init("gateway",
                 (sam_log_level_t)sam_log_level_parse(sam_config_get(config, "log-level")));

    bool ok = true;
    gw_config_t cfg = {0};
    cfg.listen = sam_config_get(config, "listen");
    cfg.insecure = sam_config_flag(config, "insecure");
    cfg.cert = sam_config_get(config, "cert");
    cfg.server_key = sam_config_get(config, "server-key");
    if (cfg.insecure && (cfg.cert || cfg.server_key)) {
        fprintf(stderr,
                "samordna-gateway: --insecure and --cert/--server-key exclude each other\n");
        ok = false;
    } else if (!cfg.insecure && (!cfg.cert || !cfg.server_key)) {
        fprintf(stderr, "samordna-gateway: give --cert and --server-key (CURVE to the broker), "
                        "or --insecure for a loopback run\n");
        ok = false;
    }
    cfg.max_body = (size_t)sam_config_int(config, "max-body-bytes", 1024, 256L << 20, &ok);
    cfg.max_connections = (unsigned)sam_config_int(config, "max-connections", 1, 100000, &ok);
    cfg.idle_timeout_s = (unsigned)sam_config_int(config, "idle-timeout-s", 1, 3600, &ok);
    cfg.header_timeout_ms = (int)sam_config_int(config, "header-timeout-ms", 0, 3600000, &ok);
    cfg.body_timeout_ms = (int)sam_config_int(config, "body-timeout-ms", 0, 3600000, &ok);
    cfg.request_timeout_ms = (int)sam_config_int(config, "request-timeout-ms", 10, 600000, &ok);
    if (sam_config_npos(config) > 0) {
        fprintf(stderr, "samordna-gateway: unexpected argument '%s' (try --help)\n",
                sam_config_pos(config, 0));
        ok = false;
    }
    cfg.nbrokers = sam_config_count(config, "broker");
    const char **brokers = calloc(cfg.nbrokers ? cfg.nbrokers : 1, sizeof *brokers);
    bool own_services = sam_config_get(config, "service") != NULL;
    cfg.nservices = own_services ? sam_config_count(config, "service") : 4;
    const char **services = calloc(cfg.nservices, sizeof *services);
    if (!ok || !brokers || !services) {
        free(brokers);
        free(services);
        sam_config_destroy(&config);
        return 2;
    }
    for (size_t i = 0; i < cfg.nbrokers; i++)
        brokers[i] = sam_config_nth(config, "broker", i);
    for (size_t i = 0; i < cfg.nservices; i++)
        services[i] = own_services ? sam_config_nth(config, "service", i) : s_default_services[i];
    cfg.brokers = brokers;
    cfg.services = services;

    sam_metrics_t *metrics = NULL;
    sam_http_t *http = NULL;
    const char *metrics_at = sam_config_get(config, "metrics");
    char err[256];
    gw_block_signals(); /* before any thread starts, so that every one inherits the mask */
    if (metrics_at) {
        metrics = sam_metrics_new("samordna_");
        http = metrics ? sam_http_new(metrics_at, metrics, err, sizeof err) : NULL;
        if (!http) {
            fprintf(stderr, "samordna-gateway: %s\n", metrics ? err : "out of memory");
            sam_metrics_destroy(&metrics);
            free(brokers);
            free(services);
            sam_config_destroy(&config);
            return 2;
        }
        sam_info("metrics.listening endpoint=%s port=%u", sam_logv(metrics_at),
                 (unsigned)sam_http_port(http));
    }
    cfg.metrics = metrics;
    gw_t *gw = gw_new(&cfg, err, sizeof err);
    rc = 2;
    if (gw) {
        rc = gw_run(gw, s_reload) == 0 ? 0 : 1;
        gw_destroy(&gw);
    } else
        fprintf(stderr, "samordna-gateway: %s\n", err);
    sam_http_destroy(&http);
    sam_metrics_destroy(&metrics);
    free(brokers);
    free(services);
    sam_config_destroy(&config);
    return rc;
}
