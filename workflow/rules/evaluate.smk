"""Evaluation: PSNR/SSIM (Y, border = scale) of every model and bicubic on every test set.

Each evaluation also keeps the SR images it measured (results/sr/...), from which the audit
recomputes every per-image number."""


rule evaluate:
    conda:
        "../../envs/litesr.yaml"
    input:
        model=evaluated_model,
        data=lambda w: set_dir(w.set, w.scale),
    output:
        tsv="results/eval/{model}/x{scale}/{set}.tsv",
        sr=directory("results/sr/{model}/x{scale}/{set}"),
    params:
        ref=lambda w, input: input.model or "bicubic",
        device=config.get("device", "cpu"),
    threads: 1
    log:
        "logs/evaluate/{model}_x{scale}_{set}.log",
    benchmark:
        "benchmarks/out/evaluate/{model}_x{scale}_{set}.tsv"
    shell:
        "OMP_NUM_THREADS={threads} litesr --quiet --log-file {log} evaluate --model {params.ref}"
        " --name {wildcards.model} --set {wildcards.set} --data {input.data}"
        " --scale {wildcards.scale} --device {params.device} --out {output.tsv}"
        " --save-dir {output.sr}"


rule summarize:
    conda:
        "../../envs/litesr.yaml"
    input:
        eval_tables,
    output:
        "results/tables/psnr_ssim.tsv",
    log:
        "logs/summarize.log",
    benchmark:
        "benchmarks/out/summarize.tsv"
    shell:
        "litesr --quiet --log-file {log} summarize --out {output} {input}"
