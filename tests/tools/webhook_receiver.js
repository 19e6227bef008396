// webhook_receiver.js — an agency's webhook endpoint, written the way an agency would write
// one: every request verified with the Standard Webhooks reference library, then read with
// the official CloudEvents SDK.
//
//   node tests/tools/webhook_receiver.js
//
// Listens on 127.0.0.1 on a free port and prints {"port": N} as its first line. Each
// endpoint is a path /hook/NAME, told its key by the test:
//
//   POST /keys/NAME     {"scheme": "v1", "secret": "whsec_…"}  or
//                       {"scheme": "v1a", "publicKey": "whpk_…"}
//   POST /hook/NAME     a delivery: 401 unless its signature verifies (no key yet: 401 too,
//                       so notify tries again), then parsed with HTTP.toEvent; the handshake
//                       is answered with its challenge, an event with 204 (200 when its
//                       webhook-id was seen before: a retry, not processed twice)
//   GET /deliveries/NAME  {"accepted": [{headers, body, event}], "refused": [{reason, …}]}
//
// v1 is verified with the npm package `standardwebhooks` (Webhook#verify: the HMAC-SHA256 of
// "<webhook-id>.<webhook-timestamp>.<body>", compared in constant time, and the timestamp
// within five minutes of now). That package has no v1a, so v1a is verified as the Standard
// Webhooks specification describes, with Node's own crypto: the Ed25519 signature of the same
// "<id>.<timestamp>.<body>" under the whpk_ public key, and the same five minutes.
"use strict";
const crypto = require("crypto");
const http = require("http");
const { HTTP } = require("cloudevents");
const { Webhook } = require("standardwebhooks");

const TOLERANCE_S = 5 * 60;
const endpoints = new Map(); // NAME → {key, accepted, refused, seen}

function endpoint(name) {
  if (!endpoints.has(name)) endpoints.set(name, { key: null, accepted: [], refused: [], seen: new Set() });
  return endpoints.get(name);
}

// Throws unless the v1a signature of the request verifies under publicKey ("whpk_<base64>").
function verifyV1a(publicKey, body, headers) {
  const id = headers["webhook-id"], ts = headers["webhook-timestamp"];
  const sigs = headers["webhook-signature"];
  if (!id || !ts || !sigs) throw new Error("Missing required headers");
  const t = Number.parseInt(ts, 10), now = Math.floor(Date.now() / 1000);
  if (!/^[0-9]+$/.test(ts) || Number.isNaN(t)) throw new Error("Invalid Signature Headers");
  if (now - t > TOLERANCE_S) throw new Error("Message timestamp too old");
  if (t > now + TOLERANCE_S) throw new Error("Message timestamp too new");
  if (!publicKey.startsWith("whpk_")) throw new Error("not a whpk_ public key");
  const raw = Buffer.from(publicKey.slice(5), "base64");
  const key = crypto.createPublicKey({
    key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") },
    format: "jwk",
  });
  const signed = Buffer.concat([Buffer.from(`${id}.${ts}.`), body]);
  for (const versioned of sigs.split(" ")) {
    const [version, sig] = versioned.split(",");
    if (version !== "v1a" || !sig) continue;
    if (crypto.verify(null, signed, key, Buffer.from(sig, "base64"))) return;
  }
  throw new Error("No matching signature found");
}

function verify(key, body, headers) {
  if (!key) throw new Error("no key for this endpoint yet");
  if (key.scheme === "v1") new Webhook(key.secret).verify(body.toString("utf8"), headers);
  else if (key.scheme === "v1a") verifyV1a(key.publicKey, body, headers);
  else throw new Error(`unknown scheme ${key.scheme}`);
}

function answer(res, code, body, type) {
  const data = Buffer.from(body === undefined ? "" : typeof body === "string" ? body : JSON.stringify(body));
  res.writeHead(code, { "Content-Type": type || "application/json", "Content-Length": data.length });
  res.end(data);
}

function onHook(ep, req, body, res) {
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) headers[k.toLowerCase()] = v;
  try {
    verify(ep.key, body, headers);
  } catch (e) {
    ep.refused.push({ reason: String(e.message || e), id: headers["webhook-id"] || "" });
    return answer(res, 401, { refused: String(e.message || e) });
  }
  let ev;
  try {
    ev = HTTP.toEvent({ headers, body: body.toString("utf8") });
  } catch (e) {
    ep.refused.push({ reason: `not a CloudEvent: ${e.message || e}`, id: headers["webhook-id"] });
    return answer(res, 400, { refused: "not a CloudEvent" });
  }
  if (ev.type === "no.samordna.notify.webhook.handshake")
    return answer(res, 200, { challenge: ev.data.challenge });
  const dup = ep.seen.has(headers["webhook-id"]);
  ep.seen.add(headers["webhook-id"]);
  if (!dup) {
    ep.accepted.push({
      headers: {
        "webhook-id": headers["webhook-id"],
        "webhook-timestamp": headers["webhook-timestamp"],
        "webhook-signature": headers["webhook-signature"],
        "content-type": headers["content-type"],
        "x-samordna-signature": headers["x-samordna-signature"] || null,
      },
      body: body.toString("utf8"),
      event: {
        id: ev.id, source: ev.source, type: ev.type, subject: ev.subject,
        specversion: ev.specversion, datacontenttype: ev.datacontenttype,
        data: ev.data_base64 ? null : ev.data, data_base64: ev.data_base64 || null,
      },
    });
  }
  return answer(res, dup ? 200 : 204);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    const m = /^\/(hook|keys|deliveries)\/([a-z0-9-]+)$/.exec(req.url);
    if (!m) return answer(res, 404, { error: "no such path" });
    const ep = endpoint(m[2]);
    if (m[1] === "hook" && req.method === "POST") return onHook(ep, req, body, res);
    if (m[1] === "keys" && req.method === "POST") {
      ep.key = JSON.parse(body.toString("utf8"));
      return answer(res, 204);
    }
    if (m[1] === "deliveries" && req.method === "GET")
      return answer(res, 200, { accepted: ep.accepted, refused: ep.refused });
    return answer(res, 405, { error: "method not allowed" });
  });
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n");
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
