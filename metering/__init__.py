"""The application shell: settings, CLI, ClickHouse store, replay and ops tools.

Everything here is I/O around the pure billing core in ``billing``.
"""
