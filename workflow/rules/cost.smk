"""Cost: parameters, MACs, CPU/GPU latency and peak memory of every model, in one table;
and the catalog: each model's method, variant and size, read from its own metadata.

It claims `cost.reserve_cores` cores (default 8; Snakemake caps it at --cores) so that on a
workstation nothing runs beside the latency measurement, which itself uses `cost.threads`.
"""


rule cost:
    conda:
        "../../envs/litesr.yaml"
    input:
        all_model_files,
    output:
        COST,
    params:
        threads=config.get("cost", {}).get("threads", 1),
        device=config.get("cost", {}).get("device", "auto"),
        names=lambda w: model_names(),
    threads: config.get("cost", {}).get("reserve_cores", 8)
    resources:
        gpu=int(config.get("cost", {}).get("device", "auto") == "cuda"),
    log:
        "logs/cost.log",
    benchmark:
        "benchmarks/out/cost.tsv"
    shell:
        "litesr --quiet --log-file {log:q} cost --threads {params.threads:q}"
        " --device {params.device:q} --out {output:q} --names {params.names:q} -- {input:q}"


rule catalog:
    conda:
        "../../envs/litesr.yaml"
    input:
        all_model_files,
    output:
        CATALOG,
    params:
        names=lambda w: model_names(),
    log:
        "logs/catalog.log",
    benchmark:
        "benchmarks/out/catalog.tsv"
    shell:
        "litesr --quiet --log-file {log:q} catalog --out {output:q} --names {params.names:q}"
        " -- {input:q}"
