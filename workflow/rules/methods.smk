"""The methods' models and figures, from the plans in PLAN: one generic rule each.

A model a method makes runs that method's step (``litesr run METHOD STEP --spec JSON``)
with the files its plan names. Stage files (``stages/``) are not declared outputs, so that
Snakemake keeps them when a killed job is re-run and the step resumes where it stopped.
"""


def made_inputs(w):
    """The files a method step reads: model weights at the same scale, or the training set."""
    _, model = PLAN.made[w.model]
    return {
        role: set_dir(TRAIN_SET, w.scale) if ref == "@train" else model_file(ref, w.scale)
        for role, ref in model.inputs.items()
    }


def made_spec(w, input, output):
    method, model = PLAN.made[w.model]
    return {
        **model.params,
        **{role: input[role] for role in model.inputs},
        "scale": int(w.scale),
        "out": output.model,
        "log": output.log,
        "stages": PATHS.stages(w.model, w.scale),
        "device": config.get("device", "cpu"),
    }


rule method_model:
    wildcard_constraints:
        model=name_pattern(PLAN.made),
    conda:
        "../../envs/litesr.yaml"
    input:
        unpack(made_inputs),
    output:
        model="results/models/{model}/x{scale}/model.safetensors",
        log="results/models/{model}/x{scale}/train_log.tsv",
    params:
        method=lambda w: PLAN.made[w.model][0],
        step=lambda w: PLAN.made[w.model][1].step,
        spec=lambda w, input, output: as_json(made_spec(w, input, output)),
    threads: RES.get("train_threads", 2)
    resources:
        mem_mb=RES.get("train_mem_mb", 4000),
        runtime=RES.get("train_runtime", 60),
        gpu=RES.get("gpu", 0),
    log:
        "logs/methods/{model}_x{scale}.log",
    benchmark:
        "benchmarks/out/methods/{model}_x{scale}.tsv"
    shell:
        "OMP_NUM_THREADS={threads} litesr --quiet run {params.method} {params.step}"
        " --spec {params.spec}" + LOG_ERRORS


METHOD_FIGURES = {figure.name: (method, figure) for method, figure in PLAN.figures}


def figure_of(w):
    return METHOD_FIGURES[w.figure][1]


rule method_figure:
    wildcard_constraints:
        figure=name_pattern(METHOD_FIGURES),
    conda:
        "../../envs/litesr.yaml"
    input:
        unpack(lambda w: figure_of(w).files),
    output:
        report(
            "results/figures/{figure}.png",
            caption="../report/figure.rst",
            category="Methods",
            subcategory="{figure}",
        ),
    params:
        kind=lambda w: "{}.{}".format(METHOD_FIGURES[w.figure][0], figure_of(w).kind),
        caption=lambda w: figure_of(w).caption,
        inputs=lambda w: as_json({**figure_of(w).files, **figure_of(w).params}),
    log:
        "logs/figures/{figure}.log",
    benchmark:
        "benchmarks/out/figures/{figure}.tsv"
    shell:
        "litesr --quiet figure {params.kind} --inputs {params.inputs} --out {output}" + LOG_ERRORS
