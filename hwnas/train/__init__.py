"""Supernet training: data, samplers (uniform, GreedyNAS), candidate pool, trainer."""
