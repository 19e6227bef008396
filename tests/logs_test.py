"""Log lines as a log shipper reads them, in both formats.

A registry and its broker run once with the default logfmt and once with --log-format json.
A client publishes an event whose id holds what breaks naive log lines, quotes, a backslash,
an equals sign and letters beyond ASCII (all valid in an id; a newline or an invalid byte is
refused before anything is logged, hostile_test.py), and the registry logs it at debug level.
Every line of every log must then be one record: in logfmt, `TIME LEVEL SERVICE EVENT` and
key=value pairs whose quoted values keep their quotes and backslashes escaped; in JSON, one
object per line with time, level, service and event, the id among its members as sent.
"""
import json
import os
import re

import samtest
from cloudevents.v1 import cloudevents_pb2
from samordna.v1 import events_pb2, registry_pb2

EVENT_ID = 'FORGED "quoted" \\back a=b Østfold'

# logfmt as samordna writes it: a key, '=', then a bare value or a quoted one in which only
# \" and \\ (and \n, \t, \xNN) are escapes
PAIR = re.compile(r'[A-Za-z0-9_.]+=(?:"(?:[^"\\]|\\.)*"|[^\s"]*)')
HEAD = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARN|ERROR) \S+ \S+")


def _run(fmt):
    """Starts a broker and a registry with --log-format fmt, publishes the event, stops both;
    returns their logs."""
    d = samtest.scratch(f"logs-{fmt}")
    broker, ep = samtest.broker("--log-format", fmt)
    reg = samtest.service("registry", ep, d, "--log-format", fmt, "--log-level", "debug")
    c = samtest.Client(ep)
    try:
        agency = registry_pb2.Agency(id="fmov", name="Statsforvalteren", kind=2)
        ev = cloudevents_pb2.CloudEvent(id=EVENT_ID, source="fmov", spec_version="1.0",
                                        type="no.samordna.registry.agency.registered",
                                        binary_data=agency.SerializeToString())
        rep, _ = c.call("registry", "events.publish", events_pb2.PublishRequest(event=ev))
        assert rep.status.code == 200, rep.status
    finally:
        c.close()
    assert reg.stop() == 0
    assert broker.stop() == 0
    return [reg.logtext(), broker.logtext()]


def test_logfmt_lines_are_whole_records():
    logged = []
    for log in _run("logfmt"):
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


def test_json_lines_are_objects():
    logged = []
    for log in _run("json"):
        for line in log.splitlines():
            record = json.loads(line)  # raises on anything but one object per line
            assert isinstance(record, dict), line
            for key in ("time", "level", "service", "event"):
                assert key in record, (key, line)
            assert record["level"] in ("debug", "info", "warn", "error"), line
            if any("FORGED" in str(v) for v in record.values()):
                logged.append(record)
    assert logged, "the event was not logged"
    assert any(r.get("id") == EVENT_ID and r["service"] == "registry" for r in logged), logged


if __name__ == "__main__":
    samtest.main()
