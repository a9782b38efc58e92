"""The scoring process of `ingest --detect` (`runners.alongside` feeds it, `runners.alongside_scoring` is its
body), started before it is needed.

This module imports nothing heavy on purpose: the ingest starts the process first thing, before it imports the
detection modules itself (polars and the rules' modules: 0.46 s under cProfile), so both imports run at once.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
from multiprocessing.connection import Connection
from typing import Any


class Scorer:
    """The scoring process, started before it is told what to score (`Alongside` sends its `Setup`): `ingest
    --detect` starts it first thing, so that its imports (polars and the rules' modules, about 1 CPU-s) run
    while the ingest loads its formats and opens the store on one core, not during the first chunk's parse,
    which keeps both busy."""

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        parent_end, child_end = ctx.Pipe()
        self.proc: Any = ctx.Process(target=_score, args=(child_end, logging.getLogger().level),
                                     name="fraudwatch-detect", daemon=True)
        # One polars thread: the ingest needs the other core. With two, the scoring took as long and 30% more
        # CPU (flood replay: 19.5 s either way, 22 against 29 CPU-s), which the ingest then lacked.
        saved = os.environ.get("POLARS_MAX_THREADS")
        os.environ["POLARS_MAX_THREADS"] = "1"
        try:
            self.proc.start()
        finally:
            if saved is None:
                del os.environ["POLARS_MAX_THREADS"]
            else:
                os.environ["POLARS_MAX_THREADS"] = saved
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
    """The process's body: `alongside_scoring.score_alongside`, imported here, in the process."""
    from fraudwatch.detect.runners.alongside_scoring import score_alongside

    score_alongside(conn, level)
