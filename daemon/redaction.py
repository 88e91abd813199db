"""Masks every known secret and token in text bound for a log.

The code never logs a secret on purpose; this is the second line of
defence for a value that slips into a message or a traceback anyway.
"""

from __future__ import annotations

import threading
from collections import deque

MASK = "[redacted]"

# Shorter values are too likely to match ordinary text to be worth masking.
_SHORTEST = 6

# Tokens are masked while they may still be valid: two overlap at most, so
# a few more than that is ample and keeps `mask` cheap over a long uptime.
_RECENT_TOKENS = 4


class Redactor:
    """A set of secret strings, and a `mask` that hides them in text."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._tokens: deque[str] = deque(maxlen=_RECENT_TOKENS)
        self._ordered: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def add(self, *secrets: str) -> None:
        """Mask these for the life of the process (credentials)."""
        with self._lock:
            self._secrets.update(s for s in secrets if len(s) >= _SHORTEST)
            self._reorder()

    def add_token(self, token: str) -> None:
        """Mask this access token while it is among the most recent few."""
        with self._lock:
            if len(token) >= _SHORTEST and token not in self._tokens:
                self._tokens.append(token)
                self._reorder()

    def mask(self, text: str) -> str:
        for secret in self._ordered:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def clear(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._tokens.clear()
            self._reorder()

    def _reorder(self) -> None:
        # Longest first, so a secret that contains another is masked whole.
        every = self._secrets.union(self._tokens)
        self._ordered = tuple(sorted(every, key=len, reverse=True))


redactor = Redactor()
