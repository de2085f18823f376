import FuzzDriver

// libFuzzer takes over: see Sources/FuzzDriver. The input handler is LLVMFuzzerTestOneInput.
gatehouse_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv)
