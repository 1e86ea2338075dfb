"""Run-folder records: log files, per-step and per-epoch metrics, TensorBoard events.

Files written by rank 0 in the run folder:

==================  ==========================================================
``info.log``        INFO and above of the ``vgloc`` logger during the run
``debug.log``       also DEBUG records, when the ``vgloc`` logger lets them through
                    (the CLI sets it to DEBUG; a library caller keeps control of it)
``steps.csv``       ``epoch, step, loss, lr, images_per_s`` (every
                    ``runtime.step_log_every`` steps)
``metrics.csv``     one row per epoch: loss, learning rate, validation R@N
``metrics.json``    the same rows plus the best epoch, rewritten every epoch
``tensorboard/``    event files, when the ``tensorboard`` package is installed
==================  ==========================================================

When a run is resumed, rows written after the checkpoint (by the interrupted run) are
dropped first, so the files describe one consistent trajectory.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vgloc.io import write_json_atomic, write_text_atomic

__all__ = ["RunLogger", "truncate_csv"]

log = logging.getLogger(__name__)

STEP_COLUMNS = ("epoch", "step", "loss", "lr", "images_per_s")


def truncate_csv(path: Path, column: str, last: int) -> int:
    """Drop rows whose integer ``column`` exceeds ``last`` (rows of an interrupted run).

    Args:
        path: The CSV file (nothing happens when it does not exist).
        column: Column holding the step or epoch.
        last: Largest value to keep.

    Returns:
        The number of rows dropped.
    """
    if not path.is_file():
        return 0
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or column not in rows[0]:
        return 0
    col = rows[0].index(column)
    keep = [rows[0]] + [r for r in rows[1:] if r and int(float(r[col])) <= last]
    dropped = len(rows) - len(keep)
    if dropped:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(keep)
        write_text_atomic(path, buf.getvalue())
    return dropped


class RunLogger:
    """Writes the run folder's logs and metrics (a no-op object on ranks other than 0).

    Args:
        run_dir: The run folder.
        enabled: False on ranks other than 0.
        tensorboard: Try to write TensorBoard events.
        log_files: Attach ``info.log`` / ``debug.log`` handlers to the ``vgloc`` logger
            (removed by :meth:`close`).
        resume_step: When resuming, the checkpoint's global step: later rows are
            dropped from ``steps.csv``.
        resume_epoch: When resuming, the checkpoint's completed epochs: later rows are
            dropped from ``metrics.csv``.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        enabled: bool = True,
        tensorboard: bool = True,
        log_files: bool = True,
        resume_step: int | None = None,
        resume_epoch: int | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self._handlers: list[logging.Handler] = []
        self._writer: Any = None
        self._saved_level: int | None = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if log_files:
            self._attach_log_files()
        if resume_step is not None:
            n = truncate_csv(self.run_dir / "steps.csv", "step", resume_step)
            if n:
                log.info("dropped %d step rows written after the checkpoint (step %d)", n, resume_step)
        if resume_epoch is not None:
            truncate_csv(self.run_dir / "metrics.csv", "epoch", resume_epoch)
        self._steps = (self.run_dir / "steps.csv").open("a", newline="")
        self._steps_csv = csv.writer(self._steps, lineterminator="\n")
        if self._steps.tell() == 0:
            self._steps_csv.writerow(STEP_COLUMNS)
        if tensorboard:
            self._open_tensorboard(resume_step)

    def _attach_log_files(self) -> None:
        logger = logging.getLogger("vgloc")
        if logger.getEffectiveLevel() > logging.INFO:
            # Without it info.log would stay empty for a library caller that configured no
            # logging; restored by close(). DEBUG stays the caller's (or the CLI's) choice.
            self._saved_level = logger.level
            logger.setLevel(logging.INFO)
        fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        for name, level in (("info.log", logging.INFO), ("debug.log", logging.DEBUG)):
            h = logging.FileHandler(self.run_dir / name)
            h.setLevel(level)
            h.setFormatter(fmt)
            logger.addHandler(h)
            self._handlers.append(h)

    def _open_tensorboard(self, resume_step: int | None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.info(
                "TensorBoard events skipped: the 'tensorboard' package is not installed (pip install tensorboard)"
            )
            return
        # purge_step discards events an interrupted run wrote after the checkpoint.
        self._writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=resume_step)
        log.debug("TensorBoard events in %s", self.run_dir / "tensorboard")

    @property
    def tensorboard_enabled(self) -> bool:
        """True when TensorBoard events are being written."""
        return self._writer is not None

    def log_step(self, epoch: int, step: int, loss: float, lr: float, images_per_s: float) -> None:
        """Record one training step.

        Args:
            epoch: 1-based epoch.
            step: Global step (1-based: steps done so far).
            loss: The step's loss (averaged over processes).
            lr: Learning rate of the descriptor network.
            images_per_s: Throughput of the step (all processes).
        """
        if not self.enabled:
            return
        self._steps_csv.writerow([epoch, step, f"{loss:.8g}", f"{lr:.6g}", f"{images_per_s:.2f}"])
        self._steps.flush()
        if self._writer is not None:
            self._writer.add_scalar("train/loss", loss, step)
            self._writer.add_scalar("train/lr", lr, step)
            self._writer.add_scalar("train/images_per_s", images_per_s, step)

    def log_epoch(
        self, row: Mapping[str, Any], history: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]
    ) -> None:
        """Record one epoch's metrics.

        Args:
            row: Flat metrics of the epoch (``epoch``, ``train_loss``, ``val/queries/R@1``...).
            history: All epoch rows so far (written to ``metrics.json``).
            summary: Run-level facts for ``metrics.json`` (best epoch, method...).
        """
        if not self.enabled:
            return
        path = self.run_dir / "metrics.csv"
        rows: list[dict[str, Any]] = []
        header: list[str] = []
        if path.is_file() and path.stat().st_size:
            with path.open(newline="") as fh:
                reader = csv.DictReader(fh)
                header = list(reader.fieldnames or [])
                rows = list(reader)
        missing = [c for c in row if c not in header]
        formatted = {k: _fmt(v) for k, v in row.items()}
        if missing or not header:
            # A new column (e.g. the first row was the validation of the untrained model,
            # without a training loss): rewrite the file with the union of the columns.
            header += missing
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=header, lineterminator="\n", restval="")
            w.writeheader()
            w.writerows([*rows, formatted])
            write_text_atomic(path, buf.getvalue())
        else:
            with path.open("a", newline="") as fh:
                csv.DictWriter(fh, fieldnames=header, lineterminator="\n", restval="").writerow(formatted)
        write_json_atomic(self.run_dir / "metrics.json", {**summary, "epochs": list(history)})
        if self._writer is not None:
            step = int(row.get("step", row.get("epoch", 0)))
            for k, v in row.items():
                if k not in ("epoch", "step") and isinstance(v, (int, float)):
                    self._writer.add_scalar(f"epoch/{k}", v, step)
            self._writer.flush()

    def close(self) -> None:
        """Close files and detach the log handlers."""
        if not self.enabled:
            return
        self._steps.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        logger = logging.getLogger("vgloc")
        for h in self._handlers:
            logger.removeHandler(h)
            h.close()
        self._handlers.clear()
        if self._saved_level is not None:
            logger.setLevel(self._saved_level)
            self._saved_level = None


def _fmt(v: Any) -> Any:
    return f"{v:.6g}" if isinstance(v, float) else v
