"""samtest — the harness of samordna's integration tests.

Tests start the real binaries on ephemeral loopback ports, talk to them over real ZeroMQ
sockets (pyzmq), and assert real outcomes. Each test module defines functions named test_*
and ends with `samtest.main()`, which runs them in order, prints one line per test and a
closing 'N passed, N failed' line, and exits non-zero when any failed.

Environment (set by CTest, see tests/CMakeLists.txt): SAMORDNA_BIN (executables),
SAMORDNA_PYGEN (generated *_pb2.py), SAMORDNA_TESTDATA (scratch folder), SAMORDNA_SRC.
"""
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

import zmq  # noqa: E402
from samordna.v1 import envelope_pb2  # noqa: E402,F401

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
        self.args = [os.path.join(BIN, args[0])] + list(args[1:])
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


def main():
    """Runs every test_* function of the calling module, in file order."""
    mod = sys.modules["__main__"]
    only = sys.argv[1:]
    tests = [(n, f) for n, f in vars(mod).items() if n.startswith("test_") and callable(f)]
    tests.sort(key=lambda nf: nf[1].__code__.co_firstlineno)
    passed = failed = 0
    for name, fn in tests:
        if only and name not in only:
            continue
        start = time.time()
        try:
            fn()
            passed += 1
            print(f"ok   {name} ({time.time() - start:.2f}s)", flush=True)
        except Exception:  # a failed assert or anything else: report, go on
            failed += 1
            print(f"FAIL {name}", flush=True)
            traceback.print_exc()
            for p in PROCS:
                if os.path.exists(p.logpath):
                    print(f"--- last lines of {p.logpath}")
                    print("\n".join(p.logtext().splitlines()[-25:]))
        finally:
            for p in list(PROCS):
                if p.alive():
                    p.kill9()
                PROCS.remove(p)
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed or passed == 0 else 0)
