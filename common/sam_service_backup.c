/*  sam_service_backup.c — store.backup: a hot, compacted copy of the service's store.

    LMDB copies an environment consistently from inside one read transaction
    (mdb_env_copy2 with MDB_CP_COMPACT), so the service never stops writing: the copy is
    the store as it stood when that transaction began. The copy runs in a thread of its own
    (LMDB environments are shared across threads; the copy's read transaction is that
    thread's) and the request is parked like a long poll (rt_park) until the thread is done;
    the loop goes on serving meanwhile. One copy at a time per instance.

    The outbox head in the reply is read just before the copy starts: every event up to it
    is in the copy (the copy may hold a few more). At shutdown the drain waits for a copy in
    progress, so its caller still gets its answer.
*/
#include "sam_service_int.h"

#include "samordna/v1/service.pb-c.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    pthread_t thread;
    MDB_env *env;
    char path[4096];  /* the copy's folder */
    atomic_bool done; /* set by the thread when mdb_env_copy2 returned */
    int rc;           /* its result */
    int64_t started;  /* monotonic ms */
    uint64_t head;    /* the outbox head before the copy began */
} s_job_t;

static void *s_copy(void *arg)
{
    s_job_t *job = arg;
    job->rc = mdb_env_copy2(job->env, job->path, MDB_CP_COMPACT);
    atomic_store(&job->done, true);
    return NULL;
}

/* The parked request's turn: still waiting while the copy runs (at shutdown, waits for it). */
static bool s_backup_again(sam_service_t *svc, rt_request_t *r, MDB_txn *txn, uint64_t last_seq,
                           int64_t now)
{
    (void)txn;
    (void)last_seq;
    s_job_t *job = r->job;
    if (!atomic_load(&job->done) && !zsys_interrupted) {
        r->deadline = now + RT_MAX_WAIT_MS; /* a copy takes as long as it takes */
        return true;
    }
    pthread_join(job->thread, NULL);
    svc->backing_up = false;
    int64_t took = zclock_mono() - job->started;
    if (job->rc) {
        sam_error("backup.failed path=%s error=%s", sam_logv(job->path),
                  sam_logv(mdb_strerror(job->rc)));
        sam_reply_error(&r->reply, SAM_INTERNAL, "the copy to %s failed: %s", job->path,
                        mdb_strerror(job->rc));
    } else {
        char file[4200];
        snprintf(file, sizeof file, "%s/data.mdb", job->path);
        struct stat st;
        Samordna__V1__BackupReply br = SAMORDNA__V1__BACKUP_REPLY__INIT;
        br.service = (char *)svc->def->name;
        br.instance = svc->instance;
        br.path = job->path;
        br.outbox_head = job->head;
        br.bytes = stat(file, &st) == 0 ? (uint64_t)st.st_size : 0;
        br.duration_ms = (uint64_t)took;
        br.version = SAMORDNA_VERSION;
        br.schema = svc->def->schema_version;
        sam_reply_message(&r->reply, &br.base);
        sam_info("backup.done path=%s outbox_head=%" PRIu64 " bytes=%" PRIu64 " ms=%" PRId64,
                 sam_logv(job->path), job->head, br.bytes, took);
    }
    free(job);
    r->job = NULL;
    return false;
}

void rt_backup_abandon(rt_request_t *r)
{
    s_job_t *job = r->job;
    pthread_join(job->thread, NULL);
    free(job);
    r->job = NULL;
}

int rt_builtin_backup(sam_service_t *svc, rt_request_t *r, MDB_txn *rtxn, int64_t now)
{
    const Samordna__V1__BackupRequest *br = (const Samordna__V1__BackupRequest *)r->msg;
    const char *dir = br ? br->dir : "";
    if (svc->harness) { /* a fuzzer drives it: no files written outside its scratch folder */
        sam_reply_error(&r->reply, SAM_UNAVAILABLE, "no backups under the test harness");
        return 0;
    }
    if (!dir || dir[0] != '/') {
        sam_reply_error(&r->reply, SAM_BAD_REQUEST,
                        "dir: an absolute folder on the service's host is needed");
        return 0;
    }
    if (svc->backing_up) {
        sam_reply_error(&r->reply, SAM_CONFLICT, "a backup of this instance is running");
        return 0;
    }
    s_job_t *job = calloc(1, sizeof *job);
    if (!job) {
        sam_reply_error(&r->reply, SAM_INTERNAL, "out of memory");
        return 0;
    }
    int n = snprintf(job->path, sizeof job->path, "%s/%s", dir, svc->def->name);
    char file[4200];
    snprintf(file, sizeof file, "%s/data.mdb", job->path);
    struct stat st;
    if (n < 0 || (size_t)n >= sizeof job->path) {
        sam_reply_error(&r->reply, SAM_BAD_REQUEST, "dir: too long");
    } else if (stat(file, &st) == 0) {
        sam_reply_error(&r->reply, SAM_CONFLICT,
                        "%s already holds a copy: give a new folder for each backup", job->path);
    } else if (zsys_dir_create("%s", job->path) != 0) {
        sam_reply_error(&r->reply, SAM_BAD_REQUEST, "cannot make the folder %s", job->path);
    } else {
        job->env = sam_store_env(svc->store);
        job->head = sam_service_last_seq(svc, rtxn);
        job->started = zclock_mono();
        if (pthread_create(&job->thread, NULL, s_copy, job) == 0) {
            svc->backing_up = true;
            r->job = job;
            sam_info("backup.started path=%s outbox_head=%" PRIu64, sam_logv(job->path), job->head);
            rt_park(svc, r, RT_MAX_WAIT_MS, now, s_backup_again);
            return 1; /* parked: answered when the copy is done */
        }
        sam_reply_error(&r->reply, SAM_INTERNAL, "cannot start the copy");
    }
    free(job);
    return 0;
}
