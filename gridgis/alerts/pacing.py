"""Pacing of sends: exponential backoff with jitter, and token buckets per channel or robot."""

import random
import threading
import time


def backoff_seconds(attempts: int, base: float, cap: float,
                    rng: random.Random | None = None) -> float:
    """Return the wait after failed attempt ``attempts``: half of min(cap, base * 2^(n-1))
    plus a random share of the other half ("equal jitter": spread out, never immediate)."""
    delay = min(cap, base * 2.0 ** min(attempts - 1, 40))
    return delay / 2 + (rng or random).uniform(0, delay / 2)


def shortest_life_s(max_attempts: int, base: float, cap: float) -> float:
    """Return the least time between a message's first failed attempt and its last: how long
    a channel may be down, at the least, before its messages go dead."""
    return sum(min(cap, base * 2.0 ** min(n - 1, 40)) / 2 for n in range(1, max_attempts))


class TokenBucket:
    """At most ``rate`` sends a second, evenly spaced (a bucket one token deep)."""

    def __init__(self, rate: float):
        self.interval, self.next_at, self.lock = 1.0 / rate, 0.0, threading.Lock()

    def reserve(self) -> float:
        """Take the next free slot; return its time (``time.monotonic()``)."""
        with self.lock:
            at = max(time.monotonic(), self.next_at)
            self.next_at = at + self.interval
        return at


class RateLimits:
    """A token bucket per rate key (a channel, or one robot) at its channel's rate. A message
    whose slot is further off than ``max_wait_s`` is not waited for on a thread: it is handed
    back to the outbox until then, its slot kept for it (in this process)."""

    def __init__(self, rates: dict[str, float], max_wait_s: float):
        self.rates, self.max_wait_s, self.lock = rates, max_wait_s, threading.Lock()
        self.buckets: dict[str, TokenBucket] = {}
        self.slots: dict[int, float] = {}  # outbox id -> the slot reserved for it

    def admit(self, message_id: int, channel: str, key: str,
              stop: threading.Event) -> float | None:
        """Wait for the message's slot and return None (send it now), or return how many
        seconds to hand it back for (0 when stopping)."""
        rate = self.rates.get(channel) or 0.0
        if rate <= 0:
            return None
        with self.lock:
            slot = self.slots.pop(message_id, None)
            if slot is None:
                slot = self.buckets.setdefault(key, TokenBucket(rate)).reserve()
            wait = slot - time.monotonic()
            if wait > self.max_wait_s:
                self.slots[message_id] = slot
                return wait
        return 0.0 if wait > 0 and stop.wait(wait) else None
