"""Training: every model trained plainly (the config's, and the methods' starting points).

A job whose recipe asks for `gpus: N` (or, without one, `resources.gpu: N`) asks for N GPUs
and trains on N processes (see workflow/rules/launch.smk).
"""


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
        spec=lambda w: to_json(train_spec(w)),
    threads: RES.get("train_threads", 2)
    resources:
        mem_mb=RES.get("train_mem_mb", 4000),
        runtime=RES.get("train_runtime", 60),
        gpu=lambda w: train_launch(w)[1],
    log:
        "logs/train/{model}_x{scale}.log",
    benchmark:
        "benchmarks/out/train/{model}_x{scale}.tsv"
    shell:
        "OMP_NUM_THREADS={threads} litesr --quiet --log-file {log:q} train --spec {params.spec:q}"
