"""Micro-batching: concurrent requests share one `Transcriber.transcribe` call.

One worker thread owns the model (torch is not re-entrant per model, and one forward over 8
rows costs far less than 8 forwards on a CPU). It takes the first waiting request, then
collects more for up to `wait_ms` or until `max_batch`, and transcribes them together; the
Transcriber routes each row to its language's expert inside one mixed batch.

Requests of every language, given or left to detection, share one call (`transcribe` takes
one language per input); only different temperatures go in separate calls, because the
decoding options are per call.

Fairness: audio over 29 s (long-form, 30 s windows) goes to a long lane, decoded a window
step at a time, up to `max_batch` inputs side by side; a long request arriving meanwhile joins
the running call at the next step, and each is answered as soon as it is done (40 s never waits
for an hour). Short requests are served between two steps, and inside a step between encoder
layers and decoder token steps (`decoding.preemptible`), so a 4 s request waits for one
layer's forward of the long batch, not for an hour of audio. A request whose client went away
(`Job.abandon()`) is dropped before it starts, or between two windows. `stop()` ends the long
lane at its next window (bounded shutdown).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from dataclasses import dataclass, field, replace

import numpy as np

from lora_whisper.inference.transcriber import SHORT_SECONDS

_STOP = object()


class JobFailed(Exception):
    """This request's row failed (the others of its batch did not); the message is one line."""


class Cancelled(Exception):
    """The client went away, or the server is shutting down."""


@dataclass
class Job:
    audio: np.ndarray
    language: str | None          # a checked code, or None = detect
    temperature: float = 0.0
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    candidates: list[str] | None = None   # detection's candidates (None: the server's default)
    routing: str | None = None            # hard | soft | nbest (None: the server's default)
    words: bool = False           # word timestamps
    on_segment: object = None     # callable(Segment) as segments are decoded (streaming)
    abandoned: threading.Event = field(default_factory=threading.Event)

    @property
    def seconds(self) -> float:
        return len(self.audio) / 16000

    def abandon(self) -> None:
        """The client is gone: do not start this job, and stop it between windows."""
        self.abandoned.set()
        self.future.cancel()   # only succeeds while it is still queued


def temperatures_from(t: float, base: tuple[float, ...]) -> tuple[float, ...]:
    """0 -> the Transcriber's usual fallback ladder; t > 0 -> sample at t, then step up to 1
    as openai-whisper's CLI does."""
    if t <= 0:
        return base
    steps = [round(t + 0.2 * i, 4) for i in range(int((1.0 - t) / 0.2 + 1e-9) + 1)]
    return tuple(steps) or (t,)


class MicroBatcher:
    def __init__(self, transcriber, max_batch: int = 8, wait_ms: float = 20.0, vad: bool = False):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.transcriber = transcriber
        self.base_options = transcriber.options   # each call's temperatures are derived from these
        self.max_batch = max_batch
        self.wait_s = max(0.0, wait_ms) / 1000.0
        self.vad = vad   # cut uploads at speech pauses and batch their chunks (inference/chunked.py)
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # Counters the health endpoint and the tests read (written by the worker only).
        self.requests = 0
        self.batches: list[int] = []          # requests collected per batch
        self.calls: list[int] = []            # rows per transcribe() call (one decode pass each)
        self.long_steps = 0                   # window steps of the long lane
        self._long: list[Job] = []            # long jobs waiting for the lane (worker only)
        self._running = 0                     # jobs taken by the worker and not yet answered
        self._stopping = threading.Event()

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="lora-whisper-batcher", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish what is running (a long job stops at its next window), fail what waits."""
        self._stopping.set()
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout)
        self._stopping.clear()

    @property
    def pending(self) -> int:
        """Requests queued or being decoded (a long upload in progress counts)."""
        return self._queue.qsize() + self._running

    # -- submitting ---------------------------------------------------------------------
    def submit(self, audio: np.ndarray, language: str | None = None, temperature: float = 0.0,
               words: bool = False, on_segment=None, candidates: list[str] | None = None,
               routing: str | None = None) -> concurrent.futures.Future:
        return self.submit_job(Job(audio, language, float(temperature), words=words, on_segment=on_segment,
                                   candidates=candidates, routing=routing)).future

    def submit_job(self, job: Job) -> Job:
        if self._stopping.is_set():
            raise Cancelled("the server is shutting down")
        self.start()
        self._queue.put(job)
        return job

    async def transcribe(self, audio: np.ndarray, language: str | None = None, temperature: float = 0.0,
                         words: bool = False, candidates: list[str] | None = None, routing: str | None = None):
        return await asyncio.wrap_future(self.submit(audio, language, temperature, words,
                                                     candidates=candidates, routing=routing))

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
            if self._long and self._queue.empty():
                self._long_lane()
                continue
            item = self._queue.get()
            if item is _STOP:
                self._fail_waiting()
                return
            jobs, stop = self._collect(item)
            self._take(jobs)
            if stop:
                self._fail_waiting()
                return

    def _take(self, jobs: list[Job]) -> None:
        """Short jobs are decoded now; long ones join the long lane."""
        # A request whose client went away is cancelled: no work for it.
        live = [j for j in jobs if not j.abandoned.is_set() and j.future.set_running_or_notify_cancel()]
        if not live:
            return
        self.requests += len(live)
        self.batches.append(len(live))
        short = [j for j in live if j.seconds <= SHORT_SECONDS]
        self._long += [j for j in live if j.seconds > SHORT_SECONDS]
        self._running += len(live)
        if short:
            self._process(short)

    def _long_lane(self) -> None:
        """Long jobs of one temperature, side by side a window step at a time (up to
        max_batch; more of that temperature join as others finish), each answered as soon
        as it is done. Short requests are served between steps and inside them."""
        for j in [j for j in self._long if j.abandoned.is_set()]:
            self._answer(j, exc=Cancelled("cancelled"))
        live = [j for j in self._long if not j.abandoned.is_set()]
        if not live:
            self._long = []
            return
        key = (live[0].temperature, live[0].words, live[0].routing)
        temperature, words, routing = key
        members = [j for j in live if (j.temperature, j.words, j.routing) == key]   # index in the call -> job
        self._long = [j for j in live if (j.temperature, j.words, j.routing) != key]

        def serve_waiting(join=None) -> bool:
            """Decode the short requests that arrived meanwhile; long ones join this call
            (same temperature) or wait for the lane."""
            arrived = []
            while not self._stopping.is_set():
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self._stopping.set()
                    self._queue.put(_STOP)   # the main loop ends once this call has stopped
                    break
                arrived.append(item)
            for k in range(0, len(arrived), self.max_batch):
                self._take(arrived[k:k + self.max_batch])
            if join is not None and not self._stopping.is_set():
                for j in [j for j in self._long if (j.temperature, j.words, j.routing) == key
                          and not j.abandoned.is_set()]:
                    self._long.remove(j)
                    index = join(j.audio, j.language)
                    assert index == len(members)
                    members.append(j)
            return bool(arrived)

        def between_windows(join) -> list[int]:
            # Serve what arrived, then say which inputs to stop: clients gone, or stopping.
            self.long_steps += 1
            serve_waiting(join)
            return [i for i, j in enumerate(members) if j.abandoned.is_set() or self._stopping.is_set()]

        def on_segment(i: int, seg) -> None:
            if members[i].on_segment is not None:
                members[i].on_segment(seg)

        def finished(i: int, r) -> None:   # answered at once, not when the whole call ends
            if r.error == "cancelled":
                self._answer(members[i], exc=Cancelled("cancelled"))
            elif r.error:
                self._answer(members[i], exc=JobFailed(r.error))
            else:
                self._answer(members[i], r)

        t = self.transcriber
        options = replace(self.base_options, temperatures=temperatures_from(temperature, self.base_options.temperatures))
        self.calls.append(len(members))
        try:
            # Short requests are also served between encoder layers and decoder token steps
            # (serve_waiting as `preempt`), so they wait for one layer's forward, not a window.
            t.transcribe([j.audio for j in members], language=[j.language for j in members],
                         names=["upload"] * len(members), on_result=finished,
                         between_windows=between_windows, preempt=serve_waiting,
                         vad=self.vad, word_timestamps=words, on_segment=on_segment, options=options,
                         routing=routing, candidates=[j.candidates for j in members])
        except BaseException as exc:  # noqa: BLE001  (the requests fail; the server goes on)
            for j in members:
                self._answer(j, exc=exc)

    def _fail_waiting(self) -> None:
        for j in self._long:
            self._answer(j, exc=Cancelled("the server is shutting down"))
        self._long = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP and item.future.set_running_or_notify_cancel():
                item.future.set_exception(Cancelled("the server is shutting down"))

    def _answer(self, job: Job, result=None, exc: BaseException | None = None) -> None:
        if job.future.done():
            return
        self._running -= 1
        if exc is not None:
            job.future.set_exception(exc)
        else:
            job.future.set_result(result)

    def _process(self, jobs: list[Job]) -> None:
        """Short jobs: one transcribe() call per temperature, answered when it returns."""
        groups: dict[tuple, list[Job]] = {}
        for j in jobs:
            groups.setdefault((j.temperature, j.words, j.routing), []).append(j)
        t = self.transcriber
        for (temperature, words, routing), group in groups.items():
            def on_segment(i, seg, group=group):
                if group[i].on_segment is not None:
                    group[i].on_segment(seg)
            # Options per call: a short batch served between a long call's windows must not
            # change the long call's decoding (nor the Transcriber's defaults).
            options = replace(self.base_options,
                              temperatures=temperatures_from(temperature, self.base_options.temperatures))
            try:
                self.calls.append(len(group))
                results = t.transcribe([j.audio for j in group], language=[j.language for j in group],
                                       names=["upload"] * len(group), vad=self.vad, word_timestamps=words,
                                       on_segment=on_segment, options=options, routing=routing,
                                       candidates=[j.candidates for j in group])
            except BaseException as exc:  # noqa: BLE001  (the requests fail; the server goes on)
                for j in group:
                    self._answer(j, exc=exc)
                continue
            for j, r in zip(group, results):
                if r.error:
                    self._answer(j, exc=JobFailed(r.error))
                else:
                    self._answer(j, r)
