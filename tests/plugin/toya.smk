rule toya_marker:
    output:
        "results/toya/marker.txt",
    log:
        "logs/toya_marker.log",
    shell:
        "echo toya marker > {output} 2> {log}"
