/*  samordna-echo — a service that answers `echo` with the body it was sent, and
    records `no.samordna.echo.recorded` events.

    It runs on the same runtime as every real service (sam_service) and is made like them,
    one .def plus handlers, so measuring it through the broker measures the broker plus the
    runtime's dispatch, without any domain work. The benchmarks and the broker's tests use
    it; operators can use it to check a deployment.
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

/* The table: echo.def's rows (s_rows, SAM_SERVICE_ROWS). */
#define SAM_SERVICE_DEF_FILE "echo.def"
#include "sam_service_rows.h"

static const char *const s_tables[] = {NULL}; /* no tables but the runtime's own */

static const sam_service_def_t s_def = {
    .name = "echo",
    .summary = "Answers `echo` with the body it was sent (benchmarks, deployment checks).",
    SAM_SERVICE_ROWS,
    SAM_SERVICE_STORE(s_tables, 1, NULL),
};

int main(int argc, char **argv)
{
    return sam_service_main(&s_def, NULL, argc, argv);
}
