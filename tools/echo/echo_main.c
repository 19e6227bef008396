/*  samordna-echo — a service that answers `echo` with the body it was sent, and
    records `no.samordna.echo.recorded` events.

    It runs on the same runtime as every real service (sam_service), so measuring it through
    the broker measures the broker plus the runtime's dispatch, without any domain work. The
    benchmarks and the broker's tests use it; operators can use it to check a deployment.
*/
#include "sam_service.h"

#include <stdlib.h>
#include <string.h>

/* echo: any body → the same bytes. */
static int s_echo(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply)
{
    reply->body = malloc(call->body_len ? call->body_len : 1);
    if (!reply->body) return sam_reply_error(reply, SAM_INTERNAL, "out of memory");
    memcpy(reply->body, call->body, call->body_len);
    reply->body_len = call->body_len;
    return 0;
}

/*  no.samordna.echo.recorded: data is 1 to 4096 bytes of anything; the outbox record is the
    whole effect. It exercises the shared write path (dedup, outbox, group commit, events.read)
    with no domain tables, for the runtime's tests and the write benchmark's baseline. */
static int s_recorded(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev, sam_reply_t *reply)
{
    if (!ev->data || ev->data_len == 0 || ev->data_len > 4096)
        return sam_reply_error(reply, SAM_BAD_REQUEST,
                               "event.data: 1 to 4096 bytes expected, got %zu", ev->data_len);
    return 0;
}

static const sam_query_def_t s_queries[] = {
    {"echo", s_echo, SAM_ROLES_ANY},
};

static const sam_event_def_t s_events[] = {
    {"no.samordna.echo.recorded", s_recorded, NULL, SAM_ROLES_WRITE},
};

int main(int argc, char **argv)
{
    static const char *const tables[] = {NULL};
    sam_service_def_t def = {
        .name = "echo",
        .summary = "Answers `echo` with the body it was sent (benchmarks, deployment checks).",
        .queries = s_queries,
        .n_queries = 1,
        .events = s_events,
        .n_events = 1,
        .tables = tables,
        .schema_version = 1,
    };
    return sam_service_main(&def, NULL, argc, argv);
}
