"""The sample job of {{name}}: greets, reporting its progress the way coco reads it.

coco runs it as `python -m {{name}}.hello` in the project's environment; every line
`::progress:: FRACTION message` moves the run's progress bar, `::log:: LEVEL message`
is a log record, anything else is the run's output (`coco logs ID`).
"""
import os
import sys
import time


def main(times=3):
    for i in range(times):
        print(f"hello from {{name}} ({i + 1}/{times}), run {os.environ.get('COCO_RUN_ID', '-')}", flush=True)
        print(f"::progress:: {(i + 1) / times:.2f} step {i + 1}", flush=True)
        time.sleep(0.1)
    print("::log:: INFO greeted", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
