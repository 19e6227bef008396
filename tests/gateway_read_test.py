"""The gateway's read side, against a real broker, the four services with the Østfold fixture
imported, and samordna-gateway: every query as JSON over GET (the short routes and
/v1/<service>/<method>), query parameters by their JSON and .proto names and type-checked
(a bad one is a 400 problem naming it and what would be right), unknown ids as 404 problems,
paging by the Link header rel="next", and the OpenAPI 3.1 document, validated by
@seriousme/openapi-schema-validator (tests/tools/openapi_validate.mjs) and checked to have a
path for every query each running service's own service.describe lists.
"""
import http.client
import json
import os
import re
import shutil
import subprocess
import urllib.parse

import samtest
from samordna.v1 import envelope_pb2, registry_pb2, service_pb2

SAMCTL = os.path.join(samtest.BIN, "samctl")
FIXTURE = os.path.join(samtest.SRC, "deploy", "examples", "ostfold-2019.json")
TESTS = os.path.join(samtest.SRC, "tests")
SERVICES = ("registry", "status", "grants", "notify")
# The built-ins that read; events.publish is POST /v1/events and store.backup an operator's.
READING_BUILTINS = {"ping", "events.read", "service.describe"}


class Stack(samtest.Closing):
    """broker, the four services, the fixture imported, and the gateway on a free port."""

    def __init__(self, name):
        self.data = samtest.scratch(name)
        self.broker, self.ep = samtest.broker()
        self.procs = {svc: samtest.service(svc, self.ep, self.data) for svc in SERVICES}
        self.samctl("import", FIXTURE)
        self.settle()
        self.port = samtest.free_port()
        self.gateway = samtest.Proc(f"gateway-{self.port}", [
            "samordna-gateway", "--broker", self.ep, "--listen", f"127.0.0.1:{self.port}",
            "--insecure", "--request-timeout-ms", "3000"])
        samtest.wait_for(lambda: self._healthy(), 20, "the gateway's /v1/healthz")

    def settle(self):
        """Waits until status and grants have projected every registry event: they follow
        the registry's outbox on their own, so a read right after the import could see a
        board still filling in."""
        c = samtest.Client(self.ep)

        def ping(svc):
            rep, d = c.call(svc, "ping", b"", envelope_pb2.PingReply)
            assert rep.status.code == 200, rep
            return d

        def caught_up():
            head = ping("registry").last_seq
            cursors = [f.cursor for svc in ("status", "grants")
                       for f in ping(svc).followers if f.service == "registry"]
            return head > 0 and len(cursors) == 2 and min(cursors) >= head
        try:
            samtest.wait_for(caught_up, 20, "status and grants following the registry")
        finally:
            c.close()

    def _healthy(self):
        try:
            return self.get("/v1/healthz")[0] == 200
        except OSError:
            return False

    def samctl(self, *args):
        p = subprocess.run([SAMCTL, *args, "--broker", self.ep], capture_output=True, text=True,
                           timeout=60 * samtest.SLOW)
        assert p.returncode == 0, (args, p.stdout, p.stderr)
        return p.stdout

    def get(self, path, method="GET"):
        """(status, headers as a dict of lower-case names, body as JSON or None)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30 * samtest.SLOW)
        try:
            c.request(method, path)
            r = c.getresponse()
            raw = r.read()
            headers = {k.lower(): v for k, v in r.getheaders()}
        finally:
            c.close()
        body = json.loads(raw) if raw and "json" in headers.get("content-type", "") else None
        return r.status, headers, body

    def post(self, path, body, headers):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30 * samtest.SLOW)
        try:
            c.request("POST", path, body=body, headers=headers)
            r = c.getresponse()
            return r.status, json.loads(r.read())
        finally:
            c.close()

    def ok(self, path):
        status, headers, body = self.get(path)
        assert status == 200, (path, status, body)
        assert headers["content-type"].startswith("application/json"), headers
        return body

    def problem(self, path, want_status):
        status, headers, body = self.get(path)
        assert status == want_status, (path, status, body)
        assert headers["content-type"].startswith("application/problem+json"), headers
        assert body["status"] == want_status and body["type"].startswith("https://"), body
        assert body["title"] and body["detail"], body
        return body

    def close(self):
        """Stops everything; the gateway must exit 0 (under the sanitizers: no leak)."""
        rc = self.gateway.stop()
        assert rc == 0, (rc, self.gateway.logtext()[-3000:])
        for p in self.procs.values():
            if p.alive():
                p.stop()
        self.broker.stop()


def _board(s):
    board = s.ok("/v1/board?as_of=2019-11-30")
    assert board["asOf"] == "2019-11-30", board["asOf"]
    rows = {r["pilot"]: r for r in board["rows"]}
    assert set(rows) == {"halden", "sarpsborg", "fredrikstad", "indre-ostfold"}, rows.keys()
    assert rows["halden"]["phase"] == "operative", rows["halden"]
    assert rows["halden"]["phaseLabel"] == "Operativ", rows["halden"]
    assert rows["fredrikstad"]["phaseLabel"] == "Forankret", rows["fredrikstad"]
    reached = [c["kind"] for c in rows["halden"]["cells"] if c["date"]]
    assert len(reached) == 6 and "operative" in reached, rows["halden"]["cells"]
    # every field is written, defaults too: Fredrikstad has not reached "operative"
    cells = {c["kind"]: c for c in rows["fredrikstad"]["cells"]}
    assert cells["operative"]["date"] == "", cells
    assert rows["halden"]["openBarriers"] == 0, rows["halden"]
    # the JSON name is the same parameter, and the generic route the same query
    for path in ("/v1/board?asOf=2019-11-30", "/v1/status/status.board?as_of=2019-11-30"):
        again = s.ok(path)
        assert again == board, (path, again, board)
    # before Halden's anchoring: no phase yet
    early = {r["pilot"]: r for r in s.ok("/v1/board?asOf=2018-01-01")["rows"]}
    assert early["halden"]["phase"] == "", early["halden"]


def _pilots(s):
    pilots = s.ok("/v1/pilots")
    assert sorted(p["id"] for p in pilots["items"]) == [
        "fredrikstad", "halden", "indre-ostfold", "sarpsborg"], pilots
    assert pilots["nextPageToken"] == "", pilots
    halden = s.ok("/v1/pilots/halden")
    assert halden["id"] == "halden" and halden["municipality"] == "halden", halden
    again = s.ok("/v1/registry/registry.pilots.get?id=halden")
    assert again == halden, (again, halden)
    only = s.ok("/v1/pilots?municipality=halden")
    assert [p["id"] for p in only["items"]] == ["halden"], only
    agency = s.ok("/v1/agencies/fmov")
    assert agency["id"] == "fmov", agency
    kinds = s.ok("/v1/kinds")
    assert [k["id"] for k in kinds["kinds"]][:2] == ["defined_challenge", "anchored"], kinds
    history = s.ok("/v1/pilots/halden/history")
    assert len(history["changes"]) == 6, history
    ping = s.ok("/v1/grants/ping")
    assert ping["service"] == "grants", ping


def _overview(s):
    halden = s.ok("/v1/grants/overview/halden?year=2019")
    assert halden["recipient"] == "halden" and halden["year"] == 2019, halden
    # int64 as a string of digits, by the proto3 JSON mapping: NOK 200 000 from fmov
    assert halden["committedOre"] == "20000000", halden
    assert [(g["key"], g["committedOre"]) for g in halden["groups"]] == [("fmov", "20000000")]
    # without a recipient: every recipient's totals, NOK 1 500 000 in 2019
    every = s.ok("/v1/grants/overview?year=2019")
    total = sum(int(g["committedOre"]) for g in every["groups"])
    assert total == 150000000, every["groups"]
    assert every["committedOre"] == "150000000", every
    again = s.ok("/v1/grants/grants.overview?recipient=halden&year=2019")
    assert again == halden, (again, halden)


def _barriers(s):
    s.samctl("barrier", "register", "b-open", "--title", "Regel", "--concerns", "rule",
             "--pilot", "halden", "--date", "2019-03-01")
    s.samctl("barrier", "register", "b-done", "--title", "Praksis", "--concerns", "practice",
             "--pilot", "sarpsborg", "--date", "2019-03-02")
    s.samctl("barrier", "move", "b-done", "changed", "--date", "2019-06-01")
    every = s.ok("/v1/barriers")
    assert [b["id"] for b in every["barriers"]] == ["b-done", "b-open"], every
    for path in ("/v1/barriers?open=true", "/v1/barriers?openOnly=true",
                 "/v1/status/status.barriers.list?open_only=true"):
        assert [b["id"] for b in s.ok(path)["barriers"]] == ["b-open"], path
    by_pilot = s.ok("/v1/barriers?pilot=sarpsborg")["barriers"]
    assert [b["id"] for b in by_pilot] == ["b-done"], by_pilot
    one = s.ok("/v1/barriers/b-done")
    assert one["id"] == "b-done" and one["state"] == "changed", one


def _bad_parameters(s):
    p = s.problem("/v1/grants/overview/halden?year=19x", 400)
    assert p["errors"][0]["pointer"] == "year", p
    assert "whole number from 0 to 4294967295" in p["errors"][0]["reason"], p
    assert p["type"].endswith("/invalid-parameter"), p
    p = s.problem("/v1/grants/overview/halden?yaer=2019", 400)
    assert p["errors"][0]["pointer"] == "yaer", p
    assert "unknown parameter" in p["errors"][0]["reason"], p
    assert "year" in p["errors"][0]["reason"] and "groupBy" in p["errors"][0]["reason"], p
    # the short route's own name, and every wrong value at once
    p = s.problem("/v1/barriers?open=yes&pageSize=-1", 400)
    reasons = {e["pointer"]: e["reason"] for e in p["errors"]}
    assert "true or false" in reasons["open"] and "whole number" in reasons["pageSize"], p
    # the path segment fills the field: giving it again is refused
    p = s.problem("/v1/pilots/halden?id=sarpsborg", 400)
    assert p["errors"][0]["pointer"] == "id" and "path" in p["errors"][0]["reason"], p
    # an enum by its names
    p = s.problem("/v1/notify/subscriptions?channel=pigeon", 400)
    assert "NOTIFY_CHANNEL_" in p["errors"][0]["reason"], p
    # a query that takes no message takes no parameter
    p = s.problem("/v1/kinds?x=1", 400)
    assert "takes: none" in p["errors"][0]["reason"], p
    # a value that is not text is named escaped, never echoed raw
    p = s.problem("/v1/pilots?agency=%01x", 400)
    assert "\x01" not in json.dumps(p, ensure_ascii=False), p
    # the service's own refusal comes through with its words
    p = s.problem("/v1/board?as_of=2019-02-30", 400)
    assert "as_of" in p["detail"] or "asOf" in p["detail"], p
    log = s.gateway.logtext()
    assert "invalid-parameter" in log or "refused" in log, log[-2000:]


def _unknown(s):
    for path in ("/v1/pilots/nowhere", "/v1/grants/awards/nope", "/v1/barriers/nope",
                 "/v1/registry/registry.agencies.get?id=nope"):
        p = s.problem(path, 404)
        assert p["type"].endswith("/not-found"), p
    p = s.problem("/v1/nothing/here", 404)
    assert "openapi.json" in p["detail"], p
    # a method of no service, or one that writes, has no GET
    s.problem("/v1/registry/status.board", 404)
    s.problem("/v1/notify/notify.inbox.ack", 404)
    s.problem("/v1/registry/store.backup", 404)
    status, _, _ = s.get("/v1/pilots", method="POST")
    assert status == 405, status
    # a path another route owns is still that route's, under the reads' /v1/ prefix
    status, headers, body = s.get("/v1/events")
    assert status == 405 and headers.get("allow") == "POST", (status, headers, body)


def test_paging_by_the_next_link():
    s = Stack("gwr-paging")
    every = s.ok("/v1/agencies")["items"]
    assert len(every) == 8, every
    seen, path, pages = [], "/v1/agencies?pageSize=3&kind=", 0
    while path:
        status, headers, body = s.get(path)
        assert status == 200, (path, body)
        seen += [a["id"] for a in body["items"]]
        pages += 1
        link = headers.get("link")
        if body["nextPageToken"]:
            assert link and link.endswith('>; rel="next"'), headers
            path = link[1:link.index(">")]
            q = urllib.parse.parse_qs(urllib.parse.urlparse(path).query, keep_blank_values=True)
            assert q["pageToken"] == [body["nextPageToken"]] and q["pageSize"] == ["3"], q
            assert "kind" in q, ("the other parameters are kept", q)
        else:
            assert link is None, headers
            path = None
        assert pages <= 4, seen
    assert pages == 3 and seen == [a["id"] for a in every], seen
    # notify's log pages by a number token; an inbox's log is empty (the log is of webhook
    # and e-mail attempts, and kept after a subscription ends: no 404 for an unknown one)
    s.samctl("notify", "subscribe", "ops", "--inbox", "--type", "no.samordna.registry.*",
             "--from-seq", "registry:0")
    log = s.ok("/v1/notify/log/ops")
    assert log["entries"] == [] and log["nextPageToken"] == "0", log
    s.problem("/v1/notify/subscriptions/nobody", 404)
    samtest.wait_for(lambda: s.ok("/v1/notify/inbox/ops?max=2")["items"], 20,
                     "the registry's history in the inbox")
    items = s.ok("/v1/notify/inbox/ops?max=2")["items"]
    assert len(items) == 2 and items[0]["event"]["type"].startswith("no.samordna.registry."), \
        items
    assert s.ok("/v1/notify/subscriptions/ops")["subscription"]["id"] == "ops"
    s.close()


def _openapi(s):
    doc = s.ok("/v1/openapi.json")
    path = os.path.join(s.data, "openapi.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    return doc, path


def _openapi_validates(s):
    if not os.path.isdir(os.path.join(TESTS, "node_modules", "@seriousme",
                                      "openapi-schema-validator")):
        raise AssertionError("tests/node_modules lacks @seriousme/openapi-schema-validator: "
                             "run tools/deps.sh")
    doc, path = _openapi(s)
    r = subprocess.run(["node", os.path.join(TESTS, "tools", "openapi_validate.mjs"), path],
                       capture_output=True, text=True, timeout=60 * samtest.SLOW,
                       cwd=TESTS)
    assert r.returncode == 0, (r.stdout, r.stderr)
    out = json.loads(r.stdout)
    assert out["valid"] and out["version"].startswith("3.1"), out
    # a broken document is refused by the same script: the check can fail
    broken = dict(doc, paths=dict(doc["paths"]))
    broken["paths"]["/v1/x"] = {"get": {"responses": {"200": {"$ref": "#/nothing"}}}}
    bad = os.path.join(s.data, "broken.json")
    with open(bad, "w") as f:
        json.dump(broken, f)
    r = subprocess.run(["node", os.path.join(TESTS, "tools", "openapi_validate.mjs"), bad],
                       capture_output=True, text=True, timeout=60 * samtest.SLOW, cwd=TESTS)
    assert r.returncode == 1 and "#/nothing" in r.stdout, (r.stdout, r.stderr)


def _openapi_security(s):
    """The gateway's tokens as the bearer scheme, required everywhere but the two routes that
    answer without one (docs/gateway.md, "Tokens")."""
    doc, _ = _openapi(s)
    scheme = doc["components"]["securitySchemes"]["bearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer", scheme
    assert scheme["bearerFormat"] == "JWT" and "samordna:write" in scheme["description"], scheme
    assert doc["security"] == [{"bearer": []}], doc["security"]
    open_routes = {"/v1/healthz", "/v1/openapi.json"}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            needs = op.get("security", doc["security"])
            if path in open_routes:
                assert needs == [], (path, needs)
            else:
                assert needs == [{"bearer": []}], (method, path, needs)
    assert "post" in doc["paths"]["/v1/events"] and "/v1/pilots" in doc["paths"]


def _every_query(s):
    doc, _ = _openapi(s)
    c = samtest.Client(s.ep)
    try:
        for svc in SERVICES:
            rep, d = c.call(svc, "service.describe", b"", service_pb2.ServiceDescription)
            assert rep.status.code == 200, rep
            reads = [m for m in d.methods if m.kind == service_pb2.METHOD_KIND_QUERY
                     and not m.writes or m.name in READING_BUILTINS]
            assert len(reads) >= 4, d
            for m in reads:
                path = f"/v1/{svc}/{m.name}"
                assert "get" in doc["paths"].get(path, {}), (path, "not in the document")
                op = doc["paths"][path]["get"]
                ok = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
                assert ok == "#/components/schemas/" + m.reply, (path, ok, m.reply)
                # and the gateway answers it (a bad parameter at worst, never no route)
                status, _, body = s.get(path)
                assert status in (200, 400, 404), (path, status, body)
                if status == 404:
                    assert "no route" not in body["detail"], (path, body)
    finally:
        c.close()
    # the routes of the issue are there, with their parameters
    for path, param in [("/v1/pilots", "pageToken"), ("/v1/board", "asOf"),
                        ("/v1/barriers", "open"), ("/v1/grants/overview/{recipient}", "year"),
                        ("/v1/notify/log/{subscription}", "pageToken")]:
        names = [p["name"] for p in doc["paths"][path]["get"]["parameters"]]
        assert param in names, (path, names)
    schemas = doc["components"]["schemas"]
    group = schemas["samordna.v1.OverviewGroup"]["properties"]
    assert group["committedOre"]["type"] == "string", group  # int64 as a string
    assert group["awards"]["type"] == "integer", group
    status = schemas["samordna.v1.AwardStatus"]
    assert status["type"] == "string" and "AWARD_STATUS_OPEN" in status["enum"], status
    board = schemas["samordna.v1.BoardReply"]["properties"]
    assert board["rows"] == {"type": "array",
                             "items": {"$ref": "#/components/schemas/samordna.v1.BoardRow"}}
    post = doc["paths"]["/v1/events"]["post"]
    assert {"application/cloudevents+json", "application/cloudevents-batch+json",
            "application/json"} <= set(post["requestBody"]["content"]), post
    assert "Problem" in schemas and "detail" in schemas["Problem"]["properties"]
    # the Problem answer is what a refusal really looks like
    p = s.problem("/v1/pilots/nowhere", 404)
    assert set(p) <= set(schemas["Problem"]["properties"]), p
    # and a publish's answer what PublishResult says (binary mode, protobuf data)
    agency = registry_pb2.Agency(id="nav-halden", name="NAV Halden",
                                 kind=registry_pb2.AGENCY_KIND_STATE_REGIONAL)
    status, result = s.post("/v1/events", agency.SerializeToString(), {
        "Content-Type": "application/protobuf", "ce-id": "gwr-1", "ce-source": "fmov",
        "ce-specversion": "1.0", "ce-type": "no.samordna.registry.agency.registered"})
    assert status == 201, (status, result)
    assert set(result) <= set(schemas["PublishResult"]["properties"]), result
    assert s.ok("/v1/agencies/nav-halden")["name"] == "NAV Halden"


# Every process a test starts is stopped when it ends (samtest.main): one stack per test.

def test_every_read_answers_the_fixture_facts():
    s = Stack("gwr-reads")
    _board(s)
    _pilots(s)
    _overview(s)
    _barriers(s)
    s.close()


def test_refusals_are_problems():
    s = Stack("gwr-refusals")
    _bad_parameters(s)
    _unknown(s)
    s.close()


def test_the_openapi_document():
    s = Stack("gwr-openapi")
    _openapi_validates(s)
    _openapi_security(s)
    _every_query(s)
    s.close()


def test_readme_get_examples():
    """The README's "Reading over HTTP" examples, run as they are written (against this
    gateway's port instead of 8080), on the fixture."""
    if not shutil.which("curl"):
        raise samtest.Skip("curl is not installed")
    text = open(os.path.join(samtest.SRC, "README.md"), encoding="utf-8").read()
    section = text.split("## Reading over HTTP", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) == 1 and blocks[0].count("curl ") >= 8, blocks
    s = Stack("gwr-readme")
    script = blocks[0].replace("http://127.0.0.1:8080", f"http://127.0.0.1:{s.port}")
    p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], capture_output=True,
                       text=True, timeout=60 * samtest.SLOW)
    assert p.returncode == 0, (p.stdout, p.stderr)
    for want in ('"phaseLabel":"Operativ"', '"committedOre":"20000000"',
                 '"committedOre":"150000000"', 'rel="next"', '"openapi":"3.1.0"',
                 '"id":"halden-2018-09-19-anchoring"'):
        assert want in p.stdout, (want, p.stdout[-3000:])
    # and the refusal quoted beside them
    status, _, body = s.get("/v1/grants/overview/halden?year=19x")
    quoted = section[section.index('`{"type":'):]
    assert status == 400 and body["detail"] in " ".join(quoted.replace("\\", "").split()), body
    s.close()


def test_a_service_down_is_503_with_retry_after():
    s = Stack("gwr-down")
    s.procs["grants"].stop()
    status, headers, body = s.get("/v1/grants/overview?year=2019")
    assert status == 503, (status, body)
    assert headers.get("retry-after"), headers
    assert headers["content-type"].startswith("application/problem+json"), headers
    # the others still answer
    assert s.ok("/v1/pilots/halden")["id"] == "halden", "the other services still answer"
    s.close()


if __name__ == "__main__":
    samtest.main()
