/*  fuzz_import — `samctl import --dry-run` over any bytes: jansson's parser and every
    section's reading and checking of a fixture file (import_sections.def). References
    the file does not define are asked of a broker that is not there (1 ms each), as a
    real run would ask its services. The Østfold fixture is the natural seed.
*/
#include "fuzz_input.h"
#include "samctl.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char s_path[512];
static samctl_t s_ctl;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    zsys_init();
    zsys_set_linger(0);
    const char *tmp = fuzz_scratch_dir();
    zsys_dir_create("%s", tmp);
    snprintf(s_path, sizeof s_path, "%s/samordna-fuzz-import-%d.json", tmp, (int)getpid());
    const char *nowhere[] = {"inproc://fuzz-import-nobody"};
    char err[256];
    s_ctl.client = sam_client_new(nowhere, 1, NULL, err, sizeof err);
    s_ctl.timeout_ms = 1;
    s_ctl.source = "fmov";
    if (!s_ctl.client) abort();
    return 0;
}

static void s_import(void *arg)
{
    (void)arg;
    char *argv[] = {"import", "--dry-run", s_path, NULL};
    samctl_run(&s_ctl, &samctl_import_cmd, 3, argv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_file_quietly(s_path, data, size, s_import, NULL);
    return 0;
}
