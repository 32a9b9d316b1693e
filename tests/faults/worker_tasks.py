"""Tasks only the fault tests' workers load (celery worker -I tests.faults.worker_tasks)."""

import time
from pathlib import Path

from config.celery import app


@app.task(name="tests.faults.nap")
def nap(seconds: float) -> None:
    time.sleep(seconds)


@app.task(name="tests.faults.touch")
def touch(path: str) -> None:
    Path(path).write_text("done")
