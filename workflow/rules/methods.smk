"""The methods' models and figures, from the plans in PLAN: one generic rule each.

A model a method makes runs that method's step (``litesr run METHOD STEP --spec JSON``)
with the files its plan names. Stage files (``stages/``) are not declared outputs, so that
Snakemake keeps them when a killed job is re-run and the step resumes where it stopped.
A step asks for as many GPUs (and processes) as the largest `gpus` of its recipes; only a step
with a recipe asks for the training memory and time (`resources.train_mem_mb`,
`train_runtime`), the others for 4 GB and an hour.
"""


rule method_model:
    wildcard_constraints:
        model=name_pattern(PLAN.made),
    conda:
        "../../envs/litesr.yaml"
    input:
        unpack(made_inputs),
    output:
        model=model_file("{model}", "{scale}"),
        log=train_log("{model}", "{scale}"),
    params:
        method=lambda w: PLAN.made[w.model][0],
        step=lambda w: PLAN.made[w.model][1].step,
        spec=lambda w: to_json(with_processes(made_spec(w), made_launch(w)[0])),
    threads: RES.get("train_threads", 2)
    resources:
        mem_mb=lambda w: made_request(w, "train_mem_mb", 4000),
        runtime=lambda w: made_request(w, "train_runtime", 60),
        gpu=lambda w: made_launch(w)[1],
    log:
        "logs/methods/{model}_x{scale}.log",
    benchmark:
        "benchmarks/out/methods/{model}_x{scale}.tsv"
    shell:
        "OMP_NUM_THREADS={threads} litesr --quiet --log-file {log:q} run {params.method:q}"
        " {params.step:q} --spec {params.spec:q}"


rule method_figure:
    wildcard_constraints:
        figure=name_pattern(METHOD_FIGURES),
    conda:
        "../../envs/litesr.yaml"
    input:
        unpack(lambda w: figure_of(w).files),
    output:
        report(
            PATHS.figure("{figure}"),
            caption="../report/figure.rst",
            category="Methods",
            subcategory="{figure}",
        ),
    params:
        kind=lambda w: "{}.{}".format(METHOD_FIGURES[w.figure][0], figure_of(w).kind),
        caption=lambda w: figure_of(w).caption,
        inputs=lambda w: to_json({**figure_of(w).files, **figure_of(w).params}),
    log:
        "logs/figures/{figure}.log",
    benchmark:
        "benchmarks/out/figures/{figure}.tsv"
    shell:
        "litesr --quiet --log-file {log:q} figure {params.kind:q} --inputs {params.inputs:q}"
        " --out {output:q}"
