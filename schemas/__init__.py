"""The wire contract: one frozen, strict pydantic model per topic (see ``topics.CONTRACTS``).

This package is the single source of the shapes in SPEC.md's wire contract; the JSON Schema
files in ``jsonschema/`` are exported from it (``metering schema export``) and must not drift.
"""
