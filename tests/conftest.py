"""Shared test configuration: service fixtures live in tests/fixtures, one module per service."""

pytest_plugins = [
    "tests.fixtures.kafka",
    "tests.fixtures.clickhouse",
    "tests.fixtures.kafka_cluster",
]
