"""A small random LoRA adapter for SmolLM2-135M, made in the tests (nothing downloaded): the same weights
written in llama.cpp's GGUF adapter format (for llama-server, written with the `gguf` package as
llama.cpp's convert_lora_to_gguf.py writes one) and as a PEFT folder (adapter_config.json and
adapter_model.safetensors, for vLLM).

It adapts each layer's v and o projections, which llama.cpp's conversion leaves in the checkpoint's own
row order (q and k are permuted for its RoPE layout), so both files hold one adapter. Its weights are
large enough that, at scale 1, the greedy reply changes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["RANK", "make_adapter"]

LAYERS, HIDDEN, KV = 30, 576, 192  # SmolLM2-135M: 30 layers, 576 wide, 3 KV heads of 64
RANK = 1
ALPHA = 1.0
# module -> (PEFT name, GGUF name, in features, out features)
MODULES = {"v_proj": ("self_attn.v_proj", "attn_v", HIDDEN, KV), "o_proj": ("self_attn.o_proj", "attn_output", HIDDEN, HIDDEN)}


def _weights(seed: int, strength: float) -> dict[tuple[int, str], tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = {}
    for layer in range(LAYERS):
        for module, (_, _, fan_in, fan_out) in MODULES.items():
            a = rng.normal(0, strength, (RANK, fan_in)).astype(np.float32)  # PEFT's lora_A: (r, in)
            b = rng.normal(0, strength, (fan_out, RANK)).astype(np.float32)  # lora_B: (out, r)
            out[(layer, module)] = a, b
    return out


def make_adapter(folder: Path, name: str = "rand", seed: int = 1, strength: float = 0.25) -> tuple[Path, Path]:
    """(the GGUF adapter file, the PEFT folder) of one random rank-1 adapter, under ``folder``."""
    import gguf
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    weights = _weights(seed, strength)
    path = folder / f"{name}.gguf"
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, ALPHA)
    for (layer, module), (a, b) in weights.items():
        base = f"blk.{layer}.{MODULES[module][1]}.weight"
        writer.add_tensor(base + ".lora_a", a)  # numpy's (r, in) is ggml's ne [in, r], as llama.cpp wants it
        writer.add_tensor(base + ".lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    peft = folder / name
    peft.mkdir(exist_ok=True)
    tensors = {}
    for (layer, module), (a, b) in weights.items():
        prefix = f"base_model.model.model.layers.{layer}.{MODULES[module][0]}"
        tensors[f"{prefix}.lora_A.weight"], tensors[f"{prefix}.lora_B.weight"] = a, b
    save_file(tensors, str(peft / "adapter_model.safetensors"), metadata={"format": "pt"})
    (peft / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": RANK, "lora_alpha": ALPHA, "lora_dropout": 0.0,
        "target_modules": list(MODULES), "bias": "none", "fan_in_fan_out": False, "use_rslora": False,
        "use_dora": False, "modules_to_save": None, "base_model_name_or_path": "smollm2-135m-hf"}, indent=2))
    return path, peft
