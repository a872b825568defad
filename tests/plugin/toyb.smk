rule toyb_marker:
    output:
        "results/toyb/marker.txt",
    log:
        "logs/toyb_marker.log",
    shell:
        "echo toyb marker > {output} 2> {log}"
