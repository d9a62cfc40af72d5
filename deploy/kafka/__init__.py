"""A real Apache Kafka broker for tests and local runs, from Maven Central jars, without Docker.

See README.md beside this file for what it owns and what it does not guarantee.
"""

from deploy.kafka.config import BrokerPorts
from deploy.kafka.jars import fetch_jars, libs_dir
from deploy.kafka.launcher import LocalKafka
from deploy.kafka.probe import broker_answers
from deploy.kafka.state import BrokerState

__all__ = ["BrokerPorts", "BrokerState", "LocalKafka", "broker_answers", "fetch_jars", "libs_dir"]
