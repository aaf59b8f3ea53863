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
    count with it, whenever they came. The rest of a suggestion shown again while the user typed
    its start (its line names it in `result.served_from`) is that same suggestion: accepted if
    any of its showings was.

    Each line must be an audit record (`audit.record.record_problem`; `audit.files.read_records`
    checks it and names the line that is not). A time without an offset is taken as local.
    """
    suggestions: dict[str, dict[str, Any]] = {}
    verdicts: dict[str, str] = {}
    origin: dict[str, str] = {}  # id of a typed-on showing -> the suggestion it continues
    typed_on = 0
    for rec in lines:
        kind = rec.get("kind")
        if kind in ("accept", "not_accepted"):
            sid = origin.get(rec["id"], rec["id"])
            if verdicts.get(sid) != "accept":  # an accept is final
                verdicts[sid] = kind
            continue
        result = rec.get("result")
        if isinstance(result, dict) and isinstance(result.get("served_from"), str):
            origin[rec["id"]] = result["served_from"]
            typed_on += result["served_from"] in suggestions
            continue
        when = datetime.fromisoformat(rec["time"])
        when = when if when.tzinfo else when.astimezone()
        if (since and when < since) or (until and when >= until):
            continue
        suggestions[rec["id"]] = rec
    by: dict[str, Counter[str]] = {k: Counter() for k in ("user", "model", "language", "kind")}
    accepted: dict[str, Counter[str]] = {k: Counter() for k in by}
    outcome: Counter[str] = Counter()
    for sid, rec in suggestions.items():
        keys = {
            "user": f"{rec['user'].get('name', '?')} ({rec['user'].get('uid', '?')})@{rec['host']}",
            "model": f"{rec['model'].get('name', '?')}@{rec['model'].get('version', '?')}",
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
        "shown_again_as_typed": typed_on,
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
    if again := summary["shown_again_as_typed"]:
        out.append(f"  (the rest of one shown again {again} times as its start was typed)")
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
