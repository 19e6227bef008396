"""Log lines as a log shipper reads them, in both formats.

A registry and its broker run once with the default logfmt and once with --log-format json.
A client publishes an event whose id holds what breaks naive log lines, quotes, a backslash,
an equals sign and letters beyond ASCII (all valid in an id; a newline or an invalid byte is
refused before anything is logged, hostile_test.py), and the registry logs it at debug level.
Every line of every log must then be one record: in logfmt, `TIME LEVEL SERVICE EVENT` and
key=value pairs whose quoted values keep their quotes and backslashes escaped; in JSON, one
object per line with time, level, service and event, the id among its members as sent.

The run also walks the other paths whose values come from outside: the registry's data folder
has a space in it and its instance name a quote; an event the registry refuses must log its
refusal with the request id (req) and the CloudEvent id (id); status follows a registry that
is not there (follow.unavailable); notify follows the registry with a subscription; and an
echo service loses its broker (broker.silent). Every line of every one of those logs passes
the same whole-record checks.
"""
import json
import os
import re

import samtest
from cloudevents.v1 import cloudevents_pb2
from samordna.v1 import events_pb2, notify_pb2, registry_pb2

EVENT_ID = 'FORGED "quoted" \\back a=b Østfold'
REFUSED_ID = 'REFUSED "quoted" \\back'
INSTANCE = 'reg "one" \\ two'

# logfmt as samordna writes it: a key, '=', then a bare value or a quoted one in which only
# \" and \\ (and \n, \t, \xNN) are escapes
PAIR = re.compile(r'[A-Za-z0-9_.]+=(?:"(?:[^"\\]|\\.)*"|[^\s"]*)')
HEAD = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARN|ERROR) \S+ \S+")


def _run(fmt):
    """Starts a broker and a registry with --log-format fmt, and the other services of the
    module's essay, walks their paths, stops them all; returns their logs."""
    d = samtest.scratch(f"logs {fmt}")  # a space in every --data-dir
    log = ("--log-format", fmt, "--log-level", "debug")
    broker, ep = samtest.broker("--log-format", fmt)
    lost, lost_ep = samtest.broker("--log-format", fmt, "--heartbeat-ms", "200")
    reg = samtest.service("registry", ep, d, *log, "--instance", INSTANCE)
    status = samtest.service("status", ep, d, *log, "--registry", "nowhere",
                             "--registry-wait-ms", "200")
    notify = samtest.service("notify", ep, d, *log, "--follow", "registry",
                             "--follow-wait-ms", "200")
    echo = samtest.service("echo", lost_ep, d, *log, "--heartbeat-ms", "200")
    c = samtest.Client(ep)
    try:
        agency = registry_pb2.Agency(id="fmov", name="Statsforvalteren", kind=2)
        ev = cloudevents_pb2.CloudEvent(id=EVENT_ID, source="fmov", spec_version="1.0",
                                        type="no.samordna.registry.agency.registered",
                                        binary_data=agency.SerializeToString())
        rep, _ = c.call("registry", "events.publish", events_pb2.PublishRequest(event=ev))
        assert rep.status.code == 200, rep.status
        refused = samtest.event("no.samordna.registry.nothing.happened", eid=REFUSED_ID)
        rep, _ = samtest.publish(c, "registry", refused)
        assert rep.status.code >= 400, rep.status
        sub = notify_pb2.Subscription(id="logs-sub", channel=notify_pb2.NOTIFY_CHANNEL_INBOX,
                                      type="no.samordna.registry.*")
        samtest.publish_ok(c, "notify", samtest.event(
            "no.samordna.notify.subscription.created",
            notify_pb2.SubscriptionCreated(subscription=sub), eid="logs-sub-1"))
        samtest.wait_for(lambda: "follow.unavailable" in status.logtext(), 10,
                         "status to miss its registry")
        assert lost.stop() == 0
        samtest.wait_for(lambda: "broker.silent" in echo.logtext(), 10,
                         "echo to miss its broker")
    finally:
        c.close()
    procs = [reg, status, notify, echo]
    for p in procs:
        assert p.stop() == 0, p.name
    assert broker.stop() == 0
    return [p.logtext() for p in procs + [broker, lost]]


def _unique(pairs):
    keys = [k for k, _ in pairs]
    assert len(keys) == len(set(keys)), f"a member twice: {keys}"
    return dict(pairs)


def test_logfmt_lines_are_whole_records():
    logged = []
    logs = _run("logfmt")
    for log in logs:
        for line in log.splitlines():
            m = HEAD.match(line)
            assert m, f"not a samordna log line: {line!r}"
            rest = line[m.end():].strip()
            # every word after the event is a pair; a stray quote would break the match
            left = PAIR.sub("", rest).strip()
            assert left == "", f"not key=value: {left!r} in {line!r}"
            if "FORGED" in line:
                logged.append(line)
    assert logged, "the event was not logged"
    assert any('id="FORGED \\"quoted\\" \\\\back a=b Østfold"' in line for line in logged), logged
    assert any('instance="reg \\"one\\" \\\\ two"' in line
               for log in logs for line in log.splitlines()), "instance not logged escaped"


def test_json_lines_are_objects():
    logged, records = [], []
    for log in _run("json"):
        for line in log.splitlines():
            # raises on anything but one object per line, and on a member given twice
            record = json.loads(line, object_pairs_hook=_unique)
            records.append(record)
            assert isinstance(record, dict), line
            for key in ("time", "level", "service", "event"):
                assert key in record, (key, line)
            assert record["level"] in ("debug", "info", "warn", "error"), line
            if any("FORGED" in str(v) for v in record.values()):
                logged.append(record)
    assert logged, "the event was not logged"
    assert any(r.get("id") == EVENT_ID and r["service"] == "registry" for r in logged), logged
    # a request's lines carry its correlation: the envelope's request id and the event's id
    applied = [r for r in records if r["event"] == "event.applied" and r.get("id") == EVENT_ID]
    assert applied and all(isinstance(r.get("req"), int) for r in applied), applied
    refusals = [r for r in records if r["event"] == "request.refused" and
                r["service"] == "registry" and r.get("id") == REFUSED_ID]
    assert refusals and all(isinstance(r.get("req"), int) for r in refusals), refusals
    # values from outside arrive whole, spaces and quotes included
    assert any(r.get("instance") == INSTANCE for r in records), "instance not logged whole"
    opened = [r.get("dir", "") for r in records if r["event"] == "store.open"]
    assert opened and all(f"logs json{os.sep}" in v for v in opened), opened
    for event in ("follow.unavailable", "broker.silent"):
        assert any(r["event"] == event for r in records), f"no {event} line"
    assert not any("msg" in r for r in records), [r for r in records if "msg" in r]


if __name__ == "__main__":
    samtest.main()
