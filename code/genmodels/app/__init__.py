"""What a reader runs: the command line, the zoo of trained models, the widgets, the benchmarks, the
plotting helpers and the book's schematics. Nothing below :mod:`genmodels.app` imports from it."""
