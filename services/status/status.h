/*  status.h — what the files of the status service share: its context, the declarations of
    its table's handlers (status.def, expanded by status_main.c into the runtime's rows and
    here into declarations), validation helpers and the registry projection.

    The service tracks each pilot's milestones (reached and taken back, with dates, actors and
    evidence), meetings, work-plan steps and barriers, and answers the status board, also as
    it stood on a given day. References to registry facts (pilots, agencies, municipalities)
    are checked against a projection of the registry kept in this service's own store.
*/
#ifndef STATUS_H
#define STATUS_H

#include "sam_client.h"
#include "sam_follow.h"
#include "sam_service.h"
#include "status_store.h"

#include <stdbool.h>

#define STATUS_ROLES_ADMIN (SAM_ROLE_ADMIN | SAM_ROLE_SERVICE)

/* The handlers of status.def's rows (the table: one line per method and event type). */
#define Q(method, request_type, reply_type, roles, handler)                                        \
    int handler(sam_service_t *, MDB_txn *, const sam_call_t *, sam_reply_t *);
#define E(type, payload_type, roles, limit, apply, prepare)                                        \
    int apply(sam_service_t *, MDB_txn *, const sam_event_t *, sam_reply_t *);
#define L Q
#include "status.def"
#undef Q
#undef L
#undef E

int status_prepare_refs(sam_service_t *svc, const sam_event_t *ev, sam_reply_t *reply);

/* Registry facts fetched in prepare, kept until apply writes them into the projection. */
#define STATUS_FACT_CACHE 64

typedef struct {
    Samordna__V1__StatusFact *cache[STATUS_FACT_CACHE]; /* owned; ring */
    size_t cache_next;                                  /* next slot to replace */
    sam_follow_t *follow; /* the registry's outbox follower (owned), also asked in prepare */
} status_ctx_t;

/* ---- validation (status_check.c) ----------------------------------------------------------- */

/* A calendar date "YYYY-MM-DD" (years 1900..2999). */
bool status_date_ok(const char *s);
/* An id: [a-z0-9-]{1,64}; a token (kinds of things) also allows '_'. */
bool status_id_ok(const char *s);
bool status_token_ok(const char *s);
/* Today's date (UTC) into out[11]. */
void status_today(char out[11]);

/* A barrier state's rank: identified 0, raised_regionally 1, raised_nationally 2, the final
   changed / rejected / withdrawn 3; -1 for anything else. */
int status_barrier_rank(const char *state);
/* True for identified, raised_regionally and raised_nationally. */
bool status_barrier_open(const char *state);

/* True when the caller may change anything (insecure, admin or service role). */
bool status_caller_admin(const Samordna__V1__Caller *caller);

/* ---- registry projection (status_registry.c) ------------------------------------------------ */

/*  The fact of `kind` ("pilot", "agency", "municipality") with `id`: from the projection, else
    from what prepare fetched (then written into the projection when `txn` is a write txn,
    `write` true). Returns the fact (caller frees with protobuf_c_message_free_unpacked) or
    NULL when unknown. */
Samordna__V1__StatusFact *status_fact_find(sam_service_t *svc, MDB_txn *txn, bool write,
                                           const char *kind, const char *id);

/*  Requires a known fact for a field of an event: sets 422 "<field>: unknown <kind> '<id>'"
    and returns NULL when missing. */
Samordna__V1__StatusFact *status_fact_require(sam_service_t *svc, MDB_txn *txn, const char *kind,
                                              const char *id, const char *field,
                                              sam_reply_t *reply);

/* Makes the registry's follower from --registry and --registry-wait-ms (the start hook):
   0, or -1 (logged when an option is unusable). */
int status_registry_start(sam_service_t *svc);
/* Follows the registry's outbox into the projection (called from the tick). */
void status_registry_tick(sam_service_t *svc);
/* Frees the fetched facts and the follower (the stop hook, and after the loop). */
void status_ctx_clear(status_ctx_t *ctx);

#endif
