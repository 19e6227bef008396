"""The registry service through the real broker: every event type, the queries, and every
kind of bad input — malformed payload, unknown type, missing reference, oversized event,
wrong syntax, conflicts — each answered with a status naming the field and nothing stored.
Ownership (403) is checked with the test playing the broker, so it can present an
authenticated publisher's identity the way samordna-broker does.
"""
import os

import samtest
from samordna.v1 import envelope_pb2, events_pb2, registry_pb2 as R

T = "no.samordna.registry."
_ids = iter(range(1, 10**9))


def ce(etype, payload, eid=None, source="fmov"):
    """A PublishRequest carrying one registry event (`etype` after the type prefix)."""
    return samtest.publish_req(T + etype, payload, eid=eid, source=source)


class Registry(samtest.Closing):
    """A broker and a registry on loopback, with a client."""

    def __init__(self, name, *extra):
        self.broker, self.ep = samtest.broker()
        self.data = samtest.scratch(name)
        self.proc = samtest.service("registry", self.ep, self.data, *extra)
        self.c = samtest.Client(self.ep)

    def publish(self, etype, payload, eid=None, source="fmov"):
        """(status code, message, PublishReply or None)."""
        rep, pr = samtest.publish(self.c, "registry", ce(etype, payload, eid, source))
        return rep.status.code, rep.status.message, pr

    def ok(self, etype, payload, eid=None):
        return samtest.publish_ok(self.c, "registry", ce(etype, payload, eid)).seq

    def query(self, method, req, reply_type):
        rep, msg = self.c.call("registry", "registry." + method, req, reply_type)
        return rep.status.code, rep.status.message, msg

    def last_seq(self):
        rep, pr = self.c.call("registry", "ping", b"", envelope_pb2.PingReply)
        return pr.last_seq

    def close(self):
        self.c.close()
        assert self.proc.stop() == 0
        self.broker.stop()


def municipality(mid, name, **kw):
    m = R.Municipality(id=mid, name=name, population=kw.pop("population", 1000))
    for number, frm, until in kw.pop("numbers", []):
        n = m.numbers.add(number=number)
        setattr(n, "from", frm)
        n.until = until
    return m


def seed(r):
    """Two agencies, a programme, two municipalities: what pilots and invitations need.
    Returns the registry's last sequence number then."""
    r.ok("agency.registered", R.Agency(id="fmov", name="Fylkesmannen i Oslo og Viken",
                                       former_names=["Fylkesmannen i Østfold"],
                                       kind=R.AGENCY_KIND_COUNTY_GOVERNOR,
                                       roles=[R.AGENCY_ROLE_PILOT_OWNER]))
    r.ok("agency.registered", R.Agency(id="imdi-ost", name="IMDi Øst",
                                       kind=R.AGENCY_KIND_STATE_REGIONAL,
                                       roles=[R.AGENCY_ROLE_INVESTMENT_TEAM]))
    r.ok("agency.registered", R.Agency(id="nav-ost-viken", name="NAV Øst-Viken",
                                       kind=R.AGENCY_KIND_STATE_REGIONAL,
                                       roles=[R.AGENCY_ROLE_INVESTMENT_TEAM]))
    r.ok("programme.registered", R.Programme(id="velferdspiloten", name="Velferdspiloten",
                                             owner="fmov", briefing_interval_months=6))
    r.ok("municipality.registered", municipality("halden", "Halden",
                                                 numbers=[("0101", "", "2019-12-31"),
                                                          ("3001", "2020-01-01", "")]))
    r.ok("municipality.registered", municipality("sarpsborg", "Sarpsborg"))
    return r.last_seq()


def test_register_get_list_and_paginate():
    with Registry("reg-basic") as r:
        seed(r)
        code, msg, a = r.query("agencies.get", R.GetRequest(id="fmov"), R.Agency)
        assert code == 200 and a.name == "Fylkesmannen i Oslo og Viken", (code, msg)
        assert list(a.former_names) == ["Fylkesmannen i Østfold"]
        code, msg, _ = r.query("agencies.get", R.GetRequest(id="nobody"), R.Agency)
        assert code == 404 and "nobody" in msg
        code, _, lst = r.query("agencies.list", R.ListRequest(kind="state_regional"),
                               R.AgencyList)
        assert code == 200 and [x.id for x in lst.items] == ["imdi-ost", "nav-ost-viken"]
        # Pagination: one per page, the token is the last key.
        seen, token = [], ""
        while True:
            code, msg, lst = r.query("agencies.list", R.ListRequest(page_size=1, page_token=token),
                                     R.AgencyList)
            assert code == 200, msg
            seen += [x.id for x in lst.items]
            token = lst.next_page_token
            if not token:
                break
        assert seen == ["fmov", "imdi-ost", "nav-ost-viken"], seen
        code, msg, _ = r.query("agencies.list", R.ListRequest(municipality="halden"),
                               R.AgencyList)
        assert code == 400 and "municipality" in msg, "a filter that does not apply is refused"
        code, msg, _ = r.query("agencies.list", R.ListRequest(kind="spaceship"), R.AgencyList)
        assert code == 400 and "kind" in msg
        code, _, m = r.query("municipalities.get", R.GetRequest(number="3001"),
                             R.MunicipalityLookup)
        assert code == 200 and m.municipality.id == "halden"
        # Pilot, invitation and answer.
        r.ok("pilot.registered", R.Pilot(id="halden", programme="velferdspiloten",
                                         municipality="halden", challenge="Barnefattigdom",
                                         investment_leader="fmov", investment_team=["imdi-ost"]))
        r.ok("invitation.sent", R.Invitation(programme="velferdspiloten", municipality="halden"))
        r.ok("invitation.answered", R.InvitationAnswer(programme="velferdspiloten",
                                                       municipality="halden", answer=R.ANSWER_YES,
                                                       channel=R.CHANNEL_WRITTEN))
        code, msg, _ = r.publish("invitation.answered",
                                 R.InvitationAnswer(programme="velferdspiloten",
                                                    municipality="halden", answer=R.ANSWER_NO,
                                                    channel=R.CHANNEL_ORAL))
        assert code == 409 and "already answered" in msg, (code, msg)
        code, _, lst = r.query("invitations.list", R.ListRequest(answer="yes"), R.InvitationList)
        assert code == 200 and len(lst.items) == 1 and lst.items[0].channel == R.CHANNEL_WRITTEN
        code, _, lst = r.query("pilots.list", R.ListRequest(agency="imdi-ost"), R.PilotList)
        assert code == 200 and [p.id for p in lst.items] == ["halden"]
        code, _, lst = r.query("pilots.list", R.ListRequest(municipality="sarpsborg"), R.PilotList)
        assert code == 200 and len(lst.items) == 0
        # The outbox holds every accepted event, in order.
        rep, rr = r.c.call("registry", "events.read", events_pb2.ReadRequest(after_seq=0, max=100),
                           events_pb2.ReadReply)
        assert rep.status.code == 200 and [e.seq for e in rr.events] == list(range(1, 10))
        assert rr.events[-1].event.type == T + "invitation.answered"


def test_duplicate_is_answered_with_the_original_seq():
    with Registry("reg-dup") as r:
        a = R.Agency(id="fmov", name="Fylkesmannen", kind=R.AGENCY_KIND_COUNTY_GOVERNOR)
        code, _, first = r.publish("agency.registered", a, eid="same-id")
        assert code == 200 and not first.duplicate
        code, _, again = r.publish("agency.registered", a, eid="same-id")
        assert code == 200 and again.duplicate and again.seq == first.seq
        code, msg, _ = r.publish("agency.registered", a, eid="another-id")
        assert code == 409 and "agency.id" in msg and "already registered" in msg, (code, msg)
        assert r.last_seq() == 1


def test_malformed_payload_is_refused_and_nothing_stored():
    with Registry("reg-malformed") as r:
        code, msg, _ = r.publish("agency.registered", b"\x0a\xff\xff\xff\xff\x0f garbage")
        assert code == 400 and "undecodable" in msg, (code, msg)
        code, msg, _ = r.publish("agency.registered", b"")
        assert code == 400, (code, msg)
        rep, _ = r.c.call("registry", "events.publish", b"\xff\x00\x13")
        assert rep.status.code == 400
        assert r.last_seq() == 0
        assert "undecodable" in r.proc.logtext() or "refused" in r.proc.logtext()


BAD_TEXT = [  # 8 bytes each, the length of the placeholder they replace on the wire
    (b"bad\xff\xfeidx", "not valid UTF-8"),
    (b"nul\x00byte", "NUL"),
    (b"bel\x07char", "control character"),
    (b"a\nFORGED", "control character"),  # a newline is fine in notes, not in an id
    (b"c1\xc2\x85char", "control character"),
    (b"\xed\xa0\x80surrx", "not valid UTF-8"),  # a UTF-16 surrogate in UTF-8 dress
]


def _with_bytes(packed, placeholder, raw):
    assert len(placeholder) == len(raw) and packed.count(placeholder) == 1
    return packed.replace(placeholder, raw)


def test_text_that_strict_readers_cannot_read_is_refused_and_nothing_stored():
    """Valid protobuf carrying strings that are not clean UTF-8 text — in the CloudEvent's id,
    in an attribute, in the payload — is refused 400 naming the field; the refusal itself is
    clean text; nothing is stored; no log line is forged."""
    with Registry("reg-text") as r:
        for raw, why in BAD_TEXT:
            req = ce("agency.registered", R.Agency(id="fmov", name="F", kind=2), eid="PLACEHID")
            body = _with_bytes(req.SerializeToString(), b"PLACEHID", raw[:8])
            rep, _ = r.c.call("registry", "events.publish", body)
            assert rep.status.code == 400 and "event.id" in rep.status.message, rep.status
            assert why in rep.status.message, (raw, rep.status.message)
            rep.status.message.encode("utf-8")  # it parsed: a strict decoder took it
            req = ce("agency.registered", R.Agency(id="fmov", name="PLACEHNM", kind=2))
            body = _with_bytes(req.SerializeToString(), b"PLACEHNM", raw[:8])
            if b"\n" in raw:
                continue  # a newline is allowed in text fields (notes, descriptions)
            rep, _ = r.c.call("registry", "events.publish", body)
            assert rep.status.code == 400 and "data.name" in rep.status.message, rep.status
        ev = ce("agency.registered", R.Agency(id="fmov", name="F", kind=2))
        ev.event.attributes["subject"].ce_string = "PLACEHSB"
        body = _with_bytes(ev.SerializeToString(), b"PLACEHSB", b"sub\xffject")
        rep, _ = r.c.call("registry", "events.publish", body)
        assert rep.status.code == 400 and "event.attributes[0]" in rep.status.message, rep.status
        assert r.last_seq() == 0, "nothing was stored"
        rr = r.c.call("registry", "events.read", events_pb2.ReadRequest(after_seq=0),
                      events_pb2.ReadReply)[1]
        assert list(rr.events) == []
        log = r.proc.logtext()
        assert not any(line.startswith("FORGED") for line in log.splitlines()), log[-2000:]


def test_unknown_event_type_is_501():
    with Registry("reg-unknown") as r:
        code, msg, _ = r.publish("agency.exploded", R.Agency(id="fmov", name="x"))
        assert code == 501 and "no.samordna.registry.agency.exploded" in msg, (code, msg)
        code, msg, _ = r.query("agencies.explode", R.GetRequest(id="x"), R.Agency)
        assert code == 501
        assert r.last_seq() == 0


def test_missing_reference_is_422_naming_the_field():
    with Registry("reg-ref") as r:
        before = seed(r)
        cases = [
            (R.Pilot(id="moss", programme="velferdspiloten", municipality="moss", challenge="c",
                     investment_leader="fmov"), "pilot.municipality", "moss"),
            (R.Pilot(id="halden", programme="velferdspiloten", municipality="halden",
                     challenge="c", investment_leader="nobody"), "pilot.investment_leader",
             "nobody"),
            (R.Pilot(id="halden", programme="velferdspiloten", municipality="halden",
                     challenge="c", investment_leader="fmov", investment_team=["imdi-ost", "x"]),
             "pilot.investment_team[1]", "'x'"),
            (R.Pilot(id="halden", programme="nope", municipality="halden", challenge="c",
                     investment_leader="fmov"), "pilot.programme", "nope"),
        ]
        for payload, field, what in cases:
            code, msg, _ = r.publish("pilot.registered", payload)
            assert code == 422 and msg.startswith(field + ":") and what in msg, (code, msg)
        code, msg, _ = r.publish("invitation.sent", R.Invitation(programme="other",
                                                                 municipality="halden"))
        assert code == 422 and msg.startswith("invitation.programme:"), (code, msg)
        code, msg, _ = r.publish("programme.registered",
                                 R.Programme(id="p2", name="P2", owner="ghost",
                                             briefing_interval_months=6))
        assert code == 422 and msg.startswith("programme.owner:"), (code, msg)
        assert r.last_seq() == before, "refusals store nothing"
        code, _, _ = r.query("pilots.get", R.GetRequest(id="moss"), R.Pilot)
        assert code == 404


def test_oversized_events_are_refused():
    with Registry("reg-big") as r:
        # Over the registry's own payload limit (64 KiB), under the runtime's event limit.
        code, msg, _ = r.publish("agency.registered",
                                 R.Agency(id="fmov", name="x" * 70000,
                                          kind=R.AGENCY_KIND_COUNTY_GOVERNOR))
        assert code == 413 and "data" in msg, (code, msg)
        # Over the runtime's event limit.
        code, msg, _ = r.publish("agency.registered",
                                 R.Agency(id="fmov", name="x" * 300000,
                                          kind=R.AGENCY_KIND_COUNTY_GOVERNOR))
        assert code == 413, (code, msg)
        # A field over its own limit is a 400 naming it.
        code, msg, _ = r.publish("agency.registered",
                                 R.Agency(id="fmov", name="x" * 201,
                                          kind=R.AGENCY_KIND_COUNTY_GOVERNOR))
        assert code == 400 and msg.startswith("agency.name:"), (code, msg)
        assert r.last_seq() == 0


def test_syntax_refusals_name_the_field():
    with Registry("reg-syntax") as r:
        before = seed(r)
        cases = [
            ("agency.registered", R.Agency(id="Bad_Id", name="x", kind=1), "agency.id"),
            ("agency.registered", R.Agency(id="ok", name="x"), "agency.kind"),
            ("agency.registered", R.Agency(id="ok", name="x", kind=1, roles=[99]),
             "agency.roles[0]"),
            ("municipality.registered", municipality("m", "M", numbers=[("12", "", "")]),
             "municipality.numbers[0].number"),
            ("municipality.registered", municipality("m", "M",
                                                     numbers=[("0101", "2019-02-30", "")]),
             "municipality.numbers[0].from"),
            ("municipality.registered", municipality("m", "M", population=-5),
             "municipality.population"),
            ("programme.registered", R.Programme(id="p", name="P", owner="fmov",
                                                 briefing_interval_months=0),
             "programme.briefing_interval_months"),
            ("pilot.registered", R.Pilot(id="x", programme="velferdspiloten",
                                         municipality="halden", investment_leader="fmov"),
             "pilot.challenge"),
            ("person.registered", R.Person(id="p-1", name="Kari", email="not-an-address"),
             "person.email"),
            ("invitation.answered", R.InvitationAnswer(programme="velferdspiloten",
                                                       municipality="halden", answer=1),
             "invitation.channel"),
        ]
        for etype, payload, field in cases:
            code, msg, _ = r.publish(etype, payload)
            assert code == 400 and msg.startswith(field + ":"), (etype, code, msg)
        assert r.last_seq() == before


def test_merged_municipality_resolves_to_its_successor():
    with Registry("reg-merge") as r:
        seed(r)
        r.ok("municipality.registered", municipality("moss-rygge", "Moss/Rygge"))
        r.ok("municipality.registered", municipality("rygge", "Rygge"))
        r.ok("municipality.registered", municipality("moss", "Moss",
                                                     numbers=[("3002", "2020-01-01", "")]))
        merger = R.MunicipalityMerger(merged=["moss-rygge", "rygge"], into="moss")
        setattr(merger, "from", "2020-01-01")
        r.ok("municipality.merged", merger)
        code, msg, m = r.query("municipalities.get", R.GetRequest(id="moss-rygge"),
                               R.MunicipalityLookup)
        assert code == 200 and m.municipality.id == "moss" and m.resolved_from == "moss-rygge"
        assert "merged into moss on 2020-01-01" in m.message, m.message
        assert sorted(m.municipality.predecessors) == ["moss-rygge", "rygge"]
        # The old record keeps its history: it is listed with its successor.
        code, _, lst = r.query("municipalities.list", R.ListRequest(), R.MunicipalityList)
        old = [x for x in lst.items if x.id == "moss-rygge"][0]
        assert old.successor.municipality == "moss" and old.successor.number == "3002"
        code, msg, _ = r.publish("municipality.merged", merger)
        assert code == 409 and "already merged" in msg, (code, msg)
        # A successor named at registration: the new one lists it as predecessor.
        sm = municipality("spydeberg", "Spydeberg")
        sm.successor.municipality = "moss"
        sm.successor.name = "Moss"
        setattr(sm.successor, "from", "2020-01-01")
        r.ok("municipality.registered", sm)
        _, _, m = r.query("municipalities.get", R.GetRequest(id="spydeberg"),
                          R.MunicipalityLookup)
        assert m.municipality.id == "moss" and m.resolved_from == "spydeberg"


def test_person_erasure_keeps_the_roles_and_scrubs_the_outbox():
    with Registry("reg-erase") as r:
        seed(r)
        seq = r.ok("person.registered", R.Person(id="p-0001", name="Kari Nordmann",
                                                 email="kari@example.no", agency="fmov"))
        role = R.RoleHeld(role="contact person", programme="velferdspiloten")
        setattr(role, "from", "2018-09-01")
        r.ok("role.assigned", R.RoleAssignment(person="p-0001", role=role))
        code, msg, _ = r.publish("role.assigned", R.RoleAssignment(
            person="p-0001", role=R.RoleHeld(role="x", pilot="nope")))
        assert code == 422 and msg.startswith("assignment.role.pilot:"), (code, msg)
        r.ok("person.erased", R.PersonErasure(person="p-0001", requested="2020-03-01"))
        code, _, p = r.query("people.get", R.GetRequest(id="p-0001"), R.Person)
        assert code == 200 and p.erased and p.name == "" and p.email == ""
        assert p.erased_on == "2020-03-01"
        assert [x.role for x in p.roles] == ["contact person"], "the fact a role was held stays"
        rep, rr = r.c.call("registry", "events.read", events_pb2.ReadRequest(after_seq=seq - 1,
                                                                             max=1),
                           events_pb2.ReadReply)
        data = rr.events[0].event.binary_data
        assert b"Kari" not in data and b"kari@" not in data, "the outbox keeps no personal data"
        code, msg, _ = r.publish("role.assigned", R.RoleAssignment(person="p-0001", role=role))
        assert code == 409 and "erased" in msg, (code, msg)
        code, msg, _ = r.publish("person.erased", R.PersonErasure(person="p-0001"))
        assert code == 409


def test_rename_keeps_former_names_and_reports_need_their_agency():
    with Registry("reg-rename") as r:
        seed(r)
        r.ok("agency.renamed", R.AgencyRename(agency="fmov", name="Statsforvalteren i Oslo og Viken"))
        _, _, a = r.query("agencies.get", R.GetRequest(id="fmov"), R.Agency)
        assert a.name == "Statsforvalteren i Oslo og Viken"
        assert list(a.former_names) == ["Fylkesmannen i Østfold", "Fylkesmannen i Oslo og Viken"]
        code, msg, _ = r.publish("agency.renamed", R.AgencyRename(agency="ghost", name="x"))
        assert code == 404 and msg.startswith("agency.agency:"), (code, msg)
        code, msg, _ = r.publish("report.published", R.Report(id="r1", by="hiof", title="T"))
        assert code == 422 and msg.startswith("report.by:"), (code, msg)
        r.ok("report.published", R.Report(id="r1", by="imdi-ost", title="T"))
        code, _, lst = r.query("reports.list", R.ListRequest(agency="imdi-ost"), R.ReportList)
        assert [x.id for x in lst.items] == ["r1"]


# ---- ownership, with the test as the broker -------------------------------------------------

def test_publishers_change_only_what_they_own():
    with samtest.FakeBroker() as fb:
        data = samtest.scratch("reg-owner")
        p = samtest.Proc("registry-owner", ["samordna-registry", "--broker", fb.ep, "--data-dir",
                                            data, "--insecure"])
        fb.accept("registry")
        admin = envelope_pb2.Caller(role="admin", insecure=True)
        nav = envelope_pb2.Caller(agency="nav-ost-viken", role="publisher")
        fmov = envelope_pb2.Caller(agency="fmov", role="publisher")

        def pub(etype, payload, caller, source):
            rep, _ = fb.publish(ce(etype, payload, source=source), caller)
            return rep.status.code, rep.status.message

        assert pub("agency.registered", R.Agency(id="fmov", name="FM", kind=1), admin,
                   "fmov")[0] == 200
        code, msg = pub("agency.registered", R.Agency(id="imdi-ost", name="IMDi", kind=2), nav,
                        "nav-ost-viken")
        assert code == 403 and msg.startswith("agency.id:") and "nav-ost-viken" in msg, msg
        assert pub("agency.registered", R.Agency(id="nav-ost-viken", name="NAV", kind=2), nav,
                   "nav-ost-viken")[0] == 200
        code, msg = pub("agency.renamed", R.AgencyRename(agency="fmov", name="x"), nav,
                        "nav-ost-viken")
        assert code == 403, msg
        code, msg = pub("programme.registered", R.Programme(id="vp", name="VP", owner="fmov",
                                                            briefing_interval_months=6),
                        nav, "nav-ost-viken")
        assert code == 403 and msg.startswith("programme.owner:"), msg
        assert pub("programme.registered", R.Programme(id="vp", name="VP", owner="fmov",
                                                       briefing_interval_months=6),
                   fmov, "fmov")[0] == 200
        code, msg = pub("municipality.registered", municipality("halden", "Halden"), nav,
                        "nav-ost-viken")
        assert code == 403 and "owns no programme" in msg, msg
        assert pub("municipality.registered", municipality("halden", "Halden"), fmov,
                   "fmov")[0] == 200
        pilot = R.Pilot(id="halden", programme="vp", municipality="halden", challenge="c",
                        investment_leader="nav-ost-viken")
        code, msg = pub("pilot.registered", pilot, nav, "nav-ost-viken")
        assert code == 403 and msg.startswith("pilot.programme:"), msg
        assert pub("pilot.registered", pilot, fmov, "fmov")[0] == 200
        # The investment leader may update its pilot; another publisher may not.
        pilot.aims.append("Færre barn i lavinntektsfamilier")
        assert pub("pilot.updated", pilot, nav, "nav-ost-viken")[0] == 200
        assert pub("agency.registered", R.Agency(id="ofk", name="OFK", kind=3), admin,
                   "fmov")[0] == 200
        ofk = envelope_pb2.Caller(agency="ofk", role="publisher")
        code, msg = pub("pilot.updated", pilot, ofk, "ofk")
        assert code == 403 and msg.startswith("pilot.id:"), msg
        # People: only one's own.
        code, msg = pub("person.registered", R.Person(id="p-1", name="Ola", agency="fmov"), nav,
                        "nav-ost-viken")
        assert code == 403 and msg.startswith("person.agency:"), msg
        rep, got = fb.call("registry.pilots.get", R.GetRequest(id="halden"),
                           envelope_pb2.Caller(agency="hiof", role="reader"), R.Pilot)
        assert rep.status.code == 200 and list(got.aims) == ["Færre barn i lavinntektsfamilier"]
        assert p.stop() == 0


def test_samctl_log_level_sets_the_level():
    """samctl logs on stderr at the level --log-level names (warnings and errors only by
    default), and refuses a level it does not know."""
    import os
    import subprocess
    r = Registry("samctl-log")

    def samctl(*args):
        return subprocess.run([os.path.join(samtest.BIN, "samctl"), "--broker", r.ep,
                               *args, "ping", "registry"],
                              capture_output=True, text=True, timeout=30)

    def levels(p):
        assert p.returncode == 0 and "\nregistry " in p.stdout, (p.stdout, p.stderr)
        return {line.split()[1] for line in p.stderr.splitlines()}

    quiet = samctl()
    assert levels(quiet) == set(), quiet.stderr
    assert levels(samctl("--log-level", "warn")) == set()
    info = samctl("--log-level", "info")
    assert levels(info) == {"INFO"}, info.stderr
    assert "INFO samctl client.connect brokers=1" in info.stderr, info.stderr
    debug = samctl("--log-level", "debug")
    assert levels(debug) == {"INFO", "DEBUG"}, debug.stderr
    assert "DEBUG samctl call.request service=registry method=ping" in debug.stderr
    assert "DEBUG samctl call.reply service=registry method=ping code=200" in debug.stderr
    bad = samctl("--log-level", "loud")
    assert bad.returncode == 2 and "--log-level must be" in bad.stderr, bad.stderr
    r.close()


def test_systemd_readiness_and_sighup_reload():
    """Under systemd (NOTIFY_SOCKET) a service says READY=1 once its store is open and a
    broker answers, STOPPING=1 as it stops; SIGHUP reads the log level again from its
    configuration file and the service serves on."""
    import signal
    broker, ep = samtest.broker()
    folder = samtest.scratch("reg-sd")
    sock = samtest.NotifySocket(folder)
    cfg = os.path.join(folder, "registry.cfg")
    with open(cfg, "w") as f:
        f.write('log-level = "info"\n')
    proc = samtest.Proc("registry-sd", ["samordna-registry", "--broker", ep, "--data-dir", folder,
                                        "--insecure", "--config", cfg],
                        env=sock.env)
    c = samtest.Client(ep)
    try:
        assert sock.recv() == b"READY=1"
        samtest.wait_service(ep, "registry")
        with open(cfg, "w") as f:
            f.write('log-level = "debug"\n')
        proc.p.send_signal(signal.SIGHUP)
        samtest.wait_for(lambda: "service.reloaded log_level=debug" in proc.logtext(), 5,
                         "the reload logged")
        assert proc.alive(), "SIGHUP must not stop the service"
        rep, _ = c.call("registry", "ping", b"", envelope_pb2.PingReply)
        assert rep.status.code == 200
        assert proc.stop() == 0
        assert sock.recv() == b"STOPPING=1"
    finally:
        c.close()
        sock.close()


if __name__ == "__main__":
    samtest.main()
