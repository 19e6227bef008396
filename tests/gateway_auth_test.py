"""Authentication at the gateway, end to end: bearer tokens → gateway → broker → service.

The gateway's part: a JWKS of an RSA and an EC P-256 key made with the `openssl` command,
tokens minted and signed here (RS256 with `openssl dgst`, ES256 likewise, its DER signature
rewritten as r||s), a mapping file, and samordna-gateway on the CURVE broker with a gateway
certificate. Every refusal (no token, another scheme, expired, not yet valid, another
audience or issuer, an unknown key, a tampered payload, alg none, an HMAC, malformed, an
unknown organisation, no scope for the write) is answered 401/403/400 with WWW-Authenticate,
logged, and nothing is stored; a publisher token for agency A publishes as A and not as B
(the service's own 403); a gateway run with a certificate of another role cannot present
its callers. The gateway's clock is set (--now), and the tokens' times are reckoned from it.

The broker's part (the `gateway` role): a CURVE broker, the registry behind it, and
certificates made with `samctl keys new`. A gateway certificate may present the caller it
verified (Request.on_behalf); the service then sees that agency and role with via="gateway"
and the gateway's key, and applies its own role and ownership checks to it. A gateway that
presents nobody is a reader. Any other certificate that presents a caller is refused 403 by
the broker, with a log line, and nothing is stored.
"""
import base64
import http.client
import json
import os
import re
import subprocess

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


# ---- tokens -------------------------------------------------------------------------------

ISSUER = "https://test.maskinporten.no/"
AUDIENCE = "https://samordna.example/"
NOW = 1772442000  # 2026-03-02T10:00 in Oslo: the gateway runs with --now at this moment
NAV_ORG, FMOV_ORG, STRANGER_ORG = "889640782", "974760673", "911111111"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def openssl(*args, data=None):
    r = subprocess.run(["openssl"] + list(args), input=data, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def der_to_rs(der):
    """An ECDSA signature in DER (SEQUENCE of two INTEGERs) as JWS wants it: r||s, 32 bytes
    each (RFC 7518 §3.4)."""
    assert der[0] == 0x30
    at = 2 if der[1] < 0x80 else 3
    out = b""
    for _ in range(2):
        assert der[at] == 0x02
        n = der[at + 1]
        out += der[at + 2:at + 2 + n].lstrip(b"\0").rjust(32, b"\0")
        at += 2 + n
    return out


class Keys:
    """Signing keys made with the openssl command, and the JWKS of their public halves."""

    def __init__(self, folder):
        self.folder = folder
        self.rsa = os.path.join(folder, "rsa.pem")
        self.ec = os.path.join(folder, "ec.pem")
        self.stray = os.path.join(folder, "stray.pem")  # in no JWKS
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", self.rsa)
        for path in (self.ec, self.stray):
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", path)
        modulus = openssl("rsa", "-in", self.rsa, "-noout", "-modulus").decode()
        n = bytes.fromhex(modulus.strip().split("=", 1)[1])
        text = openssl("pkey", "-in", self.rsa, "-noout", "-text").decode()
        assert "publicExponent: 65537" in text, text
        point = openssl("pkey", "-in", self.ec, "-pubout", "-outform", "DER")[-65:]
        assert point[0] == 4
        self.rsa_public_pem = openssl("pkey", "-in", self.rsa, "-pubout")
        self.jwks = os.path.join(folder, "jwks.json")
        with open(self.jwks, "w") as f:
            json.dump({"keys": [
                {"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256", "n": b64(n),
                 "e": b64((65537).to_bytes(3, "big"))},
                {"kty": "EC", "kid": "ec-1", "crv": "P-256", "x": b64(point[1:33]),
                 "y": b64(point[33:])}]}, f)

    def sign(self, header, claims, key=None):
        """header.claims signed as header["alg"] says (RS256, ES256, HS256 with the RSA public
        key as its secret, or none)."""
        data = (b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode()))
        alg = header.get("alg")
        if alg == "none":
            return data + "."
        if alg == "HS256":
            sig = openssl("dgst", "-sha256", "-mac", "HMAC", "-macopt",
                          "hexkey:" + self.rsa_public_pem.hex(), "-binary",
                          data=data.encode())
            return data + "." + b64(sig)
        key = key or (self.rsa if alg == "RS256" else self.ec)
        sig = openssl("dgst", "-sha256", "-sign", key, "-binary", data=data.encode())
        return data + "." + b64(der_to_rs(sig) if alg == "ES256" else sig)

    def token(self, org=NAV_ORG, scope="samordna:write samordna:read", alg="RS256",
              kid=None, key=None, **claims):
        body = {"iss": ISSUER, "aud": AUDIENCE, "iat": NOW - 10, "nbf": NOW - 10,
                "exp": NOW + 3600, "scope": scope, "client_id": "test-system",
                "consumer": {"authority": "iso6523-actorid-upis", "ID": "0192:" + org}}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        header = {"alg": alg, "kid": kid or ("rsa-1" if alg in ("RS256", "HS256") else "ec-1")}
        return self.sign(header, body, key)


def write_map(folder, reads="token"):
    path = os.path.join(folder, "auth-map.json")
    with open(path, "w") as f:
        json.dump({"consumers": {NAV_ORG: "nav-ost-viken", FMOV_ORG: "fmov"},
                   "scopes": {"samordna:admin": "admin", "samordna:write": "publisher",
                              "samordna:read": "reader"},
                   "reads": reads}, f)
    return path


def gateway_args(s, keys, cert, port):
    return ["samordna-gateway", "--broker", s.ep, "--listen", f"127.0.0.1:{port}",
            "--cert", cert.secret, "--server-key", s.broker_cert.public,
            "--service", "registry", "--jwks", keys.jwks, "--auth-map", write_map(s.dir),
            "--issuer", ISSUER, "--audience", AUDIENCE, "--now", str(NOW * 1000)]


def start_gateway(s, keys, cert, *extra):
    port = samtest.free_port()
    gw = samtest.Proc(f"gateway-{port}", gateway_args(s, keys, cert, port) + list(extra))
    samtest.wait_for(lambda: http_get(port, "/v1/healthz")[0] == 200, 15,
                     "the gateway's healthz")
    return gw, port


def http_get(port, path):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5 * samtest.SLOW)
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    except OSError:
        return 0, b""


def post_event(port, payload, source, eid, token=None, authorization=None):
    """One registry agency.registered event in binary mode; returns (status, headers, json)."""
    headers = {"ce-specversion": "1.0", "ce-id": eid, "ce-source": source,
               "ce-type": "no.samordna.registry.agency.registered",
               "Content-Type": "application/protobuf"}
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    if authorization is not None:
        headers["Authorization"] = authorization
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10 * samtest.SLOW)
    conn.request("POST", "/v1/events", body=payload.SerializeToString(), headers=headers)
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, r, json.loads(body) if body else None


def test_tokens_at_the_gateway():
    with gateway_suite() as s:
        keys = Keys(s.dir)
        metrics = samtest.free_port()
        gw, port = start_gateway(s, keys, s.certs["gateway"], "--metrics",
                                 f"127.0.0.1:{metrics}")
        nav = agency("nav-ost-viken", "NAV Øst-Viken")
        refusals = [
            # (what, Authorization header, status, error, words in the description)
            ("no token", None, 401, None, "bearer token is required"),
            ("another scheme", "Basic Zm9vOmJhcg==", 400, "invalid_request", "Bearer"),
            ("expired", "Bearer " + keys.token(exp=NOW - 600, iat=NOW - 700, nbf=NOW - 700),
             401, "invalid_token", "expired"),
            ("not yet valid", "Bearer " + keys.token(nbf=NOW + 3000), 401, "invalid_token",
             "not valid for another"),
            ("another audience", "Bearer " + keys.token(aud="https://other.example/"), 401,
             "invalid_token", "audience"),
            ("another issuer", "Bearer " + keys.token(iss="https://maskinporten.no/"), 401,
             "invalid_token", "not issued by"),
            ("unknown kid", "Bearer " + keys.token(alg="ES256", kid="ec-9"), 401,
             "invalid_token", "names no key"),
            ("a key in no JWKS", "Bearer " + keys.token(alg="ES256", key=keys.stray), 401,
             "invalid_token", "signature"),
            ("alg none", "Bearer " + keys.token(alg="none"), 401, "invalid_token", "alg none"),
            ("HMAC with the public key", "Bearer " + keys.token(alg="HS256"), 401,
             "invalid_token", "alg HS256"),
            ("malformed", "Bearer not.a-token", 401, "invalid_token", "base64url"),
            ("unknown organisation", "Bearer " + keys.token(org=STRANGER_ORG), 401,
             "invalid_token", "911111111 is not mapped"),
            ("no consumer", "Bearer " + keys.token(consumer=None), 401, "invalid_token",
             "no consumer"),
            ("a reader's scope", "Bearer " + keys.token(scope="samordna:read"), 403,
             "insufficient_scope", "no scope that allows writes"),
            ("no scope", "Bearer " + keys.token(scope=None), 403, "insufficient_scope",
             "no scope"),
        ]
        good = keys.token()
        head, claims, sig = good.split(".")
        tampered = json.loads(base64.urlsafe_b64decode(claims + "=="))
        tampered["consumer"]["ID"] = "0192:" + FMOV_ORG
        refusals.append(("tampered payload", "Bearer " + ".".join(
            [head, b64(json.dumps(tampered).encode()), sig]), 401, "invalid_token",
            "signature does not verify"))
        for i, (what, authz, status, error, words) in enumerate(refusals):
            code, r, problem = post_event(port, nav, "nav-ost-viken", f"refused-{i}",
                                          authorization=authz)
            challenge = r.getheader("WWW-Authenticate") or ""
            assert code == status, (what, code, problem)
            assert r.getheader("Content-Type") == "application/problem+json", what
            assert words in problem["detail"], (what, problem)
            assert challenge.startswith('Bearer realm="samordna"'), (what, challenge)
            if error:
                assert f'error="{error}"' in challenge, (what, challenge)
                assert f'error_description="{problem["detail"]}"' in challenge, (what, challenge)
            else:
                assert "error=" not in challenge, (what, challenge)
            if status == 403:
                assert 'scope="' in challenge and "samordna:write" in challenge, challenge
                assert "samordna:read" not in challenge.split('scope="')[1], challenge
            assert "not.a-token" not in challenge and good not in challenge
        # every refusal logged, none stored
        log = gw.logtext()
        assert log.count("gateway.refused") >= len(refusals), log
        assert "status=401" in log and "status=403" in log
        scraped = http_get(metrics, "/metrics")[1].decode()
        counts = {(m.group(1), m.group(2)): float(m.group(3)) for m in re.finditer(
            r'samordna_gateway_auth_refused_total\{status="(\d+)",error="([a-z_]+)"\} (\S+)',
            scraped)}
        want = {}
        for _, _, status, error, _ in refusals:
            key = (str(status), error or "none")
            want[key] = want.get(key, 0) + 1
        assert counts == want, (counts, want)
        with s.client("admin") as admin:
            assert not events(admin), "a refused publish was stored"

        # the publisher token of NAV publishes as NAV (RS256) ...
        code, r, body = post_event(port, nav, "nav-ost-viken", "nav-1", token=good)
        assert code == 201, (code, body)
        # ... and not as IMDi: the registry's own 403, passed on
        imdi = agency("imdi-ost", "IMDi Øst")
        code, r, problem = post_event(port, imdi, "imdi-ost", "nav-2", token=good)
        assert code == 403 and "event.source" in json.dumps(problem), (code, problem)
        assert r.getheader("WWW-Authenticate") is None  # the token was fine
        # the county governor's admin token (ES256) may publish for IMDi
        admin_token = keys.token(org=FMOV_ORG, scope="samordna:admin", alg="ES256")
        code, r, body = post_event(port, imdi, "imdi-ost", "fmov-1", token=admin_token)
        assert code == 201, (code, body)
        with s.client("admin") as admin:
            stored = events(admin)
        assert [(e.event.id, e.caller.agency, e.caller.role, e.caller.via, e.caller.key)
                for e in stored] == [
            ("nav-1", "nav-ost-viken", "publisher", "gateway", s.certs["gateway"].public_key),
            ("fmov-1", "fmov", "admin", "gateway", s.certs["gateway"].public_key)], stored
        # healthz and the board's style sheet need no token; the board itself and a briefing's
        # page carry the pilot's data: reads, refused without a token like /v1/board
        assert http_get(port, "/v1/healthz")[0] == 200
        assert http_get(port, "/board.css")[0] == 200
        for path in ("/", "/?as_of=2019-11-30", "/briefing/briefing-2020-02-27", "/v1/board"):
            assert http_get(port, path)[0] == 401, path
        assert gw.stop() == 0


def test_a_gateway_with_another_role_cannot_present_its_callers():
    with gateway_suite() as s:
        keys = Keys(s.dir)
        gw, port = start_gateway(s, keys, s.certs["nav-ost-viken"])  # a publisher certificate
        code, r, problem = post_event(port, agency("nav-ost-viken", "NAV"), "nav-ost-viken",
                                      "nav-1", token=keys.token())
        assert code == 403 and "only a certificate of role gateway" in problem["detail"], \
            (code, problem)
        with s.client("admin") as admin:
            assert not events(admin), "stored"
        samtest.wait_for(lambda: "only a certificate of role gateway" in s.broker.logtext(), 5,
                         "the broker's refusal in its log")
        assert gw.stop() == 0


def test_a_gateway_whose_certificate_is_revoked_answers_503():
    """The broker's 401 for the gateway's own key is not the client's: 503, Retry-After."""
    with gateway_suite() as s:
        keys = Keys(s.dir)
        gw, port = start_gateway(s, keys, s.certs["gateway"])
        s.revoke(s.certs["gateway"])
        code, r, problem = post_event(port, agency("nav-ost-viken", "NAV"), "nav-ost-viken",
                                      "nav-1", token=keys.token())
        assert code == 503 and r.getheader("Retry-After"), (code, problem)
        assert r.getheader("WWW-Authenticate") is None
        assert gw.stop() == 0


def test_the_gateway_refuses_to_start_without_its_token_options():
    with gateway_suite() as s:
        keys = Keys(s.dir)
        base = gateway_args(s, keys, s.certs["gateway"], samtest.free_port())

        def run(args):
            r = subprocess.run([os.path.join(samtest.BIN, args[0])] + args[1:],
                               capture_output=True, text=True, timeout=30)
            return r.returncode, r.stderr

        without = [a for i, a in enumerate(base) if a != "--jwks" and base[i - 1] != "--jwks"]
        code, err = run(without)
        assert code == 2 and "missing: --jwks" in err, err
        # no token options at all: callers are not authenticated, so loopback only
        none = ["samordna-gateway", "--broker", s.ep, "--listen",
                f"0.0.0.0:{samtest.free_port()}", "--cert", s.certs["gateway"].secret,
                "--server-key", s.broker_cert.public]
        code, err = run(none)
        assert code == 2 and "loopback address only" in err and "--jwks" in err, err
        insecure = ["samordna-gateway", "--broker", s.ep, "--insecure", "--jwks", keys.jwks]
        code, err = run(insecure)
        assert code == 2 and "--insecure skips tokens" in err, err
        bad_map = os.path.join(s.dir, "bad-map.json")
        with open(bad_map, "w") as f:
            f.write('{"consumers": {"12345": "nav"}, "scopes": {"samordna:read": "reader"}}')
        args = list(base)
        args[args.index("--auth-map") + 1] = bad_map
        code, err = run(args)
        assert code == 2 and "bad-map.json" in err and "'12345'" in err, err
        args = list(base)
        args[args.index("--jwks") + 1] = os.path.join(s.dir, "nope.json")
        code, err = run(args)
        assert code == 2 and "nope.json" in err, err


if __name__ == "__main__":
    samtest.main()
