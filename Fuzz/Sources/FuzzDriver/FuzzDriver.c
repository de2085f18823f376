#include "FuzzDriver.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

// Defined by each fuzz target, in Swift, with @_cdecl("LLVMFuzzerTestOneInput").
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
// In libclang_rt.fuzzer, linked by -sanitize=fuzzer.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

static const uint8_t empty[1];

// The Swift targets take a non-optional pointer: never hand them NULL for an empty input.
static int testOneInput(const uint8_t *data, size_t size) {
    return LLVMFuzzerTestOneInput(data ? data : empty, size);
}

void gatehouse_fuzz_main(int argc, char **argv) {
    exit(LLVMFuzzerRunDriver(&argc, &argv, testOneInput));
}
