"""What a reader runs: the command line, the zoo of trained models, the widgets, the benchmarks and the
plotting helpers. Nothing below :mod:`genmodels.app` imports from it."""
