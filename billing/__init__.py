"""The billing core: pure, deterministic functions of the ordered event log.

No Kafka, no ClickHouse, no clock, no environment: shells (Faust agents, ``metering replay``,
the audit) feed it records and publish what it returns. See ``billing/README.md``.
"""
