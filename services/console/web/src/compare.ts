import content from "./content/compare.json";

export interface Vendor {
  slug: string;
  vendor: string;
  title: string;
  lastVerified: string;
  summary: string;
  rows: string[][];
  sources: { label: string; url: string }[];
}

export const VENDORS: Vendor[] = content.vendors;
export const STALE_AFTER_DAYS = 30;

/** Whole days since the page was verified (UTC days). */
export function daysSinceVerified(lastVerified: string, now: number = Date.now()): number {
  return Math.floor((now - Date.parse(`${lastVerified}T00:00:00Z`)) / 86_400_000);
}

/** Stale at 30 days or more since verification. */
export function isStale(lastVerified: string, now: number = Date.now()): boolean {
  return daysSinceVerified(lastVerified, now) >= STALE_AFTER_DAYS;
}
