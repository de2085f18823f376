#!/usr/bin/env python3
"""Differential test of Gatehouse's RE2 regex builtins against OPA's (Go regexp) engine.

Runs several hundred pattern x input cases -- hand-picked tricky ones plus randomly generated
small patterns over a small alphabet (seeded, so runs are reproducible) -- through
regex.find_all_string_submatch_n, regex.find_n, regex.match, regex.split, regex.replace,
regex.is_valid and glob.match, once in OPA (the opa_bindings package in /work/main/.venv, which
embeds OPA's Go engine) and once in the Gatehouse CLI, and prints every disagreement.

Cases are batched: one Rego module computes an array of results over input.cases, so the CLI is
spawned once per batch rather than once per case. Invalid patterns are checked separately, one
evaluation each, so that their error messages can be compared too.

Usage (from the repository root, after `swift build --scratch-path .build-re2`):
    .venv/bin/python scripts/regex-diff.py [--gatehouse .build-re2/debug/gatehouse]
                                           [--seed 1] [--random 400] [--verbose]
Exit status: 0 when everything agrees, 1 when there are disagreements.
Needs only the venv (opa_bindings) and the built gatehouse binary.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

from opa_bindings import OpaEngine, OpaError, OpaUndefinedError

MODULE = r'''package t

import rego.v1

p := [r | some c in input.cases; r := run(c)]

run(c) := {"invalid": true} if { c.f != "glob"; not regex.is_valid(c.re) }
run(c) := regex.find_all_string_submatch_n(c.re, c.s, c.n) if { c.f == "sub"; regex.is_valid(c.re) }
run(c) := regex.find_n(c.re, c.s, c.n) if { c.f == "find"; regex.is_valid(c.re) }
run(c) := regex.match(c.re, c.s) if { c.f == "match"; regex.is_valid(c.re) }
run(c) := regex.split(c.re, c.s) if { c.f == "split"; regex.is_valid(c.re) }
run(c) := regex.replace(c.s, c.re, c.t) if { c.f == "replace"; regex.is_valid(c.re) }
run(c) := glob.match(c.re, c.d, c.s) if c.f == "glob"
'''

ERROR_MODULE = 'package t\n\np := regex.match(input.re, "")\n'

# Hand-picked patterns and inputs: leftmost-first alternation, greedy vs lazy, empty matches,
# nested quantifiers, anchors and flags, classes, Unicode, case folding.
TRICKY = [
    ("a(b)?", ["abaa", "ab", ""]),
    ("a*", ["baaab", "", "aaa"]),
    ("a*?", ["baaab", "aa"]),
    ("(a*)*", ["b", "aab"]),
    ("(a*)+", ["b", "aab"]),
    ("(a|b)*", ["abba", ""]),
    ("(a*|b)*", ["ab", "b"]),
    ("(a|ab)(c|bcd)(d*)", ["abcd"]),
    ("(a+|b+)*c", ["aabbc", "c"]),
    ("(?:(a)|b)+", ["ab", "ba"]),
    ("(a)|(b)", ["ab", "ba"]),
    ("x*", ["xaxx", "a"]),
    ("", ["abc", ""]),
    ("^", ["abc", ""]),
    ("$", ["abc", "a\n"]),
    ("(?m)^\\w+$", ["ab\ncd\n", "ab\n\ncd"]),
    ("(?m)$", ["a\nb\n"]),
    ("(?m)^", ["a\nb\n"]),
    ("^a$", ["a\n", "a"]),
    ("(?s).+", ["a\nb"]),
    (".+", ["a\nb"]),
    ("\\b\\w+\\b", ["hello, wörld_1 x"]),
    ("\\B", ["ab cd"]),
    ("(?i)k", ["Kk\u212a"]),
    ("(?i)[k-m]+", ["KLM\u212aklm"]),
    ("(?i)ß", ["ẞß"]),
    ("(?i)σ", ["Σσς"]),
    ("\\pL+", ["héllo wörld 123 Ωμέγα"]),
    ("\\p{Greek}+", ["abc Ωμέγα def"]),
    ("\\p{Cyrillic}+", ["abc привет"]),
    ("\\p{Han}+", ["x 漢字 y"]),
    ("\\PL+", ["ab12 cd"]),
    ("\\p{^L}+", ["ab12 cd"]),
    ("\\pN+", ["x١٢٣x12Ⅻ"]),
    ("\\p{Lu}", ["aBc"]),
    ("[[:alpha:]]+", ["ab12cd"]),
    ("[[:^alpha:]]+", ["ab12cd"]),
    ("[^a]", ["a\nb"]),
    ("[\\d\\s]+", ["a1 2\tb"]),
    ("\\W+", ["ab, cd"]),
    ("[a-c-e]+", ["a-ce-d"]),
    ("[]a]+", ["]a]b"]),
    ("\\Qa.b\\E+", ["a.bbb axb"]),
    ("\\x41\\x{42}\\101", ["ABA"]),
    ("a{2,3}", ["aaaaaaa"]),
    ("a{2,3}?", ["aaaaaaa"]),
    ("a{2,}", ["aaaaa a aa"]),
    ("a{0}", ["aaa"]),
    ("(a){0}b", ["ab"]),
    ("a{,2}", ["a{,2}"]),
    ("(?U)a+", ["aaa"]),
    ("(?U)a+?", ["aaa"]),
    ("(?i:a)a", ["AaAA"]),
    ("(?i)a(?-i)a", ["AaAA"]),
    ("(?P<first>\\w+) (?P<last>\\w+)", ["John Smith"]),
    ("(?<y>\\d{4})-(?<m>\\d\\d)", ["2024-05 1999-12"]),
    ("(a)(?:b)(c)?", ["ab abc"]),
    ("(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)", ["abcdefghijk"]),
    ("a|b|", ["cab"]),
    ("|a", ["ab"]),
    ("a+$", ["baaa"]),
    ("(a+)+$", ["aaaa!", "aaaa"]),
    ("(x+x+)+y", ["xxxxxxxxxx", "xxy"]),
    ("\\.", ["a.b.c"]),
    ("[.]", ["a.b"]),
    ("é+", ["ééé e"]),
    ("[é-ë]", ["êa"]),
    ("\\x{1F600}", ["x😀y"]),
    (".", ["😀a"]),
    ("\\n\\t", ["a\n\tb"]),
    ("(?i)straße", ["STRASSE Straße STRAẞE"]),
]

BAD = [
    "(", "a(b", ")", "a)", "[a", "[z-a]", "a**", "a*?+", "*", "+a", "x{1001}", "a{2}{3}",
    "(?=a)", "(?!a)", "(?<=a)b", "(?<!a)", "\\1", "\\8", "(?P=name)", "\\C", "\\Z", "\\e", "\\",
    "\\x{110000}", "\\xg1", "\\pX", "\\p{Foo}", "[[:foo:]]", "(?z)", "(?i", "(?-)", "(?P<>a)",
    "(?P<a-b>x)", "(((a{1000}){1000}){1000})", "a{1000}{2}", "a++", "x{2,1}", "[\\p]", "(?P<n>",
    "(?<n", "a|*", "(*)", "(?:)+*",
]

GLOBS = [
    ("*.example.com", ["."], ["api.example.com", "a.b.example.com", ".example.com"]),
    ("**.example.com", ["."], ["a.b.example.com"]),
    ("github/{create,update}_*", ["/"], ["github/update_issue", "github/delete_issue"]),
    ("a?c", ["."], ["abc", "a.c"]),
    ("[a-c]x", ["."], ["bx", "dx"]),
    ("[!a-c]x", ["."], ["bx", "dx"]),
    ("*", None, ["a.b/c"]),
    ("*", [], ["a.b", "ab"]),
    ("a\\*b", ["."], ["a*b", "axb"]),
    ("{a,b{c,d}}", ["."], ["a", "bd", "b"]),
    ("*.(com)", ["."], ["x.(com)"]),
    ("^$+", ["."], ["^$+"]),
]


def random_pattern(rng, depth=0):
    atoms = ["a", "b", ".", "[ab]", "[^a]", "A", "(?i)a", "\\b", "^", "$", "(?:)", "\\w", "[a-b]",
             "(a*)", "(|a)", "(?m:^)", "(?m:$)", "\\B", "(?s:.)", "[[:upper:]]", "\\pL", "()", "(a|b*)"]
    r = rng.random()
    if depth > 2 or r < 0.35:
        return rng.choice(atoms)
    if r < 0.55:
        return random_pattern(rng, depth + 1) + random_pattern(rng, depth + 1)
    if r < 0.68:
        return random_pattern(rng, depth + 1) + "|" + random_pattern(rng, depth + 1)
    if r < 0.85:
        group = rng.choice(["(%s)", "(?:%s)", "(%s)", "(?P<g%d>%%s)" % rng.randint(0, 9)])
        return group % random_pattern(rng, depth + 1)
    sub = random_pattern(rng, depth + 1)
    if not (sub.endswith(")") or len(sub) == 1 or sub.endswith("]")):
        sub = "(" + sub + ")"
    return sub + rng.choice(["*", "+", "?", "*?", "+?", "??", "{2}", "{1,2}", "{0,2}?", "{2,}"])


def random_input(rng):
    return "".join(rng.choice("aabbAB \n") for _ in range(rng.randint(0, 7)))


def build_cases(seed, nrandom):
    rng = random.Random(seed)
    cases = []
    for pattern, inputs in TRICKY:
        for s in inputs:
            cases.append({"f": "sub", "re": pattern, "s": s, "n": -1})
            cases.append({"f": "split", "re": pattern, "s": s})
            cases.append({"f": "replace", "re": pattern, "s": s, "t": "<$0|$1|${2}x|$first|$1x|$$>"})
        cases.append({"f": "find", "re": pattern, "s": inputs[0], "n": 2})
        cases.append({"f": "match", "re": pattern, "s": inputs[0]})
    for pattern in BAD:
        cases.append({"f": "match", "re": pattern, "s": ""})
    for glob, delims, inputs in GLOBS:
        for s in inputs:
            cases.append({"f": "glob", "re": glob, "d": delims, "s": s})
    for _ in range(nrandom):
        pattern = random_pattern(rng)
        s = random_input(rng)
        kind = rng.choice(["sub", "sub", "sub", "split", "replace", "find"])
        case = {"f": kind, "re": pattern, "s": s, "n": rng.choice([-1, -1, 1, 2, 0])}
        if kind == "replace":
            case["t"] = rng.choice(["[$1]", "${1}x$2", "$0$0", "-", "$g1$$"])
        cases.append(case)
    return cases


def opa_eval(module, query, input_doc):
    e = OpaEngine()
    e.add_policy("t.rego", module)
    try:
        return {"result": e.eval_document(query, input_doc)}
    except OpaUndefinedError:
        return {"undefined": True}
    except OpaError as err:
        return {"error": str(err)}


def gatehouse_eval(binary, module, query, input_doc):
    with tempfile.TemporaryDirectory() as d:
        rego, inp = os.path.join(d, "t.rego"), os.path.join(d, "input.json")
        with open(rego, "w") as f:
            f.write(module)
        with open(inp, "w") as f:
            json.dump(input_doc, f)
        proc = subprocess.run([binary, "policy", "eval", "--format", "json", "-d", rego, "-i", inp, query],
                              capture_output=True, text=True)
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {"error": "unparseable output: " + proc.stdout + proc.stderr}
    if "error" in out:
        return {"error": out["error"].get("message", "")}
    return out


def error_text(message):
    """The part of an error message both engines share: after the builtin's name."""
    marker = "regex.match: "
    return message[message.index(marker) + len(marker):] if marker in message else message


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gatehouse", default=".build-re2/debug/gatehouse")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--random", type=int, default=400)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()

    cases = build_cases(args.seed, args.random)
    want = opa_eval(MODULE, "t.p", {"cases": cases})
    got = gatehouse_eval(args.gatehouse, MODULE, "data.t.p", {"cases": cases})
    if "result" not in want or "result" not in got:
        print("batch failed:\n  opa: %s\n  gatehouse: %s" % (want, got))
        return 1
    disagreements = 0
    invalid = []
    for case, w, g in zip(cases, want["result"], got["result"]):
        if w == {"invalid": True}:
            invalid.append(case["re"])
        if w != g:
            disagreements += 1
            print("DIFF %s\n  opa:       %s\n  gatehouse: %s" % (json.dumps(case, ensure_ascii=False), json.dumps(w, ensure_ascii=False), json.dumps(g, ensure_ascii=False)))
        elif args.verbose:
            print("ok   %s -> %s" % (json.dumps(case, ensure_ascii=False), json.dumps(w, ensure_ascii=False)))
    for pattern in sorted(set(invalid)):
        w = opa_eval(ERROR_MODULE, "t.p", {"re": pattern})
        g = gatehouse_eval(args.gatehouse, ERROR_MODULE, "data.t.p", {"re": pattern})
        we, ge = error_text(w.get("error", str(w))), error_text(g.get("error", str(g)))
        if we != ge:
            disagreements += 1
            print("DIFF error for %r\n  opa:       %s\n  gatehouse: %s" % (pattern, we, ge))
        elif args.verbose:
            print("ok   error for %r: %s" % (pattern, we))
    total = len(cases) + len(set(invalid))
    print("%d cases (%d with invalid patterns, errors compared), %d disagreements" % (total, len(set(invalid)), disagreements))
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
