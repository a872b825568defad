"""Training: every model trained plainly (the config's, and the methods' starting points)."""


rule train:
    wildcard_constraints:
        model=name_pattern(PLAN.trained),
    conda:
        "../../envs/litesr.yaml"
    input:
        data=lambda w: set_dir(TRAIN_SET, w.scale),
    output:
        model=model_file("{model}", "{scale}"),
        log=train_log("{model}", "{scale}"),
    params:
        spec=lambda w: to_json(
            {
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
        ),
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
        "OMP_NUM_THREADS={threads} litesr --quiet --log-file {log:q} train --spec {params.spec:q}"
