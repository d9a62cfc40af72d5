"""Errors of the gateway SDK, under the project's one root ``MeteringError``.

A gateway catches ``GatewayError`` (or ``MeteringError``) around a publish; the subclass says
whether resending can help: ``InvalidEvent`` never (fix the event), ``PublishFailed`` and
``BrokerUnavailable`` yes (resend the same event: the pipeline deduplicates it).
"""

from __future__ import annotations

from billing.errors import MeteringError


class GatewayError(MeteringError):
    """Root of the gateway SDK's errors."""


class InvalidEvent(GatewayError):
    """The event breaks its topic's contract; nothing was sent.

    Resending the same event fails the same way: fix the named field. ``errors`` holds every
    problem found (``field``/``reason`` are the first one's).
    """

    def __init__(
        self, topic: str, field: str, reason: str, errors: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self.topic = topic
        self.field = field
        self.reason = reason
        self.errors = errors or ((field, reason),)
        more = len(self.errors) - 1
        extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        super().__init__(f"invalid event for {topic}: {field}: {reason}{extra}")


class PublishFailed(GatewayError):
    """The broker did not acknowledge the event (the cause is chained as ``__cause__``).

    The event may or may not have been written. Publish the same event again: the pipeline
    deduplicates on ``request_id`` (adjustments on ``adjustment_id``, subscription and
    discount events on their content), so a resend is charged at most once.
    """

    def __init__(self, topic: str, event_id: str, reason: str) -> None:
        self.topic = topic
        self.event_id = event_id
        self.reason = reason
        super().__init__(f"publishing {event_id} to {topic} failed: {reason}")


class BrokerUnavailable(GatewayError):
    """The SDK could not connect to Kafka at start. Check ``bootstrap_servers`` and the broker."""


class RoutingTopicMissing(GatewayError):
    """The routing topic does not exist. Start the worker once (it creates every topic)."""


class RoutingViewNotReady(GatewayError, TimeoutError):
    """The routing view did not catch up with the topic in time; routes may be stale.

    Also a ``TimeoutError``, so ``except TimeoutError`` around ``wait_ready`` works too.
    """
