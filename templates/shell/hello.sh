#!/bin/sh
# The sample job of {{name}}.
echo "hello from {{name}}, run ${COCO_RUN_ID:--}"
echo "::progress:: 1.0 done"
