"""Check a telemetry log for readings outside their limits."""

import csv
import sys
from dataclasses import dataclass


@dataclass
class Limit:
    name: str
    low: float
    high: float


def load_limits(path):
    limits = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            limits[row["name"]] = Limit(row["name"], float(row["low"]), float(row["high"]))
    return limits


def out_of_range(readings, limits):
    bad = []
    for name, value in readings:
        limit = limits.get(name)
        if limit is None:
            continue
        if value < limit.low or value > limit.high:
            bad.append((name, value))
    return bad


if __name__ == "__main__":
    limits = load_limits(sys.argv[1])
    print(len(limits), "limits loaded")
