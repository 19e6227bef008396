"""samordna-status through a real broker: milestones, the board (also as of a past day),
meetings and monthly series, work-plan steps, barriers and their escalation, the period
report, every refusal, and a kill -9 in the middle of a stream of events.

The registry is played by this test (tests/lib/fake_registry.py): a plain 7/MDP worker
named "registry" that answers
registry.<table>.get and long-polls events.read from an outbox the test fills. So the test
decides exactly which registry facts exist and when the status service may learn them —
through its outbox feed, or only by asking in its prepare step.
"""
import json
import os
import signal
import subprocess
import time

import samtest
from samtest import publish_req
from fake_registry import FakeRegistry
from samordna.v1 import envelope_pb2, events_pb2, registry_pb2, status_pb2

KINDS = [
    ("defined_challenge", "Definert utfordring"),
    ("anchored", "Forankret"),
    ("knowledge_base", "Kunnskapsgrunnlag"),
    ("defined_need", "Definert behov"),
    ("organised", "Organisert"),
    ("operative", "Operativ"),
    ("sustainable_structures", "Bærekraftige strukturer"),
]
AGENCIES = ["fmov", "imdi-ost", "ofk", "husbanken-ost", "nav-ost-viken", "hiof"]
MUNICIPALITIES = [("halden", "Halden"), ("sarpsborg", "Sarpsborg"),
                  ("fredrikstad", "Fredrikstad"), ("indre-ostfold", "Indre Østfold"),
                  ("moss-rygge", "Moss/Rygge")]
PILOTS = [("halden", "halden", "Barnefattigdom / folkehelse", "fmov"),
          ("sarpsborg", "sarpsborg", "Barnefattigdom og utenforskap", "ofk"),
          ("fredrikstad", "fredrikstad", "Barnefattigdom, levekår", "husbanken-ost")]


def pilot_view(pid, muni, challenge, leader, team=()):
    return registry_pb2.Pilot(id=pid, programme="velferdspiloten", municipality=muni,
                              challenge=challenge, investment_leader=leader,
                              investment_team=list(team))


def seed_registry(reg):
    for a in AGENCIES:
        reg.publish("no.samordna.registry.agency.registered",
                    registry_pb2.Agency(id=a, name=a.upper(),
                                        kind=registry_pb2.AGENCY_KIND_STATE_REGIONAL),
                    "agencies", a)
    for mid, name in MUNICIPALITIES:
        reg.publish("no.samordna.registry.municipality.registered",
                    registry_pb2.Municipality(id=mid, name=name, population=1000),
                    "municipalities", mid)
    for pid, muni, challenge, leader in PILOTS:
        reg.publish("no.samordna.registry.pilot.registered",
                    pilot_view(pid, muni, challenge, leader, ["nav-ost-viken"]), "pilots", pid)


class Env(samtest.Closing):
    """A broker, the fake registry and samordna-status, with a client."""

    def __init__(self, name, seed=True):
        self.data = samtest.scratch(name)
        self.broker, self.ep = samtest.broker()
        self.reg = FakeRegistry(self.ep)
        if seed:
            seed_registry(self.reg)
        self.svc = samtest.service("status", self.ep, self.data)
        self.c = samtest.Client(self.ep)

    def restart(self, kill=False):
        if kill:
            self.svc.kill9()
        else:
            assert self.svc.stop() == 0
        self.svc = samtest.service("status", self.ep, self.data)

    def close(self):
        self.c.close()
        # a clean stop is part of the contract (and under LeakSanitizer, a leak fails it)
        code = self.svc.stop() if self.svc.alive() else 0
        self.reg.close()
        assert code == 0, f"samordna-status exited {code}"

    def publish(self, etype, payload, eid=None, source="fmov"):
        rep, msg = samtest.publish(self.c, "status", publish_req(etype, payload, eid=eid,
                                                                 source=source))
        return rep.status.code, rep.status.message, msg

    def ok(self, etype, payload, eid=None):
        return samtest.publish_ok(self.c, "status", publish_req(etype, payload, eid=eid)).seq

    def query(self, method, req, reply_type):
        rep, msg = self.c.call("status", method, req, reply_type)
        assert rep.status.code == 200, f"{method}: {rep.status.code} {rep.status.message}"
        return msg

    def last_seq(self):
        rep, msg = self.c.call("status", "ping", b"", envelope_pb2.PingReply)
        return msg.last_seq

    def wait_projected(self, pilot):
        """Until the board lists `pilot` (the registry feed reached it)."""
        samtest.wait_for(lambda: any(r.pilot == pilot for r in self.board().rows), 10,
                         f"pilot {pilot} in the projection")

    def board(self, as_of=""):
        return self.query("status.board", status_pb2.BoardRequest(as_of=as_of),
                          status_pb2.BoardReply)

    def define_kinds(self):
        for i, (kid, label) in enumerate(KINDS):
            self.ok("no.samordna.status.milestone_kind.defined",
                    status_pb2.MilestoneKind(id=kid, label=label, order=i + 1))


def reach(env, pilot, kind, date, evidence="", eid=None):
    return env.ok("no.samordna.status.milestone.reached",
                  status_pb2.MilestoneReached(pilot=pilot, kind=kind, date=date,
                                              evidence=evidence), eid)


def assert_now_is_history(env):
    """The board of today (kept up to date on every write) equals the history folded to the
    end of time: the two ways of computing it never drift apart."""
    now, folded = env.board(), env.board("2999-12-31")
    key = lambda b: [(r.pilot, [(c.kind, c.date) for c in r.cells], r.phase, r.open_barriers,
                      r.last_meeting_date) for r in b.rows]
    assert key(now) == key(folded), (now, folded)


def row(board, pilot):
    return next(r for r in board.rows if r.pilot == pilot)


def cells(r):
    return {c.kind: c.date for c in r.cells}


# ---- tests ----------------------------------------------------------------------------------

def test_board_milestones_and_as_of():
    with Env("status-board") as env:
        env.define_kinds()
        env.wait_projected("fredrikstad")
        for kind in ["defined_challenge", "knowledge_base", "defined_need", "anchored",
                     "organised", "operative"]:
            reach(env, "sarpsborg", kind, "2019-11-11", "status slide 2019-11-11")
        reach(env, "halden", "defined_challenge", "2018-09-19")
        reach(env, "halden", "anchored", "2019-01-18")
        reach(env, "fredrikstad", "anchored", "2019-03-04")  # out of canonical order
        b = env.board()
        assert [k.id for k in b.kinds] == [k for k, _ in KINDS]
        assert [r.pilot for r in b.rows] == ["fredrikstad", "halden", "sarpsborg"]
        s = row(b, "sarpsborg")
        assert s.phase == "operative" and s.phase_label == "Operativ", s
        assert s.municipality_name == "Sarpsborg" and s.investment_leader == "ofk"
        assert cells(s)["operative"] == "2019-11-11" and cells(s)["sustainable_structures"] == ""
        f = row(b, "fredrikstad")
        assert f.phase == "anchored" and cells(f)["defined_challenge"] == "", f
        h = row(b, "halden")
        assert h.phase == "anchored"
        # as it stood: before Halden's anchoring, after its challenge was defined
        past = env.board("2018-12-31")
        assert past.as_of == "2018-12-31"
        assert row(past, "halden").phase == "defined_challenge"
        assert row(past, "sarpsborg").phase == "" and row(past, "fredrikstad").phase == ""
        assert all(c.date == "" for c in row(past, "sarpsborg").cells)
        # one pilot only
        one = env.query("status.board", status_pb2.BoardRequest(pilot="halden"),
                        status_pb2.BoardReply)
        assert [r.pilot for r in one.rows] == ["halden"]
        assert_now_is_history(env)
        # the registry changes a pilot's investment leader: the board follows its outbox
        env.reg.publish("no.samordna.registry.pilot.updated",
                        pilot_view("fredrikstad", "fredrikstad", "Barnefattigdom, levekår",
                                   "imdi-ost"), "pilots", "fredrikstad")
        samtest.wait_for(lambda: row(env.board(), "fredrikstad").investment_leader == "imdi-ost",
                         10, "pilot.updated in the projection")
        rep, _ = env.c.call("status", "status.board", status_pb2.BoardRequest(pilot="nowhere"))
        assert rep.status.code == 404 and "pilot" in rep.status.message


def test_revert_keeps_history():
    with Env("status-revert") as env:
        env.define_kinds()
        env.wait_projected("halden")
        reach(env, "halden", "defined_challenge", "2018-09-01")
        reach(env, "halden", "anchored", "2018-10-01")
        code, msg, _ = env.publish("no.samordna.status.milestone.reverted",
                                   status_pb2.MilestoneReverted(pilot="halden", kind="anchored",
                                                                date="2019-02-01", reason=""))
        assert code == 400 and msg.startswith("reason:"), (code, msg)
        env.ok("no.samordna.status.milestone.reverted",
               status_pb2.MilestoneReverted(pilot="halden", kind="anchored", date="2019-02-01",
                                            reason="the leaders' group was replaced"))
        assert row(env.board(), "halden").phase == "defined_challenge"
        assert row(env.board("2019-01-15"), "halden").phase == "anchored"
        # reverting again: it is not reached
        code, msg, _ = env.publish("no.samordna.status.milestone.reverted",
                                   status_pb2.MilestoneReverted(pilot="halden", kind="anchored",
                                                                date="2019-03-01", reason="x"))
        assert code == 409 and "has not reached" in msg, (code, msg)
        # reaching it twice
        code, msg, _ = env.publish("no.samordna.status.milestone.reached",
                                   status_pb2.MilestoneReached(pilot="halden",
                                                               kind="defined_challenge",
                                                               date="2019-03-01"))
        assert code == 409 and "already" in msg, (code, msg)
        # dated before the last change of the same milestone
        code, msg, _ = env.publish("no.samordna.status.milestone.reached",
                                   status_pb2.MilestoneReached(pilot="halden", kind="anchored",
                                                               date="2019-01-01"))
        assert code == 409 and msg.startswith("date:"), (code, msg)
        reach(env, "halden", "anchored", "2019-04-01", "new anchoring meeting")
        hist = env.query("status.milestones.history",
                         status_pb2.MilestoneHistoryRequest(pilot="halden"),
                         status_pb2.MilestoneHistoryReply)
        assert [(c.kind, c.reached, c.date) for c in hist.changes] == [
            ("defined_challenge", True, "2018-09-01"), ("anchored", True, "2018-10-01"),
            ("anchored", False, "2019-02-01"), ("anchored", True, "2019-04-01")]
        assert hist.changes[2].reason == "the leaders' group was replaced"
        assert hist.changes[2].actor == "fmov"
        assert_now_is_history(env)


def test_refusals_store_nothing():
    with Env("status-refusals") as env:
        env.define_kinds()
        env.wait_projected("halden")
        reach(env, "halden", "defined_challenge", "2018-09-01")
        env.ok("no.samordna.status.barrier.registered",
               status_pb2.BarrierRegistered(id="b1", title="Tilskudd krever søknad hvert år",
                                            pilot="halden", raised_by="fmov", concerns="rule",
                                            date="2019-01-01"))
        env.ok("no.samordna.status.barrier.moved",
               status_pb2.BarrierMoved(id="b1", state="changed", date="2019-06-01"))
        before = env.last_seq()
        board_before = env.board().SerializeToString()
        M = status_pb2
        cases = [
            ("no.samordna.status.milestone.reached",
             M.MilestoneReached(pilot="nowhere", kind="anchored", date="2019-01-01"),
             422, "pilot: unknown pilot 'nowhere'"),
            ("no.samordna.status.milestone.reached",
             M.MilestoneReached(pilot="halden", kind="flying", date="2019-01-01"),
             422, "kind: unknown milestone kind 'flying'"),
            ("no.samordna.status.milestone.reached",
             M.MilestoneReached(pilot="halden", kind="anchored", date="2019-13-01"),
             400, "date: '2019-13-01' is not a date"),
            ("no.samordna.status.milestone.reached",
             M.MilestoneReached(pilot="halden", kind="anchored", date="1.1.2019"),
             400, "date: '1.1.2019' is not a date"),
            ("no.samordna.status.milestone.reached",
             M.MilestoneReached(pilot="halden", kind="anchored", date="2019-01-01",
                                actor="nobody"),
             422, "actor: unknown agency 'nobody'"),
            ("no.samordna.status.milestone.reached",
             M.MilestoneReached(pilot="Halden!", kind="anchored", date="2019-01-01"),
             400, "pilot: 'Halden!' is not an id"),
            ("no.samordna.status.milestone.reverted",
             M.MilestoneReverted(pilot="halden", kind="defined_challenge", date="2019-01-01"),
             400, "reason: required"),
            ("no.samordna.status.barrier.moved",
             M.BarrierMoved(id="b1", state="identified", date="2019-07-01"),
             409, "state: barrier 'b1' cannot move from changed to identified"),
            ("no.samordna.status.barrier.moved",
             M.BarrierMoved(id="b1", state="escalated", date="2019-07-01"),
             400, "state: unknown barrier state 'escalated'"),
            ("no.samordna.status.barrier.moved",
             M.BarrierMoved(id="b9", state="changed", date="2019-07-01"),
             404, "id: unknown barrier 'b9'"),
            ("no.samordna.status.barrier.registered",
             M.BarrierRegistered(id="b2", title="x" * 201, pilot="halden", concerns="rule",
                                 date="2019-01-01"),
             400, "title: longer than 200 bytes"),
            ("no.samordna.status.barrier.registered",
             M.BarrierRegistered(id="b2", title="t", pilot="halden", concerns="mood",
                                 date="2019-01-01"),
             400, "concerns: 'mood' is not rule, practice or allocation_letter"),
            ("no.samordna.status.barrier.registered",
             M.BarrierRegistered(id="b2", title="t", concerns="rule", date="2019-01-01"),
             400, "pilot: a barrier is found in a pilot or a municipality"),
            ("no.samordna.status.meeting.logged",
             M.MeetingLogged(id="m1", kind="working", date="2019-02-30", pilot="halden"),
             400, "date: '2019-02-30' is not a date"),
            ("no.samordna.status.meeting.logged",
             M.MeetingLogged(id="m1", kind="working", date="2019-02-01", municipality="oslo"),
             422, "municipality: unknown municipality 'oslo'"),
            ("no.samordna.status.meeting.logged",
             M.MeetingLogged(id="m1", kind="working", date="2019-02-01", pilot="halden",
                             municipality="sarpsborg"),
             422, "municipality: pilot 'halden' belongs to 'halden', not 'sarpsborg'"),
            ("no.samordna.status.step.added",
             M.PlanStepAdded(pilot="halden", id="s1", title="Kunnskapsgrunnlag", owner="fmov",
                             state="someday", date="2019-01-01"),
             400, "state: unknown step state 'someday'"),
            ("no.samordna.status.step.updated",
             M.PlanStepUpdated(pilot="halden", id="s9", state="done", date="2019-01-01"),
             404, "id: pilot 'halden' has no step 's9'"),
            ("no.samordna.status.milestone_kind.defined",
             M.MilestoneKind(id="extra", label="Ekstra", order=3),
             409, "order: 3 is taken by kind 'knowledge_base'"),
            ("no.samordna.status.milestone.reached", b"\xff\xff\xff", 400,
             "event no.samordna.status.milestone.reached: data is undecodable"),
            ("no.samordna.status.pilot.exploded", M.MilestoneKind(id="x"), 501, ""),
        ]
        for etype, payload, code, prefix in cases:
            got, msg, _ = env.publish(etype, payload)
            assert got == code and msg.startswith(prefix) if prefix else got == code, \
                (etype, got, msg, code, prefix)
        assert env.last_seq() == before, "a refused event reached the outbox"
        assert env.board().SerializeToString() == board_before
        b = env.query("status.barriers.get", status_pb2.StatusGetRequest(id="b1"),
                      status_pb2.Barrier)
        assert [s.state for s in b.history] == ["identified", "changed"]


def test_unprojected_pilot_is_asked_for():
    """A pilot the feed has not delivered yet is asked of the registry once, then kept."""
    with Env("status-ask") as env:
        env.define_kinds()
        env.wait_projected("halden")
        env.reg.know("pilots", "moss", pilot_view("moss", "moss-rygge", "Oppstart", "fmov"))
        reach(env, "moss", "defined_challenge", "2020-02-01")
        asked = [a for a in env.reg.asked if a == ("registry.pilots.get", "moss")]
        assert len(asked) == 1, env.reg.asked
        reach(env, "moss", "anchored", "2020-03-01")
        assert len([a for a in env.reg.asked if a[1] == "moss"]) == 1, env.reg.asked
        assert row(env.board(), "moss").phase == "anchored"
        # a pilot the registry does not know either: one question, then the refusal
        code, msg, _ = env.publish("no.samordna.status.milestone.reached",
                                   status_pb2.MilestoneReached(pilot="ghost", kind="anchored",
                                                               date="2020-03-01"))
        assert code == 422 and msg == "pilot: unknown pilot 'ghost'", (code, msg)
        assert ("registry.pilots.get", "ghost") in env.reg.asked


def test_meetings_series_and_paging():
    with Env("status-meetings") as env:
        env.wait_projected("halden")
        env.ok("no.samordna.status.meeting.logged",
               status_pb2.MeetingLogged(id="halden-anchoring", kind="anchoring",
                                        date="2018-09-19", pilot="halden",
                                        title="Forankringsmøte / oppstartmøte Halden",
                                        participants=["fmov", "nav-ost-viken"]))
        env.ok("no.samordna.status.meeting.logged",
               status_pb2.MeetingLogged(id="halden-internal", kind="internal", date="2018-11-30",
                                        pilot="halden", monthly_until="2019-04-30",
                                        title="Internt månedsmøte"))
        env.ok("no.samordna.status.meeting.logged",
               status_pb2.MeetingLogged(id="moss-startup", kind="startup", date="2018-11-18",
                                        municipality="moss-rygge", title="Oppstartmøte"))
        env.ok("no.samordna.status.meeting.logged",
               status_pb2.MeetingLogged(id="briefing-2019-11", kind="briefing",
                                        date="2019-11-14", title="Velferdspiloten – status"))
        code, msg, _ = env.publish("no.samordna.status.meeting.logged",
                                   status_pb2.MeetingLogged(id="halden-anchoring", kind="x",
                                                            date="2019-01-01"))
        assert code == 409 and msg.startswith("id:"), (code, msg)
        got = env.query("status.meetings.list", status_pb2.MeetingsRequest(pilot="halden"),
                        status_pb2.MeetingsReply)
        ids = [m.id for m in got.meetings]
        assert ids == ["halden-anchoring", "halden-internal-2018-11", "halden-internal-2018-12",
                       "halden-internal-2019-01", "halden-internal-2019-02",
                       "halden-internal-2019-03", "halden-internal-2019-04"], ids
        # the 30th, clamped to February's last day
        assert got.meetings[4].date == "2019-02-28" and got.meetings[4].series == "halden-internal"
        # never on a weekend or a public holiday: 30 December 2018 was a Sunday (on to Monday
        # the 31st); 30 and 31 March 2019 a Saturday and a Sunday (back to Friday the 29th)
        assert got.meetings[2].date == "2018-12-31" and got.meetings[5].date == "2019-03-29"
        assert [m.date for m in got.meetings[1:]] == ["2018-11-30", "2018-12-31", "2019-01-30",
                                                     "2019-02-28", "2019-03-29", "2019-04-30"]
        assert got.meetings[0].municipality == "halden"  # taken from the pilot
        # pages of 3 over every meeting
        seen, token = [], ""
        while True:
            page = env.query("status.meetings.list",
                             status_pb2.MeetingsRequest(page_size=3, page_token=token),
                             status_pb2.MeetingsReply)
            seen += [m.id for m in page.meetings]
            token = page.next_page_token
            if not token:
                break
        assert len(seen) == 9 and len(set(seen)) == 9, seen
        dates = [env.query("status.meetings.get", status_pb2.StatusGetRequest(id=i),
                           status_pb2.Meeting).date for i in seen]
        assert dates == sorted(dates)
        period = env.query("status.meetings.list", _period_req("2018-11-01", "2018-12-31"),
                           status_pb2.MeetingsReply)
        assert [m.id for m in period.meetings] == ["moss-startup", "halden-internal-2018-11",
                                                   "halden-internal-2018-12"]
        assert row(env.board(), "halden").last_meeting_date == "2019-04-30"
        h = row(env.board("2019-01-15"), "halden")
        assert h.last_meeting_date == "2018-12-31" and h.last_meeting_kind == "internal"
        assert row(env.board("2018-09-01"), "halden").last_meeting_date == ""
        rep, _ = env.c.call("status", "status.meetings.list",
                            status_pb2.MeetingsRequest(page_token="zz"))
        assert rep.status.code == 400 and rep.status.message.startswith("page_token")


def _period_req(frm, to):
    req = status_pb2.MeetingsRequest(to=to)
    setattr(req, "from", frm)
    return req


def test_steps():
    with Env("status-steps") as env:
        env.wait_projected("halden")
        env.ok("no.samordna.status.step.added",
               status_pb2.PlanStepAdded(pilot="halden", id="step-1",
                                        title="Bygge kunnskapsgrunnlag", owner="hiof",
                                        due="2019-03-01", date="2018-11-16"))
        env.ok("no.samordna.status.step.added",
               status_pb2.PlanStepAdded(pilot="halden", id="step-2",
                                        title="Sette mål for arbeidet", owner="fmov",
                                        date="2018-11-16"))
        code, msg, _ = env.publish("no.samordna.status.step.added",
                                   status_pb2.PlanStepAdded(pilot="halden", id="step-3",
                                                            title="t", owner="nobody",
                                                            date="2018-11-16"))
        assert code == 422 and msg == "owner: unknown agency 'nobody'", (code, msg)
        env.ok("no.samordna.status.step.updated",
               status_pb2.PlanStepUpdated(pilot="halden", id="step-1", state="done",
                                          date="2019-02-20", note="rapport levert"))
        steps = env.query("status.steps.list", status_pb2.PlanStepsRequest(pilot="halden"),
                          status_pb2.PlanStepsReply)
        assert [(s.id, s.state, s.owner) for s in steps.steps] == [
            ("step-1", "done", "hiof"), ("step-2", "planned", "fmov")]
        assert steps.steps[0].changed == "2019-02-20" and steps.steps[0].due == "2019-03-01"
        done = env.query("status.steps.list", status_pb2.PlanStepsRequest(state="done"),
                         status_pb2.PlanStepsReply)
        assert [s.id for s in done.steps] == ["step-1"]
        # a step added without a date is dated today, in Oslo (not 1970, not UTC's day)
        today = samtest.today().isoformat()
        env.ok("no.samordna.status.step.added",
               status_pb2.PlanStepAdded(pilot="halden", id="step-today", title="I dag",
                                        owner="fmov"))
        steps = env.query("status.steps.list", status_pb2.PlanStepsRequest(pilot="halden"),
                          status_pb2.PlanStepsReply)
        dated = {s.id: s.changed for s in steps.steps}
        assert dated["step-today"] == today, (dated, today)


def test_barriers_escalation_and_filters():
    with Env("status-barriers") as env:
        env.wait_projected("sarpsborg")
        B = status_pb2
        env.ok("no.samordna.status.barrier.registered",
               B.BarrierRegistered(id="tb-imdi-2019", title="Tilskudd kan ikke ses i sammenheng",
                                   pilot="halden", raised_by="imdi-ost",
                                   concerns="allocation_letter",
                                   reference="Tildelingsbrev IMDi 2019, pkt. 3",
                                   concerns_agency="imdi-ost", date="2019-02-01"))
        env.ok("no.samordna.status.barrier.registered",
               B.BarrierRegistered(id="praksis-nav", title="Ulik praksis for oppfølging",
                                   municipality="sarpsborg", raised_by="nav-ost-viken",
                                   concerns="practice", date="2019-03-01"))
        env.ok("no.samordna.status.barrier.moved",
               B.BarrierMoved(id="tb-imdi-2019", state="raised_regionally", date="2019-04-01",
                              by="fmov", note="tatt opp i styringsgruppen"))
        env.ok("no.samordna.status.barrier.moved",
               B.BarrierMoved(id="tb-imdi-2019", state="raised_nationally", date="2019-09-01",
                              by="fmov"))
        code, msg, _ = env.publish("no.samordna.status.barrier.moved",
                                   B.BarrierMoved(id="tb-imdi-2019", state="raised_regionally",
                                                  date="2019-10-01"))
        assert code == 409 and "only moves forward" in msg, (code, msg)
        code, msg, _ = env.publish("no.samordna.status.barrier.moved",
                                   B.BarrierMoved(id="tb-imdi-2019", state="changed",
                                                  date="2019-08-01"))
        assert code == 409 and msg.startswith("date:"), (code, msg)
        assert row(env.board(), "halden").open_barriers == 1
        env.ok("no.samordna.status.barrier.moved",
               B.BarrierMoved(id="tb-imdi-2019", state="changed", date="2019-11-01",
                              note="nytt tildelingsbrev"))
        b = env.query("status.barriers.get", B.StatusGetRequest(id="tb-imdi-2019"), B.Barrier)
        assert [(s.state, s.date, s.by) for s in b.history] == [
            ("identified", "2019-02-01", "imdi-ost"), ("raised_regionally", "2019-04-01", "fmov"),
            ("raised_nationally", "2019-09-01", "fmov"), ("changed", "2019-11-01", "fmov")]
        assert b.municipality == "halden"
        assert row(env.board(), "halden").open_barriers == 0
        assert row(env.board("2019-10-01"), "halden").open_barriers == 1
        assert row(env.board("2019-01-01"), "halden").open_barriers == 0
        lst = lambda **kw: [x.id for x in env.query("status.barriers.list",
                                                    B.BarriersRequest(**kw),
                                                    B.BarriersReply).barriers]
        assert_now_is_history(env)
        assert lst() == ["praksis-nav", "tb-imdi-2019"]
        assert lst(open_only=True) == ["praksis-nav"]
        assert lst(state="changed") == ["tb-imdi-2019"]
        assert lst(municipality="sarpsborg") == ["praksis-nav"]
        assert lst(raised_by="imdi-ost") == ["tb-imdi-2019"]
        assert lst(concerns="practice") == ["praksis-nav"]
        first = env.query("status.barriers.list", B.BarriersRequest(page_size=1),
                          B.BarriersReply)
        assert [x.id for x in first.barriers] == ["praksis-nav"] and first.next_page_token
        second = env.query("status.barriers.list",
                           B.BarriersRequest(page_size=1, page_token=first.next_page_token),
                           B.BarriersReply)
        assert [x.id for x in second.barriers] == ["tb-imdi-2019"]
        assert not second.next_page_token
        rep, _ = env.c.call("status", "status.barriers.list", B.BarriersRequest(state="lost"))
        assert rep.status.code == 400 and rep.status.message.startswith("state:")


def test_report_of_a_period():
    with Env("status-report") as env:
        env.define_kinds()
        env.wait_projected("halden")
        reach(env, "halden", "defined_challenge", "2019-01-10")
        env.ok("no.samordna.status.meeting.logged",
               status_pb2.MeetingLogged(id="m-1", kind="working", date="2019-03-01",
                                        pilot="halden"))
        env.ok("no.samordna.status.barrier.registered",
               status_pb2.BarrierRegistered(id="b-1", title="Regel", pilot="halden",
                                            concerns="rule", date="2019-05-01"))
        env.ok("no.samordna.status.step.added",
               status_pb2.PlanStepAdded(pilot="halden", id="s-1", title="Mål", owner="fmov",
                                        date="2019-08-01"))
        reach(env, "halden", "anchored", "2019-09-01")
        req = status_pb2.StatusReportRequest(to="2019-06-30")
        setattr(req, "from", "2019-01-01")
        r = env.query("status.report", req, status_pb2.StatusReportReply)
        assert [(c.date, c.what, c.subject) for c in r.changes] == [
            ("2019-01-10", "milestone.reached", "defined_challenge"),
            ("2019-03-01", "meeting.logged", "m-1"),
            ("2019-05-01", "barrier.registered", "b-1")], r
        setattr(req, "from", "2019-07-01")
        req.to = "2019-12-31"
        r = env.query("status.report", req, status_pb2.StatusReportReply)
        assert [c.what for c in r.changes] == ["step.added", "milestone.reached"]
        req.to = "2019-01-01"
        rep, _ = env.c.call("status", "status.report", req)
        assert rep.status.code == 400 and rep.status.message.startswith("to:")


def test_restart_mid_stream():
    """kill -9 while a pipelined stream of 1000 publishes is being applied: after 20 replies
    the process is frozen (SIGSTOP), sent the last 200, and dies of SIGKILL with them
    unanswered; every publish that was acknowledged (by
    the old process, or by the new one working off what the broker still held) is in the
    store, by id, and nothing that was not sent; resending the stream finds exactly what is
    stored as duplicates and stores the rest once; the projection survives without a feed."""
    with Env("status-restart") as env:
        n, tail = 1000, 200
        env.define_kinds()
        env.wait_projected("fredrikstad")
        reqs = [publish_req("no.samordna.status.meeting.logged",
                            status_pb2.MeetingLogged(id=f"m-{i:04d}", kind="working",
                                                     date="2019-01-01", pilot="halden"),
                            eid=f"stream-{i}") for i in range(n)]
        meeting = {}  # request id → the meeting its event logs

        def send(i):
            rid = env.c.send("status", "events.publish", reqs[i])
            meeting[rid] = f"m-{i:04d}"
            return rid

        for i in range(n - tail):
            send(i)
        acked, answered = set(), set()
        while len(answered) < 20:
            rep = env.c.recv(5)
            assert rep.id in meeting and rep.status.code == 200, rep
            answered.add(rep.id)
            acked.add(meeting[rep.id])
        # Frozen wherever it is, sent the rest of the stream, then killed: the kill always
        # lands with publishes it never answered.
        os.kill(env.svc.p.pid, signal.SIGSTOP)
        tail_ids = {send(i) for i in range(n - tail, n)}
        env.svc.kill9()
        assert env.svc.p.returncode == -signal.SIGKILL, env.svc.p.returncode
        # Every publish of the stream is answered once: by the old process before it died,
        # by the new one from the broker's queue, or 503 when the broker finds the dead
        # worker gone with requests in flight (those may or may not have been applied).
        lost = 0

        def answer(rep):
            nonlocal lost
            assert rep.id in meeting and rep.id not in answered, rep
            assert rep.status.code in (200, 503), rep.status
            answered.add(rep.id)
            if rep.status.code == 200:
                acked.add(meeting[rep.id])
            else:
                lost += 1

        # Replies the old process sent before it died may still be on their way.
        while True:
            try:
                answer(env.c.recv(0.5))
            except samtest.Silence:
                break
        assert not {meeting[r] for r in tail_ids} & acked, \
            "the frozen process acknowledged publishes sent to it"
        env.svc = samtest.service("status", env.ep, env.data)
        while len(answered) < n:
            answer(env.c.recv(60))
        env.reg.stop = True  # no registry from here on: the projection must be on disk
        env.reg.thread.join(5)
        c2 = samtest.Client(env.ep)
        try:
            def stored():
                seen, token = [], ""
                while True:
                    rep, page = c2.call("status", "status.meetings.list",
                                        status_pb2.MeetingsRequest(pilot="halden",
                                                                   page_size=1000,
                                                                   page_token=token),
                                        status_pb2.MeetingsReply)
                    assert rep.status.code == 200, rep.status
                    seen += [m.id for m in page.meetings]
                    token = page.next_page_token
                    if not token:
                        return seen
            before = stored()
            print(f"    {len(acked)} acknowledged, {lost} lost with the killed worker, "
                  f"{len(before)} stored")
            assert len(before) == len(set(before)), "a meeting stored twice"
            assert acked <= set(before), f"acknowledged, then lost: {sorted(acked - set(before))}"
            assert set(before) <= set(meeting.values()), sorted(set(before))
            again = {c2.send("status", "events.publish", r): f"m-{i:04d}"
                     for i, r in enumerate(reqs)}
            dups = set()
            for _ in range(n):
                rep = c2.recv(30)
                assert rep.status.code == 200, rep.status
                msg = events_pb2.PublishReply.FromString(rep.body)
                if msg.duplicate:
                    dups.add(again[rep.id])
            assert dups == set(before), sorted(dups ^ set(before))
            assert sorted(stored()) == [f"m-{i:04d}" for i in range(n)]
            rep, b = c2.call("status", "status.board", status_pb2.BoardRequest(),
                             status_pb2.BoardReply)
            assert [r.pilot for r in b.rows] == ["fredrikstad", "halden", "sarpsborg"]
        finally:
            c2.close()


def samctl(ep, *args):
    p = subprocess.run([os.path.join(samtest.BIN, "samctl"), "--broker", ep] + list(args),
                       capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def test_samctl_board_and_commands():
    with Env("status-samctl") as env:
        env.wait_projected("halden")
        for kid, label in KINDS:
            rc, out, err = samctl(env.ep, "kinds", "define", kid, "--label", label, "--order",
                                  str(KINDS.index((kid, label)) + 1))
            assert rc == 0, err
        rc, out, err = samctl(env.ep, "milestone", "reach", "halden", "defined_challenge",
                              "--date", "2018-09-19", "--evidence", "forankringsmøte")
        assert rc == 0 and "seq" in out, (rc, out, err)
        rc, out, err = samctl(env.ep, "milestone", "reach", "halden", "anchored", "--date",
                              "19.09.2018")
        assert rc == 1 and "400" in err and "date:" in err, (rc, err)
        rc, out, err = samctl(env.ep, "milestone", "revert", "halden", "defined_challenge",
                              "--date", "2019-01-01")
        assert rc == 1 and "reason: required" in err, err
        rc, out, err = samctl(env.ep, "meeting", "log", "h-1", "--kind", "working", "--date",
                              "2018-10-18", "--pilot", "halden", "--participant", "fmov",
                              "--participant", "nav-ost-viken")
        assert rc == 0, err
        rc, out, err = samctl(env.ep, "barrier", "register", "b-1", "--title", "Regel",
                              "--concerns", "rule", "--pilot", "halden", "--date", "2019-01-01")
        assert rc == 0, err
        rc, out, err = samctl(env.ep, "barrier", "move", "b-1", "raised_regionally", "--date",
                              "2019-02-01")
        assert rc == 0, err
        rc, out, err = samctl(env.ep, "board")
        assert rc == 0, err
        lines = out.splitlines()
        assert "Definert" in lines[2] and "utfordring" in lines[3] and "Bærekraf" in lines[2]
        at = next(i for i, l in enumerate(lines) if l.startswith("halden"))
        hl = lines[at]
        assert "2018-09-19" in hl and "Definert utfordring" in hl and hl.rstrip().endswith("1")
        assert "siste møte 2018-10-18" in lines[at + 1], lines[at + 1]  # its second line
        rc, out, err = samctl(env.ep, "--json", "board", "--as-of", "2018-09-30")
        assert rc == 0, err
        b = json.loads(out)
        assert b["as_of"] == "2018-09-30"
        h = next(r for r in b["rows"] if r["pilot"] == "halden")
        assert h["phase"] == "defined_challenge" and h["last_meeting_date"] == ""
        rc, out, err = samctl(env.ep, "barriers", "--open")
        assert rc == 0 and out.splitlines()[1].startswith("b-1") and "raised_regionally" in out, out
        rc, out, err = samctl(env.ep, "--json", "report", "--from", "2018-01-01", "--to",
                              "2019-12-31")
        assert rc == 0 and len(json.loads(out)["changes"]) == 4, out
        rc, out, err = samctl(env.ep, "board", "--as-of")
        assert rc == 2
        # a monthly series from Thursday 17 April 2019: skjærtorsdag the 18th is not hit, but
        # 17 May (Grunnlovsdag) is, and moves to the 20th (the 18th and 19th are a weekend);
        # with --any-day the series keeps its day
        rc, out, err = samctl(env.ep, "meeting", "log", "h-month", "--kind", "steering",
                              "--date", "2019-04-17", "--monthly-until", "2019-06-30",
                              "--pilot", "halden", "--title", "Styringsgruppe, Halden",
                              "--participant", "fmov", "--notes", "Sak 1; sak 2, og sak 3")
        assert rc == 0, err
        rc, out, err = samctl(env.ep, "meeting", "log", "h-any", "--kind", "internal", "--date",
                              "2019-05-17", "--monthly-until", "2019-06-17", "--any-day",
                              "--pilot", "halden")
        assert rc == 0, err
        rc, out, err = samctl(env.ep, "--json", "meetings", "--pilot", "halden", "--from",
                              "2019-04-01")
        assert rc == 0, err
        got = {m["id"]: m["date"] for m in json.loads(out)["items"]}
        assert got == {"h-month-2019-04": "2019-04-17", "h-month-2019-05": "2019-05-20",
                       "h-month-2019-06": "2019-06-17", "h-any-2019-05": "2019-05-17",
                       "h-any-2019-06": "2019-06-17"}, got
        # the calendar, read by a real iCalendar parser (python3-icalendar)
        p = subprocess.run([os.path.join(samtest.BIN, "samctl"), "--broker", env.ep, "meetings",
                            "--pilot", "halden", "--ical"], capture_output=True, timeout=30)
        assert p.returncode == 0, p.stderr
        raw = p.stdout
        assert raw.endswith(b"END:VCALENDAR\r\n") and b"\n" not in raw.replace(b"\r\n", b"")
        out = raw.decode()
        assert all(len(l.encode()) <= 75 for l in out.split("\r\n")), out
        import icalendar
        cal = icalendar.Calendar.from_ical(out)
        assert str(cal["X-WR-TIMEZONE"]) == "Europe/Oslo"
        assert [str(z["TZID"]) for z in cal.walk("VTIMEZONE")] == ["Europe/Oslo"]
        events = {str(e["UID"]): e for e in cal.walk("VEVENT")}
        assert set(events) == {i + "@samordna" for i in
                               ["h-1", "h-month-2019-04", "h-month-2019-05", "h-month-2019-06",
                                "h-any-2019-05", "h-any-2019-06"]}, set(events)
        may = events["h-month-2019-05@samordna"]
        import datetime
        assert may.decoded("DTSTART") == datetime.date(2019, 5, 20)
        assert may.decoded("DTEND") == datetime.date(2019, 5, 21)
        assert str(may["SUMMARY"]) == "Styringsgruppe, Halden"
        assert "Deltakere: fmov" in str(may["DESCRIPTION"])
        assert "Sak 1; sak 2, og sak 3" in str(may["DESCRIPTION"])
        assert str(events["h-1@samordna"]["DESCRIPTION"]).startswith("Type: working")
        rc, out, err = samctl(env.ep, "meetings", "--pilot", "sarpsborg", "--ical")
        assert rc == 0 and "BEGIN:VCALENDAR" in out and "VEVENT" not in out, out  # none yet
        rc, out, err = samctl(env.ep, "meetings", "--pilot", "nobody-has-this", "--ical")
        assert rc == 1 and out == "" and "nobody-has-this" in err, (rc, out, err)
        # corrections read as the rest of the report: Norwegian, names, the day corrected from
        rc, out, err = samctl(env.ep, "milestone", "correct", "halden", "defined_challenge",
                              "--date", "2018-09-20", "--reason", "feil dato i forankringsmøtet")
        assert rc == 0, err
        rc, out, err = samctl(env.ep, "meeting", "cancel", "h-1", "--reason", "avlyst pga. sykdom")
        assert rc == 0, err
        rc, out, err = samctl(env.ep, "report", "--from", "2018-01-01", "--to", "2019-12-31")
        assert rc == 0, err
        assert ("Halden: Definert utfordring rettet (var 19. september 2018): feil dato i "
                "forankringsmøtet") in out, out
        assert "Arbeidsmøte i Halden avlyst: avlyst pga. sykdom" in out, out
        rc, out, err = samctl(env.ep, "--lang", "en", "report", "--from", "2018-01-01", "--to",
                              "2019-12-31")
        assert "Halden: Defined challenge corrected (was 19 September 2018)" in out, out

def _caller(agency="", role="admin"):
    """The Caller the test's broker presents: an agency's, or (no agency) an insecure admin."""
    return envelope_pb2.Caller(agency=agency, role=role,
                               insecure=(role == "admin" and not agency))


def test_publishers_change_only_what_they_own():
    # The test is the broker, so it can hand the status service authenticated callers (the
    # real broker runs insecure until CURVE is configured), and it answers the service's own
    # client from the registry outbox it stores (404 to every registry get).
    with samtest.FakeBroker(outbox=[]) as ob:
        for a in ["fmov", "ofk", "imdi-ost", "husbanken-ost", "nav-ost-viken"]:
            ob.store("no.samordna.registry.agency.registered", registry_pb2.Agency(id=a, name=a))
        for m in ["sarpsborg", "fredrikstad"]:
            ob.store("no.samordna.registry.municipality.registered",
                     registry_pb2.Municipality(id=m, name=m.title()))
        ob.store("no.samordna.registry.pilot.registered",
                 pilot_view("sarpsborg", "sarpsborg", "Barnefattigdom", "ofk", ["nav-ost-viken"]))
        ob.store("no.samordna.registry.pilot.registered",
                 pilot_view("fredrikstad", "fredrikstad", "Levekår", "husbanken-ost"))
        proc = samtest.Proc("status-own", ["samordna-status", "--broker", ob.ep, "--data-dir",
                                           samtest.scratch("status-own"), "--insecure"])
        ob.accept("status", credit=16)

        def publish_as(agency, etype, payload, role="publisher"):
            rep, _ = ob.publish(publish_req(etype, payload, source=agency or "fmov"),
                                _caller(agency, role))
            return rep.status.code, rep.status.message
        samtest.wait_for(lambda: len(status_pb2.BoardReply.FromString(ob.call(
            "status.board", status_pb2.BoardRequest())[0].body).rows) == 2, 10, "the projection")
        S = status_pb2
        assert publish_as("", "no.samordna.status.milestone_kind.defined",
                          S.MilestoneKind(id="anchored", label="Forankret", order=1),
                          role="admin")[0] == 200
        # defining kinds is for admins
        code, _ = publish_as("ofk", "no.samordna.status.milestone_kind.defined",
                             S.MilestoneKind(id="other", label="Annet", order=2))
        assert code == 403, code
        reached = lambda pilot: S.MilestoneReached(pilot=pilot, kind="anchored",
                                                   date="2019-03-01")
        assert publish_as("ofk", "no.samordna.status.milestone.reached",
                          reached("sarpsborg")) == (200, "")
        assert publish_as("nav-ost-viken", "no.samordna.status.milestone.reverted",
                          S.MilestoneReverted(pilot="sarpsborg", kind="anchored",
                                              date="2019-04-01", reason="ny ledelse"))[0] == 200
        code, msg = publish_as("ofk", "no.samordna.status.milestone.reached",
                               reached("fredrikstad"))
        assert code == 403 and msg == ("pilot: agency 'ofk' is not on the investment team of "
                                       "pilot 'fredrikstad'"), (code, msg)
        code, msg = publish_as("ofk", "no.samordna.status.meeting.logged",
                               S.MeetingLogged(id="m1", kind="working", date="2019-03-01",
                                               pilot="fredrikstad"))
        assert code == 403, (code, msg)
        # barriers: registered only as oneself, moved by the raiser or the pilot's leader
        code, msg = publish_as("imdi-ost", "no.samordna.status.barrier.registered",
                               S.BarrierRegistered(id="b1", title="Regel", pilot="sarpsborg",
                                                   raised_by="fmov", concerns="rule",
                                                   date="2019-01-01"))
        assert code == 403 and msg.startswith("raised_by:"), (code, msg)
        assert publish_as("imdi-ost", "no.samordna.status.barrier.registered",
                          S.BarrierRegistered(id="b1", title="Regel", pilot="sarpsborg",
                                              concerns="rule", date="2019-01-01"))[0] == 200
        code, msg = publish_as("husbanken-ost", "no.samordna.status.barrier.moved",
                               S.BarrierMoved(id="b1", state="withdrawn", date="2019-02-01"))
        assert code == 403 and "may not move it" in msg, (code, msg)
        assert publish_as("ofk", "no.samordna.status.barrier.moved",
                          S.BarrierMoved(id="b1", state="raised_regionally",
                                         date="2019-02-01"))[0] == 200
        assert publish_as("imdi-ost", "no.samordna.status.barrier.moved",
                          S.BarrierMoved(id="b1", state="changed", date="2019-05-01"))[0] == 200
        # steps: the pilot's team adds; the step's owner may update it too, others may not
        assert publish_as("ofk", "no.samordna.status.step.added",
                          S.PlanStepAdded(pilot="sarpsborg", id="s1", title="Kartlegging",
                                          owner="imdi-ost", date="2019-01-01"))[0] == 200
        assert publish_as("imdi-ost", "no.samordna.status.step.updated",
                          S.PlanStepUpdated(pilot="sarpsborg", id="s1", state="done",
                                            date="2019-06-01"))[0] == 200
        code, msg = publish_as("husbanken-ost", "no.samordna.status.step.updated",
                               S.PlanStepUpdated(pilot="sarpsborg", id="s1", state="dropped",
                                                 date="2019-07-01"))
        assert code == 403, (code, msg)
        # a publisher writing under another agency's name is stopped by the runtime
        rep, _ = ob.publish(publish_req("no.samordna.status.milestone.reached",
                                        reached("sarpsborg"), source="fmov"),
                            _caller("ofk", "publisher"))
        assert rep.status.code == 403, rep.status
        # readers read, and do not write
        code, _ = publish_as("ofk", "no.samordna.status.milestone.reached", reached("sarpsborg"),
                             role="reader")
        assert code == 403
        rep, _ = ob.call("status.barriers.get", S.StatusGetRequest(id="b1"),
                         _caller("ofk", "reader"))
        b = S.Barrier.FromString(rep.body)
        assert [(h.state, h.by) for h in b.history] == [
            ("identified", "imdi-ost"), ("raised_regionally", "ofk"), ("changed", "imdi-ost")]
        assert proc.stop() == 0


def test_registry_down_refuses_without_stalling():
    """No registry at all: an unknown pilot is refused after one unanswered question, and
    the events after it are refused at once instead of each waiting for the registry."""
    data = samtest.scratch("status-noreg")
    broker, ep = samtest.broker()
    svc = samtest.service("status", ep, data)
    c = samtest.Client(ep)
    try:
        def reach_unknown(i):
            req = publish_req("no.samordna.status.milestone.reached",
                              status_pb2.MilestoneReached(pilot=f"p-{i}", kind="anchored",
                                                          date="2019-01-01"))
            t0 = time.time()
            rep, _ = c.call("status", "events.publish", req, timeout=10)
            return rep.status, time.time() - t0
        st, _ = reach_unknown(0)
        assert st.code == 422 and st.message == "pilot: unknown pilot 'p-0'", st
        for i in range(1, 6):
            st, took = reach_unknown(i)
            assert st.code == 422 and took < 1.0, (st, took)
        assert svc.stop() == 0
    finally:
        c.close()


FIXTURE = os.path.join(samtest.SRC, "deploy", "examples", "ostfold-2019.json")


def test_import_fixture_with_the_real_registry():
    """`samctl import` of the Østfold fixture into the real registry and status: the board
    of the status slide, and a rerun that changes nothing."""
    assert os.path.exists(FIXTURE), f"the fixture is missing: {FIXTURE}"
    data = samtest.scratch("status-import")
    broker, ep = samtest.broker()
    samtest.service("registry", ep, data)
    svc = samtest.service("status", ep, data)
    samtest.service("grants", ep, data)  # the fixture's schemes and awards import there
    rc, out, err = samctl(ep, "--json", "import", FIXTURE)
    assert rc == 0, err
    types = {t["type"]: t["new"] for t in json.loads(out)["types"]}
    assert types["no.samordna.status.milestone_kind.defined"] == 7, types
    assert types["no.samordna.status.milestone.reached"] == 20, types
    assert types["no.samordna.status.meeting.logged"] == 14, types
    def board_json():
        rc, out, err = samctl(ep, "--json", "board", "--as-of", "2019-11-11")
        assert rc == 0, err
        return json.loads(out)
    # the municipalities' names come with the registry feed, a moment after the import
    samtest.wait_for(lambda: all(r["municipality_name"] != r["municipality"]
                                 for r in board_json()["rows"]), 10, "the registry feed")
    b = board_json()
    assert [k["label"] for k in b["kinds"]] == [label for _, label in KINDS]
    rows = {r["pilot"]: r for r in b["rows"]}
    assert sorted(rows) == ["fredrikstad", "halden", "indre-ostfold", "sarpsborg"]
    for p in ["halden", "indre-ostfold", "sarpsborg"]:
        reached = [c["kind"] for c in rows[p]["cells"] if c["date"]]
        assert reached == [k for k, _ in KINDS[:6]], (p, reached)
        assert rows[p]["phase_label"] == "Operativ"
    assert [c["kind"] for c in rows["fredrikstad"]["cells"] if c["date"]] == [
        "defined_challenge", "anchored"]
    assert rows["fredrikstad"]["phase_label"] == "Forankret"
    assert rows["halden"]["investment_leader"] == "fmov"
    assert rows["indre-ostfold"]["municipality_name"] == "Indre Østfold"
    assert rows["sarpsborg"]["last_meeting_date"] == "2019-03-01"
    assert rows["halden"]["last_meeting_date"] == "2019-01-18"
    rc, out, err = samctl(ep, "board", "--as-of", "2019-11-11")
    assert rc == 0, err
    lines = out.splitlines()
    assert "Definert" in lines[2] and "Forankret" in lines[2] and "Operativ" in lines[2], out
    at = next(i for i, l in enumerate(lines) if l.startswith("fredrikstad"))
    fr, about = lines[at], lines[at + 1]  # a pilot's second line: who and where
    assert "Forankret" in fr and "Fredrikstad" in about and "Husbanken Øst" in about, (fr, about)
    assert "siste møte 2019-03-04 (forankringsmøte)" in about, about
    rc, out, err = samctl(ep, "--lang", "en", "board", "--as-of", "2019-11-11")
    assert rc == 0 and out.startswith("Status board as of 11 November 2019"), out
    assert "Anchored" in out and "led by Husbanken Øst" in out and "anchoring meeting" in out
    assert "Forankret" not in out and "ledes av" not in out, out
    # the period report speaks Norwegian with names, not ids or enum words; English on request
    rc, out, err = samctl(ep, "report", "--from", "2019-01-01", "--to", "2019-12-31")
    assert rc == 0, err
    assert out.startswith("Endringer 1. januar 2019 – 31. desember 2019:"), out
    assert "Halden nådde Kunnskapsgrunnlag" in out, out
    assert "Forankringsmøte i Fredrikstad" in out, out
    for word in ("knowledge_base", "reached", "anchoring", "defined_challenge"):
        assert word not in out, (word, out)
    rc, out, err = samctl(ep, "--lang", "en", "report", "--from", "2019-01-01", "--to",
                          "2019-12-31")
    assert rc == 0 and out.startswith("Changes 1 January 2019 – 31 December 2019:"), out
    assert "Halden reached Knowledge base" in out and "Anchoring meeting in Fredrikstad" in out
    assert "nådde" not in out, out
    rc, out, err = samctl(ep, "--json", "report", "--from", "2019-01-01", "--to", "2019-12-31")
    changes = json.loads(out)["changes"]  # --json keeps the ids beside the line
    kb = next(c for c in changes if c["kind"] == "knowledge_base" and c["pilot"] == "halden")
    assert kb["what"] == "milestone.reached" and kb["summary"].startswith("Halden nådde"), kb
    rc, out, err = samctl(ep, "--lang", "de", "report", "--from", "2019-01-01", "--to",
                          "2019-12-31")
    assert rc == 2 and "--lang must be nb" in err, (rc, err)
    # before the status slide nothing was recorded as reached
    rc, out, err = samctl(ep, "--json", "board", "--as-of", "2019-06-01")
    assert all(not r["phase"] for r in json.loads(out)["rows"]), out
    rc, out, err = samctl(ep, "--json", "meetings", "--municipality", "moss-rygge")
    assert [m["id"] for m in json.loads(out)["items"]] == ["moss-rygge-2018-11-18-startup"]
    # again: every status event is a duplicate
    rc, out, err = samctl(ep, "--json", "import", FIXTURE)
    assert rc == 0 and json.loads(out)["new"] == 0, out + err
    assert svc.stop() == 0
    broker.stop()


def test_status_and_grants_follow_a_late_registry_alike():
    """status and grants follow the registry with one follower (common/sam_follow.h) and take
    the same options: both are started with --registry registry-b before any registry runs
    (no service called "registry" exists at all), both catch up with registry-b's outbox once
    it appears, and both ask registry-b, once, for a fact its outbox does not hold yet."""
    from samordna.v1 import grants_pb2
    d = samtest.scratch("follow-late-registry")
    broker, ep = samtest.broker()
    procs = {name: samtest.Proc(f"follow-late-{name}",
                                [f"samordna-{name}", "--broker", ep, "--data-dir", d,
                                 "--insecure", "--registry", "registry-b",
                                 "--registry-wait-ms", "1000", "--log-level", "debug"])
             for name in ("status", "grants")}
    c = samtest.Client(ep)
    reg = None
    try:
        for name in procs:
            samtest.wait_service(ep, name)
        reg = FakeRegistry(ep, service="registry-b")
        reg.publish("no.samordna.registry.municipality.registered",
                    registry_pb2.Municipality(id="halden", name="Halden"), "municipalities",
                    "halden")
        reg.publish("no.samordna.registry.pilot.registered",
                    pilot_view("halden", "halden", "Barnefattigdom", "fmov"), "pilots", "halden")
        # both catch up with the outbox, without asking
        samtest.wait_for(lambda: "refs.applied added=2 cursor=2" in procs["grants"].logtext(),
                         30, "grants' projection of registry-b's outbox")

        def board():
            rep, b = c.call("status", "status.board", status_pb2.BoardRequest(),
                            status_pb2.BoardReply)
            return [r.pilot for r in b.rows] if rep.status.code == 200 else []
        samtest.wait_for(lambda: board() == ["halden"], 30, "status' projection of registry-b")
        assert reg.asked == [], reg.asked
        # known to registry-b but not in its outbox: each asks, once, and accepts
        reg.know("pilots", "moss", pilot_view("moss", "halden", "Levekår", "fmov"))
        reg.know("agencies", "fmov", registry_pb2.Agency(id="fmov", name="FMOV", kind=2))
        for svc, etype, payload in (
                ("status", "no.samordna.status.meeting.logged",
                 status_pb2.MeetingLogged(id="m-1", kind="working", date="2019-01-01",
                                          pilot="moss")),
                ("grants", "no.samordna.grants.scheme.created",
                 grants_pb2.Scheme(id="s-2019", name="S", owner="fmov", year=2019))):
            rep, _ = c.call(svc, "events.publish", publish_req(etype, payload),
                            events_pb2.PublishReply)
            assert rep.status.code == 200, (svc, rep.status)
        assert reg.asked == [("registry.pilots.get", "moss"),
                             ("registry.agencies.get", "fmov")], reg.asked
        for name, p in procs.items():
            assert p.stop() == 0, name
    finally:
        c.close()
        if reg:
            reg.close()
        for p in procs.values():
            if p.alive():
                p.kill9()
        broker.stop()


if __name__ == "__main__":
    samtest.main()
