"""What a training or method job asks for: its processes, its GPUs and its spec.

A job whose recipes ask for `gpus: N` (the largest, for a method step with several), or
without any `resources.gpu: N`, trains on N processes and requests N GPUs (none on the CPU, at
least one on `cuda`); its spec then names the processes, and `litesr` starts itself under
torchrun (litesr.launch).
"""

from litesr.launch import asked_gpus, job_resources, trains


def launch(asked):
    """(processes, GPUs) of a training job whose recipes ask for ``asked`` GPUs."""
    return job_resources(asked, RES.get("gpu", 0), config.get("device", "cpu"))


def with_processes(spec, processes):
    """A job's spec, naming its processes when there are several."""
    return {**spec, "gpus": processes} if processes > 1 else spec


def train_launch(w):
    return launch(asked_gpus(recipe(w.model)))


def train_spec(w):
    """The JSON spec of one training job (``litesr train``)."""
    spec = {
        "arch": PLAN.trained[w.model].arch,
        "args": PLAN.trained[w.model].args,
        "recipe": recipe(w.model),
        "meta": PLAN.trained[w.model].meta,
        "data": set_dir(TRAIN_SET, w.scale),
        "scale": int(w.scale),
        "out": model_file(w.model, w.scale),
        "log": train_log(w.model, w.scale),
        "device": config.get("device", "cpu"),
    }
    return with_processes(spec, train_launch(w)[0])


def made_launch(w):
    return launch(asked_gpus(PLAN.made[w.model][1].params))


def made_request(w, key, default):
    """A made model's training request ``resources.<key>`` where its step trains, else the
    ``default`` of a job that only loads and rewrites weights."""
    return RES.get(key, default) if trains(PLAN.made[w.model][1].params) else default
