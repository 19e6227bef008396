/*  registry.h — the registry service: its context and its handlers.

    The registry owns who takes part in the welfare pilot: agencies, municipalities and their
    mergers, people and their roles, the programme, invitations and answers, pilots, and the
    agencies' reports. It changes only through no.samordna.registry.* CloudEvents, applied by
    the runtime's shared write path (sam_service.h); everything else is a query.

    The apply functions (registry_events.c) validate a payload completely before they write
    anything, and refuse with a status naming the field: 400 malformed, 403 not the
    publisher's to change, 404 the record to change does not exist, 409 already there,
    422 a reference to something that does not exist. An oversized payload (413) or one that
    does not decode (400) never reaches them: the runtime refuses it by the event's row in
    registry.def.
*/
#ifndef REGISTRY_H
#define REGISTRY_H

#include "registry_store.h"
#include "sam_service.h"

#include "samordna/v1/registry.pb-c.h"

/* The service's context: reachable from every handler through sam_service_ctx(). */
typedef struct {
    registry_store_t store; /* table handles, bound at start */
} registry_t;

/* The handlers of registry.def's rows. */
#define E(type, payload_type, roles, limit, apply, prepare)                                        \
    int apply(sam_service_t *svc, MDB_txn *txn, const sam_event_t *ev, sam_reply_t *reply);
#define Q(method, request_type, reply_type, roles, handler)                                        \
    int handler(sam_service_t *svc, MDB_txn *txn, const sam_call_t *call, sam_reply_t *reply);
#include "registry.def"
#undef E
#undef Q

/* A municipality looked up by id, following successors of merged municipalities (at most 8
   steps). Returns 0 with *out the current municipality (free it) and *merged_from set to the
   first merged record on the way (free it; NULL when the id was current), MDB_NOTFOUND, or an
   error code. */
int registry_resolve_municipality(registry_t *reg, MDB_txn *txn, const char *id,
                                  Samordna__V1__Municipality **out,
                                  Samordna__V1__Municipality **merged_from);

#endif
