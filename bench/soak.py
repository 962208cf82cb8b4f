"""Soak: the store's model-based crash test for a long time (issue 9).

    python bench/soak.py [--minutes 30] [--seed N]

Three kinds of process (a stand-in web server compacting in the background, a bundle
import, a user-adding CLI) do random operations on random collections with a tiny
compaction threshold, and are SIGKILLed or restarted at random moments; after every
round the reopened store must equal the model of every acknowledged operation
(tests/store_harness.py; the normal test run does the same for 45 s). Prints the
figures, and the seed to replay a failure.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import store_harness  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    print(f"soak: seed {seed}, {args.minutes:g} minutes", flush=True)
    figures = store_harness.Figures()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            store_harness.run(Path(tmp) / "data", seed, args.minutes * 60, figures)
        except AssertionError as exc:
            print(f"FAILED: {exc}")
            return 1
        finally:
            print(
                f"{time.monotonic() - started:.0f} s: {figures.rounds} rounds, "
                f"{figures.operations} acknowledged operations, {figures.kills} SIGKILLs, "
                f"{figures.restarts} clean restarts, {figures.in_doubt} operations in flight "
                f"at a kill, {figures.compactions} compactions, "
                f"{figures.refused_busy} writes refused as busy, {figures.lost} records lost"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
