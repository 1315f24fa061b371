"""`jupyter orchestrate backfill`: one run per fire time, each with its logical date, max_concurrent_runs kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jupyter_orchestrate.models import Trigger
from jupyter_orchestrate.store import Store

pytestmark = pytest.mark.kernel


def test_backfill_creates_one_run_per_fire_with_its_logical_date(make_notebook: Any, tmp_path: Path) -> None:
    job, home = tmp_path / "daily", tmp_path / "state"
    make_notebook(
        "daily/load.ipynb",
        "import json\njson.dump({'day': day}, open(f'out-{day[:10]}.json', 'w'))",
        parameters="day = ''",
        orchestrate={"parameters": {"day": "{{job.trigger.time}}"}},
    )
    (job / "job.yaml").write_text(
        'max_concurrent_runs: 2\nschedules:\n  - name: morning\n    cron: "0 6 * * *"\n    timezone: Europe/Amsterdam\n'
    )
    cli = [
        sys.executable,
        "-m",
        "jupyter_orchestrate",
        "--home",
        str(home),
        "backfill",
        str(job),
        "--start",
        "2026-03-27",
        "--end",
        "2026-03-30",
    ]
    dry = subprocess.run([*cli, "--dry-run"], capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    # 06:00 Amsterdam is 05:00 UTC before the DST change on 2026-03-29 and 04:00 UTC after it
    expected = [
        "2026-03-27T05:00:00+00:00",
        "2026-03-28T05:00:00+00:00",
        "2026-03-29T04:00:00+00:00",
        "2026-03-30T04:00:00+00:00",
    ]
    assert dry.stdout.split(": ", 1)[1].split() == [e + "," for e in expected[:-1]] + [expected[-1]]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    runs = sorted(Store(home).list_runs(limit=10), key=lambda r: r.run_id)
    assert [r.trigger_time for r in runs] == expected and {r.trigger for r in runs} == {Trigger.schedule}
    assert all(r.status.value == "succeeded" and "backfill" in r.trigger_reason for r in runs)
    for day in expected:
        assert json.loads((job / f"out-{day[:10]}.json").read_text()) == {"day": day}
    bad = subprocess.run(
        [*cli[:-4], "--start", "2026-03-27", "--end", "2027-03-27", "--schedule", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "no schedule 'nope'" in bad.stderr
