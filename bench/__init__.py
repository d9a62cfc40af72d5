"""Benchmarks of the live pipeline, each a command that runs its figure next to a baseline.

The machine is shared and noisy, so every command measures its subject and a baseline in the
same invocation, on the same broker, and prints both with their ratio (``docs/BENCHMARKS.md``
records the results). Benchmarks assert nothing on time; ``tests/bench`` runs each in a smoke
mode (tiny sizes) so they cannot rot.
"""
