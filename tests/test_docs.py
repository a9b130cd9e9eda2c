"""The product page the code cites is in the repository, with every section the citations name."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "product-page.md"
CITING = [ROOT / "README.md", *(ROOT / "hf_resnet101").rglob("*.py"), *(ROOT / "recipes").rglob("*.yaml")]


def anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")


def test_every_cited_section_of_the_product_page_exists():
    anchors = {anchor(line.lstrip("#")) for line in PAGE.read_text().splitlines() if line.startswith("#")}
    cited = {
        (path.relative_to(ROOT), section)
        for path in CITING
        for section in re.findall(r"docs/product-page\.md#([\w-]+)", path.read_text())
    }
    assert cited, "the code cites the page by section"
    missing = sorted(f"{path}: #{section}" for path, section in cited if section not in anchors)
    assert not missing, "sections cited but not in docs/product-page.md:\n" + "\n".join(missing)


def test_the_code_cites_no_page_a_reader_cannot_open():
    vague = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in CITING
        if path.suffix == ".py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\bthe page\b|\(page:", line)
    ]
    assert not vague, "cite docs/product-page.md instead of 'the page':\n" + "\n".join(vague)


def test_the_tiers_table_matches_the_presets():
    from hf_resnet101.config.presets import TIERS_BY_NAME

    rows = {row.split("|")[1].strip(): row for row in PAGE.read_text().splitlines() if row.startswith("| ")}
    for name, learning_rate in (("small", "2e-5"), ("medium", "5e-5"), ("large", "1e-4")):
        assert f"| {learning_rate} |" in rows[name]
        assert f"{TIERS_BY_NAME[name].learning_rate:.0e}".replace("e-0", "e-") == learning_rate
