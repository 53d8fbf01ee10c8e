"""The one registry mechanism: names, typed fields, round-trips, and a user's own part by class_path."""
from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass

import pytest
import torch

from audiotok.codecs import Codec, get_config
from audiotok.codecs.codec import DECODERS, ENCODERS
from audiotok.codecs.quantizers import QUANTIZERS
from audiotok.registry import PartSpec, Registry, RegistryError, SpecError, UnknownNameError


def test_register_get_names_and_unknown_name_message():
    reg = Registry("widget")

    @reg.register("b")
    def make_b(size: int = 1):
        return ("b", size)

    reg.register("a", lambda: "a")
    assert reg.names() == ["a", "b"] and "b" in reg and reg.get("b") is make_b
    with pytest.raises(UnknownNameError) as err:
        reg.get("c")
    message = str(err.value)
    assert "unknown widget 'c'; available: a, b" in message
    assert "register" in message and "class_path" in message  # says how to plug in one's own
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("a", lambda: "other")


def test_fields_are_typed_unknown_missing_and_wrong_types_rejected():
    @dataclass
    class Config:
        size: int
        rate: float = 1.0
        name: str | None = None

    reg = Registry("widget")
    reg.register("w", Config, config=Config)
    assert reg.build({"type": "w", "size": 3}) == Config(3)
    with pytest.raises(SpecError, match=r"unknown field\(s\) \['sise'\]; accepted: \['name', 'rate', 'size'\]"):
        reg.parse({"type": "w", "sise": 3})
    with pytest.raises(SpecError, match=r"lacks the required field\(s\) \['size'\]"):
        reg.parse({"type": "w"})
    with pytest.raises(SpecError, match="field 'size' must be int, got 'big'"):
        reg.parse({"type": "w", "size": "big"})
    with pytest.raises(SpecError, match="field 'rate' must be float"):
        reg.parse({"type": "w", "size": 1, "rate": True})
    assert reg.parse({"type": "w", "size": 1, "rate": 2, "name": None}).fields["rate"] == 2  # int is a float


@pytest.mark.parametrize("name", ["speechtokenizer", "mimi", "wavtokenizer-75", "rvq-vocos-small"])
def test_every_registered_part_spec_round_trips(name):
    config = get_config(name)
    for registry, spec in ((ENCODERS, config.encoder), (DECODERS, config.decoder), (QUANTIZERS, config.quantizer)):
        parsed = registry.parse(spec)
        assert parsed.to_dict() == spec
        assert registry.parse(parsed.to_dict()) == parsed


def test_codec_part_with_unknown_field_names_the_known_ones():
    config = get_config("mimi-tiny").replace(encoder={"n_filter": 8})
    with pytest.raises(TypeError, match=r"encoder 'seanet' got unknown field\(s\) \['n_filter'\]; accepted: .*'n_filters'"):
        Codec(config)


def test_users_own_part_plugs_in_by_class_path(tmp_path, monkeypatch):
    """A user's encoder in their own module, named from a config (no library edit), round-trips."""
    (tmp_path / "my_codec_parts.py").write_text(textwrap.dedent('''
        import torch
        from audiotok.codecs.modules.seanet import SEANetEncoder

        class WideEncoder(SEANetEncoder):
            """SEANet with an extra gain; the config names it by import path."""
            def __init__(self, gain: float = 2.0, **kwargs):
                super().__init__(**kwargs)
                self.gain = gain

            def forward(self, x):
                return super().forward(x * self.gain)
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    base = get_config("mimi-tiny").to_dict()
    fields = {k: v for k, v in base["encoder"].items() if k != "type"}
    base["encoder"] = {"class_path": "my_codec_parts.WideEncoder", "init_args": {"gain": 0.5, **fields}}
    from audiotok.codecs import CodecConfig

    codec = Codec(CodecConfig.from_dict(base))
    assert type(codec.encoder).__name__ == "WideEncoder" and codec.encoder.gain == 0.5
    codes = codec.encode(torch.zeros(1, 1, codec.hop_length * 2))
    assert codes.shape == (1, codec.num_codebooks, 2)
    spec = ENCODERS.parse(base["encoder"])
    assert spec == PartSpec("encoder", None, "my_codec_parts.WideEncoder", base["encoder"]["init_args"])
    assert ENCODERS.parse(spec.to_dict()) == spec
    with pytest.raises(RegistryError, match="cannot import 'no_such_pkg'"):
        ENCODERS.parse({"class_path": "no_such_pkg.Encoder"})
    sys.modules.pop("my_codec_parts", None)


def test_plugins_are_imported_on_first_lookup(tmp_path, monkeypatch):
    (tmp_path / "my_widgets.py").write_text("from test_registry_plugin_home import REG\nREG.register('late', 42)\n")
    (tmp_path / "test_registry_plugin_home.py").write_text(
        "from audiotok.registry import Registry\nREG = Registry('widget', plugins=('my_widgets',))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from test_registry_plugin_home import REG

    assert "my_widgets" not in sys.modules
    assert REG.get("late") == 42 and REG.names() == ["late"]
    for module in ("my_widgets", "test_registry_plugin_home"):
        sys.modules.pop(module, None)


# ---- families ------------------------------------------------------------------------------------------
def test_every_family_module_is_registered_with_consistent_facts():
    from audiotok.checkpoints.formats import FORMATS
    from audiotok.codecs import available
    from audiotok.discriminators import ADVERSARIAL_PRESETS, DISCRIMINATOR_PRESETS
    from audiotok.families import FAMILIES, RECIPES
    from audiotok.training.losses import MEL_PRESETS

    assert FAMILIES.names() == ["encodec", "mimi", "mix", "speechtokenizer", "units", "wavtokenizer", "xcodec2"]
    assert sorted(n for _, f in FAMILIES.items() for n in f.configs) == available()
    for name, family in FAMILIES.items():
        for config_name, factory in family.configs.items():
            config = factory()
            assert (config.name, config.family) == (config_name, name)
        if family.recipe is not None:  # a recipe names presets that exist, it does not copy them
            assert RECIPES.get(name) is family.recipe
            assert family.recipe["discriminators"] in DISCRIMINATOR_PRESETS
            assert family.recipe["adversarial"] in ADVERSARIAL_PRESETS
            assert family.recipe["losses"]["mel_preset"] in MEL_PRESETS
        for field in ("speed", "quality", "streaming"):
            value = getattr(family.bench, field)
            assert value is None or value in available() or value.startswith(tuple(available())), (name, field)
    # detection order: SpeechTokenizer, Mimi (Hugging Face before moshi), WavTokenizer
    assert list(FORMATS)[:4] == ["speechtokenizer", "mimi-hf", "mimi-moshi", "wavtokenizer"]


def test_a_new_family_plugs_in_with_one_module(tmp_path, monkeypatch):
    """A family of one's own: configs, recipe and a checkpoint format from one module, no library edit."""
    (tmp_path / "my_family.py").write_text(textwrap.dedent('''
        from audiotok.checkpoints.formats import CheckpointFormat
        from audiotok.families import BenchDefaults, Family, register_family
        from audiotok.families import mimi

        def config(tiny=True):
            return mimi.config(tiny=True).replace(name="my-codec-tiny", family="my-family")

        def detect(files, trust_checkpoint=False):
            found = files.pick(lambda f: f.suffix == ".mine")
            return (lambda: __import__("audiotok").codecs.build_codec("my-codec-tiny")) if found else None

        FAMILY = register_family(Family(
            name="my-family", configs={"my-codec-tiny": config},
            recipe={**mimi.RECIPE, "discriminators": "encodec"},
            formats={"my-format": CheckpointFormat("my-family", "*.mine", detect)},
            bench=BenchDefaults(quality="my-codec-tiny")))
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    from audiotok.checkpoints.formats import FORMATS, detect_and_convert
    from audiotok.codecs.families import CODECS
    from audiotok.families import FAMILIES, RECIPES
    from audiotok.training.recipes import get_recipe

    importlib.import_module("my_family")
    try:
        assert get_config("my-codec-tiny").family == "my-family"
        assert get_recipe({"base": "my-family", "ema_decay": None})["discriminators"] == "encodec"
        (tmp_path / "weights.mine").write_bytes(b"")
        assert detect_and_convert(tmp_path / "weights.mine").config.name == "my-codec-tiny"
    finally:  # leave the registries as the other tests expect them
        for registry, name in ((FAMILIES, "my-family"), (RECIPES, "my-family"), (CODECS, "my-codec-tiny"),
                               (FORMATS, "my-format")):
            registry.unregister(name)
        sys.modules.pop("my_family", None)


@pytest.mark.parametrize("path", sorted((__import__("pathlib").Path(__file__).parents[2] / "configs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_yaml_configs_still_resolve(path):
    """Every configs/*.yaml names a registered codec and a recipe that resolves with its overrides."""
    import yaml

    from audiotok.codecs import available
    from audiotok.training.recipes import get_recipe

    model = yaml.safe_load(path.read_text())["model"]
    codec = model.get("codec", "speechtokenizer")
    assert not isinstance(codec, str) or codec in available()
    keys = ("discriminator_width", "warmup_steps", "quantizer_warmup_steps", "ema_decay", "codec_overrides")
    get_recipe(model.get("recipe", "speechtokenizer"), {k: model[k] for k in keys if model.get(k) is not None})
