"""samordna as the programme's system of record (issue 12), against the real broker and the four
services with the Østfold fixture imported: an unknown id given to a query is an error naming
it, not an empty table; every reference an event makes is checked (a meeting's participants);
every field that is stored is shown (an award's decision date, an instrument's value); a joint
award counts once in the overview.
"""
import datetime
import json
import os
import re
import subprocess

import samtest
from samordna.v1 import envelope_pb2

SAMCTL = os.path.join(samtest.BIN, "samctl")
FIXTURE = os.path.join(samtest.SRC, "deploy", "examples", "ostfold-2019.json")
SERVICES = ("registry", "status", "grants", "notify")


def samctl(ep, *args):
    p = subprocess.run([SAMCTL, "--broker", ep, *args], capture_output=True, text=True,
                       timeout=120)
    return p.returncode, p.stdout, p.stderr


class World:
    """A broker, the four services on one data folder, the Østfold fixture imported."""

    def __init__(self, name):
        self.broker, self.ep = samtest.broker()
        self.data = samtest.scratch(name)
        self.procs = {s: samtest.service(s, self.ep, self.data) for s in SERVICES}
        rc, out, err = samctl(self.ep, "import", FIXTURE)
        assert rc == 0, out + err
        self.c = samtest.Client(self.ep)

    def run(self, *args):
        return samctl(self.ep, *args)

    def ok(self, *args):
        rc, out, err = samctl(self.ep, *args)
        assert rc == 0, (args, out, err)
        return out

    def json(self, *args):
        return json.loads(self.ok("--json", *args))

    def head(self, service):
        rep, pr = self.c.call(service, "ping", b"", envelope_pb2.PingReply, timeout=30)
        assert rep.status.code == 200, rep.status
        return pr.last_seq

    def heads(self):
        return {s: self.head(s) for s in SERVICES}


def test_an_unknown_id_given_to_a_query_is_an_error_naming_it():
    w = World("record-unknown")
    # (the command line with the unknown id, the field the refusal names)
    for args, field in [
            (["grants", "overview", "nosuch"], "recipient"),
            (["grants", "instruments", "nosuch"], "municipality"),
            (["grants", "awards", "--recipient", "nosuch"], "recipient"),
            (["grants", "awards", "--scheme", "nosuch"], "scheme"),
            (["grants", "awards", "--funder", "nosuch"], "funder"),
            (["grants", "schemes", "--owner", "nosuch"], "owner"),
            (["grants", "award", "nosuch"], "id"),
            (["grants", "scheme", "nosuch"], "id"),
            (["meetings", "--pilot", "nosuch"], "pilot"),
            (["meetings", "--municipality", "nosuch"], "municipality"),
            (["steps", "nosuch"], "pilot"),
            (["barriers", "--pilot", "nosuch"], "pilot"),
            (["barriers", "--municipality", "nosuch"], "municipality"),
            (["barriers", "--raised-by", "nosuch"], "raised_by"),
            (["board", "--pilot", "nosuch"], "pilot"),
            (["milestone", "history", "nosuch"], "pilot"),
            (["barrier", "show", "nosuch"], "id"),
            (["pilots", "--agency", "nosuch"], "agency"),
            (["pilots", "--municipality", "nosuch"], "municipality"),
            (["pilots", "--programme", "nosuch"], "programme"),
            (["people", "--agency", "nosuch"], "agency"),
            (["reports", "--agency", "nosuch"], "agency"),
            (["invitations", "--programme", "nosuch"], "programme"),
            (["invitations", "--municipality", "nosuch"], "municipality"),
            (["pilots", "show", "nosuch"], "id"),
            (["agencies", "show", "nosuch"], "id"),
    ]:
        for fmt in ([], ["--json"]):
            rc, out, err = w.run(*fmt, *args)
            assert rc == 1 and out == "", (args, rc, out, err)
            assert " 404 " in err and f"{field}: unknown " in err and "'nosuch'" in err, (args, err)
    # a malformed one is a 400 naming the field, shown escaped
    rc, out, err = w.run("barriers", "--raised-by", "Ikke En Id")
    assert rc == 1 and " 400 " in err and "raised_by" in err, err

    # the same queries with known ids answer, also when there is nothing to list
    for args, expect in [
            (["grants", "overview", "halden"], "ps19-halden"),
            (["grants", "awards", "--funder", "fmov"], "ps19-halden"),
            (["grants", "instruments", "halden"], "no instruments or needs"),
            (["grants", "awards", "--funder", "politi-ost"], "no awards"),
            (["grants", "schemes", "--owner", "hiof"], "no schemes"),
            (["meetings", "--pilot", "halden"], "anchoring"),
            (["steps", "halden"], "no steps"),
            (["barriers", "--raised-by", "hiof"], "no barriers"),
            (["pilots", "--agency", "politi-ost"], "no pilots"),
            (["people", "--agency", "fmov"], "no people"),
    ]:
        out = w.ok(*args)
        assert expect in out, (args, out)


def test_a_meetings_participants_are_checked():
    w = World("record-participants")
    heads = w.heads()
    rc, out, err = w.run("meeting", "log", "m-unknown", "--date", "2019-03-01", "--kind",
                         "working", "--pilot", "halden", "--participant", "fmov",
                         "--participant", "nav-ost-vikne")
    assert rc == 1 and " 422 " in err, err
    assert "participants: unknown agency 'nav-ost-vikne'" in err, err
    assert w.heads() == heads, "a refused meeting stored something"
    # agencies by id (checked) and anyone else by name, as written
    w.ok("meeting", "log", "m-known", "--date", "2019-03-01", "--kind", "working", "--pilot",
         "halden", "--participant", "fmov", "--participant", "Kari Nordmann, NAV Halden")
    m = next(i for i in w.json("meetings", "--pilot", "halden")["items"] if i["id"] == "m-known")
    assert m["participants"] == ["fmov", "Kari Nordmann, NAV Halden"], m


def test_every_stored_field_is_shown():
    w = World("record-fields")
    w.ok("grants", "add-scheme", "rf-2019", "--name", "Felles", "--year", "2019", "--frame",
         "1 000 000", "--note", "Frame from the allocation letter")
    w.ok("grants", "add-award", "rf-halden", "--scheme", "rf-2019", "--recipient", "halden",
         "--amount", "300 000", "--purpose", "Kartlegging", "--pilot", "halden",
         "--decided", "2019-04-02", "--report-due", "2020-02-01",
         "--funder", "fmov=200000", "--funder", "nav-ost-viken=100000")
    w.ok("grants", "disburse", "rf-halden", "d1", "--amount", "150 000", "--date", "2019-05-01",
         "--note", "first half")
    w.ok("--source", "nav-ost-viken", "grants", "add-instrument", "rf-veileder", "--municipality",
         "halden", "--year", "2019", "--kind", "position", "--title", "Veileder",
         "--description", "En halv stilling i ett år", "--value", "350 000")
    w.ok("--source", "halden", "grants", "add-need", "rf-bolig", "--year", "2019", "--title",
         "Boliger", "--description", "Flere kommunale boliger")

    text = w.ok("grants", "award", "rf-halden")
    assert "decided 2019-04-02" in text and "pilot halden" in text, text
    assert "report due 2020-02-01" in text and "first half" in text, text
    award = w.json("grants", "award", "rf-halden")
    assert award["decided"] == "2019-04-02" and award["pilot"] == "halden", award
    pay = award["payments"][0]
    assert pay["note"] == "first half", pay
    assert {s["agency"]: s["amount_ore"] for s in pay["split"]} == {
        "fmov": 10_000_000, "nav-ost-viken": 5_000_000}, pay
    assert "Frame from the allocation letter" in w.ok("grants", "scheme", "rf-2019")
    assert w.json("grants", "scheme", "rf-2019")["note"] == "Frame from the allocation letter"

    text = w.ok("grants", "instruments", "halden")
    assert "350 000" in text and "En halv stilling i ett år" in text, text
    assert "Flere kommunale boliger" in text, text
    items = {i["id"]: i for i in w.json("grants", "instruments", "halden")["items"]}
    assert items["rf-veileder"]["value_ore"] == 35_000_000, items
    assert items["rf-veileder"]["description"] == "En halv stilling i ett år", items
    assert items["rf-bolig"]["description"] == "Flere kommunale boliger", items

    # the overview: every instrument's value, the municipality's needs
    text = w.ok("grants", "overview", "halden")
    assert "rf-veileder" in text and "350 000" in text and "Boliger" in text, text
    o = w.json("grants", "overview", "halden")
    assert [i["value_ore"] for i in o["instruments"]] == [35_000_000], o
    assert [n["id"] for n in o["needs"]] == ["rf-bolig"], o


def test_a_joint_award_counts_once_per_award():
    w = World("record-joint")
    w.ok("grants", "add-scheme", "rj-2019", "--name", "Felles", "--year", "2019")

    def counts():
        """awards per group of halden's overview by pilot, and of the year's totals"""
        by_pilot = {g["key"]: g["awards"]
                    for g in w.json("grants", "overview", "halden", "--by", "pilot")["groups"]}
        year = {g["key"]: g["awards"]
                for g in w.json("grants", "overview", "--year", "2019")["groups"]}
        return by_pilot.get("halden", 0), year.get("halden", 0)

    before = counts()
    w.ok("grants", "add-award", "rj-halden", "--scheme", "rj-2019", "--recipient", "halden",
         "--amount", "300 000", "--pilot", "halden", "--purpose", "Felles",
         "--funder", "fmov=200000", "--funder", "nav-ost-viken=100000")
    assert counts() == (before[0] + 1, before[1] + 1), (before, counts())
    o = w.json("grants", "overview", "halden", "--by", "scheme")
    g = next(g for g in o["groups"] if g["key"] == "rj-2019")
    assert g["awards"] == 1 and g["committed_ore"] == 30_000_000, o
    # by agency each funder's group holds the award once, with its share
    o = w.json("grants", "overview", "halden", "--by", "agency")
    nav = next(g for g in o["groups"] if g["key"] == "nav-ost-viken")
    assert nav["awards"] == 1 and nav["committed_ore"] == 10_000_000, o


def ledger_ok(w):
    r = w.json("grants", "ledger", "verify")
    assert r["balanced"] and not r["problems"], r


def balance(w, account):
    items = w.json("grants", "ledger", "accounts", account)["items"]
    return next((i["balance_ore"] for i in items if i["account"] == account), 0)


def test_an_award_is_amended_with_its_postings_and_history():
    w = World("record-amend")
    w.ok("grants", "add-scheme", "ra-2019", "--name", "Ramme", "--year", "2019", "--frame",
         "500 000")
    w.ok("grants", "add-award", "ra-halden", "--scheme", "ra-2019", "--recipient", "halden",
         "--amount", "200 000", "--purpose", "Kartlegging", "--report-due", "2020-01-15")
    w.ok("grants", "disburse", "ra-halden", "d1", "--amount", "50 000", "--date", "2019-05-01")
    heads = w.heads()

    # refusals: each names what is wrong, stores nothing
    for args, code, words in [
            (["--amount", "800 000", "--reason", "typo"], "422", "exceeds the frame of scheme"),
            (["--amount", "40 000", "--reason", "typo"], "422", "less than it has paid"),
            (["--reason", "nothing"], "400", "nothing to amend"),
            (["--report-due", "2020-02-30", "--reason", "x"], "400", "report_due"),
    ]:
        rc, out, err = w.run("grants", "amend", "ra-halden", *args)
        assert rc == 1 and f" {code} " in err and words in err, (args, err)
    rc, out, err = w.run("grants", "amend", "nosuch", "--amount", "1", "--reason", "x")
    assert rc == 1 and " 404 " in err and "'nosuch'" in err, err
    rc, out, err = w.run("grants", "amend", "ra-halden", "--amount", "300 000")
    assert rc == 2 and "--reason" in err, err
    assert w.heads() == heads, "a refused amendment stored something"

    # up within the frame: more committed from the budget
    w.ok("grants", "amend", "ra-halden", "--amount", "300 000", "--purpose", "Kartlegging og tiltak",
         "--report-due", "2020-03-01", "--reason", "Vedtaksbrevet sa 300 000")
    a = w.json("grants", "award", "ra-halden")
    assert a["amount_ore"] == 30_000_000 and a["purpose"] == "Kartlegging og tiltak", a
    assert a["report_due"] == "2020-03-01" and a["funders"][0]["amount_ore"] == 30_000_000, a
    assert balance(w, "committed/ra-halden/fmov") == 25_000_000
    assert balance(w, "budget/ra-2019") == 20_000_000
    assert w.json("grants", "scheme", "ra-2019")["committed_ore"] == 30_000_000
    due = [d["award"] for d in w.json("grants", "deadlines", "--before", "2020-12-31")["items"]]
    assert due.count("ra-halden") == 1, due
    d = w.json("grants", "deadlines", "--before", "2020-12-31")["items"]
    assert next(x for x in d if x["award"] == "ra-halden")["report_due"] == "2020-03-01", d
    # down again: the difference released to the budget
    w.ok("grants", "amend", "ra-halden", "--amount", "150 000", "--reason", "Halvert i revidert")
    assert balance(w, "committed/ra-halden/fmov") == 10_000_000
    assert balance(w, "budget/ra-2019") == 35_000_000
    ledger_ok(w)

    # the history: granted, paid, amended twice, each with who, when and why
    h = w.json("grants", "history", "ra-halden")["items"]
    assert [e["type"].rsplit(".", 2)[-2] + "." + e["type"].rsplit(".", 1)[-1] for e in h] == [
        "award.granted", "disbursement.made", "award.amended", "award.amended"], h
    assert h[2]["data"]["reason"] == "Vedtaksbrevet sa 300 000" and h[2]["source"] == "fmov", h
    assert h[3]["data"]["amount_ore"] == 15_000_000, h
    assert all(e["recorded"] for e in h), h
    text = w.ok("grants", "history", "ra-halden")
    assert "why: Vedtaksbrevet sa 300 000" in text and "grants.award.amended" in text, text
    rc, out, err = w.run("grants", "history", "nosuch")
    assert rc == 1 and "'nosuch'" in err, err


def test_a_joint_award_is_amended_share_by_share():
    w = World("record-amend-joint")
    w.ok("grants", "add-scheme", "rs-2019", "--name", "Felles", "--year", "2019")
    w.ok("grants", "add-award", "rs-halden", "--scheme", "rs-2019", "--recipient", "halden",
         "--amount", "300 000", "--purpose", "Felles", "--funder", "fmov=200000",
         "--funder", "nav-ost-viken=100000")
    rc, out, err = w.run("grants", "amend", "rs-halden", "--amount", "400 000", "--reason", "x")
    assert rc == 1 and " 422 " in err and "each funder's new share" in err, err
    rc, out, err = w.run("grants", "amend", "rs-halden", "--amount", "400 000", "--funder",
                         "fmov=200000", "--funder", "nav-ost-viken=100000", "--reason", "x")
    assert rc == 1 and " 422 " in err and "sum to" in err, err
    # a new funder joins, one share changes
    w.ok("grants", "amend", "rs-halden", "--amount", "450 000", "--funder", "fmov=200000",
         "--funder", "nav-ost-viken=150000", "--funder", "imdi-ost=100000",
         "--reason", "IMDi Øst er med")
    a = w.json("grants", "award", "rs-halden")
    assert {f["agency"]: f["amount_ore"] for f in a["funders"]} == {
        "fmov": 20_000_000, "nav-ost-viken": 15_000_000, "imdi-ost": 10_000_000}, a
    assert balance(w, "committed/rs-halden/imdi-ost") == 10_000_000
    assert "rs-halden" in w.ok("grants", "awards", "--funder", "imdi-ost")
    # a funder with nothing paid leaves
    w.ok("grants", "amend", "rs-halden", "--amount", "350 000", "--funder", "fmov=200000",
         "--funder", "nav-ost-viken=150000", "--reason", "IMDi Øst trakk seg")
    assert balance(w, "committed/rs-halden/imdi-ost") == 0
    rc, out, err = w.run("grants", "awards", "--funder", "imdi-ost")
    assert rc == 0 and "rs-halden" not in out, out
    o = w.json("grants", "overview", "halden", "--by", "agency")
    assert "imdi-ost" not in [g["key"] for g in o["groups"]], o
    ledger_ok(w)


def test_a_payment_without_a_date_is_dated_the_day_it_is_stored():
    w = World("record-today")
    before = samtest.today().isoformat()
    w.ok("grants", "disburse", "ps19-halden", "undated", "--amount", "10 000")
    after = samtest.today().isoformat()
    p = next(p for p in w.json("grants", "award", "ps19-halden")["payments"]
             if p["id"] == "undated")
    assert p["date"] in (before, after), (p, before, after)


def changed_fixture(w):
    """The Østfold fixture with a new investment leader for Halden (Viken fylkeskommune's
    predecessor ofk, as in 2020) and 50 000 more for Halden's award."""
    with open(FIXTURE, encoding="utf-8") as f:
        doc = json.load(f)
    award = doc["awards"][0]
    award["amount_nok"] += 50_000
    award["funders"][0]["amount_nok"] += 50_000
    doc["pilots"][0]["investment_leader"] = "ofk"
    path = os.path.join(w.data, "changed.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
    return path, doc


def test_import_lists_the_differences_then_applies_them_then_finds_nothing_to_do():
    w = World("record-import")
    changed, doc = changed_fixture(w)
    award, pilot = doc["awards"][0], doc["pilots"][0]
    heads = w.heads()

    # 1. the differences, each with its JSON path, the stored and the file value; nothing changes
    rc, out, err = w.run("import", changed)
    assert rc == 1, out + err
    assert ('$.pilots[0].investment_leader (no.samordna.registry.pilot.registered halden): '
            'stored "fmov", file "ofk"') in out, out
    assert ("$.awards[0].amount_ore (no.samordna.grants.award.granted ps19-halden): "
            "stored 20000000, file 25000000") in out, out
    assert "--apply-changes" in err, err
    rc, out, err = w.run("--json", "import", changed)
    assert rc == 1, err
    s = json.loads(out)
    assert s["differ"] == 2 and s["corrected"] == 0 and s["new"] == 0, s
    d = {(x["path"], x["field"]): (x["stored"], x["file"]) for x in s["differences"]}
    assert d[("$.pilots[0]", "investment_leader")] == ("fmov", "ofk"), d
    assert d[("$.awards[0]", "amount_ore")] == (20_000_000, 25_000_000), d
    assert d[("$.awards[0]", "funders")] == ([{"agency": "fmov", "amount_ore": 20_000_000}],
                                             [{"agency": "fmov", "amount_ore": 25_000_000}]), d
    assert len(d) == 3, d
    assert w.heads() == heads, "listing the differences changed something"
    assert w.json("pilots", "show", "halden")["investment_leader"] == "fmov"

    # 2. applied: one correction event per record, reported
    rc, out, err = w.run("--json", "import", "--apply-changes", changed)
    assert rc == 0, out + err
    s = json.loads(out)
    assert s["corrected"] == 2 and s["refused"] == 0, s
    fixes = {(c["type"], c["key"]): c["correction"] for c in s["corrections"]}
    assert fixes == {("no.samordna.registry.pilot.registered", "halden"):
                     "no.samordna.registry.pilot.updated",
                     ("no.samordna.grants.award.granted", "ps19-halden"):
                     "no.samordna.grants.award.amended"}, fixes
    assert w.json("pilots", "show", "halden")["investment_leader"] == "ofk"
    a = w.json("grants", "award", "ps19-halden")
    assert a["amount_ore"] == 25_000_000 and a["funders"][0]["amount_ore"] == 25_000_000, a
    assert balance(w, "committed/ps19-halden/fmov") == 25_000_000
    ledger_ok(w)
    after = w.heads()
    assert after["registry"] == heads["registry"] + 1 and after["grants"] == heads["grants"] + 1

    # the history keeps the first version and names the correction's reason
    h = w.json("grants", "history", "ps19-halden")["items"]
    assert [e["type"] for e in h] == ["no.samordna.grants.award.granted",
                                      "no.samordna.grants.award.amended"], h
    assert h[0]["data"]["amount_ore"] == 20_000_000, h
    assert "--apply-changes" in h[1]["data"]["reason"], h

    # 3. again: nothing to do, nothing sent
    for args in (["import", changed], ["import", "--apply-changes", changed]):
        rc, out, err = w.run("--json", *args)
        assert rc == 0, err
        s = json.loads(out)
        assert s["differ"] == s["corrected"] == s["refused"] == s["new"] == 0, s
        assert s["already"] == s["events"], s
    assert w.heads() == after
    rc, out, err = w.run("import", "--dry-run", "--apply-changes", changed)
    assert rc == 2 and "--dry-run" in err, err


def board_row(w, pilot, *as_of):
    b = w.json("board", "--pilot", pilot, *as_of)
    row = b["rows"][0]
    return {c["kind"]: c["date"] for c in row["cells"] if c.get("date")}, row.get("phase", "")


def test_a_milestone_is_corrected_and_a_future_day_needs_planned():
    w = World("record-milestone")
    today = samtest.today()
    future = (today + datetime.timedelta(days=400)).isoformat()
    heads = w.heads()
    # a day still to come is refused unless planned
    rc, out, err = w.run("milestone", "reach", "fredrikstad", "knowledge_base", "--date", future,
                         "--evidence", "rapport")
    assert rc == 1 and " 422 " in err and "still to come" in err and "planned" in err, err
    assert w.heads() == heads
    # a mistyped year, planned by mistake: the board of today does not show it as reached
    w.ok("milestone", "reach", "fredrikstad", "knowledge_base", "--date", future, "--planned",
         "--evidence", "rapport")
    cells, _ = board_row(w, "fredrikstad")
    assert "knowledge_base" not in cells, cells
    # corrected to the right day: the board now and as it stood follow the correction
    rc, out, err = w.run("milestone", "correct", "fredrikstad", "knowledge_base", "--date",
                         "2019-10-01")
    assert rc == 2 and "--reason" in err, err
    w.ok("milestone", "correct", "fredrikstad", "knowledge_base", "--date", "2019-10-01",
         "--reason", "feil årstall")
    cells, phase = board_row(w, "fredrikstad")
    assert cells["knowledge_base"] == "2019-10-01", cells
    cells, _ = board_row(w, "fredrikstad", "--as-of", "2019-12-31")
    assert cells["knowledge_base"] == "2019-10-01", cells
    cells, _ = board_row(w, "fredrikstad", "--as-of", "2019-09-30")
    assert "knowledge_base" not in cells, cells
    # the evidence alone
    w.ok("milestone", "correct", "fredrikstad", "knowledge_base", "--evidence",
         "Kunnskapsgrunnlag 2019", "--reason", "riktig dokument")
    # it can now be taken back after the right day (before, the future day barred it)
    w.ok("milestone", "revert", "fredrikstad", "knowledge_base", "--date", "2019-11-01",
         "--reason", "for tynt")
    rc, out, err = w.run("milestone", "correct", "fredrikstad", "knowledge_base", "--date",
                         "2019-10-02", "--reason", "x")
    assert rc == 1 and " 409 " in err and "does not stand at" in err, err
    # the history keeps every change, the corrected ones marked
    h = w.json("milestone", "history", "fredrikstad")["items"]
    kb = [c for c in h if c["kind"] == "knowledge_base"]
    assert [c["date"] for c in kb] == ["2019-10-01", "2019-10-01", "2019-11-01", future], kb
    assert [bool(c.get("superseded_by")) for c in kb] == [True, False, False, True], kb
    assert kb[1]["evidence"] == "Kunnskapsgrunnlag 2019" and kb[1]["reason"] == "riktig dokument"
    text = w.ok("milestone", "history", "fredrikstad")
    assert "corrected" in text and "superseded" in text and "feil årstall" in text, text
    # status.report names the corrections
    r = w.json("report", "--from", "2019-01-01", "--to", "2019-12-31")
    what = [(c["what"], c["subject"]) for c in r["changes"] if c["pilot"] == "fredrikstad"]
    assert ("milestone.corrected", "knowledge_base") in what, what
    assert any("feil årstall" in c["summary"] for c in r["changes"]), r


def test_a_meeting_is_corrected_or_cancelled_and_a_barrier_reopened():
    w = World("record-meeting")
    w.ok("meeting", "log", "rm-1", "--kind", "working", "--date", "2019-05-02", "--pilot",
         "halden", "--title", "Arbeidsmøte", "--participant", "fmov")
    w.ok("meeting", "log", "rm-2", "--kind", "working", "--date", "2019-05-20", "--pilot",
         "halden", "--title", "Avlyst møte")
    rc, out, err = w.run("meeting", "correct", "rm-1", "--participant", "nav-ost-vikne",
                         "--reason", "x")
    assert rc == 1 and " 422 " in err and "nav-ost-vikne" in err, err
    w.ok("meeting", "correct", "rm-1", "--date", "2019-05-03", "--participant", "fmov",
         "--participant", "nav-ost-viken", "--reason", "feil dato i referatet")
    m = w.json("meetings", "--pilot", "halden", "--from", "2019-05-01", "--to", "2019-05-31")
    assert [(i["id"], i["date"]) for i in m["items"]] == [("rm-1", "2019-05-03"),
                                                         ("rm-2", "2019-05-20")], m
    assert m["items"][0]["participants"] == ["fmov", "nav-ost-viken"], m
    rc, out, err = w.run("meeting", "cancel", "rm-2")
    assert rc == 2 and "--reason" in err, err
    w.ok("meeting", "cancel", "rm-2", "--reason", "ble ikke holdt")
    m = w.json("meetings", "--pilot", "halden", "--from", "2019-05-01", "--to", "2019-05-31")
    assert [i["id"] for i in m["items"]] == ["rm-1"], m
    rc, out, err = w.run("meeting", "correct", "rm-2", "--title", "x", "--reason", "x")
    assert rc == 1 and " 409 " in err and "cancelled" in err, err
    h = w.json("meeting", "history", "rm-2")["items"]
    assert [e["type"].rsplit(".", 1)[1] for e in h] == ["logged", "cancelled"], h
    assert h[1]["data"]["reason"] == "ble ikke holdt"
    r = w.json("report", "--from", "2019-05-01", "--to", "2019-05-31")
    assert {"meeting.corrected", "meeting.cancelled"} <= {c["what"] for c in r["changes"]}, r

    # a barrier closed by mistake, reopened in the state it was in
    w.ok("barrier", "register", "rb-1", "--title", "Regel", "--concerns", "rule", "--pilot",
         "halden", "--date", "2019-02-01")
    w.ok("barrier", "move", "rb-1", "raised_regionally", "--date", "2019-03-01")
    w.ok("barrier", "move", "rb-1", "withdrawn", "--date", "2019-04-01")
    open_before = w.json("board", "--pilot", "halden")["rows"][0]["open_barriers"]
    rc, out, err = w.run("barrier", "reopen", "rb-1", "--date", "2019-04-02")
    assert rc == 2 and "--note" in err, err
    w.ok("barrier", "reopen", "rb-1", "--date", "2019-04-02", "--note", "trukket ved en feil")
    b = w.json("barrier", "show", "rb-1")
    assert b["state"] == "raised_regionally", b
    assert [x["state"] for x in b["history"]] == ["identified", "raised_regionally", "withdrawn",
                                                  "raised_regionally"], b
    assert "trukket ved en feil" in b["history"][-1]["note"], b
    assert w.json("board", "--pilot", "halden")["rows"][0]["open_barriers"] == open_before + 1
    rc, out, err = w.run("barrier", "reopen", "rb-1", "--date", "2019-04-03", "--note", "x")
    assert rc == 1 and " 409 " in err and "open" in err, err
    h = w.json("barrier", "history", "rb-1")["items"]
    assert [e["type"].rsplit(".", 1)[1] for e in h] == ["registered", "moved", "moved",
                                                        "reopened"], h


def test_every_kind_of_registry_record_is_registered_and_changed_from_samctl():
    w = World("record-registry")
    # agencies: registered, renamed keeping the former name
    rc, out, err = w.run("agencies", "register", "viken-fk", "--name", "Viken", "--kind", "county")
    assert rc == 2 and "county_municipality" in err, err
    w.ok("agencies", "register", "viken-fk", "--name", "Viken fylkeskommune", "--kind",
         "county_municipality", "--role", "investment_team")
    w.ok("agencies", "rename", "viken-fk", "--name", "Viken fylkeskommune (2020–2023)")
    ag = w.json("agencies", "show", "viken-fk")
    assert ag["name"] == "Viken fylkeskommune (2020–2023)", ag
    assert ag["former_names"] == ["Viken fylkeskommune"] and ag["roles"] == ["investment_team"]
    # the change of investment leader with the day it took effect; the one before is kept
    w.ok("pilots", "update", "sarpsborg", "--leader", "viken-fk", "--leader-from", "2020-01-01")
    p = w.json("pilots", "show", "sarpsborg")
    assert p["investment_leader"] == "viken-fk" and p["investment_leader_from"] == "2020-01-01", p
    assert p["former_leaders"] == [{"agency": "ofk", "until": "2020-01-01"}], p
    assert "former investment leader  ofk" in w.ok("pilot", "show", "sarpsborg")
    # the team, the contact person, the steering group and the aims
    w.ok("people", "register", "p-0042", "--name", "Kari Nordmann", "--agency", "viken-fk",
         "--email", "kari@example.org")
    w.ok("pilots", "update", "sarpsborg", "--team", "nav-ost-viken", "--team", "imdi-ost",
         "--contact", "p-0042", "--steering-group", "Kommunedirektørens ledergruppe",
         "--aim", "Færre barn i lavinntektsfamilier")
    p = w.json("pilots", "show", "sarpsborg")
    assert p["investment_team"] == ["nav-ost-viken", "imdi-ost"] and p["contact_person"] == "p-0042"
    assert p["aims"] == ["Færre barn i lavinntektsfamilier"], p
    assert p["investment_leader"] == "viken-fk" and p["investment_leader_from"] == "2020-01-01", p
    rc, out, err = w.run("pilots", "update", "sarpsborg", "--leader", "nobody")
    assert rc == 1 and "nobody" in err, err
    # status and grants follow the new leader
    samtest.wait_for(lambda: w.json("board", "--pilot", "sarpsborg")["rows"][0][
        "investment_leader"] == "viken-fk", 30 * samtest.SLOW, "status to follow the leader")
    # people: a role, then erased on request
    w.ok("people", "assign", "p-0042", "--role", "kontaktperson", "--pilot", "sarpsborg",
         "--from", "2020-01-01")
    w.ok("people", "erase", "p-0042", "--requested", "2021-03-01")
    person = w.json("people", "show", "p-0042")
    assert person.get("erased") and "name" not in person and "email" not in person, person
    assert person["roles"][0]["role"] == "kontaktperson", person
    h = w.json("people", "history", "p-0042")["items"]
    assert [e["type"].rsplit(".", 2)[-2] for e in h] == ["person", "role", "person"], h
    assert "Kari" not in json.dumps(h), h
    # a municipality, a merger into it
    w.ok("municipalities", "register", "ny-kommune", "--name", "Ny kommune", "--population",
         "1000", "--number", "3099:2020-01-01")
    rc, out, err = w.run("municipalities", "register", "x", "--name", "X", "--number", "12")
    assert rc == 2 and "--number" in err, err
    w.ok("municipalities", "merge", "ny-kommune", "--merged", "fredrikstad", "--from",
         "2020-01-01")
    assert "merged into ny-kommune" in w.ok("municipalities", "show", "fredrikstad")
    # invitations and answers, reports
    w.ok("invitations", "send", "velferdspiloten", "ny-kommune", "--sent", "2020-02-01")
    w.ok("invitations", "answer", "velferdspiloten", "ny-kommune", "--answer", "yes",
         "--channel", "written", "--answered", "2020-03-01")
    inv = [i for i in w.json("invitations", "--municipality", "ny-kommune")["items"]]
    assert inv[0]["answer"] == "yes" and inv[0]["channel"] == "written", inv
    w.ok("reports", "publish", "hiof-2020-1", "--by", "hiof", "--title", "Sluttrapport",
         "--published", "2020-12-01")
    assert w.json("reports", "show", "hiof-2020-1")["title"] == "Sluttrapport"
    w.ok("programmes", "register", "velferd-2", "--name", "Velferdspiloten 2", "--owner", "fmov",
         "--leadership", "fmov", "--briefing-interval-months", "6", "--from", "2021-01-01",
         "--to", "2023-12-31", "--theme", "Bolig", "--goal", "Samordning")
    pg = w.json("programmes", "show", "velferd-2")
    assert pg["period"] == {"from": "2021-01-01", "to": "2023-12-31"} and pg["themes"] == ["Bolig"]
    assert pg["briefing_interval_months"] == 6, pg
    # every change in its record's history, pilot events only for the pilot
    h = w.json("pilots", "history", "sarpsborg")["items"]
    assert [e["type"] for e in h] == ["no.samordna.registry.pilot.registered"] + [
        "no.samordna.registry.pilot.updated"] * 2, h
    h = w.json("agencies", "history", "viken-fk")["items"]
    assert [e["type"].rsplit(".", 1)[1] for e in h] == ["registered", "renamed"], h


def test_a_disbursement_is_corrected_by_a_reversing_entry():
    w = World("record-reversal")
    w.ok("grants", "add-scheme", "rr-2019", "--name", "Felles", "--year", "2019")
    w.ok("grants", "add-award", "rr-halden", "--scheme", "rr-2019", "--recipient", "halden",
         "--amount", "300 000", "--purpose", "Felles", "--funder", "fmov=200000",
         "--funder", "nav-ost-viken=100000")
    w.ok("grants", "disburse", "rr-halden", "d1", "--amount", "150 000", "--date", "2019-06-01")
    heads = w.heads()
    rc, out, err = w.run("grants", "correct-disbursement", "rr-halden", "k1", "--corrects", "d1",
                         "--amount", "400 000", "--reason", "x")
    assert rc == 1 and " 422 " in err and "not paid once 'd1' is taken back" in err, err
    rc, out, err = w.run("grants", "correct-disbursement", "rr-halden", "k1", "--corrects",
                         "nosuch", "--amount", "1", "--reason", "x")
    assert rc == 1 and " 404 " in err and "'nosuch'" in err, err
    assert w.heads() == heads
    # 150 000 was a typo for 15 000 paid a day later
    w.ok("grants", "correct-disbursement", "rr-halden", "k1", "--corrects", "d1", "--amount",
         "15 000", "--date", "2019-06-02", "--reason", "feil beløp i utbetalingen")
    a = w.json("grants", "award", "rr-halden")
    pays = {p["id"]: p for p in a["payments"]}
    assert pays["d1"]["corrected_by"] == "k1" and pays["d1"]["amount_ore"] == 15_000_000, pays
    assert pays["k1"]["corrects"] == "d1" and pays["k1"]["amount_ore"] == 1_500_000, pays
    assert pays["k1"]["date"] == "2019-06-02", pays
    assert sum(f["paid_ore"] for f in a["funders"]) == 1_500_000, a
    assert balance(w, "paid/rr-halden/fmov") + balance(w, "paid/rr-halden/nav-ost-viken") == \
        1_500_000
    assert w.json("grants", "scheme", "rr-2019")["paid_ore"] == 1_500_000
    ledger_ok(w)
    rc, out, err = w.run("grants", "correct-disbursement", "rr-halden", "k2", "--corrects", "d1",
                         "--amount", "1", "--reason", "x")
    assert rc == 1 and " 409 " in err and "corrected already by 'k1'" in err, err
    text = w.ok("grants", "award", "rr-halden")
    assert "(corrects d1)" in text and "taken back" in text, text
    h = w.json("grants", "history", "rr-halden")["items"]
    assert h[-1]["type"] == "no.samordna.grants.disbursement.corrected", h
    assert h[-1]["data"]["reason"] == "feil beløp i utbetalingen", h
    o = w.json("grants", "overview", "halden", "--by", "scheme")
    g = next(g for g in o["groups"] if g["key"] == "rr-2019")
    assert g["paid_ore"] == 1_500_000, o


def grants_caught_up(w):
    """Waits until grants' projection of the registry has read the registry's whole outbox
    (its log names the cursor of every page it applies)."""
    head = w.head("registry")

    def cursor():
        found = re.findall(r"refs\.applied added=\d+ cursor=(\d+)", w.procs["grants"].logtext())
        return int(found[-1]) if found else 0
    samtest.wait_for(lambda: cursor() >= head, 30 * samtest.SLOW, "grants to read the registry")


def test_views_follow_mergers():
    w = World("record-mergers")
    # every number a municipality ever had finds it
    for number, mid in (("3014", "indre-ostfold"), ("0104", "moss"), ("0136", "moss"),
                        ("3002", "moss"), ("0101", "halden"), ("3001", "halden")):
        o = w.json("municipalities", "--number", number)
        assert o["id"] == mid, (number, o)
    rc, out, err = w.run("municipalities", "--number", "0199")
    assert rc == 1 and " 404 " in err and "0199" in err, err
    grants_caught_up(w)
    w.ok("grants", "add-scheme", "rg-2019", "--name", "Felles", "--year", "2019")
    # an award to a municipality merged away is refused naming the successor
    rc, out, err = w.run("grants", "add-award", "rg-mr-2020", "--scheme", "rg-2019",
                         "--recipient", "moss-rygge", "--amount", "100 000", "--purpose", "x",
                         "--decided", "2020-02-01")
    assert rc == 1 and " 422 " in err and "merged into 'moss' on 2020-01-01" in err, err
    assert "goes to 'moss'" in err, err
    # before the merger it is the old municipality's
    w.ok("grants", "add-award", "rg-mr-2019", "--scheme", "rg-2019", "--recipient",
         "moss-rygge", "--amount", "100 000", "--purpose", "Kartlegging", "--decided",
         "2019-06-01")
    w.ok("grants", "add-award", "rg-moss-2020", "--scheme", "rg-2019", "--recipient", "moss",
         "--amount", "50 000", "--purpose", "Videreføring")
    # the successor's overview includes its predecessors' history
    o = w.json("grants", "overview", "moss")
    assert sorted((l["award"], l["recipient"]) for l in o["lines"]) == [
        ("rg-moss-2020", "moss"), ("rg-mr-2019", "moss-rygge")], o
    assert o["committed_ore"] == 15_000_000, o
    assert "rg-mr-2019" in w.ok("grants", "overview", "moss")
    # a merger recorded from samctl: the new municipality's overview holds the old awards
    w.ok("municipalities", "register", "ny-sarpsborg", "--name", "Nye Sarpsborg", "--number",
         "3103:2024-01-01")
    w.ok("municipalities", "merge", "ny-sarpsborg", "--merged", "sarpsborg", "--from",
         "2024-01-01")
    grants_caught_up(w)
    o = w.json("grants", "overview", "ny-sarpsborg")
    assert [l["award"] for l in o["lines"]] == ["ps19-sarpsborg"], o
    rc, out, err = w.run("grants", "add-award", "rg-sb", "--scheme", "rg-2019", "--recipient",
                         "sarpsborg", "--amount", "1", "--purpose", "x", "--decided", "2024-02-01")
    assert rc == 1 and "merged into 'ny-sarpsborg'" in err, err
    # the board shows the pilot of a municipality merged away under the one it became
    samtest.wait_for(lambda: w.json("board", "--pilot", "sarpsborg")["rows"][0][
        "municipality_name"] == "Nye Sarpsborg (was Sarpsborg)", 30 * samtest.SLOW,
        "the board to follow the merger")
    assert "Nye Sarpsborg" in w.ok("board")


def test_a_difference_no_correction_reaches_is_listed_and_never_taken_as_already():
    w = World("record-import-kept")
    with open(FIXTURE, encoding="utf-8") as f:
        doc = json.load(f)
    doc["agencies"][1]["kind"] = "other"          # nav-ost-viken: not changed by a rename
    doc["agencies"][2]["name"] = "Viken fylkeskommune"  # ofk: renamed by the import
    path = os.path.join(w.data, "kept.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)
    rc, out, err = w.run("import", path)
    assert rc == 1, out + err
    assert ('$.agencies[1].kind (no.samordna.registry.agency.registered nav-ost-viken): stored '
            '"state_regional", file "other" (not corrected by import)') in out, out
    assert "nav-ost-viken differs where no correction of the import reaches" in err, err
    rc, out, err = w.run("--json", "import", "--apply-changes", path)
    assert rc == 1, err
    s = json.loads(out)
    assert [c["key"] for c in s["corrections"]] == ["ofk"], s
    assert {(d["key"], d["field"], d["correctable"]) for d in s["differences"]} == {
        ("nav-ost-viken", "kind", False), ("ofk", "name", True)}, s
    assert w.json("agencies", "show", "ofk")["former_names"][-1] == "Østfold fylkeskommune"
    assert w.json("agencies", "show", "nav-ost-viken")["kind"] == "state_regional"
    rc, out, err = w.run("import", path)
    assert rc == 1 and "nav-ost-viken" in out and "ofk" not in out, out


if __name__ == "__main__":
    samtest.main()
