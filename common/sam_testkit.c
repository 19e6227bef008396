/*  sam_testkit.c — the selftests' check, verdict and scratch store (sam_testkit.h). */
#include "sam_testkit.h"

#include <czmq.h>
#include <stdio.h>
#include <string.h>

static int s_checks, s_failures; /* this process's checks so far, and the failed ones */

bool sam_testkit_check(bool ok, const char *file, int line, const char *what)
{
    s_checks++;
    if (!ok) {
        s_failures++;
        fprintf(stderr, "FAIL %s:%d: %s\n", file, line, what);
    }
    return ok;
}

int sam_testkit_failures(void)
{
    return s_failures;
}

int sam_testkit_done(const char *program)
{
    if (s_failures == 0) {
        printf("%s: ok\n", program);
        return 0;
    }
    fprintf(stderr, "%s: %d of %d checks failed\n", program, s_failures, s_checks);
    return 1;
}

sam_store_t *sam_testkit_store(const char *dir, const char *const *tables)
{
    char path[4096], err[512] = "";
    zsys_dir_create("%s", dir);
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    zsys_file_delete(path);
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    zsys_file_delete(path);
    sam_store_opts_t opts = {.map_size_mb = 64, .nosync = true};
    sam_store_t *store = sam_store_open(dir, tables, &opts, err, sizeof err);
    if (!store) {
        snprintf(path, sizeof path, "scratch store %s: %s", dir, err);
        sam_testkit_check(false, __FILE__, __LINE__, path);
    }
    return store;
}

char *sam_testkit_fill(char *buf, char c, size_t n)
{
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}
