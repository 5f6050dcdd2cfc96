"""The small-data training recipe shared by every keras-mammo GAN (issue 9).

:class:`SmallDataRecipe` is a mixin of :class:`keras_mammo.models.gan.GAN`, configured
by :meth:`SmallDataRecipe.configure_training` from ``train.*``:

- an EMA generator updated after every step (:mod:`keras_mammo.models.ema`; Karras et
  al. 2018, App. A.1; half-life in images as StyleGAN2-ADA);
- augmentation of every image the discriminator sees (:meth:`~SmallDataRecipe.augment_for_d`):
  ADA (Karras et al. 2020, :mod:`keras_mammo.augment.ada`) whose controller is fed by
  :meth:`~SmallDataRecipe.observe_real_logits`, or DiffAugment (Zhao et al. 2020,
  :mod:`keras_mammo.augment.diffaugment`);
- the hinge loss (Lim & Ye 2017; :meth:`~SmallDataRecipe.d_loss`,
  :meth:`~SmallDataRecipe.g_loss`) and the lazy R1 penalty (Mescheder et al. 2018;
  Karras et al. 2020b, §3.1; :meth:`~SmallDataRecipe.r1_term`).

:func:`with_training_hooks` wraps a model's ``train_step`` so that the EMA and ADA
updates run after it (the GAN base class applies it to every subclass).
"""
from __future__ import annotations

import contextlib
import functools

import tensorflow as tf
from keras import ops

from keras_mammo import losses   # called as losses.<name>, so a test can patch the module
from keras_mammo.augment import diffaugment
from keras_mammo.augment.ada import AdaptiveAugment
from keras_mammo.errors import ConfigError
from keras_mammo.models.ema import GeneratorEMA
from keras_mammo.models.gan_utils import step_seed


def with_training_hooks(train_step):
    """Wrap a model's ``train_step``: reset the per-step augmentation counter before it,
    update the EMA generator and ADA's p after it, and log ``ada_p`` / ``ada_rt`` / ``ema_beta``."""

    @functools.wraps(train_step)
    def step(self, data):
        if getattr(self, "_in_train_step", False):   # a subclass calling super().train_step
            return train_step(self, data)
        object.__setattr__(self, "_in_train_step", True)
        object.__setattr__(self, "_augment_calls", 0)
        object.__setattr__(self, "_observed_real", False)
        try:
            logs = train_step(self, data)
        finally:
            object.__setattr__(self, "_in_train_step", False)
        return _multi_worker_logs({**logs, **self._after_train_step(data)})

    step._with_training_hooks = True
    return step


def _multi_worker_logs(logs: dict) -> dict:
    """Under ``MultiWorkerMirroredStrategy`` with several workers, scalar logs as shape ``(1,)``.

    Keras 3.15's ``fit`` reduces step outputs across workers with
    ``strategy.reduce("MEAN", v, axis=0)``, which fails on scalars ("Invalid reduction
    dimension 0 for input with 0 dimensions"; keras-team/keras#20585). With shape ``(1,)``
    the reduction is the mean over all replicas, a scalar again, and every worker logs
    the same global value. Elsewhere the logs are returned unchanged.
    """
    strategy = tf.distribute.get_strategy()
    multi = getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)()
    if not multi:
        return logs
    return {k: tf.reshape(tf.cast(v, tf.float32), [1]) if tf.is_tensor(v) and v.shape.rank == 0 else v
            for k, v in logs.items()}


class SmallDataRecipe:
    """EMA generator, discriminator augmentation, hinge loss and lazy R1 (see the module docstring).

    A mixin for :class:`keras_mammo.models.gan.GAN` (it uses ``self.generator``,
    ``self.seed``, ``self.step`` and ``self.name``); every option is off until
    :meth:`configure_training` sets it.
    """

    ema = None
    ada = None
    augment_kind = "none"
    loss_kind = "default"
    r1_gamma = 0.0
    r1_interval = 16
    use_ema = True
    #: which of ``train.loss``, ``train.r1_gamma`` and ``train.spectral_norm`` the model
    #: honours (``"loss"``, ``"r1_gamma"``, ``"spectral_norm"``); the others are refused by
    #: :meth:`configure_training`, with ``d_options_refused[name]`` as the reason
    d_options: frozenset = frozenset()
    d_options_refused: dict = {}

    def configure_training(self, train_cfg) -> None:
        """Create the EMA generator and ADA state and set the loss/R1 options from ``train.*``.

        Call after :meth:`build_networks` (the EMA copies the generator's variables), in
        the ``tf.distribute`` scope.

        Raises:
            ConfigError: ``train.loss``, ``train.r1_gamma`` or ``train.spectral_norm`` set
                for a model that does not honour it (:attr:`d_options`).
        """
        t = train_cfg
        for key, value, off in (("train.loss", t.loss, "default"), ("train.r1_gamma", t.r1_gamma or 0.0, 0.0),
                                ("train.spectral_norm", t.spectral_norm, False)):
            option = key.split(".", 1)[1]
            if value != off and option not in self.d_options:
                why = self.d_options_refused.get(option)
                raise ConfigError(f"{key}: {value!r} is not supported by model "
                                  f"{getattr(self, 'registered_name', self.name)!r}"
                                  f"{f' ({why})' if why else ''}; leave it at {off!r}")
        if t.ema:
            object.__setattr__(self, "ema", GeneratorEMA(self.generator, t.ema, t.ema_rampup))
        self.use_ema = bool(t.use_ema)
        self.augment_kind = t.augment
        if t.augment == "ada":
            object.__setattr__(self, "ada", AdaptiveAugment(t.ada_target, t.ada_kimg, t.ada_interval))
        self.loss_kind = t.loss
        self.r1_gamma, self.r1_interval = float(t.r1_gamma or 0.0), int(t.r1_interval)

    def augment_for_d(self, images, conditions=None, stream: int | None = None):
        """Augment images before the discriminator sees them (``train.augment``).

        Call it on every real and every generated batch given to the discriminator
        (also inside the R1 penalty's closure). Geometric transforms move
        ``conditions`` identically; colour transforms touch only ``images``. Each call
        of a train step draws its own transform, a function of ``(seed, step, call
        number)``, so a resumed run augments exactly as an uninterrupted one.

        Args:
            images: ``(N, H, W, 1) float32`` in ``[-1, 1]``.
            conditions: optional ``(N, H, W, K)`` condition maps.
            stream: draw the transform from stream ``stream`` instead of the call number;
                two calls with one stream in one step draw the same transform (e.g. the
                two sizes of a FastGAN image pair).

        Returns:
            the augmented images, or ``(images, conditions)`` when conditions are given;
            the inputs unchanged when ``train.augment`` is ``none``.
        """
        if self.augment_kind == "none":
            return images if conditions is None else (images, conditions)
        if stream is None:
            k = getattr(self, "_augment_calls", 0)
            object.__setattr__(self, "_augment_calls", k + 1)
            seed = step_seed(self, 400 + k)
        else:
            seed = step_seed(self, 100_000 + int(stream))
        c = ops.shape(images)[-1]
        x = images if conditions is None else ops.concatenate([images, ops.cast(conditions, images.dtype)], axis=-1)
        if self.ada is not None:
            y = self.ada.augment(x, seed, image_channels=c)
        else:
            y = diffaugment.diff_augment(x, seed, image_channels=c)
        if conditions is None:
            return y
        return y[..., :c], y[..., c:]

    def observe_real_logits(self, real_logits) -> None:
        """Report ``D(augmented real)`` of this step to ADA's overfitting statistic ``r_t``."""
        object.__setattr__(self, "_observed_real", True)
        if self.ada is not None:
            self.ada.observe(real_logits)

    def d_loss(self, real_logits, fake_logits, default):
        """The discriminator loss: ``default(real, fake)`` or the hinge loss (``train.loss``)."""
        if self.loss_kind == "hinge":
            return losses.hinge_discriminator_loss(real_logits, fake_logits)
        return default(real_logits, fake_logits)

    def g_loss(self, fake_logits, default):
        """The generator's adversarial loss: ``default(fake)`` or the hinge one (``train.loss``)."""
        if self.loss_kind == "hinge":
            return losses.hinge_generator_loss(fake_logits)
        return default(fake_logits)

    def r1_term(self, discriminator, real):
        """Lazy R1 penalty to add to the discriminator loss (``train.r1_gamma``, ``train.r1_interval``).

        ``γ/2 · interval · E[‖∇_x D(x)‖²]`` on the steps where ``step % interval == 0``,
        else 0 (StyleGAN2's lazy regularization, Karras et al. 2020b, §3.1: the
        penalty is scaled by the interval so its average strength is unchanged).

        Args:
            discriminator: callable ``(N, H, W, C) → (N, 1)`` logits (include the
                augmentation in it: the gradient is then taken through it, as in ADA).
            real: ``(N, H, W, C)`` float32 real images.

        Returns:
            ``(term, r1)``: scalar float32 tensors (both 0 when disabled or not due).
        """
        zero = tf.constant(0.0)
        if self.r1_gamma <= 0:
            return zero, zero
        due = tf.equal(self.step % self.r1_interval, 0)
        r1 = tf.cond(due, lambda: tf.cast(losses.r1_penalty(discriminator, real), tf.float32), lambda: zero)
        return 0.5 * self.r1_gamma * self.r1_interval * r1, r1

    def _after_train_step(self, data) -> dict:
        """EMA and ADA updates after a step; returns extra logs."""
        logs = {}
        images = data["image"] if isinstance(data, dict) else data
        strategy = tf.distribute.get_strategy()
        global_batch = tf.cast(tf.shape(images)[0], tf.float32) * float(strategy.num_replicas_in_sync)
        if self.ema is not None:
            self.ema.update(global_batch, tf.cast(self.step, tf.float32) * global_batch)
            logs["ema_beta"] = self.ema.beta.read_value()
        if self.ada is not None:
            if not getattr(self, "_observed_real", False):
                raise ConfigError(f"train.augment: ada needs D(real) each step; model {self.name!r} does not call "
                                  "observe_real_logits() in its train_step")
            self.ada.end_minibatch(global_batch)
            logs["ada_p"] = self.ada.p.read_value()
            logs["ada_rt"] = self.ada.rt.read_value()
        return logs

    def inference_weights(self, ema: bool | None = None):
        """Context manager: the generator holds the EMA weights inside (when the run has them).

        Args:
            ema: True/False forces EMA/raw weights; None follows ``train.use_ema``.
        """
        use = self.use_ema if ema is None else ema
        if use and self.ema is not None:
            return self.ema.swapped()
        return contextlib.nullcontext(self.generator)
