"""Offline replay shell: read a ``LOG.jsonl``, fold it with the billing core, write ``OUT.jsonl``."""
