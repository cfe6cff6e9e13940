from comfy_serverless.engine.comfyui.messages import (
    ConnectionLost,
    ExecutionCached,
    ExecutionFinished,
    ExecutionStarted,
    NodeExecuted,
    NodeStarted,
    StepProgress,
)
from comfy_serverless.engine.comfyui.tracker import ExecutionTracker
from workloads.workflows import tiny_sd15

PID = "p"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_spans_the_whole_workflow_and_rises_with_steps() -> None:
    clock = FakeClock()
    tracker = ExecutionTracker(tiny_sd15(1), clock=clock)
    tracker.apply(ExecutionStarted(PID))
    tracker.apply(ExecutionCached(PID, ()))
    seen = []
    for node in ("4", "5", "7", "6"):
        tracker.apply(NodeStarted(PID, node))
        clock.now += 1
    tracker.apply(NodeStarted(PID, "3"))
    for step in range(1, 21):
        tracker.apply(StepProgress(PID, "3", step, 20))
        seen.append(tracker.snapshot())
    assert [s.current_node for s in seen] == ["KSampler"] * 20
    assert seen[0].progress == round((4 + 1 / 20) / 7, 4)
    assert seen[-1].progress == round(5 / 7, 4)
    assert [s.progress for s in seen] == sorted(s.progress for s in seen)
    assert seen[-1].completed_nodes == 4
    tracker.apply(NodeStarted(PID, "8"))
    tracker.apply(NodeStarted(PID, "9"))
    tracker.apply(NodeExecuted(PID, "9", {"images": []}))
    tracker.apply(ExecutionFinished(PID))
    final = tracker.snapshot()
    assert (final.progress, final.completed_nodes, final.current_node) == (1.0, 7, None)


def test_log_has_start_completions_and_model_loads() -> None:
    clock = FakeClock()
    tracker = ExecutionTracker(tiny_sd15(1), clock=clock)
    tracker.apply(ExecutionStarted(PID))
    tracker.apply(NodeStarted(PID, "4"))
    clock.now += 2.5
    tracker.apply(NodeStarted(PID, "5"))
    log = tracker.drain_log()
    assert [entry.event for entry in log] == ["execution_started", "model_loaded",
                                              "node_completed"]
    loaded = log[1]
    assert loaded.node_id == "4"
    assert loaded.details == {"model": "tiny-sd15.safetensors", "load_time": 2.5}
    assert tracker.drain_log() == []


def test_cached_nodes_count_as_completed_without_model_loads() -> None:
    tracker = ExecutionTracker(tiny_sd15(1), clock=FakeClock())
    tracker.apply(ExecutionCached(PID, ("4", "6", "7")))
    assert tracker.snapshot().completed_nodes == 3
    events = [entry.event for entry in tracker.drain_log()]
    assert events == ["node_completed"] * 3


def test_nodes_outside_the_workflow_never_count_as_its_nodes() -> None:
    """The worker's pinned loaders ride in every prompt: cached or run, they are not the
    user's nodes."""
    tracker = ExecutionTracker(tiny_sd15(1), clock=FakeClock())
    tracker.apply(ExecutionCached(PID, ("4", "cs_warm_0")))
    tracker.apply(NodeStarted(PID, "cs_warm_1"))
    tracker.apply(NodeStarted(PID, "5"))
    tracker.apply(NodeStarted(PID, "6"))
    assert tracker.snapshot().completed_nodes == 2, "4 (cached) and 5, not the pinned ones"
    logged = [entry.node_id for entry in tracker.drain_log() if entry.event == "node_completed"]
    assert logged == ["4", "5"]


def _finished_run(*, broken: bool = False) -> ExecutionTracker:
    tracker = ExecutionTracker(tiny_sd15(1))
    tracker.apply(ExecutionStarted(PID))
    tracker.apply(NodeExecuted(PID, "8", {}))  # a cached node without ui output
    if broken:
        tracker.apply(ConnectionLost("socket closed"))
    tracker.apply(NodeExecuted(PID, "9", {"images": [{"filename": "a.png"}]}))
    tracker.apply(ExecutionFinished(PID))
    return tracker


def test_streamed_outputs_are_those_of_a_whole_unbroken_run() -> None:
    assert _finished_run().streamed_outputs() == {"9": {"images": [{"filename": "a.png"}]}}


def test_streamed_outputs_are_unknown_after_a_reconnect_or_before_the_end() -> None:
    assert _finished_run(broken=True).streamed_outputs() is None
    unfinished = ExecutionTracker(tiny_sd15(1))
    unfinished.apply(ExecutionStarted(PID))
    assert unfinished.streamed_outputs() is None


def test_streamed_outputs_are_unknown_when_the_start_was_not_seen() -> None:
    joined_late = ExecutionTracker(tiny_sd15(1))
    joined_late.apply(NodeExecuted(PID, "9", {"images": []}))
    joined_late.apply(ExecutionFinished(PID))
    assert joined_late.streamed_outputs() is None
