"""The gateway SDK: publish input events to the pipeline, obey the routes it publishes back.

``Publisher`` / ``SyncPublisher`` validate each event against its topic's contract and send it
with an idempotent producer; ``RoutingView`` keeps every account's latest route in memory from
the compacted ``metering.routing`` topic. See gateway/README.md.
"""

from gateway.errors import (
    BrokerUnavailable,
    GatewayError,
    InvalidEvent,
    PublishFailed,
    RoutingTopicMissing,
    RoutingViewNotReady,
)
from gateway.events import topic_for
from gateway.publisher import Publisher, SyncPublisher
from gateway.routing_view import RoutingView

__all__ = [
    "BrokerUnavailable",
    "GatewayError",
    "InvalidEvent",
    "PublishFailed",
    "Publisher",
    "RoutingTopicMissing",
    "RoutingView",
    "RoutingViewNotReady",
    "SyncPublisher",
    "topic_for",
]
