"""A grammar fuzzer for Gatehouse's Rego engine, with OPA v1.20 as the oracle (scripts/rego-fuzz).

What it generates
-----------------
Small Rego v1 modules (1-6 rules, `package t`, queried as `data.t`) and random inputs:

* well-typed modules (about three quarters): rules whose bodies read input fields of known types
  (a gateway-shaped input: user, roles, tool, args, headers, numbers), comparisons, arithmetic
  with big integers, floats and negative zero, string builtins, array/set/object builtins,
  comprehensions, `some ... in`, `every`, `not`, `with input... as`, `else` chains, functions
  with several definitions, partial set and object rules, ref heads, unification, `default`;
* ill-typed or ill-formed modules: arguments of the wrong type, unsafe variables, conflicting
  values, recursion, unknown or deprecated builtins, v0 syntax, and syntax errors made by
  mutating the tokens of a generated module (deleting, duplicating, swapping, inserting).

Inputs are nested JSON with unicode, empty collections, null, big numbers and floats. Builtins
whose result is not a function of their arguments (time.now_ns, rand.*, uuid.rfc4122,
http.send, opa.runtime, net.lookup_ip_addr) and `print` are never generated.

Determinism: case i of seed S is generated from its own random stream ("S/i"), and the input
from the stream of its batch, so a seed always produces the same sequence of cases; --seconds
only decides how far along it gets (--cases N stops after exactly N cases).

Throughput: a `gatehouse policy eval` process costs 40-100 ms; OPA runs in process (~1.5 ms).
So every case is evaluated alone in OPA first, and the well-formed cases with a value in OPA
(most of them) are evaluated in Gatehouse in batches of --batch (8): each case's module gets
`package t.b<j>` (the generated rules refer to each other only by their bare names, so renaming
the package does not change their meaning) and the batch is queried as `data.t` in one process.
The cases of a batch share one input. When a batch disagrees, each of its cases is rerun alone
in Gatehouse, and only a case that disagrees alone is reported and shrunk (one package, the
case's own outcome), so the batching never makes shrinking unreliable; a batch that disagrees
while all its cases agree alone is reported as a multi-module case. Cases that OPA rejects
(errors) or that carry data run alone: one error would otherwise hide the others of a batch.
Gatehouse processes run in a thread pool (--workers); OPA calls are serialized by a lock.

Findings
--------
A disagreement is a different outcome (value / undefined / error class, as in oracle.py; numbers
compare by exact decimal value, so OPA's 1e+300 equals Gatehouse's 1000...0). A Gatehouse crash
(no JSON output) or timeout (30 s by default) is a finding of its own kind, reported
prominently, and only when it happens again on a rerun. Each finding is shrunk (remove rules,
body literals, input keys; replace calls by their arguments, collections by fewer elements,
literals by simpler ones) while the outcome kinds of both engines stay the same, then
deduplicated by cause. The signature is the pair of outcome kinds plus: when one engine fails
and the other does not, the failing engine's error message without names, literals, locations
and builtin name ("invalid argument(s)", "`if` keyword is required before rule body"); when
both fail with different classes, nothing more (the engines report different errors first);
when both give values, the set of builtins and keywords of the shrunk case, and a known set
contained in it counts as the same cause. Known are this run's findings, fuzz-found.yaml and
--out, and corpus cases with the same builtins that still disagree the same way. Each new
finding is rerun three times: a Gatehouse that answers differently from run to run is marked
NONDETERMINISTIC. New findings are appended to --out as corpus cases, note
`fuzz/<seed>-<n>-<short>`. `--prune` re-evaluates --out, drops the cases that agree now and
keeps the smallest case of each cause.

Only the generation is bounded by --seconds; shrinking then gets --shrink-total (a third of
--seconds plus 15 by default), so `--seconds 90` takes about 140 s; raw disagreements left
when that time is up are counted ("not shrunk") but do not fail the run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import oracle  # noqa: E402

DEFAULT_OUT = oracle.CORPUS / "fuzz-found.yaml"

# --- values ---------------------------------------------------------------------------------------

STRINGS = ["", "a", "b", "admin", "read", "write", "tools/call", "x-api-key", "A", "a,b,c", "a.b",
           "é", "日本語", "😀", "ß", "İ", " pad ", "12", "-3.5", "1e3", "0x10", "true", "null",
           "a\nb", "tab\there", "quote\"d", "back\\slash", "\u0000", "\u200b", "ǅ", "Ω", "/path/x",
           "*", "a*b", "%d", "%v", "github.create_issue", "fs.read", "admin@example.com"]
NUMBERS = [0, 1, 2, 3, -1, -7, 10, 42, 100, 255, 0.5, -2.5, 3.14, 0.1, 1e-9, 1.5e10, -0.0, 1e300,
           9007199254740993, 2 ** 63, -(2 ** 63), 2 ** 64 + 1, 10 ** 30, 123456789012345678901234567890,
           1.7976931348623157e308, 5e-324]
REGEXES = ["^a", "b$", "^[a-z]+$", ".", "(?i)ADMIN", "\\d", "^$"]
DEPRECATED = ["any([true])", "all([true])", 're_match("a", "a")', "set_diff({1}, {2})", "cast_string(1)"]
DATA_MOCKS = ['["fs.read"]', "[]", '{"a": 1}', "null"]
KEYS = ["a", "b", "c", "name", "id", "x", "é", "日本", "", "k1", "path", "1"]


def rand_json(r: random.Random, depth: int = 0) -> Any:
    k = r.random()
    if depth >= 3 or k < 0.45:
        return r.choice([None, True, False, r.choice(STRINGS), r.choice(STRINGS), r.choice(NUMBERS),
                         r.choice(NUMBERS), r.randint(-5, 20)])
    if k < 0.72:
        return [rand_json(r, depth + 1) for _ in range(r.choice([0, 1, 2, 3, 4]))]
    return {r.choice(KEYS): rand_json(r, depth + 1) for _ in range(r.choice([0, 1, 2, 3, 4]))}


def rand_input(r: random.Random) -> Any:
    """A gateway-shaped input whose fields usually have the types the typed generator assumes."""
    if r.random() < 0.03:
        return rand_json(r)

    def maybe(v):  # now and then a field is missing, null or of another type
        x = r.random()
        return v if x < 0.88 else (None if x < 0.93 else rand_json(r, 2))

    def nums(n):
        return [r.choice(NUMBERS) if r.random() < 0.5 else r.randint(-10, 50) for _ in range(n)]

    def strs(n):
        return [r.choice(STRINGS) for _ in range(n)]

    inp = {
        "user": maybe({"name": r.choice(STRINGS), "roles": strs(r.choice([0, 1, 2, 3])),
                       "age": r.choice(NUMBERS + [18, 30, 65]), "admin": r.random() < 0.4,
                       "email": r.choice(["alice@example.com", "bob@ex.org", "é@x", ""])}),
        "method": maybe(r.choice(["tools/call", "tools/list", "resources/read", "initialize", ""])),
        "tool": maybe({"name": r.choice(["fs.read", "fs.write", "github.create_issue", "shell", "",
                                         "日本.tool"]),
                       "server": r.choice(["local", "remote", "a.b.c"]),
                       "args": {r.choice(KEYS): rand_json(r, 1) for _ in range(r.choice([0, 1, 2, 3]))}}),
        "n": maybe(r.choice(NUMBERS)),
        "m": maybe(r.choice(NUMBERS + [1, 2, 3])),
        "s": maybe(r.choice(STRINGS)),
        "tags": maybe(strs(r.choice([0, 1, 2, 3, 4]))),
        "nums": maybe(nums(r.choice([0, 1, 2, 3, 5]))),
        "obj": maybe({r.choice(KEYS): r.choice(NUMBERS) for _ in range(r.choice([0, 1, 2, 3]))}),
        "headers": maybe({r.choice(["x-api-key", "authorization", "accept", "X-Trace", "é"]): r.choice(STRINGS)
                          for _ in range(r.choice([0, 1, 2]))}),
        "any": rand_json(r, 1),
    }
    for key in list(inp):
        if r.random() < 0.04:
            del inp[key]
    return inp


def rego_string(s: str, r: random.Random | None = None) -> str:
    if r is not None and r.random() < 0.1 and "`" not in s and all(0x20 <= ord(ch) != 0x7f for ch in s):
        return "`" + s + "`"
    out = []
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20 or o == 0x7f or o in (0x2028, 0x2029, 0x200b):
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def rego_number(n) -> str:
    if isinstance(n, float):
        if n == 0 and str(n).startswith("-"):
            return "-0.0"
        return repr(n)
    return str(n)


# --- the module generator -------------------------------------------------------------------------

# Types: num str bool anum astr snum sstr onum ostr any
COLL_ELEM = {"anum": "num", "astr": "str", "snum": "num", "sstr": "str", "onum": "num", "ostr": "str"}
ALL_TYPES = ["num", "str", "bool", "anum", "astr", "snum", "sstr", "onum", "ostr", "any"]


class Gen:
    def __init__(self, r: random.Random, ill: bool, has_data: bool = False):
        self.r = r
        self.has_data = has_data
        self.ill = ill              # now and then an expression of the wrong type
        self.nvar = 0
        self.rules: dict[str, str] = {}          # complete/partial rules usable by later ones
        self.funcs: dict[str, tuple[list[str], str]] = {}
        self.wrong_p = 0.18 if ill else 0.0

    def var(self) -> str:
        self.nvar += 1
        return f"x{self.nvar}"

    def pick(self, weighted):
        total = sum(w for w, _ in weighted)
        x = self.r.random() * total
        for w, f in weighted:
            x -= w
            if x <= 0:
                return f()
        return weighted[-1][1]()

    # terms ---------------------------------------------------------------------------------------
    def expr(self, t: str, scope: dict[str, str], d: int = 0) -> str:
        r = self.r
        if self.wrong_p and r.random() < self.wrong_p:
            t = r.choice(ALL_TYPES)
        if t == "any":
            t = r.choice(ALL_TYPES[:-1] + ["rawany", "rawany"])
        vars_t = [v for v, vt in scope.items() if vt == t]
        rules_t = [n for n, rt in self.rules.items() if rt == t]
        leaf = d >= 3 or r.random() < 0.25 + 0.15 * d
        if vars_t and r.random() < 0.35:
            return r.choice(vars_t)
        if rules_t and r.random() < 0.2:
            return r.choice(rules_t)
        f = getattr(self, "e_" + t)
        return f(scope, d, leaf)

    def e_rawany(self, s, d, leaf):
        r = self.r
        if self.has_data and r.random() < 0.3:
            return r.choice(["data.cfg", "data.roles", "data.roles[input.user.roles[0]]", "data.cfg.a", "data.t.zz"])
        return self.pick([
            (3, lambda: r.choice(["input.any", "input.tool.args", "input.tool.args." + r.choice(["a", "b", "x", "name"]),
                                  "input", "input.user", "null", 'input.tool.args["é"]', "input.any[0]"])),
            (1, lambda: f"object.get(input.tool.args, {rego_string(r.choice(KEYS))}, null)"),
            (1, lambda: f"json.unmarshal(json.marshal({self.expr('any', s, d + 1)}))"),
            (1, lambda: f"[{self.expr('any', s, d + 1)}, {self.expr('any', s, d + 1)}]"),
        ])

    def e_num(self, s, d, leaf):
        r = self.r
        lit = lambda: rego_number(r.choice(NUMBERS)) if r.random() < 0.6 else str(r.randint(-3, 12))
        if leaf:
            return self.pick([(4, lit), (3, lambda: r.choice(["input.n", "input.m", "input.user.age", "input.nums[0]",
                                                               "input.obj.a", "count(input.tags)"]))])
        e = lambda t: self.expr(t, s, d + 1)
        return self.pick([
            (2, lit),
            (2, lambda: r.choice(["input.n", "input.m", "input.user.age", "input.nums[1]", "input.obj.b"])),
            (5, lambda: f"({e('num')} {r.choice(['+', '-', '*', '/', '%', '+', '*'])} {e('num')})"),
            (3, lambda: f"count({e(r.choice(['anum', 'astr', 'snum', 'sstr', 'onum', 'ostr', 'str']))})"),
            (2, lambda: f"{r.choice(['sum', 'product', 'max', 'min'])}({e(r.choice(['anum', 'snum']))})"),
            (2, lambda: f"{r.choice(['abs', 'round', 'ceil', 'floor'])}({e('num')})"),
            (1, lambda: f"to_number({r.choice([rego_string(x) for x in ['12', '-3.5', '1e3', '0', '1e400', ' 1', '']] + [e('str')])})"),
            (1, lambda: f"{r.choice(['indexof', 'strings.count'])}({e('str')}, {e('str')})"),
            (1, lambda: f"bits.{r.choice(['and', 'or', 'xor', 'lsh', 'rsh'])}({e('num')}, {r.randint(0, 70)})"),
            (1, lambda: f"numbers.range({r.randint(-3, 3)}, {r.randint(-3, 6)})[{r.randint(0, 3)}]"),
            (1, lambda: f"units.parse_bytes({rego_string(r.choice(['10KB', '1Ki', '5MB', '0', '1.5G', 'x']))})"),
            (1, lambda: f"{r.choice(list(self.funcs) or ['abs'])}({e('num')})" if self.funcs and any(
                rt == 'num' and at == ['num'] for at, rt in self.funcs.values()) else lit()),
            (1, lambda: self.call_func("num", s, d)),
        ])

    def sprintf(self, s, d):
        """Formats whose verbs fit their arguments (gateway messages); the ill mode mixes them up."""
        r = self.r
        e = lambda t: self.expr(t, s, d + 1)
        if self.ill and r.random() < 0.5:
            return (f"sprintf({rego_string(r.choice(['%v', '%d', '%s', '%v-%v', '%.2f', '%x', '%5s|', '%q']))}, "
                    f"[{e('any')}, {e('any')}])")
        verbs = [r.choice([("%v", "any"), ("%s", "str"), ("%d", "int"), ("%v", "num"), ("%q", "str"),
                           ("%.2f", "num"), ("%x", "int"), ("%5s", "str"), ("%-4d", "int")])
                 for _ in range(r.choice([1, 1, 2, 3]))]
        fmt = r.choice(["", "denied: ", "tool "]) + r.choice([" ", "/", ": "]).join(v for v, _ in verbs)
        args = [e(t) if t != "int" else r.choice(["count(input.tags)", str(r.randint(-5, 300)), "input.user.age",
                                                   "9007199254740993"]) for _, t in verbs]
        return f"sprintf({rego_string(fmt)}, [{', '.join(args)}])"

    def call_func(self, t, s, d):
        fs = [n for n, (at, rt) in self.funcs.items() if rt == t]
        if not fs:
            return self.expr(t, s, d + 1) if d < 3 else ("0" if t == "num" else '""' if t == "str" else "true")
        n = self.r.choice(fs)
        return f"{n}({', '.join(self.expr(a, s, d + 1) for a in self.funcs[n][0])})"

    def e_str(self, s, d, leaf):
        r = self.r
        lit = lambda: rego_string(r.choice(STRINGS), r)
        if leaf:
            return self.pick([(4, lit), (3, lambda: r.choice(["input.user.name", "input.method", "input.tool.name",
                                                               "input.s", "input.tags[0]", 'input.headers["x-api-key"]',
                                                               "input.user.email"]))])
        e = lambda t: self.expr(t, s, d + 1)
        return self.pick([
            (2, lit),
            (2, lambda: r.choice(["input.user.name", "input.method", "input.tool.name", "input.s", "input.tags[1]"])),
            (2, lambda: f"concat({rego_string(r.choice([',', '', '/', 'é']))}, {e(r.choice(['astr', 'sstr']))})"),
            (3, lambda: f"{r.choice(['lower', 'upper', 'trim_space', 'strings.reverse', 'base64.encode', 'base64url.encode', 'hex.encode', 'urlquery.encode'])}({e('str')})"),
            (2, lambda: f"{r.choice(['trim', 'trim_left', 'trim_right', 'trim_prefix', 'trim_suffix'])}({e('str')}, {e('str')})"),
            (2, lambda: f"substring({e('str')}, {r.randint(-1, 4)}, {r.randint(-1, 5)})"),
            (1, lambda: f"replace({e('str')}, {e('str')}, {e('str')})"),
            (1, lambda: f"strings.replace_n({{{e('str')}: {e('str')}}}, {e('str')})"),
            (2, lambda: self.sprintf(s, d)),
            (1, lambda: f"format_int({e('num')}, {r.choice([2, 8, 10, 16])})"),
            (2, lambda: f"json.marshal({e('any')})"),
            (1, lambda: f"type_name({e('any')})"),
            (1, lambda: f"split({e('str')}, {rego_string(r.choice([',', '.', '', 'a']))})[{r.randint(0, 2)}]"),
            (1, lambda: f"object.get({e('ostr')}, {e('str')}, {lit()})"),
            (1, lambda: f"regex.replace({e('str')}, {rego_string(r.choice(['a+', '[0-9]', '^.', 'é|日']))}, {lit()})"),
            (1, lambda: f"base64.decode({rego_string(r.choice(['YQ==', 'w6k=', '', 'YWJj']))})"),
            (1, lambda: f"strings.any_prefix_match({e('str')}, {e('astr')})" if False else f"lower({lit()})"),
            (1, lambda: self.call_func("str", s, d)),
        ])

    def e_bool(self, s, d, leaf):
        r = self.r
        if leaf:
            return r.choice(["true", "false", "input.user.admin", f"input.n > {rego_number(r.choice(NUMBERS))}",
                             '"admin" in input.user.roles', "is_number(input.n)"])
        e = lambda t: self.expr(t, s, d + 1)
        cmp = lambda: r.choice(["==", "!=", "<", "<=", ">", ">="])
        par = lambda depth, text: f"({text})" if depth > 1 else text
        return self.pick([
            (4, lambda: par(d, (lambda t: f"{e(t)} {cmp()} {e(t)}")(r.choice(["num", "num", "str", "str", "any"])))),
            (2, lambda: par(d, f"{e('any')} == {e('any')}")),
            (2, lambda: f"{r.choice(['startswith', 'endswith', 'contains'])}({e('str')}, {e('str')})"),
            (2, lambda: par(d, f"{e(r.choice(['num', 'str', 'any']))} in {e(r.choice(['anum', 'astr', 'snum', 'sstr', 'onum', 'ostr']))}")),
            (1, lambda: f"{r.choice(['is_number', 'is_string', 'is_array', 'is_object', 'is_set', 'is_null', 'is_boolean'])}({e('any')})"),
            (1, lambda: f"regex.match({rego_string(r.choice(REGEXES))}, {e('str')})"),
            (1, lambda: f"glob.match({rego_string(r.choice(['*', 'fs.*', 'a*b', '**']))}, [{rego_string(r.choice(['.', '/']))}], {e('str')})"),
            (1, lambda: f"object.get(input.user, {rego_string(r.choice(['admin', 'nope']))}, false)"),
            (1, lambda: r.choice(["true", "false", "input.user.admin"])),
            (1, lambda: f"strings.any_prefix_match({e('str')}, {e('astr')})"),
            (1, lambda: self.call_func("bool", s, d)),
        ])

    def coll_lit(self, elem: str, open_: str, close: str, s, d):
        n = self.r.choice([0, 1, 2, 3])
        if n == 0 and open_ == "{":
            return "set()"
        return open_ + ", ".join(self.expr(elem, s, d + 1) for _ in range(n)) + close

    def compr(self, kind: str, elem: str, s, d):
        r = self.r
        v = self.var()
        src_t = r.choice(["anum", "astr", "snum", "sstr"])
        et = COLL_ELEM[src_t]
        inner = dict(s)
        inner[v] = et
        src = self.expr(src_t, s, d + 1)
        body = [f"some {v} in {src}"]
        if r.random() < 0.6:
            body.append(self.literal_inline(inner, d + 1))
        head = self.expr(elem, inner, d + 1) if r.random() < 0.6 else (v if et == elem else self.expr(elem, inner, d + 1))
        if kind == "obj":
            key = v if et == "str" and r.random() < 0.7 else self.expr("str", inner, d + 1)
            return "{" + f"{key}: {head} | {'; '.join(body)}" + "}"
        o, c = ("[", "]") if kind == "arr" else ("{", "}")
        return f"{o}{head} | {'; '.join(body)}{c}"

    def e_anum(self, s, d, leaf):
        r = self.r
        if leaf:
            return r.choice(["input.nums", "[]", "[1, 2, 3]", f"[{rego_number(r.choice(NUMBERS))}, -0.0]"])
        e = lambda t: self.expr(t, s, d + 1)
        return self.pick([
            (2, lambda: self.coll_lit("num", "[", "]", s, d)),
            (2, lambda: "input.nums"),
            (3, lambda: self.compr("arr", "num", s, d)),
            (1, lambda: f"sort({e('anum')})"),
            (1, lambda: f"array.concat({e('anum')}, {e('anum')})"),
            (1, lambda: f"array.slice({e('anum')}, {r.randint(-1, 2)}, {r.randint(0, 4)})"),
            (1, lambda: f"array.reverse({e('anum')})"),
            (1, lambda: f"numbers.range({r.randint(-3, 3)}, {r.randint(-3, 5)})"),
        ])

    def e_astr(self, s, d, leaf):
        r = self.r
        if self.has_data and r.random() < 0.3:
            return r.choice(["data.roles.admin", 'data.roles["é"]', "data.roles[input.user.name]"])
        if leaf:
            return r.choice(["input.tags", "input.user.roles", "[]", '["a", "b"]', '["é", "A", ""]'])
        e = lambda t: self.expr(t, s, d + 1)
        return self.pick([
            (2, lambda: self.coll_lit("str", "[", "]", s, d)),
            (2, lambda: r.choice(["input.tags", "input.user.roles"])),
            (3, lambda: self.compr("arr", "str", s, d)),
            (1, lambda: f"split({e('str')}, {rego_string(r.choice([',', '', '.', 'é']))})"),
            (1, lambda: f"sort({e(r.choice(['astr', 'sstr']))})"),
            (1, lambda: f"array.concat({e('astr')}, {e('astr')})"),
            (1, lambda: f"regex.split({rego_string(r.choice([',', '[.,]', 'a*']))}, {e('str')})"),
            (1, lambda: f"strings.split({e('str')}, {rego_string(r.choice([',', '/']))})" if False else f"split({e('str')}, \"/\")"),
        ])

    def e_snum(self, s, d, leaf):
        r = self.r
        if leaf:
            return r.choice(["{1, 2}", "set()", "{-0.0, 0}", "{1, 1.0, 2.5}"])
        e = lambda t: self.expr(t, s, d + 1)
        return self.pick([
            (2, lambda: self.coll_lit("num", "{", "}", s, d)),
            (3, lambda: self.compr("set", "num", s, d)),
            (2, lambda: f"({e('snum')} {r.choice(['|', '&', '-'])} {e('snum')})"),
            (1, lambda: f"{r.choice(['union', 'intersection'])}({{{e('snum')}, {e('snum')}}})"),
            (1, lambda: f"{{x | some x in {e('anum')}}}"),
        ])

    def e_sstr(self, s, d, leaf):
        r = self.r
        if leaf:
            return r.choice(['{"a"}', "set()", 'object.keys(input.tool.args)', '{"é", "e", "E"}'])
        e = lambda t: self.expr(t, s, d + 1)
        return self.pick([
            (2, lambda: self.coll_lit("str", "{", "}", s, d)),
            (3, lambda: self.compr("set", "str", s, d)),
            (2, lambda: f"({e('sstr')} {r.choice(['|', '&', '-'])} {e('sstr')})"),
            (2, lambda: f"object.keys({e(r.choice(['onum', 'ostr']))})"),
            (1, lambda: f"{{lower(x) | some x in {e('astr')}}}"),
        ])

    def obj_lit(self, vt, s, d):
        n = self.r.choice([0, 1, 2, 3])
        return "{" + ", ".join(f"{rego_string(self.r.choice(KEYS))}: {self.expr(vt, s, d + 1)}" for _ in range(n)) + "}"

    def e_onum(self, s, d, leaf):
        r = self.r
        if leaf:
            return r.choice(["input.obj", "{}", '{"a": 1, "b": 2.5}', '{"é": -0.0}'])
        e = lambda t: self.expr(t, s, d + 1)
        return self.pick([
            (2, lambda: self.obj_lit("num", s, d)),
            (2, lambda: "input.obj"),
            (2, lambda: self.compr("obj", "num", s, d)),
            (1, lambda: f"object.union({e('onum')}, {e('onum')})"),
            (1, lambda: f"object.remove({e('onum')}, [{rego_string(r.choice(KEYS))}])"),
            (1, lambda: f"object.filter({e('onum')}, {{{rego_string(r.choice(KEYS))}}})"),
            (1, lambda: f"{{k: v | some k, v in {e('onum')}; v > {r.randint(-1, 3)}}}"),
        ])

    def e_ostr(self, s, d, leaf):
        r = self.r
        if leaf:
            return r.choice(["input.headers", "{}", '{"a": "b"}'])
        e = lambda t: self.expr(t, s, d + 1)
        return self.pick([
            (2, lambda: self.obj_lit("str", s, d)),
            (2, lambda: "input.headers"),
            (2, lambda: self.compr("obj", "str", s, d)),
            (1, lambda: f"object.union({e('ostr')}, {e('ostr')})"),
            (1, lambda: f"{{lower(k): v | some k, v in {e('ostr')}}}"),
        ])

    # body literals -------------------------------------------------------------------------------
    def literal_inline(self, scope, d):
        """A condition without new variables, for comprehensions and every bodies."""
        if self.r.random() < 0.15:
            return f"not {self.expr('bool', scope, d + 1)}"
        return self.expr("bool", scope, d + 1)

    def body(self, scope: dict[str, str], n: int) -> list[str]:
        r = self.r
        lits = []
        for _ in range(n):
            lits.append(self.literal(scope))
        if self.ill and r.random() < 0.25:
            lits.insert(r.randrange(len(lits) + 1), r.choice([
                "z > 1", "y := z", "not z", "count(w) > 0", "x1 := 1", "some q; q > 1",
                "input.tags[i] == x", "[a, a] = [1, 2]",
            ]))
        return lits

    def use(self, v: str, t: str, scope: dict[str, str]) -> str:
        """A condition that mentions v (OPA rejects declared variables that are never used)."""
        r = self.r
        if t in ("num", "str"):
            return f"{v} {r.choice(['==', '!=', '<', '>=', '!='])} {self.expr(t, scope, 2)}"
        if t == "bool":
            return r.choice([v, f"not {v}", f"{v} == true"])
        if t in COLL_ELEM:
            return r.choice([f"count({v}) {r.choice(['>', '<=', '=='])} {r.randint(0, 3)}",
                             f"{self.expr(COLL_ELEM[t], scope, 2)} in {v}"])
        return r.choice([f"{v} != null", f"is_{r.choice(['number', 'string', 'object'])}({v})", f"{v} == {v}"])

    def literal(self, scope: dict[str, str]) -> str:
        r = self.r

        def assign():
            t = r.choice(["num", "str", "bool", "anum", "astr", "snum", "sstr", "onum", "ostr", "any"])
            v = self.var()
            text = f"{v} {r.choice([':=', ':=', '='])} {self.expr(t, scope, 1)}"
            scope[v] = t
            return text

        def some_in():
            t = r.choice(["anum", "astr", "snum", "sstr", "onum", "ostr"])
            src = self.expr(t, scope, 1)
            if t in ("onum", "ostr", "anum", "astr") and r.random() < 0.4:
                k, v = self.var(), self.var()
                scope[k] = "str" if t[0] == "o" else "num"
                scope[v] = COLL_ELEM[t]
                return f"some {k}, {v} in {src}\n    {self.use(k, scope[k], scope)}\n    {self.use(v, scope[v], scope)}"
            v = self.var()
            scope[v] = COLL_ELEM[t]
            return f"some {v} in {src}" + (f"\n    {self.use(v, scope[v], scope)}" if r.random() < 0.8 else "")

        def iterate():
            v = self.var()
            t = r.choice(["anum", "astr"])
            scope[v] = COLL_ELEM[t]
            return f"{v} := {self.expr(t, scope, 1)}[_]"

        def every():
            t = r.choice(["anum", "astr", "snum", "sstr", "onum"])
            v = self.var()
            inner = dict(scope)
            inner[v] = COLL_ELEM[t]
            conds = "; ".join([self.use(v, inner[v], inner)] + [self.literal_inline(inner, 1) for _ in range(r.choice([0, 0, 1]))])
            if t == "onum" and r.random() < 0.5:
                k = self.var()
                inner[k] = "str"
                conds += f"; {self.use(k, 'str', inner)}"
                return f"every {k}, {v} in {self.expr(t, scope, 1)} {{ {conds} }}"
            return f"every {v} in {self.expr(t, scope, 1)} {{ {conds} }}"

        def unify():
            a, b = self.var(), self.var()
            text = f"[{a}, {b}] = [{self.expr('num', scope, 1)}, {self.expr('str', scope, 1)}]"
            scope[a] = "num"
            scope[b] = "str"
            return text

        def with_():
            field = r.choice(["input.n", "input.user.admin", "input.tags", "input.user.name", "input.nums", "input"]
                             + (["data.roles.admin", "data.cfg"] * 2 if self.has_data else []))
            if field.startswith("data."):
                return f"{self.expr('bool', scope, 1)} with {field} as {r.choice(DATA_MOCKS)}"
            val = {"input.n": lambda: rego_number(r.choice(NUMBERS)), "input.user.admin": lambda: r.choice(["true", "false"]),
                   "input.tags": lambda: r.choice(['["a", "é"]', "[]", '["admin"]']), "input.user.name": lambda: rego_string(r.choice(STRINGS)),
                   "input.nums": lambda: r.choice(["[1, 2.5, -0.0]", "[]", "[18446744073709551617]"]),
                   "input": lambda: '{"n": 1, "tags": ["a"]}'}[field]()
            return f"{self.expr('bool', scope, 1)} with {field} as {val}"

        def index_some():
            v = self.var()
            text = f"some {v}\n    input.tags[{v}] == {self.expr('str', scope, 2)}"
            scope[v] = "num"
            return text

        return self.pick([
            (6, lambda: self.expr("bool", scope, 1)),
            (5, assign),
            (3, some_in),
            (1, iterate),
            (2, lambda: f"not {self.expr('bool', scope, 1)}"),
            (2, every),
            (1, unify),
            (1, with_),
            (1, index_some),
        ])

    # rules ---------------------------------------------------------------------------------------
    def render(self, head: str, lits: list[str] | None) -> str:
        if not lits:
            return head + "\n"
        return head + " if {\n" + "".join(f"    {l}\n" for l in lits) + "}\n"

    def rule(self, name: str) -> str:
        r = self.r
        scope: dict[str, str] = {}

        def nbody():
            return r.choice([0, 1, 1, 2, 2, 3, 4])

        def complete():
            t = r.choice(["bool", "num", "str", "anum", "sstr", "onum", "any", "bool"])
            lits = self.body(scope, nbody())
            val = self.expr(t, scope, 1)
            out = ""
            if r.random() < 0.3:
                out += f"default {name} := {self.default_value(t)}\n"
            if t == "bool" and r.random() < 0.5 and lits:
                out += self.render(name, lits)
            else:
                out += self.render(f"{name} := {val}", lits)
            if r.random() < 0.15:  # an incremental definition of the same rule
                scope2: dict[str, str] = {}
                out += self.render(f"{name} = {self.expr(t, scope2, 1)}", self.body(scope2, r.choice([1, 2])))
            self.rules[name] = t
            return out

        def else_chain():
            t = r.choice(["str", "num", "bool"])
            parts = []
            sc: dict[str, str] = {}
            lits = self.body(sc, r.choice([1, 2]))
            text = f"{name} := {self.expr(t, sc, 1)} if {{\n" + "".join(f"    {l}\n" for l in lits) + "}"
            for i in range(r.choice([1, 2, 3])):
                sc = {}
                lits = self.body(sc, r.choice([0, 1, 1, 2]))
                val = self.expr(t, sc, 1)
                if lits:
                    text += f" else := {val} if {{\n" + "".join(f"    {l}\n" for l in lits) + "}"
                else:
                    text += f" else := {val}"
                    break
            parts.append(text + "\n")
            self.rules[name] = t
            return "".join(parts)

        def partial_set():
            t = r.choice(["snum", "sstr"])
            out = ""
            for _ in range(r.choice([1, 1, 2])):
                sc: dict[str, str] = {}
                lits = self.body(sc, nbody())
                out += self.render(f"{name} contains {self.expr(COLL_ELEM[t], sc, 1)}", lits)
            self.rules[name] = t
            return out

        def partial_obj():
            t = r.choice(["onum", "ostr"])
            out = ""
            for _ in range(r.choice([1, 1, 2])):
                sc: dict[str, str] = {}
                lits = self.body(sc, nbody())
                key = self.expr("str", sc, 1)
                out += self.render(f"{name}[{key}] := {self.expr(COLL_ELEM[t], sc, 1)}", lits)
            self.rules[name] = t
            return out

        def ref_head():
            out = ""
            for _ in range(r.choice([1, 2, 2])):
                sc: dict[str, str] = {}
                lits = self.body(sc, nbody())
                path = r.choice([".a", ".b", ".a.b", '["c"]', ".a.c"])
                if r.random() < 0.3:
                    path = f".a[{self.expr('str', sc, 2)}]"
                out += self.render(f"{name}{path} := {self.expr(r.choice(['num', 'str', 'bool']), sc, 1)}", lits)
            self.rules[name] = "rawref"
            return out

        def function():
            ret = r.choice(["num", "str", "bool"])
            nargs = r.choice([1, 1, 2])
            args = [r.choice(["num", "str"]) for _ in range(nargs)]
            out = ""
            for i in range(r.choice([1, 2, 2, 3])):
                sc: dict[str, str] = {}
                params = []
                for at in args:
                    if r.random() < 0.25 and i > 0:
                        params.append(rego_number(r.choice(NUMBERS[:8])) if at == "num" else rego_string(r.choice(STRINGS[:8])))  # a literal argument pattern
                    else:
                        v = self.var()
                        sc[v] = at
                        params.append(v)
                lits = self.body(sc, r.choice([0, 1, 1, 2]))
                val = self.expr(ret, sc, 1)
                if ret == "bool" and r.random() < 0.3 and lits:
                    out += self.render(f"{name}({', '.join(params)})", lits)
                else:
                    out += self.render(f"{name}({', '.join(params)}) := {val}", lits)
            self.funcs[name] = (args, ret)
            return out

        def bool_rule():
            lits = self.body(scope, r.choice([1, 2, 3]))
            return (f"default {name} := false\n" if r.random() < 0.5 else "") + self.render(name, lits)

        kind = self.pick([(5, lambda: complete), (3, lambda: bool_rule), (2, lambda: else_chain),
                          (3, lambda: partial_set), (2, lambda: partial_obj), (1, lambda: ref_head),
                          (3, lambda: function)])
        text = kind()
        if kind is bool_rule:
            self.rules[name] = "bool"
        return text

    def default_value(self, t):
        return {"bool": "false", "num": "0", "str": '""', "anum": "[]", "sstr": "set()", "onum": "{}"}.get(t, "null")

    def module(self) -> list[str]:
        """The rules of a module (without the package line), each a text block."""
        r = self.r
        n = r.choice([1, 2, 2, 3, 3, 4, 5, 6])
        names = ["allow", "deny", "p", "q", "r", "s", "f", "g", "reasons", "limits"]
        r.shuffle(names)
        blocks = [self.rule(names[i]) for i in range(n)]
        if self.ill:
            blocks += self.ill_blocks(names[:n])
        return blocks

    def ill_blocks(self, names) -> list[str]:
        r = self.r
        a = r.choice(names)
        b = r.choice(["p2", "q2"])
        choices = [
            lambda: [f"{a} := 7\n"],                                  # conflicting complete definitions
            lambda: [f"{b} := 1 if input.n\n", f"{b} := 2 if true\n"],
            lambda: [f"{b} if {c}\n" for c in []] + [f"{b} if q3\n", f"q3 if {b}\n"],      # recursion
            lambda: [f"{b} contains x if {{ some x in input.tags }}\n", f"{b} := 1\n"],    # rule kinds mixed
            lambda: [f"{b}[k] := 1 if {{ some k in [\"a\", \"b\"] }}\n", f"{b}[\"a\"] := 2\n"],  # key conflict
            lambda: [f"{b} := {{x: 1 | some x in [1, 1.0, 2]}}\n"],
            lambda: [f"{b} := {{x: y | some x in [\"a\", \"a\"]; some y in [1, 2]}}\n"],
            lambda: [f"{b} := foo.bar(1)\n"],
            lambda: [f"{b} := {r.choice(DEPRECATED)}\n"],
            lambda: [f"{b} {{ true }}\n"],                           # v0 syntax
            lambda: [f"{b}[x] {{ x := 1 }}\n"],
            lambda: [f"{b} := \"a\" + \"b\"\n"],
            lambda: [f"{b} := count(1)\n"],
            lambda: [f"{b} if {{\n    x := 1\n    x := 2\n}}\n"],
            lambda: [f"{b} := input.n if {{\n    input := 1\n}}\n"],
            lambda: [f"{b}(x) := 1\n", f"{b}(x, y) := 2\n"],
            lambda: [f"{b}(x) := x\n", f"{b}(1) := 2\n", f"q4 := {b}(1)\n"],
            lambda: [f"{b} := data.t.{b}\n"],
            lambda: [f"{b} := 1 / 0\n"],
            lambda: [f"{b} := {self.expr(r.choice(ALL_TYPES), {}, 0)} {r.choice(['+', '-', '|', '&', '<'])} {self.expr(r.choice(ALL_TYPES), {}, 0)}\n"],
            lambda: [f"import rego.v1\n"],
            lambda: [f"import future.keywords.in\n"],
            lambda: [f"{b} := [x | x := input.tags[_]; every y in x {{ y }}]\n"],
            lambda: [f"default {a} := 1\n", f"default {a} := 2\n"],
            lambda: [f"{b} := {{\"a\": 1, \"a\": 2}}\n"],
        ]
        out = []
        for _ in range(r.choice([0, 1, 1, 2])):
            out += r.choice(choices)()
        return out


# --- token mutation -------------------------------------------------------------------------------

TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|`[^`]*`|[0-9][0-9.eE+-]*|[A-Za-z_][A-Za-z0-9_]*|:=|==|!=|<=|>=|[^\sA-Za-z0-9_]|\s+')
VOCAB = ["{", "}", "[", "]", "(", ")", ",", ";", ".", ":=", "=", "==", "if", "contains", "else", "some", "in",
         "every", "not", "with", "as", "default", "|", "_", "x", "1", '"a"', "input", "data", "package", "import",
         "-", "+", ":", "`", "#", "\"", "0.", "1e", "..", "null", "set(", "\n"]


def mutate_tokens(text: str, r: random.Random) -> str:
    toks = TOKEN.findall(text)
    idx = [i for i, t in enumerate(toks) if not t.isspace()]
    idx = [i for i in idx if i > 2]  # keep `package t`
    if not idx:
        return text
    for _ in range(r.choice([1, 1, 1, 2])):
        i = r.choice(idx)
        op = r.randrange(5)
        if op == 0:
            toks[i] = ""
        elif op == 1:
            toks[i] = toks[i] + " " + toks[i]
        elif op == 2:
            toks[i] = r.choice(VOCAB)
        elif op == 3:
            j = r.choice(idx)
            toks[i], toks[j] = toks[j], toks[i]
        else:
            toks[i] = r.choice(VOCAB) + " " + toks[i]
    return "".join(toks)


# --- cases ----------------------------------------------------------------------------------------

def module_text(blocks: list[str], pkg: str = "t") -> str:
    return f"package {pkg}\n\n" + "\n".join(blocks)


def gen_case(seed: str, i: int, inp: Any) -> dict[str, Any]:
    r = random.Random(f"{seed}/{i}")
    mode = r.random()
    ill = mode < 0.22
    has_data = r.random() < 0.06
    g = Gen(r, ill, has_data)
    blocks = g.module()
    case: dict[str, Any] = {"note": f"{seed}/{i}", "blocks": blocks, "query": "data.t", "mutated": False,
                            "kind": "ill" if ill else "typed"}
    if r.random() < 0.05:
        case["modules"] = [mutate_tokens(module_text(blocks), r)]
        case["mutated"] = True
        case["kind"] = "syntax"
    elif mode > 0.96:
        # a second module in the same package or a sub-package
        r2 = Gen(r, False)
        case["modules"] = [module_text(blocks), module_text([r2.rule("zz")], r.choice(["t", "t.sub"]))]
    else:
        case["modules"] = [module_text(blocks)]
    if inp is not None:
        case["input"] = inp
    if has_data:
        case["data"] = {"cfg": rand_json(r, 1), "roles": {"admin": ["fs.read", "fs.write"], "é": [], "a": ["x"]}}
    return case


def public(case: dict[str, Any]) -> dict[str, Any]:
    out = {"note": case["note"], "modules": case["modules"], "query": case["query"]}
    for k in ("input", "data"):
        if k in case:
            out[k] = case[k]
    return out


# --- evaluation -----------------------------------------------------------------------------------

_OPA_LOCK = threading.Lock()


def opa(case):
    """oracle.opa_outcome, with the error's message kept under "message" (not compared)."""
    from opa_bindings import OpaEngine, OpaError, OpaUndefinedError

    with _OPA_LOCK:
        try:
            with OpaEngine() as engine:
                try:
                    for i, text in enumerate(case["modules"]):
                        engine.add_policy(f"m{i}.rego", text)
                    if "data" in case:
                        engine.add_data(case["data"])
                    value = engine.eval_document(case["query"][len("data."):], case.get("input"))
                except OpaUndefinedError:
                    return {"undefined": True}
                except OpaError as e:
                    return {"error": oracle.error_class(e.code, e.message), "message": e.message}
            return {"value": value}
        except Exception as e:  # the bindings themselves failing is not Gatehouse's problem
            return {"error": f"opa-exception:{type(e).__name__}", "message": str(e)}


def gatehouse_outcome(case, binary: Path, timeout: float):
    """oracle.gatehouse_outcome, with the error's message kept under "message" (not compared) and
    numbers read as json.loads reads them (the fuzzer compares them by their decimal text)."""
    return oracle.gatehouse_outcome(case, binary, timeout, messages=True, parse=json.loads)


_ERR_TEXT = re.compile(r"\b(?:rego|eval)_[a-z_]+_error: (.*)")


def norm_message(msg: str) -> str:
    """An error message without locations, names, strings and numbers: the cause, roughly."""
    m = _ERR_TEXT.search(msg or "")
    text = (m.group(1) if m else (msg or "")).split("\n")[0]
    text = re.sub(r'"(?:[^"\\]|\\.)*"|`[^`]*`', "S", text)
    text = re.sub(r"\bvar [A-Za-z_][A-Za-z0-9_]*", "var V", text)
    text = re.sub(r"\b(?:x[0-9]+|data\.t(?:\.[A-Za-z0-9_]+)*)\b", "V", text)
    text = re.sub(r"-?[0-9][0-9.eE+-]*", "N", text)
    # without the builtin's name: "count: invalid argument(s)" and "sum: invalid argument(s)" are one
    # cause (a type check the other engine lacks), as are "operand N must be ..." of any builtin
    text = re.sub(r"^[a-z_][a-z0-9_.]*: ", "", text.strip())
    text = re.sub(r"\b(?:string|number|boolean|null|array|object|set|any)\b", "T", text)
    return text[:120]


def kind(outcome) -> str:
    if "value" in outcome:
        return "value"
    if "undefined" in outcome:
        return "undefined"
    e = outcome["error"]
    if e.startswith("crash:0:"):
        return "bad-output"   # exit status 0 but stdout is not JSON (e.g. +Inf, NaN)
    if e.startswith("crash"):
        return "crash"
    return "error:" + e


def alarming(outcome) -> bool:
    return kind(outcome) in ("crash", "bad-output") or outcome.get("error") == "timeout"


def num_equal(a, b) -> bool:
    try:
        return Decimal(repr(a) if isinstance(a, float) else str(a)) == Decimal(repr(b) if isinstance(b, float) else str(b))
    except Exception:
        return a == b


def same_value(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return num_equal(a, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def same(a, b) -> bool:
    if "value" in a and "value" in b:
        return same_value(a["value"], b["value"])
    return {k: v for k, v in a.items() if k != "message"} == {k: v for k, v in b.items() if k != "message"}


class Runner:
    def __init__(self, binary: Path, workers: int, timeout: float):
        self.binary = binary
        self.pool = ThreadPoolExecutor(max_workers=workers)
        self.workers = workers
        self.timeout = timeout
        self.gh_runs = 0

    def gh(self, case):
        self.gh_runs += 1
        out = gatehouse_outcome(public(case), self.binary, self.timeout)
        if out.get("error") == "timeout" or str(out.get("error", "")).startswith("crash"):
            again = gatehouse_outcome(public(case), self.binary, self.timeout * 2)
            if kind(again) != kind(out):  # not reproducible: load, not a bug
                return again
        return out

    def gh_many(self, cases):
        return list(self.pool.map(self.gh, cases))


# --- batches --------------------------------------------------------------------------------------

def rename_package(text: str, pkg: str) -> str:
    return re.sub(r"^package t\b", f"package {pkg}", text, count=1)


def run_batch(runner: Runner, seed: str, b: int, size: int, mutate_only: bool = False):
    """Evaluates cases b*size .. b*size+size-1; returns (n, findings) with finding = (case, opa, gh)."""
    ir = random.Random(f"{seed}/input/{b}")
    inp = rand_input(ir) if ir.random() < 0.93 else None
    cases = [gen_case(seed, b * size + j, inp) for j in range(size)]
    for c in cases:
        c["opa"] = opa(public(c))
    batchable = [c for c in cases if "value" in c["opa"] and "data" not in c and len(c["modules"]) == 1
                 and c["kind"] != "syntax"]
    alone = [c for c in cases if c not in batchable]
    findings = []
    if len(batchable) > 1:
        merged = {"note": f"{seed}/batch{b}", "query": "data.t",
                  "modules": [rename_package(c["modules"][0], f"t.b{j}") for j, c in enumerate(batchable)]}
        if inp is not None:
            merged["input"] = inp
        mo = opa(merged)
        mg = runner.gh(merged)
        if not same(mo, mg):
            outs = [runner.gh(c) for c in batchable]
            bad = [(c, c["opa"], g) for c, g in zip(batchable, outs) if not same(c["opa"], g)]
            if bad:
                findings += bad
            else:
                findings.append((merged, mo, mg))
    else:
        alone += batchable
    for c, g in zip(alone, [runner.gh(c) for c in alone]):
        if not same(c["opa"], g):
            findings.append((c, c["opa"], g))
    return len(cases), findings


# --- shrinking ------------------------------------------------------------------------------------

def blocks_of(text: str) -> list[str]:
    """Top-level blocks: a rule with its body lines (a line at column 0 starts a block, `}` and
    `} else ...` continue it)."""
    blocks: list[list[str]] = []
    for line in text.split("\n"):
        if line and not line[0].isspace() and not line.startswith("}") and not line.startswith("else"):
            blocks.append([line])
        elif blocks:
            blocks[-1].append(line)
        else:
            blocks.append([line])
    return ["\n".join(b) for b in blocks]


def split_top(s: str) -> list[tuple[int, int]]:
    """Spans of top-level comma-separated items inside a bracket group's content."""
    spans, depth, start, i, n = [], 0, 0, 0, len(s)
    while i < n:
        ch = s[i]
        if ch == '"':
            i += 1
            while i < n and s[i] != '"':
                i += 2 if s[i] == "\\" else 1
        elif ch == "`":
            i = s.find("`", i + 1)
            if i < 0:
                break
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            spans.append((start, i))
            start = i + 1
        i += 1
    spans.append((start, n))
    return spans


def groups(text: str):
    """(open, close) index pairs of balanced brackets outside strings."""
    stack, out, i, n = [], [], 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            i += 1
            while i < n and text[i] != '"' and text[i] != "\n":
                i += 2 if text[i] == "\\" else 1
        elif ch == "`":
            j = text.find("`", i + 1)
            i = j if j >= 0 else n
        elif ch == "#":
            j = text.find("\n", i)
            i = j if j >= 0 else n
        elif ch in "([{":
            stack.append(i)
        elif ch in ")]}" and stack:
            out.append((stack.pop(), i))
        i += 1
    return out


CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_.]*)\($")


def text_candidates(text: str):
    """Simpler variants of one module text, roughly from coarse to fine."""
    blocks = blocks_of(text)
    for i in range(1, len(blocks)):
        yield "\n".join(blocks[:i] + blocks[i + 1:])
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("    ") and not line.strip().startswith("}"):
            yield "\n".join(lines[:i] + lines[i + 1:])
    if re.search(r" if \{\n\}", text):
        yield re.sub(r" if \{\n\}", "", text)
    if "\n\n" in text:
        yield re.sub(r"\n\n+", "\n", text)
    # `default` lines and else branches
    for m in re.finditer(r" else := [^\n]*?(?= else|\n|$)", text):
        yield text[:m.start()] + text[m.end():]
    gs = sorted(groups(text), key=lambda g: -(g[1] - g[0]))
    for o, c in gs:
        inner = text[o + 1:c]
        m = CALL.search(text[:o + 1])
        spans = split_top(inner)
        if m and text[o] == "(":
            # replace the call by one of its arguments
            for a, b in spans:
                arg = inner[a:b].strip()
                if arg:
                    yield text[:m.start(1)] + arg + text[c + 1:]
        elif text[o] in "[{" and len(spans) > 1:
            for k in range(len(spans)):
                keep = [inner[a:b].strip() for j, (a, b) in enumerate(spans) if j != k]
                yield text[:o + 1] + ", ".join(keep) + text[c:]
        elif text[o] == "(" and not m:
            # a parenthesized binary expression: keep one operand
            for opm in re.finditer(r" (\+|-|\*|/|%|\||&) ", inner):
                yield text[:o] + inner[:opm.start()] + text[c + 1:]
                yield text[:o] + inner[opm.end():] + text[c + 1:]
                break
        if "|" in inner and text[o] in "[{":
            pass
    for m in re.finditer(r'"(?:[^"\\\n]|\\.)+"', text):
        if m.group(0) not in ('"a"',):
            yield text[:m.start()] + '"a"' + text[m.end():]
    for m in re.finditer(r"(?<![A-Za-z0-9_.\"])-?[0-9][0-9.eE+-]*", text):
        if m.group(0) not in ("0", "1"):
            yield text[:m.start()] + "1" + text[m.end():]


def json_candidates(v):
    """Simpler variants of a JSON value."""
    if isinstance(v, dict):
        for k in v:
            yield {kk: vv for kk, vv in v.items() if kk != k}
        for k in v:
            for sub in json_candidates(v[k]):
                d = dict(v)
                d[k] = sub
                yield d
    elif isinstance(v, list):
        for i in range(len(v)):
            yield v[:i] + v[i + 1:]
        for i in range(len(v)):
            for sub in json_candidates(v[i]):
                yield v[:i] + [sub] + v[i + 1:]
    elif isinstance(v, str) and v not in ("", "a"):
        yield "a"
    elif isinstance(v, (int, float)) and not isinstance(v, bool) and v not in (0, 1):
        yield 1


def shrink(runner: Runner, case, ok, budget_s: float = 60.0, max_runs: int = 400):
    """Greedy shrinking: the first simpler variant (tried `workers` at a time) for which ok(variant)."""
    deadline = time.time() + budget_s
    runs = 0
    cur = public(case)
    cur = {k: (list(v) if k == "modules" else v) for k, v in cur.items()}

    def variants(c):
        for mi, text in enumerate(c["modules"]):
            if len(c["modules"]) > 1:
                yield {**c, "modules": c["modules"][:mi] + c["modules"][mi + 1:]}
        if "data" in c:
            yield {k: v for k, v in c.items() if k != "data"}
        if "input" in c:
            yield {k: v for k, v in c.items() if k != "input"}
        for mi, text in enumerate(c["modules"]):
            for t in text_candidates(text):
                if t != text:
                    yield {**c, "modules": c["modules"][:mi] + [t] + c["modules"][mi + 1:]}
        for key in ("input", "data"):
            if key in c:
                for v in json_candidates(c[key]):
                    yield {**c, key: v}

    progress = True
    while progress and time.time() < deadline and runs < max_runs:
        progress = False
        seen = set()
        it = variants(cur)
        while time.time() < deadline and runs < max_runs:
            chunk = []
            for v in it:
                key = json.dumps(v, sort_keys=True, default=str)
                if key in seen:
                    continue
                seen.add(key)
                chunk.append(v)
                if len(chunk) >= runner.workers * 2:
                    break
            if not chunk:
                break
            # OPA first (cheap): only variants whose OPA outcome kind stays the same go to Gatehouse
            chunk = [v for v in chunk if ok.opa_ok(opa(v))]
            if not chunk:
                continue
            runs += len(chunk)
            results = runner.gh_many(chunk)
            for v, g in zip(chunk, results):
                if ok.gh_ok(opa(v), g):
                    cur = v
                    progress = True
                    break
            if progress:
                break
    return cur, runs


class Keep:
    """The disagreement being shrunk: both engines keep their outcome kinds, and still disagree."""

    def __init__(self, o, g):
        self.ok, self.gk = kind(o), kind(g)

    def opa_ok(self, o):
        return kind(o) == self.ok

    def gh_ok(self, o, g):
        return kind(o) == self.ok and kind(g) == self.gk and not same(o, g)


# --- signatures and the corpus --------------------------------------------------------------------

KEYWORDS = ["every", "not", "with", "else", "default", "contains", "some", "in", "import"]


def features(case) -> frozenset[str]:
    text = "\n".join(case["modules"])
    code = re.sub(r'"(?:[^"\\\n]|\\.)*"|`[^`]*`', '""', text)
    defined = set(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)\(", code, re.M))
    feats = set()
    for m in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\(", code):
        name = m.group(1)
        if name not in defined:
            feats.add(name + "()")
    if defined:
        feats.add("function")
    words = set(re.findall(r"\b[a-z_]+\b", code))
    feats |= {k for k in KEYWORDS if k in words}
    for op in (" + ", " - ", " * ", " / ", " % ", " | ", " & "):
        if op in code:
            feats.add("op" + op.strip())
    if re.search(r"[\[{][^\n]*\|", code):
        feats.add("comprehension")
    return frozenset(feats)


def signature(case, o, g):
    ko, kg = kind(o), kind(g)
    if ko.startswith("error:") and kg.startswith("error:"):
        # two different error classes: most often the engines report different errors first
        # (or classify one differently); one case per pair of classes
        return (ko, kg, frozenset())
    if ko.startswith("error:"):   # OPA rejects, Gatehouse does not: OPA's message names the cause
        return (ko, kg, "opa: " + norm_message(o.get("message", "")))
    if kg.startswith("error:"):   # the other way round
        return (ko, kg, "gatehouse: " + norm_message(g.get("message", "")))
    return (ko, kg, features(case))


def shape(case) -> str:
    """The case's text with rule and variable names, strings and numbers made uniform."""
    text = "\n".join(case["modules"])
    text = re.sub(r'"(?:[^"\\\n]|\\.)*"|`[^`]*`', '"s"', text)
    text = re.sub(r"(?<![A-Za-z0-9_.])-?[0-9][0-9.eE+-]*", "0", text)
    names: dict[str, str] = {}

    def rename(m):
        w = m.group(0)
        if re.fullmatch(r"x[0-9]+|[a-z]|p2|q2|q3|q4|allow|deny|reasons|limits|zz", w):
            names.setdefault(w, f"n{len(names)}")
            return names[w]
        return w
    text = re.sub(r"(?<![.\w])[A-Za-z_][A-Za-z0-9_]*", rename, text)
    return re.sub(r"\s+", " ", text) + json.dumps(sorted(k for k in ("input", "data") if k in case))


def builtins_of(feats):
    return {f for f in feats if f.endswith("()")}


def covered(sig, known) -> bool:
    """A known finding with the same outcome kinds whose (non-empty) features are all in sig's."""
    ok, gk, feats = sig
    for k in known:
        if isinstance(k[2], str) or isinstance(feats, str):
            if k == sig:
                return True
            continue
        if k[0] == ok and k[1] == gk:
            if not k[2] and not feats and ok.startswith("error:") and gk.startswith("error:"):
                return True
            if k[2] and k[2] <= feats:
                return True
    return False


def corpus_match(sig, csig) -> bool:
    """A corpus case that disagrees the same way: same kinds and the same builtins (or, without
    builtins, the same constructs)."""
    if sig[0] != csig[0] or sig[1] != csig[1]:
        return False
    if isinstance(sig[2], str) or isinstance(csig[2], str):
        return sig[2] == csig[2]
    if not sig[2] and not csig[2]:
        return sig[0].startswith("error:") and sig[1].startswith("error:")
    b, cb = builtins_of(sig[2]), builtins_of(csig[2])
    if cb:
        return cb <= b
    return not b and csig[2] == sig[2]


# --- YAML output ----------------------------------------------------------------------------------

def yaml_scalar(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        s = repr(v)
        if "e" in s and "." not in s.split("e")[0]:
            m, e = s.split("e")
            s = f"{m}.0e{e if e[0] in '+-' else '+' + e}"
        elif "e" in s:
            m, e = s.split("e")
            s = f"{m}e{e if e[0] in '+-' else '+' + e}"
        return s
    if isinstance(v, str):
        out = []
        for ch in v:
            o = ord(ch)
            if ch == '"':
                out.append('\\"')
            elif ch == "\\":
                out.append("\\\\")
            elif 0x20 <= o < 0x7f:
                out.append(ch)
            elif o < 0x10000:
                out.append("\\u%04x" % o)
            else:
                out.append("\\U%08x" % o)
        return '"' + "".join(out) + '"'
    if isinstance(v, list):
        return "[" + ", ".join(yaml_scalar(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{yaml_scalar(str(k))}: {yaml_scalar(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def yaml_case(case, comment: str) -> str:
    lines = [f"  # {comment}", f"  - note: {case['note']}", "    modules:"]
    for m in case["modules"]:
        if not m.endswith("\n"):
            m += "\n"
        if m.strip() == "" or any(l != l.rstrip() for l in m.split("\n")) or "\t" in m or m[0].isspace():
            lines.append(f"      - {yaml_scalar(m)}")
        else:
            lines.append("      - |")
            lines += [f"        {l}" if l else "" for l in m.rstrip("\n").split("\n")]
    for k in ("input", "data"):
        if k in case:
            lines.append(f"    {k}: {yaml_scalar(case[k])}")
    lines.append(f"    query: {case['query']}")
    return "\n".join(lines) + "\n"


def append_cases(path: Path, entries: list[tuple[dict, str]]):
    import fcntl

    import hashlib
    import tempfile

    name = "rego-fuzz-" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12] + ".lock"
    with open(os.path.join(tempfile.gettempdir(), name), "w") as lock:  # parallel runs append one at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _append_cases(path, entries)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _append_cases(path: Path, entries: list[tuple[dict, str]]):
    import yaml

    existing = set()
    if path.exists():
        doc = yaml.safe_load(path.read_text()) or {}
        existing = {c["note"] for c in doc.get("cases") or []}
        text = path.read_text()
    else:
        text = ("# Disagreements between Gatehouse and OPA found by scripts/rego-fuzz (tests/rego/fuzz.py),\n"
                "# each shrunk to a minimal case; the comment above a case gives both outcomes.\n"
                "cases:\n")
    if not re.search(r"^cases:", text, re.M):
        text += "cases:\n"
    added = 0
    for case, comment in entries:
        if case["note"] in existing:
            continue
        chunk = yaml_case(case, comment)
        back = yaml.safe_load("cases:\n" + chunk)["cases"][0]
        if back["modules"] != [m if m.endswith("\n") else m + "\n" for m in case["modules"]] or any(
                k in case and not same_value(back.get(k), case[k]) for k in ("input", "data")):
            print(f"  (could not write {case['note']} as YAML faithfully; skipped)")
            continue
        if text.rstrip().endswith("cases: []"):
            text = text.rstrip()[:-2] + "\n"
        text = text if text.endswith("\n") else text + "\n"
        text += chunk
        existing.add(case["note"])
        added += 1
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return added


# --- main -----------------------------------------------------------------------------------------

def short_name(case, o, g) -> str:
    f = sorted(x.rstrip("()").replace(".", "-").replace("_", "-") for x in features(case) if x.endswith("()"))
    ko, kg = kind(o).replace("error:", ""), kind(g).replace("error:", "")
    base = f"{ko}-vs-{kg}"
    if f:
        base += "-" + "-".join(f[:3])
    elif features(case):
        base += "-" + "-".join(sorted(features(case))[:3])
    return re.sub(r"[^a-z0-9-]+", "", base.lower().replace("+", "plus").replace("/", "div").replace("%", "mod")
                  .replace("|", "union").replace("&", "and"))[:70]


def prune(path: Path, runner: Runner) -> int:
    import yaml

    doc = yaml.safe_load(path.read_text()) or {}
    cases = doc.get("cases") or []
    outs = runner.gh_many(cases)
    rows = []
    for i, (c, g) in enumerate(zip(cases, outs)):
        o = opa(c)
        if same(o, g):
            print(f"  agrees now: {c['note']}")
            continue
        rows.append((i, c, o, g, signature(c, o, g), shape(c)))
    kept, sigs, shapes = [], [], set()
    for row in sorted(rows, key=lambda r: len("".join(r[1]["modules"])) + len(json.dumps(r[1].get("input", "")))):
        i, c, o, g, sig, sh = row
        if covered(sig, sigs) or (sig[:2], sh) in shapes:
            print(f"  same cause as a kept case: {c['note']}")
            continue
        sigs.append(sig)
        shapes.add((sig[:2], sh))
        kept.append(row)
    kept.sort(key=lambda r: r[0])
    header = ("# Disagreements between Gatehouse and OPA found by scripts/rego-fuzz (tests/rego/fuzz.py),\n"
              "# each shrunk to a minimal case; the comment above a case gives both outcomes.\n"
              "cases:\n")
    text = header + "".join(
        yaml_case(c, f"opa: {oracle.describe(o)[:150]} | gatehouse: {oracle.describe(g)[:150]}".replace("\n", " "))
        for _, c, o, g, _, _ in kept)
    yaml.safe_load(text)
    path.write_text(text)
    print(f"{len(cases)} cases: {len(cases) - len(rows)} agree now, {len(rows) - len(kept)} duplicates, {len(kept)} kept")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/rego-fuzz", description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--seed", default=None)
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--cases", type=int, default=0, help="stop after this many cases (0: only the time limit)")
    ap.add_argument("--timeout", type=float, default=30, help="seconds one gatehouse process may take")
    ap.add_argument("--shrink-seconds", type=float, default=60, help="time limit for shrinking one finding")
    ap.add_argument("--shrink-total", type=float, default=None,
                    help="time limit for all shrinking (default: a third of --seconds plus 15)")
    ap.add_argument("--prune", action="store_true",
                    help="re-evaluate the cases of --out: drop those that agree now and all but the smallest "
                         "case of each cause, then rewrite the file")
    ap.add_argument("--show", type=int, default=-1, help="print case N of the seed and its outcomes, then exit")
    ap.add_argument("--fail-on", choices=("any", "crash"), default="any",
                    help="exit 1 on any new finding (default), or only on a Gatehouse crash, timeout "
                         "or non-JSON output (what CI gates on while known disagreement classes "
                         "remain; see docs/policy.md)")
    args = ap.parse_args(argv)
    seed = args.seed or time.strftime("%Y%m%d")
    if args.shrink_total is None:
        args.shrink_total = args.seconds / 3 + 15
    binary = oracle.gatehouse_bin()
    if not binary.exists():
        print(f"rego-fuzz: no gatehouse binary at {binary} (set GATEHOUSE_BIN)", file=sys.stderr)
        return 2
    runner = Runner(binary, max(1, args.workers), args.timeout)

    if args.prune:
        return prune(Path(args.out), runner)

    if args.show >= 0:
        size = args.batch
        b = args.show // size
        ir = random.Random(f"{seed}/input/{b}")
        inp = rand_input(ir) if ir.random() < 0.93 else None
        c = public(gen_case(seed, args.show, inp))
        print(yaml_case(c, "shown"))
        o, g = opa(c), runner.gh(c)
        print("opa:      ", oracle.describe(o), "\ngatehouse:", oracle.describe(g))
        return 0

    print(f"rego-fuzz: seed {seed}, {args.seconds:g}s, {runner.workers} workers, batches of {args.batch}, "
          f"binary {binary}", flush=True)
    started = time.time()
    deadline = started + args.seconds
    total = 0
    raw: list[tuple[dict, dict, dict]] = []
    next_b = 0
    max_batches = (args.cases + args.batch - 1) // args.batch if args.cases else None
    last_print = started
    import signal

    stop = []
    signal.signal(signal.SIGINT, lambda *_: (stop.append(1), print("  interrupted: finishing, then shrinking", flush=True)))
    with ThreadPoolExecutor(max_workers=runner.workers) as batches:
        pending = {}
        while True:
            while len(pending) < runner.workers and time.time() < deadline and not stop and (max_batches is None or next_b < max_batches):
                pending[batches.submit(run_batch, runner, seed, next_b, args.batch)] = next_b
                next_b += 1
            if not pending:
                break
            done = next(as_completed(list(pending)))
            b = pending.pop(done)
            n, found = done.result()
            total += n
            for f in found:
                raw.append(f)
                c, o, g = f
                tag = {"crash": "CRASH", "bad-output": "BAD-OUTPUT"}.get(kind(g), "TIMEOUT" if g.get("error") == "timeout" else "diff")
                print(f"  [{tag}] case {c['note']}: opa {oracle.describe(o)[:80]} | gatehouse {oracle.describe(g)[:80]}",
                      flush=True)
            if time.time() - last_print > 15:
                last_print = time.time()
                el = time.time() - started
                print(f"  {el:5.0f}s  {total} cases  {total / el:.1f} cases/s  {len(raw)} raw disagreements", flush=True)
    fuzz_time = time.time() - started
    print(f"generated and compared {total} cases in {fuzz_time:.0f}s ({total / max(fuzz_time, 1e-9):.1f} cases/s), "
          f"{runner.gh_runs} gatehouse runs, {len(raw)} raw disagreements", flush=True)

    # dedupe and shrink --------------------------------------------------------------------------
    known_sigs: list[tuple] = []
    corpus_sigs: list[tuple] = []
    corpus_cache: dict[str, tuple | None] = {}
    try:
        corpus = oracle.load_sources()
    except Exception as e:
        print(f"  (corpus not loaded: {e})")
        corpus = []

    out_name = Path(args.out).name

    def corpus_covers(sig, sig_shape) -> bool:
        """Whether a corpus case disagrees the same way (evaluating at most 24 likely ones)."""
        cands = []
        for cc in corpus:
            if cc["file"] in (out_name, DEFAULT_OUT.name):
                cands.append(cc)
            elif sig[2]:
                fe = features(cc)
                cb = builtins_of(fe)
                if (cb and cb <= builtins_of(sig[2])) or (not cb and not builtins_of(sig[2]) and fe == sig[2]):
                    cands.append(cc)
        cands = cands[:24]
        todo = [cc for cc in cands if cc["note"] not in corpus_cache]
        for cc, g in zip(todo, runner.gh_many(todo)):
            o = opa(cc)
            corpus_cache[cc["note"]] = None if same(o, g) else signature(cc, o, g)
        for cc in cands:
            s = corpus_cache[cc["note"]]
            if s and (corpus_match(sig, s) or (cc["file"] in (out_name, DEFAULT_OUT.name) and (covered(sig, [s]) or shape(cc) == sig_shape))):
                print(f"    like corpus case {cc['note']}")
                return True
        return False

    new_entries = []
    known_shapes: set = set()
    in_corpus = 0
    crashes = []
    nondeterministic = []
    # crashes and timeouts first, then the smallest cases (they shrink fastest)
    raw.sort(key=lambda f: (not alarming(f[2]), len("".join(f[0]["modules"]))))
    shrink_deadline = time.time() + args.shrink_total
    unshrunk = 0
    for c, o, g in raw:
        sig0 = signature(c, o, g)
        if covered(sig0, known_sigs):
            continue
        if time.time() > shrink_deadline:
            unshrunk += 1
            continue
        t0 = time.time()
        small, runs = shrink(runner, c, Keep(o, g), min(args.shrink_seconds, max(5.0, shrink_deadline - time.time())))
        so, sg = opa(small), runner.gh(small)
        if same(so, sg) or kind(so) != kind(o) or kind(sg) != kind(g):
            small, so, sg = public(c), o, g  # shrinking lost it (flaky?): keep the original
        sig = signature(small, so, sg)
        print(f"  shrunk {c['note']} in {time.time() - t0:.0f}s ({runs} runs): {len(''.join(c['modules']))} -> "
              f"{len(''.join(small['modules']))} chars; {sig[0]} vs {sig[1]} {sig[2] if isinstance(sig[2], str) else sorted(sig[2])}", flush=True)
        sh = shape(small)
        if covered(sig, known_sigs) or (sig[:2], sh) in known_shapes:
            continue
        known_sigs.append(sig)
        known_shapes.add((sig[:2], sh))
        if time.time() > shrink_deadline + 20:  # the corpus checks get a little longer than the shrinking
            unshrunk += 1
            continue
        if corpus_covers(sig, sh):
            in_corpus += 1
            print("    already in the corpus")
            continue
        # Gatehouse answering differently from one process to the next (hash-seeded iteration
        # order, say) is a finding of its own: say so rather than let it look like a flaky test
        again = [x for x in runner.gh_many([small] * 3) if not same(x, sg)]
        n = len(new_entries) + 1
        small = dict(small)
        small["note"] = f"fuzz/{seed}-{n}-{short_name(small, so, sg)}"
        comment = f"opa: {oracle.describe(so)[:150]} | gatehouse: {oracle.describe(sg)[:150]}".replace("\n", " ")
        if again:
            nondeterministic.append(small)
            comment = f"NONDETERMINISTIC in Gatehouse (also {oracle.describe(again[0])[:80]}); " + comment
            print(f"    !!! Gatehouse answers this case differently from run to run: {oracle.describe(again[0])[:100]}")
        new_entries.append((small, comment))
        if alarming(sg):
            crashes.append(small)

    added = append_cases(Path(args.out), new_entries) if new_entries else 0
    print()
    print("=" * 78)
    if crashes:
        print(f"!!! {len(crashes)} GATEHOUSE CRASH / TIMEOUT / NON-JSON OUTPUT finding(s) (a crash is a security bug):")
        for c in crashes:
            print(f"!!!   {c['note']}")
    print(f"summary: seed {seed}: {total} cases in {fuzz_time:.0f}s ({total / max(fuzz_time, 1e-9):.1f} cases/s); "
          f"{len(raw)} raw disagreements, {len(new_entries)} new distinct finding(s) ({added} written to {args.out}), "
          f"{in_corpus} already in the corpus, {unshrunk} not shrunk (shrinking time used up)")
    for case, comment in new_entries:
        print(f"\n--- {case['note']}\n    {comment}")
        for m in case["modules"]:
            print("    " + m.rstrip().replace("\n", "\n    "))
        if "input" in case:
            print(f"    input: {json.dumps(case['input'], ensure_ascii=False)[:300]}")
        if "data" in case:
            print(f"    data: {json.dumps(case['data'], ensure_ascii=False)[:300]}")
    runner.pool.shutdown()
    if args.fail_on == "crash":
        # A nondeterministic answer so far only ever chose between two errors (which of a
        # module's errors comes first depends on hash order); it is reported, not gated.
        if nondeterministic:
            print(f"note: {len(nondeterministic)} finding(s) answered differently from run to run")
        return 1 if crashes else 0
    return 1 if new_entries else 0


if __name__ == "__main__":
    sys.exit(main())
