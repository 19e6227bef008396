/*  fuzz_config — the configuration parser: a --config file (CZMQ ZPL) of any bytes, read
    against a service's standard option table, and the values read back as the runtime
    does (numbers with bounds, flags, repeatable options).
*/
#include "fuzz_input.h"
#include "sam_config.h"
#include "sam_log.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const sam_option_t s_options[] = {
    {"broker", "ENDPOINT", "tcp://127.0.0.1:5555", "broker", true},
    {"data-dir", "DIR", "var", "stores", false},
    {"credit", "N", "256", "credit", false},
    {"insecure", NULL, NULL, "no authentication", false},
    {"cert", "FILE", NULL, "certificate", false},
    {NULL, NULL, NULL, NULL, false},
};

static char s_path[512];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = fuzz_scratch_dir();
    zsys_dir_create("%s", tmp);
    snprintf(s_path, sizeof s_path, "%s/samordna-fuzz-config-%d.cfg", tmp, (int)getpid());
    return 0;
}

static void s_parse(void *arg);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_file_quietly(s_path, data, size, s_parse, NULL);
    return 0;
}

static void s_parse(void *arg)
{
    (void)arg;
    sam_config_t *config = sam_config_new("fuzz", "[options]", "fuzz", s_options);
    if (!config) return;
    char *argv[] = {"fuzz", "--config", s_path, NULL};
    if (sam_config_parse(config, 3, argv) == 0) {
        bool ok = true;
        sam_config_int(config, "credit", 1, 1024, &ok);
        sam_config_flag(config, "insecure");
        for (size_t i = 0; i < sam_config_count(config, "broker"); i++)
            sam_config_nth(config, "broker", i);
        sam_config_get(config, "cert");
        sam_log_level_parse(sam_config_get(config, "log-level"));
    }
    sam_config_destroy(&config);
}
