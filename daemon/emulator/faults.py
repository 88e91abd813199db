"""Faults a test can queue on the emulator: the ways the provider is seen to fail.

| kind | answer | parameters |
| --- | --- | --- |
| status | any HTTP status, empty body unless given | status, body, retry_after |
| hang | none at all: the request waits until the client gives up | |
| reset | the connection is dropped | |
| html | an HTML error page, 503 unless given | status, retry_after |
| malformed | HTTP 200 with JSON cut off midway | |
| missing | a real grant lacking `field`, or with `value` in it | field, value |
| throttled | "Access token limits exceeded.", 429 unless given | status, retry_after |
| busy | the XML API's "max number of concurrent" Fault | |

`missing`, `malformed` and `throttled` answer token requests only, `busy`
answers XML API requests only; the others answer either.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Literal, cast, get_args

from daemon.emulator import envelopes
from daemon.emulator.answers import HANG, JSON_TYPE, RESET, Answer, json_error

FaultKind = Literal[
    "status", "hang", "reset", "html", "malformed", "missing", "throttled", "busy"
]
Endpoint = Literal["token", "xmlapi"]
Scalar = str | int | float | bool | None

KINDS: tuple[str, ...] = get_args(FaultKind)
ENDPOINTS: tuple[str, ...] = get_args(Endpoint)
GRANT_FIELDS = ("access_token", "token_type", "refresh_token", "expires_in")

_PARAMETERS: dict[str, tuple[str, ...]] = {
    "status": ("status", "body", "retry_after"),
    "hang": (),
    "reset": (),
    "html": ("status", "retry_after"),
    "malformed": (),
    "missing": ("field", "value"),
    "throttled": ("status", "retry_after"),
    "busy": (),
}
_TOKEN_ONLY = frozenset({"malformed", "missing", "throttled"})
_XMLAPI_ONLY = frozenset({"busy"})
_DEFAULT_STATUS = {"html": 503, "throttled": 429}

# The provider's text is known from client reports; its status and error
# code are not, so 429 and the code below are the emulator's guess.
THROTTLED_TEXT = "Access token limits exceeded."

_OUTAGE_PAGE = (
    "<html><head><title>{status} {phrase}</title></head>"
    "<body><h1>{phrase}</h1>"
    "<p>The server is temporarily unable to service your request.</p>"
    "</body></html>"
)


@dataclass(frozen=True)
class Fault:
    """One failure to answer with; validates its own parameters."""

    kind: FaultKind
    status: int | None = None
    body: str | None = None
    retry_after: str | None = None
    field: str | None = None
    value: Scalar = None

    def __post_init__(self) -> None:
        if self.kind not in _PARAMETERS:
            raise ValueError(
                f"unknown fault kind {self.kind!r}; choose one of {', '.join(KINDS)}"
            )

        accepted = _PARAMETERS[self.kind]
        for name in ("status", "body", "retry_after", "field", "value"):
            if getattr(self, name) is not None and name not in accepted:
                raise ValueError(f"a {self.kind} fault {_takes(accepted)}, not {name}")

        if self.kind == "status" and self.status is None:
            raise ValueError("a status fault needs a status, e.g. 503")
        if self.kind in _DEFAULT_STATUS and self.status is None:
            object.__setattr__(self, "status", _DEFAULT_STATUS[self.kind])
        if self.status is not None and not 200 <= self.status <= 599:
            raise ValueError(f"status must be from 200 to 599, not {self.status}")

        if self.retry_after is not None and not _is_header_value(self.retry_after):
            raise ValueError(
                "retry_after must be seconds (120) or an HTTP date "
                "(Wed, 21 Oct 2015 07:28:00 GMT) on one line"
            )

        if self.kind == "missing" and self.field is None:
            object.__setattr__(self, "field", "access_token")
        if self.field is not None and self.field not in GRANT_FIELDS:
            raise ValueError(
                f"field must be one of {', '.join(GRANT_FIELDS)}, not {self.field!r}"
            )

    @classmethod
    def from_json(cls, document: object) -> Fault:
        """A fault from the control API's JSON; ValueError says what is wrong."""
        if not isinstance(document, dict):
            raise ValueError(
                'a fault is a JSON object, e.g. {"kind": "status", "status": 503}'
            )

        kind = document.get("kind")
        if not isinstance(kind, str) or kind not in _PARAMETERS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")

        accepted = _PARAMETERS[kind]
        for name in document:
            if name != "kind" and name not in accepted:
                raise ValueError(f"a {kind} fault {_takes(accepted)}, not {name!r}")

        return cls(
            kind=cast(FaultKind, kind),
            status=_whole(document, "status"),
            body=_text(document, "body"),
            retry_after=_retry_after(document),
            field=_text(document, "field"),
            value=_scalar(document, "value"),
        )

    def to_json(self) -> dict[str, object]:
        """The kind and the parameters that are set, as `from_json` reads them."""
        document: dict[str, object] = {"kind": self.kind}
        for name in _PARAMETERS[self.kind]:
            if getattr(self, name) is not None:
                document[name] = getattr(self, name)
        return document

    def answers(self, endpoint: Endpoint) -> bool:
        """Whether this fault can stand in for an answer from `endpoint`."""
        if endpoint == "token":
            return self.kind not in _XMLAPI_ONLY
        return self.kind not in _TOKEN_ONLY

    def answer(self) -> Answer:
        """The answer that replaces the provider's; not for `missing`."""
        if self.kind == "hang":
            return HANG
        if self.kind == "reset":
            return RESET
        if self.kind == "busy":
            return envelopes.fault(*envelopes.TOO_MANY)
        if self.kind == "malformed":
            return Answer(200, b'{"access_token": "', {"content-type": JSON_TYPE})

        status = self.status or 0
        headers = {} if self.retry_after is None else {"retry-after": self.retry_after}
        if self.kind == "html":
            page = _OUTAGE_PAGE.format(status=status, phrase=_phrase(status))
            return Answer(
                status, page.encode(), {"content-type": "text/html", **headers}
            )
        if self.kind == "throttled":
            return json_error(status, "too_many_requests", THROTTLED_TEXT, headers)
        return _status_answer(status, self.body, headers)

    def alter(self, grant: Mapping[str, object]) -> dict[str, object]:
        """A `missing` fault's change to a successful grant's JSON document."""
        altered = dict(grant)
        if self.field is not None:
            if self.value is None:
                altered.pop(self.field, None)
            else:
                altered[self.field] = self.value
        return altered


def _status_answer(status: int, body: str | None, headers: dict[str, str]) -> Answer:
    if body is None:
        return Answer(status, b"", headers)
    try:
        json.loads(body)
    except ValueError:
        content_type = "text/plain;charset=UTF-8"
    else:
        content_type = JSON_TYPE
    return Answer(status, body.encode(), {"content-type": content_type, **headers})


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _takes(accepted: tuple[str, ...]) -> str:
    return f"takes {', '.join(accepted)}" if accepted else "takes no parameters"


def _is_header_value(text: str) -> bool:
    # A line break would let a test's value forge further headers.
    return bool(text.strip()) and text.isprintable()


def _whole(document: dict[str, object], name: str) -> int | None:
    value = document.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, not {json.dumps(value)}")
    return value


def _text(document: dict[str, object], name: str) -> str | None:
    value = document.get(name)
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{name} must be a string, not {json.dumps(value)}")


def _retry_after(document: dict[str, object]) -> str | None:
    value = document.get("retry_after")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if value is None or isinstance(value, str):
        return value
    raise ValueError(
        "retry_after must be whole seconds (120) or an HTTP date as a string, "
        f"not {json.dumps(value)}"
    )


def _scalar(document: dict[str, object], name: str) -> Scalar:
    value = document.get(name)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ValueError(f"{name} must be a string, number or boolean")
