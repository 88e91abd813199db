"""What the emulator sends back: an HTTP answer, silence, or a dropped connection."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Action = Literal["respond", "hang", "reset"]

JSON_TYPE = "application/json;charset=UTF-8"


@dataclass(frozen=True)
class Answer:
    """One answer to one request; header names are lower-case.

    `action` says how it is delivered: "respond" sends it, "hang" never
    answers and "reset" drops the connection, the last two ignoring the
    rest. The body is left out of `repr`, as it may hold a token.
    """

    status: int
    body: bytes = field(default=b"", repr=False)
    headers: dict[str, str] = field(default_factory=dict)
    action: Action = "respond"


HANG = Answer(0, action="hang")
RESET = Answer(0, action="reset")


def json_answer(
    status: int,
    document: object,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """A JSON answer that no cache may keep, as OAuth token answers are."""
    return Answer(
        status,
        json.dumps(document).encode(),
        {
            "content-type": JSON_TYPE,
            "cache-control": "no-store",
            **(headers or {}),
        },
    )


def json_error(
    status: int,
    error: str,
    description: str,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """An error in the OAuth shape, which the emulator uses for all its errors."""
    document = {"error": error, "error_description": description}
    return json_answer(status, document, headers)
