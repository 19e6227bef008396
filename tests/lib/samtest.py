"""samtest — the harness of samordna's integration tests.

Tests start the real binaries on ephemeral loopback ports, talk to them over real ZeroMQ
sockets (pyzmq), and assert real outcomes. Each test module defines functions named test_*
and ends with `samtest.main()`, which runs them in order, prints one line per test and a
closing 'N passed, N failed' line, and exits non-zero when any failed. A test that cannot
run here raises Skip (saying why): it is counted as skipped, never as passed, and a module
with a skipped test and no failed one exits SKIP_EXIT, which CTest reports as skipped.

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
from samordna.v1 import envelope_pb2  # noqa: E402,F401

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


class Proc:
    """A real process of ours; its stderr goes to a log file that failures print."""

    count = 0

    def __init__(self, name, args, logdir=None, env=None):
        self.name = name
        self.args = [os.path.join(BIN, args[0])] + list(args[1:]) + now_args()
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


class Client:
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
        msg = None
        if reply_type is not None and rep.status.code == 200:
            msg = reply_type()
            msg.ParseFromString(rep.body)
        return rep, msg

    def mmi(self, name, body, timeout=5.0):
        self.sock.send_multipart([b"", MDPC, name.encode(), body])
        if not self.sock.poll(int(timeout * SLOW * 1000)):
            raise Silence("no MMI reply")
        return self.sock.recv_multipart()


class Worker:
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
