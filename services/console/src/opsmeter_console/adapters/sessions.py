"""Console sessions in Redis: a sign-in opens one for the token's holder, sign-out or its age ends it.

The cookie carries the session id with the admin token (the services are called with the token), and Redis
keeps only the id's SHA-256 with the token's credential id and an expiry. So an ended session stops working
even if its cookie was copied, and a session cannot outlive ``session_max_age_s`` whatever the browser does.
"""

import hmac
import secrets

from redis.asyncio import Redis

from opsmeter_runtime.auth import Principal, sha256_hex


def session_key(session_id: str) -> str:
    return f"opsmeter:console:session:{sha256_hex(session_id)}"


class RedisSessions:
    def __init__(self, redis: Redis, *, max_age_s: int) -> None:
        self._redis = redis
        self._max_age_s = max_age_s

    async def open(self, principal: Principal) -> str:
        """A new session for the token's holder; its id goes in the cookie, only its hash is stored."""
        session_id = secrets.token_urlsafe(24)
        await self._redis.set(session_key(session_id), principal.credential_id, ex=self._max_age_s)
        return session_id

    async def holds(self, session_id: str, principal: Principal) -> bool:
        """Whether the session is open and was opened with this principal's token."""
        holder = await self._redis.get(session_key(session_id))
        if holder is None:
            return False
        text = holder.decode() if isinstance(holder, bytes) else str(holder)
        return hmac.compare_digest(text.encode(), principal.credential_id.encode())

    async def close(self, session_id: str) -> None:
        await self._redis.delete(session_key(session_id))
