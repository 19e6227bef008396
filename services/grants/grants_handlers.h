/*  grants_handlers.h — the declarations of the grants service's handlers (its table is
    grants.def, one line per method and event type, which grants_main.c expands into the
    service's rows) and of its registry follower.

    Queries (request → reply, samordna.v1 messages from grants.proto):
      grants.schemes.get       GrantsGetRequest       → Scheme
      grants.schemes.list      ListSchemesRequest     → SchemeList
      grants.awards.get        GrantsGetRequest       → AwardDetail
      grants.awards.list       ListAwardsRequest      → AwardList
      grants.instruments.list  ListInstrumentsRequest → InstrumentList
      grants.overview          OverviewRequest        → Overview
      grants.deadlines         DeadlinesRequest       → DeadlineList
      grants.ledger.verify     (empty)                → LedgerReport
      grants.ledger.accounts   AccountsRequest        → AccountList

    Event types and their payloads are listed in grants.def (payloads described in
    grants.proto's header comment).
*/
#ifndef GRANTS_HANDLERS_H
#define GRANTS_HANDLERS_H

#include "grants_store.h"

/* The handlers of grants.def's rows. */
#define Q(method, request_type, reply_type, roles, handler)                                        \
    int handler(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply);
#define E(type, payload_type, roles, limit, apply, prepare)                                        \
    int apply(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev, sam_reply_t *reply);
#define L Q
#include "grants.def"
#undef Q
#undef L
#undef E

/* The prepare hook of every grants event: makes sure the registry facts the event names
   (recipient, funders, owner, pilot) are in the projection, asking the registry once for
   any that are missing. Never refuses on its own; the apply function decides. */
int grants_prepare_refs(sam_service_t *svc, const sam_event_t *ev, sam_reply_t *reply);

/* Makes the registry's follower (common/sam_follow.h) from --registry and
   --registry-wait-ms, as status does (the start hook). 0, or -1 (logged when an option is
   unusable). */
int grants_refs_start(grants_t *g);

/* The registry follower, called from the service tick: keeps one events.read long poll on
   the registry's outbox in flight and applies what it returns to the "refs" projection,
   committing the cursor in the same transaction. Never blocks the service loop. */
void grants_refs_tick(grants_t *g);

/* Destroys the follower and its client. */
void grants_refs_stop(grants_t *g);

#endif
