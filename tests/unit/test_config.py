import pytest
import yaml

from zooflow.config import ConfigError, config_path, load_task_file, resolve


def test_resolve_merges_defaults_and_profile():
    cfg = resolve("classification", "vgg16-finetune", "book")
    assert (cfg.input_size, cfg.width, cfg.hidden, cfg.batch_size, cfg.epochs) == (224, 1.0, 4096, 32, 2)
    assert cfg.lr == {"features": 1e-4, "classifier": 5e-4, "head": 1e-3}  # the book's three rates
    assert cfg.momentum == 0.9 and cfg.pretrained == "imagenet"
    assert cfg.registered_name == "classification-vgg16-finetune"


def test_digest_changes_with_the_config():
    assert resolve("classification", "vgg16-transfer", "demo").digest() != resolve("classification", "vgg16-transfer", "smoke").digest()
    assert resolve("classification", "vgg16-transfer", "demo").digest() == resolve("classification", "vgg16-transfer", "demo").digest()


def _write(tmp_path, mutate):
    raw = yaml.safe_load(config_path("classification").read_text())
    mutate(raw)
    path = tmp_path / "classification.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_unknown_key_in_a_profile_is_an_error_naming_the_key(tmp_path):
    path = _write(tmp_path, lambda raw: raw["models"]["vgg16-transfer"]["profiles"]["demo"].update(learning_rate=0.1))
    with pytest.raises(ConfigError, match=r"unknown key 'learning_rate' at models\.vgg16-transfer\.profiles\.demo") as error:
        load_task_file("classification", path)
    assert str(path) in str(error.value)


def test_unknown_top_level_key_is_an_error(tmp_path):
    path = _write(tmp_path, lambda raw: raw.update(scheduel={"cron": "x"}))
    with pytest.raises(ConfigError, match="unknown key 'scheduel'"):
        load_task_file("classification", path)


def test_unknown_model_and_profile_are_named():
    with pytest.raises(ConfigError, match="no model 'vgg19'"):
        resolve("classification", "vgg19", "demo")
    with pytest.raises(ConfigError, match="no profile 'huge'"):
        resolve("classification", "vgg16-transfer", "huge")
    with pytest.raises(ConfigError, match="no config for task 'nope'"):
        resolve("nope", "x", "demo")


def test_missing_required_value_is_reported(tmp_path):
    path = _write(tmp_path, lambda raw: raw["models"]["vgg16-transfer"]["profiles"]["demo"].pop("epochs"))
    with pytest.raises(ConfigError, match="epochs"):
        resolve("classification", "vgg16-transfer", "demo", path=path)


def test_configs_stored_by_older_versions_still_load():
    stored = resolve("classification", "vgg16-transfer", "smoke").model_dump(mode="json")
    stored.pop("module")  # what versions registered before task modules could be shared look like
    from zooflow.config import RunConfig

    assert RunConfig.model_validate(stored).module == "classification"


def test_a_yaml_syntax_error_names_the_file_line_and_column(tmp_path):
    path = tmp_path / "classification.yaml"
    path.write_text("task: classification\nmodels:\n  vgg: [1, 2\n  other: 3\n")
    with pytest.raises(ConfigError, match="not valid YAML") as error:
        load_task_file("classification", path)
    message = str(error.value)
    assert message.startswith(f"{path}:4:")  # line 4 (1-based), where YAML notices the open list
    assert "Traceback" not in message


@pytest.mark.parametrize("text, found", [("", "an empty file"), ("# only a comment\n", "an empty file"),
                                         ("- a\n- b\n", "a list"), ("just words\n", "a str")])
def test_a_file_that_is_not_a_mapping_is_named(tmp_path, text, found):
    path = tmp_path / "classification.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="expected a mapping") as error:
        load_task_file("classification", path)
    assert str(path) in str(error.value) and found in str(error.value)


@pytest.mark.parametrize("overrides,message", [
    ({"lr_schedule": "step"}, "lr_schedule 'step' needs lr_step_epochs"),
    ({"epochs": 0, "pretrained": "none"}, "epochs 0 evaluates the pretrained model as it is, but pretrained is 'none'"),
    ({"accumulate_batches": 0}, "accumulate_batches: Input should be greater than or equal to 1"),
    ({"select_goal": "up"}, "select_goal: Input should be 'min' or 'max'"),
])
def test_engine_options_that_cannot_work_are_refused_naming_them(overrides, message):
    with pytest.raises(ConfigError, match=message):
        resolve("classification", "vgg16-finetune", "smoke", overrides=overrides)


def test_engine_options_resolve_into_the_engine():
    from zooflow.tasks import get_task
    from zooflow.training.engine import Options

    cfg = resolve("classification", "mobilenetv2-transfer", "smoke",
                  overrides={"lr_schedule": "poly", "accumulate_batches": 4, "epochs": 0})
    options = Options.from_config(cfg, get_task("classification"))
    assert (options.lr_schedule, options.accumulate_batches, options.epochs) == ("poly", 4, 0)
    assert options.mixed_precision and options.channels_last     # the classifier's convnets opt in
    gan = resolve("generation", "dcgan", "smoke")
    assert (gan.select_metric, gan.select_goal) == ("fid", "min")  # GANs keep their best validation FID
    assert not Options.from_config(gan, get_task("generation")).mixed_precision
