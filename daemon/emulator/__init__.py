"""A faithful stand-in for the Acoustic Campaign OAuth server and its XML API."""

from daemon.emulator.answers import Answer
from daemon.emulator.faults import Fault
from daemon.emulator.provider import Provider, RecordedRequest

__all__ = ["Answer", "Fault", "Provider", "RecordedRequest"]
