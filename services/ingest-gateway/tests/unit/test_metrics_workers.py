"""Metrics of several worker processes: one scrape answers for all of them (prometheus-client multiprocess mode)."""

import subprocess
import sys
from pathlib import Path

import pytest

from opsmeter_ingest.metrics import exposition

WORKER = """
from opsmeter_ingest.metrics import INGEST_EVENTS, SPOOL_DEPTH
INGEST_EVENTS.labels("202", "accepted").inc({accepted})
SPOOL_DEPTH.set({spooled})
"""


def worker(directory: Path, *, accepted: int, spooled: int) -> None:
    """A worker process that answered ``accepted`` events, left ``spooled`` in its spool, and exited."""
    subprocess.run(
        [sys.executable, "-c", WORKER.format(accepted=accepted, spooled=spooled)],
        env={"PROMETHEUS_MULTIPROC_DIR": str(directory), "PATH": ""},
        check=True,
    )


def sample(text: str, prefix: str) -> float | None:
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)]
    return sum(values) if values else None


def test_a_scrape_sums_every_workers_counters_and_forgets_the_spools_of_dead_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker(tmp_path, accepted=3, spooled=5)
    worker(tmp_path, accepted=4, spooled=7)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    text = exposition().decode()
    assert sample(text, 'opsmeter_ingest_events_total{reason="accepted",status="202"}') == 7
    # both workers are gone: their spools are another process's now, not events waiting here
    assert not sample(text, "opsmeter_spool_events")
