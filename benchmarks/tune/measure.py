"""Measured runs: real TensorFlow reads a workload through the front with traffic shaping on.

One TF process (``TfWorker``) runs, for each configuration in turn, ``repeats`` pairs of passes
over the workload: one unshaped (this machine's own cost: TF, a new CONNECT + TLS handshake through the
Python front per request, fake-gcs-server) and one with the front's
:class:`~emulator.fakegcs.shaping.Shaping` set to the same first-byte latency / bandwidth / per-request
overhead as the :class:`~benchmarks.sweep.timing.GcsTiming` used for the prediction. Before each
pass the block cache is set (and emptied) through the hook's public API (``configure_gcs`` with
the config's ``BlockCacheParams``, :mod:`benchmarks.tune.hook_params`), and each pass reads its own copy of the objects, so TF's stat cache and block cache never carry
over between passes. A pass is timed inside the TF process from the start of the epoch code to
the delivery of its last element.

Cache off (max_bytes 0) is measured the way the hook leaves it: no cache environment variables,
so the read-ahead buffer is TF's default 64 MiB (the buffer is fixed when TF builds its
filesystem; ``ResetFileBlockCache`` does not change it).

Invariants: the front's shaping is restored to what it was, every worker is closed and every
copy bucket deleted, even on errors; the predicted time comes from
:func:`benchmarks.sweep.simulate_fast` on the trace of the same workload (synthesized when the
workload has a synthesizer, else the given recorded trace).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.record import upload_objects
from benchmarks.sweep import simulate_fast
from benchmarks.sweep.timing import GcsTiming
from benchmarks.tune.hook_params import block_cache_params
from benchmarks.workloads import RandomRecords, Workload
from emulator.model.cache_config import TF_DEFAULT_CONFIG, CacheConfig

__all__ = ["Measurement", "measure_configs"]


_TIMED = """
import time as _time
_t0 = _time.perf_counter()
{code}
result = {{"value": result, "seconds": _t_last - _t0}}
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


def _label(c: CacheConfig) -> str:
    from benchmarks.tune.report import format_bytes

    if not c.cache_on:
        return "cache off"
    s = f"{format_bytes(c.block_size)} / {format_bytes(c.max_bytes)}"
    return s + (f" / {c.max_staleness}s" if c.max_staleness else "")


#: Run in the worker with ``params`` = (block_size, max_bytes, max_staleness) of a validated
#: ``BlockCacheParams``, or None for cache off (TF's default, left as it is: one worker per config).
_CONFIGURE = """
from gcs_hook import BlockCacheParams, configure_gcs, current_block_cache
if params is not None:
    _bs, _mb, _st = params
    # identical values are a no-op, so go through a different staleness to get an empty cache
    configure_gcs(block_cache=BlockCacheParams(_bs, _mb, _st + 1))
    configure_gcs(block_cache=BlockCacheParams(_bs, _mb, _st))
result = list(current_block_cache())
"""


def _copy_bucket(emulator: Any, src: str, dst: str) -> None:
    backend = emulator.backend
    backend.create_bucket(dst)
    for name in backend.list_objects(src):
        backend.put_object(dst, name, backend.get_object(src, name))


def measure_configs(
    workload: Workload,
    configs: list[CacheConfig],
    emulator: Any,
    timing: GcsTiming,
    *,
    trace: dict[str, Any] | None = None,
    upload: bool = True,
    repeats: int = 1,
    stat_cache_max_age: int = 5,
    timeout: float = 120.0,
    progress: Any = None,
) -> list[Measurement]:
    """Measure ``configs`` on ``workload``.

    One TF process runs, per configuration, ``repeats`` pairs of (unshaped, shaped) passes over
    the workload, alternating, each pass on its own copy of the objects (bucket
    ``<bucket>-c<n>-<i>``, copied from ``<bucket>``; ``upload`` writes ``<bucket>`` first — pass
    False when the recording already did) and after emptying the block cache with the configure op,
    so no pass sees another's cached blocks or stat entries. The minimum over the repeats is
    kept for both (contention from other processes only ever adds time).
    """
    from emulator.fakegcs.shaping import Shaping
    from emulator.replay.tf_worker import TfWorker

    if trace is None:
        trace = workload.synthesize()
    if upload:
        emulator.backend.create_bucket(workload.bucket)
        upload_objects(emulator, workload)
    copies: list[Workload] = []  # the current configuration's copies (deleted after it)
    shaping = Shaping(
        first_byte_latency_s=timing.first_byte_latency_s,
        bandwidth_bytes_per_s=(
            None if math.isinf(timing.bandwidth_bytes_per_s) else timing.bandwidth_bytes_per_s
        ),  # inf: --bandwidth 0, no cap
        per_request_overhead_s=timing.per_request_overhead_s,
    )
    before = emulator.front.shaping

    def one_pass(worker: Any, copy: Workload, config: CacheConfig, shaped: Any) -> tuple:
        hook_params = block_cache_params(config)
        params = worker.run(
            _CONFIGURE,
            params=None if hook_params is None else list(hook_params.as_tuple()),
            timeout=timeout,
        )
        expect = list((hook_params or TF_DEFAULT_CONFIG).as_tuple())
        if params != expect:
            raise RuntimeError(f"TF block cache is {params}, wanted {expect}")
        emulator.front.shaping = shaped
        mark = emulator.ledger.mark()
        try:
            seconds = 0.0
            for epoch in range(copy.epochs):
                variables: dict[str, Any] = {"epoch": epoch}
                if isinstance(copy, RandomRecords):
                    variables["offsets"] = copy.offsets(epoch)
                code = _TIMED.format(code=copy.tf_epoch_code())
                res = worker.run(code, timeout=timeout, **variables)
                seconds += float(res["seconds"])
        finally:
            emulator.front.shaping = before
        with contextlib.suppress(Exception):
            emulator.ledger.wait_quiet(0.05, 2.0)
        n_requests = sum(
            1
            for r in emulator.ledger.since(mark)
            if r.bucket == copy.bucket and r.kind in ("media", "metadata")
        )
        return seconds, n_requests

    env = dict(emulator.tf_env())
    if stat_cache_max_age != 5:
        env["GCS_STAT_CACHE_MAX_AGE"] = str(stat_cache_max_age)
    worker = TfWorker(env)
    try:
        # warm-up outside the timing: TF's GCS filesystem, auth, the op library
        worker.run("result = tf.io.gfile.exists('gs://' + b + '/nothing')", b=workload.bucket)
        # cache off first: once configure_gcs ran in this TF process, TF's own "off" cannot come
        # back (r1.12's BlockCacheParams refuses max_bytes 0); results keep the given order
        order = sorted(range(len(configs)), key=lambda i: configs[i].cache_on)
        done: dict[int, Measurement] = {}
        for n in order:
            config = configs[n]
            copies[:] = [
                workload.with_params(bucket=f"{workload.bucket}-c{n}-{i}")
                for i in range(2 * repeats)
            ]
            for copy in copies:
                _copy_bucket(emulator, workload.bucket, copy.bucket)
            base, shaped_s, n_req = [], [], 0
            for r in range(repeats):
                base.append(one_pass(worker, copies[2 * r], config, None)[0])
                secs, n_req = one_pass(worker, copies[2 * r + 1], config, shaping)
                shaped_s.append(secs)
            for copy in copies:
                with contextlib.suppress(Exception):
                    emulator.backend.delete_bucket(copy.bucket)
            predicted, _ = simulate_fast(
                trace,
                config,
                timing=timing,
                epochs=workload.epochs,
                stat_cache_max_age=stat_cache_max_age,
            )
            done[n] = Measurement(
                config=config,
                label=_label(config),
                predicted_s=predicted.predicted_s,
                measured_s=min(shaped_s),
                baseline_s=min(base),
                predicted_requests=predicted.requests,
                measured_requests=n_req,
                epochs=workload.epochs,
            )
            if progress:
                progress(len(done), len(configs))
        out = [done[n] for n in range(len(configs))]
    finally:
        worker.close()
        emulator.front.shaping = before
        for copy in copies:
            with contextlib.suppress(Exception):
                emulator.backend.delete_bucket(copy.bucket)
    return out
