/*  sam_metrics.c — families of series behind one mutex, rendered as Prometheus text.

    A family holds its series in insertion order (an array, for output) and in a hash keyed
    by the label values joined with the unit separator (for the update path). A series of a
    histogram keeps its cumulative counts per bound plus +Inf, sum and count. Nothing here
    knows what a service measures; see sam_metrics.h for the contract.
*/
#include "sam_metrics.h"

#include <czmq.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum { S_COUNTER, S_GAUGE, S_HISTOGRAM } s_kind_t;

typedef struct {
    char *labels;      /* rendered label set, "{method=\"x\"}" or "" */
    double value;      /* counter or gauge */
    uint64_t *buckets; /* histogram: count per bound, then +Inf (not cumulative) */
    double sum;        /* histogram */
    uint64_t count;    /* histogram */
} s_series_t;

struct sam_metric_t {
    sam_metrics_t *owner;
    s_kind_t kind;
    char *name; /* with the prefix */
    char *help;
    char **label_names;
    size_t nlabels;
    double *bounds;
    size_t nbounds;
    s_series_t **series; /* insertion order */
    size_t nseries, capseries;
    zhashx_t *index; /* joined label values -> s_series_t * (borrowed from series) */
};

typedef struct {
    char *name;
    char *why;
    bool ok;
} s_check_t;

struct sam_metrics_t {
    pthread_mutex_t lock;
    char *prefix;
    sam_metric_t **families;
    size_t nfamilies;
    s_check_t *checks;
    size_t nchecks;
    double start_time;    /* seconds since the epoch */
    _Atomic int64_t beat; /* the main loop's last turn (monotonic ms), 0 before the first */
};

static const double s_default_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,    0.25,  0.5,    1,     2.5,  5,     10};

sam_metrics_t *sam_metrics_new(const char *prefix)
{
    sam_metrics_t *self = calloc(1, sizeof *self);
    if (!self) return NULL;
    pthread_mutex_init(&self->lock, NULL);
    self->prefix = strdup(prefix ? prefix : "");
    self->start_time = (double)zclock_time() / 1000.0;
    if (!self->prefix) sam_metrics_destroy(&self);
    return self;
}

static void s_series_free(s_series_t *s)
{
    if (!s) return;
    free(s->labels);
    free(s->buckets);
    free(s);
}

static void s_family_free(sam_metric_t *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->nseries; i++)
        s_series_free(f->series[i]);
    free(f->series);
    zhashx_destroy(&f->index);
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->label_names[i]);
    free(f->label_names);
    free(f->bounds);
    free(f->name);
    free(f->help);
    free(f);
}

void sam_metrics_destroy(sam_metrics_t **self_p)
{
    if (!self_p || !*self_p) return;
    sam_metrics_t *self = *self_p;
    for (size_t i = 0; i < self->nfamilies; i++)
        s_family_free(self->families[i]);
    free(self->families);
    for (size_t i = 0; i < self->nchecks; i++) {
        free(self->checks[i].name);
        free(self->checks[i].why);
    }
    free(self->checks);
    free(self->prefix);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

static sam_metric_t *s_declare(sam_metrics_t *self, s_kind_t kind, const char *name,
                               const char *help, const char *labels, const double *bounds,
                               size_t nbounds)
{
    sam_metric_t *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->owner = self;
    f->kind = kind;
    f->name = zsys_sprintf("%s%s", self->prefix, name);
    f->help = strdup(help ? help : "");
    f->index = zhashx_new();
    bool ok = f->name && f->help && f->index;
    for (const char *p = labels; ok && p && *p;) {
        size_t n = strcspn(p, ",");
        char **grown = realloc(f->label_names, (f->nlabels + 1) * sizeof *grown);
        ok = grown != NULL;
        if (ok) {
            f->label_names = grown;
            ok = (f->label_names[f->nlabels] = strndup(p, n)) != NULL;
            if (ok) f->nlabels++;
        }
        p += n + (p[n] == ',');
    }
    if (ok && kind == S_HISTOGRAM) {
        if (!bounds || nbounds == 0) {
            bounds = s_default_bounds;
            nbounds = sizeof s_default_bounds / sizeof s_default_bounds[0];
        }
        f->bounds = malloc(nbounds * sizeof *f->bounds);
        ok = f->bounds != NULL;
        if (ok) memcpy(f->bounds, bounds, nbounds * sizeof *f->bounds);
        f->nbounds = nbounds;
    }
    pthread_mutex_lock(&self->lock);
    sam_metric_t *same = NULL; /* declared before: the same family when of the same kind */
    for (size_t i = 0; ok && i < self->nfamilies; i++)
        if (strcmp(self->families[i]->name, f->name) == 0) {
            same = self->families[i]->kind == kind && self->families[i]->nlabels == f->nlabels
                       ? self->families[i]
                       : NULL;
            ok = false;
        }
    if (ok) {
        sam_metric_t **grown =
            realloc(self->families, (self->nfamilies + 1) * sizeof *self->families);
        ok = grown != NULL;
        if (ok) {
            self->families = grown;
            self->families[self->nfamilies++] = f;
        }
    }
    pthread_mutex_unlock(&self->lock);
    if (!ok) {
        s_family_free(f);
        return same;
    }
    return f;
}

sam_metric_t *sam_metrics_counter(sam_metrics_t *self, const char *name, const char *help,
                                  const char *labels)
{
    return self ? s_declare(self, S_COUNTER, name, help, labels, NULL, 0) : NULL;
}

sam_metric_t *sam_metrics_gauge(sam_metrics_t *self, const char *name, const char *help,
                                const char *labels)
{
    return self ? s_declare(self, S_GAUGE, name, help, labels, NULL, 0) : NULL;
}

sam_metric_t *sam_metrics_histogram(sam_metrics_t *self, const char *name, const char *help,
                                    const char *labels, const double *bounds, size_t nbounds)
{
    return self ? s_declare(self, S_HISTOGRAM, name, help, labels, bounds, nbounds) : NULL;
}

/* Appends text to a growing buffer; false on out of memory (the buffer is then freed). */
typedef struct {
    char *data;
    size_t len, cap;
    bool failed;
} s_buf_t;

static void s_put(s_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_put(s_buf_t *b, const char *fmt, ...)
{
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n =
            vsnprintf(b->data ? b->data + b->len : NULL, b->data ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if (b->data && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            free(b->data);
            *b = (s_buf_t){.failed = true};
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
}

/* A label value or help text escaped as the exposition format asks: `\` and newline always,
   `"` in label values only. */
static void s_put_escaped(s_buf_t *b, const char *text, bool quote)
{
    for (const char *p = text; *p; p++) {
        if (*p == '\\')
            s_put(b, "\\\\");
        else if (*p == '\n')
            s_put(b, "\\n");
        else if (*p == '"' && quote)
            s_put(b, "\\\"");
        else
            s_put(b, "%c", *p);
    }
}

/* The series of f for these values, made when missing; NULL on out of memory. Lock held. */
static s_series_t *s_series(sam_metric_t *f, const char *const *values)
{
    s_buf_t key = {0};
    for (size_t i = 0; i < f->nlabels; i++)
        s_put(&key, "%s%s", i ? "\x1f" : "", values && values[i] ? values[i] : "");
    const char *k = key.data ? key.data : "";
    s_series_t *s = zhashx_lookup(f->index, k);
    if (s || key.failed) {
        free(key.data);
        return s;
    }
    s = calloc(1, sizeof *s);
    s_buf_t labels = {0};
    for (size_t i = 0; i < f->nlabels; i++) {
        s_put(&labels, "%s%s=\"", i ? "," : "{", f->label_names[i]);
        s_put_escaped(&labels, values && values[i] ? values[i] : "", true);
        s_put(&labels, "\"%s", i + 1 == f->nlabels ? "}" : "");
    }
    if (f->nlabels == 0) s_put(&labels, "%s", "");
    if (s) s->labels = labels.data;
    if (s && f->kind == S_HISTOGRAM) s->buckets = calloc(f->nbounds + 1, sizeof *s->buckets);
    bool ok = s && !labels.failed && s->labels && (f->kind != S_HISTOGRAM || s->buckets);
    if (ok && f->nseries == f->capseries) {
        size_t cap = f->capseries ? f->capseries * 2 : 8;
        s_series_t **grown = realloc(f->series, cap * sizeof *grown);
        ok = grown != NULL;
        if (ok) {
            f->series = grown;
            f->capseries = cap;
        }
    }
    if (ok) ok = zhashx_insert(f->index, k, s) == 0;
    free(key.data);
    if (!ok) {
        if (s)
            s_series_free(s);
        else
            free(labels.data);
        return NULL;
    }
    f->series[f->nseries++] = s;
    return s;
}

static void s_update(sam_metric_t *f, const char *const *values, double v, int op)
{
    if (!f) return;
    pthread_mutex_lock(&f->owner->lock);
    s_series_t *s = s_series(f, values);
    if (s && op == 0) s->value += v;
    if (s && op == 1) s->value = v;
    if (s && op == 2 && f->kind == S_HISTOGRAM) {
        size_t i = 0;
        while (i < f->nbounds && v > f->bounds[i])
            i++;
        s->buckets[i]++;
        s->sum += v;
        s->count++;
    }
    pthread_mutex_unlock(&f->owner->lock);
}

void sam_metric_add(sam_metric_t *family, const char *const *values, double v)
{
    s_update(family, values, v, 0);
}

void sam_metric_set(sam_metric_t *family, const char *const *values, double v)
{
    s_update(family, values, v, 1);
}

void sam_metric_observe(sam_metric_t *family, const char *const *values, double v)
{
    s_update(family, values, v, 2);
}

void sam_metric_clear(sam_metric_t *family)
{
    if (!family) return;
    pthread_mutex_lock(&family->owner->lock);
    for (size_t i = 0; i < family->nseries; i++)
        s_series_free(family->series[i]);
    family->nseries = 0;
    zhashx_purge(family->index);
    pthread_mutex_unlock(&family->owner->lock);
}

/* A number as the exposition format writes it: integers without a fraction, +Inf, NaN. */
static void s_put_number(s_buf_t *b, double v)
{
    if (isnan(v))
        s_put(b, "NaN");
    else if (isinf(v))
        s_put(b, v > 0 ? "+Inf" : "-Inf");
    else if (v == (double)(long long)v && fabs(v) < 1e15)
        s_put(b, "%lld", (long long)v);
    else
        s_put(b, "%.17g", v);
}

/* A histogram's bucket label set: its own labels plus le. */
static void s_put_bucket(s_buf_t *b, const sam_metric_t *f, const s_series_t *s, const char *le,
                         uint64_t n)
{
    const char *l = s->labels;
    if (*l)
        s_put(b, "%s_bucket%.*s,le=\"%s\"} %llu\n", f->name, (int)strlen(l) - 1, l, le,
              (unsigned long long)n);
    else
        s_put(b, "%s_bucket{le=\"%s\"} %llu\n", f->name, le, (unsigned long long)n);
}

static void s_put_family(s_buf_t *b, const sam_metric_t *f)
{
    static const char *const kinds[] = {"counter", "gauge", "histogram"};
    s_put(b, "# HELP %s ", f->name);
    s_put_escaped(b, f->help, false);
    s_put(b, "\n# TYPE %s %s\n", f->name, kinds[f->kind]);
    for (size_t i = 0; i < f->nseries; i++) {
        const s_series_t *s = f->series[i];
        if (f->kind != S_HISTOGRAM) {
            s_put(b, "%s%s ", f->name, s->labels);
            s_put_number(b, s->value);
            s_put(b, "\n");
            continue;
        }
        uint64_t cumulative = 0;
        for (size_t j = 0; j < f->nbounds; j++) {
            cumulative += s->buckets[j];
            char le[32];
            snprintf(le, sizeof le, "%.15g", f->bounds[j]);
            s_put_bucket(b, f, s, le, cumulative);
        }
        s_put_bucket(b, f, s, "+Inf", cumulative + s->buckets[f->nbounds]);
        s_put(b, "%s_sum%s ", f->name, s->labels);
        s_put_number(b, s->sum);
        s_put(b, "\n%s_count%s %llu\n", f->name, s->labels, (unsigned long long)s->count);
    }
}

/* The process_* families of the Prometheus client conventions, from /proc/self. */
static void s_put_process(s_buf_t *b, double start_time)
{
    long page = sysconf(_SC_PAGESIZE);
    long ticks = sysconf(_SC_CLK_TCK);
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2) size = resident = 0;
        fclose(f);
    }
    unsigned long utime = 0, stime = 0;
    f = fopen("/proc/self/stat", "r");
    if (f) {
        char line[1024];
        if (fgets(line, sizeof line, f)) {
            /* fields after the command, which is in parentheses and may hold spaces */
            const char *p = strrchr(line, ')');
            if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                             &stime) != 2)
                utime = stime = 0;
        }
        fclose(f);
    }
    size_t fds = 0;
    zdir_t *dir = zdir_new("/proc/self/fd", "-");
    if (dir) {
        fds = zdir_count(dir);
        zdir_destroy(&dir);
    }
    s_put(b,
          "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
          "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %llu\n",
          (unsigned long long)resident * (unsigned long long)page);
    s_put(b,
          "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
          "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %llu\n",
          (unsigned long long)size * (unsigned long long)page);
    s_put(b, "# HELP process_cpu_seconds_total User and system CPU time spent in seconds.\n"
             "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total ");
    s_put_number(b, ticks > 0 ? (double)(utime + stime) / (double)ticks : 0);
    s_put(b,
          "\n# HELP process_open_fds Number of open file descriptors.\n"
          "# TYPE process_open_fds gauge\nprocess_open_fds %zu\n",
          fds);
    s_put(b, "# HELP process_start_time_seconds Start time of the process since the epoch.\n"
             "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds ");
    s_put_number(b, start_time);
    s_put(b, "\n");
}

char *sam_metrics_render(sam_metrics_t *self, size_t *len_p)
{
    s_buf_t b = {0};
    pthread_mutex_lock(&self->lock);
    for (size_t i = 0; i < self->nfamilies; i++)
        s_put_family(&b, self->families[i]);
    double start = self->start_time;
    pthread_mutex_unlock(&self->lock);
    s_put_process(&b, start);
    if (b.failed) return NULL;
    if (len_p) *len_p = b.len;
    return b.data;
}

void sam_metrics_ready(sam_metrics_t *self, const char *name, bool ok, const char *why)
{
    if (!self) return;
    pthread_mutex_lock(&self->lock);
    s_check_t *c = NULL;
    for (size_t i = 0; i < self->nchecks && !c; i++)
        if (strcmp(self->checks[i].name, name) == 0) c = &self->checks[i];
    if (!c) {
        s_check_t *grown = realloc(self->checks, (self->nchecks + 1) * sizeof *grown);
        char *copy = strdup(name);
        if (grown) self->checks = grown;
        if (grown && copy) {
            c = &self->checks[self->nchecks++];
            *c = (s_check_t){.name = copy};
        } else
            free(copy);
    }
    if (c) {
        c->ok = ok;
        free(c->why);
        c->why = why ? strdup(why) : NULL;
    }
    pthread_mutex_unlock(&self->lock);
}

bool sam_metrics_is_ready(sam_metrics_t *self, char **text)
{
    s_buf_t b = {0};
    pthread_mutex_lock(&self->lock);
    bool ready = self->nchecks > 0;
    for (size_t i = 0; i < self->nchecks; i++) {
        const s_check_t *c = &self->checks[i];
        ready = ready && c->ok;
        if (c->ok)
            s_put(&b, "%s ok\n", c->name);
        else
            s_put(&b, "%s failing: %s\n", c->name, c->why ? c->why : "not yet");
    }
    if (self->nchecks == 0) s_put(&b, "starting\n");
    pthread_mutex_unlock(&self->lock);
    if (text)
        *text = b.failed ? NULL : b.data;
    else
        free(b.data);
    return ready;
}

void sam_metrics_beat(sam_metrics_t *self)
{
    if (self) self->beat = zclock_mono();
}

bool sam_metrics_alive(sam_metrics_t *self, int64_t stale_ms, int64_t *silent_ms)
{
    int64_t beat = self->beat;
    int64_t silent = beat ? zclock_mono() - beat : 0;
    if (silent_ms) *silent_ms = silent;
    return silent < stale_ms;
}

/* ---- selftest -------------------------------------------------------------------------- */

static int s_expect(const char *text, const char *line)
{
    if (text && strstr(text, line)) return 0;
    printf("FAIL sam_metrics: missing %s\n", line);
    return 1;
}

int sam_metrics_selftest(void)
{
    int failed = 0;
    sam_metrics_t *m = sam_metrics_new("t_");
    sam_metric_t *req = sam_metrics_counter(m, "requests_total", "Requests.", "method,code");
    sam_metric_t *depth = sam_metrics_gauge(m, "queue_depth", "Queued.\nTwo lines", NULL);
    const double bounds[] = {0.001, 0.01};
    sam_metric_t *lat = sam_metrics_histogram(m, "seconds", "Latency.", "method", bounds, 2);
    failed += sam_metrics_counter(m, "requests_total", "again", NULL) != NULL; /* other labels */
    failed += sam_metrics_counter(m, "requests_total", "again", "method,code") != req;
    failed += sam_metrics_gauge(m, "requests_total", "again", "method,code") != NULL;
    sam_metric_add(req, (const char *[]){"a.get", "200"}, 1);
    sam_metric_add(req, (const char *[]){"a.get", "200"}, 2);
    sam_metric_add(req, (const char *[]){"we\"ird\\\n", "404"}, 1);
    sam_metric_set(depth, NULL, 7);
    sam_metric_observe(lat, (const char *[]){"a.get"}, 0.0005);
    sam_metric_observe(lat, (const char *[]){"a.get"}, 0.005);
    sam_metric_observe(lat, (const char *[]){"a.get"}, 5);
    sam_metric_add(NULL, NULL, 1); /* a process without metrics */
    char *text = sam_metrics_render(m, NULL);
    failed += s_expect(text, "# TYPE t_requests_total counter\n");
    failed += s_expect(text, "t_requests_total{method=\"a.get\",code=\"200\"} 3\n");
    failed += s_expect(text, "t_requests_total{method=\"we\\\"ird\\\\\\n\",code=\"404\"} 1\n");
    failed += s_expect(text, "# HELP t_queue_depth Queued.\\nTwo lines\n");
    failed += s_expect(text, "t_queue_depth 7\n");
    failed += s_expect(text, "t_seconds_bucket{method=\"a.get\",le=\"0.001\"} 1\n");
    failed += s_expect(text, "t_seconds_bucket{method=\"a.get\",le=\"0.01\"} 2\n");
    failed += s_expect(text, "t_seconds_bucket{method=\"a.get\",le=\"+Inf\"} 3\n");
    failed += s_expect(text, "t_seconds_count{method=\"a.get\"} 3\n");
    failed += s_expect(text, "process_resident_memory_bytes ");
    free(text);
    sam_metric_clear(depth);
    text = sam_metrics_render(m, NULL);
    failed += text == NULL || strstr(text, "t_queue_depth 7") != NULL;
    free(text);
    char *why = NULL;
    failed += sam_metrics_is_ready(m, NULL); /* no check yet: starting */
    sam_metrics_ready(m, "store", true, NULL);
    sam_metrics_ready(m, "broker", false, "no broker answers");
    failed += sam_metrics_is_ready(m, &why);
    failed += s_expect(why, "broker failing: no broker answers\n");
    free(why);
    sam_metrics_ready(m, "broker", true, NULL);
    failed += !sam_metrics_is_ready(m, NULL);
    int64_t silent = -1;
    failed += !sam_metrics_alive(m, 1, &silent) || silent != 0; /* no beat yet: starting */
    sam_metrics_beat(m);
    failed += !sam_metrics_alive(m, 60000, NULL);
    zclock_sleep(5);
    failed += sam_metrics_alive(m, 2, &silent) || silent < 2;
    sam_metrics_destroy(&m);
    failed += m != NULL;
    return failed;
}
