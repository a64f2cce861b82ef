"""Local tooling for lambda-crud-detector: the demo, the findings viewer, the local runtime and benchmarks."""
