"""The documentation's shape: a short README that opens with its two commands,
and relative links that lead to files of the checkout."""
import re
from pathlib import Path
from urllib.parse import unquote

import pytest


def _checkout_root():
    """The folder holding setup.py, above this file (wherever the tests folder puts it)."""
    for folder in Path(__file__).resolve().parents:
        if (folder / "setup.py").is_file():
            return folder
    raise RuntimeError(f"no setup.py above {__file__}")


ROOT = _checkout_root()
README = ROOT / "README.md"

#: The most lines the root README may have: details belong in the linked documents.
MAX_README_LINES = 150

#: Markdown documents whose relative links must lead to files that exist.
LINKED_DOCUMENTS = [
    README,
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "benchmarks" / "README.md",
    ROOT / "recipes" / "VoxCeleb" / "SpeakerRec" / "README.md",
]

#: Inline links and images, [text](target) or ![alt](target "title"); code spans are removed first.
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
#: Reference definitions, [label]: target.
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)


def relative_link_targets(text):
    """The relative targets (no scheme, no pure #anchor) of the markdown links in
    ``text``, without their #anchor or ?query; links inside code are not links."""
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.MULTILINE | re.DOTALL)
    text = re.sub(r"(`+)(?:(?!\1).)+?\1", "", text, flags=re.DOTALL)
    targets = _LINK.findall(text) + _REFERENCE.findall(text)
    relative = []
    for target in targets:
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith(("#", "//")):
            continue  # http:, https:, mailto:, ... and anchors within the page
        relative.append(unquote(re.split(r"[#?]", target, maxsplit=1)[0]))
    return relative


def test_relative_link_targets_finds_links_and_skips_code_and_urls():
    text = (
        "See [usage](docs/usage.md#batch), ![plot](a.png \"t\") and [site](https://x.org).\n"
        "`[not](code.md)` [anchor](#here)\n"
        "```\n[fenced](nope.md)\n```\n"
        "[ref]: ../x%20y.md\n"
    )
    assert relative_link_targets(text) == ["docs/usage.md", "a.png", "../x y.md"]


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines (at most {MAX_README_LINES}): move details to docs/, "
        "benchmarks/README.md or the recipe's README")


def test_readme_opens_with_make_demo_and_make_test():
    lines = [line for line in README.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert lines[0].startswith("# "), "README.md starts with its title"
    assert lines[1].startswith("```"), "the first thing after the title is the two-command block"
    assert lines[2].split("#")[0].split() == ["make", "demo"], lines[2]
    assert lines[3].split("#")[0].split() == ["make", "test"], lines[3]
    assert lines[4].strip() == "```", "the block holds exactly the two commands"


@pytest.mark.parametrize("document", LINKED_DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(document):
    assert document.is_file(), f"{document.relative_to(ROOT)} is missing"
    missing = [
        target for target in relative_link_targets(document.read_text(encoding="utf-8"))
        if target and not (document.parent / target).exists()
    ]
    assert not missing, f"{document.relative_to(ROOT)} links to files that do not exist: {missing}"
