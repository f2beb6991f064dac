"""Report phase: the HTML report of the run, written from the database."""

from __future__ import annotations

import logging

from backend import store
from trainer.checkpoint import now_iso
from trainer.reporting.report import write_report
from trainer.run_context import RunContext

log = logging.getLogger(__name__)


def run_report_phase(context: RunContext) -> None:
    with store.transaction(context.connection) as connection:
        connection.execute("UPDATE training_runs SET finished_at = ? WHERE run_id = ?", (now_iso(), context.run_id))
    path = write_report(context.connection, context.run_id, context.paths.report_dir(context.run_id))
    context.state["report"] = {"path": str(path)}
    log.info("report written to %s", path)
    context.advance("report")
