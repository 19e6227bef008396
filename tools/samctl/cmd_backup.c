/*  cmd_backup.c — samctl backup and samctl restore: the operator's copies of every store.

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

    Manifest (samordna-backup/1):
      {"format":"samordna-backup/1","taken_ms":…,"services":[{"service":"registry",
       "instance":…,"version":…,"schema":1,"outbox_head":77,"bytes":…,"duration_ms":…,
       "path":"DIR/registry"}, …]}
*/
#include "samctl.h"

#include "sam_clock.h"
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

/* The services the command names (--service), or all four. */
static size_t s_which(const samctl_args_t *a, const char **out, size_t cap)
{
    size_t n = samctl_opt_all(a, "service", out, cap);
    if (n) return n < cap ? n : cap;
    for (size_t i = 0; i < S_NSERVICES && i < cap; i++)
        out[i] = s_services[i];
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
