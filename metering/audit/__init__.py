"""Audit one account's bill: the ledger ClickHouse holds against the same ledger re-derived
from the raw input log by the billing core, as a statement with a hash and an entry diff."""
