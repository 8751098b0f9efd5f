// @vitest-environment node
// The TypeScript API types must be what `npm run gen:api` makes from the checked-in OpenAPI schemas
// (services/console/tests check those schemas against the services themselves).
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
// @ts-expect-error - a plain ES module script without types
import { generate } from "../../scripts/gen-lib.mjs";

const dir = new URL("../api/openapi/", import.meta.url);

describe("generated API types", () => {
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".json"))) {
    it(`src/api/schema/${file.replace(".json", ".ts")} matches src/api/openapi/${file} (run npm run gen:api)`, async () => {
      const expected: string = await generate(JSON.parse(readFileSync(new URL(file, dir), "utf8")));
      const actual = readFileSync(new URL(`../api/schema/${file.replace(".json", ".ts")}`, import.meta.url), "utf8");
      expect(actual).toBe(expected);
    });
  }
});
