"""History tiers (docs/history.md): raw samples for `history_raw_retention_hours`, 5-minute buckets
for `history_5m_retention_days`, hourly buckets for `history_1h_retention_days`. Each bucket keeps
every metric's min, max, mean and count, so a peak survives the rollup, and exists only where there
were samples, so an offline gap stays a gap.

The rollup runs in the background (admin/main.py), in chunks of sample ids, each chunk one
transaction that holds PostgreSQL's advisory lock: several server processes roll up once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Engine

from admin.core.config import Settings
from admin.repositories import history as repo
from admin.repositories import machines as machines_repo
from admin.services.errors import NotFound
from admin.services.public import HistoryRangeBucket, HistoryRangeOut

RangeName = Literal["hour", "day", "week", "month", "year"]
# range -> (span in seconds, the chart's bucket): 60 to 730 points a chart.
RANGES: dict[RangeName, tuple[int, int]] = {
    "hour": (3600, 60),
    "day": (86400, 120),
    "week": (7 * 86400, 900),
    "month": (30 * 86400, 3600),
    "year": (365 * 86400, 43200),
}
TierName = Literal["raw", "5m", "1h"]
TIER_NAMES: dict[int, TierName] = {repo.RAW: "raw", repo.FIVE_MINUTES: "5m", repo.HOUR: "1h"}
CHUNK_IDS = 10_000  # samples rolled up per transaction: short write locks beside the hot path (~0.3 s here)
GROUP_IDS = 200_000  # samples whose hours are rolled up together (each hour computed once per group)
METRICS = ("cpu", "ram", "disk", "score")


@dataclass
class RollupDone:
    samples: int = 0  # sample ids rolled up
    buckets: int = 0  # buckets written (5-minute and hourly)
    pruned_samples: int = 0
    pruned_buckets: int = 0


class HistoryService:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    # -- the rollup (background) -------------------------------------------------------------
    def roll_up(self, *, now: float | None = None, settle: float | None = None) -> RollupDone | None:
        """Roll the samples added since the last run into buckets, then apply each tier's retention;
        None when another process is at it. A sample id is rolled up once it has been seen for
        `settle` seconds (default: the rollup interval), so the transaction that inserted it has
        committed (0: everything now, for tests and benchmarks)."""
        now = time.time() if now is None else now
        settle = self.settings.history_rollup_interval_seconds if settle is None else settle
        done = RollupDone()
        while True:
            with self.engine.begin() as conn:
                if not repo.try_lock(conn):
                    return None
                done_id, seen_id, seen_at = repo.position(conn)
                if done_id >= seen_id:  # all seen is rolled up: look for newer samples
                    newest = repo.newest_sample_id(conn)
                    if newest > done_id:
                        repo.set_position(conn, done_id=done_id, seen_id=newest, seen_at=now)
                        seen_id, seen_at = newest, now
                    if newest <= done_id or settle > 0:
                        break
                if now - seen_at < settle:
                    break
            group_end = min(seen_id, done_id + GROUP_IDS)
            if not self._roll_up_group(done_id, group_end, now, done):
                return None
            with self.engine.begin() as conn:
                if not repo.try_lock(conn):
                    return None
                if repo.position(conn)[0] != done_id:
                    continue  # another process rolled this group up meanwhile
                # Once per group, with the position's move: what must not run twice, and the hours
                # (each hour once per group, not once per chunk: a chunk is a minute of 10,000 machines).
                five_kept = now - self.settings.history_5m_retention_days * 86400 + repo.HOUR
                raw_kept = self._raw_kept(now)
                done.buckets += repo.merge_old_five_minutes(
                    conn, after_id=done_id, upto_id=group_end, keep_before=raw_kept
                )
                done.buckets += repo.roll_up_hours(conn, after_id=done_id, upto_id=group_end, keep_before=five_kept)
                done.samples += group_end - done_id
                repo.set_position(conn, done_id=group_end, seen_id=seen_id, seen_at=seen_at)
        self._prune(now, done)
        return done

    def _raw_kept(self, now: float) -> float:
        """5-minute buckets from here on have all their samples (raw retention pruned none)."""
        return now - self.settings.history_raw_retention_hours * 3600 + repo.FIVE_MINUTES

    def _roll_up_group(self, after_id: int, upto_id: int, now: float, done: RollupDone) -> bool:
        """The 5-minute buckets of the samples in (after_id, upto_id], a chunk per transaction (the
        writer waits for one chunk at most). Computed again from their samples: a chunk done twice
        (by another process, or before a crash) gives the same rows. False: another process has the lock."""
        for after in range(after_id, upto_id, CHUNK_IDS):
            with self.engine.begin() as conn:
                if not repo.try_lock(conn):
                    return False
                done.buckets += repo.recompute_five_minutes(
                    conn, after_id=after, upto_id=min(after + CHUNK_IDS, upto_id), keep_before=self._raw_kept(now)
                )
        return True

    def _prune(self, now: float, done: RollupDone) -> None:
        with self.engine.begin() as conn:
            if not repo.try_lock(conn):
                return
            done_id, _, _ = repo.position(conn)
            pruned = repo.prune(
                conn,
                samples_before=now - self.settings.history_raw_retention_hours * 3600,
                rolled_up_to=done_id,
                five_before=now - self.settings.history_5m_retention_days * 86400,
                hours_before=now - self.settings.history_1h_retention_days * 86400,
            )
        done.pruned_samples, done.pruned_buckets = pruned["samples"], pruned["buckets"]

    # -- charts (reads) ------------------------------------------------------------------------
    def tier_for(self, span: float) -> int:
        """The finest tier that still holds the whole span."""
        if self.settings.history_raw_retention_hours * 3600 >= span:
            return repo.RAW
        if self.settings.history_5m_retention_days * 86400 >= span:
            return repo.FIVE_MINUTES
        return repo.HOUR

    def chart(
        self, *, org_id: int, machine_id: str, range_name: RangeName, now: float | None = None
    ) -> HistoryRangeOut:
        """The machine's history over the range, from the tier that holds it, per chart bucket."""
        now = time.time() if now is None else now
        span, width = RANGES[range_name]
        tier = self.tier_for(span)
        width = max(width, tier)
        since = math.floor((now - span) / width) * width
        with self.engine.connect() as conn:
            if not machines_repo.machine_exists(conn, org_id=org_id, machine_id=machine_id):
                raise NotFound("no machine with that id in this organisation")
            rows = repo.chart_buckets(
                conn, org_id=org_id, machine_id=machine_id, tier=tier, since=since, until=int(now) + width, width=width
            )
        return HistoryRangeOut(
            machine_id=machine_id,
            range=range_name,
            tier=TIER_NAMES[tier],
            bucket_seconds=width,
            since=since,
            until=now,
            buckets=[_bucket(row) for row in rows],
        )


def _bucket(row: Sequence[Any]) -> HistoryRangeBucket:
    """(start, samples, then min, max, mean, count per metric) as the API's bucket."""
    fields: dict[str, float | int | None] = {"ts": float(row[0]), "samples": int(row[1])}
    for n, metric in enumerate(METRICS):
        low, high, mean, count = row[2 + 4 * n : 6 + 4 * n]
        fields[f"{metric}_min"], fields[f"{metric}_max"], fields[f"{metric}_count"] = low, high, int(count or 0)
        fields["score" if metric == "score" else f"{metric}_percent"] = None if mean is None else float(mean)
    return HistoryRangeBucket.model_validate(fields)
