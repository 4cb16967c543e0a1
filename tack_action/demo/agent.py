"""tack-action demo agent: a scripted stand-in for a coding agent.

It makes no model calls. It reads a JSON script and, for the role and stream
in its environment, prints the planner's answer, writes a builder's files or
prints a reviewer's verdict. Only the Python standard library is used, so it
runs in any sandbox that has python3.

Script keys (all optional):
  plan      the planner's final answer (text holding the fenced YAML block)
  builders  {slug: [attempt, ...]}: the Nth run of a stream's builder uses
            attempt N, and the last attempt repeats
  guided    {slug: attempt}: used when the prompt carries human guidance
  reviews   {slug: ["approve" | "changes_requested", ...]} by review number
An attempt is {"files": {path: content}, "delete": [path], "exit": int,
"sleep": seconds, "message": commit message, "save_prompt": path}; with
save_prompt the builder also writes its prompt to that path.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def _count_run(role: str, slug: str) -> int:
    """Return how many times this role ran before in this sandbox, and count one."""
    counter = Path(os.environ.get("TMPDIR", "/tmp")) / f"demo-agent-{role}-{slug}.count"
    runs = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(runs + 1))
    return runs


def _plan(script: dict) -> int:
    print("read README.md")
    print("$ git ls-files")
    print(script.get("plan", "No plan was scripted."))
    return 0


def _build(script: dict, slug: str, prompt: str) -> int:
    attempts = script.get("builders", {}).get(slug) or [{}]
    runs = _count_run("builder", slug)
    attempt = attempts[min(runs, len(attempts) - 1)]
    if "## Human guidance" in prompt and slug in script.get("guided", {}):
        attempt = script["guided"][slug]
    if "## Fix context" in prompt:
        print("read fix context from the previous attempt")

    time.sleep(float(attempt.get("sleep", 0)))
    for path, content in attempt.get("files", {}).items():
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        print(f"edit {path}", flush=True)
    if attempt.get("save_prompt"):
        Path(attempt["save_prompt"]).write_text(prompt)
        print(f"edit {attempt['save_prompt']}", flush=True)
    for path in attempt.get("delete", []):
        Path(path).unlink(missing_ok=True)
        print(f"edit {path} (deleted)", flush=True)

    message = attempt.get("message") or f"Implement {slug}"
    print("TACK_MESSAGES:" + json.dumps({"commit_message": message}))
    print(f"TACK_DONE:{message}")
    return int(attempt.get("exit", 0))


def _review(script: dict, slug: str) -> int:
    verdicts = script.get("reviews", {}).get(slug) or ["approve"]
    runs = _count_run("reviewer", slug)
    verdict = verdicts[min(runs, len(verdicts) - 1)]
    print("$ git diff")
    reasons = ["the change matches the stream description and stays in scope"]
    if verdict != "approve":
        reasons = ["scripted rejection: please revise the change"]
    print("TACK_REVIEW:" + json.dumps({"verdict": verdict, "reasons": reasons}))
    return 0


def _write_pr(script: dict) -> int:
    pull = script.get("pull_request", {})
    title = pull.get("title", "Apply the planned streams")
    body = pull.get(
        "body",
        "## Summary\n\nScripted by the demo agent.\n\n## Testing\n\nGates passed.",
    )
    print("$ git diff --stat")
    print("TACK_MESSAGES:" + json.dumps({"pr_title": title, "pr_body": body}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--script", required=True, help="path of the JSON script")
    args = parser.parse_args(argv)

    script = json.loads(Path(args.script).read_text())
    role = os.environ.get("TACK_AGENT_ROLE", "builder")
    slug = os.environ.get("TACK_STREAM_SLUG", "")
    prompt_file = os.environ.get("TACK_PROMPT_FILE", "")
    prompt = Path(prompt_file).read_text() if prompt_file else ""

    if role == "planner":
        return _plan(script)
    if role == "reviewer":
        return _review(script, slug)
    if role == "pr-writer":
        return _write_pr(script)
    return _build(script, slug, prompt)


if __name__ == "__main__":
    sys.exit(main())
