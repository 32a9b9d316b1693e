"""Delivery insight: the four DORA metrics, computed from the deployment history.

- Deployment frequency: changes that went live (merges, pushes, API deploys, redeploys;
  rollbacks are counted apart), per day.
- Lead time for changes: from the moment Switchback learnt of the change (the deployment's
  `created_at`: the merge delivery, or the API call) to it going live (`live_at`).
  Switchback does not store commit timestamps, so the time between commit and merge is
  not included; this is "merge to live".
- Change failure rate: of the changes that went live, the share that failed while live
  (the watch window rolled it back) or that the next live deployment rolled back.
- Time to restore: for each failed change, from it going live to the rollback after it
  going live (an upper bound: the failure may have started after the switch).

One query over the period's live deployments; everything else is arithmetic in Python.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import date, datetime, timedelta

from django.utils import timezone

from .models import Deployment, Project, State, Trigger


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def metrics_compute(*, projects: list[Project] | None, days: int = 30, now: datetime | None = None) -> dict:
    """The four metrics over the last `days` days, overall and per day, for these projects.

    projects=None means every project (a staff view); an empty list gives empty metrics.
    """
    days = max(1, min(int(days), 3650))
    now = now or timezone.now()
    start = now - timedelta(days=days)
    lived = Deployment.objects.filter(live_at__isnull=False, live_at__gte=start)
    if projects is not None:
        lived = lived.filter(project_id__in=[p.pk for p in projects])
    rows = list(lived.order_by("project_id", "live_at").values(
        "project_id", "number", "trigger", "state", "created_at", "live_at", "rollback_of_id"))

    by_project: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        by_project[row["project_id"]].append(row)

    today = timezone.localdate(now)
    day_list = [today - timedelta(days=i) for i in range(days - 1, -1, -1)]
    per_day: dict[date, dict] = {d: {"deploys": 0, "rollbacks": 0, "failures": 0, "lead": []} for d in day_list}

    changes = failures = rollbacks = 0
    lead_times: list[float] = []
    restore_times: list[float] = []
    incidents: list[dict] = []
    for project_id, history in by_project.items():
        for i, row in enumerate(history):
            day = per_day.get(timezone.localdate(row["live_at"]))
            if row["trigger"] == Trigger.ROLLBACK:
                rollbacks += 1
                if day is not None:
                    day["rollbacks"] += 1
                continue
            changes += 1
            lead = (row["live_at"] - row["created_at"]).total_seconds()
            lead_times.append(lead)
            following = history[i + 1] if i + 1 < len(history) else None
            rolled_back = following is not None and following["trigger"] == Trigger.ROLLBACK
            failed = row["state"] == State.FAILED or rolled_back
            if day is not None:
                day["deploys"] += 1
                day["lead"].append(lead)
                day["failures"] += int(failed)
            if failed:
                failures += 1
                restored = following["live_at"] if rolled_back else None
                seconds = (restored - row["live_at"]).total_seconds() if restored else None
                if seconds is not None:
                    restore_times.append(seconds)
                incidents.append({"project_id": project_id, "number": row["number"], "live_at": row["live_at"],
                                  "restored_at": restored, "seconds": seconds,
                                  "restored_by": following["number"] if rolled_back else None})
    names = dict(Project.objects.filter(pk__in={i["project_id"] for i in incidents}).values_list("pk", "slug"))
    for incident in incidents:
        incident["project"] = names.get(incident["project_id"], "")
    incidents.sort(key=lambda i: i["live_at"], reverse=True)
    daily = [
        {"day": d, "deploys": v["deploys"], "rollbacks": v["rollbacks"], "failures": v["failures"],
         "lead_median": _median(v["lead"])}
        for d, v in per_day.items()
    ]
    return {
        "days": days,
        "start": start,
        "end": now,
        "changes": changes,
        "rollbacks": rollbacks,
        "deploys_per_day": changes / days,
        "lead_time_median": _median(lead_times),
        "lead_time_p90": _percentile(lead_times, 90),
        "change_failure_rate": (failures / changes) if changes else None,
        "failures": failures,
        "time_to_restore_median": _median(restore_times),
        "incidents": incidents[:20],
        "daily": daily,
        "notes": {
            "lead_time": "Merge to live: from when Switchback received the merge (or the API "
                         "deploy) to the switch. Commit timestamps are not stored, so time "
                         "before the merge is not counted.",
            "time_to_restore": "From the failed change going live to the rollback after it going "
                               "live (an upper bound).",
        },
    }


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))]
