#!/usr/bin/env node
// Compiles contracts/src/*.sol with the pinned solc-js into contracts/artifacts/<Name>.json.
//
//   node contracts/build.js           write the artifacts
//   node contracts/build.js --check   rebuild in memory; exit 1 if the committed artifacts differ
//
// The compiler settings are fixed here (and recorded in each artifact) so that the
// same sources always give the same bytes.
"use strict";

const fs = require("fs");
const path = require("path");
const solc = require("solc");

const SOLC_VERSION = "0.8.37";
const SETTINGS = {
  viaIR: true,
  evmVersion: "cancun",
  optimizer: { enabled: true, runs: 10000 },
  metadata: { bytecodeHash: "none", appendCBOR: false },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};
// Contracts that get an artifact (interfaces and libraries do not).
const DEPLOYABLE = ["Adjudicator", "ConsensusApp", "VirtualPaymentApp", "TestToken"];

const ROOT = __dirname;
const SRC = path.join(ROOT, "src");
const OUT = path.join(ROOT, "artifacts");

function compile() {
  const actual = solc.version().split("+")[0];
  if (actual !== SOLC_VERSION) {
    throw new Error(`solc ${actual} is installed, ${SOLC_VERSION} is pinned: run npm ci`);
  }
  const sources = {};
  for (const file of fs.readdirSync(SRC).filter((f) => f.endsWith(".sol")).sort()) {
    sources[file] = { content: fs.readFileSync(path.join(SRC, file), "utf8") };
  }
  const input = { language: "Solidity", sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const problems = (output.errors || []).filter(
    (e) => e.severity === "error" || e.type === "Warning",
  );
  for (const problem of problems) process.stderr.write(problem.formattedMessage + "\n");
  if (problems.length > 0) throw new Error(`${problems.length} compiler error(s) or warning(s)`);

  const artifacts = {};
  for (const [file, contracts] of Object.entries(output.contracts)) {
    for (const [name, contract] of Object.entries(contracts)) {
      if (!DEPLOYABLE.includes(name)) continue;
      const artifact = {
        contractName: name,
        sourceName: `contracts/src/${file}`,
        compiler: { name: "solc-js", version: SOLC_VERSION, settings: SETTINGS },
        abi: contract.abi,
        bytecode: "0x" + contract.evm.bytecode.object,
        deployedBytecode: "0x" + contract.evm.deployedBytecode.object,
      };
      artifacts[`${name}.json`] = JSON.stringify(artifact, null, 2) + "\n";
    }
  }
  const missing = DEPLOYABLE.filter((name) => !(`${name}.json` in artifacts));
  if (missing.length > 0) throw new Error(`no output for ${missing.join(", ")}`);
  return artifacts;
}

function check(artifacts) {
  const present = fs.existsSync(OUT) ? fs.readdirSync(OUT).filter((f) => f.endsWith(".json")) : [];
  const stale = [];
  for (const [file, text] of Object.entries(artifacts)) {
    const target = path.join(OUT, file);
    if (!fs.existsSync(target) || fs.readFileSync(target, "utf8") !== text) stale.push(file);
  }
  for (const file of present) if (!(file in artifacts)) stale.push(`${file} (no source)`);
  if (stale.length > 0) {
    process.stderr.write(
      `contracts/artifacts out of date: ${stale.join(", ")}; run: node contracts/build.js\n`,
    );
    return 1;
  }
  const count = Object.keys(artifacts).length;
  process.stdout.write(`contracts/artifacts up to date (${count} artifacts)\n`);
  return 0;
}

function write(artifacts) {
  fs.mkdirSync(OUT, { recursive: true });
  for (const file of fs.readdirSync(OUT).filter((f) => f.endsWith(".json"))) {
    if (!(file in artifacts)) fs.unlinkSync(path.join(OUT, file));
  }
  for (const [file, text] of Object.entries(artifacts)) {
    fs.writeFileSync(path.join(OUT, file), text);
  }
  process.stdout.write(`wrote ${Object.keys(artifacts).length} artifacts to contracts/artifacts\n`);
  return 0;
}

function main(argv) {
  const unknown = argv.filter((a) => a !== "--check");
  if (unknown.length > 0) {
    process.stderr.write(`unknown argument(s): ${unknown.join(" ")}; usage: build.js [--check]\n`);
    return 2;
  }
  const artifacts = compile();
  return argv.includes("--check") ? check(artifacts) : write(artifacts);
}

process.exitCode = main(process.argv.slice(2));
