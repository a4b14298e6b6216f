"""The package's layers (docs/design.md, "Packages and layers"): a module imports from its own package
and from packages of a lower layer only, at load time and inside functions alike, and no import
cycle exists at all."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layers() -> dict[str, int]:
    """package -> layer, read from the design document's table."""
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    section = text[text.index("## Packages and layers"):]
    rows = re.findall(r"^\| `(dfkd[\w.]*)` \| (\d+) \|", section, re.M)
    return {name: int(layer) for name, layer in rows}


def _files() -> dict[str, Path]:
    """Dotted module name -> file, for the package and the generators/ folder it installs."""
    out = {}
    for p in sorted((ROOT / "dfkd").rglob("*.py")):
        rel = p.relative_to(ROOT)
        if any((ROOT / Path(*rel.parts[:i])).is_symlink() for i in range(1, len(rel.parts))):
            continue  # dfkd/generators -> generators/ in some checkouts
        parts = rel.with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    for p in sorted((ROOT / "generators").glob("*.py")):
        out["dfkd.generators" + ("" if p.stem == "__init__" else f".{p.stem}")] = p
    return out


def _imports(files: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the dfkd modules it imports anywhere in its file (inside functions too)."""
    graph = {}
    for module, path in files.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{module}: relative import (from {'.' * node.level}{node.module or ''})"
                if node.module and (node.module == "dfkd" or node.module.startswith("dfkd.")):
                    found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                              for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("dfkd.")}
        graph[module] = {m for m in found if m in files and m != module}
    return graph


def _package(module: str, layers: dict[str, int]) -> str:
    return max((p for p in layers if module == p or module.startswith(p + ".")), key=len)


def test_every_package_has_a_layer_and_imports_only_downwards():
    layers, files = _layers(), _files()
    assert {"dfkd.base", "dfkd.config", "dfkd.synthesis", "dfkd.run", "dfkd.cli"} <= set(layers)
    wrong = []
    for module, targets in _imports(files).items():
        mine = _package(module, layers)
        for t in targets:
            theirs = _package(t, layers)
            if theirs != mine and layers[theirs] >= layers[mine]:
                wrong.append(f"{module} ({mine}, layer {layers[mine]}) imports {t} (layer {layers[theirs]})")
    assert not wrong, "imports against the layers of docs/design.md:\n" + "\n".join(wrong)


def test_no_import_cycle_even_through_imports_inside_functions():
    files = _files()
    # a package's __init__ may import its own modules (registering them); they reach it by importing the package
    graph = {m: {t for t in ts if files[t].name != "__init__.py"} for m, ts in _imports(files).items()}
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n, stack + [n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert "dfkd.synthesis.schedule" in graph["dfkd.synthesis.synthesizers"]  # the check sees real edges


def test_the_layer_check_catches_an_upward_import(tmp_path, monkeypatch):
    """A lower layer importing a higher one inside a function is found."""
    files = _files()
    bad = tmp_path / "guard.py"
    bad.write_text(files["dfkd.objective.guard"].read_text() + "\n\ndef _x():\n    from dfkd.run.loop import Distiller\n")
    monkeypatch.setitem(globals(), "_files", lambda: {**files, "dfkd.objective.guard": bad})
    try:
        test_every_package_has_a_layer_and_imports_only_downwards()
    except AssertionError as e:
        assert "dfkd.objective.guard (dfkd.objective, layer 2) imports dfkd.run.loop (layer 5)" in str(e)
    else:
        raise AssertionError("the upward import was not found")
