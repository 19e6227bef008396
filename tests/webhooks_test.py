"""Webhooks as an agency receives them: the real broker, registry, grants and notify, and a
receiver written the way an agency writes one (tests/tools/webhook_receiver.js): each delivery
verified with the Standard Webhooks reference library (`standardwebhooks` on npm; v1a with
Node's own Ed25519, which that package lacks) and parsed with the official CloudEvents SDK.

Covers: a new webhook's default form (data as proto3 JSON, signed v1 with a whsec_ secret),
v1a with notify's public key, protobuf on request; the JSON checked against what was
published (Python's json_format is the reference mapping); a body or a timestamp tampered
with, an old timestamp, and a replay, each sent to the receiver and refused or not processed
twice; the signing key from a file, and a file that must not be used; samctl's options and
their refusals.
"""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import time
import urllib.error
import urllib.request

import samtest
from samtest import Client
from google.protobuf import json_format
from samordna.v1 import grants_pb2, notify_pb2, registry_pb2

G = grants_pb2
TESTS = os.path.dirname(os.path.abspath(__file__))
FAST = ["--retry-schedule", "100ms,200ms,300ms", "--follow-wait-ms", "1000"]
GRANTS = "no.samordna.grants.*"


class Receiver(samtest.Closing):
    """tests/tools/webhook_receiver.js, on a free loopback port."""

    def __init__(self):
        if not os.path.isdir(os.path.join(TESTS, "node_modules", "standardwebhooks")):
            raise AssertionError("tests/node_modules lacks standardwebhooks and cloudevents: "
                                 "run tools/deps.sh (npm ci --prefix tests)")
        self.p = subprocess.Popen(["node", os.path.join(TESTS, "tools", "webhook_receiver.js")],
                                  stdout=subprocess.PIPE, text=True)
        self.port = json.loads(self.p.stdout.readline())["port"]
        self.base = f"http://127.0.0.1:{self.port}"

    def url(self, name):
        return f"{self.base}/hook/{name}"

    def request(self, path, body=None, headers=None):
        """(status, parsed JSON answer or None) of one request to the receiver."""
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, headers=headers or {},
                                     method="POST" if data is not None else "GET")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, json.loads(raw) if raw else None

    def keys(self, name, **key):
        assert self.request(f"/keys/{name}", key)[0] == 204

    def deliveries(self, name):
        return self.request(f"/deliveries/{name}")[1]

    def close(self):
        self.p.terminate()
        self.p.wait(10)


class World(samtest.Closing):
    """broker, registry (an agency and a municipality), grants, notify following both."""

    def __init__(self, name, *notify_args):
        self.dir = samtest.scratch(name)
        self.broker, self.ep = samtest.broker()
        samtest.service("registry", self.ep, os.path.join(self.dir, "registry"))
        samtest.service("grants", self.ep, os.path.join(self.dir, "grants"))
        self.notify_args = ["--follow", "registry,grants"] + FAST + list(notify_args)
        samtest.service("notify", self.ep, os.path.join(self.dir, "notify"), *self.notify_args)
        self.c = Client(self.ep)
        self.publish("registry", "no.samordna.registry.agency.registered",
                     registry_pb2.Agency(id="imdi", name="IMDi Øst", kind=2), source="imdi")
        self.publish("registry", "no.samordna.registry.municipality.registered",
                     registry_pb2.Municipality(id="halden", name="Halden"))

    def publish(self, service, etype, payload, source="fmov"):
        ev = samtest.event(etype, payload, source=source, content_type="application/protobuf")
        samtest.publish_ok(self.c, service, ev)
        return payload

    def close(self):
        self.c.close()

    def samctl(self, *args, code=0):
        r = subprocess.run([os.path.join(samtest.BIN, "samctl"), "--broker", self.ep,
                            "--insecure", *args], capture_output=True, text=True,
                           timeout=20 * samtest.SLOW)
        assert r.returncode == code, f"samctl {' '.join(args)}: {r.returncode} {r.stderr}"
        return r.stdout, r.stderr

    def subscription(self, sid):
        out, _ = self.samctl("--json", "notify", "subscriptions")
        return next(r for r in json.loads(out)["items"] if r["id"] == sid)


def wait_for(cond, timeout, what):
    samtest.wait_for(cond, timeout * samtest.SLOW, what)


def grants_events(w):
    """Publishes a scheme, a joint award (int64 amounts, repeated messages) and a payment;
    returns [(type, payload)] as published."""
    scheme = G.Scheme(id="imdi-2019", name="Tilskudd til kommunale piloter", owner="imdi",
                      year=2019, currency="NOK", has_frame=True, frame_ore=500000000)
    award = G.Award(id="ps19-halden", scheme="imdi-2019", recipient="halden",
                    amount_ore=150000000, currency="NOK",
                    purpose="Koordinator for «Saman» – første år", report_due="2020-03-01")
    award.funders.add(agency="imdi", amount_ore=150000000)
    pay = G.Payment(id="d1", award="ps19-halden", amount_ore=25000000, date="2019-06-01",
                    final=True)
    out = [("no.samordna.grants.scheme.created", scheme),
           ("no.samordna.grants.award.granted", award),
           ("no.samordna.grants.disbursement.made", pay)]
    for etype, payload in out:
        w.publish("grants", etype, payload, source="imdi")
    return out


def sign_v1(secret, wid, ts, body):
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, f"{wid}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def resend(r, name, delivery, body=None, **headers):
    """Sends a delivery the receiver accepted to it again, with body or headers changed."""
    h = {"content-type": delivery["headers"]["content-type"]}
    for k in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        h[k] = delivery["headers"][k]
    h.update({k.replace("_", "-"): v for k, v in headers.items()})
    return r.request(f"/hook/{name}", body if body is not None else delivery["body"].encode(), h)


def test_json_deliveries_verify_the_standard_webhooks_way_v1_and_v1a():
    with World("webhooks-json") as w, Receiver() as r:
        w.samctl("notify", "subscribe", "nav-json", "--webhook", r.url("nav-json"),
                 "--type", GRANTS)
        w.samctl("notify", "subscribe", "nav-v1a", "--webhook", r.url("nav-v1a"), "--type",
                 GRANTS, "--signature", "v1a")
        w.samctl("notify", "subscribe", "nav-proto", "--webhook", r.url("nav-proto"), "--type",
                 GRANTS, "--format", "protobuf")
        forms = {s: (w.subscription(s)["format"], w.subscription(s)["signature"])
                 for s in ("nav-json", "nav-v1a", "nav-proto")}
        assert forms == {"nav-json": ("json", "v1"), "nav-v1a": ("json", "v1a"),
                         "nav-proto": ("protobuf", "v1")}, forms

        # the keys, as an agency gets them: a whsec_ secret, or notify's public key
        secret = w.samctl("notify", "secret", "nav-json")[0].strip()
        assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
        assert w.samctl("notify", "secret", "nav-proto")[0].strip() != secret
        public_key = w.samctl("notify", "public-key")[0].strip()
        assert public_key.startswith("whpk_") and len(base64.b64decode(public_key[5:])) == 32
        out, err = w.samctl("notify", "secret", "nav-v1a")
        assert out.strip() == public_key and "no secret" in err
        info = json.loads(w.samctl("--json", "notify", "secret", "nav-v1a")[0])
        assert info["scheme"] == "v1a" and info["secret"] == "" and info["public_key"] == public_key

        # until the receiver holds the keys it refuses everything, the handshake too: pending
        wait_for(lambda: r.deliveries("nav-json")["refused"], 15, "a handshake refused")
        assert w.subscription("nav-json")["state"] == "pending"
        r.keys("nav-json", scheme="v1", secret=secret)
        r.keys("nav-v1a", scheme="v1a", publicKey=public_key)
        r.keys("nav-proto", scheme="v1",
               secret=w.samctl("notify", "secret", "nav-proto")[0].strip())
        for s in ("nav-json", "nav-v1a", "nav-proto"):
            wait_for(lambda: w.subscription(s)["state"] == "active", 15, f"{s} validated")

        published = grants_events(w)
        for s in ("nav-json", "nav-v1a", "nav-proto"):
            wait_for(lambda: len(r.deliveries(s)["accepted"]) == 3, 20, f"3 deliveries to {s}")

        for s in ("nav-json", "nav-v1a"):
            got = r.deliveries(s)["accepted"]
            assert [d["event"]["type"] for d in got] == [t for t, _ in published]
            for d, (etype, payload) in zip(got, published):
                ev = d["event"]
                assert ev["datacontenttype"] == "application/json" and ev["source"] == "imdi"
                # the data is the proto3 JSON of what was published, by the reference mapping
                assert ev["data"] == json_format.MessageToDict(payload), (ev["data"], payload)
                assert d["headers"]["x-samordna-signature"] is None
                assert d["headers"]["webhook-id"].startswith(s + "_")
                assert "." not in d["headers"]["webhook-id"]
                assert d["headers"]["webhook-signature"].startswith(
                    "v1a," if s == "nav-v1a" else "v1,")
            award = got[1]["event"]["data"]
            assert award["amountOre"] == "150000000" and award["reportDue"] == "2020-03-01"
            assert award["funders"] == [{"agency": "imdi", "amountOre": "150000000"}]
            assert got[2]["event"]["data"]["final"] is True
        proto = r.deliveries("nav-proto")["accepted"]
        for d, (etype, payload) in zip(proto, published):
            assert d["event"]["datacontenttype"] == "application/protobuf"
            assert base64.b64decode(d["event"]["data_base64"]) == payload.SerializeToString()
            assert d["headers"]["webhook-signature"].startswith("v1,")
        # one webhook-id per subscription and event, never the same for two
        ids = [d["headers"]["webhook-id"] for s in ("nav-json", "nav-v1a", "nav-proto")
               for d in r.deliveries(s)["accepted"]]
        assert len(set(ids)) == 9

        # what the receiver refuses: a tampered body, a tampered timestamp, an old one
        for s in ("nav-json", "nav-v1a"):
            d = r.deliveries(s)["accepted"][1]
            before = len(r.deliveries(s)["refused"])
            forged = d["body"].replace("150000000", "950000000").encode()
            assert forged != d["body"].encode()
            code, why = resend(r, s, d, body=forged)
            assert code == 401 and "No matching signature" in why["refused"], (code, why)
            later = str(int(d["headers"]["webhook-timestamp"]) + 1)
            code, why = resend(r, s, d, webhook_timestamp=later)
            assert code == 401 and "No matching signature" in why["refused"], (code, why)
            code, why = resend(r, s, d, webhook_signature="v1," + base64.b64encode(
                b"\0" * 32).decode())
            assert code == 401, (code, why)
            refused = r.deliveries(s)["refused"]
            assert len(refused) == before + 3
            # the same delivery again, untouched: verified, and not processed twice
            assert resend(r, s, d)[0] == 200
            assert len(r.deliveries(s)["accepted"]) == 3
        d = r.deliveries("nav-json")["accepted"][0]
        old = str(int(time.time()) - 600)
        code, why = resend(r, "nav-json", d, webhook_timestamp=old,
                           webhook_signature=sign_v1(secret, d["headers"]["webhook-id"], old,
                                                     d["body"].encode()))
        assert code == 401 and "too old" in why["refused"], (code, why)


def test_the_signing_key_from_a_file():
    folder = samtest.scratch("webhooks-keyfile")
    os.makedirs(folder, exist_ok=True)
    seed = os.urandom(32)
    key = os.path.join(folder, "webhook.key")
    with open(key, "w") as f:
        f.write("whsk_" + base64.b64encode(seed).decode() + "\n")
    os.chmod(key, 0o600)
    der = bytes.fromhex("302e020100300506032b657004220420") + seed  # PKCS#8 Ed25519
    want = subprocess.run(
        ["node", "-e", "const c=require('crypto');const k=c.createPrivateKey({key:Buffer.from("
         "process.argv[1],'hex'),format:'der',type:'pkcs8'});process.stdout.write('whpk_'+"
         "Buffer.from(c.createPublicKey(k).export({format:'jwk'}).x,'base64url')"
         ".toString('base64'))", der.hex()], capture_output=True, text=True, check=True).stdout
    with World("webhooks-keyfile-run", "--webhook-signing-key", key) as w:
        assert w.samctl("notify", "public-key")[0].strip() == want
    # a key file others may read, or one that holds no key, is refused at start, named
    broker, ep = samtest.broker()
    for mode, text, words in [(0o644, None, "chmod 600"),
                              (0o600, "whsec_" + base64.b64encode(seed).decode(), "whsk_"),
                              (0o600, "whsk_" + base64.b64encode(seed[:16]).decode(), "32-byte")]:
        if text is not None:
            with open(key, "w") as f:
                f.write(text)
        os.chmod(key, mode)
        data = samtest.scratch(f"webhooks-keyfile-bad-{mode}-{len(words)}")
        p = samtest.Proc(f"notify-badkey-{len(samtest.PROCS)}",
                         ["samordna-notify", "--broker", ep, "--data-dir", data, "--insecure",
                          "--webhook-signing-key", key])
        wait_for(lambda: not p.alive(), 10, "notify refusing the key file")
        log = p.logtext()
        assert p.p.returncode != 0
        assert "webhook-signing-key" in log and words in log and key in log, log[-600:]
    broker.stop()


def test_samctl_and_notify_refuse_what_is_no_format_or_scheme():
    with World("webhooks-refusals") as w:
        _, err = w.samctl("notify", "subscribe", "x", "--webhook", "http://127.0.0.1:9/h",
                          "--format", "xml", code=2)
        assert "--format: json or protobuf" in err
        _, err = w.samctl("notify", "subscribe", "x", "--webhook", "http://127.0.0.1:9/h",
                          "--signature", "v2", code=2)
        assert "--signature: v1, v1a or legacy" in err
        _, err = w.samctl("notify", "subscribe", "x", "--inbox", "--format", "json", code=2)
        assert "are for --webhook" in err
        # the same refusals from notify itself, for a client that is not samctl
        for fields, words in [({"channel": notify_pb2.NOTIFY_CHANNEL_WEBHOOK,
                                "url": "http://127.0.0.1:9/h", "format": 7},
                               "subscription.format: 7 is not a format"),
                              ({"channel": notify_pb2.NOTIFY_CHANNEL_WEBHOOK,
                                "url": "http://127.0.0.1:9/h", "signature": 9},
                               "subscription.signature: 9 is not a scheme"),
                              ({"channel": notify_pb2.NOTIFY_CHANNEL_INBOX,
                                "signature": notify_pb2.WEBHOOK_SIGNATURE_V1A},
                               "subscription.signature: only for a webhook")]:
            sub = notify_pb2.Subscription(id="x", **fields)
            ev = samtest.event("no.samordna.notify.subscription.created",
                               notify_pb2.SubscriptionCreated(subscription=sub))
            rep, _ = samtest.publish(w.c, "notify", ev)
            assert rep.status.code == 400 and words in rep.status.message, rep.status
        out, _ = w.samctl("--json", "notify", "subscriptions")
        assert json.loads(out)["items"] == [], "nothing was stored"


if __name__ == "__main__":
    samtest.main()
