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
    return [p for folder in ("dfkd", "dfkd/models", "generators") for p in sorted((ROOT / folder).glob("*.py"))
            if p.name != "__init__.py"]


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


def _imports(path: Path, module: str) -> set[str]:
    """The dfkd modules `module` imports at load time (top-level statements, not inside functions)."""
    import ast

    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("dfkd")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            if not base.startswith("dfkd"):
                continue
            out |= {f"{base}.{a.name}" for a in node.names} | {base}
    return out


def test_no_import_cycle_between_the_package_modules():
    files = {}
    for p in _modules():
        rel = p.relative_to(ROOT).with_suffix("")
        parts = ("dfkd", "generators", *rel.parts[1:]) if rel.parts[0] == "generators" else rel.parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        files[name] = p
    graph = {m: {i for i in _imports(p, m) if i in files and i != m and not files[i].name == "__init__.py"}
             for m, p in files.items()}
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for n in graph[m]:
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n, stack + [n])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])
    assert "dfkd.schedule" in graph and "dfkd.synthesizers" in graph["dfkd.schedules"]
