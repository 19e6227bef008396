"""Authentication at the gateway, end to end: bearer tokens → gateway → broker → service.

The broker's part (the `gateway` role): a CURVE broker, the registry behind it, and
certificates made with `samctl keys new`. A gateway certificate may present the caller it
verified (Request.on_behalf); the service then sees that agency and role with via="gateway"
and the gateway's key, and applies its own role and ownership checks to it. A gateway that
presents nobody is a reader. Any other certificate that presents a caller is refused 403 by
the broker, with a log line, and nothing is stored.
"""
import os

import samtest
from samordna.v1 import envelope_pb2, events_pb2, registry_pb2 as R
from security_test import Cert, Suite, agency, ce, samctl


def call_as(c, service, method, body, on_behalf=None, timeout=5.0):
    """One request over a samtest.Client presenting `on_behalf` = (agency, role)."""
    rid = c.next_id
    c.next_id += 1
    if not isinstance(body, (bytes, bytearray)):
        body = body.SerializeToString()
    req = envelope_pb2.Request(id=rid, method=method, body=bytes(body))
    if on_behalf is not None:
        req.on_behalf.agency, req.on_behalf.role = on_behalf
    c.sock.send_multipart([b"", samtest.MDPC, service.encode(), req.SerializeToString()])
    while True:
        rep = c.recv(timeout)
        if rep.id == rid:
            return rep


def events(c):
    rep, rr = c.call("registry", "events.read", events_pb2.ReadRequest(after_seq=0),
                     events_pb2.ReadReply)
    assert rep.status.code == 200, rep.status
    return rr.events


class gateway_suite:
    """A security Suite with a trusted gateway certificate (agency samordna-gw)."""

    def __enter__(self):
        self.s = Suite("gateway-auth")
        self.s.certs["gateway"] = self.s.trust(Cert(self.s.keys, "samordna-gw", "gateway"))
        return self.s

    def __exit__(self, *exc):
        if exc[0] is None:
            self.s.close()


def test_keys_new_makes_a_gateway_certificate():
    folder = samtest.scratch("gateway-keys")
    r = samctl("keys", "new", "--agency", "samordna-gw", "--role", "gateway", "--out", folder)
    assert r.returncode == 0, r.stderr
    text = open(os.path.join(folder, "samordna-gw-gateway.cert")).read()
    assert 'role = "gateway"' in text and 'agency = "samordna-gw"' in text
    r = samctl("keys", "new", "--agency", "samordna-gw", "--role", "gateway", "--service",
               "registry", "--out", folder, "--name", "gw2")
    assert r.returncode == 1 and "only a certificate of role service" in r.stderr, r.stderr


def test_gateway_presents_the_caller_and_the_service_checks_it():
    with gateway_suite() as s:
        gw = s.client("gateway")
        admin = s.client("admin")
        try:
            # the presented publisher publishes as itself: stored with via=gateway
            req = ce("agency.registered", agency("nav-ost-viken", "NAV Øst-Viken"),
                     "nav-ost-viken")
            rep = call_as(gw, "registry", "events.publish", req,
                          ("nav-ost-viken", "publisher"))
            assert rep.status.code == 200, rep.status
            pr = events_pb2.PublishReply.FromString(rep.body)
            caller = {e.seq: e for e in events(admin)}[pr.seq].caller
            assert (caller.agency, caller.role, caller.via, caller.key, caller.insecure) == \
                ("nav-ost-viken", "publisher", "gateway", s.certs["gateway"].public_key,
                 False), caller
            # ... and not as another agency: the service's own 403
            req = ce("agency.registered", agency("imdi-ost", "IMDi Øst"), "imdi-ost")
            rep = call_as(gw, "registry", "events.publish", req,
                          ("nav-ost-viken", "publisher"))
            assert rep.status.code == 403 and "event.source" in rep.status.message, rep.status
            # a presented reader may read, not write
            rep = call_as(gw, "registry", "registry.agencies.get",
                          R.GetRequest(id="nav-ost-viken"), ("hiof", "reader"))
            assert rep.status.code == 200, rep.status
            req = ce("agency.registered", agency("hiof", "HiØ"), "hiof")
            rep = call_as(gw, "registry", "events.publish", req, ("hiof", "reader"))
            assert rep.status.code == 403 and "reader" in rep.status.message, rep.status
            # a presented admin is the pilot owner
            req = ce("agency.registered", agency("imdi-ost", "IMDi Øst"), "imdi-ost")
            rep = call_as(gw, "registry", "events.publish", req, ("fmov", "admin"))
            assert rep.status.code == 200, rep.status
        finally:
            gw.close()
            admin.close()


def test_gateway_without_a_presented_caller_is_a_reader():
    with gateway_suite() as s:
        with s.client("gateway") as gw:
            rep = call_as(gw, "registry", "registry.agencies.list", R.ListRequest())
            assert rep.status.code == 200, rep.status
            req = ce("agency.registered", agency("samordna-gw", "Gateway"), "samordna-gw")
            rep = call_as(gw, "registry", "events.publish", req)
            assert rep.status.code == 403 and "role 'reader'" in rep.status.message, rep.status


def test_no_other_certificate_may_present_a_caller():
    with gateway_suite() as s:
        for who in ("nav-ost-viken", "admin", "reader", "service"):
            with s.client(who) as c:
                req = ce("agency.registered", agency("fmov", "Statsforvalteren " + who), "fmov")
                rep = call_as(c, "registry", "events.publish", req, ("fmov", "admin"))
                assert rep.status.code == 403, (who, rep.status)
                assert "only a certificate of role gateway" in rep.status.message, rep.status
                # a query too, even one it could make as itself
                rep = call_as(c, "registry", "registry.agencies.list", R.ListRequest(),
                              ("fmov", "reader"))
                assert rep.status.code == 403, (who, rep.status)
        with s.client("admin") as admin:
            assert not [e for e in events(admin) if e.event.source == "fmov"], "stored"
        samtest.wait_for(lambda: "request.refused" in s.broker.logtext() and
                         "only a certificate of role gateway" in s.broker.logtext(), 5,
                         "the broker's log line")


def test_gateway_may_present_only_an_agency_and_a_caller_role():
    with gateway_suite() as s:
        with s.client("gateway") as gw:
            for presented in (("fmov", "service"), ("fmov", "gateway"), ("fmov", "broker"),
                              ("fmov", ""), ("Fmov", "admin"), ("", "admin"),
                              ("fmov\n", "admin")):
                req = ce("agency.registered", agency("fmov", "Statsforvalteren"), "fmov")
                rep = call_as(gw, "registry", "events.publish", req, presented)
                assert rep.status.code == 400 and "on_behalf" in rep.status.message, \
                    (presented, rep.status)
        with s.client("admin") as admin:
            assert not events(admin), "stored"


if __name__ == "__main__":
    samtest.main()
