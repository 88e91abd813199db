"""The XML API's answers: a success envelope, or a Fault inside one.

Faults arrive with HTTP 200, `<SUCCESS>` in lower case, a `FaultString`
and an `errorid`. The provider does not publish ids for the token
faults, so the ids here are the emulator's own choice.
"""

from __future__ import annotations

from daemon.emulator.answers import Answer

XML_TYPE = "text/xml;charset=UTF-8"

EXPIRED_TOKEN = ("The access token has expired.", 145)
UNKNOWN_TOKEN = ("The access token is invalid.", 140)
NO_TOKEN = ("An access token is required: send Authorization: Bearer <token>.", 140)
NOT_AN_ENVELOPE = ("The request body is not an XML API Envelope.", 50)
TOO_MANY = (
    "You have exceeded the max number of concurrent API requests allowed.",
    503,
)


def success() -> Answer:
    body = "<Envelope><Body><RESULT><SUCCESS>TRUE</SUCCESS></RESULT></Body></Envelope>"
    return _xml(body)


def fault(text: str, errorid: int) -> Answer:
    """A Fault envelope; `text` is the emulator's own, so CDATA needs no escaping."""
    body = (
        "<Envelope><Body>"
        "<RESULT><SUCCESS>false</SUCCESS></RESULT>"
        "<Fault><Request/><FaultCode/>"
        f"<FaultString><![CDATA[{text}]]></FaultString>"
        f"<detail><error><errorid>{errorid}</errorid><module/>"
        "<class>SP.API</class><method/></error></detail>"
        "</Fault></Body></Envelope>"
    )
    return _xml(body)


def _xml(body: str) -> Answer:
    return Answer(200, body.encode(), {"content-type": XML_TYPE})
