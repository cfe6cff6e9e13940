"""Submission's one home: from a SubmitRequest to an execution queued, replayed or refused.

In order: a retried request id answers with its first execution, without validating again;
then the request is validated into an execution (submission.py) under the key's tier, its
webhook URL and tuning are checked, its input images are staged, and the store admits it
under the tier's limits in one transaction (which may find, after all, that a concurrent
twin of the request won). A refused or replayed admission discards the staged inputs. An
admitted one wakes the embedded worker and is answered with its estimate.

A request that is wrong raises its ApiError where it is found. A well-formed request that
the key may not run now (a limit, or a request id reused for another request) is a
SubmitRefused, whose error the caller answers with.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from comfy_serverless.access.admission import (
    admission_limits,
    idempotency_claim,
    limit_refusal,
    reused_key,
)
from comfy_serverless.access.gate import AccessGate
from comfy_serverless.access.tiers import Tier
from comfy_serverless.errors import ApiError, ExecutionNotFound
from comfy_serverless.executions.catalogs import CatalogCache
from comfy_serverless.executions.estimates import Estimate, Estimator
from comfy_serverless.executions.fetched_models import host_check, refuse_unusable_placed_names
from comfy_serverless.executions.known_environments import refuse_unknown_environment
from comfy_serverless.executions.model_requests import with_model_sources
from comfy_serverless.executions.requests import SubmitRequest
from comfy_serverless.executions.submission import Submission, new_execution
from comfy_serverless.executions.tuning import refuse_unavailable_tuning
from comfy_serverless.executions.waiting import waiting_for
from comfy_serverless.inputs.staging import InputStager
from comfy_serverless.settings import Settings
from comfy_serverless.store.access import Admitted, IdempotencyClaim, LimitReached, Replayed
from comfy_serverless.store.records import ApiKeyRecord, ExecutionRecord, NewExecution
from comfy_serverless.store.store import Store
from comfy_serverless.webhooks.ssrf import check_webhook_url

__all__ = ["SubmitAccepted", "SubmitOutcome", "SubmitRefused", "SubmitReplayed", "Submitter"]

# Retry-After for a full queue, or a slot whose end nothing can estimate yet.
_QUEUE_RETRY_SECONDS = 30.0


@dataclass(frozen=True)
class SubmitAccepted:
    """A new execution, queued."""

    execution: NewExecution
    estimate: Estimate
    warnings: list[str]


@dataclass(frozen=True)
class SubmitReplayed:
    """A retried request id: the execution its first request queued, as it is now."""

    execution: ExecutionRecord
    estimate: Estimate


@dataclass(frozen=True)
class SubmitRefused:
    """The key may not run this now: the error says why (and when to retry, if ever)."""

    error: ApiError


SubmitOutcome = SubmitAccepted | SubmitReplayed | SubmitRefused


@dataclass(frozen=True)
class Submitter:
    """Wired once per process (services.py); `wake` tells an embedded worker there is work."""

    settings: Settings
    store: Store
    access: AccessGate
    catalogs: CatalogCache
    inputs: InputStager
    estimator: Estimator
    wake: Callable[[], None]

    async def submit(self, request: SubmitRequest, key: ApiKeyRecord) -> SubmitOutcome:
        now = time.time()
        identity = request.idempotency
        claim = idempotency_claim(identity.request_id, identity.alias, identity.fingerprint, now)
        if claim is not None:
            found = await self.store.access.idempotent_execution(key.id, claim)
            if found is not None:
                return await self._replay(key, claim, found)
        return await self._admit(request, key, claim, now)

    async def _admit(self, request: SubmitRequest, key: ApiKeyRecord,
                     claim: IdempotencyClaim | None, now: float) -> SubmitOutcome:
        tier = self.access.limits(key)
        submission = await self._staged(request, key, tier, now)
        execution = submission.execution
        admission = await self.store.access.admit(execution, admission_limits(tier, now), claim)
        if not isinstance(admission, Admitted):
            await self.inputs.discard(execution)
        if isinstance(admission, LimitReached):
            retry_after = await self._retry_after(key, admission)
            return SubmitRefused(limit_refusal(admission, tier, retry_after,
                                               upgrade_url=self.settings.upgrade_url))
        if isinstance(admission, Replayed):
            assert claim is not None  # only a claimed request id can meet its twin
            return await self._replay(key, claim, admission)
        self.wake()
        estimate = await self.estimator.estimate(execution.as_queued())
        return SubmitAccepted(execution, estimate,
                              submission.warnings + await self._waiting(execution))

    async def _waiting(self, execution: NewExecution) -> list[str]:
        """A warning when it asked for an environment that no live worker can run it in:
        accepted all the same (such a worker may be on its way), and its status says so
        for as long as it is true."""
        if execution.environment is None:
            return []
        note = await waiting_for(execution.as_queued(), self.store,
                                 time.time() - self.settings.live_window())
        return [] if note is None else [str(note["message"])]

    async def _staged(self, request: SubmitRequest, key: ApiKeyRecord, tier: Tier, now: float
                      ) -> Submission:
        """The execution validated and checked, with its model sources checked and its
        input images staged."""
        await refuse_unknown_environment(request.environment, self.store)
        catalog, usable = await self.catalogs.for_tier(host_check(tier))
        refuse_unusable_placed_names(request.workflow, request.input_overrides, usable)
        submission = new_execution(request, key, self.settings, catalog,
                                   tier=tier, policy=self.access.policy,
                                   verified_packs=self.catalogs.verified_node_packs)
        execution = await with_model_sources(submission.execution, request.model_sources,
                                             tier, self.settings)
        await check_webhook_url(execution.webhook_url,
                                self.settings.webhook_policy(), field=request.webhook_field)
        await refuse_unavailable_tuning(request.run, self.store,
                                        now - self.settings.live_window())
        staged = await self.inputs.stage(execution, catalog)
        return Submission(staged, submission.warnings)

    async def _replay(self, key: ApiKeyRecord, claim: IdempotencyClaim, replay: Replayed
                      ) -> SubmitReplayed | SubmitRefused:
        if not replay.same_request:
            return SubmitRefused(reused_key(claim, replay.execution_id))
        execution = await self.store.executions.execution_for_key(replay.execution_id, key.id)
        if execution is None:
            raise ExecutionNotFound(replay.execution_id)
        return SubmitReplayed(execution, await self.estimator.estimate(execution))

    async def _retry_after(self, key: ApiKeyRecord, reached: LimitReached) -> float:
        """When a slot should free up: the soonest estimated end of the key's executions."""
        if reached.limit != "concurrent_executions":
            return _QUEUE_RETRY_SECONDS
        now = time.time()
        # The soonest ends are among the running ones, listed first: a few estimates suffice.
        ends = [estimate.completion_time
                for execution in await self.store.access.unfinished(key.id, limit=3)
                if (estimate := await self.estimator.estimate(execution)).completion_time]
        return max(1.0, min(ends) - now) if ends else _QUEUE_RETRY_SECONDS
