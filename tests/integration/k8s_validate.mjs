// k8s_validate.mjs: check Kubernetes manifests against the API schemas, offline.
//
//   node tests/integration/k8s_validate.mjs NODE_MODULES FILE.yaml...
//
// Each document is checked twice, with the schemas of the npm package kubernetes-models
// (generated from the Kubernetes OpenAPI spec, so it names the API version its fields come
// from): its validate() (types, required fields, enums, formats), and a strict pass of our own
// that walks the package's type declarations and rejects any field the API does not define (the
// OpenAPI schemas allow unknown fields, which the API server drops: a misspelt
// `readinesProbe` would pass validate() and silently do nothing). Prints one JSON object:
// {"docs": [{"file", "index", "kind", "doc"}], "errors": ["file#index: path: message"]}.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [nodeModules, ...files] = process.argv.slice(2);
const km = path.join(nodeModules, "kubernetes-models");
const yaml = (await import(pathToFileURL(path.join(nodeModules, "js-yaml", "index.js")))).default;

// Interface declarations: alias (IIoK8s...) and file-local name -> {fields: {name: type}}.
const ifaces = new Map();

function stripComments(s) {
  return s.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
}

// The fields of the body of `export interface NAME ... {` in text s, or null.
function parseInterface(s, name) {
  const m = new RegExp("export interface " + name + "\\b[^{]*\\{").exec(s);
  if (!m) return null;
  const fields = {};
  let i = m.index + m[0].length;
  let depth = 1;
  while (i < s.length && depth > 0) {
    const c = s[i];
    if (c === "}") { depth--; i++; continue; }
    if (c === '"' && depth === 1) {
      const end = s.indexOf('"', i + 1);
      const fname = s.slice(i + 1, end);
      let j = end + 1;
      if (s[j] === "?") j++;
      if (s[j] !== ":") { i = end + 1; continue; }
      j++;
      let d = 0;
      const start = j;
      while (j < s.length && !(d === 0 && s[j] === ";")) {
        if ("<{(".includes(s[j])) d++;
        if (">})".includes(s[j])) d--;
        j++;
      }
      fields[fname] = s.slice(start, j).trim();
      i = j + 1;
      continue;
    }
    i++;
  }
  return fields;
}

function indexDir(dir) {
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) {
      if (ent.name !== "_schemas" && ent.name !== "node_modules") indexDir(p);
      continue;
    }
    if (!ent.name.endsWith(".d.ts")) continue;
    const s = stripComments(fs.readFileSync(p, "utf8"));
    const alias = /export type \{ (I\w+) as (IIoK8s\w+)/.exec(s);
    if (!alias) continue;
    const fields = parseInterface(s, alias[1]);
    if (fields) ifaces.set(alias[2], fields);
  }
}
indexDir(km);
indexDir(path.join(nodeModules, "@kubernetes-models", "apimachinery"));

// Unknown fields below value v of declared type t.
function strict(v, t, where, errors) {
  t = t.trim();
  if (v === null || typeof v !== "object") return;
  let m = /^Array<([\s\S]*)>$/.exec(t);
  if (m) {
    if (Array.isArray(v)) v.forEach((x, k) => strict(x, m[1], `${where}[${k}]`, errors));
    return;
  }
  m = /^\{\s*\[key: string\]:\s*([\s\S]*?);?\s*\}$/.exec(t);
  if (m) {
    for (const [k, x] of Object.entries(v)) strict(x, m[1], `${where}.${k}`, errors);
    return;
  }
  const fields = ifaces.get(t);
  if (!fields || Array.isArray(v)) return;
  for (const [k, x] of Object.entries(v)) {
    if (!(k in fields)) {
      errors.push(`${where}.${k}: no such field in ${t.replace(/^IIoK8s/, "")}`);
      continue;
    }
    strict(x, fields[k], `${where}.${k}`, errors);
  }
}

const out = { docs: [], errors: [] };
for (const file of files) {
  let docs;
  try {
    docs = yaml.loadAll(fs.readFileSync(file, "utf8"));
  } catch (e) {
    out.errors.push(`${file}: ${e.message}`);
    continue;
  }
  for (const [index, doc] of docs.entries()) {
    if (doc === null || doc === undefined) continue;
    const where = `${path.basename(file)}#${index}`;
    out.docs.push({ file: path.basename(file), index, kind: doc.kind, doc });
    const dir = path.join(km, ...String(doc.apiVersion).split("/"));
    const decl = path.join(dir, `${doc.kind}.d.ts`);
    if (!fs.existsSync(decl)) {
      out.errors.push(`${where}: no kind ${doc.kind} in ${doc.apiVersion}`);
      continue;
    }
    const mod = await import(pathToFileURL(path.join(dir, "index.js")));
    try {
      new mod[doc.kind](doc).validate();
    } catch (e) {
      out.errors.push(`${where}: ${e.message}`);
    }
    const s = stripComments(fs.readFileSync(decl, "utf8"));
    const fields = parseInterface(s, "I" + doc.kind);
    if (!fields) {
      out.errors.push(`${where}: cannot read the declaration of ${doc.kind}`);
      continue;
    }
    const errs = [];
    for (const [k, x] of Object.entries(doc)) {
      if (!(k in fields)) errs.push(`${k}: no such field in ${doc.kind}`);
      else strict(x, fields[k], k, errs);
    }
    for (const e of errs) out.errors.push(`${where}: ${e.replace(/^\./, "")}`);
  }
}
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(out.errors.length ? 1 : 0);
