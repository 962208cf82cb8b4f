"""The store against a model of every acknowledged operation, with random kills.

Seeded: ``STORE_MODEL_SEED`` replays a failing run, ``STORE_MODEL_SECONDS`` makes it
longer (``bench/soak.py`` runs it for half an hour).
"""

from __future__ import annotations

import os
import random

from tests import store_harness


def test_random_work_kills_and_restarts_of_three_processes_lose_nothing(tmp_path):
    seed = int(os.environ.get("STORE_MODEL_SEED") or random.randrange(2**32))
    seconds = float(os.environ.get("STORE_MODEL_SECONDS") or 45)
    print(f"store model seed {seed}")
    figures = store_harness.run(tmp_path / "data", seed, seconds)
    assert figures.rounds >= 5, f"seed {seed}: only {figures.rounds} rounds"
    assert figures.operations > 200, f"seed {seed}: only {figures.operations} operations"
    assert figures.kills > 0 and figures.compactions > 0, (seed, figures)
