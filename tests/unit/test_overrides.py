"""``--set`` overrides: parsed and checked like a task file, resolved once per run."""

import pytest
import yaml

from tests.cli import assert_one_clear_message, run_cli
from zooflow import config, steps
from zooflow.registry import tracking


def test_values_are_read_as_yaml_typed_by_the_config_and_dotted_keys_change_one_entry():
    overrides = config.parse_overrides(["epochs=3", "lr.head=1e-3", "betas=[0.5, 0.9]", "seed=7"])
    assert overrides == {"epochs": 3, "lr": {"head": 0.001}, "betas": [0.5, 0.9], "seed": 7}
    cfg = config.resolve("classification", "vgg16-finetune", "smoke", overrides=overrides)
    file_lr = config.resolve("classification", "vgg16-finetune", "smoke").lr
    assert cfg.epochs == 3 and cfg.seed == 7 and cfg.lr == {**file_lr, "head": 0.001}  # the other groups stay


@pytest.mark.parametrize("pairs, message", [
    (["foo=1"], "--set: unknown key 'foo'"),
    (["policy=1"], "--set: unknown key 'policy'"),  # what the task file decides is not a run's to change
    (["epochs=many"], "--set: epochs: Input should be a valid integer"),
    (["lr.head=fast"], "--set: lr.head: Input should be a valid number"),
    (["epochs"], "--set 'epochs': expected key=value"),
    (["betas=[0.5"], "--set 'betas=[0.5': the value is not valid YAML"),
])
def test_a_bad_override_is_one_message_naming_it(pairs, message):
    with pytest.raises(config.ConfigError, match=message.replace("[", r"\[")):
        config.parse_overrides(pairs)


def test_the_cli_refuses_a_bad_override_before_anything_starts():
    code, output = run_cli("run", "classification", "-m", "vgg16-transfer", "-p", "smoke", "--set", "epochz=2")
    assert code == 1
    assert_one_clear_message(output, "--set", "epochz")


def test_a_run_keeps_the_config_it_started_with_and_tags_its_overrides(project):
    run = steps.start_run("classification", "vgg16-transfer", "smoke", seed=5, overrides={"epochs": 2})
    tags = tracking.connect().get_run(run.run_id).data.tags
    assert tags["override.epochs"] == "2" and tags["override.seed"] == "5"
    # The task file changes while the run trains: the run's later steps still see what it started with.
    path = project / "configs" / "classification.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["models"]["vgg16-transfer"]["profiles"]["smoke"]["batch_size"] = 3
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert config.resolve("classification", "vgg16-transfer", "smoke").batch_size == 3
    cfg = steps.run_config(run)
    assert (cfg.epochs, cfg.seed) == (2, 5) and cfg.batch_size != 3


def test_a_params_override_changes_one_task_parameter_and_keeps_the_others():
    overrides = config.parse_overrides(["params.tokenizer=sudachi", "params.max_length=40"])
    assert overrides == {"params": {"tokenizer": "sudachi", "max_length": 40}}
    cfg = config.resolve("sentiment-ja", "transformer", "smoke", overrides=overrides)
    file_params = config.resolve("sentiment-ja", "transformer", "smoke").params
    assert cfg.params == file_params.model_copy(update={"tokenizer": "sudachi", "max_length": 40})


@pytest.mark.parametrize("pairs, message", [
    (["params.tokenizer=janome"], r"--set: unknown key 'tokenizer' at params\.tokenizer \(generation params: "),
    (["params.input_size=big"], r"--set: params\.input_size: Input should be a valid integer"),
])
def test_a_params_override_is_checked_against_the_tasks_own_keys(pairs, message):
    overrides = config.parse_overrides(pairs)  # --set alone cannot know the task's keys
    with pytest.raises(config.ConfigError, match=message):
        config.resolve("generation", "dcgan", "smoke", overrides=overrides)


def test_the_cli_refuses_another_tasks_param_before_anything_starts():
    code, output = run_cli("run", "generation", "-m", "dcgan", "-p", "smoke", "--set", "params.tokenizer=janome")
    assert code == 1
    assert_one_clear_message(output, "--set", "tokenizer")
