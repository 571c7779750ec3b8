"""The native buckets' arithmetic, without a limiter, threads or clock (times in µs)."""

from __future__ import annotations

from otpy.resilience._ledger import SLOTS, RollingLog, TokenBucket

S = 1_000_000  # µs in a second
MINUTE = 60 * S


def test_a_rolling_log_counts_a_slot_until_its_newest_units_leave_the_window() -> None:
    log = RollingLog(MINUTE)
    assert log.width == MINUTE // SLOTS
    slot = log.add(12 * S, 7)  # the slot [12.0, 12.06) s
    log.add(12 * S + 30_000, 1)  # the same slot, 30 ms later: its newest units
    assert log.level(72 * S) == 8  # the newest came at 12.03: still in (12, 72]
    assert log.wait(72 * S, 10, 4) == 30_000  # until 72.03 s
    assert log.level(72 * S + 30_000) == 0
    assert log.refund(72 * S + 30_000, slot, 7) == 0  # expired: nothing to give back
    log.add(80 * S, 5)  # alone in its slot: leaves exactly a period later
    assert log.level(140 * S - 1) == 5 and log.level(140 * S) == 0


def test_a_rolling_log_adds_to_its_newest_slot_and_never_goes_back() -> None:
    log = RollingLog(S)  # 1 ms slots
    first = log.add(5_000, 1)
    assert log.add(5_999, 2) == first  # the same slot
    assert log.add(4_000, 3) == first  # time went back: the newest slot takes it
    assert log.runs == [[5, 6, 5_999]]
    assert log.refund(5_999, first, 10) == 6 and log.total == 0


def test_a_rolling_log_drops_its_expired_head_in_amortised_constant_time() -> None:
    log = RollingLog(S)
    for ms in range(5_000):
        log.add(ms * 1_000, 1)
        assert log.level(ms * 1_000) <= 1_000
    assert len(log.runs) <= 2 * (SLOTS + 1) + 64  # compacted, not 5,000 long
    assert log.level(4_999_000) == 1_000


def test_a_rolling_log_waits_for_as_many_slots_as_the_cost_needs() -> None:
    log = RollingLog(10 * S)  # 10 ms slots
    log.add(0, 4)
    log.add(2 * S, 3)
    log.add(4 * S, 3)
    assert log.wait(5 * S, 10, 1) == 10 * S - 5 * S  # the first run leaves
    assert log.wait(5 * S, 10, 6) == 12 * S - 5 * S  # the first two leave
    assert log.wait(5 * S, 10, 0) == 0


def test_a_token_bucket_drains_at_its_rate_and_waits_for_the_refill() -> None:
    bucket = TokenBucket(0)
    bucket.add(100)  # capacity 100, 100 a minute
    assert bucket.wait(0, 100, MINUTE, 1) == 600_000  # one unit drains in 0.6 s
    assert bucket.drain(30 * S, 100, MINUTE) == 50
    assert bucket.wait(30 * S, 100, MINUTE, 50) == 0
    assert bucket.drain(10 * S, 100, MINUTE) == 50  # time going back changes nothing


def test_a_token_bucket_refund_is_what_the_smaller_reservation_would_have_left() -> None:
    # One unit a second, capacity 100: reserve 50 at 0, 60 at 20 s, then the first used 10.
    bucket = TokenBucket(0)
    first = bucket.add(50)
    bucket.drain(20 * S, 100, 100 * S)
    bucket.add(60)
    assert bucket.refund(20 * S, 100, 100 * S, first, 50, 40) == 30  # 20 had drained
    assert bucket.level == 60  # as if 10 at 0 (drained by 10 s), then 60 at 20 s


def test_a_token_bucket_refund_follows_its_reservation_as_earlier_ones_are_refunded() -> None:
    bucket = TokenBucket(0)
    a = bucket.add(50)
    b = bucket.add(50)
    assert bucket.refund(0, 100, 100 * S, a, 50, 50) == 50  # b now sits where a was
    bucket.drain(30 * S, 100, 100 * S)  # 30 of b have drained
    bucket.add(30)
    assert bucket.refund(30 * S, 100, 100 * S, b, 50, 50) == 20  # only its 20 still in
    assert bucket.level == 30


def test_a_token_bucket_never_refunds_below_empty() -> None:
    bucket = TokenBucket(0)
    where = bucket.add(10)
    bucket.drain(MINUTE, 100, MINUTE)
    assert bucket.refund(MINUTE, 100, MINUTE, where, 10, 10) == 0
    assert bucket.level == 0
