"""Report: figures (registered with report()), the audit notebook, then reports/all.pdf."""

FIGURE_CATEGORY = "Figures"


rule figure_psnr_vs_cost:
    conda:
        "../../envs/litesr.yaml"
    input:
        summary="results/tables/psnr_ssim.tsv",
        cost="results/tables/cost.tsv",
    output:
        report(
            "results/figures/psnr_vs_cost.png",
            caption="../report/figure.rst",
            category=FIGURE_CATEGORY,
        ),
    params:
        caption=CAPTIONS["psnr_vs_cost"],
        inputs=lambda w, input: as_json({"summary": input.summary, "cost": input.cost}),
    log:
        "logs/figures/psnr_vs_cost.log",
    benchmark:
        "benchmarks/out/figures/psnr_vs_cost.tsv"
    shell:
        "litesr --quiet --log-file {log} figure psnr_vs_cost --inputs {params.inputs} --out {output}"


rule figure_training_curves:
    conda:
        "../../envs/litesr.yaml"
    input:
        train_logs(),
    output:
        report(
            "results/figures/training_curves.png",
            caption="../report/figure.rst",
            category=FIGURE_CATEGORY,
        ),
    params:
        caption=CAPTIONS["training_curves"],
        inputs=lambda w, input: as_json(
            {
                "logs": list(input),
                "labels": [f"{m} ×{s}" for m in MODELS for s in SCALES],
            }
        ),
    log:
        "logs/figures/training_curves.log",
    benchmark:
        "benchmarks/out/figures/training_curves.tsv"
    shell:
        "litesr --quiet --log-file {log} figure training_curves --inputs {params.inputs} --out {output}"


rule figure_crops:
    conda:
        "../../envs/litesr.yaml"
    input:
        models=lambda w: [model_file(m, w.scale) for m in MODELS],
        data=lambda w: set_dir(CROP["set"], w.scale),
    output:
        report(
            "results/figures/crops_x{scale}.png",
            caption="../report/figure.rst",
            category=FIGURE_CATEGORY,
        ),
    params:
        caption=CAPTIONS["crops"],
        inputs=lambda w, input: as_json(
            {
                "models": {"bicubic": "bicubic", **dict(zip(MODELS, input.models))},
                "data": input.data,
                "image": CROP["image"],
                "box": CROP["box"],
                "scale": int(w.scale),
            }
        ),
    log:
        "logs/figures/crops_x{scale}.log",
    benchmark:
        "benchmarks/out/figures/crops_x{scale}.tsv"
    shell:
        "litesr --quiet --log-file {log} figure crops --inputs {params.inputs} --out {output}"


rule scorecard:
    conda:
        "../../envs/litesr.yaml"
    input:
        summary="results/tables/psnr_ssim.tsv",
        cost="results/tables/cost.tsv",
    output:
        report(
            "results/tables/scorecard.tsv",
            caption="../report/scorecard.rst",
            category="Scorecard",
        ),
    params:
        spec=lambda w, input: as_json(
            {
                "claims": PLAN.claims,
                "summary": input.summary,
                "cost": input.cost,
                "config": config_label(),
            }
        ),
    log:
        "logs/scorecard.log",
    benchmark:
        "benchmarks/out/scorecard.tsv"
    shell:
        "litesr --quiet --log-file {log} scorecard --spec {params.spec} --out {output}"


rule audit:
    conda:
        "../../envs/litesr.yaml"
    input:
        notebook="notebooks/audit.ipynb",
        per_image=eval_tables,
        sr=lambda w: expand(
            "results/sr/{model}/x{scale}/{set}", model=evaluated(), scale=SCALES, set=TEST_SETS
        ),
        data=lambda w: [set_dir(s, scale) for scale in SCALES for s in TEST_SETS],
        summary="results/tables/psnr_ssim.tsv",
        cost="results/tables/cost.tsv",
        scorecard="results/tables/scorecard.tsv",
    output:
        "reports/audit.ipynb",
    params:
        per_image=lambda w, input: as_json(list(input.per_image)),
        claims=lambda w: as_json(PLAN.claims),
        # Functions, so that Snakemake does not take the braces for wildcards.
        sr_pattern=lambda w: "results/sr/{model}/x{scale}/{set}",
        hr_pattern=lambda w: os.path.join(set_dir("{set}", "{scale}"), "HR"),
        tmp="reports/.audit.tmp.ipynb",
    threads: 4
    log:
        "logs/audit.log",
    benchmark:
        "benchmarks/out/audit.tsv"
    shell:
        "papermill --log-output --kernel python3 {input.notebook} {params.tmp}"
        " -p per_image_json {params.per_image} -p summary_tsv {input.summary}"
        " -p sr_dir_pattern '{params.sr_pattern}' -p hr_dir_pattern '{params.hr_pattern}'"
        " -p cost_tsv {input.cost} -p scorecard_tsv {input.scorecard} -p claims_json {params.claims}"
        " -p workers {threads}"
        " 2> {log} && mv {params.tmp} {output}"


rule report:
    conda:
        "../../envs/litesr.yaml"
    input:
        summary="results/tables/psnr_ssim.tsv",
        cost="results/tables/cost.tsv",
        catalog="results/tables/models.tsv",
        scorecard="results/tables/scorecard.tsv",
        figures=lambda w: [png for _, png, _ in report_figures()],
        audit="reports/audit.ipynb",
    output:
        "reports/all.pdf",
    params:
        spec=lambda w, input: as_json(
            {
                "config": config,
                "summary": input.summary,
                "cost": input.cost,
                "catalog": input.catalog,
                "scorecard": input.scorecard,
                "figures": report_figures(),
                "tables": report_tables(),
            }
        ),
    log:
        "logs/report.log",
    benchmark:
        "benchmarks/out/report.tsv"
    shell:
        "litesr --quiet --log-file {log} report --spec {params.spec} --out {output}"
