"""Evaluation: PSNR/SSIM (Y, border = scale) of every model and bicubic on every test set.

Each evaluation also keeps the SR images it measured (results/sr/...), from which the audit
recomputes every per-image number. A job runs on its rule's threads, on the backend that
`litesr evaluate --backend auto` picks (litesr.evaluate.run, *Speed*), and its log has a line
per image with the time left."""


rule evaluate:
    conda:
        "../../envs/litesr.yaml"
    input:
        model=evaluated_model,
        data=lambda w: set_dir(w.set, w.scale),
    output:
        tsv=PATHS.evaluation("{model}", "{scale}", "{set}"),
        sr=directory(PATHS.sr("{model}", "{scale}", "{set}")),
    params:
        ref=lambda w: evaluated_model(w) or "bicubic",
        device=config.get("device", "cpu"),
    threads: 1
    resources:
        gpu=int(config.get("device", "cpu") == "cuda"),
    log:
        "logs/evaluate/{model}_x{scale}_{set}.log",
    benchmark:
        "benchmarks/out/evaluate/{model}_x{scale}_{set}.tsv"
    shell:
        "OMP_NUM_THREADS={threads} litesr --quiet --log-file {log:q} evaluate"
        " --model {params.ref:q} --name {wildcards.model:q} --set {wildcards.set:q}"
        " --data {input.data:q} --scale {wildcards.scale} --device {params.device:q}"
        " --out {output.tsv:q} --save-dir {output.sr:q}"


rule summarize:
    conda:
        "../../envs/litesr.yaml"
    input:
        eval_tables,
    output:
        SUMMARY,
    log:
        "logs/summarize.log",
    benchmark:
        "benchmarks/out/summarize.tsv"
    shell:
        "litesr --quiet --log-file {log:q} summarize --out {output:q} {input:q}"
