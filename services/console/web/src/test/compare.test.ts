import { describe, expect, it } from "vitest";
import { daysSinceVerified, isStale, VENDORS } from "../compare";

const DAY = 86_400_000;

describe("compare pages", () => {
  it("turn stale at 30 days since verification", () => {
    const verified = Date.parse("2026-11-01T00:00:00Z");
    expect(isStale("2026-11-01", verified + 29 * DAY + 23 * 3_600_000)).toBe(false);
    expect(isStale("2026-11-01", verified + 30 * DAY)).toBe(true);
    expect(daysSinceVerified("2026-11-01", verified + 31 * DAY)).toBe(31);
  });
  it("each have sources and a verification date", () => {
    expect(VENDORS.map((v) => v.slug).sort()).toEqual(["helicone", "langfuse", "litellm"]);
    for (const v of VENDORS) {
      expect(v.sources.length).toBeGreaterThan(0);
      expect(v.lastVerified).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    }
  });
});
