"""samordna-gateway: CloudEvents over HTTP, against a real broker, registry and status.

Events are published with the official CloudEvents JavaScript SDK (npm `cloudevents`, in
binary, structured and batch mode; tests/tools/ce_publish.js) and with curl as README.md
writes it (the examples are taken from the README, so they cannot drift), and read back from
the registry's outbox with events.read. Every bad input is sent for real — malformed JSON, a
wrong or missing content type, a body over the limit (refused before it is read), an unknown
type or attribute, a slow client, more connections than the limit, a service or broker that
is down — and each must be answered with its problem (application/problem+json, RFC 9457),
logged, and store nothing.
"""
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

import samtest
from samordna.v1 import events_pb2, registry_pb2

TESTS = os.path.join(samtest.SRC, "tests")
CE_PUBLISH = os.path.join(TESTS, "tools", "ce_publish.js")
AGENCY = "no.samordna.registry.agency.registered"
PERSON = "no.samordna.registry.person.registered"
PROBLEMS = "https://samordna.no/problems/"


class Gateway(samtest.Closing):
    """A broker, the registry (and status when asked) and samordna-gateway in front of them."""

    def __init__(self, name, *gw_args, status=False, broker_args=()):
        self.data = samtest.scratch(name)
        self.broker, self.ep = samtest.broker(*broker_args)
        self.services = [samtest.service("registry", self.ep, self.data)]
        names = ["--service", "registry"]
        if status:
            self.services.append(samtest.service("status", self.ep, self.data))
            names += ["--service", "status"]
        self.port = samtest.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.gw = samtest.Proc(f"gateway-{self.port}", [
            "samordna-gateway", "--broker", self.ep, "--insecure",
            "--listen", f"127.0.0.1:{self.port}", *names, *gw_args])
        samtest.wait_for(lambda: self.get("/v1/healthz")[0] == 200, 10, "the gateway's tables")
        self.client = samtest.Client(self.ep)

    def close(self):
        self.client.close()
        code = self.gw.stop()  # a clean exit (and, under the sanitizers, no leak)
        for p in self.services + [self.broker]:
            p.stop()
        assert code == 0, f"the gateway exited {code}:\n{self.gw.logtext()[-2000:]}"


    def request(self, method, path, body=b"", headers=None, timeout=10):
        """(status, headers dict with lower-case names, body bytes) over one connection."""
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout * samtest.SLOW)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def get(self, path):
        try:
            return self.request("GET", path)
        except OSError:
            return 0, {}, b""

    def post(self, body, content_type=None, headers=None):
        h = dict(headers or {})
        if content_type:
            h["Content-Type"] = content_type
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        return self.request("POST", "/v1/events", body, h)

    def head(self):
        """The registry's outbox head, from events.read."""
        rep, rr = self.client.call("registry", "events.read",
                                   events_pb2.ReadRequest(after_seq=0, max=1), events_pb2.ReadReply)
        assert rep.status.code == 200, rep.status.message
        return rr.last_seq

    def stored(self, seq):
        rep, rr = self.client.call("registry", "events.read",
                                   events_pb2.ReadRequest(after_seq=seq - 1, max=1),
                                   events_pb2.ReadReply)
        assert rep.status.code == 200 and rr.events and rr.events[0].seq == seq, rep.status.message
        return rr.events[0].event

    def sdk(self, mode, events):
        """Publishes with the CloudEvents SDK; returns its {status, contentType, body}."""
        p = subprocess.run(["node", CE_PUBLISH], input=json.dumps(
            {"url": self.url + "/v1/events", "mode": mode, "events": events}),
            capture_output=True, text=True, timeout=60 * samtest.SLOW)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)


def needs_node():
    if not shutil.which("node"):
        raise samtest.Skip("node is not installed (Debian package nodejs)")
    if not os.path.isdir(os.path.join(TESTS, "node_modules", "cloudevents")):
        raise AssertionError("tests/node_modules lacks cloudevents: run tools/deps.sh")


def agency(aid, name=None):
    return registry_pb2.Agency(id=aid, name=name or f"Etat {aid}",
                               kind=registry_pb2.AGENCY_KIND_STATE_REGIONAL).SerializeToString()


def problem(status, hdrs, body, code, ptype):
    """Checks one problem answer; returns it parsed."""
    assert status == code, (status, body)
    assert hdrs["content-type"] == "application/problem+json", hdrs
    p = json.loads(body)
    assert p["type"] == PROBLEMS + ptype, p
    assert p["status"] == code and p["title"] and p["detail"], p
    return p


# ---- the SDK, in the three modes -------------------------------------------------------------

def test_sdk_binary_mode_stores_the_event():
    needs_node()
    with Gateway("gw-binary") as g:
        r = g.sdk("binary", [{"id": "sdk-b1", "source": "fmov", "type": AGENCY,
                              "subject": "sdk-b", "data_hex": agency("sdk-b").hex()}])
        assert r["status"] == 201, r
        assert r["contentType"] == "application/json", r
        assert r["body"] == {"seq": 1, "duplicate": False}, r
        ev = g.stored(1)
        assert (ev.id, ev.source, ev.type) == ("sdk-b1", "fmov", AGENCY), ev
        assert ev.attributes["subject"].ce_string == "sdk-b", ev
        assert ev.attributes["datacontenttype"].ce_string == "application/protobuf", ev
        assert ev.attributes["time"].HasField("ce_timestamp"), ev  # the SDK's time, as a Timestamp
        assert ev.binary_data == agency("sdk-b")
        # the same event again is a retry: 200 with the original seq
        again = g.sdk("binary", [{"id": "sdk-b1", "source": "fmov", "type": AGENCY,
                                  "subject": "sdk-b", "data_hex": agency("sdk-b").hex()}])
        assert again["status"] == 200 and again["body"] == {"seq": 1, "duplicate": True}, again
        assert g.head() == 1


def test_sdk_structured_mode_and_a_reused_id():
    needs_node()
    with Gateway("gw-structured") as g:
        r = g.sdk("structured", [{"id": "sdk-s1", "source": "fmov", "type": AGENCY,
                                  "data_hex": agency("sdk-s").hex()}])
        assert r["status"] == 201 and r["body"]["seq"] == 1, r
        assert g.stored(1).binary_data == agency("sdk-s")
        # the same (source, id) with other data: 409, the problem naming the original seq
        r = g.sdk("structured", [{"id": "sdk-s1", "source": "fmov", "type": AGENCY,
                                  "data_hex": agency("sdk-s", "Annet navn").hex()}])
        assert r["status"] == 409, r
        assert r["contentType"] == "application/problem+json", r
        assert r["body"]["type"] == PROBLEMS + "conflict", r
        assert "seq 1" in r["body"]["detail"] and "data" in r["body"]["detail"], r
        assert g.head() == 1


def test_sdk_data_as_json():
    """data as JSON, the proto3 JSON mapping of the type's payload: lowerCamelCase or .proto
    names, enums by name; stored as the same protobuf the binary form gives."""
    needs_node()
    with Gateway("gw-json") as g:
        data = {"id": "json-a", "name": "Etat json-a", "kind": "AGENCY_KIND_STATE_REGIONAL",
                "former_names": ["Gammelt navn"]}
        want = registry_pb2.Agency(id="json-a", name="Etat json-a", former_names=["Gammelt navn"],
                                   kind=registry_pb2.AGENCY_KIND_STATE_REGIONAL)
        r = g.sdk("structured", [{"id": "json-1", "source": "fmov", "type": AGENCY,
                                  "data": data}])
        assert r["status"] == 201, r
        ev = g.stored(1)
        assert registry_pb2.Agency.FromString(ev.binary_data) == want
        assert ev.attributes["datacontenttype"].ce_string == "application/protobuf", ev
        # binary mode: the body is the JSON, Content-Type application/json
        data2 = {"id": "json-b", "name": "Etat json-b", "kind": 2}  # an enum by number too
        r = g.sdk("binary", [{"id": "json-2", "source": "fmov", "type": AGENCY, "data": data2}])
        assert r["status"] == 201, r
        assert registry_pb2.Agency.FromString(g.stored(2).binary_data).id == "json-b"
        # batch: JSON and protobuf data side by side, an unknown field refused by its pointer
        r = g.sdk("batch", [
            {"id": "json-3", "source": "fmov", "type": AGENCY, "data": dict(data, id="json-c")},
            {"id": "json-4", "source": "fmov", "type": AGENCY, "data_hex": agency("json-d").hex()},
            {"id": "json-5", "source": "fmov", "type": AGENCY, "data": {"id": "json-e", "nmae": "x"}},
        ])
        assert [x["status"] for x in r["body"]] == [201, 201, 400], r
        assert r["body"][2]["type"] == PROBLEMS + "invalid-data", r
        assert r["body"][2]["errors"][0]["pointer"] == "/2/data", r
        assert "nmae" in r["body"][2]["detail"], r
        assert g.head() == 4


def test_sdk_batch_mode_answers_each_event():
    needs_node()
    with Gateway("gw-batch") as g:
        events = [{"id": f"sdk-batch-{i}", "source": "fmov", "type": AGENCY,
                   "data_hex": agency(f"batch-{i}").hex()} for i in range(5)]
        events.insert(2, {"id": "sdk-batch-bad", "source": "fmov",
                          "type": "no.samordna.registry.nothing.happened",
                          "data_hex": agency("x").hex()})
        r = g.sdk("batch", events)
        assert r["status"] == 200, r
        results = r["body"]
        assert [x["status"] for x in results] == [201, 201, 400, 201, 201, 201], results
        assert [x["id"] for x in results] == [e["id"] for e in events], results
        assert results[2]["type"] == PROBLEMS + "unknown-event-type", results[2]
        assert results[2]["errors"][0]["pointer"] == "/2/type", results[2]
        assert sorted(x["seq"] for x in results if x["status"] == 201) == [1, 2, 3, 4, 5]
        assert g.head() == 5
        # the whole batch again: every event a duplicate of itself, the bad one still bad
        again = g.sdk("batch", events)["body"]
        assert [x["status"] for x in again] == [200, 200, 400, 200, 200, 200], again
        assert [x.get("seq") for x in again] == [x.get("seq") for x in results], again
        assert g.head() == 5


def test_events_are_routed_by_the_service_tables():
    with Gateway("gw-route", status=True) as g:
        # a status type goes to status, which answers for its own payload
        s, h, b = g.post(b"", headers={"ce-specversion": "1.0", "ce-id": "r1", "ce-source": "fmov",
                                       "ce-type": "no.samordna.status.milestone.reached"})
        p = problem(s, h, b, 400, "invalid-event")
        assert "MilestoneReached" in p["detail"], p
        s, h, b = g.get("/v1/healthz")
        assert s == 200 and json.loads(b)["services"] == {"registry": "ok", "status": "ok"}
        assert g.head() == 0


def test_a_service_that_never_described_itself():
    """A configured service that does not answer service.describe: /v1/healthz says so (503),
    the types of the services that did answer still go through, any other type is 503 (that
    service may own it), not 400."""
    with _Unready() as g:
        s, h, b = g.get("/v1/healthz")
        assert s == 503 and h["retry-after"] == "1", (s, h, b)
        assert json.loads(b)["services"] == {"registry": "ok",
                                             "absent": "no answer to service.describe"}, b
        s, h, b = g.post({"specversion": "1.0", "id": "u-1", "source": "fmov", "type": AGENCY,
                          "data": {"id": "u-agency", "name": "U", "kind": 2}},
                         "application/cloudevents+json")
        assert s == 201, b
        s, h, b = g.post({"specversion": "1.0", "id": "u-2", "source": "fmov",
                          "type": "no.samordna.absent.thing.done"},
                         "application/cloudevents+json")
        p = problem(s, h, b, 503, "service-unavailable")
        assert "service.describe" in p["detail"] and h["retry-after"] == "1", p
        assert g.head() == 1


class _Unready(Gateway):
    def __init__(self):
        self.data = samtest.scratch("gw-unready")
        self.broker, self.ep = samtest.broker()
        self.services = [samtest.service("registry", self.ep, self.data)]
        self.port = samtest.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.gw = samtest.Proc(f"gateway-{self.port}", [
            "samordna-gateway", "--broker", self.ep, "--insecure", "--request-timeout-ms", "300",
            "--listen", f"127.0.0.1:{self.port}", "--service", "registry", "--service", "absent"])
        samtest.wait_for(lambda: self.get("/v1/healthz")[0] == 503 and
                         b'"registry":"ok"' in self.get("/v1/healthz")[2], 10, "registry's table")
        self.client = samtest.Client(self.ep)


# ---- bad input ------------------------------------------------------------------------------

def test_bad_input_is_refused_with_a_problem_and_nothing_stored():
    with Gateway("gw-bad") as g:
        good = {"specversion": "1.0", "id": "bad-1", "source": "fmov", "type": AGENCY,
                "data_base64": base64.b64encode(agency("bad")).decode()}
        ce_json = "application/cloudevents+json"
        nob64 = {k: v for k, v in good.items() if k != "data_base64"}
        cases = [
            # (body, content type, extra headers, status, problem type, pointer or None)
            (b"{not json", ce_json, {}, 400, "malformed-json", "/"),
            (b"[1,2]", ce_json, {}, 400, "invalid-event", "/"),
            (good, None, {}, 415, "unsupported-media-type", None),
            (good, "text/plain", {}, 415, "unsupported-media-type", None),
            (dict(good, type="no.samordna.registry.nothing.happened"), ce_json, {}, 400,
             "unknown-event-type", "/type"),
            ({k: v for k, v in good.items() if k != "id"}, ce_json, {}, 400, "invalid-event",
             "/id"),
            (dict(good, specversion="0.3"), ce_json, {}, 400, "invalid-event", "/specversion"),
            (dict(good, **{"Bad_Name": "x"}), ce_json, {}, 400, "invalid-event", "/Bad_Name"),
            (dict(good, ext={"nested": 1}), ce_json, {}, 400, "invalid-event", "/ext"),
            (dict(good, time="30.11.2019"), ce_json, {}, 400, "invalid-event", "/time"),
            (dict(good, data_base64="###"), ce_json, {}, 400, "invalid-event", "/data_base64"),
            (dict(good, data={"id": "x"}), ce_json, {}, 400, "invalid-event", "/data_base64"),
            (dict(nob64, data={"id": "x", "nmae": "y"}), ce_json, {}, 400, "invalid-data",
             "/data"),
            (dict(nob64, data={"id": "x", "kind": "AGENCY_KIND_NONE"}), ce_json, {}, 400,
             "invalid-data", "/data/kind"),
            (dict(nob64, data={"id": "x", "formerNames": ["a", 5]}), ce_json, {}, 400,
             "invalid-data", "/data/formerNames/1"),
            (dict(nob64, data={"id": "x"}, datacontenttype="application/protobuf"), ce_json, {},
             415, "unsupported-media-type", "/data"),
            (b'{"id": "x", "name": 5}', "application/json",
             {"ce-specversion": "1.0", "ce-id": "bad-5", "ce-source": "fmov", "ce-type": AGENCY},
             400, "invalid-data", "/name"),
            (b'{"id": "x",', "application/json",
             {"ce-specversion": "1.0", "ce-id": "bad-6", "ce-source": "fmov", "ce-type": AGENCY},
             400, "invalid-data", "/"),
            (dict(good, data_base64=base64.b64encode(b"\xff\xff\xff").decode()), ce_json, {},
             400, "invalid-event", None),  # the registry's own refusal: not an Agency
            (dict(good, id="bad\u0001id"), ce_json, {}, 400, "invalid-event", "/id"),
            ({"events": []}, "application/cloudevents-batch+json", {}, 400, "invalid-event", "/"),
            (agency("bad"), "application/protobuf",
             {"ce-specversion": "1.0", "ce-id": "bad-2", "ce-source": "fmov"}, 400,
             "invalid-event", "ce-type"),
            (agency("bad"), "application/xml",
             {"ce-specversion": "1.0", "ce-id": "bad-3", "ce-source": "fmov", "ce-type": AGENCY},
             415, "unsupported-media-type", "Content-Type"),
            (agency("bad"), "application/protobuf",
             {"ce-specversion": "1.0", "ce-id": "bad-4", "ce-source": "fmov", "ce-type": AGENCY,
              "ce-datacontenttype": "application/protobuf"}, 400, "invalid-event",
             "ce-datacontenttype"),
            (agency("bad"), "application/protobuf",
             {"ce-specversion": "1.0", "ce-id": "bad%zz", "ce-source": "fmov", "ce-type": AGENCY},
             400, "invalid-event", "ce-id"),
            (agency("bad"), "application/protobuf",
             {"ce-specversion": "1.0", "ce-id": "bad%00cut", "ce-source": "fmov",
              "ce-type": AGENCY}, 400, "invalid-event", "ce-id"),
            (agency("bad"), "application/protobuf",
             {"ce-specversion": "1.0", "ce-id": "bad-7", "ce-source": "fmov", "ce-type": AGENCY,
              "ce-subject": "two%0Alines"}, 400, "invalid-event", "ce-subject"),
        ]
        for body, ctype, extra, code, ptype, pointer in cases:
            s, h, b = g.post(body, ctype, extra)
            p = problem(s, h, b, code, ptype)
            if pointer:
                assert [e["pointer"] for e in p["errors"]] == [pointer], (body, p)
        # a binary-mode event with its id percent-encoded as the binding allows is fine
        s, h, b = g.post(agency("pct"), "application/protobuf",
                         {"ce-specversion": "1.0", "ce-id": "pct%2D1", "ce-source": "fmov",
                          "ce-type": AGENCY})
        assert s == 201, b
        assert g.stored(1).id == "pct-1"
        assert g.head() == 1, "nothing but the one good event is stored"
        log = g.gw.logtext()
        assert log.count("gateway.refused") >= len(cases), log
        assert "problem=malformed-json" in log and "problem=unsupported-media-type" in log


def test_routes_and_methods():
    with Gateway("gw-routes") as g:
        s, h, b = g.request("GET", "/v1/events")
        p = problem(s, h, b, 405, "method-not-allowed")
        assert h["allow"] == "POST", h
        # an exact route wins over a prefix: /v1/events is the events route's, never the
        # reads' /v1/ prefix; a known path with another method is 405 naming the methods
        for method, path, allow in (("POST", "/v1/pilots", "GET, HEAD"),
                                    ("DELETE", "/v1/healthz", "GET, HEAD"),
                                    ("PUT", "/v1/events", "POST"),
                                    ("POST", "/", "GET, HEAD"),
                                    ("POST", "/briefing/briefing-2019-12-01", "GET, HEAD")):
            s, h, b = g.request(method, path)
            p = problem(s, h, b, 405, "method-not-allowed")
            assert h["allow"] == allow, (method, path, h)
            assert allow in p["detail"], p
        s, h, b = g.request("POST", "/nothing")  # no route has the path: 404, not 405
        problem(s, h, b, 404, "not-found")
        assert g.gw.logtext().count("method-not-allowed") >= 6, g.gw.logtext()
        s, h, b = g.request("GET", "/nothing/here")
        problem(s, h, b, 404, "not-found")
        s, h, b = g.request("HEAD", "/v1/healthz")
        assert s == 200


def test_body_over_the_limit_is_refused_before_it_is_read():
    with Gateway("gw-limit", "--max-body-bytes", "4096") as g:
        # announced: refused when the headers are in, the 10 MB never sent
        with socket.create_connection(("127.0.0.1", g.port), timeout=10 * samtest.SLOW) as s:
            s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/cloudevents+json\r\n"
                      b"Content-Length: 10000000\r\n\r\n" + b"[" * 100)
            answer = _read_answer(s)
        assert answer.startswith(b"HTTP/1.1 413"), answer
        assert b"application/problem+json" in answer and b"--max-body-bytes" in answer, answer
        # chunked, growing past the limit: 413 too, nothing stored
        body = json.dumps([{"specversion": "1.0", "id": f"big-{i}", "source": "fmov",
                            "type": AGENCY} for i in range(200)]).encode()
        assert len(body) > 4096

        def chunks():
            for i in range(0, len(body), 1000):
                yield body[i:i + 1000]
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", g.port, timeout=10 * samtest.SLOW)
        conn.request("POST", "/v1/events", body=chunks(),
                     headers={"Content-Type": "application/cloudevents-batch+json"},
                     encode_chunked=True)
        r = conn.getresponse()
        problem(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read(), 413, "too-large")
        conn.close()
        assert g.head() == 0


def _read_answer(s, limit=65536):
    data = b""
    while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + \
            int(re.search(rb"Content-Length: (\d+)", data, re.I).group(1)
                if re.search(rb"Content-Length: (\d+)", data, re.I) else 0):
        try:
            got = s.recv(limit)
        except ConnectionResetError:
            break
        if not got:
            break
        data += got
    return data


def test_slow_clients_are_cut_off():
    with Gateway("gw-slow", "--idle-timeout-s", "1", "--header-timeout-ms", "300",
                 "--body-timeout-ms", "300") as g:
        # headers that stall: the connection is closed by the idle timeout
        t0 = time.time()
        with socket.create_connection(("127.0.0.1", g.port), timeout=20 * samtest.SLOW) as s:
            s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n")
            assert s.recv(100) == b"", "a silent client is dropped"
        assert time.time() - t0 < 10 * samtest.SLOW
        # headers that take too long, each piece within the idle timeout: 408
        with socket.create_connection(("127.0.0.1", g.port), timeout=20 * samtest.SLOW) as s:
            s.sendall(b"POST /v1/events HTTP/1.1\r\n")
            time.sleep(0.6)
            s.sendall(b"Host: x\r\nContent-Type: application/cloudevents+json\r\n"
                      b"Content-Length: 2\r\n\r\n{}")
            answer = _read_answer(s)
        assert answer.startswith(b"HTTP/1.1 408") and b"--header-timeout-ms" in answer, answer
        # a body that takes too long: 408
        with socket.create_connection(("127.0.0.1", g.port), timeout=20 * samtest.SLOW) as s:
            ev = json.dumps({"specversion": "1.0", "id": "slow-1", "source": "fmov",
                             "type": AGENCY}).encode()
            s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/cloudevents+json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(ev) + ev[:10])
            time.sleep(0.6)
            s.sendall(ev[10:])
            answer = _read_answer(s)
        assert answer.startswith(b"HTTP/1.1 408") and b"--body-timeout-ms" in answer, answer
        assert g.head() == 0
        assert "gateway.dropped" in g.gw.logtext() and "reason=idle-timeout" in g.gw.logtext()


def test_more_connections_than_the_limit_get_503():
    with Gateway("gw-conns", "--max-connections", "2") as g:
        idle = [socket.create_connection(("127.0.0.1", g.port)) for _ in range(2)]
        try:
            time.sleep(0.2)
            s, h, b = g.post(b"{}", "application/cloudevents+json")
            p = problem(s, h, b, 503, "service-unavailable")
            assert h["retry-after"] == "1" and "--max-connections" in p["detail"], (h, p)
        finally:
            for c in idle:
                c.close()
        samtest.wait_for(lambda: g.get("/v1/healthz")[0] == 200, 5, "a free connection again")


def test_a_service_or_broker_down_is_503_never_a_hang():
    with Gateway("gw-down", "--request-timeout-ms", "1000",
                 broker_args=("--request-timeout-ms", "300")) as g:
        ev = {"specversion": "1.0", "id": "down-1", "source": "fmov", "type": AGENCY,
              "data_base64": base64.b64encode(agency("down")).decode()}
        g.services[0].stop()  # the registry is gone: the broker answers 503 after its wait
        t0 = time.time()
        s, h, b = g.post(ev, "application/cloudevents+json")
        problem(s, h, b, 503, "service-unavailable")
        assert h["retry-after"] == "1", h
        g.broker.stop()  # the broker is gone too: the gateway's own timeout or a failed send
        s, h, b = g.post(dict(ev, id="down-2"), "application/cloudevents+json")
        problem(s, h, b, 503, "service-unavailable")
        assert time.time() - t0 < 10 * samtest.SLOW, "answered within the timeouts"
        # /v1/healthz tells the registry's table is stale only after the refresh; still serving
        assert g.get("/v1/healthz")[0] in (200, 503)
        assert "gateway.refused" in g.gw.logtext()
        # the gateway still drains and exits cleanly with its broker gone
        assert g.gw.stop() == 0


def test_no_broker_is_503_at_once():
    """With every broker gone the gateway answers 503 at once (its client fails fast, also on
    an --insecure loopback run), not after its request timeout."""
    with Gateway("gw-nobroker", "--request-timeout-ms", "30000") as g:
        g.broker.kill9()
        ev = {"specversion": "1.0", "id": "nobroker-1", "source": "fmov", "type": AGENCY,
              "data_base64": base64.b64encode(agency("nobroker")).decode()}
        time.sleep(0.5)  # the gateway's client sees the connection go
        t0 = time.time()
        s, h, b = g.post(ev, "application/cloudevents+json")
        problem(s, h, b, 503, "service-unavailable")
        took = time.time() - t0
        assert took < 15, f"answered after {took:.1f} s: the request timeout, not at once"


def test_readme_curl_examples():
    """The README's "Publishing over HTTP" examples, run as they are written (against this
    gateway's port instead of 8080)."""
    if not shutil.which("curl"):
        raise samtest.Skip("curl is not installed")
    text = open(os.path.join(samtest.SRC, "README.md"), encoding="utf-8").read()
    section = text.split("## Publishing over HTTP", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) >= 3, "binary, structured and batch examples"
    with Gateway("gw-readme") as g:
        work = tempfile.mkdtemp(dir=g.data)
        outputs = []
        for block in blocks:
            script = block.replace("http://127.0.0.1:8080", g.url)
            p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=work,
                               capture_output=True, text=True, timeout=60 * samtest.SLOW)
            assert p.returncode == 0, (block, p.stdout, p.stderr)
            outputs.append(p.stdout)
        joined = "\n".join(outputs)
        assert '"seq":' in joined, joined
        assert '"duplicate":false' in joined, joined
        assert g.head() >= 3, joined


def test_metrics_and_readiness():
    mport = samtest.free_port()
    with Gateway("gw-metrics", "--metrics", f"127.0.0.1:{mport}") as g:
        g.post(b"{bad", "application/cloudevents+json")
        s, h, b = g.post({"specversion": "1.0", "id": "m-1", "source": "fmov", "type": AGENCY,
                          "data": {"id": "m-agency", "name": "M", "kind": 2}},
                         "application/cloudevents+json")
        assert s == 201, b
        import urllib.request
        text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10).read().decode()
        assert 'samordna_gateway_requests_total{method="POST",route="/v1/events",code="201"} 1' \
            in text, text
        assert 'code="400"} 1' in text, text
        assert 'samordna_gateway_calls_total{service="registry",code="200"}' in text, text
        ready = urllib.request.urlopen(f"http://127.0.0.1:{mport}/readyz", timeout=10)
        assert ready.status == 200 and b"services ok" in ready.read()


def test_sigterm_drains():
    with Gateway("gw-term") as g:
        assert g.gw.stop() == 0
        log = g.gw.logtext()
        assert "gateway.draining" in log and "gateway.drained" in log, log


def test_help_and_bad_options():
    p = subprocess.run([os.path.join(samtest.BIN, "samordna-gateway"), "--help"],
                       capture_output=True, text=True)
    assert p.returncode == 0 and "--max-body-bytes" in p.stdout and "--listen" in p.stdout
    for args, words in [(["--insecure", "--listen", "0.0.0.0:0"], "loopback"),
                        (["--listen", "127.0.0.1:0"], "--cert"),
                        (["--insecure", "--listen", "nowhere"], "HOST:PORT")]:
        p = subprocess.run([os.path.join(samtest.BIN, "samordna-gateway"), *args],
                           capture_output=True, text=True, timeout=10)
        assert p.returncode == 2 and words in p.stderr, (args, p.stderr)


if __name__ == "__main__":
    samtest.main()
