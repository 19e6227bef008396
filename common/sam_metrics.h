/*  sam_metrics.h — the numbers a process shows to Prometheus, and whether it is ready.

    A process keeps one sam_metrics_t. It declares its families once at start-up (a counter,
    a gauge or a histogram, each with a fixed list of label names) and updates them where the
    work happens; sam_http serves the text exposition format (version 0.0.4) on /metrics and
    the readiness checks on /readyz. The service loop updates, the HTTP thread reads: every
    call takes the registry's one mutex, which costs a few tens of nanoseconds when nobody
    scrapes, so the hot path needs no other care.

    Every family name gets the registry's prefix ("samordna_"); histograms get _bucket, _sum
    and _count. Label values are escaped on output (`\`, `"`, newline), so any method name or
    subscription id is safe. The process_* families (resident memory, open file descriptors,
    CPU seconds, start time) are read from /proc at each scrape.

    Readiness: a process names its checks ("store", "broker", "follower.registry") and sets
    each true or false with a reason; /readyz answers 200 when all hold, else 503 listing the
    ones that fail. /healthz answers 200 while the process serves HTTP at all.
*/
#ifndef SAM_METRICS_H
#define SAM_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sam_metrics_t sam_metrics_t;
typedef struct sam_metric_t sam_metric_t; /* one family; owned by its registry */

/*  A registry whose families are named `prefix`_NAME. NULL on out of memory. */
sam_metrics_t *sam_metrics_new(const char *prefix);

/*  Frees the registry, its families and series; sets *self_p to NULL; accepts NULL. */
void sam_metrics_destroy(sam_metrics_t **self_p);

/*  Declares a family. `labels` is a comma-separated list of label names ("method,code") or
    NULL for none; `bounds` are a histogram's upper bucket bounds, ascending, without +Inf
    (NULL and 0 give the default latency buckets, 0.5 ms to 10 s). Returns the family (it
    lives as long as the registry); a name declared again gives the same family when its kind
    and number of labels match (several followers share one), NULL when they do not or on out
    of memory. */
sam_metric_t *sam_metrics_counter(sam_metrics_t *self, const char *name, const char *help,
                                  const char *labels);
sam_metric_t *sam_metrics_gauge(sam_metrics_t *self, const char *name, const char *help,
                                const char *labels);
sam_metric_t *sam_metrics_histogram(sam_metrics_t *self, const char *name, const char *help,
                                    const char *labels, const double *bounds, size_t nbounds);

/*  Updates the series of `family` whose label values are `values` (as many as the family has
    label names; NULL for a family without labels). A series is made on first use. A NULL
    family is ignored, so a process without metrics can call these unconditionally.
    add: counter or gauge += v; set: gauge = v; observe: a histogram observation. */
void sam_metric_add(sam_metric_t *family, const char *const *values, double v);
void sam_metric_set(sam_metric_t *family, const char *const *values, double v);
void sam_metric_observe(sam_metric_t *family, const char *const *values, double v);

/*  Removes every series of a gauge family (for a set that shrinks: workers of a service that
    left), before setting the ones that remain. */
void sam_metric_clear(sam_metric_t *family);

/*  The exposition text of every family and the process_* ones; caller frees. NULL on out of
    memory. */
char *sam_metrics_render(sam_metrics_t *self, size_t *len_p);

/*  Sets readiness check `name` (made on first use) to ok, with `why` (copied; may be NULL)
    shown when it fails. */
void sam_metrics_ready(sam_metrics_t *self, const char *name, bool ok, const char *why);

/*  True when every readiness check holds (and at least one was set). When `text` is not NULL
    it receives one line per check ("store ok", "broker failing: no broker answers"),
    malloc'd; caller frees. */
bool sam_metrics_is_ready(sam_metrics_t *self, char **text);

/*  Liveness: the process's main loop calls sam_metrics_beat on every turn (a store of the
    monotonic clock, no lock). sam_metrics_alive is false once a loop that beat has not done
    so for stale_ms, so /healthz fails for a process that runs but no longer serves (stuck
    in a call); before the first beat (starting up) it is true. */
void sam_metrics_beat(sam_metrics_t *self);
bool sam_metrics_alive(sam_metrics_t *self, int64_t stale_ms, int64_t *silent_ms);

/*  Self-test; returns the number of failed checks. */
int sam_metrics_selftest(void);

#endif
