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

/* The table. Neither row names a message type: echo's body and the event's payload are bytes
   of anything, passed to the handlers as they came (sam_call_t.body, sam_event_t.data). */
static const sam_row_t s_rows[] = {
    SAM_ROW_QUERY("echo", NULL, NULL, SAM_ROLES_ANY, s_echo)
        SAM_ROW_EVENT("no.samordna.echo.recorded", NULL, SAM_ROLES_WRITE, 0, s_recorded, NULL)};

int main(int argc, char **argv)
{
    static const char *const tables[] = {NULL};
    sam_service_def_t def = {
        .name = "echo",
        .summary = "Answers `echo` with the body it was sent (benchmarks, deployment checks).",
        .rows = s_rows,
        .n_rows = sizeof s_rows / sizeof s_rows[0],
        .tables = tables,
        .schema_version = 1,
    };
    return sam_service_main(&def, NULL, argc, argv);
}
