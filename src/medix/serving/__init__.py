"""Serving programs medix starts and stops: the judge (for training and evaluation) and the policy under
evaluation, on vLLM (GPU nodes; a CPU build in the tests) or llama.cpp (CPU, GGUF).

    config.py     ServeConfig: one engine, its GPUs and vLLM's own layout, for judge and policy alike
    engines.py    the command line of each engine
    process.py    ManagedServer: start, wait until it answers, stop on every way out
    layout.py     `medix eval run --serve`: one server per model and phase, spread by vLLM's data parallelism
    fit.py        the policy server's context sized to the run; a prompt that does not fit, named
    placement.py  `medix train`: the judge server on GPUs of its own, or a URL checked before any load

A stand-in server for tests and benchmarks is `medix.testing.stub_server` (a stub, not a judge).
"""
