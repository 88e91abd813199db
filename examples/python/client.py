"""Asks tokend for the access token, then calls the Acoustic XML API with it.

    ACOUSTIC_API_URL=https://api-campaign-us-1.goacoustic.com/XMLAPI \
        python3 client.py

TOKEND_URL (default http://127.0.0.1:8439) names the daemon and
TOKEND_ATTEMPTS (default 5) bounds the tries while it has no token yet.
Standard library only.
"""

import os
import re
import sys
import time
import urllib.error
import urllib.request

GET_LISTS = (
    b"<Envelope><Body><GetLists>"
    b"<VISIBILITY>1</VISIBILITY><LIST_TYPE>2</LIST_TYPE>"
    b"</GetLists></Body></Envelope>"
)


class Unavailable(Exception):
    """tokend could not hand out a token."""


def send(url: str, headers: dict[str, str], timeout: float, data: bytes | None = None):
    """Open an http(s) URL; urllib would also open file: and ftp: ones."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    request = urllib.request.Request(url, data, headers)  # noqa: S310 (checked)
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (checked)


def fetch_token(tokend_url: str, attempts: int) -> str:
    headers = {"Tokend-Request": "1", "Accept": "text/plain"}
    for attempt in range(1, attempts + 1):
        try:
            with send(f"{tokend_url}/token", headers, timeout=10) as response:
                return response.read().decode().strip()
        except urllib.error.HTTPError as error:
            if error.code != 503:
                raise Unavailable(f"tokend answered HTTP {error.code}") from None
            wait = retry_after(error.headers.get("Retry-After"))
        except urllib.error.URLError as error:
            raise Unavailable(f"cannot reach tokend: {error.reason}") from None

        if attempt < attempts:
            print(
                f"tokend has no token yet (HTTP 503); retrying in {wait}s",
                file=sys.stderr,
            )
            time.sleep(wait)
    raise Unavailable(f"tokend had no token after {attempts} attempts")


def retry_after(value: str | None) -> int:
    """Whole seconds to wait, 1 if the header is missing, 30 at most."""
    try:
        return min(max(int(value or 1), 1), 30)
    except ValueError:
        return 1


def get_lists(api_url: str, token: str) -> str:
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "text/xml;charset=UTF-8",
    }
    with send(api_url, headers, timeout=30, data=GET_LISTS) as response:
        return response.read().decode()


def main() -> int:
    tokend_url = os.environ.get("TOKEND_URL", "http://127.0.0.1:8439")
    api_url = os.environ.get("ACOUSTIC_API_URL")
    if not api_url:
        print("set ACOUSTIC_API_URL to the XML API URL", file=sys.stderr)
        return 2

    try:
        token = fetch_token(tokend_url, int(os.environ.get("TOKEND_ATTEMPTS", "5")))
        answer = get_lists(api_url, token)
    except (Unavailable, ValueError) as error:
        print(error, file=sys.stderr)
        return 1
    except OSError as error:
        # urllib's errors name the URL and the status, never the headers.
        print(f"the XML API call failed: {error}", file=sys.stderr)
        return 1

    if re.search(r"<SUCCESS>\s*true\s*</SUCCESS>", answer, re.IGNORECASE):
        print("GetLists SUCCESS=true")
        return 0
    fault = re.search(r"<FaultString>(.*?)</FaultString>", answer, re.DOTALL)
    print(f"GetLists SUCCESS=false: {fault[1] if fault else 'no FaultString'}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
