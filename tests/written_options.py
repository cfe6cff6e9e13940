"""Options columns as the code before typed options wrote them, for the tests that check
the typed options read them and write the same bytes (unit and conformance).

WRITTEN_BEFORE holds what that submit stored (json.dumps of its dict) for the requests of
tests/unit/test_execution_options.py, printed by it; `{id}` stands for the execution id.
"""

from __future__ import annotations

from typing import Any

WRITTEN_BEFORE = [
    '{"metadata": {}, "output_config": {"format": "png", "quality": 95, "compression": null, '
    '"storage": {"provider": "local", "bucket": null, "prefix": "outputs/{id}/", '
    '"public_access": false, "retention_days": null}}, "execution_config": {"priority": 5, '
    '"timeout": 3600, "gpu_memory_fraction": null, "batch_size": null, '
    '"enable_optimization": true, "retry_attempts": null}, "notification_config": '
    '{"webhook_url": null, "include_progress": false, "include_intermediate": false}}',
    '{"metadata": {}, "output_config": {"format": "webp", "quality": 80, "compression": '
    '"lossless", "storage": {"provider": "local", "bucket": null, "prefix": "mine/{id}/x/", '
    '"public_access": true, "retention_days": 7}}, "execution_config": {"priority": 9, '
    '"timeout": 120, "gpu_memory_fraction": 0.5, "batch_size": null, '
    '"enable_optimization": false, "retry_attempts": 3}, "notification_config": '
    '{"webhook_url": "https://example.com/h", "include_progress": true, '
    '"include_intermediate": true}}',
    '{"metadata": {}, "output_config": {"format": "jpg", "quality": 70, "compression": '
    '"lossy", "storage": {"provider": "local", "bucket": null, "prefix": "outputs/{id}/", '
    '"public_access": false, "retention_days": null}}, "execution_config": {"priority": 1, '
    '"timeout": 30, "gpu_memory_fraction": null, "batch_size": null, '
    '"enable_optimization": true, "retry_attempts": 0}, "notification_config": '
    '{"webhook_url": null, "include_progress": true, "include_intermediate": false}}',
]
# The first request's options once the stager added two staged images.
STAGED_BEFORE = WRITTEN_BEFORE[0][:-1] + (
    ', "staged_inputs": [{"node_id": "1", "input": "image", "filename": "{id}_0.png", '
    '"provider": "local", "bucket": null, "key": "outputs/{id}/inputs/{id}_0.png"}, '
    '{"node_id": "2", "input": "image", "filename": "e_1.webp", "provider": "s3", '
    '"bucket": "bucket", "key": "k/e_1.webp"}]}')

# The submit before destinations were resolved (pydantic's dump of the request), and before
# it recorded the timeout.
BEFORE_DESTINATIONS: dict[str, Any] = {
    "metadata": {"title": "t"},
    "output_config": {"format": "jpeg", "quality": 90, "compression": None,
                      "storage": {"provider": "s3", "bucket": "b", "path": "p/{execution_id}",
                                  "public_access": True, "retention_days": 30}},
    "execution_config": {"priority": 3, "gpu_memory_fraction": 0.25, "batch_size": 2,
                         "enable_optimization": True, "retry_attempts": None},
    "notification_config": {"webhook_url": None, "include_progress": True,
                            "include_intermediate": False}}
