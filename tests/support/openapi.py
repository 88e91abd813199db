"""The daemon's OpenAPI document, and a check of a live answer against it.

`Contract` reads ``docs/openapi.yaml`` and answers two questions: which
answers the document promises (path, method, status, media type), and
whether one answer actually given keeps that promise. Schemas are checked
with the OpenAPI 3.1 dialect of JSON Schema; `$ref`s are followed by JSON
pointer within the document.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import yaml
from openapi_schema_validator import OAS31Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from tests.support.child import REPOSITORY

DOCUMENT = REPOSITORY / "docs" / "openapi.yaml"

METHODS = ("get", "head", "post", "put", "patch", "delete", "options", "trace")

# The document's stand-in for every path it does not list.
UNKNOWN = "/{unknown}"

# Where the document lives in the schema registry, so that `$ref`s inside
# a schema resolve against the whole document.
_URI = "urn:tokend:openapi"


@dataclass(frozen=True)
class Promise:
    """One answer the document promises; `media` is None for no body."""

    path: str
    method: str
    status: int
    media: str | None

    def __str__(self) -> str:
        kind = f" {self.media}" if self.media else ""
        return f"{self.method.upper()} {self.path} {self.status}{kind}"


@dataclass(frozen=True)
class Answer:
    """One answer tokend gave: status, headers (names in any case), body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


class Contract:
    """The promises of the document and the check of an answer against them."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = DRAFT202012.create_resource(document)
        self._registry: Registry[Any] = Registry().with_resource(_URI, resource)

    @classmethod
    def load(cls) -> Contract:
        return cls(yaml.safe_load(DOCUMENT.read_text()))

    @cached_property
    def operations(self) -> frozenset[tuple[str, str]]:
        """Every (path, method) the document describes."""
        return frozenset(
            (path, method)
            for path, item in self.document["paths"].items()
            for method in METHODS
            if method in item
        )

    def promises(self) -> Iterator[Promise]:
        """Every answer the document promises, one per status and media type."""
        for path, method in sorted(self.operations):
            responses = self.document["paths"][path][method]["responses"]
            for status in responses:
                _, response = self._follow(
                    _pointer("paths", path, method, "responses", status)
                )
                for media in response.get("content") or [None]:
                    yield Promise(path, method, int(status), media)

    def template_of(self, path: str) -> str:
        """The document's path for a path requested: its own, or the stand-in."""
        return path if path in self.document["paths"] else UNKNOWN

    def check(self, path: str, method: str, answer: Answer) -> Promise:
        """The promise `answer` keeps; AssertionError saying how it breaks one."""
        template = self.template_of(path)
        request = f"{method.upper()} {path}"
        assert (template, method) in self.operations, f"{request} is not documented"

        status = str(answer.status)
        responses = self.document["paths"][template][method]["responses"]
        assert status in responses, f"{request}: {status} is not documented"
        where, response = self._follow(
            _pointer("paths", template, method, "responses", status)
        )

        for name in response.get("headers") or {}:
            self._check_header(request, answer, where, name)

        media = self._check_body(request, answer, where, response)
        return Promise(template, method, answer.status, media)

    def _check_header(
        self, request: str, answer: Answer, where: str, name: str
    ) -> None:
        at, header = self._follow(_join(where, "headers", name))
        value = answer.header(name)
        if value is None:
            assert not header.get("required"), f"{request}: no {name} header"
            return

        schema = {"$ref": f"{_URI}#{at}/schema"}
        self._validate(value, schema, request, f"{name} header")

    def _check_body(
        self, request: str, answer: Answer, where: str, response: dict[str, Any]
    ) -> str | None:
        content = response.get("content")
        if not content:
            assert answer.body == b"", f"{request}: a body where none is documented"
            return None

        media = self._media_of(answer, content)
        assert media is not None, (
            f"{request}: Content-Type {answer.header('Content-Type')!r} "
            f"is not one of {sorted(content)}"
        )
        text = answer.body.decode()
        instance = json.loads(text) if media == "application/json" else text
        schema = {"$ref": f"{_URI}#{_join(where, 'content', media, 'schema')}"}
        self._validate(instance, schema, request, "body")
        return media

    def _media_of(self, answer: Answer, content: dict[str, Any]) -> str | None:
        given = answer.header("Content-Type") or ""
        if given in content:
            return given
        bare = given.split(";")[0].strip()
        return bare if bare in content else None

    def _validate(
        self, instance: Any, schema: dict[str, Any], request: str, part: str
    ) -> None:
        validator = OAS31Validator(schema, registry=self._registry)
        errors = [error.message for error in validator.iter_errors(instance)]
        assert not errors, f"{request}: the {part} breaks the document: {errors}"

    def _follow(self, pointer: str) -> tuple[str, dict[str, Any]]:
        """The object at `pointer`, following `$ref`s; and where it really is."""
        node = _lookup(self.document, pointer)
        while "$ref" in node:
            pointer = node["$ref"].removeprefix("#")
            node = _lookup(self.document, pointer)
        return pointer, node


def _pointer(*parts: str) -> str:
    return _join("", *parts)


def _join(pointer: str, *parts: str) -> str:
    escaped = (part.replace("~", "~0").replace("/", "~1") for part in parts)
    return "/".join([pointer, *escaped])


def _lookup(document: dict[str, Any], pointer: str) -> dict[str, Any]:
    node: Any = document
    for part in pointer.split("/")[1:]:
        node = node[part.replace("~1", "/").replace("~0", "~")]
    assert isinstance(node, dict), f"#{pointer} is not an object"
    return node
