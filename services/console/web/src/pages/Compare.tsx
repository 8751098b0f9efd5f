import { Link, useParams } from "react-router-dom";
import { daysSinceVerified, isStale, VENDORS } from "../compare";

function PublicShell({ title, children }: { title: string; children: React.ReactNode }) {
  return (
    <div className="public">
      <title>{title}</title>
      <meta name="robots" content="index,follow" />
      <header className="topbar"><Link className="brand" to="/compare">Opsmeter</Link><nav className="open"><Link to="/compare">Compare</Link><Link to="/guides/ai-cost-spike">AI cost spike guide</Link><Link to="/">Sign in</Link></nav></header>
      <main>{children}</main>
    </div>
  );
}

export function CompareIndex() {
  return (
    <PublicShell title="Compare Opsmeter">
      <div className="page">
        <h1>Compare Opsmeter</h1>
        <ul className="cards">
          {VENDORS.map((v) => (
            <li key={v.slug} className="card">
              <h2><Link to={`/compare/${v.slug}`}>{v.title}</Link>{isStale(v.lastVerified) && <span className="badge stale">Stale</span>}</h2>
              <p>{v.summary}</p>
              <p className="muted small">Last verified {v.lastVerified}</p>
            </li>
          ))}
        </ul>
      </div>
    </PublicShell>
  );
}

export function ComparePage() {
  const { vendor } = useParams();
  const v = VENDORS.find((x) => x.slug === vendor);
  if (!v) return <PublicShell title="Not found"><div className="page"><h1>No such comparison</h1><Link to="/compare">All comparisons</Link></div></PublicShell>;
  const stale = isStale(v.lastVerified);
  return (
    <PublicShell title={v.title}>
      <article className="page">
        <h1>{v.title} {stale && <span className="badge stale" data-testid="stale-badge">Stale</span>}</h1>
        <p className="muted">Last verified <time dateTime={v.lastVerified}>{v.lastVerified}</time> ({daysSinceVerified(v.lastVerified)} days ago)</p>
        {stale && (
          <p className="notice" role="alert">
            This comparison was last verified {daysSinceVerified(v.lastVerified)} days ago. {v.vendor} may have changed since: re-check the vendor's docs (sources below) before making a purchasing decision.
          </p>
        )}
        <p>{v.summary}</p>
        <div className="scroll">
          <table className="table">
            <thead><tr><th></th><th>Opsmeter</th><th>{v.vendor}</th></tr></thead>
            <tbody>{v.rows.map(([what, ours, theirs]) => <tr key={what}><th scope="row">{what}</th><td>{ours}</td><td>{theirs}</td></tr>)}</tbody>
          </table>
        </div>
        <h2>Sources</h2>
        <ul>{v.sources.map((s) => <li key={s.url}><a href={s.url} rel="noopener nofollow" target="_blank">{s.label}</a> <span className="muted small">{s.url}</span></li>)}</ul>
        <p className="muted small">Facts about {v.vendor} come from its public docs as of the date above. See also the <Link to="/guides/ai-cost-spike">AI cost spike guide</Link>.</p>
      </article>
    </PublicShell>
  );
}

export { PublicShell };
