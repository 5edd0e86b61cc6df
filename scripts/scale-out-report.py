#!/usr/bin/env python3
"""Tables (medians over repetitions) from the JSON lines scripts/scale-out.sh appends.

usage: python3 scripts/scale-out-report.py [target/scale-out.jsonl] [--since UNIX_TIME]
"""
import json
import statistics
import sys
from collections import defaultdict


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=1):
    return "-" if v is None else f"{v:.{digits}f}"


def main():
    args = sys.argv[1:]
    since = 0
    if "--since" in args:
        i = args.index("--since")
        since = int(args[i + 1])
        del args[i : i + 2]
    path = args[0] if args else "target/scale-out.jsonl"
    runs = defaultdict(list)
    for line in open(path):
        row = json.loads(line)
        if row["ts"] >= since:
            runs[(row["backbone"], row["transport"], row["conns"], row["instances"])].append(row)

    print("| backbone | transport | conns | instances | runs | delivered (min) | p50 ms | p99 ms "
          "| CPU us/delivery (all) | per instance: conns, CPU us/delivery | vs 1 instance | KiB/conn |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    single = {}
    for key in sorted(runs):
        rows = runs[key]
        per = [med([r["per_instance"][i]["cpu_us_per_delivery"] for r in rows if i < len(r["per_instance"])])
               for i in range(key[3])]
        conns = [med([r["per_instance"][i]["conns"] for r in rows if i < len(r["per_instance"])])
                 for i in range(key[3])]
        mean_per = med(per)
        if key[3] == 1:
            single[key[:3]] = mean_per
        base = single.get(key[:3])
        ratio = f"{mean_per / base:.2f}x" if base and mean_per else "-"
        print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {len(rows)} "
              f"| {min(r['completeness'] for r in rows) * 100:.2f}% "
              f"| {fmt(med([r['p50_ms'] for r in rows]))} | {fmt(med([r['p99_ms'] for r in rows]))} "
              f"| {fmt(med([r['cpu_us_per_delivery'] for r in rows]))} "
              f"| {', '.join(f'{fmt(c, 0)}: {fmt(p)}' for c, p in zip(conns, per))} "
              f"| {ratio} | {fmt(med([r['kib_per_conn'] for r in rows]))} |")

    print()
    print("Backbone work per publish (medians): Redis commands, their server time and bytes; "
          "NATS messages and bytes.")
    print()
    print("| backbone | conns | instances | per publish |")
    print("|---|---|---|---|")
    for key in sorted(runs):
        rows = runs[key]
        keys = rows[0]["backbone_per_publish"].keys()
        work = ", ".join(f"{k} {fmt(med([r['backbone_per_publish'][k] for r in rows]))}" for k in keys)
        print(f"| {key[0]} | {key[2]} | {key[3]} | {work} |")


if __name__ == "__main__":
    main()
