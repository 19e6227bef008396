/*  samordna-registry — who takes part in the welfare pilot: agencies, municipalities and
    their mergers, people and roles, the programme, invitations, pilots and reports.

    The definition below is the whole service as the runtime sees it; its table is built from
    registry.def, one line per method and event type.
*/
#include "registry.h"
#include "registry_check.h"

/* The table: registry.def's rows. */
static const sam_row_t s_rows[] = {
#define Q SAM_ROW_QUERY
#define E SAM_ROW_EVENT
#include "registry.def"
#undef Q
#undef E
};

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
    .rows = s_rows,
    .n_rows = sizeof s_rows / sizeof s_rows[0],
    .tables = registry_table_names,
    .schema_version = REGISTRY_SCHEMA_VERSION,
    .migrate = registry_migrate,
    .start = s_start,
};

int main(int argc, char **argv)
{
    registry_t reg = {0};
    return sam_service_main(&s_def, &reg, argc, argv);
}
