"""The documentation: the README stays a short guide, the pages state current facts, and the site builds."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

# History ("round 3", "issue 10") belongs in CHANGELOG.md, not in pages that describe the product as it is.
HISTORY = re.compile(r"\b(round|issue)[ -]\d+", re.IGNORECASE)


def current_pages() -> list[Path]:
    pages = sorted((REPO_ROOT / "docs").glob("*.md"))
    return [REPO_ROOT / "README.md", *pages]


def test_the_readme_is_a_guide_read_in_minutes() -> None:
    lines = (REPO_ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines: move reference material to docs/"


def test_readme_and_docs_speak_of_current_facts() -> None:
    found = {page.name: HISTORY.findall(page.read_text()) for page in current_pages()}
    assert not {name: words for name, words in found.items() if words}


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """``mkdocs build --strict`` as CI runs it: a broken link, image or anchor fails; README is the home page."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO_ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr
    home = (tmp_path / "site" / "index.html").read_text()
    assert "Your own footage" in home and 'href="cli/"' in home  # README's docs/cli.md link, rewritten


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    """The check can fail: the same build over a copy whose README links to a page that does not exist."""
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("mkdocs.yml", "CHANGELOG.md", "scripts/mkdocs_hooks.py"):
        (copy / name).parent.mkdir(exist_ok=True)
        shutil.copy2(REPO_ROOT / name, copy / name)
    shutil.copytree(REPO_ROOT / "docs", copy / "docs")
    (copy / "README.md").write_text((REPO_ROOT / "README.md").read_text() + "\n[gone](docs/no-such-page.md)\n")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=copy, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode != 0 and "no-such-page.md" in result.stderr
