"""Integration tests of samordna-grants: real broker, registry and grants processes on
loopback, events published over the wire, every outcome read back through the broker.

Covers the fixture's money (the overview per municipality and per year), joint awards and
their payments on the ledger, every refusal with nothing stored, two publishers racing for
the last kroner of a frame, reporting deadlines, instruments and needs, the registry
projection, kill -9 during a burst, and samctl's commands.
"""
import os
import signal
import subprocess
import time

import samtest
from samtest import Client
from samordna.v1 import envelope_pb2, grants_pb2, registry_pb2

G = grants_pb2
NOK = 100  # øre

AGENCIES = ["fmov", "nav-ost-viken", "ofk", "bufetat-ost", "imdi-ost", "husbanken-ost", "hiof",
            "politi-ost"]
MUNICIPALITIES = ["halden", "sarpsborg", "fredrikstad", "moss-rygge", "indre-ostfold"]

def event(etype, payload, source="fmov", eid=None):
    """The events.publish body of one event, its data marked as protobuf."""
    return samtest.publish_req(etype, payload, source=source, eid=eid,
                               content_type="application/protobuf")


def publish(c, service, etype, payload, source="fmov", eid=None):
    """Publishes one event; returns (status code, message, PublishReply or None)."""
    rep, pr = samtest.publish(c, service, event(etype, payload, source, eid))
    return rep.status.code, rep.status.message, pr


def ok(c, etype, payload, source="fmov"):
    code, msg, pr = publish(c, "grants", etype, payload, source)
    assert code == 200, f"{etype}: {code} {msg}"
    return pr


def refused(c, etype, payload, code, *words, source="fmov"):
    got, msg, _ = publish(c, "grants", etype, payload, source)
    assert got == code, f"expected {code}, got {got}: {msg}"
    for w in words:
        assert w in msg, f"'{w}' not in refusal '{msg}'"
    return msg


def query(c, method, req, reply_type, code=200, timeout=5.0):
    rep, msg = c.call("grants", method, req, reply_type, timeout=timeout)
    assert rep.status.code == code, f"{method}: {rep.status.code} {rep.status.message}"
    return msg if code == 200 else rep.status.message


def verify(c, timeout=5.0):
    r = query(c, "grants.ledger.verify", b"", G.LedgerReport, timeout=timeout)
    assert r.balanced, f"ledger does not balance: {list(r.problems)}"
    return r


class World:
    """A broker, a registry with the fixture's agencies and municipalities, and grants."""

    def __init__(self, name, grants_args=()):
        self.dir = samtest.scratch(name)
        self.broker, self.ep = samtest.broker()
        self.registry = samtest.service("registry", self.ep, os.path.join(self.dir, "reg"))
        self.c = Client(self.ep)
        for a in AGENCIES:
            code, msg, _ = publish(self.c, "registry", "no.samordna.registry.agency.registered",
                                   registry_pb2.Agency(id=a, name=a.upper(), kind=2), source=a)
            assert code == 200, msg
        for m in MUNICIPALITIES:
            code, msg, _ = publish(self.c, "registry",
                                   "no.samordna.registry.municipality.registered",
                                   registry_pb2.Municipality(id=m, name=m.title()))
            assert code == 200, msg
        self.grants_args = list(grants_args)
        self.start_grants()

    def start_grants(self, wait_s=10):
        """Starts grants; after a kill -9 the broker hands the new process the requests the
        old one never answered, so its first ping may queue behind a backlog."""
        data = os.path.join(self.dir, "grants")
        self.grants = samtest.Proc(f"grants-{os.path.basename(self.dir)}-{len(samtest.PROCS)}",
                                   ["samordna-grants", "--broker", self.ep, "--data-dir", data,
                                    "--insecure", *self.grants_args])
        samtest.wait_service(self.ep, "grants", timeout=wait_s)

    def scheme(self, sid, frame_nok=None, owner="fmov", year=2019):
        s = G.Scheme(id=sid, name=f"Scheme {sid}", owner=owner, year=year, currency="NOK")
        if frame_nok is not None:
            s.has_frame = True
            s.frame_ore = frame_nok * NOK
        return ok(self.c, "no.samordna.grants.scheme.created", s, source=owner)

    def award(self, aid, scheme, recipient, nok, funders=None, source="fmov", **kw):
        a = self.award_msg(aid, scheme, recipient, nok, funders, **kw)
        return ok(self.c, "no.samordna.grants.award.granted", a, source=source)

    @staticmethod
    def award_msg(aid, scheme, recipient, nok, funders=None, **kw):
        funders = funders or [("fmov", nok)]
        a = G.Award(id=aid, scheme=scheme, recipient=recipient, amount_ore=nok * NOK,
                    purpose=kw.pop("purpose", "Koordinering av velferdspiloten"), currency="NOK",
                    **kw)
        for ag, share in funders:
            a.funders.add(agency=ag, amount_ore=share * NOK)
        return a


def test_fixture_awards_and_overview():
    w = World("fixture")
    w.scheme("prosjektskjonn-2019")  # the fixture's scheme has no frame
    for rid, nok in [("halden", 200000), ("sarpsborg", 200000), ("fredrikstad", 200000),
                     ("indre-ostfold", 500000), ("hiof", 400000)]:
        w.award(f"ps19-{rid}", "prosjektskjonn-2019", rid, nok)
    o = query(w.c, "grants.overview", G.OverviewRequest(recipient="halden", year=2019), G.Overview)
    assert o.committed_ore == 200000 * NOK and o.paid_ore == 0
    assert [(g.key, g.committed_ore, g.awards) for g in o.groups] == [("fmov", 20000000, 1)]
    assert [l.award for l in o.lines] == ["ps19-halden"]
    allr = query(w.c, "grants.overview", G.OverviewRequest(year=2019), G.Overview)
    assert allr.committed_ore == 1500000 * NOK, allr.committed_ore
    assert {g.key: g.committed_ore // NOK for g in allr.groups} == {
        "halden": 200000, "sarpsborg": 200000, "fredrikstad": 200000, "indre-ostfold": 500000,
        "hiof": 400000}
    a = query(w.c, "grants.awards.get", G.GrantsGetRequest(id="ps19-hiof"), G.AwardDetail)
    assert a.award.recipient_kind == "agency" and a.award.year == 2019
    # Another year holds nothing; the scheme knows its total.
    o = query(w.c, "grants.overview", G.OverviewRequest(recipient="halden", year=2020), G.Overview)
    assert o.committed_ore == 0 and len(o.lines) == 0
    s = query(w.c, "grants.schemes.get", G.GrantsGetRequest(id="prosjektskjonn-2019"), G.Scheme)
    assert s.committed_ore == 1500000 * NOK and not s.has_frame
    r = verify(w.c)
    assert r.entries == 5 and r.debits_ore == r.credits_ore
    assert w.grants.stop() == 0


def test_joint_award_payments_and_ledger():
    w = World("joint")
    w.scheme("felles-2019", frame_nok=1000000)
    w.award("joint-1", "felles-2019", "halden", 600000,
            funders=[("fmov", 400000), ("nav-ost-viken", 200000)], report_due="2020-03-01")
    d = G.Payment(award="joint-1", id="d1", amount_ore=300000 * NOK, date="2019-06-01")
    ok(w.c, "no.samordna.grants.disbursement.made", d, source="nav-ost-viken")
    a = query(w.c, "grants.awards.get", G.GrantsGetRequest(id="joint-1"), G.AwardDetail)
    paid = {f.agency: f.paid_ore // NOK for f in a.award.funders}
    assert paid == {"fmov": 200000, "nav-ost-viken": 100000}, paid
    assert [(p.id, [(s.agency, s.amount_ore // NOK) for s in p.split]) for p in a.payments] == [
        ("d1", [("fmov", 200000), ("nav-ost-viken", 100000)])]
    # An odd øre is split whole: nothing is lost.
    ok(w.c, "no.samordna.grants.disbursement.made",
       G.Payment(award="joint-1", id="d2", amount_ore=1))
    ok(w.c, "no.samordna.grants.repayment.received",
       G.Payment(award="joint-1", id="r1", amount_ore=30000 * NOK))
    ok(w.c, "no.samordna.grants.award.cancelled", G.Payment(award="joint-1", id="c1"))
    a = query(w.c, "grants.awards.get", G.GrantsGetRequest(id="joint-1"), G.AwardDetail)
    assert a.award.status == G.AWARD_STATUS_CANCELLED
    tot_paid = sum(f.paid_ore - f.repaid_ore for f in a.award.funders)
    assert tot_paid == 270000 * NOK + 1, tot_paid
    assert sum(f.cancelled_ore for f in a.award.funders) == 300000 * NOK - 1
    refused(w.c, "no.samordna.grants.disbursement.made",
            G.Payment(award="joint-1", id="d3", amount_ore=NOK), 409, "cancelled")
    # The frame got back what was cancelled and repaid.
    s = query(w.c, "grants.schemes.get", G.GrantsGetRequest(id="felles-2019"), G.Scheme)
    assert s.committed_ore == 270000 * NOK + 1 and s.paid_ore == 270000 * NOK + 1
    accts = query(w.c, "grants.ledger.accounts", G.AccountsRequest(prefix="budget/"),
                  G.AccountList)
    assert [(x.account, x.balance_ore) for x in accts.accounts] == [
        ("budget/felles-2019", (1000000 - 270000) * NOK - 1)]
    o = query(w.c, "grants.overview", G.OverviewRequest(recipient="halden", group_by="agency"),
              G.Overview)
    assert {g.key for g in o.groups} == {"fmov", "nav-ost-viken"}
    assert all(l.joint for l in o.lines)
    assert o.paid_ore == 270000 * NOK + 1
    # A final disbursement closes an award and releases the rest.
    w.award("single-1", "felles-2019", "sarpsborg", 100000)
    ok(w.c, "no.samordna.grants.disbursement.made",
       G.Payment(award="single-1", id="d1", amount_ore=40000 * NOK, final=True))
    a = query(w.c, "grants.awards.get", G.GrantsGetRequest(id="single-1"), G.AwardDetail)
    assert a.award.status == G.AWARD_STATUS_COMPLETED
    assert a.award.funders[0].cancelled_ore == 60000 * NOK
    refused(w.c, "no.samordna.grants.disbursement.made",
            G.Payment(award="single-1", id="d2", amount_ore=NOK), 409, "completed")
    verify(w.c)
    assert w.grants.stop() == 0


def test_refusals_store_nothing():
    w = World("refusals")
    w.scheme("ramme-2019", frame_nok=1000)
    w.award("a1", "ramme-2019", "halden", 600)
    before = verify(w.c)
    T_AW = "no.samordna.grants.award.granted"
    T_DI = "no.samordna.grants.disbursement.made"
    W = World.award_msg
    refused(w.c, T_AW, W("z0", "ramme-2019", "halden", 0), 400, "amount_ore", "more than zero")
    neg = W("neg", "ramme-2019", "halden", 10)
    neg.amount_ore = -1000
    refused(w.c, T_AW, neg, 400, "award.amount_ore")
    refused(w.c, T_AW, W("sh", "ramme-2019", "halden", 300, funders=[("fmov", 100),
                                                                     ("ofk", 100)]),
            422, "award.funders", "NOK 200", "NOK 300")
    refused(w.c, T_AW, W("ur", "ramme-2019", "oslo", 10), 422, "award.recipient", "'oslo'")
    refused(w.c, T_AW, W("uf", "ramme-2019", "halden", 10, funders=[("nobody", 10)]), 422,
            "award.funders[0].agency", "unknown agency 'nobody'")
    refused(w.c, T_AW, W("us", "no-such-scheme", "halden", 10), 422, "award.scheme")
    refused(w.c, T_AW, W("os", "ramme-2019", "halden", 500), 422, "award.amount_ore",
            "NOK 500", "NOK 400 left")
    sek = W("sek", "ramme-2019", "halden", 10)
    sek.currency = "SEK"
    refused(w.c, T_AW, sek, 422, "currency", "SEK")
    refused(w.c, T_AW, W("a1", "ramme-2019", "halden", 10), 409, "exists already")
    refused(w.c, T_AW, W("Bad Id", "ramme-2019", "halden", 10), 400, "award.id")
    refused(w.c, T_AW, W("bd", "ramme-2019", "halden", 10, report_due="2019-02-30"), 400,
            "award.report_due")
    refused(w.c, T_AW, W("long", "ramme-2019", "halden", 10, purpose="x" * 5000), 400,
            "award.purpose")
    refused(w.c, T_AW, b"\xff\xff\xff", 400, "undecodable")
    refused(w.c, "no.samordna.grants.award.invented", W("x", "ramme-2019", "halden", 1), 501)
    refused(w.c, T_DI, G.Payment(award="a1", id="d1", amount_ore=700 * NOK), 422,
            "disbursement.amount_ore", "NOK 700", "NOK 600")
    refused(w.c, T_DI, G.Payment(award="a1", id="d1", amount_ore=0), 400, "more than zero")
    refused(w.c, T_DI, G.Payment(award="nope", id="d1", amount_ore=NOK), 404, "unknown award")
    refused(w.c, "no.samordna.grants.repayment.received",
            G.Payment(award="a1", id="r1", amount_ore=NOK), 422, "repayment.amount_ore")
    refused(w.c, "no.samordna.grants.scheme.created",
            G.Scheme(id="s2", name="x", owner="fmov", year=2019, has_frame=True, frame_ore=-5),
            400, "scheme.frame_ore")
    refused(w.c, "no.samordna.grants.scheme.created",
            G.Scheme(id="s2", name="x", owner="ghost", year=2019), 422, "scheme.owner")
    # Nothing of the above was stored.
    after = verify(w.c)
    assert (after.entries, after.postings) == (before.entries, before.postings)
    lst = query(w.c, "grants.awards.list", G.ListAwardsRequest(), G.AwardList)
    assert [a.id for a in lst.awards] == ["a1"]
    a = query(w.c, "grants.awards.get", G.GrantsGetRequest(id="a1"), G.AwardDetail)
    assert len(a.payments) == 0
    query(w.c, "grants.awards.get", G.GrantsGetRequest(id="sh"), G.AwardDetail, code=404)
    query(w.c, "grants.overview", G.OverviewRequest(group_by="color", recipient="halden"),
          G.Overview, code=400)
    query(w.c, "grants.deadlines", G.DeadlinesRequest(before="soon"), G.DeadlineList, code=400)
    rep, _ = w.c.call("grants", "grants.overview", b"\x0a\xff")
    assert rep.status.code == 400
    assert w.grants.stop() == 0


def test_two_publishers_race_for_the_last_kroner():
    w = World("race")
    w.scheme("knapp-2019", frame_nok=1000)
    c2 = Client(w.ep)
    # Both send before either reads a reply: one LMDB writer decides.
    r1 = w.c.send("grants", "events.publish",
                  event("no.samordna.grants.award.granted",
                        World.award_msg("r-1", "knapp-2019", "halden", 600)))
    r2 = c2.send("grants", "events.publish",
                 event("no.samordna.grants.award.granted",
                       World.award_msg("r-2", "knapp-2019", "sarpsborg", 600)))
    a, b = w.c.recv(), c2.recv()
    assert a.id == r1 and b.id == r2
    codes = sorted([a.status.code, b.status.code])
    assert codes == [200, 422], codes
    loser = a if a.status.code == 422 else b
    assert "NOK 400 left" in loser.status.message, loser.status.message
    s = query(w.c, "grants.schemes.get", G.GrantsGetRequest(id="knapp-2019"), G.Scheme)
    assert s.committed_ore == 600 * NOK
    verify(w.c)
    c2.close()


def test_deadlines_instruments_and_needs():
    w = World("deadlines")
    w.scheme("frist-2019")
    w.award("f1", "frist-2019", "halden", 10, report_due="2020-01-15")
    w.award("f2", "frist-2019", "sarpsborg", 10, report_due="2019-12-01")
    w.award("f3", "frist-2019", "fredrikstad", 10, report_due="2020-06-30")
    w.award("f4", "frist-2019", "hiof", 10)
    d = query(w.c, "grants.deadlines", G.DeadlinesRequest(before="2020-02-01"), G.DeadlineList)
    assert [(x.award, x.report_due) for x in d.deadlines] == [("f2", "2019-12-01"),
                                                              ("f1", "2020-01-15")]
    assert list(d.deadlines[0].funders) == ["fmov"]
    d = query(w.c, "grants.deadlines",
              G.DeadlinesRequest(before="2021-01-01", page_size=1, **{"from": "2020-01-01"}),
              G.DeadlineList)
    assert [x.award for x in d.deadlines] == ["f1"] and d.next_page_token
    d = query(w.c, "grants.deadlines",
              G.DeadlinesRequest(before="2021-01-01", page_token=d.next_page_token),
              G.DeadlineList)
    assert [x.award for x in d.deadlines] == ["f3"]
    ok(w.c, "no.samordna.grants.instrument.registered",
       G.Instrument(id="bolig-prog", agency="husbanken-ost", municipality="halden", year=2019,
                    kind=G.INSTRUMENT_KIND_PROGRAMME, title="Bolig for velferd"),
       source="husbanken-ost")
    ok(w.c, "no.samordna.grants.instrument.registered",
       G.Instrument(id="nav-veileder", agency="nav-ost-viken", municipality="halden", year=2019,
                    kind=G.INSTRUMENT_KIND_POSITION, title="Veileder 50 %"),
       source="nav-ost-viken")
    refused(w.c, "no.samordna.grants.instrument.registered",
            G.Instrument(id="x", agency="ofk", municipality="halden", year=2019, kind=9,
                         title="t"), 400, "instrument.kind")
    refused(w.c, "no.samordna.grants.instrument.registered",
            G.Instrument(id="x", agency="ofk", municipality="hiof", year=2019,
                         kind=G.INSTRUMENT_KIND_ADVICE, title="t"), 422,
            "instrument.municipality")
    ok(w.c, "no.samordna.grants.need.recorded",
       G.Need(id="lavterskel", municipality="halden", year=2019,
              title="Lavterskeltilbud for ungdom"), source="halden")
    o = query(w.c, "grants.overview", G.OverviewRequest(recipient="halden", year=2019), G.Overview)
    assert {(g.key, g.awards, g.instruments) for g in o.groups} == {
        ("fmov", 1, 0), ("husbanken-ost", 0, 1), ("nav-ost-viken", 0, 1)}
    assert [n.id for n in o.needs] == ["lavterskel"]
    il = query(w.c, "grants.instruments.list", G.ListInstrumentsRequest(municipality="halden"),
               G.InstrumentList)
    assert sorted(i.id for i in il.instruments) == ["bolig-prog", "nav-veileder"]
    assert w.grants.stop() == 0


def test_cancelled_awards_have_no_deadline():
    """A cancelled award is not reported on: grants.deadlines (and so notify's reminders)
    leaves it out, while a partly cancelled or a completed award keeps its deadline. A store
    whose deadlines index still names a cancelled award (written before cancelling removed
    the entry) answers the same, and a page followed only by such awards is the last."""
    w = World("cancelled-deadlines")
    w.scheme("avlyst-2019")
    w.award("k0", "avlyst-2019", "halden", 10, report_due="2019-11-01")
    w.award("k1", "avlyst-2019", "halden", 10, report_due="2020-01-15")
    w.award("k2", "avlyst-2019", "sarpsborg", 10, report_due="2019-12-01")
    w.award("k3", "avlyst-2019", "fredrikstad", 10, report_due="2020-02-01")

    def due():
        d = query(w.c, "grants.deadlines", G.DeadlinesRequest(before="2020-03-01"),
                  G.DeadlineList)
        return [x.award for x in d.deadlines]

    assert due() == ["k0", "k2", "k1", "k3"]
    env = os.path.join(w.dir, "grants", "grants")
    stale = subprocess.run(["mdb_dump", "-p", "-s", "deadlines", env], check=True,
                           capture_output=True).stdout
    ok(w.c, "no.samordna.grants.award.cancelled",
       G.Payment(award="k1", id="c1", amount_ore=4 * NOK))
    ok(w.c, "no.samordna.grants.award.cancelled", G.Payment(award="k2", id="c1"))
    ok(w.c, "no.samordna.grants.disbursement.made",
       G.Payment(award="k3", id="d1", amount_ore=5 * NOK, final=True))
    assert due() == ["k0", "k1", "k3"]
    ok(w.c, "no.samordna.grants.award.cancelled", G.Payment(award="k1", id="c2"))
    a = query(w.c, "grants.awards.get", G.GrantsGetRequest(id="k1"), G.AwardDetail)
    assert a.award.status == G.AWARD_STATUS_CANCELLED
    assert due() == ["k0", "k3"]
    index = subprocess.run(["mdb_dump", "-p", "-s", "deadlines", env], check=True,
                           capture_output=True).stdout
    assert b"k1" not in index and b"k2" not in index and b"k3" in index, index
    # The index as a store written before the fix holds it: every award still listed there.
    assert w.grants.stop() == 0
    subprocess.run(["mdb_load", "-s", "deadlines", env], input=stale, check=True)
    w.start_grants()
    assert due() == ["k0", "k3"]
    # k0 fills a page of one; after it, up to k3's date, the index holds only cancelled
    # awards, so there is no next page to offer.
    d = query(w.c, "grants.deadlines",
              G.DeadlinesRequest(before="2020-02-01", page_size=1), G.DeadlineList)
    assert [x.award for x in d.deadlines] == ["k0"] and not d.next_page_token, d
    verify(w.c)
    assert w.grants.stop() == 0


def test_registry_projection_follows_and_asks():
    w = World("projection")
    w.scheme("proj-2019")
    # Registered a moment ago: the prepare hook asks the registry, never a false 404.
    code, msg, _ = publish(w.c, "registry", "no.samordna.registry.municipality.registered",
                           registry_pb2.Municipality(id="rakkestad", name="Rakkestad"))
    assert code == 200, msg
    w.award("rk-1", "proj-2019", "rakkestad", 1000)
    # The follower applies the registry's outbox into its own store: after a restart of grants
    # with the registry gone, what it had read is still known.
    code, msg, _ = publish(w.c, "registry", "no.samordna.registry.agency.registered",
                           registry_pb2.Agency(id="kirkens-bymisjon", name="Kirkens Bymisjon",
                                               kind=7), source="kirkens-bymisjon")
    assert code == 200, msg
    acc = None
    end = time.time() + 10
    while time.time() < end:
        code, msg, _ = publish(w.c, "grants", "no.samordna.grants.scheme.created",
                               G.Scheme(id="probe", name="p", owner="kirkens-bymisjon",
                                        year=2019), source="kirkens-bymisjon")
        acc = code
        if code == 200:
            break
        time.sleep(0.1)
    assert acc == 200
    assert w.grants.stop() == 0
    w.registry.stop()
    w.start_grants()
    w.award("rk-2", "probe", "rakkestad", 5, funders=[("kirkens-bymisjon", 5)],
            source="kirkens-bymisjon")
    # With the registry gone, a name grants has never seen is refused after one bounded ask.
    t0 = time.time()
    refused(w.c, "no.samordna.grants.award.granted",
            World.award_msg("rk-3", "proj-2019", "aremark", 5), 422, "award.recipient",
            "'aremark'")
    assert time.time() - t0 < 4.5, time.time() - t0
    assert "refs.registry_unavailable" in w.grants.logtext()
    verify(w.c)


def test_registry_option_names_the_service_followed_and_asked():
    """--registry names the service whose facts grants uses, for both ways it learns them:
    the follower reads that service's outbox, and the prepare hook asks that service
    (registry.<table>.get, the registry's own methods). Here the registry serves as
    "registry-ostfold" and no service called "registry" exists at all."""
    from fake_registry import FakeRegistry
    d = samtest.scratch("grants-other-registry")
    broker, ep = samtest.broker()
    reg = FakeRegistry(ep, service="registry-ostfold")
    reg.publish("no.samordna.registry.agency.registered",
                registry_pb2.Agency(id="fmov", name="FMOV", kind=2), "agencies", "fmov")
    reg.publish("no.samordna.registry.municipality.registered",
                registry_pb2.Municipality(id="halden", name="Halden"), "municipalities", "halden")
    grants = samtest.Proc("grants-other-registry",
                          ["samordna-grants", "--broker", ep, "--data-dir", d, "--insecure",
                           "--registry", "registry-ostfold", "--registry-wait-ms", "1000",
                           "--log-level", "debug"])
    c = Client(ep)
    try:
        samtest.wait_service(ep, "grants")
        # The follower read registry-ostfold's outbox: both facts, nothing asked.
        samtest.wait_for(lambda: "refs.applied added=2 cursor=2" in grants.logtext(), 10,
                         "the projection of registry-ostfold's outbox")
        code, msg, _ = publish(c, "grants", "no.samordna.grants.scheme.created",
                               G.Scheme(id="andre-2019", name="Andre", owner="fmov", year=2019))
        assert code == 200, msg
        assert reg.asked == [], reg.asked
        # Known to the registry but not yet in its outbox: the prepare hook asks it.
        reg.know("municipalities", "rakkestad",
                 registry_pb2.Municipality(id="rakkestad", name="Rakkestad"))
        code, msg, _ = publish(c, "grants", "no.samordna.grants.award.granted",
                               World.award_msg("rk-1", "andre-2019", "rakkestad", 10))
        assert code == 200, msg
        assert reg.asked == [("registry.municipalities.get", "rakkestad")], reg.asked
        assert 'refs.asked service="registry-ostfold" kind=m id="rakkestad" code=200' in \
            grants.logtext()
        # Unknown there too: asked as a municipality, then as an agency, and refused.
        code, msg, _ = publish(c, "grants", "no.samordna.grants.award.granted",
                               World.award_msg("ar-1", "andre-2019", "aremark", 10))
        assert code == 422 and "award.recipient" in msg and "'aremark'" in msg, (code, msg)
        assert reg.asked[1:] == [("registry.municipalities.get", "aremark"),
                                 ("registry.agencies.get", "aremark")], reg.asked
        a = query(c, "grants.awards.get", G.GrantsGetRequest(id="rk-1"), G.AwardDetail)
        assert a.award.recipient == "rakkestad" and a.award.recipient_kind == "municipality"
        assert grants.stop() == 0
    finally:
        c.close()
        reg.close()


def test_kill9_during_burst_keeps_acknowledged_events():
    """grants is killed with SIGKILL in the middle of a burst of 1500 publishes: it is frozen
    (SIGSTOP) wherever it is once 120 replies are in, the last 300 publishes are sent to the
    frozen process, and then it is killed, so the kill always lands with publishes it never
    answered. Afterwards every acknowledged award and payment is in the store, and nothing
    that was not sent."""
    w = World("kill9")
    w.scheme("burst-2019", frame_nok=10 ** 9)
    sent = {}
    n, tail = 1500, 300

    def send(i):
        if i % 3 == 2:
            msg = G.Payment(award=f"b-{i - 1}", id="p", amount_ore=50 * NOK)
            t = "no.samordna.grants.disbursement.made"
        else:
            msg = World.award_msg(f"b-{i}", "burst-2019", MUNICIPALITIES[i % 5], 100)
            t = "no.samordna.grants.award.granted"
        rid = w.c.send("grants", "events.publish", event(t, msg))
        sent[rid] = (t, msg)
        return rid

    for i in range(n - tail):
        send(i)
    acked = []
    while len(acked) < 120:
        rep = w.c.recv(timeout=30)  # a silence here fails: the burst stalled before the kill
        assert rep.status.code == 200, (rep.id, rep.status)
        acked.append(rep.id)
    os.kill(w.grants.p.pid, signal.SIGSTOP)
    tail_ids = {send(i) for i in range(n - tail, n)}
    w.grants.kill9()
    assert w.grants.p.returncode == -signal.SIGKILL, \
        f"grants was not killed by the signal: it exited {w.grants.p.returncode}"
    # Replies already on their way when the process died may still arrive: they were durable.
    while True:
        try:
            rep = w.c.recv(timeout=0.5)
        except samtest.Silence:
            break
        if rep.status.code == 200:
            acked.append(rep.id)
    assert not tail_ids & set(acked), "the frozen process acknowledged publishes sent to it"
    w.c.close()
    w.c = Client(w.ep)
    w.start_grants(wait_s=60)
    verify(w.c, timeout=60)  # answered once the backlog the broker handed over is through
    stored, token = set(), ""
    while True:
        page = query(w.c, "grants.awards.list",
                     G.ListAwardsRequest(scheme="burst-2019", page_size=500, page_token=token),
                     G.AwardList, timeout=30)
        stored |= {a.id for a in page.awards}
        token = page.next_page_token
        if not token:
            break
    awards_sent = {m.id for t, m in sent.values() if t.endswith("award.granted")}
    awards_acked = {sent[r][1].id for r in acked if sent[r][0].endswith("award.granted")}
    assert awards_acked <= stored, f"acknowledged, then lost: {sorted(awards_acked - stored)[:10]}"
    assert stored <= awards_sent, f"never sent: {sorted(stored - awards_sent)[:10]}"
    for rid in acked:
        t, msg = sent[rid]
        if t.endswith("disbursement.made"):
            a = query(w.c, "grants.awards.get", G.GrantsGetRequest(id=msg.award), G.AwardDetail)
            assert [p.id for p in a.payments] == ["p"], msg.award


def samctl(ep, *args, check=True):
    p = subprocess.run([os.path.join(samtest.BIN, "samctl"), "--broker", ep, *args],
                       capture_output=True, text=True, timeout=30)
    if check:
        assert p.returncode == 0, f"samctl {args}: {p.returncode} {p.stderr}"
    return p


def test_samctl_grants_commands():
    w = World("samctl")
    samctl(w.ep, "grants", "add-scheme", "prosjektskjonn-2019", "--name", "Prosjektskjønn",
           "--owner", "fmov", "--year", "2019")
    samctl(w.ep, "grants", "add-award", "ps19-halden", "--scheme", "prosjektskjonn-2019",
           "--recipient", "halden", "--amount", "200 000", "--purpose", "Koordinering")
    samctl(w.ep, "grants", "add-award", "joint", "--scheme", "prosjektskjonn-2019",
           "--recipient", "halden", "--amount", "1500,50", "--purpose", "Felles",
           "--funder", "fmov=1000", "--funder", "imdi-ost=500,50")
    samctl(w.ep, "grants", "disburse", "ps19-halden", "d1", "--amount", "50000")
    out = samctl(w.ep, "grants", "overview", "halden", "--year", "2019").stdout
    assert "201 000" in out and "200 000" in out and "50 000" in out and "imdi-ost" in out, out
    assert "500,50" in out, out
    js = samctl(w.ep, "--json", "grants", "overview", "halden", "--year", "2019").stdout
    assert '"committed_ore":20150050' in js, js
    out = samctl(w.ep, "grants", "ledger", "verify").stdout
    assert out.startswith("the books balance"), out
    bad = samctl(w.ep, "grants", "disburse", "ps19-halden", "d2", "--amount", "999999",
                 check=False)
    assert bad.returncode == 1 and "NOK 150 000" in bad.stderr, bad.stderr
    bad = samctl(w.ep, "grants", "add-award", "x", "--amount", "-5", check=False)
    assert bad.returncode == 2


FIXTURE_MONEY = {
    "format": "samordna-fixture/1",
    "agencies": [{"id": a, "name": a.upper(), "kind": "state_regional"} for a in AGENCIES],
    "municipalities": [{"id": m, "name": m.title()} for m in MUNICIPALITIES],
    # The fixture's schemes and awards (deploy/examples/ostfold-2019.json), amounts in NOK.
    "schemes": [{"id": "prosjektskjonn-2019",
                 "name": "Prosjektskjønnsmidler til fornying og innovasjon 2019",
                 "owner": "fmov", "year": 2019, "budget_nok": None}],
    "awards": [{"id": f"ps19-{r}", "scheme": "prosjektskjonn-2019", "recipient": r,
                "amount_nok": n, "purpose": "Koordinering av velferdspiloten",
                "funders": [{"agency": "fmov", "amount_nok": n}]}
               for r, n in [("halden", 200000), ("sarpsborg", 200000),
                            ("fredrikstad", 200000), ("indre-ostfold", 500000),
                            ("hiof", 400000)]],
    "instruments": [{"id": "bolig", "agency": "husbanken-ost", "municipality": "halden",
                     "year": 2019, "kind": "programme", "title": "Bolig for velferd"}],
    "needs": [{"id": "ungdom", "municipality": "halden", "year": 2019,
               "title": "Lavterskeltilbud for ungdom"}],
}


def test_samctl_import_of_the_fixture_money():
    import json
    d = samtest.scratch("import")
    broker, ep = samtest.broker()
    samtest.service("registry", ep, os.path.join(d, "reg"))
    samtest.service("grants", ep, os.path.join(d, "grants"))
    path = os.path.join(d, "money.json")
    with open(path, "w") as f:
        json.dump(FIXTURE_MONEY, f, ensure_ascii=False)
    samctl(ep, "import", path)
    out = samctl(ep, "grants", "overview", "--year", "2019").stdout
    for line in ["halden", "sarpsborg", "fredrikstad", "indre-ostfold", "hiof"]:
        assert line in out, out
    assert "1 500 000" in out and "400 000" in out and "500 000" in out, out
    js = json.loads(samctl(ep, "--json", "grants", "overview", "halden", "--year",
                           "2019").stdout)
    assert js["committed_ore"] == 20000000 and js["paid_ore"] == 0, js
    assert [i["id"] for i in js["instruments"]] == ["bolig"]
    assert [n["id"] for n in js["needs"]] == ["ungdom"]
    assert samctl(ep, "grants", "ledger", "verify").stdout.startswith("the books balance")
    # Importing again changes nothing.
    samctl(ep, "import", path)
    js = json.loads(samctl(ep, "--json", "grants", "overview", "--year", "2019").stdout)
    assert js["committed_ore"] == 150000000, js
    # A file whose shares do not sum is refused before anything is sent.
    bad = json.loads(json.dumps(FIXTURE_MONEY))
    bad["awards"][0]["id"] = "ps19-other"
    bad["awards"][0]["funders"][0]["amount_nok"] = 1
    with open(path, "w") as f:
        json.dump(bad, f)
    p = samctl(ep, "import", path, check=False)
    assert p.returncode != 0 and "$.awards[0].funders" in p.stderr, p.stderr
    c = Client(ep)
    query(c, "grants.awards.get", G.GrantsGetRequest(id="ps19-other"), G.AwardDetail, code=404)
    c.close()


def test_import_of_the_ostfold_fixture():
    """The fixture's money after `samctl import`: Halden, Sarpsborg and Fredrikstad
    NOK 200 000 each, Indre Østfold 500 000, Høgskolen i Østfold 400 000, 1 500 000 in all."""
    import json
    fixture = os.path.join(samtest.SRC, "deploy", "examples", "ostfold-2019.json")
    assert os.path.exists(fixture), f"the fixture is missing: {fixture}"
    d = samtest.scratch("import-fixture")
    broker, ep = samtest.broker()
    for name in ["registry", "status", "grants"]:
        samtest.service(name, ep, d)
    samctl(ep, "import", fixture)
    js = json.loads(samctl(ep, "--json", "grants", "overview", "--year", "2019").stdout)
    assert {g["key"]: g["committed_ore"] for g in js["groups"]} == {
        "halden": 20000000, "sarpsborg": 20000000, "fredrikstad": 20000000,
        "indre-ostfold": 50000000, "hiof": 40000000}, js
    assert js["committed_ore"] == 150000000
    out = samctl(ep, "grants", "overview", "halden", "--year", "2019").stdout
    assert "fmov" in out and "200 000" in out and "ps19-halden" in out, out
    assert samctl(ep, "grants", "ledger", "verify").stdout.startswith("the books balance")


def test_publishers_change_only_what_they_own():
    # The test in the broker's place, so it can hand grants authenticated callers (the real
    # broker passes identities only once CURVE is configured). It answers the service's own
    # client too: events.read from the registry outbox it stores, 404 to any registry get.
    ob = samtest.FakeBroker(outbox=[])
    for a in ["fmov", "ofk", "nav-ost-viken", "husbanken-ost"]:
        ob.store("no.samordna.registry.agency.registered", registry_pb2.Agency(id=a, name=a))
    ob.store("no.samordna.registry.municipality.registered",
             registry_pb2.Municipality(id="halden", name="Halden"))
    samtest.Proc("grants-own", ["samordna-grants", "--broker", ob.ep, "--data-dir",
                                samtest.scratch("grants-own"), "--insecure"])
    try:
        ob.accept("grants", credit=16)

        def publish_as(agency, etype, payload, role="publisher"):
            rep, _ = ob.publish(event(etype, payload, source=agency),
                                envelope_pb2.Caller(agency=agency, role=role))
            return rep.status.code, rep.status.message

        T = "no.samordna.grants."
        scheme = G.Scheme(id="eget-2019", name="Eget", owner="fmov", year=2019)
        # The projection catches up from the outbox the test serves.
        samtest.wait_for(lambda: publish_as("fmov", T + "scheme.created", scheme)[0] in
                         (200, 409), 10, "the registry projection")
        code, msg = publish_as("ofk", T + "scheme.created",
                               G.Scheme(id="annet", name="x", owner="fmov", year=2019))
        assert code == 403 and msg.startswith("scheme.owner:"), (code, msg)
        joint = World.award_msg("felles", "eget-2019", "halden", 300,
                                funders=[("fmov", 200), ("nav-ost-viken", 100)])
        code, msg = publish_as("ofk", T + "award.granted", joint)
        assert code == 403 and "owned by 'fmov'" in msg, (code, msg)
        assert publish_as("fmov", T + "award.granted", joint)[0] == 200
        pay = G.Payment(award="felles", id="d1", amount_ore=30 * NOK)
        code, msg = publish_as("husbanken-ost", T + "disbursement.made", pay)
        assert code == 403 and "neither the owner" in msg, (code, msg)
        assert publish_as("nav-ost-viken", T + "disbursement.made", pay)[0] == 200
        instr = G.Instrument(id="veileder", agency="nav-ost-viken", municipality="halden",
                             year=2019, kind=G.INSTRUMENT_KIND_ADVICE, title="Veiledning")
        code, msg = publish_as("husbanken-ost", T + "instrument.registered", instr)
        assert code == 403 and msg.startswith("instrument.agency:"), (code, msg)
        assert publish_as("nav-ost-viken", T + "instrument.registered", instr)[0] == 200
        need = G.Need(id="bolig", municipality="halden", year=2019, title="Boliger")
        code, msg = publish_as("ofk", T + "need.recorded", need)
        assert code == 403 and msg.startswith("need.municipality:"), (code, msg)
        code, msg = publish_as("fmov", T + "award.granted",
                               World.award_msg("lest", "eget-2019", "halden", 1), role="reader")
        assert code == 403, (code, msg)
    finally:
        ob.close()


if __name__ == "__main__":
    samtest.main()
