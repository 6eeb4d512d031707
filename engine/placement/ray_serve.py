"""The Ray Serve placement: the studio keeps the desk, the API and the voice library, and sends each request to a
Serve deployment of engine replicas, each a local `Engine` owning one model (one GPU each when the cluster has GPUs,
else CPU). Chunks stream back through the deployment handle as the replica makes them.

A request carries the hash of its reference clip; a replica that has not seen that clip asks for it once, and the
request is sent again with the bytes, so replicas on other machines need no shared disk. Each replica keeps its own
bounded clip store and conditionals cache.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import ray
from ray import exceptions, serve
from ray.serve.exceptions import RequestCancelledError

from ..config import EngineConfig
from ..decoding.acceleration import plan
from ..engine import Engine, Job, job_for
from ..errors import Busy, Cancelled, EngineError, SynthesisFailed
from ..pipeline import Synthesizer
from ..request import SynthesisRequest, Voice
from ..voices import VoiceLibrary, clip_key
from . import PlacementChoice

log = logging.getLogger(__name__)

APP_NAME = "chatterbox-studio"
DEPLOYMENT_NAME = "chatterbox-engine"
NAMESPACE = "chatterbox-studio"
BOARD_NAME = "chatterbox-replica-board"
HEARTBEAT_SECONDS = 1.0
LOST_AFTER_SECONDS = 5.0  # a replica not heard from for this long is shown as lost
FORGET_AFTER_SECONDS = 120.0
POLL_SECONDS = 0.25
ROOT = Path(__file__).resolve().parents[2]  # the studio's code, which replicas import
UPLOAD_EXCLUDES = [".venv", ".git", "data", "tests", "docs", "bench", "**/__pycache__"]


# What flows between the studio and a replica.

@dataclass(frozen=True)
class WireRequest:
    """A request as a replica receives it: its voice as the hash of its clip (None: the built-in voice), with the
    clip's bytes only when the replica asked for them."""

    request: SynthesisRequest
    clip_key: str | None
    clip: bytes | None = None


@dataclass(frozen=True)
class ClipWanted:
    """The replica has not seen the request's clip: send it again with the bytes."""


@dataclass(frozen=True)
class Served:
    """The replica that took the request, first on its stream."""

    replica: str
    pid: int
    node: str


@dataclass(frozen=True)
class Failed:
    """The replica's engine ended the request with this error."""

    error: EngineError


@dataclass(eq=False)
class RemoteJob(Job):
    """A job served by a replica: cancelling it cancels the replica's stream; `served` names the replica."""

    served: Served | None = None
    on_cancel: Callable[[], None] | None = field(default=None, repr=False)

    def cancel(self) -> None:
        super().cancel()
        if self.on_cancel is not None:
            self.on_cancel()


# The replica side.

class ClipStore:
    """The reference clips a replica has been sent, by hash; the least recently used leave first."""

    def __init__(self, capacity: int):
        self.capacity = max(1, capacity)
        self._clips: OrderedDict[str, bytes] = OrderedDict()

    def get(self, key: str) -> bytes | None:
        clip = self._clips.get(key)
        if clip is not None:
            self._clips.move_to_end(key)
        return clip

    def put(self, key: str, clip: bytes) -> None:
        self._clips[key] = clip
        self._clips.move_to_end(key)
        while len(self._clips) > self.capacity:
            self._clips.popitem(last=False)


class EngineReplica:
    """One Serve replica: a local Engine on this replica's device, reporting its state to the studio's board."""

    def __init__(self, config: EngineConfig, board_name: str = BOARD_NAME):
        library = VoiceLibrary(Path(tempfile.mkdtemp(prefix="chatterbox-replica-")))  # requests carry their clips
        self.engine = Engine(config, library)
        self.clips = ClipStore(config.voice_cache_size)
        self.served = 0
        self.identity = Served(serve.get_replica_context().replica_id.unique_id, os.getpid(), socket.gethostname())
        self._board = ray.get_actor(board_name, namespace=NAMESPACE)
        threading.Thread(target=self._report, name="chatterbox-replica-report", daemon=True).start()

    async def speak(self, wire: WireRequest):
        """The request's stream: who serves it, then its chunks as the engine makes them; ClipWanted first when its
        clip is needed, Failed when the engine refuses or fails it. A cancelled stream cancels the engine's job."""
        voice = Voice.builtin()
        if wire.clip_key is not None:
            if wire.clip is not None:
                self.clips.put(wire.clip_key, wire.clip)
            clip = self.clips.get(wire.clip_key)
            if clip is None:
                yield ClipWanted()
                return
            voice = Voice(clip=clip)
        yield self.identity
        self.served += 1
        try:
            job = self.engine.submit(replace(wire.request, voice=voice))
        except EngineError as error:
            yield Failed(error)
            return
        chunks = job.poll(POLL_SECONDS)
        try:
            while (item := await asyncio.to_thread(next, chunks, StopIteration)) is not StopIteration:
                if item is not None:
                    yield item
        except EngineError as error:
            yield Failed(error)
        finally:
            job.cancel()  # a no-op once it is done; on a cancelled stream, the engine ends the job within a token

    def status(self) -> dict:
        return {**self.engine.status(), "replica": self.identity.replica, "pid": self.identity.pid,
                "node": self.identity.node, "served": self.served}

    def _report(self) -> None:
        while True:
            try:
                self._board.report.remote(self.identity.replica, self.status())
            except Exception as error:  # the board is gone with its studio; Serve stops this replica soon
                log.warning("Could not report to the studio: %s", error)
            time.sleep(HEARTBEAT_SECONDS)


def replica_board_class() -> type:
    """The class of the small Ray actor the replicas report their state to, for the studio's /health. Made here, so
    that Ray ships its code by value: the actor's process then imports neither the engine nor torch."""

    class ReplicaBoard:
        def __init__(self):
            self._states: dict[str, tuple[float, dict]] = {}

        def report(self, replica: str, state: dict) -> None:
            self._states[replica] = (time.time(), state)

        def states(self, lost_after: float = LOST_AFTER_SECONDS, forget_after: float = FORGET_AFTER_SECONDS) -> list:
            """Each replica heard from lately: "serving", or "lost" when not heard from for `lost_after` seconds."""
            now = time.time()
            self._states = {key: value for key, value in self._states.items() if now - value[0] < forget_after}
            return [{**state, "state": "serving" if now - heard < lost_after else "lost",
                     "last_heard_seconds": round(now - heard, 1)} for heard, state in self._states.values()]

    return ReplicaBoard


# The studio side.

class RayPlacement:
    """Sends requests to a Serve deployment of engine replicas; same submit, stream, cancel and status as Engine."""

    def __init__(self, config: EngineConfig, choice: PlacementChoice, library: VoiceLibrary | None = None):
        self.config = config
        self.choice = choice
        self.library = library or VoiceLibrary(config.voices_dir)
        self.synthesizer = Synthesizer(config, self.library)  # for what needs no model: variants, ignored parameters
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._in_flight = 0
        self.cancelled_jobs = 0
        self.clips_sent = 0  # requests that carried their clip's bytes, as a replica asked for them
        self._started_ray = not ray.is_initialized()
        if self._started_ray:
            ray.init(**ray_init_options(choice))
        self.gpus = int(ray.cluster_resources().get("GPU", 0)) if config.device != "cpu" else 0  # 0: CPU replicas
        self.replica_batch = plan(config.precision, "cuda" if self.gpus else "cpu", config.flow_steps,
                                  config.batch_requests).request_batch
        self.board = ray.remote(replica_board_class()).options(name=BOARD_NAME, namespace=NAMESPACE, num_cpus=0,
                                                      get_if_exists=True).remote()
        serve.start(proxy_location="Disabled")  # the studio calls the deployment through its handle only
        self.handle = serve.run(self._deployment().bind(self._replica_config()), name=APP_NAME, route_prefix=None)
        self.status_message = f"{self.max_replicas} replica(s) of {config.model} on Ray Serve."
        log.info(self.status_message)

    @property
    def max_replicas(self) -> int:
        return self.choice.autoscale[1] if self.choice.autoscale else max(1, self.choice.replicas)

    @property
    def request_batch(self) -> int:
        return self.max_replicas * self.replica_batch

    @property
    def requests_to_fill(self) -> int:
        """Two per batch slot of every replica: one being served, the next waiting in the replica."""
        return 2 * self.request_batch

    def submit(self, request: SynthesisRequest) -> Job:
        """Send `request` to a replica; raises Busy when the studio's queue and every replica are full."""
        job = job_for(request, next(self._ids), self.synthesizer, RemoteJob)
        clip = self._clip(request.voice)
        with self._lock:
            if self._in_flight >= self.config.queue_size + self.requests_to_fill:
                raise Busy(f"The studio is busy with {self._in_flight} requests; try again shortly.",
                           retry_after=max(5, 2 * self.config.queue_size))
            self._in_flight += 1
        threading.Thread(target=self._serve, args=(job, clip), name=f"chatterbox-remote-{job.id}", daemon=True).start()
        return job

    def synthesize(self, request: SynthesisRequest):
        return self.submit(request).result()

    def status(self) -> dict:
        replicas = self.replicas()
        application = serve.status().applications.get(APP_NAME)
        deployment = application.deployments.get(DEPLOYMENT_NAME) if application else None
        return {
            "model": self.config.model,
            "device": f"ray serve ({'GPU' if self.gpus else 'CPU'} replicas)",
            "precision": self.synthesizer.acceleration.describe(),
            "queue_depth": max(0, self._in_flight - sum(r.get("running", 0) for r in replicas)),
            "busy": self._in_flight > 0,
            "running": self._in_flight,
            "message": self.status_message,
            "cached_voices": sum(r.get("cached_voices", 0) for r in replicas),
            "cancelled_jobs": self.cancelled_jobs,
            "placement": "ray",
            "replica_states": dict(deployment.replica_states) if deployment else {},
            "replicas": replicas,
        }

    def replicas(self) -> list[dict]:
        """What each replica last reported, with its state."""
        return sorted(ray.get(self.board.states.remote()), key=lambda state: state["replica"])

    def close(self) -> None:
        """Delete the deployment; stop Ray too when this studio started it."""
        serve.delete(APP_NAME)
        if self._started_ray:
            serve.shutdown()
            ray.shutdown()

    def _deployment(self):
        resources = {"num_gpus": 1} if self.gpus else {"num_cpus": 1}
        scaling = ({"autoscaling_config": {"min_replicas": self.choice.autoscale[0],
                                           "max_replicas": self.choice.autoscale[1],
                                           "target_ongoing_requests": self.replica_batch}}
                   if self.choice.autoscale else {"num_replicas": max(1, self.choice.replicas)})
        return serve.deployment(EngineReplica, name=DEPLOYMENT_NAME, ray_actor_options=resources,
                                max_ongoing_requests=2 * self.replica_batch + 1, **scaling)

    def _replica_config(self) -> EngineConfig:
        """The engine config each replica runs: the studio's, on the GPU Ray gives it when there are GPUs."""
        return replace(self.config, device="cuda") if self.gpus and self.config.device == "auto" else self.config

    def _clip(self, voice: Voice) -> bytes | None:
        """The request's reference clip (a library voice's, read here), or None for the built-in voice."""
        return voice.clip if voice.clip is not None or voice.library_id is None else self.library.clip(voice.library_id)

    def _serve(self, job: RemoteJob, clip: bytes | None) -> None:
        """Stream `job` from a replica into the job, sending the clip's bytes only when the replica asks for them."""
        try:
            key = clip_key(clip) if clip is not None else None
            request = replace(job.request, voice=Voice.builtin())
            if self._stream(job, WireRequest(request, key)) is ClipWanted:
                self.clips_sent += 1
                self._stream(job, WireRequest(request, key, clip))
            job.end()
        except EngineError as error:
            job.end(error)
        except Exception as error:
            job.end(self._remote_error(job, error))
        finally:
            with self._lock:
                self._in_flight -= 1

    def _stream(self, job: RemoteJob, wire: WireRequest):
        """Deliver the replica's chunks to `job`; ClipWanted when the replica asked for the clip."""
        response = self.handle.options(stream=True).speak.remote(wire)
        job.on_cancel = response.cancel
        if job.cancelled:
            response.cancel()
        for item in response:
            if isinstance(item, ClipWanted):
                return ClipWanted
            if isinstance(item, Served):
                job.served, job.stage, job.started = item, "running", time.perf_counter()
            elif isinstance(item, Failed):
                raise item.error
            else:
                job.deliver(item)
        return None

    def _remote_error(self, job: RemoteJob, error: Exception) -> EngineError:
        """What the client is told when the cluster, not the engine, ended its request."""
        if isinstance(error, (RequestCancelledError, exceptions.TaskCancelledError)) or job.cancelled:
            self.cancelled_jobs += 1
            return Cancelled("The request was cancelled.")
        if isinstance(error, (exceptions.RayActorError, exceptions.ActorUnavailableError)):
            where = f" (replica {job.served.replica} on {job.served.node})" if job.served else ""
            log.error("Job %d lost its replica%s: %s", job.id, where, error)
            return SynthesisFailed(f"The replica serving this request stopped{where}; Ray Serve restarts it and the "
                                   f"other replicas keep serving. Send the request again.")
        log.exception("Job %d failed on the cluster", job.id, exc_info=error)
        return SynthesisFailed(f"The Ray cluster failed this request ({error.__class__.__name__}: {error}).")


def ray_init_options(choice: PlacementChoice) -> dict:
    """How this studio joins Ray: a new local instance (no dashboard), or the cluster at --ray-address, to which it
    uploads its code, as replicas on other machines import it."""
    if choice.ray_address:
        return {"address": choice.ray_address, "namespace": NAMESPACE, "log_to_driver": False,
                "runtime_env": {"working_dir": str(ROOT), "excludes": UPLOAD_EXCLUDES}}
    return {"namespace": NAMESPACE, "include_dashboard": False, "log_to_driver": False,
            "runtime_env": {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                                                    os.environ.get("PYTHONPATH")]))}}}
