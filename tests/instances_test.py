"""Several instances of one service on one store (docs/scaling.md, "More instances"): the
real broker, the real services, webhook receivers on loopback (tests/notify_receivers.py).

What is shared out by leases in the store (common/sam_lease.h) and checked here:
  - notify's deliveries, in shards by subscription: with two and three instances every event
    reaches every webhook exactly once — and, when one instance is killed -9 midway, at least
    once, the only repeat allowed being the documented in-flight edge (docs/notify.md): the
    one delivery per subscription that the killed instance had sent but not yet recorded,
    repeated at once by the instance that took its shard over;
  - a follower (status following the registry) run by one instance at a time: each registry
    event applied once, and taken over when its holder is killed;
  - the schedule: the briefing issued once by two instances.
"""
import datetime
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import samtest  # noqa: E402
from samtest import Client, publish  # noqa: E402
from samordna.v1 import events_pb2, grants_pb2, notify_pb2, registry_pb2  # noqa: E402
from notify_receivers import WebhookReceiver  # noqa: E402

ECHO = "no.samordna.echo.recorded"
SLOW = samtest.SLOW
WEBHOOK = notify_pb2.NOTIFY_CHANNEL_WEBHOOK
INBOX = notify_pb2.NOTIFY_CHANNEL_INBOX
FAST = ["--retry-schedule", "100ms,200ms,300ms", "--follow-wait-ms", "1000"]
_n = [0]


def subscribe(c, sid, **fields):
    _n[0] += 1
    sub = notify_pb2.Subscription(id=sid, **fields)
    ev = samtest.event("no.samordna.notify.subscription.created",
                       notify_pb2.SubscriptionCreated(subscription=sub), eid=f"sub-{sid}-{_n[0]}")
    rep = publish(c, "notify", ev)[0]
    assert rep.status.code == 200, rep.status


def secret_of(c, sid):
    rep, msg = c.call("notify", "notify.subscriptions.secret",
                      notify_pb2.SubscriptionSecretRequest(id=sid),
                      notify_pb2.SubscriptionSecretReply)
    assert rep.status.code == 200, rep.status
    return msg.secret


def active(c, sid):
    rep, msg = c.call("notify", "notify.subscriptions.get",
                      notify_pb2.SubscriptionGetRequest(id=sid), notify_pb2.SubscriptionInfo)
    return rep.status.code == 200 and msg.state.state == notify_pb2.NOTIFY_SUB_STATE_ACTIVE


def publish_all(c, service, events, window=200, on_ack=None):
    """Pipelined publishes, every one acknowledged; a 503/504 is sent again (idempotent by
    (source, id)). on_ack(k) is called with the number acknowledged so far."""
    pending, it, done, acked = {}, iter(events), False, 0
    while pending or not done:
        while not done and len(pending) < window:
            ev = next(it, None)
            if ev is None:
                done = True
                break
            pending[c.send(service, "events.publish", events_pb2.PublishRequest(event=ev))] = ev
        if pending:
            rep = c.recv(30 * SLOW)
            ev = pending.pop(rep.id, None)
            if ev is None:
                continue
            if rep.status.code in (503, 504):
                time.sleep(0.1)
                pending[c.send(service, "events.publish",
                               events_pb2.PublishRequest(event=ev))] = ev
                continue
            assert rep.status.code == 200, rep.status
            acked += 1
            if on_ack:
                on_ack(acked)


def shard_of(sub_id):
    """The delivery shard of a subscription, as notify_share.c reckons it (FNV-1a mod 32)."""
    h = 2166136261
    for b in sub_id.encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h % 32


def hook_ids(count):
    """`count` subscription ids in as many different shards, so that every instance — and the
    one a test kills — delivers to some of them."""
    ids, shards, k = [], set(), 0
    while len(ids) < count:
        sid = f"hook-{k}"
        if shard_of(sid) not in shards:
            shards.add(shard_of(sid))
            ids.append(sid)
        k += 1
    return ids


class NotifyStack(samtest.Closing):
    """A broker, echo (the followed service) and `count` notify instances on one store, with
    `hooks` webhook subscriptions, each to a receiver of its own, all validated."""

    def __init__(self, name, count, hooks):
        self.data = samtest.scratch(name)
        self.broker, self.ep = samtest.broker()
        samtest.service("echo", self.ep, self.data)
        self.notify = [samtest.service("notify", self.ep, self.data, "--follow", "echo",
                                       "--instance", f"notify-{i}", *FAST)
                       for i in range(count)]
        self.c = Client(self.ep)
        self.recv = {}
        for sid in hook_ids(hooks):
            r = WebhookReceiver()
            subscribe(self.c, sid, channel=WEBHOOK, url=r.url, type=ECHO)
            r.secret = secret_of(self.c, sid)
            self.recv[sid] = r
        for sid in self.recv:
            samtest.wait_for(lambda: active(self.c, sid), 20, f"the handshake of {sid}")
        # the work shared out: every instance holds delivery shards before events flow
        samtest.wait_for(lambda: all(shards_taken(p) > 0 for p in self.notify), 20,
                         "every instance holding delivery shards")

    def wait_all(self, want, timeout=180):
        def complete():
            return all(set(r.ids()) >= set(want) for r in self.recv.values())
        samtest.wait_for(complete, timeout, f"{len(want)} events at every webhook")
        time.sleep(1.0)  # anything sent twice would arrive by now

    def close(self):
        self.c.close()
        for r in self.recv.values():
            r.close()


def shards_taken(proc):
    return len(re.findall(r'lease\.taken name="?notify\.deliver\.', proc.logtext()))


def test_two_notify_instances_deliver_every_event_once():
    s = NotifyStack("instances-two", 2, 6)
    total = 1000
    want = [f"t{k:04d}" for k in range(total)]
    publish_all(s.c, "echo", (samtest.event(ECHO, b"x", eid=e) for e in want))
    s.wait_all(want)
    for sid, r in s.recv.items():
        ids = r.ids()
        assert ids == want, (sid, len(ids), len(ids) - len(set(ids)))  # once each, in order
    # the work was shared: both instances took delivery shards
    taken = [shards_taken(p) for p in s.notify]
    assert all(t > 0 for t in taken), taken
    print(f"  2 instances: {6 * total} deliveries, 0 repeats; shards taken per instance {taken}")
    s.close()


def test_three_notify_instances_one_killed_midway_lose_nothing():
    """The only repeat allowed: a subscription's delivery that was in flight from the killed
    instance (the receiver got it, its "delivered" was never committed) arrives again, right
    after itself, from the instance that took the shard over — so in each receiver's arrivals,
    with a delivery immediately repeated counted once, the outbox order is exact; at most one
    such repeat per subscription; and a repeat only for a subscription whose shard changed
    hands from an instance that held it. Anything else counts as a failure."""
    s = NotifyStack("instances-three", 3, 12)
    total = 1500
    want = [f"k{k:04d}" for k in range(total)]
    victim = s.notify[1]
    killed = []

    def on_ack(k):
        if k == total // 3 and not killed:
            killed.append(time.time())
            victim.kill9()

    publish_all(s.c, "echo", (samtest.event(ECHO, b"x", eid=e) for e in want), on_ack=on_ack)
    assert killed
    s.wait_all(want, timeout=240)
    repeats = {}
    for sid, r in s.recv.items():
        ids = r.ids()
        collapsed = [e for i, e in enumerate(ids) if i == 0 or ids[i - 1] != e]
        assert collapsed == want, (sid, len(ids), len(collapsed))
        repeats[sid] = len(ids) - len(collapsed)
        assert repeats[sid] <= 1, (sid, repeats[sid])
    # the survivors took over every shard the killed one held
    held_by_victim = re.findall(r'lease\.taken name="?(notify\.deliver\.\d+)"? holder="?notify-1\.',
                                victim.logtext())
    moved = []
    for p in (s.notify[0], s.notify[2]):
        moved += re.findall(r'lease\.taken name="?(notify\.deliver\.\d+)"? holder="?[^ ]+ '
                            r'from="?notify-1\.', p.logtext())
    assert held_by_victim, "the killed instance held no shard: nothing was tested"
    victims_subs = [sid for sid in s.recv if f"notify.deliver.{shard_of(sid):02d}" in moved]
    assert victims_subs, "no subscription of the killed instance's shards: nothing was tested"
    # and a repeat only where a shard changed hands with a delivery in flight: the shard was
    # taken over from an instance that held it (the killed one, or one that fell behind its
    # lease on this busy machine), never where it stayed put
    taken_over = set()
    for p in (s.notify[0], s.notify[2]):
        taken_over |= set(re.findall(r'lease\.taken name="?(notify\.deliver\.\d+)"? '
                                     r'holder="?[^ ]+ from="?(?!-)[^ "]+', p.logtext()))
    for sid, n in repeats.items():
        assert not n or f"notify.deliver.{shard_of(sid):02d}" in taken_over, (sid, n)
    # when the survivors took the shards over, by their logs' clock (the real one)
    took = [_log_time(line) for p in (s.notify[0], s.notify[2])
            for line in p.logtext().splitlines()
            if "lease.taken" in line and 'from="notify-1.' in line]
    after = max(took) - killed[0] if took and samtest._BASE is None else None
    print(f"  3 instances, one killed -9 after {total // 3} of {total} events: "
          f"{sum(repeats.values())} in-flight repeats {repeats}, "
          f"{len(set(moved))} shards taken over ({len(victims_subs)} subscriptions)"
          + (f", the last {after:.2f} s after the kill" if after is not None else ""))
    s.close()


def _log_time(line):
    """Epoch seconds of a log line's timestamp (2026-12-01T15:12:34.318Z …)."""
    return datetime.datetime.strptime(line.split(" ", 1)[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def _agency(k):
    return registry_pb2.Agency(id=f"etat-{k:04d}", name=f"Etat {k}", kind=2)


def _projected(proc):
    """(events, cursors) of every registry page a status instance applied, from its log."""
    pages = re.findall(r"registry\.projected events=(\d+) cursor=(\d+)", proc.logtext())
    return sum(int(e) for e, _ in pages), [int(c) for _, c in pages]


def test_two_status_instances_apply_each_registry_event_once():
    data = samtest.scratch("instances-status")
    _, ep = samtest.broker()
    samtest.service("registry", ep, os.path.join(data, "reg"))
    status = [samtest.service("status", ep, os.path.join(data, "status"), "--instance",
                              f"status-{i}", "--registry-wait-ms", "1000") for i in range(2)]
    c = Client(ep)
    n1 = 400

    def agencies(lo, hi):
        for k in range(lo, hi):
            a = _agency(k)
            yield samtest.event("no.samordna.registry.agency.registered", a, source=a.id,
                                eid=f"ag-{k}")

    def cursor():
        rep, _ = c.call("status", "ping")
        return rep.status.code == 200

    publish_all(c, "registry", agencies(0, n1))

    def applied():
        return sum(_projected(p)[0] for p in status)
    samtest.wait_for(lambda: applied() >= n1, 30, f"{n1} registry events projected")
    time.sleep(1.5)  # a second instance applying them too would show by now
    counts = [_projected(p)[0] for p in status]
    assert sum(counts) == n1, counts
    leader = 0 if counts[0] else 1
    assert counts[1 - leader] == 0, counts  # one instance follows, the other stands by
    # the follower's instance is killed -9: the other takes the lease over and goes on
    status[leader].kill9()
    n2 = 200
    publish_all(c, "registry", agencies(n1, n1 + n2))
    other = status[1 - leader]
    samtest.wait_for(lambda: _projected(other)[0] >= n2, 30 + 10 * SLOW,
                     "the standing-by instance taking the registry over")
    time.sleep(1.5)
    got, cursors = _projected(other)
    assert got == n2 and cursors[-1] == n1 + n2, (got, cursors[-1:])
    assert re.search(r'lease\.taken name="?follow\.registry"? holder="?status-\d\.[0-9a-f]+"? '
                     r'from="?status-%d\.' % leader, other.logtext())
    print(f"  status: {n1} events applied by one of two instances, {n2} more by the other after "
          f"a kill -9, none twice")
    c.close()


def test_the_briefing_is_issued_once_by_two_instances():
    today = samtest.today()
    if today.strftime("%m-%d") == "02-29":
        raise samtest.Skip("no briefing date can be 29 February (notify refuses it)")
    data = samtest.scratch("instances-briefing")
    _, ep = samtest.broker()
    samtest.service("echo", ep, data)
    common = ["--follow", "echo", "--reminder-days", "0", "--schedule-interval-ms", "200",
              "--call-timeout-ms", "300"]
    # a first run, with no briefing due, makes the store (whose first day is today) and the
    # subscription
    first = samtest.service("notify", ep, data, "--briefing-dates",
                            (today + datetime.timedelta(days=1)).strftime("%m-%d"), *common)
    c = Client(ep)
    subscribe(c, "styringsgruppen", channel=INBOX, type="no.samordna.notify.briefing.issued")
    assert first.stop() == 0
    # then two instances at once, today a briefing day for both
    procs = [samtest.Proc(f"notify-{x}", ["samordna-notify", "--broker", ep, "--data-dir", data,
                                          "--insecure", "--instance", f"notify-{x}",
                                          "--briefing-dates", today.strftime("%m-%d"), *common])
             for x in "ab"]
    samtest.wait_service(ep, "notify")

    def items():
        rep, msg = c.call("notify", "notify.inbox.read",
                          notify_pb2.InboxReadRequest(subscription="styringsgruppen", max=100),
                          notify_pb2.InboxReadReply)
        assert rep.status.code == 200, rep.status
        return list(msg.items)
    samtest.wait_for(lambda: len(items()) >= 1, 30, "the briefing")
    time.sleep(2.0)  # both check every 200 ms: a second briefing would be here by now
    got = items()
    assert len(got) == 1 and got[0].event.id == f"briefing-{today}", [i.event.id for i in got]
    assert all(p.alive() for p in procs)
    issued = [len(re.findall(r"schedule\.issued id=", p.logtext())) for p in procs]
    assert sorted(issued) == [0, 1], issued
    print(f"  {got[0].event.id} issued once, by notify-{'ab'[issued.index(1)]} of two")
    c.close()


def _grants_events(lo, hi):
    """An award and a disbursement on it, for awards lo..hi: six ledger postings each."""
    for k in range(lo, hi):
        a = grants_pb2.Award(id=f"a{k}", scheme="ps", recipient="halden", amount_ore=100000,
                             purpose="Koordinering", currency="NOK")
        a.funders.add(agency="fmov", amount_ore=100000)
        yield samtest.event("no.samordna.grants.award.granted", a, eid=f"aw{k}")
        yield samtest.event("no.samordna.grants.disbursement.made",
                            grants_pb2.Payment(id="p1", award=f"a{k}", amount_ore=40000,
                                               currency="NOK"), eid=f"d{k}")


def _workers(c):
    """The broker's mmi.workers: (lost_workers, {service: [(instance, since_ms)]})."""
    frames = c.mmi("mmi.workers", b"")
    j = json.loads(frames[-1])
    return j["lost_workers"], {s["name"]: [(w["instance"], w["since_ms"]) for w in s["workers"]]
                               for s in j["services"]}


def test_ledger_verify_on_a_large_store_leaves_the_loop_serving():
    """grants.ledger.verify walks every posting: on a large store it takes seconds. It runs in
    a worker thread on a read transaction of its own (an L row, common/sam_service_slow.c), so
    while it runs the grants worker keeps its heartbeats — the broker, which purges a worker
    silent for 4 × 150 ms (more under a sanitizer), keeps it registered — and writes sent after
    the verify are answered before it. The store is made large enough that one verify takes
    twice that window: on the loop it would hold both, the worker purged and no write answered
    first."""
    data = samtest.scratch("instances-verify")
    liveness = max(4, int(4 * SLOW))  # a sanitizer build's loop is slower: a wider window
    purge_s = 0.150 * liveness
    _, ep = samtest.broker("--heartbeat-ms", "150", "--liveness", str(liveness))
    beat = ["--heartbeat-ms", "150", "--liveness", str(liveness)]  # both ways alike
    samtest.service("registry", ep, os.path.join(data, "reg"), *beat)
    samtest.service("grants", ep, os.path.join(data, "grants"), "--nosync", *beat)
    c = Client(ep)
    publish_all(c, "registry", [
        samtest.event("no.samordna.registry.agency.registered",
                      registry_pb2.Agency(id="fmov", name="FMOV", kind=2), source="fmov",
                      eid="ag-fmov"),
        samtest.event("no.samordna.registry.municipality.registered",
                      registry_pb2.Municipality(id="halden", name="Halden"), eid="mu-halden")])
    scheme = samtest.event("no.samordna.grants.scheme.created",
                           grants_pb2.Scheme(id="ps", name="Prosjektskjønn", owner="fmov",
                                             year=2026, currency="NOK"), eid="scheme-ps")
    samtest.wait_for(lambda: publish(c, "grants", scheme)[0].status.code == 200, 20,
                     "grants knowing the registry's facts")

    def verify(timeout=300):
        t = time.time()
        rep, report = c.call("grants", "grants.ledger.verify", b"", grants_pb2.LedgerReport,
                             timeout=timeout)
        assert rep.status.code == 200, rep.status
        assert report.balanced, report.problems[:3]
        return time.time() - t, report.postings
    # a store large enough that one verify takes twice the broker's purge time here
    n, took, postings = 0, 0.0, 0
    while took < 2 * purge_s and n < 600000:
        step = 40000 if n else 20000
        publish_all(c, "grants", _grants_events(n, n + step), window=500)
        n += step
        took, postings = verify()
    assert took >= 2 * purge_s, f"verify of {postings} postings took {took:.2f} s: too fast to test"
    lost0, workers0 = _workers(c)
    assert len(workers0.get("grants", [])) == 1, workers0
    # the verify, then writes one by one from a second connection while it runs
    w = Client(ep)
    vid = c.send("grants", "grants.ledger.verify", b"")
    t0, answered, k = time.time(), 0, n
    got = None
    while got is None:
        a = grants_pb2.Award(id=f"a{k}", scheme="ps", recipient="halden", amount_ore=100,
                             purpose="Under verify", currency="NOK")
        a.funders.add(agency="fmov", amount_ore=100)
        rep, _ = publish(w, "grants", samtest.event("no.samordna.grants.award.granted", a,
                                                    eid=f"aw{k}"), timeout=30)
        assert rep.status.code == 200, rep.status
        answered += 1
        k += 1
        if c.sock.poll(0):
            got = c.recv(1)
        elif time.time() - t0 > 300 * SLOW:
            raise AssertionError("no verify answer within 300 s")
    during = time.time() - t0
    assert got.id == vid and got.status.code == 200, got.status
    report = grants_pb2.LedgerReport()
    report.ParseFromString(got.body)
    assert report.balanced and report.postings >= postings, report.problems[:3]
    lost1, workers1 = _workers(c)
    assert lost1 == lost0 and workers1.get("grants") == workers0["grants"], (
        "the grants worker was lost during the verify", lost0, lost1, workers0, workers1)
    assert answered >= 3, f"only {answered} writes answered while the verify ran"
    print(f"  verify of {report.postings} postings ({2 * n} events): {took:.2f} s alone; "
          f"{answered} writes answered during one of {during:.2f} s, grants kept registered")
    w.close()
    c.close()


if __name__ == "__main__":
    samtest.main()
