/*  sam_lease.h — sharing work out among the instances of a service on one store.

    Instances of a service started on one --data-dir share its LMDB environment. Work that
    must be done by exactly one of them at a time — a follower of another outbox, a schedule,
    a shard of notify's deliveries — is claimed with a named lease kept in that environment,
    in the table "leases" every store has:
      "l/<name>"    → samordna.v1.Lease   who holds the lease, and until when
      "i/<holder>"  → samordna.v1.Lease   an instance's own heartbeat (holder = itself)
    A holder is "<instance>.<8 random hex>", new for every process, so a restarted instance
    never takes its predecessor's leases for its own.

    An instance says which leases it competes for (sam_lease_want: its pool; every instance
    of a service wants the same names) and renews them from its loop every
    SAM_LEASE_RENEW_MS (sam_lease_renew). One renewal is one small write transaction:
      1. its heartbeat row is written, expiring ttl_ms from now;
      2. the live instances are counted (heartbeats not yet expired), and its fair share is
         the pool divided among them, rounded up;
      3. the leases it holds are extended to now + ttl_ms; while it holds fewer than its
         share it takes free or expired ones (in an order of its own, so that instances do
         not all reach for the same names); while it holds more it gives up the surplus
         (when a new instance joins), but a lease whose work is still in flight is only
         marked draining — no new work is started under it — and given up at a later
         renewal, once the busy callback says it is idle.
    An instance that dies (kill -9, a lost host) releases nothing: its leases and heartbeat
    expire ttl_ms after its last renewal, and the next renewal of a live instance takes them
    over — within ttl_ms + SAM_LEASE_RENEW_MS of the death. A clean shutdown gives
    everything up at once (sam_lease_release_all).

    Two ways to ask whether a lease is held:
      sam_lease_mine    from memory, as of the last renewal, and only while at least half of
                        the ttl is left: whether to START work under it;
      sam_lease_check   read in a transaction: put it in the write transaction that records
                        the work's outcome, so that an outcome is committed only by the
                        holder. LMDB serialises writers, so no other instance can take the
                        lease between that check and the commit.

    Time is the host's real wall clock (CLOCK_REALTIME), never the programme's clock that
    --now shifts: every instance on the host must read the same time. A clock stepped back by
    more than ttl_ms delays a takeover by that much; one stepped forward can end leases early
    (then two instances may both start the work of one lease once; each outcome is still
    committed once, by whoever holds the lease at commit).

    Lifetime: the store is borrowed for the lease's life; names are copied.
*/
#ifndef SAM_LEASE_H
#define SAM_LEASE_H

#include "sam_store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SAM_LEASE_TTL_MS 1000  /* default --lease-ms: takeover time after a holder's death */
#define SAM_LEASE_RENEW_MS 200 /* how often an instance renews (at most ttl_ms / 4) */
#define SAM_LEASE_NAME_MAX 63
#define SAM_LEASE_MAX 128 /* leases one instance competes for */

typedef struct sam_lease_t sam_lease_t;

/*  Whether this instance still has work in flight under lease `name` (it may then only be
    drained, not given up). */
typedef bool (*sam_lease_busy_fn)(void *arg, const char *name);

/*  An instance's leases on `store` (table "leases"), as `instance` (its name in logs), each
    outliving its last renewal by ttl_ms (200..600000). NULL when out of memory or the
    arguments are unusable. Takes nothing yet. */
sam_lease_t *sam_lease_new(sam_store_t *store, const char *instance, int ttl_ms);

/*  Destroys it without giving anything up (the leases expire); accepts NULL; nulls *self_p. */
void sam_lease_destroy(sam_lease_t **self_p);

/*  Adds `name` ([A-Za-z0-9._-], 1..SAM_LEASE_NAME_MAX) to the pool this instance competes
    for. Returns 0, or -1 when the name is unusable or the pool full. Wanting a name twice
    is harmless. */
int sam_lease_want(sam_lease_t *self, const char *name);

/*  The busy callback consulted before a surplus lease is given up (NULL: never busy). */
void sam_lease_set_busy(sam_lease_t *self, sam_lease_busy_fn fn, void *arg);

/*  One renewal (see above), when SAM_LEASE_RENEW_MS have passed since the last or `force`.
    Returns 0 (also when nothing was due or the pool is empty), or a store error (logged;
    the leases in memory are then taken as lost). */
int sam_lease_renew(sam_lease_t *self, bool force);

/*  Milliseconds until the next renewal is due (0: now), or -1 when the pool is empty and
    nothing is ever renewed: for a loop's timer. */
int64_t sam_lease_due_ms(const sam_lease_t *self);

/*  Whether this instance holds `name` with at least half of ttl_ms left, as of its last
    renewal, and is not draining it. */
bool sam_lease_mine(const sam_lease_t *self, const char *name);

/*  Whether this instance holds `name` at all (draining or not) and the hold has not run out,
    as of its last renewal: work under a lease it no longer holds is to be abandoned. */
bool sam_lease_holds(const sam_lease_t *self, const char *name);

/*  Whether `txn` (of this lease's store, read or write) shows `name` held by this instance
    and not expired. */
bool sam_lease_check(const sam_lease_t *self, MDB_txn *txn, const char *name);

/*  Gives up every lease held and the heartbeat, in one transaction (clean shutdown), so
    that another instance takes them over at its next renewal. */
void sam_lease_release_all(sam_lease_t *self);

/* This process's holder id ("<instance>.<random>"). */
const char *sam_lease_holder(const sam_lease_t *self);

/* Live instances at the last renewal (this one included), and leases this one holds. */
size_t sam_lease_live(const sam_lease_t *self);
size_t sam_lease_held(const sam_lease_t *self);

/* The real wall clock in ms, the one leases are reckoned in. */
int64_t sam_lease_clock_ms(void);

/* The selftest (sam_testkit.h checks), writing only under `scratch`; failed checks. */
int sam_lease_selftest(const char *scratch);

#endif
