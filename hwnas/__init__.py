"""hwnas: find the most accurate network that meets a latency budget measured on a real phone."""

__version__ = "0.1.0"
