"""Developer tools: random checkpoints for tests and benchmarks."""
