// Validates AsyncAPI documents against the official JSON schema of their version, as
// published in @asyncapi/specs (pinned in package.json), with Ajv (draft-07).
// Usage: node validate-asyncapi.js FILE... (JSON; "-" reads standard input).
// Prints "valid FILE" or the schema errors, one per line; exits 1 if any file is invalid.
"use strict";
const fs = require("fs");
const Ajv = require("ajv");
const addFormats = require("ajv-formats");
const specs = require("@asyncapi/specs");

function validate(name, text) {
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return [`not JSON: ${e.message}`];
  }
  const version = doc && doc.asyncapi;
  const schema = specs.schemas[version];
  if (!schema) {
    return [`no schema for asyncapi version ${JSON.stringify(version)}`];
  }
  const ajv = new Ajv({ allErrors: true, strict: false, unicodeRegExp: false, meta: false, validateSchema: false });
  addFormats(ajv);
  const check = ajv.compile(schema);
  if (check(doc)) {
    return [];
  }
  return check.errors.map((e) => `${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`);
}

let failed = false;
const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node validate-asyncapi.js FILE...");
  process.exit(2);
}
for (const file of files) {
  const text = fs.readFileSync(file === "-" ? 0 : file, "utf8");
  const errors = validate(file, text);
  if (errors.length === 0) {
    console.log(`valid ${file}`);
  } else {
    failed = true;
    for (const e of errors) {
      console.log(`invalid ${file}: ${e}`);
    }
  }
}
process.exit(failed ? 1 : 0);
