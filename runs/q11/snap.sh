#!/bin/bash
# Copy runs/q11/C320/last.pt to stepN.pt when validation at a multiple of 1000 has been logged (the checkpoint of
# that step follows the validation row within seconds; the next one comes 250 steps later).
D=runs/q11/C320
while true; do
  if [ -f $D/log.jsonl ]; then
    s=$(grep '"val"' $D/log.jsonl | tail -1 | sed 's/.*"step": *\([0-9]*\).*/\1/')
    if [ -n "$s" ] && [ $((s % 1000)) -eq 0 ] && [ ! -f $D/step$s.pt ]; then
      sleep 40; cp $D/last.pt $D/step$s.pt.tmp && mv $D/step$s.pt.tmp $D/step$s.pt
      echo "$(date +%T) step$s.pt" >> runs/q11/snapC.log
    fi
  fi
  sleep 20
done
