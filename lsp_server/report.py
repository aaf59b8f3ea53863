"""`airgap-lsp audit report`: what was suggested, by which model, to whom, and what was kept."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any


def summarise(
    lines: Iterable[dict[str, Any]], since: datetime | None = None, until: datetime | None = None
) -> dict[str, Any]:
    """Counts of suggestions by user, model, language and kind, and their acceptance.

    A suggestion counts when its time is within [since, until); its accept / not-accepted events
    count with it, whenever they came.
    """
    suggestions: dict[str, dict[str, Any]] = {}
    verdicts: dict[str, str] = {}
    for rec in lines:
        kind = rec.get("kind")
        if kind in ("accept", "not_accepted"):
            if verdicts.get(rec["id"]) != "accept":  # an accept is final
                verdicts[rec["id"]] = kind
            continue
        when = datetime.fromisoformat(rec["time"])
        if (since and when < since) or (until and when >= until):
            continue
        suggestions[rec["id"]] = rec
    by: dict[str, Counter[str]] = {k: Counter() for k in ("user", "model", "language", "kind")}
    accepted: dict[str, Counter[str]] = {k: Counter() for k in by}
    outcome: Counter[str] = Counter()
    for sid, rec in suggestions.items():
        keys = {
            "user": f"{rec['user'].get('name', '?')} ({rec['user'].get('uid', '?')})@{rec['host']}",
            "model": f"{rec['model']['name']}@{rec['model']['version']}",
            "language": rec["language"],
            "kind": rec["kind"],
        }
        verdict = {"accept": "accepted", "not_accepted": "not accepted"}.get(
            verdicts.get(sid, ""), "no verdict"
        )
        outcome[verdict] += 1
        for dim, key in keys.items():
            by[dim][key] += 1
            if verdict == "accepted":
                accepted[dim][key] += 1
    times = sorted(r["time"] for r in suggestions.values())
    return {
        "period": {
            "since": since.isoformat() if since else (times[0] if times else None),
            "until": until.isoformat() if until else (times[-1] if times else None),
        },
        "suggestions": len(suggestions),
        "outcome": dict(outcome),
        "by": {
            dim: {k: {"suggested": n, "accepted": accepted[dim][k]} for k, n in c.most_common()}
            for dim, c in by.items()
        },
    }


def as_text(summary: dict[str, Any]) -> str:
    period = summary["period"]
    out = [
        f"{summary['suggestions']} suggestions from {period['since']} to {period['until']}",
        "  " + ", ".join(f"{n} {k}" for k, n in sorted(summary["outcome"].items())),
    ]
    for dim, rows in summary["by"].items():
        out.append(f"by {dim}:")
        for key, row in rows.items():
            rate = 100 * row["accepted"] / row["suggested"]
            out.append(
                f"  {key:<40} {row['suggested']:>6} suggested {row['accepted']:>6} accepted "
                f"({rate:.0f}%)"
            )
    return "\n".join(out)


def as_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, ensure_ascii=False)
