/*  samordna-registry — who takes part in the welfare pilot: agencies, municipalities and
    their mergers, people and roles, the programme, invitations, pilots and reports.

    The definition below is the whole service as the runtime sees it; its query and event
    tables are built from registry.def, one line per message.
*/
#include "registry.h"

static const sam_query_def_t s_queries[] = {
#define Q(method, fn) {method, fn, SAM_ROLES_ANY},
#define E(type, fn)
#include "registry.def"
#undef Q
#undef E
};

static const sam_event_def_t s_events[] = {
#define Q(method, fn)
#define E(type, fn) {type, fn, NULL, SAM_ROLE_ADMIN | SAM_ROLE_PUBLISHER},
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
    .queries = s_queries,
    .n_queries = sizeof s_queries / sizeof s_queries[0],
    .events = s_events,
    .n_events = sizeof s_events / sizeof s_events[0],
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
