"""The hostile client, against every service: valid protobuf carrying text that strict readers
cannot read — in the CloudEvent's own attributes, in every string field of an event's payload
(nested ones too), in a query's request — is refused 400 naming the field, nothing is
stored, the refusal itself is clean text, and no log line is forged. The other classes of
hostile input have their tests beside the code they hit: service-name hijack, churn with an
RSS bound and revocation latency in security_test.py, requests past their deadline in
broker_test.py, the wire rules in fuzz_check.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import samtest  # noqa: E402
from samordna.v1 import (envelope_pb2, events_pb2, grants_pb2, notify_pb2,  # noqa: E402
                         registry_pb2, status_pb2)
from google.protobuf.descriptor import FieldDescriptor  # noqa: E402

PLACE = "PLACEHLD"  # 8 bytes, replaced on the wire by each bad value of 8 bytes
BAD = [
    (b"bad\xff\xfeutf", "not valid UTF-8"),
    (b"nul\x00here", "NUL"),
    (b"esc\x1b[31m", "control character"),
    (b"c1\xc2\x9bchar", "control character"),
    (b"\xed\xb0\x80surrx", "not valid UTF-8"),
    (b"over\xc0\xafln", "not valid UTF-8"),  # an over-long "/"
]
# A forged log line: a newline and what would pass for a line of the service's own. Ids may
# not hold it; in free text it is escaped in the log.
FORGE = b"\nFORGED "

# service → (event type, payload message), each with string fields at the top and nested
EVENTS = {
    "registry": ("no.samordna.registry.agency.registered", registry_pb2.Agency),
    "status": ("no.samordna.status.barrier.registered", status_pb2.BarrierRegistered),
    "grants": ("no.samordna.grants.scheme.created", grants_pb2.Scheme),
    "notify": ("no.samordna.notify.subscription.created", notify_pb2.SubscriptionCreated),
}
def _publish(c, service, body):
    return samtest.publish(c, service, body)[0]


def _string_paths(cls, prefix="", depth=0):
    """(path, setter) for every string field of cls, and those of its message fields."""
    out = []
    for f in cls.DESCRIPTOR.fields:
        path = prefix + f.name
        if f.type == FieldDescriptor.TYPE_STRING:
            out.append((path, [f.name], f.label == FieldDescriptor.LABEL_REPEATED))
        elif (f.type == FieldDescriptor.TYPE_MESSAGE and depth < 1 and
              f.label != FieldDescriptor.LABEL_REPEATED and
              not f.message_type.GetOptions().map_entry):
            sub = f.message_type._concrete_class
            for p, names, rep in _string_paths(sub, path + ".", depth + 1):
                out.append((p, [f.name] + names, rep))
    return out


def _payload_with(cls, names, repeated):
    msg = cls()
    target = msg
    for name in names[:-1]:
        target = getattr(target, name)
    if repeated:
        getattr(target, names[-1]).append(PLACE)
    else:
        setattr(target, names[-1], PLACE)
    return msg.SerializeToString()


def _head(c, service):
    rep, ping = c.call(service, "ping", b"", envelope_pb2.PingReply)
    assert rep.status.code == 200, rep.status
    return ping.last_seq


class Suite:
    def __init__(self):
        data = samtest.scratch("hostile")
        self.broker, self.ep = samtest.broker()
        self.procs = {svc: samtest.service(svc, self.ep, os.path.join(data, svc),
                                           *(["--follow", ""] if svc == "notify" else []))
                      for svc in EVENTS}
        self.c = samtest.Client(self.ep)

    def logs(self):
        return {svc: p.logtext() for svc, p in self.procs.items()}

    def close(self):
        self.c.close()
        for p in self.procs.values():
            assert p.stop() == 0


def _refused(rep, field, why):
    assert rep.status.code == 400, (field, rep.status)
    assert field in rep.status.message and why in rep.status.message, (field, rep.status.message)
    rep.status.message.encode("utf-8")  # it decoded: a strict reader took the refusal


def test_bad_text_in_every_string_field_of_every_service_is_refused_and_nothing_stored():
    s = Suite()
    try:
        heads = {svc: _head(s.c, svc) for svc in EVENTS}
        checked = 0
        for svc, (etype, cls) in EVENTS.items():
            paths = _string_paths(cls)
            assert paths, cls
            for path, names, repeated in paths:
                packed = _payload_with(cls, names, repeated)
                for raw, why in BAD:
                    data = packed.replace(PLACE.encode(), raw)
                    body = events_pb2.PublishRequest(event=samtest.event(etype, data))
                    _refused(_publish(s.c, svc, body.SerializeToString()), "data." + path,
                             why)
                    checked += 1
            # the CloudEvent's own attributes
            for attr in ("id", "source", "type"):
                for raw, why in BAD + [(FORGE[:8], "control character")]:
                    ev = samtest.event(etype, _payload_with(cls, *_string_paths(cls)[0][1:]))
                    setattr(ev, attr, PLACE)
                    wire = events_pb2.PublishRequest(event=ev).SerializeToString()
                    _refused(_publish(s.c, svc, wire.replace(PLACE.encode(), raw)),
                             "event." + attr, why)
                    checked += 1
            ev = samtest.event(etype, b"")
            ev.attributes["subject"].ce_string = PLACE
            wire = events_pb2.PublishRequest(event=ev).SerializeToString()
            _refused(_publish(s.c, svc, wire.replace(PLACE.encode(), b"sub\xffject")),
                     "event.attributes[0]", "not valid UTF-8")
        # a query's request: the id asked for
        for svc, method, req in (
                ("registry", "registry.agencies.get", registry_pb2.GetRequest(id=PLACE)),
                ("grants", "grants.schemes.get", grants_pb2.GrantsGetRequest(id=PLACE)),
                ("notify", "notify.subscriptions.get", notify_pb2.SubscriptionGetRequest(id=PLACE))):
            wire = req.SerializeToString().replace(PLACE.encode(), b"bad\xff\xfeutf")
            rep, _ = s.c.call(svc, method, wire, None)
            _refused(rep, "id", "not valid UTF-8")
        for svc in EVENTS:
            assert _head(s.c, svc) == heads[svc], f"{svc} stored something"
        for svc, log in s.logs().items():
            forged = [line for line in log.splitlines() if line.startswith("FORGED")]
            assert not forged, (svc, forged)
        print(f"     ({checked} refusals checked)")
    finally:
        s.close()


def test_a_newline_in_free_text_is_kept_and_a_forged_line_is_escaped_in_the_log():
    """Free text may hold a newline (a name on two lines, a note): it is stored as it is. An
    id may not, and the refusal's log line shows it escaped, not as a second line."""
    s = Suite()
    try:
        name = "Statsforvalteren\ni Oslo og Viken"
        rep = _publish(s.c, "registry", events_pb2.PublishRequest(event=samtest.event(
            "no.samordna.registry.agency.registered",
            registry_pb2.Agency(id="fmov", name=name, kind=2).SerializeToString()))
            .SerializeToString())
        assert rep.status.code == 200, rep.status
        rep, agency = s.c.call("registry", "registry.agencies.get",
                               registry_pb2.GetRequest(id="fmov"), registry_pb2.Agency)
        assert rep.status.code == 200 and agency.name == name, (rep.status, agency)
        ev = samtest.event("no.samordna.registry.agency.registered", b"x")
        ev.id = "x" + PLACE
        wire = events_pb2.PublishRequest(event=ev).SerializeToString()
        rep = _publish(s.c, "registry", wire.replace(PLACE.encode(), FORGE))
        _refused(rep, "event.id", "control character")
        for svc, log in s.logs().items():
            assert not any(line.startswith("FORGED") for line in log.splitlines()), svc
    finally:
        s.close()


def _dated(svc, day):
    """(how, field path, body) of a request to svc that carries `day` in one date field: an
    event whose other fields pass, or a query that needs nothing stored."""
    if svc == "registry":
        m = registry_pb2.Municipality(id="halden", name="Halden", numbers=[
            registry_pb2.MunicipalityNumber(number="3001", **{"from": day})])
        return ("event", "municipality.numbers[0].from", samtest.event(
            "no.samordna.registry.municipality.registered", m))
    if svc == "status":
        return ("query", "from", ("status.report",
                                  status_pb2.StatusReportRequest(to="2999-12-31", **{"from": day})))
    return ("query", "before", ("grants.deadlines", grants_pb2.DeadlinesRequest(before=day)))


def _events_dated(day):
    """An event of status and of grants whose date field is checked before any reference."""
    return {
        "status": ("date", samtest.event(
            "no.samordna.status.milestone.reached",
            # planned: a day still to come is a milestone planned, not reached
            status_pb2.MilestoneReached(pilot="p1", kind="k1", date=day, actor="fmov",
                                        planned=True))),
        "grants": ("award.decided", samtest.event(
            "no.samordna.grants.award.granted",
            grants_pb2.Award(id="a1", scheme="s1", recipient="halden", amount_ore=100,
                             purpose="p", decided=day))),
    }


def test_one_date_rule_in_registry_status_and_grants():
    """Every service answers a date by one rule (common/sam_check.h): the years 1900 to 2999,
    Gregorian leap years, the field's path in the refusal. The registry used to take years from
    1800 and grants any year from 1900: 1899-12-31 and 3000-01-01 are refused by all."""
    s = Suite()
    try:
        def ask(svc, day):
            how, field, req = _dated(svc, day)
            if how == "event":
                return field, _publish(s.c, svc, events_pb2.PublishRequest(
                    event=req).SerializeToString())
            return field, s.c.call(svc, req[0], req[1], None)[0]

        for svc in ("registry", "status", "grants"):
            field, rep = ask(svc, "2028-02-29")
            assert rep.status.code == 200, (svc, rep.status)
            field, rep = ask(svc, "2027-02-29")
            _refused(rep, field + ": '2027-02-29' is not a date", "YYYY-MM-DD")
            for day in ("1899-12-31", "3000-01-01"):
                field, rep = ask(svc, day)
                _refused(rep, f"{field}: {day}", "is outside the years 1900 to 2999")
        # in events of status and grants too, before any reference is looked up
        for day, why in (("2027-02-29", "is not a date"), ("1899-12-31", "outside the years"),
                         ("3000-01-01", "outside the years")):
            for svc, (field, ev) in _events_dated(day).items():
                rep = _publish(s.c, svc, events_pb2.PublishRequest(event=ev)
                                   .SerializeToString())
                _refused(rep, field + ":", why)
        for svc, (field, ev) in _events_dated("2028-02-29").items():
            rep = _publish(s.c, svc, events_pb2.PublishRequest(event=ev).SerializeToString())
            assert rep.status.code != 200 and field + ":" not in rep.status.message, \
                (svc, rep.status)  # refused for the unknown pilot or scheme, not the date
    finally:
        s.close()


if __name__ == "__main__":
    samtest.main()
