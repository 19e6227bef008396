"""failover_test — two brokers, every service on both, one broker killed with kill -9 under a
stream of requests from sam_client-based clients (samctl reads, samctl writes, samctl import
pipelining), then restarted.

Every request is answered, none waits anything like its timeout (the client library left the
dead broker by its heartbeats and sent what was in flight to the other), every acknowledged
write is stored exactly once, the services register again with the restarted broker at once
(not at their next heartbeat), the restarted broker is used again, and neither broker counts
the reconnecting workers' traffic as malformed. Also: a worker whose connection is gone is
left by the broker at its next heartbeat, not at its liveness.
"""
import json
import os
import signal
import subprocess
import threading
import time

import samtest
from samtest import MDPC, REQUEST, Client, Worker
from samordna.v1 import envelope_pb2, events_pb2

SERVICES = ["registry", "status", "grants", "notify"]
FIXTURE = os.path.join(samtest.SRC, "deploy", "examples", "ostfold-2019.json")
TIMEOUT_MS = 10000  # what every samctl call is given; answers must come in well under it
# Services heartbeat their brokers this seldom here, so that registering again with a
# restarted broker within a few seconds can only be the connection watch's doing.
SERVICE_HEARTBEAT_MS = "20000"


T0 = time.monotonic()


def samctl(eps, *args, timeout=120):
    brokers = [a for ep in eps for a in ("--broker", ep)]
    t0 = time.monotonic()
    r = subprocess.run([os.path.join(samtest.BIN, "samctl"), *brokers, "--insecure",
                        "--timeout-ms", str(TIMEOUT_MS), *args], capture_output=True, text=True,
                       timeout=timeout)
    return r, time.monotonic() - t0


def mmi_workers(ep):
    """The broker's mmi.workers JSON."""
    c = Client(ep)
    try:
        return json.loads(c.mmi("mmi.workers", b"")[3])
    finally:
        c.close()


def registered(ep, service):
    c = Client(ep)
    try:
        return c.mmi("mmi.service", service.encode(), timeout=1)[3] == b"200"
    except samtest.Silence:
        return False
    finally:
        c.close()


def outbox_types(ep, service):
    """[(event id, type)] of a service's whole outbox, in order."""
    c = Client(ep)
    out, after = [], 0
    try:
        while True:
            rep, read = c.call(service, "events.read",
                               events_pb2.ReadRequest(after_seq=after, max=1000),
                               events_pb2.ReadReply)
            assert rep.status.code == 200, rep.status
            if not read.events:
                return out
            out += [(e.event.id, e.event.type) for e in read.events]
            after = read.events[-1].seq
    finally:
        c.close()


class Suite:
    """Two brokers on fixed ports and the four services on both."""

    def __init__(self, name, services=SERVICES):
        self.data = samtest.scratch(name)
        self.ports = [samtest.free_port(), samtest.free_port()]
        self.eps = [f"tcp://127.0.0.1:{p}" for p in self.ports]
        self.brokers = [self.start_broker(i) for i in range(2)]
        self.services = [
            samtest.service(s, self.eps[0], self.data, "--broker", self.eps[1], "--heartbeat-ms",
                            SERVICE_HEARTBEAT_MS, "--liveness", "3") for s in services]
        for s in services:
            samtest.wait_for(lambda: registered(self.eps[1], s), 10, f"{s} on the second broker")

    def start_broker(self, i):
        proc, _ = samtest.broker(port=self.ports[i])
        return proc

    def close(self):
        for p in self.services + self.brokers:
            if p.alive():
                assert p.stop() == 0, f"{p.name} did not stop cleanly"


def test_a_broker_killed_under_samctl_costs_no_request():
    s = Suite("failover")
    r, _ = samctl(s.eps, "import", FIXTURE)
    assert r.returncode == 0, r.stderr
    stop = threading.Event()
    calls = []  # (what, rc, seconds, stderr)
    logged = []  # meeting ids samctl said were stored
    events = []  # (what, when): the kills and restarts, for a failure's message

    def reader():
        while not stop.is_set():
            r, took = samctl(s.eps, "agencies", "--json")
            calls.append(("agencies", r.returncode, took, r.stderr, _at(took)))

    def writer():
        i = 0
        while not stop.is_set():
            mid = f"fo-{i}"
            r, took = samctl(s.eps, "meeting", "log", mid, "--kind", "working", "--date",
                             "2019-03-01", "--pilot", "halden", "--participant", "fmov")
            calls.append(("meeting", r.returncode, took, r.stderr, _at(took)))
            if r.returncode == 0:
                logged.append(mid)
            i += 1

    def importer():  # pipelined: every import again is answered as duplicates
        while not stop.is_set():
            r, took = samctl(s.eps, "import", FIXTURE)
            calls.append(("import", r.returncode, took, r.stderr, _at(took)))

    threads = [threading.Thread(target=f) for f in (reader, writer, importer)]
    try:
        for t in threads:
            t.start()
        samtest.wait_for(lambda: len(calls) > 10, 60, "the clients going")
        for round_ in range(4):
            victim = round_ % 2
            before = len(calls)
            s.brokers[victim].kill9()
            events.append((f"broker {victim} killed", _at(0)))
            time.sleep(1.5)  # the clients carry on with one broker
            samtest.wait_for(lambda: len(calls) > before + 10, 60, "calls after the kill")
            s.brokers[victim] = s.start_broker(victim)
            events.append((f"broker {victim} restarted", _at(0)))
            t0 = time.monotonic()
            # every service registers again at once: its watch saw the connection break,
            # it does not wait for its next heartbeat (20 s here)
            for svc in SERVICES:
                samtest.wait_for(lambda: registered(s.eps[victim], svc), 5,
                                 f"{svc} registered again with the restarted broker")
            print(f"round {round_}: broker {victim} killed, the services registered again "
                  f"within {time.monotonic() - t0:.2f} s of its restart")
            # and the clients use it again
            samtest.wait_for(lambda: _requests(s.eps[victim]) > 20, 30,
                             "requests served by the restarted broker")
    finally:
        stop.set()
        for t in threads:
            t.join(120)
    failed = [c for c in calls if c[1] != 0]
    assert not failed, failed[:5]
    slowest = max(calls, key=lambda c: c[2])
    print(f"{len(calls)} samctl calls, the slowest {slowest[0]} took {slowest[2]:.2f} s "
          f"(timeout {TIMEOUT_MS} ms)")
    # none waited a timeout: a generous bound, far below the --timeout-ms given
    assert slowest[2] < TIMEOUT_MS / 1000 * 0.4, (slowest, events)
    # samctl import never had to send again by its own timeout: the client did at once
    assert not [c for c in calls if "sending" in c[3]], [c for c in calls if "sending" in c[3]]
    # every acknowledged meeting stored once, and only those
    ids, token = [], None
    while True:
        r, _ = samctl(s.eps, "meetings", "--json", "--from", "2019-03-01", "--to", "2019-03-01",
                      *(["--page-token", token] if token else []))
        assert r.returncode == 0, r.stderr
        page = json.loads(r.stdout)
        ids += [m["id"] for m in page["items"] if m["id"].startswith("fo-")]
        token = page["next"]
        if not token:
            break
    assert sorted(ids) == sorted(logged), (len(ids), len(logged))
    # the fixture imported again and again: no event of it stored twice anywhere
    for svc in SERVICES:
        ev = outbox_types(s.eps[1], svc)
        assert len(ev) == len({i for i, _ in ev}), f"{svc}: an event stored twice"
    # the reconnecting workers' traffic is greeted, not counted as malformed
    for ep in s.eps:
        assert mmi_workers(ep)["malformed"] == 0, mmi_workers(ep)
    s.close()


def test_a_hung_broker_is_left_by_its_heartbeats():
    """A broker stopped with SIGSTOP keeps its connections open and answers nothing: the
    client finds it by its heartbeats (5 × 100 ms unanswered) and sends what it held to the
    other. A long import (one samctl process, pipelined) and short samctl calls go on."""
    s = Suite("failover-hung", services=["registry"])
    big = os.path.join(s.data, "agencies.json")
    with open(big, "w") as f:
        json.dump({"format": "samordna-fixture/1", "agencies": [
            {"id": f"hung-{i}", "name": f"Etat {i}", "kind": "state_regional"}
            for i in range(20000)]}, f)
    calls = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            r, took = samctl(s.eps, "ping", "registry")
            calls.append((r.returncode, took, r.stderr))

    out = {}

    def importer():
        out["r"], out["took"] = samctl(s.eps, "import", big)

    t_imp = threading.Thread(target=importer)
    t_read = threading.Thread(target=reader)
    t_imp.start()
    time.sleep(0.5)  # the import under way
    t_read.start()
    s.brokers[0].p.send_signal(signal.SIGSTOP)
    try:
        time.sleep(6)  # longer than import's resend slice (5 s) and the bound on calls (4 s)
    finally:
        s.brokers[0].p.send_signal(signal.SIGCONT)
    t_imp.join(120)
    stop.set()
    t_read.join(60)
    r = out["r"]
    assert r.returncode == 0 and "20000" in r.stdout + r.stderr, r.stdout + r.stderr
    # the client sent what the hung broker held to the other at once, not after import's
    # own resend slice (half the --timeout-ms)
    assert "sending" not in r.stderr, r.stderr
    ok = [c for c in calls if c[0] == 0]
    assert ok and len(ok) == len(calls), [c for c in calls if c[0] != 0][:3]
    slowest = max(c[1] for c in calls)
    print(f"import of 20000 agencies {out['took']:.1f} s; {len(calls)} calls meanwhile, the "
          f"slowest {slowest:.2f} s")
    assert slowest < TIMEOUT_MS / 1000 * 0.4, slowest
    s.close()


def _at(took):
    """When a call that took `took` seconds began, in seconds since the test module began."""
    return round(time.monotonic() - took - T0, 3)


def _requests(ep):
    """Requests a broker has taken from clients (its counter)."""
    return mmi_workers(ep)["requests"]


def test_a_worker_whose_connection_is_gone_is_left_at_the_next_heartbeat():
    """A worker holding its full credit dies without a word: the broker finds its connection
    gone when the next heartbeat to it cannot be sent (every 200 ms here), not at its
    liveness (50 × 200 ms = 10 s), and hands its requests to the other worker."""
    proc, ep = samtest.broker("--heartbeat-ms", "200", "--liveness", "50")
    dying = Worker(ep, "held", extension="x-samordna/1 credit=16")
    dying.recv()  # the extension answer
    c = Client(ep)
    rids = [c.send("held", "m") for _ in range(16)]
    for _ in rids:
        dying.recv_request()
    other = Worker(ep, "held", extension="x-samordna/1 credit=16")
    other.recv()
    t0 = time.monotonic()
    dying.close()  # the process is gone: its connection closes, nothing is said
    got = []
    end = time.monotonic() + 8 * samtest.SLOW
    while len(got) < len(rids) and time.monotonic() < end:
        other.heartbeat()
        if other.sock.poll(50):
            command, frames = other.recv(1.0, skip_heartbeats=False)
            if command == REQUEST:
                req = envelope_pb2.Request.FromString(frames[-1])
                other.sock.send_multipart([b"", samtest.MDPW, samtest.REPLY, frames[0], b"",
                                           envelope_pb2.Reply(id=req.id, status=envelope_pb2.Status(
                                               code=200)).SerializeToString()])
                got.append(req.id)
    took = time.monotonic() - t0
    assert sorted(got) == sorted(rids), f"{len(got)} of {len(rids)} handed on in {took:.1f} s"
    assert sorted(c.recv().id for _ in rids) == sorted(rids)
    assert took < 5 * samtest.SLOW, took  # half the liveness: not found by its silence
    assert "its connection is gone" in proc.logtext(), proc.logtext()[-2000:]
    other.close()
    c.close()
    assert proc.stop() == 0


def test_a_plain_mdp_client_of_two_brokers_as_docs_protocol_says():
    """The recipe of docs/protocol.md for a plain 7/MDP client: one DEALER per broker with
    ZMQ_IMMEDIATE, a request that gets no answer within its try sent again, with its id, to
    the other broker. A broker killed in the middle costs no request."""
    s = Suite("failover-plain", services=["registry"])
    socks = []
    for ep in s.eps:
        sock = samtest.CTX.socket(samtest.zmq.DEALER)
        sock.linger = 0
        sock.setsockopt(samtest.zmq.IMMEDIATE, 1)
        sock.connect(ep)
        socks.append(sock)

    def heartbeat(sock):  # mmi.heartbeat: "200" from a broker that is there
        try:
            sock.send_multipart([b"", MDPC, b"mmi.heartbeat", b""], samtest.zmq.NOBLOCK)
        except samtest.zmq.Again:
            return False  # not connected (yet)
        return sock.poll(500) and sock.recv_multipart() == [b"", MDPC, b"mmi.heartbeat", b"200"]

    for sock in socks:
        samtest.wait_for(lambda: heartbeat(sock), 10, "a broker answering mmi.heartbeat")
    answered, waited = 0, 0  # waited: tries that got no answer within their 500 ms
    try:
        for i in range(100):
            if i == 30:
                s.brokers[0].kill9()
            req = envelope_pb2.Request(id=i + 1, method="ping").SerializeToString()
            for attempt in range(4):
                sock = socks[(i + attempt) % 2]
                try:
                    sock.send_multipart([b"", MDPC, b"registry", req], samtest.zmq.NOBLOCK)
                except samtest.zmq.Again:
                    continue  # no connection to that broker: the other one
                if sock.poll(int(500 * samtest.SLOW)):
                    frames = sock.recv_multipart()
                    rep = envelope_pb2.Reply.FromString(frames[3])
                    if rep.id == i + 1 and rep.status.code == 200:
                        answered += 1
                        break
                waited += 1
            else:
                raise AssertionError(f"request {i + 1} unanswered by both brokers")
    finally:
        for sock in socks:
            sock.close(0)
    # a request sent in the instant of the kill waits one try; none waits longer
    assert answered == 100 and waited <= 2, (answered, waited)
    s.brokers[0] = s.start_broker(0)
    s.close()


if __name__ == "__main__":
    samtest.main()
