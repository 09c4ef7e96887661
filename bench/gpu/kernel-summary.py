"""Sums `ncu --metrics gpu__time_duration.sum --csv` output per kernel name: one line per kernel, heaviest first.
Usage: python3 bench/gpu/kernel-summary.py NCU_CSV [TOP]"""
import collections
import csv
import io
import sys

UNITS = {"ns": 1e-6, "nsecond": 1e-6, "us": 1e-3, "usecond": 1e-3, "ms": 1.0, "msecond": 1.0}


def main():
    path, top = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 25
    lines = open(path, errors="replace").read().splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), None)
    if start is None:
        print(f"{path}: no ncu CSV table found")
        return 1
    total, calls = collections.Counter(), collections.Counter()
    for r in csv.DictReader(io.StringIO("\n".join(lines[start:]))):
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        ms = float(r["Metric Value"].replace(",", "")) * UNITS.get(r["Metric Unit"], float("nan"))
        name = r["Kernel Name"][:100]
        total[name] += ms
        calls[name] += 1
    all_ms = sum(total.values())
    print(f"{all_ms:.2f} ms of kernel time over {sum(calls.values())} launches")
    for name, ms in total.most_common(top):
        print(f"{ms:8.2f} ms {100 * ms / all_ms:5.1f}% {calls[name]:5d}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
