import { change, changeRatio } from "../format";

/**
 * A key figure and its change against an earlier period of the same length ("previous" by default, as `against`
 * names it); up is bad unless `invert` (nothing here yet: spend, volume, cost and errors all read that way).
 */
export function Kpi({ label, value, current, previous, invert = false, testId, against = "previous" }: { label: string; value: string; current: number | null; previous: number | null; invert?: boolean; testId: string; against?: string }) {
  const ratio = current !== null && previous !== null ? changeRatio(current, previous) : null;
  const up = ratio !== null && ratio > 0;
  const tone = ratio === null || Math.round(ratio * 100) === 0 ? "flat" : up !== invert ? "bad" : "good";
  return (
    <div className="kpi card" data-testid={testId}>
      <div className="label">{label}</div>
      <div className="value">{value}</div>
      <div className={`delta ${tone}`} title={`against the ${against} period of the same length`}>
        {previous === null ? "" : ratio === null ? (current ? `new vs ${against} period` : "no change") : `${change(ratio)} vs ${against}`}
      </div>
    </div>
  );
}
