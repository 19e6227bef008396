/*  samordna-grants — grant accounting for the welfare pilot: schemes, awards funded by one
    agency or jointly by several, disbursements, repayments and cancellations in whole øre
    on a double-entry ledger, the other instruments agencies give municipalities and what
    the municipalities miss, and one overview per municipality.

    This file is the service's definition, its table built from grants.def and its tables'
    names from grants_store.h, and main(). The runtime (sam_service.h) does the rest.
*/
#include "grants_handlers.h"

/* The table: grants.def's rows (s_rows, SAM_SERVICE_ROWS). */
#define SAM_SERVICE_DEF_FILE "grants.def"
#include "sam_service_rows.h"

static const sam_option_t s_options[] = {
    SAM_FOLLOW_OPTIONS("registry"){NULL, NULL, NULL, NULL, false},
};

static grants_t s_ctx_of_main; /* lives as long as main */

static int s_start(sam_service_t *svc)
{
    grants_t *g = sam_service_ctx(svc);
    g->svc = svc;
    for (int i = 0; i < GRANTS_T_COUNT; i++)
        g->dbi[i] = sam_service_dbi(svc, grants_table_names[i]);
    return grants_refs_start(g);
}

static void s_tick(sam_service_t *svc)
{
    grants_refs_tick(sam_service_ctx(svc));
}

static void s_stop(sam_service_t *svc)
{
    grants_refs_stop(sam_service_ctx(svc));
}

static const sam_service_def_t s_def = {
    .name = "grants",
    .summary = "Grant schemes, joint awards, disbursements and a balanced ledger in øre; "
               "instruments and the overview per municipality.",
    .options = s_options,
    SAM_SERVICE_ROWS,
    SAM_SERVICE_STORE(grants_table_names, GRANTS_SCHEMA_VERSION, NULL),
    .start = s_start,
    .tick = s_tick,
    .tick_ms = 50,
    .stop = s_stop,
};

int main(int argc, char **argv)
{
    return sam_service_main(&s_def, &s_ctx_of_main, argc, argv);
}
