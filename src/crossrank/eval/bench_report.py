"""``crossrank bench``'s reports as aligned plain-text tables: the variants'
(:func:`format_bench_table`) and a scoring server's under concurrent clients
(:func:`format_server_table`, ``bench --server``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crossrank.eval.report import align_table

__all__ = ["format_bench_table", "format_server_table"]


def format_bench_table(report: Mapping[str, Any]) -> str:
    """The report's variants as an aligned plain-text table."""
    header = [
        "variant",
        "median ms",
        "p95 ms",
        "pairs/s",
        "vs ST",
        "cold start s",
        "peak RSS MB",
        "max |diff|",
        "spearman",
        "top10",
    ]
    lines = [header]
    for row in report["variants"]:
        pps = row["pairs_per_second"]
        lines.append(
            [
                row["name"],
                f"{row['median_s'] * 1000:.1f}",
                f"{row['p95_s'] * 1000:.1f}",
                "-" if pps is None else f"{pps:.1f}",
                f"{row['ratio_vs_sentence_transformers']:.2f}x",
                f"{row['cold_start_s']:.2f}",
                f"{row['peak_rss_mb']:.0f}",
                f"{row['max_abs_score_diff_vs_reference']:.2g}",
                "-"
                if row["spearman_vs_reference"] is None
                else f"{row['spearman_vs_reference']:.4f}",
                f"{row['top10_overlap_vs_reference']}/10",
            ]
        )
    s, i = report["settings"], report["input"]
    return align_table(
        lines,
        f"{i['num_texts']} {i['source']} texts of ~{i['text_tokens_mean']:.0f} tokens, one "
        f"query of {i['query_tokens']}; {s['repeats']} interleaved repeats on {s['device']}, "
        f"batch {s['batch_size']}. vs ST > 1 means faster than sentence-transformers; cold "
        "start = import + load (+ first ONNX export); max |diff| and spearman: scores against "
        "sentence-transformers fp32; top10: its top 10 shared with sentence-transformers'."
        + f"\nCPU: {report['machine'].get('cpu', '?')}"
        + f"\npadding: {i.get('padding_waste_sorted', 0):.1%} of padded tokens with "
        f"crossrank's length-sorted batches, {i.get('padding_waste_input_order', 0):.1%} in "
        "input order"
        + (
            f"\nauto -> {report['auto']['backend']} ({report['auto']['source']})"
            if report.get("auto")
            else ""
        )
        + "".join(
            f"\nauto started again on the filled cache in {row['second_start_s']:.2f} s"
            + (
                f" (peak RSS {row['second_peak_rss_mb']:.0f} MB)"
                if "second_peak_rss_mb" in row
                else ""
            )
            for row in report["variants"]
            if "second_start_s" in row
        )
        + "".join(
            f"\n{row['name']} ran in {row['peer']['python']} ({_peer_versions(row['peer'])})"
            for row in report["variants"]
            if row.get("peer")
        )
        + "".join(f"\nskipped {n}: {why}" for n, why in report.get("skipped", {}).items()),
    )


def _peer_versions(peer: Mapping[str, Any]) -> str:
    versions = peer.get("versions") or {}
    return ", ".join(
        f"{package} {versions[package]}"
        for package in ("sentence-transformers", "transformers", "optimum", "optimum-onnx",
                        "optimum-intel", "onnxruntime", "openvino")
        if versions.get(package)
    )  # fmt: skip


def format_server_table(report: Mapping[str, Any]) -> str:
    """The report as an aligned plain-text table."""
    inproc, served, over = report["in_process"], report["served"], report["overload"]
    batching = report["batching"]
    s = report["settings"]
    rows = [
        ["", "pairs/s", "p50 ms", "p95 ms", "p99 ms", "ratio"],
        [
            "in process, one score() call",
            f"{inproc['pairs_per_second']:.1f}",
            "-",
            "-",
            "-",
            "1.00",
        ],
        [
            f"server, {s['concurrency']} clients",
            f"{served['pairs_per_second']:.1f}",
            f"{served['latency_p50_ms']:.1f}",
            f"{served['latency_p95_ms']:.1f}",
            f"{served['latency_p99_ms']:.1f}",
            f"{report['ratio_served_vs_in_process']:.2f}",
        ],
    ]
    rpp = batching["requests_per_pass"]
    ppp = batching["pairs_per_pass"]
    machine = report["machine"]
    footer = (
        f"{served['pairs']} pairs: {s['concurrency']} clients x {s['requests_per_client']} "
        f"requests x {s['candidates']} texts of {s['doc_tokens']} tokens; model "
        f"{s['model']} ({report['server'].get('backend')}).\n"
        f"forward passes: {batching['forward_passes']}, "
        f"{'-' if rpp is None else f'{rpp:.2f}'} requests and "
        f"{'-' if ppp is None else f'{ppp:.1f}'} pairs per pass on average; scores vs in "
        f"process: max |diff| {served['max_abs_score_diff_vs_in_process']:.2g}, mixed up "
        f"{served['mixed_up']}.\n"
        f"overload: {over['requests']} requests at once (4 x max_queue {over['max_queue']}): "
        f"{over['ok']} answered 200, {over['rejected_429']} got 429, {over['lost']} lost, "
        f"{over['mixed_up']} mixed up, other statuses {over['other_status'] or 'none'}; "
        f"healthy after: {over['healthy_after']}.\n"
        f"CPU: {machine.get('cpu', '?')}; load average before "
        f"{', '.join(f'{x:.2f}' for x in machine['load_average_before'])}, after "
        f"{', '.join(f'{x:.2f}' for x in machine['load_average_after'])}"
    )
    if report.get("local_server_exit_code") is not None:
        footer += (
            f"\nlocal server stopped with SIGTERM, exit code {report['local_server_exit_code']}"
        )
    return align_table(rows, footer)
