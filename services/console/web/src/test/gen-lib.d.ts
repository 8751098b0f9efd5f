// The types of scripts/gen-lib.mjs (a plain ES module script, run by node for `npm run gen:api`).
declare module "*/scripts/gen-lib.mjs" {
  /** The TypeScript source openapi-typescript makes from an OpenAPI document, with the generated file's header. */
  export function generate(document: unknown): Promise<string>;
}
