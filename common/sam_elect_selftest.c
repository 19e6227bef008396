/*  sam_elect_selftest — the election through etcd (sam_elect.h) against a real etcd it
    starts on free loopback ports; writes only under the folder given as its first argument.
    Exits 77 (skipped, with the reason on stdout) when no etcd program is installed, else
    like every selftest (sam_testkit.h). SAM_SELFTEST_VERBOSE=1 shows the elect.* lines. */
#include "sam_elect.h"
#include "sam_log.h"
#include "sam_testkit.h"

#include <czmq.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "selftest-data";
    zsys_dir_create("%s", dir);
    sam_log_init("elect-selftest", getenv("SAM_SELFTEST_VERBOSE") ? SAM_LOG_DEBUG : SAM_LOG_ERROR);
    int rc = sam_elect_selftest(dir);
    if (rc == 1) return 77;
    return sam_testkit_done("sam_elect_selftest");
}
