"""``python -m joygen train CONFIG``: train the editor UNet as the paper describes (JoyGen §4.5, §5).

Per sample (`EditorDataset`): the 256x256 face of a frame (the target), a reference face from the same video
at least 5 frames away, the frame's mouth depth -- fed in half of the samples, shifted by a random
displacement of up to ±5 px (the paper's perturbation; the released code meant to, but its
``random_translate`` is undefined, so its depth is always black) and black otherwise -- and the frame's
Whisper chunk. The same random resized crop goes over target, reference and depth, the same colour jitter
and grey conversion over target and reference.

Per step: VAE latents of [target with the lower half black, reference, depth with the upper half black]
-> the UNet at t = 0 with the audio tokens -> predicted latent. Loss = ``lambda_latent`` x L1 to the target's
latent + ``lambda_pixel`` x L1 between the decoded prediction and the target on the lower half ([-1, 1]
space; gradients flow through the frozen decoder). The paper weighs latent 2, pixel 1; the released code
uses latent 1, pixel 2: both are settings. Adam at 1e-5 and a global batch of 128 are the paper's.

Runs under Hugging Face accelerate (one process, several GPUs, several machines: ``accelerate launch
-m joygen train CONFIG``). Checkpoints are diffusers UNet folders (``checkpoint-NNNNNNN/unet``), loadable by
`JoyGenPipeline.from_pretrained(..., unet=...)`, next to the accelerate state for resuming.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch.utils.data import Dataset

from ..editor.mouth_editor import FACE_SIZE, OFFICIAL_UNET_CONFIG, MouthEditor, load_unet, load_vae
from ..editor.whisper import chunk_indices, tokens_from_states
from ..errors import InputError
from ..face3d.render import lip_mask

HALF = FACE_SIZE // 2


@dataclass
class TrainConfig:
    """Settings of a training run; the defaults are the paper's. See ``configs/train.yaml``."""

    data: str = "data/prepared"  # a `python -m joygen prepare` output folder
    output: str = "runs/editor"  # checkpoints, logs and validation frames go here
    weights: str | None = None  # joygen weights folder (the VAE, and the UNet to start from)
    unet_init: str = "official"  # "official" (the weights' UNet), "scratch", or a diffusers UNet folder
    unet_config: dict | str = "official"  # architecture for "scratch": "official" or a UNet2DConditionModel dict
    steps: int = 200_000
    batch_size: int = 128  # global batch, over every process and accumulation step
    grad_accum: int = 1
    lr: float = 1e-5
    optimizer: str = "adam"  # "adam" (paper) or "adamw" (released code: betas 0.9/0.99, weight decay 0.01)
    weight_decay: float = 0.0
    lambda_latent: float = 2.0  # paper; the released code uses 1
    lambda_pixel: float = 1.0  # paper; the released code uses 2
    depth_dropout: float = 0.5  # share of samples whose depth is black
    depth_shift: int = 5  # px, largest random displacement of the depth (±2 % of 256)
    ref_min_distance: int = 5  # frames between a target and its reference
    crop_scale: tuple[float, float] = (0.8, 1.0)  # random resized crop, share of the area
    color_jitter: float = 0.1  # brightness, contrast and saturation jitter
    grayscale_p: float = 0.1
    latent_sample: bool = True  # VAE latents drawn from the posterior (released code); False: its mean
    mixed_precision: str = "no"  # "no", "bf16" or "fp16"
    ema_decay: float | None = None  # e.g. 0.9999; checkpoints then hold the EMA weights
    grad_clip: float = 1.0
    num_workers: int = 4
    seed: int = 0
    log_every: int = 10
    save_every: int = 5000
    validate_every: int = 5000
    validation: dict = field(default_factory=dict)  # {"video": ..., "audio": ...}: a held-out clip to edit
    resume: bool = True  # continue from the newest checkpoint in ``output`` when there is one

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InputError(f"unknown training settings in '{path}': {', '.join(unknown)}")
        if "crop_scale" in raw:
            raw["crop_scale"] = tuple(raw["crop_scale"])
        base = Path(path).resolve().parent
        for key in ("data", "output", "weights"):  # relative paths are relative to the config file
            if raw.get(key) and not Path(raw[key]).is_absolute():
                raw[key] = str(base / raw[key])
        for key in ("video", "audio"):
            v = raw.get("validation", {}).get(key)
            if v and not Path(v).is_absolute():
                raw["validation"][key] = str(base / v)
        if raw.get("unet_init") not in (None, "official", "scratch") and not Path(raw["unet_init"]).is_absolute():
            raw["unet_init"] = str(base / raw["unet_init"])
        return cls(**raw)


# -- data ------------------------------------------------------------------------------------------------


def random_translate(image: np.ndarray, max_shift: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int]]:
    """Shift ``image`` by whole pixels, ``dx, dy`` uniform in ``[-max_shift, max_shift]``, zero fill."""
    dx, dy = (int(v) for v in rng.integers(-max_shift, max_shift + 1, size=2))
    out = np.zeros_like(image)
    h, w = image.shape[:2]
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out, (dx, dy)


def _jitter(images: list[np.ndarray], amount: float, gray_p: float, rng: np.random.Generator) -> list[np.ndarray]:
    """The same brightness, contrast and saturation change (then, sometimes, grey) for every image."""
    b, c, s = (rng.uniform(1 - amount, 1 + amount) for _ in range(3))
    gray = rng.random() < gray_p
    out = []
    for img in images:
        x = img.astype(np.float32) * b
        x = (x - x.mean()) * c + x.mean()
        luma = x @ np.array([0.299, 0.587, 0.114], np.float32)
        x = (x - luma[..., None]) * s + luma[..., None]
        if gray:
            x = np.repeat((x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None], 3, axis=2)
        out.append(np.clip(x, 0, 255).astype(np.uint8))
    return out


class EditorDataset(Dataset):
    """Training samples from a prepared folder (see `joygen.prepare`).

    Each item: ``target``, ``reference``, ``depth`` ``[3, 256, 256]`` uint8 (RGB; depth grey x 3),
    ``audio_states`` ``[10, 5, 384]`` float32 (the frame's Whisper states, made tokens by `tokens_from_states`), ``has_depth`` bool,
    ``shift`` ``[2]`` int (depth displacement dx, dy), ``frame`` and ``reference_frame`` int.
    """

    def __init__(self, root: str | Path, config: TrainConfig, force_depth: bool | None = None):
        self.root = Path(root)
        self.cfg = config
        self.force_depth = force_depth  # tests: True/False overrides the coin
        self.videos, self.items = [], []
        metas = sorted(self.root.glob("*/meta.json"))
        if not metas:
            raise InputError(f"'{root}' holds no prepared videos (run `python -m joygen prepare` first)")
        for meta_file in metas:
            meta = json.loads(meta_file.read_text())
            kept = np.array(meta["kept"], np.int64)
            folder = meta_file.parent
            usable = [int(i) for i in kept if (np.abs(kept - i) >= config.ref_min_distance).any()]
            if not usable:
                continue
            v = len(self.videos)
            self.videos.append({"folder": folder, "kept": kept, "meta": meta, "landmarks": None, "whisper": None})
            self.items += [(v, i) for i in usable]
        if not self.items:
            raise InputError(f"no frame in '{root}' has a reference {config.ref_min_distance} frames away")

    def __len__(self) -> int:
        return len(self.items)

    def _video(self, v: int) -> dict:
        video = self.videos[v]
        if video["landmarks"] is None:  # opened lazily, once per worker
            video["landmarks"] = np.load(video["folder"] / "landmarks.npy", mmap_mode="r")
            w = video["meta"]["whisper"]
            video["whisper"] = np.memmap(video["folder"] / w["file"], np.float16, "r", shape=tuple(w["shape"]))
        return video

    @staticmethod
    def _face(folder: Path, i: int) -> np.ndarray:
        img = cv2.imread(str(folder / "faces" / f"{i:06d}.jpg"))[..., ::-1]
        return cv2.resize(img, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_LINEAR)

    def __getitem__(self, index: int) -> dict:
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, index, int(torch.randint(0, 2**31 - 1, ()).item())])
        v, i = self.items[index]
        video = self._video(v)
        folder, kept = video["folder"], video["kept"]
        candidates = kept[np.abs(kept - i) >= cfg.ref_min_distance]
        j = int(rng.choice(candidates))
        target, reference = self._face(folder, i), self._face(folder, j)
        # The coin and the displacement are always drawn, so a sample and its no-depth twin share every other
        # random choice (tests compare them).
        coin = bool(rng.random() >= cfg.depth_dropout)
        has_depth = coin if self.force_depth is None else self.force_depth
        depth = np.zeros((FACE_SIZE, FACE_SIZE), np.uint8)
        if has_depth:
            crop = cv2.imread(str(folder / "depth" / f"{i:06d}.png"), cv2.IMREAD_GRAYSCALE)
            masked = crop * lip_mask(crop.shape, video["landmarks"][i])
            depth = cv2.resize(masked, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_LANCZOS4)
        depth, shift = random_translate(depth, cfg.depth_shift, rng)
        shift = shift if has_depth else (0, 0)
        # The same random resized crop over all three, the same colours over target and reference.
        side = int(round(FACE_SIZE * math.sqrt(rng.uniform(*cfg.crop_scale))))
        x0, y0 = (int(v) for v in rng.integers(0, FACE_SIZE - side + 1, size=2))

        def crop_resize(img):
            return cv2.resize(
                img[y0 : y0 + side, x0 : x0 + side], (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_LINEAR
            )

        target, reference, depth = crop_resize(target), crop_resize(reference), crop_resize(depth)
        target, reference = _jitter([target, reference], cfg.color_jitter, cfg.grayscale_p, rng)
        whisper = video["whisper"]
        idx = chunk_indices(len(whisper), [i])[0]
        states = torch.from_numpy(np.asarray(whisper[idx], np.float32))  # [10, 5, C]: the frame's encoder frames
        return {
            "target": torch.from_numpy(np.ascontiguousarray(target)).permute(2, 0, 1),
            "reference": torch.from_numpy(np.ascontiguousarray(reference)).permute(2, 0, 1),
            "depth": torch.from_numpy(np.repeat(depth[None], 3, axis=0)),
            "audio_states": states,
            "has_depth": torch.tensor(bool(has_depth)),
            "shift": torch.tensor(shift),
            "frame": torch.tensor(i),
            "reference_frame": torch.tensor(j),
        }


# -- the step --------------------------------------------------------------------------------------------


def editor_inputs(editor: MouthEditor, batch: dict, sample: bool, generator: torch.Generator | None = None):
    """The UNet input of a batch and the target: ``(unet_input [B,12,32,32], tokens [B,50,C], target_x, target_latent)``.

    Channels: target with the lower half black, reference, depth with the upper half black (as at inference).
    """
    vae, device = editor.vae, editor.device

    def nhwc(x):
        return x.to(device).permute(0, 2, 3, 1)

    depth = nhwc(batch["depth"]).clone()
    depth[:, :HALF] = 0
    target_x = editor.to_tensor(nhwc(batch["target"]))
    images = torch.cat(
        [
            editor.to_tensor(nhwc(batch["target"]), mask_lower=True),
            editor.to_tensor(nhwc(batch["reference"])),
            editor.to_tensor(depth),
            target_x,
        ]
    )
    with torch.no_grad():
        dist = vae.encode(images).latent_dist
        latents = (dist.sample(generator) if sample else dist.mean) * editor.scaling_factor
    masked, reference, depth_latent, target_latent = latents.chunk(4)
    tokens = tokens_from_states(batch["audio_states"].to(device, editor.dtype))  # the pipeline's function
    return editor.assemble(torch.cat([masked, reference], dim=1), depth_latent), tokens, target_x, target_latent


def loss_terms(
    editor: MouthEditor,
    predicted: torch.Tensor,
    target_x: torch.Tensor,
    target_latent: torch.Tensor,
    config: TrainConfig,
) -> dict[str, torch.Tensor]:
    """``{"loss", "latent_l1", "pixel_l1"}``: the weighted sum and its two terms."""
    latent_l1 = F.l1_loss(predicted.float(), target_latent.float())
    decoded = editor.vae.decode(predicted / editor.scaling_factor).sample
    pixel_l1 = F.l1_loss(decoded[:, :, HALF:].float(), target_x[:, :, HALF:].float())
    loss = config.lambda_latent * latent_l1 + config.lambda_pixel * pixel_l1
    return {"loss": loss, "latent_l1": latent_l1.detach(), "pixel_l1": pixel_l1.detach()}


def fixed_batch(dataset: EditorDataset, size: int = 4, seed: int = 1234) -> dict:
    """The same few samples every time (evenly spread, drawn with a fixed seed): for the evaluation loss."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        samples = [dataset[int(k)] for k in np.linspace(0, len(dataset) - 1, min(size, len(dataset)))]
    finally:
        torch.random.set_rng_state(state)
    return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


@torch.no_grad()
def evaluate(editor: MouthEditor, batch: dict, config: TrainConfig) -> dict[str, float]:
    """The loss terms on a fixed batch, posterior means, no gradient: comparable from step to step."""
    was_training = editor.unet.training
    editor.unet.eval()
    x, tokens, target_x, target_latent = editor_inputs(editor, batch, sample=False)
    predicted = editor.generate(x, tokens)
    terms = {f"eval_{k}": float(v) for k, v in loss_terms(editor, predicted, target_x, target_latent, config).items()}
    editor.unet.train(was_training)
    return terms


# -- the loop --------------------------------------------------------------------------------------------


def build_unet(config: TrainConfig):
    from diffusers import UNet2DConditionModel

    from ..weights.locator import WeightsLocator

    if config.unet_init == "scratch":
        arch = OFFICIAL_UNET_CONFIG if config.unet_config == "official" else dict(config.unet_config)
        return UNet2DConditionModel(**arch)
    if config.unet_init == "official":
        return load_unet(WeightsLocator(config.weights).resolve(["unet"])["unet"].folder)
    return load_unet(config.unet_init)


def _checkpoints(output: Path) -> list[Path]:
    return sorted(output.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))


def train(config: TrainConfig, log=print) -> dict:
    """Run (or resume) a training run; returns the last logged losses and the step reached."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader

    from ..weights.locator import WeightsLocator

    # Without a GPU, say so: accelerate then runs several launched processes as one gloo group (MULTI_CPU).
    acc = Accelerator(
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.grad_accum,
        cpu=not torch.cuda.is_available(),
    )
    set_seed(config.seed, device_specific=True)
    output = Path(config.output)
    if acc.is_main_process:
        (output / "val").mkdir(parents=True, exist_ok=True)
        (output / "config.yaml").write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))
    per_device = config.batch_size // (acc.num_processes * config.grad_accum)
    if per_device < 1:
        raise InputError(f"batch_size {config.batch_size} is smaller than processes x grad_accum")
    if acc.is_main_process:
        log(
            f"{acc.num_processes} process(es) on {acc.device} ({acc.distributed_type}), {per_device} samples each per step"
        )
    vae = load_vae(WeightsLocator(config.weights).resolve(["vae"])["vae"].folder).to(acc.device).requires_grad_(False)
    unet = build_unet(config).train()
    optim_cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    betas = (0.9, 0.99) if config.optimizer == "adamw" else (0.9, 0.999)
    optimizer = optim_cls(unet.parameters(), lr=config.lr, betas=betas, weight_decay=config.weight_decay)
    dataset = EditorDataset(config.data, config)
    loader = DataLoader(
        dataset,
        per_device,
        shuffle=True,
        drop_last=len(dataset) >= per_device,
        num_workers=config.num_workers,
        persistent_workers=config.num_workers > 0,
    )
    unet, optimizer, loader = acc.prepare(unet, optimizer, loader)
    ema = None
    if config.ema_decay:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(acc.unwrap_model(unet), multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay))
        acc.register_for_checkpointing(ema)  # resumed with the rest of the state
    step = 0
    found = _checkpoints(output) if config.resume else []
    if found:
        acc.load_state(str(found[-1] / "state"))
        step = json.loads((found[-1] / "trainer.json").read_text())["step"]
        log(f"resumed from {found[-1].name} (step {step})")
    editor = MouthEditor(acc.unwrap_model(unet), vae)
    generator = torch.Generator(acc.device).manual_seed(config.seed + acc.process_index)
    eval_batch = fixed_batch(dataset)
    last: dict = {}
    start = time.perf_counter()
    if step == 0 and acc.is_main_process:
        with open(output / "log.jsonl", "a") as fh:
            fh.write(json.dumps({"step": 0, **evaluate(editor, eval_batch, config)}) + "\n")
    while step < config.steps:
        for batch in loader:
            with acc.accumulate(unet):
                x, tokens, target_x, target_latent = editor_inputs(editor, batch, config.latent_sample, generator)
                with acc.autocast():
                    predicted = unet(x, torch.zeros(1, device=x.device), encoder_hidden_states=tokens).sample
                terms = loss_terms(editor, predicted, target_x, target_latent, config)
                acc.backward(terms["loss"])
                if acc.sync_gradients and config.grad_clip:
                    acc.clip_grad_norm_(unet.parameters(), config.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            if not acc.sync_gradients:
                continue
            step += 1
            if ema is not None:
                ema.update_parameters(acc.unwrap_model(unet))
            if step % config.log_every == 0 or step == 1 or step == config.steps:
                values = {k: acc.gather(v.detach().reshape(1)).mean().item() for k, v in terms.items()}
                last = {"step": step, **values, "lr": config.lr, "seconds": round(time.perf_counter() - start, 2)}
                if acc.is_main_process:
                    with open(output / "log.jsonl", "a") as fh:
                        fh.write(json.dumps(last) + "\n")
                    log(
                        f"step {step}: loss {values['loss']:.4f} (latent {values['latent_l1']:.4f}, pixel {values['pixel_l1']:.4f})"
                    )
            if step % config.save_every == 0 or step == config.steps:
                _save(acc, unet, ema, output, step)
                if acc.is_main_process:
                    last.update(evaluate(editor, eval_batch, config))
                    with open(output / "log.jsonl", "a") as fh:
                        fh.write(
                            json.dumps({"step": step, **{k: v for k, v in last.items() if k.startswith("eval_")}})
                            + "\n"
                        )
            if config.validate_every and (step % config.validate_every == 0 or step == config.steps):
                acc.wait_for_everyone()
                if acc.is_main_process:
                    validate(config, editor, dataset, output, step, log)
            if step >= config.steps:
                break
    acc.wait_for_everyone()
    acc.end_training()
    return {"step": step, **last}


def _save(acc, unet, ema, output: Path, step: int) -> None:
    folder = output / f"checkpoint-{step:07d}"
    acc.save_state(str(folder / "state"))
    if acc.is_main_process:
        model = ema.module if ema is not None else acc.unwrap_model(unet)
        model.save_pretrained(folder / "unet", safe_serialization=True)
        (folder / "trainer.json").write_text(json.dumps({"step": step}))
    acc.wait_for_everyone()


@torch.no_grad()
def validate(
    config: TrainConfig, editor: MouthEditor, dataset: EditorDataset, output: Path, step: int, log=print
) -> None:
    """A grid (target | reference | depth | prediction) of fixed samples, and an edit of the held-out clip."""
    was_training = editor.unet.training
    editor.unet.eval()
    forced, dataset.force_depth = dataset.force_depth, True  # the grid always shows a depth map
    try:
        batch = fixed_batch(dataset)
    finally:
        dataset.force_depth = forced
    samples = range(len(batch["frame"]))
    x, tokens, _, _ = editor_inputs(editor, batch, sample=False)
    predicted = editor.decode(editor.generate(x, tokens))
    rows = []
    for k in samples:
        cells = [batch[name][k].permute(1, 2, 0).numpy() for name in ("target", "reference", "depth")] + [predicted[k]]
        rows.append(np.concatenate(cells, axis=1))
    cv2.imwrite(str(output / "val" / f"step_{step:07d}.png"), np.concatenate(rows, axis=0)[..., ::-1])
    clip = config.validation or {}
    if clip.get("video") and clip.get("audio"):
        from ..pipeline import JoyGenPipeline

        checkpoint = output / f"checkpoint-{step:07d}" / "unet"
        unet = checkpoint if checkpoint.is_dir() else None
        if unet is None:
            editor.unet.save_pretrained(output / "val" / "unet-current", safe_serialization=True)
            unet = output / "val" / "unet-current"
        pipe = JoyGenPipeline.from_pretrained(config.weights, unet=unet, device=editor.device)
        result = pipe(
            clip["video"],
            clip["audio"],
            output / "val" / f"step_{step:07d}.mp4",
            intermediates=output / "val" / f"step_{step:07d}",
        )
        log(f"validation: edited the held-out clip into {result.video}")
    if was_training:
        editor.unet.train()


def main(config_path: str) -> int:
    import os

    result = train(TrainConfig.load(config_path))
    if int(os.environ.get("RANK", 0)) == 0:
        print(json.dumps(result))
    return 0
