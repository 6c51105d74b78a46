"""Research code for benchmarks and tests: the accuracy harness, synthetic feature sets, the baselines glue and
the propagation oracle. Never imported by the product (scoring, jobs, service).
"""
