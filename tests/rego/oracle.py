"""The Rego differential corpus: cases, OPA as the oracle, Gatehouse through its CLI.

A case is a dict with `note` (unique), `modules` (Rego v1 source texts), optional `data` and
`input` (JSON values), and `query` (a document reference such as `data.t.p`). Its outcome is one of

    {"value": <JSON>}       the document's value (sets as sorted arrays, as OPA writes them)
    {"undefined": True}     the document is undefined
    {"error": "<class>"}    parse | compile | type | conflict | eval (see ERROR_CLASSES)

Errors are compared by class, never by message text: OPA and Gatehouse word messages differently.
Both engines run with strict builtin errors (a builtin error fails the query), which is what the
OPA bindings do and what `gatehouse policy eval` does by default.

Used by scripts/rego-record (records OPA's outcomes into recorded.json), the end-to-end test
tests/e2e/test_rego_differential.py (OPA live against Gatehouse) and scripts/rego-fuzz.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import tempfile
import types
from decimal import Decimal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "Tests" / "GatehousePolicyTests" / "testdata" / "differential"
RECORDED = CORPUS / "recorded.json"
KNOWN = CORPUS / "known-differences.txt"

# OPA's error codes (the `rego_…`/`eval_…` token in its messages) by the class compared.
ERROR_CLASSES = {
    "rego_parse_error": "parse",
    "rego_compile_error": "compile",
    "rego_unsafe_var_error": "compile",
    "rego_recursion_error": "compile",
    "rego_type_error": "type",
    "eval_conflict_error": "conflict",
    "eval_builtin_error": "eval",
    "eval_type_error": "eval",
}

_CODE = re.compile(r"\b((?:rego|eval)_[a-z_]+_error)\b")


def error_class(code: str, message: str = "") -> str:
    """The class of an error from its code or, for OPA's wrapped errors, the first code in its message."""
    if code in ERROR_CLASSES:
        return ERROR_CLASSES[code]
    m = _CODE.search(message)
    if m and m.group(1) in ERROR_CLASSES:
        return ERROR_CLASSES[m.group(1)]
    return f"other:{code}"


# --- the corpus -----------------------------------------------------------------------------------

def load_sources(directory: Path = CORPUS) -> list[dict[str, Any]]:
    """Every case of every `*.yaml` file, in file order, with `file` set; notes must be unique."""
    import yaml  # PyYAML; only the corpus tools need it

    cases: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for path in sorted(directory.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text()) or {}
        for c in doc.get("cases") or []:
            note = c.get("note")
            if not note or not isinstance(note, str):
                raise ValueError(f"{path.name}: a case without a note")
            if note in seen:
                raise ValueError(f"{path.name}: note {note!r} already used in {seen[note]}")
            if not isinstance(c.get("modules"), list) or not isinstance(c.get("query"), str):
                raise ValueError(f"{path.name}: {note}: needs modules (a list) and query (a string)")
            seen[note] = path.name
            case = {"note": note, "file": path.name, "modules": c["modules"], "query": c["query"]}
            for key in ("data", "input"):
                if key in c:
                    case[key] = c[key]
            cases.append(case)
    return cases


def load_known(path: Path = KNOWN) -> dict[str, str]:
    """`note # reason` lines: disagreements that are understood and documented."""
    known: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            note, _, reason = line.partition(" # ")
            known[note.strip()] = reason.strip()
    return known


# --- OPA ------------------------------------------------------------------------------------------

def opa_version() -> str:
    from importlib.metadata import version

    return f"OPA v1.20 via opa-golib-python-bindings {version('opa-golib-python-bindings')}"


def loads(text: str) -> Any:
    """JSON with non-integer numbers kept exact (Decimal): 1e400 stays 1e400, not inf."""
    return json.loads(text, parse_float=Decimal)


_NUMBER = "\ue000number:"


def dumps(value: Any, **kwargs: Any) -> str:
    """json.dumps that writes Decimals as the exact number text they came from."""

    def mark(v: Any) -> Any:
        if isinstance(v, Decimal):
            return _NUMBER + str(v)
        if isinstance(v, list):
            return [mark(x) for x in v]
        if isinstance(v, dict):
            return {k: mark(x) for k, x in v.items()}
        return v

    text = json.dumps(mark(value), ensure_ascii=False, **kwargs)
    return re.sub('"' + _NUMBER + '([^"]*)"', r"\1", text)


def _exact_numbers_in_opa() -> None:
    """The bindings parse OPA's JSON answers with json.loads; keep their numbers exact."""
    import opa_bindings.engine as engine

    if not isinstance(engine.json, types.SimpleNamespace):
        engine.json = types.SimpleNamespace(loads=loads, dumps=json.dumps)


def opa_outcome(case: dict[str, Any]) -> dict[str, Any]:
    """Evaluates a case in OPA (a fresh engine per case)."""
    from opa_bindings import OpaEngine, OpaError, OpaUndefinedError

    _exact_numbers_in_opa()

    query = case["query"]
    if not query.startswith("data."):
        raise ValueError(f"{case['note']}: query must be a data reference, got {query!r}")
    with OpaEngine() as engine:
        engine.print_handler = lambda message, location: None  # print() output is not compared
        try:
            for i, text in enumerate(case["modules"]):
                engine.add_policy(f"m{i}.rego", text)
            if "data" in case:
                engine.add_data(case["data"])
            value = engine.eval_document(query[len("data."):], case.get("input"))
        except OpaUndefinedError:
            return {"undefined": True}
        except OpaError as e:
            return {"error": error_class(e.code, e.message)}
    return {"value": value}


# --- Gatehouse ------------------------------------------------------------------------------------

def gatehouse_bin() -> Path:
    return Path(os.environ.get("GATEHOUSE_BIN") or REPO / ".build" / "debug" / "gatehouse")


def gatehouse_outcome(case: dict[str, Any], binary: Path | None = None, timeout: float = 30,
                      messages: bool = False, parse=None) -> dict[str, Any]:
    """Evaluates a case with `gatehouse policy eval --format json` in a directory of its own.
    With `messages`, an error outcome also carries the error's text under "message" (never
    compared; the fuzzer groups findings by it). `parse` reads the JSON answer (default `loads`)."""
    binary = binary or gatehouse_bin()
    parse = parse or loads
    with tempfile.TemporaryDirectory(prefix="rego-diff-") as tmp:
        root = Path(tmp)
        bundle = root / "bundle"
        bundle.mkdir()
        for i, text in enumerate(case["modules"]):
            (bundle / f"m{i}.rego").write_text(text)
        if "data" in case:
            (bundle / "data.json").write_text(json.dumps(case["data"]))
        args = [str(binary), "policy", "eval", "--format", "json", "-d", str(bundle)]
        if "input" in case:
            (root / "input.json").write_text(json.dumps(case["input"]))
            args += ["-i", str(root / "input.json")]
        args.append(case["query"])
        try:
            proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": "timeout", **({"message": f"no answer in {timeout:g}s"} if messages else {})}
    try:
        out = parse(proc.stdout)
    except json.JSONDecodeError:
        crash = {"error": f"crash:{proc.returncode}:{proc.stderr.strip()[-200:]}"}
        if messages:
            crash["message"] = (f"exit {proc.returncode}; stdout {proc.stdout[:200]!r}; "
                                f"stderr {proc.stderr.strip()[-300:]!r}")
        return crash
    if "error" in out:
        failed = {"error": error_class(out["error"]["code"], out["error"]["message"])}
        if messages:
            failed["message"] = out["error"]["message"]
        return failed
    if out.get("undefined"):
        return {"undefined": True}
    return {"value": out["result"]}


def run_all(cases: Iterable[dict[str, Any]], fn, workers: int = 2) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, cases))


# --- comparing ------------------------------------------------------------------------------------

def same_value(a: Any, b: Any) -> bool:
    """JSON equality with Rego's number semantics (1 == 1.0) and booleans kept apart from numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float, Decimal)) and isinstance(b, (int, float, Decimal)):
        # As doubles where both fit (OPA and Gatehouse may print a double with different digits),
        # exactly where one does not (1e400).
        if isinstance(a, int) and isinstance(b, int):
            return a == b
        try:
            fa, fb = float(a), float(b)
        except OverflowError:
            return Decimal(a) == Decimal(b)
        if math.isinf(fa) or math.isinf(fb):
            return Decimal(a) == Decimal(b)
        return fa == fb
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def same_outcome(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if "value" in a and "value" in b:
        return same_value(a["value"], b["value"])
    return a == b


def describe(outcome: dict[str, Any]) -> str:
    if "value" in outcome:
        text = dumps(outcome["value"], sort_keys=True)
        return text if len(text) <= 300 else text[:300] + "…"
    if "undefined" in outcome:
        return "undefined"
    return f"error {outcome['error']}"


def load_recorded(path: Path = RECORDED) -> dict[str, Any]:
    return loads(path.read_text()) if path.exists() else {"cases": []}
