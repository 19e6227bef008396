"""Receivers for the notify tests, on loopback, with Python's standard library only.

WebhookReceiver: an HTTP server that answers the handshake, checks every request's signature
with the subscription's secret — a whsec_ secret by Standard Webhooks v1 (webhook-id,
webhook-timestamp, webhook-signature: v1,<base64 HMAC-SHA256 over "<id>.<timestamp>.<body>">),
any other by the legacy X-Samordna-Signature (HMAC-SHA256 over "<t>.<body>") — records what
it accepted, and can be told to fail, answer 429 with Retry-After, or 410.
(tests/tools/webhook_receiver.js is the receiver built on the npm reference libraries.)

SmtpRecorder: a small SMTP server (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) that
records every message it is given.
"""
import base64
import hashlib
import hmac
import json
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def sign(secret, body, t=None):
    """The X-Samordna-Signature value a sender with `secret` puts on `body`."""
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret, header, body, tolerance_s=300):
    """True when `header` is a valid signature of `body` under `secret`, made recently."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        t = int(parts["t"])
        got = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs(time.time() - t) > tolerance_s:
        return False
    want = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(want, got)


def verify_standard(secret, headers, body, tolerance_s=300):
    """True when `headers` carry a Standard Webhooks v1 signature of `body` under the whsec_
    `secret`, made recently."""
    wid, ts = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not wid or not ts.isdigit() or abs(time.time() - int(ts)) > tolerance_s:
        return False
    key = base64.b64decode(secret[len("whsec_"):])
    want = base64.b64encode(hmac.new(key, f"{wid}.{ts}.".encode() + body,
                                     hashlib.sha256).digest()).decode()
    return any(s.startswith("v1,") and hmac.compare_digest(s[3:], want)
               for s in headers.get("webhook-signature", "").split(" "))


class WebhookReceiver:
    def __init__(self, secret=None, port=0, host="127.0.0.1"):
        self.secret = secret
        self.closed = False
        self.lock = threading.Lock()
        self.events = []          # accepted deliveries (parsed JSON), in arrival order
        self.handshakes = 0
        self.bad_signatures = 0
        self.requests = 0
        self.raw = []             # every POST as (X-Samordna-Signature, body), in arrival order
        self.script = []          # statuses to answer next, one per delivery, before accepting
        self.mode = "ok"          # "ok", "fail" (500), "429", "410"
        self.retry_after = "1"
        recv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self, code, body=b"", headers=()):
                self.send_response(code)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if recv.closed:  # a kept-alive connection outliving close(): hang up
                    self.close_connection = True
                    return
                with recv.lock:
                    recv.requests += 1
                    recv.raw.append((self.headers.get("X-Samordna-Signature", ""), body))
                    secret = recv.secret
                if secret is None or not (
                        verify_standard(secret, self.headers, body)
                        if secret.startswith("whsec_") else
                        verify(secret, self.headers.get("X-Samordna-Signature", ""), body)):
                    with recv.lock:
                        recv.bad_signatures += 1
                    return self._answer(401, b"bad signature")
                ev = json.loads(body)
                if ev.get("type") == "no.samordna.notify.webhook.handshake":
                    with recv.lock:
                        recv.handshakes += 1
                    out = json.dumps({"challenge": ev["data"]["challenge"]}).encode()
                    return self._answer(200, out, [("Content-Type", "application/json")])
                with recv.lock:
                    code = recv.script.pop(0) if recv.script else None
                    mode = recv.mode
                if code is None:
                    code = {"ok": 204, "fail": 500, "429": 429, "410": 410}[mode]
                if code == 429:
                    return self._answer(429, b"", [("Retry-After", recv.retry_after)])
                if code >= 300:
                    return self._answer(code, b"no")
                with recv.lock:
                    recv.events.append(ev)
                return self._answer(code)

        ThreadingHTTPServer.allow_reuse_address = True
        # host: loopback, or an address of a test's network namespace (multihost_test.py)
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def ids(self):
        with self.lock:
            return [e["id"] for e in self.events]

    def close(self):
        self.closed = True
        self.server.shutdown()
        self.server.server_close()


class SmtpRecorder:
    def __init__(self):
        self.messages = []   # dicts: from, to (list), data (str)
        self.lock = threading.Lock()
        rec = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line):
                self.wfile.write(line.encode() + b"\r\n")
                self.wfile.flush()

            def handle(self):
                try:
                    self.session()
                except (ConnectionError, OSError):
                    pass  # the client went away mid-session: nothing to record

            def session(self):
                self.reply("220 recorder ready")
                mail_from, rcpt = None, []
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    cmd = line.decode("utf-8", "replace").strip()
                    verb = cmd.split(" ", 1)[0].upper()
                    if verb in ("EHLO", "HELO"):
                        self.reply("250 recorder")
                    elif verb == "MAIL":
                        mail_from, rcpt = cmd[10:].strip(), []
                        self.reply("250 ok")
                    elif verb == "RCPT":
                        rcpt.append(cmd[8:].strip())
                        self.reply("250 ok")
                    elif verb == "DATA":
                        self.reply("354 go on")
                        lines = []
                        while True:
                            d = self.rfile.readline()
                            if not d or d == b".\r\n":
                                break
                            if d.startswith(b".."):
                                d = d[1:]
                            lines.append(d)
                        with rec.lock:
                            rec.messages.append({"from": mail_from, "to": rcpt,
                                                 "data": b"".join(lines).decode("utf-8")})
                        self.reply("250 queued")
                    elif verb in ("RSET", "NOOP"):
                        self.reply("250 ok")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 unknown command")

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"smtp://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
