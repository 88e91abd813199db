"""The Redis side of fleet mode: the keys, the Lua scripts, and errors at one boundary.

One account's keys share a hash tag, so they stay together on one slot:

    <prefix>:{<account>}:token       hash: value, expires_at_ms, generation;
                                     Redis expires it with the token
    <prefix>:{<account>}:lease       the refresher's id, with a Redis expiry
    <prefix>:{<account>}:generation  counts leases: the fencing token
    <prefix>:{<account>}:changed     channel: a generation after each write

Every command that fails (refused, timed out, a script error) raises
`LinkDown` with a message that holds no URL, password or token, and is
counted; the first failure after a success is logged, as is the recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

log = logging.getLogger("tokend.fleet")

# Take the lease if it is free (SET NX PX), or extend it if it is ours.
# A new lease raises the generation in the same step, so a holder that is
# paused between the two can never end up with a later generation than
# the one that replaced it. A missing counter (Redis restarted empty)
# starts from the caller's wall clock in milliseconds, above every
# generation handed out before.
_CLAIM = """
local generation = 0
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  generation = tonumber(redis.call('GET', KEYS[2])) or 0
elseif not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
  redis.call('SET', KEYS[2], ARGV[3], 'NX')
  generation = redis.call('INCR', KEYS[2])
end
return {generation, redis.call('HGETALL', KEYS[3])}
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# The fenced write: only the latest generation writes, and only a token
# that expires later than the one kept. 1 written, 0 fenced, -1 not newer.
_WRITE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local kept = tonumber(redis.call('HGET', KEYS[2], 'expires_at_ms'))
if kept and kept >= tonumber(ARGV[3]) then
  return -1
end
redis.call('HSET', KEYS[2], 'value', ARGV[2], 'expires_at_ms', ARGV[3],
  'generation', ARGV[1])
redis.call('PEXPIREAT', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[1])
return 1
"""


class LinkDown(Exception):
    """A Redis command failed; the message is safe to log."""


class Written(enum.Enum):
    """What became of a fenced write."""

    WRITTEN = 1
    FENCED = 0
    NOT_NEWER = -1


@dataclass(frozen=True)
class SharedRecord:
    """The fleet's token as Redis keeps it: wall-clock expiry, writer's generation."""

    value: str = field(repr=False)
    expires_at: float
    generation: int


@dataclass(frozen=True)
class Claim:
    """The answer to a claim: our generation if the lease is ours, and the record."""

    generation: int | None
    record: SharedRecord | None


@dataclass(frozen=True)
class FleetKeys:
    """The names of one account's keys under a prefix."""

    prefix: str
    account: str

    def _name(self, suffix: str) -> str:
        return f"{self.prefix}:{{{self.account}}}:{suffix}"

    @property
    def token(self) -> str:
        return self._name("token")

    @property
    def lease(self) -> str:
        return self._name("lease")

    @property
    def generation(self) -> str:
        return self._name("generation")

    @property
    def channel(self) -> str:
        return self._name("changed")


class Notices:
    """Change notices on the account's channel, one subscription."""

    def __init__(self, pubsub: PubSub, link: FleetLink) -> None:
        self._pubsub = pubsub
        self._link = link

    async def wait(self, seconds: float) -> bool:
        """Whether a notice arrived within `seconds`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds

        # Replies to SUBSCRIBE and to health-check pings come this way too;
        # only a published message is a notice.
        while (left := deadline - loop.time()) > 0:
            with self._link.command("reading change notices"):
                message = await self._pubsub.get_message(timeout=left)
            if message is not None and message.get("type") == "message":
                return True
        return False


class FleetLink:
    """One replica's commands on one account's keys; `owner` names its lease."""

    def __init__(self, client: Redis, keys: FleetKeys) -> None:
        self._client = client
        self.keys = keys
        self.owner = secrets.token_hex(8)
        self._claim = client.register_script(_CLAIM)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._write = client.register_script(_WRITE)
        self.errors = 0
        self.reachable = True

    def __repr__(self) -> str:
        return f"FleetLink(keys={self.keys.token!r}, owner={self.owner!r})"

    async def claim(self, lease: float, wall_now: float) -> Claim:
        """Take or extend the lease for `lease` seconds; read the record too."""
        keys = [self.keys.lease, self.keys.generation, self.keys.token]
        args: list[str | int] = [self.owner, _ms(lease), _ms(wall_now)]
        with self.command("claiming the lease"):
            generation, fields = await self._claim(keys=keys, args=args)
        record = _record(_pairs(fields), self.keys)
        return Claim(int(generation) or None, record)

    async def renew(self, lease: float) -> bool:
        """Extend our lease to `lease` seconds from now; False if it is not ours."""
        with self.command("renewing the lease"):
            renewed = await self._renew(
                keys=[self.keys.lease], args=[self.owner, _ms(lease)]
            )
        return bool(renewed)

    async def release(self) -> None:
        """Give the lease up, if it is still ours."""
        with self.command("releasing the lease"):
            await self._release(keys=[self.keys.lease], args=[self.owner])

    async def write(self, value: str, expires_at: float, generation: int) -> Written:
        """Write the record if `generation` is still the latest; see `_WRITE`."""
        keys = [self.keys.generation, self.keys.token]
        args: list[str | int] = [generation, value, _ms(expires_at), self.keys.channel]
        with self.command("writing the token"):
            outcome = await self._write(keys=keys, args=args)
        return Written(int(outcome))

    async def read(self) -> SharedRecord | None:
        """The record, or None when there is none (or none that can be read)."""
        with self.command("reading the token"):
            fields = await self._client.hgetall(self.keys.token)
        # The client decodes every reply (decode_responses): all are text.
        return _record(cast(dict[str, str], fields), self.keys)

    @contextlib.asynccontextmanager
    async def notices(self) -> AsyncIterator[Notices]:
        """A subscription to change notices, closed on leaving."""
        pubsub = self._client.pubsub()
        try:
            with self.command("subscribing to change notices"):
                await pubsub.subscribe(self.keys.channel)
            yield Notices(pubsub, self)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._client.aclose()

    @contextlib.contextmanager
    def command(self, doing: str) -> Iterator[None]:
        """Run one command: a failure becomes `LinkDown`, and either is noted."""
        from redis.exceptions import RedisError

        try:
            yield
        except (RedisError, OSError) as exc:
            down = LinkDown(f"{doing}: {_describe(exc)}")
            self.errors += 1
            if self.reachable:
                log.warning(
                    "Redis unreachable (%s): each replica serves its own token "
                    "until it is back",
                    down,
                )
            else:
                log.debug("Redis still unreachable (%s)", down)
            self.reachable = False
            raise down from None

        if not self.reachable:
            log.info("Redis reachable again")
        self.reachable = True


def _describe(exc: BaseException) -> str:
    # Connection errors name the host and port, which helps and is no
    # secret; other texts (script errors, replies) are left out.
    from redis import exceptions

    failures = (exceptions.ConnectionError, exceptions.TimeoutError, OSError)
    if isinstance(exc, failures) and str(exc):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


def _pairs(flat: list[Any]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _record(fields: dict[str, str], keys: FleetKeys) -> SharedRecord | None:
    if not fields:
        return None
    try:
        value = fields["value"]
        expires_at = int(fields["expires_at_ms"]) / 1000
        generation = int(fields["generation"])
    except (KeyError, ValueError):
        log.warning(
            "ignoring the malformed token record at %s; the next write replaces it",
            keys.token,
        )
        return None
    if not value:
        return None
    return SharedRecord(value, expires_at, generation)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
