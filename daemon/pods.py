"""Acoustic Campaign pods and the token URL of each."""

from __future__ import annotations

# The pod number is not the host's region suffix: pod 9 is us-6, A is ap-1.
POD_REGIONS = {
    "1": "us-1",
    "2": "us-2",
    "3": "us-3",
    "4": "us-4",
    "5": "us-5",
    "6": "eu-1",
    "7": "ap-2",
    "8": "ca-1",
    "9": "us-6",
    "A": "ap-1",
    "B": "ap-3",
}
REGIONS = frozenset(POD_REGIONS.values())


def region_of(pod: str) -> str:
    """The host suffix for a pod given as region (``eu-1``) or number (``6``)."""
    name = pod.strip()
    if name.lower() in REGIONS:
        return name.lower()
    if name.upper() in POD_REGIONS:
        return POD_REGIONS[name.upper()]

    accepted = ", ".join(sorted(REGIONS))
    raise ValueError(
        f"unknown pod {pod!r}: give a region ({accepted}) "
        "or a pod number (1 to 9, A, B)"
    )


def token_url(pod: str) -> str:
    return f"https://api-campaign-{region_of(pod)}.goacoustic.com/oauth/token"
