"""Files leave ComfyUI's folders on this machine, and nothing outside them is touched."""

from __future__ import annotations

from pathlib import Path

from comfy_serverless.engine.comfyui.client import ComfyUIClient, WrittenFile
from comfy_serverless.worker.engine_files import EngineFiles, file_identity
from comfy_serverless.worker.output_kinds import files_in_history


def _folders(root: Path) -> dict[str, Path]:
    folders = {kind: root / kind for kind in ("output", "temp", "input")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    return folders


def _written(folders: dict[str, Path], folder_type: str, subfolder: str, name: str
             ) -> WrittenFile:
    return WrittenFile(folder_type, subfolder, name,
                       file_identity(folders[folder_type] / subfolder / name))


async def test_written_outputs_and_previews_are_removed(tmp_path: Path) -> None:
    folders = _folders(tmp_path / "comfyui")
    (folders["output"] / "clips").mkdir()
    saved = folders["output"] / "clips" / "a_00001_.webp"
    preview = folders["temp"] / "ComfyUI_temp_x_00001_.png"
    other = folders["output"] / "b_00001_.png"
    for path in (saved, preview, other):
        path.write_bytes(b"x")
    await EngineFiles(ComfyUIClient("http://127.0.0.1:9"), folders).remove([
        _written(folders, "output", "clips", saved.name),
        _written(folders, "temp", "", preview.name)])
    assert not saved.exists()
    assert not preview.exists()
    assert other.exists(), "another execution's file is not the prompt's"


async def test_a_later_prompts_file_of_the_same_name_is_not_removed(tmp_path: Path) -> None:
    """The first run's file was moved out, so ComfyUI numbered the next run's file with the
    same name: removing the first run's files by name alone would remove the second's."""
    folders = _folders(tmp_path / "comfyui")
    name = "repeat_00001_.png"
    (folders["output"] / name).write_bytes(b"first run")
    first_run = _written(folders, "output", "", name)
    (folders["output"] / name).rename(tmp_path / "stored.png")  # the local collection
    (folders["output"] / name).write_bytes(b"second run")
    await EngineFiles(ComfyUIClient("http://127.0.0.1:9"), folders).remove([first_run])
    assert (folders["output"] / name).read_bytes() == b"second run"


async def test_a_name_that_escapes_its_folder_removes_nothing(tmp_path: Path) -> None:
    folders = _folders(tmp_path / "comfyui")
    outside = tmp_path / "secret.txt"
    outside.write_text("keep")
    files = EngineFiles(ComfyUIClient("http://127.0.0.1:9"), folders)
    await files.remove([WrittenFile("output", "..", "../secret.txt"),
                        WrittenFile("output", "", str(outside)),
                        WrittenFile("output", "", "")])
    await files.remove_staged_input("../../secret.txt")
    assert outside.read_text() == "keep"
    assert folders["output"].is_dir()


async def test_a_file_reported_in_input_is_neither_collected_nor_deleted(tmp_path: Path) -> None:
    """Preview3D copies the user's literal camera_info into its report: a report naming
    input/ (an operator's shared file, another execution's staged upload) is not the
    prompt's file."""
    folders = _folders(tmp_path / "comfyui")
    (folders["input"] / "comfy-serverless").mkdir()
    shared = folders["input"] / "shared.png"
    staged = folders["input"] / "comfy-serverless" / "exe_other_0.png"
    for path in (shared, staged):
        path.write_bytes(b"x")
    history = {"9": {"result": [
        "model.glb", {"filename": "shared.png", "subfolder": "", "type": "input"},
        {"filename": "exe_other_0.png", "subfolder": "comfy-serverless", "type": "input"}]}}
    assert list(files_in_history(history)) == []
    files = EngineFiles(ComfyUIClient("http://127.0.0.1:9"), folders)
    await files.remove([WrittenFile("input", "", "shared.png"),
                        WrittenFile("input", "comfy-serverless", "exe_other_0.png")])
    assert shared.exists()
    assert staged.exists()
    await files.remove_staged_input("exe_other_0.png")
    assert not staged.exists(), "the worker's own upload, by its exact name, is removed"


async def test_reported_files_leave_even_when_the_hooks_cannot_list_them(
        tmp_path: Path) -> None:
    """An interrupted prompt still running, or hooks that did not load: the files its nodes
    reported, identified as they came, are removed anyway, and a later file of one of
    their names is not."""
    folders = _folders(tmp_path / "comfyui")
    saved, preview = folders["output"] / "cut_00001_.png", folders["temp"] / "cut_00002_.png"
    for path in (saved, preview):
        path.write_bytes(b"the prompt's own")
    client = ComfyUIClient("http://127.0.0.1:9")  # no hooks answer there
    files = EngineFiles(client, folders)
    reported = files.identify(files_in_history({"9": {"images": [
        {"filename": saved.name, "subfolder": "", "type": "output"},
        {"filename": preview.name, "subfolder": "", "type": "temp"}]}}))
    assert [file.filename for file in reported] == [saved.name, preview.name]
    preview.rename(tmp_path / "collected.png")
    preview.write_bytes(b"a later prompt's")
    try:
        await files.remove_written("a-prompt-the-hooks-cannot-list", reported)
    finally:
        await client.close()
    assert not saved.exists()
    assert preview.read_bytes() == b"a later prompt's"
