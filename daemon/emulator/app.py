"""The emulator over HTTP: the provider's two endpoints and a control API.

    POST   /oauth/token              the refresh-token grant (form body)
    POST   /XMLAPI                   raw XML, or the form field ``xml``
    POST   /_emulator/faults         queue a fault: {"kind": ..., "times": n}
    DELETE /_emulator/faults         drop every queued fault
    GET    /_emulator/requests       the record of requests, as JSON
    DELETE /_emulator/requests       forget the record
    GET    /_emulator/tokens/<token> {"valid": true|false}

Every error the emulator itself raises (404, 405, a bad control request)
is JSON in the OAuth shape: {"error": ..., "error_description": ...}.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from aiohttp import web

from daemon.emulator.answers import Answer, json_answer, json_error
from daemon.emulator.faults import Endpoint, Fault
from daemon.emulator.provider import TOKEN_PATH, XMLAPI_PATH, Provider

PROVIDER = web.AppKey("provider", Provider)

CONTROL_PREFIX = "/_emulator"

# How often a hung request looks whether its client has gone; a hang must
# end when nobody waits for it, or it would hold an XML API slot forever.
_CLIENT_CHECK_SECONDS = 0.05

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class _InFlight:
    xml_requests: int = 0


_IN_FLIGHT = web.AppKey("in_flight", _InFlight)
_STOPPING = web.AppKey("stopping", asyncio.Event)


def make_app(provider: Provider) -> web.Application:
    """An application serving `provider`; its clock should be the loop's."""
    app = web.Application(middlewares=[_json_errors])
    app[PROVIDER] = provider
    app[_IN_FLIGHT] = _InFlight()
    app[_STOPPING] = asyncio.Event()
    app.on_shutdown.append(_release_hung_requests)

    app.router.add_post(TOKEN_PATH, _token)
    app.router.add_post(XMLAPI_PATH, _xml_api)
    app.router.add_post(f"{CONTROL_PREFIX}/faults", _inject)
    app.router.add_delete(f"{CONTROL_PREFIX}/faults", _clear_faults)
    app.router.add_get(f"{CONTROL_PREFIX}/requests", _requests)
    app.router.add_delete(f"{CONTROL_PREFIX}/requests", _clear_requests)
    app.router.add_get(f"{CONTROL_PREFIX}/tokens/{{token}}", _token_state)
    return app


# The provider's endpoints.


async def _token(request: web.Request) -> web.StreamResponse:
    posted = await request.post()
    form = {name: value for name, value in posted.items() if isinstance(value, str)}

    answer = request.app[PROVIDER].token_request(form)
    return await _deliver(request, answer)


async def _xml_api(request: web.Request) -> web.StreamResponse:
    body = await _xml_body(request)

    in_flight = request.app[_IN_FLIGHT]
    in_flight.xml_requests += 1
    try:
        answer = request.app[PROVIDER].xml_api(
            request.headers.get("Authorization"),
            body,
            in_flight=in_flight.xml_requests,
        )
        # A hang holds its slot, as a slow request does at the provider.
        return await _deliver(request, answer)
    finally:
        in_flight.xml_requests -= 1


async def _xml_body(request: web.Request) -> bytes:
    if request.content_type != "application/x-www-form-urlencoded":
        return await request.read()
    field = (await request.post()).get("xml")
    return field.encode() if isinstance(field, str) else b""


# The control API.


async def _inject(request: web.Request) -> web.StreamResponse:
    try:
        document = await request.json()
    except ValueError:
        return _respond(
            json_error(400, "invalid_json", "the body must be a JSON object")
        )

    try:
        fault, times, endpoint = _injection(document)
        request.app[PROVIDER].inject(fault, times, endpoint=endpoint)
    except ValueError as exc:
        return _respond(json_error(400, "invalid_fault", str(exc)))

    queued = {"fault": fault.to_json(), "times": times, "endpoint": endpoint}
    return _respond(json_answer(201, queued))


def _injection(document: object) -> tuple[Fault, int, Endpoint]:
    """The fault, its count and its endpoint in a control request."""
    if not isinstance(document, dict):
        raise ValueError(
            'a fault is a JSON object, e.g. {"kind": "status", "status": 503}'
        )
    fields = dict(document)
    times = fields.pop("times", 1)
    endpoint = fields.pop("endpoint", "token")

    # `Provider.inject` checks both values, whatever their JSON type.
    return Fault.from_json(fields), cast(int, times), cast(Endpoint, endpoint)


async def _clear_faults(request: web.Request) -> web.StreamResponse:
    dropped = request.app[PROVIDER].clear_faults()
    return _respond(json_answer(200, {"dropped": dropped}))


async def _requests(request: web.Request) -> web.StreamResponse:
    record = [entry.to_json() for entry in request.app[PROVIDER].requests]
    return _respond(json_answer(200, record))


async def _clear_requests(request: web.Request) -> web.StreamResponse:
    forgotten = request.app[PROVIDER].clear_requests()
    return _respond(json_answer(200, {"forgotten": forgotten}))


async def _token_state(request: web.Request) -> web.StreamResponse:
    valid = request.app[PROVIDER].is_valid(request.match_info["token"])
    return _respond(json_answer(200, {"valid": valid}))


# Delivery.


async def _deliver(request: web.Request, answer: Answer) -> web.StreamResponse:
    if answer.action == "hang":
        await _hang(request)
    if answer.action == "reset":
        _reset(request)
    # After a hang or a reset nobody reads this; aiohttp drops it quietly.
    return _respond(answer)


def _respond(answer: Answer) -> web.Response:
    return web.Response(status=answer.status, body=answer.body, headers=answer.headers)


async def _hang(request: web.Request) -> None:
    """Say nothing until the client gives up or the emulator stops."""
    stopping = request.app[_STOPPING]
    while not stopping.is_set() and not _client_gone(request):
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CLIENT_CHECK_SECONDS):
                await stopping.wait()

    if stopping.is_set():
        # A server that goes away mid-request drops the connection.
        _reset(request)


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _reset(request: web.Request) -> None:
    """Drop the connection with a TCP reset, as a failing load balancer does."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Lingering for zero seconds makes the close send RST instead of FIN.
        linger = struct.pack("ii", 1, 0)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    transport.abort()


async def _release_hung_requests(app: web.Application) -> None:
    app[_STOPPING].set()


# Errors.


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _respond(_error_answer(request, exc))


def _error_answer(request: web.Request, exc: web.HTTPException) -> Answer:
    where = f"{request.method} {request.path}"
    if exc.status == 404:
        return json_error(
            404,
            "not_found",
            f"nothing at {where}; the emulator serves POST {TOKEN_PATH}, "
            f"POST {XMLAPI_PATH} and {CONTROL_PREFIX}/...",
        )
    if exc.status == 405:
        allowed = exc.headers.get("Allow", "")
        return json_error(
            405,
            "method_not_allowed",
            f"{where} is not allowed; use {allowed}",
            {"allow": allowed},
        )
    code = exc.reason.lower().replace(" ", "_")
    return json_error(exc.status, code, exc.reason)
