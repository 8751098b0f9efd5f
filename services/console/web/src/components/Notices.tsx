import { useEffect, useRef, useState } from "react";
import { Link } from "react-router-dom";
import { bannerFor, newToasts, toastsFor, type Flags, type Toast } from "../flags";

/** The notes' toasts (once per time a flag turns on) and the upgrade banner, for the workspace's current flags. */
export function Notices({ flags }: { flags: Flags | undefined }) {
  const shown = useRef(new Set<string>());
  const [toasts, setToasts] = useState<Toast[]>([]);
  useEffect(() => {
    if (!flags) return;
    const fresh = newToasts(flags, shown.current);
    const active = new Set(toastsFor(flags).map((t) => t.id));
    for (const id of [...shown.current]) if (!active.has(id as Toast["id"])) shown.current.delete(id);
    for (const t of fresh) shown.current.add(t.id);
    if (fresh.length) setToasts((now) => [...now.filter((t) => !fresh.some((f) => f.id === t.id)), ...fresh]);
  }, [flags]);
  const banner = flags ? bannerFor(flags) : null;
  return (
    <>
      {banner && (
        <div className="banner" role="alert">
          <span>{banner}</span>
          <Link className="button primary" to="/billing">Upgrade plan</Link>
        </div>
      )}
      <div className="toasts" aria-live="polite">
        {toasts.map((t) => (
          <div key={t.id} className={`toast ${t.level}`} role="status">
            <div>
              <strong>{t.title}</strong>
              <p>{t.detail}</p>
              {t.id === "budget-exceeded" && <Link to="/spike">Review drivers</Link>}
            </div>
            <button aria-label="Dismiss" onClick={() => setToasts((now) => now.filter((x) => x.id !== t.id))}>×</button>
          </div>
        ))}
      </div>
    </>
  );
}
