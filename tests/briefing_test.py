"""The steering group's briefing as the pilot leader prepares and reads it, on the Østfold
fixture, through samctl and the real services:

- the schedule comes from the programme in the registry (every 6 months from 27 August
  2018): on 27 February 2020 the briefing of 27 August 2019 – 26 February 2020 is due;
- due on a day with no subscriber it is composed and held, then delivered once when the
  first subscription comes, and not again after a restart; `notify briefings` lists it;
  `notify briefing resend` sends it again;
- the preview of a past day shows the state as of that day: a barrier closed since is
  still open in it, and changes after the day are not there;
- Norwegian with names, not ids; English with --lang en; the HTML page parsed, the PDF
  (weasyprint) turned back into text with pdftotext.
"""
import datetime
import html.parser
import json
import os
import shutil
import subprocess

import samtest

FIXTURE = os.path.join(samtest.SRC, "deploy", "examples", "ostfold-2019.json")
SLOW = samtest.SLOW
NBSP = "\u00a0"
# 27 February 2020, 09:00 in Oslo: the briefing due that day (the programme's third)
DUE_MS = int(datetime.datetime(2020, 2, 27, 8, 0, tzinfo=datetime.timezone.utc).timestamp()
             * 1000)


def samctl(ep, *args, check=True):
    r = subprocess.run([os.path.join(samtest.BIN, "samctl"), "--broker", ep, "--insecure",
                        "--timeout-ms", str(int(20000 * SLOW))] + list(args),
                       capture_output=True, timeout=60 * SLOW)
    out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
    if check:
        assert r.returncode == 0, (args, r.returncode, out, err)
    return r.returncode, out, err


class Text(html.parser.HTMLParser):
    """What a reader sees of a page: its text, the tables' header cells, the lang."""

    def __init__(self):
        super().__init__()
        self.text, self.th, self.lang, self.viewport, self._in = [], [], None, False, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang")
        if tag == "meta" and a.get("name") == "viewport":
            self.viewport = True
        self._in.append(tag)

    def handle_endtag(self, tag):
        while self._in and self._in.pop() != tag:
            pass

    def handle_data(self, data):
        if self._in and self._in[-1] in ("style", "title"):
            return
        self.text.append(data)
        if self._in and self._in[-1] == "th":
            self.th.append(data.strip())


def page(text_html):
    p = Text()
    p.feed(text_html)
    p.close()
    return p


def briefings(ep):
    return json.loads(samctl(ep, "--json", "notify", "briefings")[1])["items"]


def inbox(ep, sid):
    return json.loads(samctl(ep, "--json", "notify", "inbox", sid)[1])["items"]


def test_briefing_life_cycle_on_the_fixture():
    assert os.path.exists(FIXTURE), f"the fixture is missing: {FIXTURE}"
    data = samtest.scratch("briefing")
    _, ep = samtest.broker()
    for name in ("registry", "status", "grants"):
        samtest.service(name, ep, os.path.join(data, name))
    samctl(ep, "import", FIXTURE)
    # a barrier raised in the autumn and changed in January: open on 1 December, not after
    samctl(ep, "barrier", "register", "b-bostotte", "--title", "Barnetrygd teller i bostøtten",
           "--concerns", "rule", "--pilot", "halden", "--date", "2019-10-01")
    samctl(ep, "barrier", "move", "b-bostotte", "raised_regionally", "--date", "2019-11-05")
    samctl(ep, "barrier", "move", "b-bostotte", "changed", "--date", "2020-01-15")
    args = ["--follow", "registry,status,grants", "--schedule-interval-ms", "300",
            "--call-timeout-ms", str(int(5000 * SLOW)), "--reminder-days", "0",
            "--now", str(DUE_MS)]
    notify = samtest.service("notify", ep, os.path.join(data, "notify"), *args)

    # due today, nobody subscribes yet: composed and held, not sent to nobody
    samtest.wait_for(lambda: briefings(ep), 20, "the briefing composed")
    [b] = briefings(ep)
    assert b["id"] == "briefing-2020-02-27" and b["state"] == "held", b
    assert (b["period_from"], b["period_to"]) == ("2019-08-27", "2020-02-26"), b
    assert b["deliveries"] == 0 and b["notes"] == 0, b
    rc, out, _ = samctl(ep, "notify", "briefings")
    assert "briefing-2020-02-27" in out and "venter" in out and out.rstrip().endswith("(1)"), out

    # the first subscription takes it, once
    samctl(ep, "notify", "subscribe", "styringsgruppen", "--inbox", "--type",
           "no.samordna.notify.briefing.issued")
    samtest.wait_for(lambda: inbox(ep, "styringsgruppen"), 20, "the held briefing delivered")
    samtest.wait_for(lambda: briefings(ep)[0]["state"] == "sent", 10, "the briefing sent")
    [item] = inbox(ep, "styringsgruppen")
    assert item["id"] == "briefing-2020-02-27" and item["source"] == "fmov", item
    text = item["text"]
    assert text.startswith("Orientering til styringsgruppen — Velferdspiloten Østfold"), text
    assert ("Forfaller 27. februar 2020. Perioden 27. august 2019 – 26. februar 2020; "
            "tilstanden per 26. februar 2020.") in text, text
    assert "   Indre Østfold    Operativ (6 av 7 milepæler), 0 åpne hindre" in text, text
    assert "   Fredrikstad      Forankret (2 av 7 milepæler)" in text, text
    assert "Halden nådde Kunnskapsgrunnlag" in text and "Verksted i Indre Østfold" in text, text
    assert "Høgskolen i Østfold" in text, text  # names, not ids
    assert f"1{NBSP}500{NBSP}000{NBSP}kr" in text, text  # 2019 in all
    assert "hiof" not in text and "raised_" not in text and "knowledge_base" not in text, text
    # changed on 15 January: not open on 26 February
    assert "Åpne hindre per 26. februar 2020, etter nivå\n   Ingen." in text, text
    assert b["deliveries"] == 0  # the list read before
    [b] = briefings(ep)
    assert b["state"] == "sent" and b["deliveries"] == 1 and b["sent"], b

    # sent once: more checks and a restart send nothing again
    notify.stop()
    notify = samtest.service("notify", ep, os.path.join(data, "notify"), *args)
    samtest.wait_for(lambda: briefings(ep), 10, "notify back")
    import time
    time.sleep(1.5 * SLOW)
    assert len(inbox(ep, "styringsgruppen")) == 1

    # resend: to every subscription as it is now, under a new event id
    samctl(ep, "notify", "subscribe", "styringsgruppen-2", "--inbox", "--type",
           "no.samordna.notify.briefing.issued")
    samctl(ep, "notify", "briefing", "resend", "briefing-2020-02-27", "--reason",
           "ny etatsleder i styringsgruppen")
    samtest.wait_for(lambda: len(inbox(ep, "styringsgruppen")) == 2, 20, "the resend")
    assert [i["id"] for i in inbox(ep, "styringsgruppen")] == [
        "briefing-2020-02-27", "briefing-2020-02-27-resend-1"]
    assert [i["id"] for i in inbox(ep, "styringsgruppen-2")] == ["briefing-2020-02-27-resend-1"]
    [b] = briefings(ep)
    assert b["resends"] == 1 and b["deliveries"] == 3, b
    rc, out, err = samctl(ep, "notify", "briefing", "resend", "briefing-2019-01-01", check=False)
    assert rc == 1 and "404" in err and "no briefing 'briefing-2019-01-01'" in err, err

    # the preview of a past day: as of that day
    rc, out, _ = samctl(ep, "notify", "briefing", "--preview", "--date", "2019-12-01")
    assert "Perioden 27. august 2019 – 1. desember 2019; tilstanden per 1. desember 2019." in out
    assert "Løftet regionalt (1)" in out and "«Barnetrygd teller i bostøtten»" in out, out
    assert "meldt av Fylkesmannen i Oslo og Viken" in out, out
    # what changed later (15 January) is not in it
    assert "15. januar 2020" not in out, out
    rc, later, _ = samctl(ep, "notify", "briefing", "--preview", "--date", "2020-01-20")
    assert "15. januar 2020" in later and "Hinder i Halden «Barnetrygd teller i bostøtten»: " \
        "endret" in later, later
    assert "Løftet regionalt (1)" not in later, later
    rc, en, _ = samctl(ep, "--lang", "en", "notify", "briefing", "--preview", "--date",
                       "2019-12-01")
    assert en.startswith("Briefing of the steering group — Velferdspiloten Østfold"), en
    assert "Raised regionally (1)" in en and "NOK 1,500,000" in en and "Orientering" not in en

    # the page to print or read on a phone: HTML, and a PDF of it
    rc, out, _ = samctl(ep, "notify", "briefing", "show", "briefing-2020-02-27", "--format",
                        "html")
    p = page(out)
    seen = " ".join(" ".join(p.text).split()).replace(NBSP, " ")
    assert p.lang == "nb" and p.viewport, (p.lang, p.viewport)
    assert "Statustavle per 26. februar 2020" in seen, seen
    assert {"Kommune", "Kunnskapsgrunnlag", "Operativ", "Fase", "Halden", "I alt"} <= set(p.th), \
        p.th
    assert "1 500 000 kr" in seen and "Høgskolen i Østfold" in seen, seen
    pdf = os.path.join(data, "orientering.pdf")
    assert shutil.which("weasyprint") and shutil.which("pdftotext"), \
        "weasyprint and pdftotext make and read the PDF: tools/deps.sh installs them"
    samctl(ep, "notify", "briefing", "show", "briefing-2020-02-27", "--format", "pdf", "--out",
           pdf)
    with open(pdf, "rb") as f:
        assert f.read(5) == b"%PDF-"
    txt = subprocess.run(["pdftotext", "-layout", pdf, "-"], capture_output=True, text=True,
                         check=True, timeout=60 * SLOW).stdout.replace(NBSP, " ")
    assert "Orientering til styringsgruppen" in txt and "Velferdspiloten Østfold" in txt, txt
    assert "1 500 000 kr" in txt and "Kunnskapsgrunnlag" in txt, txt
    rc, out, err = samctl(ep, "notify", "briefing", "--preview", "--format", "doc", check=False)
    assert rc == 2 and "--format is text, html or pdf, not 'doc'" in err, err
    assert notify.stop() == 0


def test_notify_started_before_the_import_sends_the_briefing_with_the_data():
    """notify up on the due day before anything is imported: nothing is issued then (no
    programme, no data); after the import and a subscription the briefing goes out once,
    with the imported facts."""
    data = samtest.scratch("briefing-early")
    _, ep = samtest.broker()
    for name in ("registry", "status", "grants"):
        samtest.service(name, ep, os.path.join(data, name))
    notify = samtest.service("notify", ep, os.path.join(data, "notify"), "--follow",
                             "registry,status,grants", "--schedule-interval-ms", "300",
                             "--call-timeout-ms", str(int(5000 * SLOW)), "--reminder-days", "0",
                             "--now", str(DUE_MS))
    import time
    time.sleep(1.5 * SLOW)
    assert briefings(ep) == []  # no programme known: no schedule, nothing composed
    samctl(ep, "import", FIXTURE)
    samtest.wait_for(lambda: briefings(ep), 20, "the briefing, once the programme is known")
    samctl(ep, "notify", "subscribe", "sg", "--inbox", "--type",
           "no.samordna.notify.briefing.issued")
    samtest.wait_for(lambda: inbox(ep, "sg"), 20, "the briefing delivered")
    time.sleep(1.0 * SLOW)
    [item] = inbox(ep, "sg")
    assert f"1{NBSP}500{NBSP}000{NBSP}kr" in item["text"] and "Indre Østfold" in item["text"]
    assert "Halden nådde Operativ" in item["text"], item["text"]
    assert notify.stop() == 0


if __name__ == "__main__":
    samtest.main()
