"""Rule sets: the rule files of the shipped and the user's folders loaded into rules, and the columns they read.

Shipped rules are rules/*.yaml; user folders come after and override a shipped rule with the same id (or turn
it off with `enabled: false`). A replay reads only the columns its rules need (`rule_columns`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fraudwatch.detect.base import EVIDENCE_COLUMNS, Context
from fraudwatch.detect.fields import ENRICH_INPUTS, columns_of
from fraudwatch.detect.filters import FilterError
from fraudwatch.detect.spec import Common, RuleErrors, load_rule_file
from fraudwatch.detect.types import TYPES, RuleType
from fraudwatch.errors import ConfigError, Location
from fraudwatch.rulesdir import shipped_rules_dir
from fraudwatch.store.schema import TABLES


def rule_columns(rules: Iterable[RuleType], source: str) -> list[str]:
    """The stored columns of `source` that `rules` (of that source) read, with what enrichment and evidence
    need: a replay reads only these."""
    wanted = set(ENRICH_INPUTS[source]) | set(EVIDENCE_COLUMNS)
    for rule in rules:
        if rule.common.source == source:
            wanted |= rule.columns()
    return [n for n in TABLES[source].names if n in wanted]


@dataclass
class RuleSet:
    rules: dict[str, RuleType] = field(default_factory=dict)  # id -> rule
    errors: list[ConfigError] = field(default_factory=list)
    disabled: set[str] = field(default_factory=set)


def rule_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.yaml") if p.is_file())


def load_rules(dirs: Iterable[Path] | None = None, collect: bool = False, shipped: bool = True,
               lists_dir: Path | None = None) -> RuleSet:
    """Shipped rules, then each folder (or single rule file) in `dirs` (later wins by id). Each rule is also built
    into a detector once, so a `where:` or field mistake is a load error with its file and line, not a runtime
    one. With `collect`, every mistake of every rule is gathered rather than the first raised (`fraudwatch lint`)."""
    folders = ([shipped_rules_dir()] if shipped else []) + list(dirs or [])
    out = RuleSet()
    ctx = Context(lists_dir or shipped_rules_dir() / "lists")
    for folder in folders:
        if not folder.is_dir() and not folder.is_file():
            err = ConfigError("no such rules file or folder", Location(folder))
            if not collect:
                raise err
            out.errors.append(err)
            continue
        for path in rule_files(folder) if folder.is_dir() else [folder]:  # a folder's *.yaml, or one file
            result = load_rule_file(path, TYPES, collect=collect)
            out.errors.extend(result.errors)
            for rid in result.disabled:  # `enabled: false` turns off a rule loaded before (a shipped one)
                out.rules.pop(rid, None)
                out.disabled.add(rid)
            for rule in result.rules:
                problems = _built_problems(rule, ctx)
                if problems:
                    if not collect:
                        raise problems[0] if len(problems) == 1 else RuleErrors(problems)
                    out.errors.extend(problems)
                    continue
                out.rules[rule.common.id] = rule
                out.disabled.discard(rule.common.id)
    return out


def _built_problems(rule: RuleType, ctx: Context) -> list[ConfigError]:
    """What is wrong with a parsed rule as an action and as a detector (both: lint says both at once)."""
    problems = []
    try:
        _check_action(rule.common)
    except ValueError as exc:
        problems.append(ConfigError(f"rule '{rule.common.id}': {exc}", rule.common.location))
    try:
        rule.frame_detector(ctx, columns_of(rule.common.source))
    except (FilterError, ValueError) as exc:
        problems.append(ConfigError(f"rule '{rule.common.id}': {exc}", rule.common.location))
    return problems


def _check_action(common: Common) -> None:
    if common.action == "ban_ip" and common.key_type != "ip":
        raise ValueError("action ban_ip needs an IP key (src_ip or caller_ip)")
    if common.action == "lock_account" and common.key_type != "account":
        raise ValueError("action lock_account needs an account key")
