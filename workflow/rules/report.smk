"""Report: figures (registered with report()), the audit notebook, then reports/all.pdf."""

FIGURE_CATEGORY = "Figures"


rule figure_psnr_vs_cost:
    conda:
        "../../envs/litesr.yaml"
    input:
        summary=SUMMARY,
        cost=COST,
    output:
        report(
            PATHS.figure("psnr_vs_cost"),
            caption="../report/figure.rst",
            category=FIGURE_CATEGORY,
        ),
    params:
        caption=CAPTIONS["psnr_vs_cost"],
        inputs=lambda w: to_json({"summary": SUMMARY, "cost": COST}),
    log:
        "logs/figures/psnr_vs_cost.log",
    benchmark:
        "benchmarks/out/figures/psnr_vs_cost.tsv"
    shell:
        "litesr --quiet --log-file {log:q} figure psnr_vs_cost --inputs {params.inputs:q}"
        " --out {output:q}"


rule figure_training_curves:
    conda:
        "../../envs/litesr.yaml"
    input:
        train_logs,
    output:
        report(
            PATHS.figure("training_curves"),
            caption="../report/figure.rst",
            category=FIGURE_CATEGORY,
        ),
    params:
        caption=CAPTIONS["training_curves"],
        inputs=lambda w: to_json(
            {
                "logs": train_logs(),
                "labels": [f"{m} ×{s}" for m in MODELS for s in SCALES],
            }
        ),
    log:
        "logs/figures/training_curves.log",
    benchmark:
        "benchmarks/out/figures/training_curves.tsv"
    shell:
        "litesr --quiet --log-file {log:q} figure training_curves --inputs {params.inputs:q}"
        " --out {output:q}"


rule figure_crops:
    conda:
        "../../envs/litesr.yaml"
    input:
        models=lambda w: [model_file(m, w.scale) for m in crop_models(w.scale)],
        data=lambda w: set_dir(CROP["set"], w.scale),
    output:
        report(
            PATHS.figure("crops_x{scale}"),
            caption="../report/figure.rst",
            category=FIGURE_CATEGORY,
        ),
    params:
        caption=CAPTIONS["crops"],
        inputs=lambda w: to_json(
            {
                "models": {
                    "bicubic": "bicubic",
                    **{m: model_file(m, w.scale) for m in crop_models(w.scale)},
                },
                "data": set_dir(CROP["set"], w.scale),
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
        "litesr --quiet --log-file {log:q} figure crops --inputs {params.inputs:q} --out {output:q}"


rule scorecard:
    conda:
        "../../envs/litesr.yaml"
    input:
        summary=SUMMARY,
        cost=COST,
    output:
        report(
            SCORECARD,
            caption="../report/scorecard.rst",
            category="Scorecard",
        ),
    params:
        spec=lambda w: to_json(
            {
                "claims": PLAN.claims,
                "summary": SUMMARY,
                "cost": COST,
                "config": config_label(),
            }
        ),
    log:
        "logs/scorecard.log",
    benchmark:
        "benchmarks/out/scorecard.tsv"
    shell:
        "litesr --quiet --log-file {log:q} scorecard --spec {params.spec:q} --out {output:q}"


rule audit:
    conda:
        "../../envs/litesr.yaml"
    input:
        notebook="notebooks/audit.ipynb",
        per_image=eval_tables,
        sr=sr_dirs,
        data=lambda w: [set_dir(s, scale) for scale in SCALES for s in TEST_SETS],
        models=all_model_files,
        summary=SUMMARY,
        cost=COST,
        scorecard=SCORECARD,
    output:
        AUDIT,
    params:
        # A function, so that Snakemake does not take the braces of the patterns for
        # wildcards; the notebook's parameters, as papermill injects them.
        notebook=lambda w: to_json(
            {
                "per_image_json": json.dumps(eval_tables()),
                "model_files_json": json.dumps(all_model_files()),
                "claims_json": json.dumps(PLAN.claims),
                "summary_tsv": SUMMARY,
                "cost_tsv": COST,
                "scorecard_tsv": SCORECARD,
                "sr_dir_pattern": PATHS.sr("{model}", "{scale}", "{set}"),
                "hr_dir_pattern": os.path.join(set_dir("{set}", "{scale}"), "HR"),
            }
        ),
        stale=REPORT,
    threads: 4
    log:
        "logs/audit.log",
    benchmark:
        "benchmarks/out/audit.tsv"
    shell:
        "litesr --log-file {log:q} audit --notebook {input.notebook:q} --out {output:q}"
        " --parameters {params.notebook:q} --workers {threads} --stale {params.stale:q}"


rule report:
    conda:
        "../../envs/litesr.yaml"
    input:
        summary=SUMMARY,
        cost=COST,
        catalog=CATALOG,
        scorecard=SCORECARD,
        figures=lambda w: [png for _, png, _ in report_figures()],
        audit=AUDIT,
        deviations=lambda w: deviation_files(),
    output:
        REPORT,
    params:
        spec=lambda w: to_json(
            {
                "config": config,
                "summary": SUMMARY,
                "cost": COST,
                "catalog": CATALOG,
                "scorecard": SCORECARD,
                "figures": report_figures(),
                "tables": report_tables(),
                "absent": absent_cells(),
            }
        ),
    log:
        "logs/report.log",
    benchmark:
        "benchmarks/out/report.tsv"
    shell:
        "litesr --quiet --log-file {log:q} report --spec {params.spec:q} --out {output:q}"
