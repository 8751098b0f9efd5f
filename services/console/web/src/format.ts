// The one place for number and date formats: money as people read it, counts, changes and times.

const usd2 = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 2 });

function toNumber(value: string | number | null | undefined): number | null {
  if (value === null || value === undefined || value === "") return null;
  const n = typeof value === "number" ? value : Number(value);
  return Number.isFinite(n) ? n : null;
}

/** `$13.22`, `$1,204.50`; amounts under a cent keep two significant digits (`$0.0042`). */
export function money(value: string | number | null | undefined): string {
  const n = toNumber(value);
  if (n === null) return "—";
  const abs = Math.abs(n);
  if (abs === 0 || abs >= 0.01) return usd2.format(n);
  const digits = Math.min(6, Math.max(2, 1 - Math.floor(Math.log10(abs))));
  return (n < 0 ? "-$" : "$") + abs.toFixed(digits);
}

/** A change of money with its sign: `+$0.87`, `−$0.85`. */
export function signedMoney(value: string | number | null | undefined): string {
  const text = money(value);
  if (text === "—" || text === "$0.00") return text;
  return text.startsWith("-") ? `−${text.slice(1)}` : `+${text}`;
}

/** Money from integer micro-USD. */
export function microMoney(micro: number | null | undefined): string {
  return micro === null || micro === undefined ? "—" : money(micro / 1_000_000);
}

/** `231`, `12.3K`, `4.6M`, `1.2B`. */
export function compact(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  const abs = Math.abs(value);
  const units: [number, string][] = [[1e9, "B"], [1e6, "M"], [1e3, "K"]];
  for (const [size, suffix] of units) {
    if (abs >= size) {
      const scaled = value / size;
      return `${Math.abs(scaled) >= 100 ? scaled.toFixed(0) : scaled.toFixed(1).replace(/\.0$/, "")}${suffix}`;
    }
  }
  return String(Math.round(value));
}

/** `4.6M tokens`, `1 token`. */
export function tokens(value: number | null | undefined): string {
  return value === 1 ? "1 token" : `${compact(value)} tokens`;
}

/** `1,234 requests`. */
export function requests(value: number | null | undefined): string {
  if (value === null || value === undefined) return "—";
  return `${value.toLocaleString("en-US")} ${value === 1 ? "request" : "requests"}`;
}

/** A change ratio as a signed percentage: 1.3359 → `+134 %`, -0.05 → `−5 %`; null (no baseline) → `new`. */
export function change(ratio: string | number | null | undefined): string {
  const n = toNumber(ratio);
  if (n === null) return "new";
  const pct = Math.round(n * 100);
  if (pct === 0) return "0 %";
  return `${pct > 0 ? "+" : "−"}${Math.abs(pct).toLocaleString("en-US")} %`;
}

/** Change between two amounts as a ratio of the previous one; null without a baseline. */
export function changeRatio(current: number, previous: number): number | null {
  return previous === 0 ? null : (current - previous) / previous;
}

/** A share as a percentage: 0.253 → `25 %`; small shares keep one decimal (`0.4 %`). */
export function share(ratio: string | number | null | undefined): string {
  const n = toNumber(ratio);
  if (n === null) return "—";
  const pct = n * 100;
  if (Math.abs(pct) < 0.05) return "0 %";
  const digits = Math.abs(pct) < 1 ? 1 : 0;
  return `${pct < 0 ? "−" : ""}${Math.abs(pct).toFixed(digits)} %`;
}

/** A time in the workspace's timezone: `Dec 7, 2026, 14:05`. */
export function dateTime(iso: string, timeZone: string): string {
  return new Intl.DateTimeFormat("en-US", {
    timeZone, year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  }).format(new Date(iso));
}

/** A day in the workspace's timezone: `Dec 7`. */
export function day(iso: string, timeZone: string): string {
  return new Intl.DateTimeFormat("en-US", { timeZone, month: "short", day: "numeric" }).format(new Date(iso));
}

/** The same moment in UTC, for the hover title: `2026-12-07 14:05 UTC`. */
export function utcTitle(iso: string): string {
  return new Date(iso).toISOString().slice(0, 16).replace("T", " ") + " UTC";
}
