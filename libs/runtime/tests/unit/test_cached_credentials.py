"""A known caller never waits for Redis; a revoked one is refused after one check in the background."""

import asyncio

import pytest
from redis.exceptions import TimeoutError as RedisTimeout

from opsmeter_runtime.auth import CachedCredentials, CredentialStore, Kind, Principal

ALICE = Principal(workspace_id="ws_a", credential_id="k1", kind="api_key", role="owner")
KEY = "om_live_k1_secret"


class SlowStore:
    """Stands in for the Redis credential store (the cache's logic under test)."""

    def __init__(self) -> None:
        self.answer: Principal | None = ALICE
        self.known = {KEY}
        self.delay_s = 0.0
        self.down = False
        self.checks = 0

    async def authenticate(self, presented: str | None, kind: Kind) -> Principal | None:
        self.checks += 1
        await asyncio.sleep(self.delay_s)
        if self.down:
            raise RedisTimeout("Timeout reading from socket")
        return self.answer if presented in self.known else None

    async def touch(self, credential_id: str) -> None:
        await asyncio.sleep(self.delay_s)


def _cache(store: SlowStore) -> CachedCredentials:
    return CachedCredentials(store, ttl_s=0.05)  # type: ignore[arg-type]


async def test_a_known_caller_is_answered_at_once_while_redis_is_slow() -> None:
    store = SlowStore()
    cache = _cache(store)
    assert await cache.authenticate(KEY, "api_key") == ALICE
    await asyncio.sleep(0.06)
    store.delay_s, store.down = 0.3, True
    async with asyncio.timeout(0.05):
        assert await cache.authenticate(KEY, "api_key") == ALICE
        await asyncio.sleep(0)
        assert await cache.authenticate(KEY, "api_key") == ALICE
    assert store.checks == 2  # one check in the background, not one per request
    await asyncio.sleep(0.35)
    assert await cache.authenticate(KEY, "api_key") == ALICE  # verified within stale_s: fails open


async def test_a_revoked_key_is_refused_once_the_background_check_answers() -> None:
    store = SlowStore()
    cache = _cache(store)
    assert await cache.authenticate(KEY, "api_key") == ALICE
    await asyncio.sleep(0.06)
    store.answer = None
    assert await cache.authenticate(KEY, "api_key") == ALICE  # still within one check
    await asyncio.sleep(0.01)
    assert await cache.authenticate(KEY, "api_key") is None


async def test_an_unknown_key_waits_for_redis_and_fails_when_it_is_away() -> None:
    store = SlowStore()
    store.down = True
    with pytest.raises(RedisTimeout):
        await _cache(store).authenticate("om_live_new1_secret", "api_key")


def test_the_store_has_what_the_cache_uses() -> None:
    assert {"authenticate", "touch"} <= set(dir(CredentialStore))


async def test_a_flood_of_unknown_keys_does_not_evict_a_known_caller() -> None:
    store = SlowStore()
    cache = CachedCredentials(store, ttl_s=0.05)  # type: ignore[arg-type]
    cache.MAX_ENTRIES = 50
    assert await cache.authenticate(KEY, "api_key") == ALICE
    for n in range(120):
        assert await cache.authenticate(f"om_live_junk{n}_secret", "api_key") is None
    await asyncio.sleep(0.06)
    store.down = True  # Redis stalls: the known caller is still answered (fails open), not refused
    assert await cache.authenticate(KEY, "api_key") == ALICE


async def test_a_malformed_key_is_refused_without_asking_redis() -> None:
    store = SlowStore()
    store.down = True
    assert await _cache(store).authenticate("not-a-key", "api_key") is None
    assert store.checks == 0
