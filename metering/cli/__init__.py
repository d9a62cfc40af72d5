"""The ``metering`` command line: one module per subcommand group, registered in ``app``."""
