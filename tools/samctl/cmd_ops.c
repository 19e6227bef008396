/*  cmd_ops.c — the operator's commands: samctl status, samctl backup, samctl restore.

      status
          the whole suite at a glance: each broker (asked alone, mmi.workers: its version,
          counters, and per service its queue and workers), then each service (ping through
          the brokers: its instances and versions, outbox head, how far it follows the others,
          notify's dead letters). Exit 1 when a broker or one of the four services does not
          answer, so a script can act on it.

      backup DIR [--service S]… [--wait-ms MS]
          asks each service (registry, status, grants, notify by default) for store.backup
          into DIR, an absolute folder on the services' host, then writes DIR/manifest.json:
          the format, when, and per service its instance, version, schema, outbox head, size.
          The services go on serving and writing meanwhile (sam_service_backup.c). One service
          failing fails the backup: no manifest, exit 1.
      restore DIR --data-dir DATA [--service S]…
          with the services stopped: puts each copy of DIR's manifest back as
          DATA/<service>/data.mdb. A store in use (an LMDB lock held by a live process) is
          refused; a store that is there is kept beside as DATA/<service>.before-restore-<ms>.

      promote SERVICE --instance NAME [--wait-ms MS]
          makes the standby NAME the primary of SERVICE (docs/scaling.md, "Promotion"):
          replica.promote sent to that instance alone. A standby of --replica standby becomes
          the primary at once, with an epoch above every one it knows; one of --replica elect
          asks etcd for a handover, and the command waits (--wait-ms, default 15000) until
          NAME reports itself the primary. Exit 1 when it does not.

    Manifest (samordna-backup/1):
      {"format":"samordna-backup/1","taken_ms":…,"services":[{"service":"registry",
       "instance":…,"version":…,"schema":1,"outbox_head":77,"bytes":…,"duration_ms":…,
       "path":"DIR/registry"}, …]}
*/
#include "samctl.h"

#include "sam_clock.h"
#include "samordna/v1/envelope.pb-c.h"
#include "samordna/v1/notify.pb-c.h"
#include "samordna/v1/service.pb-c.h"

#include <czmq.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const s_services[] = {"registry", "status", "grants", "notify"};
#define S_NSERVICES (sizeof s_services / sizeof s_services[0])

/* The order a backup copies them in: followers before the outboxes they follow (notify
   follows the three others, status and grants the registry), so in the backup no follower's
   cursor is past the head of the outbox it follows, and a restored follower only catches up. */
static const char *const s_backup_order[] = {"notify", "status", "grants", "registry"};

/* The services the command names (--service), or all four in the backup order. */
static size_t s_which(const samctl_args_t *a, const char **out, size_t cap)
{
    size_t n = samctl_opt_all(a, "service", out, cap);
    if (n) return n < cap ? n : cap;
    for (size_t i = 0; i < S_NSERVICES && i < cap; i++)
        out[i] = s_backup_order[i];
    return S_NSERVICES < cap ? S_NSERVICES : cap;
}

/* dir as an absolute path into out. */
static int s_absolute(const char *dir, char *out, size_t cap)
{
    if (dir[0] == '/') return snprintf(out, cap, "%s", dir) < (int)cap ? 0 : -1;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return -1;
    return snprintf(out, cap, "%s/%s", cwd, dir) < (int)cap ? 0 : -1;
}

static int s_backup(samctl_t *ctl, const samctl_args_t *a)
{
    char dir[PATH_MAX];
    if (s_absolute(a->pos[0], dir, sizeof dir) != 0)
        return samctl_usage_error(a, "DIR: cannot make an absolute path of '%s'", a->pos[0]);
    char manifest[PATH_MAX + 32];
    snprintf(manifest, sizeof manifest, "%s/manifest.json", dir);
    if (access(manifest, F_OK) == 0) {
        fprintf(stderr, "samctl backup: %s holds a backup already: give a new folder\n", dir);
        return 1;
    }
    const char *which[16];
    size_t n = s_which(a, which, 16);
    uint32_t wait = samctl_u32(a, "wait-ms");
    int timeout = ctl->timeout_ms;
    ctl->timeout_ms = wait ? (int)wait : 600000; /* a copy takes as long as the store is big */
    json_t *services = json_array();
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        Samordna__V1__BackupRequest req = SAMORDNA__V1__BACKUP_REQUEST__INIT;
        req.dir = dir;
        sam_result_t res;
        Samordna__V1__BackupReply *br = NULL;
        uint32_t code =
            samctl_request(ctl, which[i], "store.backup", &req.base,
                           &samordna__v1__backup_reply__descriptor, (ProtobufCMessage **)&br, false,
                           &res); /* not resent: a second ask meets the first's copy */
        if (code != 200) {
            fprintf(stderr, "samctl backup: %s: %u %s: %s\n", which[i], code, sam_status_name(code),
                    res.message);
            rc = 1;
        } else {
            json_array_append_new(services, samctl_json_message(&br->base));
            if (!ctl->json)
                printf("%-10s outbox head %-10llu %12llu bytes %8llu ms  %s\n", br->service,
                       (unsigned long long)br->outbox_head, (unsigned long long)br->bytes,
                       (unsigned long long)br->duration_ms, br->path);
            protobuf_c_message_free_unpacked(&br->base, NULL);
        }
        sam_result_clear(&res);
    }
    ctl->timeout_ms = timeout;
    if (rc != 0) {
        json_decref(services);
        fprintf(stderr, "samctl backup: incomplete, so no manifest was written in %s\n", dir);
        return rc;
    }
    json_t *m = json_object();
    json_object_set_new(m, "format", json_string("samordna-backup/1"));
    json_object_set_new(m, "taken_ms", json_integer((json_int_t)sam_clock_now_ms()));
    json_object_set_new(m, "services", services);
    if (json_dump_file(m, manifest, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
        fprintf(stderr, "samctl backup: cannot write %s: %s\n", manifest, strerror(errno));
        json_decref(m);
        return 1;
    }
    if (ctl->json)
        samctl_print_json(m);
    else {
        printf("backup of %zu services in %s (manifest.json)\n", n, dir);
        json_decref(m);
    }
    return 0;
}

/* Whether a process has the LMDB environment in folder `store` open: every process that
   opens one holds a lock on the first byte of its lock.mdb (LMDB's own protocol). */
static bool s_in_use(const char *store, pid_t *pid)
{
    char lock[PATH_MAX + 128];
    snprintf(lock, sizeof lock, "%s/lock.mdb", store);
    int fd = open(lock, O_RDWR);
    if (fd < 0) return false;
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    bool busy = fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
    if (busy) *pid = fl.l_pid;
    close(fd);
    return busy;
}

/* Copies file from to to (made anew, synced). 0, or -1 with errno. */
static int s_copy(const char *from, const char *to)
{
    int in = open(from, O_RDONLY), out = -1, rc = -1;
    if (in >= 0) out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (in >= 0 && out >= 0) {
        char buf[1 << 16];
        ssize_t got;
        rc = 0;
        while (rc == 0 && (got = read(in, buf, sizeof buf)) != 0) {
            if (got < 0 || write(out, buf, (size_t)got) != got) rc = -1;
        }
        if (rc == 0 && fsync(out) != 0) rc = -1;
    }
    int saved = errno;
    if (in >= 0) close(in);
    if (out >= 0) close(out);
    errno = saved;
    return rc;
}

static int s_restore(samctl_t *ctl, const samctl_args_t *a)
{
    (void)ctl;
    const char *dir = a->pos[0], *data = samctl_opt(a, "data-dir");
    char manifest[PATH_MAX + 32];
    snprintf(manifest, sizeof manifest, "%s/manifest.json", dir);
    json_error_t jerr;
    json_t *m = json_load_file(manifest, 0, &jerr);
    const char *format = m ? json_string_value(json_object_get(m, "format")) : NULL;
    if (!format || strcmp(format, "samordna-backup/1") != 0) {
        fprintf(stderr, "samctl restore: %s is not a samordna backup manifest (%s)\n", manifest,
                m ? "no format samordna-backup/1" : jerr.text);
        json_decref(m);
        return 1;
    }
    const char *which[16];
    size_t n = s_which(a, which, 16);
    json_t *services = json_object_get(m, "services");
    int rc = 0;
    /* every check first, so a refusal leaves every store as it was */
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *found = NULL, *s;
        size_t k;
        json_array_foreach(services, k, s)
        {
            const char *name = json_string_value(json_object_get(s, "service"));
            if (name && strcmp(name, which[i]) == 0) found = s;
        }
        char src[PATH_MAX + 64], store[PATH_MAX + 64];
        snprintf(src, sizeof src, "%s/%s/data.mdb", dir, which[i]);
        snprintf(store, sizeof store, "%s/%s", data, which[i]);
        pid_t pid = 0;
        if (!found) {
            fprintf(stderr, "samctl restore: the backup holds no %s\n", which[i]);
            rc = 1;
        } else if (access(src, R_OK) != 0) {
            fprintf(stderr, "samctl restore: %s: %s\n", src, strerror(errno));
            rc = 1;
        } else if (s_in_use(store, &pid)) {
            fprintf(stderr, "samctl restore: %s is in use by process %d: stop samordna-%s first\n",
                    store, (int)pid, which[i]);
            rc = 1;
        }
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        char src[PATH_MAX + 64], store[PATH_MAX + 64], aside[PATH_MAX + 96], file[PATH_MAX + 80];
        snprintf(src, sizeof src, "%s/%s/data.mdb", dir, which[i]);
        snprintf(store, sizeof store, "%s/%s", data, which[i]);
        snprintf(file, sizeof file, "%s/data.mdb", store);
        struct stat st;
        if (stat(store, &st) == 0) {
            snprintf(aside, sizeof aside, "%s.before-restore-%lld", store,
                     (long long)sam_clock_now_ms());
            if (rename(store, aside) != 0) {
                fprintf(stderr, "samctl restore: cannot move %s aside: %s\n", store,
                        strerror(errno));
                rc = 1;
                break;
            }
            printf("%-10s the store that was there is kept as %s\n", which[i], aside);
        }
        if (zsys_dir_create("%s", store) != 0 || chmod(store, 0700) != 0 || s_copy(src, file)) {
            fprintf(stderr, "samctl restore: cannot write %s: %s\n", file, strerror(errno));
            rc = 1;
            break;
        }
        printf("%-10s restored into %s\n", which[i], store);
    }
    json_decref(m);
    if (rc == 0)
        printf("restored: start the services; their followers catch up from the restored "
               "outboxes (docs/operations.md, Backups)\n");
    return rc;
}

static const samctl_opt_t s_backup_opts[] = {
    {"service", 0, "SERVICE", SAMCTL_TEXT, SAMCTL_REPEAT,
     "only this service (repeatable; default: registry, status, grants, notify)"},
    {"wait-ms", 0, "MS", SAMCTL_COUNT, 0, "how long a service's copy may take (default 600000)"},
    {NULL, 0, NULL, SAMCTL_TEXT, 0, NULL},
};

static const samctl_opt_t s_restore_opts[] = {
    {"data-dir", 0, "DIR", SAMCTL_TEXT, SAMCTL_REQUIRED,
     "the services' --data-dir: each store goes back to DIR/<service>"},
    {"service", 0, "SERVICE", SAMCTL_TEXT, SAMCTL_REPEAT,
     "only this service (repeatable; default: all four)"},
    {NULL, 0, NULL, SAMCTL_TEXT, 0, NULL},
};

const samctl_cmd_t samctl_backup_cmd = {
    .name = "backup",
    .args = "DIR",
    .about = "A consistent hot copy of every service's store into DIR (on the services' host),\n"
             "compacted, taken while the services go on writing, with DIR/manifest.json of\n"
             "each store's outbox head. Admins only.",
    .opts = s_backup_opts,
    .run = s_backup,
};

const samctl_cmd_t samctl_restore_cmd = {
    .name = "restore",
    .args = "DIR",
    .about = "Puts the stores of the backup in DIR back under --data-dir, with the services\n"
             "stopped (a store in use is refused); a store that was there is kept aside.",
    .opts = s_restore_opts,
    .run = s_restore,
};

/* ---- status ------------------------------------------------------------------------------ */

/* Dead letters of notify: the pages of notify.dead.list counted; -1 when it does not answer. */
static long s_dead_letters(samctl_t *ctl)
{
    long count = 0;
    char token[256] = "";
    for (int pages = 0; pages < 1000; pages++) {
        Samordna__V1__DeadListRequest req = SAMORDNA__V1__DEAD_LIST_REQUEST__INIT;
        req.page_size = 1000;
        req.page_token = token;
        sam_result_t res;
        Samordna__V1__DeadListReply *rep = NULL;
        uint32_t code = samctl_request(ctl, "notify", "notify.dead.list", &req.base,
                                       &samordna__v1__dead_list_reply__descriptor,
                                       (ProtobufCMessage **)&rep, true, &res);
        sam_result_clear(&res);
        if (code != 200) return -1;
        count += (long)rep->n_deliveries;
        bool more = rep->next_page_token && *rep->next_page_token;
        if (more) snprintf(token, sizeof token, "%s", rep->next_page_token);
        protobuf_c_message_free_unpacked(&rep->base, NULL);
        if (!more) break;
    }
    return count;
}

/* One broker's mmi.workers as JSON, or an object {"endpoint","error"} when it did not answer. */
static json_t *s_broker(samctl_t *ctl, const char *ep)
{
    json_t *b = NULL;
    const char *why = "no answer";
    sam_client_t *c = samctl_client_of(ctl, &ep, 1);
    char *answer = c ? sam_client_mmi(c, "mmi.workers", "", ctl->timeout_ms) : NULL;
    if (answer && strcmp(answer, "403") == 0)
        why = "refused: mmi.workers is for admins (--cert of an admin)";
    else if (answer && strcmp(answer, "501") == 0)
        why = "a broker without mmi.workers (an older version?)";
    else if (answer)
        b = json_loads(answer, 0, NULL);
    free(answer);
    sam_client_destroy(&c);
    if (!b) {
        b = json_object();
        char text[160];
        snprintf(text, sizeof text, "%s within %d ms", why, ctl->timeout_ms);
        json_object_set_new(b, "error", json_string(answer || !c ? why : text));
    }
    json_object_set_new(b, "endpoint", json_string(ep));
    return b;
}

/*  The entries the brokers' answers have for `service`, one per broker that knows it, into
    out (borrowed from brokers); how many. */
static size_t s_service_entries(json_t *brokers, const char *service, json_t **out, size_t cap)
{
    size_t n = 0, i, j;
    json_t *b, *svc;
    json_array_foreach(brokers, i, b)
    {
        json_array_foreach(json_object_get(b, "services"), j, svc)
        {
            if (n < cap &&
                strcmp(json_string_value(json_object_get(svc, "name")) ?: "", service) == 0)
                out[n++] = svc;
        }
    }
    return n;
}

/* What the brokers' answers say of one service: its instances, "vm-1 0.1.0, vm-2 0.1.0", each
   once (an instance serves through every broker), into out; their number; and into *queued
   its requests waiting, summed over the brokers. */
static size_t s_service_view(json_t *brokers, const char *service, char *out, size_t cap,
                             long long *queued)
{
    json_t *entries[16], *w, *seen = json_object();
    size_t n = 0, at = 0, k, ne = s_service_entries(brokers, service, entries, 16);
    out[0] = 0;
    *queued = 0;
    for (size_t e = 0; e < ne; e++) {
        *queued += (long long)json_integer_value(json_object_get(entries[e], "queued"));
        json_array_foreach(json_object_get(entries[e], "workers"), k, w)
        {
            const char *inst = json_string_value(json_object_get(w, "instance")) ?: "";
            const char *ver = json_string_value(json_object_get(w, "version")) ?: "";
            if (*inst && json_object_get(seen, inst)) continue; /* through another broker */
            if (*inst) json_object_set_new(seen, inst, json_true());
            if (at < cap)
                at += (size_t)snprintf(out + at, cap - at, "%s%s %s", n ? ", " : "",
                                       *inst ? inst : "?", *ver ? ver : "?");
            n++;
        }
    }
    json_decref(seen);
    return n;
}

/* One instance's ping, sent to it alone; NULL (res says why) when it did not answer. */
static Samordna__V1__PingReply *s_ping_instance(samctl_t *ctl, const char *service,
                                                const char *instance, sam_result_t *res)
{
    sam_client_t *c = samctl_client(ctl);
    if (!c) return NULL;
    sam_client_set_route(c, false, instance);
    Samordna__V1__PingReply *pr = NULL;
    uint32_t code =
        samctl_request(ctl, service, "ping", NULL, &samordna__v1__ping_reply__descriptor,
                       (ProtobufCMessage **)&pr, true, res);
    samctl_route_default(ctl, c);
    return code == 200 ? pr : NULL;
}

/*  The part each instance of `service` plays (ReplicaState), from a ping sent to each one the
    brokers know: [{"instance","role","epoch","last_seq","state"}, …]. Only for a service
    with a standby or an election: an array of one primary says nothing new. */
static json_t *s_replicas(samctl_t *ctl, json_t *brokers, const char *service)
{
    json_t *out = json_array(), *seen = json_object(), *entries[16], *w;
    size_t k, ne = s_service_entries(brokers, service, entries, 16);
    bool replicated = false;
    for (size_t e = 0; e < ne; e++) {
        json_array_foreach(json_object_get(entries[e], "workers"), k, w)
        {
            const char *inst = json_string_value(json_object_get(w, "instance")) ?: "";
            if (!*inst || json_object_get(seen, inst)) continue;
            json_object_set_new(seen, inst, json_true());
            sam_result_t res;
            Samordna__V1__PingReply *pr = s_ping_instance(ctl, service, inst, &res);
            json_t *o = json_object();
            json_object_set_new(o, "instance", json_string(inst));
            if (!pr) {
                json_object_set_new(o, "error", json_string(res.message));
            } else {
                const Samordna__V1__ReplicaState *rs = pr->replica;
                if (rs && strcmp(rs->mode, "primary") != 0) replicated = true;
                json_object_set_new(o, "role", json_string(rs ? rs->role : "primary"));
                json_object_set_new(o, "epoch", json_integer((json_int_t)(rs ? rs->epoch : 0)));
                json_object_set_new(o, "last_seq", json_integer((json_int_t)pr->last_seq));
                json_object_set_new(o, "state", json_string(rs ? rs->state : ""));
                protobuf_c_message_free_unpacked(&pr->base, NULL);
            }
            sam_result_clear(&res);
            json_array_append_new(out, o);
        }
    }
    json_decref(seen);
    if (!replicated) {
        json_decref(out);
        return NULL;
    }
    return out;
}

static int s_status(samctl_t *ctl, const samctl_args_t *a)
{
    (void)a;
    int rc = 0;
    json_t *brokers = json_array(), *services = json_array();
    size_t nb = sam_config_count(ctl->config, "broker");
    for (size_t i = 0; i < nb; i++) {
        json_t *b = s_broker(ctl, sam_config_nth(ctl->config, "broker", i));
        if (json_object_get(b, "error")) rc = 1;
        json_array_append_new(brokers, b);
    }
    for (size_t i = 0; i < S_NSERVICES; i++) {
        const char *name = s_services[i];
        json_t *s = json_object();
        json_object_set_new(s, "service", json_string(name));
        char inst[1024];
        long long queued;
        size_t n = s_service_view(brokers, name, inst, sizeof inst, &queued);
        json_object_set_new(s, "instances", json_integer((json_int_t)n));
        json_object_set_new(s, "running", json_string(inst));
        json_object_set_new(s, "queued", json_integer((json_int_t)queued));
        sam_result_t res;
        Samordna__V1__PingReply *pr = NULL;
        sam_client_t *c = samctl_client(ctl);
        if (c) sam_client_set_route(c, true, NULL); /* the outbox head is the primary's */
        uint32_t code =
            samctl_request(ctl, name, "ping", NULL, &samordna__v1__ping_reply__descriptor,
                           (ProtobufCMessage **)&pr, true, &res);
        if (c) samctl_route_default(ctl, c);
        json_t *replicas = code == 200 ? s_replicas(ctl, brokers, name) : NULL;
        if (replicas) json_object_set_new(s, "replicas", replicas);
        if (code != 200) {
            rc = 1;
            json_object_set_new(s, "error", json_string(res.message));
        } else {
            json_object_set_new(s, "version", json_string(pr->version));
            json_object_set_new(s, "outbox_head", json_integer((json_int_t)pr->last_seq));
            json_t *follows = json_array();
            for (size_t k = 0; k < pr->n_followers; k++) {
                const Samordna__V1__FollowerState *f = pr->followers[k];
                json_t *o = json_object();
                json_object_set_new(o, "service", json_string(f->service));
                json_object_set_new(o, "cursor", json_integer((json_int_t)f->cursor));
                json_object_set_new(o, "head", json_integer((json_int_t)f->head));
                json_object_set_new(
                    o, "lag",
                    json_integer((json_int_t)(f->head > f->cursor ? f->head - f->cursor : 0)));
                json_object_set_new(o, "down", json_boolean(f->down));
                json_array_append_new(follows, o);
            }
            json_object_set_new(s, "follows", follows);
            protobuf_c_message_free_unpacked(&pr->base, NULL);
            if (strcmp(name, "notify") == 0) {
                long dead = s_dead_letters(ctl);
                if (dead >= 0) json_object_set_new(s, "dead_letters", json_integer(dead));
            }
        }
        sam_result_clear(&res);
        json_array_append_new(services, s);
    }
    if (ctl->json) {
        json_t *j = json_object();
        json_object_set_new(j, "brokers", brokers);
        json_object_set_new(j, "services", services);
        samctl_print_json(j);
        return rc;
    }
    size_t i;
    json_t *b, *s;
    printf("brokers: %zu\n", json_array_size(brokers));
    json_array_foreach(brokers, i, b)
    {
        const char *ep = json_string_value(json_object_get(b, "endpoint"));
        if (json_object_get(b, "error")) {
            printf("  %-28s %s\n", ep, json_string_value(json_object_get(b, "error")));
            continue;
        }
        printf("  %-28s %-8s requests %lld, replies %lld, expired %lld, queued %lld, lost "
               "workers %lld\n",
               ep, json_string_value(json_object_get(b, "version")) ?: "?",
               (long long)json_integer_value(json_object_get(b, "requests")),
               (long long)json_integer_value(json_object_get(b, "replies")),
               (long long)json_integer_value(json_object_get(b, "expired")),
               (long long)json_integer_value(json_object_get(b, "queued")),
               (long long)json_integer_value(json_object_get(b, "lost_workers")));
    }
    printf("services: %zu\n", json_array_size(services));
    json_array_foreach(services, i, s)
    {
        const char *name = json_string_value(json_object_get(s, "service"));
        long long n = (long long)json_integer_value(json_object_get(s, "instances"));
        if (json_object_get(s, "error")) {
            printf("  %-9s not answering: %s\n", name,
                   json_string_value(json_object_get(s, "error")));
            continue;
        }
        printf("  %-9s %lld instance%s (%s), queued %lld, outbox head %lld", name, n,
               n == 1 ? "" : "s", json_string_value(json_object_get(s, "running")),
               (long long)json_integer_value(json_object_get(s, "queued")),
               (long long)json_integer_value(json_object_get(s, "outbox_head")));
        size_t k;
        json_t *f;
        json_array_foreach(json_object_get(s, "follows"), k, f)
        {
            printf(", follows %s: lag %lld%s", json_string_value(json_object_get(f, "service")),
                   (long long)json_integer_value(json_object_get(f, "lag")),
                   json_is_true(json_object_get(f, "down")) ? " (not answering)" : "");
        }
        if (json_object_get(s, "dead_letters"))
            printf(", dead letters %lld",
                   (long long)json_integer_value(json_object_get(s, "dead_letters")));
        printf("\n");
        json_t *r;
        json_array_foreach(json_object_get(s, "replicas"), k, r)
        {
            const char *inst = json_string_value(json_object_get(r, "instance"));
            if (json_object_get(r, "error")) {
                printf("    %-26s not answering: %s\n", inst,
                       json_string_value(json_object_get(r, "error")));
                continue;
            }
            printf("    %-26s %-9s epoch %-8lld outbox head %-10lld %s\n", inst,
                   json_string_value(json_object_get(r, "role")),
                   (long long)json_integer_value(json_object_get(r, "epoch")),
                   (long long)json_integer_value(json_object_get(r, "last_seq")),
                   json_string_value(json_object_get(r, "state")));
        }
    }
    json_decref(brokers);
    json_decref(services);
    return rc;
}

const samctl_cmd_t samctl_status_cmd = {
    .name = "status",
    .about = "The whole suite at a glance: each broker (its counters, asked alone), each\n"
             "service's instances and versions, outbox head, how far it follows the others and\n"
             "notify's dead letters. Exit 1 when a broker or a service does not answer. Admins\n"
             "only with CURVE (the brokers' mmi.workers).",
    .run = s_status,
};

/* promote SERVICE --instance NAME: that standby becomes the primary. */
static int s_promote(samctl_t *ctl, const samctl_args_t *a)
{
    /* --instance is the global option (every request to that instance): here, the standby */
    const char *service = a->pos[0], *instance = sam_config_get(ctl->config, "instance");
    if (!instance) return samctl_usage_error(a, "--instance NAME: the standby to promote");
    uint32_t wait_ms = samctl_opt(a, "wait-ms") ? samctl_u32(a, "wait-ms") : 15000;
    sam_client_t *c = samctl_client(ctl); /* routed to the instance (samctl_route_default) */
    if (!c) return 1;
    sam_result_t res;
    Samordna__V1__ReplicaState *rs = NULL;
    Samordna__V1__PromoteRequest pq = SAMORDNA__V1__PROMOTE_REQUEST__INIT;
    pq.force = samctl_flag(a, "force");
    uint32_t code = samctl_request(ctl, service, "replica.promote", &pq.base,
                                   &samordna__v1__replica_state__descriptor,
                                   (ProtobufCMessage **)&rs, true, &res);
    if (code != 200) {
        fprintf(stderr, "samctl promote: %s %s: %u %s: %s\n", service, instance, code,
                sam_status_name(code), res.message);
        sam_result_clear(&res);
        return 1;
    }
    sam_result_clear(&res);
    /* elect mode: the old primary hands over in its own time; wait until NAME says primary */
    bool ok = strcmp(rs->role, "primary") == 0;
    uint64_t epoch = rs->epoch;
    char state[200];
    snprintf(state, sizeof state, "%s", rs->state);
    int64_t until = zclock_mono() + wait_ms;
    while (!ok && zclock_mono() < until) {
        zclock_sleep(200);
        Samordna__V1__PingReply *pr = s_ping_instance(ctl, service, instance, &res);
        sam_result_clear(&res);
        if (pr && pr->replica) {
            ok = strcmp(pr->replica->role, "primary") == 0;
            epoch = pr->replica->epoch;
            snprintf(state, sizeof state, "%s", pr->replica->state);
        }
        if (pr) protobuf_c_message_free_unpacked(&pr->base, NULL);
    }
    if (ok) { /* the state as it is now, for --json */
        Samordna__V1__PingReply *pr = s_ping_instance(ctl, service, instance, &res);
        sam_result_clear(&res);
        if (pr && pr->replica) {
            protobuf_c_message_free_unpacked(&rs->base, NULL);
            rs = pr->replica;
            pr->replica = NULL;
        }
        if (pr) protobuf_c_message_free_unpacked(&pr->base, NULL);
    }
    if (ctl->json) {
        json_t *j = samctl_json_message(&rs->base);
        json_object_set_new(j, "service", json_string(service));
        json_object_set_new(j, "instance", json_string(instance));
        json_object_set_new(j, "promoted", json_boolean(ok));
        samctl_print_json(j);
    } else if (ok) {
        printf("%s: %s is the primary, epoch %llu\n", service, instance, (unsigned long long)epoch);
    }
    if (!ok)
        fprintf(stderr, "samctl promote: %s %s is not the primary after %u ms (%s)\n", service,
                instance, wait_ms, state);
    protobuf_c_message_free_unpacked(&rs->base, NULL);
    return ok ? 0 : 1;
}

static const samctl_opt_t s_promote_opts[] = {
    {"force", 0, NULL, SAMCTL_TEXT, 0,
     "promote by hand although the primary still answers the standby (it keeps answering "
     "reads: stop it)"},
    {"wait-ms", 0, "MS", SAMCTL_COUNT, 0,
     "how long to wait for an etcd handover to finish (default 15000)"},
    {NULL},
};

const samctl_cmd_t samctl_promote_cmd = {
    .name = "promote",
    .args = "SERVICE",
    .about = "Makes the standby named by the global --instance NAME the primary of SERVICE\n"
             "(docs/scaling.md, \"Promotion\"). A --replica standby instance is promoted at\n"
             "once, with a new epoch: stop the old primary first if it still runs (the brokers\n"
             "send it no writes anyway). A --replica elect instance asks etcd for a handover:\n"
             "the primary stops writing, waits until NAME has caught up and gives way. Admins\n"
             "only.",
    .opts = s_promote_opts,
    .run = s_promote,
};
