"""An id reused for different content is a conflict, not a duplicate (docs/events.md,
"Retries and reused ids"), against the real broker and the four services that own events:
a true retry — the same (source, id), type, subject and data, whatever its `time` — is
answered 200 with the original sequence number; a reuse is refused 409 naming the original
sequence number and what differs, and nothing is stored. A dedup record written before the
digest was kept is taken as a retry. samctl's writes and `samctl import` exit non-zero on a
reuse, naming it, and an unchanged fixture imported again stays idempotent.
"""
import copy
import json
import os
import subprocess

import samtest
from samordna.v1 import envelope_pb2, grants_pb2, notify_pb2, registry_pb2, status_pb2

SAMCTL = os.path.join(samtest.BIN, "samctl")
FIXTURE = os.path.join(samtest.SRC, "deploy", "examples", "ostfold-2019.json")
SERVICES = ("registry", "status", "grants", "notify")


def samctl(ep, *args):
    p = subprocess.run([SAMCTL, "--broker", ep, *args], capture_output=True, text=True,
                       timeout=120)
    return p.returncode, p.stdout, p.stderr


class World:
    """A broker, the four services on one data folder, the Østfold fixture imported."""

    def __init__(self, name):
        self.broker, self.ep = samtest.broker()
        self.data = samtest.scratch(name)
        self.procs = {s: samtest.service(s, self.ep, self.data) for s in SERVICES}
        rc, out, err = samctl(self.ep, "import", FIXTURE)
        assert rc == 0, out + err
        self.c = samtest.Client(self.ep)

    def head(self, service):
        rep, pr = self.c.call(service, "ping", b"", envelope_pb2.PingReply, timeout=30)
        assert rep.status.code == 200, rep.status
        return pr.last_seq

    def heads(self):
        return {s: self.head(s) for s in SERVICES}

    def publish(self, service, ev):
        rep, pr = samtest.publish(self.c, service, ev, timeout=30)
        return rep.status.code, rep.status.message, pr

    def query(self, service, method, req, reply_type):
        rep, msg = self.c.call(service, method, req, reply_type, timeout=30)
        assert rep.status.code == 200, rep.status
        return msg

    def json(self, *args):
        rc, out, err = samctl(self.ep, "--json", *args)
        assert rc == 0, err
        return json.loads(out)


def timed(ev, seconds):
    """ev with a `time` attribute: a transport attribute, not part of the content."""
    ev = copy.deepcopy(ev)
    ev.attributes["time"].ce_timestamp.FromSeconds(seconds)
    return ev


def by_id(items, rid):
    return next(i for i in items if i["id"] == rid)


# One event type of each service: (service, type, the first payload, another payload, how
# to read the record back, and the field that tells which payload is stored).
T = "no.samordna."
CASES = [
    ("registry", T + "registry.agency.registered",
     registry_pb2.Agency(id="conflict-a", name="Først", kind=registry_pb2.AGENCY_KIND_STATE_REGIONAL),
     registry_pb2.Agency(id="conflict-a", name="Annen", kind=registry_pb2.AGENCY_KIND_STATE_REGIONAL),
     lambda w: w.json("agencies", "show", "conflict-a")["name"]),
    ("status", T + "status.milestone_kind.defined",
     status_pb2.MilestoneKind(id="conflict-k", label="Først", order=50),
     status_pb2.MilestoneKind(id="conflict-k", label="Annen", order=50),
     lambda w: by_id(w.json("kinds")["items"], "conflict-k")["label"]),
    ("grants", T + "grants.scheme.created",
     grants_pb2.Scheme(id="conflict-s", name="Først", owner="fmov", year=2019),
     grants_pb2.Scheme(id="conflict-s", name="Annen", owner="fmov", year=2019),
     lambda w: w.json("grants", "scheme", "conflict-s")["name"]),
    ("notify", T + "notify.subscription.created",
     notify_pb2.SubscriptionCreated(subscription=notify_pb2.Subscription(
         id="conflict-n", type=T + "grants.*", description="Først",
         channel=notify_pb2.NOTIFY_CHANNEL_INBOX)),
     notify_pb2.SubscriptionCreated(subscription=notify_pb2.Subscription(
         id="conflict-n", type=T + "grants.*", description="Annen",
         channel=notify_pb2.NOTIFY_CHANNEL_INBOX)),
     lambda w: w.query("notify", "notify.subscriptions.get",
                       notify_pb2.SubscriptionGetRequest(id="conflict-n"),
                       notify_pb2.SubscriptionInfo).subscription.description),
]


def test_a_reused_id_is_refused_in_every_service_and_a_retry_is_not():
    w = World("conflict-services")
    for service, etype, first, other, stored in CASES:
        def ev(payload, subject="conflict", eid="conflict-1"):
            return samtest.event(etype, payload, eid=eid, subject=subject,
                                 content_type="application/protobuf")

        code, msg, pr = w.publish(service, timed(ev(first), 1_560_000_000))
        assert code == 200 and not pr.duplicate, (service, code, msg)
        seq = pr.seq
        heads = w.heads()
        # a true retry, also with another (or no) time: the original sequence number
        for again in (ev(first), timed(ev(first), 1_570_000_000)):
            code, msg, pr = w.publish(service, again)
            assert code == 200 and pr.duplicate and pr.seq == seq, (service, code, msg)
        # a reuse: 409 naming the id, the original's seq and what differs
        for reuse, differs in ((ev(other), "data differs"),
                               (ev(first, subject="annen"), "subject differs"),
                               (ev(other, subject="annen"), "subject and data differ"),
                               (timed(ev(other), 1_560_000_000), "data differs")):
            code, msg, pr = w.publish(service, reuse)
            assert code == 409, (service, code, msg)
            assert f'event id "conflict-1" of source "fmov"' in msg, (service, msg)
            assert f"stored as seq {seq} " in msg and f"this event's {differs} " in msg, msg
        assert w.heads() == heads, (service, "a refused reuse stored something")
        assert stored(w) == "Først", (service, "the original was changed")

    # The id is shown escaped, never as the client sent it.
    etype, eid = CASES[0][1], 'q"\\1'
    agency = registry_pb2.Agency(id="conflict-q", name="Først",
                                 kind=registry_pb2.AGENCY_KIND_STATE_REGIONAL)
    code, msg, pr = w.publish("registry", samtest.event(etype, agency, eid=eid))
    assert code == 200, msg
    agency.name = "Annen"
    code, msg, _ = w.publish("registry", samtest.event(etype, agency, eid=eid))
    assert code == 409 and 'event id "q\\"\\\\1"' in msg, msg


def test_a_dedup_record_from_before_the_digest_is_a_retry():
    """A store written before the digest was kept has dedup records of the sequence number
    alone; a repeat of one of those is answered as a retry, whatever its content."""
    broker, ep = samtest.broker()
    data = samtest.scratch("conflict-old")
    reg = samtest.service("registry", ep, data)
    c = samtest.Client(ep)
    etype = CASES[0][1]
    first, other = CASES[0][2], CASES[0][3]
    try:
        pr = samtest.publish_ok(c, "registry", samtest.event(etype, first, eid="old-1"))
        rep, _ = samtest.publish(c, "registry", samtest.event(etype, other, eid="old-1"))
        assert rep.status.code == 409, rep.status
        assert reg.stop() == 0
        # Rewrite the record as the old layout had it: DedupRecord{seq} alone.
        store = os.path.join(data, "registry")
        dump = subprocess.run(["mdb_dump", "-s", "dedup", store], capture_output=True,
                              text=True, check=True).stdout.splitlines()
        start = dump.index("HEADER=END") + 1
        key = ("fmov\0old-1").encode().hex()
        at = dump.index(" " + key, start)
        dump[at + 1] = " " + bytes([0x08, pr.seq]).hex()  # field 1, varint seq (< 128)
        subprocess.run(["mdb_load", "-s", "dedup", store], input="\n".join(dump) + "\n",
                       text=True, check=True)
        reg = samtest.service("registry", ep, data)
        rep, again = samtest.publish(c, "registry", samtest.event(etype, other, eid="old-1"))
        assert rep.status.code == 200 and again.duplicate and again.seq == pr.seq, rep.status
    finally:
        c.close()
        reg.stop()
        broker.stop()


def test_samctl_writes_exit_non_zero_on_a_reused_id():
    """The grants writes derive their event id from what they create: the same command again
    is a retry, `(already stored)`; with another value it reuses the id and exits 1 naming it
    and the original's sequence number. Subscribing publishes under a fresh id, so a second
    subscription of the same name is the handler's 409, which names the one stored."""
    w = World("conflict-samctl")
    steps = [
        (["grants", "add-scheme", "cs-2019", "--name", "Skjønn", "--owner", "fmov",
          "--year", "2019"], ["--name", "Annet skjønn"]),
        (["grants", "add-award", "cs-halden", "--scheme", "cs-2019", "--recipient", "halden",
          "--amount", "1000", "--purpose", "Koordinering"], ["--amount", "2000"]),
        (["grants", "disburse", "cs-halden", "d1", "--amount", "100"], ["--amount", "200"]),
    ]
    for args, change in steps:
        rc, out, err = samctl(w.ep, *args)
        assert rc == 0 and "duplicate" not in out, (args, out, err)
        rc, again, err = samctl(w.ep, *args)
        assert rc == 0 and "(duplicate: already stored)" in again, (args, again, err)
        seq = again.split("seq ")[1].split()[0]
        heads = w.heads()
        rc, out, err = samctl(w.ep, *args, *change)
        assert rc == 1 and "409" in err and f"stored as seq {seq} " in err, (args, out, err)
        assert f'event id "' in err and f'/{args[2]}' in err, (args, err)  # the id
        assert "is taken" in err and "data differs" in err, (args, err)
        assert w.heads() == heads, (args, "a refused reuse stored something")
    sub = ["notify", "subscribe", "cs-sub", "--inbox", "--type", T + "grants.*"]
    rc, out, err = samctl(w.ep, *sub)
    assert rc == 0, out + err
    seq = out.split("seq ")[1].split()[0]
    rc, out, err = samctl(w.ep, *sub, "--description", "annen")
    assert rc == 1 and f"'cs-sub' exists already (created as seq {seq})" in err, out + err
    award = w.json("grants", "award", "cs-halden")
    assert award["amount_ore"] == 100_000 and len(award["payments"]) == 1, award
    assert award["payments"][0]["amount_ore"] == 10_000, award
    assert w.json("grants", "scheme", "cs-2019")["name"] == "Skjønn"


def test_import_of_a_changed_fixture_reports_each_conflict_and_changes_nothing():
    w = World("conflict-import")
    heads = w.heads()
    rc, out, err = samctl(w.ep, "--json", "import", FIXTURE)
    assert rc == 0 and json.loads(out)["new"] == 0 and json.loads(out)["refused"] == 0, out + err
    assert w.heads() == heads

    with open(FIXTURE, encoding="utf-8") as f:
        doc = json.load(f)
    award = doc["awards"][0]
    award["amount_nok"] += 50_000
    award["funders"][0]["amount_nok"] += 50_000
    doc["pilots"][0]["investment_leader"] = "ofk"
    changed = os.path.join(w.data, "changed.json")
    with open(changed, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
    rc, out, err = samctl(w.ep, "--json", "import", changed)
    assert rc == 1, out + err
    summary = json.loads(out)
    assert summary["refused"] == 2 and summary["new"] == 0 and summary["differ"] == 2, out
    # each named with what differs (tests/record_test.py reads the differences themselves)
    for etype, key in ((T + "grants.award.granted", award["id"]),
                       (T + "registry.pilot.registered", doc["pilots"][0]["id"])):
        assert f"{etype} {key} differs from what is stored" in err, err
        assert any(d["type"] == etype and d["key"] == key for d in summary["differences"]), out
    assert "2 records differ from what is stored" in err, err
    assert w.heads() == heads, "a changed fixture changed something"
    stored = w.json("grants", "award", award["id"])
    assert stored["amount_ore"] == (award["amount_nok"] - 50_000) * 100, stored
    rc, out, _ = samctl(w.ep, "pilot", "show", doc["pilots"][0]["id"])
    assert "investment leader         fmov" in out, out

    # the unchanged fixture again: idempotent
    rc, out, err = samctl(w.ep, "--json", "import", FIXTURE)
    assert rc == 0 and json.loads(out)["refused"] == 0 and json.loads(out)["new"] == 0, err
    assert w.heads() == heads


if __name__ == "__main__":
    samtest.main()
