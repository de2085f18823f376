x := [y | y := numbers.range(1, 3)[_]; y > 1]; z := {"a": x, "b": object.get(input, "k", null)}
