"""A backend node as the editor builds it from the catalog: its input sockets and widgets.

The editor gives every input a socket: first those with no widget, then the widget inputs,
both in catalog order. Widgets follow the catalog order too, with frontend-only widgets
between them: a `control_after_generate` combo after an input that asks for one (and after
any INT named `seed` or `noise_seed`), plus a `control_filter_list` after a combo's, and an
`upload` button after the inputs of a node with a media-upload combo. These hold a value in
`widgets_values` but are never sent to ComfyUI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from comfy_serverless.validation.catalog import InputSpec, NodeSpec
from comfy_serverless.validation.ui_format.model import UiNode

__all__ = ["LiveInput", "NodeTemplate", "Widget", "as_prompt_value", "node_layout",
           "widget_values"]

WIDGET_TYPES = frozenset({"INT", "FLOAT", "BOOLEAN", "STRING", "COMBO", "MARKDOWN", "COLOR",
                          "IMAGECOMPARE", "CHART", "GALLERIA", "TEXTAREA"})
_SEED_NAMES = ("seed", "noise_seed")
# Classes the editor's extensions give an audio player, or a 3D viewer, as an input widget.
AUDIO_PLAYER_CLASSES = frozenset({"LoadAudio", "SaveAudio", "PreviewAudio", "SaveAudioMP3",
                                  "SaveAudioOpus"})
MESH_PREVIEW_CLASSES = frozenset({"SaveGLB", "Preview3D"})
_IMAGE_UPLOAD_FLAGS = ("image_upload", "animated_image_upload", "video_upload")


@dataclass(frozen=True)
class LiveInput:
    name: str
    type: Any
    link: int | None


@dataclass(frozen=True)
class Widget:
    name: str
    default: Any
    holds_value: bool = True  # has a place in widgets_values
    sent: bool = True  # part of the API prompt
    control: bool = False  # a value the editor counts twice in old files


# Widgets with no socket and no place in widgets_values, that the editor still sends.
SOCKETLESS_WIDGETS = {"PreviewAny": [Widget("preview", "", holds_value=False)]}
# Widgets the editor puts right after an input's own widget.
FOLLOWING_WIDGETS = {("LoadImageOutput", "image"): [
    Widget("Auto-refresh after generation", False, sent=False), Widget("refresh", "refresh")]}
# Classes whose input only the editor can capture (its canvas, camera or microphone).
EDITOR_CAPTURE_CLASSES = frozenset({"Load3D", "WebcamCapture", "RecordAudio"})


def _has_widget(spec: InputSpec) -> bool:
    return spec.type in WIDGET_TYPES and not spec.config.get("forceInput")


def _clamped(value: Any, low: Any, high: Any) -> Any:
    if isinstance(low, int | float) and value < low:
        value = low
    if isinstance(high, int | float) and value > high:
        value = high
    return value


def _default(spec: InputSpec) -> Any:
    config = spec.config
    if "default" in config:
        return config["default"]
    if spec.type == "COMBO":
        return spec.options[0] if spec.options else None
    if spec.type in ("INT", "FLOAT"):
        return _clamped(0, config.get("min"), config.get("max"))
    return {"BOOLEAN": False, "STRING": ""}.get(spec.type)


def _has_control(spec: InputSpec) -> bool:
    flag = spec.config.get("control_after_generate")
    if spec.type == "INT" and flag is None:
        return spec.name in _SEED_NAMES
    return bool(flag)


def _widgets_of(spec: InputSpec) -> list[Widget]:
    widgets = [Widget(spec.name, _default(spec), control=_has_control(spec))]
    if _has_control(spec):
        widgets.append(Widget("control_after_generate", "randomize", sent=False))
        if spec.type == "COMBO":
            widgets.append(Widget("control_filter_list", "", sent=False))
    return widgets


def _editor_inputs(spec: NodeSpec) -> list[tuple[str, Any, list[Widget]]]:
    """The sockets and widgets that the editor's own extensions add to some classes."""
    added = []
    if spec.class_type in AUDIO_PLAYER_CLASSES:
        added.append(("audioUI", "AUDIO_UI", [Widget("audioUI", "", holds_value=False)]))
    if spec.class_type in MESH_PREVIEW_CLASSES:
        added.append(("image", "PREVIEW_3D", [Widget("image", "")]))
    required = [s for s in spec.inputs.values() if s.required and s.type == "COMBO"]
    if any(s.config.get(flag) for s in required for flag in _IMAGE_UPLOAD_FLAGS):
        added.append(("upload", "IMAGEUPLOAD", [Widget("upload", "image", sent=False)]))
    audio = spec.inputs.get("audio")
    if audio is not None and audio.required and audio.config.get("audio_upload") is True:
        added.append(("upload", "AUDIOUPLOAD", [Widget("upload", "", sent=False)]))
    return added


@dataclass(frozen=True)
class NodeTemplate:
    """A class's layout in the editor, worked out once per class and conversion."""

    sockets: tuple[tuple[str, Any], ...]  # input sockets in the editor's order
    widgets: tuple[Widget, ...]
    holders: tuple[Widget, ...]  # the widgets with a place in widgets_values
    counted_forced: tuple[bool, ...]  # old files' value slots: True for a forceInput's

    @classmethod
    def of(cls, spec: NodeSpec) -> NodeTemplate:
        sockets = [(s.name, s.type) for s in spec.inputs.values() if not _has_widget(s)]
        widgets: list[Widget] = []
        for input_spec in spec.inputs.values():
            if _has_widget(input_spec):
                sockets.append((input_spec.name, input_spec.type))
                widgets += _widgets_of(input_spec)
                widgets += FOLLOWING_WIDGETS.get((spec.class_type, input_spec.name), [])
        for name, kind, extra in _editor_inputs(spec):
            sockets.append((name, kind))
            widgets += extra
        widgets += SOCKETLESS_WIDGETS.get(spec.class_type, [])
        names = {widget.name for widget in widgets}
        counted = [bool(s.config.get("forceInput")) for s in spec.inputs.values()
                   if s.name in names or s.config.get("forceInput")
                   for _ in range(2 if _has_control(s) else 1)]
        return cls(tuple(sockets), tuple(widgets),
                   tuple(w for w in widgets if w.holds_value), tuple(counted))


def node_layout(node: UiNode, template: NodeTemplate) -> list[LiveInput]:
    """The node's input sockets, with the file's links matched by name, then any input of
    the file that the class does not declare."""
    links = {slot.name: slot.link for slot in node.inputs}
    inputs = [LiveInput(name, kind, links.get(name)) for name, kind in template.sockets]
    known = {name for name, _ in template.sockets}
    inputs += [LiveInput(s.name, s.type, s.link) for s in node.inputs if s.name not in known]
    return inputs


def _without_forced(values: list[Any], template: NodeTemplate) -> list[Any]:
    """Old files also kept a value for each input with `forceInput`: the editor drops them
    when the count matches exactly."""
    if len(template.counted_forced) != len(values) or not any(template.counted_forced):
        return values
    return [v for forced, v in zip(template.counted_forced, values, strict=True) if not forced]


def widget_values(node: UiNode, template: NodeTemplate) -> tuple[dict[str, Any], list[str]]:
    """Each widget's value, from `widgets_values` in order, and the names of those that took
    their default because the file has no value for them."""
    raw = node.widgets_values
    values = _without_forced(raw, template) if isinstance(raw, list) else []
    found: dict[str, Any] = {widget.name: widget.default for widget in template.widgets}
    defaulted = []
    for index, widget in enumerate(template.holders):
        if index < len(values):
            found[widget.name] = values[index]
        elif widget.sent:
            defaulted.append(widget.name)
    return found, defaulted


def as_prompt_value(value: Any) -> Any:
    """An array widget value is boxed, so that ComfyUI does not read it as a link."""
    return {"__value__": value} if isinstance(value, list) else value
