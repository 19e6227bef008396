"""docs/api.md against the services' own tables.

Every service answers the built-in service.describe with its table: one row per method and
per event type, as the runtime checks each request against it (common/sam_service.h, "The
table"). This test starts the four services behind one broker, asks each for its table and
compares it with docs/api.md both ways: a row the page lacks, a row the page has and the
service does not, and a row whose kind, request or reply type, roles or writes differ all
fail, each named. It also checks the checker on a page with a row missing and a role
changed, the limits a table reports (the configured --max-event-bytes, the registry's own
64 KiB), that `samctl describe` prints the same table, that a row naming no message type
(samordna-echo's) passes its bytes on undecoded, and that a payload its row refuses is judged
only after the duplicate check.
"""
import json
import os
import subprocess

import samtest
from samordna.v1 import service_pb2

SERVICES = ["registry", "status", "grants", "notify"]
DOC = os.path.join(samtest.SRC, "docs", "api.md")
ANY_ROLE = ["admin", "publisher", "reader", "service"]
KIND = {service_pb2.METHOD_KIND_QUERY: "query", service_pb2.METHOD_KIND_EVENT: "event",
        service_pb2.METHOD_KIND_BUILTIN: "built-in"}


def _type(cell):
    """A message type as the page writes it (`GetRequest`, —) → its full name, or ""."""
    t = cell.strip().strip("`").strip()
    if t in ("—", "-", ""):
        return ""
    return t if "." in t else "samordna.v1." + t


def _roles(cell):
    cell = cell.strip()
    if cell == "any role":
        return sorted(ANY_ROLE)
    return sorted(r.strip() for r in cell.split(","))


def doc_rows(text):
    """{service: {name: (kind, request, reply, roles, writes)}} from the page; the built-in
    methods under the service name "*"."""
    rows, service, kind = {}, None, None
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
            if heading.startswith("Built-in methods"):
                service, kind = "*", "built-in"
            else:
                service, kind = heading.split()[0], None
            rows.setdefault(service, {})
        elif line.startswith("### ") and service:
            kind = {"Queries": "query", "Events": "event"}.get(line[4:].strip())
            assert kind, f"docs/api.md: unknown section {line!r}"
        elif line.startswith("| `") and service and kind:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            assert len(cells) == 5, f"docs/api.md: a row of {len(cells)} cells: {line}"
            name = cells[0].strip("`")
            if kind == "event":
                request, reply = _type(cells[1]), ""
            else:
                assert "→" in cells[1], f"docs/api.md: {name}: no request → reply: {cells[1]}"
                left, right = cells[1].split("→")
                request, reply = _type(left), _type(right)
            assert cells[3] in ("yes", "no"), f"docs/api.md: {name}: writes is {cells[3]!r}"
            assert name not in rows[service], f"docs/api.md: {name} twice under {service}"
            rows[service][name] = (kind, request, reply, _roles(cells[2]), cells[3] == "yes")
    return rows


def table_rows(desc):
    return {m.name: (KIND.get(m.kind, "?"), m.request, m.reply, sorted(m.roles), m.writes)
            for m in desc.methods}


FIELDS = ("kind", "request", "reply", "roles", "writes")


def differences(service, documented, served):
    """Every way the page's rows of `service` (its own and the built-ins) and the service's
    table disagree, one line each."""
    want = dict(documented.get("*", {}))
    want.update(documented.get(service, {}))
    out = []
    for name in sorted(set(served) - set(want)):
        out.append(f"{service}: {name} is in the service's table, not in docs/api.md")
    for name in sorted(set(want) - set(served)):
        out.append(f"{service}: {name} is in docs/api.md, not in the service's table")
    for name in sorted(set(want) & set(served)):
        for field, doc_v, svc_v in zip(FIELDS, want[name], served[name]):
            if doc_v != svc_v:
                out.append(f"{service}: {name}: {field} is {doc_v!r} in docs/api.md, "
                           f"{svc_v!r} in the service")
    return out


class Stack:
    """A broker and the four services on a scratch store."""

    def __init__(self, name, *extra):
        data = samtest.scratch(name)
        self.broker, self.ep = samtest.broker()
        self.procs = [samtest.service(s, self.ep, data, *extra) for s in SERVICES]
        self.c = samtest.Client(self.ep)

    def describe(self, service):
        rep, d = self.c.call(service, "service.describe", b"", service_pb2.ServiceDescription)
        assert rep.status.code == 200, (service, rep.status)
        assert d.service == service, d.service
        return d

    def close(self):
        self.c.close()
        for p in self.procs:
            assert p.stop() == 0, p.name
        assert self.broker.stop() == 0


def test_docs_and_tables_agree():
    with open(DOC, encoding="utf-8") as f:
        documented = doc_rows(f.read())
    assert set(documented) == set(SERVICES) | {"*"}, sorted(documented)
    s = Stack("api-docs")
    try:
        problems = []
        for service in SERVICES:
            problems += differences(service, documented, table_rows(s.describe(service)))
        assert not problems, "docs/api.md and the tables disagree:\n" + "\n".join(problems)
    finally:
        s.close()


def test_the_check_finds_what_differs():
    """The comparison itself: a page with a row dropped and a role changed fails, naming both."""
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    documented = doc_rows(text)
    served = {}
    for name, row in {**documented["*"], **documented["registry"]}.items():
        served[name] = row
    assert differences("registry", documented, served) == []
    broken = "\n".join(
        line for line in text.splitlines() if not line.startswith("| `registry.pilots.get`"))
    role = ("| `notify.dead.replay` | `DeadReplayRequest` → `DeadReplayReply` | "
            "admin, publisher, service |")
    assert role in broken, "docs/api.md: the notify.dead.replay row changed; update this test"
    broken = broken.replace(role, role.replace("admin, publisher, service", "any role"))
    bad = doc_rows(broken)
    found = differences("registry", bad, served)
    assert found == ["registry: registry.pilots.get is in the service's table, "
                     "not in docs/api.md"], found
    notify_served = {**documented["*"], **documented["notify"]}
    found = differences("notify", bad, notify_served)
    assert len(found) == 1 and "notify.dead.replay: roles" in found[0], found


def test_limits_are_the_configured_ones():
    s = Stack("api-limits", "--max-event-bytes", "100000")
    try:
        for service in SERVICES:
            for m in s.describe(service).methods:
                if service == "registry" and m.kind == service_pb2.METHOD_KIND_EVENT:
                    want = 64 * 1024
                elif m.kind == service_pb2.METHOD_KIND_EVENT:
                    want = 100000
                else:
                    want = 100000 + 64
                assert m.limit == want, (service, m.name, m.limit, want)
        # The limit is what the runtime enforces before the handler: one byte over is 413.
        rep, _ = s.c.call("status", "status.kinds.get", b"\x0a" + b"x" * 100064)
        assert rep.status.code == 413 and "status.kinds.get" in rep.status.message, rep.status
    finally:
        s.close()


def test_samctl_describe_prints_the_table():
    s = Stack("api-samctl")
    try:
        served = table_rows(s.describe("grants"))
        samctl = os.path.join(samtest.BIN, "samctl")
        r = subprocess.run([samctl, "--broker", s.ep, "--insecure", "--json", "describe",
                            "grants"], capture_output=True, text=True, timeout=30 * samtest.SLOW)
        assert r.returncode == 0, r.stderr
        j = json.loads(r.stdout)
        assert j["service"] == "grants"
        got = {m["name"]: (m["kind"], m["request"], m["reply"], sorted(m["roles"]), m["writes"])
               for m in j["methods"]}
        assert got == served, (got, served)
        r = subprocess.run([samctl, "--broker", s.ep, "--insecure", "describe", "grants"],
                           capture_output=True, text=True, timeout=30 * samtest.SLOW)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].startswith("grants: %d methods" % len(served)), lines[0]
        assert len(lines) == 2 + len(served), r.stdout
        ledger = [line for line in lines if line.startswith("grants.ledger.verify ")]
        assert len(ledger) == 1 and "- → LedgerReport" in ledger[0], r.stdout
        r = subprocess.run([samctl, "--broker", s.ep, "--insecure", "describe"],
                           capture_output=True, text=True, timeout=30 * samtest.SLOW)
        assert r.returncode == 2 and "usage" in r.stderr, (r.returncode, r.stderr)
    finally:
        s.close()


def test_rows_without_a_message_type_take_bytes():
    """samordna-echo's rows name no message type: its table says so, and bytes that are no
    protobuf at all reach the handler unchanged instead of being refused as undecodable."""
    data = samtest.scratch("api-echo")
    broker, ep = samtest.broker()
    echo = samtest.service("echo", ep, data)
    c = samtest.Client(ep)
    try:
        rep, d = c.call("echo", "service.describe", b"", service_pb2.ServiceDescription)
        assert rep.status.code == 200, rep.status
        rows = table_rows(d)
        assert rows["echo"] == ("query", "", "", sorted(ANY_ROLE), False), rows["echo"]
        assert rows["no.samordna.echo.recorded"] == (
            "event", "", "", ["admin", "publisher", "service"], True), rows
        assert set(rows) == {"echo", "no.samordna.echo.recorded", "ping", "events.publish",
                             "events.read", "service.describe", "store.backup",
                             "replica.promote"}, sorted(rows)
        rep, _ = c.call("echo", "echo", b"\xff\xff\xff not protobuf")
        assert rep.status.code == 200 and rep.body == b"\xff\xff\xff not protobuf", rep
        rep, _ = c.call("echo", "no.such.method", b"")
        assert rep.status.code == 501 and "no.such.method" in rep.status.message, rep.status
    finally:
        c.close()
        assert echo.stop() == 0
        assert broker.stop() == 0


def test_a_duplicate_is_answered_before_its_payload_is_judged():
    """The runtime refuses a payload by its row (size, type) only after the duplicate check,
    so a true retry of a stored (source, id) gets its original sequence number, and a reuse of
    the id for another payload is refused 409 as a reuse — even when that payload is one its
    row would refuse (docs/events.md, "Retries and reused ids"); the same payloads under a new
    id are refused by the row."""
    from samordna.v1 import registry_pb2
    data = samtest.scratch("api-dup")
    broker, ep = samtest.broker()
    reg = samtest.service("registry", ep, data)
    c = samtest.Client(ep)

    def publish(eid, payload):
        rep, pr = samtest.publish(c, "registry", samtest.event(
            "no.samordna.registry.agency.registered", payload, eid=eid))
        return rep.status.code, rep.status.message, pr

    try:
        agency = registry_pb2.Agency(id="fmov", name="Statsforvalteren i Østfold",
                                     kind=registry_pb2.AGENCY_KIND_COUNTY_GOVERNOR)
        code, msg, first = publish("a-1", agency.SerializeToString())
        assert code == 200 and not first.duplicate, (code, msg)
        code, msg, again = publish("a-1", agency.SerializeToString())
        assert code == 200 and again.duplicate and again.seq == first.seq, (code, msg)
        for payload in (b"\xff\xff\xff", b"x" * 70000):
            code, msg, _ = publish("a-1", payload)
            assert code == 409 and f"seq {first.seq}" in msg and "data" in msg, (code, msg)
        code, msg, _ = publish("a-2", b"\xff\xff\xff")
        assert code == 400 and "undecodable" in msg, (code, msg)
        code, msg, _ = publish("a-3", b"x" * 70000)
        assert code == 413 and msg.startswith("data:"), (code, msg)
    finally:
        c.close()
        assert reg.stop() == 0
        assert broker.stop() == 0


if __name__ == "__main__":
    samtest.main()
