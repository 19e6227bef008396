"""The operator's HTTP port of every process, read by a real Prometheus.

Each process runs with --metrics 127.0.0.1:PORT. The test reads /metrics, /healthz and
/readyz itself, checks every endpoint's exposition with `promtool check metrics`, then starts
Debian's Prometheus with a scrape configuration of the suite and asks it, over its HTTP API,
for what an operator would chart: every target up, requests per service and method, queue
depth and workers per service at the broker, the outbox head, the followers' lag. Skipped
(never passed) where prometheus or promtool is not installed.
"""
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import samtest

SERVICES = ["registry", "status", "grants", "notify"]


def get(port, path):
    """(status, body) of GET http://127.0.0.1:PORT/PATH."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def sample(text, name, **labels):
    """The value of the series `name` with exactly these labels in an exposition, or None."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    head = f"{name}{{{want}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(head):
            return float(line[len(head):])
    return None


def promtool_check(text):
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def need_prometheus():
    for tool in ("prometheus", "promtool"):
        if not shutil.which(tool):
            raise samtest.Skip(f"{tool} is not installed (Debian package prometheus)")


def test_broker_port():
    need_prometheus()
    mport = samtest.free_port()
    broker, ep = samtest.broker("--metrics", f"127.0.0.1:{mport}")
    try:
        samtest.wait_for(lambda: get(mport, "/readyz")[0] == 200, 10, "broker ready")
        status, body = get(mport, "/healthz")
        assert status == 200 and body == "ok\n", (status, body)
        status, body = get(mport, "/nosuch")
        assert status == 404, status
        w = samtest.Worker(ep, "echo")
        c = samtest.Client(ep)
        for _ in range(5):
            c.send("echo", "x")
            client, _ = w.recv_request()
            w.reply(client, samtest.envelope_pb2.Reply(id=1).SerializeToString())
            c.recv()

        def counted():
            text = get(mport, "/metrics")[1]
            return (sample(text, "samordna_broker_requests_total", service="echo") == 5
                    and sample(text, "samordna_broker_replies_total", service="echo") == 5
                    and sample(text, "samordna_broker_workers", service="echo") == 1)
        samtest.wait_for(counted, 10, "the broker's counters of five echo requests")
        promtool_check(get(mport, "/metrics")[1])
        prom = Prometheus({"broker": [mport]})
        try:
            samtest.wait_for(lambda: prom.query('up{job="broker"} == 1'), 60,
                             "Prometheus scraping the broker")
            samtest.wait_for(
                lambda: prom.query('samordna_broker_requests_total{service="echo"} == 5'), 60,
                "the echo requests in Prometheus")
        finally:
            prom.stop()
        c.close()
        w.close()
    finally:
        broker.stop()


class Prometheus:
    """Debian's Prometheus scraping `targets` ({job: [port, ...]}) every second, on loopback,
    its store in the test's scratch space; query() asks its HTTP API."""

    def __init__(self, targets):
        folder = samtest.scratch(f"prometheus-{os.getpid()}")
        self.port = samtest.free_port()
        jobs = "".join(
            f"  - job_name: {job}\n    static_configs:\n      - targets: ["
            + ", ".join(f"'127.0.0.1:{p}'" for p in ports) + "]\n"
            for job, ports in targets.items())
        config = os.path.join(folder, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    f"scrape_configs:\n{jobs}")
        r = subprocess.run(["promtool", "check", "config", config], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        self.log = open(os.path.join(folder, "prometheus.log"), "ab")
        self.p = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={folder}/data",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=self.log)
        samtest.wait_for(lambda: self._up(), 60, "Prometheus ready")

    def _up(self):
        try:
            return get(self.port, "/-/ready")[0] == 200
        except OSError:
            return False

    def query(self, expr):
        """The result vector of an instant query: [(labels, value), ...]."""
        url = "/api/v1/query?query=" + urllib.request.quote(expr)
        status, body = get(self.port, url)
        assert status == 200, (status, body)
        data = json.loads(body)
        assert data["status"] == "success", data
        return [(r["metric"], float(r["value"][1])) for r in data["data"]["result"]]

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(30)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.log.close()


def test_suite_scraped_by_prometheus():
    """The broker and the four services with --metrics, the Østfold fixture imported: each
    endpoint passes promtool, counts the fixture's requests, shows its outbox head and is
    ready; Prometheus scrapes all five and answers queries across them."""
    need_prometheus()
    d = samtest.scratch("metrics-suite")
    ports = {"broker": samtest.free_port()}
    broker, ep = samtest.broker("--metrics", f"127.0.0.1:{ports['broker']}")
    procs = []
    try:
        for svc in SERVICES:
            ports[svc] = samtest.free_port()
            procs.append(samtest.service(svc, ep, d, "--metrics", f"127.0.0.1:{ports[svc]}"))
        fixture = os.path.join(samtest.SRC, "deploy", "examples", "ostfold-2019.json")
        r = subprocess.run([os.path.join(samtest.BIN, "samctl"), "--broker", ep, "--insecure",
                            "import", fixture], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        # the fixture holds no notify events: a subscription is one
        r = subprocess.run([os.path.join(samtest.BIN, "samctl"), "--broker", ep, "--insecure",
                            "notify", "subscribe", "metrics-inbox", "--inbox", "--type",
                            "no.samordna.grants.*"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        for svc in SERVICES:
            port = ports[svc]
            samtest.wait_for(lambda: get(port, "/readyz")[0] == 200, 10, f"{svc} ready")
            status, body = get(port, "/readyz")
            assert "store ok" in body and "broker ok" in body, body
            text = get(port, "/metrics")[1]
            promtool_check(text)
            types = _published_types(text, svc)
            assert types, f"{svc} counted no event published:\n{text}"
            assert sample(text, "samordna_requests_total", service=svc, method=types[0],
                          code="200") > 0, text
            assert (sample(text, "samordna_outbox_head", service=svc) or 0) > 0, text
            assert sample(text, "samordna_write_batch_events_count", service=svc) > 0, text
        # status and grants follow the registry: caught up once the import is in
        for svc in ("status", "grants"):
            port = ports[svc]
            samtest.wait_for(lambda: sample(get(port, "/metrics")[1], "samordna_follower_lag_events",
                                            service=svc, followed="registry") == 0, 30,
                             f"{svc} caught up with the registry")
            assert "follower.registry ok" in get(port, "/readyz")[1]
        prom = Prometheus({name: [port] for name, port in ports.items()})
        try:
            samtest.wait_for(lambda: len(prom.query("up == 1")) == 5, 60,
                             "Prometheus scraping all five")
            samtest.wait_for(lambda: prom.query('sum(samordna_outbox_head) > 0'), 60,
                             "the outbox heads in Prometheus")
            heads = {r[0]["service"] for r in prom.query("samordna_outbox_head > 0")}
            assert heads == set(SERVICES), heads
            queued = prom.query("samordna_broker_workers")
            assert {r[0]["service"] for r in queued} >= set(SERVICES), queued
        finally:
            prom.stop()
    finally:
        for p in reversed(procs):
            assert p.stop() == 0
        broker.stop()


def _published_types(text, svc):
    """The method labels of a service's answered requests: its event types among them."""
    out = []
    for line in text.splitlines():
        if line.startswith("samordna_requests_total{") and f'service="{svc}"' in line:
            method = line.split('method="', 1)[1].split('"', 1)[0]
            if method.startswith("no.samordna."):
                out.append(method)
    return out


def test_notify_counts_attempts_per_subscription():
    """A webhook whose endpoint refuses every request: notify's port counts the failed
    attempts of that subscription by outcome."""
    from notify_receivers import WebhookReceiver
    d = samtest.scratch("metrics-notify")
    port = samtest.free_port()
    broker, ep = samtest.broker()
    recv = WebhookReceiver()  # no secret: every POST is answered 401
    n = samtest.service("notify", ep, d, "--follow", "", "--retry-schedule", "100ms,100ms,1h",
                        "--metrics", f"127.0.0.1:{port}")
    try:
        r = subprocess.run([os.path.join(samtest.BIN, "samctl"), "--broker", ep, "--insecure",
                            "notify", "subscribe", "refused-hook", "--webhook", recv.url],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr

        def failed():
            text = get(port, "/metrics")[1]
            return (sample(text, "samordna_notify_attempts_total", subscription="refused-hook",
                           outcome="handshake-failed") or 0) >= 2
        samtest.wait_for(failed, 30, "two failed handshakes counted")
        promtool_check(get(port, "/metrics")[1])
    finally:
        assert n.stop() == 0
        recv.close()
        broker.stop()


def test_samctl_status():
    """samctl status over two brokers, one of them gone: the live one's counters, every
    service's instance, version and outbox head, status and grants following the registry
    with no lag, notify's dead letters; the gone broker named, and exit 1."""
    d = samtest.scratch("metrics-status")
    broker, ep = samtest.broker()
    gone = f"tcp://127.0.0.1:{samtest.free_port()}"
    procs = [samtest.service(svc, ep, d) for svc in SERVICES]
    samctl = [os.path.join(samtest.BIN, "samctl"), "--broker", ep, "--insecure"]
    try:
        fixture = os.path.join(samtest.SRC, "deploy", "examples", "ostfold-2019.json")
        r = subprocess.run(samctl + ["import", fixture], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr

        def status(*extra):
            r = subprocess.run(samctl + list(extra) + ["status", "--json"], capture_output=True,
                               text=True, timeout=60)
            return r.returncode, json.loads(r.stdout)

        def caught_up():
            rc, j = status()
            follows = [f for s in j["services"] for f in s.get("follows", [])]
            return rc == 0 and follows and all(f["lag"] == 0 for f in follows)
        samtest.wait_for(caught_up, 30, "every follower caught up")
        rc, j = status()
        services = {s["service"]: s for s in j["services"]}
        assert set(services) == set(SERVICES), j
        for svc, s in services.items():
            assert s["instances"] == 1 and s["version"] and s["queued"] == 0, s
        assert services["registry"]["outbox_head"] >= 30, services["registry"]
        assert {f["service"] for f in services["status"]["follows"]} == {"registry"}, services
        assert services["notify"]["dead_letters"] == 0, services["notify"]
        assert j["brokers"][0]["requests"] > 0, j["brokers"]
        rc, j = status("--broker", gone, "--timeout-ms", "500")
        assert rc == 1, j
        assert [b for b in j["brokers"] if b["endpoint"] == gone and "error" in b], j["brokers"]
        r = subprocess.run(samctl + ["status"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "registry  1 instance" in r.stdout, r.stdout + r.stderr
    finally:
        for p in reversed(procs):
            assert p.stop() == 0
        broker.stop()


def test_not_ready_without_a_broker():
    """A service whose broker does not answer is alive but not ready, and says why."""
    d = samtest.scratch("metrics-unready")
    port = samtest.free_port()
    p = samtest.Proc("registry-unready",
                     ["samordna-registry", "--insecure", "--data-dir", d,
                      "--broker", f"tcp://127.0.0.1:{samtest.free_port()}",
                      "--metrics", f"127.0.0.1:{port}"])
    try:
        samtest.wait_for(lambda: _answers(port), 10, "the registry's metrics port")
        assert get(port, "/healthz")[0] == 200
        # the port listens before the store is open: its check joins a moment later
        samtest.wait_for(lambda: "store ok" in get(port, "/readyz")[1], 10 * samtest.SLOW,
                         "the store's readiness check")
        status, body = get(port, "/readyz")
        assert status == 503 and "broker failing" in body and "store ok" in body, (status, body)
    finally:
        assert p.stop() == 0


def _answers(port):
    try:
        return get(port, "/healthz")[0] == 200
    except OSError:
        return False


def test_example_alert_rules_are_valid():
    need_prometheus()
    rules = os.path.join(samtest.SRC, "deploy", "prometheus", "alerts.yml")
    r = subprocess.run(["promtool", "check", "rules", rules], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # every metric an alert names is one the processes serve
    with open(rules) as f:
        text = f.read()
    for name in set(re.findall(r"\b(samordna_[a-z_]+)", text)):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert base in SERVED, f"alerts.yml names {name}, which no process serves"


SERVED = {"samordna_brokers_connected", "samordna_broker_workers", "samordna_broker_queue_depth",
          "samordna_broker_expired_total", "samordna_follower_lag_events",
          "samordna_requests_total", "samordna_write_batch_seconds",
          "samordna_notify_attempts_total"}


def test_bad_metrics_endpoint_is_refused():
    d = samtest.scratch("metrics-bad")
    ep = f"tcp://127.0.0.1:{samtest.free_port()}"
    programs = {"samordna-broker": ["--bind", ep],
                "samordna-grants": ["--broker", ep, "--data-dir", d]}
    for bad in ("localhost:9100", "127.0.0.1", "127.0.0.1:70000"):
        for program, args in programs.items():
            r = subprocess.run([os.path.join(samtest.BIN, program), "--insecure", *args,
                                "--metrics", bad], capture_output=True, text=True, timeout=30)
            assert r.returncode == 2 and "HOST:PORT" in r.stderr, (program, bad, r.stderr)


if __name__ == "__main__":
    samtest.main()
