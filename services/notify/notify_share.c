/*  notify_share.c — which instance does which of notify's work, when several run on one store.

    Delivery work is split into NOTIFY_SHARDS shards by subscription: a subscription's shard
    is the FNV-1a hash of its id modulo NOTIFY_SHARDS, so each subscription's queue — taken
    in order, one delivery in flight — belongs to exactly one shard and so to one instance.
    Each shard is a lease "notify.deliver.NN" (common/sam_lease.h); so is the schedule
    ("notify.schedule": the briefing and the reminders) and each follower
    ("follow.<service>", common/sam_follow.c). The leases are shared out evenly among the
    live instances and move within --lease-ms (plus a renewal) when one dies.

    The rules that keep a delivery from being made by two instances:
      - a transfer (or a handshake) is started only under a shard this instance holds with
        half of the lease still ahead (sam_lease_mine), and only if it is not draining;
      - its outcome (delivered, retry, dead, gone, the handshake's result) is committed only
        in a write transaction that shows the shard still held (sam_lease_check): a holder
        that lost the shard records nothing, and the new holder sends the delivery again;
      - a transfer under a shard this instance no longer holds is abandoned at once;
      - a shard given up to a newcomer is drained first: no new transfer, and released only
        when its transfers have ended and been recorded.
    Across hosts, none of this is a standby's (notify_replica.c): it holds the leases of its
    own store, so each of the three functions below also asks sam_service_is_primary().
    What remains is the at-least-once edge every webhook has: a receiver that got the request
    of a holder that died (or lost its lease) before committing "delivered" gets the same
    delivery again from the next holder, with the same event id and X-Samordna-Delivery —
    one repeat per subscription at most, for the one delivery that was in flight.
*/
#include "notify.h"
#include "sam_lease.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

unsigned notify_shard_of(const char *sub_id)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)sub_id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % NOTIFY_SHARDS;
}

static void s_shard_name(unsigned shard, char out[32])
{
    snprintf(out, 32, "notify.deliver.%02u", shard);
}

/* A shard with a transfer in flight is drained, not given up (sam_lease_busy_fn). */
static bool s_shard_busy(void *arg, const char *name)
{
    notify_t *n = arg;
    if (strncmp(name, "notify.deliver.", 15) != 0) return false;
    unsigned shard = (unsigned)atoi(name + 15);
    for (notify_flight_t *f = zhashx_first(n->flights); f; f = zhashx_next(n->flights))
        if (notify_shard_of(zhashx_cursor(n->flights)) == shard) return true;
    return false;
}

int notify_share_start(notify_t *n)
{
    sam_lease_t *lease = sam_service_lease(n->svc);
    char name[32];
    for (unsigned i = 0; i < NOTIFY_SHARDS; i++) {
        s_shard_name(i, name);
        if (sam_lease_want(lease, name)) return -1;
    }
    if (sam_lease_want(lease, NOTIFY_SCHEDULE_LEASE)) return -1;
    sam_lease_set_busy(lease, s_shard_busy, n);
    return 0;
}

bool notify_sub_mine(notify_t *n, const char *sub_id)
{
    if (!sam_service_is_primary(n->svc)) return false; /* a standby's leases are its store's */
    char name[32];
    s_shard_name(notify_shard_of(sub_id), name);
    return sam_lease_mine(sam_service_lease(n->svc), name);
}

bool notify_sub_held(notify_t *n, const char *sub_id)
{
    if (!sam_service_is_primary(n->svc)) return false;
    char name[32];
    s_shard_name(notify_shard_of(sub_id), name);
    return sam_lease_holds(sam_service_lease(n->svc), name);
}

bool notify_sub_check(notify_t *n, MDB_txn *txn, const char *sub_id)
{
    if (!sam_service_is_primary(n->svc)) return false; /* no longer the primary: it resends */
    char name[32];
    s_shard_name(notify_shard_of(sub_id), name);
    return sam_lease_check(sam_service_lease(n->svc), txn, name);
}
