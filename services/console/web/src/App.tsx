import { useEffect, useState } from "react";
import { Navigate, NavLink, Route, Routes, useNavigate } from "react-router-dom";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { api, SESSION_ENDED, session as sessions, setWorkspace, type Session } from "./api/client";
import type { DataMode } from "./api/types";
import { WorkspaceContext, type Workspace } from "./context";
import { Notices } from "./components/Notices";
import { Loading } from "./components/States";
import { SignIn } from "./pages/SignIn";
import { Overview } from "./pages/Overview";
import { Settings } from "./pages/Settings";
import { Spike } from "./pages/Spike";
import { Reports } from "./pages/Reports";
import { Billing } from "./pages/Billing";
import { Onboarding } from "./pages/Onboarding";
import { CompareIndex, ComparePage } from "./pages/Compare";
import { SpikeGuide } from "./pages/SpikeGuide";

export function App() {
  return (
    <Routes>
      <Route path="/compare" element={<CompareIndex />} />
      <Route path="/compare/:vendor" element={<ComparePage />} />
      <Route path="/guides/ai-cost-spike" element={<SpikeGuide />} />
      <Route path="*" element={<SignedInApp />} />
    </Routes>
  );
}

function SignedInApp() {
  const client = useQueryClient();
  const who = useQuery({ queryKey: ["session"], queryFn: () => sessions.current(), staleTime: 60_000 });
  useEffect(() => {
    const ended = () => {
      client.setQueryData(["session"], null);
      client.removeQueries({ predicate: (q) => q.queryKey[0] !== "session" });
    };
    window.addEventListener(SESSION_ENDED, ended);
    return () => window.removeEventListener(SESSION_ENDED, ended);
  }, [client]);
  if (who.isPending) return <Loading what="your session" />;
  if (!who.data) {
    return (
      <Routes>
        <Route path="/" element={<SignIn />} />
        <Route path="*" element={<Navigate to="/" replace />} />
      </Routes>
    );
  }
  return <Layout session={who.data} />;
}

const THIRTY_DAYS_MS = 30 * 86_400_000;

function useDefaultDataMode(workspaceId: string): DataMode | undefined {
  // Fixed when the layout mounts (a lazy initial state), so the probes keep one query key.
  const [from] = useState(() => new Date(Date.now() - THIRTY_DAYS_MS).toISOString());
  const probe = (mode: DataMode) => ({
    queryKey: ["usage-probe", workspaceId, mode],
    queryFn: () => api.get("reporting", "/v1/workspaces/{workspace_id}/usage", { query: { from, groupBy: "day", dataMode: mode } }),
    staleTime: 300_000,
  });
  const real = useQuery(probe("real"));
  const demo = useQuery(probe("demo"));
  if (real.isPending || demo.isPending) return undefined;
  const realCount = real.data?.totals.requests ?? 0;
  const demoCount = demo.data?.totals.requests ?? 0;
  return realCount === 0 && demoCount > 0 ? "demo" : "real";
}

function Layout({ session }: { session: Session }) {
  setWorkspace(session.workspaceId);
  const navigate = useNavigate();
  const client = useQueryClient();
  const [chosen, setChosen] = useState<DataMode | null>(() => (sessionStorage.getItem(`mode:${session.workspaceId}`) as DataMode | null) ?? null);
  const detected = useDefaultDataMode(session.workspaceId);
  const dataMode = chosen ?? detected;
  const status = useQuery({
    queryKey: ["status", session.workspaceId],
    queryFn: () => api.get("gateway", "/v1/workspaces/{workspace_id}/status"),
    refetchInterval: 4_000,
  });
  const alerts = useQuery({
    queryKey: ["alert-settings", session.workspaceId],
    queryFn: () => api.get("alerting", "/v1/workspaces/{workspace_id}/alerts/settings"),
  });
  const [menuOpen, setMenuOpen] = useState(false);
  // A change of data mode closes the menu: state adjusted while rendering, keyed on the last mode rendered.
  const [menuMode, setMenuMode] = useState(dataMode);
  if (menuMode !== dataMode) {
    setMenuMode(dataMode);
    setMenuOpen(false);
  }

  const signOut = async () => {
    // From its first step no API request leaves the page (api/client.ts); the signed-out view once the cookie
    // is gone, and with it the workspace's queries.
    await sessions.signOut();
    client.setQueryData(["session"], null);
    client.removeQueries({ predicate: (q) => q.queryKey[0] !== "session" });
    void navigate("/", { replace: true });
  };
  if (dataMode === undefined) return <Loading what="the workspace" />;
  const workspace: Workspace = {
    session,
    canChange: session.role === "owner" || session.role === "admin",
    dataMode,
    setDataMode: (mode) => {
      sessionStorage.setItem(`mode:${session.workspaceId}`, mode);
      setChosen(mode);
    },
    timeZone: alerts.data?.schedule.timezone ?? "UTC",
  };
  const pages: [string, string][] = [
    ["/overview", "Overview"],
    ["/spike", "Investigate Spike"],
    ["/reports", "Reports"],
    ["/settings", "Settings"],
    ["/billing", "Billing"],
    ["/onboarding", "Onboarding"],
  ];
  return (
    <WorkspaceContext.Provider value={workspace}>
      <header className="topbar">
        <div className="brand">Opsmeter</div>
        <button className="menu" aria-label="Menu" onClick={() => setMenuOpen(!menuOpen)}>☰</button>
        <nav className={menuOpen ? "open" : ""} onClick={() => setMenuOpen(false)}>
          {pages.map(([to, label]) => (
            <NavLink key={to} to={to}>{label}</NavLink>
          ))}
        </nav>
        <div className="who">
          <label className="mode">
            Data
            <select aria-label="Data mode" value={dataMode} onChange={(e) => workspace.setDataMode(e.target.value as DataMode)}>
              <option value="real">real</option>
              <option value="demo">demo</option>
              <option value="test">test</option>
            </select>
          </label>
          <span className="role" title={session.workspaceId}>{session.role}</span>
          <button onClick={() => void signOut()}>Sign out</button>
        </div>
      </header>
      <Notices flags={status.data} />
      <main>
        <Routes>
          <Route path="/" element={<Navigate to="/overview" replace />} />
          <Route path="/overview" element={<Overview status={status.data} />} />
          <Route path="/spike" element={<Spike />} />
          <Route path="/reports" element={<Reports />} />
          <Route path="/settings" element={<Settings />} />
          <Route path="/billing" element={<Billing status={status.data} />} />
          <Route path="/onboarding" element={<Onboarding />} />
          <Route path="*" element={<Navigate to="/overview" replace />} />
        </Routes>
      </main>
    </WorkspaceContext.Provider>
  );
}
