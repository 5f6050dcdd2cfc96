"""Configuration: YAML mapped to typed dataclasses, validated once at the edge.

A config file has four sections (``data``, ``model``, ``train``, ``export``) plus ``seed``
and ``run_dir``. Every key is checked: an unknown key or a bad value raises
:class:`~keras_mammo.errors.ConfigError` naming the dotted key and the allowed values.
Command-line options override keys with dotted paths (``train.batch_size=16``).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from keras_mammo.errors import ConfigError, DataError
from keras_mammo.models.catalog import validated_params
from keras_mammo.precision import resolve_precision
from keras_mammo.schema import choice, from_dict

#: Bundled configs ship inside the package (``keras_mammo/configs``; ``configs/`` at the
#: repository root is a link to it), so ``--config quickstart`` works after ``pip install .``.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


@dataclasses.dataclass
class DataConfig:
    """Where the mammograms come from and how they are prepared (Rahali 2025, §3.2.1).

    Attributes:
        dataset: adapter name; ``auto`` picks MIAS if ``path`` has Info.txt, the
            embedded ``mammograms`` package if ``path`` is null, else a folder.
        path: the raw dataset's folder (MIAS folder, CBIS-DDSM root, image folder).
        csv_files: CBIS-DDSM case-description CSVs.
        class_subfolders: folder datasets: first sub-folder is the class label.
        prepared: prepared-dataset directory (``preprocess`` writes it, ``train`` reads it).
        size: side in pixels of the prepared PNGs (a power of two ≥ 16).
        min_shape_score: keep threshold of the shape score (thesis: 0.75).
        chest_wall: side every chest wall is moved to.
        laterality: keep ``L``, ``R`` or ``any`` side.
        views: keep only these views (e.g. ``[CC]``); empty keeps all.
        labels: keep only these labels (e.g. ``[malignant]``); empty keeps all.
        birads: keep only these BI-RADS categories (``[4, 5]``; ``4`` also keeps 4A–4C);
            films without a category are kept only when the list is empty.
        densities: keep only these ACR densities (``[C, D]``).
        splits: keep only these official splits (VinDr-Mammo: ``training``, ``test``).
        intensity: ``percentile`` (divide by the breast's 99.9th percentile) or ``none``.
        workers: processes used by ``preprocess``.
        absolute_paths: manifests name source files by absolute path (default: relative
            to ``path``, so shared run directories do not reveal the folder layout).
        ray_address: run the per-film work as Ray tasks on this cluster (``auto``: the
            cluster of ``RAY_ADDRESS`` or the running local one; ``local``: a private
            local Ray with ``workers`` CPUs); null uses the local process pool.
        cache_mb: a training stage whose decoded films fit in this many MiB is held in
            memory; a larger one is streamed from disk (parallel decode, flat memory).
    """

    dataset: str = choice("auto", "mias", "cbis-ddsm", "folder", "mammograms", "rsna", "vindr", "cmmd", "inbreast",
                          default="auto")
    path: str | None = None
    csv_files: list[str] = dataclasses.field(default_factory=list)
    class_subfolders: bool = False
    prepared: str = "prepared/default"
    size: int = 256
    min_shape_score: float = 0.75
    chest_wall: str = choice("left", "right", default="left")
    laterality: str = choice("any", "L", "R", default="any")
    views: list[str] = dataclasses.field(default_factory=list)
    labels: list[str] = dataclasses.field(default_factory=list)
    birads: list[str] = dataclasses.field(default_factory=list)
    densities: list[str] = dataclasses.field(default_factory=list)
    splits: list[str] = dataclasses.field(default_factory=list)
    intensity: str = choice("percentile", "none", default="percentile")
    workers: int = 2
    absolute_paths: bool = False
    ray_address: str | None = None
    cache_mb: int = 2048


@dataclasses.dataclass
class StageConfig:
    """One progressive-growing stage (Karras et al. 2018; Rahali 2025, §3.5.1).

    Attributes:
        resolution: image side in pixels for this stage.
        epochs: epochs trained at this resolution.
        fade_in_images: real images shown while the new block fades in (α: 0 → 1);
            0 for the first stage or to switch without fade-in.
    """

    resolution: int = 64
    epochs: int = 1
    fade_in_images: int = 0


@dataclasses.dataclass
class ModelConfig:
    """Which generator/discriminator pair to train.

    Attributes:
        name: registered model name (``keras-mammo train --help`` lists them).
        latent_dim: length of the latent vector z.
        params: model-specific settings, validated by the model's own dataclass.
    """

    name: str = "thesis"
    latent_dim: int = 128
    params: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class TrainConfig:
    """Training loop settings.

    Attributes:
        stages: progressive stages; empty trains one fixed ``resolution`` for ``epochs``.
        resolution: the fixed resolution when ``stages`` is empty.
        epochs: epochs when ``stages`` is empty.
        batch_size: global batch (images per step over all replicas).
        g_learning_rate, d_learning_rate, beta_1, beta_2: Adam settings; null takes the
            model's published default.
        steps_per_epoch: null = images // batch_size.
        checkpoint_every: epochs between checkpoints (the last epoch always checkpoints).
        keep_checkpoints: checkpoints kept on disk (the newest ones).
        sample_every: epochs between fixed-latent sample grids.
        sample_count: images in a sample grid.
        precision: ``auto`` (default: ``mixed_bfloat16`` on CPUs with AVX512_BF16/AMX and
            no GPU, where it was measured 1.8–2.0× faster with no worse FID/KID, else
            ``float32``; a resumed run keeps the precision it started with, see
            :mod:`keras_mammo.precision`); ``float32``; ``mixed_bfloat16``
            (bfloat16 compute, float32 weights; fast on CPUs with AVX512_BF16/AMX and on
            recent GPUs/TPUs, no loss scaling);
            ``mixed_float16`` (float16 compute with dynamic loss scaling, for GPUs; a step
            whose gradients overflow is skipped and not counted in the generator step).
        mixed_precision: deprecated alias: ``true`` means ``precision: mixed_float16``.
        strategy: ``default`` (one device), ``mirrored`` (several GPUs, or logical
            devices), ``multi_worker`` (several machines, TF_CONFIG).
        jit_compile: XLA-compile the train step (measured slower on this CPU).
        tensorboard: write TensorBoard scalars and images.
        deterministic: enable TensorFlow op determinism (same seed → same weights).
        max_seconds: wall-clock budget of the whole run in seconds (null = none). Checked
            at the end of every epoch: the epoch that crosses it is the last, and it is
            checkpointed (and evaluated when ``eval_every`` > 0). A resumed run counts the
            seconds already spent (stored in each checkpoint's state and in ``run.json``).
        max_resolution: train only the stages up to this resolution (``keras-mammo train
            --resolution R`` on a progressive config); null trains every stage.
        ema: half-life of the generator's exponential moving average in thousands of
            images (StyleGAN2-ADA's ``ema_kimg``, Karras et al. 2020, App. B; 10 there);
            null or 0 disables it. Samples, in-training evaluation, ``generate``,
            ``evaluate --run`` and ``export`` use the EMA weights when they exist.
        ema_rampup: the half-life is at most ``ema_rampup`` × images seen so far
            (StyleGAN2-ADA's ``ema_rampup`` = 0.05), so early weights are forgotten fast;
            null disables the ramp-up.
        use_ema: inference (samples, evaluation, generate, export) uses the EMA weights
            when the run has them; false picks the raw generator.
        augment: augmentation of every image the discriminator sees (real and fake):
            ``none``; ``ada`` (adaptive discriminator augmentation, Karras et al. 2020,
            ``keras_mammo.augment.ada``); ``diffaugment`` (Zhao et al. 2020, fixed policy
            translation, cutout, brightness, contrast; ``keras_mammo.augment.diffaugment``).
        ada_target: ADA's target for ``r_t = E[sign(D(real))]`` in ``[-1, 1]`` (paper: 0.6).
        ada_kimg: thousands of images over which ADA's p can move from 0 to 1 (paper: 500).
        ada_interval: minibatches between two adjustments of p (paper: 4).
        r1_gamma: weight γ of the R1 penalty ``γ/2·E[‖∇D(x)‖²]`` on real images
            (Mescheder et al. 2018, Eq. 9), applied lazily every ``r1_interval``
            minibatches and scaled by it (StyleGAN2, Karras et al. 2020b, §3.1); 0
            disables it. Models: thesis, dcgan, pix2pix, fastgan (stylegan has its own
            per-step ``model.params.r1_gamma``; seg-cdcgan's critic has its gradient penalty).
        r1_interval: minibatches between two R1 evaluations (StyleGAN2: 16).
        loss: ``default`` (each model's published loss) or ``hinge`` (Lim & Ye 2017;
            Miyato et al. 2018, Eq. 17: D minimizes ``E[relu(1−D(x))] + E[relu(1+D(G(z)))]``,
            G minimizes ``−E[D(G(z))]``). Models: thesis, dcgan, stylegan, pix2pix (per
            patch); fastgan's loss is hinge either way; not seg-cdcgan (WGAN-GP).
        spectral_norm: spectral normalization of every discriminator weight (Miyato et
            al. 2018, §2.1, one power iteration per step). Models: thesis, dcgan, pix2pix,
            fastgan (on there by default, ``model.params.spectral_norm``); not stylegan
            (equalized learning rate) or seg-cdcgan (WGAN-GP).
        eval_every: epochs between in-training evaluations (FID and KID of ``eval_n``
            generated images against the training films; ``eval.csv``, TensorBoard, and a
            ``best`` checkpoint by FID); 0 disables them.
        eval_n: images generated per in-training evaluation.
        early_stop_evals: stop after this many evaluations without a better FID (0 = never).
    """

    stages: list[StageConfig] = dataclasses.field(default_factory=list)
    resolution: int = 64
    epochs: int = 10
    batch_size: int = 32
    g_learning_rate: float | None = None
    d_learning_rate: float | None = None
    beta_1: float | None = None
    beta_2: float | None = None
    steps_per_epoch: int | None = None
    checkpoint_every: int = 1
    keep_checkpoints: int = 3
    sample_every: int = 1
    sample_count: int = 16
    precision: str = choice("auto", "float32", "mixed_bfloat16", "mixed_float16", default="auto")
    mixed_precision: bool | None = None
    strategy: str = choice("default", "mirrored", "multi_worker", default="default")
    jit_compile: bool = False
    tensorboard: bool = True
    deterministic: bool = True
    max_seconds: int | None = None
    max_resolution: int | None = None
    ema: float | None = None
    ema_rampup: float | None = 0.05
    use_ema: bool = True
    augment: str = choice("none", "ada", "diffaugment", default="none")
    ada_target: float = 0.6
    ada_kimg: float = 500.0
    ada_interval: int = 4
    r1_gamma: float = 0.0
    r1_interval: int = 16
    loss: str = choice("default", "hinge", default="default")
    spectral_norm: bool = False
    eval_every: int = 0
    eval_n: int = 200
    early_stop_evals: int = 0

    def __post_init__(self):
        if self.mixed_precision is not None:
            import warnings

            if self.mixed_precision:
                self.precision = "mixed_float16"
            warnings.warn(f"train.mixed_precision is deprecated; use train.precision: {self.precision}",
                          FutureWarning, stacklevel=2)
            self.mixed_precision = None

    def schedule(self) -> list[StageConfig]:
        """The stages to train: ``stages`` (up to ``max_resolution``) or one fixed-resolution stage."""
        stages = list(self.stages) or [StageConfig(self.resolution, self.epochs, 0)]
        if self.max_resolution is not None:
            stages = [s for s in stages if s.resolution <= self.max_resolution]
        return stages


@dataclasses.dataclass
class ExportConfig:
    """SavedModel export (TF Serving layout ``<dir>/<name>/<version>/``)."""

    dir: str = "saved_models"
    name: str = "keras_mammo"
    version: int | None = None


@dataclasses.dataclass
class Config:
    """The whole configuration of a run.

    Attributes:
        seed: every random choice derives from it (same seed, same machine → same images).
        run_dir: the run's directory (config, manifest, checkpoints, losses, samples).
    """

    seed: int = 1234
    run_dir: str = "runs/default"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    export: ExportConfig = dataclasses.field(default_factory=ExportConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def set_dotted(tree: dict, dotted: str, value: Any) -> None:
    """Set ``tree['a']['b'] = value`` for ``dotted='a.b'``, creating mappings as needed."""
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: {p} is not a section")
    node[parts[-1]] = value


def resolve_config_path(path: str | Path) -> Path:
    """A config file path, or the name of a bundled config (``quickstart``, ``thesis``)."""
    p = Path(path)
    if p.is_file():
        return p
    for cand in (CONFIG_DIR / f"{path}.yaml", CONFIG_DIR / str(path)):
        if cand.is_file():
            return cand
    bundled = sorted(x.stem for x in CONFIG_DIR.glob("*.yaml")) if CONFIG_DIR.is_dir() else []
    raise ConfigError(f"--config: {path}: file not found; bundled configs: {', '.join(bundled) or 'none'}")


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Load a YAML config (or the defaults) and apply dotted-key overrides.

    Args:
        path: YAML file or bundled config name; None for the defaults.
        overrides: ``{"train.batch_size": 16, ...}``; None values are ignored.

    Raises:
        ConfigError: unreadable YAML, unknown key or bad value (named in the message).
    """
    tree: dict = {}
    if path is not None:
        p = resolve_config_path(path)
        try:
            tree = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: invalid YAML: {exc}") from exc
        if not isinstance(tree, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level")
    for k, v in (overrides or {}).items():
        if v is not None:
            set_dotted(tree, k, v)
    cfg = from_dict(Config, tree)
    validate(cfg)
    return cfg


def is_power_of_two(n: int) -> bool:
    """Whether ``n`` is a power of two ≥ 4 (the sizes the generators reach: each block doubles the side)."""
    return isinstance(n, int) and n >= 4 and (n & (n - 1)) == 0


def validate(cfg: Config) -> None:
    """Cross-field checks that typed fields cannot express.

    Raises:
        ConfigError: naming the offending key.
    """
    if not is_power_of_two(cfg.data.size):
        raise ConfigError(f"data.size: {cfg.data.size} is not a power of two ≥ 4 (e.g. 64, 128, 256, 512)")
    if not 0.0 <= cfg.data.min_shape_score <= 1.0:
        raise ConfigError(f"data.min_shape_score: {cfg.data.min_shape_score} is outside [0, 1]")
    if cfg.train.batch_size < 1:
        raise ConfigError(f"train.batch_size: must be ≥ 1, got {cfg.train.batch_size}")
    t = cfg.train
    if t.max_resolution is not None:
        have = [s.resolution for s in (t.stages or [StageConfig(t.resolution, t.epochs, 0)])]
        if t.max_resolution not in have:
            raise ConfigError(f"train.max_resolution: {t.max_resolution} is not a stage resolution; "
                              f"allowed values: {', '.join(map(str, have))}")
    for key, value, low in (("train.max_seconds", t.max_seconds, 1), ("train.ada_interval", t.ada_interval, 1),
                            ("train.r1_interval", t.r1_interval, 1), ("train.eval_every", t.eval_every, 0),
                            ("train.eval_n", t.eval_n, 2), ("train.early_stop_evals", t.early_stop_evals, 0)):
        if value is not None and value < low:
            raise ConfigError(f"{key}: must be ≥ {low}, got {value}")
    for key, value in (("train.ema", t.ema), ("train.ema_rampup", t.ema_rampup), ("train.r1_gamma", t.r1_gamma)):
        if value is not None and value < 0:
            raise ConfigError(f"{key}: must be ≥ 0 (or null), got {value}")
    if not -1.0 <= t.ada_target <= 1.0:
        raise ConfigError(f"train.ada_target: must be in [-1, 1] (r_t = E[sign(D(real))] is), got {t.ada_target}")
    if t.ada_kimg <= 0:
        raise ConfigError(f"train.ada_kimg: must be > 0, got {t.ada_kimg}")
    prev = 0
    for i, st in enumerate(cfg.train.schedule()):
        key = f"train.stages[{i}]" if cfg.train.stages else "train"
        if not is_power_of_two(st.resolution):
            raise ConfigError(f"{key}.resolution: {st.resolution} is not a power of two ≥ 4")
        if st.resolution <= prev:
            raise ConfigError(f"{key}.resolution: stages must grow in resolution ({prev} → {st.resolution})")
        if st.epochs < 0 or st.fade_in_images < 0:
            raise ConfigError(f"{key}: epochs and fade_in_images must be ≥ 0")
        prev = st.resolution
    if cfg.model.latent_dim < 1:
        raise ConfigError(f"model.latent_dim: must be ≥ 1, got {cfg.model.latent_dim}")

    validated_params(cfg.model.name, cfg.model.params)  # unknown model name or bad model.params


def load_run_config(run_dir: str | Path) -> Config:
    """The resolved config stored in a run directory (``config.yaml``; no TensorFlow needed).

    Raises:
        DataError: no ``config.yaml`` in ``run_dir``.
        ConfigError: a key or value this version does not accept.
    """
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise DataError(f"{run_dir}: not a keras-mammo run directory (no config.yaml)")
    return from_dict(Config, yaml.safe_load(path.read_text()))


class ResolvedRunConfig(NamedTuple):
    """What :func:`resolve_run_config` returns."""

    #: the config to train with: ``train.precision`` resolved (never ``auto``)
    config: Config
    #: the run's recorded config (``config.yaml``), or None for a new run
    previous: Config | None
    #: the text of that ``config.yaml``, to put back if the new config is refused
    previous_text: str | None


def resolve_run_config(cfg: Config, run_dir: str | Path) -> ResolvedRunConfig:
    """The config a run trains with, beside the one it recorded; ``config.yaml`` is read once.

    ``train.precision: auto`` becomes this machine's choice for a new run and the recorded
    precision for a resumed one (:func:`keras_mammo.precision.resolve_precision`). ``cfg``
    itself is not changed.

    Raises:
        ConfigError: the recorded ``config.yaml`` holds a key or value this version does
            not accept.
    """
    path = Path(run_dir) / "config.yaml"
    text = path.read_text() if path.is_file() else None
    previous = from_dict(Config, yaml.safe_load(text)) if text is not None else None
    precision = resolve_precision(cfg.train.precision, previous.train.precision if previous else None)
    config = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision=precision))
    return ResolvedRunConfig(config, previous, text)


def dump_config(cfg: Config) -> str:
    """The resolved config as YAML text."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
