/*  sam_elect.h — one primary per service across hosts: leadership and fencing through etcd.

    The instances of a service that run on different hosts (--replica elect) hold one
    election among themselves in etcd (the v3 JSON gateway, /v3/..., of etcd 3.4). The keys,
    under --etcd-prefix (default /samordna):
      <prefix>/<service>/leader            the leader's instance name, put under the
                                           leader's lease; its create_revision is the epoch
      <prefix>/<service>/members/<inst>    {"position":N,"role":"leader|follower"} under
                                           the instance's own lease: who is alive, how far
      <prefix>/<service>/handover          the instance asked to take over (samctl promote),
                                           under a lease of its own, never kept alive: it
                                           goes by itself after handover_ms and a ttl
    Each instance holds one lease (TTL = ttl_ms rounded up to whole seconds) and keeps it
    alive every ttl_ms / 4 ("a round"). In a round it puts its member key, reads the leader
    key, and when there is none it campaigns — a txn "create_revision(leader) == 0 → put
    leader = me under my lease" — but only when no handover names another live member and
    its position is at least every live member's position, so that the standby that has
    applied the most wins (an acknowledged write in synchronous mode is on it). Ties are
    settled by the txn. An instance campaigns only once its member key has stood for two
    rounds, so that the other live members have published theirs. Epochs are etcd revisions:
    every new leadership has a higher one than any before.

    Fencing: the leader may write only while its lease is surely still held, measured from
    the moment the last successful keepalive (or grant) REQUEST WAS SENT: until
    sent + ttl - ttl/4 on the monotonic clock. etcd keeps the lease at least ttl past the
    moment it answered, which is later, so the leader stops writing before anyone else can
    be elected — also when etcd, or the way to it, is gone: may_write runs out by itself.
    A keepalive that etcd answers with TTL 0 (the lease is gone) ends leadership at once.

    Handover (sam_elect_handover): the handover key names the target. The leader stops
    writing at once, waits until the target's published position reaches its own (at most
    handover_ms, then it deletes the key, logs and writes again), then resigns (deletes the
    leader key, guarded by its create_revision). The target campaigns; no one else does
    while the key names a live member; the new leader deletes the key.

    etcd: the endpoints are tried in turn; one that does not answer, answers 5xx or answers
    something that is not etcd's JSON is passed over. When none serves, the state says
    reachable false and a follower keeps the leader it knew; the leader's may_write runs out
    as above, and its role turns candidate once its lease's TTL has passed. A lease that
    outlives an etcd restart (etcd extends restored leases) keeps its leader in office with
    its epoch. An instance restarted under the same name follows its former self's leader
    key until that lease expires (a ttl), then campaigns.

    Threads: all HTTP is done by the elector's own thread, never the caller's; the calls
    below (but sam_elect_ask_handover, for samctl) only read or set a snapshot under a mutex
    and never block on the network. Log
    lines (sam_log.h): elect.leader, elect.follower, elect.lost, elect.unreachable (once,
    then elect.reachable), elect.handover.

    Lifetime: the options' strings are copied; a state snapshot is the caller's copy.
*/
#ifndef SAM_ELECT_H
#define SAM_ELECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SAM_ELECT_TTL_MS 2000       /* default --etcd-ttl-ms */
#define SAM_ELECT_HANDOVER_MS 10000 /* how long a leader waits for a handover's target */
#define SAM_ELECT_NAME_MAX 95       /* a service or instance name, in bytes */
#define SAM_ELECT_PREFIX_MAX 255

typedef struct sam_elect_t sam_elect_t;

typedef enum {
    SAM_ELECT_CANDIDATE, /* no leader known (or our lease ran out): may campaign */
    SAM_ELECT_LEADER,    /* holds the leader key under its live lease */
    SAM_ELECT_FOLLOWER   /* another instance holds the leader key */
} sam_elect_role_t;

typedef struct {
    sam_elect_role_t role;
    uint64_t epoch;                        /* leader: its own (the leader key's create_revision);
                                              follower: the current leader's; 0: no leader known */
    char leader[SAM_ELECT_NAME_MAX + 1];   /* the leader's instance name ("" when none known) */
    bool reachable;                        /* etcd answered the last round */
    char handover[SAM_ELECT_NAME_MAX + 1]; /* a handover in progress to this instance ("") */
} sam_elect_state_t;

typedef struct {
    const char *endpoints; /* "http://10.0.0.1:2379,http://10.0.0.2:2379": tried in turn */
    const char *prefix;    /* "/samordna" (NULL: that) */
    const char *service;   /* "registry" */
    const char *instance;  /* this instance's name, unique among the service's instances */
    int ttl_ms;            /* the lease's TTL, 1000..600000 (0: SAM_ELECT_TTL_MS); etcd counts
                              whole seconds: rounded up */
    int handover_ms; /* the leader's wait for a handover's target (0: SAM_ELECT_HANDOVER_MS) */
    /* Campaign only while at least this many members are live, this one included (0 or 1:
       alone too). With N instances in synchronous mode, N - 1 (a majority of 3: 2) makes
       sure that after a restart of them all a member holding every acknowledged write is
       among those compared, whichever starts first. */
    int min_members;
} sam_elect_opts_t;

/*  An elector for opts->service as opts->instance; starts its thread, which grants a lease
    and joins the election at once. Names: [A-Za-z0-9._-], 1..SAM_ELECT_NAME_MAX bytes; the
    prefix starts with '/' and holds no control character; every endpoint is http:// or
    https://. Returns NULL (after an error line, elect.refused reason=…) when an option is
    unusable, or when out of memory or the thread cannot start. Needs no etcd yet: an
    unreachable etcd is a state (reachable false), not an error. */
sam_elect_t *sam_elect_new(const sam_elect_opts_t *opts);

/*  Stops the thread and revokes the lease, so a leader resigns at once and the member key
    goes; accepts NULL; nulls *self_p. Waits for the round in flight: milliseconds, or, when
    etcd hangs, a request timeout (ttl_ms / 4, at least 200 ms) per endpoint, and the same
    again for the revoke. */
void sam_elect_destroy(sam_elect_t **self_p);

/*  A snapshot of the election as of the last round, into *out. */
void sam_elect_state(sam_elect_t *self, sam_elect_state_t *out);

/*  Whether this instance may commit a write at now_ms (the monotonic clock, zclock_mono()):
    it is the leader, no handover is in progress, and now_ms is before the time the last
    successful keepalive was sent + ttl - ttl/4. Never true past the lease's expiry in
    etcd, whatever became of etcd or of the thread. */
bool sam_elect_may_write(sam_elect_t *self, int64_t now_ms);

/*  This instance's position — the primary's outbox head, a standby's applied sequence —
    published in its member key from the next round on. */
void sam_elect_set_position(sam_elect_t *self, uint64_t seq);

/*  Asks that `instance` become the leader (samctl promote): the thread writes the handover
    key in its next round, which starts at once. Returns 0, or -1 when the name is unusable.
    Whether and when the handover happens shows in the state (handover, then leader). */
int sam_elect_handover(sam_elect_t *self, const char *instance);

/*  The same, from a process that is no member of the election (samctl promote): writes the
    handover key at once, with a thread-less connection to opts' etcd (opts->instance and
    ttl_ms may be NULL and 0; handover_ms as the members'). Blocks for at most a request
    timeout per endpoint. Returns 0, or -1 with the reason in err (errcap bytes, NUL-ended)
    when the instance name or an option is unusable, or etcd did not answer or refused. */
int sam_elect_ask_handover(const sam_elect_opts_t *opts, const char *instance, char *err,
                           size_t errcap);

/*  The selftest against a real etcd it starts on free loopback ports, with its data under
    `scratch`. Returns 0 when every check held, -1 when some failed, 1 (after saying why)
    when no etcd program is installed. */
int sam_elect_selftest(const char *scratch);

#endif
