"""Request mixes: what one request of each kind looks like, from the plan documents in
``shared/seeds`` (000 = ZenMux Builder Plan, 004 = Lilac).

The ZenMux seed sizes Pro's 50 Flows per 5 hours three ways: ~200 chats of "5000 input
tokens + 1000 output tokens" on GPT-5.2, "5–10 coding tasks" on Claude Sonnet 4.5, or ~30
NanoBananaPro "2K resolution 16:9" images. The profiles reproduce those sizes; every number
the seeds do not give (latency, channel share, cache hits, error rates, model weights) is
marked as an assumption.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from schemas.requests import Channel, RequestStatus, Usage

STATUS_WEIGHTS: tuple[tuple[RequestStatus, float], ...] = (
    ("ok", 0.97),
    ("error", 0.02),
    ("canceled", 0.01),
)
"""assumption: 2% errors, 1% canceled. SPEC: non-ok requests pay only for reported tokens."""


@dataclass(frozen=True, slots=True)
class Shape:
    """One drawn request: what it consumed, how it ended, how long it took, where from."""

    usage: Usage
    status: RequestStatus
    latency_s: float
    channel: Channel


@dataclass(frozen=True, slots=True)
class Profile:
    """A request mix. ``models`` are (slug, weight); a plan keeps those it allows."""

    name: str
    weight: float
    models: tuple[tuple[str, float], ...]
    studio_share: float
    latency_s: tuple[float, float]

    def draw(self, rng: random.Random) -> Shape:
        usage = self._usage(rng)
        latency = rng.uniform(*self.latency_s)
        channel: Channel = "studio" if rng.random() < self.studio_share else "api"
        status = _status(rng)
        if status != "ok":
            usage, latency = _cut_short(usage, status, latency, rng)
        return Shape(usage, status, latency, channel)

    def _usage(self, rng: random.Random) -> Usage:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class ChatProfile(Profile):
    """Seed 000, "What can the Pro plan actually do?": "Chat: Calculated based on 5000 input
    tokens + 1000 output tokens" (GPT-5.2, ~200 conversations per 5 hours).

    Input (cached + uncached) and output are drawn ±20% around 5,000 and 1,000, so the mean is
    the seed's size. assumption: 30% of chats reuse a cached prefix (20-60% of the input).
    """

    def _usage(self, rng: random.Random) -> Usage:
        total = round(5000 * rng.uniform(0.8, 1.2))
        output = round(1000 * rng.uniform(0.8, 1.2))
        cached = round(total * rng.uniform(0.2, 0.6)) if rng.random() < 0.3 else 0
        return Usage(input_tokens=total - cached, cached_input_tokens=cached, output_tokens=output)


@dataclass(frozen=True, slots=True)
class CodingProfile(Profile):
    """Seed 000: "Coding — Claude Sonnet 4.5, etc. — Complete 5–10 coding tasks" per 5 hours,
    "Task complexity directly affects token consumption"; seed 000's Extra Usage and IDE
    sections: coding runs through API keys in tools such as Claude Code, Cursor, Cline.

    One request is one task with a long context and long output: input 60k-140k tokens
    (assumption: 70% of tasks hit the prompt cache for 30-70% of it), output 10k-40k. On
    Claude Sonnet 4.5 that is ≈ $0.58 list ≈ 6.8 Flows, so 50 Flows ≈ 7 tasks (seed: 5-10).
    """

    def _usage(self, rng: random.Random) -> Usage:
        total = round(rng.uniform(60_000, 140_000))
        output = round(rng.uniform(10_000, 40_000))
        cached = round(total * rng.uniform(0.3, 0.7)) if rng.random() < 0.7 else 0
        return Usage(input_tokens=total - cached, cached_input_tokens=cached, output_tokens=output)


@dataclass(frozen=True, slots=True)
class ImageProfile(Profile):
    """Seed 000: "Image generation — NanoBananaPro, etc. — 2K resolution 16:9, ~30 images" per
    5 hours (≈ 1.67 Flow each). One request = one image and a short prompt (assumption:
    50-300 input tokens, no text output)."""

    def _usage(self, rng: random.Random) -> Usage:
        return Usage(input_tokens=round(rng.uniform(50, 300)), output_tokens=0, images=1)


CHAT = ChatProfile(
    name="chat",
    weight=0.6,
    models=(
        ("openai/gpt-5.2", 0.35),  # seed 000: the chat example's model
        ("openai/gpt-5.2-chat", 0.1),
        ("qwen/qwen3-max", 0.1),  # seed 000 "Text generation": Qwen3-Max-Thinking
        ("baidu/ernie-5.0-thinking-preview", 0.05),  # seed 000: ERNIE 5.0
        ("z-ai/glm-4.7", 0.15),  # seed 004's discount example is GLM; on ZenMux Free too
        ("deepseek/deepseek-chat", 0.15),  # seed 000: the Free plan's models
        ("minimax/minimax-m2.1", 0.05),
        ("openai/gpt-5.2-pro", 0.05),  # seed 000: Max / Ultra flagships
    ),
    studio_share=0.4,  # assumption: seed 000 says Studio Chat shares the quota pool, not how much
    latency_s=(2.0, 20.0),  # assumption
)
CODING = CodingProfile(
    name="coding",
    weight=0.3,
    models=(
        ("anthropic/claude-sonnet-4.5", 0.4),  # seed 000: the coding example's model
        ("anthropic/claude-opus-4.5", 0.15),  # seed 000 "Coding models"
        ("openai/gpt-5.2-codex", 0.15),  # seed 000 "Coding models"
        ("google/gemini-3-pro-preview", 0.1),  # seed 000 "Coding models"
        ("deepseek/deepseek-reasoner", 0.08),  # seed 000: on the Free plan
        ("z-ai/glm-4.7", 0.07),  # seed 000: on the Free plan
        ("openai/gpt-5-pro", 0.05),  # seed 000: Max / Ultra flagships
    ),
    studio_share=0.05,  # assumption: coding comes from IDE tools over the API
    latency_s=(30.0, 300.0),  # assumption
)
IMAGE = ImageProfile(
    name="image",
    weight=0.1,
    models=(
        ("nanobanana/nanobanana-pro", 0.7),  # seed 000: the image example's model
        ("openai/gpt-image-1.5", 0.15),  # seed 000 "Image models"
        ("google/gemini-3-pro-image-preview", 0.15),
    ),
    studio_share=0.3,  # assumption
    latency_s=(8.0, 40.0),  # assumption
)
PROFILES: tuple[Profile, ...] = (CHAT, CODING, IMAGE)
"""assumption: 60% chat, 30% coding, 10% images by request count (the seeds give none)."""


def _status(rng: random.Random) -> RequestStatus:
    draw = rng.random()
    for status, weight in STATUS_WEIGHTS:
        if draw < weight:
            return status
        draw -= weight
    return "ok"


def _cut_short(
    usage: Usage, status: RequestStatus, latency: float, rng: random.Random
) -> tuple[Usage, float]:
    """An error reports its input and nothing more; a cancel also a part of the output."""
    share = rng.uniform(0.1, 1.0)
    output = round(usage.output_tokens * share) if status == "canceled" else 0
    cut = Usage(
        input_tokens=usage.input_tokens,
        cached_input_tokens=usage.cached_input_tokens,
        output_tokens=output,
        images=0,
    )
    return cut, latency * share
