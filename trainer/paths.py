"""Where everything lives under the work directory (default: the project folder)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class WorkPaths:
    root: Path

    @classmethod
    def at(cls, workdir: Path | None) -> WorkPaths:
        return cls(Path(workdir).resolve() if workdir else PROJECT_DIR)

    @property
    def database(self) -> Path:
        return self.root / "data" / "trainer.db"

    @property
    def tuning_database(self) -> Path:
        """Optuna's study storage (trainer/tuning), apart from the trainer database."""
        return self.root / "data" / "tuning.db"

    @property
    def default_universe(self) -> Path:
        """The shipped universe lives in the project, whatever the work directory."""
        return PROJECT_DIR / "data" / "universe.csv"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def production(self) -> Path:
        return self.root / "models" / "production"

    @property
    def models(self) -> Path:
        return self.root / "models"

    def artifacts(self, run_id: str) -> Path:
        """Per-run model artifacts (joblib), beside the checkpoint they belong to."""
        return self.checkpoints / run_id

    def report_dir(self, run_id: str) -> Path:
        return self.reports / run_id
