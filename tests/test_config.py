"""Config files as people write them: Notepad's byte order mark, quoted numbers, a model name where
a list belongs, impossible values. Each is refused up front with the key, the file and an example."""

from __future__ import annotations

import pytest

from trainer.config import Config, ConfigError, load_config


def _file(tmp_path, text: str, *, bom: bool = False):
    path = tmp_path / "settings.toml"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def test_a_file_saved_with_a_byte_order_mark_is_read(tmp_path):
    config = load_config(_file(tmp_path, "seed = 7\n[labels]\nhorizon = 10\n", bom=True))
    assert config.seed == 7 and config.labels.horizon == 10


@pytest.mark.parametrize(("text", "words"), [
    ('[labels]\nhorizon = "20"\n', "labels.horizon must be a whole number (for example horizon = 20); got '20'"),
    ('seed = "abc"\n', "seed must be a whole number"),
    ('[training]\nmodels = "lightgbm"\n', 'training.models must be a list of names (for example models = '
                                          '["lightgbm", "xgboost"]); got \'lightgbm\''),
    ("[training]\nuniqueness_weights = 1\n", "training.uniqueness_weights must be true or false"),
    ('[gate]\nconfidence = "high"\n', "gate.confidence must be a number"),
    ("[data]\nstart = 2005\n", "data.start must be text in quotes"),
    ("[gate]\nconfidence = 5\n", "gate.confidence must be in [0.5, 1)"),
    ('[training]\nmodels = ["lightgbm", "lightgbm"]\n', "training.models lists lightgbm more than once"),
])
def test_wrong_types_and_values_name_the_key_and_the_file(tmp_path, text, words):
    path = _file(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert words in str(error.value)
    assert str(path) in str(error.value)


def test_integers_are_accepted_where_numbers_are_expected_and_none_stays_none(tmp_path):
    config = load_config(_file(tmp_path, "[gate]\nmax_shortfall = 0\n[training]\nholdout_share = 0.25\n"))
    assert config.gate.max_shortfall == 0.0 and isinstance(config.gate.max_shortfall, float)
    assert config.data.end is None and config == Config(gate=config.gate, training=config.training)


def test_a_bad_command_line_date_names_the_option_not_only_the_file(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_config(_file(tmp_path, "seed = 1\n"), {"data.start": "31/01/2010"})
    assert "--start (data.start) is '31/01/2010'; use a date like 2005-01-31 (year-month-day)" in str(error.value)
    with pytest.raises(ConfigError, match="--end"):
        load_config(None, {"data.start": "2010-01-01", "data.end": "2009-01-01"})


def test_a_folder_given_as_config_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)


def test_the_demo_size_is_part_of_the_identity_only_when_it_is_not_the_default():
    default = load_config(None, {"data.source": "demo"})
    assert "data.demo_symbols" not in default.identity(["A"])
    bigger = load_config(None, {"data.source": "demo", "data.demo_symbols": 500})
    assert bigger.identity(["A"])["data.demo_symbols"] == 500
    with pytest.raises(ConfigError, match="--demo-symbols .data.demo_symbols. sizes the demo market; use it with"):
        load_config(None, {"data.source": "csv", "data.demo_symbols": 500})
