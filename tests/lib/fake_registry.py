"""fake_registry — the registry played by a test: a plain 7/MDP worker that answers
registry.<table>.get from records the test sets and long-polls events.read from an outbox the
test fills, so the test decides exactly which registry facts exist and when a follower may
learn them (through the outbox, or only by asking)."""
import threading
import time

import zmq
import samtest
from samtest import CTX, MDPW, READY, REQUEST, REPLY, HEARTBEAT, DISCONNECT
from samordna.v1 import envelope_pb2, events_pb2, registry_pb2


class FakeRegistry:
    """A 7/MDP worker offering the registry's methods under the service name `service`: get
    by id (registry.<table>.get), and an outbox served by events.read long polls."""

    def __init__(self, endpoint, service="registry"):
        self.endpoint = endpoint
        self.service = service.encode()
        self.lock = threading.Lock()
        self.outbox = []          # StoredEvent
        self.records = {}         # (table, id) -> packed record, for registry.<table>.get
        self.asked = []           # (method, id) of every get
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def publish(self, etype, payload, table, rid):
        """Adds an event to the registry's outbox (and its record to what get answers)."""
        with self.lock:
            seq = len(self.outbox) + 1
            self.outbox.append(events_pb2.StoredEvent(
                seq=seq, event=samtest.event(etype, payload, eid=f"reg-{seq}")))
            self.records[(table, rid)] = payload.SerializeToString()

    def know(self, table, rid, payload):
        """A record get answers, without an outbox event (the feed has not caught up)."""
        with self.lock:
            self.records[(table, rid)] = payload.SerializeToString()

    def close(self):
        self.stop = True
        self.thread.join(5)

    def _run(self):
        sock = CTX.socket(zmq.DEALER)
        sock.linger = 0
        sock.connect(self.endpoint)
        # credit, as the real registry declares: a get is not queued behind a long poll
        sock.send_multipart([b"", MDPW, READY, self.service, b"x-samordna/1 credit=8"])
        polls = []  # (deadline, client, rid, after_seq, max)
        last_hb = time.time()
        while not self.stop:
            if sock.poll(20):
                f = sock.recv_multipart()
                cmd = f[2]
                if cmd == REQUEST:
                    client, body = f[3], f[5]
                    req = envelope_pb2.Request()
                    req.ParseFromString(body)
                    if req.method == "events.read":
                        rr = events_pb2.ReadRequest()
                        rr.ParseFromString(req.body)
                        polls.append((time.time() + rr.wait_ms / 1000.0, client, req.id,
                                      rr.after_seq, rr.max or 100))
                    else:
                        sock.send_multipart([b"", MDPW, REPLY, client, b"",
                                             self._get(req).SerializeToString()])
                elif cmd == DISCONNECT:
                    sock.send_multipart([b"", MDPW, READY, self.service,
                                         b"x-samordna/1 credit=8"])
            now = time.time()
            keep = []
            for deadline, client, rid, after, mx in polls:
                with self.lock:
                    rr = samtest.read_reply(self.outbox, after, mx)
                if rr.events or now >= deadline:
                    rep = envelope_pb2.Reply(id=rid, status=envelope_pb2.Status(code=200))
                    rep.body = rr.SerializeToString()
                    sock.send_multipart([b"", MDPW, REPLY, client, b"", rep.SerializeToString()])
                else:
                    keep.append((deadline, client, rid, after, mx))
            polls = keep
            if now - last_hb > 1.0:
                sock.send_multipart([b"", MDPW, HEARTBEAT])
                last_hb = now
        sock.close(0)

    def _get(self, req):
        parts = req.method.split(".")
        table = parts[1] if len(parts) == 3 else ""
        g = registry_pb2.GetRequest()
        g.ParseFromString(req.body)
        with self.lock:
            self.asked.append((req.method, g.id))
            body = self.records.get((table, g.id))
        rep = envelope_pb2.Reply(id=req.id)
        if parts[0] != "registry" or len(parts) != 3 or parts[2] != "get":
            rep.status.code = 501  # as the real registry answers a method it does not have
            rep.status.message = f"unknown method '{req.method}'"
        elif body is None:
            rep.status.code = 404
            rep.status.message = f"id: unknown {table} '{g.id}'"
        else:
            rep.status.code = 200
            if table == "municipalities":
                m = registry_pb2.Municipality()
                m.ParseFromString(body)
                body = registry_pb2.MunicipalityLookup(municipality=m).SerializeToString()
            rep.body = body
        return rep
