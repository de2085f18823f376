package fuzz.v0

default allow = false

allow {
    input.method == "tools/call"
    startswith(input.params.name, "safe_")
}

names[n] { n := input.tools[_].name }

counts := {k: count(v) | some k; v := input.groups[k]}
