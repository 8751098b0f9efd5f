"""Credentials: ingest API keys and admin tokens, stored only as SHA-256 hashes in Redis.

A credential reads ``<prefix>_<credential id>_<secret>``. The id finds the record; the secret's hash
is compared in constant time. The workspace always comes from the record, never from a request body.
"""

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from redis.asyncio import Redis
from redis.exceptions import RedisError

from opsmeter_runtime.logs import get_logger
from opsmeter_runtime.redis import decode_hash, workspace_tag

log = get_logger(__name__)

Kind = Literal["api_key", "admin_token"]
Role = Literal["owner", "admin", "member", "ingest"]

_PREFIXES: dict[str, Kind] = {"om_live": "api_key", "om_test": "api_key", "om_adm": "admin_token"}
_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def credential_key(credential_id: str) -> str:
    return f"opsmeter:cred:{credential_id}"


def workspace_key(workspace_id: str) -> str:
    return f"opsmeter:ws:{workspace_tag(workspace_id)}"


def workspace_credentials_key(workspace_id: str) -> str:
    return f"opsmeter:ws:{workspace_tag(workspace_id)}:credentials"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_id(prefix: str, length: int = 16) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


@dataclass(frozen=True)
class IssuedCredential:
    """The only moment the plaintext exists: returned once to the caller, never stored."""

    credential_id: str
    kind: Kind
    role: Role
    plaintext: str
    secret_sha256: str
    display_prefix: str


@dataclass(frozen=True)
class Principal:
    workspace_id: str
    credential_id: str
    kind: Kind
    role: Role


def issue_credential(kind: Kind, role: Role, *, live: bool = True) -> IssuedCredential:
    prefix = "om_adm" if kind == "admin_token" else ("om_live" if live else "om_test")
    credential_id = new_id("", 12)
    secret = secrets.token_hex(24)
    plaintext = f"{prefix}_{credential_id}_{secret}"
    return IssuedCredential(
        credential_id=credential_id,
        kind=kind,
        role=role,
        plaintext=plaintext,
        secret_sha256=sha256_hex(secret),
        display_prefix=f"{prefix}_{credential_id}",
    )


def parse_credential(presented: str) -> tuple[Kind, str, str] | None:
    """Split a presented credential into (kind, credential id, secret), or None when malformed."""
    parts = presented.strip().rsplit("_", 2)
    if len(parts) != 3:
        return None
    prefix, credential_id, secret = parts
    kind = _PREFIXES.get(prefix)
    if kind is None or not credential_id.isalnum() or len(credential_id) > 32 or not secret or len(secret) > 128:
        return None
    return kind, credential_id, secret


@dataclass(frozen=True)
class StoredCredential:
    """A credential as an event carries it: the hash, never the secret."""

    credential_id: str
    kind: Kind
    role: Role
    secret_sha256: str
    display_prefix: str


class CredentialStore:
    """The Redis projection of workspaces' credentials (written by the gateway, read by every service)."""

    def __init__(self, redis: "Redis") -> None:
        self._redis = redis

    async def save(
        self,
        workspace_id: str,
        credential: IssuedCredential | StoredCredential,
        *,
        created_at: datetime | None = None,
        name: str = "",
        issued_by: str | None = None,
    ) -> None:
        """Record a credential; replaying the same issue never un-revokes it."""
        key = credential_key(credential.credential_id)
        # The credential is found by its id alone, so its key has no workspace tag and another slot than the
        # workspace's list (Redis Cluster): listed first, then written; a listed id with no record is skipped.
        await self._redis.sadd(workspace_credentials_key(workspace_id), credential.credential_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "workspace_id": workspace_id,
                    "kind": credential.kind,
                    "role": credential.role,
                    "secret_sha256": credential.secret_sha256,
                    "display_prefix": credential.display_prefix,
                    "name": name,
                    "issued_by": issued_by or "",
                },
            )
            pipe.hsetnx(key, "created_at", (created_at or datetime.now(UTC)).isoformat())
            pipe.hsetnx(key, "revoked", "0")
            await pipe.execute()

    async def revoke(self, credential_id: str, *, revoked_at: datetime | None = None) -> None:
        await self._redis.hset(
            credential_key(credential_id),
            mapping={"revoked": "1", "revoked_at": (revoked_at or datetime.now(UTC)).isoformat()},
        )

    async def get(self, credential_id: str) -> dict[str, str]:
        """The stored record (hash and all); empty when unknown."""
        return decode_hash(await self._redis.hgetall(credential_key(credential_id)))

    async def list_for_workspace(self, workspace_id: str) -> list[dict[str, str]]:
        """Every credential record of a workspace, with its id."""
        ids = sorted(_text(i) for i in await self._redis.smembers(workspace_credentials_key(workspace_id)))
        records = []
        for credential_id in ids:
            record = await self.get(credential_id)
            if record:
                records.append({**record, "credential_id": credential_id})
        return records

    async def touch(self, credential_id: str) -> None:
        """Record when a credential was last used (callers rate-limit this)."""
        await self._redis.hset(credential_key(credential_id), "last_used_at", datetime.now(UTC).isoformat())

    async def authenticate(self, presented: str | None, kind: Kind) -> Principal | None:
        """The principal for a valid, unrevoked credential of ``kind``; None otherwise."""
        if not presented:
            return None
        parsed = parse_credential(presented)
        if parsed is None or parsed[0] != kind:
            return None
        _, credential_id, secret = parsed
        record = decode_hash(await self._redis.hgetall(credential_key(credential_id)))
        stored_hash = record.get("secret_sha256", "0" * 64)
        matches = hmac.compare_digest(sha256_hex(secret).encode(), stored_hash.encode())
        if not record or not matches or record.get("revoked") == "1" or record.get("kind") != kind:
            return None
        if kind == "admin_token" and _stale_use(record.get("last_used_at")):
            # Ingest keys are touched by CachedCredentials; admin tokens are checked here on every call.
            await self.touch(credential_id)
        return Principal(
            workspace_id=record["workspace_id"],
            credential_id=credential_id,
            kind=kind,
            role=record["role"],  # type: ignore[arg-type]
        )


def _stale_use(last_used_at: str | None, *, every_s: float = 60.0) -> bool:
    """Whether a credential's ``last_used_at`` is older than ``every_s`` (written at most that often)."""
    if not last_used_at:
        return True
    try:
        return (datetime.now(UTC) - datetime.fromisoformat(last_used_at)).total_seconds() >= every_s
    except ValueError:
        return True


def verify_operator_token(presented: str | None, expected_sha256: str | None) -> bool:
    if not presented or not expected_sha256:
        return False
    return hmac.compare_digest(sha256_hex(presented).encode(), expected_sha256.encode())


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def workspace_admin(
    store: CredentialStore, authorization: str | None, workspace_id: str, *, roles: frozenset[Role]
) -> Principal:
    """The caller's admin principal for ``workspace_id``; another workspace's token is 'not found'."""
    from opsmeter_runtime.errors import Forbidden, NotFound, Unauthorized

    principal = await store.authenticate(bearer_token(authorization), "admin_token")
    if principal is None:
        raise Unauthorized("a valid admin token is required (Authorization: Bearer om_adm_...)")
    if not hmac.compare_digest(principal.workspace_id.encode(), workspace_id.encode()):
        raise NotFound("no such workspace")
    if principal.role not in roles:
        raise Forbidden(f"needs one of the roles {sorted(roles)}")
    return principal


READ_ROLES: frozenset[Role] = frozenset({"owner", "admin", "member"})
WRITE_ROLES: frozenset[Role] = frozenset({"owner", "admin"})


class CachedCredentials:
    """Credential checks cached per process: a revoked key fails everywhere within ``ttl_s`` (and one check).

    A valid credential seen before is answered from the cache and checked again in the background once
    ``ttl_s`` has passed, so a slow or unreachable Redis never delays a known caller; one verified within
    ``stale_s`` keeps working while Redis is away (ingest fails open). Unknown credentials wait for Redis.
    """

    MAX_ENTRIES = 100_000

    def __init__(self, store: CredentialStore, *, ttl_s: float = 5.0, stale_s: float = 3600.0) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._stale_s = stale_s
        self._entries: dict[str, tuple[float, Principal | None]] = {}
        self._checking: dict[str, asyncio.Task[None]] = {}

    async def authenticate(self, presented: str | None, kind: Kind) -> Principal | None:
        if not presented:
            return None
        now = time.monotonic()
        key = f"{kind}:{sha256_hex(presented)}"
        cached = self._entries.get(key)
        if cached is not None:
            verified_at, known = cached
            if now - verified_at < self._ttl_s:
                return known
            if known is not None and now - verified_at < self._stale_s:
                if key not in self._checking:
                    self._checking[key] = asyncio.create_task(self._check_again(key, presented, kind))
                return known
        return await self._check(key, presented, kind)

    async def _check(self, key: str, presented: str, kind: Kind) -> Principal | None:
        if parse_credential(presented) is None:
            return None  # malformed: refused without Redis and never cached, so junk cannot fill the cache
        principal = await self._store.authenticate(presented, kind)
        if len(self._entries) >= self.MAX_ENTRIES:
            # Refusals go first: a flood of unknown keys must not evict the callers that fail open on a Redis stall.
            self._entries = {k: v for k, v in self._entries.items() if v[1] is not None}
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
        self._entries[key] = (time.monotonic(), principal)
        if principal is not None:
            await self._store.touch(principal.credential_id)
        return principal

    async def _check_again(self, key: str, presented: str, kind: Kind) -> None:
        try:
            await self._check(key, presented, kind)
        except (RedisError, OSError) as exc:
            log.warning("credential_check_deferred", error=str(exc))
        finally:
            del self._checking[key]
