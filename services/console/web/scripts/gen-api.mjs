// Regenerates src/api/schema/<service>.ts from the checked-in OpenAPI documents (src/api/openapi/*.json).
import { readFileSync, writeFileSync, readdirSync } from "node:fs";
import { generate } from "./gen-lib.mjs";

const dir = new URL("../src/api/openapi/", import.meta.url);
for (const file of readdirSync(dir).filter((f) => f.endsWith(".json"))) {
  const name = file.replace(/\.json$/, "");
  const text = await generate(JSON.parse(readFileSync(new URL(file, dir), "utf8")));
  writeFileSync(new URL(`../src/api/schema/${name}.ts`, import.meta.url), text);
  console.log(`src/api/schema/${name}.ts`);
}
