"""Latency: block keys, the table file, profiling, prediction and validation."""
