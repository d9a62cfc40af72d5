"""The fault-injection harness: real workers, a real sink, injected faults, checked invariants.

See README.md in this folder: what a run does, the faults, the invariants, and what it does
not prove. Entry points: ``python -m reliability run`` (also ``metering chaos run``).
"""
