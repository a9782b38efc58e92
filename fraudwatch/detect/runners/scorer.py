"""The scoring process of `ingest --detect` (`runners.alongside` feeds it, `runners.alongside_scoring` is its
body), started before it is needed.

This module imports nothing heavy on purpose: the ingest starts the process first thing, before it imports the
detection modules itself (polars and the rules' modules), so both imports run at once (figures:
benchmarks/RESULTS.md, "Scoring process started first thing").
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from multiprocessing.connection import Connection
from typing import Any

from fraudwatch import tuning


class Scorer:
    """The scoring process, started before it is told what to score (`Alongside` sends its `Setup`): `ingest
    --detect` starts it first thing, so that its imports (polars and the rules' modules) run while the ingest
    loads its formats and opens the store on one core, not during the first chunk's parse, which keeps both
    busy."""

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        parent_end, child_end = ctx.Pipe()
        self.proc: Any = ctx.Process(target=_score, args=(child_end, logging.getLogger().level),
                                     name="fraudwatch-detect", daemon=True)
        # One polars thread: the ingest needs the other core. With two, the scoring took as long for more CPU,
        # which the ingest then lacked (figures: benchmarks/RESULTS.md, "Runtime tuning: scoring process's
        # polars threads").
        with tuning.environment(POLARS_MAX_THREADS="1"):
            self.proc.start()
        child_end.close()
        self.conn: Connection | None = parent_end

    def close(self) -> None:
        """Stop the process (closing the pipe ends it, whatever it was doing) and wait for it."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.proc is not None:
            self.proc.join(timeout=5)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join()
            self.proc = None


def _score(conn: Connection, level: int) -> None:
    """The process's body: `alongside_scoring.score_alongside`, with a scoring batch's collector settings. The
    modules it runs on are imported first, so that they are frozen out of the collections with the rest."""
    import fraudwatch.detect.decide  # noqa: F401, RUF100  (vulture reads F401 per line)
    import fraudwatch.detect.ruleset  # noqa: F401, RUF100
    import fraudwatch.detect.runners.engine  # noqa: F401
    from fraudwatch.detect.runners.alongside_scoring import score_alongside

    with tuning.gc_for_batch():
        score_alongside(conn, level)
