/*  sam_http.h — the operator's HTTP port of a process: /metrics, /healthz, /readyz.

    Every samordna process started with --metrics HOST:PORT serves, on a thread of
    libmicrohttpd's own:
        GET /metrics   Prometheus text exposition (version 0.0.4) of its sam_metrics_t
        GET /healthz   200 "ok" while the process runs and its main loop turns (503 "stuck"
                       when the loop has not turned for 30 s: sam_metrics_beat)
        GET /readyz    200 with one line per readiness check when all hold, else 503
    Anything else is 404, a method other than GET or HEAD 405. The port has no
    authentication: bind it to loopback or to a network only the monitoring reaches
    (docs/operations.md).
*/
#ifndef SAM_HTTP_H
#define SAM_HTTP_H

#include "sam_metrics.h"

#include <stdint.h>

typedef struct sam_http_t sam_http_t;

/*  Serves `metrics` (borrowed; must outlive the server) on `endpoint`, "HOST:PORT" with a
    numeric IPv4 or IPv6 address ("127.0.0.1:9100", "[::1]:9100", "0.0.0.0:9100"); port 0
    picks a free one. Returns NULL with a reason in err (of errlen bytes) when the endpoint is
    malformed or cannot be bound. */
sam_http_t *sam_http_new(const char *endpoint, sam_metrics_t *metrics, char *err, size_t errlen);

/*  Stops serving (waits for the server thread) and frees; sets *self_p to NULL; accepts NULL. */
void sam_http_destroy(sam_http_t **self_p);

/*  The port actually bound (useful with port 0). */
uint16_t sam_http_port(const sam_http_t *self);

#endif
