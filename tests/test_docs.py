"""The README and docs/ stay true: links resolve, configs validate, commands and options exist.

Everything here reads Markdown and asks nnctl's own tables (the config spec, the sweep file's
loader, each command's --help); nothing trains, so the whole file runs in about a second.
"""
from __future__ import annotations

import ast
import importlib
import re
import shlex
from functools import lru_cache
from pathlib import Path

import pytest
import yaml

from nnctl.config import load_config
from nnctl.config.spec import spec
from nnctl.sweep.spec import load_sweep

from .cli_helpers import cli

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```", re.M | re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
SHELL = ("bash", "sh", "shell", "console")
# keys the docs name on purpose as a mistake nnctl answers ("`training.lr` suggests ...")
NAMED_AS_MISTAKES = {"training.lr"}
FILE_SUFFIXES = {"npz", "onnx", "csv", "yaml", "json", "png", "html", "parquet"}


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _blocks(page: Path, *languages: str) -> list[str]:
    return [m.group(2) for m in FENCE.finditer(page.read_text()) if m.group(1) in languages]


def _prose(page: Path) -> str:
    return FENCE.sub("", page.read_text())


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to -."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", _prose(page), re.M)}


def test_there_are_pages_to_check():
    names = {p.name for p in PAGES}
    assert {"README.md", "config.md", "commands.md", "model-format.md"} <= names, names


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(_prose(page)):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.name}")
    assert not broken, f"{_rel(page)}: {broken}"


def _yaml_blocks():
    for page in PAGES:
        for i, text in enumerate(_blocks(page, "yaml", "yml")):
            yield pytest.param(page, text, id=f"{_rel(page)}-yaml{i}")


def _check_keys(mapping: dict, table: dict, prefix: str = "") -> list[str]:
    """Keys of a config fragment that the spec does not have (values are not checked)."""
    unknown = []
    for key, value in mapping.items():
        entry = table.get(key)
        if entry is None:
            unknown.append(prefix + str(key))
        elif isinstance(entry, dict) and isinstance(value, dict):
            unknown += _check_keys(value, entry, f"{prefix}{key}.")
    return unknown


@pytest.mark.parametrize("page, text", list(_yaml_blocks()))
def test_every_config_in_the_docs_is_valid(page, text, tmp_path):
    """A full config (it names data.path and data.target) loads as nnctl would load it; a sweep
    file loads as a sweep; a fragment only uses keys the config has."""
    raw = yaml.safe_load(text)
    assert isinstance(raw, dict), text
    if "config" in raw and "parameters" in raw:  # a sweep file, on a stand-in base config
        base = tmp_path / raw["config"]
        base.write_text("data: {path: data.csv, target: y}\n")
        (tmp_path / "sweep.yaml").write_text(text)
        load_sweep(tmp_path / "sweep.yaml")
    elif {"path", "target"} <= set(raw.get("data") or {}):
        (tmp_path / "config.yaml").write_text(text)
        load_config(tmp_path / "config.yaml")  # paths are not opened here, only checked as keys
    else:
        assert not _check_keys(raw, spec()), f"{_rel(page)}: unknown keys in\n{text}"


def _is_key(dotted: str) -> bool:
    entry = spec()
    for part in dotted.split("."):
        if isinstance(entry, dict) and part in entry:
            entry = entry[part]
        elif not isinstance(entry, dict) and part in _sub_keys(entry):
            entry = None
        else:
            return False
    return True


def _sub_keys(key) -> set[str]:
    subs = getattr(key, "sub", None) or {}
    names = set(subs)
    for own in subs.values():  # a schedule's sub-table is {schedule name: {key: Key}}
        if isinstance(own, dict):
            names |= set(own)
    return names | ({"name"} if names else set())


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_config_key_named_in_the_docs_exists(page):
    """`training.log_every` in prose or `--set model.layers=[32,16]` in a command is a real key."""
    text = page.read_text()
    named = set(re.findall(r"`((?:data|model|training)(?:\.[a-z_0-9]+)+)[`=]", text))
    named = {k for k in named if k.rpartition(".")[2] not in FILE_SUFFIXES} - NAMED_AS_MISTAKES  # `model.npz` is a file
    named |= set(re.findall(r"--set[ =]((?:data|model|training)(?:\.[a-z_0-9]+)+)=", text))
    unknown = sorted(k for k in named if not _is_key(k))
    assert not unknown, f"{_rel(page)} names keys the config does not have: {unknown}"


@lru_cache(maxsize=None)
def _help(command: str | None) -> str:
    result = cli(*([command] if command else []), "--help")
    assert result.exit_code == 0, (command, result.output)
    return result.stdout


@lru_cache(maxsize=None)
def _commands() -> set[str]:
    from typer.main import get_command

    from nnctl.cli import app

    return set(get_command(app).commands)


def _invocations(page: Path):
    """(line, words after `nnctl`) for each nnctl command in shell blocks, `$ nnctl` lines of
    output blocks, and inline code that starts with `nnctl ` (the commands table)."""
    lines = []
    for block in _blocks(page, *SHELL):
        lines += block.replace("\\\n", " ").splitlines()
    for block in _blocks(page, ""):
        lines += [line[2:] for line in block.splitlines() if line.startswith("$ nnctl")]
    lines += re.findall(r"`(nnctl [^`]+)`", _prose(page))
    for line in lines:
        line = re.sub(r"#.*", "", line) if not line.lstrip().startswith("#") else ""
        # usage notation ([--set K=V]...), substitutions and pipes become word breaks
        cleaned = re.sub(r"\[|\]|\.\.\.", " ", line)
        cleaned = re.sub(r"\$\(|<\(|\)|&&|\|\||[|;<>]", " ; ", cleaned)
        try:
            words = shlex.split(cleaned)
        except ValueError:
            words = cleaned.split()
        for i, word in enumerate(words):
            if word == "nnctl" and (i == 0 or words[i - 1] in (";", "--", "-m", "$")):
                rest = []
                for w in words[i + 1:]:
                    if w == ";":
                        break
                    rest.append(w)
                yield line.strip(), rest


def _shell_pages():
    return [p for p in PAGES if "nnctl " in p.read_text()]


@pytest.mark.parametrize("page", _shell_pages(), ids=_rel)
def test_every_nnctl_command_in_the_docs_exists_with_its_options(page):
    problems = []
    for line, words in _invocations(page):
        if not words:
            continue
        command = None if words[0].startswith("-") else words[0]
        if command is not None and command not in _commands():
            problems.append(f"{line}: no command `{command}`")
            continue
        for word in words[bool(command):]:
            option = word.split("=", 1)[0]
            if re.fullmatch(r"--?[A-Za-z][\w-]*", option) and not re.search(
                    rf"(?<![\w-]){re.escape(option)}(?![\w-])", _help(command)):
                problems.append(f"{line}: `nnctl {command or ''} --help` does not list {option}")
    assert not problems, f"{_rel(page)}:\n" + "\n".join(problems)


@pytest.mark.parametrize("page", _shell_pages(), ids=_rel)
def test_files_the_examples_run_on_exist(page):
    """configs/iris.yaml, datasets/iris.csv, benchmarks/bench.py: paths into this repository."""
    text = "\n".join(_blocks(page, *SHELL)) + "\n" + "\n".join(re.findall(r"`([^`]+)`", _prose(page)))
    named = set(re.findall(r"(?<![\w./-])((?:configs|datasets|benchmarks)/[\w./-]*\w)", text))
    # benchmarks/data/ is what the benchmarks generate (git-ignored): named, never shipped
    missing = sorted(p for p in named if not (ROOT / p).exists() and not p.startswith("benchmarks/data"))
    assert not missing, f"{_rel(page)} names files that are not in the repository: {missing}"


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p, "python")], ids=_rel)
def test_python_examples_parse_and_import_what_exists(page):
    for text in _blocks(page, "python"):
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nnctl"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{_rel(page)}: {node.module} has no {alias.name}"
    mentioned = re.findall(r"`(nnctl(?:\.\w+)+)\(", page.read_text())
    for dotted in mentioned:  # `nnctl.commands.train.resume_run(...)` in prose
        module, _, name = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), name), f"{_rel(page)}: no {dotted}"


def _test_command(text: str) -> str:
    return next(line for line in text.splitlines() if "python -m pytest" in line and not line.startswith("#")).strip()


def test_ci_runs_exactly_the_readmes_test_command():
    readme = _test_command("\n".join(_blocks(ROOT / "README.md", *SHELL)))
    assert readme == _test_command((ROOT / ".ci" / "run").read_text())
    assert '".[test]"' in readme  # the test extra alone must be enough


def test_the_test_extra_installs_what_the_tests_import():
    """Each third-party module the tests import (skipping or not) comes with `.[test]`; torch is
    the one left out on purpose (several GB; its one comparison skips without it), and the
    `bench` extra's table and peer packages, which only benchmarks/quality.py's smoke test asks
    for (by importorskip): CI does not need them."""
    text = (ROOT / "pyproject.toml").read_text()  # read by hand: tomllib is Python 3.11+, nnctl runs on 3.10
    lists = [re.search(rf"^{name} = \[(.*?)\]$", text, re.M | re.S).group(1) for name in ("dependencies", "test")]
    declared = re.findall(r'"([^"]+)"', "".join(re.sub(r"#.*", "", part) for part in lists))
    names = {re.split(r"[\[<>=!~ ]", d, maxsplit=1)[0].lower() for d in declared}
    module_to_package = {"sklearn": "scikit-learn", "yaml": "pyyaml", "onnxruntime": "onnxruntime"}
    imported = set()
    for test in (ROOT / "tests").glob("*.py"):
        imported |= set(re.findall(r"^\s*(?:import|from) ([a-z_]\w*)", test.read_text(), re.M))
        imported |= set(re.findall(r"importorskip\(\"([a-z_]\w*)", test.read_text()))
    import sys

    third_party = {m for m in imported if m not in sys.stdlib_module_names and m not in {"nnctl", "tests", "torch"}
                   and not (ROOT / "tests" / f"{m}.py").exists() and not (ROOT / "benchmarks" / f"{m}.py").exists()}
    bench = re.search(r"^bench = \[(.*?)\]$", text, re.M | re.S).group(1)
    names |= {re.split(r"[\[<>=!~ ]", d, maxsplit=1)[0].lower() for d in re.findall(r'"([^"]+)"', bench)}
    missing = sorted(m for m in third_party if module_to_package.get(m, m).replace("_", "-") not in names)
    assert not missing, f"the test extra lacks {missing} (pyproject.toml)"


def test_the_commands_page_lists_every_option_of_every_command():
    """docs/commands.md is the reference: each command has a row, and its row names every option
    `--help` lists (`--help` and `--debug`, which every command has, are said once below it)."""
    from typer.main import get_command

    from nnctl.cli import app

    rows = [line for line in (ROOT / "docs" / "commands.md").read_text().splitlines() if line.startswith("| `nnctl ")]
    missing = []
    for name, command in get_command(app).commands.items():
        row = " ".join(line.split("|")[1] for line in rows if line.startswith(f"| `nnctl {name} "))
        if not row:
            missing.append(f"{name}: no row")
            continue
        options = [opt for param in command.params if not getattr(param, "hidden", False)
                   for opt in param.opts if opt.startswith("--") and opt not in ("--help", "--debug")]
        missing += [f"{name} {opt}" for opt in options if not re.search(rf"{re.escape(opt)}(?![\w-])", row)]
    assert not missing, f"docs/commands.md's table lacks: {missing}"
