"""CLI command groups, one module each; every command is a thin wrapper over a library call."""
