"""Integration tests of samordna-notify: the real broker, a real upstream service with an outbox
(samordna-echo, whose events stand for any service's), the real notify, and receivers on
loopback (tests/notify_receivers.py).
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import samtest  # noqa: E402
from samtest import Client, publish  # noqa: E402
from samordna.v1 import envelope_pb2, events_pb2, grants_pb2, notify_pb2, registry_pb2, status_pb2  # noqa
import datetime  # noqa: E402
import email  # noqa: E402
import email.policy  # noqa: E402
from notify_receivers import SmtpRecorder, WebhookReceiver, verify  # noqa: E402

ECHO = "no.samordna.echo.recorded"
SLOW = samtest.SLOW  # sanitizer builds: upper bounds on waits are multiplied by this
FAST = ["--retry-schedule", "100ms,200ms,300ms", "--follow-wait-ms", "1000"]
INBOX = notify_pb2.NOTIFY_CHANNEL_INBOX
WEBHOOK = notify_pb2.NOTIFY_CHANNEL_WEBHOOK
EMAIL = notify_pb2.NOTIFY_CHANNEL_EMAIL


_n = [0]


def subscribe(c, sid, channel=INBOX, source="fmov", **fields):
    """Publishes a subscription. A webhook here is of the legacy form unless asked otherwise
    (data_base64, X-Samordna-Signature; what WebhookReceiver checks): the form of every
    subscription made before formats and schemes, which must keep working.
    tests/webhooks_test.py tests the form a new subscription gets by default."""
    if channel == WEBHOOK:
        fields.setdefault("format", notify_pb2.WEBHOOK_FORMAT_PROTOBUF)
        fields.setdefault("signature", notify_pb2.WEBHOOK_SIGNATURE_LEGACY)
    _n[0] += 1
    sub = notify_pb2.Subscription(id=sid, channel=channel, **fields)
    ev = samtest.event("no.samordna.notify.subscription.created",
                       notify_pb2.SubscriptionCreated(subscription=sub),
                       eid=f"sub-{sid}-{_n[0]}", source=source)
    return publish(c, "notify", ev)[0]


def unsubscribe(c, sid, source="fmov"):
    _n[0] += 1
    ev = samtest.event("no.samordna.notify.subscription.deleted",
                       notify_pb2.SubscriptionDeleted(id=sid), eid=f"unsub-{sid}-{_n[0]}",
                       source=source)
    return publish(c, "notify", ev)[0]


class Stack(samtest.Closing):
    """broker + echo (the followed service) + notify, in one scratch folder."""

    def __init__(self, name, *notify_args, echo=True):
        self.data = samtest.scratch(name)
        self.broker, self.ep = samtest.broker()
        self.echo = samtest.service("echo", self.ep, self.data) if echo else None
        self.notify_args = ["--follow", "echo"] + FAST + list(notify_args)
        self.notify = samtest.service("notify", self.ep, self.data, *self.notify_args)
        self.c = Client(self.ep)

    def restart_notify(self):
        self.notify = samtest.service("notify", self.ep, self.data, *self.notify_args)

    def close(self):
        self.c.close()


def inbox_read(c, sid, max=1000):
    rep, msg = c.call("notify", "notify.inbox.read",
                      notify_pb2.InboxReadRequest(subscription=sid, max=max),
                      notify_pb2.InboxReadReply)
    assert rep.status.code == 200, rep.status
    return list(msg.items)


def inbox_ack(c, sid, upto):
    rep, msg = c.call("notify", "notify.inbox.ack",
                      notify_pb2.InboxAckRequest(subscription=sid, upto=upto),
                      notify_pb2.InboxAckReply)
    assert rep.status.code == 200, rep.status
    return msg.acked


def wait_inbox(c, sid, count, timeout=20):
    items = []
    end = time.time() + timeout * SLOW
    while time.time() < end:
        items = inbox_read(c, sid)
        if len(items) >= count:
            return items
        time.sleep(0.05)
    raise AssertionError(f"inbox {sid}: {len(items)} of {count} within {timeout}s")


def drain_inbox(c, sid, count, timeout=30):
    """Reads and acknowledges the inbox page by page until `count` items came; returns them
    (and fails on more, after a short look for extras)."""
    got = []
    end = time.time() + timeout * SLOW
    while len(got) < count and time.time() < end:
        items = inbox_read(c, sid)
        if not items:
            time.sleep(0.05)
            continue
        got += items
        inbox_ack(c, sid, items[-1].qseq)
    assert len(got) >= count, f"inbox {sid}: {len(got)} of {count} within {timeout}s"
    time.sleep(0.2)
    got += inbox_read(c, sid)
    return got


def publish_many(c, service, events, window=300):
    """Pipelined publishes; every one must be acknowledged. One the broker could not hand to
    a worker (503, 504) is sent again: a publish is idempotent by (source, id)."""
    pending = {}
    tries = {}
    it = iter(events)
    done = False
    while pending or not done:
        while not done and len(pending) < window:
            try:
                ev = next(it)
            except StopIteration:
                done = True
                break
            rid = c.send(service, "events.publish", events_pb2.PublishRequest(event=ev))
            pending[rid] = ev
        if pending:
            rep = c.recv(30)
            ev = pending.pop(rep.id, None)
            if ev is not None and rep.status.code in (503, 504):
                tries[ev.id] = tries.get(ev.id, 0) + 1
                assert tries[ev.id] <= 5, rep.status
                time.sleep(0.2)
                pending[c.send(service, "events.publish", events_pb2.PublishRequest(event=ev))] = ev
                continue
            assert ev is None or rep.status.code == 200, rep.status


def sub_info(c, sid):
    rep, msg = c.call("notify", "notify.subscriptions.get",
                      notify_pb2.SubscriptionGetRequest(id=sid), notify_pb2.SubscriptionInfo)
    assert rep.status.code == 200, rep.status
    return msg


def secret_of(c, sid):
    rep, msg = c.call("notify", "notify.subscriptions.secret",
                      notify_pb2.SubscriptionSecretRequest(id=sid),
                      notify_pb2.SubscriptionSecretReply)
    assert rep.status.code == 200, rep.status
    return msg.secret


def wait_for(cond, timeout, what):
    samtest.wait_for(cond, timeout, what)


# ---- subscriptions ------------------------------------------------------------------------


def test_subscriptions_apply_at_once_and_bad_ones_are_refused():
    with Stack("notify-subs") as s:
        c = s.c
        assert subscribe(c, "halden-all", type="no.samordna.*").status.code == 200
        info = sub_info(c, "halden-all")
        assert info.subscription.agency == "fmov"
        assert info.state.state == notify_pb2.NOTIFY_SUB_STATE_ACTIVE
        rep, lst = c.call("notify", "notify.subscriptions.list",
                          notify_pb2.SubscriptionListRequest(), notify_pb2.SubscriptionListReply)
        assert [i.subscription.id for i in lst.subscriptions] == ["halden-all"]

        cases = [
            (dict(sid="Bad_Id"), "subscription.id"),
            (dict(sid="x", channel=0), "subscription.channel"),
            (dict(sid="x", type="no.samordna.*.x"), "subscription.type"),
            (dict(sid="x", type="no samordna"), "subscription.type"),
            (dict(sid="x", channel=WEBHOOK), "subscription.url"),
            (dict(sid="x", channel=WEBHOOK, url="ftp://example.org/x"), "subscription.url"),
            (dict(sid="x", channel=EMAIL, email="not-an-address"), "subscription.email"),
            (dict(sid="x", channel=INBOX, url="http://127.0.0.1:1/"), "subscription.url"),
            (dict(sid="x", source_filter="Not An Agency"), "subscription.source"),
            (dict(sid="x", description="d" * 1001), "subscription.description"),
            (dict(sid="halden-all"), "exists already"),
        ]
        for kw, words in cases:
            sid = kw.pop("sid")
            if "source_filter" in kw:
                kw["source"] = kw.pop("source_filter")
                sub = notify_pb2.Subscription(id=sid, channel=INBOX, **kw)
                ev = samtest.event("no.samordna.notify.subscription.created",
                                   notify_pb2.SubscriptionCreated(subscription=sub),
                                   eid=f"raw-{sid}-{words}")
                rep = publish(c, "notify", ev)[0]
            else:
                rep = subscribe(c, sid, **kw)
            assert rep.status.code in (400, 409), (kw, rep.status)
            assert words in rep.status.message, (words, rep.status.message)
        # undecodable payload, missing subscription
        rep = publish(c, "notify", samtest.event("no.samordna.notify.subscription.created",
                                                 b"\xff\xff\xff",
                                                 eid="garbage-1"))[0]
        assert rep.status.code == 400, rep.status
        rep = publish(c, "notify", samtest.event("no.samordna.notify.subscription.created", b"",
                                                 eid="empty-1"))[0]
        assert rep.status.code == 400, rep.status
        # unknown type of notify's
        rep = publish(c, "notify", samtest.event("no.samordna.notify.subscription.renamed", b"x",
                                                 eid="x-1"))[0]
        assert rep.status.code == 501, rep.status
        # nothing of the refused ones was stored
        rep, lst = c.call("notify", "notify.subscriptions.list",
                          notify_pb2.SubscriptionListRequest(), notify_pb2.SubscriptionListReply)
        assert [i.subscription.id for i in lst.subscriptions] == ["halden-all"]
        # delete: unknown, then the real one
        assert unsubscribe(c, "nobody").status.code == 404
        assert unsubscribe(c, "halden-all").status.code == 200
        rep, _ = c.call("notify", "notify.subscriptions.get", notify_pb2.SubscriptionGetRequest(
            id="halden-all"))
        assert rep.status.code == 404


def test_list_pages_and_filters():
    with Stack("notify-list") as s:
        c = s.c
        for i in range(7):
            assert subscribe(c, f"s{i}", source="fmov" if i % 2 else "ofk").status.code == 200
        seen, token = [], ""
        while True:
            rep, lst = c.call("notify", "notify.subscriptions.list",
                              notify_pb2.SubscriptionListRequest(page_size=3, page_token=token),
                              notify_pb2.SubscriptionListReply)
            seen += [i.subscription.id for i in lst.subscriptions]
            token = lst.next_page_token
            if not token:
                break
        assert seen == [f"s{i}" for i in range(7)]
        rep, lst = c.call("notify", "notify.subscriptions.list",
                          notify_pb2.SubscriptionListRequest(agency="ofk"),
                          notify_pb2.SubscriptionListReply)
        assert [i.subscription.id for i in lst.subscriptions] == ["s0", "s2", "s4", "s6"]


# ---- matching and the inbox ---------------------------------------------------------------


def test_matching_by_exact_type_prefix_source_and_subject():
    with Stack("notify-match") as s:
        c = s.c
        assert subscribe(c, "exact", type=ECHO).status.code == 200
        assert subscribe(c, "prefix", type="no.samordna.echo.*").status.code == 200
        assert subscribe(c, "other-prefix", type="no.samordna.grants.*").status.code == 200
        assert subscribe(c, "from-ofk", source="ofk").status.code == 200  # filter on source
        sub = notify_pb2.Subscription(id="ofk-only", channel=INBOX, source="ofk")
        assert publish(c, "notify", samtest.event("no.samordna.notify.subscription.created",
                                                  notify_pb2.SubscriptionCreated(subscription=sub),
                                                  eid="so")
                       )[0].status.code == 200
        assert subscribe(c, "halden", type=ECHO, subject="halden").status.code == 200
        assert subscribe(c, "everything").status.code == 200
        publish(c, "echo", samtest.event(ECHO, b"x", eid="e1", subject="halden"))
        publish(c, "echo", samtest.event(ECHO, b"x", eid="e2", source="ofk", subject="sarpsborg"))
        publish(c, "echo", samtest.event(ECHO, b"x", eid="e3"))
        want = {"exact": ["e1", "e2", "e3"], "prefix": ["e1", "e2", "e3"], "other-prefix": [],
                "from-ofk": ["e1", "e2", "e3"], "ofk-only": ["e2"], "halden": ["e1"],
                "everything": ["e1", "e2", "e3"]}
        wait_inbox(c, "everything", 3)
        for sid, ids in want.items():
            got = [i.event.id for i in inbox_read(c, sid)]
            assert got == ids, (sid, got, ids)
        items = inbox_read(c, "exact")
        assert items[0].service == "echo" and items[0].seq >= 1 and items[0].committed_ms > 0


def test_inbox_keeps_what_is_not_acknowledged():
    with Stack("notify-inbox") as s:
        c = s.c
        assert subscribe(c, "sys", type=ECHO).status.code == 200
        publish_many(c, "echo", (samtest.event(ECHO, b"x", eid=f"i{k}") for k in range(30)))
        items = wait_inbox(c, "sys", 30)
        assert [i.event.id for i in items] == [f"i{k}" for k in range(30)]
        # read again without ack: the same, in the same order
        assert [i.qseq for i in inbox_read(c, "sys")] == [i.qseq for i in items]
        assert inbox_ack(c, "sys", items[9].qseq) == 10
        assert inbox_ack(c, "sys", items[9].qseq) == 0  # idempotent
        rest = inbox_read(c, "sys", max=5)
        assert [i.event.id for i in rest] == [f"i{k}" for k in range(10, 15)]
        # the log shows each acknowledgement with its latency
        rep, log = c.call("notify", "notify.log", notify_pb2.LogRequest(subscription="sys"),
                          notify_pb2.LogReply)
        assert [e.attempt.outcome for e in log.entries] == ["acked"] * 10
        assert all(e.attempt.latency_us >= 0 for e in log.entries)
        # the log of an unknown subscription is 404, not an empty log; a deleted one's stays
        # readable by an admin (this insecure caller is one) until it is pruned
        rep, _ = c.call("notify", "notify.log", notify_pb2.LogRequest(subscription="zz"))
        assert rep.status.code == 404 and "unknown subscription 'zz'" in rep.status.message, rep
        # ack refusals
        rep, _ = c.call("notify", "notify.inbox.ack",
                        notify_pb2.InboxAckRequest(subscription="sys"))
        assert rep.status.code == 400 and "upto" in rep.status.message
        rep, _ = c.call("notify", "notify.inbox.read",
                        notify_pb2.InboxReadRequest(subscription="zz"))
        assert rep.status.code == 404
        rep, _ = c.call("notify", "notify.inbox.read", b"\xff\xff")
        assert rep.status.code == 400
        assert unsubscribe(c, "sys").status.code == 200
        rep, log = c.call("notify", "notify.log", notify_pb2.LogRequest(subscription="sys"),
                          notify_pb2.LogReply)
        assert rep.status.code == 200 and len(log.entries) == 10, rep.status


def test_inbox_read_waits_as_a_long_poll():
    with Stack("notify-longpoll") as s:
        c = s.c
        assert subscribe(c, "sys", type=ECHO).status.code == 200
        # an empty inbox with a wait: answered empty once the wait is over
        t0 = time.time()
        rep, msg = c.call("notify", "notify.inbox.read",
                          notify_pb2.InboxReadRequest(subscription="sys", wait_ms=400),
                          notify_pb2.InboxReadReply)
        took = time.time() - t0
        assert rep.status.code == 200 and list(msg.items) == [] and 0.35 <= took < 3 * SLOW, took
        # parked while an event is published: answered as soon as it is queued, and notify
        # answers other requests meanwhile
        other = Client(s.ep)
        t0 = time.time()
        rid = c.send("notify", "notify.inbox.read",
                     notify_pb2.InboxReadRequest(subscription="sys", wait_ms=10000))
        rep, _ = other.call("notify", "ping")
        assert rep.status.code == 200
        time.sleep(0.3)
        publish(other, "echo", samtest.event(ECHO, b"x", eid="lp1"))
        rep = c.recv(10)
        took = time.time() - t0
        assert rep.id == rid and rep.status.code == 200
        got = notify_pb2.InboxReadReply()
        got.ParseFromString(rep.body)
        assert [i.event.id for i in got.items] == ["lp1"] and took < 5 * SLOW, took
        # refusals still come at once
        rep, _ = c.call("notify", "notify.inbox.read",
                        notify_pb2.InboxReadRequest(subscription="nobody", wait_ms=10000),
                        timeout=2)
        assert rep.status.code == 404
        other.close()


def test_kill9_while_10000_events_flow_loses_none_and_keeps_order():
    s = Stack("notify-kill")
    c = s.c
    assert subscribe(c, "a", type=ECHO).status.code == 200
    assert subscribe(c, "b", type="no.samordna.*").status.code == 200
    recv = WebhookReceiver()
    assert subscribe(c, "c", channel=WEBHOOK, url=recv.url, type=ECHO).status.code == 200
    recv.secret = secret_of(c, "c")
    total = 10000
    killed = False

    def events():
        nonlocal killed
        for k in range(total):
            if k == 4000:
                s.notify.kill9()
                killed = True
            if k == 7000:
                s.restart_notify()
            yield samtest.event(ECHO, b"x", eid=f"k{k:05d}")

    publish_many(c, "echo", events())
    assert killed
    want = [f"k{k:05d}" for k in range(total)]
    for sid in ("a", "b"):
        ids, seqs, end = [], [], time.time() + 120 * SLOW
        while len(ids) < total and time.time() < end:
            items = inbox_read(c, sid, max=1000)
            if not items:
                time.sleep(0.05)
                continue
            ids += [i.event.id for i in items]
            seqs += [i.seq for i in items]
            inbox_ack(c, sid, items[-1].qseq)
        # none lost, none twice, and in the order of the service's outbox
        assert sorted(ids) == want, (sid, len(ids))
        assert seqs == sorted(seqs) and len(set(seqs)) == total, sid
    order = ids  # the outbox order, as the inboxes saw it
    # the webhook: every event, in the same order; a delivery cut off by the kill may come
    # twice (at least once), and the receiver drops the duplicate by id
    wait_for(lambda: len(set(recv.ids())) == total, 180, "every webhook delivery")
    first = list(dict.fromkeys(recv.ids()))
    assert first == order
    assert recv.handshakes >= 1
    s.close()
    recv.close()


def test_a_followed_service_that_is_down_is_caught_up_when_it_comes():
    with Stack("notify-down", echo=False) as s:
        c = s.c
        assert subscribe(c, "late", type=ECHO).status.code == 200
        time.sleep(1.5)
        echo = samtest.service("echo", s.ep, s.data)
        publish_many(c, "echo", (samtest.event(ECHO, b"x", eid=f"d{k}") for k in range(20)))
        items = wait_inbox(c, "late", 20)
        assert [i.event.id for i in items] == [f"d{k}" for k in range(20)]
        # stop it again: notify keeps going; events published after it comes back arrive
        echo.stop()
        time.sleep(1.0)
        samtest.service("echo", s.ep, s.data)
        publish(c, "echo", samtest.event(ECHO, b"x", eid="d20"))
        items = wait_inbox(c, "late", 21)
        assert items[-1].event.id == "d20"
        log = s.notify.logtext()
        assert log.count('follow.unavailable service="echo"') <= 3, log
        rep, cur = c.call("notify", "notify.cursors", b"", notify_pb2.CursorsReply)
        assert [(x.service, x.seq) for x in cur.cursors] == [("echo", 21)]


def test_a_subscription_gets_only_what_is_committed_after_it_however_far_behind_notify_is():
    """The rule is a position, not a moment: notify restarted behind 20 000 events is still
    catching up when the subscription is applied, and the subscription gets none of them."""
    with Stack("notify-after") as s:
        c = s.c
        s.notify.stop()
        publish_many(c, "echo", (samtest.event(ECHO, b"x", eid=f"old{k}") for k in range(20000)))
        s.restart_notify()  # its follower starts 20 000 events behind
        assert subscribe(c, "after", type=ECHO).status.code == 200
        rep, cur = c.call("notify", "notify.cursors", b"", notify_pb2.CursorsReply)
        behind = 20000 - sum(x.seq for x in cur.cursors if x.service == "echo")
        publish_many(c, "echo", (samtest.event(ECHO, b"x", eid=f"new{k}") for k in range(5)))
        items = wait_inbox(c, "after", 5)
        wait_for(lambda: sum(x.seq for x in c.call("notify", "notify.cursors", b"",
                                                    notify_pb2.CursorsReply)[1].cursors) == 20005,
                 60, "the follower to catch up")
        items = inbox_read(c, "after")
        assert [i.event.id for i in items] == [f"new{k}" for k in range(5)], \
            ([i.event.id for i in items][:10], behind)
        print(f"     (the follower was {behind} events behind when the subscription applied)")


def test_a_service_down_at_subscription_time_starts_the_subscription_by_time():
    """When notify cannot learn an outbox's head, the subscription starts there by time:
    events recorded before it are not delivered, events after are, and the log says so."""
    with Stack("notify-bytime") as s:
        c = s.c
        s.notify.stop()
        publish_many(c, "echo", (samtest.event(ECHO, b"x", eid=f"old{k}") for k in range(50)))
        s.echo.stop()
        s.restart_notify()  # behind by 50, and echo is down
        assert subscribe(c, "bytime", type=ECHO).status.code == 200
        samtest.service("echo", s.ep, s.data)
        publish_many(c, "echo", (samtest.event(ECHO, b"x", eid=f"new{k}") for k in range(3)))
        wait_for(lambda: sum(x.seq for x in c.call("notify", "notify.cursors", b"",
                                                    notify_pb2.CursorsReply)[1].cursors) == 53,
                 30, "the follower to catch up")
        items = wait_inbox(c, "bytime", 3)
        assert [i.event.id for i in items] == ["new0", "new1", "new2"]
        wait_for(lambda: 'subscription.started_by_time id="bytime" service="echo"'
                 in s.notify.logtext(), 10, "the log line")


def test_history_on_purpose_from_a_sequence_number_or_a_moment():
    """--from-seq and --since replay what the follower has passed, in order, then the
    subscription joins the follower: nothing missed, nothing twice."""
    with Stack("notify-history") as s:
        c = s.c
        publish_many(c, "echo", (samtest.event(ECHO, b"x", eid=f"h{k}") for k in range(1, 1201)))
        wait_for(lambda: [(x.service, x.seq) for x in c.call(
            "notify", "notify.cursors", b"", notify_pb2.CursorsReply)[1].cursors]
            == [("echo", 1200)], 30, "the follower to pass the history")
        rep, page = c.call("echo", "events.read", events_pb2.ReadRequest(after_seq=899, max=1),
                           events_pb2.ReadReply)
        since_ms = page.events[0].recorded_ms  # the moment event 900 was recorded
        hist = notify_pb2.HistoryFrom(service="echo", after_seq=1000)
        assert subscribe(c, "from-1000", type=ECHO, **{"from": [hist]}).status.code == 200
        assert subscribe(c, "since-900", type=ECHO, since=str(since_ms)).status.code == 200
        assert subscribe(c, "from-0", type=ECHO,
                         **{"from": [notify_pb2.HistoryFrom(service="echo")]}).status.code == 200
        publish_many(c, "echo", (samtest.event(ECHO, b"x", eid=f"h{k}") for k in range(1201, 1211)))
        want = lambda lo: [f"h{k}" for k in range(lo, 1211)]  # noqa: E731
        for sid, lo in (("from-1000", 1001), ("from-0", 1)):
            items = drain_inbox(c, sid, len(want(lo)))
            assert [i.event.id for i in items] == want(lo), (sid, [i.event.id for i in items][:5])
            assert [i.seq for i in items] == sorted(i.seq for i in items)
        items = drain_inbox(c, "since-900", 311)
        ids = [i.event.id for i in items]
        # a moment, not a position: the events of 900's batch recorded before it come too
        assert ids[ids.index("h900"):] == want(900) and len(ids) == len(set(ids)), ids[:5]
        assert all(i.committed_ms >= since_ms for i in items)
        assert all(i.committed_ms == since_ms for i in items[:ids.index("h900")])
        wait_for(lambda: 'replay.done subscription="from-0" service="echo"'
                 in s.notify.logtext(), 10, "the replay to finish")
        bad = subscribe(c, "from-nowhere", type=ECHO,
                        **{"from": [notify_pb2.HistoryFrom(service="nowhere", after_seq=1)]})
        assert bad.status.code == 400 and "from[0].service" in bad.status.message, bad.status
        bad = subscribe(c, "since-bad", type=ECHO, since="yesterday")
        assert bad.status.code == 400 and "since" in bad.status.message, bad.status


def test_a_replay_survives_a_restart_of_notify():
    with Stack("notify-replay-restart") as s:
        c = s.c
        publish_many(c, "echo", (samtest.event(ECHO, b"x", eid=f"r{k}") for k in range(1, 3001)))
        wait_for(lambda: [x.seq for x in c.call("notify", "notify.cursors", b"",
                                                 notify_pb2.CursorsReply)[1].cursors] == [3000],
                 30, "the follower to pass the history")
        assert subscribe(c, "replayed", type=ECHO,
                         **{"from": [notify_pb2.HistoryFrom(service="echo")]}).status.code == 200
        s.notify.kill9()  # somewhere in the replay, or after it
        s.restart_notify()
        publish_many(c, "echo", (samtest.event(ECHO, b"x", eid=f"r{k}") for k in range(3001, 3006)))
        ids = [i.event.id for i in drain_inbox(c, "replayed", 3005, timeout=60)]
        assert ids == [f"r{k}" for k in range(1, 3006)], (len(ids), ids[:3])


# ---- webhooks -----------------------------------------------------------------------------


def webhook_stack(name, *extra):
    s = Stack(name, *extra)
    recv = WebhookReceiver()
    assert subscribe(s.c, "hook", channel=WEBHOOK, url=recv.url, type=ECHO).status.code == 200
    recv.secret = secret_of(s.c, "hook")
    wait_for(lambda: sub_info(s.c, "hook").state.state == notify_pb2.NOTIFY_SUB_STATE_ACTIVE,
             10, "the webhook handshake")
    return s, recv


def test_webhook_handshake_signature_and_order():
    s, recv = webhook_stack("notify-hook")
    c = s.c
    assert recv.handshakes >= 1
    publish_many(c, "echo", (samtest.event(ECHO, b"x", eid=f"w{k}", subject="halden")
                             for k in range(200)))
    wait_for(lambda: len(recv.events) >= 200, 20, "200 webhook deliveries")
    assert recv.ids() == [f"w{k}" for k in range(200)]
    ev = recv.events[0]
    assert ev["specversion"] == "1.0" and ev["type"] == ECHO and ev["source"] == "fmov"
    assert ev["subject"] == "halden" and ev["data_base64"] == "eA=="
    assert ev["datacontenttype"] == "application/protobuf"

    def delivered():  # the receiver counts before it answers: the log follows a moment later
        rep, log = c.call("notify", "notify.log",
                          notify_pb2.LogRequest(subscription="hook", page_size=1000),
                          notify_pb2.LogReply)
        return [e for e in log.entries if e.attempt.outcome == "delivered"]
    wait_for(lambda: len(delivered()) == 200, 10, "200 deliveries in the log")
    assert all(e.attempt.status == 204 for e in delivered())
    s.close()
    recv.close()


def test_forged_secret_is_detected_by_the_receiver():
    """What notify really sends carries an HMAC-SHA256 over "<t>.<body>" with the
    subscription's secret (docs/notify.md): it verifies under that secret and under no other,
    and not once the body or the time is changed. A receiver holding another secret refuses
    every delivery, notify retries, and nothing gets through until the secrets agree."""
    import re
    s, recv = webhook_stack("notify-forged")
    real = recv.secret
    publish(s.c, "echo", samtest.event(ECHO, b"x", eid="f0"))
    wait_for(lambda: recv.ids() == ["f0"], 10, "the first delivery")
    with recv.lock:
        header, body = next((h, b) for h, b in recv.raw if json.loads(b).get("id") == "f0")
    m = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", header)
    assert m, header
    t = int(m.group(1))
    assert abs(time.time() - t) < 60 * SLOW, (t, time.time())
    forged = "0" * 64
    assert real != forged
    assert verify(real, header, body)
    assert not verify(forged, header, body)
    assert not verify(real, header, body[:-1] + bytes([body[-1] ^ 1]))
    assert not verify(real, header.replace(f"t={t},", f"t={t + 1},"), body)
    # a receiver holding a forged secret refuses what notify signs: nothing is accepted
    with recv.lock:
        recv.secret = forged
        seen = len(recv.raw)
    publish(s.c, "echo", samtest.event(ECHO, b"x", eid="f1"))
    wait_for(lambda: recv.bad_signatures >= 2, 10, "refused deliveries")
    assert recv.ids() == ["f0"]
    with recv.lock:
        refused = recv.raw[seen:]
    assert all(json.loads(b)["id"] == "f1" for _, b in refused), refused
    assert all(verify(real, h, b) and not verify(forged, h, b) for h, b in refused)
    # with the real secret again, the retried delivery gets through
    recv.secret = real
    wait_for(lambda: recv.ids() == ["f0", "f1"], 10, "delivery after the secret was fixed")
    s.close()
    recv.close()


def test_failures_retry_then_dead_letter_and_replay():
    s, recv = webhook_stack("notify-dead")
    c = s.c
    recv.mode = "fail"
    publish(c, "echo", samtest.event(ECHO, b"x", eid="x1"))
    publish(c, "echo", samtest.event(ECHO, b"x", eid="x2"))
    # 4 attempts each (the first and 3 retries), then dead
    wait_for(lambda: sub_info(c, "hook").dead == 2, 20, "two dead letters")
    rep, dead = c.call("notify", "notify.dead.list", notify_pb2.DeadListRequest(),
                       notify_pb2.DeadListReply)
    assert [d.event.id for d in dead.deliveries] == ["x1", "x2"]
    assert all(d.attempts == 4 and "500" in d.last_error for d in dead.deliveries)
    rep, log = c.call("notify", "notify.log", notify_pb2.LogRequest(subscription="hook"),
                      notify_pb2.LogReply)
    outcomes = [e.attempt.outcome for e in log.entries if e.attempt.event_id == "x1"]
    assert outcomes == ["retry", "retry", "retry", "dead"], outcomes
    # replay one by id, then the rest with all
    recv.mode = "ok"
    first = dead.deliveries[0]
    rep, rr = c.call("notify", "notify.dead.replay",
                     notify_pb2.DeadReplayRequest(id=f"hook/{first.qseq}"),
                     notify_pb2.DeadReplayReply)
    assert rep.status.code == 200 and rr.replayed == 1
    wait_for(lambda: recv.ids() == ["x1"], 10, "the replayed delivery")
    rep, rr = c.call("notify", "notify.dead.replay", notify_pb2.DeadReplayRequest(all=True),
                     notify_pb2.DeadReplayReply)
    assert rr.replayed == 1
    wait_for(lambda: recv.ids() == ["x1", "x2"], 10, "every replayed delivery")
    rep, _ = c.call("notify", "notify.dead.replay", notify_pb2.DeadReplayRequest(id="hook/999"))
    assert rep.status.code == 404
    rep, _ = c.call("notify", "notify.dead.replay", notify_pb2.DeadReplayRequest(id="bad"))
    assert rep.status.code == 400
    rep, _ = c.call("notify", "notify.dead.replay", notify_pb2.DeadReplayRequest())
    assert rep.status.code == 400
    s.close()
    recv.close()


def test_429_waits_retry_after_and_410_disables():
    s, recv = webhook_stack("notify-429")
    c = s.c
    recv.script = [429]
    recv.retry_after = "1"
    t0 = time.time()
    publish(c, "echo", samtest.event(ECHO, b"x", eid="t1"))
    wait_for(lambda: recv.ids() == ["t1"], 10, "delivery after Retry-After")
    took = time.time() - t0
    assert 0.9 <= took < 4.5 * SLOW, took  # Retry-After (1 s), not the schedule's 100 ms

    def outcomes():
        rep, log = c.call("notify", "notify.log", notify_pb2.LogRequest(subscription="hook"),
                          notify_pb2.LogReply)
        return [e.attempt.outcome for e in log.entries]
    wait_for(lambda: outcomes()[-2:] == ["throttled", "delivered"], 5, "the log of the 429")
    recv.mode = "410"
    publish(c, "echo", samtest.event(ECHO, b"x", eid="t2"))
    wait_for(lambda: sub_info(c, "hook").state.state == notify_pb2.NOTIFY_SUB_STATE_DISABLED, 10,
             "the subscription disabled by 410")
    assert "410" in sub_info(c, "hook").state.reason
    s.close()
    recv.close()


def test_receiver_down_for_a_while_gets_its_backlog():
    s, recv = webhook_stack("notify-backlog", "--retry-schedule", "200ms,200ms,200ms,200ms,"
                            "200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,"
                            "200ms,200ms,200ms,200ms,200ms,200ms")
    c = s.c
    port, secret = recv.port, recv.secret
    recv.close()
    publish_many(c, "echo", (samtest.event(ECHO, b"x", eid=f"b{k}") for k in range(50)))
    time.sleep(1.0)
    # the receiver comes back on the same port
    recv2 = WebhookReceiver(secret, port=port)
    wait_for(lambda: len(recv2.events) >= 50, 20, "the backlog")
    assert recv2.ids() == [f"b{k}" for k in range(50)]
    assert sub_info(c, "hook").dead == 0
    s.close()
    recv2.close()


# ---- e-mail -------------------------------------------------------------------------------


def test_email_through_the_smtp_relay():
    smtp = SmtpRecorder()
    s = Stack("notify-mail", "--smtp-url", smtp.url, "--mail-from", "varsel@samordna.test")
    c = s.c
    assert subscribe(c, "post", channel=EMAIL, email="styringsgruppe@fmov.test",
                     type=ECHO).status.code == 200
    publish(c, "echo", samtest.event(ECHO, b"x", eid="m1", subject="Indre Østfold"))
    publish(c, "echo", samtest.event(ECHO, b"x", eid="m2"))
    wait_for(lambda: len(smtp.messages) >= 2, 10, "two mails")
    m = smtp.messages[0]
    assert m["from"] == "<varsel@samordna.test>" and m["to"] == ["<styringsgruppe@fmov.test>"]
    assert "X-Samordna-Event-Id: m1" in m["data"]
    assert "Subject: =?UTF-8?B?" in m["data"]  # the non-ASCII subject, encoded
    body = m["data"].split("\r\n\r\n", 1)[1]
    assert json.loads(body)["id"] == "m1"
    assert "X-Samordna-Event-Id: m2" in smtp.messages[1]["data"]
    s.close()
    smtp.close()


def test_email_relay_down_retries_then_dead():
    with Stack("notify-mail-down", "--smtp-url", f"smtp://127.0.0.1:{samtest.free_port()}") as s:
        c = s.c
        assert subscribe(c, "post", channel=EMAIL, email="a@b.test", type=ECHO).status.code == 200
        publish(c, "echo", samtest.event(ECHO, b"x", eid="md1"))
        wait_for(lambda: sub_info(c, "post").dead == 1, 15, "a dead letter")


def samctl(ep, *args):
    import subprocess
    r = subprocess.run([os.path.join(samtest.BIN, "samctl"), "--broker", ep, "--insecure"]
                       + list(args), capture_output=True, text=True, timeout=20 * SLOW)
    return r.returncode, r.stdout, r.stderr


def test_only_the_owner_changes_or_reads_a_subscription():
    data = samtest.scratch("notify-auth")
    # The test as the broker, so requests carry an authenticated caller (agency, role) the
    # way samordna-broker passes them to workers that negotiated the identity extension.
    fb = samtest.FakeBroker()
    tomorrow = (samtest.today() + datetime.timedelta(days=1)).strftime("%m-%d")
    samtest.Proc("notify-auth", ["samordna-notify", "--broker", fb.ep, "--data-dir", data,
                                 "--insecure", "--follow", "", "--reminder-days", "0",
                                 "--briefing-dates", tomorrow])
    fb.accept("notify", credit=16)

    def publish_as(etype, payload, caller, source):
        return fb.publish(samtest.event(etype, payload, source=source), caller)[0]

    fmov = envelope_pb2.Caller(agency="fmov", role="publisher")
    ofk = envelope_pb2.Caller(agency="ofk", role="publisher")
    hiof = envelope_pb2.Caller(agency="hiof", role="reader")
    created = "no.samordna.notify.subscription.created"
    sub = lambda sid, **kw: notify_pb2.SubscriptionCreated(  # noqa: E731
        subscription=notify_pb2.Subscription(id=sid, **kw))
    rep = publish_as(created, sub("fmov-box", channel=INBOX), fmov, "fmov")
    assert rep.status.code == 200, rep.status
    rep = publish_as(created, sub("fmov-hook", channel=WEBHOOK, url="http://127.0.0.1:9/h"),
                     fmov, "fmov")
    assert rep.status.code == 200, rep.status
    # a reader may not subscribe; a publisher only as itself (the runtime's checks)
    assert publish_as(created, sub("x", channel=INBOX), hiof, "hiof").status.code == 403
    assert publish_as(created, sub("x", channel=INBOX), ofk, "fmov").status.code == 403
    # another agency may not delete, read, ack, see the secret, or replay
    rep = publish_as("no.samordna.notify.subscription.deleted",
                     notify_pb2.SubscriptionDeleted(id="fmov-box"), ofk, "ofk")
    assert rep.status.code == 403 and "belongs to agency 'fmov'" in rep.status.message, rep.status
    for method, body in [
            ("notify.inbox.read", notify_pb2.InboxReadRequest(subscription="fmov-box")),
            ("notify.inbox.ack", notify_pb2.InboxAckRequest(subscription="fmov-box", upto=1)),
            ("notify.subscriptions.secret", notify_pb2.SubscriptionSecretRequest(id="fmov-hook")),
            ("notify.dead.replay", notify_pb2.DeadReplayRequest(all=True,
                                                                 subscription="fmov-box")),
            ("notify.dead.replay", notify_pb2.DeadReplayRequest(all=True)),
            ("notify.log", notify_pb2.LogRequest(subscription="fmov-box"))]:
        rep, _ = fb.call(method, body, ofk)
        assert rep.status.code == 403, (method, rep.status)
    # the delivery log is the owner's: another agency's is 403, an unknown one 404
    rep, _ = fb.call("notify.log", notify_pb2.LogRequest(subscription="fmov-box"), hiof)
    assert rep.status.code == 403 and "belongs to agency 'fmov'" in rep.status.message, rep.status
    rep, _ = fb.call("notify.log", notify_pb2.LogRequest(subscription="nope"), fmov)
    assert rep.status.code == 404, rep.status
    rep, _ = fb.call("notify.log", notify_pb2.LogRequest(subscription="fmov-box"), fmov,
                     notify_pb2.LogReply)
    assert rep.status.code == 200, rep.status
    # the owner may
    rep, sec = fb.call("notify.subscriptions.secret",
                       notify_pb2.SubscriptionSecretRequest(id="fmov-hook"), fmov,
                       notify_pb2.SubscriptionSecretReply)
    # a webhook made without naming a scheme is Standard Webhooks v1: a whsec_ secret
    assert rep.status.code == 200 and sec.scheme == "v1" and sec.secret.startswith("whsec_")
    rep, _ = fb.call("notify.inbox.read", notify_pb2.InboxReadRequest(subscription="fmov-box"),
                     fmov)
    assert rep.status.code == 200
    rep = publish_as("no.samordna.notify.subscription.deleted",
                     notify_pb2.SubscriptionDeleted(id="fmov-box"), fmov, "fmov")
    assert rep.status.code == 200, rep.status
    # deleted: nobody but an admin can be shown to own its log any more
    rep, _ = fb.call("notify.log", notify_pb2.LogRequest(subscription="fmov-box"), fmov)
    assert rep.status.code == 404, rep.status
    # everyone may list, but only the owner sees where a webhook or e-mail goes
    rep, lst = fb.call("notify.subscriptions.list", notify_pb2.SubscriptionListRequest(), hiof,
                       notify_pb2.SubscriptionListReply)
    assert [i.subscription.id for i in lst.subscriptions] == ["fmov-hook"]
    assert lst.subscriptions[0].subscription.url == ""
    rep, info = fb.call("notify.subscriptions.get", notify_pb2.SubscriptionGetRequest(
        id="fmov-hook"), fmov, notify_pb2.SubscriptionInfo)
    assert info.subscription.url == "http://127.0.0.1:9/h"
    fb.close()


def test_samctl_notify_commands():
    with Stack("notify-samctl") as s:
        rc, out, err = samctl(s.ep, "notify", "subscribe", "ops", "--inbox", "--type", ECHO)
        assert rc == 0, err
        rc, out, err = samctl(s.ep, "notify", "subscribe", "Bad", "--inbox")
        assert rc == 1 and "subscription.id" in err, err
        rc, out, err = samctl(s.ep, "notify", "subscribe", "ops2")
        assert rc == 2, err
        publish(s.c, "echo", samtest.event(ECHO, b"x", eid="c1", subject="halden"))
        wait_inbox(s.c, "ops", 1)
        rc, out, err = samctl(s.ep, "notify", "subscriptions")
        assert rc == 0 and "ops" in out and "inbox" in out and "active" in out, out
        rc, out, err = samctl(s.ep, "--json", "notify", "subscriptions")
        assert json.loads(out)["items"][0]["queued"] == 1, out
        rc, out, err = samctl(s.ep, "notify", "inbox", "ops", "--ack")
        assert rc == 0 and "c1" in out and "subject=halden" in out and "acknowledged 1" in out, out
        rc, out, err = samctl(s.ep, "--json", "notify", "log", "ops")
        assert rc == 0 and json.loads(out)["items"][0]["outcome"] == "acked", out
        rc, out, err = samctl(s.ep, "notify", "dead")
        assert rc == 0 and len(out.splitlines()) == 1, out
        rc, out, err = samctl(s.ep, "notify", "replay", "--all")
        assert rc == 0 and "replayed 0" in out, out
        rc, out, err = samctl(s.ep, "notify", "cursors")
        assert rc == 0 and "echo" in out, out
        rc, out, err = samctl(s.ep, "notify", "unsubscribe", "ops")
        assert rc == 0, err
        rc, out, err = samctl(s.ep, "notify", "unsubscribe", "ops")
        assert rc == 1 and "404" in err, err


# ---- the briefing and the reminders -------------------------------------------------------


def test_briefing_preview_notes_what_is_unavailable():
    with Stack("notify-brief-alone", "--call-timeout-ms", "500",
               "--briefing-dates", "06-01,12-01") as s:
        rep, b = s.c.call("notify", "notify.briefing.preview",
                          notify_pb2.BriefingPreviewRequest(date="2019-11-11"), notify_pb2.Briefing,
                          timeout=10)
        assert rep.status.code == 200, rep.status
        assert b.id == "briefing-2019-12-01" and b.period_from == "2019-06-01"
        assert b.period_to == "2019-11-11"  # as of the day asked about
        assert "ikke tilgjengelig" in b.text and "Merknader" in b.text, b.text
        assert "ikke tilgjengelig" in b.html and b.html.startswith("<!DOCTYPE html>")
        assert any(n.startswith("status.report") for n in b.notes), list(b.notes)
        assert any(n.startswith("grants.overview 2019") for n in b.notes), list(b.notes)
        assert any(n.startswith("status.barriers.list") for n in b.notes), list(b.notes)
        rep, _ = s.c.call("notify", "notify.briefing.preview",
                          notify_pb2.BriefingPreviewRequest(date="2019-02-30"))
        assert rep.status.code == 400 and "date" in rep.status.message
        rc, out, err = samctl(s.ep, "--timeout-ms", "30000", "notify", "briefing", "--preview",
                              "--date", "2019-05-01")
        assert rc == 0, err
        assert ("Forfaller 1. juni 2019. Perioden 1. desember 2018 – 1. mai 2019; tilstanden per "
                "1. mai 2019.") in out, out
        rc, out, err = samctl(s.ep, "--lang", "en", "--timeout-ms", "30000", "notify",
                              "briefing", "--preview", "--date", "2019-05-31")
        assert rc == 0 and "Due 1 June 2019. The period 1 December 2018 – 31 May 2019" in out, out
        assert "(not available)" in out, out


def _pub(c, service, etype, msg, source="fmov"):
    _n[0] += 1
    rep = publish(c, service, samtest.event(etype, msg, eid=f"w-{_n[0]}", source=source))[0]
    assert rep.status.code == 200, (etype, rep.status)


def test_briefing_and_reminders_from_the_real_services():
    data = samtest.scratch("notify-brief")
    _, ep = samtest.broker()
    samtest.service("registry", ep, os.path.join(data, "reg"))
    samtest.service("status", ep, os.path.join(data, "status"))
    samtest.service("grants", ep, os.path.join(data, "grants"))
    c = Client(ep)
    for a in ("fmov", "ofk"):
        _pub(c, "registry", "no.samordna.registry.agency.registered",
             registry_pb2.Agency(id=a, name=a.upper(), kind=2), source=a)
    _pub(c, "registry", "no.samordna.registry.municipality.registered",
         registry_pb2.Municipality(id="halden", name="Halden"))
    today = samtest.today()
    soon, late = today + datetime.timedelta(days=30), today + datetime.timedelta(days=90)
    # the briefing due today covers the period up to yesterday: the grants of that year
    year = (today - datetime.timedelta(days=1)).year
    _pub(c, "grants", "no.samordna.grants.scheme.created",
         grants_pb2.Scheme(id="ps", name="Prosjektskjønn", owner="fmov", year=year,
                           currency="NOK"))
    for aid, due in (("a-soon", soon), ("a-late", late)):
        a = grants_pb2.Award(id=aid, scheme="ps", recipient="halden", amount_ore=20000000,
                             purpose="Koordinering", currency="NOK", report_due=due.isoformat())
        a.funders.add(agency="fmov", amount_ore=20000000)
        ok = False
        for _ in range(50):  # grants learns of halden from the registry's outbox
            _n[0] += 1
            rep = publish(c, "grants", samtest.event("no.samordna.grants.award.granted", a,
                                                     eid=f"aw-{_n[0]}"))[0]
            if rep.status.code == 200:
                ok = True
                break
            time.sleep(0.1)
        assert ok, rep.status
    for _ in range(50):
        _n[0] += 1
        rep = publish(c, "status", samtest.event(
            "no.samordna.status.barrier.registered", status_pb2.BarrierRegistered(
                id="b-arsbevilgning", title="Tilskudd må søkes hvert år", municipality="halden",
                raised_by="fmov", concerns="rule",
                date=(today - datetime.timedelta(days=10)).isoformat()), eid=f"b-{_n[0]}"))[0]
        if rep.status.code == 200:
            break
        time.sleep(0.1)
    assert rep.status.code == 200, rep.status
    smtp = SmtpRecorder()
    tomorrow = (today + datetime.timedelta(days=1)).strftime("%m-%d")
    args = ["--follow", "registry,status,grants", "--smtp-url", smtp.url,
            "--schedule-interval-ms", "300", "--call-timeout-ms", str(int(5000 * SLOW))]
    notify = samtest.service("notify", ep, os.path.join(data, "notify"),
                             "--briefing-dates", tomorrow, "--reminder-days", "0", *args)
    assert subscribe(c, "styringsgruppen", type="no.samordna.notify.briefing.issued"
                     ).status.code == 200
    assert subscribe(c, "styringsgruppen-post", channel=EMAIL, email="sg@fmov.test",
                     type="no.samordna.notify.briefing.issued").status.code == 200
    assert subscribe(c, "frister", type="no.samordna.notify.reminder.due",
                     subject="halden").status.code == 200
    assert subscribe(c, "grants-feed", type="no.samordna.grants.*").status.code == 200
    time.sleep(0.5)
    assert inbox_read(c, "styringsgruppen") == [] and inbox_read(c, "frister") == []
    notify.stop()
    if today.strftime("%m-%d") == "02-29":
        # no briefing date can be 29 February (it must come every year): refused, clearly
        bad = subprocess.run([os.path.join(samtest.BIN, "samordna-notify"), "--broker", ep,
                              "--data-dir", os.path.join(data, "notify"), "--insecure",
                              "--briefing-dates", "02-29", *samtest.now_args()],
                             capture_output=True, text=True, timeout=30 * SLOW)
        assert bad.returncode != 0 and 'briefing-dates="02-29"' in bad.stderr, bad.stderr
        c.close()
        smtp.close()
        return
    # the same store, and today is a briefing day: it is issued once, and the reminder of
    # the deadline within 60 days (not the one in 90)
    notify = samtest.service("notify", ep, os.path.join(data, "notify"),
                             "--briefing-dates", today.strftime("%m-%d"), *args)
    items = wait_inbox(c, "styringsgruppen", 1)
    b = notify_pb2.Briefing()
    b.ParseFromString(items[0].event.binary_data)
    assert items[0].event.type == "no.samordna.notify.briefing.issued"
    assert items[0].event.source == "fmov" and items[0].event.id == f"briefing-{today}"
    assert b.date == today.isoformat() and list(b.notes) == [], list(b.notes)
    # Norwegian, with names: the barrier by its title and where, the money the Norwegian way
    assert "Nytt hinder i Halden: «Tilskudd må søkes hvert år»" in b.text, b.text
    assert "Identifisert (1)" in b.text and "meldt av FMOV" in b.text, b.text
    assert "Halden" in b.text and "400\u00a0000\u00a0kr" in b.text, b.text
    assert "b-arsbevilgning" not in b.text and "barrier.registered" not in b.text, b.text
    rem = wait_inbox(c, "frister", 1)
    assert [i.event.id for i in rem] == [f"reminder-a-soon-{soon}"]
    r = notify_pb2.Reminder()
    r.ParseFromString(rem[0].event.binary_data)
    assert r.award == "a-soon" and "om 30 dager" in r.text, r.text
    assert "200\u00a0000\u00a0kr til Halden" in r.text and "«Koordinering»" in r.text, r.text
    assert "Finansiert av: FMOV" in r.text, r.text
    wait_for(lambda: len(smtp.messages) >= 1, 10, "the briefing by e-mail")
    mail = email.message_from_string(smtp.messages[0]["data"], policy=email.policy.default)
    assert mail.get_content_type() == "multipart/alternative", mail.get_content_type()
    parts = {p.get_content_type(): p.get_content() for p in mail.iter_parts()}
    assert "Orientering til styringsgruppen" in parts["text/plain"], parts
    assert "<h1>Orientering til styringsgruppen" in parts["text/html"], parts
    # the grants events themselves are followed too (those after the subscription)
    a = grants_pb2.Award(id="a-new", scheme="ps", recipient="halden", amount_ore=100,
                         purpose="Koordinering", currency="NOK")
    a.funders.add(agency="fmov", amount_ore=100)
    _pub(c, "grants", "no.samordna.grants.award.granted", a)
    feed = wait_inbox(c, "grants-feed", 1)
    assert [(i.service, i.event.type) for i in feed] == [
        ("grants", "no.samordna.grants.award.granted")]
    # issued once: a restart and more checks send nothing again
    notify.stop()
    notify = samtest.service("notify", ep, os.path.join(data, "notify"),
                             "--briefing-dates", today.strftime("%m-%d"), *args)
    time.sleep(1.0)
    assert len(inbox_read(c, "styringsgruppen")) == 1 and len(inbox_read(c, "frister")) == 1
    assert len(smtp.messages) == 1
    c.close()
    smtp.close()


def test_stop_is_clean():
    with Stack("notify-stop") as s:
        assert s.notify.stop() == 0


if __name__ == "__main__":
    samtest.main()
