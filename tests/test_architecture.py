"""The dependency direction written in ARCHITECTURE.md, held by reading every import."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nnctl"
BASE = {"errors", "resources", "atomic", "jsonfmt", "npzfile", "__init__", "__version__"}
LOWER = {"base", "nn", "config", "data", "runs", "training"}
ALLOWED = {
    "nn": set(),
    "base": {"base"},
    "config": {"nn", "base"},
    "data": {"base"},
    "runs": {"nn", "data", "base"},
    "training": {"nn", "config", "data", "runs", "base"},
    "commands": LOWER | {"commands"},
    "ui": LOWER | {"ui", "sweep"},
    "report": LOWER | {"report", "ui"},
    "sweep": LOWER | {"commands", "sweep"},
    "serving": LOWER | {"commands", "serving"},
    "tracking": LOWER | {"commands", "sweep", "tracking"},
    "cli": LOWER | {"commands", "ui", "report", "sweep", "serving", "tracking"},
}


def part_of(module: str) -> str:
    """'nnctl.nn.network' -> 'nn'; 'nnctl.errors' -> 'base'; 'nnctl.cli' -> 'cli'."""
    parts = module.split(".")
    if len(parts) == 1:
        return "base"  # `from nnctl import __version__`
    head = parts[1]
    if head in BASE:
        return "base"
    return "cli" if head in ("cli", "__main__") else head


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def imports_of(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every nnctl import in a module's source, lazy ones
    included; relative imports are resolved against `module`."""
    package = module if is_package else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            names = [name] if node.module else [f"{name}.{a.name}" for a in node.names]
            found += [(node.lineno, n) for n in names if n.split(".")[0] == "nnctl"]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "nnctl"]
    return found


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    own = part_of(module)
    return [f"line {line}: {name} ({part_of(name)})" for line, name in imports_of(source, module, is_package)
            if part_of(name) != own and part_of(name) not in ALLOWED[own]]


def modules():
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_architecture(path):
    module = module_name(path)
    wrong = violations(path.read_text(), module, path.name == "__init__.py")
    assert not wrong, f"{part_of(module)} may import only {sorted(ALLOWED[part_of(module)])}: " + "; ".join(wrong)


def test_a_wrong_import_is_caught_even_inside_a_function():
    source = "from .losses import LOSSES\n\ndef f():\n    from ..config import load_config\n"
    assert violations(source, "nnctl.nn.network") == ["line 4: nnctl.config (config)"]
    assert violations("from ..cli import app\n", "nnctl.commands.train") == ["line 1: nnctl.cli (cli)"]
    assert violations("import nnctl.ui.printing\n", "nnctl.training.loop") == ["line 1: nnctl.ui.printing (ui)"]
    assert violations("from . import __version__\n", "nnctl.runs", is_package=True) == []


def test_the_math_core_needs_only_numpy_and_the_standard_library():
    import sys

    for path in (PACKAGE / "nn").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                roots = [(node.module or "").split(".")[0]]
            else:
                continue
            for root in roots:
                assert root == "numpy" or root in sys.stdlib_module_names, f"{path.name} imports {root}"


def test_every_part_is_in_the_table():
    parts = {part_of(module_name(p)) for p in modules()}
    assert parts <= set(ALLOWED), parts - set(ALLOWED)


def test_architecture_md_lists_every_part():
    text = (PACKAGE.parent / "ARCHITECTURE.md").read_text()
    for part in ALLOWED:
        if part not in ("base", "cli"):
            assert f"`{part}/`" in text, part
