"""The documentation lives in the repository: nothing points outside it, and every link
between its pages (and from the README) reaches a file that exists. The site itself is
built by CI (`mkdocs build --strict`)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: where users read: the package, its docs, examples, models, benchmarks and the README
READ = ["README.md", "mkdocs.yml", "pyproject.toml", "docs", "neurodyn", "experiments", "models", "benchmarks"]
TEXT = {".md", ".py", ".toml", ".yml", ".sh", ".txt", ".csv", ".json"}
#: references to the material this project was written from, which is not part of it
OUTSIDE = re.compile(r"\.\./shared|/work/|EQUATIONS\.md|DESIGN\.md|/home/|/root/|(?<![\w.~])/tmp/")


def _files():
    for entry in READ:
        path = ROOT / entry
        for f in [path] if path.is_file() else sorted(path.rglob("*")):
            if f.is_file() and f.suffix in TEXT and "__pycache__" not in f.parts and "site" not in f.relative_to(ROOT).parts[:1]:
                yield f


def test_nothing_refers_to_a_path_outside_the_repository():
    hits = []
    for f in _files():
        for i, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{f.relative_to(ROOT)}:{i}: {line.strip()[:100]}")
    assert not hits, "\n".join(hits)


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))])
def test_every_relative_link_reaches_a_file(page):
    path = ROOT / page
    broken = []
    for target in LINK.findall(path.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor on the same page
        if not (path.parent / target.split("#", 1)[0]).exists():
            broken.append(target)
    assert not broken, f"{page} links to missing files: {broken}"


def test_every_docs_page_is_in_the_site_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    missing = sorted(p for p in pages if p not in nav)
    assert not missing, f"pages not in mkdocs.yml's nav: {missing}"
