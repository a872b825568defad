"""Data: download (when the source is `download`), then modcrop + MATLAB bicubic per set and scale."""


rule download:
    output:
        directory(f"{DOWNLOAD_ROOT}/{{dataset}}"),
    log:
        "logs/download/{dataset}.log",
    benchmark:
        "benchmarks/out/download/{dataset}.tsv"
    resources:
        downloads=1,
    shell:
        "{CLI} download --dataset {wildcards.dataset} --root {DOWNLOAD_ROOT} 2> {log}"


def download_input(wildcards):
    """The downloaded dataset a set reads from, when the source is `download`."""
    if DATA["source"] != "download":
        return []
    return f"{DOWNLOAD_ROOT}/{SETS[wildcards.set]}"


rule prepare:
    input:
        download_input,
    output:
        directory("results/data/{set}/x{scale}"),
    params:
        where=lambda w: as_json(SETS[w.set]),
        source=DATA["source"],
    log:
        "logs/prepare/{set}_x{scale}.log",
    benchmark:
        "benchmarks/out/prepare/{set}_x{scale}.tsv"
    shell:
        "{CLI} prepare --source {params.source} --where {params.where} --scale {wildcards.scale}"
        " --download-root {DOWNLOAD_ROOT} --out {output} 2> {log}"
