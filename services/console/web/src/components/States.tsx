import type { ReactNode } from "react";
import { ApiError } from "../api/client";

export function Loading({ what }: { what: string }) {
  return <div className="state loading" role="status">Loading {what}…</div>;
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="state empty">{children}</div>;
}

export function Failed({ error }: { error: unknown }) {
  if (error instanceof ApiError && error.reason === "plan_required") {
    const needed = typeof error.body.requiredPlan === "string" ? error.body.requiredPlan : "a higher";
    return (
      <div className="state gate">
        <strong>Needs the {needed.charAt(0).toUpperCase() + needed.slice(1)} plan or above.</strong>{" "}
        {error.message} <a href="/billing">See plans and upgrade</a>
      </div>
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return <div className="state error" role="alert">Could not load: {message}</div>;
}

/** The query's three states around its content. */
export function Query<T>({ q, what, children }: { q: { isPending: boolean; error: unknown; data: T | undefined }; what: string; children: (data: T) => ReactNode }) {
  if (q.error) return <Failed error={q.error} />;
  if (q.isPending || q.data === undefined) return <Loading what={what} />;
  return <>{children(q.data)}</>;
}
