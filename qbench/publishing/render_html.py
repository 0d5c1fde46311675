"""A static HTML site from the entries: one self-contained page per board (inline SVG plots, no network)."""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from qbench.publishing.coverage import Gap  # noqa: E402
from qbench.publishing.render_markdown import (  # noqa: E402
    accuracy_legend, attack_rows, board_rows, gap_line, leaders, pct, ranked, ranking_sentence, scoring_note, seeds_text,
    test_examples_text,
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
    # no date and a fixed id salt: the page must be a pure function of the entries; text kept as <text>
    # (not glyph paths): the pages stay small and searchable, and labels are not repeated as glyph runs
    with plt.rc_context({"svg.hashsalt": "qbench", "svg.fonttype": "none"}):
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
        measured = next(e for e in entries if e["worst_case"])  # one was drawn
        full = max(measured["worst_case"], key=lambda w: len(w["attacks"]))["epsilon"]
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


def html_table(headers: list[str], rows: list[list[str]], table_id: str = "", bold: int | None = None) -> str:
    """A plain HTML table (the first two columns left-aligned, ``bold`` the column to emphasise)."""
    esc = html.escape
    ident = f' id="{table_id}"' if table_id else ""
    head = "".join(f"<th{' class=l' if i in (1,) or h == 'flags' else ''}>{esc(h)}</th>" for i, h in enumerate(headers))
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            text = f"<b>{esc(value)}</b>" if i == bold else esc(value)
            cls = " class=l" if i in (0, 1) or headers[i] == "flags" else ""
            cells.append(f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table{ident}><tr>{head}</tr>{''.join(body)}</table>"


def board_html(board: str, entries: list[dict[str, Any]], curve_attacks: list[str], gap: Gap | None = None) -> str:
    """The HTML page of one board (with what is not computed on it, if anything)."""
    first = entries[0]
    esc = html.escape
    headers, rows = board_rows(entries)
    ranking = html_table(headers, rows, "ranking", bold=4)
    per_attack = "".join(
        f"<h3>{esc(e['defense']['name'])}</h3><p>Config: <code>{esc(str(e['defense']['config']))}</code></p>"
        + (f"<p>Not attacked: {esc(e['unmeasured'])}. Its entry holds the clean cells only.</p>" if e.get("unmeasured")
           else html_table(*attack_rows(e)))
        for e in ranked(entries)
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
{seeds_text(first['seeds'])}, {esc(test_examples_text(first))},
EOT-{first['protocol']['n_eot']} on stochastic models, ranking epsilon {first['epsilon']:.4g}.
{accuracy_legend(first['seeds'])} {esc(first['provenance'].get('data_notes', ''))}</p>
<p>{esc(ranking_sentence(first))}</p>
<p>{esc(scoring_note(entries))}</p>
{ranking}
{f'<p class="gap">{esc(gap_line(gap))}</p>' if gap else ''}
<h2>Robust accuracy vs epsilon</h2>
<div class="plots">{figures}</div>
<h2>Every attack, per defense</h2>
{per_attack}
</body></html>
"""


def index_html(boards: dict[str, list[dict[str, Any]]], gaps: Sequence[Gap] = ()) -> str:
    """The site's index: every board with its leader(s), then what the grid lacks (as the Markdown index)."""
    items = []
    esc = html.escape
    for board in sorted(boards):
        entries = boards[board]
        best = leaders(entries)
        if best:
            names = ", ".join(e["defense"]["name"] for e in best)
            who = names if len(best) == 1 else f"tied: {names}"
            value = pct(best[0]["robust"], False)
        else:
            who, value = "none (every entry is flagged unreliable)", "—"
        items.append(
            f"<tr><td class=l><a href='{esc(board)}.html'>{esc(entries[0]['track'])} · {esc(board)}</a></td>"
            f"<td class=l>{esc(who)}</td><td>{esc(value)}</td><td class=l>{esc(ranking_sentence(entries[0]))}</td></tr>"
        )
    missing = "".join(f"<li>{esc(g.track)} · {esc(g.board)}: {esc(g.describe())} "
                      f"(<code>{esc(g.command())}</code>)</li>" for g in gaps)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>qbench leaderboards</title><style>{STYLE}</style></head>
<body><!-- generated by `qbench leaderboard build`; do not edit by hand -->
<h1>qbench leaderboards</h1>
<p>Ranked by the expected accuracy of the deployed defense under the per-example worst case of the whole attack
suite (scoring v2); defenses not separated at 95% share a rank, unreliable entries are never named leaders.
What every number means: <a href="../../docs/protocol.md">docs/protocol.md</a>.</p>
<table><tr><th class=l>board</th><th class=l>leader</th><th>robust %</th><th class=l>what is ranked</th></tr>{''.join(items)}</table>
{f"<h2>Not computed yet</h2><ul>{missing}</ul>" if missing else ""}
</body></html>
"""
