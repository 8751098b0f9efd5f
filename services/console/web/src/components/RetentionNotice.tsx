import type { RetentionNotice as Notice } from "../api/types";

/** SPEC §8: a range that starts before the plan's raw-event window says so; the figures leave that part out. */
export function RetentionNotice({ answers }: { answers: (Notice | undefined)[] }) {
  const applied = answers.find((a) => a?.retentionWindowApplied);
  if (!applied) return null;
  return (
    <p className="notice" role="status" data-testid="retention-notice">
      <strong>Retention window applied.</strong> Your plan keeps event detail for {applied.rawRetentionDays} days: the
      figures here leave out anything older, and so does the comparison with the period before.
    </p>
  );
}
