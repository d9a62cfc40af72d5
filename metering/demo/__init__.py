"""``metering demo``: the whole product live on embedded defaults (see run.py for the steps)."""
