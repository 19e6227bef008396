"""`samctl import` of the real Østfold fixture into a real broker and registry: the counts,
a rerun that changes nothing, wrong files refused with the JSON path of the problem and
nothing stored, references resolved against the registry, and kill -9 of the registry in
the middle of an import followed by a restart and a second import: complete, no duplicates.
"""
import copy
import json
import os
import re
import signal
import subprocess
import time

import samtest
from samordna.v1 import envelope_pb2, events_pb2

FIXTURE = os.path.join(samtest.SRC, "deploy", "examples", "ostfold-2019.json")
SAMCTL = os.path.join(samtest.BIN, "samctl")
# What the fixture holds for the registry: 8 agencies, 1 programme, 5 municipalities and the
# merged Moss, 5 invitations each sent and answered, 4 pilots, 1 report.
EXPECTED = {
    "no.samordna.registry.agency.registered": 8,
    "no.samordna.registry.programme.registered": 1,
    "no.samordna.registry.municipality.registered": 6,
    "no.samordna.registry.invitation.sent": 5,
    "no.samordna.registry.invitation.answered": 5,
    "no.samordna.registry.pilot.registered": 4,
    "no.samordna.registry.report.published": 1,
}
REGISTRY_TOTAL = sum(EXPECTED.values())
# And for the status service: 7 milestone kinds, 20 milestones reached, 14 meetings.
EXPECTED.update({
    "no.samordna.status.milestone_kind.defined": 7,
    "no.samordna.status.milestone.reached": 20,
    "no.samordna.status.meeting.logged": 14,
})
# And for grants: the scheme of project discretionary funds and its five awards.
EXPECTED.update({
    "no.samordna.grants.scheme.created": 1,
    "no.samordna.grants.award.granted": 5,
})
TOTAL = sum(EXPECTED.values())


def samctl(ep, *args, timeout=60):
    p = subprocess.run([SAMCTL, "--broker", ep] + list(args), capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def load_fixture():
    assert os.path.exists(FIXTURE), f"the fixture is missing: {FIXTURE}"
    with open(FIXTURE, encoding="utf-8") as f:
        return json.load(f)


def write(name, doc):
    path = os.path.join(samtest.scratch(name), "fixture.json")
    with open(path, "w", encoding="utf-8") as f:
        if isinstance(doc, str):
            f.write(doc)
        else:
            json.dump(doc, f, ensure_ascii=False, indent=1)
    return path


def last_seq(ep):
    c = samtest.Client(ep)
    try:
        _, pr = c.call("registry", "ping", b"", envelope_pb2.PingReply, timeout=30)
        return pr.last_seq
    finally:
        c.close()


def start(name):
    broker, ep = samtest.broker()
    data = samtest.scratch(name)
    reg = samtest.service("registry", ep, data)
    samtest.service("status", ep, data)  # the fixture's milestones and meetings go there
    samtest.service("grants", ep, data)  # and its schemes and awards here
    return broker, ep, data, reg


def count(ep, command):
    rc, out, err = samctl(ep, "--json", command)
    assert rc == 0, err
    doc = json.loads(out)  # every list: {"items": [...], "next": null when whole}
    assert sorted(doc) == ["items", "next"] and doc["next"] is None, out
    return len(doc["items"])


def test_import_the_pilot_then_rerun_changes_nothing():
    broker, ep, _, reg = start("imp-pilot")
    rc, out, err = samctl(ep, "--json", "import", FIXTURE)
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["new"] == TOTAL and summary["refused"] == 0 and summary["already"] == 0, out
    assert {t["type"]: t["new"] for t in summary["types"]} == EXPECTED, out
    assert f"{TOTAL}/{TOTAL} events acknowledged" in err, err
    assert last_seq(ep) == REGISTRY_TOTAL
    assert count(ep, "agencies") == 8
    assert count(ep, "municipalities") == 6
    assert count(ep, "pilots") == 4
    assert count(ep, "invitations") == 5
    assert count(ep, "programmes") == 1
    assert count(ep, "reports") == 1
    rc, out, err = samctl(ep, "pilot", "show", "halden")
    assert rc == 0 and "investment leader         fmov" in out, out + err
    rc, out, _ = samctl(ep, "--json", "municipalities", "show", "moss-rygge")
    m = json.loads(out)
    assert m["id"] == "moss" and m["resolved_from"] == "moss-rygge", m
    assert m["numbers"][0]["number"] == "3002"
    rc, out, _ = samctl(ep, "--json", "invitations", "--answer", "no")
    inv = json.loads(out)["items"]
    assert [i["municipality"] for i in inv] == ["moss-rygge"] and inv[0]["channel"] == "oral"
    rc, out, _ = samctl(ep, "agencies")
    assert rc == 0 and "Fylkesmannen i Oslo og Viken" in out and "(8)" in out, out

    # Again: every event is a duplicate, nothing changes.
    rc, out, err = samctl(ep, "--json", "import", FIXTURE)
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["new"] == 0 and summary["already"] == TOTAL, out
    assert last_seq(ep) == REGISTRY_TOTAL
    # A file that only refers to what the registry already holds is accepted.
    doc = {"format": "samordna-fixture/1",
           "pilots": [{"id": "halden-2", "municipality": "halden", "programme": "velferdspiloten",
                       "challenge": "Bolig", "investment_leader": "husbanken-ost"}]}
    rc, out, err = samctl(ep, "import", write("imp-pilot-ref", doc))
    assert rc == 0, err
    assert last_seq(ep) == REGISTRY_TOTAL + 1
    reg.stop()
    broker.stop()


def refused(ep, doc, name):
    before = last_seq(ep)
    rc, out, err = samctl(ep, "import", write(name, doc))
    assert rc != 0, out + err
    assert "nothing was sent" in err or "samctl import:" in err, err
    assert last_seq(ep) == before, "a refused file stores nothing"
    return err


def test_wrong_files_are_refused_with_the_json_path():
    broker, ep, _, reg = start("imp-wrong")
    good = load_fixture()

    # Each a copy of the good file with one change, refused naming the place in the file.
    changes = [
        (lambda d: d["pilots"][2].update(investment_leader="nobody"),
         "$.pilots[2].investment_leader: unknown agency 'nobody'"),
        (lambda d: d["agencies"][1].update(kind="spaceship"),
         "$.agencies[1].kind: 'spaceship' is not one of"),
        (lambda d: d["municipalities"][0]["numbers"][1].update({"from": "2020-13-01"}),
         "$.municipalities[0].numbers[1].from"),
        (lambda d: d["pilots"][0].update(investmnet_leader=d["pilots"][0].pop("investment_leader")),
         "$.pilots[0].investmnet_leader: unknown member"),
        (lambda d: d["invitations"][3].update(answer="maybe"), "$.invitations[3].answer"),
        (lambda d: d.update(format="something-else/2"), "$.format"),
        (lambda d: d["agencies"].append(dict(d["agencies"][0])),
         "$.agencies[8]: agency 'fmov' is already defined at $.agencies[0]"),
    ]
    for i, (change, expected) in enumerate(changes, 1):
        doc = copy.deepcopy(good)
        change(doc)
        err = refused(ep, doc, f"imp-w{i}")
        assert expected in err, (expected, err)

    text = json.dumps(good, ensure_ascii=False, indent=1)
    err = refused(ep, text[: len(text) // 2], "imp-w8")
    assert "fixture.json:" in err and "samctl import" in err, err

    assert last_seq(ep) == 0
    # The right file goes in after all that, whole.
    rc, out, err = samctl(ep, "import", FIXTURE)
    assert rc == 0, err
    assert last_seq(ep) == REGISTRY_TOTAL
    reg.stop()
    broker.stop()


def outbox(ep):
    """The registry's whole outbox as [(seq, type, event id)], read back with events.read."""
    c = samtest.Client(ep)
    try:
        got, after = [], 0
        while True:
            rep, rr = c.call("registry", "events.read",
                             events_pb2.ReadRequest(after_seq=after, max=1000),
                             events_pb2.ReadReply, timeout=30)
            assert rep.status.code == 200, rep.status
            got += [(e.seq, e.event.type, e.event.id) for e in rr.events]
            if not rr.events:
                return got
            after = rr.events[-1].seq
    finally:
        c.close()


def registry_types(summary):
    return {t["type"]: t for t in summary["types"] if t["service"] == "registry"}


def test_kill9_during_import_then_restart_and_import_again():
    """The registry is killed with SIGKILL while `samctl import` streams 4000 people (8000
    events) into it: the first import is cut off (not every event acknowledged), what it got
    acknowledged is in the outbox after the restart, and the second import sends exactly what
    is missing: what was stored stays at its seq, and the outbox ends with every event of the
    file once, each person by its own event id."""
    broker, ep, data, reg = start("imp-kill")
    doc = load_fixture()
    people = 4000
    doc["people"] = [{"id": f"p-{i:05d}", "name": f"Person {i}", "agency": "fmov",
                      "roles": [{"role": "member of the working group", "pilot": "halden"}]}
                     for i in range(people)]
    path = write("imp-kill-file", doc)
    total = TOTAL + 2 * people  # person.registered and role.assigned each
    registry_total = REGISTRY_TOTAL + 2 * people

    first = subprocess.Popen([SAMCTL, "--broker", ep, "--json", "--timeout-ms", "4000",
                              "import", path],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # samctl's progress lines say how far it got; a ping would queue behind the publishes.
    end = time.time() + 60 * samtest.SLOW
    said = []
    while True:
        assert time.time() < end, "the import did not get under way"
        line = first.stderr.readline()
        said.append(line)
        assert line, "samctl ended before the registry was killed: " + "".join(said)
        m = re.match(r"import: (\d+)/(\d+) events acknowledged", line)
        if m and 500 <= int(m.group(1)) < int(m.group(2)):
            said_acked = int(m.group(1))
            break
    reg.kill9()
    assert reg.p.returncode == -signal.SIGKILL, f"the registry exited {reg.p.returncode}"
    out, err = first.communicate(timeout=90 * samtest.SLOW)
    assert first.returncode != 0, "the first import finished although the registry was killed"
    cut = json.loads(out)
    acked_first = {t: r["new"] + r["already"] for t, r in registry_types(cut).items()}
    assert cut["new"] + cut["already"] >= said_acked, (cut, said_acked)
    assert cut["unanswered"] + cut["refused"] > 0, cut
    # Restart on the same store: what was acknowledged is there, and the rest comes in. The
    # broker may still hold publishes of the first import for the registry and deliver them
    # now; wait until the outbox head stops moving before reading it.
    reg = samtest.service("registry", ep, data)
    at_kill, stable_since = last_seq(ep), time.time()
    while time.time() - stable_since < 1.5:
        time.sleep(0.25)
        now = last_seq(ep)
        if now != at_kill:
            at_kill, stable_since = now, time.time()
    before = outbox(ep)
    assert [s for s, _, _ in before] == list(range(1, at_kill + 1)), "a gap in the outbox"
    assert 500 <= at_kill < registry_total, (at_kill, out, err)
    ids_before = [i for _, _, i in before]
    assert len(set(ids_before)) == len(ids_before), "an event stored twice"
    per_type = {}
    for _, t, _ in before:
        per_type[t] = per_type.get(t, 0) + 1
    for t, n in acked_first.items():  # every acknowledged event survived the kill
        assert per_type.get(t, 0) >= n, (t, per_type.get(t, 0), n)
    rc, out, err = samctl(ep, "--json", "--timeout-ms", "5000", "import", path, timeout=120)
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["new"] + summary["already"] == total and summary["refused"] == 0, out
    assert summary["new"] == total - at_kill, (summary, at_kill)
    # Exactly what was stored is a duplicate the second time, type by type.
    assert {t: r["already"] for t, r in registry_types(summary).items()} == \
        {t: per_type.get(t, 0) for t in registry_types(summary)}, (summary, per_type)
    after = outbox(ep)
    assert after[:at_kill] == before, "an event stored before the second import changed"
    assert len(after) == registry_total, "every event stored exactly once"
    ids = [i for _, _, i in after]
    assert len(set(ids)) == registry_total, "an event stored twice"
    person = "samordna-fixture/1:no.samordna.registry.person.registered:"
    assert {i[len(person):] for i in ids if i.startswith(person)} == \
        {f"p-{i:05d}" for i in range(people)}
    roles = [i for _, t, i in after if t == "no.samordna.registry.role.assigned"]
    assert len(roles) == len(set(roles)) == people, len(roles)
    assert count(ep, "people") == people
    rc, out, err = samctl(ep, "--json", "people", "show", "p-03999")
    assert rc == 0 and json.loads(out)["roles"][0]["pilot"] == "halden", out + err
    reg.stop()
    broker.stop()


if __name__ == "__main__":
    samtest.main()
