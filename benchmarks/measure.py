"""Measured runs: real TensorFlow reads a workload through the front with traffic shaping on.

For each configuration a fresh TF process (``TfWorker``) is started, its block cache set before
the first read (``GCS_READ_CACHE_*`` environment variables when the sizes are whole MiB, else the
project's ``gcs_configure_block_cache`` op), the front's :class:`~emulator.shaping.Shaping` set to
the same first-byte latency / bandwidth / per-request overhead as the
:class:`~benchmarks.gcs_timing.GcsTiming` used for the prediction, and each epoch of the workload
timed inside the TF process. A fresh process per configuration keeps TF's stat cache and block
cache from leaking between configurations.

Cache off (max_bytes 0) is measured the way the hook leaves it: the block size environment
variable is not set, so the read-ahead buffer is TF's default 64 MiB (the buffer is fixed when
TF builds its filesystem; ``ResetFileBlockCache`` does not change it).

Invariants: the front's shaping is restored to what it was, and every worker is closed, even on
errors; the predicted time comes from :func:`benchmarks.sweep.simulate_fast` on the trace of the
same workload (synthesized when the workload has a synthesizer, else the given recorded trace).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.gcs_timing import GcsTiming
from benchmarks.record import _upload
from benchmarks.sweep import CacheConfig, simulate_fast
from benchmarks.workloads import RandomRecords, Workload

__all__ = ["Measurement", "cache_env", "measure_configs"]

MiB = 1024 * 1024

_TIMED = """
import time as _time
_t0 = _time.perf_counter()
{code}
result = {{"value": result, "seconds": _time.perf_counter() - _t0}}
"""


@dataclass(frozen=True)
class Measurement:
    """Predicted and measured seconds (all epochs) of one configuration.

    ``baseline_s`` is the same run with shaping off: this machine's own cost (TF parsing, a new
    CONNECT + TLS handshake through the Python front for every request TF sends, fake-gcs-server)
    which real GCS would not add on top of its latency. ``calibrated_s = predicted_s +
    baseline_s`` is what the model predicts for the shaped run on this machine.
    """

    config: CacheConfig
    label: str
    predicted_s: float
    measured_s: float
    baseline_s: float
    predicted_requests: int
    measured_requests: int
    epochs: int

    @property
    def calibrated_s(self) -> float:
        return self.predicted_s + self.baseline_s

    @property
    def error_pct(self) -> float:
        """Error of the calibrated prediction (model + unshaped local baseline)."""
        return 100.0 * (self.measured_s - self.calibrated_s) / self.calibrated_s

    @property
    def raw_error_pct(self) -> float:
        """Error of the bare model prediction (local costs ignored)."""
        return 100.0 * (self.measured_s - self.predicted_s) / self.predicted_s

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["config"] = self.config.as_dict()
        d["calibrated_s"] = round(self.calibrated_s, 4)
        d["error_pct"] = round(self.error_pct, 2)
        d["raw_error_pct"] = round(self.raw_error_pct, 2)
        return d


def cache_env(config: CacheConfig) -> tuple[dict[str, str], bool]:
    """(environment, needs_op): env vars for ``config``, or True if the op must set it."""
    if not config.cache_on:
        return {"GCS_READ_CACHE_MAX_SIZE_MB": "0"}, False
    if config.block_size % MiB or config.max_bytes % MiB:
        return {}, True
    return {
        "GCS_READ_CACHE_BLOCK_SIZE_MB": str(config.block_size // MiB),
        "GCS_READ_CACHE_MAX_SIZE_MB": str(config.max_bytes // MiB),
        "GCS_READ_CACHE_MAX_STALENESS": str(config.max_staleness),
    }, False


def _label(c: CacheConfig) -> str:
    from benchmarks.report import format_bytes

    if not c.cache_on:
        return "cache off (TF default)"
    s = f"{format_bytes(c.block_size)} / {format_bytes(c.max_bytes)}"
    return s + (f" / {c.max_staleness}s" if c.max_staleness else "")


def measure_configs(
    workload: Workload,
    configs: list[CacheConfig],
    emulator: Any,
    timing: GcsTiming,
    *,
    trace: dict[str, Any] | None = None,
    upload: bool = True,
    timeout: float = 120.0,
    progress: Any = None,
) -> list[Measurement]:
    """Measure ``configs`` on ``workload`` (objects uploaded first unless ``upload`` is False)."""
    from emulator.shaping import Shaping
    from emulator.tf_worker import TfWorker

    if trace is None:
        trace = workload.synthesize()
    if upload:
        emulator.backend.create_bucket(workload.bucket)
        _upload(emulator, workload)
    shaping = Shaping(
        first_byte_latency_s=timing.first_byte_latency_s,
        bandwidth_bytes_per_s=timing.bandwidth_bytes_per_s,
        per_request_overhead_s=timing.per_request_overhead_s,
    )
    before = emulator.front.shaping

    def run_once(config: CacheConfig, shaped: Shaping | None) -> tuple[float, int]:
        env = dict(emulator.tf_env())
        extra, needs_op = cache_env(config)
        env.update(extra)
        with TfWorker(env) as worker:
            if needs_op:
                worker.run(
                    "from gcs_hook import native_ops\n"
                    "native_ops.load().gcs_configure_block_cache("
                    "max_cache_size=mb, block_size=bs, max_staleness=st)\n"
                    "result = None\n",
                    mb=config.max_bytes,
                    bs=config.block_size,
                    st=config.max_staleness,
                    timeout=timeout,
                )
            # warm-up (TF's GCS filesystem and auth set up, one request) outside the timing
            worker.run("result = tf.io.gfile.exists('gs://' + b + '/nothing')", b=workload.bucket)
            emulator.front.shaping = shaped
            mark = emulator.ledger.mark()
            try:
                seconds = 0.0
                for epoch in range(workload.epochs):
                    variables: dict[str, Any] = {"epoch": epoch}
                    if isinstance(workload, RandomRecords):
                        variables["offsets"] = workload.offsets(epoch)
                    code = _TIMED.format(code=workload.tf_epoch_code())
                    res = worker.run(code, timeout=timeout, **variables)
                    seconds += float(res["seconds"])
            finally:
                emulator.front.shaping = before
            with contextlib.suppress(Exception):
                emulator.ledger.wait_quiet(0.05, 2.0)
            n_requests = sum(
                1
                for r in emulator.ledger.since(mark)
                if r.bucket == workload.bucket and r.kind in ("media", "metadata")
            )
        return seconds, n_requests

    out = []
    try:
        for n, config in enumerate(configs):
            baseline_s, _ = run_once(config, None)
            seconds, n_requests = run_once(config, shaping)
            predicted, _ = simulate_fast(trace, config, timing=timing, epochs=workload.epochs)
            out.append(
                Measurement(
                    config=config,
                    label=_label(config),
                    predicted_s=predicted.predicted_s,
                    measured_s=seconds,
                    baseline_s=baseline_s,
                    predicted_requests=predicted.requests,
                    measured_requests=n_requests,
                    epochs=workload.epochs,
                )
            )
            if progress:
                progress(n + 1, len(configs))
    finally:
        emulator.front.shaping = before
    return out
