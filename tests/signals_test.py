"""Signals as an operator sends them.

SIGTERM drains: nothing given to a stopping service is dropped or answered 503.

A client keeps a few hundred publishes in flight to a registry (through a real broker) and
a long poll parked on it, then the registry gets SIGTERM. It must finish what it was given:
answer the long poll, commit and answer the publishes it had read, and tell the broker it is
leaving, which hands the rest to a second instance on the same store. Every publish is then
answered 200 exactly once, each event is in the outbox exactly once, and the stopped instance
exited 0 within its bound.

SIGHUP reloads what may change while running: the log level (every service; registry_test
checks it), and notify's retry schedule, read again from its configuration file; a schedule
that does not parse is refused and the old one kept.
"""
import os
import time

import samtest
from samordna.v1 import envelope_pb2, events_pb2, registry_pb2

N = 3000


def _agency(i):
    return samtest.publish_req("no.samordna.registry.agency.registered",
                               registry_pb2.Agency(id=f"drain-{i}", name=f"Etat {i}", kind=2),
                               eid=f"drain-{i}")


def test_sigterm_answers_what_it_was_given():
    d = samtest.scratch("drain")
    broker, ep = samtest.broker()
    first = samtest.service("registry", ep, d, "--instance", "first")
    c = samtest.Client(ep)
    poll = samtest.Client(ep)
    second = None
    try:
        # a long poll parked past the outbox head, then a stream of publishes
        poll.send("registry", "events.read", events_pb2.ReadRequest(after_seq=10**9,
                                                                    wait_ms=20000))
        time.sleep(0.2)  # parked
        ids = {c.send("registry", "events.publish", _agency(i)): i for i in range(N)}
        # at once: some are read, some wait in the broker; both must come through
        started = time.time()
        first.p.send_signal(15)
        second = samtest.service("registry", ep, d, "--instance", "second")
        rc = first.p.wait(30 * samtest.SLOW)
        assert rc == 0, first.logtext()
        assert time.time() - started < 20 * samtest.SLOW
        rep = poll.recv(timeout=10)  # answered at once, empty: not dropped nor handed on
        assert rep.status.code == 200, rep.status
        assert "service.drained" in first.logtext() and "long_polls=1" in first.logtext(), \
            first.logtext()
        seqs = {}
        while len(seqs) < N:
            rep = c.recv(timeout=15)
            assert rep.status.code == 200, (rep.status.code, rep.status.message)
            assert rep.id in ids and rep.id not in seqs, f"reply {rep.id} twice or unknown"
            pr = events_pb2.PublishReply()
            pr.ParseFromString(rep.body)
            seqs[rep.id] = pr.seq
        # each event once in the outbox
        stored, after = [], 0
        while True:
            rep, read = c.call("registry", "events.read",
                               events_pb2.ReadRequest(after_seq=after, max=1000),
                               events_pb2.ReadReply)
            assert rep.status.code == 200, rep.status
            if not read.events:
                break
            stored += [e.event.id for e in read.events if e.event.id.startswith("drain-")]
            after = read.events[-1].seq
        assert sorted(stored) == sorted(f"drain-{i}" for i in range(N)), \
            (len(stored), len(set(stored)))
        rep, ping = c.call("registry", "ping", b"", envelope_pb2.PingReply)
        assert ping.instance == "second", ping
    finally:
        c.close()
        poll.close()
        if second:
            assert second.stop() == 0
        broker.stop()


def test_sighup_reloads_the_retry_schedule():
    d = samtest.scratch("sighup-notify")
    broker, ep = samtest.broker()
    conf = os.path.join(d, "notify.cfg")
    with open(conf, "w") as f:
        f.write('retry-schedule = "1s,5s"\nfollow = ""\n')
    n = samtest.service("notify", ep, d, "--config", conf)
    try:
        with open(conf, "w") as f:
            f.write('retry-schedule = "2s,3m,1h"\nfollow = ""\n')
        n.p.send_signal(1)
        samtest.wait_for(lambda: 'retry_schedule="2s,3m,1h" attempts=3' in n.logtext(), 10,
                         "the new schedule taken")
        assert "own=applied" in n.logtext(), n.logtext()
        with open(conf, "w") as f:
            f.write('retry-schedule = "soon"\nfollow = ""\n')
        n.p.send_signal(1)
        samtest.wait_for(lambda: "own=refused" in n.logtext(), 10, "the bad schedule refused")
        assert n.alive(), n.logtext()
        samtest.wait_service(ep, "notify")  # still serving, with the old schedule
    finally:
        assert n.stop() == 0
        broker.stop()


if __name__ == "__main__":
    samtest.main()
