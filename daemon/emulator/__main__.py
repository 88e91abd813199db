"""Run the emulator alone: ``python -m daemon.emulator`` is ``tokend emulator``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from daemon import cli


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    return cli.main(["emulator", *arguments])


if __name__ == "__main__":
    raise SystemExit(main())
