"""Promotion phase: the gate decides; a promoted ensemble goes to models/production/.

Idempotent on resume: if a crash came after the copy but before the checkpoint, the production
manifest already names this run and the copy is not made twice.
"""

from __future__ import annotations

import logging

from trainer import console
from trainer.promotion.gate import decide_from_db, record_decision
from trainer.promotion.production import current_production, promote
from trainer.run_context import RunContext
from trainer.signals.model import build_manifest

log = logging.getLogger(__name__)


def run_promotion_phase(context: RunContext) -> None:
    config = context.config
    decision = decide_from_db(context.connection, context.run_id, config.gate, config.labels.horizon,
                              seed=config.seed)
    production_path = None
    if decision.promoted:
        production = context.paths.production
        if (current_production(production) or {}).get("run_id") != context.run_id:
            manifest = build_manifest(context.connection, context.run_id, config.to_dict(),
                                      ensemble_weights=context.state["training"].get("ensemble_weights", {}),
                                      metrics=context.state["evaluation"]["results"],
                                      is_demo=context.source.is_demo, source=context.source.key)
            promote(context.run_id, context.paths.artifacts(context.run_id), production, manifest)
        production_path = production
    record_decision(context.connection, context.run_id, decision, production_path)
    for criterion in decision.criteria:
        mark = console.glyph("check") if criterion.passed else console.glyph("cross")
        (console.info if criterion.passed else console.warn)(f"{mark} {criterion.name}: {criterion.message}")
    (console.info if decision.promoted else console.warn)(decision.explanation)
    verdict = "promoted" if decision.promoted else "rejected"
    log.info("gate: %s (%s)", verdict, decision.summary)
    context.state["promotion"] = {"decided": True, "decision": verdict, "summary": decision.summary,
                                  "explanation": decision.explanation,
                                  "production_path": None if production_path is None else str(production_path)}
    context.advance("promotion")
