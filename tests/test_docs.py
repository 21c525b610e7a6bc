"""The documentation is the project's own.

- No file of the project names the specification files of the original codebases: they are not
  part of the project, so a clone would meet dangling references. The one exception: a test that
  reads such a file as test data, by its path into ../shared/spec (and skips when it is absent).
- Every docs/ page a file cites exists, and so does every section it cites: a number
  (`docs/tcaf.md 3.1`, `docs/protocol.md section 3`, `docs/clipclap.md §1.4`, a range `4-5`) is a
  numbered heading of that page, a quoted name (`docs/models.md "f-VAEGAN-D2"`) a heading's words.
- Every relative link of README.md and docs/*.md points at a file of the project.
"""
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# The original codebases' specification files (named here without their extension on purpose).
SPEC_FILES = ("PROTOCOL", "MODELS", "FEATURES", "RUN_SCRIPTS", "TCAF", "CLIPCLAP", "HSPMOE")
SPEC_NAME = re.compile(r"\b(%s)\.md\b" % "|".join(SPEC_FILES))
# A test's read of one as data: ROOT.parent / "shared" / "spec" / NAME, or ../shared/spec/NAME in its text.
DATA_READ = re.compile(r"""(["'])spec\1\s*/\s*(["'])(%s)\.md\2""" % "|".join(SPEC_FILES))
SPEC_PATH = re.compile(r"shared/spec/(%s)\.md\b" % "|".join(SPEC_FILES))
SKIP_DIRS = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", "runs"}

# A citation of a docs page: `docs/NAME.md` anywhere, a bare `NAME.md` inside docs/; then an optional
# section: a number or range after `section`, `§` or nothing, or a quoted heading name.
CITATION = re.compile(r"(?<![\w./-])(?P<docs>docs/)?(?P<page>[a-z][a-z0-9_]*)\.md(?:\]\([^)\s]*\))?")
SECTION_NUMBER = re.compile(r",?\s+(?:sections?\s+|§\s*)?(?P<a>\d+(?:\.\d+)?)(?:\s*[-–]\s*(?P<b>\d+(?:\.\d+)?))?")
SECTION_NAME = re.compile(r',?\s+\\?"(?P<name>[^"\\]+)\\?"')
HEADING = re.compile(r"^#{1,6}\s+(?P<text>.+?)\s*$", re.M)
LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")


def project_files():
    """The project's text files: what git lists (tracked, untracked but not ignored), else a walk."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
                              "--exclude-standard"], capture_output=True, check=True, timeout=60).stdout
        paths = [ROOT / n for n in sorted(set(out.decode().split("\0"))) if n]
    except (OSError, subprocess.SubprocessError):
        paths = list(ROOT.rglob("*"))
    for path in paths:
        rel = path.relative_to(ROOT)
        if SKIP_DIRS.intersection(rel.parts[:-1]) or not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue
        try:
            yield rel, data.decode("utf-8")
        except UnicodeDecodeError:
            continue


FILES = dict(project_files())


def test_no_file_names_a_specification_file():
    found = []
    for rel, text in FILES.items():
        read = {m.group(3) for m in DATA_READ.finditer(text)} if rel.parts[0] == "tests" else set()
        for n, line in enumerate(text.splitlines(), 1):
            allowed = {m.start(1) for m in SPEC_PATH.finditer(line) if m.group(1) in read}
            allowed |= {m.start(3) for m in DATA_READ.finditer(line) if m.group(3) in read}
            for m in SPEC_NAME.finditer(line):
                if m.start(1) not in allowed:
                    found.append(f"{rel}:{n}: {line.strip()[:120]}")
    assert not found, ("these lines name a file outside the project; cite the matching page of docs/ "
                       "instead (docs/protocol.md, docs/models.md, ...):\n" + "\n".join(found))


def headings(page: Path):
    """({section numbers}, [heading texts, lower case]) of a docs page."""
    texts = [m["text"] for m in HEADING.finditer(page.read_text(encoding="utf-8"))]
    numbers = {m.group(1) for t in texts for m in [re.match(r"(\d+(?:\.\d+)*)\.?\s", t)] if m}
    return numbers, [t.lower() for t in texts]


def cited_numbers(a: str, b):
    """The section numbers of `a` or of the range a-b (every whole number between for whole ones)."""
    if b is None:
        return [a]
    if a.isdigit() and b.isdigit():
        return [str(i) for i in range(int(a), int(b) + 1)]
    return [a, b]


def citations_in(rel: Path, text: str, pages_here):
    """(file:line, page name, section number or None, section name or None) of each docs citation."""
    in_docs = rel.parts[0] == "docs"
    for n, line in enumerate(text.splitlines(), 1):
        for m in CITATION.finditer(line):
            if not m["docs"] and not (in_docs and m["page"] in pages_here):
                continue
            where, rest = f"{rel}:{n}", line[m.end():]
            number, name = SECTION_NUMBER.match(rest), SECTION_NAME.match(rest)
            if number:
                for s in cited_numbers(number["a"], number["b"]):
                    yield where, m["page"], s, None
            elif name:
                yield where, m["page"], None, name["name"]
            else:
                yield where, m["page"], None, None


def citations():
    pages_here = {p.stem for p in DOCS.glob("*.md")}
    for rel, text in FILES.items():
        if rel != Path(__file__).resolve().relative_to(ROOT):     # this file's examples are not citations
            yield from citations_in(rel, text, pages_here)


def test_cited_pages_and_sections_exist():
    missing, cache = [], {}
    for where, page, number, name in citations():
        path = DOCS / f"{page}.md"
        if not path.is_file():
            missing.append(f"{where}: docs/{page}.md does not exist")
            continue
        numbers, texts = cache.setdefault(page, headings(path))
        if number is not None and number not in numbers:
            missing.append(f"{where}: docs/{page}.md has no section {number}")
        if name is not None and not any(name.lower() in t for t in texts):
            missing.append(f'{where}: docs/{page}.md has no heading "{name}"')
    assert not missing, "\n".join(missing)


def test_the_citation_forms_are_read():
    """The forms the project writes, so that the test above checks what it should."""
    line = ('(docs/tcaf.md 3.1) docs/protocol.md section 3, docs/clipclap.md §1.4, docs/clipclap.md 4-5; '
            'docs/models.md "f-VAEGAN-D2" docs/features.md, "Video: C3D" (docs/run_scripts.md) '
            'help="(docs/models.md \\"f-VAEGAN-D2\\")" [tcaf.md §1](tcaf.md)')
    got = [c[1:] for c in citations_in(Path("src/x.py"), line, {"tcaf"})]
    assert got == [("tcaf", "3.1", None), ("protocol", "3", None), ("clipclap", "1.4", None),
                   ("clipclap", "4", None), ("clipclap", "5", None), ("models", None, "f-VAEGAN-D2"),
                   ("features", None, "Video: C3D"), ("run_scripts", None, None), ("models", None, "f-VAEGAN-D2")]
    in_docs = [c[1:] for c in citations_in(Path("docs/x.md"), "see [tcaf.md §1](tcaf.md)", {"tcaf"})]
    assert in_docs == [("tcaf", "1", None), ("tcaf", None, None)]


@pytest.mark.parametrize("doc", ["README.md"] + sorted(f"docs/{p.name}" for p in DOCS.glob("*.md")))
def test_relative_links_point_at_files(doc):
    path = ROOT / doc
    broken = []
    for m in LINK.finditer(path.read_text(encoding="utf-8")):
        target = m["target"]
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue                                    # a URL, mailto:, or an anchor of the page itself
        if not (path.parent / target.split("#")[0]).resolve().exists():
            broken.append(target)
    assert not broken, f"{doc}: links to files that do not exist: {broken}"


def test_every_docs_page_is_linked_from_the_readme():
    readme = FILES.get(Path("README.md")) or (ROOT / "README.md").read_text(encoding="utf-8")
    unlinked = [p.name for p in DOCS.glob("*.md")
                if not re.search(r"\]\(docs/%s(#[^)]*)?\)" % re.escape(p.name), readme)]
    assert not unlinked, f"README.md does not link {unlinked}: add them to its Documentation list"
