"""Build a tiny, random-weight checkpoint that ComfyUI detects as SD1.5.

Runs inside the engine's own Python (it needs torch and ComfyUI), not the service's:

    <engine>/venv/bin/python build_tiny_checkpoint.py --comfyui-dir <ComfyUI> --out <file>

The UNet keeps SD1.5's detection keys (model_channels 320, context_dim 768) with one level
and one res block; the text encoder is the full CLIP-L; the VAE is a TAESD. Weights are
N(0, 0.02), norms 1 and biases 0, stored as fp16. It gives real sampler progress on a CPU.
"""

import argparse
import os
import sys


def build(comfyui_dir: str, out: str, seed: int) -> None:
    sys.path.insert(0, comfyui_dir)
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    import comfy.sd1_clip
    import comfy.taesd.taesd
    import torch
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    unet = UNetModel(
        image_size=32, in_channels=4, model_channels=320, out_channels=4, num_res_blocks=1,
        channel_mult=[1], num_heads=8, use_spatial_transformer=True, transformer_depth=[1],
        transformer_depth_output=[1, 1], transformer_depth_middle=1, context_dim=768,
        use_linear_in_transformer=False, legacy=False,
    )
    clip = comfy.sd1_clip.SDClipModel(device="cpu")
    vae = comfy.taesd.taesd.TAESD(latent_channels=4)

    tensors = {}
    for prefix, module in (
        ("model.diffusion_model.", unet),
        ("cond_stage_model.", clip),
        ("first_stage_model.", vae),
    ):
        for name, tensor in module.state_dict().items():
            tensors[prefix + name] = _randomised(name, tensor, torch)
    tensors.pop("cond_stage_model.transformer.text_projection.weight", None)
    tensors.pop("cond_stage_model.logit_scale", None)
    tensors["first_stage_model.vae_scale"] = torch.tensor(0.18215, dtype=torch.float16)
    tensors["first_stage_model.vae_shift"] = torch.tensor(0.0, dtype=torch.float16)

    partial = out + ".partial"
    save_file({k: v.contiguous() for k, v in tensors.items()}, partial)
    os.replace(partial, out)


def _randomised(name, tensor, torch):
    if not tensor.is_floating_point():
        return tensor.clone()
    if name.endswith("bias"):
        filled = torch.zeros_like(tensor)
    elif "norm" in name and name.endswith("weight"):
        filled = torch.ones_like(tensor)
    elif name.endswith("position_ids"):
        filled = tensor.clone()
    else:
        filled = torch.randn_like(tensor) * 0.02
    return filled.to(torch.float16)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--comfyui-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=1234)
    arguments = parser.parse_args()
    build(arguments.comfyui_dir, arguments.out, arguments.seed)
