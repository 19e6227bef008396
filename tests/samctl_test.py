"""samctl as people use it, against a real broker and the four services: global options
anywhere on the line, --help on every command and subcommand (found from samctl's own help),
one JSON shape for every list ({"items": [...], "next": ...}) and an object for every show,
a header and a count on text lists and "no …" on empty ones, usage errors that name the
option and the command, and a broker that does not answer reported after --timeout-ms, not
twice it; amounts as people paste them, --csv read back with Python's csv module, and the
board within 120 columns.
"""
import csv
import io
import json
import os
import re
import subprocess
import time
import unicodedata

import samtest

SAMCTL = os.path.join(samtest.BIN, "samctl")
FIXTURE = os.path.join(samtest.SRC, "deploy", "examples", "ostfold-2019.json")


def samctl(*args, timeout=60):
    p = subprocess.run([SAMCTL] + list(args), capture_output=True, text=True,
                       timeout=timeout * samtest.SLOW)
    return p.returncode, p.stdout, p.stderr


class Stack:
    """broker, registry, status, grants and notify in one scratch folder; `run` calls samctl
    with --broker given after the command, as a person would add it."""

    def __init__(self, name, fixture=True):
        self.data = samtest.scratch(name)
        self.broker, self.ep = samtest.broker()
        for svc in ("registry", "status", "grants", "notify"):
            samtest.service(svc, self.ep, self.data)
        if fixture:
            rc, out, err = self.run("import", FIXTURE)
            assert rc == 0, err

    def run(self, *args, timeout=60):
        return samctl(*args, "--broker", self.ep, timeout=timeout)

    def json(self, *args):
        rc, out, err = self.run(*args, "--json")
        assert rc == 0, (args, err)
        assert out.count("\n") == 1, ("one document on one line", args, out)
        return json.loads(out)


def section(text, title):
    """The names of the "  name   summary" lines under `title:` in a help text."""
    names, inside = [], False
    for line in text.splitlines():
        if line == title + ":":
            inside = True
        elif inside and not line.strip():
            break
        elif inside:
            m = re.match(r"^  (\S+)\s+\S", line)
            assert m, (title, line)
            names.append(m.group(1))
    return names


def all_commands():
    """Every command and subcommand path, as samctl's own help lists them."""
    rc, out, err = samctl("--help")
    assert rc == 0, err
    todo = [[c] for c in section(out, "Commands")]
    assert len(todo) >= 20, out
    found = []
    while todo:
        path = todo.pop(0)
        found.append(path)
        rc, out, err = samctl(*path, "--help")
        assert rc == 0, (path, rc, err)
        todo += [path + [s] for s in section(out, "Subcommands")]
    return found


# What each command prints under --json: a list, one object, or (writes) the outcome of a
# publish. Every command samctl's help lists must be here, so a new one is checked too.
LISTS = {
    "agencies", "municipalities", "people", "programmes", "pilots", "invitations", "reports",
    "kinds", "milestone history", "meetings", "steps", "barriers", "grants schemes",
    "grants awards", "grants deadlines", "grants instruments", "grants ledger accounts",
    "grants history", "meeting history", "barrier history", "agencies history", "people history",
    "programmes history", "reports history", "municipalities history", "pilots history",
    "pilot history", "invitations history", "notify subscriptions", "notify log", "notify dead", "notify inbox", "notify cursors",
    "notify briefings", "ping",
}
OBJECTS = {
    "agencies show", "municipalities show", "people show", "programmes show", "pilots show",
    "pilot show", "reports show", "board", "barrier show", "report", "grants overview",
    "grants scheme", "grants award", "grants ledger verify", "notify secret", "notify public-key",
    "notify replay",
    "notify briefing", "notify briefing show", "import", "keys new", "keys show", "describe", "backup", "restore", "status",
    "promote",
}
WRITES = {
    "kinds define", "milestone reach", "milestone revert", "meeting log", "step add",
    "step update", "barrier register", "barrier move", "grants add-scheme", "grants add-award",
    "grants disburse", "grants repay", "grants cancel", "grants add-instrument",
    "grants add-need", "grants amend", "grants correct-disbursement", "milestone correct", "meeting correct", "meeting cancel",
    "barrier reopen", "agencies register", "agencies rename", "people register", "people assign",
    "people erase", "reports publish", "programmes register", "municipalities register", "municipalities merge",
    "pilots register", "pilots update", "pilot register", "pilot update", "invitations send",
    "invitations answer", "notify subscribe", "notify unsubscribe", "notify briefing resend",
}
GROUPS = {"help", "pilot", "milestone", "meeting", "step", "barrier", "grants", "grants ledger",
          "notify", "keys"}  # a subcommand must be named (help: prints help)


def test_global_options_anywhere_on_the_line():
    s = Stack("samctl-global")
    before = samctl("--json", "--broker", s.ep, "pilots")
    after = samctl("pilots", "--json", "--broker", s.ep)
    between = samctl("--broker", s.ep, "pilots", "--json")
    assert before[0] == after[0] == between[0] == 0, (before, after, between)
    assert before[1] == after[1] == between[1], (before[1], after[1])
    assert sorted(p["id"] for p in json.loads(after[1])["items"]) == [
        "fredrikstad", "halden", "indre-ostfold", "sarpsborg"]
    # global options among a subcommand's own, also --name=VALUE
    rc, out, err = samctl("grants", "overview", "halden", "--json", "--year", "2019",
                          "--broker=" + s.ep, "--timeout-ms=5000")
    assert rc == 0, err
    o = json.loads(out)
    assert o["recipient"] == "halden" and o["year"] == 2019 and o["committed_ore"] == 20000000, o
    # --config after the command: the broker comes from the file
    cfg = os.path.join(s.data, "samctl.cfg")
    with open(cfg, "w") as f:
        f.write(f'broker = "{s.ep}"\njson = "true"\n')
    rc, out, err = samctl("kinds", "--config", cfg)
    assert rc == 0 and len(json.loads(out)["items"]) == 7, (out, err)
    rc, out, err = samctl("pilots", "--log-level", "warn", "--broker", s.ep, "--json")
    assert rc == 0 and len(json.loads(out)["items"]) == 4, err
    rc, out, err = samctl("pilots", "--log-level", "loud", "--broker", s.ep)
    assert rc == 2 and "--log-level must be" in err, err
    # "--" ends the options: --json after it is an argument, and pilots takes none
    rc, out, err = s.run("pilots", "--", "--json")
    assert rc == 2 and "unexpected argument '--json'" in err, err
    # a value that starts with "--" is given with '='
    rc, out, err = s.run("notify", "subscribe", "dash", "--inbox", "--description",
                         "--json")
    assert rc == 2 and "--description needs a value" in err and "--description=" in err, err
    rc, out, err = s.run("notify", "subscribe", "dash", "--inbox", "--description=--x")
    assert rc == 0 and "notify.subscription.created: seq" in out, (out, err)


def test_help_on_every_command_and_subcommand():
    paths = all_commands()
    names = {" ".join(p) for p in paths}
    assert names == LISTS | OBJECTS | WRITES | GROUPS, (
        "classify every command", sorted(names - (LISTS | OBJECTS | WRITES | GROUPS)),
        sorted((LISTS | OBJECTS | WRITES | GROUPS) - names))
    for path in paths:
        rc, out, err = samctl(*path, "--help")
        name = " ".join(path)
        assert rc == 0 and not err, (name, rc, err)
        assert out.startswith("usage: samctl " + name), (name, out)
        assert "Global options" in out, (name, out)
        # `samctl help PATH` says the same; -h is --help; help wins over a mistake
        assert samctl("help", *path) == (0, out, ""), name
        assert samctl(*path, "-h")[1] == out, name
        assert samctl("--help", *path)[1] == out, name
        assert samctl(*path, "--no-such-option", "--help")[1] == out, name
    # the options of a leaf with their help text, from the table the parser uses
    rc, out, err = samctl("grants", "add-award", "--help")
    assert "--funder AGENCY=NOK" in out and "(repeatable)" in out and "joint award" in out, out
    rc, out, err = samctl("notify", "subscribe", "--help")
    assert "--webhook URL" in out and "--from-seq [SERVICE:]N" in out, out
    rc, out, err = samctl("ping", "--help")
    assert "-n, --count COUNT" in out, out
    rc, out, err = samctl("--help")
    assert rc == 0 and "--timeout-ms MS" in out and "\n  notify " in out, out


def _check_list(doc, what):
    assert isinstance(doc, dict) and sorted(doc) == ["items", "next"], (what, doc)
    assert isinstance(doc["items"], list), (what, doc)
    assert doc["next"] is None or (isinstance(doc["next"], str) and doc["next"]), (what, doc)
    return doc["items"]


def test_one_json_shape_for_every_list():
    s = Stack("samctl-json")
    rc, out, err = s.run("notify", "subscribe", "ops", "--inbox", "--type",
                         "no.samordna.status.*", "--from-seq", "0")
    assert rc == 0, err
    samtest.wait_for(lambda: _check_list(s.json("notify", "inbox", "ops"), "inbox"), 10,
                     "the status history in the inbox")
    rc, out, err = s.run("notify", "inbox", "ops", "--max", "3", "--ack")
    assert rc == 0 and "acknowledged 3" in out, (out, err)
    rc, out, err = s.run("step", "add", "halden", "kunnskap", "--title", "Kunnskapsgrunnlag",
                         "--owner", "hiof", "--date", "2019-02-01")
    assert rc == 0, err
    rc, out, err = s.run("barrier", "register", "b-1", "--title", "Regel", "--concerns", "rule",
                         "--pilot", "halden", "--date", "2019-01-01")
    assert rc == 0, err
    # every list command (LISTS), with arguments where it takes some, and what it must hold
    first_meeting = s.json("meetings", "--page-size", "1")["items"][0]["id"]
    rc, out, err = s.run("people", "register", "p-1", "--name", "Kari Nordmann")
    assert rc == 0, err
    lists = {
        "meeting history": ([first_meeting], lambda i: [e["type"] for e in i] == [
            "no.samordna.status.meeting.logged"]),
        "barrier history": (["b-1"], lambda i: [e["type"] for e in i] == [
            "no.samordna.status.barrier.registered"]),
        "people history": (["p-1"], lambda i: [e["type"] for e in i] == [
            "no.samordna.registry.person.registered"]),
        **{f"{word} history": ([rid], lambda i, t=etype: i[0]["type"] ==
                                "no.samordna.registry." + t) for word, rid, etype in [
                ("agencies", "fmov", "agency.registered"),
                ("programmes", "velferdspiloten", "programme.registered"),
                ("reports", "hiof-2019-2", "report.published"),
                ("municipalities", "sarpsborg", "municipality.registered"),
                ("pilots", "halden", "pilot.registered"), ("pilot", "halden", "pilot.registered"),
                ("invitations", "velferdspiloten/sarpsborg", "invitation.sent")]},
        "agencies": ([], lambda i: len(i) == 8),
        "municipalities": ([], lambda i: len(i) == 6),
        "people": ([], lambda i: [p["id"] for p in i] == ["p-1"]),
        "programmes": ([], lambda i: [p["id"] for p in i] == ["velferdspiloten"]),
        "pilots": (["--municipality", "halden"], lambda i: [p["id"] for p in i] == ["halden"]),
        "invitations": (["--answer", "no"],
                        lambda i: [x["municipality"] for x in i] == ["moss-rygge"]),
        "reports": ([], lambda i: len(i) == 1),
        "kinds": ([], lambda i: [k["order"] for k in i] == list(range(1, 8))),
        "milestone history": (["halden"], lambda i: len(i) == 6 and i[0]["reached"] is True),
        "meetings": ([], lambda i: len(i) == 14),
        "steps": (["halden"], lambda i: [x["id"] for x in i] == ["kunnskap"]),
        "barriers": (["--open"], lambda i: [b["id"] for b in i] == ["b-1"]),
        "grants schemes": ([], lambda i: [x["id"] for x in i] == ["prosjektskjonn-2019"]),
        "grants awards": (["--recipient", "halden"],
                          lambda i: [a["amount_ore"] for a in i] == [20000000]),
        "grants deadlines": (["--before", "2030-01-01"], lambda i: isinstance(i, list)),
        "grants instruments": (["halden"], lambda i: i == []),
        "grants ledger accounts": (["budget/"], lambda i: len(i) == 1),
        "grants history": (["ps19-halden"], lambda i: [e["type"] for e in i] == [
            "no.samordna.grants.award.granted"]),
        "notify subscriptions": ([], lambda i: [x["id"] for x in i] == ["ops"]),
        "notify log": (["ops"], lambda i: i and all(a["outcome"] == "acked" for a in i)),
        "notify dead": ([], lambda i: i == []),
        "notify inbox": (["ops", "--max", "2"], lambda i: len(i) == 2 and i[0]["qseq"] == 4),
        "notify cursors": ([], lambda i: sorted(c["service"] for c in i) == [
            "grants", "registry", "status"]),
        "notify briefings": ([], lambda i: i == []),  # none due in this stack's life
        "ping": (["registry", "-n", "2"], lambda i: [p["service"] for p in i] == ["registry"] * 2),
    }
    assert set(lists) == LISTS
    for name, (args, holds) in lists.items():
        items = _check_list(s.json(*name.split(), *args), name)
        assert holds(items), (name, items)
    # a page that is not the last names the next one, and that token reads on
    first = s.json("meetings", "--page-size", "10")
    assert len(_check_list(first, "meetings")) == 10 and first["next"], first
    rest = s.json("meetings", "--page-size", "10", "--page-token", first["next"])
    assert len(_check_list(rest, "meetings")) == 4 and rest["next"] is None, rest
    assert not {m["id"] for m in first["items"]} & {m["id"] for m in rest["items"]}
    # one record is one object, not a list
    for args, key, value in [(["pilots", "show", "halden"], "investment_leader", "fmov"),
                             (["pilot", "show", "halden"], "id", "halden"),
                             (["grants", "award", "ps19-halden"], "amount_ore", 20000000),
                             (["barrier", "show", "b-1"], "state", "identified"),
                             (["board", "--as-of", "2019-11-11"], "as_of", "2019-11-11")]:
        o = s.json(*args)
        assert "items" not in o and o[key] == value, (args, o)
    # a write answers with its event
    o = s.json("kinds", "define", "evaluated", "--label", "Evaluert", "--order", "8")
    assert sorted(o) == ["duplicate", "id", "seq", "service", "subject", "type"], o
    assert o["type"] == "no.samordna.status.milestone_kind.defined" and o["subject"] == "evaluated"
    o = s.json("grants", "add-need", "n-1", "--municipality", "halden", "--year", "2019",
               "--title", "Kompetanse")
    assert o["id"] == "need.recorded/halden/2019/n-1" and o["duplicate"] is False, o
    # the need joins the instruments' list with kind "need"
    items = _check_list(s.json("grants", "instruments", "halden"), "instruments")
    assert [(x["id"], x["kind"]) for x in items] == [("n-1", "need")], items


def test_text_lists_have_a_header_and_a_count_and_say_when_empty():
    s = Stack("samctl-text", fixture=False)
    for args, empty in [(["pilots"], "no pilots"), (["agencies"], "no agencies"),
                        (["grants", "awards"], "no awards"), (["kinds"], "no milestone kinds"),
                        (["notify", "subscriptions"], "no subscriptions"),
                        (["notify", "dead"], "no dead letters"), (["meetings"], "no meetings")]:
        rc, out, err = s.run(*args)
        assert rc == 0 and out == empty + "\n", (args, out, err)
        doc = s.json(*args)
        assert doc == {"items": [], "next": None}, (args, doc)
    # a filter word the service does not know: refused naming the words it knows
    for args, want in [(["barriers", "--state", "bogus"], "raised_regionally"),
                       (["agencies", "--kind", "bogus"], "county_governor")]:
        rc, out, err = s.run(*args)
        assert rc != 0 and "bogus" in err and want in err, (args, err)
    rc, out, err = s.run("import", FIXTURE)
    assert rc == 0, err
    rc, out, err = s.run("agencies")
    lines = out.splitlines()
    assert rc == 0 and lines[0].split()[:3] == ["ID", "NAME", "KIND"] and lines[-1] == "(8)", out
    assert len(lines) == 10, out
    rc, out, err = s.run("meetings", "--page-size", "3")
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["DATE", "KIND"] and lines[4] == "(3)", out
    assert lines[5].startswith("(more: --page-token "), out


def test_usage_errors_name_the_option_and_the_command():
    s = Stack("samctl-usage")
    rc, out, err = s.run("grants", "overview", "halden", "--yaer", "2019")
    assert rc == 2 and not out, (rc, out)
    assert err.startswith("samctl grants overview: unknown option '--yaer'\n"), err
    assert "usage: samctl grants overview [RECIPIENT] [--year YEAR]" in err, err
    assert "add-award" not in err, ("only that command's usage", err)
    rc, out, err = s.run("board", "--as-of")
    assert rc == 2 and "samctl board: --as-of needs a value YYYY-MM-DD" in err, err
    rc, out, err = s.run("grants", "overview", "--year", "19x")
    assert rc == 2 and "--year: '19x' is not a year" in err, err
    rc, out, err = s.run("meetings", "--page-size", "many")
    assert rc == 2 and "--page-size: 'many' is not a whole number" in err, err
    rc, out, err = s.run("report", "--from", "2019-02-30", "--to", "2019-12-31")
    assert rc == 2 and "samctl report: --from" in err and "YYYY-MM-DD" in err, err
    rc, out, err = s.run("report", "--from", "2019-01-01")
    assert rc == 2 and "--to YYYY-MM-DD is required" in err, err
    rc, out, err = s.run("grants", "add-award", "x", "--amount", "lots")
    assert rc == 2 and "'lots' is not an amount in NOK" in err, err
    rc, out, err = s.run("grants", "add-instrument", "i", "--kind", "bogus")
    assert rc == 2 and err.count("\n") == 1, err  # one line: the word and the valid ones
    assert "--kind: 'bogus' is not an instrument kind; the kinds are project, programme" in err
    rc, out, err = s.run("grants", "frobnicate")
    assert rc == 2 and "unknown subcommand 'frobnicate'" in err, err
    assert "samctl grants add-award ID" in err, ("the group's subcommands", err)
    rc, out, err = s.run("pilots", "show")
    assert rc == 2 and "samctl pilots show: no argument: name ID" in err, err
    rc, out, err = s.run("frobnicate")
    assert rc == 2 and "unknown command 'frobnicate'" in err and "grants" in err, err
    rc, out, err = samctl("--bogus", "pilots")
    assert rc == 2 and "unknown option '--bogus'" in err, err
    # an unknown milestone kind: the service's refusal, then the kinds it knows
    rc, out, err = s.run("milestone", "reach", "halden", "forankret", "--date", "2019-01-01")
    assert rc == 1 and "unknown milestone kind 'forankret'" in err, err
    assert "the milestone kinds are: defined_challenge, anchored, knowledge_base" in err, err
    # a bad date in an event: the service's refusal as it is, naming the format
    rc, out, err = s.run("milestone", "reach", "halden", "anchored", "--date", "19.09.2018")
    assert rc == 1 and "date" in err and "YYYY-MM-DD" in err, err
    assert "the milestone kinds are" not in err, err


def _timed(*args):
    t0 = time.monotonic()
    rc, out, err = samctl(*args)
    return rc, out, err, time.monotonic() - t0


def test_no_answer_is_reported_after_the_timeout_given():
    limit_ms = 3000
    slack = 0.6 * samtest.SLOW  # starting the process; twice the timeout would be 3 s more
    dead = f"tcp://127.0.0.1:{samtest.free_port()}"  # nothing listens there
    for args in (["pilots"], ["grants", "add-scheme", "s", "--name", "S", "--year", "2019"],
                 ["notify", "inbox", "ops"]):
        rc, out, err, took = _timed(*args, "--broker", dead, "--timeout-ms", str(limit_ms))
        assert rc == 1 and f"within {limit_ms} ms" in err, (args, rc, err)
        assert limit_ms / 1000 - 0.05 <= took <= limit_ms / 1000 + slack, (args, took)
    rc, out, err, took = _timed("import", FIXTURE, "--broker", dead, "--timeout-ms",
                                str(limit_ms))
    assert rc == 1 and f"no answer within {limit_ms} ms" in err, err
    assert limit_ms / 1000 - 0.05 <= took <= limit_ms / 1000 + slack, took
    # a broker that runs but has no worker for the service (it would answer 503 only after
    # its own --request-timeout-ms, 5 s)
    broker, ep = samtest.broker()
    rc, out, err, took = _timed("grants", "awards", "--broker", ep, "--timeout-ms",
                                str(limit_ms))
    assert rc == 1 and f"no reply from 'grants' within {limit_ms} ms" in err, err
    assert limit_ms / 1000 - 0.05 <= took <= limit_ms / 1000 + slack, took
    broker.stop()


# Amounts as people paste them (samctl_parse_nok), and what each is in øre.
GOOD_AMOUNTS = [
    ("200000", 20000000), ("200 000", 20000000), ("200\u00a0000", 20000000),
    ("200\u202f000", 20000000), ("200 000,50", 20000050), ("200000.50", 20000050),
    ("kr 200 000", 20000000), ("NOK 200 000", 20000000), ("200 000 kr", 20000000),
    ("Kr. 1 500,5", 150050), ("200 000,-", 20000000), ("1 234 567,89", 123456789),
]
BAD_AMOUNTS = [
    ("1 5 0", "do not group thousands"), ("2,5,0", "more than one decimal mark"),
    ("abc", "no digits"), ("-5", "negative"), ("1,234", "more than 2 decimals"),
    ("12 34", "do not group thousands"), ("1234 567", "do not group thousands"),
    ("", "no digits"), ("kr", "no digits"), ("5 euro", "more than digits"),
    ("99999999999999999999", "too large"),
]


def test_amounts_as_people_paste_them():
    s = Stack("samctl-amounts")
    for i, (text, ore) in enumerate(GOOD_AMOUNTS):
        rc, out, err = s.run("grants", "add-scheme", f"a-{i}", "--name", "A", "--year", "2019",
                             "--frame", text)
        assert rc == 0, (text, err)
    frames = {x["id"]: x["frame_ore"] for x in s.json("grants", "schemes")["items"]}
    for i, (text, ore) in enumerate(GOOD_AMOUNTS):
        assert frames[f"a-{i}"] == ore, (text, frames[f"a-{i}"], ore)
    for text, why in BAD_AMOUNTS:
        for opt in (["grants", "add-award", "x", "--amount"],
                    ["grants", "disburse", "x", "d", "--amount"]):
            rc, out, err = s.run(*opt, text)
            assert rc == 2 and not out, (text, rc, out)
            # one line: the command, the option, the value, why, and what would be right
            assert err.count("\n") == 1 and "usage:" not in err, (text, err)
            assert err.startswith(f"samctl {opt[0]} {opt[1]}: --amount: '{text}' is not an amount "
                                  "in NOK ("), (text, err)
            assert why in err and 'write NOK as e.g. 200000, "200 000"' in err, (text, err)
    rc, out, err = s.run("grants", "add-award", "x", "--funder", "imdi-ost=1 5 0")
    assert rc == 2 and err.count("\n") == 1 and "AGENCY=NOK" in err and "group" in err, err


def _csv(s, *args):
    """samctl ARGS --csv as bytes: checked for BOM and CRLF, read with csv as a spreadsheet
    would; the rows as dicts."""
    p = subprocess.run([SAMCTL, *args, "--csv", "--broker", s.ep], capture_output=True,
                       timeout=60 * samtest.SLOW)
    assert p.returncode == 0, (args, p.stderr)
    raw = p.stdout
    assert raw.startswith(b"\xef\xbb\xbf"), (args, raw[:20])
    body = raw[3:].decode("utf-8")
    assert body.endswith("\r\n") and "\n" not in body.replace("\r\n", ""), (args, body)
    return list(csv.DictReader(io.StringIO(body, newline=""), delimiter=";"))


def _nok(cell):
    """A CSV amount in NOK with decimal comma, as øre."""
    kr, _, ore = cell.partition(",")
    assert re.fullmatch(r"-?\d+", kr) and re.fullmatch(r"(\d\d)?", ore), cell
    sign = -1 if kr.startswith("-") else 1
    return sign * (abs(int(kr)) * 100 + (int(ore) if ore else 0))


def _same(row, rec, what):
    for k, v in rec.items():
        if k.endswith("_ore") and isinstance(v, int):
            assert _nok(row[k[:-4] + "_nok"]) == v, (what, k, row, rec)
        elif isinstance(v, bool):
            assert row[k] == ("true" if v else "false"), (what, k, row[k], v)
        elif isinstance(v, (str, int)):
            assert row[k] == str(v), (what, k, row[k], v)


def test_csv_reads_back_as_the_json_says():
    s = Stack("samctl-csv")
    for args in (["agencies"], ["pilots"], ["kinds"], ["meetings"], ["grants", "awards"],
                 ["grants", "schemes"], ["milestone", "history", "halden"],
                 ["grants", "ledger", "accounts"], ["invitations"]):
        rows = _csv(s, *args)
        items = s.json(*args)["items"]
        assert len(rows) == len(items) > 0, (args, rows, items)
        for row, rec in zip(rows, items):
            _same(row, rec, args)
    # Norwegian text survives: æ, ø, å
    names = [r["name"] for r in _csv(s, "municipalities")]
    assert any(set(n) & set("æøåÆØÅ") for n in names), names
    # the board: a row per pilot, a column per milestone kind holding the day it was reached
    board = s.json("board", "--as-of", "2019-11-11")
    rows = _csv(s, "board", "--as-of", "2019-11-11")
    assert [r["pilot"] for r in rows] == [r["pilot"] for r in board["rows"]], rows
    for row, rec in zip(rows, board["rows"]):
        _same(row, rec, "board")
        for cell in rec["cells"]:
            assert row[cell["kind"]] == cell["date"], (row, cell)
    # the overview: its groups, amounts in NOK with a decimal comma
    o = s.json("grants", "overview", "--year", "2019")
    rows = _csv(s, "grants", "overview", "--year", "2019")
    assert len(rows) == len(o["groups"]) > 0, rows
    for row, rec in zip(rows, o["groups"]):
        _same(row, rec, "overview")
    # an empty list: the byte order mark and nothing else
    p = subprocess.run([SAMCTL, "people", "--csv", "--broker", s.ep], capture_output=True,
                       timeout=60 * samtest.SLOW)
    assert p.returncode == 0 and p.stdout == b"\xef\xbb\xbf", p


def _width(line):
    """Display columns, as a terminal counts them: wide East Asian characters two, combining
    marks and zero-width characters none."""
    w = 0
    for ch in line:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        w += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return w


def test_the_board_fits_120_columns():
    s = Stack("samctl-board")
    # a long challenge and a long pilot id: cut with "…", the columns stay where they are
    for args in ([], ["--as-of", "2019-11-11"], ["--as-of", "2018-09-30"]):
        rc, out, err = s.run("board", *args)
        assert rc == 0, err
        lines = out.splitlines()
        assert lines[0].startswith("Statustavle per ") and lines[-1] == "(4)", out
        for line in lines:
            assert _width(line) <= 120, (len(line), line)
        rows = [l for l in lines[4:-1] if not l.startswith(" ")]
        # every row's phase starts in the header's "Fase" column, whatever came before
        at = lines[2].index("Fase")
        assert all(r[at - 1] == " " for r in rows), (at, rows)
        assert any("…" in l for l in lines), ("a long challenge is cut", out)
    # more kinds than fit at full width: the dates are cut, the board still fits
    for k in range(3):
        rc, out, err = s.run("kinds", "define", f"extra-{k}", "--label", f"Ekstra steg {k}",
                             "--order", str(8 + k))
        assert rc == 0, err
    rc, out, err = s.run("board")
    assert rc == 0 and all(_width(l) <= 120 for l in out.splitlines()), out


def test_a_dead_broker_is_reported_once_after_the_timeout():
    """Every read and write of samctl gives up after --timeout-ms, its resend included."""
    dead = f"tcp://127.0.0.1:{samtest.free_port()}"
    for args in (["board"], ["grants", "overview", "--year", "2019"], ["kinds"],
                 ["grants", "add-award", "x", "--amount", "200 000"], ["barriers"]):
        rc, out, err, took = _timed(*args, "--broker", dead, "--timeout-ms", "1000")
        assert rc == 1 and not out and err.count("\n") == 1, (args, rc, err)
        assert "within 1000 ms" in err, (args, err)
        assert took < 3.0 * samtest.SLOW, (args, took)  # twice the timeout would be a bug


if __name__ == "__main__":
    samtest.main()
