import pytest
import yaml

from zooflow.config import ConfigError, config_path, load_task_file, resolve


def test_resolve_merges_defaults_and_profile():
    cfg = resolve("classification", "vgg16-finetune", "book")
    assert (cfg.params.input_size, cfg.params.width, cfg.params.hidden) == (224, 1.0, 4096)
    assert (cfg.batch_size, cfg.epochs) == (32, 2)
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


@pytest.mark.parametrize("task, model", [("classification", "vgg16-transfer"), ("sentiment-ja", "transformer"),
                                         ("generation", "dcgan"), ("anomaly", "anogan")])
def test_configs_stored_by_older_versions_still_load(task, model):
    from zooflow.config import RunConfig
    from zooflow.tasks.params import FLAT_KEYS_BEFORE_PARAMS

    cfg = resolve(task, model, "smoke")
    # What versions registered before `params` stored: every task key flat at the top, the other
    # tasks' ones at their old defaults (tests/unit/test_stored_versions.py loads real ones).
    # Parameters added since (e.g. the Transformer's dropout) were not stored: they take their defaults.
    stored = {**cfg.model_dump(mode="json", exclude={"params"}), **OLD_FLAT_DEFAULTS,
              **{key: value for key, value in cfg.params.model_dump(mode="json").items()
                 if key in FLAT_KEYS_BEFORE_PARAMS}}
    assert set(OLD_FLAT_DEFAULTS) == set(FLAT_KEYS_BEFORE_PARAMS)
    assert RunConfig.model_validate(stored) == cfg
    if cfg.module == cfg.task:  # and before task modules could be shared (sentiment-ja came with them)
        stored.pop("module")
        assert RunConfig.model_validate(stored) == cfg


# The flat RunConfig's defaults of the keys that moved into params.
OLD_FLAT_DEFAULTS = {"input_size": 0, "resize": 0, "width": 1.0, "hidden": 0, "tokenizer": "book", "max_length": 256,
                     "min_freq": 10, "embedding_dim": 0, "latent_dim": 20, "normal_labels": [],
                     "discriminator_batchnorm": False, "max_select_samples": None, "search_steps": 0, "search_lr": 0.0,
                     "feature_weight": 0.1, "select_anomalies_per_class": 20, "reconstruction_weight": 0.0}


def test_each_task_has_its_own_typed_params():
    from zooflow.tasks.params import AnomalyParams, ClassificationParams, GenerationParams, SentimentParams

    kinds = {("classification", "vgg16-transfer"): ClassificationParams, ("sentiment", "bert"): SentimentParams,
             ("sentiment-ja", "transformer"): SentimentParams, ("generation", "sagan"): GenerationParams,
             ("anomaly", "efficientgan"): AnomalyParams}
    for (task, model), kind in kinds.items():
        assert type(resolve(task, model, "smoke").params) is kind
    cfg = resolve("sentiment-ja", "transformer", "demo")
    assert (cfg.params.tokenizer, cfg.params.max_length) == ("janome", 48)  # defaults' key, then the profile's
    with pytest.raises(ValueError):
        cfg.params.max_length = 3  # frozen, like the rest of the config


def test_params_merge_key_by_key_and_resize_follows_input_size():
    cfg = resolve("classification", "mobilenetv2-transfer", "demo")
    assert (cfg.params.hidden, cfg.params.input_size, cfg.params.resize) == (1280, 128, 128)
    anogan = resolve("anomaly", "anogan", "demo").params
    assert (anogan.normal_labels, anogan.search_steps, anogan.search_lr) == (("7", "8"), 100, 0.05)
    assert resolve("anomaly", "anogan", "book").params.search_lr == 0.001  # the defaults' value stays


def test_another_tasks_param_is_an_error_naming_the_key_and_the_file(tmp_path):
    raw = yaml.safe_load(config_path("generation").read_text())
    raw["models"]["dcgan"]["profiles"]["demo"]["params"]["tokenizer"] = "janome"
    path = tmp_path / "generation.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"unknown key 'tokenizer' at models\.dcgan\.profiles\.demo\.params") as error:
        load_task_file("generation", path)
    message = str(error.value)
    assert message.startswith(str(path)) and "(generation params: input_size, width, latent_dim" in message


def test_a_task_key_outside_params_says_where_it_belongs(tmp_path):
    path = _write(tmp_path, lambda raw: raw["models"]["vgg16-transfer"]["defaults"].update(input_size=64))
    with pytest.raises(ConfigError, match=r"unknown key 'input_size' at models\.vgg16-transfer\.defaults\.input_size "
                                          r"\(a classification parameter: set it under params:\)"):
        load_task_file("classification", path)


def test_a_param_of_the_wrong_type_or_range_is_named(tmp_path):
    def hidden_in_words(raw):
        raw["models"]["vgg16-transfer"]["profiles"]["demo"]["params"]["hidden"] = "big"

    path = _write(tmp_path, hidden_in_words)
    with pytest.raises(ConfigError, match=r"profiles\.demo\.params\.hidden: Input should be a valid integer"):
        load_task_file("classification", path)
    # A range is checked once the blocks are merged, naming the model and profile.
    with pytest.raises(ConfigError, match=r"\[anogan/smoke\]: params\.select_anomalies_per_class: Input should be "
                                          r"greater than or equal to 0"):
        resolve("anomaly", "anogan", "smoke", overrides={"params": {"select_anomalies_per_class": -1}})


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


def test_every_task_module_declares_its_params_and_resolving_imports_no_task_module():
    import subprocess
    import sys

    from zooflow.tasks import TASKS
    from zooflow.tasks.params import PARAMS

    assert set(TASKS) == set(PARAMS)
    # A fresh interpreter: resolving every shipped config loads pydantic, not torch or a task module.
    code = ("import sys; from zooflow import config\n"
            "for task, model in config.all_runs('smoke'): config.resolve(task, model, 'smoke')\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('zooflow.tasks.')))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert found.strip() == "['zooflow.tasks.params']"


def test_devices_default_to_one_and_must_split_the_batch_evenly():
    cfg = resolve("classification", "vgg16-transfer", "smoke")
    assert (cfg.devices, cfg.concurrency_limit) == (1, None)
    assert resolve("classification", "vgg16-transfer", "smoke", overrides={"devices": 2}).devices == 2
    with pytest.raises(ConfigError, match="batch_size 8 does not split evenly over devices 3"):
        resolve("classification", "vgg16-transfer", "smoke", overrides={"devices": 3})
    with pytest.raises(ConfigError, match="devices"):
        resolve("classification", "vgg16-transfer", "smoke", overrides={"devices": 0})
