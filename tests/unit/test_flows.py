from flows.retrain import deployments
from zooflow.config import all_runs, load_task_file


def test_demo_covers_every_model_of_every_task():
    assert set(all_runs("demo")) == {("classification", "vgg16-transfer"), ("classification", "vgg16-finetune"),
                                     ("classification", "mobilenetv2-transfer"), ("sentiment", "transformer"),
                                     ("sentiment", "bert"), ("sentiment-ja", "transformer"),
                                     ("generation", "dcgan"), ("generation", "sagan"),
                                     ("anomaly", "anogan"), ("anomaly", "efficientgan"),
                                     ("detection", "ssd300"), ("detection", "ssdlite-mobilenetv2"),
                                     ("segmentation", "pspnet"), ("segmentation", "mobilenetv2-psp"),
                                     ("pose", "openpose"), ("pose", "mobilenet-openpose"),
                                     ("video", "eco-lite"), ("video", "eco-full")}
    assert ("sentiment-ja", "bert") not in all_runs("demo")  # smoke only offline, see its config


def test_retraining_deployments_follow_each_tasks_schedule():
    found = deployments("demo")
    assert len(found) == len(all_runs("demo"))
    for deployment in found:
        task = deployment.parameters["task"]
        assert deployment.name == f"{task}-{deployment.parameters['model']}-demo"
        assert deployment.schedules[0].schedule.cron == load_task_file(task).schedule.cron
        assert deployment.parameters["profile"] == "demo"
