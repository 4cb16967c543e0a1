"""Dispatching streams by dependency, with the merge queue running alongside.

Streams whose dependencies are merged run in a thread pool capped at
``agents.max_concurrent``, started at least ``agents.stagger_delay_ms`` apart.
Merges run one at a time on a separate thread as soon as a stream is merge
ready, so a dependent stream can branch from the merge branch that already
contains the work it depends on.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor

from .context import RunContext
from .merge import fail_dependants, next_entry, process_entry
from .model import MergeStatus, Stream, StreamStatus
from .recovery import FailureKind
from .streams import _fail_stream, run_stream

log = logging.getLogger(__name__)

# How often the loop wakes when nothing signals a change.
POLL_INTERVAL_S = 0.2


def execute(ctx: RunContext, *, stop_on_failure: bool = False) -> None:
    """Run streams and merges until nothing more can make progress."""
    config = ctx.config.agents
    workers = config.max_concurrent if config.max_concurrent > 0 else 5
    stagger_s = max(config.stagger_delay_ms, 0) / 1000
    running: dict[str, Future[None]] = {}
    merging: Future[None] | None = None
    last_start = 0.0

    with (
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="stream") as pool,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="merge") as merger,
    ):
        while True:
            for stream_id, future in list(running.items()):
                if future.done():
                    del running[stream_id]
                    _reap(ctx, stream_id, future)
            if merging is not None and merging.done():
                _reap(ctx, None, merging)
                merging = None

            with ctx.locked():
                _fail_orphans(ctx)
                stopping = stop_on_failure and _any_failed(ctx)
                ready = [] if stopping else _ready_streams(ctx, running)
                entry = next_entry(ctx) if merging is None else None

            for stream in ready[: workers - len(running)]:
                wait_s = last_start + stagger_s - time.monotonic()
                if wait_s > 0:
                    time.sleep(wait_s)
                with ctx.locked():
                    if stream.status is StreamStatus.PENDING:
                        stream.transition(StreamStatus.EXECUTING)
                        ctx.emit("dispatched", stream)
                    else:
                        ctx.emit(f"resuming at step {stream.step_id}", stream)
                running[stream.id] = pool.submit(run_stream, ctx, stream)
                last_start = time.monotonic()

            if entry is not None:
                merging = merger.submit(process_entry, ctx, entry)

            if not running and merging is None and not ready and entry is None:
                return
            with ctx.changed:
                ctx.changed.wait(POLL_INTERVAL_S)


def _reap(ctx: RunContext, stream_id: str | None, future: Future[None]) -> None:
    """Turn an unexpected exception in a worker into a failed stream."""
    error = future.exception()
    if error is None:
        return
    log.error("worker for %s crashed", stream_id or "merge queue", exc_info=error)
    if stream_id is None:
        raise error
    plan = ctx.objective.plan
    assert plan is not None
    stream = plan.stream(stream_id)
    if stream.status is StreamStatus.EXECUTING:
        _fail_stream(ctx, stream, FailureKind.DETERMINISTIC_STEP_FAILURE, repr(error))


def _ready_streams(ctx: RunContext, running: dict[str, Future[None]]) -> list[Stream]:
    """Return streams that can start or continue now, in plan order."""
    plan = ctx.objective.plan
    assert plan is not None
    by_title = {s.title: s for s in plan.streams}
    ready = []
    for stream in plan.streams:
        if stream.id in running or stream.blocked:
            continue
        if stream.status is StreamStatus.EXECUTING:
            ready.append(stream)
        elif stream.status is StreamStatus.PENDING:
            deps = [by_title[title] for title in stream.dependencies]
            if all(dep.status is StreamStatus.MERGED for dep in deps):
                ready.append(stream)
    return ready


def _fail_orphans(ctx: RunContext) -> None:
    """Fail pending streams whose dependency failed; the caller holds the lock."""
    plan = ctx.objective.plan
    assert plan is not None
    for stream in plan.streams:
        if stream.status is StreamStatus.FAILED:
            fail_dependants(ctx, stream)


def _any_failed(ctx: RunContext) -> bool:
    plan = ctx.objective.plan
    assert plan is not None
    failed = any(s.status is StreamStatus.FAILED for s in plan.streams)
    conflicts = any(
        e.status is MergeStatus.CONFLICT for e in ctx.objective.merge_entries
    )
    return failed or conflicts
