"""Which files a workflow may name (docs/reference/security.md, "Which files a workflow may
name").

A *loader input* names a file that ComfyUI opens from its input, output or temp folder:
every input whose catalog entry has an `*_upload` flag or an `image_folder` (LoadImage,
LoadImageMask, LoadImageOutput, LoadAudio, LoadVideo, Load3D …), plus those ComfyUI's code
opens without a flag (LoadLatent, WebcamCapture, GeminiInputFiles, OpenAIInputFiles;
tests/fixtures/comfyui_file_inputs.txt lists them all, built from ComfyUI's source).
It may name only
- a file the operator publishes: one of the names that the workers' catalog lists for that
  very input (the files ComfyUI lists at the top level of its input folder), exactly as
  listed; or
- for image inputs, an https URL or base64 data, which submit stages as this execution's own
  `comfy-serverless/<execution>_<n>.<ext>` (inputs/staging.py).
Every other name is refused, whatever its spelling: ComfyUI's annotations (`[output]`,
`[temp]`, `[input]`), folders, `..`, absolute paths, backslashes, percent-encoding, control
characters, compatibility look-alikes (a name that NFKC changes), and a staged name typed by
hand (`comfy-serverless/…`, another execution's input).

An *output name* (`filename_prefix`, and the folders that the dataset and LoRA savers write
in ComfyUI's output folder) is a relative path that stays inside that folder: plain segments
separated by `/`, at most max_filename_prefix_length bytes, whose first segment is not one of
the model folders ComfyUI registers under output. A node that reads a folder of ComfyUI's
output (LoadTrainingDataset) or a subfolder of its input (the image dataset loaders) is
refused: nothing there is published.

Every such input takes only a literal (a link is refused: submit could not check the name),
and is checked as ComfyUI will use it, unwrapped from `{"__value__": …}`.

An *object input* (a literal whose value is a JSON object, such as Load3D's `image`, whose
`image`, `mask`, `normal` and `recording` are annotated paths that ComfyUI opens, and whose
`camera_info` Preview3D copies into its reported files) never names a file: at any depth
it may not carry a `filename`, `subfolder` or `type` key, a non-empty `image`, `mask`,
`normal` or `recording`, or a string with a folder annotation or a staged name. There is
no exception for the execution's own files: the service stages none for such inputs.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from comfy_serverless.validation.catalog import InputSpec
from comfy_serverless.validation.findings import listed
from comfy_serverless.validation.rules import ValidationRules

__all__ = [
    "MODEL_SAVERS",
    "OUTPUT_MODEL_FOLDERS",
    "STAGED_PREFIX",
    "NameProblem",
    "name_problems",
    "is_image_loader",
    "link_problem",
    "names_a_file",
    "object_problem",
    "takes_a_name",
    "unwrapped",
    "output_name_problem",
    "reference_problem",
    "spelling_of_reference_problem",
]

# Where staged inputs live in ComfyUI's input folder; typed by a tenant, it is refused.
STAGED_PREFIX = "comfy-serverless/"
# Loaders known without a catalog, and those whose catalog entry carries no upload flag.
_KNOWN_LOADERS = frozenset({
    ("LoadImage", "image"), ("LoadImageMask", "image"), ("LoadImageOutput", "image"),
    ("LoadLatent", "latent"), ("LoadVideo", "file"), ("LoadAudio", "audio"),
    ("Load3D", "model_file"), ("GeminiInputFiles", "file"), ("OpenAIInputFiles", "file"),
    ("WebcamCapture", "image"),  # a WEBCAM input, opened with get_annotated_filepath
})
_KNOWN_IMAGE_LOADERS = frozenset({("LoadImage", "image"), ("LoadImageMask", "image")})
_OUTPUT_FOLDER_WRITERS = frozenset({
    ("SaveImageDataSetToFolder", "folder_name"), ("SaveImageTextDataSetToFolder", "folder_name"),
    ("SaveTrainingDataset", "folder_name"), ("SaveLoRA", "prefix"),
})
_OUTPUT_FOLDER_READERS = frozenset({("LoadTrainingDataset", "folder_name")})
# Nodes that read a whole subfolder of ComfyUI's input folder (their COMBO lists every
# subfolder, `comfy-serverless` with other executions' staged inputs among them); nothing
# below the top level of that folder is published.
_INPUT_FOLDER_READERS = frozenset({
    ("LoadImageDataSetFromFolder", "folder"), ("LoadImageTextDataSetFromFolder", "folder"),
})
# The folders under output that ComfyUI registers as model folders (main.py): a file saved
# there is listed in every tenant's model options at the next catalog publish.
OUTPUT_MODEL_FOLDERS = ("checkpoints", "clip", "vae", "diffusion_models", "loras")
# The nodes that save a model into the output folder (refused unless allow_model_savers).
MODEL_SAVERS = frozenset({"CheckpointSave", "ImageOnlyCheckpointSave", "ModelSave", "CLIPSave",
                          "VAESave", "LoraSave", "SaveLoRA"})
_ANNOTATION = re.compile(r"\[\s*(input|output|temp)\s*\]", re.IGNORECASE)
_PERCENT_ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_URL_OR_DATA = re.compile(r"^(data:|[a-zA-Z][a-zA-Z0-9+.\-]*://)", re.IGNORECASE)


@dataclass(frozen=True)
class NameProblem:
    error: str
    suggestion: str


def names_a_file(class_type: str, name: str, spec: InputSpec | None) -> bool:
    """Whether this input is a loader's: it names a file in ComfyUI's folders."""
    return (class_type, name) in _KNOWN_LOADERS or (spec is not None and spec.marks_a_file)


def is_image_loader(class_type: str, name: str, spec: InputSpec | None) -> bool:
    """Whether this input takes an image that submit may stage (an https URL or base64
    data), rather than only a published name; `spec` is None without a catalog."""
    if spec is not None:
        return bool(spec.config.get("image_upload")) and "image_folder" not in spec.config
    return (class_type, name) in _KNOWN_IMAGE_LOADERS


def unwrapped(value: Any) -> Any:
    """The value ComfyUI hands the node: it unwraps `{"__value__": v}` once, whatever the
    input (execution.py, validate_inputs)."""
    if isinstance(value, dict) and "__value__" in value:
        return value["__value__"]
    return value


def _reads_an_input_folder(class_type: str, name: str) -> bool:
    return (class_type, name) in _INPUT_FOLDER_READERS


def takes_a_name(class_type: str, name: str, spec: InputSpec | None) -> bool:
    """Whether this input's value names a file or folder on the host: a loader's file, an
    output name or a folder that a node reads."""
    return (name == "filename_prefix" or (class_type, name) in _OUTPUT_FOLDER_WRITERS
            or (class_type, name) in _OUTPUT_FOLDER_READERS
            or _reads_an_input_folder(class_type, name)
            or names_a_file(class_type, name, spec))


def link_problem(class_type: str, name: str, spec: InputSpec | None) -> NameProblem | None:
    """A name must be a literal, which submit can check: a link into an input that names a
    file or folder is refused, whatever it comes from (a primitive, a custom node's `*`)."""
    if not takes_a_name(class_type, name, spec):
        return None
    return NameProblem(f"Input '{name}' names a file or folder and takes a link: "
                       "only a literal name can be checked at submit",
                       f"Give '{name}' as a literal value, not as [node_id, output_index]")


def name_problems(class_type: str, name: str, value: Any, spec: InputSpec | None,
                  rules: ValidationRules) -> list[NameProblem]:
    """What is wrong with `value` as the file or folder name that this input gives, if it
    names one; [] otherwise. `spec` is the input's catalog entry (None without a catalog).
    The value is checked as ComfyUI will use it: unwrapped from `{"__value__": …}`."""
    if not takes_a_name(class_type, name, spec):
        return []
    value = unwrapped(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)  # ComfyUI's own str() of a STRING input
    if not isinstance(value, str):
        return [NameProblem(f"'{name}' must be a name, not {type(value).__name__}",
                            f"Give '{name}' as text")]
    if (class_type, name) in _OUTPUT_FOLDER_READERS:
        return [NameProblem(f"'{class_type}' reads '{name}' from ComfyUI's output folder, "
                            "which holds other executions' files",
                            "Remove it: no file in the output folder is published")]
    if _reads_an_input_folder(class_type, name):
        return [NameProblem(f"'{class_type}' reads the folder '{name}' of ComfyUI's input "
                            "folder, whose subfolders hold other executions' inputs",
                            "Remove it: only files at the top of the input folder are "
                            "published")]
    if name == "filename_prefix" or (class_type, name) in _OUTPUT_FOLDER_WRITERS:
        reason = output_name_problem(value, rules.max_filename_prefix_length)
        return [NameProblem(f"'{name}' {reason}", _OUTPUT_HINT)] if reason else []
    if not names_a_file(class_type, name, spec):
        return []
    if _URL_OR_DATA.match(value) and is_image_loader(class_type, name, spec):
        return []  # staged at submit, and checked there
    published = tuple(str(option) for option in (spec.options or ())) if spec else ()
    reason = reference_problem(value, published)
    return [NameProblem(f"'{name}' {reason}", _published_hint(published))] if reason else []


# In an object input: keys that report a file to ComfyUI, and Load3D's file paths.
_FILE_KEYS = frozenset({"filename", "subfolder", "type"})
_PATH_KEYS = frozenset({"image", "mask", "normal", "recording"})


def object_problem(name: str, value: Any) -> NameProblem | None:
    """Why the object literal `value` of input `name` names a file, or None (also for a
    value that is not an object)."""
    if not isinstance(value, dict):
        return None
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and (_ANNOTATION.search(item) or STAGED_PREFIX in item):
            return _object_names_a_file(name, f"the name '{item}'")
        elif isinstance(item, dict):
            for key, inner in item.items():
                if key in _FILE_KEYS or (key in _PATH_KEYS and inner not in ("", None)):
                    return _object_names_a_file(name, f"'{key}'")
                stack.append(inner)
    return None


def _object_names_a_file(name: str, what: str) -> NameProblem:
    return NameProblem(f"'{name}' is an object that names a file ({what}): an object input "
                       "cannot name ComfyUI's files",
                       "Remove the file fields (filename, subfolder, type, image, mask, "
                       "normal, recording) from the object")


_OUTPUT_HINT = ("Use a relative name such as 'renders/cat': plain segments separated by '/', "
                "no '..', no absolute path, no backslash, no escapes or control characters, "
                f"not in a model folder ({', '.join(OUTPUT_MODEL_FOLDERS)})")


def _spelling_problem(value: str) -> str | None:
    """The spellings refused in any name, whatever it names."""
    if _CONTROL.search(value):
        return "contains control characters"
    if unicodedata.normalize("NFKC", value) != value:
        return "contains characters that stand for others (compatibility look-alikes)"
    if _PERCENT_ESCAPE.search(value):
        return "contains percent-encoded characters"
    if "\\" in value:
        return "contains a backslash"
    if value.startswith("/") or re.match(r"^[a-zA-Z]:", value):
        return "is an absolute path"
    if any(segment in ("", ".", "..") for segment in value.split("/")):
        return "has an empty, '.' or '..' path segment"
    return None


def output_name_problem(value: str, max_bytes: int) -> str | None:
    """Why `value` cannot name an output file or folder, or None."""
    if not value:
        return "is empty"
    if len(value.encode()) > max_bytes:
        return f"is {len(value.encode())} bytes long, more than max_filename_prefix_length " \
               f"{max_bytes}"
    return _spelling_problem(value) or _model_folder_problem(value)


def _model_folder_problem(value: str) -> str | None:
    first = value.split("/", 1)[0]
    if first.casefold() in OUTPUT_MODEL_FOLDERS:
        return (f"starts with '{first}', a model folder of ComfyUI's output: what is saved "
                "there becomes a model for every tenant")
    return None


def spelling_of_reference_problem(value: str) -> str | None:
    """Why `value` can never name a file for a loader, published or not; or None."""
    if not value:
        return "names no file"
    if _ANNOTATION.search(value):
        return f"names '{value}', with a folder annotation: only published files may be read"
    if value.startswith(STAGED_PREFIX):
        return f"names '{value}', a staged input: only the service may name those"
    if (problem := _spelling_problem(value)) is not None:
        return f"names '{value}', which {problem}"
    return None


def reference_problem(value: str, published: tuple[str, ...]) -> str | None:
    """Why `value` cannot name a file for a loader that publishes `published`, or None."""
    if (problem := spelling_of_reference_problem(value)) is not None:
        return problem
    if value not in published:
        return f"names '{value}', which is not a published input file"
    return None


def _published_hint(published: tuple[str, ...]) -> str:
    if not published:
        return ("This input publishes no files: give an image input an https URL or base64 "
                "data (data:image/png;base64,…)")
    return (f"Use a published file: {listed(published)}; or give an image input an https URL "
            "or base64 data")
