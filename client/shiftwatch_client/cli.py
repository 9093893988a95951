"""``shiftwatch-replay-rejected``: the client install's own command to resend refused batches.

The same pass as the server's ``shiftwatch replay-rejected`` (both call ``replay.replay_rejected``),
with argparse and plain text instead of typer and rich, so a serving image needs nothing but numpy.
Exit codes: 0 all sent, 1 rows still refused or the server away, 2 bad arguments or a busy folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from shiftwatch_client.replay import ReplayBusy, ReplayOutcome, replay_rejected
from shiftwatch_client.spill import SpillDir, default_spill_dir
from shiftwatch_client.transport import Transport

COLUMNS = ("file", "outcome", "stored", "duplicates", "refused", "reason")


class BadArgument(ValueError):
    """An option that cannot work, named with why (``--url``, ``--spill-dir``)."""

    def __init__(self, option: str, why: str) -> None:
        super().__init__(f"{option}: {why}")
        self.option, self.why = option, why


def open_spill(url: str, token: str | None, spill_dir: Path | None) -> tuple[Transport, SpillDir]:
    """The transport to ``url`` and the Client's spill folder for it; ``BadArgument`` names a bad option."""
    try:
        transport = Transport.for_url(url, token=token, timeout_s=30.0, compress=False)
    except ValueError as exc:
        raise BadArgument("--url", str(exc)) from None
    folder = spill_dir if spill_dir is not None else default_spill_dir(url)
    if not folder.is_dir():
        raise BadArgument("--spill-dir", f"{folder} is not a folder")
    return transport, SpillDir(folder)


def still_refused(outcomes: list[ReplayOutcome]) -> bool:
    """Whether any batch is still (partly) refused or unsent: the command then exits 1."""
    return any(o.outcome in ("refused", "partly", "unsent") for o in outcomes)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shiftwatch-replay-rejected",
        description="Send each rejected-* batch of the Client's spill folder again; what the server takes is "
        "deleted, the rest keeps its new reason.",
    )
    parser.add_argument("--url", required=True, help="the server the SDK logs to, e.g. http://127.0.0.1:8000")
    parser.add_argument("--token", default=os.environ.get("SHIFTWATCH_TOKEN"), help="an ingest token "
                        "(default: $SHIFTWATCH_TOKEN)")  # fmt: skip
    parser.add_argument("--spill-dir", type=Path, help="the Client's spill_dir (default: the Client's own for --url)")
    parser.add_argument("--dry-run", action="store_true", help="list the rejected batches and why; send nothing")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; the exit code (see the module docstring)."""
    args = _parser().parse_args(argv)
    try:
        transport, spill = open_spill(args.url, args.token, args.spill_dir)
        outcomes = replay_rejected(transport, spill, dry_run=args.dry_run)
    except (BadArgument, ReplayBusy) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([asdict(o) for o in outcomes], indent=2))
    elif not outcomes:
        print(f"no rejected batches in {spill.root}")
    else:
        print("\t".join(COLUMNS))
        for o in outcomes:
            print("\t".join(str(cell) for cell in (o.file, o.outcome, o.stored, o.duplicates, o.refused,
                                                    o.reason.replace("\n", " | "))))  # fmt: skip
    return 1 if still_refused(outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
