"""``make soak``: a long steady load at about half the gateway's capacity on a stack of its own.

    .venv/bin/python bench/soak.py [--minutes 30] [--rate 300] [--write docs/reliability.md]

Passes when, at the end, every service's resident memory grew less than 10 % over its size after the warm-up
(the first tenth of the run, at least a minute when the run is long enough), the gateway's spool is back to 0,
and loadgen's oracle agrees with every answer (each 2xx counted once in /usage, spend and the plan counter).
The default rate is half of the single-event figure in docs/benchmarks.md (600 requests/s on this 2-core host,
where the gateway shares the cores with the broker, Redis, the consumers and the load generator).
"""

import argparse
import asyncio
import re
import sys
import time
from pathlib import Path

from report import machine, write_section

from opsmeter_cli import loadgen
from opsmeter_cli.chaos import LIMITS, RETRY_FOR_S, Run, Scenario, Size, judge, own_stack, urls_of
from opsmeter_cli.loadgen import Answer
from opsmeter_cli.stack import SERVICES, Stack, operator_token

RSS_GROWTH_LIMIT = 0.10
CHUNK_S = 60
_SPOOL = re.compile(r"^opsmeter_spool_events ([0-9.e+]+)$", re.MULTILINE)


async def _no_fault(_run: Run) -> None:
    return None


STEADY = Scenario("soak", "none: a steady load", _no_fault)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def service_rss(stack: Stack) -> dict[str, int]:
    return {s.name: rss_bytes(pid) for s in SERVICES if (pid := stack.processes[s.name].pid) is not None}


async def soak(stack: Stack, minutes: float, rate: int, page: Path | None = None) -> int:
    urls = urls_of(stack)
    total_s = max(1, round(minutes * 60))
    warm_up_s = max(1, min(60, total_s // 10)) if total_s >= 600 else max(1, total_s // 10)
    async with loadgen.client(80) as http:
        run = Run(stack, http, urls, Size(rate, total_s, 0))
        token = operator_token(stack.config)
        workspaces = await loadgen.create_workspaces(http, urls, token, 4, "enterprise", LIMITS)
        before = await loadgen.gateway_rejections(http, urls.gateway)
        started = time.monotonic()
        answers: list[Answer] = []
        baseline: dict[str, int] | None = None
        peak: dict[str, int] = {}
        sent_s = 0
        while sent_s < total_s:
            chunk = min(CHUNK_S, total_s - sent_s, warm_up_s if baseline is None else CHUNK_S)
            answers += await loadgen.send(
                urls.gateway, workspaces, rate=rate, duration_s=chunk, seed=sent_s, retry_for_s=RETRY_FOR_S
            )
            sent_s += chunk
            now_rss = service_rss(stack)
            if baseline is None:
                baseline = now_rss
            peak = {name: max(peak.get(name, 0), size) for name, size in now_rss.items()}
            rss = ", ".join(f"{name} {size / 2**20:.0f}" for name, size in now_rss.items())
            print(f"   {sent_s:>5} s sent, {len(answers):,} answers; RSS MiB: {rss}", flush=True)
        sent_for = time.monotonic() - started
        outcome = await judge(run, STEADY, run.size, workspaces, answers, before, None, started)
        spool = 1.0
        deadline = time.monotonic() + 60
        while spool and time.monotonic() < deadline:
            found = _SPOOL.search((await http.get(f"{urls.gateway}/metrics")).text)
            spool = float(found.group(1)) if found else 1.0
            await asyncio.sleep(0.5)
    end = service_rss(stack)
    assert baseline is not None
    seconds = time.monotonic() - started
    failures = list(outcome.problems)
    rows = []
    print(f"answers by status {outcome.by_status} ({len(answers) / sent_for:,.0f}/s while sending)")
    print(f"lost {outcome.lost}, double-counted {outcome.double_counted}")
    for name, first in baseline.items():
        growth = (end[name] - first) / first
        print(f"   {name:<15} RSS {first / 2**20:7.1f} MiB -> {end[name] / 2**20:7.1f} MiB ({growth:+.1%})")
        rows.append(
            f"| {name} | {first / 2**20:.1f} | {peak.get(name, end[name]) / 2**20:.1f} | {end[name] / 2**20:.1f} "
            f"| {growth:+.1%} |"
        )
        if growth >= RSS_GROWTH_LIMIT:
            failures.append(f"{name}: RSS grew {growth:.1%} (limit {RSS_GROWTH_LIMIT:.0%})")
    print(f"   spool events at the end: {spool:g}")
    if spool:
        failures.append(f"the spool holds {spool:g} events after the load")
    for failure in failures:
        print(f"FAIL {failure}")
    print("soak: " + ("FAIL" if failures else "pass"))
    if page is not None:
        m = machine()
        statuses = ", ".join(f"{status}: {n:,}" for status, n in outcome.by_status.items())
        write_section(
            page,
            "soak",
            "\n".join(
                [
                    f"## Soak: {minutes:g} min at {rate}/s over 4 workspaces ({'FAIL' if failures else 'pass'})",
                    "",
                    f"Command: `python bench/soak.py --minutes {minutes:g} --rate {rate}` (`make soak`); took "
                    f"{seconds / 60:.1f} min; {len(answers) / sent_for:,.0f} answers/s while sending. Answers by "
                    f"status: {statuses}; lost {outcome.lost}, double-counted "
                    f"{outcome.double_counted}; spool at the end: {spool:g} events. Resident memory (MiB) after "
                    f"the warm-up ({warm_up_s} s), its peak at the end of a minute, and at the end (limit "
                    f"{RSS_GROWTH_LIMIT:.0%} growth):",
                    "",
                    "| service | after warm-up | peak | end | growth |",
                    "|---|---:|---:|---:|---:|",
                    *rows,
                    "",
                    *[f"- FAIL: {failure}" for failure in failures],
                    f"Machine: {m['cpu']}, {m['cores']}, {m['ram']} RAM, {m['os']}, Python {m['python']}, "
                    f"commit {m['commit']}.",
                ]
            ),
        )
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=300, help="requests/s over 4 workspaces (default: half capacity)")
    parser.add_argument("--write", type=Path, help="write the result into this page (docs/reliability.md)")
    args = parser.parse_args()
    with own_stack() as stack:
        return asyncio.run(soak(stack, args.minutes, args.rate, args.write))


if __name__ == "__main__":
    sys.exit(main())
