/*  sam_service_slow.c — long queries off the loop: a row made with L(…) (SAM_ROW_LONG_QUERY)
    runs its handler in a worker thread, on a read-only transaction of that thread's own.

    A query that walks a whole table (grants.ledger.verify over every posting) can take
    seconds on a large store. Run on the loop, it would hold the heartbeats to the brokers
    (which then declare the worker dead), every write and every other query. Here the
    request is parked like a long poll (rt_park) while a thread answers it; the loop goes on
    serving, and the reply goes out from the loop when the thread is done.

    LMDB's rules: the environment is opened with MDB_NOTLS, so a read transaction belongs to
    the thread that began it, whichever it is; the thread begins and ends its own. A read
    transaction sees the store as it was when it began (writes go on beside it), and holds
    the pages of that snapshot until it ends — one more reason to keep at most RT_MAX_SLOW
    of them at once; the rest wait parked, in the order they came.

    What the thread touches: its own copy of the call (the decoded message and the caller
    are handed over from the request, the method and a raw body copied), its reply, its
    transaction and the service's context, which handlers only read. The outcome is turned
    into the answer on the loop (rt_outcome), like every other. A request abandoned while
    its thread runs (its broker connection went) leaves the job to the thread, which frees
    it when done; the store is closed only after every such thread has ended.
*/
#include "sam_service_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

enum { S_RUNNING, S_DONE, S_ABANDONED };

struct rt_slow_t {
    pthread_t thread;
    sam_service_t *svc;
    const sam_row_t *row;
    bool started;  /* given its turn (a thread, or the refusal that none could start) */
    bool threaded; /* its thread was created (joined or detached later) */
    atomic_int state;
    char *method;               /* copied */
    uint8_t *body;              /* raw body, copied (rows without a request type) */
    ProtobufCMessage *msg;      /* the decoded request, taken from the request */
    Samordna__V1__Caller *mine; /* the caller, taken from the request (NULL: a static one) */
    sam_call_t call;
    sam_reply_t reply;
    int rc;
    int64_t started_ms; /* monotonic */
};

static void s_free(rt_slow_t *job)
{
    free(job->method);
    free(job->body);
    if (job->msg) protobuf_c_message_free_unpacked(job->msg, NULL);
    if (job->mine) samordna__v1__caller__free_unpacked(job->mine, NULL);
    free(job->reply.body);
    free(job);
}

static void *s_thread(void *arg)
{
    rt_slow_t *job = arg;
    sam_service_t *svc = job->svc;
    MDB_txn *txn;
    job->rc = sam_store_begin(svc->store, NULL, false, &txn);
    if (job->rc == 0) {
        job->reply.code = SAM_OK;
        job->rc = job->row->query(svc, txn, &job->call, &job->reply);
        mdb_txn_abort(txn);
    }
    if (atomic_exchange(&job->state, S_DONE) == S_ABANDONED) s_free(job); /* nobody waits */
    atomic_fetch_sub(&svc->slow_threads, 1);
    return NULL;
}

static bool s_start(sam_service_t *svc, rt_slow_t *job)
{
    if (svc->n_slow >= RT_MAX_SLOW) return false;
    atomic_fetch_add(&svc->slow_threads, 1);
    job->started_ms = zclock_mono();
    if (pthread_create(&job->thread, NULL, s_thread, job) != 0) {
        atomic_fetch_sub(&svc->slow_threads, 1);
        job->rc = -1;
        sam_reply_error(&job->reply, SAM_UNAVAILABLE, "cannot start a worker thread");
        atomic_store(&job->state, S_DONE);
        job->started = true;
        return true; /* answered by the next turn, with that refusal */
    }
    svc->n_slow++;
    job->started = job->threaded = true;
    return true;
}

/* The parked request's turn: starts its thread when a slot is free, answers when done. */
static bool s_again(sam_service_t *svc, rt_request_t *r, MDB_txn *txn, uint64_t last_seq,
                    int64_t now)
{
    (void)txn;
    (void)last_seq;
    rt_slow_t *job = r->slow;
    if (!job->started && !s_start(svc, job)) {
        if (zsys_interrupted) { /* stopping: a query not begun is not begun now */
            sam_reply_error(&r->reply, SAM_UNAVAILABLE, "the service is stopping");
            s_free(job);
            r->slow = NULL;
            return false;
        }
        r->deadline = now + RT_MAX_WAIT_MS;
        return true;
    }
    if (atomic_load(&job->state) != S_DONE && !zsys_interrupted) {
        r->deadline = now + RT_MAX_WAIT_MS; /* a long query takes as long as it takes */
        return true;
    }
    if (job->threaded) {
        pthread_join(job->thread, NULL); /* at shutdown: waits for it */
        svc->n_slow--;
    }
    int64_t took = zclock_mono() - job->started_ms;
    free(r->reply.body);
    r->reply = job->reply;
    job->reply.body = NULL;
    rt_outcome(svc, job->row, job->call.id, job->rc, &r->reply);
    if (took >= 1000)
        sam_info("query.long method=%s ms=%lld code=%u", sam_logv(job->method), (long long)took,
                 r->reply.code);
    s_free(job);
    r->slow = NULL;
    return false;
}

int rt_slow_start(sam_service_t *svc, rt_request_t *r, int64_t now)
{
    rt_slow_t *job = calloc(1, sizeof *job);
    if (job) job->method = strdup(r->req->method);
    size_t blen = r->row->request ? 0 : r->req->body.len;
    if (job && blen) {
        job->body = malloc(blen);
        if (job->body) memcpy(job->body, r->req->body.data, blen);
    }
    if (!job || !job->method || (blen && !job->body)) {
        if (job) s_free(job);
        sam_reply_error(&r->reply, SAM_INTERNAL, "out of memory");
        return 0;
    }
    job->svc = svc;
    job->row = r->row;
    atomic_init(&job->state, S_RUNNING);
    const Samordna__V1__Caller *caller = rt_caller(svc, r);
    if (caller == r->caller) {
        job->mine = r->caller;
        r->caller = NULL;
    }
    job->msg = r->msg;
    r->msg = NULL;
    job->call = (sam_call_t){
        .id = r->req->id,
        .method = job->method,
        .msg = job->msg,
        .body = job->body,
        .body_len = blen,
        .caller = caller,
    };
    r->slow = job;
    s_start(svc, job); /* or later, when a slot is free (s_again) */
    rt_park(svc, r, RT_MAX_WAIT_MS, now, s_again);
    return 1;
}

void rt_slow_abandon(rt_request_t *r)
{
    rt_slow_t *job = r->slow;
    r->slow = NULL;
    if (!job->started) {
        s_free(job);
        return;
    }
    if (!job->threaded) { /* never ran: pthread_create failed */
        s_free(job);
        return;
    }
    job->svc->n_slow--;
    if (atomic_exchange(&job->state, S_ABANDONED) == S_DONE) {
        pthread_join(job->thread, NULL);
        s_free(job);
    } else {
        pthread_detach(job->thread); /* it frees the job itself when done */
    }
}

void rt_slow_wait_all(sam_service_t *svc)
{
    while (atomic_load(&svc->slow_threads) > 0)
        zclock_sleep(5);
}
