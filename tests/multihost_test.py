"""multihost_test — samordna across hosts (issue #16): three hosts made of Linux network
namespaces, each with its own addresses, ports and loopback, joined by a bridge in a fourth
namespace (the "switch"). What a host runs sees the others only through that bridge.

    h1 10.231.X.1   etcd member, broker, an instance of every service
    h2 10.231.X.2   etcd member, broker, an instance of every service
    h3 10.231.X.3   etcd member, an instance of every service; the publisher and the webhook
                    receiver (this test process)
    sw              the bridge; h1, h2 and h3 each have a veth pair to it

X comes from the test's pid, and so do the namespaces' names (sammh<pid>h1, …): two runs never
share one. The test makes everything itself and removes it at the end however it ends, and
first removes what an earlier run of it left behind when it was killed (namespaces named
sammh<pid>… whose pid is gone, and the processes still in them). Without root, or where a
network namespace cannot be made, it is skipped, saying so; CI runs it as root.

The test process itself is h3: before it opens a socket, its main thread joins h3's network
namespace (setns(2)), so its threads, sockets and children all live there. Every other process
is started with `ip netns exec HOST …` and killed as a host dies: kill -9 of every process
`ip netns pids HOST` lists. The brokers bind the hosts' addresses, so they run with CURVE (an
--insecure broker takes loopback only): one broker certificate for both, one service
certificate for every instance, an admin certificate for the publisher and samctl, all made
with `samctl keys new`. etcd (Debian's etcd-server 3.4) is a cluster of three, one member per
host, so that losing one host keeps its quorum.

test_the_hosts_and_a_service_across_them: the harness alone — the cluster, the brokers, a
registry on h1 answering the publisher on h3 through both brokers, h1 killed whole and started
again with its store intact, etcd keeping its quorum meanwhile.

test_hosts_killed_under_load: every service with an instance on each host, started
`--replica elect --etcd … --sync-standby` (docs/scaling.md, "Across hosts"): a primary and two
standbys, so that with one host down a primary still has a standby to confirm its writes. The
publisher publishes a known stream into registry, status and grants through both brokers, a
webhook subscription takes every registry event. h1 (the primaries' host, as ping says) is
killed whole under the load, the time until the publisher's next acknowledgement printed and
bounded; h1 started again (its instances come back as standbys and catch up; an old primary
whose tail diverged moves its store aside and exits 3, and is started once more, as a
supervisor would); the primaries handed to h2 (samctl promote), and h2 killed the same way.
At the end every acknowledged event is in its owner's outbox exactly once, the outboxes of all
three instances byte for byte the same, every registry event delivered to the webhook, the
grants ledger verifies, and every process stops cleanly.
"""
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request

import samtest
from samtest import MDPC, zmq
from notify_receivers import WebhookReceiver
from samordna.v1 import (envelope_pb2, events_pb2, grants_pb2, notify_pb2, registry_pb2,
                         status_pb2)

PREFIX = "sammh"  # every namespace of this test is named sammh<pid><host>
HOSTS = ["h1", "h2", "h3"]
SERVICES = ["registry", "status", "grants", "notify"]
STREAMED = ["registry", "status", "grants"]  # the services the publisher's stream goes to
BROKER_PORT = 5555  # every host has ports of its own: the same port on each is no clash
ETCD_CLIENT, ETCD_PEER = 2379, 2380
FIXTURE = os.path.join(samtest.SRC, "deploy", "examples", "ostfold-2019.json")
TRY_S = 1.0  # a request without an answer this long goes again, same id, to the other broker
# An upper bound on the time from a host's death to the publisher's next acknowledgement:
# the leader's lease running out (--etcd-ttl-ms 2000), an election, a promotion, the
# brokers learning the new primary, and the publisher's tries. Generous, scaled.
RESUME_BOUND_S = 30
CLONE_NEWNET = 0x40000000
# libcurl and urllib honour these: a proxy of the machine's must not carry a request meant
# for an address inside the namespaces.
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
              "ALL_PROXY", "no_proxy", "NO_PROXY")


def log(*words):
    print(f"[{time.monotonic() - T0:7.2f}] multihost:", *words, flush=True)


T0 = time.monotonic()
IP = shutil.which("ip")
ETCD = shutil.which("etcd")
LIBC = ctypes.CDLL(None, use_errno=True)


def ip(*args, check=True):
    """One `ip` command; its stderr in the error when it fails."""
    r = subprocess.run([IP, *args], capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


def _setns(path):
    """Moves the calling thread into the network namespace at `path`."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if LIBC.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _namespaces():
    """The names `ip netns list` shows."""
    r = ip("netns", "list", check=False)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def _netns_pids(ns):
    r = ip("netns", "pids", ns, check=False)
    return [int(p) for p in r.stdout.split() if p.isdigit()]


def _remove_namespace(ns):
    """Kills what still runs in `ns` (processes this test started there) and deletes it."""
    for pid in _netns_pids(ns):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    ip("netns", "delete", ns, check=False)


def remove_leftovers():
    """Namespaces an earlier run of this test left behind when it was killed: named
    sammh<pid>… with that pid gone (ours too, from an earlier test of this process)."""
    for ns in _namespaces():
        m = re.fullmatch(PREFIX + r"(\d+)(h\d|sw)", ns)
        if m and (int(m.group(1)) == os.getpid() or not _pid_alive(int(m.group(1)))):
            log(f"removing namespace {ns}, left by an earlier run")
            _remove_namespace(ns)


class Network(samtest.Closing):
    """The three hosts and the switch. Joins h3 (the test process's main thread) once made;
    close() comes back to the namespace the test began in and removes them all."""

    def __init__(self):
        if os.geteuid() != 0:
            raise samtest.Skip("network namespaces need root (CI runs this test as root)")
        if not IP:
            raise samtest.Skip("no ip command (Debian package iproute2)")
        remove_leftovers()
        tag = f"{PREFIX}{os.getpid()}"
        self.ns = {h: tag + h for h in HOSTS}
        self.switch = tag + "sw"
        self.subnet = f"10.231.{os.getpid() % 250 + 1}"
        self.addr = {h: f"{self.subnet}.{i + 1}" for i, h in enumerate(HOSTS)}
        self.home = None
        self.ctx = None
        self.made = []
        r = ip("netns", "add", self.switch, check=False)
        if r.returncode != 0:
            raise samtest.Skip(f"cannot make a network namespace here: {r.stderr.strip()}")
        self.made.append(self.switch)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self):
        ip("-n", self.switch, "link", "set", "lo", "up")
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "up")
        for h in HOSTS:
            ns = self.ns[h]
            ip("netns", "add", ns)
            self.made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
            # made inside the host: no interface of the test's ever shows in the namespace it
            # began in, so none can clash with another's
            ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "p" + h,
               "netns", self.switch)
            ip("-n", ns, "addr", "add", f"{self.addr[h]}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", self.switch, "link", "set", "p" + h, "master", "br0")
            ip("-n", self.switch, "link", "set", "p" + h, "up")
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        _setns(f"/run/netns/{self.ns['h3']}")
        # ZeroMQ's I/O thread opens the sockets' connections, in the namespace of the thread
        # that started it: a context of this network's own, started now, in h3 (samtest's
        # would stay in an earlier test's h3, gone by now)
        self.ctx = zmq.Context()
        for h in HOSTS:  # the bridge forwards: every host reaches every other
            samtest.wait_for(lambda h=h: _tcp_refused_or_open(self.addr[h], 9), 10,
                             f"{h} ({self.addr[h]}) reachable from h3")
        log(f"hosts {', '.join(f'{h} {self.addr[h]}' for h in HOSTS)} on a bridge in "
            f"{self.switch}")

    def close(self):
        if self.ctx is not None:
            self.ctx.destroy(linger=0)
            self.ctx = None
        if self.home is not None:
            if LIBC.setns(self.home, CLONE_NEWNET) != 0:
                log("could not go back to the first network namespace")
            os.close(self.home)
            self.home = None
        for ns in reversed(self.made):
            _remove_namespace(ns)
        self.made = []
        left = [ns for ns in _namespaces() if ns in (self.switch, *self.ns.values())]
        assert not left, f"namespaces not removed: {left}"


def _tcp_refused_or_open(addr, port):
    """True when addr answers a TCP connect at all (an open port or a refusal): the host is
    reachable; False when nothing answers within a moment."""
    import socket
    with socket.socket() as s:
        s.settimeout(0.3)
        try:
            s.connect((addr, port))
            return True
        except ConnectionRefusedError:
            return True
        except OSError:
            return False


def _port_open(addr, port):
    import socket
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((addr, port)) == 0


def _clean_env():
    return {k: v for k, v in os.environ.items() if k not in PROXY_VARS}


def _die_with_test():
    """In a child before exec: SIGKILL when the test process dies (a CTest timeout kills it
    with no chance to clean up), so that no etcd or service outlives it in a namespace.
    `ip netns exec` keeps it across its exec of the program."""
    PR_SET_PDEATHSIG = 1
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class HostProc(samtest.Proc):
    """A process of one host: `ip netns exec NS program …`, logged as samtest.Proc does, and
    in samtest.PROCS so the harness kills whatever a failed test left running. `ours` is a
    samordna program (from SAMORDNA_BIN, given --now on the test's clock when there is one)."""

    def __init__(self, host, name, args, ours=True):
        self.name = f"{host.name}-{name}"
        self.host = host
        program = os.path.join(samtest.BIN, args[0]) if ours else args[0]
        self.args = [IP, "netns", "exec", host.ns, program, *args[1:],
                     *(samtest.now_args() if ours else [])]
        samtest.Proc.count += 1
        self.logpath = os.path.join(host.dir, "logs", f"{name}-{samtest.Proc.count}.log")
        os.makedirs(os.path.dirname(self.logpath), exist_ok=True)
        self.log = open(self.logpath, "ab")
        self.p = subprocess.Popen(self.args, stdout=self.log, stderr=self.log, env=_clean_env(),
                                  preexec_fn=_die_with_test)
        samtest.PROCS.append(self)
        host.procs.append(self)


class Host:
    """One host: its namespace, address, folder (its stores, etcd's data, its logs) and the
    processes started on it, with how to start each again after the host's death."""

    def __init__(self, net, name, root):
        self.net, self.name = net, name
        self.ns, self.addr = net.ns[name], net.addr[name]
        self.dir = os.path.join(root, name)
        os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)
        self.procs = []    # every HostProc started here, the dead ones too
        self.members = {}  # name -> (args, ours): what start() starts again

    def start(self, name, args, ours=True):
        self.members[name] = (args, ours)
        return HostProc(self, name, args, ours)

    def current(self, name):
        """The newest process started under `name`."""
        return [p for p in self.procs if p.name == f"{self.name}-{name}"][-1]

    def kill(self):
        """kill -9 of every process in the host's namespace, as a power cut; returns how many.
        Every one is a process of this test (started here by it)."""
        pids = _netns_pids(self.ns)
        ours = {p.p.pid for p in self.procs if p.alive()}
        assert set(pids) <= ours, f"{self.name}: processes not started by the test: " \
                                  f"{set(pids) - ours}"
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in self.procs:
            if p.alive():
                p.p.wait(10)
        assert not _netns_pids(self.ns), f"{self.name}: processes left after kill -9"
        return len(pids)

    def restart(self):
        """Starts again every process the host had, in the order first started."""
        for name, (args, ours) in self.members.items():
            HostProc(self, name, args, ours)


# ---- the suite on the hosts --------------------------------------------------------------

class Keys:
    """The certificates, made with `samctl keys new` (tests/security_test.py does the same):
    the brokers' pair, one service certificate for every instance, the admin's."""

    def __init__(self, folder):
        self.dir = os.path.join(folder, "keys")
        self.trusted = os.path.join(folder, "trusted")
        os.makedirs(self.trusted, exist_ok=True)
        self.broker = self._new("broker", "broker", "broker")
        self.service = self._new("fmov", "service", "services", services=SERVICES)
        self.admin = self._new("fmov", "admin", "admin")

    def _new(self, agency, role, name, services=()):
        args = [os.path.join(samtest.BIN, "samctl"), "keys", "new", "--agency", agency,
                "--role", role, "--name", name, "--out", self.dir]
        for svc in services:
            args += ["--service", svc]
        r = subprocess.run(args, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        public = os.path.join(self.dir, name + ".cert")
        if role != "broker":
            shutil.copy(public, os.path.join(self.trusted, name + ".cert"))
        text = open(public + "_secret").read()
        keys = {k: re.search(k + r' = "(.{40})"', text).group(1)
                for k in ("public-key", "secret-key")}
        return {"public": public, "secret": public + "_secret", **keys}

    def curve(self, sock):
        """Makes `sock` a CURVE client of the brokers, as the admin."""
        sock.curve_publickey = self.admin["public-key"].encode()
        sock.curve_secretkey = self.admin["secret-key"].encode()
        sock.curve_serverkey = self.broker["public-key"].encode()


class Cluster(samtest.Closing):
    """The network, the keys, etcd on every host and a broker on h1 and h2."""

    def __init__(self, name):
        self.net = Network()
        try:
            self.root = samtest.scratch(name)
            self.keys = Keys(self.root)
            self.hosts = {h: Host(self.net, h, self.root) for h in HOSTS}
            self.eps = [f"tcp://{self.hosts[h].addr}:{BROKER_PORT}" for h in ("h1", "h2")]
            self.etcd_urls = [f"http://{self.hosts[h].addr}:{ETCD_CLIENT}" for h in HOSTS]
            self._etcd()
            for h in ("h1", "h2"):
                self._broker(self.hosts[h])
        except BaseException:
            self.close()
            raise

    def close(self):
        for p in list(samtest.PROCS):
            if isinstance(p, HostProc) and p.alive():
                p.kill9()
        self.net.close()

    # etcd: one member per host
    def _etcd(self):
        if not ETCD:
            raise samtest.Skip("etcd is not installed (Debian package etcd-server)")
        peers = ",".join(f"{h}=http://{self.hosts[h].addr}:{ETCD_PEER}" for h in HOSTS)
        token = os.path.basename(self.net.ns["h1"])  # unique per run
        for h in HOSTS:
            a = self.hosts[h].addr
            self.hosts[h].start("etcd", [
                ETCD, "--name", h, "--data-dir", os.path.join(self.hosts[h].dir, "etcd"),
                "--listen-peer-urls", f"http://{a}:{ETCD_PEER}",
                "--initial-advertise-peer-urls", f"http://{a}:{ETCD_PEER}",
                "--listen-client-urls", f"http://{a}:{ETCD_CLIENT}",
                "--advertise-client-urls", f"http://{a}:{ETCD_CLIENT}",
                "--initial-cluster", peers, "--initial-cluster-token", token,
                "--initial-cluster-state", "new", "--logger", "zap", "--log-level", "warn"],
                ours=False)
        for url in self.etcd_urls:
            samtest.wait_for(lambda url=url: etcd_healthy(url), 30, f"etcd at {url} healthy")
        members = etcd_call(self.etcd_urls[2], "/v3/cluster/member/list", {})["members"]
        assert len(members) == 3, members
        log(f"etcd: a cluster of {len(members)} members, one per host")

    def _broker(self, host):
        host.start("broker", ["samordna-broker", "--bind", f"tcp://{host.addr}:{BROKER_PORT}",
                              "--curve-dir", self.keys.trusted, "--cert",
                              self.keys.broker["secret"]])
        samtest.wait_for(lambda: _port_open(host.addr, BROKER_PORT), 10,
                         f"the broker on {host.name}")

    def service_args(self, svc, host, *extra):
        args = [f"samordna-{svc}"]
        for ep in self.eps:
            args += ["--broker", ep]
        args += ["--data-dir", os.path.join(host.dir, "data"), "--cert",
                 self.keys.service["secret"], "--server-key", self.keys.broker["public"],
                 "--instance", f"{svc}-{host.name}"]
        if svc == "notify":
            args += ["--retry-schedule", "100ms,200ms,400ms,800ms,1s,2s,5s"]
        return args + list(extra)

    def samctl(self, *args, timeout=120):
        """samctl on h3 (this process's namespace), as the admin, through both brokers."""
        brokers = [a for ep in self.eps for a in ("--broker", ep)]
        return subprocess.run([os.path.join(samtest.BIN, "samctl"), *brokers, "--cert",
                               self.keys.admin["secret"], "--server-key",
                               self.keys.broker["public"], *args],
                              capture_output=True, text=True, timeout=timeout, env=_clean_env())


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def etcd_call(url, path, body, timeout=2.0):
    """One call of etcd's v3 JSON API (POST, JSON in and out)."""
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with _NO_PROXY.open(req, timeout=timeout) as r:
        return json.loads(r.read())


def etcd_healthy(url):
    try:
        with _NO_PROXY.open(url + "/health", timeout=1.0) as r:
            return json.loads(r.read()).get("health") == "true"
    except (OSError, ValueError):
        return False


def etcd_put_get(url, key, value):
    """A write and a read back through the member at `url`: the cluster has its quorum."""
    import base64
    b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    etcd_call(url, "/v3/kv/put", {"key": b64(key), "value": b64(value)}, timeout=5)
    kvs = etcd_call(url, "/v3/kv/range", {"key": b64(key)}, timeout=5).get("kvs", [])
    return kvs and base64.b64decode(kvs[0]["value"]).decode() == value


# ---- the publisher -----------------------------------------------------------------------

class Publisher:
    """A plain 7/MDP client of both brokers, as tools/chaos's and docs/protocol.md's recipe
    ('Clients of several brokers'): one DEALER per broker with ZMQ_IMMEDIATE, CURVE as the
    admin; `window` requests in flight, each sent again with its id to the other broker when
    its try passes without an answer, 429/503/504 sent again a moment later. Every 200 is
    recorded with when it came and when its request was first sent."""

    def __init__(self, net, eps, keys, window=32):
        self.socks = []
        for ep in eps:
            s = net.ctx.socket(zmq.DEALER)
            s.linger = 0
            s.setsockopt(zmq.IMMEDIATE, 1)
            keys.curve(s)
            s.connect(ep)
            self.socks.append(s)
        self.poller = zmq.Poller()
        for s in self.socks:
            self.poller.register(s, zmq.POLLIN)
        self.window = window
        self.next_id = 1
        self.pending = {}  # rid -> dict(service, req fields, first, sent, done)
        self.retry = []    # (when, rid)
        self.turn = 0
        self.resent = 0
        self.acks = []     # (when, service, first sent) of every 200, in order

    def _send(self, rid):
        p = self.pending[rid]
        req = envelope_pb2.Request(id=rid, method=p["method"], body=p["body"],
                                   timeout_ms=int(TRY_S * 1000), instance=p["instance"])
        frame = req.SerializeToString()
        for k in range(len(self.socks)):
            s = self.socks[(self.turn + k) % len(self.socks)]
            try:
                s.send_multipart([b"", MDPC, p["service"].encode(), frame], zmq.NOBLOCK)
                self.turn = (self.turn + k + 1) % len(self.socks)
                break
            except zmq.Again:
                continue  # not connected: the other broker
        p["sent"] = time.monotonic()  # unsent anywhere: tried again after TRY_S

    def send(self, service, method, body, done, instance=""):
        while len(self.pending) >= self.window:
            self.pump(0.05)
        rid = self.next_id
        self.next_id += 1
        self.pending[rid] = {"service": service, "method": method, "body": body,
                             "instance": instance, "first": time.monotonic(), "sent": 0,
                             "done": done}
        self._send(rid)
        return rid

    def pump(self, timeout):
        now = time.monotonic()
        waiting = {r for _, r in self.retry}
        for rid, p in list(self.pending.items()):
            if now - p["sent"] > TRY_S and rid not in waiting:
                self.resent += 1
                self._send(rid)
        due = [r for r in self.retry if r[0] <= now]
        self.retry = [r for r in self.retry if r[0] > now]
        for _, rid in due:
            if rid in self.pending:
                self._send(rid)
        for s, _ in self.poller.poll(int(timeout * 1000)):
            while True:
                try:
                    frames = s.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if len(frames) != 4 or frames[2].startswith(b"mmi."):
                    continue
                rep = envelope_pb2.Reply.FromString(frames[3])
                p = self.pending.get(rep.id)
                if p is None:
                    continue  # the second answer to a request sent twice
                if rep.status.code in (429, 503, 504):
                    self.retry.append((time.monotonic() + 0.2, rep.id))
                    p["sent"] = time.monotonic()
                    continue
                del self.pending[rep.id]
                if rep.status.code == 200:
                    self.acks.append((time.monotonic(), p["service"], p["first"]))
                p["done"](rep)

    def drain(self, timeout):
        end = time.monotonic() + timeout * samtest.SLOW
        while self.pending and time.monotonic() < end:
            self.pump(0.1)
        return len(self.pending)

    def call(self, service, method, body=b"", timeout=30, instance=""):
        """One request, waited for: its Reply, or None when none came by the deadline."""
        if not isinstance(body, (bytes, bytearray)):
            body = body.SerializeToString()
        out = []
        rid = self.send(service, method, bytes(body), out.append, instance=instance)
        end = time.monotonic() + timeout * samtest.SLOW
        while not out and time.monotonic() < end:
            self.pump(0.05)
        self.pending.pop(rid, None)
        return out[0] if out else None

    def close(self):
        for s in self.socks:
            s.close(0)


def publish_body(etype, msg, eid, source="fmov"):
    ev = samtest.event(etype, msg, eid=eid, source=source)
    return events_pb2.PublishRequest(event=ev).SerializeToString()


def event_of(i):
    """The i-th event of the known stream (tools/chaos's): (service, event id, body)."""
    svc = STREAMED[i % len(STREAMED)]
    eid = f"mh-{i:07d}"
    if svc == "registry":
        msg = registry_pb2.Agency(id=f"mh-etat-{i}", name=f"Etat {i}", kind=2)
        etype = "no.samordna.registry.agency.registered"
    elif svc == "status":
        msg = status_pb2.MeetingLogged(id=f"mh-meeting-{i}", kind="working", date="2019-03-01",
                                       pilot="halden", participants=["fmov"])
        etype = "no.samordna.status.meeting.logged"
    else:
        msg = grants_pb2.Scheme(id=f"mh-scheme-{i}", name=f"Scheme {i}", owner="fmov",
                                year=2020, currency="NOK")
        etype = "no.samordna.grants.scheme.created"
    return svc, eid, publish_body(etype, msg, eid)


class Load:
    """The publisher's stream, from a thread, at `rate` events/s; the acknowledged ids and
    the refusals by service."""

    def __init__(self, pub, rate):
        self.pub, self.rate = pub, rate
        self.acked = {svc: set() for svc in STREAMED}
        self.refused = []
        self.n = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.lock = threading.Lock()  # the publisher is this thread's while it runs

    def _run(self):
        t0 = time.monotonic()
        while not self.stop.is_set():
            if self.n > self.rate * (time.monotonic() - t0):
                self.pub.pump(0.01)
                continue
            svc, eid, body = event_of(self.n)

            def done(rep, svc=svc, eid=eid):
                if rep.status.code == 200:
                    self.acked[svc].add(eid)
                else:
                    self.refused.append((svc, eid, rep.status.code, rep.status.message))
            self.pub.send(svc, "events.publish", body, done)
            self.n += 1

    def start(self):
        self.thread.start()

    def finish(self, drain_s=60):
        self.stop.set()
        self.thread.join()
        return self.pub.drain(drain_s)

    def total(self):
        return sum(len(v) for v in self.acked.values())


def outbox(pub, service, instance=""):
    """Every StoredEvent of a service's outbox (of one instance, when named), in order, each
    as the bytes it came in."""
    out, after = [], 0
    while True:
        rep = pub.call(service, "events.read", events_pb2.ReadRequest(after_seq=after, max=1000),
                       instance=instance)
        assert rep is not None and rep.status.code == 200, \
            f"events.read of {service} {instance}: {rep and rep.status}"
        read = events_pb2.ReadReply.FromString(rep.body)
        if not read.events:
            return out
        out += [e.SerializeToString() for e in read.events]
        after = read.events[-1].seq


def ping(pub, service, instance="", timeout=2):
    """The PingReply of a service (of that instance, when named), or None."""
    rep = pub.call(service, "ping", instance=instance, timeout=timeout)
    if rep is None or rep.status.code != 200:
        return None
    return envelope_pb2.PingReply.FromString(rep.body)


# ---- the tests ---------------------------------------------------------------------------

def test_the_hosts_and_a_service_across_them():
    """The harness alone: a registry on h1 (a plain primary, today's mode) answers the
    publisher on h3 through either broker over CURVE; h1 killed whole, etcd keeps its quorum
    on h2 and h3, the publisher's requests wait; h1 started again, the registry answers with
    every acknowledged event still in its store."""
    with Cluster("multihost-harness") as c:
        h1 = c.hosts["h1"]
        h1.start("registry", c.service_args("registry", h1))
        pub = Publisher(c.net, c.eps, c.keys)
        try:
            samtest.wait_for(lambda: ping(pub, "registry", timeout=1) is not None, 20,
                             "the registry on h1 answering h3")
            # both brokers carry it: each socket alone
            for k, s in enumerate(pub.socks):
                only = Publisher(c.net, [c.eps[k]], c.keys)
                try:
                    p = ping(only, "registry", timeout=10)
                    assert p is not None and p.instance == "registry-h1", p
                finally:
                    only.close()
            # the broker's routing by Request.instance, which the scenario reads each
            # instance's outbox by
            p = ping(pub, "registry", instance="registry-h1", timeout=5)
            assert p is not None and p.instance == "registry-h1", p
            acked = []
            for i in range(30):
                svc, eid, body = event_of(i * 3)  # registry's events of the stream
                rep = pub.call(svc, "events.publish", body)
                assert rep is not None and rep.status.code == 200, rep and rep.status
                acked.append(eid)
            killed = h1.kill()
            log(f"h1 killed: {killed} processes (etcd, broker, registry)")
            assert killed == 3, killed
            url2, url3 = c.etcd_urls[1], c.etcd_urls[2]
            samtest.wait_for(lambda: _etcd_quorum(url2, url3), 20,
                             "etcd writing with h1 gone (h2 and h3 a quorum)")
            rep = pub.call("registry", "ping", timeout=2)
            assert rep is None, f"an answer with the registry's host dead: {rep.status}"
            h1.restart()
            samtest.wait_for(lambda: etcd_healthy(c.etcd_urls[0]), 30, "h1's etcd back")
            samtest.wait_for(lambda: ping(pub, "registry", timeout=1) is not None, 30,
                             "the registry on h1 answering again")
            ids = [events_pb2.StoredEvent.FromString(b).event.id
                   for b in outbox(pub, "registry")]
            assert [i for i in ids if i.startswith("mh-")] == acked, (len(ids), len(acked))
            r = c.samctl("ping", "registry")
            assert r.returncode == 0, r.stderr
        finally:
            pub.close()
        log(f"ok: h1 killed and started again, {len(acked)} events kept")


def _replication_built():
    """Whether the services of this build know --replica (docs/scaling.md, "Across hosts")."""
    r = subprocess.run([os.path.join(samtest.BIN, "samordna-registry"), "--help"],
                       capture_output=True, text=True, timeout=10)
    return "--replica" in r.stdout + r.stderr


def instance(svc, host):
    return f"{svc}-{host}"


def replica(ctl, svc, host):
    """The ReplicaState of svc's instance on host (ping through the broker, routed to that
    instance by Request.instance), or None when it does not answer."""
    p = ping(ctl, svc, instance=instance(svc, host), timeout=1)
    return p.replica if p is not None and p.HasField("replica") else None


def primaries(ctl, hosts):
    """{service: the host of its primary} for the services whose primary answers."""
    out = {}
    for svc in SERVICES:
        for h in hosts:
            r = replica(ctl, svc, h)
            if r is not None and r.role == "primary":
                out[svc] = h
    return out


class Supervised:
    """The service instances of one host, watched as a supervisor would: an instance that
    exits 3 (its store diverged from the new primary's and was moved aside: it starts again
    empty and catches up) is started once more; any other exit fails the test."""

    def __init__(self, host):
        self.host = host
        self.restarted = []  # the instances started again after exit 3

    def check(self):
        for svc in SERVICES:
            p = self.host.current(svc)
            if p.alive():
                continue
            rc = p.p.returncode
            assert rc == 3 and svc not in self.restarted, \
                f"{p.name} exited {rc}:\n" + "\n".join(p.logtext().splitlines()[-20:])
            # the store moved aside whole, where the log says: nothing deleted
            moved = re.search(r'replica\.diverged .*moved_to="?([^" ]+)', p.logtext())
            assert moved and os.path.isdir(moved.group(1)), \
                f"{p.name} exited 3 without a store moved aside:\n{p.logtext()[-2000:]}"
            log(f"{p.name} exited 3 (its tail diverged: store moved aside to "
                f"{os.path.basename(moved.group(1))}); started again")
            self.restarted.append(svc)
            args, ours = self.host.members[svc]
            HostProc(self.host, svc, args, ours)


def _caught_up(ctl, svc, standby, primary):
    """svc's instance on `standby` is a standby with every record its primary on `primary`
    had a moment before (its outbox head then)."""
    p = ping(ctl, svc, instance=instance(svc, primary), timeout=1)
    s = ping(ctl, svc, instance=instance(svc, standby), timeout=1)
    return p is not None and s is not None and s.HasField("replica") and \
        s.replica.role == "standby" and s.last_seq >= p.last_seq


def _all_primaries_on(ctl, host):
    return primaries(ctl, HOSTS) == {svc: host for svc in SERVICES}


def _promote(c, ctl, host):
    """Hands every service's primary to its instance on `host` (samctl promote), unless it is
    there already; waits until ping says so."""
    for svc, h in sorted(primaries(ctl, HOSTS).items()):
        if h != host:
            r = c.samctl("promote", svc, "--instance", instance(svc, host), "--wait-ms",
                         str(int(20000 * samtest.SLOW)))
            assert r.returncode == 0, f"samctl promote {svc} to {host}: {r.stderr}"
    samtest.wait_for(lambda: _all_primaries_on(ctl, host), 30, f"every primary on {host}")


VICTIMS = ["h1", "h2"]  # the hosts killed, in turn; h3 is the test's own


def test_hosts_killed_under_load():
    """Every service has an instance on each host: a primary and two standbys, so that with
    any one host down a primary in synchronous mode still has a standby to confirm its
    writes (with none it answers 503 until one is back). The primaries are on h1 for the
    first kill and handed to h2 (samctl promote) for the second: each kill is of the
    primaries' host."""
    if not _replication_built():
        raise samtest.Skip("this build's services have no --replica (replication across "
                           "hosts is not built yet)")
    with Cluster("multihost") as c:
        extra = ["--replica", "elect", "--etcd", ",".join(c.etcd_urls), "--etcd-ttl-ms", "2000",
                 "--sync-standby"]
        ctl = Publisher(c.net, c.eps, c.keys)  # the main thread's: pings, reads, setup
        pub = Publisher(c.net, c.eps, c.keys)  # the load's thread's
        hook = WebhookReceiver(host=c.hosts["h3"].addr)
        hook.server.handle_error = lambda *a: None  # notify killed mid-delivery: not our error
        try:
            # h1 first, so that its instances win the first elections
            for h in HOSTS:
                host = c.hosts[h]
                for svc in SERVICES:
                    host.start(svc, c.service_args(svc, host, *extra))
                want = "primary" if h == "h1" else "standby"
                for svc in SERVICES:
                    samtest.wait_for(lambda svc=svc: (replica(ctl, svc, h) or
                                                      envelope_pb2.ReplicaState()).role == want,
                                     30, f"{instance(svc, h)} {want}")
            assert _all_primaries_on(ctl, "h1"), primaries(ctl, HOSTS)
            log("every service: the primary on h1, standbys on h2 and h3")
            _setup(c, ctl, hook)
            load = Load(pub, RATE)
            load.start()
            kills, resumes, diverged = [], [], []
            try:
                samtest.wait_for(lambda: load.total() > RATE, 30, "the load going")
                for round_, name in enumerate(VICTIMS):
                    victim = c.hosts[name]
                    if round_:
                        _promote(c, ctl, name)
                        log(f"every primary handed to {name} (samctl promote) under the load")
                    assert _all_primaries_on(ctl, name), primaries(ctl, HOSTS)
                    acked_before = load.total()
                    t_kill = time.monotonic()
                    n = victim.kill()
                    kills.append((name, n))
                    log(f"kill {round_ + 1}: every process of {name} ({n}), the primaries' "
                        f"host, killed with {acked_before} events acknowledged")
                    resume = _resume_times(pub, t_kill)
                    resumes.append(resume)
                    log(f"kill {round_ + 1}: the first acknowledgement after it: " +
                        ", ".join(f"{svc} {t:.2f} s" for svc, t in resume.items()))
                    assert max(resume.values()) < RESUME_BOUND_S * samtest.SLOW, resume
                    alive = [h for h in HOSTS if h != name]
                    samtest.wait_for(lambda: len(primaries(ctl, alive)) == len(SERVICES), 30,
                                     f"a primary of every service on {' or '.join(alive)}")
                    log(f"kill {round_ + 1}: primaries now " + ", ".join(
                        f"{svc} {h}" for svc, h in sorted(primaries(ctl, alive).items())))
                    time.sleep(3)  # a while with the victim down, under the load
                    victim.restart()
                    sup = Supervised(victim)
                    samtest.wait_for(lambda: etcd_healthy(c.etcd_urls[HOSTS.index(name)]), 30,
                                     f"{name}'s etcd member back")
                    where = primaries(ctl, alive)
                    for svc in SERVICES:
                        samtest.wait_for(
                            lambda svc=svc: sup.check() or _caught_up(ctl, svc, name,
                                                                      where[svc]),
                            60, f"{instance(svc, name)} back as a standby, caught up")
                    diverged += [f"{name}-{svc}" for svc in sup.restarted]
                    log(f"{name} started again: every instance a standby, caught up" +
                        (f" ({', '.join(sup.restarted)} started once more after exit 3)"
                         if sup.restarted else ""))
                    # the whole suite up again, a while under the load before the next kill
                    now_acked = load.total()
                    samtest.wait_for(lambda: load.total() > now_acked + 3 * RATE, 60,
                                     "three seconds' worth of events acknowledged")
            finally:
                left = load.finish()
            assert not left, f"{left} requests never answered"
            assert not load.refused, f"refused: {load.refused[:5]}"
            _check_outboxes(ctl, load)
            hooked = _check_webhook(hook, load)
            report = ctl.call("grants", "grants.ledger.verify")
            assert report is not None and report.status.code == 200, report and report.status
            ledger = grants_pb2.LedgerReport.FromString(report.body)
            assert ledger.balanced, list(ledger.problems)[:3]
            # no instance or broker ended by itself, and every one stops cleanly
            for h in HOSTS:
                for name in [*SERVICES, *(["broker"] if h != "h3" else [])]:
                    p = c.hosts[h].current(name)
                    assert p.alive(), f"{p.name} exited {p.p.returncode} by itself"
                    assert p.stop() == 0, f"{p.name} did not stop cleanly"
            print(f"kills              {len(kills)}: " +
                  ", ".join(f"{h} ({n} processes)" for h, n in kills))
            print(f"events             {load.n} published, {load.total()} acknowledged (" +
                  ", ".join(f"{s} {len(load.acked[s])}" for s in STREAMED) + f"); "
                  f"{pub.resent} sent again")
            for k, (r, (h, _)) in enumerate(zip(resumes, kills)):
                print(f"resume after kill {k + 1} ({h}): {max(r.values()):.2f} s (" +
                      ", ".join(f"{s} {t:.2f} s" for s, t in r.items()) +
                      f"); bound {RESUME_BOUND_S * samtest.SLOW:.0f} s")
            print(f"diverged           {len(diverged)} old primaries moved their store aside "
                  f"and were started again" + (f" ({', '.join(diverged)})" if diverged else ""))
            print(f"webhook            {len(set(hooked))} registry events delivered, "
                  f"{len(hooked) - len(set(hooked))} duplicates")
            print(f"ledger             balanced, {ledger.entries} entries")
        finally:
            hook.close()
            pub.close()
            ctl.close()


RATE = 100  # events/s of the load: two cores run three hosts' etcd, brokers and services


def _resume_times(pub, t_kill):
    """Seconds from the kill to the first acknowledgement, by streamed service, of a request
    first sent after it (one sent before may have been answered by the dead primary)."""
    def firsts():
        out = {}
        for when, svc, first in list(pub.acks):
            if first >= t_kill and svc not in out:
                out[svc] = when - t_kill
        return out
    samtest.wait_for(lambda: len(firsts()) == len(STREAMED), RESUME_BOUND_S,
                     "an acknowledgement of every streamed service after the kill")
    return firsts()


def _setup(c, ctl, hook):
    """The fixture (grants schemes need their owner agency), the webhook subscription."""
    r = c.samctl("import", FIXTURE)
    assert r.returncode == 0, r.stderr
    sub = notify_pb2.Subscription(id="mh-hook", channel=notify_pb2.NOTIFY_CHANNEL_WEBHOOK,
                                  type="no.samordna.registry.*", url=hook.url)
    body = publish_body("no.samordna.notify.subscription.created",
                        notify_pb2.SubscriptionCreated(subscription=sub), "mh-setup-hook")
    rep = ctl.call("notify", "events.publish", body)
    assert rep is not None and rep.status.code == 200, rep and rep.status
    rep = ctl.call("notify", "notify.subscriptions.secret",
                   notify_pb2.SubscriptionSecretRequest(id="mh-hook"))
    assert rep is not None and rep.status.code == 200, rep and rep.status
    hook.secret = notify_pb2.SubscriptionSecretReply.FromString(rep.body).secret


def _check_outboxes(ctl, load):
    """Every acknowledged event in its owner's outbox exactly once; the primary's outbox and
    each standby's the same, byte for byte (the standbys given a while to catch up)."""
    where = primaries(ctl, HOSTS)
    for svc in SERVICES:
        prim = where[svc]
        a = outbox(ctl, svc, instance(svc, prim))
        for stand in HOSTS:
            if stand == prim:
                continue
            samtest.wait_for(lambda: _caught_up(ctl, svc, stand, prim), 60,
                             f"{instance(svc, stand)} caught up")
            b = outbox(ctl, svc, instance(svc, stand))
            if a != b:
                first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y),
                             min(len(a), len(b)))
                raise AssertionError(f"{svc}: the outboxes of {prim} ({len(a)} records) and "
                                     f"{stand} ({len(b)}) differ, first at record {first}")
        if svc not in STREAMED:
            continue
        ids = [events_pb2.StoredEvent.FromString(x).event.id for x in a]
        ours = [i for i in ids if i.startswith("mh-")]
        dup = len(ours) - len(set(ours))
        lost = load.acked[svc] - set(ours)
        assert not dup and not lost, f"{svc}: {len(lost)} acknowledged events lost " \
                                     f"(e.g. {sorted(lost)[:3]}), {dup} stored twice"
        log(f"{svc}: {len(a)} records, byte for byte the same on all three hosts; every one "
            f"of {len(load.acked[svc])} acknowledged events there once")


def _check_webhook(hook, load):
    """Every acknowledged registry event delivered to the webhook (duplicates apart),
    waiting as long as deliveries keep coming."""
    want = load.acked["registry"]
    end, seen = time.monotonic() + 60 * samtest.SLOW, 0
    while not want <= set(hook.ids()) and time.monotonic() < end:
        time.sleep(0.2)
        if len(hook.ids()) > seen:
            seen, end = len(hook.ids()), time.monotonic() + 60 * samtest.SLOW
    hooked = [i for i in hook.ids() if i.startswith("mh-")]
    missing = want - set(hooked)
    assert not missing, f"{len(missing)} of {len(want)} registry events never reached the " \
                        f"webhook, e.g. {sorted(missing)[:3]}"
    return hooked


def _etcd_quorum(*urls):
    try:
        return all(etcd_put_get(u, f"/{PREFIX}-probe", u) for u in urls)
    except (OSError, ValueError):
        return False


if __name__ == "__main__":
    samtest.main()
