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
        root=lambda w, output: os.path.dirname(output[0]),
    resources:
        downloads=1,
    shell:
        "litesr --quiet --log-file {log} download --dataset {wildcards.dataset} --root {params.root}"


rule prepare:
    conda:
        "../../envs/litesr.yaml"
    input:
        prepare_input,
    output:
        directory("results/data/{set}/x{scale}"),
    params:
        where=lambda w: as_json(SETS[w.set]),
        source=DATA["source"],
        root=DOWNLOAD_ROOT,
    log:
        "logs/prepare/{set}_x{scale}.log",
    benchmark:
        "benchmarks/out/prepare/{set}_x{scale}.tsv"
    shell:
        "litesr --quiet --log-file {log} prepare --source {params.source} --where {params.where}"
        " --scale {wildcards.scale} --download-root {params.root} --out {output}"
