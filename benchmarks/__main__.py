"""`make bench`: run every quick benchmark in one go (each prints its own table and machine)."""
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICK = [("wavenet_generation.py", ["--quick"]),
         ("image_sampling.py", ["--threads", "1", "--naive-steps", "50"])]

for script, args in QUICK:
    print(f"== {script} {' '.join(args)}", flush=True)
    sys.argv = [script, *args]
    runpy.run_path(str(HERE / script), run_name="__main__")
