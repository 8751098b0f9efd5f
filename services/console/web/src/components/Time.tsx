import { dateTime, utcTitle } from "../format";
import { useWorkspace } from "../context";

/** A time in the workspace's timezone; UTC on hover. */
export function Time({ iso }: { iso: string | null | undefined }) {
  const { timeZone } = useWorkspace();
  if (!iso) return <span>—</span>;
  return <time dateTime={iso} title={utcTitle(iso)}>{dateTime(iso, timeZone)}</time>;
}
