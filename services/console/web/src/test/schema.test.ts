// @vitest-environment node
// The TypeScript API types must be what `npm run gen:api` makes from the checked-in OpenAPI schemas
// (services/console/tests check those schemas against the services themselves).
import { describe, expect, it } from "vitest";
import { generate } from "../../scripts/gen-lib.mjs";

// Both as text (Vite's raw imports), by path: the checked-in schemas and the types generated from them.
const schemas = import.meta.glob<string>("../api/openapi/*.json", { query: "?raw", import: "default", eager: true });
const types = import.meta.glob<string>("../api/schema/*.ts", { query: "?raw", import: "default", eager: true });

describe("generated API types", () => {
  for (const [path, schema] of Object.entries(schemas)) {
    const file = path.slice("../api/openapi/".length);
    it(`src/api/schema/${file.replace(".json", ".ts")} matches src/api/openapi/${file} (run npm run gen:api)`, async () => {
      const expected = await generate(JSON.parse(schema));
      const actual = types[`../api/schema/${file.replace(".json", ".ts")}`];
      expect(actual).toBe(expected);
    });
  }
});
