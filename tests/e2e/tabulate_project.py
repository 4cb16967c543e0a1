"""The real project under test: tabulate 0.9.0 from its PyPI source distribution.

The feature request asks for a ``dotted`` table format. The scripted agent
makes the change in two streams: the format itself in ``tabulate/__init__.py``,
then a test in ``test/test_output.py`` and the README section, which depend on
the format. Each builder writes whole files, computed here from the pristine
sources, so the edits are real edits to tabulate's own code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tack_action.demo import AGENT_PATH

from ..helpers import git, plan_text

VERSION = "0.9.0"
SDIST = f"tabulate-{VERSION}.tar.gz"

FORMAT_TITLE = "Add dotted table format"
FORMAT_SLUG = "add-dotted-table-format"
DOCS_TITLE = "Document dotted format"
DOCS_SLUG = "document-dotted-format"
FORMAT_MESSAGE = "Add the dotted table format"
DOCS_MESSAGE = "Test and document the dotted table format"

ISSUE_TITLE = "Add a `dotted` table format"
ISSUE_BODY = """\
I print reports to a thermal printer that renders `-` as a solid bar, and the
receipts look heavy. Could tabulate get a `dotted` table format? It would be
the `simple` format with its rules drawn with `.` characters:

```
strings      numbers
.........  .........
spam         41.9999
eggs        451
```

It should work with `tablefmt="dotted"`, appear in `tabulate_formats`, have a
test next to the other output tests, and be listed and shown in the README.
"""

_DOTTED_FORMAT = """\
    "dotted": TableFormat(
        lineabove=Line("", ".", "  ", ""),
        linebelowheader=Line("", ".", "  ", ""),
        linebetweenrows=None,
        linebelow=Line("", ".", "  ", ""),
        headerrow=DataRow("", "  ", ""),
        datarow=DataRow("", "  ", ""),
        padding=0,
        with_header_hide=["lineabove", "linebelow"],
    ),
"""

_DOTTED_TEST = """

def test_dotted():
    "Output: dotted with headers"
    expected = "\\n".join(
        [
            "strings      numbers",
            ".........  .........",
            "spam         41.9999",
            "eggs        451",
        ]
    )
    result = tabulate(_test_table, _test_table_headers, tablefmt="dotted")
    assert_equal(expected, result)
"""

_DOTTED_README = """\
`dotted` is like `simple`, with its rules drawn with dots:

```pycon
>>> print(tabulate(table, headers, tablefmt="dotted"))
item      qty
......  .....
spam       42
eggs      451
bacon       0
```

"""


def fetch_sdist(directory: Path) -> Path:
    """Download the tabulate sdist with pip, or skip (fail under CI) if it fails."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps"]
    command += ["--no-binary", ":all:", f"tabulate=={VERSION}", "-d", str(directory)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    path = directory / SDIST
    if result.returncode == 0 and path.is_file():
        return path
    message = (
        f"downloading tabulate=={VERSION} from PyPI failed (exit "
        f"{result.returncode}); the end-to-end tests need it:\n"
        f"{result.stdout[-1500:]}{result.stderr[-1500:]}"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def unpack_sdist(sdist: Path, root: Path) -> Path:
    """Unpack the sdist under ``root`` and return the project directory."""
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as archive:
        archive.extractall(root, filter="data")
    return root / f"tabulate-{VERSION}"


def gate_command(python: str = sys.executable) -> str:
    """Return tabulate's output tests, the fastest part of its suite, as a gate."""
    return f"{python} -m pytest -q -p no:cacheprovider test/test_output.py"


def edited_files(project: Path) -> dict[str, dict[str, str]]:
    """Return, per stream slug, the whole new contents of the files it edits."""
    module = (project / "tabulate" / "__init__.py").read_text()
    anchor = '    "plain": TableFormat('
    assert module.count(anchor) == 1, "tabulate/__init__.py changed shape"
    module = module.replace(anchor, _DOTTED_FORMAT + anchor)
    multiline = '    "simple": "simple",\n'
    assert module.count(multiline) == 1, "multiline_formats changed shape"
    module = module.replace(multiline, multiline + '    "dotted": "dotted",\n')

    tests = (project / "test" / "test_output.py").read_text()
    tests = tests.rstrip("\n") + "\n" + _DOTTED_TEST

    readme = (project / "README.md").read_text()
    listed = '-   "simple"\n'
    assert readme.count(listed) == 1, "the README format list changed shape"
    readme = readme.replace(listed, listed + '-   "dotted"\n')
    section = "`github` follows the conventions"
    assert readme.count(section) == 1, "the README format sections changed shape"
    readme = readme.replace(section, _DOTTED_README + section)

    return {
        FORMAT_SLUG: {"tabulate/__init__.py": module},
        DOCS_SLUG: {"test/test_output.py": tests, "README.md": readme},
    }


def agent_script(project: Path, *, slow_docs_s: float = 0) -> dict:
    """Return the scripted agent's plan, builds and pull request text.

    With ``slow_docs_s`` the first build of the docs stream sleeps that long
    first, so a test can stop the job once every sandbox exists; the next
    build in the same sandbox writes the same files at once.
    """
    files = edited_files(project)
    plan = plan_text(
        [
            {
                "title": FORMAT_TITLE,
                "description": "Add a 'dotted' TableFormat like 'simple', with "
                "rules drawn with '.', and list it in multiline_formats.",
                "file_scope": ["tabulate/__init__.py"],
                "dependencies": [],
            },
            {
                "title": DOCS_TITLE,
                "description": "Add test_dotted to test/test_output.py and list "
                "and show the dotted format in README.md.",
                "file_scope": ["test/test_output.py", "README.md"],
                "dependencies": [FORMAT_TITLE],
            },
        ]
    )
    docs_build = {"files": files[DOCS_SLUG], "message": DOCS_MESSAGE}
    docs_builds = [docs_build]
    if slow_docs_s:
        docs_builds = [{**docs_build, "sleep": slow_docs_s}, docs_build]
    return {
        "plan": plan,
        "builders": {
            FORMAT_SLUG: [{"files": files[FORMAT_SLUG], "message": FORMAT_MESSAGE}],
            DOCS_SLUG: docs_builds,
        },
        "pull_request": {
            "title": "Add a dotted table format",
            "body": '## Summary\n\nAdds `tablefmt="dotted"`, a test and README '
            "docs.\n\n## Testing\n\n`pytest test/test_output.py` passes.",
        },
    }


def tack_config(script_path: Path, daytona_api_url: str) -> dict:
    """Return the .tack/config.yaml for tabulate on the fake Daytona server."""
    python = sys.executable
    return {
        "sandbox": {"provider": "daytona", "daytona": {"api_url": daytona_api_url}},
        "agents": {
            "runtime": "command",
            "command": f"{python} {AGENT_PATH} --script {script_path}",
            "max_concurrent": 2,
            "stagger_delay_ms": 0,
        },
        "quality_gates": [gate_command(python)],
        "daemon": {"base_branch": "main"},
    }


def make_repository(project: Path, config_text: str) -> Path:
    """Commit the unpacked project and its .tack config on ``main``."""
    (project / ".tack").mkdir(exist_ok=True)
    (project / ".tack" / "config.yaml").write_text(config_text)
    git(project.parent, "init", "-q", "-b", "main", str(project))
    git(project, "add", "-A")
    # tabulate's .gitignore ignores every dotfile, so the config is forced in.
    git(project, "add", "-f", ".tack/config.yaml")
    identity = ["-c", "user.name=e2e", "-c", "user.email=e2e@tack-action.invalid"]
    git(project, *identity, "commit", "-q", "-m", f"Import tabulate {VERSION}")
    return project
