"""Reading a downloaded checkpoint folder without transformers or timm (used by L3 ports).

A model downloaded once on a connected machine (``save_pretrained``, ``huggingface-cli
download``) is a folder holding ``config.json`` and the weights in ``model.safetensors`` or
``pytorch_model.bin``, or split into shards listed by ``model.safetensors.index.json`` /
``pytorch_model.bin.index.json``. transformers and timm both write this layout. Each
lesson's ``paper/convert.py`` turns what ``read_checkpoint`` returns into its own model::

    from utils.checkpoints import read_checkpoint

    config, state_dict, path = read_checkpoint("~/models/bert-base-uncased")

The weights are read with safetensors or ``torch.load(weights_only=True)``, so a file from
elsewhere cannot run code when it is loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # the first one present is read


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated download, a non-tensor pickle, ...
        raise ValueError(f"could not read the weights in {path}: {error}") from error


def read_checkpoint(directory: str | Path) -> tuple[dict, dict[str, torch.Tensor], Path]:
    """(config.json as a dict, the state dict with the names as saved, the weights' path).

    Reads ``model.safetensors``, else ``pytorch_model.bin``, else a sharded checkpoint
    (``model.safetensors.index.json`` / ``pytorch_model.bin.index.json``: the path returned
    is the index).
    Raises: FileNotFoundError when the folder, its config.json or its weights are missing,
            naming what the folder holds; ValueError when a weights file cannot be read.
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory {directory} does not exist: download "
                                "one on a connected machine (save_pretrained, or "
                                "huggingface-cli download) and copy it here")
    present = sorted(p.name for p in directory.iterdir())
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{directory} has no config.json (a checkpoint folder holds "
                                f"config.json and {' or '.join(WEIGHT_FILES)}, and a text "
                                f"model's tokenizer files); found: {present}")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return config, _read_tensors(directory / name), directory / name
        index = directory / f"{name}.index.json"
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"]
                                .values()))
            state = {}
            for shard in shards:
                state.update(_read_tensors(directory / shard))
            return config, state, index
    raise FileNotFoundError(f"{directory} has no weights: expected one of {WEIGHT_FILES} (or "
                            f"a sharded *.index.json); found: {present}. A TensorFlow "
                            "checkpoint (*.ckpt.*) must be converted first")
