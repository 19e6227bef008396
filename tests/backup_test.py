"""Backup and restore as an operator does them: samctl backup of a live suite while a client
keeps writing, samctl restore into a fresh data folder, and the suite started from it.

Every event acknowledged with a sequence number up to the manifest's outbox head is in the
restored store; the grants ledger verifies; a restore over a store in use is refused and
changes nothing; a second backup into the same folder is refused.
"""
import json
import os
import subprocess
import threading

import samtest
from samordna.v1 import events_pb2, registry_pb2

SERVICES = ["registry", "status", "grants", "notify"]
FIXTURE = os.path.join(samtest.SRC, "deploy", "examples", "ostfold-2019.json")


def samctl(ep, *args, timeout=300):
    return subprocess.run([os.path.join(samtest.BIN, "samctl"), "--broker", ep, "--insecure",
                           *args], capture_output=True, text=True, timeout=timeout)


def start(ep, data):
    return [samtest.service(svc, ep, data) for svc in SERVICES]


def outbox_ids(ep, service):
    """{event id: seq} of a service's whole outbox."""
    c = samtest.Client(ep)
    out, after = {}, 0
    try:
        while True:
            rep, read = c.call(service, "events.read",
                               events_pb2.ReadRequest(after_seq=after, max=1000),
                               events_pb2.ReadReply)
            assert rep.status.code == 200, rep.status
            if not read.events:
                return out
            for e in read.events:
                out[e.event.id] = e.seq
            after = read.events[-1].seq
    finally:
        c.close()


def test_backup_while_writing_then_restore():
    d = samtest.scratch("backup")
    live, fresh, copies = (os.path.join(d, x) for x in ("live", "fresh", "copies"))
    broker, ep = samtest.broker()
    procs = start(ep, live)
    acked = {}  # event id -> seq, for every event the registry acknowledged
    stop = threading.Event()

    def writer():
        c = samtest.Client(ep)
        i = 0
        while not stop.is_set():
            eid = f"backup-{i}"
            pr = samtest.publish_ok(c, "registry", samtest.publish_req(
                "no.samordna.registry.agency.registered",
                registry_pb2.Agency(id=f"etat-{i}", name=f"Etat {i}", kind=2), eid=eid))
            acked[eid] = pr.seq
            i += 1
        c.close()

    try:
        r = samctl(ep, "import", FIXTURE)
        assert r.returncode == 0, r.stdout + r.stderr
        t = threading.Thread(target=writer)
        t.start()
        samtest.wait_for(lambda: len(acked) > 200, 30, "the writer going")
        r = samctl(ep, "backup", copies)
        during = len(acked)
        samtest.wait_for(lambda: len(acked) > during + 100, 30, "writes after the backup")
        stop.set()
        t.join(30)
        assert r.returncode == 0, r.stdout + r.stderr
        with open(os.path.join(copies, "manifest.json")) as f:
            manifest = json.load(f)
        assert manifest["format"] == "samordna-backup/1", manifest
        heads = {s["service"]: int(s["outbox_head"]) for s in manifest["services"]}
        assert set(heads) == set(SERVICES), manifest
        assert heads["registry"] >= 77 and heads["grants"] > 0, heads
        assert any(seq > heads["registry"] for seq in acked.values()), \
            "the writer never wrote past the backup: the test proves nothing"
        # a second backup into the same folder, and a restore over live stores, are refused
        r = samctl(ep, "backup", copies)
        assert r.returncode != 0 and "holds a backup already" in r.stderr, r.stderr
        r = samctl(ep, "restore", copies, "--data-dir", live)
        assert r.returncode != 0 and "in use" in r.stderr, r.stderr
    finally:
        stop.set()
        for p in reversed(procs):
            assert p.stop() == 0
    r = samctl(ep, "restore", copies, "--data-dir", fresh)
    assert r.returncode == 0, r.stdout + r.stderr
    procs = start(ep, fresh)
    try:
        stored = outbox_ids(ep, "registry")
        missing = [eid for eid, seq in acked.items() if seq <= heads["registry"]
                   and eid not in stored]
        assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:3]}"
        assert max(stored.values()) >= heads["registry"]
        r = samctl(ep, "grants", "ledger", "verify")
        assert r.returncode == 0, r.stdout + r.stderr
        r = samctl(ep, "--json", "pilots")
        assert r.returncode == 0 and "halden" in r.stdout, r.stdout + r.stderr
    finally:
        for p in reversed(procs):
            assert p.stop() == 0
        broker.stop()


if __name__ == "__main__":
    samtest.main()
