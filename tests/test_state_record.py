"""The state file's format and the atomic write beneath it."""

from __future__ import annotations

import json
import os
import stat
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.stores.durable_file import read_private, replace_atomically
from daemon.stores.state_record import (
    KeptToken,
    MalformedState,
    StateRecord,
    decode,
)

SECRET = "secret-token-value-0123456789"

moments = st.floats(min_value=1.0, max_value=4e9, allow_nan=False)

# The characters of a URL-safe token, as the provider's appear to be.
TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_.~"


@st.composite
def records(draw: st.DrawFn) -> StateRecord:
    token = None
    if draw(st.booleans()):
        issued = draw(moments)
        lifetime = draw(st.floats(min_value=1.0, max_value=1e6))
        value = draw(st.text(alphabet=TOKEN_ALPHABET, min_size=1, max_size=64))
        token = KeptToken(value, issued, issued + lifetime)
    return StateRecord(
        account=draw(st.text(alphabet="0123456789abcdef", min_size=24, max_size=24)),
        written_at=draw(moments),
        token=token,
        requested_at=draw(st.none() | moments),
        failures=draw(st.integers(min_value=0, max_value=10**6)),
        retry_at=draw(st.none() | moments),
    )


@given(records())
def test_every_record_reads_back_as_written(record: StateRecord) -> None:
    """Encoding and decoding a record gives the same record."""
    data = record.encode()

    again = decode(data)

    assert again == record


def sound_document() -> dict[str, object]:
    return {
        "format": 1,
        "account": "0123456789abcdef01234567",
        "written_at": 1_750_000_000.0,
        "token": {
            "access_token": SECRET,
            "issued_at": 1_750_000_000.0,
            "expires_at": 1_750_014_400.0,
        },
        "requested_at": None,
        "failures": 0,
        "retry_at": None,
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": True}, "is not in format 1"),
        ({"account": ""}, "names no account"),
        ({"written_at": float("inf")}, "has a written_at that is not epoch seconds"),
        ({"failures": -1}, "has a failure count that is not a whole number"),
        ({"failures": 1.5}, "has a failure count that is not a whole number"),
        ({"retry_at": "later"}, "has a retry_at that is not epoch seconds"),
        (
            {"token": {"access_token": SECRET, "issued_at": 2e9, "expires_at": 1e9}},
            "has a token that expires before it was issued",
        ),
        ({"token": [SECRET]}, "has a token that is not an object"),
        ({"token": {"access_token": " "}}, "has a token without its access_token"),
    ],
)
def test_a_malformed_record_names_the_field_and_not_the_token(
    change: dict[str, object], message: str
) -> None:
    """Each malformed field gets its own message, which never holds the token."""
    document = {**sound_document(), **change}
    data = json.dumps(document).encode()

    with pytest.raises(MalformedState) as raised:
        decode(data)

    assert str(raised.value) == message
    assert SECRET not in str(raised.value)


def test_a_record_never_shows_its_token_in_repr() -> None:
    """The repr of a record and of its token leaves the value out."""
    record = decode(json.dumps(sound_document()).encode())

    text = repr(record)

    assert SECRET not in text
    assert "1750014400" in text


def test_a_replace_that_fails_leaves_the_old_file_and_no_litter(
    tmp_path: Path,
) -> None:
    """When the rename fails the old file is intact and no temporary file is left."""
    target = tmp_path / "state.json"
    target.mkdir()
    (target / "keep").write_text("old")

    with pytest.raises(IsADirectoryError):
        replace_atomically(target, b"new")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    assert (target / "keep").read_text() == "old"


def test_a_replaced_file_is_private_and_whole(tmp_path: Path) -> None:
    """The new file has mode 0600 and exactly the bytes written."""
    target = tmp_path / "state.json"
    target.write_text("old contents")
    target.chmod(0o644)

    signature = replace_atomically(target, b"new contents")

    contents = read_private(target, 100)
    assert contents.data == b"new contents"
    assert contents.loose_mode is None
    assert contents.signature == signature
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
