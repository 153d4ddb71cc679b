"""SyncNet (Chung & Zisserman 2016), the network behind the LSE-C / LSE-D lip-sync metrics.

The layer layout is syncnet_python's ``SyncNetModel.S`` (1024-d embeddings), with the same module indices, so
``syncnet_v2.model`` (a mapping name -> tensor) loads into it key for key:

* audio: ``netcnnaud`` (2-D convolutions over a ``[1, 13, 20]`` MFCC window) then ``netfcaud``;
* lips: ``netcnnlip`` (3-D convolutions over 5 BGR frames ``[3, 5, 224, 224]``, pixels 0..255) then
  ``netfclip``.

Only the channel widths are parameters (`SyncNetWidths`): the official file has the widths of `OFFICIAL_WIDTHS`;
the tiny test set stores the same layers at 1/8 of the width. The input sizes are fixed by the layers (224x224
frames, 13x20 MFCC windows) whatever the widths. `load_syncnet` reads the widths from the file's tensor shapes
and then loads strictly: every key present with its exact shape, nothing else. The 14 BatchNorm
``num_batches_tracked`` counters may be present or absent (they are unused in eval mode); float16 files are
converted to float32.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsError

WEIGHTS_FILE = "syncnet_v2.model"


@dataclass(frozen=True)
class SyncNetWidths:
    aud: tuple[int, int, int, int, int, int] = (64, 192, 384, 256, 256, 512)  # conv output channels, in order
    lip: tuple[int, int, int, int, int, int] = (96, 256, 256, 256, 256, 512)
    hidden: int = 512  # fc hidden width of both branches
    embedding: int = 1024  # output size of both branches


OFFICIAL_WIDTHS = SyncNetWidths()
TINY_WIDTHS = SyncNetWidths((8, 24, 48, 32, 32, 64), (12, 32, 32, 32, 32, 64), 64, 128)  # 1/8: the tiny test set


def _audio_cnn(c: tuple[int, ...]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, c[0], 3, padding=1),  # 0
        nn.BatchNorm2d(c[0]),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(1, 1),  # 3
        nn.Conv2d(c[0], c[1], 3, padding=1),  # 4
        nn.BatchNorm2d(c[1]),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, (1, 2)),  # 7
        nn.Conv2d(c[1], c[2], 3, padding=1),  # 8
        nn.BatchNorm2d(c[2]),
        nn.ReLU(inplace=True),
        nn.Conv2d(c[2], c[3], 3, padding=1),  # 11
        nn.BatchNorm2d(c[3]),
        nn.ReLU(inplace=True),
        nn.Conv2d(c[3], c[4], 3, padding=1),  # 14
        nn.BatchNorm2d(c[4]),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2),  # 17
        nn.Conv2d(c[4], c[5], (5, 4)),  # 18
        nn.BatchNorm2d(c[5]),
        nn.ReLU(inplace=True),
    )


def _lip_cnn(c: tuple[int, ...]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(3, c[0], (5, 7, 7), stride=(1, 2, 2)),  # 0
        nn.BatchNorm3d(c[0]),
        nn.ReLU(inplace=True),
        nn.MaxPool3d((1, 3, 3), (1, 2, 2)),  # 3
        nn.Conv3d(c[0], c[1], (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)),  # 4
        nn.BatchNorm3d(c[1]),
        nn.ReLU(inplace=True),
        nn.MaxPool3d((1, 3, 3), (1, 2, 2), padding=(0, 1, 1)),  # 7
        nn.Conv3d(c[1], c[2], (1, 3, 3), padding=(0, 1, 1)),  # 8
        nn.BatchNorm3d(c[2]),
        nn.ReLU(inplace=True),
        nn.Conv3d(c[2], c[3], (1, 3, 3), padding=(0, 1, 1)),  # 11
        nn.BatchNorm3d(c[3]),
        nn.ReLU(inplace=True),
        nn.Conv3d(c[3], c[4], (1, 3, 3), padding=(0, 1, 1)),  # 14
        nn.BatchNorm3d(c[4]),
        nn.ReLU(inplace=True),
        nn.MaxPool3d((1, 3, 3), (1, 2, 2)),  # 17
        nn.Conv3d(c[4], c[5], (1, 6, 6)),  # 18
        nn.BatchNorm3d(c[5]),
        nn.ReLU(inplace=True),
    )


def _head(inputs: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inputs, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out)
    )


class SyncNet(nn.Module):
    """syncnet_python's ``S``: `forward_aud` embeds MFCC windows, `forward_lip` embeds 5-frame clips."""

    def __init__(self, widths: SyncNetWidths = OFFICIAL_WIDTHS):
        super().__init__()
        self.widths = widths
        self.netcnnaud = _audio_cnn(widths.aud)
        self.netfcaud = _head(widths.aud[-1], widths.hidden, widths.embedding)
        self.netfclip = _head(widths.lip[-1], widths.hidden, widths.embedding)
        self.netcnnlip = _lip_cnn(widths.lip)

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 1, 13, 20]`` MFCC windows -> ``[N, embedding]``."""
        return self.netfcaud(self.netcnnaud(x).flatten(1))

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, 3, 5, 224, 224]`` BGR clips, float 0..255 -> ``[N, embedding]``."""
        return self.netfclip(self.netcnnlip(x).flatten(1))


_CONV_INDICES = (0, 4, 8, 11, 14, 18)


def widths_from_state_dict(state: Mapping[str, torch.Tensor]) -> SyncNetWidths:
    """The channel widths a SyncNet state dict was saved with (read from its conv / linear weight shapes)."""
    try:
        aud = tuple(int(state[f"netcnnaud.{i}.weight"].shape[0]) for i in _CONV_INDICES)
        lip = tuple(int(state[f"netcnnlip.{i}.weight"].shape[0]) for i in _CONV_INDICES)
        hidden = int(state["netfcaud.0.weight"].shape[0])
        embedding = int(state["netfcaud.3.weight"].shape[0])
    except (KeyError, AttributeError, IndexError) as exc:
        raise ValueError(f"not a SyncNet state dict (no {exc})") from exc
    return SyncNetWidths(aud, lip, hidden, embedding)  # type: ignore[arg-type]


def load_state_strict(model: SyncNet, state: Mapping[str, torch.Tensor]) -> None:
    """Copy ``state`` into ``model``: every parameter and running statistic present with its shape, no extra key.

    ``num_batches_tracked`` counters may be missing (then left at 0). Values are cast to the model's dtype.
    """
    own = model.state_dict()
    optional = {k for k in own if k.endswith("num_batches_tracked")}
    missing = sorted(set(own) - set(state) - optional)
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(
        f"{k}: file {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(state[k].shape) != tuple(own[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if unexpected:
        problems.append(
            f"{len(unexpected)} unexpected key(s): {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}"
        )
    if wrong:
        problems.append("wrong shape(s): " + "; ".join(wrong[:5]))
    if problems:
        raise ValueError("; ".join(problems))
    with torch.no_grad():
        for key, value in state.items():
            own[key].copy_(value.to(own[key].dtype))


def load_syncnet(path: str | Path, device: str | torch.device = "cpu") -> SyncNet:
    """Load a ``syncnet_v2.model`` file (official or tiny) strictly; the model is in eval mode, float32.

    Raises:
        WeightsError: the file cannot be read or is not a SyncNet state dict of a consistent layout.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a weights problem
        raise WeightsError(f"SyncNet weights '{path}' cannot be read: {exc}") from exc
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        raise WeightsError(
            f"SyncNet weights '{path}' hold a training checkpoint ('state_dict' inside); give syncnet_v2.model, the "
            "plain name -> tensor mapping of syncnet_python"
        )
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"SyncNet weights '{path}' are not a mapping of names to tensors")
    try:
        model = SyncNet(widths_from_state_dict(state))
        load_state_strict(model, state)
    except ValueError as exc:
        raise WeightsError(f"SyncNet weights '{path}' do not fit syncnet_python's network: {exc}") from exc
    return model.to(device).eval()
