"""Cost: parameters, MACs, CPU/GPU latency and peak memory of every model, in one table.

It runs alone on the machine (all cores claimed) so that latency is not disturbed.
"""


rule cost:
    conda:
        "../../envs/litesr.yaml"
    input:
        all_model_files,
    output:
        "results/tables/cost.tsv",
    params:
        threads=config.get("cost", {}).get("threads", 1),
        device=config.get("cost", {}).get("device", "auto"),
        names=lambda w: model_names(),
    threads: workflow.cores
    log:
        "logs/cost.log",
    benchmark:
        "benchmarks/out/cost.tsv"
    shell:
        "litesr --quiet cost --threads {params.threads} --device {params.device} --out {output}"
        " --names {params.names} -- {input} 2> {log}"
