"""The contract every rule type implements: what `type:` in a rule file names.

A rule type is a frozen dataclass whose fields are its parameters: `common` (the keys every rule has, parsed by
`fraudwatch.detect.spec`) and its own YAML keys, which `spec.build` fills and converts by their annotations. It says
which columns of its source it reads, and builds the detectors it has:

- a frame detector (every type): batches as polars frames, for replays and the watcher;
- an incremental detector (sliding windows): per-key windows kept incrementally, for a stream of small batches
  when the window is long (`runners.engine.LONG_WINDOW`); None when the frame detector's state already follows
  keys rather than events, so it serves streams as well;
- a row-wise detector (types whose value cannot fall when events are added: `monotone`): the incremental window
  the early gate (`runners.early`) drives on plain rows; None otherwise.

The runners ask the rule, never its class: a new type is its own module under `fraudwatch.detect.types` and an
entry in the registry (`fraudwatch.detect.types.TYPES`).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from fraudwatch.detect.base import Context, Detector
from fraudwatch.detect.filters import where_fields
from fraudwatch.detect.spec import Common
from fraudwatch.detect.windows.incremental import IncrementalDetector


@dataclass(frozen=True, eq=False)
class RuleType(ABC):
    """A rule of one type: its parameters, the columns it reads, and its detectors."""

    common: Common
    type_name: ClassVar[str]  # its `type:` in rule files
    monotone: ClassVar[bool] = False  # its value cannot fall when events are added (an early gate may stand in)

    @classmethod
    def parameters(cls) -> tuple[str, ...]:
        """Its own YAML keys, besides the common ones: its dataclass fields after `common`."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "common")

    def check(self) -> None:
        """Raise ValueError (or spec.ParamError, naming the key) when the parameters disagree."""
        return None

    def fields(self) -> tuple[str, ...]:
        """The columns its own parameters name (besides `where` and `key`)."""
        return ()

    def columns(self) -> set[str]:
        """Every column of its source it reads: those its `where`, its `key` and its own parameters name."""
        return where_fields(self.common.where) | set(self.common.key) | set(self.fields())

    def lookback(self) -> float:
        """Seconds of events it looks back over: the window (a spike: its baseline)."""
        return float(self.common.window)

    @abstractmethod
    def frame_detector(self, ctx: Context, columns: set[str]) -> Detector:
        """Its detector of batches as frames; `columns` are those of its source (a load error names a wrong one)."""

    def incremental_detector(self, ctx: Context, columns: set[str]) -> IncrementalDetector | None:
        """Its incremental detector for streams of small batches; None when the frame detector serves them."""
        return None

    def row_detector(self, ctx: Context, columns: set[str]) -> IncrementalDetector | None:
        """The window an early gate drives on rows (monotone types: their incremental detector); None if none."""
        return self.incremental_detector(ctx, columns) if self.monotone else None
