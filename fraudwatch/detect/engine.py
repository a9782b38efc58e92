"""Loading rule sets and running them: one engine for the watcher and for replays.

Shipped rules are rules/*.yaml; user folders come after and override a shipped rule with the same id. The
engine enriches each batch once per source and hands it to every detector of that source.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from fraudwatch.detect.base import Context, Detector, Match
from fraudwatch.detect.enrich import ENRICHED, Enricher
from fraudwatch.detect.filters import FilterError
from fraudwatch.detect.registry import TYPES, shipped_rules_dir
from fraudwatch.detect.spec import load_rule_file
from fraudwatch.errors import ConfigError, Location
from fraudwatch.netaddr import IPNetwork
from fraudwatch.store.schema import TABLES


def columns_of(source: str) -> set[str]:
    return set(TABLES[source].names) | set(ENRICHED[source]) | {"ts"}


@dataclass
class RuleSet:
    rules: dict[str, Any] = field(default_factory=dict)  # id -> rule object
    errors: list[ConfigError] = field(default_factory=list)
    disabled: set[str] = field(default_factory=set)


def rule_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.yaml") if p.is_file())


def load_rules(dirs: Iterable[Path] | None = None, collect: bool = False, shipped: bool = True,
               lists_dir: Path | None = None) -> RuleSet:
    """Shipped rules, then each folder in `dirs` (later wins by id). Each rule is also built into a detector
    once, so a `where:` or field mistake is a load error with its file and line, not a runtime one."""
    folders = ([shipped_rules_dir()] if shipped else []) + list(dirs or [])
    out = RuleSet()
    ctx = Context(lists_dir or shipped_rules_dir() / "lists")
    for folder in folders:
        if not folder.is_dir():
            err = ConfigError("rules folder does not exist", Location(folder))
            if not collect:
                raise err
            out.errors.append(err)
            continue
        for path in rule_files(folder):
            result = load_rule_file(path, TYPES, collect=collect)
            out.errors.extend(result.errors)
            for rule in result.rules:
                try:
                    rule.detector(ctx, columns_of(rule.common.source))
                    _check_action(rule.common)
                except (FilterError, ValueError) as exc:
                    err = ConfigError(f"rule '{rule.common.id}': {exc}", rule.common.location)
                    if not collect:
                        raise err from None
                    out.errors.append(err)
                    continue
                out.rules[rule.common.id] = rule
    return out


def _check_action(common: Any) -> None:
    if common.action == "ban_ip" and common.key_type != "ip":
        raise ValueError("action ban_ip needs an IP key (src_ip or caller_ip)")
    if common.action == "lock_account" and common.key_type != "account":
        raise ValueError("action lock_account needs an account key")


class Engine:
    """Enrich once per source, then every detector of that source; returns the matches of the batch."""

    def __init__(self, rules: Sequence[Any], ctx: Context, trusted: Sequence[IPNetwork] = ()) -> None:
        self.enrich = Enricher(trusted)
        self.detectors: dict[str, list[Detector]] = {s: [] for s in ENRICHED}
        for rule in rules:
            source = rule.common.source
            self.detectors[source].append(rule.detector(ctx, columns_of(source)))

    @property
    def sources(self) -> list[str]:
        return [s for s, ds in self.detectors.items() if ds]

    def process(self, source: str, events: pl.DataFrame) -> list[Match]:
        if not self.detectors.get(source):
            return []
        frame = self.enrich(source, events)
        out: list[Match] = []
        for d in self.detectors[source]:
            out.extend(d.process(frame))
        return out
