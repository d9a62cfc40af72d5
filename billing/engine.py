"""One input record in, its outputs out: intake, dispatch to the fold, state read and written back.

The engine works over any ``MutableMapping`` stores: plain dicts for the offline replay and
the audit, Faust tables in the worker. It always assigns a changed value back
(``store[key] = value``), which is what makes a Faust table write its changelog. It does no
I/O and reads no clock: it is deterministic in the order of the records it is given.
"""

from __future__ import annotations

import base64
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from billing.account import AccountState
from billing.catalog.model import Catalog
from billing.charging import Charged, charge, charge_entry_id
from billing.clock import advance
from billing.corrections import Adjusted, adjust, adjustment_entry_id
from billing.dedup import Seen, already_applied, fingerprint
from billing.discounts import DiscountPoint, DiscountTimeline
from billing.intake import decode, redact
from billing.lifecycle import Applied, apply_subscription
from billing.outputs import Duplicate, Emitted, Rejection, stable_id
from billing.policy import Policy
from billing.source import Source
from schemas import topics
from schemas.adjustments import Adjustment
from schemas.discounts import DiscountChange
from schemas.dlq import DeadLetter
from schemas.requests import GatewayRequest
from schemas.ticks import Tick


@dataclass(frozen=True, slots=True)
class Decoded:
    """A valid input and the account whose clock it moves (None for discounts)."""

    record: Any
    source: Source
    payload: bytes
    key: str | None

    # Discounts are the one input without an account or an ``at``; asking for a missing
    # attribute of a pydantic model goes through its slow ``__getattr__``, so they are
    # told apart by type.

    @property
    def account_id(self) -> str | None:
        return None if isinstance(self.record, DiscountChange) else self.record.account_id

    @property
    def event_time(self) -> datetime | None:
        """When the record happened: a request at completion, lifecycle and ticks at ``at``."""
        if isinstance(self.record, GatewayRequest):
            return self.record.completed_at
        return None if isinstance(self.record, DiscountChange) else self.record.at


@dataclass(frozen=True, slots=True)
class WrittenKeys:
    """Which entries of the three stores one record's application writes."""

    account: str | None
    seen: tuple[str, ...]
    discount: str | None


def lifecycle_key(event: Any) -> str:
    """A lifecycle event's idempotency key: its content hash (a repeat is never a conflict)."""
    return stable_id("ls", event.account_id, fingerprint(event))


@dataclass(slots=True)
class Result:
    """What one record produced; ``duplicate`` marks an input that changed nothing."""

    emitted: list[Emitted]
    duplicate: bool = False


class Engine:
    """The billing core bound to its three stores."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        accounts: MutableMapping[str, AccountState],
        seen: MutableMapping[str, Seen],
        discounts: MutableMapping[str, DiscountTimeline],
        policy: Policy | None = None,
    ) -> None:
        self.catalog = catalog
        self.accounts = accounts
        self.seen = seen
        self.discounts = discounts
        self.policy = policy or Policy()

    def decode(self, source: Source, payload: bytes, key: str | None = None) -> Decoded | Result:
        """Validate raw bytes; an invalid record becomes its dead letter."""
        record = decode(source.topic, payload, self.policy.max_payload_bytes)
        if isinstance(record, Rejection):
            return Result([self.dead_letter(source, payload, key, record)])
        return Decoded(record, source, payload, key)

    def process(self, source: Source, payload: bytes, key: str | None = None) -> Result:
        decoded = self.decode(source, payload, key)
        return decoded if isinstance(decoded, Result) else self.apply(decoded)

    def apply(self, decoded: Decoded) -> Result:
        """Fold a valid record into its stores and return what to emit."""
        record = decoded.record
        outcome: Any
        if isinstance(record, GatewayRequest):
            outcome = self._charge(record, decoded.source)
        elif isinstance(record, DiscountChange):
            outcome = self._discount(record)
        elif isinstance(record, Adjustment):
            outcome = self._adjust(record, decoded.source)
        elif isinstance(record, Tick):
            return Result(self.tick(record.account_id, record.at))
        else:
            outcome = self._subscription(record, decoded.source)
        if isinstance(outcome, Rejection):
            return Result([self.dead_letter(decoded.source, decoded.payload, decoded.key, outcome)])
        if isinstance(outcome, Duplicate):
            return Result([], duplicate=True)
        return Result(outcome)

    def tick(self, account_id: str, at: datetime) -> list[Emitted]:
        """Time reached ``at`` for the account: emit the restores and route changes due."""
        state = self.accounts.get(account_id)
        if state is None:
            return []
        updated, emitted = advance(state, at, self.policy, by_event=False)
        if updated != state:
            self.accounts[account_id] = updated
        return emitted

    def deadline(self, account_id: str) -> datetime | None:
        state = self.accounts.get(account_id)
        return None if state is None else state.next_deadline()

    def discount_at(self, model: str, instant: datetime) -> DiscountPoint | None:
        timeline = self.discounts.get(model)
        return None if timeline is None else timeline.at(instant)

    def _charge(
        self, request: GatewayRequest, source: Source
    ) -> list[Emitted] | Rejection | Duplicate:
        key = charge_entry_id(request.account_id, request.request_id)
        outcome = charge(
            self.accounts.get(request.account_id),
            self.seen.get(key),
            request,
            entry_id=key,
            catalog=self.catalog,
            discount_at=self.discount_at,
            policy=self.policy,
            source=source,
        )
        if not isinstance(outcome, Charged):
            return outcome
        self.accounts[request.account_id] = outcome.state
        self.seen[key] = outcome.seen
        return outcome.emitted

    def _adjust(
        self, adjustment: Adjustment, source: Source
    ) -> list[Emitted] | Rejection | Duplicate:
        key = adjustment_entry_id(adjustment.account_id, adjustment.adjustment_id)
        outcome = adjust(
            self.accounts.get(adjustment.account_id),
            self.seen.get(key),
            self.seen.get(adjustment.entry_id),
            adjustment,
            policy=self.policy,
            source=source,
        )
        if not isinstance(outcome, Adjusted):
            return outcome
        self.accounts[adjustment.account_id] = outcome.state
        self.seen[key] = outcome.seen
        self.seen[adjustment.entry_id] = outcome.original
        return outcome.emitted

    def _subscription(self, event: Any, source: Source) -> list[Emitted] | Rejection | Duplicate:
        key = lifecycle_key(event)
        repeat = already_applied(self.seen.get(key), key, source.position, key, "")
        if repeat is not None:
            return repeat
        ahead = self.policy.too_far_ahead(source.ingest_time, event.at)
        if ahead is not None:
            return Rejection("future_timestamp", ahead)
        outcome = apply_subscription(
            self.accounts.get(event.account_id), event, self.catalog, self.policy
        )
        if not isinstance(outcome, Applied):
            return outcome
        self.accounts[event.account_id] = outcome.state
        self.seen[key] = Seen(key, event.at, None, source.position)
        return outcome.emitted

    def _discount(self, change: DiscountChange) -> list[Emitted] | Rejection | Duplicate:
        timeline = self.discounts.get(change.model, DiscountTimeline())
        updated = self.discount_update(change, timeline)
        if not isinstance(updated, DiscountTimeline):
            return updated
        self.discounts[change.model] = updated
        return []

    def discount_update(
        self, change: DiscountChange, timeline: DiscountTimeline
    ) -> DiscountTimeline | Rejection | Duplicate:
        """The model's timeline once ``change`` is applied to ``timeline``; a Rejection or
        Duplicate when applying it would change nothing. Writes nothing: a shell can ask
        whether a change it sees on the topic is applied yet (``streams.discount_fence``)."""
        version = self.catalog.at(change.effective_at) or self.catalog.latest
        if change.model not in version.models:
            return Rejection(
                "unknown_model", f"model {change.model} is not in catalog {version.version}"
            )
        point = DiscountPoint(change.effective_at, change.supply_state)
        updated = timeline.with_point(point, self.policy.dedup_horizon)
        if updated is None:
            return Rejection(
                "conflict",
                f"{change.model} already has another supply state effective at {change.effective_at}",
            )
        if updated == timeline:  # already there, or older than the horizon keeps
            return Duplicate(change.model)
        return updated

    def written_keys(self, decoded: Decoded) -> WrittenKeys:
        """The store keys that applying ``decoded`` writes (a shell re-saves them when it finds
        the record already applied: its local store may hold writes its changelog lost)."""
        record = decoded.record
        if isinstance(record, DiscountChange):
            return WrittenKeys(None, (), record.model)
        if isinstance(record, GatewayRequest):
            seen: tuple[str, ...] = (charge_entry_id(record.account_id, record.request_id),)
        elif isinstance(record, Adjustment):
            seen = (adjustment_entry_id(record.account_id, record.adjustment_id), record.entry_id)
        elif isinstance(record, Tick):
            seen = ()
        else:
            seen = (lifecycle_key(record),)
        return WrittenKeys(record.account_id, seen, None)

    def dead_letter(
        self, source: Source, payload: bytes, key: str | None, why: Rejection
    ) -> Emitted:
        """The record as received (secrets redacted), where it came from, and why it was refused."""
        clean, _ = redact(payload[: self.policy.max_payload_bytes])
        letter = DeadLetter(
            schema_version=1,
            source_topic=source.topic,
            source_partition=source.partition,
            source_offset=source.offset,
            key=key,
            code=why.code,
            reason=why.reason,
            payload=clean.decode("utf-8", errors="replace"),
            payload_b64=base64.b64encode(clean).decode("ascii"),
        )
        return Emitted(topics.DLQ, key or "", letter)
