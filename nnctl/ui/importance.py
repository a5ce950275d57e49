"""`nnctl explain`'s table: one row per original column, most relied on first, with a bar."""
from __future__ import annotations

from .fmt import format_number
from .printing import _console

BAR = 24  # characters of the longest bar


def print_importance(result: dict) -> None:
    """The importance table on stdout (it is the command's data), its title saying what was
    measured: the method, the metric (or the output differentiated), rows, repeats and seed."""
    from rich.table import Table

    if "targets" in result:  # several targets: one table each, its title naming the target
        for name, own in result["targets"].items():
            shared = {k: v for k, v in result.items() if k != "targets"}
            print_importance({**shared, **own, "target": name})
        return
    if result["method"] == "permutation":
        title = f"permutation importance: drop in {result['metric']} (baseline {format_number(result['baseline'])})"
        if "target" in result:
            title = f"{result['target']}: {title}"
        caption = f"{result['rows']} rows · {result['repeats']} repeats · seed {result['seed']}"
    else:
        title = f"gradient × input: {result['output']}"
        caption = f"{result['rows']} rows · std is the spread over the rows"
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for name, justify in (("column", "left"), ("importance", "right"), ("std", "right"), ("", "left")):
        table.add_column(name, justify=justify)
    peak = max((abs(c["importance"]) for c in result["columns"]), default=0.0) or 1.0
    for c in result["columns"]:
        bar = "█" * round(BAR * max(c["importance"], 0.0) / peak)
        table.add_row(c["column"], format_number(c["importance"]), format_number(c["std"]), bar)
    _console().print(table)
