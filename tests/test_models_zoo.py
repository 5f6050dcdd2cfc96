"""The other published generators, as a parameter table over models and resolutions (MONAI style).

Every case uses real MIAS films (16 films prepared by the ``mias_prepared`` fixture) and
tiny channel widths so that the whole file runs in a couple of minutes on 2 CPU cores.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from keras_mammo.config import load_config
from keras_mammo.data.pipeline import fixed_batch, load_stage_arrays
from keras_mammo.models.registry import DataInfo, build_model
from keras_mammo.training.checkpoint import restore_checkpoint, save_checkpoint
from keras_mammo.models.gan import GAN, images_to_uint8

LATENT = 16
#: Small widths: the architectures of the papers, thinned for a CPU test.
SMALL = {
    "dcgan": {"g_base_channels": 32, "min_channels": 8, "d_base_channels": 8, "max_d_channels": 32},
    "stylegan": {"w_dim": 16, "mapping_layers": 2, "fmap_base": 64, "fmap_max": 16},
    "unet": {"base_filters": 4, "depth": 3},
    "seg-cdcgan": {"g_base_channels": 32, "min_channels": 8, "d_base_channels": 8, "max_d_channels": 32,
                   "n_critic": 2},
    "pix2pix": {"g_base_filters": 8, "g_max_filters": 32, "d_base_filters": 8},
    "fastgan": {"ngf": 4, "ndf": 4, "min_channels": 2},
}
#: (model, resolution) cases of the parameter table
TEST_CASES = [(name, res) for name in SMALL for res in (32, 64) if name != "fastgan"]  # fastgan: test_fastgan.py
SIGNATURES = {
    "dcgan": {"serving_default", "generate"},
    "stylegan": {"serving_default", "generate"},
    "unet": {"serving_default"},
    "seg-cdcgan": {"serving_default", "generate"},
    "pix2pix": {"serving_default", "classes"},
    "fastgan": {"serving_default", "generate"},
}


def make_cfg(name: str, res: int, **extra):
    overrides = {"model.name": name, "model.latent_dim": LATENT, "model.params": SMALL[name],
                 "train.resolution": res, "seed": 7}
    overrides.update(extra)
    return load_config(None, overrides)


def make_model(name: str, res: int, classes, **extra):
    """A compiled, built model; ``extra`` config overrides also go through ``configure_training``."""
    cfg = make_cfg(name, res, **extra)
    model = build_model(cfg, DataInfo(classes=list(classes), num_images=16, resolution=64))
    opt = model.default_optimizer
    import keras

    adam = lambda lr: keras.optimizers.Adam(lr, beta_1=opt["beta_1"], beta_2=opt["beta_2"])  # noqa: E731
    model.compile(g_optimizer=adam(opt["g_learning_rate"]), d_optimizer=adam(opt["d_learning_rate"]))
    model.build_networks()
    model.build_optimizers()
    model.set_stage(res, 0, 0, 4)
    if extra:
        model.configure_training(cfg.train)
    return model


@pytest.fixture(scope="module")
def mias_batches(mias_prepared):
    """Real MIAS batches at 32 and 64 px with every key (image, masks, labels)."""
    keys = ("breast_mask", "lesion_mask", "label")
    out = {}
    for res in (32, 64):
        stage = load_stage_arrays(mias_prepared, res, keys)
        batch = fixed_batch(stage, 4)
        out[res] = (batch, stage.classes)
    return out


def _batch_for(model, batch):
    return {k: batch[k] for k in ("image",) + tuple(model.inputs_needed)}


@pytest.mark.parametrize("name,res", TEST_CASES)
def test_output_shapes_and_ranges(name, res, mias_batches):
    batch, classes = mias_batches[res]
    model = make_model(name, res, classes)
    out = model.sample(GAN.fixed_latents(4, LATENT, 0), batch).numpy()
    assert out.shape == (4, res, res, 1) and out.dtype == np.float32
    assert np.isfinite(out).all() and np.std(out) > 0 and np.abs(out[0] - out[1]).max() > 0
    assert model.inputs_needed == tuple(k for k in model.inputs_needed if k in batch)
    # [-1, 1] is the output layer's bound, not the luck of small initial weights: with every
    # generator kernel ×30 the pre-activations are huge, yet the images stay in range (saturated)
    for v in model.generator.trainable_variables:
        if v.path.endswith("kernel"):
            v.assign(v * 30.0)
    loud = model.sample(GAN.fixed_latents(4, LATENT, 0), batch).numpy()
    assert np.isfinite(loud).all() and loud.min() >= -1.0 and loud.max() <= 1.0
    assert np.mean(np.abs(loud) > 0.99) > 0.5
    if name in ("dcgan", "stylegan", "fastgan"):  # unconditional: generate(latents) alone
        assert model.generate(GAN.fixed_latents(2, LATENT, 1)).shape == (2, res, res, 1)


def test_real_batches_hold_lesions_and_classes(mias_batches):
    """The fixture's films are real MIAS films with MIAS labels and disk lesion masks."""
    batch, classes = mias_batches[64]
    assert set(classes) <= {"normal", "benign", "malignant"}
    assert batch["image"].shape == (4, 64, 64, 1)
    assert float(tf.reduce_max(batch["lesion_mask"])) == 1.0  # mdb001/mdb002 hold circumscribed masses


@pytest.mark.parametrize("name", list(SMALL))
def test_checkpoint_reload_and_resume_are_exact(name, mias_batches, tmp_path):
    """Save after one train step; a fresh model restored from it gives identical outputs and,
    after one more step on the same batch, identical weights (stateless, step-keyed noise)."""
    res = 32
    batch, classes = mias_batches[res]
    data = _batch_for(make_model(name, res, classes), batch)
    a = make_model(name, res, classes)
    logs = a.train_step(data)  # eager: no tracing, same maths as fit
    assert all(np.isfinite(float(v)) for v in logs.values())
    path = save_checkpoint(tmp_path, 1, a.checkpoint_variables(), {"stage": a.stage_state()})
    b = make_model(name, res, classes)
    state = restore_checkpoint(path, b.checkpoint_variables())
    assert state["stage"]["resolution"] == res
    latents = GAN.fixed_latents(4, LATENT, 3)
    np.testing.assert_array_equal(a.sample(latents, batch).numpy(), b.sample(latents, batch).numpy())
    a.train_step(data)
    b.train_step(data)
    for va, vb in zip(a.checkpoint_variables(), b.checkpoint_variables()):
        np.testing.assert_allclose(np.asarray(va), np.asarray(vb), rtol=1e-6, atol=1e-6, err_msg=va.path)
    assert int(a.step) == int(b.step) == 2


D_OPTIONS = {"loss": {"train.loss": "hinge"}, "r1_gamma": {"train.r1_gamma": 2.0, "train.r1_interval": 1},
             "spectral_norm": {"train.spectral_norm": True}}
#: (model, option) → what the refusal must say
D_REFUSED = {("stylegan", "r1_gamma"): "model.params.r1_gamma",
             ("stylegan", "spectral_norm"): "equalized learning rate",
             **{("seg-cdcgan", o): "WGAN-GP critic" for o in D_OPTIONS}}


@pytest.mark.parametrize("name", ["stylegan", "seg-cdcgan", "pix2pix", "fastgan"])
def test_discriminator_options_act_or_are_refused_with_the_reason(name, mias_batches, monkeypatch):
    """``train.loss: hinge``, ``train.r1_gamma`` and ``train.spectral_norm`` (issue 9) on the
    other models: one the model takes changes its train step (the hinge loss is called, R1
    is computed, D's convolutions are spectrally normalized); one it cannot take is refused
    with the reason and what to use instead."""
    import keras

    from keras_mammo import losses
    from keras_mammo.errors import ConfigError
    from keras_mammo.models.fastgan import SNConv2D

    res = 32
    batch, classes = mias_batches[res]
    hinge_calls = []
    real_hinge = losses.hinge_discriminator_loss
    monkeypatch.setattr(losses, "hinge_discriminator_loss", lambda r, f: hinge_calls.append(1) or real_hinge(r, f))
    for option, extra in D_OPTIONS.items():
        if name == "fastgan" and option == "spectral_norm":   # forced on over the model's own switch
            extra = {**extra, "model.params": {**SMALL[name], "spectral_norm": False}}
        if (name, option) in D_REFUSED:
            with pytest.raises(ConfigError, match=rf"train\.{option}: .* not supported by model '{name}' "
                                                  rf"\(.*{D_REFUSED[name, option]}"):
                make_model(name, res, classes, **extra)
            continue
        model = make_model(name, res, classes, **extra)
        hinge_calls.clear()
        logs = model.train_step(_batch_for(model, batch))
        assert all(np.isfinite(float(v)) for v in logs.values()), (option, logs)
        if option == "loss" and name != "fastgan":           # fastgan's loss is the hinge one, imported as such
            assert hinge_calls, f"{name}: train.loss=hinge did not reach the train step"
        elif option == "r1_gamma":
            assert float(logs["r1"]) > 0
        elif option == "spectral_norm":
            layers = list(model.discriminator._flatten_layers())
            if name == "fastgan":
                convs = [x for x in layers if isinstance(x, SNConv2D)]
                assert convs and all(x.spectral_norm for x in convs)
            else:
                assert sum(isinstance(x, keras.layers.SpectralNormalization) for x in layers) >= 5


@pytest.mark.parametrize("name", list(SMALL))
def test_export_reloads_and_signatures_answer(name, mias_batches, tmp_path):
    """SavedModel of ``export_trackables`` + ``export_signatures`` (as keras_mammo.generation.export does)."""
    res = 32
    batch, classes = mias_batches[res]
    model = make_model(name, res, classes)
    sigs = model.export_signatures()
    assert set(sigs) == SIGNATURES[name]
    module = tf.Module()
    for k, obj in model.export_trackables().items():
        setattr(module, k, obj)
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures=sigs)
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    assert set(loaded.signatures) == SIGNATURES[name]
    u8 = lambda x: tf.cast(tf.round(x), tf.uint8)  # noqa: E731
    if name in ("dcgan", "stylegan", "fastgan"):
        z = GAN.fixed_latents(3, LATENT, 5)
        got = loaded.signatures["serving_default"](latent=z)["images"]
        want = images_to_uint8(model.generate(z))
        gen = loaded.signatures["generate"](count=tf.constant(2, tf.int32), seed=tf.constant(9, tf.int64))["images"]
        assert gen.shape == (2, res, res, 1) and gen.dtype == tf.uint8
    elif name == "unet":
        img = u8((batch["image"] + 1.0) * 127.5)
        out = loaded.signatures["serving_default"](image=img)
        got, want = out["mask"], tf.cast(model.segment(tf.cast(img, tf.float32) / 127.5 - 1.0) > 0.5, tf.uint8) * 255
        assert out["probability"].dtype == tf.float32
    elif name == "seg-cdcgan":
        z = GAN.fixed_latents(4, LATENT, 5)
        mask = tf.cast(batch["lesion_mask"], tf.uint8) * 255  # non-zero = lesion
        got = loaded.signatures["serving_default"](latent=z, mask=mask)["images"]
        want = images_to_uint8(model.generate(z, {"lesion_mask": batch["lesion_mask"]}))
        g2 = loaded.signatures["generate"](seed=tf.constant(3, tf.int64), mask=mask)["images"]
        assert g2.shape == (4, res, res, 1)
    else:
        cond = tf.cast(tf.concat([batch["breast_mask"], batch["lesion_mask"]], -1), tf.uint8)
        got = loaded.signatures["serving_default"](condition=cond, class_id=batch["label"])["images"]
        want = images_to_uint8(model.generate(None, {k: batch[k] for k in model.inputs_needed}))
        names = [c.decode() for c in loaded.signatures["classes"]()["classes"].numpy()]
        assert names == list(classes)
        with pytest.raises(tf.errors.InvalidArgumentError):
            loaded.signatures["serving_default"](condition=cond[:1], class_id=tf.constant([len(classes)]))
    assert got.dtype == tf.uint8 and got.shape[1:] == (res, res, 1)
    # the graph may fuse ops differently: allow one grey level
    assert np.abs(got.numpy().astype(int) - want.numpy().astype(int)).max() <= 1


def test_stylegan_fade_in_alpha_zero_is_the_upsampled_lower_resolution():
    """At α = 0 the 16-px generator shows the 8-px image ×2 (nearest) and the 16-px
    discriminator sees the 2×2-averaged image through the 8-px path (Karras et al. 2018, Fig. 2)."""
    model = make_model("stylegan", 32, [])
    g, d = model.generator, model.discriminator
    z = GAN.fixed_latents(2, LATENT, 11)
    model.set_stage(8)
    low = g(z, alpha=1.0).numpy()
    model.set_stage(16, fade_in_images=100)
    high0 = g(z, alpha=0.0).numpy()
    np.testing.assert_allclose(high0, low.repeat(2, axis=1).repeat(2, axis=2), atol=1e-6)
    x = tf.random.stateless_uniform((2, 16, 16, 1), seed=(1, 2), minval=-1, maxval=1)
    d16 = d(x, alpha=0.0).numpy()
    model.set_stage(8)
    d8 = d(tf.nn.avg_pool2d(x, 2, 2, "VALID"), alpha=1.0).numpy()
    np.testing.assert_allclose(d16, d8, rtol=1e-5, atol=1e-6)
    # α ramps with the images shown: 100 images at 8 per step → 0.4 after 5 steps
    model.set_stage(16, fade_in_images=100, stage_start_step=0, global_batch=8)
    assert float(model.current_alpha(step=5)) == pytest.approx(0.4)
    assert json.loads(json.dumps(model.stage_state()))["fade_in_images"] == 100


def test_stylegan_truncation_and_style_mixing():
    model = make_model("stylegan", 32, [])
    g = model.generator
    model.generator.w_avg.assign(np.full(g.w_avg.shape, 0.5, np.float32))
    z = GAN.fixed_latents(2, LATENT, 12)
    ws = g.broadcast(g.mapping(z))
    t = g.truncate(ws, 0.0, cutoff=4).numpy()
    np.testing.assert_allclose(t[:, :4], 0.5)           # ψ = 0: the average w on truncated layers
    np.testing.assert_allclose(t[:, 4:], ws.numpy()[:, 4:], rtol=1e-5, atol=1e-6)
    mixed, w1 = model.mixed_styles(2, stream=0)
    m = mixed.numpy()
    # every layer carries either w1 or w2, and layer 0 always carries w1
    np.testing.assert_allclose(m[:, 0], w1.numpy(), rtol=1e-5, atol=1e-6)
    a = model.generate(z).numpy()
    b = model.generate(z, {"truncation_psi": 1.0}).numpy()
    assert not np.allclose(a, b)  # truncation changes the images (ψ = 0.7 by default)


def test_model_configs_validate():
    """The bundled small configs load and their params match the models' dataclasses."""
    from keras_mammo.models.registry import model_params

    for name in SMALL:
        cfg = load_config(name)
        assert cfg.model.name == name
        model_params(cfg)


def test_bad_params_name_the_key():
    from keras_mammo.errors import ConfigError

    with pytest.raises(ConfigError, match="model.params.critic_norm"):
        build_model(load_config(None, {"model.name": "seg-cdcgan", "model.params": {"critic_norm": "batch"},
                                       "train.resolution": 32}))
    with pytest.raises(ConfigError, match="model.params.classes"):
        build_model(load_config(None, {"model.name": "pix2pix", "train.resolution": 32}), DataInfo())
    with pytest.raises(ConfigError, match="one resolution"):
        build_model(load_config(None, {"model.name": "dcgan", "train.stages": [
            {"resolution": 32, "epochs": 1}, {"resolution": 64, "epochs": 1}]}))
