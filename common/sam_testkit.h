/*  sam_testkit.h — what every selftest shares: one check, one verdict, one scratch store.

    The selftests of the shared modules, of the broker and of every service are small
    programs (the lists in tests/list/ run them) that say nothing while their checks hold:

        SAM_CHECK(grants_valid_id("ps19-halden"));
        sam_store_t *store = sam_testkit_store(dir, grants_table_names);
        …
        return sam_testkit_done("grants_selftest");

    A failed check prints one line, "FAIL file:line: condition", to stderr and is counted;
    the verdict prints "<program>: ok" or "<program>: N of M checks failed" and gives the
    exit code. The counts are the one piece of process-wide state here: a selftest is one
    thread, and a class's selftest function (sam_keys_selftest, sam_broker_selftest) counts
    its own failures as the difference across its run.
*/
#ifndef SAM_TESTKIT_H
#define SAM_TESTKIT_H

#include "sam_store.h"

#include <stdbool.h>
#include <stddef.h>

/* Checks cond; counts it, and prints the failure with its place. Evaluates to cond. */
#define SAM_CHECK(cond) sam_testkit_check((cond) != 0, __FILE__, __LINE__, #cond)

/* What SAM_CHECK calls: returns ok. */
bool sam_testkit_check(bool ok, const char *file, int line, const char *what);

/* How many checks have failed in this process so far. */
int sam_testkit_failures(void);

/*  The verdict: prints "<program>: ok" (stdout), or "<program>: N of M checks failed" (stderr).
    Returns the exit code, 0 when every check held and 1 otherwise. */
int sam_testkit_done(const char *program);

/*  A scratch store in `dir` with these tables (NULL-terminated; the runtime's outbox and
    dedup come with them, sam_store.h): the folder is made when missing and any store
    already there removed first, so every run starts from an empty one. Unsynced, 64 MB.
    Returns the store (the caller destroys it), or NULL after printing why and counting a
    failed check. */
sam_store_t *sam_testkit_store(const char *dir, const char *const *tables);

/*  buf filled with n copies of c and a NUL (buf holds at least n + 1 bytes): the longest
    and one-too-long values of a field. Returns buf. */
char *sam_testkit_fill(char *buf, char c, size_t n);

#endif
