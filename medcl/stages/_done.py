"""A stage's record: what it was computed from, what it wrote, and whether it still holds.

Every stage ends by writing one JSON *record* (``done.json``, a cell's ``result.json``,
``cluster/summary.json``): its results, plus a ``record`` entry that holds

* ``depends``: the config keys the stage reads with their values, a fingerprint of each
  input (a split's images and masks, :func:`medcl.data.split_fingerprint`) and the
  fingerprints of the upstream stages it reads;
* ``fingerprint``: a hash of ``depends``;
* ``outputs``: the content hash of every file the record vouches for;
* ``checksum``: a hash of the whole record, so an edited or damaged record is noticed.

A rerun reuses a record only if all of that still holds, the way make or DVC would: if the
stage's inputs changed it is recomputed (one line saying which key or input changed), and
since a downstream stage's fingerprint contains its upstream's, everything downstream is
recomputed too. A record that cannot be parsed, lacks a key, holds an impossible value or
vouches for a file whose content changed is *damaged*: recomputed, with one line naming
the file. Fingerprints are pure functions of the config and the data (see
:mod:`medcl.stages._deps`), so a stage can tell before it runs whether its upstream is
current.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcl._load import file_digest
from medcl.errors import MedclError
from medcl.rundir import RunDir, say

RECORD_KEY = "record"


def _digest(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def _show(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


@dataclass(frozen=True)
class Deps:
    """What one stage depends on. ``stage`` names it in messages ("pretrain ufc seed 0")."""

    stage: str
    config: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    upstream: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"config": self.config, "inputs": self.inputs, "upstream": self.upstream}

    @property
    def fingerprint(self) -> str:
        return _digest(self.as_dict())

    def changes(self, recorded: Any) -> list[str]:
        """What differs between ``recorded`` (a record's ``depends``) and these deps."""
        if not isinstance(recorded, dict):
            return ["its record names no inputs"]
        out = []
        old_cfg = recorded.get("config") or {}
        for key in sorted(set(old_cfg) | set(self.config)):
            if key not in self.config:
                out.append(f"{key} is no longer read")
            elif key not in old_cfg:
                out.append(f"{key} is new")
            elif old_cfg[key] != self.config[key]:
                out.append(f"{key} changed from {_show(old_cfg[key])} to {_show(self.config[key])}")
        for kind, label in (("inputs", "the {} changed"), ("upstream", "{} changed")):
            old = recorded.get(kind) or {}
            new = getattr(self, kind)
            for name in sorted(set(old) | set(new)):
                if old.get(name) != new.get(name):
                    out.append(label.format(name))
        return out or ["its inputs changed"]


def _is_fraction(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v <= 1


def check_keys(payload: dict, **kinds: type | tuple[type, ...]) -> str | None:
    """None if every key of ``kinds`` is in ``payload`` with that type, else what is wrong."""
    for key, kind in kinds.items():
        if key not in payload:
            return f"key '{key}' is missing"
        value = payload[key]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            return f"'{key}' is {json.dumps(value)[:40]}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"'{key}' is {json.dumps(value)}"
    return None


def check_fraction(payload: dict, *keys: str) -> str | None:
    """None if each key holds a number in [0, 1] (a Dice, a share), else what is wrong."""
    for key in keys:
        if key not in payload:
            return f"key '{key}' is missing"
        value = payload[key]
        if not _is_fraction(value):
            return f"'{key}' is {json.dumps(value)}, outside [0, 1]"
    return None


def inspect_record(
    run: RunDir, rel: str, deps: Deps, check: Callable[[dict], str | None] | None = None
) -> tuple[dict | None, str | None, bool]:
    """``(payload, problem, damaged)`` of the record ``rel``.

    ``payload`` is the record without its ``record`` entry when it can be reused, else None
    with ``problem`` saying why: missing, damaged (``damaged`` True) or made from other inputs.
    """
    path = run.path / rel
    if not path.exists():
        return None, "is missing", False
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, "is not valid JSON", True
    if not isinstance(doc, dict):
        return None, "is not a JSON object", True
    rec = doc.get(RECORD_KEY)
    if not isinstance(rec, dict) or not isinstance(rec.get("depends"), dict):
        return None, "was written by an older medcl (it records no inputs)", False
    body = {k: v for k, v in doc.items() if k != RECORD_KEY}
    problem = check(body) if check else None
    if problem:
        return None, problem, True
    if rec.get("checksum") != _digest({**body, RECORD_KEY: _without_checksum(rec)}):
        return None, "does not match its checksum (edited or damaged)", True
    if rec.get("fingerprint") != deps.fingerprint:
        return None, "; ".join(deps.changes(rec.get("depends"))[:3]), False
    outputs = rec.get("outputs") or {}
    for name, digest in outputs.items():
        out = run.path / name
        if not out.is_file():
            return None, f"vouches for {name}, which is missing", True
        if file_digest(out) != digest:
            return None, f"vouches for {name}, whose content has changed", True
    return body, None, False


def _without_checksum(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if k != "checksum"}


def reusable(
    run: RunDir,
    rel: str,
    deps: Deps,
    check: Callable[[dict], str | None] | None = None,
    quiet: bool = False,
) -> dict | None:
    """The record ``rel`` if it can be reused, else None, saying in one line why not."""
    payload, problem, damaged = inspect_record(run, rel, deps, check)
    if payload is None and problem is not None and problem != "is missing" and not quiet:
        if damaged:
            say(
                f"{run.path / rel} is damaged ({problem.removeprefix('is ')}); recomputing {deps.stage}"
            )
        else:
            say(f"{deps.stage}: rerun, {problem}")
    return payload


def require_current(
    run: RunDir,
    rel: str,
    deps: Deps,
    command: str,
    check: Callable[[dict], str | None] | None = None,
) -> dict:
    """The upstream record ``rel``, which a stage needs current; else one sentence to fix it."""
    payload, problem, damaged = inspect_record(run, rel, deps, check)
    if payload is None:
        if not damaged and problem not in ("is missing",) and "older medcl" not in str(problem):
            problem = f"was computed from other settings ({problem})"
        raise MedclError(
            f"The {deps.stage} record '{run.path / rel}' {problem}; run `medcl {command} "
            f"--run {run.path}` first."
        )
    return payload


def write_record(
    run: RunDir, rel: str, payload: dict, deps: Deps, outputs: Sequence[str] = ()
) -> dict:
    """Write ``payload`` as the record ``rel`` of a finished stage; returns ``payload``.

    ``outputs`` are paths relative to the run directory whose content the record vouches for.
    """
    rec = {
        "fingerprint": deps.fingerprint,
        "depends": deps.as_dict(),
        "outputs": {name: file_digest(run.path / name) for name in outputs},
    }
    rec["checksum"] = _digest({**payload, RECORD_KEY: rec})
    run.write_json(rel, {**payload, RECORD_KEY: rec})
    return payload


def read_payload(run: RunDir, rel: str) -> dict | None:
    """A record's results without its ``record`` entry (None if absent or unreadable).

    For gathering results that the stages have just checked or written.
    """
    doc = run.read_json(rel)
    if not isinstance(doc, dict):
        return None
    return {k: v for k, v in doc.items() if k != RECORD_KEY}


def fingerprint_of(run: RunDir, rel: str) -> str | None:
    """The fingerprint a record was written with, None if it has none."""
    doc = run.read_json(rel)
    rec = doc.get(RECORD_KEY) if isinstance(doc, dict) else None
    return rec.get("fingerprint") if isinstance(rec, dict) else None


def relative(run: RunDir, path: Path) -> str:
    return str(Path(path).relative_to(run.path))
