"""Training: every model of the config (teacher, baseline student...) at every scale."""


rule train:
    wildcard_constraints:
        model="|".join(MODEL_SPECS),
    conda:
        "../../envs/litesr.yaml"
    input:
        data=lambda w: set_dir(TRAIN_SET, w.scale),
    output:
        model="results/models/{model}/x{scale}/model.safetensors",
        log="results/models/{model}/x{scale}/train_log.tsv",
    params:
        arch=lambda w: MODEL_SPECS[w.model]["arch"],
        args=lambda w: as_json(MODEL_SPECS[w.model].get("args", {})),
        recipe=lambda w: as_json(recipe(w.model)),
        device=config.get("device", "cpu"),
    threads: RES.get("train_threads", 2)
    resources:
        mem_mb=RES.get("train_mem_mb", 4000),
        runtime=RES.get("train_runtime", 60),
        gpu=RES.get("gpu", 0),
    log:
        "logs/train/{model}_x{scale}.log",
    benchmark:
        "benchmarks/out/train/{model}_x{scale}.tsv"
    shell:
        "OMP_NUM_THREADS={threads} litesr --quiet train --arch {params.arch} --args {params.args}"
        " --recipe {params.recipe} --data {input.data} --scale {wildcards.scale}"
        " --device {params.device} --out {output.model} --log {output.log} 2> {log}"
