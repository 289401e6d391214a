"""bench/results.json, bench/results.md and the PNG charts."""

import json

from bench.common import BENCH_DIR


def _fmt(value, unit="") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}" if abs(value) < 1000 else f"{value:.0f}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


def _ratio(row) -> str:
    ratio = row["ratio"]
    if ratio is None:
        return "-"
    if ratio < 0.5 and row["unit"] in ("ms", "s"):
        return f"{ratio:.4f} ({1 / ratio:.0f}x faster)"
    return f"{ratio:.3f}"


def suffix(document: dict) -> str:
    """The full run of every row owns results.{json,md} and the charts; quick and --only runs get their own
    files (results-quick.*, results-partial.*, results-quick-partial.*) so they never overwrite it."""
    parts = []
    if document["mode"] != "full":
        parts.append(document["mode"])
    if document.get("only"):
        parts.append("partial")
    return "".join(f"-{p}" for p in parts)


def write(document: dict) -> str:
    tag = suffix(document)
    (BENCH_DIR / f"results{tag}.json").write_text(json.dumps(document, indent=2, default=str))
    m = document["machine"]
    only = f" (rows {', '.join(document['only'])} only)" if document.get("only") else ""
    lines = [
        f"# Benchmark results ({document['mode']}{only})",
        "",
        f"Date {document['date']}; machine: {m['cpu_count']} CPUs, `{m['uname']}`, Python {m['python']}; "
        f"took {document['seconds']} s. Ratio = ours / comparison (lower is better for times, higher for "
        "throughput). Medians unless the row says otherwise; `reps` is the repetition count of each row "
        "(\"a vs b\": ours vs the comparison). A row that could not run says why in the `ours` column.",
        "",
        "| row | ours | comparison | ratio | target | met? | reps |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in document["rows"]:
        met = {True: "yes", False: "**no**", None: "-"}[row["met"]]
        ours = _fmt(row["ours"], row["unit"]) if row["ours"] is not None else (row.get("note") or "-")
        comparison = (f"{_fmt(row['comparison'], row['unit'])} ({row['comparison_name']})"
                      if row["comparison"] is not None else row["comparison_name"] or "-")
        lines.append(f"| {row['row']} | {ours} | {comparison} | {_ratio(row)} | {row['target'] or '-'} | {met} "
                     f"| {row['reps'] or '-'} |")
    notes = [r for r in document["rows"] if r.get("note") and r["ours"] is not None]
    if notes:
        lines += ["", "Notes:"] + [f"- {r['row']}: {r['note']}" for r in notes]
    if document.get("extra"):
        lines += ["", "Extra:", "```", json.dumps(document["extra"], indent=1, default=str), "```"]
    if document.get("row_seconds"):
        lines += ["", "Seconds per row: " + ", ".join(f"{k} {v:.0f}" for k, v in document["row_seconds"].items())]
    (BENCH_DIR / f"results{tag}.md").write_text("\n".join(lines) + "\n")
    try:
        _charts(document, tag)
    except Exception as error:  # charts are a view of the json; never lose the json for them
        print(f"charts failed: {error!r}")
    return tag


def _charts(document: dict, tag: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latency = document["latency_chart"]
    if latency:
        labels = list(latency)
        values = [latency[k] for k in labels]
        fig, ax = plt.subplots(figsize=(10, 0.45 * len(labels) + 1.5))
        colors = ["tab:green" if "memory hit" in k or "floor" in k else "tab:blue" if "disk" in k
                  else "tab:orange" if "cold" in k else "tab:red" for k in labels]
        ax.barh(labels, values, color=colors)
        ax.set_xscale("log")
        ax.invert_yaxis()
        ax.set_xlabel("p50 latency, ms (log scale)")
        ax.set_title(f"Latency per tier ({document['mode']} run, {document['date'][:10]})")
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:,.1f} ms", va="center", fontsize=8)
        fig.tight_layout()
        fig.savefig(BENCH_DIR / f"latency_per_tier{tag}.png", dpi=110)
        plt.close(fig)
    throughput = document["throughput_chart"]
    if throughput:
        cases = list(dict.fromkeys(c for c, _, _ in throughput))
        methods = list(dict.fromkeys(m for _, m, _ in throughput))
        fig, ax = plt.subplots(figsize=(9, 4.5))
        width = 0.8 / len(methods)
        for i, method in enumerate(methods):
            xs, ys = [], []
            for j, case in enumerate(cases):
                for c, m, v in throughput:
                    if c == case and m == method:
                        xs.append(j + i * width)
                        ys.append(v)
            bars = ax.bar(xs, ys, width, label=method)
            ax.bar_label(bars, fmt="%.0f", fontsize=8)
        ax.set_xticks([j + width * (len(methods) - 1) / 2 for j in range(len(cases))], cases)
        ax.set_ylabel("MB/s (archive bytes / wall time, download + extract)")
        ax.set_title("Cold fetch throughput: ours vs ranged SDK, one streamed GET, fsspec")
        ax.legend()
        fig.tight_layout()
        fig.savefig(BENCH_DIR / f"cold_fetch_throughput{tag}.png", dpi=110)
        plt.close(fig)
