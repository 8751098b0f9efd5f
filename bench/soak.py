"""``make soak``: a long steady load at about half the gateway's capacity on a stack of its own.

    .venv/bin/python bench/soak.py [--minutes 30] [--rate 400]

Passes when, at the end, every service's resident memory grew less than 10 % over its size after the warm-up
(the first tenth of the run, at least a minute when the run is long enough), the gateway's spool is back to 0,
and loadgen's oracle agrees with every answer (each 2xx counted once in /usage, spend and the plan counter).
The default rate is about half of the single-event figure in docs/benchmarks.md (880/s).
"""

import argparse
import asyncio
import re
import sys
import time
from pathlib import Path

import httpx

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


async def soak(stack: Stack, minutes: float, rate: int) -> int:
    urls = urls_of(stack)
    total_s = max(1, round(minutes * 60))
    warm_up_s = max(1, min(60, total_s // 10)) if total_s >= 600 else max(1, total_s // 10)
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=80)) as http:
        run = Run(stack, http, urls, Size(rate, total_s, 0))
        token = operator_token(stack.config)
        workspaces = await loadgen.create_workspaces(http, urls, token, 4, "enterprise", LIMITS)
        before = await loadgen.gateway_rejections(http, urls.gateway)
        started = time.monotonic()
        answers: list[Answer] = []
        baseline: dict[str, int] | None = None
        sent_s = 0
        while sent_s < total_s:
            chunk = min(CHUNK_S, total_s - sent_s, warm_up_s if baseline is None else CHUNK_S)
            answers += await loadgen.send(
                http, urls.gateway, workspaces, rate=rate, duration_s=chunk, seed=sent_s, retry_for_s=RETRY_FOR_S
            )
            sent_s += chunk
            if baseline is None:
                baseline = service_rss(stack)
            print(f"   {sent_s:>5} s sent, {len(answers):,} answers", flush=True)
        outcome = await judge(run, STEADY, run.size, workspaces, answers, before, None, started)
        spool = 1.0
        deadline = time.monotonic() + 60
        while spool and time.monotonic() < deadline:
            found = _SPOOL.search((await http.get(f"{urls.gateway}/metrics")).text)
            spool = float(found.group(1)) if found else 1.0
            await asyncio.sleep(0.5)
    end = service_rss(stack)
    assert baseline is not None
    failures = list(outcome.problems)
    print(f"answers by status {outcome.by_status}; lost {outcome.lost}, double-counted {outcome.double_counted}")
    for name, first in baseline.items():
        growth = (end[name] - first) / first
        print(f"   {name:<15} RSS {first / 2**20:7.1f} MiB -> {end[name] / 2**20:7.1f} MiB ({growth:+.1%})")
        if growth >= RSS_GROWTH_LIMIT:
            failures.append(f"{name}: RSS grew {growth:.1%} (limit {RSS_GROWTH_LIMIT:.0%})")
    print(f"   spool events at the end: {spool:g}")
    if spool:
        failures.append(f"the spool holds {spool:g} events after the load")
    for failure in failures:
        print(f"FAIL {failure}")
    print("soak: " + ("FAIL" if failures else "pass"))
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=400, help="requests/s over 4 workspaces (default ~half capacity)")
    args = parser.parse_args()
    with own_stack() as stack:
        return asyncio.run(soak(stack, args.minutes, args.rate))


if __name__ == "__main__":
    sys.exit(main())
