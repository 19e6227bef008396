"""The service runtime (common/sam_service.c) on the wire, with this test playing the broker.

A raw ROUTER socket stands in for the broker so every frame the runtime sends and accepts is
checked exactly: READY with the samordna extension, heartbeats, REQUEST with and without the
Caller frame, REPLY envelopes, the batch extension (Batch frames both ways), the write path
(outbox, duplicates, refusals, group commit), events.read long polls, malformed frames,
reconnection, and durability across kill -9.
The service under test is samordna-echo, which has no domain tables.
"""
import os
import time

import samtest
from samtest import MDPW, READY, REQUEST, HEARTBEAT, DISCONNECT
from samordna.v1 import envelope_pb2, events_pb2


def event(eid, data=b"x", source="fmov", etype="no.samordna.echo.recorded"):
    return samtest.publish_req(etype, data, source=source, eid=eid)


def burst(fb, prefix, n, data=lambda i: b"x", client=lambda i: b"C1"):
    """n events.publish requests sent at once: events prefix0 … with data(i), request ids
    1 … n, from client(i)."""
    for i in range(n):
        fb.request("events.publish", event(f"{prefix}{i}", data(i)), rid=i + 1, client=client(i))


def start_echo(fb, data, *extra):
    # The test sends no heartbeats of its own: the worker's liveness (3 x 2 s) must outlast
    # the slowest burst under the sanitizers. The reconnect test shortens it itself.
    return samtest.Proc("echo", ["samordna-echo", "--broker", fb.ep, "--data-dir", data,
                                 "--insecure", "--heartbeat-ms", "2000"] + list(extra))


def test_ready_ping_echo_and_unknown_method():
    with samtest.FakeBroker() as fb:
        p = start_echo(fb, samtest.scratch("rt-ping"))
        ext = fb.accept("echo")
        assert "credit=256" in ext
        fb.request("ping", rid=7)
        client, rep = fb.reply()
        assert client == b"C1" and rep.id == 7 and rep.status.code == 200, rep
        pr = envelope_pb2.PingReply()
        pr.ParseFromString(rep.body)
        assert pr.service == "echo" and pr.last_seq == 0
        fb.request("echo", body=b"\x01\x02hello", rid=8)
        _, rep = fb.reply()
        assert rep.body == b"\x01\x02hello"
        fb.request("no.such.method", rid=9)
        _, rep = fb.reply()
        assert rep.status.code == 501 and "no.such.method" in rep.status.message
        assert p.stop() == 0


def test_plain_broker_gets_plain_requests():
    """A broker that never answers the extension sends no Caller frame; the runtime copes."""
    with samtest.FakeBroker() as fb:
        p = start_echo(fb, samtest.scratch("rt-plain"))
        f = fb.recv_cmd(READY)
        fb.worker = f[0]
        fb.identity = False
        fb.request("echo", body=b"plain", rid=3)
        _, rep = fb.reply()
        assert rep.status.code == 200 and rep.body == b"plain"
        assert p.stop() == 0


def test_batch_broker_gets_replies_in_batches():
    """Requests in one Batch are all answered, in Batch REPLYs of at most 32 KiB each."""
    with samtest.FakeBroker() as fb:
        p = start_echo(fb, samtest.scratch("rt-batch"))
        fb.accept("echo", batch=True)
        items = [fb.item("echo", b"body%d" % i, rid=100 + i, client=b"C%d" % (i % 3))
                 for i in range(10)]
        fb.batch(*items, fb.item("ping", rid=7, client=b"P"))
        got, _ = fb.batch_replies(11)
        want = {100 + i: (b"C%d" % (i % 3), b"body%d" % i) for i in range(10)}
        for client, rep in got:
            assert rep.status.code == 200, rep
            if rep.id == 7:
                assert client == b"P"
                continue
            assert want.pop(rep.id) == (client, rep.body), (client, rep)
        assert not want and [r.id for _, r in got].count(7) == 1, want
        # Replies larger than one Batch frame holds are split over several.
        big = [fb.item("echo", bytes([65 + i]) * 10000, rid=i + 1, client=b"B%d" % i)
               for i in range(8)]
        fb.batch(*big)
        got, sizes = fb.batch_replies(8)
        assert len(sizes) >= 3 and all(s <= 32 * 1024 for s in sizes), sizes
        assert sorted((c, r.id, r.body) for c, r in got) == \
            [(b"B%d" % i, i + 1, bytes([65 + i]) * 10000) for i in range(8)]
        assert p.stop() == 0


def test_batch_with_malformed_items_spares_the_rest():
    with samtest.FakeBroker() as fb:
        p = start_echo(fb, samtest.scratch("rt-batch-bad"))
        fb.accept("echo", batch=True)
        two = fb.item("echo", b"two", rid=3, client=b"TWO")
        two.body.append(b"extra")
        bad_caller = fb.item("echo", b"who", rid=6, client=b"WHO")
        bad_caller.caller = b"\xff\xff\xff"
        nobody = fb.item("echo", b"lost", rid=4, client=b"")
        empty = envelope_pb2.Batch.Item(client=b"EMPTY",
                                        caller=fb.item("x").caller)  # no body at all
        garbage = fb.item("echo", client=b"GARBAGE")
        garbage.body[0] = b"\xff\xff\xff"
        fb.batch(fb.item("echo", b"first", rid=1, client=b"A"), garbage, two, nobody, empty,
                 bad_caller, fb.item("echo", b"last", rid=7, client=b"G"))
        got, _ = fb.batch_replies(6)
        reps = {client: rep for client, rep in got}
        assert sorted(reps) == [b"A", b"EMPTY", b"G", b"GARBAGE", b"TWO", b"WHO"], sorted(reps)
        assert reps[b"A"].status.code == 200 and reps[b"A"].body == b"first"
        assert reps[b"G"].status.code == 200 and reps[b"G"].body == b"last"
        assert reps[b"GARBAGE"].status.code == 400 and reps[b"GARBAGE"].id == 0
        assert "undecodable" in reps[b"GARBAGE"].status.message
        assert reps[b"TWO"].status.code == 400 and reps[b"TWO"].id == 3
        assert "2 body frames" in reps[b"TWO"].status.message, reps[b"TWO"].status
        assert reps[b"EMPTY"].status.code == 400 and "0 body frames" in \
            reps[b"EMPTY"].status.message, reps[b"EMPTY"].status
        assert reps[b"WHO"].status.code == 400 and "caller" in reps[b"WHO"].status.message
        # The item without a client was dropped and logged, not answered.
        fb.batch(fb.item("ping", rid=42))
        got, _ = fb.batch_replies(1)
        assert got[0][1].id == 42 and got[0][1].status.code == 200, got
        assert "batch item without a client" in p.logtext()
        assert p.stop() == 0


def test_garbage_instead_of_a_batch_is_survived():
    with samtest.FakeBroker() as fb:
        p = start_echo(fb, samtest.scratch("rt-batch-garbage"))
        fb.accept("echo", batch=True)
        fb.batch(raw=b"\xff\xfe not a batch")
        # Readable items before the break are served.
        good = envelope_pb2.Batch(item=[fb.item("echo", b"before", rid=5, client=b"V")])
        fb.batch(raw=good.SerializeToString() + b"\x0a\x09\x0a")
        # A plain REQUEST is not what a batch broker sends: logged, not answered.
        req = envelope_pb2.Request(id=6, method="ping").SerializeToString()
        caller = envelope_pb2.Caller(role="admin", insecure=True).SerializeToString()
        fb.sock.send_multipart([fb.worker, b"", MDPW, REQUEST, b"PLAIN", b"", caller, req])
        fb.batch(fb.item("ping", rid=42))
        got, _ = fb.batch_replies(2)
        assert [(c, r.id, r.status.code) for c, r in got] == \
            [(b"V", 5, 200), (b"C1", 42, 200)], got
        assert got[0][1].body == b"before"
        assert p.alive()
        log = p.logtext()
        assert log.count("REQUEST batch that is not a samordna.v1.Batch") == 2, log
        assert "one Batch expected" in log, log
        assert p.stop() == 0


def test_batch_over_the_credit_is_refused_503():
    with samtest.FakeBroker() as fb:
        p = start_echo(fb, samtest.scratch("rt-batch-credit"), "--credit", "4")
        assert "credit=4" in fb.accept("echo", batch=True)
        fb.batch(*[fb.item("echo", b"e%d" % i, rid=i + 1, client=b"K%d" % i) for i in range(6)])
        got, _ = fb.batch_replies(6)
        codes = {rep.id: (client, rep.status.code) for client, rep in got}
        assert codes == {i + 1: (b"K%d" % i, 200 if i < 4 else 503) for i in range(6)}, codes
        assert all("credit" in rep.status.message for _, rep in got if rep.status.code == 503)
        assert "reason=\"over the credit\"" in p.logtext()
        # Within the credit again: all served.
        fb.batch(*[fb.item("echo", b"f%d" % i, rid=10 + i, client=b"K%d" % i) for i in range(4)])
        got, _ = fb.batch_replies(4)
        assert all(rep.status.code == 200 for _, rep in got), got
        assert p.stop() == 0


def test_broker_without_batch_gets_plain_replies():
    """A broker whose answer lacks `batch` (a look-alike token does not count) gets plain
    REPLY frames, and a Batch-shaped REQUEST from it is malformed, not a Batch."""
    with samtest.FakeBroker() as fb:
        p = start_echo(fb, samtest.scratch("rt-nobatch"))
        fb.accept("echo", extra=" batched nobatch")
        fb.request("echo", body=b"plain", rid=3, client=b"C9")
        client, rep = fb.reply()
        assert client == b"C9" and rep.status.code == 200 and rep.body == b"plain"
        fb.batch(fb.item("echo", b"batched", rid=4))
        fb.request("ping", rid=5)
        client, rep = fb.reply()
        assert rep.id == 5, "a Batch REQUEST was served by a worker that is not batching"
        assert p.stop() == 0


def test_publish_duplicate_refusal_and_read():
    with samtest.FakeBroker() as fb:
        p = start_echo(fb, samtest.scratch("rt-pub"))
        fb.accept("echo")
        before_ms = samtest.now() * 1000
        fb.request("events.publish", event("e1", b"one"), rid=1)
        _, rep = fb.reply()
        assert rep.status.code == 200, rep.status
        pr = events_pb2.PublishReply()
        pr.ParseFromString(rep.body)
        assert pr.seq == 1 and not pr.duplicate
        fb.request("events.publish", event("e1", b"one"), rid=2)
        _, rep = fb.reply()
        pr.ParseFromString(rep.body)
        assert pr.seq == 1 and pr.duplicate, "a duplicate is answered with the original seq"
        fb.request("events.publish", event("e2", b""), rid=3)
        _, rep = fb.reply()
        assert rep.status.code == 400 and "event.data" in rep.status.message
        fb.request("events.publish", event("e3", etype="no.samordna.echo.unknown"), rid=4)
        _, rep = fb.reply()
        assert rep.status.code == 501 and "no.samordna.echo.unknown" in rep.status.message
        fb.request("events.publish", b"\xff\xff\xff", rid=5)
        _, rep = fb.reply()
        assert rep.status.code == 400 and "undecodable" in rep.status.message
        bad = event("e4")
        bad.event.spec_version = "0.3"
        fb.request("events.publish", bad, rid=6)
        _, rep = fb.reply()
        assert rep.status.code == 400 and "spec_version" in rep.status.message
        fb.request("events.publish", event("e5", b"five"), rid=7)
        _, rep = fb.reply()
        pr.ParseFromString(rep.body)
        assert pr.seq == 2, "refusals take no sequence number"
        fb.request("events.read", events_pb2.ReadRequest(after_seq=0), rid=8)
        _, rep = fb.reply()
        rr = events_pb2.ReadReply()
        rr.ParseFromString(rep.body)
        assert [e.seq for e in rr.events] == [1, 2] and rr.last_seq == 2
        assert rr.events[0].event.id == "e1" and rr.events[1].event.binary_data == b"five"
        assert rr.events[0].caller.role == "admin"
        # the commit time is the wall clock (the test's clock when SAMORDNA_TEST_NOW sets it)
        after_ms = samtest.now() * 1000
        for e in rr.events:
            assert before_ms - 1000 <= e.recorded_ms <= after_ms + 1000, \
                (e.recorded_ms, before_ms, after_ms)
        assert p.stop() == 0


def test_publisher_may_publish_only_as_itself_and_reader_not_at_all():
    with samtest.FakeBroker() as fb:
        p = start_echo(fb, samtest.scratch("rt-auth"))
        fb.accept("echo")
        nav = envelope_pb2.Caller(agency="nav-ost-viken", role="publisher")
        fb.request("events.publish", event("a1", source="fmov"), rid=1, caller=nav)
        _, rep = fb.reply()
        assert rep.status.code == 403 and "nav-ost-viken" in rep.status.message
        fb.request("events.publish", event("a2", source="nav-ost-viken"), rid=2, caller=nav)
        _, rep = fb.reply()
        assert rep.status.code == 200
        reader = envelope_pb2.Caller(agency="hiof", role="reader")
        fb.request("events.publish", event("a3", source="hiof"), rid=3, caller=reader)
        _, rep = fb.reply()
        assert rep.status.code == 403 and "reader" in rep.status.message
        fb.request("events.read", events_pb2.ReadRequest(), rid=4, caller=reader)
        _, rep = fb.reply()
        rr = events_pb2.ReadReply()
        rr.ParseFromString(rep.body)
        assert len(rr.events) == 1 and rr.events[0].caller.agency == "nav-ost-viken"
        assert p.stop() == 0


def test_group_commit_applies_a_burst_in_few_transactions():
    with samtest.FakeBroker() as fb:
        p = start_echo(fb, samtest.scratch("rt-burst"))
        fb.accept("echo")
        n = 500
        burst(fb, "b", n, data=lambda i: b"payload", client=lambda i: b"C%d" % (i % 3))
        seqs = set()
        for _ in range(n):
            _, rep = fb.reply()
            assert rep.status.code == 200
            pr = events_pb2.PublishReply()
            pr.ParseFromString(rep.body)
            seqs.add(pr.seq)
        assert seqs == set(range(1, n + 1))
        assert p.stop() == 0
        log = p.logtext()
        batches = int(log.split("batches=")[1].split()[0])
        assert batches < n / 4, f"{n} events took {batches} write transactions"


def test_refusals_inside_a_burst_leave_nothing_and_spare_the_rest():
    """One refused event in a group-committed batch undoes only itself."""
    with samtest.FakeBroker() as fb:
        p = start_echo(fb, samtest.scratch("rt-mixed"))
        fb.accept("echo")
        n = 300
        burst(fb, "m", n, data=lambda i: b"" if i % 10 == 3 else b"ok")
        codes = {}
        seqs = []
        for _ in range(n):
            _, rep = fb.reply()
            codes[rep.id] = rep.status.code
            if rep.status.code == 200:
                pr = events_pb2.PublishReply()
                pr.ParseFromString(rep.body)
                seqs.append(pr.seq)
        refused = {rid for rid, c in codes.items() if c != 200}
        assert refused == {i + 1 for i in range(n) if i % 10 == 3}, sorted(refused)[:5]
        assert all(codes[r] == 400 for r in refused)
        assert sorted(seqs) == list(range(1, n - len(refused) + 1)), "seqs are contiguous"
        fb.request("events.read", events_pb2.ReadRequest(after_seq=0, max=1000), rid=9999)
        _, rep = fb.reply()
        rr = events_pb2.ReadReply()
        rr.ParseFromString(rep.body)
        ids = [e.event.id for e in rr.events]
        assert len(ids) == n - len(refused) and not any(int(i[1:]) % 10 == 3 for i in ids)
        assert p.stop() == 0
        log = p.logtext()
        assert f"applied={n - len(refused)} refused={len(refused)}" in log, log[-300:]


def test_long_poll_waits_then_answers_on_commit_and_expires():
    with samtest.FakeBroker() as fb:
        p = start_echo(fb, samtest.scratch("rt-poll"))
        fb.accept("echo")
        t0 = time.time()
        fb.request("events.read", events_pb2.ReadRequest(after_seq=0, wait_ms=300), rid=1)
        _, rep = fb.reply()
        waited = time.time() - t0
        rr = events_pb2.ReadReply()
        rr.ParseFromString(rep.body)
        assert len(rr.events) == 0 and waited >= 0.25, waited
        fb.request("events.read", events_pb2.ReadRequest(after_seq=0, wait_ms=10000), rid=2,
                   client=b"POLL")
        time.sleep(0.2)
        fb.request("events.publish", event("p1"), rid=3, client=b"PUB")
        got = {}
        for _ in range(2):
            client, rep = fb.reply()
            got[client] = rep
        assert got[b"PUB"].status.code == 200
        rr.ParseFromString(got[b"POLL"].body)
        assert [e.event.id for e in rr.events] == ["p1"]
        assert p.stop() == 0


def test_malformed_frames_are_survived():
    with samtest.FakeBroker() as fb:
        p = start_echo(fb, samtest.scratch("rt-bad"))
        fb.accept("echo")
        w = fb.worker
        for frames in ([w, b"", b"XXXX01", REQUEST], [w, b"", MDPW], [w, b"", MDPW, b"\x09"],
                       [w, b"", MDPW, REQUEST, b"C"], [w, b"junk"],
                       [w, b"", MDPW, REQUEST, b"C", b"", b"\xff\x00", b"\x0a"]):
            fb.sock.send_multipart(frames)
        fb.sock.send_multipart([w, b"", MDPW, REQUEST, b"C", b"", b"\xff\xff",
                                b"\xff\xff\xff"])
        fb.request("ping", rid=42)
        codes = []
        while True:
            _, rep = fb.reply()
            if rep.id == 42:
                break
            codes.append(rep.status.code)
        assert rep.status.code == 200
        assert codes == [400, 400], codes  # the two undecodable envelopes are answered
        assert p.alive()
        assert "malformed" in p.logtext()
        assert p.stop() == 0


def test_reconnects_after_disconnect_and_silence():
    with samtest.FakeBroker() as fb:
        p = start_echo(fb, samtest.scratch("rt-reconnect"), "--heartbeat-ms", "200",
                       "--liveness", "2")
        fb.accept("echo")
        fb.sock.send_multipart([fb.worker, b"", MDPW, DISCONNECT])
        fb.accept("echo")  # a DISCONNECT makes it register again
        port = fb.port
        fb.close()
        time.sleep(1.0)  # silent broker: longer than liveness x heartbeat
        fb = samtest.FakeBroker(port)
        fb.accept("echo")
        fb.request("ping", rid=1)
        _, rep = fb.reply()
        assert rep.status.code == 200
        assert p.stop() == 0


def test_acknowledged_events_survive_kill9():
    with samtest.FakeBroker() as fb:
        data = samtest.scratch("rt-kill")
        p = start_echo(fb, data)
        fb.accept("echo")
        n = 300
        burst(fb, "k", n)
        acked = set()
        for _ in range(n // 2):
            _, rep = fb.reply()
            assert rep.status.code == 200
            acked.add(rep.id)
        p.kill9()
        p = start_echo(fb, data)
        fb.accept("echo")
        fb.request("events.read", events_pb2.ReadRequest(after_seq=0, max=1000), rid=99999)
        # the killed worker's last replies may still be on their way: skip them, by id
        rep = None
        while rep is None or rep.id != 99999:
            _, rep = fb.reply()
        rr = events_pb2.ReadReply()
        rr.ParseFromString(rep.body)
        stored = {int(e.event.id[1:]) + 1 for e in rr.events}
        assert acked <= stored, f"lost acknowledged events: {sorted(acked - stored)[:5]}"
        assert [e.seq for e in rr.events] == list(range(1, len(rr.events) + 1))
        assert p.stop() == 0


def test_store_schema_newer_than_program_is_refused():
    data = samtest.scratch("rt-schema")
    fb = samtest.FakeBroker()
    p = start_echo(fb, data)
    fb.accept("echo")
    assert p.stop() == 0
    fb.close()
    # Raise the stored schema version with LMDB's own tools: the program must refuse.
    import subprocess
    dump = subprocess.run(["mdb_dump", "-s", "meta", os.path.join(data, "echo")],
                          capture_output=True, check=True).stdout.decode()
    assert "736368656d61" in dump and "00000001" in dump, dump  # "schema" → 1
    patched = dump.replace("00000001", "00000063")
    subprocess.run(["mdb_load", "-s", "meta", os.path.join(data, "echo")], input=patched.encode(),
                   check=True)
    p = samtest.Proc("echo2", ["samordna-echo", "--data-dir", data, "--insecure"])
    assert p.p.wait(10) != 0
    assert "store.too_new" in p.logtext()


def test_help_version_and_bad_options():
    import subprocess
    out = subprocess.run([os.path.join(samtest.BIN, "samordna-echo"), "--help"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "--broker ENDPOINT" in out.stdout and "--credit" in out.stdout
    out = subprocess.run([os.path.join(samtest.BIN, "samordna-echo"), "--version"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("samordna-echo ")
    out = subprocess.run([os.path.join(samtest.BIN, "samordna-echo"), "--credit", "0",
                          "--insecure"], capture_output=True, text=True)
    assert out.returncode == 2 and "--credit" in out.stderr
    out = subprocess.run([os.path.join(samtest.BIN, "samordna-echo"), "--insecure", "--broker",
                          "tcp://10.1.2.3:5555"], capture_output=True, text=True)
    assert out.returncode == 2 and "non-loopback" in out.stderr


def test_harness_worker_quiet_is_silence_only():
    """samtest.Worker.quiet(), which the broker and security tests use to prove that a worker
    was given nothing: plain heartbeats are silence; frames that are not 7/MDP worker frames,
    and any other command, are not (they fail the test instead of passing for quiet)."""
    fb = samtest.FakeBroker()
    w = samtest.Worker(fb.ep, "quiet")
    try:
        peer = fb.recv_cmd(READY)[0]
        fb.sock.send_multipart([peer, b"", MDPW, HEARTBEAT])
        assert w.quiet(0.3)
        for frames in ([b"garbage"], [b"", b"MDPC01", REQUEST, b"C", b"", b"x"], [b"", MDPW],
                       [b"", MDPW, REQUEST, b"C", b"", b"body"], [b"", MDPW, DISCONNECT]):
            fb.sock.send_multipart([peer] + frames)
            try:
                w.quiet(2.0)
            except samtest.Silence:
                raise AssertionError(f"{frames} was taken for silence")
            except AssertionError:
                continue  # as it should: what arrived is not silence
            raise AssertionError(f"{frames} was taken for silence")
    finally:
        w.close()
        fb.close()


samtest.main()
