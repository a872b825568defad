"""Data: download (when the source is `download`), then modcrop + MATLAB bicubic per set and scale."""


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
        "litesr --quiet download --dataset {wildcards.dataset} --root {params.root} 2> {log}"


rule prepare:
    conda:
        "../../envs/litesr.yaml"
    input:
        download_input,
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
        "litesr --quiet prepare --source {params.source} --where {params.where} --scale {wildcards.scale}"
        " --download-root {params.root} --out {output} 2> {log}"
