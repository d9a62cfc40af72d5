"""Where the simulator's randomness comes from: one named stream per concern, all from the seed.

Each concern (the population, one account's arrivals, the supply market, fault injection)
draws from its own ``random.Random`` seeded with ``"<seed>:<name>…"``. A string seed is hashed
with SHA-512 by ``random.seed`` (version 2), so streams are identical across processes and
Python runs (``PYTHONHASHSEED`` plays no part), and changing one concern's draws never shifts
another's: adding a fault rate leaves the traffic itself unchanged.
"""

from __future__ import annotations

import hashlib
import random


def stream(seed: int, *labels: object) -> random.Random:
    """The random stream named ``labels`` under ``seed``."""
    return random.Random(":".join(str(part) for part in (seed, *labels)))


def run_tag(*fields: object) -> str:
    """Six hex digits naming a run, derived from what shapes its traffic.

    Ids carry it (``acct_<tag>_0001``, ``req_<tag>_00000001``) so two different runs sent to
    one broker never reuse an id with other content (a conflict, not a duplicate), while the
    same run sent twice repeats its ids exactly (duplicates, charged once).
    """
    text = "|".join(repr(field) for field in fields)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:6]
