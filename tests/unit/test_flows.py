from flows.retrain import deployments
from zooflow.config import all_runs, load_task_file


def test_demo_covers_every_model_of_every_task():
    assert set(all_runs("demo")) == {("classification", "vgg16-transfer"), ("classification", "vgg16-finetune"),
                                     ("classification", "mobilenetv2-transfer")}


def test_retraining_deployments_follow_each_tasks_schedule():
    found = deployments("demo")
    assert sorted(d.name for d in found) == ["classification-mobilenetv2-transfer-demo",
                                             "classification-vgg16-finetune-demo",
                                             "classification-vgg16-transfer-demo"]
    cron = load_task_file("classification").schedule.cron
    for deployment in found:
        assert deployment.schedules[0].schedule.cron == cron
        assert deployment.parameters["profile"] == "demo"
