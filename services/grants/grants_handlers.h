/*  grants_handlers.h — the grants service's queries, event types and registry follower, each
    in one list so that the definition table in grants_main.c is built from them.

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

    Event types (payload in grants.proto's header comment) are listed in GRANTS_EVENTS.
*/
#ifndef GRANTS_HANDLERS_H
#define GRANTS_HANDLERS_H

#include "grants_store.h"

#define GRANTS_QUERIES(X)                                                                          \
    X("grants.schemes.get", grants_q_scheme_get, SAM_ROLES_ANY)                                    \
    X("grants.schemes.list", grants_q_schemes_list, SAM_ROLES_ANY)                                 \
    X("grants.awards.get", grants_q_award_get, SAM_ROLES_ANY)                                      \
    X("grants.awards.list", grants_q_awards_list, SAM_ROLES_ANY)                                   \
    X("grants.instruments.list", grants_q_instruments_list, SAM_ROLES_ANY)                         \
    X("grants.overview", grants_q_overview, SAM_ROLES_ANY)                                         \
    X("grants.deadlines", grants_q_deadlines, SAM_ROLES_ANY)                                       \
    X("grants.ledger.verify", grants_q_ledger_verify, SAM_ROLES_ANY)                               \
    X("grants.ledger.accounts", grants_q_ledger_accounts, SAM_ROLES_ANY)

#define GRANTS_EVENTS(X)                                                                           \
    X("no.samordna.grants.scheme.created", grants_apply_scheme_created, SAM_ROLES_WRITE)           \
    X("no.samordna.grants.award.granted", grants_apply_award_granted, SAM_ROLES_WRITE)             \
    X("no.samordna.grants.disbursement.made", grants_apply_disbursement, SAM_ROLES_WRITE)          \
    X("no.samordna.grants.repayment.received", grants_apply_repayment, SAM_ROLES_WRITE)            \
    X("no.samordna.grants.award.cancelled", grants_apply_cancellation, SAM_ROLES_WRITE)            \
    X("no.samordna.grants.instrument.registered", grants_apply_instrument, SAM_ROLES_WRITE)        \
    X("no.samordna.grants.need.recorded", grants_apply_need, SAM_ROLES_WRITE)

#define X(method, fn, roles)                                                                       \
    int fn(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply);
GRANTS_QUERIES(X)
#undef X

#define X(type, fn, roles)                                                                         \
    int fn(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev, sam_reply_t *reply);
GRANTS_EVENTS(X)
#undef X

/* The prepare hook of every grants event: makes sure the registry facts the event names
   (recipient, funders, owner, pilot) are in the projection, asking the registry once for
   any that are missing. Never refuses on its own; the apply function decides. */
int grants_prepare_refs(sam_service_t *svc, const sam_event_t *ev, sam_reply_t *reply);

/* The registry follower, called from the service tick: keeps one events.read long poll on
   the registry's outbox in flight and applies what it returns to the "refs" projection,
   committing the cursor in the same transaction. Never blocks the service loop. */
void grants_refs_tick(grants_t *g);

/* Releases the follower's client. */
void grants_refs_stop(grants_t *g);

#endif
