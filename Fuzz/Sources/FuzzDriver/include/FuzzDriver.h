#ifndef GATEHOUSE_FUZZ_DRIVER_H
#define GATEHOUSE_FUZZ_DRIVER_H

/// Runs libFuzzer (LLVMFuzzerRunDriver) on the target's LLVMFuzzerTestOneInput with the
/// process's arguments, then exits with libFuzzer's status. Never returns.
__attribute__((noreturn)) void gatehouse_fuzz_main(int argc, char **argv);

#endif
