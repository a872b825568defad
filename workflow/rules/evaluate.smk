"""Evaluation: PSNR/SSIM (Y, border = scale) of every model and bicubic on every test set."""


rule evaluate:
    conda:
        "../../envs/litesr.yaml"
    input:
        model=evaluated_model,
        data=lambda w: set_dir(w.set, w.scale),
    output:
        "results/eval/{model}/x{scale}/{set}.tsv",
    params:
        ref=lambda w, input: input.model or "bicubic",
        device=config.get("device", "cpu"),
    threads: 1
    log:
        "logs/evaluate/{model}_x{scale}_{set}.log",
    benchmark:
        "benchmarks/out/evaluate/{model}_x{scale}_{set}.tsv"
    shell:
        "OMP_NUM_THREADS={threads} litesr --quiet evaluate --model {params.ref} --name {wildcards.model}"
        " --set {wildcards.set} --data {input.data} --scale {wildcards.scale}"
        " --device {params.device} --out {output} 2> {log}"


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
        "litesr --quiet summarize --out {output} {input} 2> {log}"
