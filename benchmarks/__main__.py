"""`make bench`: run every quick benchmark in one go (each prints its own table and machine)."""
from arsound.cli.bench import run_benchmark

QUICK = [("wavenet", ["--quick", "--targets"]),
         ("wavenet_precision", ["--clips", "2", "--seeds", "0", "--presets", "mol24"]),
         ("wavernn", ["--seconds", "0.5", "--repeats", "1"]),
         ("image_sampling", ["--threads", "1", "--naive-steps", "50"])]

for name, args in QUICK:
    print(f"== arsound bench {name} {' '.join(args)}", flush=True)
    run_benchmark(name, args)
