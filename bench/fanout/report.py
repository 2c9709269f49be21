"""Turn a results dict into console lines, a Markdown page and a PNG plot."""

from __future__ import annotations

from pathlib import Path

ORDER = ["ours", "documents", "collab"]
MB = 1024 * 1024


def _fmt_s(x: float | None) -> str:
    return "-" if x is None else (f"{x:.2f} s" if x < 10 else f"{x:.1f} s")


def outcome(r: dict) -> str:
    """Short text for one scenario's time column."""
    if "error" in r:
        return "error"
    n = r["watchers"]
    if r["all_complete"]:
        return f"{_fmt_s(r['seconds'])} ({r['seconds'] / floor_of(r):.1f}x)"
    if r["reason"] == "timeout":
        progress = min(r["text_len"], r["expected_len"]) / r["expected_len"] * 100
        return (
            f"timeout {r['waited']:.0f} s ({r['complete']}/{n} complete, median watcher "
            f"at {progress:.0f}% of the text)"
        )
    k = r.get("kernel") or {}
    if k and not k.get("equal", True):
        return (
            f"not equal ({r['complete']}/{n} complete; the kernel's own output was incomplete too)"
        )
    return f"not equal ({r['complete']}/{n} complete)"


def floor_of(r: dict) -> float:
    """The floor a scenario is compared with: when its own kernel stamped the cell's last
    output (the message header's date; same machine, same clock), else when that output
    reached a raw ZMQ subscriber in the same run (later when the subscriber waits for a
    core), else the standalone floor."""
    k = r.get("kernel") or {}
    return k.get("published_seconds") or k.get("seconds") or r["floor"]


def one_line(r: dict) -> str:
    if "error" in r:
        return f"ERROR {r['error']}"
    k = r.get("kernel") or {}
    kern = f"kernel {k['seconds']:.2f} s, " if k.get("seconds") else "kernel not observed, "
    if k.get("published_seconds"):
        kern = f"kernel stamped {k['published_seconds']:.2f} s, received {k['seconds']:.2f} s, "
    return (
        f"{outcome(r)}; {kern}{watchers_note(r)}server CPU {r['server_cpu']:.2f} s, kernel CPU {r['kernel_cpu']:.2f} s, "
        f"client CPU {r['client_cpu']:.2f} s, peak RSS {r['peak_rss'] / MB:.0f} MB, "
        f"{r['messages']:.0f} msgs/watcher, text {r['text_len']}/{r['expected_len']} chars"
        + (
            f", tail {r['tail'][-40:]!r}, first difference at char {r['first_diff']}, "
            f"lengths seen {r['text_lens'][:5]}, a watcher joining afterwards sees "
            f"{r.get('fresh_join')}"
            if r["tail"]
            else ""
        )
    )


def watchers_note(r: dict) -> str:
    """The full and raw watchers' last completion, and the clients' floor of the run."""
    kinds = r.get("by_kind") or {}
    parts = [
        f"{k} {g['complete']}/{g['watchers']} last {_fmt_s(g['last_seconds'])}"
        for k, g in kinds.items()
    ]
    c = r.get("completion") or {}
    if c and not c.get("agree", True):
        parts.append("the full watchers got DIFFERENT updates")
    f = r.get("clients_floor") or {}
    if "seconds" in f:
        parts.append(
            f"clients' floor {f['seconds'] * 1000:.0f} ms ({f['wire_bytes'] / 1000:.0f} kB)"
        )
    return (", ".join(parts) + "; ") if parts else ""


def idle_line(r: dict) -> str:
    if "error" in r:
        return f"ERROR {r['error']}"
    parts = [
        f"{p['viewers']} viewers: {p['rss_per_viewer'] / 1024:.0f} kB and "
        f"{p['fds_per_viewer']:.2f} fds per viewer"
        + (
            f" (joined in {p['connect_seconds']:.1f} s, "
            f"{p['join_cpu_per_viewer'] * 1000:.1f} ms server CPU per joining viewer)"
            if "connect_seconds" in p
            else ""
        )
        for p in r["points"]
    ]
    a = r.get("awareness")
    if a:
        parts.append(
            f"awareness at {a['viewers']}: {a['server_cpu_per_s'] * 1000:.0f} ms server "
            f"CPU per s, {a['frames_per_viewer_per_s']:.1f} frames/viewer/s"
        )
    return "; ".join(parts)


def _by(results: dict) -> dict:
    return {(r["pattern"], r["watchers"], r["server"]): r for r in results["scenarios"]}


def _servers(results: dict) -> list[str]:
    present = {r["server"] for r in results["scenarios"]} | set(results["servers"])
    return [k for k in ORDER if k in present]


def _label(results: dict, key: str) -> str:
    return results["servers"].get(key, {}).get("label", key)


def markdown(results: dict) -> str:
    by = _by(results)
    servers = _servers(results)
    patterns = list(results["patterns"])
    counts = sorted({r["watchers"] for r in results["scenarios"]})
    m = results["machine"]
    out: list[str] = []
    w = out.append
    w("# Benchmarks\n")
    w(
        "Written by `make bench` (bench/fanout_bench.py; see bench/README.md). "
        f"Run of {results['started']}{' (quick)' if results['quick'] else ''}, "
        f"{results.get('minutes', 0):.1f} min, on {m['cpus']} CPUs / {m['memory_gb']} GB, "
        f"Python {m['python']}, load average {m['load_before'][0]:.2f} before and "
        f"{m['load_after'][0]:.2f} after. The machine is shared: compare ratios, not absolutes.\n"
    )
    w(
        "Each scenario starts a fresh server (its own virtual environment, loopback port, temp "
        "root), opens one notebook with N watchers (y-websocket clients holding a pycrdt Doc, "
        "as browser tabs do), runs a warm-up cell, then asks the server to execute the benchmark "
        "cell server-side. **Time** is from the execute request until the last watcher's "
        "document holds the cell's stdout byte for byte (for `\\r` progress: the rendered final "
        "line, as a terminal shows it). The **floor** is what a raw `jupyter_client` sees of the "
        "same cell straight from the kernel (median of its runs). A watcher's text is the "
        "concatenation of the cell's stdout stream outputs.\n"
    )
    w("Patterns:\n")
    for key, p in results["patterns"].items():
        f = results["floor"][key]
        w(
            f"- **{p['label']}** ({p['expected_bytes']} bytes of output): floor "
            f"{f['seconds']:.2f} s, {f['messages']:.0f} stream messages from the kernel."
        )
    w("")

    w("## Seconds until every watcher's document is complete (x floor)\n")
    head = ["pattern", "watchers", "floor (standalone)"] + [_label(results, s) for s in servers]
    peers = [s for s in servers if s != "ours"]
    if "ours" in servers:
        head += [f"ours vs {_label(results, s)}" for s in peers]
    w("| " + " | ".join(head) + " |")
    w("|" + "---|" * len(head))
    for p in patterns:
        for n in counts:
            row = [
                results["patterns"][p]["label"],
                str(n),
                f"{results['floor'][p]['seconds']:.2f} s",
            ]
            for s in servers:
                r = by.get((p, n, s))
                row.append(outcome(r) if r else "-")
            if "ours" in servers:
                ours = by.get((p, n, "ours"))
                for s in peers:
                    r = by.get((p, n, s))
                    row.append(_ratio(ours, r, "seconds"))
            w("| " + " | ".join(row) + " |")
    w("")
    w(
        "In each server's column, *(N x)* is the time divided by that scenario's own floor: "
        "when the kernel, in the same run, stamped the cell's last output message (its "
        "header's date; runs before Dec 2026: when a raw ZMQ subscriber on the kernel received "
        "it, which is later when that subscriber waits for a core; the standalone floor is "
        "shown for reference). The goal is at most 1.25x. Most watchers are raw readers, "
        "a few hold a pycrdt document (bench/README.md, `--full-watchers`). "
        "Ratios are ours / peer (below 1 is faster). A peer that never shows the expected text "
        "is reported as *not equal* (with how many watchers did); one still behind after the "
        "timeout as *timeout*.\n"
    )

    w("## Server cost per scenario\n")
    w(
        "The load average column is the machine's 1-minute load when the cell was started: on "
        "2 cores, anything above 2 means processes (server, kernel, watchers) waited for a CPU, "
        "which stretches wall times but not CPU seconds. "
    )
    w(
        "Server CPU: the server process only (kernel excluded), from the execute request until "
        "the watchers went quiet. Kernel CPU: the server's child processes. Client CPU: the "
        "watcher processes of this benchmark (so readers see where time goes). Messages and kB "
        "are per watcher, from the execute request until its document was complete.\n"
    )
    head = [
        "pattern",
        "watchers",
        "server",
        "time",
        "floor in run",
        "server CPU s",
        "kernel CPU s",
        "client CPU s",
        "peak RSS MB",
        "messages / watcher",
        "kB / watcher",
        "complete",
        "load avg",
    ]
    w("| " + " | ".join(head) + " |")
    w("|" + "---|" * len(head))
    for p in patterns:
        for n in counts:
            for s in servers:
                r = by.get((p, n, s))
                if not r:
                    continue
                if "error" in r:
                    w(
                        f"| {results['patterns'][p]['label']} | {n} | {_label(results, s)} | "
                        f"error: {' '.join(r['error'].split())[:80]} |" + " |" * 9
                    )
                    continue
                w(
                    "| "
                    + " | ".join(
                        [
                            results["patterns"][p]["label"],
                            str(n),
                            _label(results, s),
                            outcome(r),
                            _fmt_s(floor_of(r)),
                            f"{r['server_cpu']:.2f}",
                            f"{r['kernel_cpu']:.2f}",
                            f"{r['client_cpu']:.2f}",
                            f"{r['peak_rss'] / MB:.0f}",
                            f"{r['messages']:.0f}",
                            f"{r['bytes_per_watcher'] / 1024:.0f}",
                            f"{r['complete']}/{n}",
                            f"{r.get('load', 0):.1f}",
                        ]
                    )
                    + " |"
                )
    w("")
    if "ours" in servers and peers:
        w(
            "Server CPU, ours / peer: "
            + "; ".join(
                f"{_label(results, s)}: "
                + ", ".join(
                    f"{results['patterns'][p]['label']} x{n} {_ratio(by.get((p, n, 'ours')), by.get((p, n, s)), 'server_cpu')}"
                    for p in patterns
                    for n in counts
                )
                for s in peers
            )
            + ".\n"
        )

    if results["idle"]:
        w("## Idle viewers\n")
        w(
            "Viewers connected to one notebook, each with a JupyterLab-like awareness state; "
            "memory and descriptors are the server's growth over one viewer, per added viewer. "
            "Awareness: every viewer renews its state every 15 s (random phase), as browsers do; "
            "CPU is the server's, per second of wall time.\n"
        )
        vcounts = sorted({p["viewers"] for r in results["idle"] for p in r.get("points", [])})
        head = (
            ["server"]
            + [f"RSS / viewer ({v})" for v in vcounts]
            + [f"fds / viewer ({v})" for v in vcounts]
            + ["awareness: server CPU per s", "frames / viewer / s"]
        )
        w("| " + " | ".join(head) + " |")
        w("|" + "---|" * len(head))
        for r in sorted(results["idle"], key=lambda r: ORDER.index(r["server"])):
            if "error" in r:
                w(
                    f"| {_label(results, r['server'])} | error: {' '.join(r['error'].split())[:80]} |"
                )
                continue
            pts = {p["viewers"]: p for p in r["points"]}
            row = [_label(results, r["server"])]
            row += [
                f"{pts[v]['rss_per_viewer'] / 1024:.0f} kB" if v in pts else "-" for v in vcounts
            ]
            row += [f"{pts[v]['fds_per_viewer']:.2f}" if v in pts else "-" for v in vcounts]
            a = r.get("awareness") or {}
            row += [
                f"{a.get('server_cpu_per_s', 0) * 1000:.0f} ms ({a.get('viewers', '?')} viewers)",
                f"{a.get('frames_per_viewer_per_s', 0):.1f}",
            ]
            w("| " + " | ".join(row) + " |")
        w("")

    unequal = [r for r in results["scenarios"] if "error" not in r and not r["all_complete"]]
    if unequal:
        w("## Documents that did not match\n")
        w(
            "What the watchers held when the scenario ended, and what a watcher joining "
            "afterwards saw (a wrong document on the server, rather than updates lost on the "
            "way, shows there too).\n"
        )
        for r in unequal:
            fresh = r.get("fresh_join") or {}
            diff = r.get("first_diff") or []
            w(
                f"- {_label(results, r['server'])}, {results['patterns'][r['pattern']]['label']}, "
                f"{r['watchers']} watchers: {r['reason']} after {r['waited']:.1f} s; "
                f"{r['complete']}/{r['watchers']} complete; text lengths "
                f"{', '.join(map(str, r.get('text_lens', [r['text_len']])[:4]))} "
                f"for {r['expected_len']} expected"
                + (f", first difference at character {diff[0]}" if diff else "")
                + (
                    f"; a new watcher saw {fresh.get('text_len')} characters "
                    f"({'equal' if fresh.get('equal') else 'not equal'})"
                    if fresh
                    else ""
                )
                + (f"; last characters {r['tail'][-24:]!r}" if r.get("tail") else "")
                + _kernel_note(r)
                + "."
            )
        w("")

    errors = [r for r in results["scenarios"] + results["idle"] if "error" in r]
    if errors:
        w("## Errors\n")
        for r in errors:
            where = f"{r['server']}" + (
                f", {r['pattern']} x{r['watchers']}" if "pattern" in r else ", idle viewers"
            )
            w(f"- {where}: `{' '.join(r['error'].split())[:300]}`")
        w("")

    w("## Versions\n")
    for s in servers:
        v = results["servers"].get(s, {}).get("versions", {})
        w(f"- {_label(results, s)}: " + ", ".join(f"{k} {x}" for k, x in v.items()))
    w("")
    return "\n".join(out)


def _kernel_note(r: dict) -> str:
    k = r.get("kernel") or {}
    if not k or k.get("equal", True):
        return ""
    note = (
        f"; the raw IOPub subscriber on the same kernel also saw incomplete output "
        f"({k.get('messages')} stream messages"
    )
    if "text_len" in k:
        note += f", {k['text_len']} characters"
    if k.get("stray_messages"):
        note += (
            f"; {k['stray_messages']} stdout message(s) came under another parent "
            f"{k.get('stray_parents')}"
        )
    return note + ")"


def _ratio(ours: dict | None, peer: dict | None, field: str) -> str:
    if not ours or not peer or "error" in ours or "error" in peer:
        return "-"
    if field == "seconds":
        a = ours["seconds"] if ours["all_complete"] else None
        b = peer["seconds"] if peer["all_complete"] else None
        if a is None:
            return "-"
        if b is None:
            if peer.get("reason") == "timeout":  # still behind when we stopped waiting
                return f"< {a / peer['waited']:.2f}"
            return "peer not equal"
        return f"{a / b:.2f}"
    a, b = ours.get(field), peer.get(field)
    return f"{a / b:.2f}" if a is not None and b else "-"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    by = _by(results)
    servers = _servers(results)
    patterns = list(results["patterns"])
    counts = sorted({r["watchers"] for r in results["scenarios"]})
    colors = {"ours": "#1f77b4", "documents": "#ff7f0e", "collab": "#2ca02c"}
    fig, axes = plt.subplots(2, len(patterns), figsize=(5 * len(patterns), 8), squeeze=False)
    for j, p in enumerate(patterns):
        ax, cx = axes[0][j], axes[1][j]
        ax.axhline(1.0, color="grey", ls="--", label="kernel floor (in run)")
        ax.axhline(1.25, color="grey", ls=":", label="goal: 1.25x floor")
        for s in servers:
            xs, ys, xf, yf, cpu_x, cpu_y = [], [], [], [], [], []
            for n in counts:
                r = by.get((p, n, s))
                if not r or "error" in r:
                    continue
                cpu_x.append(n)
                cpu_y.append(max(r["server_cpu"], 0.01))
                if r["all_complete"]:
                    xs.append(n)
                    ys.append(r["seconds"] / floor_of(r))
                else:
                    xf.append(n)
                    yf.append(r["waited"] / floor_of(r))
            label = _label(results, s)
            ax.plot(xs, ys, "o-", color=colors.get(s), label=label)
            if xf:
                ax.plot(
                    xf,
                    yf,
                    "x",
                    color=colors.get(s),
                    ms=10,
                    mew=2,
                    label=f"{label}: not equal / timeout (at the time given up)",
                )
            cx.plot(cpu_x, cpu_y, "o-", color=colors.get(s), label=label)
        ax.set_title(results["patterns"][p]["label"].replace("`", ""))
        ax.set_yscale("log")
        ax.set_xscale("log")
        ax.set_xticks(counts, [str(c) for c in counts])
        ax.set_xlabel("watchers")
        ax.set_ylabel("time until all docs complete / floor")
        ax.grid(True, which="both", alpha=0.3)
        ax.xaxis.set_minor_formatter(NullFormatter())
        cx.set_xscale("log")
        cx.set_yscale("log")
        cx.set_xticks(counts, [str(c) for c in counts])
        cx.set_xlabel("watchers")
        cx.set_ylabel("server CPU seconds")
        cx.grid(True, alpha=0.3)
        cx.xaxis.set_minor_formatter(NullFormatter())
    fig.suptitle(
        "Fan-out of one cell's output to N watchers: multiple of the kernel floor "
        "(top) and server CPU seconds (bottom); lower is better"
    )
    legend: dict = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    fig.legend(
        list(legend.values()),
        list(legend.keys()),
        loc="lower center",
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)


#: A hand-written part of docs/benchmarks.md (runs at scale made with other options) between
#: these markers is kept when the page is rewritten.
KEEP_BEGIN = "<!-- hand-written: kept by make bench -->"
KEEP_END = "<!-- end of hand-written part -->"


def kept_part(md_path: Path) -> str:
    try:
        old = md_path.read_text()
    except OSError:
        return ""
    start, end = old.find(KEEP_BEGIN), old.find(KEEP_END)
    if start < 0 or end < start:
        return ""
    return old[start : end + len(KEEP_END)] + "\n"


def write_docs(results: dict, md_path: Path, png_path: Path) -> None:
    plot(results, png_path)
    md = markdown(results)
    md += f"\n![fan-out plot]({png_path.name})\n"
    kept = kept_part(md_path)
    if kept:
        md += "\n" + kept
    md_path.write_text(md)
