/*  samordna-status — the status service: what each pilot has reached, when the actors met,
    the work plan's steps and the barriers found on the way, and the status board that sums
    them up, also as it stood on any past day.

    Every change arrives as a no.samordna.status.* CloudEvent through the runtime's shared
    write path (status_events.c); queries read the store (status_queries.c); references to
    the registry's pilots, agencies and municipalities are checked against a projection fed
    from the registry's outbox (status_registry.c). The tables are described in
    status_store.h; the one list of methods and event types is status.def.
*/
#include "status.h"

/* The table: status.def's rows (s_rows, SAM_SERVICE_ROWS). */
#define SAM_SERVICE_DEF_FILE "status.def"
#include "sam_service_rows.h"

static void s_tick(sam_service_t *svc)
{
    status_registry_tick(svc);
}

static void s_stop(sam_service_t *svc)
{
    status_ctx_clear(sam_service_ctx(svc));
}

/* The registry follower's options, the same as grants' (common/sam_follow.h). */
static const sam_option_t s_options[] = {
    SAM_FOLLOW_OPTIONS("registry"){NULL, NULL, NULL, NULL, false},
};

static const sam_service_def_t s_def = {
    .name = "status",
    .summary = "Milestones, meetings, work plans, barriers and the pilot status board.",
    .options = s_options,
    SAM_SERVICE_ROWS,
    SAM_SERVICE_STORE(status_tables, STATUS_SCHEMA_VERSION, NULL),
    .start = status_registry_start,
    .tick = s_tick,
    .tick_ms = 50,
    .stop = s_stop,
};

int main(int argc, char **argv)
{
    status_ctx_t ctx = {0};
    int rc = sam_service_main(&s_def, &ctx, argc, argv);
    status_ctx_clear(&ctx);
    return rc;
}
