"""The ClickHouse sink: ``metering.ledger`` → ``{db}.ledger``, each entry once, commit after insert.

See README.md in this folder for its invariants and what it does not guarantee. Import
from the module that holds a name: the package imports nothing, so a command that needs
only the ledger's columns (the audit) does not load Kafka and ClickHouse clients.
"""
