/*  gateway_int.h — what gateway.c (the HTTP side) and gateway_io.c (the broker side) share:
    the process state and one request's inside. Nothing else includes it. */
#ifndef GATEWAY_INT_H
#define GATEWAY_INT_H

#include "gateway.h"

#include <czmq.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

/* One call of a request: queued by gw_call, sent by the loop, answered by its reply. */
typedef struct gw_call_t {
    struct gw_call_t *next, *prev; /* the queue, then the in-flight list (oldest first) */
    struct gw_conn_t *conn;        /* the request it belongs to; NULL for the gateway's own */
    char service[64];
    char method[64];
    uint8_t *body;
    size_t len;
    uint64_t id;      /* the request id once sent */
    int64_t deadline; /* monotonic ms */
    gw_reply_fn *done;
    void *arg;
} gw_call_t;

/* One request as the server keeps it (libmicrohttpd's per-request context). */
typedef struct gw_conn_t {
    gw_request_t req; /* what the handler sees; req.inner points back here */
    const gw_route_t *route;
    int64_t started;      /* monotonic ms when the request line arrived */
    int64_t headers_done; /* monotonic ms when the headers were complete */
    uint8_t *body;        /* the body as read so far, NUL-terminated */
    size_t body_len, body_cap;
    bool too_big;     /* the body grew past --max-body-bytes: dropped, refused 413 */
    bool too_slow;    /* the body took longer than --body-timeout-ms: refused 408 */
    bool handled;     /* the handler ran */
    bool suspended;   /* waiting for its calls' replies */
    gw_call_t *calls; /* calls queued by the handler, sent once it returns (LIFO) */
    size_t ncalls;
    size_t pending; /* calls sent and not yet answered */
    /* the answer */
    bool answered;
    unsigned status;
    char *content_type;
    char *out;
    size_t out_len;
    char **headers; /* name, value, name, value, … */
    size_t nheaders;
    gw_pair_t *pairs; /* gw_headers / gw_queries, made on first use */
    size_t npairs;
} gw_conn_t;

/* The event types one service owns, from its last service.describe. */
typedef struct {
    const char *name;  /* as configured (--service) */
    zhashx_t *types;   /* type → gw_type_t *; NULL until described */
    int64_t described; /* monotonic ms of the last answer, 0 never */
    int64_t next_ask;  /* monotonic ms when to ask again */
    int64_t first_ask; /* monotonic ms of the first ask */
    bool asking;       /* a describe is in flight */
    bool failing;      /* the last describe failed (logged once) */
} gw_service_t;

struct gw_t {
    gw_config_t config;
    struct MHD_Daemon *daemon;
    uint16_t port;
    MHD_socket quiesced;     /* the listening socket after MHD_quiesce_daemon, closed at the end */
    atomic_uint connections; /* open HTTP connections */
    atomic_bool draining;    /* SIGTERM: new requests get 503 */
    atomic_uint_least64_t next_rid;
    /* the loop (gateway_io.c) */
    sam_client_t *client;
    pthread_t io;
    bool io_started;
    int wake;             /* eventfd: stop, or quiesce */
    pthread_mutex_t lock; /* guards queue, stop and the services' type tables */
    gw_call_t *queue, *queue_tail;
    bool stop;
    bool quiesce;               /* gw_io_quiesce asked; the loop quiesces the daemon */
    zhashx_t *inflight;         /* request id → gw_call_t * */
    gw_call_t *oldest, *newest; /* in-flight calls by deadline (all share one timeout) */
    atomic_size_t outstanding;  /* calls queued or in flight */
    gw_service_t *services;
    size_t nservices;
    /* metrics */
    sam_metric_t *m_requests, *m_seconds, *m_inflight, *m_calls;
};

/* gateway_io.c */
int gw_io_start(gw_t *gw, char *err, size_t errlen);
void gw_io_stop(gw_t *gw);
/* Asks the loop to stop accepting connections (MHD_quiesce_daemon, which must run there). */
void gw_io_quiesce(gw_t *gw);
/* Queues a request's calls for the loop to send (after the connection is suspended). */
void gw_io_submit(gw_t *gw, gw_conn_t *conn);
/* Called by the loop after a request's last callback: resumes its connection. */
void gw_conn_finish(gw_conn_t *conn);
int64_t gw_now(void);

#endif
