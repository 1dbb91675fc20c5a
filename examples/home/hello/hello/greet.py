"""Print a greeting a few times, reporting progress the way coco reads it."""
import argparse
import os
import time

parser = argparse.ArgumentParser()
parser.add_argument("--times", type=int, default=1)
parser.add_argument("--upper", action="store_true")
options = parser.parse_args()

greeting = os.environ.get("GREETING", "hello")
for i in range(options.times):
    text = f"{greeting}, world ({i + 1}/{options.times})"
    print(text.upper() if options.upper else text, flush=True)
    print(f"::progress:: {(i + 1) / options.times:.2f} greeted {i + 1}", flush=True)
    time.sleep(0.1)
