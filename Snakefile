"""litesr: data → degradation → teacher → students → evaluation → cost → figures → report.

Run `snakemake --cores 8 reports/all.pdf`; see README.md and config/schema.yaml.
"""

from snakemake.utils import min_version, validate

min_version("9.0")


# The embedded default, unless --configfile/--config give a configuration: a config file
# given on the command line replaces the default instead of being merged into it.
if not config:

    configfile: "config/config.yaml"


from litesr.config_check import check_schema, strict_load

for _file in workflow.configfiles:
    strict_load(_file)
check_schema(config, os.path.join(workflow.basedir, "config/schema.yaml"))
validate(config, "config/schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/launch.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/methods.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/cost.smk"
include: "workflow/rules/report.smk"


# Methods that need rules beyond the shared ones bring a rules file (defining rules only).
for _rules in PLAN.rules:

    include: _rules


rule all:
    default_target: True
    input:
        "reports/all.pdf",
