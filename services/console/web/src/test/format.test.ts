import { describe, expect, it } from "vitest";
import { change, changeRatio, compact, dateTime, microMoney, money, share, signedMoney, tokens, utcTitle } from "../format";

describe("money", () => {
  it("reads dollars and cents, not six decimals", () => {
    expect(money("13.219875")).toBe("$13.22");
    expect(money("0.97")).toBe("$0.97");
    expect(money(1204.5)).toBe("$1,204.50");
    expect(money("0")).toBe("$0.00");
  });
  it("keeps two significant digits under a cent", () => {
    expect(money("0.00022")).toBe("$0.00022");
    expect(money("0.0042")).toBe("$0.0042");
  });
  it("shows a dash when there is no amount", () => {
    expect(money(null)).toBe("—");
    expect(money("")).toBe("—");
  });
  it("signs a change of money", () => {
    expect(signedMoney("0.87")).toBe("+$0.87");
    expect(signedMoney("-0.854")).toBe("−$0.85");
    expect(signedMoney("0")).toBe("$0.00");
  });
  it("converts micro-USD", () => {
    expect(microMoney(13_219_875)).toBe("$13.22");
  });
});

describe("counts", () => {
  it("abbreviates large counts", () => {
    expect(tokens(4_625_355)).toBe("4.6M tokens");
    expect(compact(231)).toBe("231");
    expect(compact(12_340)).toBe("12.3K");
    expect(compact(3_000)).toBe("3K");
    expect(compact(250_000)).toBe("250K");
    expect(compact(1_200_000_000)).toBe("1.2B");
  });
});

describe("change", () => {
  it("signs a change ratio as a whole percentage", () => {
    expect(change("1.3359")).toBe("+134 %");
    expect(change(-0.05)).toBe("−5 %");
    expect(change(0.001)).toBe("0 %");
  });
  it("calls a change without a baseline new", () => {
    expect(change(null)).toBe("new");
    expect(changeRatio(5, 0)).toBeNull();
    expect(changeRatio(15, 10)).toBeCloseTo(0.5);
  });
  it("formats shares", () => {
    expect(share("0.253")).toBe("25 %");
    expect(share(0.004)).toBe("0.4 %");
    expect(share(-0.0004)).toBe("0 %");
    expect(share("-0.05")).toBe("−5 %");
  });
});

describe("times", () => {
  it("shows the workspace's timezone and UTC on hover", () => {
    const iso = "2026-11-24T14:05:00Z";
    expect(dateTime(iso, "Europe/Berlin")).toBe("Nov 24, 2026, 15:05");
    expect(dateTime(iso, "UTC")).toBe("Nov 24, 2026, 14:05");
    expect(utcTitle(iso)).toBe("2026-11-24 14:05 UTC");
  });
});
