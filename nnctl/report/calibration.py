"""The report's calibration section: Brier score, ECE, the temperature, and the reliability
diagram, from metrics.json's `reliability` (written by `nnctl train`, see training/calibration.py)."""
from __future__ import annotations

from html import escape

from ..errors import NnctlError
from ..runs.folder import DAMAGED
from ..ui.fmt import format_number
from .rundata import RunData
from .svg import TOP, _Axes, _svg


def reliability_diagram(bins: dict, title: str) -> str:
    """Each non-empty confidence bin as a bar up to its accuracy, a dot at its mean confidence,
    its row count above it, and the diagonal a calibrated model's bars would reach."""
    axes = _Axes([0.0, 1.0], [0.0, 1.0], y_from_zero=True)
    body = axes.frame("confidence of the predicted class", "accuracy")
    body.append(f'<line class="reference" x1="{axes.px(0):.1f}" y1="{axes.py(0):.1f}" '
                f'x2="{axes.px(1):.1f}" y2="{axes.py(1):.1f}"/>')
    for lower, upper, n, confidence, accuracy in zip(bins["lower"], bins["upper"], bins["count"],
                                                      bins["confidence"], bins["accuracy"]):
        if not n or accuracy is None or confidence is None:
            continue
        x0, x1, top = axes.px(lower), axes.px(upper), axes.py(accuracy)
        body.append(f'<rect class="mark bar" x="{x0 + 0.5:.1f}" y="{top:.1f}" width="{max(x1 - x0 - 1, 0.5):.1f}" '
                    f'height="{axes.py(0) - top:.1f}"><title>confidence {lower:.3f} to {upper:.3f}: {n} rows, '
                    f'mean confidence {confidence:.3f}, accuracy {accuracy:.3f}</title></rect>')
        body.append(f'<circle class="mark s1" cx="{axes.px(confidence):.1f}" cy="{axes.py(confidence):.1f}" r="2.5"/>')
        body.append(f'<text class="tick" x="{(x0 + x1) / 2:.1f}" y="{max(top - 4, TOP + 10):.1f}" '
                    f'text-anchor="middle">{n}</text>')
    legend = ('<figcaption>bars: accuracy per bin (its rows above it) · dots: the bin\'s mean confidence · '
              'dotted: perfect calibration</figcaption>')
    return f'<figure class="chart"><div class="ctitle">{escape(title)}</div>{_svg(body, title)}{legend}</figure>'


BIN_FIELDS = ("lower", "upper", "count", "confidence", "accuracy")


def _checked_bins(bins, run: RunData) -> dict:
    """The bins as `nnctl train` writes them: five lists of one length, of numbers (or null for
    an empty bin's means); an NnctlError naming metrics.json otherwise."""
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    lists = [bins.get(name) for name in BIN_FIELDS] if isinstance(bins, dict) else []
    if len(lists) != len(BIN_FIELDS) or not all(isinstance(v, list) and len(v) == len(lists[0]) for v in lists) \
            or not all(number(v) for v in lists[0] + lists[1] + lists[2]) \
            or not all(v is None or number(v) for v in lists[3] + lists[4]):
        raise NnctlError("metrics.json's `reliability.bins` is not what nnctl writes there",
                         str(run.path / "metrics.json"), DAMAGED)
    return bins


def calibration_section(run: RunData) -> str:
    """'' for a regression, or a run from before nnctl kept its reliability bins."""
    reliability = run.metrics.get("reliability")
    if run.task != "classification" or not isinstance(reliability, dict) or "bins" not in reliability:
        return ""
    part, bins = reliability.get("part", "validation"), _checked_bins(reliability["bins"], run)
    said = (f"On the {escape(str(part))} part ({reliability.get('rows')} rows): Brier score "
            f"{format_number(reliability.get('brier'))}, expected calibration error (ECE) "
            f"{format_number(reliability.get('ece'))} over {reliability.get('n_bins', len(bins['count']))} "
            "equal-width bins of the predicted class's probability.")
    calibration = run.metrics.get("calibration")
    if isinstance(calibration, dict) and "temperature" in calibration:
        said += (f" Temperature scaling: T = {format_number(calibration['temperature'])}, fitted on the validation "
                 f"part (its log loss {format_number(calibration.get('val_log_loss_before'))} → "
                 f"{format_number(calibration.get('val_log_loss_after'))}); these probabilities are the calibrated ones.")
        if isinstance(calibration.get("note"), str):
            said += f" Note: {escape(calibration['note'])}."
    else:
        said += " Not calibrated (training.calibration: none)."
    chart = reliability_diagram(bins, f"reliability diagram ({part})")
    # auto-fill, not grid2's auto-fit: a lone chart keeps a half-width cell instead of stretching
    # to the page's width, where its labels and counts grow past the frame
    one = 'style="grid-template-columns: repeat(auto-fill, minmax(460px, 1fr))"'
    return f'<h2>Calibration</h2><p class=muted>{said}</p><div class="grid2" {one}>{chart}</div>'

