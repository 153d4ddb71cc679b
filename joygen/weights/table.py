"""The one table of every model file joygen knows: its folder in joygen's layout, the files, their origin,
licence and digests, and the pinned public Hub revision where one exists (`joygen.weights.locator` finds them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

BUNDLE_URL = "https://drive.google.com/file/d/1kvGsljFRnXKUK_ETdd49jJy8DbdgZKkE"  # official pretrained_models


@dataclass(frozen=True)
class Artifact:
    name: str
    title: str
    folder: str  # folder inside a weights dir / weights repo
    variants: tuple[tuple[str, ...], ...]  # acceptable file sets, in order of preference
    origin: str  # where the files come from originally (and their licence)
    public_repo: str | None = None  # public Hub repo holding the files (same names, at the repo root)
    public_revision: str | None = None  # pinned commit of public_repo
    public_variant: int = 0  # which variant the public repo provides
    package: str | None = None  # a pip distribution whose package data holds the files
    sha256: dict[str, str] = field(default_factory=dict)  # known digests of the original files
    official_path: str = ""  # where the official pretrained_models/ tree keeps it
    public_folder: str = ""  # folder of the files inside public_repo (default: its root)
    download_url: str | None = None  # where to download the original file by hand (no Hub copy is pinned)
    optional: bool = False  # not needed by an edit (evaluation metrics)

    @property
    def file_sets(self) -> list[list[str]]:
        return [[f"{self.folder}/{f}" for f in v] for v in self.variants]

    @property
    def public_files(self) -> tuple[str, ...]:
        """Paths of the public variant's files inside ``public_repo``."""
        prefix = f"{self.public_folder}/" if self.public_folder else ""
        return tuple(prefix + f for f in self.variants[self.public_variant])


ARTIFACTS: dict[str, Artifact] = {
    a.name: a
    for a in [
        Artifact(
            "unet",
            "JoyGen editor UNet (12 input channels, Whisper cross-attention)",
            "unet",
            (("config.json", "diffusion_pytorch_model.safetensors"),),
            "official JoyGen bundle only (Google Drive), Apache-2.0",
            official_path="joygen/",
        ),
        Artifact(
            "vae",
            "Stable Diffusion VAE (sd-vae-ft-mse)",
            "vae",
            (("config.json", "diffusion_pytorch_model.safetensors"),),
            "stabilityai/sd-vae-ft-mse, MIT",
            public_repo="stabilityai/sd-vae-ft-mse",
            public_revision="31f26fdeee1355a5c34592e401dd41e45d25a493",
            sha256={
                "diffusion_pytorch_model.safetensors": "a1d993488569e928462932c8c38a0760b874d166399b14414135bd9c42df5815"
            },
            official_path="sd-vae-ft-mse/",
        ),
        Artifact(
            "whisper",
            "Whisper-tiny audio encoder",
            "whisper",
            (("tiny.pt",), ("config.json", "model.safetensors")),
            "OpenAI Whisper tiny (tiny.pt in the JoyGen bundle; openai/whisper-tiny on the Hub), MIT / Apache-2.0",
            public_repo="openai/whisper-tiny",
            public_revision="169d4a4341b33bc18d8881c4b69c2e104e1cc0af",
            public_variant=1,
            sha256={"model.safetensors": "7ebd0e69e78190ffe1438491fa05cc1f5c1aa3a4c4db3bc1723adbb551ea2395"},
            official_path="whisper/tiny.pt",
        ),
        Artifact(
            "face_parsing",
            "BiSeNet face parsing (CelebAMask-HQ, 19 classes)",
            "face_parsing",
            (("79999_iter.pth",),),
            "zllrunning/face-parsing.PyTorch, MIT; Hub mirror ManyOtherFunctions/face-parse-bisent",
            public_repo="ManyOtherFunctions/face-parse-bisent",
            public_revision="0073b233a5a3c4b1377d4dbf49245017938a72b5",
            sha256={"79999_iter.pth": "468e13ca13a9b43cc0881a9f99083a430e9c0a38abd935431d1c28ee94b26567"},
            official_path="face-parse-bisent/79999_iter.pth",
        ),
        Artifact(
            "mtcnn",
            "MTCNN face detector (P-, R-, O-Net)",
            "mtcnn",
            (("pnet.pt", "rnet.pt", "onet.pt"),),
            "facenet-pytorch wheel package data, MIT",
            package="facenet-pytorch",
            sha256={
                "pnet.pt": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
                "rnet.pt": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
                "onet.pt": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
            },
        ),
        Artifact(
            "vad",
            "Silero VAD voice activity detector (ONNX, sequence export)",
            "vad",
            (("silero_vad_16k_sequence.onnx",),),
            "silero-vad wheel package data, MIT",
            package="silero-vad",
            sha256={"silero_vad_16k_sequence.onnx": "9ccdacc4719d8aa7e45a77536bfabec45a03ba1f2fad5e241ab4060b24238a85"},
        ),
        Artifact(
            "hubert",
            "HuBERT-large speech features",
            "hubert",
            (
                ("config.json", "preprocessor_config.json", "model.safetensors"),
                ("config.json", "preprocessor_config.json", "pytorch_model.bin"),
            ),
            "facebook/hubert-large-ls960-ft, Apache-2.0 (revision = the safetensors conversion, refs/pr/1)",
            public_repo="facebook/hubert-large-ls960-ft",
            public_revision="ba42e7f7a888fd65f7af7849c452e3e7d5216aad",
            sha256={"model.safetensors": "1fefcd85b08c83451afd1df872bc11b92333dc4b5393506def29a20baa69c4ed"},
            official_path="audio2motion/hubert/",
        ),
        Artifact(
            "audio2secc",
            "Real3DPortrait audio2secc VAE (audio to expression)",
            "audio2secc",
            (("config.yaml", "model_ckpt_steps_400000.ckpt"),),
            "Real3DPortrait release, in the official JoyGen bundle only, MIT",
            official_path="audio2motion/240210_real3dportrait_orig/audio2secc_vae/",
        ),
        Artifact(
            "face_recon",
            "Deep3DFaceRecon R-Net (ResNet-50, 257 coefficients)",
            "face_recon",
            (("epoch_20.pth",),),
            "Deep3DFaceRecon_pytorch release, in the official JoyGen bundle only, MIT",
            official_path="face_recon_feat0.2_augment/epoch_20.pth",
        ),
        Artifact(
            "bfm",
            "Basel Face Model 2009 (front part) + MediaPipe index",
            "bfm",
            (("BFM_model_front.mat", "similarity_Lm3D_all.mat", "index_mp468_from_mesh35709.npy"),),
            "University of Basel BFM 2009 (licence forbids redistribution: supply it yourself)",
            official_path="BFM/",
        ),
        Artifact(
            "dwpose",
            "DWPose whole-body keypoints (RTMPose-l, ONNX)",
            "dwpose",
            (("dw-ll_ucoco_384.onnx",),),
            "yzd-v/DWPose, Apache-2.0",
            public_repo="yzd-v/DWPose",
            public_revision="1a7144101628d69ee7a3768d1ee3a094070dc388",
            sha256={"dw-ll_ucoco_384.onnx": "724f4ff2439ed61afb86fb8a1951ec39c6220682803b4a8bd4f598cd913b1843"},
        ),
        Artifact(
            "syncnet",
            "SyncNet lip-sync scorer (LSE-C / LSE-D; evaluation only)",
            "syncnet",
            (("syncnet_v2.model",),),
            "joonson/syncnet_python (VGG, Oxford; see its LICENSE.md); copy in ByteDance/LatentSync-1.6 auxiliary/",
            public_repo="ByteDance/LatentSync-1.6",
            public_revision="c42c7e6c8e9c213626389fa7d9a3c444b8536353",
            public_folder="auxiliary",
            sha256={"syncnet_v2.model": "961e8696f888fce4f3f3a6c3d5b3267cf5b343100b238e79b2659bff2c605442"},
            optional=True,
        ),
        Artifact(
            "inception",
            "FID Inception-v3 (TF 2015-12-05 weights as ported by pytorch-fid; evaluation only)",
            "inception",
            (("pt_inception-2015-12-05-6726825d.pth",),),
            "mseitzer/pytorch-fid release 'fid_weights' (Apache-2.0), ported from TensorFlow's inception-2015-12-05",
            download_url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
            "pt_inception-2015-12-05-6726825d.pth",
            sha256={
                "pt_inception-2015-12-05-6726825d.pth": "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
            },
            optional=True,
        ),
    ]
}

# What each part of the pipeline needs (DWPose: only for the landmark box, `FaceConfig.landmark_box`).
EDITOR_ARTIFACTS = ("unet", "vae", "whisper", "face_parsing", "mtcnn", "vad")
MOTION_ARTIFACTS = ("hubert", "audio2secc")
DEPTH_ARTIFACTS = ("face_recon", "bfm")
LANDMARK_ARTIFACTS = ("dwpose",)
METRIC_ARTIFACTS = ("syncnet", "inception")  # `python -m joygen eval` only; never needed by an edit
