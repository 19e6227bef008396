"""The gateway's web status board at /, over the real suite: broker, registry, status, grants
and notify with the Østfold fixture imported, and samordna-gateway in front.

Without a browser, the HTML is read with Python's html.parser: the grid as of a day (Halden
reaches Operativ as of 2019-11-30, Fredrikstad stops at Forankret, nobody has a milestone as
of 2019-10-10), names not ids, the grants of 2019 in kroner with no-break spaces (NOK 1 500 000
in all, DOMAIN.md), a barrier by its level as of the day with its hostile title escaped, the
headers (Content-Security-Policy), a bad date refused with a log line, and a service down: the
parts that are there and the name of the one missing (200), or 503 with Retry-After when the
grid itself is missing.

In headless Chromium (tests/tools/board_browser.js, playwright-core): what a person sees, the
keyboard path to the date field and the grid after choosing a day, the page with JavaScript
disabled, and 200 % zoom without sideways overflow. Screenshots are kept under the build's
testdata/gateway_board-artifacts/.
"""
import datetime
import html.parser
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import samtest

FIXTURE = os.path.join(samtest.SRC, "deploy", "examples", "ostfold-2019.json")
SAMCTL = os.path.join(samtest.BIN, "samctl")
TOOLS = os.path.join(samtest.SRC, "tests", "tools")
NBSP = "\u00a0"
KINDS = ["Definert utfordring", "Forankret", "Kunnskapsgrunnlag", "Definert behov", "Organisert",
         "Operativ", "Bærekraftige strukturer"]
PILOTS = ["Fredrikstad", "Halden", "Indre Østfold", "Sarpsborg"]  # by their municipalities
HOSTILE = 'Tildelingsbrev <script>alert("x")</script> & co'


def kr(n):
    """A whole number of kroner as the board writes it: "1 500 000 kr", no-break spaces."""
    return f"{n:,}".replace(",", NBSP) + NBSP + "kr"


def samctl(ep, *args):
    p = subprocess.run([SAMCTL, "--broker", ep, *args], capture_output=True, text=True,
                       timeout=120 * samtest.SLOW)
    assert p.returncode == 0, f"samctl {' '.join(args)}: {p.stderr}"
    return p.stdout


class Suite(samtest.Closing):
    """The four services, the fixture and one barrier, and the gateway before them."""

    def __init__(self, name, notify_args=()):
        self.data = samtest.scratch(name)
        self.broker, self.ep = samtest.broker()
        self.svc = {s: samtest.service(s, self.ep, self.data)
                    for s in ("registry", "status", "grants")}
        samctl(self.ep, "import", FIXTURE)
        self.svc["notify"] = samtest.service("notify", self.ep, self.data, *notify_args)
        samctl(self.ep, "barrier", "register", "b-brev", "--title", HOSTILE, "--concerns",
               "allocation_letter", "--pilot", "halden", "--raised-by", "fmov", "--date",
               "2019-09-02")
        samctl(self.ep, "barrier", "move", "b-brev", "raised_regionally", "--by", "fmov",
               "--date", "2019-10-01")
        samctl(self.ep, "barrier", "move", "b-brev", "raised_nationally", "--by", "fmov",
               "--date", "2019-12-15")
        self.port = samtest.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.gateway = samtest.Proc("gateway", [
            "samordna-gateway", "--broker", self.ep, "--listen", f"127.0.0.1:{self.port}",
            "--insecure", "--request-timeout-ms", "3000"])
        # status learns pilots and names from the registry's outbox: wait until it has all four
        samtest.wait_for(lambda: self._up(), 20, f"the board at {self.url}/ with four pilots")

    def _up(self):
        try:
            status, _, text = get(self.url + "/?as_of=2019-11-30")
            return status == 200 and sorted(Page(text).grid()) == PILOTS
        except (OSError, urllib.error.URLError, KeyError, ValueError):
            return False

    def close(self):
        pass


def get(url):
    """(status, headers, text) of a GET, whatever the status."""
    try:
        with urllib.request.urlopen(url, timeout=30 * samtest.SLOW) as r:
            return r.status, r.headers, r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode("utf-8")


def _squeeze(text):
    """Runs of ASCII white space as one space (no-break spaces are kept: the board writes
    them on purpose)."""
    return re.sub(r"[ \t\r\n]+", " ", text).strip()


class Page(html.parser.HTMLParser):
    """The parts of the page the tests read: every table by id or class (rows of cell texts,
    each cell with its tag and class), headings, and the elements seen."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tables, self.headings, self.tags, self.scripts = {}, [], [], []
        self._table = self._row = self._cell = self._heading = None
        self.lang = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "html":
            self.lang = a.get("lang")
        if tag == "script":
            self.scripts.append(a.get("src"))
        if tag == "table":
            self._table = []
            self.tables.setdefault(a.get("id") or a.get("class"), []).append(self._table)
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = {"tag": tag, "class": a.get("class", ""), "scope": a.get("scope"),
                          "text": ""}
            self._row.append(self._cell)
        elif tag in ("h1", "h2", "h3"):
            self._heading = ""

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag == "tr":
            self._row = None
        elif tag in ("td", "th"):
            if self._cell:
                self._cell["text"] = _squeeze(self._cell["text"])
            self._cell = None
        elif tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append(_squeeze(self._heading))
            self._heading = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data
        if self._heading is not None:
            self._heading += data

    def grid(self):
        """{municipality: {column heading: cell}} of the milestone grid."""
        [rows] = self.tables["tavle"]
        heads = [c["text"] for c in rows[0]]
        assert all(c["tag"] == "th" and c["scope"] == "col" for c in rows[0]), rows[0]
        out = {}
        for r in rows[1:]:
            assert r[0]["tag"] == "th" and r[0]["scope"] == "row", r
            out[r[0]["text"]] = dict(zip(heads, r))
        return out

    def table_rows(self, key):
        """{row heading: [cell texts]} of every table under key."""
        out = {}
        for t in self.tables.get(key, []):
            for r in t:
                if r and r[0]["scope"] == "row":
                    out[r[0]["text"]] = [c["text"] for c in r[1:]]
        return out


def reached(row):
    return [k for k in KINDS if row[k]["class"] == "naadd"]


# ---- the tests --------------------------------------------------------------------------------

def suite():
    """A fresh suite for each test (the harness stops every process after each)."""
    return Suite("gateway_board")


def test_the_grid_as_of_a_day_without_a_browser():
    s = suite()
    status, headers, text = get(s.url + "/?as_of=2019-11-30")
    assert status == 200, text[:500]
    assert headers["Content-Type"].startswith("text/html"), headers
    csp = headers["Content-Security-Policy"] or ""
    assert "default-src 'none'" in csp and "script-src 'self'" in csp, headers
    assert headers.get_all("Cache-Control") == ["no-store"], headers  # a live board
    page = Page(text)
    assert page.lang == "nb"
    grid = page.grid()
    assert sorted(grid) == PILOTS, grid.keys()
    assert reached(grid["Halden"]) == KINDS[:6], grid["Halden"]
    assert "11.11.2019" in grid["Halden"]["Operativ"]["text"], grid["Halden"]
    assert grid["Halden"]["Fase"]["text"] == "Operativ"
    assert reached(grid["Fredrikstad"]) == ["Definert utfordring", "Forankret"], grid["Fredrikstad"]
    assert grid["Fredrikstad"]["Fase"]["text"] == "Forankret"
    assert grid["Fredrikstad"]["Kunnskapsgrunnlag"]["text"].endswith("Ikke nådd")
    assert "Milepæler per 30.\u00a0november 2019" in page.headings, page.headings

    # a day before any milestone: the same rows, nothing reached
    status, _, text = get(s.url + "/?as_of=2019-10-10")
    assert status == 200
    early = Page(text).grid()
    assert sorted(early) == sorted(grid)
    assert all(reached(r) == [] and r["Fase"]["text"] == "Ikke startet" for r in early.values())

    # no day asked: today in the programme's zone, by the clock the suite runs on
    status, _, text = get(s.url + "/")
    assert status == 200
    assert f'name="as_of" required value="{samtest.today().isoformat()}"' in text, text[:1500]
    assert reached(Page(text).grid()["Halden"]) == KINDS[:6]


def test_meetings_barriers_grants_and_the_briefing():
    s = suite()
    status, _, text = get(s.url + "/?as_of=2019-11-30")
    assert status == 200
    page = Page(text)
    # grants of 2019 per recipient, names not ids, the fixture's figures (DOMAIN.md)
    grants = page.table_rows("tilskudd")
    assert grants["Halden"][0] == kr(200000), grants
    assert grants["Indre Østfold"][0] == kr(500000), grants
    assert grants["Høgskolen i Østfold"][0] == kr(400000), grants
    assert grants["Sum"][0] == kr(1500000), grants
    assert "hiof" not in grants and "indre-ostfold" not in grants
    assert "<svg class=\"stolper\"" in text
    # the barrier: raised regionally as of 2019-11-30 (nationally only on 2019-12-15), title
    # shown as text, never as markup
    h = page.headings
    assert "Løftet regionalt (1)" in h and "Løftet nasjonalt (0)" in h, h
    barriers = page.table_rows("barrierer")
    assert list(barriers) == [HOSTILE], barriers
    assert barriers[HOSTILE][:3] == ["Halden", "Fylkesmannen i Oslo og Viken", "Tildelingsbrev"]
    assert page.scripts == ["/board.js"], page.scripts
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co" in text
    status, _, later = get(s.url + "/?as_of=2019-12-31")
    h = Page(later).headings
    assert "Løftet regionalt (0)" in h and "Løftet nasjonalt (1)" in h, h
    # meetings per pilot, in Norwegian, up to the day
    assert "Møter fram til 30.\u00a0november 2019" in page.headings
    assert "Forankringsmøte</strong>: Forankringsmøte / oppstartmøte Halden" in text
    assert "Felles for programmet" in page.headings and "Moss/Rygge" in page.headings
    # notify runs on today's clock: the programme's due dates are all before its store was
    # opened, so none was issued, and the board says so instead of composing one per view
    assert "Orientering til styringsgruppen" in page.headings
    assert "Ingen orientering er utstedt ennå per 30.\u00a0november 2019." in text, text[-3000:]
    assert 'href="/briefing/' not in text
    # the style sheet and the script are served, under the same policy
    for asset, kind in (("/board.css", "text/css"), ("/board.js", "text/javascript"),
                        ("/board.svg", "image/svg+xml")):
        status, headers, body = get(s.url + asset)
        assert status == 200 and headers["Content-Type"].startswith(kind), (asset, headers)
        assert body.strip() and headers["Content-Security-Policy"], asset


# 27 February 2020, 09:00 in Oslo: a due date of the fixture's programme (its third briefing)
DUE_MS = int(datetime.datetime(2020, 2, 27, 8, 0, tzinfo=datetime.timezone.utc).timestamp()
             * 1000)


def briefings(ep):
    return json.loads(samctl(ep, "--json", "notify", "briefings"))["items"]


def test_the_latest_briefing_issued_and_its_page():
    """notify started on a due date issues that briefing: the board shows it from that day on
    (not the day before) with a link to its page, GET /briefing/{id}."""
    s = Suite("gateway_board_briefing", ("--follow", "registry,status,grants",
                                         "--schedule-interval-ms", "300", "--call-timeout-ms",
                                         str(int(5000 * samtest.SLOW)), "--now", str(DUE_MS)))
    samtest.wait_for(lambda: briefings(s.ep), 20 * samtest.SLOW, "the briefing issued")
    [b] = briefings(s.ep)
    assert b["id"] == "briefing-2020-02-27", b

    status, _, text = get(s.url + "/?as_of=2020-03-01")
    assert status == 200, text[:500]
    assert "ble utstedt 27.\u00a0februar 2020" in text, text[-3000:]
    assert "perioden 27.\u00a0august 2019 – 26.\u00a0februar 2020" in text, text[-3000:]
    assert 'href="/briefing/briefing-2020-02-27"' in text
    assert "Velferdspiloten" in text[text.index('<pre class="orientering">'):]
    status, _, text = get(s.url + "/?as_of=2020-02-26")  # the day before: not issued yet
    assert "Ingen orientering er utstedt ennå per 26.\u00a0februar 2020." in text, text[-3000:]

    status, headers, page = get(s.url + "/briefing/briefing-2020-02-27")
    assert status == 200 and headers["Content-Type"].startswith("text/html"), (status, page[:300])
    assert "script-src" not in headers["Content-Security-Policy"], headers
    assert "default-src 'none'" in headers["Content-Security-Policy"], headers
    assert "<html" in page and "27. februar 2020" in page.replace(NBSP, " "), page[:1000]
    for path, shown in (("/briefing/briefing-2019-01-01", "briefing-2019-01-01"),
                        ("/briefing/%3Cscript%3E", "&lt;script&gt;")):
        status, headers, page = get(s.url + path)
        assert status == 404 and headers["Content-Type"].startswith("text/html"), (path, status)
        assert shown in page and "<script>" not in page, page
        assert headers["Content-Security-Policy"], headers
    samtest.wait_for(lambda: "board.briefing_refused" in s.gateway.logtext(), 5,
                     "the refusal's log line")


def test_a_bad_day_is_refused():
    s = suite()
    status, headers, text = get(s.url + "/?as_of=30.11.2019")
    assert status == 400, text[:300]
    assert headers["Content-Type"].startswith("text/html")
    assert "as_of: &#39;30.11.2019&#39; er ikke en dato ÅÅÅÅ-MM-DD" in text, text
    status, _, text = get(s.url + "/?as_of=%3Cb%3E")
    assert status == 400 and "&lt;b&gt;" in text and "<b>" not in text
    samtest.wait_for(lambda: "board.refused" in s.gateway.logtext(), 5, "the refusal's log line")
    assert s.gateway.stop() == 0, s.gateway.logtext()[-2000:]


def test_in_chromium_keyboard_no_javascript_and_zoom():
    s = suite()
    node, chromium = shutil.which("node"), "/usr/bin/chromium"
    if not node or not os.path.exists(chromium):
        raise AssertionError("node and Debian's chromium are needed (tools/deps.sh)")
    if not os.path.isdir(os.path.join(samtest.SRC, "tests", "node_modules", "playwright-core")):
        raise AssertionError("tests/node_modules lacks playwright-core: run tools/deps.sh")
    out = os.path.join(samtest.TESTDATA, "gateway_board-artifacts")  # kept after the test
    r = subprocess.run([node, os.path.join(TOOLS, "board_browser.js"), s.url, out],
                       capture_output=True, text=True, timeout=180 * samtest.SLOW,
                       env=dict(os.environ, CHROMIUM=chromium))
    assert r.returncode == 0, r.stderr + r.stdout
    seen = json.loads(r.stdout)
    assert seen["status"] == 200 and seen["lang"] == "nb", seen
    grid = seen["grid"]
    assert grid["Halden"]["reached"] == KINDS[:6] and grid["Halden"]["Fase"] == "Operativ", grid
    assert "11.11.2019" in grid["Halden"]["Operativ"]
    assert grid["Fredrikstad"]["reached"] == KINDS[:2], grid["Fredrikstad"]
    assert grid["Fredrikstad"]["Fase"] == "Forankret"
    assert seen["sum"] == kr(1500000), seen["sum"]
    assert seen["barrierTitles"] == [HOSTILE], seen["barrierTitles"]
    assert seen["haldenMeetings"][0].startswith("19.09.2018 Forankringsmøte"), seen
    assert seen["consoleErrors"] == [], seen["consoleErrors"]
    # the keyboard: skip link first, the date field next, a day typed, the grid changed
    k = seen["keyboard"]
    assert k["skip"] == 1 and k["toDate"] == 1 and k["value"] == "2019-10-10", k
    assert all(r["reached"] == [] for r in seen["gridAfter"].values()), seen["gridAfter"]
    assert seen["urlAfter"].endswith("/?as_of=2019-10-10"), seen["urlAfter"]
    assert seen["statusAfter"] == "Viser tavla per 10.\u00a0oktober 2019.", seen["statusAfter"]
    assert seen["focusAfter"].startswith("<button"), seen["focusAfter"]
    # without JavaScript: the same grid, and the form works as a plain GET
    assert seen["gridNoJs"] == grid, seen["gridNoJs"]
    assert seen["keyboardNoJs"]["value"] == "2019-10-10"
    assert all(r["reached"] == [] for r in seen["gridNoJsAfter"].values())
    assert "as_of=2019-10-10" in seen["urlNoJsAfter"]
    # 200 %: nothing wider than the window, the form inside it, the grid whole
    z = seen["zoom"]
    assert z["scrollWidth"] <= z["innerWidth"] and z["formRight"] <= z["innerWidth"], z
    assert seen["gridZoom"] == grid
    for shot in ("board.png", "board-200.png", "board-nojs.png"):
        with open(os.path.join(out, shot), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", shot


def test_a_service_down_shows_the_rest():
    s = suite()
    s.svc["grants"].stop()
    status, headers, text = get(s.url + "/?as_of=2019-11-30")
    assert status == 200, text[:300]
    page = Page(text)
    assert "Noe mangler på tavla" in page.headings
    assert "Mangler tilskuddsoversikten (tilskuddstjenesten)" in text
    grid = page.grid()
    assert "Halden" in grid and reached(grid["Halden"]) == KINDS[:6], text
    assert "tilskudd" not in page.tables
    samtest.wait_for(lambda: "board.part_missing" in s.gateway.logtext(), 5, "a log line")

    s.svc["status"].stop()
    status, headers, text = get(s.url + "/?as_of=2019-11-30")
    assert status == 503, text[:300]
    assert headers["Retry-After"], headers
    page = Page(text)
    assert "Mangler milepælstavla (statustjenesten)" in text
    assert "tavle" not in page.tables
    assert "Barrierene kan ikke vises nå." in text
    # and the gateway stops cleanly (under the sanitizers: no leak of a page left behind)
    assert s.gateway.stop() == 0, s.gateway.logtext()[-2000:]


if __name__ == "__main__":
    samtest.main()
