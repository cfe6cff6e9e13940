"""The container end-to-end stage, run by scripts/test-containers (not collected by pytest).

It builds the Debian base and the api and CPU worker images with podman, runs two api and
two worker containers against this machine's PostgreSQL (a scratch schema) and Redis, with
moto's S3 server for outputs, and checks, timing each step:
  1. a job submitted through api-1 completes on a containerised worker;
  2. its output downloads from S3, and api-2 reports the same execution;
  3. `podman stop` (SIGTERM) of the worker running a slow job loses nothing: the job is
     handed back within shutdown_grace and completes on the other worker;
then removes every container and image it made, by id. Any failure exits non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from comfy_serverless.testing import free_ports, scratch_postgres_schema
from comfy_serverless.testing_s3 import S3Server, moto_server
from tests.helpers import wait_for
from workloads.workflows import inverted_image

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("COMFY_SERVERLESS_TEST_POSTGRES",
                              "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("COMFY_SERVERLESS_TEST_REDIS", "redis://127.0.0.1:6379/15")
METRICS_TOKEN = secrets.token_urlsafe(24)
BUCKET = "e2e-outputs"
SHUTDOWN_GRACE = 3
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def slow_blur(color: int, *, size: int = 1024, passes: int = 8) -> dict[str, Any]:
    """A weight-free job that keeps a CPU busy for a while: repeated wide blurs."""
    graph: dict[str, Any] = {"1": {"class_type": "EmptyImage", "inputs": {
        "width": size, "height": size, "batch_size": 1, "color": color}}}
    for index in range(2, passes + 2):
        graph[str(index)] = {"class_type": "ImageBlur", "inputs": {
            "image": [str(index - 1), 0], "blur_radius": 31, "sigma": 10.0}}
    graph[str(passes + 2)] = {"class_type": "SaveImage", "inputs": {
        "filename_prefix": "blur", "images": [str(passes + 1), 0]}}
    return graph


def podman(*args: str) -> str:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:3])} failed: {result.stderr[-2000:]}")
    return result.stdout.strip()


def container_log(container: str) -> str:
    """What a container wrote (its log lines go to stderr, which `podman logs` keeps apart)."""
    return subprocess.run(["podman", "logs", container], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False).stdout


@dataclass
class Stage:
    prebuilt: str | None = field(default_factory=lambda: os.environ.get("CONTAINER_STAGE_IMAGES"))
    tag: str = ""
    containers: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tag = self.tag or self.prebuilt or f"e2e-{secrets.token_hex(3)}"

    @property
    def ids_file(self) -> Path:
        return ROOT / "deploy" / ".build" / f"images-{self.tag}"

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        began = time.monotonic()
        print(f"[stage] {label} ...", file=sys.stderr, flush=True)
        yield
        print(f"[stage] {time.monotonic() - began:6.1f} s  {label}", file=sys.stderr, flush=True)

    def build(self) -> None:
        if self.prebuilt:
            return
        subprocess.run([str(ROOT / "scripts" / "build-images"), "--tag", self.tag,
                        "--ids-file", str(self.ids_file)], check=True)

    def run(self, image: str, name: str, env: dict[str, str], *command: str) -> str:
        flags = [f"--env={key}={value}" for key, value in env.items()]
        container = podman("run", "--detach", "--network=host", f"--name={name}-{self.tag}",
                           f"--stop-timeout={SHUTDOWN_GRACE + 30}", "--health-interval=disable",
                           *flags, f"localhost/comfy-serverless-{image}:{self.tag}", *command)
        self.containers.append(container)
        return container

    def clean_up(self) -> None:
        for container in reversed(self.containers):
            with contextlib.suppress(RuntimeError):
                podman("rm", "--force", "--volumes", container)
        made = set(self.ids_file.read_text().split()) if self.ids_file.exists() else set()
        leftovers = self._remove_images(made)
        self.ids_file.unlink(missing_ok=True)
        if leftovers:
            raise RuntimeError(f"images left behind: {sorted(leftovers)}")

    @staticmethod
    def _remove_images(made: set[str]) -> set[str]:
        """Remove these image ids, children before parents (a parent refuses while it has
        children): pass after pass, until none is left or a pass removes nothing."""
        remaining = made & set(podman("images", "-a", "-q", "--no-trunc").split())
        while remaining:
            for image in sorted(remaining):
                with contextlib.suppress(RuntimeError):
                    podman("rmi", image)
            left = made & set(podman("images", "-a", "-q", "--no-trunc").split())
            if left == remaining:
                break
            remaining = left
        return remaining


@dataclass
class Fleet:
    apis: list[str]
    workers: dict[str, str]  # worker id (also its container name) -> container id
    key: str = ""

    def client(self, index: int) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.apis[index], timeout=30,
                                 headers={"Authorization": f"Bearer {self.key}"})


def fleet_env(database_url: str, s3: S3Server) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "REDIS_URL": REDIS_URL,
            "COMFY_SERVERLESS_SIGNING_SECRET": secrets.token_urlsafe(48),
            # The APIs listen beyond loopback in their containers: /metrics needs the token.
            "COMFY_SERVERLESS_METRICS_TOKEN": METRICS_TOKEN,
            "COMFY_SERVERLESS_HEARTBEAT_INTERVAL": "1",
            "COMFY_SERVERLESS_LEASE_SECONDS": "10",
            "COMFY_SERVERLESS_SHUTDOWN_GRACE": str(SHUTDOWN_GRACE),
            # Each container has its own /data: every output goes to S3.
            "COMFY_SERVERLESS_OUTPUTS_ON_S3_ONLY": "true",
            **s3.env(BUCKET)}


def start_fleet(stage: Stage, env: dict[str, str]) -> Fleet:
    ports = free_ports(4)
    apis = []
    for index, port in enumerate(ports[:2], start=1):
        stage.run("api", f"api-{index}", {**env, "COMFY_SERVERLESS_PORT": str(port)})
        apis.append(f"http://127.0.0.1:{port}")
    workers = {}
    for index, port in enumerate(ports[2:], start=1):
        name = f"worker-{index}-{stage.tag}"
        workers[name] = stage.run("worker", f"worker-{index}",
                                  {**env, "COMFY_SERVERLESS_WORKER_ID": name,
                                   "COMFY_SERVERLESS_COMFYUI_PORT": str(port)})
    return Fleet(apis, workers)


async def live_workers(api: str) -> int:
    with contextlib.suppress(httpx.HTTPError):
        async with httpx.AsyncClient(timeout=5) as http:
            text = (await http.get(api + "/metrics", headers={
                "Authorization": f"Bearer {METRICS_TOKEN}"})).text
        return int(sum(sample.value for family in text_string_to_metric_families(text)
                       if family.name == "comfy_serverless_workers"
                       for sample in family.samples))
    return 0


async def wait_ready(stage: Stage, fleet: Fleet) -> None:
    async def apis_ready() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            async with httpx.AsyncClient(timeout=5) as http:
                return all([(await http.get(api + "/readyz")).status_code == 200
                            for api in fleet.apis])
        return False

    try:
        await wait_for(apis_ready, timeout=120, interval=0.5, what="both API containers")
    except AssertionError:
        for container in stage.containers[:2]:  # what kept them from being ready
            print(f"[stage] log of {container[:12]}:\n{container_log(container)[-3000:]}",
                  file=sys.stderr)
        raise

    async def every_worker_live() -> bool:
        return await live_workers(fleet.apis[1]) == len(fleet.workers)

    await wait_for(every_worker_live, timeout=180, interval=1, what="both worker containers")
    for container in [*fleet.workers.values(), *stage.containers[:2]]:
        podman("healthcheck", "run", container)  # the images' own HEALTHCHECKs pass
    for container in fleet.workers.values():  # what `engine install --manifest` clones with
        podman("exec", container, "git", "--version")
    fleet.key = podman("exec", stage.containers[0], "comfy-serverless", "keys", "create",
                       "--tier", "enterprise")


async def submit(api: httpx.AsyncClient, workflow: dict[str, Any]) -> str:
    response = await api.post("/v1/workflows/execute", json={
        "workflow": workflow, "output_config": {"storage": {"provider": "s3"}}})
    if response.status_code != 202:
        raise AssertionError(f"submit answered {response.status_code}: {response.text}")
    return str(response.json()["execution_id"])


async def status_when(api: httpx.AsyncClient, execution_id: str, statuses: set[str],
                      timeout: float) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        body: dict[str, Any] = (await api.get(f"/v1/workflows/{execution_id}/status")).json()
        return body if body.get("status") in statuses else None

    return await wait_for(reached, timeout=timeout, interval=0.2,
                          what=f"{execution_id} to be {'/'.join(sorted(statuses))}")


async def downloaded_output(api: httpx.AsyncClient, execution_id: str, s3: S3Server) -> bytes:
    results = (await api.get(f"/v1/workflows/{execution_id}/results")).json()
    [output] = results["results"]["outputs"]
    url = output["storage"]["url"]
    if output["storage"]["provider"] != "s3" or not url.startswith(f"{s3.endpoint_url}/{BUCKET}/"):
        raise AssertionError(f"the output is not served from S3: {output['storage']}")
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.get(url)
    if response.status_code != 200 or not response.content.startswith(PNG_MAGIC):
        raise AssertionError(f"the S3 download answered {response.status_code}")
    return response.content


def worker_of(status: dict[str, Any], fleet: Fleet) -> str:
    name = str((status.get("resource_allocation") or {}).get("container_id"))
    if name not in fleet.workers:
        raise AssertionError(f"not run by a worker container: {status.get('resource_allocation')}")
    return name


async def complete_on_a_container(fleet: Fleet, s3: S3Server) -> None:
    async with fleet.client(0) as api_1, fleet.client(1) as api_2:
        execution_id = await submit(api_1, inverted_image(secrets.randbelow(1 << 24)))
        done = await status_when(api_2, execution_id, {"completed", "failed"}, timeout=120)
        if done["status"] != "completed":
            raise AssertionError(f"the job did not complete: {done}")
        print(f"[stage]   {execution_id} completed on {worker_of(done, fleet)}", file=sys.stderr)
        size = len(await downloaded_output(api_2, execution_id, s3))
        print(f"[stage]   output: {size} bytes of PNG from S3, read through api-2",
              file=sys.stderr)


async def stop_a_worker_mid_job(fleet: Fleet, s3: S3Server) -> None:
    async with fleet.client(0) as api_1, fleet.client(1) as api_2:
        execution_id = await submit(api_1, slow_blur(secrets.randbelow(1 << 24)))
        running = await status_when(api_2, execution_id, {"processing"}, timeout=60)
        first = worker_of(running, fleet)
        began = time.monotonic()
        podman("stop", fleet.workers[first])  # SIGTERM; SIGKILL only after --stop-timeout
        stopped_in = time.monotonic() - began
        exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", fleet.workers[first])
        if exit_code != "0" or stopped_in > SHUTDOWN_GRACE + 20:
            raise AssertionError(f"{first} exited {exit_code} after {stopped_in:.1f} s")
        drained = [json.loads(line)["message"]
                   for line in container_log(fleet.workers[first]).splitlines()
                   if line.startswith("{") and f"draining {execution_id}" in line]
        if not drained:
            raise AssertionError(f"{first} did not log what it was draining")
        print(f"[stage]   {first} stopped mid-job in {stopped_in:.1f} s, exit code 0; it "
              f"logged: {drained[0]}", file=sys.stderr)
        done = await status_when(api_2, execution_id, {"completed", "failed"}, timeout=240)
        if done["status"] != "completed":
            raise AssertionError(f"the job was lost: {done}")
        await downloaded_output(api_1, execution_id, s3)
        print(f"[stage]   {execution_id} completed on {worker_of(done, fleet)}; output in S3",
              file=sys.stderr)


async def run_fleet(stage: Stage) -> None:
    async with scratch_postgres_schema(POSTGRES_URL, prefix="e2e") as database_url:
        with moto_server() as s3:
            s3.create_bucket(BUCKET)
            with stage.step("start 2 api and 2 worker containers, until ready"):
                fleet = start_fleet(stage, fleet_env(database_url, s3))
                await wait_ready(stage, fleet)
            with stage.step("submit on api-1, complete on a worker container, read on api-2"):
                await complete_on_a_container(fleet, s3)
            with stage.step("podman stop the worker running a job: nothing is lost"):
                await stop_a_worker_mid_job(fleet, s3)


def main() -> int:
    stage = Stage()
    try:
        with stage.step(f"build the base, api and worker images (tag {stage.tag})"):
            stage.build()
        asyncio.run(run_fleet(stage))
    finally:
        for container in stage.containers:
            (ROOT / "deploy" / ".build" / f"container-{container[:12]}.log").write_text(
                container_log(container))
        with stage.step("remove every container and image made, by id"):
            stage.clean_up()
    print(f"[stage] PASSED in {time.monotonic() - stage.started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
