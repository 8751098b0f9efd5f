"""Redis Cluster (ADR 0059): three masters started from the stack's own redis-server, and the services' Redis code.

Every key of one workspace carries the hash tag ``{ws_…}``, so its admission script, its policy spend script and
its pipelines run on one node; different workspaces land on different masters and one pipeline reaches them all.
"""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis
from redis.crc import key_slot

from opsmeter_alerting.adapters import redis as alerting_keys
from opsmeter_alerting.adapters.redis import RedisAlertStore
from opsmeter_billing.adapters import redis as billing_keys
from opsmeter_billing.adapters.redis import RedisAccountStore
from opsmeter_billing.domain import BillingAccount
from opsmeter_ingest.adapters.admission import (
    RedisAdmission,
    admission_scripts,
    idempotency_key,
    quota_key,
    rate_key,
    record_prefix,
)
from opsmeter_ingest.adapters.demo_allowance import demo_key
from opsmeter_ingest.adapters.notices import notice_key
from opsmeter_ingest.adapters.otel_attributes import otel_attributes_key
from opsmeter_ingest.ports import AdmitItem, Admitted, Repeat
from opsmeter_policy.adapters.redis import RedisSettingsStore, RedisSpendLedger, counter_key, seen_key
from opsmeter_policy.domain import Increment
from opsmeter_reporting.adapters.redis import spike_key
from opsmeter_runtime.auth import CredentialStore, issue_credential, workspace_credentials_key, workspace_key
from opsmeter_runtime.localstack import ManagedProcess, free_port, port_open, redis_server_binary, wait_for
from opsmeter_runtime.projections import (
    PlanProjection,
    PlanRecord,
    WorkspacePricesProjection,
    plan_key,
    policy_pending_key,
    policy_status_key,
)
from opsmeter_runtime.redis import redis_client
from opsmeter_runtime.rejections import rejections_key
from opsmeter_runtime.testing import selected_backend

SLOTS = 16384


def _slot(key: str) -> int:
    return int(key_slot(key.encode()))


class TestHashTags:
    def test_every_key_of_one_workspace_is_in_one_slot(self) -> None:
        ws = "ws_0123456789abcdefghij"
        event = uuid.uuid4()
        keys = [
            plan_key(ws),
            policy_status_key(ws),
            policy_pending_key(ws),
            workspace_key(ws),
            workspace_credentials_key(ws),
            rate_key(ws),
            quota_key(ws),
            idempotency_key(ws, "req-1"),
            record_prefix(ws) + "tok",
            notice_key(ws, "2026-12", 10_000),
            counter_key(ws, "day:2026-12-07"),
            seen_key(ws, event),
            spike_key(ws),
            otel_attributes_key(ws),
            rejections_key(ws, date(2026, 12, 7)),
            demo_key(ws, date(2026, 12, 7)),
        ]
        assert {_slot(k) for k in keys} == {_slot("{" + ws + "}")}
        assert all("{" + ws + "}" in k for k in keys)

    def test_alerting_and_billing_each_keep_their_keys_in_one_slot(self) -> None:
        alerting = [
            alerting_keys.QUEUE_KEY,
            alerting_keys.settings_key("ws_a"),
            alerting_keys.alert_key("al_1"),
            alerting_keys.delivery_key("dl_1"),
            alerting_keys.guard_key("decision:x"),
            alerting_keys.cooldown_key("ws_b", "budget_exceeded", "workspace"),
        ]
        billing = [billing_keys.DUE_KEY, billing_keys.account_key("ws_a"), billing_keys.owner_key("sub_1")]
        assert len({_slot(k) for k in alerting}) == 1
        assert len({_slot(k) for k in billing}) == 1


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Three masters, no replicas, slots split in three; the URL names the first node."""
    if selected_backend() != "local":
        pytest.skip("the cluster runs from the local redis-server binary; it runs in the local mode")
    root = tmp_path_factory.mktemp("redis-cluster")
    ports = [_cluster_port() for _ in range(3)]
    nodes = [
        ManagedProcess(
            name=f"redis-{port}",
            argv=[
                str(redis_server_binary()),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(_dir(root / str(port))),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--appendonly",
                "no",
                "--save",
                "",
                "--protected-mode",
                "no",
            ],
            log_path=root / f"{port}.log",
        ).start()
        for port in ports
    ]
    try:
        for node, port in zip(nodes, ports, strict=True):
            wait_for(lambda p=port: port_open(p), timeout=20, what=f"redis {port}", process=node)  # type: ignore[misc]
        asyncio.run(_form_cluster(ports))
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for node in nodes:
            node.stop()


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10,000) is free and in range too."""
    for _ in range(200):
        port = free_port()
        if port <= 55_535 and not port_open(port + 10_000):
            return port
    raise AssertionError("no free port below 55,535")


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


async def _form_cluster(ports: list[int]) -> None:
    clients = [Redis(port=port) for port in ports]
    try:
        bounds = [0, SLOTS // 3, 2 * SLOTS // 3, SLOTS]
        for i, client in enumerate(clients):
            await client.execute_command("CLUSTER ADDSLOTS", *range(bounds[i], bounds[i + 1]))  # type: ignore[no-untyped-call]
        for port in ports[1:]:
            await clients[0].execute_command("CLUSTER MEET", "127.0.0.1", port)  # type: ignore[no-untyped-call]
        for _ in range(400):
            infos = [await c.execute_command("CLUSTER INFO") for c in clients]  # type: ignore[no-untyped-call]
            if all(info["cluster_state"] == "ok" and info["cluster_known_nodes"] == "3" for info in infos):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"the cluster did not form: {infos}")
    finally:
        for client in clients:
            await client.aclose()


@pytest.fixture
async def cluster(cluster_url: str) -> AsyncIterator[Redis]:
    client = redis_client(cluster_url, cluster=True)
    yield client
    await client.aclose()


def _workspaces_on_every_master(count_per_master: int = 1) -> list[str]:
    """Workspace ids whose slots fall in each third of the slot range (one per master)."""
    found: dict[int, list[str]] = {0: [], 1: [], 2: []}
    while any(len(v) < count_per_master for v in found.values()):
        ws = f"ws_{uuid.uuid4().hex[:20]}"
        third = min(_slot("{" + ws + "}") * 3 // SLOTS, 2)
        if len(found[third]) < count_per_master:
            found[third].append(ws)
    return [ws for group in found.values() for ws in group]


def _item(name: str) -> AdmitItem:
    return AdmitItem(name, "r", 220, f"ev-{name}", orjson.dumps({"eventId": f"ev-{name}"}))


async def test_admission_limits_are_exact_per_workspace_across_the_masters(cluster_url: str, cluster: Redis) -> None:
    scripts = admission_scripts(cluster_url, timeout_s=2.0, cluster=True)
    gateway = RedisAdmission(cluster, scripts, default_rate_limit=120, default_quota=10_000)
    try:
        workspaces = _workspaces_on_every_master()
        for ws in workspaces:
            await PlanProjection(cluster).save(ws, PlanRecord("free", rate_limit_per_minute=5, monthly_request_quota=7))
        # One loop turn: every workspace's 8 requests go out in one pipeline that spans the three masters.
        calls = [gateway.admit(ws, [_item(f"{ws}-{i}")]) for ws in workspaces for i in range(8)]
        admissions = await asyncio.gather(*calls)
        for n, ws in enumerate(workspaces):
            decisions = [a.decisions[0] for a in admissions[n * 8 : (n + 1) * 8]]
            assert decisions.count(Admitted()) == 5, (ws, decisions)
            assert decisions.count("rate_limited") == 3
            assert int(await cluster.hget(quota_key(ws), "n") or 0) == 5
        first_ws = workspaces[0]
        first = next(a for a in admissions[:8] if a.decisions[0] == Admitted())
        await gateway.settle_many([(first_ws, first.period, first.token, "kafka")])
        # A repeat is checked after the rate limit (SPEC §5): give the workspace room, then repeat an accepted id.
        await PlanProjection(cluster).save(
            first_ws, PlanRecord("pro", rate_limit_per_minute=600, monthly_request_quota=7)
        )
        accepted_name = next(f"{first_ws}-{i}" for i, a in enumerate(admissions[:8]) if a is first)
        repeat = await gateway.admit(first_ws, [_item(accepted_name)])
        assert isinstance(repeat.decisions[0], Repeat)
        assert int(await cluster.hget(quota_key(first_ws), "n") or 0) == 5  # counted once
    finally:
        await scripts.close()


async def test_policy_spend_counts_each_event_once_across_the_masters(cluster: Redis) -> None:
    ledger = RedisSpendLedger(cluster)
    workspaces = _workspaces_on_every_master()
    expires = datetime.now(UTC) + timedelta(days=2)
    events = [(ws, uuid.uuid4(), [Increment("day:test", 1_000 + i, expires)]) for i, ws in enumerate(workspaces)]
    assert await ledger.add_many(events) == [True, True, True]
    assert await ledger.add_many(events) == [False, False, False]  # a redelivered batch counts nothing
    totals = await ledger.totals_many({ws: ["day:test"] for ws in workspaces})
    assert totals == {ws: {"day:test": 1_000 + i} for i, ws in enumerate(workspaces)}


async def test_settings_and_credentials_work_on_the_cluster(cluster: Redis) -> None:
    from opsmeter_contracts.policy import PolicySettingsPayload

    store = RedisSettingsStore(cluster)
    ws = _workspaces_on_every_master()[1]
    settings = PolicySettingsPayload(version=1, changed_by_credential_id="test", changed_by_role="system")
    assert await store.apply(ws, settings) is True
    assert await store.apply(ws, settings) is False
    assert ws in await store.workspaces()
    async with store.locked(ws):
        assert await store.get(ws) == settings

    credentials = CredentialStore(cluster)
    issued = issue_credential("api_key", "ingest")
    await credentials.save(ws, issued)
    principal = await credentials.authenticate(issued.plaintext, "api_key")
    assert principal is not None
    assert principal.workspace_id == ws
    assert [c["credential_id"] for c in await credentials.list_for_workspace(ws)] == [issued.credential_id]


async def test_workspace_prices_are_saved_and_read_on_the_cluster(cluster: Redis) -> None:
    """The save script writes the price hash and its change counter together: one slot (``{pricing}``)."""
    from opsmeter_contracts.pricing import WorkspacePriceRow, WorkspacePricesSetPayload

    projection = WorkspacePricesProjection(cluster)
    ws = _workspaces_on_every_master()[0]
    row = WorkspacePriceRow(
        model="acme-llama-70b",
        effective_from=datetime(2026, 12, 6, tzinfo=UTC),
        input_micro_usd_per_mtok=500_000,
        output_micro_usd_per_mtok=1_000_000,
    )
    first = WorkspacePricesSetPayload(version=1, prices=(row,), changed_by_credential_id="t", changed_by_role="owner")
    changes = await projection.changes()
    assert await projection.save(ws, first) is True
    assert await projection.save(ws, first) is False  # a replayed version changes nothing
    assert await projection.get(ws) == first
    assert await projection.changes() == changes + 1


async def test_alerting_records_and_claims_deliveries_on_the_cluster(cluster: Redis) -> None:
    store = RedisAlertStore(cluster)
    now = datetime.now(UTC)
    ws = _workspaces_on_every_master()[2]
    recorded = []
    for cooldown in (None, (alerting_keys.cooldown_key(ws, "budget_exceeded", "workspace"), 300)):
        alert_id, delivery_id = f"al_{uuid.uuid4().hex}", f"dl_{uuid.uuid4().hex}"
        alert = {"alertId": alert_id, "workspaceId": ws, "createdAt": now.isoformat()}
        delivery = {"deliveryId": delivery_id, "workspaceId": ws}
        guard = f"decision:{uuid.uuid4()}"
        assert await store.record(alert, [delivery], guard=guard, cooldown=cooldown, due=now) == 1
        assert await store.record(alert, [delivery], guard=guard, cooldown=cooldown, due=now) == 0  # seen before
        recorded.append(delivery_id)
    claimed = await store.claim_due(now + timedelta(seconds=1), lease_s=60)
    assert set(recorded) <= set(claimed)


async def test_billing_changes_an_account_and_its_due_entry_in_one_transaction(cluster: Redis) -> None:
    store = RedisAccountStore(cluster)
    ws = _workspaces_on_every_master()[0]
    linked = BillingAccount(workspace_id=ws, plan="pro", subscription_id="sub_1", needs_poll=True)

    def link(current: BillingAccount | None) -> tuple[BillingAccount | None, str]:
        assert current is None
        return linked, "linked"

    assert await store.update(ws, link) == "linked"
    assert await store.get(ws) == linked
    assert ws in await store.due_for_reconciliation(time.time(), limit=1000)  # a fresh link is polled first
