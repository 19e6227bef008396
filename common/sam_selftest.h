/*  sam_selftest.h — the check of the selftests that live inside a module (sam_keys_selftest,
    sam_broker_selftest): one failed condition prints one line, naming the selftest, the place
    and the condition, and counts in the caller's `failed`; a check that holds prints nothing.
*/
#ifndef SAM_SELFTEST_H
#define SAM_SELFTEST_H

#include <stdio.h>

#define SAM_SELFTEST_CHECK(who, failed, cond)                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s: %s:%d: check failed: %s\n", who, __FILE__, __LINE__, #cond);      \
            (failed)++;                                                                            \
        }                                                                                          \
    } while (0)

#endif
