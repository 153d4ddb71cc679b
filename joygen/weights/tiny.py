"""A complete set of tiny random-weight checkpoints in joygen's layout, for tests and smoke runs.

Every artifact the pipeline loads is written in the same file format and folder as the real one, only
with small sizes and random (seeded) values, so that every code path runs offline in seconds. Everything
produced with these weights is meaningless; the folder's ``joygen_weights.json`` says ``"kind": "tiny"``
and the pipeline, the CLI and the app say so on every run.

Some artifacts are shaped so that every stage has something to work on: the MTCNN detector is copied from
the facenet-pytorch wheel (it is small, and a random detector would never find a face), the voice activity
detector from the silero-vad wheel (1.2 MB, so tests see real voice activity); the face parser
calls every pixel "skin", so the paste-back visibly replaces the lower face; the R-Net's heads are nearly
zero, so faces come out close to the mean, frontal face; and the Basel Face Model is a procedural face (an
ellipsoid with a nose, 1927 vertices) whose expression 0 opens the mouth, with landmark tables pointing at
the right regions. The BFM itself may not be redistributed, which is also why this one is made up.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from ..errors import WeightsError
from ..timeline import SAMPLE_RATE
from .locator import ARTIFACTS, WeightsLocator, write_marker

TINY_UNET = dict(
    in_channels=12,
    out_channels=4,
    sample_size=32,
    block_out_channels=(16, 32, 32, 32),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    layers_per_block=1,
    attention_head_dim=8,
    cross_attention_dim=384,
    norm_num_groups=8,
)
TINY_VAE = dict(
    block_out_channels=(8, 16, 16, 16),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=1,
    norm_num_groups=8,
    latent_channels=4,
    sample_size=256,
)
TINY_WHISPER = dict(
    d_model=384,
    encoder_layers=4,
    encoder_attention_heads=6,
    encoder_ffn_dim=64,
    num_mel_bins=80,
    max_source_positions=1500,
    decoder_layers=1,
    decoder_attention_heads=6,
    decoder_ffn_dim=64,
    vocab_size=8,
    max_target_positions=4,
    pad_token_id=0,
    bos_token_id=0,
    eos_token_id=0,
    decoder_start_token_id=1,
)
TINY_BISENET_BASE = 8  # channel base width (official: 64)
TINY_RECON_BASE = 8  # R-Net base width (official: 64)
TINY_HUBERT = dict(
    hidden_size=1024,  # audio2secc reads 1024-wide features
    num_hidden_layers=1,
    num_attention_heads=16,
    intermediate_size=16,
    conv_dim=(16,) * 7,
    conv_kernel=(10, 3, 3, 3, 3, 2, 2),  # the real stride (320) and receptive field (400)
    conv_stride=(5, 2, 2, 2, 2, 2, 2),
    conv_bias=True,
    feat_extract_norm="layer",
    do_stable_layer_norm=True,
    num_conv_pos_embeddings=4,
    num_conv_pos_embedding_groups=16,
    vocab_size=32,
)
TINY_AUDIO2SECC = dict(
    feat=16, hidden=16, latent=4, enc_layers=1, dec_layers=2, glow_hidden=8, glow_layers=2, glow_flows=2
)
TINY_FACE_GRID = (41, 47)  # vertices across x, y of the procedural face mesh


# -- the tiny models, built in memory (each builder below writes one in the official file layout) ----------


def tiny_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**TINY_UNET).eval()


def tiny_vae():
    """The scaling factor is set so that latents have unit standard deviation, the job 0.18215 does for the real
    VAE (a random VAE's latents are on another scale; with 0.18215 they would be tiny)."""
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(**TINY_VAE)
    noise = torch.rand(4, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        spread = vae.encode(noise).latent_dist.mean.std().item()
    vae.register_to_config(scaling_factor=round(1.0 / spread, 5))
    return vae.eval()


def tiny_whisper_encoder():
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    config = WhisperConfig(**TINY_WHISPER)
    config._attn_implementation = "sdpa"
    return WhisperEncoder(config).eval()


def tiny_bisenet():
    """Main head: class 1 ("skin") scores the sum of the (non-negative) features, every other class 0."""
    from ..editor.face_parsing import BiSeNet

    net = BiSeNet(base=TINY_BISENET_BASE)
    with torch.no_grad():
        net.conv_out.conv_out.weight.zero_()
        net.conv_out.conv_out.weight[1] = 1.0
    return net.eval()


def tiny_recon_net():
    """A narrow R-Net whose heads are nearly zero: every face comes out close to the mean face, frontal."""
    from ..face3d.reconstruction import ReconNet

    net = ReconNet(base=TINY_RECON_BASE)
    with torch.no_grad():
        for head in net.final_layers:
            head.weight.mul_(1e-3)
            head.bias.zero_()
    return net.eval()


def tiny_hubert():
    from transformers import HubertConfig, HubertModel

    return HubertModel(HubertConfig(**TINY_HUBERT)).eval()


def tiny_audio2secc():
    from ..motion.audio2secc import Audio2Secc, Audio2SeccConfig

    model = Audio2Secc(Audio2SeccConfig(**TINY_AUDIO2SECC))
    with torch.no_grad():
        model.mouth_amp_embed.normal_()
    return model.eval()


def tiny_components(seed: int = 0) -> dict:
    """The tiny pipeline's models built in memory, as `JoyGenPipeline` keyword arguments (no files; the idea of
    diffusers' ``get_dummy_components``). Built in the order and with the seeds of `write_tiny_weights`, so each
    model equals the one loaded from a written set. MTCNN comes from the facenet-pytorch wheel (a random one
    finds no face); there is no DWPose (use ``landmark_box=False``). The weight set is marked random, so every
    output says it is meaningless.
    """
    from ..editor.face_parsing import FaceParser
    from ..editor.mouth_editor import MouthEditor
    from ..editor.whisper import WhisperFeatures
    from ..face3d.bfm import FaceModel
    from ..face3d.detection import FaceDetector
    from ..face3d.mouth_depth import MouthDepth
    from ..face3d.mtcnn import MTCNN
    from ..motion.audio_to_motion import AudioToMotion, HubertFeatures
    from .locator import WeightSet

    def seeded(build):
        torch.manual_seed(seed)
        return build()

    unet, vae, whisper = seeded(tiny_unet), seeded(tiny_vae), seeded(tiny_whisper_encoder)
    parser, recon = seeded(tiny_bisenet), seeded(tiny_recon_net)
    bfm = seeded(tiny_bfm_arrays)
    hubert, a2s = seeded(tiny_hubert), seeded(tiny_audio2secc)
    mtcnn = WeightsLocator(use_public=True).find("mtcnn")
    if mtcnn is None:
        raise WeightsError(
            "the tiny models use MTCNN from the facenet-pytorch wheel: `pip install --no-deps facenet-pytorch`"
        )
    return {
        "editor": MouthEditor(unet, vae),
        "whisper": WhisperFeatures(whisper),
        "face_detector": FaceDetector(MTCNN.from_pretrained(mtcnn.folder)),
        "face_parser": FaceParser(parser),
        "weights": WeightSet({}, random=True),
        "motion": AudioToMotion(HubertFeatures(hubert), a2s),
        "depth": MouthDepth(
            recon,
            FaceModel(
                bfm["meanshape"],
                bfm["idBase"],
                bfm["exBase"],
                bfm["tri"].astype(np.int64) - 1,  # the arrays are 1-based, as in the .mat files
                bfm["keypoints"].astype(np.int64).reshape(-1) - 1,
                bfm["index468"],
                bfm["lm68"],
            ),
        ),
    }


# -- writers: the same models in the official file layouts ---------------------------------------------


def _unet(folder: Path) -> None:
    tiny_unet().save_pretrained(folder, safe_serialization=True)


def _vae(folder: Path) -> None:
    tiny_vae().save_pretrained(folder, safe_serialization=True)


def _whisper(folder: Path) -> None:
    """transformers layout (config.json + model.safetensors with ``model.encoder.*`` keys)."""
    from safetensors.torch import save_file

    encoder = tiny_whisper_encoder()
    folder.mkdir(parents=True, exist_ok=True)
    encoder.config.to_json_file(folder / "config.json")
    state = {f"model.encoder.{k}": v.contiguous() for k, v in encoder.state_dict().items()}
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})


def _face_parsing(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(tiny_bisenet().state_dict(), folder / "79999_iter.pth")


def _copy_from_package(name: str, folder: Path, install: str) -> None:
    found = WeightsLocator(use_public=True).find(name)
    if found is None or not found.source.startswith("package"):
        raise WeightsError(f"the tiny set copies {ARTIFACTS[name].title} from its pip package: `{install}`")
    folder.mkdir(parents=True, exist_ok=True)
    for file, path in found.files.items():
        shutil.copyfile(path, folder / file)


def _mtcnn(folder: Path) -> None:
    _copy_from_package("mtcnn", folder, "pip install --no-deps facenet-pytorch==2.6.0")


def _vad(folder: Path) -> None:
    _copy_from_package("vad", folder, "pip install silero-vad==6.2.3")


def _face_recon(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"net_recon": tiny_recon_net().state_dict()}, folder / "epoch_20.pth")


def _dwpose(folder: Path) -> None:
    from ..face3d.dwpose import write_tiny_dwpose

    write_tiny_dwpose(folder / "dw-ll_ucoco_384.onnx")


def tiny_bfm_arrays(grid: tuple[int, int] = TINY_FACE_GRID) -> dict[str, np.ndarray]:
    """A procedural face in the BFM's arrays (1-based like the .mat files): an ellipsoidal grid with a nose, a
    mouth that opens with expression 0, and landmark / MediaPipe index tables pointing at the right regions.
    ``grid=(189, 189)`` gives the real BFM's size (35 721 vertices, 70 688 triangles) for benchmarks."""
    from ..face3d.bfm import OUTER_LIP_468

    rng = np.random.default_rng(0)
    nx, ny = grid
    gx, gy = np.meshgrid(np.linspace(-0.75, 0.75, nx), np.linspace(-0.9, 0.9, ny))
    z = 0.45 * np.sqrt(np.clip(1 - (gx / 0.8) ** 2 - (gy / 0.95) ** 2, 0, None))
    z += 0.22 * np.exp(-(gx**2 + (gy + 0.05) ** 2) / 0.012)  # nose
    verts = np.stack([gx.ravel(), gy.ravel(), z.ravel()], 1)
    n = len(verts)
    ids = np.arange(n).reshape(ny, nx)
    tri = np.concatenate(
        [
            np.stack([ids[:-1, :-1].ravel(), ids[:-1, 1:].ravel(), ids[1:, :-1].ravel()], 1),
            np.stack([ids[1:, :-1].ravel(), ids[:-1, 1:].ravel(), ids[1:, 1:].ravel()], 1),
        ]
    )

    def nearest(xy: np.ndarray) -> np.ndarray:
        return np.argmin(((verts[None, :, :2] - np.asarray(xy)[:, None]) ** 2).sum(-1), axis=1)

    def ellipse(cx, cy, rx, ry, angles):
        return np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], 1)

    jaw = ellipse(0, 0.15, 0.68, 0.98, np.linspace(np.pi * 1.05, np.pi * 1.95, 17))
    brows = np.concatenate(
        [
            ellipse(-0.32, 0.38, 0.2, 0.06, np.linspace(np.pi, 0, 5)),
            ellipse(0.32, 0.38, 0.2, 0.06, np.linspace(np.pi, 0, 5)),
        ]
    )
    nose = np.concatenate(
        [
            np.stack([np.zeros(4), np.linspace(0.28, 0.0, 4)], 1),
            np.stack([np.linspace(-0.12, 0.12, 5), np.full(5, -0.1)], 1),
        ]
    )
    eye = np.linspace(np.pi, -np.pi, 7)[:6]
    eyes = np.concatenate([ellipse(-0.3, 0.24, 0.12, 0.05, eye), ellipse(0.3, 0.24, 0.12, 0.05, eye)])
    lips = np.concatenate(
        [
            ellipse(0, -0.38, 0.26, 0.12, np.linspace(np.pi, -np.pi, 13)[:12]),
            ellipse(0, -0.38, 0.16, 0.05, np.linspace(np.pi, -np.pi, 9)[:8]),
        ]
    )
    keypoints = nearest(np.concatenate([jaw, brows, nose, eyes, lips]))
    index468 = nearest(rng.uniform([-0.6, -0.8], [0.6, 0.6], (468, 2)))
    outer = np.concatenate([np.linspace(np.pi, 0, 11), np.linspace(-np.pi / 10, -np.pi * 0.9, 9)])
    index468[list(OUTER_LIP_468)] = nearest(ellipse(0, -0.38, 0.26, 0.12, outer))

    exp_base = rng.standard_normal((3 * n, 64)) * 0.004
    jaw_open = np.zeros((n, 3))  # expression 0 opens the mouth: the lower face drops and moves back
    below = np.clip((-0.38 - verts[:, 1]) / 0.4 + 0.6, 0, 1) * np.exp(-(verts[:, 0] ** 2) / 0.15)
    jaw_open[:, 1], jaw_open[:, 2] = -0.06 * below, -0.02 * below
    exp_base[:, 0] = jaw_open.ravel()
    mean = verts.astype(np.float32).reshape(1, -1)
    centred = verts - verts.mean(0)
    point_buf = np.full((n, 8), len(tri) + 1)  # incident triangles, 1-based, padded with F + 1
    order = np.argsort(tri.ravel(), kind="stable")
    vertex, face = tri.ravel()[order], order // 3
    slot = np.arange(len(vertex)) - np.searchsorted(vertex, vertex)
    point_buf[vertex, slot] = face + 1
    model = {
        "meanshape": mean,
        "meantex": np.full((1, 3 * n), 160, np.float32),
        "idBase": (rng.standard_normal((3 * n, 80)) * 0.002).astype(np.float32),
        "exBase": exp_base,
        "texBase": (rng.standard_normal((3 * n, 80)) * 2).astype(np.float32),
        "tri": (tri + 1).astype(np.float32),
        "point_buf": point_buf.astype(np.float32),
        "keypoints": (keypoints + 1).astype(np.float32)[None],
        "frontmask2_idx": (np.arange(n) + 1).astype(np.float32)[:, None],
        "tri_mask2": (tri + 1).astype(np.float32),
        "skinmask": np.ones((1, n), np.float32),
        "lm68": centred[keypoints].astype(np.float32),
        "index468": index468.astype(np.int64),
    }
    return model


def _bfm(folder: Path, grid: tuple[int, int] = TINY_FACE_GRID) -> None:
    """`tiny_bfm_arrays` in the BFM's three files."""
    from scipy.io import savemat

    model = tiny_bfm_arrays(grid)
    lm68, index468 = model.pop("lm68"), model.pop("index468")
    folder.mkdir(parents=True, exist_ok=True)
    savemat(folder / "BFM_model_front.mat", model)
    savemat(folder / "similarity_Lm3D_all.mat", {"lm": lm68})
    np.save(folder / "index_mp468_from_mesh35709.npy", index468)


def _hubert(folder: Path) -> None:
    from transformers import Wav2Vec2FeatureExtractor

    tiny_hubert().save_pretrained(folder)
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=True, return_attention_mask=True
    ).save_pretrained(folder)


def _audio2secc(folder: Path) -> None:
    """Official checkpoint layout (nested state_dict) and config keys, small sizes under ``joygen_sizes``."""
    import yaml

    model = tiny_audio2secc()
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "audio_type": "hubert",
        "task_cls": "tasks.os_avatar.audio2motion_task.Audio2MotionTask",
        "motion_type": "exp",
        "use_pitch": True,
        "use_flow": True,
        "use_mouth_amp_embed": True,
        "use_eye_amp_embed": False,
        "hidden_size": TINY_AUDIO2SECC["hidden"],
        "joygen_sizes": {k: v for k, v in TINY_AUDIO2SECC.items() if k != "hidden"},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=True))
    ckpt = {
        "epoch": 0,
        "global_step": 400000,
        "checkpoint_callback_best": 0,
        "optimizer_states": [],
        "state_dict": {"model": model.state_dict()},
    }
    torch.save(ckpt, folder / "model_ckpt_steps_400000.ckpt")


def _syncnet(folder: Path) -> None:
    """The real SyncNet layers at 1/8 of the width (the input sizes are fixed by the layers, not the widths), in
    the official file format: a plain name -> tensor mapping in torch's legacy (non-zip) serialization."""
    from ..metrics.syncnet import TINY_WIDTHS, WEIGHTS_FILE, SyncNet

    net = SyncNet(TINY_WIDTHS)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), folder / WEIGHTS_FILE, _use_new_zipfile_serialization=False)


def _inception(folder: Path) -> None:
    """The FID Inception-v3 layers at 1/16 of the width (128-d features), torchvision key names."""
    from ..metrics.fid import TINY_WIDTH_DIVISOR, WEIGHTS_FILE, FIDInception

    folder.mkdir(parents=True, exist_ok=True)
    torch.save(FIDInception(TINY_WIDTH_DIVISOR).state_dict(), folder / WEIGHTS_FILE)


BUILDERS = {
    "unet": _unet,
    "vae": _vae,
    "whisper": _whisper,
    "face_parsing": _face_parsing,
    "mtcnn": _mtcnn,
    "vad": _vad,
    "face_recon": _face_recon,
    "bfm": _bfm,
    "dwpose": _dwpose,
    "hubert": _hubert,
    "audio2secc": _audio2secc,
    "syncnet": _syncnet,
    "inception": _inception,
}


def write_tiny_weights(folder: str | Path, seed: int = 0) -> Path:
    """Write the tiny set to ``folder`` (created if needed) and return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, build in BUILDERS.items():
        torch.manual_seed(seed)
        build(folder / ARTIFACTS[name].folder)
    write_marker(folder, "tiny", seed=seed, artifacts=sorted(BUILDERS))
    return folder
