"""Performance measurements, each runnable as ``python -m benchmarks.<name>``."""
