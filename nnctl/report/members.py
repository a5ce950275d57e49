"""The report's "The members" section of an ensemble run (`model.ensemble: K`): each member's
validation score alone against the ensemble's, and how much the members disagree row by row,
from metrics.json's `members` (commands/members.py)."""
from __future__ import annotations

import math
from html import escape

from ..ui.fmt import format_number

from .rundata import RunData
from .svg import counted_histogram, strip_chart


def _num(v) -> str:
    return "—" if not isinstance(v, (int, float)) or not math.isfinite(v) else escape(format_number(v))


def members_section(run: RunData) -> str:
    """The section, or '' for a run of one member (or one trained before it was recorded)."""
    found = run.metrics.get("members")
    if not isinstance(found, dict) or not isinstance(found.get("scores"), list) or not found["scores"]:
        return ""
    scores, ensemble = found["scores"], found.get("ensemble") or {}
    names = [k for k in scores[0] if all(isinstance(s.get(k), (int, float)) for s in scores)]
    if not names:
        return ""
    main = names[0]  # accuracy or r2: the run's metric
    values = [s[main] for s in scores]
    finite = [v for v in values if math.isfinite(v)] or [0.0]
    mean = sum(finite) / len(finite)
    std = math.sqrt(sum((v - mean) ** 2 for v in finite) / len(finite))
    chart = strip_chart(list(range(len(values))), values, f"each member's validation {main}", "member", main,
                        mean, std)
    rows = "".join(f"<tr><td>member {i}</td>" + "".join(f"<td>{_num(s.get(n))}</td>" for n in names) + "</tr>"
                   for i, s in enumerate(scores))
    rows += "<tr><td><b>ensemble (the mean)</b></td>" + "".join(f"<td><b>{_num(ensemble.get(n))}</b></td>"
                                                               for n in names) + "</tr>"
    table = ("<table><thead><tr><th></th>" + "".join(f"<th>{escape(n)}</th>" for n in names)
             + f"</tr></thead><tbody>{rows}</tbody></table>")
    said = (f"The {len(scores)} members scored alone on the validation part ({_num(found.get('rows'))} rows), "
            f"against their mean, the model's prediction (uncalibrated, so that all compare alike): "
            f"members' {escape(main)} {_num(mean)} ± {_num(std)}, the ensemble's {_num(ensemble.get(main))}.")
    return f"<h2>The members</h2><p class=muted>{said}</p><div class=\"grid2 top\">{chart}<div>{table}</div></div>" \
        + _spread(found.get("row_spread"))


def _spread(spread) -> str:
    if not isinstance(spread, dict) or not isinstance(spread.get("histogram"), dict):
        return ""
    h, q = spread["histogram"], spread.get("quantiles") or {}
    of = escape(str(spread.get("of", "the prediction")))
    chart = counted_histogram(h["low"], h["high"], h["counts"], "members' disagreement per row",
                              f"std over the members of {spread.get('of', 'the prediction')}")
    cells = "".join(f"<tr><td>{escape(name)}</td><td>{_num(q.get(key))}</td></tr>"
                    for name, key in (("min", "0.0"), ("10%", "0.1"), ("median", "0.5"), ("90%", "0.9"),
                                      ("max", "1.0")))
    said = (f"How much the members disagree on each validation row: the std over the members of {of} "
            f"(mean {_num(spread.get('mean'))}). <code>predict --spread</code> gives it for any table; rows where the "
            "members disagree are the ones to doubt.")
    return (f"<p class=muted>{said}</p><div class=\"grid2 top\">{chart}<div><table><thead><tr><th>rows</th>"
            f"<th>spread</th></tr></thead><tbody>{cells}</tbody></table></div></div>")
