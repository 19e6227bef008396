// k8s_validate.js — checks Kubernetes manifests against the Kubernetes API schema.
//
//   node tests/tools/k8s_validate.js FILE.yaml...
//
// Prints one JSON document on stdout: {"objects": [{file, kind, name, object}...],
// "errors": ["file: Kind/name: message"...]}, and exits 1 when there is any error (2 on bad
// usage). tests/kubernetes_test.py runs it and checks samordna's own rules on the objects.
//
// Two checks per object. The schema: the object is built with the model class of its
// apiVersion and kind from npm `kubernetes-models` (generated from the Kubernetes OpenAPI
// document) and `.validate()`d: types, required fields, enums, formats. But those validators
// let unknown fields through, and a misspelt field (`readinesProbe`) is exactly the mistake a
// hand-written manifest makes, silently dropped by a lenient apply. So, second, every field
// of the object is looked up in the field list of its TypeScript interface in the package's
// .d.ts files (`export interface IContainer { "name": string; ... }`), following each field's
// type (an interface imported from another file, `Array<I...>`, `{ [key: string]: I... }`)
// down to the leaves; a field the interface does not declare is an error. Leaf types
// (strings, numbers, unions, Quantity, IntOrString) are left to the schema check.
"use strict";
const fs = require("fs");
const path = require("path");
const YAML = require("yaml");

const MODELS = path.dirname(require.resolve("kubernetes-models/package.json"));

// apiVersion "apps/v1" is the folder apps/v1 of kubernetes-models, the core "v1" is v1.
function modelPath(apiVersion, kind) {
  return path.join(MODELS, apiVersion, kind);
}

// ---- the .d.ts field lists ------------------------------------------------------------------
const parsed = new Map(); // .d.ts path -> {imports: name -> path, interfaces: name -> fields}

// A package's own folder: beside kubernetes-models or under its node_modules (the packages'
// "exports" hide their .d.ts files from require.resolve).
function packageDir(name) {
  for (const root of [path.join(MODELS, "node_modules"), path.dirname(MODELS)]) {
    const dir = path.join(root, name);
    if (fs.existsSync(path.join(dir, "package.json"))) return dir;
  }
  throw new Error(`package ${name} not found beside kubernetes-models`);
}

function resolveImport(fromFile, spec) {
  if (spec.startsWith(".")) return path.resolve(path.dirname(fromFile), spec) + ".d.ts";
  const parts = spec.split("/");
  const n = spec.startsWith("@") ? 2 : 1;
  return path.join(packageDir(parts.slice(0, n).join("/")), ...parts.slice(n)) + ".d.ts";
}

// The body of the brace block that starts at text[open] (which is "{").
function block(text, open) {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === "{") depth++;
    else if (text[i] === "}" && --depth === 0) return text.slice(open + 1, i);
  }
  throw new Error("unbalanced braces");
}

// The fields of an interface body: name -> type text, at nesting depth 0 only.
function fields(body) {
  const out = new Map();
  const re = /"([^"]+)"\??:\s*/g;
  let m;
  while ((m = re.exec(body))) {
    let depth = 0, i = re.lastIndex;
    for (; i < body.length; i++) {
      const c = body[i];
      if (c === "{" || c === "<" || c === "(" || c === "[") depth++;
      else if (c === "}" || c === ">" || c === ")" || c === "]") depth--;
      else if (c === ";" && depth === 0) break;
    }
    out.set(m[1], body.slice(re.lastIndex, i).trim());
    re.lastIndex = i + 1;
  }
  return out;
}

function parse(file) {
  if (parsed.has(file)) return parsed.get(file);
  const text = fs.readFileSync(file, "utf8").replace(/\/\*[\s\S]*?\*\//g, "");
  const info = {file, imports: new Map(), aliases: new Map(), interfaces: new Map()};
  for (const m of text.matchAll(/import\s*\{([^}]*)\}\s*from\s*"([^"]+)"/g)) {
    for (const name of m[1].split(",").map((s) => s.trim()).filter(Boolean)) {
      const [orig, alias] = name.split(/\s+as\s+/);
      info.imports.set(alias || orig, {file: m[2], name: orig});
    }
  }
  // `export { IContainer as IIoK8sApiCoreV1Container }`: the long names other files import
  for (const m of text.matchAll(/export\s*\{([^}]*)\}\s*(from\s*"([^"]+)")?/g)) {
    for (const name of m[1].split(",").map((s) => s.trim()).filter(Boolean)) {
      const [orig, alias] = name.split(/\s+as\s+/);
      if (alias) info.aliases.set(alias, {file: m[3], name: orig});
    }
  }
  const re = /export\s+interface\s+(\w+)(\s+extends\s+([\w\s,]+))?\s*\{/g;
  let m;
  while ((m = re.exec(text))) {
    const f = fields(block(text, re.lastIndex - 1));
    // TypeMeta (apiVersion, kind) is the one base interface of the package's models
    if (m[3] && /\bTypeMeta\b/.test(m[3])) {
      f.set("apiVersion", "string");
      f.set("kind", "string");
    }
    info.interfaces.set(m[1], f);
  }
  parsed.set(file, info);
  return info;
}

// The field list of interface `name` as seen from `file`, or null when it is no interface
// (a type alias such as Quantity or IntOrString: a leaf).
function lookup(file, name) {
  const info = parse(file);
  if (info.interfaces.has(name)) return {file, fields: info.interfaces.get(name)};
  const alias = info.aliases.get(name);
  if (alias) return alias.file ? lookup(resolveImport(file, alias.file), alias.name)
    : lookup(file, alias.name);
  const imp = info.imports.get(name);
  if (!imp || imp.file === "@kubernetes-models/base") return null;
  return lookup(resolveImport(file, imp.file), imp.name);
}

// Walks `value` against the type text `type` declared in `file`; pushes errors.
function walk(value, type, file, where, errors) {
  if (value === null || value === undefined) return;
  let m;
  if ((m = /^Array<(.*)>$/s.exec(type))) {
    if (Array.isArray(value)) value.forEach((v, i) => walk(v, m[1], file, `${where}[${i}]`, errors));
    return;
  }
  if ((m = /^\{\s*\[key: string\]:\s*(.*?);?\s*\}$/s.exec(type))) {
    if (typeof value === "object" && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value)) walk(v, m[1], file, `${where}.${k}`, errors);
    }
    return;
  }
  if (!/^\w+$/.test(type)) return; // a union, a literal, a primitive: the schema's job
  const t = lookup(file, type);
  if (!t || typeof value !== "object" || Array.isArray(value)) return;
  for (const [k, v] of Object.entries(value)) {
    if (!t.fields.has(k)) {
      errors.push(`unknown field ${where ? where + "." : ""}${k}`);
      continue;
    }
    walk(v, t.fields.get(k), t.file, where ? `${where}.${k}` : k, errors);
  }
}

// ---- per object ----------------------------------------------------------------------------
function check(obj) {
  const errors = [];
  if (!obj || typeof obj !== "object" || !obj.apiVersion || !obj.kind) {
    return ["not a Kubernetes object (no apiVersion and kind)"];
  }
  const base = modelPath(obj.apiVersion, obj.kind);
  if (!fs.existsSync(base + ".js")) return [`unknown kind ${obj.apiVersion} ${obj.kind}`];
  const Model = require(base)[obj.kind];
  try {
    new Model(obj).validate();
  } catch (e) {
    const details = (e.errors || []).map((x) => `${x.instancePath} ${x.message}`).join("; ");
    errors.push(`schema: ${details || e.message}`);
  }
  if (!lookup(base + ".d.ts", "I" + obj.kind)) {
    errors.push(`no field list for ${obj.kind} in ${base}.d.ts`); // never pass unchecked
  } else {
    walk(obj, "I" + obj.kind, base + ".d.ts", "", errors);
  }
  return errors;
}

function main(files) {
  if (files.length === 0) {
    process.stderr.write("usage: node k8s_validate.js FILE.yaml...\n");
    process.exit(2);
  }
  const out = {objects: [], errors: []};
  for (const file of files) {
    const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"));
    for (const doc of docs) {
      if (doc.errors.length) {
        out.errors.push(`${file}: YAML: ${doc.errors.map((e) => e.message).join("; ")}`);
        continue;
      }
      const obj = doc.toJS();
      if (obj === null) continue; // an empty document
      const name = (obj.metadata && obj.metadata.name) || "?";
      out.objects.push({file, kind: obj.kind, name, object: obj});
      // a Kustomization is kustomize's, not the API server's: the test checks its list
      if (obj.kind === "Kustomization") continue;
      for (const e of check(obj)) out.errors.push(`${file}: ${obj.kind}/${name}: ${e}`);
    }
  }
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exit(out.errors.length ? 1 : 0);
}

main(process.argv.slice(2));
