"""replica_test — a primary and a standby of one service, each on a store of its own, through
one broker (docs/scaling.md, "Across hosts"; the hosts are folders here: tests/multihost_test.py
puts them on different network hosts).

- the standby follows the primary's outbox into its own store, byte for byte, and answers
  reads; the broker sends every write to the primary, and a write handed to the standby
  itself is refused 503 with nothing stored;
- promotion by hand (samctl promote): a new epoch, writes go to the new primary, the old one
  (started again as a standby) follows it;
- an old primary whose tail the new primary never had: its store is moved aside, it exits 3,
  and started again it follows the new primary from an empty store;
- synchronous mode: a write is answered once the standby has it, 503 when no standby
  confirms it in time (stored all the same: the retry is a duplicate, answered once the
  standby is back);
- --replica elect with a real etcd: one primary, a kill -9 of it makes the standby the
  primary within the lease, and `samctl promote` hands over back; --etcd-min-members;
- a standby replays what its primary accepted, also when its own projection of the registry
  already has a merger that would refuse it now.
"""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import samtest
from samtest import Client
from samordna.v1 import envelope_pb2, events_pb2, registry_pb2

AGENCY = "no.samordna.registry.agency.registered"


def agency_event(i, eid=None):
    return samtest.event(AGENCY, registry_pb2.Agency(id=f"etat-{i}", name=f"Etat {i}", kind=2),
                         eid=eid or f"agency-{i}")


def start(name, ep, data, instance, *extra):
    """A registry instance; does not wait (a standby answers ping, but so may the other)."""
    return samtest.Proc(f"{name}", ["samordna-registry", "--broker", ep, "--data-dir", data,
                                    "--insecure", "--instance", instance, *extra])


def call_instance(ep, instance, method, body=b"", reply_type=None, timeout=5.0):
    """A request routed to one instance (Request.instance)."""
    c = Client(ep)
    try:
        req = envelope_pb2.Request(id=7, method=method, instance=instance,
                                   body=body if isinstance(body, bytes) else body.SerializeToString())
        c.sock.send_multipart([b"", samtest.MDPC, b"registry", req.SerializeToString()])
        rep = c.recv(timeout)
        out = None
        if reply_type is not None and rep.status.code == 200:
            out = reply_type()
            out.ParseFromString(rep.body)
        return rep, out
    finally:
        c.close()


def ping_service(ep, service, instance, timeout=2.0):
    """ping of `service`, routed to `instance` when given; None without an answer."""
    c = Client(ep)
    try:
        req = envelope_pb2.Request(id=9, method="ping", instance=instance or "")
        c.sock.send_multipart([b"", samtest.MDPC, service.encode(), req.SerializeToString()])
        rep = c.recv(timeout)
    except AssertionError:
        return None
    finally:
        c.close()
    return envelope_pb2.PingReply.FromString(rep.body) if rep.status.code == 200 else None


def ping(ep, instance, timeout=2.0):
    try:
        rep, pr = call_instance(ep, instance, "ping", reply_type=envelope_pb2.PingReply,
                                timeout=timeout)
    except AssertionError:
        return None
    return pr if rep.status.code == 200 else None


def wait_head(ep, instance, head, timeout=20):
    def reached():
        pr = ping(ep, instance)
        return pr is not None and pr.last_seq >= head
    samtest.wait_for(reached, timeout, f"{instance} to reach seq {head}")


def wait_role(ep, instance, role, timeout=20):
    def has():
        pr = ping(ep, instance)
        return pr is not None and pr.replica.role == role
    samtest.wait_for(has, timeout, f"{instance} to be {role}")
    return ping(ep, instance)


def outbox_bytes(ep, instance):
    """Every record of the instance's outbox as stored (events.read answers the stored bytes)."""
    records, after = [], 0
    while True:
        rep, rr = call_instance(ep, instance, "events.read",
                                events_pb2.ReadRequest(after_seq=after, max=1000),
                                events_pb2.ReadReply)
        assert rep.status.code == 200, rep.status.message
        if not rr.events:
            return records
        records += [e.SerializeToString() for e in rr.events]
        after = rr.events[-1].seq


def publish_all(c, events, timeout=10.0):
    for ev in events:
        rep, pr = samtest.publish(c, "registry", ev, timeout=timeout)
        assert rep.status.code == 200, f"{ev.id}: {rep.status.code} {rep.status.message}"


def samctl(ep, *args):
    return subprocess.run([os.path.join(samtest.BIN, "samctl"), "--broker", ep, "--insecure",
                           "--timeout-ms", str(int(5000 * samtest.SLOW)), *args],
                          capture_output=True, text=True, timeout=120 * samtest.SLOW)


def test_standby_follows_and_serves_reads():
    root = samtest.scratch("replica-follow")
    _, ep = samtest.broker()
    start("primary", ep, f"{root}/a", "reg-a")
    samtest.wait_service(ep, "registry")
    mport = samtest.free_port()
    start("standby", ep, f"{root}/b", "reg-b", "--replica", "standby", "--metrics",
          f"127.0.0.1:{mport}")
    assert wait_role(ep, "reg-b", "standby").replica.mode == "standby"
    with Client(ep) as c:
        publish_all(c, [agency_event(i) for i in range(300)])
    wait_head(ep, "reg-b", 300)

    def metrics_say(*lines):
        text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read()
        return all(line in text.decode().splitlines() for line in lines)
    samtest.wait_for(lambda: metrics_say('samordna_replica_primary{service="registry"} 0',
                                         'samordna_replica_lag_events{service="registry"} 0'),
                     10, "the standby's metrics to show it caught up")
    a, b = outbox_bytes(ep, "reg-a"), outbox_bytes(ep, "reg-b")
    assert len(a) == 300 and a == b, "the standby's outbox is the primary's, byte for byte"
    # reads are answered by the standby from its own tables
    rep, lst = call_instance(ep, "reg-b", "registry.agencies.list",
                             registry_pb2.ListRequest(page_size=1000), registry_pb2.AgencyList)
    assert rep.status.code == 200 and len(lst.items) == 300, rep.status.message
    assert ping(ep, "reg-b").last_seq == 300 and ping(ep, "reg-a").last_seq == 300
    # the standby tells how far it is, and whose
    st = ping(ep, "reg-b").replica
    assert st.primary_head == 300 and st.state == "caught-up", st
    # samctl reaches one instance, or the primary, when asked to
    for inst in ("reg-a", "reg-b"):
        r = samctl(ep, "--instance", inst, "--json", "ping", "registry", "-n", "3")
        assert r.returncode == 0 and r.stdout.count(f'"instance":"{inst}"') == 3, r.stdout + r.stderr
    r = samctl(ep, "--primary", "--json", "ping", "registry", "-n", "3")
    assert r.stdout.count('"instance":"reg-a"') == 3, r.stdout + r.stderr
    # samctl status shows both parts
    r = samctl(ep, "status")
    assert "reg-b" in r.stdout and "standby" in r.stdout and "primary" in r.stdout, r.stdout


def test_standby_refuses_writes():
    """A write that reaches a standby anyway (a broker of another make, the moment of a change
    of primary) is refused 503 and nothing is stored."""
    root = samtest.scratch("replica-refuse")
    with samtest.FakeBroker(outbox=[]) as fb:
        start("standby", fb.ep, f"{root}/b", "reg-b", "--replica", "standby")
        ext = fb.accept(service="registry")
        assert "standby" in ext.split() and "epoch=0" in ext.split(), ext
        rep, _ = fb.publish(agency_event(1))
        assert rep.status.code == 503 and "not the primary" in rep.status.message, \
            rep.status.message
        rep, pr = fb.call("ping", reply_type=envelope_pb2.PingReply)
        assert pr.last_seq == 0 and pr.replica.role == "standby", pr


def test_promote_by_hand():
    root = samtest.scratch("replica-promote")
    _, ep = samtest.broker()
    a = start("primary", ep, f"{root}/a", "reg-a")
    samtest.wait_service(ep, "registry")
    start("standby", ep, f"{root}/b", "reg-b", "--replica", "standby")
    wait_role(ep, "reg-b", "standby")
    with Client(ep) as c:
        publish_all(c, [agency_event(i) for i in range(50)])
    wait_head(ep, "reg-b", 50)
    # the primary still answers the standby: promoting by hand is refused without --force
    r = samctl(ep, "promote", "registry", "--instance", "reg-b")
    assert r.returncode == 1 and "(reg-a) still answers" in r.stderr and "--force" in r.stderr, \
        r.stderr
    a.kill9()  # promoted at once after the kill: the killed primary answers no ping
    r = samctl(ep, "promote", "registry", "--instance", "reg-b")
    assert r.returncode == 0, r.stderr
    assert "reg-b is the primary, epoch 1" in r.stdout, r.stdout
    with Client(ep) as c:
        publish_all(c, [agency_event(i) for i in range(50, 80)])
    pr = ping(ep, "reg-b")
    assert pr.last_seq == 80 and pr.replica.role == "primary" and pr.replica.epoch == 1, pr
    # the old primary, started again as a standby, follows the new one
    start("old-primary", ep, f"{root}/a", "reg-a", "--replica", "standby")
    wait_head(ep, "reg-a", 80)
    recs = outbox_bytes(ep, "reg-a")
    assert recs == outbox_bytes(ep, "reg-b")
    epochs = [events_pb2.StoredEvent.FromString(x).epoch for x in recs]
    assert epochs == [0] * 50 + [1] * 30, "each record carries its primary's epoch"
    # promoting the primary again says so and changes nothing
    r = samctl(ep, "promote", "registry", "--instance", "reg-b")
    assert r.returncode == 0 and "epoch 1" in r.stdout, r.stdout + r.stderr
    # an unknown instance: the request waits for a worker of that name, then a clear error
    r = samctl(ep, "--timeout-ms", "1500", "promote", "registry", "--instance", "nobody")
    assert r.returncode == 1 and "nobody" in r.stderr, r.stderr
    # restarted with its old --replica standby, the promoted store says it was the primary
    procs = [p for p in samtest.PROCS if p.name == "standby"]
    assert procs[0].stop() == 0
    again = start("standby-again", ep, f"{root}/b", "reg-b", "--replica", "standby")
    samtest.wait_for(lambda: "replica.was_primary epoch=1" in again.logtext(), 10,
                     "the restarted store to say it was the primary")
    assert again.stop() == 0
    start("primary-again", ep, f"{root}/b", "reg-b", "--replica", "primary")
    wait_role(ep, "reg-b", "primary")
    with Client(ep) as c:
        publish_all(c, [agency_event(i) for i in range(80, 85)])
    assert ping(ep, "reg-b").replica.epoch == 1
    wait_head(ep, "reg-a", 85)


def test_diverged_store_moved_aside():
    root = samtest.scratch("replica-diverged")
    _, ep = samtest.broker()
    a = start("primary", ep, f"{root}/a", "reg-a")
    samtest.wait_service(ep, "registry")
    b = start("standby", ep, f"{root}/b", "reg-b", "--replica", "standby")
    wait_role(ep, "reg-b", "standby")
    with Client(ep) as c:
        publish_all(c, [agency_event(i) for i in range(20)])
        wait_head(ep, "reg-b", 20)
        assert b.stop() == 0
        publish_all(c, [agency_event(i) for i in range(20, 25)])  # only the primary has these
    a.kill9()
    b = start("standby", ep, f"{root}/b", "reg-b", "--replica", "standby")
    wait_role(ep, "reg-b", "standby")
    assert samctl(ep, "promote", "registry", "--instance", "reg-b").returncode == 0
    with Client(ep) as c:
        publish_all(c, [agency_event(i, eid=f"later-{i}") for i in range(100, 103)])
    # the old primary comes back as a standby: its seq 21..25 are not the new history
    old = start("old-primary", ep, f"{root}/a", "reg-a", "--replica", "standby")
    old.p.wait(timeout=30 * samtest.SLOW)
    assert old.p.returncode == 3, f"exit {old.p.returncode}"
    assert "replica.diverged" in old.logtext()
    aside = [d for d in os.listdir(f"{root}/a") if d.startswith("registry.diverged-")]
    assert len(aside) == 1, os.listdir(f"{root}/a")
    assert os.path.exists(f"{root}/a/{aside[0]}/data.mdb"), "kept, not deleted"
    # started again (as a supervisor would), it follows the primary from an empty store
    start("old-primary-again", ep, f"{root}/a", "reg-a", "--replica", "standby")
    wait_head(ep, "reg-a", 23)
    assert outbox_bytes(ep, "reg-a") == outbox_bytes(ep, "reg-b")


def test_synchronous_mode():
    root = samtest.scratch("replica-sync")
    _, ep = samtest.broker()
    start("primary", ep, f"{root}/a", "reg-a", "--sync-standby", "--sync-timeout-ms", "1500")
    samtest.wait_service(ep, "registry")
    b = start("standby", ep, f"{root}/b", "reg-b", "--replica", "standby")
    wait_role(ep, "reg-b", "standby")
    with Client(ep) as c:
        publish_all(c, [agency_event(i) for i in range(100)])
        st = ping(ep, "reg-a").replica
        assert st.synchronous and st.confirmed >= 100, st
        assert ping(ep, "reg-b").last_seq >= 100, "acknowledged only once the standby had it"
        assert b.stop() == 0
        ev = agency_event(500)
        t0 = time.monotonic()
        rep, _ = samtest.publish(c, "registry", ev, timeout=10 * samtest.SLOW)
        assert rep.status.code == 503 and "not yet confirmed" in rep.status.message, \
            rep.status.message
        assert time.monotonic() - t0 >= 1.4
        assert ping(ep, "reg-a").last_seq == 101, "stored on the primary all the same"
        start("standby-again", ep, f"{root}/b", "reg-b", "--replica", "standby")
        rep, pr = samtest.publish(c, "registry", ev, timeout=10 * samtest.SLOW)
        assert rep.status.code == 200 and pr.duplicate and pr.seq == 101, rep.status.message
    assert ping(ep, "reg-b").last_seq >= 101


def test_synchronous_diverged_standby_confirms_nothing():
    """An old primary back as a standby claims a position its own records fill, not the new
    primary's: it must not confirm the new primary's held writes."""
    root = samtest.scratch("replica-sync-diverged")
    _, ep = samtest.broker()
    sync = ["--sync-standby", "--sync-timeout-ms", "1500"]
    a = start("primary", ep, f"{root}/a", "reg-a", *sync)
    samtest.wait_service(ep, "registry")
    b = start("standby", ep, f"{root}/b", "reg-b", "--replica", "standby", *sync)
    wait_role(ep, "reg-b", "standby")
    with Client(ep) as c:
        publish_all(c, [agency_event(i) for i in range(3)])
        assert b.stop() == 0
        for i in range(3, 6):  # stored on A only, never confirmed
            rep, _ = samtest.publish(c, "registry", agency_event(i), timeout=10 * samtest.SLOW)
            assert rep.status.code == 503, rep.status.message
        a.kill9()
        start("standby-b", ep, f"{root}/b", "reg-b", "--replica", "standby", *sync)
        wait_role(ep, "reg-b", "standby")
        assert samctl(ep, "promote", "registry", "--instance", "reg-b").returncode == 0
        later = [agency_event(i, eid=f"later-{i}") for i in range(200, 204)]
        for ev in later:  # seq 4..7 on B, held: no standby
            rep, _ = samtest.publish(c, "registry", ev, timeout=10 * samtest.SLOW)
            assert rep.status.code == 503, rep.status.message
        # A's store ends at seq 6 of epoch 0; B's seq 6 is of epoch 1: A confirms nothing
        old = start("old-primary", ep, f"{root}/a", "reg-a", "--replica", "standby")
        old.p.wait(timeout=30 * samtest.SLOW)
        assert old.p.returncode == 3, old.p.returncode
        assert ping(ep, "reg-b").replica.confirmed < 4, ping(ep, "reg-b").replica
        start("old-primary-again", ep, f"{root}/a", "reg-a", "--replica", "standby")
        wait_head(ep, "reg-a", 7)
        for ev in later:  # now on a standby too: the retries are answered
            rep, pr = samtest.publish(c, "registry", ev, timeout=10 * samtest.SLOW)
            assert rep.status.code == 200 and pr.duplicate, rep.status.message
    assert ping(ep, "reg-b").replica.confirmed == 7


def _etcd(root):
    if not shutil.which("etcd"):
        raise samtest.Skip("etcd is not installed (tools/deps.sh installs etcd-server)")
    client, peer = samtest.free_port(), samtest.free_port()
    url = f"http://127.0.0.1:{client}"
    proc = samtest.Proc("etcd", ["/usr/bin/etcd", "--data-dir", f"{root}/etcd", "--name", "t",
                                 "--listen-client-urls", url, "--advertise-client-urls", url,
                                 "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                                 "--initial-cluster", f"t=http://127.0.0.1:{peer}"],
                        clock=False)

    def up():
        try:
            with socket.create_connection(("127.0.0.1", client), timeout=0.2):
                return True
        except OSError:
            return False
    samtest.wait_for(up, 20, "etcd to listen")
    return proc, url


def test_elect_with_etcd():
    root = samtest.scratch("replica-elect")
    _, url = _etcd(root)
    _, ep = samtest.broker()
    elect = ["--replica", "elect", "--etcd", url, "--etcd-ttl-ms", "2000", "--sync-standby"]
    a = start("elect-a", ep, f"{root}/a", "reg-a", *elect)
    wait_role(ep, "reg-a", "primary")
    start("elect-b", ep, f"{root}/b", "reg-b", *elect)
    wait_role(ep, "reg-b", "standby")
    with Client(ep) as c:
        publish_all(c, [agency_event(i) for i in range(40)])
        assert ping(ep, "reg-b").last_seq == 40, "synchronous: the standby had each one"
        epoch_a = ping(ep, "reg-a").replica.epoch
        a.kill9()
        t0 = time.monotonic()
        st = wait_role(ep, "reg-b", "primary", timeout=30).replica
        took = time.monotonic() - t0
        print(f"elect: reg-b primary {took:.2f}s after the kill of reg-a (lease 2 s)")
        assert st.epoch > epoch_a, (st.epoch, epoch_a)
        # no standby now: synchronous writes wait, then 503; with reg-a back they flow
        start("elect-a-again", ep, f"{root}/a", "reg-a", *elect)
        wait_role(ep, "reg-a", "standby")
        publish_all(c, [agency_event(i) for i in range(40, 60)])
    wait_head(ep, "reg-a", 60)
    assert outbox_bytes(ep, "reg-a") == outbox_bytes(ep, "reg-b")
    # a handover back to reg-a by hand
    r = samctl(ep, "promote", "registry", "--instance", "reg-a")
    assert r.returncode == 0, r.stdout + r.stderr
    assert wait_role(ep, "reg-b", "standby")
    with Client(ep) as c:
        publish_all(c, [agency_event(i) for i in range(60, 70)])
    assert ping(ep, "reg-a").last_seq == 70 and ping(ep, "reg-a").replica.role == "primary"


def test_handover_to_a_standby_that_lags():
    """samctl promote under etcd to a standby that is behind when the handover starts (as one
    is when a write's commit overlapped the start): the leader stops writing and registers as
    a standby, and the target reads the leader's last records from it by name, so the
    handover completes with every acknowledged write. Before, the target's reads went only to
    "the primary", of which there was none: the leader waited out its 10 s and gave up."""
    root = samtest.scratch("replica-handover-lag")
    _, url = _etcd(root)
    _, ep = samtest.broker()
    elect = ["--replica", "elect", "--etcd", url, "--etcd-ttl-ms", "4000"]
    a = start("lag-a", ep, f"{root}/a", "reg-a", *elect)
    wait_role(ep, "reg-a", "primary")
    b = start("lag-b", ep, f"{root}/b", "reg-b", *elect)
    wait_role(ep, "reg-b", "standby")
    n = 1200  # more than two of the follower's pages (SAM_FOLLOW_READ_MAX 500)
    with Client(ep) as c:
        publish_all(c, [agency_event(i) for i in range(20)])
        wait_head(ep, "reg-b", 20)
        b.p.send_signal(signal.SIGSTOP)  # b falls behind; its lease (4 s) outlives this
        try:
            ids = {c.send("registry", "events.publish",
                          events_pb2.PublishRequest(event=agency_event(i))) for i in range(20, n)}
            while ids:
                rep = c.recv(timeout=15)
                assert rep.status.code == 200, rep.status.message
                ids.discard(rep.id)
            # the handover key, as samctl promote has the target write it
            key = base64.b64encode(b"/samordna/registry/handover").decode()
            put = json.dumps({"key": key, "value": base64.b64encode(b"reg-b").decode()})
            urllib.request.urlopen(urllib.request.Request(f"{url}/v3/kv/put", put.encode()),
                                   timeout=5).read()
            samtest.wait_for(lambda: "waiting=true" in a.logtext(), 10,
                             "reg-a to start the handover")
        finally:
            b.p.send_signal(signal.SIGCONT)
    # within the leader's wait for its target (10 s), well past the moment it started
    wait_role(ep, "reg-b", "primary", timeout=9)
    assert "elect.handover-timeout" not in a.logtext(), a.logtext()[-2000:]
    wait_role(ep, "reg-a", "standby")
    assert ping(ep, "reg-b").last_seq == n
    with Client(ep) as c:
        publish_all(c, [agency_event(i) for i in range(n, n + 5)])
    wait_head(ep, "reg-a", n + 5)
    assert outbox_bytes(ep, "reg-a") == outbox_bytes(ep, "reg-b")


def test_elect_waits_for_enough_members():
    """--etcd-min-members 2: one instance alone does not elect itself (it may lack what the
    others were acknowledged for); with a second one live, one of them leads."""
    root = samtest.scratch("replica-quorum")
    _, url = _etcd(root)
    _, ep = samtest.broker()
    elect = ["--replica", "elect", "--etcd", url, "--etcd-ttl-ms", "1000",
             "--etcd-min-members", "2"]
    a = start("quorum-a", ep, f"{root}/a", "reg-a", *elect)
    samtest.wait_for(lambda: "elect.waiting" in a.logtext(), 20, "reg-a to wait for members")
    time.sleep(2)
    assert ping(ep, "reg-a").replica.role != "primary"
    start("quorum-b", ep, f"{root}/b", "reg-b", *elect)
    def one_leads():
        roles = [ping(ep, i) for i in ("reg-a", "reg-b")]
        return all(roles) and sorted(r.replica.role for r in roles) == ["primary", "standby"]
    samtest.wait_for(one_leads, 30, "one of the two to lead")


def test_a_replay_is_not_refused_by_a_merger_the_primary_had_not_seen():
    """grants accepts an award to a municipality that the registry merges away only later,
    dated after the merger. A standby whose own registry projection already has the merger
    when it replays the award must apply it as its primary did, not stall on it for good."""
    root = samtest.scratch("replica-merger")
    _, ep = samtest.broker()
    fixture = os.path.join(samtest.SRC, "deploy", "examples", "ostfold-2019.json")
    for name in ("registry", "status", "notify"):
        samtest.service(name, ep, f"{root}/shared")
    grants_a = samtest.Proc("grants-a", ["samordna-grants", "--broker", ep, "--data-dir",
                                         f"{root}/a", "--insecure", "--instance", "g-a"])
    samtest.wait_service(ep, "grants")
    r = samctl(ep, "import", fixture)
    assert r.returncode == 0, r.stdout + r.stderr

    def ok(*args):
        r = samctl(ep, *args)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    ok("municipalities", "register", "gml", "--name", "Gamle", "--number", "3190:2019-01-01")
    ok("municipalities", "register", "ny", "--name", "Nye", "--number", "3191:2024-01-01")
    samtest.wait_for(lambda: samctl(ep, "grants", "add-scheme", "rs-1", "--name", "S",
                                    "--year", "2024").returncode == 0, 30, "grants to know fmov")
    samtest.wait_for(lambda: samctl(ep, "grants", "add-award", "ra-1", "--scheme", "rs-1",
                                    "--recipient", "gml", "--amount", "100 000", "--purpose", "x",
                                    "--decided", "2024-02-01").returncode == 0,
                     30, "grants to take the award (it knows gml, not yet a merger)")
    ok("municipalities", "merge", "ny", "--merged", "gml", "--from", "2024-01-01")
    head = ping_service(ep, "grants", "g-a").last_seq
    assert grants_a.stop() == 0
    # the standby first reads the registry, merger included, while its primary is away
    start_b = samtest.Proc("grants-b", ["samordna-grants", "--broker", ep, "--data-dir",
                                        f"{root}/b", "--insecure", "--instance", "g-b",
                                        "--replica", "standby"])
    reg_head = ping_service(ep, "registry", None).last_seq

    def projected():
        pr = ping_service(ep, "grants", "g-b")
        return pr is not None and any(f.service == "registry" and f.cursor >= reg_head
                                      for f in pr.followers)
    samtest.wait_for(projected, 30, "the standby's registry projection to have the merger")
    samtest.Proc("grants-a-again", ["samordna-grants", "--broker", ep, "--data-dir", f"{root}/a",
                                    "--insecure", "--instance", "g-a"])

    def caught_up():
        pr = ping_service(ep, "grants", "g-b")
        return pr is not None and pr.last_seq >= head
    samtest.wait_for(caught_up, 30, "the standby to apply the award (not stall on the merger)")
    assert "replica.stalled" not in start_b.logtext()


if __name__ == "__main__":
    samtest.main()
