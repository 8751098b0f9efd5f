import { useState, type SubmitEvent } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { useNavigate } from "react-router-dom";
import { session } from "../api/client";

export function SignIn() {
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const client = useQueryClient();
  const navigate = useNavigate();
  const submit = async (e: SubmitEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const who = await session.signIn(token.trim());
      setToken("");
      client.setQueryData(["session"], who);
      void navigate("/overview", { replace: true });
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="signin">
      <form onSubmit={(e) => void submit(e)} className="card">
        <h1>Opsmeter</h1>
        <p className="muted">Sign in with a workspace admin token (owner, admin or member). It stays in an httpOnly session cookie.</p>
        <label htmlFor="token">Admin token</label>
        <input id="token" type="password" autoComplete="off" placeholder="om_adm_…" value={token} onChange={(e) => setToken(e.target.value)} required />
        {!error && session.ended() && <p className="notice" role="status">Your session ended (it expired, you signed out elsewhere, or the token was revoked). Sign in again.</p>}
        {error && <p className="error" role="alert">{error}</p>}
        <button className="primary" type="submit" disabled={busy || !token.trim()}>{busy ? "Signing in…" : "Sign in"}</button>
        <p className="muted small">No token yet? <code>opsmeter demo</code> or <code>opsmeter workspace create</code> prints one. <a href="/compare">Compare Opsmeter</a> · <a href="/guides/ai-cost-spike">AI cost spike guide</a></p>
      </form>
    </div>
  );
}
