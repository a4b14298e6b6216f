"""The documentation keeps up with the code: every module is in the README's Layout, and every file
the package cites exists in the repository."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layout() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Layout\n")
    return readme[start:readme.index("\n## ", start + 1)]


def _modules() -> list[Path]:
    """Every module of the package (its subpackages' too) and of generators/, but the __init__ files."""
    dfkd = [p for p in sorted((ROOT / "dfkd").rglob("*.py")) if not _linked(p)]
    return [p for p in dfkd + sorted((ROOT / "generators").glob("*.py")) if p.name != "__init__.py"]


def _linked(path: Path) -> bool:
    """A file reached through a link into the package (dfkd/generators -> generators/ in some checkouts)."""
    rel = path.relative_to(ROOT)
    return any((ROOT / Path(*rel.parts[:i])).is_symlink() for i in range(1, len(rel.parts)))


def test_every_module_is_listed_in_the_readme_layout():
    layout = _layout()
    missing = []
    for p in _modules():
        rel = p.relative_to(ROOT).as_posix()
        if rel in layout:
            continue
        # a folder line may list its files by name: "dfkd/models/   ... cnn.py, lenet.py"
        folder_line = re.search(rf"^\s+{re.escape(p.parent.relative_to(ROOT).as_posix())}/\s.*?(?=^\s+\S+/|\Z)",
                                layout, re.M | re.S)
        if folder_line is None or p.name not in folder_line.group(0):
            missing.append(rel)
    assert not missing, f"modules missing from the README's Layout: {missing}"


def test_the_design_doc_the_code_cites_is_in_the_repository():
    cited = set()  # design documents: docs/*.md and upper-case names such as DESIGN.md
    for p in [*_modules(), ROOT / "dfkd" / "__init__.py"]:
        cited |= set(re.findall(r"\bdocs/[\w\-]+\.md\b|\b[A-Z][A-Z_]+\.md\b", p.read_text(encoding="utf-8")))
    assert "docs/design.md" in cited
    for name in cited:
        assert (ROOT / name).is_file(), f"{name} is cited by the code but not in the repository"
    assert "[docs/design.md](docs/design.md)" in _layout()
