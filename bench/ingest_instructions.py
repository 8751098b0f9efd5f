"""Instructions per batched event in the gateway's ingest code (valgrind callgrind): compare two checkouts.

Run with ``.venv/bin/python bench/ingest_instructions.py [--base PATH]`` (needs valgrind, from Debian's
``valgrind`` package; not part of ``make bench``). Timings on a shared 2-core machine drift by more than
the changes worth measuring; instruction counts do not (the same code gives the same count to 0.3 %).

What runs: ``POST /v1/ingest/llm-requests``'s handler (``ingest_http.batch``) with the real ``Ingestor``,
price catalog, event writer, answers and settler, on batches of SPEC §5's example body; Redis is
replaced by canned admission replies after the same commands are packed by hiredis, Kafka by building
the same record batch with aiokafka's builder. No HTTP and no sockets: the per-event Python work only.
Instrumentation is on for the measured requests alone (imports, start-up and a warm-up are not counted);
the cyclic collector is set up as the gateway's bootstrap sets it.
``--base`` measures another checkout's code (its ``src`` folders first on ``PYTHONPATH``) beside this one.
"""

import argparse
import asyncio
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("services/ingest-gateway/src", "libs/runtime/src", "libs/pricing/src", "libs/contracts/src")
WORKSPACE = "ws_bench0000000000001"


async def _harness(flags: Path, requests: int, batch: int) -> None:
    """The measured process: waits for ``go`` after the warm-up, runs ``requests`` batches, then says ``done``."""
    import orjson
    from aiokafka.record.default_records import DefaultRecordBatchBuilder

    from opsmeter_ingest.adapters.admission import DegradedAdmission, RedisAdmission, Settler
    from opsmeter_ingest.adapters.pricing import CatalogPriceBook
    from opsmeter_ingest.api import ingest_http
    from opsmeter_ingest.bootstrap import GC_THRESHOLDS
    from opsmeter_ingest.config import GatewaySettings
    from opsmeter_ingest.domain import OutgoingEvent
    from opsmeter_ingest.ingest import Ingestor
    from opsmeter_pricing import PriceCatalog
    from opsmeter_runtime.auth import Principal
    from opsmeter_runtime.redis_scripts import pack
    from opsmeter_runtime.testing import SPEC_EXAMPLE_BODY

    head = [b"1000000000", b"1", b"1700000000", b"-1", b"0", b"2026-12", b"0", b"0", b"advisory", b"0", b"enterprise"]

    class Scripts:
        async def call(self, name: str, keys: list[Any], args: list[Any]) -> list[bytes]:
            pack("EVALSHA", "0" * 40, len(keys), keys, args)
            return head + [b"A00"] * (len(keys) - 5)

        async def call_many(self, calls: list[tuple[str, list[Any], list[Any]]]) -> list[int]:
            for _, keys, args in calls:
                pack("EVALSHA", "0" * 40, len(keys), keys, args)
            return [0] * len(calls)

    class Sink:
        async def publish_many(self, events: list[OutgoingEvent]) -> list[str]:
            builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, 0, 1 << 20)
            for offset, event in enumerate(events):
                builder.append(offset, None, event.key, event.value, [])
            builder.build()
            return ["kafka"] * len(events)

        def refuses(self, key: bytes, size: int) -> bool:
            return False

    class Notices:
        async def reached(self, *_: Any) -> None:
            return None

    class Credentials:
        async def authenticate(self, _key: str | None, _kind: str) -> Principal:
            return Principal(WORKSPACE, "key0000000001", "api_key", "ingest")

    settings = GatewaySettings()
    admission = RedisAdmission(None, Scripts(), default_rate_limit=10**9, default_quota=10**9)  # type: ignore[arg-type]
    settler = Settler(admission, linger_s=0)
    ingestor = Ingestor(
        settings=settings,
        admission=admission,
        degraded=DegradedAdmission(10**9),
        settler=settler,
        sink=Sink(),  # type: ignore[arg-type]
        prices=CatalogPriceBook(PriceCatalog.load_default()),
        notices=Notices(),  # type: ignore[arg-type]
    )
    settling = asyncio.create_task(settler.run())
    deps = types.SimpleNamespace(settings=settings, credentials=Credentials(), ingestor=ingestor)
    bodies = [
        json.dumps({"events": [{**SPEC_EXAMPLE_BODY, "externalRequestId": f"r{n}_{i}"} for i in range(batch)]}).encode()
        for n in range(requests + 20)
    ]

    async def send(body: bytes) -> bytes:
        """One request as the server answers it: handled, then its answer serialised."""
        reply = await ingest_http.batch(deps, api_key="k", content_type="application/json", body=body)  # type: ignore[arg-type]
        if reply.status != 207:
            raise SystemExit(f"the harness's batch was answered {reply.status}")
        return orjson.dumps(reply.body)

    gc.collect()  # the collector set up as the gateway's bootstrap does
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    for body in bodies[requests:]:  # warm-up: caches, first resolutions
        await send(body)
    await settler.flush()
    _signal_and_wait(flags / "ready", flags / "go", present=True)
    for body in bodies[:requests]:
        await send(body)
    await settler.flush()
    _signal_and_wait(flags / "done", flags / "go", present=False)
    if orjson.loads(await send(bodies[-1]))["accepted"] != batch:  # not measured
        raise SystemExit("the harness's events were not all accepted")
    settling.cancel()


def _signal_and_wait(signal: Path, flag: Path, *, present: bool) -> None:
    """Tell the driver where the harness is; block (nothing else runs meanwhile) until it switched."""
    signal.touch()
    while flag.exists() != present:
        time.sleep(0.02)


def _measure(label: str, pythonpath: str | None, requests: int, batch: int, work: Path) -> subprocess.Popen[bytes]:
    flags = work / label
    flags.mkdir()
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    argv = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={flags / 'callgrind.out'}",
        sys.executable,
        __file__,
        "--child",
        str(flags),
        "--requests",
        str(requests),
        "--batch",
        str(batch),
    ]
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=(flags / "valgrind.log").open("wb"))


def _drive(process: subprocess.Popen[bytes], flags: Path, timeout_s: float) -> int:
    """Switch instrumentation on for the measured requests only; the instructions counted."""
    deadline = time.monotonic() + timeout_s

    def wait_for(name: str) -> None:
        while not (flags / name).exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the harness stopped before '{name}': see {flags / 'valgrind.log'}")
            time.sleep(0.1)

    wait_for("ready")
    subprocess.run(["callgrind_control", "-i", "on", str(process.pid)], check=True, capture_output=True)
    (flags / "go").touch()
    wait_for("done")
    subprocess.run(["callgrind_control", "-i", "off", str(process.pid)], check=True, capture_output=True)
    (flags / "go").unlink()
    if process.wait(timeout=max(1.0, deadline - time.monotonic())) != 0:
        raise SystemExit(f"the harness failed: see {flags / 'valgrind.log'}")
    for line in (flags / "callgrind.out").read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise SystemExit("callgrind wrote no totals")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--base", type=Path, default=None, help="another checkout to measure beside this one")
    parser.add_argument("--requests", type=int, default=50, help="measured requests (default 50)")
    parser.add_argument("--batch", type=int, default=100, help="events per request (default 100)")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= 1000 or not 1 <= args.batch <= 500:
        parser.error("--requests must be in [1, 1000] and --batch in [1, 500]")
    if args.child is not None:
        asyncio.run(_harness(args.child, args.requests, args.batch))
        return 0
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("needs valgrind (Debian: apt-get install valgrind)")
    runs: dict[str, str | None] = {"this checkout": None}
    if args.base is not None:
        runs[f"base {args.base}"] = os.pathsep.join(str(args.base.resolve() / s) for s in SOURCES)
    events = args.requests * args.batch
    with tempfile.TemporaryDirectory(prefix="opsmeter-instructions-") as tmp:
        started = {
            label: (_measure(f"run{i}", path, args.requests, args.batch, Path(tmp)), Path(tmp) / f"run{i}")
            for i, (label, path) in enumerate(runs.items())
        }
        for label, (process, flags) in started.items():
            total = _drive(process, flags, timeout_s=900)
            print(f"{label}: {total / events:,.0f} instructions per event ({events:,} events, batches of {args.batch})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
