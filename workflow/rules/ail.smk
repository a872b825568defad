"""AIL (adaptive importance learning): VDSR students of several widths, each trained at equal
budget as `plain`, `ail` (teacher-initialised importance) and `noteacher` (ablation), from
one plainly pre-trained checkpoint per width and scale."""

AIL = config.get("ail")
AIL_VARIANTS = ("plain", "ail", "noteacher")

if AIL:
    AIL_TEACHER = AIL["teacher"]
    AIL_DEPTH = MODEL_SPECS[AIL_TEACHER].get("args", {}).get("depth", 20)
    AIL_ROUNDS = AIL["rounds"]
    AIL_W0, AIL_S0 = AIL["maps"].get("width", AIL["widths"][0]), SCALES[0]
    if AIL_W0 not in AIL["widths"]:
        raise ValueError(f"config ail.maps.width {AIL_W0} is not one of ail.widths {AIL['widths']}")
    for _w in AIL["widths"]:
        MODEL_SPECS[f"ail-w{_w}-pretrain"] = {
            "arch": "vdsr",
            "args": {"width": _w, "depth": AIL_DEPTH},
            "train": AIL["pretrain"],
        }
        METHOD_MODELS.extend(f"ail-w{_w}-{v}" for v in ("pretrain", *AIL["variants"]))
    METHOD_FIGURES.extend(
        [
            ("AIL: importance maps over rounds", f"results/figures/ail_importance.png"),
            ("AIL: training per round", f"results/figures/ail_rounds.png"),
            ("AIL: PSNR against student size", f"results/figures/ail_width.png"),
        ]
    )
    METHOD_TABLES.append(["AIL: teacher, plain and AIL students", "ail", AIL_TEACHER])

    rule ail:
        wildcard_constraints:
            variant="|".join(AIL_VARIANTS),
            width=r"\d+",
        input:
            init="results/models/ail-w{width}-pretrain/x{scale}/model.safetensors",
            teacher=lambda w: model_file(AIL_TEACHER, w.scale),
            data=lambda w: set_dir(TRAIN_SET, w.scale),
        output:
            model="results/models/ail-w{width}-{variant}/x{scale}/model.safetensors",
            log="results/models/ail-w{width}-{variant}/x{scale}/train_log.tsv",
            rounds=expand(
                "results/models/ail-w{{width}}-{{variant}}/x{{scale}}/rounds/round{r}.safetensors",
                r=range(AIL_ROUNDS),
            ),
        params:
            recipe=as_json(with_seed(AIL["round"])),
            importance=as_json(AIL.get("importance", {})),
            rounds=AIL_ROUNDS,
            device=config.get("device", "cpu"),
        threads: RES.get("train_threads", 2)
        resources:
            mem_mb=RES.get("train_mem_mb", 4000),
            runtime=RES.get("train_runtime", 60),
            gpu=RES.get("gpu", 0),
        conda:
            "../../envs/litesr.yaml"
        log:
            "logs/ail/w{width}-{variant}_x{scale}.log",
        benchmark:
            "benchmarks/out/ail/w{width}-{variant}_x{scale}.tsv"
        shell:
            "OMP_NUM_THREADS={threads} litesr --quiet ail --variant {wildcards.variant}"
            " --init {input.init} --teacher {input.teacher} --data {input.data}"
            " --scale {wildcards.scale} --rounds {params.rounds} --recipe {params.recipe}"
            " --importance {params.importance} --device {params.device}"
            " --out {output.model} --log {output.log} 2> {log}"

    rule figure_ail_importance:
        input:
            teacher=model_file(AIL_TEACHER, AIL_S0),
            rounds=expand(
                "results/models/ail-w{w}-ail/x{s}/rounds/round{r}.safetensors",
                w=AIL_W0,
                s=AIL_S0,
                r=range(AIL_ROUNDS),
            ),
            data=set_dir(AIL["maps"]["set"], AIL_S0),
        output:
            report("results/figures/ail_importance.png", category="AIL"),
        params:
            inputs=lambda w, input: as_json(
                {
                    "teacher": input.teacher,
                    "rounds": list(input.rounds),
                    "data": input.data,
                    "image": AIL["maps"]["image"],
                    "scale": AIL_S0,
                    "importance": AIL.get("importance", {}),
                }
            ),
        conda:
            "../../envs/litesr.yaml"
        log:
            "logs/figures/ail_importance.log",
        benchmark:
            "benchmarks/out/figures/ail_importance.tsv"
        shell:
            "litesr --quiet figure ail_importance --inputs {params.inputs} --out {output} 2> {log}"

    rule figure_ail_rounds:
        input:
            expand(
                "results/models/ail-w{w}-{v}/x{s}/train_log.tsv",
                w=AIL_W0,
                v=AIL["variants"],
                s=AIL_S0,
            ),
        output:
            report("results/figures/ail_rounds.png", category="AIL"),
        params:
            inputs=lambda w, input: as_json(
                {"logs": list(input), "labels": [f"w{AIL_W0} {v}" for v in AIL["variants"]]}
            ),
        conda:
            "../../envs/litesr.yaml"
        log:
            "logs/figures/ail_rounds.log",
        benchmark:
            "benchmarks/out/figures/ail_rounds.tsv"
        shell:
            "litesr --quiet figure ail_rounds --inputs {params.inputs} --out {output} 2> {log}"

    rule figure_ail_width:
        input:
            summary="results/tables/psnr_ssim.tsv",
            cost="results/tables/cost.tsv",
        output:
            report("results/figures/ail_width.png", category="AIL"),
        params:
            inputs=lambda w, input: as_json(
                {"summary": input.summary, "cost": input.cost, "teacher": AIL_TEACHER}
            ),
        conda:
            "../../envs/litesr.yaml"
        log:
            "logs/figures/ail_width.log",
        benchmark:
            "benchmarks/out/figures/ail_width.tsv"
        shell:
            "litesr --quiet figure ail_width --inputs {params.inputs} --out {output} 2> {log}"
