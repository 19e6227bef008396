/*  samordna-registry — who takes part in the welfare pilot: agencies, municipalities and
    their mergers, people and roles, the programme, invitations, pilots and reports.

    The definition below is the whole service as the runtime sees it; its table is built from
    registry.def, one line per method and event type.
*/
#include "registry.h"
#include "registry_check.h"

/* The table: registry.def's rows (s_rows, SAM_SERVICE_ROWS). */
#define SAM_SERVICE_DEF_FILE "registry.def"
#include "sam_service_rows.h"

static int s_start(sam_service_t *svc)
{
    registry_t *reg = sam_service_ctx(svc);
    registry_store_bind(&reg->store, svc);
    return 0;
}

static const sam_service_def_t s_def = {
    .name = "registry",
    .summary = "The registry of the welfare pilot: agencies, municipalities, people, the "
               "programme, invitations, pilots.",
    SAM_SERVICE_ROWS,
    SAM_SERVICE_STORE(registry_table_names, REGISTRY_SCHEMA_VERSION, registry_migrate),
    .start = s_start,
};

int main(int argc, char **argv)
{
    registry_t reg = {0};
    return sam_service_main(&s_def, &reg, argc, argv);
}
