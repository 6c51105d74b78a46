"""MkDocs hooks: the repository's README.md and CHANGELOG.md are pages of the site (its home page and the
changelog), so each text has one source, read the same on the forge and on the site.

Links are written for the repository (``docs/cli.md`` from the README, ``../README.md`` from a page in docs/) and
rewritten here to the site's pages; a link to anything that is not a page or a file of the site is left as it is,
so ``mkdocs build --strict`` reports it.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

# repository file -> page of the site
ROOT_PAGES = {"README.md": "index.md", "CHANGELOG.md": "changelog.md"}
DOCS_DIR = "docs"
# the target of an inline Markdown link or image: ](target) or ](target#anchor)
LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)\s#]+)(#[^)\s]*)?\)")


def on_files(files: Files, config: Any) -> Files:
    """Add the repository's root pages to the site."""
    root = Path(config.config_file_path).parent
    for source, page in ROOT_PAGES.items():
        files.append(File.generated(config, page, abs_src_path=str(root / source)))
    return files


def repository_path(site_page: str) -> str:
    """Where a page of the site lives in the repository."""
    for source, page in ROOT_PAGES.items():
        if page == site_page:
            return source
    return f"{DOCS_DIR}/{site_page}"


def site_path(repo_path: str) -> str | None:
    """The site's path of a repository file, or None when the site does not hold it."""
    if repo_path in ROOT_PAGES:
        return ROOT_PAGES[repo_path]
    if repo_path.startswith(f"{DOCS_DIR}/"):
        return repo_path[len(DOCS_DIR) + 1:]
    return None


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Rewrite the page's repository links to the site's paths."""
    page_dir = posixpath.dirname(repository_path(page.file.src_uri))
    site_dir = posixpath.dirname(page.file.src_uri)

    def rewrite(match: re.Match[str]) -> str:
        target, anchor = match.group(1), match.group(2) or ""
        on_site = site_path(posixpath.normpath(posixpath.join(page_dir, target)))
        if on_site is None:
            return match.group(0)
        return f"]({posixpath.relpath(on_site, site_dir or '.')}{anchor})"

    return LINK.sub(rewrite, markdown)
