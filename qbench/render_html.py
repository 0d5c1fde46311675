"""A static HTML site from the entries: one self-contained page per board (inline SVG plots, no network)."""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from qbench.coverage import Gap  # noqa: E402
from qbench.render_markdown import (  # noqa: E402
    accuracy_legend, gap_line, pct, ranked, scoring_note, seeds_text, strict_clean,
)

STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f2f2f2}td.l,th.l{text-align:left}.flag{color:#b00020}.plots{display:flex;flex-wrap:wrap;gap:1em}
figure{margin:0}figcaption{font-size:13px;color:#555}
"""


def figure_svg(fig) -> str:
    """A matplotlib figure as inline SVG text, deterministic (no date, fixed id salt); closes the figure."""
    buf = io.StringIO()
    # no date and a fixed id salt: the page must be a pure function of the entries
    with plt.rc_context({"svg.hashsalt": "qbench"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def robustness_plot(entries: list[dict[str, Any]], attack: str | None = None) -> str | None:
    """Robust accuracy vs epsilon per defense: the worst case (``attack=None``) or one attack's curve."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    drawn = False
    for e in ranked(entries):
        if attack is None:
            points = sorted((w["epsilon"], w["robust"]["mean"], w["robust"]["ci_low"], w["robust"]["ci_high"])
                            for w in e["worst_case"])
        else:
            points = sorted((a["epsilon"], a["robust"]["mean"], a["robust"]["ci_low"], a["robust"]["ci_high"])
                            for a in e["attacks"] if a["attack"] == attack and a["status"] == "ok")
        if 0.0 not in [p[0] for p in points]:
            points.insert(0, (0.0, e["clean"]["mean"], e["clean"]["ci_low"], e["clean"]["ci_high"]))
        if len(points) < 2:
            continue
        eps, mean, low, high = zip(*points)
        ax.plot(eps, [100 * m for m in mean], marker="o", label=e["defense"]["name"])
        ax.fill_between(eps, [100 * v for v in low], [100 * v for v in high], alpha=0.15)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("epsilon (L-inf)")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(0, 100)
    if attack is None:
        full = max(entries[0]["worst_case"], key=lambda w: len(w["attacks"]))["epsilon"]
        ax.set_title(f"worst case: whole suite at ε = {full:g}, curve attacks elsewhere", fontsize=9)
    else:
        ax.set_title(attack)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure_svg(fig)


def crosstalk_plot(entries: list[dict[str, Any]]) -> str | None:
    """QNAD's validation curve: accuracy under attack vs crosstalk level (first seed of each qnad entry)."""
    curves = []
    for e in entries:
        for info in e["training"]["defense_info"][:1]:
            if info.get("validation_curve"):
                curves.append((e["defense"]["name"], info["validation_curve"], info.get("level")))
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for name, curve, chosen in curves:
        ax.plot([100 * p["level"] for p in curve], [100 * p["accuracy"] for p in curve], marker="o", label=name)
        if chosen is not None:
            ax.axvline(100 * chosen, linestyle="--", alpha=0.5)
    ax.set_xlabel("crosstalk level (% of weights selected)")
    ax.set_ylabel("validation accuracy under FGSM (%)")
    ax.set_title("QNAD crosstalk sweep (validation split)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure_svg(fig)


def board_html(board: str, entries: list[dict[str, Any]], curve_attacks: list[str], gap: Gap | None = None) -> str:
    """The HTML page of one board (with what is not computed on it, if anything)."""
    first = entries[0]
    esc = html.escape
    rows = []
    for rank, e in enumerate(ranked(entries), start=1):
        paper = e.get("paper_protocol")
        flags = "; ".join(e["flags"]["reasons"]) if e["flags"]["unreliable"] else ""
        cost = e["training"]["relative_cost"]
        rows.append(
            f"<tr><td>{rank}</td><td class=l>{esc(e['defense']['name'])}</td><td>{esc(pct(e['clean']))}</td>"
            f"<td>{esc(pct(strict_clean(e), with_ci=False))}</td>"
            f"<td><b>{esc(pct(e['robust']))}</b></td><td>{esc(pct(paper['robust']) if paper else '—')}</td>"
            f"<td>{'—' if cost is None else f'{cost:.1f}x'}</td><td class='l flag'>{esc(flags)}</td></tr>"
        )
    plots = [robustness_plot(entries)] + [robustness_plot(entries, a) for a in curve_attacks] + [crosstalk_plot(entries)]
    figures = "".join(f"<figure>{svg}</figure>" for svg in plots if svg)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>qbench · {esc(board)}</title><style>{STYLE}</style></head>
<body>
<!-- generated by `qbench leaderboard build` from the JSON entries; do not edit by hand -->
<p><a href="index.html">all boards</a></p>
<h1>{esc(first['track'])} · {esc(board)}</h1>
<p>Dataset <code>{esc(first['dataset']['name'])}</code>, model <code>{esc(first['model']['name'])}</code>,
{seeds_text(first['seeds'])}, the first {first['n_test']} test examples,
EOT-{first['protocol']['n_eot']} on stochastic models, ranking epsilon {first['epsilon']:.4g}.
{accuracy_legend(first['seeds'])} {esc(first['provenance'].get('data_notes', ''))}</p>
<p>{esc(scoring_note(entries))}</p>
<table id="ranking"><tr><th>#</th><th class=l>defense</th><th>clean</th><th>clean, all {first['protocol']['n_repeat']} right</th><th>robust (worst case)</th>
<th>paper protocol</th><th>training cost</th><th class=l>flags</th></tr>
{''.join(rows)}
</table>
{f'<p class="gap">{esc(gap_line(gap))}</p>' if gap else ''}
<h2>Robust accuracy vs epsilon</h2>
<div class="plots">{figures}</div>
</body></html>
"""


def index_html(boards: dict[str, list[dict[str, Any]]], gaps: Sequence[Gap] = ()) -> str:
    """The site's index: every board with its leader, then what the grid lacks (as the Markdown index)."""
    items = []
    for board in sorted(boards):
        top = ranked(boards[board])[0]
        flag = " <span class=flag>(unreliable)</span>" if top["flags"]["unreliable"] else ""
        items.append(
            f"<tr><td class=l><a href='{html.escape(board)}.html'>{html.escape(top['track'])} · {html.escape(board)}</a></td>"
            f"<td class=l>{html.escape(top['defense']['name'])}{flag}</td><td>{html.escape(pct(top['robust'], False))}</td></tr>"
        )
    missing = "".join(f"<li>{html.escape(g.track)} · {html.escape(g.board)}: {html.escape(g.describe())} "
                      f"(<code>{html.escape(g.command())}</code>)</li>" for g in gaps)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>qbench leaderboards</title><style>{STYLE}</style></head>
<body><!-- generated by `qbench leaderboard build`; do not edit by hand -->
<h1>qbench leaderboards</h1>
<table><tr><th class=l>board</th><th class=l>leader</th><th>robust %</th></tr>{''.join(items)}</table>
{f"<h2>Not computed yet</h2><ul>{missing}</ul>" if missing else ""}
</body></html>
"""
