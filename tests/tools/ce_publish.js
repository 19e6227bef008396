// ce_publish.js — publishes CloudEvents to samordna-gateway with the official CloudEvents
// JavaScript SDK (npm `cloudevents`), the way an agency's integration would.
//
//   node tests/tools/ce_publish.js < REQUEST.json
//
// REQUEST: {"url": "http://127.0.0.1:PORT/v1/events", "mode": "binary"|"structured"|"batch",
//           "events": [{"id", "source", "type", "subject"?, "datacontenttype"?,
//                       "data_hex"?: packed protobuf payload as hex,
//                       "data"?: the payload as JSON (proto3 JSON mapping)}]}
// binary and structured send the first event with HTTP.binary / HTTP.structured; batch sends
// them all as application/cloudevents-batch+json, each serialised by the SDK (data_base64
// for binary data). Prints {"status", "contentType", "retryAfter", "body"} on stdout (body
// parsed when it is JSON) and exits 0 whatever the status; 2 on bad usage.
"use strict";
const { CloudEvent, HTTP, CONSTANTS } = require("cloudevents");

function makeEvent(e) {
  const attrs = { id: e.id, source: e.source, type: e.type, specversion: "1.0" };
  if (e.subject !== undefined) attrs.subject = e.subject;
  if (e.data_hex !== undefined) {
    attrs.datacontenttype = e.datacontenttype || "application/protobuf";
    attrs.data = new Uint8Array(Buffer.from(e.data_hex, "hex"));
  } else if (e.data !== undefined) {
    attrs.datacontenttype = e.datacontenttype || "application/json";
    attrs.data = e.data;
  } else if (e.datacontenttype !== undefined) {
    attrs.datacontenttype = e.datacontenttype;
  }
  return new CloudEvent(attrs);
}

async function main() {
  const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const events = input.events.map(makeEvent);
  let message;
  if (input.mode === "binary") message = HTTP.binary(events[0]);
  else if (input.mode === "structured") message = HTTP.structured(events[0]);
  else if (input.mode === "batch")
    message = {
      headers: { "content-type": CONSTANTS.MIME_CE_BATCH },
      body: JSON.stringify(events.map((ev) => ev.toJSON())),
    };
  else {
    console.error(`ce_publish: unknown mode ${input.mode}`);
    process.exit(2);
  }
  const body =
    message.body instanceof Uint8Array ? Buffer.from(message.body) : message.body;
  const res = await fetch(input.url, { method: "POST", headers: message.headers, body });
  const text = await res.text();
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    // not JSON: kept as text
  }
  process.stdout.write(
    JSON.stringify({
      status: res.status,
      contentType: res.headers.get("content-type"),
      retryAfter: res.headers.get("retry-after"),
      body: parsed,
    }) + "\n",
  );
}

main().catch((err) => {
  console.error(`ce_publish: ${err.stack || err}`);
  process.exit(1);
});
