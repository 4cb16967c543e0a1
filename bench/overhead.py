"""Measure orchestration overhead per stream on local sandboxes.

Runs objectives of 1, 8 and 32 independent streams, one after another in one
process, with an agent and gates that do almost nothing. The agent records its
own start and end times, so the overhead is the wall time minus the agents' own
time, divided by the number of streams.

    .venv/bin/python bench/overhead.py [--sizes 1,8,32] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from tack_action.demo import write_repo
from tack_action.orchestrator import Orchestrator, build_context, create_objective
from tack_action.planning import parse_plan_output
from tack_action.state import FileStateStore

# The agent writes one file as a builder and approves as a reviewer. It logs
# its own start and end in nanoseconds so that its time can be subtracted.
_AGENT = r"""
start=$(date +%s%N)
if [ "$TACK_AGENT_ROLE" = reviewer ]; then
  echo 'TACK_REVIEW:{"verdict": "approve", "reasons": []}'
else
  echo "$TACK_STREAM_SLUG" > "$TACK_STREAM_SLUG.txt"
  echo "edit $TACK_STREAM_SLUG.txt"
fi
echo "$start $(date +%s%N)" >> LOG
"""


def _plan(size: int) -> str:
    streams = [
        {
            "title": f"Stream {i}",
            "description": "Write a file.",
            "file_scope": [f"stream-{i}.txt"],
        }
        for i in range(size)
    ]
    return "```yaml\n" + yaml.safe_dump({"streams": streams}) + "```\n"


def run_size(size: int, concurrency: int) -> dict[str, float]:
    """Run one objective of ``size`` streams and return its timings in seconds."""
    with tempfile.TemporaryDirectory(prefix="tack-bench-") as tmp:
        root = Path(tmp)
        log = root / "agent-times.log"
        agent = root / "agent.sh"
        agent.write_text(_AGENT.replace("LOG", str(log)))
        config = {
            "sandbox": {"provider": "local", "worktree_dir": str(root / "sandboxes")},
            "agents": {
                "runtime": "command",
                "command": f"sh {agent}",
                "max_concurrent": concurrency,
                "stagger_delay_ms": 0,
            },
            "quality_gates": ["true"],
            "planning": {"max_streams": max(size, 8)},
        }
        repo = write_repo(root, {"README.md": "bench\n"}, config, name="repo")
        store = FileStateStore(root / "state")
        plan = parse_plan_output(_plan(size), max_streams=size)
        objective = create_objective("Benchmark", repo, store, plan=plan)

        started = time.perf_counter()
        ctx = build_context(objective, store)
        ctx.out = io.StringIO()
        result = Orchestrator(ctx).approve()
        wall = time.perf_counter() - started

        assert result.status.value == "completed", result.status
        spans = [line.split() for line in log.read_text().splitlines()]
        agent_s = sum((int(end) - int(start)) / 1e9 for start, end in spans)
    return {
        "streams": size,
        "wall_s": wall,
        "agents_s": agent_s,
        "agent_runs": len(spans),
        "overhead_per_stream_s": (wall - agent_s) / size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,8,32")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        runs = [run_size(size, args.concurrency) for _ in range(args.repeat)]
        row = dict(runs[0])
        row["overhead_per_stream_s"] = statistics.median(
            r["overhead_per_stream_s"] for r in runs
        )
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)

    print("| streams | wall (s) | agents' own time (s) | overhead per stream (s) |")
    print("|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['streams']} | {row['wall_s']:.2f} | {row['agents_s']:.3f} "
            f"| {row['overhead_per_stream_s']:.3f} |"
        )


if __name__ == "__main__":
    main()
