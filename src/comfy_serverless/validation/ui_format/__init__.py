"""UI-format workflows (what ComfyUI's editor saves), converted to the API format exactly as
the editor's own export does it. See docs/reference/workflow-formats.md."""

from comfy_serverless.validation.ui_format.converter import (
    Conversion,
    UiNodeRef,
    convert_ui_workflow,
)
from comfy_serverless.validation.ui_format.model import is_ui_format

__all__ = ["Conversion", "UiNodeRef", "convert_ui_workflow", "is_ui_format"]
