"""samtest — the harness of samordna's integration tests.

Tests start the real binaries on ephemeral loopback ports, talk to them over real ZeroMQ
sockets (pyzmq), and assert real outcomes. Each test module defines functions named test_*
and ends with `samtest.main()`, which runs them in order, prints one line per test and a
closing 'N passed, N failed' line, and exits non-zero when any failed. A test that cannot
run here raises Skip (saying why): it is counted as skipped, never as passed, and a module
with a skipped test and no failed one exits SKIP_EXIT, which CTest reports as skipped.

The vocabulary every test file shares, so that one fix serves them all: Client and Worker
(a 7/MDP client or worker of any language, frame by frame), FakeBroker (the test in the
broker's place, to check a service's every frame or hand it authenticated callers), event()
and publish_req() (the one CloudEvent builder) and publish() (the one way to publish).

Environment (set by CTest, see tests/CMakeLists.txt): SAMORDNA_BIN (executables),
SAMORDNA_PYGEN (generated *_pb2.py), SAMORDNA_TESTDATA (scratch folder), SAMORDNA_SRC.

The clock: no test reads the host's date. `today()` is the programme's date (Europe/Oslo),
and SAMORDNA_TEST_NOW ("YYYY-MM-DDTHH:MM", Oslo time) sets it: the test's clock then starts
at that moment and runs on, and every process a test starts is given `--now` on that same
clock, so the test and its services agree on the day (tests/list/dates.txt runs the
date-sensitive tests on 1 and 31 December, 29 February and just after midnight in Oslo,
when UTC still reads the day before).
"""
import datetime
import faulthandler
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
import uuid

BIN = os.environ.get("SAMORDNA_BIN", os.path.join(os.getcwd(), "bin"))
PYGEN = os.environ.get("SAMORDNA_PYGEN", os.path.join(os.getcwd(), "python"))
TESTDATA = os.environ.get("SAMORDNA_TESTDATA", os.path.join(os.getcwd(), "testdata"))
SRC = os.environ.get("SAMORDNA_SRC", os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
sys.path.insert(0, PYGEN)
# Sanitizer builds run several times slower: every upper bound on a wait (never a lower
# bound, never an assertion on a figure) is multiplied by this (tools/test.sh sets it).
SLOW = float(os.environ.get("SAMORDNA_TIMEOUT_SCALE", "1"))
# The sanitizer pass (tools/test.sh sets ASAN_OPTIONS for it): ASan's allocator keeps freed
# memory in quarantine, so figures of memory are for the plain build only.
SANITIZED = "ASAN_OPTIONS" in os.environ
# One test running longer than this (times SLOW) prints where every thread is.
HANG_S = 120

OSLO = None
try:
    import zoneinfo  # noqa: E402
    OSLO = zoneinfo.ZoneInfo("Europe/Oslo")
except Exception:  # no tz database: the rule Europe/Oslo follows, as sam_clock.c has it
    pass

_T0 = time.time()
_TEST_NOW = os.environ.get("SAMORDNA_TEST_NOW", "")


def _oslo(ts):
    """The moment ts (epoch seconds) as an aware datetime in Oslo."""
    if OSLO:
        return datetime.datetime.fromtimestamp(ts, OSLO)
    utc = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    y = utc.year

    def last_sunday(month):
        d = datetime.datetime(y, month, 31 if month in (3, 10) else 30, 1,
                              tzinfo=datetime.timezone.utc)
        return d - datetime.timedelta(days=(d.weekday() + 1) % 7)
    summer = last_sunday(3) <= utc < last_sunday(10)
    return utc.astimezone(datetime.timezone(datetime.timedelta(hours=2 if summer else 1)))


def _base():
    if not _TEST_NOW:
        return None
    naive = datetime.datetime.fromisoformat(_TEST_NOW)
    if OSLO:
        return naive.replace(tzinfo=OSLO).timestamp()
    for h in (1, 2):  # the offset that reads back as the same local time
        ts = naive.replace(tzinfo=datetime.timezone(datetime.timedelta(hours=h))).timestamp()
        if _oslo(ts).replace(tzinfo=None) == naive:
            return ts
    return naive.replace(tzinfo=datetime.timezone.utc).timestamp()


_BASE = _base()


def now():
    """The test's wall clock, epoch seconds: the real one, or SAMORDNA_TEST_NOW's running on."""
    return time.time() if _BASE is None else _BASE + (time.time() - _T0)


def today():
    """The programme's date now (Europe/Oslo), as the services reckon it."""
    return _oslo(now()).date()


def now_args():
    """`--now` for a process of ours started now, on the test's clock ([] on the real one)."""
    return [] if _BASE is None else ["--now", str(int(now() * 1000))]


import zmq  # noqa: E402
from samordna.v1 import envelope_pb2, events_pb2  # noqa: E402
from cloudevents.v1 import cloudevents_pb2  # noqa: E402

SKIP_EXIT = 77  # tests/CMakeLists.txt: SKIP_RETURN_CODE of the Python tests


class Skip(Exception):
    """Raised by a test that cannot run in this environment; the message says why."""


MDPC = b"MDPC01"
MDPW = b"MDPW01"
READY, REQUEST, REPLY, HEARTBEAT, DISCONNECT = (bytes([i]) for i in range(1, 6))

CTX = zmq.Context.instance()


def free_port():
    """An ephemeral loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scratch(name):
    """A fresh, empty folder under the test data folder."""
    path = os.path.join(TESTDATA, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


class Closing:
    """For a test's stack of processes and sockets with a close(): `with Stack(...) as s:`
    closes it however the block ends."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Proc:
    """A real process of ours; its stderr goes to a log file that failures print."""

    count = 0

    def __init__(self, name, args, logdir=None, env=None, clock=True):
        """clock=False: a program not of ours (etcd), which takes no --now."""
        self.name = name
        self.args = [os.path.join(BIN, args[0])] + list(args[1:]) + (now_args() if clock else [])
        Proc.count += 1
        self.logpath = os.path.join(logdir or TESTDATA, f"{name}-{os.getpid()}-{Proc.count}.log")
        os.makedirs(os.path.dirname(self.logpath), exist_ok=True)
        self.log = open(self.logpath, "ab")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.p = subprocess.Popen(self.args, stdout=self.log, stderr=self.log, env=full_env)
        PROCS.append(self)

    def alive(self):
        return self.p.poll() is None

    def stop(self, timeout=10):
        """SIGTERM and wait; returns the exit code. A clean shutdown is part of the contract."""
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise AssertionError(f"{self.name} did not stop within {timeout}s of SIGTERM")

    def kill9(self):
        if self.alive():
            self.p.kill()
        self.p.wait()

    def logtext(self):
        self.log.flush()
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")


PROCS = []


def broker(*extra, port=None, insecure=True):
    """Starts samordna-broker on loopback; returns (proc, endpoint)."""
    port = port or free_port()
    ep = f"tcp://127.0.0.1:{port}"
    args = ["samordna-broker", "--bind", ep]
    if insecure:
        args.append("--insecure")
    proc = Proc(f"broker-{port}", args + list(extra))
    wait_for(lambda: _port_open(port), 5, f"broker on {ep}")
    return proc, ep


def _port_open(port):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Silence(AssertionError):
    """Nothing arrived within the time given. Raised by Client.recv and Worker.recv on a
    timeout only, so that a test expecting silence can tell it from a wrong message (a
    malformed or unexpected one fails with a plain AssertionError instead)."""


def wait_for(cond, timeout, what):
    end = time.time() + timeout * SLOW
    while time.time() < end:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _decoded(rep, reply_type):
    """The body of a 200 reply as reply_type (None for any other reply or no type)."""
    if reply_type is None or rep.status.code != 200:
        return None
    return reply_type.FromString(rep.body)


class Client(Closing):
    """A samordna client over a raw DEALER socket: 7/MDP client frames, Request/Reply bodies."""

    def __init__(self, endpoint, curve=None):
        self.sock = CTX.socket(zmq.DEALER)
        self.sock.linger = 0
        if curve:
            curve(self.sock)
        self.sock.connect(endpoint)
        self.next_id = 1

    def close(self):
        self.sock.close(0)

    def send(self, service, method, body=b""):
        rid = self.next_id
        self.next_id += 1
        if not isinstance(body, (bytes, bytearray)):
            body = body.SerializeToString()
        req = envelope_pb2.Request(id=rid, method=method, body=bytes(body))
        self.sock.send_multipart([b"", MDPC, service.encode(), req.SerializeToString()])
        return rid

    def recv(self, timeout=5.0):
        """One reply as an envelope_pb2.Reply, or raises on timeout."""
        if not self.sock.poll(int(timeout * SLOW * 1000)):
            raise Silence(f"no reply within {timeout}s")
        frames = self.sock.recv_multipart()
        assert frames[0] == b"" and frames[1] == MDPC, f"bad reply frames {frames[:2]}"
        rep = envelope_pb2.Reply()
        rep.ParseFromString(frames[3])
        return rep

    def call(self, service, method, body=b"", reply_type=None, timeout=5.0):
        """Sends one request and returns (Reply, decoded body or None)."""
        rid = self.send(service, method, body)
        while True:
            rep = self.recv(timeout)
            if rep.id == rid:
                break
        return rep, _decoded(rep, reply_type)

    def mmi(self, name, body, timeout=5.0):
        self.sock.send_multipart([b"", MDPC, name.encode(), body])
        if not self.sock.poll(int(timeout * SLOW * 1000)):
            raise Silence("no MMI reply")
        return self.sock.recv_multipart()


class Worker(Closing):
    """A raw 7/MDP worker over a DEALER socket: the wire as a worker in any language sees it.

    `extension` is the optional READY extension frame ("x-samordna/1 credit=4 identity").
    Nothing is automatic: the test decides when to heartbeat, reply or disconnect.
    """

    def __init__(self, endpoint, service, extension=None, ready=True):
        self.endpoint = endpoint
        self.service = service
        self.extension = extension
        self.sock = None
        self.connect(ready)

    def connect(self, ready=True):
        """(Re)opens the socket, as a worker does after DISCONNECT, and sends READY."""
        if self.sock is not None:
            self.sock.close(0)
        self.sock = CTX.socket(zmq.DEALER)
        self.sock.linger = 0
        self.sock.connect(self.endpoint)
        if ready:
            self.ready()

    def ready(self):
        frames = [b"", MDPW, READY, self.service.encode()]
        if self.extension is not None:
            frames.append(self.extension.encode())
        self.sock.send_multipart(frames)

    def send(self, command, *frames):
        self.sock.send_multipart([b"", MDPW, command] + list(frames))

    def heartbeat(self):
        self.send(HEARTBEAT)

    def disconnect(self):
        self.send(DISCONNECT)

    def reply(self, client, *body):
        self.send(REPLY, client, b"", *body)

    def recv(self, timeout=5.0, skip_heartbeats=True):
        """The next broker command as (command, [frames after it]); raises on timeout or on
        frames that are not "" "MDPW01" command …"""
        end = time.time() + timeout
        while True:
            left = end - time.time()
            if left <= 0 or not self.sock.poll(int(left * 1000)):
                raise Silence(f"worker {self.service}: nothing from the broker "
                              f"within {timeout}s")
            frames = self.sock.recv_multipart()
            assert len(frames) >= 3 and frames[0] == b"" and frames[1] == MDPW, \
                f"bad worker frames {frames[:3]}"
            if skip_heartbeats and frames[2] == HEARTBEAT and len(frames) == 3:
                continue
            return frames[2], frames[3:]

    def recv_request(self, timeout=5.0):
        """The next REQUEST as (client, [frames after the empty delimiter])."""
        command, frames = self.recv(timeout)
        assert command == REQUEST, f"expected REQUEST, got {command!r} {frames}"
        assert len(frames) >= 3 and frames[1] == b"", f"bad REQUEST frames {frames}"
        return frames[0], frames[2:]

    def quiet(self, timeout):
        """True when nothing but plain heartbeats arrives within `timeout` seconds. Anything
        else fails: a REQUEST, any other command, and frames that are not 7/MDP worker
        frames at all (a malformed message is not silence)."""
        try:
            command, frames = self.recv(timeout)
        except Silence:
            return True
        raise AssertionError(f"worker {self.service}: expected silence, got {command!r} "
                             f"{frames}")

    def close(self):
        self.sock.close(0)


def wait_service(endpoint, service, timeout=10):
    """Waits until `service` answers ping through the broker."""
    c = Client(endpoint)
    try:
        end = time.time() + timeout * SLOW
        while time.time() < end:
            try:
                rep, _ = c.call(service, "ping", timeout=0.5)
                if rep.status.code == 200:
                    return
            except AssertionError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{service} did not answer ping within {timeout}s")
    finally:
        c.close()


def service(name, endpoint, data_dir, *extra):
    """Starts samordna-<name> against a broker and waits until it answers ping."""
    proc = Proc(f"{name}-{os.path.basename(data_dir)}-{len(PROCS)}",
                [f"samordna-{name}", "--broker", endpoint, "--data-dir", data_dir, "--insecure"]
                + list(extra))
    wait_service(endpoint, name)
    return proc


# ---- events: the one way a test builds and publishes a CloudEvent ------------------------

def event(etype, data=b"", source="fmov", eid=None, subject=None, content_type=None):
    """A CloudEvent (spec 1.0, the io.cloudevents.v1 protobuf) of type `etype` whose data is
    `data`: bytes as they are, a protobuf message packed. A fresh id unless `eid` is given;
    `subject` and `content_type` become the subject and datacontenttype attributes."""
    ev = cloudevents_pb2.CloudEvent(
        id=eid or uuid.uuid4().hex, source=source, spec_version="1.0", type=etype,
        binary_data=data if isinstance(data, (bytes, bytearray)) else data.SerializeToString())
    if subject is not None:
        ev.attributes["subject"].ce_string = subject
    if content_type is not None:
        ev.attributes["datacontenttype"].ce_string = content_type
    return ev


def publish_req(etype, data=b"", **kw):
    """The events.publish body carrying event(etype, data, **kw)."""
    return events_pb2.PublishRequest(event=event(etype, data, **kw))


def _publish_body(ev):
    return events_pb2.PublishRequest(event=ev) if isinstance(ev, cloudevents_pb2.CloudEvent) \
        else ev


def publish(client, service, ev, timeout=5.0):
    """Publishes `ev` (a CloudEvent, a PublishRequest, or raw bytes sent as the body) to
    `service` through the broker; returns (Reply, PublishReply or None), as Client.call."""
    return client.call(service, "events.publish", _publish_body(ev), events_pb2.PublishReply,
                       timeout=timeout)


def publish_ok(client, service, ev, timeout=5.0):
    """publish(), which must be answered 200; returns the PublishReply."""
    rep, pr = publish(client, service, ev, timeout)
    etype = getattr(_publish_body(ev), "event", None)
    assert rep.status.code == 200, \
        f"{etype and etype.type}: {rep.status.code} {rep.status.message}"
    return pr


def read_reply(outbox, after_seq, max_events=0):
    """What a service's events.read answers at once from `outbox` (StoredEvents by seq)."""
    return events_pb2.ReadReply(events=[e for e in outbox if e.seq > after_seq][:max_events or 100],
                                last_seq=len(outbox))


class FakeBroker:
    """The test in samordna-broker's place: a ROUTER on a loopback port that a service of
    ours connects to as its broker, so the test writes and checks every frame itself (7/MDP
    worker frames, the x-samordna/1 extension, Caller frames, batches). It is how a test hands
    a service authenticated callers without CURVE: the real broker passes identities only
    once CURVE is configured.

    `outbox`, when given (a list of StoredEvent, which the test may grow, or fill through
    `store`), also answers the service's own client as the followed registry would:
    events.read at once from that outbox, 404 to anything else. Without it a client frame
    is not a worker frame and fails the test. `curve` configures the socket before it binds
    (e.g. as a CURVE server). Waits are upper bounds, scaled by SLOW."""

    def __init__(self, port=None, outbox=None, curve=None):
        self.port = port or free_port()
        self.ep = f"tcp://127.0.0.1:{self.port}"
        self.sock = CTX.socket(zmq.ROUTER)
        self.sock.linger = 0
        if curve:
            curve(self.sock)
        self.sock.bind(self.ep)
        self.outbox = outbox
        self.worker = None      # the routing id of the worker that sent READY
        self.identity = False   # whether requests carry a Caller frame (accepted extension)
        self.next_id = 0        # the last request id `call` used

    def close(self):
        self.sock.close(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def store(self, etype, data, source="fmov"):
        """Appends an event to the outbox served to the service's client (ids r1, r2, …)."""
        if self.outbox is None:
            self.outbox = []
        seq = len(self.outbox) + 1
        self.outbox.append(events_pb2.StoredEvent(
            seq=seq, event=event(etype, data, source=source, eid=f"r{seq}")))

    def recv(self, timeout=5.0):
        """The next frames from any peer, as the ROUTER gives them."""
        assert self.sock.poll(int(timeout * SLOW * 1000)), "nothing from the worker"
        return self.sock.recv_multipart()

    def _serve_client(self, f):
        # [client, "", "MDPC01", service, Request]
        req = envelope_pb2.Request.FromString(f[4])
        rep = envelope_pb2.Reply(id=req.id)
        if req.method == "events.read":
            rr = events_pb2.ReadRequest.FromString(req.body)
            rep.status.code = 200
            rep.body = read_reply(self.outbox, rr.after_seq, rr.max).SerializeToString()
        else:
            rep.status.code = 404
            rep.status.message = "not here"
        self.sock.send_multipart([f[0], b"", MDPC, f[3], rep.SerializeToString()])

    def recv_cmd(self, cmd, timeout=5.0, skip=(HEARTBEAT,)):
        """Next frame set with the given command, skipping heartbeats (and `skip`); any other
        command fails. Client frames are answered on the way when there is an outbox."""
        end = time.time() + timeout * SLOW
        while time.time() < end:
            f = self.recv(max(0.01, end - time.time()) / SLOW)
            if self.outbox is not None and len(f) == 5 and f[2] == MDPC:
                self._serve_client(f)
                continue
            assert f[1] == b"" and f[2] == MDPW, f"bad worker frames {f[:3]}"
            if f[3] == cmd:
                return f
            assert f[3] in skip, f"unexpected command {f[3]!r}"
        raise AssertionError(f"no command {cmd!r}")

    def accept(self, service=None, identity=True, credit=None, batch=False, extra="",
               timeout=10.0):
        """Waits for READY (from `service`, when given), checks that it offers the samordna
        extension (credit, identity, batch) and answers it as samordna-broker does: with the
        worker's credit unless `credit` is given, identity and batch as asked, and `extra`
        tokens. Returns the extension the worker offered."""
        # Replies of a killed predecessor may still be queued: they are not the new worker's.
        f = self.recv_cmd(READY, timeout, skip=(HEARTBEAT, REPLY))
        self.worker = f[0]
        if service is not None:
            assert f[4] == service.encode(), f[4]
        ext = f[5].decode()
        assert ext.startswith("x-samordna/1") and "credit=" in ext and "identity" in ext, ext
        assert "batch" in ext.split(), ext
        self.identity = identity
        accepted = "x-samordna/1 credit=%s" % (credit or ext.split("credit=")[1].split()[0])
        if identity:
            accepted += " identity"
        if batch:
            accepted += " batch"
        accepted += extra
        self.sock.send_multipart([self.worker, b"", MDPW, HEARTBEAT, accepted.encode()])
        return ext

    def request(self, method, body=b"", rid=1, client=b"C1", caller=None):
        """A plain REQUEST; with a Caller frame (an insecure admin unless `caller` is given)
        when identity was accepted."""
        req = envelope_pb2.Request(id=rid, method=method, body=body if isinstance(body, bytes)
                                   else body.SerializeToString())
        frames = [self.worker, b"", MDPW, REQUEST, client, b""]
        if self.identity:
            c = caller or envelope_pb2.Caller(role="admin", insecure=True)
            frames.append(c.SerializeToString())
        frames.append(req.SerializeToString())
        self.sock.send_multipart(frames)

    def reply(self, timeout=5.0):
        """The next plain REPLY as (client, Reply)."""
        f = self.recv_cmd(REPLY, timeout)
        assert len(f) == 7 and f[5] == b"", f"not a plain REPLY: {f[3:]}"
        rep = envelope_pb2.Reply()
        rep.ParseFromString(f[6])
        return f[4], rep

    def call(self, method, body=b"", caller=None, reply_type=None, timeout=5.0):
        """One request (the next id) and its reply, replies to other ids passed over; returns
        (Reply, decoded body or None), as Client.call."""
        self.next_id += 1
        rid = self.next_id
        self.request(method, body, rid=rid, caller=caller)
        end = time.time() + timeout * SLOW
        while True:
            _, rep = self.reply(max(0.01, end - time.time()) / SLOW)
            if rep.id == rid:
                break
        return rep, _decoded(rep, reply_type)

    def publish(self, ev, caller=None, timeout=5.0):
        """events.publish of `ev` (as samtest.publish takes it) by `caller`."""
        return self.call("events.publish", _publish_body(ev), caller, events_pb2.PublishReply,
                         timeout)

    def item(self, method, body=b"", rid=1, client=b"C1", caller=None):
        """One request as a Batch item, with a Caller when identity was accepted."""
        req = envelope_pb2.Request(id=rid, method=method, body=body)
        item = envelope_pb2.Batch.Item(client=client, body=[req.SerializeToString()])
        if self.identity:
            c = caller or envelope_pb2.Caller(role="admin", insecure=True)
            item.caller = c.SerializeToString()
        return item

    def batch(self, *items, raw=None):
        """A REQUEST to a batch worker: "" "MDPW01" 0x02 Batch (or `raw` bytes as the Batch)."""
        frame = raw if raw is not None else envelope_pb2.Batch(item=list(items)).SerializeToString()
        self.sock.send_multipart([self.worker, b"", MDPW, REQUEST, frame])

    def batch_replies(self, n, timeout=5.0):
        """Batch REPLYs until they hold n replies: ([(client, Reply)], size of each frame)."""
        got, sizes = [], []
        while len(got) < n:
            f = self.recv_cmd(REPLY, timeout)
            assert len(f) == 5, f"a REPLY to a batch broker with {len(f) - 4} frames"
            batch = envelope_pb2.Batch()
            batch.ParseFromString(f[4])
            assert batch.item, "an empty Batch"
            sizes.append(len(f[4]))
            for item in batch.item:
                assert len(item.body) == 1 and not item.caller, item
                rep = envelope_pb2.Reply()
                rep.ParseFromString(item.body[0])
                got.append((item.client, rep))
        assert len(got) == n, f"{len(got)} replies, expected {n}"
        return got, sizes


class NotifySocket:
    """What systemd's NOTIFY_SOCKET is to a service: a Unix datagram socket in the test's
    scratch space. `env` is for the process's environment; `recv()` is the next message."""

    def __init__(self, folder):
        import socket as _socket
        self.path = os.path.join(folder, "notify.sock")
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(10 * SLOW)
        self.env = {"NOTIFY_SOCKET": self.path}

    def recv(self):
        return self.sock.recv(256)

    def close(self):
        self.sock.close()


def main():
    """Runs every test_* function of the calling module, in file order."""
    mod = sys.modules["__main__"]
    only = sys.argv[1:]
    tests = [(n, f) for n, f in vars(mod).items() if n.startswith("test_") and callable(f)]
    tests.sort(key=lambda nf: nf[1].__code__.co_firstlineno)
    passed = failed = skipped = 0
    for name, fn in tests:
        if only and name not in only:
            continue
        start = time.time()
        # a test that hangs shows where: every thread's stack, long before CTest's timeout
        faulthandler.dump_traceback_later(HANG_S * SLOW, exit=False)
        try:
            fn()
            passed += 1
            print(f"ok   {name} ({time.time() - start:.2f}s)", flush=True)
        except Skip as why:
            skipped += 1
            print(f"skip {name}: {why}", flush=True)
        except Exception:  # a failed assert or anything else: report, go on
            failed += 1
            print(f"FAIL {name}", flush=True)
            traceback.print_exc()
            for p in PROCS:
                if os.path.exists(p.logpath):
                    print(f"--- last lines of {p.logpath}")
                    print("\n".join(p.logtext().splitlines()[-25:]))
        finally:
            faulthandler.cancel_dump_traceback_later()
            for p in list(PROCS):
                if p.alive():
                    p.kill9()
                PROCS.remove(p)
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""),
          flush=True)
    sys.exit(1 if failed else SKIP_EXIT if skipped else 1 if passed == 0 else 0)
