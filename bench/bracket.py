#!/usr/bin/env python3
"""bench/bracket.py FILE.md...: the bracketed ratios of bench/boot.sh runs.

Each FILE is a BENCH_OUT of `INVENTORY="file postgres file" bench/boot.sh`,
its snomprov rows in triples (file, postgres, file). For every triple and
figure it prints the PostgreSQL storm divided by the mean of the file-store
storms on either side, which cancels the drift of a machine that warms up
over a run; per file the geometric mean, over all files the geometric mean
with a 95 % interval (two standard errors of the logs), and the A/A ratio
of the two file-store storms' HTTP median, the noise floor.
"""
import math
import re
import sys

FIGURES = {"time": 2, "dhcp": 5, "http": 6, "cpu": 9, "runq": 15}  # column index, first is 0


def num(cell):
    m = re.search(r"[-0-9.]+", cell.split("/")[0])
    return float(m.group()) if m else None


def rows(path):
    out = []
    for line in open(path):
        if not line.startswith("| snomprov"):
            continue
        c = [x.strip() for x in line.strip().strip("|").split("|")]
        r = {k: num(c[i]) if i < len(c) else None for k, i in FIGURES.items()}
        r["inv"] = "postgres" if "postgres" in c[0] else "file"
        out.append(r)
    return out


def gmean(v):
    return math.exp(sum(map(math.log, v)) / len(v))


def main(paths):
    total = {k: [] for k in FIGURES}
    for path in paths:
        rs = rows(path)
        if len(rs) % 3:
            sys.exit(f"{path}: {len(rs)} snomprov rows, not whole triples")
        triples = [rs[i:i + 3] for i in range(0, len(rs), 3)]
        for a, p, b in triples:
            if (a["inv"], p["inv"], b["inv"]) != ("file", "postgres", "file"):
                sys.exit(f"{path}: rows are not file, postgres, file triples")
        cells = []
        for k in FIGURES:
            v = [p[k] / ((a[k] + b[k]) / 2) for a, p, b in triples if None not in (a[k], p[k], b[k])]
            total[k] += v
            if v:
                cells.append(f"{k} {','.join(f'{x:.2f}' for x in v)} (gmean {gmean(v):.3f})")
        aa = ",".join(f"{b['http'] / a['http']:.2f}" for a, _, b in triples)
        print(f"{path}: {'; '.join(cells)}; A/A http {aa}")
    for k, v in total.items():
        if len(v) < 2:
            continue
        logs = [math.log(x) for x in v]
        m = sum(logs) / len(logs)
        se = (sum((x - m) ** 2 for x in logs) / (len(logs) - 1)) ** 0.5 / len(logs) ** 0.5
        print(f"all {k:5} n={len(v)} gmean {math.exp(m):.3f}, 95 % interval {math.exp(m - 2 * se):.3f}-{math.exp(m + 2 * se):.3f}, range {min(v):.2f}-{max(v):.2f}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
