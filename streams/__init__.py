"""The Faust shell around the billing core (app, topics, tables, agents, sink).

Empty until the streaming pipeline lands (issue #4); the core it will wrap is ``billing``.
"""
