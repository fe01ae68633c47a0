#!/usr/bin/env node
// Compiles contracts/src/*.sol (and the test harnesses in contracts/test/*.sol) with the
// pinned solc-js through its standard-JSON API and writes one artifact per concrete
// contract or library: contracts/out/<Name>.json (harnesses: contracts/out/test/<Name>.json)
// holding {abi, bytecode, deployedBytecode}.
//
// Output is deterministic (sorted keys, 2-space JSON, trailing newline, no metadata hash in
// the bytecode) so the committed artifacts can be checked against a fresh build:
//   node contracts/build.mjs [--out DIR]
// Any compiler error (or warning promoted by --strict) exits non-zero.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..");
const SOLC_VERSION = "0.8.28";

function parseArgs(argv) {
  const opts = { out: path.join(HERE, "out"), strict: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--out") {
      if (i + 1 >= argv.length) throw new Error("--out needs a directory");
      opts.out = path.resolve(argv[++i]);
    } else if (a.startsWith("--out=")) {
      opts.out = path.resolve(a.slice("--out=".length));
    } else if (a === "--strict") {
      opts.strict = true;
    } else {
      throw new Error(`unknown argument: ${a}`);
    }
  }
  return opts;
}

function solFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".sol"))
    .sort();
}

// Sources are keyed by repo-relative paths so the compiler output never depends on where
// the checkout lives.
function collectSources() {
  const sources = {};
  const groups = { "contracts/src": "", "contracts/test": "test" };
  const outDirOf = {};
  for (const [rel, sub] of Object.entries(groups)) {
    for (const f of solFiles(path.join(ROOT, rel))) {
      const key = `${rel}/${f}`;
      sources[key] = { content: fs.readFileSync(path.join(ROOT, key), "utf8") };
      outDirOf[key] = sub;
    }
  }
  return { sources, outDirOf };
}

function findImport(importPath) {
  try {
    if (importPath.startsWith("@openzeppelin/")) {
      const resolved = require.resolve(importPath, { paths: [ROOT] });
      return { contents: fs.readFileSync(resolved, "utf8") };
    }
    const local = path.join(ROOT, importPath);
    if (local.startsWith(ROOT + path.sep) && fs.existsSync(local)) {
      return { contents: fs.readFileSync(local, "utf8") };
    }
    return { error: `import not found: ${importPath}` };
  } catch (err) {
    return { error: `import not found: ${importPath} (${err.message})` };
  }
}

// JSON with object keys sorted recursively (arrays keep their order: ABI order is the
// compiler's, which is itself deterministic).
function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    const out = {};
    for (const k of Object.keys(value).sort()) out[k] = sortKeys(value[k]);
    return out;
  }
  return value;
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const solc = require("solc");
  if (!solc.version().startsWith(SOLC_VERSION + "+")) {
    throw new Error(`solc ${SOLC_VERSION} required, found ${solc.version()}`);
  }
  const { sources, outDirOf } = collectSources();
  if (Object.keys(sources).length === 0) throw new Error("no Solidity sources found");

  const input = {
    language: "Solidity",
    sources,
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: "cancun",
      metadata: { bytecodeHash: "none", appendCBOR: false },
      outputSelection: {
        "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] },
      },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));

  const diagnostics = output.errors || [];
  let failed = false;
  for (const d of diagnostics) {
    const isError = d.severity === "error" || (opts.strict && d.severity === "warning");
    if (isError) failed = true;
    process.stderr.write(`${d.severity.toUpperCase()}: ${d.formattedMessage || d.message}\n`);
  }
  if (failed || !output.contracts) {
    process.stderr.write("contracts/build.mjs: compilation failed\n");
    process.exit(1);
  }

  const written = [];
  for (const file of Object.keys(sources).sort()) {
    const contracts = output.contracts[file] || {};
    for (const name of Object.keys(contracts).sort()) {
      const c = contracts[name];
      const bytecode = c.evm.bytecode.object;
      // Interfaces and abstract contracts have no bytecode: nothing to deploy.
      if (!bytecode) continue;
      const artifact = sortKeys({
        abi: c.abi,
        bytecode: "0x" + bytecode,
        deployedBytecode: "0x" + c.evm.deployedBytecode.object,
      });
      const dir = path.join(opts.out, outDirOf[file]);
      fs.mkdirSync(dir, { recursive: true });
      const target = path.join(dir, `${name}.json`);
      fs.writeFileSync(target, JSON.stringify(artifact, null, 2) + "\n");
      written.push(path.relative(opts.out, target));
    }
  }
  // Remove artifacts of contracts that no longer exist, so the output directory mirrors the
  // sources exactly.
  const keep = new Set(written);
  for (const sub of ["", "test"]) {
    const dir = path.join(opts.out, sub);
    if (!fs.existsSync(dir)) continue;
    for (const f of fs.readdirSync(dir)) {
      const rel = path.join(sub, f);
      if (f.endsWith(".json") && !keep.has(rel)) fs.unlinkSync(path.join(dir, f));
    }
  }
  process.stdout.write(`solc ${solc.version()}: wrote ${written.length} artifacts to ${opts.out}\n`);
}

try {
  main();
} catch (err) {
  process.stderr.write(`contracts/build.mjs: ${err.stack || err}\n`);
  process.exit(1);
}
