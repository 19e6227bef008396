"""Security across the suite: a CURVE broker with a certificate directory, the registry
serving through it with a service certificate, and callers holding admin, publisher, reader
and service certificates made with `samctl keys new`.

Checked: rightful callers work and their identity is recorded with each event; an unknown
key, a NULL-mechanism peer and a revoked key are refused (the revoked one on a connection that
was open before the removal too); a publisher may publish only as its own agency and change
only what it owns; a reader may not write; only a service certificate may register as a
worker; the broker and services refuse unsafe configurations.
"""
import os
import re
import shutil
import subprocess

import samtest
from samtest import CTX, DISCONNECT
import zmq
from samordna.v1 import envelope_pb2, events_pb2, notify_pb2 as N, registry_pb2 as R


def samctl(*args):
    return subprocess.run([os.path.join(samtest.BIN, "samctl")] + list(args),
                          capture_output=True, text=True, timeout=30)


class Cert:
    """A certificate pair written by `samctl keys new`."""

    # what the suite's one service certificate may offer, unless a test names its own
    SERVICES = ("registry", "status", "grants", "notify", "echo", "echo-sec")

    def __init__(self, folder, agency, role, name=None, services=None):
        args = ["keys", "new", "--agency", agency, "--role", role, "--out", folder]
        if name:
            args += ["--name", name]
        if role == "service":
            for svc in services or self.SERVICES:
                args += ["--service", svc]
        r = samctl(*args)
        assert r.returncode == 0, r.stderr
        self.name = name or (f"{agency}-{role}" if role != "broker" else "broker")
        self.public = os.path.join(folder, self.name + ".cert")
        self.secret = self.public + "_secret"
        text = open(self.secret).read()
        self.public_key = re.search(r'public-key = "(.{40})"', text).group(1)
        self.secret_key = re.search(r'secret-key = "(.{40})"', text).group(1)
        self.agency, self.role = agency, role


class Suite:
    """A CURVE broker over a trusted folder, a registry with a service certificate."""

    def __init__(self, name, registry=True):
        self.dir = samtest.scratch(name)
        self.keys = os.path.join(self.dir, "keys")
        self.trusted = os.path.join(self.dir, "trusted")
        os.makedirs(self.trusted)
        self.broker_cert = Cert(self.keys, "broker", "broker")
        self.certs = {}
        for agency, role in [("fmov", "admin"), ("nav-ost-viken", "publisher"),
                             ("imdi-ost", "publisher"), ("hiof", "reader"),
                             ("fmov", "service")]:
            self.certs[role if role != "publisher" else agency] = self.trust(
                Cert(self.keys, agency, role))
        self.broker, self.ep = samtest.broker("--curve-dir", self.trusted,
                                              "--cert", self.broker_cert.secret, insecure=False)
        self.registry = None
        if registry:
            self.registry = samtest.Proc(
                f"registry-{name}",
                ["samordna-registry", "--broker", self.ep, "--data-dir",
                 os.path.join(self.dir, "data"), "--cert", self.certs["service"].secret,
                 "--server-key", self.broker_cert.public])
            admin = self.client("admin")
            try:
                samtest.wait_for(lambda: self._pings(admin), 10, "registry through CURVE")
            finally:
                admin.close()

    def start(self, name):
        """Another service behind the same broker, with the service certificate."""
        proc = samtest.Proc(f"{name}-{os.path.basename(self.dir)}",
                            [f"samordna-{name}", "--broker", self.ep, "--data-dir",
                             os.path.join(self.dir, "data"), "--cert",
                             self.certs["service"].secret, "--server-key",
                             self.broker_cert.public])
        admin = self.client("admin")
        try:
            samtest.wait_for(lambda: self._pings(admin, name), 10, f"{name} through CURVE")
        finally:
            admin.close()
        return proc

    def trust(self, cert):
        shutil.copy(cert.public, os.path.join(self.trusted, cert.name + ".cert"))
        return cert

    def revoke(self, cert):
        os.unlink(os.path.join(self.trusted, cert.name + ".cert"))

    def curve(self, cert):
        def setup(sock):
            sock.curve_publickey = cert.public_key.encode()
            sock.curve_secretkey = cert.secret_key.encode()
            sock.curve_serverkey = self.broker_cert.public_key.encode()
        return setup

    def client(self, who):
        cert = who if isinstance(who, Cert) else self.certs[who]
        return samtest.Client(self.ep, curve=self.curve(cert))

    def worker(self, cert, service="echo", extension=None):
        w = samtest.Worker(self.ep, service, extension=extension, ready=False)
        w.sock.close(0)
        w.sock = CTX.socket(zmq.DEALER)
        w.sock.linger = 0
        if cert is not None:
            self.curve(cert)(w.sock)
        w.sock.connect(self.ep)
        return w

    @staticmethod
    def _pings(c, name="registry"):
        try:
            rep, _ = c.call(name, "ping", timeout=0.5)
            return rep.status.code == 200
        except AssertionError:
            return False

    def close(self):
        if self.registry:
            assert self.registry.stop() == 0
        assert self.broker.stop() == 0


def ce(etype, payload, source):
    """A PublishRequest of one registry event (`etype` after the type prefix)."""
    return samtest.publish_req("no.samordna.registry." + etype, payload, source=source)


def publish(c, etype, payload, source):
    rep, pr = samtest.publish(c, "registry", ce(etype, payload, source))
    return rep.status.code, rep.status.message, pr


def agency(aid, name):
    return R.Agency(id=aid, name=name, kind=R.AGENCY_KIND_STATE_REGIONAL)


def no_reply(c, service="registry", method="ping", timeout=1.0):
    """True when a call gets no answer at all (the handshake never completed)."""
    try:
        c.call(service, method, timeout=timeout)
    except samtest.Silence:  # a malformed reply is an answer, and fails the test
        return True
    return False


class suite:
    """A fresh Suite for one test (the harness stops every process after each test)."""

    def __init__(self, registry=True):
        self.registry = registry

    def __enter__(self):
        self.s = Suite("security", self.registry)
        return self.s

    def __exit__(self, *exc):
        if exc[0] is None:
            self.s.close()


def test_keys_new_writes_a_pair_with_metadata():
    folder = samtest.scratch("keys-new")
    c = Cert(folder, "nav-ost-viken", "publisher")
    assert oct(os.stat(c.secret).st_mode & 0o777) == "0o600"
    text = open(c.public).read()
    assert 'agency = "nav-ost-viken"' in text and 'role = "publisher"' in text
    assert "secret-key" not in text
    r = samctl("--json", "keys", "show", c.public)
    assert r.returncode == 0 and c.public_key in r.stdout and '"role":"publisher"' in r.stdout
    r = samctl("keys", "new", "--agency", "nav-ost-viken", "--role", "publisher", "--out", folder)
    assert r.returncode == 1 and "exists already" in r.stderr, r.stderr
    r = samctl("keys", "new", "--agency", "NAV", "--role", "publisher", "--out", folder)
    assert r.returncode == 1 and "agency" in r.stderr
    r = samctl("keys", "new", "--agency", "nav", "--role", "root", "--out", folder)
    assert r.returncode == 1 and "role" in r.stderr
    r = samctl("keys", "new", "--agency", "nav", "--out", folder)
    assert r.returncode == 2


def test_rightful_callers_work_and_identity_is_recorded():
    with suite() as s:
        admin, nav, reader = s.client("admin"), s.client("nav-ost-viken"), s.client("reader")
        try:
            code, msg, pr = publish(admin, "agency.registered", agency("fmov", "Fylkesmannen"),
                                    "fmov")
            assert code == 200, msg
            code, msg, pr2 = publish(nav, "agency.registered", agency("nav-ost-viken", "NAV Øst-Viken"),
                                     "nav-ost-viken")
            assert code == 200, msg
            rep, a = reader.call("registry", "registry.agencies.get", R.GetRequest(id="nav-ost-viken"),
                                 R.Agency)
            assert rep.status.code == 200 and a.name == "NAV Øst-Viken", rep.status
            rep, rr = reader.call("registry", "events.read", events_pb2.ReadRequest(after_seq=0),
                                  events_pb2.ReadReply)
            assert rep.status.code == 200, rep.status
            by_seq = {e.seq: e for e in rr.events}
            c1, c2 = by_seq[pr.seq].caller, by_seq[pr2.seq].caller
            assert (c1.agency, c1.role, c1.key, c1.insecure) == \
                ("fmov", "admin", s.certs["admin"].public_key, False), c1
            assert (c2.agency, c2.role, c2.key) == \
                ("nav-ost-viken", "publisher", s.certs["nav-ost-viken"].public_key), c2
        finally:
            for c in (admin, nav, reader):
                c.close()


def test_unknown_key_is_refused():
    with suite() as s:
        stranger = Cert(s.keys, "stranger", "admin")  # made, never trusted
        with s.client(stranger) as c:
            assert no_reply(c)


def test_null_mechanism_peer_is_refused():
    """Peers without CURVE get nowhere with a CURVE broker: a client's publish is never
    answered and nothing of it is stored; workers' READYs register nothing: a service only
    such a worker offers stays unknown, and requests for the registry one of them claims go
    to the rightful registry, none to it."""

    def sent(send, *args):
        """False when the message could not even be queued: libzmq drops the connection of a
        failed handshake, and a DEALER without one has nowhere to put it."""
        try:
            send(*args)
            return True
        except zmq.Again:
            return False

    with suite() as s:
        admin = s.client("admin")
        plain = samtest.Client(s.ep)  # no CURVE at all
        lone, claim = s.worker(None, "echo-null"), s.worker(None, "registry")
        for sock in (plain.sock, lone.sock, claim.sock):
            sock.sndtimeo = 500
        try:
            req = ce("agency.registered", agency("null-peer", "Null"), "fmov")
            if sent(plain.send, "registry", "events.publish", req):
                try:
                    rep = plain.recv(1.0)
                except samtest.Silence:
                    pass
                else:
                    raise AssertionError(f"a NULL-mechanism client got an answer: {rep}")
            sent(lone.ready)
            sent(claim.ready)
            # Were the READYs taken, the broker would hand the claiming worker some of these
            # pings (least recently used first) and they would go unanswered.
            for _ in range(20):
                rep, _ = admin.call("registry", "ping", timeout=5.0)
                assert rep.status.code == 200, rep.status
            assert admin.mmi("mmi.service", b"echo-null")[3] == b"404"
            assert lone.quiet(0.3) and claim.quiet(0.3)
            rep, _ = admin.call("registry", "registry.agencies.get", R.GetRequest(id="null-peer"))
            assert rep.status.code == 404, rep.status
            rep, rr = admin.call("registry", "events.read", events_pb2.ReadRequest(after_seq=0),
                                 events_pb2.ReadReply)
            assert rep.status.code == 200, rep.status
            assert req.event.id not in [e.event.id for e in rr.events], "the publish was stored"
        finally:
            for sock in (plain, lone, claim, admin):
                sock.close()


def test_publisher_may_publish_only_as_itself():
    with suite() as s:
        with s.client("nav-ost-viken") as nav:
            code, msg, _ = publish(nav, "agency.registered", agency("imdi-ost", "IMDi Øst"),
                                   "imdi-ost")
            assert code == 403 and "event.source" in msg and "nav-ost-viken" in msg, (code, msg)
            # Its own source, but someone else's agency: the registry refuses the change.
            code, msg, _ = publish(nav, "agency.registered", agency("imdi-ost", "IMDi Øst"),
                                   "nav-ost-viken")
            assert code == 403 and "agency.id" in msg, (code, msg)
            rep, _ = nav.call("registry", "registry.agencies.get", R.GetRequest(id="imdi-ost"),
                              R.Agency)
            assert rep.status.code == 404, rep.status


def test_publisher_changes_only_what_it_owns_in_notify():
    with suite() as s:
        notify = s.start("notify")
        nav, imdi = s.client("nav-ost-viken"), s.client("imdi-ost")

        def publish_notify(c, etype, msg, source):
            rep, _ = samtest.publish(c, "notify", samtest.event("no.samordna.notify." + etype,
                                                                msg, source=source))
            return rep.status.code, rep.status.message
        try:
            sub = N.Subscription(id="nav-inbox", channel=N.NOTIFY_CHANNEL_INBOX,
                                 type="no.samordna.grants.*")
            code, msg = publish_notify(nav, "subscription.created",
                                       N.SubscriptionCreated(subscription=sub), "nav-ost-viken")
            assert code == 200, (code, msg)
            code, msg = publish_notify(imdi, "subscription.deleted",
                                       N.SubscriptionDeleted(id="nav-inbox"), "imdi-ost")
            assert code == 403 and "nav-ost-viken" in msg, (code, msg)
            code, msg = publish_notify(imdi, "subscription.deleted",
                                       N.SubscriptionDeleted(id="nav-inbox"), "nav-ost-viken")
            assert code == 403 and "event.source" in msg, (code, msg)
            code, msg = publish_notify(nav, "subscription.deleted",
                                       N.SubscriptionDeleted(id="nav-inbox"), "nav-ost-viken")
            assert code == 200, (code, msg)
        finally:
            nav.close()
            imdi.close()
            assert notify.stop() == 0


def test_reader_may_not_write():
    with suite() as s:
        with s.client("reader") as reader:
            code, msg, _ = publish(reader, "agency.registered", agency("hiof", "Høgskolen i Østfold"),
                                   "hiof")
            assert code == 403 and "reader" in msg, (code, msg)
            rep, _ = reader.call("registry", "registry.agencies.get", R.GetRequest(id="hiof"),
                                 R.Agency)
            assert rep.status.code == 404


def _sent_away(s, cert, service, extension=None):
    """A worker with `cert` says READY for `service` and is answered DISCONNECT."""
    w = s.worker(cert, service, extension=extension)
    try:
        w.ready()
        command, _ = w.recv(5.0)
        assert command == DISCONNECT, command
    finally:
        w.close()


def test_client_certificate_may_not_register_as_worker():
    with suite() as s:
        for who in ("nav-ost-viken", "admin", "reader"):
            _sent_away(s, s.certs[who], "registry", "x-samordna/1 credit=4 identity")
        assert "only a certificate of role service may register" in \
            open(s.broker.logpath, errors="replace").read()
        # A service certificate may.
        w = s.worker(s.certs["service"], "echo-sec")
        admin = s.client("admin")
        try:
            w.ready()
            samtest.wait_for(lambda: admin.mmi("mmi.service", b"echo-sec")[3] == b"200", 5,
                             "echo-sec registered")
            rid = admin.send("echo-sec", "ping")
            client, body = w.recv_request()
            w.reply(client, envelope_pb2.Reply(id=rid, status=envelope_pb2.Status(code=200))
                    .SerializeToString())
            assert admin.recv().status.code == 200
        finally:
            w.disconnect()
            w.close()
            admin.close()


def test_revoked_key_is_refused_on_its_next_request():
    """Revocation is at once: the first request sent after the certificate is deleted is
    refused (the broker watches the folder with inotify), on the connection already open; a
    revoked key sending on is logged once per interval, not once per request."""
    with suite() as s:
        gone = s.trust(Cert(s.keys, "bufetat", "reader"))
        with s.client(gone) as c:
            samtest.wait_for(lambda: not no_reply(c, timeout=0.5), 5, "the new key trusted")
            rep, _ = c.call("registry", "ping")
            assert rep.status.code == 200
            s.revoke(gone)
            rep, _ = c.call("registry", "ping", timeout=2.0)  # the very next one
            assert rep.status.code == 401 and "revoked" in rep.status.message, rep.status
            for _ in range(50):
                rep, _ = c.call("registry", "ping", timeout=2.0)
                assert rep.status.code == 401, rep.status
        # and a new connection does not complete its handshake
        with s.client(gone) as fresh:
            assert no_reply(fresh)
        log = open(s.broker.logpath, errors="replace").read()
        refused = [line for line in log.splitlines() if "request.refused" in line and
                   "not trusted" in line]
        assert 1 <= len(refused) <= 2, refused  # 51 refusals, folded into one line


def test_a_service_certificate_offers_only_the_services_it_names():
    """A certificate made for status may not register as the registry and take its callers'
    requests; one made for the registry may."""
    with suite(registry=False) as s:
        status_cert = s.trust(Cert(s.keys, "fmov", "service", name="status-only",
                                   services=["status"]))
        registry_cert = s.trust(Cert(s.keys, "fmov", "service", name="registry-only",
                                     services=["registry"]))
        r = samctl("keys", "show", status_cert.public)
        assert r.returncode == 0 and "services status" in r.stdout, r.stdout
        admin = s.client("admin")
        _sent_away(s, status_cert, "registry")
        log = open(s.broker.logpath, errors="replace").read()
        assert "worker.refused" in log and "may offer only other services" in log, log[-2000:]
        # the hijacker never held a registry request: the one registered worker is the right one
        _sent_away(s, registry_cert, "registry-bound")  # not in its certificate either
        w = s.worker(registry_cert, "registry")
        try:
            w.ready()
            samtest.wait_for(lambda: admin.mmi("mmi.service", b"registry")[3] == b"200", 5,
                             "registry registered")
        finally:
            w.disconnect()
            admin.close()
        r = samctl("keys", "new", "--agency", "fmov", "--role", "service", "--out", s.keys,
                   "--name", "no-services")
        assert r.returncode != 0 and "--service" in r.stderr, r.stderr
        r = samctl("keys", "new", "--agency", "fmov", "--role", "reader", "--out", s.keys,
                   "--name", "reader-services", "--service", "registry")
        assert r.returncode != 0 and "only a certificate of role service" in r.stderr, r.stderr


def _rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_broker_memory_comes_back_after_1000_curve_clients_come_and_go_three_times():
    """Churn: 1 000 CURVE clients connect, ask, and leave, three times over. The broker's RSS
    returns to within 20 % of where it started (libzmq's freed connection memory is handed
    back to the system; under ASan the leak checker runs at the broker's exit too)."""
    with suite() as s:
        pid = s.broker.p.pid
        warm = s.client("admin")
        warm.call("registry", "ping")
        warm.close()
        start = _rss_kb(pid)
        peak = start
        for _ in range(3):
            answered = 0
            for _ in range(5):  # 1 000 a round, 200 open at once (each costs the test fds)
                clients = []
                for _ in range(200):
                    c = s.client("admin")
                    c.send("registry", "ping")
                    clients.append(c)
                for c in clients:
                    answered += c.recv(30).status.code == 200
                    c.close()
            assert answered == 1000, answered
            peak = max(peak, _rss_kb(pid))
        if samtest.SANITIZED:  # ASan's quarantine holds freed memory; its leak check runs
            print("     (sanitizer build: RSS not bounded here; the leak checker runs at stop)")
            assert s.broker.alive()
            return
        samtest.wait_for(lambda: _rss_kb(pid) <= start * 1.2, 30,
                         f"the broker's RSS back within 20 % of {start} kB (peak {peak} kB)")
        print(f"     (broker RSS: {start} kB at start, {peak} kB at the peak, "
              f"{_rss_kb(pid)} kB after)")
        assert s.broker.alive()


def test_revoked_worker_is_disconnected():
    with suite() as s:
        cert = s.trust(Cert(s.keys, "fmov", "service", name="echo-worker", services=["echo-rev"]))
        w = s.worker(cert, "echo-rev")
        admin = s.client("admin")
        try:
            w.ready()
            samtest.wait_for(lambda: admin.mmi("mmi.service", b"echo-rev")[3] == b"200", 5,
                             "echo-rev registered")
            s.revoke(cert)
            command, _ = w.recv(5.0)
            assert command == DISCONNECT, command
            assert admin.mmi("mmi.service", b"echo-rev")[3] == b"404"
        finally:
            w.close()
            admin.close()


def test_secure_service_refuses_insecure_identities():
    """A registry with CURVE behind a broker that says 'insecure' grants it nothing."""
    data = samtest.scratch("secure-service-fake-broker")
    keys = os.path.join(data, "keys")
    svc_cert = Cert(keys, "fmov", "service")
    broker_cert = Cert(keys, "broker", "broker")

    def curve_server(sock):
        sock.curve_server = True
        sock.curve_secretkey = broker_cert.secret_key.encode()
        sock.curve_publickey = broker_cert.public_key.encode()
    fb = samtest.FakeBroker(curve=curve_server)
    p = samtest.Proc("registry-fake-broker",
                     ["samordna-registry", "--broker", fb.ep, "--data-dir", data, "--cert",
                      svc_cert.secret, "--server-key", broker_cert.public])
    try:
        fb.accept("registry", credit=4)
        rep, _ = fb.publish(samtest.event("no.samordna.registry.agency.registered",
                                          agency("fmov", "F"), eid="x1"),
                            envelope_pb2.Caller(insecure=True, role="admin"))
        assert rep.status.code == 403, rep
    finally:
        assert p.stop() == 0
        fb.close()


def test_unsafe_configurations_are_refused():
    with suite() as s:
        bin_ = samtest.BIN

        def run(*args):
            return subprocess.run([os.path.join(bin_, args[0])] + list(args[1:]),
                                  capture_output=True, text=True, timeout=20)
        port = samtest.free_port()
        r = run("samordna-broker", "--bind", f"tcp://127.0.0.1:{port}")
        assert r.returncode == 1 and "--curve-dir" in r.stderr, r.stderr
        r = run("samordna-broker", "--bind", f"tcp://0.0.0.0:{port}", "--insecure")
        assert r.returncode == 1 and "loopback" in r.stderr, r.stderr
        public_only = os.path.join(s.dir, "public-only.cert")
        shutil.copy(s.broker_cert.public, public_only)
        r = run("samordna-broker", "--bind", f"tcp://127.0.0.1:{port}", "--curve-dir", s.trusted,
                "--cert", public_only)  # the public half has no secret key
        assert r.returncode == 1 and "no secret key" in r.stderr, r.stderr
        data = samtest.scratch("unsafe-config")
        r = run("samordna-registry", "--broker", "tcp://10.9.8.7:5555", "--data-dir", data,
                "--insecure")
        assert r.returncode == 2 and "non-loopback" in r.stderr, r.stderr
        r = run("samordna-registry", "--broker", s.ep, "--data-dir", data)
        assert r.returncode == 2 and "--server-key" in r.stderr, r.stderr
        r = run("samordna-registry", "--broker", s.ep, "--data-dir", data, "--cert",
                s.certs["service"].secret, "--server-key", "not-a-key")
        assert r.returncode == 2 and "server key" in r.stderr, r.stderr


def test_samctl_with_a_certificate():
    with suite() as s:
        base = ["--broker", s.ep, "--timeout-ms", "3000"]
        r = samctl(*base, "--cert", s.certs["admin"].secret, "--server-key",
                   s.broker_cert.public, "ping", "registry")
        assert r.returncode == 0 and "registry" in r.stdout, r.stderr
        r = samctl(*base, "--cert", s.certs["reader"].secret, "--server-key",
                   s.broker_cert.public_key, "--json", "agencies")
        assert r.returncode == 0 and r.stdout.startswith(("[", "{")), (r.stdout, r.stderr)
        r = samctl("--broker", s.ep, "--timeout-ms", "800", "ping", "registry")  # no certificate
        assert r.returncode == 1 and ("504" in r.stderr or "503" in r.stderr), r.stderr
        # --insecure with a certificate is refused, as the services refuse it, instead of
        # dropping the certificate and connecting without CURVE
        for extra in (["--cert", s.certs["admin"].secret, "--server-key", s.broker_cert.public],
                      ["--cert", s.certs["admin"].secret], ["--server-key", s.broker_cert.public]):
            r = samctl(*base, "--insecure", *extra, "--log-level", "debug", "ping", "registry")
            assert r.returncode == 2 and r.stdout == "", (extra, r.stdout, r.stderr)
            assert "--insecure and --cert/--server-key exclude each other" in r.stderr, r.stderr
            assert "client.connect" not in r.stderr, r.stderr  # refused before connecting
        # without CURVE (with --insecure or no certificate) only a loopback broker is reached,
        # as the services accept --insecure only there (0.0.0.0 is not loopback to them)
        port = samtest.free_port()
        for extra in (["--insecure"], []):
            r = samctl("--broker", f"tcp://0.0.0.0:{port}", "--timeout-ms", "800", *extra,
                       "--log-level", "debug", "ping", "registry")
            assert r.returncode == 1 and "non-loopback broker" in r.stderr, (extra, r.stderr)
            assert "client.connect" not in r.stderr, r.stderr


if __name__ == "__main__":
    samtest.main()
