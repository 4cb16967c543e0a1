"""The ``tack-action demo`` sample project and its scripted agent.

The demo builds a small Python package, ``textkit``, in a temporary git
repository and runs a three-stream objective on it with the scripted demo
agent in ``agent.py``: two independent streams and one that depends on both.
The counter stream's first attempt has a bug, so its quality gate fails once
and the fix loop repairs it in the same sandbox.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

AGENT_PATH = Path(__file__).with_name("agent.py")

OBJECTIVE = (
    "Add slugify and word-frequency helpers to textkit, and a command line "
    "interface that uses both"
)

_PLAN = """Here is the plan.

```yaml
streams:
  - title: Add slugify helper
    description: Add textkit.slug.slugify(text) joining lower-case words with hyphens.
    file_scope: [textkit/slug.py, tests/test_slug.py]
    dependencies: []
  - title: Add word frequency counter
    description: Add textkit.count.frequencies(text) counting words case-insensitively.
    file_scope: [textkit/count.py, tests/test_count.py]
    dependencies: []
  - title: Add command line interface
    description: Add textkit.cli.main(argv) printing the slug and the top word.
    file_scope: [textkit/cli.py, tests/test_cli.py]
    dependencies: [Add slugify helper, Add word frequency counter]
```
"""

_SLUG = '''"""Slugs for titles."""

import re


def slugify(text: str) -> str:
    """Return the lower-case words of ``text`` joined by hyphens."""
    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))
'''

_SLUG_TEST = """import unittest

from textkit.slug import slugify


class SlugifyTest(unittest.TestCase):
    def test_slugify_joins_words(self):
        self.assertEqual(slugify("Hello, World!"), "hello-world")
"""

# The first attempt forgets to lower-case, which the test catches.
_COUNT_BUGGY = '''"""Word frequencies."""

from collections import Counter

from textkit.words import words


def frequencies(text: str) -> Counter:
    """Count the words of ``text``, ignoring case."""
    return Counter(words(text))
'''

_COUNT = '''"""Word frequencies."""

from collections import Counter

from textkit.words import words


def frequencies(text: str) -> Counter:
    """Count the words of ``text``, ignoring case."""
    return Counter(word.lower() for word in words(text))
'''

_COUNT_TEST = """import unittest

from textkit.count import frequencies


class FrequenciesTest(unittest.TestCase):
    def test_frequencies_ignore_case(self):
        self.assertEqual(frequencies("The cat the hat")["the"], 2)
"""

_CLI = '''"""Command line entry point."""

import sys

from textkit.count import frequencies
from textkit.slug import slugify


def main(argv: list[str]) -> str:
    """Return the slug of the arguments and their most common word."""
    text = " ".join(argv)
    top, _ = frequencies(text).most_common(1)[0]
    return f"{slugify(text)} {top}"


if __name__ == "__main__":
    print(main(sys.argv[1:]))
'''

_CLI_TEST = """import unittest

from textkit.cli import main


class CliTest(unittest.TestCase):
    def test_main_prints_slug_and_top_word(self):
        self.assertEqual(main(["Big", "big", "day"]), "big-big-day big")
"""

SAMPLE_FILES = {
    "README.md": "# textkit\n\nA tiny text utility package for the tack-action demo.\n",
    ".gitignore": "__pycache__/\n",
    "textkit/__init__.py": '"""Small text helpers."""\n',
    "textkit/words.py": (
        '"""Splitting text into words."""\n\n\n'
        "def words(text: str) -> list[str]:\n"
        '    """Return the whitespace-separated words of ``text``."""\n'
        "    return text.split()\n"
    ),
    "tests/__init__.py": "",
    "tests/test_words.py": (
        "import unittest\n\nfrom textkit.words import words\n\n\n"
        "class WordsTest(unittest.TestCase):\n"
        "    def test_words_split_on_spaces(self):\n"
        '        self.assertEqual(words("a b"), ["a", "b"])\n'
    ),
}


def demo_script() -> dict:
    """Return the demo agent's script for the three demo streams."""
    return {
        "plan": _PLAN,
        "builders": {
            "add-slugify-helper": [
                {"files": {"textkit/slug.py": _SLUG, "tests/test_slug.py": _SLUG_TEST}}
            ],
            "add-word-frequency-counter": [
                {
                    "files": {
                        "textkit/count.py": _COUNT_BUGGY,
                        "tests/test_count.py": _COUNT_TEST,
                    },
                    "message": "Add word frequency counter",
                },
                {
                    "files": {"textkit/count.py": _COUNT},
                    "message": "Count words case-insensitively",
                },
            ],
            "add-command-line-interface": [
                {"files": {"textkit/cli.py": _CLI, "tests/test_cli.py": _CLI_TEST}}
            ],
        },
    }


def gate_command(python: str = sys.executable) -> str:
    return f"{python} -m unittest discover -s tests -t ."


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def write_repo(
    root: Path,
    files: dict[str, str],
    config: dict,
    *,
    name: str = "textkit",
) -> Path:
    """Create a git repository on ``main`` holding ``files`` and the config."""
    repo = root / name
    for path, content in files.items():
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    (repo / ".tack").mkdir(parents=True, exist_ok=True)
    (repo / ".tack" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    git(repo.parent, "init", "-q", "-b", "main", str(repo))
    git(repo, "add", "-A")
    git(
        repo,
        "-c",
        "user.name=tack-action demo",
        "-c",
        "user.email=demo@tack-action.invalid",
        "commit",
        "-q",
        "-m",
        "Initial textkit package",
    )
    return repo


def demo_config(root: Path, script_path: Path, *, python: str = sys.executable) -> dict:
    """Return the .tack/config.yaml contents for a demo repository under ``root``."""
    return {
        "sandbox": {"provider": "local", "worktree_dir": str(root / "sandboxes")},
        "agents": {
            "runtime": "command",
            "command": f"{python} {AGENT_PATH} --script {script_path}",
            "max_concurrent": 2,
            "stagger_delay_ms": 100,
        },
        "quality_gates": [gate_command(python)],
        "daemon": {"base_branch": "main"},
    }


def create_sample_repo(root: Path, script: dict | None = None) -> Path:
    """Create the demo repository and the agent script under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    script_path = root / "demo-script.json"
    script_path.write_text(json.dumps(script or demo_script(), indent=1))
    return write_repo(root, SAMPLE_FILES, demo_config(root, script_path))
