"""Micro-batching: concurrent requests share one `Transcriber.transcribe` call.

One worker thread owns the model (torch is not re-entrant per model, and one forward over 8
rows costs far less than 8 forwards on a CPU). It takes the first waiting request, then
collects more for up to `wait_ms` or until `max_batch`, and transcribes them together; the
Transcriber routes each row to its language's expert inside one mixed batch.

Requests of every language, given or left to detection, share one call (`transcribe` takes
one language per input); only different temperatures go in separate calls, because the
decoding options are per call.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from dataclasses import dataclass, field, replace

import numpy as np

_STOP = object()


@dataclass
class Job:
    audio: np.ndarray
    language: str | None          # a checked code, or None = detect
    temperature: float = 0.0
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    candidates: list[str] | None = None   # detection's candidates (None: the server's default)
    routing: str | None = None            # hard | soft | nbest (None: the server's default)


def temperatures_from(t: float, base: tuple[float, ...]) -> tuple[float, ...]:
    """0 -> the Transcriber's usual fallback ladder; t > 0 -> sample at t, then step up to 1
    as openai-whisper's CLI does."""
    if t <= 0:
        return base
    steps = [round(t + 0.2 * i, 4) for i in range(int((1.0 - t) / 0.2 + 1e-9) + 1)]
    return tuple(steps) or (t,)


class MicroBatcher:
    def __init__(self, transcriber, max_batch: int = 8, wait_ms: float = 20.0):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.transcriber = transcriber
        self.max_batch = max_batch
        self.wait_s = max(0.0, wait_ms) / 1000.0
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # Counters the health endpoint and the tests read (written by the worker only).
        self.requests = 0
        self.batches: list[int] = []          # requests collected per batch
        self.calls: list[int] = []            # rows per transcribe() call (one decode pass each)

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="lora-whisper-batcher", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    # -- submitting ---------------------------------------------------------------------
    def submit(self, audio: np.ndarray, language: str | None = None, temperature: float = 0.0,
               candidates: list[str] | None = None, routing: str | None = None) -> concurrent.futures.Future:
        self.start()
        job = Job(audio, language, float(temperature), candidates=candidates, routing=routing)
        self._queue.put(job)
        return job.future

    async def transcribe(self, audio: np.ndarray, language: str | None = None, temperature: float = 0.0,
                         candidates: list[str] | None = None, routing: str | None = None):
        return await asyncio.wrap_future(self.submit(audio, language, temperature, candidates, routing))

    # -- the worker ---------------------------------------------------------------------
    def _collect(self, first: Job) -> tuple[list[Job], bool]:
        jobs, stop = [first], False
        deadline = time.monotonic() + self.wait_s
        while len(jobs) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                stop = True
                break
            jobs.append(item)
        return jobs, stop

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            jobs, stop = self._collect(item)
            # A request whose client went away is cancelled: no work for it.
            live = [j for j in jobs if j.future.set_running_or_notify_cancel()]
            if live:
                self.requests += len(live)
                self.batches.append(len(live))
                self._process(live)
            if stop:
                return

    def _process(self, jobs: list[Job]) -> None:
        groups: dict[tuple, list[Job]] = {}
        for j in jobs:
            groups.setdefault((j.temperature, j.routing), []).append(j)
        t = self.transcriber
        base = t.options
        for (temperature, routing), group in groups.items():
            try:
                t.options = replace(base, temperatures=temperatures_from(temperature, base.temperatures))
                self.calls.append(len(group))
                results = t.transcribe([j.audio for j in group], language=[j.language for j in group],
                                       names=["upload"] * len(group), routing=routing,
                                       candidates=[j.candidates for j in group])
            except BaseException as exc:  # noqa: BLE001  (the request fails; the server goes on)
                for j in group:
                    j.future.set_exception(exc)
                continue
            finally:
                t.options = base
            for j, r in zip(group, results):
                if r.error:
                    j.future.set_exception(RuntimeError(r.error))
                else:
                    j.future.set_result(r)
