"""Data: download (when the source is `download`), then modcrop + MATLAB bicubic per set and scale."""

include: "data_inputs.smk"


rule download:
    conda:
        "../../envs/litesr.yaml"
    output:
        directory(f"{DOWNLOAD_ROOT}/{{dataset}}"),
    log:
        "logs/download/{dataset}.log",
    benchmark:
        "benchmarks/out/download/{dataset}.tsv"
    params:
        # The output's parent: a path, which the output itself already tracks.
        root=lambda w, output: os.path.dirname(output[0]),
    resources:
        downloads=1,
        # DIV2K's training archive is 3.5 GB: at 5 MB/s about 12 min, plus its extraction;
        # 4 hours leaves room for a slow link (a cluster's default is often 30 min).
        runtime=240,
        mem_mb=2000,
    shell:
        "litesr --quiet --log-file {log:q} download --dataset {wildcards.dataset:q}"
        " --root {params.root:q}"


rule prepare:
    conda:
        "../../envs/litesr.yaml"
    input:
        prepare_input,
    output:
        directory(set_dir("{set}", "{scale}")),
    params:
        where=lambda w: to_json(SETS[w.set]),
        source=DATA["source"],
        root=DOWNLOAD_ROOT,
    log:
        "logs/prepare/{set}_x{scale}.log",
    benchmark:
        "benchmarks/out/prepare/{set}_x{scale}.tsv"
    shell:
        "litesr --quiet --log-file {log:q} prepare --source {params.source:q}"
        " --where {params.where:q} --scale {wildcards.scale} --download-root {params.root:q}"
        " --out {output:q}"
