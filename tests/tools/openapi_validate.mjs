// openapi_validate.mjs — checks an OpenAPI document against the OpenAPI specification.
//
//   node tests/tools/openapi_validate.mjs FILE.json
//
// Prints one JSON document on stdout: {"valid": bool, "version": "3.1", "errors": [...]}
// and exits 1 when the document is not valid (2 on bad usage). Two checks: the document
// against the schema of its OpenAPI version (npm @seriousme/openapi-schema-validator), and
// every "$ref" in it pointing at something the document holds — the schema check alone
// lets a reference to a missing component through. tests/gateway_read_test.py runs it on
// the gateway's /v1/openapi.json.
import { readFileSync } from "node:fs";
import { Validator } from "@seriousme/openapi-schema-validator";

if (process.argv.length !== 3) {
  console.error("usage: node openapi_validate.mjs FILE.json");
  process.exit(2);
}
const doc = JSON.parse(readFileSync(process.argv[2], "utf8"));
const validator = new Validator();
const res = await validator.validate(doc);
const errors = res.valid ? [] : [].concat(res.errors).map((e) => JSON.stringify(e));

// A local reference "#/a/b~1c" names a member path inside the document (RFC 6901).
function resolves(ref) {
  if (!ref.startsWith("#/")) return false;
  let at = doc;
  for (const raw of ref.slice(2).split("/")) {
    const key = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
    if (at === null || typeof at !== "object" || !(key in at)) return false;
    at = at[key];
  }
  return true;
}
function walk(node, where) {
  if (Array.isArray(node)) {
    node.forEach((x, i) => walk(x, `${where}[${i}]`));
  } else if (node !== null && typeof node === "object") {
    for (const [k, v] of Object.entries(node)) {
      if (k === "$ref" && typeof v === "string" && !resolves(v))
        errors.push(`${where}: $ref ${v} names nothing in the document`);
      else walk(v, `${where}.${k}`);
    }
  }
}
walk(doc, "$");

console.log(JSON.stringify({ valid: errors.length === 0, version: validator.version, errors }));
process.exit(errors.length === 0 ? 0 : 1);
